/*
 * bench/log_append.c -- append and replay rates of storage/log, next to the
 * floor: plain write() + fdatasync() of the same record bytes with no
 * framing, compression, hashing or encryption.
 *
 * usage: log_append [--matrix] [--records N] [--size B] [--batch K]
 *                   [--sync always|none] [--zstd L] [--enc 0|1] [--threads T]
 *                   [--keys K] [--run R] [--seed S] [--dir D]
 * --keys K (K >= 1): the records are sealed per record (sr_log_append_keyed,
 * format version 3 sections) under K data keys through a resolver, in runs
 * of R records (default 16) alternating among the keys -- against --enc 1,
 * every record under the log's one key (sr_log_append). The replay then
 * checks each record's key id too (one appender).
 * Prints one JSON line per configuration. Every run replays what it wrote and
 * checks the count and an order-independent hash of the records read back
 * against what was appended ("verify":"ok"), so a fast but wrong build cannot
 * post a figure. --matrix runs record sizes 64/256/1024 x batches 1/100/1000
 * x sync always/none x compression on/off x encryption on/off.
 */
#include "benchutil.h"
#include "storage/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct cfg {
    uint64_t records;
    size_t size, batch;
    int sync_always, zstd, enc, threads, keys;
    size_t run;
    uint64_t seed;
    const char *dir;
} cfg;

/* Record checksum for verification: 8 bytes a step, so that hashing does
 * not dominate the replay figure. */
static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return mix(h);
}

/* A pool of distinct records that look like measurement events: point ids,
 * timestamps and 2-decimal random-walk values, as text. */
enum { POOL = 8192 };
static uint8_t *pool;
static uint64_t pool_hash[POOL];

static void make_pool(size_t size, uint64_t seed)
{
    free(pool);
    pool = malloc((size_t)POOL * size);
    double v = 100.0;
    uint64_t r = seed;
    for (size_t i = 0; i < POOL; i++) {
        uint8_t *p = pool + i * size;
        size_t k = 0;
        while (k < size) {
            r = mix(r);
            v += (double)((int64_t)(r % 200) - 100) / 100.0;
            char tmp[96];
            int n = snprintf(tmp, sizeof tmp, "{\"p\":%u,\"t\":%" PRIu64 ",\"v\":%.2f}", (unsigned)(r >> 40) % 10000,
                             (uint64_t)1700000000000ull + i * 1000 + k, v);
            size_t c = (size_t)n < size - k ? (size_t)n : size - k;
            memcpy(p + k, tmp, c);
            k += c;
        }
        pool_hash[i] = fnv(p, size);
    }
}

static void rmrf(const char *d);

/* The resolver of --keys: K keys, one cipher context each (the leader seals,
 * one thread at a time; the mutex makes it safe anyway, as sr_keys must be). */
enum { MAXKEYS = 64 };
static struct {
    int n;
    sr_key key[MAXKEYS];
    sr_aead *aead[MAXKEYS];
    pthread_mutex_t mu;
} kr = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int kr_index(uint32_t id)
{
    for (int i = 0; i < kr.n; i++)
        if (kr.key[i].id == id) return i;
    return -1;
}

static int kr_seal(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                   const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    int i = kr_index(id);
    if (i < 0) return snprintf(msg, msglen, "no key %08x", id), SR_EKEY;
    pthread_mutex_lock(&kr.mu);
    int rc = sr_aead_seal(kr.aead[i], nonce, aad, aadlen, in, n, out, tag);
    pthread_mutex_unlock(&kr.mu);
    return rc;
}

static int kr_open(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                   const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    (void)ctx;
    int i = kr_index(id);
    if (i < 0) return snprintf(msg, msglen, "no key %08x", id), SR_EKEY;
    pthread_mutex_lock(&kr.mu);
    int rc = sr_aead_open(kr.aead[i], nonce, aad, aadlen, in, n, out, tag);
    pthread_mutex_unlock(&kr.mu);
    return rc;
}

static int kr_alg(void *ctx, uint32_t id)
{
    (void)ctx;
    return kr_index(id) < 0 ? SR_ALG_NONE : SR_ALG_AES_256_GCM;
}

static const sr_keys kr_keys = {NULL, kr_seal, kr_open, kr_alg};

static void kr_make(int n)
{
    for (int i = 0; i < kr.n; i++) sr_aead_destroy(kr.aead[i]);
    kr.n = 0;
    for (int i = 0; i < n && i < MAXKEYS; i++) {
        uint8_t b[32];
        for (int j = 0; j < 32; j++) b[j] = (uint8_t)(j * 13 + i * 71 + 5);
        sr_key_from_bytes(&kr.key[i], b);
        if (sr_aead_create(&kr.key[i], &kr.aead[i])) abort();
        kr.n++;
    }
}

