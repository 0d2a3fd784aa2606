/* tests/storage/test_log_keys.c -- the log's per-key sections (format.md
 * version 3, docs/keys.md): sr_log_append_keyed seals runs of records under
 * their keys through a resolver; the iterator gives every record with its
 * key id; a key the resolver says was destroyed gives SR_EERASED once per
 * record and the iteration goes on; the chain verifies with no key at all
 * and after a key is destroyed; a section sealed under one key never opens
 * under another. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logtest.h"
#include "storage/log.h"
#include "testutil.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("logkeys"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(storage_log_keys, .init = setup, .fini = teardown, .timeout = 240);

enum { MAXLEN = 2000 };

static sr_log *open_log(const sr_log_opts *o)
{
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = sr_log_open(dir, o, &lg, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s: %s", sr_err_name(rc), ei.msg);
    const char *bad = sr_log_check(lg);
    cr_assert_null(bad, "%s", bad);
    return lg;
}

/* The key of record seq: runs of 1..5 records under key index 0..nk-1, or
 * plain (-1), a function of seq so that a check needs no copy. */
static int key_of(uint64_t seq, int nk)
{
    uint64_t run = (seq - 1) / (1 + (seq * 7 % 5)); /* runs of varying length */
    int k = (int)(run % (uint64_t)(nk + 1));
    return k == nk ? -1 : k;
}

static uint32_t id_of(const lt_keyring *kr, uint64_t seq, int nk)
{
    int k = key_of(seq, nk);
    return k < 0 ? 0 : lt_keyring_id(kr, k);
}

/* Append n records (one batch) keyed by key_of. */
static void append_keyed(sr_log *lg, const lt_keyring *kr, int nk, size_t n)
{
    uint64_t base = sr_log_next_seq(lg);
    sr_slice *recs = calloc(n, sizeof *recs);
    uint32_t *ids = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        size_t len = lt_len(base + i, MAXLEN);
        uint8_t *p = malloc(len ? len : 1);
        tu_fill_record(base + i, p, len);
        recs[i] = (sr_slice){p, len};
        ids[i] = id_of(kr, base + i, nk);
    }
    uint64_t first = 0;
    int rc = sr_log_append_keyed(lg, recs, ids, n, &first);
    cr_assert_eq(rc, SR_OK, "append_keyed: %s", sr_err_name(rc));
    cr_assert_eq(first, base);
    for (size_t i = 0; i < n; i++) free((void *)recs[i].data);
    free(recs);
    free(ids);
}

/* Read [from, to): each record's bytes and key id as written; records whose
 * key index is `erased` come as SR_EERASED (seq and key id set, empty).
 * Returns how many were erased. */
static uint64_t check_keyed(sr_log *lg, const lt_keyring *kr, int nk, uint64_t from, uint64_t to, int erased)
{
    sr_log_iter *it = NULL;
    cr_assert_eq(sr_log_iter_open(lg, from, &it), SR_OK);
    uint8_t *buf = malloc(MAXLEN + 1);
    uint64_t ner = 0;
    for (uint64_t want = from; want < to; want++) {
        uint64_t seq = 0;
        sr_slice rec = {0};
        int rc = sr_log_iter_next(it, &seq, &rec);
        cr_assert_eq(seq, want, "seq %" PRIu64 " want %" PRIu64 " (%s)", seq, want, sr_err_name(rc));
        cr_assert_eq(sr_log_iter_key_id(it), id_of(kr, seq, nk), "seq %" PRIu64 ": key id", seq);
        if (erased >= 0 && key_of(seq, nk) == erased) {
            cr_assert_eq(rc, SR_EERASED, "seq %" PRIu64 ": %s (%s)", seq, sr_err_name(rc), sr_log_iter_errinfo(it)->msg);
            cr_assert_eq(rec.len, 0);
            ner++;
            continue;
        }
        cr_assert_eq(rc, SR_OK, "seq %" PRIu64 ": %s (%s)", seq, sr_err_name(rc), sr_log_iter_errinfo(it)->msg);
        size_t len = lt_len(seq, MAXLEN);
        tu_fill_record(seq, buf, len);
        cr_assert(rec.len == len && (!len || !memcmp(rec.data, buf, len)), "seq %" PRIu64 ": bytes differ", seq);
    }
    uint64_t s;
    sr_slice r;
    if (to == sr_log_next_seq(lg)) cr_assert_eq(sr_log_iter_next(it, &s, &r), SR_DONE);
    free(buf);
    sr_log_iter_close(it);
    return ner;
}

