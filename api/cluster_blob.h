/*
 * api/cluster_blob.h -- file bytes replicated through JetStream (issue #19's
 * open item "Blobs (files) are not in the stream"; the design and its
 * failure cases: docs/cluster.md "Files across nodes", the chunk's layout:
 * docs/blob-format.md "The cluster's blob chunks").
 *
 * A node that writes a FilePut (AP-IF or Admin upload) publishes the file's
 * bytes to the stream <name>_BLOBS before the FilePut event itself (the
 * publisher thread, api/cluster.c): the upload's answer waits for the
 * FilePut's acknowledgement, which comes after every chunk's. A node that
 * indexes a FilePut whose bytes it does not hold (another node's) fetches
 * them from that stream on a thread of its own, checks them against the
 * FilePut's size and SHA-256, and keeps them in its own blob store, sealed
 * by its own keys (storage/blobs.c), then serves them as a local file.
 *
 * The pure parts (no NATS; unit-tested in tests/api/test_cluster_blob.c,
 * fuzzed in tests/fuzz/fuzz_cblob.c):
 *  - the content id of a file: the lower-case hex SHA-256 of its bytes on a
 *    cluster without key_file; with the master key, HMAC-SHA-256 under a key
 *    derived from it of (operator, SHA-256), so a subject names no file's
 *    hash to whoever reads NATS;
 *  - a chunk message (plaintext, before sealing): a 56-byte header (magic
 *    "SRB1", chunk index, chunk count, chunk size, file size, the file's
 *    SHA-256) then the chunk's bytes;
 *  - the associated data of a sealed chunk: the operator's partition, the
 *    operator, kind "file_put" (the data key class: erased with the
 *    operator's data stream key of its epoch), node "blob:<content id>" (no
 *    node name holds ':') and the chunk index as seq.
 *
 * Invariants:
 *  1. Subjects are <name>.blob.<content id>.<index>, Nats-Msg-Id
 *     "blob:<content id>:<index>": the same bytes (and operator) give the
 *     same ids and subjects on every node and every retry; the stream keeps
 *     one message per subject (max_msgs_per_subject 1), so the same file
 *     uploaded twice costs the stream nothing.
 *  2. A chunk is accepted only when its header agrees with the FilePut (the
 *     file's size and SHA-256, the index asked for, the chunk count the
 *     size and chunk size give, the length the index gives) and, sealed,
 *     when it opens under its associated data; the file is stored only when
 *     the SHA-256 of all its chunks is the FilePut's (else refused with a
 *     WARN naming the file, never stored).
 *  3. With the master key no chunk is published in clear: each is sealed
 *     (api/cluster_seal.h) under the operator's data stream key of the
 *     FilePut's epoch; a node with the key refuses a plaintext chunk.
 *  4. No cnats call is made on a libuv loop thread: publishing runs on the
 *     publisher's thread, fetching on the fetcher's; a read only asks the
 *     fetcher (sr_cblobs_want) and answers 503 with Retry-After.
 */
#ifndef SR_CLUSTER_BLOB_H
#define SR_CLUSTER_BLOB_H

#include "api/cluster.h"
#include "api/cluster_seal.h"

#include <stddef.h>
#include <stdint.h>

enum {
    SR_CBLOB_HDR = 56,                 /* a chunk message's header */
    SR_CBLOB_CHUNK = 256 * 1024,       /* the bytes of a chunk a node publishes */
    SR_CBLOB_MIN_CHUNK = 1024,         /* what a chunk header may claim */
    SR_CBLOB_MAX_CHUNK = 1024 * 1024 - SR_CBLOB_HDR - SR_SEAL_OVERHEAD - 4096, /* a message fits 1 MiB */
};

/* A chunk message's header (docs/blob-format.md "The cluster's blob chunks"). */
typedef struct sr_cblob_hdr {
    uint32_t index, nchunks, chunk_size;
    uint64_t size;
    uint8_t sha[SR_HASH_LEN];
} sr_cblob_hdr;

/* The content id (64 lower-case hex digits and NUL) of op's file of SHA-256
 * sha: master NULL: the hex of sha; else HMAC-SHA-256(K, op NUL sha) with
 * K = SHA-256("suiro-blob-cid-v1" NUL master's bytes). */
