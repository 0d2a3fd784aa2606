/* storage/crypto.c -- OpenSSL EVP behind the small interface of crypto.h.
 * OpenSSL's errors are translated once, here, to SR_ECRYPTO. The table of
 * algorithms (ALGS) is the one place that maps an sr_alg id to its name,
 * kind, sizes and OpenSSL getter. */
#include "storage/crypto.h"

#include "codecs/base/sr_alloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct sr_aead {
    EVP_CIPHER_CTX *enc, *dec;
};

/* ------------------------------------------------------------------------ */
/* The table of algorithms (R-SE-4; docs/keys.md "Algorithms")               */

typedef struct alg_row {
    sr_alg id;
    const char *name;
    int kind;
    size_t size;                     /* hash: output; aead: key; sig: signature (0: the modulus) */
    const EVP_CIPHER *(*cipher)(void); /* aead */
    const EVP_MD *(*md)(void);       /* hash; sig: its digest (NULL: Ed25519 hashes inside) */
    const char *pkey;                /* sig: the OpenSSL key type */
    const char *group;               /* ECDSA: the curve */
} alg_row;

static const alg_row ALGS[] = {
    {SR_ALG_AES_256_GCM, "AES-256-GCM", SR_ALG_KIND_AEAD, SR_KEY_LEN, EVP_aes_256_gcm, NULL, NULL, NULL},
    {SR_ALG_SHA_256, "SHA-256", SR_ALG_KIND_HASH, 32, NULL, EVP_sha256, NULL, NULL},
    {SR_ALG_SHA_384, "SHA-384", SR_ALG_KIND_HASH, 48, NULL, EVP_sha384, NULL, NULL},
    {SR_ALG_ES256, "ES256", SR_ALG_KIND_SIG, 64, NULL, EVP_sha256, "EC", "prime256v1"},
    {SR_ALG_ES384, "ES384", SR_ALG_KIND_SIG, 96, NULL, EVP_sha384, "EC", "secp384r1"},
    {SR_ALG_PS256, "PS256", SR_ALG_KIND_SIG, 0, NULL, EVP_sha256, "RSA", NULL},
    {SR_ALG_EDDSA, "EdDSA", SR_ALG_KIND_SIG, 64, NULL, NULL, "ED25519", NULL},
};
enum { NALGS = sizeof ALGS / sizeof *ALGS, RSA_MIN_BITS = 2048, RSA_MAX_BITS = 8 * SR_SIG_MAX_LEN,
       RSA_GEN_BITS = 3072 };

static const alg_row *alg_row_of(int alg)
{
    for (size_t i = 0; i < NALGS; i++)
        if ((int)ALGS[i].id == alg) return &ALGS[i];
    return NULL;
}

void sr_alg_names(int kind, char *buf, size_t len)
{
    size_t at = 0;
    if (len) buf[0] = 0;
    for (size_t i = 0; i < NALGS && at < len; i++) {
        if (kind && ALGS[i].kind != kind) continue;
        int w = snprintf(buf + at, len - at, "%s%s", at ? ", " : "", ALGS[i].name);
        if (w < 0) break;
        at += (size_t)w;
    }
}

int sr_alg_by_name(const char *name, int kind, sr_alg *out, char *err, size_t errlen)
{
    for (size_t i = 0; name && i < NALGS; i++)
        if ((!kind || ALGS[i].kind == kind) && !strcasecmp(name, ALGS[i].name)) {
            *out = ALGS[i].id;
            return SR_OK;
        }
    if (err) {
        static const char *const kinds[] = {"algorithm", "AEAD", "hash", "signature algorithm"};
        char known[200];
        sr_alg_names(kind, known, sizeof known);
        snprintf(err, errlen, "unknown %s '%.64s' (known: %s)", kinds[kind >= 0 && kind <= 3 ? kind : 0],
                 name ? name : "", known);
    }
    return SR_EINVAL;
}

const char *sr_alg_name(int alg)
{
    const alg_row *r = alg_row_of(alg);
    return r ? r->name : NULL;
}

int sr_alg_kind(int alg)
{
    const alg_row *r = alg_row_of(alg);
    return r ? r->kind : 0;
}

size_t sr_alg_size(int alg)
{
    const alg_row *r = alg_row_of(alg);
    return r ? r->size : 0;
}

