/* tests/storage/test_mtree.c -- the RFC 9162 Merkle tree (storage/mtree.h):
 * hashes against a naive recursive MTH for every size 1..N and the
 * Certificate Transparency test vectors; inclusion and consistency proofs
 * for every pair up to N, equal to the RFC's recursive definitions computed
 * naively over the leaves and accepted by the RFC's verifiers, each tampered
 * variant refused; a tree resumed from a frontier (its bytes round-tripped)
 * equals the full tree. */
#include <criterion/criterion.h>

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "storage/mtree.h"

#include <stdio.h>
#include <string.h>

enum { N = 70 };

typedef uint8_t hash[SR_MT_HASH_LEN];

/* ---- naive RFC 9162 2.1.1 - 2.1.4, straight over the leaf hashes ---- */

static uint64_t k_of(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n) k *= 2;
    return k;
}

static void mth(const hash *lv, uint64_t n, uint8_t out[32])
{
    if (n == 0) {
        sr_mt_empty_root(out);
        return;
    }
    if (n == 1) {
        memcpy(out, lv[0], 32);
        return;
    }
    uint64_t k = k_of(n);
    hash l, r;
    mth(lv, k, l);
    mth(lv + k, n - k, r);
    sr_mt_node_hash(l, r, out);
}

static void naive_path(uint64_t m, const hash *lv, uint64_t n, hash *p, size_t *len)
{
    if (n == 1) return;
    uint64_t k = k_of(n);
    if (m < k) {
        naive_path(m, lv, k, p, len);
        mth(lv + k, n - k, p[(*len)++]);
    } else {
        naive_path(m - k, lv + k, n - k, p, len);
        mth(lv, k, p[(*len)++]);
    }
}

static void naive_sub(uint64_t m, const hash *lv, uint64_t n, int b, hash *p, size_t *len)
{
    if (m == n) {
        if (!b) mth(lv, n, p[(*len)++]);
        return;
    }
    uint64_t k = k_of(n);
    if (m <= k) {
        naive_sub(m, lv, k, b, p, len);
        mth(lv + k, n - k, p[(*len)++]);
    } else {
        naive_sub(m - k, lv + k, n - k, 0, p, len);
        mth(lv, k, p[(*len)++]);
    }
}

/* ---- a node store filled by the frontier's emit ---- */

typedef struct store {
    hash node[8][N]; /* level, index */
    int have[8][N];
    uint64_t floor;  /* leaves below it "dropped": their level-0 nodes are not kept */
} store;

static int emit(void *ctx, unsigned level, uint64_t index, const uint8_t h[32])
{
    store *s = ctx;
    cr_assert_lt(level, 8);
    cr_assert_lt(index, N);
    cr_assert(!s->have[level][index], "node (%u, %llu) emitted twice", level, (unsigned long long)index);
    memcpy(s->node[level][index], h, 32);
    s->have[level][index] = 1;
    return SR_OK;
}

static int get(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
    store *s = ctx;
    if (level >= 8 || index >= N || !s->have[level][index]) return SR_ENOTFOUND;
    if (((index + 1) << level) <= s->floor) return SR_ENOTFOUND;
    memcpy(out, s->node[level][index], 32);
    return SR_OK;
}

static hash leaves[N];
static store st;
static hash roots[N + 1];

static void build(void)
{
    memset(&st, 0, sizeof st);
    sr_mt_frontier f;
    sr_mt_frontier_init(&f);
    sr_mt_frontier_root(&f, roots[0]);
    for (int i = 0; i < N; i++) {
        uint8_t data[5] = {(uint8_t)i, 'l', 'e', 'a', 'f'};
        sr_mt_leaf_hash(data, (size_t)(i % 5) + 1, leaves[i]);
        cr_assert_eq(sr_mt_frontier_push(&f, leaves[i], emit, &st), SR_OK);
        sr_mt_frontier_root(&f, roots[i + 1]);
    }
}

