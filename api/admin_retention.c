/* api/admin_retention.c -- retention (issue #16, R-ST-6; docs/retention.md,
 * docs/admin.md "Retention"): an operator's periods per class (its
 * RG_RETENTION registry entries over the [retention] defaults), setting one,
 * and a sweep forced now. An audit period below [retention]
 * audit_floor_days is a privilege change: the two-person rule takes it
 * (sr_admin_privileged). The sweep and the writes run on the worker queue
 * (they wait for the engine). Its route table is sr_admin_retention_routes
 * (admin_int.h). */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "codecs/ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rctx {
    char op[72], cls[72];
    uint32_t days;
    sr_retention_cfg cfg;
} rctx;

static rctx *ctx_new(const sr_route_call *c)
{
    rctx *x = calloc(1, sizeof *x);
    if (!x) {
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    x->cfg = sr_admin_conf_of(c)->retention;
    const char *op = sr_route_param(c, "operatorId"), *cls = sr_route_param(c, "class");
    snprintf(x->op, sizeof x->op, "%s", op ? op : "");
    snprintf(x->cls, sizeof x->cls, "%s", cls ? cls : "");
    return x;
}

static void list_work(sr_admin_work *w, void *v)
{
    rctx *x = v;
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(w->eng, x->op, SR_RG_RETENTION, &r);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "retention periods of %s: %s", x->op, sr_strerror(rc));
        return;
    }
    json_t *arr = json_array();
    sr_reg_entry re;
    while ((rc = sr_rec_next_registry(&r, &re)) == 1)
        json_array_append_new(arr, json_pack("{s:s,s:i}", "class", re.id, "days", (int)re.retention_days));
    sr_rec_close(&r);
    w->answer = json_pack("{s:s,s:o,s:{s:i,s:i,s:i,s:i}}", "operatorId", x->op, "periods", arr, "defaults", "days",
                          (int)x->cfg.default_days, "auditDays", (int)x->cfg.audit_days, "auditFloorDays",
                          (int)x->cfg.audit_floor_days, "messageIdWindowS", (int)x->cfg.message_id_window_s);
}

static void periods_list(const sr_route_call *c)
{
    rctx *x = ctx_new(c);
    if (x) sr_admin_run(c, list_work, x, free);
}

static void put_work(sr_admin_work *w, void *v)
{
    rctx *x = v;
    sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = x->cls, .retention_days = x->days};
    sr_cmd_env env = sr_admin_work_env(w, x->op);
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_registry_put(&env, &re, &b);
    /* an audit period shorter than the floor (0 is for ever, never shorter) */
    if (!strcmp(x->cls, "audit") && x->days && x->days < x->cfg.audit_floor_days) {
        char summary[160];
        snprintf(summary, sizeof summary, "audit retention of %s: %u days, below the floor of %u", x->op, x->days,
                 x->cfg.audit_floor_days);
        sr_admin_privileged(w, SR_US_OPERATOR, x->op, SR_ACT_SETUP_MANAGE, summary, rc, &b);
        return;
    }
    if (sr_admin_work_submit(w, rc, &b)) return;
    w->answer = json_pack("{s:s,s:s,s:i}", "operatorId", x->op, "class", x->cls, "days", (int)x->days);
}

static void period_put(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    json_t *d = json_object_get(body, "days");
    json_int_t days = json_is_integer(d) ? json_integer_value(d) : -1;
    json_decref(body);
    if (days < 0 || days > 36500) return sr_admin_bad_field(c, "days", "an integer from 0 (for ever) to 36500");
    const char *cls = sr_route_param(c, "class");
    if (!cls || !sr_id_str_ok(cls) || !strcmp(cls, "message_ids"))
        return sr_admin_bad_field(c, "class", "audit, default or a data point's class (an id; not message_ids)");
    rctx *x = ctx_new(c);
    if (!x) return;
    x->days = (uint32_t)days;
    sr_admin_run(c, put_work, x, free);
}

static void run_work(sr_admin_work *w, void *v)
{
    rctx *x = v;
    sr_retention_report rep;
    sr_errinfo ei;
    int rc = sr_engine_retention_sweep(w->eng, &x->cfg, w->caller.user, &rep, &ei);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "retention: %s", ei.msg[0] ? ei.msg : sr_strerror(rc));
        return;
    }
    w->answer = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "events",
                          (json_int_t)rep.events, "chunks", (json_int_t)rep.chunks, "auditRows", (json_int_t)rep.audit,
                          "messageIds", (json_int_t)rep.msgids, "keysDestroyed", (json_int_t)rep.keys_destroyed,
                          "keysHeld", (json_int_t)rep.keys_held, "documents", (json_int_t)rep.documents, "files",
                          (json_int_t)rep.files, "requests", (json_int_t)rep.requests, "monitors",
                          (json_int_t)rep.monitors, "blobs", (json_int_t)rep.blobs, "segmentsDropped",
                          (json_int_t)rep.segments_dropped, "recordsDropped", (json_int_t)rep.records_dropped,
                          "configCarried", (json_int_t)rep.carried, "segmentHeld", rep.seg_held);
}

static void retention_run(const sr_route_call *c)
{
    rctx *x = ctx_new(c);
    if (x) sr_admin_run(c, run_work, x, free);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_retention_routes[] = {
    {"GET", "/admin/v1/operators/{operatorId}/retention", periods_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/retention/{class}", period_put, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", "/admin/v1/retention/run", retention_run, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_NONE},
};
const size_t sr_admin_retention_nroutes = sizeof sr_admin_retention_routes / sizeof sr_admin_retention_routes[0];
