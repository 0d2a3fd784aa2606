/*
 * storage/series.h -- time-series chunks: the compressed unit the index
 * stores per data point (one LMDB value = one chunk of many samples).
 *
 * A chunk holds samples of ONE data point, of ONE value type, with strictly
 * increasing timestamps (UTC milliseconds). Encoding (byte format:
 * docs/series-format.md):
 *  - timestamps: delta-of-delta (the Gorilla scheme, variable-width buckets);
 *  - numbers (double): when every value of the chunk is m / 10^k for one k
 *    in 0..6 (2-decimal readings, say), the integer mantissas m as deltas or
 *    delta-of-deltas in a per-chunk bucket code (format version 2), unless
 *    that is longer than version 1; else XOR with the previous value,
 *    leading/trailing-zero windows (Gorilla, version 1); NaN payloads,
 *    +-Inf, -0.0 and denormals round-trip bit for bit;
 *  - integers (int64): zigzag delta, varint;
 *  - booleans: one bit each;
 *  - strings: length varint + bytes, with a "same as previous" flag;
 *  - quality: a flag in the chunk header when every sample is GOOD, else two
 *    bits per sample.
 * The chunk header carries the type, count, first and last timestamp, so a
 * range query can skip a chunk without decoding it; a summary (format
 * version 3: count, min, max, sum, first and last value of each UTC hour of
 * the chunk) lets downsampling take a chunk without decoding it when its
 * hours lie in whole buckets.
 *
 * Pure functions: no I/O, no globals, no threads; allocation only through
 * sr_buf / sr_malloc (so fault injection reaches it). All functions taking
 * bytes from disk return SR_ECORRUPT on malformed input, never crash.
 */
#ifndef SR_SERIES_H
#define SR_SERIES_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "codecs/sample.h" /* sr_vtype, sr_sample, sr_bucket, sr_agg_fill */

#include <stddef.h>
#include <stdint.h>

/* Chunk header facts, readable without decoding the body. */
typedef struct sr_chunk_info {
    sr_vtype type;
    uint32_t count;
    int64_t first_ts, last_ts;
} sr_chunk_info;

SR_MUST_CHECK int sr_chunk_info_get(const void *chunk, size_t len, sr_chunk_info *out);

/* ---- encoding ---------------------------------------------------------- */

typedef struct sr_chunk_enc sr_chunk_enc; /* opaque; create/destroy */

SR_MUST_CHECK int sr_chunk_enc_create(sr_vtype type, sr_chunk_enc **out);
/* Room for about n samples up front (the encoder grows anyway; this only
 * saves the regrowth when the caller knows the count). */
SR_MUST_CHECK int sr_chunk_enc_expect(sr_chunk_enc *e, size_t n);
/* Summaries on (the default: format version 3 where the chunk has one) or
 * off (versions 1 and 2 only, as the encoder wrote before version 3: for
 * tests and tools that need an old-format chunk). Only while empty
 * (SR_EINVAL otherwise); kept across finish. */
SR_MUST_CHECK int sr_chunk_enc_summary(sr_chunk_enc *e, int on);
void sr_chunk_enc_destroy(sr_chunk_enc *e); /* NULL-safe */
/* Append a sample; ts must be > the previous one (SR_EINVAL otherwise, and
 * the encoder is unchanged). String bytes are copied. */
SR_MUST_CHECK int sr_chunk_enc_add(sr_chunk_enc *e, const sr_sample *s);
uint32_t sr_chunk_enc_count(const sr_chunk_enc *e);
size_t sr_chunk_enc_bytes(const sr_chunk_enc *e); /* encoded size so far */
/* Write the finished chunk to out (appended at out->len); the encoder is
 * reset to empty and can be reused. */
SR_MUST_CHECK int sr_chunk_enc_finish(sr_chunk_enc *e, sr_buf *out);

/* ---- decoding ---------------------------------------------------------- */

typedef struct sr_chunk_dec {
    /* private: decoder state (transparent so it lives on the stack) */
    const uint8_t *p;
    size_t len;
    sr_chunk_info info;
    uint32_t i;
    uint64_t bitpos;
    int64_t ts, dts;
    uint64_t prev_bits;
    int lead, trail;
    int64_t prev_i;
    const char *prev_s;
    uint32_t prev_slen;
    size_t qoff, boff;
    uint64_t reserved[8];
} sr_chunk_dec;

SR_MUST_CHECK int sr_chunk_dec_init(sr_chunk_dec *d, const void *chunk, size_t len);
/* SR_OK and *s (string bytes borrowed from the chunk, valid while it is),
 * SR_DONE after the last sample, or SR_ECORRUPT. */
SR_MUST_CHECK int sr_chunk_dec_next(sr_chunk_dec *d, sr_sample *s);

/* The chunk's summary (format version 3, docs/series-format.md): for each
 * UTC hour its samples fall in (up to SR_CHUNK_MAXSEG hours; else one
 * segment of all of them), the count, first and last timestamp and the
 * min, max, sum, first and last value, as sr_agg_add sees the values
 * (numbers; integers as double; booleans as 0/1) and folds them into a
 * bucket. The encoder writes one for every chunk of numbers, integers or
 * booleans with at least one sample, no NaN, and every quality GOOD or
 * UNCERTAIN; older chunks (versions 1 and 2) have none. */
