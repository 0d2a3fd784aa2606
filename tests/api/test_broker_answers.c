/* tests/api/test_broker_answers.c -- the broker's checks of a gateway's
 * answers (issue 11 item 1) and what reaches the app (item 3), in process
 * (tests/support/brokertest.h): here grants can change between a request
 * and its answer, which the server only allows with a sheet import while it
 * is stopped (tests/integration/test_gw_answers.py covers the rest through
 * the real binary). */
#include <criterion/criterion.h>
#include <string.h>

#include "api/gwif_json.h"
#include "brokertest.h"
#include "codecs/events.pb-c.h"

#define SHEET_HEAD                                                                                                 \
    "#suiro-setup-sheet v1\n"                                                                                      \
    "[operator]\nid,name\nbo,Broker test\n\n"                                                                      \
    "[gateways]\nid,name,secret\nG1,g1,broker-g1-secret-01\nG2,g2,broker-g2-secret-01\n\n"                         \
    "[apps]\nid,name,secret,push_url\nA1,a1,broker-a1-secret-01,\n\n"                                              \
    "[facilities]\nid,name\nF,f\n\n"                                                                               \
    "[equipment]\nid,facility,name\nE,F,e\n\n"                                                                     \
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\nD2,E,G2,d2\n\n"                                             \
    "[datapoints]\nid,device,name,type,unit,min,max,kind\n"                                                        \
    "N,D1,n,number,m,0,100,both\nI,D1,i,integer,,,,both\nX,D1,x,number,,,,measure\nY,D2,y,number,,,,measure\n\n" \
    "[grants]\napp,datapoint,access\n"

static const char *SHEET = SHEET_HEAD "A1,N,both\nA1,I,both\nA1,Y,read\n";
static const char *SHEET_I_CONTROL = SHEET_HEAD "A1,N,both\nA1,I,control\nA1,Y,read\n";
static const char *SHEET_N_READ = SHEET_HEAD "A1,N,read\nA1,I,both\nA1,Y,read\n";

static bt t;

/* the broker's invariants (broker.c 9) hold */
static void binv(void)
{
    const char *why = sr_broker_check(t.b);
    cr_assert_null(why, "broker invariant broken: %s", why);
}

static void setup(void)
{
    static const char *const gws[] = {"G1", "G2"};
    cr_assert_eq(bt_open(&t, SHEET, "bo", gws, 2), SR_OK);
}
static void teardown(void) { bt_close(&t); }
TestSuite(broker_answers, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the app's side ---- */

typedef struct app_ans {
    int done, status;
    json_t *body;
    void *waiter; /* detached by forget() before the struct goes away */
} app_ans;

static void forget(app_ans *a)
{
    if (!a->done) sr_broker_detach(t.b, a->waiter);
    json_decref(a->body);
    memset(a, 0, sizeof *a);
}

static void on_app(void *ctx, int status, json_t *body)
{
    app_ans *a = ctx;
    a->done = 1;
    a->status = status;
    a->body = json_incref(body);
}

/* A request of kind for ids (all on gw); its requestId once handed out. */
static const char *ask(int kind, const char *const *ids, size_t n, const char *gw, json_t *value, app_ans *a)
{
    sr_target tg[4];
    for (size_t i = 0; i < n; i++) {
        snprintf(tg[i].data_id, sizeof tg[i].data_id, "%s", ids[i]);
        snprintf(tg[i].gw, sizeof tg[i].gw, "%s", gw);
    }
    size_t before = json_array_size(t.handed);
    a->waiter = sr_broker_request(t.b, "bo", "A1", kind, tg, n, 60000, 0, value, NULL, on_app, a);
    int handed = 0;
    for (int i = 0; i < 100000 && !handed && !a->done; i++) {
        uv_run(&t.loop, UV_RUN_ONCE);
        handed = json_array_size(t.handed) > before;
    }
    cr_assert(handed, "the request was not handed to %s", gw);
    binv();
    return json_string_value(json_object_get(json_object_get(json_array_get(t.handed, before), "request"),
                                             "requestId"));
}

/* ---- the gateway's side ---- */

typedef bt_gw_ans gw_ans;

/* body (JSON text) from gw on suffix as type; the acknowledgement's code. */
static const char *gw_send(const char *gw, const char *suffix, const char *type, const char *body, gw_ans *g)
{
    int rc = bt_gw_send(&t, "bo", gw, suffix, type, body, g);
    cr_assert_eq(rc, 0, "%s: %s", rc == -1 ? "the envelope does not parse" : rc == -2 ? "no answer" : "answered twice",
                 g->msg);
    binv();
    return g->code;
}

static size_t n_values(json_t *body, const char *id)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(json_object_get(body, "values"), i, v) n += !strcmp(json_string_value(json_object_get(v, "dataId")), id);
    return n;
}

#define IMM SUIRO__V1__REQUEST_KIND__RK_IMMEDIATE
#define CTL SUIRO__V1__REQUEST_KIND__RK_CONTROL
#define V(id, x) "{\"dataId\":\"" id "\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":" x "}"

