/*
 * storage/blobs.h -- content-addressed blob store for file bytes.
 *
 * A blob is a byte string named by the SHA-256 of its plaintext. Blobs are
 * written streaming (memory use is a few chunks, whatever the size), made
 * durable before sr_blob_writer_commit returns (so the engine can append the
 * file event that names the blob only after the bytes are safe), deduplicated
 * (the same bytes under the same key are stored once), and encrypted chunk
 * by chunk: by the store's one key (opts.key, format v1, like the log's
 * version 2), or by a per-operator data key that the caller names
 * (sr_blob_writer_begin_keyed, format v2: sealed through the resolver
 * opts.keys, docs/keys.md). The file format is specified byte by byte in
 * docs/blob-format.md.
 *
 * Layout of a store directory:
 *   LOCK                    exclusive lock of the process that has it open
 *   tmp/<32 hex>.tmp        blobs being written; never valid, removed at open
 *   ab/cd/abcd<60 hex>      a committed blob (lower-case hex of its SHA-256):
 *                           plaintext, or sealed by the store's key (v1)
 *   ab/cd/abcd<60 hex>.<8 hex>  the same content sealed by data key <8 hex>
 *                           (v2): one file per key, so dedup is per key and
 *                           deleting one key's blob never touches another's
 *
 * Every call that names a blob has a _keyed form taking the key id of a v2
 * blob; the plain form is the _keyed one with key id 0 (a v1 name). The
 * engine records the key id beside the blob's hash in its file event.
 *
 * Threads: the store handle may be shared by any number of threads; one
 * writer or reader must be used by one thread at a time. sr_blobs_close must
 * be called once, after every writer and reader has been finished.
 */
#ifndef SR_BLOBS_H
#define SR_BLOBS_H

#include "codecs/base/sr_error.h"
#include "storage/crypto.h"
#include "storage/vfs.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sr_blobs sr_blobs;
typedef struct sr_blob_writer sr_blob_writer;
typedef struct sr_blob_reader sr_blob_reader;

enum {
    SR_BLOB_VERSION = 2, /* v2: sealed by a data key; v1 (one store key or none) is still read and written */
    SR_BLOB_DEFAULT_CHUNK = 64 * 1024,
    SR_BLOB_MIN_CHUNK = 64,              /* small chunks are for tests */
    SR_BLOB_MAX_CHUNK = 16 * 1024 * 1024,
};

typedef struct sr_blobs_opts {
    const sr_vfs *vfs;   /* NULL: sr_vfs_posix */
    const sr_key *key;   /* NULL: new blobs are not encrypted. Copied at open. */
    const sr_keys *keys; /* the resolver of data keys (v2 blobs); NULL: none. Borrowed: it
                            must outlive the store; its calls must be thread-safe */
    uint32_t chunk_size; /* plaintext bytes per chunk for new blobs; 0: 64 KiB */
    int readonly;        /* read only (verify, a server may hold the store): no lock,
                            no tmp/ sweep, nothing created; writers and delete are SR_EINVAL */
    /* tests only (golden files): what draws a blob's file_id and nonces;
       NULL: sr_random */
    void (*random_fn)(void *ctx, void *buf, size_t n);
    void *random_ctx;
} sr_blobs_opts;

/* The base layer's detail (codecs/base/sr_error.h): blob is the hex name of
 * the blob concerned (or ""), offset the byte offset of the bad part. */
typedef sr_errinfo sr_blob_errinfo;

/**
 * Open (creating if needed) the store in dir: take its lock, create tmp/,
 * and delete every file left in tmp/ by writers that never committed.
 *
 * @param dir   store directory; copied.
 * @param o     options (NULL: defaults); o->key is copied.
 * @param[out] out  the store; set only on SR_OK.
 * @param ei    optional detail on failure.
 * @return SR_OK; SR_EINVAL (bad chunk_size); SR_ELOCKED (another process has
 *         it open); SR_EIO, SR_ENOSPC, SR_ENOMEM.
 */
SR_MUST_CHECK int sr_blobs_open(const char *dir, const sr_blobs_opts *o, sr_blobs **out,
                                sr_blob_errinfo *ei);
/* Release the lock and free the handle. NULL-safe. */
void sr_blobs_close(sr_blobs *bs);

/**
 * Start writing a new blob into a temp file in tmp/.
 * @return SR_OK; SR_ENOMEM, SR_EIO, SR_ENOSPC, SR_ECRYPTO.
 */
SR_MUST_CHECK int sr_blob_writer_begin(sr_blobs *bs, sr_blob_writer **out);
/* The same, sealing the blob under data key key_id through opts.keys
 * (format v2; its header names the key and its AEAD); key_id 0 is
 * sr_blob_writer_begin. SR_EINVAL (no resolver); SR_EKEY (the resolver does
 * not know key_id). A seal the resolver refuses later (the key was
 * destroyed meanwhile: SR_EERASED) poisons the writer. */
SR_MUST_CHECK int sr_blob_writer_begin_keyed(sr_blobs *bs, uint32_t key_id, sr_blob_writer **out);

/**
 * Append len bytes (borrowed for the call). Full chunks are sealed and
 * written as they fill; at most one partial chunk is buffered.
 * @return SR_OK; SR_EINVAL (w NULL, or data NULL with len > 0);
 *         SR_ETOOBIG (more than 2^62 bytes in all);
 *         SR_EIO, SR_ENOSPC, SR_ENOMEM, SR_ECRYPTO -- the writer is then
 *         poisoned: later writes return SR_EPOISONED, and commit fails.
 */
