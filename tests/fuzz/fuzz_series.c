/* tests/fuzz/fuzz_series.c -- libFuzzer target for the series chunk decoder:
 * the input is one chunk (docs/series-format.md). Reading the header,
 * decoding every sample and merging a couple of samples into it must never
 * crash, leak or read out of bounds; errors are fine. Each input is tried
 * twice: as given, and with its CRC-32C repaired so that mutations reach the
 * body decoders instead of stopping at the checksum. A chunk that decodes is
 * encoded again from its samples, by the old writer (version 1 or 2, the
 * encoder's choice) and by today's (version 3 where a summary applies),
 * which must give back the same samples bit for bit, and a summary that is
 * the fold of the samples (sr_chunk_summary_check): the mutated doubles
 * exercise the decimal detection of version 2 and the summaries' NaN,
 * infinities and signed zeros. Decoding straight into an aggregator
 * (sr_chunk_dec_agg, the downsampling path, which answers a chunk whole in
 * one bucket by its summary) must give what decoding and sr_agg_add give:
 * the same error, or the same buckets bit for bit -- unless the chunk's
 * summary is not the fold of its samples or its body does not decode (a
 * body mutated under a repaired CRC: no writer makes one, and the summary
 * may answer for it without decoding). Corpus:
 * tests/fuzz/series/ (copies of tests/data/series/, versions 1 to 3). */
#include "storage/crc32c.h"
#include "storage/series.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(sr_vtype t, const sr_sample *a, const sr_sample *b)
{
    if (a->ts != b->ts || a->quality != b->quality) return 0;
    switch (t) {
    case SR_VT_NUMBER: return !memcmp(&a->v.f, &b->v.f, sizeof a->v.f);
    case SR_VT_INTEGER: return a->v.i == b->v.i;
    case SR_VT_BOOL: return a->v.b == b->v.b;
    case SR_VT_STRING:
        return a->v.str.slen == b->v.str.slen && (!a->v.str.slen || !memcmp(a->v.str.s, b->v.str.s, a->v.str.slen));
    }
    return 0;
}

/* Encode the samples again and decode them: the same samples come back. */
static void reencode(sr_vtype t, const sr_sample *s, uint32_t n, int summaries)
{
    sr_chunk_enc *e = NULL;
    sr_buf b;
    sr_buf_init(&b);
    if (sr_chunk_enc_create(t, &e) || sr_chunk_enc_summary(e, summaries)) abort();
    for (uint32_t i = 0; i < n; i++)
        if (sr_chunk_enc_add(e, &s[i])) abort();
    size_t want = sr_chunk_enc_bytes(e);
    if (sr_chunk_enc_finish(e, &b) || b.len != want) abort();
    sr_chunk_dec d;
    sr_sample x;
    uint32_t k = 0;
    int rc;
    if (sr_chunk_dec_init(&d, b.data, b.len)) abort();
    while ((rc = sr_chunk_dec_next(&d, &x)) == SR_OK)
        if (k >= n || !same(t, &x, &s[k++])) abort();
    if (rc != SR_DONE || k != n) abort();
    if (sr_chunk_summary_check(b.data, b.len)) abort();
    if (!summaries && b.data[0] > 2) abort();
    sr_chunk_enc_destroy(e);
    sr_buf_release(&b);
}

/* All buckets of a (at most max); aborts on more. */
static size_t drain(sr_agg *a, sr_bucket *b, size_t max)
{
    size_t n = 0, got;
    while ((got = sr_agg_emit(a, b + n, max - n < 64 ? max - n : 64)) > 0) n += got;
    if (sr_agg_emit(a, b, 1)) abort();
    return n;
}

/* sr_chunk_dec_agg against sr_chunk_dec_next + sr_agg_add on [from, to),
 * with a stop in the middle (as a late sample makes one in range_once). */
