/* tests/engine/test_engine_invariants.c -- the engine's tables and invariant
 * checks, from inside (engine/engine_int.h): every kind of Event.body has a
 * row in the appliers' table; the index's databases are the schema's; the
 * writer's and the heads' check functions hold on a live engine and name
 * each deliberately broken state (issue #12 section 5). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "storage/series.h"
#include "engtest.h"
#include "testutil.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("enginv"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(engine_invariants, .init = setup, .fini = teardown, .timeout = 120);

static int64_t fixed_clock(void) { return 1700000000000; }

static sr_engine *open_engine(uint32_t head_max)
{
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = head_max};
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(dir, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s: %s", sr_err_name(rc), ei.msg);
    return e;
}

static const sr_vtype NUM[] = {SR_VT_NUMBER};

/* ---- the appliers' table ---------------------------------------------- */

Test(engine_invariants, every_kind_of_event_body_has_a_row_in_the_appliers_table)
{
    const ProtobufCMessageDescriptor *d = &suiro__v1__event__descriptor;
    unsigned kinds = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) continue;
        const sr_applier *a = sr__applier((int)f->id);
        cr_assert_not_null(a, "Event.%s (case %u) has no row in SR_EVENT_KINDS (engine/apply.c)", f->name, f->id);
        cr_assert_eq(a->kind, (int)f->id, "the row of Event.%s is another kind's", f->name);
        cr_assert_not_null(a->name, "Event.%s", f->name);
        kinds++;
    }
    cr_assert_eq(kinds, 37, "events.proto's Event.body has 37 kinds today (BackupEvent: 39, PushMark: 40, Retention: 41, "
                            "ConfigCarry: 42, LogTrim: 43, AliveEvent: 45, NotifyEvent: 46, CheckpointEvent: 47, AccessEvent: 48, WriteAudit: 49, AccessBatch: 50, ClusterEvent: 51, PointAlias: 55, StreamKeyErase: 57)");
    const sr_applier *none = sr__applier(SUIRO__V1__EVENT__BODY__NOT_SET);
    cr_assert_not_null(none);
    cr_assert_not_null(none->check, "an event without a body is refused by the writer");
    cr_assert_null(sr__applier(1), "a number that is not a case has no row");
    cr_assert_null(sr__applier(-1));
    cr_assert_null(sr__applier(SUIRO__V1__EVENT__BODY_CLUSTER + 1));
    cr_assert_null(sr__applier(SUIRO__V1__EVENT__BODY_POINT_ALIAS + 1));
    cr_assert_null(sr__applier(SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE + 1));
    /* what the rows say, kind by kind */
    const sr_applier *m = sr__applier(SUIRO__V1__EVENT__BODY_MEASUREMENTS);
    cr_assert(m->check && !m->apply && m->series, "measurements: checked in pass 1, applied in pass 2");
    const sr_applier *co = sr__applier(SUIRO__V1__EVENT__BODY_CORRECTION);
    cr_assert(co->check && !co->apply && co->series == m->series,
              "corrections: checked in pass 1, applied in pass 2 as measurements are");
    static const int indexed[] = {
        SUIRO__V1__EVENT__BODY_MASTER_PUT,    SUIRO__V1__EVENT__BODY_MASTER_DELETE,
        SUIRO__V1__EVENT__BODY_DOC_PUT,       SUIRO__V1__EVENT__BODY_DOC_DELETE,
        SUIRO__V1__EVENT__BODY_FILE_PUT,      SUIRO__V1__EVENT__BODY_FILE_DELETE,
        SUIRO__V1__EVENT__BODY_REGISTRY_PUT,  SUIRO__V1__EVENT__BODY_REGISTRY_DELETE,
        SUIRO__V1__EVENT__BODY_REQUEST_CREATED, SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION,
        SUIRO__V1__EVENT__BODY_MONITOR,       SUIRO__V1__EVENT__BODY_SESSION, /* an app's AP-IF session */
        SUIRO__V1__EVENT__BODY_USER,          /* a user's whole state ("users") */
        SUIRO__V1__EVENT__BODY_PENDING,       /* a pending change's whole state ("pending") */
        SUIRO__V1__EVENT__BODY_LOGIN_POLICY,  /* a scope's login policy ("policies") */
        SUIRO__V1__EVENT__BODY_FILE_SHARE,    /* a file's share list ("files") */
        SUIRO__V1__EVENT__BODY_ALARM,         /* an alarm's whole state ("alarms", engine/alarms.c) */
        SUIRO__V1__EVENT__BODY_ALIVE,         /* a principal's latest alive transition ("alive") */
    };
    for (size_t i = 0; i < sizeof indexed / sizeof *indexed; i++) {
        const sr_applier *a = sr__applier(indexed[i]);
        cr_assert(a->apply && !a->series, "%s: applied to the index in pass 1", a->name);
    }
    static const int log_only[] = {SUIRO__V1__EVENT__BODY_AUTH};
    for (size_t i = 0; i < sizeof log_only / sizeof *log_only; i++) {
        const sr_applier *a = sr__applier(log_only[i]);
        cr_assert(!a->check && !a->apply && !a->series, "%s: the log is its store", a->name);
    }
    /* key events (issue #16): the writer carries out a rotation in the keyring (engine/keys.c), nothing in
     * the index; a replay applies nothing (the keyring is its own store) */
    const sr_applier *ky = sr__applier(SUIRO__V1__EVENT__BODY_KEY);
    cr_assert(!ky->check && ky->apply == sr__apply_key && !ky->series, "key: the writer's rotation, in pass 1");
    const sr_applier *ck = sr__applier(SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT);
    cr_assert(ck->check && !ck->apply && ck->series, "heads checkpoint: refused from a command, applied in pass 2");
}

