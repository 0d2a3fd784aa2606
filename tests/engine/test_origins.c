/* tests/engine/test_origins.c -- the cluster's replicated events
 * (engine/origins.c, issue #19 phase 2a): an event another node wrote,
 * submitted with its origin, is applied exactly once (a second submit of
 * the same origin is a duplicate: nothing applied, nothing appended); a
 * replicated data point gets this node's number and the origin's values
 * are mapped to it; the origins and the consumers' checkpoints are in the
 * index, survive a reopen and are given again by a rebuild (the engine
 * invariants: index = f(log)); the log's event shows its origin (the
 * publisher skips it); the kinds' classes. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engsuite.h"

static char *adir, *bdir;
TestSuite(origins, .timeout = 300);

static const sr_vtype NUM[] = {SR_VT_NUMBER};

typedef struct copyrun {
    sr_engine *to;
    uint64_t stream; /* the "stream seq" given to each copied event */
    size_t applied, dups, skipped;
} copyrun;

/* The consumer's work, without NATS: each of the origin's events (node "a")
 * submitted to `to` with its origin; the engine's own kinds skipped. */
static int copy_one(void *ctx, const sr_event_view *v)
{
    copyrun *c = ctx;
    c->stream++;
    if (sr_event_kind_class(v->kind) == SR_EVCLASS_LOCAL) {
        c->skipped++;
        return 0;
    }
    sr_origin o = {"a", v->seq, 3, c->stream, sr_event_kind_class(v->kind) == SR_EVCLASS_REG ? 1 : 2};
    /* submit and wait: one at a time */
    sr_result r;
    memset(&r, 0, sizeof r);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_buf_append(&b, v->rec, v->rec_len), SR_OK);
    int rc = et_submit_origin(c->to, b.data, b.len, &o, &r);
    sr_buf_release(&b);
    cr_assert_eq(rc, SR_OK, "seq %" PRIu64 " (%s): %s %s", v->seq, v->kind, sr_err_name(rc), r.err.msg);
    if (r.duplicate) c->dups++;
    else c->applied++;
    return 0;
}

static uint64_t last_seq(sr_engine *e)
{
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    return st.watermark;
}

static double latest_of(sr_engine *e, const char *op, const char *id, uint32_t *pn)
{
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(e, op, id, &pi), SR_OK, "%s/%s", op, id);
    sr_sample s;
    int found = 0;
    cr_assert_eq(sr_engine_latest(e, &pi.point, 1, &s, &found, NULL), SR_OK);
    cr_assert(found, "%s/%s has a value", op, id);
    if (pn) *pn = pi.point;
    return s.v.f;
}

Test(origins, applied_once_points_mapped_survive_reopen_and_rebuild)
{
    sr_engine *a = es_open(&adir, "orig-a", NULL), *b = es_open(&bdir, "orig-b", NULL);
    /* node a: op1's masters and values */
    cr_assert_eq(et_setup_masters(a, "op1", 4, NUM, 1), SR_OK);
    uint32_t pa;
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(a, "op1", "P001", &pi), SR_OK);
    pa = pi.point;
    for (int i = 0; i < 5; i++) {
        sr_sample s = {.ts = 1700000000000 + i * 1000, .quality = SR_Q_GOOD, .v.f = 10.5 + i};
        sr_result r;
        cr_assert_eq(et_put(a, "op1", "GW2", pa, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    }
    /* node b has points of its own first: its numbers differ from a's */
    cr_assert_eq(et_setup_masters(b, "op2", 3, NUM, 1), SR_OK);
    uint64_t b_before = last_seq(b);

    copyrun c = {.to = b};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c, &last), SR_OK);
    cr_assert_gt(c.applied, 10);
    cr_assert_eq(c.dups, 0);
    uint64_t b_after = last_seq(b);
    cr_assert_gt(b_after, b_before);

    /* the value of op1/P001 on b: a's last one, under b's own number */
    uint32_t pb;
    cr_assert_float_eq(latest_of(b, "op1", "P001", &pb), 14.5, 1e-9);
    cr_assert_neq(pb, pa, "b numbered its points after its own (%u)", pb);
    sr_buf samples, strings;
    sr_buf_init(&samples);
    sr_buf_init(&strings);
    int more = 0;
    sr_range_q q = {pb, 0, INT64_MAX, 0, 0, INT64_MIN};
    cr_assert_eq(sr_engine_range(b, &q, &samples, &strings, &more), SR_OK);
    cr_assert_eq(samples.len / sizeof(sr_sample), 5, "each value once");

    /* the same origins again (a consumer restarted behind its checkpoint):
     * all duplicates, nothing appended */
    copyrun c2 = {.to = b};
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c2, &last), SR_OK);
    cr_assert_eq(c2.applied, 0);
    cr_assert_eq(c2.dups, c.applied);
    cr_assert_eq(last_seq(b), b_after, "a duplicate appends nothing");
    samples.len = 0;
    cr_assert_eq(sr_engine_range(b, &q, &samples, &strings, &more), SR_OK);
    cr_assert_eq(samples.len / sizeof(sr_sample), 5, "still each value once");

    /* the checkpoints: the highest stream seq of each consumer */
    uint64_t ck1 = 0, ck2 = 0, loc = 0;
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 1, &ck1), SR_OK);
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 2, &ck2), SR_OK);
    cr_assert_gt(ck1, 0);
    cr_assert_gt(ck2, ck1, "the values came after the masters");
    cr_assert_eq(sr_engine_origin_seen(b, "a", 1, &loc), SR_OK);
    cr_assert_gt(loc, b_before);
    uint64_t nloc = 0;
    cr_assert_eq(sr_engine_origin_seen(b, "a", 999999, &nloc), SR_ENOTFOUND);
    uint64_t none = 7;
    cr_assert_eq(sr_engine_cluster_ckpt(b, 4, 2, &none), SR_OK);
    cr_assert_eq(none, 0);

    /* reopen, then rebuild: the same index, the same checkpoints */
    cr_assert_eq(sr_engine_close(b), SR_OK);
    b = es_open(&bdir, NULL, NULL);
    uint64_t r1 = 0, r2 = 0;
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 1, &r1), SR_OK);
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 2, &r2), SR_OK);
    cr_assert_eq(r1, ck1);
    cr_assert_eq(r2, ck2);
    b = es_rebuilt(b, &bdir, NULL);
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 2, &r2), SR_OK);
    cr_assert_eq(r2, ck2);
    cr_assert_eq(sr_engine_origin_seen(b, "a", 1, &r1), SR_OK);
    cr_assert_eq(r1, loc);
    /* after the rebuild still exactly once */
    copyrun c3 = {.to = b};
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c3, &last), SR_OK);
    cr_assert_eq(c3.applied, 0);
    cr_assert_float_eq(latest_of(b, "op1", "P001", NULL), 14.5, 1e-9);
    sr_buf_release(&samples);
    sr_buf_release(&strings);
    es_finish(a, &adir);
    es_finish(b, &bdir);
}

