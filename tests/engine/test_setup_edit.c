/* tests/engine/test_setup_edit.c -- one set-up change at a time (engine/sheet.h
 * sr_engine_setup_edit, sr_engine_registry_change, sr_engine_import_sheet_as),
 * what the admin API's set-up routes (api/admin_setup.c) run: a row is
 * checked by the sheet's own parser (the field at fault named), nothing is
 * stored on a refusal (the log's next sequence number unchanged), a change
 * equal to the stored state stores nothing, removals follow the sheet's
 * rules (an app's grants go with it; a parent still named is a conflict),
 * the actor and source are the caller's, and what the sheet does not carry
 * (a vendor link, a certificate, disabled) survives a sheet import; a hook
 * sees the built events and may take or refuse them; and an allocation that
 * fails anywhere in an edit (the k-th, for every k) stores all of it or
 * nothing. */
#include "engine/records.h"
#include "engine/secret.h"
#include "engine/sheet.h"

#include "engsuite.h"
#include "fault_alloc.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};
static const sr_cmd_env ENV = {"op1", "hanako", SR_ACTOR_USER, NULL, "192.0.2.7:5000"};

static const char SHEET[] = "#suiro-setup-sheet v1\n"
                            "[operator]\nid,name\nop1,One\n"
                            "[gateways]\nid,name,secret\nGW1,g,gw1-secret-0001\n"
                            "[apps]\nid,name,secret,push_url\nA1,a,app1-secret-0001,\n"
                            "[facilities]\nid,name\nF1,f\n"
                            "[equipment]\nid,facility,name\nE1,F1,e\n"
                            "[devices]\nid,equipment,gateway,name\nD1,E1,GW1,d\n"
                            "[datapoints]\nid,device,name,type,unit,min,max,kind\nP1,D1,p,number,m,0,10,measure\n"
                            "P2,D1,p2,integer,,,,both\n"
                            "[grants]\napp,datapoint,access\nA1,P1,read\nA1,P*,both\n";

static sr_engine *setup(void)
{
    sr_engine *e = es_open(&dir, "setup_edit", &OPTS);
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(SHEET, strlen(SHEET), NULL, &sh), SR_OK);
    sr_result r;
    cr_assert_eq(sr_engine_import_sheet(e, sh, &r), SR_OK, "%s", r.err.msg);
    sr_sheet_free(sh);
    return e;
}

static void finish(sr_engine *e) { es_finish(e, &dir); }

static uint64_t next_seq(sr_engine *e)
{
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    return st.log_next_seq;
}

static int hook_take(void *ctx, const sr_slice *evs, size_t n)
{
    (void)evs;
    *(size_t *)ctx = n;
    return 1;
}

static int hook_refuse(void *ctx, const sr_slice *evs, size_t n)
{
    (void)ctx;
    (void)evs;
    (void)n;
    return SR_EINVAL;
}

static const char *const DP_COLS[] = {"id", "device", "name", "type", "unit", "min", "max", "kind"};

/* put one data point row; the result and the field at fault */
static int put_dp(sr_engine *e, const char *const vals[8], sr_result *r, char *field)
{
    sr_setup_edit ed = {.drop = SR_SHEET_S_DATAPOINTS, .id = vals[0], .section = "datapoints", .cols = DP_COLS,
                        .ncols = 8, .vals = (const char **)vals, .nrows = 1};
    size_t row;
    return sr_engine_setup_edit(e, &ENV, &ed, r, field, 32, &row);
}

Test(setup_edit, a_row_is_checked_as_the_sheet_checks_it_and_a_refusal_stores_nothing)
{
    sr_engine *e = setup();
    uint64_t before = next_seq(e);
    sr_result r;
    char field[32];
    /* each bad cell is named by its column, as the sheet's parser names it */
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D1", "x", "float", "", "", "", ""}, &r, field), SR_EINVAL);
    cr_assert_str_eq(field, "type", "%s", r.err.msg);
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D9", "x", "number", "", "", "", ""}, &r, field), SR_EINVAL);
    cr_assert_str_eq(field, "device", "%s", r.err.msg);
    cr_assert(strstr(r.err.msg, "D9"), "%s", r.err.msg);
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D1", "x", "integer", "", "0.5", "", ""}, &r, field), SR_EINVAL);
    cr_assert_str_eq(field, "min", "%s", r.err.msg);
    cr_assert_eq(put_dp(e, (const char *const[]){"bad id!", "D1", "x", "number", "", "", "", ""}, &r, field), SR_EINVAL);
    cr_assert_str_eq(field, "id", "%s", r.err.msg);
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D1", "x", "number", "", "5", "1", ""}, &r, field), SR_EINVAL);
    cr_assert_eq(next_seq(e), before, "a refused change stored something");
    /* a stored point keeps its type (the writer's rule) */
    cr_assert_eq(put_dp(e, (const char *const[]){"P1", "D1", "p", "string", "", "", "", ""}, &r, field), SR_EINVAL);
    cr_assert_eq(next_seq(e), before);
    finish(e);
}

