/*
 * api/broker.h -- requests, monitors and control between apps and gateways
 * (docs/requests.md). Runs on the server's libuv loop: every function here is
 * called from the loop thread, and every callback is called on it.
 *
 * The broker keeps, per gateway, the open parts of requests (not yet
 * answered) and hands them out: pushed at once on MQTT to a gateway that
 * subscribed to R/requests, or returned by a fetch (MQTT R/req/fetch, HTTP
 * long poll). Every step is an event in the log; an app is answered, and a
 * gateway's answer acknowledged, only once the events are durable.
 */
#ifndef SR_BROKER_H
#define SR_BROKER_H

#include "api/gwif_json.h"
#include "engine/records.h"
#include "engine/suiro.h"

#include <jansson.h>
#include <uv.h>

typedef struct sr_broker sr_broker;
typedef struct sr_push sr_push; /* api/push.h */

SR_MUST_CHECK int sr_broker_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, sr_broker **out, char *err,
                                 size_t errlen);
/* Before the engine closes: nothing more is submitted (SR_ECLOSED). */
void sr_broker_quiesce(sr_broker *b);
/* Answer what the engine completed; after the engine was closed. */
void sr_broker_flush(sr_broker *b);
/* Answer waiting fetches, close the broker's handles (before the server
 * walks the loop), then free after the loop ran. */
void sr_broker_dispose(sr_broker *b);
void sr_broker_free(sr_broker *b);
/* Invariant check (broker.c INVARIANTS 9; codecs/base/sr_alloc.h
 * SR_INVARIANT): NULL when the live table, the per-operator counts, each
 * live request's part counts, the monitors and the fetch waiters agree,
 * else a static string naming what does not. O(live requests x operators). */
const char *sr_broker_check(const sr_broker *b);
/* For the metrics (api/metrics.h), on the loop: fn once per state with the
 * open requests (monitors 0; their wire state names: PENDING, DISPATCHED)
 * and the monitors (monitors 1: STARTING, RUNNING, STOPPING, STOPPED) in
 * it, zero counts included. */
void sr_broker_states(const sr_broker *b, void (*fn)(void *ctx, int monitors, const char *state, size_t n),
                      void *ctx);
/* Tests only: break one invariant (what, below) to show that the check
 * names it; -what undoes it. */
enum {
    SR_BROKER_BREAK_NLIVE = 1, /* nlive off by one */
    SR_BROKER_BREAK_OPCOUNT,   /* an operator's live count off by one */
    SR_BROKER_BREAK_NOPEN,     /* the first live request's nopen off by one */
    SR_BROKER_BREAK_INFLIGHT,  /* the first live request's inflight off by one */
    SR_BROKER_BREAK_MONACK,    /* the first monitor's first acknowledgement neither 0 nor 1 */
};
void sr_broker_test_break(sr_broker *b, int what);
/* Push to apps (R-AP-17, api/push.h): once durable, monitor values and the
 * outcomes of async requests are queued on p for the app's push URL. NULL
 * (the default) stops pushing; set NULL before p is disposed. */
void sr_broker_set_push(sr_broker *b, sr_push *p);
/* Request flows across cluster nodes (INVARIANT 11, api/cluster_req.h):
 * the hooks the relay calls on the loop (relayed messages, presence moves,
 * this node's gateways online), and the relay the broker sends through
 * (NULL, the default: a single node; set NULL before q is stopped). */
struct sr_creq_hooks;
typedef struct sr_creq sr_creq;
void sr_broker_relay_hooks(sr_broker *b, struct sr_creq_hooks *h);
void sr_broker_set_relay(sr_broker *b, sr_creq *q);
/* sr_push_recover's derivation (ctx: the broker): the push a logged event
 * makes, as the live path made it once the event was durable (a monitor's
 * values: Measurements.monitor_id; an async request's outcome: its
 * app-level final RequestTransition, RequestCreated.async). */
void sr_broker_push_derive(void *ctx, const sr_event_view *ev);

/* An app's grant: a data-point id, or a prefix ending in '*', and the
 * access it gives (1 read, 2 control, 3 both). */
typedef struct sr_grant {
    char pattern[72];
    int access;
} sr_grant;
/* The app's grants as the engine holds them now: *out (*n of them; free()).
 * No grants is SR_OK with *n 0 (also for an app that is not registered or
 * is disabled: nothing reaches it); on an error nothing is returned. The one
 * reader of grant records (the AP-IF session and the broker's delivery). */
