/*
 * engine/engine.c -- open/close, the writer thread, apply, replay, queries.
 *
 * INVARIANTS
 *  (1) The index watermark W is the highest sequence number whose event is
 *      applied to LMDB; it is written in the same transaction as the changes.
 *  (2) W <= the log's durable end. At open, events (W, end] are applied.
 *  (3) apply() reads nothing but the event and the index (and the heads,
 *      which are themselves a function of the applied events): replaying the
 *      log into an empty index gives the same content (sr_engine_content_hash).
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
 *      it; the writer does both by itself (recover(), docs/durability.md
 *      section 7), and says so through opts.alert when it poisons and when
 *      it resumes.
 *  (7) Late samples (older than what a point has flushed) wait in the head's
 *      late list and are merged into the chunks at the head's next flush, or
 *      when the list reaches LATE_MAX; like head samples they have seq >=
 *      first_seq and are rebuilt by the replay. Readers merge them, in time
 *      order and winning ties, with the chunks of their snapshot; the batch
 *      merged at seq F stays visible to readers with W < F.
 *
 * WRITER LOOP (one thread)
 *   wait for commands -> take a group (round-robin over operators)
 *   -> for each command: tentative seqs; pass 1 in a nested txn validates
 *      every event and applies non-series events; refused -> abort nested,
 *      reuse the seqs; accepted -> commit nested, encode the events
 *   -> pass 2 applies the group's measurements (heads, chunks, latest)
 *   -> log append (one atomic batch, durable) -> watermark -> commit
 *   -> publish W -> callbacks.
 */
#include "engine/suiro.h"

#include "codecs/events.pb-c.h"
#include "engine/evbuild.h"
#include "storage/blobs.h"
#include "storage/crypto.h"
#include "storage/index.h"
#include "storage/log.h"
#include "storage/series.h"

#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

typedef Suiro__V1__Event Event;
typedef Suiro__V1__PointValues PointValues;
typedef Suiro__V1__MasterPut MasterPut;

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

static void *pb_arena_alloc(void *d, size_t n)
{
    pb_arena *x = d;
    void *p = sr_arena_alloc(&x->a, n);
    if (!p) x->oom = 1;
    return p;
}

static void pb_arena_free(void *d, void *p)
{
    (void)d;
    (void)p; /* all at sr_arena_reset */
}

static void pb_arena_init(pb_arena *x)
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

    _Atomic uint64_t watermark; /* published W */
    uint64_t next_seq;          /* writer-only */

    head **hdir[HDIR];
    pthread_mutex_t stripe[NSTRIPE];
    _Atomic uint64_t npoints;

    _Atomic uint64_t st_commands, st_events, st_groups, st_flushes;
    int replaying_heads_only;
    sr_engine_open_stats ost; /* what sr_engine_open spent, set once by it */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t now_ms(sr_engine *e)
{
    if (e->o.clock_ms) return e->o.clock_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_mutex_t *stripe_of(sr_engine *e, uint32_t p) { return &e->stripe[p % NSTRIPE]; }

static head *head_find(sr_engine *e, uint32_t p)
{
    head **page = e->hdir[p >> HPAGE_BITS];
    return page ? page[p & (HPAGE - 1)] : NULL;
}

static head *head_get(sr_engine *e, uint32_t p, sr_vtype type)
{
    if ((p >> HPAGE_BITS) >= HDIR) return NULL;
    head **page = e->hdir[p >> HPAGE_BITS];
    if (!page) {
        page = sr_calloc(HPAGE, sizeof *page);
        if (!page) return NULL;
        e->hdir[p >> HPAGE_BITS] = page; /* published once, never freed until close */
    }
    head *h = page[p & (HPAGE - 1)];
    if (!h) {
        h = sr_calloc(1, sizeof *h);
        if (!h) return NULL;
        h->point = p;
        h->type = type;
        h->flushed_max = INT64_MIN;
        pthread_mutex_lock(stripe_of(e, p));
        page[p & (HPAGE - 1)] = h;
        pthread_mutex_unlock(stripe_of(e, p));
        atomic_fetch_add(&e->npoints, 1);
    }
    return h;
}

static void hs_free_strings(hsample *v, size_t n, sr_vtype t)
{
    if (t != SR_VT_STRING) return;
    for (size_t i = 0; i < n; i++) sr_free(v[i].v.s.p);
}

static void heads_free(sr_engine *e)
{
    for (size_t d = 0; d < HDIR; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE; i++) {
            head *h = page[i];
            if (!h) continue;
            hs_free_strings(h->v, h->n, h->type);
            hs_free_strings(h->old, h->nold, h->type);
            hs_free_strings(h->late, h->nlate, h->type);
            hs_free_strings(h->old_late, h->nold_late, h->type);
            sr_free(h->v);
            sr_free(h->old);
            sr_free(h->late);
            sr_free(h->old_late);
            sr_free(h);
        }
        sr_free(page);
        e->hdir[d] = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}
static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }
static uint64_t ts_key(int64_t ts) { return (uint64_t)ts ^ (1ull << 63); } /* order-preserving */

/* key = parts joined by \0; returns length or 0 if too long */
static size_t mkkey(uint8_t *k, size_t cap, const char *a, const char *b, const char *c)
{
    size_t n = 0;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3 && parts[i]; i++) {
        size_t l = strlen(parts[i]);
        if (n + l + 1 > cap) return 0;
        if (i) k[n++] = 0;
        memcpy(k + n, parts[i], l);
        n += l;
    }
    return n;
}

/* request keys: op \0 request \0 gateway \0 tag */
static size_t rkey(uint8_t *k, size_t cap, const char *op, const char *req, const char *gw, char tag)
{
    size_t n = mkkey(k, cap, op, req, gw ? gw : "");
    if (!n || n + 2 > cap) return 0;
    k[n++] = 0;
    k[n++] = (uint8_t)tag;
    return n;
}

static int put(MDB_txn *t, MDB_dbi d, const void *k, size_t kl, const void *v, size_t vl)
{
    MDB_val K = {kl, (void *)k}, V = {vl, (void *)v};
    return sr_index_err(mdb_put(t, d, &K, &V, 0));
}

static int get(MDB_txn *t, MDB_dbi d, const void *k, size_t kl, MDB_val *v)
{
    MDB_val K = {kl, (void *)k};
    return sr_index_err(mdb_get(t, d, &K, v));
}

static int del(MDB_txn *t, MDB_dbi d, const void *k, size_t kl)
{
    MDB_val K = {kl, (void *)k};
    int rc = mdb_del(t, d, &K, NULL);
    return rc == MDB_NOTFOUND ? SR_OK : sr_index_err(rc);
}

#define DB(e, which) sr_index_dbi((e)->ix, which)

static int put_packed(sr_engine *e, MDB_txn *t, sr_dbi d, const void *k, size_t kl, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[512];
    uint8_t *b = n <= sizeof stackbuf ? stackbuf : sr_malloc(n);
    if (!b) return SR_ENOMEM;
    protobuf_c_message_pack(m, b);
    int rc = put(t, DB(e, d), k, kl, b, n);
    if (b != stackbuf) sr_free(b);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Measurement decoding                                                      */

/* ------------------------------------------------------------------------ */
/* Pass 1: validate (and apply non-series events)                            */

typedef struct pointinfo {
    char op[72];
    char gateway[72];
    MasterPut *m; /* unpacked master; free with master_put__free_unpacked */
} pointinfo;

static int pointinfo_get(sr_engine *e, MDB_txn *t, uint32_t p, pointinfo *pi)
{
    uint8_t k[4];
    be32(k, p);
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_POINTINFO), k, 4, &v);
    if (rc) return rc;
    const uint8_t *d = v.mv_data;
    size_t n = v.mv_size, a = strnlen((const char *)d, n);
    if (a >= n || a >= sizeof pi->op) return SR_ECORRUPT;
    memcpy(pi->op, d, a + 1);
    size_t b = strnlen((const char *)d + a + 1, n - a - 1);
    if (a + 1 + b >= n || b >= sizeof pi->gateway) return SR_ECORRUPT;
    memcpy(pi->gateway, d + a + 1, b + 1);
    pi->m = suiro__v1__master_put__unpack(NULL, n - a - b - 2, d + a + b + 2);
    return pi->m ? SR_OK : SR_ECORRUPT;
}

static int refuse(sr_result *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(sr_result *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->rc = rc;
    return rc;
}

static int check_measurements(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    const Suiro__V1__Measurements *m = ev->measurements;
    for (size_t k = 0; k < m->n_points; k++) {
        const PointValues *pv = m->points[k];
        pointinfo pi = {0};
        int rc = pointinfo_get(e, t, pv->point, &pi);
        if (rc == SR_ENOTFOUND) return refuse(r, SR_EINVAL, "point %u: unknown data point", pv->point);
        if (rc) return refuse(r, rc, "point %u: %s", pv->point, sr_strerror(rc));
        int bad = 0;
        sr_vtype t2 = 0;
        long n = sr_pv_count(pv, &t2);
        const MasterPut *mp = pi.m;
        if (strcmp(pi.op, ev->operator_id) != 0) {
            bad = refuse(r, SR_EINVAL, "point %u: unknown data point", pv->point);
        } else if (n < 0) {
            bad = refuse(r, SR_EINVAL, "%s: inconsistent value arrays", mp->id);
        } else if ((int)t2 != (int)mp->type) {
            bad = refuse(r, SR_EINVAL, "%s: values of the wrong type for a %s point", mp->id,
                         mp->type == SUIRO__V1__VALUE_TYPE__VT_NUMBER    ? "number"
                         : mp->type == SUIRO__V1__VALUE_TYPE__VT_INTEGER ? "integer"
                         : mp->type == SUIRO__V1__VALUE_TYPE__VT_BOOL    ? "boolean"
                                                                         : "string");
        } else if (ev->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY && strcmp(pi.gateway, ev->actor) != 0) {
            bad = refuse(r, SR_EINVAL, "%s: not reached through gateway %s", mp->id, ev->actor);
        } else {
            sr_pv_iter it;
            sr_pv_iter_init(&it, pv, (size_t)n);
            for (long i = 0; i < n && !bad; i++) {
                sr_sample s;
                if (sr_pv_iter_next(&it, &s)) {
                    bad = refuse(r, SR_EINVAL, "%s: value %ld: timestamp out of range", mp->id, i);
                    break;
                }
                if (s.quality > SR_Q_UNCERTAIN) continue;
                double x = mp->type == SUIRO__V1__VALUE_TYPE__VT_NUMBER    ? s.v.f
                           : mp->type == SUIRO__V1__VALUE_TYPE__VT_INTEGER ? (double)s.v.i
                                                                           : 0;
                if (mp->type == SUIRO__V1__VALUE_TYPE__VT_NUMBER && !isfinite(x))
                    bad = refuse(r, SR_EINVAL, "%s: value %ld is not a finite number", mp->id, i);
                else if (mp->has_min && x < mp->min && (t2 == SR_VT_NUMBER || t2 == SR_VT_INTEGER))
                    bad = refuse(r, SR_EINVAL, "%s: value %g below the minimum %g", mp->id, x, mp->min);
                else if (mp->has_max && x > mp->max && (t2 == SR_VT_NUMBER || t2 == SR_VT_INTEGER))
                    bad = refuse(r, SR_EINVAL, "%s: value %g above the maximum %g", mp->id, x, mp->max);
            }
        }
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
        if (bad) return bad;
    }
    return SR_OK;
}

static int apply_master_put(sr_engine *e, MDB_txn *t, const Event *ev, MasterPut *mp, sr_result *r, int validate)
{
    int rc;
    uint8_t k[300];
    char kind[2] = {(char)('0' + mp->kind), 0};
    if (mp->kind < 1 || mp->kind > 4) return refuse(r, SR_EINVAL, "master %s: unknown kind", mp->id);
    if (!mp->id[0] || strlen(mp->id) > 64) return refuse(r, SR_EINVAL, "master id empty or too long");
    size_t kl = mkkey(k, sizeof k, ev->operator_id, kind, mp->id);
    if (!kl) return refuse(r, SR_EINVAL, "master %s: key too long", mp->id);
    if (validate && mp->kind > 1) {
        /* the parent must exist */
        uint8_t pk[300];
        char pkind[2] = {(char)('0' + mp->kind - 1), 0};
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, pkind, mp->parent_id);
        MDB_val v;
        if (!pkl || get(t, DB(e, SR_DB_MASTERS), pk, pkl, &v))
            return refuse(r, SR_EINVAL, "master %s: parent %s does not exist", mp->id, mp->parent_id);
    }
    if (mp->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
        if (validate && (mp->type < 1 || mp->type > 4))
            return refuse(r, SR_EINVAL, "data point %s: unknown value type", mp->id);
        if (validate && mp->has_min && mp->has_max && mp->min > mp->max)
            return refuse(r, SR_EINVAL, "data point %s: min above max", mp->id);
        uint8_t pk[300];
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, mp->id, NULL);
        MDB_val v;
        uint32_t point;
        if (get(t, DB(e, SR_DB_POINTS), pk, pkl, &v) == SR_OK && v.mv_size == 4) {
            point = get_be32(v.mv_data);
            if (validate) {
                pointinfo pi = {0};
                if (pointinfo_get(e, t, point, &pi) == SR_OK) {
                    int changed = pi.m->type != mp->type;
                    suiro__v1__master_put__free_unpacked(pi.m, NULL);
                    if (changed) return refuse(r, SR_EINVAL, "data point %s: its value type cannot change", mp->id);
                }
            }
        } else {
            MDB_val nv;
            uint8_t rk[300];
            size_t rkl = mkkey(rk, sizeof rk, "retired", ev->operator_id, mp->id);
            if (rkl && get(t, DB(e, SR_DB_META), rk, rkl, &nv) == SR_OK && nv.mv_size == 4) {
                /* a removed data point comes back: its old number, so its
                 * stored values are its history again */
                point = get_be32(nv.mv_data);
                if (validate) {
                    pointinfo pi = {0};
                    if (pointinfo_get(e, t, point, &pi) == SR_OK) {
                        int changed = pi.m->type != mp->type;
                        suiro__v1__master_put__free_unpacked(pi.m, NULL);
                        if (changed)
                            return refuse(r, SR_EINVAL,
                                          "data point %s: it was removed with another value type, which cannot "
                                          "change",
                                          mp->id);
                    }
                }
                if (!validate) point = mp->point;
                if ((rc = del(t, DB(e, SR_DB_META), rk, rkl))) return rc;
            } else {
                point = 1;
                if (get(t, DB(e, SR_DB_META), "next_point", 10, &nv) == SR_OK && nv.mv_size == 4)
                    point = sr_get_le32(nv.mv_data);
                if (!validate) point = mp->point; /* replay: the number is in the event */
                uint8_t b[4];
                sr_put_le32(b, point + 1);
                if ((rc = put(t, DB(e, SR_DB_META), "next_point", 10, b, 4))) return rc;
            }
        }
        if (validate) mp->point = point;
        point = mp->point;
        r->point = point;
        uint8_t pb[4];
        be32(pb, point);
        if ((rc = put(t, DB(e, SR_DB_POINTS), pk, pkl, pb, 4))) return rc;
        /* pointinfo: op \0 gateway \0 packed master; the gateway is the device's */
        char gw[72] = "";
        uint8_t dk[300];
        char dkind[2] = {'0' + SUIRO__V1__MASTER_KIND__MK_DEVICE, 0};
        size_t dkl = mkkey(dk, sizeof dk, ev->operator_id, dkind, mp->parent_id);
        MDB_val dv;
        if (dkl && get(t, DB(e, SR_DB_MASTERS), dk, dkl, &dv) == SR_OK) {
            MasterPut *dm = suiro__v1__master_put__unpack(NULL, dv.mv_size, dv.mv_data);
            if (dm) {
                snprintf(gw, sizeof gw, "%s", dm->gateway_id);
                suiro__v1__master_put__free_unpacked(dm, NULL);
            }
        }
        size_t ol = strlen(ev->operator_id), gl = strlen(gw), ml = protobuf_c_message_get_packed_size(&mp->base);
        uint8_t *buf = sr_malloc(ol + gl + 2 + ml);
        if (!buf) return SR_ENOMEM;
        memcpy(buf, ev->operator_id, ol + 1);
        memcpy(buf + ol + 1, gw, gl + 1);
        protobuf_c_message_pack(&mp->base, buf + ol + gl + 2);
        rc = put(t, DB(e, SR_DB_POINTINFO), pb, 4, buf, ol + gl + 2 + ml);
        sr_free(buf);
        if (rc) return rc;
    }
    return put_packed(e, t, SR_DB_MASTERS, k, kl, &mp->base);
}

