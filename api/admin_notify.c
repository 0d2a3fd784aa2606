/* api/admin_notify.c -- an operator's alarm notification targets (issue #17,
 * R-MO-3; docs/monitoring.md "Notifications", docs/admin.md): list, create
 * (or replace, by id) and delete. A target is a registry entry SR_RG_NOTIFY:
 * a webhook URL or exactly one mail address, and the lowest alarm level it
 * is told of. What a target may be is the notifier's rule
 * (sr_notify_target_ok over [notify]: https or loopback http, a mail domain
 * in mail_allowed_domains); a refused one stores nothing and the answer
 * names the field and why. The notifier checks again at every attempt.
 * Its route table is sr_admin_notify_routes (admin_int.h). */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/notify.h"
#include "codecs/ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *target_json(const sr_reg_entry *re)
{
    int mail = !strncmp(re->url, "mailto:", 7);
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", re->id, "channel", mail ? "mail" : "webhook", mail ? "mail" : "url",
                     mail ? re->url + 7 : re->url, "level", re->access, "name", re->name);
}

/* GET /admin/v1/operators/{operatorId}/notify/targets -> 200 {"items":[...]} */
static void targets_list(const sr_route_call *c)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_registry(sr_admin_engine(c), sr_route_param(c, "operatorId"), SR_RG_NOTIFY, &r);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    json_t *items = json_array();
    sr_reg_entry re;
    int got;
    while ((got = sr_rec_next_registry(&r, &re)) != 0)
        if (got > 0) json_array_append_new(items, target_json(&re));
    sr_rec_close(&r);
    json_t *o = json_pack("{s:o}", "items", items);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* POST .../notify/targets {"id","url"|"mail","level","name"} -> 201 the target */
static void target_create(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *url = json_string_value(json_object_get(body, "url"));
    const char *mail = json_string_value(json_object_get(body, "mail"));
    const char *level = json_string_value(json_object_get(body, "level"));
    const char *name = json_string_value(json_object_get(body, "name"));
    char full[1100], why[300];
    if (!id || !sr_id_str_ok(id)) {
        sr_admin_bad_field(c, "id", "an ID ([A-Za-z0-9._-]{1,64})");
        goto done;
    }
    if (!url == !mail || (url && strlen(url) > 1000) || (mail && strlen(mail) > 254)) {
        sr_admin_bad_field(c, url ? "url" : "mail", "exactly one of url (a webhook) and mail (one address)");
        goto done;
    }
    if (!level || !sr_notify_level(level)) {
        sr_admin_bad_field(c, "level", "warning, minor or major: the lowest alarm level the target is told of");
        goto done;
    }
    if (name && strlen(name) > 200) {
        sr_admin_bad_field(c, "name", "at most 200 bytes");
        goto done;
    }
    snprintf(full, sizeof full, "%s%s", mail ? "mailto:" : "", mail ? mail : url);
    if (sr_notify_target_ok(&sr_admin_conf_of(c)->notify, full, why, sizeof why)) {
        sr_admin_bad_field(c, mail ? "mail" : "url", why);
        goto done;
    }
    const char *op = sr_route_param(c, "operatorId");
    sr_reg_entry re = {.kind = SR_RG_NOTIFY, .id = id, .name = name ? name : "", .url = full, .access = level};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, op);
    int rc = sr_cmd_registry_put(&env, &re, &b);
    sr_admin_submit(c, rc, &b, 201, target_json(&re));
done:
    json_decref(body);
}

/* DELETE .../notify/targets/{targetId} -> 204 */
static void target_delete(const sr_route_call *c)
{
    sr_admin_entry_delete(c, sr_route_param(c, "operatorId"), SR_RG_NOTIFY, sr_route_param(c, "targetId"),
                          "no such notification target");
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_notify_routes[] = {
    {"GET", "/admin/v1/operators/{operatorId}/notify/targets", targets_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ)},
    {"POST", "/admin/v1/operators/{operatorId}/notify/targets", target_create, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE)},
    {"DELETE", "/admin/v1/operators/{operatorId}/notify/targets/{targetId}", target_delete, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE)},
};
const size_t sr_admin_notify_nroutes = sizeof sr_admin_notify_routes / sizeof sr_admin_notify_routes[0];