SR_MUST_CHECK int sr_blob_writer_write(sr_blob_writer *w, const void *data, size_t len);

/**
 * Finish the blob and make it durable under its content address.
 *
 * Protocol (order is load-bearing): write the last chunk and the footer;
 * fsync the temp file; create the fan-out directories; if a valid blob
 * with the same address and the same key already exists, drop the temp file
 * (dedup), else rename the temp file onto the address; fsync the fan-out
 * directories and the store directory. Only then return SR_OK: the caller may
 * now durably reference the blob.
 *
 * Always consumes w (freed, whatever the result). On failure no new blob is
 * visible (best effort: a blob renamed into place whose directory fsync then
 * failed is unlinked again); the temp file, if it could not be removed, is
 * removed by the next sr_blobs_open.
 *
 * @param[out] sha256_out  SHA-256 of the plaintext (optional); set on SR_OK.
 * @param[out] size_out    plaintext size (optional); set on SR_OK.
 * @return SR_OK; SR_EPOISONED (an earlier write failed); SR_EIO, SR_ENOSPC,
 *         SR_ENOMEM, SR_ECRYPTO.
 */
SR_MUST_CHECK int sr_blob_writer_commit(sr_blob_writer *w, uint8_t sha256_out[SR_HASH_LEN],
                                        uint64_t *size_out);

/* Drop the blob being written (its temp file is unlinked) and free w.
 * NULL-safe. */
void sr_blob_writer_abort(sr_blob_writer *w);

/**
 * Open a blob for streaming reads (_keyed: the blob sealed by data key
 * key_id, through opts.keys).
 * @return SR_OK; SR_ENOTFOUND; SR_ECORRUPT (bad header); SR_EVERSION;
 *         SR_EKEY (encrypted and no key, or with another key; a data key
 *         the resolver does not have: the message names it); SR_EERASED
 *         (its data key was destroyed: the message names the blob and the
 *         key); SR_EIO, SR_ENOMEM, SR_ECRYPTO. Detail in ei (optional).
 */
SR_MUST_CHECK int sr_blob_reader_open(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN],
                                      sr_blob_reader **out, sr_blob_errinfo *ei);
SR_MUST_CHECK int sr_blob_reader_open_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id,
                                            sr_blob_reader **out, sr_blob_errinfo *ei);

/**
 * Read up to cap bytes into buf. Each chunk is authenticated (GCM tag, or
 * CRC-32C when not encrypted) before any of its bytes are returned; at the
 * end the footer, the total size and the SHA-256 of everything read are
 * checked against the blob's name.
 *
 * Bytes returned before SR_DONE belong to a blob not yet verified in full:
 * do not act on them irrevocably until SR_DONE.
 *
 * @param[out] got  bytes stored in buf (> 0 on SR_OK when cap > 0).
 * @return SR_OK; SR_DONE (end, verified; *got = 0); SR_ECORRUPT (detail,
 *         naming the blob, in sr_blob_reader_errinfo); SR_EIO, SR_ECRYPTO.
 *         After an error every later call returns the same error.
 */
SR_MUST_CHECK int sr_blob_reader_read(sr_blob_reader *r, void *buf, size_t cap, size_t *got);
const sr_blob_errinfo *sr_blob_reader_errinfo(const sr_blob_reader *r);
/* Plaintext size claimed by the blob's footer (checked against the file
 * size when the reader opened; verified against the data at SR_DONE). */
uint64_t sr_blob_reader_size(const sr_blob_reader *r);
void sr_blob_reader_close(sr_blob_reader *r); /* NULL-safe */

/**
 * Plaintext size of a blob, from its header and footer (the footer is
 * authenticated, and must agree with the file's size; the chunks are not
 * read). Same errors as sr_blob_reader_open.
 */
SR_MUST_CHECK int sr_blob_stat(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint64_t *size);
SR_MUST_CHECK int sr_blob_stat_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id,
                                     uint64_t *size);

/**
 * Read a whole blob and check it: every chunk authenticated (GCM tag, or
 * CRC-32C), the footer, the size and the SHA-256 of the plaintext against
 * the blob's name. Nothing is returned but the verdict.
 * @param[out] size  plaintext size (optional), on SR_OK.
 * @return SR_OK; SR_ENOTFOUND (no file under the address); SR_ECORRUPT
 *         (detail naming the blob and offset in ei); SR_EKEY, SR_EVERSION,
 *         SR_EIO, SR_ENOMEM, SR_ECRYPTO.
 */
SR_MUST_CHECK int sr_blob_verify(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint64_t *size,
                                 sr_blob_errinfo *ei);
SR_MUST_CHECK int sr_blob_verify_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id,
                                       uint64_t *size, sr_blob_errinfo *ei);

/* SR_OK if a file exists under the blob's address, SR_ENOTFOUND if not, or
 * an I/O error. Does not validate the file (sr_blob_stat does). */
SR_MUST_CHECK int sr_blob_exists(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN]);
SR_MUST_CHECK int sr_blob_exists_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id);

/**
 * Remove a blob (unlink, then fsync its directory). For retention, once no
 * file event references the blob; the caller must make sure no commit of the
 * same content is in flight (that commit could dedup against this blob).
 * @return SR_OK; SR_ENOTFOUND; SR_EIO.
 */
SR_MUST_CHECK int sr_blob_delete(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN]);
SR_MUST_CHECK int sr_blob_delete_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id);

#endif
