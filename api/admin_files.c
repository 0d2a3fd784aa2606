/*
 * api/admin_files.c -- /admin/v1: who may see documents and files (R-PO-2,
 * docs/admin.md "Documents and files") and an operator's data (vendor
 * grants, R-ID-1): apps' grants on document
 * collections and file path prefixes, and the operator's files for its
 * users with their share lists (the portal's file sharing, 001 §2.1).
 * Its route table is sr_admin_files_routes (api/admin_int.h); the
 * dispatcher (api/admin_http.c) authorizes each row's action against the
 * operator the path names before a handler runs.
 *
 * GRANTS     /operators/{operatorId}/document-grants[/{appId}/{collection}]
 *            and /operators/{operatorId}/file-grants[/{appId}/{path}]:
 *            list (setup.read), put with {"access"} and delete
 *            (setup.manage). A put that widens an app's reach (a new grant,
 *            or more access than the stored one) is a privilege change
 *            (R-ID-5, sr_admin_privileged); narrowing and removal apply at
 *            once. A grant is the registry's RG_GRANT with
 *            grant_kind "documents" or "files", id app ":" kind ":" target
 *            -- the set-up sheet's [storegrants] rows are the same entries.
 * FILES      /operators/{operatorId}/files[/{path}] (data.read): the files
 *            the calling user may see, and the download of one. A user
 *            who manages the operator's set-up (setup.manage: the
 *            operator admin) sees every file of the operator; any other
 *            user of the operator sees the files it owns and those shared
 *            with it. Others are answered as unknown (404 E3001), so a
 *            user learns nothing of files it may not see.
 *            A vendor user whose vendor the operator grants access (the
 *            dispatcher's caller->vendor_granted) sees every file, as the
 *            operator admin, and changes none.
 *            PUT /operators/{operatorId}/files/{path} (data.write): a
 *            user's own file (one request, at most [http] max_body), owned
 *            by the user; replacing another's file needs setup.manage.
 * SHARES     /operators/{operatorId}/shares/{path}: a file's share list,
 *            read (data.read, a file the user may see), replaced with
 *            {"users":[...]} or emptied (data.write: the file's owner if a
 *            user, or a setup.manage holder; others 403 E2003). The users must be
 *            users of the operator (the engine checks, naming the entry).
 *            Not .../files/{path}/shares: a route's {path} is its last part.
 *
 * VENDOR GRANTS /operators/{operatorId}/vendor-grants[/{vendorId}]: list
 *            (setup.read), put {"access":"read"} and delete (setup.manage):
 *            the operator opens its data (data.read) to a registered vendor's
 *            users (registry RG_VENDOR_GRANT, id the vendor). A new grant is
 *            a privilege change (sr_admin_privileged); a revocation applies
 *            at once, and the dispatcher reads the grant on every request.
 *
 * Every change is one event (RegistryPut/RegistryDelete, FileShare) with
 * the caller as the actor and its address as the source, answered once
 * durable (sr_admin_submit); bad input is 400 E1001 naming the field and
 * stores nothing.
 */
#include "api/admin_int.h"

#include "api/apif_int.h"
#include "codecs/ids.h"

#include "storage/blobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const sr_admin_caller *caller_of(const sr_route_call *c) { return c->caller; }

/* 1 if one of the caller's roles allows act on operator op (no answer). */
static int caller_may(const sr_admin_caller *cl, sr_authz_action act, const char *op)
{
    sr_authz_target t = {.operator_id = op};
    for (size_t i = 0; i < cl->nroles; i++) {
        sr_principal p = {cl->roles[i], cl->scope, cl->scope_id};
        if (sr_authz_allows(&p, act, &t)) return 1;
    }
    return 0;
}

/* 1 if the caller may see the file: a set-up manager of its operator, its
 * owner, or a user it is shared with. */
