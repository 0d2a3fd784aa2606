/* tests/engine/test_audit.c -- the audit trail's index (engine/audit.c,
 * `audit` in engine/schema.h; engine/records.h sr_list_audit): one row per
 * event of the trail with names, not numbers; none for the data kinds nor
 * for an event the engine refused; the filters (time window, operator,
 * actor, actor kind, kinds), the limit and the cursor in both orders; no
 * secret in a row; the rows of a rebuilt index equal the written ones. */
#include "engine/records.h"

#include "codecs/accpack.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};

static sr_engine *open_engine(void) { return es_open(&dir, "audit", &OPTS); }
static void finish(sr_engine *e) { es_finish(e, &dir); }

/* submit the one event a builder appended to b; the engine's answer */
static int submit1(sr_engine *e, int built, sr_buf *b)
{
    sr_result r;
    return es_submit1(e, built, b, &r);
}

/* a login (ok) or failed login of an app of op from source */
static void auth(sr_engine *e, const char *op, const char *app, int ok, const char *source)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, app, SR_ACTOR_APP, NULL, source};
    cr_assert_eq(submit1(e, sr_cmd_auth(&env, SR_ACTOR_APP, app, ok, "password", ok ? "" : "bad secret", &b), &b),
                 SR_OK);
}

/* the rows of q, as "kind actor op" lines joined by '|' */
static void rows(sr_engine *e, const sr_audit_query *q, char *out, size_t cap, int *more, sr_audit_rec *last)
{
    sr_rec r = SR_REC_INIT;
    cr_assert_eq(sr_list_audit(e, q, &r, more), SR_OK);
    sr_audit_rec a;
    size_t n = 0;
    out[0] = 0;
    int k;
    while ((k = sr_rec_next_audit(&r, &a)) == 1) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s %s %s", n ? "|" : "", a.kind, a.actor, a.op[0] ? a.op : "-");
        if (last) *last = a;
    }
    cr_assert_eq(k, 0);
    if (last) { /* keep the strings out of the holder's memory: only seq and ms are used */
        last->op = last->actor = last->source = last->kind = last->action = last->target = last->outcome =
            last->detail = "";
    }
    sr_rec_close(&r);
}

