#include "logtest.h"

#include "storage/crc32c.h"
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t lt_len(uint64_t seq, size_t maxlen)
{
    tu_rng r = {seq * 7919 + 1};
    uint64_t v = tu_next(&r), c = v % 100;
    size_t n;
    if (c < 35) n = (size_t)(v >> 8) % 17;
    else if (c < 80) n = (size_t)(v >> 8) % 257;
    else if (c < 96) n = (size_t)(v >> 8) % 4097;
    else n = (size_t)(v >> 8) % (maxlen + 1);
    return n > maxlen ? maxlen : n;
}

static int append_ids(sr_log *lg, const lt_keyring *kr, size_t n, size_t maxlen, uint64_t *first);

int lt_append(sr_log *lg, size_t n, size_t maxlen, uint64_t *first) { return append_ids(lg, NULL, n, maxlen, first); }

int lt_append_keyed(sr_log *lg, const lt_keyring *kr, size_t n, size_t maxlen, uint64_t *first)
{
    return append_ids(lg, kr, n, maxlen, first);
}

uint32_t lt_key_of(const lt_keyring *kr, uint64_t seq)
{
    int k = (int)((seq / 2) % 3);
    return k == 2 ? 0 : lt_keyring_id(kr, k);
}

int lt_check_keys(sr_log *lg, const lt_keyring *kr, uint64_t from, uint64_t to, char *why, size_t whylen)
{
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(lg, from, &it), res = 0;
    if (rc) {
        snprintf(why, whylen, "iter_open: %s", sr_err_name(rc));
        return -1;
    }
    uint64_t seq;
    sr_slice rec;
    for (uint64_t s = from; s < to; s++) {
        rc = sr_log_iter_next(it, &seq, &rec);
        if (rc || seq != s || sr_log_iter_key_id(it) != lt_key_of(kr, s)) {
            snprintf(why, whylen, "seq %" PRIu64 ": %s, key id %08x, want %08x", s, sr_err_name(rc),
                     sr_log_iter_key_id(it), lt_key_of(kr, s));
            res = -1;
            break;
        }
    }
    sr_log_iter_close(it);
    return res;
}

/* kr NULL: sr_log_append */
static int append_ids(sr_log *lg, const lt_keyring *kr, size_t n, size_t maxlen, uint64_t *first)
{
    uint64_t base = sr_log_next_seq(lg);
    uint32_t *ids = kr ? calloc(n, sizeof *ids) : NULL;
    for (size_t i = 0; kr && i < n; i++) ids[i] = lt_key_of(kr, base + i);
    sr_slice *recs = calloc(n, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        size_t len = lt_len(base + i, maxlen);
        uint8_t *p = malloc(len ? len : 1);
        tu_fill_record(base + i, p, len);
        recs[i] = (sr_slice){p, len};
    }
    uint64_t f = 0;
    int rc = kr ? sr_log_append_keyed(lg, recs, ids, n, &f) : sr_log_append(lg, recs, n, &f);
    if (rc == SR_OK && f != base) rc = -1000; /* someone else appended */
    if (rc == SR_OK && first) *first = f;
    for (size_t i = 0; i < n; i++) free((void *)recs[i].data);
    free(recs);
    free(ids);
    return rc;
}

int lt_check(sr_log *lg, uint64_t from, uint64_t to, size_t maxlen, char *why, size_t whylen)
{
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(lg, from, &it);
    if (rc) {
        snprintf(why, whylen, "iter_open: %s", sr_err_name(rc));
        return -1;
    }
    uint64_t want = from, seq;
    sr_slice rec;
    uint8_t *buf = malloc(maxlen + 1);
    int res = 0;
    while (want < to) {
        rc = sr_log_iter_next(it, &seq, &rec);
        if (rc) {
            snprintf(why, whylen, "seq %" PRIu64 ": iter_next %s (%s)", want, sr_err_name(rc),
                     sr_log_iter_errinfo(it)->msg);
            res = -1;
            break;
        }
        size_t len = lt_len(seq, maxlen);
        tu_fill_record(seq, buf, len);
        if (seq != want || rec.len != len || (len && memcmp(rec.data, buf, len))) {
            snprintf(why, whylen, "seq %" PRIu64 " (want %" PRIu64 "): len %zu want %zu or bytes differ", seq,
                     want, rec.len, len);
            res = -1;
            break;
        }
        want++;
    }
    free(buf);
    sr_log_iter_close(it);
    return res;
}

void lt_nonce(void *ctx, uint8_t nonce[12])
{
    uint64_t *c = ctx;
    memset(nonce, 0, 12);
    uint64_t v = ++*c;
    for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(v >> (8 * i));
    nonce[0] = 0x5a;
}

void lt_key(sr_key *k, int which)
{
    uint8_t b[32];
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(i * 7 + which * 101 + 1);
    sr_key_from_bytes(k, b);
}

/* ---- a test keyring (lt_keyring) ----------------------------------------- */

static int kr_find(lt_keyring *kr, uint32_t id)
{
    for (int i = 0; i < kr->n; i++)
        if (kr->id[i] == id) return i;
    return -1;
}

