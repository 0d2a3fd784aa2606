/* api/cluster_fwd.c -- forwarding requests to their partition's owner (see
 * cluster_fwd.h; docs/cluster.md "Forwarding"). */
#include "api/cluster_fwd.h"

#include "api/cluster.h"
#include "api/curlloop.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/slog.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <h2o.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pure decision ---------------------------------------------------- */

sr_fwd_verdict sr_fwd_decide(int fwd, const char *op, int forwarded, const sr_fwd_view *v, uint32_t *part)
{
    *part = 0;
    if (!v || !v->enabled || !v->partitions || fwd == SR_FWD_NONE) return SR_FWDV_LOCAL;
    if (fwd == SR_FWD_OPERATOR) {
        if (!op || !op[0]) return SR_FWDV_LOCAL; /* no operator: the handler refuses it here */
        *part = sr_cluster_partition(op, v->partitions);
    } else if (fwd != SR_FWD_PLATFORM)
        return SR_FWDV_LOCAL;
    if (v->owns && v->owns(v->ctx, *part)) return SR_FWDV_LOCAL;
    return forwarded ? SR_FWDV_REFUSE : SR_FWDV_FORWARD; /* invariant 2: one hop */
}

int sr_fwd_outcome_unknown(const char *method, size_t mlen, int reached)
{
    int safe = (mlen == 3 && !memcmp(method, "GET", 3)) || (mlen == 4 && !memcmp(method, "HEAD", 4));
    return reached && !safe;
}

static int is_wildcard(const char *host)
{
    return !host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "[::]") ||
           !strcmp(host, "*");
}

int sr_fwd_url_host(const char *url, char *host, size_t cap)
{
    const char *p = !strncmp(url, "http://", 7) ? url + 7 : !strncmp(url, "https://", 8) ? url + 8 : NULL;
    if (!p || !cap) return -1;
    const char *end;
    if (*p == '[') { /* an IPv6 literal */
        end = strchr(p, ']');
        if (!end || end[1] != ':') return -1;
        p++;
    } else {
        end = strchr(p, ':');
        if (!end) return -1;
    }
    size_t n = (size_t)(end - p);
    if (!n || n >= cap) return -1;
    memcpy(host, p, n);
    host[n] = 0;
    return 0;
}

int sr_fwd_advertise_url(const char *advertise, const char *listen, char *out, size_t outlen, char *err,
                         size_t errlen)
{
    out[0] = 0;
    if (advertise && advertise[0]) {
        char host[160];
        const char *hp = strstr(advertise, "://");
        const char *port = NULL;
        int ok = !sr_fwd_url_host(advertise, host, sizeof host) && !is_wildcard(host) && hp;
        if (ok) { /* the port: digits to the end (no path, no query) */
            port = strrchr(hp + 3, ':');
            ok = port && port[1];
            for (const char *q = port ? port + 1 : ""; ok && *q; q++) ok = isdigit((unsigned char)*q);
            if (ok) ok = atoi(port + 1) > 0 && atoi(port + 1) < 65536;
        }
        if (!ok || strlen(advertise) >= outlen) {
            snprintf(err, errlen,
                     "[cluster] advertise: '%s' is not a base URL http://host:port or https://host:port (no path, "
                     "not a wildcard address)",
                     advertise);
            return -1;
        }
        snprintf(out, outlen, "%s", advertise);
        return 0;
    }
    if (!listen || !listen[0]) return 0; /* no HTTP listener: nothing to advertise */
    const char *colon = strrchr(listen, ':');
    char host[160];
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (!colon || n >= sizeof host) {
        snprintf(err, errlen, "[http] listen: '%s' is not host:port", listen);
        return -1;
    }
    memcpy(host, listen, n);
    host[n] = 0;
    if (is_wildcard(host)) {
        snprintf(err, errlen,
                 "[cluster] advertise is needed: [http] listen '%s' is a wildcard address, which peers cannot "
                 "forward requests to; set advertise = http://<this node's address>:<port>",
                 listen);
        return -1;
    }
    int k = snprintf(out, outlen, "http://%s", listen);
    if (k < 0 || (size_t)k >= outlen) {
        snprintf(err, errlen, "[http] listen: '%s' is too long", listen);
        out[0] = 0;
        return -1;
    }
    return 0;
}

