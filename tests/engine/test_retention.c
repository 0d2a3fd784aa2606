/* tests/engine/test_retention.c -- engine/retention.c (issue #16, R-ST-6;
 * docs/retention.md): the periods (RG_RETENTION entries over the defaults,
 * a data point's class), the Retention event's apply per kind of data
 * (chunks, latest rows, audit rows, message ids; documents, files and
 * their blobs, requests, monitors by their write times), operator B
 * untouched, a
 * sweep in bounded events, the event's checks, and a rebuild equal to the
 * live index after retention. */
#include "engsuite.h"

#include "codecs/events.pb-c.h"

static char *dir;
static _Atomic int64_t clock_now;
static int64_t test_clock(void) { return clock_now; }

enum { DAY = 86400000 };
static const sr_vtype NUM[] = {SR_VT_NUMBER};

static sr_engine_opts opts(void)
{
    sr_engine_opts o = {.clock_ms = test_clock, .head_max = 4, .sync = SR_ENGINE_SYNC_NONE};
    return o;
}

/* a data point "C%d" of op with retention class cls ("" none), under D-GW1 */
static void class_point(sr_engine *e, const char *op, const char *id, const char *cls, int want)
{
    Suiro__V1__MasterPut p = SUIRO__V1__MASTER_PUT__INIT;
    p.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    p.id = (char *)id;
    p.parent_id = "D-GW1";
    p.type = SUIRO__V1__VALUE_TYPE__VT_NUMBER;
    p.point_kind = SUIRO__V1__POINT_KIND__PK_MEASURE;
    p.retention_class = (char *)cls;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.operator_id = (char *)op;
    ev.actor = "admin";
    ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_USER;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = &p;
    uint8_t b[512];
    size_t n = protobuf_c_message_pack(&ev.base, b);
    sr_slice sl = {b, n};
    sr_result r;
    int rc = sr_engine_submit_wait(e, &sl, 1, &r);
    cr_assert_eq(rc ? rc : r.rc, want, "%s: %s", id, r.err.msg);
}

static uint32_t point_of(sr_engine *e, const char *op, const char *id)
{
    uint32_t pt;
    cr_assert_eq(sr_engine_point(e, op, id, &pt, NULL), SR_OK);
    return pt;
}

/* n values of point pt at day d0 + i/10 */
static void put_days(sr_engine *e, const char *op, uint32_t pt, double d0, int n, const char *msgid)
{
    uint32_t p1;
    cr_assert_eq(sr_engine_point(e, op, "P001", &p1, NULL), SR_OK);
    const char *gw = pt == p1 ? "GW2" : "GW1"; /* et_setup_masters: P001 is on D-GW2 */
    sr_sample *s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++) {
        s[i].ts = (int64_t)(d0 * DAY) + (int64_t)i * (DAY / 10);
        s[i].v.f = i;
    }
    sr_result r;
    /* 4 values an event: with head_max 4, a chunk each (a head flushes after an event) */
    for (int i = 0; i < n; i += 4) {
        int rc = et_put(e, op, gw, pt, SR_VT_NUMBER, s + i, (size_t)(n - i < 4 ? n - i : 4), msgid, &r);
        cr_assert_eq(rc, SR_OK, "%s %u: %d %s", op, pt, rc, r.err.msg);
        cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    }
    free(s);
}

static size_t count_range(sr_engine *e, uint32_t pt, int64_t from, int64_t to)
{
    sr_buf s;
    sr_buf_init(&s);
    sr_range_q q = {pt, from, to, 0, 0, INT64_MIN};
    int more;
    cr_assert_eq(sr_engine_range(e, &q, &s, NULL, &more), SR_OK);
    size_t n = s.len / sizeof(sr_sample);
    sr_buf_release(&s);
    return n;
}

static int has_latest(sr_engine *e, uint32_t pt)
{
    sr_sample out;
    int found = 0;
    cr_assert_eq(sr_engine_latest(e, &pt, 1, &out, &found, NULL), SR_OK);
    return found;
}

static int period(sr_engine *e, const char *op, const char *cls, uint32_t days)
{
    sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = cls, .retention_days = days};
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    return es_submit1(e, sr_cmd_registry_put(&env, &re, &b), &b, &r);
}

