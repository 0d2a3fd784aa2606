/* api/cluster_seal.c -- stream keys and sealed stream payloads (the contract,
 * the bytes and the invariants: api/cluster_seal.h; the design: docs/keys.md
 * "Cluster: stream keys").
 *
 * The pure part (ids, epochs, wrapping, sealing, opening) needs no NATS; the
 * store (sr_skeys) caches unwrapped keys for one thread in front of a bucket
 * given as an sr_skv (the NATS one at the end of this file). */
#include "api/cluster_seal.h"

#include "engine/records.h"
#include "engine/suiro.h"
#include "storage/keyring.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char MAGIC_P[4] = {'S', 'R', 'S', '1'};
static const char MAGIC_K[8] = {'S', 'R', 'S', 'K', 'E', 'Y', '1', 0};
#define DAY_MS 86400000ll

/* ---- ids and epochs ---- */

uint64_t sr_skey_id(const char *op, int cls, uint32_t epoch, uint32_t period_days)
{
    static const char tag[] = "suiro-stream-kid-v1";
    uint8_t b[sizeof tag + 256 + 1 + 1 + 8], h[SR_HASH_LEN];
    size_t n = 0, ol = op ? strnlen(op, 255) : 0;
    memcpy(b, tag, sizeof tag); /* with its NUL */
    n = sizeof tag;
    memcpy(b + n, op ? op : "", ol);
    n += ol;
    b[n++] = 0;
    b[n++] = (uint8_t)cls;
    sr_put_le32(b + n, epoch);
    sr_put_le32(b + n + 4, period_days);
    n += 8;
    sr_sha256(b, n, h);
    uint64_t id = sr_get_le64(h);
    return id ? id : 1;
}

uint32_t sr_skey_epoch(int cls, int64_t ms, uint32_t period_days)
{
    if (cls == SR_KC_CONFIG || !period_days || ms < 0) return 1;
    int64_t e = 1 + ms / ((int64_t)period_days * DAY_MS);
    return e > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)e;
}

void sr_skey_epoch_range(int cls, uint32_t epoch, uint32_t period_days, int64_t *from, int64_t *to)
{
    if (cls == SR_KC_CONFIG || !period_days || !epoch) {
        *from = 0;
        *to = INT64_MAX;
        return;
    }
    *from = (int64_t)(epoch - 1) * period_days * DAY_MS;
    *to = *from + (int64_t)period_days * DAY_MS;
}

int sr_skey_make(const char *op, int cls, uint32_t epoch, uint32_t period_days, int64_t now_ms, sr_skey *out)
{
    memset(out, 0, sizeof *out);
    if (!op || strlen(op) > 255 || cls < SR_KC_DATA || cls > SR_KC_CONFIG) return SR_EINVAL;
    snprintf(out->op, sizeof out->op, "%s", op);
    out->cls = (uint8_t)cls;
    out->epoch = epoch;
    out->period_days = period_days;
    out->alg = SR_ALG_AES_256_GCM;
    out->state = SR_SKEY_ACTIVE;
    out->created_ms = now_ms;
    out->id = sr_skey_id(op, cls, epoch, period_days);
    return sr_random(out->key, sizeof out->key) ? SR_ECRYPTO : SR_OK;
}

/* ---- the KV entry ---- */

enum { K_FIXED = 8 + 4 + 8 + 2 + 1 + 1 + 4 + 4 + 8 + 8 + 2 }; /* 50: before the operator */

/* The wrapping's associated data: the tag and the entry's bytes before the
 * nonce but the state (offset 23) and destroyed_ms (offset 40..47). */
static size_t wrap_ad(const uint8_t *e, size_t before_nonce, uint8_t *ad)
{
    static const char tag[] = "suiro-stream-key-v1";
    size_t n = 0;
    memcpy(ad, tag, sizeof tag);
    n = sizeof tag;
    memcpy(ad + n, e, 23);
    n += 23;
    memcpy(ad + n, e + 24, 16); /* epoch, period, created */
    n += 16;
    memcpy(ad + n, e + 48, before_nonce - 48); /* op length, op */
    n += before_nonce - 48;
    return n;
}

