/*
 * storage/blobs.c -- content-addressed blob store (formats v1 and v2,
 * docs/blob-format.md). v1: unencrypted, or sealed by the store's one key
 * (opts.key). v2: sealed by a data key of the resolver (opts.keys, issue #16)
 * named in the header with its AEAD, stored under <sha256>.<key id>, so that
 * the same bytes under two keys are two files (dedup is per key).
 *
 * A blob file is a 64-byte header, then the plaintext cut into chunks of
 * chunk_size bytes (the last may be shorter; an empty blob has none), each
 * stored as a record sealed on its own (AES-256-GCM, or CRC-32C when there is
 * no key), then a footer holding the chunk count, the plaintext size and its
 * SHA-256. Every chunk's authentication covers the blob's random file_id and
 * the chunk's index and length, so chunks cannot be reordered, dropped,
 * truncated or moved between blobs unnoticed; the footer is authenticated the
 * same way, and its size must agree with the file's size.
 *
 * INVARIANTS
 *  (1) A file under ab/cd/<hex> was complete and fsynced (footer included)
 *      before it was renamed there; its name is the SHA-256 of its plaintext.
 *  (2) sr_blob_writer_commit returns SR_OK only after the blob's directory
 *      entry and the fan-out directories are fsynced.
 *  (3) Files in tmp/ are never read; sr_blobs_open deletes them.
 *  (4) A writer's memory is its struct, one plaintext chunk and one record
 *      buffer; a reader's the same: independent of the blob's size.
 *  (5) Sizes read from disk are checked against the header's chunk size and
 *      the file's size before they size a read or an allocation.
 *  (6) A poisoned writer (err != 0) writes nothing again; commit fails.
 *  (7) A read-only store (opts.readonly) holds no lock and changes nothing:
 *      writers and delete are refused; readers and sr_blob_verify work.
 *  (8) A file named <hex> is v1 with key id 0 or the store key's (or, read
 *      only, an old master's the resolver keeps as a legacy entry of that
 *      id: a master rotation with --keep-legacy); a file named
 *      <hex>.<kid> is v2 sealed under data key kid (header and name agree, or
 *      the file is ECORRUPT). A blob of one key never replaces or deletes one
 *      of another.
 *
 * STATES (writer)                 TRANSITION              FUNCTION
 *   -> WRITING                     temp file created       sr_blob_writer_begin()
 *   WRITING -> WRITING             chunks sealed, written  sr_blob_writer_write()
 *   WRITING -> POISONED            write/seal failure      writer_poison()
 *   WRITING -> (freed, published)  fsync, rename, fsync   sr_blob_writer_commit()
 *   any -> (freed, temp removed)   abort / failed commit   sr_blob_writer_abort()
 *
 * Publishing (mkdir, existence check, rename, directory fsyncs, and undoing
 * a rename whose fsync failed) runs under bs->mu, so two writers of the same
 * content, or a writer and sr_blob_delete, do not interleave there.
 */
#include "storage/blobs.h"

#include "codecs/base/sr_alloc.h"
#include "storage/crc32c.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Format constants (docs/blob-format.md)                                    */

#define BLOB_MAGIC "SUIROBLB"
enum {
    HDR_LEN = 64,
    HDR_CRC_OFF = 60,
    FILE_ID_LEN = 16,
    FLAG_AES_GCM = 1u << 0, /* v1: AES-256-GCM; v2: sealed by the AEAD at offset 40 */
    HDR_ALG_OFF = 40,       /* v2: the AEAD's sr_alg (2 bytes) */
    BLOB_V1 = 1,
    KNOWN_FLAGS = FLAG_AES_GCM,
    AAD_LEN = FILE_ID_LEN + 8 + 4, /* file_id | chunk index | chunk length */
    REC_OVERHEAD_ENC = 4 + SR_NONCE_LEN + SR_TAG_LEN,
    REC_OVERHEAD_PLAIN = 4 + 4,
    FTR_FIELDS = 4 + 8 + 8 + SR_HASH_LEN, /* marker, nchunks, size, sha256 */
    FTR_LEN_PLAIN = FTR_FIELDS + 4,
    FTR_LEN_ENC = FTR_FIELDS + SR_NONCE_LEN + SR_TAG_LEN + 4,
};
#define MAX_BLOB_SIZE (UINT64_C(1) << 62)

_Static_assert(HDR_LEN == 64 && FTR_LEN_PLAIN == 56 && FTR_LEN_ENC == 84, "blob format v1 sizes");
_Static_assert(REC_OVERHEAD_ENC == 32 && REC_OVERHEAD_PLAIN == 8, "blob format v1 record overheads");
_Static_assert(SR_BLOB_MAX_CHUNK <= INT32_MAX - REC_OVERHEAD_ENC, "chunks fit an int for OpenSSL");

/* ------------------------------------------------------------------------ */
/* Structures                                                                */

struct sr_blobs {
    char *dir, *tmpdir;
    const sr_vfs *vfs;
    sr_file *lockf;
    int has_key;
    sr_key key;
    const sr_keys *keys; /* the resolver of data keys (v2); NULL: none */
    void (*random_fn)(void *ctx, void *buf, size_t n); /* tests: file ids and nonces */
    void *random_ctx;
    uint32_t chunk;
    int readonly;       /* no lock held: no writer, no delete */
    pthread_mutex_t mu; /* publish / delete */
};

/* What the header and footer of a blob file say (validated). */
typedef struct meta {
    uint32_t version, flags, key_id, chunk, alg;
    uint8_t file_id[FILE_ID_LEN];
    uint64_t nchunks, size, file_size;
    uint8_t sha[SR_HASH_LEN];
} meta;

/* What seals or opens a blob's chunks and footer: the store's one key
 * (aead, v1) or a data key of the resolver (kid != 0, v2). Neither: a
 * plaintext blob. */
typedef struct sealer {
    sr_aead *aead;
    const sr_keys *keys;
    uint32_t kid;
} sealer;

