/* tests/fuzz/fuzz_gwanswer.c -- the broker's gateway-message entry
 * (api/broker.c sr_broker_gw_message) with arbitrary bodies for every
 * answer kind: immediate results, control results, periodic data, monitor
 * acks, certificate and fetch requests (issue 11 item 1).
 *
 * The broker runs on its own libuv loop against a real engine (a temporary
 * directory, log not synced: tests/support/brokertest.h) with operator fz: gateways G1 and G2, app A1
 * granted N, I, B, S and Y (not X), and open requests of each kind that are
 * made again once answered: a synchronous IMMEDIATE for N, I and S, a
 * CONTROL of N and one of B (G1), an IMMEDIATE for Y (G2), and a monitor of
 * N and I (its PERIODIC_START request too).
 *
 * Input: byte 0 picks the topic (low 3 bits), the gateway (0x40: G2) and a
 * wrong messageType (0x80); the rest is the body, in which $I $C $B $O $S
 * and $M stand for the ids of those requests and of the monitor, so the
 * fuzzer reaches the checks against a live request. The envelope is built
 * around it.
 *
 * Oracles (abort): the gateway gets exactly one answer, with "0" or an
 * interface.md code; the app's answers carry only values it asked for and
 * may read (never X, never another request's point), an appliedValue of
 * the point's type; no input gets E9001 (an internal error: the engine
 * refusing an event the broker built, or the broker failing on a value).
 * Corpus: tests/fuzz/gwanswer/. */
#include "api/gwif_json.h"
#include "api/slog.h"
#include "brokertest.h"
#include "codecs/events.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SHEET[] = "#suiro-setup-sheet v1\n"
                            "[operator]\nid,name\nfz,Fuzz\n\n"
                            "[gateways]\nid,name,secret\nG1,g1,fuzz-g1-secret-0001\nG2,g2,fuzz-g2-secret-0001\n\n"
                            "[apps]\nid,name,secret,push_url\nA1,a1,fuzz-a1-secret-0001,\n\n"
                            "[facilities]\nid,name\nF,f\n\n"
                            "[equipment]\nid,facility,name\nE,F,e\n\n"
                            "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\nD2,E,G2,d2\n\n"
                            "[datapoints]\nid,device,name,type,unit,min,max,kind\n"
                            "N,D1,n,number,m,0,100,both\nI,D1,i,integer,,,,both\nB,D1,b,boolean,,,,control\n"
                            "S,D1,s,string,,,,both\nX,D1,x,number,,,,measure\nY,D2,y,number,,,,measure\n\n"
                            "[grants]\napp,datapoint,access\nA1,N,both\nA1,I,both\nA1,B,both\nA1,S,both\nA1,Y,read\n";

enum { R_IMM, R_CTL, R_CTLB, R_OTHER, NREQ };

typedef struct slot {
    char id[24];   /* requestId, "" until handed to the gateway */
    int done;      /* the app was answered */
    void *waiter;
} slot;

static bt t;
static sr_broker *bk;
static slot reqs[NREQ];
static char mon_id[24], start_id[24];
static unsigned counter;

/* ---- what the gateways get: the request ids ---------------------------- */

static void on_request(void *arg, const char *gw, json_t *r)
{
    (void)arg;
    const char *id = json_string_value(json_object_get(r, "requestId"));
    const char *type = json_string_value(json_object_get(r, "type"));
    const char *did = json_string_value(json_object_get(r, "dataId"));
    if (!id || !type) abort();
    slot *s = NULL;
    if (!strcmp(gw, "G2")) s = &reqs[R_OTHER];
    else if (!strcmp(type, "IMMEDIATE")) s = &reqs[R_IMM];
    else if (!strcmp(type, "CONTROL")) s = did && !strcmp(did, "B") ? &reqs[R_CTLB] : &reqs[R_CTL];
    else if (!strcmp(type, "PERIODIC_START")) snprintf(start_id, sizeof start_id, "%s", id);
    if (s && !s->done) snprintf(s->id, sizeof s->id, "%s", id);
}

/* ---- what the app gets --------------------------------------------------- */

static const char *const ASKED[NREQ][4] = {{"N", "I", "S", NULL}, {"N", NULL}, {"B", NULL}, {"Y", NULL}};

static int asked(int k, const char *id)
{
    for (int i = 0; id && ASKED[k][i]; i++)
        if (!strcmp(ASKED[k][i], id)) return 1;
    return 0;
}

static void on_app(void *ctx, int status, json_t *body)
{
    slot *s = ctx;
    int k = (int)(s - reqs);
    if (status == 200) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(body, "values"), i, v) if (!asked(k, json_string_value(json_object_get(v, "dataId"))))
            abort(); /* a value the request did not ask for reached the app */
        json_t *ap = json_object_get(body, "appliedValue");
        if (k == R_CTL && ap && !json_is_null(ap) && !json_is_number(ap)) abort();
        if (k == R_CTLB && ap && !json_is_null(ap) && !json_is_boolean(ap)) abort();
    }
    s->done = 1;
    s->waiter = NULL;
}

static void on_monitor(void *ctx, int status, json_t *body)
{
    (void)ctx;
    const char *id = json_string_value(json_object_get(body, "monitorId"));
    if (status == 201 && id) snprintf(mon_id, sizeof mon_id, "%s", id);
}

/* ---- set-up and tear-down ------------------------------------------------- */

static void cleanup(void) { bt_close(&t); }

