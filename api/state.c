/*
 * api/state.c -- the state at a past time as JSON (issue #18, R-RE-2;
 * docs/state.md "The answer"): one writer for the Admin API's
 * GET /admin/v1/state and `suiro state`.
 *
 * The engine gives the index as it was at T (sr_engine_state_open,
 * engine/state.c: the nearest state snapshot and the events after it up
 * to seq(T) applied to a private index);
 * this file reads it with the typed readers of engine/records.h, the same
 * readers that answer the live routes, and writes each operator's section:
 * masters, gateways, apps, grants, the latest value of every data point,
 * the running monitors, the pending requests, the connected gateways and
 * apps, the open alarms.
 *
 * INVARIANTS
 *  (1) Nothing of the live index is read: every section comes from the
 *      private engine at T (a state after T never leaks into the answer).
 *  (2) The JSON is a function of the log up to seq(T), op and the snapshot
 *      the answer started from (`snapshot`, `replayed`; every other member
 *      is the same from any snapshot: docs/state.md) only (keys in index
 *      order, no clock read): the API and the CLI give the same bytes.
 */
#include "api/state.h"

#include "codecs/rfc3339.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const MASTER_KIND[] = {"", "facility", "equipment", "device", "dataPoint"};
static const char *const MON_STATE[] = {"", "starting", "running", "stopping", "stopped"};
static const char *const REQ_STATE[] = {"",          "created", "dispatched", "acknowledged",
                                        "succeeded", "failed",  "timedOut",   "cancelled"};
static const char *const REQ_KIND[] = {"", "immediate", "periodicStart", "periodicStop", "control"};
#define NAME(tab, i) ((size_t)(i) < sizeof tab / sizeof tab[0] ? tab[i] : "")

static json_t *time_json(int64_t ms)
{
    char t[32];
    sr_rfc3339_format(ms, t);
    return json_string(t);
}

static json_t *strs(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

/* masters of every kind, and the data points' numbers for the values */
static int masters(sr_engine *e, const char *op, json_t *sec, json_t *values)
{
    json_t *arr = json_array();
    json_object_set_new(sec, "masters", arr);
    for (int k = SR_MK_FACILITY; k <= SR_MK_DATA_POINT; k++) {
        sr_rec r = SR_REC_INIT;
        int rc = sr_list_masters(e, op, (sr_master_kind)k, &r);
        if (rc == SR_ENOTFOUND) rc = SR_OK;
        sr_master m;
        while (!rc && sr_rec_next_master(&r, &m) == 1) {
            json_t *o = json_pack("{s:s,s:s,s:s}", "kind", NAME(MASTER_KIND, k), "id", m.id, "name", m.name ? m.name : "");
            if (m.parent_id && m.parent_id[0]) json_object_set_new(o, "parent", json_string(m.parent_id));
            if (k == SR_MK_DEVICE && m.gateway_id && m.gateway_id[0])
                json_object_set_new(o, "gateway", json_string(m.gateway_id));
            json_array_append_new(arr, o);
            if (k != SR_MK_DATA_POINT) continue;
            /* the latest value received by T (docs/state.md "Values") */
            sr_sample s;
            int found = 0;
            sr_buf str;
            sr_buf_init(&str);
            if (sr_engine_latest(e, &m.point, 1, &s, &found, &str) == SR_OK && found) {
                json_t *v = NULL;
                switch (m.type) {
                case SR_VT_INTEGER: v = json_integer((json_int_t)s.v.i); break;
                case SR_VT_BOOL: v = json_boolean(s.v.b); break;
                case SR_VT_STRING: v = json_stringn(s.v.str.s ? s.v.str.s : "", s.v.str.slen); break;
                default: v = json_real(s.v.f); break;
                }
                json_t *row = json_pack("{s:s,s:o,s:o,s:s}", "dataId", m.id, "time", time_json(s.ts), "value", v,
                                        "quality", sr_quality_str(s.quality));
                json_array_append_new(values, row);
            }
            sr_buf_release(&str);
        }
        sr_rec_close(&r);
        if (rc) return rc;
    }
    return SR_OK;
}

static int registry(sr_engine *e, const char *op, json_t *sec)
{
    static const struct {
        sr_reg_kind kind;
        const char *name;
    } K[] = {{SR_RG_GATEWAY, "gateways"}, {SR_RG_APP, "apps"}, {SR_RG_GRANT, "grants"}};
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        json_t *arr = json_array();
        json_object_set_new(sec, K[i].name, arr);
        sr_rec r = SR_REC_INIT;
        int rc = sr_list_registry(e, op, K[i].kind, &r);
        if (rc == SR_ENOTFOUND) rc = SR_OK;
        sr_reg_entry g;
        while (!rc && sr_rec_next_registry(&r, &g) == 1) {
            json_t *o;
            if (K[i].kind == SR_RG_GRANT) {
                o = json_pack("{s:s,s:s,s:s,s:s}", "id", g.id, "app", g.app_id ? g.app_id : "", "pattern",
                              g.pattern ? g.pattern : "", "access", g.access ? g.access : "");
                if (g.grant_kind && g.grant_kind[0]) json_object_set_new(o, "grantKind", json_string(g.grant_kind));
            } else {
                o = json_pack("{s:s,s:s,s:b}", "id", g.id, "name", g.name ? g.name : "", "disabled", g.disabled);
                if (K[i].kind == SR_RG_GATEWAY && g.protocol && g.protocol[0])
                    json_object_set_new(o, "protocol", json_string(g.protocol));
            }
            json_array_append_new(arr, o);
        }
        sr_rec_close(&r);
        if (rc) return rc;
    }
    return SR_OK;
}

