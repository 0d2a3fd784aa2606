/* api/cluster_blob.c -- file bytes replicated through JetStream (the
 * contract and invariants: api/cluster_blob.h; the design: docs/cluster.md
 * "Files across nodes"; the chunk's layout: docs/blob-format.md "The
 * cluster's blob chunks").
 *
 * Threads: sr_cblob_publish runs on the publisher's thread (api/cluster.c),
 * before the FilePut event it carries the bytes of is published; the
 * fetcher (run) is a thread of its own with its own NATS connection: woken
 * by sr_cblobs_kick (a FilePut applied, a read that missed the bytes) or
 * every few seconds, it walks the files this node indexes (sr_each_file),
 * and fetches each one whose bytes its blob store does not hold. No cnats
 * call is made on a libuv loop thread.
 *
 * Invariants (besides api/cluster_blob.h's):
 *  1. A file's bytes enter this node's blob store only through a blob
 *     writer whose SHA-256, checked before the commit, is the FilePut's:
 *     bytes that do not verify are aborted (the temp file unlinked).
 *  2. A file that failed (a chunk missing, refused, NATS down) is tried
 *     again at most every RETRY_MS (a kick does not hurry it: a tampered
 *     stream costs one WARN per file per RETRY_MS, not a loop).
 */
#include "api/cluster_blob.h"

#include "api/slog.h"
#include "codecs/base/sr_alloc.h"
#include "engine/records.h"
#include "storage/blobs.h"

#include <nats/nats.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CBLOB_MAGIC "SRB1"
enum { RETRY_MS = 5000, SCAN_MS = 30000, NFAIL = 256 };

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the pure parts ---- */

static void hex32(const uint8_t *p, char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[64] = 0;
}

void sr_cblob_cid(const sr_key *master, const char *op, const uint8_t sha[SR_HASH_LEN], char out[65])
{
    if (!master) return hex32(sha, out);
    static const char label[] = "suiro-blob-cid-v1";
    uint8_t k[SR_HASH_LEN], mac[EVP_MAX_MD_SIZE];
    sr_sha256_2(label, sizeof label, master->bytes, SR_KEY_LEN, k); /* (the label's NUL included) */
    size_t ol = op ? strlen(op) : 0;
    uint8_t msg[512 + SR_HASH_LEN];
    if (ol > 512) ol = 512; /* (operator ids are far shorter) */
    if (ol) memcpy(msg, op, ol);
    msg[ol] = 0;
    memcpy(msg + ol + 1, sha, SR_HASH_LEN);
    unsigned ml = 0;
    if (!HMAC(EVP_sha256(), k, SR_HASH_LEN, msg, ol + 1 + SR_HASH_LEN, mac, &ml) || ml != SR_HASH_LEN) {
        /* (OpenSSL failing on a fixed digest: never seen) a content id no one else computes, not the hash */
        memset(mac, 0, sizeof mac);
        sr_sha256_2(k, SR_HASH_LEN, msg, ol + 1 + SR_HASH_LEN, mac);
    }
    OPENSSL_cleanse(k, sizeof k);
    hex32(mac, out);
}

