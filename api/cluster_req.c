/* api/cluster_req.c -- request flows across cluster nodes (issue #19 phase
 * 2b; the contract and its invariants: api/cluster_req.h; the design:
 * docs/cluster.md "Request flows across nodes").
 *
 * Parts: the presence key and value, the presence map and the relay
 * message (pure, unit tested in tests/api/test_cluster_req.c, the message
 * fuzzed by tests/fuzz/fuzz_relay.c); the thread (its own NATS connection:
 * the <name>_GWS bucket, its watcher, the two core NATS subscriptions, the
 * out queue); the loop side (the map, this node's gateways and their
 * refresh timer).
 */
#include "api/cluster_req.h"

#include "api/httpu.h"
#include "api/loopq.h"
#include "api/slog.h"
#include "api/wire.h"
#include "codecs/ids.h"
#include "engine/records.h"
#include "storage/crypto.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- counters ---- */

static _Atomic uint64_t counted[SR_RELAY_DIRS][SR_RELAY_KINDS][SR_RELAY_OUTCOMES];

const char *sr_relay_kind_name(int k)
{
    static const char *const n[SR_RELAY_KINDS] = {"request", "result", "data", "ask", "answer"};
    return k >= 0 && k < SR_RELAY_KINDS ? n[k] : "?";
}

const char *sr_relay_outcome_name(int o)
{
    static const char *const n[SR_RELAY_OUTCOMES] = {"sent", "used", "ignored", "refused", "unheard"};
    return o >= 0 && o < SR_RELAY_OUTCOMES ? n[o] : "?";
}

void sr_relay_count(int dir, int kind, int outcome)
{
    if (dir >= 0 && dir < SR_RELAY_DIRS && kind >= 0 && kind < SR_RELAY_KINDS && outcome >= 0 &&
        outcome < SR_RELAY_OUTCOMES)
        atomic_fetch_add(&counted[dir][kind][outcome], 1);
}

uint64_t sr_relay_counted(int dir, int kind, int outcome)
{
    if (dir < 0 || dir >= SR_RELAY_DIRS || kind < 0 || kind >= SR_RELAY_KINDS || outcome < 0 ||
        outcome >= SR_RELAY_OUTCOMES)
        return 0;
    return atomic_load(&counted[dir][kind][outcome]);
}

/* ---- presence: key and value ---- */

static int esc_into(const char *s, char *out, size_t n, size_t *k)
{
    for (; *s; s++) {
        const char *e = *s == '.' ? "=2E" : *s == '=' ? "=3D" : NULL;
        size_t l = e ? 3 : 1;
        if (*k + l >= n) return -1;
        if (e) memcpy(out + *k, e, 3);
        else out[*k] = *s;
        *k += l;
    }
    return 0;
}

int sr_presence_key(const char *op, const char *gw, char *out, size_t n)
{
    size_t k = 0;
    if (!n || esc_into(op, out, n, &k) || k + 1 >= n) return -1;
    out[k++] = '.';
    if (esc_into(gw, out, n, &k)) return -1;
    out[k] = 0;
    return (int)k;
}

static int jid(json_t *o, const char *k, char *out, size_t n, char *err, size_t errlen)
{
    if (sr__cjson_str(o, k, 0, out, n, err, errlen)) return -1;
    if (!sr_id_str_ok(out)) {
        snprintf(err, errlen, "%s: an ID [A-Za-z0-9._-]{1,64} is required", k);
        return -1;
    }
    return 0;
}

static int jint(json_t *o, const char *k, int64_t *out, char *err, size_t errlen)
{
    return sr__cjson_int(o, k, 0, out, err, errlen);
}

int sr_presence_parse(const void *p, size_t n, sr_presence *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *o = sr__cjson_obj(p, n, "presence", err, errlen);
    if (!o) return SR_EINVAL;
    char e2[160];
    int rc = jid(o, "op", out->op, sizeof out->op, e2, sizeof e2) || jid(o, "gw", out->gw, sizeof out->gw, e2, sizeof e2) ||
             sr__cjson_str(o, "node", 1, out->node, sizeof out->node, e2, sizeof e2) ||
             jint(o, "since_ms", &out->since_ms, e2, sizeof e2) || jint(o, "at_ms", &out->at_ms, e2, sizeof e2);
    if (!rc && out->node[0] && sr_cluster_check_name("node", out->node, e2, sizeof e2)) rc = -1;
    json_decref(o);
    if (rc) {
        snprintf(err, errlen, "presence: %s", e2);
        memset(out, 0, sizeof *out);
        return SR_EINVAL;
    }
    return SR_OK;
}

int sr_presence_format(const sr_presence *v, char *buf, size_t n)
{
    /* ids and node names hold no character JSON escapes */
    int k = snprintf(buf, n, "{\"op\":\"%s\",\"gw\":\"%s\",\"node\":\"%s\",\"since_ms\":%" PRId64 ",\"at_ms\":%" PRId64 "}",
                     v->op, v->gw, v->node, v->since_ms, v->at_ms);
    return k < 0 || (size_t)k >= n ? -1 : k;
}

/* ---- the presence map ---- */

enum { PMAP_BUCKETS = 1024 };
typedef struct pent {
    sr_presence v;
    struct pent *next;
} pent;
struct sr_pmap {
    pent *b[PMAP_BUCKETS];
    size_t n;
};

static size_t pslot(const char *op, const char *gw)
{
    uint64_t h = sr_fnv1a64(op, strlen(op)) ^ (sr_fnv1a64(gw, strlen(gw)) * 31);
    return (size_t)(h % PMAP_BUCKETS);
}

