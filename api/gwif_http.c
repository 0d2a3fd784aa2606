/*
 * api/gwif_http.c -- the GW-IF HTTP binding on libh2o (libuv flavour), base
 * /gw/v1 (../shared/docs/interface.md). Same bodies and semantics as MQTT:
 *
 *   POST   /gw/v1/sessions           {operatorId, gatewayId, secret} -> 201 {token, expiresAt};
 *          401 E2001 (wrong, also an auth event); 429 E9002 + Retry-After
 *          (throttled or the checks are busy: the login guard, api/loginguard.h)
 *   DELETE /gw/v1/sessions/current   -> 204
 *   POST   /gw/v1/measurements | /periodic-values | /immediate-results
 *          envelope with body.values  -> 200 {"result":{"code":"0"}} once durable
 *
 *   POST   /gw/v1/requests/fetch     GW_FETCH_REQ {maxItems, waitMs} -> GW_FETCH_RES (long poll)
 *   POST   /gw/v1/immediate-results | /periodic-values | /monitor-acks | /control-results
 *          the broker's messages (api/broker.c, docs/requests.md)
 *   GET    /gw/v1/certificates/{platform|app}/{id}
 *
 * The routes are the rows of sr_gwif_routes (api/routes.h), dispatched by
 * on_req: the caller class authenticated once, the row's body limit, then
 * the handler. A message kind's route is made from its row of sr_gw_kinds
 * (api/broker.h) when the rows are assembled, and the row carries the kind
 * to gw_message: header.messageType must be the kind's, or the message is
 * 400 E1001 naming header.messageType and nothing is stored.
 *
 * A 200 answer means durable, exactly as a PUBACK does: the response is sent
 * from the engine's completion. Data not stored for a reason of the server
 * (queue full, no space, I/O error, stopped writer, read-only, memory) is
 * never 200: 429 (queue full) or 503, both with Retry-After, and a WARN line
 * (respond_transient; docs/mqtt.md "Acknowledgement outcomes"). A message larger than [server]
 * parse_inline_max, or one that may carry "protection" (its signature
 * verification), is parsed and validated on the worker queue
 * (api/workq.h), not on the loop; the operator's queue full is 429 E9002. Tokens are 256-bit random, kept only as their
 * SHA-256, for `token_ttl` (1 h); a disconnect revokes at once. A call
 * without a token, or with one the server does not know (never issued,
 * revoked, or expired and swept), is 401 E2001; with an expired token still
 * held (sr_tokens_expired), 401 E2002. A token dies with its gateway's
 * registry entry (R-ID-4, docs/admin.md "Revocation"): it remembers the
 * registry generation and the secret of its login (api/loginguard.h
 * sr_login_seen); once the generation moved, the first request reads the
 * entry again, and a deleted or disabled gateway, or a rotated secret, ends
 * the token (401 E2001); the server's registry hook ends them all at once
 * (sr_gwhttp_registry_changed), and the gateway's long polls waiting then
 * (sr_broker_gw_revoked: 401, nothing handed out). Paths under /api/v1 are
 * AP-IF (api/apif_http.c) and under /admin/v1 the Admin API
 * (api/admin_http.c) on the same listener, and /metrics, /health, /ready
 * are api/metrics.c's (sr_metrics_http); a user's admin session token
 * counts as known for the body limits below (sr_admin_token_known).
 *
 * LIMITS (issue #11; sr_http_limits, docs/configuration.md [http])
 *  h2o 2.2 reads a whole request body into the connection's input buffer
 *  before it calls a handler, and has no hook between the head and the
 *  body. So what a connection may make the server hold is bounded around
 *  it: connections overall and per source address (refused at accept);
 *  h2o's own limits (max_request_entity_size = max_body, http1.req_timeout
 *  = request_timeout_ms for the head and the body, HTTP/2 off: one request
 *  at a time per connection, so one answer at a time); and a guard timer
 *  (every GUARD_MS) that reads each connection's input buffer: a request
 *  holding more than max_unauth_body whose head carries no live GW-IF or
 *  AP-IF token is cut, all connections together hold at most body_budget
 *  (the largest is cut first), and an answer whose write queue makes no
 *  progress for send_timeout_ms is cut. "Cut" is shutdown(2) of the socket:
 *  h2o sees the end and closes the connection itself (as at shutdown).
 */
#include "api/ryw.h"
#include "api/gwif_http.h"
#include "api/cluster.h"

#include "api/admin_http.h"
#include "api/access.h"
#include "api/alive.h"
#include "api/apif_http.h"
#include "api/broker.h"
#include "api/gwif_json.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/loopq.h"
#include "api/metrics.h"
#include "api/routes.h"
#include "api/slog.h"
#include "api/workq.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "engine/secret.h"
#include "storage/crypto.h"

#include <errno.h>
#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

enum { TOKEN_TTL_MS = 3600 * 1000, MAX_TOKENS = 100000, GUARD_MS = 50 };
/* LIMITS: a request the guard refuses while its body still streams is
 * answered, then at most LINGER_BYTES more of its body are read and dropped
 * for at most LINGER_MS before the socket is shut (a lingering close) */
enum { LINGER_BYTES = 1 << 20, LINGER_MS = 2000 };

typedef struct token { /* the payload of a GW-IF session token (api/httpu.h) */
    char op[72], gw[72];
    sr_login_seen seen; /* api/loginguard.h: revocation at once */
    sr_alive_ent *ae;   /* the gateway's alive entry (api/alive.h), NULL: none */
} token;

struct sr_gwhttp {
    sr_engine *eng;
    sr_broker *broker;
    sr_apif *apif;
    sr_admin *admin; /* /admin/v1 (api/admin_http.c) */
    sr_alive *alive; /* R-MO-1 (api/alive.h; the server's), NULL: none */
    struct sr_access *access; /* reads in the audit trail (api/access.h; the server's), NULL: none */
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    uv_tcp_t listener;
    int port;
    sr_tokens *tokens;
    sr_loginguard *guard; /* the server's: throttle and scrypt for logins */
    sr_loopq doneq; /* engine completions */
    int ctx_ready, closing;
    SSL_CTX *ssl; /* HTTPS */
    sr_workq *wq; /* the server's; NULL: everything inline */
    uint32_t parse_inline_max;
    size_t open_conns; /* h2o connections not yet closed */
    struct hconn *conns;
    sr_http_limits lim;
    uv_timer_t limtimer; /* the LIMITS above */
    int limtimer_on;
    uint64_t refused_log_ms; /* refusals at accept: one log line a second at most, with their count */
    size_t refused;
};

/* Shared between the h2o request (its pool) and an engine completion or an
 * auth job: whoever finishes last frees it. */
typedef struct pending {
    h2o_req_t *req;  /* NULL once h2o disposed of the request */
    int refs;
    sr_gwhttp *g;
    sr_result res;
    char msgid[72];
    uint32_t nvalues; /* a values message's, for the metrics */
    /* auth */
    sr_login_job lj; /* its stored hash: the gateway's (empty if unknown) */
    char op[72], gw[72], addr[64];
    int login;          /* 1: the completion is a login's SessionEvent (issue #18: the answer waits for it) */
    int logout;         /* 1: ... a logout's (issue #18: 204 only once durable, logout_durable) */
    sr_login_seen seen; /* a login's: what was checked, for its token */
    sr_loopq_item li;
} pending;

static void pending_unref(pending *p)
{
    if (--p->refs == 0) {
        sr_buf_release(&p->lj.stored);
        free(p);
    }
}

static void on_dispose(void *slot)
{
    pending *p = *(pending **)slot;
    p->req = NULL;
    pending_unref(p);
}

static pending *pending_new(sr_gwhttp *g, h2o_req_t *req)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pending **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_dispose);
    *slot = p;
    p->req = req;
    p->g = g;
    p->refs = 1; /* the request's pool */
    sr_buf_init(&p->lj.stored);
    return p;
}

/* the shared answers (api/httpu.c): one copy, Content-Length, keep-alive */
static void respond_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    (void)reason;
    sr_http_json(req, status, body, len);
}

static void respond_result(h2o_req_t *req, sr_wire code, const char *message, json_t *detail)
{
    sr_http_result(req, 0, code, message, detail);
}

/* ---- tokens ----------------------------------------------------------- */

static token *token_find(sr_gwhttp *g, h2o_req_t *req) { return sr_tokens_find(g->tokens, req); }

