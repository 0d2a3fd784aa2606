/*
 * engine/engine.c -- open, close, recover after a failed write, rebuild.
 *
 * The engine is in parts (the shared struct is engine/engine_int.h):
 * writer.c (the queue and the writer thread), apply.c (the event appliers),
 * heads.c (series heads, pass 2), replay.c, query.c, schema.c (the index's
 * databases and key layouts). The invariants below are the engine's; each
 * part keeps them and states its own.
 *
 * INVARIANTS
 *  (1) The index watermark W is the highest sequence number whose event is
 *      applied to LMDB; it is written in the same transaction as the changes.
 *  (2) W <= the log's durable end. At open, events (W, end] are applied.
 *  (3) apply() reads nothing but the event and the index (and the heads,
 *      which are themselves a function of the applied events): replaying the
 *      log into an empty index gives the same content (sr_engine_content_hash;
 *      series chunks count without their summaries, so an index written
 *      before series format version 3 equals its rebuild).
 *  (4) Series heads: for each point, head[p] holds the samples of events with
 *      seq >= heads_db[p].first_seq that were not merged into stored chunks;
 *      after a restart they are rebuilt by replaying from the smallest
 *      first_seq, adding only head-bound samples of events <= W.
 *  (5) A reader sees a head sample only if its seq <= its snapshot's W; the
 *      previous generation of a head (flushed into a chunk at seq F) is shown
 *      to readers whose snapshot has W < F, for whom that chunk is not yet
 *      visible. A reader that finds the generation moved on retries.
 *  (6) A failed log append or index commit poisons the engine: heads may hold
 *      samples that are not durable (all with seq > W, so readers never see
 *      them), so only a reopen of the log and a rebuild of the heads repair
 *      it; the writer does both by itself (sr__recover(), docs/durability.md
 *      section 7), and says so through opts.alert when it poisons and when
 *      it resumes.
 *  (7) Late samples (older than what a point has flushed) wait in the head's
 *      late list and are merged into the chunks at the head's next flush, or
 *      when the list reaches LATE_MAX; like head samples they have seq >=
 *      first_seq and are rebuilt by the replay. Readers merge them, in time
 *      order and winning ties, with the chunks of their snapshot; the batch
 *      merged at seq F stays visible to readers with W < F.
 *  (8) A rebuild (sr_engine_rebuild) commits the fresh index without fsync
 *      (MDB_NOSYNC: it is a cache of the log until it is whole), between
 *      two durable steps: the file REBUILDING (the durable floor it keeps)
 *      in the index directory before anything is written, removed only
 *      after one fsync of the finished index. An open that finds the file
 *      drops that index and replays the whole log into a fresh one, synced
 *      as always (a crash during a rebuild: rebuilt again, never a half
 *      index taken for whole); a read-only open refuses it.
 *
 * STATES                          TRANSITION              FUNCTION
 *   CLOSED -> OPEN                 index, log, heads, replay  sr_engine_open()
 *   CLOSED -> READ-ONLY            no space to replay      sr_engine_open()
 *   OPEN -> POISONED -> OPEN       failed write; resumed   writer.c poison(), sr__recover()
 *   any -> CLOSED                  close                   sr_engine_close()
 */
#include "engine/suiro.h"

#include "engine/engine_int.h"
#include "storage/blobs.h"
#include "storage/crypto.h"
#include "storage/index.h"
#include "storage/log.h"
#include "storage/series.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The engine API's own types, converted here at the boundary to storage's
 * (engine/suiro.h includes no storage/ header). */
static sr_sync_mode log_sync_mode(sr_engine_sync s)
{
    switch (s) {
    case SR_ENGINE_SYNC_INTERVAL: return SR_SYNC_INTERVAL;
    case SR_ENGINE_SYNC_NONE: return SR_SYNC_NONE;
    case SR_ENGINE_SYNC_ALWAYS: break;
    }
    return SR_SYNC_ALWAYS;
}

void sr__alert(sr_engine *e, int error, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->o.alert) e->o.alert(e->o.alert_ctx, error, msg);
    else fprintf(stderr, "suiro: %s\n", msg);
}

/* Is dir's file system (nearly) full? LMDB reports a write cut short by a
 * full disk as EIO, so an SR_EIO is also looked at this way. */
int sr__fs_full(const char *dir)
{
    struct statvfs v;
    if (!dir || statvfs(dir, &v) != 0) return 0;
    return (uint64_t)v.f_bavail * v.f_frsize < (1u << 20);
}


/* ------------------------------------------------------------------------ */
/* Open, replay, close                                                       */

