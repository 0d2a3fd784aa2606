/*
 * api/admin_pending.c -- /admin/v1: the two-person rule (R-ID-5;
 * docs/admin.md "The two-person rule"): privilege changes wait as pending
 * changes until a second admin of the same scope approves them.
 *
 * ROUTES (sr_admin_pending_routes; action column 0: the paths name no
 * target, each handler checks the pending change's own scope)
 *   GET  /admin/v1/pending                       the changes the caller made or may decide
 *   GET  /admin/v1/pending/{pendingId}           one of them
 *   POST /admin/v1/pending/{pendingId}/approve   apply it (a second admin)
 *   POST /admin/v1/pending/{pendingId}/reject    {reason}
 * and the helpers the other admin files call instead of submitting a
 * privilege change (admin_int.h): sr_admin_pending_submit (on the loop),
 * sr_admin_work_pending (in a worker's work()).
 *
 * CONTRACT
 *  - A privilege change is built by its own route with its own builder,
 *    then wrapped (sr_cmd_pending_request) with the scope whose admins
 *    decide it (the route's target: the user's, the operator's, ...), the
 *    route's action as the action its deciders must hold, a summary and an
 *    expiry ([admin] pending_ttl_s), in an event of the change's operator
 *    and requester; the requester is answered 202 {pendingId, state,
 *    expiresAt, summary} once the request is durable, not the change.
 *  - The engine decides (engine/apply.c apply_pending): who may request and
 *    decide, the requester never, the expiry by the event's ingest time, and
 *    one outcome of racing decisions (the second is a 409 conflict). The
 *    routes check the same first to answer 403 and 404 with clear messages;
 *    the engine's refusal stands when the two disagree (a change of roles
 *    between the check and the write).
 *  - A change the caller neither made nor may decide is not shown: 404, the
 *    same as one that does not exist.
 *  - Expiry: a change past its expiry shows as "expired" at once (lazily,
 *    sr_pending_state); its `expired` event is written when someone tries
 *    to decide it (the decision is answered 409 naming the expiry). There
 *    is no sweep: an expired change nobody touched stays "requested" in the
 *    index and reads as expired.
 */
#include "api/admin_int.h"

#include "api/httpu.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "storage/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t ttl_s = 86400; /* [admin] pending_ttl_s, set once at server start */

void sr_admin_pending_ttl(uint32_t seconds)
{
    if (seconds) ttl_s = seconds;
}

/* the engine's clock when a test moved it (SUIRO_TEST_CLOCK_FILE): the
 * engine refuses a decision at or past expires_ms by its ingest time, so the
 * state answered and the expired event follow the same clock; else NULL */
static int64_t (*test_clock)(void);

void sr_admin_pending_clock(int64_t (*clock_ms)(void)) { test_clock = clock_ms; }

