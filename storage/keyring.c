/*
 * storage/keyring.c -- the keyring file and the sr_keys resolver over it
 * (keyring.h; the format: docs/keys.md "The keyring file").
 */
#define _GNU_SOURCE 1 /* pthread_rwlockattr_setkind_np */
#include "storage/keyring.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char MAGIC[8] = {'S', 'R', 'K', 'E', 'Y', 'R', 'N', 'G'};
static const char WRAP_LABEL[16] = {'s', 'u', 'i', 'r', 'o', '-', 'k', 'e', 'y', 'r', 'i', 'n', 'g', '-', 'v', '1'};
enum {
    HDR_LEN = 24,      /* magic 8, version 4, master id 4, entries 4, reserved 4 */
    ENT_FIXED = 38,    /* id 4, epoch 4, alg 2, class 1, state 1, 3 times 8, operator length 2 */
    ENT_WRAP = SR_NONCE_LEN + SR_KEY_LEN + SR_TAG_LEN,
    MAX_ENTRIES = 1 << 20,
    AAD_MAX = 16 + 4 + 4 + 4 + 2 + 1 + 8 + 2 + SR_KEYRING_OP_MAX,
};

typedef struct ent {
    sr_keyinfo info;
    uint8_t key[SR_KEY_LEN]; /* the data key; zero when destroyed */
    uint8_t nonce[SR_NONCE_LEN], wrapped[SR_KEY_LEN], tag[SR_TAG_LEN]; /* under the master */
    pthread_mutex_t mu;      /* guards aead */
    sr_aead *aead;           /* made on first use */
} ent;

struct sr_keyring {
    const sr_vfs *vfs;
    char dir[4096], path[4200], tmp[4200];
    sr_key master;
    char source[128];
    pthread_rwlock_t lock;
    ent **e;
    size_t n, cap;
    sr_keys keys;
    _Atomic uint64_t gen; /* destructions so far (sr_keyring_generation) */
};

const char *sr_key_class_name(int cls)
{
    switch (cls) {
    case SR_KC_LEGACY: return "legacy";
    case SR_KC_DATA: return "data";
    case SR_KC_AUDIT: return "audit";
    case SR_KC_CONFIG: return "config";
    default: return "?";
    }
}

int sr_key_class_parse(const char *name)
{
    for (int c = 0; c < SR_KC_COUNT; c++)
        if (name && !strcmp(name, sr_key_class_name(c))) return c;
    return -1;
}

const char *sr_key_state_name(int state)
{
    switch (state) {
    case SR_KS_ACTIVE: return "active";
    case SR_KS_RETIRED: return "retired";
    case SR_KS_DESTROYED: return "destroyed";
    default: return "?";
    }
}

__attribute__((format(printf, 4, 5))) static void set_err(sr_errinfo *err, int code, const char *where,
                                                        const char *fmt, ...)
{
    if (!err) return;
    memset(err, 0, sizeof *err);
    err->code = code;
    size_t wl = strlen(where ? where : "");
    if (wl >= sizeof err->where) where += wl - (sizeof err->where - 1); /* the tail: the file's name */
    memcpy(err->where, where ? where : "", wl < sizeof err->where ? wl : sizeof err->where - 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

/* the associated data of an entry's wrapping: what names it, never its state */
static size_t wrap_aad(uint32_t master_id, const sr_keyinfo *in, uint8_t *aad)
{
    size_t ol = strlen(in->operator_id), k = 0;
    memcpy(aad, WRAP_LABEL, 16), k = 16;
    sr_put_le32(aad + k, master_id), k += 4;
    sr_put_le32(aad + k, in->id), k += 4;
    sr_put_le32(aad + k, in->epoch), k += 4;
    sr_put_le16(aad + k, in->alg), k += 2;
    aad[k++] = in->cls;
    sr_put_le64(aad + k, (uint64_t)in->created_ms), k += 8;
    sr_put_le16(aad + k, (uint16_t)ol), k += 2;
    memcpy(aad + k, in->operator_id, ol);
    return k + ol;
}

static int wrap(const sr_key *master, ent *x)
{
    uint8_t aad[AAD_MAX];
    size_t al = wrap_aad(master->id, &x->info, aad);
    sr_aead *a = NULL;
    int rc = sr_random(x->nonce, sizeof x->nonce);
    if (!rc) rc = sr_aead_create(master, &a);
    if (!rc) rc = sr_aead_seal(a, x->nonce, aad, al, x->key, SR_KEY_LEN, x->wrapped, x->tag);
    sr_aead_destroy(a);
    return rc;
}

static int unwrap(const sr_key *master, ent *x)
{
    uint8_t aad[AAD_MAX];
    size_t al = wrap_aad(master->id, &x->info, aad);
    sr_aead *a = NULL;
    int rc = sr_aead_create(master, &a);
    if (!rc) rc = sr_aead_open(a, x->nonce, aad, al, x->wrapped, SR_KEY_LEN, x->key, x->tag);
    sr_aead_destroy(a);
    if (rc) OPENSSL_cleanse(x->key, sizeof x->key);
    return rc;
}

static void ent_free(ent *x)
{
    if (!x) return;
    sr_aead_destroy(x->aead);
    pthread_mutex_destroy(&x->mu);
    OPENSSL_cleanse(x, sizeof *x);
    sr_free(x);
}

static ent *ent_new(void)
{
    ent *x = sr_calloc(1, sizeof *x);
    if (x && pthread_mutex_init(&x->mu, NULL)) {
        sr_free(x);
        return NULL;
    }
    return x;
}

static ent *find(sr_keyring *kr, uint32_t id)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->e[i]->info.id == id) return kr->e[i];
    return NULL;
}