static char *join(const char *a, const char *b)
{
    size_t x = strlen(a), y = strlen(b);
    char *p = sr_malloc(x + y + 2);
    if (!p) return NULL;
    memcpy(p, a, x);
    p[x] = '/';
    memcpy(p + x + 1, b, y + 1);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Resuming after a failed write (docs/durability.md section 7)              */

/*
 * The writer, while poisoned: reopen the log (its recovery cuts what was
 * written but not synced, so the log holds exactly what is durable), rebuild
 * the heads from the index and the log into a private set (as an open does),
 * apply any durable events the index lacks (a group whose log append worked
 * but whose index commit failed: never acknowledged, now stored), swap the
 * new heads in while holding every stripe, and resume. Readers are right
 * throughout: while poisoned, W does not move and every head sample or
 * generation of the failed group has a seq > W; the swap happens with the
 * stripes held across the index commits of the apply, so a reader sees old
 * heads only with an old snapshot. On failure the engine stays poisoned and
 * the next attempt starts again from what the index and the log hold.
 */
int sr__recover(sr_engine *e)
{
    static const char what[] = "cannot resume writing yet";
    pthread_mutex_lock(&e->mu);
    int cause = e->poison_cause;
    pthread_mutex_unlock(&e->mu);
    int rc = SR_OK;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    /* 1. the log, reopened from what is on disk */
    pthread_mutex_lock(&e->mu);
    sr_log *old = e->log;
    e->log = NULL;
    pthread_mutex_unlock(&e->mu);
    (void)sr_log_close(old); /* a poisoned handle: its error is known */
    sr_log *lg = NULL;
    /* what the index applied was durable: never a torn tail (§3) */
    if (e->o.sync == SR_ENGINE_SYNC_ALWAYS) e->lo.durable_floor = atomic_load(&e->watermark);
    rc = sr_log_open(e->logdir, &e->lo, &lg, &ei);
    pthread_mutex_lock(&e->mu);
    e->log = lg;
    pthread_mutex_unlock(&e->mu);
    if (rc) goto fail;
    /* the index must still work (an LMDB panic needs a restart) */
    MDB_txn *t;
    if ((rc = sr_index_read_begin(e->ix, &t))) goto fail;
    uint64_t w = sr_index_watermark(e->ix, t);
    sr_index_read_end(e->ix, t);
    uint64_t end = sr_log_durable_seq(e->log);
    if (w >= end) {
        rc = SR_ECORRUPT;
        snprintf(ei.msg, sizeof ei.msg, "index has events up to %" PRIu64 " but the reopened log ends at %" PRIu64, w,
                 end - 1);
        goto fail;
    }
    if ((rc = sr_index_write_begin(e->ix, &t))) goto fail;
    sr_index_abort(t);
    /* 2. the heads, privately: a shadow engine sharing the index and log */
    sr_engine *sh = sr_calloc(1, sizeof *sh);
    if (!sh) {
        rc = SR_ENOMEM;
        goto fail;
    }
    sh->dir = e->dir;
    sh->o = e->o;
    sh->o.progress = NULL;
    sh->o.replay_to = 0;
    sh->log = e->log;
    sh->ix = e->ix;
    sh->blobs = e->blobs;
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_init(&sh->stripe[i], NULL);
    uint64_t min_first = UINT64_MAX;
    rc = sr__heads_load(sh, &min_first);
    if (!rc && w > 0 && min_first <= w) {
        sh->o.replay_to = w; /* heads only: [min_first, W] */
        rc = sr__replay(sh, w, min_first, &ei);
        sh->o.replay_to = 0;
    }
    for (size_t d = 0; !rc && d < HDIR; d++) /* e's pages for every shadow page, before the stripes */
        if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) rc = SR_ENOMEM;
    if (!rc) {
        /* 3. under every stripe: the events the index lacks, then the swap */
        for (int i = 0; i < NSTRIPE; i++) pthread_mutex_lock(&e->stripe[i]);
        int arc = end - 1 > w ? sr__replay(sh, w, UINT64_MAX, &ei) : SR_OK;
        for (size_t d = 0; !arc && d < HDIR; d++) /* pages the apply made */
            if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) arc = SR_ENOMEM;
        if (!arc) sr__heads_swap(e, sh);
        else {
            /* the index may have moved to W'' < end - 1: heads for W'' are
             * the shadow's only if every page could be made; else keep the
             * old ones and stay poisoned (readers filter by seq) */
            int pages = 1;
            for (size_t d = 0; pages && d < HDIR; d++)
                if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) pages = 0;
            if (pages) sr__heads_swap(e, sh);
        }
        for (int i = NSTRIPE - 1; i >= 0; i--) pthread_mutex_unlock(&e->stripe[i]);
        rc = arc;
    }
    sr__heads_free(sh);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_destroy(&sh->stripe[i]);
    sr_free(sh);
    if (rc) goto fail;
    /* 4. resume: the tree's leaves of the replayed blocks first (ckpt.c) */
    if ((rc = sr__mt_catch_up(e))) goto fail;
    (void)sr__points_load(e); /* the apply may have changed masters (a failed load: readers use the index) */
    e->next_seq = end;
    atomic_store(&e->watermark, end - 1);
    pthread_mutex_lock(&e->mu);
    e->poisoned = 0;
    e->poison_cause = SR_OK;
    SR_INVARIANT(sr_writer_check(e));
    pthread_mutex_unlock(&e->mu);
    SR_INVARIANT(sr_heads_check(e));
    sr__alert(e, 0, "writing resumed after %s: log reopened, ends at seq %" PRIu64 ", every acknowledged write in it",
              sr_err_name(cause), end - 1);
    return SR_OK;
