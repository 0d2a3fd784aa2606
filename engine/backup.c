/*
 * engine/backup.c -- online backup and verified restore (engine/backup.h,
 * docs/backup.md).
 *
 * BACKUP, in this order (each step's files through the caller's VFS, so the
 * fault suite can fail any of them):
 *   1. the set: every entry of DEST is a complete backup of this chain or a
 *      leftover NAME.partial (removed), else refused; the newest complete
 *      one is the base to link from;
 *   2. the index: an LMDB copy (sr_index_copy: its own read transaction)
 *      gives the index at its watermark W;
 *   3. S = the end of W's batch in the log (sr_log_cut_at, up): W always
 *      ends a group's batch, so S = W and the restored engine serves at once;
 *      the log only ever holds what the index applied or more (the index
 *      applies only fsynced events), so the log up to S is there. The
 *      writer is not held: it goes on appending after S meanwhile;
 *   4. the log: sealed segments whole, the segment of S up to S's block end;
 *      then keys/keyring (the wrapped data keys, never the master: every
 *      key a record up to S is sealed by is in it, docs/keys.md);
 *   5. the blobs: every committed blob (a blob is durable before the event
 *      that names it, and none is deleted), so every blob the index at S
 *      references;
 *   6. platform-cert.pem; then every directory fsynced;
 *   7. the manifest, signed, written last and fsynced, the directory fsynced;
 *   8. NAME.partial renamed to NAME, DEST fsynced.
 * Files 4 and 5 already in the base with the same name and size are hard
 * links to it. Any failure removes NAME.partial: nothing under NAME.
 *
 * RESTORE: check (signature, chain, every file's size and SHA-256, no other
 * file) before anything is written; copy into DIR.partial checking again;
 * --to cuts the log at a whole batch (sr_log_cut_at: a SEQ at the end of
 * the group holding it, after its WriteAudit; a TIME after the last group
 * ingested by then) and rebuilds the index from it; rename to DIR; record the restore in DIR.
 *
 * INVARIANTS
 *  (1) A directory under a backup's name holds a manifest that was written
 *      after every other file of it was durable.
 *  (2) A manifest lists exactly the backup's files; its signature covers
 *      every byte before its signature line.
 *  (3) Nothing is written into the restore's DIR before the whole backup
 *      checked; DIR appears only complete (rename).
 */
#include "engine/backup.h"

#include "engine/engine_int.h"
#include "engine/records.h"
#include "storage/crypto.h"
#include "storage/index.h"
#include "storage/log.h"
#include "storage/vfs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_MAGIC "suiro-backup 1\n"
/* the directories of a data directory a backup holds */
static const char *const SUBS[] = {"index", "log", "blobs", "keys"};
enum { NSUBS = sizeof SUBS / sizeof *SUBS };
enum { COPY_CHUNK = 1 << 20, MANIFEST_MAX = 256 << 20 };

static pthread_mutex_t g_one = PTHREAD_MUTEX_INITIALIZER; /* one backup at a time */

/* snprintf for paths and names (truncation is checked where it matters: the
 * callers bound their inputs) */
static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static int fail(sr_errinfo *ei, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(sr_errinfo *ei, int code, const char *fmt, ...)
{
    if (ei) {
        memset(ei, 0, sizeof *ei);
        ei->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ------------------------------------------------------------------------ */
/* The manifest                                                               */

typedef struct mfile {
    char *path; /* relative: log/..., index/data.mdb, blobs/ab/cd/..., platform-cert.pem, keys/keyring */
    uint64_t size;
    uint8_t sha[32];
    int linked;
} mfile;

typedef struct manifest {
    sr_backup_info info;
    mfile *f;
    size_t n, cap;
} manifest;

static void manifest_free(manifest *m)
{
    for (size_t i = 0; i < m->n; i++) sr_free(m->f[i].path);
    sr_free(m->f);
    memset(m, 0, sizeof *m);
}

static int manifest_add(manifest *m, const char *path, uint64_t size, const uint8_t sha[32], int linked)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        mfile *f = sr_realloc(m->f, cap * sizeof *f);
        if (!f) return SR_ENOMEM;
        m->f = f;
        m->cap = cap;
    }
    char *p = sr_malloc(strlen(path) + 1);
    if (!p) return SR_ENOMEM;
    strcpy(p, path);
    m->f[m->n++] = (mfile){p, size, {0}, linked};
    memcpy(m->f[m->n - 1].sha, sha, 32);
    return SR_OK;
}

/* A path a manifest may name: under log/, index/, blobs/ or the
 * certificate, of [A-Za-z0-9._-] components, none "." or "..". */
static int path_ok(const char *p)
{
    if (strncmp(p, "log/", 4) && strncmp(p, "index/", 6) && strncmp(p, "blobs/", 6) && strcmp(p, "platform-cert.pem") &&
        strcmp(p, "keys/keyring"))
        return 0;
    const char *c = p;
    for (;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++) {
            char ch = c[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-'))
                return 0;
        }
        if (!e) return 1;
        c = e + 1;
    }
}

/* The manifest's text without its signature line. */
static int manifest_text(const manifest *m, sr_buf *b)
{
    const sr_backup_info *x = &m->info;
    char chain[65], tip[65], line[512];
    sr_hex(x->chain, 32, chain);
    sr_hex(x->tip, 32, tip);
    int n = snprintf(line, sizeof line,
                     MANIFEST_MAGIC "chain %s\nseq %" PRIu64 "\nwatermark %" PRIu64 "\nfirst-seq %" PRIu64
                                    "\ntip %s\nkey %" PRIu32 "\ncreated %" PRId64 "\nbase %s\n",
                     chain, x->seq, x->watermark, x->first_seq, tip, x->key_id, x->created_ms,
                     x->base[0] ? x->base : "-");
    if (sr_buf_append(b, line, (size_t)n)) return SR_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        char h[65];
        sr_hex(m->f[i].sha, 32, h);
        n = snprintf(line, sizeof line, "file %s %" PRIu64 " ", h, m->f[i].size);
        if (sr_buf_append(b, line, (size_t)n) || sr_buf_append(b, m->f[i].path, strlen(m->f[i].path)) ||
            sr_buf_append(b, "\n", 1))
            return SR_ENOMEM;
    }
    return SR_OK;
}

static int hex32(const char *s, uint8_t out[32]) { return strlen(s) == 64 && sr_unhex(s, 32, out) == 0 ? 0 : -1; }

/* A manifest's signature: its algorithm (the "signature-alg" line, signed
 * with the rest; ES256 when absent, as before it existed) and its bytes. */
typedef struct msig {
    int alg;
    size_t n;
    uint8_t b[SR_SIG_MAX_LEN];
} msig;

/* Parse text (NUL-terminated, len bytes) into m; the signature line's
 * offset into *signed_len and the signature into sig. SR_ECORRUPT with the
 * line in ei (path names the manifest). */
