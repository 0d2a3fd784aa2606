/*
 * api/admin_setup.c -- an operator's set-up online (issue #14, R-MA-1..3):
 * the set-up sheet (import, export), masters, gateways, apps, their
 * secrets, certificates and push URLs, grants -- on the running server,
 * under /admin/v1/operators/{operatorId}/... (docs/admin.md "Routes").
 *
 * CONTRACT
 *  - Each row's action (sr_route.action) is checked by the dispatcher
 *    (api/admin_http.c) against the operator the path names and, for a
 *    path with {appId} or {gatewayId}, that app's or gateway's vendor, so a
 *    vendor admin reaches its own vendor's registrations (apps.register,
 *    gateways.register) and nothing else here.
 *  - Every change is one engine command, all-or-nothing, answered once it is
 *    durable: a sheet import is sr_engine_import_sheet_as (the CLI's import,
 *    with the user as actor and the peer as source); one entry's change is
 *    sr_engine_setup_edit (engine/sheet.h): the operator's sheet with that
 *    entry changed, checked by the sheet's own parser (the same validation
 *    as a sheet row and its references, not a copy of it) and imported; a
 *    certificate, a new secret or disable/enable is sr_engine_registry_change
 *    (what `suiro cert import` does). Both run on the worker queue
 *    (sr_admin_run: scrypt and the import wait), never on the loop.
 *  - Bad input is 400 E1001 naming the field (detail.field; a sheet's lines
 *    in detail.errors) and stores nothing; an unknown operator, app,
 *    gateway, master or grant is 404 E3001; a change that would leave a
 *    stored entry pointing at nothing is 409 E3002 naming it.
 *  - JSON fields are the sheet's column names (docs/setup-sheet.md), but
 *    push_url is "pushUrl", a grant's datapoint "dataId"; an app's or a
 *    gateway's vendor link is "vendorId".
 *  - A privilege change (an app's grants widened by a grants PUT or a sheet
 *    import, an app or a gateway enabled: R-ID-5; a sheet whose [retention]
 *    shortens the audit period below [retention] audit_floor_days: issue
 *    #16, the engine tells the hook) goes through
 *    setup_privileged(), the one place the two-person rule takes over: in
 *    work(), under the set-up mutex (the engine's hook), with the change's
 *    built events.
 */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/apif_int.h"
#include "codecs/sheet.h"
#include "engine/sheet.h"
#include "storage/crypto.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the context of one change ------------------------------------------------ */

typedef struct sctx {
    sr_engine *e;
    char op[SR_ROUTE_PARAM_MAX], id[SR_ROUTE_PARAM_MAX], id2[SR_ROUTE_PARAM_MAX];
    char actor[72], source[64];
    sr_cmd_env env;        /* into the strings above */
    const char *id_field;  /* the path parameter that names the entry ("appId"), for messages */
    json_t *body;          /* a JSON body (held: the row's values point into it) */
    char *raw;             /* a text body (a sheet, a PEM), NUL-terminated */
    size_t raw_len;
    /* an edit */
    sr_setup_edit ed;
    const char *cols[16];
    const char **vals;
    char (*nums)[48];      /* numbers written as text */
    char vendor[SR_ROUTE_PARAM_MAX];
    char what[160];
    int kind;              /* SR_MK_* or 0; registry kind for registrations */
    const char *rows_field; /* "grants": rows' fields are "grants[i].<field>" */
    sr_reg_change ch;
    char secret[40];
    /* R-ID-5 (setup_hook): is this change a privilege change? */
    int always_privileged;               /* an enable */
    int (*widens)(const struct sctx *x); /* an app's grants widened (grants PUT, a sheet) */
    const sr_sheet *sheet;               /* the sheet being imported */
    sr_admin_work *w;                    /* the work() running the change */
    int taken;                           /* the two-person rule took the change (w answered) */
    int pending_refused;                 /* its pending request was refused: w holds why */
    uint32_t audit_floor;                /* [retention] audit_floor_days (a sheet import) */
    int below_floor;                     /* the engine: the sheet shortens the audit period below it */
} sctx;

static void sctx_free(void *v)
{
    sctx *x = v;
    if (!x) return;
    json_decref(x->body);
    free(x->raw);
    free(x->vals);
    free(x->nums);
    OPENSSL_cleanse(x->secret, sizeof x->secret);
    free(x);
}

/* A new context for c: the operator and the entry the path names, the
 * caller as the actor. NULL after answering (no memory, a parameter too
 * long). */
