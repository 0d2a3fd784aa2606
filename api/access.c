/*
 * api/access.c -- the reads' batches of the audit trail (api/access.h).
 *
 * A group per reader (operator, kind, actor) holds the entries added since
 * the last write, packed as they come (codecs/accpack.h: the fields that
 * differ from the entry before, naming interned strings; the last entry's
 * route and points are compared first, a string already in the batch -- a
 * data point read again, a peer -- costs a hash look-up, not a copy). A write turns each group into one AccessBatch (Event.body 50,
 * sr_cmd_access_batch: the packed bytes as one protobuf field, no message
 * per entry) kept as a batch until the writer acknowledges it; a batch the
 * writer could not take or failed is submitted again at the next write.
 * `held` counts the entries of the groups and of the batches not
 * acknowledged: sr_access_admit compares it with buffer_max without the
 * mutex (an atomic load).
 *
 * Why packed (issue #18, docs/audit.md "Reads: the cost"): an entry as an
 * AccessEntry message cost a read ~12.7 k instructions of the whole
 * process (its strings formatted and copied on the request, one protobuf
 * message encoded, decoded by the writer, sealed): +41 % of the AP-IF
 * latest value. The packed entry is built from the request's own bytes
 * (the peer as its raw address, formatted once per batch and address),
 * and the writer checks the packed bytes once.
 *
 * INVARIANTS
 *  (1) held == the entries of every group + of every batch on the list.
 *  (2) A batch leaves the list only when the writer acknowledged it (or
 *      refused it as malformed: a bug, logged, never retried).
 *  (3) Submits happen outside the mutex (a completion takes it on the
 *      writer thread).
 *  (4) A group's batch never holds more than SR_APK_ENTRIES_MAX entries or
 *      a full string table: such a group is sealed before the entry is
 *      added.
 *  (5) Refusals (sr_access_refused) are groups of their own (rgroup), one
 *      wire code each, written as AccessEvent refusals (sr_cmd_refusals);
 *      such a group holds at most refusals_per_batch entries (the rest
 *      counted in its `dropped`, written in its batch), and none is added
 *      while held >= buffer_max (counted in rdropped): what a flood of
 *      refused messages makes the server write is bounded per actor and
 *      code by refusals_per_batch entries per batch.
 */
#include "api/access.h"
#include "api/cluster_fwd.h"

#include "api/loginguard.h"
#include "api/slog.h"
#include "codecs/accpack.h"

#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

/* a peer's raw address (family, address bytes): the key of its formatted
 * text in a batch */
typedef struct srckey {
    uint8_t n, b[17];
} srckey;

typedef struct group {
    char op[72], actor[72];
    sr_actor_kind kind;
    sr_apk pk;
    srckey last;  /* the last peer's key ... */
    int last_ix;  /* ... and its string index; -1: none */
    const char *rt[3]; /* the last entry's binding, method, route (static strings) ... */
    uint16_t rix[3];   /* ... and their string indexes */
    int first_src; /* the first entry's peer (the envelope's source) */
} group;

/* a refusal as it is kept until its batch: strings in its group's arena */
typedef struct ent {
    int64_t t;
    const char *binding, *method, *route, *code; /* static (access.h invariant 2) */
    uint32_t src, pts[SR_ACCESS_POINTS_MAX];     /* offsets into the group's arena */
    uint32_t npl, npoints, status;
    uint64_t values, bytes;
} ent;

/* a group of refusals: one reader and one wire code (5) */
typedef struct rgroup {
    char op[72], actor[72];
    sr_actor_kind kind;
    const char *rcode; /* their one wire code (static) */
    uint64_t dropped;  /* refusals beyond refusals_per_batch since the last seal */
    ent *v;
    size_t n, cap;
    sr_buf str;
} rgroup;

typedef struct batch {
    struct batch *next;
    struct sr_access *a;
    sr_buf ev;
    char op[72];
    size_t n;
    int submitted; /* 0: to submit (again) */
} batch;