static int may_see(const sr_admin_caller *cl, const char *op, const sr_file_meta *f)
{
    if (caller_may(cl, SR_ACT_SETUP_MANAGE, op)) return 1;
    if (cl->vendor_granted) return 1; /* the operator grants the caller's vendor data.read */
    if (sr_store_is_owner(f->owner_kind, f->owner, SR_ACTOR_USER, cl->user)) return 1;
    for (size_t i = 0; i < f->n_shared_with; i++)
        if (!strcmp(f->shared_with[i], cl->user)) return 1;
    return 0;
}

static json_t *share_json(const sr_file_meta *f)
{
    json_t *users = json_array();
    for (size_t i = 0; i < f->n_shared_with; i++) json_array_append_new(users, json_string(f->shared_with[i]));
    const char *kind = f->owner_kind == SR_ACTOR_USER ? "user" : f->owner[0] ? "app" : "operator";
    return json_pack("{s:s,s:s,s:s,s:o}", "path", f->path, "owner", f->owner, "ownerKind", kind, "sharedWith", users);
}

/* ---- grants ------------------------------------------------------------------ */

static sr_store_kind kind_of(const sr_route_call *c)
{
    return strstr(c->route->path, "/file-grants")         ? SR_STORE_FILES
           : strstr(c->route->path, "/correction-grants") ? SR_STORE_CORRECTIONS
           : strstr(c->route->path, "/alarm-grants")      ? SR_STORE_ALARMS
           : strstr(c->route->path, "/alive-grants")      ? SR_STORE_ALIVE
                                                          : SR_STORE_DOCUMENTS;
}

/* the grant's target's name in paths and answers */
static const char *target_field(sr_store_kind k)
{
    return k == SR_STORE_FILES          ? "path"
           : k == SR_STORE_CORRECTIONS ? "dataId"
           : k == SR_STORE_ALARMS      ? "rule"
           : k == SR_STORE_ALIVE       ? "pattern"
                                       : "collection";
}

/* A registry list's answer: 200 {"items": items}, or rc's error (an empty
 * list is SR_ENOTFOUND, not an error); items is consumed. */