int sr_skey_wrap(const sr_key *master, const sr_skey *k, sr_buf *out)
{
    size_t ol = strnlen(k->op, 255);
    uint8_t e[K_FIXED + 255 + SR_NONCE_LEN + SR_KEY_LEN + SR_TAG_LEN];
    memcpy(e, MAGIC_K, 8);
    sr_put_le32(e + 8, master->id);
    sr_put_le64(e + 12, k->id);
    sr_put_le16(e + 20, k->alg);
    e[22] = k->cls;
    e[23] = k->state;
    sr_put_le32(e + 24, k->epoch);
    sr_put_le32(e + 28, k->period_days);
    sr_put_le64(e + 32, (uint64_t)k->created_ms);
    sr_put_le64(e + 40, (uint64_t)k->destroyed_ms);
    sr_put_le16(e + 48, (uint16_t)ol);
    memcpy(e + K_FIXED, k->op, ol);
    size_t n = K_FIXED + ol;
    if (k->state == SR_SKEY_ACTIVE) {
        uint8_t ad[32 + K_FIXED + 255];
        size_t adn = wrap_ad(e, n, ad);
        sr_aead *a = NULL;
        int rc = sr_aead_create(master, &a);
        if (!rc) rc = sr_random(e + n, SR_NONCE_LEN);
        if (!rc)
            rc = sr_aead_seal(a, e + n, ad, adn, k->key, SR_KEY_LEN, e + n + SR_NONCE_LEN,
                              e + n + SR_NONCE_LEN + SR_KEY_LEN);
        sr_aead_destroy(a);
        if (rc) return rc;
        n += SR_NONCE_LEN + SR_KEY_LEN + SR_TAG_LEN;
    }
    out->len = 0;
    int rc = sr_buf_append(out, e, n);
    memset(e, 0, sizeof e);
    return rc;
}

int sr_skey_unwrap(const sr_key *master, const void *p, size_t n, sr_skey *out, char *err, size_t errlen)
{
    const uint8_t *e = p;
    memset(out, 0, sizeof *out);
    if (!p || n < K_FIXED || memcmp(e, MAGIC_K, 8)) {
        snprintf(err, errlen, "not a stream key entry (%zu bytes)", n);
        return SR_ECORRUPT;
    }
    out->master_id = sr_get_le32(e + 8);
    out->id = sr_get_le64(e + 12);
    out->alg = sr_get_le16(e + 20);
    out->cls = e[22];
    out->state = e[23];
    out->epoch = sr_get_le32(e + 24);
    out->period_days = sr_get_le32(e + 28);
    out->created_ms = (int64_t)sr_get_le64(e + 32);
    out->destroyed_ms = (int64_t)sr_get_le64(e + 40);
    size_t ol = sr_get_le16(e + 48);
    size_t want = K_FIXED + ol + (out->state == SR_SKEY_ACTIVE ? SR_NONCE_LEN + SR_KEY_LEN + SR_TAG_LEN : 0);
    if (ol > 255 || n != want || (out->state != SR_SKEY_ACTIVE && out->state != SR_SKEY_DESTROYED) ||
        out->cls < SR_KC_DATA || out->cls > SR_KC_CONFIG || out->alg != SR_ALG_AES_256_GCM) {
        snprintf(err, errlen, "stream key entry %016" PRIx64 ": a bad layout (%zu bytes, state %u, class %u)", out->id,
                 n, out->state, out->cls);
        return SR_ECORRUPT;
    }
    memcpy(out->op, e + K_FIXED, ol);
    out->op[ol] = 0;
    if (memchr(out->op, 0, ol) || sr_skey_id(out->op, out->cls, out->epoch, out->period_days) != out->id) {
        snprintf(err, errlen, "stream key entry %016" PRIx64 ": its id is not the id of what it names", out->id);
        return SR_ECORRUPT;
    }
    if (out->state != SR_SKEY_ACTIVE) return SR_OK;
    if (out->master_id != master->id) {
        snprintf(err, errlen,
                 "stream key %016" PRIx64 " is wrapped by master key %08" PRIx32 "; this node's master key is %08" PRIx32
                 " (every node of a cluster needs the same key_file: docs/keys.md)",
                 out->id, out->master_id, master->id);
        return SR_EKEY;
    }
    uint8_t ad[32 + K_FIXED + 255];
    size_t adn = wrap_ad(e, K_FIXED + ol, ad);
    const uint8_t *w = e + K_FIXED + ol;
    sr_aead *a = NULL;
    int rc = sr_aead_create(master, &a);
    if (!rc) rc = sr_aead_open(a, w, ad, adn, w + SR_NONCE_LEN, SR_KEY_LEN, out->key, w + SR_NONCE_LEN + SR_KEY_LEN);
    sr_aead_destroy(a);
    if (rc) {
        memset(out->key, 0, sizeof out->key);
        snprintf(err, errlen, "stream key %016" PRIx64 ": its wrapping does not verify (%s)", out->id, sr_err_name(rc));
        return rc == SR_ECRYPTO ? SR_ECRYPTO : SR_ECORRUPT;
    }
    return SR_OK;
}

/* ---- payloads ---- */

static size_t str_ad(uint8_t *b, const char *s)
{
    size_t l = s ? strnlen(s, 255) : 0;
    b[0] = (uint8_t)l;
    memcpy(b + 1, s ? s : "", l);
    return 1 + l;
}

