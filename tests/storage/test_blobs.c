/* tests/storage/test_blobs.c -- the content-addressed blob store.
 *
 * storage_blobs:       round trips (edge sizes, streamed MiB, with and without
 *                      a key), dedup, stat/exists/delete, temp-file sweep.
 * storage_blobs_bad:   a flipped byte anywhere, truncation at every length,
 *                      swapped / dropped / foreign chunks -> SR_ECORRUPT;
 *                      wrong or missing key -> SR_EKEY.
 * storage_blobs_fault: the k-th VFS call or allocation fails during
 *                      begin/write/commit, for every k.
 * storage_blobs_crash: power loss at a random fsync; committed blobs are
 *                      whole, uncommitted ones absent.
 * storage_blobs_mem:   a 200 MiB streamed write and read stay within a few
 *                      chunks of memory.
 * storage_blobs_keyed: format v2, sealed by data keys through a resolver
 *                      (sr_keys): round trips, per-key isolation (a blob of
 *                      key A does not open under B; the same bytes under two
 *                      keys are two files, deleting one keeps the other),
 *                      an erased key (SR_EERASED naming the blob), v1 blobs
 *                      beside v2 ones, the golden files the writer
 *                      reproduces (tests/data/blobs/), and the flips,
 *                      truncations, fault sweeps and crash rounds above run
 *                      on v2 blobs too (g_kid). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codecs/base/sr_alloc.h"
#include "fault_alloc.h"
#include "storage/blobs.h"
#include "storage/crc32c.h"
#include "testutil.h"
#include "vfs_crash.h"
#include "vfs_faulty.h"

static char *dir;

/* ---- a resolver of data keys, as the keyring is (docs/keys.md) ---------- */

typedef struct tkey {
    uint32_t id;
    sr_key k;
    int destroyed;
} tkey;
static tkey g_ring[3];
static uint32_t g_kid; /* the data key the helpers write and read under; 0: v1 */

static tkey *ring_find(uint32_t id)
{
    for (size_t i = 0; i < sizeof g_ring / sizeof *g_ring; i++)
        if (g_ring[i].id == id) return &g_ring[i];
    return NULL;
}

static int ring_use(uint32_t id, sr_aead **a, char *msg, size_t msglen)
{
    tkey *t = ring_find(id);
    if (!t) {
        snprintf(msg, msglen, "key %08x is not in the keyring", (unsigned)id);
        return SR_EKEY;
    }
    if (t->destroyed) {
        snprintf(msg, msglen, "key %08x was destroyed", (unsigned)id);
        return SR_EERASED;
    }
    return sr_aead_create(&t->k, a);
}

static int ring_seal(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                     const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    sr_aead *a = NULL;
    int rc = ring_use(id, &a, msg, msglen);
    if (!rc) rc = sr_aead_seal(a, nonce, aad, aadlen, in, n, out, tag);
    sr_aead_destroy(a);
    return rc;
}

static int ring_open(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                     const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    sr_aead *a = NULL;
    int rc = ring_use(id, &a, msg, msglen);
    if (!rc) rc = sr_aead_open(a, nonce, aad, aadlen, in, n, out, tag);
    sr_aead_destroy(a);
    return rc;
}

static int ring_alg(void *ctx, uint32_t id)
{
    (void)ctx;
    return ring_find(id) ? SR_ALG_AES_256_GCM : 0;
}

static const sr_keys g_keys = {NULL, ring_seal, ring_open, ring_alg};

static void ring_reset(void)
{
    static const uint32_t ids[] = {0xa11ce001, 0xb0b00002, 0xca7e0003};
    for (size_t i = 0; i < 3; i++) {
        uint8_t b[SR_KEY_LEN];
        for (int j = 0; j < SR_KEY_LEN; j++) b[j] = (uint8_t)(0x40 + 7 * i + j);
        g_ring[i].id = ids[i];
        sr_key_from_bytes(&g_ring[i].k, b);
        g_ring[i].destroyed = 0;
    }
    g_kid = 0;
}
static void setup(void)
{
    dir = tu_tmpdir("blobs");
    ring_reset();
}
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

enum { HDR = 64, SMALL_CHUNK = 64 };

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Byte pos of the deterministic stream `seed`. */
static void gen_fill(uint64_t seed, uint64_t pos, uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t w = mix64(seed * 0x100000001B3ull + ((pos + i) >> 3));
        for (unsigned b = (unsigned)((pos + i) & 7); b < 8 && i < n; b++, i++) p[i] = (uint8_t)(w >> (8 * b));
    }
}