static size_t audit_rows(sr_engine *e, const char *op, int64_t before)
{
    sr_audit_query q = {.from_ms = INT64_MIN, .to_ms = before, .op = op, .limit = 100000};
    sr_buf out;
    sr_buf_init(&out);
    size_t n = 0;
    int more;
    cr_assert_eq(sr_engine_audit_list(e, &q, &out, &n, &more), SR_OK);
    sr_buf_release(&out);
    return n;
}

/* op1 and op2 each: P000 ("default" class), C-short (class "short") and
 * C-keep (class "keep"); values on days 1-10 (old) and 399 (new) at clock
 * day 400 */
static sr_engine *setup(void)
{
    clock_now = (int64_t)400 * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = es_open(&dir, "retention", &o);
    const char *ops[2] = {"op1", "op2"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(et_setup_masters(e, ops[i], 2, NUM, 1), 0);
        class_point(e, ops[i], "C-short", "short", SR_OK);
        class_point(e, ops[i], "C-keep", "keep", SR_OK);
        const char *ids[3] = {"P000", "C-short", "C-keep"};
        for (int j = 0; j < 3; j++) {
            uint32_t pt = point_of(e, ops[i], ids[j]);
            put_days(e, ops[i], pt, 1, 40, NULL);   /* days 1 to 4.9: 10 full chunks */
            put_days(e, ops[i], pt, 399, 4, NULL);  /* a new chunk */
        }
        /* P001: only old values, so its latest row is old too */
        put_days(e, ops[i], point_of(e, ops[i], "P001"), 2, 8, NULL);
    }
    return e;
}

static sr_retention_cfg CFG = {.default_days = 0, .audit_days = 0, .audit_floor_days = 365, .batch = 3};

Test(retention, a_period_cuts_old_chunks_and_latest_of_its_operator_and_class_only)
{
    sr_engine *e = setup();
    /* op1: its default class 30 days, "short" 100 days, "keep" forever (0) */
    cr_assert_eq(period(e, "op1", "default", 30), SR_OK);
    cr_assert_eq(period(e, "op1", "short", 100), SR_OK);
    cr_assert_eq(period(e, "op1", "keep", 0), SR_OK);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 10 + 10 + 2, "P000 and C-short: 10 old chunks each; P001 2 (%llu)",
                 (unsigned long long)rep.chunks);
    cr_assert_gt(rep.events, 3, "batch 3: the sweep is several events (%llu)", (unsigned long long)rep.events);
    const char *gone[3] = {"P000", "C-short", "P001"};
    for (int j = 0; j < 3; j++) {
        uint32_t pt = point_of(e, "op1", gone[j]);
        cr_assert_eq(count_range(e, pt, 0, (int64_t)300 * DAY), 0, "op1 %s: the old values are gone", gone[j]);
    }
    cr_assert_eq(count_range(e, point_of(e, "op1", "P000"), (int64_t)300 * DAY, INT64_MAX), 4, "new ones stay");
    cr_assert(has_latest(e, point_of(e, "op1", "P000")), "a new latest stays");
    cr_assert(!has_latest(e, point_of(e, "op1", "P001")), "an old latest goes");
    cr_assert_eq(count_range(e, point_of(e, "op1", "C-keep"), 0, (int64_t)300 * DAY), 40, "class keep: kept");
    /* operator op2 has no periods: untouched */
    const char *all[4] = {"P000", "C-short", "C-keep", "P001"};
    for (int j = 0; j < 4; j++) {
        uint32_t pt = point_of(e, "op2", all[j]);
        cr_assert_eq(count_range(e, pt, 0, (int64_t)300 * DAY), j == 3 ? 8 : 40, "op2 %s untouched", all[j]);
        cr_assert(has_latest(e, pt));
    }
    /* a second sweep finds nothing */
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 0);
    e = es_rebuilt(e, &dir, &(sr_engine_opts){.clock_ms = test_clock, .head_max = 4, .sync = SR_ENGINE_SYNC_NONE});
    cr_assert_eq(count_range(e, point_of(e, "op1", "P000"), 0, (int64_t)300 * DAY), 0, "after a rebuild");
    es_finish(e, &dir);
}

