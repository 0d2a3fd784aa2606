/*
 * api/server.c -- the server loop and the GW-IF MQTT binding.
 *
 * CONNECTION STATES                       TRANSITION
 *   AWAIT_CONNECT -> AUTH                  CONNECT decoded (scrypt check on the thread pool)
 *   AUTH -> ACTIVE                         password verified: CONNACK 0
 *   AUTH -> CLOSING                        refused: CONNACK 0x86 / rc 4, auth event
 *   ACTIVE -> CLOSING                      DISCONNECT, keep-alive expiry, protocol error,
 *                                          takeover by a new connection, server stop
 * INVARIANTS
 *  (1) A QoS 1 PUBLISH is acknowledged (PUBACK, then GW_ACK on R/res/ack)
 *      only from the engine's completion (or the broker's answer), and only
 *      by gw_outcome: a positive PUBACK only when the data is durable (or a
 *      duplicate already stored) or the message itself is refused; a
 *      transient failure is never PUBACKed positively (5.0: 0x97 / 0x80;
 *      3.1.1: the connection is closed so that the gateway resends) and is
 *      logged (docs/mqtt.md "Acknowledgement outcomes").
 *  (2) A connection is freed only when it is closed AND no engine completion
 *      or auth job refers to it (refs == 0).
 *  (3) While a connection has inflight_max messages in the engine, or a
 *      message of it is held because the engine's queue is full (values:
 *      blocked; broker messages: bheld), its socket is not read
 *      (back-pressure).
 *  (4) A gateway publishes and subscribes only under its own topic root
 *      wip/v1/{operatorId}/gw/{gatewayId}.
 */
#include "api/server.h"

#include "api/broker.h"
#include "api/gwif_http.h"
#include "api/gwif_json.h"
#include "api/loopq.h"
#include "api/push.h"
#include "api/slog.h"
#include "codecs/events.pb-c.h"
#include "codecs/mqtt.h"
#include "codecs/rfc3339.h"
#include "engine/evbuild.h"
#include "engine/secret.h"
#include "engine/suiro.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

enum { ST_AWAIT_CONNECT, ST_AUTH, ST_ACTIVE, ST_CLOSING };

typedef struct conn conn;

struct sr_server {
    sr_config cfg;
    uv_loop_t loop;
    uv_tcp_t mqtt, mqtts;
    int mqtt_port, mqtts_port;
    SSL_CTX *tls;
    sr_gwhttp *http;
    sr_broker *broker;
    sr_push *push; /* push to apps (R-AP-17) */
    sr_loopq doneq; /* engine completions, from the writer thread */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick, retry;
    uv_timer_t bretry;        /* broker messages held while the engine's queue is full */
    struct bjob *bheld;       /* ... in arrival order */
    sr_engine *eng;
    sr_key key;
    conn *conns;
    conn *blocked; /* connections waiting for room in the engine's queue */
    struct throttle *thr; /* failed logins per (peer address, operator, gateway) */
    size_t nthr;
    size_t nconns;
    int stopping;
    uint64_t next_conn_id;
    uint64_t start_us[5]; /* startup phases: key, engine, broker (PKI), push, listeners */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct sub {
    char *filter;
    struct sub *next;
} sub;

struct conn {
    uv_tcp_t tcp; /* first: handle->data is not needed */
    sr_server *srv;
    conn *next, *prev;
    uint64_t id;
    int state, version, refs, handle_closed, reading;
    sr_buf rbuf;
    SSL *ssl;            /* TLS listener: the session; bytes pass through memory BIOs */
    BIO *rbio, *wbio;
    sr_buf tlsin;        /* ciphertext read from the socket */
    int tls_ready;
    char cert_cn[160];   /* subject CN of a verified client certificate: "operatorId/gatewayId" */
    char op[72], gw[72], root[200], peer[96];
    uint16_t keepalive;
    uint64_t last_rx;
    uint64_t connected_at;
    int inflight;
    sub *subs;
    int has_will;
    char *will_topic;
    sr_buf will_payload;
    uint16_t next_pid;
    /* back-pressure: a command the engine's queue had no room for, retried
     * by the server's retry timer; nothing more is read meanwhile */
    sr_buf pend_ev;
    struct completion *pend_d;
    conn *blocked_next;
    int blocked;
    int bheld; /* broker messages of this connection held for a retry (queue full) */
};

typedef struct completion {
    sr_loopq_item li;
    conn *c;
    uint16_t packet_id;
    uint8_t qos;
    char msgid[72];
    sr_result res;
} completion;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Connection I/O                                                            */

static void conn_unref(conn *c);

static void on_closed(uv_handle_t *h)
{
    conn *c = (conn *)h;
    c->handle_closed = 1;
    conn_unref(c);
}

static void conn_free(conn *c)
{
    if (c->ssl) SSL_free(c->ssl); /* frees the BIOs */
    sr_buf_release(&c->tlsin);
    sr_buf_release(&c->pend_ev);
    free(c->pend_d);
    sr_buf_release(&c->rbuf);
    sr_buf_release(&c->will_payload);
    free(c->will_topic);
    while (c->subs) {
        sub *n = c->subs->next;
        free(c->subs->filter);
        free(c->subs);
        c->subs = n;
    }
    free(c);
}

static void conn_unref(conn *c)
{
    if (--c->refs == 0) conn_free(c);
}

typedef struct wreq {
    uv_write_t req;
    uv_buf_t buf;
} wreq;

static void on_written(uv_write_t *r, int status)
{
    (void)status;
    wreq *w = (wreq *)r;
    free(w->buf.base);
    free(w);
}

static void raw_send(conn *c, const void *data, size_t len);

/* Ciphertext the TLS session produced goes to the socket. */
static void tls_flush(conn *c)
{
    char tmp[16384];
    int n;
    while ((n = BIO_read(c->wbio, tmp, sizeof tmp)) > 0) raw_send(c, tmp, (size_t)n);
}

static void conn_send(conn *c, const sr_buf *b)
{
    if (c->state == ST_CLOSING || !b->len) return;
    if (c->ssl) {
        if (SSL_write(c->ssl, b->data, (int)b->len) <= 0) return;
        tls_flush(c);
        return;
    }
    raw_send(c, b->data, b->len);
}

static void raw_send(conn *c, const void *data, size_t len)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    sr_buf tmpb = {(uint8_t *)data, len, len};
    const sr_buf *b = &tmpb;
    wreq *w = malloc(sizeof *w);
    char *copy = malloc(b->len);
    if (!w || !copy) {
        free(w);
        free(copy);
        return;
    }
    memcpy(copy, b->data, b->len);
    w->buf = uv_buf_init(copy, (unsigned)b->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written) != 0) {
        free(copy);
        free(w);
    }
}

static void session_event(conn *c, int state, const char *reason);

static void conn_close(conn *c, const char *why, int send_will)
{
    if (c->state == ST_CLOSING) return;
    int was_active = c->state == ST_ACTIVE;
    c->state = ST_CLOSING;
    sr_server *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    if (was_active) {
        sr_slog(SR_LOG_INFO, "gateway disconnected", "op=%s gw=%s peer=%s reason=%s", c->op, c->gw, c->peer,
                sr_slog_q(why));
        session_event(c, send_will ? SUIRO__V1__SESSION_STATE__SS_EXPIRED : SUIRO__V1__SESSION_STATE__SS_DISCONNECTED,
                      why);
        if (s->broker) sr_broker_gw_offline(s->broker, c->op, c->gw, c);
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ------------------------------------------------------------------------ */
/* Engine bridge                                                             */

static void engine_done(void *ctx, const sr_result *r)
{
    completion *d = ctx;
    d->res = *r;
    sr_loopq_push(&d->c->srv->doneq, &d->li);
}

/* Fire-and-forget audit events (sessions, auth failures). */
static void audit_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "audit event not stored", "error=%s", sr_err_name(r->rc));
}