sr_pmap *sr_pmap_new(void) { return calloc(1, sizeof(sr_pmap)); }

void sr_pmap_free(sr_pmap *m)
{
    if (!m) return;
    for (size_t i = 0; i < PMAP_BUCKETS; i++)
        while (m->b[i]) {
            pent *e = m->b[i];
            m->b[i] = e->next;
            free(e);
        }
    free(m);
}

int sr_pmap_put(sr_pmap *m, const sr_presence *v)
{
    pent **pp = &m->b[pslot(v->op, v->gw)];
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->v.op, v->op) && !strcmp((*pp)->v.gw, v->gw)) break;
    pent *e = *pp;
    if (!v->node[0]) { /* a disconnect */
        if (!e) return 0;
        *pp = e->next;
        free(e);
        m->n--;
        return 1;
    }
    if (!e) {
        if (!(e = calloc(1, sizeof *e))) return 0;
        e->v = *v;
        *pp = e;
        m->n++;
        return 1;
    }
    int changed = strcmp(e->v.node, v->node) || e->v.since_ms != v->since_ms;
    e->v = *v;
    return changed;
}

const char *sr_pmap_get(const sr_pmap *m, const char *op, const char *gw, int64_t now_ms, int64_t *since)
{
    for (const pent *e = m->b[pslot(op, gw)]; e; e = e->next)
        if (!strcmp(e->v.op, op) && !strcmp(e->v.gw, gw)) {
            if (now_ms - e->v.at_ms > SR_PRESENCE_STALE_MS) return NULL;
            if (since) *since = e->v.since_ms;
            return e->v.node;
        }
    return NULL;
}

size_t sr_pmap_count(const sr_pmap *m) { return m ? m->n : 0; }

/* ---- the relay message ---- */

void sr_relay_clear(sr_relay *m)
{
    json_decref(m->part);
    json_decref(m->values);
    json_decref(m->applied);
    json_decref(m->sig);
    json_decref(m->body);
    free(m->ev);
    memset(m, 0, sizeof *m);
}

static const char *kind_name(int k)
{
    switch (k) {
    case SR_RK_CONTROL: return "CONTROL";
    case SR_RK_PERIODIC_START: return "PERIODIC_START";
    case SR_RK_PERIODIC_STOP: return "PERIODIC_STOP";
    case SR_RK_PERIODIC_DATA: return "PERIODIC_DATA";
    case SR_RK_MONITOR_STOP: return "MONITOR_STOP";
    default: return "IMMEDIATE";
    }
}

static int kind_of(const char *s)
{
    static const int ks[] = {SR_RK_IMMEDIATE,     SR_RK_CONTROL,       SR_RK_PERIODIC_START, SR_RK_PERIODIC_STOP,
                             SR_RK_PERIODIC_DATA, SR_RK_MONITOR_STOP};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (!strcmp(s, kind_name(ks[i]))) return ks[i];
    return 0;
}

static int is_monitor_kind(int k)
{
    return k == SR_RK_PERIODIC_START || k == SR_RK_PERIODIC_STOP || k == SR_RK_PERIODIC_DATA || k == SR_RK_MONITOR_STOP;
}

static int is_ask(int type) { return type == SR_RELAY_ASK || type == SR_RELAY_ANS; }

/* the part as a gateway gets it (broker.c request_new): its fields checked
 * here so that the gateway never gets what this node did not check */
static int part_ok(json_t *p, const sr_relay *m, char *err, size_t errlen)
{
    if (!json_is_object(p)) return snprintf(err, errlen, "part: an object is required"), -1;
    json_t *rid = json_object_get(p, "requestId"), *type = json_object_get(p, "type");
    if (!json_is_string(rid) || strcmp(json_string_value(rid), m->id))
        return snprintf(err, errlen, "part.requestId: the message's id is required"), -1;
    if (!json_is_string(type) || strcmp(json_string_value(type), kind_name(m->kind)))
        return snprintf(err, errlen, "part.type: %s is required", kind_name(m->kind)), -1;
    if (is_monitor_kind(m->kind)) { /* broker.c mon_request's part */
        json_t *mid = json_object_get(p, "monitorId");
        if (!json_is_string(mid) || strcmp(json_string_value(mid), m->monitor))
            return snprintf(err, errlen, "part.monitorId: the message's monitor is required"), -1;
        if (m->kind == SR_RK_PERIODIC_STOP) return 0;
        json_t *ds = json_object_get(p, "dataIds"), *iv = json_object_get(p, "intervalMs"), *v;
        size_t i;
        if (!json_is_array(ds) || json_array_size(ds) > 1000)
            return snprintf(err, errlen, "part.dataIds: an array of at most 1000 IDs is required"), -1;
        json_array_foreach(ds, i, v) if (!json_is_string(v) || !sr_id_str_ok(json_string_value(v)))
            return snprintf(err, errlen, "part.dataIds[%zu]: an ID is required", i), -1;
        if (!json_is_integer(iv) || json_integer_value(iv) < 1 || json_integer_value(iv) > UINT32_MAX)
            return snprintf(err, errlen, "part.intervalMs: a positive integer is required"), -1;
        const char *w[] = {"startAt", "endAt"};
        for (size_t k = 0; k < 2; k++) {
            json_t *t = json_object_get(p, w[k]);
            if (t && !json_is_string(t)) return snprintf(err, errlen, "part.%s: a string", w[k]), -1;
        }
        return 0;
    }
    if (m->kind == SR_RK_CONTROL) {
        json_t *d = json_object_get(p, "dataId"), *app = json_object_get(p, "appId");
        if (!json_is_string(d) || !sr_id_str_ok(json_string_value(d)))
            return snprintf(err, errlen, "part.dataId: an ID is required"), -1;
        if (!json_object_get(p, "value")) return snprintf(err, errlen, "part.value is required"), -1;
        if (!json_is_string(app) || strcmp(json_string_value(app), m->app))
            return snprintf(err, errlen, "part.appId: the message's app is required"), -1;
        json_t *sv = json_object_get(p, "signedValue"), *pr = json_object_get(p, "protection");
        if (sv && !json_is_string(sv)) return snprintf(err, errlen, "part.signedValue: a string"), -1;
        if (pr && !json_is_object(pr)) return snprintf(err, errlen, "part.protection: an object"), -1;
    } else {
        json_t *ds = json_object_get(p, "dataIds"), *v;
        size_t i;
        if (!json_is_array(ds) || !json_array_size(ds) || json_array_size(ds) > 1000)
            return snprintf(err, errlen, "part.dataIds: an array of 1 to 1000 IDs is required"), -1;
        json_array_foreach(ds, i, v) if (!json_is_string(v) || !sr_id_str_ok(json_string_value(v)))
            return snprintf(err, errlen, "part.dataIds[%zu]: an ID is required", i), -1;
        if (!json_is_string(json_object_get(p, "deadline")))
            return snprintf(err, errlen, "part.deadline: a string is required"), -1;
    }
    return 0;
}

