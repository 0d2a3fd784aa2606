/* engine/secret.h -- slow salted hashes for gateway and app secrets
 * (scrypt, R-ID-4). Stored form: "scrypt$<log2 N>$<r>$<p>$<salt hex>$<hash hex>". */
#ifndef SR_SECRET_H
#define SR_SECRET_H

#include "engine/sr_alloc.h"
#include "engine/sr_error.h"

/* Hash secret into out (appended, NUL not included). */
SR_MUST_CHECK int sr_secret_hash(const char *secret, sr_buf *out);
/* 1 if secret matches stored, 0 if not (or stored is malformed). Constant
 * time in the comparison. */
int sr_secret_verify(const char *secret, const void *stored, size_t len);

#endif
