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

#include "engine/evbuild.h"
#include "engsuite.h"

static char *adir, *bdir;
TestSuite(origins, .timeout = 300);

static const sr_vtype NUM[] = {SR_VT_NUMBER};

typedef struct copyrun {
    sr_engine *to;
    uint64_t stream; /* the "stream seq" given to each copied event */
    size_t applied, dups, skipped;
} copyrun;

/* v submitted to c->to with origin o, waited for; counted applied or duplicate */
static int submit_copy(copyrun *c, const sr_event_view *v, const sr_origin *o)
{
    sr_result r;
    memset(&r, 0, sizeof r);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_buf_append(&b, v->rec, v->rec_len), SR_OK);
    int rc = et_submit_origin(c->to, b.data, b.len, o, &r);
    sr_buf_release(&b);
    cr_assert_eq(rc, SR_OK, "seq %" PRIu64 " (%s): %s %s", v->seq, v->kind, sr_err_name(rc), r.err.msg);
    if (r.duplicate) c->dups++;
    else c->applied++;
    return 0;
}

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
    return submit_copy(c, v, &o); /* submit and wait: one at a time */
}

/* copy_one, but a's values come as a monitor's relay would send them
 * (docs/cluster.md "Monitors across nodes"): consumer 3, no stream seq */
static int copy_relayed(void *ctx, const sr_event_view *v)
{
    copyrun *c = ctx;
    if (sr_event_kind_class(v->kind) != SR_EVCLASS_DATA) return copy_one(ctx, v);
    sr_origin o = {"a", v->seq, 3, 0, 3};
    return submit_copy(c, v, &o);
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
    sr_origin bad[] = {{"", 1, 0, 1, 1}, {"a", 0, 0, 1, 1}, {"a", 1, 0, 1, 4}};
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(sr_engine_submit_origin(b, junk, sizeof junk, &bad[i], NULL, NULL), SR_EINVAL);
    sr_origin ok = {"a", 1, 0, 1, 1};
    cr_assert_eq(sr_engine_submit_origin(b, junk, sizeof junk, &ok, NULL, NULL), SR_EINVAL);
    es_finish(a, &adir);
    es_finish(b, &bdir);
}

/* A monitor's values relayed to the monitor's node (consumer 3): applied
 * once, under that node's point numbers, raising no consumer's checkpoint;
 * the stream's copy of the same events afterwards is a duplicate. */
Test(origins, a_relayed_event_is_applied_once_without_a_checkpoint)
{
    sr_engine *a = es_open(&adir, "orig-a3", NULL), *b = es_open(&bdir, "orig-b3", NULL);
    cr_assert_eq(et_setup_masters(a, "op1", 2, NUM, 1), SR_OK);
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(a, "op1", "P001", &pi), SR_OK);
    for (int i = 0; i < 3; i++) {
        sr_sample s = {.ts = 1700000000000 + i * 1000, .quality = SR_Q_GOOD, .v.f = 20.5 + i};
        sr_result r;
        cr_assert_eq(et_put(a, "op1", "GW2", pi.point, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    }
    cr_assert_eq(et_setup_masters(b, "op2", 3, NUM, 1), SR_OK); /* b's numbers differ from a's */
    copyrun c = {.to = b};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, copy_relayed, &c, &last), SR_OK);
    cr_assert_eq(c.dups, 0);
    cr_assert_float_eq(latest_of(b, "op1", "P001", NULL), 22.5, 1e-9);
    uint64_t ck2 = 1, b_after = last_seq(b);
    cr_assert_eq(sr_engine_cluster_ckpt(b, 3, 2, &ck2), SR_OK);
    cr_assert_eq(ck2, 0, "a relayed event raises no checkpoint");
    /* the stream's copies: all duplicates, nothing appended */
    copyrun c2 = {.to = b};
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c2, &last), SR_OK);
    cr_assert_eq(c2.applied, 0);
    cr_assert_eq(c2.dups, c.applied);
    cr_assert_eq(last_seq(b), b_after);
    es_finish(a, &adir);
    es_finish(b, &bdir);
}

