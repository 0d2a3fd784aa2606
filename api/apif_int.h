/* api/apif_int.h -- AP-IF internals shared by apif_http.c (router, sessions,
 * values, requests) and apif_store.c (documents, files). Not an API. */
#ifndef SR_APIF_INT_H
#define SR_APIF_INT_H

#include "api/apif_http.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/routes.h"
#include "api/workq.h"
#include "engine/records.h"

#include <jansson.h>
#include <stdint.h>

/* The masters' kinds as the AP-IF and the admin API name them in paths
 * ("facilities", "equipment", "devices", "datapoints"): SR_MK_*, or 0. */
int sr_master_kind_named(const char *what);
/* One master as the AP-IF's MasterItem (docs/api/openapi.yaml), or NULL
 * (no memory); the admin API lists masters the same way. */
json_t *sr_master_item(const sr_master *m);

typedef sr_grant sr_ap_grant; /* api/broker.h: sr_grants_load, sr_grants_allow */

typedef struct sr_ap_token { /* the payload of an AP-IF session token (api/httpu.h) */
    char op[72], app[72];
    sr_ap_grant *grants; /* as of seen.gen: re-read before a request once the registry changed */
    size_t ngrants;
    sr_login_seen seen;  /* api/loginguard.h: the registry generation and the secret of the login */
    struct sr_alive_ent *ae; /* the app's alive entry (api/alive.h), NULL: none */
} sr_ap_token;

struct sr_apif_store;

struct sr_apif {
    sr_engine *eng;
    sr_broker *broker;
    uv_loop_t *loop;
    struct sr_tokens *tokens;
    struct sr_apif_store *store;
    sr_loginguard *guard; /* the server's (api/loginguard.h): app logins */
    int closing; /* the engine is being closed: submit nothing more */
    size_t busy; /* queries and file parts on the thread pool (they use the engine) */
    sr_workq *wq;     /* every job proportional to data runs here, never on the loop */
    sr_workq *own_wq; /* the default one, until sr_apif_set_limits */
    sr_apif_limits lim;
    struct sr_alive *alive;  /* R-MO-1 (api/alive.h; not owned), NULL: none */
    const char *alive_binding; /* http or https */
    struct sr_access *access;  /* reads in the audit trail (api/access.h; not owned), NULL: none */
};

/* A job on the worker queue that answers one request: run() fills out with
 * the JSON answer (or code/msg with a refusal, or rc) on a pool thread;
 * the loop then sends it. Embed first in the job's own struct. */
typedef struct sr_apjob {
    sr_http_ctx h; /* first */
    sr_work w;
    sr_apif *a;
    void (*run)(struct sr_apjob *j);
    void (*fini)(struct sr_apjob *j); /* optional: frees the job's own fields */
    /* optional: answers req itself on the loop once run() found no refusal
     * (instead of sending out) */
    void (*after)(struct sr_apjob *j, h2o_req_t *req);
    sr_buf out;       /* the answer (JSON) */
    int rc;           /* an engine error */
    uint64_t nvalues; /* values (records) the answer holds: the read's audit entry (api/access.h) */
    sr_wire code;     /* or a refusal found while running (SR_WIRE_OK: none) */
    char msg[200];
} sr_apjob;

/* A zeroed job of size bytes tied to req; NULL (answered E9001) if no memory. */
void *sr_apif_job_new(h2o_req_t *req, size_t size, void (*run)(sr_apjob *j));
/* Queue it for the token's operator, holding bytes; answers the request from
 * the loop when run() is done. A refused job is answered 429 E9002 with
 * Retry-After and freed. */
void sr_apif_job_submit(sr_apif *a, const char *op, sr_apjob *j, uint64_t bytes);
/* 429 E9002 with Retry-After: 1 */
void sr_apif_busy_answer(h2o_req_t *req, const char *message);

/* The documents and files routes' handlers (rows in sr_apif_routes,
 * api/apif_http.c; api/routes.h): c->binding is the sr_apif, c->caller the
 * sr_ap_token. */
void sr_apif_doc_create(const sr_route_call *c);
void sr_apif_doc_query(const sr_route_call *c);
void sr_apif_doc_get(const sr_route_call *c);
void sr_apif_doc_put(const sr_route_call *c);
void sr_apif_doc_delete(const sr_route_call *c);
void sr_apif_file_list(const sr_route_call *c);
void sr_apif_file_get(const sr_route_call *c);
void sr_apif_file_put(const sr_route_call *c);
/* (ext) POST /api/v1/corrections: an app's import of a corrected CSV (api/csv_http.c, docs/csv.md) */
void sr_apif_corrections(const sr_route_call *c);
void sr_apif_file_delete(const sr_route_call *c);
/* Files, shared with the Admin API's file routes (api/admin_files.c): a
 * file's metadata (0; else answered 404 E3001 or 500 E9001, -1; m holds
 * it: sr_rec_close), the download of its bytes (streamed and verified as
 * the AP-IF's; fm is copied before it returns), and its JSON
 * {path,size,sha256,contentType,updatedAt}. */
int sr_apif_file_meta(sr_engine *e, h2o_req_t *req, const char *op, const char *path, sr_rec *m, sr_file_meta *fm);
void sr_apif_file_send(sr_engine *e, h2o_req_t *req, const sr_file_meta *fm, const char *path);
json_t *sr_apif_file_json(const sr_file_meta *fm);
/* Submit the one event in b (released) for req; fn runs on the loop once
 * it is durable or refused (r->rc), with req NULL if the client left, and
 * arg: a copy of n <= SR_APIF_THEN_ARG bytes. Not SR_OK: not submitted, fn
 * never runs (issue #18: the app login waits for its SessionEvent). */
#define SR_APIF_THEN_ARG 320
typedef void (*sr_apif_then_fn)(sr_apif *a, h2o_req_t *req, const sr_result *r, void *arg);
int sr_apif_submit_then(sr_apif *a, h2o_req_t *req, sr_buf *b, sr_apif_then_fn fn, const void *arg, size_t n);
int sr_apif_store_open(sr_apif *a);
/* before the engine closes: unfinished uploads not being written are
 * dropped now (their blob writers use the engine's blob store), the others
 * when their part ends (a->closing) */
void sr_apif_store_quiesce(sr_apif *a);
void sr_apif_store_free(sr_apif *a);

#endif