struct sr_blob_writer {
    sr_blobs *bs;
    sr_file *f;
    char *tmp_path;
    sealer sl;
    uint32_t alg; /* v2: the data key's AEAD */
    sr_sha256_ctx sha;
    uint8_t file_id[FILE_ID_LEN];
    uint8_t *plain; /* chunk bytes */
    size_t plain_len;
    uint8_t *rec; /* chunk + overhead bytes */
    uint64_t off, index, total;
    int err;
};

struct sr_blob_reader {
    sr_blobs *bs;
    sr_file *f;
    meta m;
    sealer sl;
    sr_sha256_ctx sha;
    uint8_t want[SR_HASH_LEN];
    uint8_t *plain, *rec;
    size_t plain_len, plain_pos;
    uint64_t off, index, total;
    int err, done;
    sr_blob_errinfo ei;
    char name[2 * SR_HASH_LEN + 10]; /* the file's name: <hex>[.<kid>] */
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void set_err(sr_blob_errinfo *ei, int code, const char *blob, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_err(sr_blob_errinfo *ei, int code, const char *blob, uint64_t off, const char *fmt, ...)
{
    if (!ei) return;
    ei->code = code;
    if (blob != ei->blob) snprintf(ei->blob, sizeof ei->blob, "%.64s", blob ? blob : ""); /* the content hash */
    ei->offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
    va_end(ap);
}

static void clear_err(sr_blob_errinfo *ei)
{
    if (!ei) return;
    memset(ei, 0, sizeof *ei);
}

/* malloc'd printf; NULL on ENOMEM. */
static char *path_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = sr_malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* The three paths of a blob: ab, ab/cd, ab/cd/<hex>[.<kid>]; hex is the
 * blob's name (with ".<kid>" for a v2 blob: the messages name it so). Any
 * may be NULL. */
typedef struct blob_paths {
    char hex[2 * SR_HASH_LEN + 10];
    char *d1, *d2, *file;
} blob_paths;

static int paths_init(const sr_blobs *bs, const uint8_t sha[SR_HASH_LEN], uint32_t kid, blob_paths *p)
{
    sr_hex(sha, SR_HASH_LEN, p->hex);
    if (kid) snprintf(p->hex + 2 * SR_HASH_LEN, sizeof p->hex - 2 * SR_HASH_LEN, ".%08x", (unsigned)kid);
    p->d1 = path_fmt("%s/%.2s", bs->dir, p->hex);
    p->d2 = path_fmt("%s/%.2s/%.2s", bs->dir, p->hex, p->hex + 2);
    p->file = path_fmt("%s/%.2s/%.2s/%s", bs->dir, p->hex, p->hex + 2, p->hex);
    return p->d1 && p->d2 && p->file ? SR_OK : SR_ENOMEM;
}

/* Seal (open) through the store's key or the resolver; a resolver's message
 * (which key is missing or erased) into msg. */
static int sealer_seal(const sealer *s, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                       const void *in, size_t n, void *out, uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    if (s->kid) return s->keys->seal(s->keys->ctx, s->kid, nonce, aad, aadlen, in, n, out, tag, msg, msglen);
    return sr_aead_seal(s->aead, nonce, aad, aadlen, in, n, out, tag);
}

static int sealer_open(const sealer *s, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                       const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    if (s->kid) return s->keys->open(s->keys->ctx, s->kid, nonce, aad, aadlen, in, n, out, tag, msg, msglen);
    return sr_aead_open(s->aead, nonce, aad, aadlen, in, n, out, tag);
}

static int sealer_on(const sealer *s) { return s->aead || s->kid; }

/* A file id or a nonce: random (a test's function draws them for golden
 * files). */
static int blob_random(const sr_blobs *bs, void *buf, size_t n)
{
    if (!bs->random_fn) return sr_random(buf, n);
    bs->random_fn(bs->random_ctx, buf, n);
    return SR_OK;
}

/* The detail of a resolver's SR_EKEY or SR_EERASED, naming the blob. */
static void key_err(sr_blob_errinfo *ei, int rc, const char *hex, uint64_t off, uint32_t kid, const char *msg)
{
    if (rc == SR_EERASED)
        set_err(ei, rc, hex, off, "blob %s: erased: its data key %08x was destroyed%s%s", hex, (unsigned)kid,
                msg[0] ? ": " : "", msg);
    else
        set_err(ei, rc, hex, off, "blob %s: needs data key %08x%s%s", hex, (unsigned)kid, msg[0] ? ": " : "", msg);
}

static void paths_release(blob_paths *p)
{
    sr_free(p->d1);
    sr_free(p->d2);
    sr_free(p->file);
    p->d1 = p->d2 = p->file = NULL;
}

static size_t rec_overhead(uint32_t flags)
{
    return (flags & FLAG_AES_GCM) ? REC_OVERHEAD_ENC : REC_OVERHEAD_PLAIN;
}

static size_t ftr_len(uint32_t flags) { return (flags & FLAG_AES_GCM) ? FTR_LEN_ENC : FTR_LEN_PLAIN; }

static void chunk_aad(uint8_t aad[AAD_LEN], const uint8_t file_id[FILE_ID_LEN], uint64_t index, uint32_t len)
{
    memcpy(aad, file_id, FILE_ID_LEN);
    sr_put_le64(aad + FILE_ID_LEN, index);
    sr_put_le32(aad + FILE_ID_LEN + 8, len);
}

/* Plaintext length of chunk i of a blob of `size` bytes. */
static uint32_t chunk_len_at(uint64_t size, uint32_t chunk, uint64_t i)
{
    uint64_t left = size - i * chunk;
    return left < chunk ? (uint32_t)left : chunk;
}

static uint64_t chunks_for(uint64_t size, uint32_t chunk) { return size / chunk + (size % chunk != 0); }

/* ------------------------------------------------------------------------ */
/* Header and footer                                                         */

static void hdr_encode(uint8_t h[HDR_LEN], uint32_t version, uint32_t flags, uint32_t key_id, uint32_t alg,
                       uint32_t chunk, const uint8_t file_id[FILE_ID_LEN])
{
    memset(h, 0, HDR_LEN);
    memcpy(h, BLOB_MAGIC, 8);
    sr_put_le16(h + 8, (uint16_t)version);
    sr_put_le16(h + HDR_ALG_OFF, (uint16_t)alg);
    sr_put_le16(h + 10, HDR_LEN);
    sr_put_le32(h + 12, flags);
    sr_put_le32(h + 16, key_id);
    sr_put_le32(h + 20, chunk);
    memcpy(h + 24, file_id, FILE_ID_LEN);
    sr_put_le32(h + HDR_CRC_OFF, sr_crc32c(0, h, HDR_CRC_OFF));
}

/* Encode the footer into f (ftr_len(flags) bytes). */
static int ftr_encode(const sr_blobs *bs, uint8_t *f, const sealer *sl, const uint8_t file_id[FILE_ID_LEN], uint64_t nchunks,
                      uint64_t size, const uint8_t sha[SR_HASH_LEN], char *msg, size_t msglen)
{
    size_t at = FTR_FIELDS;
    sr_put_le32(f, 0);
    sr_put_le64(f + 4, nchunks);
    sr_put_le64(f + 12, size);
    memcpy(f + 20, sha, SR_HASH_LEN);
    if (sealer_on(sl)) {
        uint8_t aad[FILE_ID_LEN + FTR_FIELDS];
        memcpy(aad, file_id, FILE_ID_LEN);
        memcpy(aad + FILE_ID_LEN, f, FTR_FIELDS);
        int rc = blob_random(bs, f + at, SR_NONCE_LEN);
        if (rc) return rc;
        uint8_t none[1] = {0}; /* empty plaintext; crypto.c offsets out even when n == 0 */
        rc = sealer_seal(sl, f + at, aad, sizeof aad, none, 0, none, f + at + SR_NONCE_LEN, msg, msglen);
        if (rc) return rc;
        at += SR_NONCE_LEN + SR_TAG_LEN;
    }
    sr_put_le32(f + at, sr_crc32c(sr_crc32c(0, file_id, FILE_ID_LEN), f, at));
    return SR_OK;
}

/* Create the aead for the store's key if not yet (lazily: only encrypted
 * blobs need one). */
static int need_aead(const sr_blobs *bs, sr_aead **aead)
{
    if (*aead) return SR_OK;
    return sr_aead_create(&bs->key, aead);
}

/*
 * Read and validate header and footer of an open blob file named for key id
 * kid (0: a v1 name); check the key, and set up sl to open its chunks. On
 * SR_OK m is filled. Errors: SR_ECORRUPT, SR_EVERSION, SR_EKEY, SR_EERASED
 * (all with detail in ei), SR_EIO, SR_ENOMEM, SR_ECRYPTO.
 */
static int read_meta(sr_blobs *bs, sr_file *f, const char *hex, uint32_t kid, meta *m, sealer *sl,
                     sr_blob_errinfo *ei)
{
    char kmsg[200] = "";
    uint8_t h[HDR_LEN], ft[FTR_LEN_ENC];
    uint64_t fsize = 0;
    int rc = bs->vfs->size(f, &fsize);
    if (rc) return rc;
    rc = sr_vfs_read_exact(f, h, HDR_LEN, 0);
    if (rc == SR_DONE) {
        set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: file of %" PRIu64 " bytes is shorter than its header", hex, fsize);
        return SR_ECORRUPT;
    }
    if (rc) return rc;
    if (memcmp(h, BLOB_MAGIC, 8) != 0 || sr_get_le32(h + HDR_CRC_OFF) != sr_crc32c(0, h, HDR_CRC_OFF)) {
        set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: bad header magic or checksum", hex);
        return SR_ECORRUPT;
    }
    m->version = sr_get_le16(h + 8);
    if (m->version != BLOB_V1 && m->version != SR_BLOB_VERSION) {
        set_err(ei, SR_EVERSION, hex, 0, "blob %s: format version %u, this build reads versions 1 and %d", hex,
                (unsigned)m->version, SR_BLOB_VERSION);
        return SR_EVERSION;
    }
    m->alg = sr_get_le16(h + HDR_ALG_OFF);
    m->flags = sr_get_le32(h + 12);
    m->key_id = sr_get_le32(h + 16);
    m->chunk = sr_get_le32(h + 20);
    memcpy(m->file_id, h + 24, FILE_ID_LEN);
    m->file_size = fsize;
    if (sr_get_le16(h + 10) != HDR_LEN || (m->flags & ~(uint32_t)KNOWN_FLAGS) ||
        m->chunk < SR_BLOB_MIN_CHUNK || m->chunk > SR_BLOB_MAX_CHUNK) {
        set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: header has unknown flags %#x or bad chunk size %u", hex,
                (unsigned)m->flags, (unsigned)m->chunk);
        return SR_ECORRUPT;
    }
    if (m->version == SR_BLOB_VERSION) { /* sealed by a data key: its name says which (invariant 8) */
        if (!(m->flags & FLAG_AES_GCM) || !m->key_id || m->key_id != kid ||
            sr_alg_kind((int)m->alg) != SR_ALG_KIND_AEAD) {
            set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: a version 2 header with key id %08x, AEAD %u, flags %#x "
                    "(misplaced or damaged)", hex, (unsigned)m->key_id, (unsigned)m->alg, (unsigned)m->flags);
            return SR_ECORRUPT;
        }
        if (!bs->keys) {
            set_err(ei, SR_EKEY, hex, 0, "blob %s is sealed by data key %08x and the store has no keyring", hex,
                    (unsigned)m->key_id);
            return SR_EKEY;
        }
        sl->keys = bs->keys;
        sl->kid = m->key_id;
    } else if (kid || m->alg) {
        set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: a version 1 header under a data key's name, or AEAD %u", hex,
                (unsigned)m->alg);
        return SR_ECORRUPT;
    } else if ((m->flags & FLAG_AES_GCM) && (!bs->has_key || m->key_id != bs->key.id) && m->key_id && bs->keys &&
               bs->keys->alg(bs->keys->ctx, m->key_id) == SR_ALG_AES_256_GCM) {
        /* a version 1 blob of an old master key that the keyring keeps as a
         * legacy entry of the same id (a master rotation --keep-legacy,
         * docs/keys.md): opened through the resolver */
        sl->keys = bs->keys;
        sl->kid = m->key_id;
    } else if (m->flags & FLAG_AES_GCM) {
        if (!bs->has_key) {
            set_err(ei, SR_EKEY, hex, 0, "blob %s is encrypted (key id %08x) and no key is configured", hex,
                    (unsigned)m->key_id);
            return SR_EKEY;
        }
        if (m->key_id != bs->key.id) {
            set_err(ei, SR_EKEY, hex, 0, "blob %s is encrypted with key id %08x, configured key has id %08x",
                    hex, (unsigned)m->key_id, (unsigned)bs->key.id);
            return SR_EKEY;
        }
        if ((rc = need_aead(bs, &sl->aead))) return rc;
    } else if (m->key_id != 0) {
        set_err(ei, SR_ECORRUPT, hex, 0, "blob %s: key id %08x on an unencrypted blob", hex, (unsigned)m->key_id);
        return SR_ECORRUPT;
    }
    size_t fl = ftr_len(m->flags);
    if (fsize < HDR_LEN + fl) {
        set_err(ei, SR_ECORRUPT, hex, fsize, "blob %s: truncated (%" PRIu64 " bytes, no room for a footer)", hex,
                fsize);
        return SR_ECORRUPT;
    }
    uint64_t foff = fsize - fl;
    rc = sr_vfs_read_exact(f, ft, fl, foff);
    if (rc == SR_DONE) rc = SR_ECORRUPT; /* shrank under us */
    if (rc == SR_ECORRUPT) set_err(ei, rc, hex, foff, "blob %s: footer unreadable", hex);
    if (rc) return rc;
    size_t crc_at = fl - 4;
    if (sr_get_le32(ft) != 0 ||
        sr_get_le32(ft + crc_at) != sr_crc32c(sr_crc32c(0, m->file_id, FILE_ID_LEN), ft, crc_at)) {
        set_err(ei, SR_ECORRUPT, hex, foff, "blob %s: no valid footer at offset %" PRIu64 " (truncated or damaged)",
                hex, foff);
        return SR_ECORRUPT;
    }
    m->nchunks = sr_get_le64(ft + 4);
    m->size = sr_get_le64(ft + 12);
    memcpy(m->sha, ft + 20, SR_HASH_LEN);
    if (m->flags & FLAG_AES_GCM) {
        uint8_t aad[FILE_ID_LEN + FTR_FIELDS];
        memcpy(aad, m->file_id, FILE_ID_LEN);
        memcpy(aad + FILE_ID_LEN, ft, FTR_FIELDS);
        uint8_t none[1] = {0}; /* empty plaintext */
        rc = sealer_open(sl, ft + FTR_FIELDS, aad, sizeof aad, none, 0, none, ft + FTR_FIELDS + SR_NONCE_LEN, kmsg,
                         sizeof kmsg);
        if (rc == SR_ECORRUPT) set_err(ei, rc, hex, foff, "blob %s: footer fails authentication", hex);
        if (rc == SR_EKEY || rc == SR_EERASED) key_err(ei, rc, hex, foff, m->key_id, kmsg);
        if (rc) return rc;
    }
    /* Never trust sizes from disk: the footer's size must explain the file
     * size exactly (no overflow: size <= 2^62, overhead <= size / 2). */
    uint64_t expect = 0;
    if (m->size <= MAX_BLOB_SIZE && m->nchunks == chunks_for(m->size, m->chunk))
        expect = HDR_LEN + m->nchunks * rec_overhead(m->flags) + m->size + fl;
    if (expect != fsize) {
        set_err(ei, SR_ECORRUPT, hex, foff,
                "blob %s: footer claims %" PRIu64 " bytes in %" PRIu64 " chunks, which does not match the "
                "file size %" PRIu64,
                hex, m->size, m->nchunks, fsize);
        return SR_ECORRUPT;
    }
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                              */