static void test_key(sr_key *k, uint8_t v)
{
    uint8_t b[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(v * 31 + i);
    sr_key_from_bytes(k, b);
}

static sr_blobs *store_open(const sr_vfs *vfs, const sr_key *key, uint32_t chunk)
{
    sr_blobs_opts o = {.vfs = vfs, .key = key, .keys = &g_keys, .chunk_size = chunk};
    sr_blobs *bs = NULL;
    sr_blob_errinfo ei;
    int rc = sr_blobs_open(dir, &o, &bs, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s %s", sr_err_name(rc), ei.msg);
    return bs;
}

/* Write `size` bytes of stream `seed` in random pieces (rng r; r NULL: one
 * piece at a time of up to 1 MiB). Returns the commit's rc; sha/size out. */
static int write_blob(sr_blobs *bs, uint64_t seed, uint64_t size, tu_rng *r, uint8_t sha[SR_HASH_LEN])
{
    sr_blob_writer *w = NULL;
    int rc = sr_blob_writer_begin_keyed(bs, g_kid, &w);
    if (rc) return rc;
    size_t bufsz = 1u << 20;
    uint8_t *buf = malloc(bufsz);
    uint64_t pos = 0;
    while (pos < size) {
        size_t n = r ? 1 + (size_t)tu_below(r, tu_below(r, 4) ? 3000 : 300000) : bufsz;
        if (n > size - pos) n = (size_t)(size - pos);
        gen_fill(seed, pos, buf, n);
        rc = sr_blob_writer_write(w, buf, n);
        if (rc) break;
        pos += n;
    }
    free(buf);
    if (rc) {
        sr_blob_writer_abort(w);
        return rc;
    }
    uint64_t got = 0;
    rc = sr_blob_writer_commit(w, sha, &got);
    if (!rc) cr_assert_eq(got, size);
    return rc;
}

static void expected_sha(uint64_t seed, uint64_t size, uint8_t out[SR_HASH_LEN])
{
    sr_sha256_ctx c;
    cr_assert_eq(sr_sha256_init(&c), SR_OK);
    uint8_t buf[65536];
    for (uint64_t pos = 0; pos < size;) {
        size_t n = size - pos < sizeof buf ? (size_t)(size - pos) : sizeof buf;
        gen_fill(seed, pos, buf, n);
        cr_assert_eq(sr_sha256_update(&c, buf, n), SR_OK);
        pos += n;
    }
    cr_assert_eq(sr_sha256_final(&c, out), SR_OK);
    sr_sha256_release(&c);
}

/* Read the whole blob with random buffer sizes; compare with the stream when
 * seed != 0. Returns SR_OK (read to a verified SR_DONE) or the error. */
static int read_blob(sr_blobs *bs, const uint8_t sha[SR_HASH_LEN], uint64_t seed, uint64_t size, tu_rng *r,
                     sr_blob_errinfo *eo)
{
    sr_blob_reader *rd = NULL;
    sr_blob_errinfo ei;
    int rc = sr_blob_reader_open_keyed(bs, sha, g_kid, &rd, &ei);
    if (rc) {
        if (eo) *eo = ei;
        return rc;
    }
    cr_assert_eq(sr_blob_reader_size(rd), size);
    uint8_t *buf = malloc(70000), *want = malloc(70000);
    uint64_t pos = 0;
    for (;;) {
        size_t cap = r ? 1 + (size_t)tu_below(r, 70000) : 70000, got = 0;
        rc = sr_blob_reader_read(rd, buf, cap, &got);
        if (rc) break;
        cr_assert(got > 0 && got <= cap);
        if (seed) {
            gen_fill(seed, pos, want, got);
            cr_assert(memcmp(buf, want, got) == 0, "content differs at %" PRIu64, pos);
        }
        pos += got;
    }
    if (rc == SR_DONE) {
        cr_assert_eq(pos, size);
        size_t got = 1;
        cr_assert_eq(sr_blob_reader_read(rd, buf, 10, &got), SR_DONE, "DONE is sticky");
        cr_assert_eq(got, 0);
        rc = SR_OK;
    } else {
        const sr_blob_errinfo *e = sr_blob_reader_errinfo(rd);
        if (rc == SR_ECORRUPT) cr_assert(strstr(e->msg, e->blob) && e->blob[0], "error names the blob: %s", e->msg);
        if (eo) *eo = *e;
    }
    free(buf);
    free(want);
    sr_blob_reader_close(rd);
    return rc;
}

static char *blob_file(const uint8_t sha[SR_HASH_LEN])
{
    char hex[2 * SR_HASH_LEN + 1];
    sr_hex(sha, SR_HASH_LEN, hex);
    size_t n = strlen(dir) + 90;
    char *p = malloc(n);
    int at = snprintf(p, n, "%s/%.2s/%.2s/%s", dir, hex, hex + 2, hex);
    if (g_kid) snprintf(p + at, n - (size_t)at, ".%08x", (unsigned)g_kid);
    return p;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_cb(void *ctx, const char *name)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

static int tmp_count(void)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/tmp", dir);
    int n = 0;
    if (sr_vfs_posix.list(&sr_vfs_posix, p, count_cb, &n)) return -1;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

TestSuite(storage_blobs, .init = setup, .fini = teardown, .timeout = 300);

static void round_trips(const sr_key *key)
{
    tu_rng r = {tu_seed(11)};
    uint32_t chunk = 4096;
    sr_blobs *bs = store_open(NULL, key, chunk);
    const uint64_t sizes[] = {0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3 * chunk + 7};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t sha[SR_HASH_LEN], want[SR_HASH_LEN];
        uint64_t seed = 100 + i, size = sizes[i];
        cr_assert_eq(write_blob(bs, seed, size, &r, sha), SR_OK, "size %" PRIu64, size);
        expected_sha(seed, size, want);
        cr_assert(memcmp(sha, want, SR_HASH_LEN) == 0, "address is the SHA-256 of the plaintext");
        cr_assert_eq(read_blob(bs, sha, seed, size, &r, NULL), SR_OK, "size %" PRIu64, size);
        uint64_t st = 99;
        cr_assert_eq(sr_blob_stat_keyed(bs, sha, g_kid, &st), SR_OK);
        cr_assert_eq(st, size);
        cr_assert_eq(sr_blob_exists_keyed(bs, sha, g_kid), SR_OK);
    }
    /* several MiB with the default chunk, streamed in random pieces */
    sr_blobs_close(bs);
    bs = store_open(NULL, key, 0);
    uint8_t sha[SR_HASH_LEN];
    uint64_t big = (5u << 20) + 12345;
    cr_assert_eq(write_blob(bs, 7, big, &r, sha), SR_OK);
    cr_assert_eq(read_blob(bs, sha, 7, big, &r, NULL), SR_OK);
    cr_assert_eq(tmp_count(), 0, "no temp files after commits");
    sr_blobs_close(bs);
}

Test(storage_blobs, round_trip_edge_sizes_and_mib_without_key) { round_trips(NULL); }

Test(storage_blobs, round_trip_edge_sizes_and_mib_with_key)
{
    sr_key k;
    test_key(&k, 1);
    round_trips(&k);
}

Test(storage_blobs, encrypted_blob_does_not_contain_plaintext)
{
    sr_key k;
    test_key(&k, 1);
    sr_blobs *bs = store_open(NULL, &k, SMALL_CHUNK);
    sr_blob_writer *w = NULL;
    const char text[] = "the quick brown fox jumps over the lazy dog";
    cr_assert_eq(sr_blob_writer_begin(bs, &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, text, sizeof text - 1), SR_OK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(sr_blob_writer_commit(w, sha, NULL), SR_OK);
    char *p = blob_file(sha);
    size_t n;
    uint8_t *d = tu_read_file(p, &n);
    cr_assert(d);
    cr_assert(memmem(d, n, "brown fox", 9) == NULL);
    free(d);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs, identical_content_is_stored_once)
{
    sr_blobs *bs = store_open(NULL, NULL, 1024);
    tu_rng r = {5};
    uint8_t a[SR_HASH_LEN], b[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 9, 5000, &r, a), SR_OK);
    char *p = blob_file(a);
    struct stat st1, st2;
    cr_assert_eq(stat(p, &st1), 0);
    cr_assert_eq(write_blob(bs, 9, 5000, &r, b), SR_OK);
    cr_assert(memcmp(a, b, SR_HASH_LEN) == 0);
    cr_assert_eq(stat(p, &st2), 0);
    cr_assert_eq(st1.st_ino, st2.st_ino, "the first copy is kept");
    cr_assert_eq(tmp_count(), 0, "the duplicate's temp file is dropped");
    cr_assert_eq(read_blob(bs, a, 9, 5000, NULL, NULL), SR_OK);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs, damaged_blob_is_replaced_by_a_new_commit)
{
    sr_blobs *bs = store_open(NULL, NULL, 1024);
    uint8_t a[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 9, 5000, NULL, a), SR_OK);
    char *p = blob_file(a);
    cr_assert_eq(tu_write_file(p, "junk", 4), 0);
    cr_assert_eq(read_blob(bs, a, 9, 5000, NULL, NULL), SR_ECORRUPT);
    cr_assert_eq(write_blob(bs, 9, 5000, NULL, a), SR_OK);
    cr_assert_eq(read_blob(bs, a, 9, 5000, NULL, NULL), SR_OK);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs, stat_exists_delete_and_not_found)
{
    sr_blobs *bs = store_open(NULL, NULL, 0);
    uint8_t sha[SR_HASH_LEN], none[SR_HASH_LEN] = {1, 2, 3};
    uint64_t sz;
    cr_assert_eq(write_blob(bs, 3, 777, NULL, sha), SR_OK);
    cr_assert_eq(sr_blob_exists(bs, none), SR_ENOTFOUND);
    cr_assert_eq(sr_blob_stat(bs, none, &sz), SR_ENOTFOUND);
    sr_blob_reader *rd = NULL;
    sr_blob_errinfo ei;
    cr_assert_eq(sr_blob_reader_open(bs, none, &rd, &ei), SR_ENOTFOUND);
    cr_assert_null(rd);
    cr_assert_eq(sr_blob_delete(bs, sha), SR_OK);
    cr_assert_eq(sr_blob_exists(bs, sha), SR_ENOTFOUND);
    cr_assert_eq(sr_blob_delete(bs, sha), SR_ENOTFOUND);
    sr_blobs_close(bs);
}

Test(storage_blobs, abort_and_open_remove_temp_files)
{
    sr_blobs *bs = store_open(NULL, NULL, 0);
    sr_blob_writer *w = NULL;
    cr_assert_eq(sr_blob_writer_begin(bs, &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, "abc", 3), SR_OK);
    cr_assert_eq(tmp_count(), 1);
    sr_blob_writer_abort(w);
    cr_assert_eq(tmp_count(), 0);
    sr_blobs_close(bs);
    char p[4096];
    snprintf(p, sizeof p, "%s/tmp/leftover.tmp", dir);
    cr_assert_eq(tu_write_file(p, "xx", 2), 0);
    bs = store_open(NULL, NULL, 0);
    cr_assert_eq(tmp_count(), 0);
    sr_blobs_close(bs);
}

Test(storage_blobs, second_open_is_locked_out_and_options_checked)
{
    sr_blobs *bs = store_open(NULL, NULL, 0), *b2 = NULL;
    sr_blob_errinfo ei;
    cr_assert_eq(sr_blobs_open(dir, NULL, &b2, &ei), SR_ELOCKED);
    cr_assert_null(b2);
    sr_blobs_close(bs);
    sr_blobs_opts o = {.chunk_size = 10};
    cr_assert_eq(sr_blobs_open(dir, &o, &b2, &ei), SR_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Damage and keys                                                           */

TestSuite(storage_blobs_bad, .init = setup, .fini = teardown, .timeout = 300);

enum { BAD_SIZE = 4 * SMALL_CHUNK + 17 }; /* four full chunks and a short one */

static void put_file(const char *p, const uint8_t *d, size_t n) { cr_assert_eq(tu_write_file(p, d, n), 0); }

static void every_flip(const sr_key *key)
{
    sr_blobs *bs = store_open(NULL, key, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 42, BAD_SIZE, NULL, sha), SR_OK);
    char *p = blob_file(sha);
    size_t n;
    uint8_t *orig = tu_read_file(p, &n), *d = malloc(n);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(d, orig, n);
            d[i] ^= (uint8_t)(1u << bit);
            put_file(p, d, n);
            sr_blob_errinfo ei;
            int rc = read_blob(bs, sha, 0, BAD_SIZE, NULL, &ei);
            cr_assert_eq(rc, SR_ECORRUPT, "flip of bit %d at byte %zu of %zu: %s", bit, i, n, sr_err_name(rc));
        }
    }
    put_file(p, orig, n);
    cr_assert_eq(read_blob(bs, sha, 42, BAD_SIZE, NULL, NULL), SR_OK);
    free(orig);
    free(d);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs_bad, flipped_byte_anywhere_is_corrupt_without_key) { every_flip(NULL); }
