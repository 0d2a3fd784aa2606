/*
 * api/cluster_seal.h -- stream keys: the cluster's streams never hold an
 * event in clear when its nodes run with [engine] key_file (issue #19's open
 * item "Encryption", R-SE-2; the design and its threat model: docs/keys.md
 * "Cluster: stream keys", docs/cluster.md "Encryption of the streams").
 *
 * A stream key is a random 256-bit AES-256-GCM key per (operator, key class,
 * stream epoch), wrapped by the master key (every node of a cluster is given
 * the same master key), kept in the JetStream KV bucket <name>_KEYS under
 * "k.<16 hex digits of its id>". Its id is derived from what it names
 * (sr_skey_id), so every node that needs the key of (op, class, epoch) names
 * the same KV key, and the first creates it with a create-only put (a loser
 * reads the winner's). The publisher seals each payload (sr_seal_payload),
 * the consumers open it (sr_open_payload); the NATS header Suiro-Key names
 * the key id (absent: a plaintext payload).
 *
 * The payload (little-endian):
 *   4 magic "SRS1" | 8 key id | 2 alg (sr_alg: 1 AES-256-GCM) | 12 nonce |
 *   ciphertext (the serialized Event) | 16 tag
 * Associated data: "suiro-stream-v1" NUL, the payload's first 26 bytes, the
 * partition (u32), the key class (u8), then the operator, the kind (Suiro-
 * Kind) and the node (Suiro-Node), each a u8 length and its bytes, and the
 * node's seq (u64): a payload moved to another partition, operator, kind,
 * class, message id or key does not open (SR_ECORRUPT, never wrong data).
 *
 * A KV entry (the bucket's value, little-endian):
 *   8 magic "SRSKEY1" NUL | 4 master key id | 8 key id | 2 alg | 1 class |
 *   1 state (1 active, 3 destroyed) | 4 epoch | 4 period_days |
 *   8 created_ms | 8 destroyed_ms | 2 operator length L | L operator |
 *   active only: 12 nonce | 32 wrapped key | 16 tag
 * The wrapping's associated data: "suiro-stream-key-v1" NUL and every byte
 * of the entry before the nonce except the state and destroyed_ms (as the
 * keyring's entries, docs/keys.md "The keyring file").
 *
 * Invariants:
 *  1. A payload is sealed only by the key of its own (operator, class,
 *     epoch); its epoch follows from the event's ingest time and [keys]
 *     rotate_days (sr_skey_epoch): deterministic, so nodes with the same
 *     rotate_days agree on the key without talking.
 *  2. A payload is opened or refused, never applied in clear: a sealed
 *     node refuses a plaintext payload, a node without key_file a sealed
 *     one, and a payload whose key is unknown (not in the bucket), erased
 *     (a destroyed entry) or wrapped by another master is refused with an
 *     error naming the key id and why.
 *  3. An entry in the bucket is created once (create-only) and only ever
 *     replaced by its tombstone (state destroyed, no key bytes; the bucket
 *     keeps history 1, so the wrapped bytes leave its stream).
 *  4. The bucket's bytes are outside input: sr_skey_unwrap never crashes
 *     on them (fuzz_origin feeds it) and checks the id against what the
 *     entry names.
 * Threads: a sr_skeys is one thread's (the publisher's, the consumers',
 * a tool's); its KV calls block and are never made on a libuv loop thread.
 */
#ifndef SR_CLUSTER_SEAL_H
#define SR_CLUSTER_SEAL_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "storage/crypto.h"

#include <stddef.h>
#include <stdint.h>

enum {
    SR_SEAL_HDR_LEN = 26,                                /* magic, key id, alg, nonce */
    SR_SEAL_OVERHEAD = SR_SEAL_HDR_LEN + SR_TAG_LEN,     /* 42 bytes a payload */
    SR_SKEY_ACTIVE = 1,
    SR_SKEY_DESTROYED = 3,
};