/* REVOCATION: the gateway deleted or disabled, or its secret rotated, since
 * t was checked: the token goes, and the gateway is offline (actor system;
 * api/alive.h). */
static void token_end(sr_gwhttp *g, const token *t, const char *why)
{
    sr_slog(SR_LOG_INFO, "gateway session ended", "op=%s gw=%s binding=http reason=%s", t->op, t->gw,
            sr_slog_q(why));
    sr_alive_set(g->alive, t->ae, SR_AS_OFFLINE, SR_AR_DISCONNECT, g->ssl ? "https" : "http", NULL, "", 1);
}

typedef struct changed_ctx {
    sr_gwhttp *g;
    sr_engine *eng;
    const char *op, *gw;
} changed_ctx;

static int end_if_revoked(void *ctx, void *payload)
{
    changed_ctx *x = ctx;
    token *t = payload;
    if (strcmp(t->op, x->op) || strcmp(t->gw, x->gw)) return 0;
    const char *why = sr_login_reread(x->eng, 'g', t->op, t->gw, &t->seen);
    if (why) token_end(x->g, t, why);
    return why != NULL;
}

size_t sr_gwhttp_registry_changed(sr_gwhttp *g, const char *op, int kind, const char *id)
{
    if (!g || g->closing) return 0;
    if (kind == SR_RG_APP) return sr_apif_registry_changed(g->apif, op, id);
    if (kind != SR_RG_GATEWAY) return 0;
    changed_ctx x = {g, g->eng, op, id};
    size_t ended = sr_tokens_sweep(g->tokens, end_if_revoked, &x);
    if (ended) sr_broker_gw_revoked(g->broker, op, id); /* its long polls waiting now end too */
    return ended;
}

/* ---- engine completions back to the loop ------------------------------- */

static void on_engine_done(void *ctx, const sr_result *r)
{
    pending *p = ctx;
    p->res = *r;
    sr_loopq_push(&p->g->doneq, &p->li);
}

/* An answer that is not a positive one and not a refusal: the data was not
 * stored for a reason of the server, so never 200. Queue full is 429 (the
 * interface.md table), anything else (no space, I/O error, read-only,
 * poisoned, stopping, memory) 503; both with Retry-After: 1, and a WARN
 * line naming the gateway and the error (docs/mqtt.md "Acknowledgement
 * outcomes"). */
static void respond_transient(h2o_req_t *req, const char *op, const char *gw, sr_wire code, const char *message)
{
    char m[240];
    snprintf(m, sizeof m, "%s; not acknowledged as stored, send it again", message && message[0] ? message : "server busy");
    sr_slog(SR_LOG_WARN, "gateway message not stored", "op=%s gw=%s error=%s detail=%s binding=http", op, gw,
            sr_wire_code(code), sr_slog_q(m));
    int busy = code == SR_WIRE_BUSY && message && strstr(message, "queue");
    if (!busy) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    sr_http_result(req, busy ? 429 : 503, code, m, NULL); /* 429 adds its own Retry-After */
}

/* The answer to an engine result (the outcomes of sr_gw_outcome_rc). */
static void respond_rc(h2o_req_t *req, const char *op, const char *gw, const sr_result *r)
{
    const char *msg = r->err.msg[0] ? r->err.msg : sr_wire_msg_of_rc(r->rc);
    if (r->rc) sr_metrics_refused(sr_wire_of_rc(r->rc));
    if (r->range) sr_gw_range_refused(op, gw, r->err.where, r->err.msg); /* value-out-of-range (api/gwif_json.h) */
    switch (sr_gw_outcome_rc(r->rc)) {
    case SR_GW_DURABLE:
        sr_ryw_answer_header(req, r); /* Suiro-Seq (api/ryw.h) */
        respond_result(req, SR_WIRE_OK, r->duplicate ? "duplicate; stored once" : "stored", NULL);
        break;
    case SR_GW_REFUSED: respond_result(req, sr_wire_of_rc(r->rc), msg, NULL); break;
    default: respond_transient(req, op, gw, sr_wire_of_rc(r->rc), r->rc == SR_EFULL ? "queue full" : msg);
    }
}

static void login_durable(pending *p);
static void logout_durable(pending *p);

static void on_done(void *ctx, sr_loopq_item *it)
{
    (void)ctx;
    pending *p = SR_CONTAINER(it, pending, li);
    if (p->login) {
        login_durable(p);
        return;
    }
    if (p->logout) {
        logout_durable(p);
        return;
    }
    {
        if (p->nvalues && !p->res.rc && !p->res.duplicate) sr_metrics_ingested(sr_metrics_op(p->op), p->nvalues);
        if (p->req) respond_rc(p->req, p->op, p->gw, &p->res);
        pending_unref(p);
    }
}

/* ---- sessions ----------------------------------------------------------- */

/* A verified login the engine could not record (its SessionEvent refused:
 * a write error, a stopped writer, a full queue, read-only): refused, no
 * token (issue #18): 503 with Retry-After, E9001 (E9002 for a full
 * queue, 429). */
static void login_unrecorded(pending *p, int rc)
{
    sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=http detail=%s", sr_slog_q(p->op),
            sr_slog_q(p->gw), p->addr, sr_slog_q(sr_err_name(rc)));
    if (!p->req) return;
    sr_wire code = rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL;
    if (code != SR_WIRE_BUSY)
        h2o_add_header(&p->req->pool, &p->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    sr_http_result(p->req, code == SR_WIRE_BUSY ? 429 : 503, code,
                   "the login cannot be recorded now (the server cannot write): no session; retry later", NULL);
}

/* A login's SessionEvent is durable (or refused): now the token, the answer,
 * the login's own audit event and the alive state. */
static void login_durable(pending *p)
{
    sr_gwhttp *g = p->g;
    p->login = 0;
    if (p->res.rc) login_unrecorded(p, p->res.rc);
    else if (!p->req) /* it left before the answer: its session ends as recorded */
        sr_login_session_audit(g->eng, SR_ACTOR_GATEWAY, p->op, p->gw, SR_SS_DISCONNECTED, "http",
                               "client left before the login was answered", p->addr);
    else {
        char hex[65], exp[32], body[256];
        int64_t expires;
        token *t = sr_tokens_add(g->tokens, TOKEN_TTL_MS, hex, &expires);
        if (t) {
            snprintf(t->op, sizeof t->op, "%s", p->op);
            snprintf(t->gw, sizeof t->gw, "%s", p->gw);
            t->seen = p->seen;
            sr_rfc3339_format(expires, exp);
            int n = snprintf(body, sizeof body, "{\"token\":\"%s\",\"expiresAt\":\"%s\"}", hex, exp);
            respond_json(p->req, 201, "Created", body, (size_t)n);
            sr_slog(SR_LOG_INFO, "gateway session opened", "op=%s gw=%s binding=http", p->op, p->gw);
            sr_login_audit_event(g->eng, SR_ACTOR_GATEWAY, p->op, p->gw, 1, "password", "", p->addr);
            if ((t->ae = sr_alive_get(g->alive, p->op, SR_ACTOR_GATEWAY, p->gw)))
                sr_alive_http(g->alive, t->ae, g->ssl ? "https" : "http", p->addr);
        } else {
            sr_login_session_audit(g->eng, SR_ACTOR_GATEWAY, p->op, p->gw, SR_SS_DISCONNECTED, "http",
                                   "too many sessions", p->addr);
            respond_result(p->req, SR_WIRE_BUSY, "too many sessions", NULL);
        }
    }
    pending_unref(p);
}

