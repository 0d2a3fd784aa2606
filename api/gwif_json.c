/* api/gwif_json.c -- see gwif_json.h. */
#include "api/gwif_json.h"

#include "api/sigcheck.h"
#include "api/slog.h"
#include "codecs/jsonlex.h"

#include "codecs/base/sr_hash.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"

#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void sr_gw_err_clear(sr_gw_err *e)
{
    if (e->detail) json_decref(e->detail);
    memset(e, 0, sizeof *e);
}

static int fail(sr_gw_err *err, sr_wire code, const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return SR_EINVAL;
}

void sr_gw_msg_release(sr_gw_msg *m)
{
    if (m->root) json_decref(m->root);
    free(m->signed_body);
    memset(m, 0, sizeof *m);
}


int sr_gw_parse(const void *data, size_t len, sr_gw_msg *out, sr_gw_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        char m[200];
        snprintf(m, sizeof m, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return fail(err, SR_WIRE_JSON, m);
    }
    out->root = root;
    json_t *h = json_object_get(root, "header");
    json_t *b = json_object_get(root, "body");
    if (!json_is_object(root) || !json_is_object(h)) return fail(err, SR_WIRE_PARAM, "header: an object is required");
    if (!json_is_object(b)) return fail(err, SR_WIRE_PARAM, "body: an object is required");
    json_t *t = json_object_get(h, "messageType"), *id = json_object_get(h, "messageId"),
           *cid = json_object_get(h, "correlationId"), *ts = json_object_get(h, "timestamp");
    if (!json_is_string(t)) return fail(err, SR_WIRE_PARAM, "header.messageType: a string is required");
    if (id && (!json_is_string(id) || !sr_id_str_ok(json_string_value(id))))
        return fail(err, SR_WIRE_PARAM, "header.messageId: [A-Za-z0-9._-]{1,64}");
    if (cid && !json_is_string(cid)) return fail(err, SR_WIRE_PARAM, "header.correlationId: a string");
    if (ts) {
        if (!json_is_string(ts) ||
            sr_rfc3339_parse(json_string_value(ts), json_string_length(ts), &out->ts))
            return fail(err, SR_WIRE_PARAM, "header.timestamp: an RFC 3339 time");
    }
    out->type = json_string_value(t);
    out->message_id = id ? json_string_value(id) : "";
    out->correlation_id = cid ? json_string_value(cid) : "";
    out->body = b;
    out->protection = json_object_get(root, "protection");
    return SR_OK;
}

int sr_gw_may_be_signed(const void *data, size_t len)
{
    static const char k[] = "\"protection\"";
    return memmem(data, len, k, sizeof k - 1) != NULL;
}

int sr_gw_parse_sig(sr_engine *e, const char *op, const char *gw, const void *data, size_t len, sr_gw_msg *out,
                    sr_gw_err *err)
{
    int rc = sr_gw_parse(data, len, out, err);
    if (rc || !out->protection) return rc;
    size_t off = 0, n = 0;
    if (sr_json_member_span(data, len, "body", &off, &n))
        return fail(err, SR_WIRE_SIGNATURE, "signature: the \"body\" member cannot be found as written");
    char why[sizeof err->message];
    sr_wire w =
        sr_sig_check_now(e, op, SR_RG_GATEWAY, gw, out->protection, (const char *)data + off, n, why, sizeof why);
    if (w != SR_WIRE_OK) {
        sr_slog(SR_LOG_WARN, "gateway message refused: protection", "op=%s gw=%s msgid=%s code=%s why=%s", op, gw,
                sr_slog_q(out->message_id), sr_wire_code(w), sr_slog_q(why));
        return fail(err, w, why);
    }
    if (!(out->signed_body = malloc(n + 1))) return fail(err, SR_WIRE_INTERNAL, "out of memory");
    memcpy(out->signed_body, (const char *)data + off, n);
    out->signed_body[n] = 0;
    out->signed_len = n;
    out->sig_verified = 1;
    return SR_OK;
}

/* ---- signed values required per data point (gwif_json.h) ----------------- */

typedef struct sigreq_ent {
    char op[72], did[72];
} sigreq_ent;
static pthread_mutex_t sigreq_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic size_t sigreq_n; /* entries; 0: nothing to look up */
static sigreq_ent *sigreq_v;
static size_t sigreq_cap;

void sr_gw_sigreq_note(const char *op, const char *data_id, int present)
{
    if (strlen(op) >= 72 || strlen(data_id) >= 72) return;
    pthread_mutex_lock(&sigreq_mu);
    size_t n = atomic_load(&sigreq_n), i;
    for (i = 0; i < n; i++)
        if (!strcmp(sigreq_v[i].op, op) && !strcmp(sigreq_v[i].did, data_id)) break;
    if (!present && i < n) {
        sigreq_v[i] = sigreq_v[n - 1];
        atomic_store(&sigreq_n, n - 1);
    } else if (present && i == n) {
        if (n == sigreq_cap) {
            size_t nc = sigreq_cap ? sigreq_cap * 2 : 16;
            sigreq_ent *nv = realloc(sigreq_v, nc * sizeof *nv);
            if (!nv) {
                pthread_mutex_unlock(&sigreq_mu);
                sr_slog(SR_LOG_ERROR, "signature requirement not noted: out of memory", "op=%s point=%s", op, data_id);
                return;
            }
            sigreq_v = nv;
            sigreq_cap = nc;
        }
        snprintf(sigreq_v[n].op, sizeof sigreq_v[n].op, "%s", op);
        snprintf(sigreq_v[n].did, sizeof sigreq_v[n].did, "%s", data_id);
        atomic_store(&sigreq_n, n + 1);
    }
    pthread_mutex_unlock(&sigreq_mu);
}

