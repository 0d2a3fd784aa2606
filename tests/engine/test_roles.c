/* tests/engine/test_roles.c -- the role table: docs/admin.md's "Role table"
 * equals the code table (engine/authz.c), cell for cell, and every cell of
 * it, asked through sr_authz_allows with own and foreign operators and
 * vendors, answers what its rule says. */
#include "engine/authz.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC SR_TEST_DATA "/../../docs/admin.md"

/* Read the docs' role table into rules[role][action]; the header row names
 * the actions in the docs' column order. Returns the number of role rows. */
static int read_doc_table(int rules[SR_ROLE_COUNT][SR_ACT_COUNT])
{
    FILE *f = fopen(DOC, "r");
    cr_assert(f, "cannot open %s", DOC);
    char line[4096], cell[128];
    int col_act[16], ncols = 0, rows = 0, in_table = 0;
    for (int r = 0; r < SR_ROLE_COUNT; r++)
        for (int a = 0; a < SR_ACT_COUNT; a++) rules[r][a] = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "| Role |", 8)) {
            in_table = 1;
            for (ncols = 0; !tu_md_cell(line, ncols + 1, cell, sizeof cell); ncols++) {
                cr_assert_lt(ncols, 16);
                col_act[ncols] = -1;
                for (int a = 0; a < SR_ACT_COUNT; a++)
                    if (!strcmp(cell, sr_authz_action_name((sr_authz_action)a))) col_act[ncols] = a;
                cr_assert_neq(col_act[ncols], -1, "docs/admin.md: the column '%s' is not an action of the code", cell);
            }
            cr_assert_eq(ncols, SR_ACT_COUNT, "docs/admin.md has %d action columns, the code %d", ncols, SR_ACT_COUNT);
            continue;
        }
        if (!in_table || !strncmp(line, "|---", 4)) continue;
        if (line[0] != '|') break;
        cr_assert(!tu_md_cell(line, 0, cell, sizeof cell));
        sr_role role;
        cr_assert(!sr_role_parse(cell, &role), "docs/admin.md: the role '%s' is not a role of the code", cell);
        rows++;
        for (int c = 0; c < ncols; c++) {
            cr_assert(!tu_md_cell(line, c + 1, cell, sizeof cell), "row %s: too few cells", sr_role_name(role));
            cr_assert_eq(rules[role][col_act[c]], -1, "role %s documented twice", sr_role_name(role));
            for (int k = 0; k < SR_RULE_COUNT; k++)
                if (!strcmp(cell, sr_authz_rule_name((sr_authz_rule)k))) rules[role][col_act[c]] = k;
            cr_assert_neq(rules[role][col_act[c]], -1, "docs/admin.md: '%s' is not a scope rule", cell);
        }
    }
    fclose(f);
    return rows;
}

Test(roles, docs_table_equals_code_table)
{
    int doc[SR_ROLE_COUNT][SR_ACT_COUNT];
    int rows = read_doc_table(doc), errors = 0;
    cr_assert_eq(rows, SR_ROLE_COUNT, "docs/admin.md has %d roles, the code %d", rows, SR_ROLE_COUNT);
    for (int r = 0; r < SR_ROLE_COUNT; r++)
        for (int a = 0; a < SR_ACT_COUNT; a++) {
            int code = (int)sr_authz_rule_of((sr_role)r, (sr_authz_action)a);
            if (doc[r][a] != code) {
                cr_log_error("%s x %s: docs/admin.md says '%s', the code '%s'", sr_role_name((sr_role)r),
                             sr_authz_action_name((sr_authz_action)a),
                             doc[r][a] < 0 ? "(missing)" : sr_authz_rule_name((sr_authz_rule)doc[r][a]),
                             sr_authz_rule_name((sr_authz_rule)code));
                errors++;
            }
        }
    cr_assert_eq(errors, 0, "%d disagreements between docs/admin.md and engine/authz.c (above)", errors);
}

/* A rule fits its role's scope kind: "platform" only for platform roles,
 * "own operator" only for operator roles, "own vendor" and "granted" only for
 * vendor roles. */