static void answer_items(const sr_route_call *c, int rc, json_t *items)
{
    if (rc && rc != SR_ENOTFOUND) {
        json_decref(items);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* GET .../document-grants, .../file-grants, .../correction-grants */
static void grants_list(const sr_route_call *c)
{
    sr_engine *e = sr_admin_engine(c);
    const char *op = sr_route_param(c, "operatorId");
    sr_store_kind k = kind_of(c);
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(e, op, SR_RG_GRANT, &r);
    json_t *items = json_array();
    sr_reg_entry g;
    sr_store_kind gk;
    for (int got; !rc && (got = sr_rec_next_registry(&r, &g)) != 0;) {
        if (got < 0) {
            rc = got;
            break;
        }
        if (!sr_store_kind_parse(g.grant_kind, &gk) || gk != k) continue;
        json_array_append_new(items, json_pack("{s:s,s:s,s:s}", "appId", g.app_id, target_field(k), g.pattern, "access",
                                               g.access));
    }
    sr_rec_close(&r);
    answer_items(c, rc, items);
}

/* The grant a PUT or DELETE names: app, target and its registry id; 0, or
 * -1 when answered (400 naming the field). */
static int grant_target(const sr_route_call *c, sr_store_kind k, const char **app, const char **target, char *id,
                        size_t idl)
{
    const char *field = target_field(k);
    *app = sr_route_param(c, "appId");
    *target = sr_route_param(c, field);
    if (!*app || !sr_id_str_ok(*app)) {
        sr_admin_bad_field(c, "appId", "an app id ([A-Za-z0-9._-]{1,64})");
        return -1;
    }
    if (!*target || !sr_store_pattern_ok(k == SR_STORE_FILES, *target)) {
        sr_admin_bad_field(c, field,
                           k == SR_STORE_FILES
                               ? "a path prefix (segments of [A-Za-z0-9._-] separated by '/', at most 256 bytes), "
                                 "optionally ending in '*', or '*'"
                           : k == SR_STORE_CORRECTIONS
                               ? "a data point's id ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'"
                           : k == SR_STORE_ALARMS
                               ? "an alarm rule's name ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'"
                           : k == SR_STORE_ALIVE
                               ? "a gateway's id ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'"
                               : "a collection ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'");
        return -1;
    }
    snprintf(id, idl, "%s:%s:%s", *app, sr_store_kind_name(k), *target);
    return 0;
}

/* A grant put, on the worker queue: a grant that widens what the app may
 * reach (new, or more access bits than the stored one) is a privilege
 * change (R-ID-5: sr_admin_privileged); one that narrows it or keeps it is
 * applied at once. */
typedef struct gput {
    sr_store_kind kind;
    int access;
    char op[72], app[72], target[SR_STORE_PREFIX_MAX + 4], id[SR_ID_MAX + 16 + SR_STORE_PREFIX_MAX + 4];
} gput;

static void gput_work(sr_admin_work *w, void *ctx)
{
    gput *g = ctx;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry old;
    int had = sr_read_registry(w->eng, g->op, SR_RG_GRANT, g->id, &r, &old) == SR_OK ? sr_store_access_parse(old.access)
                                                                                     : 0;
    sr_rec_close(&r);
    sr_reg_entry e = {.kind = SR_RG_GRANT,
                      .id = g->id,
                      .app_id = g->app,
                      .pattern = g->target,
                      .access = sr_store_access_name(g->access),
                      .grant_kind = sr_store_kind_name(g->kind)};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_work_env(w, g->op);
    int rc = sr_cmd_registry_put(&env, &e, &b);
    if (g->access & ~had) {
        char summary[SR_STORE_PREFIX_MAX + 160];
        snprintf(summary, sizeof summary, "grant app %s %s access on %s %s", g->app, e.access,
                 g->kind == SR_STORE_FILES         ? "files under"
                 : g->kind == SR_STORE_CORRECTIONS ? "corrections of data points"
                 : g->kind == SR_STORE_ALARMS      ? "the operator's alarms of rules"
                 : g->kind == SR_STORE_ALIVE       ? "the alive status of gateways"
                                                   : "documents of collection",
                 g->target);
        rc = sr_admin_privileged(w, SR_US_OPERATOR, g->op, SR_ACT_SETUP_MANAGE, summary, rc, &b);
        if (rc) return; /* answered (pending), or refused in w */
    } else if (sr_admin_work_submit(w, rc, &b))
        return;
    w->status = 200;
    w->answer = json_pack("{s:s,s:s,s:s}", "appId", g->app, target_field(g->kind), g->target, "access", e.access);
}

/* PUT .../document-grants/{appId}/{collection}, .../file-grants/{appId}/{path}
 * {"access": "read" | "write" | "read+write"} -> 200 the grant */
static void grant_put(const sr_route_call *c)
{
    sr_store_kind k = kind_of(c);
    const char *app, *target;
    char id[SR_ID_MAX + 16 + SR_STORE_PREFIX_MAX + 4];
    if (grant_target(c, k, &app, &target, id, sizeof id)) return;
    json_t *body = sr_admin_body(c);
    if (!body) return;
    int bits = sr_store_access_parse(json_string_value(json_object_get(body, "access")));
    json_decref(body);
    if (!bits) return sr_admin_bad_field(c, "access", "read, write or read+write");
    gput *g = calloc(1, sizeof *g);
    if (!g) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    g->kind = k;
    g->access = bits;
    snprintf(g->op, sizeof g->op, "%s", sr_route_param(c, "operatorId"));
    snprintf(g->app, sizeof g->app, "%s", app);
    snprintf(g->target, sizeof g->target, "%s", target);
    snprintf(g->id, sizeof g->id, "%s", id);
    sr_admin_run(c, gput_work, g, free);
}

/* Delete operator op's registry entry (kind, id): 204 once durable, 404
 * E3001 with unknown when there is none (a grant's and a vendor grant's
 * DELETE). */
void sr_admin_entry_delete(const sr_route_call *c, const char *op, sr_reg_kind kind, const char *id,
                           const char *unknown)
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry g;
    int rc = sr_read_registry(sr_admin_engine(c), op, kind, id, &r, &g);
    sr_rec_close(&r);
    if (rc == SR_ENOTFOUND) return sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, unknown, NULL);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, op);
    sr_admin_submit(c, sr_cmd_registry_delete(&env, kind, id, &b), &b, 204, NULL);
}