/* ---- issue #19: point numbers across three nodes (engine/origins.c
 * invariants 4 and 5). Three engines a, b, c, each numbering its own
 * points; relay() is a node's publisher (sr_engine_cluster_payload: its own
 * events as logged, a replicated data point's MasterPut as its PointAlias,
 * other replicated events not at all) and the other node's consumer
 * (sr_engine_submit_origin with the sender's name and seq). ---- */

static char *cdir;

typedef struct relay {
    sr_engine *to;
    const char *node; /* the sender's [cluster] node */
    uint64_t from;    /* its first seq to relay */
    uint64_t stream;
    size_t applied, dups, refused, aliases, held;
    const char *only, *skip; /* relay only events of this kind / not of this one (NULL: any) */
    int last_rc;
    char last_err[512];
} relay;

static uint64_t streamseq; /* one "stream" for the test's partition */

static int relay_one(void *ctx, const sr_event_view *v)
{
    relay *x = ctx;
    sr_buf b;
    sr_buf_init(&b);
    int pay = sr_engine_cluster_payload(v, x->node, &b);
    cr_assert_geq(pay, 0);
    const char *kind = pay == SR_CLUSTER_ALIAS ? "point_alias" : v->kind;
    int cls = sr_event_kind_class(kind);
    if (pay == SR_CLUSTER_SKIP || cls == SR_EVCLASS_LOCAL || (x->only && strcmp(kind, x->only)) ||
        (x->skip && !strcmp(kind, x->skip))) {
        sr_buf_release(&b);
        return 0;
    }
    if (pay == SR_CLUSTER_SEND) cr_assert_eq(sr_buf_append(&b, v->rec, v->rec_len), SR_OK);
    else x->aliases++;
    sr_origin o = {x->node, v->seq, 3, ++streamseq, cls == SR_EVCLASS_REG ? 1 : 2};
    sr_result r;
    memset(&r, 0, sizeof r);
    int rc = et_submit_origin(x->to, b.data, b.len, &o, &r);
    sr_buf_release(&b);
    x->last_rc = rc;
    if (rc) {
        x->refused++;
        snprintf(x->last_err, sizeof x->last_err, "%s: %s", sr_err_name(rc), r.err.msg);
    } else if (r.duplicate)
        x->dups++;
    else
        x->applied++;
    x->held += r.held != 0;
    return 0;
}

/* relay_from, only events of kind `only` / all but kind `skip`. */
static relay relay_some(sr_engine *from, const char *node, sr_engine *to, uint64_t *mark, const char *only,
                        const char *skip)
{
    relay x = {.to = to, .node = node, .only = only, .skip = skip};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(from, *mark + 1, relay_one, &x, &last), SR_OK);
    if (last > *mark) *mark = last;
    return x;
}

/* Relay what `from` logged since the last relay of the same pair. */
static relay relay_from(sr_engine *from, const char *node, sr_engine *to, uint64_t *mark)
{
    relay x = {.to = to, .node = node};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(from, *mark + 1, relay_one, &x, &last), SR_OK);
    if (last > *mark) *mark = last;
    return x;
}

static uint32_t point_of(sr_engine *e, const char *op, const char *id)
{
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(e, op, id, &pi), SR_OK, "%s/%s", op, id);
    return pi.point;
}

static size_t values_of(sr_engine *e, uint32_t p, double *lastv)
{
    sr_buf samples, strings;
    sr_buf_init(&samples);
    sr_buf_init(&strings);
    int more = 0;
    sr_range_q q = {p, 0, INT64_MAX, 0, 0, INT64_MIN};
    cr_assert_eq(sr_engine_range(e, &q, &samples, &strings, &more), SR_OK);
    size_t n = samples.len / sizeof(sr_sample);
    if (n && lastv) *lastv = ((sr_sample *)samples.data)[n - 1].v.f;
    sr_buf_release(&samples);
    sr_buf_release(&strings);
    return n;
}

