/*
 * api/admin_alarms.c -- /admin/v1: alarms (issue #17, R-MO-3;
 * docs/monitoring.md "Alarms", docs/admin.md "Alarms"): list them with
 * filters, show one, acknowledge or resolve it with a comment.
 *
 * ROUTES (sr_admin_alarms_routes; action column 0: the paths name no
 * target, each handler checks the alarm's own operator)
 *   GET  /admin/v1/alarms[?operator=&state=&level=&rule=&since=&until=]
 *   GET  /admin/v1/alarms/{alarmId}
 *   POST /admin/v1/alarms/{alarmId}/ack       {"comment": optional}
 *   POST /admin/v1/alarms/{alarmId}/resolve   {"comment": optional}
 *
 * CONTRACT
 *  - Who sees and moves what, with the actions there are (engine/authz.h):
 *    an operator's alarm is read with setup.read on its operator and
 *    acknowledged or resolved with setup.manage on it (its operator admins;
 *    its general users read); a platform alarm (operator "": disk, clock,
 *    writer) is the platform admins' (tenants.manage) for both.
 *  - An alarm the caller may not read is not shown: 404, the same as one
 *    that does not exist. One it reads but may not move: 403.
 *  - The step is an AlarmEvent of the alarm's operator, the caller its
 *    actor, the peer its source; the engine keeps steps forward only (a
 *    second acknowledgement or a resolved alarm's step: 409 naming who).
 *  - The list is every alarm the caller may read in the order they were
 *    raised, filtered: state (raised, acknowledged, resolved, or "open":
 *    raised or acknowledged), level (warning, minor, major), rule,
 *    operator ("" is not a filter; "platform": the platform's), since and
 *    until (RFC 3339; the raise time in [since, until)).
 */
#include "api/admin_int.h"

#include "api/alarms.h"
#include "api/httpu.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the action a caller needs to read (manage 0) or move (1) alarm a */
static int allowed(const sr_route_call *c, const sr_alarm *a, int manage)
{
    sr_authz_target t = {.operator_id = a->op[0] ? a->op : NULL};
    sr_authz_action act = !a->op[0] ? SR_ACT_TENANTS_MANAGE : manage ? SR_ACT_SETUP_MANAGE : SR_ACT_SETUP_READ;
    return sr_admin_allows(c, act, &t);
}

json_t *sr_alarm_json(const sr_alarm *a)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:b,s:s}", "alarmId", a->id, "operatorId", a->op,
                          "rule", a->rule, "subject", a->subject, "level", sr_alarm_level_name(a->level), "state",
                          a->state, "message", a->message, "source", a->source, "count", (int)a->count,
                          "autoResolve", a->auto_resolve, "raisedBy", a->raised_by);
    if (!o) return NULL;
    sr_admin_put_time(o, "raisedAt", a->raised_ms);
    sr_admin_put_time(o, "lastRaisedAt", a->last_ms);
    if (a->acked_ms) {
        json_object_set_new(o, "acknowledgedBy", json_string(a->acked_by));
        sr_admin_put_time(o, "acknowledgedAt", a->acked_ms);
        if (a->ack_comment[0]) json_object_set_new(o, "acknowledgeComment", json_string(a->ack_comment));
    }
    if (a->resolved_ms) {
        json_object_set_new(o, "resolvedBy", json_string(a->resolved_by));
        sr_admin_put_time(o, "resolvedAt", a->resolved_ms);
        json_object_set_new(o, "autoResolved", json_boolean(a->auto_resolved));
        if (a->resolve_comment[0]) json_object_set_new(o, "resolveComment", json_string(a->resolve_comment));
    }
    return o;
}

static int query_time(h2o_req_t *req, const char *name, int64_t *ms)
{
    char v[64];
    int k = sr_http_query(req, name, v, sizeof v);
    return k == 0 ? 0 : k < 0 || sr_rfc3339_parse(v, strlen(v), ms) ? -1 : 0;
}

int sr_alarm_filter_parse(h2o_req_t *req, sr_alarm_filter *f, const char **field, const char **why)
{
    memset(f, 0, sizeof *f);
    char lv[16] = "";
    *field = "operator", *why = "too long";
    if (sr_http_query(req, "operator", f->op, sizeof f->op) < 0) return -1;
    *field = "rule";
    if (sr_http_query(req, "rule", f->rule, sizeof f->rule) < 0) return -1;
    *field = "state", *why = "one of open, raised, acknowledged, resolved";
    if (sr_http_query(req, "state", f->state, sizeof f->state) < 0 ||
        (f->state[0] && strcmp(f->state, "open") && strcmp(f->state, "raised") && strcmp(f->state, "acknowledged") &&
         strcmp(f->state, "resolved")))
        return -1;
    sr_alarm_level l;
    *field = "level", *why = "one of warning, minor, major";
    if (sr_http_query(req, "level", lv, sizeof lv) < 0 || (lv[0] && sr_alarm_level_parse(lv, &l))) return -1;
    f->level = lv[0] ? (int)l : 0;
    *why = "an RFC 3339 time";
    *field = "since";
    if (query_time(req, "since", &f->since)) return -1;
    *field = "until";
    return query_time(req, "until", &f->until);
}

/* the list's query; 0, or -1 answered */
static int filter_parse(const sr_route_call *c, sr_alarm_filter *f)
{
    const char *field, *why;
    if (!sr_alarm_filter_parse(c->req, f, &field, &why)) return 0;
    sr_admin_bad_field(c, field, why);
    return -1;
}

