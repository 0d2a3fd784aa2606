/* tests/api/test_revoke_live.c -- revocation at once (R-ID-4, docs/admin.md
 * "Revocation") on a running server: the whole server (api/server.h) in
 * this process on loopback ports, its clients real sockets (libcurl for
 * AP-IF and GW-IF over HTTP, MQTT 3.1.1 and 5.0 by hand), the registry
 * changed while it serves by submitting RegistryPut events to the server's
 * own engine (sr_server_engine) and by sheet imports into it -- what the
 * Admin API's routes do, without depending on them. It shows: a live app
 * session's next request sees a narrowed grant, and is refused after its
 * app's secret rotated, after it was disabled (the session ended at once,
 * before any request: the hook) and after it was deleted; a disabled app
 * cannot log in; a gateway's MQTT connection is closed (5.0: DISCONNECT
 * 0x87 first) when it is disabled or its secret rotates, and its GW-IF
 * HTTP token is refused; a disabled gateway cannot log in; the sessions'
 * ends are events in the log with their reasons (suiro replay). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/config.h"
#include "api/server.h"
#include "engine/records.h"
#include "engine/secret.h"
#include "engine/sheet.h"
#include "engsuite.h"
#include "testutil.h"

#define SHEET_HEAD                                                                                                     \
    "#suiro-setup-sheet v1\n"                                                                                          \
    "[operator]\nid,name\nrl,Revocation live\n\n"                                                                      \
    "[gateways]\nid,name,secret\nG1,g1,live-g1-secret-0001\n\n"
#define SHEET_MASTERS                                                                                                  \
    "[facilities]\nid,name\nF,f\n\n"                                                                                   \
    "[equipment]\nid,facility,name\nE,F,e\n\n"                                                                         \
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\n\n"                                                             \
    "[datapoints]\nid,device,name,type,unit,min,max,kind\n"                                                            \
    "N,D1,n,number,m,0,100,both\nM,D1,m,number,,,,both\n\n"

static const char *SHEET = SHEET_HEAD "[apps]\nid,name,secret,push_url\nA1,a1,live-a1-secret-0001,\n\n" SHEET_MASTERS
                                      "[grants]\napp,datapoint,access\nA1,N,read\nA1,M,read\n";
/* A1 no longer granted M */
static const char *SHEET_NARROW = SHEET_HEAD "[apps]\nid,name,secret,push_url\nA1,a1,live-a1-secret-0001,\n\n" SHEET_MASTERS
                                             "[grants]\napp,datapoint,access\nA1,N,read\n";
/* A1 deleted */
static const char *SHEET_NO_APP = SHEET_HEAD "[apps]\nid,name,secret,push_url\n\n" SHEET_MASTERS
                                             "[grants]\napp,datapoint,access\n";

static char *dir;
static sr_server *srv;
static sr_engine *eng;
static pthread_t th;
static int http_port, mqtt_port;

/* The server's loop runs on its own thread, which also closes it and then
 * stays (parked): h2o keeps recycled buffers in the loop thread's
 * thread-local lists, which must stay reachable until the process ends. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int closed;

static void *serve(void *arg)
{
    sr_server *s = arg;
    sr_server_run(s);
    sr_server_close(s);
    pthread_mutex_lock(&mu);
    closed = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (;;) pause();
    return NULL;
}

static void start(void)
{
    sr_config c;
    sr_config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    snprintf(c.mqtt_listen, sizeof c.mqtt_listen, "127.0.0.1:0");
    snprintf(c.http_listen, sizeof c.http_listen, "127.0.0.1:0");
    snprintf(c.log_level, sizeof c.log_level, "warn");
    char err[256];
    cr_assert_eq(sr_server_open(&c, &srv, err, sizeof err), SR_OK, "%s", err);
    eng = sr_server_engine(srv);
    http_port = sr_server_http_port(srv);
    mqtt_port = sr_server_mqtt_port(srv);
    closed = 0;
    cr_assert_eq(pthread_create(&th, NULL, serve, srv), 0);
    pthread_detach(th);
}

/* the server's own stop (its signal handler, on its loop), then wait until it closed */
static void stop(void)
{
    kill(getpid(), SIGTERM);
    pthread_mutex_lock(&mu);
    while (!closed) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    srv = NULL;
    eng = NULL;
}