static void put1(sr_engine *e, const char *op, const char *gw, uint32_t p, int64_t ts, double v)
{
    sr_sample s = {.ts = ts, .quality = SR_Q_GOOD, .v.f = v};
    sr_result r;
    cr_assert_eq(et_put(e, op, gw, p, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

/* One more data point of op1 (under D-GW1, gateway GW1), written on e. */
static void add_point(sr_engine *e, const char *op, const char *id)
{
    Suiro__V1__MasterPut p = SUIRO__V1__MASTER_PUT__INIT;
    p.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    p.id = (char *)id;
    p.parent_id = "D-GW1";
    p.type = SUIRO__V1__VALUE_TYPE__VT_NUMBER;
    p.point_kind = SUIRO__V1__POINT_KIND__PK_BOTH;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = &p;
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_ev_pack(&ev, op, "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, "", &b), SR_OK);
    size_t len = b.len;
    sr_result r;
    cr_assert_eq(et_submit(e, &b, &len, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
}

/* The three nodes: a creates op1's masters; b and c number other points
 * first, so the three numbers of op1/P001 all differ. */
static void three_nodes(sr_engine **a, sr_engine **b, sr_engine **c, const char *tag)
{
    static sr_engine_opts oa = {.cluster_node = "a"}, ob = {.cluster_node = "b"}, oc = {.cluster_node = "c"};
    char t[64];
    snprintf(t, sizeof t, "%s-a", tag);
    *a = es_open(&adir, t, &oa);
    snprintf(t, sizeof t, "%s-b", tag);
    *b = es_open(&bdir, t, &ob);
    snprintf(t, sizeof t, "%s-c", tag);
    *c = es_open(&cdir, t, &oc);
    cr_assert_eq(et_setup_masters(*b, "opb", 3, NUM, 1), SR_OK);
    cr_assert_eq(et_setup_masters(*c, "opc", 7, NUM, 1), SR_OK);
    cr_assert_eq(et_setup_masters(*a, "op1", 4, NUM, 1), SR_OK);
}

Test(origins, three_nodes_values_sent_through_another_node_land_on_the_right_point)
{
    sr_engine *a, *b, *c;
    three_nodes(&a, &b, &c, "pmap3");
    static const sr_engine_opts oc = {.cluster_node = "c"};
    uint64_t a2b = 0, a2c = 0, b2c = 0, b2a = 0, a2b2 = 0;
    /* a's masters reach b and c (each numbers them itself) */
    relay x = relay_from(a, "a", b, &a2b);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    x = relay_from(a, "a", c, &a2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pa = point_of(a, "op1", "P001"), pb = point_of(b, "op1", "P001"), pc = point_of(c, "op1", "P001");
    cr_assert(pa != pb && pb != pc && pa != pc, "three numbers: a %u, b %u, c %u", pa, pb, pc);
    /* b's number names another data point on c: the value must not land there */
    size_t other_before = values_of(c, pb, NULL);

    /* a gateway sends a value of op1/P001 to b (P001 is under D-GW2: GW2) */
    put1(b, "op1", "GW2", pb, 1700000000000, 42.25);
    /* b's log reaches c: b's own opb masters, the alias of each op1 data
     * point (not the replicated MasterPuts themselves), then the value */
    x = relay_from(b, "b", c, &b2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.aliases, 4, "one alias per replicated data point of op1");
    double v = 0;
    cr_assert_eq(values_of(c, pc, &v), 1, "c stores b's value on its own op1/P001");
    cr_assert_float_eq(v, 42.25, 1e-9);
    cr_assert_eq(values_of(c, pb, NULL), other_before, "c's point %u (b's number) got nothing", pb);

    /* a point created on b, its values sent through a */
    add_point(b, "op1", "PB9");
    x = relay_from(b, "b", a, &b2a); /* b's MasterPut (and aliases of a's own points: identity on a) */
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    x = relay_from(b, "b", c, &b2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t qa = point_of(a, "op1", "PB9"), qb = point_of(b, "op1", "PB9"), qc = point_of(c, "op1", "PB9");
    cr_assert(qa != qc && qb != qc, "a %u, b %u, c %u", qa, qb, qc);
    put1(a, "op1", "GW1", qa, 1700000001000, 7.5);
    x = relay_from(a, "a", c, &a2c); /* a's aliases of opb's 3 points and of PB9, then the value */
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.aliases, 4);
    cr_assert_eq(values_of(c, qc, &v), 1, "c stores a's value on its own op1/PB9");
    cr_assert_float_eq(v, 7.5, 1e-9);
    /* and b gets a's value of its own point (a's alias of PB9: origin b, identity on b) */
    x = relay_from(a, "a", b, &a2b2);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(values_of(b, qb, &v), 1);
    cr_assert_float_eq(v, 7.5, 1e-9);

    /* a rebuild of c gives the same index (the 'P' rows from the logged
     * aliases), and b's next value still lands right */
    c = es_rebuilt(c, &cdir, &oc);
    put1(b, "op1", "GW2", pb, 1700000002000, 43.5);
    x = relay_from(b, "b", c, &b2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(values_of(c, pc, &v), 2);
    cr_assert_float_eq(v, 43.5, 1e-9);
    cr_assert_eq(values_of(c, pb, NULL), other_before);
    es_finish(a, &adir);
    es_finish(b, &bdir);
    es_finish(c, &cdir);
}

/* The publisher's alias of b's first replicated data point MasterPut. */
typedef struct grab {
    sr_buf alias;
    uint64_t seq;
} grab;

static int grab_alias(void *ctx, const sr_event_view *v)
{
    grab *g = ctx;
    if (g->seq) return 0;
    sr_buf b;
    sr_buf_init(&b);
    if (sr_engine_cluster_payload(v, "b", &b) == SR_CLUSTER_ALIAS) {
        g->alias = b;
        g->seq = v->seq;
        return 0;
    }
    sr_buf_release(&b);
    return 0;
}

Test(origins, an_alias_or_a_value_out_of_order_is_held_a_mismatched_alias_refused_never_misstored)
{
    sr_engine *a, *b, *c;
    three_nodes(&a, &b, &c, "pmapx");
    uint64_t a2b = 0, a2c = 0, b2c = 0;
    relay x = relay_from(a, "a", b, &a2b);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pb = point_of(b, "op1", "P001");
    put1(b, "op1", "GW2", pb, 1700000000000, 42.25);

    /* c has not applied a's MasterPuts: b's aliases (no row of a's number)
     * and b's value (no row of b's number) are held (issue #19 hold,
     * origins.c invariant 6) -- not refused, not stored on c's own point pb */
    size_t other_before = values_of(c, pb, NULL);
    uint64_t c_before = last_seq(c);
    x = relay_from(b, "b", c, &b2c);
    cr_assert_eq(x.applied, 7 + 4 + 1, "b's own opb masters (4 + 3 points), the held aliases and value: %zu",
                 x.applied);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.held, 4 + 1, "the 4 aliases and the value");
    cr_assert_eq(values_of(c, pb, NULL), other_before, "nothing on c's point %u", pb);
    uint64_t held = 0;
    cr_assert_eq(sr_engine_cluster_held(c, &held, NULL, NULL, 0), SR_OK);
    cr_assert_eq(held, 5, "b's aliases and value are held");

    /* a's MasterPuts arrive: each releases b's alias of its point, and the
     * alias of P001 releases b's value, in the same group */
    x = relay_from(a, "a", c, &a2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pc = point_of(c, "op1", "P001");
    double v = 0;
    cr_assert_eq(values_of(c, pc, &v), 1);
    cr_assert_float_eq(v, 42.25, 1e-9);
    cr_assert_eq(values_of(c, pb, NULL), other_before);
    cr_assert_eq(sr_engine_cluster_held(c, &held, NULL, NULL, 0), SR_OK);
    cr_assert_eq(held, 0);
    /* b's log read again (a consumer behind its checkpoint): duplicates */
    uint64_t again = 0, c_now = last_seq(c);
    cr_assert_gt(c_now, c_before);
    x = relay_from(b, "b", c, &again);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.applied, 0);
    cr_assert_eq(x.dups, 7 + 4 + 1, "the masters, the aliases and the value: duplicates");
    cr_assert_eq(last_seq(c), c_now, "nothing appended");
    cr_assert_eq(values_of(c, pc, NULL), 1);
    /* and a rebuild gives the same index */
    static const sr_engine_opts oc = {.cluster_node = "c"};
    c = es_rebuilt(c, &cdir, &oc);
    cr_assert_eq(values_of(c, pc, NULL), 1);

    /* an alias whose data id is not the point's here: refused */
    grab g = {.seq = 0};
    sr_buf_init(&g.alias);
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(b, 1, grab_alias, &g, &last), SR_OK);
    cr_assert_gt(g.seq, 0);
    Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, g.alias.len, g.alias.data);
    cr_assert_not_null(ev);
    cr_assert_eq(ev->body_case, SUIRO__V1__EVENT__BODY_POINT_ALIAS);
    cr_assert_str_eq(ev->point_alias->origin_node, "a");
    cr_assert_eq(ev->seq, g.seq, "the alias has the MasterPut's seq (id b:seq)");
    char *id0 = ev->point_alias->data_id;
    ev->point_alias->data_id = "P002"; /* (a's number is P000's or P001's...) */
    ev->point_alias->point = 900;      /* a new number of b: no row yet */
    sr_buf bad;
    sr_buf_init(&bad);
    cr_assert_eq(sr_buf_reserve(&bad, protobuf_c_message_get_packed_size(&ev->base)), SR_OK);
    bad.len = protobuf_c_message_pack(&ev->base, bad.data);
    sr_origin o = {"b", 999999, 3, ++streamseq, 1};
    sr_result r;
    cr_assert_eq(et_submit_origin(c, bad.data, bad.len, &o, &r), SR_ECONFLICT, "%s", r.err.msg);
    cr_assert(strstr(r.err.msg, "never mis-mapped"), "%s", r.err.msg);
    /* the same alias without an origin (this node's own): refused */
    sr_slice sl = {bad.data, bad.len};
    memset(&r, 0, sizeof r);
    int rc = sr_engine_submit_wait(c, &sl, 1, &r);
    cr_assert(rc == SR_EINVAL || r.rc == SR_EINVAL, "%s", r.err.msg);
    ev->point_alias->data_id = id0; /* (the unpacked one's, freed with it) */
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&bad);
    sr_buf_release(&g.alias);
    es_finish(a, &adir);
    es_finish(b, &bdir);
    es_finish(c, &cdir);
}

/* ---- issue #19 hold (engine/origins.c invariant 6): a replicated value
 * whose point number has no row yet (its MasterPut or PointAlias later in
 * a stream whose order broke) is held, then applied once the row comes:
 * exactly once, on the right point, across a reopen and a rebuild. ---- */

static uint64_t held_count(sr_engine *e, char *node, size_t cap)
{
    uint64_t n = 0, oldest = 0;
    cr_assert_eq(sr_engine_cluster_held(e, &n, &oldest, node, cap), SR_OK);
    cr_assert_eq(n == 0, oldest == 0, "the oldest held seq (%" PRIu64 ") iff any (%" PRIu64 ")", oldest, n);
    return n;
}

/* Submit rec (built by a node called node) to e with origin node:seq; the result. */
static sr_result submit_as(sr_engine *e, const char *node, uint64_t seq, sr_buf *rec)
{
    sr_origin o = {node, seq, 3, ++streamseq, 2};
    sr_result r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(et_submit_origin(e, rec->data, rec->len, &o, &r), SR_OK, "%s", r.err.msg);
    return r;
}

Test(origins, values_before_their_masterput_are_held_then_stored_on_the_right_point)
{
    sr_engine *a, *b, *c;
    three_nodes(&a, &b, &c, "hold1");
    static const sr_engine_opts oc = {.cluster_node = "c"};
    uint32_t pa = point_of(a, "op1", "P001");
    /* a's number pa names one of c's own opc points: nothing may land there */
    size_t other_before = values_of(c, pa, NULL);
    uint64_t c_start = last_seq(c);
    put1(a, "op1", "GW2", pa, 1700000000000, 1.5);
    put1(a, "op1", "GW2", pa, 1700000001000, 2.5);
    /* the values reach c before a's MasterPuts: held (logged, applied to nothing) */
    uint64_t m1 = 0;
    relay x = relay_some(a, "a", c, &m1, "measurements", NULL);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.applied, 2);
    cr_assert_eq(x.held, 2, "both values held");
    cr_assert_gt(last_seq(c), c_start, "logged");
    char node[16];
    cr_assert_eq(held_count(c, node, sizeof node), 2);
    cr_assert_str_eq(node, "a");
    cr_assert_eq(values_of(c, pa, NULL), other_before, "nothing on c's point %u (a's number)", pa);
    /* a copy arriving again while held: a duplicate, nothing appended */
    uint64_t m2 = 0;
    uint64_t before = last_seq(c);
    x = relay_some(a, "a", c, &m2, "measurements", NULL);
    cr_assert_eq(x.dups, 2);
    cr_assert_eq(x.applied, 0);
    cr_assert_eq(last_seq(c), before);
    /* held survives a restart */
    cr_assert_eq(sr_engine_close(c), SR_OK);
    c = es_open(&cdir, NULL, &oc);
    cr_assert_eq(held_count(c, NULL, 0), 2, "held after a reopen");
    /* the MasterPuts arrive: both values land on c's op1/P001, in log order */
    uint64_t m3 = 0;
    x = relay_some(a, "a", c, &m3, NULL, "measurements");
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pc = point_of(c, "op1", "P001");
    cr_assert_neq(pc, pa);
    double v = 0;
    cr_assert_eq(values_of(c, pc, &v), 2, "both held values on c's own op1/P001");
    cr_assert_float_eq(v, 2.5, 1e-9);
    sr_sample l;
    int found = 0;
    cr_assert_eq(sr_engine_latest(c, &pc, 1, &l, &found, NULL), SR_OK);
    cr_assert(found && l.ts == 1700000001000, "the latest is the later one");
    cr_assert_eq(held_count(c, NULL, 0), 0);
    cr_assert_eq(values_of(c, pa, NULL), other_before, "still nothing on c's point %u", pa);
    /* everything again: duplicates, each value still once */
    uint64_t m4 = 0;
    before = last_seq(c);
    x = relay_from(a, "a", c, &m4);
    cr_assert_eq(x.applied, 0);
    cr_assert_eq(last_seq(c), before);
    cr_assert_eq(values_of(c, pc, NULL), 2);

    /* values of two points in one event, one of them not mapped yet: the
     * whole event is held, then both are stored */
    add_point(a, "op1", "PA7");
    uint32_t pa7 = point_of(a, "op1", "PA7");
    sr_sample s1 = {.ts = 1700000002000, .quality = SR_Q_GOOD, .v.f = 3.5},
              s2 = {.ts = 1700000002000, .quality = SR_Q_GOOD, .v.f = 70.5};
    sr_pv_in in[2] = {{pa, SR_VT_NUMBER, &s1, 1}, {pa7, SR_VT_NUMBER, &s2, 1}};
    sr_buf bb;
    sr_buf_init(&bb);
    cr_assert_eq(sr_ev_measurements("op1", "admin", SR_ACTOR_USER, NULL, in, 2, &bb), SR_OK);
    size_t len = bb.len;
    sr_result r;
    cr_assert_eq(et_submit(a, &bb, &len, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&bb);
    uint64_t m5 = m4;
    x = relay_some(a, "a", c, &m5, "measurements", NULL);
    cr_assert_eq(x.held, 1);
    cr_assert_eq(held_count(c, NULL, 0), 1);
    cr_assert_eq(values_of(c, pc, NULL), 2, "the mapped point's value waits with the other");
    uint64_t m6 = m4;
    x = relay_some(a, "a", c, &m6, NULL, "measurements");
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pc7 = point_of(c, "op1", "PA7");
    cr_assert_eq(values_of(c, pc, &v), 3);
    cr_assert_float_eq(v, 3.5, 1e-9);
    cr_assert_eq(values_of(c, pc7, &v), 1);
    cr_assert_float_eq(v, 70.5, 1e-9);
    cr_assert_eq(held_count(c, NULL, 0), 0);

    /* a rebuild gives the same index (content hash, both replay ways) */
    c = es_rebuilt(c, &cdir, &oc);
    cr_assert_eq(values_of(c, pc, NULL), 3);
    cr_assert_eq(held_count(c, NULL, 0), 0);
    es_finish(a, &adir);
    es_finish(b, &bdir);
    es_finish(c, &cdir);
}

Test(origins, values_and_a_correction_before_their_alias_are_held_then_stored_and_a_missing_row_is_reported)
{
    sr_engine *a, *b, *c;
    three_nodes(&a, &b, &c, "hold2");
    static const sr_engine_opts oc = {.cluster_node = "c"};
    uint64_t a2b = 0, a2c = 0, b2c = 0, b2c_alias = 0;
    relay x = relay_from(a, "a", b, &a2b);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    x = relay_from(a, "a", c, &a2c);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    uint32_t pb = point_of(b, "op1", "P001"), pc = point_of(c, "op1", "P001");
    size_t other_before = values_of(c, pb, NULL);
    /* a gateway's value sent to b, then a correction of it made on b */
    put1(b, "op1", "GW2", pb, 1700000000000, 42.25);
    sr_sample cs = {.ts = 1700000000000, .quality = SR_Q_GOOD, .v.f = 40.0};
    sr_pv_in cin = {pb, SR_VT_NUMBER, &cs, 1};
    static const sr_cmd_env root = {"op1", "root", SR_ACTOR_USER, NULL, "cli"};
    sr_buf cb;
    sr_buf_init(&cb);
    sr_result r;
    cr_assert_eq(es_submit1(b, sr_ev_correction(&root, &cin, 1, "meter recalibrated", "csv-00000000000000a1", 1, &cb),
                            &cb, &r),
                 SR_OK, "%s", r.err.msg);
    /* b's log reaches c without its aliases: the value and the correction are held */
    x = relay_some(b, "b", c, &b2c, NULL, "point_alias");
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.held, 2, "the value and the correction");
    cr_assert_eq(held_count(c, NULL, 0), 2);
    cr_assert_eq(values_of(c, pb, NULL), other_before, "nothing on c's point %u (b's number)", pb);
    cr_assert_eq(values_of(c, pc, NULL), 0);
    /* a reopen in between */
    cr_assert_eq(sr_engine_close(c), SR_OK);
    c = es_open(&cdir, NULL, &oc);
    cr_assert_eq(held_count(c, NULL, 0), 2);
    /* the aliases arrive: the value then its correction, on c's P001 */
    x = relay_some(b, "b", c, &b2c_alias, "point_alias", NULL);
    cr_assert_eq(x.refused, 0, "%s", x.last_err);
    cr_assert_eq(x.aliases, 4);
    double v = 0;
    cr_assert_eq(values_of(c, pc, &v), 1, "one value at that time");
    cr_assert_float_eq(v, 40.0, 1e-9, "the correction, applied after the value");
    cr_assert_eq(values_of(c, pb, NULL), other_before);
    cr_assert_eq(held_count(c, NULL, 0), 0);

    /* a node's value whose mapping never comes: held and reported, not stored */
    sr_sample s = {.ts = 1700000005000, .quality = SR_Q_GOOD, .v.f = 9.75};
    sr_pv_in in = {pc, SR_VT_NUMBER, &s, 1}; /* z's number pc: c's own P001 here */
    sr_buf zb;
    sr_buf_init(&zb);
    cr_assert_eq(sr_ev_measurements("op1", "GW2", SR_ACTOR_GATEWAY, NULL, &in, 1, &zb), SR_OK);
    r = submit_as(c, "z", 41, &zb);
    cr_assert(r.held && !r.duplicate, "held");
    r = submit_as(c, "z", 41, &zb);
    cr_assert(r.duplicate, "the same origin again while held: a duplicate");
    sr_buf_release(&zb);
    char node[16];
    cr_assert_eq(held_count(c, node, sizeof node), 1);
    cr_assert_str_eq(node, "z");
    cr_assert_eq(values_of(c, pc, NULL), 1, "not stored on c's point of the same number");
    /* a rebuild keeps it held (and gives the same index) */
    c = es_rebuilt(c, &cdir, &oc);
    cr_assert_eq(held_count(c, NULL, 0), 1);
    cr_assert_eq(values_of(c, pc, &v), 1);
    cr_assert_float_eq(v, 40.0, 1e-9);
    es_finish(a, &adir);
    es_finish(b, &bdir);
    es_finish(c, &cdir);
}

/* A replicated FilePut names the origin node's data key; the writer logs it
 * with THIS node's active data key of the operator (0 without one), the key
 * the blob fetcher keeps the bytes under (engine/origins.c invariant 7,
 * api/cluster_blob.h): never a key id of another keyring (random ids: one
 * this keyring does not hold, refused before, or another key's). A reopen
 * and a rebuild give the same record. */
Test(origins, a_replicated_file_names_this_nodes_data_key)
{
    uint8_t mk[SR_KEY_LEN];
    memset(mk, 0x5a, sizeof mk);
    sr_key k;
    sr_key_from_bytes(&k, mk);
    sr_engine_opts o = {.key = &k, .key_source = "test"};
    sr_engine *a = es_open(&adir, "orig-fa", &o), *b = es_open(&bdir, "orig-fb", &o);
    uint8_t sha[32];
    uint32_t ka = 0, kb2 = 0, kb1 = 0;
    es_file(b, "op2", "n/other.txt", "b's own file", 1700000000000, sha, &kb2);
    es_file(a, "op1", "n/x.txt", "the bytes of a's file", 1700000000000, sha, &ka);
    cr_assert(ka && kb2);
    copyrun c = {.to = b};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c, &last), SR_OK);
    cr_assert_gt(c.applied, 0);
    sr_rec r = SR_REC_INIT;
    sr_file_meta f;
    cr_assert_eq(sr_read_file(b, "op1", "n/x.txt", &r, &f), SR_OK, "the replicated file is indexed on b");
    cr_assert_eq(f.key_id, 0u, "b has no data key of op1: 0 (a version 1 blob under b's store key), not a's %08x", ka);
    cr_assert_eq(memcmp(f.sha256.data, sha, 32), 0);
    sr_rec_close(&r);
    /* b gets a data key of op1; a's next file of op1 names it on b */
    cr_assert_eq(sr_engine_file_key(b, es_env_of("op1"), &kb1), SR_OK);
    cr_assert_neq(kb1, ka);
    es_file(a, "op1", "n/y.txt", "a's second file", 1700000001000, sha, &ka);
    copyrun c2 = {.to = b};
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, &c2, &last), SR_OK);
    cr_assert_eq(sr_read_file(b, "op1", "n/y.txt", &r, &f), SR_OK);
    cr_assert_eq(f.key_id, kb1, "b's active data key of op1 (%08x), not a's (%08x)", kb1, ka);
    sr_rec_close(&r);
    /* the log says so: a reopen and a rebuild give the same */
    cr_assert_eq(sr_engine_close(b), SR_OK);
    b = es_open(&bdir, NULL, &o);
    b = es_rebuilt(b, &bdir, &o);
    cr_assert_eq(sr_read_file(b, "op1", "n/y.txt", &r, &f), SR_OK);
    cr_assert_eq(f.key_id, kb1);
    sr_rec_close(&r);
    cr_assert_eq(sr_read_file(b, "op1", "n/x.txt", &r, &f), SR_OK);
    cr_assert_eq(f.key_id, 0u);
    sr_rec_close(&r);
    es_finish(a, &adir);
    es_finish(b, &bdir);
}
