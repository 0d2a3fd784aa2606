/*
 * bench/engine_ingest.c -- durable ingest rate of the engine (sr_engine_submit,
 * sync=always) on the reference data set (engbench.h), and bytes per point on
 * disk afterwards, log and index apart.
 *
 * usage: engine_ingest [--shape series|snapshot|mixed] [--backfill-bp F]
 *                      [--points N] [--seconds S] [--batch B] [--late-bp L]
 *                      [--threads T] [--window W] [--enc 0|1|2] [--zstd L]
 *                      [--seed S] [--replay-max N] [--dir D] [--keep]
 * One command = one event = (series, the default) one point's `batch`
 * consecutive values, or (snapshot) one gateway's `batch` points x 1 value
 * at one second, or (mixed) the snapshots plus a backfill of old series
 * worth F basis points of the values [100] (engbench.h: the same points x
 * seconds values in every shape); the line names its "shape". T threads
 * submit (thread t takes the events whose point, or snapshot group, k has
 * k % T == t, so each point's order is kept), at most W commands in flight
 * in all, SR_EFULL is retried.
 * Timed phases: generate (building the events, not counted), ingest (first
 * submit to last callback). Afterwards every point is range-queried in full
 * and the count and an order-independent hash of (point, ts, value bits) are
 * checked against the distinct samples sent ("verify":"ok").
 * Sizes: the log directory; data.mdb apparent, allocated, LMDB pages in use
 * (every database; data.mdb is sparse) and of those the series chunks.
 * Samples still in the in-memory heads (the newest < head_max of each point,
 * not yet a chunk) are in the log only, so index_b_per_point is per distinct
 * sample ingested, not per sample held in chunks: chunk_values counts those,
 * and index_b_per_chunk_value / series_b_per_chunk_value divide by it (the
 * cost of a value in a chunk, whatever share of the values the heads still
 * hold: a clean close's heads checkpoint writes them all, docs/durability.md
 * section 8). --replay-max: the engine's replay_max_events (a large one
 * leaves the heads unflushed at close, as before checkpoints).
 * The hash chain (always on: the log format has no unchained mode) is timed
 * apart afterwards (eb_chain_cost: the same SHA-256 calls over the log's own
 * blocks and plaintext bytes): chain_s, and chain_share = chain_s / ingest_s,
 * the share of the ingest time the chain's hashing would take if none of it
 * overlapped anything (it runs on the appending and the leader thread).
 */