static int apply_master_delete(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__MasterDelete *md,
                               sr_result *r, int validate)
{
    uint8_t k[300];
    char kind[2] = {(char)('0' + md->kind), 0};
    size_t kl = mkkey(k, sizeof k, ev->operator_id, kind, md->id);
    MDB_val v;
    if (!kl || get(t, DB(e, SR_DB_MASTERS), k, kl, &v)) {
        if (validate) return refuse(r, SR_ENOTFOUND, "master %s does not exist", md->id);
        return SR_OK;
    }
    if (md->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
        uint8_t pk[300];
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, md->id, NULL);
        MDB_val pv;
        int rc = get(t, DB(e, SR_DB_POINTS), pk, pkl, &pv);
        if (rc == SR_OK && pv.mv_size == 4) {
            /* deactivated, not forgotten: remember its number so that listing
             * it again brings its history back (apply_master_put) */
            uint8_t rk[300], nb[4];
            size_t rkl = mkkey(rk, sizeof rk, "retired", ev->operator_id, md->id);
            memcpy(nb, pv.mv_data, 4);
            if (rkl && (rc = put(t, DB(e, SR_DB_META), rk, rkl, nb, 4))) return rc;
        }
        rc = del(t, DB(e, SR_DB_POINTS), pk, pkl);
        if (rc) return rc;
        /* pointinfo and stored values stay: the point number is never given
         * to another data point, and history remains readable by replay */
    }
    return del(t, DB(e, SR_DB_MASTERS), k, kl);
}

static int apply_doc(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    int is_put = ev->body_case == SUIRO__V1__EVENT__BODY_DOC_PUT;
    const char *coll = is_put ? ev->doc_put->collection : ev->doc_delete->collection;
    const char *id = is_put ? ev->doc_put->doc_id : ev->doc_delete->doc_id;
    if (validate && (!coll[0] || !id[0] || strlen(coll) > 128 || strlen(id) > 256))
        return refuse(r, SR_EINVAL, "document: collection and id are required (at most 128 and 256 bytes)");
    size_t kl = mkkey(k, sizeof k, ev->operator_id, coll, id);
    MDB_val v;
    uint64_t cur = 0;
    int exists = get(t, DB(e, SR_DB_DOCS), k, kl, &v) == SR_OK && v.mv_size >= 8;
    if (exists) cur = sr_get_le64(v.mv_data);
    if (is_put) {
        Suiro__V1__DocumentPut *d = ev->doc_put;
        if (validate) {
            if (d->revision && d->revision != cur)
                return refuse(r, SR_ECONFLICT, "document %s/%s: revision is %" PRIu64 ", not %" PRIu64, coll, id, cur,
                              d->revision);
            d->revision = cur + 1;
        }
        r->revision = d->revision;
        uint8_t *b = sr_malloc(8 + d->json.len);
        if (!b) return SR_ENOMEM;
        sr_put_le64(b, d->revision);
        if (d->json.len) memcpy(b + 8, d->json.data, d->json.len);
        int rc = put(t, DB(e, SR_DB_DOCS), k, kl, b, 8 + d->json.len);
        sr_free(b);
        return rc;
    }
    Suiro__V1__DocumentDelete *d = ev->doc_delete;
    if (validate) {
        if (!exists) return refuse(r, SR_ENOTFOUND, "document %s/%s does not exist", coll, id);
        if (d->revision && d->revision != cur)
            return refuse(r, SR_ECONFLICT, "document %s/%s: revision is %" PRIu64 ", not %" PRIu64, coll, id, cur,
                          d->revision);
        d->revision = cur;
    }
    return del(t, DB(e, SR_DB_DOCS), k, kl);
}

static int apply_keyed(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_FILE_PUT:
        if (validate && (!ev->file_put->path[0] || ev->file_put->sha256.len != 32))
            return refuse(r, SR_EINVAL, "file: path and a 32-byte sha256 are required");
        kl = mkkey(k, sizeof k, ev->operator_id, ev->file_put->path, NULL);
        if (!kl) return refuse(r, SR_EINVAL, "file path too long");
        return put_packed(e, t, SR_DB_FILES, k, kl, &ev->file_put->base);
    case SUIRO__V1__EVENT__BODY_FILE_DELETE: {
        kl = mkkey(k, sizeof k, ev->operator_id, ev->file_delete->path, NULL);
        MDB_val v;
        if (validate && (!kl || get(t, DB(e, SR_DB_FILES), k, kl, &v)))
            return refuse(r, SR_ENOTFOUND, "file %s does not exist", ev->file_delete->path);
        return kl ? del(t, DB(e, SR_DB_FILES), k, kl) : SR_OK;
    }
    case SUIRO__V1__EVENT__BODY_REGISTRY_PUT: {
        char kind[2] = {(char)('0' + ev->registry_put->kind), 0};
        if (validate && (!ev->registry_put->id[0] || ev->registry_put->kind < 1 || ev->registry_put->kind > 5))
            return refuse(r, SR_EINVAL, "registry: kind and id are required");
        kl = mkkey(k, sizeof k, ev->operator_id, kind, ev->registry_put->id);
        if (!kl) return refuse(r, SR_EINVAL, "registry id too long");
        if (validate && !ev->registry_put->secret_hash.len) {
            /* empty secret: keep the stored one */
            MDB_val v;
            if (get(t, DB(e, SR_DB_REGISTRY), k, kl, &v) == SR_OK) {
                Suiro__V1__RegistryPut *old = suiro__v1__registry_put__unpack(NULL, v.mv_size, v.mv_data);
                if (old && old->secret_hash.len) {
                    uint8_t *cp = sr_arena_alloc(&e->ev.a, old->secret_hash.len); /* dies with the group's events */
                    if (cp) {
                        memcpy(cp, old->secret_hash.data, old->secret_hash.len);
                        ev->registry_put->secret_hash.data = cp;
                        ev->registry_put->secret_hash.len = old->secret_hash.len;
                    }
                }
                if (old) suiro__v1__registry_put__free_unpacked(old, NULL);
            }
        }
        return put_packed(e, t, SR_DB_REGISTRY, k, kl, &ev->registry_put->base);
    }
    case SUIRO__V1__EVENT__BODY_REGISTRY_DELETE: {
        char kind[2] = {(char)('0' + ev->registry_delete->kind), 0};
        kl = mkkey(k, sizeof k, ev->operator_id, kind, ev->registry_delete->id);
        return kl ? del(t, DB(e, SR_DB_REGISTRY), k, kl) : SR_OK;
    }
    case SUIRO__V1__EVENT__BODY_REQUEST_CREATED:
        /* op \0 request \0 gateway ("" for the app-level request) \0 'c' */
        kl = rkey(k, sizeof k, ev->operator_id, ev->request_created->request_id, ev->request_created->gateway_id, 'c');
        if (validate && (!kl || !ev->request_created->request_id[0]))
            return refuse(r, SR_EINVAL, "request id required");
        return kl ? put_packed(e, t, SR_DB_REQUESTS, k, kl, &ev->request_created->base) : SR_OK;
    case SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION: {
        /* the latest state, beside the creation record: ... \0 's' */
        const Suiro__V1__RequestTransition *rt = ev->request_transition;
        kl = rkey(k, sizeof k, ev->operator_id, rt->request_id, rt->gateway_id, 's');
        if (validate && (!kl || !rt->request_id[0])) return refuse(r, SR_EINVAL, "request id required");
        return kl ? put_packed(e, t, SR_DB_REQUESTS, k, kl, &rt->base) : SR_OK;
    }
    case SUIRO__V1__EVENT__BODY_MONITOR:
        kl = mkkey(k, sizeof k, ev->operator_id, ev->monitor->monitor_id, NULL);
        if (validate && (!kl || !ev->monitor->monitor_id[0])) return refuse(r, SR_EINVAL, "monitor id required");
        return put_packed(e, t, SR_DB_MONITORS, k, kl, &ev->monitor->base);
    default:
        return SR_OK; /* sessions, auth, users, keys, alarms: the log is their store */
    }
}

/* Apply everything but the series part of an event. validate: writer path
 * (checks, fills writer-decided fields); !validate: replay. */
static int apply_nonseries(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_MEASUREMENTS:
        return validate ? check_measurements(e, t, ev, r) : SR_OK;
    case SUIRO__V1__EVENT__BODY_MASTER_PUT:
        e->masters_dirty = 1;
        return apply_master_put(e, t, ev, ev->master_put, r, validate);
    case SUIRO__V1__EVENT__BODY_MASTER_DELETE:
        e->masters_dirty = 1;
        return apply_master_delete(e, t, ev, ev->master_delete, r, validate);
    case SUIRO__V1__EVENT__BODY_DOC_PUT:
    case SUIRO__V1__EVENT__BODY_DOC_DELETE:
        return apply_doc(e, t, ev, r, validate);
    case SUIRO__V1__EVENT__BODY__NOT_SET:
        return validate ? refuse(r, SR_EINVAL, "event has no body") : SR_OK;
    default:
        return apply_keyed(e, t, ev, r, validate);
    }
}

/*
 * Message ids (SR_DB_MSGIDS, index layout 3): under the key op \0 seq_hi,
 * where seq_hi is the high 32 bits of the event's seq (big-endian; one key
 * per 2^32 events), one 12-byte duplicate per stored event that has a
 * message id: the first 8 bytes of SHA-256(op \0 actor \0 id), then the low
 * 32 bits of the seq, both big-endian, so the events of one hash sort
 * together by seq. A hash only names candidates: msgid_find reads each
 * candidate event back (from the group being written, or the log) and
 * compares its ids, so a collision costs a read and can never make a
 * distinct message a duplicate.
 */
enum { MSGID_ITEM = 12 };

static int msgid_item(const sr_engine *e, const Event *ev, uint64_t seq, uint8_t item[MSGID_ITEM])
{
    uint8_t k[600], d[SR_HASH_LEN];
    size_t kl = mkkey(k, sizeof k, ev->operator_id, ev->actor, ev->message_id);
    if (!kl) return SR_EINVAL;
    sr_sha256(k, kl, d);
    uint64_t h = get_be64(d);
    unsigned bits = e->o.test_msgid_hash_bits;
    if (bits && bits < 64) h &= (UINT64_C(1) << bits) - 1;
    be64(item, h);
    be32(item + 8, (uint32_t)seq);
    return SR_OK;
}

