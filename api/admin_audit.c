/* api/admin_audit.c -- /admin/v1: the audit trail (R-SE-5, issue #14;
 * docs/admin.md "Audit"): the refused admin operations as events
 * (sr_admin_audit_op, AdminEvent) and the one route that reads the trail,
 * GET /admin/v1/audit/events, for the auditor (every operator and the
 * platform) and an operator's admins (their own operator: the role table's
 * audit.read). Its route table (api/admin_int.h); the dispatcher is
 * api/admin_http.c.
 *
 * The trail is the engine's `audit` index (engine/audit.c): one row per
 * event that is not data, keyed by time, so a query is one range read of
 * its window (sr_list_audit), never a scan of the log.
 *
 * GET /admin/v1/state?at=T[&operator=] (issue #18, R-RE-2; docs/state.md):
 * the state at a past time, under the same rule (audit.read, invariant 1),
 * built on the worker queue (it replays the log: engine/state.c) and
 * written by api/state.c, the writer `suiro state` prints with.
 *
 * INVARIANTS
 *  (1) An operator admin reads only rows of its own operator: the query's
 *      operator is forced to it, and naming another is 403 (and audited).
 *  (2) A refusal's event is fire and forget: the answer never waits for it
 *      (a failure to store it is a log line). An unauthenticated request
 *      makes no event (no one's operation; a flood of them must not be a
 *      flood of events -- failed logins are the login guard's, throttled).
 */
#include "api/admin_http.h"
#include "api/admin_int.h"

#include "api/slog.h"
#include "api/state.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- refused operations as events ----------------------------------------- */

static void op_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "admin audit event not stored", "error=%s", sr_err_name(r->rc));
}

/* the segment after prefix in path ("" if none), into out */
static void segment_after(const char *path, const char *prefix, char *out, size_t cap)
{
    out[0] = 0;
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl)) return;
    const char *s = path + pl, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n < cap) {
        memcpy(out, s, n);
        out[n] = 0;
    }
}

void sr_admin_audit_op(const sr_route_call *c, const char *outcome, sr_wire code, const char *msg)
{
    const sr_admin_caller *cl = c->caller;
    if (!cl || !c->binding) return; /* (2) */
    sr_engine *eng = sr_admin_engine(c);
    if (!eng) return;
    char path[600] = "", op[72] = "", user[72] = "";
    if (c->req) snprintf(path, sizeof path, "%.*s", (int)c->req->path_normalized.len, c->req->path_normalized.base);
    /* the operator the request names: an operator's route, a user of an
     * operator, or the query's `operator` (the audit route's) */
    segment_after(path, "/admin/v1/operators/", op, sizeof op);
    segment_after(path, "/admin/v1/users/", user, sizeof user);
    if (!op[0] && user[0]) {
        sr_rec r = SR_REC_INIT;
        sr_user u;
        if (sr_read_user(eng, user, &r, &u) == SR_OK && u.scope == SR_US_OPERATOR)
            snprintf(op, sizeof op, "%s", u.scope_id);
        sr_rec_close(&r);
    }
    if (!op[0] && c->req && !sr_http_query(c->req, "operator", op, sizeof op)) op[0] = 0; /* a query's operator */
    if (!op[0]) snprintf(op, sizeof op, "%s", cl->op);
    const sr_route *rt = c->route;
    const char *action = rt && rt->action > 0 && rt->action <= SR_ACT_COUNT
                             ? sr_authz_action_name((sr_authz_action)(rt->action - 1))
                             : "";
    sr_admin_op a = {.method = rt ? rt->method : "", .route = rt ? rt->path : "", .target = path[0] ? path : "",
                     .action = action ? action : "", .outcome = outcome,
                     .code = code == SR_WIRE_OK ? "" : sr_wire_code(code), .message = msg ? msg : "",
                     .status = code == SR_WIRE_OK ? 200u : (unsigned)sr_wire_status(code)};
    sr_cmd_env env = {op, cl->user, SR_ACTOR_USER, NULL, cl->source};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_admin_op(&env, &a, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit(eng, &sl, 1, op_done, NULL);
    }
    if (rc) sr_slog(SR_LOG_WARN, "admin audit event not queued", "user=%s error=%s", sr_slog_q(cl->user), sr_err_name(rc));
    sr_buf_release(&b);
}

/* ---- GET /admin/v1/audit/events --------------------------------------------- */

enum { LIMIT_DEFAULT = 100, LIMIT_MAX = 1000 };

/* a kind list: names of [a-z_], comma-separated */
static int kinds_ok(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (*p == ',' && p != s && p[1] && p[1] != ','))) return 0;
    return 1;
}

/* a time: RFC 3339 or UTC ms */
static int time_param(const sr_route_call *c, const char *name, int64_t *out)
{
    char v[64];
    if (!sr_http_query(c->req, name, v, sizeof v)) return 0;
    char *end;
    long long ms = strtoll(v, &end, 10);
    if (v[0] && !*end && ms >= 0) *out = ms;
    else if (sr_rfc3339_parse(v, strlen(v), out)) {
        sr_admin_bad_field(c, name, "an RFC 3339 time (2026-12-06T00:00:00Z) or UTC milliseconds");
        return -1;
    }
    return 1;
}

