/* api/ryw.c -- read-your-writes: the Suiro-Seq token, its parser, the
 * bounded waiter list and the dispatchers' wait hook (the contract, the
 * grammar and the invariants: api/ryw.h; the design: docs/cluster.md
 * "Read-your-writes").
 *
 * Threads: sr_ryw_appended runs on the engine's writer thread (an atomic
 * maximum, and a uv_async_send under a mutex while a request waits, so that
 * sr_ryw_stop can close the handle safely); everything else on the loop.
 */
#include "api/ryw.h"

#include "api/cluster.h"
#include "api/httpu.h"
#include "api/slog.h"

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the token ---- */

/* Digits at s[*i..n) as an unsigned 64-bit number: 0 and *v, or -1 (none,
 * more than 20, or over UINT64_MAX). */
static int digits(const char *s, size_t n, size_t *i, uint64_t *v)
{
    size_t k = *i;
    uint64_t x = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9') {
        unsigned d = (unsigned)(s[k] - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
        k++;
    }
    if (k == *i) return -1;
    *i = k;
    *v = x;
    return 0;
}

static int name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int bad(char *err, size_t errlen, size_t at, const char *what)
{
    snprintf(err, errlen, "%s (at byte %zu); a token is <seq> or <partition>:<streamSeq>[@<node>:<seq>], "
                          "comma-separated",
             what, at);
    return SR_EINVAL;
}

int sr_ryw_parse(const char *s, size_t n, sr_ryw_tok *out, size_t max, size_t *count, char *err, size_t errlen)
{
    *count = 0;
    if (err && errlen) err[0] = 0;
    if (n > SR_RYW_TEXT_MAX) {
        snprintf(err, errlen, "too long: %zu bytes, at most %u", n, SR_RYW_TEXT_MAX);
        return SR_EINVAL;
    }
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i == n) return bad(err, errlen, i, "empty");
    for (;;) {
        if (*count == max) return bad(err, errlen, i, "too many tokens");
        sr_ryw_tok t;
        memset(&t, 0, sizeof t);
        uint64_t a;
        if (digits(s, n, &i, &a)) return bad(err, errlen, i, "a number expected");
        if (i < n && s[i] == ':') {
            i++;
            if (a >= SR_CLUSTER_MAX_PARTITIONS) return bad(err, errlen, i, "partition out of range");
            t.cluster = 1;
            t.part = (uint32_t)a;
            if (digits(s, n, &i, &t.sseq)) return bad(err, errlen, i, "a stream seq expected after ':'");
            if (i < n && s[i] == '@') {
                i++;
                size_t k = 0;
                while (i < n && name_char(s[i])) {
                    if (k == sizeof t.node - 1) return bad(err, errlen, i, "node name longer than 31");
                    t.node[k++] = s[i++];
                }
                if (!k) return bad(err, errlen, i, "a node name expected after '@'");
                if (i >= n || s[i] != ':') return bad(err, errlen, i, "':' expected after the node name");
                i++;
                if (digits(s, n, &i, &t.seq)) return bad(err, errlen, i, "a seq expected after the node");
                if (!t.seq) return bad(err, errlen, i, "seq 0 (seqs start at 1)");
            } else if (!t.sseq) {
                return bad(err, errlen, i, "stream seq 0 without @node:seq");
            }
        } else {
            if (!a) return bad(err, errlen, i, "seq 0 (seqs start at 1)");
            t.seq = a;
        }
        out[(*count)++] = t;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i == n) return SR_OK;
        if (s[i] != ',') return bad(err, errlen, i, "',' or the end expected");
        i++;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    }
}

int sr_ryw_format(const sr_ryw_tok *t, size_t n, char *buf, size_t cap)
{
    size_t off = 0;
    if (!cap) return -1;
    buf[0] = 0;
    for (size_t k = 0; k < n; k++) {
        int w;
        const char *sep = k ? "," : "";
        if (!t[k].cluster) w = snprintf(buf + off, cap - off, "%s%" PRIu64, sep, t[k].seq);
        else if (t[k].node[0])
            w = snprintf(buf + off, cap - off, "%s%u:%" PRIu64 "@%s:%" PRIu64, sep, t[k].part, t[k].sseq, t[k].node,
                         t[k].seq);
        else w = snprintf(buf + off, cap - off, "%s%u:%" PRIu64, sep, t[k].part, t[k].sseq);
        if (w < 0 || (size_t)w >= cap - off) return -1;
        off += (size_t)w;
    }
    return (int)off;
}

