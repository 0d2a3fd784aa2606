/* tests/engine/test_report.c -- the incident report's builder
 * (engine/report.c) and its JSON writer (api/report.c) on a scripted
 * history, every event at a time the test's clock gives: sessions and
 * alive transitions with reasons, an immediate request and two controls
 * (one succeeds, one fails), an alarm raised / acknowledged / resolved, a
 * refused admin operation, a refused login, a registry change, values; and
 * another operator's events. The report has exactly those entries; the
 * filters by operator, gateway and point cut as docs/incident-report.md
 * says; the window's edges are inclusive; the caps count what they leave
 * out; bad queries are refused naming the problem. */
#include "api/report.h"
#include "engine/report.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static int64_t clock_now;
static int64_t test_clock(void) { return clock_now; }
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE, .clock_ms = test_clock};

#define T0 INT64_C(1800000000000) /* 2027-01-15T08:00:00Z */

static void submit(sr_engine *e, int built, sr_buf *b)
{
    sr_result r;
    cr_assert_eq(es_submit1(e, built, b, &r), SR_OK, "%s", r.err.msg);
}

static void reg(sr_engine *e, const char *op, sr_reg_kind kind, const char *id)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_reg_entry re = {.kind = kind, .id = id};
    submit(e, sr_cmd_registry_put(es_env_of(op), &re, &b), &b);
}

static void alive(sr_engine *e, const char *op, const char *gw, sr_alive_state st, sr_alive_reason why)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, gw, SR_ACTOR_GATEWAY, NULL, "192.0.2.1:5000"};
    sr_alive_rec a = {.kind = SR_ACTOR_GATEWAY, .id = gw, .state = st, .reason = why, .binding = "mqtt",
                      .remote = "192.0.2.1:5000"};
    submit(e, sr_cmd_alive(&env, &a, &b), &b);
}

static void session(sr_engine *e, const char *op, const char *gw, sr_session_state st, const char *why)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, gw, SR_ACTOR_GATEWAY, NULL, "192.0.2.1:5000"};
    submit(e, sr_cmd_session(&env, SR_ACTOR_GATEWAY, gw, st, "mqtt", why, &b), &b);
}

/* request id of kind to gateway gw (one part) naming data point dp; a
 * control sends value cv (protection prot or NULL) */
static void request(sr_engine *e, const char *id, sr_req_kind kind, const char *gw, const char *dp,
                    const sr_control_value *cv, const char *prot)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    const char *ids[1] = {dp};
    sr_request_rec rq = {.request_id = id, .kind = kind, .app_id = "APP1", .data_ids = ids, .n_data_ids = 1,
                         .control = cv, .n_control = cv ? 1 : 0};
    if (prot) rq.protection = (sr_slice){(const uint8_t *)prot, strlen(prot)};
    size_t lens[2];
    cr_assert_eq(sr_cmd_request_created(&env, &rq, &b), SR_OK);
    lens[0] = b.len;
    rq.gateway_id = gw;
    cr_assert_eq(sr_cmd_request_created(&env, &rq, &b), SR_OK);
    lens[1] = b.len - lens[0];
    sr_result r;
    cr_assert_eq(et_submit(e, &b, lens, 2, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
}

static void outcome(sr_engine *e, const char *id, sr_req_state st, const char *code)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"op1", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_request_transition t = {.request_id = id, .state = st, .error_code = code, .message = code[0] ? "refused" : "",
                               .gateway_id = ""};
    submit(e, sr_cmd_request_transition(&env, &t, &b), &b);
}

static void alarm(sr_engine *e, const char *state, const char *id)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"op1", id ? "admin1" : "system", id ? SR_ACTOR_USER : SR_ACTOR_SYSTEM, NULL, NULL};
    sr_alarm_step s = {.state = state, .id = id, .rule = id ? NULL : "gateway-offline", .subject = id ? NULL : "GW1",
                       .level = SR_AL_MAJOR, .source = "test", .message = id ? NULL : "GW1 is offline",
                       .comment = id ? "seen" : NULL, .auto_resolve = 1};
    submit(e, sr_cmd_alarm(&env, &s, &b), &b);
}