uint32_t sr_cblob_nchunks(uint64_t size, uint32_t chunk)
{
    if (!chunk) return UINT32_MAX;
    uint64_t n = size / chunk + (size % chunk ? 1 : 0);
    return n >= UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

size_t sr_cblob_chunk_len(uint64_t size, uint32_t chunk, uint32_t index)
{
    uint64_t off = (uint64_t)index * chunk;
    if (off >= size) return 0;
    uint64_t left = size - off;
    return (size_t)(left < chunk ? left : chunk);
}

void sr_cblob_subject(const char *name, const char *cid, uint32_t index, char *out, size_t n)
{
    snprintf(out, n, "%s.blob.%s.%u", name, cid, index);
}

void sr_cblob_msgid(const char *cid, uint32_t index, char *out, size_t n) { snprintf(out, n, "blob:%s:%u", cid, index); }

void sr_cblob_stream(const char *name, char out[48]) { snprintf(out, 48, "%s_BLOBS", name); }

int sr_cblob_chunk_build(const sr_cblob_hdr *h, const void *data, size_t n, sr_buf *out)
{
    out->len = 0;
    if (sr_buf_reserve(out, SR_CBLOB_HDR + n)) return SR_ENOMEM;
    uint8_t *p = out->data;
    memcpy(p, CBLOB_MAGIC, 4);
    sr_put_le32(p + 4, h->index);
    sr_put_le32(p + 8, h->nchunks);
    sr_put_le32(p + 12, h->chunk_size);
    sr_put_le64(p + 16, h->size);
    memcpy(p + 24, h->sha, SR_HASH_LEN);
    if (n) memcpy(p + SR_CBLOB_HDR, data, n);
    out->len = SR_CBLOB_HDR + n;
    return SR_OK;
}

int sr_cblob_chunk_parse(const void *pv, size_t n, sr_cblob_hdr *h, const uint8_t **data, size_t *dlen, char *err,
                         size_t errlen)
{
    const uint8_t *p = pv;
    memset(h, 0, sizeof *h);
    *data = NULL;
    *dlen = 0;
    if (n < SR_CBLOB_HDR || memcmp(p, CBLOB_MAGIC, 4)) {
        snprintf(err, errlen, "not a blob chunk (%zu bytes, no SRB1 header)", n);
        return SR_ECORRUPT;
    }
    h->index = sr_get_le32(p + 4);
    h->nchunks = sr_get_le32(p + 8);
    h->chunk_size = sr_get_le32(p + 12);
    h->size = sr_get_le64(p + 16);
    memcpy(h->sha, p + 24, SR_HASH_LEN);
    if (h->chunk_size < SR_CBLOB_MIN_CHUNK || h->chunk_size > SR_CBLOB_MAX_CHUNK) {
        snprintf(err, errlen, "chunk size %u out of bounds (%u..%u)", h->chunk_size, (unsigned)SR_CBLOB_MIN_CHUNK,
                 (unsigned)SR_CBLOB_MAX_CHUNK);
        return SR_ECORRUPT;
    }
    if (h->nchunks != sr_cblob_nchunks(h->size, h->chunk_size) || !h->nchunks) {
        snprintf(err, errlen, "chunk count %u is not what size %" PRIu64 " in chunks of %u gives", h->nchunks, h->size,
                 h->chunk_size);
        return SR_ECORRUPT;
    }
    if (h->index >= h->nchunks) {
        snprintf(err, errlen, "chunk index %u not below the count %u", h->index, h->nchunks);
        return SR_ECORRUPT;
    }
    size_t want = sr_cblob_chunk_len(h->size, h->chunk_size, h->index);
    if (n - SR_CBLOB_HDR != want) {
        snprintf(err, errlen, "chunk %u holds %zu bytes, its index gives %zu", h->index, n - SR_CBLOB_HDR, want);
        return SR_ECORRUPT;
    }
    *data = p + SR_CBLOB_HDR;
    *dlen = want;
    return SR_OK;
}

void sr_cblob_ad(sr_seal_ad *ad, char nodebuf[72], uint32_t partition, const char *op, const char *cid,
                 uint32_t index)
{
    snprintf(nodebuf, 72, "blob:%s", cid);
    *ad = (sr_seal_ad){partition, op ? op : "", "file_put", nodebuf, index};
}

/* ---- publishing ---- */

void sr_cblob_pub_release(sr_cblob_pub *p)
{
    sr_buf_release(&p->chunk);
    sr_buf_release(&p->sealed);
}

/* Read exactly want bytes (or to the end) into buf. */
static int read_full(sr_blob_reader *r, uint8_t *buf, size_t want, size_t *got)
{
    *got = 0;
    while (*got < want) {
        size_t g = 0;
        int rc = sr_blob_reader_read(r, buf + *got, want - *got, &g);
        if (rc == SR_DONE) break;
        if (rc) return rc;
        *got += g;
    }
    return SR_OK;
}

int sr_cblob_publish(sr_cblob_pub *p, const char *op, const sr_file_meta *fm, int64_t ms, int *skipped, char *err,
                     size_t errlen)
{
    *skipped = 0;
    err[0] = 0;
    if (fm->sha256.len != SR_HASH_LEN || !fm->size) { /* nothing to send (an empty file is made from its size) */
        *skipped = 1;
        return SR_OK;
    }
    char cid[65];
    sr_cblob_cid(p->master, op, fm->sha256.data, cid);
    for (unsigned i = 0; i < 8; i++)
        if (!strcmp(p->last_cid[i], cid)) return SR_OK; /* sent lately (a retry of the same FilePut) */
    sr_blob_reader *r = NULL;
    sr_blob_errinfo ei = {0};
    int rc = sr_blob_reader_open_keyed(p->blobs, fm->sha256.data, fm->key_id, &r, &ei);
    if (rc) { /* not here (cut, erased) or unreadable: nothing to send; the FilePut goes */
        *skipped = 1;
        snprintf(err, errlen, "the file's bytes are not readable here: %s %s", sr_err_name(rc), ei.msg);
        return SR_OK;
    }
    uint64_t size = sr_blob_reader_size(r);
    uint32_t n = sr_cblob_nchunks(size, SR_CBLOB_CHUNK);
    uint8_t *buf = malloc(SR_CBLOB_CHUNK);
    char stream[48], subj[160], id[96], kid[24] = "";
    sr_cblob_stream(p->name, stream);
    uint32_t part = sr_cluster_partition(op, p->partitions);
    rc = buf ? SR_OK : SR_ENOMEM;
    for (uint32_t i = 0; !rc && i < n; i++) {
        size_t want = sr_cblob_chunk_len(size, SR_CBLOB_CHUNK, i), got = 0;
        if ((rc = read_full(r, buf, want, &got)) || got != want) {
            *skipped = 1;
            snprintf(err, errlen, "the file's bytes do not read back whole here (%s)", sr_err_name(rc ? rc : SR_ECORRUPT));
            rc = SR_OK;
            break;
        }
        if (i + 1 == n) { /* the end verified (size, SHA-256) before the last chunk goes */
            size_t g = 0;
            int end = sr_blob_reader_read(r, buf + want, 0, &g);
            if (end != SR_DONE) {
                *skipped = 1;
                snprintf(err, errlen, "the file's bytes do not verify here (%s)", sr_err_name(end));
                break;
            }
        }
        sr_cblob_hdr h = {i, n, SR_CBLOB_CHUNK, size, {0}};
        memcpy(h.sha, fm->sha256.data, SR_HASH_LEN);
        if ((rc = sr_cblob_chunk_build(&h, buf, want, &p->chunk))) break;
        const void *data = p->chunk.data;
        size_t dlen = p->chunk.len;
        if (p->skeys) { /* invariant 3 */
            sr_seal_ad ad;
            char nb[72];
            uint64_t kidn = 0;
            sr_cblob_ad(&ad, nb, part, op, cid, i);
            if ((rc = sr_skeys_seal(p->skeys, p->skv, &ad, ms, data, dlen, &p->sealed, &kidn, err, errlen))) break;
            data = p->sealed.data;
            dlen = p->sealed.len;
            snprintf(kid, sizeof kid, "%016" PRIx64, kidn);
        }
        sr_cblob_subject(p->name, cid, i, subj, sizeof subj);
        sr_cblob_msgid(cid, i, id, sizeof id);
        natsMsg *m = NULL;
        natsStatus s = natsMsg_Create(&m, subj, NULL, data, (int)dlen);
        if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Operator", op && op[0] ? op : "-");
        if (s == NATS_OK && kid[0]) s = natsMsgHeader_Set(m, "Suiro-Key", kid);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.ExpectStream = stream;
        po.MaxWait = 5000;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        if (s == NATS_OK) s = js_PublishMsg(&pa, (jsCtx *)p->js, m, &po, &jerr);
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
        if (s != NATS_OK) {
            snprintf(err, errlen, "chunk %u of %s not stored in %s: %s (%d)", i, cid, stream, natsStatus_GetText(s),
                     (int)jerr);
            rc = SR_EIO;
        }
    }
    free(buf);
    sr_blob_reader_close(r);
    if (!rc && !*skipped) {
        snprintf(p->last_cid[p->last_n % 8], 65, "%s", cid);
        p->last_n++;
    }
    return rc;
}

/* ---- the fetcher ---- */

typedef struct want {
    char op[72], path[512];
    uint8_t sha[SR_HASH_LEN];
    uint32_t key_id;
    uint64_t size;
} want;

typedef struct failrow {
    uint8_t sha[SR_HASH_LEN];
    int64_t next_ms;
    char why[240];
} failrow;

struct sr_cblobs {
    sr_engine *e;
    char nats[1024], node[64], name[32];
    uint32_t partitions, replicas;
    int has_master;
    sr_key master;
    uint32_t rotate_days;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, kick;
    failrow fail[NFAIL]; /* under mu */
    unsigned nfail;
    /* the thread's */
    natsConnection *nc;
    jsCtx *js;
    sr_skeys *skeys;
    sr_skv skv;
    sr_skv_nats skvn;
    sr_buf open;
    want *w;
    size_t nw, capw;
    _Atomic uint64_t st_fetched, st_failed, st_refused, st_published, st_pending;
};

static _Atomic(sr_cblobs *) g_cblobs;

sr_cblobs *sr_cblobs_self(void) { return atomic_load(&g_cblobs); }

void sr_cblobs_kick(sr_cblobs *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->kick = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void sr_cblobs_get_stats(sr_cblobs *b, sr_cblobs_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!b) return;
    out->fetched = atomic_load(&b->st_fetched);
    out->failed = atomic_load(&b->st_failed);
    out->refused = atomic_load(&b->st_refused);
    out->published = atomic_load(&b->st_published);
    out->pending = atomic_load(&b->st_pending);
}

void sr_cblobs_count_published(sr_cblobs *b)
{
    if (b) atomic_fetch_add(&b->st_published, 1);
}

static failrow *fail_find(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN])
{
    for (unsigned i = 0; i < b->nfail && i < NFAIL; i++)
        if (!memcmp(b->fail[i].sha, sha, SR_HASH_LEN)) return &b->fail[i];
    return NULL;
}