typedef struct tmp_sweep {
    sr_blobs *bs;
    int rc;
    size_t removed;
} tmp_sweep;

static int sweep_cb(void *ctx, const char *name)
{
    tmp_sweep *s = ctx;
    char *p = path_fmt("%s/%s", s->bs->tmpdir, name);
    if (!p) return SR_ENOMEM;
    int rc = s->bs->vfs->unlink(s->bs->vfs, p);
    sr_free(p);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    if (!rc) s->removed++;
    return rc;
}

int sr_blobs_open(const char *dir, const sr_blobs_opts *o, sr_blobs **out, sr_blob_errinfo *ei)
{
    int rc = SR_OK;
    char *lockp = NULL;
    clear_err(ei);
    if (!dir || !out) return SR_EINVAL;
    sr_blobs_opts opts = o ? *o : (sr_blobs_opts){0};
    if (!opts.chunk_size) opts.chunk_size = SR_BLOB_DEFAULT_CHUNK;
    if (opts.chunk_size < SR_BLOB_MIN_CHUNK || opts.chunk_size > SR_BLOB_MAX_CHUNK) {
        set_err(ei, SR_EINVAL, NULL, 0, "blob chunk size %u outside %d..%d", (unsigned)opts.chunk_size,
                SR_BLOB_MIN_CHUNK, SR_BLOB_MAX_CHUNK);
        return SR_EINVAL;
    }
    sr_blobs *bs = sr_calloc(1, sizeof *bs);
    if (!bs) return SR_ENOMEM;
    pthread_mutex_init(&bs->mu, NULL);
    bs->vfs = opts.vfs ? opts.vfs : &sr_vfs_posix;
    bs->chunk = opts.chunk_size;
    if (opts.key) {
        bs->key = *opts.key;
        bs->has_key = 1;
    }
    bs->keys = opts.keys;
    bs->random_fn = opts.random_fn;
    bs->random_ctx = opts.random_ctx;
    bs->dir = path_fmt("%s", dir);
    bs->tmpdir = path_fmt("%s/tmp", dir);
    lockp = path_fmt("%s/LOCK", dir);
    if (!bs->dir || !bs->tmpdir || !lockp) {
        rc = SR_ENOMEM;
        goto fail;
    }
    if (opts.readonly) {
        bs->readonly = 1;
        sr_free(lockp);
        *out = bs;
        return SR_OK;
    }
    if ((rc = bs->vfs->mkdir(bs->vfs, dir))) {
        set_err(ei, rc, NULL, 0, "cannot create blob directory %s: %s", dir, sr_strerror(rc));
        goto fail;
    }
    if ((rc = bs->vfs->lock(bs->vfs, lockp, &bs->lockf))) {
        set_err(ei, rc, NULL, 0, "%s: %s", dir,
                rc == SR_ELOCKED ? "blob store is open in another process" : sr_strerror(rc));
        goto fail;
    }
    if ((rc = bs->vfs->mkdir(bs->vfs, bs->tmpdir))) goto fail;
    /* Temp files are blobs whose commit never finished (invariant 3). */
    tmp_sweep sw = {bs, SR_OK, 0};
    if ((rc = bs->vfs->list(bs->vfs, bs->tmpdir, sweep_cb, &sw))) goto fail;
    /* Make the tmp/ entry (new or old) and the removals durable. */
    if ((rc = bs->vfs->sync_dir(bs->vfs, bs->tmpdir))) goto fail;
    if ((rc = bs->vfs->sync_dir(bs->vfs, bs->dir))) goto fail;
    sr_free(lockp);
    *out = bs;
    return SR_OK;
fail:
    if (ei && !ei->code) set_err(ei, rc, NULL, 0, "%s: %s", dir, sr_strerror(rc));
    sr_free(lockp);
    sr_blobs_close(bs);
    return rc;
}