Test(retention, the_default_days_apply_without_a_registry_entry_and_a_straddling_chunk_waits)
{
    sr_engine *e = setup();
    /* no registry entry: the configured default, 397 days: the cut at day 3 */
    sr_retention_cfg c = CFG;
    c.default_days = 397;
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &c, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    uint32_t pt = point_of(e, "op2", "P000");
    /* chunks of 4 values 0.1 day apart: days 1.0-1.3, 1.4-1.7, ..., 2.6-2.9 wholly before day 3; 3.0-3.3 on */
    size_t left = count_range(e, pt, 0, (int64_t)300 * DAY);
    cr_assert_eq(left, 40 - 20, "the 5 chunks wholly before day 3 went (%zu left)", left);
    cr_assert_eq(count_range(e, pt, 0, (int64_t)3 * DAY), 0);
    es_finish(e, &dir);
}

Test(retention, audit_rows_past_the_audit_period_go_for_that_operator)
{
    sr_engine *e = setup(); /* the masters' audit rows are at day 400 */
    size_t op1 = audit_rows(e, "op1", 0), op2 = audit_rows(e, "op2", 0);
    cr_assert_gt(op1, 0);
    clock_now = (int64_t)500 * DAY;
    cr_assert_eq(period(e, "op1", "audit", 50), SR_OK); /* its own row is at day 500 */
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.audit, op1, "%llu of %zu", (unsigned long long)rep.audit, op1);
    cr_assert_eq(audit_rows(e, "op1", (int64_t)450 * DAY), 0, "op1's old rows are gone");
    cr_assert_eq(audit_rows(e, "op2", (int64_t)450 * DAY), op2, "op2's stay");
    cr_assert_gt(audit_rows(e, "op1", 0), 0, "the period's row and the retention's own rows stay");
    e = es_rebuilt(e, &dir, &(sr_engine_opts){.clock_ms = test_clock, .head_max = 4, .sync = SR_ENGINE_SYNC_NONE});
    cr_assert_eq(audit_rows(e, "op1", (int64_t)450 * DAY), 0);
    es_finish(e, &dir);
}

