/* api/admin_report.c -- /admin/v1: GET /admin/v1/reports/incident (issue
 * #18, R-RE-4; docs/incident-report.md, docs/admin.md "Audit"): the
 * incident report of a window, as JSON or as one HTML page, for the auditor
 * (any operator, or all) and an operator's admins (their own operator: the
 * role table's audit.read). Its route table (api/admin_int.h); the
 * dispatcher is api/admin_http.c.
 *
 * The report reads the log and the index (engine/report.c) for as long as
 * its window needs: it runs on the worker queue (sr_admin_run), never on
 * the loop. The writers are api/report.c's, the bytes `suiro report
 * incident` prints.
 *
 * INVARIANTS
 *  (1) An operator admin reads only its own operator's report: the query's
 *      operator defaults to it, and naming another is 403 (and audited).
 *  (2) Every parameter is checked before the work is queued: a bad one is
 *      400 E1001 naming it; an unknown operator, gateway or point is the
 *      builder's 404 naming it.
 */
#include "api/admin_int.h"

#include "api/report.h"
#include "codecs/rfc3339.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rctx {
    sr_report_q q;
    int html;
    char op[72], gw[72];
    char pbuf[SR_REPORT_FILTER_POINTS * 66];
    const char *pts[SR_REPORT_FILTER_POINTS];
} rctx;

static void report_work(sr_admin_work *w, void *v)
{
    rctx *x = v;
    sr_report *r = NULL;
    sr_errinfo ei;
    int rc = sr_report_build(w->eng, &x->q, &r, &ei);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", ei.msg);
        return;
    }
    sr_buf_init(&w->body);
    rc = x->html ? sr_report_html(r, &w->body) : sr_report_json_text(r, &w->body);
    sr_report_free(r);
    if (rc) {
        sr_buf_release(&w->body);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "the report could not be written: %s", sr_strerror(rc));
        return;
    }
    w->status = 200;
    w->content_type = x->html ? "text/html; charset=utf-8" : "application/json";
}

/* a time parameter (RFC 3339, now, -1h): 1 and *out, 0 absent, -1 answered */
static int time_param(const sr_route_call *c, const char *name, int64_t now_ms, int64_t *out)
{
    char v[64];
    if (!sr_http_query(c->req, name, v, sizeof v)) return 0;
    if (sr_time_parse(v, strlen(v), now_ms, out)) {
        sr_admin_bad_field(c, name, "an RFC 3339 time (2026-12-06T00:00:00Z), now or -1h");
        return -1;
    }
    return 1;
}

static void report_incident(const sr_route_call *c)
{
    const sr_admin_caller *cl = c->caller;
    rctx *x = calloc(1, sizeof *x);
    if (!x) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int f = time_param(c, "from", now_ms, &x->q.from_ms), t = f < 0 ? -1 : time_param(c, "to", now_ms, &x->q.to_ms);
    char fmt[16], cap[16];
    if (f < 0 || t < 0) goto refused;
    if (!f || !t) {
        sr_admin_bad_field(c, f ? "to" : "from", "required");
        goto refused;
    }
    if (x->q.from_ms > x->q.to_ms) {
        sr_admin_bad_field(c, "from", "after to");
        goto refused;
    }
    if (sr_http_query(c->req, "format", fmt, sizeof fmt) && (x->html = sr_report_format_parse(fmt)) < 0) {
        sr_admin_bad_field(c, "format", "json or html");
        goto refused;
    }
    if (sr_http_query(c->req, "cap", cap, sizeof cap)) {
        char *end;
        long n = strtol(cap, &end, 10);
        if (!cap[0] || *end || n < 1 || n > SR_REPORT_CAP_MAX) {
            sr_admin_bad_field(c, "cap", "an integer 1..100000");
            goto refused;
        }
        x->q.cap = (size_t)n;
    }
    if (sr_http_query(c->req, "gateway", x->gw, sizeof x->gw)) {
        if (!x->gw[0]) {
            sr_admin_bad_field(c, "gateway", "empty");
            goto refused;
        }
        x->q.gateway = x->gw;
    }
    if (sr_http_query(c->req, "point", x->pbuf, sizeof x->pbuf)) { /* dataIds, comma-separated */
        for (char *s = x->pbuf, *e; s; s = e) {
            if ((e = strchr(s, ','))) *e++ = 0;
            if (!*s || x->q.npoints == SR_REPORT_FILTER_POINTS) {
                sr_admin_bad_field(c, "point", "dataIds, comma-separated, at most 64");
                goto refused;
            }
            x->pts[x->q.npoints++] = s;
        }
        x->q.points = x->pts;
    }
    /* who may read what (invariant 1): the operator asked for, else the
     * caller's own for an operator's user, else every operator */
    sr_authz_target tg = {0};
    if (sr_http_query(c->req, "operator", x->op, sizeof x->op)) tg.operator_id = x->op;
    else if (cl->scope == SR_SCOPE_OPERATOR) tg.operator_id = cl->scope_id;
    if (!sr_admin_authorize(c, SR_ACT_AUDIT_READ, &tg)) goto refused;
    if (tg.operator_id && tg.operator_id != x->op) snprintf(x->op, sizeof x->op, "%s", tg.operator_id);
    if (tg.operator_id) x->q.op = x->op;
    if (x->q.npoints && !x->q.op) {
        sr_admin_bad_field(c, "point", "needs operator");
        goto refused;
    }
    sr_admin_run(c, report_work, x, free);
    return;
refused:
    free(x);
}

const sr_route sr_admin_report_routes[] = {
    {"GET", "/admin/v1/reports/incident", report_incident, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
};
const size_t sr_admin_report_nroutes = sizeof sr_admin_report_routes / sizeof sr_admin_report_routes[0];