int sr_gw_sigreq_load(sr_engine *e)
{
    sr_rec ops = SR_REC_INIT;
    sr_reg_entry o;
    int rc = sr_list_operators(e, &ops);
    while (!rc && sr_rec_next_registry(&ops, &o) == 1) {
        sr_rec r = SR_REC_INIT;
        sr_reg_entry re;
        if ((rc = sr_list_registry(e, o.id, SR_RG_SIGREQ, &r))) break;
        while (sr_rec_next_registry(&r, &re) == 1) sr_gw_sigreq_note(o.id, re.id, 1);
        sr_rec_close(&r);
    }
    sr_rec_close(&ops);
    return rc;
}

int sr_gw_sigreq_values(sr_engine *e, const char *op, const char *did, size_t dlen)
{
    if (!atomic_load_explicit(&sigreq_n, memory_order_relaxed) || dlen >= 72) return 0;
    char id[72];
    memcpy(id, did, dlen);
    id[dlen] = 0;
    int listed = 0;
    pthread_mutex_lock(&sigreq_mu);
    for (size_t i = 0, n = atomic_load(&sigreq_n); i < n && !listed; i++)
        listed = !strcmp(sigreq_v[i].did, id) && !strcmp(sigreq_v[i].op, op);
    pthread_mutex_unlock(&sigreq_mu);
    if (!listed) return 0;
    /* its scope: "control" (or none: an entry of before scopes), "values", "control+values" */
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int must = sr_read_registry(e, op, SR_RG_SIGREQ, id, &r, &re) == SR_OK && re.access && strstr(re.access, "values");
    sr_rec_close(&r);
    return must;
}

static void bad_value(sr_gw_err *err, size_t i, const char *data_id, const char *what)
{
    if (++err->nbad > SR_GW_DETAIL_MAX) return; /* counted, not named */
    if (!err->detail) err->detail = json_array();
    json_t *o = json_pack("{s:I,s:s,s:s}", "index", (json_int_t)i, "dataId", data_id ? data_id : "", "error", what);
    if (o) json_array_append_new(err->detail, o);
}

static int quality_of(json_t *q, uint8_t *out)
{
    if (!q) {
        *out = SR_Q_GOOD;
        return 0;
    }
    int found = json_is_string(q) ? sr_quality_parse(json_string_value(q), json_string_length(q)) : -1;
    if (found < 0) return -1;
    *out = (uint8_t)found;
    return 0;
}

/* a == b for n bytes, inline; ids of one message tend to differ at their
 * end ("SP0001_01", "SP0001_02"), so the compare runs from the end */
static int id_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        if (x != y) return 0;
        n -= 8;
    }
    while (n--)
        if (a[n] != b[n]) return 0;
    return 1;
}

/* ---- the points of one message --------------------------------------------
 * Both paths (jansson and fast) gather a message's values per data point
 * here, so they build the same event: the points in the order of their
 * first value, each point's values in message order. A point is found by
 * its dataId through an open-addressing hash table (a snapshot names 100
 * points once each: a linear search over the points so far cost ~50
 * compares a value), and the values go into one array in message order
 * with their point's index, grouped per point once at the end (a counting
 * sort, stable), so a message costs a handful of allocations whatever its
 * number of points, not one or more per point. */
typedef struct per_point {
    const char *data_id; /* borrowed from the message */
    size_t id_len;       /* the fast path's ids are not NUL-terminated */
    uint32_t hash;
    sr_point_info info;
    size_t n, at;        /* its values; where they start once grouped */
} per_point;

enum { MP_SLOTS0 = 256 };

typedef struct msg_points {
    per_point *pts;
    size_t np, capp;
    uint32_t *slot; /* index + 1 into pts, 0: empty; mask + 1 of them, a power of two */
    size_t mask;
    sr_sample *s;   /* every value, in message order */
    uint32_t *of;   /* the index of its point (filled from the second point on) */
    size_t ns, caps, capo;
    int scattered;  /* some point's values are not contiguous in s (of decreases) */
    int64_t max_ts; /* the newest timestamp in s (the gateway-skew check, skew_check) */
    uint32_t slot0[MP_SLOTS0];
} msg_points;

static void mp_init(msg_points *m)
{
    memset(m, 0, sizeof *m);
    m->slot = m->slot0;
    m->mask = MP_SLOTS0 - 1;
}

static void mp_release(msg_points *m)
{
    if (m->slot != m->slot0) sr_free(m->slot);
    sr_free(m->pts);
    sr_free(m->s);
    sr_free(m->of);
}

static inline per_point *mp_find(const msg_points *m, const char *id, size_t n, uint32_t h)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint32_t k = m->slot[i];
        if (!k) return NULL;
        per_point *p = &m->pts[k - 1];
        if (p->hash == h && p->id_len == n && id_eq(p->data_id, id, n)) return p;
    }
}

static void mp_slot_put(msg_points *m, uint32_t h, uint32_t k)
{
    size_t i = h & m->mask;
    while (m->slot[i]) i = (i + 1) & m->mask;
    m->slot[i] = k;
}

