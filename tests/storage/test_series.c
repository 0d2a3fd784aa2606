/* tests/storage/test_series.c -- storage/series.c behaviour: seeded property
 * tests of the chunk codec (every type, special doubles, extreme timestamps),
 * merge and downsampling against naive models, corrupt and truncated input,
 * allocation failure, and the golden corpus in tests/data/series/.
 *
 * SR_TEST_SEED changes the seed, SR_SOAK multiplies the iteration counts.
 * SR_GOLDEN_WRITE=1 regenerates the golden corpus (only for a new format
 * version: existing golden files are never edited). */
#include <criterion/criterion.h>
#include <float.h>
#include <inttypes.h>
#include <math.h> /* isnan */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_alloc.h"
#include "storage/crc32c.h"
#include "storage/series.h"
#include "testutil.h"

#define DATA SR_TEST_DATA "/series"

TestSuite(storage_series, .timeout = 240);

/* ---- generators ---------------------------------------------------------- */

static const char *const str_pool[] = {"", "open", "closed", "fault", "pump 3 running",
                                       "\x00\x01\xff binary", "a much longer status text that repeats", "x"};
static const uint32_t str_len[] = {0, 4, 6, 5, 14, 10, 38, 1};
#define NSTR (sizeof str_pool / sizeof str_pool[0])

static uint64_t bits_of(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}
static double dbl_of(uint64_t u)
{
    double f;
    memcpy(&f, &u, 8);
    return f;
}

static double special_double(tu_rng *r)
{
    static const uint64_t sp[] = {
        0x7FF8000000000000ull, /* qNaN */
        0x7FF0000000000001ull, /* sNaN payload 1 */
        0xFFF8DEADBEEF0001ull, /* negative NaN with payload */
        0x7FF0000000000000ull, /* +Inf */
        0xFFF0000000000000ull, /* -Inf */
        0x8000000000000000ull, /* -0.0 */
        0x0000000000000000ull, /* +0.0 */
        0x0000000000000001ull, /* smallest denormal */
        0x800FFFFFFFFFFFFFull, /* largest negative denormal */
        0x7FEFFFFFFFFFFFFFull, /* DBL_MAX */
        0x0010000000000000ull, /* DBL_MIN */
    };
    if (tu_below(r, 4) == 0) return dbl_of(tu_next(r)); /* any bit pattern */
    return dbl_of(sp[tu_below(r, sizeof sp / sizeof sp[0])]);
}

/* Timestamps: strictly increasing, in one of several regimes. */
static void gen_ts(tu_rng *r, int64_t *ts, size_t n)
{
    if (!n) return;
    int regime = (int)tu_below(r, 6);
    uint64_t t;
    switch (regime) {
    case 0: t = (uint64_t)INT64_MIN + tu_below(r, 1000); break;
    case 1: t = (uint64_t)(-(int64_t)tu_below(r, 1000000000)); break;
    default: t = 1700000000000ull + tu_below(r, 1000000); break;
    }
    uint64_t step = 1 + tu_below(r, 60000);
    ts[0] = (int64_t)t;
    for (size_t i = 1; i < n; i++) {
        uint64_t room = (uint64_t)INT64_MAX - (uint64_t)ts[i - 1];
        size_t left = n - i; /* samples still to place, including this one */
        if (room < left) {      /* squeeze: not enough room, restart below */
            ts[i] = ts[i - 1] + 1;
            continue;
        }
        uint64_t d;
        switch (regime) {
        case 2: d = step; break; /* perfectly regular */
        case 3: d = step + tu_below(r, 3) - (step > 1 ? 1 : 0); break;
        case 4: /* huge gaps now and then */
            d = tu_below(r, 8) ? 1 + tu_below(r, 5000) : (uint64_t)1 << tu_below(r, 63);
            break;
        default: d = 1 + (tu_next(r) >> tu_below(r, 64)); break;
        }
        if (d == 0) d = 1;
        uint64_t maxd = room - (left - 1); /* leave room for the rest */
        if (d > maxd) d = 1 + tu_below(r, maxd);
        ts[i] = (int64_t)((uint64_t)ts[i - 1] + d);
    }
}

static void gen_values(tu_rng *r, sr_vtype type, sr_sample *s, size_t n)
{
    int mode = (int)tu_below(r, 4);
    int64_t cents = (int64_t)tu_below(r, 100000);
    int64_t iv = (int64_t)tu_next(r) >> tu_below(r, 64);
    int qmode = (int)tu_below(r, 3);
    for (size_t i = 0; i < n; i++) {
        s[i].quality = qmode == 0 ? (uint8_t)tu_below(r, 4) : (qmode == 1 && tu_below(r, 50) == 0) ? SR_Q_BAD
                                                                                                   : SR_Q_GOOD;
        switch (type) {
        case SR_VT_NUMBER:
            if (mode == 0) s[i].v.f = special_double(r);
            else if (mode == 1) s[i].v.f = dbl_of(tu_next(r));
            else if (mode == 2 && tu_below(r, 3)) s[i].v.f = i ? s[i - 1].v.f : 1.5;
            else {
                cents += (int64_t)tu_below(r, 201) - 100;
                s[i].v.f = (double)cents / 100.0;
            }
            break;
        case SR_VT_INTEGER:
            if (mode == 0) s[i].v.i = (int64_t)tu_next(r);
            else if (mode == 1) s[i].v.i = tu_below(r, 2) ? INT64_MIN : INT64_MAX;
            else {
                iv += (int64_t)tu_below(r, 21) - 10;
                s[i].v.i = iv;
            }
            break;
        case SR_VT_BOOL: s[i].v.b = mode == 0 ? (int)tu_below(r, 2) : (int)(tu_below(r, 10) == 0); break;
        case SR_VT_STRING: {
            size_t k = mode == 0 ? tu_below(r, NSTR) : (i && tu_below(r, 4)) ? NSTR : tu_below(r, NSTR);
            if (k == NSTR) s[i].v.str = s[i - 1].v.str;
            else {
                s[i].v.str.s = str_pool[k];
                s[i].v.str.slen = str_len[k];
            }
            break;
        }
        }
    }
}

static size_t gen_len(tu_rng *r)
{
    uint64_t k = tu_below(r, 100);
    if (k < 70) return 1 + tu_below(r, 20);
    if (k < 95) return 1 + tu_below(r, 200);
    if (k < 99) return 1 + tu_below(r, 2000);
    return 1 + tu_below(r, 8000);
}

static sr_sample *gen_series(tu_rng *r, sr_vtype type, size_t n)
{
    sr_sample *s = calloc(n ? n : 1, sizeof *s);
    int64_t *ts = malloc((n ? n : 1) * sizeof *ts);
    gen_ts(r, ts, n);
    for (size_t i = 0; i < n; i++) s[i].ts = ts[i];
    gen_values(r, type, s, n);
    free(ts);
    return s;
}

/* ---- helpers ------------------------------------------------------------- */

static int same_sample(sr_vtype type, const sr_sample *a, const sr_sample *b)
{
    if (a->ts != b->ts || a->quality != b->quality) return 0;
    switch (type) {
    case SR_VT_NUMBER: return bits_of(a->v.f) == bits_of(b->v.f);
    case SR_VT_INTEGER: return a->v.i == b->v.i;
    case SR_VT_BOOL: return a->v.b == b->v.b;
    case SR_VT_STRING:
        return a->v.str.slen == b->v.str.slen && (!a->v.str.slen || !memcmp(a->v.str.s, b->v.str.s, a->v.str.slen));
    }
    return 0;
}

/* encode() writes the old formats (versions 1 and 2, no summary) unless this
 * is set: the tests of those formats' structure keep testing that writer;
 * the round trips and the summary tests write both. */
static int enc_summaries;

static void encode(sr_vtype type, const sr_sample *s, size_t n, sr_buf *out)
{
    sr_chunk_enc *e = NULL;
    cr_assert_eq(sr_chunk_enc_create(type, &e), SR_OK);
    cr_assert_eq(sr_chunk_enc_summary(e, enc_summaries), SR_OK);
    for (size_t i = 0; i < n; i++) cr_assert_eq(sr_chunk_enc_add(e, &s[i]), SR_OK, "sample %zu", i);
    cr_assert_eq(sr_chunk_enc_count(e), n);
    size_t before = out->len, predicted = sr_chunk_enc_bytes(e);
    cr_assert_eq(sr_chunk_enc_finish(e, out), SR_OK);
    cr_assert_eq(out->len - before, predicted, "enc_bytes predicts the chunk size");
    cr_assert_eq(sr_chunk_enc_count(e), 0, "finish resets");
    sr_chunk_enc_destroy(e);
}

/* The old-format chunk of a version 3 chunk (sr_chunk_strip_summary). */
static void strip_summary(const uint8_t *p, size_t len, sr_buf *out)
{
    cr_assert(len > 33 && p[0] == 3);
    out->len = 0;
    cr_assert_eq(sr_chunk_strip_summary(p, len, out), SR_OK);
    cr_assert_eq(out->data[0], (p[2] & 2) ? 2 : 1);
}

/* Decode everything; returns the rc that ended the loop, *n the samples. */
static int decode_all(const void *p, size_t len, sr_sample *out, size_t max, size_t *n)
{
    sr_chunk_dec d;
    *n = 0;
    int rc = sr_chunk_dec_init(&d, p, len);
    if (rc) return rc;
    sr_sample s;
    while ((rc = sr_chunk_dec_next(&d, &s)) == SR_OK) {
        if (*n < max) out[*n] = s;
        (*n)++;
    }
    return rc;
}

static void check_round_trip1(sr_vtype type, const sr_sample *s, size_t n, const char *what)
{
    sr_buf b;
    sr_buf_init(&b);
    encode(type, s, n, &b);
    cr_assert_null(sr_chunk_summary_check(b.data, b.len), "%s: %s", what, sr_chunk_summary_check(b.data, b.len));
    sr_chunk_info info;
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_OK, "%s", what);
    cr_assert_eq(info.type, type);
    cr_assert_eq(info.count, n);
    if (n) {
        cr_assert_eq(info.first_ts, s[0].ts, "%s", what);
        cr_assert_eq(info.last_ts, s[n - 1].ts, "%s", what);
    }
    sr_sample *got = calloc(n + 1, sizeof *got);
    size_t m;
    int rc = decode_all(b.data, b.len, got, n + 1, &m);
    cr_assert_eq(rc, SR_DONE, "%s: n=%zu rc=%s", what, n, sr_err_name(rc));
    cr_assert_eq(m, n, "%s", what);
    for (size_t i = 0; i < n; i++)
        cr_assert(same_sample(type, &s[i], &got[i]), "%s: sample %zu of %zu differs (ts %" PRId64 " vs %" PRId64 ")",
                  what, i, n, s[i].ts, got[i].ts);
    free(got);
    sr_buf_release(&b);
}

/* Both writers: the old formats, and version 3 (a summary when the chunk
 * can have one, checked against the decoded samples). */
static void check_round_trip(sr_vtype type, const sr_sample *s, size_t n, const char *what)
{
    int was = enc_summaries;
    enc_summaries = 0;
    check_round_trip1(type, s, n, what);
    enc_summaries = 1;
    check_round_trip1(type, s, n, what);
    enc_summaries = was;
}

/* ---- round trips ---------------------------------------------------------- */

static void random_round_trips(sr_vtype type, uint64_t salt, int iters)
{
    tu_rng r = {tu_seed(20240611) ^ salt};
    int n_iter = tu_iters(iters);
    for (int it = 0; it < n_iter; it++) {
        size_t n = gen_len(&r);
        sr_sample *s = gen_series(&r, type, n);
        char what[64];
        snprintf(what, sizeof what, "type %d iteration %d", (int)type, it);
        check_round_trip(type, s, n, what);
        free(s);
    }
}

/* 4 x 26,000 = 104,000 random series */
Test(storage_series, numbers_round_trip_bit_exact) { random_round_trips(SR_VT_NUMBER, 1, 26000); }
Test(storage_series, integers_round_trip) { random_round_trips(SR_VT_INTEGER, 2, 26000); }
Test(storage_series, booleans_round_trip) { random_round_trips(SR_VT_BOOL, 3, 26000); }
Test(storage_series, strings_round_trip) { random_round_trips(SR_VT_STRING, 4, 26000); }

Test(storage_series, special_doubles_round_trip_bit_for_bit)
{
    static const uint64_t sp[] = {0x7FF8000000000000ull, 0x7FF0000000000001ull, 0x7FF4000000000000ull,
                                  0xFFF8DEADBEEF0001ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull,
                                  0x7FF0000000000000ull, 0xFFF0000000000000ull, 0x8000000000000000ull,
                                  0x0000000000000000ull, 0x0000000000000001ull, 0x000FFFFFFFFFFFFFull,
                                  0x800FFFFFFFFFFFFFull, 0x7FEFFFFFFFFFFFFFull, 0xFFEFFFFFFFFFFFFFull,
                                  0x0010000000000000ull};
    size_t k = sizeof sp / sizeof sp[0];
    /* every ordered pair, so every XOR pattern between them is exercised */
    sr_sample *s = calloc(k * k * 2, sizeof *s);
    size_t n = 0;
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++) {
            s[n].ts = (int64_t)n * 1000;
            s[n++].v.f = dbl_of(sp[a]);
            s[n].ts = (int64_t)n * 1000;
            s[n++].v.f = dbl_of(sp[b]);
        }
    check_round_trip(SR_VT_NUMBER, s, n, "special pairs");
    for (size_t a = 0; a < k; a++) check_round_trip(SR_VT_NUMBER, &s[a * 2 * k], 1, "single special");
    cr_assert(isnan(DBL_MAX - DBL_MAX) == 0);
    free(s);
}