/* ---- the schema's databases ------------------------------------------- */

Test(engine_invariants, the_index_holds_the_schemas_databases_with_their_flags)
{
    sr_engine *e = open_engine(64);
    MDB_txn *t;
    cr_assert_eq(sr_index_read_begin(e->ix, &t), SR_OK);
    for (int i = 0; i < SR_DB_COUNT; i++) {
        unsigned flags = 0;
        cr_assert_eq(mdb_dbi_flags(t, sr_index_dbi(e->ix, (unsigned)i), &flags), 0);
        cr_assert_eq(flags & (MDB_DUPSORT | MDB_DUPFIXED), sr_schema_dbs[i].flags, "%s", sr_schema_db_name((sr_dbi)i));
    }
    sr_index_read_end(e->ix, t);
    cr_assert_eq(sr_schema_dbs[SR_DB_MSGIDS].flags, MDB_DUPSORT | MDB_DUPFIXED);
    cr_assert_str_eq(sr_schema_db_name(SR_DB_SERIES), "series");
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(engine_invariants, the_series_key_is_the_point_then_the_order_preserving_time_both_big_endian)
{
    uint8_t k[SR_SERIES_KEY_LEN];
    sr_series_key(k, 0x01020304u, 0);
    static const uint8_t want0[SR_SERIES_KEY_LEN] = {1, 2, 3, 4, 0x80, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(memcmp(k, want0, sizeof k), 0);
    sr_series_key(k, 7, 0x0102030405060708ll);
    static const uint8_t want1[SR_SERIES_KEY_LEN] = {0, 0, 0, 7, 0x81, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(memcmp(k, want1, sizeof k), 0);
    /* byte order is (point, ts) order, negative times included (schema.h invariant 2) */
    static const struct {
        uint32_t p;
        int64_t ts;
    } in_order[] = {{1, INT64_MIN}, {1, -1000}, {1, -1}, {1, 0}, {1, 1}, {1, INT64_MAX}, {2, INT64_MIN}, {2, 0}};
    for (size_t i = 1; i < sizeof in_order / sizeof in_order[0]; i++) {
        uint8_t a[SR_SERIES_KEY_LEN], b[SR_SERIES_KEY_LEN];
        sr_series_key(a, in_order[i - 1].p, in_order[i - 1].ts);
        sr_series_key(b, in_order[i].p, in_order[i].ts);
        cr_expect_lt(memcmp(a, b, sizeof a), 0, "row %zu", i);
        cr_expect_eq(get_be32(b), in_order[i].p);
        cr_expect_eq(get_be64(b + 4), ts_key(in_order[i].ts));
    }
}

/* ---- the writer ---------------------------------------------------------- */

Test(engine_invariants, writer_check_holds_on_a_live_engine_and_names_each_broken_state)
{
    sr_engine *e = open_engine(64);
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
    pthread_mutex_lock(&e->mu); /* the writer waits for commands under mu: nothing moves */
    cr_assert_null(sr_writer_check(e), "%s", sr_writer_check(e));

    /* a queue of our own, in place of the (empty) real one */
    opq *saved_q = e->q;
    size_t saved_nq = e->nq, saved_capq = e->capq;
    uint32_t saved_depth = e->depth;
    cmd c[3];
    memset(c, 0, sizeof c);
    c[0].next = &c[1];
    opq q = {.op = "opX", .head = &c[0], .tail = &c[1], .depth = 2};
    e->q = &q;
    e->nq = e->capq = 1;
    e->depth = 2;
    cr_assert_null(sr_writer_check(e), "two queued commands: %s", sr_writer_check(e));

    struct {
        const char *what, *expect;
    } cases[] = {
        {"depth above the lists", "sum of the operator queues"},
        {"an operator's depth not its list's length", "not the length of its list"},
        {"a tail with a next", "tail has a next command"},
        {"a head without a tail", "head without a tail"},
        {"deeper than queue_max_per_op", "queue_max_per_op"},
        {"deeper than queue_max", "deeper than queue_max"},
        {"poisoned without a cause", "poisoned without a cause"},
        {"a cause while not poisoned", "a poison cause while not poisoned"},
        {"read-only for lack of space on a writable engine", "lack of space"},
        {"read-only with a writer thread", "read-only with a writer thread"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t qmax = e->o.queue_max, qop = e->o.queue_max_per_op;
        switch (i) {
        case 0: e->depth = 3; break;
        case 1: q.depth = 3, e->depth = 3; break;
        case 2: c[1].next = &c[2]; break;
        case 3: q.tail = NULL; break;
        case 4: e->o.queue_max_per_op = 1; break;
        case 5: e->o.queue_max = 1; break;
        case 6: e->poisoned = 1; break;
        case 7: e->poison_cause = SR_EIO; break;
        case 8: e->nospace_ro = 1, e->poison_cause = SR_ENOSPC; break;
        case 9: e->o.readonly = 1; break;
        }
        const char *why = sr_writer_check(e);
        cr_assert_not_null(why, "%s: not caught", cases[i].what);
        cr_assert(strstr(why, cases[i].expect), "%s: %s", cases[i].what, why);
        /* put it back */
        e->depth = 2, q.depth = 2, c[1].next = NULL, q.tail = &c[1];
        e->o.queue_max = qmax, e->o.queue_max_per_op = qop;
        e->poisoned = 0, e->poison_cause = SR_OK, e->nospace_ro = 0, e->o.readonly = 0;
        cr_assert_null(sr_writer_check(e), "%s, put back: %s", cases[i].what, sr_writer_check(e));
    }
    e->q = saved_q;
    e->nq = saved_nq;
    e->capq = saved_capq;
    e->depth = saved_depth;
    cr_assert_null(sr_writer_check(e));
    pthread_mutex_unlock(&e->mu);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

/* ---- the heads ----------------------------------------------------------- */

Test(engine_invariants, heads_check_holds_through_flushes_and_late_values_and_names_each_broken_state)
{
    sr_engine *e = open_engine(16);
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
    uint32_t p = 0;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &p, NULL), SR_OK);
    sr_result r;
    /* 20 values (a flush: the first is at 12..15 of head_max 16), 10 more
     * (in the head), then 3 late ones */
    sr_sample s[30];
    for (int i = 0; i < 30; i++) s[i] = (sr_sample){.ts = 1000 * (i + 10), .v.f = i};
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s, 20, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s + 20, 10, NULL, &r), SR_OK, "%s", r.err.msg);
    sr_sample late[3] = {{.ts = 500}, {.ts = 1500}, {.ts = 2500}};
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, late, 3, NULL, &r), SR_OK, "%s", r.err.msg);

    /* the writer is idle (every put was waited for): we read what it wrote */
    head *h = head_find(e, p);
    cr_assert_not_null(h);
    cr_assert(h->has_flushed, "the head flushed");
    cr_assert_eq(h->nlate, 3, "the late values wait in the head");
    cr_assert_geq(h->n, 2, "samples after the flush");
    cr_assert_null(sr_head_check(e, h, SR_HEAD_AT_REST), "%s", sr_head_check(e, h, SR_HEAD_AT_REST));
    cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
    /* the stripe: held, the check passes; not held, it says so */
    pthread_mutex_lock(stripe_of(e, p));
    cr_assert_null(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
    pthread_mutex_unlock(stripe_of(e, p));
    const char *why = sr_head_check(e, h, SR_HEAD_STRIPE_HELD);
    cr_assert(why && strstr(why, "stripe"), "%s", why ? why : "not caught");

    head saved = *h;
    hsample v0 = h->v[0], v1 = h->v[1], lastlate = h->late[h->nlate - 1]; /* saved shares the arrays */
    uint32_t hm = e->o.head_max;
    struct {
        const char *what, *expect;
        int all; /* sr_heads_check rather than sr_head_check */
    } cases[] = {
        {"two head samples swapped", "head samples out of time order", 0},
        {"two equal timestamps", "head samples out of time order", 0},
        {"more samples than capacity", "capacity", 0},
        {"a head sample at flushed_max", "not newer than flushed_max", 0},
        {"a late sample after flushed_max", "late sample newer than flushed_max", 0},
        {"late samples before any flush", "before the head ever flushed", 0},
        {"a head sample before first_seq", "older than the head's first_seq", 0},
        {"generations out of order", "the flush before the previous generation", 0},
        {"a head at its flush threshold", "flush threshold", 0},
        {"a head at another point's slot", "slot", 0},
        {"npoints off by one", "npoints", 1},
        {"a head older than the last heads checkpoint", "before the last heads checkpoint", 0},
    };
    uint64_t ckb = e->ckpt_before;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        switch (i) {
        case 0: h->v[0] = v1, h->v[1] = v0; break;
        case 1: h->v[1].ts = h->v[0].ts; break;
        case 2: h->n = h->cap + 1; break;
        case 3: h->flushed_max = h->v[0].ts; break;
        case 4: h->late[h->nlate - 1].ts = h->flushed_max + 1; break;
        case 5: h->has_flushed = 0; break;
        case 6: h->first_seq = h->v[0].seq + 1; break;
        case 7: h->prev_flush_seq = h->old_seq + 1; break;
        case 8: e->o.head_max = (uint32_t)h->n; break;
        case 9: h->point = p + 1; break;
        case 10: atomic_fetch_add(&e->npoints, 1); break;
        case 11: e->ckpt_before = h->first_seq + 1; break;
        }
        why = cases[i].all ? sr_heads_check(e) : sr_head_check(e, h, SR_HEAD_AT_REST);
        cr_assert_not_null(why, "%s: not caught", cases[i].what);
        cr_assert(strstr(why, cases[i].expect), "%s: %s", cases[i].what, why);
        /* put it back */
        *h = saved;
        h->v[0] = v0, h->v[1] = v1;
        h->late[h->nlate - 1] = lastlate;
        e->o.head_max = hm;
        e->ckpt_before = ckb;
        if (i == 10) atomic_fetch_sub(&e->npoints, 1);
        cr_assert_null(sr_heads_check(e), "%s, put back: %s", cases[i].what, sr_heads_check(e));
    }
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(engine_invariants, heads_check_holds_after_a_restart_rebuilds_the_heads)
{
    sr_engine *e = open_engine(16);
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
    uint32_t p = 0;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &p, NULL), SR_OK);
    sr_result r;
    sr_sample s[25];
    for (int i = 0; i < 25; i++) s[i] = (sr_sample){.ts = 1000 * (i + 10), .v.f = i};
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s, 20, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s + 20, 5, NULL, &r), SR_OK, "%s", r.err.msg);
    sr_sample late = {.ts = 700};
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, &late, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    size_t n = head_find(e, p)->n, nlate = head_find(e, p)->nlate;
    cr_assert_eq(sr_engine_close(e), SR_OK);
    e = open_engine(16);
    head *h = head_find(e, p);
    cr_assert_not_null(h);
    cr_assert_eq(n, 5);
    cr_assert_eq(h->n, n, "the replay rebuilt the head");
    cr_assert_eq(h->nlate, nlate, "and its late samples");
    cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
    pthread_mutex_lock(&e->mu);
    cr_assert_null(sr_writer_check(e), "%s", sr_writer_check(e));
    pthread_mutex_unlock(&e->mu);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

