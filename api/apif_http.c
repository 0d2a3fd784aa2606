/*
 * api/apif_http.c -- AP-IF over HTTP (../shared/docs/interface.md, base
 * /api/v1): app sessions, grants, masters, immediate acquisition, monitors,
 * control, certificates, request status, stored values. The request flows
 * themselves are the broker's (api/broker.c, docs/requests.md).
 *
 * ROUTES
 *  (ext) POST /api/v1/corrections, an app's import of corrected values, is
 *  api/csv_http.c's (sr_apif_corrections, docs/csv.md).
 *  The rows of sr_apif_routes (api/routes.h) below: sr_apif_handle finds
 *  the row, authenticates its caller class once (an app: the token), refuses
 *  a body over the row's limit (413 E1003) and calls the handler with its
 *  parameters by name.
 *
 * AUTHORIZATION
 *  Every call after connect carries `Authorization: Bearer <token>`; the
 *  operator and the app come from the token. A data point is reachable only
 *  if it exists in the app's operator AND a grant of the app matches it with
 *  the access the call needs (read: values, monitors; control: control
 *  values). An unknown point and a point not granted get the same answer
 *  (403 E2003), so an app learns nothing of data it may not see. Grants are
 *  read when the session opens and again before the first request after any
 *  registry change (REVOCATION). What the broker delivers (answers, request
 *  status, pushes) is filtered again with the grants at delivery
 *  (api/broker.c invariant 6).
 *
 * REVOCATION (R-ID-4, docs/admin.md "Revocation")
 *  A token remembers the registry generation its grants were read at and
 *  the secret of its login (sr_login_seen, api/loginguard.h). The
 *  dispatcher compares the generation with the engine's (one atomic load);
 *  when it moved, the app's entry and grants are read again before the
 *  handler runs, so a narrowed grant holds from the very next request. A
 *  deleted or disabled app, or one whose secret rotated, has its session
 *  ended there (a SessionEvent DISCONNECTED with the reason, 401 E2001),
 *  and at once for every token of the app when the server's registry hook
 *  calls sr_apif_registry_changed. Jobs on the worker queue carry the
 *  grants of the request (a copy).
 *
 * LOGINS
 *  POST /api/v1/sessions with a secret goes through the server's login
 *  guard (api/loginguard.h): throttled per (app, address), per address and
 *  per app (429 E9002 with Retry-After), checked with scrypt on the guard's
 *  own threads -- an unknown app against a dummy hash, the same path and
 *  time -- never on libuv's thread pool, which serves the queries. A wrong
 *  secret is 401 E2001 and an auth event.
 *
 * THE LOOP
 *  Work proportional to data (stored values, masters, monitor values, and
 *  apif_store.c's documents and files) is a job on the worker queue
 *  (api/workq.h, sr_apif_job_*): checked on the loop, run and written on a
 *  worker, sent from the loop; an operator over its share is answered 429
 *  E9002. What stays inline is bounded: latest values (<= 100 points) and
 *  JSON bodies of at most SR_BODY_SMALL (their routes' limit). A signed
 *  control request's verification (~0.7-9 M instructions) is a job too
 *  (control_sig_run, api/sigcheck.h sr_sig_check_now): never on the loop.
 *
 * VALUES
 *  Raw, latest and downsampled values are written straight into the answer
 *  buffer (put_values, put_values_compact, run_down), every number by
 *  sr_json_number_k (api/httpu.c: the shortest text that reads back, 68.29
 *  as sent); everything else goes through sr_json_write, the same numbers.
 *  A raw page has two forms with the same values, order and cursors: the
 *  contract's {"values":[Value..]} and (ext) format=compact, grouped by
 *  dataId with the quality only when it is not GOOD. (ext) format=csv (or
 *  Accept: text/csv) answers the whole range, raw or downsampled, as CSV
 *  streamed step by step (api/csv_http.c, docs/csv.md), not paged.
 */
#include "api/ryw.h"
#include "api/apif_http.h"
#include "api/apif_int.h"
#include "api/alarms.h"

#include "api/cluster.h"
#include "api/cluster_fwd.h"
#include "api/access.h"
#include "api/alive.h"
#include "api/broker.h"
#include "api/csv_http.h"
#include "api/gwif_http.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/routes.h"
#include "api/sigcheck.h"
#include "api/slog.h"
#include "codecs/ids.h"
#include "codecs/jsonlex.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "engine/secret.h"
#include "storage/crypto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The JSON bodies other than documents (sessions, current values, control,
 * monitors) are parsed on the loop, so their routes bound them
 * (SR_BODY_SMALL, api/routes.h): 1,000 data IDs take ~70 KB */
enum { TOKEN_TTL_MS = 3600 * 1000, MAX_TOKENS = 100000, MAX_IDS = 1000, MAX_GRANTS = 256 };

typedef sr_ap_grant grant;
typedef sr_ap_token atoken;

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void token_free(void *payload) { free(((atoken *)payload)->grants); }

void sr_apif_limits_default(sr_apif_limits *l)
{
    l->answer_max_bytes = 8u << 20;
    l->doc_scan_max = 10000;
    l->uploads_max = 1024;
    l->uploads_per_op = 64;
    l->uploads_per_app = 16;
    l->upload_idle_ms = 600000;
    l->parse_inline_max = 65536;
}

static void sessions_restore(sr_apif *a);

int sr_apif_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, sr_loginguard *guard, sr_apif **out)
{
    sr_apif *a = calloc(1, sizeof *a);
    if (!a || !(a->tokens = sr_tokens_new(MAX_TOKENS, sizeof(atoken), token_free))) {
        free(a);
        return SR_ENOMEM;
    }
    a->eng = eng;
    a->broker = broker;
    a->loop = loop;
    a->guard = guard;
    sr_apif_limits_default(&a->lim);
    sr_workq_limits wl;
    sr_workq_limits_default(&wl);
    if (sr_workq_new(loop, &wl, &a->own_wq) != SR_OK) {
        sr_tokens_free(a->tokens);
        free(a);
        return SR_ENOMEM;
    }
    a->wq = a->own_wq;
    if (sr_apif_store_open(a) != SR_OK) {
        sr_workq_free(a->own_wq);
        sr_tokens_free(a->tokens);
        free(a);
        return SR_ENOMEM;
    }
    sessions_restore(a);
    *out = a;
    return SR_OK;
}

void sr_apif_set_alive(sr_apif *a, sr_alive *alive, const char *binding)
{
    a->alive = alive;
    a->alive_binding = binding;
}

void sr_apif_set_limits(sr_apif *a, sr_workq *wq, const sr_apif_limits *l)
{
    if (!a) return;
    if (l) a->lim = *l;
    if (wq && a->wq == a->own_wq && !sr_workq_pending(a->own_wq, NULL)) {
        sr_workq_free(a->own_wq);
        a->own_wq = NULL;
        a->wq = wq;
    }
}

void sr_apif_quiesce(sr_apif *a)
{
    if (!a) return;
    a->closing = 1;
    sr_apif_store_quiesce(a);
}

size_t sr_apif_busy(sr_apif *a) { return a ? a->busy : 0; }
size_t sr_apif_sessions(sr_apif *a) { return a ? sr_tokens_count(a->tokens) : 0; }

void sr_apif_free(sr_apif *a)
{
    if (!a) return;
    sr_apif_store_free(a);
    sr_tokens_free(a->tokens);
    sr_workq_free(a->own_wq);
    free(a);
    sr_http_buf_drain(); /* the answers are all sent: the kept buffers go */
}

/* ---- jobs on the worker queue (apif_int.h) -------------------------------- */

void sr_apif_busy_answer(h2o_req_t *req, const char *message)
{
    sr_http_result(req, 0, SR_WIRE_BUSY, message, NULL); /* 429 carries Retry-After (httpu.c) */
}

static void job_free(sr_http_ctx *h)
{
    sr_apjob *j = (sr_apjob *)h;
    if (j->fini) j->fini(j);
    sr_http_buf_put(&j->out);
}

void *sr_apif_job_new(h2o_req_t *req, size_t size, void (*run)(sr_apjob *j))
{
    sr_apjob *j = sr_http_ctx_new(req, size);
    if (!j) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    j->h.on_free = job_free;
    j->run = run;
    sr_http_buf_get(&j->out);
    return j;
}

static void job_work(sr_work *w)
{
    sr_apjob *j = SR_CONTAINER(w, sr_apjob, w);
    j->run(j);
}

static void job_done(sr_work *w, int status)
{
    sr_apjob *j = SR_CONTAINER(w, sr_apjob, w);
    h2o_req_t *req = j->h.req;
    j->a->busy--;
    if (req) {
        if (status) sr_http_result(req, 0, SR_WIRE_INTERNAL, "the query was cancelled", NULL);
        else if (j->code) sr_http_result(req, 0, j->code, j->msg, NULL);
        else if (j->rc) sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(j->rc), NULL);
        else {
            if (j->nvalues) sr_access_http_values(req, j->nvalues); /* api/access.h */
            if (j->after) j->after(j, req);
            else sr_http_json_buf(req, 200, &j->out);
        }
    }
    sr_http_ctx_unref(&j->h);
}

