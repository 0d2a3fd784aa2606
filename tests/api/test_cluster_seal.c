/* tests/api/test_cluster_seal.c -- stream keys and sealed stream payloads
 * without NATS (api/cluster_seal.h, docs/keys.md "Cluster: stream keys"):
 * a payload's round trip; a wrong key, a changed byte anywhere, another
 * partition, operator, kind, node or seq refused (never wrong data); the
 * KV entry's wrap and unwrap (another master named, a changed byte, an entry
 * moved under another id); the store over an in-memory bucket: the first
 * node makes the key, another node (its own cache) opens with it, a lost
 * create race reads the winner's, an unknown key id, an erased key refused
 * on both sides, epochs from rotate_days and per class; an erasure recorded
 * in the log (sr_skey_erase, issue #19 ckey): intent before tombstone, its
 * result, a second erasure found done, refusals and a bucket that refuses
 * the tombstone recorded with their outcome, the audit rows, and an intent
 * left by a crash finished at the next start (after a rebuild); the
 * retention sweep's decision per key (sr_skey_retention_erase): the epochs
 * its cut passed erased once, the others kept, a value still held holds its
 * data keys. */
#include "api/cluster_seal.h"
#include "engsuite.h"
#include "engine/records.h"
#include "storage/keyring.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sr_key master(uint8_t b)
{
    uint8_t raw[SR_KEY_LEN];
    memset(raw, b, sizeof raw);
    sr_key k;
    sr_key_from_bytes(&k, raw);
    return k;
}

static const char EVENT[] = "measurement SP0001_01 = 42.125 at 2026-01-01T00:00:00Z (data id SECRET-ID-7)";

static sr_seal_ad ad0(void) { return (sr_seal_ad){3, "sim", "measurements", "a", 17}; }