void sr_cblobs_why(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN], char *out, size_t n)
{
    out[0] = 0;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    failrow *f = fail_find(b, sha);
    if (f) snprintf(out, n, "%s", f->why);
    pthread_mutex_unlock(&b->mu);
}

static void fail_set(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN], const char *why)
{
    pthread_mutex_lock(&b->mu);
    failrow *f = fail_find(b, sha);
    if (!f) f = &b->fail[b->nfail++ % NFAIL];
    memcpy(f->sha, sha, SR_HASH_LEN);
    f->next_ms = mono_ms() + RETRY_MS;
    snprintf(f->why, sizeof f->why, "%s", why);
    pthread_mutex_unlock(&b->mu);
}

static void fail_clear(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN])
{
    pthread_mutex_lock(&b->mu);
    failrow *f = fail_find(b, sha);
    if (f) memset(f, 0, sizeof *f);
    pthread_mutex_unlock(&b->mu);
}

static int fail_wait(sr_cblobs *b, const uint8_t sha[SR_HASH_LEN])
{
    pthread_mutex_lock(&b->mu);
    failrow *f = fail_find(b, sha);
    int wait = f && f->next_ms > mono_ms();
    pthread_mutex_unlock(&b->mu);
    return wait;
}

static void disconnect(sr_cblobs *b)
{
    if (b->nc) natsConnection_Close(b->nc);
    sr_skv_nats_reset(&b->skvn);
    if (b->js) jsCtx_Destroy(b->js);
    if (b->nc) natsConnection_Destroy(b->nc);
    b->js = NULL;
    b->nc = NULL;
}