static void values(sr_engine *e, const char *gw, const char *dp, const double *v, size_t n, int64_t t0)
{
    uint32_t pt;
    cr_assert_eq(sr_engine_point(e, "op1", dp, &pt, NULL), SR_OK);
    sr_sample s[16];
    for (size_t i = 0; i < n; i++) s[i] = (sr_sample){.ts = t0 + (int64_t)i * 1000, .v.f = v[i]};
    sr_result r;
    cr_assert_eq(et_put(e, "op1", gw, pt, SR_VT_NUMBER, s, n, NULL, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static char alarm_id[32];

/* The history (times in s after T0):
 *   0  set-up: operators op1 and op2, gateways GW1 GW2, app APP1, points P000..P003 (P000/P002 on GW1)
 *   1  GW1 online (connect)        2  GW1's session opened
 *   3  Q1 immediate P000 to GW1    4  Q1 succeeded
 *   5  Q2 control P001=12.5 to GW2 (signed)   6  Q2 succeeded
 *   7  Q3 control P002=true to GW1            8  Q3 failed E4003
 *   9  alarm raised (GW1)  10 acknowledged  11 resolved
 *  12  an admin operation refused (E2003)     13 a login of GW2 refused
 *  14  gateway GW2 put again (a registry change)
 *  15  GW1 offline (keep-alive expired)       16 op2's GWX online
 *  values of P000 at 1..5 s, of P001 at 20..22 s (after the window of most checks) */
static sr_engine *history(void)
{
    clock_now = T0;
    sr_engine *e = es_open(&dir, "report", &OPTS);
    reg(e, "op1", SR_RG_OPERATOR, "op1");
    reg(e, "op1", SR_RG_GATEWAY, "GW1");
    reg(e, "op1", SR_RG_GATEWAY, "GW2");
    reg(e, "op1", SR_RG_APP, "APP1");
    reg(e, "op2", SR_RG_OPERATOR, "op2");
    reg(e, "op2", SR_RG_GATEWAY, "GWX");
    const sr_vtype num[1] = {SR_VT_NUMBER};
    cr_assert_eq(et_setup_masters(e, "op1", 4, num, 1), SR_OK);
    clock_now = T0 + 1000;
    alive(e, "op1", "GW1", SR_AS_ONLINE, SR_AR_CONNECT);
    clock_now = T0 + 2000;
    session(e, "op1", "GW1", SR_SS_CONNECTED, "");
    clock_now = T0 + 3000;
    request(e, "Q1", SR_RK_IMMEDIATE, "GW1", "P000", NULL, NULL);
    clock_now = T0 + 4000;
    outcome(e, "Q1", SR_RS_SUCCEEDED, "");
    clock_now = T0 + 5000;
    sr_control_value c2 = {.data_id = "P001", .type = SR_VT_NUMBER, .f = 12.5, .s = ""};
    request(e, "Q2", SR_RK_CONTROL, "GW2", "P001", &c2, "sig-of-APP1");
    clock_now = T0 + 6000;
    outcome(e, "Q2", SR_RS_SUCCEEDED, "");
    clock_now = T0 + 7000;
    sr_control_value c3 = {.data_id = "P002", .type = SR_VT_BOOL, .b = 1, .s = ""};
    request(e, "Q3", SR_RK_CONTROL, "GW1", "P002", &c3, NULL);
    clock_now = T0 + 8000;
    outcome(e, "Q3", SR_RS_FAILED, "E4003");
    clock_now = T0 + 9000;
    alarm(e, "raised", NULL);
    sr_rec r = SR_REC_INIT;
    sr_alarm a;
    cr_assert_eq(sr_list_open_alarms(e, &r), SR_OK);
    cr_assert_eq(sr_rec_next_alarm(&r, &a), 1);
    snprintf(alarm_id, sizeof alarm_id, "%s", a.id);
    sr_rec_close(&r);
    clock_now = T0 + 10000;
    alarm(e, "acknowledged", alarm_id);
    clock_now = T0 + 11000;
    alarm(e, "resolved", alarm_id);
    clock_now = T0 + 12000;
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env uenv = {"op1", "viewer1", SR_ACTOR_USER, NULL, "198.51.100.4:3000"};
    sr_admin_op op = {.method = "PUT", .route = "/admin/v1/operators/{operatorId}/gateways/{gatewayId}",
                      .target = "/admin/v1/operators/op1/gateways/GW2", .action = "setup.manage",
                      .outcome = "refused", .code = "E2003", .message = "not allowed", .status = 403};
    submit(e, sr_cmd_admin_op(&uenv, &op, &b), &b);
    clock_now = T0 + 13000;
    sr_buf_init(&b);
    sr_cmd_env genv = {"op1", "GW2", SR_ACTOR_GATEWAY, NULL, "192.0.2.2:5000"};
    submit(e, sr_cmd_auth(&genv, SR_ACTOR_GATEWAY, "GW2", 0, "password", "bad secret", &b), &b);
    clock_now = T0 + 14000;
    reg(e, "op1", SR_RG_GATEWAY, "GW2");
    clock_now = T0 + 15000;
    alive(e, "op1", "GW1", SR_AS_OFFLINE, SR_AR_KEEPALIVE_EXPIRED);
    clock_now = T0 + 16000;
    alive(e, "op2", "GWX", SR_AS_ONLINE, SR_AR_CONNECT);
    clock_now = T0 + 17000;
    const double v0[5] = {1.5, 2.5, 3.5, 4.5, 5.5}, v1[3] = {7, 8, 9};
    values(e, "GW1", "P000", v0, 5, T0 + 1000);
    values(e, "GW2", "P001", v1, 3, T0 + 20000);
    return e;
}

static sr_report *build(sr_engine *e, const sr_report_q *q)
{
    sr_report *r = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_report_build(e, q, &r, &ei), SR_OK, "%s", ei.msg);
    return r;
}

/* the section's items as "a b c|..." lines */
static void conns_of(const sr_report_event *x, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s %s %s %s %s", i ? "|" : "", x[i].op, x[i].kind, x[i].action,
                              x[i].target, x[i].reason);
}

static void reqs_of(const sr_report *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < r->nreqs; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s %s %s %s %s %s%s", i ? "|" : "", r->reqs[i].request_id,
                              r->reqs[i].kind, r->reqs[i].gateways, r->reqs[i].data_ids, r->reqs[i].state,
                              r->reqs[i].error_code, r->reqs[i].before_window ? " before" : "");
}