int sr_grants_load(sr_engine *e, const char *op, const char *app, sr_grant **out, size_t *n);
/* 1 if one of g[0..n) gives data_id the access. */
int sr_grants_allow(const sr_grant *g, size_t n, const char *data_id, int access);
/* Open app requests (and monitor START/STOP parts) allowed at once: all
 * operators, and one operator ([server] requests_max, requests_per_operator);
 * a request or monitor over either is refused E9002. Monitors not stopped of
 * one operator ([server] monitors_per_operator): one more is refused E9002.
 * Stopped monitors kept in memory per operator ([server]
 * stopped_monitors_kept, the most recent; older ones are forgotten at the
 * next start of a monitor of that operator and at load: their events stay
 * in the log and their values in the stored values). 0: the default. */
void sr_broker_set_limits(sr_broker *b, size_t requests_max, size_t requests_per_op, size_t monitors_per_op,
                          size_t stopped_kept);

/* ---- gateways ----------------------------------------------------------- */

/* A gateway's MQTT session, as the broker pushes to it. send delivers an
 * envelope on R/<suffix> if the gateway subscribed to it and returns 1, or
 * returns 0 (not subscribed: the gateway must fetch). */
typedef struct sr_gwlink {
    void *ctx;
    int (*send)(void *ctx, const char *suffix, const sr_buf *payload);
} sr_gwlink;

void sr_broker_gw_online(sr_broker *b, const char *op, const char *gw, const sr_gwlink *link);
/* The session of link ctx ended (a newer session of the gateway is kept). */
void sr_broker_gw_offline(sr_broker *b, const char *op, const char *gw, void *link_ctx);
/* The gateway was disabled, deleted or given a new secret (R-ID-4): its
 * HTTP long polls waiting now end at once with nothing handed out (their
 * callbacks get NULL). */
void sr_broker_gw_revoked(sr_broker *b, const char *op, const char *gw);
/* The MQTT gateway subscribed to something: push what waits. */
void sr_broker_gw_kick(sr_broker *b, const char *op, const char *gw);

/* The answer to a gateway's message. code SR_WIRE_OK or a wire error
 * (api/wire.h); for fetch and certificate requests, reply_suffix
 * ("res/fetch", "res/cert") and reply (the whole envelope) are set instead
 * of an acknowledgement. rc is the engine result the answer comes from
 * (SR_OK when none): SR_EFULL, the engine's queue was full, is the one
 * answer a binding may hold and offer again (back-pressure). */
typedef struct sr_gw_answer {
    sr_wire code;
    const char *message;
    json_t *detail;           /* borrowed, may be NULL */
    const char *reply_suffix; /* NULL: a GW_ACK */
    const sr_buf *reply;
    int rc;
} sr_gw_answer;
typedef void (*sr_gw_answer_cb)(void *ctx, const sr_gw_answer *a);

/*
 * The GW-IF message kinds (../shared/docs/interface.md, "GW-IF"): one row
 * per (topic, messageType), shared by the MQTT server (api/server.c), the
 * HTTP binding (api/gwif_http.c) and the broker. A message's
 * header.messageType must be its kind's (sr_gw_kind_type_check): otherwise
 * E1001 naming header.messageType, nothing stored, on every binding.
 *
 * How to add a kind: one row in sr_gw_kinds (api/broker.c) with its broker
 * handler there, and nothing else: a row with a route is also a row of the
 * GW-IF routes (sr_gwif_routes, assembled from this table in
 * api/gwif_http.c; tests/api/test_routes.c checks it).
 */
typedef enum sr_gw_kind_how {
    SR_GWK_VALUES = 1, /* the binding stores body.values as a measurements event (api/gwif_json.h) */
    SR_GWK_STATUS,     /* the MQTT server records a session event */
    SR_GWK_BROKER,     /* handler: the broker's (sr_broker_gw_message) */
} sr_gw_kind_how;
typedef struct sr_gw_kind {
    const char *suffix; /* the topic below R ("data/measurements") */
    const char *route;  /* the HTTP binding's POST path, NULL: MQTT only */
    const char *type;   /* header.messageType */
    sr_gw_kind_how how;
    void (*handler)(sr_broker *b, const char *op, const char *gw, const sr_gw_msg *msg, sr_gw_answer_cb cb,
                    void *ctx); /* SR_GWK_BROKER: answers through cb, exactly once */
    int http_poll;      /* over HTTP the route is the long poll (sr_broker_fetch), not handler's answer now */
} sr_gw_kind;
extern const sr_gw_kind sr_gw_kinds[];
extern const size_t sr_gw_nkinds;
enum { SR_GW_KINDS_MAX = 16 }; /* rows of sr_gw_kinds at most (checked at compile time) */
/* The first row of a topic suffix; NULL if none. */
const sr_gw_kind *sr_gw_kind_of_topic(const char *suffix);
/* 0 if type (may be NULL) is a messageType of k's topic; else -1 with msg
 * "header.messageType: GW_X is required on WHERE" (where: the topic or the
 * route it arrived on). */
