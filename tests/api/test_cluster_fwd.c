/* tests/api/test_cluster_fwd.c -- forwarding's pure parts (api/cluster_fwd.h,
 * docs/cluster.md "Forwarding"): every route row's forwarding column holds a
 * deliberate value (the rules below; GW-IF is never forwarded; every other
 * row served where it was received is named in a list with its group's
 * reason), the decision (route,
 * caller's operator, hop marker, cluster state) -> local / forward(part) /
 * 503 as a table, and the advertised URL's checks. */
#include "api/cluster.h"
#include "api/cluster_fwd.h"
#include "api/routes.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* The rows served where they were received (SR_FWD_NONE), by group; the
 * reasons are docs/cluster.md's "Which requests are forwarded". A new row
 * fails until it is given a value or listed here. */
static const struct {
    const char *method, *path;
} local_rows[] = {
    /* logins and logouts: sessions are registry events every node has */
    {"POST", "/api/v1/sessions"}, {"DELETE", "/api/v1/sessions/current"},
    {"POST", "/admin/v1/sessions"}, {"DELETE", "/admin/v1/sessions/current"},
    /* request flows (immediate, monitor, control, their status): the flows' part of #19, not forwarded here */
    {"POST", "/api/v1/current-values"}, {"POST", "/api/v1/monitors"}, {"GET", "/api/v1/monitors"},
    {"DELETE", "/api/v1/monitors/{monitorId}"}, {"GET", "/api/v1/monitors/{monitorId}/values"},
    {"POST", "/api/v1/control-values"}, {"GET", "/api/v1/requests/{requestId}"},
    /* registry reads every node has (replicated through .reg) */
    {"GET", "/api/v1/certificates/{subjectType}/{subjectId}"},
    {"GET", "/admin/v1/me"}, {"GET", "/admin/v1/users"}, {"GET", "/admin/v1/users/{userId}"},
    {"GET", "/admin/v1/login-policy"}, {"GET", "/admin/v1/operators"}, {"GET", "/admin/v1/vendors"},
    {"GET", "/admin/v1/vendors/{vendorId}"}, {"GET", "/admin/v1/pending"}, {"GET", "/admin/v1/pending/{pendingId}"},
    /* this node's own state: its connections, its log, its audit trail, its keys, its backups, its alarms */
    {"GET", "/api/v1/alive"}, {"GET", "/admin/v1/alive"}, {"GET", "/admin/v1/cluster"},
    {"GET", "/admin/v1/cluster/partitions/{partition}/digest"}, /* per node by design: `suiro cluster verify` asks each */
    {"GET", "/admin/v1/audit/events"}, {"GET", "/admin/v1/state"}, {"GET", "/admin/v1/reports/incident"},
    {"GET", "/admin/v1/audit/checkpoints/latest"}, {"GET", "/admin/v1/audit/checkpoints"},
    {"GET", "/admin/v1/audit/proofs/inclusion"}, {"GET", "/admin/v1/audit/proofs/consistency"},
    {"GET", "/admin/v1/keys"}, {"POST", "/admin/v1/keys/rotate"}, {"GET", "/admin/v1/keys/export"},
    {"POST", "/admin/v1/keys/master"}, {"GET", "/admin/v1/backups"}, {"POST", "/admin/v1/backups"},
    {"POST", "/admin/v1/retention/run"}, {"GET", "/admin/v1/alarms"}, {"GET", "/admin/v1/alarms/{alarmId}"},
    {"POST", "/admin/v1/alarms/{alarmId}/ack"}, {"POST", "/admin/v1/alarms/{alarmId}/resolve"},
    /* the cluster's stream keys are in its KV bucket, the same from every node; the erasure's events are the
     * node's own (docs/cluster.md "Stream key erasure") */
    {"POST", "/admin/v1/cluster/keys/{keyId}/erase"},
    /* the test build's extra row */
    {"GET", "/api/v1/tabletest/{word}"},
};