static sr_buf first_copy; /* the first event of b's log holding an origin */
static int origin_of(void *ctx, const sr_event_view *v)
{
    size_t *n = ctx;
    if (v->origin_node) {
        cr_assert_str_eq(v->origin_node, "a");
        if (!n[0]) cr_assert_eq(sr_buf_append(&first_copy, v->rec, v->rec_len), SR_OK);
        n[0]++;
    } else
        n[1]++;
    return 0;
}

Test(origins, the_log_shows_the_origin_and_refuses_what_is_not_replicable)
{
    sr_engine *a = es_open(&adir, "orig-a2", NULL), *b = es_open(&bdir, "orig-b2", NULL);
    cr_assert_eq(et_setup_masters(a, "op1", 2, NUM, 1), SR_OK);
    copyrun c = {.to = b};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c, &last), SR_OK);
    size_t n[2] = {0, 0};
    sr_buf_init(&first_copy);
    cr_assert_eq(sr_engine_log_each(b, 1, origin_of, n, &last), SR_OK);
    cr_assert_eq(n[0], c.applied, "every copied event holds its origin");
    cr_assert_gt(n[0], 0);

    /* b's copy holds an origin: it is not replicated again from b */
    sr_origin again = {"b", 1, 0, 1, 1};
    cr_assert_eq(sr_engine_submit_origin(a, first_copy.data, first_copy.len, &again, NULL, NULL), SR_EINVAL);
    sr_buf_release(&first_copy);
    /* the classes */
    cr_assert_eq(sr_event_kind_class("registry_put"), SR_EVCLASS_REG);
    cr_assert_eq(sr_event_kind_class("master_put"), SR_EVCLASS_REG);
    cr_assert_eq(sr_event_kind_class("session"), SR_EVCLASS_REG);
    cr_assert_eq(sr_event_kind_class("measurements"), SR_EVCLASS_DATA);
    cr_assert_eq(sr_event_kind_class("file_put"), SR_EVCLASS_DATA);
    cr_assert_eq(sr_event_kind_class("heads_checkpoint"), SR_EVCLASS_LOCAL);
    cr_assert_eq(sr_event_kind_class("write_audit"), SR_EVCLASS_LOCAL);
    cr_assert_eq(sr_event_kind_class("seq"), SR_EVCLASS_LOCAL, "not a case of the body");
    cr_assert_eq(sr_event_kind_class("nonsense"), SR_EVCLASS_LOCAL);
    /* bad input: no node, no seq, a bad consumer, bytes that are no event */
    sr_origin bad[] = {{"", 1, 0, 1, 1}, {"a", 0, 0, 1, 1}, {"a", 1, 0, 1, 3}};
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(sr_engine_submit_origin(b, junk, sizeof junk, &bad[i], NULL, NULL), SR_EINVAL);
    sr_origin ok = {"a", 1, 0, 1, 1};
    cr_assert_eq(sr_engine_submit_origin(b, junk, sizeof junk, &ok, NULL, NULL), SR_EINVAL);
    es_finish(a, &adir);
    es_finish(b, &bdir);
}