Test(setup_edit, a_put_creates_or_changes_one_entry_and_the_same_put_again_stores_nothing)
{
    sr_engine *e = setup();
    sr_result r;
    char field[32];
    uint64_t before = next_seq(e);
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D1", "new", "number", "m3/h", "0", "99.5", "both"}, &r, field),
                 SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 1, "one event for one new entry (got %u)", r.count);
    cr_assert_eq(next_seq(e), before + 1);
    sr_rec h = SR_REC_INIT;
    sr_master m;
    cr_assert_eq(sr_read_master(e, "op1", SR_MK_DATA_POINT, "P3", &h, &m), SR_OK);
    cr_assert_str_eq(m.name, "new");
    cr_assert_str_eq(m.unit, "m3/h");
    cr_assert(m.has_max && m.max == 99.5);
    sr_rec_close(&h);
    cr_assert_eq(put_dp(e, (const char *const[]){"P3", "D1", "new", "number", "m3/h", "0", "99.5", "both"}, &r, field),
                 SR_OK);
    cr_assert_eq(r.count, 0, "the same row again stores nothing");
    cr_assert_eq(put_dp(e, (const char *const[]){"P1", "D1", "renamed", "number", "m", "0", "10", "measure"}, &r, field),
                 SR_OK);
    cr_assert_eq(r.count, 1, "a changed row is one event, the rest of the sheet none");
    cr_assert_eq(sr_read_master(e, "op1", SR_MK_DATA_POINT, "P1", &h, &m), SR_OK);
    cr_assert_str_eq(m.name, "renamed");
    sr_rec_close(&h);
    finish(e);
}

Test(setup_edit, the_actor_and_source_are_the_callers)
{
    sr_engine *e = setup();
    sr_result r;
    char field[32];
    cr_assert_eq(put_dp(e, (const char *const[]){"P9", "D1", "n", "boolean", "", "", "", ""}, &r, field), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* the dump of the log: the master put of P9 by hanako from her address */
    char cmd[1024], line[8192];
    snprintf(cmd, sizeof cmd, "%s replay %s 2>&1", SR_SUIRO_BIN, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int found = 0;
    while (fgets(line, sizeof line, p))
        if (strstr(line, "\"P9\"") && strstr(line, "master_put"))
            found = strstr(line, "\"actor\":\"hanako\"") && strstr(line, "192.0.2.7:5000");
    pclose(p);
    cr_assert(found, "the event names the user and the source (last line: %s)", line);
    tu_rmrf(dir);
    free(dir);
    dir = NULL;
}

Test(setup_edit, removals_follow_the_sheets_rules)
{
    sr_engine *e = setup();
    sr_result r;
    char field[32];
    size_t row;
    uint64_t before = next_seq(e);
    /* a facility that equipment names: a conflict naming the equipment */
    sr_setup_edit fac = {.drop = SR_SHEET_S_FACILITIES, .id = "F1", .must_drop = 1, .what = "facility F1"};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &fac, &r, field, sizeof field, &row), SR_ECONFLICT);
    cr_assert(strstr(r.err.msg, "E1"), "the message names the entry that refers to it: %s", r.err.msg);
    cr_assert_eq(next_seq(e), before);
    /* nothing to remove: not found */
    sr_setup_edit none = {.drop = SR_SHEET_S_FACILITIES, .id = "F9", .must_drop = 1, .what = "facility F9"};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &none, &r, field, sizeof field, &row), SR_ENOTFOUND);
    cr_assert_str_eq(r.err.msg, "facility F9 does not exist");
    /* an unknown operator */
    sr_cmd_env other = ENV;
    other.op = "op9";
    cr_assert_eq(sr_engine_setup_edit(e, &other, &none, &r, field, sizeof field, &row), SR_ENOTFOUND);
    cr_assert(strstr(r.err.msg, "operator op9"), "%s", r.err.msg);
    cr_assert_eq(next_seq(e), before);
    /* an app goes with its grants */
    sr_setup_edit app = {.drop = SR_SHEET_S_APPS, .id = "A1", .must_drop = 1, .what = "app A1"};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &app, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 3, "the app and its two grants (got %u)", r.count);
    sr_rec h = SR_REC_INIT;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 0);
    sr_rec_close(&h);
    /* a data point is deactivated: no longer listed */
    sr_setup_edit dp = {.drop = SR_SHEET_S_DATAPOINTS, .id = "P2", .must_drop = 1, .what = "data point P2"};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &dp, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    sr_master m;
    cr_assert_eq(sr_read_master(e, "op1", SR_MK_DATA_POINT, "P2", &h, &m), SR_ENOTFOUND);
    sr_rec_close(&h);
    finish(e);
}

