/*
 * storage/crypto.h -- the few primitives the log and blob store use, on
 * OpenSSL: the one table of algorithms by name (R-SE-4: AES-256-GCM; SHA-256,
 * SHA-384; ES256, ES384, PS256, EdDSA), hashes, AES-256-GCM, signatures,
 * HMAC-SHA-1 (TOTP, engine/totp.h), random bytes, and key files.
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

/* The table of algorithms (crypto.c, docs/keys.md "Algorithms"): a row per
 * sr_alg, with its name, kind and sizes. A new algorithm is a row there (and
 * an id above). Lookups scan a few rows: callers resolve a name once (at
 * config load, when a key or a header is read), never per record. */
enum { SR_ALG_KIND_AEAD = 1, SR_ALG_KIND_HASH = 2, SR_ALG_KIND_SIG = 3 }; /* sr_alg_kind */
enum {
    SR_HASH_MAX_LEN = 48, /* SHA-384 */
    SR_SIG_MAX_LEN = 512, /* RSA-PSS up to 4096 bits; ES384 is 96, ES256 and EdDSA 64 */
};
/* The id of name (case-insensitive) in *out, of kind (0: any kind). SR_EINVAL
 * with a message naming it and listing the known names of that kind in err
 * (if given). */
SR_MUST_CHECK int sr_alg_by_name(const char *name, int kind, sr_alg *out, char *err, size_t errlen);
/* "AES-256-GCM", "SHA-256", ..., "EdDSA"; NULL for an id not in the table. */
const char *sr_alg_name(int alg);
/* SR_ALG_KIND_*; 0 for an id not in the table. */
int sr_alg_kind(int alg);
/* A hash's output length; an AEAD's key length; a signature's length (0:
 * the key's modulus decides, PS256). 0 for an id not in the table. */
size_t sr_alg_size(int alg);
/* The known names of kind (0: all), comma-separated, into buf. */
void sr_alg_names(int kind, char *buf, size_t len);

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

/* The digest by hash alg (SR_ALG_SHA_256, SR_ALG_SHA_384) of p into out
 * (sr_alg_size(alg) bytes; sr_hash is the base layer's hash-table hash). SR_EINVAL if alg is not a hash. */
SR_MUST_CHECK int sr_digest(int alg, const void *p, size_t n, uint8_t out[SR_HASH_MAX_LEN]);
/* SHA-256, the default hash (the log's chain, blob names, ids): direct, no
 * table lookup, for the hot paths. */
void sr_sha256(const void *p, size_t n, uint8_t out[SR_HASH_LEN]);
/* SHA-256 of two concatenated pieces. */
void sr_sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SR_HASH_LEN]);

/* Incremental hashing (for data streamed in pieces). init allocates an
 * OpenSSL digest context (SR_ENOMEM, SR_ECRYPTO; SR_EINVAL if alg is not a
 * hash); release frees it and is NULL-safe and idempotent (a zeroed ctx is
 * released safely). final may be called once and writes sr_alg_size(alg)
 * bytes; the ctx must then be released. The sr_sha256_* names are the same
 * with SHA-256. */
typedef struct sr_digest_ctx {
    void *md; /* EVP_MD_CTX * */
    int alg;
} sr_digest_ctx;
SR_MUST_CHECK int sr_digest_init(sr_digest_ctx *c, int alg);
SR_MUST_CHECK int sr_digest_update(sr_digest_ctx *c, const void *p, size_t n);
SR_MUST_CHECK int sr_digest_final(sr_digest_ctx *c, uint8_t out[SR_HASH_MAX_LEN]);
void sr_digest_release(sr_digest_ctx *c);
typedef sr_digest_ctx sr_sha256_ctx;
SR_MUST_CHECK static inline int sr_sha256_init(sr_sha256_ctx *c) { return sr_digest_init(c, SR_ALG_SHA_256); }
SR_MUST_CHECK static inline int sr_sha256_update(sr_sha256_ctx *c, const void *p, size_t n)
{
    return sr_digest_update(c, p, n);
}
/* out: SR_HASH_LEN bytes (SR_EINVAL if c hashes with another algorithm) */
SR_MUST_CHECK int sr_sha256_final(sr_sha256_ctx *c, uint8_t out[SR_HASH_LEN]);
static inline void sr_sha256_release(sr_sha256_ctx *c) { sr_digest_release(c); }

SR_MUST_CHECK int sr_random(void *buf, size_t n);

/* HMAC-SHA-1 (RFC 2104) of msg under key, 20 bytes: only for TOTP/HOTP
 * (RFC 6238/4226), whose authenticators speak nothing else. SR_ECRYPTO if
 * OpenSSL fails. */
enum { SR_SHA1_LEN = 20 };
SR_MUST_CHECK int sr_hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n,
                               uint8_t out[SR_SHA1_LEN]);

typedef struct sr_aead sr_aead; /* one per thread; caches the cipher context */
/* AES-256-GCM under key. */
SR_MUST_CHECK int sr_aead_create(const sr_key *key, sr_aead **out);
/* The AEAD alg (a row of kind SR_ALG_KIND_AEAD; SR_EINVAL otherwise) under
 * key: what a data key of another algorithm uses. */
SR_MUST_CHECK int sr_aead_create_alg(int alg, const sr_key *key, sr_aead **out);
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

