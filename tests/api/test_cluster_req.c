/* tests/api/test_cluster_req.c -- request flows across nodes without NATS
 * (api/cluster_req.h, docs/cluster.md "Request flows across nodes"): the
 * relay message's codec (a table of good and bad messages, the monitors'
 * PERIODIC_START / PERIODIC_STOP / DATA kinds included: a refusal names
 * the field), the presence key and value, and the presence map's updates
 * (a move, a reconnection, a disconnect, a stale entry). */
#include "api/cluster_req.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define REQ_HEAD "{\"v\":1,\"t\":\"req\",\"from\":\"s1\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"Q0123456789abcdef\","
#define RES_HEAD "{\"v\":1,\"t\":\"res\",\"from\":\"s2\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"Q0123456789abcdef\","
#define IMM_PART "\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"IMMEDIATE\",\"dataIds\":[\"PA1\",\"PA2\"],\"deadline\":\"2026-01-01T00:00:00.000Z\"}"
#define DATA_HEAD "{\"v\":1,\"t\":\"data\",\"from\":\"s2\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"M0123456789abcdef\","
#define START_PART "\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"PERIODIC_START\",\"monitorId\":\"M0123456789abcdef\",\"dataIds\":[\"PA1\"],\"intervalMs\":1000,\"endAt\":\"2027-01-01T00:00:00.000Z\"}"
#define STOP_PART "\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"PERIODIC_STOP\",\"monitorId\":\"M0123456789abcdef\"}"
#define VALS "\"values\":[{\"dataId\":\"PA1\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":1.5}]"
#define CTL_PART "\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"CONTROL\",\"dataId\":\"PA2\",\"value\":35.5,\"appId\":\"APW\"}"

#define ASK_HEAD "{\"v\":1,\"t\":\"ask\",\"from\":\"s2\",\"op\":\"wx\",\"app\":\"APW\",\"id\":\"K0123456789abcdef\","
#define ANS_HEAD "{\"v\":1,\"t\":\"ans\",\"from\":\"s1\",\"op\":\"wx\",\"app\":\"APW\",\"id\":\"K0123456789abcdef\","

typedef struct row {
    const char *json;
    const char *err; /* NULL: accepted; else a piece of the refusal */
} row;