static void ctrls_of(const sr_report *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < r->nctrls; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s %s %s %s %s", i ? "|" : "", r->ctrls[i].request_id,
                              r->ctrls[i].gateway, r->ctrls[i].value.data_id, r->ctrls[i].state,
                              sr_report_sig_state(&r->ctrls[i]));
}

static void alarms_of(const sr_report *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < r->nalarms; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s %s %s %s", i ? "|" : "", r->alarms[i].step, r->alarms[i].rule,
                              r->alarms[i].subject, r->alarms[i].by);
}

static void series_of(const sr_report *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < r->nseries; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s:%s:%zu", i ? "|" : "", r->series[i].data_id, r->series[i].why,
                              r->series[i].n);
}

#define EQ(got, want) cr_assert_str_eq(got, want, "\n got: %s\nwant: %s", got, want)

Test(report, the_window_holds_exactly_its_events)
{
    sr_engine *e = history();
    sr_report_q q = {.from_ms = T0 + 1000, .to_ms = T0 + 16000};
    sr_report *r = build(e, &q);
    char s[2048];
    conns_of(r->conns, r->nconns, s, sizeof s);
    EQ(s, "op1 alive online gateway:GW1 connect|op1 session opened gateway:GW1 |"
          "op1 alive offline gateway:GW1 keepalive-expired|op2 alive online gateway:GWX connect");
    reqs_of(r, s, sizeof s);
    EQ(s, "Q1 immediate GW1 P000 succeeded |Q2 control GW2 P001 succeeded |Q3 control GW1 P002 failed E4003");
    ctrls_of(r, s, sizeof s);
    EQ(s, "Q2 GW2 P001 succeeded not recorded|Q3 GW1 P002 failed none");
    cr_assert_eq(r->ctrls[0].value.type, SR_VT_NUMBER);
    cr_assert_eq(r->ctrls[0].value.f, 12.5);
    cr_assert_str_eq(r->ctrls[0].app, "APP1");
    cr_assert_eq(r->ctrls[1].value.b, 1);
    alarms_of(r, s, sizeof s);
    EQ(s, "raised gateway-offline GW1 system|acknowledged gateway-offline GW1 admin1|resolved gateway-offline GW1 admin1");
    cr_assert_str_eq(r->alarms[1].comment, "seen");
    conns_of(r->refusals, r->nrefusals, s, sizeof s);
    EQ(s, "op1 admin PUT /admin/v1/operators/{operatorId}/gateways/{gatewayId} "
          "/admin/v1/operators/op1/gateways/GW2 E2003|op1 login_failed password gateway:GW2 bad secret");
    cr_assert_str_eq(r->refusals[0].actor, "viewer1");
    cr_assert_str_eq(r->refusals[0].source, "198.51.100.4:3000");
    conns_of(r->changes, r->nchanges, s, sizeof s);
    EQ(s, "op1 registry put gateway:GW2 ");
    series_of(r, s, sizeof s);
    EQ(s, "P000:request:5|P001:control:0|P002:control:0"); /* P001's values come after the window */
    cr_assert_eq(r->series[0].downsampled, 0);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(r->series[0].v[i].ts, T0 + 1000 + (int64_t)i * 1000);
        cr_assert_eq(r->series[0].v[i].v, 1.5 + (double)i);
    }
    cr_assert_eq(r->nconns + r->nreqs + r->nctrls + r->nalarms + r->nrefusals + r->nchanges, 4 + 3 + 2 + 3 + 2 + 1);
    cr_assert_eq(r->conns_truncated + r->reqs_truncated + r->alarms_truncated, 0);
    sr_report_free(r);
    es_finish(e, &dir);
}

