/*
 * api/server.c -- the server loop and the GW-IF MQTT binding.
 *
 * CONNECTION STATES                       TRANSITION
 *   AWAIT_CONNECT -> AUTH                  CONNECT decoded (throttle, then scrypt on the login
 *                                          guard's own threads: api/loginguard.h)
 *   AUTH -> ACTIVE                         password verified: CONNACK 0
 *   AUTH -> CLOSING                        refused: CONNACK 0x86 / rc 4, auth event; throttled:
 *                                          CONNACK 0x89 / rc 5; guard busy: 0x89 / rc 3; the
 *                                          gateway disabled, deleted or rotated while checked
 *                                          (a certificate's: not registered or disabled)
 *   ACTIVE -> CLOSING                      DISCONNECT, keep-alive expiry, protocol error,
 *                                          takeover by a new connection, server stop, the
 *                                          gateway disabled, deleted or rotated (REVOCATION,
 *                                          conn_revoke: the registry hook, or the connection's
 *                                          next packet)
 *   The gateway's alive status (api/alive.h, R-MO-1) follows: online when
 *   it turns ACTIVE, offline when an ACTIVE connection closes (reason
 *   keepalive-expired, will -- the will handled as the contract's R/status
 *   OFFLINE, will_handle -- or disconnect: alive_offline) or when R/status
 *   says OFFLINE (its AliveEvent acknowledged once durable); at start
 *   those the index says online are not (sr_alive_restart).
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
 *  (5) What one connection makes the server hold is bounded (issue #11):
 *      its output queue (out_bytes: bytes in our uv_write requests, TLS
 *      ciphertext included, and the requests themselves) -- above
 *      max_output_bytes/4 (the low-water mark) nothing more is read or
 *      processed until it drains to half of that; over max_output_bytes (a
 *      message queued behind others), or held over the mark for
 *      output_stall_ms, the connection is closed (logged); its read buffer
 *      (one packet of at most max_packet); its subscriptions (at most
 *      max_subscriptions filters, an identical filter replaces the old one).
 *  (6) Connections that have not logged in are at most
 *      max_connections_per_address per source address (all MQTT listeners
 *      together) and live at most connect_timeout_ms, so idle sockets from
 *      one address cannot keep gateways from other addresses out. Each holds
 *      at most max_unauth_bytes until its login passes (a larger CONNECT is
 *      refused from its declared length), not max_packet. It holds no
 *      subscription or message; the one thing it may have blocked is its
 *      own login's SessionEvent waiting for room in a full engine queue
 *      (login_submit: a full queue is back-pressure for a login too, not a
 *      refusal; issue #18).
 *  (7) A PUBLISH larger than [server] parse_inline_max, or one that may
 *      carry "protection" (sr_gw_may_be_signed: its signature verification
 *      costs 0.7-8.9 M instructions, issue #18), is parsed and validated on
 *      the worker queue (api/workq.h), charged to its operator's share,
 *      never on the loop (a signed one that cannot be queued is answered
 *      transient, not verified inline; suiro_gw_sig_verify_total{thread=
 *      "loop"} stays 0): the
 *      packet stays in rbuf, nothing more of the connection is read or
 *      processed meanwhile (order of PUBACKs kept), and once checked the
 *      same packet is handled again with the worker's result (c->chk).
 *  (8) The state machine and its accounting agree (sr_mqtt_conn_check, over
 *      the sr_mqtt_conn_state that conn_check takes from a connection):
 *      before the login passed (AWAIT_CONNECT, AUTH) nothing is subscribed,
 *      in flight, held or waiting for a PUBACK, and in AUTH the socket is
 *      not read (6); an ACTIVE connection has a protocol version and the
 *      topic root of its login, and every subscription is under that root
 *      (4), counted by nsubs, at most max_subscriptions (5); while reading,
 *      nothing is blocked, held, checked, paused or over the output limit,
 *      fewer than inflight_max messages are in flight and fewer than
 *      ACKQ_MAX PUBACKs wait (3, 5, 7); not paused means at most the
 *      low-water mark queued for output (5); the PUBACK order queue lies
 *      within its buffer and its first slot is not one that is ready (it
 *      would have gone); a blocked connection holds its pending command; a
 *      connection being checked counts that message in flight; a connection
 *      whose handle is open is referenced. SR_INVARIANT runs it at the end
 *      of every event of a connection (read, write done, login verdict,
 *      engine or broker answer, retries, worker check, accept, the
 *      once-a-second tick, close, the stop signal).
 */
#include "api/ryw.h"
#include "api/checkpoint.h"
#include "api/cluster.h"
#include "api/cluster_seal.h"
#include "api/cluster_fwd.h"
#include "api/cluster_req.h"
#include "api/server.h"
#include "codecs/jsonlex.h"

#include "engine/backup.h"

#include "api/admin_http.h"
#include "api/access.h"
#include "api/alive.h"
#include "api/apif_http.h"
#include "api/broker.h"
#include "api/gwif_http.h"
#include "api/gwif_json.h"
#include "api/loginguard.h"
#include "api/alarms.h"
#include "api/loopq.h"
#include "api/metrics.h"
#include "api/pki.h"
#include "api/notify.h"
#include "api/push.h"
#include "api/sdnotify.h"
#include "api/sigcheck.h"
#include "api/slog.h"
#include "api/workq.h"
#include "codecs/mqtt.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "engine/secret.h"
#include "engine/suiro.h"
#include "storage/crypto.h"
#include "storage/vfs.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

enum {
    ST_AWAIT_CONNECT = SR_MQTT_CONN_AWAIT_CONNECT,
    ST_AUTH = SR_MQTT_CONN_AUTH,
    ST_ACTIVE = SR_MQTT_CONN_ACTIVE,
    ST_CLOSING = SR_MQTT_CONN_CLOSING,
};

typedef struct conn conn;

struct sr_server {
    sr_config cfg;
    sr_cluster *cluster; /* [cluster] (api/cluster.h); NULL: a single node */
    sr_creq *creq;       /* [cluster]: request flows across nodes (api/cluster_req.h) */
    uv_loop_t loop;
    uv_tcp_t mqtt, mqtts;
    int mqtt_port, mqtts_port;
    SSL_CTX *tls;
    sr_gwhttp *http;
    sr_workq *workq; /* work proportional to data, off the loop (invariant 5) */
    sr_broker *broker;
    sr_push *push; /* push to apps (R-AP-17) */
    sr_notify *notify; /* alarm notifications (issue #17, R-MO-3) */
    sr_alarms *alarms; /* the alarm rules' evaluator (issue #17, api/alarms.h) */
    sr_ckpt *ckpt;     /* the signed checkpoints (issue #18, api/checkpoint.h); NULL: [checkpoint] interval_s 0 */
    sr_alive *alive; /* the alive status of gateways and apps (R-MO-1, api/alive.h) */
    sr_access *access; /* reads in the audit trail, batched (api/access.h) */
    uv_timer_t atick;  /* its writes every [audit] flush_ms */
    sr_loopq doneq; /* engine completions, from the writer thread */
    sr_loopq regq;  /* committed registry changes (the engine's registry hook; REVOCATION) */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick, retry;
    /* the service manager's keep-alive (api/sdnotify.h): the interval asked
     * for (0: none) and when the last WATCHDOG=1 went (monotonic us) */
    uint64_t watchdog_us, watchdog_last_us;
    /* the [backup] schedule (docs/backup.md): the next run (wall ms, 0: none
     * configured), and the one job running on the worker queue */
    int64_t backup_next;
    int backup_running;
    struct backup_job {
        sr_work w;
        struct sr_server *s;
        int rc;
        unsigned removed;
        sr_backup_info info;
        sr_errinfo ei;
    } backup_job;
    /* the [retention] sweep (docs/retention.md): the next run (wall ms, 0:
     * none), and the one sweep running on the worker queue */
    int64_t retention_next;
    int retention_running;
    struct retention_job {
        sr_work w;
        struct sr_server *s;
        int rc;
        sr_retention_report rep;
        sr_errinfo ei;
        /* the cluster's stream keys after it (issue #19 ckey, sr_cluster_skey_sweep) */
        int krc;
        sr_cluster_skey_report krep;
        char kerr[512];
    } retention_job;
    uv_timer_t bretry;        /* broker messages held while the engine's queue is full */
    struct bjob *bheld;       /* ... in arrival order */
    sr_engine *eng;
    sr_key key;
    sr_key key_next; /* [keys] master_next, if configured */
    conn *conns;
    conn *blocked; /* connections waiting for room in the engine's queue */
    sr_loginguard *guard; /* throttles and checks every login, MQTT and HTTP */
    size_t nconns;
    int stopping;
    uint64_t next_conn_id;
    uint64_t refused_log_ms; /* (6): refusals are logged at most once a second, with their count */
    size_t refused;
    sr_mlistener *mlis;   /* [metrics] listen (api/metrics.h); NULL: none */
    uint64_t start_us[6]; /* startup phases: key, engine, broker (PKI), push, listeners, login throttle */
    int throttle_rows;    /* rows of the trail the login throttle was rebuilt from */
};

/* test hook (SUIRO_TEST_FSYNC_DELAY_MS, tests only; docs/monitoring.md
 * "Alarms"): the log's file system is POSIX's with each sync this much slower */
static uint32_t test_sync_delay_ms;
static int test_slow_sync(sr_file *f)
{
    struct timespec d = {test_sync_delay_ms / 1000, (long)(test_sync_delay_ms % 1000) * 1000000};
    while (nanosleep(&d, &d) && errno == EINTR) {
    }
    return sr_vfs_posix.sync(f);
}
static sr_vfs test_slow_vfs;

/* test hook (SUIRO_TEST_CLOCK_FILE, tests only; docs/retention.md "A test
 * clock"): the engine's clock (ingest times, the retention sweep's now) is
 * the wall clock plus the offset the file holds, read at every call, so a
 * test can move the platform's time on (to pass a retention period) while
 * it runs. It is on only when the variable names a file whose first word is
 * TEST_CLOCK_MAGIC (a stray variable or file does not turn it on), the
 * server says so on its log at start, and the clock never goes back (a
 * smaller offset later leaves it where it was: ingest times never
 * decrease). */
#define TEST_CLOCK_MAGIC "suiro-test-clock-offset-ms"
static char test_clock_path[1024];
static int test_clock_on; /* the engine's clock is test_clock (the admin API's pending expiry too) */
static _Atomic int64_t test_clock_last;
static int test_clock_offset(long long *off)
{
    FILE *f = fopen(test_clock_path, "r");
    if (!f) return -1;
    char magic[40];
    int ok = fscanf(f, "%39s %lld", magic, off) == 2 && !strcmp(magic, TEST_CLOCK_MAGIC);
    fclose(f);
    return ok ? 0 : -1;
}
static int64_t test_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long long off = 0;
    (void)test_clock_offset(&off); /* unreadable for a moment (being rewritten): no offset, the clock held below */
    int64_t now = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 + off;
    int64_t last = atomic_load(&test_clock_last);
    while (now > last && !atomic_compare_exchange_weak(&test_clock_last, &last, now)) {
    }
    return now > last ? now : last;
}

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

/* the source address without the port, to count connections per address */
typedef struct peer_addr {
    int family;
    uint8_t a[16];
} peer_addr;

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
    sr_login_seen seen; /* ACTIVE: the registry as of the login (api/loginguard.h; REVOCATION) */
    uint16_t keepalive;
    uint64_t last_rx;
    uint64_t connected_at;
    int inflight;
    sub *subs;
    size_t nsubs;
    peer_addr addr;
    /* (5): bytes queued in our uv_write requests; reading is paused while
     * out_paused; out_over: the limit was passed, close at the next safe
     * point (never from inside a send: the broker may be iterating) */
    size_t out_bytes;
    int out_paused, out_over;
    uint64_t out_paused_at;
    int has_will;
    char *will_topic;
    sr_alive_ent *ae; /* ACTIVE: the gateway's alive entry (api/alive.h) */
    int alive_reason; /* why it goes offline when not a plain disconnect (SR_AR_KEEPALIVE_EXPIRED) */
    sr_buf will_payload;
    uint16_t next_pid;
    /* back-pressure: a command the engine's queue had no room for, retried
     * by the server's retry timer; nothing more is read meanwhile */
    sr_buf pend_ev;
    struct completion *pend_d;
    conn *blocked_next;
    int blocked;
    int bheld; /* broker messages of this connection held for a retry (queue full) */
    /* (5): a large PUBLISH being checked on the worker queue, then its result */
    int checking;
    int processing; /* inside process() */
    struct gwcheck *chk;
    /* the PUBLISH being handled (handle_publish), for the audit entry of its
     * refusal (refusal_audit): its kind's topic suffix and body.values */
    const char *pub_route;
    json_t *pub_values;
    /* PUBACKs go out in the order the PUBLISHes came (MQTT-4.6.0-2), though
     * values, broker messages and worker checks finish in any order: one
     * slot per QoS 1 PUBLISH, in arrival order; a slot's PUBACK waits until
     * every earlier one was sent. Reading pauses while ACKQ_MAX wait. */
    struct ackslot {
        uint16_t pid;
        uint8_t reason;
        uint8_t done;
    } *ackq;
    size_t ackq_head, ackq_len, ackq_cap;
};

enum { ACKQ_MAX = 1024 }; /* PUBACKs one connection may have waiting for an earlier one */

