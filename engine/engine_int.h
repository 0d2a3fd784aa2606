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
 *   heads.c   the series heads (hdir, stripe, npoints, st_flushes) and the
 *             series apply (pass 2)
 *   replay.c  the replay of the log at open and at recover
 *   query.c   the readers (picache, picache_mu, masters_gen)
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
#include "engine/schema.h"
#include "storage/blobs.h"
#include "storage/index.h"
#include "storage/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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
    struct cmd *next;
} cmd;

typedef struct opq {
    char op[72];
    cmd *head, *tail;
    uint32_t depth;
} opq;

/* sr_engine_point_info answers from here while no master changed (the
 * writer bumps masters_gen after committing a group that changed one). */
enum { PICACHE = 1024 };
typedef struct picache_ent {
    uint64_t gen; /* masters_gen + 1 when filled; 0: empty */
    char key[146]; /* op \0 data_id */
    size_t kl;
    sr_point_info info;
} picache_ent;

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
    sr_engine_opts o;
    picache_ent *picache;
    pb_arena ev;                /* the writer's decoded events of one group */
    pthread_mutex_t picache_mu;
    _Atomic uint64_t masters_gen;
    int masters_dirty; /* writer: this group changed a master (or one was refused after it) */
    sr_log *log;
    sr_index *ix;
    sr_blobs *blobs;

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
    uint64_t next_seq;          /* writer-only */

    head **hdir[HDIR];
    pthread_mutex_t stripe[NSTRIPE];
    _Atomic uint64_t npoints;

    /* the last heads checkpoint applied (heads.c; meta "heads_ckpt"): its
     * seq and before_seq. The writer and the open, or a single thread. */
    uint64_t ckpt_at, ckpt_before;
    uint64_t open_end; /* the log's next seq at open: a close checkpoint only after writing (writer.c) */

    _Atomic uint64_t st_commands, st_events, st_groups, st_flushes;
    int replaying_heads_only;
    sr_engine_open_stats ost; /* what sr_engine_open spent, set once by it */
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
int sr__pointinfo_get(sr_engine *e, MDB_txn *t, uint32_t p, pointinfo *pi);
int sr__msgid_item(const sr_engine *e, const Event *ev, uint64_t seq, uint8_t item[MSGID_ITEM]);
size_t sr__msgid_key(const Event *ev, uint64_t seq, uint8_t *k, size_t cap);

/* apply.c: the event appliers (pass 1), the message ids, the watermark */
int sr__refuse(sr_result *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sr__apply_nonseries(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate);
int sr__apply_common(sr_engine *e, MDB_txn *t, const Event *ev);
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

/* heads.c: series heads and the series apply (pass 2): the measurements
 * row's series */
int sr__heads_apply_measurements(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
int sr__heads_load(sr_engine *e, uint64_t *min_first);
/* The heads checkpoint row's series (HeadsCheckpoint, events.proto): flush
 * every head holding a value of an event before before_seq, move an empty
 * head's first_seq past it, record it in meta "heads_ckpt" (nothing in
 * heads_only mode: heads_db already says it). */
int sr__heads_apply_checkpoint(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only);
/* The smallest first_seq of a head ever written: where a restart would
 * start re-reading the log (UINT64_MAX: no head). */
uint64_t sr__heads_oldest(sr_engine *e);
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
