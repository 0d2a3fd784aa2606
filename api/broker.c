/*
 * api/broker.c -- requests, monitors and control (see broker.h and
 * docs/requests.md).
 *
 * REQUEST STATES (one app request, split in one part per gateway)
 *   created (durable) -> parts handed out (DISPATCHED) -> each part answered
 *   (SUCCEEDED / FAILED) or timed out at the deadline (TIMED_OUT) -> the
 *   app-level outcome is written -> the app is answered.
 * INVARIANTS
 *  (1) A request is handed to a gateway only after its creation is durable;
 *      the app is answered only after the outcome is durable; a gateway's
 *      answer is acknowledged only after it is durable.
 *  (2) An answer being made durable marks its part busy: a second answer
 *      or the deadline does not settle the part twice.
 *  (3) The app-level outcome is written once, when no part is open and no
 *      answer is in flight.
 *  (4) Monitors are event-sourced: the latest MonitorEvent (index) holds the
 *      whole state (gateways, which acked); the memory copy is a cache that
 *      is loaded per operator from the index.
 *  (5) A gateway's message is used only after every field was checked
 *      against what it answers (gw_result, gw_periodic, ...): its type and
 *      topic, the request's kind and gateway, the dataIds the request (or
 *      monitor) asked for, the control point's type. A refusal names the
 *      field and stores nothing; nothing unchecked reaches cv_one or an app.
 *  (6) What an app gets (sync answer, GET /requests/{id}, pushes) holds only
 *      values its request or monitor asked for AND that the app's grants,
 *      read from the engine at delivery (grants_load), allow; the rest is
 *      counted (withheldValues) and logged. A deleted or disabled app has
 *      no grants (sr_grants_load): nothing reaches it (R-ID-4).
 *  (7) An answer that stored nothing (a duplicate messageId) settles nothing.
 *  (8) A monitor with an endAt ends there: the broker's monitor timer (armed
 *      for the earliest endAt of the loaded STARTING/RUNNING monitors) stops
 *      it as an app's DELETE would (STOPPING and PERIODIC_STOP to the
 *      gateways that saw it, else STOPPED at once), the event's actor being
 *      the system; a reconnecting gateway gets no START for it; and values
 *      of it timestamped after endAt are refused (E1001), nothing stored or
 *      pushed. An endAt already past is refused at creation (E1001).
 *  (9) The tables agree with their counts (sr_broker_check): the live table
 *      is a proper doubly linked list of nlive requests; each operator's
 *      count (oplives) is the number of its live requests counted in it,
 *      and these counts add up to the counted live requests; a live request
 *      is referenced (refs >= 1) and its parts point back to it; nopen is
 *      the number of its parts still CREATED/DISPATCHED, inflight the number
 *      of its busy parts (2); a created request with no open part and no
 *      answer in flight is finished (3); a monitor's state is a known one and
 *      it has its gateway arrays; a fetch waiter belongs to its gateway.
 *      SR_INVARIANT runs the whole check at every change of the live table
 *      (live_add, a request leaving it), and the one request's part at each
 *      of its own transitions (req_check: answer, deadline, handed out,
 *      created, failed for an offline gateway), never per gateway message
 *      over the whole table.
 * (10) A monitor's state agrees with its gateways' acknowledgements
 *      (mon_check): it is STARTING, RUNNING, STOPPING or STOPPED, with its
 *      dataIds and gateway arrays; an acknowledgement is 0 or 1; a RUNNING
 *      monitor was acknowledged by every gateway, a STARTING or STOPPING
 *      one not yet by all (the last acknowledgement moves it on); an endAt
 *      is after its startAt. SR_INVARIANT runs it at each of its transitions
 *      (created, loaded, an acknowledgement, stopped by the app or its
 *      endAt).
 * (11) Across cluster nodes (api/cluster_req.h, docs/cluster.md "Request
 *      flows across nodes"): a part for a gateway that is not connected here
 *      but present on node N is relayed to N (a REQ) and is DISPATCHED as
 *      when handed out; it is relayed again when the gateway's presence
 *      moves (another node, or a new session there). On N the relayed part
 *      is a live request of one part (relay_from set, no RequestCreated of
 *      its own) handed out, answered, checked (5) and made durable (1, 2)
 *      exactly as a local one; once its answer is durable N sends the
 *      checked result (a RES) to the origin and drops the request, writing
 *      no app-level outcome; its deadline drops it silently (the origin's
 *      deadline is the one that counts). At the origin a RES settles only
 *      an open part of a request of this node, after its values were
 *      checked again against the part's dataIds; a duplicate or late RES
 *      settles nothing. It settles through the same path as a gateway's
 *      answer (2, 3, 6), its transition's source naming the relaying node.
 * (12) Monitors across cluster nodes (docs/cluster.md "Monitors across
 *      nodes"): a monitor is run by the node that created it (its
 *      MonitorEvent's node; a node loads no monitor of another node from
 *      its index). Its START / STOP parts follow (11) (relayed, with the
 *      monitor's id; N keeps a relayed one RELAY_MON_KEEP_MS at most); N
 *      settles one by the gateway's GW_MONITOR_ACK (checked as on one
 *      node, its transition durable in N's log) and sends the result; the
 *      origin moves the monitor as for a local acknowledgement (source
 *      node:N). A relayed START makes N keep a bounded rmon (the monitor's
 *      id, operator, gateway, node, the gateway's dataIds, endAt) by which
 *      it checks the gateway's GW_PERIODIC_DATA as on one node, makes it
 *      durable in N's log, acknowledges the gateway, and sends the values
 *      (DATA: the event as submitted, its seq) to the monitor's node. That
 *      node checks them again against the monitor, applies the event as a
 *      replicated one (origin N:seq, exactly once: the stream's copy and
 *      the relay's are one) and derives the app's push from it as for a
 *      local GW_PERIODIC_DATA. An rmon ends with its STOP's result, a new
 *      START of the same monitor, or 20 s of DATA its node did not hear.
 * (13) An app's monitors from any node (docs/cluster.md "Monitors across
 *      nodes", "From any node"): the list is this node's monitors of the
 *      app and, from the index, the app's monitors that other nodes run
 *      (their last recorded state). A DELETE of a monitor this node does
 *      not run but whose indexed MonitorEvent names another node N as its
 *      node and the caller as its app is asked of N (an ASK, relay) and
 *      answered with N's own answer (an ANS: status and body); N stops it
 *      exactly as for a DELETE made there (the same checks: operator and
 *      app), never asking again (an ASK is served here or answered
 *      unknown). Every ASK ends once: N's answer, or 503 E9002 (N not
 *      heard within 1 s, or no answer within ASK_MS; at most MAX_ASKS wait,
 *      one more is answered 503 at once). Nothing is recorded on this node
 *      for such a DELETE: the node that runs the monitor records its stop.
 */
#include "api/broker.h"
#include "api/cluster.h"
#include "api/cluster_req.h"

#include "api/httpu.h"
#include "api/loopq.h"

#include "api/pki.h"
#include "api/push.h"
#include "api/slog.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "storage/crypto.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    REHAND_MS = 5000,         /* a handed-out request unanswered this long is handed out again by a fetch */
    HTTP_ONLINE_MS = 30000,   /* an HTTP gateway that fetched this recently is connected */
    MAX_LIVE = 100000,        /* open requests, all operators (default of [server] requests_max) */
    MAX_LIVE_OP = 10000,      /* ... of one operator (default of [server] requests_per_operator) */
    MAX_MONS_OP = 1000,       /* monitors not stopped, one operator (default of [server] monitors_per_operator) */
    STOPPED_KEPT = 1000,      /* stopped monitors kept, one operator (default of [server] stopped_monitors_kept) */
    MAX_WAIT_MS = 60000,
    RELAY_MON_KEEP_MS = 60000, /* (12) a relayed START / STOP part unacknowledged this long is dropped on N */
    ASK_MS = 10000,            /* (13) an ASK heard by the monitor's node: its answer waited for this long */
    MAX_ASKS = 1024,           /* (13) ASKs waiting for their answer */
};

typedef struct areq areq;
typedef struct mon mon;

typedef struct part {
    areq *r;
    char gw[72];
    int state; /* RequestState */
    int busy;  /* (2) */
    int handed;
    uint64_t handed_at;
    json_t *wire;   /* the request object the gateway gets */
    json_t *values; /* answered values (array) */
    json_t *applied;
    json_t *sig;    /* the answer's verified protection: {gatewayId, protection, signedBody} (docs/signatures.md) */
    sr_wire code;
    char msg[160];
    char relay_node[32];  /* (11) handed to the gateway on that node ("" none) */
    int64_t relay_since;  /* ... its presence's since_ms then */
} part;

struct areq {
    sr_broker *b;
    char id[24], op[72], app[72], monitor[24];
    int kind;
    int state;
    part *parts;
    size_t nparts, nopen;
    int inflight, refs, created, finished, offline, final_state;
    uint64_t final_seq; /* the outcome's event (its push's delivery id) */
    int counted; /* in its operator's oplive count */
    int64_t created_ms, deadline_ms;
    uv_timer_t timer;
    int timer_init;
    sr_app_cb cb;
    void *cbctx;
    int async;
    json_t *value, *protection;
    char relay_from[32]; /* (11) a relayed part of another node's request: that node ("" a request of this node) */
    areq *next, *prev;
};

struct mon {
    char id[24], op[72], app[72];
    char node[32]; /* (12) the cluster node that runs it ("" one node) */
    int state;
    json_t *data_ids;   /* array of strings */
    char (*gws)[72];
    int *acked;
    size_t ngws;
    uint32_t interval_ms;
    int64_t start_ms, end_ms, created_ms;
    mon *next;
};

typedef struct fwait fwait;

/* (12) a monitor of another node whose gateway is connected here */
typedef struct rmon {
    char op[72], gw[72], id[24], app[72], node[32];
    json_t *data_ids;      /* the gateway's dataIds (its START part) */
    int64_t end_ms;        /* the monitor's endAt (0 none) */
    int64_t unheard_since; /* wall ms of the first DATA its node did not hear since one it heard (0: heard) */
    struct rmon *next;
} rmon;

/* (13) this node's DELETE of another node's monitor, waiting for its answer */
typedef struct mask {
    char id[24], node[32], op[72], monitor[24];
    sr_app_cb cb;
    void *ctx;
    uint64_t due; /* mono ms */
    struct mask *next;
} mask;

typedef struct gwent {
    char op[72], gw[72];
    sr_gwlink link; /* link.ctx NULL: no MQTT session */
    uint64_t http_seen;
    fwait *waiters;
    struct gwent *next;
} gwent;

struct fwait {
    sr_broker *b;
    gwent *g;
    char corr[72];
    int max;
    uv_timer_t timer;
    sr_fetch_cb cb;
    void *ctx;
    fwait *next;
};

typedef struct oploaded {
    char op[72];
    struct oploaded *next;
} oploaded;

/* the open requests of one operator (its share of the live table) */
typedef struct oplive {
    char op[72];
    size_t n;
    struct oplive *next;
} oplive;

enum { J_CREATED, J_ANSWER, J_FINAL, J_STORE, J_MONITOR, J_FIRE, J_PERIODIC /* J_STORE + push */,
       J_RDATA /* (12) relayed values applied on the monitor's node: push */ };

typedef struct job {
    int what;
    sr_broker *b;
    areq *r;
    part *p;
    int p_state;
    json_t *p_values, *p_applied, *p_sig;
    sr_wire p_code;
    char p_msg[160];
    sr_gw_answer_cb gcb;
    void *gctx;
    const char *ok_msg;
    sr_app_cb acb; /* J_MONITOR: the app's answer */
    void *actx;
    int a_status;
    json_t *a_body;
    sr_result res;
    /* push (J_PERIODIC): the event as submitted; once durable (seq), the
     * push is derived from it as the recovery at start derives it */
    sr_buf push_ev;
    sr_relay *rel; /* (12) J_PERIODIC on the gateway's node: the DATA to send once durable */
    char rel_node[32]; /* ... to that node */
    sr_loopq_item li;
} job;

struct sr_broker {
    uv_loop_t *loop;
    sr_engine *eng;
    char dir[1024];
    areq *live;
    size_t nlive;
    oplive *oplives;          /* open requests per operator */
    size_t max_live, max_live_op; /* [server] requests_max, requests_per_operator */
    size_t max_mons_op;           /* [server] monitors_per_operator */
    size_t stopped_kept;          /* [server] stopped_monitors_kept */
    uint64_t quota_logged;        /* when a quota refusal was last logged */
    size_t quota_refused;         /* refusals since */
    mon *mons;
    oploaded *loaded;
    gwent *gws;
    sr_loopq doneq; /* engine completions */
    int closing; /* the engine is closing: submit nothing more */
    sr_push *push; /* NULL: no push to apps */
    sr_creq *creq; /* (11) the cluster's relay; NULL: a single node */
    rmon *rmons;   /* (12) */
    uv_timer_t mon_timer; /* (8): fires at mon_due */
    int64_t mon_due;      /* wall ms the timer is armed for; 0 not armed */
    mask *asks;           /* (13) */
    size_t nasks;
    uv_timer_t ask_timer; /* (13): fires at the earliest ASK's due */
};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

static void new_id(char prefix, char out[24])
{
    uint8_t r[8];
    char hex[17];
    if (sr_random(r, sizeof r) != SR_OK) {
        uint64_t x = uv_hrtime() ^ (uint64_t)(uintptr_t)out;
        memcpy(r, &x, 8);
    }
    sr_hex(r, 8, hex);
    snprintf(out, 24, "%c%s", prefix, hex);
}

static const char *rs_name(int s)
{
    switch (s) {
    case SR_RS_CREATED: return "PENDING";
    case SR_RS_DISPATCHED: return "DISPATCHED";
    case SR_RS_ACKNOWLEDGED: return "DISPATCHED";
    case SR_RS_SUCCEEDED: return "SUCCEEDED";
    case SR_RS_FAILED: return "FAILED";
    case SR_RS_TIMED_OUT: return "TIMED_OUT";
    case SR_RS_CANCELLED: return "CANCELLED";
    default: return "PENDING";
    }
}

static const char *rk_name(int k)
{
    switch (k) {
    case SR_RK_IMMEDIATE: return "IMMEDIATE";
    case SR_RK_PERIODIC_START: return "PERIODIC_START";
    case SR_RK_PERIODIC_STOP: return "PERIODIC_STOP";
    case SR_RK_CONTROL: return "CONTROL";
    default: return "UNKNOWN";
    }
}

static const char *ms_name(int s)
{
    switch (s) {
    case SR_MS_STARTING: return "STARTING";
    case SR_MS_RUNNING: return "RUNNING";
    case SR_MS_STOPPING: return "STOPPING";
    case SR_MS_STOPPED: return "STOPPED";
    default: return "UNKNOWN";
    }
}

static json_t *result_obj(sr_wire code, const char *msg)
{
    return json_pack("{s:s,s:s}", "code", sr_wire_code(code), "message", msg ? msg : "");
}

static json_t *error_body(sr_wire code, const char *msg, json_t *detail)
{
    json_t *r = result_obj(code, msg);
    if (r && detail) json_object_set(r, "detail", detail);
    return json_pack("{s:o}", "result", r);
}


static void app_answer(sr_app_cb cb, void *ctx, sr_wire code, const char *msg)
{
    json_t *body = error_body(code, msg, NULL);
    cb(ctx, sr_wire_status(code), body);
    json_decref(body);
}

/* ------------------------------------------------------------------------ */
/* Engine completions                                                         */

static void on_done(void *ctx, const sr_result *r)
{
    job *j = ctx;
    j->res = *r;
    sr_loopq_push(&j->b->doneq, &j->li);
}

static void fire_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "request event not stored", "error=%s", sr_err_name(r->rc));
}

/* Submit n events as one command; j NULL: fire and forget. */
static int submit(sr_broker *b, sr_buf *evs, size_t *lens, size_t n, job *j)
{
    sr_slice sl[64];
    if (b->closing) return SR_ECLOSED;
    if (n > 64) return SR_EINVAL;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        sl[i].data = evs->data + off;
        sl[i].len = lens[i];
        off += lens[i];
    }
    return j ? sr_cluster_submit(b->eng, sl, n, on_done, j) /* answered once durable (and in NATS) */
             : sr_engine_submit(b->eng, sl, n, fire_done, j);
}

/* events are appended one after another to one buffer; lens[] records them */
typedef struct evlist {
    sr_buf b;
    size_t lens[64];
    size_t n;
} evlist;

/* Record the event a builder (sr_cmd_*, rc its return) appended to l->b
 * from offset before; on failure (or a full list) it is cut off again. */
static int evl_end(evlist *l, size_t before, int rc)
{
    if (!rc && l->n == 64) rc = SR_EINVAL;
    if (rc) l->b.len = before;
    else l->lens[l->n++] = l->b.len - before;
    return rc;
}

/* A transition event of request id (gw: its part; NULL: the app-level request). */
static int evl_transition_src(evlist *l, const char *op, const char *actor, sr_actor_kind kind, const char *msgid,
                              const char *source, const sr_request_transition *rt)
{
    sr_cmd_env env = {op, actor, kind, msgid, source};
    size_t at = l->b.len;
    return evl_end(l, at, sr_cmd_request_transition(&env, rt, &l->b));
}

static int evl_transition(evlist *l, const char *op, const char *actor, sr_actor_kind kind, const char *msgid,
                          const sr_request_transition *rt)
{
    sr_cmd_env env = {op, actor, kind, msgid, NULL};
    size_t at = l->b.len;
    return evl_end(l, at, sr_cmd_request_transition(&env, rt, &l->b));
}

static int evl_add_raw(evlist *l, const sr_buf *packed)
{
    if (l->n == 64) return SR_EINVAL;
    int rc = sr_buf_append(&l->b, packed->data, packed->len);
    if (!rc) l->lens[l->n++] = packed->len;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Values: JSON <-> ControlValue                                              */

/* A value object {dataId, timestamp, value, quality} as the app sees it. */
static json_t *value_json(const char *data_id, int64_t ts, json_t *value, int quality)
{
    char t[32];
    sr_rfc3339_format(ts, t);
    return json_pack("{s:s,s:s,s:O,s:s}", "dataId", data_id, "timestamp", t, "value", value ? value : json_null(),
                     "quality", sr_quality_str(quality >= 0 ? (unsigned)quality : SR_Q_GOOD));
}

/* Normalise a gateway's (validated) values array into the app's form. */
static json_t *values_norm(json_t *in)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(in, i, v)
    {
        int64_t ts = 0;
        json_t *t = json_object_get(v, "timestamp"), *q = json_object_get(v, "quality");
        if (json_is_string(t)) (void)!sr_rfc3339_parse(json_string_value(t), json_string_length(t), &ts);
        int quality = json_is_string(q) ? sr_quality_parse(json_string_value(q), json_string_length(q)) : SR_Q_GOOD;
        if (quality < 0) quality = SR_Q_GOOD;
        json_array_append_new(out, value_json(json_string_value(json_object_get(v, "dataId")), ts,
                                              json_object_get(v, "value"), quality));
    }
    return out;
}

/* ControlValue array for a normalised values array (types from the masters).
 * Strings point into the JSON; free cvs and *ptrs with cv_free. */
typedef struct cvset {
    sr_control_value *cv;
    size_t n;
} cvset;

static void cv_free(cvset *s)
{
    free(s->cv);
    memset(s, 0, sizeof *s);
}

/* data_id NULL (no such field): SR_EINVAL, c stays an empty value (callers
 * validate before; this is the last line of defence, never a crash). */
static int cv_one(sr_engine *e, const char *op, const char *data_id, json_t *value, sr_control_value *c)
{
    memset(c, 0, sizeof *c);
    if (!data_id) return SR_EINVAL;
    c->data_id = data_id;
    sr_point_info info;
    int type = 0;
    if (sr_engine_point_info(e, op, data_id, &info) == SR_OK) type = (int)info.type;
    else type = json_is_boolean(value) ? SR_VT_BOOL : json_is_string(value) ? SR_VT_STRING : SR_VT_NUMBER;
    c->type = (sr_vtype)type;
    switch (type) {
    case SR_VT_NUMBER: c->f = json_number_value(value); break;
    case SR_VT_INTEGER: c->i = json_is_integer(value) ? json_integer_value(value) : (int64_t)json_number_value(value); break;
    case SR_VT_BOOL: c->b = json_is_true(value); break;
    default: c->s = json_is_string(value) ? json_string_value(value) : ""; break;
    }
    return SR_OK;
}

