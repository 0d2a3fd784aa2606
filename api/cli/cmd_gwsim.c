/*
 * api/cli/cmd_gwsim.c -- `suiro gwsim`: the gateway simulator (R-DT-1).
 *
 *   suiro gwsim sheet --gateways N --points M [--operator OP]
 *       print a set-up sheet registering N gateways (SIM0001..) with M number
 *       points each (SP0001_01..), for `suiro sheet import`.
 *
 *   suiro gwsim run --port P [options]
 *   suiro gwsim run --http URL [options]
 *       N gateways over MQTT (libmosquitto, one thread, poll), each sending K
 *       GW_MEASUREMENTS messages of B values (2-decimal random walks, 1 s apart)
 *       with QoS 1 and at most W unacknowledged; after a disconnect it
 *       reconnects and sends again what was not acknowledged (same messageId:
 *       the server stores it once). With --http the same gateways use the
 *       GW-IF HTTP binding instead (libcurl multi, same thread and loop; see
 *       --http below). With --answer the gateways also answer the
 *       server's requests (docs/requests.md) like real ones. Prints a live line
 *       of rates on a terminal and, at the end, a JSON summary: sent,
 *       acknowledged, resent, errors, PUBACK latency p50/p99 (all of these are
 *       about measurement messages only; over HTTP "acknowledged" is a 200
 *       with result code "0" and the latency is that of the POST), requests,
 *       answered, periodic, answers_refused, connect_s (until every gateway
 *       was connected / logged in) and steady_msg_per_s (acknowledged per
 *       second from then on). SIGINT / SIGTERM end the run early: the summary is
 *       printed and the exit code is 0 (unless a gateway's connection was
 *       refused). Otherwise the exit code is 0 when every measurement message
 *       was acknowledged and no connection was refused.
 *
 *   Options of `run` (defaults in brackets):
 *     --port P            the server's MQTT port (required without --http; the TLS
 *                         port with --tls-ca)
 *     --http URL          GW-IF over HTTP(S) instead of MQTT: the server's HTTP
 *                         listener, e.g. http://127.0.0.1:8080 or https://host:8443
 *                         (the /gw/v1 paths are appended; not with --port, --host,
 *                         --mqtt5, --cert, --key). Each gateway logs in with
 *                         POST /gw/v1/sessions {operatorId, gatewayId, secret}
 *                         (201 {token}) and POSTs its messages to
 *                         /gw/v1/measurements with "Authorization: Bearer TOKEN",
 *                         at most W at a time: HTTP/1.1 keep-alive, one connection
 *                         per request in flight, easy handles reused.
 *                         - A 200 with result code "0" acknowledges the message
 *                           as a PUBACK does (counters, latency, --acks).
 *                         - No answer, 408, 429 or 5xx: the same message (same
 *                           messageId, stored once) is sent again after 0.2 s,
 *                           counted as "resent"; while the server does not
 *                           answer, a gateway has one request in flight, not W.
 *                         - 401 (token expired, server restarted): log in again,
 *                           then send it again.
 *                         - Any other 4xx (400 E1001 bad values, 404, 413 ...)
 *                           refuses the message for good: logged, counted in
 *                           "errors" (exit code 1), not sent again.
 *                         A login refused with 400/401/403 stops that gateway (as
 *                         a refused MQTT connection does); a login without answer
 *                         or with 429/5xx is tried again after 0.2 s. At the end
 *                         each gateway logs out (DELETE /gw/v1/sessions/current,
 *                         best effort, at most 1 s). An unreachable server: one
 *                         line on stderr when it stops answering, one when it is
 *                         back.
 *     --host H            the server's address [127.0.0.1]
 *     --gateways N        1..9999 gateways SIM0001.. [4]
 *     --points M          1..99 measurement points per gateway, SP0001_01.. [10]
 *     --operator OP       the operator: topic root wip/v1/OP/gw/GW, username OP/GW [sim]
 *     --batch B           values in one GW_MEASUREMENTS message, 1..5000 [100]
 *     --messages K        GW_MEASUREMENTS messages per gateway; 0 sends none [100]
 *     --window W          at most W unacknowledged measurement messages per gateway [20]
 *     --interval-ms I     each gateway sends one measurement message every I ms
 *                         [as fast as the window allows]
 *     --duration S        stop after S seconds [no limit]
 *     --mqtt5             speak MQTT 5 [3.1.1]
 *     --acks FILE         append one line per measurement PUBACK ("ack GATEWAY
 *                         MESSAGE-NUMBER"), flushed at once
 *     --seed S            seed of the simulated values [1]
 *     --answer            answer requests: after every (re)connect each gateway
 *                         subscribes to R/requests and R/res/# and sends a
 *                         GW_FETCH_REQ {maxItems:100} on R/req/fetch (again while
 *                         the answer comes back full); with --http each gateway
 *                         keeps one long poll POST /gw/v1/requests/fetch
 *                         {maxItems:100, waitMs:25000} open and polls again as
 *                         soon as it is answered, and its answers are POSTed one
 *                         at a time, in order, to /gw/v1/immediate-results,
 *                         /monitor-acks, /periodic-values and /control-results
 *                         (a 200 acknowledges; no answer, 401, 408, 429 or 5xx:
 *                         sent again after 0.2 s or a new login; another 4xx
 *                         refuses it, as a GW_ACK with an error code does; while
 *                         the server does not answer no periodic data is made,
 *                         as while MQTT is disconnected). IMMEDIATE is answered with
 *                         GW_IMMEDIATE_RESULT on R/data/immediate (the current
 *                         value of each point, any dataId: a 2-decimal random
 *                         walk per dataId, see --sheet; stamped with the wall
 *                         clock; each read takes a step); PERIODIC_START
 *                         with GW_MONITOR_ACK on R/ack/monitor, then GW_PERIODIC_DATA
 *                         on R/data/periodic every intervalMs (a repeated start of
 *                         a running monitor is acknowledged again, one timer);
 *                         PERIODIC_STOP stops it and is acknowledged; CONTROL
 *                         stores the value (number, boolean or string; the point
 *                         then holds it) and answers GW_CONTROL_RESULT with it
 *                         read back as appliedValue on R/ack/control, logging a
 *                         request's protection on stderr ("gwsim: control
 *                         REQUESTID protection JSON"). A repeated IMMEDIATE or
 *                         CONTROL (same requestId) gets the very same answer
 *                         message again (same messageId and body; the last 1024
 *                         answers of each gateway are remembered). Answers are
 *                         QoS 1 and counted as "answered" (periodic messages as
 *                         "periodic"); a GW_ACK refusing one is logged and counted
 *                         as "answers_refused". With --answer the run ends only
 *                         at --duration or on a signal, not when the measurement
 *                         messages are all acknowledged.
 *     --control-fail D    (with --answer; repeatable) a CONTROL of data point D
 *                         fails: result {"code":"E4003","message":"simulated
 *                         device failure"}, nothing applied, no appliedValue
 *     --no-answer D       (with --answer; repeatable) an IMMEDIATE or CONTROL that
 *                         involves only data point D (or only such points) is
 *                         not answered (for timeout tests)
 *     --sheet FILE|demo   (with --answer) a set-up sheet (`demo`: the one of `suiro
 *                         init --demo`) giving the data points' types and ranges:
 *                         answered values then have the point's type (number: 2
 *                         decimals, steps of at most 1 % of a narrower range;
 *                         integer: steps of -1..1; boolean: flips now and then;
 *                         string: "OK") and stay within min..max, as the server
 *                         checks; points not in the sheet stay numbers
 *     --gateway-id ID     (one gateway) the gateway's ID instead of SIM0001, e.g.
 *                         GW001 with --operator demo --secret demo-gw001-secret;
 *                         measurement messages keep their SPxxxx data IDs, so
 *                         such runs usually say --messages 0
 *     --secret S          the password (with --http: the login's secret)
 *                         [sim-secret-GATEWAY]
 *     --reference         send the benchmarks' reference data set (api/cli/refset.h)
 *                         instead of the random values: --ref-points P data
 *                         points [1000] at 1 s for --ref-seconds S [600], in
 *                         messages of one point and --batch B consecutive
 *                         seconds (the engine benchmarks' events, in the same
 *                         order), --ref-late-bp L basis points of late values
 *                         [100 = 1 %: half moved 1..20 batches later, half sent
 *                         again there], --ref-seed [42]; timestamps from
 *                         2023-11-15T00:00:00Z. Point p (0-based) is data point
 *                         SP<g>_<j> of gateway g = p % N + 1, j = p / N + 1, so
 *                         the sheet is `gwsim sheet --gateways N --points
 *                         ceil(P / N)` (at most 99). --messages is ignored: each
 *                         gateway sends its points' events. The summary adds
 *                         ref_values_sent (values in every message, duplicates
 *                         included), ref_values_unique (P x S) and ref_hash.
 *     --tls-ca FILE       connect with TLS, trusting the CA certificates in FILE
 *                         (with --http: verify the https:// server against FILE
 *                         instead of the system's CAs; the URL's host must match
 *                         the certificate)
 *     --cert FILE --key FILE
 *                         (with --tls-ca) a client certificate and its key; the
 *                         certificate then authenticates the gateway and no
 *                         username/password is sent unless --secret is given
 */
#include "api/broker.h"
#include "api/cli/cli.h"
#include "api/cli/refset.h"
#include "api/httpu.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "codecs/sheet.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FETCH_MAX 100   /* maxItems of a GW_FETCH_REQ */
#define CACHE_N 1024    /* answers each gateway remembers for repeated requests */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))
#define HTTP_WAIT_MS 25000 /* waitMs of the HTTP long poll */
#define HTTP_RETRY_S 0.2   /* after a failed request, before the next try */
#define OUTQ_MAX 65536     /* answers a gateway queues for HTTP before dropping more */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* the wall clock, RFC 3339 with milliseconds, UTC (the one formatter,
 * codecs/rfc3339.c); out has room for 32 bytes */
static void now_rfc3339(char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char t[32];
    sr_rfc3339_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, t);
    snprintf(out, cap, "%s", t);
}

typedef struct pend {
    int mid;
    uint64_t n;
    double t;
} pend;

/* a data point as --answer sees it: a random walk, or the value a CONTROL set */
typedef struct point {
    char *id;
    const sr_sheet_datapoint *dp; /* its type and range (--sheet), or NULL: a number */
    double v;                     /* the walk (number: 2 decimals; integer; boolean 0/1) */
    json_t *held;                 /* set by CONTROL (number, boolean or string): read back as is */
} point;

typedef struct monitor {
    char *id;
    json_t *data_ids; /* array of strings */
    double every, next_at;
} monitor;

/* an answer sent, kept to send it again when the request comes again */
typedef struct answer {
    const char *type; /* "IMMEDIATE" or "CONTROL" (literals) */
    char *request_id;
    const char *suffix; /* topic under the gateway's root (literal) */
    char *payload;
} answer;

/* --http: one easy handle and what it is doing. Slots are reused: the easy
 * handle keeps its connection settings, the body and answer buffers grow. */
enum { HK_LOGIN, HK_MEAS, HK_FETCH, HK_ANSWER };