struct sr_access {
    sr_engine *eng;
    sr_access_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    group *g;
    size_t ng, capg, ingroups, lastg;
    batch *batches;
    rgroup *rg;
    size_t nrg, caprg;
    _Atomic uint64_t held, refused;
    uint64_t entries, written;
    uint64_t rentries, rdropped; /* refusals recorded, refusals dropped by a bound */
    int stopped;                 /* sr_access_stop: nothing more */
    int64_t last_ms;
    sr_buf tmp; /* a batch's packed bytes (under the mutex) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sr_access *sr_access_new(sr_engine *e, const sr_access_opts *o)
{
    sr_access *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->eng = e;
    a->o = *o;
    if (!a->o.batch_max || a->o.batch_max > SR_ACCESS_ENTRIES_MAX) a->o.batch_max = SR_ACCESS_ENTRIES_MAX;
    if (!a->o.flush_ms) a->o.flush_ms = 1000;
    if (a->o.buffer_max < a->o.batch_max) a->o.buffer_max = a->o.batch_max;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    sr_buf_init(&a->tmp);
    a->last_ms = mono_ms();
    return a;
}

int sr_access_on(const sr_access *a) { return a && a->o.reads; }

static int refusals_on(const sr_access *a) { return a && a->o.refusals_per_batch && !a->stopped; }

int sr_access_admit(sr_access *a)
{
    if (!sr_access_on(a)) return 1;
    if (atomic_load_explicit(&a->held, memory_order_relaxed) < a->o.buffer_max) return 1;
    atomic_fetch_add_explicit(&a->refused, 1, memory_order_relaxed);
    return 0;
}

static group *group_of(sr_access *a, const char *op, sr_actor_kind kind, const char *actor)
{
    if (a->lastg < a->ng) { /* the reader of the last entry, most often */
        group *g = &a->g[a->lastg];
        if (g->kind == kind && !strcmp(g->actor, actor) && !strcmp(g->op, op)) return g;
    }
    for (size_t i = 0; i < a->ng; i++) {
        group *g = &a->g[i];
        if (g->kind == kind && !strcmp(g->actor, actor) && !strcmp(g->op, op)) return a->lastg = i, g;
    }
    if (strlen(op) >= sizeof a->g->op || strlen(actor) >= sizeof a->g->actor) return NULL;
    if (a->ng == a->capg) {
        size_t nc = a->capg ? a->capg * 2 : 8;
        group *ng = realloc(a->g, nc * sizeof *ng);
        if (!ng) return NULL;
        a->g = ng;
        a->capg = nc;
    }
    a->lastg = a->ng;
    group *g = &a->g[a->ng++];
    memset(g, 0, sizeof *g);
    strcpy(g->op, op);
    strcpy(g->actor, actor);
    g->kind = kind;
    g->last_ix = -1;
    g->first_src = -1;
    sr_apk_init(&g->pk);
    return g;
}

/* The groups into batches (under the mutex): groups emptied, batches made
 * ready to submit. */