/* a new point (not in m); NULL when out of memory */
static per_point *mp_add(msg_points *m, const char *id, size_t n, uint32_t h, const sr_point_info *info)
{
    if ((m->np + 1) * 2 > m->mask + 1) { /* at most half full */
        size_t ns = (m->mask + 1) * 2;
        uint32_t *slot = sr_calloc(ns, sizeof *slot);
        if (!slot) return NULL;
        if (m->slot != m->slot0) sr_free(m->slot);
        m->slot = slot;
        m->mask = ns - 1;
        for (size_t k = 0; k < m->np; k++) mp_slot_put(m, m->pts[k].hash, (uint32_t)k + 1);
    }
    if (m->np == m->capp && sr_array_reserve(&m->pts, &m->capp, m->np + 1, sizeof *m->pts)) return NULL;
    if (m->np == 1) { /* the values so far are all of the first point */
        if (sr_array_reserve(&m->of, &m->capo, m->caps, sizeof *m->of)) return NULL;
        memset(m->of, 0, m->ns * sizeof *m->of);
    }
    per_point *p = &m->pts[m->np++];
    *p = (per_point){.data_id = id, .id_len = n, .hash = h, .info = *info};
    mp_slot_put(m, h, (uint32_t)m->np);
    return p;
}

/* one value of point p, in message order */
static inline int mp_push(msg_points *m, per_point *p, const sr_sample *s)
{
    if (m->ns == m->caps && sr_array_reserve(&m->s, &m->caps, m->ns + 1, sizeof *m->s)) return SR_ENOMEM;
    if (m->np > 1) {
        if (m->ns >= m->capo && sr_array_reserve(&m->of, &m->capo, m->caps, sizeof *m->of)) return SR_ENOMEM;
        uint32_t k = (uint32_t)(p - m->pts);
        if (m->ns && k < m->of[m->ns - 1]) m->scattered = 1;
        m->of[m->ns] = k;
    }
    m->s[m->ns++] = *s;
    m->max_ts = s->ts > m->max_ts ? s->ts : m->max_ts;
    p->n++;
    return SR_OK;
}

/* the event of the message: sr_ev_measurements over the points, each with
 * its values grouped (values already grouped, as in a snapshot or a series:
 * as they are) */
/* ---- gateway clocks ahead of the server (R-MO-4; api/alarms.c gateway-skew) -- */

static _Atomic int64_t skew_ms; /* 0: not watched */
static pthread_mutex_t skew_mu = PTHREAD_MUTEX_INITIALIZER;
static sr_gw_skew_note skew_notes[SR_GW_SKEW_NOTES];
static size_t skew_n;

void sr_gw_skew_set(uint32_t ms) { atomic_store(&skew_ms, (int64_t)ms); }

size_t sr_gw_skew_take(sr_gw_skew_note *out, size_t cap)
{
    pthread_mutex_lock(&skew_mu);
    size_t n = skew_n < cap ? skew_n : cap;
    memcpy(out, skew_notes, n * sizeof *out);
    skew_n = 0;
    pthread_mutex_unlock(&skew_mu);
    return n;
}

/* A message of values whose newest timestamp is ahead of the wall clock by
 * more than skew_ms: accepted as it is, noted once per (op, gw) until taken
 * (the note keeps the message that ran furthest ahead). */