fail:
    if (rc != cause) { /* once per distinct cause: a full disk retries quietly */
        sr__alert(e, 1, "%s: %s (%s)%s%.120s; retrying every %u ms", what, sr_strerror(rc), sr_err_name(rc),
                  ei.msg[0] ? ": " : "", ei.msg, e->o.recover_ms);
        pthread_mutex_lock(&e->mu);
        e->poison_cause = rc;
        SR_INVARIANT(sr_writer_check(e));
        pthread_mutex_unlock(&e->mu);
    }
    return rc;
}

static int rm_index_files(const char *ixdir);

/* The file in an index directory while a rebuild writes it (invariant 8). */
#define SR_REBUILD_MARK "REBUILDING"
static int rebuild_interrupted(sr_engine *e, const char *ixdir, uint64_t *floor, sr_errinfo *ei);

static void notice(sr_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(sr_engine *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->o.notice) e->o.notice(e->o.notice_ctx, msg);
    else fprintf(stderr, "suiro: %s\n", msg);
}

/* Attach the sealing layer (ixseal.h) to the index when the engine has a
 * keyring: the values of the databases SR_IXSEAL_DBS names are sealed. */
static int seal_attach(sr_engine *e)
{
    if (!e->keyring) return SR_OK;
    static const sr_dbi rows[] = {SR_IXSEAL_DBS};
    memset(e->seal.sealed, 0, sizeof e->seal.sealed);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) e->seal.sealed[rows[i]] = 1;
    e->seal.keys = sr_keyring_keys(e->keyring);
    /* every key's cipher context now, where a failure is the open's: a
     * value's open later allocates nothing that can fail (ixseal.h
     * invariant 3); an open that cannot authenticate makes the context and
     * uses no nonce */
    sr_keyinfo *ks = NULL;
    size_t nk = 0;
    int rc = sr_keyring_list(e->keyring, &ks, &nk);
    for (size_t i = 0; !rc && i < nk; i++) {
        if (ks[i].state == SR_KS_DESTROYED) continue;
        uint8_t nonce[SR_NONCE_LEN] = {0}, tag[SR_TAG_LEN] = {0}, out[1];
        int orc = e->seal.keys->open(e->seal.keys->ctx, ks[i].id, nonce, NULL, 0, NULL, 0, out, tag, NULL, 0);
        if (orc == SR_ENOMEM || orc == SR_ECRYPTO) rc = orc;
    }
    sr_free(ks);
    if (rc) return rc;
    return sr__ixseal_attach(e->ix, &e->seal, e->keyring);
}

/* The index's layout (SR_INDEX_LAYOUT): an empty index gets the current one;
 * an older one is dropped here and rebuilt from the log by the replay that
 * follows (it is a cache of the log), keeping its head_max; a newer one is
 * SR_EVERSION. Read-only: an older one is SR_EVERSION. */
static int index_layout(sr_engine *e, const char *ixdir, sr_errinfo *ei)
{
    MDB_txn *t;
    MDB_val v;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint32_t layout = get(t, DB(e, SR_DB_META), "layout", 6, &v) == SR_OK && v.mv_size == 4 ? sr_get_le32(v.mv_data) : 1;
    int used = sr_index_watermark(e->ix, t) > 0;
    if (get(t, DB(e, SR_DB_META), "head_max", 8, &v) == SR_OK && v.mv_size == 4) {
        used = 1;
        e->o.head_max = sr_get_le32(v.mv_data); /* the rebuild keeps the chunk size */
    }
    /* layout 8: meta "sealed" says the values are sealed (ixseal.h); an
     * index sealed otherwise than this open wants (a key given to a plain
     * one) is rebuilt like an older layout */
    int want = e->keyring != NULL;
    int sealed = get(t, DB(e, SR_DB_META), "sealed", 6, &v) == SR_OK && v.mv_size == 1 && *(uint8_t *)v.mv_data == 1;
    sr_index_read_end(e->ix, t);
    if (used && layout == SR_INDEX_LAYOUT && sealed == want) return seal_attach(e);
    if (used && layout > SR_INDEX_LAYOUT) {
        snprintf(ei->msg, sizeof ei->msg, "index %s has layout %u, newer than this suiro's (%u)", ixdir, layout,
                 SR_INDEX_LAYOUT);
        return SR_EVERSION;
    }
    if (used && e->o.readonly) {
        snprintf(ei->msg, sizeof ei->msg,
                 "index %s has layout %u (this suiro writes %u): open it read-write once or run `suiro rebuild`", ixdir,
                 layout, SR_INDEX_LAYOUT);
        return SR_EVERSION;
    }
    if (e->o.readonly) return SR_OK;
    if (used) {
        if (layout == SR_INDEX_LAYOUT)
            notice(e, "index %s has %s values, this open %s them: rebuilding it from the log", ixdir,
                   sealed ? "sealed" : "plain", want ? "seals" : "does not seal");
        else
            notice(e, "index %s has layout %u, this suiro writes layout %u: rebuilding it from the log", ixdir, layout,
                   SR_INDEX_LAYOUT);
        sr_index_close(e->ix);
        e->ix = NULL;
        char err[256] = "";
        if ((rc = rm_index_files(ixdir)) ||
            (rc = sr_index_open(ixdir, e->o.map_bytes, 0, SR_SCHEMA_DBS, &e->ix, err, sizeof err))) {
            snprintf(ei->msg, sizeof ei->msg, "rebuilding index %s: %s", ixdir, err[0] ? err : sr_strerror(rc));
            return rc;
        }
    }
    uint8_t b[4];
    sr_put_le32(b, SR_INDEX_LAYOUT);
    if ((rc = sr_index_write_begin(e->ix, &t))) return rc;
    uint8_t one = 1;
    if ((rc = put(t, DB(e, SR_DB_META), "layout", 6, b, 4)) ||
        (want && (rc = put(t, DB(e, SR_DB_META), "sealed", 6, &one, 1)))) {
        sr_index_abort(t);
        return rc;
    }
    if ((rc = sr_index_commit(e->ix, t))) return rc;
    return seal_attach(e);
}