static int import(sr_engine *e, const char *text)
{
    sr_sheet *sh = NULL;
    sr_result res;
    int rc = sr_sheet_parse(text, strlen(text), NULL, &sh);
    if (!rc) rc = sr_engine_import_sheet(e, sh, &res);
    sr_sheet_free(sh);
    return rc;
}

static void setup(void)
{
    dir = tu_tmpdir("revoke-live");
    cr_assert_not_null(dir);
    sr_engine *e = NULL;
    sr_errinfo ei;
    sr_engine_opts o = {0};
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(import(e, SHEET), SR_OK);
    sr_engine_close(e);
    start();
}

static void teardown(void)
{
    if (srv) stop();
    tu_rmrf(dir);
    free(dir);
}

TestSuite(revoke_live, .init = setup, .fini = teardown, .timeout = 120);

/* ---- HTTP ---------------------------------------------------------------------- */

typedef struct body {
    char b[8192];
    size_t n;
} body;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    body *b = ud;
    size_t k = sz * nm;
    if (b->n + k >= sizeof b->b) k = sizeof b->b - 1 - b->n;
    memcpy(b->b + b->n, p, k);
    b->n += k;
    b->b[b->n] = 0;
    return sz * nm;
}

/* The status of METHOD path (JSON body or NULL, bearer token or NULL); the answer in *out. */
static long http(const char *method, const char *path, const char *json, const char *token, body *out)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[512], auth[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", http_port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    out->n = 0;
    out->b[0] = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (json) curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    long st = 0;
    cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, path);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return st;
}

/* POST a session (AP-IF or GW-IF): the status, the token into tok */
static long login(const char *base, const char *idkey, const char *id, const char *secret, char tok[80])
{
    char req[300];
    snprintf(req, sizeof req, "{\"operatorId\":\"rl\",\"%s\":\"%s\",\"secret\":\"%s\"}", idkey, id, secret);
    body b;
    long st = http("POST", base, req, NULL, &b);
    tok[0] = 0;
    json_t *j = json_loads(b.b, 0, NULL);
    if (st == 201) snprintf(tok, 80, "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    return st;
}

static long latest(const char *tok, const char *point, body *b)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/stored-values/latest?dataId=%s", point);
    return http("GET", path, NULL, tok, b);
}

/* ---- the registry, changed while the server runs ------------------------------ */

static void put(sr_reg_kind kind, const char *id, int disabled, const char *secret)
{
    sr_result res;
    cr_assert_eq(es_reg_put(eng, "rl", kind, id, disabled, secret, &res), SR_OK, "%s", res.err.msg);
}

static int count_app(void *ctx, const sr_session_rec *s)
{
    if (s->kind == SR_ACTOR_APP && !strcmp(s->id, "A1")) ++*(int *)ctx;
    return 0;
}

static int app_sessions(void)
{
    int n = 0;
    cr_assert_eq(sr_each_session(eng, count_app, &n), SR_OK);
    return n;
}

/* wait (at most ~20 s) until A1 has n sessions in the index: 1 if so */
static int wait_app_sessions(int n)
{
    for (int i = 0; i < 2000; i++) {
        if (app_sessions() == n) return 1;
        usleep(10000);
    }
    return 0;
}

/* ---- MQTT by hand ---------------------------------------------------------------- */

static size_t put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* read exactly n bytes (at most ~20 s): 0, or -1 at EOF / error / no data in time */
static int read_n(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 20000) != 1) return -1;
        ssize_t k = read(fd, p + got, n - got);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

/* one packet: its type byte, its body in p (cap), -1 at EOF */
static int read_packet(int fd, uint8_t *p, size_t cap, size_t *len)
{
    uint8_t h;
    if (read_n(fd, &h, 1)) return -1;
    size_t rl = 0, mul = 1;
    for (int i = 0; i < 4; i++) {
        uint8_t d;
        if (read_n(fd, &d, 1)) return -1;
        rl += (d & 127) * mul;
        mul *= 128;
        if (!(d & 128)) break;
    }
    cr_assert_leq(rl, cap);
    if (rl && read_n(fd, p, rl)) return -1;
    *len = rl;
    return h;
}