/* The payload's associated data into ad (room for 16 + 26 + 5 + 3 * 256 + 8). */
static size_t payload_ad(const uint8_t *hdr, int cls, const sr_seal_ad *a, uint8_t *ad)
{
    static const char tag[] = "suiro-stream-v1";
    size_t n = sizeof tag;
    memcpy(ad, tag, sizeof tag);
    memcpy(ad + n, hdr, SR_SEAL_HDR_LEN);
    n += SR_SEAL_HDR_LEN;
    sr_put_le32(ad + n, a->partition);
    n += 4;
    ad[n++] = (uint8_t)cls;
    n += str_ad(ad + n, a->op);
    n += str_ad(ad + n, a->kind);
    n += str_ad(ad + n, a->node);
    sr_put_le64(ad + n, a->seq);
    return n + 8;
}
enum { AD_MAX = 16 + SR_SEAL_HDR_LEN + 5 + 3 * 256 + 8 };

uint64_t sr_seal_key_id(const void *p, size_t n)
{
    if (!p || n < SR_SEAL_OVERHEAD || memcmp(p, MAGIC_P, 4)) return 0;
    return sr_get_le64((const uint8_t *)p + 4);
}

/* A cipher context for k (the store keeps one per cached key: creating one
 * costs about 20 us, the key schedule and OpenSSL's context). */
static int aead_of(const sr_skey *k, sr_aead **out)
{
    sr_key key;
    sr_key_from_bytes(&key, k->key);
    int rc = sr_aead_create(&key, out);
    memset(&key, 0, sizeof key);
    return rc;
}

/* sr_seal_payload with the context ae of k (NULL: one made for the call) and
 * the nonce given (NULL: 12 random bytes). */
static int seal_with(sr_aead *ae, const uint8_t *nonce, const sr_skey *k, const sr_seal_ad *a, const void *in,
                     size_t n, sr_buf *out)
{
    if (k->state != SR_SKEY_ACTIVE) return SR_EERASED;
    out->len = 0;
    if (sr_buf_reserve(out, n + SR_SEAL_OVERHEAD)) return SR_ENOMEM;
    uint8_t *h = out->data;
    memcpy(h, MAGIC_P, 4);
    sr_put_le64(h + 4, k->id);
    sr_put_le16(h + 12, k->alg);
    if (nonce) memcpy(h + 14, nonce, SR_NONCE_LEN);
    else if (sr_random(h + 14, SR_NONCE_LEN)) return SR_ECRYPTO;
    uint8_t ad[AD_MAX];
    size_t adn = payload_ad(h, k->cls, a, ad);
    sr_aead *own = NULL;
    int rc = ae ? SR_OK : aead_of(k, &own);
    if (!rc) rc = sr_aead_seal(ae ? ae : own, h + 14, ad, adn, in, n, h + SR_SEAL_HDR_LEN, h + SR_SEAL_HDR_LEN + n);
    sr_aead_destroy(own);
    if (rc) return rc;
    out->len = n + SR_SEAL_OVERHEAD;
    return SR_OK;
}

int sr_seal_payload(const sr_skey *k, const sr_seal_ad *a, const void *in, size_t n, sr_buf *out)
{
    return seal_with(NULL, NULL, k, a, in, n, out);
}

static int open_with(sr_aead *ae, const sr_skey *k, const sr_seal_ad *a, const void *p, size_t n, sr_buf *out,
                     char *err, size_t errlen)
{
    uint64_t id = sr_seal_key_id(p, n);
    if (!id) {
        snprintf(err, errlen, "not a sealed stream payload (%zu bytes)", n);
        return SR_ECORRUPT;
    }
    if (id != k->id) {
        snprintf(err, errlen, "the payload is sealed by stream key %016" PRIx64 ", not %016" PRIx64, id, k->id);
        return SR_EKEY;
    }
    if (k->state != SR_SKEY_ACTIVE) {
        snprintf(err, errlen, "stream key %016" PRIx64 " (operator '%s', class %u, epoch %u) was destroyed: erased",
                 k->id, k->op, k->cls, k->epoch);
        return SR_EERASED;
    }
    const uint8_t *h = p;
    if (sr_get_le16(h + 12) != k->alg) {
        snprintf(err, errlen, "the payload names algorithm %u, stream key %016" PRIx64 " is %u", sr_get_le16(h + 12), k->id,
                 k->alg);
        return SR_ECORRUPT;
    }
    size_t cn = n - SR_SEAL_OVERHEAD;
    out->len = 0;
    if (sr_buf_reserve(out, cn ? cn : 1)) return SR_ENOMEM;
    uint8_t ad[AD_MAX];
    size_t adn = payload_ad(h, k->cls, a, ad);
    sr_aead *own = NULL;
    int rc = ae ? SR_OK : aead_of(k, &own);
    if (!rc)
        rc = sr_aead_open(ae ? ae : own, h + 14, ad, adn, h + SR_SEAL_HDR_LEN, cn, out->data, h + SR_SEAL_HDR_LEN + cn);
    sr_aead_destroy(own);
    if (rc) {
        snprintf(err, errlen,
                 "the payload does not open under stream key %016" PRIx64
                 " (changed, or moved to another partition, operator, kind or message id)",
                 k->id);
        return rc == SR_ECRYPTO ? SR_ECRYPTO : SR_ECORRUPT;
    }
    out->len = cn;
    return SR_OK;
}

