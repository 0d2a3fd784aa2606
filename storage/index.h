/*
 * storage/index.h -- the LMDB environment that holds suiro's index.
 *
 * The index is a cache of the log (docs/architecture.md): every database in
 * it is a deterministic function of the events applied, and the highest
 * applied sequence number (the watermark) is stored in the same transaction
 * as the changes. LMDB runs with MDB_NOMETASYNC: each commit fsyncs its data
 * pages but not the meta page, so a crash can undo the last commits (the
 * index lags the log; recovery replays from the watermark) but never leaves a
 * torn index (docs/durability.md §6).
 *
 * Threads: one writer (the engine's writer thread) and any number of readers.
 * Readers use sr_index_read_begin/end around their read transactions; the map
 * grows automatically (the writer waits for readers to leave, resizes, and
 * retries), so MDB_MAP_FULL never reaches a caller.
 */
#ifndef SR_INDEX_H
#define SR_INDEX_H

#include "codecs/base/sr_error.h"

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sr_dbi {
    SR_DB_META,      /* "watermark" -> u64; "layout" -> u32 (SR_INDEX_LAYOUT); "head_max" -> u32; "next_point" -> u32 */
    SR_DB_MASTERS,   /* op \0 kind(1) id -> packed MasterPut */
    SR_DB_POINTS,    /* op \0 dataId -> point u32 (BE) */
    SR_DB_POINTINFO, /* point u32 BE -> op \0 gateway \0 packed MasterPut */
    SR_DB_LATEST,    /* point u32 BE -> sample */
    SR_DB_SERIES,    /* point u32 BE + chunk first ts (BE, sign-flipped) -> chunk */
    SR_DB_HEADS,     /* point u32 BE -> head_first_seq u64, flushed_max_ts i64 */
    SR_DB_DOCS,      /* op \0 collection \0 id -> revision u64 + json */
    SR_DB_FILES,     /* op \0 path -> packed FilePut */
    SR_DB_REGISTRY,  /* op \0 kind(1) id -> packed RegistryPut */
    SR_DB_REQUESTS,  /* op \0 request id -> state(1) + packed RequestCreated */
    SR_DB_MONITORS,  /* op \0 monitor id -> packed MonitorEvent (latest state) */
    SR_DB_MSGIDS,    /* "msgidx": op \0 seq_hi u32 BE -> dups of hash64(op, actor, message id) BE + seq_lo u32 BE */
    SR_DB_COUNT
} sr_dbi;

/*
 * Layout of what the index stores, in SR_DB_META "layout" (u32 LE). An index
 * without it is layout 1. The engine rebuilds an index of an older layout
 * from the log when it opens it read-write (sr_engine_open).
 *   1: message ids as op \0 actor \0 id -> seq ("msgids"); a late value
 *      merged into a full chunk split off a chunk of the overflow.
 *   2: message ids as 16-byte hash + seq duplicates ("msgidx", DUPFIXED);
 *      late-value merges keep a chunk whole up to head_max * 5/4 samples and
 *      split evenly above (sr_chunk_merge_balanced).
 *   3: message ids as 12-byte hash + low-32-bit seq duplicates under the
 *      key op \0 seq_hi (the high 32 bits of the seq, BE).
 */
#define SR_INDEX_LAYOUT 3u

typedef struct sr_index sr_index;

SR_MUST_CHECK int sr_index_open(const char *dir, uint64_t map_bytes, int readonly, sr_index **out,
                                char *err, size_t errlen);
void sr_index_close(sr_index *ix);
MDB_env *sr_index_env(sr_index *ix);
MDB_dbi sr_index_dbi(sr_index *ix, sr_dbi which);
const char *sr_index_db_name(sr_dbi which);

/* Read transactions (any thread). */
SR_MUST_CHECK int sr_index_read_begin(sr_index *ix, MDB_txn **txn);
void sr_index_read_end(sr_index *ix, MDB_txn *txn);

/* Write transaction (writer thread only). */
SR_MUST_CHECK int sr_index_write_begin(sr_index *ix, MDB_txn **txn);
SR_MUST_CHECK int sr_index_commit(sr_index *ix, MDB_txn *txn);
void sr_index_abort(MDB_txn *txn);
/* Double the map (no transaction of this process may be open but the
 * caller's aborted one): used when a write hits MDB_MAP_FULL. */
SR_MUST_CHECK int sr_index_grow(sr_index *ix);

/* LMDB code -> SR_ code (MDB_NOTFOUND -> SR_ENOTFOUND, MDB_MAP_FULL -> SR_EFULL, ...). */
int sr_index_err(int mdb_rc);

/* SHA-256 over every key and value of every database (in name order, keys
 * in LMDB order): two indexes with equal hashes hold the same content. */
SR_MUST_CHECK int sr_index_content_hash(sr_index *ix, uint8_t out[32]);

/* Watermark (highest applied seq) in txn; 0 when empty. */
uint64_t sr_index_watermark(sr_index *ix, MDB_txn *txn);

#endif