void sr_blobs_close(sr_blobs *bs)
{
    if (!bs) return;
    sr_file_close(bs->lockf);
    pthread_mutex_destroy(&bs->mu);
    sr_free(bs->dir);
    sr_free(bs->tmpdir);
    memset(&bs->key, 0, sizeof bs->key);
    sr_free(bs);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

static int writer_poison(sr_blob_writer *w, int rc)
{
    if (!w->err) w->err = rc;
    return rc;
}

/* Release everything of w; unlink its temp file if still there. */
static void writer_free(sr_blob_writer *w, int unlink_tmp)
{
    sr_file_close(w->f);
    if (unlink_tmp && w->tmp_path) (void)w->bs->vfs->unlink(w->bs->vfs, w->tmp_path);
    sr_free(w->tmp_path);
    sr_aead_destroy(w->sl.aead);
    sr_sha256_release(&w->sha);
    sr_free(w->plain);
    sr_free(w->rec);
    sr_free(w);
}

int sr_blob_writer_begin(sr_blobs *bs, sr_blob_writer **out) { return sr_blob_writer_begin_keyed(bs, 0, out); }

int sr_blob_writer_begin_keyed(sr_blobs *bs, uint32_t key_id, sr_blob_writer **out)
{
    int rc = SR_OK, alg = 0;
    uint8_t rnd[16], h[HDR_LEN];
    char rhex[33];
    if (!bs || !out || bs->readonly || (key_id && !bs->keys)) return SR_EINVAL;
    if (key_id && sr_alg_kind(alg = bs->keys->alg(bs->keys->ctx, key_id)) != SR_ALG_KIND_AEAD) return SR_EKEY;
    sr_blob_writer *w = sr_calloc(1, sizeof *w);
    if (!w) return SR_ENOMEM;
    w->bs = bs;
    w->sl.keys = key_id ? bs->keys : NULL;
    w->sl.kid = key_id;
    w->alg = (uint32_t)alg;
    w->off = HDR_LEN;
    w->plain = sr_malloc(bs->chunk);
    w->rec = sr_malloc((size_t)bs->chunk + REC_OVERHEAD_ENC);
    if (!w->plain || !w->rec) {
        rc = SR_ENOMEM;
        goto fail;
    }
    if ((rc = sr_sha256_init(&w->sha))) goto fail;
    if (!key_id && bs->has_key && (rc = sr_aead_create(&bs->key, &w->sl.aead))) goto fail;
    if ((rc = blob_random(bs, w->file_id, FILE_ID_LEN))) goto fail;
    if ((rc = sr_random(rnd, sizeof rnd))) goto fail;
    sr_hex(rnd, sizeof rnd, rhex);
    if (!(w->tmp_path = path_fmt("%s/%s.tmp", bs->tmpdir, rhex))) {
        rc = SR_ENOMEM;
        goto fail;
    }
    rc = bs->vfs->open(bs->vfs, w->tmp_path, SR_VFS_WRITE | SR_VFS_CREATE | SR_VFS_EXCL, &w->f);
    if (rc) {
        sr_free(w->tmp_path); /* not ours to unlink */
        w->tmp_path = NULL;
        goto fail;
    }
    if (key_id) hdr_encode(h, SR_BLOB_VERSION, FLAG_AES_GCM, key_id, w->alg, bs->chunk, w->file_id);
    else hdr_encode(h, BLOB_V1, bs->has_key ? FLAG_AES_GCM : 0, bs->has_key ? bs->key.id : 0, 0, bs->chunk, w->file_id);
    if ((rc = bs->vfs->pwrite(w->f, h, HDR_LEN, 0))) goto fail;
    *out = w;
    return SR_OK;
fail:
    writer_free(w, 1);
    return rc;
}

/* Seal chunk number w->index (n plaintext bytes at p) and write it. */
static int writer_put_chunk(sr_blob_writer *w, const uint8_t *p, size_t n)
{
    const sr_blobs *bs = w->bs;
    uint8_t aad[AAD_LEN];
    size_t reclen;
    int rc;
    SR_VERIFY(n > 0 && n <= bs->chunk);
    if ((rc = sr_sha256_update(&w->sha, p, n))) return rc;
    chunk_aad(aad, w->file_id, w->index, (uint32_t)n);
    sr_put_le32(w->rec, (uint32_t)n);
    if (sealer_on(&w->sl)) {
        uint8_t *nonce = w->rec + 4, *ct = w->rec + 4 + SR_NONCE_LEN;
        char msg[8];
        if ((rc = blob_random(bs, nonce, SR_NONCE_LEN))) return rc;
        if ((rc = sealer_seal(&w->sl, nonce, aad, AAD_LEN, p, n, ct, ct + n, msg, sizeof msg))) return rc;
        reclen = n + REC_OVERHEAD_ENC;
    } else {
        memcpy(w->rec + 4, p, n);
        sr_put_le32(w->rec + 4 + n, sr_crc32c(sr_crc32c(0, aad, AAD_LEN), p, n));
        reclen = n + REC_OVERHEAD_PLAIN;
    }
    if ((rc = bs->vfs->pwrite(w->f, w->rec, reclen, w->off))) return rc;
    w->off += reclen;
    w->index++;
    return SR_OK;
}

int sr_blob_writer_write(sr_blob_writer *w, const void *data, size_t len)
{
    if (!w || (!data && len)) return SR_EINVAL;
    if (w->err) return SR_EPOISONED;
    if (len > MAX_BLOB_SIZE - w->total) return SR_ETOOBIG;
    const uint8_t *p = data;
    size_t chunk = w->bs->chunk;
    int rc;
    while (len) {
        if (w->plain_len == 0 && len >= chunk) {
            /* whole chunk straight from the caller's buffer: no copy */
            if ((rc = writer_put_chunk(w, p, chunk))) return writer_poison(w, rc);
            p += chunk;
            len -= chunk;
            w->total += chunk;
            continue;
        }
        size_t k = chunk - w->plain_len < len ? chunk - w->plain_len : len;
        memcpy(w->plain + w->plain_len, p, k);
        w->plain_len += k;
        p += k;
        len -= k;
        w->total += k;
        if (w->plain_len == chunk) {
            if ((rc = writer_put_chunk(w, w->plain, chunk))) return writer_poison(w, rc);
            w->plain_len = 0;
        }
    }
    return SR_OK;
}

void sr_blob_writer_abort(sr_blob_writer *w)
{
    if (!w) return;
    writer_free(w, 1);
}

enum { TARGET_ABSENT, TARGET_SAME, TARGET_REPLACE };

/* Is there a usable blob at the target (named for key id kid) already?
 * Under bs->mu. */
static int target_state(sr_blobs *bs, const blob_paths *bp, uint32_t kid, int *state)
{
    sr_file *f = NULL;
    sealer sl = {0};
    meta m;
    int rc = bs->vfs->open(bs->vfs, bp->file, SR_VFS_READ, &f);
    if (rc == SR_ENOTFOUND) {
        *state = TARGET_ABSENT;
        return SR_OK;
    }
    if (rc) return rc;
    rc = read_meta(bs, f, bp->hex, kid, &m, &sl, NULL);
    sr_file_close(f);
    sr_aead_destroy(sl.aead);
    if (rc == SR_OK) {
        /* A v1 blob under another key (or unencrypted while we have one) is
         * rewritten under ours; the rename replaces it atomically. A v2 name
         * holds only its own key's blobs (read_meta checked). */
        int same = kid                ? 1
                   : bs->has_key ? (m.flags & FLAG_AES_GCM) && m.key_id == bs->key.id
                                 : !(m.flags & FLAG_AES_GCM);
        *state = same ? TARGET_SAME : TARGET_REPLACE;
        return SR_OK;
    }
    if (rc == SR_ECORRUPT || rc == SR_EKEY || rc == SR_EVERSION || rc == SR_EERASED) {
        /* A damaged or unreadable file under this name: replace it. */
        *state = TARGET_REPLACE;
        return SR_OK;
    }
    return rc;
}

static int sync_fanout(sr_blobs *bs, const blob_paths *bp)
{
    int rc = bs->vfs->sync_dir(bs->vfs, bp->d2);
    if (!rc) rc = bs->vfs->sync_dir(bs->vfs, bp->d1);
    if (!rc) rc = bs->vfs->sync_dir(bs->vfs, bs->dir);
    return rc;
}

int sr_blob_writer_commit(sr_blob_writer *w, uint8_t sha256_out[SR_HASH_LEN], uint64_t *size_out)
{
    if (!w) return SR_EINVAL;
    sr_blobs *bs = w->bs;
    blob_paths bp = {0};
    uint8_t sha[SR_HASH_LEN], ft[FTR_LEN_ENC];
    int rc = SR_OK, locked = 0, renamed = 0, state = TARGET_ABSENT;
    if (w->err) {
        rc = SR_EPOISONED;
        goto done;
    }
    /* 1. The last, partial chunk and the footer. */
    if (w->plain_len && (rc = writer_put_chunk(w, w->plain, w->plain_len))) goto done;
    w->plain_len = 0;
    if ((rc = sr_sha256_final(&w->sha, sha))) goto done;
    char kmsg[8];
    if ((rc = ftr_encode(bs, ft, &w->sl, w->file_id, w->index, w->total, sha, kmsg, sizeof kmsg))) goto done;
    size_t fl = ftr_len(sealer_on(&w->sl) ? FLAG_AES_GCM : 0);
    if ((rc = bs->vfs->pwrite(w->f, ft, fl, w->off))) goto done;
    w->off += fl;
    /* 2. Contents durable before the name exists (invariant 1). */
    if ((rc = bs->vfs->sync(w->f))) goto done;
    rc = sr_file_close(w->f);
    w->f = NULL;
    if (rc) goto done;
    /* 3. Publish under the content address. */
    if ((rc = paths_init(bs, sha, w->sl.kid, &bp))) goto done;
    pthread_mutex_lock(&bs->mu);
    locked = 1;
    if ((rc = bs->vfs->mkdir(bs->vfs, bp.d1))) goto done;
    if ((rc = bs->vfs->mkdir(bs->vfs, bp.d2))) goto done;
    if ((rc = target_state(bs, &bp, w->sl.kid, &state))) goto done;
    if (state != TARGET_SAME) {
        if ((rc = bs->vfs->rename(bs->vfs, w->tmp_path, bp.file))) goto done;
        renamed = 1;
        sr_free(w->tmp_path); /* the temp name is gone */
        w->tmp_path = NULL;
    }
    /* 4. The name durable (also when deduplicated: an earlier commit of the
     * same bytes may have failed between its rename and its fsyncs). */
    if ((rc = sync_fanout(bs, &bp))) goto done;
done:
    if (rc && renamed && state == TARGET_ABSENT) {
        /* Not acknowledged: take the name back (best effort), so a failed
         * commit leaves no new blob behind. */
        if (bs->vfs->unlink(bs->vfs, bp.file) == SR_OK) (void)bs->vfs->sync_dir(bs->vfs, bp.d2);
    }
    if (locked) pthread_mutex_unlock(&bs->mu);
    if (!rc) {
        if (sha256_out) memcpy(sha256_out, sha, SR_HASH_LEN);
        if (size_out) *size_out = w->total;
    }
    paths_release(&bp);
    writer_free(w, 1); /* unlinks the temp file when dedup or failure left it */
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

static int open_blob(sr_blobs *bs, const uint8_t sha[SR_HASH_LEN], uint32_t kid, sr_file **f, blob_paths *bp,
                     sr_blob_errinfo *ei)
{
    int rc = paths_init(bs, sha, kid, bp);
    if (rc) return rc;
    rc = bs->vfs->open(bs->vfs, bp->file, SR_VFS_READ, f);
    if (rc == SR_ENOTFOUND) set_err(ei, rc, bp->hex, 0, "blob %s not found", bp->hex);
    return rc;
}

int sr_blob_reader_open(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], sr_blob_reader **out,
                        sr_blob_errinfo *ei)
{
    return sr_blob_reader_open_keyed(bs, sha256, 0, out, ei);
}

int sr_blob_reader_open_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id,
                              sr_blob_reader **out, sr_blob_errinfo *ei)
{
    blob_paths bp = {0};
    int rc;
    clear_err(ei);
    if (!bs || !sha256 || !out) return SR_EINVAL;
    sr_blob_reader *r = sr_calloc(1, sizeof *r);
    if (!r) return SR_ENOMEM;
    r->bs = bs;
    memcpy(r->want, sha256, SR_HASH_LEN);
    if ((rc = open_blob(bs, sha256, key_id, &r->f, &bp, &r->ei))) goto fail;
    if ((rc = read_meta(bs, r->f, bp.hex, key_id, &r->m, &r->sl, &r->ei))) goto fail;
    if (memcmp(r->m.sha, sha256, SR_HASH_LEN) != 0) {
        rc = SR_ECORRUPT;
        set_err(&r->ei, rc, bp.hex, r->m.file_size, "blob %s: footer names other content (misplaced file)", bp.hex);
        goto fail;
    }
    /* m.chunk is bounded by read_meta (invariant 5). */
    r->plain = sr_malloc(r->m.chunk);
    r->rec = sr_malloc((size_t)r->m.chunk + REC_OVERHEAD_ENC);
    if (!r->plain || !r->rec) {
        rc = SR_ENOMEM;
        goto fail;
    }
    if ((rc = sr_sha256_init(&r->sha))) goto fail;
    r->off = HDR_LEN;
    snprintf(r->ei.blob, sizeof r->ei.blob, "%.64s", bp.hex); /* the content hash; messages name the file */
    memcpy(r->name, bp.hex, sizeof r->name);
    paths_release(&bp);
    *out = r;
    return SR_OK;
fail:
    if (ei) {
        *ei = r->ei;
        if (!ei->code) set_err(ei, rc, bp.hex, 0, "blob %s: %s", bp.hex, sr_strerror(rc));
    }
    paths_release(&bp);
    sr_blob_reader_close(r);
    return rc;
}

