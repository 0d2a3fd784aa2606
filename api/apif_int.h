/* api/apif_int.h -- AP-IF internals shared by apif_http.c (router, sessions,
 * values, requests) and apif_store.c (documents, files). Not an API. */
#ifndef SR_APIF_INT_H
#define SR_APIF_INT_H

#include "api/apif_http.h"

#include <stdint.h>

typedef struct sr_ap_grant {
    char pattern[72];
    int access; /* 1 read, 2 control, 3 both */
} sr_ap_grant;

typedef struct sr_ap_token { /* the payload of an AP-IF session token (api/httpu.h) */
    char op[72], app[72];
    sr_ap_grant *grants;
    size_t ngrants;
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
};

/* documents: rest is the path below /api/v1/documents/ */
void sr_apif_documents(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *rest);
/* files: rest is the path below /api/v1/files/ ("" for the list) */
void sr_apif_files(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *rest);
int sr_apif_store_open(sr_apif *a);
void sr_apif_store_free(sr_apif *a);

#endif