static int manifest_parse(const char *path, char *text, size_t len, manifest *m, size_t *signed_len, msig *sig,
                          sr_errinfo *ei)
{
    memset(m, 0, sizeof *m);
    if (len < sizeof MANIFEST_MAGIC - 1 || memcmp(text, MANIFEST_MAGIC, sizeof MANIFEST_MAGIC - 1))
        return fail(ei, SR_ECORRUPT, "%s: not a suiro backup manifest (no \"suiro-backup 1\" first line)", path);
    if (strlen(text) != len) return fail(ei, SR_ECORRUPT, "%s: holds a NUL byte", path);
    char *p = text + sizeof MANIFEST_MAGIC - 1;
    int have = 0, lineno = 1;
    *signed_len = 0;
    sig->alg = SR_ALG_ES256;
    sig->n = 0;
    while (*p) {
        lineno++;
        char *nl = strchr(p, '\n');
        if (!nl) return fail(ei, SR_ECORRUPT, "%s:%d: the last line has no end (cut short?)", path, lineno);
        *nl = 0;
        char *line = p, *sp = strchr(line, ' ');
        p = nl + 1;
        if (!sp) goto bad;
        *sp = 0;
        const char *k = line, *v = sp + 1;
        int rc = 0;
        if (!strcmp(k, "signature")) {
            size_t vl = strlen(v);
            if (!vl || vl % 2 || vl > 2 * SR_SIG_MAX_LEN || sr_unhex(v, vl / 2, sig->b) != 0) goto bad;
            sig->n = vl / 2;
            *signed_len = (size_t)(line - text);
            if (*p) return fail(ei, SR_ECORRUPT, "%s:%d: lines after the signature", path, lineno + 1);
            have |= 1 << 8;
            break;
        } else if (!strcmp(k, "signature-alg")) {
            sr_alg a;
            char why[160];
            if (sr_alg_by_name(v, SR_ALG_KIND_SIG, &a, why, sizeof why))
                return fail(ei, SR_ECORRUPT, "%s:%d: signature-alg: %s", path, lineno, why);
            sig->alg = (int)a;
        } else if (!strcmp(k, "chain")) rc = hex32(v, m->info.chain), have |= 1;
        else if (!strcmp(k, "tip")) rc = hex32(v, m->info.tip), have |= 2;
        else if (!strcmp(k, "seq")) rc = sscanf(v, "%" SCNu64, &m->info.seq) == 1 ? 0 : -1, have |= 4;
        else if (!strcmp(k, "watermark")) rc = sscanf(v, "%" SCNu64, &m->info.watermark) == 1 ? 0 : -1, have |= 8;
        else if (!strcmp(k, "first-seq")) rc = sscanf(v, "%" SCNu64, &m->info.first_seq) == 1 ? 0 : -1, have |= 16;
        else if (!strcmp(k, "key")) rc = sscanf(v, "%" SCNu32, &m->info.key_id) == 1 ? 0 : -1, have |= 32;
        else if (!strcmp(k, "created")) rc = sscanf(v, "%" SCNd64, &m->info.created_ms) == 1 ? 0 : -1, have |= 64;
        else if (!strcmp(k, "base")) {
            if (strlen(v) >= sizeof m->info.base) goto bad;
            pathf(m->info.base, sizeof m->info.base, "%s", strcmp(v, "-") ? v : "");
            have |= 128;
        } else if (!strcmp(k, "file")) {
            char h[65], *q;
            uint8_t sha[32];
            if (strlen(v) < 66 || v[64] != ' ') goto bad;
            memcpy(h, v, 64);
            h[64] = 0;
            errno = 0;
            unsigned long long size = strtoull(v + 65, &q, 10);
            if (hex32(h, sha) || errno || q == v + 65 || *q != ' ' || !path_ok(q + 1)) goto bad;
            for (size_t i = 0; i < m->n; i++)
                if (!strcmp(m->f[i].path, q + 1)) return fail(ei, SR_ECORRUPT, "%s:%d: %s listed twice", path, lineno, q + 1);
            if (manifest_add(m, q + 1, size, sha, 0)) return fail(ei, SR_ENOMEM, "%s: out of memory", path);
            m->info.bytes += size;
            m->info.files++;
        } else goto bad;
        if (rc) goto bad;
        continue;
    bad:
        return fail(ei, SR_ECORRUPT, "%s:%d: a line that is no manifest line (\"%.60s\")", path, lineno, line);
    }
    if (have != 511) return fail(ei, SR_ECORRUPT, "%s: incomplete (a line is missing, or the signature)", path);
    return SR_OK;
}

int sr_backup_manifest_parse(const void *text, size_t len, sr_backup_info *out, sr_errinfo *ei)
{
    memset(out, 0, sizeof *out);
    if (len > MANIFEST_MAX) return fail(ei, SR_ECORRUPT, "manifest: larger than %d MiB", MANIFEST_MAX >> 20);
    char *t = sr_malloc(len + 1);
    if (!t) return fail(ei, SR_ENOMEM, "out of memory");
    if (len) memcpy(t, text, len);
    t[len] = 0;
    manifest m;
    size_t slen;
    msig sig;
    int rc = manifest_parse("manifest", t, len, &m, &slen, &sig, ei);
    if (!rc) {
        SR_VERIFY(slen <= len);
        for (size_t i = 0; i < m.n; i++) SR_VERIFY(path_ok(m.f[i].path));
        *out = m.info;
    }
    manifest_free(&m); /* the parser's list, on failure too */
    sr_free(t);
    return rc;
}

static int read_all(const char *path, sr_buf *b, sr_errinfo *ei)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(ei, errno == ENOENT ? SR_ENOTFOUND : sr_err_from_errno(errno), "%s: %s", path, strerror(errno));
    char tmp[65536];
    size_t n;
    int rc = SR_OK;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (b->len + n > MANIFEST_MAX) {
            rc = fail(ei, SR_ECORRUPT, "%s: larger than %d MiB: no manifest", path, MANIFEST_MAX >> 20);
            break;
        }
        if (sr_buf_append(b, tmp, n)) {
            rc = fail(ei, SR_ENOMEM, "%s: out of memory", path);
            break;
        }
    }
    if (!rc && ferror(f)) rc = fail(ei, SR_EIO, "%s: cannot read", path);
    fclose(f);
    if (!rc && sr_buf_append(b, "", 1)) rc = fail(ei, SR_ENOMEM, "%s: out of memory", path);
    if (!rc) b->len--; /* NUL-terminated, not counted */
    return rc;
}

/* Load dir/manifest and check its chain and signature against k (k's id in
 * chain). SR_ENOTFOUND: no manifest; SR_EKEY: another chain or a bad signature. */
static int manifest_load(const char *dir, sr_sigkey *k, const uint8_t chain[32], manifest *m, sr_errinfo *ei)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/manifest", dir);
    sr_buf b;
    sr_buf_init(&b);
    int rc = read_all(path, &b, ei);
    if (rc == SR_ENOTFOUND) fail(ei, rc, "%s: missing: %s is not a complete backup", path, dir);
    size_t slen = 0;
    msig sig;
    if (!rc) rc = manifest_parse(path, (char *)b.data, b.len, m, &slen, &sig, ei);
    if (!rc && sig.alg != sr_sigkey_alg(k))
        rc = fail(ei, SR_EKEY, "%s: signed with %s, but the platform key given is a key of %s", path, sr_alg_name(sig.alg),
                  sr_alg_name(sr_sigkey_alg(k)));
    if (!rc && memcmp(m->info.chain, chain, 32)) {
        char a[65], c[65];
        sr_hex(m->info.chain, 32, a);
        sr_hex(chain, 32, c);
        rc = fail(ei, SR_EKEY, "%s: a backup of another chain (platform key %.16s...), not of this platform's (%.16s...)",
                  path, a, c);
    }
    if (!rc) {
        /* the signed bytes: the text as written (the parser cut lines at \n) */
        sr_buf again;
        sr_buf_init(&again);
        rc = read_all(path, &again, ei);
        if (!rc && (slen > again.len || sr_sigkey_verify(k, again.data, slen, sig.b, sig.n) != SR_OK))
            rc = fail(ei, SR_EKEY, "%s: bad signature: not signed by this platform key (changed, or another platform's)",
                      path);
        sr_buf_release(&again);
    }
    sr_buf_release(&b);
    if (rc) manifest_free(m);
    else {
        const char *slash = strrchr(dir, '/');
        const char *nm = slash && slash[1] ? slash + 1 : dir;
        pathf(m->info.name, sizeof m->info.name, "%s", nm);
    }
    return rc;
}

