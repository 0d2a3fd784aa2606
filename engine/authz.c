/* engine/authz.c -- the role table and sr_authz_allows (contract and
 * invariants in engine/authz.h). The table below is docs/admin.md's
 * "Role table", cell for cell (test_authz).
 *
 * How to add a role or an action: a row in SR_ROLES or SR_AUTHZ_ACTIONS
 * (authz.h), its cells here (an absent cell is a compile-time zero, "none",
 * so write every cell), and the same row or column in docs/admin.md.
 */
#include "engine/authz.h"

#include <string.h>

#define N SR_RULE_NONE
#define PLAT SR_RULE_PLATFORM
#define OWNOP SR_RULE_OWN_OPERATOR
#define OWNVEN SR_RULE_OWN_VENDOR
#define GRANT SR_RULE_GRANTED

/* clang-format off */
static const sr_authz_rule SR_AUTHZ_TABLE[SR_ROLE_COUNT][SR_ACT_COUNT] = {
    /*                         tenants  users   setup.m setup.r apps.reg gw.reg  data.r  data.w  audit.r data.c  mon.r */
    [SR_ROLE_PLATFORM_ADMIN]    = {PLAT, PLAT,   N,      N,      N,      N,      N,      N,      N,      N,      PLAT},
    [SR_ROLE_OPERATOR_ADMIN]    = {N,    OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP,  OWNOP},
    [SR_ROLE_OPERATOR_GENERAL]  = {N,    N,      N,      OWNOP,  N,      N,      OWNOP,  OWNOP,  N,      N,      OWNOP},
    [SR_ROLE_AP_VENDOR_ADMIN]   = {N,    OWNVEN, N,      N,      OWNVEN, N,      GRANT,  N,      N,      N,      N},
    [SR_ROLE_AP_VENDOR_GENERAL] = {N,    N,      N,      N,      N,      N,      GRANT,  N,      N,      N,      N},
    [SR_ROLE_GW_VENDOR_ADMIN]   = {N,    OWNVEN, N,      N,      N,      OWNVEN, GRANT,  N,      N,      N,      N},
    [SR_ROLE_GW_VENDOR_GENERAL] = {N,    N,      N,      N,      N,      N,      GRANT,  N,      N,      N,      N},
    [SR_ROLE_AUDITOR]           = {N,    N,      N,      N,      N,      N,      N,      N,      PLAT,   N,      N},
};
/* clang-format on */

#undef N
#undef PLAT
#undef OWNOP
#undef OWNVEN
#undef GRANT

static const struct {
    const char *name;
    sr_scope_kind scope;
} roles[SR_ROLE_COUNT] = {
#define SR_X_(id, nm, kind) [SR_ROLE_##id] = {nm, kind},
    SR_ROLES(SR_X_)
#undef SR_X_
};

static const char *const actions[SR_ACT_COUNT] = {
#define SR_X_(id, nm) [SR_ACT_##id] = nm,
    SR_AUTHZ_ACTIONS(SR_X_)
#undef SR_X_
};

static const char *const rules[SR_RULE_COUNT] = {
#define SR_X_(id, nm) [SR_RULE_##id] = nm,
    SR_AUTHZ_RULES(SR_X_)
#undef SR_X_
};

static bool role_ok(sr_role r) { return (unsigned)r < SR_ROLE_COUNT; }
static bool act_ok(sr_authz_action a) { return (unsigned)a < SR_ACT_COUNT; }

sr_authz_rule sr_authz_rule_of(sr_role role, sr_authz_action act)
{
    return role_ok(role) && act_ok(act) ? SR_AUTHZ_TABLE[role][act] : SR_RULE_NONE;
}

const char *sr_role_name(sr_role role) { return role_ok(role) ? roles[role].name : NULL; }
sr_scope_kind sr_role_scope(sr_role role) { return role_ok(role) ? roles[role].scope : SR_SCOPE_PLATFORM; }
const char *sr_authz_action_name(sr_authz_action act) { return act_ok(act) ? actions[act] : NULL; }
const char *sr_authz_rule_name(sr_authz_rule rule)
{
    return (unsigned)rule < SR_RULE_COUNT ? rules[rule] : NULL;
}

int sr_role_parse(const char *name, sr_role *out)
{
    for (int i = 0; name && i < SR_ROLE_COUNT; i++)
        if (!strcmp(name, roles[i].name)) {
            *out = (sr_role)i;
            return 0;
        }
    return -1;
}

int sr_authz_action_parse(const char *name, sr_authz_action *out)
{
    for (int i = 0; name && i < SR_ACT_COUNT; i++)
        if (!strcmp(name, actions[i])) {
            *out = (sr_authz_action)i;
            return 0;
        }
    return -1;
}

static bool same_id(const char *a, const char *b) { return a && b && *a && !strcmp(a, b); }

bool sr_authz_allows(const sr_principal *p, sr_authz_action act, const sr_authz_target *t)
{
    if (!p || !t || !role_ok(p->role) || !act_ok(act) || p->scope != roles[p->role].scope) return false;
    if (p->scope != SR_SCOPE_PLATFORM && !(p->scope_id && *p->scope_id)) return false;
    switch (SR_AUTHZ_TABLE[p->role][act]) {
    case SR_RULE_PLATFORM: return true; /* the role's scope is the platform (the table's check, test_authz) */
    case SR_RULE_OWN_OPERATOR: return same_id(p->scope_id, t->operator_id);
    case SR_RULE_OWN_VENDOR: return same_id(p->scope_id, t->vendor_id);
    case SR_RULE_GRANTED: return t->operator_id && *t->operator_id && t->vendor_granted;
    case SR_RULE_NONE:
    case SR_RULE_COUNT: break;
    }
    return false;
}