Test(audit, rows_name_who_what_where_and_the_outcome)
{
    sr_engine *e = open_engine();
    auth(e, "op1", "app1", 0, "192.0.2.1");
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env uenv = {"op1", "root", SR_ACTOR_USER, NULL, "198.51.100.7:5000"};
    sr_user u = {.id = "hanako", .scope = SR_US_OPERATOR, .scope_id = "op1",
                 .roles = (const char *const[]){"operator_admin"}, .n_roles = 1};
    char why[128];
    cr_assert_eq(submit1(e, sr_cmd_user_create(&uenv, &u, "long enough password", 1, 1, &ES_POL, &b, why, sizeof why), &b),
                 SR_OK);
    sr_buf_init(&b);
    sr_admin_op ao = {.method = "DELETE", .route = "/admin/v1/users/{userId}", .target = "user:hanako",
                      .action = "users.manage", .outcome = "refused", .code = "E2003",
                      .message = "users.manage refused to operator_general", .status = 403};
    cr_assert_eq(submit1(e, sr_cmd_admin_op(&uenv, &ao, &b), &b), SR_OK);
    sr_buf_init(&b);
    sr_cmd_env denv = {"op1", "app1", SR_ACTOR_APP, NULL, NULL};
    sr_result dr; /* a data write: its row is its group's write summary (WriteAudit, issue #18) */
    cr_assert_eq(es_submit1(e, sr_cmd_doc_put(&denv, "c", "d", 0, "{}", 2, &b), &b, &dr), SR_OK, "%s", dr.err.msg);
    sr_buf_init(&b); /* refused by the engine (exists): no row */
    cr_assert_neq(submit1(e, sr_cmd_user_create(&uenv, &u, "long enough password", 1, 1, &ES_POL, &b, why, sizeof why), &b),
                  SR_OK);

    sr_audit_query q = {.limit = 10};
    sr_rec r = SR_REC_INIT;
    int more = -1;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 4, "the trail has the login, the user, the admin event and the write's summary, nothing else");
    cr_assert_eq(more, 0);
    sr_audit_rec a;
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "login_failed");
    cr_assert_str_eq(a.actor, "app1");
    cr_assert_eq(a.actor_kind, SR_ACTOR_APP);
    cr_assert_str_eq(sr_actor_kind_name(a.actor_kind), "app");
    cr_assert_str_eq(a.source, "192.0.2.1");
    cr_assert_str_eq(a.outcome, "refused");
    cr_assert_str_eq(a.action, "password");
    cr_assert_str_eq(a.target, "app:app1");
    cr_assert_str_eq(a.detail, "bad secret");
    cr_assert_gt(a.ms, 1700000000000);
    uint64_t s1 = a.seq;
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "user");
    cr_assert_str_eq(a.action, "created");
    cr_assert_str_eq(a.target, "user:hanako");
    cr_assert_str_eq(a.actor, "root");
    cr_assert_str_eq(a.source, "198.51.100.7:5000");
    cr_assert_str_eq(a.detail, "roles: operator_admin");
    cr_assert_eq(a.seq, s1 + 1);
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "admin");
    cr_assert_str_eq(a.action, "DELETE /admin/v1/users/{userId}");
    cr_assert_str_eq(a.target, "user:hanako");
    cr_assert_str_eq(a.outcome, "refused");
    cr_assert_str_eq(a.detail, "users.manage; E2003 users.manage refused to operator_general");
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "write");
    cr_assert_str_eq(a.actor, "app1");
    cr_assert_eq(a.actor_kind, SR_ACTOR_APP);
    cr_assert_str_eq(a.op, "op1");
    cr_assert_str_eq(a.action, "doc_put x1");
    cr_assert_str_eq(a.target, "app:app1");
    cr_assert_str_eq(a.outcome, "ok");
    char want[128];
    snprintf(want, sizeof want, "1 write(s), 1 value(s), seq %llu..%llu; 1 data point(s): document:c/d",
             (unsigned long long)dr.seq, (unsigned long long)dr.seq);
    cr_assert_str_eq(a.detail, want);
    cr_assert_eq(a.seq, dr.seq + 1, "right after the write, in its group");
    cr_assert_eq(sr_rec_next_audit(&r, &a), 0);
    sr_rec_close(&r);
    finish(e);
}

/* ---- reads (AccessEvent, issue #18; api/access.c batches them) ---------- */

/* one batch of reader (op, kind, actor): n entries, entry i answered unless
 * refused[i] (its code) */
static int access_batch(sr_engine *e, const char *op, sr_actor_kind kind, const char *actor, size_t n,
                        const char *const *refused)
{
    sr_access_entry en[8];
    cr_assert_leq(n, 8);
    for (size_t i = 0; i < n; i++) {
        int bad = refused && refused[i];
        en[i] = (sr_access_entry){.time_ms = 1700000000000 + (int64_t)i, .binding = "apif-http", .method = "GET",
                                  .route = i % 2 ? "/api/v1/stored-values" : "/api/v1/stored-values/latest",
                                  .npoints_listed = 2, .npoints = 2, .values = bad ? 0 : 3, .bytes = 100,
                                  .status = bad ? 403 : 200, .code = bad ? refused[i] : "", .source = "192.0.2.9:4000"};
        en[i].points[0] = i % 2 ? "P2" : "P1";
        en[i].points[1] = "P3";
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, actor, kind, NULL, "192.0.2.9:4000"};
    return submit1(e, sr_cmd_access(&env, en, n, &b), &b);
}