Test(report, the_window_edges_are_inclusive)
{
    sr_engine *e = history();
    char s[2048];
    /* [3 s, 8 s]: Q1's creation at the from edge, Q3's outcome at the to edge */
    sr_report_q q = {.from_ms = T0 + 3000, .to_ms = T0 + 8000};
    sr_report *r = build(e, &q);
    reqs_of(r, s, sizeof s);
    EQ(s, "Q1 immediate GW1 P000 succeeded |Q2 control GW2 P001 succeeded |Q3 control GW1 P002 failed E4003");
    cr_assert_eq(r->nconns, 0);
    cr_assert_eq(r->nalarms, 0);
    sr_report_free(r);
    /* one ms less at each end: Q1 made before the window (its outcome in it, from the index), Q3 without one */
    q = (sr_report_q){.from_ms = T0 + 3001, .to_ms = T0 + 7999};
    r = build(e, &q);
    reqs_of(r, s, sizeof s);
    EQ(s, "Q1 immediate GW1 P000 succeeded  before|Q2 control GW2 P001 succeeded |Q3 control GW1 P002 created ");
    sr_report_free(r);
    /* a window of one instant: the alarm's acknowledgement */
    q = (sr_report_q){.from_ms = T0 + 10000, .to_ms = T0 + 10000};
    r = build(e, &q);
    alarms_of(r, s, sizeof s);
    EQ(s, "acknowledged gateway-offline GW1 admin1");
    cr_assert_eq(r->events, 1);
    sr_report_free(r);
    /* the read starts after the audit row before the window (not at the log's start) and stops at the one after */
    q = (sr_report_q){.from_ms = T0 + 15000, .to_ms = T0 + 16000};
    r = build(e, &q);
    cr_assert_eq(r->events, 2);
    cr_assert_eq(r->read, 4, "%" PRIu64 " events read: the two of the window and the two measurements after it",
                 r->read);
    sr_report_free(r);
    q = (sr_report_q){.from_ms = T0 + 9000, .to_ms = T0 + 9000};
    r = build(e, &q);
    cr_assert_eq(r->events, 1);
    /* alarms have no audit row, requests' writes have their groups'
     * summaries' (WriteAudit, issue #18): from the row before the window to
     * the one after it, not from the session's row (2 s) to the admin
     * refusal's (12 s) */
    cr_assert_eq(r->read, 4, "%" PRIu64 " events read", r->read);
    sr_report_free(r);
    /* values: their timestamps, both ends inclusive */
    const char *p0[] = {"P000"};
    q = (sr_report_q){.from_ms = T0 + 2000, .to_ms = T0 + 4000, .op = "op1", .points = p0, .npoints = 1};
    r = build(e, &q);
    cr_assert_eq(r->nseries, 1);
    cr_assert_eq(r->series[0].n, 3);
    cr_assert_eq(r->series[0].v[0].ts, T0 + 2000);
    cr_assert_eq(r->series[0].v[2].ts, T0 + 4000);
    sr_report_free(r);
    es_finish(e, &dir);
}