static int values_ok(json_t *vals, char *err, size_t errlen)
{
    size_t i;
    json_t *v;
    if (!json_is_array(vals) || json_array_size(vals) > 1000)
        return snprintf(err, errlen, "values: an array of at most 1000 is required"), -1;
    json_array_foreach(vals, i, v)
    {
        json_t *d = json_object_get(v, "dataId"), *t = json_object_get(v, "timestamp"), *q = json_object_get(v, "quality");
        if (!json_is_object(v) || !json_is_string(d) || !sr_id_str_ok(json_string_value(d)))
            return snprintf(err, errlen, "values[%zu].dataId: an ID is required", i), -1;
        if (!json_is_string(t) || !json_object_get(v, "value") || (q && !json_is_string(q)))
            return snprintf(err, errlen, "values[%zu]: timestamp, value (and a quality string) are required", i), -1;
    }
    return 0;
}

int sr_relay_parse(const void *p, size_t n, sr_relay *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *o = sr__cjson_obj(p, n, "relay", err, errlen);
    if (!o) return SR_EINVAL;
    char e2[200] = "";
    char t[8], kind[16];
    json_t *ver = json_object_get(o, "v");
    int rc = 0;
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) snprintf(e2, sizeof e2, "v: 1 is required"), rc = -1;
    if (!rc) rc = sr__cjson_str(o, "t", 0, t, sizeof t, e2, sizeof e2);
    if (!rc) {
        out->type = !strcmp(t, "req")    ? SR_RELAY_REQ
                    : !strcmp(t, "res")  ? SR_RELAY_RES
                    : !strcmp(t, "data") ? SR_RELAY_DATA
                    : !strcmp(t, "ask")  ? SR_RELAY_ASK
                    : !strcmp(t, "ans")  ? SR_RELAY_ANS
                                         : 0;
        if (!out->type) snprintf(e2, sizeof e2, "t: \"req\", \"res\", \"data\", \"ask\" or \"ans\" is required"), rc = -1;
    }
    if (!rc) rc = sr__cjson_str(o, "from", 0, out->from, sizeof out->from, e2, sizeof e2) ||
                  sr_cluster_check_name("from", out->from, e2, sizeof e2);
    if (!rc && is_ask(out->type) && json_object_get(o, "gw"))
        snprintf(e2, sizeof e2, "gw: not with t \"ask\" or \"ans\""), rc = -1; /* an app's question names no gateway */
    if (!rc && !is_ask(out->type)) rc = jid(o, "gw", out->gw, sizeof out->gw, e2, sizeof e2);
    if (!rc) rc = jid(o, "op", out->op, sizeof out->op, e2, sizeof e2) ||
                  jid(o, "app", out->app, sizeof out->app, e2, sizeof e2) || jid(o, "id", out->id, sizeof out->id, e2, sizeof e2) ||
                  sr__cjson_str(o, "kind", 0, kind, sizeof kind, e2, sizeof e2);
    if (!rc) {
        out->kind = kind_of(kind);
        if (!out->kind || (out->type == SR_RELAY_DATA) != (out->kind == SR_RK_PERIODIC_DATA) ||
            is_ask(out->type) != (out->kind == SR_RK_MONITOR_STOP))
            snprintf(e2, sizeof e2, "kind: %s",
                     out->type == SR_RELAY_DATA ? "PERIODIC_DATA is required with t \"data\""
                     : is_ask(out->type)        ? "MONITOR_STOP is required with t \"ask\" and \"ans\""
                                                : "IMMEDIATE, CONTROL, PERIODIC_START or PERIODIC_STOP is required"),
                rc = -1;
    }
    if (!rc && is_monitor_kind(out->kind)) {
        rc = jid(o, "monitor", out->monitor, sizeof out->monitor, e2, sizeof e2);
        if (!rc && out->type == SR_RELAY_DATA && strcmp(out->id, out->monitor))
            snprintf(e2, sizeof e2, "id: the monitor's id is required with t \"data\""), rc = -1;
    } else if (!rc && json_object_get(o, "monitor"))
        snprintf(e2, sizeof e2, "monitor: only with PERIODIC_START, PERIODIC_STOP, PERIODIC_DATA or MONITOR_STOP"), rc = -1;
    if (!rc && out->type == SR_RELAY_ASK) {
        /* nothing more: op, app, id and monitor are all it carries */
    } else if (!rc && out->type == SR_RELAY_ANS) {
        int64_t st = 0;
        json_t *body = json_object_get(o, "body");
        rc = jint(o, "status", &st, e2, sizeof e2);
        if (!rc && (st < 200 || st > 599)) snprintf(e2, sizeof e2, "status: an HTTP status 200..599 is required"), rc = -1;
        if (!rc && !json_is_object(body)) snprintf(e2, sizeof e2, "body: an object is required"), rc = -1;
        if (!rc) out->status = (int)st, out->body = json_incref(body);
    } else if (!rc && out->type == SR_RELAY_DATA) {
        json_t *ev = json_object_get(o, "ev"), *vals = json_object_get(o, "values"), *sg = json_object_get(o, "signed");
        rc = jint(o, "seq", &out->seq, e2, sizeof e2);
        if (!rc && out->seq < 1) snprintf(e2, sizeof e2, "seq: at least 1 is required"), rc = -1;
        if (!rc && json_object_get(o, "msgid")) rc = jid(o, "msgid", out->msgid, sizeof out->msgid, e2, sizeof e2);
        if (!rc && sg && !json_is_boolean(sg)) snprintf(e2, sizeof e2, "signed: true or false"), rc = -1;
        if (!rc) out->gw_signed = json_is_true(sg);
        if (!rc && (!json_is_array(vals) || !json_array_size(vals)))
            snprintf(e2, sizeof e2, "values: a non-empty array is required"), rc = -1;
        if (!rc) rc = values_ok(vals, e2, sizeof e2);
        if (!rc) out->values = json_incref(vals);
        size_t el = json_is_string(ev) ? json_string_length(ev) : 0;
        if (!rc && (!el || el > (size_t)SR_RELAY_EV_MAX / 3 * 4 + 4))
            snprintf(e2, sizeof e2, "ev: a base64 string of 1 to %d bytes is required", SR_RELAY_EV_MAX), rc = -1;
        if (!rc && !(out->ev = malloc(el / 4 * 3 + 3))) snprintf(e2, sizeof e2, "ev: out of memory"), rc = -1;
        if (!rc && (sr_unbase64(json_string_value(ev), el, out->ev, el / 4 * 3 + 3, &out->ev_len) || !out->ev_len))
            snprintf(e2, sizeof e2, "ev: not base64"), rc = -1;
    } else if (!rc && out->type == SR_RELAY_REQ) {
        rc = jint(o, "deadline_ms", &out->deadline_ms, e2, sizeof e2);
        if (!rc) rc = part_ok(json_object_get(o, "part"), out, e2, sizeof e2);
        if (!rc) out->part = json_incref(json_object_get(o, "part"));
    } else if (!rc) {
        char st[16];
        sr_wire w;
        rc = sr__cjson_str(o, "state", 0, st, sizeof st, e2, sizeof e2) || sr__cjson_str(o, "code", 0, out->code, sizeof out->code, e2, sizeof e2) ||
             sr__cjson_str(o, "msg", 1, out->msg, sizeof out->msg, e2, sizeof e2);
        if (!rc && json_object_get(o, "msgid")) rc = jid(o, "msgid", out->msgid, sizeof out->msgid, e2, sizeof e2);
        if (!rc) {
            out->state = !strcmp(st, "SUCCEEDED") ? SR_RS_SUCCEEDED : !strcmp(st, "FAILED") ? SR_RS_FAILED : 0;
            if (!out->state) snprintf(e2, sizeof e2, "state: SUCCEEDED or FAILED is required"), rc = -1;
        }
        if (!rc && (sr_wire_parse_result(out->code, &w) || (w == SR_WIRE_OK) != (out->state == SR_RS_SUCCEEDED)))
            snprintf(e2, sizeof e2, "code: \"0\" with SUCCEEDED, an interface.md code with FAILED"), rc = -1;
        json_t *vals = json_object_get(o, "values"), *sig = json_object_get(o, "sig");
        if (!rc && vals && !json_is_null(vals)) {
            rc = values_ok(vals, e2, sizeof e2);
            if (!rc) out->values = json_incref(vals);
        }
        if (!rc && sig && !json_is_null(sig)) {
            if (!json_is_object(sig)) snprintf(e2, sizeof e2, "sig: an object"), rc = -1;
            else out->sig = json_incref(sig);
        }
        json_t *ap = json_object_get(o, "applied");
        if (!rc && ap && !json_is_null(ap)) {
            if (out->kind != SR_RK_CONTROL) snprintf(e2, sizeof e2, "applied: only with CONTROL"), rc = -1;
            else out->applied = json_incref(ap);
        }
        if (!rc && out->values && out->kind == SR_RK_CONTROL) snprintf(e2, sizeof e2, "values: not with CONTROL"), rc = -1;
        if (!rc && is_monitor_kind(out->kind) && (out->values || out->sig))
            snprintf(e2, sizeof e2, "values, sig: not with PERIODIC_START or PERIODIC_STOP"), rc = -1;
    }
    json_decref(o);
    if (rc) {
        sr_relay_clear(out);
        snprintf(err, errlen, "relay: %s", e2);
        return SR_EINVAL;
    }
    return SR_OK;
}