Test(audit, access_batch_is_one_read_row_with_its_counts_and_points)
{
    sr_engine *e = open_engine();
    const char *const refused[] = {NULL, NULL, "E2003"};
    cr_assert_eq(access_batch(e, "op1", SR_ACTOR_APP, "app1", 3, refused), SR_OK);
    cr_assert_eq(access_batch(e, "op1", SR_ACTOR_GATEWAY, "gw1", 1, NULL), SR_OK);
    cr_assert_eq(access_batch(e, "op2", SR_ACTOR_APP, "app9", 2, NULL), SR_OK);
    /* the engine refuses what is not a reader's batch */
    cr_assert_eq(access_batch(e, "op1", SR_ACTOR_USER, "root", 1, NULL), SR_EINVAL);
    cr_assert_eq(access_batch(e, "", SR_ACTOR_APP, "app1", 1, NULL), SR_EINVAL);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"op1", "app1", SR_ACTOR_APP, NULL, NULL};
    cr_assert_eq(sr_cmd_access(&env, NULL, 0, &b), SR_EINVAL, "an empty batch is not built");

    /* by kind, actor, operator: one row per batch */
    sr_audit_query q = {.limit = 10, .kind = "read", .actor = "app1"};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 1);
    sr_audit_rec a;
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "read");
    cr_assert_str_eq(a.op, "op1");
    cr_assert_eq(a.actor_kind, SR_ACTOR_APP);
    cr_assert_str_eq(a.target, "app:app1");
    cr_assert_str_eq(a.source, "192.0.2.9:4000");
    cr_assert_str_eq(a.outcome, "partly refused");
    cr_assert_str_eq(a.action, "GET /api/v1/stored-values/latest, GET /api/v1/stored-values");
    cr_assert_str_eq(a.detail, "3 request(s), 2 answered, 1 refused (E2003 x1); 6 value(s), 300 byte(s); 6 data "
                               "point(s): P1,P3,P2");
    sr_rec_close(&r);
    char out[512];
    q = (sr_audit_query){.limit = 10, .kind = "read"};
    rows(e, &q, out, sizeof out, &more, NULL);
    cr_assert_str_eq(out, "read app1 op1|read gw1 op1|read app9 op2");
    q = (sr_audit_query){.limit = 10, .kind = "read", .op = "op1", .actor_kind = SR_ACTOR_GATEWAY};
    rows(e, &q, out, sizeof out, &more, NULL);
    cr_assert_str_eq(out, "read gw1 op1");

    /* the rebuilt index has the same rows (a function of the log) */
    char before[512];
    q = (sr_audit_query){.limit = 10};
    rows(e, &q, before, sizeof before, &more, NULL);
    e = es_rebuilt(e, &dir, &OPTS);
    rows(e, &q, out, sizeof out, &more, NULL);
    cr_assert_str_eq(out, before);
    finish(e);
}

/* the entries of access_batch, packed (AccessBatch, Event.body 50: what
 * api/access.c writes since issue #18's cost fix), through the builder */
static int access_batch_packed(sr_engine *e, const char *op, sr_actor_kind kind, const char *actor, size_t n,
                               const char *const *refused, sr_buf *packed)
{
    sr_apk pk;
    sr_apk_init(&pk);
    for (size_t i = 0; i < n; i++) {
        int bad = refused && refused[i];
        uint16_t refs[2] = {(uint16_t)sr_apk_str(&pk, i % 2 ? "P2" : "P1", 2), (uint16_t)sr_apk_str(&pk, "P3", 2)};
        const char *route = i % 2 ? "/api/v1/stored-values" : "/api/v1/stored-values/latest";
        sr_apk_entry en = {.time_ms = 1700000000000 + (int64_t)i, .binding = (uint16_t)sr_apk_static(&pk, "apif-http"),
                           .method = (uint16_t)sr_apk_static(&pk, "GET"), .route = (uint16_t)sr_apk_static(&pk, route),
                           .source = (uint16_t)sr_apk_str(&pk, "192.0.2.9:4000", 14),
                           .code = bad ? (uint16_t)sr_apk_str(&pk, refused[i], strlen(refused[i])) : SR_APK_NONE,
                           .status = bad ? 403 : 200, .npl = 2, .npoints = 2, .values = bad ? 0 : 3, .bytes = 100};
        cr_assert_eq(sr_apk_add(&pk, &en, refs), SR_OK);
    }
    packed->len = 0;
    cr_assert_eq(sr_apk_finish(&pk, packed), SR_OK);
    sr_apk_release(&pk);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, actor, kind, NULL, "192.0.2.9:4000"};
    return submit1(e, sr_cmd_access_batch(&env, packed->data, packed->len, &b), &b);
}

