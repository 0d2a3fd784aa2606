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

#endif
