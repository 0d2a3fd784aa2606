/*
 * bench/blob_io.c -- blob store write and read throughput (storage/blobs.c,
 * docs/blob-format.md): plaintext, version 1 sealed by the store's one key,
 * and version 2 sealed by a data key through a key resolver (sr_keys, as
 * the keyring seals), on the same data.
 *
 * usage: blob_io [--mib M] [--blobs N] [--dir D] [--seed S]
 * Prints one JSON line per mode ("plain", "key", "keyed"): MB/s of
 * begin+write+commit (fsynced) and of a full verified read. Every blob is
 * read back to SR_DONE (every chunk authenticated, the SHA-256 checked
 * against the name) and its bytes compared with a checksum of what was
 * written ("verify":"ok"), so a fast but wrong build posts no figure.
 *
 * The resolver here holds one cipher context per key (single-threaded), so
 * the keyed figure is the format's cost (a per-call key lookup through a
 * function pointer), not a keyring's locking.
 */
#include "benchutil.h"
#include "storage/blobs.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KID = 0x00c0ffee, PIECE = 1 << 20 };

static sr_aead *g_aead;

static int r_seal(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    if (id != KID) {
        snprintf(msg, msglen, "no key %08x", (unsigned)id);
        return SR_EKEY;
    }
    return sr_aead_seal(g_aead, nonce, aad, aadlen, in, n, out, tag);
}

static int r_open(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                  const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    if (id != KID) {
        snprintf(msg, msglen, "no key %08x", (unsigned)id);
        return SR_EKEY;
    }
    return sr_aead_open(g_aead, nonce, aad, aadlen, in, n, out, tag);
}

static int r_alg(void *ctx, uint32_t id)
{
    (void)ctx;
    return id == KID ? SR_ALG_AES_256_GCM : 0;
}

static const sr_keys RESOLVER = {NULL, r_seal, r_open, r_alg};

static void fill(uint64_t seed, uint64_t pos, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = mix(seed ^ ((pos + i) / 8));
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

static uint64_t sum(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
    (void)st, (void)f, (void)w;
    return remove(p);
}

static int run(const char *mode, const char *dir, uint64_t mib, int blobs, uint64_t seed)
{
    sr_key key;
    uint8_t kb[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) kb[i] = (uint8_t)mix(seed + (uint64_t)i);
    sr_key_from_bytes(&key, kb);
    int keyed = !strcmp(mode, "keyed");
    sr_blobs_opts o = {.key = !strcmp(mode, "key") ? &key : NULL, .keys = &RESOLVER};
    sr_blobs *bs = NULL;
    sr_blob_errinfo ei;
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (sr_blobs_open(dir, &o, &bs, &ei)) {
        fprintf(stderr, "blob_io: %s\n", ei.msg);
        return 1;
    }
    uint8_t *buf = malloc(PIECE);
    uint8_t (*shas)[SR_HASH_LEN] = calloc((size_t)blobs, SR_HASH_LEN);
    uint64_t size = mib << 20, wsum = 1469598103934665603ull, rsum = 1469598103934665603ull;
    int rc = 0;
    double t0 = now();
    for (int b = 0; b < blobs && !rc; b++) {
        sr_blob_writer *w = NULL;
        rc = sr_blob_writer_begin_keyed(bs, keyed ? KID : 0, &w);
        for (uint64_t pos = 0; !rc && pos < size; pos += PIECE) {
            fill(seed + (uint64_t)b, pos, buf, PIECE);
            wsum = sum(buf, 4096, wsum); /* a sample of each piece */
            rc = sr_blob_writer_write(w, buf, PIECE);
        }
        if (!rc) rc = sr_blob_writer_commit(w, shas[b], NULL);
        else sr_blob_writer_abort(w);
    }
    double t1 = now();
    for (int b = 0; b < blobs && !rc; b++) {
        sr_blob_reader *r = NULL;
        rc = sr_blob_reader_open_keyed(bs, shas[b], keyed ? KID : 0, &r, &ei);
        uint64_t pos = 0;
        while (!rc) {
            size_t got = 0, at = 0;
            while (at < PIECE && !(rc = sr_blob_reader_read(r, buf + at, PIECE - at, &got))) at += got;
            if (at) rsum = sum(buf, 4096, rsum), pos += at;
        }
        if (rc == SR_DONE && pos == size) rc = 0;
        sr_blob_reader_close(r);
    }
    double t2 = now();
    int ok = !rc && rsum == wsum;
    printf("{\"bench\":\"blob_io\",\"mode\":\"%s\",\"blobs\":%d,\"mib_each\":%" PRIu64
           ",\"write_mb_s\":%.1f,\"read_mb_s\":%.1f,\"verify\":\"%s\"}\n",
           mode, blobs, mib, (double)(size * (uint64_t)blobs) / 1e6 / (t1 - t0),
           (double)(size * (uint64_t)blobs) / 1e6 / (t2 - t1), ok ? "ok" : "FAILED");
    free(buf);
    free(shas);
    sr_blobs_close(bs);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t mib = 64, seed = 1;
    int blobs = 4;
    const char *dir = "bench/results/blob_io.tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib")) mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--blobs")) blobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: blob_io [--mib M] [--blobs N] [--dir D] [--seed S]\n");
            return 2;
        }
    }
    if (!mib || blobs < 1) return 2;
    sr_key k;
    uint8_t kb[SR_KEY_LEN] = {7};
    sr_key_from_bytes(&k, kb);
    if (sr_aead_create(&k, &g_aead)) return 1;
    int rc = run("plain", dir, mib, blobs, seed) | run("key", dir, mib, blobs, seed) | run("keyed", dir, mib, blobs, seed);
    sr_aead_destroy(g_aead);
    return rc;
}
