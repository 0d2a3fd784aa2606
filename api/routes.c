/* api/routes.c -- see routes.h. */
#include "api/routes.h"

#include <string.h>

const sr_route sr_routes[] = {
    {"POST", "/api/v1/sessions", SR_R_AP_SESSION_OPEN},
    {"DELETE", "/api/v1/sessions/current", SR_R_AP_SESSION_CLOSE},
    {"GET", "/api/v1/masters/{kind}", SR_R_AP_MASTERS},
    {"POST", "/api/v1/current-values", SR_R_AP_CURRENT_VALUES},
    {"POST", "/api/v1/monitors", SR_R_AP_MONITOR_START},
    {"GET", "/api/v1/monitors", SR_R_AP_MONITOR_LIST},
    {"DELETE", "/api/v1/monitors/{monitorId}", SR_R_AP_MONITOR_STOP},
    {"GET", "/api/v1/monitors/{monitorId}/values", SR_R_AP_MONITOR_VALUES},
    {"POST", "/api/v1/control-values", SR_R_AP_CONTROL},
    {"GET", "/api/v1/certificates/{subjectType}/{subjectId}", SR_R_AP_CERT},
    {"GET", "/api/v1/requests/{requestId}", SR_R_AP_REQUEST},
    {"GET", "/api/v1/stored-values", SR_R_AP_STORED},
    {"GET", "/api/v1/stored-values/latest", SR_R_AP_LATEST},
    {"POST", "/api/v1/documents/{collection}", SR_R_AP_DOC_CREATE},
    {"GET", "/api/v1/documents/{collection}", SR_R_AP_DOC_QUERY},
    {"GET", "/api/v1/documents/{collection}/{documentId}", SR_R_AP_DOC_GET},
    {"PUT", "/api/v1/documents/{collection}/{documentId}", SR_R_AP_DOC_PUT},
    {"DELETE", "/api/v1/documents/{collection}/{documentId}", SR_R_AP_DOC_DELETE},
    {"GET", "/api/v1/files", SR_R_AP_FILE_LIST},
    {"GET", "/api/v1/files/{path}", SR_R_AP_FILE_GET},
    {"PUT", "/api/v1/files/{path}", SR_R_AP_FILE_PUT},
    {"DELETE", "/api/v1/files/{path}", SR_R_AP_FILE_DELETE},
    {"POST", "/gw/v1/sessions", SR_R_GW_SESSION_OPEN},
    {"DELETE", "/gw/v1/sessions/current", SR_R_GW_SESSION_CLOSE},
    {"POST", "/gw/v1/measurements", SR_R_GW_MEASUREMENTS},
    {"POST", "/gw/v1/immediate-results", SR_R_GW_IMMEDIATE},
    {"POST", "/gw/v1/periodic-values", SR_R_GW_PERIODIC},
    {"POST", "/gw/v1/monitor-acks", SR_R_GW_MONITOR_ACK},
    {"POST", "/gw/v1/control-results", SR_R_GW_CONTROL_RESULT},
    {"POST", "/gw/v1/requests/fetch", SR_R_GW_FETCH},
    {"GET", "/gw/v1/certificates/{subjectType}/{subjectId}", SR_R_GW_CERT},
};
const size_t sr_nroutes = sizeof sr_routes / sizeof sr_routes[0];

/* match template t against path; fills p */
static int match(const char *t, const char *path, size_t plen, sr_route_params *p)
{
    size_t i = 0;
    p->n = 0;
    while (*t) {
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (!close) return 0;
            int rest = !strncmp(t, "{path}", 6) && close[1] == 0;
            size_t start = i;
            while (i < plen && (rest || path[i] != '/')) i++;
            if (i == start || p->n == 3) return 0;
            p->v[p->n] = path + start;
            p->len[p->n++] = i - start;
            t = close + 1;
            continue;
        }
        if (i >= plen || path[i] != *t) return 0;
        i++;
        t++;
    }
    return i == plen;
}

sr_route_id sr_route_find(const char *method, size_t mlen, const char *path, size_t plen, sr_route_params *p,
                          int *path_known)
{
    *path_known = 0;
    sr_route_params tmp;
    for (size_t k = 0; k < sr_nroutes; k++) {
        if (!match(sr_routes[k].path, path, plen, &tmp)) continue;
        *path_known = 1;
        if (strlen(sr_routes[k].method) == mlen && !memcmp(sr_routes[k].method, method, mlen)) {
            *p = tmp;
            return sr_routes[k].id;
        }
    }
    return SR_R_NONE;
}