/* ---- (8) the connection's invariants ----------------------------------- */

const char *sr_mqtt_conn_check(const sr_mqtt_conn_state *c)
{
    if (c->state < SR_MQTT_CONN_AWAIT_CONNECT || c->state > SR_MQTT_CONN_CLOSING) return "(8) an unknown state";
    if (!c->handle_closed && c->refs < 1) return "(2) an open connection that nothing references";
    if (c->inflight < 0 || c->bheld < 0) return "(8) a negative in-flight or held count";
    if (c->ackq_head + c->ackq_len > c->ackq_cap) return "(8) the PUBACK order queue is past its buffer";
    if (c->ackq_len && c->ackq_front_done) return "(8) a ready PUBACK waits at the front of the order queue";
    if (c->blocked && !c->has_pending) return "(3) a blocked connection without its pending command";
    if (c->checking && c->inflight < 1) return "(7) a message being checked is not counted in flight";
    if (c->subs_listed != c->nsubs) return "(5) nsubs is not the number of subscriptions";
    if (c->nsubs > c->max_subs) return "(5) more subscriptions than max_subscriptions";
    if (c->subs_outside_root) return "(4) a subscription outside the gateway's topic root";
    if (!c->out_paused && c->out_bytes > c->max_output / 4)
        return "(5) more output queued than the low-water mark, and reading not paused";
    if (c->state == SR_MQTT_CONN_CLOSING) return NULL;
    if (c->state != SR_MQTT_CONN_ACTIVE) {
        /* blocked in AUTH: the login's own SessionEvent waits for room in
         * the engine's queue (login_submit), not a message */
        if (c->nsubs || c->inflight || c->ackq_len || (c->blocked && c->state != SR_MQTT_CONN_AUTH) || c->bheld ||
            c->checking)
            return "(6) a connection not logged in holds subscriptions or messages";
        if (c->state == SR_MQTT_CONN_AUTH && c->reading) return "(6) the socket is read while the login is checked";
    } else {
        if (c->version != 3 && c->version != 4 && c->version != 5) return "(8) an active connection without a version";
        if (!c->root_ok) return "(4) an active connection without the topic root of its login";
    }
    if (c->reading && (c->blocked || c->bheld || c->checking || c->out_paused || c->out_over))
        return "(3) the socket is read while a message is blocked, held, checked or output is paused";
    if (c->reading && (c->inflight >= (int)c->inflight_max || c->ackq_len >= c->ackq_max))
        return "(3) the socket is read with inflight_max messages in flight or ACKQ_MAX PUBACKs waiting";
    return NULL;
}

typedef struct completion {
    sr_loopq_item li;
    conn *c;
    uint16_t packet_id;
    uint8_t qos;
    char msgid[72];
    uint32_t nvalues; /* a values message's (the metrics); 0: another kind */
    uint8_t login;    /* 1: a login's SessionEvent (issue #18: CONNACK waits for it), not a message */
    uint8_t checked;  /* a login's: by password (else certificate) */
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

struct gwcheck;
static void gwcheck_free(struct gwcheck *k);

static void conn_free(conn *c)
{
    gwcheck_free(c->chk);
    if (c->ssl) SSL_free(c->ssl); /* frees the BIOs */
    sr_buf_release(&c->tlsin);
    sr_buf_release(&c->pend_ev);
    free(c->pend_d);
    free(c->ackq);
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

static void process(conn *c);
static void conn_maybe_resume(conn *c);

static size_t low_water(const conn *c) { return c->srv->cfg.mqtt_max_output / 4; }

#ifdef SR_DEBUG
/* (8): the connection's state as sr_mqtt_conn_check sees it. O(subscriptions).
 * Only SR_INVARIANT calls it (tests build states for sr_mqtt_conn_check). */
static const char *conn_check(const conn *c)
{
    const sr_config *cfg = &c->srv->cfg;
    sr_mqtt_conn_state v = {
        .state = c->state, .version = c->version, .refs = c->refs, .handle_closed = c->handle_closed,
        .reading = c->reading, .inflight = c->inflight, .blocked = c->blocked, .has_pending = c->pend_d != NULL,
        .bheld = c->bheld, .checking = c->checking, .out_bytes = c->out_bytes, .out_paused = c->out_paused,
        .out_over = c->out_over, .nsubs = c->nsubs, .ackq_head = c->ackq_head, .ackq_len = c->ackq_len,
        .ackq_cap = c->ackq_cap, .ackq_front_done = c->ackq_len && c->ackq[c->ackq_head].done,
        .inflight_max = cfg->inflight_max, .max_output = cfg->mqtt_max_output, .max_subs = cfg->mqtt_max_subs,
        .ackq_max = ACKQ_MAX,
    };
    char root[sizeof c->root];
    snprintf(root, sizeof root, "wip/v1/%s/gw/%s", c->op, c->gw);
    v.root_ok = c->op[0] && c->gw[0] && !strcmp(root, c->root);
    size_t rl = strlen(c->root);
    for (const sub *x = c->subs; x; x = x->next) {
        v.subs_listed++;
        size_t fl = strlen(x->filter);
        v.subs_outside_root += !(fl >= rl && !memcmp(x->filter, c->root, rl) && (fl == rl || x->filter[rl] == '/'));
    }
    return sr_mqtt_conn_check(&v);
}
#endif

static void on_written(uv_write_t *r, int status)
{
    (void)status;
    wreq *w = (wreq *)r;
    /* write callbacks run before the handle's close callback: c is alive */
    conn *c = (conn *)w->req.handle;
    c->out_bytes -= w->buf.len + sizeof *w;
    free(w->buf.base);
    free(w);
    if (c->out_paused && c->out_bytes <= low_water(c) / 2 && c->state != ST_CLOSING &&
        !uv_is_closing((uv_handle_t *)&c->tcp)) {
        /* (5): drained: process what was read before the pause, read on */
        c->out_paused = 0;
        process(c);
        conn_maybe_resume(c);
    }
    SR_INVARIANT(conn_check(c));
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

static void conn_pause(conn *c);

static void raw_send(conn *c, const void *data, size_t len)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->out_over) return;
    sr_config *cfg = &c->srv->cfg;
    if (c->out_bytes && c->out_bytes + len + sizeof(wreq) > cfg->mqtt_max_output) {
        /* (5): a peer that does not read: drop this and close it soon (one
         * message alone always goes: a large fetch reply is no attack) */
        c->out_over = 1;
        conn_pause(c);
        sr_slog(SR_LOG_WARN, "mqtt output queue over the limit", "op=%s gw=%s peer=%s bytes=%zu limit=%u", c->op,
                c->gw, c->peer, c->out_bytes + len + sizeof(wreq), cfg->mqtt_max_output);
        return;
    }
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
        return;
    }
    c->out_bytes += len + sizeof *w; /* what the request holds: the bytes and the request itself */
    if (!c->out_paused && c->out_bytes > low_water(c)) {
        /* (5): stop reading and processing until the peer reads */
        c->out_paused = 1;
        c->out_paused_at = now_ms();
        conn_pause(c);
    }
}

static void session_event(conn *c, int state, const char *reason);
static void alive_offline(conn *c, int send_will);

static void conn_close(conn *c, const char *why, int send_will)
{
    if (c->state == ST_CLOSING) return;
    int was_active = c->state == ST_ACTIVE;
    c->state = ST_CLOSING;
    sr_server *s = c->srv;
    sr_metrics_conn(c->ssl ? SR_MCONN_MQTTS : SR_MCONN_MQTT, -1);
    if (was_active) sr_metrics_gateway_mqtt(-1);
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    if (was_active) {
        sr_slog(SR_LOG_INFO, "gateway disconnected", "op=%s gw=%s peer=%s reason=%s", c->op, c->gw, c->peer,
                sr_slog_q(why));
        session_event(c, send_will ? SR_SS_EXPIRED : SR_SS_DISCONNECTED,
                      why);
        alive_offline(c, send_will);
        if (s->broker) sr_broker_gw_offline(s->broker, c->op, c->gw, c);
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    SR_INVARIANT(conn_check(c));
}

/* REVOCATION: the gateway was deleted or disabled, or its secret rotated,
 * after its login: its connection closes (5.0: DISCONNECT 0x87 Not
 * authorized first, the reason as its Reason String), a SessionEvent
 * DISCONNECTED with the reason. */
static void conn_revoke(conn *c, const char *why)
{
    char r[80];
    snprintf(r, sizeof r, "gateway %s", why);
    if (c->version == 5) {
        sr_buf b;
        sr_buf_init(&b);
        sr_mqtt_props p;
        memset(&p, 0, sizeof p);
        p.present = SR_MQTT_P_REASON_STRING; /* says why (clients such as paho 1.6 read the code only then) */
        p.reason_string = (sr_mqtt_str){r, strlen(r)};
        if (sr_mqtt_encode_disconnect(&b, 5, SR_MQTT_RC_NOT_AUTHORIZED, &p) == SR_OK) conn_send(c, &b);
        sr_buf_release(&b);
    }
    conn_close(c, r, 0);
}

/* ---- REVOCATION: the engine's registry hook ------------------------------
 * The writer calls on_registry after a group that changed the registry is
 * committed (durable), before that group's callbacks; each change of an app
 * or a gateway is queued to the loop (regq), which re-reads the entry for
 * each of the principal's live sessions: MQTT connections here, HTTP tokens
 * in the bindings (sr_gwhttp_registry_changed). Between the commit and the
 * loop's turn a request of such a session is stopped by its own check of
 * the registry generation (sr_login_recheck), so no request after the change
 * is answered as before it. */
typedef struct regchange {
    sr_loopq_item li;
    int kind;
    char op[72], id[72];
} regchange;

static void on_registry(void *ctx, const sr_reg_committed *ch, size_t n)
{
    sr_server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        /* a signature requirement: noted now, before the admin's answer (api/gwif_json.h) */
        if (ch[i].kind == SR_RG_SIGREQ) sr_gw_sigreq_note(ch[i].op, ch[i].id, !ch[i].deleted);
        if ((ch[i].kind != SR_RG_APP && ch[i].kind != SR_RG_GATEWAY) || strlen(ch[i].op) >= 72 ||
            strlen(ch[i].id) >= 72)
            continue; /* grants need nothing (re-read at the next request); longer ids log in nowhere */
        regchange *r = calloc(1, sizeof *r);
        if (!r) {
            sr_slog(SR_LOG_WARN, "registry change not handed to the loop", "op=%s id=%s error=SR_ENOMEM "
                    "detail=\"its sessions end at their next request\"", sr_slog_q(ch[i].op), sr_slog_q(ch[i].id));
            continue;
        }
        r->kind = ch[i].kind;
        snprintf(r->op, sizeof r->op, "%s", ch[i].op);
        snprintf(r->id, sizeof r->id, "%s", ch[i].id);
        sr_loopq_push(&s->regq, &r->li);
    }
}

static void on_regchange(void *ctx, sr_loopq_item *it)
{
    sr_server *s = ctx;
    regchange *r = SR_CONTAINER(it, regchange, li);
    if (s->eng && !s->stopping) {
        size_t ended = sr_gwhttp_registry_changed(s->http, r->op, r->kind, r->id);
        for (conn *c = s->conns; r->kind == SR_RG_GATEWAY && c;) {
            conn *n = c->next;
            const char *why = c->state == ST_ACTIVE && !strcmp(c->op, r->op) && !strcmp(c->gw, r->id)
                                  ? sr_login_reread(s->eng, 'g', c->op, c->gw, &c->seen)
                                  : NULL;
            if (why) {
                conn_revoke(c, why);
                ended++;
            }
            c = n;
        }
        if (ended)
            sr_slog(SR_LOG_INFO, "sessions ended by a registry change", "op=%s %s=%s sessions=%zu", r->op,
                    r->kind == SR_RG_APP ? "app" : "gw", r->id, ended);
    }
    free(r);
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

/* submit one audit event that a builder (sr_cmd_*) appended to b, then release b */
static void submit_audit(sr_server *s, int built, sr_buf *b)
{
    if (built == SR_OK) {
        sr_slice sl = {b->data, b->len};
        int rc = sr_engine_submit(s->eng, &sl, 1, audit_done, NULL);
        if (rc) sr_slog(SR_LOG_WARN, "audit event not queued", "error=%s", sr_err_name(rc));
    }
    sr_buf_release(b);
}

static void session_event(conn *c, int state, const char *reason)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {c->op, c->gw, SR_ACTOR_GATEWAY, NULL, c->peer};
    submit_audit(c->srv, sr_cmd_session(&env, SR_ACTOR_GATEWAY, c->gw, (sr_session_state)state, "mqtt", reason, &b),
                 &b);
}

static const char *mqtt_binding(const conn *c) { return c->ssl ? "mqtts" : "mqtt"; }

/* The will (MQTT 3.1.1 section 3.1.2.5), when the connection ends without a
 * DISCONNECT (or 5.0's DISCONNECT 0x04). The contract's one use of it is
 * R/status with GW_DISCONNECT {state:"OFFLINE"} (interface.md GW-IF #2):
 * it is handled as that status message would be -- the gateway offline at
 * once, reason will -- and published nowhere else (no gateway may
 * subscribe outside its own root, and the platform is the will's one
 * reader). Any other will is refused, and the refusal, naming what is
 * wrong, is the AliveEvent's `will`. 1 if applied. */