static int cv_build(sr_engine *e, const char *op, json_t *vals, cvset *s)
{
    memset(s, 0, sizeof *s);
    size_t n = json_array_size(vals);
    if (!n) return SR_OK;
    s->cv = calloc(n, sizeof *s->cv);
    if (!s->cv) {
        cv_free(s);
        return SR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(vals, i);
        if (cv_one(e, op, json_string_value(json_object_get(v, "dataId")), json_object_get(v, "value"), &s->cv[i])) {
            cv_free(s);
            return SR_EINVAL;
        }
        json_t *t = json_object_get(v, "timestamp");
        int64_t ts = 0;
        if (json_is_string(t)) (void)!sr_rfc3339_parse(json_string_value(t), json_string_length(t), &ts);
        s->cv[i].timestamp_ms = ts;
        json_t *q = json_object_get(v, "quality");
        int quality = json_is_string(q) ? sr_quality_parse(json_string_value(q), json_string_length(q)) : SR_Q_GOOD;
        s->cv[i].quality = quality < 0 ? SR_Q_GOOD : quality;
    }
    s->n = n;
    return SR_OK;
}

static json_t *cv_json(const sr_control_value *c)
{
    switch (c->type) {
    case SR_VT_INTEGER: return json_integer(c->i);
    case SR_VT_BOOL: return json_boolean(c->b);
    case SR_VT_STRING: return json_string(c->s);
    default: return json_real(c->f);
    }
}

/* ------------------------------------------------------------------------ */
/* What an app may see, at delivery                                           */

/* The app's grants as the engine holds them NOW (not the copy its session
 * token took at login): every answer, push and status is filtered through
 * them when it is delivered (docs/requests.md "What reaches the app"). */
typedef struct grantset {
    sr_grant *g;
    size_t n;
} grantset;

static void grants_free(grantset *gs)
{
    free(gs->g);
    memset(gs, 0, sizeof *gs);
}

int sr_grants_load(sr_engine *e, const char *op, const char *app, sr_grant **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re, *rp = &re;
    /* a deleted or disabled app has no grants (R-ID-4): nothing is delivered to it */
    int rc = sr_read_registry(e, op, SR_RG_APP, app, &r, rp);
    int none = rc == SR_ENOTFOUND || (!rc && rp->disabled);
    sr_rec_close(&r);
    if (rc && rc != SR_ENOTFOUND) return rc;
    if (none) return SR_OK;
    rc = sr_list_registry(e, op, SR_RG_GRANT, &r);
    size_t count = rc ? 0 : sr_rec_count(&r);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    sr_grant *g = NULL;
    if (!rc && count && !(g = calloc(count, sizeof *g))) rc = SR_ENOMEM;
    size_t k = 0;
    for (int more; !rc && count && (more = sr_rec_next_registry(&r, rp)) != 0;) {
        if (more == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
        if (more < 0) break;
        /* data-point grants only: a grant on documents or files (grant_kind
         * set, engine/store_access.c) reaches no data point */
        if (!strcmp(rp->app_id, app) && !rp->grant_kind[0] && k < count) {
            snprintf(g[k].pattern, sizeof g[k].pattern, "%s", rp->pattern);
            g[k++].access = !strcmp(rp->access, "read") ? 1 : !strcmp(rp->access, "control") ? 2 : 3;
        }
    }
    sr_rec_close(&r);
    if (rc) {
        free(g);
        return rc;
    }
    *out = g;
    *n = k;
    return SR_OK;
}

int sr_grants_allow(const sr_grant *g, size_t n, const char *data_id, int access)
{
    if (!data_id) return 0;
    size_t dl = strlen(data_id);
    for (size_t i = 0; i < n; i++) {
        if (!(g[i].access & access)) continue;
        const char *pat = g[i].pattern;
        size_t pl = strlen(pat);
        if (pl && pat[pl - 1] == '*') {
            if (dl >= pl - 1 && !memcmp(data_id, pat, pl - 1)) return 1;
        } else if (!strcmp(pat, data_id))
            return 1;
    }
    return 0;
}

/* On any error the set is empty (nothing is delivered) and it is logged. */
static void grants_load(sr_broker *b, const char *op, const char *app, grantset *gs)
{
    int rc = sr_grants_load(b->eng, op, app, &gs->g, &gs->n);
    if (rc)
        sr_slog(SR_LOG_ERROR, "grants not readable: nothing delivered to the app", "op=%s app=%s error=%s", op, app,
                sr_err_name(rc));
}

static int grants_allow(const grantset *gs, const char *data_id, int access)
{
    return sr_grants_allow(gs->g, gs->n, data_id, access);
}

/* The values (app form) the app gets: asked for by the request (or the
 * monitor) AND readable by the app now; *withheld counts the others. Each
 * asked id is judged once (sorted), so a message of many values costs
 * n log m. */
typedef struct verdict {
    const char *id;
    int ok;
} verdict;

static int verdict_cmp(const void *x, const void *y) { return strcmp(((const verdict *)x)->id, ((const verdict *)y)->id); }

static json_t *values_for_app(json_t *vals, const json_t *asked, const grantset *gs, size_t *withheld)
{
    size_t na = json_array_size(asked);
    verdict *vd = calloc(na ? na : 1, sizeof *vd);
    json_t *out = vd ? json_array() : NULL;
    if (!out) { /* out of memory: nothing is delivered */
        free(vd);
        *withheld += json_array_size(vals);
        return NULL;
    }
    for (size_t i = 0; i < na; i++) {
        const char *d = json_string_value(json_array_get(asked, i));
        vd[i] = (verdict){d ? d : "", d && grants_allow(gs, d, 1)};
    }
    qsort(vd, na, sizeof *vd, verdict_cmp);
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v)
    {
        const char *d = json_string_value(json_object_get(v, "dataId"));
        verdict key = {d ? d : "", 0}, *hit = d ? bsearch(&key, vd, na, sizeof *vd, verdict_cmp) : NULL;
        if (hit && hit->ok) json_array_append(out, v);
        else (*withheld)++;
    }
    free(vd);
    return out;
}

static void log_withheld(const char *op, const char *app, const char *what, const char *id, size_t n)
{
    if (n)
        sr_slog(SR_LOG_WARN, "values withheld from the app (not asked for, or not granted now)",
                "op=%s app=%s %s=%s withheld=%zu", op, app, what, id, n);
}

/* ------------------------------------------------------------------------ */
/* Gateways                                                                   */

static gwent *gw_find(sr_broker *b, const char *op, const char *gw, int create)
{
    for (gwent *g = b->gws; g; g = g->next)
        if (!strcmp(g->gw, gw) && !strcmp(g->op, op)) return g;
    if (!create) return NULL;
    gwent *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    snprintf(g->op, sizeof g->op, "%s", op);
    snprintf(g->gw, sizeof g->gw, "%s", gw);
    g->next = b->gws;
    b->gws = g;
    return g;
}

static int gw_online(sr_broker *b, const char *op, const char *gw)
{
    gwent *g = gw_find(b, op, gw, 0);
    if (!g) return 0;
    return g->link.ctx || g->waiters || (g->http_seen && mono_ms() - g->http_seen < HTTP_ONLINE_MS);
}

static json_t *envelope(const char *type, const char *corr, json_t *body)
{
    char id[24], ts[32];
    new_id('S', id);
    sr_rfc3339_format(wall_ms(), ts);
    json_t *h = json_pack("{s:s,s:s,s:s}", "messageType", type, "messageId", id, "timestamp", ts);
    if (h && corr && corr[0]) json_object_set_new(h, "correlationId", json_string(corr));
    return json_pack("{s:o,s:o}", "header", h, "body", body);
}

/* the AP-IF's writer (member order kept, numbers as sr_json_number: a
 * control value goes to the gateway as the app sent it, 68.29 and not
 * jansson's 68.290000000000006) */
static int dump_to(json_t *o, sr_buf *out) { return o ? sr_json_write(out, o) : SR_ENOMEM; }

static const char *req_check(const areq *r); /* (9) */

/* A part was handed out: first time -> DISPATCHED event. */
static void part_handed(sr_broker *b, part *p)
{
    p->handed = 1;
    p->handed_at = mono_ms();
    if (p->state != SR_RS_CREATED) return;
    p->state = SR_RS_DISPATCHED;
    if (p->r->state == SR_RS_CREATED) p->r->state = SR_RS_DISPATCHED;
    SR_INVARIANT(req_check(p->r));
    sr_request_transition rt = {.request_id = p->r->id, .gateway_id = p->gw, .state = SR_RS_DISPATCHED};
    evlist l = {0};
    sr_buf_init(&l.b);
    if (evl_transition(&l, p->r->op, "system", SR_ACTOR_SYSTEM, NULL, &rt) == SR_OK)
        (void)!submit(b, &l.b, l.lens, l.n, NULL);
    sr_buf_release(&l.b);
}

static int part_open(const part *p)
{
    return (p->state == SR_RS_CREATED || p->state == SR_RS_DISPATCHED) &&
           !p->busy;
}

/* The gateway's open parts that may be handed out (fresh: never handed in
 * this session, or handed REHAND_MS ago and still unanswered). */
static size_t collect(sr_broker *b, gwent *g, int fresh_only, part **out, size_t max)
{
    size_t n = 0;
    uint64_t now = mono_ms();
    for (areq *r = b->live; r && n < max; r = r->next) {
        if (!r->created || r->finished || strcmp(r->op, g->op)) continue;
        for (size_t i = 0; i < r->nparts && n < max; i++) {
            part *p = &r->parts[i];
            if (!part_open(p) || strcmp(p->gw, g->gw)) continue;
            if (fresh_only && p->handed && now - p->handed_at < REHAND_MS) continue;
            out[n++] = p;
        }
    }
    return n;
}

static int requests_envelope(part **ps, size_t n, const char *type, const char *corr, sr_buf *out)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append(arr, ps[i]->wire);
    json_t *env = envelope(type, corr, json_pack("{s:o}", "requests", arr));
    int rc = dump_to(env, out);
    json_decref(env);
    return rc;
}

static void fwait_finish(fwait *w, part **ps, size_t n);

/* Hand out what waits for gateway g: MQTT push, or the oldest HTTP fetch. */
static void gw_deliver(sr_broker *b, gwent *g)
{
    part *ps[256];
    if (g->link.ctx) {
        size_t n = collect(b, g, 1, ps, 256);
        if (!n) return;
        sr_buf env;
        sr_buf_init(&env);
        if (requests_envelope(ps, n, "GW_REQUESTS", NULL, &env) == SR_OK && g->link.send(g->link.ctx, "requests", &env))
            for (size_t i = 0; i < n; i++) part_handed(b, ps[i]);
        sr_buf_release(&env);
        return;
    }
    while (g->waiters) {
        fwait *w = g->waiters;
        size_t n = collect(b, g, 1, ps, (size_t)w->max < 256 ? (size_t)w->max : 256);
        if (!n) return;
        g->waiters = w->next;
        fwait_finish(w, ps, n);
    }
}

static void gw_deliver_op(sr_broker *b, const char *op, const char *gw)
{
    gwent *g = gw_find(b, op, gw, 0);
    if (g) gw_deliver(b, g);
}

/* ---- (11) across cluster nodes ---- */

/* connected here, or present on another node */
static int gw_reachable(sr_broker *b, const char *op, const char *gw)
{
    return gw_online(b, op, gw) || (b->creq && sr_creq_where(b->creq, op, gw, NULL));
}

/* (12) the rmon of another node's monitor id on gw (NULL none) */
static rmon *rmon_find(sr_broker *b, const char *op, const char *id, const char *gw)
{
    for (rmon *x = b->rmons; x; x = x->next)
        if (!strcmp(x->id, id) && !strcmp(x->op, op) && !strcmp(x->gw, gw)) return x;
    return NULL;
}

static void rmon_drop(sr_broker *b, const char *op, const char *id, const char *gw)
{
    for (rmon **pp = &b->rmons; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id) && !strcmp((*pp)->op, op) && !strcmp((*pp)->gw, gw)) {
            rmon *x = *pp;
            *pp = x->next;
            json_decref(x->data_ids);
            free(x);
            return;
        }
}

/* (12) a relayed START of monitor m->monitor: this gateway's rmon (made or
 * made again: the START says what holds now). NULL: refused (why set). */
static rmon *rmon_put(sr_broker *b, const sr_relay *m, const char **why)
{
    rmon *x = rmon_find(b, m->op, m->monitor, m->gw);
    if (!x) {
        size_t n = 0;
        for (rmon *y = b->rmons; y; y = y->next) n += !strcmp(y->op, m->op);
        if (n >= b->max_mons_op) {
            *why = "too many monitors of this operator relayed here ([server] monitors_per_operator)";
            return NULL;
        }
        if (!(x = calloc(1, sizeof *x))) {
            *why = "out of memory";
            return NULL;
        }
        snprintf(x->op, sizeof x->op, "%s", m->op);
        snprintf(x->gw, sizeof x->gw, "%s", m->gw);
        snprintf(x->id, sizeof x->id, "%s", m->monitor);
        x->next = b->rmons;
        b->rmons = x;
    }
    snprintf(x->app, sizeof x->app, "%s", m->app);
    snprintf(x->node, sizeof x->node, "%s", m->from);
    json_decref(x->data_ids);
    x->data_ids = json_incref(json_object_get(m->part, "dataIds"));
    json_t *e = json_object_get(m->part, "endAt");
    int64_t ms = 0;
    x->end_ms = json_is_string(e) && !sr_rfc3339_parse(json_string_value(e), json_string_length(e), &ms) ? ms : 0;
    x->unheard_since = 0;
    return x;
}

/* A relay message's head: from this node, about (op, gw, app, request id). */
static void relay_head(sr_broker *b, sr_relay *m, int type, int kind, const char *op, const char *gw, const char *app,
                       const char *id)
{
    m->type = type;
    m->kind = kind;
    snprintf(m->from, sizeof m->from, "%s", sr_creq_node(b->creq));
    snprintf(m->op, sizeof m->op, "%s", op);
    snprintf(m->gw, sizeof m->gw, "%s", gw);
    snprintf(m->app, sizeof m->app, "%s", app);
    snprintf(m->id, sizeof m->id, "%s", id);
}

/* Relay p to the node its gateway is present on (none: nothing). */
static void relay_out(sr_broker *b, part *p)
{
    int64_t since = 0;
    const char *node = b->creq ? sr_creq_where(b->creq, p->r->op, p->gw, &since) : NULL;
    if (!node) return;
    areq *r = p->r;
    /* (12) a monitor's part has no deadline: N keeps it RELAY_MON_KEEP_MS */
    sr_relay m = {.deadline_ms = r->deadline_ms ? r->deadline_ms : wall_ms() + RELAY_MON_KEEP_MS, .part = p->wire};
    relay_head(b, &m, SR_RELAY_REQ, r->kind, r->op, p->gw, r->app, r->id);
    snprintf(m.monitor, sizeof m.monitor, "%s", r->monitor);
    if (sr_creq_send(b->creq, node, &m) != SR_OK) return;
    sr_relay_count(0, 0, SR_RO_SENT);
    sr_slog(SR_LOG_INFO, "request part relayed", "op=%s request=%s gateway=%s node=%s", r->op, r->id, p->gw, node);
    snprintf(p->relay_node, sizeof p->relay_node, "%s", node);
    p->relay_since = since;
    part_handed(b, p);
}