/* the key of record index i under --keys */
static uint32_t key_of(const cfg *c, uint64_t i) { return kr.key[(i / c->run) % (uint64_t)c->keys].id; }

typedef struct worker {
    const cfg *c;
    sr_log *lg;
    uint64_t from, to; /* record indexes */
    uint64_t hsum;
    int rc;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    const cfg *c = w->c;
    sr_slice *recs = malloc(c->batch * sizeof *recs);
    uint32_t *ids = malloc(c->batch * sizeof *ids);
    for (uint64_t i = w->from; i < w->to;) {
        size_t n = 0;
        while (n < c->batch && i < w->to) {
            size_t idx = (size_t)(mix(i ^ c->seed) % POOL);
            if (c->keys) ids[n] = key_of(c, i);
            recs[n++] = (sr_slice){pool + idx * c->size, c->size};
            w->hsum += pool_hash[idx];
            i++;
        }
        int rc = c->keys ? sr_log_append_keyed(w->lg, recs, ids, n, NULL) : sr_log_append(w->lg, recs, n, NULL);
        if (rc) {
            w->rc = rc;
            break;
        }
    }
    free(recs);
    free(ids);
    return NULL;
}

static uint64_t dir_bytes;
static int du_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
    (void)p; (void)f;
    if (fl == FTW_F) dir_bytes += (uint64_t)st->st_size;
    return 0;
}

/* The floor: the same record bytes, written with write() per batch and, with
 * sync=always, fdatasync() per batch. */
static double floor_rate(const cfg *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/floor.bin", c->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    uint8_t *buf = malloc(c->batch * c->size);
    double t0 = now();
    for (uint64_t i = 0; i < c->records;) {
        size_t n = 0;
        while (n < c->batch && i < c->records) {
            size_t idx = (size_t)(mix(i ^ c->seed) % POOL);
            memcpy(buf + n * c->size, pool + idx * c->size, c->size);
            n++;
            i++;
        }
        if (write(fd, buf, n * c->size) != (ssize_t)(n * c->size)) break;
        if (c->sync_always && fdatasync(fd) != 0) break;
    }
    double t = now() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return (double)c->records / t;
}

static int run(const cfg *c)
{
    char d[1024];
    snprintf(d, sizeof d, "%s/log", c->dir);
    rmrf(d);
    sr_key key;
    uint8_t kb[32];
    for (int i = 0; i < 32; i++) kb[i] = (uint8_t)(i * 31 + 7);
    sr_key_from_bytes(&key, kb);
    if (c->keys) kr_make(c->keys);
    sr_log_opts o = {.sync = c->sync_always ? SR_SYNC_ALWAYS : SR_SYNC_NONE, .zstd_level = c->zstd,
                     .key = c->enc && !c->keys ? &key : NULL, .keys = c->keys ? &kr_keys : NULL};
    sr_log *lg = NULL;
    sr_errinfo ei;
    if (sr_log_open(d, &o, &lg, &ei)) {
        fprintf(stderr, "log_append: open: %s\n", ei.msg);
        return 1;
    }
    make_pool(c->size, c->seed);
    int T = c->threads < 1 ? 1 : c->threads;
    worker *ws = calloc((size_t)T, sizeof *ws);
    pthread_t *th = calloc((size_t)T, sizeof *th);
    double t0 = now();
    for (int t = 0; t < T; t++) {
        ws[t] = (worker){c, lg, c->records * (uint64_t)t / (uint64_t)T, c->records * (uint64_t)(t + 1) / (uint64_t)T, 0, 0};
        pthread_create(&th[t], NULL, work, &ws[t]);
    }
    uint64_t want = 0;
    int rc = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        want += ws[t].hsum;
        if (ws[t].rc) rc = ws[t].rc;
    }
    if (!rc && !c->sync_always) rc = sr_log_sync(lg);
    double t_append = now() - t0;
    if (rc) {
        fprintf(stderr, "log_append: append: %s\n", sr_strerror(rc));
        return 1;
    }
    /* replay */
    sr_log_iter *it = NULL;
    uint64_t got = 0, hsum = 0, seq, badkey = 0;
    sr_slice rec;
    double t1 = now();
    if (sr_log_iter_open(lg, 1, &it)) return 1;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        got++;
        hsum += fnv(rec.data, rec.len);
        if (c->keys && T == 1) badkey += sr_log_iter_key_id(it) != key_of(c, seq - 1);
    }
    double t_replay = now() - t1;
    sr_log_iter_close(it);
    sr_log_close(lg);
    dir_bytes = 0;
    nftw(d, du_cb, 8, FTW_PHYS);
    int ok = rc == SR_DONE && got == c->records && hsum == want && !badkey;
    double fl = floor_rate(c);
    double rate = (double)c->records / t_append;
    char keys[64] = ""; /* only with --keys: earlier results' lines keep their identity (bench/benchlines.py) */
    if (c->keys) snprintf(keys, sizeof keys, "\"keys\":%d,\"run\":%zu,", c->keys, c->run);
    printf("{\"bench\":\"log_append\",\"size\":%zu,\"batch\":%zu,\"sync\":\"%s\",\"zstd\":%d,\"enc\":%d,%s"
           "\"threads\":%d,\"records\":%" PRIu64 ",\"append_s\":%.3f,\"rec_per_s\":%.0f,\"mb_per_s\":%.1f,"
           "\"floor_rec_per_s\":%.0f,\"ratio_to_floor\":%.3f,\"replay_rec_per_s\":%.0f,"
           "\"disk_bytes_per_rec\":%.2f,\"verify\":\"%s\",\"hash\":\"%016" PRIx64 "\"}\n",
           c->size, c->batch, c->sync_always ? "always" : "none", c->zstd, c->enc || c->keys, keys, T, c->records, t_append, rate,
           rate * (double)c->size / 1e6, fl, rate / fl, (double)got / t_replay,
           (double)dir_bytes / (double)c->records, ok ? "ok" : "FAILED", hsum);
    fflush(stdout);
    rmrf(d);
    free(ws);
    free(th);
    return ok ? 0 : 1;
}

