/*
 * bench/engine_query.c -- query rates of a loaded engine: latest value of one
 * point, raw range decode of one series, and downsampling one day of 1 s data
 * (86,400 samples) to 1-minute avg/min/max.
 *
 * usage: engine_query [--points N] [--seconds S] [--lookups L] [--ranges R]
 *                     [--downsamples Q] [--enc 0|1|2] [--zstd L] [--seed S] [--dir D]
 * --enc: 1 (the default) per-operator data keys, so the index's values are
 * sealed (layout 8, engine/ixseal.h); 2 one key for all, the index plain;
 * 0 nothing encrypted. 1 against 2 is the sealed index's cost.
 * A count of 0 skips that phase (its figures print as null): bench/callgrind.sh
 * runs one phase at a time so that each call is counted alone
 * (sr_engine_downsample calls sr_engine_range).
 * The data set is the reference one of engbench.h (seconds >= 86400; the
 * default, 2 days of 20 points, leaves the newest samples of every point in
 * its in-memory head so the queries read chunks and head). Loaded through
 * sr_engine_submit like engine_ingest, then:
 *  - latest: L sr_engine_latest calls for one point on one thread, each
 *    timed (p50/p99 in us), each checked against the newest generated value;
 *  - range: R full-range sr_engine_range calls (points in turn); samples/s,
 *    every result checked (count and hash of ts and value bits);
 *  - downsample: Q calls over day 0 with 60 s buckets (points in turn), each
 *    timed, each compared bucket by bucket (count, min, max exactly; avg to
 *    1e-9) with buckets computed from the generator.
 */
