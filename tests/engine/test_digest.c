/* tests/engine/test_digest.c -- a partition's index digest (engine/digest.c,
 * issue #19, docs/cluster.md "Replay, verify and audit from the stream"):
 * the digest the index gives (sr_engine_partition_digest) equals the one
 * computed from the events, as `suiro cluster verify` computes it from the
 * stream (each measurement's values through sr_value_hash, its point number
 * mapped to a data id by the MasterPut events); a node that got the same
 * events with other point numbers gives the same digest; a changed value
 * changes the hash (same count), a missing one the count; the operator
 * predicate picks the partition's operators. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engsuite.h"

static char *adir, *bdir;
TestSuite(digest, .timeout = 300);

static const sr_vtype NUM[] = {SR_VT_NUMBER};

typedef struct drow {
    char op[32], id[32];
    uint64_t count, hash;
} drow;
typedef struct dset {
    drow r[16];
    size_t n;
} dset;

static drow *row(dset *d, const char *op, const char *id)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->r[i].op, op) && !strcmp(d->r[i].id, id)) return &d->r[i];
    cr_assert_lt(d->n, 16);
    drow *r = &d->r[d->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

static int pick_all(void *ctx, const char *op)
{
    const char *only = ctx;
    return !only || !strcmp(op, only);
}

static int on_digest(void *ctx, const sr_point_digest *p)
{
    drow *r = row(ctx, p->op, p->data_id);
    r->count = p->count;
    r->hash = p->hash;
    return 0;
}

static dset index_digest(sr_engine *e, const char *only)
{
    dset d = {.n = 0};
    cr_assert_eq(sr_engine_partition_digest(e, pick_all, (void *)only, on_digest, &d), SR_OK);
    return d;
}

/* the events' side: point numbers -> data ids by the MasterPuts; every
 * value once (the fixture writes each time once) */
typedef struct evside {
    dset d;
    struct {
        char op[32], id[32];
        uint32_t point;
    } map[16];
    size_t nmap;
    const char *op;
} evside;

static int ev_value(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s)
{
    evside *x = ctx;
    for (size_t i = 0; i < x->nmap; i++)
        if (x->map[i].point == point && !strcmp(x->map[i].op, x->op)) {
            drow *r = row(&x->d, x->op, x->map[i].id);
            r->count++;
            r->hash += sr_value_hash(type, s);
            return 0;
        }
    cr_assert_fail("point %u of %s has no MasterPut", point, x->op);
    return 0;
}

static int ev_each(void *ctx, const sr_event_view *v)
{
    evside *x = ctx;
    if (v->has_master && v->master.kind == SR_MK_DATA_POINT) {
        cr_assert_lt(x->nmap, 16);
        snprintf(x->map[x->nmap].op, 32, "%s", v->op);
        snprintf(x->map[x->nmap].id, 32, "%s", v->master.id);
        x->map[x->nmap++].point = v->master.point;
    } else if (!strcmp(v->kind, "measurements")) {
        x->op = v->op;
        cr_assert_eq(sr_event_each_value(v, ev_value, x), SR_OK);
    }
    return 0;
}

static void same(const dset *a, const dset *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu points, %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const drow *x = &a->r[i];
        int found = 0;
        for (size_t j = 0; j < b->n; j++)
            if (!strcmp(x->op, b->r[j].op) && !strcmp(x->id, b->r[j].id)) {
                found = 1;
                cr_assert_eq(x->count, b->r[j].count, "%s: %s/%s count", what, x->op, x->id);
                cr_assert_eq(x->hash, b->r[j].hash, "%s: %s/%s hash", what, x->op, x->id);
            }
        cr_assert(found, "%s: %s/%s", what, x->op, x->id);
    }
}

static void put(sr_engine *e, const char *op, const char *id, int64_t ts, double v)
{
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(e, op, id, &pi), SR_OK, "%s/%s", op, id);
    sr_sample s = {.ts = ts, .quality = SR_Q_GOOD, .v.f = v};
    sr_result r;
    cr_assert_eq(et_put(e, op, pi.gateway, pi.point, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK, "%s", r.err.msg);
}

