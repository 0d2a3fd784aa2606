/* engine/secret.h -- slow salted hashes for gateway and app secrets
 * (scrypt, R-ID-4). Stored form: "scrypt$<log2 N>$<r>$<p>$<salt hex>$<hash hex>". */
#ifndef SR_SECRET_H
#define SR_SECRET_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

/* Hash secret into out (appended, NUL not included). */
SR_MUST_CHECK int sr_secret_hash(const char *secret, sr_buf *out);
/* 1 if secret matches stored, 0 if not (or stored is malformed). Constant
 * time in the comparison. */
int sr_secret_verify(const char *secret, const void *stored, size_t len);
/* The login check: as sr_secret_verify, but when stored is empty or
 * malformed (an unknown or disabled principal) it still runs one scrypt with
 * the default parameters (on a fixed salt) and answers 0, so that a refusal
 * costs the same whether the ID exists or not. */
int sr_secret_check(const char *secret, const void *stored, size_t len);

#endif