static ent *find_active(sr_keyring *kr, const char *op, int cls)
{
    for (size_t i = kr->n; i-- > 0;) {
        ent *x = kr->e[i];
        if (x->info.cls == cls && x->info.state == SR_KS_ACTIVE && !strcmp(x->info.operator_id, op)) return x;
    }
    return NULL;
}

/* ---- the file ----------------------------------------------------------- */

static int serialize(const sr_key *master, ent *const *e, size_t n, sr_buf *b)
{
    size_t need = HDR_LEN + SR_HASH_LEN;
    for (size_t i = 0; i < n; i++)
        need += ENT_FIXED + strlen(e[i]->info.operator_id) + (e[i]->info.state == SR_KS_DESTROYED ? 0 : ENT_WRAP);
    if (sr_buf_reserve(b, need)) return SR_ENOMEM;
    uint8_t *p = b->data + b->len, *s = p;
    memcpy(p, MAGIC, 8);
    sr_put_le32(p + 8, SR_KEYRING_VERSION);
    sr_put_le32(p + 12, master->id);
    sr_put_le32(p + 16, (uint32_t)n);
    sr_put_le32(p + 20, 0);
    p += HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        const sr_keyinfo *in = &e[i]->info;
        size_t ol = strlen(in->operator_id);
        sr_put_le32(p, in->id);
        sr_put_le32(p + 4, in->epoch);
        sr_put_le16(p + 8, in->alg);
        p[10] = in->cls;
        p[11] = in->state;
        sr_put_le64(p + 12, (uint64_t)in->created_ms);
        sr_put_le64(p + 20, (uint64_t)in->retired_ms);
        sr_put_le64(p + 28, (uint64_t)in->destroyed_ms);
        sr_put_le16(p + 36, (uint16_t)ol);
        memcpy(p + ENT_FIXED, in->operator_id, ol);
        p += ENT_FIXED + ol;
        if (in->state != SR_KS_DESTROYED) {
            memcpy(p, e[i]->nonce, SR_NONCE_LEN);
            memcpy(p + SR_NONCE_LEN, e[i]->wrapped, SR_KEY_LEN);
            memcpy(p + SR_NONCE_LEN + SR_KEY_LEN, e[i]->tag, SR_TAG_LEN);
            p += ENT_WRAP;
        }
    }
    sr_sha256(s, (size_t)(p - s), p);
    p += SR_HASH_LEN;
    b->len += (size_t)(p - s);
    return SR_OK;
}

/* Parse a file's bytes into entries (wrapped; not unwrapped). *master_id
 * gets the header's. SR_ECORRUPT with what is wrong in why. */
