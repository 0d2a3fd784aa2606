/*
 * engine/report.c -- the incident report's builder (issue #18, R-RE-4;
 * engine/report.h, docs/incident-report.md): the log's events of a window
 * sorted into sections, and the values of the points involved.
 *
 * Where it starts: the `audit` index is keyed by ingest time and seq
 * (engine/audit.c) and holds a row for every event that is not data, so the
 * newest row before `from` gives a seq the window's events all come after
 * (ingest times follow seqs: the writer stamps each group with its clock),
 * and the oldest row after `to` a seq where the read may stop. Events
 * between are read through sr_engine_log_each and kept when their ingest
 * time is in the window. A clock stepped backwards while the window's
 * events were written can hide some of them (docs/incident-report.md
 * "Limits").
 *
 * The sections (the feeders below, one per kind of source):
 *   connections  AliveEvent (online/offline, AliveReason) and SessionEvent
 *                (opened/ended, its reason), as audit.c summarizes them;
 *   requests     each app-level RequestCreated with its parts' gateways,
 *                and its final app-level RequestTransition; a request made
 *                before the window and finished in it is read from the
 *                index (`before_window`);
 *   controls     each control value of a CONTROL request's gateway part,
 *                with the request's outcome and sr_report_sig_state;
 *   alarms       each AlarmEvent step;
 *   refusals     the sources of REFUSAL_SOURCES (one function each: adding
 *                a source, e.g. access batches, is one row);
 *   changes      the audit kinds of CHANGE_KINDS (configuration and
 *                privilege changes);
 *   values       the points the filter names, else those a kept request,
 *                control or alarm names (under --gateway: the gateway's),
 *                raw when at most chart_max values, else chart_max
 *                buckets (their means, minima and maxima).
 *
 * INVARIANTS
 *  (1) Every section holds at most cap items; what the cap left out is
 *      counted in its `truncated` (requests: created in the window).
 *  (2) Every string of a report points into r->mem, freed by
 *      sr_report_free alone.
 *  (3) Filters narrow each section they concern (engine/report.h,
 *      docs/incident-report.md "Filters"); an item is kept only once it is
 *      known to pass (a request under --gateway: once its parts are read).
 *  (4) Each section's items are in log order (seq ascending; a request by
 *      its creation, one made before the window by its outcome's seq).
 *  (5) A series holds at most chart_max values (at least 2), in time order;
 *      a raw one's total is its count.
 * sr_report_check names (1), (4) and (5) of a built report.
 */
#include "engine/report.h"

#include "codecs/base/sr_hash.h"
#include "codecs/ids.h"
#include "engine/engine_int.h"
#include "engine/event_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- the report's memory (invariant 2) ---------------------------------------- */

typedef struct blk {
    struct blk *next;
    size_t used, cap;
    _Alignas(16) char d[];
} blk;

typedef struct rmem {
    blk *head;
    void **arrays; /* the sections' arrays (grown by realloc) */
    size_t narrays;
} rmem;

static void *amem(sr_report *r, size_t n)
{
    rmem *m = r->mem;
    n = (n + 15) & ~(size_t)15;
    if (!m->head || m->head->cap - m->head->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        blk *b = sr_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = m->head;
        b->used = 0;
        b->cap = cap;
        m->head = b;
    }
    void *p = m->head->d + m->head->used;
    m->head->used += n;
    return p;
}

static const char *adup(sr_report *r, const char *s)
{
    if (!s || !*s) return "";
    size_t n = strlen(s);
    char *d = amem(r, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n + 1);
    return d;
}

void sr_report_free(sr_report *r)
{
    if (!r) return;
    rmem *m = r->mem;
    if (m) {
        while (m->head) {
            blk *b = m->head;
            m->head = b->next;
            sr_free(b);
        }
        sr_free(m);
    }
    sr_free(r->conns);
    sr_free(r->reqs);
    sr_free(r->ctrls);
    sr_free(r->alarms);
    sr_free(r->refusals);
    sr_free(r->changes);
    sr_free(r->series);
    sr_free(r);
}

/* one more item of a section (array *a, count *n, capacity *capn): a pointer
 * to it zeroed, or NULL (out of memory) */
static void *grow(void **a, size_t *n, size_t *capn, size_t size)
{
    if (*n == *capn) {
        size_t c = *capn ? *capn * 2 : 16;
        void *p = sr_realloc(*a, c * size);
        if (!p) return NULL;
        *a = p;
        *capn = c;
    }
    void *it = (char *)*a + *n * size;
    memset(it, 0, size);
    (*n)++;
    return it;
}

/* ---- the builder's state ------------------------------------------------------- */

typedef struct inv {
    const char *op, *id, *why;
} inv;

