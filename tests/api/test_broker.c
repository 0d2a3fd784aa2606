/* tests/api/test_broker.c -- the broker's request and monitor lifecycle
 * (api/broker.h) in process, against a real engine in a temporary directory
 * (tests/support/brokertest.h): a request handed to its gateway, answered,
 * and its status; an async request; a gateway offline; a monitor STARTING ->
 * RUNNING -> STOPPING -> STOPPED with its parts handed out and acknowledged;
 * endAt in the past; the quotas; the certificates; the grant patterns.
 * tests/api/test_broker_answers.c checks what a gateway may answer;
 * tests/integration/test_requests.py drives the same through the binary. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/gwif_json.h"
#include "brokertest.h"
#include "codecs/events.pb-c.h"

static const char *SHEET =
    "#suiro-setup-sheet v1\n"
    "[operator]\nid,name\nbl,Broker lifecycle\n\n"
    "[gateways]\nid,name,secret\nG1,g1,broker-g1-secret-01\nG2,g2,broker-g2-secret-01\n\n"
    "[apps]\nid,name,secret,push_url\nA1,a1,broker-a1-secret-01,\n\n"
    "[facilities]\nid,name\nF,f\n\n"
    "[equipment]\nid,facility,name\nE,F,e\n\n"
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\nD2,E,G2,d2\n\n"
    "[datapoints]\nid,device,name,type,unit,min,max,kind\n"
    "N,D1,n,number,m,0,100,both\nM,D1,m,number,,,,both\nY,D2,y,number,,,,measure\n\n"
    "[grants]\napp,datapoint,access\nA1,N,both\nA1,M,both\nA1,Y,read\n";

static bt t;
static void setup(void)
{
    static const char *const gws[] = {"G1"}; /* G2 stays offline */
    cr_assert_eq(bt_open(&t, SHEET, "bl", gws, 1), SR_OK);
}
static void teardown(void) { bt_close(&t); }
TestSuite(broker, .init = setup, .fini = teardown, .timeout = 60);

#define IMM SUIRO__V1__REQUEST_KIND__RK_IMMEDIATE

typedef struct app_ans {
    int done, status;
    json_t *body;
    void *waiter;
} app_ans;

static void on_app(void *ctx, int status, json_t *body)
{
    app_ans *a = ctx;
    a->done++;
    a->status = status;
    json_decref(a->body);
    a->body = json_incref(body);
}

static void forget(app_ans *a)
{
    if (!a->done && a->waiter) sr_broker_detach(t.b, a->waiter);
    json_decref(a->body);
    memset(a, 0, sizeof *a);
}

static const char *body_code(json_t *body)
{
    return json_string_value(json_object_get(json_object_get(body, "result"), "code"));
}

static sr_target target(const char *id, const char *gw)
{
    sr_target tg;
    memset(&tg, 0, sizeof tg);
    snprintf(tg.data_id, sizeof tg.data_id, "%s", id);
    snprintf(tg.gw, sizeof tg.gw, "%s", gw);
    return tg;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until a->done or `handed` requests were handed out in all,
 * at most ms milliseconds (never blocking in the loop). */
static void run_for(app_ans *a, size_t handed, int ms)
{
    int64_t until = mono_ms() + ms;
    while (!(a && a->done) && json_array_size(t.handed) < handed && mono_ms() < until) {
        uv_run(&t.loop, UV_RUN_NOWAIT);
        usleep(200);
    }
}
#define run_until(a, handed) run_for((a), (handed), 20000)

typedef bt_gw_ans gw_ans;

/* body (JSON text) from gw on suffix as type; the acknowledgement's code. */
static const char *gw_send(const char *gw, const char *suffix, const char *type, const char *body, gw_ans *g)
{
    int rc = bt_gw_send(&t, "bl", gw, suffix, type, body, g);
    cr_assert_eq(rc, 0, "%s: %s", rc == -1 ? "the envelope does not parse" : rc == -2 ? "no answer" : "answered twice",
                 g->msg);
    return g->code;
}

static const char *status_of(const char *rid, json_t **out)
{
    cr_assert_eq(sr_broker_request_status(t.b, "bl", "A1", rid, out), SR_OK);
    return json_string_value(json_object_get(*out, "status"));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- requests ---------------------------------------------------------------- */

Test(broker, an_immediate_request_is_handed_out_answered_and_kept)
{
    sr_target tg[] = {target("N", "G1"), target("M", "G1")};
    app_ans a = {0};
    a.waiter = sr_broker_request(t.b, "bl", "A1", IMM, tg, 2, 60000, 0, NULL, NULL, on_app, &a);
    cr_assert_not_null(a.waiter, "answered at once: %d", a.status);
    run_until(&a, 1);
    json_t *r = bt_request(&t, "G1", "IMMEDIATE", 0);
    cr_assert_not_null(r, "no IMMEDIATE handed to G1");
    cr_assert_not(a.done, "the app was answered before the gateway");
    cr_expect_eq(json_array_size(json_object_get(r, "dataIds")), 2);
    cr_expect(json_is_string(json_object_get(r, "deadline")), "no deadline");
    char rid[40];
    snprintf(rid, sizeof rid, "%s", json_string_value(json_object_get(r, "requestId")));
    json_t *st = NULL;
    const char *s = status_of(rid, &st);
    cr_expect(s && strcmp(s, "SUCCEEDED"), "already %s", s);
    json_decref(st);
    gw_ans g;
    char body[512];
    snprintf(body, sizeof body,
             "{\"requestId\":\"%s\",\"values\":[{\"dataId\":\"N\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":4},"
             "{\"dataId\":\"M\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":5}],\"result\":\"0\"}",
             rid);
    cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "0", "%s", g.msg);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(json_array_size(json_object_get(a.body, "values")), 2);
    cr_expect_str_eq(status_of(rid, &st), "SUCCEEDED");
    cr_expect_eq(json_array_size(json_object_get(st, "values")), 2);
    json_decref(st);
    /* the same answer again is not a second outcome */
    cr_expect_str_neq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "", "%s", g.msg);
    cr_expect_eq(a.done, 1, "the app was answered twice");
    forget(&a);
}

