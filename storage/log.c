/*
 * storage/log.c -- append-only segmented event log (docs/format.md).
 *
 * A log directory holds segment files "<first seq, 20 digits>.seg" and a LOCK
 * file. A segment is a 64-byte header and then blocks; a block is a 96-byte
 * header and the stored payload. Version 3 (block version 2): the payload is
 * a sequence of sections, each the length-prefixed records of one key run
 * (zstd-compressed if smaller, then sealed with AES-256-GCM under its key
 * through the resolver sr_keys, or the log's own key, or plain), with a
 * 32-byte section header; the chain hashes the stored bytes. Versions 1 and
 * 2 (block version 1, read only): the whole payload is one such run under
 * the block's key, and the chain hashes the plaintext.
 *
 * INVARIANTS
 *  (1) Sequence numbers are dense across blocks and segments: a block's
 *      first_seq is the previous block's first_seq + count; a segment's
 *      first_seq is its first block's first_seq.
 *  (2) durable_off <= synced/written end of the active segment; iterators never
 *      read at or past a segment's durable_off, so they never see a block that
 *      is not durable (sync=always/interval) or not written (sync=none).
 *  (3) Each block's prev_hash is the hash of the block before it (across
 *      segments); a segment's anchor is the prev_hash of its first block.
 *  (4) Only the group-commit leader touches the writer state (next_seq, tip,
 *      write_off, synced_off, the active segment's file contents). There is one
 *      leader at a time: the head of the waiter queue.
 *  (5) Every sealed segment was fsynced before its successor was created; the
 *      successor was created durably (tmp, write header, fsync, rename, fsync
 *      dir). So at most the last segment can hold unsynced bytes.
 *  (6) Poisoned (err != 0): no function writes to any file again.
 *  (7) The segment list is ordered and whole: segments in first_seq order,
 *      each starting where the one before it ends (next_seq); the active
 *      segment is the last one and is never dropped; each listed segment is
 *      referenced by the log (refs >= 1) and not removed. In a segment, the
 *      block index is dense and in file order (first at the header's end,
 *      offsets increasing, first_seq + count = the next block's first_seq,
 *      the last block ending at next_seq); blocks before durable_off hold
 *      only records < durable_seq (invariant 2 seen from the index).
 *  (8) Leader state agrees with the active segment when no group is being
 *      committed and the log is not poisoned: header <= durable_off <=
 *      synced_off <= write_off (sync=none: durable_off <= write_off), every
 *      indexed block starts before write_off, next_seq == assigned_seq ==
 *      the active segment's next_seq, durable_seq <= assigned_seq. The
 *      writer queue is a proper list (qhead NULL iff qtail NULL; qtail is
 *      its last element).
 * (10) Records are appended only to a segment of SR_LOG_VERSION: a writable
 *      log's active segment is of this build's version. Segments of older
 *      versions (SR_LOG_VERSION_MIN..) are read and never written; the open
 *      rolls past an older last segment (upgrade_tail()).
 *  (9) An iterator holds a reference on its segment, reads at or after the
 *      segment header and never past the segment's durable_off, and its
 *      decoded block position is within the block (blk_pos <= blk_count,
 *      plain_pos <= plain.len).
 * FORMAT VERSIONS (per segment, docs/format.md): version 1 and version 2
 * segments have the same bytes (blocks are SR_BLK_VERSION_1 in both);
 * version 2 says its records may hold forms of events a version 1 reader
 * does not know (the Snapshot measurements form, issue #13). Version 3
 * segments hold only SR_BLK_VERSION (2) blocks: sections (issue #16). The
 * segment header is checked first at open, so an older suiro refuses a
 * newer segment with SR_EVERSION before it reads a block (a block version it
 * did not know, in the last segment, it would take for a torn tail and cut);
 * an intact block header of the other block version is SR_ECORRUPT.
 *
 * SECTIONS (version 3): prepare() frames and compresses each key run in the
 * appending thread; the leader (seal_sections) writes the section headers,
 * draws one nonce per sealed section from the log's generator and seals
 * with the AAD binding block first_seq, section first seq, index and
 * header; then CRCs and hashes the stored payload. Readers (sec_parse:
 * structure, no key; sec_open: key, tag, zstd, framing) open a section only
 * when they need its records: recovery never opens one, iterators open one
 * when they reach it, verify opens all of them when given keys. A section
 * the resolver reports destroyed (SR_EERASED) is counted, never skipped
 * silently: the iterator returns SR_EERASED once per record.
 *
 * sr_log_check / sr_log_iter_check (log.h) return NULL or the broken one;
 * SR_INVARIANT runs them at every transition in the debug build (open,
 * each group commit, drop_below, close; each iterator block load).
 *
 * STATES                          TRANSITION              FUNCTION
 *   CLOSED -> RECOVERING           open                    sr_log_open()
 *   RECOVERING -> READY            tail checked / cut      recover_dir()
 *                                  older last segment      upgrade_tail() (writable: invariant 10)
 *                                  rolled past / replaced
 *   READY -> READY                 group write (+ fsync)   leader_commit()
 *   READY -> POISONED              write or fsync failure  poison()
 *   any -> CLOSED                  close                   sr_log_close()
 *
 * Torn-tail rule (docs/durability.md §3): a bad block in the last segment is a
 * torn tail, and is cut, unless some intact block after it records (in its
 * synced_off field) that the writer had already fsynced past the bad block's
 * offset: then the bad block had been durable, and it is SR_ECORRUPT. It is
 * SR_ECORRUPT too when the cut would drop a record <= o.durable_floor (the
 * caller knows, from its index, that the record had been durable). A bad
 * block in any other segment is always SR_ECORRUPT.
 */
#include "storage/log.h"

#include "storage/crc32c.h"
#include "storage/mtree.h"
#include "codecs/base/sr_hist.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

/* ------------------------------------------------------------------------ */
/* Structures                                                                */

typedef struct blk_ent {
    uint64_t first_seq;
    uint64_t off;
    uint32_t count;
    uint8_t flags;
} blk_ent;

typedef struct segment {
    char name[32];
    char *path;
    uint64_t first_seq;
    sr_file *file;
    blk_ent *blocks; /* guarded by lg->mu */
    size_t nblocks, capblocks;
    uint64_t durable_off;      /* readers stop here; guarded by lg->mu */
    uint64_t next_seq;         /* first seq after the last indexed block */
    uint8_t anchor[SR_HASH_LEN];
    uint16_t version;          /* the header's format version (invariant 10) */
    int refs;                  /* guarded by lg->mu; the log holds one */
    int removed;
} segment;

/* A section prepared by its appender (format.md version 3): the framed
 * records of one key run, compressed if that made them smaller; the leader
 * writes its header, and seals it (or copies it) into the group's buffer. */
typedef struct psec {
    uint32_t key_id;  /* 0: plain */
    uint32_t count, plain_len;
    uint8_t flags;    /* SR_SEC_ZSTD */
    uint8_t own;      /* sealed by the log's own key (lg->key), not the resolver */
    sr_buf stored;    /* the (compressed) framed records, before sealing */
} psec;

typedef struct pblock { /* a block prepared by its appender, before sequencing */
    uint32_t count, plain_len;
    uint32_t stored_len;         /* the payload as written: section headers, bytes, tags */
    uint8_t flags;               /* SR_BLK_CONT */
    psec *secs;
    size_t nsecs;
    /* set by the leader: the block's first seq and its Merkle leaf hash
     * (storage/mtree.h: SHA-256(0x00 || header[0..88) || the payload's
     * digest), the chain's own digest reused; sr_log_append_leaves) */
    uint64_t first_seq;
    uint8_t leaf[SR_HASH_LEN];
    uint8_t tip[SR_HASH_LEN]; /* the chain's hash of this block */
} pblock;

/* A section of a block being read: version 3 sections, or the one
 * block-level "section" of a block version 1 (legacy: the block header is
 * its AAD). */
typedef struct sec_ent {
    uint64_t first_seq;
    uint32_t key_id, count, plain_len, stored_len;
    uint32_t off;      /* of its stored bytes in the payload */
    uint32_t index;
    uint8_t alg, flags; /* sr_alg; SR_SEC_ZSTD */
    uint8_t nonce[SR_NONCE_LEN];
    uint8_t hdr[SR_SEC_HDR_LEN]; /* its header bytes (version 3), for the AAD */
} sec_ent;

typedef struct secvec {
    sec_ent *a;
    size_t n, cap;
} secvec;

typedef struct waiter {
    pblock *blocks;
    size_t nblocks;
    uint64_t nrecs;
    int is_sync;
    int done, rc;
    int seal_rc;          /* its sections could not be sealed: left out of the group */
    uint64_t first_seq;
    pthread_cond_t cv;
    struct waiter *next;
} waiter;

struct sr_log {
    char *dir;
    sr_log_opts o;
    const sr_vfs *vfs;
    sr_file *lockf;
    int has_key;
    sr_key key;

    pthread_mutex_t mu;
    segment **segs; /* guarded by mu */
    size_t nsegs, capsegs;
    waiter *qhead, *qtail;
    uint64_t durable_seq; /* guarded by mu */
    uint64_t assigned_seq; /* next seq after the last completed append; guarded by mu */
    uint8_t durable_tip[SR_HASH_LEN];
    int err;              /* poison; guarded by mu */
    sr_log_tail tail;

    /* Leader-only state (invariant 4). */
    uint64_t next_seq;
    uint8_t tip[SR_HASH_LEN];
    uint64_t write_off, synced_off;
    segment *active; /* the segment being written (never dropped) */
    sr_aead *aead;
    sr_buf iobuf;
    uint8_t nonce_prefix[8];
    uint32_t nonce_ctr;

    /* zstd compression contexts, reused by appenders; guarded by mu. */
    ZSTD_CCtx **cctx;
    size_t ncctx, capcctx;

    /* Interval syncer. */
    pthread_t syncer;
    int syncer_started, stopping;
    pthread_cond_t syncer_cv;
};