void sr_key_from_bytes(sr_key *k, const uint8_t bytes[SR_KEY_LEN])
{
    static const char label[] = "suiro-key-id-v1";
    uint8_t h[SR_HASH_LEN];
    memcpy(k->bytes, bytes, SR_KEY_LEN);
    sr_sha256_2(label, sizeof label - 1, bytes, SR_KEY_LEN, h);
    k->id = sr_get_le32(h);
}

/* The key's bytes from what its source gave (n bytes of buf): 64 hex digits
 * with optional white space around them, or exactly 32 raw bytes. */
static int key_parse(const uint8_t *buf, size_t n, const char *src, uint8_t key[SR_KEY_LEN], char *err,
                     size_t errlen)
{
    if (n == SR_KEY_LEN) {
        memcpy(key, buf, SR_KEY_LEN);
        return SR_OK;
    }
    size_t i = 0, k = 0;
    while (i < n && isspace(buf[i])) i++;
    while (i + 1 < n && k < SR_KEY_LEN && sr_unhex((const char *)buf + i, 1, key + k) == 0) {
        k++;
        i += 2;
    }
    while (i < n && isspace(buf[i])) i++;
    if (k != SR_KEY_LEN || i != n) {
        if (err) snprintf(err, errlen, "%s: expected 64 hex digits or 32 raw bytes (got %zu bytes)", src, n);
        return SR_EKEY;
    }
    return SR_OK;
}

/* Run cmd with /bin/sh -c in a process group of its own, its stdout (at
 * most cap bytes) into buf; its stderr passes through. SR_OK when it exited
 * 0 within timeout_ms; at the deadline the whole group is killed. */