static int engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out, sr_errinfo *ei);

int sr_engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out, sr_errinfo *ei)
{
    sr_errinfo local;
    if (!ei) ei = &local;
    int rc = engine_open(dir, opts, out, ei);
    if (!opts || !opts->readonly_on_nospace || opts->readonly || opts->log_readonly) return rc;
    if (rc != SR_ENOSPC && !((rc == SR_EIO || rc == SR_EDB) && sr__fs_full(dir))) return rc; /* LMDB: EIO */
    /* no room to recover or replay: serve reads, refuse writes (§7) */
    char why[sizeof ei->msg];
    snprintf(why, sizeof why, "%s", ei->msg);
    sr_engine_opts o = *opts;
    o.readonly = 1;
    if ((rc = engine_open(dir, &o, out, ei))) return rc;
    sr_engine *e = *out;
    e->nospace_ro = 1;
    e->poison_cause = SR_ENOSPC;
    SR_INVARIANT(sr_writer_check(e)); /* no writer thread: the only thread */
    char *bd = join(dir, "blobs"); /* file downloads are reads too */
    sr_blobs_opts bo = {.key = e->o.key, .keys = e->keyring ? sr_keyring_keys(e->keyring) : NULL};
    sr_blob_errinfo bei;
    if (bd && sr_blobs_open(bd, &bo, &e->blobs, &bei) != SR_OK) e->blobs = NULL;
    sr_free(bd);
    sr__alert(e, 1, "opened READ-ONLY, no space left on device (%.80s): queries served, writes refused; free disk space "
                    "and restart",
              why);
    return SR_OK;
}