Test(broker, an_async_request_is_answered_at_once_and_its_status_follows)
{
    sr_target tg[] = {target("N", "G1")};
    app_ans a = {0};
    a.waiter = sr_broker_request(t.b, "bl", "A1", IMM, tg, 1, 60000, 1, NULL, NULL, on_app, &a);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_expect_eq(a.status, 202);
    const char *rid0 = json_string_value(json_object_get(a.body, "requestId"));
    cr_assert_not_null(rid0);
    char rid[40];
    snprintf(rid, sizeof rid, "%s", rid0);
    cr_expect_str_eq(json_string_value(json_object_get(a.body, "status")), "PENDING");
    run_until(NULL, 1);
    json_t *r = bt_request(&t, "G1", "IMMEDIATE", 0);
    cr_assert_not_null(r);
    cr_expect_str_eq(json_string_value(json_object_get(r, "requestId")), rid);
    gw_ans g;
    char body[512];
    snprintf(body, sizeof body,
             "{\"requestId\":\"%s\",\"values\":[{\"dataId\":\"N\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":1}],"
             "\"result\":\"0\"}",
             rid);
    cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "0", "%s", g.msg);
    /* the outcome is durable when the gateway is acknowledged; the status follows on the loop */
    json_t *st = NULL;
    int64_t until = mono_ms() + 20000;
    while (strcmp(status_of(rid, &st), "SUCCEEDED") && mono_ms() < until) {
        json_decref(st);
        uv_run(&t.loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    cr_expect_str_eq(json_string_value(json_object_get(st, "status")), "SUCCEEDED");
    cr_expect_eq(json_array_size(json_object_get(st, "values")), 1);
    json_decref(st);
    cr_expect_eq(a.done, 1);
    /* another app's id, and an id that never was */
    cr_expect_eq(sr_broker_request_status(t.b, "bl", "A9", rid, &st), SR_ENOTFOUND);
    cr_expect_eq(sr_broker_request_status(t.b, "bl", "A1", "R0000000000000000", &st), SR_ENOTFOUND);
    forget(&a);
}

Test(broker, a_request_to_a_gateway_that_is_offline_is_e4001)
{
    sr_target tg[] = {target("Y", "G2")};
    app_ans a = {0};
    a.waiter = sr_broker_request(t.b, "bl", "A1", IMM, tg, 1, 60000, 0, NULL, NULL, on_app, &a);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_expect_eq(a.status, 503);
    cr_expect_str_eq(body_code(a.body), "E4001");
    cr_expect_null(bt_request(&t, "G2", "IMMEDIATE", 0));
    forget(&a);
}

Test(broker, the_request_quota_refuses_one_more_with_e9002)
{
    sr_broker_set_limits(t.b, 1, 1, 0, 0);
    sr_target tg[] = {target("N", "G1")};
    app_ans a = {0}, b = {0};
    a.waiter = sr_broker_request(t.b, "bl", "A1", IMM, tg, 1, 60000, 0, NULL, NULL, on_app, &a);
    run_until(&a, 1);
    cr_assert_not(a.done);
    b.waiter = sr_broker_request(t.b, "bl", "A1", IMM, tg, 1, 60000, 0, NULL, NULL, on_app, &b);
    cr_assert_eq(bt_run_until(&t, &b.done), 0);
    cr_expect_str_eq(body_code(b.body), "E9002");
    cr_expect_geq(b.status, 400);
    cr_expect_eq(json_array_size(t.handed), 1, "the refused request was handed out");
    forget(&a);
    forget(&b);
}

/* ---- monitors ---------------------------------------------------------------- */

static const char *list_status(const char *mid)
{
    static char st[32];
    json_t *items = NULL;
    cr_assert_eq(sr_broker_monitor_list(t.b, "bl", "A1", &items), SR_OK);
    size_t i;
    json_t *it;
    st[0] = 0;
    json_array_foreach(items, i, it)
    {
        if (!strcmp(json_string_value(json_object_get(it, "monitorId")), mid))
            snprintf(st, sizeof st, "%s", json_string_value(json_object_get(it, "status")));
    }
    json_decref(items);
    return st;
}

static void monitor_ack(const char *mid, const char *action)
{
    char body[256];
    gw_ans g;
    snprintf(body, sizeof body, "{\"monitorId\":\"%s\",\"action\":\"%s\",\"result\":\"0\"}", mid, action);
    cr_assert_str_eq(gw_send("G1", "ack/monitor", "GW_MONITOR_ACK", body, &g), "0", "%s", g.msg);
}

Test(broker, a_monitor_goes_starting_running_stopping_stopped)
{
    sr_target tg[] = {target("N", "G1"), target("M", "G1")};
    app_ans a = {0};
    int64_t end = now_ms() + 3600 * 1000;
    sr_broker_monitor_start(t.b, "bl", "A1", tg, 2, 1000, 0, end, on_app, &a);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_assert_eq(a.status, 201, "%s", body_code(a.body));
    char mid[40];
    snprintf(mid, sizeof mid, "%s", json_string_value(json_object_get(a.body, "monitorId")));
    cr_expect_str_eq(json_string_value(json_object_get(a.body, "status")), "STARTING");
    run_until(NULL, 1);
    json_t *r = bt_request(&t, "G1", "PERIODIC_START", 0);
    cr_assert_not_null(r, "no PERIODIC_START handed to G1");
    cr_expect_str_eq(json_string_value(json_object_get(r, "monitorId")), mid);
    cr_expect_eq(json_integer_value(json_object_get(r, "intervalMs")), 1000);
    cr_expect_eq(json_array_size(json_object_get(r, "dataIds")), 2);
    cr_expect(json_is_string(json_object_get(r, "endAt")), "endAt is not sent to the gateway");
    cr_expect_str_eq(list_status(mid), "STARTING");
    cr_expect_null(sr_broker_check(t.b));
    /* (10): the monitor's check names a broken acknowledgement, then holds again */
    sr_broker_test_break(t.b, SR_BROKER_BREAK_MONACK);
    const char *why = sr_broker_check(t.b);
    cr_expect(why && strstr(why, "(10)"), "%s", why ? why : "(none)");
    sr_broker_test_break(t.b, -SR_BROKER_BREAK_MONACK);
    cr_expect_null(sr_broker_check(t.b));

    /* values before the START acknowledgement are accepted once it is RUNNING */
    monitor_ack(mid, "START");
    cr_expect_str_eq(list_status(mid), "RUNNING");
    cr_expect_null(sr_broker_check(t.b));
    gw_ans g;
    char body[512];
    snprintf(body, sizeof body,
             "{\"monitorId\":\"%s\",\"values\":[{\"dataId\":\"N\",\"timestamp\":\"2026-01-01T00:00:01.000Z\",\"value\":2}]}",
             mid);
    cr_expect_str_eq(gw_send("G1", "data/periodic", "GW_PERIODIC_DATA", body, &g), "0", "%s", g.msg);

    app_ans s = {0};
    sr_broker_monitor_stop(t.b, "bl", "A1", mid, on_app, &s);
    cr_assert_eq(bt_run_until(&t, &s.done), 0);
    cr_expect_eq(s.status, 202);
    cr_expect_str_eq(list_status(mid), "STOPPING");
    cr_expect_null(sr_broker_check(t.b));
    run_until(NULL, 2);
    r = bt_request(&t, "G1", "PERIODIC_STOP", 0);
    cr_assert_not_null(r, "no PERIODIC_STOP handed to G1");
    cr_expect_str_eq(json_string_value(json_object_get(r, "monitorId")), mid);
    monitor_ack(mid, "STOP");
    cr_expect_str_eq(list_status(mid), "STOPPED");
    cr_expect_null(sr_broker_check(t.b));
    /* another app cannot stop it; an unknown monitor's ack is E3001 */
    app_ans o = {0};
    sr_broker_monitor_stop(t.b, "bl", "A9", mid, on_app, &o);
    cr_assert_eq(bt_run_until(&t, &o.done), 0);
    cr_expect_geq(o.status, 400);
    snprintf(body, sizeof body, "{\"monitorId\":\"Mnope\",\"action\":\"START\",\"result\":\"0\"}");
    cr_expect_str_eq(gw_send("G1", "ack/monitor", "GW_MONITOR_ACK", body, &g), "E3001", "%s", g.msg);
    forget(&a);
    forget(&s);
    forget(&o);
}

Test(broker, a_monitor_whose_end_is_past_is_refused_e1001)
{
    sr_target tg[] = {target("N", "G1")};
    app_ans a = {0};
    sr_broker_monitor_start(t.b, "bl", "A1", tg, 1, 1000, 0, now_ms() - 1000, on_app, &a);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_expect_eq(a.status, 400);
    cr_expect_str_eq(body_code(a.body), "E1001");
    run_for(NULL, 1, 300);
    cr_expect_eq(json_array_size(t.handed), 0, "a refused monitor reached the gateway");
    forget(&a);
}

Test(broker, the_monitor_quota_refuses_one_more_with_e9002)
{
    sr_broker_set_limits(t.b, 0, 0, 1, 0);
    sr_target tg[] = {target("N", "G1")};
    app_ans a = {0}, b = {0};
    sr_broker_monitor_start(t.b, "bl", "A1", tg, 1, 1000, 0, 0, on_app, &a);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_expect_eq(a.status, 201);
    sr_broker_monitor_start(t.b, "bl", "A1", tg, 1, 1000, 0, 0, on_app, &b);
    cr_assert_eq(bt_run_until(&t, &b.done), 0);
    cr_expect_str_eq(body_code(b.body), "E9002");
    json_t *items = NULL;
    cr_assert_eq(sr_broker_monitor_list(t.b, "bl", "A1", &items), SR_OK);
    cr_expect_eq(json_array_size(items), 1);
    json_decref(items);
    forget(&a);
    forget(&b);
}

/* ---- certificates ------------------------------------------------------------------ */

/* (criterion copies the parameters into the test's process: arrays, not pointers) */
typedef struct cert_case {
    char subject[16], id[16];
    int rc;
} cert_case;

ParameterizedTestParameters(broker, certificates)
{
    static cert_case cases[] = {
        {"platform", SR_PLATFORM_ID, SR_OK},
        {"platform", "G1", SR_ENOTFOUND}, /* issue 12 section 7: not the platform's for any id */
        {"platform", "anything", SR_ENOTFOUND},
        {"gateway", "G1", SR_ENOTFOUND}, /* registered without a certificate */
        {"app", "NOAPP", SR_ENOTFOUND},
        {"gateway", "bad id!", SR_EINVAL},
        {"operator", "bl", SR_EINVAL},
    };
    return cr_make_param_array(cert_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(cert_case *c, broker, certificates)
{
    sr_buf pem;
    sr_buf_init(&pem);
    cr_expect_eq(sr_broker_cert(t.b, "bl", c->subject, c->id, &pem), c->rc, "%s/%s", c->subject, c->id);
    if (c->rc == SR_OK) cr_expect(pem.len > 27 && !memcmp(pem.data, "-----BEGIN CERTIFICATE-----", 27));
    else cr_expect_eq(pem.len, 0);
    sr_buf_release(&pem);
}

/* ---- grants ------------------------------------------------------------------------ */

typedef struct grant_case {
    char id[16];
    int access, want;
} grant_case;

ParameterizedTestParameters(broker, grant_patterns)
{
    static grant_case cases[] = {
        {"P001", 1, 1}, {"P001", 2, 1}, {"P001", 3, 1}, /* exact, both */
        {"P002", 1, 0},                                 /* another id */
        {"Q17", 1, 1},  {"Q17", 2, 0},  {"Q", 1, 1},    /* prefix Q*, read only */
        {"R1", 2, 1},   {"R1", 1, 0},                   /* R1 control only */
        {"P00", 1, 0},                                  /* a prefix of an exact id is not it */
    };
    return cr_make_param_array(grant_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(grant_case *c, broker, grant_patterns)
{
    static const sr_grant g[] = {{"P001", 3}, {"Q*", 1}, {"R1", 2}};
    cr_expect_eq(sr_grants_allow(g, 3, c->id, c->access), c->want, "%s access %d", c->id, c->access);
}

Test(broker, grants_load_reads_the_apps_grants)
{
    sr_grant *g = NULL;
    size_t n = 0;
    cr_assert_eq(sr_grants_load(t.eng, "bl", "A1", &g, &n), SR_OK);
    cr_expect_eq(n, 3);
    cr_expect(sr_grants_allow(g, n, "N", 3));
    cr_expect(sr_grants_allow(g, n, "Y", 1));
    cr_expect_not(sr_grants_allow(g, n, "Y", 2), "Y is read only");
    free(g);
    cr_expect_eq(sr_grants_load(t.eng, "bl", "A9", &g, &n), SR_OK);
    cr_expect_eq(n, 0);
    free(g);
}