void sr_cblob_cid(const sr_key *master, const char *op, const uint8_t sha[SR_HASH_LEN], char out[65]);
/* ceil(size / chunk) (chunk > 0); UINT32_MAX when it does not fit. */
uint32_t sr_cblob_nchunks(uint64_t size, uint32_t chunk);
/* The bytes chunk index holds of a file of size in chunks of chunk. */
size_t sr_cblob_chunk_len(uint64_t size, uint32_t chunk, uint32_t index);
/* The subject and Msg-Id of chunk index (invariant 1). */
void sr_cblob_subject(const char *name, const char *cid, uint32_t index, char *out, size_t n);
void sr_cblob_msgid(const char *cid, uint32_t index, char *out, size_t n);
/* The stream's name: <name>_BLOBS. */
void sr_cblob_stream(const char *name, char out[48]);
/* A chunk message: *out replaced by h's header and data[0..n). */
SR_MUST_CHECK int sr_cblob_chunk_build(const sr_cblob_hdr *h, const void *data, size_t n, sr_buf *out);
/* Parse a chunk message (outside bytes): SR_OK with *h and the chunk's
 * bytes (*data into p, *dlen), or SR_ECORRUPT with err naming the problem
 * (a bad magic, a chunk size out of bounds, an index not below the count,
 * a count the size and chunk size do not give, a length not the index's).
 * Never reads outside p[0..n). */
SR_MUST_CHECK int sr_cblob_chunk_parse(const void *p, size_t n, sr_cblob_hdr *h, const uint8_t **data,
                                       size_t *dlen, char *err, size_t errlen);
/* The associated data of a sealed chunk (node points into nodebuf). */
void sr_cblob_ad(sr_seal_ad *ad, char nodebuf[72], uint32_t partition, const char *op, const char *cid,
                 uint32_t index);

/* ---- publishing (the publisher's thread, api/cluster.c) ---- */
/* What publishing needs; js is the publisher's jsCtx *. */
typedef struct sr_cblob_pub {
    void *js;
    const char *name;
    uint32_t partitions;
    const sr_key *master;     /* NULL: plaintext chunks */
    sr_skeys *skeys;          /* with master: the publisher's stream keys */
    const sr_skv *skv;
    struct sr_blobs *blobs;   /* this node's blob store */
    sr_buf chunk, sealed;     /* scratch */
    char last_cid[8][65];     /* the content ids published lately (a retry publishes none again) */
    unsigned last_n;
} sr_cblob_pub;
/* Publish op's file fm's bytes (read from the blob store) to the stream,
 * each chunk waited for (its JetStream ack). SR_OK (also when the bytes
 * are not here: erased or cut, nothing to send, *skipped 1); SR_EERASED
 * (the stream key of its epoch was destroyed: nothing sent); SR_EIO (NATS:
 * the caller retries); err says why. ms: the FilePut's ingest time (its
 * stream key's epoch). */
SR_MUST_CHECK int sr_cblob_publish(sr_cblob_pub *p, const char *op, const sr_file_meta *fm, int64_t ms,
                                   int *skipped, char *err, size_t errlen);
void sr_cblob_pub_release(sr_cblob_pub *p);

/* ---- fetching (a thread of its own) ---- */
typedef struct sr_cblobs sr_cblobs;
typedef struct sr_cblobs_stats {
    uint64_t fetched, failed, refused, published;
    uint64_t pending; /* files whose bytes are not here yet (as of the last scan) */
} sr_cblobs_stats;
SR_MUST_CHECK int sr_cblobs_start(sr_engine *e, const sr_cluster_opts *o, sr_cblobs **out, char *err,
                                  size_t errlen);
void sr_cblobs_stop(sr_cblobs *b); /* NULL-safe; idempotent: the thread joined */
void sr_cblobs_free(sr_cblobs *b);
/* Look for files whose bytes are missing now (a FilePut applied, a read
 * that did not find them). Any thread (no NATS call). */
void sr_cblobs_kick(sr_cblobs *b);
/* The process's fetcher (NULL without a cluster), set by sr_cblobs_start. */
sr_cblobs *sr_cblobs_self(void);
void sr_cblobs_get_stats(sr_cblobs *b, sr_cblobs_stats *out); /* zeros for NULL */
/* Count one published file (the publisher). */
void sr_cblobs_count_published(sr_cblobs *b);
/* Why the bytes of sha are not here yet, from the last attempt ("" none):
 * a read's 503 message. */
void sr_cblobs_why(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN], char *out, size_t n);

#endif
