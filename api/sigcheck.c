/* api/sigcheck.c -- see sigcheck.h. */
#include "api/sigcheck.h"
#include "api/metrics.h"
#include "api/workq.h"

#include "codecs/base/sr_hash.h"
#include "engine/records.h"
#include "storage/crypto.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* hex digits of s (n bytes), case-insensitive, without leading zeros, into
 * out in uppercase. 0, or -1 (not hex, empty, too long). */
static int canon_hex(const char *s, size_t n, char *out, size_t cap)
{
    if (!n) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return -1;
    while (n > 1 && s[0] == '0') s++, n--;
    if (n + 1 > cap) return -1;
    for (size_t i = 0; i < n; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[n] = 0;
    return 0;
}

int sr_sig_canon_id(const char *certid, char *out, size_t cap)
{
    const char *h = certid ? strrchr(certid, '#') : NULL;
    if (!h || h == certid) return -1;
    size_t idn = (size_t)(h - certid);
    char hex[80];
    if (canon_hex(h + 1, strlen(h + 1), hex, sizeof hex)) return -1;
    int w = snprintf(out, cap, "%.*s#%s", (int)idn, certid, hex);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

/* base64url (or base64), padding optional, into out. Its length, or -1. */
static long b64url_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    if (n > 4 * ((cap + 2) / 3)) return -1;
    char buf[1100];
    if (n + 4 > sizeof buf) return -1;
    size_t pad = 0;
    while (n && s[n - 1] == '=') n--, pad++;
    if (pad > 2 || n % 4 == 1 || (pad && (n + pad) % 4)) return -1; /* a char left over is no byte; padding exact */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!isalnum((unsigned char)c) && c != '+' && c != '/') return -1;
        buf[i] = c;
    }
    size_t m = n;
    while (m % 4) buf[m++] = '=';
    uint8_t tmp[800];
    if (m / 4 * 3 > sizeof tmp) return -1;
    int got = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)m);
    if (got < 0) return -1;
    size_t len = (size_t)got - (m - n); /* EVP_DecodeBlock counts the padding's zero bytes */
    if (len > cap) return -1;
    memcpy(out, tmp, len);
    return (long)len;
}

static int64_t asn1_ms(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return INT64_MIN;
    return (int64_t)timegm(&tm) * 1000;
}

/* ---- the parsed certificates (docs/signatures.md "Cost") -------------------
 * A parsed certificate (its key, serial and validity dates) is kept per
 * exact PEM text: the cache's key is the registered bytes themselves, so a
 * certificate replaced in the registry (another PEM) is parsed anew and the
 * old one is never used for it again; the caller still reads the registry
 * row and the revocations for every message (sr_sig_check), so a revocation
 * or a withdrawal takes effect at once, and the validity dates are compared
 * with now_ms on every call. SLOTS entries, the least recently used one
 * replaced; an entry is reference-counted so that a thread verifying with it
 * while another replaces its slot keeps it alive (EVP_DigestVerify on one
 * EVP_PKEY with a context per call is safe from any thread). */
#define SLOTS 64

typedef struct pcert {
    int refs;             /* the slot's one and each verifying call's (under mu) */
    uint64_t used;        /* the tick of the last use (under mu) */
    uint32_t hash;        /* sr_hash of pem */
    char *pem;            /* the exact registered PEM text (the key) */
    size_t len;
    sr_sigkey *k;         /* its public key */
    char serial[80];      /* canonical hex (canon_hex) */
    int64_t nb, na;       /* notBefore, notAfter (UTC ms; INT64_MIN unreadable) */
} pcert;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pcert *slot[SLOTS];
static uint64_t tick, nhit, nmiss;

static void pcert_free(pcert *c)
{
    if (!c) return;
    sr_sigkey_free(c->k);
    free(c->pem);
    free(c);
}

static void release(pcert *c)
{
    pthread_mutex_lock(&mu);
    int last = c && --c->refs == 0;
    pthread_mutex_unlock(&mu);
    if (last) pcert_free(c);
}

/* The certificate pem parsed, a reference the caller releases; NULL with why
 * set if it cannot be read (such a certificate is not kept). */
