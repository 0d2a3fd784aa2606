/* api/admin_alive.c -- /admin/v1/alive: the alive status of gateways and
 * apps (R-MO-1, issue #17; docs/monitoring.md "Alive status", docs/admin.md).
 *
 *   GET /admin/v1/alive[?operator=&kind=gateway|app&state=online|offline]
 *     -> 200 {items:[{operatorId, kind, id, state, since, reason, binding,
 *        remote, will?, lastSeen?, seq}]}
 *
 * The state, since when, why, by which binding and from where are the
 * `alive` index's (the latest AliveEvent of each principal: what is
 * durable); lastSeen is the server's memory (api/alive.h: absent when the
 * principal sent nothing since the server started). Who may read: monitor.read
 * on the operator asked for, else on the caller's own operator for an
 * operator's user, else on the platform (every operator). The items are
 * sr_alive_items' (api/alive.c). Its route table is sr_admin_alive_routes
 * (admin_int.h).
 *
 *   GET /admin/v1/cluster
 *     -> 200 the cluster mode's ownership as this node sees it (issue #19,
 *        docs/cluster.md "Ownership"): {enabled, node, bucket, leaseMs,
 *        partitionCount, connected, liveNodes, nodes:[{node, apif, admin,
 *        startedMs, seenMs, live}], partitions:[{partition, owner, epoch,
 *        untilMs}], owned:[partition...]}; {enabled:false} on a single
 *        node. Who may read: the platform's monitoring (monitor.read on the
 *        platform: the platform admin) or the platform's audit (audit.read
 *        on the platform: the auditor); an operator's user is refused (the
 *        cluster is the platform's, not an operator's).
 *
 *   GET /admin/v1/cluster/partitions/{partition}/digest
 *     -> 200 {partition, partitionCount, node, points:[{operator, dataId,
 *        count, hash}]}: the digest of this node's index for the partition's
 *        operators (engine/digest.c: per data point holding values, their
 *        count and the sum of sr_value_hash, as 16 hex digits), which
 *        `suiro cluster verify` compares with the partition's stream
 *        (docs/cluster.md "Replay, verify and audit from the stream"). The
 *        same readers as GET /admin/v1/cluster; read on the worker queue
 *        (it reads every value of the partition), never on the loop. On a
 *        single node partitionCount is 1: partition 0 is every operator.
 *        400 E1001 for a partition outside 0..partitionCount-1.
 *        Paged like the audit listing (docs/admin.md "Paging"): ?limit=
 *        1..10000 points (default 1000) and ?after=<operator>/<dataId>, the
 *        previous page's "next"; the answer has "next" (the cursor of its
 *        last point) when points follow. Only a page's points are hashed.
 */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/alive.h"
#include "api/cluster.h"
#include "codecs/ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void alive_list(const sr_route_call *c)
{
    const sr_admin_caller *cl = c->caller;
    char opq[80] = "", kq[16] = "", sq[16] = "";
    int has_op = sr_http_query(c->req, "operator", opq, sizeof opq);
    if (has_op && !sr_id_str_ok(opq)) return sr_admin_bad_field(c, "operator", "an operator's id");
    int kind = 0, state = 0;
    if (sr_http_query(c->req, "kind", kq, sizeof kq)) {
        if (!strcmp(kq, "gateway")) kind = SR_ACTOR_GATEWAY;
        else if (!strcmp(kq, "app")) kind = SR_ACTOR_APP;
        else return sr_admin_bad_field(c, "kind", "gateway or app");
    }
    if (sr_http_query(c->req, "state", sq, sizeof sq)) {
        if (!strcmp(sq, "online")) state = SR_AS_ONLINE;
        else if (!strcmp(sq, "offline")) state = SR_AS_OFFLINE;
        else return sr_admin_bad_field(c, "state", "online or offline");
    }
    /* the operator asked for, else the caller's own for an operator's user,
     * else the platform's view of every operator */
    sr_authz_target t = {0};
    if (has_op) t.operator_id = opq;
    else if (cl->scope == SR_SCOPE_OPERATOR) t.operator_id = cl->scope_id;
    if (!sr_admin_authorize(c, SR_ACT_MONITOR_READ, &t)) return;
    int rc;
    json_t *items = sr_alive_items(sr_admin_engine(c), sr_admin_conf_of(c)->alive, t.operator_id, kind, state, &rc);
    if (!items) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), "cannot read the alive status", NULL);
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void cluster_status(const sr_route_call *c)
{
    sr_authz_target t = {0}; /* the platform's */
    if (!sr_admin_allows(c, SR_ACT_AUDIT_READ, &t) && !sr_admin_authorize(c, SR_ACT_MONITOR_READ, &t)) return;
    json_t *o = sr_cluster_status();
    if (!o) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "cannot build the cluster status", NULL);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

enum { DIGEST_LIMIT_DEFAULT = 1000, DIGEST_LIMIT_MAX = 10000 };