typedef struct hslot {
    CURL *e;                 /* created on first use */
    struct gwc *g;           /* the gateway it works for */
    int kind;                /* HK_* */
    int busy;                /* added to the multi handle */
    uint64_t n;              /* HK_MEAS: the message number */
    double t;                /* when the request was started */
    unsigned gen;            /* the login generation whose token hdr carries */
    int auth;                /* hdr has the Authorization line */
    struct curl_slist *hdr;  /* Content-Type, no Expect, Authorization */
    char *body;              /* the request body it owns (HK_MEAS: a buffer of cap) */
    size_t cap;
    char *resp;              /* the answer's body, NUL-terminated */
    size_t nresp, capresp;
    char err[CURL_ERROR_SIZE];
} hslot;

/* an answer waiting for its POST (--http) */
typedef struct outmsg {
    const char *suffix; /* topic suffix (literal): which path */
    char *payload;
} outmsg;

enum { L_NONE, L_PENDING, L_IN }; /* HTTP login state */

typedef struct gwc {
    struct mosquitto *m;
    char id[72];
    int connected, failed;
    double retry_at;
    uint64_t next, acked;
    uint64_t limit; /* measurement messages to send (--messages, or its events with --reference) */
    size_t *ref;    /* --reference: index into sim.rmsg of each of its messages */
    pend *p;
    size_t np, cap;
    double next_at; /* --interval-ms: when this gateway may send next */
    uint64_t *redo; /* message numbers to send again after a reconnect */
    size_t nredo, capredo;
    /* --answer */
    uint64_t seq; /* answers and fetches sent: their messageIds */
    point *pt;
    size_t npt, cappt;
    monitor *mon;
    size_t nmon, capmon;
    answer *cache; /* CACHE_N entries, a ring; allocated on first use */
    size_t cache_next;
    /* --http */
    int login;         /* L_* */
    unsigned gen;      /* incremented by every successful login */
    char token[72];
    double hold_until; /* after a failure nothing is sent before */
    hslot *ms;         /* nms (--window) slots for measurement messages */
    int nms;
    hslot ls, fs, as;  /* login (and logout), long poll, answers */
    double fetch_at, ans_at;
    outmsg *outq;      /* answers to POST, in order; the first is in flight when as.busy */
    size_t nout, capout;
} gwc;

typedef struct sim {
    const char *op, *host;
    int port, ngw, npts, batch, window, v5;
    uint64_t messages, seed;
    FILE *acks;
    gwc *g;
    uint64_t sent, acked, resent, errors;
    uint64_t vacked; /* values in the acknowledged measurement messages */
    /* --reference: every event of the data set, in generation order */
    int reference;
    rs_cfg rcfg;
    rs_stats rstats;
    rs_sample *rsmp;
    size_t nrsmp, caprsmp;
    struct ref_msg {
        uint32_t pidx, n;
        size_t off; /* into rsmp */
    } *rmsg;
    size_t nrmsg, caprmsg;
    double *lat;
    size_t nlat, caplat;
    /* --answer */
    int answering;
    const char **fail_ids, **quiet_ids; /* --control-fail, --no-answer */
    size_t nfail, nquiet;
    char nonce[17]; /* makes this run's messageIds differ from any other run's */
    uint64_t rng;
    uint64_t requests, answered, periodic, refused;
    sr_sheet *sheet; /* --sheet: the data points' types and ranges */
    /* --http */
    const char *url, *secret, *tls_ca; /* the base URL without a trailing '/' */
    CURLM *multi;
    uint64_t dropped; /* measurement messages refused for good (counted in errors too) */
    int http_down;    /* the last request got no answer: said once on stderr */
} sim;

static sim *S;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static uint64_t rnd(sim *s)
{
    return mix(s->seed * 0xD1B54A32D192ED69ull ^ s->rng++);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)rc;
    gwc *g = obj;
    g->connected = 0;
    g->retry_at = now_s() + 0.2;
}

/* measurement message n of g is acknowledged (a PUBACK, or a 200 over HTTP) */
static void count_ack(sim *s, gwc *g, uint64_t n, double sent_at)
{
    double lat = now_s() - sent_at;
    if (s->nlat == s->caplat) {
        s->caplat = s->caplat ? s->caplat * 2 : 4096;
        s->lat = realloc(s->lat, s->caplat * sizeof *s->lat);
    }
    s->lat[s->nlat++] = lat;
    if (s->acks) {
        fprintf(s->acks, "ack %s %llu\n", g->id, (unsigned long long)n);
        fflush(s->acks);
    }
    g->acked++;
    s->acked++;
    s->vacked += s->reference ? s->rmsg[g->ref[n]].n : (uint64_t)s->batch;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    gwc *g = obj;
    for (size_t i = 0; i < g->np; i++)
        if (g->p[i].mid == mid) {
            count_ack(S, g, g->p[i].n, g->p[i].t);
            g->p[i] = g->p[--g->np];
            return;
        }
}

/* The payload of message n of gateway k. Values are a function of (k, n),
 * so a resent message is identical. */
static int build_ref(sim *s, int k, uint64_t n, char *buf, size_t cap);

/* Hand formatting for the value objects: the simulator shares the 2 cores
 * with the server it measures, so it must not spend more per value than the
 * server does (snprintf + gmtime_r per value cost ~0.7 us). */
static char *put_lit(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* "-123.45" from hundredths */
static char *put_cents(char *p, int64_t cents)
{
    uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    if (cents < 0) *p++ = '-';
    p += sr_json_u64(p, a / 100); /* the AP-IF writer's digits */
    *p++ = '.';
    *p++ = (char)('0' + a % 100 / 10);
    *p++ = (char)('0' + a % 10);
    return p;
}

/* one {"dataId":..,"timestamp":..,"value":..} (id already quoted-safe) */
static char *put_value(char *p, const char *id, size_t idn, int64_t ms, int with_ms, int64_t cents)
{
    char ts[32];
    sr_rfc3339_format(ms, ts);
    if (!with_ms) memcpy(ts + 19, "Z", 2); /* "...:SSZ" */
    p = put_lit(p, "{\"dataId\":\"");
    memcpy(p, id, idn);
    p += idn;
    p = put_lit(p, "\",\"timestamp\":\"");
    p = put_lit(p, ts);
    p = put_lit(p, "\",\"value\":");
    p = put_cents(p, cents);
    *p++ = '}';
    return p;
}

/* The GW-IF message kind gwsim sends on topic R/suffix: its topic, route
 * and messageType are the server's (sr_gw_kinds, api/broker.h). */
static const sr_gw_kind *kind(const char *suffix)
{
    const sr_gw_kind *k = sr_gw_kind_of_topic(suffix);
    SR_VERIFY(k); /* a topic of the table */
    return k;
}
#define K_MEASUREMENTS kind("data/measurements")
#define K_IMMEDIATE kind("data/immediate")
#define K_PERIODIC kind("data/periodic")
#define K_MONITOR_ACK kind("ack/monitor")
#define K_CONTROL kind("ack/control")
#define K_FETCH kind("req/fetch")

static int build(sim *s, int k, uint64_t n, char *buf, size_t cap)
{
    if (s->reference) return build_ref(s, k, n, buf, cap);
    int len = snprintf(buf, cap,
                       "{\"header\":{\"messageType\":\"%s\",\"messageId\":\"%s-%llu\","
                       "\"timestamp\":\"2026-01-01T00:00:00.000Z\"},\"body\":{\"values\":[",
                       K_MEASUREMENTS->type, s->g[k].id, (unsigned long long)n);
    char *p = buf + len;
    for (int i = 0; i < s->batch && len > 0 && (size_t)(p - buf) < cap - 200; i++) {
        uint64_t idx = n * (uint64_t)s->batch + (uint64_t)i;
        int pt = (int)(idx % (uint64_t)s->npts) + 1;
        uint64_t sec = idx / (uint64_t)s->npts;
        int64_t cents = (int64_t)(mix(s->seed ^ ((uint64_t)k << 40) ^ idx) % 200000) - 100000;
        char id[24];
        int idn = snprintf(id, sizeof id, "SP%04d_%02d", k + 1, pt);
        if (i) *p++ = ',';
        p = put_value(p, id, (size_t)idn, (int64_t)(1767225600 + sec) * 1000, 0, cents); /* 2026-01-01 */
    }
    if (len <= 0 || (size_t)(p - buf) > cap - 4) return -1;
    p = put_lit(p, "]}}");
    *p = 0;
    return (int)(p - buf);
}

/* --reference: message n of gateway k is reference event g->ref[n] */
static int build_ref(sim *s, int k, uint64_t n, char *buf, size_t cap)
{
    const struct ref_msg *m = &s->rmsg[s->g[k].ref[n]];
    int len = snprintf(buf, cap,
                       "{\"header\":{\"messageType\":\"%s\",\"messageId\":\"%s-%llu\","
                       "\"timestamp\":\"2023-11-15T00:00:00.000Z\"},\"body\":{\"values\":[",
                       K_MEASUREMENTS->type, s->g[k].id, (unsigned long long)n);
    int j = (int)(m->pidx / (uint32_t)s->ngw) + 1;
    char id[24];
    int idn = snprintf(id, sizeof id, "SP%04d_%02d", k + 1, j); /* one point per reference event */
    char *p = buf + len;
    for (uint32_t i = 0; i < m->n && len > 0 && (size_t)(p - buf) < cap - 200; i++) {
        const rs_sample *v = &s->rsmp[m->off + i];
        if (i) *p++ = ',';
        p = put_value(p, id, (size_t)idn, v->ts, 1, v->cents);
    }
    if (len <= 0 || (size_t)(p - buf) > cap - 4) return -1;
    p = put_lit(p, "]}}");
    *p = 0;
    return (int)(p - buf);
}

/* rs_generate's callback: keep the event */
static int ref_keep(void *ctx, uint32_t pidx, uint32_t b, const rs_sample *smp, size_t n)
{
    (void)b;
    sim *s = ctx;
    if (s->nrsmp + n > s->caprsmp) {
        size_t cap = s->caprsmp ? s->caprsmp * 2 : 65536;
        while (cap < s->nrsmp + n) cap *= 2;
        rs_sample *ns = realloc(s->rsmp, cap * sizeof *ns);
        if (!ns) return -1;
        s->rsmp = ns;
        s->caprsmp = cap;
    }
    if (s->nrmsg == s->caprmsg) {
        size_t cap = s->caprmsg ? s->caprmsg * 2 : 4096;
        struct ref_msg *nm = realloc(s->rmsg, cap * sizeof *nm);
        if (!nm) return -1;
        s->rmsg = nm;
        s->caprmsg = cap;
    }
    memcpy(s->rsmp + s->nrsmp, smp, n * sizeof *smp);
    s->rmsg[s->nrmsg++] = (struct ref_msg){pidx, (uint32_t)n, s->nrsmp};
    s->nrsmp += n;
    return 0;
}

/* --reference: generate the data set and give each gateway its points'
 * events (point p to gateway p % N, in generation order); 0 or 1 after
 * saying why */
static int ref_setup(sim *s)
{
    if (rs_generate(&s->rcfg, ref_keep, s, &s->rstats)) {
        fprintf(stderr, "gwsim run: --reference: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < s->nrmsg; i++) s->g[s->rmsg[i].pidx % (uint32_t)s->ngw].limit++;
    for (int k = 0; k < s->ngw; k++) {
        gwc *g = &s->g[k];
        if (!(g->ref = malloc((g->limit ? g->limit : 1) * sizeof *g->ref))) {
            fprintf(stderr, "gwsim run: --reference: out of memory\n");
            return 1;
        }
        g->limit = 0;
    }
    for (size_t i = 0; i < s->nrmsg; i++) {
        gwc *g = &s->g[s->rmsg[i].pidx % (uint32_t)s->ngw];
        g->ref[g->limit++] = i;
    }
    return 0;
}

/* 0 sent; -1 not sent (kept on the redo list: the caller stops sending to
 * this gateway until the next turn of the poll loop) */
static int send_one(sim *s, int k, uint64_t n, int again)
{
    gwc *g = &s->g[k];
    static char buf[1 << 20];
    int len = build(s, k, n, buf, sizeof buf);
    char topic[160];
    snprintf(topic, sizeof topic, "wip/v1/%s/gw/%s/%s", s->op, g->id, K_MEASUREMENTS->suffix);
    int mid = 0;
    int rc = mosquitto_publish(g->m, &mid, topic, len, buf, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        /* not connected after all: keep it for later, and stop sending to
         * this gateway until the poll loop has run (the send loop would
         * otherwise take it back off the redo list and fail again, forever:
         * seen when the server died between a poll and a publish) */
        if (g->nredo == g->capredo) {
            g->capredo = g->capredo ? g->capredo * 2 : 64;
            g->redo = realloc(g->redo, g->capredo * sizeof *g->redo);
        }
        g->redo[g->nredo++] = n;
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) { /* as on_disconnect will say */
            g->connected = 0;
            if (!g->retry_at) g->retry_at = now_s() + 0.2;
        }
        return -1;
    }
    if (g->np == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->p = realloc(g->p, g->cap * sizeof *g->p);
    }
    g->p[g->np++] = (pend){mid, n, now_s()};
    s->sent++;
    if (again) s->resent++;
    return 0;
}

/* ---- answering requests (--answer) ------------------------------------ */

static int listed(const char **ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ids[i], id)) return 1;
    return 0;
}

