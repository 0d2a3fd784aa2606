/* api/admin_backup.c -- /admin/v1/backups (docs/admin.md, docs/backup.md):
 * take a backup of the served data directory into the server's [backup]
 * directory, and list that directory's backups. Platform admins only
 * (tenants.manage on the platform). Both run on the worker queue (a backup
 * copies the data directory; a list reads every manifest). The engine's
 * side is engine/backup.h; the server's schedule calls the same function
 * (api/server.c). Its route table is sr_admin_backup_routes (admin_int.h). */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "codecs/rfc3339.h"
#include "engine/backup.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* path made absolute and canonical (realpath; for a directory not made
 * yet, its parent's realpath and its name): 0, or -1 */
static int canon(const char *path, char *out)
{
    if (realpath(path, out)) return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    const char *name = slash ? slash + 1 : tmp;
    char parent[PATH_MAX];
    if (slash == tmp) snprintf(parent, sizeof parent, "/");
    else if (slash) {
        *slash = 0;
        if (!realpath(tmp, parent)) return -1;
    } else if (!realpath(".", parent))
        return -1;
    size_t pl = strcmp(parent, "/") ? strlen(parent) : 0, nl = strlen(name);
    if (!nl || pl + nl + 2 > PATH_MAX) return -1;
    memcpy(out, parent, pl);
    out[pl] = '/';
    memcpy(out + pl + 1, name, nl + 1);
    return 0;
}

typedef struct bctx {
    char dir[1024];      /* the [backup] directory */
    char key[1100];      /* the platform key (DATA_DIR/platform-key.pem) */
    unsigned keep;
} bctx;

/* The [backup] directory, or NULL after answering 409: none configured. */
static bctx *ctx_of(const sr_route_call *c)
{
    const sr_admin_conf *cf = sr_admin_conf_of(c);
    if (!cf->backup_dir || !cf->backup_dir[0]) {
        sr_admin_audit_refused(c, SR_WIRE_CONFLICT, "no [backup] directory is configured on this server");
        sr_http_result(c->req, 0, SR_WIRE_CONFLICT,
                       "no [backup] directory is configured on this server (docs/configuration.md)", NULL);
        return NULL;
    }
    bctx *x = calloc(1, sizeof *x);
    if (!x) {
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    snprintf(x->dir, sizeof x->dir, "%s", cf->backup_dir);
    snprintf(x->key, sizeof x->key, "%s/platform-key.pem", cf->data_dir ? cf->data_dir : ".");
    x->keep = cf->backup_keep;
    return x;
}

static json_t *info_json(const sr_backup_info *b)
{
    char tip[65], created[40] = "";
    sr_hex(b->tip, 32, tip);
    sr_rfc3339_format(b->created_ms, created);
    return json_pack("{s:s,s:I,s:s,s:s,s:I,s:i,s:i,s:i,s:s,s:b}", "name", b->name, "seq", (json_int_t)b->seq, "tip",
                     tip, "created", created, "bytes", (json_int_t)b->bytes, "files", (int)b->files, "copied",
                     (int)b->files_copied, "linked", (int)b->files_linked, "base", b->base, "verified", b->verified);
}

static void take_work(sr_admin_work *w, void *v)
{
    bctx *x = v;
    sr_backup_opts bo = {.platform_key = x->key, .actor = w->caller.user, .actor_kind = SR_ACTOR_USER,
                         .source = w->caller.source};
    sr_backup_info b;
    sr_errinfo ei;
    int rc = sr_engine_backup(w->eng, x->dir, &bo, &b, &ei);
    if (rc) {
        w->code = rc == SR_EEXIST || rc == SR_EKEY ? SR_WIRE_CONFLICT : sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "backup: %s", ei.msg[0] ? ei.msg : sr_strerror(rc));
        return;
    }
    b.verified = 1;
    unsigned removed = 0;
    if (x->keep && sr_backup_prune(x->dir, x->key, x->keep, &removed, &ei))
        snprintf(w->msg, sizeof w->msg, "%s", ei.msg); /* the backup stands; the prune is retried next time */
    w->answer = info_json(&b);
    json_object_set_new(w->answer, "pruned", json_integer(removed));
}

static void backups_take(const sr_route_call *c)
{
    bctx *x = ctx_of(c);
    if (!x) return;
    /* a destination, if given (suiro backup DIR DEST on a served DIR), must
     * be the [backup] directory: the API writes nowhere else */
    if (c->req->entity.len) {
        json_t *body = sr_admin_body(c);
        if (!body) return free(x);
        const char *dest = json_string_value(json_object_get(body, "dest"));
        char a[PATH_MAX], b[PATH_MAX];
        int same = dest && dest[0] == '/' && !canon(dest, a) && !canon(x->dir, b) && !strcmp(a, b);
        if (json_object_get(body, "dest") && !same) {
            json_decref(body);
            free(x);
            return sr_admin_bad_field(c, "dest", "not this server's [backup] directory");
        }
        json_decref(body);
    }
    sr_admin_run(c, take_work, x, free);
}

static void list_work(sr_admin_work *w, void *v)
{
    bctx *x = v;
    sr_backup_info *b;
    size_t n;
    sr_errinfo ei;
    int rc = sr_backup_list(x->dir, x->key, &b, &n, &ei);
    if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "backups: %s", ei.msg);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, info_json(&b[i]));
    sr_free(b);
    w->answer = json_pack("{s:s,s:o}", "directory", x->dir, "backups", arr);
}

static void backups_list(const sr_route_call *c)
{
    bctx *x = ctx_of(c);
    if (x) sr_admin_run(c, list_work, x, free);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_backup_routes[] = {
    {"POST", "/admin/v1/backups", backups_take, SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(TENANTS_MANAGE), SR_FWD_NONE},
    {"GET", "/admin/v1/backups", backups_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(TENANTS_MANAGE), SR_FWD_NONE},
};
const size_t sr_admin_backup_nroutes = sizeof sr_admin_backup_routes / sizeof sr_admin_backup_routes[0];