Test(seal, payload_round_trip_and_every_refusal)
{
    sr_skey k, other;
    cr_assert_eq(sr_skey_make("sim", SR_KC_DATA, 5, 30, 1000, &k), SR_OK);
    cr_assert_eq(sr_skey_make("sim", SR_KC_DATA, 6, 30, 1000, &other), SR_OK);
    cr_assert_neq(k.id, other.id);
    sr_buf sealed, out;
    sr_buf_init(&sealed);
    sr_buf_init(&out);
    sr_seal_ad ad = ad0();
    cr_assert_eq(sr_seal_payload(&k, &ad, EVENT, sizeof EVENT, &sealed), SR_OK);
    cr_assert_eq(sealed.len, sizeof EVENT + SR_SEAL_OVERHEAD);
    cr_assert_eq(sr_seal_key_id(sealed.data, sealed.len), k.id);
    cr_assert_null(memmem(sealed.data, sealed.len, "SECRET-ID-7", 11), "no byte of the event in clear");
    cr_assert_null(memmem(sealed.data, sealed.len, "42.125", 6));
    char err[320];
    cr_assert_eq(sr_open_payload(&k, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(out.len, sizeof EVENT);
    cr_assert_eq(memcmp(out.data, EVENT, sizeof EVENT), 0);

    /* the wrong key: named, not opened */
    cr_assert_eq(sr_open_payload(&other, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_EKEY);
    cr_assert(strstr(err, "sealed by stream key"), "%s", err);
    /* the same id with other key bytes (a forged entry): does not authenticate */
    sr_skey forged = k;
    forged.key[0] ^= 1;
    cr_assert_eq(sr_open_payload(&forged, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_ECORRUPT);

    /* a changed byte anywhere: refused */
    for (size_t i = 0; i < sealed.len; i++) {
        sealed.data[i] ^= 0x20;
        int rc = sr_open_payload(&k, &ad, sealed.data, sealed.len, &out, err, sizeof err);
        cr_assert(rc == SR_ECORRUPT || rc == SR_EKEY, "byte %zu changed: %d", i, rc);
        sealed.data[i] ^= 0x20;
    }
    /* truncated */
    cr_assert_neq(sr_open_payload(&k, &ad, sealed.data, SR_SEAL_OVERHEAD - 1, &out, err, sizeof err), SR_OK);
    cr_assert_neq(sr_open_payload(&k, &ad, sealed.data, sealed.len - 1, &out, err, sizeof err), SR_OK);
    /* other associated data: each field */
    sr_seal_ad bad[] = {{4, "sim", "measurements", "a", 17},  {3, "opk", "measurements", "a", 17},
                        {3, "sim", "doc_put", "a", 17},      {3, "sim", "measurements", "b", 17},
                        {3, "sim", "measurements", "a", 18}, {3, "", "measurements", "a", 17}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(sr_open_payload(&k, &bad[i], sealed.data, sealed.len, &out, err, sizeof err), SR_ECORRUPT,
                     "ad %zu: moved to another partition, operator, kind, node or seq", i);
    /* a destroyed key opens nothing */
    sr_skey gone = k;
    gone.state = SR_SKEY_DESTROYED;
    memset(gone.key, 0, sizeof gone.key);
    cr_assert_eq(sr_open_payload(&gone, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_EERASED);
    cr_assert(strstr(err, "destroyed"), "%s", err);
    cr_assert_eq(sr_seal_payload(&gone, &ad, EVENT, sizeof EVENT, &sealed), SR_EERASED);
    /* a plaintext payload is not a sealed one */
    cr_assert_eq(sr_seal_key_id(EVENT, sizeof EVENT), 0);
    cr_assert_eq(sr_open_payload(&k, &ad, EVENT, sizeof EVENT, &out, err, sizeof err), SR_ECORRUPT);
    sr_buf_release(&sealed);
    sr_buf_release(&out);
}

Test(seal, kv_entry_wrap_unwrap)
{
    sr_key m1 = master(1), m2 = master(2);
    sr_skey k, u;
    cr_assert_eq(sr_skey_make("opk", SR_KC_AUDIT, 2, 7, 123456, &k), SR_OK);
    sr_buf v;
    sr_buf_init(&v);
    cr_assert_eq(sr_skey_wrap(&m1, &k, &v), SR_OK);
    cr_assert_null(memmem(v.data, v.len, k.key, SR_KEY_LEN), "the key is wrapped, never in clear");
    char err[320];
    cr_assert_eq(sr_skey_unwrap(&m1, v.data, v.len, &u, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(memcmp(u.key, k.key, SR_KEY_LEN), 0);
    cr_assert_eq(u.id, k.id);
    cr_assert_str_eq(u.op, "opk");
    cr_assert_eq(u.cls, SR_KC_AUDIT);
    cr_assert_eq(u.epoch, 2);
    cr_assert_eq(u.period_days, 7);
    cr_assert_eq(u.created_ms, 123456);
    /* another master: named */
    cr_assert_eq(sr_skey_unwrap(&m2, v.data, v.len, &u, err, sizeof err), SR_EKEY);
    char want[16];
    snprintf(want, sizeof want, "%08x", m1.id);
    cr_assert(strstr(err, want) && strstr(err, "same key_file"), "names the master it needs: %s", err);
    /* every changed byte: refused (or, for the state byte, not active any more) */
    for (size_t i = 0; i < v.len; i++) {
        v.data[i] ^= 0x01;
        int rc = sr_skey_unwrap(&m1, v.data, v.len, &u, err, sizeof err);
        cr_assert(rc != SR_OK || u.state != SR_SKEY_ACTIVE || (i >= 40 && i < 48),
                  "byte %zu changed, still opened", i);
        if (rc == SR_OK && u.state == SR_SKEY_ACTIVE) cr_assert_eq(memcmp(u.key, k.key, SR_KEY_LEN), 0);
        v.data[i] ^= 0x01;
    }
    for (size_t n = 0; n < v.len; n++) cr_assert_neq(sr_skey_unwrap(&m1, v.data, n, &u, err, sizeof err), SR_OK);
    /* the tombstone: no key bytes */
    k.state = SR_SKEY_DESTROYED;
    k.destroyed_ms = 999;
    cr_assert_eq(sr_skey_wrap(&m1, &k, &v), SR_OK);
    cr_assert_null(memmem(v.data, v.len, k.key, SR_KEY_LEN));
    cr_assert_eq(sr_skey_unwrap(&m2, v.data, v.len, &u, err, sizeof err), SR_OK, "a tombstone needs no master");
    cr_assert_eq(u.state, SR_SKEY_DESTROYED);
    cr_assert_eq(u.destroyed_ms, 999);
    sr_buf_release(&v);
}

Test(seal, epochs_and_ids)
{
    int64_t day = 86400000;
    cr_assert_eq(sr_skey_epoch(SR_KC_DATA, 0, 30), 1);
    cr_assert_eq(sr_skey_epoch(SR_KC_DATA, 30 * day - 1, 30), 1);
    cr_assert_eq(sr_skey_epoch(SR_KC_DATA, 30 * day, 30), 2);
    cr_assert_eq(sr_skey_epoch(SR_KC_AUDIT, 61 * day, 30), 3);
    cr_assert_eq(sr_skey_epoch(SR_KC_CONFIG, 61 * day, 30), 1, "config keys never rotate");
    cr_assert_eq(sr_skey_epoch(SR_KC_DATA, 61 * day, 0), 1, "rotate_days 0: one epoch");
    int64_t f, t;
    sr_skey_epoch_range(SR_KC_DATA, 2, 30, &f, &t);
    cr_assert(f == 30 * day && t == 60 * day);
    cr_assert_neq(sr_skey_id("sim", SR_KC_DATA, 1, 30), sr_skey_id("sim", SR_KC_AUDIT, 1, 30));
    cr_assert_neq(sr_skey_id("sim", SR_KC_DATA, 1, 30), sr_skey_id("sim", SR_KC_DATA, 2, 30));
    cr_assert_neq(sr_skey_id("sim", SR_KC_DATA, 1, 30), sr_skey_id("sil", SR_KC_DATA, 1, 30));
    cr_assert_eq(sr_skey_id("sim", SR_KC_DATA, 1, 30), sr_skey_id("sim", SR_KC_DATA, 1, 30), "deterministic");
    cr_assert_eq(sr_event_kind_key_class("measurements"), SR_KC_DATA);
    cr_assert_eq(sr_event_kind_key_class("session"), SR_KC_AUDIT);
    cr_assert_eq(sr_event_kind_key_class("master_put"), SR_KC_CONFIG);
    cr_assert_eq(sr_event_kind_key_class("point_alias"), SR_KC_CONFIG);
    cr_assert_eq(sr_event_kind_key_class("no_such_kind"), -1);
}

/* ---- the store over an in-memory bucket ---- */

typedef struct mkv {
    char key[16][24];
    sr_buf val[16];
    int n, gets, fail, fail_put, puts, lose_race;
    sr_buf racer; /* lose_race: this is put first by "another node" */
} mkv;

static int m_find(mkv *m, const char *key)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) return i;
    return -1;
}
static int m_get(void *ctx, const char *key, sr_buf *val)
{
    mkv *m = ctx;
    m->gets++;
    if (m->fail) return SR_EIO;
    int i = m_find(m, key);
    if (i < 0) return SR_ENOTFOUND;
    val->len = 0;
    return sr_buf_append(val, m->val[i].data, m->val[i].len);
}
static int m_put(void *ctx, const char *key, const void *p, size_t n)
{
    mkv *m = ctx;
    if (m->fail || m->fail_put) return SR_EIO;
    m->puts++;
    int i = m_find(m, key);
    if (i < 0) {
        i = m->n++;
        snprintf(m->key[i], sizeof m->key[i], "%s", key);
        sr_buf_init(&m->val[i]);
    }
    m->val[i].len = 0;
    return sr_buf_append(&m->val[i], p, n);
}
static int m_create(void *ctx, const char *key, const void *p, size_t n)
{
    mkv *m = ctx;
    if (m->fail) return SR_EIO;
    if (m->lose_race) {
        m->lose_race = 0;
        cr_assert_eq(m_put(m, key, m->racer.data, m->racer.len), SR_OK);
    }
    if (m_find(m, key) >= 0) return SR_EEXIST;
    return m_put(m, key, p, n);
}
static void m_free(mkv *m)
{
    for (int i = 0; i < m->n; i++) sr_buf_release(&m->val[i]);
    sr_buf_release(&m->racer);
}

Test(seal, store_two_nodes_race_unknown_and_erasure)
{
    mkv m = {0};
    sr_skv kv = {&m, m_get, m_create, m_put};
    sr_key mk = master(7);
    sr_skeys *a = NULL, *b = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &a), SR_OK);
    cr_assert_eq(sr_skeys_new(&mk, 30, &b), SR_OK);
    int64_t t = 1767225600000; /* 2026-01-01 */
    sr_seal_ad ad = ad0();
    sr_buf p1, p2, out;
    sr_buf_init(&p1);
    sr_buf_init(&p2);
    sr_buf_init(&out);
    char err[320];
    uint64_t id1 = 0, id2 = 0;
    /* A makes the key of (sim, data, epoch of t) and seals */
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t, EVENT, sizeof EVENT, &p1, &id1, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(m.n, 1, "one key in the bucket");
    cr_assert_eq(id1, sr_skey_id("sim", SR_KC_DATA, sr_skey_epoch(SR_KC_DATA, t, 30), 30));
    cr_assert_null(memmem(m.val[0].data, m.val[0].len, "SECRET", 6));
    /* the same epoch again: the cached key, no bucket call */
    int gets = m.gets;
    ad.seq = 18;
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t + 1000, EVENT, sizeof EVENT, &p2, &id2, err, sizeof err), SR_OK);
    cr_assert_eq(id2, id1);
    cr_assert_eq(m.gets, gets);
    cr_assert_neq(memcmp(p1.data + 14, p2.data + 14, SR_NONCE_LEN), 0, "a nonce per payload");
    /* B (its own cache) opens both: fetches the key once */
    ad.seq = 17;
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(memcmp(out.data, EVENT, sizeof EVENT), 0);
    gets = m.gets;
    ad.seq = 18;
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, p2.data, p2.len, &out, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(m.gets, gets, "cached");
    /* a key of another operator does not open this operator's message */
    sr_seal_ad other = {3, "opk", "measurements", "a", 18};
    cr_assert_eq(sr_skeys_open(b, &kv, &other, p2.data, p2.len, &out, err, sizeof err), SR_EKEY);
    /* the next epoch: another key */
    uint64_t id3 = 0;
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t + 30 * 86400000ll, EVENT, sizeof EVENT, &p2, &id3, err, sizeof err),
                 SR_OK);
    cr_assert_neq(id3, id1);
    cr_assert_eq(m.n, 2);
    /* a lost race: B's create finds the winner's entry and seals with it */
    sr_skey win;
    uint32_t ep = sr_skey_epoch(SR_KC_AUDIT, t, 30);
    cr_assert_eq(sr_skey_make("sim", SR_KC_AUDIT, ep, 30, t, &win), SR_OK);
    cr_assert_eq(sr_skey_wrap(&mk, &win, &m.racer), SR_OK);
    m.lose_race = 1;
    sr_seal_ad aud = {3, "sim", "session", "b", 5};
    uint64_t id4 = 0;
    cr_assert_eq(sr_skeys_seal(b, &kv, &aud, t, EVENT, sizeof EVENT, &p2, &id4, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(id4, win.id);
    cr_assert_eq(sr_open_payload(&win, &aud, p2.data, p2.len, &out, err, sizeof err), SR_OK,
                 "sealed with the winner's key: %s", err);
    /* an unknown key id: not found, named */
    sr_skeys *c = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &c), SR_OK);
    p1.data[5] ^= 0x55; /* the key id's bytes */
    ad.seq = 17;
    cr_assert_eq(sr_skeys_open(c, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_ENOTFOUND);
    cr_assert(strstr(err, "not in the keys' bucket"), "%s", err);
    p1.data[5] ^= 0x55;
    /* the bucket down: an I/O error, not a refusal */
    m.fail = 1;
    cr_assert_eq(sr_skeys_open(c, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_EIO);
    m.fail = 0;
    /* another master: refused, named */
    sr_key mk2 = master(8);
    sr_skeys *d = NULL;
    cr_assert_eq(sr_skeys_new(&mk2, 30, &d), SR_OK);
    cr_assert_eq(sr_skeys_open(d, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_EKEY);
    /* erasure: the tombstone replaces the entry; no node opens that epoch any more, nor seals in it */
    sr_skey info;
    cr_assert_eq(sr_skeys_destroy(c, &kv, id1, t + 99, &info, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(info.state, SR_SKEY_DESTROYED);
    cr_assert_eq(info.epoch, sr_skey_epoch(SR_KC_DATA, t, 30));
    char kk[24];
    sr_skeys_kv_key(id1, kk);
    int at = m_find(&m, kk);
    cr_assert_geq(at, 0);
    sr_skey u;
    cr_assert_eq(sr_skey_unwrap(&mk, m.val[at].data, m.val[at].len, &u, err, sizeof err), SR_OK);
    cr_assert_eq(u.state, SR_SKEY_DESTROYED, "the bucket holds only the tombstone");
    sr_skeys *e = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &e), SR_OK);
    cr_assert_eq(sr_skeys_open(e, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_EERASED);
    cr_assert(strstr(err, "destroyed"), "%s", err);
    cr_assert_eq(sr_skeys_seal(e, &kv, &ad, t, EVENT, sizeof EVENT, &p2, &id2, err, sizeof err), SR_EERASED,
                 "nothing is sealed again under a new key of an erased epoch");
    cr_assert_eq(sr_skeys_seal(c, &kv, &ad, t, EVENT, sizeof EVENT, &p2, &id2, err, sizeof err), SR_EERASED,
                 "the destroying node's cache forgot the key");
    cr_assert_eq(sr_skeys_destroy(e, &kv, id1, t + 100, NULL, err, sizeof err), SR_OK, "idempotent");
    /* a node that cached the key before: within its TTL it still opens (at most SR_SKEYS_TTL_MS), then reads
     * the bucket again and refuses */
    ad.seq = 17;
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_OK, "%s", err);
    sr_skeys_set_ttl(b, 0);
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, p1.data, p1.len, &out, err, sizeof err), SR_EERASED);
    sr_skeys_free(a);
    sr_skeys_free(b);
    sr_skeys_free(c);
    sr_skeys_free(d);
    sr_skeys_free(e);
    sr_buf_release(&p1);
    sr_buf_release(&p2);
    sr_buf_release(&out);
    m_free(&m);
}

/* The layout against an independent writer: tests/fuzz/origin/sealed.bin was
 * sealed by tests/fuzz/origin_sealed.py (Python's cryptography, from the
 * bytes docs/keys.md describes) and opens here to snapshot.bin; so does
 * fuzz_origin's corpus. */
static sr_buf slurp(const char *path)
{
    sr_buf b;
    sr_buf_init(&b);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) cr_assert_eq(sr_buf_append(&b, chunk, k), SR_OK);
    fclose(f);
    return b;
}

