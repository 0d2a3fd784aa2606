/* tests/api/test_routes.c -- the routes table (api/routes.h) and the GW-IF
 * message kinds (sr_gw_kinds, api/broker.h): the matcher (named parameters,
 * the "{path}" rest, 404 against 405), every row complete, no two rows
 * overlapping, the rows against docs/api/openapi.yaml's paths, and every
 * message kind against its route and ../shared/docs/interface.md's
 * messageType. */
#include "api/broker.h"
#include "api/gwif_http.h"
#include "api/metrics.h"
#include "api/routes.h"
#include "engine/authz.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC SR_TEST_DATA "/../../docs/api/openapi.yaml"

static void h1(const sr_route_call *c) { (void)c; }
static void h2(const sr_route_call *c) { (void)c; }

static const sr_route T[] = {
    {"GET", "/x/v1/docs/{collection}", h1, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/x/v1/docs/{collection}/{documentId}", h2, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"PUT", "/x/v1/docs/{collection}/{documentId}", h2, SR_CALLER_APP, SR_BODY_DOC, 0, SR_FWD_NONE},
    {"GET", "/x/v1/files/{path}", h1, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/x/v1/files", h2, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"POST", "/x/v1/small", h1, SR_CALLER_NONE, SR_BODY_SMALL, 0, SR_FWD_NONE},
};
enum { NT = sizeof T / sizeof T[0] };

static const sr_route *find(const char *m, const char *p, sr_route_call *c, int *known)
{
    return sr_route_find(T, NT, m, strlen(m), p, strlen(p), c, known);
}

Test(routes, named_parameters_by_name)
{
    sr_route_call c;
    int known;
    const sr_route *r = find("GET", "/x/v1/docs/plans/d-1", &c, &known);
    cr_assert_eq(r, &T[1]);
    cr_assert_eq(c.route, &T[1]);
    cr_assert_str_eq(sr_route_param(&c, "collection"), "plans");
    cr_assert_str_eq(sr_route_param(&c, "documentId"), "d-1");
    cr_assert_null(sr_route_param(&c, "path"), "no parameter of that name");
    cr_assert_null(sr_route_param(&c, "collectio"), "names match whole");
    r = find("GET", "/x/v1/docs/plans", &c, &known);
    cr_assert_eq(r, &T[0]);
    cr_assert_str_eq(sr_route_param(&c, "collection"), "plans");
    cr_assert_null(sr_route_param(&c, "documentId"));
    /* a segment parameter is never empty and never holds a slash */
    cr_assert_null(find("GET", "/x/v1/docs/", &c, &known));
    cr_assert_eq(known, 0);
    cr_assert_null(find("GET", "/x/v1/docs/a/b/c", &c, &known));
    cr_assert_eq(known, 0);
    cr_assert_null(find("GET", "/x/v1/docs/a//", &c, &known));
}

Test(routes, the_rest_parameter_takes_the_slashes)
{
    sr_route_call c;
    int known;
    cr_assert_eq(find("GET", "/x/v1/files/a/b/c.txt", &c, &known), &T[3]);
    cr_assert_str_eq(sr_route_param(&c, "path"), "a/b/c.txt");
    cr_assert_eq(find("GET", "/x/v1/files", &c, &known), &T[4], "the list is its own row");
    cr_assert_eq(c.nparams, 0);
    cr_assert_null(find("GET", "/x/v1/files/", &c, &known), "the rest is never empty");
}

Test(routes, a_too_long_parameter_is_null)
{
    char p[SR_ROUTE_PARAM_MAX + 40], v[SR_ROUTE_PARAM_MAX + 1];
    memset(v, 'a', SR_ROUTE_PARAM_MAX - 1);
    v[SR_ROUTE_PARAM_MAX - 1] = 0;
    snprintf(p, sizeof p, "/x/v1/files/%s", v);
    sr_route_call c;
    int known;
    cr_assert_eq(find("GET", p, &c, &known), &T[3]);
    cr_assert_str_eq(sr_route_param(&c, "path"), v, "SR_ROUTE_PARAM_MAX - 1 bytes fit");
    snprintf(p, sizeof p, "/x/v1/files/%sa", v);
    cr_assert_eq(find("GET", p, &c, &known), &T[3]);
    cr_assert_null(sr_route_param(&c, "path"), "SR_ROUTE_PARAM_MAX bytes do not");
}

/* h2o's normalized path has %00 decoded to a NUL byte: a value holding a
 * control byte is NULL (refused), never cut short at the NUL (the fuzzer's
 * GET /api/v1/documents/%00/id2) */
Test(routes, a_parameter_with_a_control_byte_is_null)
{
    static const char p[] = "/x/v1/files/abc\0/../etc";
    sr_route_call c;
    int known;
    cr_assert_eq(sr_route_find(T, NT, "GET", 3, p, sizeof p - 1, &c, &known), &T[3]);
    cr_assert_null(sr_route_param(&c, "path"), "a NUL inside the value");
    static const char q[] = "/x/v1/files/a\x1f" "b";
    cr_assert_eq(sr_route_find(T, NT, "GET", 3, q, sizeof q - 1, &c, &known), &T[3]);
    cr_assert_null(sr_route_param(&c, "path"), "a control byte inside the value");
}

Test(routes, unknown_path_404_known_path_other_method_405)
{
    sr_route_call c;
    int known = -1;
    cr_assert_null(find("DELETE", "/x/v1/docs/plans", &c, &known));
    cr_assert_eq(known, 1, "the path exists with another method: 405");
    cr_assert_null(c.route);
    known = -1;
    cr_assert_null(find("GET", "/x/v1/nothing", &c, &known));
    cr_assert_eq(known, 0, "no row has the path: 404");
    cr_assert_null(find("GE", "/x/v1/files", &c, &known), "methods match whole");
    cr_assert_eq(known, 1);
    cr_assert_null(find("GET", "/x/v1/filesx", &c, &known));
    cr_assert_eq(known, 0);
}

Test(routes, body_limit_of_the_row)
{
    char m[120];
    cr_assert_eq(sr_route_body_check(&T[5], SR_BODY_SMALL, m, sizeof m), 0);
    cr_assert_eq(sr_route_body_check(&T[5], SR_BODY_SMALL + 1, m, sizeof m), -1);
    cr_assert_str_eq(m, "payload too large: this request's body is at most 128 KiB");
    cr_assert_eq(sr_route_body_check(&T[2], SR_BODY_DOC + 1, m, sizeof m), -1);
    cr_assert_str_eq(m, "payload too large: this request's body is at most 1 MiB");
    cr_assert_eq(sr_route_body_check(&T[0], (size_t)1 << 40, m, sizeof m), 0, "[http] max_body is h2o's");
}

Test(routes, overlap_of_patterns)
{
    static const struct {
        const char *a, *b;
        int overlap;
    } rows[] = {
        {"/a/{x}", "/a/b", 1},         {"/a/{x}", "/a/{y}", 1},         {"/a/{x}", "/a/b/c", 0},
        {"/a/{path}", "/a/b/c", 1},    {"/a/{path}", "/a", 0},           {"/a/b", "/a/c", 0},
        {"/a/{x}/v", "/a/{y}/w", 0},   {"/a/{x}/v", "/a/b/{z}", 1},      {"/a", "/a", 1},
        {"/a/{path}", "/a/{x}/y", 1},  {"/ab", "/a/{x}", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cr_expect_eq(sr_route_overlap(rows[i].a, rows[i].b), rows[i].overlap, "%s vs %s", rows[i].a, rows[i].b);
        cr_expect_eq(sr_route_overlap(rows[i].b, rows[i].a), rows[i].overlap, "%s vs %s", rows[i].b, rows[i].a);
    }
}

/* every row of the one list */
#define EACH(r, l)                                                                                                     \
    for (size_t l = 0; l < sr_nroute_lists; l++)                                                                      \
        for (const sr_route *r = sr_route_lists[l].rows; r < sr_route_lists[l].rows + *sr_route_lists[l].n; r++)

Test(routes, every_row_is_complete)
{
    size_t n = 0;
    for (size_t l = 0; l < sr_nroute_lists; l++) {
        int ap = !strcmp(sr_route_lists[l].binding, "AP-IF"), adm = !strcmp(sr_route_lists[l].binding, "Admin");
        cr_assert(ap || adm || !strcmp(sr_route_lists[l].binding, "GW-IF"), "%s", sr_route_lists[l].binding);
        const char *prefix = ap ? "/api/v1/" : adm ? "/admin/v1/" : "/gw/v1/";
        for (size_t i = 0; i < *sr_route_lists[l].n; i++) {
            const sr_route *r = &sr_route_lists[l].rows[i];
            n++;
            cr_expect(r->method && (!strcmp(r->method, "GET") || !strcmp(r->method, "POST") ||
                                    !strcmp(r->method, "PUT") || !strcmp(r->method, "DELETE")),
                      "%s: method", r->path);
            cr_expect(r->path && !strncmp(r->path, prefix, strlen(prefix)), "%s: path of %s", r->path,
                      sr_route_lists[l].binding);
            cr_expect(r->handler, "%s %s: no handler", r->method, r->path);
            cr_expect(r->body_max > 0, "%s %s: no body limit", r->method, r->path);
            if (ap)
                cr_expect(r->caller == SR_CALLER_NONE || r->caller == SR_CALLER_APP, "%s %s: an AP-IF caller class",
                          r->method, r->path);
            else if (adm) {
                cr_expect(r->caller == SR_CALLER_NONE || r->caller == SR_CALLER_ADMIN || r->caller == SR_CALLER_USER,
                          "%s %s: an Admin caller class", r->method, r->path);
                /* what a session that must change its password (or enrol
                 * TOTP) may call: only the caller's own session and self */
                if (r->caller == SR_CALLER_USER)
                    cr_expect(!strcmp(r->path, "/admin/v1/sessions/current") || !strcmp(r->path, "/admin/v1/me") ||
                                  !strncmp(r->path, "/admin/v1/me/", 13),
                              "%s %s: a must-change session's route", r->method, r->path);
                cr_expect(r->action >= 0 && r->action <= SR_ACT_COUNT, "%s %s: an action of engine/authz.h",
                          r->method, r->path);
                /* an action's target comes from the path (admin_int.h) */
                if (r->action && r->caller != SR_CALLER_ADMIN)
                    cr_expect(0, "%s %s: an action on a route not of SR_CALLER_ADMIN", r->method, r->path);
            } else
                cr_expect(r->caller == SR_CALLER_NONE || r->caller == SR_CALLER_GATEWAY,
                          "%s %s: a GW-IF caller class", r->method, r->path);
            if (!adm) cr_expect_eq(r->action, 0, "%s %s: an action outside /admin/v1", r->method, r->path);
            /* only the session-opening routes are open to anyone */
            if (r->caller == SR_CALLER_NONE)
                cr_expect(!strcmp(r->method, "POST") && strstr(r->path, "/sessions") && !strstr(r->path, "current"),
                          "%s %s: open to anyone", r->method, r->path);
            /* a body parsed on the loop is bounded */
            if (!strcmp(r->method, "POST") && r->caller == SR_CALLER_APP)
                cr_expect(r->body_max <= SR_BODY_DOC, "%s %s: unbounded JSON body", r->method, r->path);
        }
    }
    cr_assert_geq(n, 31, "every route of the server: %zu", n);
}

Test(routes, no_two_rows_overlap)
{
    EACH(a, la)
    EACH(b, lb)
    {
        if (a >= b || strcmp(a->method, b->method)) continue;
        cr_expect_not(sr_route_overlap(a->path, b->path), "%s %s and %s %s overlap", a->method, a->path, b->method,
                      b->path);
    }
}

Test(routes, the_rows_find_themselves)
{
    EACH(r, lr)
    {
        /* the pattern with each parameter replaced by a value */
        char p[256];
        size_t o = 0;
        for (const char *t = r->path; *t && o + 8 < sizeof p;) {
            if (*t == '{') {
                const char *close = strchr(t, '}');
                memcpy(p + o, "v1", 2);
                o += 2;
                t = close + 1;
            } else
                p[o++] = *t++;
        }
        p[o] = 0;
        for (size_t l = 0; l < sr_nroute_lists; l++) {
            sr_route_call c;
            int known;
            const sr_route *f = sr_route_find(sr_route_lists[l].rows, *sr_route_lists[l].n, r->method,
                                              strlen(r->method), p, strlen(p), &c, &known);
            if (f) cr_expect_eq(f, r, "%s %s finds %s %s", r->method, p, f->method, f->path);
        }
    }
}

/* "METHOD PATH" of docs/api/openapi.yaml's paths, and of each operation
 * what the Admin binding's invariants read: its x-suiro-action (the row's
 * action), x-suiro-action-in-handler (a row of action 0 whose handler
 * checks it), x-suiro-caller: user (SR_CALLER_USER) and "security: []"
 * (SR_CALLER_NONE) */
typedef struct spec_op {
    char route[160];
    char action[40], in_handler[40];
    int caller_user, open;
} spec_op;

static size_t spec_routes(spec_op *out, size_t max)
{
    FILE *f = fopen(SPEC, "r");
    cr_assert(f, "cannot open %s", SPEC);
    char line[512], path[140] = "";
    int in_paths = 0;
    size_t n = 0;
    spec_op *cur = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] && line[0] != ' ') in_paths = !strcmp(line, "paths:");
        if (!in_paths) continue;
        if (!strncmp(line, "  /", 3)) {
            snprintf(path, sizeof path, "%s", line + 2);
            path[strlen(path) - 1] = 0; /* the ':' */
            cur = NULL;
            continue;
        }
        if (!strncmp(line, "    ", 4) && line[4] != ' ') cur = NULL; /* another key of the path item */
        static const char *const ms[] = {"get", "post", "put", "delete", "patch"};
        for (size_t i = 0; i < 5; i++) {
            char want[16];
            snprintf(want, sizeof want, "    %s:", ms[i]);
            if (!strcmp(line, want) && n < max) {
                char up[8];
                for (size_t k = 0; k <= strlen(ms[i]); k++) up[k] = (char)(ms[i][k] >= 'a' ? ms[i][k] - 32 : ms[i][k]);
                cur = &out[n++];
                memset(cur, 0, sizeof *cur);
                snprintf(cur->route, sizeof cur->route, "%s %s", up, path);
            }
        }
        if (!cur) continue;
        if (!strncmp(line, "      x-suiro-action: ", 22)) snprintf(cur->action, sizeof cur->action, "%s", line + 22);
        if (!strncmp(line, "      x-suiro-action-in-handler: ", 33))
            snprintf(cur->in_handler, sizeof cur->in_handler, "%s", line + 33);
        if (!strcmp(line, "      x-suiro-caller: user")) cur->caller_user = 1;
        if (!strcmp(line, "      security: []")) cur->open = 1;
    }
    fclose(f);
    return n;
}