static const row rows[] = {
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"deadline_ms\":1767225600000," IMM_PART "}", NULL},
    {REQ_HEAD "\"kind\":\"CONTROL\",\"deadline_ms\":1767225600000," CTL_PART "}", NULL},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"values\":[{\"dataId\":\"PA1\","
              "\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"value\":1.5,\"quality\":\"GOOD\"}]}",
     NULL},
    {RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"FAILED\",\"code\":\"E4003\",\"msg\":\"valve stuck\",\"msgid\":\"m-1\"}", NULL},
    {RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"applied\":35.5,"
              "\"sig\":{\"gatewayId\":\"GWA\"}}",
     NULL},
    /* monitors across nodes (docs/cluster.md "Monitors across nodes") */
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1," START_PART "}", NULL},
    {REQ_HEAD "\"kind\":\"PERIODIC_STOP\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1," STOP_PART "}", NULL},
    {RES_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\"}", NULL},
    {RES_HEAD "\"kind\":\"PERIODIC_STOP\",\"monitor\":\"M0123456789abcdef\",\"state\":\"FAILED\",\"code\":\"E4003\",\"msg\":\"busy\"}", NULL},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\",\"msgid\":\"m-2\",\"signed\":true," VALS "}", NULL},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\"," VALS "}", NULL},
    /* an app's DELETE of another node's monitor (docs/cluster.md "Monitors across nodes", "From any node") */
    {ASK_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\"}", NULL},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":202,"
              "\"body\":{\"monitorId\":\"M0123456789abcdef\",\"status\":\"STOPPING\"}}",
     NULL},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":404,"
              "\"body\":{\"result\":{\"code\":\"E3001\",\"message\":\"unknown monitorId\"}}}",
     NULL},
    /* refusals */
    {ASK_HEAD "\"kind\":\"MONITOR_STOP\"}", "monitor:"},
    {ASK_HEAD "\"kind\":\"PERIODIC_STOP\",\"monitor\":\"M0123456789abcdef\"}", "kind: MONITOR_STOP"},
    {REQ_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1," STOP_PART "}", "kind:"},
    {"{\"v\":1,\"t\":\"ask\",\"from\":\"s2\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"K0123456789abcdef\","
     "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\"}",
     "gw: not with"},
    {"{\"v\":1,\"t\":\"ask\",\"from\":\"s2\",\"op\":\"wx\",\"id\":\"K0123456789abcdef\",\"kind\":\"MONITOR_STOP\","
     "\"monitor\":\"M0123456789abcdef\"}",
     "app:"},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"body\":{}}", "status"},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":99,\"body\":{}}", "status: an HTTP"},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":202,\"body\":[1]}", "body: an object"},
    {ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":202}", "body: an object"},
    {"", "not a JSON object"},
    {"[1]", "not a JSON object"},
    {"{\"v\":2}", "v: 1"},
    {"{\"v\":1,\"t\":\"nope\"}", "t:"},
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"deadline_ms\":1," IMM_PART "}", "monitor:"},
    {REQ_HEAD "\"kind\":\"PERIODIC_DATA\",\"deadline_ms\":1," IMM_PART "}", "kind:"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"monitor\":\"M1\",\"deadline_ms\":1," IMM_PART "}", "monitor: only"},
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"Mother\",\"deadline_ms\":1," START_PART "}", "part.monitorId"},
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1," STOP_PART "}", "part.type"},
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1,\"part\":{\"requestId\":"
              "\"Q0123456789abcdef\",\"type\":\"PERIODIC_START\",\"monitorId\":\"M0123456789abcdef\",\"dataIds\":[\"PA1\"]}}",
     "part.intervalMs"},
    {REQ_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"deadline_ms\":1,\"part\":{\"requestId\":"
              "\"Q0123456789abcdef\",\"type\":\"PERIODIC_START\",\"monitorId\":\"M0123456789abcdef\",\"dataIds\":[\"P 1\"],"
              "\"intervalMs\":5}}",
     "part.dataIds[0]"},
    {RES_HEAD "\"kind\":\"PERIODIC_START\",\"monitor\":\"M0123456789abcdef\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\"," VALS "}",
     "values, sig: not with"},
    {"{\"v\":1,\"t\":\"data\",\"from\":\"s2\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"M0123456789abcdef\","
     "\"kind\":\"IMMEDIATE\"}",
     "kind: PERIODIC_DATA"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"Mother\",\"seq\":7,\"ev\":\"AQID\"," VALS "}", "id: the monitor's"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":0,\"ev\":\"AQID\"," VALS "}", "seq"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"!!!!\"," VALS "}", "ev: not base64"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"\"," VALS "}", "ev: a base64"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\",\"values\":[]}", "values: a non-empty"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\",\"values\":[{\"dataId\":\"PA1\"}]}",
     "values[0]"},
    {DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\",\"signed\":1," VALS "}", "signed:"},
    {"{\"v\":1,\"t\":\"req\",\"from\":\"s 1\",\"op\":\"wx\"}", "from"},
    {"{\"v\":1,\"t\":\"req\",\"from\":\"s1\",\"op\":\"w x\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"Q1\",\"kind\":\"IMMEDIATE\"}", "op:"},
    {"{\"v\":1,\"t\":\"req\",\"from\":\"s1\",\"op\":\"wx\",\"gw\":\"GWA\",\"app\":\"APW\",\"id\":\"Q0123456789abcdef0123456789\","
     "\"kind\":\"IMMEDIATE\"}",
     "id:"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\"," IMM_PART "}", "deadline_ms"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"deadline_ms\":1}", "part: an object"},
    {REQ_HEAD "\"kind\":\"CONTROL\",\"deadline_ms\":1," IMM_PART "}", "part.type"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"deadline_ms\":1,\"part\":{\"requestId\":\"Qother\",\"type\":\"IMMEDIATE\"}}",
     "part.requestId"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"deadline_ms\":1,\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"IMMEDIATE\","
              "\"dataIds\":[],\"deadline\":\"x\"}}",
     "part.dataIds"},
    {REQ_HEAD "\"kind\":\"IMMEDIATE\",\"deadline_ms\":1,\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"IMMEDIATE\","
              "\"dataIds\":[\"P 1\"],\"deadline\":\"x\"}}",
     "part.dataIds[0]"},
    {REQ_HEAD "\"kind\":\"CONTROL\",\"deadline_ms\":1,\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"CONTROL\","
              "\"dataId\":\"PA2\",\"value\":1,\"appId\":\"OTHER\"}}",
     "part.appId"},
    {REQ_HEAD "\"kind\":\"CONTROL\",\"deadline_ms\":1,\"part\":{\"requestId\":\"Q0123456789abcdef\",\"type\":\"CONTROL\","
              "\"dataId\":\"PA2\",\"appId\":\"APW\"}}",
     "part.value"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"SUCCEEDED\",\"code\":\"E4003\",\"msg\":\"\"}", "code:"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"FAILED\",\"code\":\"0\",\"msg\":\"\"}", "code:"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"FAILED\",\"code\":\"E9999\",\"msg\":\"\"}", "code:"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"TIMED_OUT\",\"code\":\"E4002\",\"msg\":\"\"}", "state:"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"values\":{}}", "values:"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"values\":[{\"dataId\":\"PA1\"}]}",
     "values[0]"},
    {RES_HEAD "\"kind\":\"IMMEDIATE\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"applied\":1}", "applied:"},
    {RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"values\":[]}", "values: not with"},
    {RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"sig\":[1]}", "sig:"},
    {RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"SUCCEEDED\",\"code\":\"0\",\"msg\":\"\",\"msgid\":\"a b\"}", "msgid:"},
};

