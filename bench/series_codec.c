/*
 * bench/series_codec.c -- encode and decode rates of storage/series chunks,
 * their size, and the cost of downsampling one day of 1 s data.
 *
 * usage: series_codec [--points N] [--reps R] [--seed S]
 * Data: 2-decimal random-walk doubles (a water level in cm, say) at a 1 s
 * interval, all GOOD. Prints one JSON line per chunk size (120, 720 and 3600
 * samples a chunk) and one for downsampling 86,400 points into 1-minute
 * min/max/avg buckets. Each phase runs R times and reports the best time.
 * Every run decodes what it encoded and checks the count and a hash of the
 * timestamps and value bits against the source ("verify":"ok"); the
 * downsampling run checks its buckets against a plain loop.
 */
#include "benchutil.h"
#include "storage/series.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t sample_hash(uint64_t h, const sr_sample *s)
{
    uint64_t b;
    memcpy(&b, &s->v.f, 8);
    /* cheap (one multiply) so that hashing does not dominate the decode figure */
    return (h ^ (uint64_t)s->ts ^ (b << 1) ^ s->quality) * 0x100000001B3ull + (h >> 29);
}

static sr_sample *make_walk(size_t n, uint64_t seed)
{
    sr_sample *s = calloc(n, sizeof *s);
    int64_t cents = 25000;
    uint64_t r = seed;
    for (size_t i = 0; i < n; i++) {
        r = mix(r);
        cents += (int64_t)(r % 21) - 10;
        s[i].ts = 1700000000000 + (int64_t)i * 1000;
        s[i].quality = SR_Q_GOOD;
        s[i].v.f = (double)cents / 100.0;
    }
    return s;
}

static int run_codec(const sr_sample *src, size_t n, uint32_t chunk, int reps)
{
    uint64_t want = 0;
    for (size_t i = 0; i < n; i++) want = sample_hash(want, &src[i]);
    sr_buf out;
    sr_buf_init(&out);
    size_t nchunks = (n + chunk - 1) / chunk;
    size_t *offs = malloc((nchunks + 1) * sizeof *offs);
    sr_chunk_enc *e = NULL;
    if (sr_chunk_enc_create(SR_VT_NUMBER, &e)) return 1;
    double best_enc = 1e30, best_dec = 1e30;
    uint64_t got_hash = 0, got_n = 0;
    int ok = 1;
    for (int rep = 0; rep < reps; rep++) {
        out.len = 0;
        double t0 = now();
        for (size_t c = 0; c < nchunks; c++) {
            offs[c] = out.len;
            size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
            for (size_t i = c * chunk; i < end; i++)
                if (sr_chunk_enc_add(e, &src[i])) ok = 0;
            if (sr_chunk_enc_finish(e, &out)) ok = 0;
        }
        offs[nchunks] = out.len;
        double te = now() - t0;
        if (te < best_enc) best_enc = te;

        got_hash = 0;
        got_n = 0;
        t0 = now();
        for (size_t c = 0; c < nchunks; c++) {
            sr_chunk_dec d;
            sr_sample s;
            int rc;
            if (sr_chunk_dec_init(&d, out.data + offs[c], offs[c + 1] - offs[c])) {
                ok = 0;
                break;
            }
            while ((rc = sr_chunk_dec_next(&d, &s)) == SR_OK) {
                got_hash = sample_hash(got_hash, &s);
                got_n++;
            }
            if (rc != SR_DONE) ok = 0;
        }
        double td = now() - t0;
        if (td < best_dec) best_dec = td;
    }
    ok = ok && got_n == n && got_hash == want;
    printf("{\"bench\":\"series_codec\",\"type\":\"number\",\"data\":\"walk-2dec-1s\",\"chunk\":%u,\"points\":%zu,"
           "\"reps\":%d,\"encode_pts_per_s\":%.0f,\"decode_pts_per_s\":%.0f,\"bytes_per_point\":%.3f,"
           "\"verify\":\"%s\",\"hash\":\"%016" PRIx64 "\"}\n",
           chunk, n, reps, (double)n / best_enc, (double)n / best_dec, (double)out.len / (double)n,
           ok ? "ok" : "FAILED", got_hash);
    fflush(stdout);
    sr_chunk_enc_destroy(e);
    sr_buf_release(&out);
    free(offs);
    return ok ? 0 : 1;
}

/* One day at 1 s into 1-minute buckets: the aggregator alone (samples in
 * memory), decode + aggregate from 720-sample chunks as the engine does it
 * (sr_chunk_dec_agg: decoded straight into the aggregator), and, for
 * comparison, sample by sample (sr_chunk_dec_next + sr_agg_add). */