typedef struct dctx {
    uint32_t part, parts;
    json_t *points;
    size_t limit;
    char after[200]; /* the cursor "<operator>/<dataId>" ("" from the first); split at its first '/' */
    char next[200];  /* the last point's cursor */
} dctx;

static int digest_pick(void *ctx, const char *op)
{
    const dctx *d = ctx;
    return sr_cluster_partition(op, d->parts) == d->part;
}

static int digest_point(void *ctx, const sr_point_digest *p)
{
    dctx *d = ctx;
    char h[24];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)p->hash);
    snprintf(d->next, sizeof d->next, "%s/%s", p->op, p->data_id);
    return json_array_append_new(d->points, json_pack("{s:s,s:s,s:I,s:s}", "operator", p->op, "dataId", p->data_id,
                                                      "count", (json_int_t)p->count, "hash", h))
               ? SR_ENOMEM
               : 0;
}

static void digest_work(sr_admin_work *w, void *v)
{
    dctx *d = v;
    if (!(d->points = json_array())) {
        w->code = SR_WIRE_INTERNAL;
        snprintf(w->msg, sizeof w->msg, "out of memory");
        return;
    }
    char *slash = d->after[0] ? strchr(d->after, '/') : NULL;
    if (slash) *slash = 0;
    int more = 0;
    int rc = sr_engine_partition_digest_page(w->eng, digest_pick, d, slash ? d->after : NULL, slash ? slash + 1 : NULL,
                                             d->limit, digest_point, d, &more);
    if (rc) {
        json_decref(d->points);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "cannot read the partition's digest: %s", sr_strerror(rc));
        return;
    }
    uint64_t held = 0; /* this node's held replicated events (engine/origins.c invariant 6): all partitions' */
    if ((rc = sr_engine_cluster_held(w->eng, &held, NULL, NULL, 0))) {
        json_decref(d->points);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "cannot read the held events: %s", sr_strerror(rc));
        return;
    }
    json_t *st = sr_cluster_status();
    const char *node = st ? json_string_value(json_object_get(st, "node")) : NULL;
    w->answer = json_pack("{s:I,s:I,s:s,s:o,s:I}", "partition", (json_int_t)d->part, "partitionCount",
                          (json_int_t)d->parts, "node", node ? node : "", "points", d->points, "heldEvents",
                          (json_int_t)held);
    json_decref(st);
    if (w->answer && more && d->next[0]) json_object_set_new(w->answer, "next", json_string(d->next));
    w->status = 200;
}

static void cluster_digest(const sr_route_call *c)
{
    sr_authz_target t = {0}; /* the platform's */
    if (!sr_admin_allows(c, SR_ACT_AUDIT_READ, &t) && !sr_admin_authorize(c, SR_ACT_MONITOR_READ, &t)) return;
    json_t *st = sr_cluster_status();
    json_int_t parts = st && json_is_true(json_object_get(st, "enabled"))
                           ? json_integer_value(json_object_get(st, "partitionCount"))
                           : 1;
    json_decref(st);
    const char *ps = sr_route_param(c, "partition");
    char *end = NULL;
    long p = ps && *ps ? strtol(ps, &end, 10) : -1;
    if (!ps || !*ps || *end || p < 0 || p >= parts) return sr_admin_bad_field(c, "partition", "0..partitionCount-1");
    char lim[16], after[200];
    size_t limit = DIGEST_LIMIT_DEFAULT;
    if (sr_http_query(c->req, "limit", lim, sizeof lim)) {
        char *le;
        long n = strtol(lim, &le, 10);
        if (!lim[0] || *le || n < 1 || n > DIGEST_LIMIT_MAX) return sr_admin_bad_field(c, "limit", "an integer 1..10000");
        limit = (size_t)n;
    }
    int has_after = sr_http_query(c->req, "after", after, sizeof after);
    if (has_after) { /* <operator>/<dataId>: an operator's id, a data id */
        char *slash = strchr(after, '/');
        if (slash) *slash = 0;
        int ok = slash && sr_id_str_ok(after) && slash[1];
        if (slash) *slash = '/';
        if (!ok) return sr_admin_bad_field(c, "after", "the cursor of the previous page (its \"next\": operator/dataId)");
    }
    dctx *d = calloc(1, sizeof *d);
    if (!d) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    d->part = (uint32_t)p;
    d->parts = (uint32_t)parts;
    d->limit = limit;
    if (has_after) snprintf(d->after, sizeof d->after, "%s", after);
    sr_admin_run(c, digest_work, d, free);
}

const sr_route sr_admin_alive_routes[] = {
    {"GET", "/admin/v1/alive", alive_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/cluster", cluster_status, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
    {"GET", "/admin/v1/cluster/partitions/{partition}/digest", cluster_digest, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
};
const size_t sr_admin_alive_nroutes = sizeof sr_admin_alive_routes / sizeof sr_admin_alive_routes[0];
