/*
 * storage/log.h -- suiro's append-only, hash-chained, encrypted event log.
 *
 * The log is the source of truth: a directory of segment files, each a header
 * followed by blocks; a block holds a batch of length-prefixed records,
 * compressed with zstd, optionally encrypted with AES-256-GCM, and chained to
 * the block before it by SHA-256. The format is specified byte by byte in
 * docs/format.md; the commit protocol and recovery policy in
 * docs/durability.md.
 *
 * A format version is per segment (the header's version field): version 1
 * and version 2 segments have the same bytes; version 2 says that its
 * records may hold forms of events a version 1 reader does not know (the
 * Snapshot measurements form, issue #13), so that an older suiro, which reads
 * only version 1, refuses such a segment instead of misreading its records.
 * Version 3 (issue #16, docs/keys.md) changes the block: its payload is a
 * sequence of sections, each the consecutive records of one key, sealed
 * (AES-256-GCM) under that key or plain, and the hash chain covers the stored
 * (sealed) bytes, so the chain verifies without any key and still after a
 * key is destroyed (crypto-shredding). This build reads versions 1 to 3 and
 * writes version 3. The log itself never looks into records: the version is
 * the caller's promise about them.
 *
 * Records are opaque byte strings. Each gets a sequence number: dense,
 * starting at 1, never reused.
 *
 * Threads: sr_log_append, sr_log_sync and the iterators may be called from any
 * number of threads at once. sr_log_drop_below may run concurrently with them.
 * sr_log_close must be called once, after every other call on the handle has
 * returned and every iterator is closed.
 */
#ifndef SR_LOG_H
#define SR_LOG_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "storage/crypto.h"
#include "storage/vfs.h"

#include <stdint.h>

typedef struct sr_log sr_log;
typedef struct sr_log_iter sr_log_iter;

typedef enum sr_sync_mode {
    SR_SYNC_ALWAYS = 0,   /* durable when sr_log_append returns (group commit) */
    SR_SYNC_INTERVAL = 1, /* fdatasync every sync_interval_ms; a crash loses at most that */
    SR_SYNC_NONE = 2,     /* never synced but at roll and close: tests and benchmarks */
} sr_sync_mode;

/* sr_errinfo: codecs/base/sr_error.h */

/* Per-record keys: a resolver (sr_keys, storage/crypto.h); the log never
 * holds key material of format version 3. */
typedef sr_keys sr_log_keys;

typedef struct sr_log_opts {
    const sr_vfs *vfs;          /* NULL: sr_vfs_posix */
    uint64_t segment_bytes;     /* roll when a segment would grow past this; 0: 64 MiB */
    uint32_t block_bytes;       /* plaintext per block before splitting; 0: 1 MiB */
    uint32_t max_record_bytes;  /* larger records are SR_ETOOBIG; 0: 64 MiB */
    int zstd_level;             /* 0: no compression; else zstd level (1 fast ... 19) */
    sr_sync_mode sync;
    uint32_t sync_interval_ms;  /* for SR_SYNC_INTERVAL; 0: 100 */
    const sr_key *key;          /* NULL: no encryption. Copied at open. The one key of
                                   segments of versions 1 and 2 (the master key of a
                                   directory written before issue #16). */
    const sr_log_keys *keys;    /* the per-record keys (sr_log_append_keyed); borrowed,
                                   must outlive the handle. NULL: none. */
    int readonly;               /* no lock, no repair: a torn tail is reported, not cut */
    /* Records 1 .. durable_floor are known, from outside the log, to have been
     * durable (the engine passes its index's watermark: the index applies an
     * event only after its append was fsynced). Recovery never cuts one of
     * them as a torn tail: a bad or unfinished last block holding a record
     * <= durable_floor is SR_ECORRUPT naming the segment, offset and block,
     * on read-only opens too. 0: nothing known (the synced_off rule alone). */
    uint64_t durable_floor;
    /* Tests only: deterministic nonces (golden files). NULL: random prefix + counter. */
    void (*nonce_fn)(void *ctx, uint8_t nonce[SR_NONCE_LEN]);
    void *nonce_ctx;
    /* The latency of each fdatasync of a group commit or of the interval
     * syncer, in microseconds (codecs/base/sr_hist.h, SR_HIST_US_BOUNDS);
     * borrowed, must outlive the handle (the engine's, kept across its
     * reopens). NULL: not measured. */
    struct sr_hist *sync_hist;
} sr_log_opts;