static int copy_one(void *ctx, const sr_event_view *v)
{
    sr_engine *to = ctx;
    if (sr_event_kind_class(v->kind) == SR_EVCLASS_LOCAL) return 0;
    static uint64_t stream;
    sr_origin o = {"a", v->seq, 3, ++stream, sr_event_kind_class(v->kind) == SR_EVCLASS_REG ? 1 : 2};
    sr_result r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(et_submit_origin(to, v->rec, v->rec_len, &o, &r), SR_OK, "%s", r.err.msg);
    return 0;
}

Test(digest, index_equals_events_across_numbers_and_detects_changes)
{
    sr_engine *a = es_open(&adir, "dig-a", NULL), *b = es_open(&bdir, "dig-b", NULL);
    cr_assert_eq(et_setup_masters(a, "op1", 3, NUM, 1), SR_OK);
    for (int i = 0; i < 5; i++) put(a, "op1", "P001", 1700000000000 + i * 1000, 10.25 + i);
    for (int i = 0; i < 3; i++) put(a, "op1", "P002", 1700000000000 + i * 1000, -3 - i);

    /* the index's digest equals the events' (P003 holds nothing: left out) */
    dset ia = index_digest(a, NULL);
    evside ea = {.nmap = 0};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, ev_each, &ea, &last), SR_OK);
    cr_assert_eq(ia.n, 2, "P001 and P002 (P003 has no value): %zu", ia.n);
    same(&ea.d, &ia, "events vs index");
    cr_assert_eq(row(&ia, "op1", "P001")->count, 5);
    cr_assert_eq(row(&ia, "op1", "P002")->count, 3);

    /* node b numbers its points after its own op2's: the digest is the same */
    cr_assert_eq(et_setup_masters(b, "op2", 4, NUM, 1), SR_OK);
    put(b, "op2", "P001", 1700000000000, 1);
    cr_assert_eq(sr_engine_log_each(a, 1, copy_one, b, &last), SR_OK);
    sr_point_info pa, pb;
    cr_assert_eq(sr_engine_point_info(a, "op1", "P001", &pa), SR_OK);
    cr_assert_eq(sr_engine_point_info(b, "op1", "P001", &pb), SR_OK);
    cr_assert_neq(pa.point, pb.point, "the fixture gives the point other numbers");
    dset ib = index_digest(b, "op1");
    same(&ia, &ib, "node a vs node b (op1)");
    /* the predicate: op2 is not op1's partition */
    cr_assert_eq(index_digest(b, "op2").n, 1);
    cr_assert_eq(index_digest(b, NULL).n, 3);

    /* a changed value: the same count, another hash */
    put(b, "op1", "P002", 1700000000000 + 1000, 99.5);
    dset ic = index_digest(b, "op1");
    cr_assert_eq(row(&ic, "op1", "P002")->count, 3);
    cr_assert_neq(row(&ic, "op1", "P002")->hash, row(&ia, "op1", "P002")->hash, "a changed value changes the hash");
    cr_assert_eq(row(&ic, "op1", "P001")->hash, row(&ia, "op1", "P001")->hash, "the other point unchanged");
    /* one more value on a (b misses it): the count differs */
    put(a, "op1", "P001", 1700000000000 + 9000, 7);
    dset id = index_digest(a, NULL);
    cr_assert_eq(row(&id, "op1", "P001")->count, 6);
    cr_assert_neq(row(&id, "op1", "P001")->hash, row(&ib, "op1", "P001")->hash);

    /* sr_value_hash: the time and the value; a number and an integer of the same value alike */
    sr_sample s1 = {.ts = 5, .v.f = 2.0}, s2 = {.ts = 5, .v.i = 2}, s3 = {.ts = 6, .v.f = 2.0};
    cr_assert_eq(sr_value_hash(SR_VT_NUMBER, &s1), sr_value_hash(SR_VT_INTEGER, &s2));
    cr_assert_neq(sr_value_hash(SR_VT_NUMBER, &s1), sr_value_hash(SR_VT_NUMBER, &s3));
    es_finish(a, &adir);
    es_finish(b, &bdir);
}