static int reader_fail(sr_blob_reader *r, int rc)
{
    if (!r->err) r->err = rc;
    if (!r->ei.code) r->ei.code = rc;
    return rc;
}

/* Load, authenticate and decrypt chunk r->index into r->plain. */
static int reader_load(sr_blob_reader *r)
{
    const char *hex = r->name;
    uint32_t n = chunk_len_at(r->m.size, r->m.chunk, r->index);
    size_t reclen = n + rec_overhead(r->m.flags);
    uint8_t aad[AAD_LEN];
    char kmsg[200] = "";
    int rc = sr_vfs_read_exact(r->f, r->rec, reclen, r->off);
    if (rc == SR_DONE) {
        set_err(&r->ei, SR_ECORRUPT, hex, r->off, "blob %s: chunk %" PRIu64 " at offset %" PRIu64 " is truncated",
                hex, r->index, r->off);
        return SR_ECORRUPT;
    }
    if (rc) return rc;
    if (sr_get_le32(r->rec) != n) {
        set_err(&r->ei, SR_ECORRUPT, hex, r->off,
                "blob %s: chunk %" PRIu64 " at offset %" PRIu64 " has length %u, expected %u", hex, r->index,
                r->off, (unsigned)sr_get_le32(r->rec), (unsigned)n);
        return SR_ECORRUPT;
    }
    chunk_aad(aad, r->m.file_id, r->index, n);
    if (r->m.flags & FLAG_AES_GCM) {
        const uint8_t *nonce = r->rec + 4, *ct = r->rec + 4 + SR_NONCE_LEN;
        rc = sealer_open(&r->sl, nonce, aad, AAD_LEN, ct, n, r->plain, ct + n, kmsg, sizeof kmsg);
    } else {
        memcpy(r->plain, r->rec + 4, n);
        if (sr_get_le32(r->rec + 4 + n) != sr_crc32c(sr_crc32c(0, aad, AAD_LEN), r->plain, n)) rc = SR_ECORRUPT;
    }
    if (rc == SR_ECORRUPT)
        set_err(&r->ei, rc, hex, r->off,
                "blob %s: chunk %" PRIu64 " at offset %" PRIu64 " fails its %s (damaged, reordered or foreign)",
                hex, r->index, r->off, (r->m.flags & FLAG_AES_GCM) ? "authentication tag" : "CRC-32C");
    if (rc == SR_EKEY || rc == SR_EERASED) key_err(&r->ei, rc, hex, r->off, r->m.key_id, kmsg);
    if (rc) return rc;
    if ((rc = sr_sha256_update(&r->sha, r->plain, n))) return rc;
    r->off += reclen;
    r->index++;
    r->total += n;
    r->plain_len = n;
    r->plain_pos = 0;
    return SR_OK;
}