/* ---- a damaged heads row --------------------------------------------------- */

static char alert_msg[600];
static void keep_alert(void *ctx, int error, const char *msg)
{
    (void)ctx;
    (void)error;
    snprintf(alert_msg, sizeof alert_msg, "%s", msg);
}

/* Overwrite the heads row of point p with its first 17 bytes, has_flushed
 * and a short tail of tail_n samples. */
static void set_tail(uint32_t p, uint8_t has_flushed, uint32_t tail_n)
{
    char ix[1100];
    snprintf(ix, sizeof ix, "%s/index", dir);
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi heads;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 32), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 1u << 30), 0);
    cr_assert_eq(mdb_env_open(env, ix, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    cr_assert_eq(mdb_dbi_open(t, "heads", 0, &heads), 0);
    uint8_t k[4], row[21];
    be32(k, p);
    MDB_val K = {4, k}, V;
    cr_assert_eq(mdb_get(t, heads, &K, &V), 0, "the point has a heads row");
    cr_assert(V.mv_size == 17 || V.mv_size == 21);
    memcpy(row, V.mv_data, 17);
    row[16] = has_flushed;
    sr_put_le32(row + 17, tail_n);
    V = (MDB_val){21, row};
    cr_assert_eq(mdb_put(t, heads, &K, &V, 0), 0);
    cr_assert_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

/* A heads row whose short tail is not short (tail_n >= head_max; heads.c
 * invariant 9), or on a head that never flushed, is a damaged index: with
 * it flush_at's head_max - tail_n would wrap and the head never flush. The
 * open refuses it, naming the point; a short one opens. */
Test(engine_invariants, a_heads_row_whose_tail_is_not_short_is_corrupt)
{
    sr_engine *e = open_engine(16);
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
    uint32_t p = 0;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &p, NULL), SR_OK);
    sr_sample s[20];
    for (int i = 0; i < 20; i++) s[i] = (sr_sample){.ts = 1000 * (i + 10), .v.f = i};
    sr_result r;
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s, 20, NULL, &r), SR_OK, "%s", r.err.msg); /* a flush */
    cr_assert(head_find(e, p)->has_flushed);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 16, .alert = keep_alert};
    sr_errinfo ei;
    static const struct {
        uint8_t flushed;
        uint32_t tail;
        int rc;
    } cases[] = {{1, 16, SR_ECORRUPT}, {1, 0xFFFFFFFFu, SR_ECORRUPT}, {0, 3, SR_ECORRUPT}, {1, 15, SR_OK}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        set_tail(p, cases[i].flushed, cases[i].tail);
        alert_msg[0] = 0;
        e = NULL;
        int rc = sr_engine_open(dir, &o, &e, &ei);
        cr_assert_eq(rc, cases[i].rc, "case %zu: %s: %s", i, sr_err_name(rc), ei.msg);
        if (rc) {
            char want[64];
            snprintf(want, sizeof want, "heads row of point %u ", p);
            cr_assert(strstr(alert_msg, want) && strstr(alert_msg, "short tail"), "case %zu: %s", i, alert_msg);
            continue;
        }
        cr_assert_eq(head_find(e, p)->tail_n, cases[i].tail);
        cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
        cr_assert_eq(sr_engine_close(e), SR_OK);
    }
}

