/*
 * api/report.c -- the incident report as JSON and as one HTML page
 * (issue #18, R-RE-4; api/report.h, docs/incident-report.md).
 *
 * JSON: jansson, written with sr_json_write (numbers short and exact), so
 * the CLI and the Admin API give the same bytes for the same report.
 *
 * HTML: one page, nothing outside it: CSS in a <style>, the timeline and
 * one chart per point as inline SVG, the sections as tables; no script (it
 * reads in any browser, and in a mail). Each chart carries its values in
 * `data-values` (JSON: [[ms, value], ...]; a downsampled one the buckets'
 * means) and in its <desc>, so a test reads them back from the rendered
 * DOM (tests/integration/test_report_html.py).
 *
 * INVARIANTS
 *  (1) Every string from the log or the request goes through esc() (text
 *      and attributes alike): a master named <script> is text on the page.
 *  (2) The page names no URL: no src, no href but in-page anchors, no
 *      @import (test_report_html checks it).
 */
#include "api/report.h"

#include "api/httpu.h"
#include "codecs/rfc3339.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sr_report_format_parse(const char *s)
{
    if (!s || !strcmp(s, "json")) return 0;
    if (!strcmp(s, "html")) return 1;
    return -1;
}

/* ---- JSON ---------------------------------------------------------------------- */

static json_t *tm(int64_t ms)
{
    char t[32];
    sr_rfc3339_format(ms, t);
    return json_string(t);
}

static json_t *section(json_t *items, size_t truncated)
{
    return json_pack("{s:o,s:I}", "items", items ? items : json_array(), "truncated", (json_int_t)truncated);
}

static json_t *ev_json(const sr_report_event *x)
{
    json_t *o = json_pack("{s:I,s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)x->seq, "time", tm(x->ms),
                          "operator", x->op, "actor", x->actor, "actorKind", x->actor_kind, "kind", x->kind, "action",
                          x->action, "target", x->target, "outcome", x->outcome, "detail", x->detail);
    if (o && x->source[0]) json_object_set_new(o, "source", json_string(x->source));
    if (o && x->reason[0]) json_object_set_new(o, "reason", json_string(x->reason));
    return o;
}

static json_t *cv_json(const sr_control_value *v)
{
    switch (v->type) {
    case SR_VT_INTEGER: return json_integer((json_int_t)v->i);
    case SR_VT_BOOL: return json_boolean(v->b);
    case SR_VT_STRING: return json_string(v->s);
    default: return isfinite(v->f) ? json_real(v->f) : json_null();
    }
}

