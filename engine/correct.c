/*
 * engine/correct.c -- an import of a corrected CSV (R-PO-1, docs/csv.md):
 * the rows `dataId,timestamp,value,quality` read with the one RFC 4180
 * reader (codecs/csv.c), checked against the point table, and built into
 * ONE Correction event (codecs/events.proto: the values in Measurements'
 * compact form, the reason, the import's id), so that the import is stored
 * all or nothing by the writer's one command.
 *
 * CONTRACT (sr_cmd_corrections, engine/records.h)
 *  - The first record is the header: exactly dataId,timestamp,value and
 *    optionally quality (what the CSV export writes; a UTF-8 BOM is
 *    skipped). Empty lines are skipped. Every other record is one value.
 *  - Every bad row is reported with its physical line number and why: the
 *    first SR_CORR_ERRORS_MAX of them listed, all of them counted (nbad).
 *    A row is bad when the reader refuses it (bad UTF-8, a stray quote),
 *    its field count is not the header's, its dataId is not a data point of
 *    the operator (or one the caller may not correct: the may filter), its
 *    timestamp is not RFC 3339 within [0, SR_TS_MAX], its value is not one
 *    of the point's type (a number as JSON writes one and finite, an
 *    integer, true/false), its quality is not a quality's name, or the same
 *    (dataId, timestamp) is on an earlier line. Any bad row: no event.
 *  - A number is kept as the double its text reads as, which the values
 *    writer writes back as the same text (sr_json_number: 68.29 as sent)
 *    and the event builder stores as a decimal mantissa when it is one.
 *  - Limits: at most SR_CORR_ROWS_MAX rows, a reason of 1 to
 *    SR_CORR_REASON_MAX bytes; else rep->msg says which (rep->field).
 *  - Pure but for the point table's lookups: nothing is stored here. The
 *    writer checks the event again (apply.c check_correction: actor, reason,
 *    the points' operator, types and ranges) in the command's transaction.
 */
#include "engine/engine_int.h"
#include "engine/evbuild.h"
#include "engine/records.h"

#include "codecs/csv.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "storage/crypto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct crow {
    uint32_t point;
    uint32_t line;
    uint32_t ty; /* sr_vtype */
    sr_sample s; /* a string's s is an offset into the arena until the end */
} crow;

static void bad(sr_corr_report *rep, size_t line, const char *fmt, ...)
{
    rep->nbad++;
    if (rep->nerr >= SR_CORR_ERRORS_MAX) return;
    sr_corr_error *e = &rep->err[rep->nerr++];
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

static int whole(sr_corr_report *rep, const char *field, int rc, const char *fmt, ...)
{
    snprintf(rep->field, sizeof rep->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->msg, sizeof rep->msg, fmt, ap);
    va_end(ap);
    return rc;
}

/* a number as JSON writes one: -?digits(.digits)?([eE][+-]?digits)?, finite */
static int parse_number(const char *s, size_t n, double *out)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    size_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d0) return -1;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == f0) return -1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t e0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == e0) return -1;
    }
    if (i != n) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end); /* s[n] is the field's NUL */
    if (end != s + n || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_integer(const char *s, size_t n, int64_t *out)
{
    if (!n || n > 20) return -1;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == n) return -1;
    for (size_t j = i; j < n; j++)
        if (s[j] < '0' || s[j] > '9') return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end != s + n) return -1;
    *out = v;
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const crow *x = a, *y = b;
    if (x->point != y->point) return x->point < y->point ? -1 : 1;
    if (x->s.ts != y->s.ts) return x->s.ts < y->s.ts ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static const char *type_name(sr_vtype t)
{
    return t == SR_VT_NUMBER ? "a number" : t == SR_VT_INTEGER ? "an integer" : t == SR_VT_BOOL ? "true or false" : "a string";
}