static int engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out, sr_errinfo *ei)
{
    int rc;
    char *logdir = NULL, *ixdir = NULL;
    sr_errinfo local;
    if (!ei) ei = &local;
    memset(ei, 0, sizeof *ei);
    sr_engine *e = sr_calloc(1, sizeof *e);
    if (!e) return SR_ENOMEM;
    if (opts) e->o = *opts;
    if (!e->o.queue_max) e->o.queue_max = 65536;
    if (!e->o.queue_max_per_op) e->o.queue_max_per_op = e->o.queue_max / 4 ? e->o.queue_max / 4 : 1;
    if (!e->o.head_max) e->o.head_max = 1024;
    if (!e->o.group_max) e->o.group_max = 4096;
    if (!e->o.replay_max_events) e->o.replay_max_events = 262144;
    if (!e->o.checkpoint_interval_ms) e->o.checkpoint_interval_ms = 60000;
    if (!e->o.recover_ms) e->o.recover_ms = 1000;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv_work, NULL);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_init(&e->stripe[i], NULL);
    size_t dl = strlen(dir);
    e->dir = sr_malloc(dl + 1);
    if (!e->dir) {
        rc = SR_ENOMEM;
        goto fail;
    }
    memcpy(e->dir, dir, dl + 1);
    if (e->o.log_shared && (!e->o.log_readonly || e->o.readonly || !e->o.index_dir)) {
        rc = SR_EINVAL; /* a shared log is only read, by a private engine with an index of its own (state.c) */
        snprintf(ei->msg, sizeof ei->msg, "a shared log needs log_readonly and an index_dir of its own");
        goto fail;
    }
    if (!e->o.readonly && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = sr_err_from_errno(errno);
        snprintf(ei->msg, sizeof ei->msg, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    logdir = join(dir, "log");
    ixdir = e->o.index_dir ? NULL : join(dir, "index");
    if (!logdir || (!e->o.index_dir && !ixdir)) {
        rc = SR_ENOMEM;
        goto fail;
    }
    sr_log_opts lo = {.vfs = e->o.vfs, .segment_bytes = e->o.segment_bytes, .sync = log_sync_mode(e->o.sync),
                      .key = e->o.key,
                      .readonly = e->o.readonly || e->o.log_readonly,
                      .zstd_level = e->o.zstd_level == -100 ? 0 : e->o.zstd_level ? e->o.zstd_level : 1};
    /* The index first: its watermark is the highest seq known durable (the
     * writer applies an event only after its append was fsynced, with
     * sync=always), so the log's recovery must not cut it as a torn tail
     * (durability.md §3). With sync=interval/none the index may lead the log
     * after a power loss, so the floor is not used. */
    e->logdir = logdir;
    logdir = NULL; /* the engine's now (§7: the writer reopens the log) */
    char err[256] = "";
    if (!e->o.rebuilding && (rc = rebuild_interrupted(e, e->o.index_dir ? e->o.index_dir : ixdir, &e->o.durable_floor, ei)))
        goto fail;
    if ((rc = sr_index_open(e->o.index_dir ? e->o.index_dir : ixdir, e->o.map_bytes, e->o.readonly, SR_SCHEMA_DBS, &e->ix, err,
                            sizeof err))) {
        snprintf(ei->msg, sizeof ei->msg, "%s", err);
        goto fail;
    }
    /* a throwaway index (the state at a past time's, engine/state.c), or a
     * rebuild's until it is whole (invariant 8): no fsync */
    if ((e->o.index_nosync || e->o.rebuilding) && (rc = sr_index_err(mdb_env_set_flags(sr_index_env(e->ix), MDB_NOSYNC, 1)))) goto fail;
    uint64_t floor = e->o.durable_floor;
    {
        MDB_txn *ft;
        if ((rc = sr_index_read_begin(e->ix, &ft))) goto fail;
        uint64_t iw = sr_index_watermark(e->ix, ft);
        sr_index_read_end(e->ix, ft);
        if (iw > floor) floor = iw;
    }
    if (e->o.sync == SR_ENGINE_SYNC_ALWAYS) lo.durable_floor = floor;
    if (!e->o.key) {
        /* a keyring means sealed records: name the master they need */
        char *kd = join(dir, "keys");
        uint32_t mid = 0;
        int prc = kd ? sr_keyring_peek_master(e->o.vfs, kd, &mid) : SR_ENOMEM;
        sr_free(kd);
        if (prc == SR_OK || prc == SR_ECORRUPT) {
            rc = SR_EKEY;
            snprintf(ei->msg, sizeof ei->msg,
                     "%s/keys/keyring holds data keys wrapped by master key 0x%08x: give that master key (key_file, "
                     "--key-file; docs/keys.md)",
                     dir, mid);
            goto fail;
        }
    } else if (!e->o.single_key) {
        /* the data keys before the log: its recovery opens sealed sections */
        if ((rc = sr__keyring_of(e->o.vfs, dir, e->o.key, e->o.key_source, !e->o.readonly && !e->o.log_readonly,
                                 &e->keyring, ei)))
            goto fail;
        if (e->keyring) lo.keys = sr_keyring_keys(e->keyring);
    }
    lo.sync_hist = &e->h_sync; /* the metrics' fdatasync latency, kept across the writer's reopens */
    e->lo = lo;
    uint64_t t0 = mono_us();
    if (e->o.log_shared) e->log = e->o.log_shared; /* the live engine's, already scanned (state.c) */
    else if ((rc = sr_log_open(e->logdir, &lo, &e->log, ei))) {
        if (rc == SR_EKEY && e->keyring) { /* a data key the keyring lacks */
            size_t l = strlen(ei->msg);
            snprintf(ei->msg + l, sizeof ei->msg - l,
                     ": %s/keys/keyring does not hold it; restore the keyring from a key export (docs/keys.md)", dir);
        }
        goto fail;
    }
    uint64_t t1 = mono_us();
    e->ost.log_us = t1 - t0;
    if (e->o.test_after_log_open) e->o.test_after_log_open(e->o.test_after_log_open_ctx);
    if ((rc = index_layout(e, e->o.index_dir ? e->o.index_dir : ixdir, ei))) goto fail;
    if (!e->o.readonly && !e->o.log_readonly) {
        char *bd = join(dir, "blobs");
        sr_blobs_opts bo = {.key = e->o.key, .keys = e->keyring ? sr_keyring_keys(e->keyring) : NULL};
        sr_blob_errinfo bei;
        rc = bd ? sr_blobs_open(bd, &bo, &e->blobs, &bei) : SR_ENOMEM;
        sr_free(bd);
        if (rc) {
            snprintf(ei->msg, sizeof ei->msg, "blob store: %.280s", bei.msg);
            goto fail;
        }
    }
    MDB_txn *t;
    if ((rc = sr_index_read_begin(e->ix, &t))) goto fail;
    uint64_t w = sr_index_watermark(e->ix, t);
    MDB_val hv;
    int have_hm = get(t, DB(e, SR_DB_META), "head_max", 8, &hv) == SR_OK && hv.mv_size == 4;
    if (have_hm) e->o.head_max = sr_get_le32(hv.mv_data); /* chunk layout is part of the index */
    sr_index_read_end(e->ix, t);
    if (!have_hm && !e->o.readonly) {
        uint8_t b[4];
        sr_put_le32(b, e->o.head_max);
        if ((rc = sr_index_write_begin(e->ix, &t))) goto fail;
        if ((rc = put(t, DB(e, SR_DB_META), "head_max", 8, b, 4))) {
            sr_index_abort(t);
            goto fail;
        }
        if ((rc = sr_index_commit(e->ix, t))) goto fail;
    }
    uint64_t end = sr_log_durable_seq(e->log);
    /* Read-only beside a live server (`suiro report`, `suiro query`): the
     * writer appended and applied events between our log open and the
     * watermark read. It appends to the log before it applies, so a log
     * opened again now holds them; a log that really lost them still ends
     * short after the retries. */
    for (int tries = 0; e->o.readonly && w >= end && tries < 3; tries++) {
        sr_log_close(e->log);
        e->log = NULL;
        if ((rc = sr_log_open(e->logdir, &lo, &e->log, ei))) goto fail;
        end = sr_log_durable_seq(e->log);
    }
    if (e->o.replay_to && e->o.replay_to + 1 < end) end = e->o.replay_to + 1;
    if (w >= end) {
        /* The index applied events the log no longer has. With sync=always
         * they were acknowledged: never advise a rebuild (it would drop them
         * for good). */
        rc = SR_ECORRUPT;
        snprintf(ei->msg, sizeof ei->msg,
                 "index has events up to %" PRIu64 " but the log ends at %" PRIu64
                 ": the log lost events %" PRIu64 "..%" PRIu64
                 " that were applied (acknowledged with sync=always); restore %s/log from a backup. Only if they "
                 "were written with sync=interval/none and lost in a power loss, `suiro rebuild --discard-lost` drops them",
                 w, end - 1, end, w, dir);
        goto fail;
    }
    uint64_t min_first = UINT64_MAX;
    uint64_t t2 = mono_us();
    e->ost.index_us = t2 - t1;
    e->ost.log_first_seq = sr_log_first_seq(e->log);
    /* a fresh index of a log whose first segments were dropped: its floor
     * before anything is applied (segdrop.c invariant 2) */
    if (!w && (rc = sr__segdrop_fresh_floor(e))) goto fail;
    if ((rc = sr__heads_load(e, &min_first))) goto fail;
    e->ost.checkpoint_seq = e->ckpt_at;
    e->ost.checkpoint_before = e->ckpt_before;
    uint64_t t3 = mono_us();
    e->ost.heads_us = t3 - t2;
    if ((rc = sr__replay(e, w, min_first, ei))) goto fail;
    e->ost.replay_us = mono_us() - t3;
    SR_INVARIANT(sr_heads_check(e));
    if ((rc = sr__points_load(e))) goto fail;
    e->masters_dirty = 0; /* the replay's master events are in the table now */
    /* the Merkle tree: the blocks the index's tree lacks (ckpt.c) */
    if ((rc = sr__mt_catch_up(e))) {
        snprintf(ei->msg, sizeof ei->msg, "building the Merkle tree over the log: %s", sr_strerror(rc));
        goto fail;
    }
    SR_INVARIANT(sr_points_check_index(e));
    if ((rc = sr__snap_load(e))) goto fail; /* the last state snapshot (statesnap.c) */
    /* a LogTrim durable and applied whose files a crash left (segdrop.c invariant 1) */
    if ((rc = sr__segdrop_finish(e))) {
        snprintf(ei->msg, sizeof ei->msg, "finishing a log trim: %s", sr_strerror(rc));
        goto fail;
    }
    e->next_seq = end;
    e->open_end = end;
    e->ckpt_ms = now_ms(e); /* the time-based heads checkpoint counts from the open (writer.c) */
    /* read-only: the index keeps its own watermark (nothing was applied) */
    atomic_store(&e->watermark, e->o.readonly && w < end - 1 ? w : end - 1);
    if (!e->o.readonly && !e->o.log_readonly) {
        /* allocated here, not on the writer thread: an allocation failure
         * must be this function's SR_ENOMEM, not an abort later */
        if (!(e->group = sr_malloc(e->o.group_max * sizeof *e->group))) {
            rc = SR_ENOMEM;
            goto fail;
        }
        pb_arena_init(&e->ev);
        if ((rc = sr__writer_start(e))) goto fail;
        e->writer_started = 1;
    }
#if SR_INVARIANTS
    pthread_mutex_lock(&e->mu);
    SR_INVARIANT(sr_writer_check(e));
    pthread_mutex_unlock(&e->mu);
#endif
    sr_free(logdir);
    sr_free(ixdir);
    *out = e;
    return SR_OK;
fail:
    if (!ei->code) ei->code = rc;
    if (!ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "%s: %s", dir, sr_strerror(rc));
    sr_free(logdir);
    sr_free(ixdir);
    sr_engine_close(e);
    return rc;
}

int sr_engine_close(sr_engine *e)
{
    if (!e) return SR_OK;
    int rc = SR_OK;
    if (e->writer_started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = 1;
        pthread_cond_broadcast(&e->cv_work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->writer, NULL);
    }
    if (e->poisoned) rc = SR_EPOISONED;
    sr_blobs_close(e->blobs);
    sr_index_close(e->ix);
    int lrc = e->o.log_shared ? SR_OK : sr_log_close(e->log); /* a shared log stays its owner's */
    if (!rc) rc = lrc;
    sr_keyring_close(e->keyring); /* after the log: it seals and opens through it */
    sr__ixseal_free(&e->seal);
    sr__heads_free(e);
    for (size_t k = 0; k < e->nq; k++) {
        cmd *c = e->q[k].head;
        while (c) {
            cmd *n = c->next;
            sr__cmd_free(c);
            c = n;
        }
    }
    sr_free(e->q);
    sr_free(e->group);
    sr_arena_release(&e->ev.a);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_destroy(&e->stripe[i]);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv_work);
    sr__points_free(e);
    sr_free(e->logdir);
    sr_free(e->dir);
    sr_free(e);
    return rc;
}