/* invariant (4): the pages, each after the previous one's last point, are
 * the whole digest once and in order; a page holds at most limit points and
 * says whether more follow; a cursor between two points (a point without
 * values, or one that is not there) starts after it */
typedef struct pagec {
    dset d;
    char last_op[32], last_id[32];
} pagec;

static int on_page(void *ctx, const sr_point_digest *p)
{
    pagec *c = ctx;
    cr_assert_lt(c->d.n, 16);
    drow *r = &c->d.r[c->d.n++];
    snprintf(r->op, sizeof r->op, "%s", p->op);
    snprintf(r->id, sizeof r->id, "%s", p->data_id);
    r->count = p->count;
    r->hash = p->hash;
    snprintf(c->last_op, sizeof c->last_op, "%s", p->op);
    snprintf(c->last_id, sizeof c->last_id, "%s", p->data_id);
    return 0;
}

Test(digest, pages_are_the_whole_digest_once)
{
    sr_engine *a = es_open(&adir, "dig-page", NULL);
    cr_assert_eq(et_setup_masters(a, "op1", 4, NUM, 1), SR_OK);
    cr_assert_eq(et_setup_masters(a, "op2", 2, NUM, 1), SR_OK);
    const char *ids[] = {"P000", "P001", "P003"}; /* P002 of op1 holds nothing */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i <= k; i++) put(a, "op1", ids[k], 1700000000000 + i * 1000, k + i);
    put(a, "op2", "P000", 1700000000000, 5);
    put(a, "op2", "P001", 1700000000000, 6);
    dset whole = index_digest(a, NULL);
    cr_assert_eq(whole.n, 5);
    for (size_t limit = 1; limit <= 6; limit++) {
        dset all = {.n = 0};
        char after_op[32] = "", after_id[32] = "";
        size_t pages = 0;
        for (int more = 1; more;) {
            pagec c = {.d = {.n = 0}};
            cr_assert_eq(sr_engine_partition_digest_page(a, pick_all, NULL, after_op[0] ? after_op : NULL, after_id,
                                                         limit, on_page, &c, &more),
                         SR_OK);
            cr_assert_leq(c.d.n, limit);
            if (more) cr_assert_eq(c.d.n, limit, "a page short of limit is the last");
            for (size_t i = 0; i < c.d.n; i++) all.r[all.n++] = c.d.r[i];
            snprintf(after_op, sizeof after_op, "%s", c.last_op);
            snprintf(after_id, sizeof after_id, "%s", c.last_id);
            cr_assert_lt(++pages, 10);
        }
        cr_assert_eq(pages, (5 + limit - 1) / limit);
        same(&whole, &all, "the pages vs the whole");
        /* in (operator, data id) order, each once */
        for (size_t i = 1; i < all.n; i++) {
            int c = strcmp(all.r[i - 1].op, all.r[i].op);
            cr_assert(c < 0 || (c == 0 && strcmp(all.r[i - 1].id, all.r[i].id) < 0), "order at %zu", i);
        }
    }
    /* a cursor at a point without values (op1/P002), or at none (op1/P0025): from P003 on */
    const char *cur[] = {"P002", "P0025"};
    for (int k = 0; k < 2; k++) {
        pagec c = {.d = {.n = 0}};
        int more = -1;
        cr_assert_eq(sr_engine_partition_digest_page(a, pick_all, NULL, "op1", cur[k], 1, on_page, &c, &more), SR_OK);
        cr_assert(c.d.n == 1 && !strcmp(c.d.r[0].op, "op1") && !strcmp(c.d.r[0].id, "P003"), "%s", cur[k]);
        cr_assert_eq(more, 1, "op2's follow");
    }
    /* after the last: nothing, no more */
    pagec c = {.d = {.n = 0}};
    int more = -1;
    cr_assert_eq(sr_engine_partition_digest_page(a, pick_all, NULL, "op2", "P001", 3, on_page, &c, &more), SR_OK);
    cr_assert(c.d.n == 0 && more == 0);
    es_finish(a, &adir);
}