int sr_cmd_corrections(sr_engine *e, const sr_cmd_env *env, const void *csv, size_t len, const char *reason,
                       int (*may)(void *ctx, const char *data_id), void *may_ctx, sr_corr_report *rep, sr_buf *out)
{
    memset(rep, 0, sizeof *rep);
    size_t rl = reason ? strlen(reason) : 0;
    if (!rl || rl > SR_CORR_REASON_MAX)
        return whole(rep, "reason", SR_EINVAL, "reason: why the values are corrected, 1 to %d bytes", SR_CORR_REASON_MAX);
    for (size_t i = 0, k; i < rl; i += k)
        if (!(k = sr__csv_utf8_seq((const uint8_t *)reason + i, rl - i)) || (unsigned char)reason[i] < 0x20)
            return whole(rep, "reason", SR_EINVAL, "reason: UTF-8 text without control characters");
    uint8_t rnd[8];
    if (sr_random(rnd, sizeof rnd)) return whole(rep, "csv", SR_EIO, "no random bytes for the import's id");
    memcpy(rep->import_id, "csv-", 4);
    sr_hex(rnd, sizeof rnd, rep->import_id + 4);

    sr_csv_reader rd;
    sr_csv_opts co = {.max_field = 4096, .max_record = 8192, .max_fields = 16};
    sr_csv_reader_init(&rd, csv, len, &co);
    crow *rows = NULL;
    size_t nrows = 0, caprows = 0;
    sr_buf arena; /* string values, NUL-terminated */
    sr_buf_init(&arena);
    sr_pv_in *pts = NULL;
    sr_sample *ss = NULL;
    int rc = SR_OK, header = 0, has_q = 0;
    size_t nf = 0;
    char last_id[72] = "";
    sr_point_info last = {0};
    int last_ok = 0;
    for (;;) {
        sr_csv_record rec;
        int r = sr_csv_next(&rd, &rec);
        if (r == SR_DONE) break;
        if (r == SR_ECODEC) {
            size_t line;
            const char *m = sr_csv_error(&rd, &line);
            if (!header) {
                rc = whole(rep, "csv", SR_EINVAL, "line %zu: %s", line, m);
                goto done;
            }
            bad(rep, line, "%s", m);
            continue;
        }
        if (r) {
            rc = whole(rep, "csv", r, "line %zu: %s", rec.line, sr_strerror(r));
            goto done;
        }
        if (rec.n == 1 && rec.f[0].len == 0) continue; /* an empty line */
        if (!header) {
            static const char *const names[] = {"dataId", "timestamp", "value", "quality"};
            int ok = rec.n == 3 || rec.n == 4;
            for (size_t i = 0; ok && i < rec.n; i++) ok = !strcmp(rec.f[i].s, names[i]);
            if (!ok) {
                rc = whole(rep, "csv", SR_EINVAL,
                           "line %zu: the header must be dataId,timestamp,value,quality (quality optional)", rec.line);
                goto done;
            }
            header = 1;
            nf = rec.n;
            has_q = rec.n == 4;
            continue;
        }
        if (nrows + rep->nbad >= SR_CORR_ROWS_MAX) {
            rc = whole(rep, "csv", SR_ETOOBIG, "more than %d rows: split the import", SR_CORR_ROWS_MAX);
            goto done;
        }
        rep->rows++;
        size_t line = rec.line;
        if (rec.n != nf) {
            bad(rep, line, "%zu fields, the header has %zu", rec.n, nf);
            continue;
        }
        const sr_csv_field *f = rec.f;
        if (!sr_id_ok(f[0].s, f[0].len)) {
            bad(rep, line, "dataId: not an ID");
            continue;
        }
        if (strcmp(last_id, f[0].s)) {
            snprintf(last_id, sizeof last_id, "%s", f[0].s);
            last_ok = sr_engine_point_info(e, env->op, last_id, &last) == SR_OK && (!may || may(may_ctx, last_id));
        }
        if (!last_ok) {
            bad(rep, line, "dataId %s: not a data point you may correct", last_id);
            continue;
        }
        crow w = {.point = last.point, .line = (uint32_t)line, .ty = last.type};
        if (sr_rfc3339_parse(f[1].s, f[1].len, &w.s.ts) || w.s.ts < 0 || w.s.ts > SR_TS_MAX) {
            bad(rep, line, "timestamp: not an RFC 3339 time (2026-04-01T09:00:00.000Z)");
            continue;
        }
        int q = has_q && f[3].len ? sr_quality_parse(f[3].s, f[3].len) : SR_Q_GOOD;
        if (q < 0) {
            bad(rep, line, "quality: GOOD, UNCERTAIN, BAD or NO_DATA");
            continue;
        }
        w.s.quality = (uint8_t)q;
        int vbad = 0;
        switch (last.type) {
        case SR_VT_INTEGER: vbad = parse_integer(f[2].s, f[2].len, &w.s.v.i); break;
        case SR_VT_BOOL:
            if (!strcmp(f[2].s, "true")) w.s.v.b = 1;
            else if (!strcmp(f[2].s, "false")) w.s.v.b = 0;
            else vbad = 1;
            break;
        case SR_VT_STRING:
            w.s.v.str.s = (const char *)(uintptr_t)arena.len;
            w.s.v.str.slen = (uint32_t)f[2].len;
            if ((rc = sr_buf_append(&arena, f[2].s, f[2].len + 1))) goto done;
            break;
        default: vbad = parse_number(f[2].s, f[2].len, &w.s.v.f); break;
        }
        if (vbad) {
            bad(rep, line, "value: not %s (data point %s)", type_name(last.type), last_id);
            continue;
        }
        if (!last.has_min && !last.has_max) {
        } else if (q <= SR_Q_UNCERTAIN && (last.type == SR_VT_NUMBER || last.type == SR_VT_INTEGER)) {
            double x = last.type == SR_VT_NUMBER ? w.s.v.f : (double)w.s.v.i;
            if (last.has_min && x < last.min) {
                bad(rep, line, "value: below the minimum %g of %s", last.min, last_id);
                continue;
            }
            if (last.has_max && x > last.max) {
                bad(rep, line, "value: above the maximum %g of %s", last.max, last_id);
                continue;
            }
        }
        if (sr_array_reserve(&rows, &caprows, nrows + 1, sizeof *rows)) {
            rc = SR_ENOMEM;
            goto done;
        }
        rows[nrows++] = w;
    }
    if (!header) {
        rc = whole(rep, "csv", SR_EINVAL, "no header: dataId,timestamp,value,quality");
        goto done;
    }
    /* by point and time; a second row of the same (point, timestamp) is bad */
    if (nrows) qsort(rows, nrows, sizeof *rows, row_cmp);
    for (size_t i = 1; i < nrows; i++)
        if (rows[i].point == rows[i - 1].point && rows[i].s.ts == rows[i - 1].s.ts) {
            char t[32];
            sr_rfc3339_format(rows[i].s.ts, t);
            bad(rep, rows[i].line, "the same dataId and timestamp %s as line %" PRIu32, t, rows[i - 1].line);
        }
    if (rep->nbad) {
        /* listed in line order */
        for (size_t i = 1; i < rep->nerr; i++)
            for (size_t j = i; j > 0 && rep->err[j].line < rep->err[j - 1].line; j--) {
                sr_corr_error x = rep->err[j];
                rep->err[j] = rep->err[j - 1];
                rep->err[j - 1] = x;
            }
        rc = whole(rep, "csv", SR_EINVAL, "%zu bad row(s); nothing imported", rep->nbad);
        goto done;
    }
    if (!nrows) {
        rc = whole(rep, "csv", SR_EINVAL, "no rows: nothing to correct");
        goto done;
    }
    /* one sr_pv_in per point, the samples contiguous in time order */
    size_t np = 0;
    for (size_t i = 0; i < nrows; i++) np += !i || rows[i].point != rows[i - 1].point;
    if (!(pts = sr_calloc(np, sizeof *pts)) || !(ss = sr_malloc(nrows * sizeof *ss))) {
        rc = SR_ENOMEM;
        goto done;
    }
    np = 0;
    for (size_t i = 0; i < nrows; i++) {
        ss[i] = rows[i].s;
        if (rows[i].ty == SR_VT_STRING) ss[i].v.str.s = (const char *)arena.data + (uintptr_t)rows[i].s.v.str.s;
        if (!i || rows[i].point != rows[i - 1].point) pts[np++] = (sr_pv_in){rows[i].point, (sr_vtype)rows[i].ty, &ss[i], 0};
        pts[np - 1].n++;
    }
    rep->points = np;
    rc = sr_ev_correction(env, pts, np, reason, rep->import_id, (uint32_t)nrows, out);
done:
    if (rc && !rep->msg[0]) whole(rep, "csv", rc, "%s", sr_strerror(rc));
    sr_csv_reader_release(&rd);
    sr_free(rows);
    sr_free(pts);
    sr_free(ss);
    sr_buf_release(&arena);
    return rc;
}