/* An app's grants on documents and files ([storegrants], R-PO-2) go with
 * it too: its removal is not refused for them (they would name an app that
 * no longer exists). */
Test(setup_edit, an_app_goes_with_its_grants_on_documents_and_files)
{
    sr_engine *e = setup();
    char more[sizeof SHEET + 128];
    snprintf(more, sizeof more, "%s[storegrants]\napp,kind,target,access\nA1,documents,reports,read\n", SHEET);
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(more, strlen(more), NULL, &sh), SR_OK);
    cr_assert_eq(sh->n_errors, 0);
    sr_result r;
    cr_assert_eq(sr_engine_import_sheet(e, sh, &r), SR_OK, "%s", r.err.msg);
    sr_sheet_free(sh);
    char field[32];
    size_t row;
    sr_setup_edit app = {.drop = SR_SHEET_S_APPS, .id = "A1", .must_drop = 1, .what = "app A1"};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &app, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 4, "the app, its two grants and its grant on documents (got %u)", r.count);
    sr_rec h = SR_REC_INIT;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 0, "no grant of any kind is left");
    sr_rec_close(&h);
    finish(e);
}

Test(setup_edit, grants_are_replaced_per_app_and_a_new_app_needs_a_secret)
{
    sr_engine *e = setup();
    sr_result r;
    char field[32];
    size_t row;
    static const char *const GCOLS[] = {"app", "datapoint", "access"};
    const char *bad[] = {"A1", "P1", "read", "A1", "Q*", "read"};
    sr_setup_edit g = {.drop = SR_SHEET_S_GRANTS, .id = "A1", .must_exist_app = "A1", .section = "grants",
                       .cols = GCOLS, .ncols = 3, .vals = bad, .nrows = 2};
    uint64_t before = next_seq(e);
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row), SR_EINVAL);
    cr_assert_str_eq(field, "datapoint", "%s", r.err.msg);
    cr_assert_eq(row, 1, "the second row is at fault");
    cr_assert_eq(next_seq(e), before);
    const char *good[] = {"A1", "P2", "control"};
    g.vals = good;
    g.nrows = 1;
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_reg_entry re;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 1, "the whole list replaced the two stored grants");
    cr_assert_eq(sr_rec_next_registry(&h, &re), 1);
    cr_assert_str_eq(re.pattern, "P2");
    sr_rec_close(&h);
    g.must_exist_app = "A9";
    g.id = "A9";
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row), SR_ENOTFOUND);
    /* a new app without a secret */
    static const char *const ACOLS[] = {"id", "name", "secret", "push_url"};
    const char *app[] = {"A2", "two", "", "https://example.org/push"};
    sr_setup_edit a = {.drop = SR_SHEET_S_APPS, .id = "A2", .section = "apps", .cols = ACOLS, .ncols = 4,
                       .vals = app, .nrows = 1};
    before = next_seq(e);
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_EINVAL);
    cr_assert_str_eq(field, "secret", "%s", r.err.msg);
    app[2] = "short";
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_EINVAL);
    cr_assert_str_eq(field, "secret", "%s", r.err.msg);
    app[2] = "app2-secret-0002";
    app[3] = "ftp://x";
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_EINVAL);
    cr_assert_str_eq(field, "push_url", "%s", r.err.msg);
    cr_assert_eq(next_seq(e), before);
    app[3] = "https://example.org/push";
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "A2", &h, &re), SR_OK);
    cr_assert(sr_secret_verify("app2-secret-0002", re.secret_hash.data, re.secret_hash.len));
    cr_assert_str_eq(re.url, "https://example.org/push");
    sr_rec_close(&h);
    finish(e);
}

