/*
 * storage/mtree.h -- the Merkle tree over the log, RFC 9162 section 2.1
 * (docs/audit.md "Checkpoints and proofs").
 *
 * Pure hashing, no I/O: the leaf and node hashes, the compact range (the
 * frontier: one perfect-subtree hash per set bit of the tree size) that grows
 * the tree one leaf at a time, and the proofs of RFC 9162 2.1.3 (PATH,
 * inclusion) and 2.1.4 (SUBPROOF, consistency) with their verifiers (2.1.3.2,
 * 2.1.4.2), computed over perfect-subtree hashes a caller keeps (sr_mt_get:
 * the engine's `mtree` index database, a test's array).
 *
 * A perfect subtree is named by (level, index): it covers the leaves
 * [index * 2^level, (index + 1) * 2^level); level 0 is a leaf hash.
 *
 *   leaf hash = SHA-256(0x00 || leaf data)
 *   node hash = SHA-256(0x01 || left || right)
 *   MTH({})   = SHA-256("")
 *
 * INVARIANTS
 *  (1) A frontier of size n holds h[L] exactly for the set bits L of n, h[L]
 *      being MTH of the perfect subtree (L, (n >> L) - 1); its root is
 *      MTH(D[0:n]).
 *  (2) Every range this module hashes is one RFC 9162's recursion makes: a
 *      perfect aligned subtree, or a range ending at the tree size whose left
 *      part is the largest power of two below its length.
 */
#ifndef SR_MTREE_H
#define SR_MTREE_H

#include "storage/crypto.h"

#include <stddef.h>
#include <stdint.h>

enum {
    SR_MT_HASH_LEN = SR_HASH_LEN,
    SR_MT_MAX_LEVEL = 64,  /* a tree of up to 2^64 - 1 leaves */
    SR_MT_MAX_PROOF = 64,  /* the longest inclusion or consistency proof */
};

void sr_mt_leaf_hash(const void *data, size_t n, uint8_t out[SR_MT_HASH_LEN]);
/* The leaf hash of data given as two parts (a ‖ b): the log's leaf is a
 * block header's chained bytes ‖ its payload's digest (docs/audit.md). */
void sr_mt_leaf_hash2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SR_MT_HASH_LEN]);
void sr_mt_node_hash(const uint8_t left[SR_MT_HASH_LEN], const uint8_t right[SR_MT_HASH_LEN],
                     uint8_t out[SR_MT_HASH_LEN]);
/* MTH of the empty tree: SHA-256 of no bytes. */
void sr_mt_empty_root(uint8_t out[SR_MT_HASH_LEN]);

/* The compact range of the first `size` leaves (invariant 1). */
typedef struct sr_mt_frontier {
    uint64_t size;
    uint8_t h[SR_MT_MAX_LEVEL][SR_MT_HASH_LEN];
} sr_mt_frontier;

/* Told every perfect subtree a push completes, the leaf itself first
 * (level 0, index = its leaf index), then each larger one. A nonzero return
 * stops the push and is returned by it (the frontier is then unchanged). */
typedef int (*sr_mt_emit)(void *ctx, unsigned level, uint64_t index, const uint8_t hash[SR_MT_HASH_LEN]);

void sr_mt_frontier_init(sr_mt_frontier *f);
/* Append one leaf hash. emit may be NULL. SR_OK, SR_EINVAL (tree full), or
 * emit's code. */
int sr_mt_frontier_push(sr_mt_frontier *f, const uint8_t leaf[SR_MT_HASH_LEN], sr_mt_emit emit, void *ctx);
/* MTH(D[0:size]). */
void sr_mt_frontier_root(const sr_mt_frontier *f, uint8_t out[SR_MT_HASH_LEN]);
/* The frontier as bytes (a LogTrim carries it): size u64 LE, then the hashes
 * of its set bits from the highest level down. Returns the length (out holds
 * 8 + 64 * 32 bytes at most). */
size_t sr_mt_frontier_encode(const sr_mt_frontier *f, uint8_t *out);
/* SR_OK, SR_ECORRUPT (a length that does not match the size's set bits). */
int sr_mt_frontier_decode(const uint8_t *in, size_t n, sr_mt_frontier *f);

/* A perfect subtree's hash from the caller's store: SR_OK; SR_ENOTFOUND
 * (not kept: dropped with a trimmed log, or not yet built); another code. */
typedef int (*sr_mt_get)(void *ctx, unsigned level, uint64_t index, uint8_t out[SR_MT_HASH_LEN]);