enum { SR_CHUNK_MAXSEG = 4 };
typedef struct sr_chunk_seg {
    uint32_t count;
    int64_t first_ts, last_ts;
    double min, max, sum, first, last;
} sr_chunk_seg;
typedef struct sr_chunk_summary {
    uint32_t nseg;
    sr_chunk_seg seg[SR_CHUNK_MAXSEG];
} sr_chunk_summary;

/* SR_OK and *out, from a decoder that has not decoded a sample yet
 * (SR_EINVAL otherwise); SR_ENOTFOUND: the chunk has no summary;
 * SR_ECORRUPT: its summary breaks a rule of the format. */
SR_MUST_CHECK int sr_chunk_dec_summary(const sr_chunk_dec *d, sr_chunk_summary *out);

/* NULL if the chunk's summary (if any) is the fold of its decoded samples
 * (invariant 8 of storage/series.c), else what differs. Decodes the chunk:
 * sr_chunk_enc_finish runs it under SR_INVARIANT (debug builds); tests and
 * the fuzz target call it directly. */
const char *sr_chunk_summary_check(const void *chunk, size_t len);

/* Append to out the chunk as the writer of versions 1 and 2 wrote it: a
 * version 3 chunk without its summary section (version 2 if its value
 * stream is version 2's, else 1; the CRC recomputed), any other bytes as
 * they are. So the content of indexes written before and after version 3
 * compares equal (sr_engine_content_hash). */
SR_MUST_CHECK int sr_chunk_strip_summary(const void *chunk, size_t len, sr_buf *out);

/* ---- merging (out-of-order and late values) ---------------------------- */

/*
 * Merge samples into an existing chunk (NULL/0 for none): the result has the
 * union of timestamps; where a timestamp appears in both, the new sample
 * wins; within `add`, later entries win over earlier ones with the same ts.
 * `add` need not be sorted. The merged samples are written as one or more
 * chunks of at most max_count samples each, appended to out (each chunk is
 * preceded by a 4-byte little-endian length), and *nchunks is set.
 */
SR_MUST_CHECK int sr_chunk_merge(sr_vtype type, const void *chunk, size_t len, const sr_sample *add,
                                 size_t nadd, uint32_t max_count, sr_buf *out, size_t *nchunks);
/*
 * The same merge, for chunks that late values keep growing: the merged
 * samples stay one chunk while they number at most max_count + max_count / 4
 * (a few late values never split a full chunk into a full one and a tiny
 * one); above that they are written as ceil(n / max_count) chunks of equal
 * size (+-1, each at most max_count).
 */
SR_MUST_CHECK int sr_chunk_merge_balanced(sr_vtype type, const void *chunk, size_t len, const sr_sample *add,
                                          size_t nadd, uint32_t max_count, sr_buf *out, size_t *nchunks);

/* ---- downsampling ------------------------------------------------------ */

typedef struct sr_agg sr_agg; /* streaming aggregator */

/* Buckets [from, to) of `interval` ms, aligned to multiples of interval
 * (interval > 0, from < to). Feed samples in increasing ts order from any
 * number of chunks; samples outside [from, to) and samples whose quality is
 * not GOOD or UNCERTAIN are ignored; strings are SR_EINVAL at create. */
SR_MUST_CHECK int sr_agg_create(sr_vtype type, int64_t from, int64_t to, int64_t interval, sr_agg_fill fill,
                                sr_agg **out);
void sr_agg_destroy(sr_agg *a);
void sr_agg_add(sr_agg *a, const sr_sample *s);
/* Emit the buckets in order; returns the number written to out (at most
 * max), call repeatedly until it returns 0. */
size_t sr_agg_emit(sr_agg *a, sr_bucket *out, size_t max);
/* SR_OK, or SR_ENOMEM if sr_agg_add had to drop a sample because growing
 * its bucket list failed (sticky). Added with storage/series.c. */
SR_MUST_CHECK int sr_agg_status(const sr_agg *a);

/* Decode d's next samples straight into a: the same as sr_chunk_dec_next
 * and then sr_agg_add for each sample with ts < stop, in order (the same
 * checks and errors, bit-identical buckets), without materialising the
 * samples (the fast path of sr_engine_downsample). A chunk with a summary
 * that d has not started, whose samples all lie before stop, inside
 * [from, to) and after the last sample a took, and whose summary segments
 * each lie in one bucket, is added from its summary without decoding
 * (SR_DONE, *added = its count): the buckets are the same but for their
 * sums, which add a segment's sum in one step and so can differ in the
 * last bits when a bucket holds more than that segment; the chunk's body is
 * then checked by its CRC only (sr_chunk_dec_init), not by the decoder.
 * Returns SR_OK with *s the
 * first sample with ts >= stop (decoded but not added: the caller deals with
 * it, then may call again), SR_DONE once the chunk has no more samples, or
 * SR_ECORRUPT. *added is set to the number of samples handed to a. */
SR_MUST_CHECK int sr_chunk_dec_agg(sr_chunk_dec *d, sr_agg *a, int64_t stop, sr_sample *s, uint64_t *added);

#endif