int sr_ryw_parse_ms(const char *s, size_t n, uint32_t *ms, char *err, size_t errlen)
{
    size_t i = 0;
    uint64_t v;
    if (n > 12 || digits(s, n, &i, &v) || i != n || v > SR_RYW_WAIT_MS_MAX) {
        snprintf(err, errlen, "milliseconds 0..%u expected", SR_RYW_WAIT_MS_MAX);
        return SR_EINVAL;
    }
    *ms = (uint32_t)v;
    return SR_OK;
}

/* ---- the waiter list ---- */

int sr_ryw_list_init(sr_ryw_list *l, size_t cap, size_t per_op)
{
    l->n = 0;
    l->cap = cap;
    l->per_op = per_op;
    l->w = calloc(cap ? cap : 1, sizeof *l->w);
    return l->w ? SR_OK : SR_ENOMEM;
}

void sr_ryw_list_destroy(sr_ryw_list *l)
{
    free(l->w);
    l->w = NULL;
    l->n = l->cap = 0;
}

size_t sr_ryw_list_count_op(const sr_ryw_list *l, const char *op)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) k += !strcmp(l->w[i].op, op);
    return k;
}

int sr_ryw_list_add(sr_ryw_list *l, const sr_ryw_waiter *w)
{
    if (l->n >= l->cap) return SR_EFULL;
    if (l->per_op < l->cap && sr_ryw_list_count_op(l, w->op) >= l->per_op) return SR_RYW_OPFULL;
    l->w[l->n++] = *w;
    return SR_OK;
}

int64_t sr_ryw_list_sweep(sr_ryw_list *l, int64_t now, sr_ryw_check_fn check, sr_ryw_done_fn done, void *arg)
{
    /* decide first, then compact, then call done (which may add) */
    enum { CAP = 64 };
    int64_t next = INT64_MAX;
    for (;;) {
        sr_ryw_waiter out[CAP];
        int outcome[CAP];
        char errs[CAP][160];
        size_t nout = 0, keep = 0, k = 0;
        for (; k < l->n && nout < CAP; k++) {
            sr_ryw_waiter *w = &l->w[k];
            char err[160] = "";
            int r = check(arg, w, err, sizeof err);
            int o = r > 0 ? SR_RYW_REACHED : r < 0 ? SR_RYW_ERROR : w->deadline_ms <= now ? SR_RYW_TIMEOUT : 0;
            if (o) {
                out[nout] = *w;
                outcome[nout] = o;
                memcpy(errs[nout], err, sizeof err);
                nout++;
            } else {
                if (keep != k) l->w[keep] = *w;
                keep++;
            }
        }
        /* the rest (not looked at: out is full) stays as it is, in order */
        size_t rest = l->n - k;
        if (rest && keep != k) memmove(&l->w[keep], &l->w[k], rest * sizeof *l->w);
        l->n = keep + rest;
        for (size_t j = 0; j < nout; j++) done(arg, &out[j], outcome[j], errs[j]);
        if (!rest) break;
        if (!nout) break; /* (cannot happen: out not full means every waiter was looked at) */
    }
    for (size_t k = 0; k < l->n; k++)
        if (l->w[k].deadline_ms < next) next = l->w[k].deadline_ms;
    return next;
}

/* ---- the server's glue ---- */

typedef struct wctx {
    sr_http_ctx h;
    sr_ryw_resume_fn resume;
    void *binding;
    char text[SR_RYW_TEXT_MAX + 1];
    uint32_t wait_ms;
} wctx;

