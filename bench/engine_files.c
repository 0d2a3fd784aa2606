/*
 * bench/engine_files.c -- file upload and download through the engine
 * (docs/blob-format.md "Version 2: what the engine passes"): what an upload
 * does (the operator's file key, the blob written and fsynced, the FilePut
 * submitted and durable) and a download (the file's record, the blob opened
 * with its key id, read to the end, verified), with the keyring (version 2
 * blobs sealed by each operator's data key through the keyring's resolver)
 * against one key for all (single_key: version 1 blobs under the master,
 * the path before issue #16), on the same data.
 *
 * usage: engine_files [--mib M] [--files N] [--dir D] [--seed S]
 * Prints one JSON line per mode ("single", "keyring"): files per second and
 * MB/s of the uploads and of the downloads. Every file is read back to
 * SR_DONE (each chunk authenticated, the SHA-256 checked against the name),
 * its bytes compared with a checksum of what was written, and its key id
 * checked (0 with the single key, its operator's data key with the
 * keyring): "verify":"ok", or no figure counts.
 */
#include "benchutil.h"
#include "engine/records.h"
#include "engine/suiro.h"
#include "storage/blobs.h"
#include "storage/crypto.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PIECE = 1 << 20 };
static const char *const OPS[] = {"opA", "opB"};

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
    (void)st, (void)f, (void)w;
    return remove(p);
}

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

static int upload(sr_engine *e, const char *op, const char *path, uint64_t seed, uint64_t size, uint8_t *buf,
                  uint64_t *wsum)
{
    sr_cmd_env env = {op, "bench", SR_ACTOR_APP, NULL, NULL};
    uint32_t kid = 0;
    sr_blob_writer *w = NULL;
    int rc = sr_engine_file_key(e, &env, &kid);
    if (!rc) rc = sr_blob_writer_begin_keyed(sr_engine_blobs(e), kid, &w);
    for (uint64_t pos = 0; !rc && pos < size; pos += PIECE) {
        size_t n = size - pos < PIECE ? (size_t)(size - pos) : PIECE;
        fill(seed, pos, buf, n);
        *wsum = sum(buf, n < 4096 ? n : 4096, *wsum);
        rc = sr_blob_writer_write(w, buf, n);
    }
    uint8_t sha[SR_HASH_LEN];
    uint64_t got = 0;
    if (!rc) rc = sr_blob_writer_commit(w, sha, &got);
    else if (w) sr_blob_writer_abort(w);
    if (rc) return rc;
    sr_file_meta fm = {.path = path, .sha256 = {sha, SR_HASH_LEN}, .size = got, .content_type = "application/octet-stream",
                       .key_id = kid};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    rc = sr_cmd_file_put(&env, &fm, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, &res);
    }
    sr_buf_release(&b);
    return rc;
}

static int download(sr_engine *e, const char *op, const char *path, int keyring, uint8_t *buf, uint64_t *rsum,
                    uint64_t *bytes)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    int rc = sr_read_file(e, op, path, &m, &f);
    if (rc) return rc;
    if (!f.key_id != !keyring) rc = SR_ECORRUPT; /* the key id the mode must give */
    sr_blob_reader *r = NULL;
    sr_blob_errinfo ei;
    if (!rc) rc = sr_blob_reader_open_keyed(sr_engine_blobs(e), f.sha256.data, f.key_id, &r, &ei);
    sr_rec_close(&m);
    while (!rc) {
        size_t got = 0, at = 0;
        while (at < PIECE && !(rc = sr_blob_reader_read(r, buf + at, PIECE - at, &got))) at += got;
        if (at) *rsum = sum(buf, at < 4096 ? at : 4096, *rsum), *bytes += at;
    }
    sr_blob_reader_close(r);
    return rc == SR_DONE ? SR_OK : rc;
}

static int run(const char *mode, const char *dir, uint64_t mib, int files, uint64_t seed)
{
    int keyring = !strcmp(mode, "keyring");
    sr_key key;
    uint8_t kb[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) kb[i] = (uint8_t)mix(seed + (uint64_t)i);
    sr_key_from_bytes(&key, kb);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    sr_engine_opts o = {.key = &key, .single_key = !keyring, .key_source = "bench"};
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_files: %s\n", ei.msg);
        return 1;
    }
    uint8_t *buf = malloc(PIECE);
    uint64_t size = mib << 20, wsum = 1469598103934665603ull, rsum = wsum, bytes = 0;
    char path[64];
    int rc = buf ? 0 : SR_ENOMEM;
    double t0 = now();
    for (int i = 0; i < files && !rc; i++) {
        snprintf(path, sizeof path, "bench/f%06d.bin", i);
        rc = upload(e, OPS[i % 2], path, seed + (uint64_t)i, size, buf, &wsum);
    }
    double t1 = now();
    for (int i = 0; i < files && !rc; i++) {
        snprintf(path, sizeof path, "bench/f%06d.bin", i);
        rc = download(e, OPS[i % 2], path, keyring, buf, &rsum, &bytes);
    }
    double t2 = now();
    int ok = !rc && rsum == wsum && bytes == size * (uint64_t)files;
    if (rc) fprintf(stderr, "engine_files: %s: %s\n", mode, sr_err_name(rc));
    double mb = (double)(size * (uint64_t)files) / 1e6;
    printf("{\"bench\":\"engine_files\",\"mode\":\"%s\",\"files\":%d,\"mib_each\":%" PRIu64
           ",\"upload_files_s\":%.1f,\"upload_mb_s\":%.1f,\"download_files_s\":%.1f,\"download_mb_s\":%.1f,"
           "\"verify\":\"%s\"}\n",
           mode, files, mib, files / (t1 - t0), mb / (t1 - t0), files / (t2 - t1), mb / (t2 - t1), ok ? "ok" : "FAILED");
    free(buf);
    if (sr_engine_close(e)) ok = 0;
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t mib = 1, seed = 1;
    int files = 200;
    const char *dir = "bench/results/engine_files.tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib")) mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--files")) files = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: engine_files [--mib M] [--files N] [--dir D] [--seed S]\n");
            return 2;
        }
    }
    if (!mib || files < 1) return 2;
    return run("single", dir, mib, files, seed) | run("keyring", dir, mib, files, seed);
}
