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
    while (sr_rec_next_registry(&r, &re) == 1)
        if (re.id[0] != '*') json_array_append_new(items, target_json(&re)); /* not the domains' entry */
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
    if (sr_notify_target_ok_op(sr_admin_engine(c), &sr_admin_conf_of(c)->notify, sr_route_param(c, "operatorId"), full,
                               why, sizeof why)) {
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

/* GET .../notify/mail-domains -> 200 {"domains":[...],"platform":"..."}: the
 * operator's own list (empty: the platform's applies) */
static void domains_get(const sr_route_call *c)
{
    const char *op = sr_route_param(c, "operatorId");
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(sr_admin_engine(c), op, SR_RG_NOTIFY, SR_NOTIFY_DOMAINS_ID, &r, &re);
    if (rc && rc != SR_ENOTFOUND) {
        sr_rec_close(&r);
        return sr_http_result(c->req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
    }
    json_t *arr = json_array();
    for (const char *p = rc ? "" : re.pattern; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) json_array_append_new(arr, json_stringn(p, n));
        p += n + (e ? 1 : 0);
    }
    sr_rec_close(&r);
    const char *plat = sr_admin_conf_of(c)->notify.mail_domains;
    json_t *o = json_pack("{s:o,s:s}", "domains", arr, "platform", plat ? plat : "");
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

/* PUT .../notify/mail-domains {"domains":["a.example.jp"]}: each one of the
 * platform's list ([notify] mail_allowed_domains); [] removes the narrowing */
static void domains_put(const sr_route_call *c)
{
    json_t *body = sr_admin_body(c);
    if (!body) return;
    json_t *arr = json_object_get(body, "domains");
    char list[1024] = "";
    size_t len = 0;
    const char *plat = sr_admin_conf_of(c)->notify.mail_domains;
    if (!json_is_array(arr)) {
        sr_admin_bad_field(c, "domains", "an array of mail domains");
        goto done;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *d = json_string_value(json_array_get(arr, i));
        char why[300];
        if (!d || !d[0] || strpbrk(d, " ,;<>@\r\n") || len + strlen(d) + 2 > sizeof list) {
            sr_admin_bad_field(c, "domains", "domain names (at most 1000 bytes in all)");
            goto done;
        }
        if (!sr_notify_domain_in(plat ? plat : "", d)) {
            snprintf(why, sizeof why, "%s is not in the platform's list ([notify] mail_allowed_domains)", d);
            sr_admin_bad_field(c, "domains", why);
            goto done;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? "," : "", d);
    }
    const char *op = sr_route_param(c, "operatorId");
    sr_reg_entry re = {.kind = SR_RG_NOTIFY, .id = SR_NOTIFY_DOMAINS_ID, .name = "", .url = "", .access = "",
                       .pattern = list};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = sr_admin_env(c, op);
    sr_admin_submit(c, sr_cmd_registry_put(&env, &re, &b), &b, 200, json_pack("{s:O}", "domains", arr));
done:
    json_decref(body);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_notify_routes[] = {
    {"GET", "/admin/v1/operators/{operatorId}/notify/targets", targets_list, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"POST", "/admin/v1/operators/{operatorId}/notify/targets", target_create, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"DELETE", "/admin/v1/operators/{operatorId}/notify/targets/{targetId}", target_delete, SR_CALLER_ADMIN,
     SR_BODY_SMALL, ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
    {"GET", "/admin/v1/operators/{operatorId}/notify/mail-domains", domains_get, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_READ), SR_FWD_OPERATOR},
    {"PUT", "/admin/v1/operators/{operatorId}/notify/mail-domains", domains_put, SR_CALLER_ADMIN, SR_BODY_SMALL,
     ACT(SETUP_MANAGE), SR_FWD_OPERATOR},
};
const size_t sr_admin_notify_nroutes = sizeof sr_admin_notify_routes / sizeof sr_admin_notify_routes[0];
