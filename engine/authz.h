/* engine/authz.h -- the role table (R-ID-1): what each role may do, and the
 * one check the administration routes call, sr_authz_allows.
 *
 * CONTRACT
 *  A principal is a role held within a scope: the platform, one operator or
 *  one vendor. Each (role, action) cell of SR_AUTHZ_TABLE (authz.c) holds
 *  one scope rule:
 *    none          never;
 *    platform      any target on the platform;
 *    own operator  a target of the principal's own operator;
 *    own vendor    a target of the principal's own vendor (a vendor user, or
 *                  an operator's app or gateway that this vendor builds);
 *    granted       operator data whose operator granted the principal's
 *                  vendor access (the caller looks the grant up and says so
 *                  in the target).
 *  docs/admin.md holds the same table in words (test_authz checks they are
 *  equal, cell by cell, and exercises every cell).
 *
 * INVARIANTS
 *  (1) Deny by default: an unknown role or action, a role held in a scope of
 *      the wrong kind (an operator role in a vendor's scope, ...), a missing
 *      scope id, or a target without the id the rule compares, is refused.
 *  (2) Pure: the answer depends on the arguments alone (no index, no clock),
 *      so a route checks again on every request (revocation at once, R-ID-4).
 */
#ifndef SR_AUTHZ_H
#define SR_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

/* The roles: X(enum suffix, name, scope kind a user of the role belongs to). */
#define SR_ROLES(X)                                         \
    X(PLATFORM_ADMIN, "platform_admin", SR_SCOPE_PLATFORM)  \
    X(OPERATOR_ADMIN, "operator_admin", SR_SCOPE_OPERATOR)  \
    X(OPERATOR_GENERAL, "operator_general", SR_SCOPE_OPERATOR) \
    X(AP_VENDOR_ADMIN, "ap_vendor_admin", SR_SCOPE_VENDOR)  \
    X(AP_VENDOR_GENERAL, "ap_vendor_general", SR_SCOPE_VENDOR) \
    X(GW_VENDOR_ADMIN, "gw_vendor_admin", SR_SCOPE_VENDOR)  \
    X(GW_VENDOR_GENERAL, "gw_vendor_general", SR_SCOPE_VENDOR) \
    X(AUDITOR, "auditor", SR_SCOPE_PLATFORM)

/* The actions: X(enum suffix, name). docs/admin.md says what each covers. */
#define SR_AUTHZ_ACTIONS(X)                        \
    X(TENANTS_MANAGE, "tenants.manage")            \
    X(USERS_MANAGE, "users.manage")                \
    X(SETUP_MANAGE, "setup.manage")                \
    X(SETUP_READ, "setup.read")                    \
    X(APPS_REGISTER, "apps.register")              \
    X(GATEWAYS_REGISTER, "gateways.register")      \
    X(DATA_READ, "data.read")                      \
    X(DATA_WRITE, "data.write")                    \
    X(AUDIT_READ, "audit.read")                    \
    X(DATA_CORRECT, "data.correct")                \
    X(MONITOR_READ, "monitor.read")

/* The scope rules, X(enum suffix, name as docs/admin.md writes it). */
#define SR_AUTHZ_RULES(X)                 \
    X(NONE, "none")                       \
    X(PLATFORM, "platform")               \
    X(OWN_OPERATOR, "own operator")       \
    X(OWN_VENDOR, "own vendor")           \
    X(GRANTED, "granted")

typedef enum sr_scope_kind { SR_SCOPE_PLATFORM, SR_SCOPE_OPERATOR, SR_SCOPE_VENDOR } sr_scope_kind;

typedef enum sr_role {
#define SR_X_(id, name, kind) SR_ROLE_##id,
    SR_ROLES(SR_X_)
#undef SR_X_
    SR_ROLE_COUNT
} sr_role;

typedef enum sr_authz_action {
#define SR_X_(id, name) SR_ACT_##id,
    SR_AUTHZ_ACTIONS(SR_X_)
#undef SR_X_
    SR_ACT_COUNT
} sr_authz_action;

typedef enum sr_authz_rule {
#define SR_X_(id, name) SR_RULE_##id,
    SR_AUTHZ_RULES(SR_X_)
#undef SR_X_
    SR_RULE_COUNT
} sr_authz_rule;

/* Who asks: one role held in one scope (scope_id: the operator's or the
 * vendor's id; ignored for the platform). */
typedef struct sr_principal {
    sr_role role;
    sr_scope_kind scope;
    const char *scope_id;
} sr_principal;

/* What is acted on. operator_id: the operator the object belongs to (a
 * master, an app, an operator's user, its data), NULL for none; vendor_id:
 * the vendor it belongs to or is built by (a vendor's user, an app or a
 * gateway linked to that vendor, R-ID-8), NULL for none; vendor_granted: the
 * target's operator granted the principal's vendor access to this data. */
typedef struct sr_authz_target {
    const char *operator_id;
    const char *vendor_id;
    bool vendor_granted;
} sr_authz_target;

/* 1 if p may do act on t, else 0 (invariant 1). */
bool sr_authz_allows(const sr_principal *p, sr_authz_action act, const sr_authz_target *t);

/* The table and the names (for docs checks, the admin routes' errors and
 * the event dump). The name functions answer NULL when out of range. */
sr_authz_rule sr_authz_rule_of(sr_role role, sr_authz_action act);
const char *sr_role_name(sr_role role);
sr_scope_kind sr_role_scope(sr_role role);
const char *sr_authz_action_name(sr_authz_action act);
const char *sr_authz_rule_name(sr_authz_rule rule);
/* The role named name (0), or -1. */
int sr_role_parse(const char *name, sr_role *out);
/* The action named name (0), or -1. */
int sr_authz_action_parse(const char *name, sr_authz_action *out);

#endif