Test(relay, table)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sr_relay m;
        char err[256] = "";
        int rc = sr_relay_parse(rows[i].json, strlen(rows[i].json), &m, err, sizeof err);
        if (!rows[i].err) {
            cr_expect_eq(rc, SR_OK, "row %zu refused: %s", i, err);
            if (rc) continue;
            /* formats back and parses to the same message */
            sr_buf b;
            sr_buf_init(&b);
            cr_assert_eq(sr_relay_format(&m, &b), SR_OK);
            sr_relay m2;
            cr_assert_eq(sr_relay_parse(b.data, b.len, &m2, err, sizeof err), SR_OK, "row %zu again: %s", i, err);
            cr_expect_eq(m2.type, m.type);
            cr_expect_eq(m2.kind, m.kind);
            cr_expect_eq(m2.state, m.state);
            cr_expect_eq(m2.deadline_ms, m.deadline_ms);
            cr_expect_str_eq(m2.id, m.id);
            cr_expect_str_eq(m2.code, m.code);
            cr_expect_str_eq(m2.msg, m.msg);
            cr_expect_str_eq(m2.msgid, m.msgid);
            cr_expect_str_eq(m2.monitor, m.monitor);
            cr_expect_eq(m2.seq, m.seq);
            cr_expect_eq(m2.gw_signed, m.gw_signed);
            cr_expect_eq(m2.ev_len, m.ev_len);
            cr_expect(m.ev_len == 0 || !memcmp(m2.ev, m.ev, m.ev_len), "row %zu: ev", i);
            cr_expect(json_equal(m2.part, m.part) || (!m2.part && !m.part), "row %zu: part", i);
            cr_expect(json_equal(m2.values, m.values) || (!m2.values && !m.values), "row %zu: values", i);
            cr_expect(json_equal(m2.applied, m.applied) || (!m2.applied && !m.applied), "row %zu: applied", i);
            cr_expect_eq(m2.status, m.status);
            cr_expect_str_eq(m2.op, m.op);
            cr_expect_str_eq(m2.app, m.app);
            cr_expect_str_eq(m2.gw, m.gw);
            cr_expect(json_equal(m2.body, m.body) || (!m2.body && !m.body), "row %zu: body", i);
            sr_relay_clear(&m2);
            sr_relay_clear(&m);
            sr_buf_release(&b);
        } else {
            cr_expect_eq(rc, SR_EINVAL, "row %zu accepted", i);
            cr_expect(strstr(err, rows[i].err) != NULL, "row %zu: '%s' does not name '%s'", i, err, rows[i].err);
            cr_expect_null(m.part);
        }
    }
}

