/*
 * storage/crypto.h -- the few primitives the log and blob store use, on
 * OpenSSL: SHA-256, AES-256-GCM, HMAC-SHA-1 (TOTP, engine/totp.h), random
 * bytes, and key files.
 *
 * A key file holds a 256-bit key as 64 hex digits (surrounding white space
 * allowed) or as exactly 32 raw bytes. It must live outside the data
 * directory. The key id (recorded in every encrypted block) is the first 4
 * bytes, little-endian, of SHA-256("suiro-key-id-v1" || key): it names the key
 * without revealing it, so a reader can say "wrong key" instead of "corrupt".
 */
#ifndef SR_CRYPTO_H
#define SR_CRYPTO_H

#include "codecs/base/sr_alloc.h" /* sr_hex, which most users of a hash want */
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

enum { SR_KEY_LEN = 32, SR_NONCE_LEN = 12, SR_TAG_LEN = 16, SR_HASH_LEN = 32 };

/* Algorithm ids (issue #16, R-SE-4): what a stored block, a wrapped key or a
 * signature records to name its algorithm. Stored on disk: never renumber,
 * only append. 0 is "none". The table of names (crypto.c) maps them. */
typedef enum sr_alg {
    SR_ALG_NONE = 0,
    SR_ALG_AES_256_GCM = 1, /* AEAD: log sections, blobs, index values, key wrapping */
    SR_ALG_SHA_256 = 16,    /* hashes */
    SR_ALG_SHA_384 = 17,
    SR_ALG_ES256 = 32,      /* signatures: ECDSA P-256 with SHA-256 */
    SR_ALG_ES384 = 33,      /* ECDSA P-384 with SHA-384 */
    SR_ALG_PS256 = 34,      /* RSA-PSS (>= 2048-bit modulus) with SHA-256 */
    SR_ALG_EDDSA = 35,      /* Ed25519 */
} sr_alg;

typedef struct sr_key {
    uint8_t bytes[SR_KEY_LEN];
    uint32_t id;
} sr_key;

/* Load the key that spec names (docs/configuration.md "Where the key comes
 * from"; the form of openssl's -passin):
 *   PATH or file:PATH  a file holding 64 hex digits (white space around them
 *                      allowed) or exactly 32 raw bytes;
 *   env:NAME           the environment variable NAME, 64 hex digits;
 *   cmd:COMMAND        what COMMAND prints on stdout (run with /bin/sh -c, its
 *                      stderr passing through), the same forms as a file; it
 *                      must exit 0 within SR_KEY_COMMAND_TIMEOUT_MS, or it is
 *                      killed: a KMS's, an HSM's or a TPM's client.
 * SR_EKEY with a message naming the source and what is wrong in err (if
 * given). The key's bytes do not stay in any buffer but out. */
enum { SR_KEY_COMMAND_TIMEOUT_MS = 30000 };
SR_MUST_CHECK int sr_key_load(const char *spec, sr_key *out, char *err, size_t errlen);
/* The same with another command timeout (tests). */
SR_MUST_CHECK int sr_key_load_from(const char *spec, int timeout_ms, sr_key *out, char *err, size_t errlen);
/* Build a key from raw bytes (computes the id). */
void sr_key_from_bytes(sr_key *k, const uint8_t bytes[SR_KEY_LEN]);

void sr_sha256(const void *p, size_t n, uint8_t out[SR_HASH_LEN]);
/* SHA-256 of two concatenated pieces. */
void sr_sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SR_HASH_LEN]);

/* Incremental SHA-256 (for data streamed in pieces). init allocates an
 * OpenSSL digest context (SR_ENOMEM, SR_ECRYPTO); release frees it and is
 * NULL-safe and idempotent (a zeroed ctx is released safely). final may be
 * called once; the ctx must then be released. */
typedef struct sr_sha256_ctx {
    void *md; /* EVP_MD_CTX * */
} sr_sha256_ctx;
SR_MUST_CHECK int sr_sha256_init(sr_sha256_ctx *c);
SR_MUST_CHECK int sr_sha256_update(sr_sha256_ctx *c, const void *p, size_t n);
SR_MUST_CHECK int sr_sha256_final(sr_sha256_ctx *c, uint8_t out[SR_HASH_LEN]);
void sr_sha256_release(sr_sha256_ctx *c);

SR_MUST_CHECK int sr_random(void *buf, size_t n);