void sr_apif_job_submit(sr_apif *a, const char *op, sr_apjob *j, uint64_t bytes)
{
    j->a = a;
    j->w.work = job_work;
    j->w.done = job_done;
    j->h.refs++; /* the job's, released in job_done */
    a->busy++;
    int rc = sr_workq_submit(a->wq, op, bytes, 0, &j->w);
    if (rc) {
        j->h.refs--;
        a->busy--;
        if (rc == SR_EFULL)
            sr_apif_busy_answer(j->h.req, "busy: this operator has too many requests waiting; retry later");
        else sr_http_result(j->h.req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    }
}

/* ---- tokens and grants --------------------------------------------------- */

static atoken *token_find(sr_apif *a, h2o_req_t *req) { return sr_tokens_find(a->tokens, req); }

static int load_grants(sr_apif *a, atoken *t) { return sr_grants_load(a->eng, t->op, t->app, &t->grants, &t->ngrants); }

static int granted(const atoken *t, const char *data_id, int access)
{
    return sr_grants_allow(t->grants, t->ngrants, data_id, access);
}

#define is_id sr_id_str_ok

/* A data id the app may reach with access: SR_WIRE_OK and its point info,
 * or the refusal (the same for unknown and not granted). */
static sr_wire reach(sr_apif *a, const atoken *t, const char *data_id, int access, sr_point_info *info)
{
    if (!is_id(data_id)) return SR_WIRE_PARAM;
    if (!granted(t, data_id, access) || sr_engine_point_info(a->eng, t->op, data_id, info) != SR_OK) return SR_WIRE_FORBIDDEN;
    return SR_WIRE_OK;
}

/* ---- request plumbing ----------------------------------------------------- */

typedef struct actx {
    sr_http_ctx h;
} actx;

static void on_broker_answer(void *ctx, int status, json_t *body)
{
    actx *c = ctx;
    /* a 503 (E9002: a monitor's node that does not answer, docs/cluster.md
     * "Monitors across nodes") says when to retry, as a forwarded request's */
    const char *code = json_string_value(json_object_get(json_object_get(body, "result"), "code"));
    if (c->h.req && status == 503 && code && !strcmp(code, sr_wire_code(SR_WIRE_BUSY)))
        h2o_add_header(&c->h.req->pool, &c->h.req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    if (c->h.req) sr_http_jsonv(c->h.req, status, body);
    sr_http_ctx_unref(&c->h);
}

static actx *ctx_for(h2o_req_t *req)
{
    actx *c = sr_http_ctx_new(req, sizeof *c);
    if (!c) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    c->h.refs++; /* the broker's, released in on_broker_answer */
    return c;
}

static json_t *body_json(h2o_req_t *req)
{
    json_error_t je;
    json_t *b = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &je);
    if (!b) {
        char m[200];
        snprintf(m, sizeof m, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        sr_http_result(req, 0, SR_WIRE_JSON, m, NULL);
        return NULL;
    }
    if (!json_is_object(b)) {
        json_decref(b);
        sr_http_result(req, 0, SR_WIRE_PARAM, "the body must be a JSON object", NULL);
        return NULL;
    }
    return b;
}

/* dataIds (array of strings) -> targets; answers the refusal itself */
static sr_target *targets(sr_apif *a, h2o_req_t *req, const atoken *t, json_t *ids, int access, size_t *n)
{
    if (!json_is_array(ids) || !json_array_size(ids) || json_array_size(ids) > MAX_IDS) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "dataIds: an array of 1..1000 data IDs is required", NULL);
        return NULL;
    }
    size_t k = json_array_size(ids);
    sr_target *tg = calloc(k, sizeof *tg);
    if (!tg) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    for (size_t i = 0; i < k; i++) {
        json_t *d = json_array_get(ids, i);
        sr_point_info info;
        sr_wire code = json_is_string(d) ? reach(a, t, json_string_value(d), access, &info) : SR_WIRE_PARAM;
        if (code) {
            char m[160];
            snprintf(m, sizeof m, "dataIds[%zu]: %s", i,
                     code == SR_WIRE_PARAM ? "a data ID [A-Za-z0-9._-]{1,64}" : "not a data point this app may use");
            sr_http_result(req, 0, code, m, NULL);
            free(tg);
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(tg[j].data_id, json_string_value(d))) {
                sr_http_result(req, 0, SR_WIRE_PARAM, "dataIds: each data ID once", NULL);
                free(tg);
                return NULL;
            }
        snprintf(tg[i].data_id, sizeof tg[i].data_id, "%s", json_string_value(d));
        snprintf(tg[i].gw, sizeof tg[i].gw, "%s", info.gateway);
        if (!info.gateway[0]) {
            sr_http_result(req, 0, SR_WIRE_GW_DOWN, "the data point has no gateway", NULL);
            free(tg);
            return NULL;
        }
    }
    *n = k;
    return tg;
}

static int async_param(h2o_req_t *req)
{
    char v[8];
    return sr_http_query(req, "async", v, sizeof v) && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static int get_timeout(h2o_req_t *req, json_t *b, uint32_t *out)
{
    json_t *t = json_object_get(b, "timeoutMs");
    *out = 10000;
    if (!t) return 0;
    if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 60000) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "timeoutMs: an integer 1..60000", NULL);
        return -1;
    }
    *out = (uint32_t)json_integer_value(t);
    return 0;
}

/* ---- sessions ----------------------------------------------------------- */

typedef struct login {
    sr_http_ctx h;
    sr_apif *a;
    sr_login_job lj; /* its stored hash: the app's (empty if unknown) */
    char op[72], app[72], addr[64];
} login;

static void login_free(sr_http_ctx *h)
{
    login *l = (login *)h;
    sr_buf_release(&l->lj.stored);
}

/* Sessions survive a restart (docs/durability.md section 8): each one opened
 * or closed is an event (SessionEvent with the SHA-256 of the token, never
 * the token, and its expiry), which the index keeps while it is open
 * (`sessions`); sessions_restore reads them back at start. A login's
 * event is waited for (issue #18, fail closed: issue_token, token_recorded):
 * no token is answered unrecorded. A logout's is waited for too (issue
 * #18, session_close): the token ends at once whatever happens, the 204
 * comes once the event is durable, and a logout that could not be recorded
 * is answered 503 E9001 (it may come back at a restart until it expires). */
static void session_event_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "app session event not stored", "error=%s", sr_err_name(r->rc));
}

static void session_event(sr_apif *a, const char *op, const char *app, const uint8_t hash[32], int64_t expires,
                          sr_session_state st, const char *reason, const char *source)
{
    if (!a->eng) return;
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, app, SR_ACTOR_APP, NULL, source};
    int rc = sr_cmd_token_session(&env, hash, expires, st, reason, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit(a->eng, &sl, 1, session_event_done, NULL);
    }
    if (rc) sr_slog(SR_LOG_WARN, "app session event not queued", "op=%s app=%s error=%s", op, app, sr_err_name(rc));
    sr_buf_release(&b);
}

typedef struct kept_session {
    char op[72], app[72];
    uint8_t hash[32];
    int64_t expires;
} kept_session;

typedef struct kept_list {
    kept_session *v;
    size_t n, cap;
} kept_list;

static int keep_one(void *ctx, const sr_session_rec *s)
{
    kept_list *l = ctx;
    if (s->kind != SR_ACTOR_APP) return 0; /* a user's session is not the AP-IF's */
    if (strlen(s->op) >= sizeof l->v->op || strlen(s->id) >= sizeof l->v->app) return 0;
    if (sr_array_reserve(&l->v, &l->cap, l->n + 1, sizeof *l->v)) return SR_ENOMEM;
    kept_session *k = &l->v[l->n++];
    snprintf(k->op, sizeof k->op, "%s", s->op);
    snprintf(k->app, sizeof k->app, "%s", s->id);
    memcpy(k->hash, s->token_hash, 32);
    k->expires = s->expires_ms;
    return 0;
}

/* The sessions open before the restart, back in the token table with the
 * app's grants as they are now; expired ones ended (an EXPIRED event). */
/* A session the index holds (a kept one at a restart, or in cluster mode
 * one another node opened) taken into the token table: its operator, app,
 * login state and grants. NULL when the table is full or the app cannot
 * log in any more (*why says so, NULL for the other failures). */
static atoken *token_take(sr_apif *a, const uint8_t hash[32], int64_t expires, const char *op, const char *app,
                          const char **why)
{
    *why = NULL;
    atoken *t = sr_tokens_add_hashed(a->tokens, hash, expires);
    if (!t) return NULL;
    snprintf(t->op, sizeof t->op, "%s", op);
    snprintf(t->app, sizeof t->app, "%s", app);
    *why = sr_login_seen_init(a->eng, 'a', op, app, NULL, &t->seen); /* disabled or deleted */
    if (!*why && load_grants(a, t) == SR_OK) return t;
    sr_tokens_remove(a->tokens, t);
    return NULL;
}

static void sessions_restore(sr_apif *a)
{
    if (!a->eng) return;
    kept_list l = {0};
    int rc = sr_each_session(a->eng, keep_one, &l);
    if (rc) sr_slog(SR_LOG_WARN, "app sessions not restored", "error=%s", sr_err_name(rc));
    size_t restored = 0, ended = 0;
    int64_t now = wall_ms();
    for (size_t i = 0; !rc && i < l.n; i++) {
        kept_session *k = &l.v[i];
        const char *why = NULL;
        if (k->expires > now && token_take(a, k->hash, k->expires, k->op, k->app, &why)) {
            restored++;
            continue;
        }
        if (sr_engine_write_state(a->eng, NULL) == SR_OK) {
            char r[80];
            snprintf(r, sizeof r, "not restored: app %s", why ? why : "");
            session_event(a, k->op, k->app, k->hash, k->expires, why ? SR_SS_DISCONNECTED : SR_SS_EXPIRED,
                          why ? r : k->expires > now ? "not restored" : "expired", NULL);
            ended++;
        }
    }
    sr_free(l.v);
    if (restored || ended) sr_slog(SR_LOG_INFO, "app sessions restored", "restored=%zu ended=%zu", restored, ended);
}

/* A login whose SessionEvent is being written (issue #18: the answer waits
 * for it; sr_apif_submit_then copies it). */
typedef struct pending_token {
    char hex[65];
    int64_t expires;
    char op[72], app[72], addr[64], how[16];
} pending_token;

/* Its SessionEvent refused (a write error, a stopped or read-only writer,
 * a full queue): no session; 503 E9001 with Retry-After (429 E9002 for a
 * full queue), as a gateway's login (gwif_http.c login_unrecorded). */
static void token_unrecorded(h2o_req_t *req, const pending_token *pt, int rc)
{
    sr_slog(SR_LOG_WARN, "app login refused", "op=%s app=%s peer=%s auth=%s detail=%s", sr_slog_q(pt->op),
            sr_slog_q(pt->app), pt->addr, pt->how, sr_slog_q(sr_err_name(rc)));
    if (!req) return;
    sr_wire code = rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL;
    if (code != SR_WIRE_BUSY) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    sr_http_result(req, code == SR_WIRE_BUSY ? 429 : 503, code,
                   "the login cannot be recorded now (the server cannot write): no session; retry later", NULL);
}

static void token_recorded(sr_apif *a, h2o_req_t *req, const sr_result *r, void *arg)
{
    pending_token *pt = arg;
    atoken *t = sr_tokens_lookup(a->tokens, pt->hex, 64);
    if (r->rc || !t) { /* refused, or swept meanwhile (its app disabled) */
        if (t) sr_tokens_remove(a->tokens, t);
        return token_unrecorded(req, pt, r->rc ? r->rc : SR_ECLOSED);
    }
    sr_login_audit_event(a->eng, SR_ACTOR_APP, pt->op, pt->app, 1, pt->how, "", pt->addr);
    if (!req) { /* the client left before the answer: the session ends as recorded */
        session_event(a, pt->op, pt->app, sr_tokens_hash_of(t, NULL), pt->expires, SR_SS_DISCONNECTED,
                      "client left before the login was answered", pt->addr);
        sr_tokens_remove(a->tokens, t);
        return;
    }
    if ((t->ae = sr_alive_get(a->alive, pt->op, SR_ACTOR_APP, pt->app)))
        sr_alive_http(a->alive, t->ae, a->alive_binding, pt->addr);
    char exp[32];
    sr_rfc3339_format(pt->expires, exp);
    json_t *o = json_pack("{s:s,s:s}", "token", pt->hex, "expiresAt", exp);
    sr_http_jsonv(req, 201, o);
    json_decref(o);
    sr_slog(SR_LOG_INFO, "app session opened", "op=%s app=%s auth=%s", pt->op, pt->app, pt->how);
}

/* a new session for (op, app): 201 {token, expiresAt}. checked: the stored
 * hash the secret was checked against (NULL: a certificate); an app
 * disabled, deleted or rotated meanwhile gets no session. */
