/* api/admin_sig.c -- an operator's certificate revocation list (R-SE-3,
 * docs/signatures.md, docs/admin.md): list, revoke, withdraw a revocation.
 * A revocation is a registry entry SR_RG_REVOKED whose id is the canonical
 * certId "ID#SERIAL" (api/sigcheck.h: the serial in uppercase hexadecimal),
 * name the reason, revoked_ms the time it was made. sr_sig_check reads it
 * for every signed message, so a revocation takes effect for the next
 * message once its event is durable (the answer is sent then). Every change
 * is an event (RegistryPut / RegistryDelete, who and from where in its
 * envelope).
 *
 * The same file keeps an operator's signature requirements per data point
 * (docs/signatures.md "Requiring signatures"): a registry entry SR_RG_SIGREQ
 * whose id is the dataId (a data point of the operator when it is set),
 * name the reason, revoked_ms the time it was set, access its scope:
 * "control" (also when empty: an entry of before scopes), "values" or
 * "control+values" (issue #18). The AP-IF control check (api/apif_http.c)
 * reads it for every control request without protection when the scope
 * names control; the GW-IF values check (api/gwif_json.h sr_gw_sigreq_*)
 * when it names values: such a request or message is refused E5001 once
 * the answer here is sent. Its route table is sr_admin_sig_routes
 * (admin_int.h). */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/sigcheck.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *revocation_json(const sr_reg_entry *re)
{
    char at[40];
    sr_rfc3339_format(re->revoked_ms, at);
    const char *h = strrchr(re->id, '#');
    return json_pack("{s:s,s:s%,s:s,s:s,s:s}", "certId", re->id, "subjectId", re->id,
                     (size_t)(h ? h - re->id : 0), "serial", h ? h + 1 : "", "reason", re->name, "revokedAt", at);
}