static void submit_audit(sr_server *s, Suiro__V1__Event *ev, const char *op, const char *actor,
                         Suiro__V1__ActorKind kind, const char *peer)
{
    sr_buf b;
    sr_buf_init(&b);
    ev->source = (char *)peer;
    if (sr_ev_pack(ev, op, actor, kind, NULL, &b) == SR_OK) {
        sr_slice sl = {b.data, b.len};
        int rc = sr_engine_submit(s->eng, &sl, 1, audit_done, NULL);
        if (rc) sr_slog(SR_LOG_WARN, "audit event not queued", "error=%s", sr_err_name(rc));
    }
    sr_buf_release(&b);
}

static void session_event(conn *c, int state, const char *reason)
{
    Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
    se.kind = SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY;
    se.id = c->gw;
    se.state = (Suiro__V1__SessionState)state;
    se.protocol = "mqtt";
    se.reason = (char *)reason;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_SESSION;
    ev.session = &se;
    submit_audit(c->srv, &ev, c->op, c->gw, SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY, c->peer);
}

/* Publish to the gateway on one of its topics, if it subscribed (QoS 0);
 * 1 if it did. */
/* Would the gateway get a publish on suffix? (topic: the full name) */
static int wants(conn *c, const char *suffix, char topic[260])
{
    snprintf(topic, 260, "%s/%s", c->root, suffix);
    int match = 0;
    for (sub *x = c->subs; x && !match; x = x->next)
        match = sr_mqtt_topic_match(x->filter, strlen(x->filter), topic, strlen(topic));
    return match && c->state == ST_ACTIVE;
}

static int deliver(conn *c, const char *suffix, const sr_buf *payload)
{
    char topic[260];
    if (!wants(c, suffix, topic)) return 0;
    sr_buf out;
    sr_buf_init(&out);
    sr_mqtt_publish m = {{topic, strlen(topic)}, {payload->data, payload->len}, 0, 0, 0};
    if (sr_mqtt_encode_publish(&out, c->version, &m, 0, NULL) == SR_OK) conn_send(c, &out);
    sr_buf_release(&out);
    return 1;
}

/* the broker pushes requests through this (api/broker.h sr_gwlink) */
static int link_send(void *ctx, const char *suffix, const sr_buf *payload) { return deliver(ctx, suffix, payload); }

static void send_gw_ack(conn *c, const char *msgid, const char *code, const char *message, json_t *detail)
{
    char topic[260];
    if (!wants(c, "res/ack", topic)) return; /* most gateways rely on PUBACK: build nothing */
    sr_buf b;
    sr_buf_init(&b);
    if (sr_gw_ack(msgid, code, message, detail, wall_ms(), &b) == SR_OK) deliver(c, "res/ack", &b);
    sr_buf_release(&b);
}

static void send_puback(conn *c, uint16_t pid, uint8_t reason)
{
    if (!pid) return;
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_ack(&b, c->version, SR_MQTT_PUBACK, pid, c->version == 5 ? reason : 0, NULL) == SR_OK)
        conn_send(c, &b);
    sr_buf_release(&b);
}

static void conn_maybe_resume(conn *c);

/*
 * The one place a QoS 1 PUBLISH is answered (invariant 1; the table is
 * docs/mqtt.md "Acknowledgement outcomes"):
 *   durable (or a duplicate already stored) -> PUBACK 0, GW_ACK 0;
 *   refused (the message itself is invalid: a resend can never succeed)
 *       -> 5.0: PUBACK with the error reason; 3.1.1: PUBACK (it has no
 *          negative one, and holding the packet id would only make the
 *          gateway resend what can never be stored); GW_ACK with the error;
 *   transient (I/O error, no space, read-only, poisoned engine, stopping,
 *       memory, a full queue that could not be held) -> never a positive
 *       PUBACK: a WARN line; GW_ACK with the error (extra, not a
 *       replacement); 5.0: PUBACK 0x97 (quota exceeded: full queue) or 0x80
 *       (unspecified); 3.1.1: the connection is closed without a PUBACK, so
 *       the gateway resends the message on its next connection (a messageId
 *       already stored is stored once).
 * A full queue is normally not an outcome: the message is held and retried
 * (pend_ev / on_retry for values, bheld / on_broker_retry for the broker).
 * reason: the 5.0 reason code of a refusal. Returns 1 if c was closed.
 */
static int gw_outcome(conn *c, uint16_t pid, const char *msgid, int outcome, int busy, uint8_t reason,
                      const char *code, const char *message, json_t *detail)
{
    if (c->state == ST_CLOSING) return 1;
    if (outcome == SR_GW_DURABLE) {
        send_puback(c, pid, 0);
        send_gw_ack(c, msgid, SR_GW_OK, message, detail);
        return 0;
    }
    if (outcome == SR_GW_REFUSED) {
        send_puback(c, pid, reason ? reason : SR_MQTT_RC_IMPL_SPECIFIC);
        send_gw_ack(c, msgid, code, message, detail);
        return 0;
    }
    sr_slog(SR_LOG_WARN, "gateway message not stored", "op=%s gw=%s msgid=%s error=%s detail=%s mqtt=%s", c->op, c->gw,
            sr_slog_q(msgid ? msgid : ""), code, sr_slog_q(message ? message : ""), c->version == 5 ? "5.0" : "3.1.1");
    send_gw_ack(c, msgid, code, message, detail);
    if (c->version == 5) {
        send_puback(c, pid, busy ? SR_MQTT_RC_QUOTA_EXCEEDED : SR_MQTT_RC_UNSPECIFIED);
        return 0;
    }
    if (!pid) return 0; /* QoS 0: no acknowledgement was promised */
    conn_close(c, "message not stored (no negative PUBACK in MQTT 3.1.1): the gateway resends it", 0);
    return 1;
}

/* the outcome of an engine result code */
static int gw_outcome_rc(conn *c, uint16_t pid, const char *msgid, int rc, int duplicate, const char *msg)
{
    if (!rc) return gw_outcome(c, pid, msgid, SR_GW_DURABLE, 0, 0, SR_GW_OK, duplicate ? "duplicate; stored once" : "stored",
                               NULL);
    char m[240];
    snprintf(m, sizeof m, "%s%s", msg && msg[0] ? msg : sr_gw_msg_of_rc(rc),
             sr_gw_outcome_rc(rc) == SR_GW_TRANSIENT ? "; not acknowledged as stored, send it again" : "");
    return gw_outcome(c, pid, msgid, sr_gw_outcome_rc(rc), rc == SR_EFULL, 0, sr_gw_code_of_rc(rc), m, NULL);
}

/* an engine completion, on the loop */
static void on_done(void *ctx, sr_loopq_item *it)
{
    (void)ctx;
    completion *d = SR_CONTAINER(it, completion, li);
    {
        conn *c = d->c;
        c->inflight--;
        if (c->state != ST_CLOSING) {
            /* (1): durable, refused or not stored -- now answer */
            if (!gw_outcome_rc(c, d->packet_id, d->msgid, d->res.rc, d->res.duplicate, d->res.msg)) conn_maybe_resume(c);
        }
        conn_unref(c);
        free(d);
    }
}

/* ------------------------------------------------------------------------ */
/* MQTT                                                                      */

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void process(conn *c);

static void conn_pause(conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void conn_maybe_resume(conn *c)
{
    if (!c->reading && !c->blocked && !c->bheld && c->state != ST_CLOSING && c->inflight < (int)c->srv->cfg.inflight_max) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
    }
}

static void protocol_error(conn *c, uint8_t reason, const char *why)
{
    sr_slog(SR_LOG_WARN, "mqtt protocol error", "peer=%s gw=%s reason=0x%02x detail=%s", c->peer, c->gw, reason,
            sr_slog_q(why));
    if (c->version == 5 && c->state == ST_ACTIVE) {
        sr_buf b;
        sr_buf_init(&b);
        if (sr_mqtt_encode_disconnect(&b, 5, reason, NULL) == SR_OK) conn_send(c, &b);
        sr_buf_release(&b);
    }
    conn_close(c, why, 1);
}