static void skew_check(const msg_points *m, const char *op, const char *gw, const char *message_id)
{
    int64_t lim = atomic_load_explicit(&skew_ms, memory_order_relaxed);
    if (!lim || !m->ns) return;
    int64_t max = m->max_ts; /* timestamps are >= 0 (both parsers), max_ts starts at 0 */
    struct timespec w;
    clock_gettime(CLOCK_REALTIME_COARSE, &w); /* a tick's precision is plenty against a skew of seconds */
    int64_t ahead = max - ((int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000);
    if (ahead <= lim) return;
    pthread_mutex_lock(&skew_mu);
    size_t i = 0;
    while (i < skew_n && (strcmp(skew_notes[i].op, op) || strcmp(skew_notes[i].gw, gw))) i++;
    int fresh = i == skew_n && skew_n < SR_GW_SKEW_NOTES; /* a full table drops the note: the next one comes */
    if (fresh) skew_n++;
    if (fresh || (i < skew_n && ahead > skew_notes[i].ahead_ms)) {
        snprintf(skew_notes[i].op, sizeof skew_notes[i].op, "%s", op);
        snprintf(skew_notes[i].gw, sizeof skew_notes[i].gw, "%s", gw);
        snprintf(skew_notes[i].message_id, sizeof skew_notes[i].message_id, "%s", message_id ? message_id : "");
        skew_notes[i].ahead_ms = ahead;
    }
    pthread_mutex_unlock(&skew_mu);
}

/* ---- values refused for their range (R-MO-3; api/alarms.c value-out-of-range) */

static pthread_mutex_t range_mu = PTHREAD_MUTEX_INITIALIZER;
static sr_gw_range_note range_notes[SR_GW_RANGE_NOTES];
static size_t range_n;

void sr_gw_range_refused(const char *op, const char *gw, const char *point, const char *what)
{
    pthread_mutex_lock(&range_mu);
    size_t i = 0;
    while (i < range_n && (strcmp(range_notes[i].op, op) || strcmp(range_notes[i].point, point))) i++;
    if (i == range_n && range_n < SR_GW_RANGE_NOTES) { /* a full table drops the note: the next one comes */
        memset(&range_notes[i], 0, sizeof range_notes[i]);
        range_n++;
    }
    if (i < range_n) {
        sr_gw_range_note *n = &range_notes[i];
        snprintf(n->op, sizeof n->op, "%s", op);
        snprintf(n->point, sizeof n->point, "%s", point);
        snprintf(n->gw, sizeof n->gw, "%s", gw ? gw : "");
        snprintf(n->msg, sizeof n->msg, "%.199s", what);
        n->count++;
    }
    pthread_mutex_unlock(&range_mu);
}

size_t sr_gw_range_take(sr_gw_range_note *out, size_t cap)
{
    pthread_mutex_lock(&range_mu);
    size_t n = range_n < cap ? range_n : cap;
    memcpy(out, range_notes, n * sizeof *out);
    range_n = 0;
    pthread_mutex_unlock(&range_mu);
    return n;
}

static int mp_event(msg_points *m, const char *op, const char *gw, const char *message_id, const char *monitor_id,
                    int sig_state, sr_buf *event)
{
    skew_check(m, op, gw, message_id);
    sr_pv_in in0[128];
    sr_pv_in *in = m->np <= 128 ? in0 : sr_malloc(m->np * sizeof *in);
    sr_sample *g = m->scattered ? sr_malloc(m->ns * sizeof *g) : m->s;
    int rc = in && (g || !m->ns) ? SR_OK : SR_ENOMEM;
    size_t at = 0;
    for (size_t k = 0; k < m->np; k++) {
        m->pts[k].at = at;
        at += m->pts[k].n;
    }
    if (!rc && g != m->s) {
        for (size_t i = 0; i < m->ns; i++) g[m->pts[m->of[i]].at++] = m->s[i];
        for (size_t k = 0; k < m->np; k++) m->pts[k].at -= m->pts[k].n;
    }
    for (size_t k = 0; !rc && k < m->np; k++) {
        const per_point *p = &m->pts[k];
        in[k] = (sr_pv_in){p->info.point, p->info.type, g + p->at, p->n};
    }
    if (!rc)
        rc = sr_ev_signed_measurements(op, gw, SR_ACTOR_GATEWAY, message_id, monitor_id, sig_state, in, m->np, event);
    if (g != m->s) sr_free(g);
    if (in != in0) sr_free(in);
    return rc;
}

static const char BELOW_MIN[] = "value: below the data point's minimum",
                  ABOVE_MAX[] = "value: above the data point's maximum";

int sr_gw_values_event(sr_engine *e, const char *op, const char *gw, const char *message_id, const char *monitor_id,
                       json_t *values, sr_buf *event, size_t *nvalues, sr_gw_err *err)
{
    return sr_gw_values_event_sig(e, op, gw, message_id, monitor_id, SR_SIG_NONE, values, event, nvalues, err);
}

int sr_gw_values_event_sig(sr_engine *e, const char *op, const char *gw, const char *message_id,
                           const char *monitor_id, int sig_state, json_t *values, sr_buf *event, size_t *nvalues,
                           sr_gw_err *err)
{
    if (!json_is_array(values)) return fail(err, SR_WIRE_PARAM, "body.values: an array is required");
    size_t n = json_array_size(values);
    *nvalues = n;
    if (n == 0) return fail(err, SR_WIRE_PARAM, "body.values: at least one value");
    if (n > 100000) return fail(err, SR_WIRE_LARGE, "body.values: at most 100000 values a message");
    if (sig_state == 0 && atomic_load_explicit(&sigreq_n, memory_order_relaxed)) {
        /* signed values required for a point it names: refused as a whole, E5001 (docs/signatures.md) */
        for (size_t i = 0; i < n; i++) {
            const char *did = json_string_value(json_object_get(json_array_get(values, i), "dataId"));
            if (did && sr_gw_sigreq_values(e, op, did, strlen(did))) {
                char m[200];
                snprintf(m, sizeof m, "signature required: values of data point %s must carry protection", did);
                sr_slog(SR_LOG_WARN, "gateway message refused: protection", "op=%s gw=%s msgid=%s code=%s why=%s", op,
                        gw, sr_slog_q(message_id ? message_id : ""), sr_wire_code(SR_WIRE_SIGNATURE), sr_slog_q(m));
                return fail(err, SR_WIRE_SIGNATURE, m);
            }
        }
    }
    msg_points mp;
    mp_init(&mp);
    int rc = SR_OK, last_rc = SR_OK;
    const char *last_id = NULL;
    sr_point_info last_info;
    memset(&last_info, 0, sizeof last_info);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(values, i);
        json_t *jd = json_object_get(v, "dataId"), *jt = json_object_get(v, "timestamp"),
               *jv = json_object_get(v, "value"), *jq = json_object_get(v, "quality");
        const char *did = json_is_string(jd) ? json_string_value(jd) : NULL;
        if (!json_is_object(v) || !did || !sr_id_str_ok(did)) {
            bad_value(err, i, did, "dataId: [A-Za-z0-9._-]{1,64} is required");
            continue;
        }
        sr_point_info info;
        int lrc = SR_OK;
        /* a message names each data point once (snapshot) or many times
         * (series): look each up once */
        size_t dlen = strlen(did);
        uint32_t h = sr_hash(did, dlen);
        per_point *pp = mp_find(&mp, did, dlen, h);
        if (pp) {
            info = pp->info;
        } else if (last_id && !strcmp(last_id, did)) {
            info = last_info;
            lrc = last_rc;
        } else {
            lrc = sr_engine_point_info(e, op, did, &info);
            last_id = did;
            last_info = info;
            last_rc = lrc;
        }
        if (lrc == SR_ENOTFOUND) {
            bad_value(err, i, did, "unknown data point");
            continue;
        }
        if (lrc) {
            rc = lrc;
            break;
        }
        if (strcmp(info.gateway, gw) != 0) {
            bad_value(err, i, did, "not reached through this gateway");
            continue;
        }
        sr_sample s = {0};
        if (!json_is_string(jt) || sr_rfc3339_parse(json_string_value(jt), json_string_length(jt), &s.ts) ||
            s.ts < 0 || s.ts > SR_TS_MAX) {
            bad_value(err, i, did, "timestamp: an RFC 3339 time is required");
            continue;
        }
        if (quality_of(jq, &s.quality)) {
            bad_value(err, i, did, "quality: GOOD, UNCERTAIN, BAD or NO_DATA");
            continue;
        }
        const char *terr = NULL;
        switch (info.type) {
        case SR_VT_NUMBER:
            if (!json_is_number(jv)) terr = "value: a number is required";
            else s.v.f = json_number_value(jv);
            break;
        case SR_VT_INTEGER:
            if (!json_is_integer(jv)) terr = "value: an integer is required";
            else s.v.i = (int64_t)json_integer_value(jv);
            break;
        case SR_VT_BOOL:
            if (!json_is_boolean(jv)) terr = "value: true or false is required";
            else s.v.b = json_is_true(jv);
            break;
        default:
            if (!json_is_string(jv) || strlen(json_string_value(jv)) != json_string_length(jv))
                terr = "value: a string (without NUL) is required";
            else if (json_string_length(jv) > 4096)
                terr = "value: at most 4096 bytes";
            else {
                s.v.str.s = json_string_value(jv);
                s.v.str.slen = (uint32_t)json_string_length(jv);
            }
        }
        if (!terr && s.quality <= SR_Q_UNCERTAIN && (info.type == SR_VT_NUMBER || info.type == SR_VT_INTEGER)) {
            double x = info.type == SR_VT_NUMBER ? s.v.f : (double)s.v.i;
            if (!isfinite(x)) terr = "value: not a finite number";
            else if (info.has_min && x < info.min) terr = BELOW_MIN;
            else if (info.has_max && x > info.max) terr = ABOVE_MAX;
        }
        if (terr) {
            if (terr == BELOW_MIN || terr == ABOVE_MAX) { /* the alarm rule value-out-of-range (gwif_json.h) */
                char what[200];
                double x = info.type == SR_VT_NUMBER ? s.v.f : (double)s.v.i;
                snprintf(what, sizeof what, "value %g %s %g (message %.64s)", x,
                         terr == BELOW_MIN ? "below the minimum" : "above the maximum",
                         terr == BELOW_MIN ? info.min : info.max, message_id ? message_id : "");
                sr_gw_range_refused(op, gw, did, what);
            }
            bad_value(err, i, did, terr);
            continue;
        }
        if (!pp && !(pp = mp_add(&mp, did, dlen, h, &info))) {
            rc = SR_ENOMEM;
            break;
        }
        if ((rc = mp_push(&mp, pp, &s))) break;
    }
    if (!rc && err->nbad) {
        char m[160];
        if (err->nbad > SR_GW_DETAIL_MAX)
            snprintf(m, sizeof m, "%zu of %zu values refused (the first %d named in detail); nothing stored",
                     err->nbad, n, SR_GW_DETAIL_MAX);
        else
            snprintf(m, sizeof m, "%zu of %zu values refused; nothing stored", err->nbad, n);
        fail(err, SR_WIRE_PARAM, m);
        rc = SR_EINVAL;
    }
    if (!rc) rc = mp_event(&mp, op, gw, message_id, monitor_id, sig_state, event);
    if (rc && !err->code) fail(err, SR_WIRE_INTERNAL, sr_strerror(rc));
    mp_release(&mp);
    return rc;
}