static sctx *sctx_new(const sr_route_call *c, const char *id_param)
{
    const char *op = sr_route_param(c, "operatorId");
    const char *id = id_param ? sr_route_param(c, id_param) : "";
    if (!op || !id) {
        sr_admin_bad_field(c, !op ? "operatorId" : id_param, "too long or not text");
        return NULL;
    }
    sctx *x = calloc(1, sizeof *x);
    if (!x) {
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    x->e = sr_admin_engine(c);
    snprintf(x->op, sizeof x->op, "%s", op);
    snprintf(x->id, sizeof x->id, "%s", id);
    sr_cmd_env env = sr_admin_env(c, x->op);
    snprintf(x->actor, sizeof x->actor, "%s", env.actor ? env.actor : "");
    snprintf(x->source, sizeof x->source, "%s", env.source ? env.source : "");
    x->env = (sr_cmd_env){x->op, x->actor, SR_ACTOR_USER, NULL, x->source};
    x->id_field = id_param ? id_param : "id";
    x->ch.disabled = -1;
    return x;
}

/* The engine's refusal into w: 400 naming the field when there is one. */
static void refuse(sr_admin_work *w, const sctx *x, const sr_result *res, const char *column, size_t row)
{
    if (x->pending_refused) return; /* w holds the engine's refusal of the pending request */
    w->code = sr_wire_of_rc(res->rc);
    const char *msg = res->err.msg[0] ? res->err.msg : sr_strerror(res->rc);
    if (column && column[0]) {
        char field[96];
        const char *f = !strcmp(column, "id")         ? x->id_field
                        : !strcmp(column, "push_url")  ? "pushUrl"
                        : !strcmp(column, "datapoint") ? "dataId"
                                                       : column;
        if (x->rows_field) snprintf(field, sizeof field, "%s[%zu].%s", x->rows_field, row, f);
        else snprintf(field, sizeof field, "%s", f);
        /* the sheet's message starts with its column: name the field instead */
        size_t cl = strlen(column);
        if (!strncmp(msg, column, cl) && msg[cl] == ':') msg += cl + 1 + (msg[cl + 1] == ' ');
        snprintf(w->msg, sizeof w->msg, "%s: %s", field, msg);
        w->code = SR_WIRE_PARAM;
        w->detail = json_pack("{s:s}", "field", field);
        return;
    }
    snprintf(w->msg, sizeof w->msg, "%s", msg);
}

/* What a stored change answers: the events stored, the first one's
 * sequence number, what it removed. */
static json_t *stored_answer(const sr_result *res)
{
    json_t *o = json_pack("{s:I,s:I}", "stored", (json_int_t)res->count, "seq", (json_int_t)(res->count ? res->seq : 0));
    if (o && !strncmp(res->err.msg, "removed ", 8)) json_object_set_new(o, "removed", json_string(res->err.msg));
    return o;
}

/* R-ID-5: the one place of this file where a privilege change -- an app's
 * grants widened (a grants PUT, a sheet import), an app or a gateway
 * enabled -- is decided, in work() under the set-up mutex (the engine's
 * hook, engine/sheet.h), with the change's built events evs[0..n). The
 * two-person rule takes it over here: evs become a pending change of scope
 * operator x->op, which the operator's other admins (setup.manage) decide
 * (admin_pending.c's sr_admin_work_pending_n answers w 202): 1, or its
 * refusal (< 0, in w). */
static int setup_privileged(sr_admin_work *w, const sctx *x, const char *summary, const sr_slice *evs,
                            size_t n)
{
    return sr_admin_work_pending_n(w, SR_US_OPERATOR, x->op, SR_ACT_SETUP_MANAGE, summary, evs, n);
}

static int setup_hook(void *ctx, const sr_slice *evs, size_t n)
{
    sctx *x = ctx;
    int priv = x->always_privileged || x->below_floor || (x->widens && x->widens(x));
    if (x->below_floor) /* what the approvers see */
        snprintf(x->what, sizeof x->what, "set-up sheet import of operator %.64s: audit period below the floor of %u days",
                 x->op, x->audit_floor);
    int r = priv ? setup_privileged(x->w, x, x->what[0] ? x->what : "set-up change", evs, n) : 0;
    if (r < 0) x->pending_refused = 1;
    return r;
}

static sr_setup_hook hook_of(sctx *x, sr_admin_work *w)
{
    x->w = w;
    x->taken = 0;
    x->pending_refused = 0;
    x->below_floor = 0;
    return (sr_setup_hook){setup_hook, x, &x->taken, x->audit_floor, &x->below_floor};
}

static void edit_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_result res;
    char column[32];
    size_t row = 0;
    x->ed.hook = hook_of(x, w);
    if (sr_engine_setup_edit(x->e, &x->env, &x->ed, &res, column, sizeof column, &row)) {
        /* the writer's refusals of a row the sheet check passed: name their field */
        if (!column[0] && res.rc == SR_EINVAL && strstr(res.err.msg, "value type"))
            snprintf(column, sizeof column, "type");
        else if (!column[0] && res.rc == SR_EINVAL && strstr(res.err.msg, ": vendor "))
            snprintf(column, sizeof column, "vendorId");
        return refuse(w, x, &res, column, row);
    }
    if (!x->taken) w->answer = stored_answer(&res);
}