/* What a payload is bound to (its NATS headers and subject). */
typedef struct sr_seal_ad {
    uint32_t partition;
    const char *op;   /* "" for the platform (Suiro-Operator "-") */
    const char *kind; /* Suiro-Kind */
    const char *node; /* Suiro-Node */
    uint64_t seq;     /* Suiro-Seq */
} sr_seal_ad;

/* A stream key, unwrapped (state destroyed: no key bytes). */
typedef struct sr_skey {
    uint64_t id;
    uint32_t master_id, epoch, period_days;
    uint16_t alg;
    uint8_t cls, state; /* cls: SR_KC_DATA, SR_KC_AUDIT, SR_KC_CONFIG (storage/keyring.h) */
    int64_t created_ms, destroyed_ms;
    char op[256];
    uint8_t key[SR_KEY_LEN];
} sr_skey;

/* The id of the stream key of (op, cls, epoch, period_days): the first 8
 * bytes, little-endian, of SHA-256("suiro-stream-kid-v1" NUL op NUL cls
 * epoch period_days); never 0. */
uint64_t sr_skey_id(const char *op, int cls, uint32_t epoch, uint32_t period_days);
/* The stream epoch of an event of key class cls ingested at ms (UTC):
 * config keys never rotate (1); data and audit keys: 1 + ms / period
 * (period_days > 0), else 1. */
uint32_t sr_skey_epoch(int cls, int64_t ms, uint32_t period_days);
/* The time range [*from, *to) of an epoch (to: INT64_MAX when it never ends). */
void sr_skey_epoch_range(int cls, uint32_t epoch, uint32_t period_days, int64_t *from, int64_t *to);
/* A fresh active key of (op, cls, epoch, period_days), created now. */
SR_MUST_CHECK int sr_skey_make(const char *op, int cls, uint32_t epoch, uint32_t period_days, int64_t now_ms,
                               sr_skey *out);
/* The KV value of k (active: wrapped by master; destroyed: the tombstone). */
SR_MUST_CHECK int sr_skey_wrap(const sr_key *master, const sr_skey *k, sr_buf *out);
/* Parse and unwrap a KV value (outside bytes): SR_OK; SR_ECORRUPT (not an
 * entry, a bad length, an id that is not what it names, a tag that does not
 * verify); SR_EKEY (wrapped by another master: err names both ids); a
 * destroyed entry is SR_OK with state SR_SKEY_DESTROYED and no key bytes. */
SR_MUST_CHECK int sr_skey_unwrap(const sr_key *master, const void *p, size_t n, sr_skey *out, char *err,
                                 size_t errlen);

/* The key id a sealed payload names (0: too short or not a sealed payload). */
uint64_t sr_seal_key_id(const void *p, size_t n);
/* Seal in[0..n) under k (active) for ad: *out replaced by the payload. */
SR_MUST_CHECK int sr_seal_payload(const sr_skey *k, const sr_seal_ad *ad, const void *in, size_t n, sr_buf *out);
/* Open a payload under k for ad: *out replaced by the plaintext. SR_OK;
 * SR_EKEY (the payload names another key id); SR_EERASED (k destroyed);
 * SR_ECORRUPT (not a payload, or it does not authenticate: a changed byte,
 * another ad). err names why. */
SR_MUST_CHECK int sr_open_payload(const sr_skey *k, const sr_seal_ad *ad, const void *p, size_t n, sr_buf *out,
                                  char *err, size_t errlen);

/* ---- the store: a cache of stream keys in front of the bucket ---- */

/* The bucket, abstracted (api/cluster_seal.c's NATS one: sr_skeys_kv_nats;
 * the unit tests': in memory). get: SR_OK with the value in *val,
 * SR_ENOTFOUND, SR_EIO. create (create-only): SR_OK, SR_EEXIST (someone
 * else's is there), SR_EIO. put (unconditional: the tombstone): SR_OK, SR_EIO. */
