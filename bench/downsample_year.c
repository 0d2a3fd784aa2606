/*
 * bench/downsample_year.c -- one year of 1 s values of one point (31.5 M, the
 * reference walk: 2 decimals, steps -0.10..+0.10) downsampled to 1 h buckets
 * (8,760), the goal of issue #13: <= 20 ms, by per-chunk summaries (series
 * format version 3, docs/series-format.md).
 *
 * usage: downsample_year [--days D] [--reps R] [--series 0|1] [--new 0|1]
 *                        [--old 0|1] [--engine 0|1] [--seed S] [--dir DIR]
 * Two phases, each timed call by call (p50/p99 in ms) and each call checked
 * bucket by bucket against buckets computed from the generated values
 * (count, min, max, first, last exactly; the mean to 1e-9):
 *  - series (--series 1, the default): the year's chunks (1,024 samples
 *    each, the engine's default head_max) encoded into memory through the
 *    series API, then R calls of ds_year: for each chunk sr_chunk_dec_init
 *    and sr_chunk_dec_agg, as sr_engine_downsample does for the chunks of
 *    its LMDB snapshot (without LMDB): with --new 1 (the default) on
 *    today's chunks (version 3, summaries); with --old 1 (the default) on
 *    the same samples encoded by the old writer (sr_chunk_enc_summary(e, 0):
 *    versions 1 and 2, no summaries), downsampled the same way: the before
 *    and after of the summaries side by side in one run.
 *    bench/callgrind.sh counts ds_year with --new 1 --old 0.
 *  - engine (--engine 1): the year submitted to an engine (sync always,
 *    encryption on; the reference set's 1 % late values), then R
 *    sr_engine_downsample calls over the year: the end-to-end figure.
 * Prints one JSON line.
 */
#include "engbench.h"

#include "storage/series.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 1024, HOUR = 3600000 };

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmpd);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* The year's chunks (4-byte length, chunk), summaries on or off. */
static int encode_year(const double *v, uint32_t n, int summaries, sr_buf *out, size_t *nchunks)
{
    sr_chunk_enc *e = NULL;
    int rc = sr_chunk_enc_create(SR_VT_NUMBER, &e);
    if (!rc) rc = sr_chunk_enc_summary(e, summaries);
    *nchunks = 0;
    for (uint32_t i = 0; !rc && i < n;) {
        uint32_t c = n - i < CHUNK ? n - i : CHUNK;
        for (uint32_t k = 0; !rc && k < c; k++) {
            sr_sample s = {.ts = EB_T0 + (int64_t)(i + k) * 1000, .quality = SR_Q_GOOD, .v.f = v[i + k]};
            rc = sr_chunk_enc_add(e, &s);
        }
        size_t at = out->len;
        uint8_t z4[4] = {0};
        if (!rc) rc = sr_buf_append(out, z4, 4);
        if (!rc) rc = sr_chunk_enc_finish(e, out);
        if (!rc) sr_put_le32(out->data + at, (uint32_t)(out->len - at - 4));
        (*nchunks)++;
        i += c;
    }
    sr_chunk_enc_destroy(e);
    return rc;
}

/* One downsample of [from, to) into 1 h buckets over the chunks, as
 * sr_engine_downsample over its snapshot's chunks. */
__attribute__((noinline)) int ds_year(const sr_buf *chunks, int64_t from, int64_t to, sr_buf *buckets)
{
    sr_agg *a = NULL;
    int rc = sr_agg_create(SR_VT_NUMBER, from, to, HOUR, SR_FILL_NONE, &a);
    for (size_t off = 0; !rc && off < chunks->len;) {
        uint32_t len = sr_get_le32(chunks->data + off);
        sr_chunk_dec d;
        if ((rc = sr_chunk_dec_init(&d, chunks->data + off + 4, len))) break;
        off += 4 + (size_t)len;
        sr_sample s;
        uint64_t fed;
        rc = sr_chunk_dec_agg(&d, a, to, &s, &fed);
        if (rc == SR_DONE || rc == SR_OK) rc = SR_OK; /* (SR_OK: a sample at or after to) */
    }
    if (!rc) rc = sr_agg_status(a);
    sr_bucket tmp[256];
    size_t got;
    while (!rc && (got = sr_agg_emit(a, tmp, 256)) > 0) rc = sr_buf_append(buckets, tmp, got * sizeof *tmp);
    sr_agg_destroy(a);
    return rc;
}