enum { SPEC_MAX = 400 };

Test(routes, the_rows_are_the_openapi_paths)
{
    static spec_op spec[SPEC_MAX];
    size_t ns = spec_routes(spec, SPEC_MAX), nr = 0;
    cr_assert_geq(ns, 31, "%zu operations in %s", ns, SPEC);
    int *seen = calloc(ns, sizeof *seen);
    EACH(r, lr)
    {
        char m[160];
        snprintf(m, sizeof m, "%s %s", r->method, r->path);
        size_t i = 0;
        while (i < ns && strcmp(spec[i].route, m)) i++;
        cr_expect(i < ns, "%s: a route not in docs/api/openapi.yaml", m);
        if (i < ns) seen[i]++;
        nr++;
    }
    for (size_t k = 0; k < sr_metrics_npaths; k++) { /* /metrics, /health, /ready (api/metrics.h) */
        char m[160];
        snprintf(m, sizeof m, "GET %s", sr_metrics_paths[k]);
        size_t i = 0;
        while (i < ns && strcmp(spec[i].route, m)) i++;
        cr_expect(i < ns, "%s: a path of api/metrics.c not in docs/api/openapi.yaml", m);
        if (i < ns) seen[i]++;
        nr++;
    }
    for (size_t i = 0; i < ns; i++) cr_expect_eq(seen[i], 1, "%s: in the spec, not a route", spec[i].route);
    cr_expect_eq(nr, ns);
    free(seen);
}