/* the row of the read of (op, actor) at list position i, as one line */
static void read_row(sr_engine *e, const char *actor, size_t i, char *out, size_t cap)
{
    sr_audit_query q = {.limit = 10, .kind = "read", .actor = actor};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    sr_audit_rec a;
    for (size_t k = 0; k <= i; k++) cr_assert_eq(sr_rec_next_audit(&r, &a), 1, "row %zu of %s", k, actor);
    snprintf(out, cap, "%s|%s|%d|%s|%s|%s|%s|%s", a.kind, a.op, (int)a.actor_kind, a.target, a.source, a.outcome,
             a.action, a.detail);
    sr_rec_close(&r);
}

/* Issue #18 (the read audit's cost): a batch written packed lists exactly
 * as the same batch in the old form (AccessEvent, body 48, written by the
 * old encoder path sr_cmd_access), both live and after a rebuild (the
 * replay of a log that holds both forms); a malformed packed batch is
 * refused by the writer and has no row. */
Test(audit, packed_access_batch_lists_as_the_old_form_and_old_logs_still_list)
{
    sr_engine *e = open_engine();
    const char *const refused[] = {NULL, NULL, "E2003"};
    sr_buf pk;
    sr_buf_init(&pk);
    cr_assert_eq(access_batch(e, "op1", SR_ACTOR_APP, "appold", 3, refused), SR_OK);
    cr_assert_eq(access_batch_packed(e, "op1", SR_ACTOR_APP, "appnew", 3, refused, &pk), SR_OK);
    cr_assert_eq(access_batch_packed(e, "op1", SR_ACTOR_USER, "root", 1, NULL, &pk), SR_EINVAL, "a reader's only");
    char old[1024], neu[1024];
    read_row(e, "appold", 0, old, sizeof old);
    read_row(e, "appnew", 0, neu, sizeof neu);
    cr_assert_str_eq(old, "read|op1|3|app:appold|192.0.2.9:4000|partly refused|GET /api/v1/stored-values/latest, GET "
                          "/api/v1/stored-values|3 request(s), 2 answered, 1 refused (E2003 x1); 6 value(s), 300 "
                          "byte(s); 6 data point(s): P1,P3,P2");
    char want[1024];
    snprintf(want, sizeof want, "%s", old);
    memcpy(strstr(want, "app:appold") + 4, "appnew", 6); /* the only difference: the reader */
    cr_assert_str_eq(neu, want);
    /* malformed packed bytes: cut, a string index out of range */
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"op1", "appbad", SR_ACTOR_APP, NULL, ""};
    cr_assert_eq(submit1(e, sr_cmd_access_batch(&env, pk.data, pk.len - 1, &b), &b), SR_EINVAL);
    pk.data[pk.len - 1] = 0xFF; /* the last entry's last varint never ends */
    cr_assert_eq(submit1(e, sr_cmd_access_batch(&env, pk.data, pk.len, &b), &b), SR_EINVAL);
    sr_audit_query q = {.limit = 10, .kind = "read", .actor = "appbad"};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 0, "a refused batch has no row");
    sr_rec_close(&r);
    /* the replay of the log (both forms) lists the same */
    e = es_rebuilt(e, &dir, &OPTS);
    char again[1024];
    read_row(e, "appold", 0, again, sizeof again);
    cr_assert_str_eq(again, old);
    read_row(e, "appnew", 0, again, sizeof again);
    cr_assert_str_eq(again, neu);
    sr_buf_release(&pk);
    finish(e);
}

/* entries en[0..n) written in both forms, by readers "<tag>old" and
 * "<tag>new" of op1: the packed one built from the same entries (strings
 * interned as api/access.c does) */
