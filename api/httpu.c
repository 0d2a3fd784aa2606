/* api/httpu.c -- see httpu.h. */
#include "api/httpu.h"

#include "engine/sr_error.h"
#include "storage/crypto.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void sr_http_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    static const char *reasons[] = {"OK", "Created", "Accepted"};
    req->res.status = status;
    req->res.reason = status >= 200 && status <= 202 ? reasons[status - 200] : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    if (status == 429) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    /* one copy into the request's pool, and a Content-Length (h2o_send_inline
     * would copy again and answer chunked) */
    static h2o_generator_t gen = {NULL, NULL};
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    req->res.content_length = len;
    h2o_start_response(req, &gen);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

#define PUT_LIT(b, lit) sr_buf_append(b, lit, sizeof lit - 1)
static int put_s(sr_buf *b, const char *s, size_t n) { return sr_buf_append(b, s, n); }

int sr_json_put_string(sr_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = PUT_LIT(b, "\"");
    size_t run = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (i > run) rc = put_s(b, s + run, i - run);
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (!rc) {
            if (c == '"' || c == '\\') {
                esc[1] = (char)c;
                rc = put_s(b, esc, 2);
            } else if (c == '\n') rc = PUT_LIT(b, "\\n");
            else if (c == '\t') rc = PUT_LIT(b, "\\t");
            else rc = put_s(b, esc, 6);
        }
        run = i + 1;
    }
    if (!rc && n > run) rc = put_s(b, s + run, n - run);
    return rc ? rc : PUT_LIT(b, "\"");
}

/* A double as JSON into t (at least 40 bytes); the length. Decimals of up to
 * 6 places below 10^15 (what gateways send) are written from their integer
 * mantissa: m / 10^k == f exactly, so the text reads back as f. Anything else
 * takes the shortest %.Ng (N = 15..17) that reads back as f. A real always
 * has a '.' (as jansson writes it). */
int sr_json_number(char *t, double f)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    if (!isfinite(f)) {
        memcpy(t, "null", 4);
        return 4;
    }
    double a = fabs(f);
    if (a < 1e15 && (f != 0 || !signbit(f)))
        for (int k = 0; k <= 6; k++) {
            double m = a * p10[k];
            if (m >= 1e15) break;
            if (m != floor(m) || m / p10[k] != a) continue;
            uint64_t u = (uint64_t)m;
            char d[24];
            int nd = 0;
            do {
                d[nd++] = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            while (nd <= k) d[nd++] = '0'; /* a leading 0 before the point */
            int n = 0;
            if (f < 0) t[n++] = '-';
            for (int i = nd - 1; i >= 0; i--) {
                t[n++] = d[i];
                if (i == k && k) t[n++] = '.';
            }
            if (!k) {
                t[n++] = '.';
                t[n++] = '0';
            }
            return n;
        }
    /* the shortest of %.15g, %.16g, %.17g that reads back as f */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, 40, "%.*g", prec, f);
        if (n <= 0 || n >= 37) return 0;
        if (strtod(t, NULL) == f) break;
    }
    if (!strpbrk(t, ".eE")) {
        t[n++] = '.';
        t[n++] = '0';
    }
    return n;
}

int sr_json_write(sr_buf *b, json_t *v)
{
    char t[48];
    int rc = SR_OK;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        rc = PUT_LIT(b, "{");
        json_object_foreach(v, k, x)
        {
            if (!rc && !first) rc = PUT_LIT(b, ",");
            first = 0;
            if (!rc) rc = sr_json_put_string(b, k, strlen(k));
            if (!rc) rc = PUT_LIT(b, ":");
            if (!rc) rc = sr_json_write(b, x);
        }
        return rc ? rc : PUT_LIT(b, "}");
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        rc = PUT_LIT(b, "[");
        json_array_foreach(v, i, x)
        {
            if (!rc && i) rc = PUT_LIT(b, ",");
            if (!rc) rc = sr_json_write(b, x);
        }
        return rc ? rc : PUT_LIT(b, "]");
    }
    case JSON_STRING: return sr_json_put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        int n = snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return sr_buf_append(b, t, (size_t)n);
    }
    case JSON_REAL: {
        int n = sr_json_number(t, json_real_value(v));
        if (!n) return SR_EINVAL;
        return sr_buf_append(b, t, (size_t)n);
    }
    case JSON_TRUE: return PUT_LIT(b, "true");
    case JSON_FALSE: return PUT_LIT(b, "false");
    default: return PUT_LIT(b, "null");
    }
}