Test(storage_blobs_bad, flipped_byte_anywhere_is_corrupt_with_key)
{
    sr_key k;
    test_key(&k, 2);
    every_flip(&k);
}

static void every_truncation(const sr_key *key)
{
    sr_blobs *bs = store_open(NULL, key, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 43, BAD_SIZE, NULL, sha), SR_OK);
    char *p = blob_file(sha);
    size_t n;
    uint8_t *orig = tu_read_file(p, &n);
    for (size_t len = 0; len < n; len++) { /* includes every chunk boundary */
        put_file(p, orig, len);
        int rc = read_blob(bs, sha, 0, BAD_SIZE, NULL, NULL);
        cr_assert_eq(rc, SR_ECORRUPT, "truncated to %zu of %zu: %s", len, n, sr_err_name(rc));
        uint64_t sz;
        cr_assert_eq(sr_blob_stat_keyed(bs, sha, g_kid, &sz), SR_ECORRUPT, "stat, truncated to %zu", len);
    }
    /* and an appended byte */
    uint8_t *more = malloc(n + 1);
    memcpy(more, orig, n);
    more[n] = 0;
    put_file(p, more, n + 1);
    cr_assert_eq(read_blob(bs, sha, 0, BAD_SIZE, NULL, NULL), SR_ECORRUPT);
    free(more);
    free(orig);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs_bad, truncation_at_every_length_is_corrupt_without_key) { every_truncation(NULL); }
Test(storage_blobs_bad, truncation_at_every_length_is_corrupt_with_key)
{
    sr_key k;
    test_key(&k, 2);
    every_truncation(&k);
}

static void chunk_games(const sr_key *key, size_t rec)
{
    sr_blobs *bs = store_open(NULL, key, SMALL_CHUNK);
    uint8_t a[SR_HASH_LEN], b[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 44, BAD_SIZE, NULL, a), SR_OK);
    cr_assert_eq(write_blob(bs, 45, BAD_SIZE, NULL, b), SR_OK);
    char *pa = blob_file(a), *pb = blob_file(b);
    size_t na, nb;
    uint8_t *da = tu_read_file(pa, &na), *db = tu_read_file(pb, &nb), *d = malloc(na);
    cr_assert_eq(na, nb);
    cr_assert_eq(na, HDR + 4 * rec + (17 + rec - SMALL_CHUNK) + (key || g_kid ? 84 : 56), "layout as documented");
    /* swap chunks 1 and 2 */
    memcpy(d, da, na);
    memcpy(d + HDR + rec, da + HDR + 2 * rec, rec);
    memcpy(d + HDR + 2 * rec, da + HDR + rec, rec);
    put_file(pa, d, na);
    cr_assert_eq(read_blob(bs, a, 0, BAD_SIZE, NULL, NULL), SR_ECORRUPT, "swapped chunks");
    /* chunk 1 of blob b in blob a */
    memcpy(d, da, na);
    memcpy(d + HDR + rec, db + HDR + rec, rec);
    put_file(pa, d, na);
    cr_assert_eq(read_blob(bs, a, 0, BAD_SIZE, NULL, NULL), SR_ECORRUPT, "foreign chunk");
    /* chunk 1 dropped (file shorter by one record) */
    memcpy(d, da, HDR + rec);
    memcpy(d + HDR + rec, da + HDR + 2 * rec, na - HDR - 2 * rec);
    put_file(pa, d, na - rec);
    cr_assert_eq(read_blob(bs, a, 0, BAD_SIZE, NULL, NULL), SR_ECORRUPT, "dropped chunk");
    /* all of b's file under a's name */
    put_file(pa, db, nb);
    cr_assert_eq(read_blob(bs, a, 0, BAD_SIZE, NULL, NULL), SR_ECORRUPT, "misplaced blob");
    put_file(pa, da, na);
    cr_assert_eq(read_blob(bs, a, 44, BAD_SIZE, NULL, NULL), SR_OK);
    free(da);
    free(db);
    free(d);
    free(pa);
    free(pb);
    sr_blobs_close(bs);
}