static int monitors(sr_engine *e, const char *op, json_t *sec)
{
    json_t *arr = json_array();
    json_object_set_new(sec, "monitors", arr);
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_monitors(e, op, &r);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    sr_monitor_rec m;
    while (!rc && sr_rec_next_monitor(&r, &m) == 1) {
        if (m.state == SR_MS_STOPPED) continue; /* running: started and not stopped */
        json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:I}", "monitorId", m.monitor_id, "app", m.app_id ? m.app_id : "",
                              "state", NAME(MON_STATE, m.state), "dataIds", strs(m.data_ids, m.n_data_ids), "gateways",
                              strs(m.gateway_ids, m.n_gateway_ids), "intervalMs", (json_int_t)m.interval_ms);
        json_array_append_new(arr, o);
    }
    sr_rec_close(&r);
    return rc;
}

typedef struct reqs {
    sr_engine *e;
    json_t *arr;
} reqs;

static int one_request(void *ctx, const char *op, const char *req, const char *gw)
{
    reqs *x = ctx;
    sr_rec r = SR_REC_INIT;
    sr_request_rec rq;
    sr_request_transition st;
    int has = 0;
    int rc = sr_read_request(x->e, op, req, gw, &r, &rq, &st, &has);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    else if (!rc && (!has || st.state < SR_RS_SUCCEEDED)) { /* pending: not finished at T */
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "requestId", req, "kind", NAME(REQ_KIND, rq.kind), "app",
                              rq.app_id ? rq.app_id : "", "state", has ? NAME(REQ_STATE, st.state) : "created",
                              "dataIds", strs(rq.data_ids, rq.n_data_ids));
        if (gw[0]) json_object_set_new(o, "gateway", json_string(gw));
        json_array_append_new(x->arr, o);
    }
    sr_rec_close(&r);
    return rc;
}

static int alive(sr_engine *e, const char *op, json_t *sec)
{
    json_t *arr = json_array();
    json_object_set_new(sec, "connected", arr);
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_alive(e, op, &r);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    sr_alive_rec a;
    while (!rc && sr_rec_next_alive(&r, &a) == 1) {
        if (a.state != SR_AS_ONLINE || strcmp(a.op ? a.op : "", op)) continue;
        json_t *o = json_pack("{s:s,s:s,s:o,s:s}", "kind", a.kind == SR_ACTOR_APP ? "app" : "gateway", "id", a.id,
                              "since", time_json(a.since_ms), "binding", a.binding ? a.binding : "");
        json_array_append_new(arr, o);
    }
    sr_rec_close(&r);
    return rc;
}