int sr_open_payload(const sr_skey *k, const sr_seal_ad *a, const void *p, size_t n, sr_buf *out, char *err,
                    size_t errlen)
{
    return open_with(NULL, k, a, p, n, out, err, errlen);
}

/* ---- the store ---- */

#define CACHE_MAX 256

struct sr_skeys {
    sr_key master;
    uint32_t rotate_days;
    int64_t ttl_ms;   /* a cached key is read again from the bucket after this (an erasure reaches running nodes) */
    sr_skey *k;       /* a small cache, most recent first */
    int64_t *at;      /* when each was read (monotonic ms) */
    sr_aead **ae;     /* each one's cipher context, made at its first use */
    uint8_t nonce[SR_NONCE_LEN]; /* random at sr_skeys_new; each seal XORs a counter into its last 8 bytes */
    /* the last (operator, class, epoch) sealed and its id: SHA-256 through EVP costs microseconds a call */
    char last_op[256];
    int last_cls;
    uint32_t last_ep, last_pd;
    uint64_t last_id;
    uint64_t ctr;
    size_t n;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void sr_skeys_set_ttl(sr_skeys *s, int64_t ttl_ms) { s->ttl_ms = ttl_ms; }

int sr_skeys_new(const sr_key *master, uint32_t rotate_days, sr_skeys **out)
{
    sr_skeys *s = calloc(1, sizeof *s);
    if (!s || !(s->k = calloc(CACHE_MAX, sizeof *s->k)) || !(s->at = calloc(CACHE_MAX, sizeof *s->at)) ||
        !(s->ae = calloc(CACHE_MAX, sizeof *s->ae))) {
        if (s) free(s->k), free(s->at);
        free(s);
        return SR_ENOMEM;
    }
    s->ttl_ms = SR_SKEYS_TTL_MS;
    if (sr_random(s->nonce, sizeof s->nonce)) {
        free(s->k), free(s->at), free(s->ae), free(s);
        return SR_ECRYPTO;
    }
    s->master = *master;
    s->rotate_days = rotate_days;
    *out = s;
    return SR_OK;
}

void sr_skeys_free(sr_skeys *s)
{
    if (!s) return;
    memset(s->k, 0, CACHE_MAX * sizeof *s->k);
    memset(&s->master, 0, sizeof s->master);
    for (size_t i = 0; i < s->n; i++) sr_aead_destroy(s->ae[i]);
    free(s->k);
    free(s->at);
    free(s->ae);
    free(s);
}

void sr_skeys_kv_key(uint64_t id, char out[24]) { snprintf(out, 24, "k.%016" PRIx64, id); }

void sr_skeys_bucket(const char *name, char out[48]) { snprintf(out, 48, "%s_KEYS", name && name[0] ? name : "SUIRO"); }

/* The cached key id, NULL when absent or read longer than ttl_ms ago (then read again). */
static sr_skey *cached(sr_skeys *s, uint64_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->k[i].id == id) return mono_ms() - s->at[i] < s->ttl_ms ? &s->k[i] : NULL;
    return NULL;
}

static sr_skey *remember(sr_skeys *s, const sr_skey *k)
{
    size_t i = 0;
    while (i < s->n && s->k[i].id != k->id) i++;
    if (i == s->n) {
        if (s->n == CACHE_MAX) sr_aead_destroy(s->ae[--s->n]); /* the oldest goes */
        memmove(&s->k[1], &s->k[0], s->n * sizeof *s->k);
        memmove(&s->at[1], &s->at[0], s->n * sizeof *s->at);
        memmove(&s->ae[1], &s->ae[0], s->n * sizeof *s->ae);
        s->ae[0] = NULL;
        s->n++;
        i = 0;
    }
    if (s->ae[i] && memcmp(s->k[i].key, k->key, SR_KEY_LEN)) { /* (read again: the same key, or its tombstone) */
        sr_aead_destroy(s->ae[i]);
        s->ae[i] = NULL;
    }
    s->k[i] = *k;
    s->at[i] = mono_ms();
    return &s->k[i];
}

