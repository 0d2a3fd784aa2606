/*
 * tests/engine/test_state.c -- the state at a past time (engine/state.c,
 * issue #18, R-RE-2; docs/state.md).
 *
 * A scripted history, one event per step at a known ingest time: masters
 * added and one deleted, a gateway, an app and a grant created, then the
 * grant and the app revoked, the gateway connecting and disconnecting, a
 * monitor started and stopped, a request pending then done, an alarm raised
 * and resolved, values over time and a late value (a measurement time
 * before earlier steps' ingest times, received later). Each step's row says
 * by hand what the state is after it (a fingerprint of every section);
 * for every event boundary T (at the step's ingest time, just after it,
 * just before the next) the state at T read through the ordinary typed
 * readers equals that row. The rows are written by hand from the history,
 * not computed by the code under test, so a state that leaks an event
 * after T (the late value, a later revocation) or misses one fails.
 */
#include "engsuite.h"

#include "engine/engine_int.h" /* e->o.state_full_replay: the reference answer */

#include "codecs/events.pb-c.h"

#include <inttypes.h>

static int64_t clock_now;
static int64_t test_clock(void) { return clock_now; }

static sr_engine_opts opts(void)
{
    return (sr_engine_opts){.clock_ms = test_clock, .sync = SR_ENGINE_SYNC_NONE};
}

/* ---- the fingerprint: every section of the state, as one string ---------- */

static void add(sr_buf *b, const char *s) { cr_assert_eq(sr_buf_append(b, s, strlen(s)), SR_OK); }

typedef struct fpx {
    sr_buf b;
    sr_engine *e;
} fpx;

static int req_fp(void *ctx, const char *op, const char *req, const char *gw)
{
    fpx *x = ctx;
    sr_buf *b = &x->b;
    sr_rec r = SR_REC_INIT;
    sr_request_rec rq;
    sr_request_transition st;
    int has = 0;
    cr_assert_eq(sr_read_request(x->e, op, req, gw, &r, &rq, &st, &has), SR_OK);
    if (!has || st.state < SR_RS_SUCCEEDED) {
        add(b, " req:");
        add(b, req);
    }
    sr_rec_close(&r);
    return 0;
}

static char *fingerprint(sr_engine *e)
{
    fpx x = {{0}, e};
    sr_buf_init(&x.b);
    add(&x.b, "|");
    if (!e) {
        cr_assert_eq(sr_buf_append(&x.b, "", 1), SR_OK);
        return (char *)x.b.data;
    }
    sr_rec r = SR_REC_INIT;
    char t[200];
    for (int k = SR_MK_FACILITY; k <= SR_MK_DATA_POINT; k++) {
        sr_master m;
        if (sr_list_masters(e, "op1", (sr_master_kind)k, &r) == SR_OK)
            while (sr_rec_next_master(&r, &m) == 1) {
                add(&x.b, " m:");
                add(&x.b, m.id);
                if (k != SR_MK_DATA_POINT) continue;
                sr_sample s;
                int found = 0;
                sr_buf str;
                sr_buf_init(&str);
                cr_assert_eq(sr_engine_latest(e, &m.point, 1, &s, &found, &str), SR_OK);
                if (found) {
                    snprintf(t, sizeof t, "=%g@%" PRId64, s.v.f, s.ts);
                    add(&x.b, t);
                }
                sr_buf_release(&str);
            }
    }
    static const struct {
        sr_reg_kind k;
        const char *tag;
    } RK[] = {{SR_RG_GATEWAY, " gw:"}, {SR_RG_APP, " app:"}, {SR_RG_GRANT, " grant:"}};
    for (size_t i = 0; i < 3; i++) {
        sr_reg_entry g;
        if (sr_list_registry(e, "op1", RK[i].k, &r) == SR_OK)
            while (sr_rec_next_registry(&r, &g) == 1) {
                add(&x.b, RK[i].tag);
                add(&x.b, g.id);
            }
    }
    sr_monitor_rec mo;
    if (sr_list_monitors(e, "op1", &r) == SR_OK)
        while (sr_rec_next_monitor(&r, &mo) == 1)
            if (mo.state != SR_MS_STOPPED) {
                add(&x.b, " mon:");
                add(&x.b, mo.monitor_id);
            }
    cr_assert_eq(sr_engine_request_each(e, "op1", req_fp, &x), SR_OK);
    sr_alive_rec a;
    if (sr_list_alive(e, "op1", &r) == SR_OK)
        while (sr_rec_next_alive(&r, &a) == 1)
            if (a.state == SR_AS_ONLINE) {
                add(&x.b, " on:");
                add(&x.b, a.id);
            }
    sr_alarm al;
    if (sr_list_open_alarms(e, &r) == SR_OK)
        while (sr_rec_next_alarm(&r, &al) == 1) {
            add(&x.b, " alarm:");
            add(&x.b, al.rule);
        }
    sr_rec_close(&r);
    cr_assert_eq(sr_buf_append(&x.b, "", 1), SR_OK);
    return (char *)x.b.data;
}

