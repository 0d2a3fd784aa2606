/* storage/index.c -- LMDB environment for the index (see index.h). */
#include "storage/index.h"

#include "codecs/base/sr_alloc.h"
#include "storage/crypto.h"

#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read transactions are reused (mdb_txn_reset / mdb_txn_renew; MDB_NOTLS
 * lets any thread renew any handle): a read's begin and end cost no malloc,
 * calloc or free and no per-database set-up of a new handle, which in a
 * lookup of one latest value was a third of its instructions and grows with
 * the number of databases. At most RPOOL reset handles wait in the pool;
 * a resize and the close abort them all (a reset handle is no reader: it
 * holds no slot and no snapshot). */
enum { RPOOL = 16 };

struct sr_index {
    MDB_env *env;
    const sr_index_db *dbs; /* the caller's table (names, flags) */
    unsigned ndbs;
    MDB_dbi dbi[SR_INDEX_MAX_DBS];
    pthread_rwlock_t resize; /* readers hold it shared; a resize takes it exclusively */
    uint64_t map_bytes;
    int readonly;
    pthread_mutex_t pmu;     /* the pool of reset read transactions */
    unsigned npool;
    MDB_txn *pool[RPOOL];
};

/* Abort every pooled handle (the resize lock held exclusively, or the close). */
static void pool_drain(sr_index *ix)
{
    pthread_mutex_lock(&ix->pmu);
    while (ix->npool) mdb_txn_abort(ix->pool[--ix->npool]);
    pthread_mutex_unlock(&ix->pmu);
}

MDB_env *sr_index_env(sr_index *ix) { return ix->env; }
MDB_dbi sr_index_dbi(sr_index *ix, unsigned which) { return ix->dbi[which]; }

int sr_index_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return SR_OK;
    case MDB_NOTFOUND: return SR_ENOTFOUND;
    case MDB_MAP_FULL: return SR_EFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return SR_ECORRUPT;
    case MDB_VERSION_MISMATCH: return SR_EVERSION;
    case ENOMEM: return SR_ENOMEM;
    case ENOSPC: return SR_ENOSPC;
    case EIO: return SR_EIO;
    default: return SR_EDB;
    }
}

int sr_index_open(const char *dir, uint64_t map_bytes, int readonly, const sr_index_db *dbs, unsigned ndbs,
                  sr_index **out, char *err, size_t errlen)
{
    int rc;
    if (!dbs || !ndbs || ndbs > SR_INDEX_MAX_DBS) return SR_EINVAL;
    sr_index *ix = sr_calloc(1, sizeof *ix);
    if (!ix) return SR_ENOMEM;
    ix->dbs = dbs;
    ix->ndbs = ndbs;
    pthread_rwlock_init(&ix->resize, NULL);
    pthread_mutex_init(&ix->pmu, NULL);
    ix->readonly = readonly;
    ix->map_bytes = map_bytes ? map_bytes : (1ull << 30);
    if (!readonly && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        rc = sr_err_from_errno(errno);
        goto fail;
    }
    if ((rc = mdb_env_create(&ix->env))) goto mdb_fail;
    if ((rc = mdb_env_set_maxdbs(ix->env, ndbs + 2))) goto mdb_fail;
    if ((rc = mdb_env_set_maxreaders(ix->env, 256))) goto mdb_fail;
    if ((rc = mdb_env_set_mapsize(ix->env, (size_t)ix->map_bytes))) goto mdb_fail;
    unsigned flags = MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD | (readonly ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(ix->env, dir, flags, 0644))) goto mdb_fail;
    {
        MDB_envinfo info;
        mdb_env_info(ix->env, &info);
        if (info.me_mapsize > ix->map_bytes) ix->map_bytes = info.me_mapsize;
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(ix->env, NULL, readonly ? MDB_RDONLY : 0, &txn))) goto mdb_fail;
    for (unsigned i = 0; i < ndbs; i++) {
        if ((rc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | (readonly ? 0 : MDB_CREATE), &ix->dbi[i]))) {
            mdb_txn_abort(txn);
            if (readonly && rc == MDB_NOTFOUND) { /* written by an older suiro (SR_INDEX_LAYOUT) */
                snprintf(err, errlen,
                         "index %s has an older layout (no database '%s'): open it read-write once "
                         "(it is rebuilt from the log) or run `suiro rebuild`",
                         dir, dbs[i].name);
                rc = SR_EVERSION;
                goto fail;
            }
            goto mdb_fail;
        }
    }
    if ((rc = mdb_txn_commit(txn))) goto mdb_fail;
    *out = ix;
    return SR_OK;
mdb_fail:
    snprintf(err, errlen, "index %s: %s", dir, mdb_strerror(rc));
    rc = sr_index_err(rc);
fail:
    if (ix->env) mdb_env_close(ix->env);
    pthread_rwlock_destroy(&ix->resize);
    pthread_mutex_destroy(&ix->pmu);
    sr_free(ix);
    return rc;
}

void sr_index_close(sr_index *ix)
{
    if (!ix) return;
    if (!ix->readonly) mdb_env_sync(ix->env, 1);
    pool_drain(ix);
    mdb_env_close(ix->env);
    pthread_rwlock_destroy(&ix->resize);
    pthread_mutex_destroy(&ix->pmu);
    sr_free(ix);
}

int sr_index_read_begin(sr_index *ix, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&ix->resize);
    MDB_txn *t = NULL;
    pthread_mutex_lock(&ix->pmu);
    if (ix->npool) t = ix->pool[--ix->npool];
    pthread_mutex_unlock(&ix->pmu);
    int rc = MDB_NOTFOUND;
    if (t && (rc = mdb_txn_renew(t))) mdb_txn_abort(t); /* then a new one */
    if (!rc) *txn = t;
    else rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
    if (rc) {
        pthread_rwlock_unlock(&ix->resize);
        return sr_index_err(rc);
    }
    return SR_OK;
}