struct sr_log_iter {
    sr_log *lg;
    segment *seg; /* referenced */
    uint64_t off;
    uint64_t want; /* skip records below this */
    sr_buf raw, plain, tmp;
    sr_aead *aead;
    ZSTD_DCtx *dctx;
    /* the current block: its header, its sections; records are decoded a
     * section at a time, when the iterator reaches it */
    uint8_t hdrb[SR_BLK_HDR_LEN];
    uint16_t segver;
    uint64_t blk_first;
    uint32_t blk_count, blk_pos;
    secvec secs;
    size_t sec_i;
    int sec_state;    /* 0: not opened yet; 1: opened into plain; 2: erased */
    uint32_t sec_pos; /* records of the section returned */
    uint32_t cur_key; /* sr_log_iter_key_id */
    char segname[32]; /* where the current block is, for errors */
    uint64_t blk_off;
    size_t plain_pos;
    sr_errinfo ei;
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void set_err(sr_errinfo *ei, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(sr_errinfo *ei, int code, const char *fmt, ...)
{
    if (!ei) return;
    ei->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
    va_end(ap);
}

/* set_err plus the location, for corruption reports. */
static void set_err_at(sr_errinfo *ei, int code, const char *seg, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_err_at(sr_errinfo *ei, int code, const char *seg, uint64_t off, const char *fmt, ...)
{
    if (!ei) return;
    ei->code = code;
    snprintf(ei->segment, sizeof ei->segment, "%s", seg);
    ei->offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
    va_end(ap);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = sr_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Returns bytes consumed, 0 on malformed/overlong input. */
static size_t varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static void seg_unref_locked(segment *s)
{
    if (--s->refs > 0) return;
    sr_file_close(s->file);
    sr_free(s->blocks);
    sr_free(s->path);
    sr_free(s);
}

static int seg_add_block_locked(segment *s, uint64_t first, uint64_t off, uint32_t count,
                                uint8_t flags)
{
    if (s->nblocks == s->capblocks) {
        size_t cap = s->capblocks ? s->capblocks * 2 : 64;
        blk_ent *b = sr_realloc(s->blocks, cap * sizeof *b);
        if (!b) return SR_ENOMEM;
        s->blocks = b;
        s->capblocks = cap;
    }
    s->blocks[s->nblocks++] = (blk_ent){first, off, count, flags};
    s->next_seq = first + count;
    return SR_OK;
}

static int segs_push(sr_log *lg, segment *s)
{
    if (lg->nsegs == lg->capsegs) {
        size_t cap = lg->capsegs ? lg->capsegs * 2 : 16;
        segment **p = sr_realloc(lg->segs, cap * sizeof *p);
        if (!p) return SR_ENOMEM;
        lg->segs = p;
        lg->capsegs = cap;
    }
    lg->segs[lg->nsegs++] = s;
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Invariant checks (7)-(9); the caller holds lg->mu                          */

/* Invariant 7 over the segment list (guarded by mu). deep: every block of
 * every segment (open, drop, close, tests); else each segment's ends and the
 * active segment's last block (each group commit: O(segments)). */
static const char *check_segs_locked(const sr_log *lg, int deep)
{
    if (!lg->nsegs || !lg->segs) return "(7) the log has no segment";
    if (lg->nsegs > lg->capsegs) return "(7) more segments than the list holds";
    for (size_t i = 0; i < lg->nsegs; i++) {
        const segment *s = lg->segs[i];
        if (!s) return "(7) a NULL segment in the list";
        if (s->refs < 1) return "(7) a listed segment is not referenced by the log";
        if (s->removed) return "(7) a listed segment is marked removed";
        if (s->next_seq < s->first_seq) return "(7) a segment ends before it starts";
        if (s->durable_off < SR_SEG_HDR_LEN) return "(7) a segment's durable_off is inside its header";
        if (s->nblocks > s->capblocks) return "(7) more blocks than the block index holds";
        if (i + 1 < lg->nsegs && s->next_seq != lg->segs[i + 1]->first_seq)
            return "(1) a segment does not start where the one before it ends";
        if (s->nblocks) {
            const blk_ent *f = &s->blocks[0], *l = &s->blocks[s->nblocks - 1];
            if (f->first_seq != s->first_seq || f->off != SR_SEG_HDR_LEN)
                return "(7) a segment's first block is not at its header's end with its first_seq";
            if (l->first_seq + l->count != s->next_seq) return "(7) a segment's last block does not end at next_seq";
            if (i + 1 < lg->nsegs && l->off >= s->durable_off)
                return "(2) a sealed segment has a block at or past its durable_off";
        } else if (s->next_seq != s->first_seq)
            return "(7) an empty segment with records";
        if (!deep && s != lg->active) continue;
        size_t from = deep || s->nblocks < 2 ? 1 : s->nblocks - 1;
        for (size_t k = from; k < s->nblocks; k++) {
            const blk_ent *a = &s->blocks[k - 1], *b = &s->blocks[k];
            if (b->off <= a->off) return "(7) block offsets do not increase";
            if (a->first_seq + a->count != b->first_seq) return "(1) block sequence numbers are not dense";
        }
        for (size_t k = from - 1; k < s->nblocks; k++) {
            const blk_ent *b = &s->blocks[k];
            if (b->off < s->durable_off && b->first_seq + b->count > lg->durable_seq)
                return "(2) a block before durable_off holds records at or past durable_seq";
        }
    }
    if (lg->active && lg->active != lg->segs[lg->nsegs - 1]) return "(7) the active segment is not the last one";
    if (lg->durable_seq < lg->segs[lg->nsegs - 1]->first_seq && !lg->o.readonly)
        return "(2) durable_seq is before the active segment";
    if (lg->durable_seq > lg->assigned_seq) return "(8) durable_seq is past assigned_seq";
    if (!lg->qhead != !lg->qtail) return "(8) the writer queue has a head without a tail (or the reverse)";
    if (lg->qtail && lg->qtail->next) return "(8) the writer queue's tail is not its last waiter";
    return NULL;
}

/* Invariant 8: leader state against the active segment. Only the leader (or
 * a caller with no leader possible: open, close, no waiter queued) may call
 * it, with mu held. */
static const char *check_leader_locked(const sr_log *lg)
{
    const segment *as = lg->active;
    if (!as) return "(8) no active segment";
    if (lg->err) return NULL; /* poisoned: the leader state is what the failed group left (6) */
    if (lg->write_off < SR_SEG_HDR_LEN) return "(8) write_off is inside the segment header";
    if (lg->synced_off > lg->write_off) return "(8) synced_off is past write_off";
    if (as->durable_off > (lg->o.sync == SR_SYNC_NONE ? lg->write_off : lg->synced_off))
        return "(2) the active segment's durable_off is past what was synced (written, for sync=none)";
    if (as->nblocks && as->blocks[as->nblocks - 1].off >= lg->write_off)
        return "(8) an indexed block starts at or past write_off";
    if (lg->next_seq != lg->assigned_seq) return "(8) next_seq differs from assigned_seq outside a group";
    if (lg->next_seq != as->next_seq) return "(8) next_seq differs from the active segment's next_seq";
    if (!lg->o.readonly && as->version != SR_LOG_VERSION) return "(10) the active segment is of an older version";
    return NULL;
}

const char *sr_log_check(const sr_log *lg)
{
    if (!lg) return "NULL log";
    pthread_mutex_t *mu = (pthread_mutex_t *)&lg->mu; /* the lock is not the state checked */
    pthread_mutex_lock(mu);
    const char *why = check_segs_locked(lg, 1);
    if (!why && !lg->qhead) why = check_leader_locked(lg); /* no leader: its state is at rest */
    pthread_mutex_unlock(mu);
    return why;
}

const char *sr_log_iter_check(const sr_log_iter *it)
{
    if (!it || !it->lg) return "(9) NULL iterator";
    const segment *s = it->seg;
    if (!s) return "(9) the iterator has no segment";
    if (it->blk_pos > it->blk_count) return "(9) the iterator is past the end of its block";
    if (it->plain_pos > it->plain.len) return "(9) the iterator is past the end of its block's records";
    if (it->off < SR_SEG_HDR_LEN) return "(9) the iterator reads inside the segment header";
    pthread_mutex_t *mu = (pthread_mutex_t *)&it->lg->mu;
    pthread_mutex_lock(mu);
    const char *why = NULL;
    if (s->refs < 1) why = "(9) the iterator's segment is not referenced";
    else if (it->blk_count && it->off > s->durable_off) /* a block is loaded: it was durable */
        why = "(2) the iterator read past its segment's durable_off";
    pthread_mutex_unlock(mu);
    return why;
}

#ifdef SR_DEBUG
/* run a check that must hold mu, under SR_INVARIANT */
#define LOG_INVARIANT_LOCKED(lg, deep, leader)                                          \
    do {                                                                                \
        SR_INVARIANT(check_segs_locked((lg), (deep)));                                  \
        if (leader) SR_INVARIANT(check_leader_locked(lg));                              \
    } while (0)
#else
#define LOG_INVARIANT_LOCKED(lg, deep, leader) ((void)0)
#endif

void sr_log_test_break(sr_log *lg, int what)
{
    const uint64_t big = (uint64_t)1 << 40;
    int undo = what < 0;
    pthread_mutex_lock(&lg->mu);
    segment *as = lg->segs[lg->nsegs - 1];
    switch (undo ? -what : what) {
    case SR_LOG_BREAK_SYNCED: lg->synced_off = undo ? lg->synced_off - big : lg->synced_off + big; break;
    case SR_LOG_BREAK_SEQ: lg->next_seq = undo ? lg->next_seq - 1 : lg->next_seq + 1; break;
    case SR_LOG_BREAK_BLOCKS:
        for (size_t i = 0; i < lg->nsegs; i++) {
            segment *s = lg->segs[i];
            if (s->nblocks < 3) continue;
            uint64_t t = s->blocks[s->nblocks - 1].off; /* swapped: offsets no longer increase */
            s->blocks[s->nblocks - 1].off = s->blocks[s->nblocks - 2].off;
            s->blocks[s->nblocks - 2].off = t;
            break;
        }
        break;
    case SR_LOG_BREAK_ORDER:
        if (lg->nsegs > 1) lg->segs[1]->first_seq = undo ? lg->segs[1]->first_seq - 1 : lg->segs[1]->first_seq + 1;
        break;
    case SR_LOG_BREAK_DURABLE: as->durable_off = undo ? as->durable_off - big : as->durable_off + big; break;
    case SR_LOG_BREAK_VERSION: as->version = undo ? SR_LOG_VERSION : SR_LOG_VERSION_MIN; break;
    default: break;
    }
    pthread_mutex_unlock(&lg->mu);
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

typedef struct blk_hdr {
    uint8_t version, flags;
    uint64_t first_seq;
    uint32_t count, plain_len, stored_len, key_id;
    uint64_t synced_off;
    uint8_t nonce[SR_NONCE_LEN];
    uint8_t prev[SR_HASH_LEN];
    uint32_t payload_crc;
} blk_hdr;

static void seg_hdr_encode(uint8_t out[SR_SEG_HDR_LEN], uint64_t first_seq,
                           const uint8_t anchor[SR_HASH_LEN])
{
    memset(out, 0, SR_SEG_HDR_LEN);
    memcpy(out, SR_SEG_MAGIC, 8);
    sr_put_le16(out + 8, SR_LOG_VERSION);
    sr_put_le16(out + 10, SR_SEG_HDR_LEN);
    sr_put_le32(out + 12, 0);
    sr_put_le64(out + 16, first_seq);
    memcpy(out + 24, anchor, SR_HASH_LEN);
    sr_put_le32(out + 56, 0);
    sr_put_le32(out + 60, sr_crc32c(0, out, 60));
}

static void blk_hdr_encode(uint8_t out[SR_BLK_HDR_LEN], const blk_hdr *h)
{
    sr_put_le32(out + 0, SR_BLK_MAGIC);
    out[4] = h->version;
    out[5] = h->flags;
    sr_put_le16(out + 6, SR_BLK_HDR_LEN);
    sr_put_le64(out + 8, h->first_seq);
    sr_put_le32(out + 16, h->count);
    sr_put_le32(out + 20, h->plain_len);
    sr_put_le32(out + 24, h->stored_len);
    sr_put_le32(out + 28, h->key_id);
    sr_put_le64(out + 32, h->synced_off);
    memcpy(out + 40, h->nonce, SR_NONCE_LEN);
    sr_put_le32(out + 52, 0);
    memcpy(out + 56, h->prev, SR_HASH_LEN);
    /* bytes 88..95 (payload crc, header crc) are filled by the caller */
}

static void blk_hdr_seal(uint8_t out[SR_BLK_HDR_LEN], uint32_t payload_crc)
{
    sr_put_le32(out + 88, payload_crc);
    sr_put_le32(out + 92, sr_crc32c(0, out, 92));
}

/* The block version of a segment version (format.md): block version 2
 * (sections) in version 3 segments, block version 1 before. */
static unsigned blk_version_of(unsigned segver) { return segver >= 3 ? SR_BLK_VERSION : SR_BLK_VERSION_1; }

/* The reason blk_hdr_decode gives for an intact header (magic and CRC hold)
 * of the other block version: never a torn write, so never cut as one. */
static const char WHY_BLKVER[] = "block version does not match the segment's format version";

/* Parse and check a block header's own integrity, for a segment whose blocks
 * are of block version blkver. Returns NULL if fine, or a reason string. */
static const char *blk_hdr_decode(const uint8_t in[SR_BLK_HDR_LEN], unsigned blkver, blk_hdr *h)
{
    if (sr_get_le32(in) != SR_BLK_MAGIC) return "bad block magic";
    if (sr_get_le32(in + 92) != sr_crc32c(0, in, 92)) return "block header checksum mismatch";
    h->version = in[4];
    h->flags = in[5];
    if (h->version != SR_BLK_VERSION && h->version != SR_BLK_VERSION_1) return "unsupported block version";
    if (h->version != blkver) return WHY_BLKVER;
    if (sr_get_le16(in + 6) != SR_BLK_HDR_LEN) return "bad block header length";
    if (h->flags & ~(h->version == SR_BLK_VERSION ? SR_BLK2_KNOWN_FLAGS : SR_BLK_KNOWN_FLAGS))
        return "unknown block flags";
    h->first_seq = sr_get_le64(in + 8);
    h->count = sr_get_le32(in + 16);
    h->plain_len = sr_get_le32(in + 20);
    h->stored_len = sr_get_le32(in + 24);
    h->key_id = sr_get_le32(in + 28); /* block version 2: the number of sections */
    h->synced_off = sr_get_le64(in + 32);
    memcpy(h->nonce, in + 40, SR_NONCE_LEN);
    memcpy(h->prev, in + 56, SR_HASH_LEN);
    h->payload_crc = sr_get_le32(in + 88);
    if (h->count == 0) return "empty block";
    if (h->version == SR_BLK_VERSION) {
        static const uint8_t zero[SR_NONCE_LEN + 4];
        if (h->key_id == 0 || h->key_id > h->count) return "bad section count";
        if (memcmp(in + 40, zero, sizeof zero)) return "nonzero reserved bytes";
        if (h->stored_len < (uint64_t)h->key_id * SR_SEC_HDR_LEN) return "payload too short";
    } else if ((h->flags & SR_BLK_AES_GCM) && h->stored_len < SR_TAG_LEN)
        return "payload too short";
    return NULL;
}

static void block_hash(const uint8_t hdr[SR_BLK_HDR_LEN], const uint8_t digest[SR_HASH_LEN],
                       uint8_t out[SR_HASH_LEN])
{
    sr_sha256_2(hdr, SR_BLK_AAD_LEN, digest, SR_HASH_LEN, out);
}

static int secvec_push(secvec *v, sec_ent **out)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        sec_ent *p = sr_realloc(v->a, cap * sizeof *p);
        if (!p) return SR_ENOMEM;
        v->a = p;
        v->cap = cap;
    }
    *out = &v->a[v->n++];
    memset(*out, 0, sizeof **out);
    return SR_OK;
}

/*
 * The sections of a block whose payload CRC held (format.md "Reading
 * rules", version 3): each header inside the payload, known algorithm and
 * flags, a key id exactly when sealed, at least one record, its bytes inside
 * the payload; together they hold the block's count and plain_len and fill
 * its payload exactly. A block version 1 gives its one block-level section.
 * Checks structure only: no key is needed. SR_OK, SR_ECORRUPT (*why),
 * SR_ENOMEM.
 */
static int sec_parse(const blk_hdr *h, const uint8_t *payload, secvec *v, const char **why)
{
    sec_ent *e;
    int rc;
    v->n = 0;
    if (h->version == SR_BLK_VERSION_1) {
        if ((rc = secvec_push(v, &e))) return rc;
        e->first_seq = h->first_seq;
        e->key_id = h->key_id;
        e->count = h->count;
        e->plain_len = h->plain_len;
        e->stored_len = h->stored_len;
        e->alg = (h->flags & SR_BLK_AES_GCM) ? SR_ALG_AES_256_GCM : SR_ALG_NONE;
        e->flags = (h->flags & SR_BLK_ZSTD) ? SR_SEC_ZSTD : 0;
        memcpy(e->nonce, h->nonce, SR_NONCE_LEN);
        if (!e->alg && e->key_id) {
            *why = "unencrypted block with a key id";
            return SR_ECORRUPT;
        }
        if (!(e->flags & SR_SEC_ZSTD) && e->stored_len - (e->alg ? SR_TAG_LEN : 0) != e->plain_len) {
            *why = "stored length differs from plain length";
            return SR_ECORRUPT;
        }
        return SR_OK;
    }
    static const uint8_t zero[SR_NONCE_LEN];
    uint64_t pos = 0, seq = h->first_seq, plain = 0;
    for (uint32_t i = 0; i < h->key_id; i++) {
        if (h->stored_len - pos < SR_SEC_HDR_LEN) {
            *why = "truncated section header";
            return SR_ECORRUPT;
        }
        const uint8_t *p = payload + pos;
        if ((rc = secvec_push(v, &e))) return rc;
        memcpy(e->hdr, p, SR_SEC_HDR_LEN);
        e->index = i;
        e->first_seq = seq;
        e->key_id = sr_get_le32(p);
        e->alg = p[4];
        e->flags = p[5];
        e->count = sr_get_le32(p + 8);
        e->plain_len = sr_get_le32(p + 12);
        e->stored_len = sr_get_le32(p + 16);
        memcpy(e->nonce, p + 20, SR_NONCE_LEN);
        e->off = (uint32_t)(pos + SR_SEC_HDR_LEN);
        const char *bad = NULL;
        if (e->alg != SR_ALG_NONE && e->alg != SR_ALG_AES_256_GCM) bad = "unknown section algorithm";
        else if ((e->flags & ~SR_SEC_KNOWN_FLAGS) || sr_get_le16(p + 6)) bad = "unknown section flags";
        else if (e->count == 0) bad = "empty section";
        else if (e->count > h->count - (seq - h->first_seq)) bad = "section records past the block's count";
        else if (e->alg && !e->key_id) bad = "sealed section without a key id";
        else if (!e->alg && (e->key_id || memcmp(e->nonce, zero, sizeof zero))) bad = "plain section with a key id or a nonce";
        else if (e->stored_len > h->stored_len - pos - SR_SEC_HDR_LEN) bad = "section extends past the payload";
        else if (e->alg && e->stored_len < SR_TAG_LEN) bad = "section too short for its tag";
        else if (!(e->flags & SR_SEC_ZSTD) && e->stored_len - (e->alg ? SR_TAG_LEN : 0) != e->plain_len)
            bad = "section's stored length differs from its plain length";
        if (bad) {
            *why = bad;
            return SR_ECORRUPT;
        }
        pos += SR_SEC_HDR_LEN + (uint64_t)e->stored_len;
        seq += e->count;
        plain += e->plain_len;
    }
    if (pos != h->stored_len || seq != h->first_seq + h->count || plain != h->plain_len) {
        *why = "sections do not fill the block";
        return SR_ECORRUPT;
    }
    return SR_OK;
}

/* The associated data of a sealed version 3 section (format.md): the
 * block's first_seq, the section's first seq and index, and its header, so
 * that a section moved to another place, block or key fails. (A block
 * version 1's is its block header's bytes 0..87.) */
static void sec_aad3(const sec_ent *e, uint64_t blk_first, uint8_t out[SR_SEC_AAD_LEN])
{
    sr_put_le64(out, blk_first);
    sr_put_le64(out + 8, e->first_seq);
    sr_put_le32(out + 16, e->index);
    memcpy(out + 20, e->hdr, SR_SEC_HDR_LEN);
}

/*
 * Open one section into plain (its plain_len bytes): authenticate and
 * decrypt (the log's own key if the key id is its, else the resolver),
 * decompress, check the record framing. stored points at its stored bytes;
 * hdrb is the block header (the AAD of a block version 1). Returns SR_OK;
 * SR_EKEY (no key for it: why names the key id); SR_EERASED (the resolver
 * says the key was destroyed); SR_ECORRUPT (why); SR_ENOMEM, SR_ECRYPTO.
 */
static int sec_open(const sr_log *lg, sr_aead **aead, ZSTD_DCtx **dctx, sr_buf *tmp, const uint8_t *hdrb,
                    uint64_t blk_first, const sec_ent *e, const uint8_t *stored, sr_buf *plain, char *why,
                    size_t whylen)
{
    int rc;
    size_t body = e->stored_len;
    const uint8_t *src = stored;
    plain->len = 0;
    if ((rc = sr_buf_reserve(plain, (size_t)e->plain_len + 1))) return rc;
    if (e->alg) {
        body -= SR_TAG_LEN;
        uint8_t *dst;
        if (e->flags & SR_SEC_ZSTD) {
            tmp->len = 0;
            if ((rc = sr_buf_reserve(tmp, body + 1))) return rc;
            dst = tmp->data;
        } else
            dst = plain->data;
        uint8_t aadb[SR_SEC_AAD_LEN];
        const uint8_t *aad = hdrb;
        size_t aadlen = SR_BLK_AAD_LEN;
        if (hdrb[4] != SR_BLK_VERSION_1) {
            sec_aad3(e, blk_first, aadb);
            aad = aadb;
            aadlen = SR_SEC_AAD_LEN;
        }
        char msg[160] = "";
        if (lg->has_key && e->key_id == lg->key.id) {
            if (!*aead && (rc = sr_aead_create(&lg->key, aead))) return rc;
            rc = sr_aead_open(*aead, e->nonce, aad, aadlen, stored, body, dst, stored + body);
        } else if (lg->o.keys && lg->o.keys->open) {
            rc = lg->o.keys->open(lg->o.keys->ctx, e->key_id, e->nonce, aad, aadlen, stored, body, dst,
                                  stored + body, msg, sizeof msg);
        } else if (lg->has_key) {
            snprintf(why, whylen, "sealed with key id %08x, the configured key has id %08x", e->key_id, lg->key.id);
            return SR_EKEY;
        } else {
            snprintf(why, whylen, "sealed with key id %08x and no key is configured", e->key_id);
            return SR_EKEY;
        }
        if (rc == SR_ECORRUPT) snprintf(why, whylen, "authentication failed (tampered or moved section, or wrong key)");
        else if (rc == SR_EERASED) snprintf(why, whylen, "sealed with key id %08x, which was destroyed (erased)", e->key_id);
        else if (rc == SR_EKEY) snprintf(why, whylen, "sealed with key id %08x: %s", e->key_id, msg[0] ? msg : "no such key");
        if (rc) return rc;
        src = dst;
    }
    if (e->flags & SR_SEC_ZSTD) {
        if (!*dctx && !(*dctx = ZSTD_createDCtx())) return SR_ENOMEM;
        size_t r = ZSTD_decompressDCtx(*dctx, plain->data, e->plain_len, src, body);
        if (ZSTD_isError(r) || r != e->plain_len) {
            snprintf(why, whylen, "decompression failed");
            return SR_ECORRUPT;
        }
    } else if (!e->alg && body) {
        memcpy(plain->data, src, body);
    }
    plain->len = e->plain_len;
    /* framing: exactly count records filling plain_len */
    size_t pos = 0;
    for (uint32_t i = 0; i < e->count; i++) {
        uint64_t len;
        size_t k = varint_get(plain->data + pos, plain->len - pos, &len);
        if (!k || len > plain->len - pos - k) {
            snprintf(why, whylen, "bad record framing");
            return SR_ECORRUPT;
        }
        pos += k + (size_t)len;
    }
    if (pos != plain->len) {
        snprintf(why, whylen, "record count does not fill the %s", hdrb[4] == SR_BLK_VERSION_1 ? "block" : "section");
        return SR_ECORRUPT;
    }
    return SR_OK;
}

/* The digest the chain takes of a block (format.md "Hash chain"): version 3,
 * SHA-256 of the stored payload (no key needed); block version 1, SHA-256
 * of the plaintext, which needs its one section opened into plain. */
static int blk_digest(const sr_log *lg, sr_aead **aead, ZSTD_DCtx **dctx, sr_buf *tmp, const uint8_t *hdrb,
                      const blk_hdr *h, const secvec *v, const uint8_t *payload, sr_buf *plain,
                      uint8_t digest[SR_HASH_LEN], char *why, size_t whylen)
{
    if (h->version == SR_BLK_VERSION) {
        sr_sha256(payload, h->stored_len, digest);
        return SR_OK;
    }
    int rc = sec_open(lg, aead, dctx, tmp, hdrb, h->first_seq, &v->a[0], payload, plain, why, whylen);
    if (!rc) sr_sha256(plain->data, plain->len, digest);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Appender side: prepare blocks outside the lock                           */

static ZSTD_CCtx *cctx_get(sr_log *lg)
{
    ZSTD_CCtx *c = NULL;
    pthread_mutex_lock(&lg->mu);
    if (lg->ncctx) c = lg->cctx[--lg->ncctx];
    pthread_mutex_unlock(&lg->mu);
    if (!c) {
        c = ZSTD_createCCtx();
        if (c && ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, lg->o.zstd_level))) {
            ZSTD_freeCCtx(c);
            c = NULL;
        }
    }
    return c;
}

static void cctx_put(sr_log *lg, ZSTD_CCtx *c)
{
    pthread_mutex_lock(&lg->mu);
    if (lg->ncctx == lg->capcctx) {
        size_t cap = lg->capcctx ? lg->capcctx * 2 : 4;
        ZSTD_CCtx **p = sr_realloc(lg->cctx, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&lg->mu);
            ZSTD_freeCCtx(c);
            return;
        }
        lg->cctx = p;
        lg->capcctx = cap;
    }
    lg->cctx[lg->ncctx++] = c;
    pthread_mutex_unlock(&lg->mu);
}

static void pblocks_free(pblock *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < b[i].nsecs; k++) sr_buf_release(&b[i].secs[k].stored);
        sr_free(b[i].secs);
    }
    sr_free(b);
}