static void change_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_result res;
    x->ch.hook = hook_of(x, w);
    if (sr_engine_registry_change(x->e, &x->env, (sr_reg_kind)x->kind, x->id, &x->ch, &res))
        return refuse(w, x, &res, res.rc == SR_EINVAL && x->ch.cert_pem ? "certificate" : NULL, 0);
    if (x->taken) return;
    w->answer = stored_answer(&res);
    if (w->answer && x->ch.secret) /* shown this once; only its hash is stored */
        json_object_set_new(w->answer, "secret", json_string(x->ch.secret));
}

/* ---- what widens an app's grants (R-ID-3, R-ID-5) ------------------------------------ */

static int access_bits(const char *a)
{
    return !strcmp(a, "read") ? SR_GRANT_READ : !strcmp(a, "control") ? SR_GRANT_CONTROL : SR_GRANT_BOTH;
}

/* The operator's stored grants of app (NULL: of every app) into items:
 * {app, dataId, access}. */
static int stored_grants(sr_engine *e, const char *op, const char *app, json_t *items)
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_list_registry(e, op, SR_RG_GRANT, &r);
    for (int k; !rc && (k = sr_rec_next_registry(&r, &re)) != 0;) {
        if (k == SR_ECORRUPT) continue;
        if (k < 0) break;
        if (!app || !strcmp(re.app_id, app))
            json_array_append_new(items, json_pack("{s:s,s:s,s:s}", "app", re.app_id, "dataId", re.pattern, "access",
                                                   sr_grant_access_name((sr_grant_access)access_bits(re.access))));
    }
    sr_rec_close(&r);
    return rc;
}

/* 1 if app's grant of pattern with access acc ("" or NULL: both) gives more
 * than the stored grants old: a pattern it did not have, or more access on
 * one it had. */
static int grant_widens(json_t *old, const char *app, const char *pat, const char *acc)
{
    int want = acc && acc[0] ? access_bits(acc) : SR_GRANT_BOTH, had = 0;
    size_t j;
    json_t *g;
    json_array_foreach(old, j, g)
    {
        if (!strcmp(json_string_value(json_object_get(g, "app")), app) &&
            !strcmp(json_string_value(json_object_get(g, "dataId")), pat))
            had = access_bits(json_string_value(json_object_get(g, "access")));
    }
    return (want & ~had) != 0;
}

/* x->widens of a grants PUT: its rows (app, datapoint, access) against the
 * app's stored grants (read under the set-up mutex: what it replaces) */
static int rows_widen(const sctx *x)
{
    json_t *old = json_array();
    if (!old || stored_grants(x->e, x->op, x->id, old)) {
        json_decref(old);
        return 1; /* unknown: a privilege change */
    }
    int wide = 0;
    for (size_t i = 0; !wide && i < x->ed.nrows; i++)
        wide = grant_widens(old, x->id, x->vals[i * 3 + 1] ? x->vals[i * 3 + 1] : "", x->vals[i * 3 + 2]);
    json_decref(old);
    return wide;
}

/* x->widens of a sheet import: its grants against the operator's stored ones */
static int sheet_widens(const sctx *x)
{
    json_t *old = json_array();
    if (!old || stored_grants(x->e, x->op, NULL, old)) {
        json_decref(old);
        return 1;
    }
    int wide = 0;
    for (size_t i = 0; !wide && i < x->sheet->n_grants; i++) {
        const sr_sheet_grant *g = &x->sheet->grants[i];
        wide = grant_widens(old, g->app, g->datapoint, sr_grant_access_name(g->access));
    }
    json_decref(old);
    return wide;
}

/* ---- the sheet -------------------------------------------------------------- */

static void import_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_sheet *sh = NULL;
    int rc = sr_sheet_parse(x->raw, x->raw_len, NULL, &sh);
    if (!sh) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "sheet: %s", sr_strerror(rc));
        if (w->code == SR_WIRE_PARAM) w->detail = json_pack("{s:s}", "field", "sheet");
        return;
    }
    if (rc || sh->n_errors) { /* every line at fault, as the CLI prints them */
        json_t *errs = json_array();
        for (size_t i = 0; i < sh->n_errors; i++)
            json_array_append_new(errs, json_pack("{s:I,s:s,s:s}", "line", (json_int_t)sh->errors[i].line, "column",
                                                  sh->errors[i].column, "message", sh->errors[i].msg));
        w->code = SR_WIRE_PARAM;
        snprintf(w->msg, sizeof w->msg, "sheet: %zu error(s)%s; nothing imported", sh->n_errors,
                 sh->errors_truncated ? " (more not shown)" : "");
        w->detail = json_pack("{s:s,s:o,s:b}", "field", "sheet", "errors", errs, "truncated", sh->errors_truncated);
        sr_sheet_free(sh);
        return;
    }
    if (strcmp(sh->operators[0].id, x->op)) {
        w->code = SR_WIRE_PARAM;
        snprintf(w->msg, sizeof w->msg, "operator: the sheet's [operator] is %.100s, not the path's %.100s; nothing imported",
                 sh->operators[0].id, x->op);
        w->detail = json_pack("{s:s}", "field", "operator");
        sr_sheet_free(sh);
        return;
    }
    sr_result res;
    x->sheet = sh;
    x->widens = sheet_widens;
    snprintf(x->what, sizeof x->what, "set-up sheet import widening grants of operator %.100s", x->op);
    sr_setup_hook hook = hook_of(x, w);
    rc = sr_engine_import_sheet_as(x->e, sh, &x->env, &hook, &res);
    x->sheet = NULL;
    sr_sheet_free(sh);
    if (rc) return refuse(w, x, &res, res.rc == SR_EINVAL ? "sheet" : NULL, 0);
    if (!x->taken) w->answer = stored_answer(&res);
}

