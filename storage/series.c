/*
 * storage/series.c -- time-series chunk codec, merge and downsampling
 * (chunk formats v1, v2 and v3, docs/series-format.md).
 *
 * A chunk is a 32-byte header, an optional quality section (2 bits a sample),
 * a timestamp bit stream and a value stream. The header carries type, count,
 * first/last timestamp, the length of the timestamp stream and a CRC-32C of
 * the whole chunk, so sr_chunk_info_get reads it in O(1) and a decoder can
 * check every byte before trusting it.
 *
 * Version 2 differs from version 1 only in the value stream of number chunks:
 * when every value is m / 10^k for one k in 0..6 (bit for bit, |m| < 2^53),
 * the value stream holds the integer mantissas m (first one as a varint, then
 * deltas or delta-of-deltas in a per-chunk bucket code) instead of XORed
 * doubles. While the values stay decimal, the encoder keeps their mantissas,
 * their bits, a histogram of the bit lengths of the mantissas'
 * (delta-of-)deltas, from which it picks the cheapest code exactly, and a
 * lower bound of the version 1 size. At finish (plan_values) it writes
 * version 2 if that is not longer than version 1 (the bound settles it
 * mostly; else the version 1 size is counted), else version 1, byte for byte
 * what a version 1 encoder writes. The first value that is not decimal
 * turns the chunk into version 1: the version 1 stream of the samples so far
 * is built from their bits, and later samples go to it directly, as before.
 * Every other type is always version 1.
 *
 * Version 3 is a version 1 or 2 chunk with a summary section after the
 * header (per UTC hour of the samples, up to 4: count, timestamps, min,
 * max, sum, first and last value as the aggregator sees them), written for
 * every chunk of numbers, integers or booleans with no NaN and no BAD or
 * NO_DATA sample; sr_chunk_dec_agg adds such a chunk to the aggregator from
 * its summary, without decoding, when each segment lies in one bucket.
 *
 * INVARIANTS (encoder)
 *  (1) count == 0 or last_ts > every earlier ts; prev_delta = last_ts - the
 *      timestamp before it (mod 2^64), 0 when count <= 1.
 *  (2) q holds ceil(count / 4) bytes, 2 bits a sample, LSB first; any_bad is
 *      1 iff some sample's quality is not GOOD.
 *  (3) ts/val hold exactly the bits of samples 0..count-1 (pending bits in
 *      acc), except that for numbers val is empty while dec_ok is 1; a
 *      failed add leaves all of this unchanged (every allocation of an add
 *      happens before its first mutation).
 *  (4) Numbers: dec_ok is 1 iff every value so far is mant[i] / 10^scale bit
 *      for bit with |mant[i]| <= MANT_MAX; then vbits[i] are the values'
 *      bits, max_abs = max |mant[i]|, hist[0][b] / hist[1][b] count the
 *      samples i >= 1 whose zigzag(delta) / zigzag(delta - previous delta)
 *      has bit length b, prev_d is the last delta, and lb1 <= the bit length
 *      of the version 1 value stream of the samples. Raising the scale
 *      multiplies every mantissa by a power of ten (exact: the same real
 *      quotient, so the same rounded double) and recounts the histograms.
 *      When dec_ok is 0 none of these are used.
 *  (8) Summary: seg[0..nseg) are the UTC hours of the samples so far, in
 *      order: each closed one holds its samples (at, count), first and last
 *      ts, and the left fold from the hour's first value (v < min ? v : min,
 *      v > max ? v : max, sum + v, first, last) of the values as sr_agg_add
 *      takes them (integers also as int64); the open one (the last) holds
 *      at, first_ts and first, and s_sum (from -0.0), s_min, s_max, s_imin,
 *      s_imax, s_ntrue, s_lastb hold its running fold; seg_hi is the last
 *      ms of its hour. Min and max of numbers are not kept while the chunk
 *      is decimal (dec_ok: taken from the mantissas at finish; computed for
 *      every segment when the chunk turns to version 1). No summary is
 *      written for a BAD or NO_DATA sample or a NaN sum (a NaN value).
 *      A written version 3 chunk's summary is that of its decoded samples
 *      (sr_chunk_summary_check, run by sr_chunk_enc_finish under
 *      SR_INVARIANT).
 *
 * INVARIANTS (decoder)
 *  (5) Every bit read lies inside its own stream; running out is ECORRUPT.
 *  (6) Decoded timestamps are strictly increasing and never pass last_ts;
 *      the last one equals last_ts and both streams end exactly (zero pad).
 *  (7) Version 2: every decoded mantissa has |m| <= MANT_MAX, so the value
 *      m / 10^k is the double the encoder checked.
 *
 * Timestamp and integer deltas are computed in uint64_t (wrapping), so every
 * gap between INT64_MIN and INT64_MAX encodes without signed overflow.
 */
#include "storage/series.h"

#include "codecs/base/sr_decimal.h"
#include "storage/crc32c.h"

#include <stdlib.h>
#include <string.h>

enum {
    SR_SERIES_VERSION = 1,  /* every type; numbers that are not decimal */
    SR_SERIES_VERSION2 = 2, /* numbers only: decimal mantissas */
    SR_SERIES_VERSION3 = 3, /* version 1 or 2 with a summary section */
    HDR_LEN = 32,
    FLAG_ALL_GOOD = 0x01,
    FLAG_DECIMAL = 0x02, /* version 3: the value stream is version 2's */
    SUM_CAP = 1 + SR_CHUNK_MAXSEG * 80, /* room for any summary section while it is built */
    /* version 2 value code (docs/series-format.md, "Version 2") */
    V2_MAX_SCALE = 6,
    V2_MAX_W = 27,      /* so that the longest non-escape code, w + 30 bits, fits one 57-bit peek */
    V2_ESC_ZEROS = 16,  /* this many leading zero bits: escape, z follows in 56 bits */
    V2_ESC_BITS = 56,
    V2_NBL = 57,        /* bit lengths 0..56 of zigzag values below 2^56 */
};

#define MANT_MAX ((UINT64_C(1) << 53) - 1) /* |mantissa| <= 2^53 - 1 */
#define SEG_MS INT64_C(3600000) /* summary segments: UTC hours */

/* the decoder's per-sample steps, inlined into each loop that uses them;
 * and the rare paths kept out of the hot loops */
#if defined(__GNUC__)
#define SR_INLINE inline __attribute__((always_inline))
#define SR_NOINLINE __attribute__((noinline))
#else
#define SR_INLINE inline
#define SR_NOINLINE
#endif

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */


static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static int valid_type(int t) { return t >= SR_VT_NUMBER && t <= SR_VT_STRING; }

static size_t qbytes_for(uint32_t count) { return ((size_t)count + 3) / 4; }

static uint64_t dbl_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}

static double bits_dbl(uint64_t u)
{
    double f;
    memcpy(&f, &u, 8);
    return f;
}

static inline unsigned bitlen(uint64_t z) { return z ? 64 - (unsigned)__builtin_clzll(z) : 0; }

/* Version 2 scales: 10^k (the doubles are sr_dec_pow10, codecs/base/sr_decimal.h). */
_Static_assert(V2_MAX_SCALE == SR_DEC_MAX_SCALE, "the version 2 scales are the base layer's decimals");
static const int64_t pow10_int[V2_MAX_SCALE + 1] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* |m| <= MANT_MAX, for m as a two's complement uint64 */
static inline int mant_ok(uint64_t m) { return m + MANT_MAX <= 2 * MANT_MAX; }

/* The value of mantissa m at scale k: the one computation of both the
 * encoder's check and the decoder (IEEE 754 division, round to nearest). */
static inline double dec_value(int64_t m, unsigned k) { return sr_dec_value(m, k); }

/* The smallest k in from..6 at which f == m / 10^k bit for bit with
 * |m| <= MANT_MAX, and *m; -1 if there is none (sr_decimal_at, the one
 * definition the number writer shares): a rounding slip can only miss a
 * scale (and write a larger k, or version 1), never store a wrong value.
 * NaN, infinities, -0.0 (m = 0 gives +0.0) and most non-decimals fail. */
static int decimal_at(double f, int from, int64_t *m) { return sr_decimal_at(f, from, MANT_MAX, m); }

/* Bits of the version 2 code of a zigzag value of bit length b with base
 * width w: '1' + w bits; j = b - w zeros + b bits; or the escape. */
static inline uint64_t v2_code_bits(unsigned b, unsigned w)
{
    if (b <= w) return w + 1;
    if (b - w < V2_ESC_ZEROS) return 2 * (uint64_t)b - w;
    return V2_ESC_ZEROS + V2_ESC_BITS;
}

/* ------------------------------------------------------------------------ */
/* Bit writer: MSB first; whole 64-bit words go to the buffer big-endian.    */

typedef struct bitw {
    sr_buf b;
    uint64_t acc; /* the low `fill` bits are pending */
    unsigned fill; /* 0..63 */
} bitw;

/* Space must have been reserved (16 bytes covers any put of <= 64 bits plus
 * another one, see enc_add). v must fit in n bits; 1 <= n <= 64. */
static void bw_put(bitw *w, uint64_t v, unsigned n)
{
    unsigned room = 64 - w->fill;
    if (n < room) {
        w->acc = (w->acc << n) | v;
        w->fill += n;
        return;
    }
    unsigned over = n - room; /* 0..63 */
    uint64_t word = (w->fill ? w->acc << room : 0) | (v >> over);
    store_be64(w->b.data + w->b.len, word);
    w->b.len += 8;
    w->acc = over ? v & ((UINT64_C(1) << over) - 1) : 0;
    w->fill = over;
}

static size_t bw_bytes(const bitw *w) { return w->b.len + (w->fill + 7) / 8; }

/* Copy the stream (with its zero-padded tail) to dst. */
static void bw_copy(const bitw *w, uint8_t *dst)
{
    if (w->b.len) memcpy(dst, w->b.data, w->b.len);
    if (w->fill) {
        uint8_t tail[8];
        store_be64(tail, w->acc << (64 - w->fill));
        memcpy(dst + w->b.len, tail, (w->fill + 7) / 8);
    }
}