static void both_forms(sr_engine *e, const char *tag, const sr_access_entry *en, size_t n)
{
    char ao[32], an[32];
    snprintf(ao, sizeof ao, "%sold", tag);
    snprintf(an, sizeof an, "%snew", tag);
    sr_buf b, pkb;
    sr_buf_init(&b);
    sr_buf_init(&pkb);
    sr_cmd_env env = {"op1", ao, SR_ACTOR_APP, NULL, "192.0.2.9"};
    cr_assert_eq(submit1(e, sr_cmd_access(&env, en, n, &b), &b), SR_OK);
    sr_apk pk;
    sr_apk_init(&pk);
    for (size_t i = 0; i < n; i++) {
        uint16_t refs[SR_APK_POINTS_MAX];
        for (size_t k = 0; k < en[i].npoints_listed; k++)
            refs[k] = (uint16_t)sr_apk_str(&pk, en[i].points[k], strlen(en[i].points[k]));
        sr_apk_entry x = {.time_ms = en[i].time_ms, .binding = (uint16_t)sr_apk_static(&pk, en[i].binding),
                          .method = (uint16_t)sr_apk_static(&pk, en[i].method),
                          .route = (uint16_t)sr_apk_static(&pk, en[i].route),
                          .source = (uint16_t)sr_apk_str(&pk, en[i].source, strlen(en[i].source)),
                          .code = en[i].code[0] ? (uint16_t)sr_apk_str(&pk, en[i].code, strlen(en[i].code)) : SR_APK_NONE,
                          .status = (uint16_t)en[i].status, .npl = (uint16_t)en[i].npoints_listed,
                          .npoints = en[i].npoints, .values = en[i].values, .bytes = en[i].bytes};
        cr_assert_eq(sr_apk_add(&pk, &x, refs), SR_OK);
    }
    cr_assert_eq(sr_apk_finish(&pk, &pkb), SR_OK);
    sr_apk_release(&pk);
    env.actor = an;
    cr_assert_eq(submit1(e, sr_cmd_access_batch(&env, pkb.data, pkb.len, &b), &b), SR_OK);
    sr_buf_release(&pkb);
    char old[1024], neu[1024];
    read_row(e, ao, 0, old, sizeof old);
    read_row(e, an, 0, neu, sizeof neu);
    char *o = strstr(old, ao), *w = strstr(neu, an);
    cr_assert(o && w);
    cr_assert_str_eq(w + strlen(an), o + strlen(ao), "%s: packed\n%s\nold\n%s", tag, neu, old);
}

/* the packed row equals the old one where the row is cut: more points than
 * its room, more than 64, points not listed, more than 8 routes and codes,
 * and a poll of the same points */
Test(audit, packed_rows_equal_old_rows_at_every_cut)
{
    sr_engine *e = open_engine();
    enum { N = 120 };
    static sr_access_entry en[N];
    static char pts[N][4][40];
    static const char *const routes[] = {"/r0", "/r1", "/r2", "/r3", "/r4", "/r5", "/r6", "/r7", "/r8", "/r9"};
    static const char *const codes[] = {"E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10"};
    for (int shape = 0; shape < 4; shape++) {
        for (int i = 0; i < N; i++) {
            en[i] = (sr_access_entry){.time_ms = 1700000000000 + i * (shape == 3 ? 1000 : 1), .binding = "apif-http",
                                      .method = i % 3 ? "GET" : "POST", .route = routes[i % 10], .values = (uint64_t)i,
                                      .bytes = 10 + (uint64_t)i, .status = i % 4 ? 200 : 403,
                                      .code = i % 4 ? "" : codes[i % 10], .source = "192.0.2.9"};
            int np = shape == 0 ? 4 : shape == 1 ? 1 : shape == 2 ? 2 : 1;
            en[i].npoints_listed = (size_t)np;
            en[i].npoints = (uint32_t)np + (shape == 2 && i == 5 ? 3 : 0);
            for (int k = 0; k < np; k++) {
                if (shape == 0) snprintf(pts[i][k], sizeof pts[i][k], "a-rather-long-point-name-%03d-%d", i, k);
                else if (shape == 1) snprintf(pts[i][k], sizeof pts[i][k], "P%03d", i); /* > 64 distinct */
                else if (shape == 2) snprintf(pts[i][k], sizeof pts[i][k], "Q%d", (i / 2 + k) % 7);
                else snprintf(pts[i][k], sizeof pts[i][k], "P001"); /* one point polled */
                en[i].points[k] = pts[i][k];
            }
        }
        char tag[8];
        snprintf(tag, sizeof tag, "s%d", shape);
        both_forms(e, tag, en, N);
    }
    finish(e);
}