/* The frontier of the first n leaves, read through get. */
int sr_mt_frontier_at(sr_mt_get get, void *ctx, uint64_t n, sr_mt_frontier *out);
/* MTH(D[0:n]) (n = 0: the empty root). */
int sr_mt_root(sr_mt_get get, void *ctx, uint64_t n, uint8_t out[SR_MT_HASH_LEN]);
/* PATH(m, D[0:n]) of RFC 9162 2.1.3.1, leaf end first: m < n; *len <= 64.
 * SR_EINVAL (m >= n), or get's code. */
int sr_mt_inclusion(sr_mt_get get, void *ctx, uint64_t m, uint64_t n, uint8_t path[][SR_MT_HASH_LEN],
                    size_t *len);
/* PROOF(m, D[0:n]) of RFC 9162 2.1.4.1: 0 < m <= n (m = n: empty). */
int sr_mt_consistency(sr_mt_get get, void *ctx, uint64_t m, uint64_t n, uint8_t path[][SR_MT_HASH_LEN],
                      size_t *len);

/* RFC 9162 2.1.3.2: SR_OK if path proves leaf (its leaf hash) at index m in
 * the tree of n leaves with root; SR_ECORRUPT if not. */
int sr_mt_verify_inclusion(uint64_t m, uint64_t n, const uint8_t leaf[SR_MT_HASH_LEN],
                           const uint8_t path[][SR_MT_HASH_LEN], size_t len, const uint8_t root[SR_MT_HASH_LEN]);
/* RFC 9162 2.1.4.2: SR_OK if path proves the tree of m leaves with root1 a
 * prefix of the tree of n leaves with root2 (m = n: path empty and the roots
 * equal); SR_ECORRUPT if not. */
int sr_mt_verify_consistency(uint64_t m, uint64_t n, const uint8_t root1[SR_MT_HASH_LEN],
                             const uint8_t root2[SR_MT_HASH_LEN], const uint8_t path[][SR_MT_HASH_LEN],
                             size_t len);

/* ---- the checkpoint as a C2SP tlog-checkpoint signed note (docs/audit.md) ----
 *
 *   <origin>\n<tree size, decimal>\n<base64 root hash>\n[extension lines]
 *   \n
 *   \u2014 <key name> <base64(key hash (4) || signature)>\n
 *
 * The signature covers the body (every line up to and with its last
 * newline). Ed25519: signature type 0x01, key hash = SHA-256(name || 0x0A ||
 * 0x01 || the 32-byte public key)[:4], the 64-byte signature. ECDSA (ES256,
 * the default platform key; ES384): the signed note's ECDSA type, key hash =
 * SHA-256(the DER SubjectPublicKeyInfo)[:4] (RFC 6962's key id), the ASN.1
 * DER signature of SHA-256 (SHA-384) of the body. RSA-PSS: not a type of the
 * signed note; signed as ECDSA is (key hash of the SPKI), read by our own
 * checker only. */
enum { SR_TLOG_NOTE_MAX = 2048 };
/* The body: origin, size, root and the extension lines ext (each ending in
 * a newline; NULL: none). Returns its length, 0 if it does not fit in cap. */
size_t sr_tlog_body(const char *origin, uint64_t size, const uint8_t root[SR_MT_HASH_LEN], const char *ext, char *out,
                    size_t cap);
/* The 4-byte key hash of k under name. */
SR_MUST_CHECK int sr_tlog_key_hash(sr_sigkey *k, const char *name, uint8_t out[4]);
/* body, a blank line, and k's signature line as name: SR_OK, SR_EINVAL (no
 * room in cap, no private key), SR_ECRYPTO. */
SR_MUST_CHECK int sr_tlog_sign(sr_sigkey *k, const char *name, const char *body, char *out, size_t cap);
/* SR_OK if note carries a valid signature of k as name over its body
 * (*bodylen: the body's length); SR_ENOTFOUND (no line of that key),
 * SR_ECORRUPT (a bad signature, or not a signed note). */
SR_MUST_CHECK int sr_tlog_verify(sr_sigkey *k, const char *name, const char *note, size_t *bodylen);

/* The fields of a suiro checkpoint note's body (docs/audit.md): origin,
 * size, base64 root and the extension line "suiro-tip <base64 tip> <last
 * seq> <time ms>". It reads the first four lines of note[0..n) only (the
 * signature is sr_tlog_verify's): SR_OK, SR_ECORRUPT (not that shape: a
 * missing line, a size of 0 or not a number, a hash not 32 bytes of
 * base64). Outside bytes (`suiro audit verify --checkpoints FILE`):
 * fuzzed by tests/fuzz/fuzz_tlog.c. */
typedef struct sr_tlog_fields {
    char origin[128];
    uint64_t size, last_seq;
    int64_t time_ms;
    uint8_t root[SR_MT_HASH_LEN], tip[SR_MT_HASH_LEN];
} sr_tlog_fields;
SR_MUST_CHECK int sr_tlog_parse(const char *note, size_t n, sr_tlog_fields *out);

#endif