/* The key id from the bucket into the cache: SR_OK, SR_ENOTFOUND, SR_EKEY, SR_ECORRUPT, SR_EIO. */
static int fetch(sr_skeys *s, const sr_skv *kv, uint64_t id, sr_skey **out, char *err, size_t errlen)
{
    char key[24];
    sr_skeys_kv_key(id, key);
    sr_buf v;
    sr_buf_init(&v);
    int rc = kv->get(kv->ctx, key, &v);
    if (rc == SR_ENOTFOUND) snprintf(err, errlen, "stream key %016" PRIx64 " is not in the keys' bucket", id);
    else if (rc) snprintf(err, errlen, "stream key %016" PRIx64 ": the keys' bucket did not answer", id);
    sr_skey k;
    if (!rc) rc = sr_skey_unwrap(&s->master, v.data, v.len, &k, err, errlen);
    sr_buf_release(&v);
    if (!rc && k.id != id) {
        snprintf(err, errlen, "the bucket's entry %s names stream key %016" PRIx64, key, k.id);
        rc = SR_ECORRUPT;
    }
    if (rc) return rc;
    *out = remember(s, &k);
    memset(&k, 0, sizeof k);
    return SR_OK;
}

/* The cipher context of the cached key k (an element of s->k), made at its first use; NULL if it cannot be
 * made (the caller then makes one for the call). */
static sr_aead *ctx_of(sr_skeys *s, const sr_skey *k)
{
    size_t i = (size_t)(k - s->k);
    if (i >= s->n || k->state != SR_SKEY_ACTIVE) return NULL;
    if (!s->ae[i] && aead_of(k, &s->ae[i])) s->ae[i] = NULL;
    return s->ae[i];
}

int sr_skeys_seal(sr_skeys *s, const sr_skv *kv, const sr_seal_ad *ad, int64_t ms, const void *in, size_t n,
                  sr_buf *out, uint64_t *id, char *err, size_t errlen)
{
    int cls = sr_event_kind_key_class(ad->kind);
    if (cls < SR_KC_DATA) cls = SR_KC_CONFIG; /* (every kind has a class: engine/keys.c) */
    uint32_t ep = sr_skey_epoch(cls, ms, s->rotate_days), pd = cls == SR_KC_CONFIG ? 0 : s->rotate_days;
    const char *op = ad->op ? ad->op : "";
    uint64_t want;
    if (s->last_id && s->last_cls == cls && s->last_ep == ep && s->last_pd == pd && !strcmp(s->last_op, op)) {
        want = s->last_id;
    } else {
        want = sr_skey_id(op, cls, ep, pd);
        snprintf(s->last_op, sizeof s->last_op, "%s", op);
        s->last_cls = cls, s->last_ep = ep, s->last_pd = pd, s->last_id = want;
    }
    sr_skey *k = cached(s, want);
    int rc = SR_OK;
    if (!k) {
        rc = fetch(s, kv, want, &k, err, errlen);
        if (rc == SR_ENOTFOUND) { /* the first node to need it makes it (create-only) */
            sr_skey nk;
            sr_buf v;
            sr_buf_init(&v);
            char key[24];
            sr_skeys_kv_key(want, key);
            rc = sr_skey_make(ad->op ? ad->op : "", cls, ep, pd, ms > 0 ? ms : 0, &nk);
            if (!rc) rc = sr_skey_wrap(&s->master, &nk, &v);
            if (!rc) rc = kv->create(kv->ctx, key, v.data, v.len);
            sr_buf_release(&v);
            if (!rc) k = remember(s, &nk);
            else if (rc == SR_EEXIST) rc = fetch(s, kv, want, &k, err, errlen); /* lost the race: the winner's */
            else snprintf(err, errlen, "stream key %016" PRIx64 " not created: %s", want, sr_err_name(rc));
            memset(&nk, 0, sizeof nk);
        }
    }
    if (rc) return rc;
    if (k->state != SR_SKEY_ACTIVE) {
        snprintf(err, errlen, "stream key %016" PRIx64 " (operator '%s', class %u, epoch %u) was destroyed", k->id,
                 k->op, k->cls, k->epoch);
        return SR_EERASED;
    }
    *id = k->id;
    /* the nonce: a random 96-bit base per store and a counter (RAND_bytes per payload cost ~20 us here); unique
     * in this store, and across stores as random nonces are (docs/keys.md "Nonces") */
    uint8_t nonce[SR_NONCE_LEN];
    memcpy(nonce, s->nonce, sizeof nonce);
    uint64_t c = ++s->ctr ^ sr_get_le64(nonce + 4);
    sr_put_le64(nonce + 4, c);
    return seal_with(ctx_of(s, k), nonce, k, ad, in, n, out);
}

