/* api/gwif_http.h -- the GW-IF HTTP binding (see gwif_http.c). Runs on the
 * server's libuv loop; responses to writes are sent once the engine reports
 * them durable. */
#ifndef SR_GWIF_HTTP_H
#define SR_GWIF_HTTP_H

#include "api/broker.h"
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

SR_MUST_CHECK int sr_gwhttp_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, const char *host, int port,
                                 const sr_http_tls *tls, size_t max_body,
                                 sr_gwhttp **out, char *err, size_t errlen);
/* The server's worker queue (not owned) and limits: AP-IF's, and GW-IF
 * values messages over parse_inline_max bytes are checked on the queue. */
struct sr_workq;
struct sr_apif_limits;
void sr_gwhttp_set_limits(sr_gwhttp *g, struct sr_workq *wq, const struct sr_apif_limits *l,
                          uint32_t parse_inline_max);
int sr_gwhttp_port(sr_gwhttp *g);
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
/* The subject CN of the verified client certificate of req's connection
 * ("operatorId/appId"), or NULL. */
const char *sr_http_client_cn(h2o_req_t *req);

#endif