static void audit_events(const sr_route_call *c)
{
    const sr_admin_caller *cl = c->caller;
    sr_audit_query q = {.limit = LIMIT_DEFAULT};
    char opq[72], actor[72], kind[200], lim[16], after[48];
    if (time_param(c, "from", &q.from_ms) < 0 || time_param(c, "to", &q.to_ms) < 0) return;
    if (q.to_ms && q.to_ms < q.from_ms) return sr_admin_bad_field(c, "to", "before from");
    int has_op = sr_http_query(c->req, "operator", opq, sizeof opq);
    if (sr_http_query(c->req, "actor", actor, sizeof actor)) {
        if (!actor[0]) return sr_admin_bad_field(c, "actor", "empty");
        q.actor = actor;
    }
    if (sr_http_query(c->req, "kind", kind, sizeof kind)) {
        if (!kinds_ok(kind))
            return sr_admin_bad_field(c, "kind", "kinds (login, login_failed, session, logout, user, registry, master, "
                                                 "key, admin, ...), comma-separated");
        q.kind = kind;
    }
    if (sr_http_query(c->req, "limit", lim, sizeof lim)) {
        char *end;
        long n = strtol(lim, &end, 10);
        if (!lim[0] || *end || n < 1 || n > LIMIT_MAX) return sr_admin_bad_field(c, "limit", "an integer 1..1000");
        q.limit = (size_t)n;
    }
    if (sr_http_query(c->req, "after", after, sizeof after)) {
        long long ms;
        unsigned long long seq;
        int n = -1;
        if (sscanf(after, "%lld.%llu%n", &ms, &seq, &n) != 2 || n != (int)strlen(after) || !seq)
            return sr_admin_bad_field(c, "after", "the cursor of the previous page (its \"next\")");
        q.after_ms = ms;
        q.after_seq = seq;
    }
    /* who may read what (invariant 1): the operator asked for, else the
     * caller's own operator for an operator's user, else the platform */
    sr_authz_target t = {0};
    if (has_op) t.operator_id = opq;
    else if (cl->scope == SR_SCOPE_OPERATOR) t.operator_id = cl->scope_id;
    if (!sr_admin_authorize(c, SR_ACT_AUDIT_READ, &t)) return;
    if (t.operator_id) q.op = t.operator_id;

    sr_rec r = SR_REC_INIT;
    int more = 0;
    int rc = sr_list_audit(sr_admin_engine(c), &q, &r, &more);
    if (rc) {
        sr_rec_close(&r);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), "cannot read the audit trail", NULL);
    }
    json_t *items = json_array();
    sr_audit_rec a;
    int k;
    char next[48] = "";
    while ((k = sr_rec_next_audit(&r, &a)) == 1) {
        json_t *o = sr_audit_item_json(&a);
        if (o) json_array_append_new(items, o);
        snprintf(next, sizeof next, "%" PRId64 ".%" PRIu64, a.ms, a.seq);
    }
    sr_rec_close(&r);
    json_t *ans = json_pack("{s:o}", "items", items);
    if (more && next[0]) json_object_set_new(ans, "next", json_string(next));
    sr_http_jsonv(c->req, 200, ans);
    json_decref(ans);
}

json_t *sr_audit_item_json(const sr_audit_rec *a)
{
    char tm[32];
    sr_rfc3339_format(a->ms, tm);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)a->seq, "time", tm, "actor",
                          a->actor, "actorKind", sr_actor_kind_name(a->actor_kind), "kind", a->kind, "action",
                          a->action, "target", a->target, "outcome", a->outcome);
    if (o && a->op[0]) json_object_set_new(o, "operator", json_string(a->op));
    if (o && a->source[0]) json_object_set_new(o, "source", json_string(a->source));
    if (o && a->detail[0]) json_object_set_new(o, "detail", json_string(a->detail));
    return o;
}

/* ---- GET /admin/v1/state?at=T[&operator=] (docs/state.md) -------------------- */

typedef struct state_ctx {
    int64_t at;
    int has_op;
    char op[72];
} state_ctx;

/* on the worker queue: the answer replays the log (engine/state.c) */
static void state_work(sr_admin_work *w, void *v)
{
    state_ctx *x = v;
    int rc = SR_OK;
    sr_errinfo ei = {0};
    json_t *ans = sr_state_json(w->eng, x->at, x->has_op ? x->op : NULL, &rc, &ei);
    if (!ans) {
        w->code = rc == SR_EINVAL ? SR_WIRE_PARAM : sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", ei.msg[0] ? ei.msg : sr_strerror(rc));
        return;
    }
    w->answer = ans;
}

static void state_at(const sr_route_call *c)
{
    const sr_admin_caller *cl = c->caller;
    state_ctx x = {0};
    int t = time_param(c, "at", &x.at);
    if (t < 0) return;
    if (!t) return sr_admin_bad_field(c, "at", "required: an RFC 3339 time (2026-12-06T00:00:00Z) or UTC milliseconds");
    x.has_op = sr_http_query(c->req, "operator", x.op, sizeof x.op);
    if (x.has_op && !sr_id_str_ok(x.op)) return sr_admin_bad_field(c, "operator", "an operator ID");
    /* who may read what, as the audit trail (invariant 1): an operator's
     * user its own operator, the auditor and platform admins any */
    sr_authz_target tg = {0};
    if (x.has_op) tg.operator_id = x.op;
    else if (cl->scope == SR_SCOPE_OPERATOR) {
        tg.operator_id = cl->scope_id;
        snprintf(x.op, sizeof x.op, "%s", cl->scope_id);
        x.has_op = 1;
    }
    if (!sr_admin_authorize(c, SR_ACT_AUDIT_READ, &tg)) return;
    state_ctx *h = malloc(sizeof *h);
    if (!h) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    *h = x;
    /* charged to the operator whose state it replays (its share of the
     * worker queue, api/workq.h), whoever asks; every operator's: the
     * platform's */
    sr_admin_run_for(c, x.has_op ? h->op : NULL, state_work, h, free);
}

const sr_route sr_admin_audit_routes[] = {
    {"GET", "/admin/v1/audit/events", audit_events, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/state", state_at, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
};
const size_t sr_admin_audit_nroutes = sizeof sr_admin_audit_routes / sizeof sr_admin_audit_routes[0];