typedef struct sr_skv {
    void *ctx;
    int (*get)(void *ctx, const char *key, sr_buf *val);
    int (*create)(void *ctx, const char *key, const void *p, size_t n);
    int (*put)(void *ctx, const char *key, const void *p, size_t n);
} sr_skv;

typedef struct sr_skeys sr_skeys;
/* A cache for one thread, under master, with [keys] rotate_days. A cached
 * key is read again from the bucket once it was read SR_SKEYS_TTL_MS ago:
 * a key destroyed by another node (sr_skeys_destroy) is used by this one
 * for at most that long. */
enum { SR_SKEYS_TTL_MS = 30000 };
SR_MUST_CHECK int sr_skeys_new(const sr_key *master, uint32_t rotate_days, sr_skeys **out);
void sr_skeys_set_ttl(sr_skeys *s, int64_t ttl_ms); /* tests; a tool: 0 (always read) */
void sr_skeys_free(sr_skeys *s); /* NULL-safe; wipes the keys */
/* The KV key of id: "k.<16 hex>". */
void sr_skeys_kv_key(uint64_t id, char out[24]);
/* Seal an event of kind (its key class from the kind) ingested at ms for ad
 * into *out (the payload), through kv (a key missing is created; a lost
 * race reads the winner's); *id the key id (the Suiro-Key header). SR_OK;
 * SR_EIO (the bucket); SR_EERASED (the key of that epoch was destroyed:
 * nothing is sealed under a new one); err names why. */
SR_MUST_CHECK int sr_skeys_seal(sr_skeys *s, const sr_skv *kv, const sr_seal_ad *ad, int64_t ms, const void *in,
                                size_t n, sr_buf *out, uint64_t *id, char *err, size_t errlen);
/* Open a payload for ad: the key it names from the cache, else from kv.
 * SR_OK; SR_ENOTFOUND (no such key in the bucket); SR_EERASED; SR_EKEY
 * (another master, or a key of another operator or class than ad's);
 * SR_ECORRUPT; SR_EIO. err names the key id and why. */
SR_MUST_CHECK int sr_skeys_open(sr_skeys *s, const sr_skv *kv, const sr_seal_ad *ad, const void *p, size_t n,
                                sr_buf *out, char *err, size_t errlen);
/* Destroy the key id: its tombstone replaces the entry in the bucket (the
 * wrapped bytes leave it) and the cache forgets the key. SR_OK (also when
 * already destroyed); SR_ENOTFOUND; SR_EKEY; SR_EIO. *info (if given): the
 * key's metadata. */
SR_MUST_CHECK int sr_skeys_destroy(sr_skeys *s, const sr_skv *kv, uint64_t id, int64_t now_ms, sr_skey *info,
                                   char *err, size_t errlen);

/* ---- an erasure, recorded in the log (issue #19 ckey) ---- */

/* Who erases and why (docs/keys.md "Cluster: stream keys"). */
typedef struct sr_skey_erase_req {
    struct sr_engine *e;  /* the node's engine: the StreamKeyErase events go to its log */
    const char *actor;    /* the admin's user id, or the node's name (the sweep) */
    int actor_kind;       /* SR_ACTOR_USER or SR_ACTOR_SYSTEM (engine/records.h) */
    const char *source;   /* the admin's peer address; NULL: none */
    const char *why;      /* "admin" or "retention" */
    int64_t cut_ms;       /* retention: the cut the epoch ended before */
    const char *node;     /* [cluster] node */
    uint64_t intent_seq;  /* finishing an open intent (sr_engine_skey_pending): its seq, no new intent */
} sr_skey_erase_req;
/* What came of it. outcome: done (this node wrote the tombstone), found
 * (destroyed already: by another node, or earlier), failed (the bucket
 * refused the tombstone: message why), refused (no such key, a config key). */