/* a non-empty array of strings */
static int ids_ok(const json_t *ids)
{
    size_t i;
    json_t *id;
    if (!json_is_array(ids) || !json_array_size(ids)) return 0;
    json_array_foreach(ids, i, id) if (!json_is_string(id)) return 0;
    return 1;
}

/* the range a point's walk keeps to */
static void point_range(const point *p, double *lo, double *hi)
{
    *lo = p->dp && p->dp->has_min ? p->dp->min : -1e6;
    *hi = p->dp && p->dp->has_max ? p->dp->max : 1e6;
}

/* v kept in [lo, hi], with 2 decimals (number) or none (integer) where the range allows */
static double clamp_round(double v, double lo, double hi, int integer)
{
    double q = integer ? 1.0 : 100.0;
    v = round(v * q) / q;
    if (v < lo) v = ceil(lo * q) / q;
    if (v > hi) v = floor(hi * q) / q;
    return v < lo || v > hi ? lo : v; /* no such value in the range: its bound */
}

/* The point, created on first use; NULL when out of memory. Its walk starts
 * at a value keyed by (seed, dataId): without --sheet a number in
 * -1000..1000, with it a value of the point's type within its range. */
static point *point_get(sim *s, gwc *g, const char *id)
{
    for (size_t i = 0; i < g->npt; i++)
        if (!strcmp(g->pt[i].id, id)) return &g->pt[i];
    if (g->npt == g->cappt) {
        size_t cap = g->cappt ? g->cappt * 2 : 16;
        point *np = realloc(g->pt, cap * sizeof *np);
        if (!np) return NULL;
        g->pt = np;
        g->cappt = cap;
    }
    char *dup = strdup(id);
    if (!dup) return NULL;
    point *p = &g->pt[g->npt++];
    *p = (point){.id = dup};
    for (size_t i = 0; s->sheet && i < s->sheet->n_datapoints; i++)
        if (!strcmp(s->sheet->datapoints[i].id, id)) p->dp = &s->sheet->datapoints[i];
    uint64_t h = mix(s->seed ^ fnv(id));
    double frac = (double)(h >> 11) / 9007199254740992.0, lo, hi; /* [0, 1) */
    point_range(p, &lo, &hi);
    if (p->dp && p->dp->type == SR_DP_BOOLEAN) p->v = h & 1;
    else if (p->dp && p->dp->has_min && p->dp->has_max) p->v = lo + frac * (hi - lo);
    else if (p->dp && p->dp->has_min) p->v = lo + frac * 1000;
    else if (p->dp && p->dp->has_max) p->v = hi - frac * 1000;
    else p->v = (double)((int64_t)(h % 200000) - 100000) / 100.0;
    p->v = clamp_round(p->v, lo, hi, p->dp && p->dp->type == SR_DP_INTEGER);
    return p;
}

/* The point's value now (a new reference): the walk takes a step (a number:
 * at most +-1.00, or +-1 % of a narrower range; an integer: -1, 0 or +1; a
 * boolean flips now and then; a string stays "OK"), unless a CONTROL set
 * the value. */
static json_t *point_read(sim *s, point *p)
{
    if (p->held) return json_copy(p->held);
    sr_dp_type type = p->dp ? p->dp->type : SR_DP_NUMBER;
    uint64_t r = rnd(s);
    double lo, hi;
    point_range(p, &lo, &hi);
    switch (type) {
    case SR_DP_BOOLEAN:
        if (r % 10 == 0) p->v = !p->v;
        return json_boolean(p->v != 0);
    case SR_DP_STRING:
        return json_string("OK");
    case SR_DP_INTEGER:
        p->v = clamp_round(p->v + (double)(int)(r % 3) - 1, lo, hi, 1);
        return json_integer((json_int_t)p->v);
    default: {
        double scale = (hi - lo) / 100 < 1 ? (hi - lo) / 100 : 1;
        p->v = clamp_round(p->v + scale * ((double)(r % 201) - 100) / 100, lo, hi, 0);
        return json_real(p->v);
    }
    }
}

/* [{dataId, timestamp, value}, ...] for the data IDs (an array of strings) */
static json_t *read_values(sim *s, gwc *g, const json_t *ids, const char *ts)
{
    json_t *vals = json_array(), *id;
    size_t i;
    if (!vals) return NULL;
    json_array_foreach(ids, i, id) {
        point *p = point_get(s, g, json_string_value(id));
        json_t *v = p ? point_read(s, p) : NULL;
        if (!v) goto fail;
        if (json_array_append_new(vals, json_pack("{s:s,s:s,s:o}", "dataId", p->id, "timestamp", ts, "value", v)))
            goto fail;
    }
    return vals;
fail:
    json_decref(vals);
    return NULL;
}

/* The envelope around body (a reference that is taken over), as text to
 * free; NULL when out of memory. kind 'A' (answers, periodic data) or 'F'
 * (fetches) starts the messageId, then this run's nonce, then a counter. */
static char *envelope(sim *s, gwc *g, char kind, const char *type, json_t *body, const char *ts)
{
    char mid[48];
    if (!body) return NULL;
    snprintf(mid, sizeof mid, "%c%s-%llu", kind, s->nonce, (unsigned long long)++g->seq);
    json_t *env = json_pack("{s:{s:s,s:s,s:s},s:o}", "header", "messageType", type, "messageId", mid, "timestamp",
                            ts, "body", body);
    if (!env) return NULL;
    char *text = json_dumps(env, DUMP_FLAGS);
    json_decref(env);
    return text;
}

static int http_queue(sim *s, gwc *g, const char *suffix, const char *payload);

/* QoS 1 on R/suffix; 0 when handed to libmosquitto */
static int mqtt_send(sim *s, gwc *g, const char *suffix, const char *payload)
{
    char topic[320];
    snprintf(topic, sizeof topic, "wip/v1/%s/gw/%s/%s", s->op, g->id, suffix);
    int rc = mosquitto_publish(g->m, NULL, topic, (int)strlen(payload), payload, 1, false);
    if (rc == MOSQ_ERR_SUCCESS) return 0;
    /* not connected: the server hands the request out again after the reconnect */
    if (rc != MOSQ_ERR_NO_CONN)
        fprintf(stderr, "gwsim: %s: publishing on %s failed: %s\n", g->id, suffix, mosquitto_strerror(rc));
    return -1;
}

/* Send payload (an envelope) as the message of topic R/suffix: QoS 1 over
 * MQTT, or a POST to the matching /gw/v1 path over HTTP (queued, sent in
 * order). 0 when handed to the transport. The answer code below is the same
 * for both. */
static int publish(sim *s, gwc *g, const char *suffix, const char *payload)
{
    return s->url ? http_queue(s, g, suffix, payload) : mqtt_send(s, g, suffix, payload);
}

static void out_of_memory(gwc *g, const char *what)
{
    fprintf(stderr, "gwsim: %s: out of memory (%s)\n", g->id, what);
}

static answer *cache_find(gwc *g, const char *type, const char *request_id)
{
    if (!g->cache) return NULL;
    for (size_t i = 0; i < CACHE_N; i++) {
        answer *a = &g->cache[i];
        if (a->payload && !strcmp(a->type, type) && !strcmp(a->request_id, request_id)) return a;
    }
    return NULL;
}

/* remember the answer (best effort: when out of memory it is just not remembered) */
static void cache_put(gwc *g, const char *type, const char *request_id, const char *suffix, const char *payload)
{
    if (!g->cache && !(g->cache = calloc(CACHE_N, sizeof *g->cache))) return;
    answer *a = &g->cache[g->cache_next];
    char *rid = strdup(request_id), *text = strdup(payload);
    if (!rid || !text) {
        free(rid);
        free(text);
        return;
    }
    free(a->request_id);
    free(a->payload);
    *a = (answer){type, rid, suffix, text};
    g->cache_next = (g->cache_next + 1) % CACHE_N;
}

static void cache_free(gwc *g)
{
    if (!g->cache) return;
    for (size_t i = 0; i < CACHE_N; i++) {
        free(g->cache[i].request_id);
        free(g->cache[i].payload);
    }
    free(g->cache);
    g->cache = NULL;
}

/* Send a new answer to request (type, request_id): the envelope around body
 * (taken over), remembered for a repeated request, counted as answered. */
static void answer_new(sim *s, gwc *g, const char *type, const char *request_id, const sr_gw_kind *k, json_t *body,
                       const char *ts)
{
    char *text = envelope(s, g, 'A', k->type, body, ts);
    if (!text) {
        out_of_memory(g, k->type);
        return;
    }
    if (type) cache_put(g, type, request_id, k->suffix, text);
    if (!publish(s, g, k->suffix, text)) s->answered++;
    free(text);
}

/* {"code":code,"message":message} */
static json_t *failure(sr_wire code, const char *message)
{
    return json_pack("{s:s,s:s}", "code", sr_wire_code(code), "message", message);
}

/* the same request again (the server hands out what it has no answer for):
 * the same message again; 1 if there was one */
static int answer_again(sim *s, gwc *g, const char *type, const char *request_id)
{
    answer *a = cache_find(g, type, request_id);
    if (!a) return 0;
    if (!publish(s, g, a->suffix, a->payload)) s->answered++;
    return 1;
}