static int parse(const uint8_t *p, size_t n, uint32_t *master_id, ent ***out, size_t *nout, const char **why)
{
    *out = NULL, *nout = 0;
    if (n < HDR_LEN + SR_HASH_LEN) return *why = "shorter than its header and checksum", SR_ECORRUPT;
    if (memcmp(p, MAGIC, 8)) return *why = "not a keyring (bad magic)", SR_ECORRUPT;
    uint8_t h[SR_HASH_LEN];
    sr_sha256(p, n - SR_HASH_LEN, h);
    if (memcmp(h, p + n - SR_HASH_LEN, SR_HASH_LEN)) return *why = "checksum mismatch (damaged or torn)", SR_ECORRUPT;
    if (sr_get_le32(p + 8) != SR_KEYRING_VERSION) return *why = "unsupported keyring version", SR_EVERSION;
    *master_id = sr_get_le32(p + 12);
    uint32_t cnt = sr_get_le32(p + 16);
    if (cnt > MAX_ENTRIES || sr_get_le32(p + 20)) return *why = "bad header", SR_ECORRUPT;
    ent **e = cnt ? sr_calloc(cnt, sizeof *e) : NULL;
    if (cnt && !e) return SR_ENOMEM;
    size_t off = HDR_LEN, end = n - SR_HASH_LEN, i = 0;
    int rc = SR_OK;
    for (; i < cnt; i++) {
        if (end - off < ENT_FIXED) {
            rc = SR_ECORRUPT, *why = "an entry runs past the end";
            break;
        }
        const uint8_t *q = p + off;
        size_t ol = sr_get_le16(q + 36);
        int destroyed = q[11] == SR_KS_DESTROYED;
        if (ol > SR_KEYRING_OP_MAX || end - off - ENT_FIXED < ol + (destroyed ? 0 : ENT_WRAP)) {
            rc = SR_ECORRUPT, *why = "an entry runs past the end";
            break;
        }
        if (!(e[i] = ent_new())) {
            rc = SR_ENOMEM;
            break;
        }
        sr_keyinfo *in = &e[i]->info;
        in->id = sr_get_le32(q);
        in->epoch = sr_get_le32(q + 4);
        in->alg = sr_get_le16(q + 8);
        in->cls = q[10];
        in->state = q[11];
        in->created_ms = (int64_t)sr_get_le64(q + 12);
        in->retired_ms = (int64_t)sr_get_le64(q + 20);
        in->destroyed_ms = (int64_t)sr_get_le64(q + 28);
        memcpy(in->operator_id, q + ENT_FIXED, ol);
        in->operator_id[ol] = 0;
        if (memchr(in->operator_id, 0, ol) || in->cls >= SR_KC_COUNT || in->state < SR_KS_ACTIVE ||
            in->state > SR_KS_DESTROYED || in->alg != SR_ALG_AES_256_GCM) {
            rc = SR_ECORRUPT, *why = "an entry has a bad operator, class, state or algorithm";
            i++;
            break;
        }
        off += ENT_FIXED + ol;
        if (!destroyed) {
            memcpy(e[i]->nonce, p + off, SR_NONCE_LEN);
            memcpy(e[i]->wrapped, p + off + SR_NONCE_LEN, SR_KEY_LEN);
            memcpy(e[i]->tag, p + off + SR_NONCE_LEN + SR_KEY_LEN, SR_TAG_LEN);
            off += ENT_WRAP;
        }
    }
    if (!rc && off != end) rc = SR_ECORRUPT, *why = "bytes after the last entry";
    if (rc) {
        for (size_t k = 0; k < cnt; k++) ent_free(e[k]);
        sr_free(e);
        return rc;
    }
    *out = e, *nout = cnt;
    return SR_OK;
}

/* Write the entries e[0..n) as the file, crash-safely: keyring.tmp, fsync,
 * rename over keyring, fsync the directory. */
static int save(sr_keyring *kr, const sr_key *master, ent *const *e, size_t n)
{
    sr_buf b;
    sr_buf_init(&b);
    int rc = serialize(master, e, n, &b);
    sr_file *f = NULL;
    if (!rc) rc = kr->vfs->mkdir(kr->vfs, kr->dir); /* the first key's write makes it */
    if (!rc) rc = kr->vfs->open(kr->vfs, kr->tmp, SR_VFS_WRITE | SR_VFS_CREATE, &f);
    if (!rc) rc = f->vfs->truncate(f, 0);
    if (!rc) rc = f->vfs->pwrite(f, b.data, b.len, 0);
    if (!rc) rc = f->vfs->sync(f);
    int crc = sr_file_close(f);
    if (!rc) rc = crc;
    if (!rc) rc = kr->vfs->rename(kr->vfs, kr->tmp, kr->path);
    if (!rc) rc = kr->vfs->sync_dir(kr->vfs, kr->dir);
    sr_buf_release(&b);
    return rc;
}

static int read_file(const sr_vfs *vfs, const char *path, sr_buf *b)
{
    sr_file *f = NULL;
    uint64_t size = 0;
    int rc = vfs->open(vfs, path, SR_VFS_READ, &f);
    if (rc) return rc;
    if (!(rc = f->vfs->size(f, &size))) {
        if (size > (uint64_t)MAX_ENTRIES * (ENT_FIXED + SR_KEYRING_OP_MAX + ENT_WRAP))
            rc = SR_ECORRUPT;
        else if (!(rc = sr_buf_reserve(b, (size_t)size + 1)) && !(rc = sr_vfs_read_exact(f, b->data, (size_t)size, 0)))
            b->len = (size_t)size;
        if (rc == SR_DONE) rc = SR_ECORRUPT; /* shrank under us */
    }
    sr_file_close(f);
    return rc;
}