int sr_gw_ack(const char *correlation_id, sr_wire code, const char *message, json_t *detail, int64_t now_ms,
              sr_buf *out)
{
    char ts[32];
    sr_rfc3339_format(now_ms, ts);
    json_t *result = json_pack("{s:s,s:s}", "code", sr_wire_code(code), "message", message ? message : "");
    if (result && detail) json_object_set(result, "detail", detail);
    json_t *msg = result ? json_pack("{s:{s:s,s:s,s:s},s:{s:o}}", "header", "messageType", "GW_ACK", "correlationId",
                                     correlation_id ? correlation_id : "", "timestamp", ts, "body", "result", result)
                         : NULL;
    if (!msg) return SR_ENOMEM;
    char *txt = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!txt) return SR_ENOMEM;
    int rc = sr_buf_append(out, txt, strlen(txt));
    free(txt);
    return rc;
}

/* ---- the fast path --------------------------------------------------------
 * One pass over the bytes with the pull lexer, no tree: for messages of the
 * canonical shape (header {messageType, messageId?, correlationId?,
 * timestamp?}, body {values: [{dataId, timestamp, value, quality?}...]}, no
 * escapes in the strings it reads, nothing else) that are fully valid. Anything
 * else -- an error to report, an unknown member, an escape -- returns -1 and
 * the caller takes the jansson path, which decides and explains. So both
 * paths accept exactly the same messages and build the same events
 * (tests/api/test_gwif_json.c compares them; so does the fuzz target tests/fuzz/fuzz_gwjson.c). */