/* ---- the forwarder -------------------------------------------------------- */

enum { O_RELAYED, O_NO_OWNER, O_UNREACHABLE, O_TIMEOUT, O_NOT_OWNER, O_ERROR, O_N };
static const char *const outcomes[O_N] = {"relayed", "no_owner", "unreachable", "timeout", "not_owner", "error"};
const char *sr_fwd_outcome_name(int i) { return i >= 0 && i < O_N ? outcomes[i] : ""; }
static const uint64_t lat_bounds[] = SR_HIST_US_BOUNDS;

/* the answer's headers relayed (besides Content-Type): the wire contract's */
static const char *const relay_hdrs[] = {"content-disposition", "etag", "location", "retry-after",
                                         "last-modified", "cache-control", "content-range", "accept-ranges"};

enum { RESP_MAX_HDRS = 32, RESP_MAX_BODY = 512u << 20 };

typedef struct xfer {
    sr_http_ctx h;
    struct xfer *next, *prev; /* in flight */
    CURL *e;
    struct curl_slist *hdrs;
    char *body;     /* the request's body, copied */
    sr_buf resp;    /* the answer's body */
    int too_big;
    char ctype[128];
    size_t nh;
    char *hname[RESP_MAX_HDRS], *hval[RESP_MAX_HDRS];
    char owner[32];
    uint32_t part;
    uint64_t t0;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

static struct {
    uv_loop_t *loop;
    sr_curlloop *cl;
    sr_fwd_opts o;
    xfer *flying;
    int closed;
    int64_t last_warn;
    uint64_t suppressed;
    sr_fwd_wlist waiting; /* invariant 4: requests whose session is on its way */
    uv_async_t wake;      /* sr_fwd_session_applied */
} g;
/* the wake handle against the writer's thread: live while wake_on */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static int wake_on;
static _Atomic uint32_t nwaiting;

static _Atomic uint64_t st_outcome[O_N], st_served;
enum { W_WOKEN, W_DEADLINE, W_FULL, W_N };
static _Atomic uint64_t st_wait[W_N];
static sr_hist st_lat;

static uint64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static int64_t mono_ms(void) { return (int64_t)(mono_us() / 1000u); }

static void count(int outcome) { atomic_fetch_add(&st_outcome[outcome], 1); }

/* a WARN line, at most one every 10 s (the others counted into the next) */
static void warn(const char *what, const h2o_req_t *req, uint32_t part, const char *owner, const char *reason)
{
    int64_t t = mono_ms();
    if (g.last_warn && t - g.last_warn < 10000) {
        g.suppressed++;
        return;
    }
    g.last_warn = t;
    sr_slog(SR_LOG_WARN, what, "method=%.*s path=%.*s partition=%u owner=%s reason=%s suppressed=%" PRIu64,
            (int)req->method.len, req->method.base, (int)req->path_normalized.len, req->path_normalized.base, part,
            owner[0] ? owner : "-", sr_slog_q(reason), g.suppressed);
    g.suppressed = 0;
}

static void unavailable(h2o_req_t *req, const char *msg)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    sr_http_result(req, 503, SR_WIRE_BUSY, msg, NULL);
}

static void on_done(void *priv, CURLcode res, long code);
static void on_wake(uv_async_t *a);
static void waiters_stop(void);