/* What recovery found at the end of the last segment. */
typedef struct sr_log_tail {
    int torn;                 /* 1 if a torn tail was found (and, if writable, cut) */
    char segment[64];         /* file name */
    uint64_t offset;          /* where the torn part starts */
    uint64_t bytes;           /* how many bytes it has */
    char reason[96];
} sr_log_tail;

/**
 * Open (creating if needed) the log in dir and recover it.
 *
 * Recovery reads every segment header and block header, checks the last
 * segment's blocks in full, cuts a torn or partial last block (it was never
 * acknowledged: the cut bytes are kept in "<segment>.torn-<offset>" for
 * forensics), and fsyncs the last segment. A bad block anywhere else is
 * SR_ECORRUPT, with the segment and offset in ei; so is a bad or unfinished
 * last block that holds a record <= opts->durable_floor (it had been
 * acknowledged: corruption, never a torn tail; nothing is cut).
 *
 * Opened for writing, a last segment of an older version (a directory an
 * older suiro wrote) is left as it is and the log rolls to a new segment of
 * SR_LOG_VERSION at once (an empty one is replaced by an empty one of
 * SR_LOG_VERSION): records are only ever appended to a segment of this
 * build's version, and from then on an older suiro refuses the directory
 * (SR_EVERSION) instead of misreading it.
 *
 * @return SR_OK; SR_ECORRUPT; SR_EVERSION (a segment of a newer format);
 *         SR_EKEY (blocks encrypted and no key, or another key);
 *         SR_ELOCKED (another process has it open for writing); SR_EIO,
 *         SR_ENOSPC, SR_ENOMEM, SR_EINVAL (bad options).
 */
SR_MUST_CHECK int sr_log_open(const char *dir, const sr_log_opts *opts, sr_log **out,
                              sr_errinfo *ei);

/* Flush (fsync) and close. NULL-safe. Returns the first error seen while
 * flushing (the handle is freed regardless). */
int sr_log_close(sr_log *lg);

/**
 * Append n records as one atomic batch: after a crash either all of them are
 * in the log or none. On SR_OK, *first_seq is the sequence number of recs[0]
 * and the batch holds first_seq .. first_seq + n - 1.
 *
 * With SR_SYNC_ALWAYS the batch is durable on return; concurrent callers are
 * committed together (one write and one fdatasync for the group).
 *
 * @return SR_OK; SR_EINVAL (n == 0, or readonly); SR_ETOOBIG (a record over
 *         max_record_bytes); SR_ENOMEM (nothing written);
 *         SR_EIO / SR_ENOSPC (a write or fsync failed: the handle is now
 *         poisoned and every later append returns SR_EPOISONED until the log
 *         is closed and reopened, which recovers from disk); SR_EPOISONED.
 */
SR_MUST_CHECK int sr_log_append(sr_log *lg, const sr_slice *recs, size_t n, uint64_t *first_seq);

/**
 * sr_log_append, with key_ids[i] naming the key that seals record i (0: not
 * sealed). Needs opts->keys for a nonzero id (else SR_EINVAL). Consecutive
 * records under one key are sealed together (one section, format.md version
 * 3); the chain covers the sealed bytes, so it verifies without any key and
 * still verifies after a key is destroyed.
 *
 * (Added with the format:) an id equal to opts->key's is sealed by the log's
 * own key (sr_log_append seals every record so when opts->key is set). Also
 * returns, with nothing written and the handle usable: SR_EKEY (the resolver
 * does not know a key), SR_EERASED (a key was destroyed), SR_ECRYPTO; such a
 * batch fails alone, the others committed in its group do not.
 */
