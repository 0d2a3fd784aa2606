/*
 * engine/digest.c -- the digest of a set of operators' stored values (issue
 * #19, docs/cluster.md "Replay, verify and audit from the stream"): per data
 * point, how many values the index holds and an order-independent hash of
 * them, so that `suiro cluster verify` can compare what a partition's owner
 * indexed with what the partition's stream holds, without moving the values.
 *
 * The digest of one point is {count, hash}: count the values stored (one per
 * timestamp: a later value of the same time replaces the earlier one), hash
 * the sum mod 2^64 of sr_value_hash(time, value) over them. The stream's side
 * (api/cli/cmd_cluster.c) sums the same function over the distinct
 * (time, value) pairs its measurements hold, so the two agree exactly when
 * the point's values agree, whatever order they were written in.
 *
 * INVARIANTS
 *  (1) sr_value_hash depends on the time and the value only, never on the
 *      point's number (which differs between nodes) nor on how the value
 *      was typed on the wire: a number and an integer of the same value
 *      hash alike (both as the double).
 *  (2) sr_engine_partition_digest only reads (each range in its own read
 *      snapshot, like the AP-IF's): it may run beside the writer; a value
 *      written meanwhile may or may not be counted.
 *  (3) Points are reported in (operator, data id) order, those without a
 *      value left out (the stream does not know them). The points are the
 *      `latest` rows' (every point holding a value, with its operator and
 *      data id), so no operator entry is needed.
 *  (4) A page (sr_engine_partition_digest_page) is the points strictly
 *      after its cursor (operator, data id) in that order, at most limit of
 *      them; *more when points follow: the pages one after the other, each
 *      from the previous page's last point, are the whole digest once
 *      (a point that got its first value meanwhile may be on a later page
 *      or not, as in (2)). Only a page's points are hashed (their values
 *      read): the walk of the `latest` rows that lists the points is the
 *      part every page repeats.
 */
#include "engine/engine_int.h"
#include "engine/records.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t sr_value_hash(sr_vtype type, const sr_sample *s)
{
    uint8_t k[9];
    uint64_t h = 0xcbf29ce484222325ull;
    sr_put_le64(k, (uint64_t)s->ts);
    h = fnv(h, k, 8);
    switch (type) {
    case SR_VT_STRING:
        k[0] = 's';
        h = fnv(h, k, 1);
        h = fnv(h, s->v.str.s, s->v.str.slen);
        break;
    case SR_VT_BOOL:
        k[0] = 'b';
        k[1] = (uint8_t)(s->v.b != 0);
        h = fnv(h, k, 2);
        break;
    default: { /* SR_VT_NUMBER, SR_VT_INTEGER: as the double (invariant 1) */
        double d = type == SR_VT_INTEGER ? (double)s->v.i : s->v.f;
        if (d == 0) d = 0; /* -0 and 0 alike */
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        k[0] = 'n';
        sr_put_le64(k + 1, u);
        h = fnv(h, k, 9);
    }
    }
    /* splitmix64's finaliser: the sum of many hashes stays well spread */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* one point's values, a page at a time */
static int point_digest(sr_engine *e, uint32_t point, sr_vtype type, uint64_t *count, uint64_t *hash)
{
    sr_buf smp, str;
    sr_buf_init(&smp);
    sr_buf_init(&str);
    sr_range_q q = {.point = point, .from = INT64_MIN, .to = INT64_MAX, .limit = 8192, .after = INT64_MIN};
    int rc, more;
    do {
        smp.len = str.len = 0;
        if ((rc = sr_engine_range(e, &q, &smp, &str, &more))) break;
        const sr_sample *s = (const sr_sample *)smp.data;
        size_t n = smp.len / sizeof *s;
        for (size_t i = 0; i < n; i++) *hash += sr_value_hash(type, &s[i]);
        *count += n;
        if (n) q.after = s[n - 1].ts;
    } while (more);
    sr_buf_release(&smp);
    sr_buf_release(&str);
    return rc;
}

/* the points holding values of the picked operators, gathered first (the
 * walk holds a read snapshot; the ranges open their own) */
typedef struct gather {
    sr_op_pick_fn pick;
    void *pctx;
    sr_buf pts; /* of gpoint */
    int rc;
} gather;
typedef struct gpoint {
    char *op, *id;
    uint32_t point;
} gpoint;

static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sr_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int gather_one(void *ctx, const char *op, const char *data_id, uint32_t point, int64_t ts)
{
    (void)ts;
    gather *g = ctx;
    if (!g->pick(g->pctx, op)) return 0;
    gpoint p = {dup(op), dup(data_id), point};
    if (!p.op || !p.id || sr_buf_append(&g->pts, &p, sizeof p)) {
        sr_free(p.op);
        sr_free(p.id);
        return SR_ENOMEM;
    }
    return 0;
}

static int cmp_gpoint(const void *a, const void *b)
{
    const gpoint *x = a, *y = b;
    int c = strcmp(x->op, y->op);
    return c ? c : strcmp(x->id, y->id);
}

int sr_engine_partition_digest(sr_engine *e, sr_op_pick_fn pick, void *pctx, sr_point_digest_fn fn, void *ctx)
{
    return sr_engine_partition_digest_page(e, pick, pctx, NULL, NULL, 0, fn, ctx, NULL);
}

/* p strictly after the cursor (op, id) in (operator, data id) order? */
static int after_cursor(const gpoint *p, const char *op, const char *id)
{
    int c = strcmp(p->op, op);
    return c > 0 || (c == 0 && strcmp(p->id, id) > 0);
}

int sr_engine_partition_digest_page(sr_engine *e, sr_op_pick_fn pick, void *pctx, const char *after_op,
                                    const char *after_id, size_t limit, sr_point_digest_fn fn, void *ctx, int *more)
{
    if (more) *more = 0;
    gather g = {.pick = pick, .pctx = pctx};
    sr_buf_init(&g.pts);
    uint32_t from = 0, next = 0;
    int rc;
    do {
        rc = sr_engine_latest_each(e, from, 4096, gather_one, &g, &next);
        from = next;
    } while (!rc && next);
    gpoint *p = (gpoint *)g.pts.data;
    size_t n = g.pts.len / sizeof *p;
    if (n) qsort(p, n, sizeof *p, cmp_gpoint); /* invariant 3 */
    size_t i = 0, sent = 0;
    if (after_op) /* invariant 4: strictly after the cursor */
        while (i < n && !after_cursor(&p[i], after_op, after_id ? after_id : "")) i++;
    for (; i < n && !rc; i++) {
        if (limit && sent == limit) {
            if (more) *more = 1;
            break;
        }
        sr_point_info pi;
        sr_vtype type = SR_VT_NUMBER;
        if (sr_engine_point_info(e, p[i].op, p[i].id, &pi) == SR_OK && pi.type) type = pi.type;
        sr_point_digest d = {.op = p[i].op, .data_id = p[i].id, .point = p[i].point};
        if (!(rc = point_digest(e, p[i].point, type, &d.count, &d.hash)) && d.count) {
            rc = fn(ctx, &d);
            sent++;
        }
    }
    for (size_t k = 0; k < n; k++) {
        sr_free(p[k].op);
        sr_free(p[k].id);
    }
    sr_buf_release(&g.pts);
    return rc;
}