Test(setup_edit, registrations_change_and_survive_a_sheet_import)
{
    sr_engine *e = setup();
    sr_result r;
    /* an AP vendor, linked to A1 */
    sr_buf b;
    sr_buf_init(&b);
    sr_reg_entry v = {.kind = SR_RG_VENDOR, .id = "V1", .name = "vendor", .vendor_kind = "ap"};
    sr_cmd_env penv = {"", "root", SR_ACTOR_USER, NULL, "cli"};
    cr_assert_eq(sr_cmd_registry_put(&penv, &v, &b), SR_OK);
    size_t len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
    static const char *const ACOLS[] = {"id", "name", "secret", "push_url"};
    const char *app[] = {"A1", "a", "", ""};
    sr_setup_edit a = {.drop = SR_SHEET_S_APPS, .id = "A1", .section = "apps", .cols = ACOLS, .ncols = 4,
                       .vals = app, .nrows = 1, .vendor_id = "V9"};
    char field[32];
    size_t row;
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_EINVAL, "an unknown vendor");
    a.vendor_id = "V1";
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &a, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 1, "the app's row only: its grants stay (got %u events)", r.count);
    sr_rec g = SR_REC_INIT;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &g), SR_OK);
    cr_assert_eq(sr_rec_count(&g), 2, "a changed app keeps its grants");
    sr_rec_close(&g);
    /* a bad certificate is refused; a secret rotated; disabled */
    sr_reg_change ch = {.cert_pem = "not a certificate", .disabled = -1};
    uint64_t before = next_seq(e);
    cr_assert_eq(sr_engine_registry_change(e, &ENV, SR_RG_APP, "A1", &ch, &r), SR_EINVAL);
    cr_assert_eq(next_seq(e), before);
    ch = (sr_reg_change){.secret = "rotated-secret-42", .disabled = 1};
    cr_assert_eq(sr_engine_registry_change(e, &ENV, SR_RG_APP, "A9", &ch, &r), SR_ENOTFOUND);
    cr_assert_eq(sr_engine_registry_change(e, &ENV, SR_RG_APP, "A1", &ch, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 1);
    before = next_seq(e);
    ch = (sr_reg_change){.disabled = 1};
    cr_assert_eq(sr_engine_registry_change(e, &ENV, SR_RG_APP, "A1", &ch, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 0, "disabling a disabled app stores nothing");
    cr_assert_eq(next_seq(e), before);
    /* the sheet import (an export of it) keeps what the sheet does not carry */
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_engine_export_sheet(e, "op1", &out), SR_OK);
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(out.data, out.len, NULL, &sh), SR_OK);
    cr_assert_eq(sr_engine_import_sheet(e, sh, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.count, 0, "re-importing the export changes nothing (got %u)", r.count);
    sr_sheet_free(sh);
    sr_buf_release(&out);
    sr_rec h = SR_REC_INIT;
    sr_reg_entry re;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "A1", &h, &re), SR_OK);
    cr_assert_str_eq(re.vendor_id, "V1");
    cr_assert(re.disabled);
    cr_assert(sr_secret_verify("rotated-secret-42", re.secret_hash.data, re.secret_hash.len));
    sr_rec_close(&h);
    finish(e);
}

Test(setup_edit, a_hook_sees_the_built_events_and_may_take_or_refuse_them)
{
    sr_engine *e = setup();
    sr_result r;
    char field[32];
    size_t row, seen = 0;
    int taken = 0;
    static const char *const GCOLS[] = {"app", "datapoint", "access"};
    const char *rows[] = {"A1", "P2", "read", "A1", "P1", "both"};
    sr_setup_edit g = {.drop = SR_SHEET_S_GRANTS, .id = "A1", .must_exist_app = "A1", .section = "grants",
                       .cols = GCOLS, .ncols = 3, .vals = rows, .nrows = 2,
                       .hook = {hook_take, &seen, &taken}};
    uint64_t before = next_seq(e);
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    cr_assert(taken, "the hook took the change");
    cr_assert_eq(seen, 3, "the hook saw the command's events: P2 put, P1 changed, P* removed (got %zu)", seen);
    cr_assert_eq(r.count, 0);
    cr_assert_eq(next_seq(e), before, "a taken change is not stored");
    g.hook = (sr_setup_hook){hook_refuse, NULL, NULL};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row), SR_EINVAL);
    cr_assert_eq(next_seq(e), before, "a refused change is not stored");
    sr_reg_change ch = {.disabled = 1, .hook = {hook_take, &seen, &taken}};
    taken = 0;
    cr_assert_eq(sr_engine_registry_change(e, &ENV, SR_RG_APP, "A1", &ch, &r), SR_OK);
    cr_assert(taken && seen == 1);
    cr_assert_eq(next_seq(e), before);
    finish(e);
}

