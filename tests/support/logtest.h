/* tests/support/logtest.h -- records whose length and bytes are a function
 * of their sequence number, so a test can append, crash, reopen and check any
 * range without keeping a copy. */
#ifndef SR_LOGTEST_H
#define SR_LOGTEST_H

#include "storage/log.h"

#include <stddef.h>
#include <stdint.h>

/* Length of record seq: mostly small, some large, up to maxlen (inclusive). */
size_t lt_len(uint64_t seq, size_t maxlen);
/* Append n records as one batch, content keyed by the sequence numbers they
 * will get (single writer only). Returns the sr_log_append code; *first set
 * on success. */
int lt_append(sr_log *lg, size_t n, size_t maxlen, uint64_t *first);
/* Check records [from, to) through an iterator: 0 if all match, else -1 and
 * a description in why. */
int lt_check(sr_log *lg, uint64_t from, uint64_t to, size_t maxlen, char *why, size_t whylen);
/* Deterministic nonces for golden files. */
void lt_nonce(void *ctx, uint8_t nonce[12]);
/* A fixed test key. */
void lt_key(sr_key *k, int which);

/* Rewrite the log in dir (closed; written by this build, every block one
 * plain uncompressed section) as the format `version` (1 or 2) writer would
 * have written it: block version 1, the chain over the plaintext. The bytes
 * of an older suiro's directory, for upgrade tests. 0, or -1 with why. */
int lt_downgrade(const char *dir, int version, char *why, size_t whylen);

/* A key resolver (sr_keys, storage/crypto.h) over up to LT_KEYS test keys
 * (lt_key(which)), thread-safe: what the keyring is to the log. A key can be
 * destroyed (open and seal then give SR_EERASED), dropped (unknown: SR_EKEY)
 * or swapped for another key's bytes under its id (a wrong key). */
enum { LT_KEYS = 8 };
typedef struct lt_keyring {
    sr_keys keys; /* pass &kr->keys as sr_log_opts.keys */
    int n;
    sr_key key[LT_KEYS];
    uint32_t id[LT_KEYS]; /* the id it answers to (key[i].id unless swapped) */
    int state[LT_KEYS];   /* 0 live, 1 destroyed, 2 unknown */
    void *mu;
} lt_keyring;
/* A keyring of the test keys which[0..n). */
void lt_keyring_init(lt_keyring *kr, const int *which, int n);
void lt_keyring_free(lt_keyring *kr);
/* the id of the i-th key */
uint32_t lt_keyring_id(const lt_keyring *kr, int i);
/* The key id of record seq in the keyed suites: key 0 or 1 of kr, or plain
 * (0), in runs of two, so that a batch is several sections. */
uint32_t lt_key_of(const lt_keyring *kr, uint64_t seq);
/* lt_append through sr_log_append_keyed, record seq under lt_key_of(kr, seq). */
int lt_append_keyed(sr_log *lg, const lt_keyring *kr, size_t n, size_t maxlen, uint64_t *first);
/* Each record of [from, to) has key id lt_key_of(kr, seq): 0, or -1 with why. */
int lt_check_keys(sr_log *lg, const lt_keyring *kr, uint64_t from, uint64_t to, char *why, size_t whylen);
/* state of the i-th key: LT_LIVE, LT_DESTROYED, LT_UNKNOWN */
enum { LT_LIVE = 0, LT_DESTROYED = 1, LT_UNKNOWN = 2 };
void lt_keyring_set(lt_keyring *kr, int i, int state);
/* the i-th id now opens with the bytes of test key `which` (a wrong key) */
void lt_keyring_swap(lt_keyring *kr, int i, int which);

#endif
