/*
 * api/cluster_req.h -- request flows across cluster nodes (issue #19 phase
 * 2b, docs/cluster.md "Request flows across nodes", docs/requests.md
 * "Across cluster nodes"): the app on one node, its gateway on another.
 *
 *  - Presence: each node records the gateways connected to it in the
 *    JetStream KV bucket <name>_GWS (key sr_presence_key(op, gw), value
 *    {"op","gw","node","since_ms","at_ms"}); a node keeps a map of the
 *    whole bucket from a watcher. An entry whose at_ms is older than
 *    SR_PRESENCE_STALE_MS (by the reader's clock) or whose node is "" (a
 *    disconnect) is absent.
 *  - Relay: a part for a gateway present on node N goes over core NATS to
 *    <name>.node.<N>.req; N's broker hands it to its gateway as a local
 *    part, checks and stores the gateway's answer, and sends the checked
 *    result to <name>.node.<origin>.res (sr_relay, a JSON message).
 *
 * Threads: the libnats calls run on this module's thread (its own NATS
 * connection) and libnats's; the loop hands it work through a queue and
 * gets the messages and presence changes back through a loopq. Every
 * function below but the pure ones is called on the loop thread.
 *
 * Invariants:
 *  1. No cnats call on the libuv loop thread: puts, updates, publishes are
 *     queued for the thread; messages and watcher entries reach the loop
 *     through the loopq.
 *  2. A disconnect clears only this node's own entry: it is an update
 *     (compare-and-set) on the revision this node wrote, so a gateway that
 *     moved to another node meanwhile keeps that node's entry.
 *  3. A relay message is used only after sr_relay_parse checked every field
 *     (outside bytes: any NATS client may publish). A DATA message's event
 *     bytes are opaque here: the receiving engine checks them as any
 *     replicated event (sr_engine_submit_origin).
 *  4. No DATA message waits in memory for a node that does not answer: it
 *     is sent once, and one no node heard is counted (outcome "unheard")
 *     and reported to the broker (hooks.heard), which ends the relay of
 *     that monitor after SR_PRESENCE_STALE_MS of silence.
 */
#ifndef SR_CLUSTER_REQ_H
#define SR_CLUSTER_REQ_H

#include "api/cluster.h"
#include "codecs/base/sr_alloc.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

enum {
    SR_PRESENCE_REFRESH_MS = 5000, /* a node puts its gateways' entries again this often */
    SR_PRESENCE_STALE_MS = 20000,  /* an entry not refreshed this long is absent (a dead node) */
    SR_PRESENCE_TTL_MS = 120000,   /* the bucket's own limit (its storage is cleaned) */
};

/* ---- the pure parts (no network) ---- */

/* The KV key of (op, gw): "<op>.<gw>" with '.' and '=' escaped as =2E and
 * =3D (ids may hold dots; the key stays one per pair). Its length, or -1
 * when it does not fit n. */
int sr_presence_key(const char *op, const char *gw, char *out, size_t n);

typedef struct sr_presence {
    char op[72], gw[72], node[32]; /* node "": disconnected */
    int64_t since_ms, at_ms;
} sr_presence;
/* The bucket's bytes are outside input: SR_OK, or SR_EINVAL with err
 * naming the problem (*out zeroed). */
SR_MUST_CHECK int sr_presence_parse(const void *p, size_t n, sr_presence *out, char *err, size_t errlen);
int sr_presence_format(const sr_presence *v, char *buf, size_t n);

/* The presence map: (op, gw) -> the node it is connected to. */
typedef struct sr_pmap sr_pmap;
sr_pmap *sr_pmap_new(void);
void sr_pmap_free(sr_pmap *m);
/* Record v (its node "" removes the pair). 1 when what sr_pmap_get answers
 * for the pair changed (another node, or the same node with another
 * since_ms: the gateway reconnected there), else 0. */
int sr_pmap_put(sr_pmap *m, const sr_presence *v);
/* The node (op, gw) is connected to at now_ms, NULL when none (absent, or
 * stale: at_ms older than SR_PRESENCE_STALE_MS). *since (may be NULL): its
 * since_ms. */
const char *sr_pmap_get(const sr_pmap *m, const char *op, const char *gw, int64_t now_ms, int64_t *since);
size_t sr_pmap_count(const sr_pmap *m);

/* A relay message (core NATS, JSON). REQ and RES carry a request part
 * (IMMEDIATE, CONTROL) or a monitor's START / STOP part (PERIODIC_START,
 * PERIODIC_STOP: monitor set); DATA carries a monitor's values, durable on
 * the gateway's node, to the monitor's node (docs/cluster.md "Monitors
 * across nodes"). ASK carries an app's DELETE /api/v1/monitors/{id} (kind
 * MONITOR_STOP, monitor set; op and app: the caller as the asking node
 * authenticated it; id: the ask's own id; no gw) to the node that runs the
 * monitor, ANS that node's answer back (status and body: what the app gets,
 * as that node answers it; docs/cluster.md "Monitors across nodes", "From
 * any node"). */