int sr_blob_reader_read(sr_blob_reader *r, void *buf, size_t cap, size_t *got)
{
    if (!r || !got || (!buf && cap)) return SR_EINVAL;
    if (r->err) return r->err;
    int rc;
    *got = 0;
    if (r->plain_pos == r->plain_len) {
        if (r->done) return SR_DONE;
        if (r->index == r->m.nchunks) {
            uint8_t sha[SR_HASH_LEN];
            if ((rc = sr_sha256_final(&r->sha, sha))) return reader_fail(r, rc);
            if (r->total != r->m.size || memcmp(sha, r->want, SR_HASH_LEN) != 0) {
                set_err(&r->ei, SR_ECORRUPT, r->ei.blob, r->off,
                        "blob %s: content does not hash to its name (%" PRIu64 " bytes read)", r->name,
                        r->total);
                return reader_fail(r, SR_ECORRUPT);
            }
            r->done = 1;
            return SR_DONE;
        }
        if ((rc = reader_load(r))) return reader_fail(r, rc);
    }
    if (cap == 0) return SR_OK;
    size_t k = r->plain_len - r->plain_pos < cap ? r->plain_len - r->plain_pos : cap;
    memcpy(buf, r->plain + r->plain_pos, k);
    r->plain_pos += k;
    *got = k;
    return SR_OK;
}