/* the key: op \0 (never empty), then seq_hi (4 bytes BE) */
static size_t msgid_op_key(const Event *ev, uint64_t seq, uint8_t *k, size_t cap)
{
    size_t n = strlen(ev->operator_id) + 1;
    if (n + 4 > cap) return 0;
    memcpy(k, ev->operator_id, n);
    be32(k + n, (uint32_t)(seq >> 32));
    return n + 4;
}

/* ------------------------------------------------------------------------ */
/* Series apply (pass 2)                                                     */

static void sample_encode_latest(const hsample *s, sr_vtype t, sr_buf *b)
{
    uint8_t x[18];
    sr_put_le64(x, (uint64_t)s->ts);
    x[8] = s->q;
    x[9] = (uint8_t)t;
    b->len = 0;
    if (t == SR_VT_STRING) {
        if (sr_buf_append(b, x, 10) == SR_OK) (void)!sr_buf_append(b, s->v.s.p, s->v.s.n);
        return;
    }
    uint64_t bits;
    if (t == SR_VT_NUMBER) memcpy(&bits, &s->v.f, 8);
    else if (t == SR_VT_INTEGER) bits = (uint64_t)s->v.i;
    else bits = (uint64_t)s->v.b;
    sr_put_le64(x + 10, bits);
    (void)!sr_buf_append(b, x, 18);
}

static int latest_decode(const void *p, size_t n, sr_sample *s, sr_vtype *t)
{
    const uint8_t *x = p;
    if (n < 10) return SR_ECORRUPT;
    s->ts = (int64_t)sr_get_le64(x);
    s->quality = x[8];
    *t = (sr_vtype)x[9];
    if (*t == SR_VT_STRING) {
        s->v.str.s = (const char *)x + 10;
        s->v.str.slen = (uint32_t)(n - 10);
        return SR_OK;
    }
    if (n != 18) return SR_ECORRUPT;
    uint64_t bits = sr_get_le64(x + 10);
    if (*t == SR_VT_NUMBER) memcpy(&s->v.f, &bits, 8);
    else if (*t == SR_VT_INTEGER) s->v.i = (int64_t)bits;
    else s->v.b = (int)bits;
    return SR_OK;
}

static void hs_to_sample(const hsample *h, sr_vtype t, sr_sample *s)
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

static int heads_db_put(sr_engine *e, MDB_txn *t, head *h)
{
    uint8_t k[4], v[17];
    be32(k, h->point);
    sr_put_le64(v, h->first_seq);
    sr_put_le64(v + 8, (uint64_t)h->flushed_max);
    v[16] = (uint8_t)h->has_flushed;
    return put(t, DB(e, SR_DB_HEADS), k, 4, v, 17);
}

/* Merge one run of late samples (sorted) into the chunk at key `ck` (or a
 * new chunk when has_ck is 0). */
static int merge_into(sr_engine *e, MDB_txn *t, head *h, const uint8_t *ck, int has_ck, const sr_sample *s, size_t n)
{
    int rc;
    MDB_val v = {0, NULL};
    sr_buf out;
    sr_buf_init(&out);
    if (has_ck && (rc = get(t, DB(e, SR_DB_SERIES), ck, 12, &v))) return rc;
    size_t nch = 0;
    if ((rc = sr_chunk_merge_balanced(h->type, v.mv_data, v.mv_size, s, n, e->o.head_max, &out, &nch))) goto done;
    if (has_ck && (rc = del(t, DB(e, SR_DB_SERIES), ck, 12))) goto done;
    size_t pos = 0;
    for (size_t i = 0; i < nch; i++) {
        uint32_t len = sr_get_le32(out.data + pos);
        sr_chunk_info info;
        if ((rc = sr_chunk_info_get(out.data + pos + 4, len, &info))) goto done;
        uint8_t nk[12];
        be32(nk, h->point);
        be64(nk + 4, ts_key(info.first_ts));
        if ((rc = put(t, DB(e, SR_DB_SERIES), nk, 12, out.data + pos + 4, len))) goto done;
        pos += 4 + len;
    }
done:
    sr_buf_release(&out);
    return rc;
}

/* Merge late samples into the stored chunks that cover them. A sample
 * belongs to the chunk with the greatest first timestamp <= its own (or the
 * point's first chunk if it is older than all): so chunks never overlap. */
static int merge_late(sr_engine *e, MDB_txn *t, head *h, sr_sample *s, size_t n)
{
    int rc = SR_OK;
    /* stable sort by time: equal timestamps keep their order (later wins) */
    for (size_t i = 1; i < n; i++) {
        sr_sample x = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].ts > x.ts) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = x;
    }
    size_t i = 0;
    while (i < n && !rc) {
        MDB_cursor *c = NULL;
        if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c)))) break;
        uint8_t k[12], ck[12], nk[12];
        be32(k, h->point);
        be64(k + 4, ts_key(s[i].ts));
        MDB_val K = {12, k}, V;
        int has_ck = 0, has_next = 0;
        int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        int exact = r == 0 && K.mv_size == 12 && !memcmp(K.mv_data, k, 12);
        if (r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point && !exact) {
            has_next = 1; /* the chunk after ts */
            memcpy(nk, K.mv_data, 12);
        }
        if (exact) {
            has_ck = 1;
            memcpy(ck, k, 12);
            int r2 = mdb_cursor_get(c, &K, &V, MDB_NEXT);
            if (r2 == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point) {
                has_next = 1;
                memcpy(nk, K.mv_data, 12);
            }
        } else {
            int r2 = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
            if (r2 == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point) {
                has_ck = 1;
                memcpy(ck, K.mv_data, 12);
            } else if (has_next) {
                /* older than every chunk: goes into the first one */
                has_ck = 1;
                memcpy(ck, nk, 12);
                has_next = 0;
                MDB_val K2 = {12, ck};
                if (mdb_cursor_get(c, &K2, &V, MDB_SET_KEY) == 0 && mdb_cursor_get(c, &K2, &V, MDB_NEXT) == 0 &&
                    K2.mv_size == 12 && get_be32(K2.mv_data) == h->point) {
                    has_next = 1;
                    memcpy(nk, K2.mv_data, 12);
                }
            }
        }
        mdb_cursor_close(c);
        /* the run: samples below the next chunk's start */
        size_t j = i;
        uint64_t lim = has_next ? get_be64(nk + 4) : UINT64_MAX;
        while (j < n && (!has_next || ts_key(s[j].ts) < lim)) j++;
        if (j == i) j = i + 1;
        rc = merge_into(e, t, h, ck, has_ck, s + i, j - i);
        i = j;
    }
    return rc;
}

enum { LATE_MAX = 4096 }; /* late samples a head keeps before it merges them anyway */

/* Insert into a sorted sample list, equal ts replaced (later wins). Caller
 * holds the stripe. */
static int hs_insert(hsample **vp, size_t *np, size_t *capp, sr_vtype type, const sr_sample *s, uint64_t seq)
{
    hsample *v = *vp;
    size_t n = *np, lo = 0, hi = n;
    if (n && v[n - 1].ts < s->ts) lo = n;
    else
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (v[mid].ts < s->ts) lo = mid + 1;
            else hi = mid;
        }
    hsample x = {.ts = s->ts, .seq = seq, .q = s->quality};
    if (type == SR_VT_STRING) {
        x.v.s.p = sr_malloc(s->v.str.slen + 1);
        if (!x.v.s.p) return SR_ENOMEM;
        memcpy(x.v.s.p, s->v.str.s, s->v.str.slen);
        x.v.s.p[s->v.str.slen] = 0;
        x.v.s.n = s->v.str.slen;
    } else if (type == SR_VT_NUMBER) x.v.f = s->v.f;
    else if (type == SR_VT_INTEGER) x.v.i = s->v.i;
    else x.v.b = s->v.b;
    if (lo < n && v[lo].ts == s->ts) {
        hs_free_strings(&v[lo], 1, type);
        v[lo] = x;
        return SR_OK;
    }
    if (n + 1 > *capp && sr_array_reserve(vp, capp, n + 1, sizeof *v)) {
        hs_free_strings(&x, 1, type);
        return SR_ENOMEM;
    }
    v = *vp;
    if (lo < n) memmove(v + lo + 1, v + lo, (n - lo) * sizeof *v); /* in order: an append */
    v[lo] = x;
    *np = n + 1;
    return SR_OK;
}

/* Merge the head's late samples into the stored chunks (one rewrite per
 * chunk they touch); the batch stays visible to older readers (invariant 7). */
static int late_merge(sr_engine *e, MDB_txn *t, head *h, uint64_t seq)
{
    if (!h->nlate) return SR_OK;
    sr_sample *s = sr_malloc(h->nlate * sizeof *s);
    if (!s) return SR_ENOMEM;
    for (size_t i = 0; i < h->nlate; i++) hs_to_sample(&h->late[i], h->type, &s[i]);
    int rc = merge_late(e, t, h, s, h->nlate);
    sr_free(s);
    if (rc) return rc;
    pthread_mutex_lock(stripe_of(e, h->point));
    hs_free_strings(h->old_late, h->nold_late, h->type);
    sr_free(h->old_late);
    h->old_late = h->late;
    h->nold_late = h->nlate;
    h->late_prev_seq = h->old_late_seq;
    h->old_late_seq = seq;
    h->late = NULL;
    h->nlate = h->caplate = 0;
    pthread_mutex_unlock(stripe_of(e, h->point));
    return SR_OK;
}

/* Write the head as chunk(s); keep it as the previous generation for
 * readers whose snapshot predates this commit (invariant 5). The late
 * samples are merged first (invariant 7). */
static int head_flush(sr_engine *e, MDB_txn *t, head *h, uint64_t seq)
{
    int rc = late_merge(e, t, h, seq);
    if (rc) return rc;
    if (!h->n) { /* only late samples were waiting */
        h->first_seq = seq + 1;
        return heads_db_put(e, t, h);
    }
    sr_chunk_enc *enc = NULL;
    sr_buf out;
    sr_buf_init(&out);
    if ((rc = sr_chunk_enc_create(h->type, &enc))) return rc;
    if ((rc = sr_chunk_enc_expect(enc, h->n))) goto done;
    for (size_t i = 0; i < h->n; i++) {
        sr_sample s;
        hs_to_sample(&h->v[i], h->type, &s);
        if ((rc = sr_chunk_enc_add(enc, &s))) goto done;
    }
    if ((rc = sr_chunk_enc_finish(enc, &out))) goto done;
    uint8_t k[12];
    be32(k, h->point);
    be64(k + 4, ts_key(h->v[0].ts));
    if ((rc = put(t, DB(e, SR_DB_SERIES), k, 12, out.data, out.len))) goto done;
    pthread_mutex_lock(stripe_of(e, h->point));
    hs_free_strings(h->old, h->nold, h->type);
    /* the generation before goes out of sight now (the stripe is held): its
     * array becomes the new head, so a steady head never grows again */
    hsample *reuse = h->old;
    size_t reuse_cap = h->capold;
    h->old = h->v;
    h->nold = h->n;
    h->capold = h->cap;
    h->prev_flush_seq = h->old_seq;
    h->old_seq = seq;
    h->flushed_max = h->v[h->n - 1].ts;
    h->has_flushed = 1;
    h->v = reuse;
    h->n = 0;
    h->cap = reuse ? reuse_cap : 0;
    h->first_seq = seq + 1;
    h->gen++;
    pthread_mutex_unlock(stripe_of(e, h->point));
    atomic_fetch_add(&e->st_flushes, 1);
    rc = heads_db_put(e, t, h);
done:
    sr_chunk_enc_destroy(enc);
    sr_buf_release(&out);
    return rc;
}

/* Insert into the head, sorted, equal ts replaced. Caller holds the stripe. */
static int head_insert(head *h, const sr_sample *s, uint64_t seq)
{
    return hs_insert(&h->v, &h->n, &h->cap, h->type, s, seq);
}

/*
 * Apply one PointValues. heads_only (restart, events <= W): rebuild the head
 * from head-bound samples only; everything else is already in the index.
 */
/* When a head is flushed: at head_max samples, except the first time, when
 * each point waits for a share of head_max of its own (three quarters to all,
 * from a hash of the point). Points fed at the same rate would otherwise fill
 * their heads in lockstep and flush all together in one group, a commit of
 * every point's chunk at once (the PUBACK p99 of a paced load was that
 * group); staggered once, they stay staggered. A function of the point and
 * its persisted has_flushed only, so a rebuild and a restart flush at the
 * same samples as the live writer did. */
static uint32_t flush_at(const sr_engine *e, const head *h)
{
    uint32_t hm = e->o.head_max;
    if (h->has_flushed || hm < 4) return hm;
    uint32_t x = h->point; /* a 32-bit finaliser: consecutive points spread */
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return hm - hm / 4 + x % (hm / 4); /* [3/4, 1) of head_max: chunks stay near full */
}