static void agg_check(const uint8_t *data, size_t size, const sr_chunk_info *info)
{
    if (info->type == SR_VT_STRING || !info->count) return;
    uint64_t span = (uint64_t)info->last_ts - (uint64_t)info->first_ts;
    uint64_t div = 1 + size % 61;
    int64_t iv = (int64_t)(span / div > INT64_MAX - 1 ? INT64_MAX : span / div + 1);
    int64_t from = info->first_ts + (int64_t)(span / 7 * (size % 3));
    int64_t to = info->last_ts == INT64_MAX ? INT64_MAX : info->last_ts + 1 - (int64_t)(size % 2);
    int64_t mid = (int64_t)((uint64_t)info->first_ts + span / 2);
    if (from >= to) return;
    sr_agg *ap = NULL, *af = NULL;
    if (sr_agg_create(info->type, from, to, iv, SR_FILL_NONE, &ap)) return;
    if (sr_agg_create(info->type, from, to, iv, SR_FILL_NONE, &af)) abort();
    sr_chunk_dec d;
    sr_sample s;
    int rp, rf;
    if (sr_chunk_dec_init(&d, data, size)) abort();
    while ((rp = sr_chunk_dec_next(&d, &s)) == SR_OK && s.ts < to) sr_agg_add(ap, &s);
    if (sr_chunk_dec_init(&d, data, size)) abort();
    int64_t stop = mid < to ? mid : to;
    for (;;) {
        uint64_t fed;
        if ((rf = sr_chunk_dec_agg(&d, af, stop, &s, &fed)) != SR_OK) break;
        if (s.ts < stop || s.ts >= to) break;
        sr_agg_add(af, &s);
        stop = to;
    }
    /* a version 3 chunk whose summary is not its samples' fold, or whose
     * body does not decode: the summary may answer for it (not compared) */
    int comparable = data[0] != 3 || !sr_chunk_summary_check(data, size);
    if (comparable && (rp == SR_DONE ? SR_OK : rp) != (rf == SR_DONE ? SR_OK : rf)) abort();
    if (comparable && (rp == SR_OK || rp == SR_DONE)) {
        size_t max = (size_t)info->count + 1;
        sr_bucket *bp = malloc(max * sizeof *bp), *bf = malloc(max * sizeof *bf);
        if (!bp || !bf) abort();
        size_t np = drain(ap, bp, max), nf = drain(af, bf, max);
        if (np != nf) abort();
        for (size_t i = 0; i < np; i++)
            if (bp[i].start != bf[i].start || bp[i].count != bf[i].count || memcmp(&bp[i].min, &bf[i].min, 40) ||
                bp[i].first_ts != bf[i].first_ts || bp[i].last_ts != bf[i].last_ts)
                abort();
        free(bp);
        free(bf);
    }
    sr_agg_destroy(ap);
    sr_agg_destroy(af);
}

static void one(const uint8_t *data, size_t size)
{
    sr_chunk_info info;
    int rc = sr_chunk_info_get(data, size, &info);
    if (rc != SR_OK && rc != SR_ECORRUPT && rc != SR_EVERSION) abort();
    sr_chunk_dec d;
    if (sr_chunk_dec_init(&d, data, size) == SR_OK) {
        agg_check(data, size, &info);
        sr_sample s;
        int64_t prev = INT64_MIN;
        uint32_t n = 0;
        /* the samples, for reencode (a chunk has at most 8 samples a byte) */
        sr_sample *all = malloc(((size_t)info.count + 1) * sizeof *all);
        if (!all) abort();
        while ((rc = sr_chunk_dec_next(&d, &s)) == SR_OK) {
            all[n] = s;
            if (n && s.ts <= prev) abort(); /* timestamps strictly increase */
            if (s.quality > 3) abort();
            if (info.type == SR_VT_STRING && s.v.str.slen &&
                ((const uint8_t *)s.v.str.s < data || (const uint8_t *)s.v.str.s + s.v.str.slen > data + size))
                abort(); /* strings borrow from the chunk */
            prev = s.ts;
            n++;
        }
        if (rc == SR_DONE && (n != info.count || (n && prev != info.last_ts))) abort();
        if (rc != SR_DONE && rc != SR_ECORRUPT) abort();
        if (rc == SR_DONE) {
            reencode(info.type, all, n, 0);
            reencode(info.type, all, n, 1);
        }
        free(all);
    }
    if (rc == SR_OK || rc == SR_DONE || size < 32) {
        sr_vtype t = size >= 2 && data[1] >= 1 && data[1] <= 4 ? (sr_vtype)data[1] : SR_VT_NUMBER;
        sr_sample add[2];
        memset(add, 0, sizeof add);
        add[0].ts = size >= 16 ? (int64_t)sr_get_le64(data + 8) : 0;
        add[1].ts = add[0].ts ^ 1;
        add[0].v.str.s = t == SR_VT_STRING ? "x" : NULL;
        add[0].v.str.slen = t == SR_VT_STRING ? 1 : 0;
        if (t == SR_VT_BOOL) add[0].v.b = add[1].v.b = 1;
        sr_buf out;
        sr_buf_init(&out);
        size_t nc = 0;
        rc = sr_chunk_merge(t, data, size, add, 2, 3, &out, &nc);
        if (rc != SR_OK && rc != SR_ECORRUPT && rc != SR_EVERSION && rc != SR_EINVAL) abort();
        /* every merged chunk decodes */
        for (size_t off = 0; rc == SR_OK && off < out.len;) {
            uint32_t clen = sr_get_le32(out.data + off);
            sr_chunk_dec d2;
            sr_sample s;
            if (sr_chunk_dec_init(&d2, out.data + off + 4, clen)) abort();
            if (sr_chunk_summary_check(out.data + off + 4, clen)) abort();
            int r2;
            while ((r2 = sr_chunk_dec_next(&d2, &s)) == SR_OK) {
            }
            if (r2 != SR_DONE) abort();
            off += 4 + (size_t)clen;
        }
        sr_buf_release(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size >= 32) {
        uint8_t *c = malloc(size);
        if (!c) return 0;
        memcpy(c, data, size);
        uint32_t crc = sr_crc32c(0, c, 28);
        crc = sr_crc32c(crc, c + 32, size - 32);
        sr_put_le32(c + 28, crc);
        one(c, size);
        free(c);
    }
    return 0;
}