/* Hand out part k of r: to its gateway here, or relayed to its node. */
static void part_deliver(sr_broker *b, areq *r, size_t k)
{
    part *p = &r->parts[k];
    if (gw_online(b, r->op, p->gw)) gw_deliver_op(b, r->op, p->gw);
    else if (part_open(p)) relay_out(b, p);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                   */

/* (9) One request's own consistency: O(parts). */
static const char *req_check(const areq *r)
{
    if (r->refs < 1) return "(9) a live request is not referenced";
    if (r->nopen > r->nparts) return "(9) a request has more open parts than parts";
    size_t open = 0, busy = 0;
    for (size_t i = 0; i < r->nparts; i++) {
        const part *p = &r->parts[i];
        if (p->r != r) return "(9) a part does not point to its request";
        open += p->state == SR_RS_CREATED || p->state == SR_RS_DISPATCHED;
        busy += p->busy != 0;
    }
    if (open != r->nopen) return "(3) nopen does not count the request's open parts";
    if (r->inflight < 0 || (size_t)r->inflight != busy) return "(2) inflight does not count the busy parts";
    if (r->created && r->nparts && !r->finished && !r->nopen && !r->inflight)
        return "(3) a request with no open part and nothing in flight is not finished";
    return NULL;
}

/* (10) One monitor's consistency: O(gateways). */
static const char *mon_check(const mon *m)
{
    if (m->state < SR_MS_STARTING || m->state > SR_MS_STOPPED) return "(10) a monitor in an unknown state";
    if (!m->gws || !m->acked || !m->data_ids) return "(10) a monitor without its dataIds or gateway arrays";
    size_t acked = 0;
    for (size_t k = 0; k < m->ngws; k++) {
        if (m->acked[k] != 0 && m->acked[k] != 1) return "(10) an acknowledgement that is not 0 or 1";
        acked += (size_t)m->acked[k];
    }
    int all = acked == m->ngws;
    if (m->state == SR_MS_RUNNING && !all) return "(10) a RUNNING monitor not acknowledged by every gateway";
    if ((m->state == SR_MS_STARTING || m->state == SR_MS_STOPPING) && m->ngws && all)
        return "(10) a STARTING or STOPPING monitor acknowledged by every gateway (it should have moved on)";
    if (m->start_ms && m->end_ms && m->end_ms <= m->start_ms) return "(10) a monitor whose endAt is not after its startAt";
    return NULL;
}

void sr_broker_states(const sr_broker *b, void (*fn)(void *ctx, int monitors, const char *state, size_t n),
                      void *ctx)
{
    size_t rq[2] = {0, 0}, ms[SR_MS_STOPPED + 1] = {0};
    for (const areq *r = b->live; r; r = r->next) rq[r->state == SR_RS_CREATED ? 0 : 1]++;
    for (const mon *m = b->mons; m; m = m->next)
        if (m->state >= SR_MS_STARTING && m->state <= SR_MS_STOPPED) ms[m->state]++;
    fn(ctx, 0, rs_name(SR_RS_CREATED), rq[0]);
    fn(ctx, 0, rs_name(SR_RS_DISPATCHED), rq[1]);
    for (int s = SR_MS_STARTING; s <= SR_MS_STOPPED; s++) fn(ctx, 1, ms_name(s), ms[s]);
}

const char *sr_broker_check(const sr_broker *b)
{
    if (!b) return "NULL broker";
    size_t n = 0, counted = 0;
    for (const areq *r = b->live; r; r = r->next) {
        if (r->b != b) return "(9) a live request of another broker";
        if ((r->prev ? r->prev->next : b->live) != r) return "(9) the live table's links do not agree";
        if (++n > b->nlive) break;
        counted += r->counted != 0;
        const char *why = req_check(r);
        if (why) return why;
    }
    if (n != b->nlive) return "(9) nlive is not the number of live requests";
    size_t sum = 0;
    for (const oplive *o = b->oplives; o; o = o->next) {
        size_t mine = 0;
        for (const areq *r = b->live; r; r = r->next) mine += r->counted && !strcmp(r->op, o->op);
        if (mine != o->n) return "(9) an operator's count is not the number of its live requests";
        sum += o->n;
    }
    if (sum != counted) return "(9) the operators' counts do not add up to the counted live requests";
    for (const mon *m = b->mons; m; m = m->next) {
        const char *why = mon_check(m);
        if (why) return why;
    }
    for (const gwent *g = b->gws; g; g = g->next)
        for (const fwait *w = g->waiters; w; w = w->next)
            if (w->g != g || w->b != b) return "(9) a fetch waiter is not its gateway's";
    return NULL;
}

void sr_broker_test_break(sr_broker *b, int what)
{
    int d = what < 0 ? -1 : 1;
    areq *r = b->live;
    switch (what < 0 ? -what : what) {
    case SR_BROKER_BREAK_NLIVE: b->nlive = (size_t)((ptrdiff_t)b->nlive + d); break;
    case SR_BROKER_BREAK_OPCOUNT:
        if (b->oplives) b->oplives->n = (size_t)((ptrdiff_t)b->oplives->n + d);
        break;
    case SR_BROKER_BREAK_NOPEN:
        if (r && r->nparts) r->nopen = (size_t)((ptrdiff_t)r->nopen - d);
        break;
    case SR_BROKER_BREAK_INFLIGHT:
        if (r) r->inflight += d;
        break;
    case SR_BROKER_BREAK_MONACK:
        if (b->mons && b->mons->ngws) b->mons->acked[0] += 2 * d;
        break;
    default: break;
    }
}

/* the count of op's open requests (created with create) */
static oplive *op_live(sr_broker *b, const char *op, int create)
{
    for (oplive *o = b->oplives; o; o = o->next)
        if (!strcmp(o->op, op)) return o;
    if (!create) return NULL;
    oplive *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    snprintf(o->op, sizeof o->op, "%s", op);
    o->next = b->oplives;
    b->oplives = o;
    return o;
}

/* r joins the live table (counted for the whole and for its operator) */
static void live_add(sr_broker *b, areq *r)
{
    r->next = b->live;
    if (b->live) b->live->prev = r;
    b->live = r;
    b->nlive++;
    oplive *o = op_live(b, r->op, 1);
    if (o) o->n++;
    r->counted = o != NULL;
    SR_INVARIANT(sr_broker_check(b));
}

/* NULL if op may open n more requests, else why not (E9002): neither the
 * whole table nor one operator's share may be taken by one operator */
static const char *live_quota(sr_broker *b, const char *op, size_t n)
{
    if (b->nlive + n > b->max_live) return "too many open requests ([server] requests_max)";
    oplive *o = op_live(b, op, 0);
    if ((o ? o->n : 0) + n > b->max_live_op)
        return "too many open requests of this operator ([server] requests_per_operator); wait for some to finish";
    return NULL;
}

/* a refusal by quota, logged at most once a second (a flood of refusals
 * must not become a flood of log lines); the count says how many */
static void quota_log(sr_broker *b, const char *what, const char *op, const char *app, const char *why)
{
    uint64_t now = mono_ms();
    b->quota_refused++;
    if (b->quota_logged && now - b->quota_logged < 1000) return;
    b->quota_logged = now;
    sr_slog(SR_LOG_WARN, what, "op=%s app=%s refused=%zu detail=%s", op, app, b->quota_refused, sr_slog_q(why));
    b->quota_refused = 0;
}

static void areq_free(areq *r)
{
    for (size_t i = 0; i < r->nparts; i++) {
        json_decref(r->parts[i].wire);
        json_decref(r->parts[i].values);
        json_decref(r->parts[i].applied);
        json_decref(r->parts[i].sig);
    }
    free(r->parts);
    json_decref(r->value);
    json_decref(r->protection);
    free(r);
}

static void on_timer_closed(uv_handle_t *h) { areq_free(h->data); }

static void areq_unref(areq *r)
{
    if (--r->refs > 0) return;
    sr_broker *b = r->b;
    if (r->prev) r->prev->next = r->next;
    else if (b->live == r) b->live = r->next;
    if (r->next) r->next->prev = r->prev;
    b->nlive--;
    oplive *o = r->counted ? op_live(b, r->op, 0) : NULL;
    if (o && o->n) o->n--;
    if (r->timer_init) uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    else areq_free(r);
    SR_INVARIANT(sr_broker_check(b));
}

static void request_answer_app(areq *r)
{
    if (!r->cb) return;
    sr_app_cb cb = r->cb;
    void *ctx = r->cbctx;
    r->cb = NULL;
    /* the outcome: the first failure, else a timeout, else success */
    sr_wire code = SR_WIRE_OK;
    const char *msg = "";
    for (size_t i = 0; i < r->nparts; i++)
        if (r->parts[i].state == SR_RS_FAILED) {
            code = r->parts[i].code;
            msg = r->parts[i].msg;
            break;
        }
    if (code == SR_WIRE_OK)
        for (size_t i = 0; i < r->nparts; i++)
            if (r->parts[i].state == SR_RS_TIMED_OUT) {
                code = SR_WIRE_GW_TIMEOUT;
                msg = "the gateway did not answer in time";
                break;
            }
    json_t *body;
    if (code == SR_WIRE_OK) {
        /* only what the request asked for and the app may see now */
        grantset gs;
        grants_load(r->b, r->op, r->app, &gs);
        size_t withheld = 0;
        body = json_pack("{s:s,s:o}", "requestId", r->id, "result", result_obj(SR_WIRE_OK, "OK"));
        if (r->kind == SR_RK_CONTROL) {
            json_t *ap = r->nparts ? r->parts[0].applied : NULL;
            const char *d = r->nparts ? json_string_value(json_object_get(r->parts[0].wire, "dataId")) : NULL;
            if (ap && !grants_allow(&gs, d, 2)) ap = NULL, withheld++;
            json_object_set(body, "appliedValue", ap ? ap : json_null());
        } else {
            json_t *all = json_array(), *asked = json_array();
            for (size_t i = 0; i < r->nparts; i++) {
                if (r->parts[i].values) json_array_extend(all, r->parts[i].values);
                json_array_extend(asked, json_object_get(r->parts[i].wire, "dataIds"));
            }
            json_object_set_new(body, "values", values_for_app(all, asked, &gs, &withheld));
            json_decref(all);
            json_decref(asked);
        }
        if (withheld) json_object_set_new(body, "withheldValues", json_integer((json_int_t)withheld));
        /* R-SE-3: each gateway's verified protection and the bytes it signs
         * (not when a value was withheld: the signed bytes hold it) */
        json_t *sigs = NULL;
        for (size_t i = 0; i < r->nparts && !withheld; i++)
            if (r->parts[i].sig && (sigs || (sigs = json_array()))) json_array_append(sigs, r->parts[i].sig);
        if (sigs) json_object_set_new(body, "gatewayProtection", sigs);
        log_withheld(r->op, r->app, "request", r->id, withheld);
        grants_free(&gs);
    } else {
        json_t *det = json_pack("{s:s}", "requestId", r->id);
        body = error_body(code, msg, det);
        json_decref(det);
    }
    cb(ctx, sr_wire_status(code), body);
    json_decref(body);
}

/* (11) a relayed part answered, its answer durable here: the checked
 * result goes back to the origin node and the request leaves the table. */
static void relay_back(areq *r)
{
    sr_broker *b = r->b;
    part *p = &r->parts[0];
    r->finished = 1;
    if (r->timer_init) uv_timer_stop(&r->timer);
    if (r->nparts && (p->state == SR_RS_SUCCEEDED || p->state == SR_RS_FAILED) && b->creq) {
        sr_relay m = {.state = p->state, .values = p->values, .applied = p->applied, .sig = p->sig};
        relay_head(b, &m, SR_RELAY_RES, r->kind, r->op, p->gw, r->app, r->id);
        snprintf(m.code, sizeof m.code, "%s", p->state == SR_RS_SUCCEEDED ? "0" : sr_wire_code(p->code));
        snprintf(m.msg, sizeof m.msg, "%s", p->msg);
        snprintf(m.monitor, sizeof m.monitor, "%s", r->monitor);
        if (sr_creq_send(b->creq, r->relay_from, &m) == SR_OK) sr_relay_count(0, 1, SR_RO_SENT);
        if (r->kind == SR_RK_PERIODIC_STOP && p->state == SR_RS_SUCCEEDED) rmon_drop(b, r->op, r->monitor, p->gw); /* (12) */
    }
    areq_unref(r); /* the live table's */
}

/* (3): every part settled and nothing in flight: write the outcome. */
static void request_maybe_finish(areq *r)
{
    if (r->finished || r->nopen || r->inflight || !r->created) return;
    if (r->relay_from[0]) return relay_back(r); /* (11) */
    r->finished = 1;
    if (r->timer_init) uv_timer_stop(&r->timer);
    int st = SR_RS_SUCCEEDED;
    sr_wire code = SR_WIRE_OK;
    const char *msg = "";
    for (size_t i = 0; i < r->nparts; i++) {
        part *p = &r->parts[i];
        if (p->state == SR_RS_FAILED && st != SR_RS_FAILED)
            st = p->state, code = p->code, msg = p->msg;
        else if (p->state == SR_RS_TIMED_OUT && st == SR_RS_SUCCEEDED)
            st = p->state, code = SR_WIRE_GW_TIMEOUT, msg = "the gateway did not answer in time";
    }
    /* r->state stays as it is until the outcome is durable (J_FINAL): a
     * status query meanwhile reads "DISPATCHED", never a final state
     * without its values */
    r->final_state = st;
    json_t *all = json_array();
    for (size_t i = 0; i < r->nparts; i++)
        if (r->parts[i].values) json_array_extend(all, r->parts[i].values);
    cvset vs, ap;
    memset(&ap, 0, sizeof ap);
    int rc = cv_build(r->b->eng, r->op, all, &vs);
    sr_control_value apc;
    sr_request_transition rt = {.request_id = r->id,
                                .state = (sr_req_state)st,
                                .error_code = code != SR_WIRE_OK ? sr_wire_code(code) : "",
                                .message = msg,
                                .values = vs.cv,
                                .n_values = vs.n};
    if (r->kind == SR_RK_CONTROL && r->nparts && r->parts[0].applied) {
        json_t *d = json_object_get(r->parts[0].wire, "dataId");
        if (!rc) rc = cv_one(r->b->eng, r->op, json_string_value(d), r->parts[0].applied, &apc);
        rt.applied = &apc;
        rt.n_applied = 1;
    }
    evlist l = {0};
    sr_buf_init(&l.b);
    if (!rc) rc = evl_transition(&l, r->op, "system", SR_ACTOR_SYSTEM, NULL, &rt);
    job *j = rc ? NULL : calloc(1, sizeof *j);
    if (j) {
        j->what = J_FINAL;
        j->b = r->b;
        j->r = r;
        r->refs++;
        rc = submit(r->b, &l.b, l.lens, l.n, j);
        if (rc) {
            r->refs--;
            free(j);
        }
    } else if (!rc)
        rc = SR_ENOMEM;
    if (rc) {
        sr_slog(SR_LOG_ERROR, "request outcome not stored", "request=%s error=%s", r->id, sr_err_name(rc));
        request_answer_app(r);
        areq_unref(r); /* the live table's reference */
    }
    sr_buf_release(&l.b);
    cv_free(&vs);
    json_decref(all);
}

static void on_deadline(uv_timer_t *t)
{
    areq *r = t->data;
    if (r->finished) return;
    if (r->relay_from[0]) { /* (11) the origin's deadline settles it there */
        for (size_t i = 0; i < r->nparts; i++)
            if (part_open(&r->parts[i])) r->parts[i].state = SR_RS_TIMED_OUT, r->nopen--;
        r->finished = 1;
        sr_broker *b = r->b;
        areq_unref(r); /* the live table's */
        SR_INVARIANT(sr_broker_check(b));
        (void)b;
        return;
    }
    evlist l = {0};
    sr_buf_init(&l.b);
    for (size_t i = 0; i < r->nparts && l.n < 64; i++) {
        part *p = &r->parts[i];
        if (!part_open(p)) continue;
        p->state = SR_RS_TIMED_OUT;
        p->code = SR_WIRE_GW_TIMEOUT;
        snprintf(p->msg, sizeof p->msg, "gateway %s did not answer in time", p->gw);
        r->nopen--;
        sr_request_transition rt = {.request_id = r->id,
                                    .gateway_id = p->gw,
                                    .state = SR_RS_TIMED_OUT,
                                    .error_code = sr_wire_code(SR_WIRE_GW_TIMEOUT),
                                    .message = p->msg};
        if (evl_transition(&l, r->op, "system", SR_ACTOR_SYSTEM, NULL, &rt)) break;
    }
    if (l.n) (void)!submit(r->b, &l.b, l.lens, l.n, NULL);
    sr_buf_release(&l.b);
    sr_slog(SR_LOG_INFO, "request timed out", "op=%s request=%s", r->op, r->id);
    sr_broker *b = r->b;
    request_maybe_finish(r); /* may free r */
    SR_INVARIANT(sr_broker_check(b));
    (void)b; /* only the check reads it */
}

static void *request_new(sr_broker *b, const char *op, const char *app, int kind, const sr_target *t, size_t n,
                         uint32_t timeout_ms, int async, json_t *value, json_t *protection, const char *signed_value,
                         size_t signed_len, sr_app_cb cb, void *ctx);

void *sr_broker_request(sr_broker *b, const char *op, const char *app, int kind, const sr_target *t, size_t n,
                        uint32_t timeout_ms, int async, json_t *value, json_t *protection, sr_app_cb cb, void *ctx)
{
    return request_new(b, op, app, kind, t, n, timeout_ms, async, value, protection, NULL, 0, cb, ctx);
}

void *sr_broker_request_signed(sr_broker *b, const char *op, const char *app, const sr_target *t, uint32_t timeout_ms,
                               int async, json_t *value, json_t *protection, const char *signed_value, size_t len,
                               sr_app_cb cb, void *ctx)
{
    return request_new(b, op, app, SR_RK_CONTROL, t, 1, timeout_ms, async, value, protection, signed_value, len, cb,
                       ctx);
}

static void *request_new(sr_broker *b, const char *op, const char *app, int kind, const sr_target *t, size_t n,
                         uint32_t timeout_ms, int async, json_t *value, json_t *protection, const char *signed_value,
                         size_t signed_len, sr_app_cb cb, void *ctx)
{
    const char *full = live_quota(b, op, 1);
    if (full) {
        quota_log(b, "app request refused (quota)", op, app, full);
        app_answer(cb, ctx, SR_WIRE_BUSY, full);
        return NULL;
    }
    areq *r = calloc(1, sizeof *r);
    if (!r || !(r->parts = calloc(n ? n : 1, sizeof *r->parts))) {
        free(r);
        app_answer(cb, ctx, SR_WIRE_INTERNAL, "out of memory");
        return NULL;
    }
    r->b = b;
    new_id('Q', r->id);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->app, sizeof r->app, "%s", app);
    r->kind = kind;
    r->state = SR_RS_CREATED;
    r->created_ms = wall_ms();
    r->deadline_ms = r->created_ms + timeout_ms;
    r->cb = cb;
    r->cbctx = ctx;
    r->async = async;
    r->value = value ? json_incref(value) : NULL;
    r->protection = protection ? json_incref(protection) : NULL;
    r->refs = 1; /* the live table */
    char deadline[32];
    sr_rfc3339_format(r->deadline_ms, deadline);
    /* one part per gateway, in the order the gateways first appear */
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < r->nparts && strcmp(r->parts[k].gw, t[i].gw)) k++;
        part *p = &r->parts[k];
        if (k == r->nparts) {
            r->nparts++;
            p->r = r;
            snprintf(p->gw, sizeof p->gw, "%s", t[i].gw);
            p->state = SR_RS_CREATED;
            if (kind == SR_RK_CONTROL) {
                p->wire = json_pack("{s:s,s:s,s:s,s:O,s:s}", "requestId", r->id, "type", "CONTROL", "dataId",
                                    t[i].data_id, "value", value ? value : json_null(), "appId", app);
                if (p->wire && protection) json_object_set(p->wire, "protection", protection);
                if (p->wire && protection && signed_value) /* the bytes the app signed, exactly */
                    json_object_set_new(p->wire, "signedValue", json_stringn(signed_value, signed_len));
            } else
                p->wire = json_pack("{s:s,s:s,s:[],s:s}", "requestId", r->id, "type", "IMMEDIATE", "dataIds",
                                    "deadline", deadline);
        }
        if (kind != SR_RK_CONTROL)
            json_array_append_new(json_object_get(p->wire, "dataIds"), json_string(t[i].data_id));
    }
    r->nopen = r->nparts;
    const char *offline = NULL;
    for (size_t k = 0; k < r->nparts && !offline; k++)
        if (!gw_reachable(b, op, r->parts[k].gw)) offline = r->parts[k].gw;
    /* the events: the app request, each part, and (gateway offline) the failure */
    evlist l = {0};
    sr_buf_init(&l.b);
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    char *prot = protection ? json_dumps(protection, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    sr_control_value cv;
    int rc = ids ? SR_OK : SR_ENOMEM;
    for (size_t i = 0; i < n && ids; i++) ids[i] = t[i].data_id;
    if (kind == SR_RK_CONTROL && n && !rc) rc = cv_one(b->eng, op, t[0].data_id, value, &cv);
    if (kind == SR_RK_CONTROL && n && !rc && protection && signed_value) cv.sig_state = SR_SIG_VERIFIED;
    for (size_t k = 0; !rc && k <= r->nparts; k++) {
        sr_request_rec rq = {.request_id = r->id,
                             .kind = (sr_req_kind)kind,
                             .app_id = r->app,
                             .timeout_ms = timeout_ms,
                             .deadline_ms = r->deadline_ms,
                             /* its outcome is pushed (R-AP-17; an offline gateway's failure is answered) */
                             .async = k == 0 && async && !offline};
        if (kind == SR_RK_CONTROL && n) {
            rq.control = &cv;
            rq.n_control = 1;
        }
        if (prot) {
            rq.protection.data = prot;
            rq.protection.len = strlen(prot);
        }
        if (prot && signed_value) rq.signed_value = (sr_slice){signed_value, signed_len};
        if (k == 0) {
            rq.data_ids = ids;
            rq.n_data_ids = n;
        } else {
            part *p = &r->parts[k - 1];
            rq.gateway_id = p->gw;
            size_t nd = 0;
            for (size_t i = 0; i < n; i++)
                if (!strcmp(t[i].gw, p->gw)) ids[nd++] = t[i].data_id;
            rq.data_ids = ids;
            rq.n_data_ids = nd;
        }
        sr_cmd_env env = {op, app, SR_ACTOR_APP, NULL, NULL};
        size_t at = l.b.len;
        rc = evl_end(&l, at, sr_cmd_request_created(&env, &rq, &l.b));
        for (size_t i = 0; i < n && ids; i++) ids[i] = t[i].data_id;
    }
    char omsg[160];
    if (!rc && offline) {
        snprintf(omsg, sizeof omsg, "gateway %s is not connected", offline);
        sr_request_transition rt = {
            .request_id = r->id, .state = SR_RS_FAILED, .error_code = sr_wire_code(SR_WIRE_GW_DOWN), .message = omsg};
        rc = evl_transition(&l, op, "system", SR_ACTOR_SYSTEM, NULL, &rt);
        r->offline = 1;
        r->finished = 1;
        r->state = SR_RS_FAILED;
        SR_INVARIANT(req_check(r));
    }
    free((void *)ids);
    free(prot);
    job *j = rc ? NULL : calloc(1, sizeof *j);
    if (!rc && !j) rc = SR_ENOMEM;
    if (!rc) {
        j->what = J_CREATED;
        j->b = b;
        j->r = r;
        r->refs++;
        rc = submit(b, &l.b, l.lens, l.n, j);
        if (rc) {
            r->refs--;
            free(j);
        }
    }
    sr_buf_release(&l.b);
    if (rc) {
        areq_free(r);
        app_answer(cb, ctx, rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL, sr_strerror(rc));
        return NULL;
    }
    live_add(b, r);
    return r;
}

void sr_broker_detach(sr_broker *b, void *waiter)
{
    (void)b;
    areq *r = waiter;
    if (r) r->cb = NULL;
}

static void created_done(job *j)
{
    areq *r = j->r;
    sr_broker *b = j->b;
    if (j->res.rc) {
        r->finished = 1;
        if (r->cb) app_answer(r->cb, r->cbctx, j->res.rc == SR_EINVAL ? SR_WIRE_PARAM : SR_WIRE_INTERNAL,
                              j->res.err.msg[0] ? j->res.err.msg : sr_strerror(j->res.rc));
        r->cb = NULL;
        areq_unref(r); /* the live table's */
        return;
    }
    if (r->offline) {
        char msg[160] = "gateway not connected";
        for (size_t k = 0; k < r->nparts; k++)
            if (!gw_reachable(b, r->op, r->parts[k].gw)) {
                snprintf(msg, sizeof msg, "gateway %s is not connected", r->parts[k].gw);
                break;
            }
        if (r->cb) {
            json_t *det = json_pack("{s:s}", "requestId", r->id);
            json_t *body = error_body(SR_WIRE_GW_DOWN, msg, det);
            r->cb(r->cbctx, 503, body);
            json_decref(body);
            json_decref(det);
        }
        r->cb = NULL;
        areq_unref(r);
        return;
    }
    r->created = 1;
    if (r->async && r->cb) {
        json_t *body = json_pack("{s:s,s:s}", "requestId", r->id, "status", "PENDING");
        r->cb(r->cbctx, 202, body);
        json_decref(body);
        r->cb = NULL;
    }
    if (r->deadline_ms) {
        uv_timer_init(b->loop, &r->timer);
        r->timer.data = r;
        r->timer_init = 1;
        int64_t left = r->deadline_ms - wall_ms();
        uv_timer_start(&r->timer, on_deadline, left > 0 ? (uint64_t)left : 0, 0);
    }
    for (size_t k = 0; k < r->nparts; k++) part_deliver(b, r, k);
    SR_INVARIANT(req_check(r));
}