static int64_t clock_now_ms(void)
{
    if (test_clock) return test_clock();
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const sr_admin_caller *caller_of(const sr_route_call *c) { return c->caller; }

static const char *scope_word(sr_user_scope s)
{
    return s == SR_US_OPERATOR ? "operator" : s == SR_US_VENDOR ? "vendor" : "platform";
}

/* the target whose admins decide a pending change (engine/apply.c pending_target) */
static sr_authz_target scope_target(const sr_pending *p)
{
    sr_authz_target t = {0};
    if (p->scope == SR_US_OPERATOR) t.operator_id = p->scope_id;
    else if (p->scope == SR_US_VENDOR) t.vendor_id = p->scope_id;
    return t;
}

/* ---- requesting (the other admin files' privilege changes) ---------------- */

/* The request wrapping the change (events evs[0..n)) into *out: the
 * change's operator from its first event's envelope (its events'
 * operator_id), an id into id, the expiry into *exp. env_of builds the
 * envelope of that operator. */
static int pending_build(sr_cmd_env (*env_of)(const void *who, const char *op), const void *who, sr_user_scope scope,
                         const char *scope_id, sr_authz_action act, const char *summary, const sr_slice *evs, size_t n,
                         sr_buf *out, char id[32], int64_t *exp)
{
    if (!n) return SR_EINVAL;
    sr_rec h = SR_REC_INIT;
    sr_event_view v;
    int rc = sr_event_decode(evs[0].data, evs[0].len, &h, &v);
    if (rc) return rc;
    uint8_t r[10];
    char hx[21];
    if (sr_random(r, sizeof r) != SR_OK) {
        sr_rec_close(&h);
        return SR_ECRYPTO;
    }
    sr_hex(r, sizeof r, hx);
    snprintf(id, 32, "pc-%s", hx);
    *exp = clock_now_ms() + (int64_t)ttl_s * 1000;
    sr_cmd_env env = env_of(who, v.op);
    sr_pending_req q = {.id = id,
                        .scope = scope,
                        .scope_id = scope == SR_US_PLATFORM ? "" : scope_id,
                        .authz_action = sr_authz_action_name(act),
                        .summary = summary,
                        .expires_ms = *exp,
                        .changes = evs,
                        .n_changes = n};
    rc = sr_cmd_pending_request(&env, &q, out);
    sr_rec_close(&h);
    return rc;
}

static sr_cmd_env env_of_call(const void *c, const char *op) { return sr_admin_env(c, op); }
static sr_cmd_env env_of_work(const void *w, const char *op) { return sr_admin_work_env(w, op); }

static json_t *requested_answer(const char *id, int64_t exp, const char *summary)
{
    char t[32];
    sr_rfc3339_format(exp, t);
    return json_pack("{s:s,s:s,s:s,s:s}", "pendingId", id, "state", "requested", "expiresAt", t, "summary", summary);
}

void sr_admin_pending_submit(const sr_route_call *c, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                             const char *summary, int rc, sr_buf *change)
{
    sr_buf pb;
    sr_buf_init(&pb);
    char id[32] = "";
    int64_t exp = 0;
    sr_slice sl = {change->data, change->len};
    if (!rc) rc = pending_build(env_of_call, c, scope, scope_id, act, summary, &sl, 1, &pb, id, &exp);
    sr_buf_release(change);
    sr_admin_submit(c, rc, &pb, 202, rc ? NULL : requested_answer(id, exp, summary));
}

int sr_admin_work_pending_n(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                            const char *summary, const sr_slice *evs, size_t n)
{
    if (n > SR_PENDING_MAX_EVENTS) {
        w->code = SR_WIRE_PARAM;
        snprintf(w->msg, sizeof w->msg, "%s: a change of %zu events; one that waits for approval has at most %d",
                 summary, n, SR_PENDING_MAX_EVENTS);
        return SR_EINVAL;
    }
    sr_buf pb;
    sr_buf_init(&pb);
    char id[32] = "";
    int64_t exp = 0;
    int rc = pending_build(env_of_work, w, scope, scope_id, act, summary, evs, n, &pb, id, &exp);
    if ((rc = sr_admin_work_submit(w, rc, &pb))) return rc;
    json_decref(w->answer);
    w->answer = requested_answer(id, exp, summary);
    w->status = 202;
    return 1;
}

int sr_admin_work_pending(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                          const char *summary, int rc, sr_buf *change)
{
    sr_slice sl = {change->data, change->len};
    if (!rc) rc = sr_admin_work_pending_n(w, scope, scope_id, act, summary, &sl, 1);
    else {
        sr_buf none;
        sr_buf_init(&none);
        rc = sr_admin_work_submit(w, rc, &none); /* the builder's refusal into w */
    }
    sr_buf_release(change);
    return rc;
}

/* ---- reading ----------------------------------------------------------------- */

/* 1 if the caller made p or may decide it (any of its roles allowed p's
 * action on p's scope). *decide: may decide it (not its requester). */
static int visible(const sr_route_call *c, const sr_pending *p, int *decide)
{
    const sr_admin_caller *cl = caller_of(c);
    sr_authz_action act;
    sr_authz_target t = scope_target(p);
    int mine = !strcmp(p->requester, cl->user);
    int may = !sr_authz_action_parse(p->authz_action, &act) && sr_admin_allows(c, act, &t);
    if (decide) *decide = may && !mine;
    return mine || may;
}

void sr_admin_put_time(json_t *o, const char *key, int64_t ms)
{
    if (!ms) return;
    char t[32];
    sr_rfc3339_format(ms, t);
    json_object_set_new(o, key, json_string(t));
}

static json_t *pending_json(const sr_pending *p, int64_t now, int decide)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "pendingId", p->id, "state",
                          sr_pending_state(p, now), "summary", p->summary, "scope", scope_word(p->scope), "action",
                          p->authz_action, "changeKind", p->change_kind, "requestedBy", p->requester, "operatorId",
                          p->op, "mayDecide", decide && !strcmp(sr_pending_state(p, now), "requested"));
    if (!o) return NULL;
    if (p->scope_id[0]) json_object_set_new(o, "scopeId", json_string(p->scope_id));
    sr_admin_put_time(o, "requestedAt", p->requested_ms);
    sr_admin_put_time(o, "expiresAt", p->expires_ms);
    if (p->decided_by[0]) json_object_set_new(o, "decidedBy", json_string(p->decided_by));
    sr_admin_put_time(o, "decidedAt", p->decided_ms);
    if (p->reason[0]) json_object_set_new(o, "reason", json_string(p->reason));
    return o;
}