static int apply_pv(sr_engine *e, MDB_txn *t, const PointValues *pv, uint64_t seq, int heads_only)
{
    int rc = SR_OK;
    sr_vtype type = 0;
    long n = sr_pv_count(pv, &type);
    if (n <= 0) return SR_OK; /* validated at write time; a bad replayed one is skipped */
    head *h = head_get(e, pv->point, type);
    if (!h) return SR_ENOMEM;
    if (heads_only && seq < h->first_seq) return SR_OK;
    int fresh = h->n == 0 && h->first_seq == 0;
    if (fresh) {
        h->first_seq = seq;
        if (!heads_only && (rc = heads_db_put(e, t, h))) return rc;
    }
    sr_pv_iter it;
    sr_pv_iter_init(&it, pv, (size_t)n);
    hsample best = {.ts = INT64_MIN};
    int have_best = 0;
    sr_sample bests = {0};
    /* one hold of the stripe for the batch (readers wait at most for its
     * inserts, not once per sample) */
    pthread_mutex_t *mu = stripe_of(e, h->point);
    pthread_mutex_lock(mu);
    for (long i = 0; i < n; i++) {
        sr_sample s;
        if (sr_pv_iter_next(&it, &s)) continue;
        /* heads hold (flushed_max, +inf); older samples belong to chunks */
        int is_late = h->has_flushed && s.ts <= h->flushed_max;
        if (is_late) /* kept in the head until its next flush (invariant 7) */
            rc = hs_insert(&h->late, &h->nlate, &h->caplate, h->type, &s, seq);
        else
            rc = head_insert(h, &s, seq);
        if (rc) {
            pthread_mutex_unlock(mu);
            goto done;
        }
        if (!heads_only && s.ts >= best.ts) {
            best.ts = s.ts;
            bests = s;
            have_best = 1;
        }
    }
    pthread_mutex_unlock(mu);
    if (heads_only) goto done;
    if (have_best) {
        uint8_t k[4];
        be32(k, h->point);
        MDB_val v;
        sr_sample cur;
        sr_vtype ct;
        if (get(t, DB(e, SR_DB_LATEST), k, 4, &v) != SR_OK || latest_decode(v.mv_data, v.mv_size, &cur, &ct) ||
            bests.ts >= cur.ts) {
            hsample hs = {.ts = bests.ts, .q = bests.quality};
            if (type == SR_VT_STRING) {
                hs.v.s.p = (char *)bests.v.str.s;
                hs.v.s.n = bests.v.str.slen;
            } else if (type == SR_VT_NUMBER) hs.v.f = bests.v.f;
            else if (type == SR_VT_INTEGER) hs.v.i = bests.v.i;
            else hs.v.b = bests.v.b;
            sr_buf b;
            sr_buf_init(&b);
            sample_encode_latest(&hs, type, &b);
            rc = b.len ? put(t, DB(e, SR_DB_LATEST), k, 4, b.data, b.len) : SR_ENOMEM;
            sr_buf_release(&b);
            if (rc) goto done;
        }
    }
    if (h->n >= flush_at(e, h) || h->nlate >= LATE_MAX) rc = head_flush(e, t, h, seq);
done:
    return rc;
}

static int apply_series(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only)
{
    if (ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS) return SR_OK;
    for (size_t k = 0; k < ev->measurements->n_points; k++) {
        int rc = apply_pv(e, t, ev->measurements->points[k], ev->seq, heads_only);
        if (rc) return rc;
    }
    return SR_OK;
}

static int apply_common(sr_engine *e, MDB_txn *t, const Event *ev)
{
    if (!ev->message_id[0]) return SR_OK;
    uint8_t k[300], item[MSGID_ITEM];
    size_t kl = msgid_op_key(ev, ev->seq, k, sizeof k);
    if (!kl || msgid_item(e, ev, ev->seq, item)) return SR_OK;
    return put(t, DB(e, SR_DB_MSGIDS), k, kl, item, MSGID_ITEM);
}

static int put_watermark(sr_engine *e, MDB_txn *t, uint64_t w)
{
    uint8_t b[8];
    sr_put_le64(b, w);
    return put(t, DB(e, SR_DB_META), "watermark", 9, b, 8);
}

/* ------------------------------------------------------------------------ */
/* The writer                                                                */

static void alert(sr_engine *e, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void alert(sr_engine *e, int error, const char *fmt, ...)
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
static int fs_full(const char *dir)
{
    struct statvfs v;
    if (!dir || statvfs(dir, &v) != 0) return 0;
    return (uint64_t)v.f_bavail * v.f_frsize < (1u << 20);
}

/* A write failed: stop writing (invariant 6) and say so, with what to do. */
static void poison(sr_engine *e, int cause, uint64_t seq)
{
    pthread_mutex_lock(&e->mu);
    e->poisoned = 1;
    e->poison_cause = cause;
    pthread_mutex_unlock(&e->mu);
    if (e->o.no_recover)
        alert(e, 1, "write failed at seq %" PRIu64 ": %s (%s); nothing of it was acknowledged; writes refused until reopened",
              seq, sr_strerror(cause), sr_err_name(cause));
    else
        alert(e, 1, "write failed at seq %" PRIu64 ": %s (%s); nothing of it was acknowledged; writes refused, resuming "
                    "by itself once it works (tried every %u ms): %s",
              seq, sr_strerror(cause), sr_err_name(cause), e->o.recover_ms,
              cause == SR_ENOSPC || fs_full(e->dir) ? "free disk space (the file system is full)" : "check the disk");
}

static void cmd_free(cmd *c)
{
    if (!c) return;
    sr_free(c->bytes);
    sr_free(c->ev);
    sr_free(c);
}

/* Keep the index map at most half full, so that MDB_MAP_FULL cannot hit a
 * group half-way (the heads could not be rolled back). */
static int ensure_room(sr_engine *e)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_env *env = sr_index_env(e->ix);
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    while (used * 2 > info.me_mapsize) {
        int rc = sr_index_grow(e->ix);
        if (rc) return rc;
        mdb_env_info(env, &info);
    }
    return SR_OK;
}

typedef struct accepted {
    Event *ev;
} accepted;

/* *same: the event at seq has ev's operator, actor and message id. seq is
 * in the log, or in this group (acc: its accepted events, from next_seq). */
static int msgid_same(sr_engine *e, const Event *ev, uint64_t seq, accepted *acc, size_t nacc, int *same)
{
    *same = 0;
    if (seq >= e->next_seq) {
        if (seq - e->next_seq >= nacc) return SR_ECORRUPT;
        const Event *o = acc[seq - e->next_seq].ev;
        *same = !strcmp(o->operator_id, ev->operator_id) && !strcmp(o->actor, ev->actor) &&
                !strcmp(o->message_id, ev->message_id);
        return SR_OK;
    }
    int rc = SR_OK;
    if (seq >= sr_log_durable_seq(e->log) && (rc = sr_log_sync(e->log))) return rc; /* sync=interval|none */
    sr_log_iter *it = NULL;
    if ((rc = sr_log_iter_open(e->log, seq, &it))) return rc;
    uint64_t got = 0;
    sr_slice rec;
    while ((rc = sr_log_iter_next(it, &got, &rec)) == SR_OK && got < seq) {}
    if (rc == SR_OK && got == seq) {
        Event *o = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        if (!o) rc = SR_ECORRUPT;
        else {
            *same = !strcmp(o->operator_id, ev->operator_id) && !strcmp(o->actor, ev->actor) &&
                    !strcmp(o->message_id, ev->message_id);
            suiro__v1__event__free_unpacked(o, NULL);
        }
    } else if (rc == SR_OK || rc == SR_DONE) rc = SR_ECORRUPT; /* the index names an event the log lacks */
    sr_log_iter_close(it);
    return rc;
}

/* A stored event with ev's (operator, actor, message id)? *seq: the latest
 * such event (as the key -> seq map of index layout 1 kept it). */
static int msgid_find(sr_engine *e, MDB_txn *t, const Event *ev, accepted *acc, size_t nacc, int *found,
                      uint64_t *seq)
{
    uint8_t k[300], want[MSGID_ITEM];
    size_t kl = msgid_op_key(ev, 0, k, sizeof k);
    *found = 0;
    if (!kl || msgid_item(e, ev, 0, want)) return SR_OK;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_MSGIDS), &c));
    if (rc) return rc;
    /* every seq_hi key of the operator (one per 2^32 events), ascending */
    MDB_val K = {kl, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    while (!rc && r == 0 && K.mv_size == kl && !memcmp(K.mv_data, k, kl - 4)) {
        memcpy(k, K.mv_data, kl);
        uint64_t hi = (uint64_t)get_be32(k + kl - 4) << 32;
        MDB_val V2 = {MSGID_ITEM, want};
        r = mdb_cursor_get(c, &K, &V2, MDB_GET_BOTH_RANGE);
        while (r == 0 && V2.mv_size == MSGID_ITEM && !memcmp(V2.mv_data, want, 8)) {
            uint64_t cand = hi | get_be32((const uint8_t *)V2.mv_data + 8);
            int same;
            if ((rc = msgid_same(e, ev, cand, acc, nacc, &same))) break;
            if (same) { /* keys and items ascend: the last match is the latest */
                *found = 1;
                *seq = cand;
            }
            r = mdb_cursor_get(c, &K, &V2, MDB_NEXT_DUP);
        }
        if (rc) break;
        K = (MDB_val){kl, k};
        r = mdb_cursor_get(c, &K, &V, MDB_SET_KEY);
        if (r == 0) r = mdb_cursor_get(c, &K, &V, MDB_NEXT_NODUP);
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    return rc;
}

/* Protobuf wire reading without unpacking (the submit's operator, the
 * writer's splice check, the replay's heads_needed): a varint, or a field's
 * extent. */
static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* Skip a field of wire type wt; for type 2, body and blen get its bytes. */
static int wire_skip(const uint8_t **p, const uint8_t *end, unsigned wt, const uint8_t **body, size_t *blen)
{
    uint64_t v;
    switch (wt) {
    case 0: return wire_varint(p, end, &v);
    case 1: if (end - *p < 8) return -1; *p += 8; return 0;
    case 5: if (end - *p < 4) return -1; *p += 4; return 0;
    case 2:
        if (wire_varint(p, end, &v) || v > (uint64_t)(end - *p)) return -1;
        if (body) *body = *p, *blen = (size_t)v;
        *p += v;
        return 0;
    default: return -1;
    }
}

/* Can the writer put seq (field 1) and ingest_ms (2) in front of these
 * submitted bytes instead of re-packing the decoded event? Yes when the
 * top-level fields are well formed, in increasing number order and all
 * above 2: then the result decodes to the same event with seq and ingest
 * time set (a later field 1 or 2 would win over ours) and, for bytes
 * protobuf-c wrote (sr_ev_measurements writes the same), is byte for byte
 * what a re-pack gives. */
static int splice_ok(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    uint64_t last = 2, key;
    while (p < end) {
        if (wire_varint(&p, end, &key) || (key >> 3) <= last) return 0;
        last = key >> 3;
        if (wire_skip(&p, end, (unsigned)(key & 7), NULL, NULL)) return 0;
    }
    return 1;
}

static void process_group(sr_engine *e, cmd **cmds, size_t nc)
{
    sr_result *res = sr_calloc(nc, sizeof *res);
    accepted *acc = NULL;
    size_t nacc = 0, capacc = 0;
    sr_buf packed;
    sr_buf_init(&packed);
    sr_slice *recs = NULL;
    size_t nrecs = 0, caprecs = 0;
    MDB_txn *txn = NULL;
    int fatal = SR_OK;
    uint64_t seq = e->next_seq;
    int64_t now = now_ms(e);

    if (!res) {
        fatal = SR_ENOMEM;
        goto finish;
    }
    pthread_mutex_lock(&e->mu);
    int poisoned = e->poisoned;
    pthread_mutex_unlock(&e->mu);
    if (poisoned) {
        fatal = SR_EPOISONED;
        goto finish;
    }
    if ((fatal = ensure_room(e))) goto finish;
    if ((fatal = sr_index_write_begin(e->ix, &txn))) goto finish;

    for (size_t ci = 0; ci < nc; ci++) {
        cmd *c = cmds[ci];
        sr_result *r = &res[ci];
        Event **evs = sr_calloc(c->n, sizeof *evs);
        MDB_txn *child = NULL;
        int rc = evs ? SR_OK : SR_ENOMEM;
        if (!rc) rc = sr_index_err(mdb_txn_begin(sr_index_env(e->ix), txn, 0, &child));
        for (size_t k = 0; !rc && k < c->n; k++) {
            e->ev.oom = 0;
            evs[k] = suiro__v1__event__unpack(&e->ev.pa, c->ev[k].len, c->ev[k].data);
            if (!evs[k] && e->ev.oom) rc = SR_ENOMEM;
            else if (!evs[k]) rc = refuse(r, SR_EINVAL, "event %zu does not decode", k);
            else if (strcmp(evs[k]->operator_id, c->op) != 0)
                rc = refuse(r, SR_EINVAL, "event %zu: operator differs from the command's", k);
        }
        if (!rc && evs[0]->message_id[0]) {
            int found = 0;
            uint64_t dseq = 0;
            rc = msgid_find(e, child, evs[0], acc, nacc, &found, &dseq);
            if (!rc && found) {
                r->duplicate = 1;
                r->seq = dseq;
                rc = 1; /* not an error: skip */
            }
        }
        for (size_t k = 0; !rc && k < c->n; k++) {
            Event *ev = evs[k];
            ev->seq = seq + k;
            ev->ingest_ms = now;
            rc = apply_nonseries(e, child, ev, r, 1);
            if (!rc) rc = apply_common(e, child, ev);
        }
        if (rc) {
            if (child) mdb_txn_abort(child);
            if (rc < 0 && !r->rc) refuse(r, rc, "%s", sr_strerror(rc));
            if (rc == 1) r->rc = SR_OK;
            sr_free(evs); /* the events themselves are in the group's arena */
            continue;
        }
        if ((rc = sr_index_err(mdb_txn_commit(child)))) {
            fatal = rc;
            sr_free(evs);
            goto finish;
        }
        r->seq = seq;
        r->count = (uint32_t)c->n;
        for (size_t k = 0; k < c->n; k++) {
            /* the log record: a measurements event as it came with seq and
             * ingest time put in front (the bytes a re-pack gives, see
             * splice_ok), anything else re-packed */
            int splice = evs[k]->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS && evs[k]->seq && evs[k]->ingest_ms > 0 &&
                         splice_ok(c->ev[k].data, c->ev[k].len);
            size_t n = splice ? 2 + sr_varint_len(evs[k]->seq) + sr_varint_len((uint64_t)evs[k]->ingest_ms) + c->ev[k].len
                              : protobuf_c_message_get_packed_size(&evs[k]->base);
            if (sr_array_reserve(&acc, &capacc, nacc + 1, sizeof *acc) ||
                sr_array_reserve(&recs, &caprecs, nrecs + 1, sizeof *recs) || sr_buf_reserve(&packed, n)) {
                fatal = SR_ENOMEM;
                break;
            }
            if (splice) {
                uint8_t *w = packed.data + packed.len;
                *w++ = 1 << 3; /* seq, varint */
                w = sr_varint_put(w, evs[k]->seq);
                *w++ = 2 << 3; /* ingest_ms, varint */
                w = sr_varint_put(w, (uint64_t)evs[k]->ingest_ms);
                memcpy(w, c->ev[k].data, c->ev[k].len);
            } else
                protobuf_c_message_pack(&evs[k]->base, packed.data + packed.len);
            recs[nrecs++] = (sr_slice){(const void *)(uintptr_t)packed.len, n}; /* offset; fixed below */
            packed.len += n;
            acc[nacc++].ev = evs[k];
            evs[k] = NULL; /* owned by acc now */
        }
        sr_free(evs);
        if (fatal) goto finish;
        seq += c->n;
    }
    /* pass 2: the series */
    for (size_t i = 0; i < nacc; i++)
        if ((fatal = apply_series(e, txn, acc[i].ev, 0))) goto finish;
    if (nrecs) {
        for (size_t i = 0; i < nrecs; i++) recs[i].data = packed.data + (uintptr_t)recs[i].data;
        uint64_t first = 0;
        ++e->test_groups;
        if (e->o.test_fail_append && e->test_groups == e->o.test_fail_append) {
            fatal = SR_ENOSPC; /* tests: as a log append that found no space */
            goto finish;
        }
        if ((fatal = sr_log_append(e->log, recs, nrecs, &first))) goto finish;
        SR_VERIFY(first == e->next_seq);
        if (e->o.test_fail_commit && e->test_groups == e->o.test_fail_commit) {
            fatal = SR_EIO; /* tests: durable in the log, not in the index (§7) */
            goto finish;
        }
        if ((fatal = put_watermark(e, txn, seq - 1))) goto finish;
    }
    fatal = sr_index_commit(e->ix, txn);
    txn = NULL;
    if (fatal) goto finish;
    if (e->masters_dirty) { /* after the commit: a reader never caches older masters under the new gen */
        atomic_fetch_add(&e->masters_gen, 1);
        e->masters_dirty = 0;
    }
    e->next_seq = seq;
    atomic_store(&e->watermark, seq - 1);
    atomic_fetch_add(&e->st_groups, 1);
    atomic_fetch_add(&e->st_events, nrecs);
finish:
    if (txn) sr_index_abort(txn);
    if (fatal && fatal != SR_EPOISONED) poison(e, fatal, e->next_seq);
    sr_arena_reset(&e->ev.a); /* every event of the group */
    sr_free(acc);
    sr_free(recs);
    sr_buf_release(&packed);
    for (size_t ci = 0; ci < nc; ci++) {
        sr_result fr = {0};
        sr_result *r = res ? &res[ci] : &fr;
        if (fatal) {
            memset(r, 0, sizeof *r);
            r->rc = fatal == SR_EPOISONED ? SR_EPOISONED : fatal;
            if (fatal == SR_EPOISONED) /* §7: the writer resumes by itself */
                snprintf(r->msg, sizeof r->msg, "writes are stopped after a failed write (resuming once it works)");
            else
                snprintf(r->msg, sizeof r->msg, "write failed: %s", sr_strerror(fatal));
        }
        if (cmds[ci]->cb) cmds[ci]->cb(cmds[ci]->ctx, r);
        atomic_fetch_add(&e->st_commands, 1);
        cmd_free(cmds[ci]);
    }
    sr_free(res);
}

static int recover(sr_engine *e);

static void *writer_main(void *arg)
{
    sr_engine *e = arg;
    cmd **group = e->group;
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&e->mu);
        /* poisoned (§7): commands still queued get SR_EPOISONED; then, every
         * recover_ms until it works, try to reopen the log and resume */
        while (e->poisoned && !e->depth && !e->stopping && !e->o.no_recover) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)e->o.recover_ms * 1000000u;
            until.tv_sec += (time_t)(ns / 1000000000u);
            until.tv_nsec = (long)(ns % 1000000000u);
            int tr = pthread_cond_timedwait(&e->cv_work, &e->mu, &until);
            if (tr == 0 || e->stopping || e->depth) continue; /* woken: look again */
            pthread_mutex_unlock(&e->mu);
            (void)recover(e);
            pthread_mutex_lock(&e->mu);
        }
        while (!e->depth && !e->stopping) pthread_cond_wait(&e->cv_work, &e->mu);
        if (!e->depth && e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* round-robin over operators: one command from each in turn */
        int took = 1;
        while (n < e->o.group_max && took) {
            took = 0;
            for (size_t k = 0; k < e->nq && n < e->o.group_max; k++) {
                opq *q = &e->q[(e->rr + k) % e->nq];
                if (!q->head) continue;
                cmd *c = q->head;
                q->head = c->next;
                if (!q->head) q->tail = NULL;
                q->depth--;
                e->depth--;
                group[n++] = c;
                took = 1;
            }
        }
        e->rr++;
        pthread_mutex_unlock(&e->mu);
        if (e->o.test_group_delay_ms) {
            struct timespec d = {e->o.test_group_delay_ms / 1000, (long)(e->o.test_group_delay_ms % 1000) * 1000000};
            nanosleep(&d, NULL);
        }
        process_group(e, group, n);
    }
    return NULL;
}