static int load_sigkey(const char *path, int need_private, sr_sigkey **k, uint8_t chain[32], sr_errinfo *ei)
{
    char err[300];
    int rc = sr_sigkey_load(path, need_private, k, err, sizeof err);
    if (rc) return fail(ei, rc == SR_ENOTFOUND ? SR_ENOTFOUND : SR_EKEY, "platform key: %s", err);
    if ((rc = sr_sigkey_id(*k, chain))) {
        sr_sigkey_free(*k);
        *k = NULL;
        return fail(ei, rc, "platform key: %s: cannot read its public key", path);
    }
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(p);
    return 0;
}

static void rm_tree(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

typedef struct copier {
    const sr_vfs *vfs;
    uint32_t delay_ms; /* tests: after each file */
    uint64_t done, total;
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    uint64_t last_report;
    uint8_t *buf;
} copier;

static void tick(copier *c, uint64_t n)
{
    c->done += n;
    if (c->progress && c->done - c->last_report >= (8u << 20)) {
        c->last_report = c->done;
        c->progress(c->progress_ctx, c->done, c->total);
    }
}

/* Copy len bytes (UINT64_MAX: all) of src to the new file dst, SHA-256 into
 * sha, the size into *size, dst fsynced. want (may be NULL): the SHA-256
 * the bytes must have. */
static int copy_file(copier *c, const char *src, const char *dst, uint64_t len, uint8_t sha[32], uint64_t *size,
                     const uint8_t *want, sr_errinfo *ei)
{
    sr_file *in = NULL, *out = NULL;
    sr_sha256_ctx h = {0};
    int rc = sr_vfs_posix.open(&sr_vfs_posix, src, SR_VFS_READ, &in);
    if (rc) return fail(ei, rc, "%s: cannot open: %s", src, sr_strerror(rc));
    if ((rc = c->vfs->open(c->vfs, dst, SR_VFS_WRITE | SR_VFS_CREATE | SR_VFS_EXCL, &out))) {
        fail(ei, rc, "%s: cannot create: %s", dst, sr_strerror(rc));
        goto done;
    }
    if ((rc = sr_sha256_init(&h))) {
        fail(ei, rc, "SHA-256: %s", sr_strerror(rc));
        goto done;
    }
    uint64_t off = 0;
    while (off < len) {
        size_t want_n = len - off < COPY_CHUNK ? (size_t)(len - off) : COPY_CHUNK, got = 0;
        if ((rc = in->vfs->pread(in, c->buf, want_n, off, &got))) {
            fail(ei, rc, "%s: cannot read at %" PRIu64 ": %s", src, off, sr_strerror(rc));
            goto done;
        }
        if (!got) break;
        if ((rc = c->vfs->pwrite(out, c->buf, got, off))) {
            fail(ei, rc, "%s: cannot write at %" PRIu64 ": %s", dst, off, sr_strerror(rc));
            goto done;
        }
        if ((rc = sr_sha256_update(&h, c->buf, got))) goto done;
        off += got;
        tick(c, got);
    }
    if (len != UINT64_MAX && off != len) {
        rc = fail(ei, SR_EIO, "%s: ends at %" PRIu64 ", %" PRIu64 " bytes expected", src, off, len);
        goto done;
    }
    if ((rc = c->vfs->sync(out))) {
        fail(ei, rc, "%s: cannot fsync: %s", dst, sr_strerror(rc));
        goto done;
    }
    if ((rc = sr_sha256_final(&h, sha))) goto done;
    *size = off;
    if (want && memcmp(want, sha, 32)) rc = fail(ei, SR_ECORRUPT, "%s: changed while it was copied", src);
done:
    sr_sha256_release(&h);
    sr_file_close(in);
    if (out && sr_file_close(out) && !rc) rc = fail(ei, SR_EIO, "%s: cannot close", dst);
    return rc;
}

/* SHA-256 and size of a file. */
static int hash_file(copier *c, const char *path, uint8_t sha[32], uint64_t *size)
{
    sr_file *in = NULL;
    int rc = sr_vfs_posix.open(&sr_vfs_posix, path, SR_VFS_READ, &in);
    if (rc) return rc;
    sr_sha256_ctx h = {0};
    uint64_t off = 0;
    if (!(rc = sr_sha256_init(&h)))
        for (;;) {
            size_t got = 0;
            if ((rc = in->vfs->pread(in, c->buf, COPY_CHUNK, off, &got)) || !got) break;
            if ((rc = sr_sha256_update(&h, c->buf, got))) break;
            off += got;
            tick(c, got);
        }
    if (!rc) rc = sr_sha256_final(&h, sha);
    sr_sha256_release(&h);
    sr_file_close(in);
    *size = off;
    return rc;
}

static int mkdir_v(const sr_vfs *v, const char *path, sr_errinfo *ei)
{
    int rc = v->mkdir(v, path);
    return rc ? fail(ei, rc, "%s: cannot create the directory: %s", path, sr_strerror(rc)) : SR_OK;
}

static int sync_dir_v(const sr_vfs *v, const char *path, sr_errinfo *ei)
{
    int rc = v->sync_dir(v, path);
    return rc ? fail(ei, rc, "%s: cannot fsync the directory: %s", path, sr_strerror(rc)) : SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Backup                                                                     */

typedef struct setscan {
    const char *dest;
    sr_sigkey *k;
    const uint8_t *chain;
    manifest base; /* the newest complete backup (info.name "" if none) */
    int has_base;
    sr_errinfo *ei;
    int rc;
} setscan;

static int is_partial(const char *name)
{
    size_t n = strlen(name);
    return n > 8 && !strcmp(name + n - 8, ".partial");
}

static int scan_cb(void *ctx, const char *name)
{
    setscan *s = ctx;
    char p[PATH_MAX];
    pathf(p, sizeof p, "%s/%s", s->dest, name);
    if (is_partial(name)) {
        rm_tree(p); /* an interrupted backup of this set: never complete */
        return 0;
    }
    struct stat st;
    if (lstat(p, &st) || !S_ISDIR(st.st_mode))
        return s->rc = fail(s->ei, SR_EEXIST, "%s: not empty and not a backup set: %s is not a backup", s->dest, name);
    manifest m;
    sr_errinfo e2;
    int rc = manifest_load(p, s->k, s->chain, &m, &e2);
    if (rc == SR_ENOTFOUND)
        return s->rc = fail(s->ei, SR_EEXIST, "%s: not empty and not a backup set: %s has no manifest", s->dest, name);
    if (rc == SR_EKEY && strstr(e2.msg, "another chain"))
        return s->rc = fail(s->ei, SR_EKEY, "%s: not a backup set of this chain: %s", s->dest, e2.msg);
    if (rc) return 0; /* a damaged backup is no base; list and restore name it */
    if (!s->has_base || m.info.seq > s->base.info.seq ||
        (m.info.seq == s->base.info.seq && strcmp(m.info.name, s->base.info.name) > 0)) {
        if (s->has_base) manifest_free(&s->base);
        s->base = m;
        s->has_base = 1;
    } else
        manifest_free(&m);
    return 0;
}

static const mfile *base_file(const setscan *s, const char *path, uint64_t size)
{
    if (!s->has_base) return NULL;
    for (size_t i = 0; i < s->base.n; i++)
        if (s->base.f[i].size == size && !strcmp(s->base.f[i].path, path)) return &s->base.f[i];
    return NULL;
}

typedef struct idxsink {
    copier *c;
    sr_file *out;
    uint64_t off;
    sr_sha256_ctx h;
    const char *path;
    sr_errinfo *ei;
} idxsink;

static int idx_sink(void *ctx, const void *p, size_t n)
{
    idxsink *s = ctx;
    int rc = s->c->vfs->pwrite(s->out, p, n, s->off);
    if (rc) return fail(s->ei, rc, "%s: cannot write at %" PRIu64 ": %s", s->path, s->off, sr_strerror(rc));
    s->off += n;
    tick(s->c, n);
    return sr_sha256_update(&s->h, p, n);
}

/* A file to put in the backup: src (absolute) as rel, len bytes (UINT64_MAX: all). */
static int put_file(copier *c, const setscan *s, manifest *m, const char *src, const char *root, const char *rel,
                    uint64_t len, int may_link, sr_errinfo *ei)
{
    char dst[PATH_MAX];
    pathf(dst, sizeof dst, "%s/%s", root, rel);
    uint8_t sha[32];
    uint64_t size = 0;
    if (c->delay_ms) usleep(c->delay_ms * 1000u);
    const mfile *b = may_link && c->vfs->link ? base_file(s, rel, len) : NULL;
    if (b) {
        char from[PATH_MAX];
        pathf(from, sizeof from, "%s/%s/%s", s->dest, s->base.info.name, rel);
        int rc = c->vfs->link(c->vfs, from, dst);
        if (!rc) {
            m->info.files_linked++;
            tick(c, len);
            return manifest_add(m, rel, b->size, b->sha, 1) ? fail(ei, SR_ENOMEM, "out of memory") : SR_OK;
        }
        if (rc != SR_ENOTFOUND) return fail(ei, rc, "%s: cannot link to %s: %s", dst, from, sr_strerror(rc));
    }
    int rc = copy_file(c, src, dst, len, sha, &size, NULL, ei);
    if (rc) return rc;
    m->info.files_copied++;
    return manifest_add(m, rel, size, sha, 0) ? fail(ei, SR_ENOMEM, "out of memory") : SR_OK;
}

/* The blob store's committed blobs: blobs/ab/cd/<64 hex>[.<8 hex>]. */
typedef struct blobwalk {
    const char *dir;
    char **rel;
    uint64_t *size;
    size_t n, cap;
    uint64_t bytes;
    int depth;
    char prefix[16];
} blobwalk;

static int blob_cb(void *ctx, const char *name)
{
    blobwalk *w = ctx;
    size_t nl = strlen(name);
    if (w->depth < 2) {
        if (nl != 2 || !isxdigit((unsigned char)name[0]) || !isxdigit((unsigned char)name[1])) return 0; /* tmp/, LOCK */
        char sub[PATH_MAX];
        pathf(sub, sizeof sub, "%s/%s%s", w->dir, w->prefix, name);
        blobwalk in = *w;
        in.depth++;
        pathf(in.prefix, sizeof in.prefix, "%s%s/", w->prefix, name);
        int rc = sr_vfs_posix.list(&sr_vfs_posix, sub, blob_cb, &in);
        w->rel = in.rel, w->size = in.size, w->n = in.n, w->cap = in.cap, w->bytes = in.bytes;
        return rc == SR_ENOTFOUND ? 0 : rc;
    }
    /* a version 1 name <64 hex>, or a version 2 one <64 hex>.<8 hex> (the
     * data key's id, docs/blob-format.md): both are committed blobs */
    int hexes = 1;
    for (size_t i = 0; hexes && i < 64 && i < nl; i++) hexes = isxdigit((unsigned char)name[i]) != 0;
    for (size_t i = 65; hexes && i < nl; i++) hexes = isxdigit((unsigned char)name[i]) != 0;
    if (!hexes || (nl != 64 && (nl != 73 || name[64] != '.'))) return 0;
    char p[PATH_MAX];
    pathf(p, sizeof p, "%s/%s%s", w->dir, w->prefix, name);
    struct stat st;
    if (stat(p, &st) || !S_ISREG(st.st_mode)) return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        char **r = sr_realloc(w->rel, cap * sizeof *r);
        uint64_t *z = r ? sr_realloc(w->size, cap * sizeof *z) : NULL;
        if (r) w->rel = r;
        if (!z) return SR_ENOMEM;
        w->size = z;
        w->cap = cap;
    }
    char *rel = sr_malloc(strlen(w->prefix) + nl + 8);
    if (!rel) return SR_ENOMEM;
    sprintf(rel, "blobs/%s%s", w->prefix, name);
    w->rel[w->n] = rel;
    w->size[w->n++] = (uint64_t)st.st_size;
    w->bytes += (uint64_t)st.st_size;
    return 0;
}

static void blobwalk_free(blobwalk *w)
{
    for (size_t i = 0; i < w->n; i++) sr_free(w->rel[i]);
    sr_free(w->rel);
    sr_free(w->size);
}

static int record_event(sr_engine *e, const sr_backup_opts *o, const char *action, const char *outcome,
                        const sr_backup_info *x, const char *msg)
{
    if (e->o.readonly || e->o.log_readonly || (o && o->no_event)) return SR_OK;
    sr_cmd_env env = {"", o && o->actor ? o->actor : "system",
                      o && o->actor_kind ? (sr_actor_kind)o->actor_kind : SR_ACTOR_SYSTEM, NULL,
                      o && o->source ? o->source : "cli"};
    sr_backup_rec r = {.action = action, .outcome = outcome, .name = x->name, .base = x->base, .message = msg,
                       .seq = x->seq, .bytes = x->bytes, .files_copied = x->files_copied,
                       .files_linked = x->files_linked, .has_tip = x->seq != 0};
    memcpy(r.tip, x->tip, 32);
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_backup_ev(&env, &r, &b);
    sr_result res;
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, &res);
        if (!rc) rc = res.rc;
    }
    sr_buf_release(&b);
    return rc;
}