Test(report, filters_cut_each_section)
{
    sr_engine *e = history();
    char s[2048];
    /* an operator: the other's events are not there */
    sr_report_q q = {.from_ms = T0 + 1000, .to_ms = T0 + 16000, .op = "op2"};
    sr_report *r = build(e, &q);
    conns_of(r->conns, r->nconns, s, sizeof s);
    EQ(s, "op2 alive online gateway:GWX connect");
    cr_assert_eq(r->nreqs + r->nctrls + r->nalarms + r->nrefusals + r->nchanges + r->nseries, 0);
    sr_report_free(r);
    /* a gateway: its connections, the requests sent to it, its alarms and points, changes of it, refusals by or of it */
    q = (sr_report_q){.from_ms = T0 + 1000, .to_ms = T0 + 30000, .op = "op1", .gateway = "GW2"};
    r = build(e, &q);
    cr_assert_eq(r->nconns, 0);
    reqs_of(r, s, sizeof s);
    EQ(s, "Q2 control GW2 P001 succeeded ");
    ctrls_of(r, s, sizeof s);
    EQ(s, "Q2 GW2 P001 succeeded not recorded");
    cr_assert_eq(r->nalarms, 0);
    conns_of(r->refusals, r->nrefusals, s, sizeof s);
    EQ(s, "op1 login_failed password gateway:GW2 bad secret");
    conns_of(r->changes, r->nchanges, s, sizeof s);
    EQ(s, "op1 registry put gateway:GW2 ");
    series_of(r, s, sizeof s);
    EQ(s, "P001:control:3");
    sr_report_free(r);
    q.gateway = "GW1";
    r = build(e, &q);
    conns_of(r->conns, r->nconns, s, sizeof s);
    EQ(s, "op1 alive online gateway:GW1 connect|op1 session opened gateway:GW1 |"
          "op1 alive offline gateway:GW1 keepalive-expired");
    reqs_of(r, s, sizeof s);
    EQ(s, "Q1 immediate GW1 P000 succeeded |Q3 control GW1 P002 failed E4003");
    cr_assert_eq(r->nalarms, 3);
    cr_assert_eq(r->nrefusals, 0);
    cr_assert_eq(r->nchanges, 0);
    series_of(r, s, sizeof s);
    EQ(s, "P000:request:5|P002:control:0");
    sr_report_free(r);
    /* points: the requests, controls and alarms naming them, their gateways' connections, their values */
    const char *p[] = {"P001", "P000"};
    q = (sr_report_q){.from_ms = T0 + 1000, .to_ms = T0 + 30000, .op = "op1", .points = p, .npoints = 2};
    r = build(e, &q);
    reqs_of(r, s, sizeof s);
    EQ(s, "Q1 immediate GW1 P000 succeeded |Q2 control GW2 P001 succeeded ");
    ctrls_of(r, s, sizeof s);
    EQ(s, "Q2 GW2 P001 succeeded not recorded");
    cr_assert_eq(r->nalarms, 0); /* its subject is GW1, not a point */
    cr_assert_eq(r->nconns, 3);  /* GW1's (P000's gateway); GW2 made none */
    series_of(r, s, sizeof s);
    EQ(s, "P001:filter:3|P000:filter:5");
    cr_assert_eq(r->nrefusals, 2); /* not cut by points */
    sr_report_free(r);
    es_finish(e, &dir);
}