static int listed_local(const sr_route *r)
{
    for (size_t i = 0; i < sizeof local_rows / sizeof local_rows[0]; i++)
        if (!strcmp(local_rows[i].method, r->method) && !strcmp(local_rows[i].path, r->path)) return 1;
    return 0;
}

Test(fwd, every_row_has_a_deliberate_value)
{
    size_t n = 0, none = 0, op = 0, plat = 0;
    for (size_t l = 0; l < sr_nroute_lists; l++) {
        const sr_route_list *L = &sr_route_lists[l];
        for (size_t k = 0; k < *L->n; k++) {
            const sr_route *r = &L->rows[k];
            const char *b = L->binding;
            n++;
            cr_expect(r->fwd == SR_FWD_NONE || r->fwd == SR_FWD_OPERATOR || r->fwd == SR_FWD_PLATFORM,
                      "%s %s: fwd %d is not a value", r->method, r->path, r->fwd);
            if (!strcmp(b, "GW-IF")) /* gateways write to any node: the outbox publishes it */
                cr_expect(r->fwd == SR_FWD_NONE, "GW-IF %s %s is never forwarded", r->method, r->path);
            if (r->fwd == SR_FWD_NONE && !strcmp(b, "GW-IF")) {
                none++; /* the binding's rule above */
            } else if (r->fwd == SR_FWD_NONE) {
                none++;
                cr_expect(listed_local(r), "%s %s %s: served where received, but not listed with its reason", b,
                          r->method, r->path);
            } else if (r->fwd == SR_FWD_OPERATOR) {
                op++;
                cr_expect(!listed_local(r), "%s %s listed as local but forwarded", r->method, r->path);
                cr_expect((!strcmp(b, "AP-IF") && r->caller == SR_CALLER_APP) ||
                              (!strcmp(b, "Admin") && strstr(r->path, "{operatorId}")),
                          "%s %s %s: SR_FWD_OPERATOR needs an app caller or an {operatorId}", b, r->method, r->path);
            } else if (r->fwd == SR_FWD_PLATFORM) {
                plat++;
                cr_expect(!listed_local(r), "%s %s listed as local but forwarded", r->method, r->path);
                cr_expect(!strcmp(b, "Admin") && strcmp(r->method, "GET") && !strstr(r->path, "{operatorId}"),
                          "%s %s %s: SR_FWD_PLATFORM is for platform-scope Admin writes", b, r->method, r->path);
            }
            /* invariant 1: nothing unauthenticated is forwarded */
            if (r->fwd) cr_expect(r->caller != SR_CALLER_NONE, "%s %s: forwarded without a caller", r->method, r->path);
        }
    }
    /* the groups the design names: data reads, operator admin, platform writes */
    cr_expect(op >= 20 && plat >= 10 && none >= 20, "rows %zu: none %zu, operator %zu, platform %zu", n, none, op, plat);
    /* every row of the list is a row of the tables */
    for (size_t i = 0; i < sizeof local_rows / sizeof local_rows[0]; i++) {
        int found = 0;
        for (size_t l = 0; l < sr_nroute_lists && !found; l++)
            for (size_t k = 0; k < *sr_route_lists[l].n && !found; k++)
                found = !strcmp(sr_route_lists[l].rows[k].method, local_rows[i].method) &&
                        !strcmp(sr_route_lists[l].rows[k].path, local_rows[i].path);
        cr_expect(found || strstr(local_rows[i].path, "tabletest"),
                  "listed %s %s is no row", local_rows[i].method, local_rows[i].path);
    }
}

/* the decision: a fake cluster owning the partitions in bits */
static int owns_bits(void *ctx, uint32_t part) { return (*(const uint32_t *)ctx >> part) & 1u; }