static void issue_token(sr_apif *a, h2o_req_t *req, const char *op, const char *app, const char *how,
                        const sr_buf *checked, const char *addr)
{
    char hex[65];
    int64_t expires;
    sr_login_seen seen;
    const char *why = sr_login_seen_init(a->eng, 'a', op, app, checked, &seen);
    if (why) {
        sr_slog(SR_LOG_WARN, "app login refused", "op=%s app=%s peer=%s auth=%s detail=%s", sr_slog_q(op),
                sr_slog_q(app), addr, how, sr_slog_q(why));
        char m[120];
        snprintf(m, sizeof m, "app %s", why);
        if (!a->closing) sr_login_audit_event(a->eng, SR_ACTOR_APP, op, app, 0, how, m, addr);
        return sr_http_result(req, 0, SR_WIRE_UNAUTH,
                              checked ? "not authenticated: wrong operatorId, appId or secret"
                                      : "not authenticated: the certificate's app is not registered or is disabled",
                              NULL);
    }
    atoken *t = sr_tokens_add(a->tokens, TOKEN_TTL_MS, hex, &expires);
    if (!t) return sr_http_result(req, 0, SR_WIRE_BUSY, "too many sessions", NULL);
    snprintf(t->op, sizeof t->op, "%s", op);
    snprintf(t->app, sizeof t->app, "%s", app);
    t->seen = seen;
    if (load_grants(a, t) != SR_OK) {
        sr_tokens_remove(a->tokens, t); /* frees the grants read so far */
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, "cannot read the app's grants", NULL);
    }
    /* issue #18, fail closed: the token is in the table but nobody has it
     * until its SessionEvent is durable (token_recorded answers it) */
    pending_token pt = {.expires = expires};
    memcpy(pt.hex, hex, sizeof pt.hex);
    snprintf(pt.op, sizeof pt.op, "%s", op);
    snprintf(pt.app, sizeof pt.app, "%s", app);
    snprintf(pt.addr, sizeof pt.addr, "%s", addr ? addr : "");
    snprintf(pt.how, sizeof pt.how, "%s", how);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, app, SR_ACTOR_APP, NULL, addr};
    int rc = a->closing || !a->eng ? SR_ECLOSED
                                   : sr_cmd_token_session(&env, sr_tokens_hash_of(t, NULL), expires, SR_SS_CONNECTED,
                                                          how, &b);
    if (!rc) rc = sr_apif_submit_then(a, req, &b, token_recorded, &pt, sizeof pt);
    else sr_buf_release(&b);
    if (rc) {
        sr_tokens_remove(a->tokens, t);
        token_unrecorded(req, &pt, rc);
    }
}

static void login_done(sr_login_job *lj)
{
    login *l = SR_CONTAINER(lj, login, lj);
    if (lj->verdict == SR_LG_OK && lj->checked && !lj->ok) {
        /* logged and audited (and counted by the guard) also when the client left */
        sr_slog(SR_LOG_WARN, "app login refused", "op=%s app=%s peer=%s binding=http checked=%d", sr_slog_q(l->op),
                sr_slog_q(l->app), l->addr, lj->checked);
        if (!l->a->closing)
            sr_login_audit(l->a->eng, SR_ACTOR_APP, l->op, l->app, "bad app id or secret", l->addr);
    }
    if (l->h.req && lj->verdict != SR_LG_OK)
        sr_login_http_refuse(l->h.req, "app", l->op, l->app, l->addr, lj->verdict, lj->retry_ms);
    else if (l->h.req) {
        if (lj->ok) issue_token(l->a, l->h.req, l->op, l->app, "secret", &lj->stored, l->addr);
        else
            sr_http_result(l->h.req, 0, SR_WIRE_UNAUTH, "not authenticated: wrong operatorId, appId or secret", NULL);
    }
    sr_http_ctx_unref(&l->h);
}

/* A verified client certificate whose CN is "operatorId/appId" of a
 * registered app opens a session without a secret. 1 if it answered. */
static int session_by_cert(sr_apif *a, h2o_req_t *req, json_t *op, json_t *app)
{
    const char *cn = sr_http_client_cn(req);
    const char *slash = cn ? strchr(cn, '/') : NULL;
    if (!slash) return 0;
    char cop[72], capp[72];
    size_t ol = (size_t)(slash - cn);
    if (ol >= sizeof cop || strlen(slash + 1) >= sizeof capp) return 0;
    memcpy(cop, cn, ol);
    cop[ol] = 0;
    snprintf(capp, sizeof capp, "%s", slash + 1);
    char addr[64];
    sr_login_addr_req(req, addr);
    if ((op && (!json_is_string(op) || strcmp(json_string_value(op), cop))) ||
        (app && (!json_is_string(app) || strcmp(json_string_value(app), capp)))) {
        sr_slog(SR_LOG_WARN, "app login refused", "cert=%s detail=\"ids differ from the certificate\"", sr_slog_q(cn));
        sr_login_audit_event(a->eng, SR_ACTOR_APP, cop, capp, 0, "certificate", "the ids differ from the certificate's",
                             addr);
        sr_http_result(req, 0, SR_WIRE_UNAUTH, "not authenticated: the ids differ from the client certificate's", NULL);
        return 1;
    }
    issue_token(a, req, cop, capp, "certificate", NULL, addr); /* refused if not registered or disabled */
    return 1;
}

static void open_session(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    json_t *b = body_json(req);
    if (!b) return;
    json_t *op = json_object_get(b, "operatorId"), *app = json_object_get(b, "appId"),
           *sec = json_object_get(b, "secret");
    if (!sec && session_by_cert(a, req, op, app)) {
        json_decref(b);
        return;
    }
    if (!sr_login_str_ok(op, 72) || !sr_login_str_ok(app, 72) || !sr_login_str_ok(sec, 300)) {
        json_decref(b);
        sr_http_result(req, 0, SR_WIRE_PARAM,
                       "operatorId, appId and secret (strings, at most 71, 71 and 299 bytes, no NUL) are required", NULL);
        return;
    }
    login *l = sr_http_ctx_new(req, sizeof *l);
    if (!l) {
        json_decref(b);
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return;
    }
    l->h.on_free = login_free;
    l->a = a;
    sr_buf_init(&l->lj.stored);
    snprintf(l->op, sizeof l->op, "%s", json_string_value(op));
    snprintf(l->app, sizeof l->app, "%s", json_string_value(app));
    snprintf(l->lj.secret, sizeof l->lj.secret, "%s", json_string_value(sec));
    json_decref(b);
    sr_login_stored(a->eng, 'a', l->op, l->app, &l->lj.stored);
    sr_login_addr_req(req, l->addr);
    l->lj.done = login_done;
    uint64_t retry_ms = 0;
    int v = sr_loginguard_submit(a->guard, &l->lj, 'a', l->op, l->app, l->addr, &retry_ms);
    if (v != SR_LG_OK) {
        memset(l->lj.secret, 0, sizeof l->lj.secret);
        sr_login_http_refuse(req, "app", l->op, l->app, l->addr, v, retry_ms);
        return;
    }
    l->h.refs++; /* the guard's, until login_done */
}

/* ---- values --------------------------------------------------------------- */

/* ---- the values writer: JSON straight into a buffer ----------------------
 * A raw query answers up to 100,000 values; building a jansson tree for each
 * (an object, four keys, a real) was most of the answer's time. The writer
 * gives the same JSON as jansson would (numbers with 15 significant digits,
 * reals always with a '.', strings escaped). */
static int put_s(sr_buf *b, const char *s, size_t n) { return sr_buf_append(b, s, n); }
#define PUT_LIT(b, lit) put_s(b, lit, sizeof lit - 1)

#define put_json_string sr_json_put_string

/* Room for `need` more bytes past b->len: where to write, or NULL (no memory).
 * The writers below reserve once for a whole series (an estimate) and only
 * check per value, then write with a pointer: no call per field. */
static inline char *room(sr_buf *b, size_t need)
{
    if (b->cap - b->len < need && sr_buf_reserve(b, need)) return NULL;
    return (char *)b->data + b->len;
}

/* {"dataId":"<id>","timestamp":" of one point into h (at most 160 bytes:
 * ids are [A-Za-z0-9._-]{1,64}, nothing escaped); its length */
static size_t value_head(char h[160], const char *data_id)
{
    size_t il = strnlen(data_id, 71);
    memcpy(h, "{\"dataId\":\"", 11);
    memcpy(h + 11, data_id, il);
    memcpy(h + 11 + il, "\",\"timestamp\":\"", 15);
    return 26 + il;
}

/* The value of sample s as JSON at p (room for 40 bytes past p; a string
 * goes through b): the end, or NULL with *rc set. *p0 is the start of the
 * bytes written past b->len; for a string they are committed first, and p
 * and *p0 are then b's new end with room for `tail` more bytes. */
static inline char *put_sample_value(sr_buf *b, char *p, char **p0, sr_vtype type, const sr_sample *s, int *kh,
                                     size_t tail, int *rc)
{
    switch (type) {
    case SR_VT_INTEGER: return p + sr_json_i64(p, s->v.i);
    case SR_VT_BOOL:
        memcpy(p, s->v.b ? "true" : "false", s->v.b ? 4 : 5);
        return p + (s->v.b ? 4 : 5);
    case SR_VT_STRING:
        b->len += (size_t)(p - *p0);
        if ((*rc = sr_json_put_string(b, s->v.str.s, s->v.str.slen))) return NULL;
        if (!(p = *p0 = room(b, tail))) *rc = SR_ENOMEM;
        return p;
    default: {
        int m = sr_json_number_k(p, s->v.f, kh); /* decimal places of the last value: the hint */
        if (!m) *rc = SR_EINVAL;
        return m ? p + m : NULL;
    }
    }
}

/* "<name>" of each quality, quoted, from codecs/sample.h's one list */
#define QJ_(q, name) "\"" name "\"",
#define QL_(q, name) sizeof "\"" name "\"" - 1,
static const char quality_names[SR_Q_COUNT][14] = {SR_QUALITIES(QJ_)};
static const uint8_t quality_lens[SR_Q_COUNT] = {SR_QUALITIES(QL_)};
#undef QJ_
#undef QL_

/* {"dataId":..,"timestamp":..,"value":..,"quality":..} for n samples,
 * comma-separated; *first is 1 before the first value of the array */
static int put_values(sr_buf *b, const char *data_id, sr_vtype type, const sr_sample *s, size_t n, int *first)
{
    char head[160];
    size_t hl = value_head(head, data_id);
    sr_json_ts tc = {0};
    int kh = 0, rc = SR_OK;
    /* the most one value takes: , head ts(24) ","value": number(40) ,"quality": "UNCERTAIN"} */
    size_t most = 1 + hl + 24 + 10 + 40 + 11 + 14; /* > 1 + 64 */
    if (type != SR_VT_STRING && n && !room(b, n * (hl + 64) + most)) return SR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *p = room(b, most), *p0 = p;
        if (!p) return SR_ENOMEM;
        if (!*first) *p++ = ',';
        *first = 0;
        if (hl <= 64) memcpy(p, head, 64); /* a constant size: inlined; room has it */
        else memcpy(p, head, hl);
        p += hl;
        sr_json_ts_put(&tc, s[i].ts, p); /* 24 bytes and a NUL: room has 32 and more */
        p += 24;
        memcpy(p, "\",\"value\":", 10);
        p += 10;
        if (!(p = put_sample_value(b, p, &p0, type, &s[i], &kh, 11 + 14, &rc))) return rc;
        memcpy(p, ",\"quality\":", 11);
        p += 11;
        unsigned q = s[i].quality < SR_Q_COUNT ? s[i].quality : 0;
        memcpy(p, quality_names[q], 14); /* room for the longest; only the name's length counts */
        p += quality_lens[q];
        *p++ = '}';
        b->len += (size_t)(p - p0);
    }
    return SR_OK;
}