static json_t *alarm_json(const sr_alarm *a)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:I}", "alarmId", a->id, "rule", a->rule ? a->rule : "",
                          "subject", a->subject ? a->subject : "", "state", a->state ? a->state : "", "level",
                          sr_alarm_level_name(a->level) ? sr_alarm_level_name(a->level) : "", "message",
                          a->message ? a->message : "", "raised", time_json(a->raised_ms), "count",
                          (json_int_t)a->count);
    return o;
}

/* the open alarms of op (op NULL: of the platform, op "") */
static int alarms(sr_engine *e, const char *op, json_t *arr)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_open_alarms(e, &r);
    if (rc == SR_ENOTFOUND) rc = SR_OK;
    sr_alarm a;
    while (!rc && sr_rec_next_alarm(&r, &a) == 1)
        if (!strcmp(a.op ? a.op : "", op ? op : "")) json_array_append_new(arr, alarm_json(&a));
    sr_rec_close(&r);
    return rc;
}

static json_t *section(sr_engine *e, const char *op, int *rc)
{
    json_t *sec = json_pack("{s:s}", "operator", op), *values = json_array(), *arr;
    if (!(*rc = masters(e, op, sec, values))) *rc = registry(e, op, sec);
    json_object_set_new(sec, "values", values);
    if (!*rc) *rc = monitors(e, op, sec);
    if (!*rc) {
        reqs x = {e, json_array()};
        json_object_set_new(sec, "requests", x.arr);
        *rc = sr_engine_request_each(e, op, one_request, &x);
    }
    if (!*rc) *rc = alive(e, op, sec);
    json_object_set_new(sec, "alarms", arr = json_array());
    if (!*rc) *rc = alarms(e, op, arr);
    return sec;
}

json_t *sr_state_json(sr_engine *e, int64_t at_ms, const char *op, int *rc, sr_errinfo *ei)
{
    sr_engine *at = NULL;
    sr_state_info in;
    if ((*rc = sr_engine_state_open(e, at_ms, &at, &in, ei))) return NULL;
    json_t *ans = json_pack("{s:o,s:I,s:I}", "at", time_json(at_ms), "atMs", (json_int_t)at_ms, "seq",
                            (json_int_t)in.seq);
    if (in.seq) json_object_set_new(ans, "seqTime", time_json(in.seq_ms));
    if (in.horizon_ms) json_object_set_new(ans, "horizon", time_json(in.horizon_ms));
    /* the snapshot the answer started from (docs/state.md "How it is
     * built"): seq 0 is the log's start; replayed: the events after it */
    json_t *snap = json_pack("{s:I}", "seq", (json_int_t)in.snap_seq);
    if (in.snap_seq) json_object_set_new(snap, "at", time_json(in.snap_ms));
    json_object_set_new(ans, "snapshot", snap);
    json_object_set_new(ans, "replayed", json_integer((json_int_t)in.replayed));
    if (in.erased) json_object_set_new(ans, "erased", json_integer((json_int_t)in.erased));
    json_t *ops = json_array(), *pal = json_array();
    json_object_set_new(ans, "operators", ops);
    if (!at) { /* before the first event: nothing existed */
        if (op) json_array_append_new(ops, json_pack("{s:s}", "operator", op));
        if (!op) json_object_set_new(ans, "platformAlarms", pal);
        else json_decref(pal);
        return ans;
    }
    if (op) {
        json_array_append_new(ops, section(at, op, rc));
        json_decref(pal);
    } else {
        sr_rec r = SR_REC_INIT;
        *rc = sr_list_operators(at, &r);
        if (*rc == SR_ENOTFOUND) *rc = SR_OK;
        sr_reg_entry g;
        while (!*rc && sr_rec_next_registry(&r, &g) == 1) json_array_append_new(ops, section(at, g.id, rc));
        sr_rec_close(&r);
        if (!*rc) *rc = alarms(at, NULL, pal);
        json_object_set_new(ans, "platformAlarms", pal);
    }
    sr_engine_state_close(at);
    if (*rc) {
        if (ei && !ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "the state at T cannot be read: %s", sr_strerror(*rc));
        json_decref(ans);
        return NULL;
    }
    return ans;
}