static void seal_groups(sr_access *a)
{
    for (size_t i = 0; i < a->ng; i++) {
        group *g = &a->g[i];
        size_t n = sr_apk_count(&g->pk);
        if (!n) continue;
        batch *b = calloc(1, sizeof *b);
        if (!b) continue; /* stays in its group: tried at the next write */
        a->tmp.len = 0;
        int rc = sr_apk_finish(&g->pk, &a->tmp);
        const char *src = g->first_src >= 0 ? (const char *)g->pk.text.data + g->pk.off[g->first_src] : "";
        sr_cmd_env env = {g->op, g->actor, g->kind, NULL, src};
        sr_buf_init(&b->ev);
        if (!rc) rc = sr_cmd_access_batch(&env, a->tmp.data, a->tmp.len, &b->ev);
        if (rc) {
            sr_slog(SR_LOG_ERROR, "access batch not built", "op=%s actor=%s entries=%zu error=%s", g->op, g->actor, n,
                    sr_err_name(rc));
            sr_buf_release(&b->ev);
            free(b);
            continue;
        }
        b->a = a;
        b->n = n;
        snprintf(b->op, sizeof b->op, "%s", g->op);
        b->next = a->batches;
        a->batches = b;
        a->ingroups -= n;
        sr_apk_reset(&g->pk);
        g->last_ix = g->first_src = -1;
        g->rt[0] = g->rt[1] = g->rt[2] = NULL;
    }
    for (size_t i = 0; i < a->nrg; i++) {
        rgroup *g = &a->rg[i];
        if (!g->n) continue;
        sr_access_entry *x = calloc(g->n, sizeof *x);
        batch *b = calloc(1, sizeof *b);
        if (!x || !b) {
            free(x);
            free(b);
            continue; /* stays in its group: tried at the next write */
        }
        const char *base = (const char *)g->str.data;
        for (size_t j = 0; j < g->n; j++) {
            const ent *e = &g->v[j];
            x[j] = (sr_access_entry){.time_ms = e->t, .binding = e->binding, .method = e->method, .route = e->route,
                                     .npoints_listed = e->npl, .npoints = e->npoints, .values = e->values,
                                     .bytes = e->bytes, .status = e->status, .code = e->code, .source = base + e->src};
            for (uint32_t k = 0; k < e->npl; k++) x[j].points[k] = base + e->pts[k];
        }
        sr_cmd_env env = {g->op, g->actor, g->kind, NULL, base + g->v[0].src};
        sr_buf_init(&b->ev);
        int rc = sr_cmd_refusals(&env, x, g->n, g->dropped, &b->ev);
        free(x);
        if (rc) {
            sr_slog(SR_LOG_ERROR, "refusal batch not built", "op=%s actor=%s entries=%zu error=%s", g->op, g->actor,
                    g->n, sr_err_name(rc));
            sr_buf_release(&b->ev);
            free(b);
            continue;
        }
        b->a = a;
        b->n = g->n;
        snprintf(b->op, sizeof b->op, "%s", g->op);
        b->next = a->batches;
        a->batches = b;
        a->ingroups -= g->n;
        g->n = 0;
        g->dropped = 0;
        g->str.len = 0;
    }
    size_t wr = 0;
    for (size_t i = 0; i < a->nrg; i++) {
        if (a->rg[i].n || a->rg[i].dropped) a->rg[wr++] = a->rg[i];
        else {
            free(a->rg[i].v);
            sr_buf_release(&a->rg[i].str);
        }
    }
    a->nrg = wr;
    /* groups with nothing go (readers come and go); their builders too */
    size_t w = 0;
    for (size_t i = 0; i < a->ng; i++) {
        if (sr_apk_count(&a->g[i].pk)) a->g[w++] = a->g[i];
        else sr_apk_release(&a->g[i].pk);
    }
    a->ng = w;
    a->lastg = 0;
    if (a->tmp.cap > 1 << 20) sr_buf_release(&a->tmp); /* a large batch's room is not kept */
}