/* ---- invariants --------------------------------------------------------- */

static const char *check_entries(uint32_t master_id, ent *const *e, size_t n)
{
    static const uint8_t zero[SR_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        const sr_keyinfo *a = &e[i]->info;
        if (!a->id || a->id == master_id) return "1: a key id is zero or the master's";
        if (a->state == SR_KS_DESTROYED && (memcmp(e[i]->key, zero, SR_KEY_LEN) || a->destroyed_ms <= 0))
            return "3: a destroyed key keeps bytes or has no destruction time";
        if (a->state != SR_KS_DESTROYED && !memcmp(e[i]->key, zero, SR_KEY_LEN))
            return "3: a live key has no bytes";
        if (a->state == SR_KS_RETIRED && a->retired_ms < a->created_ms) return "4: retired before created";
        for (size_t j = i + 1; j < n; j++) {
            const sr_keyinfo *b = &e[j]->info;
            if (a->id == b->id) return "1: two entries share a key id";
            if (a->cls == b->cls && a->cls != SR_KC_LEGACY && !strcmp(a->operator_id, b->operator_id)) {
                if (a->epoch == b->epoch) return "2: two keys of one operator and class share an epoch";
                if (a->state == SR_KS_ACTIVE && b->state == SR_KS_ACTIVE) return "2: two active keys of one operator and class";
                if ((a->state == SR_KS_ACTIVE && b->epoch > a->epoch) || (b->state == SR_KS_ACTIVE && a->epoch > b->epoch))
                    return "2: the active key is not the latest epoch";
            }
        }
    }
    return NULL;
}

const char *sr_keyring_check(sr_keyring *kr)
{
    pthread_rwlock_rdlock(&kr->lock);
    const char *why = check_entries(kr->master.id, kr->e, kr->n);
    pthread_rwlock_unlock(&kr->lock);
    return why;
}

/* ---- sr_keys ------------------------------------------------------------ */

/* Find id under the shared lock and make its cipher context; SR_EKEY or
 * SR_EERASED with msg. On SR_OK the caller holds x->mu and the shared lock. */
static int take(sr_keyring *kr, uint32_t key_id, ent **out, char *msg, size_t msglen)
{
    pthread_rwlock_rdlock(&kr->lock);
    ent *x = find(kr, key_id);
    int rc = SR_OK;
    if (!x) {
        if (msg)
            snprintf(msg, msglen, "data key 0x%08x is not in %s: restore it from a key export (docs/keys.md)",
                     key_id, kr->path);
        rc = SR_EKEY;
    } else if (x->info.state == SR_KS_DESTROYED) {
        if (msg)
            snprintf(msg, msglen, "data key 0x%08x (operator \"%s\", class %s, epoch %u) was destroyed", key_id,
                     x->info.operator_id, sr_key_class_name(x->info.cls), x->info.epoch);
        rc = SR_EERASED;
    } else {
        pthread_mutex_lock(&x->mu);
        if (!x->aead) {
            sr_key k;
            memcpy(k.bytes, x->key, SR_KEY_LEN);
            k.id = x->info.id;
            rc = sr_aead_create(&k, &x->aead);
            OPENSSL_cleanse(&k, sizeof k);
        }
        if (rc) pthread_mutex_unlock(&x->mu);
    }
    if (rc) pthread_rwlock_unlock(&kr->lock);
    *out = x;
    return rc;
}

static void give(sr_keyring *kr, ent *x)
{
    pthread_mutex_unlock(&x->mu);
    pthread_rwlock_unlock(&kr->lock);
}

static int k_seal(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    sr_keyring *kr = ctx;
    ent *x;
    int rc = take(kr, key_id, &x, msg, msglen);
    if (rc) return rc;
    rc = sr_aead_seal(x->aead, nonce, aad, aadlen, in, n, out, tag);
    give(kr, x);
    return rc;
}

static int k_open(void *ctx, uint32_t key_id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    sr_keyring *kr = ctx;
    ent *x;
    int rc = take(kr, key_id, &x, msg, msglen);
    if (rc) return rc;
    rc = sr_aead_open(x->aead, nonce, aad, aadlen, in, n, out, tag);
    give(kr, x);
    if (rc == SR_ECORRUPT && msg) snprintf(msg, msglen, "does not authenticate under data key 0x%08x", key_id);
    return rc;
}