int sr_fwd_open(uv_loop_t *loop, const sr_fwd_opts *o, char *err, size_t errlen)
{
    memset(&g, 0, sizeof g);
    g.loop = loop;
    g.o = *o;
    g.waiting.cap = SR_FWD_WAITERS_MAX;
    if (!sr_cluster_has_leases(sr_cluster_self())) return SR_OK; /* nothing is ever forwarded */
    int rc = sr_curlloop_open(loop, on_done, "forwarding", &g.cl, err, errlen);
    if (rc == SR_OK && uv_async_init(loop, &g.wake, on_wake) == 0) {
        pthread_mutex_lock(&wake_mu);
        wake_on = 1;
        pthread_mutex_unlock(&wake_mu);
    }
    return rc;
}

static void xfer_free(xfer *x)
{
    if (x->prev) x->prev->next = x->next;
    else if (g.flying == x) g.flying = x->next;
    if (x->next) x->next->prev = x->prev;
    x->next = x->prev = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    free(x->body);
    x->body = NULL;
    sr_buf_release(&x->resp);
    for (size_t i = 0; i < x->nh; i++) free(x->hname[i]), free(x->hval[i]);
    x->nh = 0;
    sr_http_ctx_unref(&x->h);
}

void sr_fwd_close(void)
{
    if (!g.cl || g.closed) return;
    g.closed = 1;
    waiters_stop();
    while (g.flying) {
        xfer *x = g.flying;
        sr_curlloop_abort(g.cl, x->e);
        xfer_free(x);
    }
    sr_curlloop_dispose(g.cl);
}

void sr_fwd_free(void)
{
    sr_curlloop_free(g.cl);
    g.cl = NULL;
}

int sr_fwd_is_forwarded(h2o_req_t *req)
{
    return h2o_find_header_by_str(&req->headers, H2O_STRLIT("suiro-forwarded-by"), -1) >= 0;
}

/* the request headers forwarded: Authorization, Content-Type, Accept, the
 * conditional ones, and X-* and Suiro-* but the hop headers this node sets */
static int forwarded_header(const h2o_header_t *h)
{
    const char *n = h->name->base;
    size_t l = h->name->len;
#define IS(s) (l == sizeof(s) - 1 && !memcmp(n, s, l))
    if (IS("authorization") || IS("content-type") || IS("accept") || IS("if-match") || IS("if-none-match"))
        return 1;
    if (IS("suiro-forwarded-by") || IS("suiro-forwarded-for")) return 0;
#undef IS
    return (l > 2 && !memcmp(n, "x-", 2)) || (l > 6 && !memcmp(n, "suiro-", 6));
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->resp.len + len > RESP_MAX_BODY) {
        x->too_big = 1;
        return 0; /* curl aborts: CURLE_WRITE_ERROR */
    }
    return sr_buf_append(&x->resp, p, len) ? 0 : len;
}