/* The compact form (ext, format=compact) of n samples of one point:
 * {"dataId":"<id>","values":[["<ts>",<value>],["<ts>",<value>,"BAD"],..]}
 * -- the id once, the quality only when it is not GOOD; *first is 1 before
 * the first point of the "series" array. Nothing for n = 0. */
static int put_values_compact(sr_buf *b, const char *data_id, sr_vtype type, const sr_sample *s, size_t n,
                              int *first)
{
    if (!n) return SR_OK;
    sr_json_ts tc = {0};
    int kh = 0, rc = SR_OK;
    /* the most one value takes: ,[" ts(24) ", number(40) ,"UNCERTAIN"] */
    size_t most = 1 + 2 + 24 + 2 + 40 + 1 + 14 + 1;
    char *p = room(b, 12 + 72 + 12 + (type != SR_VT_STRING ? n * 40 : 0) + most), *p0 = p;
    if (!p) return SR_ENOMEM;
    if (!*first) *p++ = ',';
    *first = 0;
    size_t il = strnlen(data_id, 71); /* [A-Za-z0-9._-]{1,64}: nothing escaped */
    memcpy(p, "{\"dataId\":\"", 11);
    memcpy(p + 11, data_id, il);
    memcpy(p + 11 + il, "\",\"values\":[", 12);
    b->len += (size_t)(p + 23 + il - p0);
    for (size_t i = 0; i < n; i++) {
        if (!(p = p0 = room(b, most))) return SR_ENOMEM;
        if (i) *p++ = ',';
        memcpy(p, "[\"", 2);
        p += 2;
        sr_json_ts_put(&tc, s[i].ts, p); /* 24 bytes and a NUL: room has 32 and more */
        p += 24;
        memcpy(p, "\",", 2);
        p += 2;
        if (!(p = put_sample_value(b, p, &p0, type, &s[i], &kh, 1 + 14 + 1, &rc))) return rc;
        unsigned q = s[i].quality < SR_Q_COUNT ? s[i].quality : 0;
        if (q) {
            *p++ = ',';
            memcpy(p, quality_names[q], 14);
            p += quality_lens[q];
        }
        *p++ = ']';
        b->len += (size_t)(p - p0);
    }
    return PUT_LIT(b, "]}");
}

/* every dataId=... of the query string, percent-decoded; more than max is
 * (size_t)-1 */
static size_t query_ids(h2o_req_t *req, char (*ids)[72], size_t max)
{
    if (req->query_at == SIZE_MAX) return 0;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t n = 0;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp) amp = end;
        if (amp - q >= 7 && !memcmp(q, "dataId=", 7)) {
            if (n == max) return (size_t)-1;
            /* the server's one decoder; too long for an id: empty (unknown) */
            if (sr_pct_decode(q + 7, (size_t)(amp - q - 7), 1, ids[n], sizeof ids[n], NULL) != SR_PCT_OK)
                ids[n][0] = 0;
            n++;
        }
        q = amp + 1;
    }
    return n;
}

static void stored_latest(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    char ids[100][72];
    size_t n = query_ids(req, ids, 100);
    if (!n || n > 100) return sr_http_result(req, 0, SR_WIRE_PARAM, "dataId: 1..100 data IDs", NULL);
    uint32_t pts[100];
    sr_vtype types[100];
    for (size_t i = 0; i < n; i++) {
        sr_point_info info;
        sr_wire code = reach(a, t, ids[i], 1, &info);
        if (code) return sr_http_result(req, 0, code, "dataId: not a data point this app may read", NULL);
        pts[i] = info.point;
        types[i] = info.type;
    }
    sr_sample s[100];
    int found[100];
    sr_buf strings;
    sr_buf_init(&strings);
    int rc = sr_engine_latest(a->eng, pts, n, s, found, &strings);
    if (rc) {
        sr_buf_release(&strings);
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    }
    /* the same writer as the raw values, into a recycled buffer sent as it is */
    sr_buf out;
    sr_http_buf_get(&out);
    int first = 1;
    rc = PUT_LIT(&out, "{\"values\":[");
    uint64_t nfound = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (found[i]) rc = put_values(&out, ids[i], types[i], &s[i], 1, &first), nfound++;
    sr_access_http_values(req, nfound); /* the read's audit entry (api/access.h) */
    if (!rc) rc = PUT_LIT(&out, "]}");
    if (rc) sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    else sr_http_json_buf(req, 200, &out);
    sr_http_buf_put(&out);
    sr_buf_release(&strings);
}

/* RFC 3339, or relative: -1h, -30m, -10s, -2d, "now" (the one parser of
 * time arguments, shared with the command line) */
static int parse_time(const char *s, int64_t now, int64_t *out)
{
    return sr_time_parse(s, strlen(s), now, out) ? -1 : 0;
}

static int parse_interval(const char *s, int64_t *ms)
{
    char *end;
    double v = strtod(s, &end);
    int64_t unit = !strcmp(end, "ms") ? 1 : !strcmp(end, "s") ? 1000 : !strcmp(end, "m") ? 60000
                 : !strcmp(end, "h") ? 3600000 : !strcmp(end, "d") ? 86400000 : 0;
    if (!unit || end == s || !(v > 0) || v * (double)unit > 366.0 * 86400000) return -1;
    *ms = (int64_t)(v * (double)unit);
    return *ms > 0 ? 0 : -1;
}

enum { AGG_MIN = SR_CSV_AGG_MIN, AGG_MAX = SR_CSV_AGG_MAX, AGG_AVG = SR_CSV_AGG_AVG, AGG_COUNT = SR_CSV_AGG_COUNT,
       AGG_FIRST = SR_CSV_AGG_FIRST, AGG_LAST = SR_CSV_AGG_LAST, AGG_SUM = SR_CSV_AGG_SUM };

static int parse_aggs(const char *s, int *mask)
{
    static const struct {
        const char *n;
        int m;
    } names[] = {{"min", AGG_MIN},     {"max", AGG_MAX},   {"avg", AGG_AVG}, {"count", AGG_COUNT},
                 {"first", AGG_FIRST}, {"last", AGG_LAST}, {"sum", AGG_SUM}};
    *mask = 0;
    while (*s) {
        const char *c = strchr(s, ',');
        size_t l = c ? (size_t)(c - s) : strlen(s);
        int found = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].n) == l && !memcmp(names[i].n, s, l)) {
                *mask |= names[i].m;
                found = 1;
            }
        if (!found) return -1;
        s += l + (c ? 1 : 0);
    }
    return *mask ? 0 : -1;
}

/* A values query: checked on the loop, run on the worker queue (api/workq.h:
 * libuv's thread pool, at most work_running_per_operator of one operator at
 * once; the engine's reads never wait for the writer and may run on any
 * thread), so a long one does not hold up the loop and two run on two cores. */
typedef struct vq {
    sr_apjob j; /* first: out, rc, code, msg */
    char ids[100][72];
    sr_point_info info[100];
    size_t n, limit, k0;
    int64_t from, to, after, interval;
    int desc, down, mask, compact;
    sr_agg_fill fill;
} vq;

static void run_down(vq *q)
{
    sr_buf *out = &q->j.out, bk;
    sr_http_buf_get(&bk);
    int mask = q->mask;
    int rc = PUT_LIT(out, "{\"values\":[");
    int first = 1;
    for (size_t k = 0; !rc && k < q->n; k++) {
        if (q->info[k].type == SR_VT_STRING) {
            q->j.code = SR_WIRE_PARAM;
            snprintf(q->j.msg, sizeof q->j.msg, "string data points cannot be downsampled");
            break;
        }
        bk.len = 0;
        if ((rc = sr_engine_downsample(q->j.a->eng, q->info[k].point, q->from, q->to, q->interval, q->fill, &bk))) break;
        char head[160];
        size_t hl = value_head(head, q->ids[k]);
        sr_json_ts tc = {0};
        int kh = 0; /* decimal places of the last number (sr_json_number_k) */
        /* the most one bucket takes: , head ts(24) " + 7 fields of ,"first": and a number + ,"filled":true} */
        size_t most = 1 + hl + 24 + 1 + 7 * (10 + 40) + 15 + 1; /* > 1 + 64 */
        const sr_bucket *bu = (const sr_bucket *)bk.data;
        size_t nb = bk.len / sizeof *bu;
        q->j.nvalues += nb; /* buckets answered (the read's audit entry) */
        if (nb && !room(out, nb * (hl + 120))) rc = SR_ENOMEM;
        for (size_t i = 0; !rc && i < nb; i++) {
            char *p = room(out, most), *p0 = p;
            if (!p) {
                rc = SR_ENOMEM;
                break;
            }
            int empty = bu[i].count == 0 && !bu[i].filled;
            if (!first) *p++ = ',';
            first = 0;
            if (hl <= 64) memcpy(p, head, 64); /* a constant size: inlined; room has it */
            else memcpy(p, head, hl);
            p += hl;
            sr_json_ts_put(&tc, bu[i].start, p); /* 24 bytes and a NUL: room has 32 and more */
            p += 24;
            *p++ = '"';
            if (mask & AGG_COUNT) {
                memcpy(p, ",\"count\":", 9);
                p += 9;
                p += sr_json_u64(p, bu[i].count);
            }
#define FIELD(flag, name, expr)                                                                                        \
    if (mask & (flag)) {                                                                                               \
        memcpy(p, ",\"" name "\":", sizeof name + 3);                                                                  \
        p += sizeof name + 3;                                                                                          \
        if (empty) {                                                                                                   \
            memcpy(p, "null", 4);                                                                                      \
            p += 4;                                                                                                    \
        } else {                                                                                                       \
            int m_ = sr_json_number_k(p, (expr), &kh);                                                                 \
            if (!m_) rc = SR_EINVAL;                                                                                   \
            p += m_;                                                                                                   \
        }                                                                                                              \
    }
            FIELD(AGG_MIN, "min", bu[i].min)
            FIELD(AGG_MAX, "max", bu[i].max)
            FIELD(AGG_AVG, "avg", bu[i].count ? bu[i].sum / (double)bu[i].count : bu[i].last)
            FIELD(AGG_SUM, "sum", bu[i].sum)
            FIELD(AGG_FIRST, "first", bu[i].first)
            FIELD(AGG_LAST, "last", bu[i].last)
#undef FIELD
            if (bu[i].filled) {
                memcpy(p, ",\"filled\":true", 14);
                p += 14;
            }
            *p++ = '}';
            out->len += (size_t)(p - p0);
        }
    }
    if (!rc) rc = PUT_LIT(out, "],\"nextCursor\":null}");
    q->j.rc = rc;
    sr_http_buf_put(&bk);
}

/* Raw values of one or more points: point after point, each in time order
 * (or newest first); the cursor "c<k>.<ts>" resumes after timestamp ts of
 * the k-th data ID of the request. */