static const int WHICH[] = {11, 12, 13, 14, 15, 16, 17, 18};

Test(storage_log_keys, runs_of_keys_round_trip_with_their_key_ids_through_reopen_and_seeks)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 3);
    for (int z = 0; z < 2; z++) {
        tu_rmrf(dir);
        sr_log_opts o = {.keys = &kr.keys, .zstd_level = z ? 3 : 0, .segment_bytes = 64 << 10, .block_bytes = 4096};
        sr_log *lg = open_log(&o);
        tu_rng rng = {42 + (uint64_t)z};
        for (int b = 0; b < 60; b++) append_keyed(lg, &kr, 3, 1 + tu_next(&rng) % 40);
        uint64_t end = sr_log_next_seq(lg);
        cr_assert_gt(sr_log_segment_count(lg), 1, "rolls segments");
        check_keyed(lg, &kr, 3, 1, end, -1);
        cr_assert_null(sr_log_check(lg));
        cr_assert_eq(sr_log_close(lg), SR_OK);
        lg = open_log(&o);
        cr_assert_eq(sr_log_next_seq(lg), end);
        check_keyed(lg, &kr, 3, 1, end, -1);
        for (int i = 0; i < 50; i++) { /* seeks land inside sections */
            uint64_t from = 1 + tu_next(&rng) % (end - 1);
            check_keyed(lg, &kr, 3, from, from + (end - from < 30 ? end - from : 30), -1);
        }
        append_keyed(lg, &kr, 3, 25); /* and appends after the reopen */
        check_keyed(lg, &kr, 3, 1, sr_log_next_seq(lg), -1);
        cr_assert_eq(sr_log_close(lg), SR_OK);
        sr_log_report rep;
        sr_errinfo ei;
        cr_assert_eq(sr_log_verify(dir, &o, &rep, &ei), SR_OK, "%s", ei.msg);
        cr_assert(rep.ok);
        cr_assert_eq(rep.records, end + 24);
        cr_assert_eq(rep.unopened_records, 0);
        cr_assert_eq(rep.erased_records, 0);
    }
    lt_keyring_free(&kr);
}

Test(storage_log_keys, a_run_is_one_section_and_the_payload_holds_no_plaintext)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 2);
    sr_log_opts o = {.keys = &kr.keys};
    sr_log *lg = open_log(&o);
    const char *secret[4] = {"SECRET-A-0123456789", "SECRET-A-abcdefghij", "SECRET-B-0123456789", "PLAIN-0123456789"};
    sr_slice recs[4];
    for (int i = 0; i < 4; i++) recs[i] = (sr_slice){secret[i], strlen(secret[i])};
    uint32_t ids[4] = {lt_keyring_id(&kr, 0), lt_keyring_id(&kr, 0), lt_keyring_id(&kr, 1), 0};
    cr_assert_eq(sr_log_append_keyed(lg, recs, ids, 4, NULL), SR_OK);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/00000000000000000001.seg", dir);
    size_t n;
    uint8_t *p = tu_read_file(path, &n);
    cr_assert(p);
    for (int i = 0; i < 3; i++) cr_assert_null(memmem(p, n, secret[i], strlen(secret[i])), "%s", secret[i]);
    cr_assert_not_null(memmem(p, n, secret[3], strlen(secret[3])), "a plain section is plain");
    /* one block, 3 sections (A A | B | plain): format.md version 3 */
    const uint8_t *h = p + SR_SEG_HDR_LEN;
    cr_assert_eq(sr_get_le16(p + 8), 3);
    cr_assert_eq(h[4], SR_BLK_VERSION);
    cr_assert_eq(sr_get_le32(h + 16), 4);
    cr_assert_eq(sr_get_le32(h + 28), 3, "sections");
    const uint8_t *s = h + SR_BLK_HDR_LEN;
    cr_assert_eq(sr_get_le32(s), ids[0]);
    cr_assert_eq(s[4], SR_ALG_AES_256_GCM);
    cr_assert_eq(sr_get_le32(s + 8), 2);
    free(p);
    lt_keyring_free(&kr);
}