Test(report, caps_count_what_they_leave_out_and_many_values_are_downsampled)
{
    sr_engine *e = history();
    sr_report_q q = {.from_ms = T0, .to_ms = T0 + 30000, .cap = 1, .chart_max = 2};
    sr_report *r = build(e, &q);
    cr_assert_eq(r->nconns, 1);
    cr_assert_eq(r->conns_truncated, 3);
    cr_assert_eq(r->nreqs, 1);
    cr_assert_eq(r->reqs_truncated, 2);
    cr_assert_eq(r->nalarms, 1);
    cr_assert_eq(r->alarms_truncated, 2);
    cr_assert_eq(r->nrefusals, 1);
    cr_assert_eq(r->refusals_truncated, 1);
    cr_assert_gt(r->changes_truncated, 0); /* the set-up's */
    cr_assert_eq(r->nseries, 1);           /* Q1's P000 */
    const sr_report_series *s = &r->series[0];
    cr_assert_eq(s->downsampled, 1);
    cr_assert_eq(s->total, 5);
    cr_assert_leq(s->n, 2);
    double sum = 0;
    uint64_t cnt = 0;
    for (size_t i = 0; i < s->n; i++) {
        sum += s->v[i].v * (double)s->v[i].count;
        cnt += s->v[i].count;
    }
    cr_assert_eq(cnt, 5);
    cr_assert_float_eq(sum, 1.5 + 2.5 + 3.5 + 4.5 + 5.5, 1e-9);
    sr_report_free(r);
    es_finish(e, &dir);
}