Test(storage_series, huge_gaps_and_negative_timestamps_round_trip)
{
    static const int64_t cases[][4] = {
        {0, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX},
        {INT64_MIN, -1, 0, INT64_MAX},
        {INT64_MIN, INT64_MIN + 1, INT64_MAX - 1, INT64_MAX},
        {-1000, -999, -998, -1},
        {INT64_MIN, 0, 1, 2},
        {-5, INT64_MAX, 0, 0}, /* 2 samples */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = c == 5 ? 2 : 4;
        for (int t = SR_VT_NUMBER; t <= SR_VT_STRING; t++) {
            sr_sample s[4];
            memset(s, 0, sizeof s);
            for (size_t i = 0; i < n; i++) {
                s[i].ts = cases[c][i];
                s[i].v.i = (int64_t)(i * 7);
                if (t == SR_VT_BOOL) s[i].v.b = (int)(i & 1);
                if (t == SR_VT_STRING) {
                    s[i].v.str.s = str_pool[i];
                    s[i].v.str.slen = str_len[i];
                }
                if (t == SR_VT_NUMBER) s[i].v.f = (double)i * 0.25;
            }
            check_round_trip((sr_vtype)t, s, n, "gaps");
        }
    }
    /* alternating tiny and huge deltas: every delta-of-delta width */
    sr_sample s[130];
    memset(s, 0, sizeof s);
    int64_t t = INT64_MIN;
    for (int i = 0; i < 130; i++) {
        s[i].ts = t;
        s[i].v.i = i;
        uint64_t d = (i % 2) ? 1 : (uint64_t)1 << (i / 2 % 57);
        t = (int64_t)((uint64_t)t + d);
    }
    check_round_trip(SR_VT_INTEGER, s, 130, "widths");
}

Test(storage_series, empty_chunk_has_a_header_and_no_samples)
{
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, NULL, 0, &b);
    sr_chunk_info info;
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_OK);
    cr_assert_eq(info.count, 0);
    size_t m;
    cr_assert_eq(decode_all(b.data, b.len, NULL, 0, &m), SR_DONE);
    cr_assert_eq(m, 0);
    sr_buf_release(&b);
}

Test(storage_series, enc_add_rejects_equal_or_older_timestamps_and_stays_unchanged)
{
    enc_summaries = 1; /* the encoder's default, as the direct adds below */
    for (int t = SR_VT_NUMBER; t <= SR_VT_STRING; t++) {
        sr_sample s[3] = {{.ts = 10}, {.ts = 20}, {.ts = 30}};
        for (int i = 0; i < 3; i++) {
            if (t == SR_VT_STRING) {
                s[i].v.str.s = str_pool[i + 1];
                s[i].v.str.slen = str_len[i + 1];
            }
            else if (t == SR_VT_BOOL) s[i].v.b = i & 1;
            else s[i].v.i = i + 1;
        }
        sr_buf ref, b;
        sr_buf_init(&ref);
        sr_buf_init(&b);
        encode((sr_vtype)t, s, 3, &ref);
        sr_chunk_enc *e = NULL;
        cr_assert_eq(sr_chunk_enc_create((sr_vtype)t, &e), SR_OK);
        cr_assert_eq(sr_chunk_enc_add(e, &s[0]), SR_OK);
        cr_assert_eq(sr_chunk_enc_add(e, &s[1]), SR_OK);
        size_t bytes = sr_chunk_enc_bytes(e);
        sr_sample bad = s[2];
        bad.ts = 20;
        cr_assert_eq(sr_chunk_enc_add(e, &bad), SR_EINVAL, "equal ts");
        bad.ts = 19;
        cr_assert_eq(sr_chunk_enc_add(e, &bad), SR_EINVAL, "older ts");
        bad.ts = INT64_MIN;
        cr_assert_eq(sr_chunk_enc_add(e, &bad), SR_EINVAL, "much older ts");
        bad = s[2];
        bad.quality = 4;
        cr_assert_eq(sr_chunk_enc_add(e, &bad), SR_EINVAL, "quality out of range");
        if (t == SR_VT_BOOL) {
            bad = s[2];
            bad.v.b = 2;
            cr_assert_eq(sr_chunk_enc_add(e, &bad), SR_EINVAL, "bool not 0/1");
        }
        cr_assert_eq(sr_chunk_enc_count(e), 2);
        cr_assert_eq(sr_chunk_enc_bytes(e), bytes);
        cr_assert_eq(sr_chunk_enc_add(e, &s[2]), SR_OK);
        cr_assert_eq(sr_chunk_enc_finish(e, &b), SR_OK);
        cr_assert(b.len == ref.len && !memcmp(b.data, ref.data, b.len), "type %d: rejected adds changed nothing", t);
        /* the encoder is reusable after finish */
        b.len = 0;
        for (int i = 0; i < 3; i++) cr_assert_eq(sr_chunk_enc_add(e, &s[i]), SR_OK);
        cr_assert_eq(sr_chunk_enc_finish(e, &b), SR_OK);
        cr_assert(b.len == ref.len && !memcmp(b.data, ref.data, b.len), "type %d: reuse", t);
        sr_chunk_enc_destroy(e);
        sr_buf_release(&ref);
        sr_buf_release(&b);
    }
    sr_chunk_enc *e = NULL;
    cr_assert_eq(sr_chunk_enc_create((sr_vtype)0, &e), SR_EINVAL);
    cr_assert_eq(sr_chunk_enc_create((sr_vtype)5, &e), SR_EINVAL);
    sr_chunk_enc_destroy(NULL);
}

Test(storage_series, info_is_read_from_the_header_alone)
{
    sr_sample s[3] = {{.ts = -7, .v.i = 1}, {.ts = 5, .v.i = 2}, {.ts = 99, .v.i = 3}};
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_INTEGER, s, 3, &b);
    /* scribble over the body: the header is still readable */
    for (size_t i = 32; i < b.len; i++) b.data[i] ^= 0x5A;
    sr_chunk_info info;
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_OK);
    cr_assert_eq(info.type, SR_VT_INTEGER);
    cr_assert_eq(info.count, 3);
    cr_assert_eq(info.first_ts, -7);
    cr_assert_eq(info.last_ts, 99);
    sr_chunk_dec d;
    cr_assert_eq(sr_chunk_dec_init(&d, b.data, b.len), SR_ECORRUPT, "but the body fails its CRC");
    cr_assert_eq(sr_chunk_info_get(b.data, 31, &info), SR_ECORRUPT);
    static const uint8_t unknown[] = {0, 4, 5, 255};
    for (size_t i = 0; i < sizeof unknown; i++) {
        b.data[0] = unknown[i];
        cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_EVERSION, "version %u", unknown[i]);
        cr_assert_eq(sr_chunk_dec_init(&d, b.data, b.len), SR_EVERSION);
    }
    b.data[0] = 2; /* known, but only for numbers */
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_ECORRUPT);
    sr_buf_release(&b);
}

/* ---- corrupt input ------------------------------------------------------- */

static void fix_crc(uint8_t *p, size_t len)
{
    if (len < 32) return;
    uint32_t c = sr_crc32c(0, p, 28);
    c = sr_crc32c(c, p + 32, len - 32);
    sr_put_le32(p + 28, c);
}

Test(storage_series, truncated_and_flipped_chunks_are_corrupt)
{
    tu_rng r = {tu_seed(77)};
    for (int it = 0; it < tu_iters(60); it++) {
        sr_vtype type = (sr_vtype)(1 + it % 4);
        size_t n = 1 + tu_below(&r, it < 40 ? 12 : 300);
        sr_sample *s = gen_series(&r, type, n);
        sr_buf b;
        sr_buf_init(&b);
        encode(type, s, n, &b);
        sr_sample *got = calloc(n + 2, sizeof *got);
        size_t m;
        uint8_t *c = malloc(b.len);
        for (size_t cut = 0; cut < b.len; cut++) { /* truncation at every length */
            memcpy(c, b.data, cut);
            int rc = decode_all(c, cut, got, n + 2, &m);
            cr_assert_eq(rc, SR_ECORRUPT, "cut at %zu of %zu: %s", cut, b.len, sr_err_name(rc));
            /* even with a repaired CRC, a truncated body never decodes */
            if (cut >= 32) {
                fix_crc(c, cut);
                rc = decode_all(c, cut, got, n + 2, &m);
                cr_assert(rc == SR_ECORRUPT, "cut at %zu (crc fixed): %s", cut, sr_err_name(rc));
            }
        }
        for (size_t i = 0; i < b.len; i++) { /* one flipped byte anywhere */
            memcpy(c, b.data, b.len);
            c[i] ^= (uint8_t)(1 + tu_below(&r, 255));
            int rc = decode_all(c, b.len, got, n + 2, &m);
            cr_assert(rc == SR_ECORRUPT || (i == 0 && rc == SR_EVERSION), "flip at %zu: %s", i, sr_err_name(rc));
            /* with a repaired CRC: any result but a crash or an overread */
            fix_crc(c, b.len);
            rc = decode_all(c, b.len, got, n + 2, &m);
            cr_assert(rc == SR_DONE || rc == SR_ECORRUPT || rc == SR_EVERSION, "%s", sr_err_name(rc));
            if (rc == SR_DONE) cr_assert_leq(m, n + 2);
        }
        free(c);
        free(got);
        free(s);
        sr_buf_release(&b);
    }
}

Test(storage_series, random_bytes_never_crash)
{
    tu_rng r = {tu_seed(78)};
    uint8_t buf[512];
    for (int it = 0; it < tu_iters(20000); it++) {
        size_t len = tu_below(&r, sizeof buf);
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)tu_next(&r);
        if (len >= 32) { /* a plausible header */
            buf[0] = 1;
            buf[1] = (uint8_t)(1 + tu_below(&r, 4));
            buf[2] &= 1;
            buf[3] = 0;
            sr_put_le32(buf + 4, (uint32_t)tu_below(&r, 64));
            sr_put_le64(buf + 8, (uint64_t)tu_below(&r, 100));
            sr_put_le64(buf + 16, 100 + tu_below(&r, 100000));
            sr_put_le32(buf + 24, (uint32_t)tu_below(&r, len - 31));
            fix_crc(buf, len);
        }
        sr_sample out[80];
        size_t m;
        int rc = decode_all(buf, len, out, 80, &m);
        cr_assert(rc == SR_DONE || rc == SR_ECORRUPT || rc == SR_EVERSION);
    }
}

/* ---- merge --------------------------------------------------------------- */

static int cmp_ts(const void *a, const void *b)
{
    const sr_sample *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* The model: old samples, then add in order, each replacing an equal ts. */
static size_t merge_model(const sr_sample *old, size_t nold, const sr_sample *add, size_t nadd, sr_sample *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nold; i++) out[n++] = old[i];
    for (size_t i = 0; i < nadd; i++) {
        size_t j = 0;
        while (j < n && out[j].ts != add[i].ts) j++;
        out[j] = add[i];
        if (j == n) n++;
    }
    qsort(out, n, sizeof *out, cmp_ts); /* timestamps are unique now */
    return n;
}

/* Check a merge output against the expected samples. */
static void check_merged(sr_vtype type, const sr_buf *out, size_t nchunks, uint32_t max_count, const sr_sample *want,
                         size_t nwant)
{
    size_t off = 0, k = 0, chunks = 0;
    sr_sample *got = calloc(max_count + 1, sizeof *got);
    while (off < out->len) {
        cr_assert_geq(out->len - off, 4);
        uint32_t clen = sr_get_le32(out->data + off);
        off += 4;
        cr_assert_geq(out->len - off, clen);
        size_t m;
        cr_assert_eq(decode_all(out->data + off, clen, got, max_count + 1, &m), SR_DONE);
        cr_assert(m >= 1 && m <= max_count, "chunk of %zu samples, max %u", m, max_count);
        if (off + clen < out->len) cr_assert_eq(m, max_count, "only the last chunk may be short");
        sr_chunk_info info;
        cr_assert_eq(sr_chunk_info_get(out->data + off, clen, &info), SR_OK);
        cr_assert_eq(info.type, type);
        for (size_t i = 0; i < m; i++, k++) {
            cr_assert_lt(k, nwant);
            cr_assert(same_sample(type, &got[i], &want[k]), "merged sample %zu differs", k);
        }
        off += clen;
        chunks++;
    }
    cr_assert_eq(k, nwant);
    cr_assert_eq(chunks, nchunks);
    free(got);
}

Test(storage_series, merge_matches_sort_and_last_wins_model)
{
    tu_rng r = {tu_seed(99)};
    for (int it = 0; it < tu_iters(3000); it++) {
        sr_vtype type = (sr_vtype)(1 + tu_below(&r, 4));
        size_t nold = tu_below(&r, 4) ? tu_below(&r, 60) : 0;
        size_t nadd = tu_below(&r, 60);
        sr_sample *old = gen_series(&r, type, nold);
        /* new samples: some on old timestamps, some in between, duplicates, shuffled */
        sr_sample *add = gen_series(&r, type, nadd);
        for (size_t i = 0; i < nadd; i++) {
            uint64_t k = tu_below(&r, 4);
            if (k == 0 && nold) add[i].ts = old[tu_below(&r, nold)].ts;
            else if (k == 1 && i) add[i].ts = add[tu_below(&r, i)].ts;
            else if (k == 2 && nold) add[i].ts = (int64_t)((uint64_t)old[0].ts + tu_below(&r, 1000) - 500);
        }
        for (size_t i = nadd; i > 1; i--) {
            size_t j = tu_below(&r, i);
            sr_sample t = add[i - 1];
            add[i - 1] = add[j];
            add[j] = t;
        }
        sr_buf chunk, out;
        sr_buf_init(&chunk);
        sr_buf_init(&out);
        if (nold) encode(type, old, nold, &chunk);
        sr_sample *want = calloc(nold + nadd + 1, sizeof *want);
        size_t nwant = merge_model(old, nold, add, nadd, want);
        uint32_t max_count = (uint32_t)(1 + tu_below(&r, nwant + 3));
        size_t nchunks = 99;
        out.len = 0;
        cr_assert_eq(sr_buf_append(&out, "pre", 3), SR_OK); /* appends after existing bytes */
        sr_buf view;
        int rc = sr_chunk_merge(type, nold ? chunk.data : NULL, chunk.len, add, nadd, max_count, &out, &nchunks);
        cr_assert_eq(rc, SR_OK, "%s", sr_err_name(rc));
        cr_assert(!memcmp(out.data, "pre", 3));
        cr_assert_eq(nchunks, (nwant + max_count - 1) / max_count);
        view = (sr_buf){out.data + 3, out.len - 3, 0};
        check_merged(type, &view, nchunks, max_count, want, nwant);
        free(want);
        free(old);
        free(add);
        sr_buf_release(&chunk);
        sr_buf_release(&out);
    }
}

