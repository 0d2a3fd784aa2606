/* api/apif_http.h -- AP-IF over HTTP (see apif_http.c). Served by the same
 * h2o listener as the GW-IF binding (api/gwif_http.c routes /api/v1 here). */
#ifndef SR_APIF_HTTP_H
#define SR_APIF_HTTP_H

#include "api/broker.h"
#include "api/loginguard.h"
#include "engine/suiro.h"

#include <h2o.h>
#include <uv.h>

typedef struct sr_apif sr_apif;
struct sr_workq;

/* Per-request and per-operator limits of AP-IF (docs/configuration.md). */
typedef struct sr_apif_limits {
    uint32_t answer_max_bytes; /* [http] answer_max_bytes: one document answer, then nextCursor */
    uint32_t doc_scan_max;     /* [http] doc_scan_max: documents one query examines, then nextCursor */
    uint32_t uploads_max;      /* [http] uploads_max: unfinished uploads, all operators */
    uint32_t uploads_per_op;   /* [http] uploads_per_operator */
    uint32_t uploads_per_app;  /* [http] uploads_per_app */
    uint32_t upload_idle_ms;   /* [http] upload_idle_ms */
    uint32_t parse_inline_max; /* [server] parse_inline_max: a larger document is checked on a worker */
} sr_apif_limits;
void sr_apif_limits_default(sr_apif_limits *l);

/* guard: the server's login guard (api/loginguard.h) for POST /api/v1/sessions. */
SR_MUST_CHECK int sr_apif_open(uv_loop_t *loop, sr_engine *eng, sr_broker *broker, sr_loginguard *guard,
                               sr_apif **out);
void sr_apif_free(sr_apif *a);
/* The engine is about to close: nothing more is submitted. */
void sr_apif_quiesce(sr_apif *a);
/* Work on the thread pool that still uses the engine (wait for 0 before
 * closing it). */
size_t sr_apif_busy(sr_apif *a);
/* Live AP-IF sessions (the metrics' apps). */
size_t sr_apif_sessions(sr_apif *a);
/* Use the server's worker queue (shared with the MQTT side; not owned) and
 * these limits instead of the defaults sr_apif_open set (its own queue). */
void sr_apif_set_limits(sr_apif *a, struct sr_workq *wq, const sr_apif_limits *l);
/* The server's alive status (api/alive.h, not owned) and the listener's
 * binding ("http" or "https"): an app is online from its login or a
 * request, offline at its logout or after [alive] http_silence_s. */
struct sr_alive;
void sr_apif_set_alive(sr_apif *a, struct sr_alive *alive, const char *binding);
/* Reads go into the audit trail through acc (api/access.h; not owned). */
struct sr_access;
void sr_apif_set_access(sr_apif *a, struct sr_access *acc);
/* Answer one request whose path starts with /api/v1/. */
void sr_apif_handle(sr_apif *a, h2o_req_t *req);
/* 1 if token is a live app session token (api/gwif_http.c: may this
 * connection's request body be held?) */
int sr_apif_token_known(sr_apif *a, const char *token, size_t len);
/* The registry entry of app (op, app) changed (the server's registry hook,
 * on the loop): every live session of the app that may not go on (deleted,
 * disabled, secret rotated) ends now, each with its SessionEvent
 * DISCONNECTED and the reason. How many ended. (A narrowed grant needs
 * nothing here: a token re-reads its grants before its next request.) */
size_t sr_apif_registry_changed(sr_apif *a, const char *op, const char *app);

#endif