/* one access batch (issue #18) of an app of op: its `read` audit row */
static void access_batch(sr_engine *e, const char *op)
{
    sr_access_entry en = {.time_ms = clock_now, .binding = "apif-http", .method = "GET",
                          .route = "/api/v1/stored-values/latest", .npoints_listed = 1, .npoints = 1, .values = 1,
                          .bytes = 50, .status = 200, .code = "", .source = "192.0.2.1:1"};
    en.points[0] = "P000";
    sr_cmd_env env = {op, "app1", SR_ACTOR_APP, NULL, "192.0.2.1:1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_access(&env, &en, 1, &b), &b, &r), SR_OK);
}

static size_t read_rows(sr_engine *e, const char *op)
{
    sr_audit_query q = {.from_ms = INT64_MIN, .op = op, .kind = "read", .limit = 1000};
    sr_buf out;
    sr_buf_init(&out);
    size_t n = 0;
    int more;
    cr_assert_eq(sr_engine_audit_list(e, &q, &out, &n, &more), SR_OK);
    sr_buf_release(&out);
    return n;
}

Test(retention, access_rows_are_audit_rows_cut_by_the_audit_period)
{
    sr_engine *e = setup();
    access_batch(e, "op1"); /* day 400 */
    access_batch(e, "op2");
    cr_assert_eq(read_rows(e, "op1"), 1);
    clock_now = (int64_t)500 * DAY;
    access_batch(e, "op1"); /* day 500: within the period */
    cr_assert_eq(period(e, "op1", "audit", 50), SR_OK);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(read_rows(e, "op1"), 1, "op1's old read row is cut, its new one stays");
    cr_assert_eq(read_rows(e, "op2"), 1, "op2 has no period: its row stays");
    e = es_rebuilt(e, &dir, &(sr_engine_opts){.clock_ms = test_clock, .head_max = 4, .sync = SR_ENGINE_SYNC_NONE});
    cr_assert_eq(read_rows(e, "op1"), 1, "after a rebuild too");
    es_finish(e, &dir);
}

Test(retention, message_ids_older_than_the_window_are_forgotten)
{
    sr_engine *e = setup();
    uint32_t pt = point_of(e, "op1", "P000"), pt2 = point_of(e, "op2", "P000");
    clock_now = (int64_t)400 * DAY + 1000;
    for (int i = 0; i < 7; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d", i);
        put_days(e, "op1", pt, 399.5 + i * 0.01, 1, m);
        put_days(e, "op2", pt2, 399.5 + i * 0.01, 1, m);
    }
    sr_sample s = {.ts = (int64_t)399 * DAY + 7};
    sr_result r;
    cr_assert_eq(et_put(e, "op1", "GW1", pt, SR_VT_NUMBER, &s, 1, "m3", &r), SR_OK);
    cr_assert(r.duplicate, "inside the window: a duplicate");
    sr_retention_cfg c = CFG;
    c.message_id_window_s = 3600;
    sr_retention_report rep;
    sr_errinfo ei;
    /* the writes' own audit rows (their groups' WriteAudit, issue #18) are
     * time marks: a sweep within the window forgets nothing, the first
     * sweep an hour after them forgets both operators' ids (the window is
     * the platform's) */
    clock_now = (int64_t)400 * DAY + 1800 * 1000;
    cr_assert_eq(sr_engine_retention_sweep(e, &c, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.msgids, 0, "nothing an hour old yet (%llu)", (unsigned long long)rep.msgids);
    cr_assert_eq(et_put(e, "op1", "GW1", pt, SR_VT_NUMBER, &s, 1, "m3", &r), SR_OK);
    cr_assert(r.duplicate, "still inside the window");
    clock_now = (int64_t)400 * DAY + 2 * 3600 * 1000;
    cr_assert_eq(sr_engine_retention_sweep(e, &c, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.msgids, 14, "%llu", (unsigned long long)rep.msgids);
    cr_assert_eq(et_put(e, "op1", "GW1", pt, SR_VT_NUMBER, &s, 1, "m3", &r), SR_OK);
    cr_assert(!r.duplicate, "past the window: stored again");
    cr_assert_eq(r.rc, SR_OK);
    /* a message id sent after the sweep is inside its window */
    cr_assert_eq(et_put(e, "op1", "GW1", pt, SR_VT_NUMBER, &s, 1, "m3", &r), SR_OK);
    cr_assert(r.duplicate);
    e = es_rebuilt(e, &dir, &(sr_engine_opts){.clock_ms = test_clock, .head_max = 4, .sync = SR_ENGINE_SYNC_NONE});
    es_finish(e, &dir);
}

Test(retention, a_class_and_a_period_are_checked)
{
    sr_engine *e = setup();
    class_point(e, "op1", "C-bad", "audit", SR_EINVAL);
    class_point(e, "op1", "C-bad", "message_ids", SR_EINVAL);
    class_point(e, "op1", "C-bad", "a b", SR_EINVAL);
    class_point(e, "op1", "C-bad", "documents", SR_EINVAL); /* a record class is no data point's */
    cr_assert_eq(period(e, "op1", "files", 3), SR_OK, "a record class has a period");
    cr_assert_eq(period(e, "op1", "message_ids", 3), SR_EINVAL);
    cr_assert_eq(period(e, "", "default", 3), SR_EINVAL, "a period is an operator's");
    cr_assert_eq(period(e, "op1", "audit", 400), SR_OK);
    sr_rec rr = SR_REC_INIT;
    sr_reg_entry re;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_RETENTION, "audit", &rr, &re), SR_OK);
    cr_assert_eq(re.retention_days, 400, "a period round-trips");
    sr_rec_close(&rr);
    /* a Retention event from a gateway is refused */
    Suiro__V1__Retention rt = SUIRO__V1__RETENTION__INIT;
    rt.data_class = "default";
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.operator_id = "op1";
    ev.actor = "GW1";
    ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY;
    ev.body_case = SUIRO__V1__EVENT__BODY_RETENTION;
    ev.retention = &rt;
    uint8_t b[256];
    sr_slice sl = {b, protobuf_c_message_pack(&ev.base, b)};
    sr_result r;
    int rc = sr_engine_submit_wait(e, &sl, 1, &r);
    cr_assert_eq(rc ? rc : r.rc, SR_EINVAL, "%s", r.err.msg);
    es_finish(e, &dir);
}

/* ---- documents, files, requests, monitors (index layout 9) ------------------ */

Test(retention, documents_files_requests_and_monitors_past_their_period_leave_the_index)
{
    clock_now = (int64_t)10 * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = es_open(&dir, "retention", &o);
    uint8_t sha_old[32], sha_dup[32], sha_dup2[32], sha_b[32];
    uint32_t kid;
    es_doc(e, "op1", "old", "{\"v\":\"OLD-DOC\"}");
    es_doc(e, "op1", "rewritten", "{\"v\":1}");
    es_file(e, "op1", "a/old.txt", "OLD-FILE-BYTES", clock_now, sha_old, &kid);
    es_file(e, "op1", "a/dup.txt", "SHARED-BYTES", clock_now, sha_dup, &kid);
    es_request(e, "op1", "r-done", SR_RS_SUCCEEDED);
    es_request(e, "op1", "r-open", SR_RS_DISPATCHED);
    es_request(e, "op1", "r-new", 0);
    es_monitor(e, "op1", "m-stopped", SR_MS_STOPPED);
    es_monitor(e, "op1", "m-running", SR_MS_RUNNING);
    es_doc(e, "op2", "old", "{\"v\":2}");
    es_doc(e, "op2", "b-doc", "{\"v\":3}");
    es_file(e, "op2", "b/dup.txt", "SHARED-BYTES", clock_now, sha_dup2, &kid);
    es_file(e, "op2", "b/own.txt", "B-BYTES", clock_now, sha_b, &kid);
    cr_assert_eq(memcmp(sha_dup, sha_dup2, 32), 0, "one blob, two files");
    clock_now = (int64_t)395 * DAY;
    es_doc(e, "op1", "rewritten", "{\"v\":2}"); /* written inside the period: stays */
    clock_now = (int64_t)400 * DAY;
    /* op1: every class 30 days (its default); op2: documents only */
    cr_assert_eq(period(e, "op1", "default", 30), SR_OK);
    cr_assert_eq(period(e, "op2", "documents", 30), SR_OK);
    sr_retention_cfg c = CFG;
    c.batch = 1; /* an event per group: the windows' bounds are exercised */
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &c, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.documents, 3, "op1's old, op2's two (%llu)", (unsigned long long)rep.documents);
    cr_assert_eq(rep.files, 2, "op1's two; op2 has no files period (%llu)", (unsigned long long)rep.files);
    cr_assert_eq(rep.requests, 1, "r-done only (%llu)", (unsigned long long)rep.requests);
    cr_assert_eq(rep.monitors, 1, "m-stopped only (%llu)", (unsigned long long)rep.monitors);
    cr_assert_eq(rep.blobs, 1, "a/old.txt's; the shared one is named by op2's file (%llu)",
                 (unsigned long long)rep.blobs);
    cr_assert(!es_doc_there(e, "op1", "old"), "an old document is cut");
    cr_assert(es_doc_there(e, "op1", "rewritten"), "a document written inside the period stays");
    cr_assert(!es_doc_there(e, "op2", "old") && !es_doc_there(e, "op2", "b-doc"), "op2's documents period");
    cr_assert(!es_file_there(e, "op1", "a/old.txt") && !es_file_there(e, "op1", "a/dup.txt"));
    cr_assert(es_file_there(e, "op2", "b/dup.txt") && es_file_there(e, "op2", "b/own.txt"), "op2's files stay");
    cr_assert_eq(sr_blob_exists_keyed(sr_engine_blobs(e), sha_old, 0), SR_ENOTFOUND, "its blob is gone");
    cr_assert_eq(sr_blob_exists_keyed(sr_engine_blobs(e), sha_dup, 0), SR_OK, "a blob another file names stays");
    cr_assert(!es_request_there(e, "op1", "r-done"), "a finished request is cut");
    cr_assert(es_request_there(e, "op1", "r-open"), "a running request is never cut");
    cr_assert(es_request_there(e, "op1", "r-new"), "a request without a transition is never cut");
    cr_assert(!es_monitor_there(e, "op1", "m-stopped"), "a stopped monitor is cut");
    cr_assert(es_monitor_there(e, "op1", "m-running"), "a running monitor is never cut");
    /* a second sweep finds nothing more */
    cr_assert_eq(sr_engine_retention_sweep(e, &c, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.documents + rep.files + rep.requests + rep.monitors + rep.blobs, 0);
    e = es_rebuilt(e, &dir, &o); /* a rebuild makes the same deletions */
    cr_assert(!es_doc_there(e, "op1", "old") && es_doc_there(e, "op1", "rewritten"), "after a rebuild");
    cr_assert(!es_request_there(e, "op1", "r-done") && es_request_there(e, "op1", "r-open"));
    es_finish(e, &dir);
}

Test(retention, a_forced_sweep_names_its_user_in_the_audit_trail)
{
    sr_engine *e = setup();
    cr_assert_eq(period(e, "op1", "default", 30), SR_OK);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, "alice", &rep, &ei), SR_OK, "%s", ei.msg);
    sr_audit_query q = {.from_ms = INT64_MIN, .op = "op1", .actor = "alice", .kind = "retention", .limit = 1000};
    sr_buf out;
    sr_buf_init(&out);
    size_t n = 0;
    int more;
    cr_assert_eq(sr_engine_audit_list(e, &q, &out, &n, &more), SR_OK);
    sr_buf_release(&out);
    cr_assert_eq(n, rep.events, "each Retention event is an audit row by alice (%zu of %llu)", n,
                 (unsigned long long)rep.events);
    es_finish(e, &dir);
}