Test(storage_series, merge_splits_at_every_boundary)
{
    tu_rng r = {tu_seed(5)};
    const size_t n = 40;
    sr_sample *s = gen_series(&r, SR_VT_NUMBER, n);
    for (uint32_t mc = 1; mc <= n + 2; mc++) {
        sr_buf out;
        sr_buf_init(&out);
        size_t nchunks;
        cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, NULL, 0, s, n, mc, &out, &nchunks), SR_OK);
        cr_assert_eq(nchunks, (n + mc - 1) / mc, "max_count %u", mc);
        check_merged(SR_VT_NUMBER, &out, nchunks, mc, s, n);
        /* re-merging every output chunk with nothing gives the same chunks */
        size_t off = 0;
        while (off < out.len) {
            uint32_t clen = sr_get_le32(out.data + off);
            sr_buf again;
            sr_buf_init(&again);
            size_t nc;
            cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, out.data + off + 4, clen, NULL, 0, mc, &again, &nc), SR_OK);
            cr_assert_eq(nc, 1);
            cr_assert(again.len == clen + 4 && !memcmp(again.data, out.data + off, clen + 4));
            sr_buf_release(&again);
            off += 4 + clen;
        }
        sr_buf_release(&out);
    }
    free(s);
}

Test(storage_series, merge_rejects_bad_arguments_and_keeps_out)
{
    sr_sample s[2] = {{.ts = 1, .v.i = 1}, {.ts = 2, .v.i = 2}};
    sr_buf chunk, out;
    sr_buf_init(&chunk);
    sr_buf_init(&out);
    encode(SR_VT_INTEGER, s, 2, &chunk);
    size_t nc = 7;
    cr_assert_eq(sr_chunk_merge(SR_VT_INTEGER, NULL, 0, s, 2, 0, &out, &nc), SR_EINVAL);
    cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, chunk.data, chunk.len, s, 2, 10, &out, &nc), SR_EINVAL);
    chunk.data[chunk.len - 1] ^= 1;
    cr_assert_eq(sr_chunk_merge(SR_VT_INTEGER, chunk.data, chunk.len, s, 2, 10, &out, &nc), SR_ECORRUPT);
    sr_sample bad = {.ts = 3, .quality = 9};
    cr_assert_eq(sr_chunk_merge(SR_VT_INTEGER, NULL, 0, &bad, 1, 10, &out, &nc), SR_EINVAL);
    cr_assert_eq(out.len, 0, "out unchanged on failure");
    cr_assert_eq(nc, 7, "nchunks unchanged on failure");
    cr_assert_eq(sr_chunk_merge(SR_VT_INTEGER, NULL, 0, NULL, 0, 10, &out, &nc), SR_OK);
    cr_assert_eq(nc, 0);
    cr_assert_eq(out.len, 0);
    sr_buf_release(&chunk);
    sr_buf_release(&out);
}

/* ---- version 2: decimal numbers ------------------------------------------ */

static const int64_t pow10_i[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
#define MANT_MAX ((INT64_C(1) << 53) - 1)

/* Offset of the value stream of a well-formed chunk. */
static size_t value_off(const uint8_t *p)
{
    uint32_t n = sr_get_le32(p + 4);
    return 32 + ((p[2] & 1) ? 0 : ((size_t)n + 3) / 4) + sr_get_le32(p + 24);
}

/* Mantissa sequences of one shape, |m| <= MANT_MAX. */
enum { SH_WALK, SH_METER, SH_CONST, SH_WIDE, SH_JUMPS, SH_BIG, SH_NSHAPES };

static void gen_mantissas(tu_rng *r, int shape, int64_t *m, size_t n)
{
    int64_t c = (int64_t)tu_below(r, 2000001) - 1000000;
    unsigned bits = (unsigned)tu_below(r, 50); /* SH_WIDE: step magnitude */
    for (size_t i = 0; i < n; i++) {
        switch (shape) {
        case SH_WALK: c += (int64_t)tu_below(r, 21) - 10; break;
        case SH_METER: c += 20 + (int64_t)tu_below(r, 6); break;
        case SH_CONST: break;
        case SH_WIDE: c += (int64_t)(tu_next(r) >> (64 - bits - 1)) - ((int64_t)1 << bits); break;
        case SH_JUMPS: /* small steps, and now and then anywhere, the extremes included */
            if (tu_below(r, 40)) c += (int64_t)tu_below(r, 7) - 3;
            else {
                uint64_t k = tu_below(r, 4);
                if (k < 2) c = k ? MANT_MAX : -MANT_MAX;
                else c = (int64_t)(tu_next(r) % (2 * (uint64_t)MANT_MAX + 1)) - MANT_MAX;
            }
            break;
        case SH_BIG: /* within 1,000 of +-(2^53 - 1) */
            c = tu_below(r, 2) ? MANT_MAX - (int64_t)tu_below(r, 1000) : -MANT_MAX + (int64_t)tu_below(r, 1000);
            break;
        }
        if (c > MANT_MAX) c = MANT_MAX - (int64_t)tu_below(r, 100);
        if (c < -MANT_MAX) c = -MANT_MAX + (int64_t)tu_below(r, 100);
        m[i] = c;
    }
}

/* Samples m[i] / 10^k with timestamps of any regime and mixed qualities. */
static sr_sample *gen_decimal(tu_rng *r, const int64_t *m, size_t n, int k)
{
    sr_sample *s = gen_series(r, SR_VT_NUMBER, n); /* timestamps, qualities */
    for (size_t i = 0; i < n; i++) s[i].v.f = (double)m[i] / (double)pow10_i[k];
    return s;
}

/* The smallest scale at which m[i] / 10^k are all decimal, for mantissas
 * small enough that no two decimals of scale <= 6 share a double. */
static int min_scale(const int64_t *m, size_t n, int k)
{
    for (int kk = 0; kk < k; kk++) {
        size_t i = 0;
        while (i < n && m[i] % pow10_i[k - kk] == 0) i++;
        if (i == n) return kk;
    }
    return k;
}

Test(storage_series, decimal_numbers_round_trip_as_version_2_at_every_scale)
{
    tu_rng r = {tu_seed(2024)};
    int seen_w[28] = {0}, seen_order[2] = {0}, seen_k[7] = {0};
    for (int it = 0; it < tu_iters(6000); it++) {
        size_t n = gen_len(&r);
        int shape = (int)tu_below(&r, SH_NSHAPES), k = (int)tu_below(&r, 7);
        int64_t *m = malloc(n * sizeof *m);
        gen_mantissas(&r, shape, m, n);
        sr_sample *s = gen_decimal(&r, m, n, k);
        char what[96];
        snprintf(what, sizeof what, "decimal iteration %d shape %d k %d n %zu", it, shape, k, n);
        check_round_trip(SR_VT_NUMBER, s, n, what);
        sr_buf b;
        sr_buf_init(&b);
        encode(SR_VT_NUMBER, s, n, &b);
        int small = 1;
        for (size_t i = 0; i < n; i++) small &= m[i] > -1000000000 && m[i] < 1000000000;
        if (b.data[0] == 2) {
            cr_assert_leq(b.data[3], 6, "%s", what);
            seen_k[b.data[3]]++;
            uint8_t c = b.data[value_off(b.data)];
            cr_assert(c >> 6 == 0 && (c & 31) <= 27, "%s: coding byte %#x", what, c);
            if (n > 1) {
                seen_w[c & 31]++;
                seen_order[c >> 5]++;
            }
            if (small) cr_assert_eq(b.data[3], min_scale(m, n, k), "%s: the smallest scale", what);
        } else {
            cr_assert_eq(b.data[0], 1, "%s", what);
        }
        /* walks and constants are always smaller as version 2 */
        if (small && (shape == SH_WALK || shape == SH_CONST || shape == SH_METER))
            cr_assert_eq(b.data[0], 2, "%s", what);
        sr_buf_release(&b);
        free(s);
        free(m);
    }
    for (int k = 0; k <= 6; k++) cr_assert(seen_k[k], "scale %d never written", k);
    for (int w = 0; w <= 24; w++) cr_assert(seen_w[w], "base width %d never chosen", w);
    cr_assert(seen_order[0] && seen_order[1], "both orders are chosen");
}

Test(storage_series, decimal_walk_is_about_one_byte_a_sample)
{
    /* the benchmark's data: 2-decimal random walk, steps -0.10..+0.10, 1 s */
    tu_rng r = {7};
    sr_sample s[1024];
    int64_t c = 25000;
    for (size_t i = 0; i < 1024; i++) {
        c += (int64_t)tu_below(&r, 21) - 10;
        s[i] = (sr_sample){.ts = 1700000000000 + (int64_t)i * 1000, .quality = SR_Q_GOOD, .v.f = (double)c / 100.0};
    }
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, s, 1024, &b);
    cr_assert_eq(b.data[0], 2);
    cr_assert_eq(b.data[3], 2);
    cr_assert_eq(b.data[value_off(b.data)], 3, "deltas, base width 3");
    /* 32 header + 128 timestamps (1 bit a sample) + 3 + ~5.1 bits a value */
    cr_assert_lt(b.len, 840, "%zu bytes for 1,024 samples", b.len);
    check_round_trip(SR_VT_NUMBER, s, 1024, "walk");
    sr_buf_release(&b);
}

/* Values that are not decimal for version 2. */
static const uint64_t not_decimal[] = {
    0x8000000000000000ull, /* -0.0 */
    0x7FF8000000000000ull, /* NaN */
    0x7FF0000000000000ull, /* +Inf */
    0xFFF0000000000000ull, /* -Inf */
    0x0000000000000001ull, /* a denormal */
    0x4340000000000000ull, /* 2^53: an integer, but |m| > 2^53 - 1 */
    0x3FD3333333333334ull, /* 0.1 + 0.2 */
    0x3FD5555555555555ull, /* 1/3 */
    0x3EB0C6F7A0B5ED8Eull, /* 1e-6 + 1 ulp */
    0x7FEFFFFFFFFFFFFFull, /* DBL_MAX */
};

Test(storage_series, one_value_that_is_not_decimal_keeps_the_chunk_at_version_1)
{
    tu_rng r = {tu_seed(606)};
    size_t nk = sizeof not_decimal / sizeof not_decimal[0];
    for (int it = 0; it < tu_iters(2000); it++) {
        size_t n = 1 + tu_below(&r, it < 200 ? 5 : 300);
        int64_t *m = malloc(n * sizeof *m);
        gen_mantissas(&r, SH_WALK, m, n);
        sr_sample *s = gen_decimal(&r, m, n, (int)tu_below(&r, 7));
        size_t at = tu_below(&r, 3) == 0 ? 0 : tu_below(&r, 2) ? n - 1 : tu_below(&r, n);
        s[at].v.f = dbl_of(not_decimal[it % nk]);
        sr_buf b;
        sr_buf_init(&b);
        encode(SR_VT_NUMBER, s, n, &b);
        cr_assert_eq(b.data[0], 1, "iteration %d: %#llx at %zu of %zu", it, (unsigned long long)not_decimal[it % nk],
                     at, n);
        check_round_trip(SR_VT_NUMBER, s, n, "mixed");
        sr_buf_release(&b);
        free(s);
        free(m);
    }
}

Test(storage_series, negative_zero_keeps_its_sign)
{
    sr_sample s[3] = {{.ts = 1, .v.f = 1.5}, {.ts = 2, .v.f = -0.0}, {.ts = 3, .v.f = 2.25}};
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, &s[1], 1, &b);
    cr_assert_eq(b.data[0], 1, "a lone -0.0 is version 1");
    check_round_trip(SR_VT_NUMBER, &s[1], 1, "-0.0");
    b.len = 0;
    encode(SR_VT_NUMBER, s, 3, &b);
    cr_assert_eq(b.data[0], 1);
    check_round_trip(SR_VT_NUMBER, s, 3, "with -0.0");
    /* +0.0 is decimal (m = 0) */
    s[1].v.f = 0.0;
    b.len = 0;
    encode(SR_VT_NUMBER, s, 3, &b);
    cr_assert_eq(b.data[0], 2);
    sr_sample got[4];
    size_t m;
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_DONE);
    cr_assert_eq(bits_of(got[1].v.f), 0, "+0.0 stays +0.0");
    sr_buf_release(&b);
}

Test(storage_series, scale_rises_mid_chunk_and_overflowing_mantissas_fall_back)
{
    /* integers, then 1 decimal, then 6: everything is rescaled to k = 6 */
    sr_sample s[300];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 300; i++) {
        s[i].ts = i * 1000;
        int64_t m = 1000 + i;
        s[i].v.f = i < 100 ? (double)m : i < 200 ? (double)m / 10.0 : (double)m / 1e6;
    }
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, s, 300, &b);
    cr_assert_eq(b.data[0], 2);
    cr_assert_eq(b.data[3], 6);
    check_round_trip(SR_VT_NUMBER, s, 300, "rising scale");
    /* 2^50 at k = 0, then a 1-decimal value: 2^50 * 10 > 2^53 - 1 */
    s[0].v.f = 1125899906842624.0;
    s[1].v.f = 0.5;
    b.len = 0;
    encode(SR_VT_NUMBER, s, 2, &b);
    cr_assert_eq(b.data[0], 1);
    check_round_trip(SR_VT_NUMBER, s, 2, "overflowing rescale");
    /* the other order: 0.5 then 2^50 (10 * 2^50 at k = 1) */
    s[0].v.f = 0.5;
    s[1].v.f = 1125899906842624.0;
    b.len = 0;
    encode(SR_VT_NUMBER, s, 2, &b);
    cr_assert_eq(b.data[0], 1);
    /* but 2^49 fits: 10 * 2^49 < 2^53 */
    s[1].v.f = 562949953421312.0;
    for (int i = 2; i < 40; i++) s[i].v.f = s[i - 1].v.f + 0.5;
    b.len = 0;
    encode(SR_VT_NUMBER, s, 40, &b);
    cr_assert_eq(b.data[0], 2);
    cr_assert_eq(b.data[3], 1);
    check_round_trip(SR_VT_NUMBER, s, 40, "2^49 at k = 1");
    /* the largest mantissas, both signs, at k = 0: escape codes */
    for (int i = 0; i < 300; i++)
        s[i].v.f = (double)(i % 50 == 7 ? MANT_MAX : i % 50 == 31 ? -MANT_MAX : (int64_t)(i % 9));
    b.len = 0;
    encode(SR_VT_NUMBER, s, 300, &b);
    cr_assert_eq(b.data[0], 2);
    check_round_trip(SR_VT_NUMBER, s, 300, "extremes");
    sr_buf_release(&b);
}