Test(seal, golden_vector_of_an_independent_writer)
{
    sr_buf sealed = slurp(SR_TEST_DATA "/../fuzz/origin/sealed.bin");
    sr_buf plain = slurp(SR_TEST_DATA "/../fuzz/origin/snapshot.bin");
    sr_skey k;
    memset(&k, 0, sizeof k);
    k.id = sr_skey_id("sim", SR_KC_DATA, 1, 0);
    k.alg = SR_ALG_AES_256_GCM;
    k.cls = SR_KC_DATA;
    k.state = SR_SKEY_ACTIVE;
    k.epoch = 1;
    snprintf(k.op, sizeof k.op, "sim");
    memset(k.key, 0x22, sizeof k.key);
    cr_assert_eq(k.id, 0x58c6bb01ecb971bdull, "the id's derivation: %016llx", (unsigned long long)k.id);
    sr_seal_ad ad = {0, "sim", "measurements", "fz", 1};
    sr_buf out;
    sr_buf_init(&out);
    char err[320];
    cr_assert_eq(sr_open_payload(&k, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(out.len, plain.len);
    cr_assert_eq(memcmp(out.data, plain.data, plain.len), 0);
    sr_buf_release(&sealed);
    sr_buf_release(&plain);
    sr_buf_release(&out);
}

/* ---- an erasure recorded in the log (issue #19 ckey) ---- */

typedef struct erows {
    sr_audit_rec r[16];
    sr_audit_holder h[16];
    int n;
} erows;

static int collect_erase(void *ctx, const sr_event_view *v)
{
    erows *x = ctx;
    if (strcmp(v->kind, "stream_key_erase") || x->n == 16) return 0;
    cr_assert_eq(sr_event_audit(v, &x->h[x->n], &x->r[x->n]), 1, "a stream key's erasure is in the audit trail");
    x->n++;
    return 0;
}

static int count_open(void *ctx, uint64_t id, uint64_t seq, const char *why)
{
    (void)id;
    (void)seq;
    cr_assert_str_eq(why, "retention");
    (*(int *)ctx)++;
    return 0;
}

static int entry_state(mkv *m, uint64_t id)
{
    char kk[24];
    sr_skeys_kv_key(id, kk);
    int at = m_find(m, kk);
    cr_assert_geq(at, 0);
    sr_skey u;
    char err[320];
    sr_key none;
    memset(&none, 0, sizeof none);
    int rc = sr_skey_unwrap(&none, m->val[at].data, m->val[at].len, &u, err, sizeof err);
    cr_assert(rc == SR_OK || rc == SR_EKEY, "%s", err);
    return u.state;
}

Test(seal, erasure_recorded_in_the_log_and_finished_at_start)
{
    char *dir = NULL;
    sr_engine *e = es_open(&dir, "skerase", NULL);
    mkv m = {0};
    sr_skv kv = {&m, m_get, m_create, m_put};
    sr_key mk = master(7);
    sr_skeys *a = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &a), SR_OK);
    int64_t t = 1767225600000;
    sr_seal_ad ad = ad0();
    sr_buf p;
    sr_buf_init(&p);
    char err[400];
    uint64_t id1 = 0, id2 = 0, idc = 0;
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t, EVENT, sizeof EVENT, &p, &id1, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t + 30 * 86400000ll, EVENT, sizeof EVENT, &p, &id2, err, sizeof err),
                 SR_OK, "%s", err);
    sr_seal_ad cfg = {3, "sim", "master_put", "a", 19};
    cr_assert_eq(sr_skeys_seal(a, &kv, &cfg, t, EVENT, sizeof EVENT, &p, &idc, err, sizeof err), SR_OK, "%s", err);

    /* an admin's erasure: the intent, the tombstone, the result */
    sr_skey_erase_req q = {e, "alice", SR_ACTOR_USER, "127.0.0.1:5555", "admin", 0, "n1", 0};
    sr_skey_erase_out o;
    cr_assert_eq(sr_skey_erase(a, &kv, &q, id1, t + 5, &o, err, sizeof err), SR_OK, "%s", err);
    cr_assert_str_eq(o.outcome, "done");
    cr_assert_gt(o.intent_seq, 0);
    cr_assert_gt(o.result_seq, o.intent_seq);
    cr_assert_eq(entry_state(&m, id1), SR_SKEY_DESTROYED);
    /* again: found destroyed (no second tombstone) */
    int puts = m.puts;
    cr_assert_eq(sr_skey_erase(a, &kv, &q, id1, t + 6, &o, err, sizeof err), SR_OK, "%s", err);
    cr_assert_str_eq(o.outcome, "found");
    cr_assert_eq(m.puts, puts, "a key destroyed already is not written again");
    /* refusals, recorded: no such key; a config key (left active) */
    cr_assert_eq(sr_skey_erase(a, &kv, &q, 0x1234567890abcdefull, t, &o, err, sizeof err), SR_ENOTFOUND);
    cr_assert_str_eq(o.outcome, "refused");
    cr_assert_gt(o.result_seq, 0);
    cr_assert_eq(sr_skey_erase(a, &kv, &q, idc, t, &o, err, sizeof err), SR_EINVAL);
    cr_assert(strstr(err, "never erased"), "%s", err);
    cr_assert_eq(entry_state(&m, idc), SR_SKEY_ACTIVE);
    /* the bucket refuses the tombstone: recorded as failed, the key stays */
    m.fail_put = 1;
    cr_assert_eq(sr_skey_erase(a, &kv, &q, id2, t, &o, err, sizeof err), SR_EIO);
    cr_assert_str_eq(o.outcome, "failed");
    m.fail_put = 0;
    cr_assert_eq(entry_state(&m, id2), SR_SKEY_ACTIVE);
    int open = 0;
    cr_assert_eq(sr_engine_skey_pending(e, count_open, &open), SR_OK);
    cr_assert_eq(open, 0, "every intent has its result");

    /* the writer's checks: a result without an open intent, a config class */
    sr_cmd_env env = {"sim", "alice", SR_ACTOR_USER, NULL, NULL};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    char kid[17];
    snprintf(kid, sizeof kid, "%016llx", (unsigned long long)id2);
    sr_skey_erase_rec bad = {kid, "sim", "data", 2, 30, "admin", 0, "done", "", 0, "n1"};
    cr_assert_eq(es_submit1(e, sr_cmd_skey_erase(&env, &bad, &b), &b, &r), SR_EINVAL);
    bad.intent_seq = 3;
    cr_assert_eq(es_submit1(e, sr_cmd_skey_erase(&env, &bad, &b), &b, &r), SR_EINVAL);
    bad.intent_seq = 0;
    bad.outcome = "pending";
    bad.key_class = "config";
    cr_assert_eq(es_submit1(e, sr_cmd_skey_erase(&env, &bad, &b), &b, &r), SR_EINVAL);

    /* a crash between the intent and the tombstone: the retention sweep's intent is in the log, nothing else */
    sr_cmd_env sys = {"sim", "n1", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_skey_erase_rec in = {kid, "sim", "data", 2, 30, "retention", t, "pending", "", 0, "n1"};
    cr_assert_eq(es_submit1(e, sr_cmd_skey_erase(&sys, &in, &b), &b, &r), SR_OK, "%s", r.err.msg);
    uint64_t intent = r.seq;
    open = 0;
    cr_assert_eq(sr_engine_skey_pending(e, count_open, &open), SR_OK);
    cr_assert_eq(open, 1);
    e = es_rebuilt(e, &dir, NULL); /* the open intent is a function of the log */
    open = 0;
    cr_assert_eq(sr_engine_skey_pending(e, count_open, &open), SR_OK);
    cr_assert_eq(open, 1, "the open intent survives the restart and a rebuild");
    unsigned n = 0;
    cr_assert_eq(sr_skey_erase_pending(a, &kv, e, "n1", t + 9, &n, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_eq(entry_state(&m, id2), SR_SKEY_DESTROYED, "finished at start");
    open = 0;
    cr_assert_eq(sr_engine_skey_pending(e, count_open, &open), SR_OK);
    cr_assert_eq(open, 0);

    /* the log and the audit trail: who, what, from where, the outcome */
    erows x = {0};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(e, 1, collect_erase, &x, &last), SR_OK);
    static const char *want[] = {"pending", "done", "pending", "found", "refused", "refused",
                                 "pending", "failed", "pending", "done"};
    cr_assert_eq(x.n, 10, "%d erasure events", x.n);
    for (int i = 0; i < 10; i++) {
        cr_assert_str_eq(x.r[i].outcome, want[i], "event %d: %s", i, x.r[i].outcome);
        cr_assert_str_eq(x.r[i].kind, "stream_key");
        cr_assert_str_eq(x.r[i].action, "erase");
        if (i < 8) {
            cr_assert_str_eq(x.r[i].actor, "alice");
            cr_assert_str_eq(x.r[i].source, "127.0.0.1:5555");
        }
    }
    char tgt[40];
    snprintf(tgt, sizeof tgt, "stream_key:%016llx", (unsigned long long)id1);
    cr_assert_str_eq(x.r[1].target, tgt);
    cr_assert(strstr(x.r[1].detail, "class data") && strstr(x.r[1].detail, "node n1"), "%s", x.r[1].detail);
    cr_assert_str_eq(x.r[9].actor, "n1");
    cr_assert(strstr(x.r[9].detail, "retention") && strstr(x.r[9].detail, "finished at start"), "%s",
              x.r[9].detail);
    char is[40];
    snprintf(is, sizeof is, "intent seq %llu", (unsigned long long)intent);
    cr_assert(strstr(x.r[9].detail, is), "%s", x.r[9].detail);
    sr_skeys_free(a);
    sr_buf_release(&p);
    m_free(&m);
    es_finish(e, &dir);
}

/* ---- the retention sweep of the stream keys (issue #19 ckey) ---- */

static const sr_vtype NUM1[] = {SR_VT_NUMBER};

static void put_key(mkv *m, const sr_key *mk, const char *op, int cls, uint32_t epoch, uint64_t *id)
{
    sr_skey k;
    cr_assert_eq(sr_skey_make(op, cls, epoch, 1, 1000, &k), SR_OK);
    sr_buf v;
    sr_buf_init(&v);
    cr_assert_eq(sr_skey_wrap(mk, &k, &v), SR_OK);
    char kk[24];
    sr_skeys_kv_key(k.id, kk);
    cr_assert_eq(m_create(m, kk, v.data, v.len), SR_OK);
    sr_buf_release(&v);
    *id = k.id;
}

typedef struct rcount {
    int pending, done;
    char actor[64], why[16];
} rcount;

static int count_ret(void *ctx, const sr_event_view *v)
{
    rcount *c = ctx;
    if (strcmp(v->kind, "stream_key_erase")) return 0;
    sr_audit_holder h;
    sr_audit_rec r;
    cr_assert_eq(sr_event_audit(v, &h, &r), 1);
    c->pending += !strcmp(r.outcome, "pending");
    c->done += !strcmp(r.outcome, "done");
    snprintf(c->actor, sizeof c->actor, "%s", r.actor);
    cr_assert(strstr(r.detail, "retention"), "%s", r.detail);
    return 0;
}

Test(seal, retention_erases_the_stream_keys_of_the_epochs_it_cut_once)
{
    char *dir = NULL;
    sr_engine *e = es_open(&dir, "skret", NULL);
    mkv m = {0};
    sr_skv kv = {&m, m_get, m_create, m_put};
    sr_key mk = master(9);
    sr_skeys *s = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 1, &s), SR_OK);
    sr_skeys_set_ttl(s, 0);
    int64_t now = sr_engine_now_ms(e), day = 86400000;
    uint32_t today = sr_skey_epoch(SR_KC_DATA, now, 1);
    /* epochs of 1 day: data ended 15 and 5 days ago, audit 25 and 15 days ago, a config key */
    uint64_t d15, d5, a25, a15, cf;
    put_key(&m, &mk, "sim", SR_KC_DATA, today - 15, &d15);
    put_key(&m, &mk, "sim", SR_KC_DATA, today - 5, &d5);
    put_key(&m, &mk, "sim", SR_KC_AUDIT, today - 25, &a25);
    put_key(&m, &mk, "sim", SR_KC_AUDIT, today - 15, &a15);
    put_key(&m, &mk, "sim", SR_KC_CONFIG, 1, &cf);
    (void)day;
    /* kept for ever (the defaults): nothing */
    sr_retention_cfg forever = {0};
    sr_skey_sweep_rep rep = {0};
    char err[400];
    for (int i = 0; i < m.n; i++)
        cr_assert_eq(sr_skey_retention_erase(s, &kv, e, &forever, now, "n1", m.key[i], &rep, err, sizeof err), SR_OK);
    cr_assert_eq(rep.erased, 0);
    cr_assert_eq(sr_engine_retention_cut(e, &forever, now, "sim", SR_KC_DATA), INT64_MIN);
    /* data 10 days, audit 20 days: the data epoch 15 days ago and the audit epoch 25 days ago go */
    sr_retention_cfg cfg = {.default_days = 10, .audit_days = 20};
    for (int round = 0; round < 2; round++) {
        memset(&rep, 0, sizeof rep);
        for (int i = 0; i < m.n; i++)
            cr_assert_eq(sr_skey_retention_erase(s, &kv, e, &cfg, now, "n1", m.key[i], &rep, err, sizeof err), SR_OK,
                         "%s", err);
        cr_assert_eq(rep.keys, 5);
        cr_assert_eq(rep.erased, round ? 0 : 2, "round %d: %llu erased", round, (unsigned long long)rep.erased);
    }
    cr_assert_eq(entry_state(&m, d15), SR_SKEY_DESTROYED);
    cr_assert_eq(entry_state(&m, a25), SR_SKEY_DESTROYED);
    cr_assert_eq(entry_state(&m, d5), SR_SKEY_ACTIVE, "5 days of a 10 days period: kept");
    cr_assert_eq(entry_state(&m, a15), SR_SKEY_ACTIVE, "15 days of a 20 days audit period: kept");
    cr_assert_eq(entry_state(&m, cf), SR_SKEY_ACTIVE, "a config key: never");
    /* in the log: an intent and a done per erased key, by the node, why retention; the second round nothing */
    rcount c = {0};
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(e, 1, count_ret, &c, &last), SR_OK);
    cr_assert_eq(c.pending, 2);
    cr_assert_eq(c.done, 2);
    cr_assert_str_eq(c.actor, "n1");
    /* a value of sim older than the data cut holds its data keys (the rule of the local keys) */
    cr_assert_eq(et_setup_masters(e, "sim", 1, NUM1, 1), SR_OK);
    sr_point_info pi;
    cr_assert_eq(sr_engine_point_info(e, "sim", "P000", &pi), SR_OK);
    sr_sample old = {.ts = now - 12 * day, .quality = SR_Q_GOOD, .v.f = 1};
    sr_result r;
    cr_assert_eq(et_put(e, "sim", "GW1", pi.point, SR_VT_NUMBER, &old, 1, NULL, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_engine_retention_cut(e, &cfg, now, "sim", SR_KC_DATA), INT64_MIN,
                 "a value older than the cut is still in the index");
    cr_assert_eq(sr_engine_retention_cut(e, &cfg, now, "sim", SR_KC_AUDIT), now - 20 * day);
    sr_skeys_free(s);
    m_free(&m);
    es_finish(e, &dir);
}