#include "engbench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
    fprintf(stderr, "usage: engine_ingest [--shape series|snapshot|mixed] [--backfill-bp F]\n"
                    "                     [--points N] [--seconds S] [--batch B] [--late-bp L] [--threads T]\n"
                    "                     [--window W] [--enc 0|1|2] [--zstd L] [--seed S] [--replay-max N] [--dir D]\n"
                    "                     [--keep]\n");
    return 2;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 10000, .seconds = 1800, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1,
                .enc = 1, .zstd = 1, .window = 8192, .backfill_bp = 100};
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (!strcmp(a, "--keep")) keep = 1;
        else if (hv && !strcmp(a, "--shape")) {
            if ((c.shape = eb_shape_of(argv[++i])) < 0) return usage();
        } else if (hv && !strcmp(a, "--backfill-bp")) c.backfill_bp = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--batch")) c.batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--late-bp")) c.late_bp = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--threads")) c.threads = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--window")) c.window = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--zstd")) c.zstd = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--replay-max")) c.replay_max = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else return usage();
    }
    if (!c.points || !c.seconds || !c.batch || c.threads < 1 || !c.window || c.backfill_bp > 10000) return usage();
    char tmpl[] = "/var/tmp/suiro-engbench-XXXXXX", dir[1100];
    if (!c.dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
    }
    snprintf(dir, sizeof dir, "%s/eng", c.dir);
    eb_rmrf(dir);

    eb_data d;
    double t0 = eb_now();
    if (eb_generate(&c, &d)) {
        fprintf(stderr, "engine_ingest: generate failed\n");
        return 1;
    }
    double t_gen = eb_now() - t0;

    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_ingest: open: %s\n", ei.msg);
        return 1;
    }
    int rc = eb_masters(e, &c, &d);
    if (rc) {
        fprintf(stderr, "engine_ingest: masters: %s\n", sr_strerror(rc));
        return 1;
    }
    sr_engine_stats st0, st1;
    sr_engine_get_stats(e, &st0);
    eb_ingest_res r;
    rc = eb_ingest(e, &c, &d, &r);
    sr_engine_get_stats(e, &st1);
    if (rc) fprintf(stderr, "engine_ingest: submit: %s\n", sr_strerror(rc));
    uint64_t got = 0, gh = 0;
    double t1 = eb_now();
    int bad = eb_verify(e, &c, &d, &got, &gh);
    double t_verify = eb_now() - t1;
    if (sr_engine_close(e)) bad = 1;
    eb_sizes sz;
    if (eb_sizes_get(dir, &sz)) bad = 1;
    /* the hash chain's share: its SHA-256 work for this log, timed apart */
    char logdir[1200];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    eb_chain ch;
    if (eb_chain_cost(logdir, c.enc ? &key : NULL, &ch)) bad = 1;
    int ok = !rc && !bad && r.failed == 0 && r.ok == d.nev;
    double u = (double)d.unique;
    uint64_t groups = st1.groups - st0.groups;
    printf("{\"bench\":\"engine_ingest\",\"shape\":\"%s\",\"backfill_bp\":%u,\"points\":%u,\"seconds\":%u,\"batch\":%u,\"late_bp\":%u,\"threads\":%d,"
           "\"window\":%u,\"enc\":%d,\"zstd\":%d,\"sync\":\"always\",\"events\":%zu,\"values_sent\":%" PRIu64
           ",\"values_unique\":%" PRIu64 ",\"late_moved\":%" PRIu64 ",\"dups\":%" PRIu64
           ",\"gen_s\":%.3f,\"ingest_s\":%.3f,\"points_per_s\":%.0f,\"events_per_s\":%.0f,\"groups\":%" PRIu64
           ",\"events_per_group\":%.1f,\"efull_retries\":%" PRIu64 ",\"log_bytes\":%" PRIu64
           ",\"log_b_per_point\":%.3f,\"index_file_bytes\":%" PRIu64 ",\"index_alloc_bytes\":%" PRIu64
           ",\"index_used_bytes\":%" PRIu64 ",\"index_hwm_bytes\":%" PRIu64 ",\"index_b_per_point\":%.3f"
           ",\"index_alloc_b_per_point\":%.3f,\"series_b_per_point\":%.3f,\"series_chunks\":%" PRIu64
           ",\"series_leaf_pages\":%" PRIu64 ",\"series_overflow_pages\":%" PRIu64 ",\"chunk_values\":%" PRIu64
           ",\"index_b_per_chunk_value\":%.3f,\"series_b_per_chunk_value\":%.3f,\"replay_max\":%u,\"verify_s\":%.3f,"
           "\"log_blocks\":%" PRIu64 ",\"log_plain_bytes\":%" PRIu64 ",\"chain_s\":%.4f,\"chain_share\":%.4f,"
           "\"verify\":\"%s\",\"hash\":\"%016" PRIx64 "\"}\n",
           eb_shape_name(c.shape), c.shape == EB_MIXED ? c.backfill_bp : 0, c.points, c.seconds, c.batch,
           c.shape == EB_SERIES ? c.late_bp : 0, c.threads, c.window, c.enc, c.zstd, d.nev, d.sent, d.unique,
           d.moved, d.dups, t_gen, r.secs, (double)d.sent / r.secs, (double)d.nev / r.secs, groups,
           groups ? (double)(st1.events - st0.events) / (double)groups : 0.0, r.efull_retries, sz.log_bytes,
           (double)sz.log_bytes / u, sz.index_file, sz.index_alloc, sz.index_used, sz.index_hwm,
           (double)sz.index_used / u, (double)sz.index_alloc / u, (double)sz.series_used / u, sz.series_chunks,
           sz.series_leaf_pages, sz.series_overflow_pages, sz.series_values,
           sz.series_values ? (double)sz.index_used / (double)sz.series_values : 0.0,
           sz.series_values ? (double)sz.series_used / (double)sz.series_values : 0.0, c.replay_max, t_verify, ch.blocks, ch.plain_bytes, ch.secs,
           r.secs > 0 ? ch.secs / r.secs : 0.0, ok ? "ok" : "FAILED", gh);
    fflush(stdout);
    if (!ok)
        fprintf(stderr, "engine_ingest: verify: %" PRIu64 " of %" PRIu64 " samples, hash %016" PRIx64 " want %016" PRIx64
                        ", %" PRIu64 " refused\n",
                got, d.unique, gh, d.hash, r.failed);
    eb_data_free(&d);
    if (!keep) {
        eb_rmrf(dir);
        if (c.dir == tmpl) rmdir(tmpl);
    }
    return ok ? 0 : 1;
}