/* Find field 3 (operator_id) of a serialized Event by walking the wire
 * format, without decoding the rest; the last occurrence wins, as in a full
 * decode. 0, or -1 if the bytes are not a well-formed message. */
static int wire_operator(const uint8_t *p, size_t n, const uint8_t **op, size_t *oplen)
{
    const uint8_t *end = p + n;
    *op = NULL;
    *oplen = 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *body = NULL;
        size_t blen = 0;
        if (wire_varint(&p, end, &key) || (key >> 3) == 0) return -1;
        if (wire_skip(&p, end, (unsigned)(key & 7), &body, &blen)) return -1;
        if ((key >> 3) == 3 && (key & 7) == 2) {
            *op = body;
            *oplen = blen;
        }
    }
    return 0;
}

int sr_engine_submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx)
{
    if (e && e->nospace_ro) return SR_ENOSPC; /* read-only for lack of space (§7) */
    if (!e || !events || !n || e->o.readonly || e->o.log_readonly) return SR_EINVAL;
    /* copy, and find the operator (every event of a command has the same) */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += events[i].len;
    cmd *c = sr_calloc(1, sizeof *c);
    if (!c) return SR_ENOMEM;
    c->bytes = sr_malloc(total ? total : 1);
    c->ev = sr_calloc(n, sizeof *c->ev);
    if (!c->bytes || !c->ev) {
        cmd_free(c);
        return SR_ENOMEM;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(c->bytes + pos, events[i].data, events[i].len);
        c->ev[i] = (sr_slice){c->bytes + pos, events[i].len};
        pos += events[i].len;
        /* only the operator is needed here (the queue is per operator); the
         * writer decodes the whole event and refuses what does not decode */
        const uint8_t *op = NULL;
        size_t oplen = 0;
        if (wire_operator(events[i].data, events[i].len, &op, &oplen) || oplen >= sizeof c->op ||
            (i > 0 && (strlen(c->op) != oplen || memcmp(c->op, op, oplen)))) {
            cmd_free(c);
            return SR_EINVAL;
        }
        if (i == 0) {
            if (oplen) memcpy(c->op, op, oplen);
            c->op[oplen] = 0;
        }
    }
    c->n = n;
    c->cb = cb;
    c->ctx = ctx;
    pthread_mutex_lock(&e->mu);
    int rc = e->poisoned ? SR_EPOISONED : e->stopping ? SR_ECLOSED : SR_OK;
    opq *q = NULL;
    for (size_t k = 0; !rc && k < e->nq; k++)
        if (!strcmp(e->q[k].op, c->op)) q = &e->q[k];
    if (!rc && !q) {
        if (e->nq == e->capq) {
            size_t cap = e->capq ? e->capq * 2 : 8;
            opq *nqs = sr_realloc(e->q, cap * sizeof *nqs);
            if (!nqs) rc = SR_ENOMEM;
            else {
                e->q = nqs;
                e->capq = cap;
            }
        }
        if (!rc) {
            q = &e->q[e->nq++];
            memset(q, 0, sizeof *q);
            snprintf(q->op, sizeof q->op, "%s", c->op);
        }
    }
    if (!rc && (e->depth >= e->o.queue_max || q->depth >= e->o.queue_max_per_op)) rc = SR_EFULL;
    if (!rc) {
        if (q->tail) q->tail->next = c;
        else q->head = c;
        q->tail = c;
        q->depth++;
        e->depth++;
        pthread_cond_signal(&e->cv_work);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) cmd_free(c);
    return rc;
}

typedef struct waitbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    sr_result res;
} waitbox;