Test(fwd, decision_table)
{
    uint32_t p_sim = sr_cluster_partition("sim", 16), p_demo = sr_cluster_partition("demo", 16);
    cr_assert_eq(p_sim, 11); /* docs/cluster.md's golden values */
    cr_assert_eq(p_demo, 8);
    uint32_t mine_sim = 1u << 11, mine_zero = 1u, none = 0;
    struct {
        int enabled;
        const uint32_t *owned;
        int fwd;
        const char *op;
        int forwarded;
        sr_fwd_verdict want;
        uint32_t part;
    } rows[] = {
        /* no cluster, or static ownership: everything local */
        {0, &none, SR_FWD_OPERATOR, "sim", 0, SR_FWDV_LOCAL, 0},
        {0, &none, SR_FWD_PLATFORM, NULL, 1, SR_FWDV_LOCAL, 0},
        /* a row served where received */
        {1, &none, SR_FWD_NONE, "sim", 0, SR_FWDV_LOCAL, 0},
        {1, &none, SR_FWD_NONE, "sim", 1, SR_FWDV_LOCAL, 0},
        /* an operator's row: its partition's owner */
        {1, &mine_sim, SR_FWD_OPERATOR, "sim", 0, SR_FWDV_LOCAL, 11},
        {1, &mine_sim, SR_FWD_OPERATOR, "sim", 1, SR_FWDV_LOCAL, 11}, /* forwarded here: served */
        {1, &mine_sim, SR_FWD_OPERATOR, "demo", 0, SR_FWDV_FORWARD, 8},
        {1, &mine_sim, SR_FWD_OPERATOR, "demo", 1, SR_FWDV_REFUSE, 8}, /* never a second hop */
        {1, &none, SR_FWD_OPERATOR, "", 0, SR_FWDV_LOCAL, 0},          /* no operator: the handler refuses */
        {1, &none, SR_FWD_OPERATOR, NULL, 0, SR_FWDV_LOCAL, 0},
        /* a platform write: partition 0's owner */
        {1, &mine_zero, SR_FWD_PLATFORM, NULL, 0, SR_FWDV_LOCAL, 0},
        {1, &mine_sim, SR_FWD_PLATFORM, "sim", 0, SR_FWDV_FORWARD, 0}, /* the operator does not matter */
        {1, &none, SR_FWD_PLATFORM, NULL, 1, SR_FWDV_REFUSE, 0},
        /* an unknown value is never forwarded */
        {1, &none, 7, "sim", 0, SR_FWDV_LOCAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sr_fwd_view v = {rows[i].enabled, 16, owns_bits, (void *)rows[i].owned};
        uint32_t part = 99;
        sr_fwd_verdict d = sr_fwd_decide(rows[i].fwd, rows[i].op, rows[i].forwarded, &v, &part);
        cr_expect_eq(d, rows[i].want, "row %zu: verdict %d, want %d", i, d, rows[i].want);
        cr_expect_eq(part, rows[i].part, "row %zu: partition %u, want %u", i, part, rows[i].part);
    }
    uint32_t part = 5;
    cr_expect_eq(sr_fwd_decide(SR_FWD_OPERATOR, "sim", 0, NULL, &part), SR_FWDV_LOCAL);
}

/* A forwarded request without the owner's answer: a change that may have
 * reached the owner has an unknown outcome (500 E9001, never "retry"); a
 * read, or a request that never left this node, is safe to send again. */
Test(fwd, outcome_unknown)
{
    struct {
        const char *method;
        int reached, want;
    } rows[] = {
        {"GET", 1, 0},    {"HEAD", 1, 0},  {"GET", 0, 0},    {"POST", 1, 1},   {"PUT", 1, 1},
        {"DELETE", 1, 1}, {"PATCH", 1, 1}, {"POST", 0, 0},   {"PUT", 0, 0},    {"DELETE", 0, 0},
        {"GE", 1, 1},     {"GETS", 1, 1},  {"get", 1, 1}, /* only the safe methods by their exact names */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_expect_eq(sr_fwd_outcome_unknown(rows[i].method, strlen(rows[i].method), rows[i].reached), rows[i].want,
                     "row %zu: %s reached=%d", i, rows[i].method, rows[i].reached);
}

Test(fwd, advertise)
{
    char out[160], err[256];
    struct {
        const char *adv, *listen, *want; /* want NULL: refused */
    } rows[] = {
        {"", "127.0.0.1:8080", "http://127.0.0.1:8080"},
        {"", "node1.lan:8080", "http://node1.lan:8080"},
        {"", "", ""},
        {"", "0.0.0.0:8080", NULL},
        {"", ":8080", NULL},
        {"", "[::]:8080", NULL},
        {"http://10.0.0.5:8080", "0.0.0.0:8080", "http://10.0.0.5:8080"},
        {"https://n1.example:443", "", "https://n1.example:443"},
        {"http://[fd00::5]:8080", "[::]:8080", "http://[fd00::5]:8080"},
        {"http://0.0.0.0:8080", "", NULL},
        {"http://n1:8080/api", "", NULL},
        {"ftp://n1:21", "", NULL},
        {"http://n1", "", NULL},
        {"http://n1:99999", "", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        err[0] = 0;
        int rc = sr_fwd_advertise_url(rows[i].adv, rows[i].listen, out, sizeof out, err, sizeof err);
        if (!rows[i].want) {
            cr_expect_eq(rc, -1, "row %zu: accepted %s", i, out);
            cr_expect(strstr(err, "advertise") || strstr(err, "listen"), "row %zu: the error names the key: %s", i,
                      err);
        } else {
            cr_expect_eq(rc, 0, "row %zu: %s", i, err);
            cr_expect_str_eq(out, rows[i].want, "row %zu", i);
        }
    }
    char host[64];
    cr_expect_eq(sr_fwd_url_host("http://[::1]:80", host, sizeof host), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(sr_fwd_url_host("http://127.0.0.1:80", host, sizeof host), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(sr_fwd_url_host("127.0.0.1:80", host, sizeof host), -1);
}

/* invariant 4: the waiting requests' list -- bounded (one more is SR_EFULL:
 * the dispatcher answers 401 at once), a waiter leaves it at its deadline
 * from anywhere in it, and a wake-up takes every one at once in arrival
 * order, leaving the list empty for those that park again */
Test(fwd, wait_list)
{
    sr_fwd_wlist w = {.cap = 3};
    sr_fwd_wlink l[4];
    for (int i = 0; i < 3; i++) cr_assert_eq(sr_fwd_wlist_add(&w, &l[i]), SR_OK);
    cr_assert_eq(sr_fwd_wlist_add(&w, &l[3]), SR_EFULL, "bounded");
    cr_assert_eq(w.n, 3);
    sr_fwd_wlist_remove(&w, &l[1]); /* its deadline */
    cr_assert_eq(w.n, 2);
    cr_assert(w.head == &l[0] && l[0].next == &l[2] && l[2].prev == &l[0] && w.tail == &l[2]);
    cr_assert_eq(sr_fwd_wlist_add(&w, &l[3]), SR_OK, "room again");
    sr_fwd_wlink *t = sr_fwd_wlist_take(&w);
    cr_assert(w.n == 0 && !w.head && !w.tail);
    sr_fwd_wlink *want[] = {&l[0], &l[2], &l[3]};
    size_t k = 0;
    for (; t; t = t->next) cr_assert_eq(t, want[k++]);
    cr_assert_eq(k, 3);
    /* parked again after the wake-up: the list works as new */
    cr_assert_eq(sr_fwd_wlist_add(&w, &l[2]), SR_OK);
    sr_fwd_wlist_remove(&w, &l[2]);
    cr_assert(w.n == 0 && !w.head && !w.tail);
    cr_assert_eq(SR_FWD_WAITERS_MAX, 1024u);
}