/* ---- kill -9 during sweeps -------------------------------------------------
 * A child process sweeps op1's backlog (days 1 to 81, four values a chunk)
 * again and again, its clock a quarter day later each time, so every sweep cuts
 * (in events of batch 3); the test kills it (SIGKILL) after a varying number
 * of sweeps, reopens the engine and checks that nothing is half applied: the
 * index equals one rebuilt from the log, and each point's values are a
 * suffix of what was written (a cut is whole chunks from the oldest). Ten
 * rounds on one data directory. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { K_VALUES = 1600, K_ROUNDS = 10 };

static void kill9_child(const char *d, int round, int fd)
{
    clock_now = (int64_t)(400 + round * 2) * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(d, &o, &e, &ei)) _exit(2);
    if (round == 0) { /* the backlog, fast; then durable at the close */
        if (et_setup_masters(e, "op1", 2, NUM, 1)) _exit(3);
        for (int k = 0; k < 2; k++) {
            uint32_t pt;
            char id[8];
            snprintf(id, sizeof id, "P%03d", k);
            if (sr_engine_point(e, "op1", id, &pt, NULL)) _exit(4);
            sr_sample s[4];
            for (int i = 0; i < K_VALUES; i += 4) {
                for (int j = 0; j < 4; j++)
                    s[j] = (sr_sample){.ts = DAY + (int64_t)(i + j) * (DAY / 20), .v.f = i + j};
                sr_result r;
                if (et_put(e, "op1", k ? "GW2" : "GW1", pt, SR_VT_NUMBER, s, 4, NULL, &r) || r.rc) _exit(5);
            }
        }
        if (sr_engine_close(e)) _exit(6);
        o.sync = SR_ENGINE_SYNC_ALWAYS;
        if (sr_engine_open(d, &o, &e, &ei)) _exit(7);
    }
    sr_retention_cfg c = {.default_days = 390, .batch = 3};
    for (int n = 0;; n++) {
        sr_retention_report rep;
        if (sr_engine_retention_sweep(e, &c, NULL, &rep, &ei)) _exit(8);
        char line[64];
        int l = snprintf(line, sizeof line, "swept %d %llu\n", n, (unsigned long long)rep.events);
        if (write(fd, line, (size_t)l) != l) _exit(9);
        clock_now += DAY / 4;
    }
}

