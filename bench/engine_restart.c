/*
 * bench/engine_restart.c -- index rebuild rate from the log (sr_engine_rebuild)
 * and restart time (sr_engine_open + the first query) of a loaded engine.
 *
 * usage: engine_restart [--points N] [--seconds S] [--batch B] [--enc 0|1]
 *                       [--zstd L] [--replay-max N] [--seed S] [--dir D]
 * Loads the reference data set of engbench.h (default 2,000 points x 1 hour
 * = 7.2 M samples) through sr_engine_submit, closes, then times:
 *  - rebuild: drop the index and apply every event of the log again
 *    (events/s, log MB/s, samples/s);
 *  - restart: sr_engine_open (recovery, head replay) and one latest query
 *    (open_log_s, open_replay_s: its log recovery and replay phases),
 *  - crash_restart: the same on a copy of the directory taken after the
 *    load, before the close (what kill -9 leaves with sync=always: no close
 *    checkpoint), with the events it re-read (crash_replay_events),
 *    then (untimed) a full-range query of every point: count and hash of
 *    (point, ts, value bits) against what was sent ("verify":"ok").
 * Before them (issue #18, replay speed):
 *  - replay: the log read as `suiro replay` reads it (block read, CRC,
 *    decrypt, decompress; sr_event_decode, every value visited with
 *    sr_event_each_value): records/s and values/s;
 *  - rebuild_serial: the rebuild the ordinary way (opts.replay_serial: one
 *    thread reads, unpacks and applies), then the rebuild as it runs by
 *    default (a reader thread unpacks ahead: engine/replay.c invariant 5);
 *    both indexes must hash alike (sr_engine_content_hash; "same":true);
 *    with the CPU seconds of the calling thread (the applier: the critical
 *    path on two idle cores) and of the process (both threads), which a
 *    shared machine's other load stretches less than wall time.
 */
#include "engbench.h"
#include "engine/records.h"
#include "storage/keyring.h"
#include "storage/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds of this thread or process (a shared machine's other load
 * stretches wall time, not these) */
static double cpu_now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_value(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s)
{
    (void)point;
    (void)type;
    (void)s;
    ++*(uint64_t *)ctx;
    return 0;
}

/* The log of dir read and decoded as `suiro replay` does (without its JSON):
 * seconds, or -1 when a record does not read or decode. */
