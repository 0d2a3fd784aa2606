/* tests/fuzz/fuzz_blob.c -- libFuzzer target for the blob reader
 * (storage/blobs.c, docs/blob-format.md, versions 1 and 2): a blob file
 * comes from a data directory or a backup, which may be damaged or hostile.
 * The input's first byte chooses the file's name (bit 0: a version 2 name
 * under data key KID, else a version 1 name; bit 1: the name is the SHA-256
 * field of an encrypted footer, else of a plaintext one, so that readers get
 * past the name check); the rest is the file. Opening, reading to the end,
 * stat and verify must never crash, leak or read out of bounds, and answer
 * only the documented errors. The store has the v1 key and a resolver with
 * data key KID and a destroyed one. Corpus: tests/fuzz/blob/ (the golden
 * files of tests/data/blobs/, each behind its selector byte). */
#include "storage/blobs.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KID = 0xa11ce001, GONE = 0xdead0002, CHUNK = 64 };

static sr_aead *g_aead; /* KID's */
static sr_key g_key;    /* the store's (v1) */

static int use(uint32_t id, char *msg, size_t msglen)
{
    if (id == KID) return SR_OK;
    snprintf(msg, msglen, "key %08x %s", (unsigned)id, id == GONE ? "destroyed" : "unknown");
    return id == GONE ? SR_EERASED : SR_EKEY;
}

static int f_seal(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    int rc = use(id, msg, msglen);
    return rc ? rc : sr_aead_seal(g_aead, nonce, aad, aadlen, in, n, out, tag);
}

static int f_open(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    int rc = use(id, msg, msglen);
    return rc ? rc : sr_aead_open(g_aead, nonce, aad, aadlen, in, n, out, tag);
}

static int f_alg(void *ctx, uint32_t id)
{
    (void)ctx;
    return id == KID || id == GONE ? SR_ALG_AES_256_GCM : 0;
}

static const sr_keys KEYS = {NULL, f_seal, f_open, f_alg};
static char dir[256];
static sr_blobs *g_bs;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *w)
{
    (void)st, (void)flag, (void)w;
    return remove(p);
}

static void cleanup(void)
{
    sr_blobs_close(g_bs);
    g_bs = NULL;
    sr_aead_destroy(g_aead);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    uint8_t b[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(0x40 + i); /* the test suite's first ring key */
    sr_key k;
    sr_key_from_bytes(&k, b);
    if (sr_aead_create(&k, &g_aead)) abort();
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(9 * 31 + i); /* test_blobs.c's test_key(9) */
    sr_key_from_bytes(&g_key, b);
    snprintf(dir, sizeof dir, "/tmp/suiro-fuzz-blob-%d", (int)getpid());
    sr_blobs_opts o = {.key = &g_key, .keys = &KEYS, .chunk_size = CHUNK};
    if (sr_blobs_open(dir, &o, &g_bs, NULL)) abort();
    atexit(cleanup);
}

static int allowed(int rc)
{
    return rc == SR_OK || rc == SR_DONE || rc == SR_ECORRUPT || rc == SR_EVERSION || rc == SR_EKEY ||
           rc == SR_EERASED || rc == SR_ENOTFOUND || rc == SR_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_bs) init();
    if (size < 1) return 0;
    int sel = data[0];
    data++, size--;
    uint32_t kid = (sel & 1) ? KID : 0;
    size_t ftr = (sel & 2) ? 84 : 56;
    uint8_t sha[SR_HASH_LEN] = {0};
    if (size >= ftr) memcpy(sha, data + size - ftr + 20, SR_HASH_LEN);
    char hex[2 * SR_HASH_LEN + 1], d1[400], d2[400], path[500];
    sr_hex(sha, SR_HASH_LEN, hex);
    snprintf(d1, sizeof d1, "%s/%.2s", dir, hex);
    snprintf(d2, sizeof d2, "%s/%.2s/%.2s", dir, hex, hex + 2);
    if (kid) snprintf(path, sizeof path, "%s/%s.%08x", d2, hex, (unsigned)kid);
    else snprintf(path, sizeof path, "%s/%s", d2, hex);
    (void)sr_vfs_posix.mkdir(&sr_vfs_posix, d1);
    (void)sr_vfs_posix.mkdir(&sr_vfs_posix, d2);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);

    sr_blob_reader *r = NULL;
    sr_blob_errinfo ei;
    int rc = sr_blob_reader_open_keyed(g_bs, sha, kid, &r, &ei);
    if (!allowed(rc)) abort();
    if (!rc) {
        uint8_t buf[100];
        size_t got = 0;
        uint64_t total = 0;
        while ((rc = sr_blob_reader_read(r, buf, sizeof buf, &got)) == SR_OK) total += got;
        if (!allowed(rc)) abort();
        if (rc == SR_DONE && total != sr_blob_reader_size(r)) abort(); /* verified: the size it claims */
        sr_blob_reader_close(r);
    }
    uint64_t sz = 0;
    rc = sr_blob_stat_keyed(g_bs, sha, kid, &sz);
    if (!allowed(rc)) abort();
    rc = sr_blob_verify_keyed(g_bs, sha, kid, NULL, &ei);
    if (!allowed(rc)) abort();
    unlink(path);
    return 0;
}