static int k_alg(void *ctx, uint32_t key_id)
{
    sr_keyring *kr = ctx;
    pthread_rwlock_rdlock(&kr->lock);
    ent *x = find(kr, key_id);
    int alg = x ? x->info.alg : 0;
    pthread_rwlock_unlock(&kr->lock);
    return alg;
}

/* ---- open and close ----------------------------------------------------- */

int sr_keyring_peek_master(const sr_vfs *vfs, const char *dir, uint32_t *master_id)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/keyring", dir);
    sr_buf b;
    sr_buf_init(&b);
    ent **e = NULL;
    size_t n = 0;
    const char *why = NULL;
    int rc = read_file(vfs ? vfs : &sr_vfs_posix, path, &b);
    if (!rc) rc = parse(b.data, b.len, master_id, &e, &n, &why);
    for (size_t i = 0; i < n; i++) ent_free(e[i]);
    sr_free(e);
    sr_buf_release(&b);
    return rc;
}

int sr_keyring_open(const sr_vfs *vfs, const char *dir, const sr_key *master, const char *source, int create,
                    sr_keyring **out, sr_errinfo *err)
{
    if (!dir || !master || !out || strlen(dir) >= 4096) return SR_EINVAL;
    sr_keyring *kr = sr_calloc(1, sizeof *kr);
    if (!kr) return SR_ENOMEM;
    kr->vfs = vfs ? vfs : &sr_vfs_posix;
    snprintf(kr->dir, sizeof kr->dir, "%s", dir);
    snprintf(kr->path, sizeof kr->path, "%s/keyring", dir);
    snprintf(kr->tmp, sizeof kr->tmp, "%s/keyring.tmp", dir);
    snprintf(kr->source, sizeof kr->source, "%s", source ? source : "the key given");
    kr->master = *master;
    /* readers seal and open all the time: a waiting writer must not starve */
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&kr->lock, &la);
    pthread_rwlockattr_destroy(&la);
    kr->keys = (sr_keys){kr, k_seal, k_open, k_alg};
    sr_buf b;
    sr_buf_init(&b);
    const char *why = NULL;
    uint32_t mid = 0;
    int rc = read_file(kr->vfs, kr->path, &b);
    if (rc == SR_ENOTFOUND && create) {
        rc = SR_OK; /* empty; the file is written with its first key */
    } else if (rc == SR_ENOTFOUND) {
        set_err(err, rc, kr->path, "no keyring at %s", kr->path);
    } else if (rc) {
        set_err(err, rc, kr->path, "cannot read the keyring %s", kr->path);
    } else if ((rc = parse(b.data, b.len, &mid, &kr->e, &kr->n, &why))) {
        set_err(err, rc, kr->path, "the keyring %s: %s", kr->path, why ? why : sr_strerror(rc));
    } else if (mid != master->id) {
        rc = SR_EKEY;
        set_err(err, rc, kr->path, "the keyring %s is wrapped by master key 0x%08x; the key from %s has id 0x%08x", kr->path, mid,
                     kr->source, master->id);
    } else {
        kr->cap = kr->n;
        for (size_t i = 0; i < kr->n && !rc; i++)
            if (kr->e[i]->info.state != SR_KS_DESTROYED && (rc = unwrap(&kr->master, kr->e[i]))) {
                if (rc != SR_ECORRUPT) { /* no memory, the cipher library */
                    set_err(err, rc, kr->path, "the keyring %s: %s", kr->path, sr_strerror(rc));
                    break;
                }
                set_err(err, rc, kr->path, "the keyring %s: the entry of key 0x%08x does not authenticate under master key 0x%08x",
                             kr->path, kr->e[i]->info.id, master->id);
            }
        const char *inv = rc ? NULL : check_entries(kr->master.id, kr->e, kr->n);
        if (inv) {
            rc = SR_ECORRUPT;
            set_err(err, rc, kr->path, "the keyring %s breaks invariant %s", kr->path, inv);
        }
    }
    sr_buf_release(&b);
    if (rc) {
        sr_keyring_close(kr);
        return rc;
    }
    *out = kr;
    return SR_OK;
}

void sr_keyring_close(sr_keyring *kr)
{
    if (!kr) return;
    for (size_t i = 0; i < kr->n; i++) ent_free(kr->e[i]);
    sr_free(kr->e);
    pthread_rwlock_destroy(&kr->lock);
    OPENSSL_cleanse(kr, sizeof *kr);
    sr_free(kr);
}