static int rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
    (void)st; (void)fl; (void)f;
    return remove(p);
}
static void rmrf(const char *d) { nftw(d, rm_cb, 8, FTW_DEPTH | FTW_PHYS); }

int main(int argc, char **argv)
{
    cfg c = {.records = 1000000, .size = 100, .batch = 1000, .sync_always = 1, .zstd = 1, .enc = 1,
             .threads = 1, .keys = 0, .run = 16, .seed = 42, .dir = NULL};
    int matrix = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--matrix")) matrix = 1;
        else if (v && !strcmp(a, "--records")) c.records = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--size")) c.size = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--batch")) c.batch = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--sync")) c.sync_always = !strcmp(argv[++i], "always");
        else if (v && !strcmp(a, "--zstd")) c.zstd = atoi(argv[++i]);
        else if (v && !strcmp(a, "--enc")) c.enc = atoi(argv[++i]);
        else if (v && !strcmp(a, "--threads")) c.threads = atoi(argv[++i]);
        else if (v && !strcmp(a, "--keys")) c.keys = atoi(argv[++i]);
        else if (v && !strcmp(a, "--run")) c.run = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--seed")) c.seed = strtoull(argv[++i], NULL, 10);
        else if (v && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: log_append [--matrix] [--records N] [--size B] [--batch K] [--sync always|none]\n"
                            "                  [--zstd L] [--enc 0|1] [--threads T] [--keys K] [--run R] [--seed S]\n"
                            "                  [--dir D]\n");
            return 2;
        }
    }
    if (!c.size || !c.batch || !c.records || !c.run || c.keys < 0 || c.keys > MAXKEYS) {
        fprintf(stderr, "log_append: --size, --batch, --records and --run must be positive, --keys 0..%d\n", MAXKEYS);
        return 2;
    }
    char tmpl[] = "/var/tmp/suiro-bench-XXXXXX";
    int own = 0;
    if (!c.dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
        own = 1;
    }
    int fails = 0;
    if (!matrix) fails += run(&c);
    else {
        static const size_t sizes[] = {64, 256, 1024};
        static const size_t batches[] = {1, 100, 1000};
        for (int s = 0; s < 3; s++)
            for (int b = 0; b < 3; b++)
                for (int sy = 1; sy >= 0; sy--)
                    for (int z = 0; z < 2; z++)
                        for (int e = 0; e < 2; e++) {
                            cfg m = c;
                            m.size = sizes[s];
                            m.batch = batches[b];
                            m.sync_always = sy;
                            m.zstd = z;
                            m.enc = e;
                            /* bound each run's time: batch 1 with fsync is ~120 us a record */
                            uint64_t n = batches[b] == 1 ? (sy ? 3000 : 200000) : batches[b] == 100 ? 300000 : 1000000;
                            m.records = n < c.records ? n : c.records;
                            fails += run(&m);
                        }
    }
    if (own) rmrf(tmpl);
    return fails ? 1 : 0;
}
