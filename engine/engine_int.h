/*
 * engine/engine_int.h -- the engine's shared state, for its own files only
 * (engine.c, writer.c, apply.c, heads.c, replay.c, query.c, schema.c; and
 * the tests that check its invariants). Not part of the engine API
 * (engine/suiro.h): nothing outside engine/ and tests/ includes it.
 *
 * The engine is one struct, sr_engine, whose fields each belong to one part:
 *   engine.c  open, close, recover (docs/durability.md section 7), rebuild,
 *             the index layout; the invariants every part keeps (1)-(7)
 *   writer.c  the command queue (mu, cv_work, q, depth, stopping, poisoned,
 *             poison_cause), the writer thread and its group commit
 *             (group, next_seq, the ev arena, masters_dirty, test_groups)
 *   apply.c   the event appliers: one row per event kind (SR_EVENT_KINDS)
 *   keys.c    the key class of every event kind (SR_KEY_CLASSES) and the
 *             key that seals each record (the keyring, storage/keyring.h)
 *   heads.c   the series heads (hdir, stripe, npoints, st_flushes, the
 *             pending latest rows lpend) and the series apply (pass 2)
 *   replay.c  the replay of the log at open and at recover
 *   points.c  the point table (pt): every data point's pointinfo in memory,
 *             by number and by (operator, dataId)
 *   query.c   the readers
 *   schema.c  the index's databases and their key and value layouts
 * Fields written by more than one part say who guards them.
 *
 * Hot-path helpers (stripe_of, head_find, hs_to_sample, put/get/del, the key
 * encoders of schema.h) are static inline here, so splitting the engine into
 * files did not make them calls.
 */
#ifndef SR_ENGINE_INT_H
#define SR_ENGINE_INT_H

#include "engine/suiro.h"

#include "codecs/events.pb-c.h"
#include "engine/evbuild.h"
#include "engine/ixseal.h"
#include "engine/schema.h"
#include "storage/blobs.h"
#include "storage/index.h"
#include "storage/keyring.h"
#include "storage/log.h"
#include "storage/mtree.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Every value the engine reads or writes goes through the sealing layer
 * (engine/ixseal.h): it seals and opens the values of a sealed index's
 * sealed databases and passes everything else through. */
#define mdb_get(t, d, k, v) sr__ixget((t), (d), (k), (v))
#define mdb_put(t, d, k, v, f) sr__ixput((t), (d), (k), (v), (f))
#define mdb_cursor_get(c, k, v, op) sr__ixcget((c), (k), (v), (op))
#define mdb_cursor_put(c, k, v, f) sr__ixcput((c), (k), (v), (f))

typedef Suiro__V1__Event Event;
typedef Suiro__V1__PointValues PointValues;
typedef Suiro__V1__MasterPut MasterPut;
typedef Suiro__V1__UserEvent UserEvent;

/* ------------------------------------------------------------------------ */
/* Heads                                                                     */

typedef struct hsample {
    int64_t ts;
    uint64_t seq;
    uint8_t q;
    union {
        double f;
        int64_t i;
        int b;
        struct {
            char *p;
            uint32_t n;
        } s;
    } v;
} hsample;