static void run_raw(vq *q)
{
    sr_buf *out = &q->j.out, samples, strings;
    sr_http_buf_get(&samples); /* ~3 MB for a day of values: a recycled one */
    sr_buf_init(&strings);
    size_t left = q->limit;
    char next[64] = "";
    int first = 1, rc = q->compact ? PUT_LIT(out, "{\"series\":[") : PUT_LIT(out, "{\"values\":[");
    for (size_t k = q->k0; !rc && k < q->n && left; k++) {
        sr_range_q r = {q->info[k].point, q->from, q->to, left, q->desc, k == q->k0 ? q->after : INT64_MIN};
        int more = 0;
        samples.len = strings.len = 0;
        if ((rc = sr_engine_range(q->j.a->eng, &r, &samples, &strings, &more))) break;
        size_t ns = samples.len / sizeof(sr_sample);
        const sr_sample *s = (const sr_sample *)samples.data;
        q->j.nvalues += ns; /* the read's audit entry */
        if ((rc = (q->compact ? put_values_compact : put_values)(out, q->ids[k], q->info[k].type, s, ns, &first)))
            break;
        left -= ns < left ? ns : left;
        if (more && ns) {
            snprintf(next, sizeof next, "c%zu.%lld", k, (long long)s[ns - 1].ts);
            break;
        }
        if (!left && k + 1 < q->n) { /* the limit ended exactly at a point's end */
            snprintf(next, sizeof next, "c%zu.%lld", k + 1, (long long)INT64_MIN);
            break;
        }
    }
    if (!rc) rc = PUT_LIT(out, "],\"nextCursor\":");
    if (!rc) rc = next[0] ? put_json_string(out, next, strlen(next)) : PUT_LIT(out, "null");
    if (!rc) rc = PUT_LIT(out, "}");
    q->j.rc = rc;
    sr_http_buf_put(&samples);
    sr_buf_release(&strings);
}

static void vq_run(sr_apjob *j)
{
    vq *q = (vq *)j;
    if (q->down) run_down(q);
    else run_raw(q);
}

static void stored_values(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    vq *q = sr_apif_job_new(req, sizeof *q, vq_run);
    if (!q) return;
    char v[64];
    size_t n = query_ids(req, q->ids, 100);
    if (!n || n > 100) return sr_http_result(req, 0, SR_WIRE_PARAM, "dataId: 1..100 data IDs", NULL);
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        sr_wire code = reach(a, t, q->ids[i], 1, &q->info[i]);
        if (code) return sr_http_result(req, 0, code, "dataId: not a data point this app may read", NULL);
    }
    int64_t now = wall_ms();
    q->from = 0;
    q->to = now + 1;
    if (sr_http_query(req, "from", v, sizeof v) && parse_time(v, now, &q->from))
        return sr_http_result(req, 0, SR_WIRE_PARAM, "from: an RFC 3339 time or -1h / -30m / -10s / -2d", NULL);
    if (sr_http_query(req, "to", v, sizeof v) && parse_time(v, now, &q->to))
        return sr_http_result(req, 0, SR_WIRE_PARAM, "to: an RFC 3339 time or -1h / -30m / -10s / -2d", NULL);
    if (q->to <= q->from) return sr_http_result(req, 0, SR_WIRE_PARAM, "to must be after from", NULL);
    /* (ext) CSV (docs/csv.md): format=csv or Accept: text/csv, streamed */
    int csv = sr_http_query(req, "format", v, sizeof v) && !strcmp(v, "csv"), bom = 0;
    if (!csv) {
        ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
        csv = hi >= 0 && h2o_strstr(req->headers.entries[hi].value.base, req->headers.entries[hi].value.len,
                                    H2O_STRLIT("text/csv")) != SIZE_MAX;
    }
    if (sr_http_query(req, "bom", v, sizeof v)) {
        if (!csv || (strcmp(v, "1") && strcmp(v, "0")))
            return sr_http_result(req, 0, SR_WIRE_PARAM, "bom: 0 or 1, with format=csv", NULL);
        bom = v[0] == '1';
    }
    if (csv && (sr_http_query(req, "limit", v, sizeof v) || sr_http_query(req, "cursor", v, sizeof v) ||
                (sr_http_query(req, "order", v, sizeof v) && strcmp(v, "asc"))))
        return sr_http_result(req, 0, SR_WIRE_PARAM,
                              "limit, cursor, order: a CSV export is the whole range from..to, in time order", NULL);
    if (sr_http_query(req, "interval", v, sizeof v)) {
        q->down = 1;
        q->mask = AGG_MIN | AGG_MAX | AGG_AVG | AGG_COUNT;
        q->fill = SR_FILL_NONE;
        if (parse_interval(v, &q->interval))
            return sr_http_result(req, 0, SR_WIRE_PARAM, "interval: a duration like 500ms, 10s, 1m, 1h, 1d", NULL);
        if (sr_http_query(req, "agg", v, sizeof v) && parse_aggs(v, &q->mask))
            return sr_http_result(req, 0, SR_WIRE_PARAM, "agg: a list of min,max,avg,sum,count,first,last", NULL);
        if (sr_http_query(req, "fill", v, sizeof v)) {
            if (!strcmp(v, "previous")) q->fill = SR_FILL_PREVIOUS;
            else if (strcmp(v, "none")) return sr_http_result(req, 0, SR_WIRE_PARAM, "fill: none or previous", NULL);
        }
        if ((q->to - q->from) / q->interval > 100000)
            return sr_http_result(req, 0, SR_WIRE_LARGE, "more than 100000 intervals: widen interval or narrow from/to",
                                  NULL);
    } else {
        if (sr_http_query(req, "format", v, sizeof v)) { /* (ext) */
            if (!strcmp(v, "compact")) q->compact = 1;
            else if (strcmp(v, "values") && strcmp(v, "csv"))
                return sr_http_result(req, 0, SR_WIRE_PARAM, "format: values, compact or csv", NULL);
        }
        q->limit = 1000;
        if (sr_http_query(req, "limit", v, sizeof v)) {
            char *end;
            long l = strtol(v, &end, 10);
            if (*end || l < 1 || l > 100000) return sr_http_result(req, 0, SR_WIRE_PARAM, "limit: 1..100000", NULL);
            q->limit = (size_t)l;
        }
        if (sr_http_query(req, "order", v, sizeof v)) {
            if (!strcmp(v, "desc")) q->desc = 1;
            else if (strcmp(v, "asc")) return sr_http_result(req, 0, SR_WIRE_PARAM, "order: asc or desc", NULL);
        }
        q->after = INT64_MIN;
        if (sr_http_query(req, "cursor", v, sizeof v)) {
            char *end, *end2;
            unsigned long k = v[0] == 'c' ? strtoul(v + 1, &end, 10) : 0;
            long long c = v[0] == 'c' && *end == '.' ? strtoll(end + 1, &end2, 10) : 0;
            if (v[0] != 'c' || *end != '.' || *end2 || end2 == end + 1 || k >= n)
                return sr_http_result(req, 0, SR_WIRE_PARAM, "cursor: not one we made", NULL);
            q->k0 = k;
            q->after = c;
        }
    }
    if (csv) {
        sr_csv_export x = {n, (const char(*)[72])q->ids, q->info, q->from, q->to, q->down ? q->interval : 0, q->mask,
                           q->fill, bom};
        return sr_csv_export_start(req, a, t->op, &x);
    }
    sr_apif_job_submit(a, t->op, &q->j, 0);
}

/* GET /api/v1/monitors/{id}/values?after=T: what the monitor's points stored
 * after T (exclusive), the same data the push delivers. The monitor and the
 * grants are checked on the loop; the reads and the answer are a job on the
 * worker queue. */
typedef struct mvq {
    sr_apjob j; /* first */
    char mid[72];
    int64_t after;
    size_t n;
    struct mvp {
        char id[72];
        uint32_t point;
        sr_vtype type;
    } *p;
} mvq;

static void mvq_fini(sr_apjob *j) { free(((mvq *)j)->p); }

/* One answer holds at most MV_MAX values (all points together, at most
 * MV_PER_POINT of one): a monitor of 1,000 points is not a 10 M value
 * answer. A point cut by its share sets the answer's end: only values up to
 * its last one are given, and "after" is that time, so the next call goes on
 * from there for every point -- nothing is skipped, nothing given twice. */
enum { MV_MAX = 100000, MV_PER_POINT = 10000 };

static void mvq_run(sr_apjob *j)
{
    mvq *q = (mvq *)j;
    json_t *vals = json_array(), *got = json_array();
    sr_buf samples, strings, tss;
    sr_buf_init(&samples);
    sr_buf_init(&strings);
    sr_buf_init(&tss); /* the ts of each value of got */
    int64_t last = q->after, cut = INT64_MAX;
    int oom = 0;
    size_t per = q->n ? MV_MAX / q->n : MV_MAX;
    if (per > MV_PER_POINT) per = MV_PER_POINT;
    if (!per) per = 1;
    for (size_t i = 0; i < q->n; i++) {
        sr_range_q r = {q->p[i].point, 0, INT64_MAX, per, 0, q->after};
        int more = 0;
        samples.len = strings.len = 0;
        if (sr_engine_range(j->a->eng, &r, &samples, &strings, &more) != SR_OK) continue;
        const sr_sample *s = (const sr_sample *)samples.data;
        size_t ns = samples.len / sizeof *s;
        for (size_t k = 0; k < ns && !oom; k++) {
            oom = sr_buf_append(&tss, &s[k].ts, sizeof s[k].ts) != SR_OK;
            if (!oom) json_array_append_new(got, sr_sample_json(q->p[i].id, q->p[i].type, &s[k]));
        }
        if (more && ns && s[ns - 1].ts < cut) cut = s[ns - 1].ts;
    }
    const int64_t *tsv = (const int64_t *)tss.data;
    for (size_t k = 0; k < json_array_size(got) && k < tss.len / sizeof *tsv; k++)
        if (tsv[k] <= cut) {
            json_array_append(vals, json_array_get(got, k));
            if (tsv[k] > last) last = tsv[k];
        }
    json_decref(got);
    sr_buf_release(&tss);
    if (oom) {
        json_decref(vals);
        vals = NULL;
    }
    json_t *o = json_pack("{s:s,s:o}", "monitorId", q->mid, "values", vals);
    if (o && last != INT64_MIN) {
        char ts[32];
        sr_rfc3339_format(last, ts);
        json_object_set_new(o, "after", json_string(ts));
    }
    j->rc = o ? sr_json_write(&j->out, o) : SR_ENOMEM;
    json_decref(o);
    sr_buf_release(&samples);
    sr_buf_release(&strings);
}