typedef struct bctx {
    sr_engine *e;
    const sr_report_q *q;
    sr_report *r;
    size_t cap;
    int64_t now_ms;
    uint64_t stop_seq; /* 0: read to the end */
    int nomem;
    size_t cap_conns, cap_reqs, cap_ctrls, cap_alarms, cap_refusals, cap_changes, cap_series;
    /* requests of the window by id (open addressing: index + 1 into r->reqs) */
    uint32_t *rh;
    size_t rhcap;
    /* the last request kept provisionally under --gateway, until its parts are read */
    int pend;
    size_t pend_at, pend_slot;
    int pend_match;
    /* the points whose values are read */
    inv inv[SR_REPORT_POINTS_MAX];
    size_t ninv;
    /* the gateways of the filter's points (connections under --point) */
    char pgw[SR_REPORT_FILTER_POINTS][72];
    size_t npgw;
} bctx;

static int op_ok(const bctx *b, const Event *ev) { return !b->q->op || !strcmp(b->q->op, ev->operator_id); }

static int in_points(const bctx *b, const char *id)
{
    for (size_t i = 0; i < b->q->npoints; i++)
        if (!strcmp(b->q->points[i], id)) return 1;
    return 0;
}

/* the gateway reaching point id of op ("" if none is known) into gw */
static void point_gateway(bctx *b, const char *op, const char *id, char gw[72])
{
    sr_point_info pi;
    gw[0] = 0;
    if (sr_engine_point_info(b->e, op, id, &pi) == SR_OK) snprintf(gw, 72, "%s", pi.gateway);
}

/* a point whose values the report reads (deduplicated; under --gateway only
 * the gateway's; with --point only those, added at the start) */
static void involve(bctx *b, const char *op, const char *id, const char *why)
{
    if (!id || !*id || b->q->npoints) return;
    for (size_t i = 0; i < b->ninv; i++)
        if (!strcmp(b->inv[i].op, op) && !strcmp(b->inv[i].id, id)) return;
    uint32_t pt;
    if (sr_engine_point(b->e, op, id, &pt, NULL) != SR_OK) return; /* not a point (an alarm's subject) */
    if (b->q->gateway) {
        char gw[72];
        point_gateway(b, op, id, gw);
        if (strcmp(gw, b->q->gateway)) return;
    }
    if (b->ninv == SR_REPORT_POINTS_MAX) {
        b->r->series_truncated++;
        return;
    }
    const char *o = adup(b->r, op), *d = adup(b->r, id);
    if (!o || !d) {
        b->nomem = 1;
        return;
    }
    b->inv[b->ninv++] = (inv){o, d, why};
}

/* a section's next item, or NULL when the section is full (counted) or memory ran out */
#define ITEM(b, arr, n, capn, trunc)                                                                                  \
    ((b)->r->n >= (b)->cap ? ((b)->r->trunc++, (void *)NULL)                                                           \
                           : grow((void **)&(b)->r->arr, &(b)->r->n, &(b)->capn, sizeof *(b)->r->arr))

#define S(x) adup(b->r, (x))

static void fill_event(bctx *b, const Event *ev, const sr_audit_summary *x, sr_report_event *o, const char *reason)
{
    *o = (sr_report_event){.seq = ev->seq,
                           .ms = ev->ingest_ms,
                           .op = S(ev->operator_id),
                           .actor = S(ev->actor),
                           .actor_kind = sr_actor_kind_name((int)ev->actor_kind),
                           .source = S(ev->source),
                           .kind = S(x->s[3]),
                           .action = S(x->s[4]),
                           .target = S(x->s[5]),
                           .outcome = S(x->s[6]),
                           .reason = S(reason),
                           .detail = S(x->s[7])};
    if (!o->op || !o->actor || !o->source || !o->kind || !o->action || !o->target || !o->outcome || !o->reason ||
        !o->detail)
        b->nomem = 1;
}

/* ---- connections ------------------------------------------------------------------ */

static void feed_connection(bctx *b, const Event *ev)
{
    int kind;
    const char *id, *reason;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_ALIVE) {
        kind = (int)ev->alive->kind;
        id = ev->alive->id;
        reason = sr_alive_reason_name((int)ev->alive->reason);
    } else {
        kind = (int)ev->session->kind;
        id = ev->session->id;
        reason = ev->session->reason;
    }
    if (b->q->gateway && (kind != SR_ACTOR_GATEWAY || strcmp(id, b->q->gateway))) return;
    if (b->q->npoints) { /* the filter's points' gateways */
        int hit = 0;
        for (size_t i = 0; kind == SR_ACTOR_GATEWAY && i < b->npgw && !hit; i++) hit = !strcmp(b->pgw[i], id);
        if (!hit) return;
    }
    sr_audit_summary x;
    if (!sr_audit_summarize(ev, &x)) return;
    sr_report_event *o = ITEM(b, conns, nconns, cap_conns, conns_truncated);
    if (!o) {
        if (b->r->nconns < b->cap) b->nomem = 1;
        return;
    }
    fill_event(b, ev, &x, o, reason);
}

/* ---- refusals: one function per source (1: ev is a refusal, x its summary) ---------- */

