/*
 * bench/engbench.h -- the reference data set of the engine benchmarks and the
 * pieces they share: masters, the durable ingest driver, verification, sizes.
 *
 * Data set: api/cli/refset.h (the generator is rs_generate; these programs
 * turn each of its events into one engine event). `points` number data
 * points "P%05d" at a 1 s interval from EB_T0, `seconds` values each, a
 * 2-decimal random walk, events of one point and `batch` consecutive
 * seconds, a `late_bp` basis-point share of late values (half moved 1..20
 * batches later, half sent again there as duplicates). So the engine must
 * store exactly points x seconds distinct samples.
 *
 * That is the series shape (EB_SERIES). The same walks travel in two other
 * shapes (issue #13; bench/shape_ingest.c sends the same over the network):
 *   EB_SNAPSHOT  events of one gateway's `batch` points x 1 value, all at
 *                one second: a gateway's cycle (GW1 holds the even points,
 *                GW2 the odd ones; snapshot k of a gateway: its points
 *                k*batch .. k*batch+batch-1 in its own order; second by
 *                second, every snapshot of a second before the next second).
 *                No late values (late_bp is not used).
 *   EB_MIXED     the snapshots, and after every second a backfill of old
 *                series worth `backfill_bp` basis points of that second's
 *                values [100 = 1 %]: events of one point and `batch`
 *                consecutive seconds 30 days before EB_T0 (backfill m: point
 *                (m * K) % points, K the first number from 101 prime to
 *                points, seconds (m / points) * batch ..), of a walk of
 *                their own (seed ^ 0xbac4f111), values the snapshots do not
 *                hold. So the engine stores points x seconds + the backfill.
 * Every shape calls the engine's public builder (sr_ev_measurements) with
 * what a gateway's message holds, as the network loop does.
 */
#ifndef SR_ENGBENCH_H
#define SR_ENGBENCH_H

#include "engine/evbuild.h"
#include "engine/suiro.h"
#include "storage/crypto.h"
#include "api/cli/refset.h"

#include <stdint.h>

#define EB_T0 RS_T0 /* 2023-11-15T00:00:00Z, a day boundary */
#define EB_OP "op1"

enum { EB_SERIES, EB_SNAPSHOT, EB_MIXED };
/* "series", "snapshot", "mixed"; eb_shape_of: the shape of a name, or -1 */
const char *eb_shape_name(int shape);
int eb_shape_of(const char *name);

#define EB_BACKFILL_MS (INT64_C(30) * 86400 * 1000)

typedef struct eb_cfg {
    int shape;            /* EB_SERIES (0, the default), EB_SNAPSHOT, EB_MIXED */
    uint32_t backfill_bp; /* EB_MIXED: the backfill's share of the values */
    uint32_t points, seconds, batch, late_bp;
    uint64_t seed;
    int threads, enc, zstd; /* enc: 0 none, 1 per-operator data keys (a keyring), 2 one key for all (single_key) */
    uint32_t window; /* commands in flight, all threads together */
    uint32_t replay_max; /* sr_engine_opts.replay_max_events; 0: the engine's default */
    const char *dir; /* engine directory (created, removed by the caller) */
    const char *even_class; /* eb_masters: the retention class of the even points (docs/retention.md); NULL: none */
} eb_cfg;

typedef struct eb_ev {
    uint32_t pidx; /* series: the point; snapshot, backfill: its gateway's snapshot
                    * group (eb_ingest keeps the order of events of one pidx) */
    uint32_t len;
    uint64_t off; /* into eb_data.bytes */
} eb_ev;

typedef struct eb_data {
    sr_buf bytes;          /* every serialized event, in submission order */
    eb_ev *ev;
    size_t nev;
    uint64_t sent, unique, moved, dups; /* values */
    uint64_t hash;         /* eb_hash sum over the unique samples */
    uint32_t *point_no;    /* engine point number of each generated point */
} eb_data;

double eb_now(void);
uint64_t eb_mix(uint64_t z);
/* Order-independent sample hash term (sum these). */
uint64_t eb_hash(uint32_t pidx, int64_t ts, double v);
/* Value of generated point pidx at second i (the walk, recomputed). */
void eb_values(const eb_cfg *c, uint32_t pidx, double *out /* seconds */);

/* Build every event (no engine needed). */
int eb_generate(const eb_cfg *c, eb_data *d);
void eb_data_free(eb_data *d);

/* Engine options of the bench (sync always, key and zstd per cfg). */
void eb_opts(const eb_cfg *c, sr_engine_opts *o, sr_key *key);
/* Register facility, equipment, devices and the data points; fill point_no. */
int eb_masters(sr_engine *e, const eb_cfg *c, eb_data *d);

typedef struct eb_ingest_res {
    double secs;
    uint64_t ok, failed, efull_retries;
} eb_ingest_res;
/* Submit every event from c->threads threads with a bounded window. */
int eb_ingest(sr_engine *e, const eb_cfg *c, const eb_data *d, eb_ingest_res *r);

/* Range-query every point in full; count and hash against d. 0 = ok. */
int eb_verify(sr_engine *e, const eb_cfg *c, const eb_data *d, uint64_t *count, uint64_t *hash);

/* Sizes on disk after close. */
typedef struct eb_sizes {
    uint64_t log_bytes;        /* DIR/log, apparent size */
    uint64_t index_file;       /* DIR/index/data.mdb st_size (sparse) */
    uint64_t index_alloc;      /* st_blocks * 512 */
    uint64_t index_used;       /* LMDB pages in use by every database (branch+leaf+overflow) */
    uint64_t index_hwm;        /* (me_last_pgno + 1) * page size */
    uint64_t series_used;      /* of which the series chunks */
    uint64_t series_chunks, series_overflow_pages, series_leaf_pages;
    uint64_t series_values;    /* samples in those chunks (the rest are in the heads, in the log only) */
} eb_sizes;
int eb_sizes_get(const char *dir, eb_sizes *s);

/* The hash chain's work for the log in logdir (key: NULL when unencrypted),
 * timed here with the same SHA-256 calls the log makes: per block, the digest
 * of its plaintext and the hash of its header with that digest (the chain
 * link), over the log's own block count and plaintext bytes (the blocks'
 * average size). The log cannot be written without its chain, so this is how
 * the benchmarks tell the chain's share. sr_log_verify checks the chain first
 * (ok = 1 when it holds). */
typedef struct eb_chain {
    uint64_t blocks, records, plain_bytes;
    double secs; /* the chain's SHA-256 work, best of 3 */
    int ok;
} eb_chain;
int eb_chain_cost(const char *logdir, const sr_key *key, eb_chain *out);

void eb_rmrf(const char *d);
uint64_t eb_du(const char *d);

#endif