/* HMAC-SHA-1 (RFC 2104) of msg under key, 20 bytes: only for TOTP/HOTP
 * (RFC 6238/4226), whose authenticators speak nothing else. SR_ECRYPTO if
 * OpenSSL fails. */
enum { SR_SHA1_LEN = 20 };
SR_MUST_CHECK int sr_hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n,
                               uint8_t out[SR_SHA1_LEN]);

typedef struct sr_aead sr_aead; /* one per thread; caches the cipher context */
SR_MUST_CHECK int sr_aead_create(const sr_key *key, sr_aead **out);
void sr_aead_destroy(sr_aead *a);
/* Encrypt n bytes of in into out (n bytes) and write the tag. */
SR_MUST_CHECK int sr_aead_seal(sr_aead *a, const uint8_t nonce[SR_NONCE_LEN], const void *aad,
                               size_t aadlen, const void *in, size_t n, void *out,
                               uint8_t tag[SR_TAG_LEN]);
/* Decrypt and authenticate; SR_ECORRUPT if the tag does not verify. */
SR_MUST_CHECK int sr_aead_open(sr_aead *a, const uint8_t nonce[SR_NONCE_LEN], const void *aad,
                               size_t aadlen, const void *in, size_t n, void *out,
                               const uint8_t tag[SR_TAG_LEN]);

/* A resolver of key ids to sealing and opening (issue #16: the per-operator,
 * per-epoch data keys of engine/keys, docs/keys.md), for the stores that
 * seal under many keys (the log's version 3 sections, blobs, index values)
 * without holding key material. alg is the AEAD the caller stored beside the
 * ciphertext (sr_alg). Both calls must be thread-safe. They return SR_OK;
 * SR_EKEY (the key id is unknown here: msg names it and what is needed);
 * SR_EERASED (the key was destroyed: crypto-shredded); SR_ECORRUPT (the tag
 * does not verify); SR_ECRYPTO. */
typedef struct sr_keys {
    void *ctx;
    int (*seal)(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen);
    int (*open)(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen);
    /* the AEAD algorithm of key_id (sr_alg), 0 if unknown */
    int (*alg)(void *ctx, uint32_t key_id);
} sr_keys;

/* ES256 (ECDSA P-256 with SHA-256): the platform key's signatures (pushes
 * to apps, backup manifests). A sigkey is loaded from a PEM file holding a
 * private key, a public key or an X.509 certificate (the platform's
 * platform-key.pem or platform-cert.pem); only a private one signs. The one
 * ES256 code of the project. */
typedef struct sr_sigkey sr_sigkey;
enum { SR_ES256_SIG_LEN = 64 }; /* raw r || s, as JWS */
/* SR_OK; SR_ENOTFOUND (no such file), SR_ECRYPTO (not a P-256 key, or no
 * private key when need_private), with a message naming the file in err. */
SR_MUST_CHECK int sr_sigkey_load(const char *path, int need_private, sr_sigkey **out, char *err, size_t errlen);
void sr_sigkey_free(sr_sigkey *k);
/* 1: k holds the private key (it signs) */
int sr_sigkey_private(const sr_sigkey *k);
SR_MUST_CHECK int sr_sigkey_sign(sr_sigkey *k, const void *msg, size_t n, uint8_t sig[SR_ES256_SIG_LEN]);
/* SR_OK if sig is k's signature of msg; SR_ECORRUPT if not. */
SR_MUST_CHECK int sr_sigkey_verify(sr_sigkey *k, const void *msg, size_t n, const uint8_t sig[SR_ES256_SIG_LEN]);
/* SHA-256 of the public key (its DER SubjectPublicKeyInfo): names the key,
 * the same for the private key, the public key and the certificate. */
SR_MUST_CHECK int sr_sigkey_id(sr_sigkey *k, uint8_t out[SR_HASH_LEN]);

/* Base64 (RFC 4648 section 4) of in[0..n) into out, NUL-terminated: out
 * holds 4 * ceil(n / 3) + 1 bytes; url: the URL-safe alphabet of section 5
 * ('-' and '_') without '=' padding (base64url, as in JWS), and out then
 * needs only ceil(4n / 3) + 1 bytes. Returns the length written. The one base64 encoder of the project (OpenSSL's
 * EVP_EncodeBlock); hex is sr_hex / sr_unhex in the base layer. */
size_t sr_base64(const uint8_t *in, size_t n, char *out, int url);

#endif