/* An admin operation refused (AdminEvent, outcome refused; docs/admin.md "Audit"). */
static int refused_admin(const Event *ev, sr_audit_summary *x, const char **reason)
{
    if (ev->body_case != SUIRO__V1__EVENT__BODY_ADMIN || strcmp(ev->admin->outcome, "refused")) return 0;
    *reason = ev->admin->code;
    return sr_audit_summarize(ev, x);
}

/* A login refused (AuthEvent, not a success: a wrong secret, the throttle). */
static int refused_login(const Event *ev, sr_audit_summary *x, const char **reason)
{
    if (ev->body_case != SUIRO__V1__EVENT__BODY_AUTH || ev->auth->success) return 0;
    *reason = ev->auth->reason;
    return sr_audit_summarize(ev, x);
}

static int (*const REFUSAL_SOURCES[])(const Event *, sr_audit_summary *, const char **) = {
    refused_admin,
    refused_login,
};

static int feed_refusal(bctx *b, const Event *ev)
{
    sr_audit_summary x;
    const char *reason = "";
    size_t i = 0;
    for (; i < sizeof REFUSAL_SOURCES / sizeof REFUSAL_SOURCES[0]; i++)
        if (REFUSAL_SOURCES[i](ev, &x, &reason)) break;
    if (i == sizeof REFUSAL_SOURCES / sizeof REFUSAL_SOURCES[0]) return 0;
    if (b->q->gateway) {
        char t[160];
        snprintf(t, sizeof t, "gateway:%s", b->q->gateway);
        if (!((int)ev->actor_kind == SR_ACTOR_GATEWAY && !strcmp(ev->actor, b->q->gateway)) && strcmp(x.s[5], t)) return 1;
    }
    sr_report_event *o = ITEM(b, refusals, nrefusals, cap_refusals, refusals_truncated);
    if (o) fill_event(b, ev, &x, o, reason);
    else if (b->r->nrefusals < b->cap) b->nomem = 1;
    return 1;
}

/* ---- changes: the audit kinds of configuration and privileges ---------------------- */

static const char *const CHANGE_KINDS[] = {"registry", "master", "user",         "pending",
                                           "key",      "retention", "login_policy", "correction"};

static void feed_change(bctx *b, const Event *ev)
{
    sr_audit_summary x;
    if (!sr_audit_summarize(ev, &x)) return;
    size_t i = 0;
    for (; i < sizeof CHANGE_KINDS / sizeof CHANGE_KINDS[0]; i++)
        if (!strcmp(x.s[3], CHANGE_KINDS[i])) break;
    if (i == sizeof CHANGE_KINDS / sizeof CHANGE_KINDS[0]) return;
    if (b->q->gateway) {
        char t[160];
        snprintf(t, sizeof t, "gateway:%s", b->q->gateway);
        if (strcmp(x.s[5], t)) return;
    }
    sr_report_event *o = ITEM(b, changes, nchanges, cap_changes, changes_truncated);
    if (o) fill_event(b, ev, &x, o, "");
    else if (b->r->nchanges < b->cap) b->nomem = 1;
    if (o && ev->body_case == SUIRO__V1__EVENT__BODY_MASTER_PUT && ev->master_put->name[0] && !o->detail[0] &&
        !(o->detail = S(ev->master_put->name))) /* the audit row has no name: the report shows it */
        b->nomem = 1;
}

/* ---- alarms ----------------------------------------------------------------------- */

static void feed_alarm(bctx *b, const Event *ev)
{
    const Suiro__V1__AlarmEvent *a = ev->alarm;
    if (b->q->npoints && !in_points(b, a->subject)) return;
    if (b->q->gateway && strcmp(a->subject, b->q->gateway)) {
        char gw[72];
        point_gateway(b, ev->operator_id, a->subject, gw);
        if (strcmp(gw, b->q->gateway)) return;
    }
    sr_report_alarm *o = ITEM(b, alarms, nalarms, cap_alarms, alarms_truncated);
    if (!o) {
        if (b->r->nalarms < b->cap) b->nomem = 1;
        return;
    }
    const char *lv = sr_alarm_level_name((sr_alarm_level)a->level);
    *o = (sr_report_alarm){.seq = ev->seq,
                           .ms = ev->ingest_ms,
                           .op = S(ev->operator_id),
                           .alarm_id = S(a->alarm_id),
                           .step = S(a->state),
                           .rule = S(a->rule),
                           .subject = S(a->subject),
                           .level = lv ? lv : "",
                           .by = S(a->by[0] ? a->by : ev->actor), /* who took the step */
                           .message = S(a->message),
                           .comment = S(a->comment)};
    if (!o->op || !o->alarm_id || !o->step || !o->rule || !o->subject || !o->by || !o->message || !o->comment)
        b->nomem = 1;
    if (ev->operator_id[0]) involve(b, ev->operator_id, a->subject, "alarm");
}