/* DELETE .../document-grants/{appId}/{collection}, .../file-grants/{appId}/{path} -> 204 */
static void grant_delete(const sr_route_call *c)
{
    sr_store_kind k = kind_of(c);
    const char *op = sr_route_param(c, "operatorId"), *app, *target;
    char id[SR_ID_MAX + 16 + SR_STORE_PREFIX_MAX + 4];
    if (grant_target(c, k, &app, &target, id, sizeof id)) return;
    sr_admin_entry_delete(c, op, SR_RG_GRANT, id, "no such grant");
}

/* ---- vendor grants ------------------------------------------------------------- */

/* GET .../vendor-grants -> 200 {"items":[{"vendorId","access"}]} */
static void vgrants_list(const sr_route_call *c)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(sr_admin_engine(c), sr_route_param(c, "operatorId"), SR_RG_VENDOR_GRANT, &r);
    json_t *items = json_array();
    sr_reg_entry g;
    for (int got; !rc && (got = sr_rec_next_registry(&r, &g)) != 0;) {
        if (got < 0) {
            rc = got;
            break;
        }
        json_array_append_new(items, json_pack("{s:s,s:s}", "vendorId", g.vendor_id, "access", g.access));
    }
    sr_rec_close(&r);
    answer_items(c, rc, items);
}

/* A vendor grant put, on the worker queue: a new grant widens what the
 * vendor's users reach (R-ID-5: sr_admin_privileged); the same grant again
 * is answered as it is. The engine checks that the vendor is registered. */
typedef struct vgput {
    char op[72], vendor[72];
} vgput;

static void vgput_work(sr_admin_work *w, void *ctx)
{
    vgput *g = ctx;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry old;
    int had = sr_read_registry(w->eng, g->op, SR_RG_VENDOR_GRANT, g->vendor, &r, &old) == SR_OK;
    sr_rec_close(&r);
    if (!had) {
        int known = sr_read_registry(w->eng, "", SR_RG_VENDOR, g->vendor, &r, &old) == SR_OK;
        sr_rec_close(&r);
        if (!known) {
            w->status = 404;
            w->code = SR_WIRE_UNKNOWN;
            snprintf(w->msg, sizeof w->msg, "vendor %s is not a registered vendor", g->vendor);
            return;
        }
        sr_reg_entry e = {.kind = SR_RG_VENDOR_GRANT, .id = g->vendor, .vendor_id = g->vendor, .access = "read"};
        sr_buf b;
        sr_buf_init(&b);
        sr_cmd_env env = sr_admin_work_env(w, g->op);
        int rc = sr_cmd_registry_put(&env, &e, &b);
        char summary[200];
        snprintf(summary, sizeof summary, "grant vendor %s read access to the data of operator %s", g->vendor, g->op);
        if (sr_admin_privileged(w, SR_US_OPERATOR, g->op, SR_ACT_SETUP_MANAGE, summary, rc, &b)) return;
    }
    w->status = 200;
    w->answer = json_pack("{s:s,s:s}", "vendorId", g->vendor, "access", "read");
}