void sr_index_read_end(sr_index *ix, MDB_txn *txn)
{
    if (!txn) return;
    mdb_txn_reset(txn);
    pthread_mutex_lock(&ix->pmu);
    if (ix->npool < RPOOL) ix->pool[ix->npool++] = txn, txn = NULL;
    pthread_mutex_unlock(&ix->pmu);
    if (txn) mdb_txn_abort(txn);
    pthread_rwlock_unlock(&ix->resize);
}

int sr_index_write_begin(sr_index *ix, MDB_txn **txn)
{
    return sr_index_err(mdb_txn_begin(ix->env, NULL, 0, txn));
}

int sr_index_commit(sr_index *ix, MDB_txn *txn)
{
    (void)ix;
    return sr_index_err(mdb_txn_commit(txn));
}

void sr_index_abort(MDB_txn *txn)
{
    if (txn) mdb_txn_abort(txn);
}

int sr_index_grow(sr_index *ix)
{
    pthread_rwlock_wrlock(&ix->resize);
    pool_drain(ix); /* no handle outlives the map it was made for */
    uint64_t next = ix->map_bytes * 2;
    int rc = mdb_env_set_mapsize(ix->env, (size_t)next);
    if (!rc) ix->map_bytes = next;
    pthread_rwlock_unlock(&ix->resize);
    return sr_index_err(rc);
}

uint64_t sr_index_watermark(sr_index *ix, MDB_txn *txn)
{
    MDB_val k = {9, "watermark"}, v;
    if (mdb_get(txn, ix->dbi[SR_INDEX_META], &k, &v) || v.mv_size != 8) return 0;
    return sr_get_le64(v.mv_data);
}

int sr_index_content_hash(sr_index *ix, uint8_t out[32]) { return sr_index_content_hash_canon(ix, NULL, NULL, out); }

int sr_index_content_hash_canon(sr_index *ix, sr_index_canon_fn canon, void *ctx, uint8_t out[32])
{
    MDB_txn *txn = NULL;
    int rc = sr_index_read_begin(ix, &txn);
    if (rc) return rc;
    sr_buf scratch;
    sr_buf_init(&scratch);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        rc = SR_ECRYPTO;
        goto done;
    }
    for (unsigned i = 0; i < ix->ndbs; i++) {
        MDB_cursor *cur;
        if ((rc = sr_index_err(mdb_cursor_open(txn, ix->dbi[i], &cur)))) goto done;
        EVP_DigestUpdate(c, ix->dbs[i].name, strlen(ix->dbs[i].name) + 1);
        MDB_val k, v;
        int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (r == 0) {
            if (canon) {
                scratch.len = 0;
                int cr = canon(ctx, i, k.mv_data, k.mv_size, v.mv_data, v.mv_size, &scratch);
                if (cr == SR_EERASED) {
                    r = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                    continue;
                }
                if (cr == SR_OK) {
                    v.mv_data = scratch.data;
                    v.mv_size = scratch.len;
                } else if (cr != SR_ENOTFOUND) {
                    mdb_cursor_close(cur);
                    rc = cr;
                    goto done;
                }
            }
            uint8_t lens[16];
            sr_put_le64(lens, k.mv_size);
            sr_put_le64(lens + 8, v.mv_size);
            EVP_DigestUpdate(c, lens, 16);
            EVP_DigestUpdate(c, k.mv_data, k.mv_size);
            EVP_DigestUpdate(c, v.mv_data, v.mv_size);
            r = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (r != MDB_NOTFOUND) {
            rc = sr_index_err(r);
            goto done;
        }
    }
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(c, out, &len)) rc = SR_ECRYPTO;
done:
    EVP_MD_CTX_free(c);
    sr_buf_release(&scratch);
    sr_index_read_end(ix, txn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Copy (backups, docs/backup.md)                                             */

typedef struct copyjob {
    MDB_env *env;
    int fd, rc;
} copyjob;

static void *copy_main(void *arg)
{
    copyjob *j = arg;
    j->rc = mdb_env_copyfd2(j->env, j->fd, 0);
    close(j->fd); /* EOF for the reader */
    return NULL;
}

int sr_index_copy(sr_index *ix, int (*sink)(void *ctx, const void *p, size_t n), void *ctx)
{
    int p[2];
    if (pipe(p) != 0) return sr_err_from_errno(errno);
#ifdef F_SETPIPE_SZ
    (void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups than 64 KiB at a time (best effort) */
#endif
    copyjob j = {.env = sr_index_env(ix), .fd = p[1]};
    pthread_t th;
    if (pthread_create(&th, NULL, copy_main, &j) != 0) {
        close(p[0]);
        close(p[1]);
        return SR_ENOMEM;
    }
    int rc = SR_OK;
    size_t cap = 1u << 20;
    uint8_t *buf = sr_malloc(cap);
    if (!buf) rc = SR_ENOMEM;
    uint8_t small[4096];
    for (;;) {
        ssize_t n = read(p[0], buf ? buf : small, buf ? cap : sizeof small);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n < 0 && !rc) rc = sr_err_from_errno(errno);
            break;
        }
        if (!rc) rc = sink(ctx, buf, (size_t)n); /* after a failure: drain, so the copy ends */
    }
    close(p[0]);
    pthread_join(th, NULL);
    sr_free(buf);
    if (!rc && j.rc) rc = sr_index_err(j.rc);
    return rc;
}