Test(broker_answers, immediate_answer_with_applied_null_is_refused_not_a_crash)
{
    static const char *const ids[] = {"N"};
    app_ans a = {0};
    gw_ans g;
    const char *rid = ask(IMM, ids, 1, "G1", NULL, &a);
    char body[256];
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[],\"appliedValue\":null,\"result\":\"0\"}", rid);
    cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "E1001");
    cr_assert(strstr(g.msg, "appliedValue"), "%s", g.msg);
    cr_assert_not(a.done, "the app was answered by a refused message");
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[" V("N", "4.5") "],\"result\":\"0\"}", rid);
    cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "0");
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_assert_eq(a.status, 200);
    cr_assert_eq(n_values(a.body, "N"), 1);
    forget(&a);
}

/* a gateway's result code is read through the wire table
 * (sr_wire_parse_result): "0", {"code":"0"} and the OK row's name "OK" are
 * success; a row's other names are not codes */
Test(broker_answers, result_codes_are_the_wire_tables)
{
    static const char *const ids[] = {"N"};
    static const struct {
        const char *result, *ack;
        int app_status;
    } rows[] = {
        {"\"OK\"", "0", 200},
        {"{\"code\":\"OK\"}", "0", 200},
        {"{\"code\":\"0\"}", "0", 200},
        {"\"PARAM\"", "E1001", 0},
        {"\"ok\"", "E1001", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        app_ans a = {0};
        gw_ans g;
        const char *rid = ask(IMM, ids, 1, "G1", NULL, &a);
        char body[256];
        snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[" V("N", "4.5") "],\"result\":%s}", rid,
                 rows[i].result);
        cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), rows[i].ack, "%s: %s",
                         rows[i].result, g.msg);
        if (rows[i].app_status) {
            cr_assert_eq(bt_run_until(&t, &a.done), 0, "%s", rows[i].result);
            cr_assert_eq(a.status, rows[i].app_status, "%s", rows[i].result);
            cr_assert_eq(n_values(a.body, "N"), 1, "%s", rows[i].result);
        } else {
            cr_assert(strstr(g.msg, "result"), "%s: %s", rows[i].result, g.msg);
            cr_assert_not(a.done, "%s: the app was answered by a refused message", rows[i].result);
            /* the request is still open: answer it, so the next row starts clean */
            snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[" V("N", "4.5") "],\"result\":\"0\"}", rid);
            cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "0", "%s", g.msg);
            cr_assert_eq(bt_run_until(&t, &a.done), 0);
        }
        forget(&a);
    }
}

Test(broker_answers, answers_are_checked_against_their_request)
{
    static const char *const ids[] = {"N", "I"}, *const yid[] = {"Y"};
    app_ans a = {0}, c = {0}, o = {0};
    gw_ans g;
    const char *rid = ask(IMM, ids, 2, "G1", NULL, &a);
    json_t *five = json_real(5);
    const char *cid = ask(CTL, ids, 1, "G1", five, &c);
    json_decref(five);
    const char *oid = ask(IMM, yid, 1, "G2", NULL, &o);
    static const struct {
        const char *suffix, *type, *fmt, *code, *names;
    } rows[] = {
        {"data/immediate", "GW_IMMEDIATE_RESULT", "{\"requestId\":\"%s\",\"values\":[" V("X", "1") "],\"result\":\"0\"}", "E1001", "body.values"},
        {"data/immediate", "GW_IMMEDIATE_RESULT", "{\"requestId\":\"%s\",\"values\":[" V("N", "1") "," V("N", "2") "],\"result\":\"0\"}", "E1001", "body.values"},
        {"data/immediate", "GW_IMMEDIATE_RESULT", "{\"requestId\":\"%s\",\"values\":[" V("N", "1") "," V("I", "2") "," V("X", "3") "],\"result\":\"0\"}", "E1001", "body.values"},
        {"data/immediate", "GW_IMMEDIATE_RESULT", "{\"requestId\":\"%s\",\"result\":\"0\"}", "E1001", "body.values"},
        {"data/immediate", "GW_IMMEDIATE_RESULT", "{\"requestId\":\"%s\",\"values\":[],\"result\":{\"code\":\"E2001\"}}", "E1001", "body.result"},
        {"data/immediate", "GW_CONTROL_RESULT", "{\"requestId\":\"%s\",\"values\":[],\"result\":\"0\"}", "E1001", "header.messageType"},
        {"ack/control", "GW_CONTROL_RESULT", "{\"requestId\":\"%s\",\"dataId\":\"N\",\"appliedValue\":5,\"result\":\"0\"}", "E1001", "body.requestId"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, rows[i].fmt, rid);
        cr_expect_str_eq(gw_send("G1", rows[i].suffix, rows[i].type, body, &g), rows[i].code, "row %zu: %s", i, g.msg);
        cr_expect(strstr(g.msg, rows[i].names), "row %zu names %s: %s", i, rows[i].names, g.msg);
    }
    char body[512];
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"dataId\":\"N\",\"appliedValue\":\"5\",\"result\":\"0\"}", cid);
    cr_expect_str_eq(gw_send("G1", "ack/control", "GW_CONTROL_RESULT", body, &g), "E1001", "%s", g.msg);
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"dataId\":\"I\",\"appliedValue\":5,\"result\":\"0\"}", cid);
    cr_expect_str_eq(gw_send("G1", "ack/control", "GW_CONTROL_RESULT", body, &g), "E1001", "%s", g.msg);
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[" V("Y", "1") "],\"result\":\"0\"}", oid);
    cr_expect_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "E3001", "%s", g.msg);
    cr_assert_not(a.done || c.done || o.done, "a refused message answered the app");
    forget(&a);
    forget(&c);
    forget(&o);
}