/* ---- login throttling ----------------------------------------------------
 * A password check costs ~50 ms of scrypt, so repeated failures for one
 * (peer address, operator/gateway) are refused without checking, for a time
 * that doubles with each failure past the fifth (at most 5 minutes). Unknown
 * gateways cost nothing (no stored hash, no scrypt). */
enum { THR_MAX = 4096, THR_FREE_FAILS = 5 };

typedef struct throttle {
    char key[200];
    uint32_t fails;
    uint64_t until, last;
} throttle;

static void thr_key(conn *c, char *k, size_t n)
{
    const char *colon = strrchr(c->peer, ':'); /* the address without the port */
    int al = colon ? (int)(colon - c->peer) : (int)strlen(c->peer);
    snprintf(k, n, "%.*s|%s|%s", al, c->peer, c->op, c->gw);
}

static throttle *thr_find(sr_server *s, const char *k)
{
    for (size_t i = 0; i < s->nthr; i++)
        if (!strcmp(s->thr[i].key, k)) return &s->thr[i];
    return NULL;
}

static int thr_blocked(sr_server *s, conn *c)
{
    char k[200];
    thr_key(c, k, sizeof k);
    throttle *t = thr_find(s, k);
    return t && t->until > now_ms();
}

static void thr_result(sr_server *s, conn *c, int ok)
{
    char k[200];
    thr_key(c, k, sizeof k);
    throttle *t = thr_find(s, k);
    if (ok) {
        if (t) *t = s->thr[--s->nthr];
        return;
    }
    if (!t) {
        if (!s->thr && !(s->thr = calloc(THR_MAX, sizeof *s->thr))) return;
        if (s->nthr == THR_MAX) { /* forget the least recent */
            size_t old = 0;
            for (size_t i = 1; i < s->nthr; i++)
                if (s->thr[i].last < s->thr[old].last) old = i;
            s->thr[old] = s->thr[--s->nthr];
        }
        t = &s->thr[s->nthr++];
        memset(t, 0, sizeof *t);
        snprintf(t->key, sizeof t->key, "%s", k);
    }
    t->fails++;
    t->last = now_ms();
    if (t->fails >= THR_FREE_FAILS) {
        uint32_t sh = t->fails - THR_FREE_FAILS;
        uint64_t secs = sh >= 9 ? 300 : (1ull << sh);
        t->until = t->last + (secs > 300 ? 300 : secs) * 1000;
    }
}

typedef struct auth_job {
    uv_work_t w;
    conn *c;
    char secret[300];
    sr_buf stored;
    int ok;
} auth_job;

static void auth_work(uv_work_t *w)
{
    auth_job *j = (auth_job *)w;
    if (!j->ok) j->ok = j->stored.len && sr_secret_verify(j->secret, j->stored.data, j->stored.len);
    memset(j->secret, 0, sizeof j->secret);
}

static void connack(conn *c, uint8_t reason)
{
    sr_buf b;
    sr_buf_init(&b);
    uint8_t code = reason;
    if (c->version == 4) {
        int rc311 = sr_mqtt_connack_rc311(reason);
        code = (uint8_t)(rc311 < 0 ? 5 : rc311);
    }
    sr_mqtt_props p;
    memset(&p, 0, sizeof p);
    if (c->version == 5 && reason == 0) {
        p.present = SR_MQTT_P_RECEIVE_MAX | SR_MQTT_P_MAX_PACKET_SIZE | SR_MQTT_P_MAX_QOS | SR_MQTT_P_RETAIN_AVAILABLE;
        p.receive_max = (uint16_t)(c->srv->cfg.inflight_max > 65535 ? 65535 : c->srv->cfg.inflight_max);
        p.max_packet_size = c->srv->cfg.mqtt_max_packet;
        p.max_qos = 1;
        p.retain_available = 1;
    }
    if (sr_mqtt_encode_connack(&b, c->version, 0, code, c->version == 5 ? &p : NULL) == SR_OK) conn_send(c, &b);
    sr_buf_release(&b);
}

static void auth_after(uv_work_t *w, int status)
{
    auth_job *j = (auth_job *)w;
    conn *c = j->c;
    if (c->state == ST_AUTH) {
        if (status == 0 && j->ok) {
            /* session takeover: an older connection of the same gateway goes */
            for (conn *o = c->srv->conns; o;) {
                conn *n = o->next;
                if (o != c && o->state == ST_ACTIVE && !strcmp(o->op, c->op) && !strcmp(o->gw, c->gw)) {
                    if (o->version == 5) {
                        sr_buf b;
                        sr_buf_init(&b);
                        if (sr_mqtt_encode_disconnect(&b, 5, SR_MQTT_RC_SESSION_TAKEN_OVER, NULL) == SR_OK)
                            conn_send(o, &b);
                        sr_buf_release(&b);
                    }
                    conn_close(o, "session taken over", 0);
                }
                o = n;
            }
            c->state = ST_ACTIVE;
            thr_result(c->srv, c, 1);
            snprintf(c->root, sizeof c->root, "wip/v1/%s/gw/%s", c->op, c->gw);
            connack(c, 0);
            sr_slog(SR_LOG_INFO, "gateway connected", "op=%s gw=%s peer=%s mqtt=%s", c->op, c->gw, c->peer,
                    c->version == 5 ? "5.0" : "3.1.1");
            session_event(c, SUIRO__V1__SESSION_STATE__SS_CONNECTED, "");
            sr_gwlink link = {c, link_send};
            sr_broker_gw_online(c->srv->broker, c->op, c->gw, &link);
            /* packets that arrived while authenticating */
            process(c);
            conn_maybe_resume(c);
        } else {
            sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s", c->op, c->gw, c->peer);
            if (j->stored.len) thr_result(c->srv, c, 0); /* only checks that cost scrypt count */
            Suiro__V1__AuthEvent ae = SUIRO__V1__AUTH_EVENT__INIT;
            ae.kind = SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY;
            ae.principal = c->gw;
            ae.method = "password";
            ae.reason = "bad user name or password";
            Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
            ev.body_case = SUIRO__V1__EVENT__BODY_AUTH;
            ev.auth = &ae;
            if (c->op[0]) submit_audit(c->srv, &ev, c->op, c->gw, SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY, c->peer);
            connack(c, SR_MQTT_RC_BAD_USER_OR_PASSWORD);
            conn_close(c, "login refused", 0);
        }
    }
    sr_buf_release(&j->stored);
    free(j);
    conn_unref(c);
}