int sr_fwd_resp_header(const char *p, size_t len, sr_fwd_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (len >= 5 && !memcmp(p, "HTTP/", 5)) return 1;
    const char *colon = memchr(p, ':', len);
    if (!colon) return 0;
    size_t nl = (size_t)(colon - p);
    if (!nl || nl >= sizeof out->name) return 0;
    for (size_t i = 0; i < nl; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (!(isalnum(ch) || ch == '-' || ch == '_')) return 0; /* a token */
        out->name[i] = (char)tolower(ch);
    }
    out->name[nl] = 0;
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    for (const char *q = v; q < end; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t') return 0; /* a control byte: not relayed */
        else if (*q == 0x7f) return 0;
    out->value = v;
    out->vlen = (size_t)(end - v);
    if (!strcmp(out->name, "content-type")) return 2;
    int keep = (nl > 2 && !memcmp(out->name, "x-", 2)) || (nl > 6 && !memcmp(out->name, "suiro-", 6));
    for (size_t i = 0; !keep && i < sizeof relay_hdrs / sizeof relay_hdrs[0]; i++) keep = !strcmp(out->name, relay_hdrs[i]);
    return keep ? 3 : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    sr_fwd_hdr h;
    int k = sr_fwd_resp_header(p, len, &h);
    if (k == 1) { /* a status line: a new answer (after a 1xx) */
        for (size_t i = 0; i < x->nh; i++) free(x->hname[i]), free(x->hval[i]);
        x->nh = 0;
        x->ctype[0] = 0;
        return len;
    }
    if (k == 2) {
        if (h.vlen < sizeof x->ctype) memcpy(x->ctype, h.value, h.vlen), x->ctype[h.vlen] = 0;
        return len;
    }
    if (k != 3 || x->nh == RESP_MAX_HDRS) return len;
    char *hn = strdup(h.name), *hv = malloc(h.vlen + 1);
    if (!hn || !hv) {
        free(hn);
        free(hv);
        return len;
    }
    memcpy(hv, h.value, h.vlen);
    hv[h.vlen] = 0;
    x->hname[x->nh] = hn;
    x->hval[x->nh++] = hv;
    return len;
}

static void on_done(void *priv, CURLcode res, long code)
{
    xfer *x = priv;
    h2o_req_t *req = x->h.req;
    if (req) {
        if (res != CURLE_OK || code < 100) {
            int timeout = res == CURLE_OPERATION_TIMEDOUT;
            int o = timeout ? O_TIMEOUT : x->too_big ? O_ERROR : O_UNREACHABLE;
            count(o);
            char m[200];
            snprintf(m, sizeof m, "the owner of partition %u (%s) %s; retry", x->part, x->owner,
                     timeout ? "did not answer in time" : x->too_big ? "answered more than can be relayed"
                                                                     : "is unreachable");
            int reached = res != CURLE_COULDNT_CONNECT && res != CURLE_COULDNT_RESOLVE_HOST;
            if (sr_fwd_outcome_unknown(req->method.base, req->method.len, reached)) {
                snprintf(m, sizeof m,
                         "the owner of partition %u (%s) %s: the change may have been made; check before sending "
                         "it again",
                         x->part, x->owner,
                         timeout       ? "did not answer in time"
                         : x->too_big ? "answered more than can be relayed"
                                      : "did not answer");
                warn("cluster: a forwarded change without an answer", req, x->part, x->owner,
                     x->errbuf[0] ? x->errbuf : m);
                sr_http_result(req, 500, SR_WIRE_INTERNAL, m, NULL);
            } else {
                warn("cluster: a request not forwarded", req, x->part, x->owner, x->errbuf[0] ? x->errbuf : m);
                unavailable(req, m);
            }
        } else {
            count(O_RELAYED);
            sr_hist_add(&st_lat, lat_bounds, SR_HIST_US_N, mono_us() - x->t0);
            for (size_t i = 0; i < x->nh; i++)
                h2o_add_header_by_str(&req->pool, &req->res.headers, x->hname[i], strlen(x->hname[i]), 1, NULL,
                                      h2o_strdup(&req->pool, x->hval[i], SIZE_MAX).base, strlen(x->hval[i]));
            if (code == 204 || code == 304) {
                req->res.status = (int)code;
                req->res.reason = "";
                h2o_send_inline(req, NULL, 0);
            } else
                sr_http_send(req, (int)code, x->ctype[0] ? x->ctype : "application/octet-stream", x->resp.data,
                             x->resp.len);
        }
    }
    xfer_free(x);
}

/* this node's answer to a request forwarded here names it */
static void served_here(h2o_req_t *req)
{
    const char *node = sr_cluster_node(sr_cluster_self());
    atomic_fetch_add(&st_served, 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("suiro-served-by"), 0, NULL, node, strlen(node));
}

/* owned, and its full consumer caught up (a partition just taken over is not served from a stale index) */
static int owns_cb(void *ctx, uint32_t part)
{
    return sr_cluster_owns(ctx, part) && sr_csub_caught_up(sr_cluster_consumers(), part);
}

int sr_fwd_route(h2o_req_t *req, const sr_route *r, const char *op)
{
    sr_cluster *c = sr_cluster_self();
    int forwarded = sr_fwd_is_forwarded(req);
    sr_fwd_view v = {g.cl && !g.closed && sr_cluster_has_leases(c), sr_cluster_partitions(c), owns_cb, c};
    uint32_t part = 0;
    sr_fwd_verdict d = sr_fwd_decide(r->fwd, op, forwarded, &v, &part);
    if (d == SR_FWDV_LOCAL) {
        if (forwarded && c) served_here(req);
        return 0;
    }
    char url[1024], owner[32] = "";
    if (d == SR_FWDV_REFUSE) { /* invariant 2: never a second hop */
        count(O_NOT_OWNER);
        char m[160];
        snprintf(m, sizeof m, "partition %u is not owned by this node (its ownership is moving); retry", part);
        warn("cluster: a forwarded request for a partition not owned here", req, part, "", m);
        unavailable(req, m);
        return 1;
    }
    int rc = sr_cluster_owner_url(c, part, url, 512, owner);
    if (!rc && !strcmp(owner, sr_cluster_node(c))) { /* this node's lease: taken, not caught up yet */
        count(O_NOT_OWNER);
        char m[160];
        snprintf(m, sizeof m, "partition %u is being taken over by this node (catching up); retry", part);
        unavailable(req, m);
        return 1;
    }
    if (rc) {
        count(O_NO_OWNER);
        char m[160];
        snprintf(m, sizeof m, "partition %u has no reachable owner right now (%s); retry", part,
                 rc == SR_ENOTFOUND ? "no live lease" : "its node is not live");
        warn("cluster: a request not forwarded", req, part, owner, m);
        unavailable(req, m);
        return 1;
    }
    size_t ul = strlen(url);
    if (ul + req->path.len >= sizeof url) {
        count(O_ERROR);
        unavailable(req, "the request's target is too long to forward");
        return 1;
    }
    memcpy(url + ul, req->path.base, req->path.len); /* the target as sent: path and query */
    url[ul + req->path.len] = 0;
    xfer *x = sr_http_ctx_new(req, sizeof *x);
    CURL *e = x ? curl_easy_init() : NULL;
    if (!e) {
        if (x) sr_http_ctx_unref(&x->h);
        count(O_ERROR);
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return 1;
    }
    x->h.refs++; /* the transfer's, released in xfer_free */
    x->part = part;
    snprintf(x->owner, sizeof x->owner, "%s", owner);
    x->t0 = mono_us();
    /* the request's headers, then the hop headers */
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *hd = &req->headers.entries[i];
        if (!forwarded_header(hd)) continue;
        char line[8192];
        int k = snprintf(line, sizeof line, "%.*s: %.*s", (int)hd->name->len, hd->name->base, (int)hd->value.len,
                         hd->value.base);
        if (k > 0 && (size_t)k < sizeof line) h = curl_slist_append(h, line);
    }
    const char *node = sr_cluster_node(c);
    char line[200], addr[64];
    snprintf(line, sizeof line, "Suiro-Forwarded-By: %s", node);
    h = curl_slist_append(h, line);
    sr_login_addr_req(req, addr);
    snprintf(line, sizeof line, "Suiro-Forwarded-For: %s", addr);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "Expect:");
    x->hdrs = h;
    x->e = e;
    char method[16];
    snprintf(method, sizeof method, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "GET")) curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (req->entity.len || strcmp(method, "DELETE")) {
        x->body = malloc(req->entity.len ? req->entity.len : 1);
        if (x->body && req->entity.len) memcpy(x->body, req->entity.base, req->entity.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->entity.len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)g.o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(g.o.timeout_ms < 2000 ? g.o.timeout_ms : 2000));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "suiro-forward");
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if ((req->entity.len && !x->body) || !h) {
        curl_easy_cleanup(e);
        x->e = NULL;
        count(O_ERROR);
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        xfer_free(x);
        return 1;
    }
    x->next = g.flying;
    if (g.flying) g.flying->prev = x;
    g.flying = x;
    if (sr_curlloop_add(g.cl, e, x)) { /* e cleaned up, no callback */
        x->e = NULL;
        count(O_ERROR);
        unavailable(req, "the request could not be forwarded (out of resources); retry");
        xfer_free(x);
    }
    return 1;
}

