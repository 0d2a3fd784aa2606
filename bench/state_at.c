/*
 * bench/state_at.c -- the state at a past time (issue #18, R-RE-2;
 * docs/state.md): the latency of an answer at random times T over a loaded
 * engine.
 *
 * usage: state_at [--points N] [--seconds S] [--shape series|snapshot]
 *                 [--answers K] [--enc 0|1|2] [--seed S] [--dir D]
 * Loads the reference data set of engbench.h (points x seconds values; the
 * snapshot shape: a gateway's cycle, many points at one time) through
 * sr_engine_submit, then answers K random T between the first and the last
 * event's ingest time: sr_engine_state_open (seq(T) and the private index
 * replayed to it), the latest value of every point and the registry read
 * from it, sr_engine_state_close. Prints one JSON line: p50, p99, max (ms),
 * events replayed on average, and "verify": the answer at the end has
 * every point's last value, one before the first event is empty.
 * Correctness only is checked; the times are reported, never asserted.
 */
#include "engbench.h"
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

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* one answer: open at T, read what the answer reads, close; *found: points
 * with a value */
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
    int crc = sr_engine_state_close(at);
    return rc ? rc : crc;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 2000, .seconds = 300, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1, .enc = 1,
                .zstd = 1, .window = 8192};
    uint32_t answers = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--answers")) answers = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--shape")) c.shape = eb_shape_of(argv[++i]);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: state_at [--points N] [--seconds S] [--shape series|snapshot] [--answers K] "
                            "[--enc 0|1|2] [--seed S] [--dir D]\n");
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
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "state_at: open: %s\n", ei.msg);
        return 1;
    }
    int64_t t_first = wall_ms();
    eb_ingest_res ir;
    int ok = eb_masters(e, &c, &d) == SR_OK && eb_ingest(e, &c, &d, &ir) == SR_OK && ir.failed == 0;
    int64_t t_last = wall_ms();
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    sr_sample *s = calloc(c.points, sizeof *s);
    int *found = calloc(c.points, sizeof *found);
    double *lat = calloc(answers, sizeof *lat);
    if (!s || !found || !lat) return 1;
    uint64_t replayed_sum = 0, rep, nf, seq;
    /* verify: at the end, every point has a value, the answer at the last seq */
    if (answer(e, t_last + 1000, &d, c.points, s, found, &rep, &nf, &seq) || nf != c.points ||
        seq != st.watermark)
        ok = 0;
    /* before everything: empty */
    if (answer(e, t_first - 60000, &d, c.points, s, found, &rep, &nf, &seq) || nf || seq) ok = 0;
    uint64_t rng = c.seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint32_t k = 0; k < answers && ok; k++) {
        rng = eb_mix(rng);
        int64_t t = t_first + (int64_t)(rng % (uint64_t)(t_last - t_first + 1));
        double t0 = eb_now();
        if (answer(e, t, &d, c.points, s, found, &rep, &nf, &seq)) ok = 0;
        lat[k] = (eb_now() - t0) * 1000.0;
        replayed_sum += rep;
    }
    qsort(lat, answers, sizeof *lat, cmp_d);
    double p50 = lat[answers / 2], p99 = lat[(size_t)((answers - 1) * 0.99)], mx = lat[answers - 1];
    printf("{\"bench\":\"state_at\",\"shape\":\"%s\",\"points\":%u,\"seconds\":%u,\"values\":%" PRIu64
           ",\"events\":%" PRIu64 ",\"enc\":%d,\"answers\":%u,\"snapshots\":false,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"max_ms\":%.1f,\"replayed_avg\":%.0f,\"goal_max_ms\":1000,\"verify\":\"%s\"}\n",
           eb_shape_name(c.shape), c.points, c.seconds, d.sent, st.watermark, c.enc, answers, p50, p99, mx,
           (double)replayed_sum / answers, ok ? "ok" : "FAILED");
    fflush(stdout);
    free(s);
    free(found);
    free(lat);
    if (sr_engine_close(e)) ok = 0;
    eb_data_free(&d);
    eb_rmrf(dir);
    if (c.dir == tmpl) rmdir(tmpl);
    return ok ? 0 : 1;
}
