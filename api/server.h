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

typedef struct sr_server sr_server;

/* Open the engine and bind the listeners. On failure, err says what. */
SR_MUST_CHECK int sr_server_open(const sr_config *cfg, sr_server **out, char *err, size_t errlen);
/* Run until SIGINT/SIGTERM (or sr_server_stop): stop accepting, finish what
 * is in flight, close connections, drain the engine. Returns 0 on a clean
 * stop. */
int sr_server_run(sr_server *s);
void sr_server_close(sr_server *s);
/* The port actually bound (when the config said :0). */
int sr_server_mqtt_port(sr_server *s);
int sr_server_mqtts_port(sr_server *s);
int sr_server_http_port(sr_server *s);

#endif
