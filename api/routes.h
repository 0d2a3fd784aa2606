/*
 * api/routes.h -- every HTTP route of the server in one table: the routers
 * (api/apif_http.c, api/gwif_http.c) dispatch through it, `suiro routes`
 * prints it, and a test checks it against docs/api/openapi.yaml.
 */
#ifndef SR_ROUTES_H
#define SR_ROUTES_H

#include <stddef.h>

typedef enum sr_route_id {
    SR_R_NONE = 0,
    /* AP-IF */
    SR_R_AP_SESSION_OPEN,
    SR_R_AP_SESSION_CLOSE,
    SR_R_AP_MASTERS,
    SR_R_AP_CURRENT_VALUES,
    SR_R_AP_MONITOR_START,
    SR_R_AP_MONITOR_LIST,
    SR_R_AP_MONITOR_STOP,
    SR_R_AP_MONITOR_VALUES,
    SR_R_AP_CONTROL,
    SR_R_AP_CERT,
    SR_R_AP_REQUEST,
    SR_R_AP_STORED,
    SR_R_AP_LATEST,
    SR_R_AP_DOC_CREATE,
    SR_R_AP_DOC_QUERY,
    SR_R_AP_DOC_GET,
    SR_R_AP_DOC_PUT,
    SR_R_AP_DOC_DELETE,
    SR_R_AP_FILE_LIST,
    SR_R_AP_FILE_GET,
    SR_R_AP_FILE_PUT,
    SR_R_AP_FILE_DELETE,
    /* GW-IF HTTP binding */
    SR_R_GW_SESSION_OPEN,
    SR_R_GW_SESSION_CLOSE,
    SR_R_GW_MEASUREMENTS,
    SR_R_GW_IMMEDIATE,
    SR_R_GW_PERIODIC,
    SR_R_GW_MONITOR_ACK,
    SR_R_GW_CONTROL_RESULT,
    SR_R_GW_FETCH,
    SR_R_GW_CERT,
} sr_route_id;

typedef struct sr_route {
    const char *method;
    const char *path; /* "{name}" matches one segment; a last "{path}" matches the rest */
    sr_route_id id;
} sr_route;

extern const sr_route sr_routes[];
extern const size_t sr_nroutes;

/* Up to 3 path parameters, as slices of the request path. */
typedef struct sr_route_params {
    const char *v[3];
    size_t len[3];
    size_t n;
} sr_route_params;

/* The route of (method, path); SR_R_NONE if none. *method_ok is 0 when the
 * path exists but not with this method (405). */
sr_route_id sr_route_find(const char *method, size_t mlen, const char *path, size_t plen, sr_route_params *p,
                          int *path_known);

#endif