uint32_t sr_keyring_master_id(sr_keyring *kr) { return kr->master.id; }
const sr_keys *sr_keyring_keys(sr_keyring *kr) { return &kr->keys; }

/* ---- changes (under the exclusive lock) --------------------------------- */

static int fresh_id(sr_keyring *kr, uint32_t *id)
{
    for (int tries = 0; tries < 64; tries++) {
        uint32_t v;
        int rc = sr_random(&v, sizeof v);
        if (rc) return rc;
        if (v && v != kr->master.id && !find(kr, v)) return *id = v, SR_OK;
    }
    return SR_ECRYPTO; /* 64 collisions in 2^32: the random source is broken */
}

/* Append a new key of (op, cls, epoch) and save; on failure nothing changed
 * in memory. retire: the entry to retire in the same write (or NULL). */
static int add_key(sr_keyring *kr, const char *op, int cls, uint32_t epoch, int64_t now, ent *retire, ent **out)
{
    if (strlen(op) > SR_KEYRING_OP_MAX || cls < SR_KC_DATA || cls > SR_KC_CONFIG) return SR_EINVAL;
    if (sr_array_reserve(&kr->e, &kr->cap, kr->n + 1, sizeof *kr->e)) return SR_ENOMEM;
    ent *x = ent_new();
    if (!x) return SR_ENOMEM;
    int rc = fresh_id(kr, &x->info.id);
    x->info.epoch = epoch;
    x->info.alg = SR_ALG_AES_256_GCM;
    x->info.cls = (uint8_t)cls;
    x->info.state = SR_KS_ACTIVE;
    x->info.created_ms = now;
    snprintf(x->info.operator_id, sizeof x->info.operator_id, "%s", op);
    if (!rc) rc = sr_random(x->key, SR_KEY_LEN);
    if (!rc) rc = wrap(&kr->master, x);
    if (rc) {
        ent_free(x);
        return rc;
    }
    sr_keyinfo before;
    if (retire) {
        before = retire->info;
        retire->info.state = SR_KS_RETIRED;
        retire->info.retired_ms = now < retire->info.created_ms ? retire->info.created_ms : now;
    }
    kr->e[kr->n++] = x;
    if ((rc = save(kr, &kr->master, kr->e, kr->n))) {
        kr->n--;
        if (retire) retire->info = before;
        ent_free(x);
        return rc;
    }
    *out = x;
    return SR_OK;
}