static struct {
    pthread_mutex_t mu; /* active and the async handle, against the writer's hook */
    int active;
    _Atomic uint64_t applied; /* the index applied every event up to this */
    _Atomic uint32_t waiting; /* l.n, for the hook */
    _Atomic uint64_t st_at_once, st_waited, st_timeout, st_refused;
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t timer;
    sr_engine *e;
    char node[32];
    sr_ryw_list l;
    int resuming; /* the loop is calling a waiter's dispatcher again: the gate lets it through */
    int64_t timer_at;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int tok_reached(const sr_ryw_tok *t, char *err, size_t errlen)
{
    if (!t->cluster || (g.node[0] && !strcmp(t->node, g.node))) return atomic_load(&g.applied) >= t->seq;
    if (!g.node[0]) {
        snprintf(err, errlen, "a cluster token (partition:streamSeq) sent to a node not in cluster mode");
        return -1;
    }
    if (!sr_csub_owns(sr_cluster_consumers(), t->part)) {
        snprintf(err, errlen, "partition %u is not owned by this node (%s): read from its owner (GET /admin/v1/cluster)",
                 t->part, g.node);
        return -1;
    }
    uint64_t ck = 0;
    if (t->sseq && sr_engine_cluster_ckpt(g.e, t->part, 2, &ck) == SR_OK && ck >= t->sseq) return 1;
    uint64_t local = 0;
    if (t->node[0] && sr_engine_origin_seen(g.e, t->node, t->seq, &local) == SR_OK) return 1;
    return 0;
}

static int check_all(void *arg, const sr_ryw_waiter *w, char *err, size_t errlen)
{
    (void)arg;
    wctx *x = w->ctx;
    if (x && !x->h.req) return 1; /* its request went: out of the list (done answers nothing) */
    for (size_t k = 0; k < w->ntok; k++) {
        int r = tok_reached(&w->tok[k], err, errlen);
        if (r <= 0) return r;
    }
    return 1;
}

static void answer_wait_error(h2o_req_t *req, int outcome, const char *text, uint32_t ms, const char *err)
{
    char m[400];
    json_t *d;
    if (outcome == SR_RYW_TIMEOUT) {
        snprintf(m, sizeof m, "Suiro-Wait: %s not reached on this node within %u ms; retry", text, ms);
        d = json_pack("{s:s,s:s}", "field", "header Suiro-Wait", "reason", "timeout");
        sr_http_result(req, 429, SR_WIRE_BUSY, m, d); /* (429 sets Retry-After: 1) */
    } else if (outcome == SR_RYW_ERROR) {
        snprintf(m, sizeof m, "Suiro-Wait: %s", err);
        d = json_pack("{s:s,s:s}", "field", "header Suiro-Wait", "reason", "not-here");
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        sr_http_result(req, 503, SR_WIRE_BUSY, m, d);
    } else if (outcome == SR_RYW_OPFULL) {
        snprintf(m, sizeof m, "Suiro-Wait: too many requests of this operator wait (at most %u); retry",
                 (unsigned)SR_RYW_WAITERS_PER_OP);
        d = json_pack("{s:s,s:s}", "field", "header Suiro-Wait", "reason", "operator-waiters-full");
        sr_http_result(req, 429, SR_WIRE_BUSY, m, d);
    } else {
        snprintf(m, sizeof m, "Suiro-Wait: too many requests wait (at most %u); retry", SR_RYW_WAITERS_MAX);
        d = json_pack("{s:s,s:s}", "field", "header Suiro-Wait", "reason", "waiters-full");
        sr_http_result(req, 429, SR_WIRE_BUSY, m, d);
    }
    json_decref(d);
}

static void waiter_done(void *arg, const sr_ryw_waiter *w, int outcome, const char *err)
{
    (void)arg;
    wctx *x = w->ctx;
    h2o_req_t *req = x->h.req;
    if (req) {
        if (outcome == SR_RYW_REACHED) {
            atomic_fetch_add(&g.st_waited, 1);
            g.resuming = 1;
            x->resume(x->binding, req);
            g.resuming = 0;
        } else {
            atomic_fetch_add(outcome == SR_RYW_TIMEOUT ? &g.st_timeout : &g.st_refused, 1);
            answer_wait_error(req, outcome, x->text, x->wait_ms, err);
        }
    }
    sr_http_ctx_unref(&x->h);
}

static void on_timer(uv_timer_t *t);

static void sweep(void)
{
    if (!g.l.n) return;
    int64_t now = (int64_t)uv_now(g.loop);
    int64_t next = sr_ryw_list_sweep(&g.l, now, check_all, waiter_done, NULL);
    atomic_store(&g.waiting, (uint32_t)g.l.n);
    if (next == INT64_MAX) {
        uv_timer_stop(&g.timer);
        g.timer_at = INT64_MAX;
    } else if (next != g.timer_at) {
        g.timer_at = next;
        uv_timer_start(&g.timer, on_timer, next > now ? (uint64_t)(next - now) : 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    g.timer_at = INT64_MAX;
    sweep();
}

static void on_async(uv_async_t *a)
{
    (void)a;
    sweep();
}

int sr_ryw_start(uv_loop_t *loop, sr_engine *e, const char *node)
{
    if (sr_ryw_list_init(&g.l, SR_RYW_WAITERS_MAX, SR_RYW_WAITERS_PER_OP)) return SR_ENOMEM;
    g.loop = loop;
    g.e = e;
    snprintf(g.node, sizeof g.node, "%s", node ? node : "");
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    uint64_t a = atomic_load(&g.applied);
    if (st.watermark > a) atomic_store(&g.applied, st.watermark);
    uv_async_init(loop, &g.async, on_async);
    uv_timer_init(loop, &g.timer);
    g.timer_at = INT64_MAX;
    pthread_mutex_lock(&g.mu);
    g.active = 1;
    pthread_mutex_unlock(&g.mu);
    return SR_OK;
}

void sr_ryw_stop(void)
{
    pthread_mutex_lock(&g.mu);
    int was = g.active;
    g.active = 0;
    pthread_mutex_unlock(&g.mu);
    if (!was) return;
    for (size_t k = 0; k < g.l.n; k++) {
        wctx *x = g.l.w[k].ctx;
        if (x->h.req) {
            h2o_add_header(&x->h.req->pool, &x->h.req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
            sr_http_result(x->h.req, 503, SR_WIRE_BUSY, "server stopping", NULL);
        }
        sr_http_ctx_unref(&x->h);
    }
    g.l.n = 0;
    atomic_store(&g.waiting, 0);
    uv_close((uv_handle_t *)&g.async, NULL);
    uv_close((uv_handle_t *)&g.timer, NULL);
    sr_ryw_list_destroy(&g.l);
}

void sr_ryw_appended(uint64_t last)
{
    uint64_t a = atomic_load(&g.applied);
    while (a < last && !atomic_compare_exchange_weak(&g.applied, &a, last)) {
    }
    if (!atomic_load_explicit(&g.waiting, memory_order_relaxed)) return;
    pthread_mutex_lock(&g.mu);
    if (g.active) uv_async_send(&g.async);
    pthread_mutex_unlock(&g.mu);
}

void sr_ryw_engine_hook(void *ctx, uint64_t last)
{
    (void)ctx;
    sr_ryw_appended(last);
}

/* The value of request header name (lower case), or NULL. */
static const h2o_iovec_t *header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i < 0 ? NULL : &req->headers.entries[i].value;
}

static void answer_bad(h2o_req_t *req, const char *field, const char *err)
{
    char m[400];
    snprintf(m, sizeof m, "%s: %s", field, err);
    char f[40];
    snprintf(f, sizeof f, "header %s", field);
    json_t *d = json_pack("{s:s}", "field", f);
    sr_http_result(req, 400, SR_WIRE_PARAM, m, d);
    json_decref(d);
}

int sr_ryw_gate(h2o_req_t *req, const char *op, sr_ryw_resume_fn resume, void *binding)
{
    if (g.resuming || !g.active) return 0;
    const h2o_iovec_t *v = header(req, H2O_STRLIT("suiro-wait"));
    if (!v) return 0;
    sr_ryw_waiter w;
    memset(&w, 0, sizeof w);
    char err[240];
    if (sr_ryw_parse(v->base, v->len, w.tok, SR_RYW_MAX_TOKENS, &w.ntok, err, sizeof err)) {
        answer_bad(req, "Suiro-Wait", err);
        return 1;
    }
    uint32_t ms = SR_RYW_WAIT_MS_DEFAULT;
    const h2o_iovec_t *mv = header(req, H2O_STRLIT("suiro-wait-ms"));
    if (mv && sr_ryw_parse_ms(mv->base, mv->len, &ms, err, sizeof err)) {
        answer_bad(req, "Suiro-Wait-Ms", err);
        return 1;
    }
    char text[SR_RYW_TEXT_MAX + 1];
    if (sr_ryw_format(w.tok, w.ntok, text, sizeof text) < 0) snprintf(text, sizeof text, "(token)");
    int r = check_all(NULL, &w, err, sizeof err);
    if (r > 0) {
        atomic_fetch_add(&g.st_at_once, 1);
        return 0;
    }
    if (r < 0 || !ms) {
        atomic_fetch_add(r < 0 ? &g.st_refused : &g.st_timeout, 1);
        answer_wait_error(req, r < 0 ? SR_RYW_ERROR : SR_RYW_TIMEOUT, text, ms, err);
        return 1;
    }
    snprintf(w.op, sizeof w.op, "%s", op ? op : "");
    if (g.l.n >= g.l.cap || sr_ryw_list_count_op(&g.l, w.op) >= g.l.per_op) { /* invariant 2 */
        atomic_fetch_add(&g.st_refused, 1);
        answer_wait_error(req, g.l.n >= g.l.cap ? 0 : SR_RYW_OPFULL, text, ms, "");
        return 1;
    }
    wctx *x = sr_http_ctx_new(req, sizeof *x);
    if (!x) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return 1;
    }
    x->resume = resume;
    x->binding = binding;
    x->wait_ms = ms;
    memcpy(x->text, text, sizeof x->text);
    x->h.refs++; /* the list's */
    w.ctx = x;
    w.deadline_ms = (int64_t)uv_now(g.loop) + ms;
    int arc = sr_ryw_list_add(&g.l, &w);
    if (arc) { /* (checked above) */
        sr_http_ctx_unref(&x->h);
        atomic_fetch_add(&g.st_refused, 1);
        answer_wait_error(req, arc == SR_RYW_OPFULL ? SR_RYW_OPFULL : 0, text, ms, "");
        return 1;
    }
    /* two references: the list's (waiter_done drops it), the request's (its dispose) */
    atomic_store(&g.waiting, (uint32_t)g.l.n);
    if (w.deadline_ms < g.timer_at) {
        g.timer_at = w.deadline_ms;
        uv_timer_start(&g.timer, on_timer, ms, 0);
    }
    /* an append between the check and the store of waiting sent no wake-up: look again */
    uv_async_send(&g.async);
    return 1;
}

int sr_ryw_token_of(const sr_result *r, char *buf, size_t cap)
{
    if (!r || r->rc || !cap) return 0;
    uint64_t last = r->seq + (r->count ? r->count - 1 : 0);
    if (!last) return 0;
    sr_ryw_tok t;
    memset(&t, 0, sizeof t);
    t.seq = last;
    if (g.node[0]) {
        uint32_t part = r->part;
        uint64_t sseq = r->stream_seq;
        if (!sseq && !sr_cluster_stream_seq(last, &part, &sseq)) return 0;
        t.cluster = 1;
        t.part = part;
        t.sseq = sseq;
        snprintf(t.node, sizeof t.node, "%s", g.node);
    }
    int n = sr_ryw_format(&t, 1, buf, cap);
    return n < 0 ? 0 : n;
}

void sr_ryw_answer_header(h2o_req_t *req, const sr_result *r)
{
    char t[128];
    int n = req ? sr_ryw_token_of(r, t, sizeof t) : 0;
    if (n <= 0) return;
    h2o_iovec_t v = h2o_strdup(&req->pool, t, (size_t)n);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("Suiro-Seq"), 0, NULL, v.base, v.len);
}

void sr_ryw_get_stats(sr_ryw_stats *out)
{
    out->at_once = atomic_load(&g.st_at_once);
    out->waited = atomic_load(&g.st_waited);
    out->timeout = atomic_load(&g.st_timeout);
    out->refused = atomic_load(&g.st_refused);
    out->waiting = atomic_load(&g.waiting);
}
