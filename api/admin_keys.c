/* api/admin_keys.c -- /admin/v1/keys (docs/keys.md "Running it",
 * docs/admin.md): the keyring of the served data directory. Platform admins
 * (tenants.manage on the platform): the list (metadata only, never a key),
 * a rotation (a KeyEvent "rotate" the writer carries out), and the export
 * (the wrapped keyring: no key readable without the master; a KeyEvent
 * "exported"), and the master key's rotation (the two-person rule: pending
 * until a second platform admin approves; the new master is the server's
 * [keys] master_next). An operator's admin (setup.manage on its own
 * operator) lists and rotates its own operator's keys only (keys_scope);
 * the export and the master rotation stay the platform's. All on the
 * worker queue. The engine's side is engine/keys.c
 * (sr_engine_key_*, engine/records.h). Its route table is
 * sr_admin_keys_routes (admin_int.h). */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/cluster.h"
#include "api/cluster_seal.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "storage/keyring.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void no_keyring(sr_admin_work *w)
{
    w->code = SR_WIRE_CONFLICT;
    snprintf(w->msg, sizeof w->msg, "this server has no keyring: it runs without a master key (key_file, docs/keys.md)");
}

static json_t *key_json(const sr_keyinfo *k)
{
    char id[9], created[40] = "", retired[40] = "", destroyed[40] = "";
    snprintf(id, sizeof id, "%08x", k->id);
    if (k->created_ms) sr_rfc3339_format(k->created_ms, created);
    if (k->retired_ms) sr_rfc3339_format(k->retired_ms, retired);
    if (k->destroyed_ms) sr_rfc3339_format(k->destroyed_ms, destroyed);
    return json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:s,s:s}", "keyId", id, "operator", k->operator_id, "class",
                     sr_key_class_name(k->cls), "epoch", (int)k->epoch, "alg", (int)k->alg, "state",
                     sr_key_state_name(k->state), "created", created, "retired", retired, "destroyed", destroyed);
}

/* Who may see or rotate which keys (docs/admin.md "Keys"): a platform admin
 * (tenants.manage on the platform) every key; an operator's admin
 * (setup.manage on its own operator) that operator's keys only. The list
 * and the rotation check it in the handler (their rows have no action):
 * 1 for the platform's view, 0 for op's alone; -1 after answering 403. */
static int keys_scope(const sr_route_call *c, const char *op)
{
    sr_authz_target plat = {0}, own = {.operator_id = op};
    if (sr_admin_allows(c, SR_ACT_TENANTS_MANAGE, &plat)) return 1;
    if (!op[0]) return sr_admin_authorize(c, SR_ACT_TENANTS_MANAGE, &plat) ? 1 : -1; /* answers 403 */
    return sr_admin_authorize(c, SR_ACT_SETUP_MANAGE, &own) ? 0 : -1;
}

/* The caller's operator ("" for platform and vendor users). */
static const char *caller_op(const sr_route_call *c)
{
    const sr_admin_caller *cl = c->caller;
    return cl && cl->scope == SR_SCOPE_OPERATOR ? cl->scope_id : "";
}

static void list_work(sr_admin_work *w, void *v)
{
    const char *only = v; /* NULL: every key (a platform admin); else one operator's */
    sr_keyinfo *k = NULL;
    size_t n = 0;
    int rc = sr_engine_key_list(w->eng, &k, &n);
    if (rc == SR_ENOTFOUND) return no_keyring(w);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "keys: %s", sr_strerror(rc));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (!only || !strcmp(k[i].operator_id, only)) json_array_append_new(arr, key_json(&k[i]));
    sr_free(k);
    char mid[9];
    snprintf(mid, sizeof mid, "%08x", sr_engine_master_key_id(w->eng));
    w->answer = json_pack("{s:s,s:o}", "masterKeyId", mid, "keys", arr);
}

static void keys_list(const sr_route_call *c)
{
    const char *op = caller_op(c);
    int s = keys_scope(c, op);
    if (s < 0) return;
    char *only = s ? NULL : strdup(op);
    if (!s && !only) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    sr_admin_run(c, list_work, only, free);
}

typedef struct rot {
    char op[72];
    char cls[16];
    int platform; /* the caller is a platform admin */
} rot;

static void rotate_work(sr_admin_work *w, void *v)
{
    rot *r = v;
    if (!sr_engine_master_key_id(w->eng)) return no_keyring(w);
    /* an operator's admin acts as its operator: the writer refuses another's key */
    sr_cmd_env env = sr_admin_work_env(w, r->platform ? "" : r->op);
    sr_key_rec k = {.action = "rotate", .key_operator = r->op, .key_class = r->cls};
    sr_buf b;
    sr_buf_init(&b);
    if (sr_admin_work_submit(w, sr_cmd_key_ev(&env, &k, &b), &b)) return;
    sr_keyinfo *ks = NULL;
    size_t n = 0;
    if (sr_engine_key_list(w->eng, &ks, &n) == SR_OK)
        for (size_t i = 0; i < n; i++)
            if (ks[i].state == SR_KS_ACTIVE && ks[i].cls == sr_key_class_parse(r->cls) && !strcmp(ks[i].operator_id, r->op))
                w->answer = key_json(&ks[i]);
    sr_free(ks);
}