/* refused writes and controls (issue #18, docs/admin.md "Refusals"): a
 * batch of one code is a "refused" row whose outcome is the code; a batch
 * of mixed codes or of answered entries is not built, nor taken */
Test(audit, refusals_batch_is_one_refused_row_with_its_code)
{
    sr_engine *e = open_engine();
    sr_access_entry en[2];
    for (int i = 0; i < 2; i++) {
        en[i] = (sr_access_entry){.time_ms = 1700000000000 + i, .binding = "gwif-mqtt", .method = "PUBLISH",
                                  .route = "data/measurements", .npoints_listed = 1, .npoints = 1, .status = 422,
                                  .code = "E5003", .source = "192.0.2.7:5000"};
        en[i].points[0] = "PX1";
    }
    sr_cmd_env env = {"op1", "gw1", SR_ACTOR_GATEWAY, NULL, "192.0.2.7:5000"};
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(submit1(e, sr_cmd_refusals(&env, en, 2, 5, &b), &b), SR_OK);
    en[1].code = "E5001";
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_refusals(&env, en, 2, 0, &b), SR_EINVAL, "one code per batch");
    en[1].code = "";
    cr_assert_eq(sr_cmd_refusals(&env, en, 2, 0, &b), SR_EINVAL, "an answered entry is no refusal");
    sr_buf_release(&b);
    sr_audit_query q = {.limit = 10, .kind = "refused"};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 1);
    sr_audit_rec a;
    cr_assert_eq(sr_rec_next_audit(&r, &a), 1);
    cr_assert_str_eq(a.kind, "refused");
    cr_assert_str_eq(a.outcome, "E5003");
    cr_assert_str_eq(a.target, "gateway:gw1");
    cr_assert_str_eq(a.action, "PUBLISH data/measurements");
    cr_assert_str_eq(a.detail, "2 refused (+5 more of this code not listed: the bound) from 192.0.2.7:5000; 2 data "
                               "point(s): PX1");
    sr_rec_close(&r);
    q = (sr_audit_query){.limit = 10, .kind = "read"};
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 0, "a batch of refusals is not a read");
    sr_rec_close(&r);
    finish(e);
}

Test(audit, no_secret_in_a_row)
{
    sr_engine *e = open_engine();
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
    sr_user u = {.id = "hanako", .scope = SR_US_PLATFORM, .roles = (const char *const[]){"auditor"}, .n_roles = 1};
    char why[128];
    cr_assert_eq(submit1(e, sr_cmd_user_create(&env, &u, "a secret password", 1, 1, &ES_POL, &b, why, sizeof why), &b),
                 SR_OK);
    sr_rec h = SR_REC_INIT;
    sr_user got;
    cr_assert_eq(sr_read_user(e, "hanako", &h, &got), SR_OK);
    cr_assert_gt(got.password_hash.len, 16);
    sr_buf raw;
    sr_buf_init(&raw);
    size_t n = 0;
    int more = 0;
    sr_audit_query q = {.limit = 10};
    cr_assert_eq(sr_engine_audit_list(e, &q, &raw, &n, &more), SR_OK);
    cr_assert_eq(n, 1);
    /* the hash's bytes (past its parameters) appear nowhere in the row */
    const uint8_t *tail = got.password_hash.data + got.password_hash.len - 16;
    for (size_t i = 0; i + 16 <= raw.len; i++) cr_assert_neq(memcmp(raw.data + i, tail, 16), 0);
    sr_buf_release(&raw);
    sr_rec_close(&h);
    finish(e);
}