static int will_handle(conn *c, char *out, size_t cap)
{
    char want[220];
    snprintf(want, sizeof want, "%s/status", c->root);
    if (!c->will_topic || strcmp(c->will_topic, want)) {
        snprintf(out, cap, "refused: the will's topic is not R/status");
        return 0;
    }
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    int ok = 0;
    if (sr_gw_parse(c->will_payload.data, c->will_payload.len, &msg, &err) != SR_OK) {
        snprintf(out, cap, "refused: %.160s", err.message);
    } else {
        json_t *st = json_object_get(msg.body, "state");
        if (strcmp(msg.type, "GW_DISCONNECT"))
            snprintf(out, cap, "refused: header.messageType: GW_DISCONNECT is required on a will");
        else if (!json_is_string(st) || strcmp(json_string_value(st), "OFFLINE"))
            snprintf(out, cap, "refused: body.state: OFFLINE is required on a will");
        else {
            snprintf(out, cap, "applied");
            ok = 1;
        }
    }
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
    return ok;
}

/* An ACTIVE connection ends: the gateway is offline (api/alive.h): keep-alive
 * expiry (actor system), its will, or a plain disconnect. A gateway that
 * said OFFLINE on R/status already is offline: nothing more is stored. */
static void alive_offline(conn *c, int send_will)
{
    if (!c->ae) return;
    char will[200] = "";
    int applied = send_will && c->has_will && will_handle(c, will, sizeof will);
    sr_alive_reason why = c->alive_reason ? (sr_alive_reason)c->alive_reason : applied ? SR_AR_WILL : SR_AR_DISCONNECT;
    sr_alive_set(c->srv->alive, c->ae, SR_AS_OFFLINE, why, mqtt_binding(c), c->peer, will, why == SR_AR_KEEPALIVE_EXPIRED);
    c->ae = NULL;
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

static void send_gw_ack(conn *c, const char *msgid, sr_wire code, const char *message, json_t *detail)
{
    char topic[260];
    if (!wants(c, "res/ack", topic)) return; /* most gateways rely on PUBACK: build nothing */
    sr_buf b;
    sr_buf_init(&b);
    if (sr_gw_ack(msgid, code, message, detail, wall_ms(), &b) == SR_OK) deliver(c, "res/ack", &b);
    sr_buf_release(&b);
}

static void puback_now(conn *c, uint16_t pid, uint8_t reason)
{
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_ack(&b, c->version, SR_MQTT_PUBACK, pid, c->version == 5 ? reason : 0, NULL) == SR_OK)
        conn_send(c, &b);
    sr_buf_release(&b);
}

/* A QoS 1 PUBLISH arrived: its PUBACK's place in the order (ackq). */
static void ack_slot(conn *c, uint16_t pid)
{
    if (!pid) return;
    if (c->ackq_head && c->ackq_head + c->ackq_len == c->ackq_cap) { /* room at the end: move to the front */
        memmove(c->ackq, c->ackq + c->ackq_head, c->ackq_len * sizeof *c->ackq);
        c->ackq_head = 0;
    }
    if (c->ackq_head + c->ackq_len == c->ackq_cap) {
        size_t ncap = c->ackq_cap ? c->ackq_cap * 2 : 16;
        struct ackslot *n = realloc(c->ackq, ncap * sizeof *n);
        if (!n) return; /* no slot: its PUBACK goes out when it is ready (out of order, never lost) */
        c->ackq = n;
        c->ackq_cap = ncap;
    }
    c->ackq[c->ackq_head + c->ackq_len++] = (struct ackslot){pid, 0, 0};
}

static void send_puback(conn *c, uint16_t pid, uint8_t reason)
{
    if (!pid) return;
    size_t i = 0;
    while (i < c->ackq_len && (c->ackq[c->ackq_head + i].done || c->ackq[c->ackq_head + i].pid != pid)) i++;
    if (i == c->ackq_len) { /* not in the order (no slot): now */
        puback_now(c, pid, reason);
        return;
    }
    c->ackq[c->ackq_head + i].done = 1;
    c->ackq[c->ackq_head + i].reason = reason;
    /* what is ready at the front goes out */
    while (c->ackq_len && c->ackq[c->ackq_head].done) {
        puback_now(c, c->ackq[c->ackq_head].pid, c->ackq[c->ackq_head].reason);
        c->ackq_head++;
        c->ackq_len--;
    }
    if (!c->ackq_len) c->ackq_head = 0;
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
/* A refused message in the audit trail (api/access.h sr_access_refused;
 * docs/audit.md "Refusals"): who, what (the topic's kind, the data points of
 * body.values), when, from where, the code. */
static void refusal_audit(conn *c, sr_wire code)
{
    if (!c->op[0]) return;
    sr_access_entry en = {.time_ms = wall_ms(), .binding = "gwif-mqtt", .method = "PUBLISH",
                          .route = c->pub_route ? c->pub_route : "data (refused by the writer)",
                          .status = (uint32_t)sr_wire_status(code), .code = sr_wire_code(code), .source = c->peer};
    if (json_is_array(c->pub_values)) {
        size_t n = json_array_size(c->pub_values);
        en.npoints = (uint32_t)n;
        for (size_t i = 0; i < n && en.npoints_listed < SR_ACCESS_POINTS_MAX; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(c->pub_values, i), "dataId"));
            if (id) en.points[en.npoints_listed++] = id;
        }
    }
    sr_access_refused(c->srv->access, c->op, SR_ACTOR_GATEWAY, c->gw, &en);
}

static int gw_outcome(conn *c, uint16_t pid, const char *msgid, int outcome, int busy, uint8_t reason,
                      sr_wire code, const char *message, json_t *detail)
{
    if (c->state == ST_CLOSING) return 1;
    if (outcome != SR_GW_DURABLE) sr_metrics_refused(code);
    if (outcome == SR_GW_REFUSED) refusal_audit(c, code);
    if (outcome == SR_GW_DURABLE) {
        send_puback(c, pid, 0);
        send_gw_ack(c, msgid, SR_WIRE_OK, message, detail);
        return 0;
    }
    if (outcome == SR_GW_REFUSED) {
        send_puback(c, pid, reason ? reason : SR_MQTT_RC_IMPL_SPECIFIC);
        send_gw_ack(c, msgid, code, message, detail);
        return 0;
    }
    sr_slog(SR_LOG_WARN, "gateway message not stored", "op=%s gw=%s msgid=%s error=%s detail=%s mqtt=%s", c->op, c->gw,
            sr_slog_q(msgid ? msgid : ""), sr_wire_code(code), sr_slog_q(message ? message : ""), c->version == 5 ? "5.0" : "3.1.1");
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
    if (!rc) return gw_outcome(c, pid, msgid, SR_GW_DURABLE, 0, 0, SR_WIRE_OK, duplicate ? "duplicate; stored once" : "stored",
                               NULL);
    char m[240];
    snprintf(m, sizeof m, "%s%s", msg && msg[0] ? msg : sr_wire_msg_of_rc(rc),
             sr_gw_outcome_rc(rc) == SR_GW_TRANSIENT ? "; not acknowledged as stored, send it again" : "");
    return gw_outcome(c, pid, msgid, sr_gw_outcome_rc(rc), rc == SR_EFULL, 0, sr_wire_of_rc(rc), m, NULL);
}

static void login_durable(completion *d);

