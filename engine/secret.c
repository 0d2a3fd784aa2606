/* engine/secret.c -- scrypt through OpenSSL (see secret.h).
 * INVARIANT: sr_secret_check runs exactly one scrypt with the parameters
 * sr_secret_hash writes, whatever it is given (an unknown principal, an
 * empty or malformed stored hash): a refusal takes the same time for an
 * unknown ID as for a known one (issue #11, item 5). */
#include "engine/secret.h"

#include "storage/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOG2N = 14, R = 8, P = 1, SALT = 16, HASH = 32 };

static int derive(const char *secret, const uint8_t *salt, size_t saltlen, int log2n, int r, int p, uint8_t *out)
{
    if (log2n < 10 || log2n > 20 || r < 1 || r > 16 || p < 1 || p > 4) return SR_EINVAL;
    uint64_t n = 1ull << log2n;
    return EVP_PBE_scrypt(secret, strlen(secret), salt, saltlen, n, (uint64_t)r, (uint64_t)p, 256ull << 20, out,
                          HASH) == 1
               ? SR_OK
               : SR_ECRYPTO;
}

int sr_secret_hash(const char *secret, sr_buf *out)
{
    uint8_t salt[SALT], h[HASH];
    int rc = sr_random(salt, sizeof salt);
    if (!rc) rc = derive(secret, salt, sizeof salt, LOG2N, R, P, h);
    if (rc) return rc;
    char sh[2 * SALT + 1], hh[2 * HASH + 1], line[160];
    sr_hex(salt, SALT, sh);
    sr_hex(h, HASH, hh);
    int n = snprintf(line, sizeof line, "scrypt$%d$%d$%d$%s$%s", LOG2N, R, P, sh, hh);
    OPENSSL_cleanse(h, sizeof h);
    return sr_buf_append(out, line, (size_t)n);
}

/* 1 matched, 0 did not (scrypt ran), -1 stored is malformed (no scrypt ran) */
static int verify(const char *secret, const void *stored, size_t len)
{
    char buf[200];
    if (!secret || len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, stored, len);
    buf[len] = 0;
    int log2n, r, p;
    char sh[2 * SALT + 1], hh[2 * HASH + 1];
    if (sscanf(buf, "scrypt$%d$%d$%d$%32[0-9a-f]$%64[0-9a-f]", &log2n, &r, &p, sh, hh) != 5) return -1;
    if (strlen(sh) != 2 * SALT || strlen(hh) != 2 * HASH) return -1;
    uint8_t salt[SALT], want[HASH], got[HASH];
    if (sr_unhex(sh, SALT, salt) || sr_unhex(hh, HASH, want)) return -1;
    if (derive(secret, salt, SALT, log2n, r, p, got)) return -1;
    int ok = CRYPTO_memcmp(got, want, HASH) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

int sr_secret_verify(const char *secret, const void *stored, size_t len)
{
    return verify(secret, stored, len) == 1;
}

int sr_secret_check(const char *secret, const void *stored, size_t len)
{
    int ok = verify(secret, stored, len);
    if (ok >= 0) return ok;
    /* nothing (valid) to compare with: the same work against a fixed salt,
     * whose result is thrown away */
    static const char salt[SALT + 1] = "suiro-dummy-salt";
    uint8_t got[HASH];
    if (derive(secret ? secret : "", (const uint8_t *)salt, SALT, LOG2N, R, P, got) == SR_OK)
        OPENSSL_cleanse(got, sizeof got);
    return 0;
}
