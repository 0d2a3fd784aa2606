/*
 * api/access.c -- the reads' batches of the audit trail (api/access.h).
 *
 * A group per reader (operator, kind, actor) holds the entries added since
 * the last write, their copied strings in one arena (offsets, so the arena
 * may grow). A write turns each group into one AccessEvent (sr_cmd_access)
 * kept as a batch until the writer acknowledges it; a batch the writer
 * could not take or failed is submitted again at the next write. `held`
 * counts the entries of the groups and of the batches not acknowledged:
 * sr_access_admit compares it with buffer_max.
 *
 * INVARIANTS
 *  (1) held == the entries of every group + of every batch on the list.
 *  (2) A batch leaves the list only when the writer acknowledged it (or
 *      refused it as malformed: a bug, logged, never retried).
 *  (3) Submits happen outside the mutex (a completion takes it on the
 *      writer thread).
 *  (4) Refusals (sr_access_refused) are groups of their own, one wire code
 *      each; such a group holds at most refusals_per_batch entries (the
 *      rest counted in its `dropped`, written in its batch), and none is
 *      added while held >= buffer_max (counted in rdropped): what a flood
 *      of refused messages makes the server write is bounded per actor and
 *      code by refusals_per_batch entries per batch.
 */
#include "api/access.h"

#include "api/slog.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ent {
    int64_t t;
    const char *binding, *method, *route, *code; /* static (access.h invariant 2) */
    uint32_t src, pts[SR_ACCESS_POINTS_MAX];     /* offsets into the group's arena */
    uint32_t npl, npoints, status;
    uint64_t values, bytes;
} ent;

typedef struct group {
    char op[72], actor[72];
    sr_actor_kind kind;
    const char *rcode; /* a group of refusals: their one wire code (static); NULL: reads */
    uint64_t dropped;  /* refusals beyond refusals_per_batch since the last seal */
    ent *v;
    size_t n, cap;
    sr_buf str;
} group;

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
    size_t ng, capg, ingroups;
    batch *batches;
    uint64_t held, entries, written, refused;
    uint64_t rentries, rdropped; /* refusals recorded, refusals dropped by a bound */
    int stopped;                 /* sr_access_stop: nothing more */
    int64_t last_ms;
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
    a->last_ms = mono_ms();
    return a;
}

int sr_access_on(const sr_access *a) { return a && a->o.reads; }
static int refusals_on(const sr_access *a) { return a && a->o.refusals_per_batch && !a->stopped; }