/* How the section of key_id is sealed: 0 plain, 1 the log's own key, 2 the
 * resolver. SR_EINVAL when nothing can seal it; SR_EKEY when the resolver
 * does not know it (or knows it destroyed: no AEAD). */
static int seal_by(const sr_log *lg, uint32_t key_id, uint8_t *own)
{
    *own = 0;
    if (!key_id) return SR_OK;
    if (lg->has_key && key_id == lg->key.id) {
        *own = 1;
        return SR_OK;
    }
    const sr_keys *k = lg->o.keys;
    if (!k || !k->seal) return SR_EINVAL;
    int alg = k->alg ? k->alg(k->ctx, key_id) : SR_ALG_AES_256_GCM;
    if (alg == SR_ALG_NONE) return SR_EKEY;
    return alg == SR_ALG_AES_256_GCM ? SR_OK : SR_EINVAL; /* the one AEAD sections name */
}

#define REC_KEY(ids, uniform, i) ((ids) ? (ids)[i] : (uniform))

/* Build one block from recs[0..n) (plain_len framed bytes): a section per
 * run of records under one key, each framed (and compressed when that makes
 * it smaller) by this appender; the leader seals them. */
static int prepare_one(sr_log *lg, ZSTD_CCtx *cctx, const sr_slice *recs, const uint32_t *ids, uint32_t uniform,
                       size_t n, size_t plain_len, sr_buf *scratch, pblock *pb)
{
    int rc;
    size_t nsecs = 1;
    for (size_t i = 1; i < n; i++) nsecs += REC_KEY(ids, uniform, i) != REC_KEY(ids, uniform, i - 1);
    pb->count = (uint32_t)n;
    pb->plain_len = (uint32_t)plain_len;
    pb->flags = 0;
    pb->secs = sr_calloc(nsecs, sizeof *pb->secs);
    if (!pb->secs) return SR_ENOMEM;
    pb->nsecs = nsecs;
    uint64_t stored_len = 0;
    size_t i = 0;
    for (size_t k = 0; k < nsecs; k++) {
        psec *ps = &pb->secs[k];
        uint32_t id = REC_KEY(ids, uniform, i);
        size_t j = i, plain = 0;
        while (j < n && REC_KEY(ids, uniform, j) == id) plain += sr_varint_len(recs[j].len) + recs[j].len, j++;
        ps->key_id = id;
        ps->count = (uint32_t)(j - i);
        ps->plain_len = (uint32_t)plain;
        sr_buf_init(&ps->stored);
        if ((rc = seal_by(lg, id, &ps->own))) return rc;
        int zstd = cctx && plain >= 64;
        sr_buf *fr = zstd ? scratch : &ps->stored; /* uncompressed: framed in place, no copy */
        fr->len = 0;
        if ((rc = sr_buf_reserve(fr, plain + 1))) return rc;
        uint8_t *p = fr->data;
        for (size_t r = i; r < j; r++) {
            p = sr_varint_put(p, recs[r].len);
            if (recs[r].len) memcpy(p, recs[r].data, recs[r].len);
            p += recs[r].len;
        }
        fr->len = plain;
        if (zstd) {
            size_t bound = ZSTD_compressBound(plain);
            if ((rc = sr_buf_reserve(&ps->stored, bound))) return rc;
            size_t z = ZSTD_compress2(cctx, ps->stored.data, bound, scratch->data, plain);
            if (!ZSTD_isError(z) && z < plain) {
                ps->stored.len = z;
                ps->flags = SR_SEC_ZSTD;
            } else {
                if ((rc = sr_buf_reserve(&ps->stored, plain + 1))) return rc;
                memcpy(ps->stored.data, scratch->data, plain);
                ps->stored.len = plain;
            }
        }
        stored_len += SR_SEC_HDR_LEN + ps->stored.len + (id ? SR_TAG_LEN : 0);
        i = j;
    }
    if (stored_len > UINT32_MAX) return SR_ETOOBIG;
    pb->stored_len = (uint32_t)stored_len;
    return SR_OK;
}