static void handle_connect(conn *c, const sr_mqtt_pkt *p)
{
    c->version = p->version;
    c->keepalive = p->connect.keep_alive;
    if (c->keepalive > c->srv->cfg.keepalive_max_s) c->keepalive = (uint16_t)c->srv->cfg.keepalive_max_s;
    /* client id = gatewayId; user name = operatorId/gatewayId */
    const sr_mqtt_str *cid = &p->connect.client_id, *un = &p->connect.username;
    if (c->cert_cn[0]) {
        /* a verified client certificate authenticates: its subject CN is
         * operatorId/gatewayId; the client id (and a user name, if given) must agree */
        char want[160];
        int okc = cid->len && cid->len < sizeof c->gw;
        const char *cs = strchr(c->cert_cn, '/');
        if (okc && cs) {
            snprintf(want, sizeof want, "%.*s", (int)cid->len, cid->s);
            okc = !strcmp(cs + 1, want) && (size_t)(cs - c->cert_cn) < sizeof c->op;
        } else
            okc = 0;
        if (okc && p->connect.has_username)
            okc = un->len == strlen(c->cert_cn) && !memcmp(un->s, c->cert_cn, un->len);
        c->version = p->version;
        if (!okc) {
            c->state = ST_AUTH;
            connack(c, SR_MQTT_RC_NOT_AUTHORIZED);
            sr_slog(SR_LOG_WARN, "gateway login refused", "peer=%s cert=%s detail=%s", c->peer, sr_slog_q(c->cert_cn),
                    sr_slog_q("client id / user name do not match the certificate"));
            conn_close(c, "certificate does not match", 0);
            return;
        }
        snprintf(c->op, sizeof c->op, "%.*s", (int)(cs - c->cert_cn), c->cert_cn);
        snprintf(c->gw, sizeof c->gw, "%s", cs + 1);
        auth_job *j = calloc(1, sizeof *j);
        if (!j) {
            conn_close(c, "out of memory", 0);
            return;
        }
        j->c = c;
        j->ok = 1; /* no password to check; the job only orders the steps */
        sr_buf_init(&j->stored);
        c->state = ST_AUTH;
        c->refs++;
        conn_pause(c);
        if (uv_queue_work(&c->srv->loop, &j->w, auth_work, auth_after) != 0) {
            c->refs--;
            free(j);
            conn_close(c, "cannot queue the login", 0);
        }
        return;
    }
    const char *slash = un->len ? memchr(un->s, '/', un->len) : NULL;
    if (!p->connect.has_username || !p->connect.has_password || !slash || cid->len == 0 || cid->len >= sizeof c->gw ||
        (size_t)(slash - un->s) >= sizeof c->op || un->len - (size_t)(slash - un->s) - 1 != cid->len ||
        memcmp(slash + 1, cid->s, cid->len) != 0 || p->connect.password.len >= 300) {
        c->state = ST_AUTH; /* so that connack reports it */
        connack(c, p->connect.has_username ? SR_MQTT_RC_BAD_USER_OR_PASSWORD : SR_MQTT_RC_NOT_AUTHORIZED);
        sr_slog(SR_LOG_WARN, "gateway login refused", "peer=%s detail=%s", c->peer,
                sr_slog_q("user name must be operatorId/gatewayId with gatewayId = client id, and a password"));
        conn_close(c, "bad credentials form", 0);
        return;
    }
    memcpy(c->gw, cid->s, cid->len);
    c->gw[cid->len] = 0;
    memcpy(c->op, un->s, (size_t)(slash - un->s));
    c->op[slash - un->s] = 0;
    if (p->connect.will) {
        c->has_will = 1;
        c->will_topic = strndup(p->connect.will_topic.s, p->connect.will_topic.len);
        (void)!sr_buf_append(&c->will_payload, p->connect.will_payload.data, p->connect.will_payload.len);
    }
    if (thr_blocked(c->srv, c)) {
        thr_result(c->srv, c, 0); /* hammering while blocked prolongs the block */
        c->state = ST_AUTH;
        connack(c, c->version == 5 ? SR_MQTT_RC_SERVER_BUSY : SR_MQTT_RC_NOT_AUTHORIZED);
        sr_slog(SR_LOG_WARN, "gateway login throttled", "op=%s gw=%s peer=%s", c->op, c->gw, c->peer);
        conn_close(c, "too many failed logins", 0);
        return;
    }
    auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        conn_close(c, "out of memory", 0);
        return;
    }
    j->c = c;
    memcpy(j->secret, p->connect.password.data, p->connect.password.len);
    sr_buf_init(&j->stored);
    sr_buf reg;
    sr_buf_init(&reg);
    if (sr_engine_registry_get(c->srv->eng, c->op, SUIRO__V1__REGISTRY_KIND__RG_GATEWAY, c->gw, &reg) == SR_OK) {
        Suiro__V1__RegistryPut *rp = suiro__v1__registry_put__unpack(NULL, reg.len, reg.data);
        if (rp) {
            (void)!sr_buf_append(&j->stored, rp->secret_hash.data, rp->secret_hash.len);
            suiro__v1__registry_put__free_unpacked(rp, NULL);
        }
    }
    sr_buf_release(&reg);
    c->state = ST_AUTH;
    c->refs++;
    conn_pause(c); /* packets after CONNECT wait for the verdict */
    if (uv_queue_work(&c->srv->loop, &j->w, auth_work, auth_after) != 0) {
        c->refs--;
        sr_buf_release(&j->stored);
        free(j);
        conn_close(c, "cannot queue the login check", 0);
    }
}

/* topic must be R/<suffix>; returns the suffix or NULL */
static const char *own_suffix(conn *c, const sr_mqtt_str *t, char *buf, size_t cap)
{
    size_t rl = strlen(c->root);
    if (t->len >= cap || t->len <= rl + 1 || memcmp(t->s, c->root, rl) != 0 || t->s[rl] != '/') return NULL;
    memcpy(buf, t->s, t->len);
    buf[t->len] = 0;
    return buf + rl + 1;
}

static void process(conn *c);

/* Submit the blocked connections' pending commands again (in the order they
 * blocked); a connection that got through reads on. */
static void on_retry(uv_timer_t *t)
{
    sr_server *s = t->data;
    conn *list = s->blocked, *keep = NULL;
    s->blocked = NULL;
    while (list) {
        conn *c = list;
        list = c->blocked_next;
        int rc = SR_EFULL;
        if (c->state != ST_CLOSING) {
            sr_slice sl = {c->pend_ev.data, c->pend_ev.len};
            rc = sr_engine_submit(s->eng, &sl, 1, engine_done, c->pend_d);
        }
        if (rc == SR_EFULL && c->state != ST_CLOSING) {
            c->blocked_next = keep;
            keep = c;
            continue;
        }
        c->blocked = 0;
        if (rc == SR_OK) {
            c->pend_d = NULL; /* owned by the engine until engine_done */
            c->refs++;
            c->inflight++;
        } else if (c->state != ST_CLOSING)
            (void)gw_outcome_rc(c, c->pend_d->packet_id, c->pend_d->msgid, rc, 0, NULL);
        if (c->pend_d) {
            free(c->pend_d);
            c->pend_d = NULL;
        }
        if (c->state != ST_CLOSING) {
            process(c); /* what was read before blocking */
            conn_maybe_resume(c);
        }
        conn_unref(c);
    }
    /* keep the original order */
    while (keep) {
        conn *c = keep;
        keep = c->blocked_next;
        c->blocked_next = s->blocked;
        s->blocked = c;
    }
    if (!s->blocked) uv_timer_stop(&s->retry);
}

/* Hand a built event to the engine; acknowledge from its completion, or
 * keep it for a retry while the queue is full (back-pressure). */
static void submit_values(conn *c, const sr_mqtt_pkt *p, const char *msgid, const sr_buf *ev)
{
    const sr_mqtt_publish *m = &p->publish;
    int rc = SR_OK;
    completion *d = calloc(1, sizeof *d);
    sr_slice sl = {ev->data, ev->len};
    if (!d) rc = SR_ENOMEM;
    else {
        d->c = c;
        d->packet_id = p->packet_id;
        d->qos = m->qos;
        snprintf(d->msgid, sizeof d->msgid, "%s", msgid);
        rc = sr_engine_submit(c->srv->eng, &sl, 1, engine_done, d);
    }
    if (rc == SR_OK) {
        c->refs++;
        c->inflight++;
        if (c->inflight >= (int)c->srv->cfg.inflight_max) conn_pause(c); /* (3) */
    } else if (rc == SR_EFULL) {
        /* (3): no acknowledgement yet; keep it, stop reading, retry */
        c->pend_ev.len = 0;
        if (sr_buf_append(&c->pend_ev, ev->data, ev->len) == SR_OK) {
            c->pend_d = d;
            c->blocked = 1;
            c->refs++;
            c->blocked_next = c->srv->blocked;
            c->srv->blocked = c;
            conn_pause(c);
            if (!uv_is_active((uv_handle_t *)&c->srv->retry)) uv_timer_start(&c->srv->retry, on_retry, 2, 2);
        } else {
            free(d);
            (void)gw_outcome_rc(c, p->packet_id, msgid, SR_EFULL, 0, NULL);
        }
    } else {
        free(d);
        (void)gw_outcome_rc(c, p->packet_id, msgid, rc, 0, NULL);
    }
}

