/*
 * api/cli/refset.h -- the reference data set of the benchmarks, as plain
 * samples: no engine, no protobuf, so every load generator can send it in
 * its own format (bench/engbench.c builds engine events from it,
 * bench/peer_ingest.c line protocol and Redis stream entries, `suiro gwsim
 * run --reference` GW-IF JSON messages). It lives in the product because
 * gwsim sends it; bench/ links it from here (library sr_refset).
 *
 * The set (seeded; the same configuration gives the same sequence
 * everywhere): `points` number data points at a 1 s interval from RS_T0,
 * `seconds` values each, a 2-decimal random walk (cents / 100.0). Values
 * travel in events of one point and `batch` consecutive seconds,
 * time-major (every point's batch 0, then every point's batch 1, ...). A
 * `late_bp` basis-point share of the values (100 = 1 %) is late: half of
 * them are moved out of their batch into the same point's event 1..20
 * batches later (out of order, older than what is already stored), half are
 * sent in place and again in that later event (duplicates with the same
 * value). A store that keeps one value per (point, timestamp) therefore
 * holds exactly points x seconds values; an append-only log holds every
 * value sent (rs_stats.sent).
 */
#ifndef SR_REFSET_H
#define SR_REFSET_H

#include <stddef.h>
#include <stdint.h>

#define RS_T0 INT64_C(1700006400000) /* 2023-11-15T00:00:00Z, a day boundary (ms) */

typedef struct rs_cfg {
    uint32_t points, seconds, batch, late_bp;
    uint64_t seed;
} rs_cfg;

typedef struct rs_sample {
    int64_t ts;    /* ms since the epoch */
    int64_t cents; /* the value is cents / 100.0 */
} rs_sample;

typedef struct rs_stats {
    uint64_t events;
    uint64_t sent, unique, moved, dups; /* values */
    uint64_t hash;                      /* sum of rs_hash over the unique samples */
} rs_stats;

/* One event: point pidx (0-based), its batch number b, the samples in the
 * order they are sent (the batch's own, then late ones due in it). Return
 * non-zero to stop the generation with that code. */
typedef int (*rs_event_fn)(void *ctx, uint32_t pidx, uint32_t b, const rs_sample *s, size_t n);

uint64_t rs_mix(uint64_t z);
/* Order-independent sample hash term (sum these). */
uint64_t rs_hash(uint32_t pidx, int64_t ts, double v);
/* Cents of point pidx at seconds 0 .. c->seconds - 1 (the walk, recomputed). */
void rs_cents(const rs_cfg *c, uint32_t pidx, int64_t *out);
/* The same walk one second at a time, for generators of other shapes
 * (bench/engbench.c's snapshots): the cents of point pidx before second 0,
 * and its cents at second i given those at second i - 1 (rs_cents chains
 * these). */
int64_t rs_walk_start(const rs_cfg *c, uint32_t pidx);
int64_t rs_walk_step(const rs_cfg *c, uint32_t pidx, uint32_t i, int64_t cents);
/* Generate every event in order, calling fn for each (events without a
 * value are skipped); st may be NULL. 0, -1 when out of memory, or fn's code. */
int rs_generate(const rs_cfg *c, rs_event_fn fn, void *ctx, rs_stats *st);
/* Number of batches of a point: ceil(seconds / batch). */
uint32_t rs_batches(const rs_cfg *c);

#endif