SR_MUST_CHECK int sr_log_append_keyed(sr_log *lg, const sr_slice *recs, const uint32_t *key_ids, size_t n,
                                      uint64_t *first_seq);

/* A block as a leaf of the Merkle tree over the log (docs/audit.md
 * "Checkpoints and proofs", storage/mtree.h): one leaf per block, its leaf
 * data the block header's first SR_BLK_AAD_LEN bytes (what the chain hashes)
 * followed by the SHA-256 of its stored payload, computed without any key. */
typedef struct sr_log_leaf {
    uint64_t first_seq;
    uint32_t count;
    uint8_t hash[SR_HASH_LEN];      /* SHA-256(0x00 || hdr || digest) */
    uint8_t tip[SR_HASH_LEN];       /* the chain's hash of the block: SHA-256(hdr || digest) */
    uint8_t hdr[88];                /* SR_BLK_AAD_LEN bytes; sr_log_leaf_next only */
    uint8_t digest[SR_HASH_LEN];    /* sr_log_leaf_next only */
} sr_log_leaf;

/**
 * sr_log_append_keyed (key_ids NULL: sr_log_append), also giving the batch's
 * blocks as leaves in *leaves (sr_free it; *nleaves of them), hashed by the
 * leader from the digest the chain takes (no second pass over the bytes).
 * Their room is allocated before anything is written (SR_ENOMEM: nothing
 * written).
 */
SR_MUST_CHECK int sr_log_append_leaves(sr_log *lg, const sr_slice *recs, const uint32_t *key_ids, size_t n,
                                       uint64_t *first_seq, sr_log_leaf **leaves, size_t *nleaves);

/* The next durable block of an iterator as a leaf (its payload read, its
 * checksum checked and hashed; its sections not opened: no key needed).
 * An iterator used for leaves is used for nothing else; it starts at the
 * block holding its from. SR_OK, SR_DONE, or an error as sr_log_iter_next's. */
SR_MUST_CHECK int sr_log_leaf_next(sr_log_iter *it, sr_log_leaf *out);

/* The key id of the record sr_log_iter_next returned last (0: not sealed).
 * After SR_EERASED (the record's key was destroyed), *seq is the record's
 * and *rec empty: the caller counts it as erased and calls next again. */
uint32_t sr_log_iter_key_id(const sr_log_iter *it);

/* Make everything appended so far durable (and visible to iterators). */
SR_MUST_CHECK int sr_log_sync(sr_log *lg);

/* Sequence number the next appended record will get (1 for an empty log). */
uint64_t sr_log_next_seq(sr_log *lg);
/* Sequence numbers [sr_log_first_seq, sr_log_durable_seq) are readable. */
uint64_t sr_log_first_seq(sr_log *lg);
uint64_t sr_log_durable_seq(sr_log *lg);
/* The previous-block hash of the first retained block: the first segment's
 * anchor (all zero for a log that starts at seq 1; after sr_log_drop_below
 * the hash of the last block dropped, which a LogTrim event records:
 * docs/keys.md "Segments"). */
void sr_log_anchor(sr_log *lg, uint8_t out[SR_HASH_LEN]);
/* Hash of the last durable block (the chain tip), 32 bytes. */
void sr_log_tip(sr_log *lg, uint8_t out[SR_HASH_LEN]);
/* What recovery found at the tail. */
void sr_log_tail_info(sr_log *lg, sr_log_tail *out);
/* Number of segment files. */
size_t sr_log_segment_count(sr_log *lg);
/* Last error of the handle (poisoning cause), or SR_OK. */
int sr_log_error(sr_log *lg);

/**
 * Remove whole segments all of whose records are below seq (never the
 * segment being written). Iterators positioned in a removed segment keep
 * reading it. *removed (optional) gets the number of files removed.
 */
SR_MUST_CHECK int sr_log_drop_below(sr_log *lg, uint64_t seq, size_t *removed);

/* Where the log can be cut at a whole batch (a backup's copy, a restore's
 * --to; docs/backup.md). */