static void monitor_values(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    const char *mid = sr_route_param(rt, "monitorId");
    if (!mid || !is_id(mid)) return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "unknown monitorId", NULL);
    json_t *items = NULL, *m = NULL;
    if (sr_broker_monitor_list(a->broker, t->op, t->app, &items)) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "", NULL);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) if (!strcmp(json_string_value(json_object_get(it, "monitorId")), mid)) m = it;
    if (!m) {
        json_decref(items);
        return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "unknown monitorId", NULL);
    }
    char v[64];
    int64_t now = wall_ms(), after = INT64_MIN;
    if (sr_http_query(req, "after", v, sizeof v) && parse_time(v, now, &after)) {
        json_decref(items);
        return sr_http_result(req, 0, SR_WIRE_PARAM, "after: an RFC 3339 time", NULL);
    }
    json_t *ids = json_object_get(m, "dataIds");
    mvq *q = sr_apif_job_new(req, sizeof *q, mvq_run);
    if (q) {
        q->j.fini = mvq_fini;
        q->p = calloc(json_array_size(ids) ? json_array_size(ids) : 1, sizeof *q->p);
        snprintf(q->mid, sizeof q->mid, "%.71s", mid);
        q->after = after;
    }
    if (q && !q->p) sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    else if (q) {
        json_t *d;
        json_array_foreach(ids, i, d)
        {
            sr_point_info info;
            if (!json_is_string(d) || reach(a, t, json_string_value(d), 1, &info)) continue;
            snprintf(q->p[q->n].id, sizeof q->p[q->n].id, "%s", json_string_value(d));
            q->p[q->n].point = info.point;
            q->p[q->n].type = info.type;
            q->n++;
        }
        sr_apif_job_submit(a, t->op, &q->j, 0);
    }
    json_decref(items);
}

/* ---- masters -------------------------------------------------------------- */

/* The list is read and written on the worker queue (an operator may have
 * 100,000 data points); the grants travel with the job (a copy). */
typedef struct mq {
    sr_apjob j; /* first */
    char op[72], parent[72];
    int kind, has_parent;
    atoken tok; /* op and a copy of the grants */
} mq;

static void mq_fini(sr_apjob *j) { free(((mq *)j)->tok.grants); }

json_t *sr_master_item(const sr_master *m)
{
    static const char *tn[] = {"", "number", "integer", "boolean", "string"};
    static const char *kn[] = {"", "measure", "control", "both"};
    json_t *o = json_pack("{s:s,s:s}", "id", m->id, "name", m->name);
    if (!o) return NULL;
    if (m->parent_id[0]) json_object_set_new(o, "parentId", json_string(m->parent_id));
    if (m->gateway_id[0]) json_object_set_new(o, "gatewayId", json_string(m->gateway_id));
    if (m->kind == SR_MK_DATA_POINT) {
        json_object_set_new(o, "type", json_string(m->type >= 0 && m->type <= 4 ? tn[m->type] : ""));
        json_object_set_new(o, "kind", json_string(m->point_kind >= 0 && m->point_kind <= 3 ? kn[m->point_kind] : ""));
        if (m->unit[0]) json_object_set_new(o, "unit", json_string(m->unit));
        if (m->has_min) json_object_set_new(o, "min", json_real(m->min));
        if (m->has_max) json_object_set_new(o, "max", json_real(m->max));
        if (m->retention_class && m->retention_class[0])
            json_object_set_new(o, "retentionClass", json_string(m->retention_class));
    }
    return o;
}

int sr_master_kind_named(const char *what)
{
    if (!what) return 0;
    return !strcmp(what, "facilities")   ? SR_MK_FACILITY
           : !strcmp(what, "equipment")  ? SR_MK_EQUIPMENT
           : !strcmp(what, "devices")    ? SR_MK_DEVICE
           : !strcmp(what, "datapoints") ? SR_MK_DATA_POINT
                                         : 0;
}

static void mq_run(sr_apjob *j)
{
    mq *q = (mq *)j;
    const atoken *t = &q->tok;
    int kind = q->kind;
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_masters(j->a->eng, q->op, (sr_master_kind)kind, &r);
    if (rc) {
        sr_rec_close(&r);
        j->rc = rc;
        return;
    }
    json_t *items = json_array();
    sr_master mr, *m = &mr;
    for (int k; (k = sr_rec_next_master(&r, m)) != 0;) {
        if (k == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
        if (k < 0) break;
        /* data points: only those the app may read */
        int show = (!q->has_parent || !strcmp(m->parent_id, q->parent)) &&
                   (kind != SR_MK_DATA_POINT || granted(t, m->id, 3));
        if (show) json_array_append_new(items, sr_master_item(m));
    }
    sr_rec_close(&r);
    json_t *o = json_pack("{s:o}", "items", items);
    j->rc = o ? sr_json_write(&j->out, o) : SR_ENOMEM;
    json_decref(o);
}

static void masters(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    int kind = sr_master_kind_named(sr_route_param(rt, "kind"));
    if (!kind) return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "masters: facilities, equipment, devices or datapoints", NULL);
    mq *q = sr_apif_job_new(req, sizeof *q, mq_run);
    if (!q) return;
    q->j.fini = mq_fini;
    q->kind = kind;
    q->has_parent = sr_http_query(req, "parentId", q->parent, sizeof q->parent);
    snprintf(q->op, sizeof q->op, "%s", t->op);
    q->tok = *t;
    q->tok.grants = t->ngrants ? malloc(t->ngrants * sizeof *t->grants) : NULL;
    if (t->ngrants && !q->tok.grants) {
        q->tok.ngrants = 0;
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    if (t->ngrants) memcpy(q->tok.grants, t->grants, t->ngrants * sizeof *t->grants);
    sr_apif_job_submit(a, t->op, &q->j, 0);
}

/* ---- requests --------------------------------------------------------------- */

static void current_values(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    json_t *b = body_json(req);
    if (!b) return;
    uint32_t timeout;
    size_t n = 0;
    sr_target *tg = get_timeout(req, b, &timeout) ? NULL : targets(a, req, t, json_object_get(b, "dataIds"), 1, &n);
    if (tg) {
        actx *c = ctx_for(req);
        if (c)
            (void)sr_broker_request(a->broker, t->op, t->app, SR_RK_IMMEDIATE, tg, n, timeout,
                                    async_param(req), NULL, NULL, on_broker_answer, c);
        free(tg);
    }
    json_decref(b);
}

/* The value fits the point: type, range, control kind. NULL or why not. */
static const char *control_check(const sr_point_info *info, json_t *v)
{
    if (info->kind != 2 && info->kind != 3) return "the data point is not a control point";
    switch (info->type) {
    case SR_VT_NUMBER:
    case SR_VT_INTEGER: {
        if (!json_is_number(v)) return "value: a number is required";
        if (info->type == SR_VT_INTEGER && !json_is_integer(v)) return "value: an integer is required";
        double x = json_number_value(v);
        if ((info->has_min && x < info->min) || (info->has_max && x > info->max)) return "value: out of the point's range";
        return NULL;
    }
    case SR_VT_BOOL: return json_is_boolean(v) ? NULL : "value: true or false is required";
    default: return json_is_string(v) ? NULL : "value: a string is required";
    }
}

/* A refused control request's protection: logged and answered (E5001,
 * E5003, E1001), the same from the loop whichever step found it. */
static void control_refused(const char *op, const char *app, h2o_req_t *req, sr_wire code, const char *why)
{
    sr_slog(SR_LOG_WARN, "control request refused: protection", "op=%s app=%s code=%s why=%s", op, app,
            sr_wire_code(code), why);
    sr_http_result(req, 0, code, why, NULL);
}

/* An app's signed control request (R-SE-3): its protection is verified on
 * the worker queue, charged to the operator's share (sr_sig_check_now: an
 * ES384 verify costs ~8.9 M instructions, docs/signatures.md "Cost"), never
 * on the loop; the loop then answers the refusal or hands the request to
 * the broker, as an unsigned one. A full share is 429 E9002. */
typedef struct csig {
    sr_apjob j;   /* first */
    json_t *body; /* the request's JSON (value and protection live in it) */
    char *signed_bytes; /* a copy of the "value" member as sent, for the worker */
    size_t soff, slen;  /* where it is in the request's body */
    sr_engine *eng;
    sr_broker *broker;
    char op[72], app[72];
    sr_target tg;
    uint32_t timeout;
    int async;
    sr_wire sw; /* the verdict */
    char why[300];
} csig;

static void control_sig_run(sr_apjob *jb)
{
    csig *j = (csig *)jb;
    j->sw = sr_sig_check_now(j->eng, j->op, SR_RG_APP, j->app, json_object_get(j->body, "protection"),
                             j->signed_bytes, j->slen, j->why, sizeof j->why);
}

static void control_sig_fini(sr_apjob *jb)
{
    csig *j = (csig *)jb;
    json_decref(j->body);
    free(j->signed_bytes);
}

static void control_sig_after(sr_apjob *jb, h2o_req_t *req)
{
    csig *j = (csig *)jb;
    if (j->sw != SR_WIRE_OK) return control_refused(j->op, j->app, req, j->sw, j->why);
    actx *c = ctx_for(req);
    if (c)
        (void)sr_broker_request_signed(j->broker, j->op, j->app, &j->tg, j->timeout, j->async,
                                       json_object_get(j->body, "value"), json_object_get(j->body, "protection"),
                                       req->entity.base + j->soff, j->slen, on_broker_answer, c);
}

static void control_values(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    json_t *b = body_json(req);
    if (!b) return;
    json_t *d = json_object_get(b, "dataId"), *v = json_object_get(b, "value"), *p = json_object_get(b, "protection");
    uint32_t timeout;
    sr_point_info info;
    sr_wire code;
    const char *why;
    if (get_timeout(req, b, &timeout)) goto done;
    if (!json_is_string(d) || !v) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "dataId (string) and value are required", NULL);
        goto done;
    }
    sr_access_http_point(req, json_string_value(d)); /* a refusal's audit entry names it */
    if (p && (!json_is_object(p) || !json_is_string(json_object_get(p, "signature")))) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "protection: an object with signAlg, certId and signature", NULL);
        goto done;
    }
    if ((code = reach(a, t, json_string_value(d), 2, &info))) {
        sr_http_result(req, 0, code, "dataId: not a data point this app may control", NULL);
        goto done;
    }
    if ((why = control_check(&info, v))) {
        sr_http_result(req, 0, SR_WIRE_REJECTED, why, NULL);
        goto done;
    }
    /* R-SE-3 (docs/signatures.md): the app's protection covers the exact
     * bytes of the request's "value" member as sent */
    size_t soff = 0, slen = 0;
    if (!p) { /* the operator may require this app to sign (docs/signatures.md) */
        sr_rec rr = SR_REC_INIT;
        sr_reg_entry re;
        int must = sr_read_registry(a->eng, t->op, SR_RG_APP, t->app, &rr, &re) == SR_OK && re.require_signature;
        sr_rec_close(&rr);
        if (must) {
            sr_http_result(req, 0, SR_WIRE_SIGNATURE, "signature required: this app's control requests must carry "
                                                      "protection", NULL);
            goto done;
        }
        /* ... or every control of this data point (RG_SIGREQ, api/admin_sig.c) */
        must = sr_read_registry(a->eng, t->op, SR_RG_SIGREQ, json_string_value(d), &rr, &re) == SR_OK &&
               (!re.access || !re.access[0] || strstr(re.access, "control")); /* its scope (admin_sig.c) */
        sr_rec_close(&rr);
        if (must) {
            sr_slog(SR_LOG_WARN, "control request refused: protection", "op=%s app=%s code=%s why=%s", t->op, t->app,
                    sr_wire_code(SR_WIRE_SIGNATURE), "signature required by the data point");
            sr_http_result(req, 0, SR_WIRE_SIGNATURE, "signature required: control of this data point must carry "
                                                      "protection", NULL);
            goto done;
        }
    }
    if (p) { /* verified on the worker queue, never here (control_sig_run) */
        if (sr_json_member_span(req->entity.base, req->entity.len, "value", &soff, &slen)) {
            control_refused(t->op, t->app, req, SR_WIRE_SIGNATURE,
                            "signature: the \"value\" member cannot be found as written");
            goto done;
        }
        csig *j = sr_apif_job_new(req, sizeof *j, control_sig_run);
        if (!j) goto done;
        j->j.fini = control_sig_fini;
        j->j.after = control_sig_after;
        j->body = json_incref(b);
        j->signed_bytes = malloc(slen ? slen : 1);
        if (!j->signed_bytes) {
            sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL); /* j goes with req */
            goto done;
        }
        memcpy(j->signed_bytes, req->entity.base + soff, slen);
        j->soff = soff;
        j->slen = slen;
        j->eng = a->eng;
        j->broker = a->broker;
        snprintf(j->op, sizeof j->op, "%s", t->op);
        snprintf(j->app, sizeof j->app, "%s", t->app);
        snprintf(j->tg.data_id, sizeof j->tg.data_id, "%s", json_string_value(d));
        snprintf(j->tg.gw, sizeof j->tg.gw, "%s", info.gateway);
        j->timeout = timeout;
        j->async = async_param(req);
        sr_apif_job_submit(a, t->op, &j->j, req->entity.len);
        goto done;
    }
    sr_target tg;
    snprintf(tg.data_id, sizeof tg.data_id, "%s", json_string_value(d));
    snprintf(tg.gw, sizeof tg.gw, "%s", info.gateway);
    actx *c = ctx_for(req);
    if (c)
        (void)sr_broker_request_signed(a->broker, t->op, t->app, &tg, timeout, async_param(req), v, NULL, NULL, 0,
                                       on_broker_answer, c);