typedef struct head {
    uint32_t point;
    sr_vtype type;
    hsample *v;
    size_t n, cap;
    hsample *old; /* previous generation, flushed at old_seq */
    size_t nold, capold;
    uint64_t old_seq;
    uint64_t prev_flush_seq; /* the flush before old_seq: readers older than it retry */
    uint64_t first_seq;
    int64_t flushed_max;
    int has_flushed;
    /* the samples of the point's last chunk when a heads checkpoint cut it
     * short (0: none, or it was full): the head continues that chunk, which
     * its next flush re-encodes with the head's samples (head_flush), so
     * chunk size does not depend on the checkpoints (heads.c invariant 9) */
    uint32_t tail_n;
    uint64_t gen;
    /* late samples (ts <= flushed_max): kept here, sorted, and merged into
     * the stored chunks at the next flush (one chunk rewrite per flush, not
     * one per late value); the previous batch stays visible to readers whose
     * snapshot predates its merge (invariant 7) */
    hsample *late;
    size_t nlate, caplate;
    hsample *old_late;
    size_t nold_late;
    uint64_t old_late_seq, late_prev_seq;
    /* the point's `latest` row (heads.c sr__heads_latest_note, invariant 10):
     * the writer's and the replay's only, readers read the row */
    int64_t lts;      /* its ts, once lts_known */
    uint8_t lts_known, lpend;
    uint32_t kid; /* the key of its newest value's record: seals its chunks and latest row (ixseal.h) */
    uint8_t llisted;   /* in e->lpend: noted since the transaction began */
    sr_sample lsample; /* pending: written at the group's end */
    uint64_t cw_ticket; /* the rebuild's chunk encoders (heads.c sr__cw_*): 1 + its last job's ticket, 0 none */
} head;

enum { HPAGE_BITS = 12, HPAGE = 1 << HPAGE_BITS, HDIR = 1 << 16, NSTRIPE = 64 };

/* ------------------------------------------------------------------------ */
/* Commands and the queue                                                    */

typedef struct cmd {
    sr_slice *ev;   /* copies of the serialized events */
    size_t n;
    uint8_t *bytes; /* one allocation holding them */
    sr_engine_cb cb;
    void *ctx;
    char op[72];
    int foreign; /* a replicated event (engine/origins.c): the queue SR__FOREIGN_Q */
    struct cmd *next;
} cmd;
/* The queue of the replicated events' commands (no operator id has a 0x01). */
#define SR__FOREIGN_Q "\x01cluster"
/* writer.c: sr_engine_submit; foreign: on SR__FOREIGN_Q, one event. */
int sr__submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx, int foreign);
/* origins.c: an event with an origin, before its checks on the writer: 1 a
 * duplicate (r->duplicate, r->seq), SR_OK (its point numbers mapped), or a
 * refusal. sr__origin_apply: its origin id, point map row and checkpoint
 * (sr__apply_common, writer and replay). */
int sr__origin_prepare(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r);
int sr__origin_apply(sr_engine *e, MDB_txn *t, const Event *ev);
/* origins.c invariant 6 (held values): the local seqs of the held events
 * that ev (just applied on the writer: a replicated data point's MasterPut
 * or a PointAlias, which wrote a 'P' row) completes -- every number of
 * theirs maps now -- ascending (log order); *seqs malloc'd (NULL when none). */
int sr__held_woken(sr_engine *e, MDB_txn *t, const Event *ev, uint64_t **seqs, size_t *n);
/* The release of the held event rec (its logged bytes, at local seq held)
 * at seq: unpacked into the group's arena, its numbers mapped, its Origin's
 * release_of set (held, consumer and message id cleared). */
int sr__held_release(sr_engine *e, MDB_txn *t, const void *rec, size_t len, uint64_t held, uint64_t seq, int64_t now,
                     Event **out);
/* origins.c: a replicated PointAlias (Event.body 55) on the writer: resolved
 * to this node's number (filled into point_alias.point) or refused; the
 * replay applies nothing here (its 'P' row: sr__origin_apply). */
int sr__apply_point_alias(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);

typedef struct opq {
    char op[72];
    cmd *head, *tail;
    uint32_t depth;
} opq;

/* The point table (points.c) and what the writer's check reads from it: one
 * data point's pointinfo, its strings borrowed. */
typedef struct ptent {
    char *s;        /* op \0 id \0 gateway \0; NULL: no such point */
    uint16_t idoff, gwoff;
    uint32_t hash;  /* key_hash(op, id) (points.c: sr_hash) */
    uint8_t type, kind, has_min, has_max, listed;
    double min, max;
} ptent;