Test(report, bad_queries_are_refused_naming_the_problem)
{
    sr_engine *e = history();
    sr_report *r = NULL;
    sr_errinfo ei;
    const char *px[] = {"PXXX"}, *p0[] = {"P000"}, *twice[] = {"P000", "P000"};
    struct {
        sr_report_q q;
        int rc;
        const char *msg;
    } cases[] = {
        {{.from_ms = T0 + 2, .to_ms = T0 + 1}, SR_EINVAL, "from: after to"},
        {{.from_ms = T0, .to_ms = T0 + 1, .op = "nobody"}, SR_ENOTFOUND, "operator: no operator 'nobody'"},
        {{.from_ms = T0, .to_ms = T0 + 1, .op = "op1", .points = px, .npoints = 1}, SR_ENOTFOUND,
         "point: no data point 'PXXX' of operator 'op1'"},
        {{.from_ms = T0, .to_ms = T0 + 1, .points = p0, .npoints = 1}, SR_EINVAL, "point: needs an operator"},
        {{.from_ms = T0, .to_ms = T0 + 1, .op = "op1", .points = twice, .npoints = 2}, SR_EINVAL,
         "point: 'P000' named twice"},
        {{.from_ms = T0, .to_ms = T0 + 1, .op = "op1", .gateway = "GWX"}, SR_ENOTFOUND,
         "gateway: no gateway 'GWX' of operator 'op1'"},
        {{.from_ms = T0, .to_ms = T0 + 1, .gateway = "a b"}, SR_EINVAL, "gateway: not an id ([A-Za-z0-9._-]{1,64})"},
        {{.from_ms = T0, .to_ms = T0 + 1, .cap = SR_REPORT_CAP_MAX + 1}, SR_EINVAL, "cap: at most 100000 items a section"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(sr_report_build(e, &cases[i].q, &r, &ei), cases[i].rc, "case %zu", i);
        cr_assert_null(r, "case %zu", i);
        cr_assert_str_eq(ei.msg, cases[i].msg, "case %zu", i);
    }
    es_finish(e, &dir);
}

Test(report, json_and_html_hold_the_entries_and_escape_the_log)
{
    sr_engine *e = history();
    /* a master named like a script: a change whose target carries it */
    clock_now = T0 + 18000;
    reg(e, "op1", SR_RG_APP, "APPX");
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env uenv = {"op1", "viewer1", SR_ACTOR_USER, NULL, "198.51.100.4:3000"};
    sr_admin_op op = {.method = "GET", .route = "/admin/v1/x", .target = "<script>alert(1)</script>",
                      .action = "", .outcome = "refused", .code = "E2003", .message = "no", .status = 403};
    submit(e, sr_cmd_admin_op(&uenv, &op, &b), &b);
    sr_report_q q = {.from_ms = T0 + 1000, .to_ms = T0 + 18000, .op = "op1"};
    sr_report *r = build(e, &q);
    sr_buf j, h;
    sr_buf_init(&j);
    sr_buf_init(&h);
    cr_assert_eq(sr_report_json_text(r, &j), SR_OK);
    cr_assert_eq(sr_report_html(r, &h), SR_OK);
    cr_assert_eq(sr_buf_append(&j, "", 1), SR_OK);
    cr_assert_eq(sr_buf_append(&h, "", 1), SR_OK);
    const char *js = (const char *)j.data, *hs = (const char *)h.data;
    cr_assert(strstr(js, "\"window\":{\"from\":\"2027-01-15T08:00:01.000Z\",\"to\":\"2027-01-15T08:00:18.000Z\"}"), "%s", js);
    cr_assert(strstr(js, "\"requestId\":\"Q2\",\"app\":\"APP1\",\"gateway\":\"GW2\",\"dataId\":\"P001\",\"value\":12.5,"
                         "\"state\":\"succeeded\",\"signature\":\"not recorded\""),
              "%s", js);
    cr_assert(strstr(js, "\"value\":true,\"state\":\"failed\",\"signature\":\"none\",\"errorCode\":\"E4003\""), "%s", js);
    cr_assert(strstr(js, "\"values\":[[1800000001000,1.5],[1800000002000,2.5],[1800000003000,3.5],"
                         "[1800000004000,4.5],[1800000005000,5.5]]"),
              "%s", js);
    cr_assert(strstr(js, "\"target\":\"<script>alert(1)</script>\""), "%s", js);
    /* HTML: one page, no script, no URL; the log's strings as text */
    cr_assert(!strstr(hs, "<script"), "an unescaped <script> in the page");
    cr_assert(strstr(hs, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    cr_assert(!strstr(hs, "http://") && !strstr(hs, "https://") && !strstr(hs, " src="));
    cr_assert(strstr(hs, "data-data-id=\"P000\" data-mode=\"raw\" data-total=\"5\" data-count=\"5\" data-values=\""
                         "[[1800000001000,1.5],[1800000002000,2.5],[1800000003000,3.5],[1800000004000,4.5],"
                         "[1800000005000,5.5]]\""),
              "%s", hs);
    static const char *const ids[] = {"timeline", "values", "connections", "requests",
                                      "controls", "alarms", "refusals",    "changes"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char t[64];
        snprintf(t, sizeof t, "<section id=\"%s\"", ids[i]);
        cr_assert(strstr(hs, t), "no section %s", ids[i]);
    }
    sr_buf_release(&j);
    sr_buf_release(&h);
    sr_report_free(r);
    es_finish(e, &dir);
}

Test(report, the_check_names_each_broken_invariant)
{
    sr_engine *e = history();
    sr_report_q q = {.from_ms = T0 + 1000, .to_ms = T0 + 16000, .chart_max = 3};
    sr_report *r = build(e, &q);
    cr_assert_null(sr_report_check(r, 3));
    size_t cap = r->cap;
    r->cap = 1;
    cr_assert_str_eq(sr_report_check(r, 3), "(1) a section holds more than cap items");
    r->cap = cap;
    uint64_t s0 = r->reqs[0].seq;
    r->reqs[0].seq = r->reqs[1].seq;
    cr_assert_str_eq(sr_report_check(r, 3), "(4) a section's items are not in log order");
    r->reqs[0].seq = s0;
    cr_assert_null(sr_report_check(r, 3));
    cr_assert_eq(r->series[0].downsampled, 1); /* 5 values > 3: buckets */
    cr_assert_eq(r->series[0].total, 5);
    cr_assert_leq(r->series[0].n, 3);
    sr_report_free(r);
    q.chart_max = 0;
    r = build(e, &q);
    cr_assert_str_eq(sr_report_check(r, 4), "(5) a series holds more than chart_max values");
    r->series[0].total = 4;
    cr_assert_str_eq(sr_report_check(r, 0), "(5) a raw series' total is not its count");
    r->series[0].total = 5;
    int64_t t = r->series[0].v[1].ts;
    r->series[0].v[1].ts = r->series[0].v[0].ts;
    cr_assert_str_eq(sr_report_check(r, 0), "(5) a series' values are not in time order");
    r->series[0].v[1].ts = t;
    cr_assert_null(sr_report_check(r, 0));
    sr_report_free(r);
    es_finish(e, &dir);
}