Test(storage_blobs_bad, swapped_dropped_foreign_chunks_are_corrupt_without_key)
{
    chunk_games(NULL, SMALL_CHUNK + 8);
}
Test(storage_blobs_bad, swapped_dropped_foreign_chunks_are_corrupt_with_key)
{
    sr_key k;
    test_key(&k, 2);
    chunk_games(&k, SMALL_CHUNK + 32);
}

Test(storage_blobs_bad, wrong_or_missing_key_is_ekey_not_corruption)
{
    sr_key k1, k2;
    test_key(&k1, 1);
    test_key(&k2, 2);
    sr_blobs *bs = store_open(NULL, &k1, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 46, BAD_SIZE, NULL, sha), SR_OK);
    sr_blobs_close(bs);
    const sr_key *others[] = {&k2, NULL};
    for (int i = 0; i < 2; i++) {
        bs = store_open(NULL, others[i], SMALL_CHUNK);
        sr_blob_errinfo ei;
        cr_assert_eq(read_blob(bs, sha, 0, BAD_SIZE, NULL, &ei), SR_EKEY, "%s", i ? "no key" : "wrong key");
        cr_assert(strstr(ei.msg, "key"), "%s", ei.msg);
        uint64_t sz;
        cr_assert_eq(sr_blob_stat(bs, sha, &sz), SR_EKEY);
        sr_blobs_close(bs);
    }
    bs = store_open(NULL, &k1, SMALL_CHUNK);
    cr_assert_eq(read_blob(bs, sha, 46, BAD_SIZE, NULL, NULL), SR_OK);
    sr_blobs_close(bs);
}

Test(storage_blobs_bad, unencrypted_blobs_stay_readable_after_a_key_is_set)
{
    sr_key k;
    test_key(&k, 1);
    sr_blobs *bs = store_open(NULL, NULL, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 47, BAD_SIZE, NULL, sha), SR_OK);
    sr_blobs_close(bs);
    bs = store_open(NULL, &k, SMALL_CHUNK);
    cr_assert_eq(read_blob(bs, sha, 47, BAD_SIZE, NULL, NULL), SR_OK);
    sr_blobs_close(bs);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */

TestSuite(storage_blobs_fault, .init = setup, .fini = teardown, .timeout = 600);

enum { FAULT_SIZE = 3 * 256 + 100 };

/* After a write+commit that returned rc: reopen with the real VFS and check
 * the blob is readable (rc == OK) or absent, and no temp file survives. */
static void check_after(int rc, int had_before, const uint8_t want[SR_HASH_LEN], const sr_key *key,
                        const char *ctx)
{
    char *p = blob_file(want);
    if (rc != SR_OK && !had_before) cr_assert(!file_exists(p), "%s: failed commit left a visible blob", ctx);
    free(p);
    sr_blobs *bs = store_open(NULL, key, 256);
    cr_assert_eq(tmp_count(), 0, "%s: open sweeps temp files", ctx);
    if (rc == SR_OK || had_before)
        cr_assert_eq(read_blob(bs, want, 77, FAULT_SIZE, NULL, NULL), SR_OK, "%s: blob unreadable", ctx);
    else
        cr_assert_eq(sr_blob_exists_keyed(bs, want, g_kid), SR_ENOTFOUND, "%s", ctx);
    sr_blobs_close(bs);
}

static void vfs_faults(vf_kind kind, const char *kname, const sr_key *key, int dedup)
{
    uint8_t want[SR_HASH_LEN];
    expected_sha(77, FAULT_SIZE, want);
    unsigned long k;
    for (k = 1; k < 500; k++) {
        tu_rmrf(dir);
        vfs_faulty_arm(0, kind);
        sr_blobs *bs = store_open(&vfs_faulty, key, 256);
        if (dedup) {
            uint8_t s[SR_HASH_LEN];
            cr_assert_eq(write_blob(bs, 77, FAULT_SIZE, NULL, s), SR_OK);
        }
        tu_rng r = {k};
        uint8_t sha[SR_HASH_LEN];
        vfs_faulty_arm(k, kind);
        int rc = write_blob(bs, 77, FAULT_SIZE, &r, sha);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, kind);
        char ctx[96];
        snprintf(ctx, sizeof ctx, "%s%s k=%lu", kname, dedup ? " dedup" : "", k);
        cr_assert(rc == SR_OK || rc == SR_EIO || rc == SR_ENOSPC || rc == SR_EPOISONED, "%s: %s", ctx,
                  sr_err_name(rc));
        if (!fired) cr_assert_eq(rc, SR_OK, "%s", ctx);
        if (rc == SR_OK) cr_assert(memcmp(sha, want, SR_HASH_LEN) == 0);
        sr_blobs_close(bs);
        check_after(rc, dedup, want, key, ctx);
        if (!fired) break;
    }
    cr_assert(k > 3 && k < 500, "%s: fault sweep ended at k=%lu", kname, k);
}

Test(storage_blobs_fault, every_vfs_call_fails_eio)
{
    sr_key key;
    test_key(&key, 3);
    vfs_faults(VF_EIO, "EIO", NULL, 0);
    vfs_faults(VF_EIO, "EIO key", &key, 0);
    vfs_faults(VF_EIO, "EIO", NULL, 1);
}
Test(storage_blobs_fault, every_vfs_call_fails_enospc_or_short)
{
    sr_key key;
    test_key(&key, 3);
    vfs_faults(VF_ENOSPC, "ENOSPC", &key, 0);
    vfs_faults(VF_SHORT, "SHORT", NULL, 0);
    vfs_faults(VF_SHORT, "SHORT key", &key, 1);
}
Test(storage_blobs_fault, every_sync_fails)
{
    sr_key key;
    test_key(&key, 3);
    vfs_faults(VF_SYNC_FAIL, "SYNC", NULL, 0);
    vfs_faults(VF_SYNC_FAIL, "SYNC key", &key, 1);
}