static void wait_cb(void *ctx, const sr_result *r)
{
    waitbox *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->res = *r;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int sr_engine_submit_wait(sr_engine *e, const sr_slice *events, size_t n, sr_result *res)
{
    waitbox w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = sr_engine_submit(e, events, n, wait_cb, &w);
    if (!rc) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        *res = w.res;
        rc = w.res.rc;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
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

static int load_heads(sr_engine *e, uint64_t *min_first)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_HEADS), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (r == 0) {
        if (k.mv_size != 4 || v.mv_size != 17) {
            rc = SR_ECORRUPT;
            break;
        }
        uint32_t p = get_be32(k.mv_data);
        pointinfo pi = {0};
        sr_vtype type = SR_VT_NUMBER;
        if (pointinfo_get(e, t, p, &pi) == SR_OK) {
            type = (sr_vtype)pi.m->type;
            suiro__v1__master_put__free_unpacked(pi.m, NULL);
        }
        head *h = head_get(e, p, type);
        if (!h) {
            rc = SR_ENOMEM;
            break;
        }
        h->first_seq = sr_get_le64(v.mv_data);
        h->flushed_max = (int64_t)sr_get_le64((uint8_t *)v.mv_data + 8);
        h->has_flushed = ((uint8_t *)v.mv_data)[16];
        if (h->first_seq < *min_first) *min_first = h->first_seq;
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Replay at open: events unpacked into an arena                            */

/* A restart replays tens of thousands of events (the heads' samples); each
 * is unpacked into one pb_arena, reset after its apply (apply copies what it
 * keeps, as it must for the writer, whose events die with their group). */

/*
 * Whether a heads-only replay (an event at or below W) needs to unpack this
 * record, read from its wire form without unpacking: not when the event is
 * not measurements (apply_series ignores it), nor when every point it names
 * already has a head that starts after it (apply_pv returns at once for
 * those). 1 (unpack it) whenever in doubt: a record it cannot read, a point
 * without a head yet, an event with two bodies. A skipped record is not
 * unpacked, so a malformed one at or below W (its block passed its checksum
 * and tag) is found by `suiro verify` / rebuild, not by the restart.
 */
static int heads_needed(sr_engine *e, const uint8_t *p, size_t n, uint64_t seq)
{
    const uint8_t *end = p + n;
    int meas = 0, other = 0;
    const uint8_t *scan = p;
    while (scan < end) { /* the body: field 16 (measurements) or another of the oneof (17..32) */
        uint64_t key;
        if (wire_varint(&scan, end, &key)) return 1;
        uint64_t f = key >> 3;
        if (wire_skip(&scan, end, (unsigned)(key & 7), NULL, NULL)) return 1;
        if (f == 16) meas = 1;
        else if (f >= 17 && f <= 32) other = 1;
    }
    if (meas == other) return 1; /* both (the last wins) or no body: let apply decide */
    if (other) return 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *m = NULL;
        size_t ml = 0;
        if (wire_varint(&p, end, &key) || wire_skip(&p, end, (unsigned)(key & 7), &m, &ml)) return 1;
        if (key >> 3 != 16) continue;
        if ((key & 7) != 2) return 1; /* not a message: unpack reports it */
        for (const uint8_t *q = m, *qe = m + ml; q < qe;) { /* Measurements: points = 1 */
            const uint8_t *pv = NULL;
            size_t pl = 0;
            if (wire_varint(&q, qe, &key) || wire_skip(&q, qe, (unsigned)(key & 7), &pv, &pl)) return 1;
            if (key >> 3 != 1) continue;
            if ((key & 7) != 2) return 1;
            uint64_t point = 0;
            for (const uint8_t *r = pv, *re = pv + pl; r < re;) { /* PointValues: point = 1 (the last wins) */
                uint64_t k2;
                if (wire_varint(&r, re, &k2)) return 1;
                if (k2 >> 3 == 1) {
                    if ((k2 & 7) != 0 || wire_varint(&r, re, &point)) return 1;
                } else if (wire_skip(&r, re, (unsigned)(k2 & 7), NULL, NULL))
                    return 1;
            }
            if (point > UINT32_MAX) return 1;
            head *h = head_find(e, (uint32_t)point);
            if (!h || seq >= h->first_seq) return 1;
        }
    }
    return 0;
}

/* Apply events from the log: (W, end] in full, and [min_first, W] for the
 * heads only (invariant 4). */
static int replay(sr_engine *e, uint64_t w, uint64_t min_first, sr_errinfo *ei)
{
    uint64_t end = sr_log_durable_seq(e->log); /* next seq */
    if (e->o.replay_to && e->o.replay_to + 1 < end) end = e->o.replay_to + 1;
    uint64_t from = min_first < w + 1 ? min_first : w + 1;
    if (from >= end) return SR_OK;
    sr_log_iter *it = NULL;
    MDB_txn *txn = NULL;
    int rc = sr_log_iter_open(e->log, from, &it);
    if (rc) return rc;
    pb_arena ar;
    pb_arena_init(&ar);
    uint64_t seq = 0, last = 0, done = 0, total = end - from, in_txn = 0;
    sr_slice rec;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        if (seq >= end) {
            rc = SR_DONE; /* replay_to reached: stop before this one */
            break;
        }
        last = seq;
        e->ost.replay_events++;
        if (seq <= w && !heads_needed(e, rec.data, rec.len, seq)) {
            e->ost.replay_head_events++;
            e->ost.replay_skipped++;
            if (++done % 65536 == 0 && e->o.progress) e->o.progress(e->o.progress_ctx, done, total);
            continue;
        }
        Event *ev = suiro__v1__event__unpack(&ar.pa, rec.len, rec.data);
        if (!ev || ar.oom) {
            rc = ar.oom ? SR_ENOMEM : SR_ECORRUPT;
            if (ei && !ar.oom) snprintf(ei->msg, sizeof ei->msg, "log record %" PRIu64 " is not a valid event", seq);
            break;
        }
        ev->seq = seq;
        if (seq <= w) {
            e->ost.replay_head_events++;
            rc = apply_series(e, NULL, ev, 1);
        } else if (!e->o.readonly) {
            if (!txn && (rc = ensure_room(e)) == SR_OK) rc = sr_index_write_begin(e->ix, &txn);
            sr_result r = {0};
            if (!rc) rc = apply_nonseries(e, txn, ev, &r, 0);
            if (!rc) rc = apply_common(e, txn, ev);
            if (!rc) rc = apply_series(e, txn, ev, 0);
            if (!rc && ++in_txn >= 4096) {
                if (!(rc = put_watermark(e, txn, seq))) rc = sr_index_commit(e->ix, txn); /* seq is applied */
                txn = NULL;
                in_txn = 0;
            }
        }
        sr_arena_reset(&ar.a); /* the event is gone (its pieces were the arena's) */
        if (rc) break;
        if (++done % 65536 == 0 && e->o.progress) e->o.progress(e->o.progress_ctx, done, total);
    }
    sr_arena_release(&ar.a);
    if (rc == SR_DONE) rc = SR_OK;
    else if (rc && ei && !ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "replay at seq %" PRIu64 ": %s", seq, sr_strerror(rc));
    if (!rc && txn) {
        if (!(rc = put_watermark(e, txn, last))) rc = sr_index_commit(e->ix, txn);
        txn = NULL;
    }
    if (txn) sr_index_abort(txn);
    sr_log_iter_close(it);
    if (!rc && e->o.progress) e->o.progress(e->o.progress_ctx, total, total);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Resuming after a failed write (docs/durability.md section 7)              */

/* Move every head of sh into e (the writer holds all of e's stripes):
 * a point of both swaps its contents; a point only in e is reset empty; a
 * point only in sh moves (pages were made before the stripes were taken).
 * sh gets e's old contents, freed by the caller. */
static void heads_swap(sr_engine *e, sr_engine *sh)
{
    for (size_t d = 0; d < HDIR; d++) {
        head **pe = e->hdir[d], **ps = sh->hdir[d];
        if (!pe) continue; /* then ps is NULL too (made beforehand) */
        for (size_t i = 0; i < HPAGE; i++) {
            head *he = pe[i], *hs = ps ? ps[i] : NULL;
            if (he && hs) {
                head tmp = *he;
                *he = *hs;
                *hs = tmp;
                he->gen = hs->gen + 1;
            } else if (he) {
                hs_free_strings(he->v, he->n, he->type);
                hs_free_strings(he->old, he->nold, he->type);
                hs_free_strings(he->late, he->nlate, he->type);
                hs_free_strings(he->old_late, he->nold_late, he->type);
                sr_free(he->v);
                sr_free(he->old);
                sr_free(he->late);
                sr_free(he->old_late);
                uint32_t p = he->point;
                sr_vtype t = he->type;
                uint64_t g = he->gen + 1;
                memset(he, 0, sizeof *he);
                he->point = p;
                he->type = t;
                he->gen = g;
                he->flushed_max = INT64_MIN;
            } else if (hs) {
                pe[i] = hs;
                ps[i] = NULL;
                atomic_fetch_add(&e->npoints, 1);
            }
        }
    }
}

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
static int recover(sr_engine *e)
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
    rc = load_heads(sh, &min_first);
    if (!rc && w > 0 && min_first <= w) {
        sh->o.replay_to = w; /* heads only: [min_first, W] */
        rc = replay(sh, w, min_first, &ei);
        sh->o.replay_to = 0;
    }
    for (size_t d = 0; !rc && d < HDIR; d++) /* e's pages for every shadow page, before the stripes */
        if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) rc = SR_ENOMEM;
    if (!rc) {
        /* 3. under every stripe: the events the index lacks, then the swap */
        for (int i = 0; i < NSTRIPE; i++) pthread_mutex_lock(&e->stripe[i]);
        int arc = end - 1 > w ? replay(sh, w, UINT64_MAX, &ei) : SR_OK;
        for (size_t d = 0; !arc && d < HDIR; d++) /* pages the apply made */
            if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) arc = SR_ENOMEM;
        if (!arc) heads_swap(e, sh);
        else {
            /* the index may have moved to W'' < end - 1: heads for W'' are
             * the shadow's only if every page could be made; else keep the
             * old ones and stay poisoned (readers filter by seq) */
            int pages = 1;
            for (size_t d = 0; pages && d < HDIR; d++)
                if (sh->hdir[d] && !e->hdir[d] && !(e->hdir[d] = sr_calloc(HPAGE, sizeof *e->hdir[d]))) pages = 0;
            if (pages) heads_swap(e, sh);
        }
        for (int i = NSTRIPE - 1; i >= 0; i--) pthread_mutex_unlock(&e->stripe[i]);
        rc = arc;
    }
    heads_free(sh);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_destroy(&sh->stripe[i]);
    sr_free(sh);
    if (rc) goto fail;
    /* 4. resume */
    atomic_fetch_add(&e->masters_gen, 1); /* the apply may have changed masters */
    e->next_seq = end;
    atomic_store(&e->watermark, end - 1);
    pthread_mutex_lock(&e->mu);
    e->poisoned = 0;
    e->poison_cause = SR_OK;
    pthread_mutex_unlock(&e->mu);
    alert(e, 0, "writing resumed after %s: log reopened, ends at seq %" PRIu64 ", every acknowledged write in it",
          sr_err_name(cause), end - 1);
    return SR_OK;
fail:
    if (rc != cause) { /* once per distinct cause: a full disk retries quietly */
        alert(e, 1, "%s: %s (%s)%s%.120s; retrying every %u ms", what, sr_strerror(rc), sr_err_name(rc),
              ei.msg[0] ? ": " : "", ei.msg, e->o.recover_ms);
        pthread_mutex_lock(&e->mu);
        e->poison_cause = rc;
        pthread_mutex_unlock(&e->mu);
    }
    return rc;
}

static int rm_index_files(const char *ixdir);

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
    sr_index_read_end(e->ix, t);
    if (used && layout == SR_INDEX_LAYOUT) return SR_OK;
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
        notice(e, "index %s has layout %u, this suiro writes layout %u: rebuilding it from the log", ixdir, layout,
               SR_INDEX_LAYOUT);
        sr_index_close(e->ix);
        e->ix = NULL;
        char err[256] = "";
        if ((rc = rm_index_files(ixdir)) ||
            (rc = sr_index_open(ixdir, e->o.map_bytes, 0, &e->ix, err, sizeof err))) {
            snprintf(ei->msg, sizeof ei->msg, "rebuilding index %s: %s", ixdir, err[0] ? err : sr_strerror(rc));
            return rc;
        }
    }
    uint8_t b[4];
    sr_put_le32(b, SR_INDEX_LAYOUT);
    if ((rc = sr_index_write_begin(e->ix, &t))) return rc;
    if ((rc = put(t, DB(e, SR_DB_META), "layout", 6, b, 4))) {
        sr_index_abort(t);
        return rc;
    }
    return sr_index_commit(e->ix, t);
}

static int engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out, sr_errinfo *ei);

