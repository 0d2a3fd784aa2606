/*
 * engine/ixseal.c -- index values sealed by the operator's data keys: the
 * contract and the value's bytes are in engine/ixseal.h.
 */
#include "engine/ixseal.h"

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "codecs/base/sr_hash.h"
#include "storage/keyring.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- the calling thread's buffers ---------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t cap;
} tbuf;

typedef struct {
    tbuf ring[SR_IXSEAL_RING];
    unsigned next;
    tbuf w; /* the value being sealed */
} tbufs;

static pthread_key_t tkey;
static pthread_once_t tonce = PTHREAD_ONCE_INIT;

static void tbufs_free(void *p)
{
    tbufs *b = p;
    if (!b) return;
    for (unsigned i = 0; i < SR_IXSEAL_RING; i++) {
        if (b->ring[i].p) OPENSSL_cleanse(b->ring[i].p, b->ring[i].cap);
        sr_free(b->ring[i].p);
    }
    sr_free(b->w.p);
    sr_free(b);
}

static void tkey_make(void) { (void)pthread_key_create(&tkey, tbufs_free); }

static tbufs *mine(void)
{
    pthread_once(&tonce, tkey_make);
    tbufs *b = pthread_getspecific(tkey);
    if (!b && (b = sr_calloc(1, sizeof *b)) && pthread_setspecific(tkey, b)) {
        sr_free(b);
        b = NULL;
    }
    return b;
}

static uint8_t *room(tbuf *t, size_t n)
{
    if (t->cap < n) {
        size_t c = t->cap ? t->cap : 256;
        while (c < n) c *= 2;
        uint8_t *p = sr_malloc(c);
        if (!p) return NULL;
        if (t->p) OPENSSL_cleanse(t->p, t->cap);
        sr_free(t->p);
        t->p = p;
        t->cap = c;
    }
    return t->p;
}

/* ---- the associated data ------------------------------------------------- */

static const char AAD_TAG[] = "suiro-ix-v1";
enum { AAD_FIXED = sizeof AAD_TAG - 1 + 1 + 5 };

static size_t aad_make(uint8_t *a, unsigned row, const uint8_t hdr[5], const MDB_val *k)
{
    memcpy(a, AAD_TAG, sizeof AAD_TAG - 1);
    a[sizeof AAD_TAG - 1] = (uint8_t)row;
    memcpy(a + sizeof AAD_TAG, hdr, 5);
    memcpy(a + AAD_FIXED, k->mv_data, k->mv_size);
    return AAD_FIXED + k->mv_size;
}

/* ---- the writer's kept values (ixseal.h invariant 7) ----------------------- */

/* A slot: the sequence (odd while the writer fills it) and the words of
 * an entry, each an atomic (a reader copies them while the writer may
 * write: a sequence lock). Words: 0 the generation, 1 row | klen << 8 |
 * n << 16 (0: empty), 2..5 the LMDB key, 6..7 key id and nonce, 8..9 the
 * tag, 10..17 the plaintext (zero-padded). */
enum { KW_GEN, KW_META, KW_KEY = 2, KW_KIDNONCE = 6, KW_TAG = 8, KW_PLAIN = 10, KW_N = 18 };
struct sr_ixseal_kept {
    _Atomic uint32_t seq;
    _Atomic uint64_t w[KW_N];
};

static void kept_clear(sr_ixseal *s)
{
    for (size_t i = 0; i < SR_IXSEAL_SHARED; i++)
        for (int j = 0; j < KW_N; j++) atomic_store_explicit(&s->kept[i].w[j], 0, memory_order_relaxed);
}

static inline unsigned slot_of(unsigned row, const MDB_val *k)
{
    return sr_hash_end(sr_hash_add(row, k->mv_data, k->mv_size));
}

/* words of n bytes at p, zero-padded to m words */
static inline void to_words(uint64_t *w, const void *p, size_t n, int m)
{
    memset(w, 0, (size_t)m * 8);
    memcpy(w, p, n);
}