static void sheet_import(const sr_route_call *c)
{
    sctx *x = sctx_new(c, NULL);
    if (!x) return;
    if (!(x->raw = sr_http_body_text(c->req, &x->raw_len))) return sctx_free(x);
    x->audit_floor = sr_admin_conf_of(c)->retention.audit_floor_days;
    sr_admin_run(c, import_work, x, sctx_free);
}

/* The export reads the index only (no wait): on the loop, as text/csv. */
/* The export grows with the operator's set-up (16 ms for 4,000 data
 * points): on the worker queue, counted against the caller's scope, never
 * on the loop. */
static void export_work(sr_admin_work *w, void *v)
{
    const char *op = v;
    int rc = sr_engine_export_sheet(w->eng, op, &w->body);
    if (rc == SR_ENOTFOUND) {
        w->code = SR_WIRE_UNKNOWN;
        snprintf(w->msg, sizeof w->msg, "operator %.100s does not exist", op);
    } else if (rc) {
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", sr_strerror(rc));
    } else
        w->content_type = "text/csv; charset=utf-8";
}

static void sheet_export(const sr_route_call *c)
{
    const char *op = sr_route_param(c, "operatorId");
    if (!op) return sr_admin_bad_field(c, "operatorId", "too long or not text");
    char *copy = strdup(op);
    if (!copy) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    sr_admin_run(c, export_work, copy, free);
}

/* ---- rows from JSON bodies ------------------------------------------------------ */

/* The columns of each kind, as the sheet has them (docs/setup-sheet.md). */
typedef struct kinddef {
    const char *section, *what;
    unsigned bit;
    const char *cols[9];
} kinddef;
enum { KD_FACILITY, KD_EQUIPMENT, KD_DEVICE, KD_DATAPOINT, KD_GATEWAY, KD_APP, KD_GRANT };
static const kinddef KINDS[] = {
    {"facilities", "facility", SR_SHEET_S_FACILITIES, {"id", "name"}},
    {"equipment", "equipment", SR_SHEET_S_EQUIPMENT, {"id", "facility", "name"}},
    {"devices", "device", SR_SHEET_S_DEVICES, {"id", "equipment", "gateway", "name"}},
    {"datapoints", "data point", SR_SHEET_S_DATAPOINTS, {"id", "device", "name", "type", "unit", "min", "max", "kind", "retention_class"}},
    {"gateways", "gateway", SR_SHEET_S_GATEWAYS, {"id", "name", "secret"}},
    {"apps", "app", SR_SHEET_S_APPS, {"id", "name", "secret", "push_url"}},
    {"grants", "grant", SR_SHEET_S_GRANTS, {"app", "datapoint", "access"}},
};

static const char *field_of(const char *col)
{
    return !strcmp(col, "push_url")          ? "pushUrl"
           : !strcmp(col, "datapoint")       ? "dataId"
           : !strcmp(col, "retention_class") ? "retentionClass"
                                             : col;
}

static size_t ncols_of(const kinddef *k)
{
    size_t n = 0;
    while (n < 9 && k->cols[n]) n++;
    return n;
}

/* Set up x->ed to add nrows rows of kind k; x->vals zeroed. 0, or -1 after answering. */
static int rows_alloc(const sr_route_call *c, sctx *x, const kinddef *k, size_t nrows)
{
    size_t nc = ncols_of(k);
    x->vals = calloc(nrows * nc + 1, sizeof *x->vals);
    x->nums = calloc(nrows * 2 + 1, sizeof *x->nums);
    if (!x->vals || !x->nums) {
        sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return -1;
    }
    for (size_t i = 0; i < nc; i++) x->cols[i] = k->cols[i];
    x->ed.section = k->section;
    x->ed.cols = x->cols;
    x->ed.ncols = nc;
    x->ed.vals = x->vals;
    x->ed.nrows = nrows;
    return 0;
}

/* One row of kind k from the JSON object o into row r: every key a column's
 * field (strings; min and max numbers), "vendorId" where allowed; the id
 * column from the path (id; a body "id" must equal it). 0, or -1 after
 * answering 400 naming the field (prefix: "grants[2]."). */