static void immediate(sim *s, gwc *g, const char *rid, const json_t *rq)
{
    const json_t *ids = json_object_get(rq, "dataIds");
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    if (!ids_ok(ids)) {
        fprintf(stderr, "gwsim: %s: IMMEDIATE %s without dataIds: answered %s\n", g->id, rid,
                sr_wire_code(SR_WIRE_PARAM));
        answer_new(s, g, "IMMEDIATE", rid, K_IMMEDIATE,
                   json_pack("{s:s,s:[],s:o}", "requestId", rid, "values", "result",
                             failure(SR_WIRE_PARAM, "dataIds: a non-empty array of data IDs is required")),
                   ts);
        return;
    }
    int quiet = 1;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) if (!listed(s->quiet_ids, s->nquiet, json_string_value(id))) quiet = 0;
    if (quiet) {
        fprintf(stderr, "gwsim: %s: IMMEDIATE %s not answered (--no-answer)\n", g->id, rid);
        return;
    }
    if (answer_again(s, g, "IMMEDIATE", rid)) return;
    json_t *vals = read_values(s, g, ids, ts);
    if (!vals) {
        out_of_memory(g, "IMMEDIATE");
        return;
    }
    answer_new(s, g, "IMMEDIATE", rid, K_IMMEDIATE,
               json_pack("{s:s,s:o,s:s}", "requestId", rid, "values", vals, "result", sr_wire_code(SR_WIRE_OK)), ts);
}

static void control(sim *s, gwc *g, const char *rid, const json_t *rq)
{
    const char *did = json_string_value(json_object_get(rq, "dataId"));
    const json_t *val = json_object_get(rq, "value"), *prot = json_object_get(rq, "protection");
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    if (!did) {
        fprintf(stderr, "gwsim: %s: CONTROL %s without dataId: answered %s\n", g->id, rid,
                sr_wire_code(SR_WIRE_PARAM));
        answer_new(s, g, "CONTROL", rid, K_CONTROL,
                   json_pack("{s:s,s:o}", "requestId", rid, "result",
                             failure(SR_WIRE_PARAM, "dataId: a data ID is required")),
                   ts);
        return;
    }
    if (listed(s->quiet_ids, s->nquiet, did)) {
        fprintf(stderr, "gwsim: %s: CONTROL %s not answered (--no-answer)\n", g->id, rid);
        return;
    }
    if (answer_again(s, g, "CONTROL", rid)) return;
    if (prot) {
        char *pj = json_dumps(prot, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(stderr, "gwsim: control %s protection %s\n", rid, pj ? pj : "(out of memory)");
        free(pj);
    }
    json_t *body;
    if (listed(s->fail_ids, s->nfail, did))
        body = json_pack("{s:s,s:s,s:o}", "requestId", rid, "dataId", did, "result",
                         failure(SR_WIRE_DEVICE, "simulated device failure"));
    else if (!json_is_number(val) && !json_is_boolean(val) && !json_is_string(val))
        body = json_pack("{s:s,s:s,s:o}", "requestId", rid, "dataId", did, "result",
                         failure(SR_WIRE_REJECTED, "value: a number, boolean or string is required"));
    else {
        point *p = point_get(s, g, did);
        json_t *copy = p ? json_deep_copy(val) : NULL;
        if (!copy) {
            out_of_memory(g, "CONTROL");
            return;
        }
        json_decref(p->held);
        p->held = copy;
        body = json_pack("{s:s,s:s,s:o,s:s}", "requestId", rid, "dataId", did, "appliedValue", point_read(s, p),
                         "result", sr_wire_code(SR_WIRE_OK));
    }
    answer_new(s, g, "CONTROL", rid, K_CONTROL, body, ts);
}

static monitor *monitor_find(gwc *g, const char *id)
{
    for (size_t i = 0; i < g->nmon; i++)
        if (!strcmp(g->mon[i].id, id)) return &g->mon[i];
    return NULL;
}

static void monitor_ack(sim *s, gwc *g, const char *mon, const char *action, json_t *result)
{
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    if (!result) {
        out_of_memory(g, K_MONITOR_ACK->type);
        return;
    }
    answer_new(s, g, NULL, NULL, K_MONITOR_ACK,
               json_pack("{s:s,s:s,s:o}", "monitorId", mon, "action", action, "result", result), ts);
}

static void periodic_start(sim *s, gwc *g, const char *rid, const json_t *rq)
{
    const char *mon = json_string_value(json_object_get(rq, "monitorId"));
    const json_t *ids = json_object_get(rq, "dataIds"), *iv = json_object_get(rq, "intervalMs");
    if (!mon) {
        fprintf(stderr, "gwsim: %s: PERIODIC_START %s without monitorId ignored\n", g->id, rid);
        return;
    }
    if (!ids_ok(ids) || !json_is_number(iv) || json_number_value(iv) < 1) {
        fprintf(stderr, "gwsim: %s: PERIODIC_START %s without dataIds or intervalMs: acknowledged %s\n",
                g->id, rid, sr_wire_code(SR_WIRE_PARAM));
        monitor_ack(s, g, mon, "START", failure(SR_WIRE_PARAM, "dataIds and intervalMs (>= 1) are required"));
        return;
    }
    json_t *copy = json_deep_copy(ids);
    if (!copy) goto oom;
    monitor *m = monitor_find(g, mon);
    if (m) { /* running already: one timer; the latest points and interval apply */
        json_decref(m->data_ids);
        m->data_ids = copy;
        m->every = json_number_value(iv) / 1000.0;
    } else {
        if (g->nmon == g->capmon) {
            size_t cap = g->capmon ? g->capmon * 2 : 8;
            monitor *nm = realloc(g->mon, cap * sizeof *nm);
            if (!nm) goto oom;
            g->mon = nm;
            g->capmon = cap;
        }
        char *dup = strdup(mon);
        if (!dup) goto oom;
        double every = json_number_value(iv) / 1000.0;
        g->mon[g->nmon++] = (monitor){dup, copy, every, now_s() + every};
    }
    monitor_ack(s, g, mon, "START", json_string(sr_wire_code(SR_WIRE_OK)));
    return;
oom:
    json_decref(copy);
    out_of_memory(g, "PERIODIC_START");
}

static void periodic_stop(sim *s, gwc *g, const char *rid, const json_t *rq)
{
    const char *mon = json_string_value(json_object_get(rq, "monitorId"));
    if (!mon) {
        fprintf(stderr, "gwsim: %s: PERIODIC_STOP %s without monitorId ignored\n", g->id, rid);
        return;
    }
    monitor *m = monitor_find(g, mon);
    if (m) {
        free(m->id);
        json_decref(m->data_ids);
        *m = g->mon[--g->nmon];
    }
    /* a monitor this gateway does not know is stopped as well */
    monitor_ack(s, g, mon, "STOP", json_string(sr_wire_code(SR_WIRE_OK)));
}

static void handle_request(sim *s, gwc *g, const json_t *rq)
{
    const char *rid = json_string_value(json_object_get(rq, "requestId"));
    const char *type = json_string_value(json_object_get(rq, "type"));
    if (!rid || !type) {
        fprintf(stderr, "gwsim: %s: a request without requestId or type ignored\n", g->id);
        return;
    }
    s->requests++;
    if (!strcmp(type, "IMMEDIATE")) immediate(s, g, rid, rq);
    else if (!strcmp(type, "CONTROL")) control(s, g, rid, rq);
    else if (!strcmp(type, "PERIODIC_START")) periodic_start(s, g, rid, rq);
    else if (!strcmp(type, "PERIODIC_STOP")) periodic_stop(s, g, rid, rq);
    else fprintf(stderr, "gwsim: %s: request %s of unknown type '%s' ignored\n", g->id, rid, type);
}

/* Every request of a GW_REQUESTS / GW_FETCH_RES envelope (doc); where names
 * its origin for the log. The number of requests, -1 without body.requests. */
static int handle_requests(sim *s, gwc *g, const json_t *doc, const char *where)
{
    const json_t *rqs = json_object_get(json_object_get(doc, "body"), "requests");
    if (!json_is_array(rqs)) {
        fprintf(stderr, "gwsim: %s: message on %s without body.requests ignored\n", g->id, where);
        return -1;
    }
    size_t i;
    json_t *rq;
    json_array_foreach(rqs, i, rq) handle_request(s, g, rq);
    return (int)json_array_size(rqs);
}

/* GW_FETCH_REQ {maxItems} on R/req/fetch */
static void send_fetch(sim *s, gwc *g)
{
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    char *text = envelope(s, g, 'F', K_FETCH->type, json_pack("{s:i}", "maxItems", FETCH_MAX), ts);
    if (!text) {
        out_of_memory(g, K_FETCH->type);
        return;
    }
    publish(s, g, K_FETCH->suffix, text);
    free(text);
}

/* GW_ACK: only refusals of our answers and fetches are of interest */
static void handle_ack(sim *s, gwc *g, const json_t *msg)
{
    const char *cid = json_string_value(json_object_get(json_object_get(msg, "header"), "correlationId"));
    const json_t *res = json_object_get(json_object_get(msg, "body"), "result");
    const char *code = json_string_value(json_object_get(res, "code"));
    if (!cid || !code || !strcmp(code, sr_wire_code(SR_WIRE_OK))) return;
    if ((cid[0] != 'A' && cid[0] != 'F') || strncmp(cid + 1, s->nonce, 16)) return;
    const char *text = json_string_value(json_object_get(res, "message"));
    fprintf(stderr, "gwsim: %s: %s %s refused: %s %s\n", g->id, cid[0] == 'A' ? "answer" : "fetch", cid, code,
            text ? text : "");
    if (cid[0] == 'A') s->refused++;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    gwc *g = obj;
    sim *s = S;
    char root[320];
    int rl = snprintf(root, sizeof root, "wip/v1/%s/gw/%s/", s->op, g->id);
    if (rl < 0 || (size_t)rl >= sizeof root || strncmp(msg->topic, root, (size_t)rl)) return;
    const char *suffix = msg->topic + rl;
    int is_ack = !strcmp(suffix, "res/ack"), is_fetch = !strcmp(suffix, "res/fetch");
    if (!is_ack && !is_fetch && strcmp(suffix, "requests")) return; /* e.g. res/cert */
    json_error_t je;
    json_t *doc = msg->payloadlen > 0 ? json_loadb(msg->payload, (size_t)msg->payloadlen, 0, &je) : NULL;
    if (!doc) {
        fprintf(stderr, "gwsim: %s: unreadable message on %s: %s\n", g->id, suffix,
                msg->payloadlen > 0 ? je.text : "empty");
        return;
    }
    if (is_ack) {
        handle_ack(s, g, doc);
    } else {
        /* a full page: there may be more */
        if (handle_requests(s, g, doc, suffix) >= FETCH_MAX && is_fetch) send_fetch(s, g);
    }
    json_decref(doc);
}

/* GW_PERIODIC_DATA for every monitor that is due */
static void tick(sim *s, gwc *g, double t)
{
    for (size_t i = 0; i < g->nmon; i++) {
        monitor *m = &g->mon[i];
        if (t < m->next_at) continue;
        m->next_at += m->every;
        if (m->next_at <= t) m->next_at = t + m->every; /* fell behind: no burst */
        if (!g->connected) continue;
        char ts[64];
        now_rfc3339(ts, sizeof ts);
        json_t *vals = read_values(s, g, m->data_ids, ts);
        char *text = vals ? envelope(s, g, 'A', K_PERIODIC->type,
                                     json_pack("{s:s,s:o}", "monitorId", m->id, "values", vals), ts)
                          : NULL;
        if (!text) {
            out_of_memory(g, K_PERIODIC->type);
            continue;
        }
        if (!publish(s, g, K_PERIODIC->suffix, text)) s->periodic++;
        free(text);
    }
}

/* ---- the HTTP binding (--http) ------------------------------------------ */

/* The /gw/v1 path of a message sent on topic R/suffix (the server's table
 * of message kinds, api/broker.h); NULL when HTTP has no such path. */
static const char *http_path(const char *suffix)
{
    const sr_gw_kind *k = sr_gw_kind_of_topic(suffix);
    return k ? k->route : NULL;
}

/* an answer to POST later, in order; 0 when queued */
static int http_queue(sim *s, gwc *g, const char *suffix, const char *payload)
{
    (void)s;
    if (!http_path(suffix)) {
        fprintf(stderr, "gwsim: %s: no HTTP path for %s: not sent\n", g->id, suffix);
        return -1;
    }
    if (g->nout >= OUTQ_MAX) {
        fprintf(stderr, "gwsim: %s: %d answers waiting: one on %s dropped\n", g->id, OUTQ_MAX, suffix);
        return -1;
    }
    if (g->nout == g->capout) {
        size_t cap = g->capout ? g->capout * 2 : 16;
        outmsg *nq = realloc(g->outq, cap * sizeof *nq);
        if (!nq) goto oom;
        g->outq = nq;
        g->capout = cap;
    }
    char *text = strdup(payload);
    if (!text) goto oom;
    g->outq[g->nout++] = (outmsg){suffix, text};
    return 0;
oom:
    out_of_memory(g, suffix);
    return -1;
}

static size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    hslot *h = ud;
    size_t n = size * nmemb;
    if (h->nresp + n + 1 > h->capresp) {
        size_t cap = h->capresp ? h->capresp : 1024;
        while (cap < h->nresp + n + 1) cap *= 2;
        char *nr = cap <= (64u << 20) ? realloc(h->resp, cap) : NULL;
        if (!nr) return 0; /* the transfer fails: tried again */
        h->resp = nr;
        h->capresp = cap;
    }
    memcpy(h->resp + h->nresp, data, n);
    h->nresp += n;
    h->resp[h->nresp] = 0;
    return n;
}