#include <errno.h>

static int tok_str(sr_jlex *l, sr_jtok t, char *out, size_t cap)
{
    if (t != SR_J_STRING || l->escaped || l->n >= cap) return -1;
    memcpy(out, l->s, l->n);
    out[l->n] = 0;
    return 0;
}

/* k a string literal: the compare is of a constant size, so inlined */
#define key_is(l, k) (!(l)->escaped && (l)->n == sizeof(k) - 1 && !memcmp((l)->s, k, sizeof(k) - 1))

/* A plain decimal ("-12.34", at most 15 digits, no exponent) without strtod:
 * m / 10^k with m < 2^53 and 10^k exact is the correctly rounded quotient,
 * the same double strtod gives. 0, or -1 for anything else (use strtod). */
static int fast_decimal(const char *t, size_t n, double *out)
{
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = 0;
    int neg = 0, digits = 0, k = -1;
    uint64_t m = 0;
    if (i < n && t[i] == '-') neg = 1, i++;
    for (; i < n; i++) {
        char c = t[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 15) return -1;
            m = m * 10 + (uint64_t)(c - '0');
            if (k >= 0) k++;
        } else if (c == '.' && k < 0)
            k = 0;
        else
            return -1;
    }
    if (!digits || k == 0) return -1;
    double v = (double)m / p10[k < 0 ? 0 : k];
    *out = neg ? -v : v;
    return 0;
}

/* ---- the canonical value element, read straight from the bytes -----------
 *   {"dataId":"<id>","timestamp":"<ts>","value":<v>[,"quality":"<q>"]}
 * exactly so: no whitespace, no escapes, ASCII strings, <v> true, false or a
 * plain decimal (-?(0|[1-9][0-9]*)(.[0-9]+)?, at most 18 characters: the
 * lexer's number token, with none of its big-number checks to run). That is
 * what gateways send; it costs a quarter of the lexer's way. Anything else
 * returns NULL and the lexer reads the element, which for these bytes gives
 * the same tokens (the fuzz target compares both paths with jansson's). */
typedef struct gw_elem {
    const char *did, *ts, *vs, *q; /* q NULL: no quality */
    size_t dlen, tsn, vn, qn;
    sr_jtok vt;
    int vint;
} gw_elem;

/* p just past an opening quote: the closing quote, or NULL if a byte before
 * it is a backslash, a control character or not ASCII */
static const char *plain_str(const char *p, const char *end)
{
    p = sr_json_plain_end(p, end);
    return p < end && *p == '"' ? p : NULL;
}

#define LIT(p, end, k) ((size_t)((end) - (p)) >= sizeof(k) - 1 && !memcmp((p), k, sizeof(k) - 1))

static const char *canonical_elem(const char *p, const char *end, gw_elem *el)
{
    if (!LIT(p, end, "{\"dataId\":\"")) return NULL;
    p += sizeof("{\"dataId\":\"") - 1;
    el->did = p;
    while (p < end && sr_id_char[(unsigned char)*p]) p++;
    el->dlen = (size_t)(p - el->did);
    if (el->dlen < 1 || el->dlen > 64 || !LIT(p, end, "\",\"timestamp\":\"")) return NULL;
    p += sizeof("\",\"timestamp\":\"") - 1;
    el->ts = p;
    if (!(p = plain_str(p, end))) return NULL;
    el->tsn = (size_t)(p - el->ts);
    if (!LIT(p, end, "\",\"value\":")) return NULL;
    p += sizeof("\",\"value\":") - 1;
    el->vs = p;
    el->vint = 0;
    if (LIT(p, end, "true")) {
        el->vt = SR_J_TRUE;
        p += 4;
    } else if (LIT(p, end, "false")) {
        el->vt = SR_J_FALSE;
        p += 5;
    } else {
        const char *d = p;
        if (d < end && *d == '-') d++;
        if (d >= end || *d < '0' || *d > '9') return NULL;
        if (*d++ != '0')
            while (d < end && *d >= '0' && *d <= '9') d++;
        el->vint = 1;
        if (d < end && *d == '.') {
            d++;
            if (d >= end || *d < '0' || *d > '9') return NULL;
            while (d < end && *d >= '0' && *d <= '9') d++;
            el->vint = 0;
        }
        if (d < end && (*d == 'e' || *d == 'E')) return NULL;
        if (d - p > 18) return NULL;
        el->vt = SR_J_NUMBER;
        p = d;
    }
    el->vn = (size_t)(p - el->vs);
    el->q = NULL;
    el->qn = 0;
    if (LIT(p, end, ",\"quality\":\"")) {
        p += sizeof(",\"quality\":\"") - 1;
        el->q = p;
        if (!(p = plain_str(p, end))) return NULL;
        el->qn = (size_t)(p - el->q);
        p++;
    }
    if (p >= end || *p != '}') return NULL;
    return p + 1;
}