static int rm_index_files(const char *ixdir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        char *p = join(ixdir, files[i]);
        if (!p) return SR_ENOMEM;
        int r = unlink(p);
        int er = errno;
        sr_free(p);
        if (r != 0 && er != ENOENT) return sr_err_from_errno(er);
    }
    return SR_OK;
}

/* ---- the rebuild's marker (invariant 8) ------------------------------- */

/* fsync the file or directory at path; SR_OK or the error */
static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDWR);
    if (fd < 0) return sr_err_from_errno(errno);
    int r = fsync(fd), er = errno;
    close(fd);
    return r ? sr_err_from_errno(er) : SR_OK;
}

/* Write ixdir/REBUILDING (the durable floor the rebuild keeps, decimal),
 * durably, before the rebuild writes anything into ixdir. */
static int rebuild_mark(const char *ixdir, uint64_t floor)
{
    if (mkdir(ixdir, 0755) != 0 && errno != EEXIST) return sr_err_from_errno(errno);
    char *p = join(ixdir, SR_REBUILD_MARK);
    if (!p) return SR_ENOMEM;
    int rc = SR_OK;
    FILE *f = fopen(p, "w");
    if (!f) rc = sr_err_from_errno(errno);
    else {
        fprintf(f, "%" PRIu64 "\n", floor);
        if (fclose(f)) rc = sr_err_from_errno(errno);
    }
    if (!rc) rc = fsync_path(p, 0);
    if (!rc) rc = fsync_path(ixdir, 1);
    sr_free(p);
    return rc;
}