static int is_broker_topic(const char *suffix)
{
    return !strcmp(suffix, "data/immediate") || !strcmp(suffix, "data/periodic") || !strcmp(suffix, "ack/monitor") ||
           !strcmp(suffix, "ack/control") || !strcmp(suffix, "req/fetch") || !strcmp(suffix, "req/cert");
}

typedef struct bjob {
    conn *c;
    uint16_t packet_id;
    char msgid[72];
    char suffix[32];
    const uint8_t *payload; /* the PUBLISH payload while the broker call runs */
    size_t payload_len;
    sr_buf held;            /* a copy, once held for a retry */
    int *in_call;           /* set while sr_broker_gw_message runs: 1 held, 2 answered (j freed) */
    struct bjob *next;
} bjob;

static void on_broker_retry(uv_timer_t *t);
static void on_broker_answer(void *ctx, const sr_gw_answer *a);

/* Hand the message to the broker (again); the answer may come before this
 * returns (then j may be freed). */
static void broker_call(bjob *j, const sr_gw_msg *msg)
{
    conn *c = j->c;
    int st = 0;
    j->in_call = &st;
    sr_broker_gw_message(c->srv->broker, c->op, c->gw, c->peer, j->suffix, msg, on_broker_answer, j);
    if (st != 2) j->in_call = NULL; /* held, or in the engine: a later answer is not synchronous */
}

/* The broker's answer: PUBACK, then the reply (fetch, certificate) or the
 * GW_ACK. Durable-before-ack holds: the broker answers from the engine's
 * completion (api/broker.c invariant 1). A full engine queue (E9002, which
 * the broker answers at once) is back-pressure, as for values: the message
 * is held, the socket not read, and the message handed to the broker again
 * by a retry timer -- never acknowledged before it is durable, and no
 * disconnect storm when a gateway's window is larger than the queue. */
static void on_broker_answer(void *ctx, const sr_gw_answer *a)
{
    bjob *j = ctx;
    conn *c = j->c;
    sr_server *s = c->srv;
    if (c->state != ST_CLOSING && j->in_call && !s->stopping && !strcmp(a->code, SR_GW_E_BUSY) && !a->reply) {
        if (!j->held.data && sr_buf_append(&j->held, j->payload, j->payload_len) != SR_OK) goto answer;
        *j->in_call = 1;
        j->next = NULL;
        bjob **tail = &s->bheld;
        while (*tail) tail = &(*tail)->next;
        *tail = j;
        if (!c->bheld++) conn_pause(c);
        if (!uv_is_active((uv_handle_t *)&s->bretry)) uv_timer_start(&s->bretry, on_broker_retry, 2, 2);
        return; /* still in flight: inflight and the reference stay */
    }
answer:
    if (j->in_call) *j->in_call = 2;
    c->inflight--;
    if (c->state != ST_CLOSING) {
        /* the broker's E9xxx (not stored, memory) is transient: never a
         * positive PUBACK (gw_outcome) */
        int out = sr_gw_outcome_code(a->code), closed = 0;
        if (out == SR_GW_DURABLE && a->reply) {
            send_puback(c, j->packet_id, 0);
            deliver(c, a->reply_suffix, a->reply);
        } else {
            char m[240];
            snprintf(m, sizeof m, "%s%s", a->message ? a->message : "",
                     out == SR_GW_TRANSIENT ? "; not acknowledged as stored, send it again" : "");
            closed = gw_outcome(c, j->packet_id, j->msgid, out, !strcmp(a->code, SR_GW_E_BUSY), 0, a->code,
                                out == SR_GW_DURABLE ? a->message : m, a->detail);
        }
        if (!closed) conn_maybe_resume(c);
    }
    sr_buf_release(&j->held);
    free(j);
    conn_unref(c);
}

/* Held broker messages, in arrival order: to the broker again. */
static void on_broker_retry(uv_timer_t *t)
{
    sr_server *s = t->data;
    bjob *list = s->bheld;
    s->bheld = NULL;
    while (list) {
        bjob *j = list;
        list = j->next;
        conn *c = j->c;
        c->refs++; /* the answer below may drop the job's reference */
        c->bheld--;
        sr_gw_msg msg;
        sr_gw_err err;
        memset(&err, 0, sizeof err);
        memset(&msg, 0, sizeof msg);
        if (c->state == ST_CLOSING || sr_gw_parse(j->held.data, j->held.len, &msg, &err) != SR_OK) {
            /* gone (the gateway resends on its next connection); the bytes
             * parsed once, so a failure here is memory: transient */
            sr_gw_answer a = {SR_GW_E_INTERNAL, "out of memory", NULL, NULL, NULL};
            j->in_call = NULL;
            on_broker_answer(j, &a);
        } else {
            j->payload = j->held.data;
            j->payload_len = j->held.len;
            broker_call(j, &msg);
        }
        sr_gw_msg_release(&msg);
        sr_gw_err_clear(&err);
        if (c->state != ST_CLOSING && !c->bheld) conn_maybe_resume(c);
        conn_unref(c);
    }
    if (!s->bheld) uv_timer_stop(&s->bretry);
}

static void to_broker(conn *c, const sr_mqtt_pkt *p, const char *suffix, const sr_gw_msg *msg)
{
    bjob *j = calloc(1, sizeof *j);
    if (!j) {
        (void)gw_outcome_rc(c, p->packet_id, msg->message_id, SR_ENOMEM, 0, NULL);
        return;
    }
    j->c = c;
    j->packet_id = p->packet_id;
    snprintf(j->msgid, sizeof j->msgid, "%s", msg->message_id);
    snprintf(j->suffix, sizeof j->suffix, "%s", suffix);
    sr_buf_init(&j->held);
    j->payload = p->publish.payload.data;
    j->payload_len = p->publish.payload.len;
    c->refs++;
    c->inflight++;
    if (c->inflight >= (int)c->srv->cfg.inflight_max) conn_pause(c); /* (3) */
    broker_call(j, msg);
}

