/*
 * codecs/base/sr_hist.h -- a fixed-bucket histogram of relaxed atomic
 * counters, for the metrics (docs/monitoring.md "Metrics and health").
 *
 * One writer or many: sr_hist_add is lock-free and allocation-free (one
 * relaxed fetch-add per bucket hit, plus the sum and the count), so the
 * hot paths (the log's fdatasync, the writer's group commit) pay a few
 * instructions. The bounds are the caller's (a static array, ascending,
 * at most SR_HIST_MAX); a value above the last bound counts only in the
 * +Inf bucket, which is the count. Buckets are not cumulative here: the
 * exposition writer (api/metrics.c) sums them into Prometheus's
 * cumulative `le` buckets.
 *
 * A reader (sr_hist_read) takes each counter with a relaxed load: a scrape
 * racing an add may see the bucket and not yet the count (off by one for
 * one scrape), never a torn value.
 */
#ifndef SR_HIST_H
#define SR_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { SR_HIST_MAX = 20 };

typedef struct sr_hist {
    _Atomic uint64_t bucket[SR_HIST_MAX]; /* bucket[i]: values <= bounds[i] and > bounds[i-1] */
    _Atomic uint64_t sum, count;
} sr_hist;

/* A snapshot: plain numbers (engine/suiro.h hands these to api/). */
typedef struct sr_hist_snap {
    uint64_t bucket[SR_HIST_MAX];
    uint64_t sum, count;
} sr_hist_snap;

static inline void sr_hist_add(sr_hist *h, const uint64_t *bounds, size_t nb, uint64_t v)
{
    size_t i = 0;
    while (i < nb && v > bounds[i]) i++;
    if (i < nb) atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

static inline void sr_hist_read(sr_hist *h, sr_hist_snap *out)
{
    for (size_t i = 0; i < SR_HIST_MAX; i++) out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    out->count = atomic_load_explicit(&h->count, memory_order_relaxed);
}

/* The bounds the engine's histograms use (exported with them). Microseconds. */
#define SR_HIST_US_BOUNDS                                                                                          \
    {50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000}
#define SR_HIST_US_N 16
/* commands per group */
#define SR_HIST_GROUP_BOUNDS {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536}
#define SR_HIST_GROUP_N 15

#endif
