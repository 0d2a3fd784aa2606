/*
 * api/admin_http.c -- the Admin API's core (/admin/v1, issue #14;
 * docs/admin.md is the reference, api/admin_int.h the contract between the
 * admin files): the dispatcher, users' sessions (login with password and
 * TOTP, logout, the forced password change), who am I, TOTP enrolment,
 * users (create, reset, disable, enable, delete, roles, sessions, TOTP
 * reset), operators and vendors, and the helpers of admin_int.h.
 *
 * THE DISPATCHER (sr_admin_handle)
 *  The row over the five admin tables (404 unknown path, 405 another
 *  method); then its caller class: a bearer token, its SHA-256 looked up
 *  with sr_session_verify (a user's open, unexpired session) and the user
 *  read LIVE from the index on every request -- a disabled or deleted user,
 *  or a revoked, logged out or expired session, is refused at its very next
 *  request (R-ID-4). A session whose user must change its password (a
 *  temporary one, or older than [users] password_max_age_days), or must
 *  enrol TOTP first (the login policy requires it and the user has none),
 *  may call only SR_CALLER_USER rows (403 naming the route to call). Then
 *  the row's body limit, then the row's action against the target the path
 *  names (admin_int.h: operatorId; appId / gatewayId under it with their
 *  vendor; vendorId; userId's scope; else the platform): 403 E2003 naming
 *  the action and the roles, audited. Then the handler.
 *
 * INVARIANTS
 *  (1) No admin route runs for a caller its row does not admit: the class,
 *      the must-change restriction and the action are checked here, before
 *      the handler, from the index as it is now (no cached grant).
 *  (2) A session token is stored only as its SHA-256 (SessionEvent), and a
 *      login is answered only once its session event is durable; a logout
 *      likewise (its token is dead when the 204 arrives).
 *  (3) A TOTP code is accepted once: the accepted step and the session are
 *      one command, and the engine refuses a step not above the stored one,
 *      so of two logins with the same code one succeeds.
 *  (4) Every state change is one command with who (the user), from where
 *      (the peer's address) and when; a refusal stores nothing and is
 *      audited (sr_admin_audit_refused).
 *  (5) Slow work (scrypt) never runs on the loop: password checks go
 *      through the login guard's threads, password hashing through the
 *      worker queue (sr_admin_run).
 */
#include "api/ryw.h"
#include "api/admin_http.h"
#include "api/cluster.h"
#include "api/admin_int.h"

#include "api/cluster_fwd.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/loopq.h"
#include "api/routes.h"
#include "api/slog.h"
#include "api/workq.h"
#include "codecs/base32.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "engine/totp.h"
#include "storage/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sr_admin {
    sr_engine *eng;
    uv_loop_t *loop;
    sr_loginguard *guard;
    sr_workq *wq;     /* the server's (or own_wq until sr_admin_set_conf) */
    sr_workq *own_wq;
    sr_admin_conf conf;
    sr_loopq doneq; /* engine completions */
    struct enrol *enrols; /* TOTP enrolments waiting for their first code (me_totp_*) */
    size_t nenrols;
    int closing;
    size_t busy;    /* jobs on the worker queue and commands in the engine */
};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void sr_admin_conf_default(sr_admin_conf *c)
{
    memset(c, 0, sizeof *c);
    c->pol.min_length = 12;
    c->pol.max_length = 128;
    c->pol.max_age_days = 90;
    c->session_ttl_s = 3600;
    c->pending_ttl_s = 86400;
}

/* the operator a user's events and sessions carry: its operator, "" for
 * platform and vendor users (sr_cmd_user_sessions_revoke matches on it) */
static const char *user_op(const sr_user *u) { return u->scope == SR_US_OPERATOR ? u->scope_id : ""; }

static sr_admin *admin_of(const sr_route_call *c) { return c->binding; }
static const sr_admin_caller *caller_of(const sr_route_call *c) { return c->caller; }

sr_engine *sr_admin_engine(const sr_route_call *c) { return admin_of(c)->eng; }
const sr_admin_conf *sr_admin_conf_of(const sr_route_call *c) { return &admin_of(c)->conf; }

/* ---- audit of refusals: a log line here, an AdminEvent (admin_audit.c) ---- */

void sr_admin_audit_refused(const sr_route_call *c, sr_wire code, const char *msg)
{
    sr_admin_audit_op(c, "refused", code, msg);
    const sr_admin_caller *cl = caller_of(c);
    char addr[64] = "";
    if (cl) snprintf(addr, sizeof addr, "%s", cl->source);
    else if (c->req) sr_login_addr_req(c->req, addr);
    sr_slog(SR_LOG_WARN, "admin operation refused", "user=%s route=\"%s %s\" source=%s code=%s msg=%s",
            cl ? sr_slog_q(cl->user) : "-", c->route ? c->route->method : "-", c->route ? c->route->path : "-",
            addr[0] ? addr : "-", sr_wire_code(code), sr_slog_q(msg));
}

static void refuse(const sr_route_call *c, int status, sr_wire code, const char *msg, json_t *detail)
{
    sr_admin_audit_refused(c, code, msg);
    sr_http_result(c->req, status, code, msg, detail);
}

/* ---- helpers (admin_int.h) ------------------------------------------------ */

static int principal_allows(const sr_admin_caller *cl, sr_authz_action act, const sr_authz_target *t)
{
    for (size_t i = 0; i < cl->nroles; i++) {
        sr_principal p = {cl->roles[i], cl->scope, cl->scope_id};
        if (sr_authz_allows(&p, act, t)) return 1;
    }
    return 0;
}

int sr_admin_allows(const sr_route_call *c, sr_authz_action act, const sr_authz_target *t)
{
    const sr_admin_caller *cl = caller_of(c);
    return cl && principal_allows(cl, act, t);
}

int sr_admin_authorize(const sr_route_call *c, sr_authz_action act, const sr_authz_target *t)
{
    const sr_admin_caller *cl = caller_of(c);
    if (cl && principal_allows(cl, act, t)) return 1;
    char roles[256] = "";
    size_t o = 0;
    for (size_t i = 0; cl && i < cl->nroles && o < sizeof roles; i++)
        o += (size_t)snprintf(roles + o, sizeof roles - o, "%s%s", i ? ", " : "", sr_role_name(cl->roles[i]));
    char m[400];
    snprintf(m, sizeof m, "forbidden: %s on this target is not allowed to role %s", sr_authz_action_name(act),
             roles[0] ? roles : "(none)");
    json_t *d = json_pack("{s:s}", "action", sr_authz_action_name(act));
    refuse(c, 0, SR_WIRE_FORBIDDEN, m, d);
    json_decref(d);
    return 0;
}

sr_cmd_env sr_admin_env(const sr_route_call *c, const char *op)
{
    const sr_admin_caller *cl = caller_of(c);
    sr_cmd_env env = {op ? op : "", cl ? cl->user : "system", cl ? SR_ACTOR_USER : SR_ACTOR_SYSTEM, NULL,
                      cl ? cl->source : NULL};
    return env;
}

sr_cmd_env sr_admin_work_env(const sr_admin_work *w, const char *op)
{
    sr_cmd_env env = {op ? op : "", w->caller.user, SR_ACTOR_USER, NULL, w->caller.source};
    return env;
}

json_t *sr_admin_body(const sr_route_call *c)
{
    h2o_req_t *req = c->req;
    json_error_t je;
    json_t *b = req->entity.len ? json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!b || !json_is_object(b)) {
        char m[300];
        if (!req->entity.len) snprintf(m, sizeof m, "malformed JSON: a JSON object body is required");
        else if (!b) snprintf(m, sizeof m, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        else snprintf(m, sizeof m, "malformed JSON: the body must be a JSON object");
        json_decref(b);
        refuse(c, 0, SR_WIRE_JSON, m, NULL);
        return NULL;
    }
    return b;
}

void sr_admin_bad_field(const sr_route_call *c, const char *field, const char *why)
{
    char m[600];
    snprintf(m, sizeof m, "%s: %s", field, why);
    json_t *d = json_pack("{s:s}", "field", field);
    refuse(c, 0, SR_WIRE_PARAM, m, d);
    json_decref(d);
}

/* The wire error of an engine refusal. The engine's EEXIST is a created ID
 * that exists or existed (users, registry entries): a conflict on the admin
 * API, an internal error elsewhere (wire.h). */
static sr_wire wire_of_refusal(int rc) { return rc == SR_EEXIST ? SR_WIRE_CONFLICT : sr_wire_of_rc(rc); }

/* ---- submit and answer when durable (sr_admin_submit) --------------------- */

typedef struct sjob {
    sr_http_ctx h;
    sr_admin *a;
    const sr_route *route;
    sr_admin_caller caller;
    int has_caller;
    int status;
    json_t *answer;
    sr_result res;
    sr_loopq_item li;
    void (*after)(struct sjob *j); /* optional: on success, answers itself (login) */
    void *ctx;
    void (*ctx_free)(void *ctx);
    const char *login_user; /* a login's: a refusal (the code used meanwhile) is a failed login, 401 */
} sjob;

static void sjob_free(sr_http_ctx *h)
{
    sjob *j = (sjob *)h;
    json_decref(j->answer);
    if (j->ctx_free) j->ctx_free(j->ctx);
}

static void on_engine(void *ctx, const sr_result *r)
{
    sjob *j = ctx;
    j->res = *r;
    sr_loopq_push(&j->a->doneq, &j->li);
}

static void answer_refusal(sr_admin *a, h2o_req_t *req, const sr_route *route, const sr_admin_caller *cl, int rc,
                           const char *msg)
{
    sr_wire w = wire_of_refusal(rc);
    const char *m = msg && msg[0] ? msg : sr_wire_msg_of_rc(rc);
    sr_route_call c = {0};
    c.binding = a; /* the audit event's engine (admin_audit.c) */
    c.route = route;
    c.req = req;
    c.caller = cl;
    sr_admin_audit_refused(&c, w, m);
    if (req) sr_http_result(req, 0, w, m, NULL);
}

static void login_audit(sr_admin *a, const char *op, const char *user, const char *reason, const char *addr);

static void sjob_done(sjob *j)
{
    h2o_req_t *req = j->h.req;
    if (j->res.rc && j->login_user && j->res.rc == SR_EINVAL) {
        /* the step was taken by a concurrent login with the same code */
        char addr[64] = "";
        if (req) sr_login_addr_req(req, addr);
        login_audit(j->a, "", j->login_user, j->res.err.msg, addr);
        if (req) sr_http_result(req, 0, SR_WIRE_UNAUTH, "not authenticated: wrong userId, password or one-time code", NULL);
    } else if (j->res.rc) answer_refusal(j->a, req, j->route, j->has_caller ? &j->caller : NULL, j->res.rc, j->res.err.msg);
    else if (j->after) j->after(j);
    else if (req && j->answer) {
        sr_ryw_answer_header(req, &j->res); /* Suiro-Seq (api/ryw.h) */
        sr_http_jsonv(req, j->status, j->answer);
    } else if (req) {
        sr_ryw_answer_header(req, &j->res);
        sr_http_no_content(req);
    }
}

static void on_done(void *ctx, sr_loopq_item *it)
{
    sr_admin *a = ctx;
    sjob *j = SR_CONTAINER(it, sjob, li);
    a->busy--;
    sjob_done(j);
    sr_http_ctx_unref(&j->h);
}