int sr_skeys_open(sr_skeys *s, const sr_skv *kv, const sr_seal_ad *ad, const void *p, size_t n, sr_buf *out,
                  char *err, size_t errlen)
{
    uint64_t id = sr_seal_key_id(p, n);
    if (!id) {
        snprintf(err, errlen, "not a sealed stream payload (%zu bytes)", n);
        return SR_ECORRUPT;
    }
    sr_skey *k = cached(s, id);
    int rc = k ? SR_OK : fetch(s, kv, id, &k, err, errlen);
    if (rc) return rc;
    int cls = sr_event_kind_key_class(ad->kind);
    if (strcmp(k->op, ad->op ? ad->op : "") || (cls >= SR_KC_DATA && k->cls != cls)) {
        snprintf(err, errlen, "stream key %016" PRIx64 " is operator '%s''s of class %u, the message's is '%s''s of %d",
                 id, k->op, k->cls, ad->op ? ad->op : "", cls);
        return SR_EKEY;
    }
    return open_with(ctx_of(s, k), k, ad, p, n, out, err, errlen);
}

int sr_skeys_destroy(sr_skeys *s, const sr_skv *kv, uint64_t id, int64_t now_ms, sr_skey *info, char *err,
                     size_t errlen)
{
    sr_skey *k = NULL;
    int rc = fetch(s, kv, id, &k, err, errlen);
    if (rc) return rc;
    if (k->state == SR_SKEY_ACTIVE) {
        size_t i = (size_t)(k - s->k);
        sr_aead_destroy(s->ae[i]); /* (its key schedule goes too) */
        s->ae[i] = NULL;
        memset(k->key, 0, sizeof k->key);
        k->state = SR_SKEY_DESTROYED;
        k->destroyed_ms = now_ms;
        sr_buf v;
        sr_buf_init(&v);
        char key[24];
        sr_skeys_kv_key(id, key);
        rc = sr_skey_wrap(&s->master, k, &v);
        if (!rc) rc = kv->put(kv->ctx, key, v.data, v.len);
        sr_buf_release(&v);
        if (rc) {
            snprintf(err, errlen, "stream key %016" PRIx64 ": its tombstone not written (%s)", id, sr_err_name(rc));
            /* the cache forgets it all the same: read again from the bucket */
            k->id = 0;
            return rc;
        }
    }
    if (info) *info = *k;
    return SR_OK;
}

/* ---- an erasure, recorded in the log (issue #19 ckey) ---- */

static const char *cls_name(int c) { return c == SR_KC_DATA ? "data" : c == SR_KC_AUDIT ? "audit" : "config"; }

/* One StreamKeyErase event, waited for: SR_OK with *seq, or why not. */
static int erase_event(const sr_skey_erase_req *q, const char *kid, const sr_skey *k, const char *outcome,
                       const char *msg, uint64_t intent, uint64_t *seq, char *err, size_t errlen)
{
    sr_cmd_env env = {k->op, q->actor, (sr_actor_kind)q->actor_kind, NULL, q->source};
    sr_skey_erase_rec r = {kid,      k->op,     k->id ? cls_name(k->cls) : "", k->epoch, k->period_days,
                           q->why,   q->cut_ms, outcome,                       msg,      intent,
                           q->node};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    memset(&res, 0, sizeof res);
    int rc = sr_cmd_skey_erase(&env, &r, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(q->e, &sl, 1, &res);
        if (!rc) rc = res.rc;
    }
    sr_buf_release(&b);
    if (rc) {
        snprintf(err, errlen, "stream key %s: its %s event not written (%s)", kid, outcome,
                 res.err.msg[0] ? res.err.msg : sr_strerror(rc));
        return rc;
    }
    *seq = res.seq;
    return SR_OK;
}

