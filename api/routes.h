/*
 * api/routes.h -- every HTTP route of the server as table rows:
 * {method, path pattern with named parameters, handler, who may call it,
 * body limit}. The rows live next to their handlers (sr_apif_routes in
 * api/apif_http.c, sr_gwif_routes in api/gwif_http.c, the Admin API's in
 * api/admin_*.c (api/admin_int.h), sr_gwif_routes' message kinds'
 * rows are made from sr_gw_kinds, api/broker.h); sr_route_lists
 * (routes.c) is the one list of them that the dispatchers read, `suiro
 * routes` prints and the OpenAPI check (tests/integration/test_openapi.sh)
 * and tests/api/test_routes.c compare with docs/api/openapi.yaml.
 *
 * A binding's dispatcher (sr_apif_handle, gwif_http.c on_req) finds the
 * row (sr_route_find: 404 unknown path, 405 a known path with another
 * method), authenticates the row's caller class once, refuses a body over
 * the row's limit (413 E1003, sr_route_body_check), and calls the handler,
 * which takes its parameters by name (sr_route_param).
 *
 * Invariants (tests/api/test_routes.c):
 *  1. Every row has a method, a path under /api/v1/ (AP-IF), /gw/v1/
 *     (GW-IF) or /admin/v1/ (Admin), a handler, a caller class of its
 *     binding and a body limit (not 0); only Admin rows have an action.
 *  2. No two rows of the lists match the same (method, path): a path
 *     segment "{name}" matches one non-empty segment, a last "{path}" the
 *     non-empty rest (slashes included).
 *  3. Parameters are slices of the strictly percent-decoded path
 *     (sr_http_check_request has run), copied NUL-terminated; a value of
 *     SR_ROUTE_PARAM_MAX bytes or more is NULL (the handler refuses it).
 */
#ifndef SR_ROUTES_H
#define SR_ROUTES_H

#include <stddef.h>
#include <stdint.h>

struct st_h2o_req_t;

/* who may call a route: the dispatcher authenticates the caller once */
typedef enum sr_caller {
    SR_CALLER_NONE = 1, /* anyone (the session routes: the handler checks the secret) */
    SR_CALLER_APP,      /* an AP-IF session token (the handler gets its sr_ap_token) */
    SR_CALLER_GATEWAY,  /* a GW-IF session token */
    SR_CALLER_ADMIN,    /* a user's admin session (/admin/v1) whose password is neither temporary nor
                         * expired; the handler gets its sr_admin_caller (api/admin_int.h) */
    SR_CALLER_USER,     /* any user's admin session, also one that must change its password first
                         * (only: logout, who am I, change my password, TOTP enrolment) */
} sr_caller;

/* body limits: bytes, or [http] max_body (enforced by h2o before any handler) */
#define SR_BODY_HTTP_MAX SIZE_MAX
#define SR_BODY_SMALL (128u << 10) /* JSON parsed on the loop (sessions, current values, control, monitors) */
#define SR_BODY_DOC (1u << 20)     /* one document */

enum { SR_ROUTE_PARAMS = 3, SR_ROUTE_PARAM_MAX = 600 };

typedef struct sr_route sr_route;

/* One matched request, for its handler. */
typedef struct sr_route_call {
    const sr_route *route;
    void *binding;              /* the dispatcher's: sr_apif * (AP-IF), sr_gwhttp * (GW-IF) */
    struct st_h2o_req_t *req;
    const void *caller;         /* the authenticated caller's token payload; NULL for SR_CALLER_NONE */
    size_t nparams;
    const char *name[SR_ROUTE_PARAMS]; /* into route->path, not terminated: name_len */
    size_t name_len[SR_ROUTE_PARAMS];
    int too_long[SR_ROUTE_PARAMS]; /* 1: too long or holding a control byte (the value is NULL) */
    char value[SR_ROUTE_PARAMS][SR_ROUTE_PARAM_MAX];
} sr_route_call;

typedef void (*sr_route_fn)(const sr_route_call *c);

struct sr_route {
    const char *method;
    const char *path; /* "/api/v1/documents/{collection}/{documentId}"; a last "{path}" matches the rest */
    sr_route_fn handler;
    sr_caller caller;
    size_t body_max; /* bytes, SR_BODY_HTTP_MAX for [http] max_body */
    int action;      /* /admin/v1 rows: 1 + the sr_authz_action (engine/authz.h) the dispatcher checks
                      * against the target the path names before the handler runs; 0: no check
                      * beyond the caller class (AP-IF, GW-IF, and the admin routes that
                      * check their target themselves) */
    int fwd;         /* sr_route_fwd: in cluster mode, who serves it (api/cluster_fwd.h; docs/cluster.md
                      * "Forwarding"); 0 (SR_FWD_NONE): where it was received */
};

/* The forwarding column (issue #19 phase 2b): SR_FWD_NONE, served where it
 * was received; SR_FWD_OPERATOR, by the owner of the partition of the
 * operator the request is for (an app's operator; an Admin route's
 * {operatorId}); SR_FWD_PLATFORM, a platform-scope Admin write, by the owner
 * of partition 0. tests/api/test_cluster_fwd.c checks every row's value. */
typedef enum sr_route_fwd { SR_FWD_NONE = 0, SR_FWD_OPERATOR = 1, SR_FWD_PLATFORM = 2 } sr_route_fwd;

/* The rows of each binding, next to their handlers. */
extern const sr_route sr_apif_routes[];
extern const size_t sr_apif_nroutes;
/* GW-IF: assembled before main from its own rows and the GW-IF message
 * kinds (sr_gw_kinds, api/broker.h); read only from then on. */
extern sr_route sr_gwif_routes[];
extern size_t sr_gwif_nroutes;

/* The one list: every binding's rows. */
typedef struct sr_route_list {
    const char *binding; /* "AP-IF", "GW-IF", "Admin" (one list per admin file, api/admin_int.h) */
    const sr_route *rows;
    const size_t *n;
} sr_route_list;
extern const sr_route_list sr_route_lists[];
extern const size_t sr_nroute_lists;

/* The row of (method, path) among rows[0..n), with c's parameters filled;
 * NULL if none, and then *path_known is 1 when the path matches a row with
 * another method (405), 0 when no row has it (404). */
const sr_route *sr_route_find(const sr_route *rows, size_t n, const char *method, size_t mlen, const char *path,
                              size_t plen, sr_route_call *c, int *path_known);

/* The parameter named name of the matched route (NUL-terminated), or NULL
 * if the route has none of that name or its value is too long. */
const char *sr_route_param(const sr_route_call *c, const char *name);

/* 0 if a body of len bytes is within the row's limit; else -1 with the
 * 413 message ("payload too large: this request's body is at most 128 KiB"). */
int sr_route_body_check(const sr_route *r, size_t len, char *msg, size_t cap);

/* Do two path patterns match a common path? (invariant 2) */
int sr_route_overlap(const char *a, const char *b);

#endif