typedef struct sr_points {
    pthread_rwlock_t mu;
    ptent *ent;     /* by point number */
    uint32_t nent;  /* entries allocated: numbers [0, nent) */
    uint32_t *slot; /* the map: point numbers, 0 = empty (numbers start at 1) */
    uint32_t nslot; /* a power of two */
    uint32_t nlisted;
    int broken;
    uint32_t *touched; /* writer: points a master event of this group named */
    size_t ntouched, captouched;
    int touch_all;     /* writer: too many (or no memory) to list: reload */
} sr_points;

typedef struct sr_ptview {
    uint32_t point;
    const char *op, *id, *gateway;
    int type, kind; /* Suiro__V1__ValueType (= sr_vtype), PointKind */
    int has_min, has_max;
    double min, max;
} sr_ptview;

/* protobuf-c decoding into an sr_arena: nothing is freed piece by piece (the
 * whole arena is reset when its events are done with); oom records that an
 * allocation failed, so a failed unpack reads as SR_ENOMEM, not bad input.
 * The writer decodes a group's events into one, the replay each event. */
typedef struct pb_arena {
    sr_arena a;
    int oom;
    ProtobufCAllocator pa;
} pb_arena;

static inline void *pb_arena_alloc(void *d, size_t n)
{
    pb_arena *x = d;
    void *p = sr_arena_alloc(&x->a, n);
    if (!p) x->oom = 1;
    return p;
}

static inline void pb_arena_free(void *d, void *p)
{
    (void)d;
    (void)p; /* all at sr_arena_reset */
}

static inline void pb_arena_init(pb_arena *x)
{
    memset(x, 0, sizeof *x);
    x->pa = (ProtobufCAllocator){pb_arena_alloc, pb_arena_free, x};
}

struct sr_engine {
    char *dir;
    char *state_dir;            /* a state at a past time's private index (state.c), removed at its close */
    uint64_t snap_seq;          /* writer: the seq of the last state snapshot (statesnap.c; 0: none) */
    uint64_t snap_vals;         /* writer: values applied since it */
    int64_t snap_ms;            /* writer: its ingest time (0: none yet, the next group's time starts the count) */
    sr_engine_opts o;
    sr_points *pt;              /* the point table (points.c) */
    pb_arena ev;                /* the writer's decoded events of one group */
    int masters_dirty; /* writer: this group changed a master (or one was refused after it) */
    sr_log *log;
    sr_index *ix;
    sr_blobs *blobs;
    sr_keyring *keyring; /* the data keys (keys.c); NULL: no master key, nothing sealed */
    sr_ixseal seal;      /* the index's sealed values (ixseal.h); attached when the keyring is */
    int pending_dry;     /* writer: a pending change's dry run (apply.c) is applying; keys.c changes nothing then */

    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    opq *q;
    size_t nq, capq, rr;
    uint32_t depth;
    int stopping, poisoned;
    int poison_cause;           /* the failure that poisoned (under mu) */
    int nospace_ro;             /* opened read-only for lack of space (readonly_on_nospace) */
    uint32_t test_groups;       /* writer: groups appended (opts.test_fail_commit) */
    char *logdir;               /* the log's directory and options: the writer reopens it (§7) */
    struct sr_log_opts lo;
    pthread_t writer;
    int writer_started;
    struct cmd **group; /* the writer's group array, allocated by open */
    size_t group_n;     /* writer: commands in the group being processed */

    _Atomic uint64_t watermark; /* published W */
    /* the registry generation (sr_engine_registry_gen): bumped by the writer
     * after committing a group with a RegistryPut or RegistryDelete, before
     * the group's callbacks and the registry hook (under mu: reg_hook) */
    _Atomic uint64_t reg_gen;
    sr_registry_hook reg_hook;
    void *reg_hook_ctx;
    sr_alarm_hook alarm_hook; /* (under mu) sr_engine_on_alarm */
    void *alarm_hook_ctx;
    sr_appended_hook appended_hook; /* (under mu) sr_engine_on_appended */
    void *appended_hook_ctx;
    uint64_t next_seq;          /* writer-only */