/* ---- requests and controls ------------------------------------------------------------ */

static const char *req_kind_name(int k)
{
    static const char *const n[] = {"unknown", "immediate", "monitor_start", "monitor_stop", "control"};
    return k >= 0 && k <= 4 ? n[k] : "unknown";
}

static const char *req_state_name(int s)
{
    static const char *const n[] = {"unknown",   "created", "dispatched", "acknowledged",
                                    "succeeded", "failed",  "timed_out",  "cancelled"};
    return s >= 0 && s <= 7 ? n[s] : "unknown";
}

static int final_state(int s)
{
    return s == SR_RS_SUCCEEDED || s == SR_RS_FAILED || s == SR_RS_TIMED_OUT || s == SR_RS_CANCELLED;
}

static uint32_t req_hash(const char *op, const char *id)
{
    return sr_hash_end(sr_hash_add(sr_hash_add(0, op, strlen(op)), id, strlen(id)));
}

/* the slot of request (op, id) in b->rh: its index + 1 there, or 0 (free) */
static size_t req_slot(const bctx *b, const char *op, const char *id)
{
    size_t m = b->rhcap - 1, s = req_hash(op, id) & m;
    while (b->rh[s]) {
        const sr_report_request *q = &b->r->reqs[b->rh[s] - 1];
        if (!strcmp(q->request_id, id) && !strcmp(q->op, op)) break;
        s = (s + 1) & m;
    }
    return s;
}

static sr_report_request *req_find(const bctx *b, const char *op, const char *id)
{
    if (!b->rh) return NULL;
    size_t s = req_slot(b, op, id);
    return b->rh[s] ? &b->r->reqs[b->rh[s] - 1] : NULL;
}

/* r->reqs[at] into the table (at most half full); its slot */
static int req_index(bctx *b, size_t at, size_t *slot)
{
    if ((at + 1) * 2 > b->rhcap) {
        size_t nc = b->rhcap ? b->rhcap * 2 : 64;
        uint32_t *nh = sr_calloc(nc, sizeof *nh);
        if (!nh) return SR_ENOMEM;
        sr_free(b->rh);
        b->rh = nh;
        b->rhcap = nc;
        for (size_t i = 0; i < at; i++) b->rh[req_slot(b, b->r->reqs[i].op, b->r->reqs[i].request_id)] = (uint32_t)i + 1;
    }
    *slot = req_slot(b, b->r->reqs[at].op, b->r->reqs[at].request_id);
    b->rh[*slot] = (uint32_t)at + 1;
    return SR_OK;
}

/* strings joined by commas, in the report's memory */
static const char *join(bctx *b, char *const *s, size_t n)
{
    size_t l = 0;
    for (size_t i = 0; i < n; i++) l += strlen(s[i]) + 1;
    char *d = amem(b->r, l + 1);
    if (!d) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) d[k++] = ',';
        size_t sl = strlen(s[i]);
        memcpy(d + k, s[i], sl);
        k += sl;
    }
    d[k] = 0;
    return d;
}

/* gw appended to the request's comma-separated gateways */
static void add_gateway(bctx *b, sr_report_request *q, const char *gw)
{
    char *const two[2] = {(char *)q->gateways, (char *)gw};
    const char *j = q->gateways[0] ? join(b, two, 2) : S(gw);
    if (j) q->gateways = j;
    else b->nomem = 1;
}

/* the provisional request (--gateway) decided: kept if a part went to the gateway */
static void pend_settle(bctx *b)
{
    if (!b->pend) return;
    b->pend = 0;
    if (b->pend_match) return;
    b->rh[b->pend_slot] = 0; /* the newest insertion: no probe chain passes it */
    b->r->nreqs = b->pend_at;
}

static int names_filter_point(bctx *b, char *const *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (in_points(b, ids[i])) return 1;
    return 0;
}

