/* tests/api/test_cluster_blob.c -- the cluster's blob chunks without NATS
 * (api/cluster_blob.h, docs/blob-format.md "The cluster's blob chunks"):
 * a file cut into chunk messages and put back together gives its bytes
 * and SHA-256 (sizes around the chunk boundaries, the empty file); every
 * refusal of the parser (magic, chunk size, count, index, length); the
 * content id (the hash without a master key, a keyed id with one: another
 * operator or master gives another id, the hash is not in it); a sealed
 * chunk opens only under its own associated data (content id, chunk index,
 * operator, partition), and not at all once its stream key is erased. */
#include "api/cluster_blob.h"
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

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Cut p[0..n) into chunk messages of chunk bytes, then parse each in turn
 * as the fetcher does, putting the bytes back together. */
static void round_trip(size_t n, uint32_t chunk)
{
    uint8_t *p = malloc(n ? n : 1), *back = malloc(n ? n : 1);
    fill(p, n, (uint32_t)n);
    sr_cblob_hdr h = {0, sr_cblob_nchunks(n, chunk), chunk, n, {0}};
    sr_sha256(p, n, h.sha);
    cr_assert_eq(h.nchunks, n / chunk + (n % chunk != 0));
    sr_buf m;
    sr_buf_init(&m);
    size_t at = 0;
    for (uint32_t i = 0; i < h.nchunks; i++) {
        size_t len = sr_cblob_chunk_len(n, chunk, i);
        h.index = i;
        cr_assert_eq(sr_cblob_chunk_build(&h, p + (size_t)i * chunk, len, &m), SR_OK);
        sr_cblob_hdr g;
        const uint8_t *d = NULL;
        size_t dl = 0;
        char err[256];
        cr_assert_eq(sr_cblob_chunk_parse(m.data, m.len, &g, &d, &dl, err, sizeof err), SR_OK, "%zu/%u: %s", n, i, err);
        cr_assert_eq(g.index, i);
        cr_assert_eq(g.nchunks, h.nchunks);
        cr_assert_eq(g.size, (uint64_t)n);
        cr_assert_eq(memcmp(g.sha, h.sha, 32), 0);
        memcpy(back + at, d, dl);
        at += dl;
    }
    cr_assert_eq(at, n);
    cr_assert_eq(memcmp(back, p, n), 0);
    uint8_t sha[32];
    sr_sha256(back, at, sha);
    cr_assert_eq(memcmp(sha, h.sha, 32), 0, "the SHA-256 of the chunks put back together is the file's");
    sr_buf_release(&m);
    free(p);
    free(back);
}

Test(cblob, chunks_cut_and_put_back_together)
{
    uint32_t c = SR_CBLOB_MIN_CHUNK;
    size_t sizes[] = {1, c - 1, c, c + 1, 3 * c, 3 * c + 7, 10 * c - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) round_trip(sizes[i], c);
    round_trip(SR_CBLOB_CHUNK + 5, SR_CBLOB_CHUNK); /* what a node publishes: two chunks */
    cr_assert_eq(sr_cblob_nchunks(0, c), 0u, "an empty file has no chunk (made from its size alone)");
    cr_assert_eq(sr_cblob_chunk_len(10, 4, 2), 2u);
    cr_assert_eq(sr_cblob_chunk_len(10, 4, 3), 0u);
    cr_assert(SR_CBLOB_CHUNK + SR_CBLOB_HDR + SR_SEAL_OVERHEAD < 1024 * 1024, "a sealed chunk fits NATS's 1 MiB");
}