done:
    json_decref(b);
}

static void monitor_start(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    json_t *b = body_json(req);
    if (!b) return;
    json_t *iv = json_object_get(b, "intervalMs"), *sa = json_object_get(b, "startAt"), *ea = json_object_get(b, "endAt");
    int64_t start = 0, end = 0;
    if (!json_is_integer(iv) || json_integer_value(iv) < 100 || json_integer_value(iv) > 86400000) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "intervalMs: an integer 100..86400000", NULL);
        goto done;
    }
    if ((sa && (!json_is_string(sa) || sr_rfc3339_parse(json_string_value(sa), json_string_length(sa), &start))) ||
        (ea && (!json_is_string(ea) || sr_rfc3339_parse(json_string_value(ea), json_string_length(ea), &end)))) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "startAt / endAt: RFC 3339 times", NULL);
        goto done;
    }
    if (start && end && end <= start) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "endAt must be after startAt", NULL);
        goto done;
    }
    size_t n = 0;
    sr_target *tg = targets(a, req, t, json_object_get(b, "dataIds"), 1, &n);
    if (tg) {
        actx *c = ctx_for(req);
        if (c)
            sr_broker_monitor_start(a->broker, t->op, t->app, tg, n, (uint32_t)json_integer_value(iv), start, end,
                                    on_broker_answer, c);
        free(tg);
    }
done:
    json_decref(b);
}

/* ---- router --------------------------------------------------------------- */

/* A logout being recorded (issue #18): who, for the log line */
typedef struct pending_logout {
    char op[72], app[72];
} pending_logout;

/* Its SessionEvent could not be recorded (a write error, a stopped or
 * read-only writer, a full queue): the session is ended all the same (fail
 * closed) and the answer says its end is not recorded: 503 E9001 (429
 * E9002 for a full queue). A restart may then restore the session until it
 * expires (docs/admin.md "Fire and forget"). */
static void logout_unrecorded(h2o_req_t *req, const pending_logout *pl, int rc)
{
    sr_slog(SR_LOG_WARN, "app logout not recorded", "op=%s app=%s error=%s", sr_slog_q(pl->op), sr_slog_q(pl->app),
            sr_err_name(rc));
    if (!req) return;
    sr_wire code = rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL;
    sr_http_result(req, code == SR_WIRE_BUSY ? 429 : 503, code,
                   "the session is ended, but its end could not be recorded (the server cannot write now)", NULL);
}

static void logout_recorded(sr_apif *a, h2o_req_t *req, const sr_result *r, void *arg)
{
    (void)a;
    if (r->rc) logout_unrecorded(req, arg, r->rc);
    else if (req) sr_http_no_content(req);
}

/* DELETE /api/v1/sessions/current (issue #18): the token ends at once (fail
 * closed), the 204 waits for the SessionEvent to be durable, as a login's
 * answer does (sr_apif_submit_then). */
static void session_close(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    atoken *t = (atoken *)c->caller;
    sr_slog(SR_LOG_INFO, "app session closed", "op=%s app=%s", t->op, t->app);
    int64_t expires;
    const uint8_t *hash = sr_tokens_hash_of(t, &expires);
    char addr[64];
    sr_login_addr_req(c->req, addr);
    pending_logout pl;
    snprintf(pl.op, sizeof pl.op, "%s", t->op);
    snprintf(pl.app, sizeof pl.app, "%s", t->app);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {t->op, t->app, SR_ACTOR_APP, NULL, addr};
    int rc = !a->eng ? SR_OK
                     : a->closing ? SR_ECLOSED
                                  : sr_cmd_token_session(&env, hash, expires, SR_SS_DISCONNECTED, "logout", &b);
    sr_alive_set(a->alive, t->ae, SR_AS_OFFLINE, SR_AR_DISCONNECT, a->alive_binding, addr, "", 0);
    sr_tokens_remove(a->tokens, t); /* ended in memory, whatever happens next */
    if (!a->eng) {
        sr_buf_release(&b);
        return sr_http_no_content(c->req);
    }
    if (!rc) rc = sr_apif_submit_then(a, c->req, &b, logout_recorded, &pl, sizeof pl);
    else sr_buf_release(&b);
    if (rc) logout_unrecorded(c->req, &pl, rc);
}

static void monitor_list(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    const atoken *t = c->caller;
    json_t *items = NULL;
    if (sr_broker_monitor_list(a->broker, t->op, t->app, &items)) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "", NULL);
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void monitor_stop(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    const atoken *t = c->caller;
    const char *mid = sr_route_param(c, "monitorId");
    if (!mid || !is_id(mid)) return sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "unknown monitorId", NULL);
    actx *x = ctx_for(c->req);
    if (x) sr_broker_monitor_stop(a->broker, t->op, t->app, mid, on_broker_answer, x);
}

/* (ext) GET /api/v1/alive[?state=online|offline]: the alive status of its
 * operator's gateways that the app's "alive" grants name (read), as GET
 * /admin/v1/alive answers it (docs/monitoring.md "Alive status"); none
 * granted: an empty list. */
static void alive_list(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    const atoken *t = c->caller;
    char sq[16];
    int state = 0;
    if (sr_http_query(c->req, "state", sq, sizeof sq)) {
        if (!strcmp(sq, "online")) state = SR_AS_ONLINE;
        else if (!strcmp(sq, "offline")) state = SR_AS_OFFLINE;
        else return sr_http_result(c->req, 0, SR_WIRE_PARAM, "state: online or offline", NULL);
    }
    sr_store_grant *g = NULL;
    size_t ng = 0;
    int rc = sr_store_grants_load(a->eng, t->op, t->app, &g, &ng);
    json_t *items = rc ? NULL : sr_alive_items(a->eng, a->alive, t->op, SR_ACTOR_GATEWAY, state, &rc);
    if (!items) {
        sr_free(g);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), "cannot read the alive status", NULL);
    }
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (sr_store_grants_allow(g, ng, SR_STORE_ALIVE, json_string_value(json_object_get(it, "id"))) & SR_STORE_READ) {
            json_object_del(it, "operatorId");
            json_array_append(out, it);
        }
    }
    json_decref(items);
    sr_free(g);
    json_t *o = json_pack("{s:o}", "items", out);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void request_status(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    h2o_req_t *req = c->req;
    const atoken *t = c->caller;
    const char *rid = sr_route_param(c, "requestId");
    json_t *o = NULL;
    int rc = rid && is_id(rid) ? sr_broker_request_status(a->broker, t->op, t->app, rid, &o) : SR_ENOTFOUND;
    if (rc == SR_ENOTFOUND) return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "unknown requestId", NULL);
    if (rc) return sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    sr_http_jsonv(req, 200, o);
    json_decref(o);
}

static void send_pem(h2o_req_t *req, const sr_buf *pem)
{
    sr_http_send(req, 200, "application/x-pem-file", pem->data, pem->len);
}

static void certificate(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    h2o_req_t *req = c->req;
    const atoken *t = c->caller;
    const char *st = sr_route_param(c, "subjectType"), *si = sr_route_param(c, "subjectId");
    sr_buf pem;
    sr_buf_init(&pem);
    int rc = st && si ? sr_broker_cert(a->broker, t->op, st, si, &pem) : SR_ENOTFOUND;
    if (rc == SR_ENOTFOUND || rc == SR_EINVAL) sr_http_result(req, 0, SR_WIRE_UNKNOWN, "no certificate for that subject", NULL);
    else if (rc) sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    else send_pem(req, &pem);
    sr_buf_release(&pem);
}

#ifndef SR_TEST_ROUTES
#define SR_TEST_ROUTES /* the test build's extra rows (tests/support/tabletest.h) */
#endif

/* The AP-IF routes (api/routes.h): how to add one is this row and its
 * handler (here or in apif_store.c, declared in apif_int.h). */
/* ---- alarms (ext; issue #17, docs/monitoring.md "Alarms") -------------------- */

/* GET /api/v1/alarms[?state=&level=&rule=&since=&until=]: the app's
 * operator's alarms of the rules its alarm grants (grant_kind "alarms",
 * read) name, oldest first; 403 E2003 without any such grant. Read on the
 * loop: one index read of the grants and one of the alarms (few). */
static void alarms_list(const sr_route_call *rt)
{
    sr_apif *a = rt->binding;
    h2o_req_t *req = rt->req;
    const atoken *t = rt->caller;
    sr_alarm_filter f;
    const char *field, *why;
    if (sr_alarm_filter_parse(req, &f, &field, &why)) {
        char m[160];
        snprintf(m, sizeof m, "%s: %s", field, why);
        return sr_http_result(req, 0, SR_WIRE_PARAM, m, NULL);
    }
    snprintf(f.op, sizeof f.op, "%s", t->op); /* the app's operator's only */
    sr_store_grant *g = NULL;
    size_t ng = 0;
    if (sr_store_grants_load(a->eng, t->op, t->app, &g, &ng))
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, "cannot read the app's grants", NULL);
    int any = 0;
    for (size_t i = 0; i < ng; i++) any |= g[i].kind == SR_STORE_ALARMS && (g[i].access & SR_STORE_READ);
    if (!any) {
        sr_free(g);
        char m[200];
        snprintf(m, sizeof m, "alarms: app %s holds no alarm grant (alarm-grants of its operator)", t->app);
        return sr_http_result(req, 0, SR_WIRE_FORBIDDEN, m, NULL);
    }
    sr_rec h = SR_REC_INIT;
    int rc = sr_list_alarms(a->eng, &h);
    json_t *arr = rc ? NULL : json_array();
    sr_alarm al;
    int k;
    while (arr && (k = sr_rec_next_alarm(&h, &al)) != 0) {
        if (k < 0 || !sr_alarm_filter_keeps(&f, &al) || !(sr_store_grants_allow(g, ng, SR_STORE_ALARMS, al.rule) & SR_STORE_READ))
            continue;
        json_t *o = sr_alarm_json(&al);
        if (o) json_array_append_new(arr, o);
    }
    sr_rec_close(&h);
    sr_free(g);
    if (rc) return sr_http_result(req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    json_t *o = json_pack("{s:o}", "alarms", arr);
    sr_http_jsonv(req, 200, o);
    json_decref(o);
}