static void bw_reset(bitw *w)
{
    w->b.len = 0;
    w->acc = 0;
    w->fill = 0;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */

/* One hour's samples (invariant 8): samples at..at+count-1. */
typedef struct enc_seg {
    uint32_t at, count;
    int64_t first_ts, last_ts;
    double min, max, sum, first, last; /* the values as sr_agg_add takes them */
    int64_t imin, imax, ifirst, ilast; /* integers: their own */
} enc_seg;

struct sr_chunk_enc {
    sr_vtype type;
    uint32_t count;
    int any_bad;
    int64_t first_ts, last_ts;
    uint64_t prev_delta;
    sr_buf q;
    bitw ts;
    bitw val;       /* bit stream (numbers, bools) */
    sr_buf bytes;   /* byte stream (integers, strings) */
    uint64_t prev_bits;
    int lead, trail; /* current XOR window; lead < 0: none yet */
    int64_t prev_i;
    sr_buf prev_s;  /* previous string (a copy) */
    /* numbers, version 2 candidate (invariant 4) */
    int dec_ok;
    int scale;         /* k, 0..6 */
    int64_t *mant;     /* count mantissas at scale */
    size_t mant_cap;
    uint64_t *vbits;   /* count values' bits */
    size_t vbits_cap;
    uint64_t lb1;
    uint64_t max_abs;
    uint64_t prev_d;
    uint32_t hist[2][V2_NBL];
    bitw v2;           /* scratch: the version 2 value bits, built at finish */
    /* the summary (invariant 8) */
    int s_off; /* sr_chunk_enc_summary(e, 0): versions 1 and 2 only */
    enc_seg *seg;   /* one per hour of the samples so far; the last one open */
    size_t nseg, seg_cap;
    int64_t seg_hi; /* the last ms of the hour of seg[nseg - 1] */
    double s_sum, s_min, s_max; /* the open segment's running fold */
    int64_t s_imin, s_imax;
    uint32_t s_ntrue;
    int s_lastb;
};

int sr_chunk_enc_create(sr_vtype type, sr_chunk_enc **out)
{
    if (!out || !valid_type((int)type)) return SR_EINVAL;
    sr_chunk_enc *e = sr_calloc(1, sizeof *e);
    if (!e) return SR_ENOMEM;
    e->type = type;
    e->lead = -1;
    e->dec_ok = 1;
    e->seg_hi = INT64_MAX;
    if (sr_array_reserve(&e->seg, &e->seg_cap, 4, sizeof *e->seg)) { /* seg[0], for a first sample */
        sr_free(e);
        return SR_ENOMEM;
    }
    *out = e;
    return SR_OK;
}

int sr_chunk_enc_summary(sr_chunk_enc *e, int on)
{
    if (!e || e->count) return SR_EINVAL;
    e->s_off = !on;
    return SR_OK;
}

int sr_chunk_enc_expect(sr_chunk_enc *e, size_t n)
{
    if (!e) return SR_EINVAL;
    if (n > UINT32_MAX) n = UINT32_MAX;
    int rc = SR_OK;
    if (e->type == SR_VT_NUMBER) {
        if (!rc) rc = sr_array_reserve(&e->mant, &e->mant_cap, n, sizeof *e->mant);
        if (!rc) rc = sr_array_reserve(&e->vbits, &e->vbits_cap, n, sizeof *e->vbits);
        if (!rc) rc = sr_buf_reserve(&e->val.b, n / 2 + 16);
    }
    if (!rc) rc = sr_buf_reserve(&e->ts.b, n / 4 + 16);
    if (!rc) rc = sr_buf_reserve(&e->q, n / 4 + 1);
    return rc;
}

void sr_chunk_enc_destroy(sr_chunk_enc *e)
{
    if (!e) return;
    sr_buf_release(&e->q);
    sr_buf_release(&e->ts.b);
    sr_buf_release(&e->val.b);
    sr_buf_release(&e->bytes);
    sr_buf_release(&e->prev_s);
    sr_buf_release(&e->v2.b);
    sr_free(e->mant);
    sr_free(e->vbits);
    sr_free(e->seg);
    sr_free(e);
}

static void enc_reset(sr_chunk_enc *e)
{
    e->count = 0;
    e->any_bad = 0;
    e->first_ts = e->last_ts = 0;
    e->prev_delta = 0;
    e->q.len = 0;
    bw_reset(&e->ts);
    bw_reset(&e->val);
    e->bytes.len = 0;
    e->prev_bits = 0;
    e->lead = e->trail = -1;
    e->prev_i = 0;
    e->prev_s.len = 0;
    e->dec_ok = 1;
    e->scale = 0;
    e->max_abs = 0;
    e->prev_d = 0;
    e->lb1 = 0;
    memset(e->hist, 0, sizeof e->hist);
    e->nseg = 0;
    e->seg_hi = INT64_MAX;
}

static void enc_ts(sr_chunk_enc *e, int64_t ts)
{
    uint64_t delta = (uint64_t)ts - (uint64_t)e->last_ts;
    uint64_t z = sr_zz_enc(delta - e->prev_delta);
    e->prev_delta = delta;
    if (z == 0) bw_put(&e->ts, 0, 1);
    else if (z < (UINT64_C(1) << 7)) bw_put(&e->ts, (UINT64_C(0x2) << 7) | z, 9);
    else if (z < (UINT64_C(1) << 9)) bw_put(&e->ts, (UINT64_C(0x6) << 9) | z, 12);
    else if (z < (UINT64_C(1) << 12)) bw_put(&e->ts, (UINT64_C(0xE) << 12) | z, 16);
    else if (z < (UINT64_C(1) << 32)) bw_put(&e->ts, (UINT64_C(0x1E) << 32) | z, 37);
    else {
        bw_put(&e->ts, 0x1F, 5);
        bw_put(&e->ts, z, 64);
    }
}

/* Version 1 numbers: for XOR x != 0, 1 if x fits the window (*wl, *wt)
 * ('10'), else 0 and x's own window becomes the window ('11'). The one
 * decision of both xor_put and xor_bytes. */
static inline int xor_window(int *wl, int *wt, uint64_t x)
{
    int lead = __builtin_clzll(x), trail = __builtin_ctzll(x);
    int mlen = 64 - lead - trail;
    if (*wl >= 0 && lead >= *wl && trail >= *wt && 64 - *wl - *wt <= mlen + 12) return 1;
    *wl = lead;
    *wt = trail;
    return 0;
}

/* Append a number's bits to the version 1 stream (first: sample 0). */
static void xor_put(sr_chunk_enc *e, uint64_t bits, int first)
{
    if (first) {
        bw_put(&e->val, bits, 64);
        e->prev_bits = bits;
        return;
    }
    uint64_t x = bits ^ e->prev_bits;
    e->prev_bits = bits;
    if (x == 0) {
        bw_put(&e->val, 0, 1);
        return;
    }
    if (xor_window(&e->lead, &e->trail, x)) {
        unsigned wlen = (unsigned)(64 - e->lead - e->trail);
        bw_put(&e->val, 0x2, 2);
        bw_put(&e->val, x >> e->trail, wlen);
        return;
    }
    int mlen = 64 - e->lead - e->trail;
    bw_put(&e->val, (UINT64_C(0x3) << 12) | ((uint64_t)e->lead << 6) | (uint64_t)(mlen - 1), 14);
    bw_put(&e->val, x >> e->trail, (unsigned)mlen);
}

static void enc_number(sr_chunk_enc *e, double f) { xor_put(e, dbl_bits(f), e->count == 0); }

/* Bytes of the version 1 value stream of n numbers' bits (as xor_put). */
static size_t xor_bytes(const uint64_t *b, uint32_t n)
{
    if (!n) return 0;
    uint64_t bits = 64;
    int wl = -1, wt = -1;
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = b[i] ^ b[i - 1];
        if (!x) bits += 1;
        else if (xor_window(&wl, &wt, x)) bits += 2 + (uint64_t)(64 - wl - wt);
        else bits += 14 + (uint64_t)(64 - wl - wt);
    }
    return (size_t)((bits + 7) / 8);
}

/* Build the version 1 stream of the numbers so far from their bits (room
 * reserved: (count + 1) * 10 + 16 bytes). */
static void xor_replay(sr_chunk_enc *e)
{
    bw_reset(&e->val);
    e->lead = e->trail = -1;
    for (uint32_t i = 0; i < e->count; i++) xor_put(e, e->vbits[i], i == 0);
}

/* Count sample i >= 1 of the mantissas in the histograms (invariant 4). */
static inline void dec_count(sr_chunk_enc *e, uint64_t d)
{
    e->hist[0][bitlen(sr_zz_enc(d))]++;
    e->hist[1][bitlen(sr_zz_enc(d - e->prev_d))]++;
    e->prev_d = d;
}

/* Raise the scale to k: exact, the caller checked max_abs * 10^(k - scale)
 * <= MANT_MAX. */
static void dec_rescale(sr_chunk_enc *e, int k)
{
    int64_t mul = pow10_int[k - e->scale];
    memset(e->hist, 0, sizeof e->hist);
    e->prev_d = 0;
    for (uint32_t i = 0; i < e->count; i++) {
        e->mant[i] *= mul;
        SR_ASSERT(dbl_bits(dec_value(e->mant[i], (unsigned)k)) ==
                  dbl_bits(dec_value(e->mant[i] / mul, (unsigned)e->scale)));
        if (i) dec_count(e, (uint64_t)e->mant[i] - (uint64_t)e->mant[i - 1]);
    }
    e->max_abs *= (uint64_t)mul;
    /* the segments' mantissa min and max (invariant 8) */
    for (size_t j = 0; j + 1 < e->nseg; j++) {
        e->seg[j].imin *= mul;
        e->seg[j].imax *= mul;
    }
    if (e->s_imin <= e->s_imax) { /* (not just opened: INT64_MAX, INT64_MIN) */
        e->s_imin *= mul;
        e->s_imax *= mul;
    }
    e->scale = k;
}

/* Sample `count`, of bits fb, is decimal at scale k >= scale with mantissa
 * m. Room for it was reserved. */
static void dec_track(sr_chunk_enc *e, int k, int64_t m, uint64_t fb)
{
    if (k > e->scale) dec_rescale(e, k);
    uint64_t a = m < 0 ? 0 - (uint64_t)m : (uint64_t)m;
    if (a > e->max_abs) e->max_abs = a;
    if (m < e->s_imin) e->s_imin = m; /* the open segment's (invariant 8) */
    if (m > e->s_imax) e->s_imax = m;
    e->mant[e->count] = m;
    e->vbits[e->count] = fb;
    if (e->count) {
        dec_count(e, (uint64_t)m - (uint64_t)e->mant[e->count - 1]);
        /* version 1 spends 1 bit on a repeat, else >= 2 + the XOR's meaningful bits */
        uint64_t x = fb ^ e->vbits[e->count - 1];
        e->lb1 += x ? 2 + (uint64_t)(64 - __builtin_clzll(x) - __builtin_ctzll(x)) : 1;
    } else {
        e->lb1 = 64;
    }
}

/* floor(ts / SEG_MS) * SEG_MS: the start of ts's hour; INT64_MIN for the
 * hour that starts below it */
static inline int64_t hour_of(int64_t ts)
{
    int64_t m = ts % SEG_MS;
    if (m < 0) m += SEG_MS;
    return ts < INT64_MIN + m ? INT64_MIN : ts - m;
}

/* The last ms of ts's hour (INT64_MAX for the hour that ends above it). */
static inline int64_t hour_hi(int64_t ts)
{
    int64_t m = ts % SEG_MS;
    if (m < 0) m += SEG_MS;
    int64_t add = SEG_MS - 1 - m;
    return ts > INT64_MAX - add ? INT64_MAX : ts + add;
}

/* The value of sample i as sr_agg_add takes it, from the encoder's state:
 * the previous sample's (i = count - 1) for integers and booleans and for
 * numbers that are not decimal; any sample's while they are decimal. */
static double enc_value(const sr_chunk_enc *e, uint32_t i)
{
    switch (e->type) {
    case SR_VT_NUMBER: return bits_dbl(e->dec_ok ? e->vbits[i] : e->prev_bits);
    case SR_VT_INTEGER: return (double)e->prev_i;
    default: return e->s_lastb;
    }
}

/* Segment j as it stands (invariant 8): the open one completed from the
 * running fold and the encoder's state. Min and max of numbers while they
 * are decimal are left to the caller (summary_build: from the mantissas). */
static enc_seg seg_get(const sr_chunk_enc *e, size_t j)
{
    enc_seg g = e->seg[j];
    if (j + 1 < e->nseg) return g;
    g.count = e->count - g.at;
    g.last_ts = e->last_ts;
    g.last = enc_value(e, e->count - 1);
    g.ilast = e->prev_i;
    g.sum = e->type == SR_VT_BOOL ? (double)e->s_ntrue : e->s_sum;
    g.min = e->s_min;
    g.max = e->s_max;
    g.imin = e->s_imin;
    g.imax = e->s_imax;
    return g;
}

/* Sample s (value v, integer iv) opens a segment: close the open one
 * (before s changes the encoder's state) and start the running fold. Room
 * was reserved. Out of line: once an hour of samples. */
static SR_NOINLINE void seg_open(sr_chunk_enc *e, const sr_sample *s, double v, int64_t iv)
{
    if (e->nseg) e->seg[e->nseg - 1] = seg_get(e, e->nseg - 1);
    e->seg_hi = hour_hi(s->ts);
    e->seg[e->nseg++] = (enc_seg){.at = e->count, .first_ts = s->ts, .first = v, .ifirst = iv};
    e->s_sum = -0.0; /* -0.0 + v is v, bit for bit (also for v = -0.0) */
    e->s_min = e->s_max = v;
    /* integers: their min and max; decimal numbers: their mantissas' (dec_track) */
    e->s_imin = e->type == SR_VT_NUMBER ? INT64_MAX : iv;
    e->s_imax = e->type == SR_VT_NUMBER ? INT64_MIN : iv;
    e->s_ntrue = 0;
}

/* Numbers turn from decimal to version 1: the min and max of every
 * segment so far, from the values' bits (summary_build takes them from the
 * mantissas while the chunk is decimal). */