static void feed_created(bctx *b, const Event *ev)
{
    const Suiro__V1__RequestCreated *c = ev->request_created;
    const char *why = c->kind == SUIRO__V1__REQUEST_KIND__RK_CONTROL ? "control" : "request";
    if (!c->gateway_id[0]) { /* the app-level request */
        if (b->q->npoints && !names_filter_point(b, c->data_ids, c->n_data_ids)) return;
        sr_report_request *o = ITEM(b, reqs, nreqs, cap_reqs, reqs_truncated);
        if (!o) {
            if (b->r->nreqs < b->cap) b->nomem = 1;
            return;
        }
        *o = (sr_report_request){.seq = ev->seq,
                                 .ms = ev->ingest_ms,
                                 .op = S(ev->operator_id),
                                 .request_id = S(c->request_id),
                                 .kind = req_kind_name((int)c->kind),
                                 .app = S(c->app_id),
                                 .gateways = "",
                                 .data_ids = join(b, c->data_ids, c->n_data_ids),
                                 .state = "created",
                                 .error_code = "",
                                 .message = ""};
        if (!o->op || !o->request_id || !o->app || !o->data_ids) {
            b->nomem = 1;
            return;
        }
        size_t at = b->r->nreqs - 1, slot;
        if (req_index(b, at, &slot)) {
            b->nomem = 1;
            return;
        }
        if (b->q->gateway) {
            b->pend = 1;
            b->pend_at = at;
            b->pend_slot = slot;
            b->pend_match = 0;
        } else
            for (size_t i = 0; i < c->n_data_ids; i++) involve(b, ev->operator_id, c->data_ids[i], why);
        return;
    }
    /* a gateway's part: its request is the app-level one just before it */
    sr_report_request *q = req_find(b, ev->operator_id, c->request_id);
    if (!q) return;
    if (b->q->gateway && strcmp(c->gateway_id, b->q->gateway)) return;
    add_gateway(b, q, c->gateway_id);
    if (b->pend && q == &b->r->reqs[b->pend_at]) b->pend_match = 1;
    for (size_t i = 0; i < c->n_data_ids; i++) involve(b, ev->operator_id, c->data_ids[i], why);
    if (c->kind != SUIRO__V1__REQUEST_KIND__RK_CONTROL) return;
    for (size_t i = 0; i < c->n_control; i++) {
        const Suiro__V1__ControlValue *cv = c->control[i];
        if (b->q->npoints && !in_points(b, cv->data_id)) continue;
        sr_report_control *o = ITEM(b, ctrls, nctrls, cap_ctrls, ctrls_truncated);
        if (!o) {
            if (b->r->nctrls < b->cap) b->nomem = 1;
            return;
        }
        *o = (sr_report_control){.seq = ev->seq,
                                 .ms = ev->ingest_ms,
                                 .op = q->op,
                                 .request_id = q->request_id,
                                 .app = q->app,
                                 .gateway = S(c->gateway_id),
                                 .value = {.data_id = S(cv->data_id),
                                           .type = (sr_vtype)cv->type,
                                           .f = cv->f,
                                           .i = cv->i,
                                           .b = cv->b,
                                           .s = S(cv->s)},
                                 .state = "created",
                                 .error_code = "",
                                 .message = "",
                                 .has_protection = c->protection.len > 0,
                                 .sig_verified = cv->sig_state == SR_SIG_VERIFIED,
                                 .protection_len = c->protection.len};
        if (!o->gateway || !o->value.data_id || !o->value.s) b->nomem = 1;
        involve(b, ev->operator_id, cv->data_id, "control");
    }
}

/* a request made before the window whose outcome is in it: from the index */
static sr_report_request *req_before(bctx *b, const Event *ev, const char *id)
{
    sr_rec rr = SR_REC_INIT;
    sr_request_rec rq;
    sr_request_transition st;
    int has = 0;
    sr_report_request *o = NULL;
    if (sr_read_request(b->e, ev->operator_id, id, "", &rr, &rq, &st, &has) != SR_OK) goto out;
    if (b->q->npoints && !names_filter_point(b, (char *const *)rq.data_ids, rq.n_data_ids)) goto out;
    /* its gateways: those reaching its points (its parts are before the window) */
    char gws[8][72];
    size_t ng = 0;
    int hit = !b->q->gateway;
    for (size_t i = 0; i < rq.n_data_ids; i++) {
        char gw[72];
        point_gateway(b, ev->operator_id, rq.data_ids[i], gw);
        if (b->q->gateway && !strcmp(gw, b->q->gateway)) hit = 1;
        size_t k = 0;
        while (k < ng && strcmp(gws[k], gw)) k++;
        if (k == ng && ng < 8 && gw[0]) snprintf(gws[ng++], 72, "%s", gw);
    }
    if (!hit) goto out;
    o = ITEM(b, reqs, nreqs, cap_reqs, reqs_truncated);
    if (!o) {
        if (b->r->nreqs < b->cap) b->nomem = 1;
        goto out;
    }
    char *gp[8];
    for (size_t k = 0; k < ng; k++) gp[k] = gws[k];
    *o = (sr_report_request){.seq = ev->seq,
                             .ms = ev->ingest_ms,
                             .op = S(ev->operator_id),
                             .request_id = S(id),
                             .kind = req_kind_name((int)rq.kind),
                             .app = S(rq.app_id),
                             .gateways = join(b, gp, ng),
                             .data_ids = join(b, (char *const *)rq.data_ids, rq.n_data_ids),
                             .state = "created",
                             .error_code = "",
                             .message = "",
                             .before_window = 1};
    size_t slot;
    if (!o->op || !o->request_id || !o->app || !o->gateways || !o->data_ids || req_index(b, b->r->nreqs - 1, &slot)) {
        b->nomem = 1;
        o = NULL;
        goto out;
    }
    for (size_t i = 0; i < rq.n_data_ids; i++)
        involve(b, ev->operator_id, rq.data_ids[i], rq.kind == SR_RK_CONTROL ? "control" : "request");
out:
    sr_rec_close(&rr);
    return o;
}

