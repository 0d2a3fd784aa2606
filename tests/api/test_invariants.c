/* tests/api/test_invariants.c -- the invariant checks of the api/ modules
 * that have no suite of their own here (issue 12 §5): push to apps
 * (sr_push_check, api/push.c INVARIANTS 1-5) on a real push handle whose
 * receiver refuses, and the MQTT connection state machine
 * (sr_mqtt_conn_check, api/server.c INVARIANTS 8) on states built here. The
 * broker's check is exercised in test_broker_answers.c, the log's in
 * test_log.c. Each check must pass the intact state and name each state
 * broken on purpose. */
#include <criterion/criterion.h>
#include <string.h>

#include "api/push.h"
#include "api/server.h"
#include "brokertest.h"

TestSuite(api_invariants, .timeout = 120);

/* ---- push ---- */

#define PUSH_SHEET                                                                                  \
    "#suiro-setup-sheet v1\n"                                                                       \
    "[operator]\nid,name\npo,Push test\n\n"                                                         \
    "[gateways]\nid,name,secret\nG1,g1,push-g1-secret-0001\n\n"                                     \
    "[apps]\nid,name,secret,push_url\nA1,a1,push-a1-secret-0001,http://127.0.0.1:1/hook\n\n"        \
    "[facilities]\nid,name\nF,f\n\n"                                                                \
    "[equipment]\nid,facility,name\nE,F,e\n\n"                                                      \
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\n\n"                                          \
    "[datapoints]\nid,device,name,type,unit,min,max,kind\nN,D1,n,number,m,0,100,both\n\n"         \
    "[grants]\napp,datapoint,access\nA1,N,both\n"

static void push_inv(sr_push *p)
{
    const char *why = sr_push_check(p);
    cr_assert_null(why, "push invariant broken: %s", why);
}

Test(api_invariants, push_check_holds_through_failed_attempts_and_names_each_broken_invariant)
{
    static const struct {
        int what;
        const char *names;
    } cases[] = {
        {SR_PUSH_BREAK_COUNT, "n is not the queue's length"},
        {SR_PUSH_BREAK_ATTEMPTED, "a message behind the head was attempted"},
        {SR_PUSH_BREAK_STALL, "neither sending nor waiting"},
        {SR_PUSH_BREAK_ORDER, "out of seq order"},
        {SR_PUSH_BREAK_MARK, "a mark at or past a message still queued"},
    };
    bt t;
    cr_assert_eq(bt_open(&t, PUSH_SHEET, "po", NULL, 0), SR_OK);
    sr_push_opts o;
    sr_push_opts_default(&o);
    o.max_queue = 2;              /* the third message drops the oldest one not in flight */
    o.first_backoff_ms = 600000;  /* after the first failure it stays waiting */
    o.max_backoff_ms = 600000;
    o.connect_timeout_ms = 2000;
    sr_push *p = NULL;
    char err[256];
    cr_assert_eq(sr_push_open(&t.loop, t.eng, t.dir, &o, &p, err, sizeof err), SR_OK, "%s", err);
    push_inv(p);
    for (int i = 0; i < 3; i++) {
        json_t *body = json_pack("{s:i}", "n", i);
        cr_assert_eq(sr_push_enqueue(p, "po", "A1", "monitors/M1", body, (uint64_t)i + 1), SR_OK);
        json_decref(body);
        push_inv(p); /* the head is in flight (or waiting), the bound held */
    }
    sr_push_counts c;
    for (int i = 0; i < 100000; i++) {
        cr_assert_eq(sr_push_stats(p, "po", "A1", &c), SR_OK);
        if (c.retried) break;
        uv_run(&t.loop, UV_RUN_ONCE);
    }
    cr_assert_geq(c.retried, 1, "the refused attempt never ended");
    cr_assert_eq(c.queued, 2);
    cr_assert_eq(c.dropped, 1);
    push_inv(p); /* waiting for the retry: the head attempted and signed, the rest not */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_push_test_break(p, cases[i].what);
        const char *why = sr_push_check(p);
        cr_assert_not_null(why, "case %zu: the broken state passed the check", i);
        cr_assert(strstr(why, cases[i].names), "case %zu: \"%s\" does not name \"%s\"", i, why, cases[i].names);
        sr_push_test_break(p, -cases[i].what);
        push_inv(p);
    }
    sr_push_dispose(p);
    for (int i = 0; i < 4; i++) uv_run(&t.loop, UV_RUN_NOWAIT);
    push_inv(p); /* after dispose: nothing queued, sent or waited for */
    sr_push_free(p);
    bt_close(&t);
}

