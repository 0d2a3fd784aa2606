/*
 * bench/state_at.c -- the state at a past time (issue #18, R-RE-2;
 * docs/state.md): the latency of an answer at random times T over a loaded
 * engine.
 *
 * usage: state_at [--points N] [--seconds S] [--shape series|snapshot]
 *                 [--batch B] [--answers K] [--enc 0|1|2] [--seed S] [--dir D]
 *                 [--snap-events N] [--snap-values N] [--check K] [--group-max G]
 * Loads the reference data set of engbench.h (points x seconds values; the
 * snapshot shape: a gateway's cycle, many points at one time) through
 * sr_engine_submit, then answers K random T between the first and the last
 * event's ingest time: sr_engine_state_open (seq(T) and the private index
 * replayed to it), the latest value of every point and the registry read
 * from it, sr_engine_state_close. Prints one JSON line: p50, p99, max (ms),
 * events replayed on average, and "verify": the answer at the end has
 * every point's last value, one before the first event is empty, and K
 * answers (--check, default 2) at random T equal the reference (a full
 * replay of the log's start by the ordinary appliers, state_full_replay):
 * every point's latest value, time and quality.
 * State snapshots ([state] snapshot_events / snapshot_values, here
 * --snap-events / --snap-values; 0 0: none) are on by default; the line
 * says from which snapshots the answers started (replayed: the events
 * after them) and the load's rate and CPU (load_cpu_s: every thread's), so
 * a run with 0 0 gives the ingest cost of the snapshots. Each answer's CPU
 * time (the process's, every thread: cpu_p50_ms, cpu_p99_ms, cpu_max_ms)
 * is printed beside its wall time, with the 1-minute load average before
 * and after the answers (loadavg_1m): on a shared machine the wall time
 * is the CPU time plus the wait for a core and the disk.
 * Correctness only is checked; the times are reported, never asserted.
 */
#include "engbench.h"
#include "engine/engine_int.h" /* e->o.state_full_replay: the reference answer */
#include "engine/records.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* the process's CPU time, every thread (s): an answer's CPU besides its
 * wall time, so that a loaded machine's waiting can be told apart */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the 1-minute load average, -1 when unknown */
static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* one answer: open at T, read what the answer reads, close; *found: points
 * with a value */
static uint64_t snap_answers;
/* the phases of the last answer (ms): search, restore, open (replay), read, close */
static double ph[5];