static void handle_publish(conn *c, const sr_mqtt_pkt *p)
{
    char tb[512];
    const sr_mqtt_publish *m = &p->publish;
    if (m->qos > 1) {
        /* QoS 2 is not supported (interface.md: QoS 0 and 1) */
        protocol_error(c, SR_MQTT_RC_QOS_NOT_SUPPORTED, "QoS 2 is not supported");
        return;
    }
    if (c->version == 5 && (p->props.present & SR_MQTT_P_TOPIC_ALIAS)) {
        /* CONNACK advertised Topic Alias Maximum 0 */
        protocol_error(c, SR_MQTT_RC_TOPIC_ALIAS_INVALID, "topic aliases are not accepted");
        return;
    }
    if (m->qos == 1 && c->version == 5 && c->inflight >= (int)c->srv->cfg.inflight_max + 1) {
        /* more unacknowledged QoS 1 messages than the Receive Maximum we gave */
        protocol_error(c, SR_MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
        return;
    }
    const char *suffix = own_suffix(c, &m->topic, tb, sizeof tb);
    if (!suffix) {
        size_t tl = m->topic.len < sizeof tb ? m->topic.len : sizeof tb - 1;
        memcpy(tb, m->topic.s, tl);
        tb[tl] = 0;
        sr_slog(SR_LOG_WARN, "publish outside the gateway's root refused", "op=%s gw=%s topic=%s", c->op, c->gw,
                sr_slog_q(tb));
        if (c->version == 5) send_puback(c, p->packet_id, SR_MQTT_RC_NOT_AUTHORIZED);
        else protocol_error(c, SR_MQTT_RC_NOT_AUTHORIZED, "publish outside the gateway's topic root");
        return;
    }
    int is_values = !strcmp(suffix, "data/measurements");
    if (is_values) {
        /* the fast path: one pass, no JSON tree (api/gwif_json.c) */
        sr_gw_fast_msg fm;
        sr_buf fev;
        sr_buf_init(&fev);
        if (sr_gw_fast(c->srv->eng, c->op, c->gw, m->payload.data, m->payload.len, &fm, &fev) == 0) {
            submit_values(c, p, fm.message_id, &fev);
            sr_buf_release(&fev);
            return;
        }
        sr_buf_release(&fev);
    }
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    if (sr_gw_parse(m->payload.data, m->payload.len, &msg, &err) != SR_OK) {
        (void)gw_outcome(c, p->packet_id, msg.message_id ? msg.message_id : "", sr_gw_outcome_code(err.code), 0,
                         SR_MQTT_RC_PAYLOAD_FORMAT_INVALID, err.code, err.message, err.detail);
        sr_gw_msg_release(&msg);
        sr_gw_err_clear(&err);
        return;
    }
    sr_buf ev;
    sr_buf_init(&ev);
    int rc = SR_OK;
    if (is_values) {
        size_t nv = 0;
        rc = sr_gw_values_event(c->srv->eng, c->op, c->gw, msg.message_id, json_object_get(msg.body, "values"), &ev,
                                &nv, &err);
    } else if (is_broker_topic(suffix)) {
        to_broker(c, p, suffix, &msg);
        sr_gw_msg_release(&msg);
        return;
    } else if (!strcmp(suffix, "status")) {
        json_t *st = json_object_get(msg.body, "state");
        const char *s = json_is_string(st) ? json_string_value(st) : "";
        if (strcmp(s, "ONLINE") && strcmp(s, "OFFLINE")) {
            err.code = SR_GW_E_PARAM;
            snprintf(err.message, sizeof err.message, "body.state: ONLINE or OFFLINE");
            rc = SR_EINVAL;
        } else {
            Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
            se.kind = SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY;
            se.id = c->gw;
            se.state = !strcmp(s, "ONLINE") ? SUIRO__V1__SESSION_STATE__SS_CONNECTED
                                            : SUIRO__V1__SESSION_STATE__SS_DISCONNECTED;
            se.protocol = "mqtt";
            se.reason = "status message";
            Suiro__V1__Event e = SUIRO__V1__EVENT__INIT;
            e.body_case = SUIRO__V1__EVENT__BODY_SESSION;
            e.session = &se;
            e.source = c->peer;
            rc = sr_ev_pack(&e, c->op, c->gw, SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY, msg.message_id, &ev);
        }
    } else {
        err.code = SR_GW_E_PARAM;
        snprintf(err.message, sizeof err.message, "topic %s is not handled by this server version", suffix);
        rc = SR_EINVAL;
    }
    if (rc) {
        /* refused as a whole (or not built: memory): nothing stored */
        if (err.code)
            (void)gw_outcome(c, p->packet_id, msg.message_id, sr_gw_outcome_code(err.code), 0, 0, err.code,
                             err.message, err.detail);
        else
            (void)gw_outcome_rc(c, p->packet_id, msg.message_id, rc, 0, NULL);
    } else
        submit_values(c, p, msg.message_id, &ev);
    sr_buf_release(&ev);
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
}

static void handle_subscribe(conn *c, const sr_mqtt_pkt *p)
{
    uint8_t codes[64];
    size_t n = 0, pos = 0;
    sr_mqtt_sub s;
    size_t rl = strlen(c->root);
    while (n < sizeof codes && sr_mqtt_sub_next(p, &pos, &s)) {
        /* (4): only filters inside the own root */
        int own = s.match.len >= rl && !memcmp(s.match.s, c->root, rl) &&
                  (s.match.len == rl || s.match.s[rl] == '/');
        if (!own || s.share_name.len) {
            codes[n++] = c->version == 5 ? SR_MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        sub *x = calloc(1, sizeof *x);
        if (!x || !(x->filter = strndup(s.match.s, s.match.len))) {
            free(x);
            codes[n++] = c->version == 5 ? SR_MQTT_RC_UNSPECIFIED : 0x80;
            continue;
        }
        x->next = c->subs;
        c->subs = x;
        codes[n++] = 0; /* granted QoS 0: server-to-gateway messages are QoS 0 in this version */
    }
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_suback(&b, c->version, p->packet_id, codes, n, NULL) == SR_OK) conn_send(c, &b);
    sr_buf_release(&b);
    /* requests that wait for this gateway go out now if it subscribed to them */
    sr_broker_gw_kick(c->srv->broker, c->op, c->gw);
}

static void handle_unsubscribe(conn *c, const sr_mqtt_pkt *p)
{
    uint8_t codes[64];
    size_t n = 0, pos = 0;
    sr_mqtt_sub s;
    while (n < sizeof codes && sr_mqtt_sub_next(p, &pos, &s)) {
        uint8_t code = 0x11;
        for (sub **x = &c->subs; *x;) {
            if (strlen((*x)->filter) == s.match.len && !memcmp((*x)->filter, s.match.s, s.match.len)) {
                sub *d = *x;
                *x = d->next;
                free(d->filter);
                free(d);
                code = 0;
            } else
                x = &(*x)->next;
        }
        codes[n++] = code;
    }
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_unsuback(&b, c->version, p->packet_id, codes, n, NULL) == SR_OK) conn_send(c, &b);
    sr_buf_release(&b);
}

static void process(conn *c)
{
    while (c->state != ST_CLOSING && c->state != ST_AUTH && !c->blocked && c->rbuf.len) {
        sr_mqtt_pkt p;
        size_t used = 0;
        int rc = sr_mqtt_decode(c->rbuf.data, c->rbuf.len, c->state == ST_AWAIT_CONNECT ? 0 : c->version,
                                c->srv->cfg.mqtt_max_packet, &p, &used);
        if (rc == SR_MQTT_MORE) return;
        if (rc) {
            if (c->state == ST_AWAIT_CONNECT && p.version == 5) {
                c->version = 5;
                connack(c, p.err_reason);
            } else if (c->state == ST_AWAIT_CONNECT && p.err_reason == SR_MQTT_RC_UNSUPPORTED_VERSION) {
                c->version = 4;
                connack(c, p.err_reason);
            }
            protocol_error(c, p.err_reason ? p.err_reason : SR_MQTT_RC_MALFORMED, p.err_msg ? p.err_msg : "malformed");
            return;
        }
        c->last_rx = now_ms();
        if (c->state == ST_AWAIT_CONNECT) {
            if (p.type != SR_MQTT_CONNECT) {
                protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
                return;
            }
            handle_connect(c, &p);
        } else {
            switch (p.type) {
            case SR_MQTT_CONNECT: protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); return;
            case SR_MQTT_PUBLISH: handle_publish(c, &p); break;
            case SR_MQTT_SUBSCRIBE: handle_subscribe(c, &p); break;
            case SR_MQTT_UNSUBSCRIBE: handle_unsubscribe(c, &p); break;
            case SR_MQTT_PINGREQ: {
                sr_buf b;
                sr_buf_init(&b);
                if (sr_mqtt_encode_pingresp(&b) == SR_OK) conn_send(c, &b);
                sr_buf_release(&b);
                break;
            }
            case SR_MQTT_DISCONNECT:
                if (!(c->version == 5 && p.reason == SR_MQTT_RC_DISCONNECT_WITH_WILL)) c->has_will = 0;
                conn_close(c, "client disconnected", c->has_will);
                return;
            case SR_MQTT_PUBACK: break; /* server-to-gateway messages are QoS 0 today */
            default: protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "unexpected packet type"); return;
            }
        }
        memmove(c->rbuf.data, c->rbuf.data + used, c->rbuf.len - used);
        c->rbuf.len -= used;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn *c = (conn *)h;
    sr_buf *into = c->ssl ? &c->tlsin : &c->rbuf;
    (void)hint;
    if (sr_buf_reserve(into, 65536)) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)into->data + into->len;
    b->len = into->cap - into->len;
}

/* TLS: feed the ciphertext, finish the handshake, decrypt into rbuf.
 * 0 to go on, -1 if the connection was closed. */