static void alloc_faults(const sr_key *key)
{
    uint8_t want[SR_HASH_LEN];
    expected_sha(77, FAULT_SIZE, want);
    unsigned long k;
    for (k = 1; k < 500; k++) {
        tu_rmrf(dir);
        sr_blobs *bs = store_open(NULL, key, 256);
        tu_rng r = {k};
        uint8_t sha[SR_HASH_LEN];
        fault_alloc_install();
        fault_alloc_arm(k);
        int rc = write_blob(bs, 77, FAULT_SIZE, &r, sha);
        int fired = fault_alloc_fired();
        fault_alloc_arm(0);
        sr_blobs_close(bs);
        fault_alloc_uninstall();
        char ctx[64];
        snprintf(ctx, sizeof ctx, "alloc%s k=%lu", key ? " key" : "", k);
        cr_assert(rc == SR_OK || rc == SR_ENOMEM, "%s: %s", ctx, sr_err_name(rc));
        if (!fired) cr_assert_eq(rc, SR_OK, "%s", ctx);
        check_after(rc, 0, want, key, ctx);
        if (!fired) break;
    }
    cr_assert(k > 3 && k < 500, "alloc sweep ended at k=%lu", k);
}

Test(storage_blobs_fault, every_allocation_fails)
{
    sr_key key;
    test_key(&key, 3);
    alloc_faults(NULL);
    alloc_faults(&key);
}

/* ------------------------------------------------------------------------ */
/* Crashes                                                                   */

TestSuite(storage_blobs_crash, .init = setup, .fini = teardown, .timeout = 600);

static int rounds_torn, rounds_acked; /* the test covers what it claims */

static void crash_round(uint64_t seed)
{
    tu_rng r = {seed};
    sr_key key;
    test_key(&key, 4);
    const sr_key *kp = tu_below(&r, 2) ? &key : NULL;
    uint32_t chunk = 64 + (uint32_t)tu_below(&r, 2000);
    tu_rmrf(dir);
    vfs_crash_reset();
    sr_blobs *bs = store_open(&vfs_crash, kp, chunk);
    vfs_crash_at_sync(1 + tu_below(&r, 8));
    enum { N = 6 };
    uint64_t seeds[N], sizes[N];
    int acked[N] = {0};
    int n;
    for (n = 0; n < N; n++) {
        seeds[n] = 1 + tu_below(&r, 4); /* repeats exercise dedup */
        sizes[n] = 1000 * seeds[n] + seeds[n];
        if (tu_below(&r, 10) == 0) vfs_crash_now();
        uint8_t sha[SR_HASH_LEN];
        int rc = write_blob(bs, seeds[n], sizes[n], &r, sha);
        if (rc != SR_OK) break;
        acked[n] = 1;
    }
    if (n == N) vfs_crash_now();
    else rounds_torn++;
    if (acked[0]) rounds_acked++;
    sr_blobs_close(bs);
    vfs_crash_resolve(seed ^ 0x5eed);
    vfs_crash_reset();
    bs = store_open(NULL, kp, chunk);
    cr_assert_eq(tmp_count(), 0);
    for (uint64_t s = 1; s <= 4; s++) {
        int was_acked = 0, tried = 0;
        for (int i = 0; i < N && i <= n; i++)
            if (seeds[i] == s && i < N) {
                tried = 1;
                was_acked |= acked[i];
            }
        uint8_t sha[SR_HASH_LEN];
        uint64_t size = 1000 * s + s;
        expected_sha(s, size, sha);
        int ex = sr_blob_exists_keyed(bs, sha, g_kid);
        if (was_acked) {
            sr_blob_errinfo ei;
            int rc = read_blob(bs, sha, s, size, NULL, &ei);
            cr_assert_eq(rc, SR_OK, "seed %" PRIu64 ": committed blob %" PRIu64 " unreadable: %s %s", seed, s,
                         sr_err_name(rc), ei.msg);
        } else {
            cr_assert_eq(ex, SR_ENOTFOUND, "seed %" PRIu64 ": uncommitted blob %" PRIu64 " (tried %d) is visible",
                         seed, s, tried);
        }
    }
    /* the store works after recovery */
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 99, 5000, &r, sha), SR_OK);
    cr_assert_eq(read_blob(bs, sha, 99, 5000, NULL, NULL), SR_OK);
    sr_blobs_close(bs);
}

static void crash_rounds(uint64_t base, int iters)
{
    rounds_torn = rounds_acked = 0;
    for (int i = 0; i < iters; i++) crash_round(base + (uint64_t)i);
    cr_assert(rounds_torn > iters / 4 && rounds_acked > iters / 4,
              "crash coverage: %d rounds crashed mid-write, %d had a committed blob", rounds_torn, rounds_acked);
}

Test(storage_blobs_crash, committed_blobs_whole_uncommitted_absent) { crash_rounds(tu_seed(1000), tu_iters(300)); }

/* the same for version 2 blobs, sealed by a data key through the resolver */
Test(storage_blobs_crash, committed_v2_blobs_whole_uncommitted_absent)
{
    g_kid = 0xa11ce001;
    crash_rounds(tu_seed(2000), tu_iters(150));
}

/* ------------------------------------------------------------------------ */
/* Memory bound                                                              */

TestSuite(storage_blobs_mem, .init = setup, .fini = teardown, .timeout = 600);

static atomic_size_t live, peak;

static void *cm_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    size_t now = atomic_fetch_add(&live, n) + n, pk = atomic_load(&peak);
    while (now > pk && !atomic_compare_exchange_weak(&peak, &pk, now)) {
    }
    return (char *)p + 16;
}
static void cm_free(void *q)
{
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    atomic_fetch_sub(&live, p[0]);
    free(p);
}
static void *cm_realloc(void *q, size_t n)
{
    void *r = cm_malloc(n);
    if (!r) return NULL;
    if (q) {
        size_t old = ((size_t *)((char *)q - 16))[0];
        memcpy(r, q, old < n ? old : n);
        cm_free(q);
    }
    return r;
}