static void auth_done(sr_login_job *lj)
{
    pending *p = SR_CONTAINER(lj, pending, lj);
    sr_gwhttp *g = p->g;
    if (lj->verdict == SR_LG_OK && lj->checked && !lj->ok) {
        /* logged and audited (and counted by the guard) also when the client left */
        sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=http checked=%d", sr_slog_q(p->op),
                sr_slog_q(p->gw), p->addr, lj->checked);
        if (!g->closing)
            sr_login_audit(g->eng, SR_ACTOR_GATEWAY, p->op, p->gw, "bad user name or password",
                           p->addr);
    }
    if (p->req && lj->verdict != SR_LG_OK) {
        sr_login_http_refuse(p->req, "gateway", p->op, p->gw, p->addr, lj->verdict, lj->retry_ms);
    } else if (p->req) {
        sr_login_seen seen;
        const char *why = lj->ok ? sr_login_seen_init(g->eng, 'g', p->op, p->gw, &lj->stored, &seen) : NULL;
        if (why) { /* disabled, deleted or rotated while the secret was checked */
            sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=http detail=%s",
                    sr_slog_q(p->op), sr_slog_q(p->gw), p->addr, sr_slog_q(why));
            respond_result(p->req, SR_WIRE_UNAUTH, "not authenticated: wrong operatorId, gatewayId or secret", NULL);
        } else if (lj->ok) {
            /* issue #18, fail closed: the session (its token) exists and is
             * answered once its SessionEvent is durable (login_durable) */
            sr_buf b;
            sr_buf_init(&b);
            sr_cmd_env env = {p->op, p->gw, SR_ACTOR_GATEWAY, NULL, p->addr};
            int rc = g->closing ? SR_ECLOSED
                                : sr_cmd_session(&env, SR_ACTOR_GATEWAY, p->gw, SR_SS_CONNECTED, "http", "login", &b);
            if (!rc) {
                sr_slice sl = {b.data, b.len};
                p->login = 1;
                p->seen = seen;
                p->refs++;
                rc = sr_engine_submit(g->eng, &sl, 1, on_engine_done, p);
                if (rc) p->refs--, p->login = 0;
            }
            sr_buf_release(&b);
            if (rc) login_unrecorded(p, rc);
        } else {
            respond_result(p->req, SR_WIRE_UNAUTH, "not authenticated: wrong operatorId, gatewayId or secret", NULL);
        }
    }
    pending_unref(p);
}

