/* api/cli/refset.c -- the reference data set; see refset.h. */
#include "api/cli/refset.h"

#include <stdlib.h>
#include <string.h>

uint64_t rs_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rs_hash(uint32_t pidx, int64_t ts, double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    return rs_mix(rs_mix(rs_mix(pidx) ^ (uint64_t)ts) ^ b);
}

static uint64_t rnd(const rs_cfg *c, uint32_t p, uint32_t i)
{
    return rs_mix(rs_mix(c->seed * 0x100000001B3ull + p) + i);
}

int64_t rs_walk_start(const rs_cfg *c, uint32_t p) { return 10000 + (int64_t)(rs_mix(c->seed ^ p) % 50000); }

int64_t rs_walk_step(const rs_cfg *c, uint32_t p, uint32_t i, int64_t cents)
{
    return cents + (int64_t)(rnd(c, p, i) % 21) - 10;
}

void rs_cents(const rs_cfg *c, uint32_t p, int64_t *out)
{
    int64_t cents = rs_walk_start(c, p);
    for (uint32_t i = 0; i < c->seconds; i++) out[i] = cents = rs_walk_step(c, p, i, cents);
}

uint32_t rs_batches(const rs_cfg *c) { return c->batch ? (c->seconds + c->batch - 1) / c->batch : 0; }

/* pending late values of one point */
typedef struct late {
    uint32_t batch;
    rs_sample s;
} late;
typedef struct lvec {
    late *v;
    size_t n, cap;
} lvec;

int rs_generate(const rs_cfg *c, rs_event_fn fn, void *ctx, rs_stats *st)
{
    rs_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    uint32_t nb = rs_batches(c);
    size_t bufcap = (size_t)c->batch * 3 + 64;
    int64_t *cents = malloc(((size_t)c->points + 1) * sizeof *cents);
    lvec *pend = calloc((size_t)c->points + 1, sizeof *pend);
    rs_sample *buf = malloc(bufcap * sizeof *buf);
    int rc = 0;
    if (!cents || !pend || !buf) {
        rc = -1;
        goto out;
    }
    for (uint32_t p = 0; p < c->points; p++) cents[p] = rs_walk_start(c, p);
    for (uint32_t b = 0; b < nb && !rc; b++) {
        for (uint32_t p = 0; p < c->points && !rc; p++) {
            size_t n = 0;
            uint32_t end = (b + 1) * c->batch < c->seconds ? (b + 1) * c->batch : c->seconds;
            for (uint32_t i = b * c->batch; i < end; i++) {
                uint64_t r = rnd(c, p, i);
                cents[p] += (int64_t)(r % 21) - 10;
                rs_sample s = {.ts = RS_T0 + (int64_t)i * 1000, .cents = cents[p]};
                st->unique++;
                st->hash += rs_hash(p, s.ts, (double)s.cents / 100.0);
                uint64_t l = rs_mix(r ^ 0x5BD1E995ull);
                int is_late = (l % 10000) < c->late_bp;
                uint32_t target = b + 1 + (uint32_t)((l >> 20) % 20);
                if (target >= nb) target = nb - 1;
                if (!is_late || target == b) {
                    buf[n++] = s;
                    continue;
                }
                int dup = (l >> 40) & 1;
                if (dup) {
                    buf[n++] = s;
                    st->dups++;
                } else st->moved++;
                lvec *lv = &pend[p];
                if (lv->n == lv->cap) {
                    size_t cap = lv->cap ? lv->cap * 2 : 16;
                    late *nv = realloc(lv->v, cap * sizeof *nv);
                    if (!nv) {
                        rc = -1;
                        goto out;
                    }
                    lv->v = nv;
                    lv->cap = cap;
                }
                lv->v[lv->n++] = (late){target, s};
            }
            /* late values due in this batch go after the batch's own */
            lvec *lv = &pend[p];
            size_t keep = 0;
            for (size_t k = 0; k < lv->n; k++) {
                if (lv->v[k].batch == b) {
                    if (n == bufcap) {
                        size_t cap = bufcap * 2;
                        rs_sample *nb2 = realloc(buf, cap * sizeof *nb2);
                        if (!nb2) {
                            rc = -1;
                            goto out;
                        }
                        buf = nb2;
                        bufcap = cap;
                    }
                    buf[n++] = lv->v[k].s;
                } else lv->v[keep++] = lv->v[k];
            }
            lv->n = keep;
            if (!n) continue;
            st->sent += n;
            st->events++;
            rc = fn(ctx, p, b, buf, n);
        }
    }
out:
    if (pend)
        for (uint32_t p = 0; p < c->points; p++) free(pend[p].v);
    free(pend);
    free(cents);
    free(buf);
    return rc;
}