static void open_req(int k)
{
    static const sr_target T[NREQ][3] = {{{"N", "G1"}, {"I", "G1"}, {"S", "G1"}}, {{"N", "G1"}}, {{"B", "G1"}},
                                         {{"Y", "G2"}}};
    static const size_t NT[NREQ] = {3, 1, 1, 1};
    slot *s = &reqs[k];
    memset(s, 0, sizeof *s);
    int control = k == R_CTL || k == R_CTLB;
    json_t *v = k == R_CTL ? json_real(5) : k == R_CTLB ? json_true() : NULL;
    s->waiter = sr_broker_request(bk, "fz", "A1", control ? SUIRO__V1__REQUEST_KIND__RK_CONTROL : SUIRO__V1__REQUEST_KIND__RK_IMMEDIATE, T[k], NT[k],
                                  600000, 0, v, NULL, on_app, s);
    json_decref(v);
    /* until it is handed to the gateway (or refused) */
    for (int i = 0; i < 100000 && !s->id[0] && !s->done; i++) uv_run(&t.loop, UV_RUN_ONCE);
    if (!s->id[0] && !s->done) abort();
}

static void setup(void)
{
    sr_slog_set_level(SR_LOG_ERROR); /* quiet: refusals are expected */
    static const char *const gws[] = {"G1", "G2"};
    if (bt_open(&t, SHEET, "fz", gws, 2) != SR_OK) abort();
    t.on_request = on_request;
    bk = t.b;
    atexit(cleanup);
    sr_target mt[2] = {{"N", "G1"}, {"I", "G1"}};
    sr_broker_monitor_start(bk, "fz", "A1", mt, 2, 1000, 0, 0, on_monitor, NULL);
    for (int i = 0; i < 100000 && (!mon_id[0] || !start_id[0]); i++) uv_run(&t.loop, UV_RUN_ONCE);
    if (!mon_id[0] || !start_id[0]) abort();
}

/* ---- one input -------------------------------------------------------------- */

typedef struct answer {
    int calls;
    char code[8];
} answer;

static void on_answer(void *ctx, const sr_gw_answer *a)
{
    answer *x = ctx;
    x->calls++;
    if ((unsigned)a->code >= SR_WIRE__COUNT) abort(); /* a row of the wire error table */
    const char *code = sr_wire_code(a->code);
    size_t n = strlen(code);
    if (strcmp(code, "0") && (n != 5 || code[0] != 'E')) abort();
    if (a->code == SR_WIRE_INTERNAL) abort(); /* an internal error: never the answer to a gateway's bytes */
    snprintf(x->code, sizeof x->code, "%s", code);
}

/* body with $X placeholders replaced (JSON-safe: ids are [A-Za-z0-9]) */
static int expand(const uint8_t *in, size_t n, sr_buf *out)
{
    int rc = SR_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        const char *sub = NULL;
        if (in[i] == '$' && i + 1 < n) {
            switch (in[i + 1]) {
            case 'I': sub = reqs[R_IMM].id; break;
            case 'C': sub = reqs[R_CTL].id; break;
            case 'B': sub = reqs[R_CTLB].id; break;
            case 'O': sub = reqs[R_OTHER].id; break;
            case 'S': sub = start_id; break;
            case 'M': sub = mon_id; break;
            }
        }
        if (sub) {
            rc = sr_buf_append(out, sub, strlen(sub));
            i++;
        } else
            rc = sr_buf_append(out, in + i, 1);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[][2] = {
        {"data/immediate", "GW_IMMEDIATE_RESULT"}, {"ack/control", "GW_CONTROL_RESULT"},
        {"data/periodic", "GW_PERIODIC_DATA"},     {"ack/monitor", "GW_MONITOR_ACK"},
        {"req/cert", "GW_CERT_REQ"},               {"req/fetch", "GW_FETCH_REQ"},
        {"data/immediate", "GW_IMMEDIATE_RESULT"}, {"ack/control", "GW_CONTROL_RESULT"},
    };
    if (!bk) setup();
    if (size < 1 || size > 65536) return 0;
    for (int k = 0; k < NREQ; k++)
        if (!reqs[k].id[0] || reqs[k].done) open_req(k);
    int tp = data[0] & 7;
    const char *gw = data[0] & 0x40 ? "G2" : "G1";
    sr_buf env;
    sr_buf_init(&env);
    char head[200];
    snprintf(head, sizeof head,
             "{\"header\":{\"messageType\":\"%s\",\"messageId\":\"f%u\",\"timestamp\":\"2026-01-01T00:00:00.000Z\"},"
             "\"body\":",
             data[0] & 0x80 ? "GW_MEASUREMENTS" : topics[tp][1], ++counter);
    int rc = sr_buf_append(&env, head, strlen(head));
    if (!rc) rc = expand(data + 1, size - 1, &env);
    if (!rc) rc = sr_buf_append(&env, "}", 1);
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&msg, 0, sizeof msg);
    memset(&err, 0, sizeof err);
    if (!rc && sr_gw_parse(env.data, env.len, &msg, &err) == SR_OK) {
        answer a = {0};
        sr_broker_gw_message(bk, "fz", gw, "fuzz", topics[tp][0], &msg, on_answer, &a);
        sr_gw_msg_release(&msg);
        for (int i = 0; i < 100000 && !a.calls; i++) uv_run(&t.loop, UV_RUN_ONCE);
        if (a.calls != 1) abort(); /* no answer, or two */
        /* let the outcome of a finished request reach the app */
        uv_run(&t.loop, UV_RUN_NOWAIT);
        if (a.calls != 1) abort();
    }
    sr_gw_msg_release(&msg); /* a refused envelope may hold its tree too */
    sr_gw_err_clear(&err);
    sr_buf_release(&env);
    return 0;
}