    head **hdir[HDIR];
    uint32_t *lpend; /* writer (or the replay): points whose latest row changed in the open transaction (heads.c) */
    size_t nlpend, caplpend;
    pthread_mutex_t stripe[NSTRIPE];
    _Atomic uint64_t npoints;
    struct sr_cw *cw; /* the rebuild's chunk encoders (heads.c sr__cw_start), NULL when flushes encode in place */

    /* the last heads checkpoint applied (heads.c; meta "heads_ckpt"): its
     * seq and before_seq. The writer and the open, or a single thread. */
    uint64_t ckpt_at, ckpt_before;
    int64_t ckpt_ms; /* the writer's clock at its last heads checkpoint (at open: the open's) */
    uint64_t open_end; /* the log's next seq at open: a close checkpoint only after writing (writer.c) */

    _Atomic uint64_t st_commands, st_events, st_groups, st_flushes, st_extends;
    int replaying_heads_only;
    _Atomic int ret_busy;            /* a retention sweep runs (retention.c invariant 4) */
    _Atomic uint64_t st_ret_removed; /* index rows Retention events removed (retention.c) */
    sr_engine_open_stats ost; /* what sr_engine_open spent, set once by it */
    /* the metrics (sr_engine_get_stats; docs/monitoring.md): the log's
     * fdatasync latency (its sync_hist), the writer's group commit time
     * (from taking the group to the index's commit) and commands per group;
     * relaxed atomics, no lock (codecs/base/sr_hist.h) */
    sr_hist h_sync, h_commit, h_group;
    /* the Merkle tree over the log (ckpt.c): the writer's frontier and the
     * first seq it does not cover (invariant 3 of ckpt.c); mt_off: not kept
     * (a log trimmed past the tree) */
    sr_mt_frontier mt;
    uint64_t mt_next;
    int mt_off;
};

typedef struct pointinfo {
    char op[72];
    char gateway[72];
    MasterPut *m; /* unpacked master; free with master_put__free_unpacked */
} pointinfo;