static int tls_input(conn *c, size_t n)
{
    c->tlsin.len += n;
    if (c->tlsin.len && BIO_write(c->rbio, c->tlsin.data, (int)c->tlsin.len) != (int)c->tlsin.len) {
        conn_close(c, "TLS buffer", 0);
        return -1;
    }
    c->tlsin.len = 0;
    if (!c->tls_ready) {
        int r = SSL_do_handshake(c->ssl);
        tls_flush(c);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
            char why[200];
            snprintf(why, sizeof why, "TLS handshake failed: %s", ERR_reason_error_string(ERR_get_error()));
            ERR_clear_error();
            sr_slog(SR_LOG_WARN, "tls handshake failed", "peer=%s detail=%s", c->peer, sr_slog_q(why));
            conn_close(c, why, 0);
            return -1;
        }
        c->tls_ready = 1;
        X509 *cert = SSL_get1_peer_certificate(c->ssl);
        if (cert && SSL_get_verify_result(c->ssl) == X509_V_OK) {
            X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, c->cert_cn, sizeof c->cert_cn);
        }
        X509_free(cert);
    }
    for (;;) {
        if (sr_buf_reserve(&c->rbuf, 16384)) return 0;
        int r = SSL_read(c->ssl, c->rbuf.data + c->rbuf.len, (int)(c->rbuf.cap - c->rbuf.len));
        if (r > 0) {
            c->rbuf.len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        tls_flush(c);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        if (e == SSL_ERROR_ZERO_RETURN) conn_close(c, "TLS closed by peer", 1);
        else conn_close(c, "TLS error", 1);
        return -1;
    }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    conn *c = (conn *)st;
    (void)buf;
    if (n < 0) {
        conn_close(c, n == UV_EOF ? "connection closed by peer" : uv_strerror((int)n), 1);
        return;
    }
    if (c->ssl) {
        if (tls_input(c, (size_t)n)) return;
    } else
        c->rbuf.len += (size_t)n;
    if (c->rbuf.len > (size_t)c->srv->cfg.mqtt_max_packet + 65536 && c->state == ST_AUTH) {
        conn_close(c, "too much data before the login check", 0);
        return;
    }
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    sr_server *s = server->data;
    if (status < 0) return;
    conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    c->refs = 1; /* the handle */
    c->id = ++s->next_conn_id;
    sr_buf_init(&c->rbuf);
    sr_buf_init(&c->will_payload);
    uv_tcp_init(&s->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[64];
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (server == (uv_stream_t *)&s->mqtts) {
        c->ssl = SSL_new(s->tls);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (!c->ssl || !c->rbio || !c->wbio) {
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            uv_close((uv_handle_t *)&c->tcp, on_closed);
            return;
        }
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_accept_state(c->ssl);
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->last_rx = c->connected_at = now_ms();
    if (s->stopping || s->nconns > s->cfg.max_connections) {
        conn_close(c, "connection limit", 0);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

/* once a second: handshake timeouts, keep-alive expiry */
static void on_tick(uv_timer_t *t)
{
    sr_server *s = t->data;
    uint64_t now = now_ms();
    for (conn *c = s->conns; c;) {
        conn *n = c->next;
        if (c->state == ST_AWAIT_CONNECT && now - c->connected_at > s->cfg.connect_timeout_ms)
            conn_close(c, "no CONNECT in time", 0);
        else if (c->state == ST_ACTIVE && c->keepalive && now - c->last_rx > (uint64_t)c->keepalive * 1500)
            conn_close(c, "keep-alive expired", 1);
        c = n;
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    sr_server *s = h->data;
    sr_slog(SR_LOG_INFO, "stopping", "signal=%d connections=%zu", sig, s->nconns);
    s->stopping = 1;
    if (s->cfg.mqtt_listen[0]) uv_close((uv_handle_t *)&s->mqtt, NULL);
    if (s->cfg.tls_listen[0]) uv_close((uv_handle_t *)&s->mqtts, NULL);
    sr_gwhttp_stop_accepting(s->http);
    uv_timer_stop(&s->tick);
    for (conn *c = s->conns; c;) {
        conn *n = c->next;
        if (c->inflight == 0 && !c->blocked) conn_close(c, "server stopping", 0);
        else conn_pause(c); /* finish what is in flight, then close (on_done) */
        c = n;
    }
    uv_signal_stop(&s->sigint);
    uv_signal_stop(&s->sigterm);
}

static void on_stop_check(uv_async_t *a);

/* ------------------------------------------------------------------------ */

/* the engine's write failures and recoveries (docs/durability.md §7), from
 * the writer thread */
static void engine_alert(void *ctx, int error, const char *msg)
{
    (void)ctx;
    sr_slog(error ? SR_LOG_ERROR : SR_LOG_INFO, error ? "storage write failure" : "storage writing resumed", "detail=%s",
            sr_slog_q(msg));
}

static int engine_open(sr_server *s, char *err, size_t errlen)
{
    sr_engine_opts o = {.queue_max = s->cfg.queue_max};
    o.alert = engine_alert;
    o.readonly_on_nospace = 1; /* a full disk at start: serve reads (§7) */
    /* test hook: how often a poisoned engine tries to resume (default 1 s) */
    const char *rms = getenv("SUIRO_TEST_RECOVER_MS");
    if (rms) o.recover_ms = (uint32_t)atoi(rms);
    /* test hook: a slow writer, to show back-pressure (tests/integration/test_gw_backpressure.py) */
    const char *slow = getenv("SUIRO_TEST_WRITER_DELAY_MS");
    if (slow) o.test_group_delay_ms = (uint32_t)atoi(slow);
    o.sync = !strcmp(s->cfg.sync, "none") ? SR_SYNC_NONE : !strcmp(s->cfg.sync, "interval") ? SR_SYNC_INTERVAL
                                                                                             : SR_SYNC_ALWAYS;
    uint64_t t0 = mono_us();
    if (s->cfg.key_file[0]) {
        if (sr_key_load(s->cfg.key_file, &s->key, err, errlen)) return SR_EKEY;
        o.key = &s->key;
    }
    uint64_t t1 = mono_us();
    s->start_us[0] = t1 - t0;
    sr_errinfo ei;
    int rc = sr_engine_open(s->cfg.data_dir, &o, &s->eng, &ei);
    if (rc) snprintf(err, errlen, "engine: %s", ei.msg);
    s->start_us[1] = mono_us() - t1;
    return rc;
}

static int listen_on(sr_server *s, uv_tcp_t *h, const char *spec, const char *key, int *port_out, char *err,
                     size_t errlen)
{
    char host[128];
    int port;
    struct sockaddr_storage addr;
    if (sr_config_hostport(spec, host, sizeof host, &port)) {
        snprintf(err, errlen, "[mqtt] %s: '%s' is not host:port", key, spec);
        return SR_EINVAL;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) {
        snprintf(err, errlen, "[mqtt] %s: '%s' is not an IP address", key, host);
        return SR_EINVAL;
    }
    uv_tcp_init(&s->loop, h);
    h->data = s;
    int r = uv_tcp_bind(h, (struct sockaddr *)&addr, 0);
    if (!r) r = uv_listen((uv_stream_t *)h, 511, on_connection);
    if (r) {
        snprintf(err, errlen, "[mqtt] %s %s: %s", key, spec, uv_strerror(r));
        return SR_EIO;
    }
    struct sockaddr_storage b;
    int bl = sizeof b;
    uv_tcp_getsockname(h, (struct sockaddr *)&b, &bl);
    *port_out = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                              : ((struct sockaddr_in *)&b)->sin_port);
    return SR_OK;
}

static int tls_setup(sr_server *s, char *err, size_t errlen)
{
    const sr_config *c = &s->cfg;
    s->tls = SSL_CTX_new(TLS_server_method());
    if (!s->tls) goto ssl_fail;
    SSL_CTX_set_min_proto_version(s->tls, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(s->tls, c->tls_cert) != 1) {
        snprintf(err, errlen, "[mqtt] tls_cert %s: %s", c->tls_cert, ERR_reason_error_string(ERR_get_error()));
        return SR_ETLS;
    }
    if (SSL_CTX_use_PrivateKey_file(s->tls, c->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(s->tls) != 1) {
        snprintf(err, errlen, "[mqtt] tls_key %s: %s", c->tls_key, ERR_reason_error_string(ERR_get_error()));
        return SR_ETLS;
    }
    if (strcmp(c->tls_client_cert, "none")) {
        if (!c->tls_ca[0]) {
            snprintf(err, errlen, "[mqtt] tls_client_cert = %s needs tls_ca", c->tls_client_cert);
            return SR_EINVAL;
        }
        if (SSL_CTX_load_verify_locations(s->tls, c->tls_ca, NULL) != 1) {
            snprintf(err, errlen, "[mqtt] tls_ca %s: %s", c->tls_ca, ERR_reason_error_string(ERR_get_error()));
            return SR_ETLS;
        }
        int mode = SSL_VERIFY_PEER;
        if (!strcmp(c->tls_client_cert, "require")) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(s->tls, mode, NULL);
    }
    return SR_OK;
ssl_fail:
    snprintf(err, errlen, "TLS: %s", ERR_reason_error_string(ERR_get_error()));
    return SR_ETLS;
}

int sr_server_open(const sr_config *cfg, sr_server **out, char *err, size_t errlen)
{
    /* a peer that went away must not kill the server: writes get EPIPE */
    signal(SIGPIPE, SIG_IGN);
    sr_server *s = calloc(1, sizeof *s);
    if (!s) return SR_ENOMEM;
    s->cfg = *cfg;
    int lvl = sr_slog_level_parse(cfg->log_level);
    sr_slog_set_level(lvl < 0 ? SR_LOG_INFO : lvl);
    uv_loop_init(&s->loop);
    int rc = engine_open(s, err, errlen);
    if (rc) goto fail;
    uint64_t t0 = mono_us();
    if ((rc = sr_broker_open(&s->loop, s->eng, cfg->data_dir, &s->broker, err, errlen))) goto fail;
    uint64_t t1 = mono_us();
    s->start_us[2] = t1 - t0;
    /* push to apps (R-AP-17): after the broker, which made the platform key */
    sr_push_opts po;
    sr_push_opts_default(&po);
    po.max_queue = cfg->push_max_queue;
    po.max_backoff_ms = cfg->push_max_backoff_ms;
    if ((rc = sr_push_open(&s->loop, s->eng, cfg->data_dir, &po, &s->push, err, errlen))) goto fail;
    sr_broker_set_push(s->broker, s->push);
    t0 = mono_us();
    s->start_us[3] = t0 - t1;
    sr_loopq_init(&s->doneq, &s->loop, on_done, s);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 1000, 1000);
    uv_timer_init(&s->loop, &s->retry);
    s->retry.data = s;
    uv_timer_init(&s->loop, &s->bretry);
    s->bretry.data = s;
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    if (cfg->mqtt_listen[0] && (rc = listen_on(s, &s->mqtt, cfg->mqtt_listen, "listen", &s->mqtt_port, err, errlen)))
        goto fail;
    if (cfg->http_listen[0]) {
        char host[128];
        int port;
        if (sr_config_hostport(cfg->http_listen, host, sizeof host, &port)) {
            snprintf(err, errlen, "[http] listen: '%s' is not host:port", cfg->http_listen);
            rc = SR_EINVAL;
            goto fail;
        }
        sr_http_tls htls = {cfg->http_tls_cert, cfg->http_tls_key, cfg->http_tls_ca, cfg->http_tls_client_cert};
        if ((rc = sr_gwhttp_open(&s->loop, s->eng, s->broker, host, port, &htls, cfg->http_max_body, &s->http, err, errlen))) goto fail;
    }
    if (cfg->tls_listen[0]) {
        if ((rc = tls_setup(s, err, errlen))) goto fail;
        if ((rc = listen_on(s, &s->mqtts, cfg->tls_listen, "tls_listen", &s->mqtts_port, err, errlen))) goto fail;
    }
    s->start_us[4] = mono_us() - t0;
    (void)on_stop_check;
    *out = s;
    return SR_OK;
fail:
    sr_server_close(s);
    return rc;
}

int sr_server_mqtt_port(sr_server *s) { return s->mqtt_port; }
int sr_server_mqtts_port(sr_server *s) { return s->mqtts_port; }
int sr_server_http_port(sr_server *s) { return s->http ? sr_gwhttp_port(s->http) : 0; }

static void on_stop_check(uv_async_t *a) { (void)a; }

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    /* our MQTT connections have data == NULL (they are all closed by now);
     * h2o's sockets carry their binding in data and are closed by h2o */
    if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP && h->data == NULL ? on_closed : NULL);
}

int sr_server_run(sr_server *s)
{
    sr_engine_open_stats os;
    sr_engine_get_open_stats(s->eng, &os);
    /* where the startup went (ms): docs/performance-notes.md, "Restart" */
    sr_slog(SR_LOG_INFO, "serving",
            "data=%s mqtt_port=%d key_ms=%.1f engine_ms=%.1f log_ms=%.1f index_ms=%.1f heads_ms=%.1f replay_ms=%.1f "
            "replay_events=%" PRIu64 " replay_head_events=%" PRIu64 " replay_skipped=%" PRIu64
            " pki_ms=%.1f push_ms=%.1f listen_ms=%.1f",
            sr_slog_q(s->cfg.data_dir), s->mqtt_port, s->start_us[0] / 1e3, s->start_us[1] / 1e3, os.log_us / 1e3,
            os.index_us / 1e3, os.heads_us / 1e3, os.replay_us / 1e3, os.replay_events, os.replay_head_events,
            os.replay_skipped, s->start_us[2] / 1e3, s->start_us[3] / 1e3, s->start_us[4] / 1e3);
    while (uv_run(&s->loop, UV_RUN_ONCE)) {
        if (!s->stopping) continue;
        /* stopping: close connections whose in-flight work is done */
        for (conn *c = s->conns; c;) {
            conn *n = c->next;
            if (c->inflight == 0 && !c->blocked) conn_close(c, "server stopping", 0);
            c = n;
        }
        if (!s->conns) {
            uv_timer_stop(&s->retry);
            uv_timer_stop(&s->bretry);
            break;
        }
    }
    return 0;
}

void sr_server_close(sr_server *s)
{
    if (!s) return;
    /* push first: it reads the registry and submits alarms, so it must stop
     * before the engine closes; what is still queued is dropped (logged) */
    sr_broker_set_push(s->broker, NULL);
    sr_push_dispose(s->push);
    /* nothing new reaches the engine; it drains its queue (completions
     * arrive through the asyncs) */
    sr_gwhttp_quiesce(s->http);
    sr_broker_quiesce(s->broker);
    /* queries and file parts on the thread pool read the engine: let them end */
    while (sr_gwhttp_busy(s->http)) uv_run(&s->loop, UV_RUN_ONCE);
    int rc = sr_engine_close(s->eng);
    s->eng = NULL;
    if (rc) sr_slog(SR_LOG_ERROR, "engine closed with an error", "error=%s", sr_err_name(rc));
    sr_loopq_drain(&s->doneq);
    while (s->bheld) { /* held broker messages of closed connections: dropped (never acknowledged) */
        bjob *j = s->bheld;
        s->bheld = j->next;
        j->c->bheld--;
        j->in_call = NULL;
        sr_gw_answer a = {SR_GW_E_BUSY, "server stopping", NULL, NULL, NULL};
        on_broker_answer(j, &a);
    }
    sr_broker_flush(s->broker);
    sr_gwhttp_flush(s->http);
    sr_broker_dispose(s->broker);
    sr_gwhttp_dispose(s->http);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    if (uv_loop_alive(&s->loop)) {
        uv_walk(&s->loop, close_walk, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    sr_gwhttp_free(s->http);
    sr_broker_free(s->broker);
    sr_push_free(s->push);
    free(s->thr);
    uv_loop_close(&s->loop);
    if (s->tls) SSL_CTX_free(s->tls);
    sr_loopq_destroy(&s->doneq);
    sr_slog(SR_LOG_INFO, "stopped", "%s", "");
    free(s);
}