static void open_session(sr_gwhttp *g, h2o_req_t *req)
{
    json_error_t je;
    json_t *b = json_loadb(req->entity.base, req->entity.len, 0, &je);
    json_t *op = json_object_get(b, "operatorId"), *gw = json_object_get(b, "gatewayId"),
           *sec = json_object_get(b, "secret");
    if (!b) {
        respond_result(req, SR_WIRE_JSON, "malformed JSON", NULL);
        return;
    }
    if (!sr_login_str_ok(op, 72) || !sr_login_str_ok(gw, 72) || !sr_login_str_ok(sec, 300)) {
        json_decref(b);
        respond_result(req, SR_WIRE_PARAM,
                       "operatorId, gatewayId and secret (strings, at most 71, 71 and 299 bytes, no NUL) are required",
                       NULL);
        return;
    }
    pending *p = pending_new(g, req);
    if (!p) {
        json_decref(b);
        respond_result(req, SR_WIRE_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(p->op, sizeof p->op, "%s", json_string_value(op));
    snprintf(p->gw, sizeof p->gw, "%s", json_string_value(gw));
    snprintf(p->lj.secret, sizeof p->lj.secret, "%s", json_string_value(sec));
    json_decref(b);
    sr_login_stored(g->eng, 'g', p->op, p->gw, &p->lj.stored);
    sr_login_addr_req(req, p->addr);
    p->lj.done = auth_done;
    uint64_t retry_ms = 0;
    int v = sr_loginguard_submit(g->guard, &p->lj, 'g', p->op, p->gw, p->addr, &retry_ms);
    if (v != SR_LG_OK) {
        memset(p->lj.secret, 0, sizeof p->lj.secret);
        sr_login_http_refuse(req, "gateway", p->op, p->gw, p->addr, v, retry_ms);
        return;
    }
    p->refs++; /* the guard's, until auth_done */
}

/* ---- values ------------------------------------------------------------- */

/* A values message checked (inline or on a worker): submit it, or answer
 * the refusal; data not stored for a reason of the server is never 200. */
/* a refused message's data points (body.values' dataIds), for its audit
 * entry (api/access.h sr_access_http_write; only a refusal pays for it) */
static void audit_points(h2o_req_t *req, const sr_gw_msg *m)
{
    json_t *vs = m->body ? json_object_get(m->body, "values") : NULL;
    for (size_t i = 0; i < json_array_size(vs); i++)
        sr_access_http_point(req, json_string_value(json_object_get(json_array_get(vs, i), "dataId")));
}

static void submit_checked(sr_gwhttp *g, h2o_req_t *req, const char *op, const char *gw, int rc, sr_buf *ev,
                           sr_gw_err *err, size_t nvalues)
{
    if (rc) {
        sr_metrics_refused(err->code ? err->code : sr_wire_of_rc(rc));
        if (!err->code) respond_transient(req, op, gw, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc)); /* memory */
        else if (sr_gw_outcome_code(err->code) == SR_GW_TRANSIENT) respond_transient(req, op, gw, err->code, err->message);
        else respond_result(req, err->code, err->message, err->detail);
    } else {
        pending *p = pending_new(g, req);
        sr_slice sl = {ev->data, ev->len};
        if (!p) respond_transient(req, op, gw, SR_WIRE_INTERNAL, "out of memory");
        else {
            snprintf(p->op, sizeof p->op, "%s", op);
            snprintf(p->gw, sizeof p->gw, "%s", gw);
            p->nvalues = nvalues > UINT32_MAX ? UINT32_MAX : (uint32_t)nvalues;
            p->refs++;
            rc = sr_cluster_submit(g->eng, &sl, 1, on_engine_done, p); /* 200 once durable (and in NATS) */
            if (rc) {
                p->refs--;
                sr_result r = {.rc = rc};
                respond_rc(req, op, gw, &r); /* r.msg empty: sr_wire_msg_of_rc */
            }
        }
    }
}

/* a message over parse_inline_max, or one that may carry "protection"
 * (sr_gw_may_be_signed: its signature is verified there, never on the loop),
 * checked on the worker queue, charged to its operator's share: a values
 * message parsed and validated, a broker message (suffix) parsed */
typedef struct vcheck {
    sr_http_ctx h; /* first */
    sr_work w;
    sr_gwhttp *g;
    sr_engine *eng;
    char op[72], gw[72];
    const sr_gw_kind *kind; /* its row (api/broker.h) */
    uint8_t *data;
    size_t len;
    sr_gw_checked r;
} vcheck;

static void vcheck_free(sr_http_ctx *h)
{
    vcheck *v = (vcheck *)h;
    free(v->data);
    sr_gw_checked_release(&v->r);
}

static void vcheck_work(sr_work *w)
{
    vcheck *v = SR_CONTAINER(w, vcheck, w);
    sr_gw_check(v->eng, v->op, v->gw, v->data, v->len, v->kind->how == SR_GWK_VALUES, &v->r);
}

static void to_broker(sr_gwhttp *g, h2o_req_t *req, const char *op, const char *gw, const char *suffix,
                      const sr_gw_msg *msg);

/* 1 (answered E1001) if type is not a messageType of the route's kind */
static int type_refused(h2o_req_t *req, const sr_gw_kind *k, const char *type)
{
    char m[200];
    if (!sr_gw_kind_type_check(k, type, k->route, m, sizeof m)) return 0;
    sr_metrics_refused(SR_WIRE_PARAM);
    respond_result(req, SR_WIRE_PARAM, m, NULL);
    return 1;
}

static void vcheck_done(sr_work *w, int status)
{
    vcheck *v = SR_CONTAINER(w, vcheck, w);
    free(v->data);
    v->data = NULL;
    if (v->h.req) {
        if (status) respond_transient(v->h.req, v->op, v->gw, SR_WIRE_INTERNAL, "the message could not be checked");
        else if (v->g->closing) respond_transient(v->h.req, v->op, v->gw, SR_WIRE_BUSY, "the server is stopping");
        else if (v->kind->how != SR_GWK_VALUES && v->r.parse_rc) {
            audit_points(v->h.req, &v->r.msg);
            respond_result(v->h.req, v->r.err.code, v->r.err.message, v->r.err.detail);
        }
        else if (v->kind->how != SR_GWK_VALUES)
            to_broker(v->g, v->h.req, v->op, v->gw, v->kind->suffix, &v->r.msg);
        else {
            sr_gw_checked *k = &v->r;
            int rc = k->fast == 0 ? SR_OK : k->parse_rc ? k->parse_rc : k->values_rc;
            if (rc) audit_points(v->h.req, &k->msg);
            if (!(k->fast == 0 || !k->parse_rc) || !type_refused(v->h.req, v->kind, k->fast == 0 ? k->fm.type : k->msg.type))
                submit_checked(v->g, v->h.req, v->op, v->gw, rc, &k->ev, &k->err, k->fast == 0 ? k->fm.nvalues : k->nvalues);
        }
    }
    sr_http_ctx_unref(&v->h);
}

/* 1 if the message (of kind k) went to the worker queue (or was answered);
 * signed_: it may carry protection (asked of a values message only once the
 * fast path declined it, so that unsigned ingest never pays the scan) */
static int check_async(sr_gwhttp *g, h2o_req_t *req, const token *t, const sr_gw_kind *k, int signed_)
{
    if (!g->wq || (req->entity.len <= g->parse_inline_max && !signed_)) return 0;
    vcheck *v = sr_http_ctx_new(req, sizeof *v);
    if (v) v->h.on_free = vcheck_free;
    if (!v || !(v->data = malloc(req->entity.len))) { /* inline, then; v goes with req */
        if (!signed_) return 0;
        respond_transient(req, t->op, t->gw, SR_WIRE_INTERNAL, "out of memory"); /* never verified on the loop */
        return 1;
    }
    memcpy(v->data, req->entity.base, req->entity.len);
    v->len = req->entity.len;
    v->g = g;
    v->eng = g->eng;
    snprintf(v->op, sizeof v->op, "%s", t->op);
    snprintf(v->gw, sizeof v->gw, "%s", t->gw);
    v->kind = k;
    v->w.work = vcheck_work;
    v->w.done = vcheck_done;
    v->h.refs++;
    int rc = sr_workq_submit(g->wq, t->op, v->len, 0, &v->w);
    if (rc) {
        v->h.refs--;
        respond_transient(req, t->op, t->gw, SR_WIRE_BUSY, "busy: this operator has too many messages waiting to be checked");
    }
    return 1;
}

static void post_values(sr_gwhttp *g, h2o_req_t *req, const token *t, const sr_gw_kind *k)
{
    if (check_async(g, req, t, k, 0)) return;
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_fast_msg fm;
    int rc;
    size_t nv = 0;
    memset(&msg, 0, sizeof msg);
    if (sr_gw_fast(g->eng, t->op, t->gw, req->entity.base, req->entity.len, &fm, &ev) == 0) {
        rc = SR_OK; /* one pass, no JSON tree */
        nv = fm.nvalues;
        if (type_refused(req, k, fm.type)) goto done;
    } else if (sr_gw_may_be_signed(req->entity.base, req->entity.len) && check_async(g, req, t, k, 1)) {
        goto done; /* declined and may be signed: verified on a worker, never here */
    } else if (!(rc = sr_gw_parse_sig(g->eng, t->op, t->gw, req->entity.base, req->entity.len, &msg, &err))) {
        if (type_refused(req, k, msg.type)) goto done;
        rc = sr_gw_values_event_sig(g->eng, t->op, t->gw, msg.message_id, NULL, sr_gw_sig_state(&msg),
                                    json_object_get(msg.body, "values"), &ev, &nv, &err);
    }
    if (rc) audit_points(req, &msg);
    submit_checked(g, req, t->op, t->gw, rc, &ev, &err, nv);
done:
    sr_buf_release(&ev);
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
}

/* ---- request flows (the broker) ------------------------------------------ */

typedef struct bctx {
    sr_http_ctx h;
    sr_broker *b;
    void *fetch; /* a waiting long poll */
    char op[72], gw[72];
} bctx;

static void on_gw_answer(void *ctx, const sr_gw_answer *a)
{
    bctx *c = ctx;
    if (c->h.req) {
        int out = sr_gw_outcome_code(a->code);
        if (out == SR_GW_DURABLE && a->reply) sr_http_json(c->h.req, 200, (const char *)a->reply->data, a->reply->len);
        else if (out == SR_GW_TRANSIENT) respond_transient(c->h.req, c->op, c->gw, a->code, a->message); /* never 200 */
        else sr_http_result(c->h.req, 0, a->code, a->message, a->detail);
    }
    sr_http_ctx_unref(&c->h);
}

static void to_broker(sr_gwhttp *g, h2o_req_t *req, const char *op, const char *gw, const char *suffix,
                      const sr_gw_msg *msg)
{
    bctx *c = sr_http_ctx_new(req, sizeof *c);
    if (!c) respond_transient(req, op, gw, SR_WIRE_INTERNAL, "out of memory");
    else {
        snprintf(c->op, sizeof c->op, "%s", op);
        snprintf(c->gw, sizeof c->gw, "%s", gw);
        c->h.refs++;
        sr_broker_gw_message(g->broker, op, gw, "http", suffix, msg, on_gw_answer, c);
    }
}

static void broker_message(sr_gwhttp *g, h2o_req_t *req, const token *t, const sr_gw_kind *k)
{
    /* a large one, or one that may be signed, is parsed (and verified) on a worker */
    if (check_async(g, req, t, k, sr_gw_may_be_signed(req->entity.base, req->entity.len))) return;
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    if (sr_gw_parse_sig(g->eng, t->op, t->gw, req->entity.base, req->entity.len, &msg, &err) != SR_OK) {
        audit_points(req, &msg);
        respond_result(req, err.code, err.message, err.detail);
    } else
        to_broker(g, req, t->op, t->gw, k->suffix, &msg);
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
}

static void on_fetched(void *ctx, const sr_buf *env)
{
    bctx *c = ctx;
    c->fetch = NULL;
    if (c->h.req) {
        if (!env) /* REVOCATION: the token died while the poll waited */
            sr_http_result(c->h.req, 0, SR_WIRE_UNAUTH, "not authenticated: the session ended; log in again", NULL);
        else if (env->len) sr_http_json(c->h.req, 200, (const char *)env->data, env->len);
        else sr_http_result(c->h.req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    sr_http_ctx_unref(&c->h);
}

static void fetch_ctx_free(sr_http_ctx *h)
{
    bctx *c = (bctx *)h;
    (void)c;
}

/* the h2o request went away while the poll waited: stop waiting */
static void on_fetch_dispose(void *slot)
{
    bctx *c = *(bctx **)slot;
    if (c->fetch) {
        void *f = c->fetch;
        c->fetch = NULL;
        sr_broker_fetch_cancel(c->b, f);
        sr_http_ctx_unref(&c->h); /* the broker's reference */
    }
}

/* POST /gw/v1/requests/fetch (kind k): the long poll (MQTT's R/req/fetch is the broker's gw_fetch_now) */
static void fetch(const sr_route_call *rc, const sr_gw_kind *k)
{
    sr_gwhttp *g = rc->binding;
    h2o_req_t *req = rc->req;
    const token *t = rc->caller;
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    if (sr_gw_parse(req->entity.base, req->entity.len, &msg, &err) != SR_OK) {
        respond_result(req, err.code, err.message, err.detail);
        goto done;
    }
    if (type_refused(req, k, msg.type)) goto done;
    json_t *mx = json_object_get(msg.body, "maxItems"), *wt = json_object_get(msg.body, "waitMs");
    if ((mx && (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 1000)) ||
        (wt && (!json_is_integer(wt) || json_integer_value(wt) < 0 || json_integer_value(wt) > 60000))) {
        respond_result(req, SR_WIRE_PARAM, "body.maxItems: 1..1000; body.waitMs: 0..60000", NULL);
        goto done;
    }
    bctx *c = sr_http_ctx_new(req, sizeof *c);
    if (!c) {
        respond_result(req, SR_WIRE_INTERNAL, "out of memory", NULL);
        goto done;
    }
    c->b = g->broker;
    c->h.on_free = fetch_ctx_free;
    c->h.refs++; /* the broker's, until on_fetched or the cancel */
    void *f = sr_broker_fetch(g->broker, t->op, t->gw, msg.message_id, mx ? (int)json_integer_value(mx) : 100,
                              wt ? (uint32_t)json_integer_value(wt) : 0, on_fetched, c);
    if (f) {
        c->fetch = f;
        bctx **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_fetch_dispose);
        *slot = c;
    }
done:
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
}

static void certificate(const sr_route_call *c)
{
    sr_gwhttp *g = c->binding;
    h2o_req_t *req = c->req;
    const token *t = c->caller;
    const char *subject = sr_route_param(c, "subjectType"), *id = sr_route_param(c, "subjectId");
    if (!subject || !id || strlen(subject) + strlen(id) + 1 >= 200)
        return respond_result(req, SR_WIRE_UNKNOWN, "unknown certificate", NULL);
    if (strlen(subject) >= 16) return respond_result(req, SR_WIRE_UNKNOWN, "certificates/{platform|app}/{id}", NULL);
    sr_buf pem;
    sr_buf_init(&pem);
    int rc = strcmp(subject, "platform") && strcmp(subject, "app") && strcmp(subject, "gateway")
                 ? SR_ENOTFOUND
                 : sr_broker_cert(g->broker, t->op, subject, id, &pem);
    if (rc == SR_ENOTFOUND || rc == SR_EINVAL) respond_result(req, SR_WIRE_UNKNOWN, "no certificate for that subject", NULL);
    else if (rc) respond_result(req, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    else {
        req->res.status = 200;
        req->res.reason = "OK";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/x-pem-file"));
        char *copy = h2o_mem_alloc_pool(&req->pool, pem.len);
        memcpy(copy, pem.data, pem.len);
        h2o_send_inline(req, copy, pem.len);
    }
    sr_buf_release(&pem);
}

static void open_session_route(const sr_route_call *c) { open_session(c->binding, c->req); }

/* A logout whose SessionEvent could not be recorded (a write error, a
 * stopped or read-only writer, a full queue): the session is ended all the
 * same (fail closed), and the answer says its end is not recorded: 503 E9001
 * (429 E9002 for a full queue). */
static void logout_unrecorded(h2o_req_t *req, const char *op, const char *gw, int rc)
{
    sr_slog(SR_LOG_WARN, "gateway logout not recorded", "op=%s gw=%s binding=http error=%s", sr_slog_q(op),
            sr_slog_q(gw), sr_err_name(rc));
    if (!req) return;
    sr_wire code = rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL;
    sr_http_result(req, code == SR_WIRE_BUSY ? 429 : 503, code,
                   "the session is ended, but its end could not be recorded (the server cannot write now)", NULL);
}

static void logout_durable(pending *p)
{
    p->logout = 0;
    if (p->res.rc) logout_unrecorded(p->req, p->op, p->gw, p->res.rc);
    else if (p->req) sr_http_no_content(p->req);
    pending_unref(p);
}

/* DELETE /gw/v1/sessions/current (issue #18): the token ends at once (fail
 * closed: whatever the engine says), the 204 waits for the SessionEvent to
 * be durable (logout_durable), as a login's answer does. */
static void session_close(const sr_route_call *c)
{
    sr_gwhttp *g = c->binding;
    const token *t = c->caller;
    char addr[64];
    sr_login_addr_req(c->req, addr);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {t->op, t->gw, SR_ACTOR_GATEWAY, NULL, addr};
    int rc = !g->eng ? SR_OK
                     : g->closing ? SR_ECLOSED
                                  : sr_cmd_session(&env, SR_ACTOR_GATEWAY, t->gw, SR_SS_DISCONNECTED, "http", "logout", &b);
    pending *p = !rc && g->eng ? pending_new(g, c->req) : NULL;
    if (p) {
        snprintf(p->op, sizeof p->op, "%s", t->op);
        snprintf(p->gw, sizeof p->gw, "%s", t->gw);
    }
    char op[72], gw[72];
    snprintf(op, sizeof op, "%s", t->op);
    snprintf(gw, sizeof gw, "%s", t->gw);
    sr_alive_set(g->alive, t->ae, SR_AS_OFFLINE, SR_AR_DISCONNECT, g->ssl ? "https" : "http", addr, "", 0);
    sr_tokens_remove(g->tokens, (void *)c->caller); /* ended in memory, whatever happens next */
    if (!g->eng) return sr_http_no_content(c->req);
    if (!rc && !p) rc = SR_ENOMEM;
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        p->logout = 1;
        p->refs++;
        rc = sr_engine_submit(g->eng, &sl, 1, on_engine_done, p);
        if (rc) p->refs--, p->logout = 0;
    }
    sr_buf_release(&b);
    if (rc) logout_unrecorded(c->req, op, gw, rc);
}

/* The GW-IF HTTP routes (api/routes.h): these rows, then one row per GW-IF
 * message kind with a route (sr_gw_kinds, api/broker.c), handler
 * gw_message, assembled once before main (gwif_routes_assemble); the kind
 * of row i is kind_of_row[i] (sr_gwif_route_kind). */
static void gw_message(const sr_route_call *c);
static const sr_route gwif_rows[] = {
    {"POST", "/gw/v1/sessions", open_session_route, SR_CALLER_NONE, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"DELETE", "/gw/v1/sessions/current", session_close, SR_CALLER_GATEWAY, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/gw/v1/certificates/{subjectType}/{subjectId}", certificate, SR_CALLER_GATEWAY, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
};
enum { GWIF_ROWS_MAX = sizeof gwif_rows / sizeof gwif_rows[0] + SR_GW_KINDS_MAX };
sr_route sr_gwif_routes[GWIF_ROWS_MAX];
size_t sr_gwif_nroutes;
static const sr_gw_kind *kind_of_row[GWIF_ROWS_MAX];

__attribute__((constructor)) static void gwif_routes_assemble(void)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof gwif_rows / sizeof gwif_rows[0]; i++) sr_gwif_routes[n++] = gwif_rows[i];
    for (size_t i = 0; i < sr_gw_nkinds && n < GWIF_ROWS_MAX; i++) /* sr_gw_nkinds <= SR_GW_KINDS_MAX (broker.c) */
        if (sr_gw_kinds[i].route) {
            kind_of_row[n] = &sr_gw_kinds[i];
            sr_gwif_routes[n++] =
                (sr_route){"POST", sr_gw_kinds[i].route, gw_message, SR_CALLER_GATEWAY, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE};
        }
    sr_gwif_nroutes = n;
}

const sr_gw_kind *sr_gwif_route_kind(const sr_route *r)
{
    for (size_t i = 0; i < sr_gwif_nroutes; i++)
        if (r == &sr_gwif_routes[i]) return kind_of_row[i];
    return NULL;
}

/* a GW-IF message kind's route: the kind is its row's */
static void gw_message(const sr_route_call *c)
{
    const sr_gw_kind *k = sr_gwif_route_kind(c->route);
    if (!k) return respond_result(c->req, SR_WIRE_UNKNOWN, "unknown path", NULL); /* test_routes: never */
    if (k->http_poll) fetch(c, k);
    else if (k->how == SR_GWK_VALUES) post_values(c->binding, c->req, c->caller, k);
    else broker_message(c->binding, c->req, c->caller, k);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sr_gwhttp *g = *(sr_gwhttp **)(self + 1);
    if (g->closing) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        sr_http_result(req, 503, SR_WIRE_BUSY, "server stopping", NULL);
        return 0;
    }
    /* before any handler: the path, the query and the head parse strictly
     * (one percent-decoder; 400 E1001 naming the field) */
    if (sr_http_check_request(req)) return 0;
    if (sr_metrics_http(req, 0)) return 0; /* /metrics, /health, /ready (api/metrics.h) */
    if (req->path_normalized.len >= 8 && !memcmp(req->path_normalized.base, "/api/v1/", 8)) {
        sr_apif_handle(g->apif, req);
        return 0;
    }
    if (req->path_normalized.len >= 10 && !memcmp(req->path_normalized.base, "/admin/v1/", 10)) {
        sr_admin_handle(g->admin, req);
        return 0;
    }
    /* the dispatcher: the row, its caller authenticated once, its body
     * limit, then its handler */
    sr_route_call c;
    int known;
    const sr_route *r = sr_route_find(sr_gwif_routes, sr_gwif_nroutes, req->method.base, req->method.len,
                                      req->path_normalized.base, req->path_normalized.len, &c, &known);
    if (!r) {
        sr_http_result(req, known ? 405 : 0, known ? SR_WIRE_PARAM : SR_WIRE_UNKNOWN,
                       known ? "method not allowed on this path" : "unknown path", NULL);
        return 0;
    }
    c.binding = g;
    c.req = req;
    c.caller = NULL;
    if (r->caller != SR_CALLER_NONE) {
        token *t = r->caller == SR_CALLER_GATEWAY ? token_find(g, req) : NULL;
        const char *why = t ? sr_login_recheck(g->eng, 'g', t->op, t->gw, &t->seen) : NULL;
        if (why) { /* REVOCATION */
            token_end(g, t, why);
            sr_tokens_remove(g->tokens, t);
            char m[120];
            snprintf(m, sizeof m, "not authenticated: the session ended (the gateway was %s); log in again",
                     !strcmp(why, "secret rotated") ? "given a new secret" : why);
            respond_result(req, SR_WIRE_UNAUTH, m, NULL);
            return 0;
        }
        if (!t) {
            respond_result(req, sr_tokens_expired(g->tokens, req) ? SR_WIRE_EXPIRED : SR_WIRE_UNAUTH,
                           "not authenticated: POST /gw/v1/sessions first, then Authorization: Bearer <token>", NULL);
            return 0;
        }
        c.caller = t;
        if (t->ae) { /* R-MO-1: last seen (one relaxed store); online again after a silence */
            sr_alive_seen(t->ae);
            if (atomic_load_explicit(&t->ae->state, memory_order_relaxed) != SR_AS_ONLINE) {
                char addr[64];
                sr_login_addr_req(req, addr);
                sr_alive_http(g->alive, t->ae, g->ssl ? "https" : "http", addr);
            }
        }
    }
    char m[120];
    if (sr_route_body_check(r, req->entity.len, m, sizeof m)) {
        respond_result(req, SR_WIRE_LARGE, m, NULL);
        return 0;
    }
    /* a read (a certificate, the request fetch): its audit entry (api/access.h) */
    if (c.caller) {
        const sr_gw_kind *k = r->method[0] == 'G' ? NULL : sr_gwif_route_kind(r);
        const token *t = c.caller;
        if ((r->method[0] == 'G' || (k && k->http_poll)) &&
            sr_access_http_begin(g->access, &c, "gwif-http", t->op, SR_ACTOR_GATEWAY, t->gw))
            return 0;
        /* a write (values, a request's result, a status...): its refusal's entry (docs/audit.md "Refusals") */
        if (r->method[0] != 'G' && !(k && k->http_poll))
            sr_access_http_write(g->access, &c, "gwif-http", t->op, SR_ACTOR_GATEWAY, t->gw);
    }
    r->handler(&c);
    return 0;
}