static int key_command(const char *cmd, int timeout_ms, uint8_t *buf, size_t cap, size_t *n, char *err,
                       size_t errlen)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC)) {
        if (err) snprintf(err, errlen, "key source cmd:%s: cannot make a pipe: %s", cmd, strerror(errno));
        return SR_EKEY;
    }
    pid_t pid = fork();
    if (pid < 0) {
        if (err) snprintf(err, errlen, "key source cmd:%s: cannot start it: %s", cmd, strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return SR_EKEY;
    }
    if (pid == 0) { /* the child: only async-signal-safe calls until exec */
        setpgid(0, 0); /* its own group: a timeout kills what it started too */
        if (dup2(fd[1], STDOUT_FILENO) < 0) _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    *n = 0;
    int rc = SR_OK, timed_out = 0, too_long = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {fd[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue; /* the deadline is checked above */
        uint8_t tmp[512];
        ssize_t r = read(fd[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* the end of its output */
        if (*n + (size_t)r > cap) too_long = 1;
        else memcpy(buf + *n, tmp, (size_t)r);
        if (!too_long) *n += (size_t)r;
        OPENSSL_cleanse(tmp, sizeof tmp);
    }
    close(fd[0]);
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        if (err) snprintf(err, errlen, "key source cmd:%s: no answer within %d ms (killed)", cmd, timeout_ms);
        rc = SR_EKEY;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        if (err) {
            if (WIFEXITED(st)) snprintf(err, errlen, "key source cmd:%s: exited with status %d", cmd, WEXITSTATUS(st));
            else snprintf(err, errlen, "key source cmd:%s: ended by signal %d", cmd, WTERMSIG(st));
        }
        rc = SR_EKEY;
    } else if (too_long) {
        if (err) snprintf(err, errlen, "key source cmd:%s: printed more than %zu bytes (a key is 64 hex digits)", cmd, cap);
        rc = SR_EKEY;
    }
    return rc;
}

int sr_key_load_from(const char *spec, int timeout_ms, sr_key *out, char *err, size_t errlen)
{
    uint8_t buf[256], key[SR_KEY_LEN];
    size_t n = 0;
    char src[300];
    int rc = SR_OK;
    if (!strncmp(spec, "env:", 4)) {
        const char *v = getenv(spec + 4);
        snprintf(src, sizeof src, "key source %s", spec);
        if (!spec[4] || !v) {
            if (err) snprintf(err, errlen, "%s: the environment variable is %s", src, spec[4] ? "not set" : "not named");
            return SR_EKEY;
        }
        n = strlen(v);
        if (n > sizeof buf) {
            if (err) snprintf(err, errlen, "%s: %zu bytes (a key is 64 hex digits)", src, n);
            return SR_EKEY;
        }
        memcpy(buf, v, n);
    } else if (!strncmp(spec, "cmd:", 4)) {
        snprintf(src, sizeof src, "key source %.200s", spec);
        if (!spec[4]) {
            if (err) snprintf(err, errlen, "%s: no command", src);
            return SR_EKEY;
        }
        rc = key_command(spec + 4, timeout_ms, buf, sizeof buf, &n, err, errlen);
    } else {
        const char *path = strncmp(spec, "file:", 5) ? spec : spec + 5;
        snprintf(src, sizeof src, "key file %.280s", path);
        FILE *f = fopen(path, "rb");
        if (!f) {
            if (err) snprintf(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
            return SR_EKEY;
        }
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
    }
    if (!rc) rc = key_parse(buf, n, src, key, err, errlen);
    if (!rc) sr_key_from_bytes(out, key);
    OPENSSL_cleanse(buf, sizeof buf);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int sr_key_load(const char *spec, sr_key *out, char *err, size_t errlen)
{
    return sr_key_load_from(spec, SR_KEY_COMMAND_TIMEOUT_MS, out, err, errlen);
}

void sr_sha256(const void *p, size_t n, uint8_t out[SR_HASH_LEN]) { SHA256(p, n, out); }

void sr_sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SR_HASH_LEN])
{
    uint8_t small[512];
    if (an + bn <= sizeof small) {
        memcpy(small, a, an);
        memcpy(small + an, b, bn);
        SHA256(small, an + bn, out);
        return;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, a, an) ||
        !EVP_DigestUpdate(c, b, bn) || !EVP_DigestFinal_ex(c, out, &len))
        sr__assert_fail("EVP sha256", __FILE__, __LINE__);
    EVP_MD_CTX_free(c);
}

int sr_digest(int alg, const void *p, size_t n, uint8_t out[SR_HASH_MAX_LEN])
{
    const alg_row *r = alg_row_of(alg);
    unsigned int len = 0;
    if (!r || r->kind != SR_ALG_KIND_HASH) return SR_EINVAL;
    if (EVP_Digest(p, n, out, &len, r->md(), NULL) != 1 || len != r->size) return SR_ECRYPTO;
    return SR_OK;
}

int sr_digest_init(sr_digest_ctx *c, int alg)
{
    const alg_row *r = alg_row_of(alg);
    c->md = NULL;
    c->alg = alg;
    if (!r || r->kind != SR_ALG_KIND_HASH) return SR_EINVAL;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (!m) return SR_ENOMEM;
    if (EVP_DigestInit_ex(m, r->md(), NULL) != 1) {
        EVP_MD_CTX_free(m);
        return SR_ECRYPTO;
    }
    c->md = m;
    return SR_OK;
}

int sr_digest_update(sr_digest_ctx *c, const void *p, size_t n)
{
    if (!c->md) return SR_EINVAL;
    if (n && EVP_DigestUpdate(c->md, p, n) != 1) return SR_ECRYPTO;
    return SR_OK;
}

int sr_digest_final(sr_digest_ctx *c, uint8_t out[SR_HASH_MAX_LEN])
{
    unsigned int len = 0;
    if (!c->md) return SR_EINVAL;
    if (EVP_DigestFinal_ex(c->md, out, &len) != 1 || len != sr_alg_size(c->alg)) return SR_ECRYPTO;
    return SR_OK;
}

int sr_sha256_final(sr_sha256_ctx *c, uint8_t out[SR_HASH_LEN])
{
    uint8_t h[SR_HASH_MAX_LEN];
    if (c->alg != SR_ALG_SHA_256) return SR_EINVAL;
    int rc = sr_digest_final(c, h);
    if (!rc) memcpy(out, h, SR_HASH_LEN);
    return rc;
}

void sr_digest_release(sr_digest_ctx *c)
{
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

int sr_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? SR_OK : SR_ECRYPTO;
}

int sr_hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[SR_SHA1_LEN])
{
    unsigned int len = 0;
    if (keylen > INT_MAX) return SR_EINVAL;
    if (!HMAC(EVP_sha1(), key, (int)keylen, msg, n, out, &len) || len != SR_SHA1_LEN) return SR_ECRYPTO;
    return SR_OK;
}

int sr_aead_create(const sr_key *key, sr_aead **out) { return sr_aead_create_alg(SR_ALG_AES_256_GCM, key, out); }

int sr_aead_create_alg(int alg, const sr_key *key, sr_aead **out)
{
    const alg_row *r = alg_row_of(alg);
    if (!r || r->kind != SR_ALG_KIND_AEAD) return SR_EINVAL;
    sr_aead *a = sr_calloc(1, sizeof *a);
    if (!a) return SR_ENOMEM;
    a->enc = EVP_CIPHER_CTX_new();
    a->dec = EVP_CIPHER_CTX_new();
    if (!a->enc || !a->dec ||
        EVP_EncryptInit_ex(a->enc, r->cipher(), NULL, key->bytes, NULL) != 1 ||
        EVP_DecryptInit_ex(a->dec, r->cipher(), NULL, key->bytes, NULL) != 1) {
        sr_aead_destroy(a);
        return SR_ECRYPTO;
    }
    *out = a;
    return SR_OK;
}

void sr_aead_destroy(sr_aead *a)
{
    if (!a) return;
    EVP_CIPHER_CTX_free(a->enc);
    EVP_CIPHER_CTX_free(a->dec);
    sr_free(a);
}

int sr_aead_seal(sr_aead *a, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                 const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN])
{
    int len = 0;
    if (n > INT32_MAX || aadlen > INT32_MAX) return SR_EINVAL;
    if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, nonce) != 1) return SR_ECRYPTO;
    if (EVP_EncryptUpdate(a->enc, NULL, &len, aad, (int)aadlen) != 1) return SR_ECRYPTO;
    if (n && EVP_EncryptUpdate(a->enc, out, &len, in, (int)n) != 1) return SR_ECRYPTO;
    if (EVP_EncryptFinal_ex(a->enc, (uint8_t *)out + (n ? len : 0), &len) != 1) return SR_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_GCM_GET_TAG, SR_TAG_LEN, tag) != 1) return SR_ECRYPTO;
    return SR_OK;
}

