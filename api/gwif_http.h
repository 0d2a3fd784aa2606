/* api/gwif_http.h -- the GW-IF HTTP binding (see gwif_http.c). Runs on the
 * server's libuv loop; responses to writes are sent once the engine reports
 * them durable. */
#ifndef SR_GWIF_HTTP_H
#define SR_GWIF_HTTP_H

#include "api/broker.h"
#include "engine/suiro.h"

#include <uv.h>

typedef struct sr_gwhttp sr_gwhttp;

/* Bind host:port (port 0: a free one). On failure *out may be set (free it). */
/* tls_cert and tls_key (PEM files) both non-empty: HTTPS. */
SR_MUST_CHECK int sr_gwhttp_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, const char *host, int port,
                                 const char *tls_cert, const char *tls_key, size_t max_body,
                                 sr_gwhttp **out, char *err, size_t errlen);
int sr_gwhttp_port(sr_gwhttp *g);
void sr_gwhttp_stop_accepting(sr_gwhttp *g);
/* Before the engine closes: requests from now on are answered 503 E9002. */
void sr_gwhttp_quiesce(sr_gwhttp *g);
/* Answer what the engine completed (after the engine was closed). */
void sr_gwhttp_flush(sr_gwhttp *g);
/* Release h2o's context (its handles close on the loop); before walking the loop. */
void sr_gwhttp_dispose(sr_gwhttp *g);
void sr_gwhttp_free(sr_gwhttp *g);

#endif