Test(storage_blobs_mem, streamed_200_mib_stays_within_a_few_chunks)
{
    static const sr_allocator ca = {cm_malloc, cm_realloc, cm_free};
    sr_set_allocator(&ca);
    sr_key key;
    test_key(&key, 5);
    sr_blobs *bs = store_open(NULL, &key, 0);
    const uint64_t total = 200ull << 20;
    const size_t piece = 100000; /* not a multiple of the chunk */
    uint8_t *buf = malloc(piece);
    gen_fill(1, 0, buf, piece);
    sr_sha256_ctx want;
    cr_assert_eq(sr_sha256_init(&want), SR_OK);
    atomic_store(&peak, atomic_load(&live));
    size_t base = atomic_load(&live);
    sr_blob_writer *w = NULL;
    cr_assert_eq(sr_blob_writer_begin(bs, &w), SR_OK);
    uint64_t pos = 0, i = 0;
    while (pos < total) {
        size_t n = total - pos < piece ? (size_t)(total - pos) : piece;
        memcpy(buf, &i, sizeof i); /* every piece differs */
        i++;
        cr_assert_eq(sr_sha256_update(&want, buf, n), SR_OK);
        cr_assert_eq(sr_blob_writer_write(w, buf, n), SR_OK);
        pos += n;
    }
    uint8_t sha[SR_HASH_LEN], wsha[SR_HASH_LEN];
    uint64_t size = 0;
    cr_assert_eq(sr_blob_writer_commit(w, sha, &size), SR_OK);
    cr_assert_eq(sr_sha256_final(&want, wsha), SR_OK);
    sr_sha256_release(&want);
    cr_assert(memcmp(sha, wsha, SR_HASH_LEN) == 0);
    cr_assert_eq(size, total);
    size_t wpeak = atomic_load(&peak) - base;
    cr_assert(wpeak < 4 * SR_BLOB_DEFAULT_CHUNK, "writer peaked at %zu bytes", wpeak);
    /* read it back, also bounded */
    atomic_store(&peak, atomic_load(&live));
    sr_blob_reader *rd = NULL;
    sr_blob_errinfo ei;
    cr_assert_eq(sr_blob_reader_open(bs, sha, &rd, &ei), SR_OK, "%s", ei.msg);
    uint64_t got_total = 0;
    int rc;
    for (;;) {
        size_t got = 0;
        rc = sr_blob_reader_read(rd, buf, piece, &got);
        if (rc) break;
        got_total += got;
    }
    cr_assert_eq(rc, SR_DONE, "%s", sr_blob_reader_errinfo(rd)->msg);
    cr_assert_eq(got_total, total);
    sr_blob_reader_close(rd);
    size_t rpeak = atomic_load(&peak) - base;
    cr_assert(rpeak < 4 * SR_BLOB_DEFAULT_CHUNK, "reader peaked at %zu bytes", rpeak);
    cr_assert_eq(sr_blob_delete(bs, sha), SR_OK);
    sr_blobs_close(bs);
    free(buf);
    sr_set_allocator(NULL);
}

/* ------------------------------------------------------------------------ */
/* sr_blob_verify and read-only stores (issue #11 item 11: `suiro verify`)   */

static void verify_every_flip(const sr_key *key)
{
    sr_blobs *bs = store_open(NULL, key, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 7, BAD_SIZE, NULL, sha), SR_OK);
    /* a read-only handle beside the locked one, as `suiro verify` beside a server */
    sr_blobs_opts ro = {.key = key, .keys = &g_keys, .readonly = 1};
    sr_blobs *rb = NULL;
    cr_assert_eq(sr_blobs_open(dir, &ro, &rb, NULL), SR_OK);
    uint64_t size = 0;
    sr_blob_errinfo ei;
    cr_assert_eq(sr_blob_verify_keyed(rb, sha, g_kid, &size, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(size, BAD_SIZE);
    char hex[2 * SR_HASH_LEN + 1];
    sr_hex(sha, SR_HASH_LEN, hex);
    char *p = blob_file(sha);
    size_t n;
    uint8_t *orig = tu_read_file(p, &n), *d = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(d, orig, n);
        d[i] ^= 0x10;
        put_file(p, d, n);
        memset(&ei, 0, sizeof ei);
        int rc = sr_blob_verify_keyed(rb, sha, g_kid, NULL, &ei);
        cr_assert_eq(rc, SR_ECORRUPT, "flip at byte %zu of %zu: %s", i, n, sr_err_name(rc));
        cr_assert_str_eq(ei.blob, hex, "names the blob (byte %zu): %s", i, ei.msg);
    }
    put_file(p, orig, n);
    cr_assert_eq(sr_blob_verify_keyed(rb, sha, g_kid, NULL, NULL), SR_OK);
    unlink(p);
    cr_assert_eq(sr_blob_verify_keyed(rb, sha, g_kid, NULL, NULL), SR_ENOTFOUND);
    free(orig);
    free(d);
    free(p);
    sr_blobs_close(rb);
    sr_blobs_close(bs);
}

Test(storage_blobs_bad, verify_finds_a_flipped_byte_anywhere_without_key) { verify_every_flip(NULL); }
Test(storage_blobs_bad, verify_finds_a_flipped_byte_anywhere_with_key)
{
    sr_key k;
    test_key(&k, 5);
    verify_every_flip(&k);
}

Test(storage_blobs, readonly_store_takes_no_lock_and_refuses_writes)
{
    sr_blobs *bs = store_open(NULL, NULL, 0);
    sr_blobs_opts ro = {.readonly = 1};
    sr_blobs *rb = NULL;
    cr_assert_eq(sr_blobs_open(dir, &ro, &rb, NULL), SR_OK, "no lock taken: the writer holds it");
    sr_blob_writer *w = NULL;
    cr_assert_eq(sr_blob_writer_begin(rb, &w), SR_EINVAL);
    uint8_t sha[SR_HASH_LEN] = {0};
    cr_assert_eq(sr_blob_delete(rb, sha), SR_EINVAL);
    sr_blobs_close(rb);
    sr_blobs_close(bs);
    /* a missing store directory is not created */
    char *nd = malloc(strlen(dir) + 16);
    sprintf(nd, "%s/none", dir);
    cr_assert_eq(sr_blobs_open(nd, &ro, &rb, NULL), SR_OK);
    struct stat st;
    cr_assert_neq(stat(nd, &st), 0);
    cr_assert_eq(sr_blob_verify(rb, sha, NULL, NULL), SR_ENOTFOUND);
    sr_blobs_close(rb);
    free(nd);
}

/* ------------------------------------------------------------------------ */
/* Format v2: sealed by data keys through a resolver (issue #16)            */

TestSuite(storage_blobs_keyed, .init = setup, .fini = teardown, .timeout = 600);

static const uint32_t KA = 0xa11ce001, KB = 0xb0b00002;

Test(storage_blobs_keyed, round_trips_under_a_data_key_and_the_file_names_it)
{
    g_kid = KA;
    round_trips(NULL);
    /* the name is <sha>.<kid>; no v1 name exists */
    sr_blobs *bs = store_open(NULL, NULL, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 60, BAD_SIZE, NULL, sha), SR_OK);
    char *p = blob_file(sha);
    cr_assert(file_exists(p) && strstr(p, ".a11ce001"), "%s", p);
    g_kid = 0;
    char *v1 = blob_file(sha);
    cr_assert(!file_exists(v1));
    cr_assert_eq(sr_blob_exists(bs, sha), SR_ENOTFOUND);
    free(v1);
    /* the header: version 2, the key id and the AEAD */
    size_t n;
    uint8_t *b = tu_read_file(p, &n);
    cr_assert(b && n > 64);
    cr_assert_eq(sr_get_le16(b + 8), 2);
    cr_assert_eq(sr_get_le32(b + 16), KA);
    cr_assert_eq(sr_get_le16(b + 40), SR_ALG_AES_256_GCM);
    free(b);
    free(p);
    sr_blobs_close(bs);
}