/* PUT .../vendor-grants/{vendorId} {"access": "read"} -> 200 the grant (202 pending) */
static void vgrant_put(const sr_route_call *c)
{
    const char *vendor = sr_route_param(c, "vendorId");
    if (!vendor || !sr_id_str_ok(vendor)) return sr_admin_bad_field(c, "vendorId", "a vendor id ([A-Za-z0-9._-]{1,64})");
    json_t *body = sr_admin_body(c);
    if (!body) return;
    const char *acc = json_string_value(json_object_get(body, "access"));
    int ok = acc && !strcmp(acc, "read");
    json_decref(body);
    if (!ok) return sr_admin_bad_field(c, "access", "read (a vendor's users read the operator's data)");
    vgput *g = calloc(1, sizeof *g);
    if (!g) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    snprintf(g->op, sizeof g->op, "%s", sr_route_param(c, "operatorId"));
    snprintf(g->vendor, sizeof g->vendor, "%s", vendor);
    sr_admin_run(c, vgput_work, g, free);
}

/* DELETE .../vendor-grants/{vendorId} -> 204; the vendor's users are refused
 * at their next request */
static void vgrant_delete(const sr_route_call *c)
{
    sr_admin_entry_delete(c, sr_route_param(c, "operatorId"), SR_RG_VENDOR_GRANT, sr_route_param(c, "vendorId"),
                 "no such vendor grant");
}

/* ---- files ------------------------------------------------------------------- */

/* the list (at most 1,000 files) is read on the worker queue */
typedef struct flist {
    char op[72], prefix[SR_PATH_MAX + 1];
} flist;

static void flist_work(sr_admin_work *w, void *ctx)
{
    flist *q = ctx;
    sr_rec r = SR_REC_INIT;
    int more = 0;
    int rc = sr_list_files(w->eng, q->op, q->prefix, 1000, &r, &more);
    if (rc) {
        sr_rec_close(&r);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", sr_wire_msg_of_rc(rc));
        return;
    }
    json_t *items = json_array();
    sr_file_meta f;
    for (int k; (k = sr_rec_next_file(&r, &f)) != 0;) {
        if (k == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
        if (k < 0) break;
        if (!may_see(&w->caller, q->op, &f)) continue;
        json_t *o = sr_apif_file_json(&f);
        json_object_update_new(o, share_json(&f));
        json_array_append_new(items, o);
    }
    sr_rec_close(&r);
    w->answer = json_pack("{s:o,s:b}", "items", items, "truncated", more);
    w->status = 200;
}

/* GET .../files?prefix= */
static void files_list(const sr_route_call *c)
{
    flist *q = calloc(1, sizeof *q);
    if (!q) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    snprintf(q->op, sizeof q->op, "%s", sr_route_param(c, "operatorId"));
    if (sr_http_query(c->req, "prefix", q->prefix, sizeof q->prefix) && q->prefix[0] &&
        !sr_store_pattern_ok(1, q->prefix)) {
        free(q);
        return sr_admin_bad_field(c, "prefix", "a path prefix (segments of [A-Za-z0-9._-] separated by '/')");
    }
    sr_admin_run(c, flist_work, q, free);
}

/* A files or shares route's {path}, the file's metadata, and whether the
 * caller may see it: 0, or -1 when answered (400, 404, 500). */
static int visible_file(const sr_route_call *c, sr_rec *m, sr_file_meta *f)
{
    const char *op = sr_route_param(c, "operatorId"), *path = sr_route_param(c, "path");
    if (!path || !sr_path_ok(path, strlen(path))) {
        sr_admin_bad_field(c, "path",
                           "segments of [A-Za-z0-9._-] separated by '/', no '.' or '..', at most 512 bytes");
        return -1;
    }
    if (sr_apif_file_meta(sr_admin_engine(c), c->req, op, path, m, f)) return -1;
    if (!may_see(caller_of(c), op, f)) {
        sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "unknown file", NULL);
        return -1;
    }
    return 0;
}

/* GET .../files/{path}: the bytes, streamed and verified */
static void file_get(const sr_route_call *c)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    if (!visible_file(c, &m, &f)) sr_apif_file_send(sr_admin_engine(c), c->req, &f, f.path);
    sr_rec_close(&m);
}