/* CONNECT as gw with secret (version 4 or 5): the socket, *rc the CONNACK's code */
static int mqtt_connect(const char *gw, const char *secret, int version, int *rc)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mqtt_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    uint8_t v[512], pk[520];
    size_t n = put_str(v, "MQTT");
    v[n++] = (uint8_t)version;
    v[n++] = 0xC2; /* user name, password, clean session */
    v[n++] = 0;
    v[n++] = 60;
    if (version == 5) v[n++] = 0; /* no properties */
    char user[160];
    snprintf(user, sizeof user, "rl/%s", gw);
    n += put_str(v + n, gw);
    n += put_str(v + n, user);
    n += put_str(v + n, secret);
    pk[0] = 0x10;
    pk[1] = (uint8_t)n; /* < 128 */
    cr_assert_lt(n, 128);
    memcpy(pk + 2, v, n);
    cr_assert_eq(write(fd, pk, n + 2), (ssize_t)(n + 2));
    size_t len;
    int t = read_packet(fd, v, sizeof v, &len);
    cr_assert_eq(t, 0x20, "CONNACK");
    *rc = v[1];
    return fd;
}

static uint8_t disc_body[256]; /* the last DISCONNECT's body */
static size_t disc_len;

/* until the server closes fd: 1 if it did; *disc the reason of a DISCONNECT before it (-1: none) */
static int wait_closed(int fd, int *disc)
{
    uint8_t p[256];
    size_t len;
    *disc = -1;
    for (int t; (t = read_packet(fd, p, sizeof p, &len)) != -1;)
        if (t == 0xE0) {
            *disc = len ? p[0] : 0;
            memcpy(disc_body, p, len);
            disc_len = len;
        }
    struct pollfd pf = {fd, POLLIN, 0};
    int eof = poll(&pf, 1, 0) == 1 && read(fd, p, 1) == 0;
    close(fd);
    return eof;
}

/* ---- the cases ----------------------------------------------------------------- */

Test(revoke_live, an_app_session_sees_each_change_at_its_next_request)
{
    char tok[80], tok2[80];
    body b;
    cr_assert_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0001", tok), 201);
    cr_expect_eq(latest(tok, "M", &b), 200, "granted M: %s", b.b);
    cr_expect_eq(latest(tok, "N", &b), 200, "%s", b.b);

    /* a grant narrowed while the session lives: its very next request */
    cr_assert_eq(import(eng, SHEET_NARROW), SR_OK);
    cr_expect_eq(latest(tok, "M", &b), 403, "M no longer granted: %s", b.b);
    cr_expect(strstr(b.b, "E2003"), "%s", b.b);
    cr_expect_eq(latest(tok, "N", &b), 200, "the session goes on: %s", b.b);

    /* the secret rotated: the session ends; the old secret logs in no more */
    put(SR_RG_APP, "A1", 0, "live-a1-secret-0002");
    cr_expect_eq(latest(tok, "N", &b), 401, "%s", b.b);
    cr_expect(strstr(b.b, "E2001"), "%s", b.b);
    cr_expect_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0001", tok2), 401);
    cr_assert_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0002", tok2), 201);
    cr_assert(wait_app_sessions(1), "one session of A1: %d", app_sessions());

    /* disabled: the session ends at once, before any request (the hook) */
    put(SR_RG_APP, "A1", 1, NULL);
    cr_expect(wait_app_sessions(0), "the session ended without a request: %d left", app_sessions());
    cr_expect_eq(latest(tok2, "N", &b), 401, "%s", b.b);
    cr_expect_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0002", tok), 401,
                 "a disabled app cannot log in");

    /* enabled again, then deleted */
    put(SR_RG_APP, "A1", 0, NULL);
    cr_assert_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0002", tok), 201);
    cr_assert_eq(import(eng, SHEET_NO_APP), SR_OK);
    cr_expect_eq(latest(tok, "N", &b), 401, "%s", b.b);
    cr_expect(wait_app_sessions(0));
}

/* a GW-IF long poll (POST /gw/v1/requests/fetch, waitMs 30 s) on its own thread */
typedef struct poll_call {
    char tok[80];
    long status;
    body b;
} poll_call;

static void *long_poll(void *arg)
{
    poll_call *p = arg;
    p->status = http("POST", "/gw/v1/requests/fetch",
                     "{\"header\":{\"messageType\":\"GW_FETCH_REQ\",\"messageId\":\"lp1\","
                     "\"timestamp\":\"2026-11-22T00:00:00.000Z\"},\"body\":{\"maxItems\":10,\"waitMs\":30000}}",
                     p->tok, &p->b);
    return NULL;
}