int sr_access_admit(sr_access *a)
{
    if (!sr_access_on(a)) return 1;
    pthread_mutex_lock(&a->mu);
    int ok = a->held < a->o.buffer_max;
    if (!ok) a->refused++;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

static uint32_t arena_put(sr_buf *b, const char *s)
{
    uint32_t off = (uint32_t)b->len;
    if (sr_buf_append(b, s ? s : "", strlen(s ? s : "") + 1)) return UINT32_MAX;
    return off;
}

static group *group_of(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const char *rcode)
{
    for (size_t i = 0; i < a->ng; i++) {
        group *g = &a->g[i];
        if (g->kind == kind && !strcmp(g->actor, actor) && !strcmp(g->op, op) &&
            (g->rcode && rcode ? !strcmp(g->rcode, rcode) : g->rcode == rcode))
            return g;
    }
    if (strlen(op) >= sizeof a->g->op || strlen(actor) >= sizeof a->g->actor) return NULL;
    if (a->ng == a->capg) {
        size_t nc = a->capg ? a->capg * 2 : 8;
        group *ng = realloc(a->g, nc * sizeof *ng);
        if (!ng) return NULL;
        a->g = ng;
        a->capg = nc;
    }
    group *g = &a->g[a->ng++];
    memset(g, 0, sizeof *g);
    strcpy(g->op, op);
    strcpy(g->actor, actor);
    g->kind = kind;
    g->rcode = rcode;
    sr_buf_init(&g->str);
    return g;
}

/* The groups into batches (under the mutex): groups emptied, batches made
 * ready to submit. */
static void seal_groups(sr_access *a)
{
    for (size_t i = 0; i < a->ng; i++) {
        group *g = &a->g[i];
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
        int rc = g->rcode ? sr_cmd_refusals(&env, x, g->n, g->dropped, &b->ev) : sr_cmd_access(&env, x, g->n, &b->ev);
        free(x);
        if (rc) {
            sr_slog(SR_LOG_ERROR, "access batch not built", "op=%s actor=%s entries=%zu error=%s", g->op, g->actor,
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
    /* groups with nothing go (readers come and go); their arenas too */
    size_t w = 0;
    for (size_t i = 0; i < a->ng; i++) {
        if (a->g[i].n) a->g[w++] = a->g[i];
        else {
            free(a->g[i].v);
            sr_buf_release(&a->g[i].str);
        }
    }
    a->ng = w;
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
        a->held -= b->n;
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

/* en into g (under the mutex); 0, or -1: out of memory (not recorded) */
static int add_locked(sr_access *a, group *g, const sr_access_entry *en)
{
    ent *e = NULL;
    if (g && g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        ent *nv = realloc(g->v, nc * sizeof *nv);
        if (nv) g->v = nv, g->cap = nc;
    }
    if (g && g->n < g->cap) {
        e = &g->v[g->n];
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
            e = NULL;
        } else {
            g->n++;
            a->ingroups++;
            a->held++;
            a->entries++;
        }
    }
    return e ? 0 : -1;
}

void sr_access_add(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en)
{
    if (!sr_access_on(a) || !op || !actor) return;
    pthread_mutex_lock(&a->mu);
    group *g = group_of(a, op, kind, actor, NULL);
    if (add_locked(a, g, en))
        sr_slog(SR_LOG_ERROR, "access entry not recorded: out of memory", "op=%s actor=%s", op, actor);
    int full = a->ingroups >= a->o.batch_max || (g && g->n >= SR_ACCESS_ENTRIES_MAX);
    pthread_mutex_unlock(&a->mu);
    if (full) (void)sr_access_flush(a);
}

void sr_access_refused(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en)
{
    if (!refusals_on(a) || !op || !actor || !en->code || !en->code[0]) return;
    pthread_mutex_lock(&a->mu);
    group *g = a->held < a->o.buffer_max ? group_of(a, op, kind, actor, en->code) : NULL;
    int recorded = 0;
    if (g && g->n >= a->o.refusals_per_batch) g->dropped++; /* (4): the bound; counted in the batch */
    else if (g && !add_locked(a, g, en)) recorded = 1;
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
    s->refused = a->refused;
    s->held = a->held;
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
        uint64_t left = a->held;
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
        free(a->g[i].v);
        sr_buf_release(&a->g[i].str);
    }
    free(a->g);
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

#define ENV_ACCESS "sr-access"

typedef struct hread {
    sr_access *a;
    h2o_req_t *req;
    const char *binding, *method, *route;
    char op[72], actor[72], src[64];
    sr_actor_kind kind;
    char pts[SR_ACCESS_POINTS_MAX][72];
    uint32_t npl, npoints;
    uint64_t values;
    int write; /* a write or control: recorded only if refused (sr_access_http_write) */
} hread;

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* the request ended: its entry */
static void hread_dispose(void *p)
{
    hread *h = p;
    h2o_req_t *req = h->req;
    h2o_iovec_t *cv = h2o_req_getenv(req, H2O_STRLIT(SR_HTTP_ENV_CODE), 0);
    unsigned st = req->res.status > 0 ? (unsigned)req->res.status : 0;
    sr_access_entry en = {.time_ms = wall_now(), .binding = h->binding, .method = h->method, .route = h->route,
                          .npoints_listed = h->npl, .npoints = h->npoints, .values = h->values,
                          .bytes = req->bytes_sent, .status = st,
                          .code = st >= 400 && cv && cv->base ? cv->base : "", .source = h->src};
    for (uint32_t i = 0; i < h->npl; i++) en.points[i] = h->pts[i];
    if (!h->write) sr_access_add(h->a, h->op, h->kind, h->actor, &en);
    else if (st >= 400 && st < 500 && st != 429 && en.code[0]) sr_access_refused(h->a, h->op, h->kind, h->actor, &en);
}

static void hread_point(hread *h, const char *s, size_t n)
{
    if (h->npl < SR_ACCESS_POINTS_MAX && n < sizeof h->pts[0]) {
        memcpy(h->pts[h->npl], s, n);
        h->pts[h->npl++][n] = 0;
    }
    h->npoints++;
}

static hread *hread_new(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                        sr_actor_kind kind, const char *actor);

int sr_access_http_begin(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                         sr_actor_kind kind, const char *actor)
{
    if (!sr_access_on(a)) return 0;
    h2o_req_t *req = c->req;
    if (!sr_access_admit(a)) {
        sr_http_result(req, 0, SR_WIRE_BUSY, "the audit trail cannot take this read now: retry later", NULL);
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
    h2o_iovec_t *ev = h2o_req_getenv(req, H2O_STRLIT(ENV_ACCESS), 0);
    if (ev && ev->base && ev->len == sizeof(hread) && id) hread_point((hread *)ev->base, id, strlen(id));
}

static hread *hread_new(sr_access *a, const sr_route_call *c, const char *binding, const char *op,
                        sr_actor_kind kind, const char *actor)
{
    h2o_req_t *req = c->req;
    hread *h = h2o_mem_alloc_shared(&req->pool, sizeof *h, hread_dispose);
    memset(h, 0, sizeof *h);
    h->a = a;
    h->req = req;
    h->binding = binding;
    h->method = c->route->method;
    h->route = c->route->path;
    h->kind = kind;
    snprintf(h->op, sizeof h->op, "%s", op);
    snprintf(h->actor, sizeof h->actor, "%s", actor);
    sr_login_addr_req(req, h->src);
    /* the data points: the query's dataId parameters, else the path's
     * parameters (a document, a file, a request, a monitor, a subject) */
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            if (!amp) amp = end;
            if (amp - q >= 7 && !memcmp(q, "dataId=", 7)) {
                char id[72];
                size_t l = 0;
                if (sr_pct_decode(q + 7, (size_t)(amp - q - 7), 1, id, sizeof id, &l) != SR_PCT_OK) l = 0;
                hread_point(h, id, l);
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
    h2o_iovec_t *ev = h2o_req_getenv(req, H2O_STRLIT(ENV_ACCESS), 1);
    if (ev) {
        ev->base = (char *)h;
        ev->len = sizeof *h;
    }
    return h;
}

void sr_access_http_values(h2o_req_t *req, uint64_t n)
{
    h2o_iovec_t *ev = h2o_req_getenv(req, H2O_STRLIT(ENV_ACCESS), 0);
    if (ev && ev->base && ev->len == sizeof(hread)) ((hread *)ev->base)->values += n;
}