typedef struct sr_log_cut {
    uint64_t last_seq;        /* the last record kept (0: none, the cut is before the first) */
    size_t nsegs;             /* segments kept: the first nsegs of the log, the last one cut at end */
    char segment[32];         /* the name of the last segment kept */
    uint64_t end;             /* its byte length up to the end of the last block kept */
    uint8_t tip[SR_HASH_LEN]; /* the hash of that block: the chain tip at last_seq */
} sr_log_cut;

/**
 * Find a cut of the durable log at a batch boundary: up = 1, the end of the
 * batch holding record seq (last_seq >= seq; seq must be durable); up = 0,
 * the end of the last whole batch at or before seq (last_seq <= seq; a cut
 * before the first retained record is SR_ENOTFOUND). A batch ends at a block
 * without the CONT flag. The tip is read from the next block's prev_hash,
 * the next segment's anchor, or the log's durable tip.
 * @return SR_OK; SR_EINVAL (seq not durable, up = 1); SR_ENOTFOUND; SR_EIO.
 */
SR_MUST_CHECK int sr_log_cut_at(sr_log *lg, uint64_t seq, int up, sr_log_cut *out);

/* The i-th segment file (0: the first retained): its name (>= 32 bytes),
 * first seq and durable length. SR_ENOTFOUND past the last. */
SR_MUST_CHECK int sr_log_segment_at(sr_log *lg, size_t i, char *name, uint64_t *first_seq, uint64_t *bytes);

/**
 * Iterate durable records from sequence number from (clamped to the first
 * retained one). The iterator sees records that were durable when each block
 * is reached: it can follow the writer, returning SR_DONE when it has caught
 * up; calling next again later picks up newer records.
 */
SR_MUST_CHECK int sr_log_iter_open(sr_log *lg, uint64_t from, sr_log_iter **out);
/* SR_OK with *seq and *rec (valid until the next call), SR_DONE at the
 * durable end, SR_EERASED for a record whose key was destroyed (*seq set,
 * *rec empty, sr_log_iter_key_id its key: the next call goes on), or an
 * error with detail in sr_log_iter_errinfo: SR_ECORRUPT; SR_EKEY (no key
 * for a sealed section: the message names the key id and the records; the
 * next call tries again). */
SR_MUST_CHECK int sr_log_iter_next(sr_log_iter *it, uint64_t *seq, sr_slice *rec);
const sr_errinfo *sr_log_iter_errinfo(sr_log_iter *it);
void sr_log_iter_close(sr_log_iter *it);

/* Result of sr_log_verify. */
typedef struct sr_log_report {
    int ok; /* 1: the chain verifies, and every section opened or was erased */
    uint64_t segments, blocks, records, bytes;
    uint64_t first_seq, last_seq; /* last_seq < first_seq when empty */
    uint8_t tip[SR_HASH_LEN];
    /* On failure: where. */
    char segment[72]; /* as sr_errinfo.segment */
    uint64_t offset;
    uint64_t block_seq;
    sr_log_tail tail;
    /* Sections whose key the resolver says was destroyed (SR_EERASED): their
     * records are counted in records too. One summary per key id, in the
     * order first met; past SR_LOG_REPORT_ERASED keys only the totals grow
     * and erased_more is set. */
    uint64_t erased_records, erased_sections;
    int erased_more;
    size_t nerased; /* summaries filled in erased[] */
    struct sr_log_erased {
        uint32_t key_id;
        uint64_t sections, records, first_seq, last_seq;
    } erased[8];
    /* Sealed sections not opened because no key was given at all (no
     * opts->key, no opts->keys): the chain and the structure were checked,
     * the contents were not (version 3; ok stays 1). */
    uint64_t unopened_sections, unopened_records;
    /* The first retained block's previous hash (the first segment's anchor;
     * zero for a log that starts at seq 1). */
    uint8_t anchor[SR_HASH_LEN];
    /* A log that does not start at seq 1: the LogTrim event that recorded
     * the drop (filled by sr_engine_log_trim_check, engine/segdrop.c; the
     * log itself never looks into records). trim_checked 1: found and its
     * recorded hash equals anchor; 0: not checked (no key to open it). */
    int trim_checked;
    uint64_t trim_interrupted; /* not 0: the log starts inside the drop of a LogTrim whose first kept seq
                                  is this (a crash during its unlink; the next read-write open finishes it) */
    uint64_t trim_seq, trim_records;
    int64_t trim_ms;
} sr_log_report;
enum { SR_LOG_REPORT_ERASED = 8 };