Test(storage_series, single_sample_and_empty_number_chunks)
{
    /* version 2 unless the varint of the mantissa is longer than the double */
    static const double v[] = {0.0, 1.0, -1.0, 3.25, -0.000001, 123456.789, 281474976710655.0, 281474976710656.0,
                               9007199254740991.0, -9007199254740991.0};
    static const uint8_t ver[] = {2, 2, 2, 2, 2, 2, 2, 1, 1, 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sr_sample s = {.ts = -5 + (int64_t)i, .quality = (uint8_t)(i % 4), .v.f = v[i]};
        sr_buf b;
        sr_buf_init(&b);
        encode(SR_VT_NUMBER, &s, 1, &b);
        cr_assert_eq(b.data[0], ver[i], "%g", v[i]);
        if (ver[i] == 2) cr_assert_eq(b.data[value_off(b.data)], 0, "a single sample codes nothing");
        check_round_trip(SR_VT_NUMBER, &s, 1, "single");
        sr_buf_release(&b);
    }
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, NULL, 0, &b);
    cr_assert_eq(b.len, 32);
    cr_assert_eq(b.data[0], 1, "the empty chunk stays version 1");
    sr_buf_release(&b);
}

Test(storage_series, merge_writes_version_2_for_decimal_input)
{
    tu_rng r = {tu_seed(123)};
    int64_t m[400];
    gen_mantissas(&r, SH_WALK, m, 400);
    sr_sample *s = gen_decimal(&r, m, 400, 2);
    for (size_t i = 0; i < 400; i++) s[i].ts = 1700000120000 + (int64_t)i * 1000; /* after the golden walk */
    /* a version 1 chunk of decimal values (the golden walk) plus new samples */
    size_t flen;
    char p[1024];
    snprintf(p, sizeof p, "%s/number-walk.chunk", DATA);
    uint8_t *f = tu_read_file(p, &flen);
    cr_assert(f && f[0] == 1);
    sr_buf out;
    sr_buf_init(&out);
    size_t nc;
    cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, f, flen, s, 400, 200, &out, &nc), SR_OK);
    cr_assert_eq(nc, 3); /* 120 + 400 samples, no shared timestamps */
    for (size_t off = 0; off < out.len;) {
        uint32_t clen = sr_get_le32(out.data + off);
        /* version 3 (a summary) with the version 2 value stream */
        cr_assert(out.data[off + 4] == 3 && (out.data[off + 4 + 2] & 2), "merged chunk at %zu is decimal", off);
        off += 4 + clen;
    }
    /* a version 2 chunk plus one value that is not decimal: version 1 */
    sr_buf v2;
    sr_buf_init(&v2);
    encode(SR_VT_NUMBER, s, 400, &v2);
    cr_assert_eq(v2.data[0], 2);
    sr_sample x = {.ts = s[10].ts, .v.f = 1.0 / 3.0};
    out.len = 0;
    cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, v2.data, v2.len, &x, 1, 1000, &out, &nc), SR_OK);
    cr_assert_eq(nc, 1);
    cr_assert(out.data[4] == 3 && !(out.data[4 + 2] & 2), "version 3 with the version 1 value stream");
    s[10] = x;
    check_merged(SR_VT_NUMBER, &out, 1, 1000, s, 400);
    /* and merging nothing into a version 2 chunk rewrites it with a summary:
     * the same chunk but for the summary section */
    out.len = 0;
    cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, v2.data, v2.len, NULL, 0, 1000, &out, &nc), SR_OK);
    cr_assert_eq(out.data[4], 3);
    cr_assert_null(sr_chunk_summary_check(out.data + 4, out.len - 4));
    sr_buf old;
    sr_buf_init(&old);
    strip_summary(out.data + 4, out.len - 4, &old);
    cr_assert(old.len == v2.len && !memcmp(old.data, v2.data, v2.len));
    sr_buf_release(&old);
    sr_buf_release(&v2);
    sr_buf_release(&out);
    free(f);
    free(s);
}

/* A version 2 chunk built by hand: the timestamps of ts[0..n-1] (taken from
 * an integer chunk), scale k, coding byte c, then `val` as the value stream
 * after the coding byte. */
static void hand_v2(const int64_t *ts, size_t n, uint8_t k, uint8_t c, const uint8_t *val, size_t vlen, sr_buf *b)
{
    sr_sample s[16];
    memset(s, 0, sizeof s);
    for (size_t i = 0; i < n; i++) s[i].ts = ts[i];
    sr_buf_init(b);
    encode(SR_VT_INTEGER, s, n, b);
    b->len = value_off(b->data);
    b->data[0] = 2;
    b->data[1] = SR_VT_NUMBER;
    b->data[3] = k;
    cr_assert_eq(sr_buf_append(b, &c, 1), SR_OK);
    if (vlen) cr_assert_eq(sr_buf_append(b, val, vlen), SR_OK);
    uint32_t crc = sr_crc32c(0, b->data, 28);
    crc = sr_crc32c(crc, b->data + 32, b->len - 32);
    sr_put_le32(b->data + 28, crc);
}