/* The Admin binding: the spec says each route's caller class and action as
 * the row has them (docs/admin.md's routes table is written from the same) */
Test(routes, the_admin_rows_callers_and_actions_are_the_specs)
{
    static spec_op spec[SPEC_MAX];
    size_t ns = spec_routes(spec, SPEC_MAX), nadm = 0;
    for (size_t l = 0; l < sr_nroute_lists; l++) {
        if (strcmp(sr_route_lists[l].binding, "Admin")) continue;
        for (size_t k = 0; k < *sr_route_lists[l].n; k++) {
            const sr_route *r = &sr_route_lists[l].rows[k];
            char m[160];
            snprintf(m, sizeof m, "%s %s", r->method, r->path);
            size_t i = 0;
            while (i < ns && strcmp(spec[i].route, m)) i++;
            if (i == ns) continue; /* the_rows_are_the_openapi_paths says so */
            nadm++;
            const spec_op *o = &spec[i];
            const char *want = r->action ? sr_authz_action_name((sr_authz_action)(r->action - 1)) : "";
            cr_expect_str_eq(o->action, want, "%s: x-suiro-action is not the row's action", m);
            cr_expect_eq(o->open, r->caller == SR_CALLER_NONE, "%s: security: [] exactly for SR_CALLER_NONE", m);
            cr_expect_eq(o->caller_user, r->caller == SR_CALLER_USER, "%s: x-suiro-caller: user exactly for SR_CALLER_USER",
                         m);
            /* an admin's route either has its action checked by the
             * dispatcher or says which action its handler checks */
            if (r->caller == SR_CALLER_ADMIN)
                cr_expect(r->action || o->in_handler[0], "%s: neither x-suiro-action nor x-suiro-action-in-handler", m);
            if (o->in_handler[0]) {
                int known = 0;
                for (int a = 0; a < SR_ACT_COUNT; a++) known |= !strcmp(o->in_handler, sr_authz_action_name((sr_authz_action)a));
                /* the pending routes: the action of the pending change the path names (admin_pending.c) */
                known |= !strcmp(o->in_handler, "change") && !strncmp(r->path, "/admin/v1/pending", 17);
                /* the alarm routes: setup.read / setup.manage on the alarm's operator, tenants.manage
                 * for a platform alarm (admin_alarms.c) */
                known |= !strcmp(o->in_handler, "alarm") && !strncmp(r->path, "/admin/v1/alarms", 16);
                cr_expect(known, "%s: x-suiro-action-in-handler %s is no action of engine/authz.h", m, o->in_handler);
            }
        }
    }
    cr_expect_geq(nadm, 1, "the Admin routes in the spec");
}