/* GET /admin/v1/operators/{operatorId}/revocations -> 200 {"items":[...]} */
static void revocations_list(const sr_route_call *c)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(sr_admin_engine(c), sr_route_param(c, "operatorId"), SR_RG_REVOKED, &r);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    json_t *items = json_array();
    sr_reg_entry re;
    while (sr_rec_next_registry(&r, &re) == 1) json_array_append_new(items, revocation_json(&re));
    sr_rec_close(&r);
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* POST .../revocations {"certId":"ID#SERIAL","reason"} -> 201 the revocation */
static void revocation_create(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    const char *cid = json_string_value(json_object_get(body, "certId"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    char canon[200];
    const char *h = cid ? strrchr(cid, '#') : NULL;
    char subj[80];
    if (!cid || !h || (size_t)(h - cid) >= sizeof subj || sr_sig_canon_id(cid, canon, sizeof canon)) {
        sr_admin_bad_field(c, "certId", "ID#SERIAL: an app's or gateway's ID and the certificate's serial in hexadecimal");
        goto done;
    }
    snprintf(subj, sizeof subj, "%.*s", (int)(h - cid), cid);
    if (!sr_id_str_ok(subj)) {
        sr_admin_bad_field(c, "certId", "the ID before '#' is not an ID ([A-Za-z0-9._-]{1,64})");
        goto done;
    }
    if (!reason || !reason[0] || strlen(reason) > 200) {
        sr_admin_bad_field(c, "reason", "why the certificate is revoked: 1 to 200 bytes");
        goto done;
    }
    const char *op = sr_route_param(c, "operatorId");
    sr_reg_entry re = {.kind = SR_RG_REVOKED, .id = canon, .name = reason, .revoked_ms = now_ms()};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, op);
    int rc = sr_cmd_registry_put(&env, &re, &b);
    sr_admin_submit(c, rc, &b, 201, revocation_json(&re));
done:
    json_decref(body);
}

/* DELETE .../revocations/{subjectId}/{serial} -> 204 (the revocation withdrawn) */
static void revocation_delete(const sr_route_call *c)
{
    char id[200], canon[200];
    snprintf(id, sizeof id, "%s#%s", sr_route_param(c, "subjectId"), sr_route_param(c, "serial"));
    if (sr_sig_canon_id(id, canon, sizeof canon)) return sr_admin_bad_field(c, "serial", "hexadecimal");
    sr_admin_entry_delete(c, sr_route_param(c, "operatorId"), SR_RG_REVOKED, canon, "no such revocation");
}

/* ---- signature requirements per data point ---------------------------- */

static json_t *sigreq_json(const sr_reg_entry *re)
{
    char at[40];
    sr_rfc3339_format(re->revoked_ms, at);
    return json_pack("{s:s,s:s,s:s,s:s}", "dataId", re->id, "reason", re->name, "requiredAt", at, "scope",
                     re->access && re->access[0] ? re->access : "control");
}

/* GET /admin/v1/operators/{operatorId}/signature-requirements -> 200 {"items":[...]} */
static void sigreqs_list(const sr_route_call *c)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(sr_admin_engine(c), sr_route_param(c, "operatorId"), SR_RG_SIGREQ, &r);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    json_t *items = json_array();
    sr_reg_entry re;
    while (sr_rec_next_registry(&r, &re) == 1) json_array_append_new(items, sigreq_json(&re));
    sr_rec_close(&r);
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* PUT .../signature-requirements/{dataId} {"reason","scope"?} -> 200 the requirement
 * (set again: the reason and time replaced) */
static void sigreq_put(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    const char *op = sr_route_param(c, "operatorId"), *did = sr_route_param(c, "dataId");
    const char *reason = json_string_value(json_object_get(body, "reason"));
    json_t *js = json_object_get(body, "scope");
    const char *scope = js ? json_string_value(js) : "control";
    sr_point_info info;
    int prc;
    if (!reason || !reason[0] || strlen(reason) > 200) {
        sr_admin_bad_field(c, "reason", "why control of this data point must be signed: 1 to 200 bytes");
    } else if (!scope || (strcmp(scope, "control") && strcmp(scope, "values") && strcmp(scope, "control+values"))) {
        sr_admin_bad_field(c, "scope", "what must be signed: control, values or control+values");
    } else if (!sr_id_str_ok(did) || (prc = sr_engine_point_info(sr_admin_engine(c), op, did, &info)) == SR_ENOTFOUND) {
        sr_admin_audit_refused(c, SR_WIRE_UNKNOWN, "no such data point");
        sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "no such data point", NULL);
    } else if (prc) {
        sr_http_result(c->req, 0, sr_wire_of_rc(prc), sr_wire_msg_of_rc(prc), NULL);
    } else {
        sr_reg_entry re = {.kind = SR_RG_SIGREQ, .id = did, .name = reason, .revoked_ms = now_ms(), .access = scope};
        sr_buf b;
        sr_buf_init(&b);
        sr_cmd_env env = sr_admin_env(c, op);
        int rc = sr_cmd_registry_put(&env, &re, &b);
        sr_admin_submit(c, rc, &b, 200, sigreq_json(&re));
    }
    json_decref(body);
}

/* DELETE .../signature-requirements/{dataId} -> 204 (lifted) */
static void sigreq_delete(const sr_route_call *c)
{
    sr_admin_entry_delete(c, sr_route_param(c, "operatorId"), SR_RG_SIGREQ, sr_route_param(c, "dataId"),
                          "no such signature requirement");
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_sig_routes[] = {
    {"GET", "/admin/v1/operators/{operatorId}/revocations", revocations_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"POST", "/admin/v1/operators/{operatorId}/revocations", revocation_create, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/revocations/{subjectId}/{serial}", revocation_delete,
     SR_CALLER_ADMIN, SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/signature-requirements", sigreqs_list, SR_CALLER_ADMIN,
     SR_BODY_HTTP_MAX, ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/signature-requirements/{dataId}", sigreq_put, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/signature-requirements/{dataId}", sigreq_delete, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
};
const size_t sr_admin_sig_nroutes = sizeof sr_admin_sig_routes / sizeof sr_admin_sig_routes[0];