int sr_keyring_current(sr_keyring *kr, const char *operator_id, int cls, int64_t now_ms, uint32_t *id, int *created,
                       sr_keyinfo *info)
{
    if (!kr || !operator_id || !id) return SR_EINVAL;
    pthread_rwlock_rdlock(&kr->lock);
    ent *x = find_active(kr, operator_id, cls);
    if (x) {
        *id = x->info.id;
        if (info) *info = x->info;
    }
    pthread_rwlock_unlock(&kr->lock);
    if (created) *created = 0;
    if (x) return SR_OK;
    pthread_rwlock_wrlock(&kr->lock);
    int rc = SR_OK;
    if (!(x = find_active(kr, operator_id, cls))) {
        uint32_t epoch = 0;
        for (size_t i = 0; i < kr->n; i++)
            if (kr->e[i]->info.cls == cls && !strcmp(kr->e[i]->info.operator_id, operator_id) &&
                kr->e[i]->info.epoch > epoch)
                epoch = kr->e[i]->info.epoch;
        if (!(rc = add_key(kr, operator_id, cls, epoch + 1, now_ms, NULL, &x)) && created) *created = 1;
    }
    if (!rc) {
        *id = x->info.id;
        if (info) *info = x->info;
        SR_INVARIANT(check_entries(kr->master.id, kr->e, kr->n));
    }
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int sr_keyring_active(sr_keyring *kr, const char *operator_id, int cls, uint32_t *id)
{
    pthread_rwlock_rdlock(&kr->lock);
    ent *x = find_active(kr, operator_id, cls);
    if (x) *id = x->info.id;
    pthread_rwlock_unlock(&kr->lock);
    return x ? SR_OK : SR_ENOTFOUND;
}

int sr_keyring_rotate(sr_keyring *kr, const char *operator_id, int cls, int64_t now_ms, sr_keyinfo *info)
{
    if (!kr || !operator_id) return SR_EINVAL;
    pthread_rwlock_wrlock(&kr->lock);
    ent *old = find_active(kr, operator_id, cls), *x = NULL;
    uint32_t epoch = 0;
    for (size_t i = 0; i < kr->n; i++)
        if (kr->e[i]->info.cls == cls && !strcmp(kr->e[i]->info.operator_id, operator_id) &&
            kr->e[i]->info.epoch > epoch)
            epoch = kr->e[i]->info.epoch;
    int rc = add_key(kr, operator_id, cls, epoch + 1, now_ms, old, &x);
    if (!rc && info) *info = x->info;
    if (!rc) SR_INVARIANT(check_entries(kr->master.id, kr->e, kr->n));
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

uint64_t sr_keyring_generation(sr_keyring *kr)
{
    return kr ? atomic_load_explicit(&kr->gen, memory_order_acquire) : 0;
}

int sr_keyring_destroy(sr_keyring *kr, uint32_t id, int64_t now_ms)
{
    if (!kr) return SR_EINVAL;
    pthread_rwlock_wrlock(&kr->lock);
    ent *x = find(kr, id);
    int rc = !x ? SR_ENOTFOUND : x->info.state == SR_KS_ACTIVE ? SR_EINVAL : SR_OK;
    if (!rc && x->info.state != SR_KS_DESTROYED) {
        sr_keyinfo before = x->info;
        x->info.state = SR_KS_DESTROYED;
        x->info.destroyed_ms = now_ms > 0 ? now_ms : 1;
        if ((rc = save(kr, &kr->master, kr->e, kr->n))) {
            x->info = before; /* the file may or may not hold the tombstone; the key stays usable until it does */
        } else {
            OPENSSL_cleanse(x->key, sizeof x->key);
            OPENSSL_cleanse(x->wrapped, sizeof x->wrapped);
            pthread_mutex_lock(&x->mu);
            sr_aead_destroy(x->aead);
            x->aead = NULL;
            pthread_mutex_unlock(&x->mu);
            atomic_fetch_add_explicit(&kr->gen, 1, memory_order_release); /* after the key is gone */
            SR_INVARIANT(check_entries(kr->master.id, kr->e, kr->n));
        }
    }
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int sr_keyring_rewrap(sr_keyring *kr, const sr_key *new_master, int keep_old, int64_t now_ms)
{
    if (!kr || !new_master) return SR_EINVAL;
    pthread_rwlock_wrlock(&kr->lock);
    int rc = SR_OK;
    size_t n = kr->n;
    ent **e = sr_calloc(n + 1, sizeof *e);
    if (!e) rc = SR_ENOMEM;
    if (!rc && new_master->id == kr->master.id) rc = SR_EEXIST;
    for (size_t i = 0; i < n && !rc; i++)
        if (kr->e[i]->info.id == new_master->id) rc = SR_EEXIST; /* 2^-32: name it rather than shadow it */
    /* copies, sealed under the new master; the live entries change only once the file is written */
    for (size_t i = 0; i < n && !rc; i++) {
        if (!(e[i] = ent_new())) {
            rc = SR_ENOMEM;
            break;
        }
        e[i]->info = kr->e[i]->info;
        memcpy(e[i]->key, kr->e[i]->key, SR_KEY_LEN);
        if (e[i]->info.state != SR_KS_DESTROYED) rc = wrap(new_master, e[i]);
    }
    size_t m = n;
    if (!rc && keep_old && !find(kr, kr->master.id)) {
        if (!(e[m] = ent_new())) rc = SR_ENOMEM;
        if (!rc) {
            e[m]->info = (sr_keyinfo){.id = kr->master.id, .epoch = 1, .alg = SR_ALG_AES_256_GCM, .cls = SR_KC_LEGACY,
                                      .state = SR_KS_RETIRED, .created_ms = now_ms, .retired_ms = now_ms};
            memcpy(e[m]->key, kr->master.bytes, SR_KEY_LEN);
            rc = wrap(new_master, e[m]);
            m++;
        }
    }
    if (!rc && !(rc = check_entries(new_master->id, e, m) ? SR_EINVAL : SR_OK))
        rc = save(kr, new_master, e, m);
    if (!rc) {
        for (size_t i = 0; i < n; i++) ent_free(kr->e[i]);
        sr_free(kr->e);
        kr->e = e, kr->n = m, kr->cap = n + 1;
        kr->master = *new_master;
        SR_INVARIANT(check_entries(kr->master.id, kr->e, kr->n));
    } else if (e) {
        for (size_t i = 0; i <= n; i++) ent_free(e[i]);
        sr_free(e);
    }
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int sr_keyring_list(sr_keyring *kr, sr_keyinfo **out, size_t *n)
{
    pthread_rwlock_rdlock(&kr->lock);
    sr_keyinfo *v = sr_malloc((kr->n ? kr->n : 1) * sizeof *v);
    if (v)
        for (size_t i = 0; i < kr->n; i++) v[i] = kr->e[i]->info;
    *n = kr->n;
    pthread_rwlock_unlock(&kr->lock);
    if (!v) return SR_ENOMEM;
    *out = v;
    return SR_OK;
}

int sr_keyring_info(sr_keyring *kr, uint32_t id, sr_keyinfo *out)
{
    pthread_rwlock_rdlock(&kr->lock);
    ent *x = find(kr, id);
    if (x) *out = x->info;
    pthread_rwlock_unlock(&kr->lock);
    return x ? SR_OK : SR_ENOTFOUND;
}

int sr_keyring_export(sr_keyring *kr, sr_buf *out)
{
    pthread_rwlock_rdlock(&kr->lock);
    int rc = serialize(&kr->master, kr->e, kr->n, out);
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

int sr_keyring_import(sr_keyring *kr, const void *p, size_t n, const sr_key *other, size_t *added, sr_errinfo *err)
{
    if (added) *added = 0;
    ent **in = NULL;
    size_t nin = 0;
    uint32_t mid = 0;
    const char *why = NULL;
    int rc = parse(p, n, &mid, &in, &nin, &why);
    if (rc) {
        set_err(err, rc, "", "the key export: %s", why ? why : sr_strerror(rc));
        return rc;
    }
    pthread_rwlock_wrlock(&kr->lock);
    const sr_key *wrapper = mid == kr->master.id ? &kr->master : other && other->id == mid ? other : NULL;
    if (!wrapper) {
        rc = SR_EKEY;
        set_err(err, rc, "", "the key export is wrapped by master key 0x%08x; this keyring's is 0x%08x (give the export's "
                     "master to import it)",
                     mid, kr->master.id);
    }
    size_t old_n = kr->n, nadd = 0;
    for (size_t i = 0; i < nin && !rc; i++) {
        ent *x = in[i];
        if (x->info.state != SR_KS_DESTROYED && (rc = unwrap(wrapper, x))) {
            set_err(err, rc, "", "the key export: the entry of key 0x%08x does not authenticate", x->info.id);
            break;
        }
        ent *have = find(kr, x->info.id);
        if (have) {
            if (have->info.epoch != x->info.epoch || have->info.cls != x->info.cls ||
                strcmp(have->info.operator_id, x->info.operator_id) || have->info.created_ms != x->info.created_ms) {
                rc = SR_EEXIST;
                set_err(err, rc, "", "the key export: key 0x%08x differs from the keyring's entry of that id", x->info.id);
            }
            continue; /* held already (a destruction here stays one) */
        }
        if (x->info.id == kr->master.id) continue; /* the current master, as a legacy entry of an older keyring */
        /* an imported key of a pair that has an active key here opens old records only */
        if (x->info.state == SR_KS_ACTIVE && x->info.cls != SR_KC_LEGACY) {
            ent *act = find_active(kr, x->info.operator_id, x->info.cls);
            if (act) {
                if (act->info.epoch > x->info.epoch) {
                    x->info.state = SR_KS_RETIRED;
                    x->info.retired_ms = act->info.created_ms > x->info.created_ms ? act->info.created_ms
                                                                                    : x->info.created_ms;
                } else {
                    rc = SR_EEXIST;
                    set_err(err, rc, "",
                            "the key export: key 0x%08x is a later epoch of a pair whose active key here is 0x%08x",
                            x->info.id, act->info.id);
                    break;
                }
            }
        }
        if (sr_array_reserve(&kr->e, &kr->cap, kr->n + 1, sizeof *kr->e)) {
            rc = SR_ENOMEM;
            break;
        }
        if (x->info.state != SR_KS_DESTROYED && (rc = wrap(&kr->master, x))) break;
        kr->e[kr->n++] = x;
        in[i] = NULL;
        nadd++;
    }
    if (!rc && check_entries(kr->master.id, kr->e, kr->n)) {
        rc = SR_EEXIST;
        set_err(err, rc, "", "the key export conflicts with the keyring (invariant %s)",
                check_entries(kr->master.id, kr->e, kr->n));
    }
    if (!rc && nadd) rc = save(kr, &kr->master, kr->e, kr->n);
    if (rc) {
        for (size_t i = old_n; i < kr->n; i++) ent_free(kr->e[i]);
        kr->n = old_n;
    } else if (added)
        *added = nadd;
    if (!rc) SR_INVARIANT(check_entries(kr->master.id, kr->e, kr->n));
    pthread_rwlock_unlock(&kr->lock);
    for (size_t i = 0; i < nin; i++) ent_free(in[i]);
    sr_free(in);
    return rc;
}