/* PUT .../files/{path}: a user's file (its bytes the body, at most [http]
 * max_body), owned by the user; over an existing file only its owner (a
 * user) or a set-up manager. The bytes are written and made durable on the
 * worker queue, then the FilePut, durable before the 201. */
typedef struct fput {
    char op[72], path[SR_PATH_MAX + 1], ctype[128];
    uint8_t *data;
    size_t len;
} fput;

static void fput_free(void *ctx)
{
    fput *p = ctx;
    free(p->data);
    free(p);
}

static void fput_work(sr_admin_work *w, void *ctx)
{
    fput *p = ctx;
    sr_blob_writer *bw = NULL;
    uint8_t sha[32];
    uint64_t size = 0;
    sr_cmd_env env = sr_admin_work_env(w, p->op);
    uint32_t kid = 0; /* the operator's data key (docs/blob-format.md version 2) */
    int rc = sr_engine_file_key(w->eng, &env, &kid);
    if (!rc) rc = sr_blob_writer_begin_keyed(sr_engine_blobs(w->eng), kid, &bw);
    if (!rc && p->len) rc = sr_blob_writer_write(bw, p->data, p->len);
    if (!rc) {
        rc = sr_blob_writer_commit(bw, sha, &size);
        bw = NULL; /* consumed */
    }
    if (bw) sr_blob_writer_abort(bw);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "the file's bytes: %s", sr_wire_msg_of_rc(rc));
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sr_file_meta fm = {.path = p->path,
                       .sha256 = {sha, 32},
                       .size = size,
                       .content_type = p->ctype,
                       .updated_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                       .key_id = kid};
    sr_buf b;
    sr_buf_init(&b);
    if (sr_admin_work_submit_cluster(w, sr_cmd_file_put(&env, &fm, &b), &b)) return; /* bytes in NATS too */
    char hex[65];
    sr_hex(sha, 32, hex);
    w->status = 201;
    w->answer = json_pack("{s:s,s:I,s:s}", "path", p->path, "size", (json_int_t)size, "sha256", hex);
}

static void file_put(const sr_route_call *c)
{
    const sr_admin_caller *cl = caller_of(c);
    const char *op = sr_route_param(c, "operatorId"), *path = sr_route_param(c, "path");
    if (!path || !sr_path_ok(path, strlen(path)))
        return sr_admin_bad_field(c, "path", "segments of [A-Za-z0-9._-] separated by '/', no '.' or '..', at most 512 "
                                             "bytes");
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    int rc = sr_read_file(sr_admin_engine(c), op, path, &m, &f);
    int mine = rc == SR_OK && sr_store_is_owner(f.owner_kind, f.owner, SR_ACTOR_USER, cl->user);
    sr_rec_close(&m);
    if (rc && rc != SR_ENOTFOUND) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    if (rc == SR_OK && !mine) {
        sr_authz_target t = {.operator_id = op};
        /* another's file: a set-up manager only (else 403 naming the action, audited) */
        if (!sr_admin_authorize(c, SR_ACT_SETUP_MANAGE, &t)) return;
    }
    fput *p = calloc(1, sizeof *p);
    if (!p || (c->req->entity.len && !(p->data = malloc(c->req->entity.len)))) {
        free(p);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    if (c->req->entity.len) memcpy(p->data, c->req->entity.base, c->req->entity.len);
    p->len = c->req->entity.len;
    snprintf(p->op, sizeof p->op, "%s", op);
    snprintf(p->path, sizeof p->path, "%s", path);
    ssize_t ci = h2o_find_header(&c->req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ci >= 0) {
        h2o_iovec_t cv = c->req->headers.entries[ci].value;
        snprintf(p->ctype, sizeof p->ctype, "%.*s", (int)(cv.len < sizeof p->ctype ? cv.len : sizeof p->ctype - 1),
                 cv.base);
    } else
        snprintf(p->ctype, sizeof p->ctype, "application/octet-stream");
    sr_admin_run(c, fput_work, p, fput_free);
}

/* GET .../shares/{path} */
static void shares_get(const sr_route_call *c)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    if (!visible_file(c, &m, &f)) {
        json_t *o = share_json(&f);
        sr_http_jsonv(c->req, 200, o);
        json_decref(o);
    }
    sr_rec_close(&m);
}