int sr_engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out, sr_errinfo *ei)
{
    sr_errinfo local;
    if (!ei) ei = &local;
    int rc = engine_open(dir, opts, out, ei);
    if (!opts || !opts->readonly_on_nospace || opts->readonly || opts->log_readonly) return rc;
    if (rc != SR_ENOSPC && !((rc == SR_EIO || rc == SR_EDB) && fs_full(dir))) return rc; /* LMDB: EIO */
    /* no room to recover or replay: serve reads, refuse writes (§7) */
    char why[sizeof ei->msg];
    snprintf(why, sizeof why, "%s", ei->msg);
    sr_engine_opts o = *opts;
    o.readonly = 1;
    if ((rc = engine_open(dir, &o, out, ei))) return rc;
    sr_engine *e = *out;
    e->nospace_ro = 1;
    e->poison_cause = SR_ENOSPC;
    char *bd = join(dir, "blobs"); /* file downloads are reads too */
    sr_blobs_opts bo = {.key = e->o.key};
    sr_blob_errinfo bei;
    if (bd && sr_blobs_open(bd, &bo, &e->blobs, &bei) != SR_OK) e->blobs = NULL;
    sr_free(bd);
    alert(e, 1, "opened READ-ONLY, no space left on device (%.80s): queries served, writes refused; free disk space "
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
    if (!e->o.recover_ms) e->o.recover_ms = 1000;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->picache_mu, NULL);
    pthread_cond_init(&e->cv_work, NULL);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_init(&e->stripe[i], NULL);
    e->picache = sr_calloc(PICACHE, sizeof *e->picache); /* NULL (no memory): no cache, still correct */
    size_t dl = strlen(dir);
    e->dir = sr_malloc(dl + 1);
    if (!e->dir) {
        rc = SR_ENOMEM;
        goto fail;
    }
    memcpy(e->dir, dir, dl + 1);
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
    if ((rc = sr_index_open(e->o.index_dir ? e->o.index_dir : ixdir, e->o.map_bytes, e->o.readonly, &e->ix, err,
                            sizeof err))) {
        snprintf(ei->msg, sizeof ei->msg, "%s", err);
        goto fail;
    }
    uint64_t floor = e->o.durable_floor;
    {
        MDB_txn *ft;
        if ((rc = sr_index_read_begin(e->ix, &ft))) goto fail;
        uint64_t iw = sr_index_watermark(e->ix, ft);
        sr_index_read_end(e->ix, ft);
        if (iw > floor) floor = iw;
    }
    if (e->o.sync == SR_ENGINE_SYNC_ALWAYS) lo.durable_floor = floor;
    e->lo = lo;
    uint64_t t0 = mono_us();
    if ((rc = sr_log_open(e->logdir, &lo, &e->log, ei))) goto fail;
    uint64_t t1 = mono_us();
    e->ost.log_us = t1 - t0;
    if ((rc = index_layout(e, e->o.index_dir ? e->o.index_dir : ixdir, ei))) goto fail;
    if (!e->o.readonly && !e->o.log_readonly) {
        char *bd = join(dir, "blobs");
        sr_blobs_opts bo = {.key = e->o.key};
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
    if ((rc = load_heads(e, &min_first))) goto fail;
    uint64_t t3 = mono_us();
    e->ost.heads_us = t3 - t2;
    if ((rc = replay(e, w, min_first, ei))) goto fail;
    e->ost.replay_us = mono_us() - t3;
    e->next_seq = end;
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
        if (pthread_create(&e->writer, NULL, writer_main, e) != 0) {
            rc = SR_ENOMEM;
            goto fail;
        }
        e->writer_started = 1;
    }
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
    int lrc = sr_log_close(e->log);
    if (!rc) rc = lrc;
    heads_free(e);
    for (size_t k = 0; k < e->nq; k++) {
        cmd *c = e->q[k].head;
        while (c) {
            cmd *n = c->next;
            cmd_free(c);
            c = n;
        }
    }
    sr_free(e->q);
    sr_free(e->group);
    sr_arena_release(&e->ev.a);
    for (int i = 0; i < NSTRIPE; i++) pthread_mutex_destroy(&e->stripe[i]);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->picache_mu);
    pthread_cond_destroy(&e->cv_work);
    sr_free(e->picache);
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
    if (have && sr_index_open(path, 0, 1, &ix, err, sizeof err) == SR_OK) {
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
    sr_engine_opts o = opts ? *opts : (sr_engine_opts){0};
    o.readonly = 0;
    char *ixdir = o.index_dir ? NULL : join(dir, "index");
    if (!o.index_dir && !ixdir) return SR_ENOMEM;
    {
        /* keep the chunk layout of the index being replaced */
        sr_index *old = NULL;
        char err[256];
        if (sr_index_open(o.index_dir ? o.index_dir : ixdir, 0, 1, &old, err, sizeof err) == SR_OK) {
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
        int lrc = sr_log_open(logdir, &lo, &lg, lei);
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
        if (lrc) {
            sr_free(ixdir);
            return lrc;
        }
    }
    int rc = rm_index_files(o.index_dir ? o.index_dir : ixdir);
    sr_free(ixdir);
    if (rc) return rc;
    sr_engine *e = NULL;
    if ((rc = sr_engine_open(dir, &o, &e, ei))) return rc;
    return sr_engine_close(e);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */

/* (point_info does the lookup, and caches it) */
int sr_engine_point(sr_engine *e, const char *op, const char *data_id, uint32_t *point, sr_vtype *type)
{
    sr_point_info info;
    int rc = sr_engine_point_info(e, op, data_id, &info);
    if (rc) return rc;
    *point = info.point;
    if (type) *type = info.type;
    return SR_OK;
}

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

int sr_engine_point_info(sr_engine *e, const char *op, const char *data_id, sr_point_info *out)
{
    /* the cache: op \0 data_id, tagged with the masters generation */
    char ck[146];
    size_t ol = strlen(op), dl = strlen(data_id), ckl = ol + 1 + dl;
    picache_ent *ce = NULL;
    uint64_t gen = atomic_load(&e->masters_gen) + 1;
    if (e->picache && ckl <= sizeof ck) {
        memcpy(ck, op, ol);
        ck[ol] = 0;
        memcpy(ck + ol + 1, data_id, dl);
        ce = &e->picache[fnv1a(ck, ckl) % PICACHE];
        pthread_mutex_lock(&e->picache_mu);
        int hit = ce->gen == gen && ce->kl == ckl && !memcmp(ce->key, ck, ckl);
        if (hit) *out = ce->info;
        pthread_mutex_unlock(&e->picache_mu);
        if (hit) return SR_OK;
    }
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[300];
    size_t kl = mkkey(k, sizeof k, op, data_id, NULL);
    MDB_val v;
    rc = kl ? get(t, DB(e, SR_DB_POINTS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc && v.mv_size != 4) rc = SR_ECORRUPT;
    if (!rc) {
        pointinfo pi = {0};
        if (!(rc = pointinfo_get(e, t, get_be32(v.mv_data), &pi))) {
            out->point = get_be32(v.mv_data);
            out->type = (sr_vtype)pi.m->type;
            out->kind = (int)pi.m->point_kind;
            out->has_min = pi.m->has_min;
            out->min = pi.m->min;
            out->has_max = pi.m->has_max;
            out->max = pi.m->max;
            snprintf(out->gateway, sizeof out->gateway, "%s", pi.gateway);
            suiro__v1__master_put__free_unpacked(pi.m, NULL);
        }
    }
    sr_index_read_end(e->ix, t);
    if (!rc && ce) {
        pthread_mutex_lock(&e->picache_mu);
        ce->gen = gen; /* read before the lookup: a newer master makes it stale, never wrong */
        memcpy(ce->key, ck, ckl);
        ce->kl = ckl;
        ce->info = *out;
        pthread_mutex_unlock(&e->picache_mu);
    }
    return rc;
}

int sr_engine_latest(sr_engine *e, const uint32_t *points, size_t n, sr_sample *out, int *found, sr_buf *strings)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    /* string offsets first, pointers after (the buffer may move) */
    size_t *soff = NULL;
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t k[4];
        be32(k, points[i]);
        MDB_val v;
        found[i] = 0;
        if (get(t, DB(e, SR_DB_LATEST), k, 4, &v) != SR_OK) continue;
        sr_vtype ty;
        if ((rc = latest_decode(v.mv_data, v.mv_size, &out[i], &ty))) break;
        found[i] = 1;
        if (ty == SR_VT_STRING) {
            if (!strings) {
                rc = SR_EINVAL;
                break;
            }
            if (!soff && !(soff = sr_calloc(n, sizeof *soff))) {
                rc = SR_ENOMEM;
                break;
            }
            soff[i] = strings->len + 1;
            if ((rc = sr_buf_append(strings, out[i].v.str.s, out[i].v.str.slen))) break;
            if ((rc = sr_buf_append(strings, "", 1))) break;
        }
    }
    if (!rc && soff)
        for (size_t i = 0; i < n; i++)
            if (soff[i]) out[i].v.str.s = (const char *)strings->data + soff[i] - 1;
    sr_free(soff);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* append a sample (copying string bytes into strings, as an offset) */
static int out_sample(sr_buf *samples, sr_buf *strings, const sr_sample *s, sr_vtype t)
{
    sr_sample c = *s;
    if (t == SR_VT_STRING) {
        if (!strings) return SR_EINVAL;
        size_t off = strings->len;
        int rc = sr_buf_append(strings, s->v.str.s, s->v.str.slen);
        if (!rc) rc = sr_buf_append(strings, "", 1);
        if (rc) return rc;
        c.v.str.s = (const char *)(uintptr_t)off;
    }
    return sr_buf_append(samples, &c, sizeof c);
}

/* Where range_once puts each sample, in time order: copied into buffers
 * (queries) or fed to an aggregator (downsampling, no copy). stop_after: an
 * ascending read stops once it has that many (0: all). */
typedef struct sink {
    sr_buf *samples, *strings;
    sr_agg *agg;
    size_t stop_after, count;
} sink;

static int sink_add(sink *k, const sr_sample *s, sr_vtype t)
{
    k->count++;
    if (k->agg) {
        sr_agg_add(k->agg, s);
        return SR_OK;
    }
    return out_sample(k->samples, k->strings, s, t);
}

/* A stored sample s, merged with the late samples ov[*iov..nov): those
 * before it go first; one of the same ts replaces it. */
static inline int sink_merged(sink *out, const sr_sample *ov, size_t nov, size_t *iov, sr_sample *s, sr_vtype type)
{
    int rc;
    while (*iov < nov && ov[*iov].ts < s->ts)
        if ((rc = sink_add(out, &ov[(*iov)++], type))) return rc;
    if (*iov < nov && ov[*iov].ts == s->ts) *s = ov[(*iov)++];
    return sink_add(out, s, type);
}

static int range_once(sr_engine *e, const sr_range_q *q, sink *out, int *retry, sr_vtype *type_out)
{
    MDB_txn *t;
    MDB_cursor *c = NULL;
    sr_sample *ov = NULL; /* late samples to merge (invariant 7) */
    size_t nov = 0, iov = 0;
    sr_buf ovstr;
    sr_buf_init(&ovstr);
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint64_t w = sr_index_watermark(e->ix, t);
    int can_stop = out->stop_after && !q->desc;
    int64_t lo = q->from, hi = q->to; /* [lo, hi) */
    if (q->after != INT64_MIN) {
        if (!q->desc && q->after + 1 > lo) lo = q->after + 1;
        if (q->desc && q->after < hi) hi = q->after;
    }
    sr_vtype type = SR_VT_NUMBER;
    pointinfo pi = {0};
    if (pointinfo_get(e, t, q->point, &pi) == SR_OK) {
        type = (sr_vtype)pi.m->type;
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
    }
    *type_out = type;
    if (lo >= hi) goto done;
    /* the late samples this snapshot must see (invariant 7): copied, sorted */
    pthread_mutex_lock(stripe_of(e, q->point));
    head *lh = head_find(e, q->point);
    if (lh && lh->late_prev_seq > w) *retry = 1;
    if (lh && !*retry && (lh->nlate || (lh->old_late && lh->old_late_seq > w))) {
        size_t cap = lh->nlate + (lh->old_late_seq > w ? lh->nold_late : 0);
        ov = cap ? sr_malloc(cap * sizeof *ov) : NULL;
        if (cap && !ov) rc = SR_ENOMEM;
        /* two sorted lists; on equal ts the newer (current) list wins */
        const hsample *a = lh->old_late_seq > w ? lh->old_late : NULL, *b = lh->late;
        size_t na = a ? lh->nold_late : 0, nb = lh->nlate, ia = 0, ib = 0;
        while (!rc && (ia < na || ib < nb)) {
            const hsample *x;
            if (ib >= nb || (ia < na && a[ia].ts < b[ib].ts)) x = &a[ia++];
            else {
                if (ia < na && a[ia].ts == b[ib].ts) ia++;
                x = &b[ib++];
            }
            if (x->seq > w || x->ts < lo || x->ts >= hi) continue;
            if (nov && ov[nov - 1].ts == x->ts) nov--; /* a newer one of the same ts (b after a) */
            hs_to_sample(x, type, &ov[nov]);
            if (type == SR_VT_STRING) { /* the strings may be freed once the stripe is released */
                size_t off = ovstr.len;
                if ((rc = sr_buf_append(&ovstr, x->v.s.p, x->v.s.n + 1))) break;
                ov[nov].v.str.s = (const char *)(uintptr_t)off;
            }
            nov++;
        }
    }
    pthread_mutex_unlock(stripe_of(e, q->point));
    if (type == SR_VT_STRING)
        for (size_t i = 0; i < nov; i++) ov[i].v.str.s = (const char *)ovstr.data + (uintptr_t)ov[i].v.str.s;
    if (rc || *retry) goto done_ov;
    /* stored chunks */
    uint8_t k[12];
    be32(k, q->point);
    be64(k + 4, ts_key(lo));
    MDB_val K = {12, k}, V;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c)))) goto done;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    /* a chunk that starts before lo may still hold samples >= lo */
    int r2 = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
    if (r2 == 0 && (K.mv_size != 12 || get_be32(K.mv_data) != q->point)) r2 = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    else if (r2 == MDB_NOTFOUND) r2 = mdb_cursor_get(c, &K, &V, MDB_FIRST);
    r = r2;
    while (r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == q->point) {
        sr_chunk_dec d;
        if ((rc = sr_chunk_dec_init(&d, V.mv_data, V.mv_size))) goto done;
        if (d.info.first_ts >= hi) break;
        if (d.info.last_ts >= lo) {
            sr_sample s;
            if (out->agg) {
                /* straight into the aggregator, up to the next late sample or
                 * hi (it drops samples before lo: its from is lo); s is the
                 * first sample at or after that stop */
                for (;;) {
                    int64_t stop = iov < nov && ov[iov].ts < hi ? ov[iov].ts : hi;
                    uint64_t fed = 0;
                    rc = sr_chunk_dec_agg(&d, out->agg, stop, &s, &fed);
                    out->count += fed;
                    if (rc || s.ts >= hi) break;
                    if ((rc = sink_merged(out, ov, nov, &iov, &s, type))) goto done;
                }
            } else {
                while ((rc = sr_chunk_dec_next(&d, &s)) == SR_OK) {
                    if (s.ts < lo) continue;
                    if (s.ts >= hi) break;
                    if ((rc = sink_merged(out, ov, nov, &iov, &s, type))) goto done;
                }
            }
            if (rc == SR_DONE) rc = SR_OK;
            if (rc) goto done;
            /* enough for an ascending read with a limit: the rest is later */
            if (can_stop && out->count >= out->stop_after) goto done;
        }
        r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    if (r != 0 && r != MDB_NOTFOUND) {
        rc = sr_index_err(r);
        goto done;
    }
    /* late samples after the last chunk's (they are older than every head sample) */
    while (!rc && iov < nov) rc = sink_add(out, &ov[iov++], type);
    if (rc) goto done;
    /* the head (invariant 5) */
    pthread_mutex_lock(stripe_of(e, q->point));
    head *h = head_find(e, q->point);
    if (h) {
        if (h->prev_flush_seq > w) *retry = 1; /* a flush we can see neither in memory nor in the snapshot */
        for (int g = 0; g < 2 && !*retry && !rc; g++) {
            hsample *v = g ? h->v : h->old;
            size_t n = g ? h->n : h->nold;
            if (!g && (!h->old || h->old_seq <= w)) continue; /* that chunk is in our snapshot */
            for (size_t i = 0; i < n && !rc; i++) {
                if (v[i].seq > w || v[i].ts < lo) continue;
                if (v[i].ts >= hi) break;
                sr_sample s;
                hs_to_sample(&v[i], type, &s);
                rc = sink_add(out, &s, type);
            }
        }
    }
    pthread_mutex_unlock(stripe_of(e, q->point));
done:
    if (c) mdb_cursor_close(c);
done_ov:
    sr_free(ov);
    sr_buf_release(&ovstr);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_range(sr_engine *e, const sr_range_q *q, sr_buf *samples, sr_buf *strings, int *more)
{
    size_t base = samples->len;
    int rc, retry;
    sr_vtype type = SR_VT_NUMBER;
    size_t sbase = strings ? strings->len : 0;
    do {
        retry = 0;
        samples->len = base;
        if (strings) strings->len = sbase;
        sink k = {samples, strings, NULL, q->limit && !q->desc ? q->limit + 1 : 0, 0};
        rc = range_once(e, q, &k, &retry, &type);
    } while (!rc && retry);
    if (rc) return rc;
    *more = 0;
    if (samples->len == base) return SR_OK;
    sr_sample *s = (sr_sample *)(samples->data + base);
    size_t n = (samples->len - base) / sizeof *s;
    if (q->desc)
        for (size_t i = 0; i < n / 2; i++) {
            sr_sample x = s[i];
            s[i] = s[n - 1 - i];
            s[n - 1 - i] = x;
        }
    *more = 0;
    if (q->limit && n > q->limit) {
        n = q->limit;
        samples->len = base + n * sizeof *s;
        *more = 1;
    }
    /* string offsets -> pointers (valid until strings changes) */
    if (type == SR_VT_STRING && strings)
        for (size_t i = 0; i < n; i++) s[i].v.str.s = (const char *)strings->data + (uintptr_t)s[i].v.str.s;
    return SR_OK;
}

int sr_engine_downsample(sr_engine *e, uint32_t point, int64_t from, int64_t to, int64_t interval, sr_agg_fill fill,
                         sr_buf *buckets)
{
    if (interval <= 0 || from >= to) return SR_EINVAL;
    if ((to - from) / interval > 10000000) return SR_ETOOBIG;
    sr_range_q q = {.point = point, .from = from, .to = to, .after = INT64_MIN};
    sr_vtype type = SR_VT_NUMBER;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    pointinfo pi = {0};
    if (pointinfo_get(e, t, point, &pi) == SR_OK) {
        type = (sr_vtype)pi.m->type;
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
    }
    sr_index_read_end(e->ix, t);
    /* samples go straight from the chunk decoder into the aggregator */
    sr_agg *a = NULL;
    int retry;
    do {
        retry = 0;
        sr_agg_destroy(a);
        a = NULL;
        if ((rc = sr_agg_create(type, from, to, interval, fill, &a))) break;
        sink k = {NULL, NULL, a, 0, 0};
        sr_vtype t2;
        rc = range_once(e, &q, &k, &retry, &t2);
    } while (!rc && retry);
    if (!rc) rc = sr_agg_status(a);
    sr_bucket tmp[256];
    size_t got;
    while (!rc && (got = sr_agg_emit(a, tmp, 256)) > 0) rc = sr_buf_append(buckets, tmp, got * sizeof *tmp);
    sr_agg_destroy(a);
    return rc;
}

/* Copy the value at key (a \0 b \0 c) of db into out. */
static int get_copy(sr_engine *e, sr_dbi db, const char *a, const char *b, const char *c, sr_buf *out)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, a, b, c);
    MDB_val v;
    rc = kl ? get(t, DB(e, db), k, kl, &v) : SR_ENOTFOUND;
    if (!rc) {
        out->len = 0;
        rc = sr_buf_append(out, v.mv_data, v.mv_size);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_master_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed)
{
    char ks[2] = {(char)('0' + kind), 0};
    return get_copy(e, SR_DB_MASTERS, op, ks, id, packed);
}