int sr_skey_erase(sr_skeys *s, const sr_skv *kv, const sr_skey_erase_req *q, uint64_t id, int64_t now_ms,
                  sr_skey_erase_out *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char kid[17], key[24], why[512] = "";
    snprintf(kid, sizeof kid, "%016" PRIx64, id);
    sr_skeys_kv_key(id, key);
    /* 1. the entry's metadata (a tool's zero master: nothing is unwrapped) */
    sr_buf v;
    sr_buf_init(&v);
    sr_key none;
    memset(&none, 0, sizeof none);
    int rc = kv->get(kv->ctx, key, &v);
    if (!rc) {
        rc = sr_skey_unwrap(&none, v.data, v.len, &out->info, why, sizeof why);
        if (rc == SR_EKEY) rc = SR_OK; /* (the metadata is read all the same) */
    }
    sr_buf_release(&v);
    memset(out->info.key, 0, sizeof out->info.key);
    sr_skey meta = out->info;
    int refuse = 0;
    if (rc == SR_ENOTFOUND) {
        snprintf(why, sizeof why, "stream key %s is not in the bucket", kid);
        refuse = SR_ENOTFOUND;
    } else if (!rc && meta.cls == SR_KC_CONFIG) {
        snprintf(why, sizeof why, "stream key %s is operator '%s''s config key: config keys are never erased", kid,
                 meta.op);
        refuse = SR_EINVAL;
    } else if (rc && !q->intent_seq) { /* the bucket unreadable: nothing to do yet (no intent) */
        snprintf(err, errlen, "stream key %s: the bucket not read (%s)", kid, why[0] ? why : sr_strerror(rc));
        return rc;
    }
    if (refuse) {
        snprintf(out->outcome, sizeof out->outcome, "refused");
        meta.id = refuse == SR_EINVAL ? meta.id : 0; /* (no class to name) */
        uint64_t seq = 0;
        int r = erase_event(q, kid, &meta, "refused", why, q->intent_seq, &seq, err, errlen);
        out->result_seq = seq;
        if (!r) snprintf(err, errlen, "%s", why);
        return r ? r : refuse;
    }
    /* 2. the intent, durable before the tombstone */
    out->intent_seq = q->intent_seq;
    if (!out->intent_seq) {
        rc = erase_event(q, kid, &meta, "pending", "", 0, &out->intent_seq, err, errlen);
        if (!rc && (rc = sr_engine_log_durable(q->e)))
            snprintf(err, errlen, "stream key %s: its intent not made durable (%s): not erased", kid, sr_strerror(rc));
        if (rc) return rc;
        /* test hook (tests only: test_cluster_sub E): the process killed between the durable intent and the
         * tombstone, so a real crash shows the intent finished at the next start */
        const char *crash = getenv("SUIRO_TEST_ERASE_CRASH");
        if (crash && !strcmp(crash, "after-intent")) raise(SIGKILL);
    }
    /* 3. the tombstone (an idempotent put; destroyed already: found) */
    const char *outcome = "done";
    why[0] = 0;
    if (rc) { /* finishing an intent, the bucket unreadable */
        outcome = "failed";
        snprintf(why, sizeof why, "the bucket not read: %s", sr_strerror(rc));
    } else if (meta.state == SR_SKEY_DESTROYED) {
        outcome = "found";
    } else {
        sr_skey info;
        rc = sr_skeys_destroy(s, kv, id, now_ms, &info, why, sizeof why);
        if (rc) outcome = "failed";
        else if (info.state == SR_SKEY_DESTROYED && info.destroyed_ms != now_ms) outcome = "found"; /* (a race) */
    }
    int brc = !strcmp(outcome, "failed") ? (rc ? rc : SR_EIO) : SR_OK;
    if (!strcmp(outcome, "failed") && !why[0]) snprintf(why, sizeof why, "%s", sr_strerror(brc));
    if (q->intent_seq && !strcmp(outcome, "done")) snprintf(why, sizeof why, "finished at start");
    if (q->intent_seq && !strcmp(outcome, "found")) snprintf(why, sizeof why, "finished at start");
    snprintf(out->outcome, sizeof out->outcome, "%s", outcome);
    /* 4. the result */
    char e2[320];
    rc = erase_event(q, kid, &meta, outcome, why, out->intent_seq, &out->result_seq, e2, sizeof e2);
    if (brc) snprintf(err, errlen, "stream key %s: its tombstone not written: %s", kid, why);
    else if (rc) snprintf(err, errlen, "%s (the tombstone is written)", e2);
    return brc ? brc : rc;
}

int sr_skey_retention_erase(sr_skeys *s, const sr_skv *kv, sr_engine *e, const sr_retention_cfg *cfg, int64_t now,
                            const char *node, const char *kvkey, sr_skey_sweep_rep *rep, char *err, size_t errlen)
{
    sr_buf v;
    sr_buf_init(&v);
    sr_key none;
    memset(&none, 0, sizeof none);
    sr_skey k;
    memset(&k, 0, sizeof k);
    char why[320];
    int rc = kv->get(kv->ctx, kvkey, &v);
    if (rc == SR_ENOTFOUND) return SR_OK; /* (gone between the listing and the read) */
    if (!rc) {
        rc = sr_skey_unwrap(&none, v.data, v.len, &k, why, sizeof why);
        if (rc == SR_EKEY) rc = SR_OK; /* (the metadata is read all the same) */
    }
    sr_buf_release(&v);
    memset(k.key, 0, sizeof k.key);
    if (rc == SR_EIO) {
        snprintf(err, errlen, "the keys' bucket not read (%s)", kvkey);
        return rc;
    }
    if (rc) return SR_OK; /* not an entry: not judged here (suiro cluster keys names it) */
    rep->keys++;
    if (k.state != SR_SKEY_ACTIVE || (k.cls != SR_KC_DATA && k.cls != SR_KC_AUDIT)) return SR_OK;
    int64_t from, to;
    sr_skey_epoch_range(k.cls, k.epoch, k.period_days, &from, &to);
    int64_t cut = sr_engine_retention_cut(e, cfg, now, k.op, k.cls);
    if (cut == INT64_MIN || to == INT64_MAX || to > cut) return SR_OK; /* something of that epoch is kept */
    sr_skey_erase_req q = {e, node && node[0] ? node : "system", SR_ACTOR_SYSTEM, "retention", "retention", cut, node, 0};
    sr_skey_erase_out out;
    rc = sr_skey_erase(s, kv, &q, k.id, now, &out, err, errlen);
    if (!strcmp(out.outcome, "done")) rep->erased++;
    else if (!strcmp(out.outcome, "found")) rep->found++;
    else if (out.outcome[0]) rep->failed++;
    return rc;
}