/* Buckets against the values: 0 if they agree. */
static int check(const sr_buf *bb, const double *v, uint32_t n)
{
    const sr_bucket *g = (const sr_bucket *)bb->data;
    size_t nb = bb->len / sizeof *g, want = ((size_t)n + 3599) / 3600;
    if (nb != want) return 1;
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * 3600, i1 = i0 + 3600 < n ? i0 + 3600 : n;
        double sum = 0, mn = v[i0], mx = v[i0];
        for (size_t i = i0; i < i1; i++) {
            sum += v[i];
            mn = v[i] < mn ? v[i] : mn;
            mx = v[i] > mx ? v[i] : mx;
        }
        double avg = g[b].sum / (double)g[b].count, wavg = sum / (double)(i1 - i0);
        if (g[b].start != EB_T0 + (int64_t)b * HOUR || g[b].count != i1 - i0 || g[b].min != mn || g[b].max != mx ||
            g[b].first != v[i0] || g[b].last != v[i1 - 1] || fabs(avg - wavg) > 1e-9 * fabs(wavg) + 1e-12)
            return 1;
    }
    return 0;
}

/* R timed calls of ds_year; p50/p99 in ms; *bad counts failed checks. */
static void time_series(const sr_buf *chunks, const double *v, uint32_t n, uint32_t reps, double *p50, double *p99,
                        uint64_t *bad)
{
    double *lat = calloc(reps + 1, sizeof *lat);
    sr_buf bb;
    sr_buf_init(&bb);
    int64_t to = EB_T0 + (int64_t)n * 1000;
    for (uint32_t r = 0; r < reps; r++) {
        bb.len = 0;
        double a = eb_now();
        int rc = ds_year(chunks, EB_T0, to, &bb);
        lat[r] = eb_now() - a;
        if (rc || check(&bb, v, n)) ++*bad;
    }
    *p50 = pct(lat, reps, 0.5) * 1e3;
    *p99 = pct(lat, reps, 0.99) * 1e3;
    sr_buf_release(&bb);
    free(lat);
}

static void fig(char *b, size_t cap, int on, double v)
{
    if (on) snprintf(b, cap, "%.3f", v);
    else snprintf(b, cap, "null");
}