/* Signatures (the platform key's: pushes to apps, backup manifests), of the
 * table's signature rows: ES256 (ECDSA P-256, SHA-256), ES384 (ECDSA P-384,
 * SHA-384), PS256 (RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32, a modulus
 * of 2048..4096 bits), EdDSA (Ed25519). The key decides the algorithm
 * (sr_sigkey_alg). Signatures are as JWS has them: ECDSA raw r || s (64 or
 * 96 bytes), RSA-PSS the modulus's length, Ed25519 64 bytes. A sigkey is
 * loaded from a PEM file holding a private key, a public key or an X.509
 * certificate (the platform's platform-key.pem or platform-cert.pem); only
 * a private one signs. The one signature code of the project. */
typedef struct sr_sigkey sr_sigkey;
enum { SR_ES256_SIG_LEN = 64 }; /* raw r || s, as JWS */
/* SR_OK; SR_ENOTFOUND (no such file), SR_ECRYPTO (not a PEM key, a key of
 * no algorithm of the table (naming its type or curve), an RSA key under
 * 2048 or over 4096 bits (naming its size), or no private key when
 * need_private), with a message naming the file in err. */
SR_MUST_CHECK int sr_sigkey_load(const char *path, int need_private, sr_sigkey **out, char *err, size_t errlen);
/* The public key of an X.509 certificate (an X509 *, not taken) as a
 * verifying sigkey (api/sigcheck.c: an app's or a gateway's registered
 * certificate). SR_ECRYPTO with a message (a key of no row of the table). */
SR_MUST_CHECK int sr_sigkey_from_cert(const void *x509, sr_sigkey **out, char *err, size_t errlen);
/* A fresh private key of the signature algorithm alg (PS256: 3072 bits).
 * SR_EINVAL if alg is not a signature row; SR_ECRYPTO. */
SR_MUST_CHECK int sr_sigkey_generate(int alg, sr_sigkey **out);
/* The key's EVP_PKEY * (api/pki.c writes it and makes its certificate). */
void *sr_sigkey_evp(sr_sigkey *k);
/* The digest OpenSSL signs with under alg (a const EVP_MD *; NULL for EdDSA,
 * which hashes inside): for a certificate's signature. */
const void *sr_sig_evp_md(int alg);
void sr_sigkey_free(sr_sigkey *k);
/* 1: k holds the private key (it signs) */
int sr_sigkey_private(const sr_sigkey *k);
/* The key's algorithm (SR_ALG_ES256, ...) and its signatures' length. */
int sr_sigkey_alg(const sr_sigkey *k);
size_t sr_sigkey_sig_len(const sr_sigkey *k);
/* Sign msg into sig (sr_sigkey_sig_len(k) bytes, stored in *siglen).
 * SR_EINVAL without a private key; SR_ECRYPTO. */
SR_MUST_CHECK int sr_sigkey_sign(sr_sigkey *k, const void *msg, size_t n, uint8_t sig[SR_SIG_MAX_LEN],
                                 size_t *siglen);
/* SR_OK if sig (siglen bytes) is k's signature of msg; SR_ECORRUPT if not
 * (also a wrong length). */
SR_MUST_CHECK int sr_sigkey_verify(sr_sigkey *k, const void *msg, size_t n, const uint8_t *sig, size_t siglen);
/* SHA-256 of the public key (its DER SubjectPublicKeyInfo): names the key,
 * the same for the private key, the public key and the certificate. */
SR_MUST_CHECK int sr_sigkey_id(sr_sigkey *k, uint8_t out[SR_HASH_LEN]);

/* The signature in the transparency logs' form (the C2SP signed note,
 * docs/audit.md): ECDSA as ASN.1 DER (up to SR_SIG_MAX_LEN + 16 bytes), the
 * other algorithms as sr_sigkey_sign's. Verify: SR_OK, SR_ECORRUPT. */
SR_MUST_CHECK int sr_sigkey_sign_der(sr_sigkey *k, const void *msg, size_t n, uint8_t sig[SR_SIG_MAX_LEN + 16],
                                     size_t *siglen);
SR_MUST_CHECK int sr_sigkey_verify_der(sr_sigkey *k, const void *msg, size_t n, const uint8_t *sig, size_t siglen);
/* An Ed25519 key's raw 32-byte public key (*len in: room, out: 32);
 * SR_EINVAL for another algorithm. */
SR_MUST_CHECK int sr_sigkey_raw_public(sr_sigkey *k, uint8_t *out, size_t *len);

/* Base64 (RFC 4648 section 4) of in[0..n) into out, NUL-terminated: out
 * holds 4 * ceil(n / 3) + 1 bytes; url: the URL-safe alphabet of section 5
 * ('-' and '_') without '=' padding (base64url, as in JWS), and out then
 * needs only ceil(4n / 3) + 1 bytes. Returns the length written. The one base64 encoder of the project (OpenSSL's
 * EVP_EncodeBlock); hex is sr_hex / sr_unhex in the base layer. */
size_t sr_base64(const uint8_t *in, size_t n, char *out, int url);

/* Base64 (RFC 4648 section 4, padded) of in[0..n) into out (cap bytes):
 * SR_OK with *outlen; SR_EINVAL (not base64, or no room). The decoder of
 * the signed notes (docs/audit.md). */
SR_MUST_CHECK int sr_unbase64(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);

#endif