static int run_downsample(uint64_t seed, int reps)
{
    const size_t n = 86400;
    const int64_t iv = 60000;
    sr_sample *s = make_walk(n, seed);
    int64_t from = s[0].ts - s[0].ts % iv, to = from + 86400000;
    sr_buf chunks;
    sr_buf_init(&chunks);
    size_t nc = 0;
    if (sr_chunk_merge(SR_VT_NUMBER, NULL, 0, s, n, 720, &chunks, &nc)) return 1;
    /* the plain-loop reference */
    static double rmin[1441], rmax[1441], rsum[1441];
    static uint64_t rcnt[1441];
    memset(rcnt, 0, sizeof rcnt);
    for (size_t i = 0; i < n; i++) {
        size_t b = (size_t)((s[i].ts - from) / iv);
        double v = s[i].v.f;
        if (!rcnt[b]) rmin[b] = rmax[b] = v, rsum[b] = 0;
        if (v < rmin[b]) rmin[b] = v;
        if (v > rmax[b]) rmax[b] = v;
        rsum[b] += v;
        rcnt[b]++;
    }
    static sr_bucket out[1500];
    double best_agg = 1e30, best_full = 1e30, best_next = 1e30;
    size_t nb = 0;
    int ok = 1;
    uint64_t h = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int rep = 0; rep < reps; rep++) {
            sr_agg *a = NULL;
            double t0 = now();
            if (sr_agg_create(SR_VT_NUMBER, from, to, iv, SR_FILL_PREVIOUS, &a)) return 1;
            if (pass == 0) {
                for (size_t i = 0; i < n; i++) sr_agg_add(a, &s[i]);
            } else {
                for (size_t off = 0; off < chunks.len;) {
                    uint32_t clen = sr_get_le32(chunks.data + off);
                    sr_chunk_dec d;
                    sr_sample x;
                    uint64_t fed;
                    int rc = sr_chunk_dec_init(&d, chunks.data + off + 4, clen);
                    if (!rc && pass == 1)
                        while ((rc = sr_chunk_dec_agg(&d, a, INT64_MAX, &x, &fed)) == SR_OK) sr_agg_add(a, &x);
                    else if (!rc)
                        while ((rc = sr_chunk_dec_next(&d, &x)) == SR_OK) sr_agg_add(a, &x);
                    if (rc != SR_DONE) ok = 0;
                    off += 4 + (size_t)clen;
                }
            }
            nb = 0;
            size_t k;
            while ((k = sr_agg_emit(a, out + nb, 1500 - nb)) > 0) nb += k;
            double avg_sum = 0;
            for (size_t b = 0; b < nb; b++) avg_sum += out[b].sum / (double)out[b].count; /* the avg */
            double t = now() - t0;
            if (sr_agg_status(a)) ok = 0;
            sr_agg_destroy(a);
            if (pass == 0 && t < best_agg) best_agg = t;
            if (pass == 1 && t < best_full) best_full = t;
            if (pass == 2 && t < best_next) best_next = t;
            h = 0;
            for (size_t b = 0; b < nb; b++) {
                if (out[b].count != rcnt[b] || out[b].min != rmin[b] || out[b].max != rmax[b] ||
                    out[b].sum != rsum[b])
                    ok = 0;
                uint64_t bits;
                memcpy(&bits, &out[b].sum, 8);
                h = mix(h ^ bits) ^ out[b].count;
            }
            if (nb != 1440 || avg_sum != avg_sum) ok = 0;
        }
    }
    printf("{\"bench\":\"series_downsample\",\"points\":%zu,\"interval_ms\":%" PRId64 ",\"buckets\":%zu,\"reps\":%d,"
           "\"agg_us\":%.1f,\"decode_agg_us\":%.1f,\"decode_next_agg_us\":%.1f,\"chunk\":720,\"verify\":\"%s\","
           "\"hash\":\"%016" PRIx64 "\"}\n",
           n, iv, nb, reps, best_agg * 1e6, best_full * 1e6, best_next * 1e6, ok ? "ok" : "FAILED", h);
    fflush(stdout);
    sr_buf_release(&chunks);
    free(s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    size_t points = 3600000;
    int reps = 5;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--points")) points = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--reps")) reps = atoi(argv[++i]);
        else if (v && !strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: series_codec [--points N] [--reps R] [--seed S]\n");
            return 2;
        }
    }
    if (!points || reps < 1) {
        fprintf(stderr, "series_codec: --points and --reps must be positive\n");
        return 2;
    }
    sr_sample *src = make_walk(points, seed);
    int fails = 0;
    static const uint32_t sizes[] = {120, 720, 3600};
    for (int k = 0; k < 3; k++) fails += run_codec(src, points, sizes[k], reps);
    fails += run_downsample(seed, reps);
    free(src);
    return fails ? 1 : 0;
}