Test(mtree, ct_test_vectors)
{
    /* RFC 6962's reference test data (certificate-transparency merkle_tree_test) */
    static const char *data[8] = {"", "\x00", "\x10", "\x20\x21", "\x30\x31", "\x40\x41\x42\x43",
                                  "\x50\x51\x52\x53\x54\x55\x56\x57",
                                  "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
    static const size_t len[8] = {0, 1, 1, 2, 2, 4, 8, 16};
    static const char *root_hex[8] = {
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    };
    sr_mt_frontier f;
    sr_mt_frontier_init(&f);
    hash e, r;
    sr_mt_frontier_root(&f, e);
    char hex[65];
    sr_hex(e, 32, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    for (int i = 0; i < 8; i++) {
        hash lh;
        sr_mt_leaf_hash(data[i], len[i], lh);
        cr_assert_eq(sr_mt_frontier_push(&f, lh, NULL, NULL), SR_OK);
        sr_mt_frontier_root(&f, r);
        sr_hex(r, 32, hex);
        cr_assert_str_eq(hex, root_hex[i], "size %d", i + 1);
    }
}

Test(mtree, frontier_root_equals_naive_mth_for_every_size)
{
    build();
    for (uint64_t n = 0; n <= N; n++) {
        hash r, r2;
        mth(leaves, n, r);
        cr_assert(!memcmp(r, roots[n], 32), "size %llu", (unsigned long long)n);
        cr_assert_eq(sr_mt_root(get, &st, n, r2), SR_OK);
        cr_assert(!memcmp(r, r2, 32), "stored nodes, size %llu", (unsigned long long)n);
    }
}

Test(mtree, inclusion_proofs_for_every_pair)
{
    build();
    for (uint64_t n = 1; n <= N; n++)
        for (uint64_t m = 0; m < n; m++) {
            hash p[SR_MT_MAX_PROOF], q[SR_MT_MAX_PROOF];
            size_t len = 0, qlen = 0;
            cr_assert_eq(sr_mt_inclusion(get, &st, m, n, p, &len), SR_OK);
            naive_path(m, leaves, n, q, &qlen);
            cr_assert_eq(len, qlen);
            cr_assert(!memcmp(p, q, len * 32), "PATH(%llu, %llu)", (unsigned long long)m, (unsigned long long)n);
            cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[m], (const hash *)p, len, roots[n]), SR_OK,
                         "verify %llu in %llu", (unsigned long long)m, (unsigned long long)n);
            /* tampered: another leaf, index, size, root, a node, a shorter or longer path */
            cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[(m + 1) % N], (const hash *)p, len, roots[n]),
                         SR_ECORRUPT);
            if (n > 1) {
                cr_assert_eq(sr_mt_verify_inclusion((m + 1) % n, n, leaves[m], (const hash *)p, len, roots[n]),
                             SR_ECORRUPT);
                hash bad;
                memcpy(bad, roots[n], 32);
                bad[0] ^= 1;
                cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[m], (const hash *)p, len, bad), SR_ECORRUPT);
                p[len - 1][31] ^= 0x80;
                cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[m], (const hash *)p, len, roots[n]), SR_ECORRUPT);
                p[len - 1][31] ^= 0x80;
                cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[m], (const hash *)p, len - 1, roots[n]),
                             SR_ECORRUPT);
                memcpy(p[len], roots[1], 32);
                cr_assert_eq(sr_mt_verify_inclusion(m, n, leaves[m], (const hash *)p, len + 1, roots[n]),
                             SR_ECORRUPT);
            }
            if (n < N && m + 1 < n)
                cr_assert_eq(sr_mt_verify_inclusion(m, n + 1, leaves[m], (const hash *)p, len, roots[n + 1]),
                             SR_ECORRUPT);
        }
    hash p[SR_MT_MAX_PROOF];
    size_t len;
    cr_assert_eq(sr_mt_inclusion(get, &st, 5, 5, p, &len), SR_EINVAL);
}

Test(mtree, consistency_proofs_for_every_pair)
{
    build();
    for (uint64_t n = 1; n <= N; n++)
        for (uint64_t m = 1; m <= n; m++) {
            hash p[SR_MT_MAX_PROOF], q[SR_MT_MAX_PROOF];
            size_t len = 0, qlen = 0;
            cr_assert_eq(sr_mt_consistency(get, &st, m, n, p, &len), SR_OK);
            if (m < n) naive_sub(m, leaves, n, 1, q, &qlen);
            cr_assert_eq(len, qlen);
            cr_assert(!memcmp(p, q, len * 32), "PROOF(%llu, %llu)", (unsigned long long)m, (unsigned long long)n);
            cr_assert_eq(sr_mt_verify_consistency(m, n, roots[m], roots[n], (const hash *)p, len), SR_OK,
                         "verify %llu -> %llu", (unsigned long long)m, (unsigned long long)n);
            hash bad;
            memcpy(bad, roots[m], 32);
            bad[5] ^= 4;
            cr_assert_eq(sr_mt_verify_consistency(m, n, bad, roots[n], (const hash *)p, len), SR_ECORRUPT);
            memcpy(bad, roots[n], 32);
            bad[5] ^= 4;
            cr_assert_eq(sr_mt_verify_consistency(m, n, roots[m], bad, (const hash *)p, len), SR_ECORRUPT);
            if (len) {
                p[0][0] ^= 1;
                cr_assert_eq(sr_mt_verify_consistency(m, n, roots[m], roots[n], (const hash *)p, len),
                             SR_ECORRUPT, "node 0 of %llu -> %llu", (unsigned long long)m, (unsigned long long)n);
                p[0][0] ^= 1;
                cr_assert_eq(sr_mt_verify_consistency(m, n, roots[m], roots[n], (const hash *)p, len - 1),
                             SR_ECORRUPT);
            }
            if (m < n && m > 1)
                cr_assert_eq(sr_mt_verify_consistency(m - 1, n, roots[m], roots[n], (const hash *)p, len),
                             SR_ECORRUPT);
        }
    hash p[SR_MT_MAX_PROOF];
    size_t len;
    cr_assert_eq(sr_mt_consistency(get, &st, 0, 3, p, &len), SR_EINVAL);
    cr_assert_eq(sr_mt_consistency(get, &st, 4, 3, p, &len), SR_EINVAL);
}