int sr_gw_fast(sr_engine *e, const char *op, const char *gw, const void *data, size_t len, sr_gw_fast_msg *m,
               sr_buf *event)
{
    sr_jlex l;
    sr_jtok t;
    msg_points mp;
    mp_init(&mp);
    size_t nv = 0;
    char **strs = NULL;
    size_t nstrs = 0, capstrs = 0;
    int ok = -1, seen_header = 0, seen_body = 0, seen_values = 0;
    memset(m, 0, sizeof *m);
    sr_jlex_init(&l, data, len);
    if (sr_jlex_next(&l) != SR_J_OBJ_BEGIN) goto done;
    while ((t = sr_jlex_next(&l)) == SR_J_KEY) {
        if (key_is(&l, "header") && !seen_header) {
            seen_header = 1;
            int f_type = 0, f_id = 0, f_cid = 0, f_ts = 0;
            if (sr_jlex_next(&l) != SR_J_OBJ_BEGIN) goto done;
            while ((t = sr_jlex_next(&l)) == SR_J_KEY) {
                char ts[64];
                if (key_is(&l, "messageType") && !f_type++) {
                    if (tok_str(&l, sr_jlex_next(&l), m->type, sizeof m->type)) goto done;
                } else if (key_is(&l, "messageId") && !f_id++) {
                    if (tok_str(&l, sr_jlex_next(&l), m->message_id, sizeof m->message_id) || !sr_id_str_ok(m->message_id))
                        goto done;
                } else if (key_is(&l, "correlationId") && !f_cid++) {
                    if (tok_str(&l, sr_jlex_next(&l), m->correlation_id, sizeof m->correlation_id)) goto done;
                } else if (key_is(&l, "timestamp") && !f_ts++) {
                    if (tok_str(&l, sr_jlex_next(&l), ts, sizeof ts) || sr_rfc3339_parse(ts, strlen(ts), &m->ts))
                        goto done;
                } else
                    goto done;
            }
            if (t != SR_J_OBJ_END || !f_type) goto done;
        } else if (key_is(&l, "body") && !seen_body) {
            seen_body = 1;
            if (sr_jlex_next(&l) != SR_J_OBJ_BEGIN) goto done;
            while ((t = sr_jlex_next(&l)) == SR_J_KEY) {
                if (!key_is(&l, "values") || seen_values++) goto done;
                if (sr_jlex_next(&l) != SR_J_ARR_BEGIN) goto done;
                const char *last_id = NULL;
                size_t last_len = 0;
                sr_point_info info;
                memset(&info, 0, sizeof info);
                per_point *cur = NULL; /* the point of the previous value */
                sr_rfc3339_cache tsc = {{0}, 0, 0};
                for (;;) {
                    const char *did = NULL, *vs = NULL, *ts = NULL, *q = NULL;
                    size_t dlen = 0, vn = 0, tsn = 0, qn = 0;
                    int f_d = 0, f_t = 0, f_v = 0, f_q = 0, vint = 0;
                    sr_jtok vt = SR_J_ERROR;
                    gw_elem el;
                    sr_jlex_to_element(&l);
                    const char *after = canonical_elem(l.p, l.end, &el);
                    if (after && sr_jlex_value_read(&l, after) == 0) {
                        did = el.did, dlen = el.dlen, ts = el.ts, tsn = el.tsn, vs = el.vs, vn = el.vn;
                        vt = el.vt, vint = el.vint, q = el.q, qn = el.qn, f_q = el.q != NULL, f_v = 1;
                        t = SR_J_OBJ_END;
                    } else if ((t = sr_jlex_next(&l)) != SR_J_OBJ_BEGIN)
                        break;
                    if (++nv > 100000) goto done;
                    while (!after && (t = sr_jlex_next(&l)) == SR_J_KEY) {
                        if (key_is(&l, "dataId") && !f_d++) {
                            if (sr_jlex_next(&l) != SR_J_STRING || l.escaped || !sr_id_ok(l.s, l.n)) goto done;
                            did = l.s;
                            dlen = l.n;
                        } else if (key_is(&l, "timestamp") && !f_t++) {
                            if (sr_jlex_next(&l) != SR_J_STRING || l.escaped) goto done;
                            ts = l.s;
                            tsn = l.n;
                        } else if (key_is(&l, "value") && !f_v++) {
                            vt = sr_jlex_next(&l);
                            if (vt == SR_J_STRING && l.escaped) goto done;
                            if (vt != SR_J_NUMBER && vt != SR_J_STRING && vt != SR_J_TRUE && vt != SR_J_FALSE) goto done;
                            vs = l.s;
                            vn = l.n;
                            vint = l.is_int;
                        } else if (key_is(&l, "quality") && !f_q++) {
                            if (sr_jlex_next(&l) != SR_J_STRING || l.escaped) goto done;
                            q = l.s;
                            qn = l.n;
                        } else
                            goto done;
                    }
                    if (t != SR_J_OBJ_END || !did || !ts || !f_v) goto done;
                    /* a message names each data point once (snapshot) or
                     * many times (series): look each up once */
                    per_point *pp = NULL;
                    uint32_t h = 0;
                    if (cur && cur->id_len == dlen && id_eq(cur->data_id, did, dlen)) pp = cur;
                    else pp = mp_find(&mp, did, dlen, h = sr_hash(did, dlen));
                    const sr_point_info *ip = pp ? &pp->info : &info;
                    if (!pp && (!last_id || last_len != dlen || !id_eq(last_id, did, dlen))) {
                        char id[72];
                        memcpy(id, did, dlen);
                        id[dlen] = 0;
                        if (sr_engine_point_info(e, op, id, &info)) goto done;
                        last_id = did;
                        last_len = dlen;
                    }
                    if (!pp && strcmp(ip->gateway, gw)) goto done; /* a known point passed this once */
                    sr_sample s = {0};
                    if (sr_rfc3339_parse_cached(&tsc, ts, tsn, &s.ts) || s.ts < 0 || s.ts > SR_TS_MAX) goto done;
                    if (f_q) {
                        int found = sr_quality_parse(q, qn);
                        if (found < 0) goto done;
                        s.quality = (uint8_t)found;
                    }
                    char num[40];
                    if (vt == SR_J_NUMBER && vn >= sizeof num) goto done;
                    switch (ip->type) {
                    case SR_VT_NUMBER:
                        if (vt != SR_J_NUMBER || (vint && vn > 15)) goto done; /* big integers: jansson decides */
                        if (fast_decimal(vs, vn, &s.v.f)) {
                            memcpy(num, vs, vn);
                            num[vn] = 0;
                            s.v.f = strtod(num, NULL);
                        }
                        if (vint && s.v.f == 0 && signbit(s.v.f)) goto done; /* "-0": jansson reads an integer 0 */
                        break;
                    case SR_VT_INTEGER: {
                        if (vt != SR_J_NUMBER || !vint) goto done;
                        memcpy(num, vs, vn);
                        num[vn] = 0;
                        errno = 0;
                        long long x = strtoll(num, NULL, 10);
                        if (errno) goto done;
                        s.v.i = x;
                        break;
                    }
                    case SR_VT_BOOL:
                        if (vt != SR_J_TRUE && vt != SR_J_FALSE) goto done;
                        s.v.b = vt == SR_J_TRUE;
                        break;
                    default: {
                        if (vt != SR_J_STRING || vn > 4096) goto done;
                        char *cp = malloc(vn + 1);
                        if (!cp) goto done;
                        memcpy(cp, vs, vn);
                        cp[vn] = 0;
                        if (nstrs == capstrs) {
                            capstrs = capstrs ? capstrs * 2 : 16;
                            char **ns = realloc(strs, capstrs * sizeof *ns);
                            if (!ns) {
                                free(cp);
                                goto done;
                            }
                            strs = ns;
                        }
                        strs[nstrs++] = cp;
                        s.v.str.s = cp;
                        s.v.str.slen = (uint32_t)vn;
                    }
                    }
                    if (s.quality <= SR_Q_UNCERTAIN && (ip->type == SR_VT_NUMBER || ip->type == SR_VT_INTEGER)) {
                        double x = ip->type == SR_VT_NUMBER ? s.v.f : (double)s.v.i;
                        if (!isfinite(x) || (ip->has_min && x < ip->min) || (ip->has_max && x > ip->max)) goto done;
                    }
                    /* did is borrowed from the message, alive until we return; a point whose
                     * values must be signed: the jansson path refuses it (E5001) */
                    if (!pp && sr_gw_sigreq_values(e, op, did, dlen)) goto done;
                    if ((!pp && !(pp = mp_add(&mp, did, dlen, h, &info))) || mp_push(&mp, pp, &s)) goto done;
                    cur = pp;
                }
                if (t != SR_J_ARR_END || nv == 0) goto done;
            }
            if (t != SR_J_OBJ_END || !seen_values) goto done;
        } else
            goto done;
    }
    if (t != SR_J_OBJ_END || !seen_header || !seen_body || sr_jlex_next(&l) != SR_J_END) goto done;
    {
        size_t before = event->len;
        if (mp_event(&mp, op, gw, m->message_id, NULL, 0 /* never signed */, event) == SR_OK) ok = 0;
        else event->len = before;
    }
    m->nvalues = nv;
done:
    mp_release(&mp);
    for (size_t k = 0; k < nstrs; k++) free(strs[k]);
    free(strs);
    return ok;
}