/* ------------------------------------------------------------------------ */
/* Monitors                                                                   */

static void mon_free(mon *m)
{
    json_decref(m->data_ids);
    free(m->gws);
    free(m->acked);
    free(m);
}

static void on_mon_timer(uv_timer_t *t);

static mon *mon_from_event(const char *op, const sr_monitor_rec *me)
{
    mon *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    snprintf(m->id, sizeof m->id, "%s", me->monitor_id);
    snprintf(m->op, sizeof m->op, "%s", op);
    snprintf(m->app, sizeof m->app, "%s", me->app_id);
    m->state = me->state;
    m->data_ids = json_array();
    for (size_t i = 0; i < me->n_data_ids; i++) json_array_append_new(m->data_ids, json_string(me->data_ids[i]));
    m->ngws = me->n_gateway_ids;
    m->gws = calloc(m->ngws ? m->ngws : 1, sizeof *m->gws);
    m->acked = calloc(m->ngws ? m->ngws : 1, sizeof *m->acked);
    if (!m->gws || !m->acked) {
        mon_free(m);
        return NULL;
    }
    for (size_t i = 0; i < m->ngws; i++) {
        snprintf(m->gws[i], 72, "%s", me->gateway_ids[i]);
        for (size_t k = 0; k < me->n_acked; k++)
            if (!strcmp(me->acked[k], me->gateway_ids[i])) m->acked[i] = 1;
    }
    m->interval_ms = me->interval_ms;
    m->start_ms = me->start_ms;
    m->end_ms = me->end_ms;
    m->created_ms = me->created_ms;
    snprintf(m->node, sizeof m->node, "%s", me->node ? me->node : "");
    SR_INVARIANT(mon_check(m));
    return m;
}

static void mons_trim(sr_broker *b, const char *op);

/* ---- (8) monitors end at their endAt ---- */

static int mon_active(const mon *m)
{
    return m->state == SR_MS_STARTING || m->state == SR_MS_RUNNING;
}

/* an active monitor whose endAt has come */
static int mon_over(const mon *m, int64_t now) { return mon_active(m) && m->end_ms && m->end_ms <= now; }

/* Arm the monitor timer for due (wall ms) unless it fires earlier already. */
static void mon_arm_at(sr_broker *b, int64_t due)
{
    if (!due || b->closing || uv_is_closing((uv_handle_t *)&b->mon_timer) || (b->mon_due && b->mon_due <= due)) return;
    int64_t now = wall_ms();
    b->mon_due = due;
    uv_timer_start(&b->mon_timer, on_mon_timer, due > now ? (uint64_t)(due - now) : 0, 0);
}

/* Arm it for the earliest endAt of the loaded active monitors. */
static void mon_arm(sr_broker *b)
{
    int64_t due = 0;
    for (mon *m = b->mons; m; m = m->next)
        if (mon_active(m) && m->end_ms && (!due || m->end_ms < due)) due = m->end_ms;
    mon_arm_at(b, due);
}