static int nconnect(sr_cblobs *b, char *err, size_t errlen)
{
    if (b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED) return SR_OK;
    if (b->nc) return SR_EIO; /* reconnecting (libnats does it) */
    char cname[96];
    snprintf(cname, sizeof cname, "suiro-%s-blobs", b->node);
    natsStatus s = (natsStatus)sr__nats_connect(b->nats, cname, &b->nc);
    if (s == NATS_OK) s = natsConnection_JetStream(&b->js, b->nc, NULL);
    if (s != NATS_OK) {
        snprintf(err, errlen, "NATS unavailable: %s", natsStatus_GetText(s));
        disconnect(b);
        return SR_EIO;
    }
    if (b->skeys) sr_skv_nats_init(&b->skvn, &b->skv, b->js, b->name, (int)b->replicas);
    return SR_OK;
}

static int collect(void *ctx, const char *op, const sr_file_meta *f)
{
    sr_cblobs *b = ctx;
    if (f->sha256.len != SR_HASH_LEN || strlen(op) >= sizeof b->w->op || strlen(f->path) >= sizeof b->w->path)
        return 0;
    int rc = sr_blob_exists_keyed(sr_engine_blobs(b->e), f->sha256.data, f->key_id);
    if (rc != SR_ENOTFOUND) return 0; /* here (or an I/O error: the read says so) */
    for (size_t i = 0; i < b->nw; i++)
        if (!memcmp(b->w[i].sha, f->sha256.data, SR_HASH_LEN) && b->w[i].key_id == f->key_id) return 0;
    if (sr_array_reserve(&b->w, &b->capw, b->nw + 1, sizeof *b->w)) return SR_ENOMEM;
    want *w = &b->w[b->nw++];
    snprintf(w->op, sizeof w->op, "%s", op);
    snprintf(w->path, sizeof w->path, "%s", f->path);
    memcpy(w->sha, f->sha256.data, SR_HASH_LEN);
    w->key_id = f->key_id;
    w->size = f->size;
    return 0;
}