/* ---- listener ----------------------------------------------------------- */

/* h2o's libuv binding keeps its socket in handle->data, so our side of a
 * connection lives in a wrapper around the handle */
typedef struct hconn {
    uv_tcp_t tcp; /* first */
    sr_gwhttp *g;
    struct hconn *next, *prev; /* the open connections */
    h2o_socket_t *sock;        /* NULL until h2o has it */
    int family;                /* the source address, to count per address */
    uint8_t addr[16];
    char peer[64];
    int cut;                   /* shut down by the guard (or answered and draining) */
    int lingering;             /* answered by the guard; the rest of the body is read and dropped */
    uint64_t linger_until;     /* LINGER_MS after the answer */
    size_t linger_left;        /* the body bytes still to drop, at most LINGER_BYTES */
    h2o_socket_cb h2o_read;    /* h2o's read callback, restarted to let h2o close */
    int authorized;            /* the request being read carries a live token */
    size_t last_wq;            /* the write queue at the last guard tick */
    uint64_t out_progress_at;  /* when the write queue last shrank or was empty */
} hconn;

/* Cut a connection (LIMITS): h2o then sees the end of the stream and closes it. */
static void hconn_cut(hconn *hc, const char *why, size_t bytes)
{
    if (hc->cut) return;
    hc->cut = 1;
    sr_slog(SR_LOG_WARN, "http connection cut", "peer=%s bytes=%zu reason=%s", hc->peer, bytes, sr_slog_q(why));
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&hc->tcp, &fd) == 0) shutdown(fd, SHUT_RDWR);
}