Test(cblob, parse_refuses_each_bad_field)
{
    uint8_t data[3000];
    fill(data, sizeof data, 9);
    sr_cblob_hdr h = {1, 3, 1024, sizeof data, {0}};
    sr_buf m;
    sr_buf_init(&m);
    cr_assert_eq(sr_cblob_chunk_build(&h, data + 1024, 1024, &m), SR_OK);
    sr_cblob_hdr g;
    const uint8_t *d;
    size_t dl;
    char err[256];
    cr_assert_eq(sr_cblob_chunk_parse(m.data, m.len, &g, &d, &dl, err, sizeof err), SR_OK, "%s", err);
    struct {
        size_t off;
        uint8_t val;
        const char *says;
    } bad[] = {
        {0, 'X', "SRB1"},             /* magic */
        {4, 7, "index"},              /* index 7 of 3 */
        {8, 4, "count"},              /* 4 chunks for 3000 bytes of 1024 */
        {12, 0, "out of bounds"},     /* chunk size 0 (low byte of 1024 is 0: 1024 -> 0 needs byte 13) */
        {17, 0xff, "count"},          /* another size (3000 -> 65464) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sr_buf x;
        sr_buf_init(&x);
        cr_assert_eq(sr_buf_append(&x, m.data, m.len), SR_OK);
        if (bad[i].off == 12) x.data[13] = 0; /* 1024 = 0x400: the size becomes 0 */
        else x.data[bad[i].off] = bad[i].val;
        err[0] = 0;
        cr_assert_eq(sr_cblob_chunk_parse(x.data, x.len, &g, &d, &dl, err, sizeof err), SR_ECORRUPT, "case %zu", i);
        cr_assert(strstr(err, bad[i].says), "case %zu: %s", i, err);
        sr_buf_release(&x);
    }
    /* one byte short, one too many, the header alone, nothing */
    cr_assert_eq(sr_cblob_chunk_parse(m.data, m.len - 1, &g, &d, &dl, err, sizeof err), SR_ECORRUPT);
    cr_assert(strstr(err, "its index gives"), "%s", err);
    cr_assert_eq(sr_buf_append(&m, "x", 1), SR_OK);
    cr_assert_eq(sr_cblob_chunk_parse(m.data, m.len, &g, &d, &dl, err, sizeof err), SR_ECORRUPT);
    cr_assert_eq(sr_cblob_chunk_parse(m.data, SR_CBLOB_HDR - 1, &g, &d, &dl, err, sizeof err), SR_ECORRUPT);
    cr_assert_eq(sr_cblob_chunk_parse("", 0, &g, &d, &dl, err, sizeof err), SR_ECORRUPT);
    sr_buf_release(&m);
}

Test(cblob, content_ids_and_subjects)
{
    uint8_t sha[32];
    sr_sha256("cluster bytes", 13, sha);
    char hex[65], a[65], b[65], c[65], d[65];
    sr_hex(sha, 32, hex);
    sr_cblob_cid(NULL, "sim", sha, a);
    cr_assert_str_eq(a, hex, "without key_file the content id is the file's SHA-256");
    sr_key m1 = master(1), m2 = master(2);
    sr_cblob_cid(&m1, "sim", sha, b);
    sr_cblob_cid(&m1, "other", sha, c);
    sr_cblob_cid(&m2, "sim", sha, d);
    cr_assert_eq(strlen(b), 64u);
    cr_assert_str_neq(b, hex, "with the master key the subject names no file's hash");
    cr_assert_str_neq(b, c, "per operator");
    cr_assert_str_neq(b, d, "per master key");
    char again[65];
    sr_cblob_cid(&m1, "sim", sha, again);
    cr_assert_str_eq(again, b, "deterministic: every node names the same subjects");
    char subj[160], id[96], stream[48];
    sr_cblob_subject("SUIRO", b, 2, subj, sizeof subj);
    sr_cblob_msgid(b, 2, id, sizeof id);
    sr_cblob_stream("SUIRO", stream);
    cr_assert_eq(strncmp(subj, "SUIRO.blob.", 11), 0);
    cr_assert(strstr(subj, b) && !strcmp(subj + strlen(subj) - 2, ".2"), "%s", subj);
    cr_assert_eq(strncmp(id, "blob:", 5), 0);
    cr_assert_str_eq(stream, "SUIRO_BLOBS");
}

/* an in-memory bucket for the stream keys (as test_cluster_seal's) */
typedef struct mkv {
    char key[8][24];
    sr_buf val[8];
    int n;
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
    int i = m_find(m, key);
    if (i < 0) return SR_ENOTFOUND;
    val->len = 0;
    return sr_buf_append(val, m->val[i].data, m->val[i].len);
}
static int m_put(void *ctx, const char *key, const void *p, size_t n)
{
    mkv *m = ctx;
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
    return m_find(ctx, key) >= 0 ? SR_EEXIST : m_put(ctx, key, p, n);
}