static void feed_transition(bctx *b, const Event *ev)
{
    const Suiro__V1__RequestTransition *t = ev->request_transition;
    if (t->gateway_id[0] || !final_state((int)t->state)) return; /* the app-level outcome only */
    sr_report_request *q = req_find(b, ev->operator_id, t->request_id);
    if (!q && b->r->nreqs < b->cap) q = req_before(b, ev, t->request_id);
    if (!q) return;
    const char *st = req_state_name((int)t->state), *code = S(t->error_code), *msg = S(t->message);
    if (!code || !msg) {
        b->nomem = 1;
        return;
    }
    q->state = st;
    q->error_code = code;
    q->message = msg;
    q->outcome_ms = ev->ingest_ms;
    q->outcome_seq = ev->seq;
    for (size_t i = 0; i < b->r->nctrls; i++) { /* its control values' outcome */
        sr_report_control *c = &b->r->ctrls[i];
        if (c->request_id == q->request_id) {
            c->state = st;
            c->error_code = code;
            c->message = msg;
        }
    }
}

const char *sr_report_sig_state(const sr_report_control *c)
{
    /* A control whose protection did not verify was refused (E5001, E5003)
     * and never stored; one stored before the check existed says so. */
    if (c->sig_verified) return "verified";
    return c->has_protection ? "not recorded" : "none";
}

/* ---- the scan ------------------------------------------------------------------------- */

static int on_event(void *ctx, const sr_event_view *v)
{
    bctx *b = ctx;
    const Event *ev = v->ev;
    if (b->stop_seq && v->seq > b->stop_seq) return SR_DONE;
    b->r->read++;
    if (v->ingest_ms < b->q->from_ms || v->ingest_ms > b->q->to_ms) return SR_OK;
    if (!b->r->first_seq) b->r->first_seq = v->seq;
    b->r->last_seq = v->seq;
    b->r->events++;
    if (b->pend && !(ev->body_case == SUIRO__V1__EVENT__BODY_REQUEST_CREATED && ev->request_created->gateway_id[0]))
        pend_settle(b);
    if (!op_ok(b, ev)) return SR_OK;
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_ALIVE:
    case SUIRO__V1__EVENT__BODY_SESSION: feed_connection(b, ev); break;
    case SUIRO__V1__EVENT__BODY_REQUEST_CREATED: feed_created(b, ev); break;
    case SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION: feed_transition(b, ev); break;
    case SUIRO__V1__EVENT__BODY_ALARM: feed_alarm(b, ev); break;
    default:
        if (!feed_refusal(b, ev)) feed_change(b, ev);
        break;
    }
    return b->nomem ? SR_ENOMEM : SR_OK;
}

/* ---- the values ------------------------------------------------------------------------- */

static const char *vtype_name(sr_vtype t)
{
    switch (t) {
    case SR_VT_NUMBER: return "number";
    case SR_VT_INTEGER: return "integer";
    case SR_VT_BOOL: return "bool";
    case SR_VT_STRING: return "string";
    default: return "unknown";
    }
}