const sr_route sr_apif_routes[] = {
    {"POST", "/api/v1/sessions", open_session, SR_CALLER_NONE, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"DELETE", "/api/v1/sessions/current", session_close, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/api/v1/masters/{kind}", masters, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"POST", "/api/v1/current-values", current_values, SR_CALLER_APP, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"POST", "/api/v1/monitors", monitor_start, SR_CALLER_APP, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"GET", "/api/v1/monitors", monitor_list, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"DELETE", "/api/v1/monitors/{monitorId}", monitor_stop, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/api/v1/monitors/{monitorId}/values", monitor_values, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"POST", "/api/v1/control-values", control_values, SR_CALLER_APP, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"GET", "/api/v1/certificates/{subjectType}/{subjectId}", certificate, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/api/v1/requests/{requestId}", request_status, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/api/v1/alive", alive_list, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE}, /* (ext) R-MO-1 */
    {"GET", "/api/v1/stored-values", stored_values, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"GET", "/api/v1/stored-values/latest", stored_latest, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"POST", "/api/v1/documents/{collection}", sr_apif_doc_create, SR_CALLER_APP, SR_BODY_DOC, 0, SR_FWD_OPERATOR},
    {"GET", "/api/v1/documents/{collection}", sr_apif_doc_query, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"GET", "/api/v1/documents/{collection}/{documentId}", sr_apif_doc_get, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"PUT", "/api/v1/documents/{collection}/{documentId}", sr_apif_doc_put, SR_CALLER_APP, SR_BODY_DOC, 0, SR_FWD_OPERATOR},
    {"DELETE", "/api/v1/documents/{collection}/{documentId}", sr_apif_doc_delete, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"GET", "/api/v1/files", sr_apif_file_list, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"GET", "/api/v1/files/{path}", sr_apif_file_get, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"PUT", "/api/v1/files/{path}", sr_apif_file_put, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"DELETE", "/api/v1/files/{path}", sr_apif_file_delete, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    {"POST", "/api/v1/corrections", sr_apif_corrections, SR_CALLER_APP, SR_BODY_DOC, 0, SR_FWD_OPERATOR}, /* ~20,000 rows */
    {"GET", "/api/v1/alarms", alarms_list, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_OPERATOR},
    SR_TEST_ROUTES
};
const size_t sr_apif_nroutes = sizeof sr_apif_routes / sizeof sr_apif_routes[0];

/* ---- revocation (REVOCATION above) ---------------------------------------- */

/* End t's session: its event with the reason, and the token goes. */
static void token_end(sr_apif *a, atoken *t, const char *why)
{
    char r[80];
    snprintf(r, sizeof r, "app %s", why);
    int64_t expires;
    const uint8_t *hash = sr_tokens_hash_of(t, &expires);
    sr_slog(SR_LOG_INFO, "app session ended", "op=%s app=%s reason=%s", t->op, t->app, sr_slog_q(r));
    session_event(a, t->op, t->app, hash, expires, SR_SS_DISCONNECTED, r, NULL);
    sr_alive_set(a->alive, t->ae, SR_AS_OFFLINE, SR_AR_DISCONNECT, a->alive_binding, NULL, "", 1); /* api/alive.h */
}

/* The registry changed since t was checked: read the app's entry and grants
 * again. 0: t stands, with the grants as they are now; otherwise the
 * request was answered (401: the session ended; 500: unreadable). */
static int token_reread(sr_apif *a, atoken *t, h2o_req_t *req)
{
    uint64_t was = t->seen.gen;
    const char *why = sr_login_reread(a->eng, 'a', t->op, t->app, &t->seen);
    if (why) {
        token_end(a, t, why);
        sr_tokens_remove(a->tokens, t);
        char m[120];
        snprintf(m, sizeof m, "not authenticated: the session ended (the app was %s); log in again",
                 !strcmp(why, "secret rotated") ? "given a new secret" : why);
        sr_http_result(req, 0, SR_WIRE_UNAUTH, m, NULL);
        return 1;
    }
    sr_ap_grant *g = NULL;
    size_t n = 0;
    if (sr_grants_load(a->eng, t->op, t->app, &g, &n) != SR_OK) {
        t->seen.gen = was; /* read again next time */
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "cannot read the app's grants", NULL);
        return 1;
    }
    free(t->grants);
    t->grants = g;
    t->ngrants = n;
    return 0;
}

typedef struct changed_ctx {
    sr_apif *a;
    const char *op, *app;
} changed_ctx;

static int end_if_revoked(void *ctx, void *payload)
{
    changed_ctx *x = ctx;
    atoken *t = payload;
    int64_t expires;
    (void)sr_tokens_hash_of(t, &expires);
    if (strcmp(t->op, x->op) || strcmp(t->app, x->app) || expires <= wall_ms()) return 0;
    sr_login_seen s = t->seen; /* a copy: the grants are re-read with it at the next request */
    const char *why = sr_login_reread(x->a->eng, 'a', t->op, t->app, &s);
    if (!why) return 0;
    token_end(x->a, t, why);
    return 1;
}

size_t sr_apif_registry_changed(sr_apif *a, const char *op, const char *app)
{
    if (!a || !a->eng || a->closing) return 0;
    changed_ctx x = {a, op, app};
    return sr_tokens_sweep(a->tokens, end_if_revoked, &x);
}

/* read-your-writes (api/ryw.h): a read that waited for its Suiro-Wait token
 * goes through the dispatcher again */
static void ryw_resume(void *binding, h2o_req_t *req) { sr_apif_handle(binding, req); }
/* Cluster mode (docs/cluster.md "Forwarding"): a token this node did not
 * issue, of a session another node opened (its SessionEvent replicated
 * through the .reg consumer), taken into the table as a restart takes the
 * kept ones (sessions_restore). NULL when the index has no such session. */
static atoken *token_adopt(sr_apif *a, h2o_req_t *req)
{
    size_t len = 0;
    const char *tok = sr_http_bearer(req, &len);
    if (!a->eng || !tok || len != 64 || !sr_cluster_self()) return NULL;
    uint8_t h[32];
    sr_sha256(tok, len, h);
    sr_session_rec s;
    if (sr_session_verify(a->eng, h, SR_ACTOR_APP, wall_ms(), &s) != SR_OK || strlen(s.op) >= sizeof((atoken *)0)->op ||
        strlen(s.id) >= sizeof((atoken *)0)->app)
        return NULL;
    const char *why;
    return token_take(a, h, s.expires_ms, s.op, s.id, &why);
}

static void dispatch(sr_apif *a, h2o_req_t *req, int64_t until);
static void dispatch_again(void *a, h2o_req_t *req, int64_t until) { dispatch(a, req, until); }

/* The dispatcher: the row, its caller authenticated once, its body limit,
 * in cluster mode its owner (api/cluster_fwd.h), then its handler. */
void sr_apif_handle(sr_apif *a, h2o_req_t *req) { dispatch(a, req, 0); }

static void dispatch(sr_apif *a, h2o_req_t *req, int64_t until)
{
    sr_route_call c;
    int known;
    const sr_route *r = sr_route_find(sr_apif_routes, sr_apif_nroutes, req->method.base, req->method.len,
                                      req->path_normalized.base, req->path_normalized.len, &c, &known);
    if (!r)
        return sr_http_result(req, known ? 405 : 0, known ? SR_WIRE_PARAM : SR_WIRE_UNKNOWN,
                              known ? "method not allowed on this path" : "unknown path", NULL);
    c.binding = a;
    c.req = req;
    c.caller = NULL;
    if (r->caller != SR_CALLER_NONE) {
        /* SR_CALLER_ADMIN: no administrator sessions yet (issue #14) */
        atoken *t = r->caller == SR_CALLER_APP ? token_find(a, req) : NULL;
        if (!t && r->caller == SR_CALLER_APP && !sr_tokens_expired(a->tokens, req)) t = token_adopt(a, req);
        /* a forwarded request whose session is still on its way here (cluster_fwd.h invariant 4) */
        if (!t && sr_fwd_wait(req, a, dispatch_again, &until)) return;
        if (!t)
            return sr_http_result(req, 0, sr_tokens_expired(a->tokens, req) ? SR_WIRE_EXPIRED : SR_WIRE_UNAUTH,
                                  "not authenticated: POST /api/v1/sessions first, then Authorization: Bearer <token>",
                                  NULL);
        if (t->seen.gen != sr_engine_registry_gen(a->eng) && token_reread(a, t, req)) return; /* REVOCATION */
        c.caller = t;
        if (!t->ae) t->ae = sr_alive_get(a->alive, t->op, SR_ACTOR_APP, t->app); /* a session restored at start */
        if (t->ae) { /* R-MO-1: last seen (one relaxed store); online again after a silence */
            sr_alive_seen(t->ae);
            if (atomic_load_explicit(&t->ae->state, memory_order_relaxed) != SR_AS_ONLINE) {
                char addr[64];
                sr_login_addr_req(req, addr);
                sr_alive_http(a->alive, t->ae, a->alive_binding, addr);
            }
        }
    }
    char m[120];
    if (sr_route_body_check(r, req->entity.len, m, sizeof m)) return sr_http_result(req, 0, SR_WIRE_LARGE, m, NULL);
    /* cluster mode: served by the owner of the caller's operator's partition (its audit entry is the owner's) */
    if (r->fwd && c.caller && sr_fwd_route(req, r, ((const atoken *)c.caller)->op)) return;
    /* a read with Suiro-Wait: served once this node's state holds the token (api/ryw.h) */
    if (r->method[0] == 'G' && sr_ryw_gate(req, c.caller ? ((const atoken *)c.caller)->op : "", ryw_resume, a))
        return;
    /* a read: its audit entry (api/access.h), or a refusal when the trail cannot take it */
    if (c.caller && r->method[0] == 'G') {
        const atoken *t = c.caller;
        if (sr_access_http_begin(a->access, &c, "apif-http", t->op, SR_ACTOR_APP, t->app)) return;
    } else if (c.caller) { /* a write or control: its refusal's entry (docs/audit.md "Refusals") */
        const atoken *t = c.caller;
        sr_access_http_write(a->access, &c, "apif-http", t->op, SR_ACTOR_APP, t->app);
    }
    r->handler(&c);
}

void sr_apif_set_access(sr_apif *a, struct sr_access *acc)
{
    if (a) a->access = acc;
}

int sr_apif_token_known(sr_apif *a, const char *token, size_t len)
{
    return sr_tokens_lookup(a->tokens, token, len) != NULL;
}