/* ---- GW-IF message kinds ----------------------------------------------------- */

static const sr_route *gw_route(const char *method, const char *path)
{
    for (size_t i = 0; i < sr_gwif_nroutes; i++)
        if (!strcmp(sr_gwif_routes[i].method, method) && !strcmp(sr_gwif_routes[i].path, path))
            return &sr_gwif_routes[i];
    return NULL;
}

/* a message kind is one row: its route is a GW-IF route made from the row,
 * and the route carries the kind to its handler */
Test(gw_kinds, every_kind_is_complete_and_its_route_a_row)
{
    const sr_route *values = gw_route("POST", "/gw/v1/measurements");
    cr_assert(values, "the measurements route");
    cr_assert_eq(sr_gwif_route_kind(values), sr_gw_kind_of_topic("data/measurements"));
    size_t nroutes = 0, npoll = 0;
    for (size_t i = 0; i < sr_gw_nkinds; i++) {
        const sr_gw_kind *k = &sr_gw_kinds[i];
        cr_expect(k->suffix && k->suffix[0] && k->type && !strncmp(k->type, "GW_", 3), "row %zu", i);
        cr_expect((k->how == SR_GWK_BROKER) == (k->handler != NULL), "%s: a handler exactly for broker kinds",
                  k->suffix);
        cr_expect(!k->http_poll || (k->route && k->how == SR_GWK_BROKER), "%s: a long poll is a broker route",
                  k->suffix);
        npoll += k->http_poll != 0;
        cr_expect_eq(sr_gw_kind_of_topic(k->suffix)->suffix, k->suffix);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(sr_gw_kinds[j].suffix, k->suffix)) {
                cr_expect_eq(j + 1, i, "%s: rows of one topic stay together", k->suffix);
                cr_expect_str_neq(sr_gw_kinds[j].type, k->type, "%s: a messageType once", k->suffix);
            }
        if (!k->route) continue;
        nroutes++;
        const sr_route *r = gw_route("POST", k->route);
        cr_expect(r, "%s: its route POST %s is not a row of sr_gwif_routes", k->suffix, k->route);
        if (!r) continue;
        cr_expect_eq(r->path, k->route, "%s: the row's path is the kind's", k->suffix);
        cr_expect_eq(r->caller, SR_CALLER_GATEWAY, "%s", k->route);
        cr_expect_eq(r->handler, values->handler, "%s: the kinds' handler", k->route);
        cr_expect_eq(sr_gwif_route_kind(r), k, "%s: the route carries its kind", k->route);
    }
    cr_expect_eq(npoll, 1, "one long poll: POST /gw/v1/requests/fetch");
    cr_expect(gw_route("POST", "/gw/v1/requests/fetch") &&
                  sr_gwif_route_kind(gw_route("POST", "/gw/v1/requests/fetch"))->http_poll,
              "the fetch route is the long poll");
    /* every GW-IF route with the kinds' handler is a kind's, once; the others have none */
    size_t nmsg = 0;
    for (size_t i = 0; i < sr_gwif_nroutes; i++) {
        const sr_gw_kind *k = sr_gwif_route_kind(&sr_gwif_routes[i]);
        if (sr_gwif_routes[i].handler == values->handler) {
            nmsg++;
            cr_expect(k, "%s: no message kind", sr_gwif_routes[i].path);
        } else
            cr_expect_null(k, "%s: not a message kind's route", sr_gwif_routes[i].path);
    }
    cr_expect_eq(nmsg, nroutes, "a row per kind with a route");
    cr_expect_null(sr_gw_kind_of_topic("data/bogus"));
    cr_expect_null(sr_gwif_route_kind(gw_route("POST", "/gw/v1/sessions")));
    cr_expect_null(sr_gwif_route_kind(NULL));
}