#include "engbench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmpd);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* A figure, or null when its phase was skipped. */
static void fig(char *buf, size_t cap, uint64_t count, const char *fmt, double v)
{
    if (count) snprintf(buf, cap, fmt, v);
    else snprintf(buf, cap, "null");
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 20, .seconds = 172800, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1,
                .enc = 1, .zstd = 1, .window = 8192};
    uint32_t lookups = 200000, ranges = 60, downs = 200;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--lookups")) lookups = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--ranges")) ranges = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--downsamples")) downs = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--zstd")) c.zstd = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: engine_query [--points N] [--seconds S>=86400] [--lookups L] [--ranges R]\n"
                            "                    [--downsamples Q] [--enc 0|1|2] [--zstd L] [--seed S] [--dir D]\n");
            return 2;
        }
    }
    if (!c.points || c.seconds < 86400 || (!lookups && !ranges && !downs)) {
        fprintf(stderr, "engine_query: need points >= 1, seconds >= 86400 and a positive count\n");
        return 2;
    }
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
    if (eb_generate(&c, &d)) return 1;
    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_query: open: %s\n", ei.msg);
        return 1;
    }
    eb_ingest_res ir;
    int ok = eb_masters(e, &c, &d) == SR_OK && eb_ingest(e, &c, &d, &ir) == SR_OK && ir.failed == 0;
    if (!ok) fprintf(stderr, "engine_query: load failed\n");

    /* expected values of every point */
    double **vals = calloc(c.points, sizeof *vals);
    uint64_t *phash = calloc(c.points, sizeof *phash);
    for (uint32_t p = 0; p < c.points; p++) {
        vals[p] = malloc((size_t)c.seconds * sizeof **vals);
        eb_values(&c, p, vals[p]);
        for (uint32_t i = 0; i < c.seconds; i++) phash[p] += eb_hash(p, EB_T0 + (int64_t)i * 1000, vals[p][i]);
    }

    /* latest of one point */
    uint32_t lp = c.points / 2, lpn = d.point_no[lp];
    double *lat = malloc(((size_t)(lookups > downs ? lookups : downs) + 1) * sizeof *lat);
    int64_t want_ts = EB_T0 + (int64_t)(c.seconds - 1) * 1000;
    uint64_t lbad = 0;
    double t0 = eb_now();
    for (uint32_t i = 0; i < lookups; i++) {
        sr_sample s;
        int found = 0;
        double a = eb_now();
        int rc = sr_engine_latest(e, &lpn, 1, &s, &found, NULL);
        lat[i] = eb_now() - a;
        if (rc || !found || s.ts != want_ts || memcmp(&s.v.f, &vals[lp][c.seconds - 1], 8) != 0) lbad++;
    }
    double t_latest = eb_now() - t0;
    double lat_p50 = pct(lat, lookups, 0.50) * 1e6, lat_p99 = pct(lat, lookups, 0.99) * 1e6;
    if (lbad) ok = 0;

    /* raw range of one series */
    sr_buf sb;
    sr_buf_init(&sb);
    uint64_t rsamples = 0, rbad = 0, rh_all = 0;
    t0 = eb_now();
    for (uint32_t i = 0; i < ranges; i++) {
        uint32_t p = i % c.points;
        sr_range_q q = {.point = d.point_no[p], .from = EB_T0, .to = EB_T0 + (int64_t)c.seconds * 1000,
                        .after = INT64_MIN};
        int more = 0;
        sb.len = 0;
        if (sr_engine_range(e, &q, &sb, NULL, &more)) {
            rbad++;
            continue;
        }
        const sr_sample *v = (const sr_sample *)sb.data;
        size_t n = sb.len / sizeof *v;
        uint64_t h = 0;
        for (size_t k = 0; k < n; k++) h += eb_hash(p, v[k].ts, v[k].v.f);
        if (n != c.seconds || h != phash[p]) rbad++;
        rsamples += n;
        rh_all += h;
    }
    double t_range = eb_now() - t0;
    if (rbad) ok = 0;
    sr_buf_release(&sb);

    /* downsample day 0 into minutes */
    enum { NB = 1440 };
    sr_bucket *want = malloc((size_t)c.points * NB * sizeof *want);
    for (uint32_t p = 0; p < c.points; p++)
        for (int b = 0; b < NB; b++) {
            sr_bucket *w = &want[(size_t)p * NB + (size_t)b];
            memset(w, 0, sizeof *w);
            w->start = EB_T0 + (int64_t)b * 60000;
            w->count = 60;
            w->min = INFINITY;
            w->max = -INFINITY;
            for (int k = 0; k < 60; k++) {
                double x = vals[p][b * 60 + k];
                w->sum += x;
                if (x < w->min) w->min = x;
                if (x > w->max) w->max = x;
            }
        }
    sr_buf bb;
    sr_buf_init(&bb);
    uint64_t dbad = 0;
    for (uint32_t i = 0; i < downs; i++) {
        uint32_t p = i % c.points;
        bb.len = 0;
        double a = eb_now();
        int rc = sr_engine_downsample(e, d.point_no[p], EB_T0, EB_T0 + 86400000, 60000, SR_FILL_NONE, &bb);
        lat[i] = eb_now() - a;
        const sr_bucket *g = (const sr_bucket *)bb.data;
        size_t n = bb.len / sizeof *g;
        if (rc || n != NB) {
            dbad++;
            continue;
        }
        for (int b = 0; b < NB; b++) {
            const sr_bucket *w = &want[(size_t)p * NB + (size_t)b];
            double avg = g[b].sum / (double)g[b].count, wavg = w->sum / 60.0;
            if (g[b].start != w->start || g[b].count != 60 || g[b].min != w->min || g[b].max != w->max ||
                fabs(avg - wavg) > 1e-9 * fabs(wavg) + 1e-12) {
                dbad++;
                break;
            }
        }
    }
    double ds_p50 = pct(lat, downs, 0.50) * 1e6, ds_p99 = pct(lat, downs, 0.99) * 1e6;
    if (dbad) ok = 0;
    sr_buf_release(&bb);
    if (sr_engine_close(e)) ok = 0;

    /* figures of a skipped phase are null */
    char f_lps[32], f_l50[32], f_l99[32], f_rps[32], f_d50[32], f_d99[32];
    fig(f_lps, sizeof f_lps, lookups, "%.0f", (double)lookups / t_latest);
    fig(f_l50, sizeof f_l50, lookups, "%.2f", lat_p50);
    fig(f_l99, sizeof f_l99, lookups, "%.2f", lat_p99);
    fig(f_rps, sizeof f_rps, ranges, "%.0f", (double)rsamples / t_range);
    fig(f_d50, sizeof f_d50, downs, "%.1f", ds_p50);
    fig(f_d99, sizeof f_d99, downs, "%.1f", ds_p99);
    printf("{\"bench\":\"engine_query\",\"points\":%u,\"seconds\":%u,\"enc\":%d,\"zstd\":%d,\"loaded\":%" PRIu64
           ",\"load_s\":%.3f,\"latest_lookups\":%u,\"latest_per_s\":%s,\"latest_p50_us\":%s,"
           "\"latest_p99_us\":%s,\"ranges\":%u,\"range_samples\":%" PRIu64 ",\"range_pts_per_s\":%s,"
           "\"downsamples\":%u,\"downsample_p50_us\":%s,\"downsample_p99_us\":%s,"
           "\"bad\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "],\"verify\":\"%s\",\"hash\":\"%016" PRIx64 "\"}\n",
           c.points, c.seconds, c.enc, c.zstd, d.unique, ir.secs, lookups, f_lps, f_l50, f_l99, ranges, rsamples, f_rps,
           downs, f_d50, f_d99, lbad, rbad, dbad, ok ? "ok" : "FAILED", rh_all);
    fflush(stdout);
    for (uint32_t p = 0; p < c.points; p++) free(vals[p]);
    free(vals);
    free(phash);
    free(want);
    free(lat);
    eb_data_free(&d);
    eb_rmrf(dir);
    if (c.dir == tmpl) rmdir(tmpl);
    return ok ? 0 : 1;
}