json_t *sr_report_json(const sr_report *r)
{
    json_t *pts = json_array();
    for (size_t i = 0; i < r->npoints; i++) json_array_append_new(pts, json_string(r->points[i]));
    json_t *filter = json_pack("{s:o}", "points", pts);
    if (filter && r->op[0]) json_object_set_new(filter, "operator", json_string(r->op));
    if (filter && r->gateway[0]) json_object_set_new(filter, "gateway", json_string(r->gateway));

    json_t *conns = json_array(), *reqs = json_array(), *ctrls = json_array(), *alarms = json_array(),
           *refs = json_array(), *chg = json_array(), *vals = json_array();
    for (size_t i = 0; i < r->nconns; i++) json_array_append_new(conns, ev_json(&r->conns[i]));
    for (size_t i = 0; i < r->nrefusals; i++) json_array_append_new(refs, ev_json(&r->refusals[i]));
    for (size_t i = 0; i < r->nchanges; i++) json_array_append_new(chg, ev_json(&r->changes[i]));
    for (size_t i = 0; i < r->nreqs; i++) {
        const sr_report_request *q = &r->reqs[i];
        json_t *o = json_pack("{s:I,s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)q->seq, "time", tm(q->ms),
                              "operator", q->op, "requestId", q->request_id, "kind", q->kind, "app", q->app,
                              "gateways", q->gateways, "dataIds", q->data_ids, "state", q->state);
        if (o && q->outcome_ms) {
            json_object_set_new(o, "outcomeTime", tm(q->outcome_ms));
            json_object_set_new(o, "outcomeSeq", json_integer((json_int_t)q->outcome_seq));
        }
        if (o && q->error_code[0]) json_object_set_new(o, "errorCode", json_string(q->error_code));
        if (o && q->message[0]) json_object_set_new(o, "message", json_string(q->message));
        if (o && q->before_window) json_object_set_new(o, "createdBeforeWindow", json_true());
        json_array_append_new(reqs, o);
    }
    for (size_t i = 0; i < r->nctrls; i++) {
        const sr_report_control *c = &r->ctrls[i];
        json_t *o = json_pack("{s:I,s:o,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s}", "seq", (json_int_t)c->seq, "time",
                              tm(c->ms), "operator", c->op, "requestId", c->request_id, "app", c->app, "gateway",
                              c->gateway, "dataId", c->value.data_id, "value", cv_json(&c->value), "state", c->state,
                              "signature", sr_report_sig_state(c));
        if (o && c->error_code[0]) json_object_set_new(o, "errorCode", json_string(c->error_code));
        if (o && c->message[0]) json_object_set_new(o, "message", json_string(c->message));
        json_array_append_new(ctrls, o);
    }
    for (size_t i = 0; i < r->nalarms; i++) {
        const sr_report_alarm *a = &r->alarms[i];
        json_t *o = json_pack("{s:I,s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)a->seq, "time",
                              tm(a->ms), "operator", a->op, "alarmId", a->alarm_id, "step", a->step, "rule", a->rule,
                              "subject", a->subject, "level", a->level, "by", a->by, "message", a->message);
        if (o && a->comment[0]) json_object_set_new(o, "comment", json_string(a->comment));
        json_array_append_new(alarms, o);
    }
    for (size_t i = 0; i < r->nseries; i++) {
        const sr_report_series *s = &r->series[i];
        json_t *v = json_array();
        for (size_t k = 0; k < s->n; k++) {
            const sr_report_value *x = &s->v[k];
            json_array_append_new(v, s->downsampled ? json_pack("[I,f,f,f,I]", (json_int_t)x->ts, x->v, x->min, x->max,
                                                                (json_int_t)x->count)
                                                    : json_pack("[I,f]", (json_int_t)x->ts, x->v));
        }
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:o}", "operator", s->op, "dataId", s->data_id, "type",
                              s->type, "gateway", s->gateway, "why", s->why, "total", (json_int_t)s->total, "mode",
                              s->downsampled ? "downsampled" : "raw", "values", v);
        if (o && s->downsampled) json_object_set_new(o, "intervalMs", json_integer((json_int_t)s->interval_ms));
        json_array_append_new(vals, o);
    }
    /* (not r->read: how far the read went past the window depends on what
     * came after it, and the same window gives the same report) */
    json_t *log = json_pack("{s:I,s:I,s:I}", "firstSeq", (json_int_t)r->first_seq, "lastSeq", (json_int_t)r->last_seq,
                            "events", (json_int_t)r->events);
    return json_pack("{s:s,s:{s:o,s:o},s:o,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "report", "incident", "window",
                     "from", tm(r->from_ms), "to", tm(r->to_ms), "filter", filter, "cap", (json_int_t)r->cap, "log",
                     log, "connections", section(conns, r->conns_truncated), "requests",
                     section(reqs, r->reqs_truncated), "controls", section(ctrls, r->ctrls_truncated), "alarms",
                     section(alarms, r->alarms_truncated), "refusals", section(refs, r->refusals_truncated),
                     "changes", section(chg, r->changes_truncated), "values", section(vals, r->series_truncated));
}

int sr_report_json_text(const sr_report *r, sr_buf *out)
{
    json_t *j = sr_report_json(r);
    if (!j) return SR_ENOMEM;
    int rc = sr_json_write(out, j);
    json_decref(j);
    return rc;
}

/* ---- HTML -------------------------------------------------------------------------- */

typedef struct hw {
    sr_buf *b;
    int rc;
} hw;

static void put(hw *w, const char *s, size_t n)
{
    if (!w->rc) w->rc = sr_buf_append(w->b, s, n);
}

static void puts_(hw *w, const char *s) { put(w, s, strlen(s)); }