/* the writer, after sealing plain (n bytes) at k into v (its sealed bytes) */
static void kept_put(sr_ixseal *s, unsigned row, const MDB_val *k, const uint8_t *v, const void *plain, size_t n,
                     uint64_t gen)
{
    struct sr_ixseal_kept *x = &s->kept[slot_of(row, k) & (SR_IXSEAL_SHARED - 1)];
    uint64_t w[KW_N];
    w[KW_GEN] = gen;
    w[KW_META] = row | (uint64_t)k->mv_size << 8 | (uint64_t)n << 16;
    to_words(w + KW_KEY, k->mv_data, k->mv_size, 4);
    memcpy(w + KW_KIDNONCE, v + 1, 16);
    memcpy(w + KW_TAG, v + SR_IXSEAL_HDR + n, 16);
    to_words(w + KW_PLAIN, plain, n, 8);
    uint32_t q = atomic_load_explicit(&x->seq, memory_order_relaxed);
    atomic_store_explicit(&x->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int j = 0; j < KW_N; j++) atomic_store_explicit(&x->w[j], w[j], memory_order_relaxed);
    atomic_store_explicit(&x->seq, q + 2, memory_order_release);
    OPENSSL_cleanse(w + KW_PLAIN, 64);
}

/* a reader: the plaintext of the sealed value v (n bytes of plaintext) at
 * k into o, if the writer kept it; 1 if so */
static int kept_get(const sr_ixseal *s, unsigned row, const MDB_val *k, const uint8_t *v, size_t n, uint64_t gen,
                    uint8_t *o)
{
    struct sr_ixseal_kept *x = &s->kept[slot_of(row, k) & (SR_IXSEAL_SHARED - 1)];
    uint64_t w[KW_N], want[KW_PLAIN];
    uint32_t q = atomic_load_explicit(&x->seq, memory_order_acquire);
    if (q & 1) return 0;
    for (int j = 0; j < KW_N; j++) w[j] = atomic_load_explicit(&x->w[j], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&x->seq, memory_order_relaxed) != q) return 0; /* torn */
    want[KW_GEN] = gen;
    want[KW_META] = row | (uint64_t)k->mv_size << 8 | (uint64_t)n << 16;
    to_words(want + KW_KEY, k->mv_data, k->mv_size, 4);
    memcpy(want + KW_KIDNONCE, v + 1, 16);
    memcpy(want + KW_TAG, v + SR_IXSEAL_HDR + n, 16);
    if (memcmp(w, want, sizeof want)) return 0;
    memcpy(o, w + KW_PLAIN, n);
    OPENSSL_cleanse(w + KW_PLAIN, 64);
    return 1;
}

/* ---- attach --------------------------------------------------------------- */

int sr__ixseal_attach(sr_index *ix, sr_ixseal *s, void *keyring)
{
    MDB_env *env = sr_index_env(ix);
    if (!s) return sr_index_err(mdb_env_set_userctx(env, NULL));
    for (size_t i = 0; i < sizeof s->row_of_dbi / sizeof *s->row_of_dbi; i++) s->row_of_dbi[i] = -1;
    for (unsigned r = 0; r < SR_INDEX_MAX_DBS; r++) {
        if (!s->sealed[r]) continue;
        MDB_dbi d = sr_index_dbi(ix, r);
        if (d >= sizeof s->row_of_dbi / sizeof *s->row_of_dbi) return SR_EINVAL;
        s->row_of_dbi[d] = (int16_t)r;
    }
    s->keyring = keyring;
    if (!s->kept) s->kept = sr_calloc(SR_IXSEAL_SHARED, sizeof *s->kept); /* NULL: without invariant 7 */
    else kept_clear(s);
    static _Atomic uint64_t serials;
    s->serial = atomic_fetch_add(&serials, 1) + 1;
    int rc = sr_random(s->prefix, sizeof s->prefix);
    if (rc) return rc;
    atomic_store(&s->ctr, 0);
    return sr_index_err(mdb_env_set_userctx(env, s));
}

static inline const sr_ixseal *of_txn(MDB_txn *t, MDB_dbi d, int *row)
{
    const sr_ixseal *s = mdb_env_get_userctx(mdb_txn_env(t));
    if (!s || d >= sizeof s->row_of_dbi / sizeof *s->row_of_dbi || s->row_of_dbi[d] < 0) return NULL;
    *row = s->row_of_dbi[d];
    return s;
}

/* ---- open ----------------------------------------------------------------- */

/* the calling thread's cache of small opened values (ixseal.h invariant 6):
 * the hit path is a hash, fixed-size word compares and a fixed-size copy (no
 * libc call), so that a cached row costs the plain index's read and little
 * more (docs/keys.md "the latest lookup's cache") */