typedef struct sr_skey_erase_out {
    char outcome[12];
    sr_skey info;          /* the entry's metadata (no key bytes) */
    uint64_t intent_seq, result_seq; /* the two events in the log (0: none) */
} sr_skey_erase_out;
/* Erase the stream key id, recorded in the log (sr_engine's StreamKeyErase):
 * 1. its entry is read (metadata): not in the bucket, or a config key: one
 *    event "refused", SR_ENOTFOUND / SR_EINVAL;
 * 2. the intent (outcome pending) is appended and made durable
 *    (sr_engine_log_durable) -- skipped when q->intent_seq names one;
 * 3. the tombstone is written (sr_skeys_destroy: an idempotent put; an
 *    entry destroyed already is "found");
 * 4. the result (done, found or failed, intent_seq) is appended.
 * A crash after 2 leaves the intent open: finished at the next start
 * (sr_skey_erase_pending). SR_OK (done or found); SR_EIO (failed, recorded);
 * an engine error when an event could not be appended (err names it; after
 * a failed intent nothing was erased). Blocks (the bucket, the engine's
 * acknowledgements): never on a libuv loop thread. */
SR_MUST_CHECK int sr_skey_erase(sr_skeys *s, const sr_skv *kv, const sr_skey_erase_req *q, uint64_t id,
                                int64_t now_ms, sr_skey_erase_out *out, char *err, size_t errlen);
/* Finish every open intent of engine e (a crash came between an intent and
 * its tombstone): sr_skey_erase with the intent's seq, actor node (system),
 * message "finished at start". *n: how many were finished. SR_OK, or the
 * first error (the others are tried at the next start). */
SR_MUST_CHECK int sr_skey_erase_pending(sr_skeys *s, const sr_skv *kv, struct sr_engine *e, const char *node,
                                        int64_t now_ms, unsigned *n, char *err, size_t errlen);

/* The retention sweep's decision for one entry of the bucket (its KV key
 * kvkey; api/cluster.c sr_cluster_skey_sweep lists them): an active data or
 * audit key whose epoch ended at or before its operator's retention cut of
 * that class (sr_engine_retention_cut of e, cfg, now) is erased
 * (sr_skey_erase: why retention, actor node, cut_ms the cut). A destroyed,
 * config or kept key: nothing done, nothing recorded. rep counts. SR_OK;
 * sr_skey_erase's code (recorded); SR_EIO (the bucket). */
typedef struct sr_skey_sweep_rep {
    uint64_t keys, erased, found, failed;
} sr_skey_sweep_rep;
struct sr_retention_cfg;
SR_MUST_CHECK int sr_skey_retention_erase(sr_skeys *s, const sr_skv *kv, struct sr_engine *e,
                                          const struct sr_retention_cfg *cfg, int64_t now, const char *node,
                                          const char *kvkey, sr_skey_sweep_rep *rep, char *err, size_t errlen);

/* The bucket's name for the streams' prefix name: "<name>_KEYS". */
void sr_skeys_bucket(const char *name, char out[48]);
/* The NATS bucket over js (a jsCtx *): opened, or created (history 1,
 * file storage, replicas) when missing, at the first call. */
typedef struct sr_skv_nats {
    void *js;        /* jsCtx *, the caller's */
    void *kv;        /* kvStore *, opened lazily */
    char bucket[48];
    int replicas;
} sr_skv_nats;
void sr_skv_nats_init(sr_skv_nats *n, sr_skv *kv, void *js, const char *name, int replicas);
void sr_skv_nats_reset(sr_skv_nats *n); /* the connection went: the store is opened again */
/* Every key of the bucket to fn (its nonzero stops and is returned): SR_OK, SR_EIO. Tools. */
SR_MUST_CHECK int sr_skv_nats_keys(sr_skv_nats *n, int (*fn)(void *ctx, const char *key), void *ctx);

#endif