int sr_relay_format(const sr_relay *m, sr_buf *out)
{
    static const char *const tn[] = {"res", "req", "res", "data", "ask", "ans"};
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "v", 1, "t",
                          m->type >= SR_RELAY_REQ && m->type <= SR_RELAY_ANS ? tn[m->type] : "res", "from", m->from,
                          "op", m->op, "app", m->app, "id", m->id, "kind", kind_name(m->kind));
    if (!o) return SR_ENOMEM;
    if (!is_ask(m->type)) json_object_set_new(o, "gw", json_string(m->gw));
    if (m->monitor[0]) json_object_set_new(o, "monitor", json_string(m->monitor));
    if (m->type == SR_RELAY_ASK) {
        /* op, app, id, monitor */
    } else if (m->type == SR_RELAY_ANS) {
        json_object_set_new(o, "status", json_integer(m->status));
        json_object_set(o, "body", m->body ? m->body : json_null());
    } else if (m->type == SR_RELAY_DATA) {
        size_t cap = (m->ev_len + 2) / 3 * 4 + 1;
        char *b64 = malloc(cap);
        if (!b64) {
            json_decref(o);
            return SR_ENOMEM;
        }
        sr_base64(m->ev, m->ev_len, b64, 0);
        json_object_set_new(o, "seq", json_integer(m->seq));
        json_object_set_new(o, "ev", json_string(b64));
        free(b64);
        json_object_set(o, "values", m->values ? m->values : json_null());
        if (m->msgid[0]) json_object_set_new(o, "msgid", json_string(m->msgid));
        if (m->gw_signed) json_object_set_new(o, "signed", json_true());
    } else if (m->type == SR_RELAY_REQ) {
        json_object_set_new(o, "deadline_ms", json_integer(m->deadline_ms));
        json_object_set(o, "part", m->part ? m->part : json_null());
    } else {
        json_object_set_new(o, "state", json_string(m->state == SR_RS_SUCCEEDED ? "SUCCEEDED" : "FAILED"));
        json_object_set_new(o, "code", json_string(m->code));
        json_object_set_new(o, "msg", json_string(m->msg));
        if (m->msgid[0]) json_object_set_new(o, "msgid", json_string(m->msgid));
        if (m->values) json_object_set(o, "values", m->values);
        if (m->applied) json_object_set(o, "applied", m->applied);
        if (m->sig) json_object_set(o, "sig", m->sig);
    }
    int rc = sr_json_write(out, o);
    json_decref(o);
    return rc;
}