static void mons_load(sr_broker *b, const char *op)
{
    for (oploaded *o = b->loaded; o; o = o->next)
        if (!strcmp(o->op, op)) return;
    oploaded *o = calloc(1, sizeof *o);
    if (!o) return;
    snprintf(o->op, sizeof o->op, "%s", op);
    o->next = b->loaded;
    b->loaded = o;
    sr_rec r = SR_REC_INIT;
    if (sr_list_monitors(b->eng, op, &r) == SR_OK) {
        sr_monitor_rec me;
        for (int k; (k = sr_rec_next_monitor(&r, &me)) != 0;) {
            if (k == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
            if (k < 0) break;
            /* (12) another node's monitor (replicated here): that node runs it */
            if (me.node && me.node[0] && b->creq && strcmp(me.node, sr_creq_node(b->creq))) continue;
            mon *m = mon_from_event(op, &me);
            if (m) {
                m->next = b->mons;
                b->mons = m;
            }
        }
    }
    sr_rec_close(&r);
    mons_trim(b, op);
    mon_arm(b);
}

/* Stopped monitors of op beyond the stopped_kept most recent are forgotten
 * (memory stays bounded however many monitors an app starts and stops; a
 * stopped monitor has no open request part and no gateway part, so nothing
 * refers to it). Called where no mon pointer is held: at load and before a
 * monitor starts. */
static void mons_trim(sr_broker *b, const char *op)
{
    for (;;) {
        size_t n = 0;
        mon **oldest = NULL;
        for (mon **x = &b->mons; *x; x = &(*x)->next) {
            mon *m = *x;
            if (m->state != SR_MS_STOPPED || strcmp(m->op, op)) continue;
            n++;
            if (!oldest || m->created_ms < (*oldest)->created_ms) oldest = x;
        }
        if (n <= b->stopped_kept || !oldest) return;
        mon *d = *oldest;
        *oldest = d->next;
        mon_free(d);
    }
}

static mon *mon_find(sr_broker *b, const char *op, const char *id)
{
    mons_load(b, op);
    for (mon *m = b->mons; m; m = m->next)
        if (!strcmp(m->id, id) && !strcmp(m->op, op)) return m;
    return NULL;
}

static json_t *mon_json(const mon *m)
{
    char c[32];
    sr_rfc3339_format(m->created_ms, c);
    json_t *o = json_pack("{s:s,s:O,s:I,s:s,s:s}", "monitorId", m->id, "dataIds", m->data_ids, "intervalMs",
                          (json_int_t)m->interval_ms, "status", ms_name(m->state), "createdAt", c);
    if (o && m->start_ms) {
        sr_rfc3339_format(m->start_ms, c);
        json_object_set_new(o, "startAt", json_string(c));
    }
    if (o && m->end_ms) {
        sr_rfc3339_format(m->end_ms, c);
        json_object_set_new(o, "endAt", json_string(c));
    }
    return o;
}

/* The monitor's state as an event (appended to l); source: where it was
 * decided (a relaying node, 12), NULL here. */
static int mon_event_src(evlist *l, const mon *m, const char *actor, sr_actor_kind kind, const char *source)
{
    size_t nd = json_array_size(m->data_ids);
    const char **ids = calloc(nd ? nd : 1, sizeof *ids), **gws = calloc(m->ngws ? m->ngws : 1, sizeof *gws),
               **acked = calloc(m->ngws ? m->ngws : 1, sizeof *acked);
    int rc = ids && gws && acked ? SR_OK : SR_ENOMEM;
    if (!rc) {
        sr_monitor_rec me = {.monitor_id = m->id,
                             .state = (sr_mon_state)m->state,
                             .app_id = m->app,
                             .data_ids = ids,
                             .n_data_ids = nd,
                             .interval_ms = m->interval_ms,
                             .gateway_ids = gws,
                             .n_gateway_ids = m->ngws,
                             .acked = acked,
                             .start_ms = m->start_ms,
                             .end_ms = m->end_ms,
                             .created_ms = m->created_ms,
                             .node = m->node};
        for (size_t i = 0; i < nd; i++) ids[i] = json_string_value(json_array_get(m->data_ids, i));
        for (size_t i = 0; i < m->ngws; i++) {
            gws[i] = m->gws[i];
            if (m->acked[i]) acked[me.n_acked++] = m->gws[i];
        }
        sr_cmd_env env = {m->op, actor, kind, NULL, source};
        size_t at = l->b.len;
        rc = evl_end(l, at, sr_cmd_monitor(&env, &me, &l->b));
    }
    free((void *)ids);
    free((void *)gws);
    free((void *)acked);
    return rc;
}

static int mon_event(evlist *l, const mon *m, const char *actor, sr_actor_kind kind)
{
    return mon_event_src(l, m, actor, kind, NULL);
}

/* A PERIODIC_START / STOP part for one gateway of a monitor (no deadline:
 * the monitor's state sends it again at every reconnect). Its creation is
 * appended to l; the request joins the live table at once (handed out once
 * l is durable: created is set by the caller's completion). */
static areq *mon_request(sr_broker *b, mon *m, size_t gi, int kind, evlist *l)
{
    areq *r = calloc(1, sizeof *r);
    if (!r || !(r->parts = calloc(1, sizeof *r->parts))) {
        free(r);
        return NULL;
    }
    r->b = b;
    new_id('Q', r->id);
    snprintf(r->op, sizeof r->op, "%s", m->op);
    snprintf(r->app, sizeof r->app, "%s", m->app);
    snprintf(r->monitor, sizeof r->monitor, "%s", m->id);
    r->kind = kind;
    r->state = SR_RS_CREATED;
    r->created_ms = wall_ms();
    r->refs = 1;
    r->nparts = r->nopen = 1;
    part *p = &r->parts[0];
    p->r = r;
    p->state = SR_RS_CREATED;
    snprintf(p->gw, sizeof p->gw, "%s", m->gws[gi]);
    if (kind == SR_RK_PERIODIC_START) {
        json_t *mine = json_array();
        /* only the gateway's own points */
        size_t i;
        json_t *d;
        json_array_foreach(m->data_ids, i, d)
        {
            sr_point_info info;
            if (sr_engine_point_info(b->eng, m->op, json_string_value(d), &info) == SR_OK &&
                !strcmp(info.gateway, p->gw))
                json_array_append(mine, d);
        }
        p->wire = json_pack("{s:s,s:s,s:s,s:o,s:I}", "requestId", r->id, "type", "PERIODIC_START", "monitorId", m->id,
                            "dataIds", mine, "intervalMs", (json_int_t)m->interval_ms);
        char c[32]; /* the monitor's window, as the app gave it */
        if (p->wire && m->start_ms) {
            sr_rfc3339_format(m->start_ms, c);
            json_object_set_new(p->wire, "startAt", json_string(c));
        }
        if (p->wire && m->end_ms) {
            sr_rfc3339_format(m->end_ms, c);
            json_object_set_new(p->wire, "endAt", json_string(c));
        }
    } else
        p->wire = json_pack("{s:s,s:s,s:s}", "requestId", r->id, "type", "PERIODIC_STOP", "monitorId", m->id);
    sr_request_rec rq = {.request_id = r->id,
                         .kind = (sr_req_kind)kind,
                         .app_id = r->app,
                         .gateway_id = p->gw,
                         .monitor_id = m->id,
                         .interval_ms = m->interval_ms};
    sr_cmd_env env = {m->op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    size_t at = l->b.len;
    if (!p->wire || evl_end(l, at, sr_cmd_request_created(&env, &rq, &l->b))) {
        areq_free(r);
        return NULL;
    }
    live_add(b, r);
    return r;
}

/* The open START/STOP part of monitor m for gateway gw, if any. */
static part *mon_part(sr_broker *b, const mon *m, const char *gw, int kind)
{
    for (areq *r = b->live; r; r = r->next)
        if (!r->finished && r->kind == kind && !strcmp(r->monitor, m->id) && !strcmp(r->op, m->op) &&
            part_open(&r->parts[0]) && !strcmp(r->parts[0].gw, gw))
            return &r->parts[0];
    return NULL;
}

/* Cancel the open START parts of a monitor (it is being stopped). */
static void mon_cancel_parts(sr_broker *b, const mon *m, int kind)
{
    for (areq *r = b->live, *n; r; r = n) {
        n = r->next;
        if (!r->finished && r->kind == kind && !strcmp(r->monitor, m->id) && !strcmp(r->op, m->op) &&
            part_open(&r->parts[0])) {
            r->parts[0].state = SR_RS_CANCELLED;
            r->nopen = 0;
            r->finished = 1;
            areq_unref(r);
        }
    }
}

typedef struct monjob_ctx {
    areq *reqs[64];
    size_t n;
} monjob_ctx;

/* Submit l (monitor events and new parts); parts are handed out once durable. */
static void mon_submit(sr_broker *b, evlist *l, areq **reqs, size_t nreq, sr_app_cb cb, void *ctx, int status,
                       json_t *body)
{
    job *j = calloc(1, sizeof *j);
    int rc = j ? SR_OK : SR_ENOMEM;
    if (j) {
        j->what = J_MONITOR;
        j->b = b;
        j->acb = cb;
        j->actx = ctx;
        j->a_status = status;
        j->a_body = body ? json_incref(body) : NULL;
        /* the parts: chained through p_values (a JSON array of pointers is
         * overkill); keep them in a small array on the heap */
        monjob_ctx *mc = calloc(1, sizeof *mc);
        if (!mc) rc = SR_ENOMEM;
        else {
            for (size_t i = 0; i < nreq && i < 64; i++) {
                mc->reqs[mc->n++] = reqs[i];
                reqs[i]->refs++;
            }
            j->r = (areq *)mc; /* J_MONITOR: r is a monjob_ctx */
            rc = submit(b, &l->b, l->lens, l->n, j);
            if (rc) {
                for (size_t i = 0; i < mc->n; i++) mc->reqs[i]->refs--;
                free(mc);
            }
        }
        if (rc) {
            json_decref(j->a_body);
            free(j);
        }
    }
    if (rc) {
        sr_slog(SR_LOG_ERROR, "monitor event not stored", "error=%s", sr_err_name(rc));
        for (size_t i = 0; i < nreq; i++) {
            reqs[i]->finished = 1;
            areq_unref(reqs[i]);
        }
        if (cb) app_answer(cb, ctx, rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL, sr_strerror(rc));
    }
}

static void monitor_done(job *j)
{
    monjob_ctx *mc = (monjob_ctx *)j->r;
    for (size_t i = 0; i < mc->n; i++) {
        areq *r = mc->reqs[i];
        if (!j->res.rc) r->created = 1;
        else r->finished = 1;
    }
    if (j->acb) {
        if (j->res.rc) app_answer(j->acb, j->actx, SR_WIRE_INTERNAL, j->res.err.msg[0] ? j->res.err.msg : sr_strerror(j->res.rc));
        else j->acb(j->actx, j->a_status, j->a_body);
    }
    for (size_t i = 0; i < mc->n; i++) {
        areq *r = mc->reqs[i];
        if (!j->res.rc) part_deliver(j->b, r, 0); /* here, or relayed (12) */
        else areq_unref(r); /* the live table's */
        areq_unref(r);      /* the job's */
    }
    json_decref(j->a_body);
    free(mc);
}

/* One START / STOP part per gateway of m, their creation appended to l;
 * on failure nothing is left behind. */
static int mon_parts(sr_broker *b, mon *m, int kind, evlist *l, areq **reqs, size_t *nreq)
{
    *nreq = 0;
    for (size_t k = 0; k < m->ngws && *nreq < 64; k++) {
        areq *r = mon_request(b, m, k, kind, l);
        if (!r) {
            for (size_t i = 0; i < *nreq; i++) {
                reqs[i]->finished = 1;
                areq_unref(reqs[i]);
            }
            *nreq = 0;
            return SR_ENOMEM;
        }
        reqs[(*nreq)++] = r;
    }
    return SR_OK;
}

void sr_broker_monitor_start(sr_broker *b, const char *op, const char *app, const sr_target *t, size_t n,
                             uint32_t interval_ms, int64_t start_ms, int64_t end_ms, sr_app_cb cb, void *ctx)
{
    if (end_ms && end_ms <= wall_ms()) { /* (8) */
        app_answer(cb, ctx, SR_WIRE_PARAM, "endAt: in the past (a monitor runs until its endAt)");
        return;
    }
    const char *full = live_quota(b, op, 1); /* its START parts join the live table */
    if (full) {
        quota_log(b, "monitor refused (quota)", op, app, full);
        app_answer(cb, ctx, SR_WIRE_BUSY, full);
        return;
    }
    mons_load(b, op);
    mons_trim(b, op);
    /* every monitor is held in memory and scanned by each periodic message
     * and reconnect (all operators'): one operator may have at most
     * monitors_per_operator that are not stopped */
    size_t active = 0;
    for (mon *o = b->mons; o; o = o->next)
        active += !strcmp(o->op, op) && o->state != SR_MS_STOPPED;
    if (active >= b->max_mons_op) {
        quota_log(b, "monitor refused (quota)", op, app,
                  "too many monitors of this operator ([server] monitors_per_operator); stop some first");
        app_answer(cb, ctx, SR_WIRE_BUSY, "too many monitors of this operator ([server] monitors_per_operator); stop some first");
        return;
    }
    mon *m = calloc(1, sizeof *m);
    if (!m || !(m->gws = calloc(n ? n : 1, 72)) || !(m->acked = calloc(n ? n : 1, sizeof *m->acked))) {
        if (m) mon_free(m);
        app_answer(cb, ctx, SR_WIRE_INTERNAL, "out of memory");
        return;
    }
    new_id('M', m->id);
    snprintf(m->op, sizeof m->op, "%s", op);
    snprintf(m->app, sizeof m->app, "%s", app);
    snprintf(m->node, sizeof m->node, "%s", b->creq ? sr_creq_node(b->creq) : ""); /* (12) */
    m->state = SR_MS_STARTING;
    m->data_ids = json_array();
    m->interval_ms = interval_ms;
    m->start_ms = start_ms;
    m->end_ms = end_ms;
    m->created_ms = wall_ms();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(m->data_ids, json_string(t[i].data_id));
        size_t k = 0;
        while (k < m->ngws && strcmp(m->gws[k], t[i].gw)) k++;
        if (k == m->ngws) snprintf(m->gws[m->ngws++], 72, "%s", t[i].gw);
    }
    evlist l = {0};
    sr_buf_init(&l.b);
    areq *reqs[64];
    size_t nreq = 0;
    int rc = mon_event(&l, m, app, SR_ACTOR_APP);
    if (!rc) rc = mon_parts(b, m, SR_RK_PERIODIC_START, &l, reqs, &nreq);
    if (rc) {
        mon_free(m);
        sr_buf_release(&l.b);
        app_answer(cb, ctx, SR_WIRE_INTERNAL, sr_strerror(rc));
        return;
    }
    m->next = b->mons;
    b->mons = m;
    SR_INVARIANT(mon_check(m));
    mon_arm_at(b, m->end_ms);
    json_t *body = json_pack("{s:s,s:s}", "monitorId", m->id, "status", "STARTING");
    mon_submit(b, &l, reqs, nreq, cb, ctx, 201, body);
    json_decref(body);
    sr_buf_release(&l.b);
    sr_slog(SR_LOG_INFO, "monitor created", "op=%s app=%s monitor=%s gateways=%zu", op, app, m->id, m->ngws);
}

static void mon_stop(sr_broker *b, mon *m, const char *actor, sr_actor_kind akind, sr_app_cb cb, void *ctx);

static int mon_elsewhere(sr_broker *b, const char *op, const char *app, const char *id, char node[32]);
static void ask_out(sr_broker *b, const char *node, const char *op, const char *app, const char *monitor,
                    sr_app_cb cb, void *ctx);

/* The DELETE of a monitor run here (an app's, or asked by another node: 13). */
static void monitor_stop_here(sr_broker *b, const char *op, const char *app, const char *monitor, sr_app_cb cb,
                              void *ctx)
{
    mon *m = mon_find(b, op, monitor);
    if (!m || strcmp(m->app, app)) {
        app_answer(cb, ctx, SR_WIRE_UNKNOWN, "unknown monitorId");
        return;
    }
    if (m->state == SR_MS_STOPPING || m->state == SR_MS_STOPPED) {
        json_t *body = json_pack("{s:s,s:s}", "monitorId", m->id, "status", ms_name(m->state));
        cb(ctx, 202, body);
        json_decref(body);
        return;
    }
    mon_stop(b, m, app, SR_ACTOR_APP, cb, ctx);
}

void sr_broker_monitor_stop(sr_broker *b, const char *op, const char *app, const char *monitor, sr_app_cb cb,
                            void *ctx)
{
    char node[32];
    if (!mon_find(b, op, monitor) && mon_elsewhere(b, op, app, monitor, node))
        return ask_out(b, node, op, app, monitor, cb, ctx); /* (13) */
    monitor_stop_here(b, op, app, monitor, cb, ctx);
}

/* Stop monitor m (STARTING or RUNNING) for actor: the app's DELETE, or the
 * system at its endAt (cb NULL). */
static void mon_stop(sr_broker *b, mon *m, const char *actor, sr_actor_kind akind, sr_app_cb cb, void *ctx)
{
    /* a monitor that no gateway has seen stops at once */
    int seen = 0;
    for (size_t k = 0; k < m->ngws; k++) {
        part *p = mon_part(b, m, m->gws[k], SR_RK_PERIODIC_START);
        if (m->acked[k] || !p || p->handed) seen = 1;
    }
    mon_cancel_parts(b, m, SR_RK_PERIODIC_START);
    m->state = seen ? SR_MS_STOPPING : SR_MS_STOPPED;
    for (size_t k = 0; k < m->ngws; k++) m->acked[k] = 0;
    SR_INVARIANT(mon_check(m));
    evlist l = {0};
    sr_buf_init(&l.b);
    areq *reqs[64];
    size_t nreq = 0;
    int rc = mon_event(&l, m, actor, akind);
    if (!rc && seen) rc = mon_parts(b, m, SR_RK_PERIODIC_STOP, &l, reqs, &nreq);
    if (rc) {
        sr_buf_release(&l.b);
        if (cb) app_answer(cb, ctx, SR_WIRE_INTERNAL, sr_strerror(rc));
        else sr_slog(SR_LOG_ERROR, "monitor not stopped", "op=%s monitor=%s error=%s", m->op, m->id, sr_err_name(rc));
        return;
    }
    json_t *body = json_pack("{s:s,s:s}", "monitorId", m->id, "status", ms_name(m->state));
    mon_submit(b, &l, reqs, nreq, cb, ctx, 202, body);
    json_decref(body);
    sr_buf_release(&l.b);
}

/* (8) Stop every loaded monitor whose endAt has come; re-arm for the next. */
static void mon_expire(sr_broker *b)
{
    int64_t now = wall_ms();
    for (mon *m = b->mons; m && !b->closing; m = m->next)
        if (mon_over(m, now)) {
            sr_slog(SR_LOG_INFO, "monitor ended at its endAt", "op=%s app=%s monitor=%s", m->op, m->app, m->id);
            mon_stop(b, m, "system", SR_ACTOR_SYSTEM, NULL, NULL);
        }
    mon_arm(b);
}

static void on_mon_timer(uv_timer_t *t)
{
    sr_broker *b = t->data;
    b->mon_due = 0;
    mon_expire(b);
}

static int cmp_desc(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;
    return a < c ? 1 : a > c ? -1 : 0;
}

/* (13) The app's monitors other nodes run, as the index has them (their
 * last MonitorEvent), appended to a; of the stopped ones only the
 * stopped_kept most recent, as this node keeps its own. */
static void mons_elsewhere(sr_broker *b, const char *op, const char *app, json_t *a)
{
    if (!b->creq) return;
    const char *self = sr_creq_node(b->creq);
    int64_t *stopped = NULL, cut = INT64_MIN;
    size_t ns = 0, cap = 0;
    for (int pass = 0; pass < 2; pass++) { /* 0: the stopped ones' creation times; 1: the list */
        sr_rec r = SR_REC_INIT;
        if (sr_list_monitors(b->eng, op, &r) == SR_OK) {
            sr_monitor_rec me;
            for (int k; (k = sr_rec_next_monitor(&r, &me)) != 0;) {
                if (k == SR_ECORRUPT) continue;
                if (k < 0) break;
                if (!me.node || !me.node[0] || !strcmp(me.node, self) || strcmp(me.app_id, app)) continue;
                if (pass == 0) {
                    if (me.state != SR_MS_STOPPED) continue;
                    if (ns == cap) {
                        int64_t *n2 = realloc(stopped, (cap = cap ? cap * 2 : 64) * sizeof *n2);
                        if (!n2) break;
                        stopped = n2;
                    }
                    stopped[ns++] = me.created_ms;
                    continue;
                }
                if (me.state == SR_MS_STOPPED && me.created_ms < cut) continue;
                mon *m = mon_from_event(op, &me);
                if (m) json_array_append_new(a, mon_json(m)), mon_free(m);
            }
        }
        sr_rec_close(&r);
        if (pass == 0 && ns > b->stopped_kept) {
            qsort(stopped, ns, sizeof *stopped, cmp_desc);
            cut = stopped[b->stopped_kept - 1];
        }
    }
    free(stopped);
}

int sr_broker_monitor_list(sr_broker *b, const char *op, const char *app, json_t **items)
{
    mons_load(b, op);
    mon_expire(b); /* what is listed is what holds now */
    json_t *a = json_array();
    if (!a) return SR_ENOMEM;
    for (mon *m = b->mons; m; m = m->next)
        if (!strcmp(m->op, op) && !strcmp(m->app, app)) json_array_append_new(a, mon_json(m));
    mons_elsewhere(b, op, app, a); /* (13) */
    *items = a;
    return SR_OK;
}

/* A gateway came back: send its monitors' START (running or starting) or
 * STOP (stopping) again, unless one is already open. */
static void mon_resend(sr_broker *b, const char *op, const char *gw)
{
    mons_load(b, op);
    evlist l = {0};
    sr_buf_init(&l.b);
    areq *reqs[64];
    size_t nreq = 0;
    for (mon *m = b->mons; m && nreq < 64; m = m->next) {
        if (strcmp(m->op, op) || mon_over(m, wall_ms())) continue; /* (8): the timer stops it */
        int kind;
        if (m->state == SR_MS_STARTING || m->state == SR_MS_RUNNING)
            kind = SR_RK_PERIODIC_START;
        else if (m->state == SR_MS_STOPPING)
            kind = SR_RK_PERIODIC_STOP;
        else
            continue;
        for (size_t k = 0; k < m->ngws && nreq < 64; k++) {
            if (strcmp(m->gws[k], gw) || mon_part(b, m, gw, kind)) continue;
            if (kind == SR_RK_PERIODIC_STOP && m->acked[k]) continue;
            areq *r = mon_request(b, m, k, kind, &l);
            if (r) reqs[nreq++] = r;
        }
    }
    if (nreq) mon_submit(b, &l, reqs, nreq, NULL, NULL, 0, NULL);
    sr_buf_release(&l.b);
}

/* ------------------------------------------------------------------------ */
/* Gateway messages                                                           */

/* an answer that comes from the engine's result rc (sr_gw_answer.rc) */
static void gw_answer(sr_gw_answer_cb cb, void *ctx, sr_wire code, int rc, const char *msg, json_t *detail)
{
    sr_gw_answer a = {code, msg, detail, NULL, NULL, rc};
    cb(ctx, &a);
}

static void gw_ack(sr_gw_answer_cb cb, void *ctx, sr_wire code, const char *msg, json_t *detail)
{
    gw_answer(cb, ctx, code, SR_OK, msg, detail);
}

/* Cut a UTF-8 string that snprintf may have cut inside a character back to
 * the last whole one (the message is stored and later put in JSON). */
static void utf8_tidy(char *s)
{
    size_t n = strlen(s), k = n;
    while (k && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--; /* continuation bytes */
    if (!k) return;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t want = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : 4;
    if (lead >= 0x80 && n - (k - 1) < want) s[k - 1] = 0;
}

/* "0", {"code":"0"}, "E4003" or {"code":"E4003","message":...}. The code
 * must be one of interface.md's, and not one about the app's own session
 * (E2001, E2002), which an app would take as its own. */
static int parse_result(json_t *res, sr_wire *code, char *msg, size_t msglen)
{
    msg[0] = 0;
    json_t *c = res;
    if (json_is_object(res)) {
        c = json_object_get(res, "code");
        json_t *m = json_object_get(res, "message");
        if (m && !json_is_string(m)) return -1;
        if (m) {
            snprintf(msg, msglen, "%s", json_string_value(m));
            utf8_tidy(msg);
        }
    }
    if (json_is_integer(c) && json_integer_value(c) == 0) {
        *code = SR_WIRE_OK;
        return 0;
    }
    if (!json_is_string(c)) return -1;
    const char *s = json_string_value(c);
    if (sr_wire_parse_result(s, code) || *code == SR_WIRE_UNAUTH || *code == SR_WIRE_EXPIRED) return -1;
    if (*code == SR_WIRE_OK) return 0;
    if (!msg[0]) snprintf(msg, msglen, "the gateway reported %s", s);
    return 0;
}

/* A live request of this node (not a relayed part of another's, 11). */
static areq *req_find(sr_broker *b, const char *op, const char *id)
{
    for (areq *r = b->live; r; r = r->next)
        if (!strcmp(r->id, id) && !strcmp(r->op, op) && !r->relay_from[0]) return r;
    return NULL;
}

static part *part_of(areq *r, const char *gw)
{
    for (size_t i = 0; r && i < r->nparts; i++)
        if (!strcmp(r->parts[i].gw, gw)) return &r->parts[i];
    return NULL;
}

/* The live request id with a part for gw: (11) a node holds one relayed
 * request per part of another node's request, under that request's id. */
static areq *req_find_gw(sr_broker *b, const char *op, const char *id, const char *gw)
{
    for (areq *r = b->live; r; r = r->next)
        if (!strcmp(r->id, id) && !strcmp(r->op, op) && part_of(r, gw)) return r;
    return NULL;
}

/* Submit l; acknowledge the gateway when durable. */
static void submit_for_gw(sr_broker *b, evlist *l, job *j, sr_gw_answer_cb cb, void *ctx, const char *ok_msg)
{
    if (!j) j = calloc(1, sizeof *j);
    if (!j) {
        gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
        return;
    }
    if (!j->what) j->what = J_STORE;
    j->b = b;
    j->gcb = cb;
    j->gctx = ctx;
    j->ok_msg = ok_msg;
    int rc = submit(b, &l->b, l->lens, l->n, j);
    if (rc) {
        if (j->r) {
            j->p->busy = 0;
            j->r->inflight--;
            areq_unref(j->r);
        }
        json_decref(j->p_values);
        json_decref(j->p_applied);
        json_decref(j->p_sig);
        sr_buf_release(&j->push_ev);
        if (j->rel) sr_relay_clear(j->rel), free(j->rel);
        free(j);
        /* at once: only a full queue is E9002 with rc SR_EFULL, which the
         * server holds and retries (back-pressure, sr_gw_answer.rc);
         * anything else is E9001 (transient too) */
        gw_answer(cb, ctx, rc == SR_EFULL ? SR_WIRE_BUSY : SR_WIRE_INTERNAL, rc, sr_wire_msg_of_rc(rc), NULL);
    }
}

static void answer_done(job *j)
{
    part *p = j->p;
    areq *r = j->r;
    p->busy = 0;
    r->inflight--;
    if (j->res.rc == SR_OK) {
        /* a duplicate stored nothing of this message: it settles nothing
         * (the first one with that messageId did, if it answered this part) */
        if (part_open(p) && !j->res.duplicate) {
            p->state = j->p_state;
            p->code = j->p_code;
            snprintf(p->msg, sizeof p->msg, "%s", j->p_msg);
            json_decref(p->values);
            p->values = j->p_values;
            j->p_values = NULL;
            json_decref(p->applied);
            p->applied = j->p_applied;
            j->p_applied = NULL;
            json_decref(p->sig);
            p->sig = j->p_sig;
            j->p_sig = NULL;
            r->nopen--;
        }
        gw_ack(j->gcb, j->gctx, SR_WIRE_OK, j->res.duplicate ? "duplicate; stored once" : j->ok_msg, NULL);
    } else
        gw_answer(j->gcb, j->gctx, sr_wire_of_rc(j->res.rc), j->res.rc,
                  j->res.err.msg[0] ? j->res.err.msg : sr_wire_msg_of_rc(j->res.rc), NULL);
    json_decref(j->p_values);
    json_decref(j->p_applied);
    json_decref(j->p_sig);
    request_maybe_finish(r);
    SR_INVARIANT(req_check(r)); /* r is alive: the job's reference */
    areq_unref(r);
}

/* ---- checking a gateway's answer against the request it answers ----------
 * Every field is checked for presence and type, then against the request
 * (its kind, its dataIds, the master type of the control point) BEFORE
 * anything is built or stored; a refusal names the field (E1001, E3001) and
 * stores nothing. */

static void gw_refuse(sr_gw_answer_cb cb, void *ctx, sr_wire code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void gw_refuse(sr_gw_answer_cb cb, void *ctx, sr_wire code, const char *fmt, ...)
{
    char m[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    gw_ack(cb, ctx, code, m, NULL);
}

/* NULL if v is a value of a point of type t, else what is wrong (the same
 * rules as api/gwif_json.c's values). */
static const char *value_type_err(int t, const json_t *v)
{
    switch (t) {
    case SR_VT_NUMBER: return json_is_number(v) ? NULL : "a number is required";
    case SR_VT_INTEGER: return json_is_integer(v) ? NULL : "an integer is required";
    case SR_VT_BOOL: return json_is_boolean(v) ? NULL : "true or false is required";
    default:
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return "a string (without NUL) is required";
        return json_string_length(v) > 4096 ? "at most 4096 bytes" : NULL;
    }
}

typedef struct idx_id {
    const char *id;
    size_t i;
} idx_id;

static int idx_cmp(const void *x, const void *y)
{
    const idx_id *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    return c ? c : a->i < b->i ? -1 : a->i > b->i;
}

static void value_refused(sr_gw_err *err, size_t i, const char *d, const char *why)
{
    if (!err->detail) err->detail = json_array();
    json_t *o = json_pack("{s:I,s:s,s:s}", "index", (json_int_t)i, "dataId", d ? d : "", "error", why);
    if (o && err->detail) json_array_append_new(err->detail, o);
    else json_decref(o);
}

/* vals were checked by sr_gw_values_event (objects with a dataId each).
 * Each dataId must be one of asked (and, once set, appear only once);
 * otherwise err names every such value (E1001). Sorted, so that a message
 * of many values costs n log n, not n times the dataIds asked. */
static int values_asked(json_t *vals, const json_t *asked, int once, const char *of, sr_gw_err *err)
{
    size_t n = json_array_size(vals), na = json_array_size(asked), bad = 0;
    idx_id *v = calloc(n ? n : 1, sizeof *v), *a = calloc(na ? na : 1, sizeof *a);
    if (!v || !a) {
        free(v);
        free(a);
        err->code = SR_WIRE_INTERNAL;
        snprintf(err->message, sizeof err->message, "out of memory");
        return SR_ENOMEM;
    }
    for (size_t i = 0; i < na; i++) {
        const char *d = json_string_value(json_array_get(asked, i));
        a[i] = (idx_id){d ? d : "", i};
    }
    qsort(a, na, sizeof *a, idx_cmp);
    for (size_t i = 0; i < n; i++) {
        const char *d = json_string_value(json_object_get(json_array_get(vals, i), "dataId"));
        v[i] = (idx_id){d ? d : "", i};
    }
    qsort(v, n, sizeof *v, idx_cmp); /* by id, then by index: the first of equal ids comes first */
    char *why = calloc(n ? n : 1, 1); /* per value index: 1 not asked, 2 given twice */
    for (size_t k = 0; why && k < n; k++) {
        idx_id key = {v[k].id, 0};
        size_t lo = 0, hi = na;
        while (lo < hi) { /* lower bound of id in a */
            size_t mid = (lo + hi) / 2;
            if (strcmp(a[mid].id, key.id) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == na || strcmp(a[lo].id, key.id)) why[v[k].i] = 1;
        else if (once && k && !strcmp(v[k - 1].id, v[k].id)) why[v[k].i] = 2;
    }
    char notasked[64];
    snprintf(notasked, sizeof notasked, "not asked for by %s", of);
    for (size_t i = 0; why && i < n; i++)
        if (why[i]) {
            bad++;
            value_refused(err, i, json_string_value(json_object_get(json_array_get(vals, i), "dataId")),
                          why[i] == 1 ? notasked : "given twice");
        }
    int oom = !why;
    free(why);
    free(v);
    free(a);
    if (oom) {
        err->code = SR_WIRE_INTERNAL;
        snprintf(err->message, sizeof err->message, "out of memory");
        return SR_ENOMEM;
    }
    if (!bad) return SR_OK;
    err->code = SR_WIRE_PARAM;
    snprintf(err->message, sizeof err->message, "body.values: %zu of %zu values not asked for by %s; nothing stored",
             bad, n, of);
    return SR_EINVAL;
}

/* (8) vals were checked by sr_gw_values_event (each with an RFC 3339
 * timestamp): none of a monitor with an endAt may be timestamped after it;
 * otherwise err names them (E1001, at most 100) and nothing is stored. */
static int values_before_end(json_t *vals, int64_t end_ms, sr_gw_err *err)
{
    if (!end_ms) return SR_OK;
    size_t n = json_array_size(vals), bad = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(vals, i), *t = json_object_get(v, "timestamp");
        int64_t ms;
        if (!json_is_string(t) || sr_rfc3339_parse(json_string_value(t), json_string_length(t), &ms) || ms <= end_ms)
            continue;
        if (bad++ < 100)
            value_refused(err, i, json_string_value(json_object_get(v, "dataId")), "timestamp after the monitor's endAt");
    }
    if (!bad) return SR_OK;
    err->code = SR_WIRE_PARAM;
    snprintf(err->message, sizeof err->message,
             "body.values: %zu of %zu values timestamped after the monitor's endAt; nothing stored", bad, n);
    return SR_EINVAL;
}

/* A checked answer settles part p of r: its transition (after what l holds;
 * the first event carries msgid, de-duplication) is submitted, the part busy
 * until it is durable (2); cb answers (a gateway, or the relay's no-op).
 * values (normalised) and sig are taken over; applied is borrowed. source:
 * the event's source (a relaying node), NULL none. */
static void part_settle(sr_broker *b, areq *r, part *p, evlist *l, sr_wire code, const char *rmsg, json_t *values,
                        json_t *applied, json_t *sig, const char *gprot, const char *signed_body, size_t signed_len,
                        const char *msgid, const char *source, sr_gw_answer_cb cb, void *ctx)
{
    const char *op = r->op;
    int ok = code == SR_WIRE_OK;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(values);
        json_decref(sig);
        return gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    j->what = J_ANSWER;
    j->r = r;
    j->p = p;
    j->p_code = code;
    snprintf(j->p_msg, sizeof j->p_msg, "%s", rmsg);
    j->p_state = ok ? SR_RS_SUCCEEDED : SR_RS_FAILED;
    j->p_values = values;
    if (applied) j->p_applied = json_incref(applied);
    j->p_sig = sig;
    /* the part's transition */
    cvset vs;
    memset(&vs, 0, sizeof vs);
    int rc = j->p_values ? cv_build(b->eng, op, j->p_values, &vs) : SR_OK;
    sr_control_value apc;
    sr_request_transition rt = {.request_id = r->id,
                                .gateway_id = p->gw,
                                .state = (sr_req_state)j->p_state,
                                .error_code = ok ? "" : sr_wire_code(code),
                                .message = rmsg,
                                .values = vs.cv,
                                .n_values = vs.n};
    if (gprot && signed_body) {
        rt.protection = (sr_slice){gprot, strlen(gprot)};
        rt.signed_body = (sr_slice){signed_body, signed_len};
    }
    if (applied && !rc) {
        rc = cv_one(b->eng, op, json_string_value(json_object_get(p->wire, "dataId")), applied, &apc);
        rt.applied = &apc;
        rt.n_applied = 1;
    }
    sr_cmd_env env = {op, p->gw, SR_ACTOR_GATEWAY, l->n ? NULL : msgid, source};
    size_t at = l->b.len;
    if (!rc) rc = evl_end(l, at, sr_cmd_request_transition(&env, &rt, &l->b));
    cv_free(&vs);
    if (rc) {
        json_decref(j->p_values);
        json_decref(j->p_applied);
        json_decref(j->p_sig);
        free(j);
        return gw_ack(cb, ctx, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    }
    p->busy = 1; /* (2) */
    r->inflight++;
    r->refs++;
    submit_for_gw(b, l, j, cb, ctx, "stored");
}

/* GW_IMMEDIATE_RESULT / GW_CONTROL_RESULT */
static void gw_result(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, int kind,
                      sr_gw_answer_cb cb, void *ctx)
{
    json_t *body = msg->body;
    json_t *rid = json_object_get(body, "requestId");
    sr_wire code;
    char rmsg[160];
    int control = kind == SR_RK_CONTROL;
    /* 1. the fields on their own */
    if (!json_is_string(rid) || !sr_id_str_ok(json_string_value(rid)))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.requestId: [A-Za-z0-9._-]{1,64} is required", NULL);
    if (parse_result(json_object_get(body, "result"), &code, rmsg, sizeof rmsg))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.result: \"0\" or {\"code\":\"E....\",\"message\":\"...\"} (an interface.md code)", NULL);
    int ok = code == SR_WIRE_OK;
    json_t *vals = json_object_get(body, "values"), *applied = json_object_get(body, "appliedValue"),
           *did = json_object_get(body, "dataId");
    if (control) {
        if (vals) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.values: not part of a control result", NULL);
        if (!json_is_string(did) || !sr_id_str_ok(json_string_value(did)))
            return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.dataId: the controlled data point's ID is required", NULL);
        if (json_is_null(applied)) applied = NULL;
        if (ok && !applied)
            return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.appliedValue is required with result 0", NULL);
    } else {
        if (applied) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.appliedValue: not part of an immediate result", NULL);
        if (did) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.dataId: not part of an immediate result", NULL);
        if (vals && !json_is_array(vals)) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.values: an array", NULL);
        if (ok && !vals) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.values: an array is required with result 0", NULL);
    }
    /* 2. the request: live, of this gateway, of this kind; or finished */
    const char *id = json_string_value(rid);
    areq *r = req_find_gw(b, op, id, gw);
    part *p = r ? part_of(r, gw) : NULL;
    int late = 0, rkind = p ? r->kind : -1;
    json_t *asked = NULL; /* the dataIds the part asked for (owned) */
    if (p) {
        asked = control ? json_pack("[O]", json_object_get(p->wire, "dataId"))
                        : json_incref(json_object_get(p->wire, "dataIds"));
        late = !part_open(p);
    } else {
        /* finished (or before a restart)? then only its values count */
        sr_rec rr = SR_REC_INIT;
        sr_request_rec rqv, *rq = &rqv;
        sr_request_transition st;
        int has_st;
        int rc = sr_read_request(b->eng, op, id, gw, &rr, rq, &st, &has_st);
        if (rc == SR_ECORRUPT) rq = NULL, rc = SR_OK; /* the record does not decode */
        else if (rc) rq = NULL;
        if (rq) {
            rkind = (int)rq->kind;
            asked = json_array();
            if (rkind == SR_RK_CONTROL && rq->n_control)
                json_array_append_new(asked, json_string(rq->control[0].data_id));
            else
                for (size_t i = 0; i < rq->n_data_ids; i++) json_array_append_new(asked, json_string(rq->data_ids[i]));
        }
        sr_rec_close(&rr);
        if (rc == SR_ENOTFOUND) return gw_ack(cb, ctx, SR_WIRE_UNKNOWN, "unknown requestId (never sent to this gateway)", NULL);
        if (rc || !rq) {
            json_decref(asked);
            return gw_ack(cb, ctx, SR_WIRE_INTERNAL, rc ? sr_strerror(rc) : "the request's record is unreadable", NULL);
        }
        late = 1;
    }
    if (rkind != kind) {
        json_decref(asked);
        return gw_refuse(cb, ctx, SR_WIRE_PARAM, "body.requestId: %s is a %s request, not %s (wrong message type)", id,
                         rk_name(rkind), rk_name(kind));
    }
    if (!asked) return gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
    /* 3. the fields against the request */
    if (control) {
        const char *want = json_string_value(json_array_get(asked, 0));
        if (!want || strcmp(want, json_string_value(did))) {
            gw_refuse(cb, ctx, SR_WIRE_PARAM, "body.dataId: request %s controls %s, not %s", id, want ? want : "?",
                      json_string_value(did));
            json_decref(asked);
            return;
        }
        if (applied) {
            sr_point_info info;
            const char *terr = sr_engine_point_info(b->eng, op, want, &info) == SR_OK
                                   ? value_type_err((int)info.type, applied)
                                   : "the data point is not known";
            if (terr) {
                gw_refuse(cb, ctx, SR_WIRE_PARAM, "body.appliedValue: %s (data point %s)", terr, want);
                json_decref(asked);
                return;
            }
        }
    } else if (json_array_size(vals) > json_array_size(asked)) {
        gw_refuse(cb, ctx, SR_WIRE_PARAM, "body.values: %zu values for a request of %zu dataIds", json_array_size(vals),
                  json_array_size(asked));
        json_decref(asked);
        return;
    }
    /* the values (stored in any case: they are measurements) */
    evlist l = {0};
    sr_buf_init(&l.b);
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    size_t nv = 0;
    int rc = SR_OK;
    if (json_array_size(vals)) {
        sr_buf ev;
        sr_buf_init(&ev);
        rc = sr_gw_values_event_sig(b->eng, op, gw, msg->message_id, NULL, sr_gw_sig_state(msg), vals, &ev, &nv, &err);
        if (!rc) rc = values_asked(vals, asked, 1, "this request", &err);
        if (!rc) rc = evl_add_raw(&l, &ev);
        sr_buf_release(&ev);
    }
    json_decref(asked);
    if (rc) {
        gw_ack(cb, ctx, err.code ? err.code : SR_WIRE_INTERNAL, err.code ? err.message : sr_strerror(rc), err.detail);
        sr_gw_err_clear(&err);
        sr_buf_release(&l.b);
        return;
    }
    if (late) {
        if (!l.n) {
            sr_buf_release(&l.b);
            return gw_ack(cb, ctx, SR_WIRE_OK, "request already finished", NULL);
        }
        submit_for_gw(b, &l, NULL, cb, ctx, "request already finished; values stored");
        sr_buf_release(&l.b);
        return;
    }
    json_t *sig = NULL;
    char *gprot = NULL;
    /* R-SE-3: the gateway's verified protection goes to the app as it came */
    if (msg->sig_verified && msg->signed_body) {
        sig = json_pack("{s:s,s:O,s:s%}", "gatewayId", gw, "protection", msg->protection, "signedBody",
                        msg->signed_body, msg->signed_len);
        gprot = json_dumps(msg->protection, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    part_settle(b, r, p, &l, code, rmsg, vals ? values_norm(vals) : NULL, applied, sig, gprot, msg->signed_body,
                msg->signed_len, msg->message_id, NULL, cb, ctx);
    free(gprot);
    sr_buf_release(&l.b);
}

/* (12) GW_PERIODIC_DATA of another node's monitor: checked against what
 * its relayed START asked of this gateway (as gw_periodic checks a local
 * one), durable here, the gateway acknowledged, then sent to the monitor's
 * node (on_job: the DATA once the event's seq is known). */
static void gw_periodic_relayed(sr_broker *b, rmon *rm, const sr_gw_msg *msg, sr_gw_answer_cb cb, void *ctx)
{
    json_t *vals = json_object_get(msg->body, "values");
    if (!json_is_array(vals)) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.values: an array is required", NULL);
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    sr_buf ev;
    sr_buf_init(&ev);
    size_t nv = 0;
    int rc = sr_gw_values_event_sig(b->eng, rm->op, rm->gw, msg->message_id, rm->id, sr_gw_sig_state(msg), vals, &ev,
                                    &nv, &err);
    if (!rc) rc = values_asked(vals, rm->data_ids, 0, "this monitor", &err);
    if (!rc) rc = values_before_end(vals, rm->end_ms, &err);
    if (rc) {
        gw_ack(cb, ctx, err.code ? err.code : SR_WIRE_INTERNAL, err.code ? err.message : sr_strerror(rc), err.detail);
        sr_gw_err_clear(&err);
        sr_buf_release(&ev);
        return;
    }
    job *j = calloc(1, sizeof *j);
    sr_relay *d = j ? calloc(1, sizeof *d) : NULL;
    if (d && (d->ev = malloc(ev.len ? ev.len : 1))) {
        relay_head(b, d, SR_RELAY_DATA, SR_RK_PERIODIC_DATA, rm->op, rm->gw, rm->app, rm->id);
        snprintf(d->monitor, sizeof d->monitor, "%s", rm->id);
        snprintf(d->msgid, sizeof d->msgid, "%s", msg->message_id && sr_id_str_ok(msg->message_id) ? msg->message_id : "");
        memcpy(d->ev, ev.data, ev.len);
        d->ev_len = ev.len;
        d->values = json_incref(vals);
        d->gw_signed = sr_gw_sig_state(msg) != 0;
        snprintf(j->rel_node, sizeof j->rel_node, "%s", rm->node);
        j->what = J_PERIODIC;
        j->rel = d;
    } else {
        if (d) free(d);
        free(j);
        j = NULL;
    }
    evlist l = {0};
    sr_buf_init(&l.b);
    if (j && evl_add_raw(&l, &ev) == SR_OK) submit_for_gw(b, &l, j, cb, ctx, "stored");
    else {
        if (j) sr_relay_clear(j->rel), free(j->rel), free(j);
        gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    sr_buf_release(&l.b);
    sr_buf_release(&ev);
}

static void gw_periodic(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                        void *ctx)
{
    json_t *mid = json_object_get(msg->body, "monitorId");
    if (!json_is_string(mid) || !sr_id_str_ok(json_string_value(mid)))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.monitorId: [A-Za-z0-9._-]{1,64} is required", NULL);
    mon *m = mon_find(b, op, json_string_value(mid));
    int mine = 0;
    for (size_t k = 0; m && k < m->ngws; k++) mine |= !strcmp(m->gws[k], gw);
    rmon *rm = !mine && b->creq ? rmon_find(b, op, json_string_value(mid), gw) : NULL;
    if (rm) return gw_periodic_relayed(b, rm, msg, cb, ctx); /* (12) */
    if (!mine) return gw_ack(cb, ctx, SR_WIRE_UNKNOWN, "unknown monitorId (not a monitor of this gateway)", NULL);
    json_t *vals = json_object_get(msg->body, "values");
    if (!json_is_array(vals)) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.values: an array is required", NULL);
    if (mon_over(m, wall_ms())) mon_expire(b); /* (8): its endAt came before the timer */
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    sr_buf ev;
    sr_buf_init(&ev);
    size_t nv = 0;
    int rc = sr_gw_values_event_sig(b->eng, op, gw, msg->message_id, m->id, sr_gw_sig_state(msg), vals, &ev, &nv, &err);
    /* a monitor's data may repeat a point (several intervals in one message) */
    if (!rc) rc = values_asked(vals, m->data_ids, 0, "this monitor", &err);
    if (!rc) rc = values_before_end(vals, m->end_ms, &err);
    if (rc) {
        gw_ack(cb, ctx, err.code ? err.code : SR_WIRE_INTERNAL, err.code ? err.message : sr_strerror(rc), err.detail);
        sr_gw_err_clear(&err);
    } else {
        evlist l = {0};
        sr_buf_init(&l.b);
        /* push (R-AP-17): the job keeps the event; once durable the push is
         * derived from it (push_monitor_event), filtered then */
        job *j = b->push ? calloc(1, sizeof *j) : NULL;
        if (j) {
            j->what = J_PERIODIC;
            sr_buf_init(&j->push_ev);
            if (sr_buf_append(&j->push_ev, ev.data, ev.len)) sr_buf_release(&j->push_ev); /* no push, still stored */
        }
        if (evl_add_raw(&l, &ev) == SR_OK) submit_for_gw(b, &l, j, cb, ctx, "stored");
        else {
            if (j) sr_buf_release(&j->push_ev);
            free(j);
            gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
        }
        sr_buf_release(&l.b);
    }
    sr_buf_release(&ev);
}

/* Push what became durable to the app (api/push.h); nothing if no push. */
static void push_out(sr_broker *b, const char *op, const char *app, const char *path, json_t *body, uint64_t seq)
{
    if (!b->push || !body) return;
    int rc = sr_push_enqueue(b->push, op, app, path, body, seq);
    if (rc) sr_slog(SR_LOG_WARN, "push not queued", "op=%s app=%s path=%s error=%s", op, app, path, sr_err_name(rc));
}

typedef struct mvals {
    const mon *m;
    const uint32_t *pts; /* the point of each of the monitor's dataIds (UINT32_MAX: none) */
    json_t *vals;
} mvals;

static int mvals_add(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s)
{
    mvals *d = ctx;
    for (size_t k = 0; k < json_array_size(d->m->data_ids); k++)
        if (d->pts[k] == point) {
            const char *id = json_string_value(json_array_get(d->m->data_ids, k));
            json_array_append_new(d->vals, sr_sample_json(id, type, s));
            break;
        }
    return 0; /* a point the monitor did not ask for: not the app's */
}

/* A monitor's values are durable in event ev (seq set): push those the
 * monitor asked for and the app may read now (the others are counted and
 * logged); nothing if none, or if the monitor is no longer known. The one
 * derivation of a monitor's push: the live path (once durable) and the
 * recovery at start (sr_broker_push_derive) give the same body for the same
 * event, values as AP-IF answers them, in the event's order. */
static void push_monitor_event(sr_broker *b, const sr_event_view *ev)
{
    const char *mid = sr_event_monitor_id(ev);
    if (!b->push || !mid[0]) return;
    mon *m = mon_find(b, ev->op, mid);
    if (!m) return;
    size_t n = json_array_size(m->data_ids);
    uint32_t *pts = malloc((n ? n : 1) * sizeof *pts);
    mvals d = {m, pts, json_array()};
    for (size_t k = 0; pts && k < n; k++) {
        sr_vtype t;
        if (sr_engine_point(b->eng, ev->op, json_string_value(json_array_get(m->data_ids, k)), &pts[k], &t))
            pts[k] = UINT32_MAX;
    }
    if (!pts || !d.vals || sr_event_each_value(ev, mvals_add, &d)) {
        sr_slog(SR_LOG_WARN, "push not derived", "op=%s monitor=%s seq=%llu", ev->op, mid, (unsigned long long)ev->seq);
        goto done;
    }
    grantset gs;
    grants_load(b, ev->op, m->app, &gs);
    size_t withheld = 0;
    json_t *vals = values_for_app(d.vals, m->data_ids, &gs, &withheld);
    grants_free(&gs);
    log_withheld(ev->op, m->app, "monitor", m->id, withheld);
    if (json_array_size(vals)) {
        char path[96];
        snprintf(path, sizeof path, "monitors/%s", m->id);
        json_t *body = json_pack("{s:s,s:O}", "monitorId", m->id, "values", vals);
        if (body && withheld) json_object_set_new(body, "withheldValues", json_integer((json_int_t)withheld));
        /* (ext) R-SE-3: the gateway's message verified (docs/signatures.md) */
        if (body && sr_event_sig_state(ev) == SR_SIG_VERIFIED) json_object_set_new(body, "gatewaySigned", json_true());
        push_out(b, ev->op, m->app, path, body, ev->seq);
        json_decref(body);
    }
    json_decref(vals);
done:
    json_decref(d.vals);
    free(pts);
}

/* The live path: the job's event is durable at j->res.seq. */
static void push_periodic(sr_broker *b, job *j)
{
    if (!b->push || !j->push_ev.len) return;
    sr_rec r = SR_REC_INIT;
    sr_event_view v;
    if (sr_event_decode(j->push_ev.data, j->push_ev.len, &r, &v) == SR_OK) {
        v.seq = j->res.seq;
        push_monitor_event(b, &v);
    }
    sr_rec_close(&r);
}


/* An async request's outcome is durable in event seq: push what
 * GET /api/v1/requests/{id} says (read from the index: the same after a
 * restart). The one derivation of an outcome's push: the live path and the
 * recovery at start. */
static void push_request_outcome(sr_broker *b, const char *op, const char *app, const char *id, uint64_t seq)
{
    json_t *o = NULL;
    char path[96];
    snprintf(path, sizeof path, "requests/%s", id);
    if (sr_broker_request_status(b, op, app, id, &o) == SR_OK) push_out(b, op, app, path, o, seq);
    json_decref(o);
}

static void push_outcome(sr_broker *b, areq *r)
{
    if (b->push && r->async) push_request_outcome(b, r->op, r->app, r->id, r->final_seq);
}

void sr_broker_push_derive(void *ctx, const sr_event_view *ev)
{
    sr_broker *b = ctx;
    const char *id = sr_event_request_outcome(ev);
    if (!id) {
        push_monitor_event(b, ev);
        return;
    }
    sr_rec rr = SR_REC_INIT;
    sr_request_rec rq;
    sr_request_transition st;
    int has = 0;
    if (b->push && sr_read_request(b->eng, ev->op, id, "", &rr, &rq, &st, &has) == SR_OK && rq.async)
        push_request_outcome(b, ev->op, rq.app_id, id, ev->seq);
    sr_rec_close(&rr);
}

/* A gateway's acknowledgement of monitor m (gateway gi): its open part p
 * (may be NULL) settled, the monitor moved when every gateway acknowledged;
 * msgid the gateway's messageId (NULL: relayed), source the relaying node
 * (12; NULL here). */
static void mon_ack(sr_broker *b, mon *m, size_t gi, part *p, int start, sr_wire code, const char *rmsg,
                    const char *msgid, const char *source, sr_gw_answer_cb cb, void *ctx)
{
    const char *op = m->op, *gw = m->gws[gi];
    int ok = code == SR_WIRE_OK;
    evlist l = {0};
    sr_buf_init(&l.b);
    int rc = SR_OK;
    if (p) {
        sr_request_transition rt = {.request_id = p->r->id,
                                    .gateway_id = p->gw,
                                    .state = ok ? SR_RS_SUCCEEDED : SR_RS_FAILED,
                                    .error_code = ok ? "" : sr_wire_code(code),
                                    .message = rmsg};
        rc = evl_transition_src(&l, op, gw, SR_ACTOR_GATEWAY, msgid, source, &rt);
        p->state = rt.state;
        p->r->nopen = 0;
        p->r->finished = 1;
        areq_unref(p->r);
    }
    /* the monitor moves on when every gateway acknowledged */
    int want = start ? (m->state == SR_MS_STARTING || m->state == SR_MS_RUNNING)
                     : m->state == SR_MS_STOPPING;
    if (!rc && ok && want && !m->acked[gi]) {
        m->acked[gi] = 1;
        int all = 1;
        for (size_t k = 0; k < m->ngws; k++) all &= m->acked[k];
        if (all) m->state = start ? SR_MS_RUNNING : SR_MS_STOPPED;
        SR_INVARIANT(mon_check(m));
        rc = mon_event_src(&l, m, gw, SR_ACTOR_GATEWAY, source);
        if (all) sr_slog(SR_LOG_INFO, "monitor state", "op=%s monitor=%s status=%s", op, m->id, ms_name(m->state));
    } else if (!ok)
        sr_slog(SR_LOG_WARN, "monitor action refused by the gateway", "op=%s gw=%s monitor=%s action=%s code=%s", op,
                gw, m->id, start ? "START" : "STOP", sr_wire_code(code));
    if (!rc && l.n) submit_for_gw(b, &l, NULL, cb, ctx, "stored");
    else if (!rc) gw_ack(cb, ctx, SR_WIRE_OK, "nothing to change", NULL);
    else gw_ack(cb, ctx, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    sr_buf_release(&l.b);
}

/* (12) the open relayed START / STOP part of another node's monitor id for gw */
static areq *relayed_mon_req(sr_broker *b, const char *op, const char *id, const char *gw, int kind)
{
    for (areq *r = b->live; r; r = r->next)
        if (r->relay_from[0] && !r->finished && r->kind == kind && !strcmp(r->monitor, id) && !strcmp(r->op, op) &&
            r->nparts && part_open(&r->parts[0]) && !strcmp(r->parts[0].gw, gw))
            return r;
    return NULL;
}

static void gw_monitor_ack(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                           void *ctx)
{
    json_t *mid = json_object_get(msg->body, "monitorId"), *act = json_object_get(msg->body, "action");
    sr_wire code;
    char rmsg[160];
    if (!json_is_string(mid) || !sr_id_str_ok(json_string_value(mid)))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.monitorId: [A-Za-z0-9._-]{1,64} is required", NULL);
    const char *a = json_is_string(act) ? json_string_value(act) : "";
    if (strcmp(a, "START") && strcmp(a, "STOP")) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.action: START or STOP", NULL);
    if (parse_result(json_object_get(msg->body, "result"), &code, rmsg, sizeof rmsg))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.result: \"0\" or {\"code\":\"E....\",\"message\":\"...\"} (an interface.md code)", NULL);
    int start = !strcmp(a, "START");
    int kind = start ? SR_RK_PERIODIC_START : SR_RK_PERIODIC_STOP;
    mon *m = mon_find(b, op, json_string_value(mid));
    size_t gi = 0;
    while (m && gi < m->ngws && strcmp(m->gws[gi], gw)) gi++;
    if (!m || gi == m->ngws) {
        /* (12) another node's monitor: its relayed part settled here (the
         * result goes back to that node once durable: relay_back) */
        areq *r = b->creq ? relayed_mon_req(b, op, json_string_value(mid), gw, kind) : NULL;
        if (r) {
            evlist l = {0};
            sr_buf_init(&l.b);
            part_settle(b, r, &r->parts[0], &l, code, rmsg, NULL, NULL, NULL, NULL, NULL, 0, msg->message_id, NULL, cb,
                        ctx);
            sr_buf_release(&l.b);
            return;
        }
        if (b->creq && rmon_find(b, op, json_string_value(mid), gw))
            return gw_ack(cb, ctx, SR_WIRE_OK, "nothing to change", NULL);
        return gw_ack(cb, ctx, SR_WIRE_UNKNOWN, "unknown monitorId (not a monitor of this gateway)", NULL);
    }
    mon_ack(b, m, gi, mon_part(b, m, gw, kind), start, code, rmsg, msg->message_id, NULL, cb, ctx);
}

int sr_broker_cert(sr_broker *b, const char *op, const char *subject, const char *id, sr_buf *pem)
{
    pem->len = 0;
    if (!strcmp(subject, "platform"))
        return id && !strcmp(id, SR_PLATFORM_ID) ? sr_pki_platform_cert(b->dir, pem) : SR_ENOTFOUND;
    int kind = !strcmp(subject, "app") ? SR_RG_APP
               : !strcmp(subject, "gateway") ? SR_RG_GATEWAY : -1;
    if (kind < 0 || !id || !sr_id_str_ok(id)) return SR_EINVAL; /* an ID of interface.md, nothing else */
    sr_rec reg = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(b->eng, op, (sr_reg_kind)kind, id, &reg, &re);
    if (!rc) rc = re.cert_pem[0] ? sr_buf_append(pem, re.cert_pem, strlen(re.cert_pem)) : SR_ENOTFOUND;
    sr_rec_close(&reg);
    return rc;
}

static void gw_cert(sr_broker *b, const char *op, const sr_gw_msg *msg, sr_gw_answer_cb cb, void *ctx)
{
    json_t *st = json_object_get(msg->body, "subjectType"), *si = json_object_get(msg->body, "subjectId");
    if (!json_is_string(st)) return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.subjectType: platform, app or gateway", NULL);
    if (si && !json_is_string(si))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.subjectId: [A-Za-z0-9._-]{1,64} is required", NULL);
    if (strcmp(json_string_value(st), "platform") && (!si || !sr_id_str_ok(json_string_value(si))))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.subjectId: [A-Za-z0-9._-]{1,64} is required", NULL);
    sr_buf pem;
    sr_buf_init(&pem);
    /* no subjectId for platform: the platform's own (the one it has) */
    int rc = sr_broker_cert(b, op, json_string_value(st), json_is_string(si) ? json_string_value(si) : SR_PLATFORM_ID,
                            &pem);
    if (rc == SR_EINVAL) gw_ack(cb, ctx, SR_WIRE_PARAM, "body.subjectType: platform, app or gateway", NULL);
    else if (rc == SR_ENOTFOUND) gw_ack(cb, ctx, SR_WIRE_UNKNOWN, "no certificate for that subject", NULL);
    else if (rc) gw_ack(cb, ctx, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    else {
        json_t *env = envelope("GW_CERT_RES", msg->message_id, json_pack("{s:s%}", "pem", (const char *)pem.data, pem.len));
        sr_buf out;
        sr_buf_init(&out);
        if (dump_to(env, &out) == SR_OK) {
            sr_gw_answer a = {SR_WIRE_OK, "", NULL, "res/cert", &out, SR_OK};
            cb(ctx, &a);
        } else
            gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
        sr_buf_release(&out);
        json_decref(env);
    }
    sr_buf_release(&pem);
}

static void gw_fetch_now(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                         void *ctx)
{
    json_t *mx = json_object_get(msg->body, "maxItems");
    if (mx && (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 1000))
        return gw_ack(cb, ctx, SR_WIRE_PARAM, "body.maxItems: an integer 1..1000", NULL);
    int max = mx ? (int)json_integer_value(mx) : 100;
    gwent *g = gw_find(b, op, gw, 1);
    if (!g) return gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
    part *ps[1000];
    size_t n = collect(b, g, 1, ps, (size_t)max);
    sr_buf env;
    sr_buf_init(&env);
    if (requests_envelope(ps, n, "GW_FETCH_RES", msg->message_id, &env) == SR_OK) {
        for (size_t i = 0; i < n; i++) part_handed(b, ps[i]);
        sr_gw_answer a = {SR_WIRE_OK, "", NULL, "res/fetch", &env, SR_OK};
        cb(ctx, &a);
    } else
        gw_ack(cb, ctx, SR_WIRE_INTERNAL, "out of memory", NULL);
    sr_buf_release(&env);
}

static void gw_immediate(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                         void *ctx)
{
    gw_result(b, op, gw, msg, SR_RK_IMMEDIATE, cb, ctx);
}

static void gw_control(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                       void *ctx)
{
    gw_result(b, op, gw, msg, SR_RK_CONTROL, cb, ctx);
}

static void gw_cert_req(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                        void *ctx)
{
    (void)gw;
    gw_cert(b, op, msg, cb, ctx);
}

/* The GW-IF message kinds (broker.h): rows of one topic stay together. */
const sr_gw_kind sr_gw_kinds[] = {
    {"data/measurements", "/gw/v1/measurements", "GW_MEASUREMENTS", SR_GWK_VALUES, NULL, 0},
    {"data/immediate", "/gw/v1/immediate-results", "GW_IMMEDIATE_RESULT", SR_GWK_BROKER, gw_immediate, 0},
    {"data/periodic", "/gw/v1/periodic-values", "GW_PERIODIC_DATA", SR_GWK_BROKER, gw_periodic, 0},
    {"ack/monitor", "/gw/v1/monitor-acks", "GW_MONITOR_ACK", SR_GWK_BROKER, gw_monitor_ack, 0},
    {"ack/control", "/gw/v1/control-results", "GW_CONTROL_RESULT", SR_GWK_BROKER, gw_control, 0},
    {"req/fetch", "/gw/v1/requests/fetch", "GW_FETCH_REQ", SR_GWK_BROKER, gw_fetch_now, 1},
    {"req/cert", NULL, "GW_CERT_REQ", SR_GWK_BROKER, gw_cert_req, 0},
    {"status", NULL, "GW_CONNECT", SR_GWK_STATUS, NULL, 0},
    {"status", NULL, "GW_DISCONNECT", SR_GWK_STATUS, NULL, 0},
};
const size_t sr_gw_nkinds = sizeof sr_gw_kinds / sizeof sr_gw_kinds[0];
_Static_assert(sizeof sr_gw_kinds / sizeof sr_gw_kinds[0] <= SR_GW_KINDS_MAX, "raise SR_GW_KINDS_MAX (broker.h)");

const sr_gw_kind *sr_gw_kind_of_topic(const char *suffix)
{
    for (size_t i = 0; i < sr_gw_nkinds; i++)
        if (!strcmp(sr_gw_kinds[i].suffix, suffix)) return &sr_gw_kinds[i];
    return NULL;
}

int sr_gw_kind_type_check(const sr_gw_kind *k, const char *type, const char *where, char *msg, size_t cap)
{
    char want[80] = "";
    size_t wl = 0;
    for (size_t i = 0; i < sr_gw_nkinds; i++) {
        if (strcmp(sr_gw_kinds[i].suffix, k->suffix)) continue;
        if (type && !strcmp(type, sr_gw_kinds[i].type)) return 0;
        wl += (size_t)snprintf(want + wl, wl < sizeof want ? sizeof want - wl : 0, "%s%s", wl ? " or " : "",
                               sr_gw_kinds[i].type);
        if (wl >= sizeof want) wl = sizeof want - 1;
    }
    snprintf(msg, cap, "header.messageType: %s is required on %s", want, where);
    return -1;
}

void sr_broker_gw_message(sr_broker *b, const char *op, const char *gw, const char *peer, const char *suffix,
                          const sr_gw_msg *msg, sr_gw_answer_cb cb, void *ctx)
{
    (void)peer;
    const sr_gw_kind *k = sr_gw_kind_of_topic(suffix);
    if (!k || k->how != SR_GWK_BROKER) return gw_ack(cb, ctx, SR_WIRE_PARAM, "not a request topic", NULL);
    /* the message type must be the one of its topic (route) */
    char m[200];
    if (sr_gw_kind_type_check(k, msg->type, suffix, m, sizeof m)) return gw_ack(cb, ctx, SR_WIRE_PARAM, m, NULL);
    k->handler(b, op, gw, msg, cb, ctx);
}

/* ---- presence -------------------------------------------------------------- */

void sr_broker_gw_online(sr_broker *b, const char *op, const char *gw, const sr_gwlink *link)
{
    gwent *g = gw_find(b, op, gw, 1);
    if (!g) return;
    g->link = *link;
    if (b->creq) sr_creq_here(b->creq, op, gw, 1); /* (11) */
    /* what was handed out to an earlier session is handed out again */
    for (areq *r = b->live; r; r = r->next)
        if (!strcmp(r->op, op))
            for (size_t i = 0; i < r->nparts; i++)
                if (!strcmp(r->parts[i].gw, gw)) r->parts[i].handed = 0;
    mon_resend(b, op, gw);
}

void sr_broker_gw_offline(sr_broker *b, const char *op, const char *gw, void *link_ctx)
{
    gwent *g = gw_find(b, op, gw, 0);
    if (g && g->link.ctx == link_ctx) memset(&g->link, 0, sizeof g->link);
}

void sr_broker_gw_kick(sr_broker *b, const char *op, const char *gw) { gw_deliver_op(b, op, gw); }

/* ---- HTTP long poll -------------------------------------------------------- */

static void on_fwait_closed(uv_handle_t *h) { free(h->data); }

static void fwait_unlink(fwait *w)
{
    for (fwait **x = &w->g->waiters; *x; x = &(*x)->next)
        if (*x == w) {
            *x = w->next;
            break;
        }
}

static void fwait_finish(fwait *w, part **ps, size_t n)
{
    sr_buf env;
    sr_buf_init(&env);
    if (requests_envelope(ps, n, "GW_FETCH_RES", w->corr, &env) == SR_OK) {
        for (size_t i = 0; i < n; i++) part_handed(w->b, ps[i]);
        w->cb(w->ctx, &env);
    }
    sr_buf_release(&env);
    w->g->http_seen = mono_ms();
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_fwait_closed);
}

static void on_fwait_timeout(uv_timer_t *t)
{
    fwait *w = t->data;
    fwait_unlink(w);
    fwait_finish(w, NULL, 0);
}

void *sr_broker_fetch(sr_broker *b, const char *op, const char *gw, const char *corr, int max, uint32_t wait_ms,
                      sr_fetch_cb cb, void *ctx)
{
    gwent *g = gw_find(b, op, gw, 1);
    fwait *w = g ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        sr_buf empty;
        sr_buf_init(&empty);
        cb(ctx, &empty);
        return NULL;
    }
    g->http_seen = mono_ms();
    if (b->creq) sr_creq_here(b->creq, op, gw, 0); /* (11) */
    w->b = b;
    w->g = g;
    w->max = max < 1 ? 1 : max > 1000 ? 1000 : max;
    w->cb = cb;
    w->ctx = ctx;
    snprintf(w->corr, sizeof w->corr, "%s", corr ? corr : "");
    uv_timer_init(b->loop, &w->timer);
    w->timer.data = w;
    part *ps[1000];
    size_t n = collect(b, g, 1, ps, (size_t)w->max);
    if (n || !wait_ms) {
        fwait_finish(w, ps, n);
        return NULL;
    }
    /* wait, in arrival order */
    fwait **x = &g->waiters;
    while (*x) x = &(*x)->next;
    *x = w;
    uv_timer_start(&w->timer, on_fwait_timeout, wait_ms > MAX_WAIT_MS ? MAX_WAIT_MS : wait_ms, 0);
    return w;
}

void sr_broker_gw_revoked(sr_broker *b, const char *op, const char *gw)
{
    gwent *g = b ? gw_find(b, op, gw, 0) : NULL;
    while (g && g->waiters) {
        fwait *w = g->waiters;
        g->waiters = w->next;
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, on_fwait_closed);
        w->cb(w->ctx, NULL);
    }
}

void sr_broker_fetch_cancel(sr_broker *b, void *handle)
{
    (void)b;
    fwait *w = handle;
    if (!w) return;
    fwait_unlink(w);
    w->g->http_seen = mono_ms();
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_fwait_closed);
}

/* ---- (11) across cluster nodes: the relay's hooks -------------------------------- */

static void relay_answered(void *ctx, const sr_gw_answer *a)
{
    (void)ctx;
    if (a->code != SR_WIRE_OK)
        sr_slog(SR_LOG_WARN, "relayed result not stored", "code=%s error=%s", sr_wire_code(a->code),
                sr_slog_q(a->message ? a->message : ""));
}

/* (12) a relayed START / STOP result: the monitor moves as for a local
 * acknowledgement, its events' source the relaying node */
static void relay_mon_result(sr_broker *b, const sr_relay *m)
{
    mon *mo = mon_find(b, m->op, m->monitor);
    size_t gi = 0;
    while (mo && gi < mo->ngws && strcmp(mo->gws[gi], m->gw)) gi++;
    if (!mo || gi == mo->ngws || strcmp(mo->app, m->app)) {
        sr_relay_count(1, 1, SR_RO_IGNORED);
        return;
    }
    areq *r = req_find(b, m->op, m->id);
    part *p = r && r->kind == m->kind && !strcmp(r->monitor, mo->id) ? part_of(r, m->gw) : NULL;
    if (p && !part_open(p)) p = NULL;
    sr_wire code = SR_WIRE_OK;
    if (m->state == SR_RS_FAILED && sr_wire_parse_result(m->code, &code)) code = SR_WIRE_DEVICE;
    char src[64];
    snprintf(src, sizeof src, "node:%s", m->from);
    sr_relay_count(1, 1, SR_RO_USED);
    mon_ack(b, mo, gi, p, m->kind == SR_RK_PERIODIC_START, code, m->msg, NULL, src, relay_answered, NULL);
}

/* (12) a monitor's values, durable on the gateway's node: checked again
 * against this node's monitor, applied as that node's event (exactly once
 * by its origin id), the push derived once it is durable here */
static void relay_data_in(sr_broker *b, const sr_relay *m)
{
    mon *mo = mon_find(b, m->op, m->monitor);
    int mine = 0;
    for (size_t k = 0; mo && k < mo->ngws; k++) mine |= !strcmp(mo->gws[k], m->gw);
    sr_cluster *cl = sr_cluster_self();
    if (!mine || !cl) {
        sr_relay_count(1, 2, SR_RO_IGNORED);
        return;
    }
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    sr_buf ev;
    sr_buf_init(&ev);
    size_t nv = 0;
    int rc = sr_gw_values_event_sig(b->eng, m->op, m->gw, m->msgid, mo->id, m->gw_signed ? 1 : 0, m->values, &ev, &nv,
                                    &err);
    if (!rc) rc = values_asked(m->values, mo->data_ids, 0, "this monitor", &err);
    if (!rc) rc = values_before_end(m->values, mo->end_ms, &err);
    job *j = rc ? NULL : calloc(1, sizeof *j);
    if (j) {
        j->what = J_RDATA;
        j->b = b;
        sr_buf_init(&j->push_ev);
        if (sr_buf_append(&j->push_ev, ev.data, ev.len)) rc = SR_ENOMEM;
        sr_origin o = {.node = m->from,
                       .seq = (uint64_t)m->seq,
                       .partition = sr_cluster_partition(m->op, sr_cluster_partitions(cl)),
                       .consumer = 3};
        if (!rc) rc = sr_engine_submit_origin(b->eng, m->ev, m->ev_len, &o, on_done, j);
        if (rc) {
            sr_buf_release(&j->push_ev);
            free(j);
        }
    } else if (!rc)
        rc = SR_ENOMEM;
    if (rc) {
        sr_relay_count(1, 2, SR_RO_REFUSED);
        sr_slog(SR_LOG_WARN, "relayed monitor values refused", "op=%s monitor=%s gateway=%s node=%s error=%s", m->op,
                m->monitor, m->gw, m->from, sr_slog_q(err.message[0] ? err.message : sr_strerror(rc)));
    } else
        sr_relay_count(1, 2, SR_RO_USED);
    sr_gw_err_clear(&err);
    sr_buf_release(&ev);
}

/* (12) on the gateway's node: a DATA its monitor's node heard, or not;
 * 20 s unheard ends the relay of that monitor */
static void on_heard(void *ctx, const char *op, const char *gw, const char *monitor, int heard)
{
    sr_broker *b = ctx;
    rmon *x = rmon_find(b, op, monitor, gw);
    if (!x) return;
    int64_t now = wall_ms();
    if (heard) x->unheard_since = 0;
    else if (!x->unheard_since) x->unheard_since = now;
    else if (now - x->unheard_since >= SR_PRESENCE_STALE_MS) {
        sr_slog(SR_LOG_WARN, "monitor relay ended: its node does not answer", "op=%s monitor=%s gateway=%s node=%s",
                op, monitor, gw, x->node);
        rmon_drop(b, op, monitor, gw);
    }
}

/* (12) on the gateway's node, once its values are durable: DATA to the
 * monitor's node */
static void relay_data_out(sr_broker *b, job *j)
{
    j->rel->seq = (int64_t)j->res.seq;
    if (b->creq && j->res.seq && sr_creq_send(b->creq, j->rel_node, j->rel) == SR_OK) sr_relay_count(0, 2, SR_RO_SENT);
}

static void relay_result(sr_broker *b, const char *op, const char *gw, const char *from, const sr_relay *m)
{
    if (m->kind == SR_RK_PERIODIC_START || m->kind == SR_RK_PERIODIC_STOP) return relay_mon_result(b, m);
    areq *r = req_find(b, op, m->id);
    part *p = r && !r->relay_from[0] ? part_of(r, gw) : NULL;
    if (!p || !part_open(p) || r->kind != m->kind) { /* a duplicate, late, or not this node's */
        sr_relay_count(1, 1, SR_RO_IGNORED);
        return;
    }
    sr_wire code = SR_WIRE_OK;
    if (m->state == SR_RS_FAILED && sr_wire_parse_result(m->code, &code)) code = SR_WIRE_DEVICE;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    int rc = SR_OK;
    if (m->values) {
        json_t *asked = json_object_get(p->wire, "dataIds");
        rc = values_asked(m->values, asked, 1, "this request", &err);
    }
    if (m->applied) {
        sr_point_info info;
        const char *want = json_string_value(json_object_get(p->wire, "dataId"));
        if (!want || sr_engine_point_info(b->eng, op, want, &info) ||
            value_type_err((int)info.type, m->applied))
            rc = SR_EINVAL;
    }
    if (rc) {
        sr_relay_count(1, 1, SR_RO_REFUSED);
        sr_slog(SR_LOG_WARN, "relayed result refused", "op=%s request=%s gateway=%s node=%s error=%s", op, m->id, gw,
                from, sr_slog_q(err.message[0] ? err.message : "appliedValue"));
        sr_gw_err_clear(&err);
        return;
    }
    char src[64];
    snprintf(src, sizeof src, "node:%s", from);
    char *gprot = NULL;
    const char *sbody = NULL;
    size_t slen = 0;
    json_t *sbj = json_object_get(m->sig, "signedBody");
    if (json_is_object(json_object_get(m->sig, "protection")) && json_is_string(sbj)) {
        gprot = json_dumps(json_object_get(m->sig, "protection"), JSON_COMPACT | JSON_PRESERVE_ORDER);
        sbody = json_string_value(sbj);
        slen = json_string_length(sbj);
    }
    evlist l = {0};
    sr_buf_init(&l.b);
    sr_relay_count(1, 1, SR_RO_USED);
    part_settle(b, r, p, &l, code, m->msg, m->values ? json_incref(m->values) : NULL, m->applied,
                gprot ? json_incref(m->sig) : NULL, gprot, sbody, slen, NULL, src, relay_answered, NULL);
    free(gprot);
    sr_buf_release(&l.b);
}

static void relay_request(sr_broker *b, const sr_relay *m)
{
    areq *r = req_find_gw(b, m->op, m->id, m->gw);
    if (r) { /* sent again (the origin saw the gateway move): hand it out again */
        sr_relay_count(1, 0, SR_RO_IGNORED);
        for (size_t i = 0; i < r->nparts; i++) r->parts[i].handed = 0;
        gw_deliver_op(b, m->op, m->gw);
        return;
    }
    const char *why = !gw_online(b, m->op, m->gw) ? "not connected to this node" : live_quota(b, m->op, 1);
    if (!why && m->kind == SR_RK_PERIODIC_STOP) { /* (12) its START no longer goes out */
        areq *st = relayed_mon_req(b, m->op, m->monitor, m->gw, SR_RK_PERIODIC_START);
        if (st) {
            st->parts[0].state = SR_RS_CANCELLED;
            st->nopen = 0;
            st->finished = 1;
            if (st->timer_init) uv_timer_stop(&st->timer);
            areq_unref(st);
        }
    }
    if (!why && m->kind == SR_RK_PERIODIC_START) (void)rmon_put(b, m, &why); /* (12) */
    if (!why && !(r = calloc(1, sizeof *r))) why = "out of memory";
    if (!why && !(r->parts = calloc(1, sizeof *r->parts))) why = "out of memory";
    if (why) {
        if (r) free(r);
        sr_relay_count(1, 0, SR_RO_REFUSED);
        sr_relay res = {.state = SR_RS_FAILED};
        relay_head(b, &res, SR_RELAY_RES, m->kind, m->op, m->gw, m->app, m->id);
        sr_wire w = why[0] == 'n' ? SR_WIRE_GW_DOWN : SR_WIRE_BUSY;
        snprintf(res.code, sizeof res.code, "%s", sr_wire_code(w));
        int k = snprintf(res.msg, sizeof res.msg, "gateway %s: ", m->gw);
        if (k > 0 && (size_t)k < sizeof res.msg) snprintf(res.msg + k, sizeof res.msg - (size_t)k, "%s", why);
        if (sr_creq_send(b->creq, m->from, &res) == SR_OK) sr_relay_count(0, 1, SR_RO_SENT);
        return;
    }
    sr_relay_count(1, 0, SR_RO_USED);
    r->b = b;
    snprintf(r->id, sizeof r->id, "%s", m->id);
    snprintf(r->op, sizeof r->op, "%s", m->op);
    snprintf(r->app, sizeof r->app, "%s", m->app);
    snprintf(r->relay_from, sizeof r->relay_from, "%s", m->from);
    r->kind = m->kind;
    snprintf(r->monitor, sizeof r->monitor, "%s", m->monitor); /* (12) "" for a request */
    r->state = SR_RS_CREATED;
    r->created_ms = wall_ms();
    r->deadline_ms = m->deadline_ms;
    r->refs = 1; /* the live table */
    r->created = 1; /* its creation is durable in the origin's log */
    r->nparts = r->nopen = 1;
    part *p = &r->parts[0];
    p->r = r;
    snprintf(p->gw, sizeof p->gw, "%s", m->gw);
    p->state = SR_RS_CREATED;
    p->wire = json_incref(m->part);
    uv_timer_init(b->loop, &r->timer);
    r->timer.data = r;
    r->timer_init = 1;
    int64_t left = r->deadline_ms - wall_ms();
    uv_timer_start(&r->timer, on_deadline, left > 0 ? (uint64_t)left : 0, 0);
    live_add(b, r);
    SR_INVARIANT(req_check(r));
    gw_deliver_op(b, r->op, p->gw);
}

/* ---- (13) a monitor's DELETE from any node ---- */

/* Is monitor id of (op, app) run by another node (its indexed MonitorEvent
 * names it)? 1 with *node, else 0 (not in the index, this node's, a node ""
 * of one node, or another app's: answered here as on one node). */
static int mon_elsewhere(sr_broker *b, const char *op, const char *app, const char *id, char node[32])
{
    if (!b->creq || !sr_id_str_ok(id)) return 0;
    sr_rec r = SR_REC_INIT;
    sr_monitor_rec me;
    int found = sr_read_monitor(b->eng, op, id, &r, &me) == SR_OK && me.node && me.node[0] &&
                strcmp(me.node, sr_creq_node(b->creq)) && !strcmp(me.app_id, app);
    if (found) snprintf(node, 32, "%s", me.node);
    sr_rec_close(&r);
    return found;
}

static void on_ask_timer(uv_timer_t *t);

static void ask_arm(sr_broker *b)
{
    if (b->closing || uv_is_closing((uv_handle_t *)&b->ask_timer)) return;
    uint64_t due = 0, now = mono_ms();
    for (mask *x = b->asks; x; x = x->next)
        if (!due || x->due < due) due = x->due;
    if (due) uv_timer_start(&b->ask_timer, on_ask_timer, due > now ? due - now : 0, 0);
    else uv_timer_stop(&b->ask_timer);
}

/* Take the waiting ASK id (asked of node; NULL any) out of the list. */
static mask *ask_take(sr_broker *b, const char *id, const char *node)
{
    for (mask **p = &b->asks; *p; p = &(*p)->next)
        if (!strcmp((*p)->id, id) && (!node || !strcmp((*p)->node, node))) {
            mask *x = *p;
            *p = x->next;
            b->nasks--;
            return x;
        }
    return NULL;
}

static void ask_unavailable(mask *x, const char *why)
{
    char m[200];
    snprintf(m, sizeof m, "monitor %s is run by node %s, which %s; retry", x->monitor, x->node, why);
    json_t *body = error_body(SR_WIRE_BUSY, m, NULL);
    x->cb(x->ctx, 503, body); /* + Retry-After (api/apif_http.c on_broker_answer) */
    json_decref(body);
}

static void on_ask_timer(uv_timer_t *t)
{
    sr_broker *b = t->data;
    uint64_t now = mono_ms();
    for (mask **p = &b->asks; *p;) {
        mask *x = *p;
        if (x->due > now) {
            p = &x->next;
            continue;
        }
        *p = x->next;
        b->nasks--;
        sr_slog(SR_LOG_WARN, "cluster: a monitor's node did not answer a stop", "op=%s monitor=%s node=%s", x->op,
                x->monitor, x->node);
        ask_unavailable(x, "did not answer in time");
        free(x);
    }
    ask_arm(b);
}

static void ask_out(sr_broker *b, const char *node, const char *op, const char *app, const char *monitor,
                    sr_app_cb cb, void *ctx)
{
    mask *x = b->nasks < MAX_ASKS && !b->closing ? calloc(1, sizeof *x) : NULL;
    if (!x) {
        mask tmp = {.cb = cb, .ctx = ctx};
        snprintf(tmp.node, sizeof tmp.node, "%s", node);
        snprintf(tmp.monitor, sizeof tmp.monitor, "%s", monitor);
        return ask_unavailable(&tmp, "cannot be asked now (too many questions waiting)");
    }
    new_id('K', x->id);
    snprintf(x->node, sizeof x->node, "%s", node);
    snprintf(x->op, sizeof x->op, "%s", op);
    snprintf(x->monitor, sizeof x->monitor, "%s", monitor);
    x->cb = cb;
    x->ctx = ctx;
    x->due = mono_ms() + ASK_MS;
    sr_relay m = {0};
    relay_head(b, &m, SR_RELAY_ASK, SR_RK_MONITOR_STOP, op, "", app, x->id);
    snprintf(m.monitor, sizeof m.monitor, "%s", monitor);
    if (sr_creq_send(b->creq, node, &m) != SR_OK) {
        ask_unavailable(x, "cannot be asked now (the relay is closed)");
        free(x);
        return;
    }
    sr_relay_count(0, 3, SR_RO_SENT);
    x->next = b->asks;
    b->asks = x;
    b->nasks++;
    ask_arm(b);
}

/* On the monitor's node: the ASK's answer goes back to the asking node. */
typedef struct askback {
    sr_broker *b;
    char from[32], op[72], app[72], id[24], monitor[24];
} askback;

static void ask_reply(void *ctx, int status, json_t *body)
{
    askback *k = ctx;
    sr_relay m = {0};
    relay_head(k->b, &m, SR_RELAY_ANS, SR_RK_MONITOR_STOP, k->op, "", k->app, k->id);
    snprintf(m.monitor, sizeof m.monitor, "%s", k->monitor);
    m.status = status;
    m.body = body; /* borrowed: m is not cleared */
    if (!k->b->closing && sr_creq_send(k->b->creq, k->from, &m) == SR_OK) sr_relay_count(0, 4, SR_RO_SENT);
    free(k);
}

static void ask_in(sr_broker *b, const sr_relay *m)
{
    askback *k = calloc(1, sizeof *k);
    if (!k) return; /* the asking node answers 503 at its deadline */
    sr_relay_count(1, 3, SR_RO_USED);
    k->b = b;
    snprintf(k->from, sizeof k->from, "%s", m->from);
    snprintf(k->op, sizeof k->op, "%s", m->op);
    snprintf(k->app, sizeof k->app, "%s", m->app);
    snprintf(k->id, sizeof k->id, "%s", m->id);
    snprintf(k->monitor, sizeof k->monitor, "%s", m->monitor);
    monitor_stop_here(b, m->op, m->app, m->monitor, ask_reply, k); /* never asked again */
}

static void ans_in(sr_broker *b, const sr_relay *m)
{
    mask *x = ask_take(b, m->id, m->from);
    if (!x || strcmp(x->op, m->op) || strcmp(x->monitor, m->monitor)) { /* late, a duplicate, or not ours */
        if (x) { /* the same id from the same node for another monitor: not its answer */
            x->next = b->asks;
            b->asks = x;
            b->nasks++;
        }
        sr_relay_count(1, 4, SR_RO_IGNORED);
        return;
    }
    sr_relay_count(1, 4, SR_RO_USED);
    x->cb(x->ctx, m->status, m->body);
    free(x);
    ask_arm(b);
}

/* an ASK's fate on the relay's thread: not heard (no node subscribed, or no
 * answer within 1 s) ends it at once */
static void on_asked(void *ctx, const char *id, int heard)
{
    sr_broker *b = ctx;
    if (heard) return;
    mask *x = ask_take(b, id, NULL);
    if (!x) return;
    sr_slog(SR_LOG_WARN, "cluster: a monitor's node does not answer", "op=%s monitor=%s node=%s", x->op, x->monitor,
            x->node);
    ask_unavailable(x, "does not answer");
    free(x);
    ask_arm(b);
}

static void on_relayed(void *ctx, const sr_relay *m)
{
    sr_broker *b = ctx;
    if (b->closing) return;
    if (m->type == SR_RELAY_REQ) relay_request(b, m);
    else if (m->type == SR_RELAY_DATA) relay_data_in(b, m);
    else if (m->type == SR_RELAY_ASK) ask_in(b, m);
    else if (m->type == SR_RELAY_ANS) ans_in(b, m);
    else relay_result(b, m->op, m->gw, m->from, m);
}

/* the gateway's presence moved: its open parts go to the new node */
static void on_moved(void *ctx, const char *op, const char *gw, const char *node)
{
    sr_broker *b = ctx;
    if (!node || b->closing || gw_online(b, op, gw)) return;
    int64_t since = 0;
    if (!sr_creq_where(b->creq, op, gw, &since)) return;
    for (areq *r = b->live; r; r = r->next) {
        if (r->relay_from[0] || !r->created || r->finished || strcmp(r->op, op)) continue;
        for (size_t i = 0; i < r->nparts; i++) {
            part *p = &r->parts[i];
            if (!strcmp(p->gw, gw) && part_open(p) && (strcmp(p->relay_node, node) || p->relay_since != since))
                relay_out(b, p);
        }
    }
    mon_resend(b, op, gw); /* (12) its monitors sent again, as at a reconnection here */
}

static int on_online(void *ctx, const char *op, const char *gw) { return gw_online(ctx, op, gw); }

void sr_broker_relay_hooks(sr_broker *b, sr_creq_hooks *h)
{
    h->ctx = b;
    h->relayed = on_relayed;
    h->moved = on_moved;
    h->online = on_online;
    h->heard = on_heard;
    h->asked = on_asked;
}

void sr_broker_set_relay(sr_broker *b, sr_creq *q)
{
    if (b) b->creq = q;
}

/* ---- status ------------------------------------------------------------------ */

int sr_broker_request_status(sr_broker *b, const char *op, const char *app, const char *id, json_t **out)
{
    sr_rec rr = SR_REC_INIT;
    sr_request_rec rqv, *rq = &rqv;
    sr_request_transition rtv;
    int has_st = 0;
    int rc = sr_read_request(b->eng, op, id, "", &rr, rq, &rtv, &has_st);
    const sr_request_transition *rt = !rc && has_st ? &rtv : NULL;
    if (!rc && strcmp(rq->app_id, app)) rc = SR_ENOTFOUND; /* another app's: does not exist for this one */
    if (!rc) {
        areq *r = req_find(b, op, id);
        int st = rt ? (int)rt->state : r ? r->state : SR_RS_CREATED;
        char t[32];
        sr_rfc3339_format(rq->deadline_ms - rq->timeout_ms, t);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "requestId", id, "type", rk_name(rq->kind), "status", rs_name(st),
                              "createdAt", t);
        sr_wire w = SR_WIRE_OK;
        if (rt && rt->error_code[0] && sr_wire_parse(rt->error_code, &w)) w = SR_WIRE_INTERNAL; /* (never stored) */
        if (rt && rt->error_code[0]) json_object_set_new(o, "result", result_obj(w, rt->message));
        else if (rt) json_object_set_new(o, "result", result_obj(SR_WIRE_OK, "OK"));
        /* only what the request asked for and the app may see now */
        grantset gs;
        size_t withheld = 0;
        if (rt) grants_load(b, op, app, &gs);
        else memset(&gs, 0, sizeof gs);
        if (rt && rt->n_values) {
            json_t *vals = json_array();
            for (size_t i = 0; i < rt->n_values; i++) {
                const char *d = rt->values[i].data_id;
                int asked = 0;
                for (size_t k = 0; k < rq->n_data_ids && !asked; k++) asked = !strcmp(rq->data_ids[k], d);
                if (!asked || !grants_allow(&gs, d, 1)) {
                    withheld++;
                    continue;
                }
                json_t *v = cv_json(&rt->values[i]);
                json_array_append_new(vals, value_json(d, rt->values[i].timestamp_ms, v, (int)rt->values[i].quality));
                json_decref(v);
            }
            json_object_set_new(o, "values", vals);
        } else if (rt && rq->kind == SR_RK_IMMEDIATE)
            json_object_set_new(o, "values", json_array());
        if (rt && rt->n_applied) {
            const char *d = rt->applied[0].data_id;
            int asked = rq->n_control && !strcmp(rq->control[0].data_id, d);
            if (asked && grants_allow(&gs, d, 2)) json_object_set_new(o, "appliedValue", cv_json(&rt->applied[0]));
            else withheld++;
        }
        if (withheld) json_object_set_new(o, "withheldValues", json_integer((json_int_t)withheld));
        log_withheld(op, app, "request", id, withheld);
        grants_free(&gs);
        *out = o;
    }
    sr_rec_close(&rr);
    return rc;
}

/* ---- loop plumbing ------------------------------------------------------------ */

/* an engine completion, on the loop (oldest first) */
static void on_job(void *ctx, sr_loopq_item *it)
{
    sr_broker *b = ctx;
    job *j = SR_CONTAINER(it, job, li);
    {
        switch (j->what) {
        case J_CREATED:
            created_done(j);
            areq_unref(j->r);
            break;
        case J_ANSWER: answer_done(j); break;
        case J_FINAL:
            j->r->state = j->r->final_state;
            j->r->final_seq = j->res.seq;
            if (j->res.rc)
                sr_slog(SR_LOG_ERROR, "request outcome not stored", "request=%s error=%s", j->r->id,
                        sr_err_name(j->res.rc));
            request_answer_app(j->r);
            if (!j->res.rc) push_outcome(b, j->r); /* R-AP-17 */
            areq_unref(j->r); /* the job's */
            areq_unref(j->r); /* the live table's */
            break;
        case J_MONITOR: monitor_done(j); break;
        case J_RDATA: /* (12) the relayed values are durable here (or were: the stream's copy) */
            if (!j->res.rc) push_periodic(b, j);
            else
                sr_slog(SR_LOG_WARN, "relayed monitor values not stored", "error=%s detail=%s", sr_err_name(j->res.rc),
                        sr_slog_q(j->res.err.msg));
            sr_buf_release(&j->push_ev);
            break;
        default: /* J_STORE, J_PERIODIC */
            /* R-AP-17: queued before the gateway is acknowledged (a gateway
             * holding its ack knows the push is queued); a duplicate was
             * pushed the first time */
            if (j->what == J_PERIODIC && !j->res.rc && !j->res.duplicate)
                push_periodic(b, j);
            if (j->rel && !j->res.rc && !j->res.duplicate) relay_data_out(b, j); /* (12) */
            if (j->rel) sr_relay_clear(j->rel), free(j->rel);
            sr_buf_release(&j->push_ev);
            if (j->res.rc)
                gw_answer(j->gcb, j->gctx, sr_wire_of_rc(j->res.rc), j->res.rc,
                          j->res.err.msg[0] ? j->res.err.msg : sr_wire_msg_of_rc(j->res.rc), NULL);
            else
                gw_ack(j->gcb, j->gctx, SR_WIRE_OK, j->res.duplicate ? "duplicate; stored once" : j->ok_msg, NULL);
            break;
        }
        free(j);
    }
}

int sr_broker_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, sr_broker **out, char *err, size_t errlen)
{
    sr_broker *b = calloc(1, sizeof *b);
    if (!b) return SR_ENOMEM;
    b->loop = loop;
    b->eng = eng;
    snprintf(b->dir, sizeof b->dir, "%s", data_dir);
    int rc = sr_pki_ensure_platform(data_dir, SR_ALG_ES256, err, errlen); /* the server made it first (cfg) */
    if (rc) {
        free(b);
        return rc;
    }
    b->max_live = MAX_LIVE;
    b->max_live_op = MAX_LIVE_OP;
    b->max_mons_op = MAX_MONS_OP;
    b->stopped_kept = STOPPED_KEPT;
    sr_loopq_init(&b->doneq, loop, on_job, b);
    uv_timer_init(loop, &b->mon_timer);
    b->mon_timer.data = b;
    uv_unref((uv_handle_t *)&b->mon_timer); /* never what keeps the loop running */
    uv_timer_init(loop, &b->ask_timer);
    b->ask_timer.data = b;
    uv_unref((uv_handle_t *)&b->ask_timer);
    *out = b;
    return SR_OK;
}

void sr_broker_quiesce(sr_broker *b)
{
    if (b) b->closing = 1;
}

void sr_broker_set_limits(sr_broker *b, size_t requests_max, size_t requests_per_op, size_t monitors_per_op,
                          size_t stopped_kept)
{
    b->max_live = requests_max ? requests_max : MAX_LIVE;
    b->max_live_op = requests_per_op ? requests_per_op : MAX_LIVE_OP;
    b->max_mons_op = monitors_per_op ? monitors_per_op : MAX_MONS_OP;
    b->stopped_kept = stopped_kept ? stopped_kept : STOPPED_KEPT;
}

void sr_broker_set_push(sr_broker *b, sr_push *p)
{
    if (b) b->push = p;
}

void sr_broker_flush(sr_broker *b)
{
    if (b) sr_loopq_drain(&b->doneq);
}

void sr_broker_dispose(sr_broker *b)
{
    if (!b) return;
    sr_loopq_drain(&b->doneq);
    for (gwent *g = b->gws; g; g = g->next)
        while (g->waiters) {
            fwait *w = g->waiters;
            g->waiters = w->next;
            fwait_finish(w, NULL, 0);
        }
    for (areq *r = b->live; r; r = r->next)
        if (r->timer_init) {
            uv_close((uv_handle_t *)&r->timer, NULL);
            r->timer_init = 0;
        }
    if (!uv_is_closing((uv_handle_t *)&b->mon_timer)) uv_close((uv_handle_t *)&b->mon_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->ask_timer)) uv_close((uv_handle_t *)&b->ask_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&b->doneq.async)) uv_close((uv_handle_t *)&b->doneq.async, NULL);
}