static void keys_rotate(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    const char *op = json_string_value(json_object_get(body, "operator"));
    const char *cls = json_string_value(json_object_get(body, "class"));
    if (json_object_get(body, "operator") && (!op || strlen(op) > 64)) {
        json_decref(body);
        return sr_admin_bad_field(c, "operator", "an operator id (empty: the platform's own keys)");
    }
    if (cls && sr_key_class_parse(cls) < SR_KC_DATA) {
        json_decref(body);
        return sr_admin_bad_field(c, "class", "one of data, audit, config");
    }
    rot *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(body);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    /* no operator: the platform's own key, or an operator admin's own */
    snprintf(r->op, sizeof r->op, "%s", op ? op : caller_op(c));
    snprintf(r->cls, sizeof r->cls, "%s", cls ? cls : "data");
    json_decref(body);
    int s = keys_scope(c, r->op);
    if (s < 0) return free(r);
    r->platform = s;
    sr_admin_run(c, rotate_work, r, free);
}

/* The two-person rule (docs/admin.md): a pending change that a second
 * platform admin approves; the approval re-wraps the keyring under the
 * server's [keys] master_next (engine/keys.c), never a key of the request. */
static void master_work(sr_admin_work *w, void *v)
{
    (void)v;
    if (!sr_engine_master_key_id(w->eng)) return no_keyring(w);
    sr_cmd_env env = sr_admin_work_env(w, "");
    sr_key_rec k = {.action = "master-rotate"};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_key_ev(&env, &k, &b);
    (void)sr_admin_privileged(w, SR_US_PLATFORM, "", SR_ACT_TENANTS_MANAGE,
                              "re-wrap the keyring under the server's [keys] master_next (the master key rotation)", rc,
                              &b);
}

static void keys_master(const sr_route_call *c) { sr_admin_run(c, master_work, NULL, NULL); }

static void export_work(sr_admin_work *w, void *v)
{
    (void)v;
    sr_cmd_env env = sr_admin_work_env(w, "");
    int rc = sr_engine_key_export(w->eng, &env, &w->body);
    if (rc == SR_ENOTFOUND) return no_keyring(w);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "key export: %s", sr_strerror(rc));
        return;
    }
    w->content_type = "application/octet-stream";
}

static void keys_export(const sr_route_call *c) { sr_admin_run(c, export_work, NULL, NULL); }

/* POST /admin/v1/cluster/keys/{keyId}/erase (issue #19 ckey, docs/keys.md
 * "Cluster: stream keys"): a platform admin erases a stream key of the
 * cluster; the intent, the tombstone and the result (StreamKeyErase events,
 * sr_cluster_erase_key) on the worker queue (NATS calls block). */
typedef struct erase_ctx {
    uint64_t id;
} erase_ctx;

static void erase_work(sr_admin_work *w, void *v)
{
    erase_ctx *x = v;
    sr_skey_erase_out o;
    char err[512] = "";
    int rc = sr_cluster_erase_key(sr_cluster_self(), w->caller.user, w->caller.source, x->id, &o, err, sizeof err);
    if (rc && !o.outcome[0]) { /* nothing recorded: no cluster, no key_file, NATS or the log unavailable */
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", err[0] ? err : sr_strerror(rc));
        return;
    }
    if (rc && strcmp(o.outcome, "failed")) { /* refused, recorded */
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", err[0] ? err : sr_strerror(rc));
        return;
    }
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, x->id);
    int64_t from, to;
    sr_skey_epoch_range(o.info.cls, o.info.epoch, o.info.period_days, &from, &to);
    w->answer = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I}", "keyId", id, "outcome", o.outcome, "operator",
                          o.info.op, "class", o.info.cls == SR_KC_DATA ? "data" : "audit", "epoch", (int)o.info.epoch,
                          "from", (json_int_t)from, "to", (json_int_t)to, "intentSeq", (json_int_t)o.intent_seq,
                          "resultSeq", (json_int_t)o.result_seq);
    if (rc) { /* failed: the bucket refused the tombstone (recorded) */
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", err[0] ? err : sr_strerror(rc));
        json_decref(w->answer);
        w->answer = NULL;
    }
}

static void cluster_key_erase(const sr_route_call *c)
{
    const char *p = sr_route_param(c, "keyId");
    char *end = NULL;
    uint64_t id = p && strlen(p) == 16 ? strtoull(p, &end, 16) : 0;
    if (!id || !end || *end)
        return sr_http_result(c->req, 0, SR_WIRE_PARAM,
                              "keyId: a stream key's id, 16 hex digits (suiro cluster keys)", NULL);
    erase_ctx *x = calloc(1, sizeof *x);
    if (!x) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    x->id = id;
    sr_admin_run(c, erase_work, x, free);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_keys_routes[] = {
    {"GET", "/admin/v1/keys", keys_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},           /* keys_scope */
    {"POST", "/admin/v1/keys/rotate", keys_rotate, SR_CALLER_ADMIN, SR_BODY_SMALL, 0, SR_FWD_NONE},    /* keys_scope */
    {"GET", "/admin/v1/keys/export", keys_export, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"POST", "/admin/v1/keys/master", keys_master, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"POST", "/admin/v1/cluster/keys/{keyId}/erase", cluster_key_erase, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(TENANTS_MANAGE), SR_FWD_NONE},
};
const size_t sr_admin_keys_nroutes = sizeof sr_admin_keys_routes / sizeof sr_admin_keys_routes[0];