Test(storage_series, version_2_structure_is_checked)
{
    static const int64_t ts[] = {1000, 2000, 3000};
    sr_chunk_info info;
    sr_sample got[4];
    size_t m;
    sr_buf b;
    /* m0 = 5 (zigzag 10), then with w = 1: zigzag(+1) = 2 has b = 2 > w, so
     * j = 1 zero and its 2 bits, '010'; zigzag(-1) = 1 fits w: '1' + '1' */
    static const uint8_t good[] = {10, 0x58}; /* 010 11 000 */
    hand_v2(ts, 3, 1, 1, good, sizeof good, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_DONE);
    cr_assert_eq(m, 3);
    cr_assert(got[0].v.f == 0.5 && got[1].v.f == 0.6 && got[2].v.f == 0.5, "%g %g %g", got[0].v.f, got[1].v.f,
              got[2].v.f);
    /* it is the encoder's chunk too (the example of docs/series-format.md) */
    sr_buf enc;
    sr_buf_init(&enc);
    encode(SR_VT_NUMBER, got, 3, &enc);
    cr_assert(enc.len == b.len && !memcmp(enc.data, b.data, b.len), "the documented example");
    sr_buf_release(&enc);
    sr_buf_release(&b);
    /* the same codes as order 1: delta-of-deltas +1, -1, so deltas +1, 0 */
    hand_v2(ts, 3, 1, 1 | 32, good, sizeof good, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_DONE);
    cr_assert(got[1].v.f == 0.6 && got[2].v.f == 0.6, "dod: %g %g", got[1].v.f, got[2].v.f);
    sr_buf_release(&b);
    /* scale 7 */
    hand_v2(ts, 3, 7, 1, good, sizeof good, &b);
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_ECORRUPT);
    sr_buf_release(&b);
    /* w = 28, and the reserved bits of the coding byte */
    static const uint8_t bad_c[] = {28, 64, 128, 29 | 32};
    for (size_t i = 0; i < sizeof bad_c; i++) {
        hand_v2(ts, 3, 1, bad_c[i], good, sizeof good, &b);
        cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT, "coding byte %#x", bad_c[i]);
        sr_buf_release(&b);
    }
    /* first mantissa 2^53 (zigzag 2^54) and -(2^53) (zigzag 2^54 - 1): out of range; 2^53 - 1 is fine */
    static const uint8_t m_big[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20};
    static const uint8_t m_neg[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F};
    static const uint8_t m_max[] = {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F};
    hand_v2(ts, 1, 0, 0, m_big, 8, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    hand_v2(ts, 1, 0, 0, m_neg, 8, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    hand_v2(ts, 1, 0, 0, m_max, 8, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_DONE);
    cr_assert(got[0].v.f == 9007199254740991.0);
    sr_buf_release(&b);
    /* a delta that leaves the range: 2^53 - 1, then +1 ('1' + '0' with w = 1 is z = 0; z = 2 is '010') */
    uint8_t drift[9];
    memcpy(drift, m_max, 8);
    drift[8] = 0x40; /* 010 00000 */
    hand_v2(ts, 2, 0, 1, drift, 9, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    drift[8] = 0x60; /* 011: z = 3, -2: fine */
    hand_v2(ts, 2, 0, 1, drift, 9, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_DONE);
    cr_assert(got[1].v.f == 9007199254740989.0);
    sr_buf_release(&b);
    /* an escape code running past the end; a stream with a spare byte; bits missing */
    static const uint8_t esc[] = {10, 0x00, 0x00, 0x00, 0x00};
    hand_v2(ts, 2, 1, 1, esc, sizeof esc, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    static const uint8_t spare[] = {10, 0x58, 0x00};
    hand_v2(ts, 3, 1, 1, spare, sizeof spare, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    static const uint8_t padbits[] = {10, 0x59}; /* 010 11 001: a pad bit set */
    hand_v2(ts, 3, 1, 1, padbits, sizeof padbits, &b);
    cr_assert_eq(decode_all(b.data, b.len, got, 4, &m), SR_ECORRUPT);
    sr_buf_release(&b);
    /* no varint at all (the value stream is just the coding byte) */
    hand_v2(ts, 1, 0, 0, NULL, 0, &b);
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_ECORRUPT);
    sr_buf_release(&b);
    /* version 2 of another type; version 2 and no samples */
    sr_sample one = {.ts = 1, .v.i = 1};
    sr_buf_init(&b);
    encode(SR_VT_INTEGER, &one, 1, &b);
    b.data[0] = 2;
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_ECORRUPT);
    b.len = 0;
    encode(SR_VT_NUMBER, NULL, 0, &b);
    b.data[0] = 2;
    fix_crc(b.data, b.len);
    cr_assert_eq(sr_chunk_info_get(b.data, b.len, &info), SR_ECORRUPT);
    sr_buf_release(&b);
}

/* Encode decimal series of every shape as version 2, then truncate them at
 * every length and flip every byte (and, in some, every bit). */
Test(storage_series, truncated_and_flipped_version_2_chunks_are_corrupt)
{
    tu_rng r = {tu_seed(88)};
    int done = 0;
    for (int it = 0; it < tu_iters(400) && done < tu_iters(70); it++) {
        size_t n = 1 + tu_below(&r, done < 40 ? 12 : 300);
        int64_t *mm = malloc(n * sizeof *mm);
        gen_mantissas(&r, it % SH_NSHAPES, mm, n);
        sr_sample *s = gen_decimal(&r, mm, n, (int)tu_below(&r, 7));
        sr_buf b;
        sr_buf_init(&b);
        encode(SR_VT_NUMBER, s, n, &b);
        if (b.data[0] == 2) {
            done++;
            int unique = 1, order_free = 1; /* every value has one mantissa; m_0 .. m_(n-2) equal */
            for (size_t i = 0; i < n; i++) unique &= mm[i] > -(INT64_C(1) << 50) && mm[i] < (INT64_C(1) << 50);
            for (size_t i = 1; i + 1 < n; i++) order_free &= mm[i] == mm[0];
            sr_sample *got = calloc(n + 2, sizeof *got);
            size_t m;
            uint8_t *c = malloc(b.len);
            for (size_t cut = 0; cut < b.len; cut++) {
                memcpy(c, b.data, cut);
                cr_assert_eq(decode_all(c, cut, got, n + 2, &m), SR_ECORRUPT, "cut at %zu of %zu", cut, b.len);
                if (cut >= 32) {
                    fix_crc(c, cut);
                    int rc = decode_all(c, cut, got, n + 2, &m);
                    cr_assert_eq(rc, SR_ECORRUPT, "cut at %zu (crc fixed): %s", cut, sr_err_name(rc));
                }
            }
            int every_bit = done % 10 == 0;
            for (size_t i = 0; i < b.len; i++) {
                for (int bit = 0; bit < (every_bit ? 8 : 1); bit++) {
                    memcpy(c, b.data, b.len);
                    c[i] ^= every_bit ? (uint8_t)(1u << bit) : (uint8_t)(1 + tu_below(&r, 255));
                    int rc = decode_all(c, b.len, got, n + 2, &m);
                    cr_assert(rc == SR_ECORRUPT || (i == 0 && rc == SR_EVERSION), "flip at %zu: %s", i,
                              sr_err_name(rc));
                    /* with a repaired CRC: an error, or a decode that differs, never a crash */
                    fix_crc(c, b.len);
                    rc = decode_all(c, b.len, got, n + 2, &m);
                    cr_assert(rc == SR_DONE || rc == SR_ECORRUPT || rc == SR_EVERSION, "%s", sr_err_name(rc));
                    if (rc == SR_DONE) {
                        cr_assert_leq(m, n + 2);
                        int same = m == n;
                        for (size_t j = 0; same && j < n; j++) same = same_sample(SR_VT_NUMBER, &got[j], &s[j]);
                        /* the CRC itself; the coding byte of a chunk of <= 2 samples
                         * (unused, or one code that another w can read the same,
                         * taking its extra bits from the zero padding); the order bit
                         * when deltas and delta-of-deltas are the same codes (every
                         * delta but the last is 0); mantissas above 2^50 at k > 0,
                         * where neighbouring decimals can round to one double */
                        size_t cb = value_off(b.data);
                        int benign = (i >= 28 && i < 32) || (i == cb && n <= 2) ||
                                     (i == cb && (c[i] ^ b.data[i]) == 0x20 && order_free) ||
                                     (b.data[3] > 0 && !unique);
                        cr_assert(!same || benign, "flip at %zu of %zu decodes to the original", i, b.len);
                    }
                }
            }
            free(c);
            free(got);
        }
        sr_buf_release(&b);
        free(s);
        free(mm);
    }
    cr_assert_geq(done, tu_iters(70));
}

/* The summary's segment list grows past its first room (a chunk over many
 * hours: more than 4, then one segment) under allocation failures: a failed
 * add leaves the encoder unchanged, and the chunk is the same. */
Test(storage_series, allocation_failure_while_growing_summary_segments)
{
    enc_summaries = 1;
    for (int t = SR_VT_NUMBER; t <= SR_VT_BOOL; t++) {
        sr_sample s[60];
        memset(s, 0, sizeof s);
        for (int i = 0; i < 60; i++) {
            s[i].ts = 1700000000000 + (int64_t)i * 600000; /* 10 min: 10 hours */
            if (t == SR_VT_NUMBER) s[i].v.f = (double)(i * 37 % 101) / 10.0;
            else if (t == SR_VT_INTEGER) s[i].v.i = i * 37 % 101 - 50;
            else s[i].v.b = i % 3 == 0;
        }
        sr_buf ref;
        sr_buf_init(&ref);
        encode((sr_vtype)t, s, 60, &ref);
        cr_assert_eq(ref.data[0], 3);
        cr_assert_null(sr_chunk_summary_check(ref.data, ref.len));
        fault_alloc_install();
        int saw_ok = 0, failed_add = 0;
        for (unsigned long k = 1; k < 200 && !saw_ok; k++) {
            fault_alloc_arm(k);
            sr_chunk_enc *e = NULL;
            sr_buf out;
            sr_buf_init(&out);
            int rc = sr_chunk_enc_create((sr_vtype)t, &e), failed = rc != SR_OK;
            for (size_t i = 0; !rc && i < 60; i++) {
                rc = sr_chunk_enc_add(e, &s[i]);
                if (rc == SR_ENOMEM) {
                    failed = failed_add = 1;
                    fault_alloc_arm(0); /* the encoder was left unchanged */
                    rc = sr_chunk_enc_add(e, &s[i]);
                }
            }
            if (!rc) {
                rc = sr_chunk_enc_finish(e, &out);
                if (rc == SR_ENOMEM) {
                    failed = 1;
                    fault_alloc_arm(0);
                    rc = sr_chunk_enc_finish(e, &out);
                }
            }
            fault_alloc_arm(0);
            cr_assert(rc == SR_OK || (rc == SR_ENOMEM && !e), "type %d k=%lu: %s", t, k, sr_err_name(rc));
            if (e) cr_assert(out.len == ref.len && !memcmp(out.data, ref.data, ref.len), "type %d k=%lu", t, k);
            if (!failed) saw_ok = 1;
            sr_chunk_enc_destroy(e);
            sr_buf_release(&out);
        }
        fault_alloc_uninstall();
        cr_assert(saw_ok && failed_add, "type %d: failures inside adds, then a clean run", t);
        sr_buf_release(&ref);
    }
}

Test(storage_series, allocation_failure_while_encoding_decimals)
{
    enc_summaries = 1; /* the encoder's default, as the direct adds below */
    /* integers, then 2 decimals (a rescale mid-chunk), then one that is not */
    sr_sample s[600];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 600; i++) {
        s[i].ts = 1000 + i;
        s[i].v.f = i < 250 ? (double)(i % 17) : (double)(i * 7 % 1000) / 100.0;
    }
    for (int variant = 0; variant < 2; variant++) {
        if (variant) s[599].v.f = 1.0 / 3.0;
        sr_buf ref;
        sr_buf_init(&ref);
        encode(SR_VT_NUMBER, s, 600, &ref);
        cr_assert(ref.data[0] == 3 && !!(ref.data[2] & 2) == !variant); /* a summary; decimal or not */
        fault_alloc_install();
        int saw_ok = 0;
        for (unsigned long k = 1; k < 400 && !saw_ok; k++) {
            fault_alloc_arm(k);
            sr_chunk_enc *e = NULL;
            sr_buf out;
            sr_buf_init(&out);
            int rc = sr_chunk_enc_create(SR_VT_NUMBER, &e), failed = rc != SR_OK;
            for (size_t i = 0; !rc && i < 600; i++) {
                rc = sr_chunk_enc_add(e, &s[i]);
                if (rc == SR_ENOMEM) {
                    failed = 1;
                    fault_alloc_arm(0); /* the encoder was left unchanged */
                    rc = sr_chunk_enc_add(e, &s[i]);
                }
            }
            if (!rc) {
                rc = sr_chunk_enc_finish(e, &out);
                if (rc == SR_ENOMEM) {
                    failed = 1;
                    fault_alloc_arm(0);
                    rc = sr_chunk_enc_finish(e, &out);
                }
            }
            cr_assert(rc == SR_OK || (rc == SR_ENOMEM && !e), "k=%lu: %s", k, sr_err_name(rc));
            if (e) cr_assert(out.len == ref.len && !memcmp(out.data, ref.data, ref.len), "k=%lu: output differs", k);
            if (!failed) saw_ok = 1;
            sr_chunk_enc_destroy(e);
            sr_buf_release(&out);
        }
        fault_alloc_arm(0);
        fault_alloc_uninstall();
        cr_assert(saw_ok);
        sr_buf_release(&ref);
    }
}

/* ---- downsampling --------------------------------------------------------- */

static int64_t floor_to(int64_t t, int64_t iv)
{
    int64_t m = t % iv;
    if (m < 0) m += iv;
    return t - m;
}

static double agg_value(sr_vtype type, const sr_sample *s)
{
    return type == SR_VT_NUMBER ? s->v.f : type == SR_VT_INTEGER ? (double)s->v.i : (double)s->v.b;
}

/* Naive model: scan every bucket start and every sample. */
static size_t agg_model(sr_vtype type, const sr_sample *s, size_t n, int64_t from, int64_t to, int64_t iv,
                        sr_agg_fill fill, sr_bucket *out)
{
    size_t k = 0;
    int have_prev = 0;
    double pv = 0;
    int64_t pts = 0;
    for (int64_t b = floor_to(from, iv); b <= floor_to(to - 1, iv); b += iv) {
        sr_bucket bk = {.start = b};
        for (size_t i = 0; i < n; i++) {
            if (s[i].ts < from || s[i].ts >= to || s[i].ts < b || s[i].ts - b >= iv) continue;
            if (s[i].quality > SR_Q_UNCERTAIN) continue;
            double v = agg_value(type, &s[i]);
            if (!bk.count) {
                bk.min = bk.max = bk.first = v;
                bk.first_ts = s[i].ts;
            }
            bk.min = v < bk.min ? v : bk.min;
            bk.max = v > bk.max ? v : bk.max;
            bk.sum += v;
            bk.last = v;
            bk.last_ts = s[i].ts;
            bk.count++;
        }
        if (bk.count) {
            out[k++] = bk;
            have_prev = 1;
            pv = bk.last;
            pts = bk.last_ts;
        } else if (fill == SR_FILL_PREVIOUS && have_prev) {
            out[k++] = (sr_bucket){.start = b, .min = pv, .max = pv, .first = pv, .last = pv, .first_ts = pts,
                                   .last_ts = pts, .filled = 1};
        }
        if (b > INT64_MAX - iv) break;
    }
    return k;
}

static void check_bucket(const sr_bucket *a, const sr_bucket *b, size_t i)
{
    cr_assert_eq(a->start, b->start, "bucket %zu start", i);
    cr_assert_eq(a->count, b->count, "bucket %zu count", i);
    cr_assert_eq(a->filled, b->filled, "bucket %zu filled", i);
    cr_assert(a->min == b->min && a->max == b->max && a->sum == b->sum && a->first == b->first &&
                  a->last == b->last,
              "bucket %zu values: %g/%g %g/%g %g/%g %g/%g %g/%g", i, a->min, b->min, a->max, b->max, a->sum, b->sum,
              a->first, b->first, a->last, b->last);
    cr_assert(a->first_ts == b->first_ts && a->last_ts == b->last_ts, "bucket %zu ts", i);
}

Test(storage_series, downsampling_matches_naive_model_for_every_aggregate_and_fill)
{
    tu_rng r = {tu_seed(31337)};
    for (int it = 0; it < tu_iters(4000); it++) {
        sr_vtype type = (sr_vtype)(1 + tu_below(&r, 3));
        size_t n = tu_below(&r, 300);
        int64_t base = (int64_t)tu_below(&r, 2000000) - 1000000;
        int64_t iv = 1 + (int64_t)tu_below(&r, 5000);
        sr_sample *s = calloc(n + 1, sizeof *s);
        int64_t t = base;
        for (size_t i = 0; i < n; i++) {
            t += 1 + (int64_t)(tu_below(&r, 5) ? tu_below(&r, 1000) : tu_below(&r, 40000));
            s[i].ts = t;
            s[i].quality = tu_below(&r, 5) ? SR_Q_GOOD : (uint8_t)tu_below(&r, 4);
            if (type == SR_VT_NUMBER) s[i].v.f = (double)((int64_t)tu_below(&r, 20001) - 10000) / 100.0;
            else if (type == SR_VT_INTEGER) s[i].v.i = (int64_t)tu_below(&r, 2001) - 1000;
            else s[i].v.b = (int)tu_below(&r, 2);
        }
        int64_t span = t - base + 2;
        int64_t from = base + (int64_t)tu_below(&r, (uint64_t)span) - span / 8;
        int64_t to = from + 1 + (int64_t)tu_below(&r, (uint64_t)span);
        /* keep the number of buckets small for the model */
        if ((to - from) / iv > 2000) iv = (to - from) / 2000 + 1;
        sr_agg_fill fill = (sr_agg_fill)tu_below(&r, 2);
        size_t nb = (size_t)((floor_to(to - 1, iv) - floor_to(from, iv)) / iv + 1);
        sr_bucket *want = calloc(nb, sizeof *want), *got = calloc(nb + 1, sizeof *got);
        size_t nw = agg_model(type, s, n, from, to, iv, fill, want);
        sr_agg *a = NULL;
        cr_assert_eq(sr_agg_create(type, from, to, iv, fill, &a), SR_OK);
        for (size_t i = 0; i < n; i++) sr_agg_add(a, &s[i]);
        cr_assert_eq(sr_agg_status(a), SR_OK);
        size_t ng = 0, step;
        size_t maxper = 1 + tu_below(&r, 50);
        while ((step = sr_agg_emit(a, got + ng, nb + 1 - ng < maxper ? nb + 1 - ng : maxper)) > 0) {
            ng += step;
            cr_assert_leq(ng, nb);
        }
        cr_assert_eq(sr_agg_emit(a, got, 4), 0, "stays done");
        cr_assert_eq(ng, nw, "iteration %d: %zu buckets, model %zu", it, ng, nw);
        for (size_t i = 0; i < nw; i++) check_bucket(&got[i], &want[i], i);
        sr_agg_destroy(a);
        free(want);
        free(got);
        free(s);
    }
}

Test(storage_series, downsampling_rejects_strings_and_bad_ranges)
{
    sr_agg *a = NULL;
    cr_assert_eq(sr_agg_create(SR_VT_STRING, 0, 100, 10, SR_FILL_NONE, &a), SR_EINVAL);
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, 0, 100, 0, SR_FILL_NONE, &a), SR_EINVAL);
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, 100, 100, 10, SR_FILL_NONE, &a), SR_EINVAL);
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, 0, 100, 10, (sr_agg_fill)7, &a), SR_EINVAL);
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, INT64_MIN, 100, 7, SR_FILL_NONE, &a), SR_EINVAL,
                 "first bucket would start below INT64_MIN");
    cr_assert_null(a);
    /* the extreme range works, buckets emitted lazily */
    cr_assert_eq(sr_agg_create(SR_VT_INTEGER, INT64_MIN, INT64_MAX, 1, SR_FILL_PREVIOUS, &a), SR_OK);
    sr_sample s = {.ts = -5, .v.i = 42};
    sr_agg_add(a, &s);
    sr_bucket b[3];
    cr_assert_eq(sr_agg_emit(a, b, 3), 3);
    cr_assert(b[0].start == -5 && b[0].count == 1 && !b[0].filled);
    cr_assert(b[1].start == -4 && b[1].count == 0 && b[1].filled && b[1].last == 42.0 && b[1].last_ts == -5);
    cr_assert(b[2].start == -3 && b[2].filled);
    sr_agg_destroy(a);
    sr_agg_destroy(NULL);
    /* negative timestamps align to multiples of the interval */
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, -25, 25, 10, SR_FILL_NONE, &a), SR_OK);
    sr_sample t = {.ts = -21, .v.f = 1.0};
    sr_agg_add(a, &t);
    cr_assert_eq(sr_agg_emit(a, b, 3), 1);
    cr_assert_eq(b[0].start, -30);
    sr_agg_destroy(a);
}

/* ---- decoding straight into the aggregator (sr_chunk_dec_agg) ------------- */

static int same_bucket_bits(const sr_bucket *a, const sr_bucket *b)
{
    return a->start == b->start && a->count == b->count && a->filled == b->filled &&
           bits_of(a->min) == bits_of(b->min) && bits_of(a->max) == bits_of(b->max) &&
           bits_of(a->sum) == bits_of(b->sum) && bits_of(a->first) == bits_of(b->first) &&
           bits_of(a->last) == bits_of(b->last) && a->first_ts == b->first_ts && a->last_ts == b->last_ts;
}

/* All buckets of a (emitted in random batch sizes); *n set. */
static sr_bucket *agg_drain(tu_rng *r, sr_agg *a, size_t *n)
{
    size_t cap = 64, k = 0, step;
    sr_bucket *b = malloc(cap * sizeof *b);
    for (;;) {
        if (cap - k < 64) b = realloc(b, (cap *= 2) * sizeof *b);
        if (!(step = sr_agg_emit(a, b + k, 1 + tu_below(r, 63)))) break;
        k += step;
    }
    *n = k;
    return b;
}

/* Series for the fast path: mostly all-GOOD, regular 1 s data (version 2
 * decimals, version 1 doubles with specials, integers, booleans), with
 * jitter, gaps and now and then a quality section. */