static int row_from(const sr_route_call *c, sctx *x, const kinddef *k, json_t *o, size_t r, const char *id,
                    const char *prefix)
{
    size_t nc = ncols_of(k);
    const char **row = x->vals + r * nc;
    char field[96];
    if (!json_is_object(o)) {
        snprintf(field, sizeof field, "%.*s", prefix ? (int)strlen(prefix) - 1 : 4, prefix ? prefix : "body");
        sr_admin_bad_field(c, field, "an object is required");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        snprintf(field, sizeof field, "%s%.60s", prefix ? prefix : "", key);
        if (!strcmp(key, "vendorId") && (k == &KINDS[KD_APP] || k == &KINDS[KD_GATEWAY])) {
            if (!json_is_string(v)) return sr_admin_bad_field(c, field, "a string is required (\"\": none)"), -1;
            snprintf(x->vendor, sizeof x->vendor, "%s", json_string_value(v));
            x->ed.vendor_id = x->vendor;
            continue;
        }
        if (!strcmp(key, "requireSignature") && k == &KINDS[KD_APP]) { /* R-SE-3, docs/signatures.md */
            if (!json_is_boolean(v)) return sr_admin_bad_field(c, field, "true or false is required"), -1;
            x->ed.require_signature = json_is_true(v) ? 2 : 1;
            continue;
        }
        size_t i = 0;
        while (i < nc && strcmp(field_of(k->cols[i]), key)) i++;
        if (i == nc) return sr_admin_bad_field(c, field, "unknown field"), -1;
        int num = !strcmp(key, "min") || !strcmp(key, "max");
        if (num) {
            if (json_is_null(v)) continue;
            if (!json_is_number(v)) return sr_admin_bad_field(c, field, "a number is required"), -1;
            char *t = x->nums[r * 2 + (key[1] == 'a')];
            int l = sr_json_number(t, json_number_value(v));
            t[l > 0 && l < 48 ? l : 0] = 0;
            row[i] = t;
            continue;
        }
        if (!json_is_string(v)) return sr_admin_bad_field(c, field, "a string is required"), -1;
        /* the sheet's cell limit and no NUL: the sheet check then names any other fault */
        if (json_string_length(v) > 4096 || strlen(json_string_value(v)) != json_string_length(v))
            return sr_admin_bad_field(c, field, "at most 4096 bytes, and no NUL"), -1;
        if (!strcmp(key, "id") && id && strcmp(json_string_value(v), id))
            return sr_admin_bad_field(c, field, "differs from the path's id"), -1;
        row[i] = json_string_value(v);
    }
    if (id && !strcmp(k->cols[0], "id")) row[0] = id;
    return 0;
}

/* ---- lists ---------------------------------------------------------------------- */

/* Whether operator x->op exists: SR_OK, or the read's error; on
 * SR_ENOTFOUND w holds the refusal (SR_WIRE_UNKNOWN). */
static int operator_known(sr_admin_work *w, const sctx *x)
{
    sr_rec o = SR_REC_INIT;
    sr_reg_entry opr;
    int rc = sr_read_registry(x->e, x->op, SR_RG_OPERATOR, x->op, &o, &opr);
    sr_rec_close(&o);
    if (rc == SR_ENOTFOUND) {
        w->code = SR_WIRE_UNKNOWN;
        snprintf(w->msg, sizeof w->msg, "operator %.100s does not exist", x->op);
    }
    return rc;
}

/* A list's answer: rc, the engine's error (items dropped); else
 * {"items": items}. */
static void work_items(sr_admin_work *w, int rc, json_t *items)
{
    if (rc) {
        json_decref(items);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, "%s", sr_strerror(rc));
        return;
    }
    w->answer = json_pack("{s:o}", "items", items);
}

/* ---- masters ---------------------------------------------------------------------- */

static void masters_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_rec r = SR_REC_INIT;
    int rc = operator_known(w, x);
    if (rc == SR_ENOTFOUND) return;
    if (!rc) rc = sr_list_masters(x->e, x->op, (sr_master_kind)x->kind, &r);
    json_t *items = json_array();
    sr_master m;
    for (int k; !rc && (k = sr_rec_next_master(&r, &m)) != 0;) {
        if (k == SR_ECORRUPT) continue;
        if (k < 0) break;
        json_array_append_new(items, sr_master_item(&m));
    }
    sr_rec_close(&r);
    work_items(w, rc, items);
}

static const kinddef *master_kind(const sr_route_call *c, int *mk)
{
    *mk = sr_master_kind_named(sr_route_param(c, "kind"));
    if (!*mk) {
        sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "masters: facilities, equipment, devices or datapoints", NULL);
        return NULL;
    }
    return &KINDS[*mk - SR_MK_FACILITY];
}

static void masters_list(const sr_route_call *c)
{
    int mk;
    if (!master_kind(c, &mk)) return;
    sctx *x = sctx_new(c, NULL);
    if (!x) return;
    x->kind = mk;
    sr_admin_run(c, masters_work, x, sctx_free);
}