static void on_written(void *ctx, const sr_result *r)
{
    batch *b = ctx;
    sr_access *a = b->a;
    pthread_mutex_lock(&a->mu);
    if (!r->rc || r->rc == SR_EINVAL) {
        if (r->rc)
            sr_slog(SR_LOG_ERROR, "access batch refused by the engine", "op=%s entries=%zu error=%s", b->op, b->n,
                    sr_err_name(r->rc));
        else a->written++;
        for (batch **p = &a->batches; *p; p = &(*p)->next)
            if (*p == b) {
                *p = b->next;
                break;
            }
        atomic_fetch_sub_explicit(&a->held, b->n, memory_order_relaxed);
        sr_buf_release(&b->ev);
        free(b);
    } else {
        b->submitted = 0; /* again at the next write (GUARANTEES, access.h) */
        sr_slog(SR_LOG_WARN, "access batch not stored, held", "op=%s entries=%zu error=%s", b->op, b->n,
                sr_err_name(r->rc));
    }
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int sr_access_flush(sr_access *a)
{
    if (!a) return SR_OK;
    pthread_mutex_lock(&a->mu);
    seal_groups(a);
    a->last_ms = mono_ms();
    int first = SR_OK;
    for (;;) {
        batch *b = a->batches;
        while (b && b->submitted) b = b->next;
        if (!b) break;
        b->submitted = 1;
        sr_slice sl = {b->ev.data, b->ev.len};
        pthread_mutex_unlock(&a->mu); /* (3); b stays on the list until its completion */
        int rc = sr_engine_submit(a->eng, &sl, 1, on_written, b);
        pthread_mutex_lock(&a->mu);
        if (rc) {
            b->submitted = 0;
            if (!first) first = rc;
            break; /* the writer takes nothing now: the rest waits for the next write */
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (first) sr_slog(SR_LOG_WARN, "access batches held", "error=%s", sr_err_name(first));
    return first;
}

/* a string of the entry, cut to what a batch holds */
static int str_ix(sr_apk *pk, const char *s)
{
    size_t n = strlen(s ? s : "");
    return sr_apk_str(pk, s ? s : "", n < SR_APK_STRLEN_MAX ? n : SR_APK_STRLEN_MAX - 1);
}

static void srckey_of(const struct sockaddr *sa, srckey *k)
{
    k->n = 0;
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        k->b[0] = 4;
        memcpy(k->b + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        k->n = 5;
    } else if (sa->sa_family == AF_INET6) {
        k->b[0] = 6;
        memcpy(k->b + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        k->n = 17;
    }
}

/* Adds an entry (under the mutex); its peer is en->source, or sa's text
 * (formatted once per batch and address) when sa is given. 0, or -1 (no
 * room: out of memory). */
static int add_locked(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en,
                      const struct sockaddr *sa)
{
    group *g = group_of(a, op, kind, actor);
    if (!g) return -1;
    if (sr_apk_full(&g->pk)) { /* (4) */
        seal_groups(a);
        if (!(g = group_of(a, op, kind, actor))) return -1;
    }
    sr_apk *pk = &g->pk;
    int src = -1;
    if (sa) {
        srckey k;
        srckey_of(sa, &k);
        if (g->last_ix >= 0 && k.n == g->last.n && !memcmp(k.b, g->last.b, k.n)) src = g->last_ix;
        else {
            char t[64];
            sr_login_addr_sa(sa, t);
            if ((src = str_ix(pk, t)) >= 0) g->last = k, g->last_ix = src;
        }
    } else src = str_ix(pk, en->source);
    const char *bs = en->binding ? en->binding : "", *ms = en->method ? en->method : "",
               *rs = en->route ? en->route : "";
    int b, m, r;
    if (g->rt[0] == bs && g->rt[1] == ms && g->rt[2] == rs) /* the last entry's route, most often */
        b = g->rix[0], m = g->rix[1], r = g->rix[2];
    else if ((b = sr_apk_static(pk, bs)) >= 0 && (m = sr_apk_static(pk, ms)) >= 0 && (r = sr_apk_static(pk, rs)) >= 0)
        g->rt[0] = bs, g->rt[1] = ms, g->rt[2] = rs, g->rix[0] = (uint16_t)b, g->rix[1] = (uint16_t)m,
        g->rix[2] = (uint16_t)r;
    else b = m = r = -1;
    int c = en->code && en->code[0] ? sr_apk_static(pk, en->code) : (int)SR_APK_NONE;
    uint16_t refs[SR_APK_POINTS_MAX];
    size_t npl = en->npoints_listed < SR_APK_POINTS_MAX ? en->npoints_listed : SR_APK_POINTS_MAX;
    int bad = src < 0 || b < 0 || m < 0 || r < 0 || c < 0;
    /* the points: the last entry's again (a poll of the same points) costs
     * a compare, a new one a look-up */
    int reuse = pk->nent && pk->prev.npl == npl;
    for (size_t k = 0; reuse && k < npl; k++) {
        uint16_t ix = pk->refs[pk->prev.ref + k];
        if (strcmp((const char *)pk->text.data + pk->off[ix], en->points[k])) reuse = 0;
        else refs[k] = ix;
    }
    for (size_t k = 0; !reuse && k < npl && !bad; k++) {
        int ix = str_ix(pk, en->points[k]);
        bad = ix < 0;
        refs[k] = (uint16_t)ix;
    }
    sr_apk_entry e = {.time_ms = en->time_ms, .binding = (uint16_t)b, .method = (uint16_t)m, .route = (uint16_t)r,
                      .source = (uint16_t)src, .code = (uint16_t)c,
                      .status = (uint16_t)(en->status < 0xFFFF ? en->status : 0xFFFF), .npl = (uint16_t)npl,
                      .npoints = en->npoints < npl ? (uint32_t)npl : en->npoints, .values = en->values,
                      .bytes = en->bytes};
    if (bad || sr_apk_add(pk, &e, refs)) return -1;
    if (g->first_src < 0) g->first_src = src;
    a->ingroups++;
    atomic_fetch_add_explicit(&a->held, 1, memory_order_relaxed);
    a->entries++;
    return a->ingroups >= a->o.batch_max || sr_apk_full(pk);
}

static void add(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en,
                const struct sockaddr *sa)
{
    if (!sr_access_on(a) || !op || !actor) return;
    pthread_mutex_lock(&a->mu);
    int full = add_locked(a, op, kind, actor, en, sa);
    pthread_mutex_unlock(&a->mu);
    if (full < 0) sr_slog(SR_LOG_ERROR, "access entry not recorded: out of memory", "op=%s actor=%s", op, actor);
    if (full > 0) (void)sr_access_flush(a);
}

void sr_access_add(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en)
{
    add(a, op, kind, actor, en, NULL);
}

static uint32_t arena_put(sr_buf *b, const char *s)
{
    uint32_t off = (uint32_t)b->len;
    if (sr_buf_append(b, s ? s : "", strlen(s ? s : "") + 1)) return UINT32_MAX;
    return off;
}

static rgroup *rgroup_of(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const char *rcode)
{
    for (size_t i = 0; i < a->nrg; i++) {
        rgroup *g = &a->rg[i];
        if (g->kind == kind && !strcmp(g->actor, actor) && !strcmp(g->op, op) && !strcmp(g->rcode, rcode)) return g;
    }
    if (strlen(op) >= sizeof a->rg->op || strlen(actor) >= sizeof a->rg->actor) return NULL;
    if (a->nrg == a->caprg) {
        size_t nc = a->caprg ? a->caprg * 2 : 8;
        rgroup *ng = realloc(a->rg, nc * sizeof *ng);
        if (!ng) return NULL;
        a->rg = ng;
        a->caprg = nc;
    }
    rgroup *g = &a->rg[a->nrg++];
    memset(g, 0, sizeof *g);
    strcpy(g->op, op);
    strcpy(g->actor, actor);
    g->kind = kind;
    g->rcode = rcode;
    sr_buf_init(&g->str);
    return g;
}

/* a refusal into g (under the mutex); 0, or -1: out of memory (not recorded) */
static int radd_locked(sr_access *a, rgroup *g, const sr_access_entry *en)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        ent *nv = realloc(g->v, nc * sizeof *nv);
        if (!nv) return -1;
        g->v = nv, g->cap = nc;
    }
    ent *e = &g->v[g->n];
    size_t was = g->str.len;
    e->t = en->time_ms;
    e->binding = en->binding;
    e->method = en->method;
    e->route = en->route;
    e->code = en->code ? en->code : "";
    e->npoints = en->npoints;
    e->values = en->values;
    e->bytes = en->bytes;
    e->status = en->status;
    e->npl = (uint32_t)(en->npoints_listed < SR_ACCESS_POINTS_MAX ? en->npoints_listed : SR_ACCESS_POINTS_MAX);
    int bad = (e->src = arena_put(&g->str, en->source)) == UINT32_MAX;
    for (uint32_t k = 0; k < e->npl && !bad; k++) bad = (e->pts[k] = arena_put(&g->str, en->points[k])) == UINT32_MAX;
    if (bad) {
        g->str.len = was;
        return -1;
    }
    g->n++;
    a->ingroups++;
    atomic_fetch_add_explicit(&a->held, 1, memory_order_relaxed);
    a->entries++;
    return 0;
}

void sr_access_refused(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en)
{
    if (!refusals_on(a) || !op || !actor || !en->code || !en->code[0]) return;
    pthread_mutex_lock(&a->mu);
    rgroup *g = atomic_load_explicit(&a->held, memory_order_relaxed) < a->o.buffer_max
                    ? rgroup_of(a, op, kind, actor, en->code)
                    : NULL;
    int recorded = 0;
    if (g && g->n >= a->o.refusals_per_batch) g->dropped++; /* (5): the bound; counted in the batch */
    else if (g && !radd_locked(a, g, en)) recorded = 1;
    if (recorded) a->rentries++;
    else a->rdropped++;
    uint64_t dropped = a->rdropped;
    int full = a->ingroups >= a->o.batch_max;
    pthread_mutex_unlock(&a->mu);
    if (!recorded && (dropped & (dropped - 1)) == 0) /* logged at 1, 2, 4, 8, ... */
        sr_slog(SR_LOG_WARN, "refusals not listed in the audit trail (bound)", "op=%s actor=%s code=%s dropped=%" PRIu64,
                op, actor, en->code, dropped);
    if (full) (void)sr_access_flush(a);
}

void sr_access_tick(sr_access *a, int64_t now_ms)
{
    if (!sr_access_on(a) && !refusals_on(a)) return;
    pthread_mutex_lock(&a->mu);
    int due = now_ms - a->last_ms >= (int64_t)a->o.flush_ms && (a->ingroups || a->batches);
    pthread_mutex_unlock(&a->mu);
    if (due) (void)sr_access_flush(a);
}

void sr_access_get_stats(sr_access *a, sr_access_stats *s)
{
    memset(s, 0, sizeof *s);
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    s->entries = a->entries;
    s->batches = a->written;
    s->refused = atomic_load(&a->refused);
    s->held = atomic_load(&a->held);
    s->refusals = a->rentries;
    s->refusals_dropped = a->rdropped;
    pthread_mutex_unlock(&a->mu);
}

void sr_access_stop(sr_access *a)
{
    if (!a || (!a->o.reads && !refusals_on(a))) return;
    /* (3) of access.h: what is held is written; a writer that takes
     * nothing is tried for at most 5 s (then the entries are lost, logged) */
    int64_t end = mono_ms() + 5000;
    for (;;) {
        (void)sr_access_flush(a);
        pthread_mutex_lock(&a->mu);
        if (!a->batches && !a->ingroups) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        int pending_submitted = 0;
        for (batch *b = a->batches; b; b = b->next) pending_submitted |= b->submitted;
        uint64_t left = atomic_load(&a->held);
        pthread_mutex_unlock(&a->mu);
        if (mono_ms() > end && !pending_submitted) {
            sr_slog(SR_LOG_ERROR, "access entries not stored at stop", "entries=%" PRIu64, left);
            break;
        }
    }
    pthread_mutex_lock(&a->mu);
    a->o.reads = 0; /* nothing more (access.h) */
    a->stopped = 1;
    pthread_mutex_unlock(&a->mu);
}

void sr_access_free(sr_access *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    for (batch *b = a->batches; b;) { /* only unsubmitted ones are left (a submitted one's completion is pending) */
        batch *n = b->next;
        if (!b->submitted) {
            sr_buf_release(&b->ev);
            free(b);
        }
        b = n;
    }
    for (size_t i = 0; i < a->ng; i++) {
        sr_apk_release(&a->g[i].pk);
    }
    free(a->g);
    for (size_t i = 0; i < a->nrg; i++) {
        free(a->rg[i].v);
        sr_buf_release(&a->rg[i].str);
    }
    free(a->rg);
    sr_buf_release(&a->tmp);
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

/* ---- HTTP reads ----------------------------------------------------------- */

#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/routes.h"

#include <h2o.h>

/* A read being answered: what its entry needs, taken from the request at
 * its start (the peer as its raw address; the points' text once). It lives
 * in the request's pool and on its thread's list `live` from its start until
 * the request's end (access_on_log, the logger h2o calls before it clears the
 * pool): no allocation with a destructor, no env entry a read. */
typedef struct hread {
    sr_access *a;
    h2o_req_t *req;
    struct hread *next; /* the thread's live list */
    const char *binding, *method, *route;
    sr_actor_kind kind;
    uint32_t npl, npoints;
    uint64_t values;
    int write; /* a write or control: recorded only if refused (sr_access_http_write) */
    /* from here on written before read (hread_new zeroes only the above) */
    const char *pts[SR_ACCESS_POINTS_MAX]; /* the listed points: the first in p0, the rest copies in the request's pool */
    char p0[72];
    char op[72], actor[72];
    struct sockaddr_storage peer; /* ss_family AF_UNSPEC: none */
    char fwd[64]; /* "" or a forwarded request's client "via" the node (api/cluster_fwd.h): the source */
} hread;

/* The records of the requests being answered on this thread, newest first
 * (a request lives on its loop's thread from its start to its end; the
 * one a handler is answering is almost always the first). */
static _Thread_local hread *live;

static hread *live_of(h2o_req_t *req)
{
    hread *h = live;
    while (h && h->req != req) h = h->next;
    return h;
}

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* the request ended: its entry (called by access_on_log, before the request's
 * pool, where the record lives, is cleared) */
static void hread_end(hread *h)
{
    h2o_req_t *req = h->req;
    unsigned st = req->res.status > 0 ? (unsigned)req->res.status : 0;
    const char *code = "";
    if (st >= 400) {
        h2o_iovec_t *cv = h2o_req_getenv(req, H2O_STRLIT(SR_HTTP_ENV_CODE), 0);
        if (cv && cv->base) code = cv->base;
    }
    /* every field add_locked reads set, the points up to npl only: no
     * zeroing of the whole entry a read */
    sr_access_entry en;
    en.time_ms = wall_now(), en.binding = h->binding, en.method = h->method, en.route = h->route;
    en.npoints_listed = h->npl, en.npoints = h->npoints, en.values = h->values, en.bytes = req->bytes_sent;
    en.status = st, en.code = code, en.source = "";
    for (uint32_t i = 0; i < h->npl; i++) en.points[i] = h->pts[i];
    const struct sockaddr *sa = h->peer.ss_family != AF_UNSPEC ? (const struct sockaddr *)&h->peer : NULL;
    if (h->fwd[0]) en.source = h->fwd, sa = NULL; /* forwarded by a peer node: the original client */
    if (!h->write) add(h->a, h->op, h->kind, h->actor, &en, sa);
    else if (st >= 400 && st < 500 && st != 429 && code[0]) {
        char src[64] = "";
        if (h->fwd[0]) snprintf(src, sizeof src, "%s", h->fwd);
        else if (sa) sr_login_addr_sa(sa, src);
        en.source = src;
        sr_access_refused(h->a, h->op, h->kind, h->actor, &en);
    }
}

/* h2o calls it for every request of the pathconf when it ends (http1
 * close_connection or the response done: h2o_dispose_request), before its
 * pool is cleared: every record of req ends (a request dispatched twice has
 * two) */
static void access_on_log(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    for (hread **p = &live; *p;) {
        hread *h = *p;
        if (h->req != req) {
            p = &h->next;
            continue;
        }
        *p = h->next;
        hread_end(h);
    }
}

void sr_access_http_logger(h2o_pathconf_t *pc)
{
    h2o_logger_t *l = h2o_create_logger(pc, sizeof *l);
    l->log_access = access_on_log;
}

static void hread_point(hread *h, const char *s, size_t n)
{
    if (h->npl < SR_ACCESS_POINTS_MAX && n < 72) {
        char *t = h->npl ? h2o_mem_alloc_pool(&h->req->pool, n + 1) : h->p0;
        memcpy(t, s, n);
        t[n] = 0;
        h->pts[h->npl++] = t;
    }
    h->npoints++;
}

/* s into a 72-byte field, cut */
static void cpy72(char d[72], const char *s)
{
    size_t n = strlen(s);
    if (n > 71) n = 71;
    memcpy(d, s, n);
    d[n] = 0;
}

static hread *hread_new(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                        sr_actor_kind kind, const char *actor);

int sr_access_http_begin(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                         sr_actor_kind kind, const char *actor)
{
    if (!sr_access_on(a)) return 0;
    if (!sr_access_admit(a)) {
        sr_http_result(c->req, 0, SR_WIRE_BUSY, "the audit trail cannot take this read now: retry later", NULL);
        return -1;
    }
    (void)hread_new(a, c, binding, op, kind, actor);
    return 0;
}

void sr_access_http_write(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                          sr_actor_kind kind, const char *actor)
{
    if (!refusals_on(a)) return;
    hread *h = hread_new(a, c, binding, op, kind, actor);
    h->write = 1;
}

void sr_access_http_point(h2o_req_t *req, const char *id)
{
    hread *h = id ? live_of(req) : NULL;
    if (h) hread_point(h, id, strlen(id));
}

static hread *hread_new(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                        sr_actor_kind kind, const char *actor)
{
    h2o_req_t *req = c->req;
    /* the record in the request's pool (a bump), on the thread's live list
     * until access_on_log ends it */
    hread *h = h2o_mem_alloc_pool(&req->pool, sizeof *h);
    memset(h, 0, offsetof(hread, pts)); /* the rest (points, op, actor, peer) is written before it is read */
    h->a = a;
    h->req = req;
    h->next = live;
    live = h;
    h->binding = binding;
    h->method = c->route->method;
    h->route = c->route->path;
    h->kind = kind;
    cpy72(h->op, op);
    cpy72(h->actor, actor);
    if (!sr_fwd_client_addr(req, h->fwd)) h->fwd[0] = 0;
    h->peer.ss_family = AF_UNSPEC;
    if (!req->conn->callbacks->get_peername ||
        !req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&h->peer))
        h->peer.ss_family = AF_UNSPEC;
    /* the data points: the query's dataId parameters, else the path's
     * parameters (a document, a file, a request, a monitor, a subject) */
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            if (!amp) amp = end;
            if (amp - q >= 7 && !memcmp(q, "dataId=", 7)) {
                const char *v = q + 7;
                size_t vl = (size_t)(amp - v);
                if (vl < 72 && !memchr(v, '%', vl) && !memchr(v, '+', vl)) hread_point(h, v, vl); /* as sent */
                else {
                    char id[72];
                    size_t l = 0;
                    if (sr_pct_decode(v, vl, 1, id, sizeof id, &l) != SR_PCT_OK) l = 0;
                    hread_point(h, id, l);
                }
            }
            q = amp + 1;
        }
    }
    if (!h->npoints && c->nparams) {
        char v[256];
        size_t n = 0;
        for (size_t i = 0; i < c->nparams && n < sizeof v; i++)
            if (!c->too_long[i])
                n += (size_t)snprintf(v + n, sizeof v - n, "%s%s", n ? "/" : "", c->value[i]);
        if (n >= sizeof v) n = sizeof v - 1;
        if (n) hread_point(h, v, n < 71 ? n : 71);
    }
    return h;
}

void sr_access_http_values(h2o_req_t *req, uint64_t n)
{
    hread *h = live_of(req);
    if (h) h->values += n;
}