static int answer(sr_engine *e, int64_t t, const eb_data *d, uint32_t npoints, sr_sample *s, int *found,
                  uint64_t *replayed, uint64_t *nfound, uint64_t *seq)
{
    sr_engine *at = NULL;
    sr_state_info in;
    sr_errinfo ei = {0};
    int rc = sr_engine_state_open(e, t, &at, &in, &ei);
    if (rc) {
        fprintf(stderr, "state_at: %s\n", ei.msg);
        return rc;
    }
    *replayed = in.replayed;
    *seq = in.seq;
    ph[0] = (double)in.search_us / 1000.0;
    ph[1] = (double)in.restore_us / 1000.0;
    ph[2] = (double)in.open_us / 1000.0;
    double r0 = eb_now();
    snap_answers += in.snap_seq != 0;
    *nfound = 0;
    if (at) {
        sr_rec r = SR_REC_INIT;
        if ((rc = sr_list_registry(at, EB_OP, SR_RG_GATEWAY, &r)) == SR_ENOTFOUND) rc = SR_OK;
        sr_rec_close(&r);
        if (!rc && (rc = sr_list_masters(at, EB_OP, SR_MK_DATA_POINT, &r)) == SR_ENOTFOUND) rc = SR_OK;
        sr_rec_close(&r);
        if (!rc) rc = sr_engine_latest(at, d->point_no, npoints, s, found, NULL);
        for (uint32_t i = 0; !rc && i < npoints; i++) *nfound += found[i] != 0;
    }
    double r1 = eb_now();
    int crc = sr_engine_state_close(at);
    ph[3] = (r1 - r0) * 1000.0;
    ph[4] = (eb_now() - r1) * 1000.0;
    return rc ? rc : crc;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 2000, .seconds = 300, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1, .enc = 1,
                .zstd = 1, .window = 8192};
    uint32_t answers = 20, snap_events = 20000, snap_values = 500000, check = 2, group_max = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--snap-events")) snap_events = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--snap-values")) snap_values = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--check")) check = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--group-max")) group_max = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--batch")) c.batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--answers")) answers = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--shape")) c.shape = eb_shape_of(argv[++i]);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: state_at [--points N] [--seconds S] [--shape series|snapshot] [--batch B] "
                            "[--answers K] [--enc 0|1|2] [--seed S] [--dir D] [--snap-events N] [--snap-values N] "
                            "[--check K] [--group-max G]\n");
            return 2;
        }
    }
    if (!c.points || !c.seconds || !answers || c.shape < 0) return 2;
    char tmpl[] = "/var/tmp/suiro-stateat-XXXXXX", dir[1100];
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
    if (eb_generate(&c, &d)) return 1;
    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    o.snapshot_events = snap_events;
    o.snapshot_values = snap_values;
    if (group_max) o.group_max = group_max; /* smaller groups: snapshots between them, answers that replay */
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "state_at: open: %s\n", ei.msg);
        return 1;
    }
    int64_t t_first = wall_ms();
    double lc0 = cpu_s();
    eb_ingest_res ir;
    int ok = eb_masters(e, &c, &d) == SR_OK && eb_ingest(e, &c, &d, &ir) == SR_OK && ir.failed == 0;
    int64_t t_last = wall_ms();
    double load_cpu_s = cpu_s() - lc0; /* every thread's: the ingest cost of the snapshots, apart from the load */
    double load_s = (double)(t_last - t_first) / 1000.0;
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    sr_sample *s = calloc(c.points, sizeof *s);
    int *found = calloc(c.points, sizeof *found);
    double *lat = calloc(answers, sizeof *lat), *cpu = calloc(answers, sizeof *cpu);
    if (!s || !found || !lat || !cpu) return 1;
    uint64_t replayed_sum = 0, rep, nf, seq;
    /* verify: at the end, every point has a value, the answer at the last seq */
    if (answer(e, t_last + 1000, &d, c.points, s, found, &rep, &nf, &seq) || nf != c.points ||
        seq != st.watermark)
        ok = 0;
    /* before everything: empty */
    if (answer(e, t_first - 60000, &d, c.points, s, found, &rep, &nf, &seq) || nf || seq) ok = 0;
    uint64_t rng = c.seed * 0x9E3779B97F4A7C15ull + 1;
    /* --check: answers at random T equal the reference (the full replay) */
    sr_sample *rs = calloc(c.points, sizeof *rs);
    int *rfound = calloc(c.points, sizeof *rfound);
    if (!rs || !rfound) return 1;
    for (uint32_t k = 0; k < check && ok; k++) {
        rng = eb_mix(rng);
        int64_t t = t_first + (int64_t)(rng % (uint64_t)(t_last - t_first + 1));
        uint64_t rseq, rrep, rnf;
        if (answer(e, t, &d, c.points, s, found, &rep, &nf, &seq)) ok = 0;
        e->o.state_full_replay = 1;
        if (answer(e, t, &d, c.points, rs, rfound, &rrep, &rnf, &rseq)) ok = 0;
        e->o.state_full_replay = 0;
        if (rseq != seq || rnf != nf) ok = 0;
        for (uint32_t i = 0; ok && i < c.points; i++)
            if (found[i] != rfound[i] ||
                (found[i] && (s[i].ts != rs[i].ts || s[i].quality != rs[i].quality || s[i].v.f != rs[i].v.f))) {
                fprintf(stderr, "state_at: T=%" PRId64 ": point %u differs from the full replay\n", t, i);
                ok = 0;
            }
    }
    free(rs);
    free(rfound);
    uint64_t replayed_max = 0;
    snap_answers = 0;
    double ph_sum[5] = {0}, ph_max[5] = {0}, worst = -1; /* ph_max: the phases of the slowest answer */
    double load0 = loadavg1();
    for (uint32_t k = 0; k < answers && ok; k++) {
        rng = eb_mix(rng);
        int64_t t = t_first + (int64_t)(rng % (uint64_t)(t_last - t_first + 1));
        double t0 = eb_now(), c0 = cpu_s();
        if (answer(e, t, &d, c.points, s, found, &rep, &nf, &seq)) ok = 0;
        lat[k] = (eb_now() - t0) * 1000.0;
        cpu[k] = (cpu_s() - c0) * 1000.0;
        for (int j = 0; j < 5; j++) ph_sum[j] += ph[j];
        if (lat[k] > worst) {
            worst = lat[k];
            memcpy(ph_max, ph, sizeof ph);
        }
        replayed_sum += rep;
        if (rep > replayed_max) replayed_max = rep;
    }
    double load1 = loadavg1();
    qsort(lat, answers, sizeof *lat, cmp_d);
    qsort(cpu, answers, sizeof *cpu, cmp_d);
    double p50 = lat[answers / 2], p99 = lat[(size_t)((answers - 1) * 0.99)], mx = lat[answers - 1];
    double c50 = cpu[answers / 2], c99 = cpu[(size_t)((answers - 1) * 0.99)], cmx = cpu[answers - 1];
    printf("{\"bench\":\"state_at\",\"shape\":\"%s\",\"points\":%u,\"seconds\":%u,\"values\":%" PRIu64
           ",\"events\":%" PRIu64 ",\"enc\":%d,\"load_s\":%.1f,\"load_values_per_s\":%.0f,\"load_cpu_s\":%.1f,\"snap_events\":%u,"
           "\"snap_values\":%u,\"answers\":%u,\"from_snapshot\":%" PRIu64 ",\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"max_ms\":%.1f,\"cpu_p50_ms\":%.1f,\"cpu_p99_ms\":%.1f,\"cpu_max_ms\":%.1f,"
           "\"loadavg_1m\":[%.2f,%.2f],\"replayed_avg\":%.0f,\"replayed_max\":%" PRIu64 ",\"checked\":%u,\"goal_max_ms\":1000,"
           "\"phases_avg_ms\":{\"search\":%.1f,\"restore\":%.1f,\"open_replay\":%.1f,\"read\":%.1f,\"close\":%.1f},"
           "\"phases_of_max_ms\":{\"search\":%.1f,\"restore\":%.1f,\"open_replay\":%.1f,\"read\":%.1f,\"close\":%.1f},"
           "\"verify\":\"%s\"}\n",
           eb_shape_name(c.shape), c.points, c.seconds, d.sent, st.watermark, c.enc, load_s,
           load_s > 0 ? (double)d.sent / load_s : 0.0, load_cpu_s, snap_events, snap_values, answers, snap_answers, p50, p99, mx, c50, c99, cmx, load0, load1,
           (double)replayed_sum / answers, replayed_max, check, ph_sum[0] / answers, ph_sum[1] / answers,
           ph_sum[2] / answers, ph_sum[3] / answers, ph_sum[4] / answers, ph_max[0], ph_max[1], ph_max[2], ph_max[3],
           ph_max[4], ok ? "ok" : "FAILED");
    fflush(stdout);
    free(s);
    free(found);
    free(lat);
    free(cpu);
    if (sr_engine_close(e)) ok = 0;
    eb_data_free(&d);
    eb_rmrf(dir);
    if (c.dir == tmpl) rmdir(tmpl);
    return ok ? 0 : 1;
}