int sr_aead_open(sr_aead *a, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                 const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN])
{
    int len = 0;
    uint8_t t[SR_TAG_LEN];
    if (n > INT32_MAX || aadlen > INT32_MAX) return SR_EINVAL;
    memcpy(t, tag, SR_TAG_LEN);
    if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, nonce) != 1) return SR_ECRYPTO;
    if (EVP_DecryptUpdate(a->dec, NULL, &len, aad, (int)aadlen) != 1) return SR_ECRYPTO;
    if (n && EVP_DecryptUpdate(a->dec, out, &len, in, (int)n) != 1) return SR_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_GCM_SET_TAG, SR_TAG_LEN, t) != 1) return SR_ECRYPTO;
    if (EVP_DecryptFinal_ex(a->dec, (uint8_t *)out + (n ? len : 0), &len) != 1) return SR_ECORRUPT;
    return SR_OK;
}

size_t sr_base64(const uint8_t *in, size_t n, char *out, int url)
{
    /* in whole groups of 48 bytes through a 65-byte block, so that the
     * padding base64url drops never touches out */
    unsigned char blk[65];
    size_t len = 0;
    for (size_t i = 0; i < n; i += 48) {
        size_t k = n - i < 48 ? n - i : 48, m = (size_t)EVP_EncodeBlock(blk, in + i, (int)k);
        if (url)
            while (m && blk[m - 1] == '=') m--;
        memcpy(out + len, blk, m);
        len += m;
    }
    out[len] = 0;
    for (size_t i = 0; url && i < len; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
    }
    return len;
}

/* ------------------------------------------------------------------------ */
/* Signatures: ES256, ES384, PS256, EdDSA                                     */

struct sr_sigkey {
    EVP_PKEY *k;
    int priv;
    const alg_row *alg;
    size_t siglen;
};

/* The table's row for k (and its signatures' length), or a message naming
 * what k is instead. */
static const alg_row *sig_row_for(EVP_PKEY *k, size_t *siglen, char *why, size_t whylen)
{
    char group[64] = "";
    int bits = EVP_PKEY_get_bits(k);
    if (EVP_PKEY_is_a(k, "EC")) {
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) != 1)
            snprintf(group, sizeof group, "unknown");
        for (size_t i = 0; i < NALGS; i++)
            if (ALGS[i].group && !strcmp(ALGS[i].group, group)) {
                *siglen = ALGS[i].size;
                return &ALGS[i];
            }
        snprintf(why, whylen, "an EC key on curve %s (ES256 needs P-256, ES384 P-384)", group);
        return NULL;
    }
    if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS")) {
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            snprintf(why, whylen, "an RSA key of %d bits (PS256 needs %d to %d)", bits, RSA_MIN_BITS, RSA_MAX_BITS);
            return NULL;
        }
        *siglen = (size_t)EVP_PKEY_get_size(k);
        return alg_row_of(SR_ALG_PS256);
    }
    if (EVP_PKEY_is_a(k, "ED25519")) {
        *siglen = 64;
        return alg_row_of(SR_ALG_EDDSA);
    }
    snprintf(why, whylen, "a %s key, of no signature algorithm suiro knows", EVP_PKEY_get0_type_name(k));
    return NULL;
}