/* Store the bytes of w: 0 fetched; SR_EIO NATS (tried again); SR_ENOTFOUND
 * a chunk missing; SR_ECORRUPT refused (invariant 1); others local. */
static int fetch_one(sr_cblobs *b, const want *w, char *why, size_t whylen)
{
    char cid[65], stream[48], subj[160];
    sr_cblob_cid(b->has_master ? &b->master : NULL, w->op, w->sha, cid);
    sr_cblob_stream(b->name, stream);
    uint32_t part = sr_cluster_partition(w->op, b->partitions);
    sr_blob_writer *wr = NULL;
    int rc = w->key_id ? sr_blob_writer_begin_keyed(sr_engine_blobs(b->e), w->key_id, &wr)
                       : sr_blob_writer_begin(sr_engine_blobs(b->e), &wr);
    if (rc) {
        snprintf(why, whylen, "the blob store refuses a writer (key %08x): %s", w->key_id, sr_err_name(rc));
        return rc;
    }
    sr_sha256_ctx sc;
    if ((rc = sr_sha256_init(&sc))) {
        sr_blob_writer_abort(wr);
        snprintf(why, whylen, "SHA-256: %s", sr_err_name(rc));
        return rc;
    }
    uint32_t n = w->size ? UINT32_MAX : 0; /* from the first chunk */
    for (uint32_t i = 0; !rc && i < n; i++) {
        sr_cblob_subject(b->name, cid, i, subj, sizeof subj);
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetLastMsg(&m, b->js, stream, subj, NULL, &jerr);
        if (s == NATS_NOT_FOUND) {
            snprintf(why, whylen, "chunk %u of its bytes is missing in the stream %s (content id %s)", i, stream, cid);
            rc = SR_ENOTFOUND;
            break;
        }
        if (s != NATS_OK) {
            snprintf(why, whylen, "NATS: chunk %u not read from %s: %s (%d)", i, stream, natsStatus_GetText(s), (int)jerr);
            rc = SR_EIO;
            break;
        }
        const void *data = natsMsg_GetData(m);
        size_t len = (size_t)natsMsg_GetDataLength(m);
        const char *kid = NULL;
        if (natsMsgHeader_Get(m, "Suiro-Key", &kid) != NATS_OK) kid = NULL;
        char err[320] = "";
        if (b->skeys && !(kid && kid[0])) {
            rc = SR_ECORRUPT;
            snprintf(err, sizeof err, "a plaintext chunk and this node seals its streams (key_file)");
        } else if (!b->skeys && kid && kid[0]) {
            rc = SR_ECORRUPT;
            snprintf(err, sizeof err, "a sealed chunk (stream key %s) and this node has no key_file", kid);
        } else if (b->skeys) {
            sr_seal_ad ad;
            char nb[72];
            sr_cblob_ad(&ad, nb, part, w->op, cid, i);
            rc = sr_skeys_open(b->skeys, &b->skv, &ad, data, len, &b->open, err, sizeof err);
            if (rc == SR_EIO) {
                natsMsg_Destroy(m);
                snprintf(why, whylen, "NATS: the stream keys' bucket: %s", err);
                break;
            }
            if (rc) rc = rc == SR_EERASED ? SR_EERASED : SR_ECORRUPT;
            data = b->open.data;
            len = b->open.len;
        }
        sr_cblob_hdr h;
        const uint8_t *cd = NULL;
        size_t cl = 0;
        if (!rc) rc = sr_cblob_chunk_parse(data, len, &h, &cd, &cl, err, sizeof err);
        if (!rc && (h.index != i || h.size != w->size || memcmp(h.sha, w->sha, SR_HASH_LEN) ||
                    (n != UINT32_MAX && h.nchunks != n))) {
            rc = SR_ECORRUPT;
            snprintf(err, sizeof err, "chunk %u says index %u, size %" PRIu64 ", %u chunks: not this file's (size %" PRIu64 ")",
                     i, h.index, h.size, h.nchunks, w->size);
        }
        if (!rc) {
            n = h.nchunks;
            if ((rc = sr_sha256_update(&sc, cd, cl)) || (rc = sr_blob_writer_write(wr, cd, cl)))
                snprintf(err, sizeof err, "stored locally: %s", sr_err_name(rc));
        } else if (rc == SR_ECORRUPT || rc == SR_EERASED) {
            snprintf(why, whylen, "chunk %u does not verify: %s", i, err);
        }
        if (rc && !why[0]) snprintf(why, whylen, "%s", err);
        natsMsg_Destroy(m);
    }
    uint8_t got[SR_HASH_LEN], stored[SR_HASH_LEN];
    if (!rc && (rc = sr_sha256_final(&sc, got)) == SR_OK && memcmp(got, w->sha, SR_HASH_LEN)) {
        rc = SR_ECORRUPT; /* invariant 1 */
        char gh[65];
        hex32(got, gh);
        snprintf(why, whylen, "the chunks' bytes hash to %s, not the file's SHA-256", gh);
    }
    sr_sha256_release(&sc);
    if (rc) {
        sr_blob_writer_abort(wr);
        return rc;
    }
    uint64_t sz = 0;
    if ((rc = sr_blob_writer_commit(wr, stored, &sz)) || memcmp(stored, w->sha, SR_HASH_LEN) || sz != w->size) {
        snprintf(why, whylen, "not stored: %s", rc ? sr_err_name(rc) : "the stored bytes are another file's");
        return rc ? rc : SR_ECORRUPT;
    }
    return SR_OK;
}

