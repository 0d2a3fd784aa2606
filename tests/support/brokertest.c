/* tests/support/brokertest.c -- see brokertest.h. */
#include "brokertest.h"

#include "api/gwif_json.h"
#include "engine/sheet.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_send(void *ctx, const char *suffix, const sr_buf *payload)
{
    bt_link *l = ctx;
    if (strcmp(suffix, "requests")) return 1;
    json_t *env = json_loadb((const char *)payload->data, payload->len, 0, NULL);
    json_t *rs = json_object_get(json_object_get(env, "body"), "requests");
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r)
    {
        if (l->t->on_request) l->t->on_request(l->t->arg, l->gw, r);
        else json_array_append_new(l->t->handed, json_pack("{s:s,s:O}", "gw", l->gw, "request", r));
    }
    json_decref(env);
    return 1;
}

int bt_import(bt *t, const char *sheet)
{
    sr_sheet *sh = NULL;
    sr_result res;
    int rc = sr_sheet_parse(sheet, strlen(sheet), NULL, &sh);
    if (!rc) rc = sr_engine_import_sheet(t->eng, sh, &res);
    sr_sheet_free(sh);
    return rc;
}

int bt_open(bt *t, const char *sheet, const char *op, const char *const *gws, size_t ngws)
{
    memset(t, 0, sizeof *t);
    if (ngws > sizeof t->links / sizeof t->links[0]) return SR_EINVAL;
    snprintf(t->op, sizeof t->op, "%s", op);
    t->dir = tu_tmpdir("broker");
    t->handed = json_array();
    sr_errinfo ei;
    sr_engine_opts o = {0};
    o.sync = SR_ENGINE_SYNC_NONE;
    int rc = t->dir && t->handed ? sr_engine_open(t->dir, &o, &t->eng, &ei) : SR_ENOMEM;
    if (!rc) rc = bt_import(t, sheet);
    if (!rc && uv_loop_init(&t->loop)) rc = SR_EIO;
    char err[256];
    if (!rc) rc = sr_broker_open(&t->loop, t->eng, t->dir, &t->b, err, sizeof err);
    for (size_t i = 0; !rc && i < ngws; i++) {
        bt_link *l = &t->links[t->nlinks++];
        l->t = t;
        snprintf(l->gw, sizeof l->gw, "%s", gws[i]);
        sr_gwlink gl = {l, on_send};
        sr_broker_gw_online(t->b, op, gws[i], &gl);
    }
    return rc;
}

int bt_run_until(bt *t, const int *flag)
{
    for (int i = 0; i < 1000000 && !*flag; i++) uv_run(&t->loop, UV_RUN_ONCE);
    return *flag ? 0 : -1;
}

static void on_gw_answer(void *ctx, const sr_gw_answer *a)
{
    bt_gw_ans *g = ctx;
    g->done++;
    snprintf(g->code, sizeof g->code, "%s", sr_wire_code(a->code));
    snprintf(g->msg, sizeof g->msg, "%s", a->message ? a->message : "");
}

int bt_gw_send(bt *t, const char *op, const char *gw, const char *suffix, const char *type, const char *body,
               bt_gw_ans *g)
{
    static unsigned mids;
    char env[4096];
    snprintf(env, sizeof env,
             "{\"header\":{\"messageType\":\"%s\",\"messageId\":\"bt-%u\",\"timestamp\":\"2026-01-01T00:00:00.000Z\"},"
             "\"body\":%s}",
             type, ++mids, body);
    memset(g, 0, sizeof *g);
    sr_gw_msg m;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    if (sr_gw_parse(env, strlen(env), &m, &err) != SR_OK) {
        snprintf(g->msg, sizeof g->msg, "%s", err.message);
        return -1;
    }
    sr_broker_gw_message(t->b, op, gw, "test", suffix, &m, on_gw_answer, g);
    sr_gw_msg_release(&m);
    if (bt_run_until(t, &g->done)) return -2;
    uv_run(&t->loop, UV_RUN_NOWAIT);
    return g->done == 1 ? 0 : -3;
}

json_t *bt_request(bt *t, const char *gw, const char *type, size_t n)
{
    size_t i;
    json_t *h;
    json_array_foreach(t->handed, i, h)
    {
        json_t *r = json_object_get(h, "request");
        if (!strcmp(json_string_value(json_object_get(h, "gw")), gw) &&
            !strcmp(json_string_value(json_object_get(r, "type")), type) && !n--)
            return r;
    }
    return NULL;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void bt_close(bt *t)
{
    if (t->b) {
        sr_broker_quiesce(t->b);
        (void)!sr_engine_close(t->eng);
        t->eng = NULL;
        sr_broker_flush(t->b);
        sr_broker_dispose(t->b);
        uv_run(&t->loop, UV_RUN_NOWAIT);
        if (uv_loop_alive(&t->loop)) {
            uv_walk(&t->loop, close_walk, NULL);
            uv_run(&t->loop, UV_RUN_DEFAULT);
        }
        sr_broker_free(t->b);
        uv_loop_close(&t->loop);
    }
    if (t->eng) (void)!sr_engine_close(t->eng);
    json_decref(t->handed);
    if (t->dir) tu_rmrf(t->dir);
    free(t->dir);
    memset(t, 0, sizeof *t);
}