/* LIMITS, the guard's answer. h2o 2.2 reads a body whole before it calls a
 * handler, and closes a connection as soon as its answer is written: a
 * client still sending the body then gets a reset and may lose the answer.
 * So a request the guard refuses while its body is still streaming (the head
 * complete, Content-Length known, less of the body read than it announced,
 * plain TCP, nothing of h2o's waiting to be written) is answered here: the
 * status and wire error written straight to the socket with Connection:
 * close, the write side shut (the client reads the answer and the end), h2o's
 * reading stopped, and the rest of the body read and dropped by the guard's
 * ticks (hconn_linger), at most LINGER_BYTES and LINGER_MS; then the socket
 * is shut and h2o's reading restarted: it sees the end and closes the
 * connection itself. Anything else (TLS, chunked, the body complete and so
 * h2o's, a write pending) is cut without an answer, as before.
 * 1: answered and lingering; 0: not possible here (the caller cuts). */
static int hconn_answer(hconn *hc, const sr_http_head *h, size_t held, int status, sr_wire code, const char *msg,
                        const char *why)
{
    uv_os_fd_t fd;
    if (hc->sock->ssl || h->content_length < 0 || held < h->head_len ||
        (uint64_t)(held - h->head_len) >= (uint64_t)h->content_length ||
        uv_stream_get_write_queue_size((uv_stream_t *)&hc->tcp) || h2o_socket_is_writing(hc->sock) ||
        uv_fileno((uv_handle_t *)&hc->tcp, &fd) != 0)
        return 0;
    sr_buf b;
    sr_buf_init(&b);
    char head[256];
    int hn = 0;
    if (sr_http_result_body(&b, code, msg, NULL) == SR_OK)
        hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, status == 401 ? "Unauthorized" : status == 429 ? "Too Many Requests" : "Error", b.len,
                      status == 429 ? "Retry-After: 1\r\n" : "");
    int ok = 0;
    if (hn > 0 && (size_t)hn < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)hn}, {b.data, b.len}};
        ssize_t w = writev(fd, iov, 2); /* a few hundred bytes into an empty send buffer */
        ok = w == (ssize_t)(hn + b.len);
        if (w > 0 && !ok) { /* half an answer: cut */
            sr_buf_release(&b);
            hc->cut = 1;
            shutdown(fd, SHUT_RDWR);
            sr_slog(SR_LOG_WARN, "http connection cut", "peer=%s bytes=%zu reason=%s", hc->peer, held, sr_slog_q(why));
            return 1;
        }
    }
    sr_buf_release(&b);
    if (!ok) return 0;
    hc->cut = hc->lingering = 1;
    uint64_t left = (uint64_t)h->content_length - (held - h->head_len);
    hc->linger_left = left > LINGER_BYTES ? LINGER_BYTES : (size_t)left;
    hc->linger_until = uv_now(hc->g->loop) + LINGER_MS;
    hc->h2o_read = hc->sock->_cb.read;
    h2o_socket_read_stop(hc->sock);
    shutdown(fd, SHUT_WR);
    sr_slog(SR_LOG_WARN, "http request refused before its body", "peer=%s bytes=%zu status=%d reason=%s", hc->peer,
            held, status, sr_slog_q(why));
    return 1;
}

/* One guard tick of a lingering connection: drop what arrived; at the end
 * (the body's bytes, LINGER_BYTES, LINGER_MS, or the client's end) shut the
 * socket and let h2o read the end and close the connection. */