static void round_once(sr_cblobs *b)
{
    b->nw = 0;
    int rc = sr_each_file(b->e, collect, b);
    if (rc && rc != SR_ENOMEM) sr_slog(SR_LOG_WARN, "cluster: the files not walked", "error=%s", sr_err_name(rc));
    atomic_store(&b->st_pending, b->nw);
    if (!b->nw) return;
    char err[320];
    for (size_t i = 0; i < b->nw && !b->stop; i++) {
        const want *w = &b->w[i];
        if (fail_wait(b, w->sha)) continue;
        char hex[65], why[400] = "";
        hex32(w->sha, hex);
        if (nconnect(b, err, sizeof err)) {
            fail_set(b, w->sha, err);
            atomic_fetch_add(&b->st_failed, 1);
            continue;
        }
        rc = fetch_one(b, w, why, sizeof why);
        if (rc == SR_OK) {
            atomic_fetch_add(&b->st_fetched, 1);
            atomic_fetch_sub(&b->st_pending, 1); /* (the walk's count, less what is here now) */
            fail_clear(b, w->sha);
            sr_slog(SR_LOG_INFO, "cluster: file bytes fetched", "op=%s path=%s sha256=%s size=%" PRIu64, sr_slog_q(w->op),
                    sr_slog_q(w->path), hex, w->size);
            continue;
        }
        fail_set(b, w->sha, why);
        if (rc == SR_ECORRUPT || rc == SR_EERASED) {
            atomic_fetch_add(&b->st_refused, 1);
            sr_slog(SR_LOG_WARN, "cluster: file bytes refused, not stored", "op=%s path=%s sha256=%s detail=%s",
                    sr_slog_q(w->op), sr_slog_q(w->path), hex, sr_slog_q(why));
        } else {
            atomic_fetch_add(&b->st_failed, 1);
            sr_slog(SR_LOG_WARN, "cluster: file bytes not fetched, trying again", "op=%s path=%s sha256=%s error=%s detail=%s",
                    sr_slog_q(w->op), sr_slog_q(w->path), hex, sr_err_name(rc), sr_slog_q(why));
        }
    }
}