/* ---- the MQTT connection ---- */

/* a logged-in connection reading, one message in flight, two subscriptions */
static sr_mqtt_conn_state active_conn(void)
{
    return (sr_mqtt_conn_state){
        .state = SR_MQTT_CONN_ACTIVE, .version = 5, .refs = 2, .reading = 1, .root_ok = 1, .inflight = 1,
        .out_bytes = 100, .nsubs = 2, .subs_listed = 2, .ackq_head = 3, .ackq_len = 1, .ackq_cap = 16,
        .inflight_max = 100, .max_output = 1u << 20, .max_subs = 8, .ackq_max = 1024,
    };
}

Test(api_invariants, mqtt_conn_check_passes_each_legal_state_and_names_each_broken_one)
{
    sr_mqtt_conn_state ok = active_conn();
    cr_assert_null(sr_mqtt_conn_check(&ok), "%s", sr_mqtt_conn_check(&ok));
    sr_mqtt_conn_state fresh = {.state = SR_MQTT_CONN_AWAIT_CONNECT, .refs = 1, .reading = 1, .inflight_max = 100,
                                .max_output = 1u << 20, .max_subs = 8, .ackq_max = 1024};
    cr_assert_null(sr_mqtt_conn_check(&fresh), "%s", sr_mqtt_conn_check(&fresh));
    sr_mqtt_conn_state auth = fresh;
    auth.state = SR_MQTT_CONN_AUTH;
    auth.version = 4;
    auth.reading = 0;
    cr_assert_null(sr_mqtt_conn_check(&auth), "%s", sr_mqtt_conn_check(&auth));
    sr_mqtt_conn_state paused = ok;
    paused.reading = 0;
    paused.out_paused = 1;
    paused.out_bytes = 900000;
    paused.blocked = paused.has_pending = 1;
    paused.inflight = 100;
    cr_assert_null(sr_mqtt_conn_check(&paused), "%s", sr_mqtt_conn_check(&paused));
    sr_mqtt_conn_state closing = paused;
    closing.state = SR_MQTT_CONN_CLOSING;
    closing.reading = 1; /* uv_close stops reading; the flag is not cleared */
    cr_assert_null(sr_mqtt_conn_check(&closing), "%s", sr_mqtt_conn_check(&closing));

    /* each case breaks one invariant of the legal active state */
    static const char *const names[] = {
        "an unknown state",
        "nothing references",
        "negative in-flight",
        "past its buffer",
        "a ready PUBACK waits",
        "without its pending command",
        "not counted in flight",
        "nsubs is not the number of subscriptions",
        "more subscriptions than max_subscriptions",
        "outside the gateway's topic root",
        "more output queued than the low-water mark",
        "not logged in holds",
        "read while the login is checked",
        "without a version",
        "without the topic root of its login",
        "read while a message is blocked",
        "read with inflight_max messages in flight",
        "read with inflight_max messages in flight",
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        sr_mqtt_conn_state c = active_conn();
        switch (k) {
        case 0: c.state = 7; break;
        case 1: c.refs = 0; break;
        case 2: c.inflight = -1; break;
        case 3: c.ackq_head = 16; break;
        case 4: c.ackq_front_done = 1; break;
        case 5: c.blocked = 1, c.reading = 0; break;
        case 6: c.checking = 1, c.inflight = 0, c.reading = 0; break;
        case 7: c.subs_listed = 3; break;
        case 8: c.nsubs = c.subs_listed = 9; break;
        case 9: c.subs_outside_root = 1; break;
        case 10: c.out_bytes = (1u << 20) / 4 + 1; break;
        case 11: c.state = SR_MQTT_CONN_AWAIT_CONNECT; break; /* with subscriptions and a message in flight */
        case 12:
            c = auth;
            c.reading = 1;
            break;
        case 13: c.version = 0; break;
        case 14: c.root_ok = 0; break;
        case 15: c.bheld = 1; break;
        case 16: c.inflight = 100; break;
        case 17: c.ackq_len = 1024, c.ackq_head = 0, c.ackq_cap = 1024; break;
        }
        const char *why = sr_mqtt_conn_check(&c);
        cr_assert_not_null(why, "case %zu: the broken state passed the check", k);
        cr_assert(strstr(why, names[k]), "case %zu: \"%s\" does not name \"%s\"", k, why, names[k]);
    }
}