static int read_series(bctx *b, const inv *p)
{
    uint32_t pt;
    sr_vtype type;
    int rc = sr_engine_point(b->e, p->op, p->id, &pt, &type);
    if (rc == SR_ENOTFOUND) return SR_OK;
    if (rc) return rc;
    sr_report_series *s = grow((void **)&b->r->series, &b->r->nseries, &b->cap_series, sizeof *s);
    if (!s) return SR_ENOMEM;
    char gw[72];
    point_gateway(b, p->op, p->id, gw);
    *s = (sr_report_series){.op = p->op, .data_id = p->id, .type = vtype_name(type), .gateway = S(gw), .why = p->why};
    if (!s->gateway) return SR_ENOMEM;
    if (type == SR_VT_STRING) return SR_OK; /* not charted (docs/incident-report.md) */
    size_t max = b->q->chart_max ? b->q->chart_max : SR_REPORT_CHART_MAX;
    if (max < 2) max = 2;
    int64_t to = b->q->to_ms == INT64_MAX ? INT64_MAX : b->q->to_ms + 1; /* [from, to + 1): to inclusive */
    sr_range_q rq = {.point = pt, .from = b->q->from_ms, .to = to, .limit = max, .after = INT64_MIN};
    sr_buf smp, str;
    sr_buf_init(&smp);
    sr_buf_init(&str);
    int more = 0;
    rc = sr_engine_range(b->e, &rq, &smp, &str, &more);
    if (!rc && !more) {
        size_t n = smp.len / sizeof(sr_sample);
        const sr_sample *v = (const sr_sample *)smp.data;
        s->v = amem(b->r, (n ? n : 1) * sizeof *s->v);
        if (!s->v) rc = SR_ENOMEM;
        for (size_t i = 0; !rc && i < n; i++) {
            double x = type == SR_VT_INTEGER ? (double)v[i].v.i : type == SR_VT_BOOL ? (double)v[i].v.b : v[i].v.f;
            s->v[i] = (sr_report_value){v[i].ts, x, x, x, 1};
        }
        s->n = n;
        s->total = n;
    } else if (!rc) { /* many: max buckets over the span of the window's values */
        int64_t lo = ((const sr_sample *)smp.data)[0].ts, hi = lo;
        sr_range_q last = {.point = pt, .from = b->q->from_ms, .to = to, .limit = 1, .desc = 1, .after = INT64_MIN};
        smp.len = str.len = 0;
        if (!(rc = sr_engine_range(b->e, &last, &smp, &str, &more)) && smp.len >= sizeof(sr_sample))
            hi = ((const sr_sample *)smp.data)[0].ts;
        /* buckets start at multiples of the interval (storage/series.c): a span
         * of s ms in intervals of ceil(s / (max - 1)) meets at most max of them */
        int64_t span = hi + 1 - lo, m = (int64_t)max - 1, iv = span / m + (span % m != 0);
        if (iv < 1) iv = 1;
        smp.len = 0;
        if (!rc) rc = sr_engine_downsample(b->e, pt, lo, hi + 1, iv, SR_FILL_NONE, &smp);
        size_t n = rc ? 0 : smp.len / sizeof(sr_bucket);
        const sr_bucket *k = (const sr_bucket *)smp.data;
        s->v = amem(b->r, (n ? n : 1) * sizeof *s->v);
        if (!rc && !s->v) rc = SR_ENOMEM;
        for (size_t i = 0; !rc && i < n; i++) {
            s->v[i] = (sr_report_value){k[i].start, k[i].count ? k[i].sum / (double)k[i].count : k[i].last, k[i].min,
                                        k[i].max, k[i].count};
            s->total += k[i].count;
        }
        s->n = n;
        s->downsampled = 1;
        s->interval_ms = iv;
    }
    sr_buf_release(&smp);
    sr_buf_release(&str);
    return rc;
}

/* ---- the invariants ---------------------------------------------------------------------- */

#define SEQ_ORDER(arr, n)                                                                                             \
    for (size_t i = 1; i < (n); i++)                                                                                  \
        if ((arr)[i].seq <= (arr)[i - 1].seq) return "(4) a section's items are not in log order";

const char *sr_report_check(const sr_report *r, size_t chart_max)
{
    if (r->nconns > r->cap || r->nreqs > r->cap || r->nctrls > r->cap || r->nalarms > r->cap ||
        r->nrefusals > r->cap || r->nchanges > r->cap)
        return "(1) a section holds more than cap items";
    if (r->nseries > SR_REPORT_POINTS_MAX) return "(1) more than SR_REPORT_POINTS_MAX series";
    SEQ_ORDER(r->conns, r->nconns)
    SEQ_ORDER(r->reqs, r->nreqs)
    SEQ_ORDER(r->alarms, r->nalarms)
    SEQ_ORDER(r->refusals, r->nrefusals)
    SEQ_ORDER(r->changes, r->nchanges)
    for (size_t i = 1; i < r->nctrls; i++) /* a request's control values share its part's seq */
        if (r->ctrls[i].seq < r->ctrls[i - 1].seq) return "(4) a section's items are not in log order";
    if (!chart_max) chart_max = SR_REPORT_CHART_MAX;
    if (chart_max < 2) chart_max = 2;
    for (size_t i = 0; i < r->nseries; i++) {
        const sr_report_series *s = &r->series[i];
        if (s->n > chart_max) return "(5) a series holds more than chart_max values";
        for (size_t k = 1; k < s->n; k++)
            if (s->v[k].ts <= s->v[k - 1].ts) return "(5) a series' values are not in time order";
        if (!s->downsampled && s->total != s->n) return "(5) a raw series' total is not its count";
    }
    return NULL;
}

/* ---- the build ------------------------------------------------------------------------- */

/* the seqs that bound the window's events, from the audit index */
static int window_seqs(bctx *b, uint64_t *start)
{
    *start = 1;
    b->stop_seq = 0;
    sr_rec r = SR_REC_INIT;
    sr_audit_rec a;
    int more = 0, rc = SR_OK;
    if (b->q->from_ms > 0) {
        sr_audit_query aq = {.from_ms = 0, .to_ms = b->q->from_ms - 1, .limit = 1, .newest_first = 1};
        if (b->q->from_ms - 1 == 0) aq.to_ms = 0; /* 0 would read as no bound: nothing is before 1 ms */
        if (aq.to_ms && !(rc = sr_list_audit(b->e, &aq, &r, &more)) && sr_rec_next_audit(&r, &a) == 1)
            *start = a.seq + 1;
        sr_rec_close(&r);
    }
    if (!rc && b->q->to_ms < INT64_MAX) {
        r = (sr_rec)SR_REC_INIT;
        sr_audit_query aq = {.from_ms = b->q->to_ms + 1, .limit = 1};
        if (!(rc = sr_list_audit(b->e, &aq, &r, &more)) && sr_rec_next_audit(&r, &a) == 1) b->stop_seq = a.seq;
        sr_rec_close(&r);
    }
    return rc;
}