static void master_put(const sr_route_call *c)
{
    int mk;
    const kinddef *k = master_kind(c, &mk);
    if (!k) return;
    sctx *x = sctx_new(c, "id");
    if (!x) return;
    x->body = sr_admin_body(c);
    if (!x->body || rows_alloc(c, x, k, 1) || row_from(c, x, k, x->body, 0, x->id, NULL)) return sctx_free(x);
    x->ed.drop = k->bit; /* a stored one is replaced */
    x->ed.id = x->id;
    sr_admin_run(c, edit_work, x, sctx_free);
}

static void master_deactivate(const sr_route_call *c)
{
    int mk;
    const kinddef *k = master_kind(c, &mk);
    if (!k) return;
    sctx *x = sctx_new(c, "id");
    if (!x) return;
    snprintf(x->what, sizeof x->what, "%s %.100s", k->what, x->id);
    x->ed = (sr_setup_edit){.drop = k->bit, .id = x->id, .must_drop = 1, .what = x->what};
    sr_admin_run(c, edit_work, x, sctx_free);
}

/* ---- gateways and apps ------------------------------------------------------------ */

static void reg_list_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = operator_known(w, x);
    if (rc == SR_ENOTFOUND) return;
    if (!rc) rc = sr_list_registry(x->e, x->op, (sr_reg_kind)x->kind, &r);
    json_t *items = json_array();
    for (int k; !rc && (k = sr_rec_next_registry(&r, &re)) != 0;) {
        if (k == SR_ECORRUPT) continue;
        if (k < 0) break;
        json_t *it = json_pack("{s:s,s:s,s:s,s:b,s:b}", "id", re.id, "name", re.name, "vendorId", re.vendor_id,
                               "disabled", re.disabled, "certificate", re.cert_pem[0] != 0);
        if (x->kind == SR_RG_APP) json_object_set_new(it, "pushUrl", json_string(re.url));
        if (x->kind == SR_RG_APP) json_object_set_new(it, "requireSignature", json_boolean(re.require_signature));
        if (x->kind == SR_RG_GATEWAY && re.protocol[0]) json_object_set_new(it, "protocol", json_string(re.protocol));
        json_array_append_new(items, it);
    }
    sr_rec_close(&r);
    work_items(w, rc, items);
}

static void reg_list(const sr_route_call *c, int kind)
{
    sctx *x = sctx_new(c, NULL);
    if (!x) return;
    x->kind = kind;
    sr_admin_run(c, reg_list_work, x, sctx_free);
}
static void gateways_list(const sr_route_call *c) { reg_list(c, SR_RG_GATEWAY); }
static void apps_list(const sr_route_call *c) { reg_list(c, SR_RG_APP); }

/* PUT: register or change (name, secret, push URL, vendor link). */
static void reg_put(const sr_route_call *c, const kinddef *k, const char *param)
{
    sctx *x = sctx_new(c, param);
    if (!x) return;
    x->body = sr_admin_body(c);
    if (!x->body || rows_alloc(c, x, k, 1) || row_from(c, x, k, x->body, 0, x->id, NULL)) return sctx_free(x);
    x->ed.drop = k->bit;
    x->ed.id = x->id;
    sr_admin_run(c, edit_work, x, sctx_free);
}
static void gateway_put(const sr_route_call *c) { reg_put(c, &KINDS[KD_GATEWAY], "gatewayId"); }
static void app_put(const sr_route_call *c) { reg_put(c, &KINDS[KD_APP], "appId"); }

/* DELETE: removed as a sheet removes it (an app's grants with it; a gateway
 * that devices name is refused, 409). */
static void reg_delete(const sr_route_call *c, const kinddef *k, const char *param)
{
    sctx *x = sctx_new(c, param);
    if (!x) return;
    snprintf(x->what, sizeof x->what, "%s %.100s", k->what, x->id);
    x->ed = (sr_setup_edit){.drop = k->bit, .id = x->id, .must_drop = 1, .what = x->what};
    sr_admin_run(c, edit_work, x, sctx_free);
}
static void gateway_delete(const sr_route_call *c) { reg_delete(c, &KINDS[KD_GATEWAY], "gatewayId"); }
static void app_delete(const sr_route_call *c) { reg_delete(c, &KINDS[KD_APP], "appId"); }

/* POST .../secret: a new random secret, answered once, stored hashed. */
static void reg_secret(const sr_route_call *c, int kind, const char *param)
{
    sctx *x = sctx_new(c, param);
    if (!x) return;
    uint8_t raw[16];
    if (sr_random(raw, sizeof raw)) {
        sctx_free(x);
        return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "no randomness", NULL);
    }
    sr_hex(raw, sizeof raw, x->secret);
    OPENSSL_cleanse(raw, sizeof raw);
    x->kind = kind;
    x->ch.secret = x->secret;
    sr_admin_run(c, change_work, x, sctx_free);
}
static void gateway_secret(const sr_route_call *c) { reg_secret(c, SR_RG_GATEWAY, "gatewayId"); }
static void app_secret(const sr_route_call *c) { reg_secret(c, SR_RG_APP, "appId"); }