/* an engine completion, on the loop */
static void on_done(void *ctx, sr_loopq_item *it)
{
    (void)ctx;
    completion *d = SR_CONTAINER(it, completion, li);
    if (d->login) {
        login_durable(d);
        return;
    }
    {
        conn *c = d->c;
        c->inflight--;
        if (d->res.range) /* the alarm rule value-out-of-range (api/gwif_json.h) */
            sr_gw_range_refused(c->op, c->gw, d->res.err.where, d->res.err.msg);
        if (c->state != ST_CLOSING) {
            /* (1): durable, refused or not stored -- now answer */
            if (d->nvalues && !d->res.rc && !d->res.duplicate) sr_metrics_ingested(sr_metrics_op(c->op), d->nvalues);
            if (!gw_outcome_rc(c, d->packet_id, d->msgid, d->res.rc, d->res.duplicate, d->res.err.msg)) conn_maybe_resume(c);
        }
        SR_INVARIANT(conn_check(c));
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
    if (!c->reading && !c->blocked && !c->bheld && !c->checking && !c->out_paused && !c->out_over && c->state != ST_CLOSING &&
        c->inflight < (int)c->srv->cfg.inflight_max && c->ackq_len < ACKQ_MAX) {
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

/* ---- logins ----------------------------------------------------------------
 * The login guard (api/loginguard.h) throttles per (gateway, address), per
 * address and per gateway, and runs the scrypt check on its own threads; an
 * unknown gateway is checked against a dummy hash, the same path and time. */
typedef struct auth_job {
    sr_login_job lj; /* its stored hash: the gateway's (empty if unknown) */
    conn *c;
} auth_job;

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

/* refused without a check: throttled, or the guard is busy */
static void login_throttled(conn *c, int verdict, uint64_t retry_ms)
{
    c->state = ST_AUTH; /* so that connack reports it */
    connack(c, verdict == SR_LG_BUSY ? SR_MQTT_RC_SERVER_BUSY
                                     : c->version == 5 ? SR_MQTT_RC_SERVER_BUSY : SR_MQTT_RC_NOT_AUTHORIZED);
    sr_slog(SR_LOG_WARN, "gateway login throttled", "op=%s gw=%s peer=%s binding=mqtt reason=%s retry_ms=%" PRIu64
            " checked=0", sr_slog_q(c->op), sr_slog_q(c->gw), c->peer, sr_lg_name(verdict), retry_ms);
    conn_close(c, verdict == SR_LG_BUSY ? "login checks busy" : "too many failed logins", 0);
}

static int login_submit(conn *c, int checked);
static void login_unavailable(conn *c, int rc);
static void on_retry(uv_timer_t *t);

static void auth_done(sr_login_job *lj)
{
    auth_job *j = SR_CONTAINER(lj, auth_job, lj);
    conn *c = j->c;
    if (lj->verdict == SR_LG_OK && lj->checked && !lj->ok) {
        /* a failed check is logged and audited (and counted by the guard)
         * also when the client left before the verdict */
        sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=mqtt checked=%d",
                sr_slog_q(c->op), sr_slog_q(c->gw), c->peer, lj->checked);
        if (c->op[0]) {
            sr_buf b;
            sr_buf_init(&b);
            sr_cmd_env env = {c->op, c->gw, SR_ACTOR_GATEWAY, NULL, c->peer};
            submit_audit(c->srv,
                         sr_cmd_auth(&env, SR_ACTOR_GATEWAY, c->gw, 0, "password", "bad user name or password", &b),
                         &b);
        }
    }
    /* disabled, deleted or rotated while the secret was checked; for a
     * certificate: not registered or disabled */
    const char *why = c->state == ST_AUTH && lj->verdict == SR_LG_OK && lj->ok
                          ? sr_login_seen_init(c->srv->eng, 'g', c->op, c->gw, lj->checked ? &lj->stored : NULL, &c->seen)
                          : NULL;
    if (c->state == ST_AUTH && lj->verdict != SR_LG_OK) {
        login_throttled(c, lj->verdict, lj->retry_ms);
    } else if (c->state == ST_AUTH && why) {
        sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=mqtt detail=%s", sr_slog_q(c->op),
                sr_slog_q(c->gw), c->peer, sr_slog_q(why));
        connack(c, lj->checked ? SR_MQTT_RC_BAD_USER_OR_PASSWORD : SR_MQTT_RC_NOT_AUTHORIZED);
        conn_close(c, "login refused", 0);
    } else if (c->state == ST_AUTH) {
        if (lj->ok) {
            int rc = login_submit(c, lj->checked);
            if (rc) login_unavailable(c, rc);
        } else {
            connack(c, SR_MQTT_RC_BAD_USER_OR_PASSWORD);
            conn_close(c, "login refused", 0);
        }
    }
    sr_buf_release(&lj->stored);
    free(j);
    SR_INVARIANT(conn_check(c));
    conn_unref(c);
}

/* A verified login whose SessionEvent is durable: the session exists now
 * (takeover, CONNACK 0, online, the broker). */
static void login_complete(conn *c, int checked)
{
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
    sr_metrics_gateway_mqtt(+1);
    snprintf(c->root, sizeof c->root, "wip/v1/%s/gw/%s", c->op, c->gw);
    connack(c, 0);
    sr_slog(SR_LOG_INFO, "gateway connected", "op=%s gw=%s peer=%s mqtt=%s", c->op, c->gw, c->peer,
            c->version == 5 ? "5.0" : "3.1.1");
    if ((c->ae = sr_alive_get(c->srv->alive, c->op, SR_ACTOR_GATEWAY, c->gw)))
        sr_alive_set(c->srv->alive, c->ae, SR_AS_ONLINE, SR_AR_CONNECT, mqtt_binding(c), c->peer, "", 0);
    sr_login_audit_event(c->srv->eng, SR_ACTOR_GATEWAY, c->op, c->gw, 1, checked ? "password" : "certificate",
                         "", c->peer);
    sr_gwlink link = {c, link_send};
    sr_broker_gw_online(c->srv->broker, c->op, c->gw, &link);
    /* packets that arrived while authenticating */
    process(c);
    conn_maybe_resume(c);
}

/* A verified login the engine could not record (its SessionEvent refused:
 * a write error, a stopped writer, a full queue): refused, no session
 * (issue #18, fail closed): CONNACK 0x88 server unavailable (3.1.1: rc 3). */
static void login_unavailable(conn *c, int rc)
{
    sr_slog(SR_LOG_WARN, "gateway login refused", "op=%s gw=%s peer=%s binding=mqtt detail=%s", sr_slog_q(c->op),
            sr_slog_q(c->gw), c->peer, sr_slog_q(sr_err_name(rc)));
    connack(c, SR_MQTT_RC_SERVER_UNAVAILABLE);
    conn_close(c, "login not recorded (the engine cannot write)", 0);
}

/* Submit a verified login's SessionEvent; its completion (login_durable,
 * on the loop) answers the CONNACK. The connection stays paused in
 * ST_AUTH meanwhile, referenced by the completion. */
static int login_submit(conn *c, int checked)
{
    completion *d = calloc(1, sizeof *d);
    if (!d) return SR_ENOMEM;
    d->c = c;
    d->login = 1;
    d->checked = (uint8_t)!!checked;
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {c->op, c->gw, SR_ACTOR_GATEWAY, NULL, c->peer};
    int rc = sr_cmd_session(&env, SR_ACTOR_GATEWAY, c->gw, SR_SS_CONNECTED, "mqtt", "", &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        c->refs++;
        rc = sr_engine_submit(c->srv->eng, &sl, 1, engine_done, d);
        if (rc) c->refs--;
    }
    if (rc == SR_EFULL) {
        /* a full queue is back-pressure, not a refusal: the login waits for
         * room as a message does (on_retry submits it again) */
        c->pend_ev.len = 0;
        rc = sr_buf_append(&c->pend_ev, b.data, b.len);
        if (rc == SR_OK) {
            c->pend_d = d;
            c->blocked = 1;
            c->refs++;
            c->blocked_next = c->srv->blocked;
            c->srv->blocked = c;
            if (!uv_is_active((uv_handle_t *)&c->srv->retry)) uv_timer_start(&c->srv->retry, on_retry, 2, 2);
            d = NULL;
        }
    }
    sr_buf_release(&b);
    if (rc) free(d);
    return rc;
}

static void login_durable(completion *d)
{
    conn *c = d->c;
    if (c->state == ST_AUTH) {
        if (d->res.rc) login_unavailable(c, d->res.rc);
        else login_complete(c, d->checked);
    } else if (!d->res.rc) /* it left before the answer: its session ends as it began, recorded */
        session_event(c, SR_SS_DISCONNECTED, "client left before the login was answered");
    SR_INVARIANT(conn_check(c));
    conn_unref(c);
    free(d);
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
        j->lj.done = auth_done;
        sr_buf_init(&j->lj.stored);
        c->state = ST_AUTH;
        c->refs++;
        conn_pause(c);
        sr_loginguard_pass(c->srv->guard, &j->lj); /* no password to check; the job only orders the steps */
        return;
    }
    const char *slash = un->len ? memchr(un->s, '/', un->len) : NULL;
    if (!p->connect.has_username || !p->connect.has_password || !slash || cid->len == 0 || cid->len >= sizeof c->gw ||
        (size_t)(slash - un->s) >= sizeof c->op || un->len - (size_t)(slash - un->s) - 1 != cid->len ||
        memcmp(slash + 1, cid->s, cid->len) != 0 || p->connect.password.len >= 300 ||
        memchr(p->connect.password.data, 0, p->connect.password.len)) { /* a NUL would cut the secret */
        c->state = ST_AUTH; /* so that connack reports it */
        connack(c, p->connect.has_username ? SR_MQTT_RC_BAD_USER_OR_PASSWORD : SR_MQTT_RC_NOT_AUTHORIZED);
        sr_slog(SR_LOG_WARN, "gateway login refused", "peer=%s detail=%s", c->peer,
                sr_slog_q("user name must be operatorId/gatewayId with gatewayId = client id, and a password "
                          "(at most 299 bytes, no NUL)"));
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
    auth_job *j = calloc(1, sizeof *j);
    if (!j) {
        conn_close(c, "out of memory", 0);
        return;
    }
    j->c = c;
    j->lj.done = auth_done;
    memcpy(j->lj.secret, p->connect.password.data, p->connect.password.len);
    sr_buf_init(&j->lj.stored);
    sr_login_stored(c->srv->eng, 'g', c->op, c->gw, &j->lj.stored);
    char addr[64];
    sr_login_addr_peer(c->peer, addr);
    uint64_t retry_ms = 0;
    int v = sr_loginguard_submit(c->srv->guard, &j->lj, 'g', c->op, c->gw, addr, &retry_ms);
    if (v != SR_LG_OK) {
        sr_buf_release(&j->lj.stored);
        memset(j->lj.secret, 0, sizeof j->lj.secret);
        free(j);
        login_throttled(c, v, retry_ms);
        return;
    }
    c->state = ST_AUTH;
    c->refs++;
    conn_pause(c); /* packets after CONNECT wait for the verdict */
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
            rc = c->pend_d->login ? sr_engine_submit(s->eng, &sl, 1, engine_done, c->pend_d)
                                  : sr_cluster_submit(s->eng, &sl, 1, engine_done, c->pend_d); /* values: in NATS too */
        }
        if (rc == SR_EFULL && c->state != ST_CLOSING) {
            c->blocked_next = keep;
            keep = c;
            continue;
        }
        c->blocked = 0;
        int login = c->pend_d->login; /* a login's SessionEvent (login_submit) */
        if (rc == SR_OK) {
            c->pend_d = NULL; /* owned by the engine until engine_done */
            c->refs++;
            if (!login) c->inflight++;
        } else if (c->state != ST_CLOSING && login)
            login_unavailable(c, rc);
        else if (c->state != ST_CLOSING)
            (void)gw_outcome_rc(c, c->pend_d->packet_id, c->pend_d->msgid, rc, 0, NULL);
        if (c->pend_d) {
            free(c->pend_d);
            c->pend_d = NULL;
        }
        if (c->state != ST_CLOSING && !login) {
            process(c); /* what was read before blocking */
            conn_maybe_resume(c);
        }
        SR_INVARIANT(conn_check(c));
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
static void submit_values(conn *c, const sr_mqtt_pkt *p, const char *msgid, const sr_buf *ev, size_t nvalues)
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
        d->nvalues = nvalues > UINT32_MAX ? UINT32_MAX : (uint32_t)nvalues;
        rc = sr_cluster_submit(c->srv->eng, &sl, 1, engine_done, d); /* PUBACK once durable (and in NATS) */
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
static void mqtt_read_audit(conn *c, const bjob *j, const sr_gw_answer *a);

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
 * completion (api/broker.c invariant 1). A full engine queue (a->rc
 * SR_EFULL, which the broker answers at once) is back-pressure, as for
 * values: the message is held, the socket not read, and the message handed
 * to the broker again by a retry timer -- never acknowledged before it is
 * durable, and no disconnect storm when a gateway's window is larger than
 * the queue. */
static void on_broker_answer(void *ctx, const sr_gw_answer *a)
{
    bjob *j = ctx;
    conn *c = j->c;
    sr_server *s = c->srv;
    if (c->state != ST_CLOSING && j->in_call && !s->stopping && a->rc == SR_EFULL && !a->reply) {
        if (!j->held.data && sr_buf_append(&j->held, j->payload, j->payload_len) != SR_OK) goto answer;
        *j->in_call = 1;
        j->next = NULL;
        bjob **tail = &s->bheld;
        while (*tail) tail = &(*tail)->next;
        *tail = j;
        if (!c->bheld++) conn_pause(c);
        if (!uv_is_active((uv_handle_t *)&s->bretry)) uv_timer_start(&s->bretry, on_broker_retry, 2, 2);
        SR_INVARIANT(conn_check(c));
        return; /* still in flight: inflight and the reference stay */
    }
answer:
    if (j->in_call) *j->in_call = 2;
    c->inflight--;
    mqtt_read_audit(c, j, a);
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
            closed = gw_outcome(c, j->packet_id, j->msgid, out, a->rc == SR_EFULL, 0, a->code,
                                out == SR_GW_DURABLE ? a->message : m, a->detail);
        }
        if (!closed) conn_maybe_resume(c);
    }
    sr_buf_release(&j->held);
    free(j);
    SR_INVARIANT(conn_check(c));
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
            sr_gw_answer a = {SR_WIRE_INTERNAL, "out of memory", NULL, NULL, NULL, SR_OK};
            j->in_call = NULL;
            on_broker_answer(j, &a);
        } else {
            /* its protection was verified when it arrived (sr_gw_parse_sig), before it was held */
            size_t off, n;
            if (msg.protection && !sr_json_member_span(j->held.data, j->held.len, "body", &off, &n) &&
                (msg.signed_body = malloc(n + 1))) {
                memcpy(msg.signed_body, (const char *)j->held.data + off, n);
                msg.signed_body[n] = 0;
                msg.signed_len = n;
                msg.sig_verified = 1;
            }
            j->payload = j->held.data;
            j->payload_len = j->held.len;
            broker_call(j, &msg);
        }
        sr_gw_msg_release(&msg);
        sr_gw_err_clear(&err);
        if (c->state != ST_CLOSING && !c->bheld) conn_maybe_resume(c);
        SR_INVARIANT(conn_check(c));
        conn_unref(c);
    }
    if (!s->bheld) uv_timer_stop(&s->bretry);
}

/* A gateway's read over MQTT (the request fetch, a certificate): the
 * kind's row when it is one, else NULL (api/access.h) */
static const sr_gw_kind *mqtt_read_kind(const char *suffix)
{
    return !strcmp(suffix, "req/fetch") || !strcmp(suffix, "req/cert") ? sr_gw_kind_of_topic(suffix) : NULL;
}

/* its audit entry, once answered */
static void mqtt_read_audit(conn *c, const bjob *j, const sr_gw_answer *a)
{
    const sr_gw_kind *k = mqtt_read_kind(j->suffix);
    if (!k || !sr_access_on(c->srv->access)) return;
    int ok = a->code == SR_WIRE_OK && a->reply;
    sr_access_entry en = {.time_ms = wall_ms(), .binding = "gwif-mqtt", .method = "PUBLISH", .route = k->suffix,
                          .bytes = a->reply ? a->reply->len : 0, .status = ok ? 200u : (unsigned)sr_wire_status(a->code),
                          .code = ok ? "" : sr_wire_code(a->code), .source = c->peer};
    sr_access_add(c->srv->access, c->op, SR_ACTOR_GATEWAY, c->gw, &en);
}

