/* api/routes.c -- the route matcher and the one list of routes; see routes.h. */
#include "api/routes.h"

#include "api/admin_int.h"

#include <stdio.h>
#include <string.h>

const sr_route_list sr_route_lists[] = {
    {"AP-IF", sr_apif_routes, &sr_apif_nroutes},
    {"GW-IF", sr_gwif_routes, &sr_gwif_nroutes},
    {"Admin", sr_admin_routes, &sr_admin_nroutes},
    {"Admin", sr_admin_setup_routes, &sr_admin_setup_nroutes},
    {"Admin", sr_admin_pending_routes, &sr_admin_pending_nroutes},
    {"Admin", sr_admin_audit_routes, &sr_admin_audit_nroutes},
    {"Admin", sr_admin_files_routes, &sr_admin_files_nroutes},
    {"Admin", sr_admin_data_routes, &sr_admin_data_nroutes},
    {"Admin", sr_admin_backup_routes, &sr_admin_backup_nroutes},
    {"Admin", sr_admin_retention_routes, &sr_admin_retention_nroutes},
    {"Admin", sr_admin_keys_routes, &sr_admin_keys_nroutes},
    {"Admin", sr_admin_notify_routes, &sr_admin_notify_nroutes},
    {"Admin", sr_admin_alarms_routes, &sr_admin_alarms_nroutes},
    {"Admin", sr_admin_alive_routes, &sr_admin_alive_nroutes},
    {"Admin", sr_admin_report_routes, &sr_admin_report_nroutes},
    {"Admin", sr_admin_sig_routes, &sr_admin_sig_nroutes},
    {"Admin", sr_admin_tlog_routes, &sr_admin_tlog_nroutes},
};
const size_t sr_nroute_lists = sizeof sr_route_lists / sizeof sr_route_lists[0];

/* is t (at a '{') the last "{path}" of its pattern: it takes the rest */
static int is_rest(const char *t) { return !strncmp(t, "{path}", 6) && t[6] == 0; }

/* match pattern t against path; fills c's parameters */
static int match(const char *t, const char *path, size_t plen, sr_route_call *c)
{
    size_t i = 0;
    c->nparams = 0;
    while (*t) {
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (!close || c->nparams == SR_ROUTE_PARAMS) return 0;
            int rest = is_rest(t);
            size_t start = i;
            while (i < plen && (rest || path[i] != '/')) i++;
            if (i == start) return 0;
            size_t k = c->nparams++, len = i - start;
            c->name[k] = t + 1;
            c->name_len[k] = (size_t)(close - t - 1);
            /* too long, or holding a control byte (h2o's normalized path
             * has %00 decoded to a NUL, which would cut the value short):
             * the handler gets NULL and refuses it */
            int ctl = 0;
            for (size_t j = start; j < i && !ctl; j++) ctl = (unsigned char)path[j] < 0x20 || path[j] == 0x7f;
            c->too_long[k] = len >= SR_ROUTE_PARAM_MAX || ctl;
            if (!c->too_long[k]) {
                memcpy(c->value[k], path + start, len);
                c->value[k][len] = 0;
            } else
                c->value[k][0] = 0;
            t = close + 1;
            continue;
        }
        if (i >= plen || path[i] != *t) return 0;
        i++;
        t++;
    }
    return i == plen;
}

const sr_route *sr_route_find(const sr_route *rows, size_t n, const char *method, size_t mlen, const char *path,
                              size_t plen, sr_route_call *c, int *path_known)
{
    *path_known = 0;
    for (size_t k = 0; k < n; k++) {
        if (!match(rows[k].path, path, plen, c)) continue;
        *path_known = 1;
        if (strlen(rows[k].method) == mlen && !memcmp(rows[k].method, method, mlen)) {
            c->route = &rows[k];
            return &rows[k];
        }
    }
    c->route = NULL;
    c->nparams = 0;
    return NULL;
}

const char *sr_route_param(const sr_route_call *c, const char *name)
{
    size_t nl = strlen(name);
    for (size_t k = 0; k < c->nparams; k++)
        if (c->name_len[k] == nl && !memcmp(c->name[k], name, nl)) return c->too_long[k] ? NULL : c->value[k];
    return NULL;
}

int sr_route_body_check(const sr_route *r, size_t len, char *msg, size_t cap)
{
    if (len <= r->body_max) return 0;
    size_t m = r->body_max;
    if (m >= (1u << 20) && m % (1u << 20) == 0) snprintf(msg, cap, "payload too large: this request's body is at most %zu MiB", m >> 20);
    else if (m >= 1024 && m % 1024 == 0) snprintf(msg, cap, "payload too large: this request's body is at most %zu KiB", m >> 10);
    else snprintf(msg, cap, "payload too large: this request's body is at most %zu bytes", m);
    return -1;
}

/* ---- overlap (invariant 2) -------------------------------------------------- */

/* the segment of p at *i: [s, s+len); kind 0 literal, 1 "{name}", 2 the rest "{path}" */
static int seg(const char *p, size_t *len, int *kind)
{
    size_t l = 0;
    while (p[l] && p[l] != '/') l++;
    *len = l;
    *kind = p[0] != '{' ? 0 : is_rest(p) ? 2 : 1;
    return l > 0 || *p == 0;
}

static int overlap_at(const char *a, const char *b)
{
    if (!*a || !*b) return !*a && !*b;
    size_t la, lb;
    int ka, kb;
    seg(a, &la, &ka);
    seg(b, &lb, &kb);
    if (ka == 2 || kb == 2) return 1; /* the rest matches any non-empty rest; the other side has one */
    if (ka == 0 && kb == 0 && (la != lb || memcmp(a, b, la))) return 0;
    const char *na = a + la, *nb = b + lb;
    if (*na != *nb) return 0; /* one ends here, the other goes on */
    if (*na == '/') na++, nb++;
    return overlap_at(na, nb);
}

int sr_route_overlap(const char *a, const char *b)
{
    if (*a == '/' && *b == '/') return overlap_at(a + 1, b + 1);
    return overlap_at(a, b);
}
