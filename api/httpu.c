/* api/httpu.c -- see httpu.h. */
#include "api/httpu.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sr_http_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    static const char *reasons[] = {"OK", "Created", "Accepted"};
    req->res.status = status;
    req->res.reason = status >= 200 && status <= 202 ? reasons[status - 200] : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    if (status == 429) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

void sr_http_jsonv(h2o_req_t *req, int status, json_t *v)
{
    /* 15 significant digits: every decimal of up to 15 digits (what gateways
     * send) prints as it was sent (604.22, not 604.22000000000003) */
    char *txt = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    if (!txt) {
        sr_http_json(req, 500, "{\"result\":{\"code\":\"E9001\",\"message\":\"out of memory\"}}", 55);
        return;
    }
    sr_http_json(req, status, txt, strlen(txt));
    free(txt);
}

int sr_http_status_of(const char *code)
{
    if (!strcmp(code, "0")) return 200;
    if (!strcmp(code, "E1003")) return 413;
    if (!strncmp(code, "E1", 2)) return 400;
    if (!strcmp(code, "E2003")) return 403;
    if (!strncmp(code, "E2", 2)) return 401;
    if (!strcmp(code, "E3001")) return 404;
    if (!strcmp(code, "E3002")) return 409;
    if (!strcmp(code, "E4001")) return 503;
    if (!strcmp(code, "E4002")) return 504;
    if (!strcmp(code, "E4003")) return 502;
    if (!strcmp(code, "E4004") || !strncmp(code, "E5", 2)) return 422;
    if (!strcmp(code, "E9002")) return 429;
    return 500;
}

void sr_http_result(h2o_req_t *req, int status, const char *code, const char *message, json_t *detail)
{
    json_t *r = json_pack("{s:s,s:s}", "code", code, "message", message ? message : "");
    if (r && detail) json_object_set(r, "detail", detail);
    json_t *o = r ? json_pack("{s:o}", "result", r) : NULL;
    sr_http_jsonv(req, status ? status : sr_http_status_of(code), o);
    json_decref(o);
}

void sr_http_no_content(h2o_req_t *req)
{
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, NULL, 0);
}

static void on_dispose(void *slot)
{
    sr_http_ctx *c = *(sr_http_ctx **)slot;
    c->req = NULL;
    sr_http_ctx_unref(c);
}

void *sr_http_ctx_new(h2o_req_t *req, size_t size)
{
    sr_http_ctx *c = calloc(1, size);
    if (!c) return NULL;
    sr_http_ctx **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_dispose);
    *slot = c;
    c->req = req;
    c->refs = 1;
    return c;
}

void sr_http_ctx_unref(sr_http_ctx *c)
{
    if (--c->refs == 0) {
        if (c->on_free) c->on_free(c);
        free(c);
    }
}

int sr_http_is(h2o_req_t *req, const char *method, const char *path)
{
    return h2o_memis(req->method.base, req->method.len, method, strlen(method)) &&
           h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

int sr_http_method(h2o_req_t *req, const char *method)
{
    return h2o_memis(req->method.base, req->method.len, method, strlen(method));
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int sr_http_query(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    if (req->query_at == SIZE_MAX) return 0;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp) amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        const char *ke = eq ? eq : amp;
        if ((size_t)(ke - q) == nl && !memcmp(q, name, nl)) {
            size_t n = 0;
            for (const char *p = eq ? eq + 1 : amp; p < amp && n + 1 < cap; p++) {
                if (*p == '+') out[n++] = ' ';
                else if (*p == '%' && p + 2 < amp && hexv(p[1]) >= 0 && hexv(p[2]) >= 0) {
                    out[n++] = (char)(hexv(p[1]) * 16 + hexv(p[2]));
                    p += 2;
                } else
                    out[n++] = *p;
            }
            out[n] = 0;
            return 1;
        }
        q = amp + 1;
    }
    return 0;
}

const char *sr_http_bearer(h2o_req_t *req, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0) return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 8 || strncasecmp(v.base, "Bearer ", 7) != 0) return NULL;
    *len = v.len - 7;
    return v.base + 7;
}