const sr_blob_errinfo *sr_blob_reader_errinfo(const sr_blob_reader *r) { return &r->ei; }

uint64_t sr_blob_reader_size(const sr_blob_reader *r) { return r->m.size; }

void sr_blob_reader_close(sr_blob_reader *r)
{
    if (!r) return;
    sr_file_close(r->f);
    sr_aead_destroy(r->sl.aead);
    sr_sha256_release(&r->sha);
    sr_free(r->plain);
    sr_free(r->rec);
    sr_free(r);
}

/* ------------------------------------------------------------------------ */
/* Stat / exists / delete                                                    */

int sr_blob_stat(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint64_t *size)
{
    return sr_blob_stat_keyed(bs, sha256, 0, size);
}

int sr_blob_stat_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id, uint64_t *size)
{
    if (!bs || !sha256 || !size) return SR_EINVAL;
    blob_paths bp = {0};
    sr_file *f = NULL;
    sealer sl = {0};
    meta m;
    int rc = open_blob(bs, sha256, key_id, &f, &bp, NULL);
    if (rc) goto done;
    if ((rc = read_meta(bs, f, bp.hex, key_id, &m, &sl, NULL))) goto done;
    if (memcmp(m.sha, sha256, SR_HASH_LEN) != 0) {
        rc = SR_ECORRUPT;
        goto done;
    }
    *size = m.size;
done:
    sr_file_close(f);
    sr_aead_destroy(sl.aead);
    paths_release(&bp);
    return rc;
}