/* Start a request on slot h: POST body (len bytes, kept alive by the caller
 * until it completes) to the base URL + path, with the gateway's token when
 * auth; method NULL is POST. 0 when added to the multi handle. */
static int http_start(sim *s, hslot *h, const char *method, const char *path, const char *body, size_t len, int auth)
{
    gwc *g = h->g;
    if (!h->e) {
        if (!(h->e = curl_easy_init())) return -1;
        curl_easy_setopt(h->e, CURLOPT_PRIVATE, (void *)h);
        curl_easy_setopt(h->e, CURLOPT_WRITEFUNCTION, http_on_body);
        curl_easy_setopt(h->e, CURLOPT_WRITEDATA, (void *)h);
        curl_easy_setopt(h->e, CURLOPT_ERRORBUFFER, h->err);
        curl_easy_setopt(h->e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h->e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(h->e, CURLOPT_PIPEWAIT, 0L);
        curl_easy_setopt(h->e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h->e, CURLOPT_TIMEOUT_MS, h->kind == HK_FETCH ? HTTP_WAIT_MS + 15000L : 30000L);
        if (s->tls_ca) curl_easy_setopt(h->e, CURLOPT_CAINFO, s->tls_ca);
    }
    if (!h->hdr || auth != h->auth || (auth && h->gen != g->gen)) {
        struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json"), *l2 = NULL;
        if (l && (l2 = curl_slist_append(l, "Expect:"))) l = l2; /* no 100-continue round trip */
        if (l && l2 && auth) {
            char line[128];
            snprintf(line, sizeof line, "Authorization: Bearer %s", g->token);
            l2 = curl_slist_append(l, line);
        }
        if (!l2) {
            curl_slist_free_all(l);
            return -1;
        }
        curl_slist_free_all(h->hdr);
        h->hdr = l;
        h->gen = g->gen;
        h->auth = auth;
        curl_easy_setopt(h->e, CURLOPT_HTTPHEADER, h->hdr);
    }
    char url[1200];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    curl_easy_setopt(h->e, CURLOPT_URL, url);
    curl_easy_setopt(h->e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h->e, CURLOPT_CUSTOMREQUEST, method);
    h->nresp = 0;
    if (h->resp) h->resp[0] = 0;
    h->err[0] = 0;
    h->t = now_s();
    if (curl_multi_add_handle(s->multi, h->e) != CURLM_OK) return -1;
    h->busy = 1;
    return 0;
}

/* a transport failure or an answer: said once per outage */
static void http_reached(sim *s, CURLcode cc, const hslot *h)
{
    if (cc != CURLE_OK && !s->http_down) {
        fprintf(stderr, "gwsim: %s: %s (trying again every %.1f s)\n", s->url,
                h->err[0] ? h->err : curl_easy_strerror(cc), HTTP_RETRY_S);
        s->http_down = 1;
    } else if (cc == CURLE_OK && s->http_down) {
        fprintf(stderr, "gwsim: %s: the server answers again\n", s->url);
        s->http_down = 0;
    }
}

/* the answer's body as JSON (NULL if it is none), and its result code and message */
static json_t *http_result(const hslot *h, const char **code, const char **msg)
{
    json_t *doc = h->nresp ? json_loadb(h->resp, h->nresp, 0, NULL) : NULL;
    const json_t *r = json_object_get(doc, "result");
    *code = json_string_value(json_object_get(r, "code"));
    *msg = json_string_value(json_object_get(r, "message"));
    if (!*code) *code = "";
    if (!*msg) *msg = "";
    return doc;
}

/* worth trying again: no answer, 401 (after a new login), 408, 429, 5xx */
static int http_transient(CURLcode cc, long st)
{
    return cc != CURLE_OK || st == 401 || st == 408 || st == 429 || st >= 500 || st < 200;
}

/* a 401 to a request made with login generation gen: log in again (once) */
static void http_relogin(gwc *g, unsigned gen)
{
    if (g->login == L_IN && gen == g->gen) {
        g->login = L_NONE;
        g->connected = 0;
    }
}

static int redo_push(gwc *g, uint64_t n)
{
    if (g->nredo == g->capredo) {
        size_t cap = g->capredo ? g->capredo * 2 : 64;
        uint64_t *nr = realloc(g->redo, cap * sizeof *nr);
        if (!nr) return -1;
        g->redo = nr;
        g->capredo = cap;
    }
    g->redo[g->nredo++] = n;
    return 0;
}

static void http_login(sim *s, gwc *g)
{
    char pass[96];
    snprintf(pass, sizeof pass, "sim-secret-%s", g->id);
    json_t *b = json_pack("{s:s,s:s,s:s}", "operatorId", s->op, "gatewayId", g->id, "secret",
                          s->secret ? s->secret : pass);
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!text) {
        out_of_memory(g, "login");
        g->hold_until = now_s() + HTTP_RETRY_S;
        return;
    }
    free(g->ls.body);
    g->ls.body = text;
    if (http_start(s, &g->ls, NULL, "/gw/v1/sessions", text, strlen(text), 0)) {
        fprintf(stderr, "gwsim: %s: cannot start the login request\n", g->id);
        g->hold_until = now_s() + HTTP_RETRY_S;
        return;
    }
    g->login = L_PENDING;
}

static void http_login_done(sim *s, gwc *g, CURLcode cc, long st)
{
    hslot *h = &g->ls;
    const char *code, *msg;
    json_t *doc = http_result(h, &code, &msg);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    g->login = L_NONE;
    if (st == 201 && tok && strlen(tok) < sizeof g->token) {
        snprintf(g->token, sizeof g->token, "%s", tok);
        g->gen++;
        g->login = L_IN;
        g->connected = 1;
        g->fetch_at = g->ans_at = 0;
    } else if (cc == CURLE_OK && (st == 400 || st == 401 || st == 403)) {
        g->failed = 1;
        s->errors++;
        fprintf(stderr, "gwsim: %s: login refused (HTTP %ld %s %s)\n", g->id, st, code, msg);
    } else {
        if (cc == CURLE_OK && !http_transient(cc, st))
            fprintf(stderr, "gwsim: %s: login: HTTP %ld %s %s\n", g->id, st, code, msg);
        g->hold_until = now_s() + HTTP_RETRY_S;
    }
    json_decref(doc);
}

/* measurement message n of gateway k on a free slot (again: a re-send); -1
 * when no request could be started (the caller keeps n, and nothing is sent
 * for HTTP_RETRY_S) */
static int http_send_one(sim *s, int k, uint64_t n, int again)
{
    gwc *g = &s->g[k];
    hslot *h = NULL;
    for (int i = 0; i < s->window && !h; i++)
        if (!g->ms[i].busy) h = &g->ms[i];
    size_t need = 256 + (size_t)s->batch * 128; /* a value is at most ~80 bytes */
    if (h && h->cap < need) {
        char *nb = realloc(h->body, need);
        if (nb) {
            h->body = nb;
            h->cap = need;
        }
    }
    if (!h || h->cap < need) goto later;
    int len = build(s, k, n, h->body, h->cap);
    h->n = n;
    if (http_start(s, h, NULL, K_MEASUREMENTS->route, h->body, (size_t)len, 1)) goto later;
    g->np++;
    s->sent++;
    if (again) s->resent++;
    return 0;
later:
    fprintf(stderr, "gwsim: %s: cannot start a request (out of memory?)\n", g->id);
    g->hold_until = now_s() + HTTP_RETRY_S;
    return -1;
}

static void http_meas_done(sim *s, hslot *h, CURLcode cc, long st)
{
    gwc *g = h->g;
    g->np--;
    const char *code, *msg;
    json_t *doc = http_result(h, &code, &msg);
    if (st == 200 && !strcmp(code, sr_wire_code(SR_WIRE_OK))) {
        count_ack(s, g, h->n, h->t);
        if (g->login == L_IN) g->connected = 1;
    } else if (!http_transient(cc, st) || st == 200) {
        /* refused for good: sending it again would get the same answer */
        fprintf(stderr, "gwsim: %s: message %s-%llu refused: HTTP %ld %s %s\n", g->id, g->id,
                (unsigned long long)h->n, st, code, msg);
        s->errors++;
        s->dropped++;
    } else {
        if (redo_push(g, h->n)) out_of_memory(g, "re-send list"); /* lost: the run cannot end */
        if (st == 401) http_relogin(g, h->gen);
        else {
            g->hold_until = now_s() + HTTP_RETRY_S;
            if (cc != CURLE_OK) g->connected = 0;
        }
    }
    json_decref(doc);
}

/* the long poll: GW_FETCH_REQ {maxItems, waitMs} */
static void http_fetch(sim *s, gwc *g)
{
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    char *text = envelope(s, g, 'F', K_FETCH->type,
                          json_pack("{s:i,s:i}", "maxItems", FETCH_MAX, "waitMs", HTTP_WAIT_MS), ts);
    if (!text) {
        out_of_memory(g, K_FETCH->type);
        g->fetch_at = now_s() + 1;
        return;
    }
    free(g->fs.body);
    g->fs.body = text;
    if (http_start(s, &g->fs, NULL, K_FETCH->route, text, strlen(text), 1)) {
        fprintf(stderr, "gwsim: %s: cannot start the fetch request\n", g->id);
        g->fetch_at = now_s() + 1;
    }
}