Test(storage_blobs_keyed, a_blob_of_key_a_does_not_open_under_b_and_holds_no_plaintext)
{
    sr_blobs *bs = store_open(NULL, NULL, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    g_kid = KA;
    cr_assert_eq(write_blob(bs, 61, 5000, NULL, sha), SR_OK);
    char *pa = blob_file(sha);
    /* moved to B's name: B's key does not open it (the name and the header
     * disagree, and the seal is A's) */
    g_kid = KB;
    char *pb = blob_file(sha);
    cr_assert_eq(rename(pa, pb), 0);
    sr_blob_errinfo ei;
    cr_assert_eq(read_blob(bs, sha, 0, 5000, NULL, &ei), SR_ECORRUPT);
    cr_assert(strstr(ei.msg, "misplaced"), "%s", ei.msg);
    /* the header changed to name B too (CRC fixed): the tag does not verify */
    size_t n;
    uint8_t *b = tu_read_file(pb, &n);
    sr_put_le32(b + 16, KB);
    sr_put_le32(b + 60, sr_crc32c(0, b, 60));
    put_file(pb, b, n);
    cr_assert_eq(read_blob(bs, sha, 0, 5000, NULL, &ei), SR_ECORRUPT);
    cr_assert(strstr(ei.msg, "authentication"), "%s", ei.msg);
    /* and no plaintext run of the stream is in the file */
    uint8_t want[64];
    gen_fill(61, 1000, want, sizeof want);
    cr_assert_null(memmem(b, n, want, 16));
    free(b);
    free(pa);
    free(pb);
    sr_blobs_close(bs);
}

Test(storage_blobs_keyed, the_same_bytes_under_two_keys_are_two_files_and_deleting_one_keeps_the_other)
{
    sr_blobs *bs = store_open(NULL, NULL, SMALL_CHUNK);
    uint8_t sa[SR_HASH_LEN], sb[SR_HASH_LEN], s0[SR_HASH_LEN];
    g_kid = KA;
    cr_assert_eq(write_blob(bs, 62, BAD_SIZE, NULL, sa), SR_OK);
    char *pa = blob_file(sa);
    struct stat a1, a2;
    cr_assert_eq(stat(pa, &a1), 0);
    cr_assert_eq(write_blob(bs, 62, BAD_SIZE, NULL, sa), SR_OK); /* dedup under A: the file stays */
    cr_assert_eq(stat(pa, &a2), 0);
    cr_assert_eq(a1.st_ino, a2.st_ino, "dedup under the same key");
    g_kid = KB;
    cr_assert_eq(write_blob(bs, 62, BAD_SIZE, NULL, sb), SR_OK);
    g_kid = 0;
    cr_assert_eq(write_blob(bs, 62, BAD_SIZE, NULL, s0), SR_OK); /* and a v1 one beside */
    cr_assert_arr_eq(sa, sb, SR_HASH_LEN);
    cr_assert_arr_eq(sa, s0, SR_HASH_LEN);
    cr_assert_eq(sr_blob_exists_keyed(bs, sa, KA), SR_OK);
    cr_assert_eq(sr_blob_exists_keyed(bs, sa, KB), SR_OK);
    cr_assert_eq(sr_blob_exists(bs, sa), SR_OK);
    cr_assert_eq(sr_blob_delete_keyed(bs, sa, KA), SR_OK);
    cr_assert_eq(sr_blob_exists_keyed(bs, sa, KA), SR_ENOTFOUND);
    g_kid = KB;
    cr_assert_eq(read_blob(bs, sb, 62, BAD_SIZE, NULL, NULL), SR_OK, "B's blob is untouched");
    g_kid = 0;
    cr_assert_eq(read_blob(bs, s0, 62, BAD_SIZE, NULL, NULL), SR_OK, "the v1 blob is untouched");
    uint64_t sz = 0;
    cr_assert_eq(sr_blob_stat_keyed(bs, sb, KB, &sz), SR_OK);
    cr_assert_eq(sz, BAD_SIZE);
    cr_assert_eq(sr_blob_verify_keyed(bs, sb, KB, &sz, NULL), SR_OK);
    free(pa);
    sr_blobs_close(bs);
}

Test(storage_blobs_keyed, an_erased_key_is_eerased_naming_the_blob_and_an_unknown_one_ekey)
{
    sr_blobs *bs = store_open(NULL, NULL, SMALL_CHUNK);
    uint8_t sha[SR_HASH_LEN];
    g_kid = KA;
    cr_assert_eq(write_blob(bs, 63, BAD_SIZE, NULL, sha), SR_OK);
    char hex[2 * SR_HASH_LEN + 1];
    sr_hex(sha, SR_HASH_LEN, hex);
    /* a reader opened before the key is destroyed fails at its next chunk */
    sr_blob_reader *rd = NULL;
    sr_blob_errinfo ei;
    cr_assert_eq(sr_blob_reader_open_keyed(bs, sha, KA, &rd, &ei), SR_OK, "%s", ei.msg);
    ring_find(KA)->destroyed = 1;
    uint8_t buf[100];
    size_t got;
    cr_assert_eq(sr_blob_reader_read(rd, buf, sizeof buf, &got), SR_EERASED);
    cr_assert(strstr(sr_blob_reader_errinfo(rd)->msg, hex), "%s", sr_blob_reader_errinfo(rd)->msg);
    sr_blob_reader_close(rd);
    /* opening, stat and verify after it */
    cr_assert_eq(read_blob(bs, sha, 0, BAD_SIZE, NULL, &ei), SR_EERASED);
    cr_assert(strstr(ei.msg, hex) && strstr(ei.msg, "erased") && strstr(ei.msg, "a11ce001"), "%s", ei.msg);
    cr_assert_str_eq(ei.blob, hex);
    uint64_t sz;
    cr_assert_eq(sr_blob_stat_keyed(bs, sha, KA, &sz), SR_EERASED);
    cr_assert_eq(sr_blob_verify_keyed(bs, sha, KA, NULL, &ei), SR_EERASED);
    /* a writer under a destroyed key is poisoned; nothing is published */
    sr_blob_writer *w = NULL;
    cr_assert_eq(sr_blob_writer_begin_keyed(bs, KA, &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, buf, SMALL_CHUNK), SR_EERASED);
    cr_assert_eq(sr_blob_writer_commit(w, NULL, NULL), SR_EPOISONED);
    /* a key the resolver does not know */
    cr_assert_eq(sr_blob_writer_begin_keyed(bs, 0x12345678, &w), SR_EKEY);
    ring_find(KA)->id = 0x0badbeef; /* A is gone from the keyring altogether */
    cr_assert_eq(read_blob(bs, sha, 0, BAD_SIZE, NULL, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "needs data key a11ce001"), "%s", ei.msg);
    sr_blobs_close(bs);
    /* a store without a resolver: v2 blobs are SR_EKEY, writers refused */
    sr_blobs_opts o = {.chunk_size = SMALL_CHUNK};
    cr_assert_eq(sr_blobs_open(dir, &o, &bs, NULL), SR_OK);
    sr_blob_reader *r2 = NULL;
    cr_assert_eq(sr_blob_reader_open_keyed(bs, sha, KA, &r2, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "no keyring"), "%s", ei.msg);
    cr_assert_eq(sr_blob_writer_begin_keyed(bs, KA, &w), SR_EINVAL);
    sr_blobs_close(bs);
}

Test(storage_blobs_keyed, v1_blobs_of_the_store_key_read_beside_v2_ones)
{
    sr_key k;
    test_key(&k, 9);
    sr_blobs *bs = store_open(NULL, &k, SMALL_CHUNK);
    uint8_t s1[SR_HASH_LEN], s2[SR_HASH_LEN];
    cr_assert_eq(write_blob(bs, 64, BAD_SIZE, NULL, s1), SR_OK); /* v1, the store's key */
    g_kid = KB;
    cr_assert_eq(write_blob(bs, 65, BAD_SIZE, NULL, s2), SR_OK); /* v2, data key B */
    sr_blobs_close(bs);
    bs = store_open(NULL, &k, SMALL_CHUNK);
    g_kid = 0;
    cr_assert_eq(read_blob(bs, s1, 64, BAD_SIZE, NULL, NULL), SR_OK);
    g_kid = KB;
    cr_assert_eq(read_blob(bs, s2, 65, BAD_SIZE, NULL, NULL), SR_OK);
    /* a v1 file under a v2 name is refused */
    g_kid = 0;
    char *p1 = blob_file(s1);
    g_kid = KB;
    char *p2 = blob_file(s1);
    cr_assert_eq(link(p1, p2), 0);
    sr_blob_errinfo ei;
    cr_assert_eq(read_blob(bs, s1, 0, BAD_SIZE, NULL, &ei), SR_ECORRUPT);
    free(p1);
    free(p2);
    sr_blobs_close(bs);
}

Test(storage_blobs_keyed, flips_truncations_and_foreign_chunks_are_corrupt)
{
    g_kid = KA;
    every_flip(NULL);
    tu_rmrf(dir);
    every_truncation(NULL);
    tu_rmrf(dir);
    chunk_games(NULL, SMALL_CHUNK + 32);
    tu_rmrf(dir);
    verify_every_flip(NULL);
}

Test(storage_blobs_keyed, every_vfs_call_and_allocation_fails)
{
    g_kid = KA;
    vfs_faults(VF_EIO, "EIO v2", NULL, 0);
    vfs_faults(VF_ENOSPC, "ENOSPC v2", NULL, 1);
    vfs_faults(VF_SHORT, "SHORT v2", NULL, 0);
    vfs_faults(VF_SYNC_FAIL, "SYNC v2", NULL, 1);
    alloc_faults(NULL);
}

/* ---- golden files (tests/data/blobs/, docs/blob-format.md) --------------- */

/* file ids and nonces from a counter: the writer's bytes are reproducible */
static void golden_random(void *ctx, void *buf, size_t n)
{
    uint64_t *ctr = ctx;
    for (size_t i = 0; i < n; i++) ((uint8_t *)buf)[i] = (uint8_t)(mix64((*ctr)++) >> 7);
}

static const struct {
    const char *name;
    uint32_t kid; /* 0: v1 under key 9 (or plain when !keyed) */
    int keyed;
    uint64_t seed, size;
} GOLDEN[] = {
    {"v2-a11ce001-empty", 0xa11ce001, 1, 70, 0},
    {"v2-a11ce001-3chunks", 0xa11ce001, 1, 71, 2 * SMALL_CHUNK + 5},
    {"v2-b0b00002-3chunks", 0xb0b00002, 1, 71, 2 * SMALL_CHUNK + 5},
    {"v1-key-3chunks", 0, 1, 71, 2 * SMALL_CHUNK + 5},
    {"v1-plain-3chunks", 0, 0, 71, 2 * SMALL_CHUNK + 5},
};

Test(storage_blobs_keyed, the_writer_reproduces_the_golden_files_and_the_reader_reads_them)
{
    sr_key k;
    test_key(&k, 9);
    int regen = getenv("SR_GOLDEN_WRITE") != NULL;
    for (size_t i = 0; i < sizeof GOLDEN / sizeof *GOLDEN; i++) {
        tu_rmrf(dir);
        uint64_t ctr = 1;
        sr_blobs_opts o = {.key = GOLDEN[i].keyed ? &k : NULL, .keys = &g_keys, .chunk_size = SMALL_CHUNK,
                           .random_fn = golden_random, .random_ctx = &ctr};
        sr_blobs *bs = NULL;
        cr_assert_eq(sr_blobs_open(dir, &o, &bs, NULL), SR_OK);
        g_kid = GOLDEN[i].kid;
        uint8_t sha[SR_HASH_LEN];
        cr_assert_eq(write_blob(bs, GOLDEN[i].seed, GOLDEN[i].size, NULL, sha), SR_OK);
        char *p = blob_file(sha), gp[4096];
        snprintf(gp, sizeof gp, "%s/blobs/%s", SR_TEST_DATA, GOLDEN[i].name);
        size_t n, gn;
        uint8_t *b = tu_read_file(p, &n);
        cr_assert(b, "%s: no file %s", GOLDEN[i].name, p);
        if (regen) cr_assert_eq(tu_write_file(gp, b, n), 0);
        uint8_t *g = tu_read_file(gp, &gn);
        cr_assert(g, "%s: no golden file (SR_GOLDEN_WRITE=1 makes it)", gp);
        cr_assert(gn == n && !memcmp(b, g, n), "%s: the writer's bytes differ from the golden file", GOLDEN[i].name);
        /* the golden file, put in place, reads back as the stream */
        cr_assert_eq(sr_blob_delete_keyed(bs, sha, g_kid), SR_OK);
        put_file(p, g, gn);
        cr_assert_eq(read_blob(bs, sha, GOLDEN[i].seed, GOLDEN[i].size, NULL, NULL), SR_OK, "%s", GOLDEN[i].name);
        free(b);
        free(g);
        free(p);
        sr_blobs_close(bs);
    }
}