Test(roles, every_rule_fits_its_roles_scope)
{
    for (int r = 0; r < SR_ROLE_COUNT; r++)
        for (int a = 0; a < SR_ACT_COUNT; a++) {
            sr_authz_rule k = sr_authz_rule_of((sr_role)r, (sr_authz_action)a);
            sr_scope_kind s = sr_role_scope((sr_role)r);
            int ok = k == SR_RULE_NONE || (k == SR_RULE_PLATFORM && s == SR_SCOPE_PLATFORM) ||
                     (k == SR_RULE_OWN_OPERATOR && s == SR_SCOPE_OPERATOR) ||
                     ((k == SR_RULE_OWN_VENDOR || k == SR_RULE_GRANTED) && s == SR_SCOPE_VENDOR);
            cr_expect(ok, "%s x %s: rule '%s' does not fit the role's scope", sr_role_name((sr_role)r),
                      sr_authz_action_name((sr_authz_action)a), sr_authz_rule_name(k));
        }
}

/* The targets every cell is asked about. The principal's own operator is
 * "op-a", its own vendor "v-a". */
enum { T_NONE, T_OWN_OP, T_FOREIGN_OP, T_OWN_VENDOR, T_FOREIGN_VENDOR, T_FOREIGN_OP_APP_BY_OWN_VENDOR,
       T_OWN_OP_APP_BY_FOREIGN_VENDOR, T_FOREIGN_OP_GRANTED, T_OWN_OP_GRANTED, T_COUNT };
static const sr_authz_target targets[T_COUNT] = {
    [T_NONE] = {NULL, NULL, false},
    [T_OWN_OP] = {"op-a", NULL, false},
    [T_FOREIGN_OP] = {"op-b", NULL, false},
    [T_OWN_VENDOR] = {NULL, "v-a", false},
    [T_FOREIGN_VENDOR] = {NULL, "v-b", false},
    [T_FOREIGN_OP_APP_BY_OWN_VENDOR] = {"op-b", "v-a", false},
    [T_OWN_OP_APP_BY_FOREIGN_VENDOR] = {"op-a", "v-b", false},
    [T_FOREIGN_OP_GRANTED] = {"op-b", NULL, true},
    [T_OWN_OP_GRANTED] = {"op-a", NULL, true},
};
/* What each rule allows, per target: written out, not computed. */
static const int expect[SR_RULE_COUNT][T_COUNT] = {
    [SR_RULE_NONE] = {0, 0, 0, 0, 0, 0, 0, 0, 0},
    [SR_RULE_PLATFORM] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
    [SR_RULE_OWN_OPERATOR] = {0, 1, 0, 0, 0, 0, 1, 0, 1},
    [SR_RULE_OWN_VENDOR] = {0, 0, 0, 1, 0, 1, 0, 0, 0},
    [SR_RULE_GRANTED] = {0, 0, 0, 0, 0, 0, 0, 1, 1},
};

static sr_principal principal(sr_role r)
{
    sr_scope_kind s = sr_role_scope(r);
    return (sr_principal){r, s, s == SR_SCOPE_OPERATOR ? "op-a" : s == SR_SCOPE_VENDOR ? "v-a" : NULL};
}

Test(roles, every_cell_with_own_and_foreign_operator_and_vendor)
{
    int errors = 0, allowed = 0;
    for (int r = 0; r < SR_ROLE_COUNT; r++)
        for (int a = 0; a < SR_ACT_COUNT; a++) {
            sr_principal p = principal((sr_role)r);
            sr_authz_rule k = sr_authz_rule_of((sr_role)r, (sr_authz_action)a);
            for (int t = 0; t < T_COUNT; t++) {
                int got = sr_authz_allows(&p, (sr_authz_action)a, &targets[t]);
                allowed += got;
                if (got != expect[k][t]) {
                    cr_log_error("%s x %s (%s), target %d: got %d", sr_role_name((sr_role)r),
                                 sr_authz_action_name((sr_authz_action)a), sr_authz_rule_name(k), t, got);
                    errors++;
                }
            }
        }
    cr_assert_eq(errors, 0, "%d cells answered against their rule (above)", errors);
    cr_assert_gt(allowed, 0);
}

/* A few cells spelled out, so that a change of the table that the docs
 * follow still has to face the issue's sentences. */