static void putf(hw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(hw *w, const char *fmt, ...)
{
    char t[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put(w, t, (size_t)n < sizeof t ? (size_t)n : sizeof t - 1);
}

/* text or an attribute's value, escaped (invariant 1) */
static void esc(hw *w, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        put(w, run, (size_t)(s - run));
        puts_(w, rep);
        run = s + 1;
    }
    put(w, run, (size_t)(s - run));
}

static void num(hw *w, double f)
{
    char t[48];
    int n = sr_json_number(t, f);
    put(w, t, (size_t)n);
}

static void time_text(hw *w, int64_t ms)
{
    char t[32];
    sr_rfc3339_format(ms, t);
    puts_(w, t);
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}"
    "table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 6px;"
    "text-align:left;vertical-align:top}th{background:#f6f8fa}.muted{color:#57606a}.trunc{color:#9a6700}"
    "svg{background:#fbfbfc;border:1px solid #d0d7de}.ax{stroke:#57606a;stroke-width:1}.grid{stroke:#e5e7eb}"
    "svg text{font-size:11px;fill:#57606a}.line{fill:none;stroke:#0969da;stroke-width:1.5}"
    ".pt{fill:#0969da}.c0{fill:#1a7f37}.c1{fill:#0969da}.c2{fill:#8250df}.c3{fill:#cf222e}.c4{fill:#9a6700}"
    ".c5{fill:#57606a}figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}"
    "nav a{margin-right:12px}";

static const char *const ROWS[] = {"connections", "requests", "controls", "alarms", "refusals", "changes"};

/* x of time t in a plot of width pw from x0 */
static double xof(const sr_report *r, int64_t t, double x0, double pw)
{
    double span = (double)(r->to_ms - r->from_ms);
    if (span <= 0) span = 1;
    return x0 + (double)(t - r->from_ms) / span * pw;
}

static void tl_dot(hw *w, const sr_report *r, int row, int64_t ms, const char *what, const char *a, const char *b)
{
    double x = xof(r, ms, 110, 860), y = 30 + row * 28;
    putf(w, "<circle class=\"c%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\"><title>", row, x, y);
    time_text(w, ms);
    puts_(w, " ");
    esc(w, what);
    puts_(w, " ");
    esc(w, a);
    puts_(w, " ");
    esc(w, b);
    puts_(w, "</title></circle>");
}

/* a tick's time: the time of day (with the date when the window spans more
 * than a day), short enough for five ticks side by side */
static void tick_time(hw *w, const sr_report *r, int64_t ms)
{
    char t[32];
    sr_rfc3339_format(ms, t); /* 2026-12-07T03:46:52.145Z */
    if (r->to_ms - r->from_ms > 86400000) putf(w, "%.5s %.5s", t + 5, t + 11);
    else if (r->to_ms - r->from_ms > 600000) putf(w, "%.8s", t + 11);
    else putf(w, "%.12s", t + 11);
}

static void time_axis(hw *w, const sr_report *r, double x0, double pw, double y)
{
    putf(w, "<line class=\"ax\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, y, x0 + pw, y);
    for (int k = 0; k <= 4; k++) {
        int64_t t = r->from_ms + (int64_t)((double)(r->to_ms - r->from_ms) * k / 4.0);
        double x = xof(r, t, x0, pw);
        putf(w, "<line class=\"ax\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, y, x, y + 4);
        putf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y + 16, k == 0 ? "start" : k == 4 ? "end" : "middle");
        tick_time(w, r, t);
        puts_(w, "</text>");
    }
}

static void timeline(hw *w, const sr_report *r)
{
    size_t nrows = sizeof ROWS / sizeof ROWS[0];
    double h = 30 + nrows * 28 + 30;
    putf(w, "<svg id=\"timeline-svg\" width=\"1000\" height=\"%.0f\" viewBox=\"0 0 1000 %.0f\" role=\"img\">", h, h);
    puts_(w, "<desc>The window's events by section, in time.</desc>");
    for (size_t i = 0; i < nrows; i++) {
        double y = 30 + (double)i * 28;
        putf(w, "<text x=\"8\" y=\"%.1f\">%s</text><line class=\"grid\" x1=\"110\" y1=\"%.1f\" x2=\"970\" y2=\"%.1f\"/>",
             y + 4, ROWS[i], y, y);
    }
    for (size_t i = 0; i < r->nconns; i++)
        tl_dot(w, r, 0, r->conns[i].ms, r->conns[i].action, r->conns[i].target, r->conns[i].reason);
    for (size_t i = 0; i < r->nreqs; i++)
        tl_dot(w, r, 1, r->reqs[i].ms, r->reqs[i].kind, r->reqs[i].request_id, r->reqs[i].state);
    for (size_t i = 0; i < r->nctrls; i++)
        tl_dot(w, r, 2, r->ctrls[i].ms, r->ctrls[i].value.data_id, r->ctrls[i].gateway, r->ctrls[i].state);
    for (size_t i = 0; i < r->nalarms; i++)
        tl_dot(w, r, 3, r->alarms[i].ms, r->alarms[i].step, r->alarms[i].rule, r->alarms[i].subject);
    for (size_t i = 0; i < r->nrefusals; i++)
        tl_dot(w, r, 4, r->refusals[i].ms, r->refusals[i].kind, r->refusals[i].action, r->refusals[i].reason);
    for (size_t i = 0; i < r->nchanges; i++)
        tl_dot(w, r, 5, r->changes[i].ms, r->changes[i].kind, r->changes[i].action, r->changes[i].target);
    time_axis(w, r, 110, 860, h - 26);
    puts_(w, "</svg>");
}

/* the values as JSON text [[ms, v], ...] (escaped for an attribute by the caller) */
static void values_json(hw *w, const sr_report_series *s)
{
    puts_(w, "[");
    for (size_t k = 0; k < s->n; k++) {
        putf(w, "%s[%" PRId64 ",", k ? "," : "", s->v[k].ts);
        num(w, s->v[k].v);
        puts_(w, "]");
    }
    puts_(w, "]");
}

static void chart(hw *w, const sr_report *r, const sr_report_series *s)
{
    const double x0 = 80, pw = 780, y0 = 16, ph = 180, W = 900, H = 240;
    double lo = 0, hi = 0;
    for (size_t k = 0; k < s->n; k++) {
        double a = s->downsampled ? s->v[k].min : s->v[k].v, b = s->downsampled ? s->v[k].max : s->v[k].v;
        if (!k || a < lo) lo = a;
        if (!k || b > hi) hi = b;
    }
    if (hi <= lo) { /* one level: a band around it */
        hi = lo + 1;
        lo = lo - 1;
    }
    puts_(w, "<figure class=\"chart\" data-operator=\"");
    esc(w, s->op);
    puts_(w, "\" data-data-id=\"");
    esc(w, s->data_id);
    putf(w, "\" data-mode=\"%s\" data-total=\"%" PRIu64 "\" data-count=\"%zu\" data-values=\"",
         s->downsampled ? "downsampled" : "raw", s->total, s->n);
    sr_buf tmp;
    sr_buf_init(&tmp);
    hw t = {&tmp, 0};
    values_json(&t, s);
    put(&t, "", 1);
    if (t.rc) w->rc = t.rc;
    else esc(w, (const char *)tmp.data);
    puts_(w, "\"><figcaption>");
    esc(w, s->data_id);
    puts_(w, " <span class=\"muted\">(");
    esc(w, s->op);
    puts_(w, ", ");
    esc(w, s->type);
    if (s->gateway[0]) {
        puts_(w, ", gateway ");
        esc(w, s->gateway);
    }
    putf(w, "; %" PRIu64 " values", s->total);
    if (s->downsampled) putf(w, ", downsampled: the means of %" PRId64 " ms", s->interval_ms);
    else puts_(w, ", raw");
    puts_(w, ")</span></figcaption>");
    putf(w, "<svg class=\"chart-svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>",
         W, H, W, H);
    esc(w, s->data_id);
    puts_(w, "</title><desc>");
    if (!t.rc) esc(w, (const char *)tmp.data);
    sr_buf_release(&tmp);
    puts_(w, "</desc>");
    /* the value axis: 5 ticks */
    putf(w, "<line class=\"ax\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, y0, x0, y0 + ph);
    for (int k = 0; k <= 4; k++) {
        double v = lo + (hi - lo) * k / 4.0, y = y0 + ph - ph * k / 4.0;
        putf(w, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, y, x0 + pw, y);
        putf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.6g", x0 - 6, y + 4, v);
        puts_(w, "</text>");
    }
    time_axis(w, r, x0, pw, y0 + ph);
    if (s->n) {
        puts_(w, "<polyline class=\"line\" points=\"");
        for (size_t k = 0; k < s->n; k++)
            putf(w, "%s%.1f,%.1f", k ? " " : "", xof(r, s->v[k].ts, x0, pw),
                 y0 + ph - (s->v[k].v - lo) / (hi - lo) * ph);
        puts_(w, "\"/>");
        if (s->n <= 200)
            for (size_t k = 0; k < s->n; k++)
                putf(w, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", xof(r, s->v[k].ts, x0, pw),
                     y0 + ph - (s->v[k].v - lo) / (hi - lo) * ph);
    } else
        putf(w, "<text x=\"%.1f\" y=\"%.1f\">no values in the window</text>", x0 + 10, y0 + ph / 2);
    puts_(w, "</svg></figure>");
}

static void th(hw *w, const char *const *cols, size_t n)
{
    puts_(w, "<table><thead><tr>");
    for (size_t i = 0; i < n; i++) putf(w, "<th>%s</th>", cols[i]);
    puts_(w, "</tr></thead><tbody>");
}

static void td(hw *w, const char *s)
{
    puts_(w, "<td>");
    esc(w, s);
    puts_(w, "</td>");
}

static void td_time(hw *w, int64_t ms)
{
    puts_(w, "<td>");
    if (ms) time_text(w, ms);
    puts_(w, "</td>");
}

static void sec_open(hw *w, const char *id, const char *title, size_t n)
{
    putf(w, "<section id=\"%s\" data-count=\"%zu\"><h2>%s (%zu)</h2>", id, n, title, n);
}

static void sec_close(hw *w, size_t n, size_t truncated)
{
    if (n) puts_(w, "</tbody></table>");
    else puts_(w, "<p class=\"muted\">none in the window</p>");
    if (truncated) putf(w, "<p class=\"trunc\">%zu more not shown (the cap)</p>", truncated);
    puts_(w, "</section>");
}

static void events_table(hw *w, const char *id, const char *title, const sr_report_event *x, size_t n, size_t trunc)
{
    static const char *const cols[] = {"time", "seq", "operator", "actor", "kind", "action", "target", "outcome",
                                       "reason", "detail", "from"};
    sec_open(w, id, title, n);
    if (n) th(w, cols, sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < n; i++) {
        puts_(w, "<tr>");
        td_time(w, x[i].ms);
        putf(w, "<td>%" PRIu64 "</td>", x[i].seq);
        td(w, x[i].op);
        puts_(w, "<td>");
        esc(w, x[i].actor);
        puts_(w, " <span class=\"muted\">");
        esc(w, x[i].actor_kind);
        puts_(w, "</span></td>");
        td(w, x[i].kind);
        td(w, x[i].action);
        td(w, x[i].target);
        td(w, x[i].outcome);
        td(w, x[i].reason);
        td(w, x[i].detail);
        td(w, x[i].source);
        puts_(w, "</tr>");
    }
    sec_close(w, n, trunc);
}

static void cv_text(hw *w, const sr_control_value *v)
{
    switch (v->type) {
    case SR_VT_INTEGER: putf(w, "%" PRId64, v->i); break;
    case SR_VT_BOOL: puts_(w, v->b ? "true" : "false"); break;
    case SR_VT_STRING: esc(w, v->s); break;
    default: num(w, v->f); break;
    }
}

int sr_report_html(const sr_report *r, sr_buf *out)
{
    hw w0 = {out, 0}, *w = &w0;
    puts_(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width\"><title>Incident report ");
    time_text(w, r->from_ms);
    puts_(w, " to ");
    time_text(w, r->to_ms);
    puts_(w, "</title><style>");
    puts_(w, CSS);
    puts_(w, "</style></head><body>\n<header id=\"report\"><h1>Incident report</h1><p>");
    time_text(w, r->from_ms);
    puts_(w, " to ");
    time_text(w, r->to_ms);
    puts_(w, " (both inclusive)");
    if (r->op[0]) {
        puts_(w, "; operator ");
        esc(w, r->op);
    }
    if (r->gateway[0]) {
        puts_(w, "; gateway ");
        esc(w, r->gateway);
    }
    for (size_t i = 0; i < r->npoints; i++) {
        puts_(w, i ? ", " : "; points ");
        esc(w, r->points[i]);
    }
    putf(w, ". %" PRIu64 " events of the log read", r->events);
    if (r->events) putf(w, " (seq %" PRIu64 " to %" PRIu64 ")", r->first_seq, r->last_seq);
    putf(w, "; at most %zu items a section.</p><nav>", r->cap);
    static const char *const nav[] = {"timeline",    "values", "connections", "requests",
                                      "controls", "alarms", "refusals",    "changes"};
    for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++) putf(w, "<a href=\"#%s\">%s</a>", nav[i], nav[i]);
    puts_(w, "</nav></header>\n<section id=\"timeline\"><h2>Timeline</h2>");
    timeline(w, r);
    puts_(w, "</section>\n");

    sec_open(w, "values", "Values of the points involved", r->nseries);
    puts_(w, "<div>");
    for (size_t i = 0; i < r->nseries; i++)
        if (strcmp(r->series[i].type, "string")) chart(w, r, &r->series[i]);
        else {
            puts_(w, "<p class=\"muted\">");
            esc(w, r->series[i].data_id);
            puts_(w, ": string values are not charted</p>");
        }
    puts_(w, "</div>");
    if (r->series_truncated) putf(w, "<p class=\"trunc\">%zu more points not charted</p>", r->series_truncated);
    puts_(w, "</section>\n");

    events_table(w, "connections", "Connections and disconnections", r->conns, r->nconns, r->conns_truncated);

    static const char *const rc[] = {"time", "seq",   "operator", "request", "kind",    "app",
                                     "gateways", "data points", "outcome", "code", "message", "outcome time"};
    sec_open(w, "requests", "Requests and their outcomes", r->nreqs);
    if (r->nreqs) th(w, rc, sizeof rc / sizeof rc[0]);
    for (size_t i = 0; i < r->nreqs; i++) {
        const sr_report_request *q = &r->reqs[i];
        puts_(w, "<tr>");
        td_time(w, q->ms);
        putf(w, "<td>%" PRIu64 "</td>", q->seq);
        td(w, q->op);
        td(w, q->request_id);
        td(w, q->kind);
        td(w, q->app);
        td(w, q->gateways);
        td(w, q->data_ids);
        td(w, q->state);
        td(w, q->error_code);
        td(w, q->message);
        td_time(w, q->outcome_ms);
        puts_(w, "</tr>");
    }
    sec_close(w, r->nreqs, r->reqs_truncated);

    static const char *const cc[] = {"time",  "seq",     "operator", "request", "app", "gateway", "data point",
                                     "value", "outcome", "code",     "signature"};
    sec_open(w, "controls", "Control values", r->nctrls);
    if (r->nctrls) th(w, cc, sizeof cc / sizeof cc[0]);
    for (size_t i = 0; i < r->nctrls; i++) {
        const sr_report_control *c = &r->ctrls[i];
        puts_(w, "<tr>");
        td_time(w, c->ms);
        putf(w, "<td>%" PRIu64 "</td>", c->seq);
        td(w, c->op);
        td(w, c->request_id);
        td(w, c->app);
        td(w, c->gateway);
        td(w, c->value.data_id);
        puts_(w, "<td>");
        cv_text(w, &c->value);
        puts_(w, "</td>");
        td(w, c->state);
        td(w, c->error_code);
        td(w, sr_report_sig_state(c));
        puts_(w, "</tr>");
    }
    sec_close(w, r->nctrls, r->ctrls_truncated);

    static const char *const ac[] = {"time", "seq", "operator", "alarm", "step", "rule",
                                     "subject", "level", "by", "message", "comment"};
    sec_open(w, "alarms", "Alarms", r->nalarms);
    if (r->nalarms) th(w, ac, sizeof ac / sizeof ac[0]);
    for (size_t i = 0; i < r->nalarms; i++) {
        const sr_report_alarm *a = &r->alarms[i];
        puts_(w, "<tr>");
        td_time(w, a->ms);
        putf(w, "<td>%" PRIu64 "</td>", a->seq);
        td(w, a->op);
        td(w, a->alarm_id);
        td(w, a->step);
        td(w, a->rule);
        td(w, a->subject);
        td(w, a->level);
        td(w, a->by);
        td(w, a->message);
        td(w, a->comment);
        puts_(w, "</tr>");
    }
    sec_close(w, r->nalarms, r->alarms_truncated);

    events_table(w, "refusals", "Refused messages and operations", r->refusals, r->nrefusals, r->refusals_truncated);
    events_table(w, "changes", "Configuration and privilege changes", r->changes, r->nchanges, r->changes_truncated);
    puts_(w, "\n</body></html>\n");
    return w->rc;
}