static void name_now(char *out, size_t n, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    pathf(out, n, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int do_backup(sr_engine *e, const char *dest, copier *c, setscan *s, manifest *m,
                     char *partial, size_t plen, sr_errinfo *ei)
{
    const sr_vfs *v = c->vfs;
    int rc;
    /* 1. the set */
    if ((rc = mkdir_v(v, dest, ei))) return rc;
    if ((rc = sr_vfs_posix.list(&sr_vfs_posix, dest, scan_cb, s))) return s->rc ? s->rc : fail(ei, rc, "%s: cannot list: %s", dest, sr_strerror(rc));
    if (s->has_base) pathf(m->info.base, sizeof m->info.base, "%s", s->base.info.name);
    char stamp[40];
    m->info.created_ms = now_ms(e);
    name_now(stamp, sizeof stamp, m->info.created_ms);
    pathf(partial, plen, "%s/%s.partial", dest, stamp);
    char p[PATH_MAX];
    if ((rc = mkdir_v(v, partial, ei))) return rc;
    const char *const *subs = SUBS;
    for (size_t i = 0; i < NSUBS; i++) {
        pathf(p, sizeof p, "%s/%s", partial, subs[i]);
        if ((rc = mkdir_v(v, p, ei))) return rc;
    }
    /* what to copy, for the progress total */
    blobwalk bw = {0};
    char bdir[PATH_MAX];
    pathf(bdir, sizeof bdir, "%s/blobs", e->dir);
    bw.dir = bdir;
    rc = sr_vfs_posix.list(&sr_vfs_posix, bdir, blob_cb, &bw);
    if (rc && rc != SR_ENOTFOUND) {
        blobwalk_free(&bw);
        return fail(ei, rc, "%s: cannot list the blobs: %s", bdir, sr_strerror(rc));
    }
    struct stat st;
    pathf(p, sizeof p, "%s/index/data.mdb", e->dir);
    c->total = bw.bytes + (stat(p, &st) ? 0 : (uint64_t)st.st_size);
    for (size_t i = 0;; i++) {
        char nm[32];
        uint64_t fs, bytes;
        if (sr_log_segment_at(e->log, i, nm, &fs, &bytes)) break;
        c->total += bytes;
    }
    /* 2. the index at its watermark W */
    idxsink is = {.c = c, .ei = ei};
    char ipath[PATH_MAX];
    pathf(ipath, sizeof ipath, "%s/index/data.mdb", partial);
    is.path = ipath;
    if ((rc = v->open(v, ipath, SR_VFS_WRITE | SR_VFS_CREATE | SR_VFS_EXCL, &is.out))) {
        blobwalk_free(&bw);
        return fail(ei, rc, "%s: cannot create: %s", ipath, sr_strerror(rc));
    }
    rc = sr_sha256_init(&is.h);
    if (!rc) {
        ei->code = 0;
        rc = sr_index_copy(e->ix, idx_sink, &is);
        if (rc && !ei->code) fail(ei, rc, "%s/index: cannot copy: %s", e->dir, sr_strerror(rc));
    }
    if (!rc && (rc = v->sync(is.out))) fail(ei, rc, "%s: cannot fsync: %s", ipath, sr_strerror(rc));
    uint8_t isha[32];
    if (!rc) rc = sr_sha256_final(&is.h, isha);
    sr_sha256_release(&is.h);
    if (sr_file_close(is.out) && !rc) rc = fail(ei, SR_EIO, "%s: cannot close", ipath);
    if (!rc && manifest_add(m, "index/data.mdb", is.off, isha, 0)) rc = fail(ei, SR_ENOMEM, "out of memory");
    if (!rc) m->info.files_copied++;
    uint64_t w = 0;
    if (!rc) {
        pathf(p, sizeof p, "%s/index", partial);
        sr_engine_opts wo = {.index_dir = p};
        rc = sr_engine_index_watermark(partial, &wo, &w);
        pathf(p, sizeof p, "%s/index/lock.mdb", partial);
        unlink(p); /* made by the read-only open; not part of the backup */
        if (!rc && !w) rc = fail(ei, SR_EINVAL, "%s: the index has applied nothing yet: nothing to back up", e->dir);
    }
    /* 3. S: the end of W's batch */
    sr_log_cut cut;
    /* with sync=interval the index may be ahead of the log's last fsync:
     * make the log durable up to it first */
    if (!rc && sr_log_cut_at(e->log, w, 1, &cut) == SR_EINVAL && sr_log_sync(e->log) != SR_OK)
        rc = fail(ei, SR_EIO, "%s/log: cannot fsync it", e->dir);
    if (!rc && (rc = sr_log_cut_at(e->log, w, 1, &cut)))
        fail(ei, rc, "%s/log: no batch ends at the index's watermark %" PRIu64 ": %s", e->dir, w, sr_strerror(rc));
    if (!rc) {
        m->info.seq = cut.last_seq;
        m->info.watermark = w;
        memcpy(m->info.tip, cut.tip, 32);
        m->info.first_seq = sr_log_first_seq(e->log);
        m->info.key_id = e->o.key ? e->o.key->id : 0;
    }
    /* 4. the log up to S */
    for (size_t i = 0; !rc && i < cut.nsegs; i++) {
        char nm[32], rel[64], src[PATH_MAX];
        uint64_t fs, bytes;
        if ((rc = sr_log_segment_at(e->log, i, nm, &fs, &bytes))) {
            fail(ei, rc, "%s/log: segment %zu is gone (dropped meanwhile?)", e->dir, i);
            break;
        }
        if (i + 1 == cut.nsegs) bytes = cut.end;
        pathf(rel, sizeof rel, "log/%s", nm);
        pathf(src, sizeof src, "%s/%s", e->logdir, nm);
        rc = put_file(c, s, m, src, partial, rel, bytes, 1, ei);
    }
    /* 4b. the keyring (wrapped data keys, never the master): read after S
     * was fixed, so it holds every key a record up to S is sealed by (a key
     * is durable in it before its first record is appended), less the keys
     * destroyed since (their records are erased in the backup too). Its
     * file is replaced by a rename, so the copy is one whole version. */
    pathf(p, sizeof p, "%s/keys/keyring", e->dir);
    if (!rc && e->keyring && access(p, F_OK) == 0) rc = put_file(c, s, m, p, partial, "keys/keyring", UINT64_MAX, 0, ei);
    /* 5. the blobs */
    for (size_t i = 0; !rc && i < bw.n; i++) {
        char src[PATH_MAX], d1[PATH_MAX];
        pathf(src, sizeof src, "%s/%s", e->dir, bw.rel[i]);
        /* blobs/ab/ and blobs/ab/cd/ */
        pathf(d1, sizeof d1, "%s/%.8s", partial, bw.rel[i]);
        if ((rc = mkdir_v(v, d1, ei))) break;
        pathf(d1, sizeof d1, "%s/%.11s", partial, bw.rel[i]);
        if ((rc = mkdir_v(v, d1, ei))) break;
        rc = put_file(c, s, m, src, partial, bw.rel[i], bw.size[i], 1, ei);
    }
    /* 6. the certificate (public), then every directory */
    pathf(p, sizeof p, "%s/platform-cert.pem", e->dir);
    if (!rc && access(p, F_OK) == 0) rc = put_file(c, s, m, p, partial, "platform-cert.pem", UINT64_MAX, 0, ei);
    for (size_t i = 0; !rc && i < bw.n; i++) {
        char d[PATH_MAX];
        if (i && !strncmp(bw.rel[i], bw.rel[i - 1], 11)) continue;
        pathf(d, sizeof d, "%s/%.11s", partial, bw.rel[i]);
        if ((rc = sync_dir_v(v, d, ei))) break;
        if (i && !strncmp(bw.rel[i], bw.rel[i - 1], 8)) continue;
        pathf(d, sizeof d, "%s/%.8s", partial, bw.rel[i]);
        rc = sync_dir_v(v, d, ei);
    }
    blobwalk_free(&bw);
    for (size_t i = 0; !rc && i < NSUBS; i++) {
        pathf(p, sizeof p, "%s/%s", partial, subs[i]);
        rc = sync_dir_v(v, p, ei);
    }
    if (rc) return rc;
    /* 7. the manifest, signed, last */
    for (size_t i = 0; i < m->n; i++) m->info.bytes += m->f[i].size;
    m->info.files = (uint32_t)m->n;
    sr_buf txt;
    sr_buf_init(&txt);
    uint8_t sig[SR_SIG_MAX_LEN];
    size_t siglen = 0;
    char line[16 + 2 * SR_SIG_MAX_LEN];
    rc = manifest_text(m, &txt);
    if (!rc) { /* the algorithm's line is signed with the rest */
        int n = snprintf(line, sizeof line, "signature-alg %s\n", sr_alg_name(sr_sigkey_alg(s->k)));
        if (sr_buf_append(&txt, line, (size_t)n)) rc = fail(ei, SR_ENOMEM, "out of memory");
    }
    if (!rc && (rc = sr_sigkey_sign(s->k, txt.data, txt.len, sig, &siglen)))
        fail(ei, rc, "cannot sign the manifest: %s", sr_strerror(rc));
    if (!rc) {
        memcpy(line, "signature ", 10);
        sr_hex(sig, siglen, line + 10);
        line[10 + 2 * siglen] = '\n';
        if (sr_buf_append(&txt, line, 11 + 2 * siglen)) rc = fail(ei, SR_ENOMEM, "out of memory");
    }
    sr_file *mf = NULL;
    pathf(p, sizeof p, "%s/manifest", partial);
    if (!rc && (rc = v->open(v, p, SR_VFS_WRITE | SR_VFS_CREATE | SR_VFS_EXCL, &mf))) fail(ei, rc, "%s: cannot create: %s", p, sr_strerror(rc));
    if (!rc && (rc = v->pwrite(mf, txt.data, txt.len, 0))) fail(ei, rc, "%s: cannot write: %s", p, sr_strerror(rc));
    if (!rc && (rc = v->sync(mf))) fail(ei, rc, "%s: cannot fsync: %s", p, sr_strerror(rc));
    if (sr_file_close(mf) && !rc) rc = fail(ei, SR_EIO, "%s: cannot close", p);
    sr_buf_release(&txt);
    if (!rc) rc = sync_dir_v(v, partial, ei);
    if (rc) return rc;
    /* 8. into place */
    pathf(m->info.name, sizeof m->info.name, "%s-%" PRIu64, stamp, m->info.seq);
    pathf(p, sizeof p, "%s/%s", dest, m->info.name);
    if (access(p, F_OK) == 0) return fail(ei, SR_EEXIST, "%s: exists already", p);
    if ((rc = v->rename(v, partial, p))) return fail(ei, rc, "%s: cannot rename to %s: %s", partial, p, sr_strerror(rc));
    partial[0] = 0; /* renamed: nothing to remove */
    if ((rc = sync_dir_v(v, dest, ei))) {
        /* the rename may not be durable: take it back (nothing under the name) */
        rm_tree(p);
        (void)v->sync_dir(v, dest);
        m->info.name[0] = 0;
    }
    return rc;
}

int sr_engine_backup(sr_engine *e, const char *dest, const sr_backup_opts *o, sr_backup_info *out, sr_errinfo *ei)
{
    sr_backup_opts defo = {0};
    if (!o) o = &defo;
    memset(out, 0, sizeof *out);
    memset(ei, 0, sizeof *ei);
    if (!e->log || !e->ix) return fail(ei, SR_EINVAL, "%s: the engine has no log or index open", e->dir);
    /* a failed write stopped the writer: it reopens the log to resume
     * (docs/durability.md section 7); back up once it writes again */
    if (sr_engine_write_state(e, NULL) == SR_EPOISONED)
        return fail(ei, SR_EPOISONED, "%s: writing is stopped after a failed write; back up once it resumes", e->dir);
    if (strlen(dest) > PATH_MAX - 200) return fail(ei, SR_EINVAL, "%s: path too long", dest);
    char kp[PATH_MAX];
    pathf(kp, sizeof kp, "%s/platform-key.pem", e->dir);
    setscan s = {.dest = dest, .ei = ei};
    uint8_t chain[32];
    int rc = load_sigkey(o->platform_key ? o->platform_key : kp, 1, &s.k, chain, ei);
    if (rc) {
        if (rc == SR_ENOTFOUND) strncat(ei->msg, " (a backup is signed with the platform key; `suiro init` makes it)",
                                        sizeof ei->msg - strlen(ei->msg) - 1);
        return rc;
    }
    s.chain = chain;
    copier c = {.vfs = o->vfs ? o->vfs : &sr_vfs_posix, .progress = o->progress, .progress_ctx = o->progress_ctx,
                .delay_ms = o->test_file_delay_ms};
    if (!c.delay_ms && getenv("SUIRO_TEST_BACKUP_DELAY_MS")) c.delay_ms = (uint32_t)atoi(getenv("SUIRO_TEST_BACKUP_DELAY_MS"));
    c.buf = sr_malloc(COPY_CHUNK);
    manifest m;
    memset(&m, 0, sizeof m);
    memcpy(m.info.chain, chain, 32);
    char partial[PATH_MAX] = "";
    pthread_mutex_lock(&g_one);
    rc = c.buf ? do_backup(e, dest, &c, &s, &m, partial, sizeof partial, ei) : fail(ei, SR_ENOMEM, "out of memory");
    pthread_mutex_unlock(&g_one);
    if (partial[0]) {
        rm_tree(partial);
        (void)c.vfs->sync_dir(c.vfs, dest);
    }
    *out = m.info;
    if (rc) {
        out->name[0] = 0;
        (void)record_event(e, o, "backup", "failed", out, ei->msg);
    } else {
        if (c.progress) c.progress(c.progress_ctx, c.done, c.done);
        int erc = record_event(e, o, "backup", "done", out, "");
        (void)erc; /* the backup is complete and durable either way */
    }
    if (s.has_base) manifest_free(&s.base);
    manifest_free(&m);
    sr_sigkey_free(s.k);
    sr_free(c.buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Check, list, prune                                                         */

typedef struct extra {
    const char *root;
    const manifest *m;
    char prefix[PATH_MAX];
    sr_errinfo *ei;
} extra;

/* every file under root is the manifest or listed in it */
static int extra_cb(void *ctx, const char *name)
{
    extra *x = ctx;
    char rel[PATH_MAX], abs[PATH_MAX];
    pathf(rel, sizeof rel, "%s%s", x->prefix, name);
    pathf(abs, sizeof abs, "%s/%s", x->root, rel);
    if (!strcmp(rel, "manifest")) return 0;
    struct stat st;
    if (lstat(abs, &st)) return 0;
    if (S_ISDIR(st.st_mode)) {
        extra in = *x;
        pathf(in.prefix, sizeof in.prefix, "%s/", rel);
        return sr_vfs_posix.list(&sr_vfs_posix, abs, extra_cb, &in);
    }
    for (size_t i = 0; i < x->m->n; i++)
        if (!strcmp(x->m->f[i].path, rel)) return 0;
    return fail(x->ei, SR_ECORRUPT, "%s: not in the backup's manifest (an extra file)", abs);
}

static int check_files(const char *dir, const manifest *m, copier *c, int full, sr_errinfo *ei)
{
    for (size_t i = 0; i < m->n; i++) {
        char p[PATH_MAX];
        pathf(p, sizeof p, "%s/%s", dir, m->f[i].path);
        struct stat st;
        if (stat(p, &st)) return fail(ei, SR_ECORRUPT, "%s: missing (the manifest lists it)", p);
        if ((uint64_t)st.st_size != m->f[i].size)
            return fail(ei, SR_ECORRUPT, "%s: %" PRIu64 " bytes, the manifest says %" PRIu64, p, (uint64_t)st.st_size,
                        m->f[i].size);
        if (!full) continue;
        uint8_t sha[32];
        uint64_t size;
        int rc = hash_file(c, p, sha, &size);
        if (rc) return fail(ei, rc, "%s: cannot read: %s", p, sr_strerror(rc));
        if (memcmp(sha, m->f[i].sha, 32)) return fail(ei, SR_ECORRUPT, "%s: its SHA-256 differs from the manifest's (changed or damaged)", p);
    }
    extra x = {.root = dir, .m = m, .ei = ei};
    int rc = sr_vfs_posix.list(&sr_vfs_posix, dir, extra_cb, &x);
    return rc;
}

static int check_dir(const char *dir, sr_sigkey *k, const uint8_t chain[32], int full, copier *c, manifest *m,
                     sr_errinfo *ei)
{
    int rc = manifest_load(dir, k, chain, m, ei);
    if (!rc && (rc = check_files(dir, m, c, full, ei))) manifest_free(m);
    return rc;
}

int sr_backup_check(const char *dir, const char *platform_key, int full, sr_backup_info *out, sr_errinfo *ei)
{
    memset(out, 0, sizeof *out);
    sr_sigkey *k = NULL;
    uint8_t chain[32];
    int rc = load_sigkey(platform_key, 0, &k, chain, ei);
    if (rc) return rc;
    copier c = {.buf = sr_malloc(COPY_CHUNK)};
    manifest m;
    rc = c.buf ? check_dir(dir, k, chain, full, &c, &m, ei) : fail(ei, SR_ENOMEM, "out of memory");
    if (!rc) {
        *out = m.info;
        out->verified = 1;
        manifest_free(&m);
    }
    sr_free(c.buf);
    sr_sigkey_free(k);
    return rc;
}

typedef struct lister {
    const char *dest;
    sr_sigkey *k;
    const uint8_t *chain;
    copier *c;
    sr_backup_info *v;
    size_t n, cap;
    int rc;
} lister;

static int list_cb(void *ctx, const char *name)
{
    lister *l = ctx;
    if (is_partial(name)) return 0;
    char p[PATH_MAX], mp[PATH_MAX];
    pathf(p, sizeof p, "%s/%s", l->dest, name);
    pathf(mp, sizeof mp, "%s/manifest", p);
    if (access(mp, F_OK)) return 0; /* no manifest: never a complete backup */
    manifest m;
    sr_errinfo e2;
    sr_backup_info x;
    memset(&x, 0, sizeof x);
    pathf(x.name, sizeof x.name, "%s", name);
    if (check_dir(p, l->k, l->chain, 0, l->c, &m, &e2) == SR_OK) {
        x = m.info;
        x.verified = 1;
        manifest_free(&m);
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sr_backup_info *v = sr_realloc(l->v, cap * sizeof *v);
        if (!v) return SR_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

static int by_seq(const void *a, const void *b)
{
    const sr_backup_info *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return strcmp(x->name, y->name);
}

int sr_backup_list(const char *dest, const char *platform_key, sr_backup_info **out, size_t *n, sr_errinfo *ei)
{
    *out = NULL;
    *n = 0;
    sr_sigkey *k = NULL;
    uint8_t chain[32];
    int rc = load_sigkey(platform_key, 0, &k, chain, ei);
    if (rc) return rc;
    copier c = {0};
    lister l = {.dest = dest, .k = k, .chain = chain, .c = &c};
    rc = sr_vfs_posix.list(&sr_vfs_posix, dest, list_cb, &l);
    sr_sigkey_free(k);
    if (rc && rc != SR_ENOTFOUND) {
        sr_free(l.v);
        return fail(ei, rc, "%s: cannot list: %s", dest, sr_strerror(rc));
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, by_seq);
    *out = l.v;
    *n = l.n;
    return SR_OK;
}

int sr_backup_prune(const char *dest, const char *platform_key, unsigned keep, unsigned *removed, sr_errinfo *ei)
{
    *removed = 0;
    sr_backup_info *v;
    size_t n;
    int rc = sr_backup_list(dest, platform_key, &v, &n, ei);
    if (rc) return rc;
    size_t complete = 0;
    for (size_t i = 0; i < n; i++) complete += v[i].verified;
    for (size_t i = 0; i < n && complete > keep; i++) {
        if (!v[i].verified) continue; /* only complete backups are pruned */
        char p[PATH_MAX];
        pathf(p, sizeof p, "%s/%s", dest, v[i].name);
        /* hard links: every backup holds its own names, so removing this one
         * leaves every other whole */
        rm_tree(p);
        complete--;
        (*removed)++;
    }
    if (*removed) (void)sr_vfs_posix.sync_dir(&sr_vfs_posix, dest);
    sr_free(v);
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Restore                                                                    */

static int any_cb(void *ctx, const char *name)
{
    (void)name;
    *(int *)ctx = 1;
    return 1; /* stop: one is enough */
}

/* 1: dir is missing or an empty directory */
static int dir_empty_or_missing(const char *dir)
{
    struct stat st;
    if (stat(dir, &st)) return errno == ENOENT;
    if (!S_ISDIR(st.st_mode)) return 0;
    int any = 0;
    int rc = sr_vfs_posix.list(&sr_vfs_posix, dir, any_cb, &any);
    return (rc == SR_OK || rc == 1) && !any;
}

typedef struct segnames {
    char (*v)[32];
    size_t n;
} segnames;

/* --to: cut the log of dir (DIR.partial) at a whole batch (a SEQ: the end
 * of the batch holding it; a TIME: the end of the last one ingested by
 * then), drop the index and rebuild it. */
static int cut_and_rebuild(const char *dir, const sr_restore_opts *o, const manifest *m, uint64_t *S, uint8_t tip[32],
                           sr_errinfo *ei)
{
    char logdir[PATH_MAX], p[PATH_MAX];
    pathf(logdir, sizeof logdir, "%s/log", dir);
    sr_log_opts lo = {.key = o->key, .readonly = 1};
    sr_log *lg = NULL;
    sr_errinfo le;
    memset(&le, 0, sizeof le);
    sr_keyring *kr = NULL;
    int rc = sr__keyring_of(NULL, dir, o->key, NULL, 0, &kr, &le);
    if (kr) lo.keys = sr_keyring_keys(kr);
    if (!rc) rc = sr_log_open(logdir, &lo, &lg, &le);
    if (rc) {
        sr_keyring_close(kr);
        return fail(ei, rc, "%s: %s", logdir, le.msg[0] ? le.msg : sr_strerror(rc));
    }
    uint64_t target = o->to_seq;
    if (o->has_to_ms) {
        target = 0;
        sr_log_iter *it = NULL;
        if (!(rc = sr_log_iter_open(lg, 0, &it))) {
            uint64_t seq;
            sr_slice rec;
            sr_rec r = SR_REC_INIT;
            while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
                sr_event_view ev;
                int drc = sr_event_decode(rec.data, rec.len, &r, &ev);
                int64_t t = drc ? INT64_MAX : ev.ingest_ms;
                sr_rec_close(&r);
                if (drc) {
                    rc = fail(ei, drc, "%s: record %" PRIu64 " is no event", logdir, seq);
                    break;
                }
                if (t > o->to_ms) break; /* ingest times follow the log */
                target = seq;
            }
            if (rc == SR_DONE || rc == SR_OK) rc = SR_OK;
            else if (!ei->code) fail(ei, rc, "%s: %s", logdir, sr_log_iter_errinfo(it)->msg);
            sr_log_iter_close(it);
        }
        if (!rc && !target) rc = fail(ei, SR_ENOTFOUND, "the backup holds no event ingested at or before that time");
    } else if (target > m->info.seq)
        rc = fail(ei, SR_EINVAL, "--to %" PRIu64 " is after the backup's S (%" PRIu64 "): restore without --to, or "
                                 "from a later backup", target, m->info.seq);
    /* a SEQ: the end of the group's batch holding it (its writes' WriteAudit
     * follows them in that batch: the state after SEQ, its audit summary
     * with it); a TIME: the last event at or before it ends its group (one
     * ingest time a group) */
    sr_log_cut cut;
    int up = !o->has_to_ms;
    if (!rc && (rc = sr_log_cut_at(lg, target, up, &cut)))
        fail(ei, rc, "%s: no whole command ends %s seq %" PRIu64, logdir, up ? "at or after" : "at or before", target);
    segnames later = {0};
    for (size_t i = rc ? SIZE_MAX : cut.nsegs; !rc && i != SIZE_MAX; i++) {
        char nm[32];
        uint64_t fs, b;
        if (sr_log_segment_at(lg, i, nm, &fs, &b)) break;
        char(*v)[32] = sr_realloc(later.v, (later.n + 1) * sizeof *v);
        if (!v) {
            rc = fail(ei, SR_ENOMEM, "out of memory");
            break;
        }
        later.v = v;
        memcpy(later.v[later.n++], nm, 32);
    }
    (void)sr_log_close(lg);
    sr_keyring_close(kr);
    /* cut: the last kept segment at the batch's end, the later ones gone */
    if (!rc) {
        pathf(p, sizeof p, "%s/%s", logdir, cut.segment);
        sr_file *f = NULL;
        if ((rc = sr_vfs_posix.open(&sr_vfs_posix, p, SR_VFS_WRITE, &f)) || (rc = f->vfs->truncate(f, cut.end)) ||
            (rc = f->vfs->sync(f)))
            fail(ei, rc, "%s: cannot cut at %" PRIu64 ": %s", p, cut.end, sr_strerror(rc));
        sr_file_close(f);
    }
    for (size_t i = 0; !rc && i < later.n; i++) {
        pathf(p, sizeof p, "%s/%s", logdir, later.v[i]);
        if (unlink(p)) rc = fail(ei, sr_err_from_errno(errno), "%s: cannot remove: %s", p, strerror(errno));
    }
    sr_free(later.v);
    if (!rc && (rc = sr_vfs_posix.sync_dir(&sr_vfs_posix, logdir))) fail(ei, rc, "%s: cannot fsync", logdir);
    /* the index at the cut: rebuilt from the log */
    if (!rc) {
        pathf(p, sizeof p, "%s/index/data.mdb", dir);
        unlink(p);
        pathf(p, sizeof p, "%s/index/lock.mdb", dir);
        unlink(p);
        sr_engine_opts eo = {.key = o->key};
        sr_errinfo re;
        memset(&re, 0, sizeof re);
        if ((rc = sr_engine_rebuild(dir, &eo, &re)))
            fail(ei, rc, "%s: the index cannot be rebuilt at seq %" PRIu64 ": %s", dir, cut.last_seq,
                 re.msg[0] ? re.msg : sr_strerror(rc));
    }
    if (!rc) {
        *S = cut.last_seq;
        memcpy(tip, cut.tip, 32);
    }
    return rc;
}

static int restore_into(const char *bdir, const char *partial, sr_sigkey *k,
                        const manifest *m, copier *c, sr_errinfo *ei)
{
    const sr_vfs *v = c->vfs;
    int rc;
    char p[PATH_MAX], src[PATH_MAX];
    rm_tree(partial); /* an interrupted restore's */
    if ((rc = mkdir_v(v, partial, ei))) return rc;
    const char *const *subs = SUBS;
    for (size_t i = 0; i < NSUBS; i++) {
        pathf(p, sizeof p, "%s/%s", partial, subs[i]);
        if ((rc = mkdir_v(v, p, ei))) return rc;
    }
    c->done = 0;
    c->total = m->info.bytes;
    for (size_t i = 0; i < m->n; i++) {
        const char *rel = m->f[i].path;
        if (!strncmp(rel, "blobs/", 6)) {
            /* blobs/ab/ and blobs/ab/cd/ (any depth: each parent in turn) */
            for (const char *q = strchr(rel + 6, '/'); q; q = strchr(q + 1, '/')) {
                pathf(p, sizeof p, "%s/%.*s", partial, (int)(q - rel), rel);
                if ((rc = mkdir_v(v, p, ei))) return rc;
            }
        }
        pathf(src, sizeof src, "%s/%s", bdir, rel);
        pathf(p, sizeof p, "%s/%s", partial, rel);
        uint8_t sha[32];
        uint64_t size;
        if ((rc = copy_file(c, src, p, UINT64_MAX, sha, &size, m->f[i].sha, ei))) return rc;
        if (size != m->f[i].size) return fail(ei, SR_ECORRUPT, "%s: changed while it was copied", src);
    }
    (void)k;
    return SR_OK;
}

static int sync_tree(const char *dir, sr_errinfo *ei)
{
    /* the directories a restore made: dir, its three, the blob fan-out */
    char p[PATH_MAX];
    const char *const *subs = SUBS;
    for (size_t i = 0; i < NSUBS; i++) {
        pathf(p, sizeof p, "%s/%s", dir, subs[i]);
        int rc = sync_dir_v(&sr_vfs_posix, p, ei);
        if (rc) return rc;
    }
    return sync_dir_v(&sr_vfs_posix, dir, ei);
}

int sr_backup_restore(const char *bdir, const char *dir, const sr_restore_opts *o, sr_backup_info *out,
                      sr_errinfo *ei)
{
    memset(out, 0, sizeof *out);
    memset(ei, 0, sizeof *ei);
    if (!o || !o->platform_key)
        return fail(ei, SR_EINVAL, "a restore checks the backup's signature: give the platform key (its "
                                   "platform-key.pem or platform-cert.pem)");
    if (strlen(dir) > PATH_MAX - 200 || strlen(bdir) > PATH_MAX - 200) return fail(ei, SR_EINVAL, "path too long");
    sr_sigkey *k = NULL;
    uint8_t chain[32];
    int rc = load_sigkey(o->platform_key, 0, &k, chain, ei);
    if (rc) return rc;
    copier c = {.vfs = &sr_vfs_posix, .buf = sr_malloc(COPY_CHUNK), .progress = o->progress,
                .progress_ctx = o->progress_ctx};
    manifest m;
    memset(&m, 0, sizeof m);
    char partial[PATH_MAX];
    pathf(partial, sizeof partial, "%s.partial", dir);
    int made = 0;
    /* 1. the whole backup checks, before anything is written */
    if (!c.buf) rc = fail(ei, SR_ENOMEM, "out of memory");
    if (!rc) rc = check_dir(bdir, k, chain, 1, &c, &m, ei);
    if (!rc && m.info.key_id && !o->key)
        rc = fail(ei, SR_EKEY, "the backup's log is encrypted (key id %" PRIu32 "): give its key file", m.info.key_id);
    if (!rc && m.info.key_id && o->key->id != m.info.key_id)
        rc = fail(ei, SR_EKEY, "wrong key: the backup's log is encrypted with key id %" PRIu32 ", the key file given is key id %" PRIu32,
                  m.info.key_id, o->key->id);
    if (!rc && !dir_empty_or_missing(dir))
        rc = fail(ei, SR_EEXIST, "%s: exists and is not empty: a restore makes a new data directory", dir);
    /* 2. into DIR.partial, each file checked again as it is copied */
    if (!rc) {
        made = 1;
        rc = restore_into(bdir, partial, k, &m, &c, ei);
    }
    uint64_t S = m.info.seq;
    uint8_t tip[32];
    memcpy(tip, m.info.tip, 32);
    /* the platform key itself, when the restore was given the private one */
    if (!rc && sr_sigkey_private(k)) {
        char kp[PATH_MAX];
        pathf(kp, sizeof kp, "%s/platform-key.pem", partial);
        uint8_t sha[32];
        uint64_t size;
        if (!(rc = copy_file(&c, o->platform_key, kp, UINT64_MAX, sha, &size, NULL, ei)) && chmod(kp, 0600))
            rc = fail(ei, sr_err_from_errno(errno), "%s: %s", kp, strerror(errno));
    }
    if (!rc && !m.info.verified) m.info.verified = 1;
    /* 3. --to: the log cut and the index rebuilt */
    if (!rc && (o->to_seq || o->has_to_ms)) rc = cut_and_rebuild(partial, o, &m, &S, tip, ei);
    if (!rc) rc = sync_tree(partial, ei);
    /* 4. into place */
    if (!rc) {
        rmdir(dir); /* empty (checked), or missing */
        if (rename(partial, dir)) rc = fail(ei, sr_err_from_errno(errno), "%s: cannot rename to %s: %s", partial, dir, strerror(errno));
        else {
            made = 0;
            char parent[PATH_MAX];
            pathf(parent, sizeof parent, "%s", dir);
            char *sl = strrchr(parent, '/');
            if (sl == parent) sl[1] = 0;
            else if (sl) *sl = 0;
            else pathf(parent, sizeof parent, ".");
            rc = sync_dir_v(&sr_vfs_posix, parent, ei);
        }
    }
    if (made) rm_tree(partial);
    *out = m.info;
    out->seq = S;
    memcpy(out->tip, tip, 32);
    /* 5. the restore, the first new event of DIR */
    if (!rc && !o->no_event) {
        sr_engine *e = NULL;
        sr_engine_opts eo = {.key = o->key};
        sr_errinfo oe;
        memset(&oe, 0, sizeof oe);
        if ((rc = sr_engine_open(dir, &eo, &e, &oe)))
            fail(ei, rc, "%s: restored, but it does not open: %s", dir, oe.msg[0] ? oe.msg : sr_strerror(rc));
        else {
            sr_backup_opts bo = {.actor = o->actor, .source = o->source};
            const char *slash = strrchr(bdir, '/');
            sr_backup_info x = *out;
            x.base[0] = 0;
            pathf(x.name, sizeof x.name, "%s", slash && slash[1] ? slash + 1 : bdir);
            if ((rc = record_event(e, &bo, "restore", "done", &x, "")))
                fail(ei, rc, "%s: restored, but the restore could not be recorded: %s", dir, sr_strerror(rc));
            int crc = sr_engine_close(e);
            if (!rc && crc) rc = fail(ei, crc, "%s: restored, but closing it failed: %s", dir, sr_strerror(crc));
        }
    }
    if (c.progress && !rc) c.progress(c.progress_ctx, c.done, c.done);
    manifest_free(&m);
    sr_free(c.buf);
    sr_sigkey_free(k);
    return rc;
}