void sr_http_jsonv(h2o_req_t *req, int status, json_t *v)
{
    sr_buf b;
    sr_buf_init(&b);
    if (!v || sr_json_write(&b, v) != SR_OK) {
        sr_buf_release(&b);
        sr_http_json(req, 500, "{\"result\":{\"code\":\"E9001\",\"message\":\"out of memory\"}}", 55);
        return;
    }
    sr_http_json(req, status, (const char *)b.data, b.len);
    sr_buf_release(&b);
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

/* ---- session tokens --------------------------------------------------- */

typedef struct tok_head {
    uint8_t hash[32];
    int64_t expires;
    uint32_t slot; /* where the index points at it */
} tok_head;

struct sr_tokens {
    uint8_t *e;    /* dense entries: tok_head + payload, `stride` bytes each */
    size_t n, cap, stride, max, payload;
    uint32_t *ix;  /* open addressing: entry index + 1; 0 empty; TOMB removed */
    size_t mask, tombs;
    void (*drop)(void *);
};

#define TOMB UINT32_MAX

static int64_t tok_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static tok_head *tok_at(sr_tokens *t, size_t i) { return (tok_head *)(t->e + i * t->stride); }

static uint64_t tok_h(const uint8_t *hash)
{
    uint64_t h;
    memcpy(&h, hash, 8);
    return h;
}

sr_tokens *sr_tokens_new(size_t max, size_t payload, void (*drop)(void *))
{
    sr_tokens *t = calloc(1, sizeof *t);
    size_t slots = 16;
    while (slots < max * 2) slots *= 2;
    if (!t || !(t->ix = calloc(slots, sizeof *t->ix))) {
        free(t);
        return NULL;
    }
    t->mask = slots - 1;
    t->max = max;
    t->payload = payload;
    t->stride = (sizeof(tok_head) + payload + 15) & ~(size_t)15;
    t->drop = drop;
    return t;
}

void sr_tokens_free(sr_tokens *t)
{
    if (!t) return;
    for (size_t i = 0; t->drop && i < t->n; i++) t->drop(tok_at(t, i) + 1);
    free(t->e);
    free(t->ix);
    free(t);
}

static void tok_remove_at(sr_tokens *t, size_t i)
{
    tok_head *h = tok_at(t, i);
    if (t->drop) t->drop(h + 1);
    t->ix[h->slot] = TOMB;
    t->tombs++;
    if (i != t->n - 1) { /* the last entry takes its place */
        memcpy(h, tok_at(t, t->n - 1), t->stride);
        t->ix[h->slot] = (uint32_t)i + 1;
    }
    t->n--;
}

/* rebuild the index (too many tombstones) */
static void tok_reindex(sr_tokens *t)
{
    memset(t->ix, 0, (t->mask + 1) * sizeof *t->ix);
    t->tombs = 0;
    for (size_t i = 0; i < t->n; i++) {
        tok_head *h = tok_at(t, i);
        size_t p = tok_h(h->hash) & t->mask;
        while (t->ix[p]) p = (p + 1) & t->mask;
        t->ix[p] = (uint32_t)i + 1;
        h->slot = (uint32_t)p;
    }
}

void *sr_tokens_find(sr_tokens *t, h2o_req_t *req)
{
    size_t len;
    const char *b = sr_http_bearer(req, &len);
    return b ? sr_tokens_lookup(t, b, len) : NULL;
}

void *sr_tokens_lookup(sr_tokens *t, const char *token, size_t len)
{
    uint8_t hash[32];
    sr_sha256(token, len, hash);
    for (size_t p = tok_h(hash) & t->mask; t->ix[p]; p = (p + 1) & t->mask) {
        if (t->ix[p] == TOMB) continue;
        tok_head *h = tok_at(t, t->ix[p] - 1);
        if (!memcmp(h->hash, hash, 32)) return h->expires > tok_now() ? (void *)(h + 1) : NULL;
    }
    return NULL;
}

void *sr_tokens_add(sr_tokens *t, int64_t ttl_ms, char hex[65], int64_t *expires)
{
    int64_t now = tok_now();
    if (t->n >= t->max) { /* sweep the expired ones */
        for (size_t i = 0; i < t->n;) {
            if (tok_at(t, i)->expires <= now) tok_remove_at(t, i);
            else i++;
        }
    }
    if (t->n >= t->max) return NULL;
    if (t->tombs > (t->mask + 1) / 4) tok_reindex(t);
    uint8_t raw[32];
    if (sr_random(raw, sizeof raw) != SR_OK) return NULL;
    if (sr_array_reserve(&t->e, &t->cap, (t->n + 1) * t->stride, 1)) return NULL;
    sr_hex(raw, 32, hex);
    tok_head *h = tok_at(t, t->n);
    memset(h, 0, t->stride);
    sr_sha256(hex, 64, h->hash);
    h->expires = *expires = now + ttl_ms;
    size_t p = tok_h(h->hash) & t->mask;
    while (t->ix[p] && t->ix[p] != TOMB) p = (p + 1) & t->mask;
    if (t->ix[p] == TOMB) t->tombs--;
    t->ix[p] = (uint32_t)t->n + 1;
    h->slot = (uint32_t)p;
    t->n++;
    return h + 1;
}

void sr_tokens_remove(sr_tokens *t, void *payload)
{
    tok_head *h = (tok_head *)payload - 1;
    tok_remove_at(t, (size_t)((uint8_t *)h - t->e) / t->stride);
}

size_t sr_tokens_count(const sr_tokens *t) { return t->n; }