/* [retention] (issue #16): the sheet's periods become RG_RETENTION entries,
 * a listed section removes what it leaves out, the export writes them back;
 * an audit period below the hook's floor is refused with no fn (the offline
 * CLI: nothing stored, the line named) and handed to fn with *below_floor
 * set (the admin API's two-person rule); a period already stored is no
 * change; an edit (the admin API's one-entry changes) leaves them alone. */
static void periods_now(sr_engine *e, char *out, size_t cap)
{
    sr_rec h = SR_REC_INIT;
    sr_reg_entry re;
    out[0] = 0;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_RETENTION, &h), SR_OK);
    size_t l = 0;
    while (sr_rec_next_registry(&h, &re) == 1 && l < cap)
        l += (size_t)snprintf(out + l, cap - l, "%s=%u;", re.id, (unsigned)re.retention_days);
    sr_rec_close(&h);
}

static int import_text(sr_engine *e, const char *extra, const sr_setup_hook *hook, sr_result *r)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", SHEET, extra);
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(text, strlen(text), NULL, &sh), SR_OK);
    int rc = sr_engine_import_sheet_as(e, sh, &ENV, hook, r);
    sr_sheet_free(sh);
    return rc;
}

Test(setup_edit, retention_rows_import_remove_export_and_keep_the_audit_floor)
{
    sr_engine *e = setup();
    sr_result r;
    char now[256];
    sr_setup_hook floor = {.audit_floor_days = 365};
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,400\ndefault,30\nfiles,7\n", &floor, &r), SR_OK,
                 "%s", r.err.msg);
    cr_assert_eq(r.count, 3);
    periods_now(e, now, sizeof now);
    cr_assert_str_eq(now, "audit=400;default=30;files=7;");
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_engine_export_sheet(e, "op1", &out), SR_OK);
    const char *want = "[retention]\nclass,days\naudit,400\ndefault,30\nfiles,7\n";
    cr_assert(memmem(out.data, out.len, want, strlen(want)), "%.*s", (int)out.len, (const char *)out.data);
    sr_buf_release(&out);
    /* a section left out changes nothing; a listed one removes */
    cr_assert_eq(import_text(e, "", &floor, &r), SR_OK);
    cr_assert_eq(r.count, 0);
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,400\ndefault,60\n", &floor, &r), SR_OK);
    cr_assert_eq(r.count, 2);
    cr_assert(strstr(r.err.msg, "retention period files"), "%s", r.err.msg);
    periods_now(e, now, sizeof now);
    cr_assert_str_eq(now, "audit=400;default=60;");
    /* below the floor, no fn: refused naming the line, nothing stored */
    uint64_t before = next_seq(e);
    int below = 0;
    floor.below_floor = &below;
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,30\ndefault,61\n", &floor, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "line 30: [retention] audit,30 is below the audit floor of 365 days"), "%s",
              r.err.msg);
    cr_assert(below, "*below_floor is set");
    cr_assert_eq(next_seq(e), before, "nothing stored");
    /* 0 (for ever) is never below it */
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,0\ndefault,60\n", &floor, &r), SR_OK, "%s",
                 r.err.msg);
    /* with fn: handed over with *below_floor set (the two-person rule takes it) */
    size_t seen = 0;
    int taken = 0;
    below = 0;
    floor = (sr_setup_hook){hook_take, &seen, &taken, 365, &below};
    before = next_seq(e);
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,30\ndefault,60\n", &floor, &r), SR_OK);
    cr_assert(below && taken && seen == 1, "below %d taken %d seen %zu", below, taken, seen);
    cr_assert_eq(next_seq(e), before);
    /* stored already (approved): no change, not below anything */
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,30\ndefault,60\n", NULL, &r), SR_OK);
    below = 0;
    floor = (sr_setup_hook){.audit_floor_days = 365, .below_floor = &below};
    cr_assert_eq(import_text(e, "[retention]\nclass,days\naudit,30\ndefault,60\n", &floor, &r), SR_OK, "%s",
                 r.err.msg);
    cr_assert(!below && r.count == 0);
    /* an edit leaves the periods alone */
    char field[32];
    size_t row;
    sr_setup_edit fac = {.drop = SR_SHEET_S_FACILITIES, .id = "F9", .section = "facilities",
                         .cols = (const char *const[]){"id", "name"}, .ncols = 2,
                         .vals = (const char *const[]){"F9", "nine"}, .nrows = 1};
    cr_assert_eq(sr_engine_setup_edit(e, &ENV, &fac, &r, field, sizeof field, &row), SR_OK, "%s", r.err.msg);
    periods_now(e, now, sizeof now);
    cr_assert_str_eq(now, "audit=30;default=60;");
    finish(e);
}