Test(mtree, resumed_from_a_frontier_equals_the_full_tree)
{
    build();
    for (uint64_t cut = 0; cut <= N; cut++) {
        sr_mt_frontier f, g;
        cr_assert_eq(sr_mt_frontier_at(get, &st, cut, &f), SR_OK);
        uint8_t bytes[8 + 64 * 32];
        size_t n = sr_mt_frontier_encode(&f, bytes);
        cr_assert_eq(sr_mt_frontier_decode(bytes, n, &g), SR_OK);
        cr_assert_eq(sr_mt_frontier_decode(bytes, n - 1, &g), SR_ECORRUPT);
        cr_assert_eq(sr_mt_frontier_decode(bytes, n, &g), SR_OK);
        for (uint64_t i = cut; i < N; i++) {
            cr_assert_eq(sr_mt_frontier_push(&g, leaves[i], NULL, NULL), SR_OK);
            hash r;
            sr_mt_frontier_root(&g, r);
            cr_assert(!memcmp(r, roots[i + 1], 32), "cut %llu size %llu", (unsigned long long)cut,
                      (unsigned long long)i + 1);
        }
    }
}

Test(mtree, a_proof_that_needs_a_dropped_node_says_so)
{
    build();
    st.floor = 16; /* the nodes wholly below leaf 16 are gone, as after a trim */
    hash p[SR_MT_MAX_PROOF];
    size_t len;
    cr_assert_eq(sr_mt_inclusion(get, &st, 3, 40, p, &len), SR_ENOTFOUND);
    cr_assert_eq(sr_mt_inclusion(get, &st, 20, 40, p, &len), SR_ENOTFOUND); /* needs node (4, 0) */
    cr_assert_eq(sr_mt_consistency(get, &st, 8, 40, p, &len), SR_ENOTFOUND);
}

/* ---- the log's blocks as leaves (storage/log.h sr_log_append_leaves,
 * sr_log_leaf_next) ---- */

#include "logtest.h"
#include "testutil.h"

