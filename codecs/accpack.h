/*
 * codecs/accpack.h -- the packed batch of reads of the audit trail (issue
 * #18, R-SE-5; docs/audit.md "Reads: the packed batch and its cost"; events.proto
 * AccessBatch, Event.body 50).
 *
 * One batch of one reader's reads as ONE byte string: a table of distinct
 * strings (bindings, methods, routes, peers, wire codes, data points), the
 * listed points of every entry as string indexes, and the entries as
 * fixed-size records that name their strings by index. Building an entry
 * is a few stores and hash look-ups (no per-entry protobuf message, no
 * per-entry string copy once a string is in the table); reading one is a
 * few loads. api/access.c builds it, the writer checks it once
 * (sr_apk_parse), engine/audit.c and event_json.c read it.
 *
 * FORMAT (little-endian; docs/audit.md has the same table)
 *   0   4  magic "SRA1"
 *   4   4  nstr   strings (1..SR_APK_STRS_MAX)
 *   8   4  nref   listed points (string indexes)
 *  12   4  nent   entries (1..SR_APK_ENTRIES_MAX)
 *  16   4  nchar  bytes of the strings' text
 *  20  4*nstr     off[i]: where string i starts in the text; off[0] = 0,
 *                 increasing; string i ends at off[i+1] (the last: nchar)
 *      nchar      the text: every string ends with its one NUL byte
 *      2*nref     refs: u16 string indexes
 *      ...        the entries, each the fields that differ from the entry
 *                 before it (the first: from all zero, code none):
 *        u8 flags (bits 6 and 7 zero), then as varints (LEB128):
 *        always  time_ms - the previous entry's (zig-zag)
 *        bit 0   binding, method, route (string indexes)
 *        bit 1   source (string index)
 *        bit 2   code + 1 (0: none, answered), status (<= 65535)
 *        bit 3   npl (<= 16, <= npoints), ref (ref + npl <= nref), npoints
 *        bit 4   values
 *        bit 5   bytes
 *   Nothing after the last entry. A flood of one reader's same read is
 *   about 3 bytes an entry: the bytes the writer seals, hashes and
 *   compresses are what a read costs it.
 *
 * INVARIANTS
 *  (1) sr_apk_parse accepts exactly the layout above: every length and
 *      index in range, every string NUL-ended with no NUL inside, so that
 *      the readers (sr_apk_s, sr_apk_next, sr_apk_ref) need no check.
 *  (2) A builder's strings are interned: the same bytes, the same index.
 *  (3) Pure: no I/O, no global state (fuzzed: fuzz_accpack).
 */
#ifndef SR_CODECS_ACCPACK_H
#define SR_CODECS_ACCPACK_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

#define SR_APK_MAGIC "SRA1"
#define SR_APK_HEAD 20
#define SR_APK_ENTRIES_MAX 4096
#define SR_APK_POINTS_MAX 16
#define SR_APK_STRS_MAX 65535 /* indexes 0..65534; 0xFFFF is "none" */
#define SR_APK_STRLEN_MAX 1024
#define SR_APK_NONE 0xFFFFu

typedef struct sr_apk_entry {
    int64_t time_ms;
    uint16_t binding, method, route, source, code; /* string indexes; code SR_APK_NONE when answered */
    uint16_t status, npl;
    uint32_t npoints, ref;
    uint64_t values, bytes;
} sr_apk_entry;

/* ---- building ---- */
typedef struct sr_apk {
    sr_buf text;       /* the strings, NUL-ended */
    uint32_t *off;     /* [nstr] */
    uint32_t *hashes;  /* [nstr] */
    size_t nstr, capstr;
    uint32_t *slot;    /* open addressing: string index + 1, 0 empty; nslot a power of two */
    size_t nslot;
    const char *pk[8]; /* static strings by address (sr_apk_static) */
    uint16_t pix[8];
    unsigned npk;
    uint16_t *refs;
    size_t nref, capref;
    sr_buf ents;       /* the entries' bytes */
    size_t nent;
    sr_apk_entry prev; /* the last entry added */
} sr_apk;

void sr_apk_init(sr_apk *b);
void sr_apk_reset(sr_apk *b);   /* empty, memory kept */
void sr_apk_release(sr_apk *b);
/* The index of the string s[0..n) (added if new): 0..SR_APK_STRS_MAX-1, or
 * -1 when the table is full, s too long or holds a NUL, or no memory. */
int sr_apk_str(sr_apk *b, const char *s, size_t n);
/* The same for a string that lives as long as the builder's batch (a
 * route table's pattern): found by its address first. */
int sr_apk_static(sr_apk *b, const char *s);
/* Appends an entry (its ref set here: the previous entry's when its listed
 * points are the same) with its listed points refs[0..e->npl).
 * SR_OK; SR_ETOOBIG when the batch holds SR_APK_ENTRIES_MAX entries;
 * SR_EINVAL for an index out of range; SR_ENOMEM. */
int sr_apk_add(sr_apk *b, const sr_apk_entry *e, const uint16_t *refs);
static inline size_t sr_apk_count(const sr_apk *b) { return b->nent; }
/* 1 when no string more may fit (the caller ends the batch) */
static inline int sr_apk_full(const sr_apk *b)
{
    return b->nent >= SR_APK_ENTRIES_MAX || b->nstr + 2 + SR_APK_POINTS_MAX >= SR_APK_STRS_MAX;
}
/* The batch's bytes, appended to out. SR_EINVAL when it has no entry. */
int sr_apk_finish(const sr_apk *b, sr_buf *out);

/* ---- reading ---- */
typedef struct sr_apk_view {
    const uint8_t *off, *text, *refs, *ents, *end;
    uint32_t nstr, nref, nent, nchar;
} sr_apk_view;

/* the entries in order (sr_apk_iter_init, then sr_apk_next until 0) */
typedef struct sr_apk_iter {
    const uint8_t *p, *end;
    uint32_t left;
    sr_apk_entry e;
} sr_apk_iter;

/* Checks p[0..n) (INVARIANT 1) and fills v. SR_OK, or SR_ECODEC with *why
 * (a static text) naming the first problem. */
int sr_apk_parse(const uint8_t *p, size_t n, sr_apk_view *v, const char **why);
static inline const char *sr_apk_s(const sr_apk_view *v, uint16_t i)
{
    return i == SR_APK_NONE ? "" : (const char *)v->text + sr_get_le32(v->off + 4u * i);
}
static inline uint16_t sr_apk_ref(const sr_apk_view *v, uint32_t k) { return sr_get_le16(v->refs + 2u * k); }
void sr_apk_iter_init(const sr_apk_view *v, sr_apk_iter *it);
/* 1 and *e the next entry, 0 at the end (or, for bytes sr_apk_parse did
 * not accept, at the first bad one) */
int sr_apk_next(sr_apk_iter *it, sr_apk_entry *e);

/* One pass instead of two (a writer that checks a batch and then reads it,
 * engine/audit.c's row): sr_apk_parse_head checks and fills v as
 * sr_apk_parse does except the entries; sr_apk_next_checked then reads the
 * entries checking each as sr_apk_parse would (every index within v):
 * 1 and *e the next entry, 0 at the end of a batch sr_apk_parse accepts
 * (every entry read, no byte after the last), -1 at the first bad entry or
 * at bytes after the last. A batch read to 0 this way is one sr_apk_parse
 * accepts; the entries read before a -1 are within v. */
int sr_apk_parse_head(const uint8_t *p, size_t n, sr_apk_view *v, const char **why);
int sr_apk_next_checked(sr_apk_iter *it, const sr_apk_view *v, sr_apk_entry *e);

#endif