static sjob *sjob_new(const sr_route_call *c, int status, json_t *answer)
{
    sjob *j = sr_http_ctx_new(c->req, sizeof *j);
    if (!j) {
        json_decref(answer);
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    j->h.on_free = sjob_free;
    j->a = admin_of(c);
    j->route = c->route;
    if (c->caller) j->caller = *caller_of(c), j->has_caller = 1;
    j->status = status;
    j->answer = answer;
    return j;
}

/* submit slices (n events as one command) for j; answers a refusal at once */
static void sjob_submit(sjob *j, const sr_slice *sl, size_t n)
{
    sr_admin *a = j->a;
    int rc = a->closing ? SR_ECLOSED : SR_OK;
    if (!rc) {
        j->h.refs++;
        a->busy++;
        rc = sr_engine_submit(a->eng, sl, n, on_engine, j);
        if (rc) j->h.refs--, a->busy--;
    }
    if (rc) answer_refusal(a, j->h.req, j->route, j->has_caller ? &j->caller : NULL, rc, NULL);
}

void sr_admin_submit(const sr_route_call *c, int rc, sr_buf *b, int status, json_t *answer)
{
    if (rc) {
        json_decref(answer);
        sr_buf_release(b);
        return answer_refusal(admin_of(c), c->req, c->route, caller_of(c), rc, NULL);
    }
    sjob *j = sjob_new(c, status, answer);
    if (!j) return sr_buf_release(b);
    sr_slice sl = {b->data, b->len};
    sjob_submit(j, &sl, 1);
    sr_buf_release(b);
}

/* ---- work on the worker queue (sr_admin_run) ------------------------------- */

typedef struct wjob {
    sr_http_ctx h;
    sr_admin *a;
    const sr_route *route;
    sr_work wk;
    sr_admin_work w;
    void (*work)(sr_admin_work *w, void *ctx);
    void *ctx;
    void (*ctx_free)(void *ctx);
} wjob;

static void wjob_free(sr_http_ctx *h)
{
    wjob *j = (wjob *)h;
    if (j->ctx_free) j->ctx_free(j->ctx);
    json_decref(j->w.answer);
    json_decref(j->w.detail);
    sr_buf_release(&j->w.body);
}

static void wjob_work(sr_work *wk)
{
    wjob *j = SR_CONTAINER(wk, wjob, wk);
    j->work(&j->w, j->ctx);
}

static void wjob_done(sr_work *wk, int status)
{
    wjob *j = SR_CONTAINER(wk, wjob, wk);
    h2o_req_t *req = j->h.req;
    j->a->busy--;
    if (status) {
        if (req) sr_http_result(req, 0, SR_WIRE_INTERNAL, "the operation was cancelled", NULL);
    } else if (j->w.code) {
        sr_route_call c = {0};
        c.route = j->route;
        c.req = req;
        c.caller = &j->w.caller;
        sr_admin_audit_refused(&c, j->w.code, j->w.msg);
        if (req) sr_http_result(req, 0, j->w.code, j->w.msg[0] ? j->w.msg : sr_wire_msg(j->w.code), j->w.detail);
    } else if (req) {
        if (j->w.answer) sr_http_jsonv(req, j->w.status ? j->w.status : 200, j->w.answer);
        else if (j->w.content_type)
            sr_http_send(req, j->w.status ? j->w.status : 200, j->w.content_type, j->w.body.data, j->w.body.len);
        else sr_http_no_content(req);
    }
    sr_http_ctx_unref(&j->h);
}

void sr_admin_run(const sr_route_call *c, void (*work)(sr_admin_work *w, void *ctx), void *ctx,
                  void (*ctx_free)(void *ctx))
{
    sr_admin_run_for(c, NULL, work, ctx, ctx_free);
}

void sr_admin_run_for(const sr_route_call *c, const char *op, void (*work)(sr_admin_work *w, void *ctx), void *ctx,
                      void (*ctx_free)(void *ctx))
{
    sr_admin *a = admin_of(c);
    wjob *j = sr_http_ctx_new(c->req, sizeof *j);
    if (!j) {
        if (ctx_free) ctx_free(ctx);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    j->h.on_free = wjob_free;
    j->a = a;
    j->route = c->route;
    j->work = work;
    j->ctx = ctx;
    j->ctx_free = ctx_free;
    j->w.eng = a->eng;
    if (c->caller) j->w.caller = *caller_of(c);
    j->wk.work = wjob_work;
    j->wk.done = wjob_done;
    int rc = a->closing ? SR_ECLOSED : SR_OK;
    if (!rc) {
        j->h.refs++;
        a->busy++;
        /* the queue's fairness key: the operator the work is for (op), else
         * the caller's scope */
        const char *key = op && op[0] ? op : j->w.caller.scope_id[0] ? j->w.caller.scope_id : "(platform)";
        rc = sr_workq_submit(a->wq, key, 0, 0, &j->wk);
        if (rc) j->h.refs--, a->busy--;
    }
    if (rc == SR_EFULL) sr_http_result(c->req, 0, SR_WIRE_BUSY, "busy: too many admin operations waiting; retry later", NULL);
    else if (rc) sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
}

static int work_submit(sr_admin_work *w, int rc, sr_buf *b, int cluster)
{
    sr_result res;
    memset(&res, 0, sizeof res);
    if (!rc) {
        sr_slice sl = {b->data, b->len};
        rc = cluster ? sr_cluster_submit_wait(w->eng, &sl, 1, &res) : sr_engine_submit_wait(w->eng, &sl, 1, &res);
    }
    sr_buf_release(b);
    if (rc) {
        w->code = wire_of_refusal(rc);
        snprintf(w->msg, sizeof w->msg, "%s", res.err.msg[0] ? res.err.msg : sr_wire_msg_of_rc(rc));
    }
    return rc;
}

int sr_admin_work_submit(sr_admin_work *w, int rc, sr_buf *b) { return work_submit(w, rc, b, 0); }

int sr_admin_work_submit_cluster(sr_admin_work *w, int rc, sr_buf *b) { return work_submit(w, rc, b, 1); }

/* ---- the caller (the dispatcher's authentication) -------------------------- */

/* The login policy: does user u need TOTP? (item 5 extends it) */
static int totp_required(sr_admin *a, const sr_user *u);

static void token_hash(const char *tok, size_t len, uint8_t out[32]) { sr_sha256(tok, len, out); }

/* why the caller is restricted to SR_CALLER_USER rows: "" none */
typedef struct authn {
    sr_wire code;
    const char *msg;
    const char *restricted; /* the route to call first */
} authn;

/* Authenticate req's bearer token as a user's session; fills cl. */
static authn authenticate(sr_admin *a, h2o_req_t *req, sr_admin_caller *cl)
{
    authn r = {SR_WIRE_UNAUTH, "not authenticated: POST /admin/v1/sessions first, then Authorization: Bearer <token>",
               NULL};
    size_t len = 0;
    const char *tok = sr_http_bearer(req, &len);
    if (!tok || len != 64) return r;
    uint8_t h[32];
    token_hash(tok, len, h);
    int64_t now = wall_ms();
    sr_session_rec s;
    sr_rec rec = SR_REC_INIT;
    sr_user u;
    int expired = 0;
    /* the session and its user, one read snapshot */
    int rc = sr_user_session_verify(a->eng, h, now, &rec, &s, &expired, &u);
    if (expired) {
        sr_rec_close(&rec);
        r.code = SR_WIRE_EXPIRED;
        r.msg = "session expired: log in again (POST /admin/v1/sessions)";
        return r;
    }
    if (rc || u.deleted || u.disabled || strlen(u.id) >= sizeof cl->user || strlen(u.scope_id) >= sizeof cl->scope_id) {
        sr_rec_close(&rec);
        if (rc && rc != SR_ENOTFOUND) r.code = sr_wire_of_rc(rc), r.msg = sr_wire_msg_of_rc(rc);
        else r.msg = "not authenticated: the user is disabled or deleted";
        return r;
    }
    memset(cl, 0, sizeof *cl);
    snprintf(cl->user, sizeof cl->user, "%s", u.id);
    snprintf(cl->op, sizeof cl->op, "%s", user_op(&u));
    cl->scope = u.scope == SR_US_OPERATOR ? SR_SCOPE_OPERATOR : u.scope == SR_US_VENDOR ? SR_SCOPE_VENDOR : SR_SCOPE_PLATFORM;
    snprintf(cl->scope_id, sizeof cl->scope_id, "%s", u.scope_id);
    for (size_t i = 0; i < u.n_roles && cl->nroles < SR_ROLE_COUNT; i++)
        if (!sr_role_parse(u.roles[i], &cl->roles[cl->nroles])) cl->nroles++;
    memcpy(cl->token_hash, h, 32);
    sr_login_addr_req(req, cl->source);
    if (u.temporary || sr_password_expired(&a->conf.pol, u.password_set_ms, now)) {
        cl->must_change = 1;
        r.restricted = u.temporary ? "forbidden: this password is temporary; change it first with PUT "
                                     "/admin/v1/me/password"
                                   : "forbidden: this password has expired; change it first with PUT "
                                     "/admin/v1/me/password";
    } else if (!u.totp_secret_sealed.len && totp_required(a, &u)) {
        cl->must_change = 1;
        r.restricted = "forbidden: the login policy requires a one-time password; enrol first with POST "
                       "/admin/v1/me/totp and PUT /admin/v1/me/totp";
    }
    sr_rec_close(&rec);
    r.code = SR_WIRE_OK;
    return r;
}

int sr_admin_token_known(sr_admin *a, const char *token, size_t len)
{
    if (!a || !a->eng || len != 64) return 0;
    uint8_t h[32];
    token_hash(token, len, h);
    sr_session_rec s;
    return sr_session_verify(a->eng, h, SR_ACTOR_USER, wall_ms(), &s) == SR_OK;
}

/* The target the path names (admin_int.h). Strings point into c's
 * parameters or into ids (room for two ids). */
static void path_target(sr_admin *a, const sr_route_call *c, sr_authz_target *t, char ids[2][72])
{
    memset(t, 0, sizeof *t);
    const char *op = sr_route_param(c, "operatorId"), *vendor = sr_route_param(c, "vendorId"),
               *user = sr_route_param(c, "userId");
    if (op) {
        t->operator_id = op;
        const sr_admin_caller *cl = c->caller;
        if (cl && cl->scope == SR_SCOPE_VENDOR && cl->scope_id[0]) {
            /* the operator's grant to the caller's vendor, read live (a
             * revoked grant refuses the very next request) */
            sr_rec r = SR_REC_INIT;
            sr_reg_entry g;
            t->vendor_granted = sr_read_registry(a->eng, op, SR_RG_VENDOR_GRANT, cl->scope_id, &r, &g) == SR_OK;
            sr_rec_close(&r);
        }
        const char *app = sr_route_param(c, "appId"), *gw = sr_route_param(c, "gatewayId");
        if (app || gw) {
            sr_rec r = SR_REC_INIT;
            sr_reg_entry re;
            if (sr_read_registry(a->eng, op, app ? SR_RG_APP : SR_RG_GATEWAY, app ? app : gw, &r, &re) == SR_OK &&
                re.vendor_id[0] && strlen(re.vendor_id) < sizeof ids[0]) {
                snprintf(ids[0], sizeof ids[0], "%s", re.vendor_id);
                t->vendor_id = ids[0];
            }
            sr_rec_close(&r);
        }
    } else if (vendor) {
        t->vendor_id = vendor;
    } else if (user) {
        /* the user's scope; an unknown user is the platform's (only a
         * platform admin passes, and the handler answers 404) */
        sr_rec r = SR_REC_INIT;
        sr_user u;
        if (sr_read_user(a->eng, user, &r, &u) == SR_OK && strlen(u.scope_id) < sizeof ids[1]) {
            snprintf(ids[1], sizeof ids[1], "%s", u.scope_id);
            if (u.scope == SR_US_OPERATOR) t->operator_id = ids[1];
            else if (u.scope == SR_US_VENDOR) t->vendor_id = ids[1];
        }
        sr_rec_close(&r);
    }
}

int sr__admin_route_authorized(sr_admin *a, const sr_route_call *c, const sr_route *r)
{
    if (r->action <= 0 || r->action > SR_ACT_COUNT) return 1; /* the handler checks (x-suiro-action-in-handler) */
    sr_authz_target t;
    char ids[2][72] = {"", ""};
    path_target(a, c, &t, ids);
    sr_admin_caller *cl = (sr_admin_caller *)c->caller;
    if (cl) cl->vendor_granted = t.vendor_granted;
    return sr_admin_authorize(c, (sr_authz_action)(r->action - 1), &t);
}

/* ---- the dispatcher ---------------------------------------------------------- */

static const struct {
    const sr_route *rows;
    const size_t *n;
} tables[] = {
    {sr_admin_routes, &sr_admin_nroutes},
    {sr_admin_setup_routes, &sr_admin_setup_nroutes},
    {sr_admin_pending_routes, &sr_admin_pending_nroutes},
    {sr_admin_audit_routes, &sr_admin_audit_nroutes},
    {sr_admin_files_routes, &sr_admin_files_nroutes},
    {sr_admin_data_routes, &sr_admin_data_nroutes},
    {sr_admin_backup_routes, &sr_admin_backup_nroutes},
    {sr_admin_retention_routes, &sr_admin_retention_nroutes},
    {sr_admin_keys_routes, &sr_admin_keys_nroutes},
    {sr_admin_notify_routes, &sr_admin_notify_nroutes},
    {sr_admin_alarms_routes, &sr_admin_alarms_nroutes},
    {sr_admin_alive_routes, &sr_admin_alive_nroutes},
    {sr_admin_report_routes, &sr_admin_report_nroutes},
    {sr_admin_sig_routes, &sr_admin_sig_nroutes},
    {sr_admin_tlog_routes, &sr_admin_tlog_nroutes},
};

/* read-your-writes (api/ryw.h): a read that waited for its Suiro-Wait token
 * goes through the dispatcher again */
static void ryw_resume(void *binding, h2o_req_t *req) { sr_admin_handle(binding, req); }

static void dispatch(sr_admin *a, h2o_req_t *req, int64_t until);
static void dispatch_again(void *a, h2o_req_t *req, int64_t until) { dispatch(a, req, until); }

void sr_admin_handle(sr_admin *a, h2o_req_t *req) { dispatch(a, req, 0); }

/* The row, its caller authenticated once, its body limit, in cluster mode
 * its owner (api/cluster_fwd.h), its action checked, then its handler. */
static void dispatch(sr_admin *a, h2o_req_t *req, int64_t until)
{
    sr_route_call c;
    int known = 0;
    const sr_route *r = NULL;
    for (size_t i = 0; !r && i < sizeof tables / sizeof tables[0]; i++) {
        int k = 0;
        r = sr_route_find(tables[i].rows, *tables[i].n, req->method.base, req->method.len, req->path_normalized.base,
                          req->path_normalized.len, &c, &k);
        known |= k;
    }
    if (!r)
        return sr_http_result(req, known ? 405 : 0, known ? SR_WIRE_PARAM : SR_WIRE_UNKNOWN,
                              known ? "method not allowed on this path" : "unknown path", NULL);
    c.binding = a;
    c.req = req;
    c.caller = NULL;
    if (a->closing) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        return sr_http_result(req, 503, SR_WIRE_BUSY, "server stopping", NULL);
    }
    sr_admin_caller *cl = NULL;
    if (r->caller != SR_CALLER_NONE) {
        cl = h2o_mem_alloc_pool(&req->pool, sizeof *cl);
        authn an = authenticate(a, req, cl);
        /* a forwarded request whose session is still on its way here (cluster_fwd.h invariant 4) */
        if (an.code == SR_WIRE_UNAUTH && sr_fwd_wait(req, a, dispatch_again, &until)) return;
        if (an.code) return sr_http_result(req, 0, an.code, an.msg, NULL);
        c.caller = cl;
        if (cl->must_change && r->caller != SR_CALLER_USER) return refuse(&c, 403, SR_WIRE_FORBIDDEN, an.restricted, NULL);
    }
    char m[120];
    if (sr_route_body_check(r, req->entity.len, m, sizeof m)) return refuse(&c, 0, SR_WIRE_LARGE, m, NULL);
    /* cluster mode: the owner of {operatorId}'s partition, or of partition 0 for a platform write, serves it
     * and checks it completely itself (this node's checks are a pre-filter) */
    if (r->fwd && cl && sr_fwd_route(req, r, sr_route_param(&c, "operatorId"))) return;
    if (!sr__admin_route_authorized(a, &c, r)) return;
    /* a read with Suiro-Wait: served once this node's state holds the token (api/ryw.h) */
    if (r->method[0] == 'G' && sr_ryw_gate(req, cl ? cl->op : "", ryw_resume, a)) return;
    r->handler(&c);
}

/* ---- TOTP secrets at rest ------------------------------------------------------ */

/* A user's TOTP secret is sealed before it goes into the event (and so the
 * log and the `users` index): with AES-256-GCM under a key derived from the
 * engine's data key ([storage] key_file) -- SHA-256("suiro totp seal v1" ||
 * key), so that no nonce is ever shared with the log's own use of the key --
 * a random nonce and the user's ID as associated data (a sealed secret
 * copied to another user does not open). Layout: 'S' nonce(12) tag(16)
 * ciphertext. Without a data key the engine stores nothing encrypted, and
 * the secret is stored as is: 'P' secret (docs/admin.md says so). */
enum { SEAL_MAX = 1 + SR_NONCE_LEN + SR_TAG_LEN + SR_TOTP_SECRET_LEN };

static int seal_key(const sr_admin *a, sr_key *k)
{
    if (!a->conf.key) return 0;
    uint8_t d[32];
    static const char label[] = "suiro totp seal v1";
    sr_sha256_2(label, sizeof label - 1, a->conf.key->bytes, SR_KEY_LEN, d);
    sr_key_from_bytes(k, d);
    memset(d, 0, sizeof d);
    return 1;
}

static int totp_seal(const sr_admin *a, const char *user, const uint8_t *secret, size_t n, uint8_t *out,
                     size_t *olen)
{
    sr_key k;
    if (n > SR_TOTP_SECRET_LEN) return SR_EINVAL;
    if (!seal_key(a, &k)) {
        out[0] = 'P';
        memcpy(out + 1, secret, n);
        *olen = 1 + n;
        return SR_OK;
    }
    sr_aead *ae = NULL;
    int rc = sr_aead_create(&k, &ae);
    memset(&k, 0, sizeof k);
    if (!rc) rc = sr_random(out + 1, SR_NONCE_LEN);
    if (!rc)
        rc = sr_aead_seal(ae, out + 1, user, strlen(user), secret, n, out + 1 + SR_NONCE_LEN + SR_TAG_LEN,
                          out + 1 + SR_NONCE_LEN);
    sr_aead_destroy(ae);
    out[0] = 'S';
    *olen = 1 + SR_NONCE_LEN + SR_TAG_LEN + n;
    return rc;
}

/* the secret of a sealed record into key (64 bytes), *klen */
static int totp_unseal(const sr_admin *a, const char *user, sr_slice sealed, uint8_t *key, size_t *klen)
{
    const uint8_t *p = sealed.data;
    if (sealed.len >= 2 && p[0] == 'P' && sealed.len - 1 <= 64) {
        memcpy(key, p + 1, sealed.len - 1);
        *klen = sealed.len - 1;
        return SR_OK;
    }
    size_t head = 1 + SR_NONCE_LEN + SR_TAG_LEN;
    if (sealed.len <= head || p[0] != 'S' || sealed.len - head > 64) return SR_ECORRUPT;
    sr_key k;
    if (!seal_key(a, &k)) return SR_EKEY; /* sealed under a key the server does not have now */
    sr_aead *ae = NULL;
    int rc = sr_aead_create(&k, &ae);
    memset(&k, 0, sizeof k);
    if (!rc) rc = sr_aead_open(ae, p + 1, user, strlen(user), p + head, sealed.len - head, key, p + 1 + SR_NONCE_LEN);
    sr_aead_destroy(ae);
    *klen = sealed.len - head;
    return rc;
}

/* ---- login ------------------------------------------------------------------- */

typedef struct login {
    sr_http_ctx h;
    sr_admin *a;
    const sr_route *route;
    sr_login_job lj; /* its stored hash: the user's (empty if unknown) */
    char user[72], addr[64], code[16];
    int has_code;
    /* after the checks, while the session's command is in the engine */
    char hex[65];
    int64_t expires;
    int must_change;
} login;

static void login_free(sr_http_ctx *h)
{
    login *l = (login *)h;
    sr_buf_release(&l->lj.stored);
}

/* a refused login: audited (an auth event, the user's operator when known)
 * and answered 401 */
static void login_audit(sr_admin *a, const char *op, const char *user, const char *reason, const char *addr)
{
    if (a->closing || !a->eng) return;
    sr_login_audit(a->eng, SR_ACTOR_USER, op, user, reason, addr); /* the one failed-login event (loginguard.h) */
    sr_slog(SR_LOG_WARN, "user login refused", "user=%s peer=%s reason=%s", sr_slog_q(user), addr, sr_slog_q(reason));
}

static void login_answer(sjob *j)
{
    login *l = j->ctx;
    h2o_req_t *req = j->h.req;
    sr_slog(SR_LOG_INFO, "user session opened", "user=%s peer=%s must_change=%d", sr_slog_q(l->user), l->addr,
            l->must_change);
    if (!req) return;
    char exp[32];
    sr_rfc3339_format(l->expires, exp);
    json_t *o = json_pack("{s:s,s:s,s:b}", "token", l->hex, "expiresAt", exp, "mustChangePassword", l->must_change);
    sr_http_jsonv(req, 201, o);
    json_decref(o);
}

static void login_unref(void *ctx) { sr_http_ctx_unref(&((login *)ctx)->h); }

static void login_checked(login *l)
{
    sr_admin *a = l->a;
    h2o_req_t *req = l->h.req;
    const char *unauth = "not authenticated: wrong userId, password or one-time code";
    sr_rec rec = SR_REC_INIT;
    sr_user u;
    int rc = sr_read_user(a->eng, l->user, &rec, &u);
    if (rc || u.deleted || u.disabled) {
        login_audit(a, rc ? "" : user_op(&u), l->user, rc ? "unknown user" : "user disabled or deleted", l->addr);
        sr_rec_close(&rec);
        if (req) sr_http_result(req, 0, SR_WIRE_UNAUTH, unauth, NULL);
        return;
    }
    char op[72];
    snprintf(op, sizeof op, "%s", user_op(&u));
    int64_t now = wall_ms();
    uint64_t step = 0;
    int totp = u.totp_secret_sealed.len > 0;
    if (totp) {
        uint8_t key[64];
        size_t klen = 0;
        rc = totp_unseal(a, u.id, u.totp_secret_sealed, key, &klen);
        if (!rc && !l->has_code) rc = SR_EINVAL;
        else if (!rc)
            rc = sr_totp_verify(key, klen, l->code, strlen(l->code), now / 1000, (uint64_t)u.totp_last_step, &step);
        memset(key, 0, sizeof key);
        if (rc) {
            login_audit(a, op, l->user, !l->has_code ? "one-time code missing" : "wrong or used one-time code", l->addr);
            sr_rec_close(&rec);
            if (req)
                sr_http_result(req, 0, SR_WIRE_UNAUTH,
                               !l->has_code ? "not authenticated: this user needs a one-time code (code)" : unauth, NULL);
            return;
        }
    }
    l->must_change = u.temporary || sr_password_expired(&a->conf.pol, u.password_set_ms, now) ||
                     (!totp && totp_required(a, &u));
    sr_rec_close(&rec);
    /* the session (and the accepted step: one command, invariant 3) */
    uint8_t raw[32], h[32];
    if (sr_random(raw, sizeof raw) != SR_OK) {
        if (req) sr_http_result(req, 0, SR_WIRE_INTERNAL, "no randomness for a token", NULL);
        return;
    }
    sr_hex(raw, 32, l->hex);
    token_hash(l->hex, 64, h);
    l->expires = now + (int64_t)a->conf.session_ttl_s * 1000;
    sr_buf b1, b2;
    sr_buf_init(&b1);
    sr_buf_init(&b2);
    sr_cmd_env env = {op, l->user, SR_ACTOR_USER, NULL, l->addr};
    rc = totp ? sr_cmd_user_totp_step(&env, l->user, (int64_t)step, &b1) : SR_OK;
    if (!rc) rc = sr_cmd_token_session(&env, h, l->expires, SR_SS_CONNECTED, totp ? "password+totp" : "password", &b2);
    if (rc) {
        sr_buf_release(&b1);
        sr_buf_release(&b2);
        if (req) sr_http_result(req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
        return;
    }
    sr_route_call c = {0};
    c.route = l->route;
    c.req = req;
    c.binding = a;
    sjob *j = req ? sjob_new(&c, 201, NULL) : NULL;
    if (j) {
        j->after = login_answer;
        j->login_user = l->user;
        j->ctx = l;
        j->ctx_free = login_unref;
        l->h.refs++; /* the sjob's, released when it is freed */
        sr_slice sl[2] = {{b1.data, b1.len}, {b2.data, b2.len}};
        sjob_submit(j, totp ? sl : sl + 1, totp ? 2 : 1);
    }
    sr_buf_release(&b1);
    sr_buf_release(&b2);
}

static void login_done(sr_login_job *lj)
{
    login *l = SR_CONTAINER(lj, login, lj);
    if (lj->verdict != SR_LG_OK) {
        if (l->h.req) sr_login_http_refuse(l->h.req, "user", "", l->user, l->addr, lj->verdict, lj->retry_ms);
    } else if (!lj->ok) {
        /* audited also when the client left */
        login_audit(l->a, "", l->user, "bad user id or password", l->addr);
        if (l->h.req)
            sr_http_result(l->h.req, 0, SR_WIRE_UNAUTH, "not authenticated: wrong userId, password or one-time code",
                           NULL);
    } else if (!l->a->closing) {
        login_checked(l);
    } else if (l->h.req) {
        h2o_add_header(&l->h.req->pool, &l->h.req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        sr_http_result(l->h.req, 503, SR_WIRE_BUSY, "server stopping", NULL);
    }
    sr_http_ctx_unref(&l->h);
}

static void session_open(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    json_t *b = sr_admin_body(c);
    if (!b) return;
    json_t *user = json_object_get(b, "userId"), *pw = json_object_get(b, "password"),
           *code = json_object_get(b, "code");
    const char *bad = !sr_login_str_ok(user, 72) || !json_string_length(user) ? "userId"
                      : !sr_login_str_ok(pw, 300)                             ? "password"
                      : code && !json_is_null(code) && !sr_login_str_ok(code, 16) ? "code"
                                                                                 : NULL;
    if (bad) {
        json_decref(b);
        return sr_admin_bad_field(c, bad,
                                  !strcmp(bad, "userId")     ? "a string of 1 to 71 bytes is required"
                                  : !strcmp(bad, "password") ? "a string of at most 299 bytes is required"
                                                             : "a string of 6 digits");
    }
    login *l = sr_http_ctx_new(c->req, sizeof *l);
    if (!l) {
        json_decref(b);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    l->h.on_free = login_free;
    l->a = a;
    l->route = c->route;
    sr_buf_init(&l->lj.stored);
    snprintf(l->user, sizeof l->user, "%s", json_string_value(user));
    snprintf(l->lj.secret, sizeof l->lj.secret, "%s", json_string_value(pw));
    if (code && json_is_string(code)) {
        l->has_code = 1;
        snprintf(l->code, sizeof l->code, "%s", json_string_value(code));
    }
    json_decref(b);
    sr_login_stored(a->eng, 'u', "", l->user, &l->lj.stored);
    sr_login_addr_req(c->req, l->addr);
    l->lj.done = login_done;
    uint64_t retry_ms = 0;
    int v = sr_loginguard_submit(a->guard, &l->lj, 'u', "", l->user, l->addr, &retry_ms);
    if (v != SR_LG_OK) {
        memset(l->lj.secret, 0, sizeof l->lj.secret);
        sr_login_http_refuse(c->req, "user", "", l->user, l->addr, v, retry_ms);
        return;
    }
    l->h.refs++; /* the guard's, until login_done */
}

/* ---- the caller's own session, password ------------------------------------ */

static void session_close(const sr_route_call *c)
{
    const sr_admin_caller *cl = caller_of(c);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, cl->op);
    sr_slog(SR_LOG_INFO, "user session closed", "user=%s", sr_slog_q(cl->user));
    sr_admin_submit(c, sr_cmd_token_session(&env, cl->token_hash, 0, SR_SS_DISCONNECTED, "logout", &b), &b, 204, NULL);
}

/* A user as the Admin API shows it (never a hash or a secret). */
static json_t *user_json(const sr_user *u)
{
    json_t *roles = json_array();
    for (size_t i = 0; i < u->n_roles; i++) json_array_append_new(roles, json_string(u->roles[i]));
    static const char *const kinds[] = {"", "platform", "operator", "vendor"};
    json_t *scope = json_pack("{s:s}", "kind", kinds[u->scope <= SR_US_VENDOR ? u->scope : 0]);
    if (u->scope != SR_US_PLATFORM) json_object_set_new(scope, "id", json_string(u->scope_id));
    char set[32];
    sr_rfc3339_format(u->password_set_ms, set);
    return json_pack("{s:s,s:s,s:o,s:o,s:s,s:b,s:b,s:s}", "id", u->id, "name", u->name, "scope", scope, "roles", roles,
                     "state", u->deleted ? "deleted" : u->disabled ? "disabled" : "enabled", "temporaryPassword",
                     u->temporary, "totpEnrolled", u->totp_secret_sealed.len > 0, "passwordSetAt", set);
}

/* Answer a list read from rec (closed here): rc < 0, the engine's error
 * (items dropped); else 200 {"items": items}. */
static void answer_items(const sr_route_call *c, sr_rec *rec, int rc, json_t *items)
{
    sr_rec_close(rec);
    if (rc < 0) {
        json_decref(items);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void me(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const sr_admin_caller *cl = caller_of(c);
    sr_rec rec = SR_REC_INIT;
    sr_user u;
    int rc = sr_read_user(a->eng, cl->user, &rec, &u);
    if (rc) {
        sr_rec_close(&rec);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *o = user_json(&u);
    json_object_set_new(o, "mustChangePassword", json_boolean(cl->must_change));
    sr_rec_close(&rec);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* ---- users -------------------------------------------------------------------- */

/* the target of the caller's own scope */
static sr_authz_target own_scope(const sr_admin_caller *cl)
{
    sr_authz_target t = {0};
    if (cl->scope == SR_SCOPE_OPERATOR) t.operator_id = cl->scope_id;
    else if (cl->scope == SR_SCOPE_VENDOR) t.vendor_id = cl->scope_id;
    return t;
}

/* is u in the caller's scope (a platform caller: every user) */
static int in_scope(const sr_admin_caller *cl, const sr_user *u)
{
    if (cl->scope == SR_SCOPE_PLATFORM) return 1;
    sr_user_scope want = cl->scope == SR_SCOPE_OPERATOR ? SR_US_OPERATOR : SR_US_VENDOR;
    return u->scope == want && !strcmp(u->scope_id, cl->scope_id);
}

static void users_list(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const sr_admin_caller *cl = caller_of(c);
    sr_authz_target t = own_scope(cl);
    if (!sr_admin_authorize(c, SR_ACT_USERS_MANAGE, &t)) return;
    sr_rec rec = SR_REC_INIT;
    int rc = sr_list_users(a->eng, &rec);
    json_t *items = json_array();
    sr_user u;
    while (!rc && (rc = sr_rec_next_user(&rec, &u)) == 1) {
        if (in_scope(cl, &u)) json_array_append_new(items, user_json(&u));
        rc = 0;
    }
    answer_items(c, &rec, rc, items);
}

static void user_get(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const char *id = sr_route_param(c, "userId");
    sr_rec rec = SR_REC_INIT;
    sr_user u;
    int rc = id ? sr_read_user(a->eng, id, &rec, &u) : SR_ENOTFOUND;
    if (rc) {
        sr_rec_close(&rec);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), rc == SR_ENOTFOUND ? "unknown userId" : sr_wire_msg_of_rc(rc),
                              NULL);
    }
    json_t *o = user_json(&u);
    sr_rec_close(&rec);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* PUT /admin/v1/me/password: the current password is checked by the login
 * guard (throttled like a login, scrypt on its threads), the new one hashed
 * on the worker queue; the password is then not temporary, and the
 * must-change session a normal one (the dispatcher reads the user live). */
typedef struct pwchange {
    sr_http_ctx h;
    sr_admin *a;
    const sr_route *route;
    sr_admin_caller caller;
    sr_login_job lj;
    char *newpw;
} pwchange;

static void pwchange_free(sr_http_ctx *h)
{
    pwchange *p = (pwchange *)h;
    sr_buf_release(&p->lj.stored);
    if (p->newpw) {
        memset(p->newpw, 0, strlen(p->newpw));
        free(p->newpw);
    }
}

static void pw_work(sr_admin_work *w, void *ctx)
{
    pwchange *p = ctx;
    sr_buf b;
    sr_buf_init(&b);
    char why[200] = "";
    sr_cmd_env env = sr_admin_work_env(w, w->caller.op);
    int rc = sr_cmd_user_password(&env, w->caller.user, p->newpw, 0, wall_ms(), &p->a->conf.pol, &b, why, sizeof why);
    if (rc == SR_EINVAL && why[0]) {
        sr_buf_release(&b);
        w->code = SR_WIRE_PARAM;
        /* why names the password already ("password: ...") */
        snprintf(w->msg, sizeof w->msg, "newPassword: %s", strncmp(why, "password: ", 10) ? why : why + 10);
        w->detail = json_pack("{s:s}", "field", "newPassword");
        return;
    }
    if (sr_admin_work_submit(w, rc, &b)) return;
    w->status = 204;
}

static void pw_unref(void *ctx) { sr_http_ctx_unref(&((pwchange *)ctx)->h); }

static void pw_checked(sr_login_job *lj)
{
    pwchange *p = SR_CONTAINER(lj, pwchange, lj);
    sr_route_call c = {0};
    c.route = p->route;
    c.req = p->h.req;
    c.binding = p->a;
    c.caller = &p->caller;
    if (!c.req || p->a->closing) return sr_http_ctx_unref(&p->h);
    if (lj->verdict != SR_LG_OK) {
        sr_login_http_refuse(c.req, "user", "", p->caller.user, p->caller.source, lj->verdict, lj->retry_ms);
        return sr_http_ctx_unref(&p->h);
    }
    if (!lj->ok) {
        sr_admin_bad_field(&c, "currentPassword", "wrong password");
        return sr_http_ctx_unref(&p->h);
    }
    sr_admin_run(&c, pw_work, p, pw_unref); /* takes the guard's reference */
}

static void me_password(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const sr_admin_caller *cl = caller_of(c);
    json_t *b = sr_admin_body(c);
    if (!b) return;
    json_t *cur = json_object_get(b, "currentPassword"), *nw = json_object_get(b, "newPassword");
    char why[200] = "";
    const char *bad = NULL;
    if (!sr_login_str_ok(cur, 300)) bad = "currentPassword", snprintf(why, sizeof why, "a string is required");
    else if (!json_is_string(nw) || strlen(json_string_value(nw)) != json_string_length(nw))
        bad = "newPassword", snprintf(why, sizeof why, "a string is required");
    else if (sr_password_check(&a->conf.pol, json_string_value(nw), why, sizeof why)) {
        bad = "newPassword";
        if (!strncmp(why, "password: ", 10)) memmove(why, why + 10, strlen(why + 10) + 1);
    }
    else if (!strcmp(json_string_value(cur), json_string_value(nw)))
        bad = "newPassword", snprintf(why, sizeof why, "must differ from the current password");
    if (bad) {
        json_decref(b);
        return sr_admin_bad_field(c, bad, why);
    }
    pwchange *p = sr_http_ctx_new(c->req, sizeof *p);
    char *copy = p ? strdup(json_string_value(nw)) : NULL;
    if (!copy) {
        json_decref(b);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    p->h.on_free = pwchange_free;
    p->a = a;
    p->route = c->route;
    p->caller = *cl;
    p->newpw = copy;
    sr_buf_init(&p->lj.stored);
    snprintf(p->lj.secret, sizeof p->lj.secret, "%s", json_string_value(cur));
    json_decref(b);
    sr_login_stored(a->eng, 'u', "", cl->user, &p->lj.stored);
    p->lj.done = pw_checked;
    uint64_t retry_ms = 0;
    int v = sr_loginguard_submit(a->guard, &p->lj, 'u', "", cl->user, cl->source, &retry_ms);
    if (v != SR_LG_OK) {
        memset(p->lj.secret, 0, sizeof p->lj.secret);
        return sr_login_http_refuse(c->req, "user", "", cl->user, cl->source, v, retry_ms);
    }
    p->h.refs++; /* the guard's, until pw_checked */
}

/* ---- users: changes ------------------------------------------------------------ */

int sr_admin_privileged(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                        const char *summary, int rc, sr_buf *change)
{
    /* the two-person rule: a pending change that a second admin approves
     * (api/admin_pending.c); w is answered 202 with it, and 1 returned */
    sr_slog(SR_LOG_INFO, "privilege change requested", "user=%s what=%s", sr_slog_q(w->caller.user),
            sr_slog_q(summary));
    return sr_admin_work_pending(w, scope, scope_id, act, summary, rc, change);
}

/* In work(): events of one command (n slices), durable on return; a refusal in w. */
static int work_submit_n(sr_admin_work *w, int rc, sr_buf *bufs, size_t n)
{
    sr_result res;
    memset(&res, 0, sizeof res);
    if (!rc) {
        sr_slice sl[4];
        for (size_t i = 0; i < n; i++) sl[i] = (sr_slice){bufs[i].data, bufs[i].len};
        rc = sr_engine_submit_wait(w->eng, sl, n, &res);
    }
    for (size_t i = 0; i < n; i++) sr_buf_release(&bufs[i]);
    if (rc) {
        w->code = wire_of_refusal(rc);
        snprintf(w->msg, sizeof w->msg, "%s", res.err.msg[0] ? res.err.msg : sr_wire_msg_of_rc(rc));
    }
    return rc;
}

/* A temporary password (an admin issues it: a new user, a reset): 32 hex
 * digits (128 bits), fewer only if [users] password_max_length is lower. */
static int temp_password(const sr_admin *a, char out[65])
{
    uint8_t raw[16];
    if (sr_random(raw, sizeof raw)) return SR_ECRYPTO;
    sr_hex(raw, sizeof raw, out);
    if (a->conf.pol.max_length < 32) out[a->conf.pol.max_length] = 0;
    memset(raw, 0, sizeof raw);
    return SR_OK;
}

static int is_admin_role(sr_role r)
{
    return r == SR_ROLE_PLATFORM_ADMIN || r == SR_ROLE_OPERATOR_ADMIN || r == SR_ROLE_AP_VENDOR_ADMIN ||
           r == SR_ROLE_GW_VENDOR_ADMIN;
}

/* One change of the user the path names, on the worker queue. */
typedef enum uop { U_CREATE, U_RESET, U_DISABLE, U_ENABLE, U_DELETE, U_ROLES, U_SESSIONS, U_TOTP } uop;

typedef struct uchange {
    sr_admin *a;
    uop op;
    char id[72], name[200];
    sr_user_scope scope;
    char scope_id[72];
    char *roles[SR_ROLE_COUNT];
    size_t nroles;
    int privileged;
} uchange;

static void uchange_free(void *ctx)
{
    uchange *u = ctx;
    for (size_t i = 0; i < u->nroles; i++) free(u->roles[i]);
    free(u);
}

static const char *scope_op(const uchange *u) { return u->scope == SR_US_OPERATOR ? u->scope_id : ""; }

static void uchange_work(sr_admin_work *w, void *ctx)
{
    uchange *u = ctx;
    sr_admin *a = u->a;
    sr_buf b[2];
    sr_buf_init(&b[0]);
    sr_buf_init(&b[1]);
    char why[200] = "", pw[65] = "";
    int64_t now = wall_ms();
    int rc = SR_OK;
    if (u->op != U_CREATE) { /* the user's scope: its events carry its operator */
        sr_rec rec = SR_REC_INIT;
        sr_user cur;
        rc = sr_read_user(w->eng, u->id, &rec, &cur);
        if (!rc && cur.deleted) rc = SR_ENOTFOUND;
        if (!rc) {
            u->scope = cur.scope;
            snprintf(u->scope_id, sizeof u->scope_id, "%s", cur.scope_id);
        }
        sr_rec_close(&rec);
        if (rc) {
            w->code = wire_of_refusal(rc);
            snprintf(w->msg, sizeof w->msg, rc == SR_ENOTFOUND ? "unknown userId %s" : "%s",
                     rc == SR_ENOTFOUND ? u->id : sr_wire_msg_of_rc(rc));
            return;
        }
    }
    sr_cmd_env env = sr_admin_work_env(w, scope_op(u));
    char summary[400];
    switch (u->op) {
    case U_CREATE: {
        if ((rc = temp_password(a, pw))) break;
        sr_user nu;
        memset(&nu, 0, sizeof nu);
        nu.id = u->id;
        nu.name = u->name;
        nu.scope = u->scope;
        nu.scope_id = u->scope_id;
        nu.roles = (const char *const *)u->roles;
        nu.n_roles = u->nroles;
        rc = sr_cmd_user_create(&env, &nu, pw, 1, now, &a->conf.pol, &b[0], why, sizeof why);
        if (rc == SR_EINVAL && why[0]) break;
        if (u->privileged) {
            snprintf(summary, sizeof summary, "create user %s with an admin role", u->id);
            rc = sr_admin_privileged(w, u->scope, u->scope_id, SR_ACT_USERS_MANAGE, summary, rc, &b[0]);
            /* pending: the user exists once approved, with this temporary
             * password, shown this once to the requester */
            if (rc == 1 && w->answer) json_object_set_new(w->answer, "password", json_string(pw));
            if (rc) goto out;
        } else if (sr_admin_work_submit(w, rc, &b[0]))
            goto out;
        rc = SR_OK;
        break;
    }
    case U_RESET:
        if ((rc = temp_password(a, pw))) break;
        rc = sr_cmd_user_password(&env, u->id, pw, 1, now, &a->conf.pol, &b[0], why, sizeof why);
        if (!rc) rc = sr_cmd_user_sessions_revoke(&env, u->id, "password reset", &b[1]);
        if (work_submit_n(w, rc, b, 2)) goto out;
        break;
    case U_DISABLE:
    case U_DELETE:
        rc = sr_cmd_user_state(&env, u->id, u->op == U_DISABLE ? "disabled" : "deleted", NULL, &b[0]);
        if (!rc) rc = sr_cmd_user_sessions_revoke(&env, u->id, u->op == U_DISABLE ? "disabled" : "deleted", &b[1]);
        if (work_submit_n(w, rc, b, 2)) goto out;
        break;
    case U_SESSIONS:
        rc = sr_cmd_user_sessions_revoke(&env, u->id, "revoked by an admin", &b[0]);
        if (sr_admin_work_submit(w, rc, &b[0])) goto out;
        break;
    case U_TOTP:
        rc = sr_cmd_user_totp_set(&env, u->id, (sr_slice){NULL, 0}, &b[0]);
        if (sr_admin_work_submit(w, rc, &b[0])) goto out;
        break;
    case U_ENABLE:
        snprintf(summary, sizeof summary, "enable user %s", u->id);
        rc = sr_admin_privileged(w, u->scope, u->scope_id, SR_ACT_USERS_MANAGE, summary,
                                 sr_cmd_user_state(&env, u->id, "enabled", NULL, &b[0]), &b[0]);
        if (rc) goto out;
        break;
    case U_ROLES: {
        size_t o = (size_t)snprintf(summary, sizeof summary, "set the roles of user %s to", u->id);
        for (size_t i = 0; i < u->nroles && o < sizeof summary; i++)
            o += (size_t)snprintf(summary + o, sizeof summary - o, "%s %s", i ? "," : "", u->roles[i]);
        rc = sr_admin_privileged(w, u->scope, u->scope_id, SR_ACT_USERS_MANAGE, summary,
                                 sr_cmd_user_roles(&env, u->id, (const char *const *)u->roles, u->nroles, NULL, &b[0]),
                                 &b[0]);
        if (rc) goto out;
        break;
    }
    }
    if (rc) {
        w->code = rc == SR_EINVAL ? SR_WIRE_PARAM : wire_of_refusal(rc);
        snprintf(w->msg, sizeof w->msg, "%s", why[0] ? why : sr_wire_msg_of_rc(rc));
        goto out;
    }
    /* the answer: the user as it is now, and a temporary password once */
    sr_rec rec = SR_REC_INIT;
    sr_user now_u;
    if (u->op == U_CREATE || u->op == U_RESET) {
        json_t *o = u->op == U_CREATE && sr_read_user(w->eng, u->id, &rec, &now_u) == SR_OK ? user_json(&now_u)
                                                                                        : json_object();
        json_object_set_new(o, "password", json_string(pw));
        w->answer = o;
        w->status = u->op == U_CREATE ? 201 : 200;
    } else if (u->op == U_ROLES || u->op == U_ENABLE || u->op == U_DISABLE) {
        if (sr_read_user(w->eng, u->id, &rec, &now_u) == SR_OK) w->answer = user_json(&now_u);
        w->status = 200;
    } else
        w->status = 204;
    sr_rec_close(&rec);
out:
    sr_buf_release(&b[0]);
    sr_buf_release(&b[1]);
    memset(pw, 0, sizeof pw);
}

static uchange *uchange_new(const sr_route_call *c, uop op)
{
    uchange *u = calloc(1, sizeof *u);
    if (!u) {
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    u->a = admin_of(c);
    u->op = op;
    const char *id = sr_route_param(c, "userId");
    if (id) snprintf(u->id, sizeof u->id, "%s", id);
    return u;
}

/* roles (a JSON array of role names of kind's scope) into u; 0, or answered 400 */
static int parse_roles(const sr_route_call *c, json_t *roles, sr_user_scope kind, uchange *u)
{
    if (!json_is_array(roles) || !json_array_size(roles) || json_array_size(roles) > SR_ROLE_COUNT) {
        sr_admin_bad_field(c, "roles", "an array of 1 to 8 role names is required");
        return -1;
    }
    sr_scope_kind sk = kind == SR_US_OPERATOR ? SR_SCOPE_OPERATOR : kind == SR_US_VENDOR ? SR_SCOPE_VENDOR : SR_SCOPE_PLATFORM;
    for (size_t i = 0; i < json_array_size(roles); i++) {
        json_t *r = json_array_get(roles, i);
        sr_role role;
        char f[32], why[200];
        snprintf(f, sizeof f, "roles[%zu]", i);
        if (!json_is_string(r) || sr_role_parse(json_string_value(r), &role)) {
            sr_admin_bad_field(c, f, "not a role (platform_admin, operator_admin, operator_general, ap_vendor_admin, "
                                     "ap_vendor_general, gw_vendor_admin, gw_vendor_general, auditor)");
            return -1;
        }
        if (sr_role_scope(role) != sk) {
            snprintf(why, sizeof why, "%s is not a role of this user's scope", json_string_value(r));
            sr_admin_bad_field(c, f, why);
            return -1;
        }
        for (size_t j = 0; j < u->nroles; j++)
            if (!strcmp(u->roles[j], json_string_value(r))) {
                sr_admin_bad_field(c, f, "named twice");
                return -1;
            }
        if (!(u->roles[u->nroles] = strdup(json_string_value(r)))) {
            sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
            return -1;
        }
        u->nroles++;
        if (is_admin_role(role)) u->privileged = 1;
    }
    return 0;
}

/* is (kind, id) a registered operator or vendor (the platform: always) */
static int scope_exists(sr_admin *a, sr_user_scope kind, const char *id)
{
    if (kind == SR_US_PLATFORM) return 1;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int ok = kind == SR_US_OPERATOR ? sr_read_registry(a->eng, id, SR_RG_OPERATOR, id, &r, &re) == SR_OK
                                    : sr_read_registry(a->eng, "", SR_RG_VENDOR, id, &r, &re) == SR_OK;
    sr_rec_close(&r);
    return ok;
}

static void user_create(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    json_t *b = sr_admin_body(c);
    if (!b) return;
    uchange *u = uchange_new(c, U_CREATE);
    if (!u) return json_decref(b);
    json_t *id = json_object_get(b, "id"), *scope = json_object_get(b, "scope"), *name = json_object_get(b, "name");
    json_t *kind = json_object_get(scope, "kind"), *sid = json_object_get(scope, "id");
    static const char *const kinds[] = {"", "platform", "operator", "vendor"};
    int k = 0;
    for (int i = 1; i <= 3 && json_is_string(kind); i++)
        if (!strcmp(json_string_value(kind), kinds[i])) k = i;
    const char *bad = NULL, *why = NULL;
    if (!json_is_string(id) || !sr_id_ok(json_string_value(id), json_string_length(id)))
        bad = "id", why = "an ID of 1 to 64 characters [A-Za-z0-9._-] is required";
    else if (!json_is_object(scope)) bad = "scope", why = "an object {kind, id} is required";
    else if (!k) bad = "scope.kind", why = "platform, operator or vendor";
    else if (k != SR_US_PLATFORM && (!json_is_string(sid) || !sr_id_ok(json_string_value(sid), json_string_length(sid))))
        bad = "scope.id", why = "the operator's or vendor's ID is required";
    else if (k == SR_US_PLATFORM && sid && !json_is_null(sid)) bad = "scope.id", why = "the platform has no ID";
    else if (name && (!json_is_string(name) || json_string_length(name) >= sizeof u->name ||
                      strlen(json_string_value(name)) != json_string_length(name)))
        bad = "name", why = "a string of at most 199 bytes";
    if (bad) {
        sr_admin_bad_field(c, bad, why);
        uchange_free(u);
        return json_decref(b);
    }
    snprintf(u->id, sizeof u->id, "%s", json_string_value(id));
    snprintf(u->name, sizeof u->name, "%s", name ? json_string_value(name) : u->id);
    u->scope = (sr_user_scope)k;
    snprintf(u->scope_id, sizeof u->scope_id, "%s", k == SR_US_PLATFORM ? "" : json_string_value(sid));
    if (parse_roles(c, json_object_get(b, "roles"), u->scope, u)) {
        uchange_free(u);
        return json_decref(b);
    }
    json_decref(b);
    /* the action on the new user's scope, then whether that scope exists
     * (so that a caller learns nothing of scopes it may not manage) */
    sr_authz_target t = {u->scope == SR_US_OPERATOR ? u->scope_id : NULL, u->scope == SR_US_VENDOR ? u->scope_id : NULL,
                         false};
    if (!sr_admin_authorize(c, SR_ACT_USERS_MANAGE, &t)) return uchange_free(u);
    if (!scope_exists(a, u->scope, u->scope_id)) {
        sr_admin_bad_field(c, "scope.id", u->scope == SR_US_OPERATOR ? "not a registered operator" : "not a registered vendor");
        return uchange_free(u);
    }
    sr_admin_run(c, uchange_work, u, uchange_free);
}

/* the routes on /admin/v1/users/{userId}/...: the dispatcher checked
 * users.manage on the user's scope */
static void user_change(const sr_route_call *c, uop op)
{
    const sr_admin_caller *cl = caller_of(c);
    const char *id = sr_route_param(c, "userId");
    if (!id) return sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "unknown userId", NULL);
    if ((op == U_DISABLE || op == U_DELETE || op == U_ROLES || op == U_ENABLE) && !strcmp(id, cl->user))
        return refuse(c, 0, SR_WIRE_CONFLICT,
                      "an admin does not change its own state or roles: another admin of the scope does", NULL);
    uchange *u = uchange_new(c, op);
    if (!u) return;
    if (op == U_ROLES) {
        json_t *b = sr_admin_body(c);
        if (!b) return uchange_free(u);
        /* the user's scope kind for the roles' check (the engine checks again) */
        sr_rec rec = SR_REC_INIT;
        sr_user cur;
        int rc = sr_read_user(admin_of(c)->eng, id, &rec, &cur);
        sr_user_scope kind = rc ? SR_US_PLATFORM : cur.scope;
        sr_rec_close(&rec);
        if (rc) {
            json_decref(b);
            uchange_free(u);
            return sr_http_result(c->req, 0, sr_wire_of_rc(rc), rc == SR_ENOTFOUND ? "unknown userId" : sr_wire_msg_of_rc(rc),
                                  NULL);
        }
        int bad = parse_roles(c, json_object_get(b, "roles"), kind, u);
        json_decref(b);
        if (bad) return uchange_free(u);
    }
    sr_admin_run(c, uchange_work, u, uchange_free);
}

static void user_reset(const sr_route_call *c) { user_change(c, U_RESET); }
static void user_disable(const sr_route_call *c) { user_change(c, U_DISABLE); }
static void user_enable(const sr_route_call *c) { user_change(c, U_ENABLE); }
static void user_delete(const sr_route_call *c) { user_change(c, U_DELETE); }
static void user_roles(const sr_route_call *c) { user_change(c, U_ROLES); }
static void user_sessions(const sr_route_call *c) { user_change(c, U_SESSIONS); }
static void user_totp_reset(const sr_route_call *c) { user_change(c, U_TOTP); }

/* ---- operators and vendors (the platform's: tenants.manage) --------------------- */

static json_t *tenant_json(const sr_reg_entry *re)
{
    json_t *o = json_pack("{s:s,s:s}", "id", re->id, "name", re->name);
    if (re->kind == SR_RG_VENDOR) json_object_set_new(o, "kind", json_string(re->vendor_kind));
    return o;
}

/* op "" and kind vendor: the vendors; kind operator: every operator */
static void tenants_list(const sr_route_call *c, sr_reg_kind kind)
{
    sr_admin *a = admin_of(c);
    sr_rec rec = SR_REC_INIT;
    int rc = kind == SR_RG_OPERATOR ? sr_list_operators(a->eng, &rec) : sr_list_registry(a->eng, "", kind, &rec);
    json_t *items = json_array();
    sr_reg_entry re;
    while (!rc && (rc = sr_rec_next_registry(&rec, &re)) == 1) {
        json_array_append_new(items, tenant_json(&re));
        rc = 0;
    }
    answer_items(c, &rec, rc, items);
}

static int tenant_read(sr_admin *a, sr_reg_kind kind, const char *id, sr_rec *r, sr_reg_entry *re)
{
    if (!id) return SR_ENOTFOUND;
    return sr_read_registry(a->eng, kind == SR_RG_OPERATOR ? id : "", kind, id, r, re);
}

static void tenant_get(const sr_route_call *c, sr_reg_kind kind, const char *param)
{
    sr_rec rec = SR_REC_INIT;
    sr_reg_entry re;
    int rc = tenant_read(admin_of(c), kind, sr_route_param(c, param), &rec, &re);
    if (rc) {
        sr_rec_close(&rec);
        char m[80];
        snprintf(m, sizeof m, "unknown %s", param);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), rc == SR_ENOTFOUND ? m : sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *o = tenant_json(&re);
    sr_rec_close(&rec);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* POST (create: id, name, kind for a vendor) or PUT (the name) */
static void tenant_put(const sr_route_call *c, sr_reg_kind kind, const char *param)
{
    sr_admin *a = admin_of(c);
    json_t *b = sr_admin_body(c);
    if (!b) return;
    const char *pid = param ? sr_route_param(c, param) : NULL;
    json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name"), *vk = json_object_get(b, "kind");
    const char *bad = NULL, *why = NULL;
    if (!param && (!json_is_string(id) || !sr_id_ok(json_string_value(id), json_string_length(id))))
        bad = "id", why = "an ID of 1 to 64 characters [A-Za-z0-9._-] is required";
    else if (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > 200 ||
             strlen(json_string_value(name)) != json_string_length(name))
        bad = "name", why = "a string of 1 to 200 bytes is required";
    else if (!param && kind == SR_RG_VENDOR &&
             (!json_is_string(vk) || (strcmp(json_string_value(vk), "ap") && strcmp(json_string_value(vk), "gw"))))
        bad = "kind", why = "ap or gw";
    else if (param && (id || vk)) bad = id ? "id" : "kind", why = "cannot be changed";
    if (bad) {
        json_decref(b);
        return sr_admin_bad_field(c, bad, why);
    }
    const char *tid = param ? pid : json_string_value(id);
    sr_rec rec = SR_REC_INIT;
    sr_reg_entry re;
    int rc = tenant_read(a, kind, tid, &rec, &re);
    char vkind[4] = "";
    if (!rc) snprintf(vkind, sizeof vkind, "%s", re.vendor_kind);
    sr_rec_close(&rec);
    if (!param && rc == SR_OK) {
        json_decref(b);
        return refuse(c, 0, SR_WIRE_CONFLICT, kind == SR_RG_OPERATOR ? "id: this operator exists" : "id: this vendor exists",
                      NULL);
    }
    if (param && rc) {
        json_decref(b);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), rc == SR_ENOTFOUND ? "unknown ID" : sr_wire_msg_of_rc(rc), NULL);
    }
    sr_reg_entry ne;
    memset(&ne, 0, sizeof ne);
    ne.kind = kind;
    ne.id = tid;
    ne.name = json_string_value(name);
    ne.vendor_kind = kind == SR_RG_VENDOR ? (param ? vkind : json_string_value(vk)) : "";
    sr_buf eb;
    sr_buf_init(&eb);
    sr_cmd_env env = sr_admin_env(c, kind == SR_RG_OPERATOR ? tid : "");
    json_t *ans = tenant_json(&ne);
    rc = sr_cmd_registry_put(&env, &ne, &eb);
    json_decref(b);
    sr_admin_submit(c, rc, &eb, param ? 200 : 201, ans);
}

/* an operator still holding gateways, apps or users, or a vendor still
 * linked or holding users, is not deleted (409 naming one) */
static int tenant_in_use(sr_admin *a, sr_reg_kind kind, const char *id, char *why, size_t wl)
{
    sr_rec r = SR_REC_INIT;
    sr_user u;
    int rc = sr_list_users(a->eng, &r), used = 0;
    sr_user_scope us = kind == SR_RG_OPERATOR ? SR_US_OPERATOR : SR_US_VENDOR;
    while (!rc && !used && sr_rec_next_user(&r, &u) == 1)
        if (!u.deleted && u.scope == us && !strcmp(u.scope_id, id))
            used = 1, snprintf(why, wl, "user %s belongs to it (delete it first)", u.id);
    sr_rec_close(&r);
    if (rc) return rc;
    if (used) return 1;
    /* gateways, apps and vendor grants: the operator's own, or any
     * operator's linked to (granting) the vendor */
    sr_rec ops = SR_REC_INIT;
    sr_reg_entry o;
    if (kind == SR_RG_OPERATOR) rc = SR_OK;
    else rc = sr_list_operators(a->eng, &ops);
    int more = kind == SR_RG_OPERATOR ? 1 : 0;
    while (!rc && !used) {
        const char *op;
        if (kind == SR_RG_OPERATOR) {
            if (!more--) break;
            op = id;
        } else {
            if (sr_rec_next_registry(&ops, &o) != 1) break;
            op = o.id;
        }
        static const sr_reg_kind kinds[] = {SR_RG_GATEWAY, SR_RG_APP, SR_RG_VENDOR_GRANT};
        static const char *const names[] = {"gateway", "app", "vendor grant"};
        for (int k = 0; k < 3 && !used && !rc; k++) {
            sr_rec l = SR_REC_INIT;
            sr_reg_entry e;
            rc = sr_list_registry(a->eng, op, kinds[k], &l);
            while (!rc && !used && sr_rec_next_registry(&l, &e) == 1)
                if (kind == SR_RG_OPERATOR || !strcmp(e.vendor_id, id))
                    used = 1, snprintf(why, wl, "%s %s of operator %s %s", names[k], e.id, op,
                                       kind == SR_RG_OPERATOR ? "is registered (delete it first)"
                                       : k == 2              ? "grants it access (the operator revokes it first)"
                                                             : "is linked to it (unlink it first)");
            sr_rec_close(&l);
        }
    }
    sr_rec_close(&ops);
    return rc ? rc : used;
}

static void tenant_delete(const sr_route_call *c, sr_reg_kind kind, const char *param)
{
    sr_admin *a = admin_of(c);
    const char *id = sr_route_param(c, param);
    sr_rec rec = SR_REC_INIT;
    sr_reg_entry re;
    int rc = tenant_read(a, kind, id, &rec, &re);
    sr_rec_close(&rec);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), rc == SR_ENOTFOUND ? "unknown ID" : sr_wire_msg_of_rc(rc), NULL);
    char why[300], m[400];
    rc = tenant_in_use(a, kind, id, why, sizeof why);
    if (rc < 0) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    if (rc) {
        snprintf(m, sizeof m, "%s %s is in use: %s", kind == SR_RG_OPERATOR ? "operator" : "vendor", id, why);
        return refuse(c, 0, SR_WIRE_CONFLICT, m, NULL);
    }
    sr_buf eb;
    sr_buf_init(&eb);
    sr_cmd_env env = sr_admin_env(c, kind == SR_RG_OPERATOR ? id : "");
    sr_admin_submit(c, sr_cmd_registry_delete(&env, kind, id, &eb), &eb, 204, NULL);
}

static void operators_list(const sr_route_call *c) { tenants_list(c, SR_RG_OPERATOR); }
static void operator_create(const sr_route_call *c) { tenant_put(c, SR_RG_OPERATOR, NULL); }
static void operator_get(const sr_route_call *c) { tenant_get(c, SR_RG_OPERATOR, "operatorId"); }
static void operator_put(const sr_route_call *c) { tenant_put(c, SR_RG_OPERATOR, "operatorId"); }
static void operator_delete(const sr_route_call *c) { tenant_delete(c, SR_RG_OPERATOR, "operatorId"); }
static void vendors_list(const sr_route_call *c) { tenants_list(c, SR_RG_VENDOR); }
static void vendor_create(const sr_route_call *c) { tenant_put(c, SR_RG_VENDOR, NULL); }
static void vendor_get(const sr_route_call *c) { tenant_get(c, SR_RG_VENDOR, "vendorId"); }
static void vendor_put(const sr_route_call *c) { tenant_put(c, SR_RG_VENDOR, "vendorId"); }
static void vendor_delete(const sr_route_call *c) { tenant_delete(c, SR_RG_VENDOR, "vendorId"); }

/* ---- TOTP enrolment --------------------------------------------------------------- */

/* POST /admin/v1/me/totp makes a secret and keeps it here, by the session's
 * token hash, until PUT /admin/v1/me/totp confirms it with a code (then it
 * is sealed and stored: totp_set, and the code's step: totp_step, one
 * command) or ENROL_TTL_MS passes. In memory only: a restart forgets an
 * unconfirmed enrolment (the user starts again). At most ENROLS_MAX. */
enum { ENROL_TTL_MS = 10 * 60 * 1000, ENROLS_MAX = 1024 };

struct enrol {
    uint8_t token_hash[32];
    uint8_t secret[SR_TOTP_SECRET_LEN];
    int64_t expires;
};

static struct enrol *enrol_find(sr_admin *a, const uint8_t h[32], int64_t now)
{
    for (size_t i = 0; i < a->nenrols;) {
        if (a->enrols[i].expires <= now) { /* expired: dropped */
            memset(&a->enrols[i], 0, sizeof a->enrols[i]);
            a->enrols[i] = a->enrols[--a->nenrols];
            continue;
        }
        if (!memcmp(a->enrols[i].token_hash, h, 32)) return &a->enrols[i];
        i++;
    }
    return NULL;
}

static void enrol_drop(sr_admin *a, struct enrol *e)
{
    memset(e, 0, sizeof *e);
    *e = a->enrols[--a->nenrols];
}

static void me_totp_start(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const sr_admin_caller *cl = caller_of(c);
    int64_t now = wall_ms();
    sr_rec rec = SR_REC_INIT;
    sr_user u;
    int rc = sr_read_user(a->eng, cl->user, &rec, &u);
    int enrolled = !rc && u.totp_secret_sealed.len;
    sr_rec_close(&rec);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    if (enrolled)
        return refuse(c, 0, SR_WIRE_CONFLICT,
                      "a one-time password is enrolled already; an admin removes it first (DELETE "
                      "/admin/v1/users/{userId}/totp)",
                      NULL);
    struct enrol *e = enrol_find(a, cl->token_hash, now);
    if (!e) {
        if (a->nenrols == ENROLS_MAX)
            return sr_http_result(c->req, 0, SR_WIRE_BUSY, "busy: too many enrolments under way; retry later", NULL);
        if (!a->enrols && !(a->enrols = calloc(ENROLS_MAX, sizeof *a->enrols)))
            return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        e = &a->enrols[a->nenrols++];
        memcpy(e->token_hash, cl->token_hash, 32);
    }
    /* a new secret each time: the last one asked for is the one to confirm */
    if (sr_totp_secret(e->secret)) {
        enrol_drop(a, e);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "no randomness for a secret", NULL);
    }
    e->expires = now + ENROL_TTL_MS;
    char uri[SR_TOTP_URI_MAX], b32[64];
    sr_base32(e->secret, SR_TOTP_SECRET_LEN, b32, 0);
    if (sr_totp_uri("suiro", cl->user, e->secret, SR_TOTP_SECRET_LEN, uri, sizeof uri)) {
        enrol_drop(a, e);
        return sr_admin_bad_field(c, "userId", "cannot be an otpauth:// account name (a ':' in it)");
    }
    char exp[32];
    sr_rfc3339_format(e->expires, exp);
    json_t *o = json_pack("{s:s,s:s,s:s}", "uri", uri, "secret", b32, "confirmBy", exp);
    sr_http_jsonv(c->req, 201, o);
    json_decref(o);
    memset(b32, 0, sizeof b32);
    memset(uri, 0, sizeof uri);
}

static void me_totp_confirm(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const sr_admin_caller *cl = caller_of(c);
    json_t *b = sr_admin_body(c);
    if (!b) return;
    json_t *code = json_object_get(b, "code");
    int64_t now = wall_ms();
    struct enrol *e = enrol_find(a, cl->token_hash, now);
    uint64_t step = 0;
    int rc = json_is_string(code) ? sr_totp_verify(e ? e->secret : (const uint8_t *)"", e ? SR_TOTP_SECRET_LEN : 0,
                                                   json_string_value(code), json_string_length(code), now / 1000, 0,
                                                   &step)
                                  : SR_EINVAL;
    json_decref(b);
    if (!e) return refuse(c, 0, SR_WIRE_UNKNOWN, "no enrolment under way for this session: POST /admin/v1/me/totp first", NULL);
    if (rc == SR_EINVAL) return sr_admin_bad_field(c, "code", "the 6 digits the authenticator shows are required");
    if (rc) return sr_admin_bad_field(c, "code", "not the code of the enrolled secret now");
    uint8_t sealed[SEAL_MAX];
    size_t slen = 0;
    rc = totp_seal(a, cl->user, e->secret, SR_TOTP_SECRET_LEN, sealed, &slen);
    enrol_drop(a, e);
    if (rc) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "cannot seal the secret", NULL);
    sr_buf b1, b2;
    sr_buf_init(&b1);
    sr_buf_init(&b2);
    sr_cmd_env env = sr_admin_env(c, cl->op);
    rc = sr_cmd_user_totp_set(&env, cl->user, (sr_slice){sealed, slen}, &b1);
    if (!rc) rc = sr_cmd_user_totp_step(&env, cl->user, (int64_t)step, &b2);
    memset(sealed, 0, sizeof sealed);
    if (!rc) {
        sjob *j = sjob_new(c, 200, json_pack("{s:b}", "totpEnrolled", 1));
        sr_slice sl[2] = {{b1.data, b1.len}, {b2.data, b2.len}};
        if (j) sjob_submit(j, sl, 2);
    } else
        sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    sr_buf_release(&b1);
    sr_buf_release(&b2);
}

/* ---- the login policy ----------------------------------------------------------- */

/* The login policy (docs/admin.md "The login policy"): TOTP is required of
 * a user holding a role the platform's policy names, or of a user of an
 * operator whose policy requires it. Read live (a LoginPolicy event changes
 * it for the very next request). */
static int totp_required(sr_admin *a, const sr_user *u)
{
    sr_rec r = SR_REC_INIT;
    sr_login_policy_rec p;
    int req = 0;
    if (sr_read_login_policy(a->eng, "", &r, &p) == SR_OK)
        for (size_t i = 0; i < p.n_totp_roles && !req; i++)
            for (size_t j = 0; j < u->n_roles && !req; j++) req = !strcmp(p.totp_roles[i], u->roles[j]);
    if (!req && u->scope == SR_US_OPERATOR && sr_read_login_policy(a->eng, u->scope_id, &r, &p) == SR_OK)
        req = p.totp_required;
    sr_rec_close(&r);
    return req;
}

/* the policy of op as JSON members into o */
static void policy_json(sr_engine *e, const char *op, json_t *o)
{
    sr_rec r = SR_REC_INIT;
    sr_login_policy_rec p;
    memset(&p, 0, sizeof p);
    int rc = sr_read_login_policy(e, op, &r, &p);
    if (!op[0]) {
        json_t *roles = json_array();
        for (size_t i = 0; !rc && i < p.n_totp_roles; i++) json_array_append_new(roles, json_string(p.totp_roles[i]));
        json_object_set_new(o, "totpRoles", roles);
    } else
        json_object_set_new(o, "totpRequired", json_boolean(!rc && p.totp_required));
    sr_rec_close(&r);
}

/* the policy's scope of the caller: "" the platform (a platform admin), its
 * operator (an operator admin); NULL (answered 403) for anyone else */
static const char *policy_scope(const sr_route_call *c)
{
    const sr_admin_caller *cl = caller_of(c);
    if (cl->scope == SR_SCOPE_VENDOR) {
        refuse(c, 0, SR_WIRE_FORBIDDEN, "forbidden: the login policy is the platform's or an operator's", NULL);
        return NULL;
    }
    sr_authz_target t = own_scope(cl);
    if (!sr_admin_authorize(c, SR_ACT_USERS_MANAGE, &t)) return NULL;
    return cl->scope == SR_SCOPE_OPERATOR ? cl->scope_id : "";
}

static void policy_get(const sr_route_call *c)
{
    sr_admin *a = admin_of(c);
    const char *op = policy_scope(c);
    if (!op) return;
    json_t *o = json_object();
    if (!op[0]) {
        json_object_set_new(o, "scope", json_pack("{s:s}", "kind", "platform"));
        policy_json(a->eng, "", o);
        /* the operators' */
        json_t *ops = json_array();
        sr_rec r = SR_REC_INIT;
        sr_reg_entry re;
        int rc = sr_list_operators(a->eng, &r);
        while (!rc && sr_rec_next_registry(&r, &re) == 1) {
            json_t *x = json_pack("{s:s}", "operatorId", re.id);
            policy_json(a->eng, re.id, x);
            json_array_append_new(ops, x);
        }
        sr_rec_close(&r);
        json_object_set_new(o, "operators", ops);
    } else {
        json_object_set_new(o, "scope", json_pack("{s:s,s:s}", "kind", "operator", "id", op));
        policy_json(a->eng, op, o);
        json_t *plat = json_object();
        policy_json(a->eng, "", plat);
        json_object_set(o, "platformTotpRoles", json_object_get(plat, "totpRoles"));
        json_decref(plat);
    }
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

typedef struct pchange {
    char op[72];
    char *roles[SR_ROLE_COUNT];
    size_t nroles;
    int required;
} pchange;

static void pchange_free(void *ctx)
{
    pchange *p = ctx;
    for (size_t i = 0; i < p->nroles; i++) free(p->roles[i]);
    free(p);
}

/* Is the new policy weaker than the stored one (a privilege change, R-ID-5):
 * a role the platform's names no longer named, an operator's requirement
 * dropped. */
static int policy_weakens(sr_engine *e, const pchange *p)
{
    sr_rec r = SR_REC_INIT;
    sr_login_policy_rec old;
    int weak = 0;
    if (sr_read_login_policy(e, p->op, &r, &old) == SR_OK) {
        if (p->op[0]) weak = old.totp_required && !p->required;
        for (size_t i = 0; !p->op[0] && i < old.n_totp_roles && !weak; i++) {
            int kept = 0;
            for (size_t j = 0; j < p->nroles && !kept; j++) kept = !strcmp(old.totp_roles[i], p->roles[j]);
            weak = !kept;
        }
    }
    sr_rec_close(&r);
    return weak;
}

static void policy_work(sr_admin_work *w, void *ctx)
{
    pchange *p = ctx;
    sr_buf b;
    sr_buf_init(&b);
    sr_login_policy_rec np = {(const char *const *)p->roles, p->nroles, p->required};
    sr_cmd_env env = sr_admin_work_env(w, p->op);
    int rc = sr_cmd_login_policy(&env, &np, &b);
    if (policy_weakens(w->eng, p)) {
        char summary[200];
        snprintf(summary, sizeof summary, "weaken the login policy of %s%s", p->op[0] ? "operator " : "the platform",
                 p->op);
        rc = sr_admin_privileged(w, p->op[0] ? SR_US_OPERATOR : SR_US_PLATFORM, p->op, SR_ACT_USERS_MANAGE, summary, rc,
                                 &b);
    } else
        rc = sr_admin_work_submit(w, rc, &b);
    if (rc) return; /* refused (in w), or a pending change answered */
    json_t *o = json_object();
    policy_json(w->eng, p->op, o);
    w->answer = o;
    w->status = 200;
}

static void policy_put(const sr_route_call *c)
{
    const char *op = policy_scope(c);
    if (!op) return;
    json_t *b = sr_admin_body(c);
    if (!b) return;
    pchange *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(b);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    snprintf(p->op, sizeof p->op, "%s", op);
    json_t *roles = json_object_get(b, "totpRoles"), *req = json_object_get(b, "totpRequired");
    const char *bad = NULL;
    char why[200] = "", f[40];
    if (!op[0]) {
        if (req) bad = "totpRequired", snprintf(why, sizeof why, "an operator's policy; the platform's is totpRoles");
        else if (!json_is_array(roles) || json_array_size(roles) > SR_ROLE_COUNT)
            bad = "totpRoles", snprintf(why, sizeof why, "an array of at most 8 role names is required");
        for (size_t i = 0; !bad && i < json_array_size(roles); i++) {
            json_t *r = json_array_get(roles, i);
            sr_role role;
            snprintf(f, sizeof f, "totpRoles[%zu]", i);
            if (!json_is_string(r) || sr_role_parse(json_string_value(r), &role))
                bad = f, snprintf(why, sizeof why, "not a role");
            for (size_t j = 0; !bad && j < p->nroles; j++)
                if (!strcmp(p->roles[j], json_string_value(r))) bad = f, snprintf(why, sizeof why, "named twice");
            if (!bad && !(p->roles[p->nroles++] = strdup(json_string_value(r))))
                bad = "totpRoles", snprintf(why, sizeof why, "out of memory");
        }
    } else {
        if (roles) bad = "totpRoles", snprintf(why, sizeof why, "the platform's policy; an operator's is totpRequired");
        else if (!json_is_boolean(req)) bad = "totpRequired", snprintf(why, sizeof why, "true or false is required");
        else p->required = json_is_true(req);
    }
    if (bad) {
        json_decref(b);
        pchange_free(p);
        return sr_admin_bad_field(c, bad, why);
    }
    json_decref(b);
    sr_admin_run(c, policy_work, p, pchange_free);
}

/* ---- open, close -------------------------------------------------------------- */

int sr_admin_open(uv_loop_t *loop, sr_engine *eng, sr_loginguard *guard, sr_admin **out)
{
    sr_admin *a = calloc(1, sizeof *a);
    if (!a) return SR_ENOMEM;
    a->eng = eng;
    a->loop = loop;
    a->guard = guard;
    sr_admin_conf_default(&a->conf);
    sr_workq_limits wl;
    sr_workq_limits_default(&wl);
    int rc = sr_workq_new(loop, &wl, &a->own_wq);
    if (rc) {
        free(a);
        return rc;
    }
    a->wq = a->own_wq;
    sr_loopq_init(&a->doneq, loop, on_done, a);
    *out = a;
    return SR_OK;
}

void sr_admin_set_conf(sr_admin *a, sr_workq *wq, const sr_admin_conf *c)
{
    if (!a) return;
    a->conf = *c;
    sr_admin_pending_ttl(c->pending_ttl_s);
    sr_admin_pending_clock(c->clock_ms);
    if (wq && a->wq == a->own_wq && !sr_workq_pending(a->own_wq, NULL)) {
        sr_workq_free(a->own_wq);
        a->own_wq = NULL;
        a->wq = wq;
    }
}

void sr_admin_quiesce(sr_admin *a)
{
    if (a) a->closing = 1;
}

size_t sr_admin_busy(sr_admin *a) { return a ? a->busy : 0; }

void sr_admin_free(sr_admin *a)
{
    if (!a) return;
    sr_loopq_drain(&a->doneq);
    sr_loopq_destroy(&a->doneq);
    if (a->own_wq) sr_workq_free(a->own_wq);
    if (a->enrols) memset(a->enrols, 0, a->nenrols * sizeof *a->enrols);
    free(a->enrols);
    free(a);
}

/* ---- the routes ---------------------------------------------------------------- */

#define ACT(x) (1 + SR_ACT_##x)

/* The Admin API's core routes (api/routes.h, admin_int.h); docs/admin.md
 * lists each with its action. */
const sr_route sr_admin_routes[] = {
    {"POST", "/admin/v1/sessions", session_open, SR_CALLER_NONE, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"DELETE", "/admin/v1/sessions/current", session_close, SR_CALLER_USER, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/me", me, SR_CALLER_USER, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"PUT", "/admin/v1/me/password", me_password, SR_CALLER_USER, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"POST", "/admin/v1/me/totp", me_totp_start, SR_CALLER_USER, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"PUT", "/admin/v1/me/totp", me_totp_confirm, SR_CALLER_USER, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"GET", "/admin/v1/users", users_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/users/{userId}", user_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(USERS_MANAGE), SR_FWD_NONE},
    {"POST", "/admin/v1/users", user_create, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"POST", "/admin/v1/users/{userId}/password-reset", user_reset, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"POST", "/admin/v1/users/{userId}/disable", user_disable, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"POST", "/admin/v1/users/{userId}/enable", user_enable, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"DELETE", "/admin/v1/users/{userId}", user_delete, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"PUT", "/admin/v1/users/{userId}/roles", user_roles, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"DELETE", "/admin/v1/users/{userId}/sessions", user_sessions, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"DELETE", "/admin/v1/users/{userId}/totp", user_totp_reset, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(USERS_MANAGE), SR_FWD_PLATFORM},
    {"GET", "/admin/v1/login-policy", policy_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"PUT", "/admin/v1/login-policy", policy_put, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"GET", "/admin/v1/operators", operators_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"POST", "/admin/v1/operators", operator_create, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_PLATFORM},
    {"GET", "/admin/v1/operators/{operatorId}", operator_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}", operator_put, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}", operator_delete, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/vendors", vendors_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"POST", "/admin/v1/vendors", vendor_create, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_PLATFORM},
    {"GET", "/admin/v1/vendors/{vendorId}", vendor_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"PUT", "/admin/v1/vendors/{vendorId}", vendor_put, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_PLATFORM},
    {"DELETE", "/admin/v1/vendors/{vendorId}", vendor_delete, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_PLATFORM},
};
const size_t sr_admin_nroutes = sizeof sr_admin_routes / sizeof sr_admin_routes[0];