int sr_gw_kind_type_check(const sr_gw_kind *k, const char *type, const char *where, char *msg, size_t cap);

/* A gateway message for the broker: suffix is its topic below R (a row of
 * sr_gw_kinds with SR_GWK_BROKER). cb is called exactly once, maybe before
 * this returns. msg is borrowed for the call only. */
void sr_broker_gw_message(sr_broker *b, const char *op, const char *gw, const char *peer, const char *suffix,
                          const sr_gw_msg *msg, sr_gw_answer_cb cb, void *ctx);

/* HTTP long poll: hand out up to max requests now, or wait up to wait_ms.
 * cb gets the GW_FETCH_RES envelope, or NULL when the gateway's session was
 * revoked while it waited (sr_broker_gw_revoked: nothing was handed out).
 * The returned handle is cancelled (sr_broker_fetch_cancel) if the HTTP
 * request goes away first. */
typedef void (*sr_fetch_cb)(void *ctx, const sr_buf *envelope);
void *sr_broker_fetch(sr_broker *b, const char *op, const char *gw, const char *correlation_id, int max,
                      uint32_t wait_ms, sr_fetch_cb cb, void *ctx);
void sr_broker_fetch_cancel(sr_broker *b, void *handle);

/* The platform's own id: the subjectId of its certificate (GET
 * /…/certificates/platform/platform) and the keyId of its signatures. */
#define SR_PLATFORM_ID "platform"

/* A certificate as PEM: subject "platform" (id SR_PLATFORM_ID; any other id
 * is SR_ENOTFOUND), "app" or "gateway"; SR_EINVAL for another subject or an
 * id that is not an interface.md ID. */
SR_MUST_CHECK int sr_broker_cert(sr_broker *b, const char *op, const char *subject, const char *id, sr_buf *pem);

/* ---- apps --------------------------------------------------------------- */

/* The outcome for the app: an HTTP status and the JSON body (owned by the
 * broker; the callee copies what it keeps). */
typedef void (*sr_app_cb)(void *ctx, int status, json_t *body);

typedef struct sr_target {
    char data_id[72];
    char gw[72];
} sr_target;

/* Immediate acquisition (kind IMMEDIATE) or a control value (CONTROL, one
 * target, value and protection JSON borrowed). async: answered at once
 * (202) once the request is durable. Returns a waiter handle for
 * sr_broker_detach (the HTTP request went away), or NULL if cb was called. */
void *sr_broker_request(sr_broker *b, const char *op, const char *app, int kind, const sr_target *t, size_t n,
                        uint32_t timeout_ms, int async, json_t *value, json_t *protection, sr_app_cb cb, void *ctx);
/* A control value (sr_broker_request, kind CONTROL, one target) whose
 * protection the caller verified (api/sigcheck.h) over signed (len bytes:
 * the exact bytes of the request's "value" member as the app sent them;
 * NULL: no protection). The request event records them (RequestCreated
 * signed_value, its control value's sig_state SR_SIG_VERIFIED) and the
 * CONTROL request handed to the gateway carries protection as received and
 * "signedValue": those bytes as a JSON string (docs/signatures.md). */
void *sr_broker_request_signed(sr_broker *b, const char *op, const char *app, const sr_target *t, uint32_t timeout_ms,
                               int async, json_t *value, json_t *protection, const char *signed_value, size_t len,
                               sr_app_cb cb, void *ctx);
void sr_broker_detach(sr_broker *b, void *waiter);

/* GET /api/v1/requests/{id}: SR_ENOTFOUND if no such request of this app. */
SR_MUST_CHECK int sr_broker_request_status(sr_broker *b, const char *op, const char *app, const char *id,
                                           json_t **out);

/* Monitors: start (201 {monitorId, status}), stop (202), list. start_ms /
 * end_ms (0: none) go to the gateways in PERIODIC_START as startAt / endAt;
 * an end_ms already past is E1001; at end_ms the monitor stops as a stop by
 * its app does (actor: the system) and values timestamped after it are
 * refused. */
void sr_broker_monitor_start(sr_broker *b, const char *op, const char *app, const sr_target *t, size_t n,
                             uint32_t interval_ms, int64_t start_ms, int64_t end_ms, sr_app_cb cb, void *ctx);
void sr_broker_monitor_stop(sr_broker *b, const char *op, const char *app, const char *monitor, sr_app_cb cb,
                            void *ctx);
SR_MUST_CHECK int sr_broker_monitor_list(sr_broker *b, const char *op, const char *app, json_t **items);

#endif