/* ---- waiting for a session that is on its way (invariant 4) --------------- */

int sr_fwd_wlist_add(sr_fwd_wlist *w, sr_fwd_wlink *l)
{
    if (w->n >= w->cap) return SR_EFULL;
    l->next = NULL;
    l->prev = w->tail;
    if (w->tail) w->tail->next = l;
    else w->head = l;
    w->tail = l;
    w->n++;
    return SR_OK;
}

void sr_fwd_wlist_remove(sr_fwd_wlist *w, sr_fwd_wlink *l)
{
    if (l->prev) l->prev->next = l->next;
    else w->head = l->next;
    if (l->next) l->next->prev = l->prev;
    else w->tail = l->prev;
    l->next = l->prev = NULL;
    w->n--;
}

sr_fwd_wlink *sr_fwd_wlist_take(sr_fwd_wlist *w)
{
    sr_fwd_wlink *h = w->head;
    w->head = w->tail = NULL;
    w->n = 0;
    return h;
}

/* A waiting request: in g.waiting, with a timer at its deadline. It leaves
 * the list at a wake-up (every waiter: dispatched again, which parks it
 * again while its session is still unknown), at its deadline (dispatched
 * again: 401), or when the server stops (503). */
typedef struct waiter {
    sr_http_ctx h;
    sr_fwd_wlink link;
    uv_timer_t t;
    void *binding;
    sr_fwd_again_fn again;
    int64_t until;
} waiter;