static int check_q(sr_engine *e, const sr_report_q *q, bctx *b, sr_errinfo *ei)
{
    if (q->from_ms > q->to_ms) return sr_errinfo_set(ei, SR_EINVAL, "from: after to");
    if (q->cap > SR_REPORT_CAP_MAX)
        return sr_errinfo_set(ei, SR_EINVAL, "cap: at most %d items a section", SR_REPORT_CAP_MAX);
    if (q->npoints > SR_REPORT_FILTER_POINTS)
        return sr_errinfo_set(ei, SR_EINVAL, "point: at most %d points", SR_REPORT_FILTER_POINTS);
    if (q->npoints && !q->op) return sr_errinfo_set(ei, SR_EINVAL, "point: needs an operator");
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = SR_OK;
    if (q->op && (!sr_id_str_ok(q->op) || sr_read_registry(e, q->op, SR_RG_OPERATOR, q->op, &r, &re) != SR_OK))
        rc = sr_errinfo_set(ei, SR_ENOTFOUND, "operator: no operator '%.64s'", q->op);
    sr_rec_close(&r);
    if (rc) return rc;
    if (q->gateway && !sr_id_str_ok(q->gateway))
        return sr_errinfo_set(ei, SR_EINVAL, "gateway: not an id ([A-Za-z0-9._-]{1,64})");
    if (q->gateway && q->op) {
        r = (sr_rec)SR_REC_INIT;
        if (sr_read_registry(e, q->op, SR_RG_GATEWAY, q->gateway, &r, &re) != SR_OK)
            rc = sr_errinfo_set(ei, SR_ENOTFOUND, "gateway: no gateway '%s' of operator '%s'", q->gateway, q->op);
        sr_rec_close(&r);
        if (rc) return rc;
    }
    for (size_t i = 0; i < q->npoints; i++) {
        uint32_t pt;
        if (!sr_id_str_ok(q->points[i]) || sr_engine_point(e, q->op, q->points[i], &pt, NULL) != SR_OK)
            return sr_errinfo_set(ei, SR_ENOTFOUND, "point: no data point '%.64s' of operator '%s'", q->points[i],
                                  q->op);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(q->points[k], q->points[i]))
                return sr_errinfo_set(ei, SR_EINVAL, "point: '%s' named twice", q->points[i]);
        char gw[72];
        point_gateway(b, q->op, q->points[i], gw);
        size_t k = 0;
        while (k < b->npgw && strcmp(b->pgw[k], gw)) k++;
        if (k == b->npgw && gw[0]) snprintf(b->pgw[b->npgw++], 72, "%s", gw);
    }
    return SR_OK;
}

int sr_report_build(sr_engine *e, const sr_report_q *q, sr_report **out, sr_errinfo *ei)
{
    *out = NULL;
    bctx b = {.e = e, .q = q, .cap = q->cap ? q->cap : SR_REPORT_CAP};
    int rc = check_q(e, q, &b, ei);
    if (rc) return rc;
    sr_report *r = sr_calloc(1, sizeof *r);
    if (!r || !(r->mem = sr_calloc(1, sizeof(rmem)))) {
        sr_free(r);
        return sr_errinfo_set(ei, SR_ENOMEM, "out of memory");
    }
    b.r = r;
    r->from_ms = q->from_ms;
    r->to_ms = q->to_ms;
    r->cap = b.cap;
    r->op = adup(r, q->op);
    r->gateway = adup(r, q->gateway);
    const char **pts = amem(r, (q->npoints + 1) * sizeof *pts);
    if (!r->op || !r->gateway || !pts) rc = SR_ENOMEM;
    for (size_t i = 0; !rc && i < q->npoints; i++) {
        if (!(pts[i] = adup(r, q->points[i]))) rc = SR_ENOMEM;
        else b.inv[b.ninv++] = (inv){r->op, pts[i], "filter"};
    }
    r->points = pts;
    r->npoints = q->npoints;
    uint64_t start = 1, last;
    if (!rc) rc = window_seqs(&b, &start);
    if (!rc) rc = sr_engine_log_each(e, start, on_event, &b, &last);
    if (!rc) pend_settle(&b);
    for (size_t i = 0; !rc && i < b.ninv; i++) rc = read_series(&b, &b.inv[i]);
    sr_free(b.rh);
    if (!rc) SR_INVARIANT(sr_report_check(r, q->chart_max ? q->chart_max : SR_REPORT_CHART_MAX));
    if (rc) {
        sr_report_free(r);
        return sr_errinfo_set(ei, rc, "the report could not be read: %s", sr_strerror(rc));
    }
    *out = r;
    return SR_OK;
}