/* The app's grants as "pattern/access;..." in id order. */
static void grants_now(sr_engine *e, char *out, size_t cap)
{
    sr_rec h = SR_REC_INIT;
    sr_reg_entry re;
    out[0] = 0;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &h), SR_OK);
    size_t l = 0;
    while (sr_rec_next_registry(&h, &re) == 1 && l < cap)
        l += (size_t)snprintf(out + l, cap - l, "%s/%s;", re.pattern, re.access);
    sr_rec_close(&h);
}

/* The k-th allocation of an edit fails, for every k until one runs without
 * a fault. The edit replaces an app's grants (removes two, adds one, or
 * back: three events in one command): it is answered SR_OK with all of it
 * stored, or refused with nothing stored (the engine reopened with the real
 * allocator shows which), never a mix. */
Test(setup_edit, allocation_failure_at_every_allocation_stores_all_or_nothing, .timeout = 600)
{
    fault_alloc_install(); /* before anything is opened */
    fault_alloc_arm(0);
    sr_engine *e = setup();
    static const char *const GCOLS[] = {"app", "datapoint", "access"};
    const char *lists[2][6] = {{"A1", "P2", "control"}, {"A1", "P1", "read", "A1", "P*", "both"}};
    const size_t nrows[2] = {1, 2};
    char want[2][128], cur[128];
    strcpy(want[0], "P2/control;");
    grants_now(e, want[1], sizeof want[1]); /* the sheet's: list 1 */
    cr_assert_str_eq(want[1], "P*/both;P1/read;");
    int next = 0; /* the list to put */
    unsigned long k;
    int refused = 0;
    for (k = 1; k < 100000; k++) {
        sr_setup_edit g = {.drop = SR_SHEET_S_GRANTS, .id = "A1", .must_exist_app = "A1", .section = "grants",
                           .cols = GCOLS, .ncols = 3, .vals = lists[next], .nrows = nrows[next]};
        sr_result r;
        char field[32];
        size_t row;
        fault_alloc_arm(k);
        int rc = sr_engine_setup_edit(e, &ENV, &g, &r, field, sizeof field, &row);
        int fired = fault_alloc_fired();
        fault_alloc_arm(0);
        if (rc) { /* a refusal: reopen (a writer that failed may be poisoned) and look */
            refused++;
            cr_assert(rc == SR_ENOMEM || rc == SR_EPOISONED, "k=%lu: refused with %s: %s", k, sr_err_name(rc),
                      r.err.msg);
            int crc = sr_engine_close(e);
            cr_assert(crc == SR_OK || crc == SR_EPOISONED, "k=%lu: close: %s", k, sr_err_name(crc));
            sr_errinfo ei;
            cr_assert_eq(sr_engine_open(dir, &OPTS, &e, &ei), SR_OK, "k=%lu: reopen: %s", k, ei.msg);
        }
        grants_now(e, cur, sizeof cur);
        cr_assert_str_eq(cur, want[rc == SR_OK ? next : 1 - next], "k=%lu: rc %s: the grants are %s", k,
                         sr_err_name(rc), cur);
        if (rc == SR_OK) next = 1 - next;
        if (!fired) {
            cr_assert_eq(rc, SR_OK, "k=%lu: no fault, yet refused: %s", k, r.err.msg);
            break;
        }
    }
    cr_log_info("setup edit under ENOMEM: %lu runs, %d refused", k, refused);
    cr_assert_gt(k, 10);
    cr_assert_gt(refused, 0);
    finish(e);
    fault_alloc_uninstall();
}