static pcert *parse(const char *pem, size_t len, char *why, size_t whylen)
{
    pcert *c = calloc(1, sizeof *c);
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL;
    char aerr[160];
    BIO *bio = c ? BIO_new_mem_buf(pem, (int)len) : NULL;
    if (bio) x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!x) {
        snprintf(why, whylen, "the registered certificate cannot be read");
        goto fail;
    }
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    hex = bn ? BN_bn2hex(bn) : NULL;
    if (!hex || canon_hex(hex, strlen(hex), c->serial, sizeof c->serial)) {
        snprintf(why, whylen, "the registered certificate's serial number cannot be read");
        goto fail;
    }
    c->nb = asn1_ms(X509_get0_notBefore(x));
    c->na = asn1_ms(X509_get0_notAfter(x));
    if (sr_sigkey_from_cert(x, &c->k, aerr, sizeof aerr)) {
        snprintf(why, whylen, "%s", aerr);
        goto fail;
    }
    if (!(c->pem = malloc(len + 1))) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    memcpy(c->pem, pem, len);
    c->pem[len] = 0;
    c->len = len;
    c->hash = sr_hash(pem, len);
    c->refs = 1;
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    return c;
fail:
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    pcert_free(c);
    return NULL;
}

/* The parsed certificate of pem, from the cache or parsed into it. */
static pcert *lookup(const char *pem, size_t len, char *why, size_t whylen)
{
    uint32_t h = sr_hash(pem, len);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        pcert *c = slot[i];
        if (c && c->hash == h && c->len == len && !memcmp(c->pem, pem, len)) {
            c->refs++;
            c->used = ++tick;
            nhit++;
            pthread_mutex_unlock(&mu);
            return c;
        }
    }
    nmiss++;
    pthread_mutex_unlock(&mu);
    pcert *c = parse(pem, len, why, whylen); /* outside the lock: ~50 us */
    if (!c) return NULL;
    pcert *old = NULL;
    pthread_mutex_lock(&mu);
    int v = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (!slot[i]) {
            v = i;
            break;
        }
        if (slot[i]->used < slot[v]->used) v = i;
    }
    old = slot[v];
    slot[v] = c;
    c->refs++; /* the slot's and the caller's */
    c->used = ++tick;
    int last = old && --old->refs == 0;
    pthread_mutex_unlock(&mu);
    if (last) pcert_free(old);
    return c;
}

void sr_sig_cache_stats(uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&mu);
    if (hits) *hits = nhit;
    if (misses) *misses = nmiss;
    pthread_mutex_unlock(&mu);
}

void sr_sig_cache_clear(void)
{
    pcert *drop[SLOTS];
    int nd = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        if (slot[i] && --slot[i]->refs == 0) drop[nd++] = slot[i];
        slot[i] = NULL;
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nd; i++) pcert_free(drop[i]);
}