/* ---- the thread and the loop side ---- */

enum { O_PUT = 1, O_CLEAR, O_PUB };
typedef struct outmsg {
    struct outmsg *next;
    int what;
    sr_presence v; /* O_PUT, O_CLEAR */
    char subj[128];
    sr_buf data; /* O_PUB */
    int probe;   /* O_PUB of a DATA message: sent as a request, heard or not reported (invariant 4); 2: an ASK's */
    char op[72], gw[72], monitor[24], ask[24];
} outmsg;

enum { I_PRESENCE = 1, I_RELAY, I_HEARD, I_ASKED };
typedef struct inmsg {
    sr_loopq_item li;
    int what;
    sr_presence v;
    sr_relay m;
    int heard; /* I_HEARD: m.op, m.gw, m.monitor */
} inmsg;

typedef struct mine { /* thread side: this node's entries and the revisions it wrote */
    char key[200];
    uint64_t rev;
    int64_t since_ms;
    int64_t yielded; /* the since_ms of ours a newer session elsewhere took the key from (0 none) */
    struct mine *next;
} mine;

typedef struct here { /* loop side: gateways connected to this node */
    char op[72], gw[72];
    int64_t since_ms;
    struct here *next;
} here;

struct sr_creq {
    uv_loop_t *loop;
    sr_creq_hooks h;
    char nats[1024], node[32], name[32], bucket[64];
    uint32_t replicas;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, started, closed;
    outmsg *oh, *ot;
    /* the thread's */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    kvWatcher *w;
    natsSubscription *sreq, *sres, *sdata;
    mine *mine;
    /* the loop's */
    sr_loopq q;
    sr_pmap *map;
    uv_timer_t timer;
    here *here;
};

static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    sr_creq *q = closure;
    /* a DATA message is a request: heard (invariant 4), whatever follows */
    if (natsMsg_GetReply(msg)) (void)natsConnection_Publish(nc, natsMsg_GetReply(msg), "1", 1);
    inmsg *im = calloc(1, sizeof *im);
    char err[256];
    if (im && sr_relay_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &im->m, err, sizeof err) == SR_OK) {
        im->what = I_RELAY;
        sr_loopq_push(&q->q, &im->li);
    } else {
        const char *sj = natsMsg_GetSubject(msg);
        sr_relay_count(1, strstr(sj, ".data") ? 2 : strstr(sj, ".res") ? 1 : 0, SR_RO_REFUSED);
        sr_slog(SR_LOG_WARN, "cluster: a relay message refused", "subject=%s error=%s", natsMsg_GetSubject(msg),
                sr_slog_q(im ? err : "out of memory"));
        free(im);
    }
    natsMsg_Destroy(msg);
}

static void disconnect(sr_creq *q)
{
    if (q->w) kvWatcher_Stop(q->w), kvWatcher_Destroy(q->w);
    if (q->sreq) natsSubscription_Destroy(q->sreq);
    if (q->sres) natsSubscription_Destroy(q->sres);
    if (q->sdata) natsSubscription_Destroy(q->sdata);
    if (q->kv) kvStore_Destroy(q->kv);
    if (q->nc) natsConnection_Close(q->nc);
    if (q->js) jsCtx_Destroy(q->js);
    if (q->nc) natsConnection_Destroy(q->nc);
    q->w = NULL;
    q->sreq = q->sres = q->sdata = NULL;
    q->kv = NULL;
    q->js = NULL;
    q->nc = NULL;
}