enum { SR_RELAY_REQ = 1, SR_RELAY_RES = 2, SR_RELAY_DATA = 3, SR_RELAY_ASK = 4, SR_RELAY_ANS = 5 };
enum { SR_RK_PERIODIC_DATA = 16 }; /* a DATA message's kind (not a request kind) */
enum { SR_RK_MONITOR_STOP = 17 };  /* an ASK's and its ANS's kind (an app's DELETE of a monitor) */
enum { SR_RELAY_EV_MAX = 1 << 20 }; /* a DATA message's event: at most this many bytes */
typedef struct sr_relay {
    int type;                               /* SR_RELAY_REQ, SR_RELAY_RES, SR_RELAY_DATA */
    char from[32];                          /* the sending node */
    char op[72], gw[72], app[72], id[24];   /* operator, gateway, app, request id (at most 23 bytes; DATA: the monitor's) */
    int kind;                               /* SR_RK_IMMEDIATE, _CONTROL, _PERIODIC_START, _PERIODIC_STOP; DATA: SR_RK_PERIODIC_DATA */
    char monitor[24];                       /* the PERIODIC kinds and DATA: the monitor's id ("" otherwise) */
    int64_t deadline_ms;                    /* REQ: the request's deadline (wall ms; a monitor's part: how long N keeps it) */
    json_t *part;                           /* REQ: the request object the gateway gets */
    int state;                              /* RES: SR_RS_SUCCEEDED or SR_RS_FAILED */
    char code[8];                           /* RES: "0" or the wire code */
    char msg[160];                          /* RES: the gateway's message */
    char msgid[72];                         /* RES, DATA: the gateway's messageId ("" none) */
    json_t *values, *applied, *sig;         /* RES: may be NULL; DATA: values (checked on the gateway's node) */
    int64_t seq;                            /* DATA: the event's seq in the sender's log (its origin id from:seq) */
    uint8_t *ev;                            /* DATA: the event as the sender submitted it (opaque bytes, ev_len) */
    size_t ev_len;
    int gw_signed;                          /* DATA: the gateway's message was signed and verified there */
    int status;                             /* ANS: the HTTP status the app gets (200..599) */
    json_t *body;                           /* ANS: the JSON object the app gets */
} sr_relay;
/* Parse outside bytes: SR_OK (free with sr_relay_clear), or SR_EINVAL
 * with err naming the field (nothing to free). */
SR_MUST_CHECK int sr_relay_parse(const void *p, size_t n, sr_relay *out, char *err, size_t errlen);
/* The message's JSON appended to out. */
SR_MUST_CHECK int sr_relay_format(const sr_relay *m, sr_buf *out);
void sr_relay_clear(sr_relay *m);

/* ---- the relay (the thread and the loop side) ---- */
typedef struct sr_creq_hooks {
    void *ctx;
    /* a REQ or RES for this node (m is borrowed for the call) */
    void (*relayed)(void *ctx, const sr_relay *m);
    /* (op, gw)'s node changed to node (NULL: none) */
    void (*moved)(void *ctx, const char *op, const char *gw, const char *node);
    /* 1 while gw is connected to this node (MQTT, or HTTP fetching) */
    int (*online)(void *ctx, const char *op, const char *gw);
    /* a DATA message this node sent was heard (1) by a subscriber of its
     * node's subject, or not (0: no responders, the node is gone, or no
     * answer in time) */
    void (*heard)(void *ctx, const char *op, const char *gw, const char *monitor, int heard);
    /* an ASK this node sent (its id) was heard (1) by its node's
     * subscription, or not (0), as for a DATA message */
    void (*asked)(void *ctx, const char *id, int heard);
} sr_creq_hooks;
typedef struct sr_creq sr_creq;
SR_MUST_CHECK int sr_creq_start(uv_loop_t *loop, const sr_cluster_opts *o, const sr_creq_hooks *h, sr_creq **out,
                                char *err, size_t errlen);
/* Stop the thread (this node's entries are cleared when NATS answers) and
 * close the loop handles. Idempotent; NULL-safe. Free after the loop ran. */
void sr_creq_stop(sr_creq *q);
void sr_creq_free(sr_creq *q);
const char *sr_creq_node(const sr_creq *q);
/* Loop thread: gw is connected here (an MQTT session, an HTTP fetch).
 * fresh: a new session (its entry gets a newer since_ms: the other nodes
 * hand it their open parts again, and it takes the key back from an older
 * session elsewhere). */
void sr_creq_here(sr_creq *q, const char *op, const char *gw, int fresh);
/* Loop thread: the node (not this one) gw is connected to, or NULL. */
const char *sr_creq_where(sr_creq *q, const char *op, const char *gw, int64_t *since);
/* Loop thread: queue m for node (SR_OK, or SR_ENOMEM / SR_ECLOSED); an
 * ASK goes to the node's .req subject, an ANS to its .res. A
 * DATA message is sent as a core NATS request (the receiving node's thread
 * answers at once): whether it was heard comes back through hooks.heard;
 * an ASK too, through hooks.asked. */
SR_MUST_CHECK int sr_creq_send(sr_creq *q, const char *node, const sr_relay *m);

/* suiro_cluster_relayed_total{dir,kind,outcome}: dir 0 out, 1 in; kind
 * (sr_relay_kind_name) and outcome (sr_relay_outcome_name) below. */
enum { SR_RELAY_DIRS = 2, SR_RELAY_KINDS = 5, SR_RELAY_OUTCOMES = 5 };
enum { SR_RO_SENT, SR_RO_USED, SR_RO_IGNORED, SR_RO_REFUSED, SR_RO_UNHEARD };
const char *sr_relay_kind_name(int k);   /* "request" "result" "data" "ask" "answer" */
const char *sr_relay_outcome_name(int o); /* "sent" "used" "ignored" "refused" "unheard" */
void sr_relay_count(int dir, int kind, int outcome);
uint64_t sr_relay_counted(int dir, int kind, int outcome);

#endif