/* The Correction event: the values built by the one builder of the compact
 * form (sr_ev_measurements), moved into a Correction. */
int sr_ev_correction(const sr_cmd_env *env, const sr_pv_in *pts, size_t npts, const char *reason,
                     const char *import_id, uint32_t rows, sr_buf *out)
{
    sr_buf m;
    sr_buf_init(&m);
    int rc = sr_ev_measurements(env->op, env->actor, env->kind, NULL, pts, npts, &m);
    Suiro__V1__Event *ev = rc ? NULL : suiro__v1__event__unpack(NULL, m.len, m.data);
    if (!rc && (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS)) rc = SR_ENOMEM;
    if (!rc) {
        /* the unpacked envelope's strings, given back before the free */
        char *o_op = ev->operator_id, *o_actor = ev->actor, *o_mid = ev->message_id, *o_src = ev->source;
        Suiro__V1__Correction c = SUIRO__V1__CORRECTION__INIT;
        c.values = ev->measurements;
        c.reason = (char *)reason;
        c.import_id = (char *)import_id;
        c.rows = rows;
        ev->body_case = SUIRO__V1__EVENT__BODY_CORRECTION;
        ev->correction = &c;
        ev->source = (char *)(env->source ? env->source : "");
        rc = sr_ev_pack(ev, env->op, env->actor, (Suiro__V1__ActorKind)env->kind, env->message_id, out);
        ev->correction = NULL; /* c is on the stack: give the measurements back to be freed */
        ev->body_case = SUIRO__V1__EVENT__BODY_MEASUREMENTS;
        ev->measurements = c.values;
        ev->operator_id = o_op;
        ev->actor = o_actor;
        ev->message_id = o_mid;
        ev->source = o_src;
    }
    if (ev) suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&m);
    return rc;
}