/* Delete every chunk of point p from the index in dir. */
static void drop_chunks(uint32_t p)
{
    char ix[1100];
    snprintf(ix, sizeof ix, "%s/index", dir);
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi series;
    MDB_cursor *c;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 32), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 1u << 30), 0);
    cr_assert_eq(mdb_env_open(env, ix, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    cr_assert_eq(mdb_dbi_open(t, "series", 0, &series), 0);
    cr_assert_eq(mdb_cursor_open(t, series, &c), 0);
    uint8_t k[4];
    be32(k, p);
    MDB_val K = {4, k}, V;
    int n = 0;
    for (int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE); r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == p;
         r = mdb_cursor_get(c, &K, &V, MDB_GET_CURRENT), n++)
        cr_assert_eq(mdb_cursor_del(c, 0), 0);
    cr_assert_gt(n, 0, "the point had chunks");
    mdb_cursor_close(c);
    cr_assert_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

/* The samples of point p's last chunk in e's index. */
static uint32_t last_chunk_count(sr_engine *e, uint32_t p)
{
    MDB_txn *t;
    MDB_cursor *c;
    cr_assert_eq(sr_index_read_begin(e->ix, &t), SR_OK);
    cr_assert_eq(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c), 0);
    uint8_t k[4];
    be32(k, p + 1);
    MDB_val K = {4, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    r = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
    cr_assert(r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == p, "the point has a chunk");
    sr_chunk_info info;
    cr_assert_eq(sr_chunk_info_get(V.mv_data, V.mv_size, &info), SR_OK);
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return info.count;
}

/* A short tail whose chunk is gone (a damaged index: tail_key finds none):
 * the flush at head_max - tail_n writes the head's samples as a chunk of
 * their own, which is then the short tail (not taken for a full chunk), so
 * the next flush fills it to head_max. */
static sr_engine *open_ckpt(void) /* head_max 16; a close checkpoints (replay_max_events / 64 = 1) */
{
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 16, .replay_max_events = 64};
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(dir, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s: %s", sr_err_name(rc), ei.msg);
    return e;
}

Test(engine_invariants, a_short_tail_without_its_chunk_is_not_taken_for_full)
{
    sr_engine *e = open_ckpt();
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
    uint32_t p = 0;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &p, NULL), SR_OK);
    sr_sample s[40];
    for (int i = 0; i < 40; i++) s[i] = (sr_sample){.ts = 1000 * (i + 10), .v.f = i};
    sr_result r;
    for (int i = 0; i < 20; i++) /* one at a time: a flush at 12..15, the rest in the head */
        cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s + i, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert(head_find(e, p)->has_flushed && head_find(e, p)->n > 0);
    cr_assert_eq(sr_engine_close(e), SR_OK); /* its heads checkpoint cuts the rest short */
    drop_chunks(p);
    e = open_ckpt();
    head *h = head_find(e, p);
    uint32_t tn = h->tail_n;
    cr_assert(tn > 0 && tn < 16, "a short tail of %u", tn);
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s + 20, 16 - tn, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(h->n, 0, "flushed at head_max - tail_n");
    cr_assert_eq(last_chunk_count(e, p), 16 - tn);
    cr_assert_eq(h->tail_n, 16 - tn, "the chunk written is the short tail now");
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s + 36 - tn, tn, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(h->n, 0, "flushed at head_max");
    cr_assert_eq(h->tail_n, 0);
    cr_assert_eq(last_chunk_count(e, p), 16, "the short chunk was filled");
    cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
    cr_assert_eq(sr_engine_close(e), SR_OK);
}
