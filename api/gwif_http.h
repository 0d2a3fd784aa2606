/* api/gwif_http.h -- the GW-IF HTTP binding (see gwif_http.c). Runs on the
 * server's libuv loop; responses to writes are sent once the engine reports
 * them durable. */
#ifndef SR_GWIF_HTTP_H
#define SR_GWIF_HTTP_H

#include "api/broker.h"
#include "api/loginguard.h"
#include "engine/suiro.h"

#include <h2o.h>
#include <uv.h>

typedef struct sr_gwhttp sr_gwhttp;

/* Bind host:port (port 0: a free one). On failure *out may be set (free it). */
typedef struct sr_http_tls {
    const char *cert, *key; /* both non-empty: HTTPS */
    const char *ca;         /* client certificates are verified against it */
    const char *client;     /* "none", "optional", "require" */
} sr_http_tls;

/* What connections may make the server hold (docs/configuration.md, [http]). */
typedef struct sr_http_limits {
    size_t max_body;         /* largest request body: larger is 413 (h2o's max_request_entity_size) */
    size_t max_unauth_body;  /* request bytes held for a request without a known bearer token */
    size_t body_budget;      /* request bytes held for all connections together */
    size_t max_conns, max_conns_per_addr;
    uint32_t request_timeout_ms; /* headers and body of a request (h2o's http1 req_timeout) */
    uint32_t send_timeout_ms;    /* an answer that makes no progress this long: the connection is closed */
} sr_http_limits;

/* guard: the server's login guard (api/loginguard.h), used by both session routes. */
SR_MUST_CHECK int sr_gwhttp_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, const char *host, int port,
                                 const sr_http_tls *tls, const sr_http_limits *lim, sr_loginguard *guard,
                                 sr_gwhttp **out, char *err, size_t errlen);
/* The server's worker queue (not owned) and limits: AP-IF's, and GW-IF
 * values messages over parse_inline_max bytes are checked on the queue. */
struct sr_workq;
struct sr_apif_limits;
void sr_gwhttp_set_limits(sr_gwhttp *g, struct sr_workq *wq, const struct sr_apif_limits *l,
                          uint32_t parse_inline_max);
/* [users] for the Admin API (/admin/v1, api/admin_http.h); after
 * sr_gwhttp_set_limits (it uses the same worker queue). */
struct sr_admin_conf;
void sr_gwhttp_set_admin(sr_gwhttp *g, const struct sr_admin_conf *c);
/* The server's alive status (api/alive.h, not owned): HTTP gateways and
 * AP-IF apps are online from a login or request, offline at a logout or
 * after [alive] http_silence_s without a request. NULL: none tracked. */
struct sr_alive;
void sr_gwhttp_set_alive(sr_gwhttp *g, struct sr_alive *alive);
/* AP-IF's and GW-IF's reads go into the audit trail through acc
 * (api/access.h; not owned; before the listener serves). */
struct sr_access;
void sr_gwhttp_set_access(sr_gwhttp *g, struct sr_access *acc);
int sr_gwhttp_port(sr_gwhttp *g);
/* For the metrics (api/metrics.h): open HTTP connections, live GW-IF
 * tokens, live AP-IF sessions. g may be NULL (all 0). */
void sr_gwhttp_sessions(sr_gwhttp *g, size_t *conns, size_t *gateways, size_t *apps);
void sr_gwhttp_stop_accepting(sr_gwhttp *g);
/* Before the engine closes: requests from now on are answered 503 E9002. */
void sr_gwhttp_quiesce(sr_gwhttp *g);
/* Work on the thread pool that still uses the engine. */
size_t sr_gwhttp_busy(sr_gwhttp *g);
/* Answer what the engine completed (after the engine was closed). */
void sr_gwhttp_flush(sr_gwhttp *g);
/* Release h2o's context (its handles close on the loop); before walking the loop. */
void sr_gwhttp_dispose(sr_gwhttp *g);
void sr_gwhttp_free(sr_gwhttp *g);
/* The GW-IF message kind (api/broker.h) whose route is row r of
 * sr_gwif_routes (api/routes.h); NULL for any other row. */
struct sr_route;
struct sr_gw_kind;
const struct sr_gw_kind *sr_gwif_route_kind(const struct sr_route *r);
/* The registry entry (kind sr_reg_kind, engine/records.h) of op's id
 * changed (the server's registry hook, on the loop): a gateway's HTTP
 * tokens, or an app's AP-IF sessions (sr_apif_registry_changed), that may
 * not go on (deleted, disabled, secret rotated) end now. How many ended. */
size_t sr_gwhttp_registry_changed(sr_gwhttp *g, const char *op, int kind, const char *id);
/* The subject CN of the verified client certificate of req's connection
 * ("operatorId/appId"), or NULL. */
const char *sr_http_client_cn(h2o_req_t *req);

#endif