static void on_waiter_closed(uv_handle_t *t) { sr_http_ctx_unref(&((waiter *)t->data)->h); }

/* w is out of the list: its timer closed, its request dispatched again (or
 * answered: the server stops) */
static void waiter_go(waiter *w)
{
    h2o_req_t *req = w->h.req;
    uv_close((uv_handle_t *)&w->t, on_waiter_closed);
    if (req && !g.closed) w->again(w->binding, req, w->until);
    else if (req) unavailable(req, "server stopping");
}

static void on_wait_deadline(uv_timer_t *t)
{
    waiter *w = t->data;
    sr_fwd_wlist_remove(&g.waiting, &w->link);
    atomic_store(&nwaiting, (uint32_t)g.waiting.n);
    atomic_fetch_add(&st_wait[W_DEADLINE], 1);
    waiter_go(w);
}

static int in_wake;

static void on_wake(uv_async_t *a)
{
    (void)a;
    /* every waiter once: those still without their session park again in
     * the (emptied) list, to be woken by a later session or their deadline.
     * Meanwhile nwaiting stays non-zero: a session applied while the list is
     * walked sends another wake-up (one more walk, never a missed one). */
    atomic_store(&nwaiting, UINT32_MAX);
    in_wake = 1;
    sr_fwd_wlink *l = sr_fwd_wlist_take(&g.waiting);
    while (l) {
        sr_fwd_wlink *next = l->next;
        waiter *w = SR_CONTAINER(l, waiter, link);
        uv_timer_stop(&w->t);
        atomic_fetch_add(&st_wait[W_WOKEN], 1);
        waiter_go(w);
        l = next;
    }
    in_wake = 0;
    atomic_store(&nwaiting, (uint32_t)g.waiting.n);
}

void sr_fwd_session_applied(void)
{
    if (!atomic_load_explicit(&nwaiting, memory_order_relaxed)) return;
    pthread_mutex_lock(&wake_mu);
    if (wake_on) uv_async_send(&g.wake);
    pthread_mutex_unlock(&wake_mu);
}

static void waiters_stop(void)
{
    pthread_mutex_lock(&wake_mu);
    int on = wake_on;
    wake_on = 0;
    pthread_mutex_unlock(&wake_mu);
    sr_fwd_wlink *l = sr_fwd_wlist_take(&g.waiting); /* g.closed: each answered 503 */
    atomic_store(&nwaiting, 0);
    while (l) {
        sr_fwd_wlink *next = l->next;
        waiter *w = SR_CONTAINER(l, waiter, link);
        uv_timer_stop(&w->t);
        waiter_go(w);
        l = next;
    }
    if (on) uv_close((uv_handle_t *)&g.wake, NULL);
}