static void http_fetch_done(sim *s, gwc *g, CURLcode cc, long st)
{
    hslot *h = &g->fs;
    if (st == 200) {
        json_error_t je;
        json_t *doc = json_loadb(h->resp ? h->resp : "", h->nresp, 0, &je);
        if (doc) handle_requests(s, g, doc, "requests/fetch");
        else fprintf(stderr, "gwsim: %s: unreadable fetch answer: %s\n", g->id, je.text);
        json_decref(doc);
        if (g->login == L_IN) g->connected = 1;
        g->fetch_at = 0; /* poll again at once */
    } else if (st == 401) {
        http_relogin(g, h->gen);
        g->fetch_at = 0;
    } else if (http_transient(cc, st)) {
        if (cc != CURLE_OK) g->connected = 0;
        g->fetch_at = now_s() + HTTP_RETRY_S;
    } else {
        const char *code, *msg;
        json_t *doc = http_result(h, &code, &msg);
        fprintf(stderr, "gwsim: %s: fetch refused: HTTP %ld %s %s\n", g->id, st, code, msg);
        json_decref(doc);
        g->fetch_at = now_s() + 1;
    }
}

/* POST the first queued answer */
static void http_answer(sim *s, gwc *g)
{
    outmsg *o = &g->outq[0];
    if (http_start(s, &g->as, NULL, http_path(o->suffix), o->payload, strlen(o->payload), 1))
        g->ans_at = now_s() + HTTP_RETRY_S;
}

static void http_answer_done(sim *s, gwc *g, CURLcode cc, long st)
{
    hslot *h = &g->as;
    outmsg *o = &g->outq[0];
    if (st != 200 && http_transient(cc, st)) {
        /* kept first in the queue, sent again */
        if (st == 401) http_relogin(g, h->gen);
        else {
            g->ans_at = now_s() + HTTP_RETRY_S;
            if (cc != CURLE_OK) g->connected = 0;
        }
        return;
    }
    if (st != 200) { /* refused, as by a GW_ACK with an error code */
        const char *code, *msg;
        json_t *doc = http_result(h, &code, &msg);
        json_t *env = json_loads(o->payload, 0, NULL);
        const char *mid = json_string_value(json_object_get(json_object_get(env, "header"), "messageId"));
        fprintf(stderr, "gwsim: %s: answer %s refused: %s %s\n", g->id, mid ? mid : o->suffix, code, msg);
        s->refused++;
        json_decref(env);
        json_decref(doc);
    } else if (g->login == L_IN) {
        g->connected = 1;
    }
    free(o->payload);
    memmove(g->outq, g->outq + 1, --g->nout * sizeof *g->outq);
}

/* what every gateway may start now; the number of gateways not refused */
static int http_schedule(sim *s, double t, double interval)
{
    int alive = 0;
    for (int k = 0; k < s->ngw; k++) {
        gwc *g = &s->g[k];
        if (g->failed) continue;
        alive++;
        if (g->login == L_NONE && !g->ls.busy && t >= g->hold_until) http_login(s, g);
        if (g->login == L_IN && t >= g->hold_until) {
            /* while the server does not answer, one request at a time finds out when it is back */
            size_t window = g->connected ? (size_t)s->window : 1;
            while (g->np < window && (g->nredo || g->next < s->messages)) {
                if (g->nredo) {
                    if (http_send_one(s, k, g->redo[g->nredo - 1], 1)) break;
                    g->nredo--;
                } else if (interval > 0 && t < g->next_at) break;
                else {
                    if (http_send_one(s, k, g->next, 0)) break;
                    g->next++;
                    if (interval > 0) g->next_at = (g->next_at ? g->next_at : t) + interval;
                }
            }
        }
        if (g->nmon) tick(s, g, t);
        if (g->login == L_IN && s->answering) {
            if (!g->fs.busy && t >= g->fetch_at) http_fetch(s, g);
            if (!g->as.busy && g->nout && t >= g->ans_at) http_answer(s, g);
        }
    }
    return alive;
}

static void http_done(sim *s, hslot *h, CURLcode cc)
{
    long st = 0;
    curl_multi_remove_handle(s->multi, h->e);
    h->busy = 0;
    if (cc == CURLE_OK) curl_easy_getinfo(h->e, CURLINFO_RESPONSE_CODE, &st);
    http_reached(s, cc, h);
    gwc *g = h->g;
    switch (h->kind) {
    case HK_LOGIN: http_login_done(s, g, cc, st); break;
    case HK_MEAS: http_meas_done(s, h, cc, st); break;
    case HK_FETCH: http_fetch_done(s, g, cc, st); break;
    case HK_ANSWER: http_answer_done(s, g, cc, st); break;
    }
}

/* wait up to ms for the transfers, run them, and handle every finished one */
static void http_wait(sim *s, int ms)
{
    int running, left;
    CURLMsg *m;
    curl_multi_poll(s->multi, NULL, 0, ms, NULL);
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode cc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        http_done(s, (hslot *)priv, cc);
    }
}

/* the gateways' slots; -1 when out of memory */
static int http_init(sim *s)
{
    if (!(s->multi = curl_multi_init())) return -1;
    /* every request in flight gets its own HTTP/1.1 connection; idle ones stay open */
    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->ngw * (s->window + 3) + 16);
    for (int k = 0; k < s->ngw; k++) {
        gwc *g = &s->g[k];
        if (!(g->ms = calloc((size_t)s->window, sizeof *g->ms))) return -1;
        g->nms = s->window;
        for (int i = 0; i < s->window; i++) g->ms[i] = (hslot){.g = g, .kind = HK_MEAS};
        g->ls = (hslot){.g = g, .kind = HK_LOGIN};
        g->fs = (hslot){.g = g, .kind = HK_FETCH};
        g->as = (hslot){.g = g, .kind = HK_ANSWER};
    }
    return 0;
}

static void hslot_stop(sim *s, hslot *h)
{
    if (h->busy) curl_multi_remove_handle(s->multi, h->e);
    h->busy = 0;
}