/* PUT .../shares/{path} {"users":[...]} -> 200 the list; DELETE -> 204 */
static void shares_set(const sr_route_call *c)
{
    enum { USERS_MAX = 100 };
    const sr_admin_caller *cl = caller_of(c);
    const char *op = sr_route_param(c, "operatorId");
    int del = !strcmp(c->route->method, "DELETE");
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    if (visible_file(c, &m, &f)) return sr_rec_close(&m);
    int may = caller_may(cl, SR_ACT_SETUP_MANAGE, op) || sr_store_is_owner(f.owner_kind, f.owner, SR_ACTOR_USER, cl->user);
    char path[SR_PATH_MAX + 1];
    snprintf(path, sizeof path, "%s", f.path);
    sr_rec_close(&m);
    if (!may) {
        sr_authz_target t = {.operator_id = op};
        /* answers 403 naming the action and audits it (the owner may too) */
        if (!sr_admin_authorize(c, SR_ACT_SETUP_MANAGE, &t)) return;
    }
    json_t *body = NULL, *users = NULL;
    const char *list[USERS_MAX];
    size_t n = 0;
    if (!del) {
        if (!(body = sr_admin_body(c))) return;
        users = json_object_get(body, "users");
        if (!json_is_array(users) || json_array_size(users) > USERS_MAX) {
            json_decref(body);
            return sr_admin_bad_field(c, "users", "an array of at most 100 user ids");
        }
        for (n = 0; n < json_array_size(users); n++) {
            list[n] = json_string_value(json_array_get(users, n));
            if (!list[n] || !sr_id_str_ok(list[n])) {
                json_decref(body);
                char field[32];
                snprintf(field, sizeof field, "users[%zu]", n);
                return sr_admin_bad_field(c, field, "a user id ([A-Za-z0-9._-]{1,64})");
            }
        }
    }
    json_t *answer = del ? NULL : json_pack("{s:s,s:O}", "path", path, "sharedWith", users);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, op);
    sr_admin_submit(c, sr_cmd_file_share(&env, path, list, n, &b), &b, del ? 204 : 200, answer);
    json_decref(body);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_files_routes[] = {
    {"GET", "/admin/v1/operators/{operatorId}/document-grants", grants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/document-grants/{appId}/{collection}", grant_put, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/document-grants/{appId}/{collection}", grant_delete,
     SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/file-grants", grants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/file-grants/{appId}/{path}", grant_put, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/file-grants/{appId}/{path}", grant_delete, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/correction-grants", grants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/correction-grants/{appId}/{dataId}", grant_put, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/correction-grants/{appId}/{dataId}", grant_delete, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/alarm-grants", grants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/alarm-grants/{appId}/{rule}", grant_put, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/alarm-grants/{appId}/{rule}", grant_delete, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    /* the alive status of gateways for apps (issue #17, R-MO-1, docs/monitoring.md) */
    {"GET", "/admin/v1/operators/{operatorId}/alive-grants", grants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/alive-grants/{appId}/{pattern}", grant_put, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/alive-grants/{appId}/{pattern}", grant_delete, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/files", files_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(DATA_READ), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/files/{path}", file_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(DATA_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/files/{path}", file_put, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(DATA_WRITE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/shares/{path}", shares_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(DATA_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/shares/{path}", shares_set, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(DATA_WRITE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/shares/{path}", shares_set, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(DATA_WRITE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/vendor-grants", vgrants_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/vendor-grants/{vendorId}", vgrant_put, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/vendor-grants/{vendorId}", vgrant_delete, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
};
const size_t sr_admin_files_nroutes = sizeof sr_admin_files_routes / sizeof sr_admin_files_routes[0];