Test(gw_kinds, message_type_checked_against_topic_or_route)
{
    static const struct {
        const char *suffix, *type;
        int ok;
        const char *want;
    } rows[] = {
        {"data/measurements", "GW_MEASUREMENTS", 1, NULL},
        {"data/measurements", "BOGUS", 0, "header.messageType: GW_MEASUREMENTS is required on data/measurements"},
        {"data/measurements", NULL, 0, "header.messageType: GW_MEASUREMENTS is required on data/measurements"},
        {"data/measurements", "GW_PERIODIC_DATA", 0, "header.messageType: GW_MEASUREMENTS is required on data/measurements"},
        {"data/periodic", "GW_PERIODIC_DATA", 1, NULL},
        {"data/immediate", "GW_CONTROL_RESULT", 0, "header.messageType: GW_IMMEDIATE_RESULT is required on data/immediate"},
        {"status", "GW_CONNECT", 1, NULL},
        {"status", "GW_DISCONNECT", 1, NULL},
        {"status", "GW_MEASUREMENTS", 0, "header.messageType: GW_CONNECT or GW_DISCONNECT is required on status"},
        {"req/fetch", "GW_FETCH_REQ", 1, NULL},
        {"req/cert", "GW_FETCH_REQ", 0, "header.messageType: GW_CERT_REQ is required on req/cert"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const sr_gw_kind *k = sr_gw_kind_of_topic(rows[i].suffix);
        cr_assert(k, "%s", rows[i].suffix);
        char m[200] = "";
        int rc = sr_gw_kind_type_check(k, rows[i].type, rows[i].suffix, m, sizeof m);
        cr_expect_eq(rc, rows[i].ok ? 0 : -1, "row %zu: %s %s", i, rows[i].suffix, rows[i].type);
        if (!rows[i].ok) cr_expect_str_eq(m, rows[i].want, "row %zu", i);
    }
    char m[200];
    cr_expect_eq(sr_gw_kind_type_check(sr_gwif_route_kind(gw_route("POST", "/gw/v1/measurements")), "BOGUS",
                                       "/gw/v1/measurements", m, sizeof m),
                 -1);
    cr_expect_str_eq(m, "header.messageType: GW_MEASUREMENTS is required on /gw/v1/measurements");
}

/* each kind's (topic, messageType) is a row of the contract's GW-IF table:
 * | ... | `R/<topic>` (GW→PF) | `<messageType>` ... | */
Test(gw_kinds, the_kinds_are_the_contracts)
{
    /* the contract is ../shared/docs/interface.md beside the source tree
     * (SUIRO_INTERFACE_MD names it elsewhere, e.g. from a git worktree) */
    const char *path = getenv("SUIRO_INTERFACE_MD");
    FILE *f = fopen(path ? path : SR_TEST_DATA "/../../../shared/docs/interface.md", "r");
    if (!f) cr_skip_test("../shared/docs/interface.md is not beside the source tree");
    static char lines[400][600];
    size_t n = 0;
    while (n < 400 && fgets(lines[n], sizeof lines[n], f))
        if (lines[n][0] == '|' && strstr(lines[n], "`R/")) n++;
    fclose(f);
    for (size_t i = 0; i < sr_gw_nkinds; i++) {
        char topic[64], type[64];
        snprintf(topic, sizeof topic, "`R/%s`", sr_gw_kinds[i].suffix);
        snprintf(type, sizeof type, "`%s`", sr_gw_kinds[i].type);
        int found = 0;
        for (size_t j = 0; j < n && !found; j++) found = strstr(lines[j], topic) && strstr(lines[j], type);
        cr_expect(found, "interface.md has no row with %s and %s", topic, type);
    }
}