static inline uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline int64_t now_ms(sr_engine *e)
{
    if (e->o.clock_ms) return e->o.clock_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline pthread_mutex_t *stripe_of(sr_engine *e, uint32_t p) { return &e->stripe[p % NSTRIPE]; }

static inline head *head_find(sr_engine *e, uint32_t p)
{
    head **page = e->hdir[p >> HPAGE_BITS];
    return page ? page[p & (HPAGE - 1)] : NULL;
}

static inline int put(MDB_txn *t, MDB_dbi d, const void *k, size_t kl, const void *v, size_t vl)
{
    MDB_val K = {kl, (void *)k}, V = {vl, (void *)v};
    return sr_index_err(mdb_put(t, d, &K, &V, 0));
}

static inline int get(MDB_txn *t, MDB_dbi d, const void *k, size_t kl, MDB_val *v)
{
    MDB_val K = {kl, (void *)k};
    return sr_index_err(mdb_get(t, d, &K, v));
}

static inline int del(MDB_txn *t, MDB_dbi d, const void *k, size_t kl)
{
    MDB_val K = {kl, (void *)k};
    int rc = mdb_del(t, d, &K, NULL);
    return rc == MDB_NOTFOUND ? SR_OK : sr_index_err(rc);
}

#define DB(e, which) sr_index_dbi((e)->ix, which)

static inline void hs_to_sample(const hsample *h, sr_vtype t, sr_sample *s)
{
    s->ts = h->ts;
    s->quality = h->q;
    if (t == SR_VT_STRING) {
        s->v.str.s = h->v.s.p;
        s->v.str.slen = h->v.s.n;
    } else if (t == SR_VT_NUMBER) s->v.f = h->v.f;
    else if (t == SR_VT_INTEGER) s->v.i = h->v.i;
    else s->v.b = h->v.b;
}


/* ---- across the engine's files ------------------------------------------- */

/* schema.c: the records of pointinfo and msgidx */
/* 1 if events of this kind are data writes: summarised by the writer's
 * WriteAudit (writer.c), so they make no audit row of their own (audit.c) */
static inline int sr__is_data_write(int body_case)
{
    switch (body_case) {
    case SUIRO__V1__EVENT__BODY_MEASUREMENTS:
    case SUIRO__V1__EVENT__BODY_REQUEST_CREATED:
    case SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION:
    case SUIRO__V1__EVENT__BODY_MONITOR:
    case SUIRO__V1__EVENT__BODY_DOC_PUT:
    case SUIRO__V1__EVENT__BODY_DOC_DELETE:
    case SUIRO__V1__EVENT__BODY_FILE_PUT:
    case SUIRO__V1__EVENT__BODY_FILE_DELETE: return 1;
    default: return 0;
    }
}
int sr__pointinfo_get(sr_engine *e, MDB_txn *t, uint32_t p, pointinfo *pi);
int sr__pointinfo_parse(const void *data, size_t n, pointinfo *pi); /* the record's value */
int sr__msgid_item(const sr_engine *e, const Event *ev, uint64_t seq, uint8_t item[MSGID_ITEM]);
size_t sr__msgid_key(const Event *ev, uint64_t seq, uint8_t *k, size_t cap);

/* points.c: the point table. load: (re)build it from the committed index
 * (open, after a resume); touch: the writer names a point a master event of
 * the group changes (or tried to); commit: after the group's commit, the
 * touched points read back from the index; abort: the group failed; view:
 * the writer's check (from the table, or from t when the group changed
 * masters; *scratch is the caller's to sr_free); lookup: any thread,
 * (operator, dataId) -> its info, SR_ENOTFOUND if it is not listed. */
int sr__points_load(sr_engine *e);
void sr__points_free(sr_engine *e);
void sr__points_touch(sr_engine *e, uint32_t p);
void sr__points_abort(sr_engine *e);
int sr__points_commit(sr_engine *e);
int sr__points_view(sr_engine *e, MDB_txn *t, uint32_t p, sr_ptview *out, char **scratch);
int sr__points_lookup(sr_engine *e, const char *op, const char *data_id, sr_point_info *out);
/* Invariants of the table (points.c's header), NULL when they hold; _entry
 * compares point p's entry with what t has, _index every entry with the
 * committed index (the writer, or a single thread). */
const char *sr_points_check(const sr_engine *e);
const char *sr_points_check_entry(const sr_engine *e, MDB_txn *t, uint32_t p);
const char *sr_points_check_index(const sr_engine *e);

/* apply.c: the event appliers (pass 1), the message ids, the watermark */
int sr__refuse(sr_result *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* store_access.c: SR_OK when the event's actor may write a document or
 * file (kind: sr_store_kind; name: its collection or path) whose owner is
 * (owner_kind, owner): not an app, the owner, or an app holding a write
 * grant on it; else refused in r (SR_ECONFLICT). */
int sr__store_write_ok(sr_engine *e, MDB_txn *t, const Event *ev, int kind, const char *name, int owner_kind,
                       const char *owner, sr_result *r);
int sr__apply_nonseries(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
int sr__apply_common(sr_engine *e, MDB_txn *t, const Event *ev);
/* The audit trail's row of ev, if its kind is in the trail (engine/audit.c). */
int sr__audit_put(sr_engine *e, MDB_txn *t, const Event *ev);
int sr__put_watermark(sr_engine *e, MDB_txn *t, uint64_t w);
int sr__apply_series(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);

/* One row of the event appliers' table (apply.c, SR_EVENT_KINDS): what an
 * event of one kind (the oneof case of Event.body in codecs/events.proto)
 * does to the index. check: the writer's checks that come before any change
 * (NULL: none); apply: pass 1, everything but time series, validate 1 on the
 * writer (checks, fills writer-decided fields), 0 in the replay (NULL: the
 * log is the kind's only store); series: pass 2 (NULL: none). */
typedef struct sr_applier {
    int kind; /* SUIRO__V1__EVENT__BODY_* */
    const char *name;
    int (*check)(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r);
    int (*apply)(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
    int (*series)(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
} sr_applier;
/* The row of a kind; NULL for a case the table does not know. */
const sr_applier *sr__applier(int kind);
/* The key class (storage/keyring.h sr_key_class: data, audit, config) of an
 * event kind (engine/keys.c, SR_KEY_CLASSES); -1 for a case it does not know. */
int sr__key_class(int kind);
/* The keyring of data directory dir (DIR/keys/keyring) unwrapped by master;
 * *out NULL without a master, or when there is none and !create (a
 * directory written before issue #16, or read-only before its first write).
 * Errors: sr_keyring_open's (a wrong master names both ids). */
int sr__keyring_of(const struct sr_vfs *vfs, const char *dir, const sr_key *master, const char *source, int create,
                   sr_keyring **out, sr_errinfo *ei);
/* Dropping log segments (segdrop.c; docs/keys.md "Segments"): the
 * ConfigCarry and LogTrim rows of SR_EVENT_KINDS; the retention sweep's last
 * step (after its keys: carry, trim, unlink); the open's finishing of a drop
 * a crash interrupted (meta "floor" above the log's first seq) and the floor
 * of a fresh index built from a trimmed log (before the replay). */
int sr__segdrop_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r);
int sr__segdrop_apply(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
int sr__segdrop_sweep(sr_engine *e, const sr_retention_cfg *cfg, int64_t now, const char *actor, int actor_kind,
                      sr_retention_report *rep, sr_errinfo *err);
/* retention.c, for segdrop.c's rule (d): the time before which op's data
 * records built nothing the index holds (sweep_keys' checks); INT64_MIN: none. */
int64_t sr__retention_data_cut(sr_engine *e, MDB_txn *t, const sr_retention_cfg *cfg, int64_t now, const char *op);
int sr__segdrop_finish(sr_engine *e);
/* The Merkle tree and the checkpoints (ckpt.c): a group's leaves added in
 * its transaction to a copy f of the frontier (*next: the first seq not
 * covered); the leaves the index lacks read back from the log (open,
 * rebuild, recovery); the CheckpointEvent's row of SR_EVENT_KINDS. */
int sr__mt_add(sr_engine *e, MDB_txn *t, sr_mt_frontier *f, uint64_t *next, const sr_log_leaf *lv, size_t n);
int sr__mt_catch_up(sr_engine *e);
/* statesnap.c: the state snapshots (docs/state.md "How it is built") */
int sr__snap_load(sr_engine *e);
int sr__snap_group(sr_engine *e, MDB_txn *t, uint64_t seq, int64_t at_ms, int *made);
int sr__snap_trim(sr_engine *e, MDB_txn *t, uint64_t first_kept);
/* The seqs of the snapshots the index holds, oldest first (at most max of
 * them in out; *n: how many there are); a read transaction of its own. */
int sr__snap_list(sr_engine *e, uint64_t *out, size_t max, size_t *n);
/* The thinning rule (docs/state.md "Kept (thinning)"): drop[i] = 1 for the
 * snapshots of all (n sorted seqs, all[n - 1] the newest) it deletes. */
void sr__snap_thin(const uint64_t *all, size_t n, uint32_t keep, uint8_t *drop);
int sr__snap_restore(sr_engine *e, uint64_t seq, uint64_t first, const char *dir, uint64_t *s, int64_t *ms,
                     uint32_t *skipped, sr_errinfo *ei);
/* A LogTrim's tree (segdrop.c): the frontier of the blocks below first_kept
 * (*len 0: no tree kept), and its apply (the live tree drops the nodes
 * wholly below it but the frontier's; a fresh one starts from it). */
int sr__mt_trim_fill(sr_engine *e, uint64_t first_kept, uint64_t *tree_size, uint8_t *buf, size_t *len);
int sr__mt_trim_apply(sr_engine *e, MDB_txn *t, uint64_t first_kept, uint64_t tree_size, const uint8_t *fr,
                      size_t n);
int sr__checkpoint_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r);
int sr__checkpoint_apply(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
int sr__segdrop_fresh_floor(sr_engine *e);
/* The KeyEvent applier (SR_EVENT_KINDS): on the writer (validate), a
 * "rotate" command rotates the key (durably) and becomes "rotated" with its
 * ids; the engine's own actions are refused from outside. Replay: nothing
 * (the keyring is its own store). */
int sr__apply_key(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
/* A stream key's erasure (StreamKeyErase, keys.c invariant 4): its check
 * (the writer) and its apply (the 'K' row of `origins`, writer and replay). */
int sr__check_skey_erase(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r);
int sr__apply_skey_erase(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
/* 1 when `origins` holds the 'K' row of an intent at seq (segdrop.c keeps it). */
int sr__skey_intent_open(sr_engine *e, MDB_txn *t, const Event *ev);
/* sr_log_iter_next, counting the records whose key was destroyed
 * (SR_EERASED, below end) in e->ost's erased summary instead of returning
 * them (keys.c): the replay's and the rebuild's. */
int sr__iter_next_readable(sr_engine *e, sr_log_iter *it, uint64_t end, uint64_t *seq, sr_slice *rec);
/* A key made while choosing a record's key (keys.c): its KeyEvent is due. */
typedef struct sr_keynote {
    const char *action; /* "created", "rotated" */
    sr_keyinfo k;
    uint32_t old_id;    /* rotated: the key it retired */
} sr_keynote;
/* The key id that seals a record of kind for operator op: the active key of
 * (op, the kind's class), made (durably) if there is none or if [keys]
 * rotate_days says its epoch is over; note->action is then set. 0 without a
 * keyring (engine opened without a master key). Writer thread. */
int sr__record_key(sr_engine *e, const char *op, int kind, int64_t now, uint32_t *id, sr_keynote *note);
/* The KeyEvent of a note, at seq, in the writer's event arena; NULL: no memory. */
Event *sr__key_event(sr_engine *e, const sr_keynote *n, uint64_t seq, int64_t now);

/* The values of a data event: a Measurements' own or a Correction's (the
 * same compact form, codecs/events.proto); NULL for any other kind. The
 * one place that says which kinds carry values (the check, the series
 * apply, sr_event_has_point). */
/* A replicated measurement or correction logged HELD (origins.c invariant
 * 6, Origin.held): its numbers are its origin node's, unmapped here, so
 * nothing reads them as this node's (its values are applied from its
 * release, Origin.release_of). */
static inline int sr__held(const Event *ev) { return ev->origin && ev->origin->held; }

/* The values of ev as this node's (none for a held event: sr__held). */
static inline const Suiro__V1__Measurements *sr__event_values(const Event *ev)
{
    if (sr__held(ev)) return NULL;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS) return ev->measurements;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_CORRECTION && ev->correction) return ev->correction->values;
    return NULL;
}

/* heads.c: series heads and the series apply (pass 2): the row's series of
 * measurements and corrections (sr__event_values) */
int sr__heads_apply_measurements(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
int sr__heads_load(sr_engine *e, uint64_t *min_first);
/* The latest row: note s (the newest of a point's values in an event) for
 * head h; flush: write the pending rows into t (once per group, and per
 * event in the replay); end: the transaction t was committed (committed 1),
 * or aborted (0: the pending rows are dropped and every head noted since it
 * began forgets its row's ts, read again at its next note). */
int sr__heads_latest_note(sr_engine *e, MDB_txn *t, head *h, const sr_sample *s);
int sr__heads_latest_flush(sr_engine *e, MDB_txn *t);
/* the same for string points only (strings_only: their rows borrow their
 * events' strings; the others' may wait for the transaction's end) */
int sr__heads_latest_flush_some(sr_engine *e, MDB_txn *t, int strings_only);
void sr__heads_latest_end(sr_engine *e, int committed);
/* The rebuild's chunk encoders (heads.c invariant 11): started by the
 * pipelined replay of a rebuild, their chunks put into t by sr__cw_drain
 * (before every commit and every event but measurements). */
int sr__cw_start(sr_engine *e);
int sr__cw_drain(sr_engine *e, MDB_txn *t);
void sr__cw_stop(sr_engine *e);
/* The heads checkpoint row's series (HeadsCheckpoint, events.proto): flush
 * every head holding a value of an event before before_seq, move an empty
 * head's first_seq past it, record it in meta "heads_ckpt" (nothing in
 * heads_only mode: heads_db already says it). */
int sr__heads_apply_checkpoint(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
/* alarms.c: the AlarmEvent applier (SR_EVENT_KINDS): an alarm's steps in
 * the `alarms` database (its header: one open alarm per condition) */
int sr__apply_alarm(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
/* retention.c: the Retention event's check (pass 1) and apply (pass 2, in
 * seq order with the measurements; nothing in heads_only mode); a data
 * class a data point may have (an id, not "audit" nor "message_ids") */
int sr__retention_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r);
int sr__retention_apply(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
int sr__retention_class_ok(const char *c);
int sr__retention_record_class(const char *c); /* "documents", "files", "requests", "monitors" */
/* The smallest first_seq of a head ever written: where a restart would
 * start re-reading the log (UINT64_MAX: no head). */
uint64_t sr__heads_oldest(sr_engine *e);
/* A head wholly past a retention cut (every sample, and its flushed state,
 * older than cut; its state as of seq or before) back to "never written",
 * its `heads` row deleted (not in heads_only): retention.c apply_points,
 * heads.c "Heads past a retention cut". *done: 1 if it was. */
int sr__heads_retire(sr_engine *e, MDB_txn *t, head *h, int64_t cut, uint64_t seq, int heads_only, int *done);
void sr__heads_swap(sr_engine *e, sr_engine *sh);
void sr__heads_free(sr_engine *e);
/* Invariants of one head (heads.c's header), NULL when they hold, else the
 * broken one named. The writer (or a single thread) calls it; how: 0 or
 * SR_HEAD_STRIPE_HELD (the caller holds the head's stripe: checked) |
 * SR_HEAD_AT_REST (a point's values are applied: the flush thresholds
 * hold). */
enum { SR_HEAD_STRIPE_HELD = 1, SR_HEAD_AT_REST = 2 };
const char *sr_head_check(const sr_engine *e, const head *h, int how);
/* Every head's, and the directory's (the writer, or a single thread). */
const char *sr_heads_check(const sr_engine *e);

/* writer.c: the queue, the writer thread, and the wire reading it shares */
int sr__writer_start(sr_engine *e);
void sr__cmd_free(cmd *c);
int sr__ensure_room(sr_engine *e);
int sr__wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
int sr__wire_skip(const uint8_t **p, const uint8_t *end, unsigned wt, const uint8_t **body, size_t *blen);
/* Invariants of the queue, the group commit and the poisoned / read-only
 * states, NULL when they hold. The caller holds e->mu (or is the only
 * thread); the writer-only fields are checked on the writer thread only. */
const char *sr_writer_check(const sr_engine *e);

/* replay.c */
int sr__replay(sr_engine *e, uint64_t w, uint64_t min_first, sr_errinfo *ei);

/* engine.c */
int sr__recover(sr_engine *e);
void sr__alert(sr_engine *e, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sr__fs_full(const char *dir);

#endif