static sr_sample *gen_agg_series(tu_rng *r, sr_vtype type, size_t n)
{
    sr_sample *s = gen_series(r, type, n); /* timestamps of every regime, values, qualities */
    int regular = tu_below(r, 3) != 0, all_good = tu_below(r, 4) != 0;
    int64_t t = (int64_t)tu_below(r, 4000000) - 2000000, step = 1 + (int64_t)tu_below(r, 2000);
    int shape = (int)tu_below(r, SH_NSHAPES), k = (int)tu_below(r, 7);
    int64_t *m = malloc((n ? n : 1) * sizeof *m);
    gen_mantissas(r, shape, m, n);
    int dec = type == SR_VT_NUMBER && tu_below(r, 3) != 0;
    for (size_t i = 0; i < n; i++) {
        if (regular) {
            s[i].ts = t;
            t += tu_below(r, 50) ? step : 1 + (int64_t)tu_below(r, 3 * (uint64_t)step); /* jitter, gaps */
        }
        if (all_good) s[i].quality = SR_Q_GOOD;
        if (dec) s[i].v.f = (double)m[i] / (double)pow10_i[k];
        if (type == SR_VT_NUMBER && !dec && tu_below(r, 2)) s[i].v.f = (double)(m[i] % 100000) / 7.0; /* negatives */
    }
    free(m);
    return s;
}

/* Feed the chunks [c, c + len) of `chunks` (4-byte lengths) to a the way
 * range_once does: sr_chunk_dec_agg up to the next extra ("late") sample or
 * hi, the late samples merged in ts order, one of the same ts replacing the
 * chunk's. Returns the first error, or SR_OK. */
static size_t fed_by_summary; /* chunks of >= 2 samples that feed_fast's sr_chunk_dec_agg took whole */

static int feed_fast(sr_agg *a, const sr_buf *chunks, const sr_sample *late, size_t nlate, int64_t hi)
{
    size_t off = 0, il = 0;
    int rc = SR_OK;
    while (!rc && off < chunks->len) {
        uint32_t len = sr_get_le32(chunks->data + off);
        sr_chunk_dec d;
        rc = sr_chunk_dec_init(&d, chunks->data + off + 4, len);
        off += 4 + len;
        if (rc) break;
        sr_sample s;
        for (;;) {
            int64_t stop = il < nlate && late[il].ts < hi ? late[il].ts : hi;
            uint64_t fed = UINT64_MAX;
            int fresh = d.i == 0;
            rc = sr_chunk_dec_agg(&d, a, stop, &s, &fed);
            cr_assert_neq(fed, UINT64_MAX, "added is set");
            /* taken by the summary: done without decoding a timestamp */
            if (fresh && rc == SR_DONE && d.info.count >= 2 && d.ts == d.info.first_ts) fed_by_summary++;
            if (rc) break;
            cr_assert_geq(s.ts, stop);
            if (s.ts >= hi) break;
            while (il < nlate && late[il].ts < s.ts) sr_agg_add(a, &late[il++]);
            if (il < nlate && late[il].ts == s.ts) s = late[il++];
            sr_agg_add(a, &s);
        }
        if (rc == SR_DONE) rc = SR_OK;
    }
    while (!rc && il < nlate) sr_agg_add(a, &late[il++]);
    return rc;
}

/* floor_to(t, iv) mod 2^64 (no overflow below INT64_MIN): equal iff the
 * bucket is */
static uint64_t bucket_key(int64_t t, int64_t iv)
{
    int64_t m = t % iv;
    if (m < 0) m += iv;
    return (uint64_t)t - (uint64_t)m;
}

/* Cut s into chunks (4-byte lengths) of 1..n samples; with iv > 0, every
 * bucket edge is also a chunk edge (a bucket then holds whole chunks). */
static void cut_chunks(tu_rng *r, sr_vtype type, const sr_sample *s, size_t n, int64_t iv, sr_buf *chunks)
{
    for (size_t i = 0; i < n;) {
        size_t c = 1 + tu_below(r, tu_below(r, 2) ? 60 : n);
        if (c > n - i) c = n - i;
        if (iv > 0)
            for (size_t j = i + 1; j < i + c; j++)
                if (bucket_key(s[j].ts, iv) != bucket_key(s[j - 1].ts, iv)) {
                    c = j - i;
                    break;
                }
        size_t at = chunks->len;
        uint8_t z4[4] = {0};
        cr_assert_eq(sr_buf_append(chunks, z4, 4), SR_OK);
        encode(type, s + i, c, chunks);
        sr_put_le32(chunks->data + at, (uint32_t)(chunks->len - at - 4));
        i += c;
    }
}

/* Buckets a (chunks, late samples) equal b (every sample through
 * sr_agg_add), and abs (the same samples' |v|): bit for bit but the sum,
 * which may round differently when a bucket holds a chunk's summary and
 * more (a sum of sums): within 2 * count * DBL_EPSILON * sum |v| (not
 * checked when sum |v| overflows: +-DBL_MAX can round to +-Inf one way and
 * not the other). */
static int same_bucket_but_sum(const sr_bucket *a, const sr_bucket *b, const sr_bucket *abs)
{
    sr_bucket x = *a;
    x.sum = b->sum;
    if (!same_bucket_bits(&x, b)) return 0;
    if (bits_of(a->sum) == bits_of(b->sum) || !(abs->sum < 1e300)) return 1;
    return fabs(a->sum - b->sum) <= 2.0 * (double)b->count * DBL_EPSILON * abs->sum;
}

/* The aggregator fed from chunks (sr_chunk_dec_agg, late samples merged in)
 * against every merged sample through sr_agg_add. summaries = 0: the old
 * formats, decoded value by value: bit for bit. summaries = 1: version 3
 * chunks, taken whole by their summary where they lie in one bucket: bit
 * for bit but the sum's rounding (same_bucket_but_sum). */
static void agg_differential(int summaries, uint64_t seed)
{
    tu_rng r = {tu_seed(seed)};
    enc_summaries = summaries;
    fed_by_summary = 0;
    size_t whole_buckets = 0;
    for (int it = 0; it < tu_iters(3000); it++) {
        sr_vtype type = (sr_vtype)(1 + (tu_below(&r, 5) < 3 ? 0 : tu_below(&r, 3)));
        size_t n = tu_below(&r, 10) ? 1 + tu_below(&r, 600) : 1 + tu_below(&r, 4000);
        sr_sample *s = gen_agg_series(&r, type, n);
        /* late samples: some replace a chunk sample, some fall between */
        size_t nlate = tu_below(&r, 3) ? 0 : tu_below(&r, 12);
        sr_sample *late = calloc(nlate + 1, sizeof *late);
        for (size_t j = 0; j < nlate; j++) {
            const sr_sample *o = &s[tu_below(&r, n)];
            late[j] = *o;
            late[j].ts = o->ts - (tu_below(&r, 2) || o->ts < INT64_MIN + 3 ? 0 : (int64_t)tu_below(&r, 3));
            late[j].quality = tu_below(&r, 4) ? SR_Q_GOOD : (uint8_t)tu_below(&r, 4);
            if (type == SR_VT_NUMBER) late[j].v.f = -(double)tu_below(&r, 1000) / 8.0;
            else if (type == SR_VT_INTEGER) late[j].v.i = -(int64_t)tu_below(&r, 1000);
            else late[j].v.b = (int)tu_below(&r, 2);
        }
        /* sorted, unique ts (the engine's late list) */
        for (size_t j = 1; j < nlate; j++)
            for (size_t k = j; k > 0 && late[k - 1].ts > late[k].ts; k--) {
                sr_sample x = late[k];
                late[k] = late[k - 1];
                late[k - 1] = x;
            }
        size_t nl = 0;
        for (size_t j = 0; j < nlate; j++)
            if (!nl || late[nl - 1].ts != late[j].ts) late[nl++] = late[j];
        nlate = nl;
        /* the reference: the merged samples through sr_agg_add */
        sr_sample *all = malloc((n + nlate) * sizeof *all);
        size_t na = 0;
        for (size_t i = 0, j = 0; i < n || j < nlate;) {
            if (j >= nlate || (i < n && s[i].ts < late[j].ts)) all[na++] = s[i++];
            else {
                if (i < n && s[i].ts == late[j].ts) i++;
                all[na++] = late[j++];
            }
        }
        /* range and interval: bucket edges inside and across chunks */
        int64_t t0 = s[0].ts, t1 = s[n - 1].ts;
        uint64_t su = (uint64_t)(t1 / 2) - (uint64_t)(t0 / 2) + 2;
        int64_t span = su > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)su;
        int64_t from = t0;
        if (tu_below(&r, 3)) from -= t0 >= INT64_MIN + 3 ? (int64_t)tu_below(&r, 3) : 0;
        else from += (int64_t)(tu_next(&r) % (uint64_t)span);
        int64_t to = tu_below(&r, 3) ? INT64_MAX / 2 + t1 / 2 : from + 1 + (int64_t)(tu_next(&r) % (uint64_t)span);
        if (to <= from || from < INT64_MIN / 2) {
            from = t0 > INT64_MIN / 2 ? t0 : INT64_MIN / 2;
            to = from + 1 + (int64_t)tu_below(&r, 100000);
        }
        int64_t iv;
        switch (tu_below(&r, 4)) {
        case 0: iv = 1; break;
        case 1: iv = 1 + (int64_t)tu_below(&r, 100); break;
        case 2: iv = 60000; break;
        default: iv = 1 + (int64_t)(tu_next(&r) % (uint64_t)span); break;
        }
        if (((uint64_t)to - (uint64_t)from) / (uint64_t)iv > 20000) { /* few buckets, for the fill */
            if (tu_below(&r, 2)) iv = (int64_t)(((uint64_t)to - (uint64_t)from) / 20000 + 1);
            else to = (int64_t)((uint64_t)from + 20000 * (uint64_t)iv); /* < the old to */
        }
        sr_agg_fill fill = (sr_agg_fill)tu_below(&r, 2);
        /* chunks (each 1..n samples), a third of the time cut at bucket edges */
        sr_buf chunks;
        sr_buf_init(&chunks);
        int on_edges = tu_below(&r, 3) == 0;
        cut_chunks(&r, type, s, n, on_edges ? iv : 0, &chunks);
        sr_agg *ref = NULL, *fast = NULL, *abs = NULL;
        if (sr_agg_create(type, from, to, iv, fill, &ref)) { /* alignment below INT64_MIN: skip */
            free(all);
            free(late);
            free(s);
            sr_buf_release(&chunks);
            continue;
        }
        cr_assert_eq(sr_agg_create(type, from, to, iv, fill, &fast), SR_OK);
        cr_assert_eq(sr_agg_create(SR_VT_NUMBER, from, to, iv, fill, &abs), SR_OK);
        if (tu_below(&r, 8) == 0) { /* a sample ahead of the chunks: later ones up to its ts are ignored */
            sr_sample pre = s[tu_below(&r, n)];
            pre.ts += pre.ts < INT64_MAX ? (int64_t)tu_below(&r, 2) : 0;
            sr_agg_add(ref, &pre);
            sr_agg_add(fast, &pre);
            sr_sample pa = pre;
            pa.v.f = fabs(agg_value(type, &pre));
            sr_agg_add(abs, &pa);
        }
        for (size_t i = 0; i < na; i++) {
            sr_agg_add(ref, &all[i]);
            sr_sample pa = all[i];
            pa.v.f = fabs(agg_value(type, &all[i]));
            sr_agg_add(abs, &pa);
        }
        size_t before = fed_by_summary;
        cr_assert_eq(feed_fast(fast, &chunks, late, nlate, to), SR_OK, "iteration %d", it);
        if (on_edges && !nlate && fed_by_summary > before) whole_buckets++;
        size_t nr, nf, nabs;
        sr_bucket *br = agg_drain(&r, ref, &nr), *bf = agg_drain(&r, fast, &nf), *ba = agg_drain(&r, abs, &nabs);
        cr_assert_eq(nf, nr, "iteration %d: %zu buckets, decode + add %zu", it, nf, nr);
        cr_assert_eq(nabs, nr);
        for (size_t i = 0; i < nr; i++)
            cr_assert(summaries ? same_bucket_but_sum(&bf[i], &br[i], &ba[i]) : same_bucket_bits(&bf[i], &br[i]),
                      "iteration %d (type %d, iv %" PRId64 "): bucket %zu start %" PRId64 " count %" PRIu64
                      "/%" PRIu64 " sum %.17g/%.17g min %g/%g max %g/%g",
                      it, (int)type, iv, i, br[i].start, bf[i].count, br[i].count, bf[i].sum, br[i].sum, bf[i].min,
                      br[i].min, bf[i].max, br[i].max);
        free(br);
        free(bf);
        free(ba);
        sr_agg_destroy(ref);
        sr_agg_destroy(fast);
        sr_agg_destroy(abs);
        free(all);
        free(late);
        free(s);
        sr_buf_release(&chunks);
    }
    if (summaries) { /* the summaries did answer, also for buckets of whole chunks */
        cr_assert_geq(fed_by_summary, (size_t)tu_iters(3000), "chunks taken by their summary: %zu", fed_by_summary);
        cr_assert_geq(whole_buckets, (size_t)tu_iters(3000) / 20, "runs with buckets of whole chunks: %zu",
                      whole_buckets);
    } else {
        cr_assert_eq(fed_by_summary, 0, "old-format chunks have no summary");
    }
}

Test(storage_series, decoding_into_the_aggregator_matches_decode_then_add_bit_for_bit) { agg_differential(0, 4242); }

/* The differential test of summaries: the same random data (late values,
 * NaN, qualities, bucket edges inside chunks and on chunk edges, every
 * interval shape and fill mode), with version 3 chunks. */
Test(storage_series, summaries_answer_as_decoding_every_value) { agg_differential(1, 4243); }

/* A day of 1 s two-decimal values in 1,024-sample version 2 chunks, into
 * 1-minute buckets: every bucket equals a naive computation exactly (sum in
 * time order, min, max, first, last). */