Test(storage_log_keys, unkeyed_append_with_a_key_seals_under_it_and_mixes_with_keyed_runs)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 2);
    sr_key own;
    lt_key(&own, 3);
    sr_log_opts o = {.key = &own, .keys = &kr.keys, .zstd_level = 1};
    sr_log *lg = open_log(&o);
    cr_assert_eq(lt_append(lg, 20, MAXLEN, NULL), SR_OK); /* sr_log_append: under own */
    append_keyed(lg, &kr, 2, 30);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(sr_log_iter_next(it, &seq, &rec), SR_OK);
        cr_assert_eq(sr_log_iter_key_id(it), own.id);
    }
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    /* the own key's sections need the own key; the others the resolver */
    sr_log_opts ro = {.key = &own, .readonly = 1};
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, &ro, &lg, &ei), SR_EKEY, "a sealed section whose key is nowhere: SR_EKEY");
    cr_assert(strstr(ei.msg, "key id"), "%s", ei.msg);
    /* a plain log's appends stay plain */
    tu_rmrf(dir);
    lg = open_log(NULL);
    cr_assert_eq(lt_append(lg, 5, MAXLEN, NULL), SR_OK);
    sr_log_iter *it2;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it2), SR_OK);
    cr_assert_eq(sr_log_iter_next(it2, &seq, &rec), SR_OK);
    cr_assert_eq(sr_log_iter_key_id(it2), 0);
    sr_log_iter_close(it2);
    /* a nonzero key id and no resolver: refused, nothing written */
    uint32_t id = 77;
    sr_slice one = {"x", 1};
    cr_assert_eq(sr_log_append_keyed(lg, &one, &id, 1, NULL), SR_EINVAL);
    cr_assert_eq(sr_log_next_seq(lg), 6);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
}