static const char *const STATES[] = {"requested", "approved", "rejected", "expired"};

typedef struct item {
    uint64_t seq;
    json_t *j;
} item;

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const item *)a)->seq, y = ((const item *)b)->seq;
    return x < y ? -1 : x > y;
}

/* GET /admin/v1/pending[?state=requested|approved|rejected|expired]: the
 * changes the caller made or may decide, oldest first. */
static void list_pending(const sr_route_call *c)
{
    char want[16] = "";
    if (sr_http_query(c->req, "state", want, sizeof want) == 1) {
        int ok = 0;
        for (size_t i = 0; i < sizeof STATES / sizeof *STATES; i++) ok |= !strcmp(want, STATES[i]);
        if (!ok) return sr_admin_bad_field(c, "state", "one of requested, approved, rejected, expired");
    }
    sr_rec h = SR_REC_INIT;
    int rc = sr_list_pending(sr_admin_engine(c), &h);
    if (rc) {
        sr_rec_close(&h);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    item *it = sr_calloc(sr_rec_count(&h) + 1, sizeof *it);
    size_t n = 0;
    int64_t now = clock_now_ms();
    sr_pending p;
    int k;
    while (it && (k = sr_rec_next_pending(&h, &p)) != 0) {
        int decide;
        if (k < 0 || !visible(c, &p, &decide)) continue; /* a record that does not decode is skipped */
        if (want[0] && strcmp(want, sr_pending_state(&p, now))) continue;
        it[n].seq = p.requested_seq;
        if ((it[n].j = pending_json(&p, now, decide))) n++;
    }
    sr_rec_close(&h);
    if (!it) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    qsort(it, n, sizeof *it, by_seq);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, it[i].j);
    sr_free(it);
    json_t *o = json_pack("{s:o}", "pending", arr);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* The pending change of the path, if the caller may see it: 1 with *p in
 * h; else answered (404: none, or not the caller's to see) and 0. */
static int find(const sr_route_call *c, sr_rec *h, sr_pending *p, int *decide)
{
    const char *id = sr_route_param(c, "pendingId");
    if (!id) {
        sr_admin_bad_field(c, "pendingId", "too long");
        return 0;
    }
    int rc = sr_read_pending(sr_admin_engine(c), id, h, p);
    if (rc == SR_OK && visible(c, p, decide)) return 1;
    if (rc == SR_OK || rc == SR_ENOTFOUND) {
        char m[200];
        snprintf(m, sizeof m, "pending change %s: no such change among yours or those you may decide", id);
        sr_admin_audit_refused(c, SR_WIRE_UNKNOWN, m);
        sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, m, NULL);
    } else
        sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    return 0;
}

static void get_pending(const sr_route_call *c)
{
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    int decide;
    if (find(c, &h, &p, &decide)) {
        json_t *o = pending_json(&p, clock_now_ms(), decide);
        sr_http_jsonv(c->req, 200, o);
        json_decref(o);
    }
    sr_rec_close(&h);
}

/* ---- deciding ------------------------------------------------------------------ */

static void decide(const sr_route_call *c, const char *action)
{
    const sr_admin_caller *cl = caller_of(c);
    char reason[512] = "";
    if (action[0] == 'r') { /* reject: {"reason": "..."} */
        json_t *body = sr_admin_body(c);
        if (!body) return;
        json_t *r = json_object_get(body, "reason");
        const char *s = json_string_value(r);
        size_t n = s ? strlen(s) : 0;
        if (!s || !n || n >= sizeof reason) {
            json_decref(body);
            return sr_admin_bad_field(c, "reason", r && !s ? "must be a string" : !n ? "required: why it is rejected"
                                                                                   : "at most 511 bytes");
        }
        memcpy(reason, s, n + 1);
        json_decref(body);
    }
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    int may;
    if (!find(c, &h, &p, &may)) return sr_rec_close(&h);
    int64_t now = clock_now_ms();
    const char *state = sr_pending_state(&p, now);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, p.op);
    char m[300];
    if (!strcmp(p.state, "requested") && !strcmp(state, "expired")) {
        /* the expired event, then the refusal naming the expiry */
        char t[32];
        sr_rfc3339_format(p.expires_ms, t);
        snprintf(m, sizeof m, "pending change %s expired at %s: it can no longer be decided", p.id, t);
        int rc = sr_cmd_pending_decide(&env, p.id, "expired", NULL, &b);
        sr_admin_audit_refused(c, SR_WIRE_CONFLICT, m);
        sr_rec_close(&h);
        return sr_admin_submit(c, rc, &b, sr_wire_status(SR_WIRE_CONFLICT),
                               json_pack("{s:{s:s,s:s}}", "result", "code", sr_wire_code(SR_WIRE_CONFLICT),
                                         "message", m));
    }
    if (strcmp(state, "requested")) {
        snprintf(m, sizeof m, "pending change %s was %s already%s%s", p.id, state, p.decided_by[0] ? " by " : "",
                 p.decided_by);
        sr_admin_audit_refused(c, SR_WIRE_CONFLICT, m);
        sr_rec_close(&h);
        return sr_http_result(c->req, 0, SR_WIRE_CONFLICT, m, NULL);
    }
    if (!strcmp(p.requester, cl->user)) {
        snprintf(m, sizeof m, "pending change %s: its requester cannot %s it: a second admin must", p.id,
                 action[0] == 'a' ? "approve" : "reject");
        sr_admin_audit_refused(c, SR_WIRE_FORBIDDEN, m);
        sr_rec_close(&h);
        return sr_http_result(c->req, 0, SR_WIRE_FORBIDDEN, m, NULL);
    }
    (void)may; /* visible and not the requester: the caller may decide it */
    int rc = sr_cmd_pending_decide(&env, p.id, action, reason[0] ? reason : NULL, &b);
    json_t *o = pending_json(&p, now, 0);
    if (o) {
        json_object_set_new(o, "state", json_string(action));
        json_object_set_new(o, "decidedBy", json_string(cl->user));
        sr_admin_put_time(o, "decidedAt", now);
        if (reason[0]) json_object_set_new(o, "reason", json_string(reason));
    }
    sr_rec_close(&h);
    sr_admin_submit(c, rc, &b, 200, o);
}

static void approve(const sr_route_call *c) { decide(c, "approved"); }
static void reject(const sr_route_call *c) { decide(c, "rejected"); }

const sr_route sr_admin_pending_routes[] = {
    {"GET", "/admin/v1/pending", list_pending, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/pending/{pendingId}", get_pending, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"POST", "/admin/v1/pending/{pendingId}/approve", approve, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
    {"POST", "/admin/v1/pending/{pendingId}/reject", reject, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_PLATFORM},
};
const size_t sr_admin_pending_nroutes = sizeof sr_admin_pending_routes / sizeof *sr_admin_pending_routes;