/* The rebuilt index made durable (one fsync of its file: its transactions
 * were committed without one, MDB_NOSYNC), then its marker removed. */
static int rebuild_unmark(const char *ixdir)
{
    char *dm = join(ixdir, "data.mdb"), *p = join(ixdir, SR_REBUILD_MARK);
    int rc = dm && p ? fsync_path(dm, 0) : SR_ENOMEM;
    if (!rc && unlink(p) != 0) rc = sr_err_from_errno(errno);
    if (!rc) rc = fsync_path(ixdir, 1);
    sr_free(dm);
    sr_free(p);
    return rc;
}

/* At open: an index with a marker is a rebuild a crash interrupted (its
 * commits were not fsynced: not a valid partial index); it is dropped and
 * the marker's floor kept, so this open replays the whole log into a fresh
 * index, synced as always. *floor: raised to the marker's. */
static int rebuild_interrupted(sr_engine *e, const char *ixdir, uint64_t *floor, sr_errinfo *ei)
{
    char *p = join(ixdir, SR_REBUILD_MARK);
    if (!p) return SR_ENOMEM;
    FILE *f = fopen(p, "r");
    if (!f) {
        sr_free(p);
        return SR_OK;
    }
    unsigned long long fl = 0;
    if (fscanf(f, "%llu", &fl) != 1) fl = 0;
    fclose(f);
    int rc = SR_OK;
    if (e->o.readonly) {
        rc = SR_ECORRUPT;
        snprintf(ei->msg, sizeof ei->msg,
                 "index %s is a rebuild that was interrupted (%s is there): open it read-write or run `suiro rebuild`",
                 ixdir, SR_REBUILD_MARK);
    } else {
        notice(e, "index %s is a rebuild that was interrupted: rebuilding it from the log", ixdir);
        if (!(rc = rm_index_files(ixdir)) && unlink(p) != 0) rc = sr_err_from_errno(errno);
        if (!rc) rc = fsync_path(ixdir, 1);
        if ((uint64_t)fl > *floor) *floor = (uint64_t)fl;
    }
    sr_free(p);
    return rc;
}

uint32_t sr_engine_head_max(sr_engine *e) { return e->o.head_max; }