static int prepare(sr_log *lg, const sr_slice *recs, const uint32_t *ids, uint32_t uniform, size_t n, pblock **out,
                   size_t *nout)
{
    int rc = SR_OK;
    size_t cap = 4, nb = 0;
    pblock *blocks = sr_calloc(cap, sizeof *blocks);
    sr_buf scratch;
    sr_buf_init(&scratch);
    ZSTD_CCtx *cctx = NULL;
    if (!blocks) return SR_ENOMEM;
    if (lg->o.zstd_level != 0 && !(cctx = cctx_get(lg))) {
        rc = SR_ENOMEM;
        goto done;
    }
    size_t i = 0;
    while (i < n) {
        size_t j = i, plain = 0;
        while (j < n) {
            size_t add = sr_varint_len(recs[j].len) + recs[j].len;
            if (j > i && (plain + add > lg->o.block_bytes || j - i >= UINT32_MAX - 1)) break;
            plain += add;
            j++;
        }
        if (plain > UINT32_MAX - 64) {
            rc = SR_ETOOBIG;
            goto done;
        }
        if (nb == cap) {
            pblock *p = sr_realloc(blocks, cap * 2 * sizeof *p);
            if (!p) {
                rc = SR_ENOMEM;
                goto done;
            }
            memset(p + cap, 0, cap * sizeof *p);
            blocks = p;
            cap *= 2;
        }
        rc = prepare_one(lg, cctx, recs + i, ids ? ids + i : NULL, uniform, j - i, plain, &scratch, &blocks[nb]);
        nb++;
        if (rc) goto done;
        i = j;
    }
    for (size_t k = 0; k + 1 < nb; k++) blocks[k].flags |= SR_BLK_CONT;
done:
    if (cctx) cctx_put(lg, cctx);
    sr_buf_release(&scratch);
    if (rc) {
        pblocks_free(blocks, nb);
        return rc;
    }
    *out = blocks;
    *nout = nb;
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Leader side: sequence, encrypt, chain, write, sync                       */

/* The group's fdatasync, its latency in o.sync_hist (the metrics'
 * suiro_fdatasync_seconds): two vDSO clock reads per group. */
static int timed_sync(sr_log *lg, sr_file *f)
{
    if (!lg->o.sync_hist) return lg->vfs->sync(f);
    static const uint64_t bounds[] = SR_HIST_US_BOUNDS;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = lg->vfs->sync(f);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t us = ((int64_t)b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
    sr_hist_add(lg->o.sync_hist, bounds, SR_HIST_US_N, us > 0 ? (uint64_t)us : 0);
    return rc;
}

static int poison_locked(sr_log *lg, int rc)
{
    if (lg->err == SR_OK) lg->err = rc;
    return rc;
}

static void next_nonce(sr_log *lg, uint8_t nonce[SR_NONCE_LEN])
{
    if (lg->o.nonce_fn) {
        lg->o.nonce_fn(lg->o.nonce_ctx, nonce);
        return;
    }
    if (lg->nonce_ctr == UINT32_MAX) {
        /* 2^32 blocks under one prefix: draw a new prefix. */
        if (sr_random(lg->nonce_prefix, sizeof lg->nonce_prefix)) abort();
        lg->nonce_ctr = 0;
    }
    memcpy(nonce, lg->nonce_prefix, 8);
    sr_put_le32(nonce + 8, lg->nonce_ctr++);
}

static segment *active_seg_last(sr_log *lg) { return lg->segs[lg->nsegs - 1]; }

/* Create a segment file durably (invariant 5): tmp, header, fsync, rename,
 * fsync dir. The previous segment must already be synced. */
static int segment_create(sr_log *lg, uint64_t first_seq, const uint8_t anchor[SR_HASH_LEN],
                          segment **out)
{
    int rc;
    uint8_t hdr[SR_SEG_HDR_LEN];
    char tmpname[48];
    char *tmp = NULL;
    sr_file *f = NULL;
    segment *s = sr_calloc(1, sizeof *s);
    if (!s) return SR_ENOMEM;
    snprintf(s->name, sizeof s->name, "%020" PRIu64 ".seg", first_seq);
    snprintf(tmpname, sizeof tmpname, "%s.tmp", s->name);
    s->path = path_join(lg->dir, s->name);
    tmp = path_join(lg->dir, tmpname);
    if (!s->path || !tmp) {
        rc = SR_ENOMEM;
        goto fail;
    }
    s->first_seq = s->next_seq = first_seq;
    memcpy(s->anchor, anchor, SR_HASH_LEN);
    s->version = SR_LOG_VERSION;
    s->refs = 1;
    seg_hdr_encode(hdr, first_seq, anchor);
    if ((rc = lg->vfs->open(lg->vfs, tmp, SR_VFS_WRITE | SR_VFS_CREATE, &f))) goto fail;
    if ((rc = lg->vfs->truncate(f, 0))) goto fail;
    if ((rc = lg->vfs->pwrite(f, hdr, sizeof hdr, 0))) goto fail;
    if ((rc = lg->vfs->sync(f))) goto fail;
    if ((rc = lg->vfs->rename(lg->vfs, tmp, s->path))) goto fail;
    if ((rc = lg->vfs->sync_dir(lg->vfs, lg->dir))) goto fail;
    s->file = f;
    s->durable_off = SR_SEG_HDR_LEN;
    sr_free(tmp);
    *out = s;
    return SR_OK;
fail:
    sr_file_close(f);
    sr_free(tmp);
    sr_free(s->path);
    sr_free(s);
    return rc;
}

/* Roll to a new segment before a group that would not fit (segments are a
 * soft limit: a group is never split across segments). The old segment is
 * fsynced first and then sealed (invariant 5). */
static int roll(sr_log *lg)
{
    int rc;
    segment *old = lg->active, *ns = NULL;
    if (lg->synced_off < lg->write_off) {
        if ((rc = lg->vfs->sync(old->file))) return rc;
        lg->synced_off = lg->write_off;
    }
    if ((rc = segment_create(lg, lg->next_seq, lg->tip, &ns))) return rc;
    pthread_mutex_lock(&lg->mu);
    old->durable_off = lg->write_off; /* all of it is durable now */
    lg->durable_seq = lg->next_seq;
    memcpy(lg->durable_tip, lg->tip, SR_HASH_LEN);
    rc = segs_push(lg, ns);
    if (rc) seg_unref_locked(ns);
    else lg->active = ns; /* with the list, under the lock: (7) the active segment is the last */
    pthread_mutex_unlock(&lg->mu);
    if (rc) return rc;
    lg->write_off = lg->synced_off = SR_SEG_HDR_LEN;
    return SR_OK;
}

/* Write pb's sections at payload (format.md version 3): each header, then
 * its bytes, sealed under its key (a fresh nonce from the log's generator;
 * the AAD binds it to this block and place) or copied. Leader only. SR_OK;
 * the resolver's error (SR_EKEY, SR_EERASED, SR_ECRYPTO): nothing is
 * sequenced. */
static int seal_sections(sr_log *lg, const pblock *pb, uint64_t blk_first, uint8_t *payload)
{
    uint64_t seq = blk_first;
    size_t pos = 0;
    for (size_t k = 0; k < pb->nsecs; k++) {
        const psec *ps = &pb->secs[k];
        uint8_t *sh = payload + pos, *out = sh + SR_SEC_HDR_LEN;
        uint32_t stored = (uint32_t)ps->stored.len + (ps->key_id ? SR_TAG_LEN : 0);
        sr_put_le32(sh, ps->key_id);
        sh[4] = ps->key_id ? SR_ALG_AES_256_GCM : SR_ALG_NONE;
        sh[5] = ps->flags;
        sr_put_le16(sh + 6, 0);
        sr_put_le32(sh + 8, ps->count);
        sr_put_le32(sh + 12, ps->plain_len);
        sr_put_le32(sh + 16, stored);
        if (ps->key_id) {
            sec_ent e = {.first_seq = seq, .index = (uint32_t)k};
            next_nonce(lg, sh + 20);
            memcpy(e.hdr, sh, SR_SEC_HDR_LEN);
            uint8_t aad[SR_SEC_AAD_LEN];
            sec_aad3(&e, blk_first, aad);
            uint8_t *tag = out + ps->stored.len;
            int rc;
            if (ps->own) {
                rc = sr_aead_seal(lg->aead, sh + 20, aad, sizeof aad, ps->stored.data, ps->stored.len, out, tag);
            } else {
                char msg[160];
                rc = lg->o.keys->seal(lg->o.keys->ctx, ps->key_id, sh + 20, aad, sizeof aad, ps->stored.data,
                                      ps->stored.len, out, tag, msg, sizeof msg);
            }
            if (rc) return rc;
        } else {
            memset(sh + 20, 0, SR_NONCE_LEN);
            if (ps->stored.len) memcpy(out, ps->stored.data, ps->stored.len);
        }
        pos += SR_SEC_HDR_LEN + stored;
        seq += ps->count;
    }
    return SR_OK;
}

/*
 * The commit protocol (docs/durability.md §2); order is load-bearing.
 *  1. If the group would push the active segment past segment_bytes: fsync
 *     it, create the next segment durably, continue there.
 *  2. For each block: assign sequence numbers, fill the header (synced_off =
 *     what is known durable now, prev = chain tip), seal its sections (AAD:
 *     the block's and the section's place and header), checksum, advance the
 *     chain over the stored bytes; gather all into one buffer. A batch whose
 *     sections cannot be sealed (the resolver: SR_EKEY, SR_EERASED) is undone
 *     alone and fails with that code; the rest of the group goes on.
 *  3. pwrite the gathered blocks at write_off (not yet durable).
 *  4. fdatasync (sync=always, or a sync was asked for).
 *  5. (caller, under the lock) index the blocks; publish durable_off and
 *     durable_seq (now visible to iterators); complete the waiters.
 * A failure in 3-4 cuts the segment back to where the group started (best
 * effort: those bytes were never acknowledged), then poisons the handle
 * (invariant 6): after a failed write or fsync nobody knows what is on disk,
 * and recovery at reopen decides.
 */
static int leader_commit(sr_log *lg, waiter *first, waiter *last, int *synced, int *io_failed,
                         blk_ent **pidx, size_t *npidx, size_t *cappidx)
{
    *io_failed = 0;
    int rc = SR_OK, need_sync = lg->o.sync == SR_SYNC_ALWAYS;
    uint8_t hdr[SR_BLK_HDR_LEN];
    uint64_t total = 0;
    for (waiter *w = first;; w = w->next) {
        for (size_t b = 0; b < w->nblocks; b++) total += SR_BLK_HDR_LEN + w->blocks[b].stored_len;
        if (w == last) break;
    }
    if (total && lg->write_off > SR_SEG_HDR_LEN && lg->write_off + total > lg->o.segment_bytes &&
        (rc = roll(lg))) {
        /* out of memory before or after creating the (empty) segment file is
         * harmless: a later roll recreates it; an I/O failure poisons */
        *io_failed = rc != SR_ENOMEM;
        return rc;
    }
    /* Until the write, a failure (memory, cipher) undoes the sequencing and
     * leaves the handle usable. */
    uint64_t grp_off = lg->write_off, grp_seq = lg->next_seq;
    uint8_t grp_tip[SR_HASH_LEN];
    memcpy(grp_tip, lg->tip, SR_HASH_LEN);
    lg->iobuf.len = 0;
    if ((rc = sr_buf_reserve(&lg->iobuf, (size_t)total))) goto undo;
    for (waiter *w = first;; w = w->next) {
        if (w->is_sync) need_sync = 1;
        w->first_seq = lg->next_seq;
        w->seal_rc = SR_OK;
        /* where this waiter starts: a seal that fails (the resolver: a key
         * destroyed or unknown since prepare(), a cipher error) leaves this
         * waiter out of the group, not the others */
        uint64_t w_seq = lg->next_seq, w_off = lg->write_off;
        size_t w_len = lg->iobuf.len, w_npidx = *npidx;
        uint8_t w_tip[SR_HASH_LEN];
        memcpy(w_tip, lg->tip, SR_HASH_LEN);
        for (size_t b = 0; b < w->nblocks; b++) {
            pblock *pb = &w->blocks[b];
            size_t blen = SR_BLK_HDR_LEN + pb->stored_len;
            blk_hdr h = {
                .version = SR_BLK_VERSION,
                .flags = pb->flags,
                .first_seq = lg->next_seq,
                .count = pb->count,
                .plain_len = pb->plain_len,
                .stored_len = pb->stored_len,
                .key_id = (uint32_t)pb->nsecs, /* block version 2: the number of sections */
                .synced_off = lg->synced_off,
            };
            memcpy(h.prev, lg->tip, SR_HASH_LEN);
            blk_hdr_encode(hdr, &h);
            uint8_t *dst = lg->iobuf.data + lg->iobuf.len;
            uint8_t *payload = dst + SR_BLK_HDR_LEN;
            int src = seal_sections(lg, pb, h.first_seq, payload);
            if (src) {
                w->seal_rc = src;
                lg->next_seq = w_seq;
                lg->write_off = w_off;
                lg->iobuf.len = w_len;
                *npidx = w_npidx;
                memcpy(lg->tip, w_tip, SR_HASH_LEN);
                break;
            }
            blk_hdr_seal(hdr, sr_crc32c(0, payload, pb->stored_len));
            memcpy(dst, hdr, SR_BLK_HDR_LEN);
            uint8_t digest[SR_HASH_LEN];
            sr_sha256(payload, pb->stored_len, digest); /* the chain covers the sealed bytes */
            block_hash(hdr, digest, lg->tip);
            pb->first_seq = h.first_seq;
            sr_mt_leaf_hash2(hdr, SR_BLK_AAD_LEN, digest, SR_HASH_LEN, pb->leaf); /* the same digest: docs/audit.md */
            memcpy(pb->tip, lg->tip, SR_HASH_LEN);
            if (*npidx == *cappidx) {
                size_t cap = *cappidx ? *cappidx * 2 : 16;
                blk_ent *p = sr_realloc(*pidx, cap * sizeof *p);
                if (!p) {
                    rc = SR_ENOMEM;
                    goto undo;
                }
                *pidx = p;
                *cappidx = cap;
            }
            (*pidx)[(*npidx)++] = (blk_ent){h.first_seq, lg->write_off, h.count, h.flags};
            lg->iobuf.len += blen;
            lg->write_off += blen;
            lg->next_seq += pb->count;
        }
        if (w == last) break;
    }
    /* Reserve the index entries now, so that nothing can fail between the
     * write and publishing it (a failure there would leave durable records
     * whose append reported an error). */
    pthread_mutex_lock(&lg->mu);
    segment *as = lg->active;
    if (as->nblocks + *npidx > as->capblocks) {
        size_t cap = as->capblocks ? as->capblocks : 64;
        while (cap < as->nblocks + *npidx) cap *= 2;
        blk_ent *nb = sr_realloc(as->blocks, cap * sizeof *nb);
        if (nb) {
            as->blocks = nb;
            as->capblocks = cap;
        } else
            rc = SR_ENOMEM;
    }
    pthread_mutex_unlock(&lg->mu);
    if (rc) goto undo;
    *io_failed = 1; /* from here on, a failure poisons */
    if (lg->iobuf.len) rc = lg->vfs->pwrite(lg->active->file, lg->iobuf.data, lg->iobuf.len, grp_off);
    if (!rc && need_sync && lg->synced_off < lg->write_off) {
        rc = timed_sync(lg, lg->active->file);
        if (!rc) lg->synced_off = lg->write_off;
    }
    if (rc && lg->write_off > grp_off) {
        /* Best effort: remove the unacknowledged bytes so that a reopen does
         * not resurrect records whose append reported failure. */
        if (lg->vfs->truncate(lg->active->file, grp_off) == SR_OK) (void)!lg->vfs->sync(lg->active->file);
    }
    if (rc) return rc;
    *io_failed = 0;
    *synced = need_sync || lg->o.sync == SR_SYNC_NONE;
    return SR_OK;
undo:
    lg->next_seq = grp_seq;
    lg->write_off = grp_off;
    memcpy(lg->tip, grp_tip, SR_HASH_LEN);
    lg->iobuf.len = 0;
    *npidx = 0;
    return rc;
}

/* Group commit: enqueue, wait to be done or to lead (LevelDB's writer queue). */
static int submit(sr_log *lg, waiter *w)
{
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
    w->next = NULL;
    pthread_mutex_lock(&lg->mu);
    if (lg->err) {
        int rc = lg->err == SR_ECLOSED ? SR_ECLOSED : SR_EPOISONED;
        pthread_mutex_unlock(&lg->mu);
        pthread_cond_destroy(&w->cv);
        return rc;
    }
    if (lg->qtail) lg->qtail->next = w;
    else lg->qhead = w;
    lg->qtail = w;
    while (!w->done && lg->qhead != w) pthread_cond_wait(&w->cv, &lg->mu);
    if (w->done) {
        int rc = w->rc;
        pthread_mutex_unlock(&lg->mu);
        pthread_cond_destroy(&w->cv);
        return rc;
    }
    /* Leader: take a group of bounded size. */
    waiter *last = w;
    size_t bytes = 0;
    for (size_t b = 0; b < w->nblocks; b++) bytes += w->blocks[b].stored_len;
    while (last->next) {
        size_t nb = 0;
        for (size_t b = 0; b < last->next->nblocks; b++) nb += last->next->blocks[b].stored_len;
        if (bytes + nb > (16u << 20)) break;
        bytes += nb;
        last = last->next;
    }
    int rc = lg->err ? SR_EPOISONED : SR_OK;
    pthread_mutex_unlock(&lg->mu);

    blk_ent *pidx = NULL;
    size_t npidx = 0, cappidx = 0;
    int synced = 0, io_failed = 0;
    if (!rc) rc = leader_commit(lg, w, last, &synced, &io_failed, &pidx, &npidx, &cappidx);

    pthread_mutex_lock(&lg->mu);
    if (rc) {
        if (io_failed) poison_locked(lg, rc);
    } else {
        for (size_t k = 0; k < npidx && !rc; k++)
            rc = seg_add_block_locked(lg->active, pidx[k].first_seq, pidx[k].off, pidx[k].count,
                                      pidx[k].flags);
        if (rc) poison_locked(lg, rc);
        else lg->assigned_seq = lg->next_seq;
        if (!rc && synced) {
            lg->active->durable_off = lg->o.sync == SR_SYNC_NONE ? lg->write_off : lg->synced_off;
            lg->durable_seq = lg->next_seq;
            memcpy(lg->durable_tip, lg->tip, SR_HASH_LEN);
        }
    }
    LOG_INVARIANT_LOCKED(lg, 0, 1); /* the leader, at the end of its group */
    sr_free(pidx);
    for (waiter *x = lg->qhead;;) {
        waiter *nx = x->next;
        x->rc = rc ? rc : x->seal_rc;
        x->done = 1;
        if (x != w) pthread_cond_signal(&x->cv);
        if (x == last) {
            lg->qhead = nx;
            break;
        }
        x = nx;
    }
    if (!lg->qhead) lg->qtail = NULL;
    else pthread_cond_signal(&lg->qhead->cv);
    rc = w->rc; /* the group's, or this batch's own seal failure */
    pthread_mutex_unlock(&lg->mu);
    pthread_cond_destroy(&w->cv);
    return rc;
}

/* Both appends: ids NULL means every record under uniform. leaves: NULL, or
 * gets the batch's blocks (sr_log_append_leaves). */
static int append(sr_log *lg, const sr_slice *recs, const uint32_t *ids, uint32_t uniform, size_t n,
                  uint64_t *first_seq, sr_log_leaf **leaves, size_t *nleaves)
{
    if (!lg || !recs || n == 0 || lg->o.readonly) return SR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > lg->o.max_record_bytes) return SR_ETOOBIG;
        if (recs[i].len && !recs[i].data) return SR_EINVAL;
    }
    waiter w;
    memset(&w, 0, sizeof w);
    int rc = prepare(lg, recs, ids, uniform, n, &w.blocks, &w.nblocks);
    if (rc) return rc;
    w.nrecs = n;
    /* the leaves' room before anything is written: a failure after the
     * write would report an error for durable records */
    if (leaves && !(*leaves = sr_calloc(w.nblocks ? w.nblocks : 1, sizeof **leaves))) {
        pblocks_free(w.blocks, w.nblocks);
        return SR_ENOMEM;
    }
    rc = submit(lg, &w);
    if (leaves && rc != SR_OK) {
        sr_free(*leaves);
        *leaves = NULL;
    }
    if (rc == SR_OK && leaves) {
        for (size_t b = 0; b < w.nblocks; b++) {
            (*leaves)[b].first_seq = w.blocks[b].first_seq;
            (*leaves)[b].count = w.blocks[b].count;
            memcpy((*leaves)[b].hash, w.blocks[b].leaf, SR_HASH_LEN);
            memcpy((*leaves)[b].tip, w.blocks[b].tip, SR_HASH_LEN);
        }
        *nleaves = w.nblocks;
    }
    pblocks_free(w.blocks, w.nblocks);
    if (rc == SR_OK && first_seq) *first_seq = w.first_seq;
    return rc;
}