enum { OC_SLOTS = 256, OC_KEY = 32, OC_VALUE = 64 };
typedef struct {
    uint64_t serial, gen; /* serial 0: empty */
    uint8_t row, klen, n;
    uint8_t key[OC_KEY];            /* the LMDB key, zero-padded */
    uint8_t kidnonce[16], tag[16];  /* the sealed value's key id and nonce (its header after the form), tag */
    uint8_t plain[OC_VALUE];        /* the opened value, zero-padded */
} ocache_ent;
static __thread ocache_ent ocache[OC_SLOTS];
_Static_assert((int)OC_VALUE <= (int)SR_IXSEAL_SMALL && 4 + (int)SR_NONCE_LEN == 16 && (int)SR_TAG_LEN == 16, "the cache's fixed sizes");

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}
static inline uint64_t diff16(const uint8_t *a, const uint8_t *b)
{
    return (ld64(a) ^ ld64(b)) | (ld64(a + 8) ^ ld64(b + 8));
}
static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}
/* a's first n (<= OC_KEY) bytes equal b's: whole words, the tail by one
 * overlapping word */
static inline int eq_key(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t d = 0;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) d |= ld64(a + i) ^ ld64(b + i);
        d |= ld64(a + n - 8) ^ ld64(b + n - 8);
    } else if (n >= 4) {
        d = (uint64_t)((ld32(a) ^ ld32(b)) | (ld32(a + n - 4) ^ ld32(b + n - 4)));
    } else {
        for (size_t i = 0; i < n; i++) d |= (uint64_t)(a[i] ^ b[i]);
    }
    return d == 0;
}

/* sr__ixseal_open past the thread's cache (kept out of line: the cache's
 * hit stays a short path): the writer's kept value, else AES-GCM; then
 * the thread's cache entry ce (if any) */
static __attribute__((noinline)) int open_miss(const sr_ixseal *s, unsigned row, const MDB_val *k, const uint8_t *p,
                                               size_t n, uint8_t *o, uint64_t gen, ocache_ent *ce)
{
    /* invariant 7: a value the writer sealed and kept (the first read of a
     * changed row) */
    int rc = SR_OK;
    if (ce && s->kept && kept_get(s, row, k, p, n, gen, o)) goto opened;
    uint8_t aad[AAD_FIXED + 512];
    size_t al = aad_make(aad, row, p, k);
    char msg[160];
    atomic_fetch_add_explicit(&((sr_ixseal *)s)->nopen, 1, memory_order_relaxed);
    rc = s->keys->open(s->keys->ctx, sr_get_le32(p + 1), p + 5, aad, al, p + SR_IXSEAL_HDR, n, o,
                           p + SR_IXSEAL_HDR + n, msg, sizeof msg);
    if (rc == SR_EKEY) rc = SR_ECORRUPT; /* a key id the keyring never had: not this index's value */
    if (rc) return rc;
opened:
    if (ce) { /* gen was read before the open: a destruction since invalidates it */
        ce->serial = s->serial;
        ce->gen = gen;
        ce->row = (uint8_t)row;
        ce->klen = (uint8_t)k->mv_size;
        ce->n = (uint8_t)n;
        memset(ce->key, 0, sizeof ce->key);
        memcpy(ce->key, k->mv_data, k->mv_size);
        memcpy(ce->kidnonce, p + 1, sizeof ce->kidnonce);
        memcpy(ce->tag, p + SR_IXSEAL_HDR + n, sizeof ce->tag);
        memset(ce->plain, 0, sizeof ce->plain);
        memcpy(ce->plain, o, n);
    }
    return SR_OK;
}

int sr__ixseal_open(const sr_ixseal *s, unsigned row, const MDB_val *k, const MDB_val *v, MDB_val *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < 1) return SR_ECORRUPT;
    if (p[0] == 0) { /* form 0: plain */
        *out = (MDB_val){v->mv_size - 1, (void *)(p + 1)};
        return SR_OK;
    }
    if (p[0] != 1 || v->mv_size < SR_IXSEAL_OVER || k->mv_size > 511) return SR_ECORRUPT;
    size_t n = v->mv_size - SR_IXSEAL_OVER;
    /* a small value opens into the thread's static ring (no allocation that
     * can fail: a get's callers read a failure as "absent" in places), a
     * big one into the thread's heap ring */
    static __thread uint8_t tiny[SR_IXSEAL_RING][OC_VALUE]; /* the cache's size class: 4 KiB, stays in L1 */
    static __thread uint8_t small[SR_IXSEAL_RING][SR_IXSEAL_SMALL];
    static __thread unsigned tnext, snext;
    uint8_t *o;
    if (n <= OC_VALUE) {
        o = tiny[tnext];
        tnext = (tnext + 1) % SR_IXSEAL_RING;
    } else if (n <= SR_IXSEAL_SMALL) {
        o = small[snext];
        snext = (snext + 1) % SR_IXSEAL_RING;
    } else {
        tbufs *b = mine();
        if (!b || !(o = room(&b->ring[b->next], n))) return SR_ENOMEM;
        b->next = (b->next + 1) % SR_IXSEAL_RING;
    }
    /* invariant 6: the thread's cache of small opened values */
    uint64_t gen = sr_keyring_generation(s->keyring);
    ocache_ent *ce = NULL;
    if (n <= OC_VALUE && k->mv_size <= OC_KEY) {
        ce = &ocache[sr_hash_end(sr_hash_add(row, k->mv_data, k->mv_size)) & (OC_SLOTS - 1)];
        if (ce->serial == s->serial && ce->gen == gen && ce->row == row && ce->klen == k->mv_size && ce->n == n &&
            !(diff16(ce->kidnonce, p + 1) | diff16(ce->tag, p + SR_IXSEAL_HDR + n)) &&
            eq_key(ce->key, k->mv_data, k->mv_size)) {
            memcpy(o, ce->plain, n); /* libc's: overlapping vector moves (a fixed 64 bytes compiles to rep movs, ~40 ns) */
            *out = (MDB_val){n, o};
            return SR_OK;
        }
    }
    int rc = open_miss(s, row, k, p, n, o, gen, ce);
    if (rc) return rc;
    *out = (MDB_val){n, o};
    return SR_OK;
}