/* every value of point pt, ascending */
static size_t all_values(sr_engine *e, uint32_t pt, sr_sample **out)
{
    sr_buf s;
    sr_buf_init(&s);
    sr_range_q q = {pt, INT64_MIN / 4, INT64_MAX / 4, 0, 0, INT64_MIN};
    int more;
    cr_assert_eq(sr_engine_range(e, &q, &s, NULL, &more), SR_OK);
    *out = (sr_sample *)s.data;
    return s.len / sizeof(sr_sample);
}

Test(retention, a_kill_9_during_sweeps_leaves_nothing_half_applied, .timeout = 600)
{
    char *d = tu_tmpdir("retention-kill9");
    tu_rng rng = {2026};
    int64_t last_first = 0;
    for (int round = 0; round < K_ROUNDS; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(p[0]);
            kill9_child(d, round, p[1]);
            _exit(0);
        }
        close(p[1]);
        /* wait for 1 to 4 sweeps (the child's lines), then kill it mid-way through the next */
        int want = 1 + (int)tu_below(&rng, 4), seen = 0;
        char buf[256];
        while (seen < want) {
            ssize_t n = read(p[0], buf, sizeof buf);
            cr_assert_gt(n, 0, "round %d: the child ended (status below)", round);
            for (ssize_t i = 0; i < n; i++) seen += buf[i] == '\n';
        }
        struct timespec ts = {0, (long)tu_below(&rng, 3000) * 1000};
        nanosleep(&ts, NULL); /* a varying point inside the next sweep; no assertion depends on it */
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        close(p[0]);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: the child failed (%d)", round, st);
        /* the reopened index equals a rebuild, and what is left of each point is a suffix */
        sr_engine_opts o = opts();
        sr_engine *e = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_open(d, &o, &e, &ei), SR_OK, "%s", ei.msg);
        uint8_t live[32], rebuilt[32];
        cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
        for (int k = 0; k < 2; k++) {
            char id[8];
            snprintf(id, sizeof id, "P%03d", k);
            sr_sample *v;
            size_t n = all_values(e, point_of(e, "op1", id), &v);
            cr_assert_gt(n, 0, "round %d: %s has no values (latest %d)", round, id, has_latest(e, point_of(e, "op1", id)));
            size_t first = (size_t)((v[0].ts - DAY) / (DAY / 20));
            cr_assert_eq(n, K_VALUES - first, "round %d: %s: %zu values from %zu: not a suffix", round, id, n, first);
            for (size_t i = 0; i < n; i++) cr_assert_eq(v[i].ts, DAY + (int64_t)(first + i) * (DAY / 20));
            cr_assert_eq(first % 4, 0, "whole chunks");
            if (k == 0) {
                cr_assert_geq(v[0].ts, last_first, "a cut never comes back");
                last_first = v[0].ts;
            }
            free(v);
        }
        cr_assert_eq(sr_engine_close(e), SR_OK);
        char ix[1200];
        snprintf(ix, sizeof ix, "%s/rebuilt-%d", d, round);
        sr_engine_opts ro = opts();
        ro.index_dir = ix;
        cr_assert_eq(sr_engine_rebuild(d, &ro, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_open(d, &ro, &e, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
        cr_assert_eq(sr_engine_close(e), SR_OK);
        cr_assert_eq(memcmp(live, rebuilt, 32), 0, "round %d: the index differs from a rebuild", round);
        tu_rmrf(ix);
    }
    cr_assert_gt(last_first, DAY, "the sweeps cut something");
    tu_rmrf(d);
    free(d);
}

/* The rebuild encodes chunks beside the replay and puts them before any
 * event but measurements is applied (engine/heads.c invariant 11): a sweep
 * right after the values it cuts, in the rebuild's same transaction, finds
 * their chunks there as the writer did (else it would miss the one still
 * being encoded, and the rebuilt index keep it). */
Test(retention, a_sweep_right_after_the_chunks_it_cuts_is_rebuilt_alike)
{
    clock_now = (int64_t)400 * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = es_open(&dir, "retention", &o);
    cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), 0);
    cr_assert_eq(period(e, "op1", "default", 30), SR_OK);
    uint32_t pt = point_of(e, "op1", "P000");
    put_days(e, "op1", pt, 1, 8, NULL); /* two chunks, each flushed by its own event */
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 2, "%llu", (unsigned long long)rep.chunks);
    e = es_rebuilt(e, &dir, &o); /* both ways: the same content hash as the written index */
    cr_assert_eq(count_range(e, pt, 0, INT64_MAX), 0, "after a rebuild");
    es_finish(e, &dir);
}