static int qconnect(sr_creq *q, char *err, size_t errlen)
{
    char cname[64], subj[128];
    snprintf(cname, sizeof cname, "%s-req", q->node);
    natsStatus s = (natsStatus)sr__nats_connect(q->nats, cname, &q->nc);
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 2000;
        s = natsConnection_JetStream(&q->js, q->nc, &jo);
    }
    if (s == NATS_OK) {
        s = js_KeyValue(&q->kv, q->js, q->bucket);
        if (s != NATS_OK) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = q->bucket;
            kc.History = 1;
            kc.TTL = (int64_t)SR_PRESENCE_TTL_MS * 1000000; /* nanoseconds (JetStream MaxAge) */
            kc.StorageType = js_FileStorage;
            kc.Replicas = (int)q->replicas;
            s = js_CreateKeyValue(&q->kv, q->js, &kc);
        }
    }
    if (s == NATS_OK) s = kvStore_WatchAll(&q->w, q->kv, NULL);
    if (s == NATS_OK) {
        snprintf(subj, sizeof subj, "%s.node.%s.req", q->name, q->node);
        s = natsConnection_Subscribe(&q->sreq, q->nc, subj, on_nats_msg, q);
    }
    if (s == NATS_OK) {
        snprintf(subj, sizeof subj, "%s.node.%s.res", q->name, q->node);
        s = natsConnection_Subscribe(&q->sres, q->nc, subj, on_nats_msg, q);
    }
    if (s == NATS_OK) {
        snprintf(subj, sizeof subj, "%s.node.%s.data", q->name, q->node);
        s = natsConnection_Subscribe(&q->sdata, q->nc, subj, on_nats_msg, q);
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "bucket %s: %s (%s)", q->bucket, natsStatus_GetText(s), nats_GetLastError(NULL));
        disconnect(q);
        return SR_EIO;
    }
    return SR_OK;
}

static mine *mine_find(sr_creq *q, const char *key, int create)
{
    for (mine *m = q->mine; m; m = m->next)
        if (!strcmp(m->key, key)) return m;
    if (!create) return NULL;
    mine *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    snprintf(m->key, sizeof m->key, "%s", key);
    m->next = q->mine;
    q->mine = m;
    return m;
}

static void mine_drop(sr_creq *q, const char *key)
{
    for (mine **pp = &q->mine; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->key, key)) {
            mine *m = *pp;
            *pp = m->next;
            free(m);
            return;
        }
}

/* O_PUT: this node's entry, by compare-and-set on the revision it wrote;
 * when another node's newer entry holds the key, that one stays. */
static void do_put(sr_creq *q, sr_presence *v)
{
    char key[200], val[400];
    if (sr_presence_key(v->op, v->gw, key, sizeof key) < 0) return;
    v->at_ms = wall_ms();
    int k = sr_presence_format(v, val, sizeof val);
    if (k < 0) return;
    mine *m = mine_find(q, key, 1);
    if (!m || (m->yielded && v->since_ms <= m->yielded)) return; /* a newer session elsewhere holds it */
    m->yielded = 0;
    uint64_t rev = 0;
    if (m->rev && kvStore_Update(&rev, q->kv, key, val, k, m->rev) == NATS_OK) {
        m->rev = rev;
        return;
    }
    if (m->rev) { /* someone else wrote it: a newer session elsewhere keeps it */
        kvEntry *e = NULL;
        sr_presence cur;
        char err[160];
        if (kvStore_Get(&e, q->kv, key) == NATS_OK && e &&
            sr_presence_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &cur, err, sizeof err) == SR_OK &&
            cur.node[0] && strcmp(cur.node, q->node) && cur.since_ms > v->since_ms &&
            v->at_ms - cur.at_ms <= SR_PRESENCE_STALE_MS) {
            kvEntry_Destroy(e);
            m->rev = 0;
            m->yielded = v->since_ms;
            return;
        }
        if (e) kvEntry_Destroy(e);
    }
    if (kvStore_Put(&rev, q->kv, key, val, k) == NATS_OK) m->rev = rev;
    m->since_ms = v->since_ms;
}

/* O_CLEAR: node "" on the revision this node wrote (invariant 2). */
static void do_clear(sr_creq *q, sr_presence *v)
{
    char key[200], val[400];
    if (sr_presence_key(v->op, v->gw, key, sizeof key) < 0) return;
    mine *m = mine_find(q, key, 0);
    if (m && m->rev) {
        v->node[0] = 0;
        v->at_ms = wall_ms();
        int k = sr_presence_format(v, val, sizeof val);
        uint64_t rev;
        if (k > 0) (void)kvStore_Update(&rev, q->kv, key, val, k, m->rev);
    }
    mine_drop(q, key);
}

static void clear_all(sr_creq *q)
{
    while (q->mine) {
        mine *m = q->mine;
        if (m->rev && q->kv) {
            kvEntry *e = NULL;
            sr_presence v;
            char err[160], val[400];
            if (kvStore_Get(&e, q->kv, m->key) == NATS_OK && e &&
                sr_presence_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &v, err, sizeof err) == SR_OK) {
                v.node[0] = 0;
                v.at_ms = wall_ms();
                int k = sr_presence_format(&v, val, sizeof val);
                uint64_t rev;
                if (k > 0) (void)kvStore_Update(&rev, q->kv, m->key, val, k, m->rev);
            }
            if (e) kvEntry_Destroy(e);
        }
        q->mine = m->next;
        free(m);
    }
}