static double replay_rate(const char *dir, const sr_key *key, uint64_t *records, uint64_t *values)
{
    char logdir[1200], kd[1200];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    snprintf(kd, sizeof kd, "%s/keys", dir);
    sr_log_opts lo = {.readonly = 1, .key = key};
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    if (key && sr_keyring_open(NULL, kd, key, NULL, 0, &kr, &ei) == SR_OK) lo.keys = sr_keyring_keys(kr);
    double t0 = eb_now();
    sr_log *lg = NULL;
    sr_log_iter *it = NULL;
    int rc = sr_log_open(logdir, &lo, &lg, &ei);
    if (!rc) rc = sr_log_iter_open(lg, 1, &it);
    sr_rec held = SR_REC_INIT;
    uint64_t seq;
    sr_slice rec;
    while (!rc && (rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        sr_event_view v;
        if (sr_event_decode(rec.data, rec.len, &held, &v) || sr_event_each_value(&v, count_value, values))
            rc = SR_ECORRUPT;
        ++*records;
    }
    double t = eb_now() - t0;
    sr_rec_close(&held);
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    if (rc != SR_DONE) fprintf(stderr, "engine_restart: replay: %s\n", sr_strerror(rc));
    return rc == SR_DONE ? t : -1;
}

/* The content hash of dir's index (sr_engine_content_hash), opened read
 * only (a writable open's close would log a heads checkpoint); 0 on success. */
static int index_hash(const char *dir, const sr_engine_opts *o, uint8_t h[32])
{
    sr_engine *e = NULL;
    sr_errinfo ei;
    sr_engine_opts ro = *o;
    ro.readonly = 1;
    if (sr_engine_open(dir, &ro, &e, &ei)) return -1;
    int rc = sr_engine_content_hash(e, h);
    if (sr_engine_close(e)) rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 2000, .seconds = 3600, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1,
                .enc = 1, .zstd = 1, .window = 8192};
    uint32_t replay_max = 0; /* 0: the engine's default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--zstd")) c.zstd = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--batch")) c.batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--replay-max")) replay_max = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: engine_restart [--points N] [--seconds S] [--batch B] [--enc 0|1] [--zstd L] "
                            "[--replay-max N] [--seed S] [--dir D]\n");
            return 2;
        }
    }
    if (!c.points || !c.seconds || !c.batch) return 2;
    char tmpl[] = "/var/tmp/suiro-engbench-XXXXXX", dir[1100], logdir[1200], crashdir[1100], cmd[2400];
    if (!c.dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
    }
    snprintf(dir, sizeof dir, "%s/eng", c.dir);
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    snprintf(crashdir, sizeof crashdir, "%s/crash", c.dir);
    eb_rmrf(dir);
    eb_rmrf(crashdir);

    eb_data d;
    if (eb_generate(&c, &d)) return 1;
    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    o.replay_max_events = replay_max;
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_restart: open: %s\n", ei.msg);
        return 1;
    }
    eb_ingest_res ir;
    int ok = eb_masters(e, &c, &d) == SR_OK && eb_ingest(e, &c, &d, &ir) == SR_OK && ir.failed == 0;
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    uint64_t events = st.log_next_seq - 1;
    /* the engine is idle (every command answered, sync=always): a copy now
     * is what kill -9 would leave */
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", dir, crashdir);
    if (system(cmd) != 0) ok = 0;
    if (sr_engine_close(e)) ok = 0;
    uint64_t log_bytes = eb_du(logdir);

    uint64_t rp_records = 0, rp_values = 0;
    double t_replay = replay_rate(dir, o.key, &rp_records, &rp_values);
    if (t_replay < 0 || rp_records < events || rp_values < d.sent) ok = 0; /* + the close's heads checkpoint */

    sr_engine_opts so = o;
    so.replay_serial = 1;
    double t0 = eb_now(), c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID), p0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
    if (sr_engine_rebuild(dir, &so, &ei)) {
        fprintf(stderr, "engine_restart: rebuild (serial): %s\n", ei.msg);
        ok = 0;
    }
    double t_serial = eb_now() - t0, cpu_serial = cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0;
    (void)p0;
    uint8_t h_serial[32], h_piped[32];
    if (index_hash(dir, &so, h_serial)) ok = 0;

    t0 = eb_now();
    c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
    p0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
    if (sr_engine_rebuild(dir, &o, &ei)) {
        fprintf(stderr, "engine_restart: rebuild: %s\n", ei.msg);
        ok = 0;
    }
    double t_rebuild = eb_now() - t0, cpu_main = cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0,
           cpu_all = cpu_now(CLOCK_PROCESS_CPUTIME_ID) - p0;
    if (index_hash(dir, &o, h_piped)) ok = 0;
    int same = !memcmp(h_serial, h_piped, 32);
    if (!same) ok = 0;

    t0 = eb_now();
    e = NULL;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_restart: reopen: %s\n", ei.msg);
        return 1;
    }
    double t_open = eb_now() - t0;
    uint32_t lp = d.point_no[0];
    sr_sample s;
    int found = 0;
    if (sr_engine_latest(e, &lp, 1, &s, &found, NULL) || !found || s.ts != EB_T0 + (int64_t)(c.seconds - 1) * 1000)
        ok = 0;
    double t_first = eb_now() - t0;
    sr_engine_open_stats os;
    sr_engine_get_open_stats(e, &os);
    uint64_t got = 0, gh = 0;
    if (eb_verify(e, &c, &d, &got, &gh)) ok = 0;
    if (sr_engine_close(e)) ok = 0;

    t0 = eb_now();
    e = NULL;
    if (sr_engine_open(crashdir, &o, &e, &ei)) {
        fprintf(stderr, "engine_restart: open after the crash: %s\n", ei.msg);
        return 1;
    }
    found = 0;
    if (sr_engine_latest(e, &lp, 1, &s, &found, NULL) || !found || s.ts != EB_T0 + (int64_t)(c.seconds - 1) * 1000)
        ok = 0;
    double t_crash = eb_now() - t0;
    sr_engine_open_stats cs;
    sr_engine_get_open_stats(e, &cs);
    if (sr_engine_close(e)) ok = 0;
    eb_rmrf(crashdir);

    printf("{\"bench\":\"engine_restart\",\"points\":%u,\"seconds\":%u,\"batch\":%u,\"replay_max\":%u,\"enc\":%d,\"zstd\":%d,\"loaded\":%" PRIu64
           ",\"events\":%" PRIu64 ",\"log_bytes\":%" PRIu64 ",\"load_s\":%.3f,\"rebuild_s\":%.3f,"
           "\"rebuild_events_per_s\":%.0f,\"rebuild_log_mb_per_s\":%.1f,\"rebuild_pts_per_s\":%.0f,"
           "\"rebuild_values_per_s\":%.0f,\"rebuild_serial_s\":%.3f,\"rebuild_serial_values_per_s\":%.0f,\"same\":%s,"
           "\"rebuild_serial_cpu_s\":%.3f,\"rebuild_main_cpu_s\":%.3f,\"rebuild_cpu_s\":%.3f,"
           "\"rebuild_serial_values_per_cpu_s\":%.0f,\"rebuild_values_per_main_cpu_s\":%.0f,"
           "\"replay_s\":%.3f,\"replay_records_per_s\":%.0f,\"replay_values_per_s\":%.0f,"
           "\"open_s\":%.3f,\"restart_s\":%.3f,\"open_log_s\":%.4f,\"open_replay_s\":%.4f,\"replay_events\":%" PRIu64
           ",\"replay_skipped\":%" PRIu64 ",\"crash_restart_s\":%.3f,\"crash_replay_events\":%" PRIu64
           ",\"verify\":\"%s\",\"hash\":\"%016" PRIx64 "\"}\n",
           c.points, c.seconds, c.batch, replay_max, c.enc, c.zstd, d.unique, events, log_bytes, ir.secs, t_rebuild,
           (double)events / t_rebuild, (double)log_bytes / 1e6 / t_rebuild, (double)d.sent / t_rebuild,
           (double)d.sent / t_rebuild, t_serial, (double)d.sent / t_serial, same ? "true" : "false", cpu_serial,
           cpu_main, cpu_all, (double)d.sent / cpu_serial, (double)d.sent / cpu_main, t_replay,
           (double)rp_records / t_replay, (double)rp_values / t_replay, t_open,
           t_first, os.log_us / 1e6, os.replay_us / 1e6, os.replay_events, os.replay_skipped, t_crash, cs.replay_events, ok && got == d.unique && gh == d.hash ? "ok" : "FAILED", gh);
    fflush(stdout);
    ok = ok && got == d.unique && gh == d.hash;
    if (!ok) fprintf(stderr, "engine_restart: verify: %" PRIu64 " of %" PRIu64 " samples\n", got, d.unique);
    eb_data_free(&d);
    eb_rmrf(dir);
    if (c.dir == tmpl) rmdir(tmpl);
    return ok ? 0 : 1;
}