static void hconn_linger(hconn *hc, uint64_t now)
{
    static char sink[65536];
    uv_os_fd_t fd;
    int done = uv_fileno((uv_handle_t *)&hc->tcp, &fd) != 0 || now >= hc->linger_until;
    while (!done && hc->linger_left) {
        size_t want = hc->linger_left < sizeof sink ? hc->linger_left : sizeof sink;
        ssize_t n = recv(fd, sink, want, MSG_DONTWAIT);
        if (n > 0) hc->linger_left -= (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        else done = 1; /* the client's end, or an error */
    }
    hc->lingering = 0;
    if (uv_fileno((uv_handle_t *)&hc->tcp, &fd) == 0) shutdown(fd, SHUT_RDWR);
    if (hc->h2o_read) h2o_socket_read_start(hc->sock, hc->h2o_read);
}

static int token_known(sr_gwhttp *g, const char *t, size_t n)
{
    return sr_tokens_lookup(g->tokens, t, n) || sr_apif_token_known(g->apif, t, n) || sr_admin_token_known(g->admin, t, n);
}

static void on_limits(uv_timer_t *t)
{
    sr_gwhttp *g = t->data;
    uint64_t now = uv_now(g->loop);
    size_t total = 0;
    if (!g->conns) { /* nothing to guard: sleep until the next accept */
        uv_timer_stop(t);
        return;
    }
    for (hconn *hc = g->conns; hc; hc = hc->next) {
        if (hc->lingering && hc->sock && !uv_is_closing((uv_handle_t *)&hc->tcp)) hconn_linger(hc, now);
        if (!hc->sock || hc->cut || uv_is_closing((uv_handle_t *)&hc->tcp)) continue;
        h2o_buffer_t *in = hc->sock->input;
        size_t held = in ? in->size : 0;
        if (held > g->lim.max_unauth_body) {
            if (!hc->authorized) {
                sr_http_head h;
                int hs = sr_http_head_scan(in->bytes, held, &h);
                if (hs == 1 && h.bearer && token_known(g, h.bearer, h.bearer_len))
                    hc->authorized = 1;
                else {
                    const char *why = "request body over max_unauth_body without a live token";
                    if (hs != 1 || !hconn_answer(hc, &h, held, 401, SR_WIRE_UNAUTH,
                                                 "not authenticated: a request body over max_unauth_body needs a live "
                                                 "token (Authorization: Bearer <token>)",
                                                 why))
                        hconn_cut(hc, why, held);
                    continue;
                }
            }
        } else
            hc->authorized = 0; /* the next request is judged again */
        total += held;
        size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&hc->tcp);
        if (wq == 0 || wq < hc->last_wq) hc->out_progress_at = now;
        hc->last_wq = wq;
        if (wq && now - hc->out_progress_at > g->lim.send_timeout_ms)
            hconn_cut(hc, "answer stalled (the peer does not read)", wq);
    }
    while (total > g->lim.body_budget) { /* the largest first */
        hconn *big = NULL;
        size_t bs = 0;
        for (hconn *hc = g->conns; hc; hc = hc->next) {
            if (!hc->sock || hc->cut || uv_is_closing((uv_handle_t *)&hc->tcp) || !hc->sock->input) continue;
            if (hc->sock->input->size > bs) bs = hc->sock->input->size, big = hc;
        }
        if (!big) break;
        const char *why = "request bytes of all connections over body_budget";
        sr_http_head h;
        if (sr_http_head_scan(big->sock->input->bytes, bs, &h) != 1 ||
            !hconn_answer(big, &h, bs, 429, SR_WIRE_BUSY, "busy: the server holds too many request bytes; retry later",
                          why))
            hconn_cut(big, why, bs);
        total -= bs;
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    hconn *hc = (hconn *)h;
    sr_gwhttp *g = hc->g;
    if (hc->prev) hc->prev->next = hc->next;
    else if (g->conns == hc) g->conns = hc->next;
    if (hc->next) hc->next->prev = hc->prev;
    g->open_conns--;
    free(hc);
}

static void on_accept(uv_stream_t *listener, int status)
{
    sr_gwhttp *g = listener->data;
    if (status) return;
    hconn *hc = calloc(1, sizeof *hc);
    if (!hc) return;
    hc->g = g;
    hc->next = g->conns;
    if (g->conns) g->conns->prev = hc;
    g->conns = hc;
    uv_tcp_init(g->loop, &hc->tcp);
    hc->tcp.data = g; /* non-NULL: not an MQTT connection (server.c close_walk); h2o replaces it */
    g->open_conns++;
    if (uv_accept(listener, (uv_stream_t *)&hc->tcp) != 0) {
        uv_close((uv_handle_t *)&hc->tcp, on_conn_closed);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&hc->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        hc->family = ss.ss_family;
        if (ss.ss_family == AF_INET6) {
            memcpy(hc->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
            uv_ip6_name((struct sockaddr_in6 *)&ss, hc->peer, sizeof hc->peer);
        } else {
            memcpy(hc->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
            uv_ip4_name((struct sockaddr_in *)&ss, hc->peer, sizeof hc->peer);
        }
    }
    /* LIMITS: connections overall and from this address (this one included) */
    size_t same = 0;
    for (hconn *o = g->conns; o; o = o->next)
        if (o->family == hc->family && !memcmp(o->addr, hc->addr, 16)) same++;
    if (g->open_conns > g->lim.max_conns || same > g->lim.max_conns_per_addr) {
        g->refused++;
        if (uv_now(g->loop) - g->refused_log_ms >= 1000) {
            sr_slog(SR_LOG_WARN, "http connection refused", "peer=%s reason=%s refused_since_last_line=%zu", hc->peer,
                    g->open_conns > g->lim.max_conns ? "max_connections" : "max_connections_per_address", g->refused);
            g->refused_log_ms = uv_now(g->loop);
            g->refused = 0;
        }
        uv_close((uv_handle_t *)&hc->tcp, on_conn_closed);
        return;
    }
    hc->out_progress_at = uv_now(g->loop);
    if (g->limtimer_on && !uv_is_active((uv_handle_t *)&g->limtimer)) uv_timer_start(&g->limtimer, on_limits, GUARD_MS, GUARD_MS);
    /* an answer goes out as h2o writes it, not held back by Nagle's algorithm
     * waiting for the ACK of the previous segment (h2o's libuv binding does
     * not set it) */
    uv_tcp_nodelay(&hc->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&hc->tcp, on_conn_closed);
    hc->sock = sock;
    h2o_accept(&g->accept, sock);
}

/* ---- client certificates ------------------------------------------------
 * h2o 2.2 does not expose a connection's SSL object, only its session id
 * (and under TLS 1.3 the id exists only after the handshake). So when a
 * handshake completes with a verified client certificate, the SSL object and
 * the certificate's CN are remembered (the entry dies with the SSL object,
 * through an ex_data free callback), and a request finds its entry by
 * comparing session ids. Everything runs on the loop thread. */
typedef struct cn_entry {
    const SSL *ssl;
    char cn[160];
    struct cn_entry *next;
} cn_entry;
static cn_entry *cn_list;
static int cn_idx = -1;

static void cn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (!ptr) return;
    for (cn_entry **x = &cn_list; *x; x = &(*x)->next)
        if (*x == ptr) {
            *x = ((cn_entry *)ptr)->next;
            break;
        }
    free(ptr);
}

static void on_ssl_info(const SSL *ssl, int where, int ret)
{
    /* a fatal alert we send before the handshake finished: a failed TLS
     * handshake (the metrics' suiro_tls_handshake_failures_total) */
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_WRITE) && (ret >> 8) == SSL3_AL_FATAL && !SSL_is_init_finished(ssl))
        sr_metrics_tls_failed(SR_MTLS_HTTPS);
    if (cn_idx < 0 || !(where & SSL_CB_HANDSHAKE_DONE) || SSL_get_ex_data(ssl, cn_idx)) return;
    if (SSL_get_verify_result(ssl) != X509_V_OK) return;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer) return;
    cn_entry *e = calloc(1, sizeof *e);
    if (e) {
        e->ssl = ssl;
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, e->cn, sizeof e->cn);
        if (SSL_set_ex_data((SSL *)ssl, cn_idx, e) == 1) {
            e->next = cn_list;
            cn_list = e;
        } else
            free(e);
    }
    X509_free(peer);
}

const char *sr_http_client_cn(h2o_req_t *req)
{
    if (!cn_list || !req->conn->callbacks->get_socket) return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || !sock->ssl) return NULL;
    h2o_iovec_t id = h2o_socket_get_ssl_session_id(sock);
    if (!id.len) return NULL;
    for (cn_entry *e = cn_list; e; e = e->next) {
        SSL_SESSION *ss = SSL_get_session(e->ssl);
        unsigned len = 0;
        const unsigned char *sid = ss ? SSL_SESSION_get_id(ss, &len) : NULL;
        if (sid && len == id.len && !memcmp(sid, id.base, len)) return e->cn[0] ? e->cn : NULL;
    }
    return NULL;
}