Test(relay, fields_read)
{
    const char *j = RES_HEAD "\"kind\":\"CONTROL\",\"state\":\"FAILED\",\"code\":\"E4003\",\"msg\":\"valve stuck\",\"msgid\":\"m-1\"}";
    sr_relay m;
    char err[200];
    cr_assert_eq(sr_relay_parse(j, strlen(j), &m, err, sizeof err), SR_OK, "%s", err);
    cr_expect_eq(m.type, SR_RELAY_RES);
    cr_expect_eq(m.kind, SR_RK_CONTROL);
    cr_expect_eq(m.state, SR_RS_FAILED);
    cr_expect_str_eq(m.from, "s2");
    cr_expect_str_eq(m.op, "wx");
    cr_expect_str_eq(m.gw, "GWA");
    cr_expect_str_eq(m.app, "APW");
    cr_expect_str_eq(m.code, "E4003");
    cr_expect_str_eq(m.msg, "valve stuck");
    cr_expect_str_eq(m.msgid, "m-1");
    sr_relay_clear(&m);
}

Test(relay, data_fields_read)
{
    const char *j = DATA_HEAD "\"kind\":\"PERIODIC_DATA\",\"monitor\":\"M0123456789abcdef\",\"seq\":7,\"ev\":\"AQID\","
                              "\"msgid\":\"m-2\",\"signed\":true," VALS "}";
    sr_relay m;
    char err[200];
    cr_assert_eq(sr_relay_parse(j, strlen(j), &m, err, sizeof err), SR_OK, "%s", err);
    cr_expect_eq(m.type, SR_RELAY_DATA);
    cr_expect_eq(m.kind, SR_RK_PERIODIC_DATA);
    cr_expect_str_eq(m.monitor, "M0123456789abcdef");
    cr_expect_eq(m.seq, 7);
    cr_expect_eq(m.ev_len, 3);
    cr_expect(m.ev_len == 3 && m.ev[0] == 1 && m.ev[1] == 2 && m.ev[2] == 3);
    cr_expect_eq(m.gw_signed, 1);
    cr_expect_str_eq(m.msgid, "m-2");
    cr_expect_eq(json_array_size(m.values), 1);
    sr_relay_clear(&m);
}

Test(relay, ask_answer_fields_read)
{
    const char *j = ANS_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\",\"status\":202,"
                             "\"body\":{\"monitorId\":\"M0123456789abcdef\",\"status\":\"STOPPING\"}}";
    sr_relay m;
    char err[200];
    cr_assert_eq(sr_relay_parse(j, strlen(j), &m, err, sizeof err), SR_OK, "%s", err);
    cr_expect_eq(m.type, SR_RELAY_ANS);
    cr_expect_eq(m.kind, SR_RK_MONITOR_STOP);
    cr_expect_str_eq(m.from, "s1");
    cr_expect_str_eq(m.app, "APW");
    cr_expect_str_eq(m.id, "K0123456789abcdef");
    cr_expect_str_eq(m.monitor, "M0123456789abcdef");
    cr_expect_str_eq(m.gw, "");
    cr_expect_eq(m.status, 202);
    cr_expect_str_eq(json_string_value(json_object_get(m.body, "status")), "STOPPING");
    sr_relay_clear(&m);
    cr_expect_null(m.body);
    const char *k = ASK_HEAD "\"kind\":\"MONITOR_STOP\",\"monitor\":\"M0123456789abcdef\"}";
    cr_assert_eq(sr_relay_parse(k, strlen(k), &m, err, sizeof err), SR_OK, "%s", err);
    cr_expect_eq(m.type, SR_RELAY_ASK);
    cr_expect_str_eq(m.op, "wx");
    cr_expect_null(m.body);
    sr_relay_clear(&m);
}