int sr_blob_exists(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN]) { return sr_blob_exists_keyed(bs, sha256, 0); }

int sr_blob_exists_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id)
{
    if (!bs || !sha256) return SR_EINVAL;
    blob_paths bp = {0};
    sr_file *f = NULL;
    int rc = open_blob(bs, sha256, key_id, &f, &bp, NULL);
    sr_file_close(f);
    paths_release(&bp);
    return rc;
}

int sr_blob_delete(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN]) { return sr_blob_delete_keyed(bs, sha256, 0); }

int sr_blob_delete_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id)
{
    if (!bs || !sha256 || bs->readonly) return SR_EINVAL;
    blob_paths bp = {0};
    int rc = paths_init(bs, sha256, key_id, &bp);
    if (rc) goto done;
    pthread_mutex_lock(&bs->mu);
    rc = bs->vfs->unlink(bs->vfs, bp.file);
    if (!rc) rc = bs->vfs->sync_dir(bs->vfs, bp.d2);
    pthread_mutex_unlock(&bs->mu);
done:
    paths_release(&bp);
    return rc;
}

int sr_blob_verify(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint64_t *size, sr_blob_errinfo *ei)
{
    return sr_blob_verify_keyed(bs, sha256, 0, size, ei);
}

int sr_blob_verify_keyed(sr_blobs *bs, const uint8_t sha256[SR_HASH_LEN], uint32_t key_id, uint64_t *size,
                         sr_blob_errinfo *ei)
{
    sr_blob_reader *r = NULL;
    int rc = sr_blob_reader_open_keyed(bs, sha256, key_id, &r, ei);
    if (rc) return rc;
    size_t cap = bs->chunk > 65536 ? bs->chunk : 65536, got = 0;
    uint8_t *buf = sr_malloc(cap);
    if (!buf) {
        sr_blob_reader_close(r);
        return SR_ENOMEM;
    }
    while ((rc = sr_blob_reader_read(r, buf, cap, &got)) == SR_OK) {
    }
    if (rc == SR_DONE) {
        rc = SR_OK;
        if (size) *size = sr_blob_reader_size(r);
    } else if (ei) {
        *ei = *sr_blob_reader_errinfo(r);
        if (!ei->code) ei->code = rc;
    }
    sr_free(buf);
    sr_blob_reader_close(r);
    return rc;
}