int sr_log_append_leaves(sr_log *lg, const sr_slice *recs, const uint32_t *key_ids, size_t n, uint64_t *first_seq,
                         sr_log_leaf **leaves, size_t *nleaves)
{
    if (!leaves || !nleaves) return SR_EINVAL;
    *leaves = NULL;
    *nleaves = 0;
    return append(lg, recs, key_ids, key_ids ? 0 : lg && lg->has_key ? lg->key.id : 0, n, first_seq, leaves, nleaves);
}

int sr_log_append_keyed(sr_log *lg, const sr_slice *recs, const uint32_t *key_ids, size_t n, uint64_t *first_seq)
{
    if (!key_ids) return SR_EINVAL;
    return append(lg, recs, key_ids, 0, n, first_seq, NULL, NULL);
}

int sr_log_append(sr_log *lg, const sr_slice *recs, size_t n, uint64_t *first_seq)
{
    return append(lg, recs, NULL, lg && lg->has_key ? lg->key.id : 0, n, first_seq, NULL, NULL);
}

int sr_log_sync(sr_log *lg)
{
    if (!lg) return SR_EINVAL;
    if (lg->o.readonly) return SR_OK;
    waiter w;
    memset(&w, 0, sizeof w);
    w.is_sync = 1;
    return submit(lg, &w);
}