/* Every value of db whose key starts with the kl bytes of k: records each
 * preceded by a 4-byte LE length. */
static int scan_prefix(sr_engine *e, sr_dbi db, const uint8_t *k, size_t kl, sr_buf *out, size_t *count)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    *count = 0;
    if (!kl || (rc = sr_index_err(mdb_cursor_open(t, DB(e, db), &c)))) {
        sr_index_read_end(e->ix, t);
        return kl ? rc : SR_EINVAL;
    }
    MDB_val K = {kl, (void *)k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    while (r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
        uint8_t lb[4];
        sr_put_le32(lb, (uint32_t)V.mv_size);
        if ((rc = sr_buf_append(out, lb, 4)) || (rc = sr_buf_append(out, V.mv_data, V.mv_size))) break;
        (*count)++;
        r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* Every value of db whose key starts with op \0 kind. */
static int scan_kind(sr_engine *e, sr_dbi db, const char *op, int kind, sr_buf *out, size_t *count)
{
    uint8_t k[300];
    char ks[2] = {(char)('0' + kind), 0};
    return scan_prefix(e, db, k, mkkey(k, sizeof k, op, ks, ""), out, count);
}

int sr_engine_master_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count)
{
    return scan_kind(e, SR_DB_MASTERS, op, kind, out, count);
}

int sr_engine_registry_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count)
{
    return scan_kind(e, SR_DB_REGISTRY, op, kind, out, count);
}

int sr_engine_registry_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed)
{
    char ks[2] = {(char)('0' + kind), 0};
    return get_copy(e, SR_DB_REGISTRY, op, ks, id, packed);
}

int sr_engine_request_get(sr_engine *e, const char *op, const char *req, const char *gw, sr_buf *created,
                          sr_buf *state)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[400];
    size_t kl = rkey(k, sizeof k, op, req, gw, 'c');
    MDB_val v;
    created->len = state->len = 0;
    rc = kl ? get(t, DB(e, SR_DB_REQUESTS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc) rc = sr_buf_append(created, v.mv_data, v.mv_size);
    if (!rc) {
        k[kl - 1] = 's';
        if (get(t, DB(e, SR_DB_REQUESTS), k, kl, &v) == SR_OK) rc = sr_buf_append(state, v.mv_data, v.mv_size);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_monitor_get(sr_engine *e, const char *op, const char *monitor, sr_buf *packed)
{
    return get_copy(e, SR_DB_MONITORS, op, monitor, NULL, packed);
}

int sr_engine_monitor_list(sr_engine *e, const char *op, sr_buf *out, size_t *count)
{
    uint8_t k[100];
    return scan_prefix(e, SR_DB_MONITORS, k, mkkey(k, sizeof k, op, "", NULL), out, count);
}

int sr_engine_doc_get(sr_engine *e, const char *op, const char *coll, const char *id, uint64_t *revision,
                      sr_buf *json)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, coll, id);
    MDB_val v;
    rc = kl ? get(t, DB(e, SR_DB_DOCS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc && v.mv_size < 8) rc = SR_ECORRUPT;
    if (!rc) {
        *revision = sr_get_le64(v.mv_data);
        json->len = 0;
        rc = sr_buf_append(json, (uint8_t *)v.mv_data + 8, v.mv_size - 8);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

void sr_engine_get_open_stats(sr_engine *e, sr_engine_open_stats *out) { *out = e->ost; }

int sr_engine_write_state(sr_engine *e, int *cause)
{
    pthread_mutex_lock(&e->mu);
    int st = e->nospace_ro ? SR_ENOSPC : e->poisoned ? SR_EPOISONED : SR_OK;
    if (cause) *cause = e->poison_cause;
    pthread_mutex_unlock(&e->mu);
    return st;
}

void sr_engine_get_stats(sr_engine *e, sr_engine_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&e->mu); /* the writer may be reopening the log (§7) */
    out->log_next_seq = e->log ? sr_log_next_seq(e->log) : 0;
    pthread_mutex_unlock(&e->mu);
    out->watermark = atomic_load(&e->watermark);
    out->commands = atomic_load(&e->st_commands);
    out->events = atomic_load(&e->st_events);
    out->groups = atomic_load(&e->st_groups);
    out->flushes = atomic_load(&e->st_flushes);
    out->points = atomic_load(&e->npoints);
    pthread_mutex_lock(&e->mu);
    out->queue_depth = e->depth;
    pthread_mutex_unlock(&e->mu);
}

int sr_engine_content_hash(sr_engine *e, uint8_t out[32])
{
    uint8_t ih[32];
    int rc = sr_index_content_hash(e->ix, ih);
    if (rc) return rc;
    sr_buf b;
    sr_buf_init(&b);
    rc = sr_buf_append(&b, ih, 32);
    for (size_t d = 0; d < HDIR && !rc; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE && !rc; i++) {
            head *h = page[i];
            if (!h) continue;
            pthread_mutex_lock(stripe_of(e, h->point));
            uint8_t x[32];
            sr_put_le32(x, h->point);
            sr_put_le64(x + 4, h->first_seq);
            sr_put_le64(x + 12, (uint64_t)h->flushed_max);
            sr_put_le64(x + 20, h->n);
            x[28] = (uint8_t)h->has_flushed;
            rc = sr_buf_append(&b, x, 29);
            for (size_t j = 0; j < h->n && !rc; j++) {
                uint8_t y[25];
                sr_put_le64(y, (uint64_t)h->v[j].ts);
                sr_put_le64(y + 8, h->v[j].seq);
                y[16] = h->v[j].q;
                uint64_t bits = 0;
                if (h->type == SR_VT_NUMBER) memcpy(&bits, &h->v[j].v.f, 8);
                else if (h->type == SR_VT_INTEGER) bits = (uint64_t)h->v[j].v.i;
                else if (h->type == SR_VT_BOOL) bits = (uint64_t)h->v[j].v.b;
                else bits = h->v[j].v.s.n;
                sr_put_le64(y + 17, bits);
                rc = sr_buf_append(&b, y, 25);
                if (!rc && h->type == SR_VT_STRING) rc = sr_buf_append(&b, h->v[j].v.s.p, h->v[j].v.s.n);
            }
            pthread_mutex_unlock(stripe_of(e, h->point));
        }
    }
    if (!rc) sr_sha256(b.data, b.len, out);
    sr_buf_release(&b);
    return rc;
}

struct sr_blobs *sr_engine_blobs(sr_engine *e) { return e->blobs; }

int sr_engine_doc_query(sr_engine *e, const char *op, const char *coll, const char *field, const char *value,
                        size_t limit, const char *after_id, sr_buf *out, size_t *count, int *more)
{
    sr_doc_bounds b = {limit, 0, 0};
    char next[260];
    return sr_engine_doc_scan(e, op, coll, field, value, &b, after_id, out, count, more, next);
}

int sr_engine_doc_scan(sr_engine *e, const char *op, const char *coll, const char *field, const char *value,
                       const sr_doc_bounds *bd, const char *after_id, sr_buf *out, size_t *count, int *more,
                       char *next_after)
{
    json_t *want = NULL;
    *count = 0;
    *more = 0;
    next_after[0] = 0;
    size_t limit = bd->limit ? bd->limit : 1000, scanned = 0, bytes = 0;
    if (field) {
        json_error_t jerr;
        want = json_loads(value ? value : "", JSON_DECODE_ANY, &jerr);
        if (!want) return SR_EINVAL;
    }
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) {
        json_decref(want);
        return rc;
    }
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, coll, "");
    MDB_cursor *c = NULL;
    if (!kl) rc = SR_EINVAL;
    if (!rc) rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_DOCS), &c));
    if (!rc) {
        uint8_t sk[900];
        size_t skl = kl;
        memcpy(sk, k, kl);
        if (after_id && *after_id) {
            size_t al = strlen(after_id);
            if (kl + al + 1 > sizeof sk) rc = SR_EINVAL;
            else {
                memcpy(sk + kl, after_id, al);
                sk[kl + al] = 0; /* just past after_id */
                skl = kl + al + 1;
            }
        }
        MDB_val K = {skl, sk}, V;
        int r = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        while (!rc && r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
            const char *id = (const char *)K.mv_data + kl;
            size_t idl = K.mv_size - kl;
            int match = 1;
            if (V.mv_size < 8) {
                rc = SR_ECORRUPT;
                break;
            }
            if (bd->max_scan && scanned == bd->max_scan) { /* resume after the last one examined */
                *more = 1;
                break;
            }
            if (idl >= 260) {
                rc = SR_ECORRUPT;
                break;
            }
            if (want) {
                json_error_t jerr;
                json_t *doc = json_loadb((const char *)V.mv_data + 8, V.mv_size - 8, 0, &jerr);
                json_t *f = doc && json_is_object(doc) ? json_object_get(doc, field) : NULL;
                match = f && json_equal(f, want);
                json_decref(doc);
            }
            if (match) {
                if (*count == limit || (bd->max_bytes && *count && bytes + (V.mv_size - 8) > bd->max_bytes)) {
                    *more = 1;
                    break;
                }
                bytes += V.mv_size - 8;
                uint8_t hdr[12];
                memcpy(hdr, V.mv_data, 8);
                sr_put_le32(hdr + 8, (uint32_t)(V.mv_size - 8));
                if ((rc = sr_buf_append(out, id, idl)) || (rc = sr_buf_append(out, "", 1)) ||
                    (rc = sr_buf_append(out, hdr, 12)) ||
                    (rc = sr_buf_append(out, (const uint8_t *)V.mv_data + 8, V.mv_size - 8)))
                    break;
                (*count)++;
            }
            scanned++;
            memcpy(next_after, id, idl);
            next_after[idl] = 0;
            r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    json_decref(want);
    return rc;
}

int sr_engine_file_get(sr_engine *e, const char *op, const char *path, sr_buf *packed)
{
    return get_copy(e, SR_DB_FILES, op, path, NULL, packed);
}

int sr_engine_file_each(sr_engine *e, int (*fn)(void *ctx, const char *op, const uint8_t *packed, size_t len),
                        void *ctx)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c = NULL;
    rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_FILES), &c));
    char op[300];
    if (!rc) {
        MDB_val K, V;
        int r = mdb_cursor_get(c, &K, &V, MDB_FIRST);
        while (!rc && r == 0) {
            const uint8_t *z = memchr(K.mv_data, 0, K.mv_size); /* op \0 path */
            size_t ol = z ? (size_t)(z - (const uint8_t *)K.mv_data) : K.mv_size;
            if (ol >= sizeof op) ol = sizeof op - 1;
            memcpy(op, K.mv_data, ol);
            op[ol] = 0;
            rc = fn(ctx, op, V.mv_data, V.mv_size);
            if (!rc) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
        if (!rc && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_file_list(sr_engine *e, const char *op, const char *prefix, size_t limit, sr_buf *out, size_t *count,
                        int *more)
{
    MDB_txn *t;
    *count = 0;
    *more = 0;
    if (!limit) limit = 1000;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, prefix ? prefix : "", NULL);
    MDB_cursor *c = NULL;
    if (!kl && (!prefix || *prefix)) rc = SR_EINVAL;
    if (!rc) rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_FILES), &c));
    if (!rc) {
        if (!prefix || !*prefix) { /* op \0 */
            kl = strlen(op) + 1;
            memcpy(k, op, kl - 1);
            k[kl - 1] = 0;
        }
        MDB_val K = {kl, k}, V;
        int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        while (r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
            if (*count == limit) {
                *more = 1;
                break;
            }
            uint8_t lb[4];
            sr_put_le32(lb, (uint32_t)V.mv_size);
            if ((rc = sr_buf_append(out, lb, 4)) || (rc = sr_buf_append(out, V.mv_data, V.mv_size))) break;
            (*count)++;
            r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}