static void *run(void *arg)
{
    sr_cblobs *b = arg;
    int64_t last = 0;
    while (!b->stop) {
        pthread_mutex_lock(&b->mu);
        int64_t t = mono_ms();
        int due = b->kick || t - last >= (atomic_load(&b->st_pending) ? RETRY_MS : SCAN_MS);
        if (!due && !b->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            pthread_mutex_unlock(&b->mu);
            continue;
        }
        b->kick = 0;
        pthread_mutex_unlock(&b->mu);
        last = mono_ms();
        round_once(b);
    }
    return NULL;
}

int sr_cblobs_start(sr_engine *e, const sr_cluster_opts *o, sr_cblobs **out, char *err, size_t errlen)
{
    *out = NULL;
    sr_cblobs *b = calloc(1, sizeof *b);
    if (!b) return SR_ENOMEM;
    b->e = e;
    snprintf(b->nats, sizeof b->nats, "%s", o->nats);
    snprintf(b->node, sizeof b->node, "%s", o->node);
    snprintf(b->name, sizeof b->name, "%s", o->name && o->name[0] ? o->name : "SUIRO");
    b->partitions = o->partitions;
    b->replicas = o->replicas;
    b->rotate_days = o->rotate_days;
    if (o->master) {
        b->has_master = 1;
        b->master = *o->master;
        if (sr_skeys_new(&b->master, o->rotate_days, &b->skeys)) {
            free(b);
            return SR_ENOMEM;
        }
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->kick = 1; /* a first walk: what a restart left missing */
    if (pthread_create(&b->th, NULL, run, b)) {
        snprintf(err, errlen, "cluster: cannot start the blob fetcher's thread");
        sr_cblobs_free(b);
        return SR_ENOMEM;
    }
    b->started = 1;
    atomic_store(&g_cblobs, b);
    *out = b;
    return SR_OK;
}

void sr_cblobs_stop(sr_cblobs *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (b->started) pthread_join(b->th, NULL);
    b->started = 0;
    disconnect(b);
}

void sr_cblobs_free(sr_cblobs *b)
{
    if (!b) return;
    sr_cblobs_stop(b);
    sr_cblobs *me = b;
    atomic_compare_exchange_strong(&g_cblobs, &me, NULL);
    sr_skeys_free(b->skeys);
    sr_buf_release(&b->open);
    sr_free(b->w);
    OPENSSL_cleanse(&b->master, sizeof b->master);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