static int sigkey_wrap(EVP_PKEY *k, int priv, const char *path, sr_sigkey **out, char *err, size_t errlen)
{
    char why[160], known[120];
    size_t siglen = 0;
    const alg_row *row = sig_row_for(k, &siglen, why, sizeof why);
    if (!row) {
        sr_alg_names(SR_ALG_KIND_SIG, known, sizeof known);
        if (err) snprintf(err, errlen, "%s holds %s; a signing key must be one of %s", path, why, known);
        EVP_PKEY_free(k);
        return SR_ECRYPTO;
    }
    sr_sigkey *sk = sr_calloc(1, sizeof *sk);
    if (!sk) {
        EVP_PKEY_free(k);
        return SR_ENOMEM;
    }
    sk->k = k;
    sk->priv = priv;
    sk->alg = row;
    sk->siglen = siglen;
    *out = sk;
    return SR_OK;
}

int sr_sigkey_load(const char *path, int need_private, sr_sigkey **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err) snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? SR_ENOTFOUND : sr_err_from_errno(e);
    }
    int priv = 1;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (!k && !need_private) {
        priv = 0;
        rewind(f);
        k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        if (!k) {
            rewind(f);
            X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
            if (x) k = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    fclose(f);
    if (!k) {
        if (err) snprintf(err, errlen, "%s is not a PEM %s", path,
                          need_private ? "private key" : "private key, public key or certificate");
        return SR_ECRYPTO;
    }
    return sigkey_wrap(k, priv, path, out, err, errlen);
}

int sr_sigkey_from_cert(const void *x509, sr_sigkey **out, char *err, size_t errlen)
{
    EVP_PKEY *k = X509_get_pubkey((X509 *)x509); /* a reference of its own */
    if (!k) {
        if (err) snprintf(err, errlen, "the certificate holds no public key OpenSSL can read");
        return SR_ECRYPTO;
    }
    return sigkey_wrap(k, 0, "the certificate", out, err, errlen);
}

int sr_sigkey_generate(int alg, sr_sigkey **out)
{
    const alg_row *r = alg_row_of(alg);
    if (!r || r->kind != SR_ALG_KIND_SIG) return SR_EINVAL;
    EVP_PKEY *k = NULL;
    if (r->group) k = EVP_EC_gen(r->group);
    else if (r->id == SR_ALG_PS256) k = EVP_RSA_gen(RSA_GEN_BITS);
    else k = EVP_PKEY_Q_keygen(NULL, NULL, r->pkey);
    if (!k) return SR_ECRYPTO;
    return sigkey_wrap(k, 1, "a generated key", out, NULL, 0);
}

void *sr_sigkey_evp(sr_sigkey *k) { return k->k; }

const void *sr_sig_evp_md(int alg)
{
    const alg_row *r = alg_row_of(alg);
    return r && r->kind == SR_ALG_KIND_SIG && r->md ? r->md() : NULL;
}

void sr_sigkey_free(sr_sigkey *k)
{
    if (!k) return;
    EVP_PKEY_free(k->k);
    sr_free(k);
}

int sr_sigkey_private(const sr_sigkey *k) { return k->priv; }

int sr_sigkey_alg(const sr_sigkey *k) { return (int)k->alg->id; }

size_t sr_sigkey_sig_len(const sr_sigkey *k) { return k->siglen; }

/* A digest sign or verify context for k (RSA-PSS: its padding and salt). */
static EVP_MD_CTX *sig_ctx(sr_sigkey *k, int sign)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    const EVP_MD *d = k->alg->md ? k->alg->md() : NULL;
    if (!md) return NULL;
    int ok = sign ? EVP_DigestSignInit(md, &pc, d, NULL, k->k) : EVP_DigestVerifyInit(md, &pc, d, NULL, k->k);
    if (ok == 1 && k->alg->id == SR_ALG_PS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pc, d) == 1;
    if (ok != 1) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    return md;
}