Test(audit, filters_limit_and_cursor)
{
    sr_engine *e = open_engine();
    auth(e, "op1", "a1", 0, "192.0.2.1");
    auth(e, "op2", "a2", 0, "192.0.2.2");
    auth(e, "op1", "a1", 1, "192.0.2.1");
    auth(e, "op1", "a3", 0, "192.0.2.3");
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env genv = {"op1", "g1", SR_ACTOR_GATEWAY, NULL, "192.0.2.9:1883"};
    cr_assert_eq(submit1(e, sr_cmd_session(&genv, SR_ACTOR_GATEWAY, "g1", SR_SS_DISCONNECTED, "mqtt", "closed", &b), &b),
                 SR_OK);
    char got[512];
    int more;
    sr_audit_query q = {.limit = 10, .op = "op1"};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "login_failed a1 op1|login a1 op1|login_failed a3 op1|logout g1 op1");
    q = (sr_audit_query){.limit = 10, .actor = "a1"};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "login_failed a1 op1|login a1 op1");
    q = (sr_audit_query){.limit = 10, .kind = "login_failed"};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "login_failed a1 op1|login_failed a2 op2|login_failed a3 op1");
    q = (sr_audit_query){.limit = 10, .kind = "login,logout"};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "login a1 op1|logout g1 op1");
    q = (sr_audit_query){.limit = 10, .actor_kind = SR_ACTOR_GATEWAY};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "logout g1 op1");
    /* a time window after everything: nothing; before everything: nothing */
    q = (sr_audit_query){.limit = 10, .from_ms = INT64_C(253402300799999)};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "");
    q = (sr_audit_query){.limit = 10, .to_ms = 1000};
    rows(e, &q, got, sizeof got, &more, NULL);
    cr_assert_str_eq(got, "");
    /* pages of two, oldest first, then newest first */
    sr_audit_rec last;
    q = (sr_audit_query){.limit = 2};
    rows(e, &q, got, sizeof got, &more, &last);
    cr_assert_str_eq(got, "login_failed a1 op1|login_failed a2 op2");
    cr_assert_eq(more, 1);
    q.after_ms = last.ms;
    q.after_seq = last.seq;
    rows(e, &q, got, sizeof got, &more, &last);
    cr_assert_str_eq(got, "login a1 op1|login_failed a3 op1");
    cr_assert_eq(more, 1);
    q.after_ms = last.ms;
    q.after_seq = last.seq;
    rows(e, &q, got, sizeof got, &more, &last);
    cr_assert_str_eq(got, "logout g1 op1");
    cr_assert_eq(more, 0);
    q = (sr_audit_query){.limit = 3, .newest_first = 1};
    rows(e, &q, got, sizeof got, &more, &last);
    cr_assert_str_eq(got, "logout g1 op1|login_failed a3 op1|login a1 op1");
    cr_assert_eq(more, 1);
    q.after_ms = last.ms;
    q.after_seq = last.seq;
    rows(e, &q, got, sizeof got, &more, &last);
    cr_assert_str_eq(got, "login_failed a2 op2|login_failed a1 op1");
    cr_assert_eq(more, 0);
    finish(e);
}

Test(audit, rebuilt_rows_equal_the_written_ones)
{
    sr_engine *e = open_engine();
    auth(e, "op1", "a1", 0, "192.0.2.1");
    auth(e, "op1", "a1", 1, "192.0.2.1");
    char before[512], after[512];
    int more;
    sr_audit_query q = {.limit = 10};
    rows(e, &q, before, sizeof before, &more, NULL);
    e = es_rebuilt(e, &dir, &OPTS);
    rows(e, &q, after, sizeof after, &more, NULL);
    cr_assert_str_eq(after, before);
    cr_assert_str_eq(after, "login_failed a1 op1|login a1 op1");
    finish(e);
}