Test(roles, the_issues_sentences)
{
    sr_principal pa = principal(SR_ROLE_PLATFORM_ADMIN), oa = principal(SR_ROLE_OPERATOR_ADMIN),
                 og = principal(SR_ROLE_OPERATOR_GENERAL), va = principal(SR_ROLE_AP_VENDOR_ADMIN),
                 gv = principal(SR_ROLE_GW_VENDOR_ADMIN), au = principal(SR_ROLE_AUDITOR);
    /* The platform admin manages operators and vendors. */
    cr_expect(sr_authz_allows(&pa, SR_ACT_TENANTS_MANAGE, &targets[T_NONE]));
    cr_expect(!sr_authz_allows(&oa, SR_ACT_TENANTS_MANAGE, &targets[T_OWN_OP]));
    /* An operator's users never see another operator's anything. */
    for (int a = 0; a < SR_ACT_COUNT; a++) {
        cr_expect(!sr_authz_allows(&oa, (sr_authz_action)a, &targets[T_FOREIGN_OP]));
        cr_expect(!sr_authz_allows(&og, (sr_authz_action)a, &targets[T_FOREIGN_OP]));
    }
    /* A vendor manages only its own apps' or gateways' registration... */
    cr_expect(sr_authz_allows(&va, SR_ACT_APPS_REGISTER, &targets[T_FOREIGN_OP_APP_BY_OWN_VENDOR]));
    cr_expect(!sr_authz_allows(&va, SR_ACT_APPS_REGISTER, &targets[T_OWN_OP_APP_BY_FOREIGN_VENDOR]));
    cr_expect(!sr_authz_allows(&va, SR_ACT_GATEWAYS_REGISTER, &targets[T_FOREIGN_OP_APP_BY_OWN_VENDOR]));
    cr_expect(sr_authz_allows(&gv, SR_ACT_GATEWAYS_REGISTER, &targets[T_FOREIGN_OP_APP_BY_OWN_VENDOR]));
    /* ... and sees no operator data unless that operator grants it. */
    cr_expect(!sr_authz_allows(&va, SR_ACT_DATA_READ, &targets[T_FOREIGN_OP]));
    cr_expect(sr_authz_allows(&va, SR_ACT_DATA_READ, &targets[T_FOREIGN_OP_GRANTED]));
    cr_expect(!sr_authz_allows(&va, SR_ACT_SETUP_READ, &targets[T_FOREIGN_OP_GRANTED]));
    /* A grant opens reading, never writing. */
    cr_expect(!sr_authz_allows(&va, SR_ACT_DATA_WRITE, &targets[T_FOREIGN_OP_GRANTED]));
    cr_expect(sr_authz_allows(&og, SR_ACT_DATA_WRITE, &targets[T_OWN_OP]));
    /* An auditor may read the audit events, and nothing else. */
    cr_expect(sr_authz_allows(&au, SR_ACT_AUDIT_READ, &targets[T_FOREIGN_OP]));
    cr_expect(!sr_authz_allows(&au, SR_ACT_DATA_READ, &targets[T_OWN_OP]));
}

/* Deny by default (authz.h invariant 1). */
Test(roles, deny_by_default)
{
    sr_principal p = principal(SR_ROLE_OPERATOR_ADMIN);
    const sr_authz_target *own = &targets[T_OWN_OP];
    cr_assert(sr_authz_allows(&p, SR_ACT_SETUP_MANAGE, own));
    sr_principal wrong_kind = {SR_ROLE_OPERATOR_ADMIN, SR_SCOPE_VENDOR, "op-a"};
    cr_expect(!sr_authz_allows(&wrong_kind, SR_ACT_SETUP_MANAGE, own), "an operator role in a vendor's scope");
    sr_principal promoted = {SR_ROLE_PLATFORM_ADMIN, SR_SCOPE_OPERATOR, "op-a"};
    cr_expect(!sr_authz_allows(&promoted, SR_ACT_TENANTS_MANAGE, own), "a platform role in an operator's scope");
    sr_principal no_id = {SR_ROLE_OPERATOR_ADMIN, SR_SCOPE_OPERATOR, ""};
    sr_authz_target empty = {"", NULL, false};
    cr_expect(!sr_authz_allows(&no_id, SR_ACT_SETUP_MANAGE, &empty), "an empty scope id matches nothing");
    cr_expect(!sr_authz_allows(&p, SR_ACT_COUNT, own));
    cr_expect(!sr_authz_allows(&p, (sr_authz_action)-1, own));
    sr_principal bad = {SR_ROLE_COUNT, SR_SCOPE_PLATFORM, NULL};
    cr_expect(!sr_authz_allows(&bad, SR_ACT_TENANTS_MANAGE, own));
    cr_expect(!sr_authz_allows(NULL, SR_ACT_SETUP_MANAGE, own));
    cr_expect(!sr_authz_allows(&p, SR_ACT_SETUP_MANAGE, NULL));
    sr_role r;
    cr_expect(sr_role_parse("root", &r) == -1);
    cr_expect(sr_role_parse("auditor", &r) == 0 && r == SR_ROLE_AUDITOR);
}