static void watch(sr_creq *q)
{
    for (int i = 0; i < 256 && q->w; i++) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, q->w, i ? 1 : 50);
        if (s == NATS_TIMEOUT) return;
        if (s != NATS_OK) { /* a broken watcher: made again with the connection */
            disconnect(q);
            return;
        }
        if (!e) continue; /* the initial state was read */
        inmsg *im = calloc(1, sizeof *im);
        char err[160];
        if (im && kvEntry_Operation(e) == kvOp_Put &&
            sr_presence_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &im->v, err, sizeof err) == SR_OK) {
            char key[200];
            /* the value names its own key (a value put under another key is not used) */
            if (sr_presence_key(im->v.op, im->v.gw, key, sizeof key) > 0 && !strcmp(key, kvEntry_Key(e))) {
                im->what = I_PRESENCE;
                sr_loopq_push(&q->q, &im->li);
                im = NULL;
            }
        }
        free(im); /* deletes and purges: the entries expire by their at_ms */
        kvEntry_Destroy(e);
    }
}

/* invariant 4: a DATA message's fate goes back to the loop */
static void heard(sr_creq *q, const outmsg *m, int ok)
{
    if (!ok) sr_relay_count(0, m->probe == 2 ? 3 : 2, SR_RO_UNHEARD);
    inmsg *im = calloc(1, sizeof *im);
    if (!im) return;
    im->what = m->probe == 2 ? I_ASKED : I_HEARD;
    snprintf(im->m.id, sizeof im->m.id, "%s", m->ask);
    im->heard = ok;
    snprintf(im->m.op, sizeof im->m.op, "%s", m->op);
    snprintf(im->m.gw, sizeof im->m.gw, "%s", m->gw);
    snprintf(im->m.monitor, sizeof im->m.monitor, "%s", m->monitor);
    sr_loopq_push(&q->q, &im->li);
}

/* A DATA message: a core NATS request, answered by the receiving node's
 * subscription at once; no subscriber is NATS_NO_RESPONDERS at once (the
 * server says so), a node that does not answer within 1 s is unheard. */
static void probe(sr_creq *q, const outmsg *m)
{
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, q->nc, m->subj, m->data.data, (int)m->data.len, 1000);
    if (reply) natsMsg_Destroy(reply);
    heard(q, m, s == NATS_OK);
}

static void *run(void *arg)
{
    sr_creq *q = arg;
    char err[512];
    int64_t next_try = 0, last_note = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int stop = q->stop;
        outmsg *list = q->oh;
        q->oh = q->ot = NULL;
        pthread_mutex_unlock(&q->mu);
        int64_t t = wall_ms();
        if (!q->nc && t >= next_try) {
            if (qconnect(q, err, sizeof err)) {
                next_try = t + 1000;
                if (t - last_note >= 10000) {
                    sr_slog(SR_LOG_WARN, "cluster: the gateways' bucket unavailable", "error=%s", sr_slog_q(err));
                    last_note = t;
                }
            }
        }
        while (list) {
            outmsg *m = list;
            list = m->next;
            if (q->nc) {
                if (m->what == O_PUT) do_put(q, &m->v);
                else if (m->what == O_CLEAR) do_clear(q, &m->v);
                else if (m->probe) probe(q, m);
                else if (natsConnection_Publish(q->nc, m->subj, m->data.data, (int)m->data.len) != NATS_OK)
                    sr_slog(SR_LOG_WARN, "cluster: a relay message not sent", "subject=%s", m->subj);
            } else if (m->probe)
                heard(q, m, 0);
            sr_buf_release(&m->data);
            free(m);
        }
        if (stop) break;
        if (q->nc) watch(q);
        else {
            pthread_mutex_lock(&q->mu);
            if (!q->stop && !q->oh) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000;
                if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&q->cv, &q->mu, &ts);
            }
            pthread_mutex_unlock(&q->mu);
        }
    }
    if (q->nc) clear_all(q);
    if (q->nc) natsConnection_FlushTimeout(q->nc, 500);
    disconnect(q);
    return NULL;
}

static int enqueue(sr_creq *q, outmsg *m)
{
    pthread_mutex_lock(&q->mu);
    int closed = q->stop;
    if (!closed) {
        if (q->ot) q->ot->next = m;
        else q->oh = m;
        q->ot = m;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (closed) {
        sr_buf_release(&m->data);
        free(m);
        return SR_ECLOSED;
    }
    return SR_OK;
}

static void queue_presence(sr_creq *q, int what, const here *h)
{
    outmsg *m = calloc(1, sizeof *m);
    if (!m) return;
    m->what = what;
    snprintf(m->v.op, sizeof m->v.op, "%s", h->op);
    snprintf(m->v.gw, sizeof m->v.gw, "%s", h->gw);
    snprintf(m->v.node, sizeof m->v.node, "%s", q->node);
    m->v.since_ms = h->since_ms;
    sr_buf_init(&m->data);
    (void)enqueue(q, m);
}

static void on_in(void *ctx, sr_loopq_item *it)
{
    sr_creq *q = ctx;
    inmsg *im = SR_CONTAINER(it, inmsg, li);
    if (q->closed) {
        /* stopping: nothing reaches the broker */
    } else if (im->what == I_PRESENCE) {
        if (sr_pmap_put(q->map, &im->v) && strcmp(im->v.node, q->node) && q->h.moved)
            q->h.moved(q->h.ctx, im->v.op, im->v.gw, im->v.node[0] ? im->v.node : NULL);
    } else if (im->what == I_HEARD) {
        if (q->h.heard) q->h.heard(q->h.ctx, im->m.op, im->m.gw, im->m.monitor, im->heard);
    } else if (im->what == I_ASKED) {
        if (q->h.asked) q->h.asked(q->h.ctx, im->m.id, im->heard);
    } else if (q->h.relayed)
        q->h.relayed(q->h.ctx, &im->m);
    sr_relay_clear(&im->m);
    free(im);
}

/* every SR_PRESENCE_REFRESH_MS: this node's gateways put again, or cleared
 * when they are gone */
static void on_refresh(uv_timer_t *t)
{
    sr_creq *q = t->data;
    for (here **pp = &q->here; *pp;) {
        here *h = *pp;
        if (q->h.online && !q->h.online(q->h.ctx, h->op, h->gw)) {
            queue_presence(q, O_CLEAR, h);
            *pp = h->next;
            free(h);
            continue;
        }
        queue_presence(q, O_PUT, h);
        pp = &h->next;
    }
}

int sr_creq_start(uv_loop_t *loop, const sr_cluster_opts *o, const sr_creq_hooks *h, sr_creq **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    sr_creq *q = calloc(1, sizeof *q);
    if (!q || !(q->map = sr_pmap_new())) {
        free(q);
        snprintf(err, errlen, "cluster: out of memory");
        return SR_ENOMEM;
    }
    q->loop = loop;
    q->h = *h;
    snprintf(q->nats, sizeof q->nats, "%s", o->nats);
    snprintf(q->node, sizeof q->node, "%s", o->node);
    snprintf(q->name, sizeof q->name, "%s", o->name);
    snprintf(q->bucket, sizeof q->bucket, "%s_GWS", o->name);
    q->replicas = o->replicas;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    sr_loopq_init(&q->q, loop, on_in, q);
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, on_refresh, SR_PRESENCE_REFRESH_MS, SR_PRESENCE_REFRESH_MS);
    uv_unref((uv_handle_t *)&q->timer);
    if (pthread_create(&q->th, NULL, run, q)) {
        uv_close((uv_handle_t *)&q->timer, NULL);
        uv_close((uv_handle_t *)&q->q.async, NULL);
        q->closed = 1;
        snprintf(err, errlen, "cluster: cannot start the relay thread");
        *out = q; /* freed after the loop ran, as after a stop */
        return SR_ENOMEM;
    }
    q->started = 1;
    *out = q;
    return SR_OK;
}