/* ---- acknowledgement outcomes ------------------------------------------- */

int sr_gw_outcome_rc(int rc) { return sr_gw_outcome_code(sr_wire_of_rc(rc)); }

int sr_gw_outcome_code(sr_wire code)
{
    if (code == SR_WIRE_OK) return SR_GW_DURABLE;
    return sr_wire_transient(code) ? SR_GW_TRANSIENT : SR_GW_REFUSED;
}

void sr_gw_check(sr_engine *e, const char *op, const char *gw, const void *data, size_t len, int is_values,
                 sr_gw_checked *out)
{
    memset(out, 0, sizeof *out);
    sr_buf_init(&out->ev);
    out->fast = is_values ? sr_gw_fast(e, op, gw, data, len, &out->fm, &out->ev) : -1;
    if (out->fast == 0) return;
    sr_buf_release(&out->ev);
    out->parse_rc = sr_gw_parse_sig(e, op, gw, data, len, &out->msg, &out->err);
    if (out->parse_rc || !is_values) return;
    out->values_rc =
        sr_gw_values_event_sig(e, op, gw, out->msg.message_id, NULL, sr_gw_sig_state(&out->msg),
                               json_object_get(out->msg.body, "values"), &out->ev, &out->nvalues, &out->err);
}

void sr_gw_checked_release(sr_gw_checked *c)
{
    sr_buf_release(&c->ev);
    sr_gw_msg_release(&c->msg);
    sr_gw_err_clear(&c->err);
}