sr_wire sr_sig_verify_cert(const char *pem, size_t pem_len, const char *serial_hex, const char *alg,
                           const char *sig_b64u, const void *msg, size_t n, int64_t now_ms, char *why,
                           size_t whylen)
{
    sr_wire code = SR_WIRE_CERT;
    pcert *c = lookup(pem, pem_len, why, whylen);
    if (!c) return SR_WIRE_CERT;
    const char *have = c->serial;
    char want[80] = "";
    if (serial_hex && (canon_hex(serial_hex, strlen(serial_hex), want, sizeof want) || strcmp(want, have))) {
        snprintf(why, whylen, "certificate serial %s is not the registered certificate (serial %s)", serial_hex, have);
        goto done;
    }
    if (c->nb == INT64_MIN || c->na == INT64_MIN || now_ms < c->nb) {
        snprintf(why, whylen, "the certificate (serial %s) is not yet valid", have);
        goto done;
    }
    if (now_ms > c->na) {
        snprintf(why, whylen, "the certificate (serial %s) has expired", have);
        goto done;
    }
    code = SR_WIRE_SIGNATURE;
    sr_alg a;
    char aerr[160];
    if (!alg || sr_alg_by_name(alg, SR_ALG_KIND_SIG, &a, aerr, sizeof aerr)) {
        char known[120];
        sr_alg_names(SR_ALG_KIND_SIG, known, sizeof known);
        snprintf(why, whylen, "signAlg %.40s is not one of %s", alg ? alg : "(none)", known);
        goto done;
    }
    if (sr_sigkey_alg(c->k) != (int)a) {
        snprintf(why, whylen, "signAlg %s is not the certificate key's algorithm (%s)", sr_alg_name((int)a),
                 sr_alg_name(sr_sigkey_alg(c->k)));
        goto done;
    }
    uint8_t raw[SR_SIG_MAX_LEN];
    long rl = sig_b64u ? b64url_decode(sig_b64u, raw, sizeof raw) : -1;
    if (rl < 0) {
        snprintf(why, whylen, "signature: not base64url of at most %d bytes", (int)SR_SIG_MAX_LEN);
        goto done;
    }
    if (sr_sigkey_verify(c->k, msg, n, raw, (size_t)rl)) {
        snprintf(why, whylen, "the signature does not verify with certificate serial %s", have);
        goto done;
    }
    code = SR_WIRE_OK;
done:
    release(c);
    return code;
}

sr_wire sr_sig_check(sr_engine *e, const char *op, int kind, const char *sender, const json_t *protection,
                     const void *msg, size_t n, int64_t now_ms, char *why, size_t whylen)
{
    const char *alg = json_string_value(json_object_get(protection, "signAlg"));
    const char *cid = json_string_value(json_object_get(protection, "certId"));
    const char *sig = json_string_value(json_object_get(protection, "signature"));
    if (!json_is_object(protection) || !alg || !cid || !sig) {
        snprintf(why, whylen, "protection: an object with signAlg, certId and signature (strings)");
        return SR_WIRE_PARAM;
    }
    char canon[200];
    const char *h = strrchr(cid, '#');
    if (sr_sig_canon_id(cid, canon, sizeof canon) || !h) {
        snprintf(why, whylen, "certId %.80s: not ID#SERIAL (the serial in hexadecimal)", cid);
        return SR_WIRE_CERT;
    }
    size_t idn = (size_t)(h - cid);
    if (strlen(sender) != idn || memcmp(sender, cid, idn)) {
        snprintf(why, whylen, "certId %.80s is not a certificate of %s", cid, sender);
        return SR_WIRE_CERT;
    }
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    if (sr_read_registry(e, op, SR_RG_REVOKED, canon, &r, &re) == SR_OK) {
        sr_rec_close(&r);
        snprintf(why, whylen, "certificate %s is revoked", canon);
        return SR_WIRE_CERT;
    }
    sr_rec_close(&r);
    int rc = sr_read_registry(e, op, (sr_reg_kind)kind, sender, &r, &re);
    if (rc || !re.cert_pem || !re.cert_pem[0]) {
        sr_rec_close(&r);
        snprintf(why, whylen, "%s has no registered certificate", sender);
        return SR_WIRE_CERT;
    }
    sr_wire w = sr_sig_verify_cert(re.cert_pem, strlen(re.cert_pem), h + 1, alg, sig, msg, n, now_ms, why, whylen);
    sr_rec_close(&r);
    return w;
}

static _Atomic uint32_t sig_delay_ms;
void sr_sig_test_delay(uint32_t ms) { atomic_store(&sig_delay_ms, ms); }

sr_wire sr_sig_check_now(sr_engine *e, const char *op, int kind, const char *sender, const json_t *protection,
                         const void *msg, size_t n, char *why, size_t whylen)
{
    /* where it runs: the loop's count stays 0 (docs/signatures.md "Cost") */
    if (kind == SR_RG_APP) sr_metrics_app_sig_verify(sr_thread_is_loop());
    else sr_metrics_gw_sig_verify(sr_thread_is_loop());
    uint32_t delay = atomic_load(&sig_delay_ms);
    if (delay) {
        struct timespec d = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return sr_sig_check(e, op, kind, sender, protection, msg, n, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, why,
                        whylen);
}