Test(broker_answers, a_grant_withdrawn_before_the_answer_withholds_its_values)
{
    static const char *const ids[] = {"N", "I"};
    app_ans a = {0};
    gw_ans g;
    const char *rid = ask(IMM, ids, 2, "G1", NULL, &a);
    char id[24];
    snprintf(id, sizeof id, "%s", rid);
    cr_assert_eq(bt_import(&t, SHEET_I_CONTROL), SR_OK); /* A1 may no longer read I */
    char body[512];
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"values\":[" V("N", "1.5") "," V("I", "7") "],\"result\":\"0\"}", id);
    cr_assert_str_eq(gw_send("G1", "data/immediate", "GW_IMMEDIATE_RESULT", body, &g), "0", "%s", g.msg);
    cr_assert_eq(bt_run_until(&t, &a.done), 0);
    cr_assert_eq(a.status, 200);
    cr_expect_eq(n_values(a.body, "N"), 1);
    cr_expect_eq(n_values(a.body, "I"), 0, "a value no longer granted reached the app");
    cr_expect_eq(json_integer_value(json_object_get(a.body, "withheldValues")), 1);
    forget(&a);
    json_t *st = NULL;
    cr_assert_eq(sr_broker_request_status(t.b, "bo", "A1", id, &st), SR_OK);
    cr_expect_eq(n_values(st, "N"), 1);
    cr_expect_eq(n_values(st, "I"), 0);
    cr_expect_eq(json_integer_value(json_object_get(st, "withheldValues")), 1);
    json_decref(st);
    /* and granted again: shown again (the values were stored) */
    cr_assert_eq(bt_import(&t, SHEET), SR_OK);
    cr_assert_eq(sr_broker_request_status(t.b, "bo", "A1", id, &st), SR_OK);
    cr_expect_eq(n_values(st, "I"), 1);
    cr_expect_null(json_object_get(st, "withheldValues"));
    json_decref(st);
}

Test(broker_answers, a_control_grant_withdrawn_withholds_the_applied_value)
{
    static const char *const ids[] = {"N"};
    app_ans c = {0};
    gw_ans g;
    json_t *five = json_real(5);
    const char *cid = ask(CTL, ids, 1, "G1", five, &c);
    json_decref(five);
    char id[24];
    snprintf(id, sizeof id, "%s", cid);
    cr_assert_eq(bt_import(&t, SHEET_N_READ), SR_OK); /* A1 may no longer control N */
    char body[256];
    snprintf(body, sizeof body, "{\"requestId\":\"%s\",\"dataId\":\"N\",\"appliedValue\":5,\"result\":\"0\"}", id);
    cr_assert_str_eq(gw_send("G1", "ack/control", "GW_CONTROL_RESULT", body, &g), "0", "%s", g.msg);
    cr_assert_eq(bt_run_until(&t, &c.done), 0);
    cr_assert_eq(c.status, 200);
    cr_expect(json_is_null(json_object_get(c.body, "appliedValue")));
    cr_expect_eq(json_integer_value(json_object_get(c.body, "withheldValues")), 1);
    forget(&c);
}

/* The broker's invariant check names each count broken on purpose (the
 * live table, an operator's count, a request's open and busy parts), and
 * passes the intact state before and after. */
Test(broker_answers, invariant_check_names_each_broken_count)
{
    static const struct {
        int what;
        const char *names;
    } cases[] = {
        {SR_BROKER_BREAK_NLIVE, "nlive is not the number of live requests"},
        {SR_BROKER_BREAK_OPCOUNT, "an operator's count"},
        {SR_BROKER_BREAK_NOPEN, "nopen does not count"},
        {SR_BROKER_BREAK_INFLIGHT, "inflight does not count"},
    };
    static const char *const ids[] = {"N"};
    app_ans a = {0};
    (void)ask(IMM, ids, 1, "G1", NULL, &a); /* one live request, handed out */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        binv();
        sr_broker_test_break(t.b, cases[i].what);
        const char *why = sr_broker_check(t.b);
        cr_assert_not_null(why, "case %zu: the broken state passed the check", i);
        cr_assert(strstr(why, cases[i].names), "case %zu: \"%s\" does not name \"%s\"", i, why, cases[i].names);
        sr_broker_test_break(t.b, -cases[i].what);
    }
    binv();
    forget(&a);
}