Test(storage_series, decoding_into_the_aggregator_gives_naive_one_minute_buckets)
{
    tu_rng r = {tu_seed(86400)};
    enum { N = 86400, CH = 1024 };
    sr_sample *s = calloc(N, sizeof *s);
    int64_t cents = -5000, t0 = 1700000000000 - 1700000000000 % 60000;
    for (size_t i = 0; i < N; i++) {
        cents += (int64_t)tu_below(&r, 21) - 10;
        s[i].ts = t0 + (int64_t)i * 1000;
        s[i].v.f = (double)cents / 100.0;
    }
    sr_buf chunks;
    sr_buf_init(&chunks);
    for (size_t i = 0; i < N; i += CH) {
        size_t at = chunks.len, c = N - i < CH ? N - i : CH;
        uint8_t z4[4] = {0};
        cr_assert_eq(sr_buf_append(&chunks, z4, 4), SR_OK);
        encode(SR_VT_NUMBER, s + i, c, &chunks);
        cr_assert_eq(chunks.data[at + 4], 2, "version 2");
        sr_put_le32(chunks.data + at, (uint32_t)(chunks.len - at - 4));
    }
    sr_agg *a = NULL;
    cr_assert_eq(sr_agg_create(SR_VT_NUMBER, t0, t0 + 86400000, 60000, SR_FILL_NONE, &a), SR_OK);
    cr_assert_eq(feed_fast(a, &chunks, NULL, 0, t0 + 86400000), SR_OK);
    size_t nb;
    sr_bucket *b = agg_drain(&r, a, &nb);
    cr_assert_eq(nb, 1440);
    for (size_t k = 0; k < nb; k++) {
        const sr_sample *x = &s[k * 60];
        double sum = 0, mn = x[0].v.f, mx = x[0].v.f;
        for (int j = 0; j < 60; j++) {
            sum += x[j].v.f;
            mn = x[j].v.f < mn ? x[j].v.f : mn;
            mx = x[j].v.f > mx ? x[j].v.f : mx;
        }
        cr_assert(b[k].start == x[0].ts && b[k].count == 60 && b[k].sum == sum && b[k].min == mn && b[k].max == mx &&
                      b[k].first == x[0].v.f && b[k].last == x[59].v.f && b[k].first_ts == x[0].ts &&
                      b[k].last_ts == x[59].ts,
                  "bucket %zu", k);
    }
    free(b);
    sr_agg_destroy(a);
    sr_buf_release(&chunks);
    free(s);
}

/* A corrupt chunk (CRC repaired) gives the same result through
 * sr_chunk_dec_agg as through sr_chunk_dec_next + sr_agg_add: the same
 * error, or the same buckets. */
Test(storage_series, decoding_into_the_aggregator_finds_the_same_corruption)
{
    tu_rng r = {tu_seed(4343)};
    for (int it = 0; it < tu_iters(400); it++) {
        sr_vtype type = it % 4 == 3 ? SR_VT_INTEGER : SR_VT_NUMBER;
        size_t n = 2 + tu_below(&r, 300);
        sr_sample *s = gen_agg_series(&r, type, n);
        sr_buf b;
        sr_buf_init(&b);
        encode(type, s, n, &b);
        uint8_t *c = malloc(b.len);
        int64_t iv = 1 + (int64_t)tu_below(&r, 5000), from = s[0].ts > INT64_MIN / 2 ? s[0].ts : INT64_MIN / 2;
        for (int flip = 0; flip < 40; flip++) {
            memcpy(c, b.data, b.len);
            size_t at = 32 + tu_below(&r, b.len - 32);
            c[at] ^= (uint8_t)(1 + tu_below(&r, 255));
            fix_crc(c, b.len);
            int64_t to = from + 1 + (int64_t)tu_below(&r, 2000000);
            sr_agg *ap = NULL, *af = NULL;
            if (sr_agg_create(type, from, to, iv, SR_FILL_NONE, &ap)) continue;
            cr_assert_eq(sr_agg_create(type, from, to, iv, SR_FILL_NONE, &af), SR_OK);
            /* plain */
            sr_chunk_dec d;
            sr_sample x;
            int rp = sr_chunk_dec_init(&d, c, b.len);
            while (!rp && (rp = sr_chunk_dec_next(&d, &x)) == SR_OK && x.ts < to) sr_agg_add(ap, &x);
            if (rp == SR_DONE) rp = SR_OK;
            /* fast */
            sr_buf one;
            sr_buf_init(&one);
            uint8_t l4[4];
            sr_put_le32(l4, (uint32_t)b.len);
            cr_assert_eq(sr_buf_append(&one, l4, 4), SR_OK);
            cr_assert_eq(sr_buf_append(&one, c, b.len), SR_OK);
            int rf = feed_fast(af, &one, NULL, 0, to);
            cr_assert_eq(rf, rp, "iteration %d flip at %zu: %s, plain %s", it, at, sr_err_name(rf), sr_err_name(rp));
            if (!rp) {
                size_t np, nf;
                sr_bucket *bp = agg_drain(&r, ap, &np), *bf = agg_drain(&r, af, &nf);
                cr_assert_eq(nf, np);
                for (size_t i = 0; i < np; i++) cr_assert(same_bucket_bits(&bf[i], &bp[i]), "bucket %zu", i);
                free(bp);
                free(bf);
            }
            sr_buf_release(&one);
            sr_agg_destroy(ap);
            sr_agg_destroy(af);
        }
        free(c);
        free(s);
        sr_buf_release(&b);
    }
    /* a '0' timestamp code that reaches last_ts before the last sample: a
     * regular version 2 chunk of 40 samples that claims 41 (the fast run
     * decodes sample 39 and must reject it even when to <= its ts) */
    sr_sample forty[40];
    for (int i = 0; i < 40; i++) forty[i] = (sr_sample){.ts = 1000 * i, .quality = SR_Q_GOOD, .v.f = 0.5 * i};
    sr_buf b;
    sr_buf_init(&b);
    encode(SR_VT_NUMBER, forty, 40, &b);
    cr_assert_eq(b.data[0], 2);
    sr_put_le32(b.data + 4, 41);
    fix_crc(b.data, b.len);
    sr_buf one;
    sr_buf_init(&one);
    uint8_t l4[4];
    sr_put_le32(l4, (uint32_t)b.len);
    cr_assert_eq(sr_buf_append(&one, l4, 4), SR_OK);
    cr_assert_eq(sr_buf_append(&one, b.data, b.len), SR_OK);
    for (int64_t to = 38000; to <= 40000; to += 500) {
        sr_agg *a = NULL;
        cr_assert_eq(sr_agg_create(SR_VT_NUMBER, 0, to, 60000, SR_FILL_NONE, &a), SR_OK);
        cr_assert_eq(feed_fast(a, &one, NULL, 0, to), to <= 38000 ? SR_OK : SR_ECORRUPT, "to %" PRId64, to);
        sr_agg_destroy(a);
    }
    sr_buf_release(&one);
    sr_buf_release(&b);
}

/* ---- allocation failure --------------------------------------------------- */

Test(storage_series, allocation_failure_gives_enomem_and_no_leak)
{
    tu_rng r = {tu_seed(4242)};
    const size_t n = 300;
    sr_sample *s = gen_series(&r, SR_VT_STRING, n);
    sr_buf ref;
    sr_buf_init(&ref);
    encode(SR_VT_STRING, s, n, &ref);
    fault_alloc_install();
    int saw_ok = 0;
    for (unsigned long k = 1; k < 200 && !saw_ok; k++) {
        fault_alloc_arm(k);
        sr_chunk_enc *e = NULL;
        sr_buf out;
        sr_buf_init(&out);
        int rc = sr_chunk_enc_create(SR_VT_STRING, &e);
        size_t i = 0;
        int failed = rc != SR_OK;
        while (!rc && i < n) {
            rc = sr_chunk_enc_add(e, &s[i]);
            if (rc == SR_ENOMEM) {
                failed = 1;
                fault_alloc_arm(0); /* retry: the encoder was left unchanged */
                rc = sr_chunk_enc_add(e, &s[i]);
            }
            i++;
        }
        if (!rc) {
            rc = sr_chunk_enc_finish(e, &out);
            if (rc == SR_ENOMEM) {
                failed = 1;
                fault_alloc_arm(0);
                rc = sr_chunk_enc_finish(e, &out);
            }
        }
        cr_assert(rc == SR_OK || (rc == SR_ENOMEM && !e), "k=%lu: %s", k, sr_err_name(rc));
        if (e) cr_assert(out.len == ref.len && !memcmp(out.data, ref.data, ref.len), "k=%lu: output differs", k);
        if (!failed) saw_ok = 1;
        sr_chunk_enc_destroy(e);
        sr_buf_release(&out);
    }
    cr_assert(saw_ok);
    /* merge and aggregation */
    saw_ok = 0;
    for (unsigned long k = 1; k < 200 && !saw_ok; k++) {
        fault_alloc_arm(k);
        sr_buf out;
        sr_buf_init(&out);
        size_t nc = 0;
        int rc = sr_chunk_merge(SR_VT_STRING, ref.data, ref.len, s, 50, 64, &out, &nc);
        cr_assert(rc == SR_OK || rc == SR_ENOMEM, "merge k=%lu: %s", k, sr_err_name(rc));
        if (rc == SR_ENOMEM) cr_assert_eq(out.len, 0);
        else {
            saw_ok = !fault_alloc_fired();
            cr_assert_eq(nc, 5);
        }
        sr_buf_release(&out);
    }
    cr_assert(saw_ok);
    sr_sample *num = gen_series(&r, SR_VT_NUMBER, 6000);
    for (size_t i = 0; i < 6000; i++) {
        num[i].ts = (int64_t)i * 7 - 20000;
        num[i].quality = SR_Q_GOOD;
    }
    for (unsigned long k = 1; k < 10; k++) {
        fault_alloc_arm(k);
        sr_agg *a = NULL;
        int rc = sr_agg_create(SR_VT_NUMBER, INT64_MIN + 1, INT64_MAX, 1, SR_FILL_NONE, &a);
        cr_assert(rc == SR_OK || rc == SR_ENOMEM);
        if (rc) continue;
        for (size_t i = 0; i < 6000; i++) sr_agg_add(a, &num[i]);
        rc = sr_agg_status(a);
        cr_assert(rc == SR_OK || rc == SR_ENOMEM);
        sr_bucket b[64];
        size_t total = 0, got;
        while ((got = sr_agg_emit(a, b, 64)) > 0) total += got;
        if (rc == SR_OK) cr_assert_eq(total, 6000);
        else cr_assert_lt(total, 6000);
        sr_agg_destroy(a);
    }
    fault_alloc_arm(0);
    fault_alloc_uninstall();
    free(num);
    free(s);
    sr_buf_release(&ref);
}

/* ---- golden corpus -------------------------------------------------------- */

/* Each golden chunk's samples, regenerated deterministically. A file keeps
 * its version forever; `now_v2` marks the version 1 files of decimal numbers,
 * which the encoder now writes as version 2 (so only their decoding, and the
 * parts version 2 shares with version 1, are compared). */
#define GOLDEN_MAX 400
static const struct {
    const char *name;
    int version, now_v2;
} golden[] = {
    {"number-walk", 1, 1}, {"number-special", 1, 0}, {"integer", 1, 0},    {"bool", 1, 0},
    {"string", 1, 0},      {"quality-mixed", 1, 1},  {"gaps", 1, 0},       {"single", 1, 1},
    {"empty", 1, 0},       {"v2-walk", 2, 0},        {"v2-scale6", 2, 0},  {"v2-dod", 2, 0},
    {"v2-escape", 2, 0},   {"v2-quality", 2, 0},     {"v2-single", 2, 0},
    {"v3-walk", 3, 0},     {"v3-double", 3, 0},      {"v3-integer", 3, 0}, {"v3-bool", 3, 0},
    {"v3-uncertain", 3, 0}, {"v3-single", 3, 0},     {"v3-hours", 3, 0},
};
#define NGOLDEN (sizeof golden / sizeof golden[0])
#define GOLDEN_NEWEST 3 /* SR_GOLDEN_WRITE writes only the files of this version */