Test(presence, key_escapes_dots)
{
    char k1[200], k2[200];
    cr_assert_gt(sr_presence_key("a.b", "c", k1, sizeof k1), 0);
    cr_assert_gt(sr_presence_key("a", "b.c", k2, sizeof k2), 0);
    cr_expect_str_eq(k1, "a=2Eb.c");
    cr_expect_str_eq(k2, "a.b=2Ec");
    cr_expect_str_neq(k1, k2, "one key per pair");
    cr_expect_eq(sr_presence_key("op", "gw", k1, 5), -1, "does not fit: -1");
}

Test(presence, value_round_trip_and_refusals)
{
    sr_presence v = {.op = "wx", .gw = "GWA", .node = "s2", .since_ms = 5, .at_ms = 7}, w;
    char buf[300], err[200];
    int n = sr_presence_format(&v, buf, sizeof buf);
    cr_assert_gt(n, 0);
    cr_assert_eq(sr_presence_parse(buf, (size_t)n, &w, err, sizeof err), SR_OK, "%s", err);
    cr_expect_str_eq(w.node, "s2");
    cr_expect_eq(w.since_ms, 5);
    cr_expect_eq(w.at_ms, 7);
    const char *bad[] = {"", "{}", "{\"op\":\"wx\",\"gw\":\"GWA\",\"node\":\"s 2\",\"since_ms\":1,\"at_ms\":1}",
                         "{\"op\":\"wx\",\"gw\":\"GWA\",\"node\":\"s2\",\"since_ms\":-1,\"at_ms\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        cr_expect_eq(sr_presence_parse(bad[i], strlen(bad[i]), &w, err, sizeof err), SR_EINVAL, "bad %zu", i);
        cr_expect(err[0], "bad %zu: named", i);
    }
}

Test(presence, map_updates)
{
    sr_pmap *m = sr_pmap_new();
    cr_assert_not_null(m);
    int64_t now = 1000000, since = 0;
    sr_presence v = {.op = "wx", .gw = "GWA", .node = "s2", .since_ms = 10, .at_ms = now};
    cr_expect_eq(sr_pmap_put(m, &v), 1, "new: changed");
    cr_expect_str_eq(sr_pmap_get(m, "wx", "GWA", now, &since), "s2");
    cr_expect_eq(since, 10);
    cr_expect_null(sr_pmap_get(m, "wy", "GWA", now, NULL), "another operator's gateway of that id: none");
    v.at_ms = now + 100;
    cr_expect_eq(sr_pmap_put(m, &v), 0, "a refresh: not a change");
    v.since_ms = 20;
    cr_expect_eq(sr_pmap_put(m, &v), 1, "a new session on the same node: a change");
    snprintf(v.node, sizeof v.node, "s3");
    v.since_ms = 30;
    cr_expect_eq(sr_pmap_put(m, &v), 1, "moved: a change");
    cr_expect_str_eq(sr_pmap_get(m, "wx", "GWA", now, NULL), "s3");
    cr_expect_null(sr_pmap_get(m, "wx", "GWA", now + 100 + SR_PRESENCE_STALE_MS + 1, NULL), "stale: none");
    cr_expect_eq(sr_pmap_count(m), 1);
    v.node[0] = 0;
    cr_expect_eq(sr_pmap_put(m, &v), 1, "a disconnect: a change");
    cr_expect_null(sr_pmap_get(m, "wx", "GWA", now, NULL));
    cr_expect_eq(sr_pmap_put(m, &v), 0, "a disconnect of an absent pair: nothing");
    cr_expect_eq(sr_pmap_count(m), 0);
    /* many pairs: each found */
    for (int i = 0; i < 3000; i++) {
        sr_presence x = {.op = "wx", .node = "s2", .since_ms = i, .at_ms = now};
        snprintf(x.gw, sizeof x.gw, "G%d", i);
        cr_assert_eq(sr_pmap_put(m, &x), 1);
    }
    for (int i = 0; i < 3000; i++) {
        char g[16];
        snprintf(g, sizeof g, "G%d", i);
        cr_assert_str_eq(sr_pmap_get(m, "wx", g, now, &since), "s2");
        cr_assert_eq(since, i);
    }
    cr_expect_eq(sr_pmap_count(m), 3000);
    sr_pmap_free(m);
}