void sr_creq_stop(sr_creq *q)
{
    if (!q || q->closed) return;
    q->closed = 1;
    if (q->started) {
        pthread_mutex_lock(&q->mu);
        q->stop = 1;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->th, NULL);
        q->started = 0;
    }
    sr_loopq_drain(&q->q); /* closed: dropped */
    if (!uv_is_closing((uv_handle_t *)&q->timer)) uv_close((uv_handle_t *)&q->timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&q->q.async)) uv_close((uv_handle_t *)&q->q.async, NULL);
}

void sr_creq_free(sr_creq *q)
{
    if (!q) return;
    sr_creq_stop(q);
    while (q->oh) {
        outmsg *m = q->oh;
        q->oh = m->next;
        sr_buf_release(&m->data);
        free(m);
    }
    while (q->here) {
        here *h = q->here;
        q->here = h->next;
        free(h);
    }
    sr_pmap_free(q->map);
    sr_loopq_destroy(&q->q);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

const char *sr_creq_node(const sr_creq *q) { return q ? q->node : ""; }

void sr_creq_here(sr_creq *q, const char *op, const char *gw, int fresh)
{
    if (!q || q->closed) return;
    here *h = q->here;
    while (h && (strcmp(h->op, op) || strcmp(h->gw, gw))) h = h->next;
    if (h && !fresh) return;
    if (!h) {
        if (!(h = calloc(1, sizeof *h))) return;
        snprintf(h->op, sizeof h->op, "%s", op);
        snprintf(h->gw, sizeof h->gw, "%s", gw);
        h->next = q->here;
        q->here = h;
    }
    int64_t now = wall_ms();
    h->since_ms = now > h->since_ms ? now : h->since_ms + 1; /* a new session: a newer since */
    /* this node's own map at once (the watcher's copy comes later) */
    sr_presence v = {.since_ms = h->since_ms, .at_ms = h->since_ms};
    snprintf(v.op, sizeof v.op, "%s", op);
    snprintf(v.gw, sizeof v.gw, "%s", gw);
    snprintf(v.node, sizeof v.node, "%s", q->node);
    (void)sr_pmap_put(q->map, &v);
    queue_presence(q, O_PUT, h);
}

const char *sr_creq_where(sr_creq *q, const char *op, const char *gw, int64_t *since)
{
    if (!q || q->closed) return NULL;
    const char *n = sr_pmap_get(q->map, op, gw, wall_ms(), since);
    return n && strcmp(n, q->node) ? n : NULL;
}

int sr_creq_send(sr_creq *q, const char *node, const sr_relay *r)
{
    if (!q || q->closed) return SR_ECLOSED;
    outmsg *m = calloc(1, sizeof *m);
    if (!m) return SR_ENOMEM;
    m->what = O_PUB;
    snprintf(m->subj, sizeof m->subj, "%s.node.%s.%s", q->name, node,
             r->type == SR_RELAY_REQ || r->type == SR_RELAY_ASK ? "req" : r->type == SR_RELAY_DATA ? "data" : "res");
    if (r->type == SR_RELAY_DATA) {
        m->probe = 1;
        snprintf(m->op, sizeof m->op, "%s", r->op);
        snprintf(m->gw, sizeof m->gw, "%s", r->gw);
        snprintf(m->monitor, sizeof m->monitor, "%s", r->monitor);
    } else if (r->type == SR_RELAY_ASK) {
        m->probe = 2;
        snprintf(m->ask, sizeof m->ask, "%s", r->id);
    }
    sr_buf_init(&m->data);
    int rc = sr_relay_format(r, &m->data);
    if (rc) {
        sr_buf_release(&m->data);
        free(m);
        return rc;
    }
    return enqueue(q, m);
}