int sr_alarm_filter_keeps(const sr_alarm_filter *f, const sr_alarm *a)
{
    if (f->op[0] && strcmp(f->op, !strcmp(f->op, "platform") && !a->op[0] ? "platform" : a->op)) return 0;
    if (f->rule[0] && strcmp(f->rule, a->rule)) return 0;
    if (f->level && (int)a->level != f->level) return 0;
    if (f->state[0] && (!strcmp(f->state, "open") ? !strcmp(a->state, "resolved") : !!strcmp(f->state, a->state)))
        return 0;
    if (f->since && a->raised_ms < f->since) return 0;
    if (f->until && a->raised_ms >= f->until) return 0;
    return 1;
}

static void list_alarms(const sr_route_call *c)
{
    sr_alarm_filter f;
    if (filter_parse(c, &f)) return;
    sr_rec h = SR_REC_INIT;
    int rc = sr_list_alarms(sr_admin_engine(c), &h);
    if (rc) {
        sr_rec_close(&h);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *arr = json_array();
    sr_alarm a;
    int k;
    while (arr && (k = sr_rec_next_alarm(&h, &a)) != 0) {
        if (k < 0 || !allowed(c, &a, 0) || !sr_alarm_filter_keeps(&f, &a)) continue; /* one that does not decode: skipped */
        json_t *o = sr_alarm_json(&a);
        if (o) json_array_append_new(arr, o);
    }
    sr_rec_close(&h);
    json_t *o = json_pack("{s:o}", "alarms", arr);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* The alarm of the path, if the caller may read it: 1 with *a in h; else
 * answered (404: none, or not the caller's to see) and 0. */
static int find(const sr_route_call *c, sr_rec *h, sr_alarm *a)
{
    const char *id = sr_route_param(c, "alarmId");
    if (!id) {
        sr_admin_bad_field(c, "alarmId", "too long");
        return 0;
    }
    int rc = sr_read_alarm(sr_admin_engine(c), id, h, a);
    if (rc == SR_OK && allowed(c, a, 0)) return 1;
    if (rc == SR_OK || rc == SR_ENOTFOUND) {
        char m[200];
        snprintf(m, sizeof m, "alarm %s: no such alarm among those you may see", id);
        sr_admin_audit_refused(c, SR_WIRE_UNKNOWN, m);
        sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, m, NULL);
    } else
        sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    return 0;
}

static void get_alarm(const sr_route_call *c)
{
    sr_rec h = SR_REC_INIT;
    sr_alarm a;
    if (find(c, &h, &a)) {
        json_t *o = sr_alarm_json(&a);
        sr_http_jsonv(c->req, 200, o);
        json_decref(o);
    }
    sr_rec_close(&h);
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ack (resolve 0) or resolve: {"comment": optional string, at most 1000 bytes} */
static void step(const sr_route_call *c, int resolve)
{
    char comment[1001] = "";
    if (c->req->entity.len) {
        json_t *body = sr_admin_body(c);
        if (!body) return;
        json_t *j = json_object_get(body, "comment");
        const char *s = json_string_value(j);
        if ((j && !s) || (s && strlen(s) >= sizeof comment)) {
            json_decref(body);
            return sr_admin_bad_field(c, "comment", j && !s ? "must be a string" : "at most 1000 bytes");
        }
        if (s) snprintf(comment, sizeof comment, "%s", s);
        json_decref(body);
    }
    sr_rec h = SR_REC_INIT;
    sr_alarm a;
    if (!find(c, &h, &a)) return sr_rec_close(&h);
    if (!allowed(c, &a, 1)) {
        char m[200];
        snprintf(m, sizeof m, "alarm %s: you may see it, not %s it (%s on %s%s)", a.id,
                 resolve ? "resolve" : "acknowledge", a.op[0] ? "setup.manage" : "tenants.manage",
                 a.op[0] ? "operator " : "the platform", a.op);
        sr_admin_audit_refused(c, SR_WIRE_FORBIDDEN, m);
        sr_rec_close(&h);
        return sr_http_result(c->req, 0, SR_WIRE_FORBIDDEN, m, NULL);
    }
    const sr_admin_caller *cl = c->caller;
    sr_cmd_env env = sr_admin_env(c, a.op);
    sr_alarm_step st = {.state = resolve ? "resolved" : "acknowledged", .id = a.id, .comment = comment};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_alarm(&env, &st, &b);
    /* the answer: the alarm as this step leaves it (the engine refuses a
     * step it is past, 409, whatever was read here) */
    int64_t now = wall_ms();
    sr_alarm n = a;
    n.state = st.state;
    if (resolve) n.resolved_by = cl->user, n.resolved_ms = now, n.resolve_comment = comment, n.auto_resolved = 0;
    else n.acked_by = cl->user, n.acked_ms = now, n.ack_comment = comment;
    json_t *o = sr_alarm_json(&n);
    sr_rec_close(&h);
    sr_admin_submit(c, rc, &b, 200, o);
}

static void ack(const sr_route_call *c) { step(c, 0); }
static void resolve(const sr_route_call *c) { step(c, 1); }

const sr_route sr_admin_alarms_routes[] = {
    {"GET", "/admin/v1/alarms", list_alarms, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/alarms/{alarmId}", get_alarm, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"POST", "/admin/v1/alarms/{alarmId}/ack", ack, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
    {"POST", "/admin/v1/alarms/{alarmId}/resolve", resolve, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},
};
const size_t sr_admin_alarms_nroutes = sizeof sr_admin_alarms_routes / sizeof *sr_admin_alarms_routes;