/* an LMDB code for an sr_ixseal_open failure (invariant 4) */
static int lmdb_code(int rc)
{
    switch (rc) {
    case SR_EERASED: return MDB_NOTFOUND;
    case SR_ENOMEM: return ENOMEM;
    default: return MDB_CORRUPTED;
    }
}

int sr__ixget(MDB_txn *t, MDB_dbi d, MDB_val *k, MDB_val *v)
{
    int rc = mdb_get(t, d, k, v), row;
    const sr_ixseal *s;
    if (rc || !(s = of_txn(t, d, &row))) return rc;
    if ((rc = sr__ixseal_open(s, (unsigned)row, k, v, v)) == SR_EERASED)
        atomic_fetch_add(&((sr_ixseal *)s)->nerased, 1);
    return rc ? lmdb_code(rc) : 0;
}

static int step_of(MDB_cursor_op op)
{
    switch (op) {
    case MDB_FIRST: case MDB_NEXT: case MDB_NEXT_NODUP: case MDB_SET_RANGE: return MDB_NEXT;
    case MDB_LAST: case MDB_PREV: case MDB_PREV_NODUP: return MDB_PREV;
    default: return -1; /* a named key: erased is absent */
    }
}

int sr__ixcget(MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    int row;
    const sr_ixseal *s = of_txn(mdb_cursor_txn(c), mdb_cursor_dbi(c), &row);
    MDB_val kk, vv;
    if (!s) return mdb_cursor_get(c, k, v, op);
    if (!k) k = &kk;
    if (!v) v = &vv;
    for (;;) {
        int rc = mdb_cursor_get(c, k, v, op);
        if (rc) return rc;
        rc = sr__ixseal_open(s, (unsigned)row, k, v, v);
        if (rc != SR_EERASED) return rc ? lmdb_code(rc) : 0;
        atomic_fetch_add(&((sr_ixseal *)s)->nerased, 1);
        int step = step_of(op);
        if (step < 0) return MDB_NOTFOUND;
        op = (MDB_cursor_op)step;
    }
}

/* ---- seal ----------------------------------------------------------------- */