static size_t golden_samples(size_t g, sr_vtype *type, sr_sample *s)
{
    tu_rng r = {1000 + g}; /* fixed: never the suite seed */
    size_t n = 0;
    memset(s, 0, GOLDEN_MAX * sizeof *s);
    switch (g) {
    case 0: /* 2-decimal random walk at 1 s */
        *type = SR_VT_NUMBER;
        n = 120;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = 1700000000000 + (int64_t)i * 1000;
            s[i].v.f = (double)(10000 + (int64_t)i * 3 - (int64_t)tu_below(&r, 7)) / 100.0;
        }
        break;
    case 1: {
        static const uint64_t sp[] = {0x7FF8000000000000ull, 0xFFF8DEADBEEF0001ull, 0x7FF0000000000000ull,
                                      0xFFF0000000000000ull, 0x8000000000000000ull, 0x0000000000000001ull,
                                      0x7FEFFFFFFFFFFFFFull, 0x3FF0000000000000ull};
        *type = SR_VT_NUMBER;
        n = 8;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = -4000 + (int64_t)i * 1000;
            s[i].v.f = dbl_of(sp[i]);
        }
        break;
    }
    case 2:
        *type = SR_VT_INTEGER;
        n = 60;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = 1700000000000 + (int64_t)i * 60000 + (int64_t)tu_below(&r, 3);
            s[i].v.i = i == 7 ? INT64_MIN : i == 8 ? INT64_MAX : (int64_t)i * 1000 - (int64_t)tu_below(&r, 500);
        }
        break;
    case 3:
        *type = SR_VT_BOOL;
        n = 50;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = (int64_t)i * 500;
            s[i].v.b = (int)((i / 7) & 1);
        }
        break;
    case 4:
        *type = SR_VT_STRING;
        n = 20;
        for (size_t i = 0; i < n; i++) {
            size_t k = (i / 3) % NSTR;
            s[i].ts = 1000 + (int64_t)i * 10;
            s[i].v.str.s = str_pool[k];
            s[i].v.str.slen = str_len[k];
        }
        break;
    case 5:
        *type = SR_VT_NUMBER;
        n = 30;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = (int64_t)i * 1000;
            s[i].quality = (uint8_t)(i % 4);
            s[i].v.f = (double)i * 0.5;
        }
        break;
    case 6: {
        static const int64_t ts[] = {INT64_MIN, -1, 0, 1, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX};
        *type = SR_VT_INTEGER;
        n = 7;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = ts[i];
            s[i].v.i = (int64_t)i - 3;
        }
        break;
    }
    case 7:
        *type = SR_VT_NUMBER;
        n = 1;
        s[0].ts = 1700000000000;
        s[0].v.f = 3.25;
        break;
    case 8: *type = SR_VT_STRING; break;
    case 9: { /* the benchmark's data: 2 decimals, steps -0.10..+0.10, 1 s */
        *type = SR_VT_NUMBER;
        n = 300;
        int64_t c = 25000;
        for (size_t i = 0; i < n; i++) {
            c += (int64_t)tu_below(&r, 21) - 10;
            s[i].ts = 1700000000000 + (int64_t)i * 1000;
            s[i].v.f = (double)c / 100.0;
        }
        break;
    }
    case 10: { /* 6 decimals around -47.1, negative jittered timestamps */
        *type = SR_VT_NUMBER;
        n = 100;
        int64_t c = -47123456;
        for (size_t i = 0; i < n; i++) {
            c += (int64_t)tu_below(&r, 101) - 50;
            s[i].ts = -3600000 + (int64_t)i * 250 + (int64_t)tu_below(&r, 3);
            s[i].v.f = (double)c / 1e6;
        }
        break;
    }
    case 11: { /* an energy meter: 1 decimal, +2.0..2.5 a minute (delta-of-deltas) */
        *type = SR_VT_NUMBER;
        n = 200;
        int64_t c = 1234567;
        for (size_t i = 0; i < n; i++) {
            c += 20 + (int64_t)tu_below(&r, 6);
            s[i].ts = 1700000000000 + (int64_t)i * 60000;
            s[i].v.f = (double)c / 10.0;
        }
        break;
    }
    case 12: /* integers in a small walk, jumping to +-(2^53 - 1) and back: escape codes */
        *type = SR_VT_NUMBER;
        n = 120;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = 1000 * (int64_t)i;
            s[i].v.f = i % 40 == 17 ? 9007199254740991.0 : i % 40 == 18 ? -9007199254740991.0
                                                                       : (double)((int64_t)(i % 7) - 3);
        }
        break;
    case 13: /* negative quarters with every quality code */
        *type = SR_VT_NUMBER;
        n = 40;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = (int64_t)i * 1000;
            s[i].quality = (uint8_t)((i * 3) % 4);
            s[i].v.f = -12.5 + (double)i * 0.25;
        }
        break;
    case 14:
        *type = SR_VT_NUMBER;
        n = 1;
        s[0].ts = -1;
        s[0].v.f = -0.001;
        break;
    case 15: /* version 3 of the benchmark's walk: a decimal summary */
        n = golden_samples(9, type, s);
        break;
    case 16: { /* doubles that are not decimals, +Inf, -0.0, a denormal, +-DBL_MAX (no NaN, no -Inf) */
        static const uint64_t sp[] = {0x7FF0000000000000ull, 0x3FF0000000000000ull, 0x8000000000000000ull,
                                      0x0000000000000001ull, 0x7FEFFFFFFFFFFFFFull, 0xFFEFFFFFFFFFFFFFull};
        *type = SR_VT_NUMBER;
        n = 90;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = 1700000000000 + (int64_t)i * 1000;
            s[i].v.f = i % 15 == 14 ? dbl_of(sp[(i / 15) % 6]) : (double)((int64_t)tu_below(&r, 2001) - 1000) / 7.0;
        }
        break;
    }
    case 17: /* the integers of `integer` (INT64_MIN and INT64_MAX: a sum that rounds) */
        n = golden_samples(2, type, s);
        break;
    case 18:
        n = golden_samples(3, type, s);
        break;
    case 19: /* GOOD and UNCERTAIN (a quality section), 1 decimal */
        *type = SR_VT_NUMBER;
        n = 40;
        for (size_t i = 0; i < n; i++) {
            s[i].ts = (int64_t)i * 1000;
            s[i].quality = (uint8_t)(i % 3 == 1 ? SR_Q_UNCERTAIN : SR_Q_GOOD);
            s[i].v.f = (double)(215 - (int64_t)i * 3) / 10.0;
        }
        break;
    case 20:
        *type = SR_VT_INTEGER;
        n = 1;
        s[0].ts = 1700000000000;
        s[0].v.i = -42;
        break;
    case 21: /* the meter of v2-dod: 200 minutes from 22:13:20 UTC, in 4 hours */
        n = golden_samples(11, type, s);
        break;
    }
    return n;
}

/* A golden file's samples as its version's writer writes them (version 3:
 * with summaries; older: without, as the encoder wrote them then). */
static void golden_encode(size_t g, sr_buf *b, sr_vtype *type, sr_sample *s, size_t *n)
{
    *n = golden_samples(g, type, s);
    sr_buf_init(b);
    int was = enc_summaries;
    enc_summaries = golden[g].version >= 3;
    encode(*type, s, *n, b);
    enc_summaries = was;
}

Test(storage_series, regenerate_golden_when_asked)
{
    if (!getenv("SR_GOLDEN_WRITE")) return;
    for (size_t g = 0; g < NGOLDEN; g++) {
        if (golden[g].version != GOLDEN_NEWEST) continue; /* older files are never rewritten */
        sr_sample s[GOLDEN_MAX];
        sr_vtype type;
        size_t n;
        sr_buf b;
        golden_encode(g, &b, &type, s, &n);
        cr_assert_eq(b.data[0], golden[g].version, "%s", golden[g].name);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.chunk", DATA, golden[g].name);
        cr_assert_eq(tu_write_file(p, b.data, b.len), 0, "%s", p);
        sr_buf_release(&b);
    }
}

Test(storage_series, golden_chunks_are_reproduced_and_decoded)
{
    for (size_t g = 0; g < NGOLDEN; g++) {
        sr_sample s[GOLDEN_MAX], got[GOLDEN_MAX + 1];
        sr_vtype type;
        size_t n, m, flen;
        sr_buf b;
        golden_encode(g, &b, &type, s, &n);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.chunk", DATA, golden[g].name);
        uint8_t *f = tu_read_file(p, &flen);
        cr_assert(f, "missing golden file %s", p);
        cr_assert(flen >= 32 && f[0] == golden[g].version, "%s: version", p);
        if (!golden[g].now_v2) {
            cr_assert(flen == b.len && !memcmp(f, b.data, flen), "%s: encoder output differs from the golden file", p);
        } else {
            /* version 2 keeps the header fields, the quality section and the
             * timestamp stream of version 1 byte for byte */
            cr_assert_eq(b.data[0], 2, "%s: now written as version 2", p);
            size_t voff = value_off(f);
            cr_assert(!memcmp(f + 1, b.data + 1, 2) && !memcmp(f + 4, b.data + 4, 24), "%s: header", p);
            cr_assert(voff == value_off(b.data) && !memcmp(f + 32, b.data + 32, voff - 32), "%s: q + ts", p);
            cr_assert_lt(b.len, flen, "%s: version 2 is smaller", p);
        }
        cr_assert_eq(decode_all(f, flen, got, GOLDEN_MAX + 1, &m), SR_DONE, "%s", p);
        cr_assert_eq(m, n, "%s", p);
        for (size_t i = 0; i < n; i++) cr_assert(same_sample(type, &got[i], &s[i]), "%s: sample %zu", p, i);
        cr_assert_null(sr_chunk_summary_check(f, flen), "%s", p);
        /* the writer of today: version 3 is the old writer's chunk plus a summary */
        sr_buf v3;
        sr_buf_init(&v3);
        enc_summaries = 1;
        encode(type, s, n, &v3);
        enc_summaries = 0;
        if (golden[g].version < 3 && v3.data[0] == 3) {
            sr_buf old, stripped;
            sr_buf_init(&old);
            sr_buf_init(&stripped);
            encode(type, s, n, &old);
            strip_summary(v3.data, v3.len, &stripped);
            cr_assert(stripped.len == old.len && !memcmp(stripped.data, old.data, old.len), "%s: v3 = old + summary",
                      p);
            sr_buf_release(&old);
            sr_buf_release(&stripped);
        }
        sr_buf_release(&v3);
        free(f);
        sr_buf_release(&b);
    }
}

/* Old-format chunks answer a downsample as the version 3 chunk of the same
 * samples does (bit for bit but the sum of a bucket that holds several of
 * the chunk's hour segments: same_bucket_but_sum), at intervals that put the
 * chunk in one bucket or cut it. */
Test(storage_series, old_format_golden_chunks_downsample_as_version_3)
{
    tu_rng r = {tu_seed(333)};
    size_t taken = 0;
    for (size_t g = 0; g < NGOLDEN; g++) {
        if (golden[g].version >= 3) continue;
        sr_sample s[GOLDEN_MAX];
        sr_vtype type;
        size_t n = golden_samples(g, &type, s), flen;
        if (type == SR_VT_STRING || !n) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.chunk", DATA, golden[g].name);
        uint8_t *f = tu_read_file(p, &flen);
        cr_assert(f, "%s", p);
        sr_buf oldc, newc;
        sr_buf_init(&oldc);
        sr_buf_init(&newc);
        uint8_t z4[4];
        sr_put_le32(z4, (uint32_t)flen);
        cr_assert_eq(sr_buf_append(&oldc, z4, 4), SR_OK);
        cr_assert_eq(sr_buf_append(&oldc, f, flen), SR_OK);
        enc_summaries = 1;
        cr_assert_eq(sr_buf_append(&newc, z4, 4), SR_OK);
        encode(type, s, n, &newc);
        sr_put_le32(newc.data, (uint32_t)(newc.len - 4));
        int64_t t0 = s[0].ts, t1 = s[n - 1].ts;
        if (t0 < INT64_MIN / 4 || t1 > INT64_MAX / 4) { /* gaps: a range the aggregator can align */
            free(f);
            sr_buf_release(&oldc);
            sr_buf_release(&newc);
            continue;
        }
        int64_t span = t1 - t0 + 1, ivs[] = {250, 1000, 60000, 3600000, 4 * span, span / 3 + 1};
        for (size_t k = 0; k < sizeof ivs / sizeof ivs[0]; k++) {
            for (int fill = 0; fill < 2; fill++) {
                sr_agg *ao = NULL, *an = NULL, *abs = NULL;
                int64_t from = floor_to(t0, ivs[k]), to = t1 + 1;
                cr_assert_eq(sr_agg_create(type, from, to, ivs[k], (sr_agg_fill)fill, &ao), SR_OK);
                cr_assert_eq(sr_agg_create(type, from, to, ivs[k], (sr_agg_fill)fill, &an), SR_OK);
                cr_assert_eq(sr_agg_create(SR_VT_NUMBER, from, to, ivs[k], (sr_agg_fill)fill, &abs), SR_OK);
                for (size_t i = 0; i < n; i++) {
                    sr_sample pa = s[i];
                    pa.v.f = fabs(agg_value(type, &s[i]));
                    sr_agg_add(abs, &pa);
                }
                size_t before = fed_by_summary;
                cr_assert_eq(feed_fast(ao, &oldc, NULL, 0, to), SR_OK);
                cr_assert_eq(fed_by_summary, before, "%s: no summary in the old format", p);
                cr_assert_eq(feed_fast(an, &newc, NULL, 0, to), SR_OK);
                taken += fed_by_summary - before;
                size_t no, nn, na;
                sr_bucket *bo = agg_drain(&r, ao, &no), *bn = agg_drain(&r, an, &nn), *ba = agg_drain(&r, abs, &na);
                cr_assert(no == nn && na == no, "%s", p);
                for (size_t i = 0; i < no; i++)
                    cr_assert(same_bucket_but_sum(&bn[i], &bo[i], &ba[i]), "%s: iv %" PRId64 " bucket %zu", p,
                              ivs[k], i);
                free(bo);
                free(bn);
                free(ba);
                sr_agg_destroy(ao);
                sr_agg_destroy(an);
                sr_agg_destroy(abs);
            }
        }
        free(f);
        sr_buf_release(&oldc);
        sr_buf_release(&newc);
    }
    cr_assert_geq(taken, 10, "version 3 chunks answered by their summary: %zu", taken);
}

/* Late values merged into a full chunk: one chunk up to max + max/4 samples
 * (no tiny chunk split off), above that equal parts of at most max. */
Test(storage_series, merge_balanced_keeps_a_chunk_whole_then_splits_evenly)
{
    tu_rng r = {tu_seed(17)};
    const uint32_t mc = 64;
    for (size_t n = 1; n <= 4 * mc + 3; n++) {
        sr_sample *s = gen_series(&r, SR_VT_NUMBER, n);
        sr_buf out;
        sr_buf_init(&out);
        size_t nchunks = 0;
        cr_assert_eq(sr_chunk_merge_balanced(SR_VT_NUMBER, NULL, 0, s, n, mc, &out, &nchunks), SR_OK);
        size_t parts = n <= mc + mc / 4 ? 1 : (n + mc - 1) / mc;
        cr_assert_eq(nchunks, parts, "n %zu", n);
        size_t off = 0, k = 0, lo = SIZE_MAX, hi = 0;
        while (off < out.len) {
            uint32_t clen = sr_get_le32(out.data + off);
            sr_chunk_info info;
            cr_assert_eq(sr_chunk_info_get(out.data + off + 4, clen, &info), SR_OK);
            cr_assert_eq(info.first_ts, s[k].ts, "chunks in order, none lost");
            k += info.count;
            cr_assert_eq(info.last_ts, s[k - 1].ts);
            if (info.count < lo) lo = info.count;
            if (info.count > hi) hi = info.count;
            off += 4 + clen;
        }
        cr_assert_eq(k, n);
        cr_assert_leq(hi - lo, 1, "n %zu: equal parts", n);
        if (parts > 1) cr_assert_leq(hi, mc);
        sr_buf_release(&out);
        free(s);
    }
    /* a full chunk and one late value: still one chunk */
    sr_sample *s = gen_series(&r, SR_VT_NUMBER, mc + 1);
    sr_buf chunk, out;
    sr_buf_init(&chunk);
    sr_buf_init(&out);
    encode(SR_VT_NUMBER, s + 1, mc, &chunk);
    size_t nc = 0;
    cr_assert_eq(sr_chunk_merge_balanced(SR_VT_NUMBER, chunk.data, chunk.len, s, 1, mc, &out, &nc), SR_OK);
    cr_assert_eq(nc, 1);
    cr_assert_eq(sr_chunk_merge(SR_VT_NUMBER, chunk.data, chunk.len, s, 1, mc, &out, &nc), SR_OK);
    cr_assert_eq(nc, 2, "the plain merge splits at max_count");
    sr_buf_release(&chunk);
    sr_buf_release(&out);
    free(s);
}