static int kr_crypt(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                    const void *in, size_t n, void *out, uint8_t *tag, char *msg, size_t msglen, int seal)
{
    lt_keyring *kr = ctx;
    pthread_mutex_lock(kr->mu);
    int i = kr_find(kr, key_id), rc;
    if (i < 0 || kr->state[i] == LT_UNKNOWN) {
        snprintf(msg, msglen, "key id %08x is not in the test keyring", key_id);
        rc = SR_EKEY;
    } else if (kr->state[i] == LT_DESTROYED) {
        snprintf(msg, msglen, "key id %08x was destroyed", key_id);
        rc = SR_EERASED;
    } else {
        sr_aead *a = NULL;
        rc = sr_aead_create(&kr->key[i], &a);
        if (!rc) rc = seal ? sr_aead_seal(a, nonce, aad, aadlen, in, n, out, tag)
                           : sr_aead_open(a, nonce, aad, aadlen, in, n, out, tag);
        sr_aead_destroy(a);
    }
    pthread_mutex_unlock(kr->mu);
    return rc;
}

static int kr_seal(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                   const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    return kr_crypt(ctx, key_id, nonce, aad, aadlen, in, n, out, tag, msg, msglen, 1);
}

static int kr_open(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                   const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    return kr_crypt(ctx, key_id, nonce, aad, aadlen, in, n, out, (uint8_t *)tag, msg, msglen, 0);
}

static int kr_alg(void *ctx, uint32_t key_id)
{
    lt_keyring *kr = ctx;
    pthread_mutex_lock(kr->mu);
    int i = kr_find(kr, key_id);
    int alg = i < 0 || kr->state[i] == LT_UNKNOWN ? SR_ALG_NONE : SR_ALG_AES_256_GCM;
    pthread_mutex_unlock(kr->mu);
    return alg;
}

void lt_keyring_init(lt_keyring *kr, const int *which, int n)
{
    memset(kr, 0, sizeof *kr);
    kr->mu = malloc(sizeof(pthread_mutex_t));
    pthread_mutex_init(kr->mu, NULL);
    for (int i = 0; i < n && i < LT_KEYS; i++) {
        lt_key(&kr->key[i], which[i]);
        kr->id[i] = kr->key[i].id;
        kr->n++;
    }
    kr->keys = (sr_keys){.ctx = kr, .seal = kr_seal, .open = kr_open, .alg = kr_alg};
}

void lt_keyring_free(lt_keyring *kr)
{
    pthread_mutex_destroy(kr->mu);
    free(kr->mu);
    kr->mu = NULL;
}

uint32_t lt_keyring_id(const lt_keyring *kr, int i) { return kr->id[i]; }

void lt_keyring_set(lt_keyring *kr, int i, int state)
{
    pthread_mutex_lock(kr->mu);
    kr->state[i] = state;
    pthread_mutex_unlock(kr->mu);
}

void lt_keyring_swap(lt_keyring *kr, int i, int which)
{
    pthread_mutex_lock(kr->mu);
    lt_key(&kr->key[i], which);
    pthread_mutex_unlock(kr->mu);
}

/* ---- lt_downgrade ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int lt_downgrade(const char *dir, int version, char *why, size_t whylen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, whylen, "cannot open %s", dir);
        return -1;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".seg")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    uint8_t tip[SR_HASH_LEN] = {0};
    int res = 0;
    for (size_t i = 0; i < n && !res; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        uint8_t *p = tu_read_file(path, &len);
        uint8_t *out = malloc(len + 1);
        size_t o = SR_SEG_HDR_LEN, off = SR_SEG_HDR_LEN;
        memcpy(out, p, SR_SEG_HDR_LEN);
        sr_put_le16(out + 8, (uint16_t)version);
        memcpy(out + 24, tip, SR_HASH_LEN);
        sr_put_le32(out + 60, sr_crc32c(0, out, 60));
        while (off + SR_BLK_HDR_LEN <= len) {
            const uint8_t *h = p + off;
            uint32_t stored = sr_get_le32(h + 24);
            const uint8_t *sec = h + SR_BLK_HDR_LEN;
            if (h[4] != SR_BLK_VERSION || sr_get_le32(h + 28) != 1 || sec[4] != SR_ALG_NONE || sec[5] != 0) {
                snprintf(why, whylen, "%s offset %zu: not one plain uncompressed section", names[i], off);
                res = -1;
                break;
            }
            uint8_t *nh = out + o;
            memcpy(nh, h, SR_BLK_HDR_LEN);
            nh[4] = SR_BLK_VERSION_1;
            sr_put_le32(nh + 24, stored - SR_SEC_HDR_LEN);
            sr_put_le32(nh + 28, 0);
            memcpy(nh + 56, tip, SR_HASH_LEN);
            memcpy(nh + SR_BLK_HDR_LEN, sec + SR_SEC_HDR_LEN, stored - SR_SEC_HDR_LEN);
            sr_put_le32(nh + 88, sr_crc32c(0, nh + SR_BLK_HDR_LEN, stored - SR_SEC_HDR_LEN));
            sr_put_le32(nh + 92, sr_crc32c(0, nh, 92));
            uint8_t dg[SR_HASH_LEN];
            sr_sha256(nh + SR_BLK_HDR_LEN, stored - SR_SEC_HDR_LEN, dg);
            sr_sha256_2(nh, SR_BLK_AAD_LEN, dg, SR_HASH_LEN, tip);
            o += SR_BLK_HDR_LEN + stored - SR_SEC_HDR_LEN;
            off += SR_BLK_HDR_LEN + stored;
        }
        if (!res && tu_write_file(path, out, o)) {
            snprintf(why, whylen, "cannot write %s", path);
            res = -1;
        }
        free(p);
        free(out);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    return res;
}