Test(storage_log_keys, a_destroyed_key_gives_EERASED_per_record_and_the_chain_still_verifies)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 3);
    sr_log_opts o = {.keys = &kr.keys, .zstd_level = 3, .segment_bytes = 16 << 10, .block_bytes = 2048};
    sr_log *lg = open_log(&o);
    for (int b = 0; b < 30; b++) append_keyed(lg, &kr, 3, 1 + (size_t)(b * 7 % 23));
    uint64_t end = sr_log_next_seq(lg);
    uint8_t tip[SR_HASH_LEN];
    sr_log_tip(lg, tip);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    uint64_t want = 0, first = 0, last = 0;
    for (uint64_t s = 1; s < end; s++)
        if (key_of(s, 3) == 1) {
            want++;
            if (!first) first = s;
            last = s;
        }
    cr_assert_gt(want, 10);
    lt_keyring_set(&kr, 1, LT_DESTROYED);
    /* recovery checks the erased sections' structure, does not open them */
    lg = open_log(&o);
    cr_assert_eq(check_keyed(lg, &kr, 3, 1, end, 1), want, "every erased record reported, once");
    /* and appends go on under the other keys */
    cr_assert_eq(sr_log_close(lg), SR_OK);
    sr_log_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_log_verify(dir, &o, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert(rep.ok);
    cr_assert_eq(memcmp(rep.tip, tip, SR_HASH_LEN), 0, "the same chain");
    cr_assert_eq(rep.records, end - 1);
    cr_assert_eq(rep.erased_records, want);
    cr_assert_eq(rep.nerased, 1);
    cr_assert_eq(rep.erased[0].key_id, lt_keyring_id(&kr, 1));
    cr_assert_eq(rep.erased[0].records, want);
    cr_assert_eq(rep.erased[0].first_seq, first);
    cr_assert_eq(rep.erased[0].last_seq, last);
    cr_assert_eq(rep.erased_sections, rep.erased[0].sections);
    /* no key at all: the chain and the structure, nothing opened */
    sr_log_opts none = {0};
    cr_assert_eq(sr_log_verify(dir, &none, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert(rep.ok);
    cr_assert_eq(memcmp(rep.tip, tip, SR_HASH_LEN), 0);
    cr_assert_gt(rep.unopened_records, want);
    cr_assert_eq(rep.erased_records, 0);
    /* sealing under a destroyed key is refused, nothing written */
    lg = open_log(&o);
    uint32_t id = lt_keyring_id(&kr, 1);
    sr_slice one = {"x", 1};
    cr_assert_eq(sr_log_append_keyed(lg, &one, &id, 1, NULL), SR_EERASED);
    cr_assert_eq(sr_log_next_seq(lg), end);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
}

Test(storage_log_keys, a_section_never_opens_under_another_key)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 2);
    sr_log_opts o = {.keys = &kr.keys, .zstd_level = 1};
    sr_log *lg = open_log(&o);
    append_keyed(lg, &kr, 2, 40);
    uint64_t end = sr_log_next_seq(lg);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    /* key A's id now answers with key B's bytes: authentication fails */
    lt_keyring_swap(&kr, 0, WHICH[1]);
    lg = open_log(&o);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int rc, bad = 0;
    for (uint64_t s = 1; s < end; s++) {
        if (key_of(s, 2) != 0) continue;
        sr_log_iter_close(it);
        cr_assert_eq(sr_log_iter_open(lg, s, &it), SR_OK);
        rc = sr_log_iter_next(it, &seq, &rec);
        cr_assert_eq(rc, SR_ECORRUPT, "seq %" PRIu64 ": %s", s, sr_err_name(rc));
        cr_assert(strstr(sr_log_iter_errinfo(it)->msg, "authentication failed"), "%s", sr_log_iter_errinfo(it)->msg);
        bad++;
        break;
    }
    cr_assert_eq(bad, 1);
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    sr_log_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_log_verify(dir, &o, &rep, &ei), SR_ECORRUPT);
    cr_assert_not(rep.ok);
    /* key A unknown: SR_EKEY naming its id and the records, at open */
    lt_keyring_swap(&kr, 0, WHICH[0]);
    lt_keyring_set(&kr, 0, LT_UNKNOWN);
    char idhex[16];
    snprintf(idhex, sizeof idhex, "%08x", lt_keyring_id(&kr, 0));
    cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, idhex) && strstr(ei.msg, "records"), "%s", ei.msg);
    /* read-only and unknown: the iterator names it too, and goes on after */
    sr_log_opts ro = o;
    ro.readonly = 1;
    ro.keys = NULL;
    lg = open_log(&ro); /* no key at all: the chain alone */
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t s = 1;
    while (key_of(s, 2) != 0) {
        cr_assert_eq(sr_log_iter_next(it, &seq, &rec), key_of(s, 2) < 0 ? SR_OK : SR_EKEY);
        if (key_of(s, 2) < 0) s++;
        else break;
    }
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_iter_open(lg, s, &it), SR_OK);
    rc = sr_log_iter_next(it, &seq, &rec);
    cr_assert_eq(rc, SR_EKEY);
    cr_assert(strstr(sr_log_iter_errinfo(it)->msg, idhex), "%s", sr_log_iter_errinfo(it)->msg);
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
}

/* Concurrent keyed appenders: dense, disjoint, each record under its key. */
typedef struct kworker {
    sr_log *lg;
    const lt_keyring *kr;
    int t;
} kworker;