void sr_broker_free(sr_broker *b)
{
    if (!b) return;
    /* answer whoever still waits, then drop everything */
    while (b->live) {
        areq *r = b->live;
        if (r->cb) app_answer(r->cb, r->cbctx, SR_WIRE_INTERNAL, "server stopping");
        r->cb = NULL;
        b->live = r->next;
        areq_free(r); /* timers were closed by the loop walk */
    }
    while (b->asks) { /* (13) */
        mask *x = b->asks;
        b->asks = x->next;
        app_answer(x->cb, x->ctx, SR_WIRE_INTERNAL, "server stopping");
        free(x);
    }
    while (b->mons) {
        mon *m = b->mons;
        b->mons = m->next;
        mon_free(m);
    }
    while (b->oplives) {
        oplive *o = b->oplives;
        b->oplives = o->next;
        free(o);
    }
    while (b->loaded) {
        oploaded *o = b->loaded;
        b->loaded = o->next;
        free(o);
    }
    while (b->gws) {
        gwent *g = b->gws;
        b->gws = g->next;
        free(g);
    }
    while (b->rmons) {
        rmon *x = b->rmons;
        b->rmons = x->next;
        json_decref(x->data_ids);
        free(x);
    }
    sr_loopq_destroy(&b->doneq);
    free(b);
}