int main(int argc, char **argv)
{
    uint32_t days = 365, reps = 20;
    int series = 1, newf = 1, old = 1, engine = 0;
    eb_cfg c = {.points = 1, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1, .enc = 1, .zstd = 1,
                .window = 8192};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--days")) days = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--reps")) reps = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--series")) series = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--old")) old = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--new")) newf = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--engine")) engine = atoi(argv[++i]);
        else if (hv && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: downsample_year [--days D] [--reps R] [--series 0|1] [--new 0|1] [--old 0|1]\n"
                            "                       [--engine 0|1] [--seed S] [--dir DIR]\n");
            return 2;
        }
    }
    if (!days || days > 4000 || !reps || (!(series && (newf || old)) && !engine)) {
        fprintf(stderr, "downsample_year: need 1 <= days <= 4000, reps >= 1 and a phase\n");
        return 2;
    }
    c.seconds = days * 86400;
    double *v = malloc((size_t)c.seconds * sizeof *v);
    if (!v) return 1;
    eb_values(&c, 0, v);
    int ok = 1;

    /* series phase: the chunks in memory, with and without summaries */
    double s50 = 0, s99 = 0, o50 = 0, o99 = 0;
    size_t nch = 0, nch_old = 0, bytes = 0, bytes_old = 0;
    uint64_t sbad = 0, obad = 0;
    if (series) {
        sr_buf ch, och;
        sr_buf_init(&ch);
        sr_buf_init(&och);
        if ((newf && encode_year(v, c.seconds, 1, &ch, &nch)) || (old && encode_year(v, c.seconds, 0, &och, &nch_old))) {
            fprintf(stderr, "downsample_year: encoding failed\n");
            return 1;
        }
        bytes = newf ? ch.len - 4 * nch : 0;
        bytes_old = old ? och.len - 4 * nch_old : 0;
        if (newf) time_series(&ch, v, c.seconds, reps, &s50, &s99, &sbad);
        if (old) time_series(&och, v, c.seconds, reps, &o50, &o99, &obad);
        if (sbad || obad) ok = 0;
        sr_buf_release(&ch);
        sr_buf_release(&och);
    }

    /* engine phase: the year through sr_engine_submit, then sr_engine_downsample */
    double e50 = 0, e99 = 0, load_s = 0;
    uint64_t ebad = 0;
    if (engine) {
        char tmpl[] = "/var/tmp/suiro-dsyear-XXXXXX", dir[1100];
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
            fprintf(stderr, "downsample_year: open: %s\n", ei.msg);
            return 1;
        }
        eb_ingest_res ir;
        if (eb_masters(e, &c, &d) != SR_OK || eb_ingest(e, &c, &d, &ir) != SR_OK || ir.failed) {
            fprintf(stderr, "downsample_year: load failed\n");
            ok = 0;
        }
        load_s = ir.secs;
        eb_data_free(&d);
        double *lat = calloc(reps + 1, sizeof *lat);
        sr_buf bb;
        sr_buf_init(&bb);
        for (uint32_t r = 0; r < reps; r++) {
            bb.len = 0;
            double a = eb_now();
            int rc = sr_engine_downsample(e, 1, EB_T0, EB_T0 + (int64_t)c.seconds * 1000, HOUR, SR_FILL_NONE, &bb);
            lat[r] = eb_now() - a;
            if (rc || check(&bb, v, c.seconds)) ebad++;
        }
        e50 = pct(lat, reps, 0.5) * 1e3;
        e99 = pct(lat, reps, 0.99) * 1e3;
        if (ebad) ok = 0;
        sr_buf_release(&bb);
        free(lat);
        if (sr_engine_close(e)) ok = 0;
        if (c.dir == tmpl) eb_rmrf(tmpl);
    }
    free(v);

    char fs50[32], fs99[32], fo50[32], fo99[32], fe50[32], fe99[32];
    fig(fs50, sizeof fs50, series && newf, s50);
    fig(fs99, sizeof fs99, series && newf, s99);
    fig(fo50, sizeof fo50, series && old, o50);
    fig(fo99, sizeof fo99, series && old, o99);
    fig(fe50, sizeof fe50, engine, e50);
    fig(fe99, sizeof fe99, engine, e99);
    printf("{\"bench\":\"downsample_year\",\"days\":%u,\"values\":%u,\"interval_ms\":%d,\"buckets\":%u,\"reps\":%u,"
           "\"chunk_samples\":%d,\"chunks\":%zu,\"chunks_old\":%zu,\"chunk_bytes\":%zu,\"chunk_bytes_old\":%zu,"
           "\"series_p50_ms\":%s,\"series_p99_ms\":%s,\"series_old_p50_ms\":%s,\"series_old_p99_ms\":%s,"
           "\"engine_load_s\":%.2f,\"engine_p50_ms\":%s,\"engine_p99_ms\":%s,\"verify\":\"%s\"}\n",
           days, c.seconds, HOUR, (c.seconds + 3599) / 3600, reps, CHUNK, nch, nch_old, bytes, bytes_old, fs50, fs99, fo50,
           fo99, load_s, fe50, fe99,
           ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