/* abort what is in flight, then log every gateway out (best effort, at most 1 s) */
static void http_close(sim *s)
{
    if (!s->multi) return;
    for (int k = 0; k < s->ngw; k++) {
        gwc *g = &s->g[k];
        for (int i = 0; i < g->nms; i++) hslot_stop(s, &g->ms[i]);
        hslot_stop(s, &g->ls);
        hslot_stop(s, &g->fs);
        hslot_stop(s, &g->as);
    }
    int n = 0;
    for (int k = 0; k < s->ngw; k++) {
        gwc *g = &s->g[k];
        if (g->login != L_IN) continue;
        curl_easy_setopt(g->ls.e, CURLOPT_TIMEOUT_MS, 1000L);
        if (!http_start(s, &g->ls, "DELETE", "/gw/v1/sessions/current", "", 0, 1)) n++;
    }
    for (double end = now_s() + 1.0; n > 0 && now_s() < end;) {
        int running, left;
        CURLMsg *m;
        curl_multi_poll(s->multi, NULL, 0, 50, NULL);
        curl_multi_perform(s->multi, &running);
        while ((m = curl_multi_info_read(s->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                char *priv = NULL;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
                hslot_stop(s, (hslot *)priv);
                n--;
            }
    }
    for (int k = 0; k < s->ngw; k++) hslot_stop(s, &s->g[k].ls);
}

static void hslot_free(hslot *h)
{
    if (h->e) curl_easy_cleanup(h->e);
    curl_slist_free_all(h->hdr);
    free(h->body);
    free(h->resp);
}

static void gw_free(gwc *g)
{
    mosquitto_destroy(g->m);
    free(g->ref);
    free(g->p);
    free(g->redo);
    for (size_t i = 0; i < g->npt; i++) {
        free(g->pt[i].id);
        json_decref(g->pt[i].held);
    }
    free(g->pt);
    for (size_t i = 0; i < g->nmon; i++) {
        free(g->mon[i].id);
        json_decref(g->mon[i].data_ids);
    }
    free(g->mon);
    cache_free(g);
    for (int i = 0; i < g->nms; i++) hslot_free(&g->ms[i]);
    free(g->ms);
    hslot_free(&g->ls);
    hslot_free(&g->fs);
    hslot_free(&g->as);
    for (size_t i = 0; i < g->nout; i++) free(g->outq[i].payload);
    free(g->outq);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    gwc *g = obj;
    if (rc == 0) {
        g->connected = 1;
        /* whatever was in flight is sent again (same messageId) */
        for (size_t i = 0; i < g->np; i++) {
            if (g->nredo == g->capredo) {
                g->capredo = g->capredo ? g->capredo * 2 : 64;
                g->redo = realloc(g->redo, g->capredo * sizeof *g->redo);
            }
            g->redo[g->nredo++] = g->p[i].n;
        }
        g->np = 0;
        if (S->answering) {
            /* a clean session: subscribe again, then ask for what is pending */
            char topic[320];
            snprintf(topic, sizeof topic, "wip/v1/%s/gw/%s/requests", S->op, g->id);
            int r1 = mosquitto_subscribe(m, NULL, topic, 1);
            snprintf(topic, sizeof topic, "wip/v1/%s/gw/%s/res/#", S->op, g->id);
            int r2 = mosquitto_subscribe(m, NULL, topic, 1);
            if (r1 != MOSQ_ERR_SUCCESS || r2 != MOSQ_ERR_SUCCESS)
                fprintf(stderr, "gwsim: %s: subscribing failed: %s\n", g->id,
                        mosquitto_strerror(r1 != MOSQ_ERR_SUCCESS ? r1 : r2));
            send_fetch(S, g);
        }
    } else {
        g->failed = 1;
        S->errors++;
        fprintf(stderr, "gwsim: %s: connection refused (%s)\n", g->id, mosquitto_connack_string(rc));
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

extern const unsigned char sr_demo_sheet[];
extern const size_t sr_demo_sheet_len;

/* --sheet FILE (or "demo": the demo sheet of `suiro init --demo`); 0 or 1 after saying why */
static int load_sheet(const char *name, sr_sheet **out)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = 1;
    *out = NULL;
    if (strcmp(name, "demo")) {
        FILE *f = fopen(name, "rb");
        if (!f) {
            fprintf(stderr, "gwsim run: %s: %s\n", name, strerror(errno));
            return 1;
        }
        size_t cap = 0;
        for (;;) {
            if (len == cap) {
                unsigned char *nd = cap < (64u << 20) ? realloc(data, cap ? cap * 2 : 65536) : NULL;
                if (!nd) {
                    fprintf(stderr, "gwsim run: %s: too large or out of memory\n", name);
                    fclose(f);
                    goto out;
                }
                data = nd;
                cap = cap ? cap * 2 : 65536;
            }
            size_t n = fread(data + len, 1, cap - len, f);
            len += n;
            if (n == 0) break;
        }
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            fprintf(stderr, "gwsim run: %s: read error\n", name);
            goto out;
        }
    }
    int prc = strcmp(name, "demo") ? sr_sheet_parse(data, len, NULL, out)
                                    : sr_sheet_parse(sr_demo_sheet, sr_demo_sheet_len, NULL, out);
    if (!*out) {
        fprintf(stderr, "gwsim run: %s: %s\n", name, sr_strerror(prc));
        goto out;
    }
    if (prc || (*out)->n_errors) {
        const sr_sheet_error *e = (*out)->n_errors ? &(*out)->errors[0] : NULL;
        fprintf(stderr, "gwsim run: %s: not a valid set-up sheet (line %zu%s%s: %s)\n", name, e ? e->line : 0,
                e && e->column[0] ? ", column " : "", e ? e->column : "", e ? e->msg : sr_strerror(prc));
        sr_sheet_free(*out);
        *out = NULL;
        goto out;
    }
    rc = 0;
out:
    free(data);
    return rc;
}

typedef struct gopts {
    sim *s;
    const char *port, *host, *http, *op, *gateways, *points, *batch, *messages, *window, *seed, *acks, *duration,
        *interval_ms, *gateway_id, *secret, *tls_ca, *cert, *key, *sheet, *ref_points, *ref_seconds, *ref_late_bp,
        *ref_seed;
    int mqtt5, answer, reference;
} gopts;

static int opt_control_fail(void *o, const char *v)
{
    sim *s = ((gopts *)o)->s;
    s->fail_ids[s->nfail++] = v;
    return 0;
}

static int opt_no_answer(void *o, const char *v)
{
    sim *s = ((gopts *)o)->s;
    s->quiet_ids[s->nquiet++] = v;
    return 0;
}

#define G(n, arg, f, doc) SR_OPT_STR(n, 0, arg, gopts, f, doc)
const sr_opt sr_opts_gwsim_run[] = {
    G("port", "P", port, "the server's MQTT port (the TLS port with --tls-ca)"),
    G("host", "H", host, "the server's address [127.0.0.1]"),
    G("http", "URL", http, "GW-IF over HTTP(S) instead of MQTT: http://HOST:PORT or https://HOST:PORT"),
    G("operator", "OP", op, "the operator [sim]"),
    G("gateways", "N", gateways, "1..9999 gateways SIM0001.. [4]"),
    G("points", "M", points, "1..99 measurement points per gateway [10]"),
    G("batch", "B", batch, "values in one GW_MEASUREMENTS message, 1..5000 [100]"),
    G("messages", "K", messages, "measurement messages per gateway [100]"),
    G("window", "W", window, "at most W unacknowledged messages per gateway [20]"),
    G("interval-ms", "I", interval_ms, "one measurement message every I ms per gateway [as fast as the window allows]"),
    G("duration", "S", duration, "stop after S seconds [no limit]"),
    SR_OPT_FLAG("mqtt5", 0, gopts, mqtt5, "speak MQTT 5 [3.1.1]"),
    G("acks", "FILE", acks, "append one line per acknowledged measurement message"),
    G("seed", "S", seed, "seed of the simulated values [1]"),
    SR_OPT_FLAG("answer", 0, gopts, answer, "answer the server's requests like real gateways"),
    SR_OPT_FN("control-fail", 0, "DATAID", opt_control_fail, "(--answer; repeatable) a CONTROL of DATAID fails"),
    SR_OPT_FN("no-answer", 0, "DATAID", opt_no_answer, "(--answer; repeatable) requests of DATAID are not answered"),
    G("sheet", "FILE|demo", sheet, "(--answer) the set-up sheet giving the points' types and ranges"),
    G("gateway-id", "ID", gateway_id, "(one gateway) its ID instead of SIM0001"),
    G("secret", "S", secret, "the password [sim-secret-GATEWAY]"),
    G("tls-ca", "FILE", tls_ca, "MQTTS (or https://): the CA certificates"),
    G("cert", "FILE", cert, "MQTTS: the gateway's certificate"),
    G("key", "FILE", key, "MQTTS: the gateway's key"),
    SR_OPT_FLAG("reference", 0, gopts, reference, "send the benchmarks' reference data set"),
    G("ref-points", "P", ref_points, "(--reference) data points [1000]"),
    G("ref-seconds", "S", ref_seconds, "(--reference) seconds of 1 s values [600]"),
    G("ref-late-bp", "L", ref_late_bp, "(--reference) basis points of late values [100]"),
    G("ref-seed", "S", ref_seed, "(--reference) seed [42]"),
    SR_OPT_END,
};

int sr_cmd_gwsim_run(const sr_command *cmd, int argc, char **argv)
{
    sim s = {.op = "sim", .host = "127.0.0.1", .ngw = 4, .npts = 10, .batch = 100, .window = 20, .messages = 100,
             .seed = 1, .rcfg = {.points = 1000, .seconds = 600, .late_bp = 100, .seed = 42}};
    const char *ackfile = NULL, *gwid = NULL, *secret = NULL, *tls_ca = NULL, *cert = NULL, *key = NULL,
               *sheetfile = NULL;
    double duration = 0, interval = 0;
    int ngw_given = 0, host_given = 0, rc = 2, lib = 0, curl_lib = 0;
    char *url = NULL; /* --http, without a trailing '/' */
    struct pollfd *pf = NULL;
    struct sigaction sa, old_int, old_term, old_pipe;
    int handlers = 0;
    s.fail_ids = calloc((size_t)argc + 1, sizeof *s.fail_ids);
    s.quiet_ids = calloc((size_t)argc + 1, sizeof *s.quiet_ids);
    if (!s.fail_ids || !s.quiet_ids) {
        fprintf(stderr, "gwsim run: out of memory\n");
        rc = 1;
        goto out;
    }
    gopts go = {.s = &s};
    sr_args pa;
    rc = sr_opts_parse(cmd, argc, argv, &go, &pa);
    if (rc) {
        if (rc == SR_OPTS_HELP) rc = 0;
        goto out;
    }
    rc = 2;
    if (go.port) s.port = atoi(go.port);
    if (go.host) s.host = go.host, host_given = 1;
    if (go.http && !(url = strdup(go.http))) {
        fprintf(stderr, "gwsim run: out of memory\n");
        rc = 1;
        goto out;
    }
    if (go.op) s.op = go.op;
    if (go.gateways) s.ngw = atoi(go.gateways), ngw_given = 1;
    if (go.points) s.npts = atoi(go.points);
    if (go.batch) s.batch = atoi(go.batch);
    if (go.messages) s.messages = strtoull(go.messages, NULL, 10);
    if (go.window) s.window = atoi(go.window);
    if (go.seed) s.seed = strtoull(go.seed, NULL, 10);
    ackfile = go.acks;
    if (go.duration) duration = atof(go.duration);
    if (go.interval_ms) interval = atof(go.interval_ms) / 1000.0;
    s.v5 = go.mqtt5;
    s.answering = go.answer;
    gwid = go.gateway_id;
    secret = go.secret;
    tls_ca = go.tls_ca;
    cert = go.cert;
    key = go.key;
    sheetfile = go.sheet;
    s.reference = go.reference;
    if (go.ref_points) s.rcfg.points = (uint32_t)strtoul(go.ref_points, NULL, 10);
    if (go.ref_seconds) s.rcfg.seconds = (uint32_t)strtoul(go.ref_seconds, NULL, 10);
    if (go.ref_late_bp) s.rcfg.late_bp = (uint32_t)strtoul(go.ref_late_bp, NULL, 10);
    if (go.ref_seed) s.rcfg.seed = strtoull(go.ref_seed, NULL, 10);
    if (gwid && !ngw_given) s.ngw = 1;
    if (url) {
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/') url[--n] = 0;
        int tls = !strncmp(url, "https://", 8);
        if ((!tls && strncmp(url, "http://", 7)) || n <= (size_t)(tls ? 8 : 7) || n > 1000) {
            fprintf(stderr, "gwsim run: --http needs a URL http://HOST:PORT or https://HOST:PORT\n");
            goto out;
        }
        if (s.port || host_given || s.v5 || cert || key) {
            fprintf(stderr, "gwsim run: --http goes without --port, --host, --mqtt5, --cert and --key\n");
            goto out;
        }
        if (tls_ca && !tls) {
            fprintf(stderr, "gwsim run: --tls-ca with --http needs an https:// URL\n");
            goto out;
        }
        s.url = url;
        s.secret = secret;
        s.tls_ca = tls_ca;
    }
    if ((!s.url && s.port <= 0) || s.ngw < 1 || s.ngw > 9999 || s.npts < 1 || s.npts > 99 || s.batch < 1 || s.batch > 5000 ||
        s.window < 1) {
        fprintf(stderr, "gwsim run: need --port or --http, 1..9999 gateways, 1..99 points, batch 1..5000\n");
        goto out;
    }
    if (s.reference) {
        s.rcfg.batch = (uint32_t)s.batch;
        if (!s.rcfg.points || !s.rcfg.seconds || s.rcfg.late_bp > 10000 || s.answering || gwid ||
            (s.rcfg.points + (uint32_t)s.ngw - 1) / (uint32_t)s.ngw > 99) {
            fprintf(stderr, "gwsim run: --reference needs --ref-points and --ref-seconds > 0, --ref-late-bp <= 10000,\n"
                            "  at most 99 points per gateway (--ref-points <= 99 x --gateways), no --answer or --gateway-id\n");
            goto out;
        }
    }
    if (!sr_id_str_ok(s.op)) {
        fprintf(stderr, "gwsim run: --operator '%s': [A-Za-z0-9._-]{1,64}\n", s.op);
        goto out;
    }
    if (gwid && (s.ngw != 1 || !sr_id_str_ok(gwid))) {
        fprintf(stderr, "gwsim run: --gateway-id needs --gateways 1 and an ID [A-Za-z0-9._-]{1,64}\n");
        goto out;
    }
    if ((s.nfail || s.nquiet || sheetfile) && !s.answering) {
        fprintf(stderr, "gwsim run: --control-fail, --no-answer and --sheet need --answer\n");
        goto out;
    }
    if (!cert != !key) {
        fprintf(stderr, "gwsim run: --cert and --key go together\n");
        goto out;
    }
    if (cert && !tls_ca) {
        fprintf(stderr, "gwsim run: --cert needs --tls-ca\n");
        goto out;
    }
    rc = 1;
    {
        const char *files[] = {tls_ca, cert, key};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            FILE *f = files[i] ? fopen(files[i], "r") : NULL;
            if (files[i] && !f) {
                fprintf(stderr, "gwsim run: %s: %s\n", files[i], strerror(errno));
                goto out;
            }
            if (f) fclose(f);
        }
    }
    if (sheetfile && load_sheet(sheetfile, &s.sheet)) goto out;
    if (ackfile && !(s.acks = fopen(ackfile, "a"))) {
        perror(ackfile);
        goto out;
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t n = mix(((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32));
        snprintf(s.nonce, sizeof s.nonce, "%016llx", (unsigned long long)n);
    }
    S = &s;
    if (s.url) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "gwsim run: libcurl cannot start\n");
            goto out;
        }
        curl_lib = 1;
    } else {
        mosquitto_lib_init();
        lib = 1;
    }
    if (!(s.g = calloc((size_t)s.ngw, sizeof *s.g)) || !(pf = calloc((size_t)s.ngw, sizeof *pf))) {
        fprintf(stderr, "gwsim run: out of memory\n");
        goto out;
    }
    for (int k = 0; k < s.ngw; k++) {
        gwc *g = &s.g[k];
        if (gwid) snprintf(g->id, sizeof g->id, "%s", gwid);
        else snprintf(g->id, sizeof g->id, "SIM%04d", k + 1);
    }
    if (s.url && http_init(&s)) {
        fprintf(stderr, "gwsim run: out of memory\n");
        goto out;
    }
    for (int k = 0; k < s.ngw && !s.url; k++) {
        gwc *g = &s.g[k];
        if (!(g->m = mosquitto_new(g->id, true, g))) {
            fprintf(stderr, "gwsim run: %s: cannot create the MQTT client\n", g->id);
            goto out;
        }
        if (secret || !cert) {
            char user[160], pass[96];
            snprintf(user, sizeof user, "%s/%s", s.op, g->id);
            snprintf(pass, sizeof pass, "sim-secret-%s", g->id);
            mosquitto_username_pw_set(g->m, user, secret ? secret : pass);
        }
        if (tls_ca) {
            int r = mosquitto_tls_set(g->m, tls_ca, NULL, cert, key, NULL);
            if (r != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "gwsim run: TLS set-up (--tls-ca %s%s%s): %s\n", tls_ca, cert ? ", --cert " : "",
                        cert ? cert : "", mosquitto_strerror(r));
                goto out;
            }
        }
        mosquitto_int_option(g->m, MOSQ_OPT_PROTOCOL_VERSION, s.v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
        mosquitto_max_inflight_messages_set(g->m, (unsigned)s.window);
        mosquitto_connect_callback_set(g->m, on_connect);
        mosquitto_disconnect_callback_set(g->m, on_disconnect);
        mosquitto_publish_callback_set(g->m, on_publish);
        mosquitto_message_callback_set(g->m, on_message);
        if (mosquitto_connect(g->m, s.host, s.port, 60) != MOSQ_ERR_SUCCESS) {
            g->retry_at = now_s() + 0.2;
        }
    }
    for (int k = 0; k < s.ngw; k++) s.g[k].limit = s.reference ? 0 : s.messages;
    if (s.reference && ref_setup(&s)) goto out;
    /* SIGINT / SIGTERM: stop, print the summary */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (s.url) { /* a server that goes away mid-request must not end the run */
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, &old_pipe);
    }
    handlers = 1;
    double t0 = now_s(), last_print = t0, last_misc = 0;
    double t_all = 0;      /* when every gateway was first connected (logins done) */
    uint64_t acked_all = 0, vacked_all = 0; /* acknowledged by then (messages, values) */
    uint64_t total = 0;
    for (int k = 0; k < s.ngw; k++) total += s.g[k].limit;
    int tty = isatty(2);
    /* with --answer only the clock or a signal ends the run */
    while (!stop_signal && (s.answering || s.acked + s.dropped < total)) {
        double t = now_s();
        if (duration > 0 && t - t0 > duration) break;
        int alive = 0;
        if (s.url) alive = http_schedule(&s, t, interval);
        for (int k = 0; k < s.ngw && !s.url; k++) {
            gwc *g = &s.g[k];
            if (g->failed) continue;
            alive++;
            if (!g->connected && g->retry_at && t >= g->retry_at) {
                g->retry_at = 0;
                if (mosquitto_reconnect(g->m) != MOSQ_ERR_SUCCESS) g->retry_at = t + 0.2;
            }
            while (g->connected && g->np < (size_t)s.window && (g->nredo || g->next < g->limit)) {
                if (g->nredo) {
                    if (send_one(&s, k, g->redo[--g->nredo], 1)) break;
                }
                else if (interval > 0 && t < g->next_at) break;
                else {
                    if (send_one(&s, k, g->next++, 0)) break;
                    if (interval > 0) g->next_at = (g->next_at ? g->next_at : t) + interval;
                }
            }
            if (g->nmon) tick(&s, g, t);
            int fd = mosquitto_socket(g->m);
            pf[k].fd = fd;
            pf[k].events = (short)(fd >= 0 ? POLLIN | (mosquitto_want_write(g->m) ? POLLOUT : 0) : 0);
            pf[k].revents = 0;
        }
        if (!alive) break;
        if (!t_all) {
            int up = 0;
            for (int k = 0; k < s.ngw; k++) up += s.g[k].connected;
            if (up == s.ngw) {
                t_all = t;
                acked_all = s.acked;
                vacked_all = s.vacked;
            }
        }
        if (s.url) http_wait(&s, 20);
        else if (poll(pf, (nfds_t)s.ngw, 20) > 0) {
            for (int k = 0; k < s.ngw; k++) {
                gwc *g = &s.g[k];
                if (pf[k].fd < 0 || g->failed) continue;
                if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) mosquitto_loop_read(g->m, 1);
                if (pf[k].revents & POLLOUT) mosquitto_loop_write(g->m, 1);
            }
        }
        if (!s.url && t - last_misc > 0.05) {
            for (int k = 0; k < s.ngw; k++) mosquitto_loop_misc(s.g[k].m);
            last_misc = t;
        }
        if (tty && t - last_print >= 1.0) {
            fprintf(stderr, "\rgwsim: %llu sent, %llu acknowledged, %.0f msg/s, %.0f points/s",
                    (unsigned long long)s.sent, (unsigned long long)s.acked, (double)s.acked / (t - t0),
                    (double)s.vacked / (t - t0));
            if (s.answering)
                fprintf(stderr, ", %llu requests, %llu answered", (unsigned long long)s.requests,
                        (unsigned long long)s.answered);
            fputs("   ", stderr);
            last_print = t;
        }
    }
    double t_end = now_s(), secs = t_end - t0;
    if (secs <= 0) secs = 1e-9; /* no division by zero in the rates */
    /* the steady rate: from the moment every gateway was logged in */
    double steady = t_all && t_end > t_all ? (double)(s.acked - acked_all) / (t_end - t_all) : 0;
    double steady_v = t_all && t_end > t_all ? (double)(s.vacked - vacked_all) / (t_end - t_all) : 0;
    if (tty) fputc('\n', stderr);
    if (s.url) http_close(&s);
    for (int k = 0; k < s.ngw && !s.url; k++) {
        mosquitto_disconnect(s.g[k].m);
        mosquitto_loop_write(s.g[k].m, 1);
    }
    if (s.nlat) qsort(s.lat, s.nlat, sizeof *s.lat, cmp_d); /* qsort(NULL, 0) is undefined */
    double p50 = s.nlat ? s.lat[s.nlat / 2] * 1000 : 0, p99 = s.nlat ? s.lat[s.nlat * 99 / 100] * 1000 : 0;
    printf("{\"bench\":\"gwsim\",\"gateways\":%d,\"points\":%d,\"batch\":%d,\"sent\":%llu,\"acked\":%llu,"
           "\"resent\":%llu,\"errors\":%llu,\"requests\":%llu,\"answered\":%llu,\"periodic\":%llu,"
           "\"answers_refused\":%llu,\"secs\":%.3f,\"msg_per_s\":%.0f,\"points_per_s\":%.0f,"
           "\"puback_p50_ms\":%.3f,\"puback_p99_ms\":%.3f,\"connect_s\":%.3f,\"steady_msg_per_s\":%.0f,"
           "\"values_acked\":%llu,\"steady_points_per_s\":%.0f",
           s.ngw, s.npts, s.batch, (unsigned long long)s.sent, (unsigned long long)s.acked,
           (unsigned long long)s.resent, (unsigned long long)s.errors, (unsigned long long)s.requests,
           (unsigned long long)s.answered, (unsigned long long)s.periodic, (unsigned long long)s.refused, secs,
           (double)s.acked / secs, (double)s.vacked / secs, p50, p99, t_all ? t_all - t0 : -1.0, steady,
           (unsigned long long)s.vacked, steady_v);
    if (s.reference)
        printf(",\"reference\":true,\"ref_points\":%u,\"ref_seconds\":%u,\"ref_late_bp\":%u,\"ref_seed\":%llu,"
               "\"ref_messages\":%zu,\"ref_values_sent\":%llu,\"ref_values_unique\":%llu,\"ref_hash\":\"%016llx\"",
               s.rcfg.points, s.rcfg.seconds, s.rcfg.late_bp, (unsigned long long)s.rcfg.seed, s.nrmsg,
               (unsigned long long)s.rstats.sent, (unsigned long long)s.rstats.unique,
               (unsigned long long)s.rstats.hash);
    printf("}\n");
    fflush(stdout);
    rc = !s.errors && (s.acked == total || stop_signal) ? 0 : 1;
out:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (s.url) sigaction(SIGPIPE, &old_pipe, NULL);
    }
    if (s.g)
        for (int k = 0; k < s.ngw; k++) gw_free(&s.g[k]);
    free(s.g);
    if (s.multi) curl_multi_cleanup(s.multi);
    if (curl_lib) curl_global_cleanup();
    free(url);
    free(pf);
    free(s.lat);
    free(s.fail_ids);
    free(s.quiet_ids);
    free(s.rsmp);
    free(s.rmsg);
    if (s.acks) fclose(s.acks);
    sr_sheet_free(s.sheet);
    if (lib) mosquitto_lib_cleanup();
    S = NULL;
    return rc;
}

typedef struct shopts {
    const char *gateways, *points, *op;
} shopts;

const sr_opt sr_opts_gwsim_sheet[] = {
    SR_OPT_STR("gateways", 0, "N", shopts, gateways, "1..9999 gateways SIM0001.. [4]"),
    SR_OPT_STR("points", 0, "M", shopts, points, "1..99 number points per gateway, SP0001_01.. [10]"),
    SR_OPT_STR("operator", 0, "OP", shopts, op, "the operator [sim]"),
    SR_OPT_END,
};

int sr_cmd_gwsim_sheet(const sr_command *cmd, int argc, char **argv)
{
    shopts so = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &so, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    const char *op = so.op ? so.op : "sim";
    int ngw = so.gateways ? atoi(so.gateways) : 4, npts = so.points ? atoi(so.points) : 10;
    if (ngw < 1 || ngw > 9999 || npts < 1 || npts > 99) {
        fprintf(stderr, "gwsim sheet: 1..9999 gateways, 1..99 points\n");
        return 2;
    }
    printf("#suiro-setup-sheet v1\n# generated by suiro gwsim sheet\n\n[operator]\nid,name\n%s,Simulated operator\n\n", op);
    printf("[gateways]\nid,name,secret\n");
    for (int k = 1; k <= ngw; k++) printf("SIM%04d,Simulated gateway %d,sim-secret-SIM%04d\n", k, k, k);
    printf("\n[facilities]\nid,name\nSF1,Simulated plant\n\n[equipment]\nid,facility,name\nSE1,SF1,Simulated equipment\n");
    printf("\n[devices]\nid,equipment,gateway,name\n");
    for (int k = 1; k <= ngw; k++) printf("SD%04d,SE1,SIM%04d,Simulated device %d\n", k, k, k);
    printf("\n[datapoints]\nid,device,name,type,unit,min,max,kind\n");
    for (int k = 1; k <= ngw; k++)
        for (int p = 1; p <= npts; p++) printf("SP%04d_%02d,SD%04d,Point %d of %d,number,m3/h,-1000000,1000000,measure\n", k, p, k, p, k);
    return 0;
}