int sr_engine_index_watermark(const char *dir, const sr_engine_opts *opts, uint64_t *w)
{
    *w = 0;
    const char *ixd = opts && opts->index_dir ? opts->index_dir : NULL;
    char *ixdir = ixd ? NULL : join(dir, "index");
    if (!ixd && !ixdir) return SR_ENOMEM;
    sr_index *ix = NULL;
    char err[256];
    struct stat st;
    const char *path = ixd ? ixd : ixdir;
    char *dm = join(path, "data.mdb");
    int have = dm && stat(dm, &st) == 0;
    sr_free(dm);
    if (have && sr_index_open(path, 0, 1, SR_SCHEMA_DBS, &ix, err, sizeof err) == SR_OK) {
        MDB_txn *t;
        if (sr_index_read_begin(ix, &t) == SR_OK) {
            *w = sr_index_watermark(ix, t);
            sr_index_read_end(ix, t);
        }
        sr_index_close(ix);
    }
    sr_free(ixdir);
    return SR_OK;
}

int sr_engine_rebuild(const char *dir, const sr_engine_opts *opts, sr_errinfo *ei)
{
    return sr_engine_rebuild_stats(dir, opts, NULL, ei);
}

int sr_engine_rebuild_stats(const char *dir, const sr_engine_opts *opts, sr_engine_open_stats *st, sr_errinfo *ei)
{
    sr_engine_opts o = opts ? *opts : (sr_engine_opts){0};
    o.readonly = 0;
    char *ixdir = o.index_dir ? NULL : join(dir, "index");
    if (!o.index_dir && !ixdir) return SR_ENOMEM;
    {
        /* keep the chunk layout of the index being replaced */
        sr_index *old = NULL;
        char err[256];
        if (sr_index_open(o.index_dir ? o.index_dir : ixdir, 0, 1, SR_SCHEMA_DBS, &old, err, sizeof err) == SR_OK) {
            MDB_txn *t;
            if (sr_index_read_begin(old, &t) == SR_OK) {
                MDB_val K = {8, "head_max"}, V;
                if (mdb_get(t, sr_index_dbi(old, SR_DB_META), &K, &V) == 0 && V.mv_size == 4)
                    o.head_max = sr_get_le32(V.mv_data);
                sr_index_read_end(old, t);
            }
            sr_index_close(old);
        }
    }
    /* What the data directory's own index (DIR/index, also when the rebuild
     * goes to another index_dir) knew durable: the replay must not cut it.
     * Checked before dropping the index: once it is gone, nothing would
     * remember which tail records had been acknowledged. */
    uint64_t ow = 0;
    if (sr_engine_index_watermark(dir, NULL, &ow) == SR_OK && ow > o.durable_floor) o.durable_floor = ow;
    if (o.discard_lost) o.durable_floor = 0;
    if (o.durable_floor && o.sync == SR_ENGINE_SYNC_ALWAYS) {
        char *logdir = join(dir, "log");
        if (!logdir) {
            sr_free(ixdir);
            return SR_ENOMEM;
        }
        sr_log_opts lo = {.vfs = o.vfs, .key = o.key, .readonly = 1, .durable_floor = o.durable_floor};
        sr_log *lg = NULL;
        sr_errinfo local;
        sr_errinfo *lei = ei ? ei : &local;
        sr_keyring *kr = NULL;
        int lrc = o.single_key ? SR_OK : sr__keyring_of(o.vfs, dir, o.key, o.key_source, 0, &kr, lei);
        if (kr) lo.keys = sr_keyring_keys(kr);
        if (!lrc) lrc = sr_log_open(logdir, &lo, &lg, lei);
        sr_free(logdir);
        if (!lrc && sr_log_durable_seq(lg) <= o.durable_floor && !o.discard_lost) {
            lrc = SR_ECORRUPT;
            lei->code = lrc;
            snprintf(lei->msg, sizeof lei->msg,
                     "the index had applied events up to %" PRIu64 " but the log ends at %" PRIu64
                     ": the log lost acknowledged events; nothing was changed. Restore %s/log from a backup "
                     "(--discard-lost rebuilds without them, for good)",
                     o.durable_floor, sr_log_durable_seq(lg) - 1, dir);
        }
        sr_log_close(lg);
        sr_keyring_close(kr);
        if (lrc) {
            sr_free(ixdir);
            return lrc;
        }
    }
    const char *ixpath = o.index_dir ? o.index_dir : ixdir;
    int rc = rm_index_files(ixpath);
    /* the marker first (invariant 8): the replay commits without fsync */
    if (!rc) rc = rebuild_mark(ixpath, o.durable_floor);
    sr_engine *e = NULL;
    o.rebuilding = 1;
    if (!rc && !(rc = sr_engine_open(dir, &o, &e, ei))) {
        if (st) sr_engine_get_open_stats(e, st);
        rc = sr_engine_close(e);
        if (!rc) rc = rebuild_unmark(ixpath);
    } else if (rc && rebuild_unmark(ixpath)) {
        /* refused (no key, a damaged log...): what it committed made
         * durable (an index of the events before the refusal, its
         * watermark with them, or the empty one its open made), else no
         * index file at all; the marker goes, as a refused rebuild left
         * things before it (the next read-write open replays from there) */
        char *p = join(ixpath, SR_REBUILD_MARK);
        if (p) unlink(p);
        sr_free(p);
    }
    sr_free(ixdir);
    return rc;
}