int sr_gwhttp_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, const char *host, int port,
                   const sr_http_tls *tls, const sr_http_limits *lim, sr_loginguard *guard, sr_gwhttp **out,
                   char *err, size_t errlen)
{
    sr_gwhttp *g = calloc(1, sizeof *g);
    if (!g) return SR_ENOMEM;
    g->eng = eng;
    g->broker = broker;
    g->guard = guard;
    if (sr_apif_open(loop, eng, broker, guard, &g->apif) != SR_OK) {
        free(g);
        return SR_ENOMEM;
    }
    if (sr_admin_open(loop, eng, guard, &g->admin) != SR_OK) {
        sr_apif_free(g->apif);
        free(g);
        return SR_ENOMEM;
    }
    g->loop = loop;
    g->tokens = sr_tokens_new(MAX_TOKENS, sizeof(token), NULL);
    if (!g->tokens) {
        free(g);
        return SR_ENOMEM;
    }
    h2o_config_init(&g->config);
    g->lim = *lim;
    g->config.max_request_entity_size = lim->max_body;
    g->config.http1.req_timeout = lim->request_timeout_ms;
    g->config.handshake_timeout = lim->request_timeout_ms; /* HTTPS: the TLS handshake too */
    /* HTTP/2 (h2c prior knowledge or upgrade) would let one connection hold
     * 100 requests' bodies and answers at once: HTTP/1.1 only (LIMITS) */
    g->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *hc = h2o_config_register_host(&g->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof *h + sizeof(sr_gwhttp *));
    h->on_req = on_req;
    *(sr_gwhttp **)(h + 1) = g;
    sr_access_http_logger(pc); /* a read's audit entry at the request's end (api/access.h) */
    h2o_context_init(&g->ctx, loop, &g->config);
    g->ctx_ready = 1;
    g->accept.ctx = &g->ctx;
    g->accept.hosts = g->config.hosts;
    const char *tls_cert = tls ? tls->cert : NULL, *tls_key = tls ? tls->key : NULL;
    if (tls_cert && tls_cert[0] && tls_key && tls_key[0]) {
        SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
        g->ssl = ssl;
        if (!ssl) {
            snprintf(err, errlen, "[http] TLS: %s", ERR_reason_error_string(ERR_get_error()));
            *out = g;
            return SR_ETLS;
        }
        SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
        SSL_CTX_set_info_callback(ssl, on_ssl_info); /* failed handshakes; with client certificates, their CN */
        if (SSL_CTX_use_certificate_chain_file(ssl, tls_cert) != 1) {
            snprintf(err, errlen, "[http] tls_cert %s: %s", tls_cert, ERR_reason_error_string(ERR_get_error()));
            *out = g;
            return SR_ETLS;
        }
        if (SSL_CTX_use_PrivateKey_file(ssl, tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl) != 1) {
            snprintf(err, errlen, "[http] tls_key %s: %s", tls_key, ERR_reason_error_string(ERR_get_error()));
            *out = g;
            return SR_ETLS;
        }
        if (tls->client && strcmp(tls->client, "none")) {
            if (SSL_CTX_load_verify_locations(ssl, tls->ca, NULL) != 1) {
                snprintf(err, errlen, "[http] tls_ca %s: %s", tls->ca, ERR_reason_error_string(ERR_get_error()));
                *out = g;
                return SR_ETLS;
            }
            int mode = SSL_VERIFY_PEER;
            if (!strcmp(tls->client, "require")) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(ssl, mode, NULL);
            if (cn_idx < 0) cn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, cn_free);
            /* a resumed session skips the certificate: full handshakes only */
            SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
        }
        g->accept.ssl_ctx = ssl;
    }
    sr_loopq_init(&g->doneq, loop, on_done, g);
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) {
        snprintf(err, errlen, "[http] listen: '%s' is not an IP address", host);
        *out = g;
        return SR_EINVAL;
    }
    uv_tcp_init(loop, &g->listener);
    g->listener.data = g;
    int r = uv_tcp_bind(&g->listener, (struct sockaddr *)&addr, 0);
    if (!r) r = uv_listen((uv_stream_t *)&g->listener, 511, on_accept);
    if (r) {
        snprintf(err, errlen, "[http] listen %s:%d: %s", host, port, uv_strerror(r));
        *out = g;
        return SR_EIO;
    }
    struct sockaddr_storage b;
    int bl = sizeof b;
    uv_tcp_getsockname(&g->listener, (struct sockaddr *)&b, &bl);
    g->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                            : ((struct sockaddr_in *)&b)->sin_port);
    uv_timer_init(loop, &g->limtimer);
    g->limtimer.data = g;
    uv_timer_start(&g->limtimer, on_limits, GUARD_MS, GUARD_MS);
    uv_unref((uv_handle_t *)&g->limtimer); /* does not keep the loop alive */
    g->limtimer_on = 1;
    *out = g;
    return SR_OK;
}

void sr_gwhttp_set_alive(sr_gwhttp *g, sr_alive *alive)
{
    g->alive = alive;
    sr_apif_set_alive(g->apif, alive, g->ssl ? "https" : "http");
}

void sr_gwhttp_set_access(sr_gwhttp *g, struct sr_access *acc)
{
    g->access = acc;
    sr_apif_set_access(g->apif, acc);
}

int sr_gwhttp_port(sr_gwhttp *g) { return g->port; }

void sr_gwhttp_sessions(sr_gwhttp *g, size_t *conns, size_t *gateways, size_t *apps)
{
    *conns = g ? g->open_conns : 0;
    *gateways = g ? sr_tokens_count(g->tokens) : 0;
    *apps = g ? sr_apif_sessions(g->apif) : 0;
}

void sr_gwhttp_set_limits(sr_gwhttp *g, sr_workq *wq, const sr_apif_limits *l, uint32_t parse_inline_max)
{
    if (!g) return;
    g->wq = wq;
    g->parse_inline_max = parse_inline_max;
    sr_apif_set_limits(g->apif, wq, l);
}

void sr_gwhttp_set_admin(sr_gwhttp *g, const sr_admin_conf *c)
{
    if (g) sr_admin_set_conf(g->admin, g->wq, c);
}

void sr_gwhttp_stop_accepting(sr_gwhttp *g)
{
    if (g && !uv_is_closing((uv_handle_t *)&g->listener)) uv_close((uv_handle_t *)&g->listener, NULL);
}

void sr_gwhttp_quiesce(sr_gwhttp *g)
{
    if (!g) return;
    g->closing = 1;
    sr_apif_quiesce(g->apif);
    sr_admin_quiesce(g->admin);
}

size_t sr_gwhttp_busy(sr_gwhttp *g) { return g ? sr_apif_busy(g->apif) + sr_admin_busy(g->admin) : 0; }

void sr_gwhttp_flush(sr_gwhttp *g)
{
    if (g) sr_loopq_drain(&g->doneq);
}

static void on_wake(uv_timer_t *t) { (void)t; }

void sr_gwhttp_dispose(sr_gwhttp *g)
{
    if (!g || g->ctx_ready <= 0) return; /* -1: gave up waiting once already */
    if (g->limtimer_on) {
        g->limtimer_on = 0;
        uv_close((uv_handle_t *)&g->limtimer, NULL);
    }
    /* ask every connection to finish and close; wait (bounded) for them */
    if (g->open_conns) h2o_context_request_shutdown(&g->ctx);
    uv_timer_t wake; /* bounds the wait: a client may never finish its request */
    uv_timer_init(g->loop, &wake);
    uv_timer_start(&wake, on_wake, 50, 50);
    uv_update_time(g->loop);
    uint64_t deadline = uv_now(g->loop) + 2000, idle_at = uv_now(g->loop) + 200;
    int shut = 0;
    while (g->open_conns && uv_now(g->loop) < deadline) {
        uv_run(g->loop, UV_RUN_ONCE);
        if (!shut && g->open_conns && uv_now(g->loop) >= idle_at) {
            /* h2o 2.2 leaves idle HTTP/1 keep-alive connections open: end
             * their reading side, so h2o sees the end and closes them (a
             * response still being written goes on) */
            shut = 1;
            for (hconn *hc = g->conns; hc; hc = hc->next) {
                uv_os_fd_t fd;
                if (uv_fileno((uv_handle_t *)&hc->tcp, &fd) == 0) shutdown(fd, SHUT_RD);
            }
        }
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(g->loop, UV_RUN_NOWAIT);
    if (g->open_conns) {
        /* h2o cannot be torn down under live connections: leave it to the exit */
        sr_slog(SR_LOG_WARN, "http connections still open at exit", "count=%zu", g->open_conns);
        g->ctx_ready = -1;
        return;
    }
    /* request_shutdown arms HTTP/2's graceful-shutdown timer even when every
     * connection is gone; dispose insists that no timer is pending */
    if (h2o_timeout_is_linked(&g->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&g->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&g->ctx); /* closes h2o's own handles */
    g->ctx_ready = 0;
}

void sr_gwhttp_free(sr_gwhttp *g)
{
    if (!g) return;
    sr_gwhttp_dispose(g);
    if (g->ctx_ready < 0) return; /* see sr_gwhttp_dispose */
    h2o_config_dispose(&g->config);
    sr_apif_free(g->apif);
    sr_admin_free(g->admin);
    if (g->ssl) SSL_CTX_free(g->ssl);
    sr_loopq_destroy(&g->doneq);
    sr_tokens_free(g->tokens);
    free(g);
}