static void *syncer_main(void *arg)
{
    sr_log *lg = arg;
    pthread_mutex_lock(&lg->mu);
    while (!lg->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)lg->o.sync_interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&lg->syncer_cv, &lg->mu, &ts);
        if (lg->stopping || lg->err) break;
        pthread_mutex_unlock(&lg->mu);
        int rc = sr_log_sync(lg); /* a failure poisons the handle; appends report it */
        (void)rc;
        pthread_mutex_lock(&lg->mu);
    }
    pthread_mutex_unlock(&lg->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Recovery                                                                  */

typedef struct name_list {
    char **names;
    size_t n, cap;
    const sr_vfs *vfs;
    const char *dir;
    int readonly;
} name_list;

static int is_seg_name(const char *s, uint64_t *seq)
{
    if (strlen(s) != 24 || strcmp(s + 20, ".seg") != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *seq = v;
    return 1;
}

static int list_cb(void *ctx, const char *name)
{
    name_list *l = ctx;
    uint64_t seq;
    size_t len = strlen(name);
    if (len > 8 && !strcmp(name + len - 8, ".seg.tmp")) {
        /* an interrupted segment creation: never renamed, so never used */
        if (!l->readonly) {
            char *p = path_join(l->dir, name);
            if (!p) return SR_ENOMEM;
            int rc = l->vfs->unlink(l->vfs, p);
            sr_free(p);
            if (rc && rc != SR_ENOTFOUND) return rc;
        }
        return SR_OK;
    }
    if (!is_seg_name(name, &seq)) return SR_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **p = sr_realloc(l->names, cap * sizeof *p);
        if (!p) return SR_ENOMEM;
        l->names = p;
        l->cap = cap;
    }
    char *d = sr_malloc(len + 1);
    if (!d) return SR_ENOMEM;
    memcpy(d, name, len + 1);
    l->names[l->n++] = d;
    return SR_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Scan forward from off for an intact block (valid header and payload CRC)
 * whose synced_off is past bad_off. 1 if found (the bad block had been
 * durable: corruption), 0 if not (a torn tail), <0 on I/O error. */
static int later_block_proves_durable(sr_file *f, unsigned blkver, uint64_t bad_off, uint64_t size)
{
    uint64_t start = bad_off + 1;
    if (start >= size) return 0;
    uint64_t len = size - start;
    if (len > (256u << 20)) len = 256u << 20; /* segments are far smaller in practice */
    uint8_t *buf = sr_malloc((size_t)len);
    if (!buf) return SR_ENOMEM;
    int rc = sr_vfs_read_exact(f, buf, (size_t)len, start), found = 0;
    if (rc < 0) {
        sr_free(buf);
        return rc;
    }
    for (size_t i = 0; i + SR_BLK_HDR_LEN <= len; i++) {
        if (sr_get_le32(buf + i) != SR_BLK_MAGIC) continue;
        blk_hdr h;
        if (blk_hdr_decode(buf + i, blkver, &h)) continue;
        if (i + SR_BLK_HDR_LEN + (uint64_t)h.stored_len > len) continue;
        if (sr_crc32c(0, buf + i + SR_BLK_HDR_LEN, h.stored_len) != h.payload_crc) continue;
        if (h.synced_off > bad_off) {
            found = 1;
            break;
        }
    }
    sr_free(buf);
    return found;
}

/* Copy the torn bytes aside (forensics), then cut them and fsync. */
static int cut_tail(sr_log *lg, segment *s, uint64_t off, uint64_t size)
{
    int rc;
    char name[80];
    sr_file *f = NULL;
    uint8_t *buf = NULL;
    snprintf(name, sizeof name, "%s.torn-%" PRIu64, s->name, off);
    char *p = path_join(lg->dir, name);
    if (!p) return SR_ENOMEM;
    uint64_t n = size - off;
    if (n <= (64u << 20)) {
        buf = sr_malloc((size_t)n);
        if (!buf) {
            rc = SR_ENOMEM;
            goto done;
        }
        if ((rc = sr_vfs_read_exact(s->file, buf, (size_t)n, off)) < 0) goto done;
        if ((rc = lg->vfs->open(lg->vfs, p, SR_VFS_WRITE | SR_VFS_CREATE, &f))) goto done;
        if ((rc = lg->vfs->truncate(f, 0))) goto done;
        if ((rc = lg->vfs->pwrite(f, buf, (size_t)n, 0))) goto done;
        if ((rc = lg->vfs->sync(f))) goto done;
    }
    if ((rc = lg->vfs->truncate(s->file, off))) goto done;
    if ((rc = lg->vfs->sync(s->file))) goto done;
    rc = lg->vfs->sync_dir(lg->vfs, lg->dir);
done:
    sr_file_close(f);
    sr_free(buf);
    sr_free(p);
    return rc;
}

/* Read the block at off in s: its header (checked) and its stored payload
 * (into raw; its CRC checked). SR_OK; SR_ECORRUPT with *why; an I/O error. */
static int read_block(segment *s, uint64_t off, sr_buf *raw, uint8_t hdrb[SR_BLK_HDR_LEN], blk_hdr *h,
                      const char **why)
{
    int rc = sr_vfs_read_exact(s->file, hdrb, SR_BLK_HDR_LEN, off);
    if (rc == SR_DONE) {
        *why = "truncated block header";
        return SR_ECORRUPT;
    }
    if (rc) return rc;
    if ((*why = blk_hdr_decode(hdrb, blk_version_of(s->version), h))) return SR_ECORRUPT;
    raw->len = 0;
    if ((rc = sr_buf_reserve(raw, (size_t)h->stored_len + 1))) return rc;
    rc = sr_vfs_read_exact(s->file, raw->data, h->stored_len, off + SR_BLK_HDR_LEN);
    if (rc == SR_DONE) {
        *why = "block extends past end of file";
        return SR_ECORRUPT;
    }
    if (rc) return rc;
    if (sr_crc32c(0, raw->data, h->stored_len) != h->payload_crc) {
        *why = "payload checksum mismatch";
        return SR_ECORRUPT;
    }
    raw->len = h->stored_len;
    return SR_OK;
}

/* Whether this log can open sections of key_id, as recovery checks it:
 * SR_OK, or SR_EKEY with msg naming the key (format.md "Reading rules"). */
static int key_known(const sr_log *lg, uint32_t key_id, char *msg, size_t msglen)
{
    if (lg->has_key && key_id == lg->key.id) return SR_OK;
    const sr_keys *k = lg->o.keys;
    if (k && k->open) {
        if (!k->alg || k->alg(k->ctx, key_id) != SR_ALG_NONE) return SR_OK;
        snprintf(msg, msglen, "key id %08x is not in the keyring", key_id);
    } else if (lg->has_key)
        snprintf(msg, msglen, "key id %08x, the configured key has id %08x", key_id, lg->key.id);
    else
        snprintf(msg, msglen, "key id %08x and no key is configured", key_id);
    return SR_EKEY;
}

/*
 * The recovery scan reads a segment through a window of SCAN_WIN bytes
 * instead of one pread per block header and one per payload: a segment of
 * small blocks (one event each under sync=always) has tens of thousands of
 * them. Where the previous block was large, only the next header is read
 * (headers-only scans of sealed segments do not read their payloads).
 */
enum { SCAN_WIN = 256u << 10 };

typedef struct scanwin {
    sr_file *f;
    uint64_t size; /* the file's size */
    uint8_t *buf;
    size_t cap, len;
    uint64_t off;  /* file offset of buf[0] */
} scanwin;

/* Point *out at n bytes at off, reading max(n, want) bytes when they are not
 * in the window: SR_OK, SR_DONE when the file ends first, or an error. */
static int win_get(scanwin *w, uint64_t off, size_t n, size_t want, const uint8_t **out)
{
    if (off >= w->off && off + n <= w->off + w->len) {
        *out = w->buf + (off - w->off);
        return SR_OK;
    }
    if (off > w->size || n > w->size - off) return SR_DONE;
    if (want < n) want = n;
    if (want > w->size - off) want = (size_t)(w->size - off);
    if (want > w->cap) {
        uint8_t *nb = sr_realloc(w->buf, want);
        if (!nb) return SR_ENOMEM;
        w->buf = nb;
        w->cap = want;
    }
    w->len = 0;
    int rc = sr_vfs_read_exact(w->f, w->buf, want, off);
    if (rc) return rc;
    w->off = off;
    w->len = want;
    *out = w->buf;
    return SR_OK;
}

/*
 * Open and scan one segment: header, then every block header (and, for the
 * last segment, every payload CRC). On a bad block, *bad_off / *bad_why are
 * set and scanning stops (SR_OK is returned; the caller applies the torn-tail
 * rule). Fatal problems return an error.
 */
static int scan_segment(sr_log *lg, segment *s, int last, uint64_t expect_seq, uint64_t *size_out,
                        uint64_t *bad_off, const char **bad_why, sr_errinfo *ei)
{
    int rc;
    uint8_t hb[SR_SEG_HDR_LEN];
    uint64_t size;
    int wr = last && !lg->o.readonly;
    if ((rc = lg->vfs->open(lg->vfs, s->path, wr ? SR_VFS_WRITE : SR_VFS_READ, &s->file))) {
        set_err(ei, rc, "%s: cannot open: %s", s->name, sr_strerror(rc));
        return rc;
    }
    if ((rc = lg->vfs->size(s->file, &size))) return rc;
    rc = sr_vfs_read_exact(s->file, hb, SR_SEG_HDR_LEN, 0);
    if (rc < 0) return rc;
    if (rc == SR_DONE || memcmp(hb, SR_SEG_MAGIC, 8) != 0) {
        set_err_at(ei, SR_ECORRUPT, s->name, 0, "%s offset 0: %s", s->name,
                rc == SR_DONE ? "truncated segment header" : "bad segment magic");
        return SR_ECORRUPT;
    }
    s->version = sr_get_le16(hb + 8);
    if (s->version < SR_LOG_VERSION_MIN || s->version > SR_LOG_VERSION) {
        set_err_at(ei, SR_EVERSION, s->name, 0, "%s: segment format version %u; this build reads versions %d to %d",
                s->name, s->version, SR_LOG_VERSION_MIN, SR_LOG_VERSION);
        return SR_EVERSION;
    }
    if (sr_get_le32(hb + 60) != sr_crc32c(0, hb, 60) || sr_get_le16(hb + 10) != SR_SEG_HDR_LEN) {
        set_err_at(ei, SR_ECORRUPT, s->name, 0, "%s offset 0: segment header checksum mismatch", s->name);
        return SR_ECORRUPT;
    }
    if (sr_get_le64(hb + 16) != s->first_seq) {
        set_err_at(ei, SR_ECORRUPT, s->name, 0, "%s: header says first seq %" PRIu64 ", file name says %" PRIu64,
                s->name, sr_get_le64(hb + 16), s->first_seq);
        return SR_ECORRUPT;
    }
    if (expect_seq && s->first_seq != expect_seq) {
        set_err_at(ei, SR_ECORRUPT, s->name, 0, "%s: starts at seq %" PRIu64 " but the previous segment ends before %" PRIu64
                " (missing or extra segment)", s->name, s->first_seq, expect_seq);
        return SR_ECORRUPT;
    }
    memcpy(s->anchor, hb + 24, SR_HASH_LEN);
    s->next_seq = s->first_seq;
    *size_out = size;
    *bad_off = UINT64_MAX;
    uint64_t off = SR_SEG_HDR_LEN, seq = s->first_seq;
    const uint8_t *hdrb = NULL;
    scanwin win = {.f = s->file, .size = size};
    unsigned blkver = blk_version_of(s->version);
    secvec secs = {0};
    uint32_t known_id = 0; /* the last key id found known */
    size_t want = SCAN_WIN; /* how much to read for the next header */
    rc = SR_OK;
    while (off < size) {
        blk_hdr h;
        const char *why = NULL;
        int r = win_get(&win, off, SR_BLK_HDR_LEN, want, &hdrb);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == SR_DONE) why = "truncated block header";
        else if ((why = blk_hdr_decode(hdrb, blkver, &h))) {
            if (why == WHY_BLKVER) { /* an intact header: not a torn write */
                set_err_at(ei, SR_ECORRUPT, s->name, off, "%s offset %" PRIu64 ": block version %u in a segment of format version %u",
                           s->name, off, hdrb[4], s->version);
                rc = SR_ECORRUPT;
                break;
            }
        } else if (off + SR_BLK_HDR_LEN + (uint64_t)h.stored_len > size)
            why = "block extends past end of file";
        else if (h.first_seq != seq)
            why = "block sequence number out of order";
        else if (s->nblocks == 0 && memcmp(h.prev, s->anchor, SR_HASH_LEN) != 0)
            why = "first block's previous hash differs from the segment anchor";
        if (!why && h.version == SR_BLK_VERSION_1 && (h.flags & SR_BLK_AES_GCM)) {
            char msg[120];
            if (!lg->has_key && !lg->o.keys) {
                set_err(ei, SR_EKEY, "%s offset %" PRIu64 ": blocks are encrypted (key id %08x) and no key is configured",
                        s->name, off, h.key_id);
                rc = SR_EKEY;
                break;
            }
            if (key_known(lg, h.key_id, msg, sizeof msg)) {
                if (lg->o.keys)
                    set_err(ei, SR_EKEY, "%s offset %" PRIu64 ": block (seq %" PRIu64 "..%" PRIu64 ") encrypted with %s",
                            s->name, off, h.first_seq, h.first_seq + h.count - 1, msg);
                else
                    set_err(ei, SR_EKEY, "%s offset %" PRIu64 ": block encrypted with key id %08x, configured key has id %08x",
                            s->name, off, h.key_id, lg->key.id);
                rc = SR_EKEY;
                break;
            }
        }
        if (!why && last) {
            const uint8_t *pl = NULL;
            if ((r = win_get(&win, off + SR_BLK_HDR_LEN, h.stored_len, SCAN_WIN, &pl)) < 0) {
                rc = r;
                break;
            }
            if (r == SR_DONE) why = "block extends past end of file";
            else if (sr_crc32c(0, pl, h.stored_len) != h.payload_crc) why = "payload checksum mismatch";
            else if (h.version == SR_BLK_VERSION && (r = sec_parse(&h, pl, &secs, &why)) == SR_ENOMEM) {
                rc = r;
                break;
            }
            /* the keys of its sealed sections: known, destroyed (erased: not
             * opened here) or SR_EKEY naming the key and the records (a
             * read-only open with no key at all checks the chain alone) */
            for (size_t k = 0; !why && h.version == SR_BLK_VERSION && k < secs.n && (lg->has_key || lg->o.keys || !lg->o.readonly); k++) {
                const sec_ent *e = &secs.a[k];
                char msg[120];
                if (!e->alg || e->key_id == known_id) continue; /* runs of one key: asked once */
                if (key_known(lg, e->key_id, msg, sizeof msg) == SR_OK) {
                    known_id = e->key_id;
                } else {
                    set_err(ei, SR_EKEY, "%s offset %" PRIu64 ": records %" PRIu64 "..%" PRIu64 " are sealed with %s",
                            s->name, off, e->first_seq, e->first_seq + e->count - 1, msg);
                    rc = SR_EKEY;
                    break;
                }
            }
            if (rc) break;
        }
        if (why) {
            *bad_off = off;
            *bad_why = why;
            break;
        }
        pthread_mutex_lock(&lg->mu);
        r = seg_add_block_locked(s, h.first_seq, off, h.count, h.flags);
        pthread_mutex_unlock(&lg->mu);
        if (r) {
            rc = r;
            break;
        }
        seq += h.count;
        off += SR_BLK_HDR_LEN + h.stored_len;
        /* headers only, after a large block: read just the next header */
        want = !last && h.stored_len >= SCAN_WIN / 4 ? SR_BLK_HDR_LEN : SCAN_WIN;
    }
    sr_free(win.buf);
    sr_free(secs.a);
    return rc;
}

/* Invariant (10) at a writable open: a last segment of an older version (a
 * directory an older suiro wrote) is never appended to, and never changed.
 * Holding blocks, it is sealed as it is and the log rolls to a new segment of
 * this version (roll: synced first, created durably). Empty (no blocks:
 * nothing to keep), it is replaced by an empty segment of this version of the
 * same name and anchor (segment_create's tmp + rename: a crash leaves the old
 * one or the new one), since a rolled segment would need its name. */
static int upgrade_tail(sr_log *lg, sr_errinfo *ei)
{
    segment *old = lg->active;
    if (lg->o.readonly || old->version == SR_LOG_VERSION) return SR_OK;
    unsigned oldv = old->version;
    char oldname[sizeof old->name];
    snprintf(oldname, sizeof oldname, "%s", old->name);
    int rc;
    if (old->nblocks) {
        rc = roll(lg);
    } else {
        segment *ns = NULL;
        if (!(rc = segment_create(lg, old->first_seq, old->anchor, &ns))) {
            pthread_mutex_lock(&lg->mu);
            lg->segs[lg->nsegs - 1] = lg->active = ns;
            seg_unref_locked(old);
            pthread_mutex_unlock(&lg->mu);
            lg->write_off = lg->synced_off = SR_SEG_HDR_LEN;
        }
    }
    if (rc)
        set_err(ei, rc, "%s: cannot start a segment of format version %d after %s (version %u): %s", lg->dir,
                SR_LOG_VERSION, oldname, oldv, sr_strerror(rc));
    return rc;
}

static int recover_dir(sr_log *lg, sr_errinfo *ei)
{
    int rc;
    name_list nl = {NULL, 0, 0, lg->vfs, lg->dir, lg->o.readonly};
    sr_buf raw, plain, tmp;
    sr_buf_init(&raw);
    sr_buf_init(&plain);
    sr_buf_init(&tmp);
    secvec secs = {0};
    ZSTD_DCtx *dctx = NULL;
    sr_aead *aead = NULL;

    if ((rc = lg->vfs->list(lg->vfs, lg->dir, list_cb, &nl))) {
        set_err(ei, rc, "cannot list %s: %s", lg->dir, sr_strerror(rc));
        goto done;
    }
    if (nl.n) qsort(nl.names, nl.n, sizeof *nl.names, cmp_names);
    for (size_t i = 0; i < nl.n; i++) {
        segment *s = sr_calloc(1, sizeof *s);
        if (!s) {
            rc = SR_ENOMEM;
            goto done;
        }
        snprintf(s->name, sizeof s->name, "%s", nl.names[i]);
        (void)is_seg_name(s->name, &s->first_seq);
        s->refs = 1;
        s->path = path_join(lg->dir, s->name);
        if (!s->path || (rc = segs_push(lg, s))) {
            sr_free(s->path);
            sr_free(s);
            rc = rc ? rc : SR_ENOMEM;
            goto done;
        }
    }
    if (lg->nsegs == 0) {
        if (lg->o.readonly) {
            rc = SR_ENOTFOUND;
            set_err(ei, rc, "%s: no log segments", lg->dir);
            goto done;
        }
        uint8_t zero[SR_HASH_LEN] = {0};
        segment *s = NULL;
        if ((rc = segment_create(lg, 1, zero, &s))) {
            set_err(ei, rc, "%s: cannot create the first segment: %s", lg->dir, sr_strerror(rc));
            goto done;
        }
        /* scanned below like any other segment */
        sr_file_close(s->file);
        s->file = NULL;
        if ((rc = segs_push(lg, s))) {
            seg_unref_locked(s);
            goto done;
        }
    }
    uint64_t expect = 0, size = 0;
    for (size_t i = 0; i < lg->nsegs; i++) {
        segment *s = lg->segs[i];
        int last = i + 1 == lg->nsegs;
        uint64_t bad = UINT64_MAX;
        const char *why = NULL;
        if ((rc = scan_segment(lg, s, last, expect, &size, &bad, &why, ei))) {
            if (!ei || !ei->msg[0]) set_err(ei, rc, "%s: %s", s->name, sr_strerror(rc));
            goto done;
        }
        if (bad != UINT64_MAX) {
            if (!last) {
                rc = SR_ECORRUPT;
                set_err_at(ei, rc, s->name, bad, "%s offset %" PRIu64 ": %s (not the last segment: corruption)",
                           s->name, bad, why);
                goto done;
            }
            int durable = later_block_proves_durable(s->file, blk_version_of(s->version), bad, size);
            if (durable < 0) {
                rc = durable;
                goto done;
            }
            if (durable) {
                rc = SR_ECORRUPT;
                set_err_at(ei, rc, s->name, bad,
                           "%s offset %" PRIu64 ": %s (a later block shows it had been synced: corruption)", s->name,
                           bad, why);
                goto done;
            }
        }
        uint64_t end = bad == UINT64_MAX ? size : bad;
        if (last) {
            /* An unfinished multi-block batch (CONT on the last block) was never
             * acknowledged: cut back to its start (atomic batches). */
            size_t nb = s->nblocks;
            while (nb > 0 && (s->blocks[nb - 1].flags & SR_BLK_CONT)) {
                size_t k = nb - 1;
                while (k > 0 && (s->blocks[k - 1].flags & SR_BLK_CONT)) k--;
                end = s->blocks[k].off;
                if (!why) why = "unfinished multi-block batch";
                nb = k;
            }
            if (nb != s->nblocks) {
                s->nblocks = nb;
                s->next_seq = nb ? s->blocks[nb - 1].first_seq + s->blocks[nb - 1].count : s->first_seq;
            }
            if (end < size && lg->o.durable_floor && s->next_seq <= lg->o.durable_floor) {
                /* The cut would drop records the index had applied, which it
                 * does only once they were fsynced: they were acknowledged,
                 * so this is corruption, never a torn tail. Nothing is cut. */
                rc = SR_ECORRUPT;
                set_err_at(ei, rc, s->name, end,
                           "%s offset %" PRIu64 " (block seq %" PRIu64 "): %s; the index had applied records up to %" PRIu64
                           ", so they were durable: corruption, not a torn tail. Nothing was cut; restore %s from a "
                           "backup",
                           s->name, end, s->next_seq, why ? why : "bad block", lg->o.durable_floor, s->name);
                goto done;
            }
            if (end < size) {
                lg->tail.torn = 1;
                snprintf(lg->tail.segment, sizeof lg->tail.segment, "%s", s->name);
                lg->tail.offset = end;
                lg->tail.bytes = size - end;
                snprintf(lg->tail.reason, sizeof lg->tail.reason, "%s", why ? why : "torn tail");
                if (!lg->o.readonly && (rc = cut_tail(lg, s, end, size))) {
                    set_err(ei, rc, "%s: cannot cut the torn tail at %" PRIu64 ": %s", s->name, end,
                            sr_strerror(rc));
                    goto done;
                }
            }
            if (!lg->o.readonly && (rc = lg->vfs->sync(s->file))) goto done;
        }
        s->durable_off = end;
        expect = s->next_seq;
        if (last) {
            lg->write_off = lg->synced_off = end;
            lg->next_seq = s->next_seq;
        }
    }
    /* Chain tip: the hash of the last segment's last block (version 3: of
     * its stored bytes; versions 1 and 2: of its plaintext, decoded), or,
     * when the last segment holds no block, its anchor (the hash of the
     * block before it: verify checks that they agree). */
    segment *ls = active_seg_last(lg)->nblocks ? active_seg_last(lg) : NULL;
    if (ls) {
        uint8_t hdrb[SR_BLK_HDR_LEN], dg[SR_HASH_LEN];
        blk_hdr h;
        const char *why = NULL;
        char whyb[200] = "";
        uint64_t off = ls->blocks[ls->nblocks - 1].off;
        rc = read_block(ls, off, &raw, hdrb, &h, &why);
        if (!rc) rc = sec_parse(&h, raw.data, &secs, &why);
        if (!rc) rc = blk_digest(lg, &aead, &dctx, &tmp, hdrb, &h, &secs, raw.data, &plain, dg, whyb, sizeof whyb);
        if (rc) {
            set_err_at(ei, rc, ls->name, off, "%s offset %" PRIu64 ": last block: %s", ls->name, off,
                       whyb[0] ? whyb : why ? why : sr_strerror(rc));
            goto done;
        }
        block_hash(hdrb, dg, lg->tip);
    } else {
        memcpy(lg->tip, active_seg_last(lg)->anchor, SR_HASH_LEN);
    }
    memcpy(lg->durable_tip, lg->tip, SR_HASH_LEN);
    lg->durable_seq = lg->assigned_seq = lg->next_seq;
    lg->active = active_seg_last(lg);
    rc = upgrade_tail(lg, ei);
done:
    for (size_t i = 0; i < nl.n; i++) sr_free(nl.names[i]);
    sr_free(nl.names);
    sr_buf_release(&raw);
    sr_buf_release(&plain);
    sr_buf_release(&tmp);
    sr_free(secs.a);
    ZSTD_freeDCtx(dctx);
    sr_aead_destroy(aead);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                              */

int sr_log_open(const char *dir, const sr_log_opts *opts, sr_log **out, sr_errinfo *ei)
{
    int rc;
    if (ei) {
        ei->code = 0;
        ei->msg[0] = 0;
        ei->segment[0] = 0;
        ei->offset = 0;
    }
    if (!dir || !out) return SR_EINVAL;
    sr_log *lg = sr_calloc(1, sizeof *lg);
    if (!lg) return SR_ENOMEM;
    if (opts) lg->o = *opts;
    lg->vfs = lg->o.vfs ? lg->o.vfs : &sr_vfs_posix;
    if (!lg->o.segment_bytes) lg->o.segment_bytes = 64u << 20;
    if (!lg->o.block_bytes) lg->o.block_bytes = 1u << 20;
    if (!lg->o.max_record_bytes) lg->o.max_record_bytes = 64u << 20;
    if (!lg->o.sync_interval_ms) lg->o.sync_interval_ms = 100;
    if (lg->o.segment_bytes < 4096 || lg->o.max_record_bytes > (1u << 30) ||
        lg->o.zstd_level < ZSTD_minCLevel() || lg->o.zstd_level > ZSTD_maxCLevel() ||
        lg->o.sync > SR_SYNC_NONE) {
        set_err(ei, SR_EINVAL, "invalid log options");
        sr_free(lg);
        return SR_EINVAL;
    }
    if (lg->o.key) {
        lg->key = *lg->o.key;
        lg->has_key = 1;
        lg->o.key = NULL;
    }
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->syncer_cv, NULL);
    sr_buf_init(&lg->iobuf);
    size_t dl = strlen(dir);
    lg->dir = sr_malloc(dl + 1);
    if (!lg->dir) {
        rc = SR_ENOMEM;
        goto fail;
    }
    memcpy(lg->dir, dir, dl + 1);
    if (!lg->o.readonly) {
        if ((rc = lg->vfs->mkdir(lg->vfs, dir))) {
            set_err(ei, rc, "cannot create log directory %s: %s", dir, sr_strerror(rc));
            goto fail;
        }
        char *lp = path_join(dir, "LOCK");
        if (!lp) {
            rc = SR_ENOMEM;
            goto fail;
        }
        rc = lg->vfs->lock(lg->vfs, lp, &lg->lockf);
        sr_free(lp);
        if (rc) {
            set_err(ei, rc, "%s: %s", dir,
                    rc == SR_ELOCKED ? "log is open for writing in another process" : sr_strerror(rc));
            goto fail;
        }
        if (lg->has_key && (rc = sr_aead_create(&lg->key, &lg->aead))) goto fail;
        if (!lg->o.nonce_fn && (rc = sr_random(lg->nonce_prefix, sizeof lg->nonce_prefix))) goto fail;
    }
    if ((rc = recover_dir(lg, ei))) goto fail;
    if (!lg->o.readonly && lg->o.sync == SR_SYNC_INTERVAL) {
        if (pthread_create(&lg->syncer, NULL, syncer_main, lg) != 0) {
            rc = SR_ENOMEM;
            goto fail;
        }
        lg->syncer_started = 1;
    }
    SR_INVARIANT(sr_log_check(lg));
    *out = lg;
    return SR_OK;
fail:
    if (ei && !ei->code) set_err(ei, rc, "%s: %s", dir, sr_strerror(rc));
    lg->o.readonly = 1; /* nothing to flush */
    sr_log_close(lg);
    return rc;
}

int sr_log_close(sr_log *lg)
{
    if (!lg) return SR_OK;
    int rc = SR_OK;
    if (lg->syncer_started) {
        pthread_mutex_lock(&lg->mu);
        lg->stopping = 1;
        pthread_cond_signal(&lg->syncer_cv);
        pthread_mutex_unlock(&lg->mu);
        pthread_join(lg->syncer, NULL);
    }
    if (lg->active) SR_INVARIANT(sr_log_check(lg)); /* NULL: an open that failed before recovery ended */
    if (!lg->o.readonly && lg->nsegs) {
        pthread_mutex_lock(&lg->mu);
        int err = lg->err;
        pthread_mutex_unlock(&lg->mu);
        if (!err && lg->synced_off < lg->write_off) {
            rc = lg->vfs->sync(lg->active->file);
            if (!rc) lg->synced_off = lg->write_off;
        }
        if (err) rc = err;
    }
    for (size_t i = 0; i < lg->nsegs; i++) seg_unref_locked(lg->segs[i]);
    sr_free(lg->segs);
    for (size_t i = 0; i < lg->ncctx; i++) ZSTD_freeCCtx(lg->cctx[i]);
    sr_free(lg->cctx);
    sr_aead_destroy(lg->aead);
    sr_buf_release(&lg->iobuf);
    sr_file_close(lg->lockf);
    pthread_cond_destroy(&lg->syncer_cv);
    pthread_mutex_destroy(&lg->mu);
    sr_free(lg->dir);
    memset(&lg->key, 0, sizeof lg->key);
    sr_free(lg);
    return rc;
}

uint64_t sr_log_next_seq(sr_log *lg)
{
    pthread_mutex_lock(&lg->mu);
    uint64_t v = lg->assigned_seq;
    pthread_mutex_unlock(&lg->mu);
    return v;
}

uint64_t sr_log_durable_seq(sr_log *lg)
{
    pthread_mutex_lock(&lg->mu);
    uint64_t v = lg->durable_seq;
    pthread_mutex_unlock(&lg->mu);
    return v;
}

uint64_t sr_log_first_seq(sr_log *lg)
{
    pthread_mutex_lock(&lg->mu);
    uint64_t v = lg->segs[0]->first_seq;
    pthread_mutex_unlock(&lg->mu);
    return v;
}

void sr_log_tip(sr_log *lg, uint8_t out[SR_HASH_LEN])
{
    pthread_mutex_lock(&lg->mu);
    memcpy(out, lg->durable_tip, SR_HASH_LEN);
    pthread_mutex_unlock(&lg->mu);
}

void sr_log_tail_info(sr_log *lg, sr_log_tail *out) { *out = lg->tail; }

size_t sr_log_segment_count(sr_log *lg)
{
    pthread_mutex_lock(&lg->mu);
    size_t n = lg->nsegs;
    pthread_mutex_unlock(&lg->mu);
    return n;
}

void sr_log_anchor(sr_log *lg, uint8_t out[SR_HASH_LEN])
{
    pthread_mutex_lock(&lg->mu);
    memcpy(out, lg->segs[0]->anchor, SR_HASH_LEN);
    pthread_mutex_unlock(&lg->mu);
}

int sr_log_error(sr_log *lg)
{
    pthread_mutex_lock(&lg->mu);
    int e = lg->err;
    pthread_mutex_unlock(&lg->mu);
    return e;
}

int sr_log_drop_below(sr_log *lg, uint64_t seq, size_t *removed)
{
    if (!lg || lg->o.readonly) return SR_EINVAL;
    int rc = SR_OK;
    size_t k = 0;
    pthread_mutex_lock(&lg->mu);
    if (lg->err) {
        pthread_mutex_unlock(&lg->mu);
        return SR_EPOISONED;
    }
    while (k + 1 < lg->nsegs && lg->segs[k + 1]->first_seq <= seq) k++;
    for (size_t i = 0; i < k && !rc; i++) rc = lg->vfs->unlink(lg->vfs, lg->segs[i]->path);
    size_t gone = 0;
    if (!rc) gone = k;
    else {
        /* count those unlinked before the failure */
        for (gone = 0; gone < k; gone++) {
            sr_file *f = NULL;
            if (lg->vfs->open(lg->vfs, lg->segs[gone]->path, SR_VFS_READ, &f) == SR_OK) {
                sr_file_close(f);
                break;
            }
        }
    }
    for (size_t i = 0; i < gone; i++) {
        lg->segs[i]->removed = 1;
        seg_unref_locked(lg->segs[i]);
    }
    memmove(lg->segs, lg->segs + gone, (lg->nsegs - gone) * sizeof *lg->segs);
    lg->nsegs -= gone;
    LOG_INVARIANT_LOCKED(lg, 1, 0);
    pthread_mutex_unlock(&lg->mu);
    if (!rc && gone) rc = lg->vfs->sync_dir(lg->vfs, lg->dir);
    if (removed) *removed = gone;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Cuts (backups, restores)                                                  */

int sr_log_segment_at(sr_log *lg, size_t i, char *name, uint64_t *first_seq, uint64_t *bytes)
{
    int rc = SR_ENOTFOUND;
    pthread_mutex_lock(&lg->mu);
    if (i < lg->nsegs) {
        const segment *s = lg->segs[i];
        memcpy(name, s->name, sizeof s->name);
        *first_seq = s->first_seq;
        *bytes = s->durable_off;
        rc = SR_OK;
    }
    pthread_mutex_unlock(&lg->mu);
    return rc;
}

int sr_log_cut_at(sr_log *lg, uint64_t seq, int up, sr_log_cut *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lg->mu);
    uint64_t dur = lg->durable_seq; /* next seq after the durable records */
    if (up && (seq >= dur || seq < lg->segs[0]->first_seq)) {
        pthread_mutex_unlock(&lg->mu);
        return SR_EINVAL;
    }
    if (!up && seq >= dur) seq = dur - 1;
    /* the block to end at: walk the segments' block lists */
    size_t si = SIZE_MAX, bi = 0;
    for (size_t i = 0; i < lg->nsegs; i++) {
        const segment *s = lg->segs[i];
        for (size_t b = 0; b < s->nblocks; b++) {
            const blk_ent *k = &s->blocks[b];
            uint64_t last = k->first_seq + k->count - 1;
            if (k->first_seq + k->count > dur) break; /* not durable yet */
            if (k->flags & SR_BLK_CONT) continue;     /* not a batch's end */
            if (up) {
                if (last >= seq) {
                    si = i, bi = b;
                    goto found;
                }
            } else {
                if (last > seq) goto found;
                si = i, bi = b;
            }
        }
    }
found:
    if (si == SIZE_MAX) {
        pthread_mutex_unlock(&lg->mu);
        return up ? SR_EINVAL : SR_ENOTFOUND;
    }
    segment *s = lg->segs[si];
    const blk_ent *k = &s->blocks[bi];
    out->last_seq = k->first_seq + k->count - 1;
    out->nsegs = si + 1;
    memcpy(out->segment, s->name, sizeof out->segment);
    uint64_t next_off = 0;
    if (bi + 1 < s->nblocks) out->end = next_off = s->blocks[bi + 1].off;
    else out->end = s->durable_off;
    if (!next_off) {
        if (si + 1 < lg->nsegs) memcpy(out->tip, lg->segs[si + 1]->anchor, SR_HASH_LEN);
        else memcpy(out->tip, lg->durable_tip, SR_HASH_LEN); /* the last durable block */
        pthread_mutex_unlock(&lg->mu);
        return SR_OK;
    }
    s->refs++;
    pthread_mutex_unlock(&lg->mu);
    /* the next block's prev_hash (format.md: block header offset 56) */
    uint8_t h[SR_BLK_HDR_LEN];
    int rc = sr_vfs_read_exact(s->file, h, sizeof h, next_off);
    if (rc == SR_DONE) rc = SR_EIO;
    if (!rc) memcpy(out->tip, h + 56, SR_HASH_LEN);
    pthread_mutex_lock(&lg->mu);
    seg_unref_locked(s);
    pthread_mutex_unlock(&lg->mu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Iterators                                                                 */

int sr_log_iter_open(sr_log *lg, uint64_t from, sr_log_iter **out)
{
    if (!lg || !out) return SR_EINVAL;
    sr_log_iter *it = sr_calloc(1, sizeof *it);
    if (!it) return SR_ENOMEM;
    it->lg = lg;
    sr_buf_init(&it->raw);
    sr_buf_init(&it->plain);
    sr_buf_init(&it->tmp);
    pthread_mutex_lock(&lg->mu);
    size_t lo = 0, hi = lg->nsegs; /* last segment with first_seq <= from */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (lg->segs[mid]->first_seq <= from) lo = mid;
        else hi = mid;
    }
    segment *s = lg->segs[lo];
    s->refs++;
    it->seg = s;
    it->off = SR_SEG_HDR_LEN;
    if (s->nblocks) {
        size_t blo = 0, bhi = s->nblocks;
        while (bhi - blo > 1) {
            size_t mid = (blo + bhi) / 2;
            if (s->blocks[mid].first_seq <= from) blo = mid;
            else bhi = mid;
        }
        it->off = s->blocks[blo].off;
    }
    pthread_mutex_unlock(&lg->mu);
    it->want = from;
    SR_INVARIANT(sr_log_iter_check(it));
    *out = it;
    return SR_OK;
}

const sr_errinfo *sr_log_iter_errinfo(sr_log_iter *it) { return &it->ei; }

void sr_log_iter_close(sr_log_iter *it)
{
    if (!it) return;
    pthread_mutex_lock(&it->lg->mu);
    seg_unref_locked(it->seg);
    pthread_mutex_unlock(&it->lg->mu);
    sr_buf_release(&it->raw);
    sr_buf_release(&it->plain);
    sr_buf_release(&it->tmp);
    sr_free(it->secs.a);
    sr_aead_destroy(it->aead);
    ZSTD_freeDCtx(it->dctx);
    sr_free(it);
}

/* Load the next durable block; SR_DONE at the durable end. */
static int iter_load(sr_log_iter *it)
{
    sr_log *lg = it->lg;
    for (;;) {
        pthread_mutex_lock(&lg->mu);
        segment *s = it->seg;
        uint64_t end = s->durable_off;
        segment *nx = NULL;
        if (it->off >= end) {
            /* Move on only if a later segment exists (this one is sealed). */
            for (size_t i = 0; i + 1 < lg->nsegs; i++)
                if (lg->segs[i] == s) {
                    nx = lg->segs[i + 1];
                    break;
                }
            if (!nx && s->removed && lg->nsegs) {
                for (size_t i = 0; i < lg->nsegs; i++)
                    if (lg->segs[i]->first_seq > s->first_seq) {
                        nx = lg->segs[i];
                        break;
                    }
                if (nx && nx->first_seq != s->next_seq) {
                    /* never skip silently: the records in between are gone */
                    set_err(&it->ei, SR_ENOTFOUND,
                            "records %" PRIu64 "..%" PRIu64 " were dropped by retention while iterating",
                            s->next_seq, nx->first_seq - 1);
                    pthread_mutex_unlock(&lg->mu);
                    return SR_ENOTFOUND;
                }
            }
            if (!nx) {
                pthread_mutex_unlock(&lg->mu);
                SR_INVARIANT(sr_log_iter_check(it));
                return SR_DONE;
            }
            nx->refs++;
            seg_unref_locked(s);
            it->seg = nx;
            it->off = SR_SEG_HDR_LEN;
            pthread_mutex_unlock(&lg->mu);
            continue;
        }
        pthread_mutex_unlock(&lg->mu);
        blk_hdr h;
        const char *why = NULL;
        int rc = read_block(s, it->off, &it->raw, it->hdrb, &h, &why);
        if (!rc) rc = sec_parse(&h, it->raw.data, &it->secs, &why);
        if (rc) {
            set_err(&it->ei, rc, "%s offset %" PRIu64 ": %s", s->name, it->off, why ? why : sr_strerror(rc));
            return rc;
        }
        it->off += SR_BLK_HDR_LEN + h.stored_len;
        it->blk_first = h.first_seq;
        it->blk_count = h.count;
        it->blk_pos = 0;
        it->sec_i = 0;
        it->sec_state = 0;
        it->sec_pos = 0;
        it->plain.len = 0;
        it->plain_pos = 0;
        snprintf(it->segname, sizeof it->segname, "%s", s->name);
        it->blk_off = it->off - SR_BLK_HDR_LEN - h.stored_len;
        SR_INVARIANT(sr_log_iter_check(it));
        return SR_OK;
    }
}

_Static_assert(sizeof(((sr_log_leaf *)0)->hdr) == SR_BLK_AAD_LEN, "a leaf holds the chained header bytes");

int sr_log_leaf_next(sr_log_iter *it, sr_log_leaf *out)
{
    int rc = iter_load(it);
    if (rc) return rc;
    it->sec_i = it->secs.n; /* the records are not returned: a leaf iterator reads blocks only */
    it->blk_pos = it->blk_count;
    uint8_t digest[SR_HASH_LEN];
    /* the stored payload's digest (block version 1 too: the leaf covers the
     * stored bytes, so it is computed without any key) */
    sr_sha256(it->raw.data, (size_t)sr_get_le32(it->hdrb + 24), digest);
    out->first_seq = it->blk_first;
    out->count = it->blk_count;
    memcpy(out->hdr, it->hdrb, SR_BLK_AAD_LEN);
    memcpy(out->digest, digest, SR_HASH_LEN);
    sr_mt_leaf_hash2(it->hdrb, SR_BLK_AAD_LEN, digest, SR_HASH_LEN, out->hash);
    block_hash(it->hdrb, digest, out->tip);
    return SR_OK;
}

/*
 * Records come a section at a time: a section is opened when the iterator
 * reaches it (one wholly below `want` is skipped unopened). A section whose
 * key the resolver says was destroyed gives SR_EERASED once per record, with
 * *seq set and *rec empty, and the next call goes on; any other failure to
 * open it (SR_EKEY naming the key id and the records, SR_ECORRUPT) is
 * returned and the next call tries it again.
 */
int sr_log_iter_next(sr_log_iter *it, uint64_t *seq, sr_slice *rec)
{
    for (;;) {
        if (it->sec_i < it->secs.n) {
            const sec_ent *e = &it->secs.a[it->sec_i];
            if (!it->sec_state) {
                if (e->first_seq + e->count <= it->want) { /* all below the start */
                    it->blk_pos += e->count;
                    it->sec_i++;
                    continue;
                }
                char why[200];
                it->plain_pos = 0;
                int rc = sec_open(it->lg, &it->aead, &it->dctx, &it->tmp, it->hdrb, it->blk_first, e,
                                  it->raw.data + e->off, &it->plain, why, sizeof why);
                if (rc == SR_EERASED) {
                    it->plain.len = 0;
                    it->sec_state = 2;
                } else if (rc) {
                    it->plain.len = 0;
                    set_err_at(&it->ei, rc, it->segname, it->blk_off,
                               "%s offset %" PRIu64 ": records %" PRIu64 "..%" PRIu64 ": %s", it->segname,
                               it->blk_off, e->first_seq, e->first_seq + e->count - 1, why);
                    return rc;
                } else
                    it->sec_state = 1;
                it->sec_pos = 0;
                it->plain_pos = 0;
            }
            if (it->sec_pos < e->count) {
                uint64_t s = e->first_seq + it->sec_pos++;
                it->blk_pos++;
                uint64_t len = 0;
                const uint8_t *p = NULL;
                if (it->sec_state == 1) {
                    size_t k = varint_get(it->plain.data + it->plain_pos, it->plain.len - it->plain_pos, &len);
                    p = it->plain.data + it->plain_pos + k;
                    it->plain_pos += k + (size_t)len;
                }
                if (s < it->want) continue;
                it->cur_key = e->alg ? e->key_id : 0;
                *seq = s;
                rec->data = p;
                rec->len = (size_t)len;
                return it->sec_state == 1 ? SR_OK : SR_EERASED;
            }
            it->sec_i++;
            it->sec_state = 0;
            continue;
        }
        int rc = iter_load(it);
        if (rc) return rc;
    }
}

uint32_t sr_log_iter_key_id(const sr_log_iter *it) { return it ? it->cur_key : 0; }

/* ------------------------------------------------------------------------ */
/* Verify                                                                    */

/* One erased section into the report: its key's summary (the first
 * SR_LOG_REPORT_ERASED keys met) and the totals. */
static void report_erased(sr_log_report *rep, const sec_ent *e)
{
    uint64_t last = e->first_seq + e->count - 1;
    rep->erased_sections++;
    rep->erased_records += e->count;
    size_t i = 0;
    while (i < rep->nerased && rep->erased[i].key_id != e->key_id) i++;
    if (i == rep->nerased) {
        if (i == SR_LOG_REPORT_ERASED) { /* bounded: the totals only */
            rep->erased_more = 1;
            return;
        }
        rep->erased[i] = (struct sr_log_erased){.key_id = e->key_id, .first_seq = e->first_seq};
        rep->nerased++;
    }
    rep->erased[i].sections++;
    rep->erased[i].records += e->count;
    rep->erased[i].last_seq = last;
}

int sr_log_verify(const char *dir, const sr_log_opts *opts, sr_log_report *rep, sr_errinfo *ei)
{
    sr_log_opts o = opts ? *opts : (sr_log_opts){0};
    o.readonly = 1;
    sr_log *lg = NULL;
    memset(rep, 0, sizeof *rep);
    sr_errinfo local;
    if (!ei) ei = &local;
    int rc = sr_log_open(dir, &o, &lg, ei);
    if (rc) {
        snprintf(rep->segment, sizeof rep->segment, "%s", ei->segment);
        rep->offset = ei->offset;
        return rc;
    }
    sr_buf raw, plain, tmp;
    sr_buf_init(&raw);
    sr_buf_init(&plain);
    sr_buf_init(&tmp);
    secvec secs = {0};
    sr_aead *aead = NULL;
    ZSTD_DCtx *dctx = NULL;
    uint8_t prev[SR_HASH_LEN];
    int have_prev = 0;
    rep->first_seq = lg->segs[0]->first_seq;
    memcpy(rep->anchor, lg->segs[0]->anchor, SR_HASH_LEN);
    for (size_t i = 0; i < lg->nsegs && !rc; i++) {
        segment *s = lg->segs[i];
        rep->segments++;
        if (have_prev && memcmp(prev, s->anchor, SR_HASH_LEN) != 0) {
            rc = SR_ECORRUPT;
            snprintf(rep->segment, sizeof rep->segment, "%s", s->name);
            rep->block_seq = s->first_seq;
            set_err(ei, rc, "%s offset 0: segment anchor differs from the previous segment's last block hash "
                    "(hash chain broken)", s->name);
            break;
        }
        if (!have_prev) memcpy(prev, s->anchor, SR_HASH_LEN);
        have_prev = 1;
        for (size_t b = 0; b < s->nblocks; b++) {
            uint8_t hdrb[SR_BLK_HDR_LEN], dg[SR_HASH_LEN];
            blk_hdr h;
            const char *why = NULL;
            char whyb[240] = "";
            uint64_t off = s->blocks[b].off;
            rc = read_block(s, off, &raw, hdrb, &h, &why);
            if (!rc) rc = sec_parse(&h, raw.data, &secs, &why);
            if (!rc) rc = blk_digest(lg, &aead, &dctx, &tmp, hdrb, &h, &secs, raw.data, &plain, dg, whyb, sizeof whyb);
            if (!rc && memcmp(h.prev, prev, SR_HASH_LEN) != 0) {
                rc = SR_ECORRUPT;
                why = "previous-block hash mismatch (hash chain broken)";
            }
            /* the sections (the one of a block version 1 was opened above):
             * opened with the keys given; erased ones summed up; with no key
             * at all, sealed ones are counted as not opened */
            for (size_t k = 0; !rc && h.version == SR_BLK_VERSION && k < secs.n; k++) {
                const sec_ent *e = &secs.a[k];
                if (e->alg && !lg->has_key && !lg->o.keys) {
                    rep->unopened_sections++;
                    rep->unopened_records += e->count;
                    continue;
                }
                rc = sec_open(lg, &aead, &dctx, &tmp, hdrb, h.first_seq, e, raw.data + e->off, &plain, whyb,
                              sizeof whyb);
                if (rc == SR_EERASED) {
                    report_erased(rep, e);
                    rc = SR_OK;
                } else if (rc) {
                    char w2[160];
                    snprintf(w2, sizeof w2, "%.150s", whyb);
                    snprintf(whyb, sizeof whyb, "records %" PRIu64 "..%" PRIu64 ": %s", e->first_seq,
                             e->first_seq + e->count - 1, w2);
                }
            }
            if (rc) {
                snprintf(rep->segment, sizeof rep->segment, "%s", s->name);
                rep->offset = off;
                rep->block_seq = s->blocks[b].first_seq;
                set_err(ei, rc, "%s offset %" PRIu64 " (block seq %" PRIu64 "): %s", s->name, off,
                        s->blocks[b].first_seq, whyb[0] ? whyb : why ? why : sr_strerror(rc));
                break;
            }
            block_hash(hdrb, dg, prev);
            rep->blocks++;
            rep->records += h.count;
            rep->bytes += SR_BLK_HDR_LEN + h.stored_len;
        }
    }
    rep->last_seq = lg->next_seq - 1;
    memcpy(rep->tip, prev, SR_HASH_LEN);
    rep->tail = lg->tail;
    if (!rc && lg->tail.torn) {
        rc = SR_ECORRUPT;
        snprintf(rep->segment, sizeof rep->segment, "%s", lg->tail.segment);
        rep->offset = lg->tail.offset;
        rep->block_seq = lg->next_seq;
        set_err(ei, rc, "%s offset %" PRIu64 ": torn tail of %" PRIu64 " bytes (%s); never acknowledged, "
                "cut when the log is next opened for writing", lg->tail.segment, lg->tail.offset,
                lg->tail.bytes, lg->tail.reason);
    }
    rep->ok = rc == SR_OK;
    sr_buf_release(&raw);
    sr_buf_release(&plain);
    sr_buf_release(&tmp);
    sr_free(secs.a);
    sr_aead_destroy(aead);
    ZSTD_freeDCtx(dctx);
    sr_log_close(lg);
    return rc;
}