/* PUT .../certificate: the PEM body, as `suiro cert import`. */
static void reg_cert(const sr_route_call *c, int kind, const char *param)
{
    sctx *x = sctx_new(c, param);
    if (!x) return;
    size_t n = c->req->entity.len;
    if (!sr_cert_pem_ok(c->req->entity.base, n)) {
        sctx_free(x);
        return sr_admin_bad_field(c, "certificate", "not a PEM X.509 certificate (at most 64 KiB)");
    }
    if (!(x->raw = sr_http_body_text(c->req, &x->raw_len))) return sctx_free(x);
    x->kind = kind;
    x->ch.cert_pem = x->raw;
    sr_admin_run(c, change_work, x, sctx_free);
}
static void gateway_cert(const sr_route_call *c) { reg_cert(c, SR_RG_GATEWAY, "gatewayId"); }
static void app_cert(const sr_route_call *c) { reg_cert(c, SR_RG_APP, "appId"); }

/* POST .../disable, .../enable: refused at login while disabled; enabling
 * is a privilege change (R-ID-5). */
static void reg_state(const sr_route_call *c, int kind, const char *param, int disabled)
{
    sctx *x = sctx_new(c, param);
    if (!x) return;
    x->kind = kind;
    x->ch.disabled = disabled;
    x->always_privileged = !disabled;
    snprintf(x->what, sizeof x->what, "%s %s %.100s", disabled ? "disable" : "enable",
             kind == SR_RG_APP ? "app" : "gateway", x->id);
    sr_admin_run(c, change_work, x, sctx_free);
}
static void gateway_disable(const sr_route_call *c) { reg_state(c, SR_RG_GATEWAY, "gatewayId", 1); }
static void gateway_enable(const sr_route_call *c) { reg_state(c, SR_RG_GATEWAY, "gatewayId", 0); }
static void app_disable(const sr_route_call *c) { reg_state(c, SR_RG_APP, "appId", 1); }
static void app_enable(const sr_route_call *c) { reg_state(c, SR_RG_APP, "appId", 0); }

/* PUT .../apps/{appId}/push-url {"pushUrl": "..."}: the app's row with the
 * new URL (the vendor's registration: apps.register). */
static void push_url_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(x->e, x->op, SR_RG_APP, x->id, &r, &re);
    if (rc) {
        sr_rec_close(&r);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, rc == SR_ENOTFOUND ? "app %.100s of operator %.100s does not exist" : "%s",
                 rc == SR_ENOTFOUND ? x->id : sr_strerror(rc), x->op);
        return;
    }
    char name[SR_SHEET_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", re.name);
    sr_rec_close(&r);
    x->vals[1] = name; /* the stored name; secret empty: kept */
    edit_work(w, x);
    x->vals[1] = NULL;
}

static void app_push_url(const sr_route_call *c)
{
    sctx *x = sctx_new(c, "appId");
    if (!x) return;
    x->body = sr_admin_body(c);
    if (!x->body || rows_alloc(c, x, &KINDS[KD_APP], 1)) return sctx_free(x);
    json_t *u = json_object_get(x->body, "pushUrl");
    if (!json_is_string(u) || json_object_size(x->body) != 1) {
        sctx_free(x);
        return sr_admin_bad_field(c, "pushUrl", "a string is required (\"\": the app pulls), and nothing else");
    }
    x->vals[0] = x->id;
    x->vals[3] = json_string_value(u);
    x->ed.drop = SR_SHEET_S_APPS;
    x->ed.id = x->id;
    x->ed.must_drop = 1;
    snprintf(x->what, sizeof x->what, "app %.100s", x->id);
    x->ed.what = x->what;
    sr_admin_run(c, push_url_work, x, sctx_free);
}

/* ---- grants ---------------------------------------------------------------------- */

static void grants_work(sr_admin_work *w, void *v)
{
    sctx *x = v;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(x->e, x->op, SR_RG_APP, x->id, &r, &re);
    sr_rec_close(&r);
    json_t *items = json_array();
    if (!rc) rc = stored_grants(x->e, x->op, x->id, items);
    size_t i;
    json_t *g;
    json_array_foreach(items, i, g) json_object_del(g, "app");
    if (rc) {
        json_decref(items);
        w->code = sr_wire_of_rc(rc);
        snprintf(w->msg, sizeof w->msg, rc == SR_ENOTFOUND ? "app %.100s of operator %.100s does not exist" : "%s",
                 rc == SR_ENOTFOUND ? x->id : sr_strerror(rc), x->op);
        return;
    }
    w->answer = json_pack("{s:o}", "items", items);
}

static void grants_get(const sr_route_call *c)
{
    sctx *x = sctx_new(c, "appId");
    if (x) sr_admin_run(c, grants_work, x, sctx_free);
}

/* PUT .../apps/{appId}/grants {"grants":[{"dataId":"P0*","access":"read"}, ...]}:
 * the app's whole list. */