/* ---- the history ----------------------------------------------------------- */

static const sr_cmd_env ADMIN = {"op1", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
static const sr_cmd_env SYS = {"op1", "system", SR_ACTOR_SYSTEM, NULL, "alarms"};
static const sr_cmd_env GWENV = {"op1", "GW1", SR_ACTOR_GATEWAY, NULL, "127.0.0.1:5000"};
static char alarm_id[80];

static void put_value(sr_engine *e, const char *id, int64_t ts, double v)
{
    sr_sample s = {.ts = ts, .v.f = v};
    sr_result r = {0};
    uint32_t point;
    cr_assert_eq(sr_engine_point(e, "op1", id, &point, NULL), SR_OK);
    cr_assert_eq(et_put(e, "op1", "GW1", point, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static void reg(sr_engine *e, const sr_reg_entry *re)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&ADMIN, re, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static void unreg(sr_engine *e, sr_reg_kind k, const char *id)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_registry_delete(&ADMIN, k, id, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static void alive(sr_engine *e, sr_alive_state st)
{
    const sr_alive_rec a = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = st,
                            .reason = st == SR_AS_ONLINE ? SR_AR_CONNECT : SR_AR_DISCONNECT, .binding = "mqtt",
                            .remote = "127.0.0.1:5000", .will = ""};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_alive(&GWENV, &a, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static void monitor(sr_engine *e, sr_mon_state st)
{
    const char *ids[] = {"P000"}, *gws[] = {"GW1"};
    sr_monitor_rec m = {.monitor_id = "M1", .state = st, .app_id = "APP1", .data_ids = ids, .n_data_ids = 1,
                        .interval_ms = 1000, .gateway_ids = gws, .n_gateway_ids = 1, .start_ms = 1, .end_ms = 0,
                        .created_ms = 1};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    const sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, "127.0.0.1"};
    cr_assert_eq(es_submit1(e, sr_cmd_monitor(&env, &m, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static void request(sr_engine *e, int done)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    const sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, "127.0.0.1"};
    if (!done) {
        const char *ids[] = {"P000"};
        sr_request_rec q = {.request_id = "R1", .kind = SR_RK_IMMEDIATE, .app_id = "APP1", .gateway_id = "",
                            .data_ids = ids, .n_data_ids = 1, .timeout_ms = 10000};
        cr_assert_eq(es_submit1(e, sr_cmd_request_created(&env, &q, &b), &b, &r), SR_OK, "%s", r.err.msg);
    } else {
        sr_request_transition t = {.request_id = "R1", .state = SR_RS_SUCCEEDED, .error_code = "", .message = "",
                                   .gateway_id = ""};
        cr_assert_eq(es_submit1(e, sr_cmd_request_transition(&SYS, &t, &b), &b, &r), SR_OK, "%s", r.err.msg);
    }
}

static void alarm(sr_engine *e, int resolve)
{
    sr_alarm_step st = {.state = "raised", .rule = "disk-free", .level = SR_AL_MINOR, .source = "alarms",
                        .message = "8% free", .auto_resolve = 1};
    if (resolve) st = (sr_alarm_step){.state = "resolved", .id = alarm_id, .comment = "freed"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_alarm(resolve ? &ADMIN : &SYS, &st, &b), &b, &r), SR_OK, "%s", r.err.msg);
    if (!resolve) {
        sr_rec rr = SR_REC_INIT;
        sr_alarm a;
        cr_assert_eq(sr_list_open_alarms(e, &rr), SR_OK);
        cr_assert_eq(sr_rec_next_alarm(&rr, &a), 1);
        snprintf(alarm_id, sizeof alarm_id, "%s", a.id);
        sr_rec_close(&rr);
    }
}

static void master_delete(sr_engine *e, const char *id)
{
    Suiro__V1__MasterDelete md = SUIRO__V1__MASTER_DELETE__INIT;
    md.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    md.id = (char *)id;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_DELETE;
    ev.master_delete = &md;
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_ev_pack(&ev, "op1", "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, "", &b), SR_OK);
    sr_result r;
    cr_assert_eq(es_submit1(e, SR_OK, &b, &r), SR_OK, "%s", r.err.msg);
}

#define MASTERS " m:F1 m:E1 m:D-GW1 m:D-GW2"
static const struct step {
    int what;
    const char *after; /* the state after the step, by hand */
} STEPS[] = {
    {1, "|" MASTERS " m:P000 m:P001 m:P002"},
    {2, "|" MASTERS " m:P000 m:P001 m:P002 gw:GW1"},
    {3, "|" MASTERS " m:P000 m:P001 m:P002 gw:GW1 app:APP1"},
    {4, "|" MASTERS " m:P000 m:P001 m:P002 gw:GW1 app:APP1 grant:G1"},
    {5, "|" MASTERS " m:P000 m:P001 m:P002 gw:GW1 app:APP1 grant:G1 on:GW1"},
    {6, "|" MASTERS " m:P000=1.5@6500 m:P001 m:P002 gw:GW1 app:APP1 grant:G1 on:GW1"},
    {7, "|" MASTERS " m:P000=1.5@6500 m:P001 m:P002 gw:GW1 app:APP1 grant:G1 mon:M1 on:GW1"},
    {8, "|" MASTERS " m:P000=1.5@6500 m:P001 m:P002 gw:GW1 app:APP1 grant:G1 mon:M1 req:R1 on:GW1"},
    {9, "|" MASTERS " m:P000=1.5@6500 m:P001 m:P002 gw:GW1 app:APP1 grant:G1 mon:M1 req:R1 on:GW1 alarm:disk-free"},
    /* the late value: measured at 2500 (before step 3), received now */
    {10, "|" MASTERS " m:P000=1.5@6500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1 mon:M1 req:R1 on:GW1 alarm:disk-free"},
    {11, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1 mon:M1 req:R1 on:GW1 alarm:disk-free"},
    {12, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1 mon:M1 on:GW1 alarm:disk-free"},
    {13, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1 on:GW1 alarm:disk-free"},
    {14, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1 on:GW1"},
    {15, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1 grant:G1"},
    {16, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1 app:APP1"},
    {17, "|" MASTERS " m:P000=2.5@11500 m:P001 m:P002=7@2500 gw:GW1"},
    {18, "|" MASTERS " m:P000=2.5@11500 m:P002=7@2500 gw:GW1"},
};
enum { NSTEPS = sizeof STEPS / sizeof STEPS[0] };

/* step i at ingest time 1000 * (i + 1) */
static void do_step(sr_engine *e, int what)
{
    static const sr_vtype NUM[] = {SR_VT_NUMBER};
    switch (what) {
    case 1: cr_assert_eq(et_setup_masters(e, "op1", 3, NUM, 1), SR_OK); break;
    case 2: reg(e, &(sr_reg_entry){.kind = SR_RG_GATEWAY, .id = "GW1", .name = "gw", .protocol = "mqtt"}); break;
    case 3: reg(e, &(sr_reg_entry){.kind = SR_RG_APP, .id = "APP1", .name = "app"}); break;
    case 4:
        reg(e, &(sr_reg_entry){.kind = SR_RG_GRANT, .id = "G1", .app_id = "APP1", .pattern = "P*", .access = "read"});
        break;
    case 5: alive(e, SR_AS_ONLINE); break;
    case 6: put_value(e, "P000", 6500, 1.5); break;
    case 7: monitor(e, SR_MS_RUNNING); break;
    case 8: request(e, 0); break;
    case 9: alarm(e, 0); break;
    case 10: put_value(e, "P002", 2500, 7); break;
    case 11: put_value(e, "P000", 11500, 2.5); break;
    case 12: request(e, 1); break;
    case 13: monitor(e, SR_MS_STOPPED); break;
    case 14: alarm(e, 1); break;
    case 15: alive(e, SR_AS_OFFLINE); break;
    case 16: unreg(e, SR_RG_GRANT, "G1"); break;
    case 17: unreg(e, SR_RG_APP, "APP1"); break;
    case 18: master_delete(e, "P001"); break;
    }
}

static int snap_answers; /* answers that started from a snapshot (S > 0) */

static void check_at(sr_engine *e, int64_t t, const char *want, uint64_t want_seq)
{
    sr_engine *at = NULL;
    sr_state_info in;
    sr_errinfo ei = {0};
    cr_assert_eq(sr_engine_state_open(e, t, &at, &in, &ei), SR_OK, "T=%" PRId64 ": %s", t, ei.msg);
    cr_assert_eq(in.seq, want_seq, "T=%" PRId64 ": seq(T) %" PRIu64 ", want %" PRIu64, t, in.seq, want_seq);
    cr_assert_eq(!at, !want_seq, "T=%" PRId64 ": a private engine iff seq(T)", t);
    cr_assert_leq(in.snap_seq, in.seq, "T=%" PRId64 ": a snapshot after seq(T)", t);
    if (want_seq)
        cr_assert_eq(in.replayed, want_seq - in.snap_seq, "T=%" PRId64 ": replayed the events after the snapshot %" PRIu64,
                     t, in.snap_seq);
    if (in.snap_seq) snap_answers++;
    char *fp = fingerprint(at);
    cr_assert_str_eq(fp, want, "T=%" PRId64 " (seq %" PRIu64 ", snapshot %" PRIu64 ")", t, in.seq, in.snap_seq);
    cr_assert_eq(sr_engine_state_close(at), SR_OK);
    /* the reference: the log's start replayed by the ordinary appliers */
    e->o.state_full_replay = 1;
    sr_state_info ref;
    cr_assert_eq(sr_engine_state_open(e, t, &at, &ref, &ei), SR_OK, "T=%" PRId64 ": %s", t, ei.msg);
    e->o.state_full_replay = 0;
    cr_assert_eq(ref.snap_seq, 0);
    cr_assert_eq(ref.seq, in.seq);
    if (want_seq) cr_assert_eq(ref.replayed, want_seq, "T=%" PRId64 ": the reference replays the log's start", t);
    char *rf = fingerprint(at);
    cr_assert_str_eq(fp, rf, "T=%" PRId64 ": the answer from snapshot %" PRIu64 " differs from the full replay's", t,
                     in.snap_seq);
    free(rf);
    free(fp);
    cr_assert_eq(sr_engine_state_close(at), SR_OK);
}

/* the history, then every event boundary; snap_events: [state]
 * snapshot_events (0: none, every answer from the log's start) */
static void every_boundary(const char *tag, uint32_t snap_events)
{
    char *dir = NULL;
    sr_engine_opts o = opts();
    o.snapshot_events = snap_events;
    clock_now = 500;
    snap_answers = 0;
    sr_engine *e = es_open(&dir, tag, &o);
    uint64_t seqs[NSTEPS];
    uint64_t w0;
    {
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        w0 = st.watermark;
    }
    uint64_t last = w0;
    for (int i = 0; i < NSTEPS; i++) {
        clock_now = 1000 * (int64_t)(i + 1);
        do_step(e, STEPS[i].what);
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        cr_assert_gt(st.watermark, last, "step %d wrote", i + 1);
        seqs[i] = last = st.watermark;
    }
    /* the state now equals the last row: the fingerprint reads what it should */
    char *now = fingerprint(e);
    cr_assert_str_eq(now, STEPS[NSTEPS - 1].after);
    free(now);
    /* before the first event: nothing */
    check_at(e, 999, "|", w0);
    for (int i = 0; i < NSTEPS; i++) {
        int64_t t = 1000 * (int64_t)(i + 1);
        check_at(e, t, STEPS[i].after, seqs[i]);       /* at the step's ingest time: it counts */
        check_at(e, t + 500, STEPS[i].after, seqs[i]); /* between */
        check_at(e, t + 999, STEPS[i].after, seqs[i]); /* just before the next */
    }
    check_at(e, INT64_MAX / 2, STEPS[NSTEPS - 1].after, seqs[NSTEPS - 1]);
    if (snap_events) /* the snapshots were made and used: most answers start from one */
        cr_assert_gt(snap_answers, 3 * NSTEPS / 2, "only %d answers started from a snapshot", snap_answers);
    else
        cr_assert_eq(snap_answers, 0);
    /* the private index is gone after its close, and the live one unchanged:
     * equal to a rebuild (the snapshots left out of the comparison: a rebuild
     * makes none; schema.h statesnap) */
    e = es_rebuilt(e, &dir, &o);
    es_finish(e, &dir);
}

Test(state, the_state_at_every_event_boundary_is_the_history_up_to_it)
{
    every_boundary("state", 0);
}

Test(state, from_a_snapshot_every_event_boundary_equals_the_full_replay)
{
    every_boundary("state-snap", 3);
}

/* perf18: the private engine reads the live engine's open log (log_shared:
 * no second open, no scan of every segment) and leaves it to its owner: the
 * live engine goes on writing after answers, and a later answer sees the new
 * events; a shared log is refused to an engine that could write it or that
 * has no index of its own (before anything is opened). */
static char *fp_at(sr_engine *e, int64_t t, int full, sr_state_info *in);
Test(state, the_private_engine_reads_the_live_log_and_leaves_it_open)
{
    char *dir = NULL;
    sr_engine_opts o = opts();
    o.snapshot_events = 3;
    clock_now = 500;
    sr_engine *e = es_open(&dir, "state-shared", &o);
    const int half = NSTEPS / 2;
    for (int i = 0; i < NSTEPS; i++) {
        clock_now = 1000 * (int64_t)(i + 1);
        do_step(e, STEPS[i].what);
        if (i + 1 != half) continue;
        sr_state_info in;
        char *fp = fp_at(e, clock_now, 0, &in);
        cr_assert_str_eq(fp, STEPS[i].after);
        free(fp);
    }
    /* the live engine wrote on after the answer (its log still open): the
     * state at the end, from a snapshot and by the full replay */
    for (int full = 0; full < 2; full++) {
        sr_state_info in;
        char *fp = fp_at(e, INT64_MAX / 2, full, &in);
        cr_assert_str_eq(fp, STEPS[NSTEPS - 1].after, "full %d", full);
        free(fp);
    }
    sr_engine_opts bad[3] = {opts(), opts(), opts()};
    bad[0].log_shared = e->log, bad[0].index_dir = "/nonexistent/ix"; /* could write the log */
    bad[1].log_shared = e->log, bad[1].log_readonly = 1;               /* the live index */
    bad[2].log_shared = e->log, bad[2].log_readonly = 1, bad[2].readonly = 1, bad[2].index_dir = "/nonexistent/ix";
    for (int k = 0; k < 3; k++) {
        sr_engine *p = NULL;
        sr_errinfo ei = {0};
        cr_assert_eq(sr_engine_open(dir, &bad[k], &p, &ei), SR_EINVAL, "case %d", k);
        cr_assert_null(p);
        cr_assert(strstr(ei.msg, "shared log"), "%s", ei.msg);
    }
    /* and the live engine still writes and reads */
    clock_now = 1000 * (int64_t)(NSTEPS + 1);
    put_value(e, "P000", 77, 7.0);
    e = es_rebuilt(e, &dir, &o);
    es_finish(e, &dir);
}

Test(state, an_empty_log_is_an_empty_state)
{
    char *dir = NULL;
    sr_engine_opts o = opts();
    clock_now = 500;
    sr_engine *e = es_open(&dir, "state-empty", &o);
    sr_engine *at = (sr_engine *)1;
    sr_state_info in;
    cr_assert_eq(sr_engine_state_open(e, 10000, &at, &in, NULL), SR_OK);
    cr_assert_null(at);
    cr_assert_eq(in.seq, 0);
    es_finish(e, &dir);
}

/* The fingerprint of the state at t, from the nearest snapshot (full 0) or
 * the reference (full 1); *in its info. */
static char *fp_at(sr_engine *e, int64_t t, int full, sr_state_info *in)
{
    sr_engine *at = NULL;
    sr_errinfo ei = {0};
    e->o.state_full_replay = full;
    cr_assert_eq(sr_engine_state_open(e, t, &at, in, &ei), SR_OK, "T=%" PRId64 ": %s", t, ei.msg);
    e->o.state_full_replay = 0;
    char *fp = fingerprint(at);
    cr_assert_eq(sr_engine_state_close(at), SR_OK);
    return fp;
}

/* Crypto-shredding reaches the snapshots (raw sealed copies): once op1's
 * first data key is destroyed, a snapshot holding a latest row it sealed
 * cannot be read, and the answer starts from an older snapshot or the log's
 * start instead -- the same state as the full replay (which lacks the
 * erased values too), never one with the row silently missing. */
Test(state, a_snapshot_with_a_row_sealed_by_a_destroyed_key_is_passed_over)
{
    static sr_key master;
    uint8_t kb[SR_KEY_LEN];
    memset(kb, 0x3c, sizeof kb);
    sr_key_from_bytes(&master, kb);
    char *dir = NULL;
    sr_engine_opts o = opts();
    o.key = &master;
    o.key_source = "test";
    o.snapshot_events = 1; /* every group */
    clock_now = 1000;
    sr_engine *e = es_open(&dir, "state-shred", &o);
    do_step(e, 1); /* the masters (config key) */
    clock_now = 2000;
    put_value(e, "P000", 1500, 1.0); /* latest rows sealed by op1's data key, epoch 1 */
    clock_now = 3000;
    put_value(e, "P002", 2500, 2.0);
    sr_state_info in, ref;
    char *a = fp_at(e, 3500, 0, &in);
    cr_assert_gt(in.snap_seq, 0, "before the destruction the answer starts from a snapshot");
    cr_assert_eq(in.snap_skipped, 0);
    cr_assert_str_eq(a, "|" MASTERS " m:P000=1@1500 m:P001 m:P002=2@2500");
    free(a);
    uint32_t k1 = 0;
    {
        sr_keyinfo *ks;
        size_t n;
        cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(ks[i].operator_id, "op1") && ks[i].cls == SR_KC_DATA && ks[i].epoch == 1) k1 = ks[i].id;
        sr_free(ks);
    }
    cr_assert_neq(k1, 0);
    clock_now = 4000;
    {
        const sr_key_rec k = {.action = "rotate", .key_operator = "op1", .key_class = "data"};
        sr_buf b;
        sr_buf_init(&b);
        sr_result r;
        cr_assert_eq(es_submit1(e, sr_cmd_key_ev(&ADMIN, &k, &b), &b, &r), SR_OK, "%s", r.err.msg);
    }
    clock_now = 5000;
    put_value(e, "P000", 5500, 3.0); /* sealed by epoch 2 */
    clock_now = 6000;
    put_value(e, "P002", 6500, 4.0);
    sr_errinfo ei = {0};
    cr_assert_eq(sr_engine_key_destroy(e, &ADMIN, k1, 0, 0, &ei), SR_OK, "%s", ei.msg);
    /* at 3500: every snapshot since the first value holds a row sealed by
     * the destroyed key: passed over */
    a = fp_at(e, 3500, 0, &in);
    char *r = fp_at(e, 3500, 1, &ref);
    cr_assert_gt(in.snap_skipped, 0, "the snapshots sealed by the destroyed key were passed over");
    cr_assert_lt(in.snap_seq, in.seq);
    cr_assert_gt(in.erased, 0, "the erased values were met in the replay");
    cr_assert_str_eq(a, r, "the answer from snapshot %" PRIu64 " differs from the full replay", in.snap_seq);
    cr_assert_str_eq(a, "|" MASTERS " m:P000 m:P001 m:P002", "the erased values are not in it");
    free(a);
    free(r);
    /* at the end: the newest snapshot holds only epoch 2's rows: used */
    a = fp_at(e, 10000, 0, &in);
    r = fp_at(e, 10000, 1, &ref);
    cr_assert_eq(in.snap_seq, in.seq, "the newest snapshot (every group makes one) is used");
    cr_assert_str_eq(a, r);
    cr_assert_str_eq(a, "|" MASTERS " m:P000=3@5500 m:P001 m:P002=4@6500");
    free(a);
    free(r);
    es_finish(e, &dir);
}

/* ---- thinning and the time-based interval (statesnap.c invariant 5) ------ */

/* The rule on its own: snapshots every I seqs for many rounds, thinned after
 * each as the writer does; after every round the kept set is bounded
 * (keep + 2 (log2 N + 1)), holds the newest keep, and every seq x from the
 * first snapshot on finds a kept one at most max(N - x, I) before it: the
 * worst-case replay docs/state.md "Kept (thinning)" states. A rule that thins
 * nothing fails the bound on the count; one that thins too much fails the
 * bound on the replay. */
Test(state, the_thinning_rule_bounds_the_kept_snapshots_and_the_replay)
{
    enum { ROUNDS = 3000, I = 7, KEEP = 4 };
    static uint64_t all[ROUNDS];
    static uint8_t drop[ROUNDS];
    size_t n = 0;
    for (int round = 1; round <= ROUNDS; round++) {
        all[n++] = (uint64_t)round * I + 3;
        sr__snap_thin(all, n, KEEP, drop);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!drop[i]) all[m++] = all[i];
        n = m;
        uint64_t N = all[n - 1];
        unsigned lg = 0;
        while ((N >> lg) > 1) lg++;
        cr_assert_leq(n, KEEP + 2 * (lg + 1), "round %d: %zu kept of newest %" PRIu64, round, n, N);
        cr_assert_geq(n, round < KEEP ? (size_t)round : (size_t)KEEP);
        for (int k = 0; k < KEEP && k < round; k++)
            cr_assert_eq(all[n - 1 - k], (uint64_t)(round - k) * I + 3, "round %d: the newest %d kept", round, KEEP);
        cr_assert_eq(all[0], (uint64_t)I + 3, "round %d: the oldest stays", round);
        size_t j = 0;
        for (uint64_t x = all[0]; x <= N; x++) {
            while (j + 1 < n && all[j + 1] <= x) j++;
            cr_assert_leq(x - all[j], N - x > I ? N - x : I, "round %d: seq %" PRIu64 " replays from %" PRIu64, round,
                          x, all[j]);
        }
    }
    /* keep 0: nothing thinned */
    uint64_t few[] = {1, 2, 3, 4, 5};
    uint8_t d5[5];
    sr__snap_thin(few, 5, 0, d5);
    for (size_t i = 0; i < 5; i++) cr_assert(!d5[i]);
}

/* the writer's snapshots of an engine, oldest first */
static size_t snaps(sr_engine *e, uint64_t *out, size_t max)
{
    size_t n = 0;
    cr_assert_eq(sr__snap_list(e, out, max, &n), SR_OK);
    cr_assert_leq(n, max);
    return n;
}

/* The writer thins in the group's transaction: with a snapshot every group
 * and keep 3, after 60 groups the index holds exactly the set the rule keeps
 * when applied after each snapshot, the newest 3 among them; the answers at
 * every group's time equal the full replay's (a thinned-away snapshot is
 * never needed: the answer starts from an older kept one). */
Test(state, the_writer_thins_the_snapshots_and_the_answers_stay_those_of_the_full_replay)
{
    char *dir = NULL;
    sr_engine_opts o = opts();
    o.snapshot_events = 1;
    o.snapshot_keep = 3;
    clock_now = 1000;
    sr_engine *e = es_open(&dir, "state-thin", &o);
    do_step(e, 1);
    enum { G = 60 };
    uint64_t made[G + 1], sim[G + 1];
    uint8_t drop[G + 1];
    size_t nsim = 0;
    {
        uint64_t s[G + 1];
        size_t n = snaps(e, s, G + 1);
        cr_assert_geq(n, 1, "the masters' groups made one");
        for (size_t i = 0; i < n; i++) sim[nsim++] = s[i]; /* the rule goes on from the set as it is */
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        made[0] = st.watermark;
        cr_assert_eq(s[n - 1], made[0], "every group makes one");
    }
    for (int g = 1; g <= G; g++) {
        clock_now = 1000 + 100 * (int64_t)g;
        put_value(e, g % 2 ? "P000" : "P002", clock_now, (double)g);
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        made[g] = st.watermark;
        sim[nsim++] = made[g];
        sr__snap_thin(sim, nsim, 3, drop);
        size_t m = 0;
        for (size_t i = 0; i < nsim; i++)
            if (!drop[i]) sim[m++] = sim[i];
        nsim = m;
    }
    uint64_t s[G + 1];
    size_t n = snaps(e, s, G + 1);
    cr_assert_lt(n, (size_t)G / 3, "thinned: %zu kept of %d made", n, G + 1);
    cr_assert_eq(n, nsim, "the writer keeps the rule's set (%zu, the rule %zu)", n, nsim);
    for (size_t i = 0; i < n; i++) cr_assert_eq(s[i], sim[i], "snapshot %zu", i);
    for (int k = 0; k < 3; k++) cr_assert_eq(s[n - 1 - k], made[G - k], "the newest 3 kept");
    for (int g = 0; g <= G; g += 7) {
        sr_state_info in, ref;
        char *a = fp_at(e, 1000 + 100 * (int64_t)g + 50, 0, &in);
        char *r = fp_at(e, 1000 + 100 * (int64_t)g + 50, 1, &ref);
        cr_assert_eq(in.seq, made[g]);
        cr_assert_gt(in.snap_seq, 0);
        int kept = 0;
        for (size_t i = 0; i < n; i++) kept |= s[i] == in.snap_seq;
        cr_assert(kept, "group %d: started from a kept snapshot (%" PRIu64 ")", g, in.snap_seq);
        cr_assert_str_eq(a, r, "group %d: from snapshot %" PRIu64 " differs from the full replay", g, in.snap_seq);
        free(a);
        free(r);
    }
    /* a restart keeps them: the rule goes on from the same set */
    e = es_rebuilt(e, &dir, &o);
    es_finish(e, &dir);
}

/* [state] snapshot_s: with neither count set, one snapshot once 5 s of the
 * writer's clock passed since the last (the first group starts the count),
 * none while nothing is written however long the pause */
Test(state, a_snapshot_every_snapshot_s_while_events_are_written)
{
    char *dir = NULL;
    sr_engine_opts o = opts();
    o.snapshot_ms = 5000;
    clock_now = 1000;
    sr_engine *e = es_open(&dir, "state-time", &o);
    do_step(e, 1); /* t = 1000: the count starts */
    uint64_t s[16];
    cr_assert_eq(snaps(e, s, 16), 0);
    uint64_t at[12];
    for (int i = 1; i <= 11; i++) { /* 2000 .. 12000 */
        clock_now = 1000 + 1000 * (int64_t)i;
        put_value(e, "P000", clock_now, (double)i);
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        at[i] = st.watermark;
    }
    size_t n = snaps(e, s, 16);
    cr_assert_eq(n, 2, "at 6000 and 11000 (%zu)", n);
    cr_assert_eq(s[0], at[5], "the group at 6000");
    cr_assert_eq(s[1], at[10], "the group at 11000");
    /* a long pause writes nothing, so makes none; the next group makes one */
    clock_now = 100000;
    cr_assert_eq(snaps(e, s, 16), 2);
    put_value(e, "P002", clock_now, 9.0);
    n = snaps(e, s, 16);
    cr_assert_eq(n, 3);
    sr_state_info in, ref;
    char *a = fp_at(e, 100000, 0, &in), *r = fp_at(e, 100000, 1, &ref);
    cr_assert_eq(in.snap_seq, in.seq, "the newest snapshot answers");
    cr_assert_str_eq(a, r);
    free(a);
    free(r);
    es_finish(e, &dir);
}