/**
 * Check every block of the log in dir without changing anything: header and
 * payload checksums, decryption and authentication, decompression, record
 * framing and counts, sequence continuity and the hash chain across blocks
 * and segments. A torn tail is reported (rep->tail) and fails the check.
 * Returns SR_OK if the log verifies, else the first failure's code with rep
 * and ei naming the segment, offset and block.
 */
SR_MUST_CHECK int sr_log_verify(const char *dir, const sr_log_opts *opts, sr_log_report *rep,
                                sr_errinfo *ei);

/* Invariant checks (log.c INVARIANTS 7-9; codecs/base/sr_alloc.h SR_INVARIANT):
 * NULL when they hold, else a static string naming the broken one. Run at
 * every transition in the debug build. sr_log_check takes the handle's lock;
 * the leader-only state is checked only when no append is being committed. */
const char *sr_log_check(const sr_log *lg);
const char *sr_log_iter_check(const sr_log_iter *it);

/* Tests only: break one invariant of an open log (what, below), to show that
 * sr_log_check names it; -what undoes it (before sr_log_close, which checks
 * in the debug build). Nothing else may run on the handle meanwhile. */
enum {
    SR_LOG_BREAK_SYNCED = 1, /* synced_off past write_off */
    SR_LOG_BREAK_SEQ,        /* next_seq ahead of the active segment */
    SR_LOG_BREAK_BLOCKS,     /* the last two block offsets of the first segment of 3+ blocks swapped */
    SR_LOG_BREAK_ORDER,      /* the second segment not starting where the first ends (needs 2 segments) */
    SR_LOG_BREAK_DURABLE,    /* the active segment's durable_off past write_off */
    SR_LOG_BREAK_VERSION,    /* the active segment of version SR_LOG_VERSION_MIN (writable log) */
};
void sr_log_test_break(sr_log *lg, int what);

/* Format constants (docs/format.md). */
enum {
    SR_LOG_VERSION = 3,     /* segments this build writes; it reads 1..SR_LOG_VERSION */
    SR_LOG_VERSION_MIN = 1, /* the oldest segment version this build reads */
    SR_BLK_VERSION = 2,     /* block header version of version 3 segments (sections) */
    SR_BLK_VERSION_1 = 1,   /* block header version of version 1 and 2 segments (one key a block) */
    SR_SEG_HDR_LEN = 64,
    SR_BLK_HDR_LEN = 96,
    SR_BLK_AAD_LEN = 88,    /* header bytes covered by the chain (and, block version 1, the AAD) */
    SR_BLK_ZSTD = 1 << 0,   /* block version 1 only */
    SR_BLK_AES_GCM = 1 << 1, /* block version 1 only */
    SR_BLK_CONT = 1 << 2,
    SR_BLK_KNOWN_FLAGS = 7,  /* block version 1 */
    SR_BLK2_KNOWN_FLAGS = SR_BLK_CONT, /* block version 2: compression and sealing are per section */
    SR_SEC_HDR_LEN = 32,     /* a section header (block version 2) */
    SR_SEC_AAD_LEN = 52,     /* block first_seq, section first_seq, section index, section header */
    SR_SEC_ZSTD = 1 << 0,    /* section flags */
    SR_SEC_KNOWN_FLAGS = 1,
};
#define SR_SEG_MAGIC "SUIROLOG"
#define SR_BLK_MAGIC 0x4B425253u /* "SRBK" little-endian */

#endif