Test(revoke_live, a_gateway_connection_closes_and_its_http_token_dies)
{
    int rc, disc;
    char tok[80];
    body b;
    /* MQTT 5.0 and a GW-IF HTTP session; disabled: both end */
    int fd = mqtt_connect("G1", "live-g1-secret-0001", 5, &rc);
    cr_assert_eq(rc, 0, "connected");
    cr_assert_eq(login("/gw/v1/sessions", "gatewayId", "G1", "live-g1-secret-0001", tok), 201);
    cr_expect_eq(http("GET", "/gw/v1/certificates/platform/platform", NULL, tok, &b), 200, "%s", b.b);
    /* a long poll waiting when the gateway is disabled ends then: 401, nothing handed out (a poll
     * that arrived after the disable is 401 too: its token is dead) */
    static poll_call pc;
    snprintf(pc.tok, sizeof pc.tok, "%s", tok);
    pthread_t lp;
    cr_assert_eq(pthread_create(&lp, NULL, long_poll, &pc), 0);
    usleep(500000); /* let it arrive and wait (it waits 30 s) */
    put(SR_RG_GATEWAY, "G1", 1, NULL);
    cr_expect(wait_closed(fd, &disc), "the server closed the connection");
    cr_expect_eq(disc, 0x87, "5.0: DISCONNECT Not authorized first");
    cr_expect(memmem(disc_body, disc_len, "gateway disabled", 16), "its Reason String says why");
    cr_expect_eq(http("GET", "/gw/v1/certificates/platform/platform", NULL, tok, &b), 401, "%s", b.b);
    pthread_join(lp, NULL);
    cr_expect_eq(pc.status, 401, "the waiting long poll ended: %s", pc.b.b);
    /* a disabled gateway cannot log in */
    fd = mqtt_connect("G1", "live-g1-secret-0001", 5, &rc);
    cr_expect_neq(rc, 0, "refused: 0x%02x", rc);
    close(fd);
    cr_expect_eq(login("/gw/v1/sessions", "gatewayId", "G1", "live-g1-secret-0001", tok), 401);

    /* enabled; MQTT 3.1.1; the secret rotated: the connection closes, the token dies */
    put(SR_RG_GATEWAY, "G1", 0, NULL);
    fd = mqtt_connect("G1", "live-g1-secret-0001", 4, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_eq(login("/gw/v1/sessions", "gatewayId", "G1", "live-g1-secret-0001", tok), 201);
    put(SR_RG_GATEWAY, "G1", 0, "live-g1-secret-0002");
    cr_expect(wait_closed(fd, &disc), "closed after the rotation");
    cr_expect_eq(disc, -1, "3.1.1 has no DISCONNECT from the server");
    cr_expect_eq(http("GET", "/gw/v1/certificates/platform/platform", NULL, tok, &b), 401, "%s", b.b);
    fd = mqtt_connect("G1", "live-g1-secret-0002", 4, &rc);
    cr_expect_eq(rc, 0, "the new secret logs in");
    close(fd);
}

/* The sessions' ends are events with their reasons, read back from the log
 * by the suiro binary after the server stopped. */
static void stop_then_replay(char *out, size_t cap)
{
    stop();
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s replay %s --kind session", SR_SUIRO_BIN, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    pclose(p);
}

Test(revoke_live, the_ends_are_events_with_their_reasons)
{
    char tok[80];
    int rc, disc;
    cr_assert_eq(login("/api/v1/sessions", "appId", "A1", "live-a1-secret-0001", tok), 201);
    put(SR_RG_APP, "A1", 1, NULL);
    cr_assert(wait_app_sessions(0));
    int fd = mqtt_connect("G1", "live-g1-secret-0001", 5, &rc);
    cr_assert_eq(rc, 0);
    put(SR_RG_GATEWAY, "G1", 0, "live-g1-secret-0002");
    cr_assert(wait_closed(fd, &disc));
    static char out[1 << 16];
    stop_then_replay(out, sizeof out);
    cr_expect(strstr(out, "app disabled"), "the app session's end: %s", out);
    cr_expect(strstr(out, "gateway secret rotated"), "the gateway session's end: %s", out);
}
