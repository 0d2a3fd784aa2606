/*
 * codecs/sample.h -- the value model: value types, qualities, one sample,
 * one downsampled bucket. Plain types, and the one table of the qualities'
 * wire names (interface.md "GOOD", "UNCERTAIN", "BAD", "NO_DATA"):
 * SR_QUALITIES generates sr_quality_name[] and sr_quality_len[]
 * (codecs/sample.c), which sr_quality_parse reads; the AP-IF values writer
 * builds its pre-quoted forms from the same list at compile time.
 *
 * They are the vocabulary the layers share: storage/series.h encodes
 * samples into chunks and aggregates them into buckets, engine/suiro.h (the
 * engine API) returns them to api/, the GW-IF parsers (api/gwif_json.c) and
 * the event builders (engine/evbuild.h) fill them. They live here, below
 * storage and the engine, so the engine API uses them without including a
 * storage/ header and without converting every sample at the boundary
 * (docs/architecture.md, "Dependencies point one way"). The numbering of
 * sr_vtype and sr_quality is stored (chunk headers, docs/series-format.md;
 * events.proto ValueType and Quality): never renumber.
 */
#ifndef SR_SAMPLE_H
#define SR_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum sr_vtype {
    SR_VT_NUMBER = 1,  /* double */
    SR_VT_INTEGER = 2, /* int64 */
    SR_VT_BOOL = 3,
    SR_VT_STRING = 4,
} sr_vtype;

/* The qualities, in their stored order: X(enum suffix, wire name). */
#define SR_QUALITIES(X) X(GOOD, "GOOD") X(UNCERTAIN, "UNCERTAIN") X(BAD, "BAD") X(NO_DATA, "NO_DATA")

typedef enum sr_quality {
#define SR_Q_ENUM_(q, name) SR_Q_##q,
    SR_QUALITIES(SR_Q_ENUM_)
#undef SR_Q_ENUM_
    SR_Q_COUNT
} sr_quality;
_Static_assert(SR_Q_GOOD == 0 && SR_Q_UNCERTAIN == 1 && SR_Q_BAD == 2 && SR_Q_NO_DATA == 3 && SR_Q_COUNT == 4,
               "the stored numbering of sr_quality");

/* The wire name of each quality and its length, indexed by sr_quality. */
extern const char *const sr_quality_name[SR_Q_COUNT];
extern const uint8_t sr_quality_len[SR_Q_COUNT];

/* The quality named s[0..n) (exact, case-sensitive), or -1. */
static inline int sr_quality_parse(const char *s, size_t n)
{
    for (int q = 0; q < SR_Q_COUNT; q++)
        if (n == sr_quality_len[q] && !memcmp(s, sr_quality_name[q], n)) return q;
    return -1;
}

/* The name of quality q; an out-of-range q reads as GOOD (as every writer did). */
static inline const char *sr_quality_str(unsigned q) { return sr_quality_name[q < SR_Q_COUNT ? q : SR_Q_GOOD]; }

/* One sample. For strings, s/slen borrow memory (see each function). */
typedef struct sr_sample {
    int64_t ts; /* UTC ms */
    uint8_t quality;
    union {
        double f;
        int64_t i;
        int b; /* 0 or 1 */
        struct {
            const char *s;
            uint32_t slen;
        } str;
    } v;
} sr_sample;

/* ---- downsampling (storage/series.h sr_agg_create) ------------------- */

typedef enum sr_agg_fill {
    SR_FILL_NONE = 0,     /* empty intervals are omitted */
    SR_FILL_PREVIOUS = 1, /* empty intervals repeat the previous interval's last value */
} sr_agg_fill;

typedef struct sr_bucket {
    int64_t start; /* interval start, ms */
    uint64_t count;
    double min, max, sum, first, last; /* numbers and integers (as double); bools as 0/1 */
    int64_t first_ts, last_ts;
    int filled; /* 1 if produced by SR_FILL_PREVIOUS (count = 0) */
} sr_bucket;

#endif