static int from_peer(h2o_req_t *req, char node[32]);

int sr_fwd_wait(h2o_req_t *req, void *binding, sr_fwd_again_fn again, int64_t *until)
{
    char node[32];
    /* only a peer's forwarded request waits: a client that sets the header
     * itself is not held (nor its credentials tried again) */
    if (!g.cl || g.closed || !g.o.wait_ms || !from_peer(req, node)) return 0;
    int64_t now = mono_ms();
    int first = 0;
    if (!*until) *until = now + g.o.wait_ms, first = 1;
    if (now >= *until || !wake_on) return 0;
    if (g.waiting.n >= g.waiting.cap) {
        atomic_fetch_add(&st_wait[W_FULL], 1);
        return 0;
    }
    waiter *w = sr_http_ctx_new(req, sizeof *w);
    if (!w) return 0;
    w->h.refs++; /* the timer's, released when it closed */
    w->binding = binding;
    w->again = again;
    w->until = *until;
    uv_timer_init(g.loop, &w->t);
    w->t.data = w;
    if (sr_fwd_wlist_add(&g.waiting, &w->link)) { /* (checked above) */
        uv_close((uv_handle_t *)&w->t, on_waiter_closed);
        return 0;
    }
    uv_timer_start(&w->t, on_wait_deadline, (uint64_t)(*until - now), 0);
    if (!in_wake) atomic_store(&nwaiting, (uint32_t)g.waiting.n);
    /* a session applied between the dispatcher's first look and the store of
     * nwaiting sent no wake-up: one more look (a request parked again by a
     * wake-up does not: no spinning) */
    if (first) uv_async_send(&g.wake);
    return 1;
}

/* ---- the original client (audit) ------------------------------------------ */

/* 1 with its name when the request came from a live node's advertised host
 * (invariant 2): only such a request's hop headers are believed */
static int from_peer(h2o_req_t *req, char node[32])
{
    sr_cluster *c = sr_cluster_self();
    if (!c || !sr_cluster_has_leases(c) || !sr_fwd_is_forwarded(req)) return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    char host[INET6_ADDRSTRLEN] = "";
    if (!req->conn->callbacks->get_peername || !req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss))
        return 0;
    if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) inet_ntop(AF_INET, &a->s6_addr[12], host, sizeof host);
        else inet_ntop(AF_INET6, a, host, sizeof host);
    }
    return host[0] && sr_cluster_peer_host(c, host, node);
}

int sr_fwd_client_addr(h2o_req_t *req, char out[64])
{
    if (!sr_cluster_self()) return 0; /* not in a cluster: no forwarded request (every audited read asks) */
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("suiro-forwarded-for"), -1);
    char node[32];
    if (i < 0 || !from_peer(req, node)) return 0;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    size_t vl = v->len > 40 ? 40 : v->len;
    for (size_t k = 0; k < vl; k++) /* an address: no spaces, no controls */
        if ((unsigned char)v->base[k] <= ' ' || v->base[k] == 0x7f || v->base[k] == '"') return 0;
    snprintf(out, 64, "%.*s via %s", (int)vl, v->base, node);
    return 1;
}

void sr_fwd_get_stats(sr_fwd_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < O_N; i++) out->outcome[i] = atomic_load(&st_outcome[i]);
    out->served = atomic_load(&st_served);
    for (int i = 0; i < W_N; i++) out->waits[i] = atomic_load(&st_wait[i]);
    sr_hist_read(&st_lat, &out->lat_us);
}

const char *sr_fwd_wait_name(int i)
{
    static const char *const n[W_N] = {"woken", "deadline", "full"};
    return i >= 0 && i < W_N ? n[i] : "?";
}