static void *kwork(void *arg)
{
    kworker *w = arg;
    for (int b = 0; b < 50; b++) {
        char bodies[6][32];
        sr_slice recs[6];
        uint32_t ids[6];
        for (int i = 0; i < 6; i++) {
            int k = (w->t + b + i / 2) % 3;
            snprintf(bodies[i], sizeof bodies[i], "t%d b%d i%d k%d", w->t, b, i, k);
            recs[i] = (sr_slice){bodies[i], strlen(bodies[i])};
            ids[i] = lt_keyring_id(w->kr, k);
        }
        uint64_t f;
        if (sr_log_append_keyed(w->lg, recs, ids, 6, &f)) return (void *)1;
    }
    return NULL;
}

Test(storage_log_keys, concurrent_keyed_appenders_each_record_under_its_key)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 3);
    sr_log_opts o = {.keys = &kr.keys, .zstd_level = 1, .sync = SR_SYNC_ALWAYS};
    sr_log *lg = open_log(&o);
    pthread_t th[4];
    kworker w[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (kworker){lg, &kr, t};
        pthread_create(&th[t], NULL, kwork, &w[t]);
    }
    for (int t = 0; t < 4; t++) {
        void *r;
        pthread_join(th[t], &r);
        cr_assert_null(r);
    }
    cr_assert_eq(sr_log_next_seq(lg), 4 * 50 * 6 + 1);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int n = 0;
    while (sr_log_iter_next(it, &seq, &rec) == SR_OK) {
        char body[40];
        snprintf(body, sizeof body, "%.*s", (int)rec.len, (const char *)rec.data);
        int k = body[strlen(body) - 1] - '0';
        cr_assert_eq(sr_log_iter_key_id(it), lt_keyring_id(&kr, k), "%s", body);
        n++;
    }
    cr_assert_eq(n, 1200);
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
}

/* A batch whose key cannot seal (destroyed after the append was prepared:
 * the resolver refuses it at the leader) fails alone: the batches committed
 * in the same group succeed. */
typedef struct sworker {
    sr_log *lg;
    uint32_t id;
    int n, ok, erased, other;
} sworker;

static void *swork(void *arg)
{
    sworker *w = arg;
    for (int i = 0; i < w->n; i++) {
        sr_slice recs[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
        uint32_t ids[3] = {w->id, w->id, 0};
        int rc = sr_log_append_keyed(w->lg, recs, ids, 3, NULL);
        if (rc == SR_OK) w->ok++;
        else if (rc == SR_EERASED) w->erased++;
        else w->other++;
    }
    return NULL;
}

Test(storage_log_keys, a_batch_that_cannot_be_sealed_fails_alone_in_its_group)
{
    lt_keyring kr;
    lt_keyring_init(&kr, WHICH, 2);
    lt_keyring_set(&kr, 1, LT_DESTROYED); /* alg() still names it: prepare passes, the seal refuses */
    sr_log_opts o = {.keys = &kr.keys, .sync = SR_SYNC_ALWAYS};
    sr_log *lg = open_log(&o);
    sworker w[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (sworker){lg, lt_keyring_id(&kr, t % 2), 200, 0, 0, 0};
        pthread_create(&th[t], NULL, swork, &w[t]);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        cr_assert_eq(w[t].other, 0);
        if (t % 2 == 0) cr_assert_eq(w[t].ok, 200, "thread %d: a live key's batches all succeed", t);
        else cr_assert_eq(w[t].erased, 200, "thread %d: a destroyed key's batches all fail", t);
    }
    cr_assert_null(sr_log_check(lg));
    cr_assert_eq(sr_log_next_seq(lg), 2 * 200 * 3 + 1);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lg = open_log(&o);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int n = 0, rc;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        uint32_t id = sr_log_iter_key_id(it);
        cr_assert(id == 0 || id == lt_keyring_id(&kr, 0), "seq %" PRIu64 ": key %08x", seq, id);
        n++;
    }
    cr_assert_eq(rc, SR_DONE);
    cr_assert_eq(n, 1200);
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
}
