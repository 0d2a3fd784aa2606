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
 * Readers use sr_index_read_begin/end around their read transactions (the
 * handles are reused: reset at the end, renewed at the next begin, on any
 * thread: MDB_NOTLS); the map grows automatically (the writer waits for
 * readers to leave, resizes, and retries), so MDB_MAP_FULL never reaches a
 * caller.
 */
#ifndef SR_INDEX_H
#define SR_INDEX_H

#include "codecs/base/sr_alloc.h" /* sr_buf */
#include "codecs/base/sr_error.h"

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* A named database of the environment: its name and its mdb_dbi_open flags
 * (MDB_DUPSORT, ...). The caller's table (the engine's schema,
 * engine/schema.h) says which the index holds; storage/ knows none of them.
 * The first one (SR_INDEX_META) holds the watermark: "watermark" -> u64 LE. */
typedef struct sr_index_db {
    const char *name;
    unsigned flags;
} sr_index_db;

enum { SR_INDEX_META = 0, SR_INDEX_MAX_DBS = 32 };

typedef struct sr_index sr_index;

/* Open (create, unless readonly) the environment in dir with the ndbs
 * databases of dbs (ndbs <= SR_INDEX_MAX_DBS; dbs must outlive the handle).
 * Read-only, a missing database is SR_EVERSION (an index of an older
 * layout), named in err. */
SR_MUST_CHECK int sr_index_open(const char *dir, uint64_t map_bytes, int readonly, const sr_index_db *dbs,
                                unsigned ndbs, sr_index **out, char *err, size_t errlen);
void sr_index_close(sr_index *ix);
MDB_env *sr_index_env(sr_index *ix);
MDB_dbi sr_index_dbi(sr_index *ix, unsigned which); /* which: a row of the open's dbs */

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

/* SHA-256 over every key and value of every database (in the order of the open's table, each with its name; keys
 * in LMDB order): two indexes with equal hashes hold the same content. */
SR_MUST_CHECK int sr_index_content_hash(sr_index *ix, uint8_t out[32]);
/* The same, with each value of database row `which` at LMDB key (key, klen) as canon(ctx, which, key, klen, value,
 * len, scratch) makes it: SR_OK and the bytes to hash in scratch (cleared before each call), or SR_ENOTFOUND to hash
 * the value as it is, or SR_EERASED to leave the row out (a sealed value whose key was destroyed: gone), or an
 * error. For content that two writers store in different but equivalent bytes (series chunks with and without
 * their summaries; values sealed under different nonces, hashed as their plaintext). */
typedef int (*sr_index_canon_fn)(void *ctx, unsigned which, const void *key, size_t klen, const void *val, size_t len,
                                 sr_buf *scratch);
SR_MUST_CHECK int sr_index_content_hash_canon(sr_index *ix, sr_index_canon_fn canon, void *ctx, uint8_t out[32]);

/* A consistent copy of the environment (mdb_env_copyfd2, in its own read
 * transaction: the writer goes on, but cannot grow the map until the copy
 * ends), streamed to sink(ctx, bytes, n) as the data.mdb of a new
 * environment. A sink error stops the sink's calls (the rest of the copy is
 * read and dropped) and is returned. Any thread. */
SR_MUST_CHECK int sr_index_copy(sr_index *ix, int (*sink)(void *ctx, const void *p, size_t n), void *ctx);

/* Watermark (highest applied seq) in txn; 0 when empty. */
uint64_t sr_index_watermark(sr_index *ix, MDB_txn *txn);

#endif