static int seal(sr_ixseal *s, unsigned row, const MDB_val *k, MDB_val *v)
{
    static __thread uint8_t small[SR_IXSEAL_SMALL + SR_IXSEAL_OVER]; /* as in sr__ixseal_open */
    size_t n = v->mv_size;
    uint8_t *o = small;
    if (n > SR_IXSEAL_SMALL) {
        tbufs *b = mine();
        if (!b || !(o = room(&b->w, n + SR_IXSEAL_OVER))) return ENOMEM;
    }
    if (!s->kid || k->mv_size > 511) { /* invariant 2: no key known for it */
        if (s->defer && s->kid == 0 && k->mv_size <= 511) { /* invariant 5: listed, sealed once the key exists */
            uint8_t h[7];
            h[0] = (uint8_t)row;
            sr_put_le32(h + 1, s->ev);
            h[5] = (uint8_t)k->mv_size;
            h[6] = (uint8_t)(k->mv_size >> 8);
            if (sr_buf_append(&s->pend, h, 7) || sr_buf_append(&s->pend, k->mv_data, k->mv_size)) return ENOMEM;
            s->npend++;
        } else
            atomic_fetch_add(&s->nplain, 1);
        o[0] = 0;
        memcpy(o + 1, v->mv_data, n);
        *v = (MDB_val){n + 1, o};
        return 0;
    }
    o[0] = 1;
    sr_put_le32(o + 1, s->kid);
    memcpy(o + 5, s->prefix, 4);
    sr_put_le64(o + 9, atomic_fetch_add(&s->ctr, 1));
    uint8_t aad[AAD_FIXED + 512];
    size_t al = aad_make(aad, row, o, k);
    char msg[160];
    uint64_t gen = sr_keyring_generation(s->keyring); /* before the seal: a destruction since voids the kept value */
    int rc = s->keys->seal(s->keys->ctx, s->kid, o + 5, aad, al, v->mv_data, n, o + SR_IXSEAL_HDR,
                           o + SR_IXSEAL_HDR + n, msg, sizeof msg);
    if (rc) return rc == SR_ENOMEM ? ENOMEM : EIO;
    if (s->kept && n <= OC_VALUE && k->mv_size <= OC_KEY) kept_put(s, row, k, o, v->mv_data, n, gen); /* invariant 7 */
    *v = (MDB_val){n + SR_IXSEAL_OVER, o};
    return 0;
}

int sr__ixput(MDB_txn *t, MDB_dbi d, MDB_val *k, MDB_val *v, unsigned flags)
{
    int row;
    sr_ixseal *s = (sr_ixseal *)of_txn(t, d, &row);
    MDB_val sv = *v;
    int rc;
    if (s && (rc = seal(s, (unsigned)row, k, &sv))) return rc;
    return mdb_put(t, d, k, &sv, flags);
}

int sr__ixcput(MDB_cursor *c, MDB_val *k, MDB_val *v, unsigned flags)
{
    int row;
    sr_ixseal *s = (sr_ixseal *)of_txn(mdb_cursor_txn(c), mdb_cursor_dbi(c), &row);
    MDB_val sv = *v;
    int rc;
    if (s && (rc = seal(s, (unsigned)row, k, &sv))) return rc;
    return mdb_cursor_put(c, k, &sv, flags);
}

/* ---- the values of a command's first records (invariant 5) -------------- */

int sr__ixseal_flush(sr_ixseal *s, MDB_txn *txn, const uint32_t *kids, size_t n)
{
    MDB_env *env = mdb_txn_env(txn);
    (void)env;
    uint8_t *plain = NULL;
    size_t cap = 0;
    int rc = SR_OK;
    uint32_t kid = s->kid;
    s->defer = 0;
    for (size_t at = 0; at + 7 <= s->pend.len && !rc;) {
        const uint8_t *h = s->pend.data + at;
        unsigned row = h[0];
        uint32_t ev = sr_get_le32(h + 1);
        size_t kl = (size_t)h[5] | (size_t)h[6] << 8;
        MDB_val K = {kl, (void *)(h + 7)}, V;
        at += 7 + kl;
        MDB_dbi d = 0;
        for (size_t i = 0; i < sizeof s->row_of_dbi / sizeof *s->row_of_dbi; i++)
            if (s->row_of_dbi[i] == (int16_t)row) d = (MDB_dbi)i;
        int r = sr__ixget(txn, d, &K, &V);
        if (r == MDB_NOTFOUND) continue; /* deleted since */
        if (r) {
            rc = sr_index_err(r);
            break;
        }
        if (cap < V.mv_size + 1) { /* a copy: the put may move the page V points into */
            sr_free(plain);
            cap = V.mv_size + 1;
            if (!(plain = sr_malloc(cap))) {
                rc = SR_ENOMEM;
                break;
            }
        }
        memcpy(plain, V.mv_data, V.mv_size);
        V.mv_data = plain;
        s->kid = ev < n ? kids[ev] : 0;
        if (!s->kid) continue; /* no key after all (none made): it stays form 0 */
        rc = sr_index_err(sr__ixput(txn, d, &K, &V, 0));
    }
    s->kid = kid;
    if (plain) OPENSSL_cleanse(plain, cap);
    sr_free(plain);
    return rc;
}

void sr__ixseal_reset(sr_ixseal *s)
{
    s->defer = 0;
    s->pend.len = 0;
    s->npend = 0;
}

void sr__ixseal_free(sr_ixseal *s)
{
    sr_buf_release(&s->pend);
    s->npend = 0;
    if (s->kept) {
        kept_clear(s); /* the plaintexts */
        sr_free(s->kept);
        s->kept = NULL;
    }
}