static void to_broker(conn *c, const sr_mqtt_pkt *p, const char *suffix, const sr_gw_msg *msg)
{
    if (mqtt_read_kind(suffix) && !sr_access_admit(c->srv->access)) { /* never answered unaudited (api/access.h) */
        (void)gw_outcome(c, p->packet_id, msg->message_id, SR_GW_TRANSIENT, 1, 0, SR_WIRE_BUSY,
                         "the audit trail cannot take this read now: retry later", NULL);
        return;
    }
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

/* ---- (5) large messages are checked on the worker queue ---------------- */

typedef struct gwcheck {
    sr_work w;
    conn *c;
    sr_engine *eng;
    uint8_t *data;
    size_t len;
    int is_values;
    char op[72], gw[72];
    sr_gw_checked r;
} gwcheck;

static void gwcheck_free(gwcheck *k)
{
    if (!k) return;
    sr_gw_checked_release(&k->r);
    free(k->data);
    free(k);
}

static void check_work(sr_work *w)
{
    gwcheck *k = SR_CONTAINER(w, gwcheck, w);
    sr_gw_check(k->eng, k->op, k->gw, k->data, k->len, k->is_values, &k->r);
}

static void check_done(sr_work *w, int status)
{
    gwcheck *k = SR_CONTAINER(w, gwcheck, w);
    conn *c = k->c;
    free(k->data);
    k->data = NULL;
    c->checking = 0;
    c->inflight--;
    c->last_rx = now_ms(); /* nothing was read meanwhile: the keep-alive counts from now */
    if (status || c->state == ST_CLOSING) {
        gwcheck_free(k);
        if (c->state != ST_CLOSING) conn_close(c, "the message could not be checked", 0);
    } else {
        c->chk = k; /* handle_publish takes it when it sees the packet again */
        process(c);
        conn_maybe_resume(c);
    }
    SR_INVARIANT(conn_check(c));
    conn_unref(c);
}

/* 1 if the message went to the worker queue (handle_publish returns and is
 * called again for the same packet once checked); 0: check it inline; -1: a
 * signed message that could not be queued (memory): not checked, transient.
 * signed_: it may carry protection (sr_gw_may_be_signed), whatever its size.
 * Who asks whether it is signed: a values message only once the fast path
 * declined it (the fast path declines any protection), so that an unsigned
 * message that the fast path takes never pays the scan. */
static int check_async(conn *c, const sr_mqtt_publish *m, int is_values, int signed_)
{
    sr_server *s = c->srv;
    if (!s->workq || (m->payload.len <= s->cfg.parse_inline_max && !signed_)) return 0;
    gwcheck *k = calloc(1, sizeof *k);
    uint8_t *copy = k ? malloc(m->payload.len) : NULL;
    if (!copy) {
        free(k);
        return signed_ ? -1 : 0; /* a signed one is never verified on the loop */
    }
    memcpy(copy, m->payload.data, m->payload.len);
    k->c = c;
    k->eng = s->eng;
    k->data = copy;
    k->len = m->payload.len;
    k->is_values = is_values;
    snprintf(k->op, sizeof k->op, "%s", c->op);
    snprintf(k->gw, sizeof k->gw, "%s", c->gw);
    k->w.work = check_work;
    k->w.done = check_done;
    /* never refused: one message per connection, which stops reading */
    if (sr_workq_submit(s->workq, c->op, k->len, 1, &k->w) != SR_OK) {
        gwcheck_free(k);
        return signed_ ? -1 : 0;
    }
    c->checking = 1;
    c->inflight++;
    c->refs++;
    conn_pause(c);
    return 1;
}

/* The worker's result, moved out of c->chk into what handle_publish's inline
 * calls would have filled (each part once). */
static int chk_fast(sr_gw_checked *k, sr_gw_fast_msg *fm, sr_buf *fev)
{
    if (k->fast) return k->fast;
    *fm = k->fm;
    sr_buf_release(fev);
    *fev = k->ev;
    sr_buf_init(&k->ev);
    return 0;
}

static int chk_parse(sr_gw_checked *k, sr_gw_msg *msg, sr_gw_err *err)
{
    *msg = k->msg;
    memset(&k->msg, 0, sizeof k->msg);
    if (k->parse_rc) {
        *err = k->err;
        memset(&k->err, 0, sizeof k->err);
    }
    return k->parse_rc;
}

static int chk_values(sr_gw_checked *k, sr_buf *ev, size_t *nv, sr_gw_err *err)
{
    sr_buf_release(ev);
    *ev = k->ev;
    sr_buf_init(&k->ev);
    *nv = k->nvalues;
    *err = k->err;
    memset(&k->err, 0, sizeof k->err);
    return k->values_rc;
}

static void handle_publish_1(conn *c, const sr_mqtt_pkt *p);
static void handle_publish(conn *c, const sr_mqtt_pkt *p)
{
    handle_publish_1(c, p);
    c->pub_route = NULL; /* its refusal's audit entry was made */
    c->pub_values = NULL;
}

static void handle_publish_1(conn *c, const sr_mqtt_pkt *p)
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
    /* its PUBACK's place (once: a packet checked on a worker comes here again with c->chk) */
    if (!c->chk && m->qos == 1) {
        ack_slot(c, p->packet_id);
        if (c->ackq_len >= ACKQ_MAX) conn_pause(c);
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
    const sr_gw_kind *kind = sr_gw_kind_of_topic(suffix); /* api/broker.h */
    int is_values = kind && kind->how == SR_GWK_VALUES;
    c->pub_route = kind ? kind->suffix : "(a topic not handled)";
    /* (5): a large message is checked on a worker; what it found comes back
     * in ck (moved out of c->chk), used by the calls below instead of
     * checking again */
    sr_gw_checked ck, *chk = NULL;
    if (c->chk) {
        ck = c->chk->r;
        memset(&c->chk->r, 0, sizeof c->chk->r);
        gwcheck_free(c->chk);
        c->chk = NULL;
        chk = &ck;
    } else {
        int a = check_async(c, m, is_values, !is_values && sr_gw_may_be_signed(m->payload.data, m->payload.len));
        if (a > 0) return;
        if (a < 0) {
            (void)gw_outcome_rc(c, p->packet_id, "", SR_ENOMEM, 0, NULL);
            return;
        }
    }
    if (is_values) {
        /* the fast path: one pass, no JSON tree (api/gwif_json.c) */
        sr_gw_fast_msg fm;
        sr_buf fev;
        sr_buf_init(&fev);
        if ((chk ? chk_fast(chk, &fm, &fev)
                 : sr_gw_fast(c->srv->eng, c->op, c->gw, m->payload.data, m->payload.len, &fm, &fev)) == 0) {
            char tm[200];
            if (sr_gw_kind_type_check(kind, fm.type, suffix, tm, sizeof tm)) /* nothing stored */
                (void)gw_outcome(c, p->packet_id, fm.message_id, SR_GW_REFUSED, 0, 0, SR_WIRE_PARAM, tm, NULL);
            else
                submit_values(c, p, fm.message_id, &fev, fm.nvalues);
            sr_buf_release(&fev);
            return;
        }
        sr_buf_release(&fev);
        /* declined: a signed one is verified on a worker, never here (7) */
        int a = chk ? 0 : check_async(c, m, is_values, sr_gw_may_be_signed(m->payload.data, m->payload.len));
        if (a > 0) return;
        if (a < 0) {
            (void)gw_outcome_rc(c, p->packet_id, "", SR_ENOMEM, 0, NULL);
            return;
        }
    }
    sr_gw_msg msg;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    int prc = chk ? chk_parse(chk, &msg, &err)
                  : sr_gw_parse_sig(c->srv->eng, c->op, c->gw, m->payload.data, m->payload.len, &msg, &err);
    c->pub_values = msg.body ? json_object_get(msg.body, "values") : NULL; /* refusal_audit's points */
    if (prc != SR_OK) {
        (void)gw_outcome(c, p->packet_id, msg.message_id ? msg.message_id : "", sr_gw_outcome_code(err.code), 0,
                         SR_MQTT_RC_PAYLOAD_FORMAT_INVALID, err.code, err.message, err.detail);
        sr_gw_msg_release(&msg);
        sr_gw_err_clear(&err);
        return;
    }
    sr_buf ev;
    sr_buf_init(&ev);
    int rc = SR_OK;
    size_t nv = 0; /* a values message's values (0: a status message) */
    if (kind && kind->how != SR_GWK_BROKER && sr_gw_kind_type_check(kind, msg.type, suffix, err.message, sizeof err.message)) {
        err.code = SR_WIRE_PARAM; /* the broker checks its own kinds */
        rc = SR_EINVAL;
    } else if (is_values) {
        rc = chk ? chk_values(chk, &ev, &nv, &err)
                 : sr_gw_values_event_sig(c->srv->eng, c->op, c->gw, msg.message_id, NULL, sr_gw_sig_state(&msg),
                                          json_object_get(msg.body, "values"), &ev, &nv, &err);
    } else if (kind && kind->how == SR_GWK_BROKER) {
        to_broker(c, p, suffix, &msg);
        sr_gw_msg_release(&msg);
        return;
    } else if (kind && kind->how == SR_GWK_STATUS) {
        json_t *st = json_object_get(msg.body, "state");
        const char *s = json_is_string(st) ? json_string_value(st) : "";
        if (strcmp(s, "ONLINE") && strcmp(s, "OFFLINE")) {
            err.code = SR_WIRE_PARAM;
            snprintf(err.message, sizeof err.message, "body.state: ONLINE or OFFLINE");
            rc = SR_EINVAL;
        } else {
            /* R-MO-1: the gateway's own word, at once (api/alive.h) */
            int on = !strcmp(s, "ONLINE");
            rc = c->ae ? sr_alive_event(c->srv->alive, c->ae, on ? SR_AS_ONLINE : SR_AS_OFFLINE,
                                        on ? SR_AR_STATUS_ONLINE : SR_AR_STATUS_OFFLINE, mqtt_binding(c), c->peer,
                                        msg.message_id, &ev)
                       : SR_ENOMEM;
        }
    } else {
        err.code = SR_WIRE_PARAM;
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
        submit_values(c, p, msg.message_id, &ev, nv);
    sr_buf_release(&ev);
    sr_gw_msg_release(&msg);
    sr_gw_err_clear(&err);
}

/* the subscription with exactly this filter, or NULL */
static sub **sub_find(conn *c, const sr_mqtt_str *f)
{
    for (sub **x = &c->subs; *x; x = &(*x)->next)
        if (strlen((*x)->filter) == f->len && !memcmp((*x)->filter, f->s, f->len)) return x;
    return NULL;
}

/* One return code per filter, in order (MQTT-3.9.3-1, MQTT-3.11.3-1):
 * the codes of a packet live in a buffer as long as the packet's list. */
static uint8_t *codes_for(const sr_mqtt_pkt *p, uint8_t *small, size_t nsmall, size_t *cap)
{
    size_t n = 0, pos = 0;
    sr_mqtt_sub s;
    while (sr_mqtt_sub_next(p, &pos, &s)) n++;
    *cap = n;
    return n <= nsmall ? small : malloc(n);
}

static void handle_subscribe(conn *c, const sr_mqtt_pkt *p)
{
    uint8_t small[64], *codes;
    size_t n = 0, pos = 0, cap, over = 0;
    sr_mqtt_sub s;
    size_t rl = strlen(c->root);
    if (!(codes = codes_for(p, small, sizeof small, &cap))) {
        protocol_error(c, SR_MQTT_RC_UNSPECIFIED, "out of memory for the SUBACK");
        return;
    }
    while (n < cap && sr_mqtt_sub_next(p, &pos, &s)) {
        /* (4): only filters inside the own root */
        int own = s.match.len >= rl && !memcmp(s.match.s, c->root, rl) &&
                  (s.match.len == rl || s.match.s[rl] == '/');
        if (!own || s.share_name.len) {
            codes[n++] = c->version == 5 ? SR_MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        if (sub_find(c, &s.match)) {
            /* the same filter again replaces the old subscription (MQTT-3.8.4-3): nothing new is held */
            codes[n++] = 0;
            continue;
        }
        if (c->nsubs >= c->srv->cfg.mqtt_max_subs) {
            /* (5): refused, the others of the packet still get their own code */
            codes[n++] = c->version == 5 ? SR_MQTT_RC_QUOTA_EXCEEDED : 0x80;
            over++;
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
        c->nsubs++;
        codes[n++] = 0; /* granted QoS 0: server-to-gateway messages are QoS 0 in this version */
    }
    if (over)
        sr_slog(SR_LOG_WARN, "mqtt subscriptions over the limit refused", "op=%s gw=%s peer=%s refused=%zu limit=%u",
                c->op, c->gw, c->peer, over, c->srv->cfg.mqtt_max_subs);
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_suback(&b, c->version, p->packet_id, codes, n, NULL) == SR_OK) conn_send(c, &b);
    sr_buf_release(&b);
    if (codes != small) free(codes);
    /* requests that wait for this gateway go out now if it subscribed to them */
    sr_broker_gw_kick(c->srv->broker, c->op, c->gw);
}

static void handle_unsubscribe(conn *c, const sr_mqtt_pkt *p)
{
    uint8_t small[64], *codes;
    size_t n = 0, pos = 0, cap;
    sr_mqtt_sub s;
    if (!(codes = codes_for(p, small, sizeof small, &cap))) {
        protocol_error(c, SR_MQTT_RC_UNSPECIFIED, "out of memory for the UNSUBACK");
        return;
    }
    while (n < cap && sr_mqtt_sub_next(p, &pos, &s)) {
        uint8_t code = 0x11;
        sub **x = sub_find(c, &s.match); /* filters are unique (handle_subscribe) */
        if (x) {
            sub *d = *x;
            *x = d->next;
            free(d->filter);
            free(d);
            c->nsubs--;
            code = 0;
        }
        codes[n++] = code;
    }
    sr_buf b;
    sr_buf_init(&b);
    if (sr_mqtt_encode_unsuback(&b, c->version, p->packet_id, codes, n, NULL) == SR_OK) conn_send(c, &b);
    sr_buf_release(&b);
    if (codes != small) free(codes);
}

/* The packets read so far, in order. The bytes of the packets handled are
 * moved out of rbuf once, when this returns, not after each packet: a read
 * holds a window of messages (16 snapshots of 8 KB), and moving the rest
 * after each one copied ~26,000 instructions a message (issue #13). A
 * packet left for later (SR_MQTT_MORE, held, being checked) is then at the
 * front of rbuf, where the next call decodes it. Not re-entered: nothing
 * it calls processes a connection's input synchronously (c->processing
 * makes a nested call a no-op, so no byte could be handled twice). */
static void process(conn *c)
{
    if (c->processing) return;
    c->processing = 1;
    size_t off = 0; /* handled, moved out at the end */
    while (c->state != ST_CLOSING && c->state != ST_AUTH && !c->blocked && !c->checking && !c->out_paused &&
           c->rbuf.len > off) {
        if (c->out_over) {
            conn_close(c, "output queue over the limit (the peer does not read)", 1);
            goto out;
        }
        sr_mqtt_pkt p;
        size_t used = 0;
        /* a CONNECT comes from a peer not logged in: it may be at most
         * max_unauth_bytes, refused (0x95) from its declared length */
        uint32_t lim = c->srv->cfg.mqtt_max_packet;
        if (c->state == ST_AWAIT_CONNECT && c->srv->cfg.mqtt_max_unauth < lim) lim = c->srv->cfg.mqtt_max_unauth;
        int rc = sr_mqtt_decode(c->rbuf.data + off, c->rbuf.len - off, c->state == ST_AWAIT_CONNECT ? 0 : c->version,
                                lim, &p, &used);
        if (rc == SR_MQTT_MORE) goto out;
        if (rc) {
            if (c->state == ST_AWAIT_CONNECT && p.version == 5) {
                c->version = 5;
                connack(c, p.err_reason);
            } else if (c->state == ST_AWAIT_CONNECT && p.err_reason == SR_MQTT_RC_UNSUPPORTED_VERSION) {
                c->version = 4;
                connack(c, p.err_reason);
            }
            protocol_error(c, p.err_reason ? p.err_reason : SR_MQTT_RC_MALFORMED, p.err_msg ? p.err_msg : "malformed");
            goto out;
        }
        c->last_rx = now_ms();
        sr_alive_seen(c->ae); /* last seen: one relaxed store (api/alive.h invariant 2) */
        const char *why = c->state == ST_ACTIVE ? sr_login_recheck(c->srv->eng, 'g', c->op, c->gw, &c->seen) : NULL;
        if (why) { /* REVOCATION: nothing more of a revoked gateway is taken */
            conn_revoke(c, why);
            goto out;
        }
        if (c->state == ST_AWAIT_CONNECT) {
            if (p.type != SR_MQTT_CONNECT) {
                protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
                goto out;
            }
            handle_connect(c, &p);
        } else {
            switch (p.type) {
            case SR_MQTT_CONNECT: protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); goto out;
            case SR_MQTT_PUBLISH:
                handle_publish(c, &p);
                if (c->checking) goto out; /* (7): the packet stays; handled again once checked */
                break;
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
                goto out;
            case SR_MQTT_PUBACK: break; /* server-to-gateway messages are QoS 0 today */
            default: protocol_error(c, SR_MQTT_RC_PROTOCOL_ERROR, "unexpected packet type"); goto out;
            }
        }
        off += used;
    }
    if (c->out_over && c->state != ST_CLOSING) conn_close(c, "output queue over the limit (the peer does not read)", 1);
out:
    if (off) {
        memmove(c->rbuf.data, c->rbuf.data + off, c->rbuf.len - off);
        c->rbuf.len -= off;
    }
    c->processing = 0;
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
            sr_metrics_tls_failed(SR_MTLS_MQTTS);
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
    /* (6) before the login check passed, a connection holds at most
     * max_unauth_bytes (its CONNECT is refused above that, from the declared
     * length, in process) */
    if (c->rbuf.len > (size_t)c->srv->cfg.mqtt_max_unauth && c->state == ST_AUTH) {
        conn_close(c, "too much data before the login check ([mqtt] max_unauth_bytes)", 0);
        return;
    }
    process(c);
    SR_INVARIANT(conn_check(c));
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
        c->addr.family = ss.ss_family;
        if (ss.ss_family == AF_INET6) {
            memcpy(c->addr.a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            memcpy(c->addr.a, &((struct sockaddr_in *)&ss)->sin_addr, 4);
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
    sr_metrics_conn(c->ssl ? SR_MCONN_MQTTS : SR_MCONN_MQTT, +1); /* -1 in conn_close, which unlinks it */
    c->last_rx = c->connected_at = now_ms();
    if (s->stopping || s->nconns > s->cfg.max_connections) {
        conn_close(c, "connection limit", 0);
        return;
    }
    /* (6): connections of this address that have not logged in yet */
    size_t pre = 0;
    for (conn *o = s->conns; o; o = o->next)
        if (o->state < ST_ACTIVE && o->addr.family == c->addr.family && !memcmp(o->addr.a, c->addr.a, 16)) pre++;
    if (pre > s->cfg.max_conns_per_addr) {
        s->refused++;
        if (now_ms() - s->refused_log_ms >= 1000) {
            sr_slog(SR_LOG_WARN, "mqtt connection refused: too many not logged in from this address",
                    "peer=%s limit=%u refused_since_last_line=%zu", c->peer, s->cfg.max_conns_per_addr, s->refused);
            s->refused_log_ms = now_ms();
            s->refused = 0;
        }
        conn_close(c, "per-address limit", 0);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
    SR_INVARIANT(conn_check(c));
}

/* once a second: handshake timeouts, keep-alive expiry, output over the limit or stalled (5) */
/* ---- the [backup] schedule ------------------------------------------------ */

static int64_t wall_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* the next run after now: every interval_s, else daily at at_minute UTC */
static int64_t backup_next_after(const sr_config *c, int64_t now)
{
    if (c->backup_interval_s) return now + (int64_t)c->backup_interval_s * 1000;
    const int64_t day = 86400000;
    int64_t at = now - now % day + (int64_t)c->backup_at_minute * 60000;
    return at > now ? at : at + day;
}

static void backup_run(sr_work *w)
{
    struct backup_job *j = SR_CONTAINER(w, struct backup_job, w);
    const sr_config *c = &j->s->cfg;
    char kp[1100];
    snprintf(kp, sizeof kp, "%s/platform-key.pem", c->data_dir);
    sr_backup_opts bo = {.platform_key = kp, .actor = "system", .source = "schedule"};
    j->removed = 0;
    j->rc = sr_engine_backup(j->s->eng, c->backup_dir, &bo, &j->info, &j->ei);
    sr_errinfo pe;
    if (!j->rc && sr_backup_prune(c->backup_dir, kp, c->backup_keep, &j->removed, &pe))
        sr_slog(SR_LOG_WARN, "backup prune failed", "dir=%s detail=%s", sr_slog_q(c->backup_dir), sr_slog_q(pe.msg));
}

static void backup_done(sr_work *w, int status)
{
    struct backup_job *j = SR_CONTAINER(w, struct backup_job, w);
    sr_server *s = j->s;
    s->backup_running = 0;
    if (status) sr_slog(SR_LOG_WARN, "backup not run", "error=%s", sr_err_name(status));
    else if (j->rc)
        sr_slog(SR_LOG_ERROR, "backup failed", "dir=%s error=%s detail=%s", sr_slog_q(s->cfg.backup_dir),
                sr_err_name(j->rc), sr_slog_q(j->ei.msg));
    else
        sr_slog(SR_LOG_INFO, "backup done", "dir=%s name=%s seq=%" PRIu64 " bytes=%" PRIu64 " copied=%u linked=%u pruned=%u",
                sr_slog_q(s->cfg.backup_dir), j->info.name, j->info.seq, j->info.bytes, j->info.files_copied,
                j->info.files_linked, j->removed);
}

static void backup_tick(sr_server *s)
{
    if (!s->backup_next || s->backup_running || s->stopping || sr_engine_write_state(s->eng, NULL) != SR_OK) return;
    int64_t now = wall_now_ms();
    if (now < s->backup_next) return;
    s->backup_next = backup_next_after(&s->cfg, now);
    struct backup_job *j = &s->backup_job;
    memset(j, 0, sizeof *j);
    j->s = s;
    j->w.work = backup_run;
    j->w.done = backup_done;
    if (sr_workq_submit(s->workq, "", 0, 1, &j->w) == SR_OK) s->backup_running = 1;
}

static void retention_run(sr_work *w)
{
    struct retention_job *j = SR_CONTAINER(w, struct retention_job, w);
    sr_retention_cfg rc;
    sr_config_retention(&j->s->cfg, &rc);
    j->rc = sr_engine_retention_sweep(j->s->eng, &rc, NULL, &j->rep, &j->ei);
    if (!j->rc) j->krc = sr_cluster_skey_sweep(sr_cluster_self(), &rc, &j->krep, j->kerr, sizeof j->kerr);
}

static void retention_done(sr_work *w, int status)
{
    struct retention_job *j = SR_CONTAINER(w, struct retention_job, w);
    j->s->retention_running = 0;
    if (status) sr_slog(SR_LOG_WARN, "retention sweep not run", "error=%s", sr_err_name(status));
    else if (j->rc)
        sr_slog(SR_LOG_WARN, "retention sweep failed", "error=%s detail=%s", sr_err_name(j->rc), sr_slog_q(j->ei.msg));
    else if (j->rep.events > 1 || j->rep.keys_destroyed || j->rep.segments_dropped || j->rep.restated)
        sr_slog(SR_LOG_INFO, "retention sweep",
                "events=%" PRIu64 " chunks=%" PRIu64 " audit=%" PRIu64 " audit_state=%" PRIu64 " restated=%" PRIu64
                " msgids=%" PRIu64 " keys_destroyed=%" PRIu64
                " keys_held=%" PRIu64 " documents=%" PRIu64 " files=%" PRIu64 " requests=%" PRIu64 " monitors=%" PRIu64
                " blobs=%" PRIu64 " segments_dropped=%" PRIu64 " records_dropped=%" PRIu64 " carried=%" PRIu64
                " segment_held=%s",
                j->rep.events, j->rep.chunks, j->rep.audit, j->rep.audit_state, j->rep.restated, j->rep.msgids,
                j->rep.keys_destroyed, j->rep.keys_held,
                j->rep.documents, j->rep.files, j->rep.requests, j->rep.monitors, j->rep.blobs,
                j->rep.segments_dropped, j->rep.records_dropped, j->rep.carried, sr_slog_q(j->rep.seg_held));
    if (!status && j->krc)
        sr_slog(SR_LOG_WARN, "retention sweep: stream keys", "error=%s detail=%s", sr_err_name(j->krc), sr_slog_q(j->kerr));
    if (!status && (j->krep.erased || j->krep.found || j->krep.failed))
        sr_slog(SR_LOG_INFO, "retention sweep: stream keys", "keys=%" PRIu64 " erased=%" PRIu64 " found=%" PRIu64
                " failed=%" PRIu64, j->krep.keys, j->krep.erased, j->krep.found, j->krep.failed);
}

/* [retention] sweep_interval_s: a sweep on the worker queue (it waits for
 * its events, so never on the loop) */
static void retention_tick(sr_server *s)
{
    if (!s->retention_next || s->retention_running || s->stopping || sr_engine_write_state(s->eng, NULL) != SR_OK)
        return;
    int64_t now = wall_now_ms();
    if (now < s->retention_next) return;
    s->retention_next = now + (int64_t)s->cfg.retention_sweep_interval_s * 1000;
    struct retention_job *j = &s->retention_job;
    memset(j, 0, sizeof *j);
    j->s = s;
    j->w.work = retention_run;
    j->w.done = retention_done;
    if (sr_workq_submit(s->workq, "", 0, 1, &j->w) == SR_OK) s->retention_running = 1;
}

/* WATCHDOG=1 to the service manager at the interval it asked for (the
 * once-a-second tick: the loop turns); stops with the tick at a stop */
static void server_watchdog(sr_server *s)
{
    if (!s->watchdog_us) return;
    uint64_t now = mono_us();
    if (now - s->watchdog_last_us < s->watchdog_us) return; /* (at most a tick late: WatchdogSec= > 2 s) */
    if (sr_sdnotify("WATCHDOG=1") < 0)
        sr_slog(SR_LOG_WARN, "service manager unreachable", "state=WATCHDOG errno=%d", errno);
    s->watchdog_last_us = now;
}

static void on_access_tick(uv_timer_t *t)
{
    sr_server *s = t->data;
    sr_access_tick(s->access, (int64_t)(uv_now(&s->loop)));
}

static void on_tick(uv_timer_t *t)
{
    sr_server *s = t->data;
    server_watchdog(s);
    backup_tick(s);
    retention_tick(s);
    if (!s->stopping) sr_alarms_tick(s->alarms);
    if (!s->stopping) sr_ckpt_tick(s->ckpt);
    sr_alive_tick(s->alive);
    uint64_t now = now_ms();
    for (conn *c = s->conns; c;) {
        conn *n = c->next;
        if (c->state == ST_AWAIT_CONNECT && now - c->connected_at > s->cfg.connect_timeout_ms)
            conn_close(c, "no CONNECT in time", 0);
        else if (c->state == ST_ACTIVE && c->keepalive && now - c->last_rx > (uint64_t)c->keepalive * 1500) {
            c->alive_reason = SR_AR_KEEPALIVE_EXPIRED; /* MQTT 3.1.1 section 3.1.2.10: 1.5 x the keep-alive */
            conn_close(c, "keep-alive expired", 1);
        }
        else if (c->out_over)
            conn_close(c, "output queue over the limit (the peer does not read)", 1);
        else if (c->out_paused && now - c->out_paused_at > s->cfg.mqtt_output_stall_ms) {
            sr_slog(SR_LOG_WARN, "mqtt output stalled", "op=%s gw=%s peer=%s bytes=%zu ms=%" PRIu64, c->op, c->gw,
                    c->peer, c->out_bytes, now - c->out_paused_at);
            conn_close(c, "output stalled (the peer does not read)", 1);
        }
        SR_INVARIANT(conn_check(c));
        c = n;
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    sr_server *s = h->data;
    sr_slog(SR_LOG_INFO, "stopping", "signal=%d connections=%zu", sig, s->nconns);
    s->stopping = 1;
    if (sr_sdnotify("STOPPING=1\nSTATUS=stopping") < 0)
        sr_slog(SR_LOG_WARN, "service manager unreachable", "state=STOPPING errno=%d", errno);
    sr_server_ready_hook(s, 0); /* /ready: 503 from here on ([metrics] listen stays open while draining) */
    if (s->cfg.mqtt_listen[0]) uv_close((uv_handle_t *)&s->mqtt, NULL);
    if (s->cfg.tls_listen[0]) uv_close((uv_handle_t *)&s->mqtts, NULL);
    sr_gwhttp_stop_accepting(s->http);
    uv_timer_stop(&s->tick);
    for (conn *c = s->conns; c;) {
        conn *n = c->next;
        if (c->inflight == 0 && !c->blocked) conn_close(c, "server stopping", 0);
        else conn_pause(c); /* finish what is in flight, then close (on_done) */
        SR_INVARIANT(conn_check(c));
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
    const sr_config *c = &s->cfg;
    sr_engine_opts o = {.queue_max = c->queue_max,
                        .queue_max_per_op = c->queue_max_per_op, /* 0: the engine's quarter of queue_max */
                        .group_max = c->group_max,
                        .head_max = c->head_max,
                        .cluster_node = c->cluster_nats[0] ? c->cluster_node : NULL, /* point aliases (origins.c) */
                        .replay_max_events = c->replay_max_events,
                        .snapshot_events = c->snapshot_events,
                        .snapshot_values = c->snapshot_values,
                        .snapshot_ms = c->snapshot_s * 1000,
                        .snapshot_keep = c->snapshot_keep,
                        .checkpoint_interval_ms = c->checkpoint_interval_s ? (int32_t)c->checkpoint_interval_s * 1000 : -1,
                        .segment_bytes = c->segment_bytes,
                        .zstd_level = c->zstd_level ? (int)c->zstd_level : -100 /* -100: off */};
    o.alert = engine_alert;
    o.readonly_on_nospace = 1; /* a full disk at start: serve reads (§7) */
    /* test hook: how often a poisoned engine tries to resume (default 1 s) */
    const char *rms = getenv("SUIRO_TEST_RECOVER_MS");
    if (rms) o.recover_ms = (uint32_t)atoi(rms);
    /* test hook: a slow writer, to show back-pressure (tests/integration/test_gw_backpressure.py) */
    const char *slow = getenv("SUIRO_TEST_WRITER_DELAY_MS");
    if (slow) o.test_group_delay_ms = (uint32_t)atoi(slow);
    /* test hook: a slow fdatasync, for the alarm rule fsync-latency (tests/integration/test_alarms_more.py) */
    /* test hook: a slow signature verification of gateway messages and apps' control requests
     * (api/sigcheck.h sr_sig_check_now; tests/integration/test_sig_offloop.py) */
    const char *slow_sig = getenv("SUIRO_TEST_SIG_DELAY_MS");
    sr_sig_test_delay(slow_sig ? (uint32_t)atoi(slow_sig) : 0);
    const char *slow_sync = getenv("SUIRO_TEST_FSYNC_DELAY_MS");
    if (slow_sync) {
        test_sync_delay_ms = (uint32_t)atoi(slow_sync);
        test_slow_vfs = sr_vfs_posix;
        test_slow_vfs.sync = test_slow_sync;
        o.vfs = &test_slow_vfs;
    }
    /* test hook: the engine's clock moved on by a file's offset (tests/integration/test_proof_trim.py) */
    const char *tclock = getenv("SUIRO_TEST_CLOCK_FILE");
    if (tclock && tclock[0] && strlen(tclock) < sizeof test_clock_path) {
        long long off;
        snprintf(test_clock_path, sizeof test_clock_path, "%s", tclock);
        if (!test_clock_offset(&off)) {
            o.clock_ms = test_clock;
            test_clock_on = 1;
            fprintf(stderr, "suiro: TEST CLOCK ON (SUIRO_TEST_CLOCK_FILE=%s, offset %lld ms now): ingest times are not "
                            "the wall clock's; never in production\n",
                    tclock, off);
        } else
            fprintf(stderr, "suiro: SUIRO_TEST_CLOCK_FILE=%s ignored: not a file starting with " TEST_CLOCK_MAGIC "\n",
                    tclock);
    }
    o.sync = !strcmp(s->cfg.sync, "none")       ? SR_ENGINE_SYNC_NONE
             : !strcmp(s->cfg.sync, "interval") ? SR_ENGINE_SYNC_INTERVAL
                                                : SR_ENGINE_SYNC_ALWAYS;
    uint64_t t0 = mono_us();
    if (s->cfg.key_file[0]) {
        if (sr_key_load(s->cfg.key_file, &s->key, err, errlen)) return SR_EKEY;
        o.key = &s->key;
        o.key_source = s->cfg.key_file; /* names the source in errors, never the key */
        if (s->cfg.key_master_next[0]) { /* [keys] master_next: POST /admin/v1/keys/master re-wraps under it */
            char e2[256];
            if (sr_key_load(s->cfg.key_master_next, &s->key_next, e2, sizeof e2)) {
                snprintf(err, errlen, "[keys] master_next: %s", e2);
                return SR_EKEY;
            }
            o.key_next = &s->key_next;
        }
        o.key_rotate_days = s->cfg.key_rotate_days;
    }
    uint64_t t1 = mono_us();
    s->start_us[0] = t1 - t0;
    sr_errinfo ei;
    int rc = sr_engine_open(s->cfg.data_dir, &o, &s->eng, &ei);
    if (rc) snprintf(err, errlen, "engine: %s", ei.msg);
    s->start_us[1] = mono_us() - t1;
    if (!rc) { /* records the replay could not read: their key was destroyed (docs/keys.md) */
        sr_engine_open_stats st;
        sr_engine_get_open_stats(s->eng, &st);
        for (uint32_t i = 0; i < st.n_erased; i++)
            sr_slog(SR_LOG_WARN, "erased records at open (their key was destroyed, docs/keys.md)",
                    "records=%" PRIu64 " first_seq=%" PRIu64 " last_seq=%" PRIu64 " key_id=0x%08x operator=%s class=%s "
                    "epoch=%u destroyed_ms=%" PRId64,
                    st.erased[i].records, st.erased[i].first_seq, st.erased[i].last_seq, st.erased[i].key_id,
                    st.erased[i].operator_id, st.erased[i].key_class, st.erased[i].epoch, st.erased[i].destroyed_ms);
    }
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

/* [metrics] (api/metrics.h): the token of token_file, the listener of its
 * own, what a scrape reads. Refused with a message naming the key. */
static int metrics_setup(sr_server *s, char *err, size_t errlen)
{
    const sr_config *cfg = &s->cfg;
    char token[256] = "";
    if (cfg->metrics_token_file[0]) {
        FILE *f = fopen(cfg->metrics_token_file, "r");
        if (!f) {
            snprintf(err, errlen, "[metrics] token_file %s: cannot be read", cfg->metrics_token_file);
            return SR_EINVAL;
        }
        if (!fgets(token, sizeof token, f)) token[0] = 0;
        fclose(f);
        size_t n = strcspn(token, "\r\n");
        token[n] = 0;
        int bad = n < 16;
        for (size_t i = 0; i < n && !bad; i++) bad = token[i] <= ' ' || token[i] == 0x7f;
        if (bad) {
            OPENSSL_cleanse(token, sizeof token);
            snprintf(err, errlen,
                     "[metrics] token_file %s: its first line must be a token of 16 to 255 printable characters, "
                     "no spaces",
                     cfg->metrics_token_file);
            return SR_EINVAL;
        }
    }
    int loopback = 0;
    if (cfg->http_listen[0]) {
        char host[128];
        int port;
        if (!sr_config_hostport(cfg->http_listen, host, sizeof host, &port))
            loopback = !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
    }
    sr_metrics_src src = {s->eng, s->push, s->broker, s->http, s->cfg.data_dir};
    sr_metrics_set_source(&src, token, loopback);
    OPENSSL_cleanse(token, sizeof token);
    if (cfg->metrics_listen[0]) {
        char host[128];
        int port;
        if (sr_config_hostport(cfg->metrics_listen, host, sizeof host, &port)) {
            snprintf(err, errlen, "[metrics] listen: '%s' is not host:port", cfg->metrics_listen);
            return SR_EINVAL;
        }
        int rc = sr_mlistener_open(&s->loop, host, port, &s->mlis, err, errlen);
        if (rc) return rc;
    }
    return SR_OK;
}

static void server_ready(sr_server *s);

/* Readiness, in one place: /ready (metrics.c) and the service manager's
 * READY=1 (sdnotify.c, server_ready). Not ready again at a stop signal
 * (on_signal also sends STOPPING=1) and at close. */
void sr_server_ready_hook(sr_server *s, int ready)
{
    sr_metrics_set_ready(ready);
    if (ready) server_ready(s);
}

int sr_server_metrics_port(sr_server *s) { return sr_mlistener_port(s->mlis); }

int sr_server_open(const sr_config *cfg, sr_server **out, char *err, size_t errlen)
{
    /* a peer that went away must not kill the server: writes get EPIPE */
    signal(SIGPIPE, SIG_IGN);
    /* libuv's thread pool (started by the first job) runs the worker queue's
     * jobs: room for work_running_max of them and two logins (unless the
     * environment sizes it) */
    if (!getenv("UV_THREADPOOL_SIZE")) {
        char n[16];
        snprintf(n, sizeof n, "%u", cfg->work_running_max + 2 > 1024 ? 1024 : cfg->work_running_max + 2);
        setenv("UV_THREADPOOL_SIZE", n, 0);
    }
    sr_server *s = calloc(1, sizeof *s);
    if (!s) return SR_ENOMEM;
    s->cfg = *cfg;
    int lvl = sr_slog_level_parse(cfg->log_level); /* a value of the table (api/config.h): one of the four */
    sr_slog_set_level(lvl < 0 ? SR_LOG_INFO : lvl);
    uv_loop_init(&s->loop);
    int rc = engine_open(s, err, errlen);
    if (rc) goto fail;
    if (cfg->cluster_nats[0]) { /* docs/cluster.md: the data writes' answers wait for JetStream */
        char adv[160]; /* phase 2b: where peers forward to (checked by sr_config_check already) */
        if (sr_fwd_advertise_url(cfg->cluster_advertise, cfg->http_listen, adv, sizeof adv, err, errlen)) {
            rc = SR_EINVAL;
            goto fail;
        }
        sr_cluster_opts co = {cfg->cluster_nats,       cfg->cluster_node,       cfg->cluster_name,
                              cfg->data_dir,           cfg->cluster_partitions, cfg->cluster_replicas,
                              cfg->cluster_dedup_window_s, cfg->cluster_ack_timeout_ms, cfg->cluster_max_pending,
                              cfg->cluster_lease_ms,   cfg->http_listen, cfg->cluster_owned,
                              adv};
        co.master = cfg->key_file[0] ? &s->key : NULL; /* stream keys (api/cluster_seal.h) */
        co.rotate_days = cfg->key_rotate_days;
        if ((rc = sr_cluster_open(s->eng, &co, &s->cluster, err, errlen))) goto fail;
    }
    /* read-your-writes (api/ryw.h): reads may wait for a write's Suiro-Seq; woken by the
     * engine's append hook (the cluster's publisher passes it on, api/cluster.c) */
    if ((rc = sr_ryw_start(&s->loop, s->eng, cfg->cluster_nats[0] ? cfg->cluster_node : NULL))) goto fail;
    if (!cfg->cluster_nats[0]) sr_engine_on_appended(s->eng, sr_ryw_engine_hook, NULL);
    uint64_t t0 = mono_us();
    sr_alg sig_alg = SR_ALG_ES256; /* a first start of an older data directory: [crypto] signature's key */
    if (sr_alg_by_name(cfg->crypto_signature, SR_ALG_KIND_SIG, &sig_alg, err, errlen) ||
        (rc = sr_pki_ensure_platform(cfg->data_dir, sig_alg, err, errlen))) {
        if (!rc) rc = SR_EINVAL;
        goto fail;
    }
    if ((rc = sr_broker_open(&s->loop, s->eng, cfg->data_dir, &s->broker, err, errlen))) goto fail;
    if (cfg->cluster_nats[0]) { /* docs/cluster.md "Request flows across nodes" */
        sr_cluster_opts co = {.nats = cfg->cluster_nats, .node = cfg->cluster_node, .name = cfg->cluster_name,
                              .replicas = cfg->cluster_replicas};
        sr_creq_hooks h;
        sr_broker_relay_hooks(s->broker, &h);
        if ((rc = sr_creq_start(&s->loop, &co, &h, &s->creq, err, errlen))) goto fail;
        sr_broker_set_relay(s->broker, s->creq);
    }
    if ((rc = sr_ckpt_open(s->eng, cfg->data_dir, cfg->checkpoint_sign_interval_s, &s->ckpt, err, errlen))) goto fail;
    uint64_t t1 = mono_us();
    s->start_us[2] = t1 - t0;
    /* R-MO-1 (api/alive.h): before the listeners, those the index says are
     * online are not (the log says so: server-restart); before the push and
     * notify recoveries, so that their marks start past these events (a
     * start with nothing new after it then writes no mark) */
    if (!(s->alive = sr_alive_new(s->eng, cfg->alive_http_silence_s))) {
        rc = SR_ENOMEM;
        goto fail;
    }
    rc = sr_alive_restart(s->alive);
    if (rc < 0) sr_slog(SR_LOG_WARN, "alive status not read", "error=%s", sr_err_name(rc));
    else if (rc) sr_slog(SR_LOG_INFO, "alive status", "offline_at_restart=%d", rc);
    rc = SR_OK;
    /* push to apps (R-AP-17): after the broker, which made the platform key */
    sr_push_opts po;
    sr_push_opts_default(&po);
    po.max_queue = cfg->push_max_queue;
    po.max_backoff_ms = cfg->push_max_backoff_ms;
    if ((rc = sr_push_open(&s->loop, s->eng, cfg->data_dir, &po, &s->push, err, errlen))) goto fail;
    sr_broker_set_push(s->broker, s->push);
    /* cluster mode (phase 2b): requests for another node's partition go to its owner (api/cluster_fwd.h) */
    sr_fwd_opts fo = {cfg->cluster_forward_timeout_ms, cfg->cluster_forward_wait_ms};
    if ((rc = sr_fwd_open(&s->loop, &fo, err, errlen))) goto fail;
    /* R-AP-17: what was not delivered before the last stop, from the log */
    if ((rc = sr_push_recover(s->push, sr_broker_push_derive, s->broker, NULL))) {
        snprintf(err, errlen, "push: recovery from the log failed: %s", sr_strerror(rc));
        goto fail;
    }
    /* alarm notifications (R-MO-3): the deliveries not done before the last stop, from the log */
    sr_notify_opts no;
    sr_config_notify(&s->cfg, &no);
    if ((rc = sr_notify_open(&s->loop, s->eng, cfg->data_dir, &no, &s->notify, err, errlen))) goto fail;
    if ((rc = sr_notify_recover(s->notify, NULL))) {
        snprintf(err, errlen, "notify: recovery from the log failed: %s", sr_strerror(rc));
        goto fail;
    }
    sr_broker_set_limits(s->broker, cfg->requests_max, cfg->requests_per_op, cfg->monitors_per_op,
                         cfg->stopped_monitors_kept);
    t0 = mono_us();
    s->start_us[3] = t0 - t1;
    sr_loopq_init(&s->doneq, &s->loop, on_done, s);
    sr_loopq_init(&s->regq, &s->loop, on_regchange, s);
    sr_engine_on_registry(s->eng, on_registry, s);
    if ((rc = sr_gw_sigreq_load(s->eng))) { /* the points whose values must be signed (api/gwif_json.h) */
        snprintf(err, errlen, "cannot read the signature requirements: %s", sr_err_name(rc));
        goto fail;
    }
    sr_login_policy lp = {cfg->login_free_failures,      cfg->login_backoff_max_ms,  cfg->login_address_failures,
                          cfg->login_address_refill_ms,  cfg->login_principal_failures,
                          cfg->login_principal_refill_ms, cfg->login_table_max,      cfg->login_workers,
                          cfg->login_queue_max,          cfg->login_queue_per_address};
    if ((rc = sr_loginguard_open(&s->loop, &lp, &s->guard))) {
        snprintf(err, errlen, "login guard: cannot start its threads");
        goto fail;
    }
    /* the throttle as it was before the restart (api/loginguard.h): from the
     * trail's logins of the policy's window; a failure is logged, not fatal */
    uint64_t tr0 = mono_us();
    s->throttle_rows = sr_loginguard_restore(s->guard, s->eng, wall_ms());
    s->start_us[5] = mono_us() - tr0;
    sr_workq_limits wl = {cfg->work_running_max, cfg->work_running_per_op, cfg->work_queue_max,
                          cfg->work_queue_per_op, cfg->work_bytes_per_op};
    if ((rc = sr_workq_new(&s->loop, &wl, &s->workq))) goto fail;
    if ((rc = sr_alarms_open(s->eng, &s->cfg, &s->alarms))) goto fail;
    sr_alarms_watch_logins(s->alarms, s->guard);
    sr_gw_skew_set(cfg->alarms_interval_s ? cfg->alarms_gateway_skew_ms : 0); /* api/gwif_json.h: noted for gateway-skew */
    sr_access_opts ao = {!strcmp(cfg->audit_reads, "on"), cfg->audit_flush_ms, cfg->audit_batch_max,
                         cfg->audit_buffer_max, cfg->audit_refusals_per_batch};
    if (!(s->access = sr_access_new(s->eng, &ao))) {
        rc = SR_ENOMEM;
        goto fail;
    }
    uv_timer_init(&s->loop, &s->atick);
    s->atick.data = s;
    if (ao.reads || ao.refusals_per_batch) uv_timer_start(&s->atick, on_access_tick, ao.flush_ms, ao.flush_ms);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 1000, 1000);
    if (cfg->backup_dir[0]) s->backup_next = backup_next_after(cfg, wall_now_ms());
    if (cfg->retention_sweep_interval_s)
        s->retention_next = wall_now_ms() + (int64_t)cfg->retention_sweep_interval_s * 1000;
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
        sr_http_limits hl = {cfg->http_max_body,     cfg->http_max_unauth_body,   cfg->http_body_budget,
                             cfg->http_max_conns,    cfg->http_max_conns_per_addr, cfg->http_request_timeout_ms,
                             cfg->http_send_timeout_ms};
        if ((rc = sr_gwhttp_open(&s->loop, s->eng, s->broker, host, port, &htls, &hl, s->guard, &s->http, err, errlen))) goto fail;
        if (s->cluster && !cfg->cluster_advertise[0] && port == 0) { /* a port chosen at bind: advertise that one */
            char url[200];
            snprintf(url, sizeof url, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d", host,
                     sr_gwhttp_port(s->http));
            sr_cluster_set_advertise(s->cluster, url);
        }
        sr_apif_limits al = {cfg->http_answer_max_bytes, cfg->http_doc_scan_max, cfg->http_uploads_max,
                             cfg->http_uploads_per_op, cfg->http_uploads_per_app, cfg->http_upload_idle_ms,
                             cfg->parse_inline_max};
        sr_gwhttp_set_limits(s->http, s->workq, &al, cfg->parse_inline_max);
        sr_admin_conf ac;
        sr_admin_conf_default(&ac);
        sr_config_password_policy(cfg, &ac.pol);
        ac.session_ttl_s = cfg->session_ttl_s;
        ac.pending_ttl_s = cfg->pending_ttl_s;
        ac.key = cfg->key_file[0] ? &s->key : NULL;
        ac.data_dir = cfg->data_dir;
        ac.backup_dir = cfg->backup_dir;
        ac.backup_keep = cfg->backup_keep;
        sr_config_retention(cfg, &ac.retention);
        sr_config_notify(&s->cfg, &ac.notify);
        ac.alive = s->alive;
        ac.clock_ms = test_clock_on ? test_clock : NULL;
        sr_gwhttp_set_admin(s->http, &ac);
        sr_gwhttp_set_alive(s->http, s->alive);
        sr_gwhttp_set_access(s->http, s->access);
    }
    if (cfg->tls_listen[0]) {
        if ((rc = tls_setup(s, err, errlen))) goto fail;
        if ((rc = listen_on(s, &s->mqtts, cfg->tls_listen, "tls_listen", &s->mqtts_port, err, errlen))) goto fail;
    }
    if ((rc = metrics_setup(s, err, errlen))) goto fail;
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
sr_engine *sr_server_engine(sr_server *s) { return s->eng; }

static void on_stop_check(uv_async_t *a) { (void)a; }

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    /* our MQTT connections have data == NULL (they are all closed by now);
     * h2o's sockets carry their binding in data and are closed by h2o */
    if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP && h->data == NULL ? on_closed : NULL);
}

/* The server is ready: recovery is done (the engine replayed the log, push
 * recovered its queues) and every configured listener is bound and listening
 * (sr_server_open), so a client that connects now is served. The one place
 * readiness becomes true: the service manager hears READY=1 (Type=notify,
 * scripts/packaging/suiro.service.in) and starts its watchdog. */
static void server_ready(sr_server *s)
{
    if (sr_sdnotify("READY=1\nSTATUS=serving") < 0)
        sr_slog(SR_LOG_WARN, "service manager unreachable", "state=READY errno=%d", errno);
    s->watchdog_us = sr_sdnotify_watchdog_usec();
    s->watchdog_last_us = mono_us();
}

int sr_server_run(sr_server *s)
{
    sr_engine_open_stats os;
    sr_engine_get_open_stats(s->eng, &os);
    /* where the startup went (ms): docs/performance-notes.md, "Restart" */
    sr_slog(SR_LOG_INFO, "serving",
            "data=%s mqtt_port=%d key_ms=%.1f engine_ms=%.1f log_ms=%.1f index_ms=%.1f heads_ms=%.1f replay_ms=%.1f "
            "replay_events=%" PRIu64 " replay_head_events=%" PRIu64 " replay_skipped=%" PRIu64
            " pki_ms=%.1f push_ms=%.1f listen_ms=%.1f throttle_ms=%.1f throttle_rows=%d",
            sr_slog_q(s->cfg.data_dir), s->mqtt_port, s->start_us[0] / 1e3, s->start_us[1] / 1e3, os.log_us / 1e3,
            os.index_us / 1e3, os.heads_us / 1e3, os.replay_us / 1e3, os.replay_events, os.replay_head_events,
            os.replay_skipped, s->start_us[2] / 1e3, s->start_us[3] / 1e3, s->start_us[4] / 1e3, s->start_us[5] / 1e3,
            s->throttle_rows);
    /* READINESS: recovery is done (sr_server_open opened the engine, the
     * push queues and the login throttle from the log) and every listener
     * is bound and listening; the loop below accepts from here on. /ready
     * answers 200 from now until a stop signal (on_signal). */
    sr_server_ready_hook(s, 1);
    sr_thread_mark_loop(); /* api/workq.h: what must not run here counts where it ran */
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
    /* a scrape from now on (the [metrics] listener answers while the loop
     * runs below) reads nothing of this server: the engine, the push
     * queues and the broker go */
    sr_server_ready_hook(s, 0);
    sr_metrics_set_source(NULL, NULL, 0);
    /* reads waiting for a Suiro-Wait token: 503 (api/ryw.h) */
    if (!s->cluster && s->eng) sr_engine_on_appended(s->eng, NULL, NULL);
    sr_ryw_stop();
    /* answers still waiting for NATS: not acknowledged (the clients retry),
     * before the connections they answer on go */
    sr_cluster_close(s->cluster); /* freed after the engine (its last callbacks) */
    /* logins still waiting or being checked end first (their completions
     * answer through the bindings and may write auth events) */
    sr_loginguard_stop(s->guard);
    /* push first: it reads the registry and submits alarms, so it must stop
     * before the engine closes; what is still queued is dropped (logged) */
    sr_broker_set_push(s->broker, NULL);
    /* HTTP gateways and apps still online go offline first, durably, so that
     * the marks written below pass their events (api/alive.h) */
    (void)sr_alive_stop(s->alive);
    sr_push_dispose(s->push);
    sr_fwd_close(); /* the forwarded requests in flight are dropped (their connections close) */
    sr_notify_dispose(s->notify); /* the same: it reads the registry and writes marks */
    /* nothing new reaches the engine; it drains its queue (completions
     * arrive through the asyncs) */
    sr_gwhttp_quiesce(s->http);
    sr_broker_quiesce(s->broker);
    /* nothing more is relayed; this node's gateways leave the presence bucket */
    sr_broker_set_relay(s->broker, NULL);
    sr_creq_stop(s->creq);
    /* queries and file parts on the thread pool read the engine: let them end */
    while (sr_gwhttp_busy(s->http) || sr_workq_pending(s->workq, NULL)) uv_run(&s->loop, UV_RUN_ONCE);
    /* the reads answered so far go into the trail, durably (api/access.h) */
    if (s->eng) sr_access_stop(s->access);
    if (s->access) uv_timer_stop(&s->atick);
    /* the last signed checkpoint: everything written before the stop (docs/audit.md) */
    if (s->eng) (void)sr_ckpt_stop(s->ckpt);
    sr_ckpt_close(s->ckpt);
    s->ckpt = NULL;
    int rc = sr_engine_close(s->eng);
    s->eng = NULL;
    sr_cluster_free(s->cluster);
    s->cluster = NULL;
    if (rc) sr_slog(SR_LOG_ERROR, "engine closed with an error", "error=%s", sr_err_name(rc));
    sr_loopq_drain(&s->doneq);
    sr_loopq_drain(&s->regq); /* nothing more to end (no engine): each change is freed */
    while (s->bheld) { /* held broker messages of closed connections: dropped (never acknowledged) */
        bjob *j = s->bheld;
        s->bheld = j->next;
        j->c->bheld--;
        j->in_call = NULL;
        sr_gw_answer a = {SR_WIRE_BUSY, "server stopping", NULL, NULL, NULL, SR_ECLOSED};
        on_broker_answer(j, &a);
    }
    sr_broker_flush(s->broker);
    sr_gwhttp_flush(s->http);
    sr_broker_dispose(s->broker);
    sr_gwhttp_dispose(s->http);
    sr_mlistener_dispose(s->mlis);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    if (uv_loop_alive(&s->loop)) {
        uv_walk(&s->loop, close_walk, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    sr_gwhttp_free(s->http);
    sr_mlistener_free(s->mlis);
    sr_broker_free(s->broker);
    sr_creq_free(s->creq);
    sr_push_free(s->push);
    sr_fwd_free();
    sr_notify_free(s->notify);
    sr_alarms_free(s->alarms); /* after the engine: its completions have run */
    sr_workq_free(s->workq);
    sr_alive_free(s->alive);
    sr_access_free(s->access); /* no request ends any more */
    uv_loop_close(&s->loop);
    sr_loginguard_free(s->guard);
    if (s->tls) SSL_CTX_free(s->tls);
    sr_loopq_destroy(&s->doneq);
    sr_loopq_destroy(&s->regq);
    sr_slog(SR_LOG_INFO, "stopped", "%s", "");
    free(s);
}