Test(mtree, log_leaves_at_append_equal_the_leaves_read_back_and_follow_the_chain)
{
    char *dir = tu_tmpdir("mtree-log");
    lt_keyring kr;
    int which[2] = {0, 1};
    lt_keyring_init(&kr, which, 2);
    sr_log_opts o = {.sync = SR_SYNC_NONE, .block_bytes = 600, .keys = &kr.keys};
    sr_log *lg;
    sr_errinfo ei = {0};
    cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_mt_frontier f;
    sr_mt_frontier_init(&f);
    uint8_t tip[32] = {0};
    for (int b = 0; b < 12; b++) {
        size_t n = (size_t)b % 4 + 1;
        sr_slice recs[4];
        uint32_t ids[4];
        char buf[4][400];
        for (size_t i = 0; i < n; i++) {
            memset(buf[i], 'a' + b, sizeof buf[i]);
            recs[i] = (sr_slice){buf[i], 100 + 100 * i};
            ids[i] = i % 2 ? lt_keyring_id(&kr, 0) : 0;
        }
        uint64_t first = 0;
        sr_log_leaf *lv = NULL;
        size_t nl = 0;
        cr_assert_eq(sr_log_append_leaves(lg, recs, ids, n, &first, &lv, &nl), SR_OK);
        cr_assert_geq(nl, 1);
        uint64_t s = first;
        for (size_t i = 0; i < nl; i++) {
            cr_assert_eq(lv[i].first_seq, s);
            s += lv[i].count;
            cr_assert_eq(sr_mt_frontier_push(&f, lv[i].hash, NULL, NULL), SR_OK);
            memcpy(tip, lv[i].tip, 32);
        }
        cr_assert_eq(s, first + n);
        sr_free(lv);
    }
    cr_assert_gt(f.size, 12, "some batches span blocks");
    uint8_t ltip[32];
    sr_log_tip(lg, ltip);
    cr_assert(!memcmp(tip, ltip, 32), "the last leaf's tip is the chain tip");
    /* read back: the same leaves, each one's header chaining to the tip before */
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    sr_mt_frontier g;
    sr_mt_frontier_init(&g);
    uint8_t prev[32] = {0};
    sr_log_leaf l;
    int rc;
    while ((rc = sr_log_leaf_next(it, &l)) == SR_OK) {
        cr_assert(!memcmp(l.hdr + 56, prev, 32), "block %llu chains", (unsigned long long)l.first_seq);
        hash lh;
        sr_mt_leaf_hash2(l.hdr, sizeof l.hdr, l.digest, 32, lh);
        cr_assert(!memcmp(lh, l.hash, 32));
        memcpy(prev, l.tip, 32);
        cr_assert_eq(sr_mt_frontier_push(&g, l.hash, NULL, NULL), SR_OK);
    }
    cr_assert_eq(rc, SR_DONE);
    sr_log_iter_close(it);
    cr_assert_eq(g.size, f.size);
    hash r1, r2;
    sr_mt_frontier_root(&f, r1);
    sr_mt_frontier_root(&g, r2);
    cr_assert(!memcmp(r1, r2, 32));
    /* and after the key is destroyed: the leaves need no key */
    lt_keyring_set(&kr, 0, LT_DESTROYED);
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    sr_mt_frontier_init(&g);
    while ((rc = sr_log_leaf_next(it, &l)) == SR_OK) cr_assert_eq(sr_mt_frontier_push(&g, l.hash, NULL, NULL), SR_OK);
    cr_assert_eq(rc, SR_DONE);
    sr_log_iter_close(it);
    sr_mt_frontier_root(&g, r2);
    cr_assert(!memcmp(r1, r2, 32), "the same root without the key");
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
    tu_rmrf(dir);
    free(dir);
}

/* ---- the signed note (C2SP tlog-checkpoint) ---- */

Test(mtree, signed_note_round_trip_and_tampering_for_each_signature_algorithm)
{
    static const int algs[] = {SR_ALG_ES256, SR_ALG_EDDSA, SR_ALG_ES384};
    hash root;
    sr_mt_leaf_hash("x", 1, root);
    for (size_t a = 0; a < sizeof algs / sizeof *algs; a++) {
        sr_sigkey *k = NULL, *other = NULL;
        cr_assert_eq(sr_sigkey_generate(algs[a], &k), SR_OK);
        cr_assert_eq(sr_sigkey_generate(algs[a], &other), SR_OK);
        char body[512], note[SR_TLOG_NOTE_MAX];
        size_t bl = sr_tlog_body("suiro.test/log", 42, root, "suiro-tip AAAA 7 1000\n", body, sizeof body);
        cr_assert_gt(bl, 0);
        cr_assert_eq(sr_tlog_sign(k, "suiro.test/log", body, note, sizeof note), SR_OK);
        cr_assert(!strncmp(note, "suiro.test/log\n42\n", 18), "%s", note);
        cr_assert(strstr(note, "\n\n\xe2\x80\x94 suiro.test/log "), "%s", note);
        size_t got = 0;
        cr_assert_eq(sr_tlog_verify(k, "suiro.test/log", note, &got), SR_OK, "alg %d", algs[a]);
        cr_assert_eq(got, bl);
        cr_assert_eq(sr_tlog_verify(other, "suiro.test/log", note, &got), SR_ENOTFOUND, "another key");
        cr_assert_eq(sr_tlog_verify(k, "other.name", note, &got), SR_ENOTFOUND, "another name");
        char bad[SR_TLOG_NOTE_MAX];
        strcpy(bad, note);
        bad[16] = '3'; /* tree size 43 */
        cr_assert_eq(sr_tlog_verify(k, "suiro.test/log", bad, &got), SR_ECORRUPT);
        strcpy(bad, note);
        char *sig = strrchr(bad, ' ') + 8;
        *sig = *sig == 'A' ? 'B' : 'A'; /* a signature byte */
        cr_assert_eq(sr_tlog_verify(k, "suiro.test/log", bad, &got), SR_ECORRUPT);
        cr_assert_eq(sr_tlog_verify(k, "suiro.test/log", "no note", &got), SR_ECORRUPT);
        cr_assert_eq(sr_tlog_sign(k, "bad name", body, note, sizeof note), SR_EINVAL);
        sr_sigkey_free(k);
        sr_sigkey_free(other);
    }
}