static void seg_undecimal(sr_chunk_enc *e)
{
    for (size_t j = 0; j < e->nseg; j++) {
        enc_seg *g = &e->seg[j];
        uint32_t end = j + 1 < e->nseg ? g->at + g->count : e->count;
        if (end == g->at) continue; /* opened by the sample that turns the chunk (seg_open set its fold) */
        double mn = bits_dbl(e->vbits[g->at]), mx = mn;
        for (uint32_t i = g->at + 1; i < end; i++) {
            double v = bits_dbl(e->vbits[i]);
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        if (j + 1 < e->nseg) {
            g->min = mn;
            g->max = mx;
        } else {
            e->s_min = mn;
            e->s_max = mx;
        }
    }
}

/* sr_buf_reserve's answer without the call when there is room (per sample) */
static inline int room(sr_buf *b, size_t n) { return b->cap - b->len >= n ? SR_OK : sr_buf_reserve(b, n); }

int sr_chunk_enc_add(sr_chunk_enc *e, const sr_sample *s)
{
    if (!e || !s) return SR_EINVAL;
    if (s->quality > SR_Q_NO_DATA) return SR_EINVAL;
    if (e->count && s->ts <= e->last_ts) return SR_EINVAL;
    if (e->type == SR_VT_BOOL && s->v.b != 0 && s->v.b != 1) return SR_EINVAL;
    if (e->type == SR_VT_STRING && !s->v.str.s && s->v.str.slen) return SR_EINVAL;
    if (e->count == UINT32_MAX || bw_bytes(&e->ts) > UINT32_MAX - 16) return SR_ETOOBIG;

    /* (3): reserve everything this add may need before changing anything */
    int rc;
    if ((rc = room(&e->ts.b, 16))) return rc;
    if (e->count % 4 == 0 && (rc = room(&e->q, 1))) return rc;
    /* a sample after the first that opens a summary segment (a later hour;
     * strings keep seg_hi at INT64_MAX); the first sample's is seg[0], kept
     * by create (invariant 8) */
    int opens = s->ts > e->seg_hi;
    if (opens && e->nseg >= e->seg_cap &&
        (rc = sr_array_reserve(&e->seg, &e->seg_cap, e->nseg + 1, sizeof *e->seg)))
        return rc;
    int dk = -1; /* version 2: the scale of this value, -1 if it is not decimal */
    int64_t dm = 0;
    switch (e->type) {
    case SR_VT_NUMBER:
        rc = room(&e->val.b, 16);
        if (!rc && e->dec_ok) {
            if (e->count && dbl_bits(s->v.f) == e->vbits[e->count - 1]) { /* a repeat: no division */
                dk = e->scale;
                dm = e->mant[e->count - 1];
            } else {
                dk = decimal_at(s->v.f, e->scale, &dm);
                if (dk > e->scale && e->max_abs > MANT_MAX / (uint64_t)pow10_int[dk - e->scale]) dk = -1;
            }
            if (dk >= 0) {
                if (e->count >= e->mant_cap)
                    rc = sr_array_reserve(&e->mant, &e->mant_cap, (size_t)e->count + 1, sizeof *e->mant);
                if (!rc && e->count >= e->vbits_cap)
                    rc = sr_array_reserve(&e->vbits, &e->vbits_cap, (size_t)e->count + 1, sizeof *e->vbits);
            } else { /* room for the version 1 stream of every sample so far and this one */
                rc = sr_buf_reserve(&e->val.b, ((size_t)e->count + 1) * 10 + 16);
            }
        }
        break;
    case SR_VT_BOOL:
        rc = sr_buf_reserve(&e->val.b, 16);
        break;
    case SR_VT_INTEGER:
        rc = sr_buf_reserve(&e->bytes, 10);
        break;
    case SR_VT_STRING:
        rc = sr_buf_reserve(&e->bytes, 10 + (size_t)s->v.str.slen);
        if (!rc) rc = sr_buf_reserve(&e->prev_s, s->v.str.slen);
        break;
    }
    if (rc) return rc;

    if (e->count == 0 ? e->type != SR_VT_STRING : opens) /* (before the state moves on to s) */
        seg_open(e, s, e->type == SR_VT_NUMBER ? s->v.f : e->type == SR_VT_INTEGER ? (double)s->v.i : s->v.b,
                 e->type == SR_VT_INTEGER ? s->v.i : 0);
    if (e->count == 0) e->first_ts = s->ts;
    else enc_ts(e, s->ts);
    e->last_ts = s->ts;

    if (e->count % 4 == 0) e->q.data[e->q.len++] = 0;
    e->q.data[e->q.len - 1] |= (uint8_t)(s->quality << ((e->count % 4) * 2));
    if (s->quality != SR_Q_GOOD) e->any_bad = 1;

    switch (e->type) {
    case SR_VT_NUMBER:
        e->s_sum += s->v.f; /* (invariant 8: min and max of decimals come from their mantissas) */
        if (e->dec_ok && dk >= 0) {
            dec_track(e, dk, dm, dbl_bits(s->v.f));
        } else {
            if (e->dec_ok) { /* the first value that is not decimal: version 1 from now on */
                xor_replay(e);
                seg_undecimal(e);
                e->dec_ok = 0;
            }
            e->s_min = s->v.f < e->s_min ? s->v.f : e->s_min;
            e->s_max = s->v.f > e->s_max ? s->v.f : e->s_max;
            enc_number(e, s->v.f);
        }
        break;
    case SR_VT_INTEGER: {
        uint64_t z = sr_zz_enc((uint64_t)s->v.i - (uint64_t)e->prev_i);
        e->bytes.len = (size_t)(sr_varint_put(e->bytes.data + e->bytes.len, z) - e->bytes.data);
        e->prev_i = s->v.i;
        e->s_sum += (double)s->v.i;
        e->s_imin = s->v.i < e->s_imin ? s->v.i : e->s_imin;
        e->s_imax = s->v.i > e->s_imax ? s->v.i : e->s_imax;
        break;
    }
    case SR_VT_BOOL:
        bw_put(&e->val, (uint64_t)s->v.b, 1);
        e->s_ntrue += (uint32_t)s->v.b;
        e->s_lastb = s->v.b;
        break;
    case SR_VT_STRING: {
        uint32_t n = s->v.str.slen;
        if (e->count && e->prev_s.len == n && (n == 0 || !memcmp(e->prev_s.data, s->v.str.s, n))) {
            e->bytes.data[e->bytes.len++] = 1; /* same as previous */
        } else {
            e->bytes.len = (size_t)(sr_varint_put(e->bytes.data + e->bytes.len, (uint64_t)n << 1) - e->bytes.data);
            if (n) {
                memcpy(e->bytes.data + e->bytes.len, s->v.str.s, n);
                memcpy(e->prev_s.data, s->v.str.s, n);
            }
            e->bytes.len += n;
            e->prev_s.len = n;
        }
        break;
    }
    }
    e->count++;
    return SR_OK;
}

uint32_t sr_chunk_enc_count(const sr_chunk_enc *e) { return e ? e->count : 0; }

static size_t enc_val_bytes(const sr_chunk_enc *e)
{
    return (e->type == SR_VT_NUMBER || e->type == SR_VT_BOOL) ? bw_bytes(&e->val) : e->bytes.len;
}

/* The version 2 value stream the encoder would write: order 0 codes the
 * deltas, 1 the delta-of-deltas; w the base width. */
typedef struct v2_plan {
    unsigned order, w;
    uint64_t bits;  /* of the bit stream (samples 1..count-1) */
    size_t vbytes;  /* the whole value stream: coding byte, varint, bits */
} v2_plan;

/* The value stream finish writes: 1 and *p for version 2 (a number chunk,
 * at least one sample, every value decimal, and a value stream no longer
 * than version 1's), else 0 and *v1 its bytes. The code is the cheapest
 * (order, w), exactly, from the histograms; ties go to order 0, then to the
 * smaller w. The version 1 size is counted only if the bound lb1 does not
 * settle the comparison. */
static int plan_values(const sr_chunk_enc *e, v2_plan *p, size_t *v1)
{
    if (e->type != SR_VT_NUMBER || !e->count || !e->dec_ok) {
        *v1 = enc_val_bytes(e);
        return 0;
    }
    uint64_t best = UINT64_MAX;
    for (unsigned order = 0; order < 2; order++) {
        const uint32_t *h = e->hist[order];
        unsigned top = 0; /* the largest bit length present */
        for (unsigned b = 0; b < V2_NBL; b++)
            if (h[b]) top = b;
        for (unsigned w = 0; w <= V2_MAX_W; w++) {
            uint64_t bits = 0;
            for (unsigned b = 0; b <= top; b++) bits += (uint64_t)h[b] * v2_code_bits(b, w);
            if (bits < best) {
                best = bits;
                p->order = order;
                p->w = w;
            }
            if (w >= top) break; /* a larger w only costs more */
        }
    }
    p->bits = best;
    p->vbytes = 1 + sr_varint_len(sr_zz_enc((uint64_t)e->mant[0])) + (size_t)((best + 7) / 8);
    if (p->vbytes <= (e->lb1 + 7) / 8) return 1;
    *v1 = xor_bytes(e->vbits, e->count);
    return p->vbytes <= *v1;
}

static void put_le64d(uint8_t *p, double f) { sr_put_le64(p, dbl_bits(f)); }

/* One value of a summary field (docs/series-format.md, "Version 3"): a
 * decimal's mantissa m or a double; an integer; a boolean. */
static uint8_t *put_sval(uint8_t *w, sr_vtype t, int decimal, int64_t m, double v, int64_t iv)
{
    if (t == SR_VT_BOOL) {
        *w++ = v != 0;
        return w;
    }
    if (t == SR_VT_INTEGER) return sr_varint_put(w, sr_zz_enc((uint64_t)iv));
    if (decimal) return sr_varint_put(w, sr_zz_enc((uint64_t)m));
    put_le64d(w, v);
    return w + 8;
}

/* The summary section of a version 3 chunk (docs/series-format.md,
 * "Version 3") in buf: its length, or 0 when the chunk has none (it is then
 * written as version 1 or 2). One segment an hour if the samples fall in
 * 2..SR_CHUNK_MAXSEG hours and that fits the length byte, else one segment
 * of all of them (its sum: the hours' sums added in order). decimal: the
 * value stream is version 2's, so values are written as mantissas at
 * e->scale. Decimal numbers (dec_ok) take min and max from the mantissas
 * whichever stream is written (invariant 8). */
static size_t summary_build(const sr_chunk_enc *e, int decimal, uint8_t buf[SUM_CAP])
{
    if (e->type == SR_VT_STRING || !e->count || e->s_off) return 0;
    SR_ASSERT(e->nseg >= 1);
    /* a BAD or NO_DATA sample (a quality code >= 2: its high bit) */
    if (e->any_bad)
        for (size_t i = 0; i < e->q.len; i++)
            if (e->q.data[i] & 0xAA) return 0;
    /* a NaN (the fold of min and max is then not associative); +Inf and
     * -Inf in one hour also make a NaN sum, and no summary */
    for (size_t j = 0; j < e->nseg; j++) {
        double sum = seg_get(e, j).sum;
        if (sum != sum) return 0;
    }
    for (int one = e->nseg > SR_CHUNK_MAXSEG || e->nseg == 1;; one = 1) {
        size_t nout = one ? 1 : e->nseg;
        uint8_t *w = buf + 1;
        *w++ = (uint8_t)nout;
        uint32_t at = 0; /* the first sample of segment j */
        for (size_t j = 0; j < nout; j++) {
            enc_seg g = seg_get(e, j);
            if (one) /* all hours into one segment */
                for (size_t h = 1; h < e->nseg; h++) {
                    enc_seg xs = seg_get(e, h);
                    const enc_seg *x = &xs;
                    g.count += x->count;
                    g.last_ts = x->last_ts;
                    g.min = x->min < g.min ? x->min : g.min;
                    g.max = x->max > g.max ? x->max : g.max;
                    g.sum += x->sum;
                    g.last = x->last;
                    g.ilast = x->ilast;
                    g.imin = x->imin < g.imin ? x->imin : g.imin;
                    g.imax = x->imax > g.imax ? x->imax : g.imax;
                }
            int64_t mlo = 0, mhi = 0, mfirst = 0, mlast = 0;
            if (e->type == SR_VT_NUMBER && e->dec_ok) { /* (also when version 1 codes them shorter) */
                mfirst = e->mant[at];
                mlast = e->mant[at + g.count - 1];
                mlo = g.imin; /* (dec_track's) */
                mhi = g.imax;
                /* m / 10^k never decreases as m grows, and no decimal is NaN or -0.0 */
                g.min = dec_value(mlo, (unsigned)e->scale);
                g.max = dec_value(mhi, (unsigned)e->scale);
            }
            if (j + 1 < nout) {
                const enc_seg *nx = &e->seg[j + 1]; /* (its first_ts) */
                w = sr_varint_put(w, g.count);
                w = sr_varint_put(w, (uint64_t)g.last_ts - (uint64_t)g.first_ts);
                w = sr_varint_put(w, (uint64_t)nx->first_ts - (uint64_t)g.last_ts);
            }
            if (j > 0) w = put_sval(w, e->type, decimal, mfirst, g.first, g.ifirst);
            if (e->type == SR_VT_BOOL) { /* the number of trues (exact: < 2^32), the last value */
                w = sr_varint_put(w, (uint64_t)g.sum);
                *w++ = g.last != 0;
            } else {
                w = put_sval(w, e->type, decimal, mlo, g.min, g.imin);
                w = put_sval(w, e->type, decimal, mhi, g.max, g.imax);
                w = put_sval(w, e->type, decimal, mlast, g.last, g.ilast);
                put_le64d(w, g.sum);
                w += 8;
            }
            at += g.count;
        }
        size_t n = (size_t)(w - buf - 1);
        if (n <= 255 || one) {
            SR_ASSERT(n <= 255);
            buf[0] = (uint8_t)n;
            return n + 1;
        }
    }
}

size_t sr_chunk_enc_bytes(const sr_chunk_enc *e)
{
    if (!e) return 0;
    v2_plan pl;
    size_t v1 = 0;
    int v2 = plan_values(e, &pl, &v1);
    size_t vn = v2 ? pl.vbytes : v1;
    uint8_t sb[SUM_CAP];
    return HDR_LEN + summary_build(e, v2, sb) + (e->any_bad ? e->q.len : 0) + bw_bytes(&e->ts) + vn;
}

/* One version 2 code of zigzag value z < 2^56 (room reserved). */
static inline void v2_put(bitw *w, uint64_t z, unsigned base)
{
    unsigned b = bitlen(z);
    if (b <= base) bw_put(w, (UINT64_C(1) << base) | z, base + 1);
    else if (b - base < V2_ESC_ZEROS) bw_put(w, z, 2 * b - base); /* b - base zeros, then z's b bits */
    else {
        bw_put(w, 0, V2_ESC_ZEROS);
        bw_put(w, z, V2_ESC_BITS);
    }
}

/* Build the version 2 value bits of the plan in e->v2 (room reserved). */
static void v2_build(sr_chunk_enc *e, const v2_plan *p)
{
    bw_reset(&e->v2);
    uint64_t pd = 0;
    for (uint32_t i = 1; i < e->count; i++) {
        uint64_t d = (uint64_t)e->mant[i] - (uint64_t)e->mant[i - 1];
        v2_put(&e->v2, sr_zz_enc(p->order ? d - pd : d), p->w);
        pd = d;
    }
}

int sr_chunk_enc_finish(sr_chunk_enc *e, sr_buf *out)
{
    if (!e || !out) return SR_EINVAL;
    v2_plan pl;
    size_t v1n = 0;
    int v2 = plan_values(e, &pl, &v1n);
    /* decimal numbers that version 1 codes shorter: build that stream now */
    int replay = !v2 && e->type == SR_VT_NUMBER && e->count && e->dec_ok;
    size_t qn = e->any_bad ? e->q.len : 0, tn = bw_bytes(&e->ts), vn = v2 ? pl.vbytes : v1n;
    uint8_t sb[SUM_CAP];
    size_t sn = summary_build(e, v2, sb);
    size_t total = HDR_LEN + sn + qn + tn + vn;
    int rc = SR_OK;
    if (v2) rc = sr_buf_reserve(&e->v2.b, (size_t)(pl.bits / 8) + 16);
    if (replay) rc = sr_buf_reserve(&e->val.b, ((size_t)e->count + 1) * 10 + 16);
    if (!rc) rc = sr_buf_reserve(out, total);
    if (rc) return rc;
    if (replay) {
        xor_replay(e);
        SR_VERIFY(bw_bytes(&e->val) == v1n);
    }
    uint8_t *p = out->data + out->len;
    p[0] = sn ? SR_SERIES_VERSION3 : v2 ? SR_SERIES_VERSION2 : SR_SERIES_VERSION;
    p[1] = (uint8_t)e->type;
    p[2] = (uint8_t)((e->any_bad ? 0 : FLAG_ALL_GOOD) | (sn && v2 ? FLAG_DECIMAL : 0));
    p[3] = v2 ? (uint8_t)e->scale : 0;
    sr_put_le32(p + 4, e->count);
    sr_put_le64(p + 8, (uint64_t)e->first_ts);
    sr_put_le64(p + 16, (uint64_t)e->last_ts);
    sr_put_le32(p + 24, (uint32_t)tn);
    sr_put_le32(p + 28, 0);
    uint8_t *w = p + HDR_LEN;
    if (sn) memcpy(w, sb, sn);
    w += sn;
    if (qn) memcpy(w, e->q.data, qn);
    w += qn;
    bw_copy(&e->ts, w);
    w += tn;
    if (v2) {
        v2_build(e, &pl);
        SR_VERIFY(bw_bytes(&e->v2) == (size_t)((pl.bits + 7) / 8)); /* the plan is what we write */
        *w++ = (uint8_t)(pl.w | (pl.order << 5));
        w = sr_varint_put(w, sr_zz_enc((uint64_t)e->mant[0]));
        bw_copy(&e->v2, w);
    } else if (e->type == SR_VT_NUMBER || e->type == SR_VT_BOOL) {
        bw_copy(&e->val, w);
    } else if (vn) {
        memcpy(w, e->bytes.data, vn);
    }
    uint32_t crc = sr_crc32c(0, p, 28);
    crc = sr_crc32c(crc, p + HDR_LEN, total - HDR_LEN);
    sr_put_le32(p + 28, crc);
    out->len += total;
    SR_INVARIANT(sn ? sr_chunk_summary_check(p, total) : NULL);
    enc_reset(e);
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Header                                                                    */

/* Header checks that need no body bytes (but the summary's length byte);
 * *sn, *qn and *tn get the section sizes (*sn: the summary section with its
 * length byte, 0 if none), *dec whether the value stream is version 2's. */
static int hdr_parse(const uint8_t *p, size_t len, sr_chunk_info *info, size_t *sn, size_t *qn, size_t *tn,
                     int *dec)
{
    if (!p || len < HDR_LEN) return SR_ECORRUPT;
    if (p[0] != SR_SERIES_VERSION && p[0] != SR_SERIES_VERSION2 && p[0] != SR_SERIES_VERSION3) return SR_EVERSION;
    int v3 = p[0] == SR_SERIES_VERSION3;
    if (!valid_type(p[1]) || (p[2] & ~(v3 ? FLAG_ALL_GOOD | FLAG_DECIMAL : FLAG_ALL_GOOD))) return SR_ECORRUPT;
    int v2 = p[0] == SR_SERIES_VERSION2 || (p[2] & FLAG_DECIMAL);
    /* byte 3: reserved (0) in version 1, the scale k in version 2 */
    if (v2 ? (p[1] != SR_VT_NUMBER || p[3] > V2_MAX_SCALE) : p[3] != 0) return SR_ECORRUPT;
    size_t s = 0;
    if (v3) { /* a summary section: never of strings nor of an empty chunk */
        if (p[1] == SR_VT_STRING || len < HDR_LEN + 1 || !sr_get_le32(p + 4)) return SR_ECORRUPT;
        s = 1 + (size_t)p[HDR_LEN];
        if (s < 2 || len - HDR_LEN < s) return SR_ECORRUPT;
        len -= s; /* the rules below are version 1's, on the rest */
    }
    uint32_t count = sr_get_le32(p + 4);
    int64_t first = (int64_t)sr_get_le64(p + 8), last = (int64_t)sr_get_le64(p + 16);
    uint32_t tbytes = sr_get_le32(p + 24);
    size_t q = (p[2] & FLAG_ALL_GOOD) ? 0 : qbytes_for(count);
    if (count == 0) {
        if (v2 || first || last || tbytes || !(p[2] & FLAG_ALL_GOOD) || len != HDR_LEN) return SR_ECORRUPT;
    } else {
        if (count == 1 ? first != last : first >= last) return SR_ECORRUPT;
        if ((count == 1) != (tbytes == 0)) return SR_ECORRUPT;
        /* every sample after the first costs >= 1 timestamp bit */
        if ((uint64_t)count - 1 > (uint64_t)tbytes * 8) return SR_ECORRUPT;
        /* and >= 1 value bit (>= 1 byte for byte streams) */
        if (len - HDR_LEN < q || len - HDR_LEN - q < tbytes) return SR_ECORRUPT;
        size_t vn = len - HDR_LEN - q - tbytes;
        if (vn == 0 || (uint64_t)count > (uint64_t)vn * 8) return SR_ECORRUPT;
        /* version 2: a coding byte, a varint, then >= 1 bit a later sample */
        if (v2 && (vn < 2 || (uint64_t)count - 1 > (uint64_t)(vn - 2) * 8)) return SR_ECORRUPT;
    }
    info->type = (sr_vtype)p[1];
    info->count = count;
    info->first_ts = first;
    info->last_ts = last;
    *sn = s;
    *qn = q;
    *tn = tbytes;
    *dec = v2;
    return SR_OK;
}

int sr_chunk_info_get(const void *chunk, size_t len, sr_chunk_info *out)
{
    if (!out) return SR_EINVAL;
    sr_chunk_info info;
    size_t sn, qn, tn;
    int dec;
    int rc = hdr_parse(chunk, len, &info, &sn, &qn, &tn, &dec);
    if (rc) return rc;
    *out = info;
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */

/* reserved[] slots used by the decoder */
#define D_VPOS reserved[0]  /* value stream position: bits (numbers, bools) or bytes */
#define D_VER reserved[1]   /* format version, 1 or 2 */
#define D_SCALE reserved[2] /* version 2: k */
#define D_W reserved[3]     /* version 2: base width w */
#define D_ORDER reserved[4] /* version 2: 0 deltas, 1 delta-of-deltas */
#define D_D reserved[5]     /* version 2: the previous delta (order 1) */
#define D_SOFF reserved[6]  /* version 3: offset of the summary's fields (0: no summary) */
#define D_SLEN reserved[7]  /* version 3: their length */
/* version 2 keeps the previous mantissa in prev_i */

/* Up to 57 bits at bit position pos, left-aligned in *w; returns how many of
 * them lie before the stream end `end` (bits). Bits past the return value
 * are unspecified (but never read outside the chunk). */
static inline unsigned peek(const uint8_t *p, size_t len, uint64_t pos, uint64_t end, uint64_t *w)
{
    size_t byte = (size_t)(pos >> 3);
    uint64_t v;
    if (byte + 8 <= len) {
        v = load_be64(p + byte);
    } else {
        uint8_t tmp[8] = {0};
        if (byte < len) memcpy(tmp, p + byte, len - byte);
        v = load_be64(tmp);
    }
    *w = v << (pos & 7);
    uint64_t left = end - pos;
    return left < 57 ? (unsigned)left : 57;
}

/* Read n bits (0..64) as an unsigned value. */
static inline int getbits(const uint8_t *p, size_t len, uint64_t *pos, uint64_t end, unsigned n, uint64_t *out)
{
    if (n == 0) {
        *out = 0;
        return SR_OK;
    }
    if (end - *pos < n) return SR_ECORRUPT;
    uint64_t w;
    if (n <= 57) {
        (void)peek(p, len, *pos, end, &w);
        *out = w >> (64 - n);
        *pos += n;
        return SR_OK;
    }
    (void)peek(p, len, *pos, end, &w);
    uint64_t hi = w >> 32;
    *pos += 32;
    (void)peek(p, len, *pos, end, &w);
    *out = (hi << (n - 32)) | (w >> (96 - n));
    *pos += n - 32;
    return SR_OK;
}

/* A stream ends exactly: fewer than 8 bits left, all zero. */
static int stream_ends(const uint8_t *p, size_t len, uint64_t pos, uint64_t end)
{
    if (end - pos >= 8) return 0;
    if (end == pos) return 1;
    uint64_t w;
    (void)peek(p, len, pos, end, &w);
    return (w >> (64 - (end - pos))) == 0;
}

static int get_varint(const uint8_t *p, size_t len, uint64_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = (size_t)*pos;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (i >= len) return SR_ECORRUPT;
        uint8_t b = p[i++];
        if (shift == 63 && b > 1) return SR_ECORRUPT;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *pos = i;
            *out = v;
            return SR_OK;
        }
    }
    return SR_ECORRUPT;
}

int sr_chunk_dec_init(sr_chunk_dec *d, const void *chunk, size_t len)
{
    if (!d) return SR_EINVAL;
    const uint8_t *p = chunk;
    sr_chunk_info info;
    size_t sn, qn, tn;
    int dec;
    int rc = hdr_parse(p, len, &info, &sn, &qn, &tn, &dec);
    if (rc) return rc;
    uint32_t crc = sr_crc32c(0, p, 28);
    crc = sr_crc32c(crc, p + HDR_LEN, len - HDR_LEN);
    if (crc != sr_get_le32(p + 28)) return SR_ECORRUPT;
    size_t qoff = HDR_LEN + sn;
    if (qn && (info.count % 4) && (p[qoff + qn - 1] >> ((info.count % 4) * 2))) return SR_ECORRUPT;
    memset(d, 0, sizeof *d);
    d->p = p;
    d->len = len;
    d->info = info;
    d->i = 0;
    d->D_SOFF = sn ? HDR_LEN + 1 : 0; /* the summary's fields, parsed when used */
    d->D_SLEN = sn ? sn - 1 : 0;
    d->qoff = qn ? qoff : 0;
    d->bitpos = (uint64_t)(qoff + qn) * 8;
    d->boff = qoff + qn + tn;
    d->ts = info.first_ts;
    d->dts = 0;
    d->lead = d->trail = -1;
    d->D_VPOS = (info.type == SR_VT_NUMBER || info.type == SR_VT_BOOL) ? (uint64_t)d->boff * 8 : d->boff;
    d->D_VER = dec ? SR_SERIES_VERSION2 : SR_SERIES_VERSION; /* the value stream's */
    if (dec) { /* coding byte and the first mantissa */
        uint8_t c = p[d->boff];
        uint64_t pos = d->boff + 1, z;
        if ((c & 31) > V2_MAX_W || (c >> 6)) return SR_ECORRUPT;
        if (get_varint(p, len, &pos, &z)) return SR_ECORRUPT;
        if (!mant_ok(sr_zz_dec(z))) return SR_ECORRUPT;
        d->D_SCALE = p[3];
        d->D_W = c & 31;
        d->D_ORDER = (c >> 5) & 1;
        d->D_D = 0;
        d->prev_i = (int64_t)sr_zz_dec(z);
        d->D_VPOS = pos * 8;
    }
    return SR_OK;
}

static SR_INLINE int dec_ts(sr_chunk_dec *d)
{
    const uint64_t end = (uint64_t)d->boff * 8;
    uint64_t w, z;
    unsigned avail = peek(d->p, d->len, d->bitpos, end, &w);
    if (avail == 0) return SR_ECORRUPT;
    if (!(w >> 63)) {
        z = 0;
        d->bitpos += 1;
    } else {
        unsigned ones = (~w >> 59) ? (unsigned)__builtin_clzll(~w) : 5; /* leading 1s, at most 5 */
        static const unsigned width[6] = {0, 7, 9, 12, 32, 64};
        unsigned pre = ones == 5 ? 5 : ones + 1, n = width[ones];
        if (ones < 5) {
            if (avail < pre + n) return SR_ECORRUPT;
            z = (w << pre) >> (64 - n);
            d->bitpos += pre + n;
        } else {
            if (avail < 5) return SR_ECORRUPT;
            d->bitpos += 5;
            if (getbits(d->p, d->len, &d->bitpos, end, 64, &z)) return SR_ECORRUPT;
        }
    }
    uint64_t delta = (uint64_t)d->dts + sr_zz_dec(z);
    uint64_t room = (uint64_t)d->info.last_ts - (uint64_t)d->ts; /* true value, >= 0 */
    if (delta == 0 || delta > room) return SR_ECORRUPT;
    if (d->i + 1 < d->info.count && delta == room) return SR_ECORRUPT;
    d->dts = (int64_t)delta;
    d->ts = (int64_t)((uint64_t)d->ts + delta);
    return SR_OK;
}

static SR_INLINE int dec_number(sr_chunk_dec *d, double *out)
{
    const uint64_t end = (uint64_t)d->len * 8;
    uint64_t pos = d->D_VPOS, w, x;
    if (d->i == 0) {
        if (getbits(d->p, d->len, &pos, end, 64, &x)) return SR_ECORRUPT;
        d->prev_bits = x;
        d->D_VPOS = pos;
        *out = bits_dbl(x);
        return SR_OK;
    }
    unsigned avail = peek(d->p, d->len, pos, end, &w);
    if (avail == 0) return SR_ECORRUPT;
    if (!(w >> 63)) {
        pos += 1;
    } else {
        if (avail < 2) return SR_ECORRUPT;
        unsigned mlen;
        if (!((w >> 62) & 1)) { /* '10': previous window */
            if (d->lead < 0) return SR_ECORRUPT;
            mlen = (unsigned)(64 - d->lead - d->trail);
            if (mlen <= 55 && avail >= 2 + mlen) {
                x = (w << 2) >> (64 - mlen);
                pos += 2 + mlen;
            } else {
                pos += 2;
                if (getbits(d->p, d->len, &pos, end, mlen, &x)) return SR_ECORRUPT;
            }
        } else { /* '11': new window */
            if (avail < 14) return SR_ECORRUPT;
            unsigned lead = (unsigned)(w >> 56) & 63;
            mlen = ((unsigned)(w >> 50) & 63) + 1;
            if (lead + mlen > 64) return SR_ECORRUPT;
            d->lead = (int)lead;
            d->trail = (int)(64 - lead - mlen);
            if (mlen <= 43 && avail >= 14 + mlen) {
                x = (w << 14) >> (64 - mlen);
                pos += 14 + mlen;
            } else {
                pos += 14;
                if (getbits(d->p, d->len, &pos, end, mlen, &x)) return SR_ECORRUPT;
            }
        }
        d->prev_bits ^= x << d->trail;
    }
    d->D_VPOS = pos;
    *out = bits_dbl(d->prev_bits);
    return SR_OK;
}

/* Version 2: the next mantissa (invariant 7). A code is j < 16 leading
 * zeros then, for j = 0, '1' + w bits of z; for j >= 1, z's w + j bits
 * (whose top bit is the '1'); or 16 zeros and z in 56 bits. */
static SR_INLINE int dec_decimal(sr_chunk_dec *d, double *out)
{
    if (d->i > 0) {
        const uint64_t end = (uint64_t)d->len * 8;
        uint64_t pos = d->D_VPOS, w, z;
        unsigned avail = peek(d->p, d->len, pos, end, &w);
        unsigned j = (unsigned)__builtin_clzll(w | 1); /* w = 0: 63, an escape like any j >= 16 */
        if (j < V2_ESC_ZEROS) {
            unsigned start = j + (j == 0), n = (unsigned)d->D_W + j; /* z's bits: [start, start + n) */
            if (start + n > avail) return SR_ECORRUPT;
            z = ((w << start) >> 1) >> (63 - n);
            pos += start + n;
        } else {
            if (end - pos < V2_ESC_ZEROS + V2_ESC_BITS) return SR_ECORRUPT;
            pos += V2_ESC_ZEROS;
            if (getbits(d->p, d->len, &pos, end, V2_ESC_BITS, &z)) return SR_ECORRUPT;
        }
        uint64_t delta = sr_zz_dec(z);
        if (d->D_ORDER) delta = d->D_D += delta;
        uint64_t m = (uint64_t)d->prev_i + delta;
        if (!mant_ok(m)) return SR_ECORRUPT;
        d->prev_i = (int64_t)m;
        d->D_VPOS = pos;
    }
    *out = dec_value(d->prev_i, (unsigned)d->D_SCALE);
    return SR_OK;
}

static int dec_string(sr_chunk_dec *d)
{
    uint64_t pos = d->D_VPOS, h;
    if (get_varint(d->p, d->len, &pos, &h)) return SR_ECORRUPT;
    if (h & 1) {
        if (h != 1 || d->i == 0) return SR_ECORRUPT;
    } else {
        uint64_t n = h >> 1;
        if (n > UINT32_MAX || n > d->len - pos) return SR_ECORRUPT;
        d->prev_s = (const char *)d->p + pos;
        d->prev_slen = (uint32_t)n;
        pos += n;
    }
    d->D_VPOS = pos;
    return SR_OK;
}

int sr_chunk_dec_next(sr_chunk_dec *d, sr_sample *s)
{
    if (!d || !s) return SR_EINVAL;
    if (d->i >= d->info.count) return SR_DONE;
    if (d->i > 0 && dec_ts(d)) return SR_ECORRUPT;
    uint8_t q = d->qoff ? (uint8_t)((d->p[d->qoff + d->i / 4] >> ((d->i % 4) * 2)) & 3) : SR_Q_GOOD;
    /* The value goes to locals and then field by field to *s: building a
     * whole sr_sample on the stack and copying it stalls store forwarding. */
    double f = 0;
    int64_t iv = 0;
    int b = 0;
    switch (d->info.type) {
    case SR_VT_NUMBER:
        if (d->D_VER == SR_SERIES_VERSION2 ? dec_decimal(d, &f) : dec_number(d, &f)) return SR_ECORRUPT;
        break;
    case SR_VT_INTEGER: {
        uint64_t z, pos = d->D_VPOS;
        if (get_varint(d->p, d->len, &pos, &z)) return SR_ECORRUPT;
        d->prev_i = (int64_t)((uint64_t)d->prev_i + sr_zz_dec(z));
        d->D_VPOS = pos;
        iv = d->prev_i;
        break;
    }
    case SR_VT_BOOL: {
        uint64_t bit, pos = d->D_VPOS;
        if (getbits(d->p, d->len, &pos, (uint64_t)d->len * 8, 1, &bit)) return SR_ECORRUPT;
        d->D_VPOS = pos;
        b = (int)bit;
        break;
    }
    case SR_VT_STRING:
        if (dec_string(d)) return SR_ECORRUPT;
        break;
    }
    if (d->i + 1 == d->info.count) { /* (6): exact ends */
        if (d->ts != d->info.last_ts) return SR_ECORRUPT;
        if (!stream_ends(d->p, d->len, d->bitpos, (uint64_t)d->boff * 8)) return SR_ECORRUPT;
        if (d->info.type == SR_VT_NUMBER || d->info.type == SR_VT_BOOL) {
            if (!stream_ends(d->p, d->len, d->D_VPOS, (uint64_t)d->len * 8)) return SR_ECORRUPT;
        } else if (d->D_VPOS != d->len) {
            return SR_ECORRUPT;
        }
    }
    d->i++;
    s->ts = d->ts;
    s->quality = q;
    switch (d->info.type) {
    case SR_VT_NUMBER: s->v.f = f; break;
    case SR_VT_INTEGER: s->v.i = iv; break;
    case SR_VT_BOOL: s->v.b = b; break;
    case SR_VT_STRING:
        s->v.str.s = d->prev_s;
        s->v.str.slen = d->prev_slen;
        break;
    }
    return SR_OK;
}

/* One value of a summary field (put_sval's): 0, or -1 if malformed. */
static int get_sval(const uint8_t *p, size_t end, uint64_t *pos, const sr_chunk_dec *d, double *v)
{
    if (d->info.type == SR_VT_BOOL) {
        if (*pos >= end || p[*pos] > 1) return -1;
        *v = p[(*pos)++];
        return 0;
    }
    if (d->info.type == SR_VT_INTEGER || d->D_VER == SR_SERIES_VERSION2) {
        uint64_t z;
        if (get_varint(p, end, pos, &z)) return -1;
        uint64_t m = sr_zz_dec(z);
        if (d->info.type == SR_VT_INTEGER) *v = (double)(int64_t)m;
        else if (!mant_ok(m)) return -1;
        else *v = dec_value((int64_t)m, (unsigned)d->D_SCALE);
        return 0;
    }
    if (end - *pos < 8) return -1;
    *v = bits_dbl(sr_get_le64(p + *pos));
    *pos += 8;
    return *v == *v ? 0 : -1; /* no summary holds a NaN value */
}

/* The summary section (docs/series-format.md, "Version 3"), every rule
 * checked; the first value of segment 0 is the chunk's sample 0. */
static int summary_parse(const sr_chunk_dec *d, sr_chunk_summary *out)
{
    const uint8_t *p = d->p;
    const size_t end = (size_t)(d->D_SOFF + d->D_SLEN);
    uint64_t pos = d->D_SOFF, u;
    if (pos >= end || p[pos] < 1 || p[pos] > SR_CHUNK_MAXSEG) return SR_ECORRUPT;
    uint32_t nseg = p[pos++], left = d->info.count;
    int64_t ts = d->info.first_ts;
    for (uint32_t j = 0; j < nseg; j++) {
        sr_chunk_seg *g = &out->seg[j];
        g->first_ts = ts;
        if (j + 1 < nseg) {
            uint64_t dl, dg;
            if (get_varint(p, end, &pos, &u) || get_varint(p, end, &pos, &dl) || get_varint(p, end, &pos, &dg))
                return SR_ECORRUPT;
            /* count >= 1 leaving >= 1 for each later segment; strictly increasing timestamps */
            uint64_t room = (uint64_t)d->info.last_ts - (uint64_t)ts;
            if (u < 1 || u > (uint64_t)left - (nseg - 1 - j) || dl < u - 1 || dl > room || dg < 1 ||
                dg > room - dl)
                return SR_ECORRUPT;
            g->count = (uint32_t)u;
            g->last_ts = (int64_t)((uint64_t)ts + dl);
            ts = (int64_t)((uint64_t)g->last_ts + dg);
            /* one hour a segment, each a later one */
            if (hour_of(g->first_ts) != hour_of(g->last_ts) || hour_of(g->last_ts) == hour_of(ts)) return SR_ECORRUPT;
        } else {
            g->count = left;
            g->last_ts = d->info.last_ts;
            if ((uint64_t)g->last_ts - (uint64_t)ts < (uint64_t)left - 1) return SR_ECORRUPT;
            if (nseg > 1 && hour_of(g->first_ts) != hour_of(g->last_ts)) return SR_ECORRUPT;
        }
        left -= g->count;
        if (j > 0 && get_sval(p, end, &pos, d, &g->first)) return SR_ECORRUPT;
        if (d->info.type == SR_VT_BOOL) {
            if (get_varint(p, end, &pos, &u) || u > g->count || pos >= end || p[pos] > 1) return SR_ECORRUPT;
            g->last = p[pos++];
            g->sum = (double)u;
            g->min = u == g->count;
            g->max = u > 0;
        } else {
            if (get_sval(p, end, &pos, d, &g->min) || get_sval(p, end, &pos, d, &g->max) ||
                get_sval(p, end, &pos, d, &g->last) || end - pos < 8)
                return SR_ECORRUPT;
            g->sum = bits_dbl(sr_get_le64(p + pos)); /* (may be NaN: +Inf + -Inf) */
            pos += 8;
            if (g->max < g->min) return SR_ECORRUPT;
        }
    }
    if (pos != end) return SR_ECORRUPT;
    /* the first value of the chunk: sample 0's, read without its neighbours */
    sr_chunk_dec t = *d;
    sr_sample x;
    if (sr_chunk_dec_next(&t, &x)) return SR_ECORRUPT;
    out->seg[0].first = d->info.type == SR_VT_NUMBER    ? x.v.f
                        : d->info.type == SR_VT_INTEGER ? (double)x.v.i
                                                        : (double)(x.v.b != 0);
    out->nseg = nseg;
    return SR_OK;
}

int sr_chunk_strip_summary(const void *chunk, size_t len, sr_buf *out)
{
    const uint8_t *p = chunk;
    if (!out || (len && !p)) return SR_EINVAL;
    size_t sn = len > HDR_LEN && p[0] == SR_SERIES_VERSION3 ? 1 + (size_t)p[HDR_LEN] : 0;
    if (!sn || len - HDR_LEN < sn) return sr_buf_append(out, p, len); /* (corrupt or not version 3: as it is) */
    size_t at = out->len;
    int rc = sr_buf_reserve(out, len - sn);
    if (rc) return rc;
    uint8_t *w = out->data + at;
    memcpy(w, p, HDR_LEN);
    memcpy(w + HDR_LEN, p + HDR_LEN + sn, len - HDR_LEN - sn);
    w[0] = (p[2] & FLAG_DECIMAL) ? SR_SERIES_VERSION2 : SR_SERIES_VERSION;
    w[2] = p[2] & FLAG_ALL_GOOD;
    uint32_t crc = sr_crc32c(0, w, 28);
    crc = sr_crc32c(crc, w + HDR_LEN, len - sn - HDR_LEN);
    sr_put_le32(w + 28, crc);
    out->len += len - sn;
    return SR_OK;
}

int sr_chunk_dec_summary(const sr_chunk_dec *d, sr_chunk_summary *out)
{
    if (!d || !out || d->i) return SR_EINVAL;
    if (!d->D_SOFF) return SR_ENOTFOUND;
    return summary_parse(d, out);
}

const char *sr_chunk_summary_check(const void *chunk, size_t len)
{
    sr_chunk_dec d;
    if (sr_chunk_dec_init(&d, chunk, len)) return "the chunk does not decode";
    if (!d.D_SOFF) {
        sr_chunk_dec r = d;
        sr_sample x;
        int rc;
        while ((rc = sr_chunk_dec_next(&r, &x)) == SR_OK) {
        }
        if (rc != SR_DONE) return "the chunk does not decode";
        return ((const uint8_t *)chunk)[0] == SR_SERIES_VERSION3 ? "version 3 without a summary" : NULL;
    }
    sr_chunk_summary sm;
    if (summary_parse(&d, &sm)) return "the summary breaks a rule of the format";
    /* the samples, hour by hour (h: the hour's segment; all: the whole chunk) */
    sr_chunk_seg h[SR_CHUNK_MAXSEG], all = {0};
    uint32_t nh = 0, n = 0, done = 0;
    double hs = 0, total = 0;
    sr_chunk_dec r = d;
    sr_sample x;
    int rc;
    while ((rc = sr_chunk_dec_next(&r, &x)) == SR_OK) {
        double v = d.info.type == SR_VT_NUMBER ? x.v.f : d.info.type == SR_VT_INTEGER ? (double)x.v.i : x.v.b;
        if (v != v || x.quality > SR_Q_UNCERTAIN) return "a summary of a NaN or a dropped sample";
        sr_chunk_seg one = {.count = 1, .first_ts = x.ts, .last_ts = x.ts, .min = v, .max = v, .sum = v,
                            .first = v, .last = v};
        int newh = !n || hour_of(x.ts) != hour_of(all.last_ts);
        if (newh && nh < SR_CHUNK_MAXSEG) h[nh] = one;
        else if (!newh && nh <= SR_CHUNK_MAXSEG) {
            sr_chunk_seg *g = &h[nh - 1];
            g->count++;
            g->last_ts = x.ts;
            g->min = v < g->min ? v : g->min;
            g->max = v > g->max ? v : g->max;
            g->sum += v;
            g->last = v;
        }
        if (newh) nh++;
        /* all: the hours' sums (hs, the current hour's) added in order */
        if (!n) {
            hs = v;
        } else if (newh) {
            total = done++ ? total + hs : hs;
            hs = v;
        } else {
            hs += v;
        }
        if (!n) {
            all = one;
        } else {
            all.count++;
            all.last_ts = x.ts;
            all.min = v < all.min ? v : all.min;
            all.max = v > all.max ? v : all.max;
            all.last = v;
        }
        n++;
    }
    if (rc != SR_DONE) return "the chunk does not decode";
    all.sum = done ? total + hs : hs;
    const sr_chunk_seg *want = h;
    if (sm.nseg == 1) want = &all;
    else if (sm.nseg != nh) return "summary: the number of segments is neither 1 nor the number of hours";
    for (uint32_t j = 0; j < sm.nseg; j++) {
        const sr_chunk_seg *a = &sm.seg[j], *b = &want[j];
        if (a->count != b->count || a->first_ts != b->first_ts || a->last_ts != b->last_ts) return "summary: a segment's samples";
        if (dbl_bits(a->min) != dbl_bits(b->min)) return "summary min";
        if (dbl_bits(a->max) != dbl_bits(b->max)) return "summary max";
        if (dbl_bits(a->sum) != dbl_bits(b->sum)) return "summary sum";
        if (dbl_bits(a->first) != dbl_bits(b->first)) return "summary first";
        if (dbl_bits(a->last) != dbl_bits(b->last)) return "summary last";
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Merge                                                                     */

typedef struct ts_idx {
    int64_t ts;
    size_t idx;
} ts_idx;

static int ts_idx_cmp(const void *a, const void *b)
{
    const ts_idx *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The merge; balanced: one chunk up to max_count + max_count / 4 samples,
 * else ceil(n / max_count) chunks of equal size (+-1), in place of full
 * chunks and a short last one (see sr_chunk_merge_balanced). */
static int chunk_merge(sr_vtype type, const void *chunk, size_t len, const sr_sample *add, size_t nadd,
                       uint32_t max_count, int balanced, sr_buf *out, size_t *nchunks)
{
    if (!valid_type((int)type) || !max_count || !out || !nchunks || (nadd && !add)) return SR_EINVAL;
    if (nadd > SIZE_MAX / (2 * sizeof(sr_sample))) return SR_ENOMEM;
    int rc = SR_OK;
    size_t orig_len = out->len, nout = 0, nold = 0;
    sr_sample *old = NULL;
    ts_idx *ord = NULL;
    const sr_sample **res = NULL;
    sr_chunk_enc *e = NULL;

    if (chunk && len) {
        sr_chunk_dec d;
        if ((rc = sr_chunk_dec_init(&d, chunk, len))) goto done;
        if (d.info.type != type) {
            rc = SR_EINVAL;
            goto done;
        }
        old = sr_malloc((size_t)d.info.count * sizeof *old);
        if (!old) {
            rc = SR_ENOMEM;
            goto done;
        }
        while ((rc = sr_chunk_dec_next(&d, &old[nold])) == SR_OK) nold++;
        if (rc != SR_DONE) goto done;
        rc = SR_OK;
    }
    ord = sr_malloc(nadd * sizeof *ord);
    res = sr_malloc((nold + nadd) * sizeof *res);
    if (!ord || !res) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < nadd; i++) ord[i] = (ts_idx){add[i].ts, i};
    qsort(ord, nadd, sizeof *ord, ts_idx_cmp);
    /* keep the last entry of each run of equal timestamps */
    size_t nu = 0;
    for (size_t i = 0; i < nadd; i++) {
        if (i + 1 < nadd && ord[i + 1].ts == ord[i].ts) continue;
        ord[nu++] = ord[i];
    }
    size_t a = 0, b = 0, nres = 0;
    while (a < nold || b < nu) {
        if (b >= nu || (a < nold && old[a].ts < ord[b].ts)) {
            res[nres++] = &old[a++];
        } else {
            if (a < nold && old[a].ts == ord[b].ts) a++; /* the new sample wins */
            res[nres++] = &add[ord[b++].idx];
        }
    }

    if ((rc = sr_chunk_enc_create(type, &e))) goto done;
    if ((rc = sr_chunk_enc_expect(e, nres < max_count ? nres : max_count))) goto done;
    size_t parts = (nres + max_count - 1) / max_count;
    if (balanced && nres <= (size_t)max_count + max_count / 4) parts = 1;
    for (size_t i = 0; i < nres;) {
        size_t at = out->len;
        uint8_t zero[4] = {0};
        if ((rc = sr_buf_append(out, zero, 4))) goto done;
        size_t stop = nres - i > max_count ? i + max_count : nres;
        if (balanced) stop = nres * (nout + 1) / parts; /* part nout ends here */
        for (; i < stop; i++)
            if ((rc = sr_chunk_enc_add(e, res[i]))) goto done;
        if ((rc = sr_chunk_enc_finish(e, out))) goto done;
        size_t clen = out->len - at - 4;
        if (clen > UINT32_MAX) {
            rc = SR_ETOOBIG;
            goto done;
        }
        sr_put_le32(out->data + at, (uint32_t)clen);
        nout++;
    }

done:
    sr_chunk_enc_destroy(e);
    sr_free(res);
    sr_free(ord);
    sr_free(old);
    if (rc) out->len = orig_len;
    else *nchunks = nout;
    return rc;
}

int sr_chunk_merge(sr_vtype type, const void *chunk, size_t len, const sr_sample *add, size_t nadd,
                   uint32_t max_count, sr_buf *out, size_t *nchunks)
{
    return chunk_merge(type, chunk, len, add, nadd, max_count, 0, out, nchunks);
}

int sr_chunk_merge_balanced(sr_vtype type, const void *chunk, size_t len, const sr_sample *add, size_t nadd,
                            uint32_t max_count, sr_buf *out, size_t *nchunks)
{
    return chunk_merge(type, chunk, len, add, nadd, max_count, 1, out, nchunks);
}

/* ------------------------------------------------------------------------ */
/* Downsampling                                                              */

/*
 * Samples are accumulated into the current bucket; a sample of a later bucket
 * closes it into `done` (only non-empty buckets are stored). The first call
 * to sr_agg_emit closes the aggregation: later sr_agg_add calls are ignored.
 * Emission walks the bucket starts and synthesises the filled buckets of
 * SR_FILL_PREVIOUS on the fly (none before the first non-empty bucket), so
 * their number costs no memory. A sample whose ts is not greater than the
 * previous accepted one is ignored. If growing `done` fails, the sample is
 * dropped and sr_agg_status() reports SR_ENOMEM.
 */
struct sr_agg {
    sr_vtype type;
    sr_agg_fill fill;
    int64_t from, to, interval;
    int64_t last_start; /* start of the bucket holding to - 1 */
    sr_bucket *done;
    size_t ndone, cap, head;
    sr_bucket cur;
    int have_cur, have_last, closed, finished, err;
    int64_t last_ts;
    int64_t pos; /* next bucket start to emit (SR_FILL_PREVIOUS) */
    double prev_v;
    int64_t prev_ts;
};

/* floor(ts / iv) * iv, or SR_EINVAL if that is below INT64_MIN */
static int align_down(int64_t ts, int64_t iv, int64_t *out)
{
    int64_t m = ts % iv;
    if (m < 0) m += iv;
    if (ts < INT64_MIN + m) return SR_EINVAL;
    *out = ts - m;
    return SR_OK;
}

int sr_agg_create(sr_vtype type, int64_t from, int64_t to, int64_t interval, sr_agg_fill fill, sr_agg **out)
{
    if (!out || !valid_type((int)type) || type == SR_VT_STRING) return SR_EINVAL;
    if (interval <= 0 || from >= to || (fill != SR_FILL_NONE && fill != SR_FILL_PREVIOUS)) return SR_EINVAL;
    int64_t first_start, last_start;
    if (align_down(from, interval, &first_start) || align_down(to - 1, interval, &last_start)) return SR_EINVAL;
    uint64_t nb = ((uint64_t)last_start - (uint64_t)first_start) / (uint64_t)interval + 1;
    size_t cap = nb < 4096 ? (size_t)nb + 1 : 4096;
    sr_agg *a = sr_calloc(1, sizeof *a);
    if (!a) return SR_ENOMEM;
    a->done = sr_malloc(cap * sizeof *a->done);
    if (!a->done) {
        sr_free(a);
        return SR_ENOMEM;
    }
    a->cap = cap;
    a->type = type;
    a->fill = fill;
    a->from = from;
    a->to = to;
    a->interval = interval;
    a->last_start = last_start;
    *out = a;
    return SR_OK;
}

void sr_agg_destroy(sr_agg *a)
{
    if (!a) return;
    sr_free(a->done);
    sr_free(a);
}

int sr_agg_status(const sr_agg *a) { return a ? a->err : SR_EINVAL; }

/* Close the current bucket and make nb the current one; SR_ENOMEM (sticky
 * in a->err, nothing changed) if the list of closed buckets cannot grow. */
static int agg_open(sr_agg *a, const sr_bucket *nb)
{
    /* room to close the current bucket now and the new one later */
    size_t need = a->ndone + (size_t)a->have_cur + 1;
    if (need > a->cap) {
        size_t nc = a->cap * 2;
        sr_bucket *nd = nc > a->cap ? sr_realloc(a->done, nc * sizeof *nd) : NULL;
        if (!nd) {
            a->err = SR_ENOMEM;
            return SR_ENOMEM;
        }
        a->done = nd;
        a->cap = nc;
    }
    if (a->have_cur) a->done[a->ndone++] = a->cur;
    a->cur = *nb;
    a->have_cur = 1;
    return SR_OK;
}

void sr_agg_add(sr_agg *a, const sr_sample *s)
{
    if (!a || !s || a->closed) return;
    if (s->ts < a->from || s->ts >= a->to) return;
    if (s->quality != SR_Q_GOOD && s->quality != SR_Q_UNCERTAIN) return;
    if (a->have_last && s->ts <= a->last_ts) return;
    double v;
    switch (a->type) {
    case SR_VT_NUMBER: v = s->v.f; break;
    case SR_VT_INTEGER: v = (double)s->v.i; break;
    default: v = s->v.b ? 1.0 : 0.0; break;
    }
    /* same bucket as the last sample: no division (ts > last_ts >= start) */
    if (a->have_cur && (uint64_t)s->ts - (uint64_t)a->cur.start < (uint64_t)a->interval) {
        sr_bucket *b = &a->cur;
        b->count++;
        /* (min/max without a branch: a random walk mispredicts them; the
         * same as `if (v < min) min = v`, NaN included) */
        b->min = v < b->min ? v : b->min;
        b->max = v > b->max ? v : b->max;
        b->sum += v;
        b->last = v;
        b->last_ts = s->ts;
    } else {
        int64_t start;
        if (align_down(s->ts, a->interval, &start)) return; /* cannot happen: ts >= from */
        sr_bucket nb = {.start = start, .count = 1, .min = v, .max = v, .sum = v, .first = v, .last = v,
                        .first_ts = s->ts, .last_ts = s->ts, .filled = 0};
        if (agg_open(a, &nb)) return;
    }
    a->have_last = 1;
    a->last_ts = s->ts;
}

/* A chunk whole, by its summary (invariant 8 of the encoder): 1 if taken
 * (its samples all lie in [from, to), after the last accepted sample, and
 * each segment of its summary in one bucket: then each segment is folded
 * into the current bucket or opens the next), 0 if not (nothing changed;
 * the caller decodes the chunk), or SR_ECORRUPT. The fold of a bucket over
 * a segment's samples is the fold with the segment's min, max and sum: for
 * values that are not NaN, a strict `v < min` keeps the first of the
 * least, segment or not; only the sum rounds differently when a bucket
 * holds more than the one segment (a sum of sums). */
static int agg_take_chunk(sr_agg *a, const sr_chunk_dec *d)
{
    int64_t f = d->info.first_ts, l = d->info.last_ts;
    if (f < a->from || l >= a->to || (a->have_last && f <= a->last_ts)) return 0;
    /* buckets shorter than an hour: take only a chunk inside one of them
     * (a chunk across an edge that is also an hour's could be taken by its
     * segments; this saves parsing the summary of every chunk of a query
     * into 1 min buckets, which none fits) */
    if (a->interval < SEG_MS && (uint64_t)l - (uint64_t)f >= (uint64_t)a->interval) return 0;
    sr_chunk_summary sm;
    if (summary_parse(d, &sm)) return SR_ECORRUPT;
    uint64_t iv = (uint64_t)a->interval;
    for (uint32_t j = 0; j < sm.nseg; j++) {
        int64_t s0, s1;
        if (align_down(sm.seg[j].first_ts, a->interval, &s0) || align_down(sm.seg[j].last_ts, a->interval, &s1) ||
            s0 != s1)
            return 0;
    }
    for (uint32_t j = 0; j < sm.nseg; j++) {
        const sr_chunk_seg *g = &sm.seg[j];
        if (a->have_cur && (uint64_t)g->first_ts - (uint64_t)a->cur.start < iv) {
            sr_bucket *b = &a->cur;
            b->count += g->count;
            b->min = g->min < b->min ? g->min : b->min;
            b->max = g->max > b->max ? g->max : b->max;
            b->sum += g->sum;
            b->last = g->last;
            b->last_ts = g->last_ts;
        } else {
            int64_t s0 = 0;
            (void)align_down(g->first_ts, a->interval, &s0); /* (checked above) */
            sr_bucket nb = {.start = s0, .count = g->count, .min = g->min, .max = g->max, .sum = g->sum,
                            .first = g->first, .last = g->last, .first_ts = g->first_ts, .last_ts = g->last_ts,
                            .filled = 0};
            if (agg_open(a, &nb)) continue; /* dropped, as sr_agg_add drops a sample (sticky SR_ENOMEM) */
        }
    }
    a->have_last = 1;
    a->last_ts = l;
    return 1;
}

size_t sr_agg_emit(sr_agg *a, sr_bucket *out, size_t max)
{
    if (!a || !out) return 0;
    if (!a->closed) {
        a->closed = 1;
        if (a->have_cur) a->done[a->ndone++] = a->cur; /* room kept by sr_agg_add */
        a->have_cur = 0;
        if (a->ndone) a->pos = a->done[0].start;
        else a->finished = 1;
    }
    size_t n = 0;
    if (a->fill == SR_FILL_NONE) {
        while (n < max && a->head < a->ndone) out[n++] = a->done[a->head++];
        return n;
    }
    while (n < max && !a->finished) {
        if (a->head < a->ndone && a->done[a->head].start == a->pos) {
            out[n] = a->done[a->head++];
            a->prev_v = out[n].last;
            a->prev_ts = out[n].last_ts;
        } else {
            double v = a->prev_v;
            out[n] = (sr_bucket){.start = a->pos, .count = 0, .min = v, .max = v, .sum = 0, .first = v, .last = v,
                                 .first_ts = a->prev_ts, .last_ts = a->prev_ts, .filled = 1};
        }
        n++;
        if (a->pos >= a->last_start) a->finished = 1;
        else a->pos += a->interval;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Decoding straight into an aggregator                                      */

/*
 * sr_chunk_dec_agg: sr_chunk_dec_next + sr_agg_add for every sample, without
 * the sample in between. Most samples fall in the bucket that the previous
 * one opened; for those the aggregator's work is a compare against one
 * bound, worked out once per bucket, plus count/sum/min/max in registers.
 * Everything else (a chunk's first and last sample, the first sample of a
 * bucket, samples outside [from, to) or at/after the caller's stop, chunks
 * with a quality section, booleans, a chunk of another type than the
 * aggregator's, a closed aggregator) takes the plain path, sample by sample.
 *
 * Bit-identical to the plain path: the same decoder steps (dec_ts,
 * dec_decimal, dec_number, the varint of integers, with their checks), the
 * same value of each sample (m / 10^k, the XORed bits, (double)int64), the
 * sum in the same order, and min/max written as the comparisons of
 * sr_agg_add (v < min ? v : min keeps min when v is NaN, as `if (v < min)`)
 * or, for runs of version 2 mantissas, taken on the mantissas (v2_batch).
 *
 * The fast run is valid while ts < bound, with bound = min(end of the current
 * bucket, to, stop), entered only when the aggregator's current bucket holds
 * the last sample it accepted and that sample is not newer than the
 * decoder's previous one: then each later sample of the chunk is newer than
 * everything accepted (timestamps strictly increase within a chunk), inside
 * [from, to), GOOD (no quality section) and in the current bucket -- exactly
 * sr_agg_add's same-bucket case.
 */
enum { AGG_V1 = 1, AGG_V2 = 2, AGG_INT = 3 };

static SR_INLINE int agg_value_next(sr_chunk_dec *d, double *v, const int kind)
{
    if (kind == AGG_V2) return dec_decimal(d, v);
    if (kind == AGG_V1) return dec_number(d, v);
    uint64_t z, pos = d->D_VPOS;
    if (get_varint(d->p, d->len, &pos, &z)) return SR_ECORRUPT;
    d->prev_i = (int64_t)((uint64_t)d->prev_i + sr_zz_dec(z));
    d->D_VPOS = pos;
    *v = (double)d->prev_i;
    return SR_OK;
}

/* The bound of a fast run after the decoder's last sample, or INT64_MIN
 * (none: the next sample takes the plain path). */
static inline int64_t agg_bound(const sr_agg *a, int64_t dec_ts, int64_t stop)
{
    if (!a->have_cur || dec_ts < a->last_ts) return INT64_MIN;
    int64_t b = a->cur.start <= INT64_MAX - a->interval ? a->cur.start + a->interval : INT64_MAX;
    if (a->to < b) b = a->to;
    return stop < b ? stop : b;
}

/* The running aggregates of a fast run (in registers). No two doubles side
 * by side: GCC's SLP vectoriser would pair them (the stores at the end of a
 * run) and then shuffle the pair in and out of one vector every sample. */
typedef struct agg_run {
    double sum;
    uint64_t n;
    double mn;
    uint64_t pad1;
    double mx;
    uint64_t pad2;
    double last;
} agg_run;

static SR_INLINE void run_add(agg_run *u, double v)
{
    u->n++;
    u->sum += v;
    u->mn = v < u->mn ? v : u->mn;
    u->mx = v > u->mx ? v : u->mx;
    u->last = v;
}

/* A fast run (samples d->i .. count - 2) of any chunk: the decoder's own
 * steps on a copy that never escapes. Returns 0 at the last sample, 1 on a
 * sample with ts >= bound (decoded, not added, its value in *vout), -1 if
 * the chunk is corrupt. */
static SR_INLINE int run_plain(sr_chunk_dec *d, int64_t bound, agg_run *u, double *vout, const int kind)
{
    sr_chunk_dec r = *d;
    const uint32_t end = r.info.count - 1;
    double v = 0;
    int ret = 0;
    while (r.i < end) {
        if (dec_ts(&r) || agg_value_next(&r, &v, kind)) {
            ret = -1;
            break;
        }
        r.i++;
        if (r.ts >= bound) {
            ret = 1;
            break;
        }
        run_add(u, v);
    }
    *d = r;
    *vout = v;
    return ret;
}

/* Version 2 decoder state in locals (run_v2), and the chunk's codes: for j
 * leading zeros (j < 16), the code is len bits, and z = (w >> (64 - len)) &
 * mask for the code at the top of w (dec_decimal's start = j + (j == 0),
 * n = w + j: len = start + n, mask = 2^n - 1, which also drops j = 0's '1'). */
typedef struct v2_loc {
    const uint8_t *p;
    uint64_t safe; /* a bit position below it has 8 whole bytes at pos / 8 */
    uint64_t vpos, m, dd;
    double div;
    unsigned w0;
    uint64_t mask[V2_ESC_ZEROS];
    uint8_t shr[V2_ESC_ZEROS], len[V2_ESC_ZEROS];
} v2_loc;

static void v2_loc_init(v2_loc *l, const sr_chunk_dec *d)
{
    l->p = d->p;
    l->safe = d->len >= 8 ? ((uint64_t)d->len - 7) * 8 : 0;
    l->vpos = d->D_VPOS;
    l->m = (uint64_t)d->prev_i;
    l->dd = d->D_D;
    l->div = sr_dec_pow10[d->D_SCALE];
    unsigned w = (unsigned)d->D_W; /* <= V2_MAX_W: len <= 57 */
    l->w0 = w;
    for (unsigned j = 0; j < V2_ESC_ZEROS; j++) {
        unsigned n = w + j, len = j + (j == 0) + n;
        l->mask[j] = (UINT64_C(1) << n) - 1;
        l->len[j] = (uint8_t)len;
        l->shr[j] = (uint8_t)(64 - len);
    }
}

/* The next value (of a sample i >= 1), when its code has no escape and at
 * least 8 bytes remain (so the <= 57 bits of the code are in one unchecked
 * 8-byte load): 1 and *v, 0 if not so (nothing read), -1 if corrupt. */
static SR_INLINE int v2_fast(const v2_loc *l, uint64_t *vpos, uint64_t *m, uint64_t *dd, double *v, const int order)
{
    if (*vpos >= l->safe) return 0;
    uint64_t w = load_be64(l->p + (*vpos >> 3)) << (*vpos & 7);
    unsigned j = (unsigned)__builtin_clzll(w | 1);
    if (j >= V2_ESC_ZEROS) return 0;
    uint64_t z = (w >> l->shr[j]) & l->mask[j];
    *vpos += l->len[j];
    uint64_t delta = sr_zz_dec(z);
    if (order) delta = *dd += delta;
    *m += delta;
    if (!mant_ok(*m)) return -1;
    *v = (double)(int64_t)*m / l->div; /* = dec_value(m, k) */
    return 1;
}

/* Any next value, by dec_decimal (out of line: the loops that call it keep
 * their sums in registers). 0, or -1 if corrupt. */
static SR_NOINLINE int v2_slow(v2_loc *l, sr_chunk_dec *d, double *v)
{
    d->D_VPOS = l->vpos;
    d->prev_i = (int64_t)l->m;
    d->D_D = l->dd;
    d->i = 1; /* (dec_decimal only asks whether i > 0; run_v2 sets i) */
    if (dec_decimal(d, v)) return -1;
    l->vpos = d->D_VPOS;
    l->m = (uint64_t)d->prev_i;
    l->dd = d->D_D;
    return 0;
}

static SR_INLINE int v2_value(v2_loc *l, sr_chunk_dec *d, double *v, const int order)
{
    int r = v2_fast(l, &l->vpos, &l->m, &l->dd, v, order);
    if (r) return r > 0 ? 0 : -1;
    double x; /* (v stays in a register) */
    if (v2_slow(l, d, &x)) return -1;
    *v = x;
    return 0;
}

/* Up to c <= 57 values into u (sum, min, max, last; not n) while codes
 * without escape come, read as v2_fast does: how many (fewer than c: the
 * next one needs v2_slow), or -1 if corrupt. A function of its own, without
 * calls: its sums stay in registers. The bits come from a 64-bit buffer,
 * refilled with v2_fast's unchecked load only when a code does not fit in
 * what is left of it, so that the next code's position does not wait on a
 * load.
 * Min and max are those of the mantissas, turned into values once: m / 10^k
 * (rounded) never decreases as m grows, so the value of the least mantissa
 * is the least value, and comparing it with the bucket's min as sr_agg_add
 * would gives the same min (no NaN and no -0.0 is a decimal). They also
 * stand for dec_decimal's |m| <= MANT_MAX check of every mantissa: a code
 * here is below 2^42, so from a valid mantissa (and, for delta-of-deltas, a
 * previous delta below 2^54) 57 of them keep |m| below 2^61: nothing wraps,
 * and a mantissa out of range shows in lo or hi. The chunk is then corrupt
 * (the sums already taken do not matter: the query fails). */
static SR_INLINE int64_t v2_batch(v2_loc *lp, uint64_t c, agg_run *u, const int order)
{
    const uint8_t *p = lp->p;
    const uint64_t safe = lp->safe;
    const unsigned w0 = lp->w0;
    const double div = lp->div;
    uint64_t pos = lp->vpos, m = lp->m, dd = lp->dd, s = 0, buf = 0;
    unsigned avail = 0; /* buf's top `avail` bits are the stream's from pos; the rest are 0 */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    double sum = u->sum, v = 0;
    SR_ASSERT(c <= 57);
    for (; s < c; s++) {
        unsigned j = (unsigned)__builtin_clzll(buf | 1), len = 2 * j + w0 + (j == 0);
        if (j >= V2_ESC_ZEROS || len > avail) { /* (zeros past avail may be anything) */
            if (pos >= safe) break;
            buf = load_be64(p + (pos >> 3)) << (pos & 7);
            avail = 64 - (unsigned)(pos & 7); /* >= 57 */
            j = (unsigned)__builtin_clzll(buf | 1);
            if (j >= V2_ESC_ZEROS) break;
            len = 2 * j + w0 + (j == 0); /* <= 57 */
        }
        uint64_t z = (buf >> (64 - len)) & lp->mask[j];
        buf <<= len;
        avail -= len;
        pos += len;
        uint64_t delta = sr_zz_dec(z);
        if (order) delta = dd += delta;
        m += delta;
        int64_t sm = (int64_t)m;
        lo = sm < lo ? sm : lo;
        hi = sm > hi ? sm : hi;
        v = (double)sm / div; /* = dec_value(m, k) */
        sum += v;
    }
    if (!s) return 0;
    if (!mant_ok((uint64_t)lo) || !mant_ok((uint64_t)hi)) return -1;
    double vlo = (double)lo / div, vhi = (double)hi / div;
    lp->vpos = pos;
    lp->m = m;
    lp->dd = dd;
    u->sum = sum;
    u->mn = vlo < u->mn ? vlo : u->mn;
    u->mx = vhi > u->mx ? vhi : u->mx;
    u->last = v;
    return (int64_t)s;
}

static SR_NOINLINE int64_t v2_batch0(v2_loc *l, uint64_t c, agg_run *u) { return v2_batch(l, c, u, 0); }
static SR_NOINLINE int64_t v2_batch1(v2_loc *l, uint64_t c, agg_run *u) { return v2_batch(l, c, u, 1); }

/* dec_ts out of line, on the state of run_v2. 0, or -1 if corrupt. */
static SR_NOINLINE int ts_slow(sr_chunk_dec *d, uint32_t i, uint64_t *tpos, uint64_t *ts, uint64_t *dts)
{
    d->bitpos = *tpos;
    d->ts = (int64_t)*ts;
    d->dts = (int64_t)*dts;
    d->i = i;
    if (dec_ts(d)) return -1;
    *tpos = d->bitpos;
    *ts = (uint64_t)d->ts;
    *dts = (uint64_t)d->dts;
    return 0;
}

/* The same as run_plain for a version 2 chunk of the given order, with the
 * decoder state in locals. Timestamps come in batches: k leading zero bits
 * at the timestamp position are k '0' codes (k samples with the same
 * delta), and one check, k * delta < last_ts - ts, is dec_ts's check of
 * each of them (delta >= 1, never reaching last_ts: none is the last
 * sample). Of a batch, the c samples below bound, c worked out from the
 * delta, need no compare; the next one ends the run. A batch that fails the
 * check, and every other code, goes through dec_ts, one sample at a time. */
static SR_INLINE int run_v2(sr_chunk_dec *d, v2_loc *l, int64_t bound, agg_run *u, double *vout, const int order)
{
    const uint32_t end = d->info.count - 1;
    const uint64_t tend = (uint64_t)d->boff * 8;
    const uint64_t tsafe = tend < l->safe ? tend : l->safe;
    const uint64_t last_ts = (uint64_t)d->info.last_ts;
    l->vpos = d->D_VPOS;
    l->m = (uint64_t)d->prev_i;
    l->dd = d->D_D;
    uint64_t tpos = d->bitpos, ts = (uint64_t)d->ts, dts = (uint64_t)d->dts;
    uint32_t i = d->i;
    double v = 0, sum = u->sum, mn = u->mn, mx = u->mx, last = u->last;
    uint64_t n = 0;
    int ret = 0;
    while (i < end) {
        uint64_t k = 0, span = 0;
        if (tpos < tsafe) {
            k = (unsigned)__builtin_clzll((load_be64(l->p + (tpos >> 3)) << (tpos & 7)) | 1);
            if (k > 57) k = 57; /* the bits of the load that are real */
            if (k > tend - tpos) k = tend - tpos;
            if (k > end - i) k = end - i;
            if (k && (dts == 0 || __builtin_mul_overflow(k, dts, &span) || span >= last_ts - ts)) k = 0;
        }
        if (!k) { /* one sample, its timestamp by dec_ts */
            if (ts_slow(d, i, &tpos, &ts, &dts) || v2_value(l, d, &v, order)) {
                ret = -1;
                break;
            }
            i++;
            if ((int64_t)ts >= bound) {
                ret = 1;
                break;
            }
            n++;
            sum += v;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            last = v;
            continue;
        }
        /* c of the k samples ts + dts, ts + 2 dts, ... lie below bound */
        uint64_t c = 0;
        if ((int64_t)ts < bound) {
            uint64_t gap = (uint64_t)bound - ts;
            c = gap > span ? k : (gap - 1) / dts;
        }
        for (uint64_t s = 0; s < c;) {
            agg_run b = {.sum = sum, .mn = mn, .mx = mx, .last = last};
            int64_t got = order ? v2_batch1(l, c - s, &b) : v2_batch0(l, c - s, &b);
            if (got < 0) goto bad;
            sum = b.sum;
            mn = b.mn;
            mx = b.mx;
            last = b.last;
            s += (uint64_t)got;
            if (s < c) {
                if (v2_value(l, d, &v, order)) goto bad;
                sum += v;
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
                last = v;
                s++;
            }
        }
        n += c;
        ts += c * dts;
        tpos += c;
        i += (uint32_t)c;
        if (c < k) { /* the next sample is at or past bound */
            ts += dts;
            tpos++;
            if (v2_value(l, d, &v, order)) goto bad;
            i++;
            ret = 1;
            break;
        }
    }
    if (0) {
    bad:
        ret = -1;
    }
    d->bitpos = tpos;
    d->D_VPOS = l->vpos;
    d->ts = (int64_t)ts;
    d->dts = (int64_t)dts;
    d->prev_i = (int64_t)l->m;
    d->D_D = l->dd;
    d->i = i;
    u->sum = sum;
    u->mn = mn;
    u->mx = mx;
    u->last = last;
    u->n = n;
    *vout = v;
    return ret;
}

static SR_INLINE int agg_chunk(sr_chunk_dec *dp, sr_agg *a, int64_t stop, sr_sample *s, uint64_t *added,
                               const int kind)
{
    sr_chunk_dec d = *dp;
    uint64_t fed = 0;
    int rc;
    v2_loc l;
    if (kind == AGG_V2) v2_loc_init(&l, &d);
    for (;;) {
        sr_sample x;
        if (d.i == 0 || d.i + 1 >= d.info.count) {
            /* the first sample, and the last one (with its end checks) */
            if ((rc = sr_chunk_dec_next(&d, &x))) break;
        } else {
            sr_bucket *b = &a->cur;
            agg_run u = {.sum = b->sum, .mn = b->min, .mx = b->max, .last = b->last};
            double v;
            int64_t bound = agg_bound(a, d.ts, stop);
            int st = kind != AGG_V2 ? run_plain(&d, bound, &u, &v, kind)
                     : d.D_ORDER    ? run_v2(&d, &l, bound, &u, &v, 1)
                                    : run_v2(&d, &l, bound, &u, &v, 0);
            if (st < 0) {
                rc = SR_ECORRUPT;
                break;
            }
            if (u.n) {
                /* the run's last sample: the decoder's, or the one before it */
                int64_t lts = st ? (int64_t)((uint64_t)d.ts - (uint64_t)d.dts) : d.ts;
                b->count += u.n;
                b->sum = u.sum;
                b->min = u.mn;
                b->max = u.mx;
                b->last = u.last;
                b->last_ts = lts;
                a->last_ts = lts;
                fed += u.n;
            }
            if (!st) continue; /* on to the last sample */
            x.ts = d.ts;
            x.quality = SR_Q_GOOD;
            if (kind == AGG_INT) x.v.i = d.prev_i;
            else x.v.f = v;
        }
        if (x.ts >= stop) {
            *s = x;
            rc = SR_OK;
            break;
        }
        sr_agg_add(a, &x);
        fed++;
    }
    *dp = d;
    *added += fed;
    return rc;
}

int sr_chunk_dec_agg(sr_chunk_dec *d, sr_agg *a, int64_t stop, sr_sample *s, uint64_t *added)
{
    if (!d || !a || !s || !added) return SR_EINVAL;
    *added = 0;
    /* a chunk whose summary segments each lie in one bucket: no decoding */
    if (d->D_SOFF && d->i == 0 && !a->closed && d->info.type == a->type && d->info.last_ts < stop) {
        int t = agg_take_chunk(a, d);
        if (t < 0) return t;
        if (t) {
            d->i = d->info.count;
            *added = d->info.count;
            return SR_DONE;
        }
    }
    if (!a->closed && !d->qoff && d->info.type == a->type) {
        if (a->type == SR_VT_NUMBER && d->D_VER == SR_SERIES_VERSION2) return agg_chunk(d, a, stop, s, added, AGG_V2);
        if (a->type == SR_VT_NUMBER) return agg_chunk(d, a, stop, s, added, AGG_V1);
        if (a->type == SR_VT_INTEGER) return agg_chunk(d, a, stop, s, added, AGG_INT);
    }
    int rc;
    while ((rc = sr_chunk_dec_next(d, s)) == SR_OK) {
        if (s->ts >= stop) return SR_OK;
        sr_agg_add(a, s);
        ++*added;
    }
    return rc;
}
