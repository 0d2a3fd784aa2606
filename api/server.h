/*
 * api/server.h -- `suiro serve`: the network front of the engine.
 *
 * One libuv loop (network thread) owns every connection; the engine's writer
 * thread does every write. A gateway's QoS 1 PUBLISH is handed to the engine
 * and PUBACKed only from the engine's completion (the message is durable),
 * delivered back to the loop through a uv_async handle. Today: GW-IF over
 * MQTT on TCP (api/gwif_mqtt.c). TLS, the HTTP bindings and AP-IF are the
 * next steps (docs/architecture.md).
 */
#ifndef SR_SERVER_H
#define SR_SERVER_H

#include "api/config.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sr_server sr_server;

/* Open the engine and bind the listeners. On failure, err says what. */
SR_MUST_CHECK int sr_server_open(const sr_config *cfg, sr_server **out, char *err, size_t errlen);
/* Run until SIGINT/SIGTERM (or sr_server_stop): stop accepting, finish what
 * is in flight, close connections, drain the engine. Returns 0 on a clean
 * stop. It first tells a service manager the server is ready (READY=1,
 * api/sdnotify.h: sr_server_open has recovered and bound every listener),
 * and STOPPING=1 at the signal. */
int sr_server_run(sr_server *s);
void sr_server_close(sr_server *s);
/* The port actually bound (when the config said :0). */
int sr_server_mqtt_port(sr_server *s);
int sr_server_mqtts_port(sr_server *s);
int sr_server_http_port(sr_server *s);
/* [metrics] listen's port (0: none). */
int sr_server_metrics_port(sr_server *s);
/* Readiness (docs/monitoring.md "Metrics and health"): called with 1 once
 * recovery is done and every listener accepts (sr_server_run, before its
 * loop), with 0 at a stop signal and at close. It sets what /ready and
 * suiro_ready answer; systemd's readiness notification (Type=notify) is
 * sent from it too. */
void sr_server_ready_hook(sr_server *s, int ready);
/* The engine the server writes through (in-process tests submit registry
 * changes to a running server through it: tests/api/test_revoke_live.c). */
struct sr_engine *sr_server_engine(sr_server *s);

/* One MQTT connection's state as its invariant check sees it (server.c
 * INVARIANTS 8): the server takes it from the connection at each transition
 * (what the connection holds, counted from its lists), tests build one. */
enum { SR_MQTT_CONN_AWAIT_CONNECT, SR_MQTT_CONN_AUTH, SR_MQTT_CONN_ACTIVE, SR_MQTT_CONN_CLOSING };
typedef struct sr_mqtt_conn_state {
    int state;   /* SR_MQTT_CONN_* */
    int version; /* 0 before a CONNECT was read; 4 (3.1.1) or 5 */
    int refs, handle_closed, reading;
    int root_ok; /* the topic root is wip/v1/{operatorId}/gw/{gatewayId} of the login */
    int inflight, blocked, has_pending, bheld, checking;
    size_t out_bytes;
    int out_paused, out_over;
    size_t nsubs;              /* the count kept */
    size_t subs_listed;        /* the subscriptions in the list */
    size_t subs_outside_root;  /* ... whose filter is not under the root */
    size_t ackq_head, ackq_len, ackq_cap;
    int ackq_front_done;       /* the first waiting PUBACK is ready (it should have gone) */
    /* the limits */
    uint32_t inflight_max, max_output, max_subs;
    size_t ackq_max;
} sr_mqtt_conn_state;
/* NULL when the state keeps the connection's invariants, else a static
 * string naming the broken one (codecs/base/sr_alloc.h SR_INVARIANT). */
const char *sr_mqtt_conn_check(const sr_mqtt_conn_state *c);

#endif