Test(cblob, sealed_chunk_bound_to_content_id_index_operator_and_erased_with_its_key)
{
    mkv m = {0};
    sr_skv kv = {&m, m_get, m_create, m_put};
    sr_key mk = master(7);
    sr_skeys *a = NULL, *b = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &a), SR_OK);
    cr_assert_eq(sr_skeys_new(&mk, 30, &b), SR_OK);
    static const char SECRET[] = "the plaintext bytes of an uploaded file: SECRET-FILE-42";
    sr_cblob_hdr h = {0, 1, SR_CBLOB_MIN_CHUNK, sizeof SECRET, {0}};
    sr_sha256(SECRET, sizeof SECRET, h.sha);
    char cid[65], cid2[65];
    sr_cblob_cid(&mk, "sim", h.sha, cid);
    sr_cblob_cid(&mk, "sim", (const uint8_t *)"0123456789abcdef0123456789abcdef", cid2);
    sr_buf chunk, sealed, out;
    sr_buf_init(&chunk);
    sr_buf_init(&sealed);
    sr_buf_init(&out);
    cr_assert_eq(sr_cblob_chunk_build(&h, SECRET, sizeof SECRET, &chunk), SR_OK);
    sr_seal_ad ad;
    char nb[72], err[320];
    uint64_t kid = 0;
    int64_t t = 1767225600000;
    sr_cblob_ad(&ad, nb, 3, "sim", cid, 0);
    cr_assert_eq(sr_skeys_seal(a, &kv, &ad, t, chunk.data, chunk.len, &sealed, &kid, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(kid, sr_skey_id("sim", SR_KC_DATA, sr_skey_epoch(SR_KC_DATA, t, 30), 30),
                 "sealed by the operator's DATA stream key of the FilePut's epoch");
    cr_assert_null(memmem(sealed.data, sealed.len, "SECRET-FILE", 11), "no plaintext byte in the sealed chunk");
    cr_assert_null(memmem(sealed.data, sealed.len, h.sha, 8), "nor the file's hash");
    /* another node (its own cache) opens it with the same associated data */
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(out.len, chunk.len);
    cr_assert_eq(memcmp(out.data, chunk.data, chunk.len), 0);
    /* moved to another chunk index, content id, operator or partition: refused, never wrong bytes */
    sr_seal_ad x;
    char xb[72];
    sr_cblob_ad(&x, xb, 3, "sim", cid, 1);
    cr_assert_neq(sr_skeys_open(b, &kv, &x, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "another index");
    sr_cblob_ad(&x, xb, 3, "sim", cid2, 0);
    cr_assert_neq(sr_skeys_open(b, &kv, &x, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "another content");
    sr_cblob_ad(&x, xb, 3, "other", cid, 0);
    cr_assert_neq(sr_skeys_open(b, &kv, &x, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "another operator");
    sr_cblob_ad(&x, xb, 2, "sim", cid, 0);
    cr_assert_neq(sr_skeys_open(b, &kv, &x, sealed.data, sealed.len, &out, err, sizeof err), SR_OK, "another partition");
    /* a changed byte: refused */
    sealed.data[sealed.len / 2] ^= 1;
    cr_assert_eq(sr_skeys_open(b, &kv, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_ECORRUPT);
    sealed.data[sealed.len / 2] ^= 1;
    /* the erasure of the stream key (suiro cluster erase): the chunk opens nowhere any more */
    cr_assert_eq(sr_skeys_destroy(a, &kv, kid, t + 1, NULL, err, sizeof err), SR_OK, "%s", err);
    sr_skeys *c = NULL;
    cr_assert_eq(sr_skeys_new(&mk, 30, &c), SR_OK);
    cr_assert_eq(sr_skeys_open(c, &kv, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_EERASED, "%s", err);
    cr_assert_eq(sr_skeys_open(a, &kv, &ad, sealed.data, sealed.len, &out, err, sizeof err), SR_EERASED, "%s", err);
    sr_skeys_free(a);
    sr_skeys_free(b);
    sr_skeys_free(c);
    for (int i = 0; i < m.n; i++) sr_buf_release(&m.val[i]);
    sr_buf_release(&chunk);
    sr_buf_release(&sealed);
    sr_buf_release(&out);
}