static void grants_put(const sr_route_call *c)
{
    sctx *x = sctx_new(c, "appId");
    if (!x) return;
    const kinddef *k = &KINDS[KD_GRANT];
    x->body = sr_admin_body(c);
    if (!x->body) return sctx_free(x);
    json_t *list = json_object_get(x->body, "grants");
    if (!json_is_array(list) || json_object_size(x->body) != 1) {
        sctx_free(x);
        return sr_admin_bad_field(c, "grants", "an array of {\"dataId\", \"access\"} is required, and nothing else");
    }
    size_t n = json_array_size(list);
    if (rows_alloc(c, x, k, n)) return sctx_free(x);
    x->rows_field = "grants";
    for (size_t i = 0; i < n; i++) {
        char prefix[40];
        snprintf(prefix, sizeof prefix, "grants[%zu].", i);
        json_t *g = json_array_get(list, i);
        if (json_is_object(g) && json_object_get(g, "app")) {
            sctx_free(x);
            snprintf(prefix, sizeof prefix, "grants[%zu].app", i);
            return sr_admin_bad_field(c, prefix, "unknown field (the path names the app)");
        }
        if (row_from(c, x, k, g, i, NULL, prefix)) return sctx_free(x);
        x->vals[i * 3] = x->id;
    }
    x->ed.drop = SR_SHEET_S_GRANTS; /* all of the app's, then the list */
    x->ed.id = x->id;
    x->ed.must_exist_app = x->id;
    snprintf(x->what, sizeof x->what, "widen the grants of app %.100s", x->id);
    x->widens = rows_widen;
    sr_admin_run(c, edit_work, x, sctx_free);
}

/* DELETE .../apps/{appId}/grants/{dataId}: one grant (a pattern as written, "P0*"). */
static void grant_delete(const sr_route_call *c)
{
    sctx *x = sctx_new(c, "appId");
    if (!x) return;
    const char *p = sr_route_param(c, "dataId");
    if (!p) {
        sctx_free(x);
        return sr_admin_bad_field(c, "dataId", "too long or not text");
    }
    snprintf(x->id2, sizeof x->id2, "%s", p);
    snprintf(x->what, sizeof x->what, "grant %.70s:%.70s", x->id, x->id2);
    x->ed = (sr_setup_edit){.drop = SR_SHEET_S_GRANTS, .id = x->id, .pattern = x->id2, .must_drop = 1,
                            .what = x->what, .must_exist_app = x->id};
    sr_admin_run(c, edit_work, x, sctx_free);
}

/* ---- the rows ---------------------------------------------------------------------- */

#define A(act) (1 + SR_ACT_##act)
#define OPS "/admin/v1/operators/{operatorId}"
const sr_route sr_admin_setup_routes[] = {
    {"POST", OPS "/sheet", sheet_import, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", OPS "/sheet", sheet_export, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_READ), SR_FWD_OPERATOR},
    {"GET", OPS "/masters/{kind}", masters_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", OPS "/masters/{kind}/{id}", master_put, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", OPS "/masters/{kind}/{id}/deactivate", master_deactivate, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", OPS "/gateways", gateways_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", OPS "/gateways/{gatewayId}", gateway_put, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", OPS "/gateways/{gatewayId}", gateway_delete, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", OPS "/gateways/{gatewayId}/secret", gateway_secret, SR_CALLER_ADMIN, SR_BODY_SMALL, A(GATEWAYS_REGISTER), SR_FWD_OPERATOR},
    {"PUT", OPS "/gateways/{gatewayId}/certificate", gateway_cert, SR_CALLER_ADMIN, SR_BODY_SMALL, A(GATEWAYS_REGISTER), SR_FWD_OPERATOR},
    {"POST", OPS "/gateways/{gatewayId}/disable", gateway_disable, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", OPS "/gateways/{gatewayId}/enable", gateway_enable, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", OPS "/apps", apps_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", OPS "/apps/{appId}", app_put, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", OPS "/apps/{appId}", app_delete, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", OPS "/apps/{appId}/secret", app_secret, SR_CALLER_ADMIN, SR_BODY_SMALL, A(APPS_REGISTER), SR_FWD_OPERATOR},
    {"PUT", OPS "/apps/{appId}/certificate", app_cert, SR_CALLER_ADMIN, SR_BODY_SMALL, A(APPS_REGISTER), SR_FWD_OPERATOR},
    {"PUT", OPS "/apps/{appId}/push-url", app_push_url, SR_CALLER_ADMIN, SR_BODY_SMALL, A(APPS_REGISTER), SR_FWD_OPERATOR},
    {"POST", OPS "/apps/{appId}/disable", app_disable, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"POST", OPS "/apps/{appId}/enable", app_enable, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", OPS "/apps/{appId}/grants", grants_get, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, A(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", OPS "/apps/{appId}/grants", grants_put, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", OPS "/apps/{appId}/grants/{dataId}", grant_delete, SR_CALLER_ADMIN, SR_BODY_SMALL, A(SETUP_MANAGE), SR_FWD_OPERATOR},
};
const size_t sr_admin_setup_nroutes = sizeof sr_admin_setup_routes / sizeof sr_admin_setup_routes[0];