int sr_sigkey_sign(sr_sigkey *k, const void *msg, size_t n, uint8_t raw[SR_SIG_MAX_LEN], size_t *siglen)
{
    if (!k->priv) return SR_EINVAL;
    int rc = SR_ECRYPTO;
    unsigned char der[SR_SIG_MAX_LEN + 16];
    size_t dlen = sizeof der;
    ECDSA_SIG *sig = NULL;
    EVP_MD_CTX *md = sig_ctx(k, 1);
    if (!md) goto done;
    if (!k->alg->group) dlen = SR_SIG_MAX_LEN;
    if (EVP_DigestSign(md, k->alg->group ? der : raw, &dlen, msg, n) != 1) goto done;
    if (k->alg->group) { /* ECDSA: DER to raw r || s */
        int half = (int)k->siglen / 2;
        const unsigned char *q = der;
        sig = d2i_ECDSA_SIG(NULL, &q, (long)dlen);
        if (!sig) goto done;
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(sig, &r, &s);
        if (BN_bn2binpad(r, raw, half) != half || BN_bn2binpad(s, raw + half, half) != half) goto done;
    } else if (dlen != k->siglen) {
        goto done;
    }
    *siglen = k->siglen;
    rc = SR_OK;
done:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

int sr_sigkey_verify(sr_sigkey *k, const void *msg, size_t n, const uint8_t *raw, size_t siglen)
{
    int rc = SR_ECRYPTO;
    unsigned char *der = NULL;
    const unsigned char *sigp = raw;
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *sig = NULL;
    if (siglen != k->siglen) return SR_ECORRUPT;
    if (k->alg->group) { /* ECDSA: raw r || s to DER */
        int half = (int)siglen / 2;
        sig = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(raw, half, NULL), *s = BN_bin2bn(raw + half, half, NULL);
        if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto done;
        }
        int dlen = i2d_ECDSA_SIG(sig, &der);
        if (dlen <= 0) goto done;
        sigp = der;
        siglen = (size_t)dlen;
    }
    if (!(md = sig_ctx(k, 0))) goto done;
    rc = EVP_DigestVerify(md, sigp, siglen, msg, n) == 1 ? SR_OK : SR_ECORRUPT;
done:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

int sr_sigkey_id(sr_sigkey *k, uint8_t out[SR_HASH_LEN])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k->k, &der);
    if (n <= 0) return SR_ECRYPTO;
    sr_sha256(der, (size_t)n, out);
    OPENSSL_free(der);
    return SR_OK;
}

/* The signature as the transparency logs' formats carry it (RFC 6962's
 * digitally-signed, the C2SP signed note's ECDSA type): ECDSA as ASN.1 DER,
 * the others as sr_sigkey_sign gives them. */
int sr_sigkey_sign_der(sr_sigkey *k, const void *msg, size_t n, uint8_t sig[SR_SIG_MAX_LEN + 16], size_t *siglen)
{
    if (!k->priv) return SR_EINVAL;
    if (!k->alg->group) return sr_sigkey_sign(k, msg, n, sig, siglen);
    EVP_MD_CTX *md = sig_ctx(k, 1);
    size_t dlen = SR_SIG_MAX_LEN + 16;
    int ok = md && EVP_DigestSign(md, sig, &dlen, msg, n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) return SR_ECRYPTO;
    *siglen = dlen;
    return SR_OK;
}

int sr_sigkey_verify_der(sr_sigkey *k, const void *msg, size_t n, const uint8_t *sig, size_t siglen)
{
    if (!k->alg->group) return sr_sigkey_verify(k, msg, n, sig, siglen);
    EVP_MD_CTX *md = sig_ctx(k, 0);
    if (!md) return SR_ECRYPTO;
    int rc = EVP_DigestVerify(md, sig, siglen, msg, n) == 1 ? SR_OK : SR_ECORRUPT;
    EVP_MD_CTX_free(md);
    return rc;
}

int sr_sigkey_raw_public(sr_sigkey *k, uint8_t *out, size_t *len)
{
    if (k->alg->id != SR_ALG_EDDSA) return SR_EINVAL;
    return EVP_PKEY_get_raw_public_key(k->k, out, len) == 1 ? SR_OK : SR_ECRYPTO;
}

int sr_unbase64(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    if (n % 4 || n / 4 * 3 > cap || n > INT_MAX) return SR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                 (c == '=' && (i == n - 1 || (i == n - 2 && in[n - 1] == '=')));
        if (!ok) return SR_EINVAL;
    }
    int len = n ? EVP_DecodeBlock(out, (const unsigned char *)in, (int)n) : 0;
    if (len < 0) return SR_EINVAL;
    size_t pad = n && in[n - 1] == '=' ? (n > 1 && in[n - 2] == '=' ? 2 : 1) : 0;
    *outlen = (size_t)len - pad;
    return SR_OK;
}
