/*
 * engine/event_json.c -- an event as one line of JSON, for `suiro replay`
 * and audits. Generic over the protobuf-c descriptors (every field of every
 * message, enums by name, bytes as hex, proto3 defaults omitted) with two
 * special cases: Measurements are shown decoded, as {"points":[{"point":N,
 * "values":[[ts, value, quality]...]}...]}, since the compact encodings
 * mean nothing to a reader; a Snapshot's entries come first, each with
 * "snapshot":true (both forms through sr_meas_next); and a pending
 * change's change (bytes: an encoded Event) is shown as the event it is.
 * The options (sr_event_json_ex) let the caller add what the engine's layer
 * does not hold: the number writer of the AP-IF answers (numbers as sent),
 * the dataId of a point number, and times as RFC 3339.
 */
#include "engine/event_json.h"

#include "codecs/accpack.h"
#include "codecs/jsonlex.h"

#include "codecs/rfc3339.h"
#include "engine/evbuild.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int put(sr_buf *b, const char *s) { return sr_buf_append(b, s, strlen(s)); }

static int putf(sr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(sr_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return SR_EINVAL;
    return sr_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

typedef struct ctx {
    const sr_event_json_opts *o; /* never NULL */
    const char *op;              /* the event's operator */
} ctx;

static int put_double(sr_buf *b, const ctx *x, double d)
{
    if (isnan(d)) return put(b, "\"NaN\"");
    if (isinf(d)) return put(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x->o->number) {
        char t[48];
        int n = x->o->number(t, d);
        if (n > 0) return sr_buf_append(b, t, (size_t)n);
    }
    return putf(b, "%.17g", d);
}

static int put_time(sr_buf *b, const ctx *x, int64_t ms)
{
    if (!x->o->times) return putf(b, "%" PRId64, ms);
    char t[32];
    sr_rfc3339_format(ms, t);
    return putf(b, "\"%s\"", t);
}

/* one point and its samples (either form of the record: sr_meas_next) */
static int put_point(sr_buf *b, const ctx *x, sr_mpoint *pv)
{
    sr_vtype t = pv->type;
    long n = pv->n;
    int rc = putf(b, "{\"point\":%u", pv->point);
    const char *id = x->o->data_id ? x->o->data_id(x->o->ctx, x->op, pv->point) : NULL;
    if (!rc && id) {
        rc = put(b, ",\"dataId\":");
        if (!rc) rc = sr_json_put_string(b, id, strlen(id));
    }
    if (!rc && pv->in_snapshot) rc = put(b, ",\"snapshot\":true");
    if (n < 0) return rc ? rc : put(b, ",\"error\":\"inconsistent arrays\"}");
    rc = rc ? rc : put(b, ",\"values\":[");
    for (long i = 0; i < n && !rc; i++) {
        sr_sample s = {0};
        if (sr_pv_iter_next(&pv->it, &s)) break;
        rc = put(b, i ? ",[" : "[");
        if (!rc) rc = put_time(b, x, s.ts);
        if (!rc) rc = put(b, ",");
        if (rc) break;
        switch (t) {
        case SR_VT_NUMBER: rc = put_double(b, x, s.v.f); break;
        case SR_VT_INTEGER: rc = putf(b, "%" PRId64, s.v.i); break;
        case SR_VT_BOOL: rc = put(b, s.v.b ? "true" : "false"); break;
        default: rc = sr_json_put_string(b, s.v.str.s, s.v.str.slen);
        }
        if (!rc) rc = putf(b, ",%u]", s.quality);
    }
    return rc ? rc : put(b, "]}");
}

/* Measurements: {"points":[...]}, a snapshot's entries first, marked */
static int put_measurements(sr_buf *b, const ctx *x, const Suiro__V1__Measurements *m)
{
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, m);
    int rc = put(b, "{\"points\":["), first = 1;
    while (!rc && sr_meas_next(&mi, &p)) {
        if (!first) rc = put(b, ",");
        first = 0;
        if (!rc) rc = put_point(b, x, &p);
    }
    return rc ? rc : put(b, "]}");
}

static int put_message(sr_buf *b, const ctx *x, const ProtobufCMessage *m);

/* AccessBatch: its packed entries (codecs/accpack.h) shown as an
 * AccessEvent's {"entries":[...]}, field for field, so that a reader of
 * `suiro replay` sees one shape for both forms; a malformed one (the writer
 * refuses it) as {"packed_error":"..."} */
static int put_access_batch(sr_buf *b, const ctx *x, const Suiro__V1__AccessBatch *ab)
{
    sr_apk_view v;
    const char *why = NULL;
    if (sr_apk_parse(ab->packed.data, ab->packed.len, &v, &why)) {
        int rc = put(b, "{\"packed_error\":");
        if (!rc) rc = sr_json_put_string(b, why, strlen(why));
        return rc ? rc : put(b, "}");
    }
    Suiro__V1__AccessEntry *en = sr_calloc(v.nent, sizeof *en);
    Suiro__V1__AccessEntry **pe = sr_calloc(v.nent, sizeof *pe);
    const char **pts = sr_calloc((size_t)v.nref + 1, sizeof *pts);
    int rc = SR_ENOMEM;
    if (en && pe && pts) {
        for (uint32_t k = 0; k < v.nref; k++) pts[k] = sr_apk_s(&v, sr_apk_ref(&v, k));
        sr_apk_iter it;
        sr_apk_iter_init(&v, &it);
        sr_apk_entry e;
        for (uint32_t i = 0; i < v.nent && sr_apk_next(&it, &e); i++) {
            Suiro__V1__AccessEntry *o = &en[i];
            suiro__v1__access_entry__init(o);
            o->time_ms = e.time_ms;
            o->binding = (char *)sr_apk_s(&v, e.binding);
            o->method = (char *)sr_apk_s(&v, e.method);
            o->route = (char *)sr_apk_s(&v, e.route);
            o->n_points = e.npl;
            o->points = (char **)(pts + e.ref);
            o->npoints = e.npoints;
            o->values = e.values;
            o->bytes = e.bytes;
            o->status = e.status;
            o->code = (char *)sr_apk_s(&v, e.code);
            o->source = (char *)sr_apk_s(&v, e.source);
            pe[i] = o;
        }
        Suiro__V1__AccessEvent ae = SUIRO__V1__ACCESS_EVENT__INIT;
        ae.n_entries = v.nent;
        ae.entries = pe;
        rc = put_message(b, x, &ae.base);
    }
    sr_free(en);
    sr_free(pe);
    sr_free(pts);
    return rc;
}

/* an int64 field "..._ms" is a time (durations are uint32) */
/* PendingEvent.change: an encoded Event */
static int is_pending_change(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = &suiro__v1__pending_event__descriptor;
    return f >= d->fields && f < d->fields + d->n_fields && !strcmp(f->name, "change");
}

static int is_time(const ProtobufCFieldDescriptor *f)
{
    size_t n = strlen(f->name);
    return f->type == PROTOBUF_C_TYPE_INT64 && n > 3 && !strcmp(f->name + n - 3, "_ms");
}

static int put_value(sr_buf *b, const ctx *x, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return putf(b, "%" PRId32, *(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return putf(b, "%" PRIu32, *(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (is_time(f)) return put_time(b, x, *(const int64_t *)p);
        return putf(b, "%" PRId64, *(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return putf(b, "%" PRIu64, *(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return put_double(b, x, *(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return put_double(b, x, *(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return put(b, *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, *(const int *)p);
        if (ev) return sr_json_put_string(b, ev->name, strlen(ev->name));
        return putf(b, "%d", *(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return sr_json_put_string(b, s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        if (is_pending_change(f)) { /* the change a pending change holds: an event, shown as one */
            Suiro__V1__Event *c = suiro__v1__event__unpack(NULL, d->len, d->data);
            if (c) {
                int rc = put_message(b, x, &c->base);
                suiro__v1__event__free_unpacked(c, NULL);
                return rc;
            }
        }
        int rc = put(b, "\"");
        char hx[2 * 64 + 1];
        for (size_t i = 0; i < d->len && !rc; i += 64) {
            size_t k = d->len - i < 64 ? d->len - i : 64;
            sr_hex(d->data + i, k, hx);
            rc = sr_buf_append(b, hx, 2 * k);
        }
        return rc ? rc : put(b, "\"");
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (!sub) return put(b, "null");
        if (sub->descriptor == &suiro__v1__measurements__descriptor)
            return put_measurements(b, x, (const Suiro__V1__Measurements *)sub);
        if (sub->descriptor == &suiro__v1__access_batch__descriptor)
            return put_access_batch(b, x, (const Suiro__V1__AccessBatch *)sub);
        return put_message(b, x, sub);
    }
    }
    return put(b, "null");
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return 4;
    }
}

static int is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p == NULL;
    default: {
        static const uint8_t zero[8];
        return !memcmp(p, zero, elem_size(f->type));
    }
    }
}

/* the key of field f: a time field "ingest_ms" is "ingest" when times are RFC 3339 */
static int put_key(sr_buf *b, const ctx *x, const ProtobufCFieldDescriptor *f, int first)
{
    int n = (int)strlen(f->name);
    if (x->o->times && is_time(f)) n -= 3;
    return putf(b, "%s\"%.*s\":", first ? "" : ",", n, f->name);
}

static int put_message(sr_buf *b, const ctx *x, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int rc = put(b, "{"), first = 1;
    for (unsigned i = 0; i < d->n_fields && !rc; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        const void *p = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (!n) continue;
            rc = put_key(b, x, f, first);
            if (!rc) rc = put(b, "[");
            first = 0;
            const char *arr = *(char *const *)p;
            for (size_t k = 0; k < n && !rc; k++) {
                if (k) rc = put(b, ",");
                if (!rc) rc = put_value(b, x, f, arr + k * elem_size(f->type));
            }
            if (!rc) rc = put(b, "]");
            continue;
        } else if (is_default(f, p))
            continue;
        if (!rc) rc = put_key(b, x, f, first);
        first = 0;
        if (!rc) rc = put_value(b, x, f, p);
    }
    if (!rc && m->n_unknown_fields) rc = putf(b, "%s\"_unknown_fields\":%u", first ? "" : ",", m->n_unknown_fields);
    return rc ? rc : put(b, "}");
}

int sr_event_json(const Suiro__V1__Event *ev, sr_buf *out) { return sr_event_json_ex(ev, NULL, out); }

/* ,"audit":{...}: the trail's summary, names only (engine/audit.c) */
static int put_audit(sr_buf *b, const Suiro__V1__Event *ev)
{
    sr_audit_summary a;
    if (!sr_audit_summarize(ev, &a)) return SR_OK;
    static const char *const keys[] = {"kind", "actor_kind", "action", "target", "outcome", "detail"};
    const char *vals[] = {a.s[3], sr_actor_kind_name(ev->actor_kind), a.s[4], a.s[5], a.s[6], a.s[7]};
    int rc = put(b, ",\"audit\":{");
    for (int i = 0, first = 1; i < 6 && !rc; i++) {
        if (!vals[i][0]) continue;
        rc = putf(b, "%s\"%s\":", first ? "" : ",", keys[i]);
        if (!rc) rc = sr_json_put_string(b, vals[i], strlen(vals[i]));
        first = 0;
    }
    return rc ? rc : put(b, "}");
}

int sr_event_json_ex(const Suiro__V1__Event *ev, const sr_event_json_opts *o, sr_buf *out)
{
    static const sr_event_json_opts none = {0};
    ctx x = {.o = o ? o : &none, .op = ev->operator_id ? ev->operator_id : ""};
    int rc = put_message(out, &x, &ev->base);
    if (rc || !x.o->audit) return rc;
    out->len--; /* the object's '}' */
    rc = put_audit(out, ev);
    return rc ? rc : put(out, "}");
}

const char *sr_event_kind(const Suiro__V1__Event *ev)
{
    const ProtobufCMessageDescriptor *d = &suiro__v1__event__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && d->fields[i].id == (unsigned)ev->body_case)
            return d->fields[i].name;
    return "none";
}