typedef struct pend_ctx {
    sr_skeys *s;
    const sr_skv *kv;
    sr_engine *e;
    const char *node;
    int64_t now_ms;
    unsigned n;
    char *err;
    size_t errlen;
} pend_ctx;

static int finish_one(void *ctx, uint64_t id, uint64_t seq, const char *why)
{
    pend_ctx *p = ctx;
    sr_skey_erase_req q = {p->e, p->node, SR_ACTOR_SYSTEM, NULL, why, 0, p->node, seq};
    sr_skey_erase_out o;
    int rc = sr_skey_erase(p->s, p->kv, &q, id, p->now_ms, &o, p->err, p->errlen);
    if (!rc) p->n++;
    return rc;
}

int sr_skey_erase_pending(sr_skeys *s, const sr_skv *kv, sr_engine *e, const char *node, int64_t now_ms,
                          unsigned *n, char *err, size_t errlen)
{
    pend_ctx p = {s, kv, e, node && node[0] ? node : "system", now_ms, 0, err, errlen};
    int rc = sr_engine_skey_pending(e, finish_one, &p);
    *n = p.n;
    return rc;
}

/* ---- the NATS bucket ---- */

static int nkv_open(sr_skv_nats *n)
{
    if (n->kv) return SR_OK;
    kvStore *kv = NULL;
    natsStatus st = js_KeyValue(&kv, n->js, n->bucket);
    if (st != NATS_OK) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = n->bucket;
        kc.History = 1;
        kc.StorageType = js_FileStorage;
        kc.Replicas = n->replicas > 0 ? n->replicas : 1;
        st = js_CreateKeyValue(&kv, n->js, &kc);
    }
    if (st != NATS_OK) return SR_EIO;
    n->kv = kv;
    return SR_OK;
}

static int nkv_get(void *ctx, const char *key, sr_buf *val)
{
    sr_skv_nats *n = ctx;
    if (nkv_open(n)) return SR_EIO;
    kvEntry *e = NULL;
    natsStatus st = kvStore_Get(&e, n->kv, key);
    if (st == NATS_NOT_FOUND) return SR_ENOTFOUND;
    if (st != NATS_OK) return SR_EIO;
    int rc = sr_buf_append(val, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
    kvEntry_Destroy(e);
    return rc;
}

static int nkv_create(void *ctx, const char *key, const void *p, size_t len)
{
    sr_skv_nats *n = ctx;
    if (nkv_open(n)) return SR_EIO;
    uint64_t rev = 0;
    natsStatus st = kvStore_Create(&rev, n->kv, key, p, (int)len);
    if (st == NATS_OK) return SR_OK;
    /* "wrong last sequence": someone else's is there (a real failure shows on the next get) */
    kvEntry *e = NULL;
    if (kvStore_Get(&e, n->kv, key) == NATS_OK) {
        kvEntry_Destroy(e);
        return SR_EEXIST;
    }
    return SR_EIO;
}

static int nkv_put(void *ctx, const char *key, const void *p, size_t len)
{
    sr_skv_nats *n = ctx;
    if (nkv_open(n)) return SR_EIO;
    uint64_t rev = 0;
    return kvStore_Put(&rev, n->kv, key, p, (int)len) == NATS_OK ? SR_OK : SR_EIO;
}

void sr_skv_nats_init(sr_skv_nats *n, sr_skv *kv, void *js, const char *name, int replicas)
{
    memset(n, 0, sizeof *n);
    n->js = js;
    n->replicas = replicas;
    sr_skeys_bucket(name, n->bucket);
    *kv = (sr_skv){n, nkv_get, nkv_create, nkv_put};
}

void sr_skv_nats_reset(sr_skv_nats *n)
{
    if (n->kv) kvStore_Destroy(n->kv);
    n->kv = NULL;
    n->js = NULL;
}

int sr_skv_nats_keys(sr_skv_nats *n, int (*fn)(void *ctx, const char *key), void *ctx)
{
    if (nkv_open(n)) return SR_EIO;
    kvKeysList kl = {0};
    natsStatus st = kvStore_Keys(&kl, n->kv, NULL);
    if (st == NATS_NOT_FOUND) return SR_OK; /* (no key yet) */
    if (st != NATS_OK) return SR_EIO;
    int rc = SR_OK;
    for (int i = 0; i < kl.Count && !rc; i++) rc = fn(ctx, kl.Keys[i]);
    kvKeysList_Destroy(&kl);
    return rc;
}
