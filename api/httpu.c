/* api/httpu.c -- see httpu.h. */
#include "api/httpu.h"

#include "codecs/rfc3339.h"
#include "codecs/sample.h"
#include "codecs/base/sr_decimal.h"
#include "codecs/base/sr_error.h"
#include "storage/crypto.h"

#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void json_start(h2o_req_t *req, int status, size_t len)
{
    static const char *reasons[] = {"OK", "Created", "Accepted"};
    req->res.status = status;
    req->res.reason = status >= 200 && status <= 202 ? reasons[status - 200] : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    if (status == 429 && h2o_find_header(&req->res.headers, H2O_TOKEN_RETRY_AFTER, -1) == -1) /* the caller's wins */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    static h2o_generator_t gen = {NULL, NULL};
    req->res.content_length = len;
    h2o_start_response(req, &gen);
}

static void json_send(h2o_req_t *req, h2o_iovec_t *buf)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else h2o_send(req, buf, 1, H2O_SEND_STATE_FINAL);
}

void sr_http_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    /* one copy into the request's pool, and a Content-Length (h2o_send_inline
     * would copy again and answer chunked) */
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    json_start(req, status, len);
    json_send(req, &buf);
}

/* ---- answer buffers ------------------------------------------------------- */

enum { BUF_KEEP = 8, BUF_KEEP_MAX = 32 << 20 };
static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
static sr_buf buf_kept[BUF_KEEP];
static size_t buf_nkept;

void sr_http_buf_get(sr_buf *b)
{
    sr_buf_init(b);
    pthread_mutex_lock(&buf_mu);
    if (buf_nkept) *b = buf_kept[--buf_nkept];
    pthread_mutex_unlock(&buf_mu);
    b->len = 0;
}

void sr_http_buf_put(sr_buf *b)
{
    if (b->data && b->cap <= BUF_KEEP_MAX) {
        pthread_mutex_lock(&buf_mu);
        int kept = buf_nkept < BUF_KEEP;
        if (kept) buf_kept[buf_nkept++] = *b;
        pthread_mutex_unlock(&buf_mu);
        if (kept) {
            sr_buf_init(b);
            return;
        }
    }
    sr_buf_release(b);
}

void sr_http_buf_drain(void)
{
    pthread_mutex_lock(&buf_mu);
    while (buf_nkept) sr_buf_release(&buf_kept[--buf_nkept]);
    pthread_mutex_unlock(&buf_mu);
}

static void on_buf_dispose(void *slot)
{
    sr_http_buf_put((sr_buf *)slot);
}

void sr_http_json_buf(h2o_req_t *req, int status, sr_buf *b)
{
    sr_buf *slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_buf_dispose);
    *slot = *b;
    sr_buf_init(b);
    h2o_iovec_t buf = h2o_iovec_init(slot->data, slot->len);
    json_start(req, status, slot->len);
    json_send(req, &buf);
}

#define PUT_LIT(b, lit) sr_buf_append(b, lit, sizeof lit - 1)

/* ---- numbers and timestamps of the value writers ----------------------------
 * These run once per value of every answer (86,400 for a day of 1 s values),
 * so they avoid printf/strtod where the result can be computed exactly. The
 * text is the same as the reference definition below, byte for byte
 * (tests/api/test_jsonw.c compares them over millions of values). */

static const char dig2[200] = "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849"
                              "5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/* the decimal digits of u into the END of d[20]; their count */
static inline int u64_digits(uint64_t u, char d[20])
{
    char *p = d + 20;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        p -= 2;
        memcpy(p, dig2 + 2 * r, 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, dig2 + 2 * u, 2);
    } else
        *--p = (char)('0' + u);
    return (int)(d + 20 - p);
}

int sr_json_u64(char *t, uint64_t v)
{
    char d[20];
    int n = u64_digits(v, d);
    memcpy(t, d + 20 - n, (size_t)n);
    return n;
}

int sr_json_i64(char *t, int64_t v)
{
    if (v >= 0) return sr_json_u64(t, (uint64_t)v);
    t[0] = '-';
    return 1 + sr_json_u64(t + 1, (uint64_t)0 - (uint64_t)v);
}

__extension__ typedef unsigned __int128 u128;

/* 10^k, k = 0..22, exact in 128 bits */
#define P10W_19 ((u128)10000000000000000000ull)
static const u128 p10w_tab[23] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
                                  100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
                                  10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
                                  100000000000000000ull, 1000000000000000000ull, P10W_19, P10W_19 * 10,
                                  P10W_19 * 100, P10W_19 * 1000};
#define p10w(k) p10w_tab[k]

/* The shortest of %.15g, %.16g, %.17g that reads back as f, computed
 * exactly: f = m * 2^-q (m the 53-bit significand), the N-digit rounding of
 * f is D = round-half-even(m * 10^k / 2^q) with k = N - 1 - X, and D * 10^-k
 * reads back as f when it is within half a unit in the last place of f (ties
 * to the even significand, a quarter below a power of two). Only the plain
 * notation %g gives for -4 <= X < N, with q in 1..68 and k <= 21 (128-bit
 * products); otherwise 0 and the caller prints. */
static int shortest_g(char *t, double f)
{
    double a = fabs(f);
    int e;
    double fr = frexp(a, &e);
    uint64_t m = (uint64_t)ldexp(fr, 53);
    int q = 53 - e;
    if (q < 1 || q > 68 || m < (1ull << 52)) return 0;
    int x0 = (int)floor(log10(a));
    for (int nd = 15; nd <= 17; nd++) {
        int x = x0;
        uint64_t d = 0;
        u128 lo = p10w(nd - 1), hi = lo * 10;
        for (int tries = 0;; tries++) { /* x such that 10^x <= |f| < 10^(x+1) */
            int k = nd - 1 - x;
            if (x < -4 || x >= nd || k > 21 || tries > 3) return 0;
            u128 num = (u128)m * p10w(k);
            u128 r = num >> q; /* the floor of |f| * 10^k */
            if (r >= hi) x++;
            else if (r < lo) x--;
            else {
                u128 rem = num & (((u128)1 << q) - 1), half = (u128)1 << (q - 1);
                if (rem > half || (rem == half && (r & 1))) r++;
                if (r == hi) { /* 9.99..5 rounds up to the next power of ten */
                    r = lo;
                    x++;
                    if (x >= nd) return 0;
                }
                d = (uint64_t)r;
                break;
            }
        }
        int k = nd - 1 - x;
        if (nd < 17) { /* does D * 10^-k read back as f? */
            u128 lhs = (u128)d << q, rhs = (u128)m * p10w(k), tk = p10w(k);
            int below = lhs < rhs;
            u128 diff = below ? rhs - lhs : lhs - rhs;
            u128 scaled = diff * (below && m == (1ull << 52) ? 4 : 2);
            if (scaled > tk || (scaled == tk && (m & 1))) continue;
        }
        char dg[20];
        u64_digits(d, dg);
        const char *s = dg + 20 - nd; /* exactly nd digits */
        int last = nd;                /* strip the fraction's trailing zeros */
        int ip = nd - k;              /* digits before the point */
        while (last > (ip > 0 ? ip : 0) && s[last - 1] == '0') last--;
        int n = 0;
        if (f < 0) t[n++] = '-';
        if (ip > 0) {
            memcpy(t + n, s, (size_t)ip);
            n += ip;
            if (last > ip) {
                t[n++] = '.';
                memcpy(t + n, s + ip, (size_t)(last - ip));
                n += last - ip;
            }
        } else {
            t[n++] = '0';
            t[n++] = '.';
            memset(t + n, '0', (size_t)-ip);
            n += -ip;
            memcpy(t + n, s, (size_t)last);
            n += last;
        }
        return n;
    }
    return 0;
}

/* A double as JSON into t (at least 40 bytes); the length. Decimals of up to
 * 6 places below 10^15 (what gateways send) are written from their integer
 * mantissa, with the fewest places: f is m / 10^k bit for bit (sr_decimal_at,
 * codecs/base/sr_decimal.h, the definition the series encoder stores), so the
 * text reads back as f and is the shortest decimal that does ("68.29" for
 * what was sent as 68.29 or 68.290). Anything else takes the shortest %.Ng
 * (N = 15..17) that reads back as f. A real always has a '.' (as jansson
 * writes it: "100.0"), so every JSON reader reads it back as a real. */
/* a decimal u / 10^k (u < 10^15, k <= 6) into t: the digits right-aligned at
 * d + 20, then copied in two fixed-size moves (inlined): the integer part,
 * and after the point the k decimals (what is copied past them is
 * overwritten later or lies past the length) */
static inline int put_decimal(char *t, int neg, uint64_t u, int k)
{
    char d[40] = {0};
    int nd = u64_digits(u, d);
    while (nd <= k) d[20 - ++nd] = '0'; /* a leading 0 before the point */
    const char *s = d + 20 - nd;
    int n = 0, ip = nd - k;
    if (neg) t[n++] = '-';
    memcpy(t + n, s, 16);
    n += ip;
    t[n++] = '.';
    if (!k) {
        t[n++] = '0';
        return n;
    }
    memcpy(t + n, s + ip, 8);
    return n + k;
}

int sr_json_number(char *t, double f) { return sr_json_number_k(t, f, NULL); }

#define DEC_MAX UINT64_C(999999999999999) /* put_decimal's u < 10^15 */

int sr_json_number_k(char *t, double f, int *khint)
{
    if (!isfinite(f)) {
        memcpy(t, "null", 4);
        return 4;
    }
    double a = fabs(f);
    if (a < 1e15 && (f != 0 || !signbit(f))) {
        /* The places of the previous value first: if m = round(a * 10^k) is
         * not a multiple of 10 and reads back as a, no fewer places work (a
         * fewer-place u' would make m exactly u' * 10^(k-k'), a multiple of
         * 10), so sr_decimal_at would stop at this k too. The fewest places
         * at all are then the k of sr_decimal_at from 0. */
        int k = khint ? *khint : 0;
        int64_t u;
        if (k > 0 && k <= SR_DEC_MAX_SCALE && sr_decimal_is(a, (unsigned)k, DEC_MAX, &u) && u % 10)
            return put_decimal(t, f < 0, (uint64_t)u, k);
        if (sr_decimal_maybe(a) && (k = sr_decimal_at(a, 0, DEC_MAX, &u)) >= 0) {
            if (khint) *khint = k;
            return put_decimal(t, f < 0, (uint64_t)u, k);
        }
    }
    int n = shortest_g(t, f);
    if (n) goto point;
    /* the shortest of %.15g, %.16g, %.17g that reads back as f */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, 40, "%.*g", prec, f);
        if (n <= 0 || n >= 37) return 0;
        if (strtod(t, NULL) == f) break;
    }
point:
    if (!memchr(t, '.', (size_t)n) && !memchr(t, 'e', (size_t)n) && !memchr(t, 'E', (size_t)n)) {
        t[n++] = '.';
        t[n++] = '0';
    }
    return n;
}

void sr_json_ts_put(sr_json_ts *c, int64_t ms, char out[32])
{
    if (ms < -SR_JSON_TS_MAX || ms > SR_JSON_TS_MAX) {
        sr_rfc3339_format(ms, out);
        return;
    }
    /* one second after the last one, not at a minute's end (a 1 s series):
     * only the seconds' digits change */
    if (c->ok && ms - c->last == 1000 && !(c->text[17] == '5' && c->text[18] == '9')) {
        if (c->text[18] == '9') {
            c->text[18] = '0';
            c->text[17]++;
        } else
            c->text[18]++;
        c->last = ms;
        memcpy(out, c->text, 24);
        out[24] = 0;
        return;
    }
    if (!c->ok || ms < c->day || ms - c->day >= 86400000) {
        int64_t day = (ms >= 0 ? ms : ms - 86399999) / 86400000 * 86400000;
        char t[32];
        sr_rfc3339_format(day, t);
        /* a year outside 0000..9999 has no fixed-width form: not cached */
        if (t[0] < '0' || t[0] > '9' || t[4] != '-' || t[10] != 'T' || strlen(t) != 24) {
            c->ok = 0;
            sr_rfc3339_format(ms, out);
            return;
        }
        memcpy(c->date, t, 11);
        c->day = day;
        c->ok = 1;
    }
    /* unsigned 32-bit divisions by constants: multiplications */
    uint32_t r = (uint32_t)(ms - c->day), sod = r / 1000, f = r - sod * 1000;
    uint32_t h = sod / 3600, rem = sod - h * 3600, mi = rem / 60, s = rem - mi * 60;
    memcpy(out, c->date, 11);
    memcpy(out + 11, dig2 + 2 * h, 2);
    out[13] = ':';
    memcpy(out + 14, dig2 + 2 * mi, 2);
    out[16] = ':';
    memcpy(out + 17, dig2 + 2 * s, 2);
    out[19] = '.';
    out[20] = (char)('0' + f / 100);
    memcpy(out + 21, dig2 + 2 * (f % 100), 2);
    out[23] = 'Z';
    out[24] = 0;
    memcpy(c->text, out, 24);
    c->last = ms;
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
        char t[80];
        int n = snprintf(t, sizeof t, "{\"result\":{\"code\":\"%s\",\"message\":\"out of memory\"}}",
                         sr_wire_code(SR_WIRE_INTERNAL));
        sr_http_json(req, 500, t, (size_t)n);
        return;
    }
    sr_http_json(req, status, (const char *)b.data, b.len);
    sr_buf_release(&b);
}

int sr_http_result_body(sr_buf *b, sr_wire code, const char *message, json_t *detail)
{
    if (!message) message = "";
    if (!detail) { /* one per GW-IF values request: no tree (issue #13) */
        const char *c = sr_wire_code(code);
        int rc = sr_buf_append(b, "{\"result\":{\"code\":", 18);
        if (!rc) rc = sr_json_put_string(b, c, strlen(c));
        if (!rc) rc = sr_buf_append(b, ",\"message\":", 11);
        if (!rc) rc = sr_json_put_string(b, message, strlen(message));
        if (!rc) rc = sr_buf_append(b, "}}", 2);
        return rc;
    }
    json_t *r = json_pack("{s:s,s:s}", "code", sr_wire_code(code), "message", message);
    if (r) json_object_set(r, "detail", detail);
    json_t *o = r ? json_pack("{s:o}", "result", r) : NULL;
    int rc = o ? sr_json_write(b, o) : SR_ENOMEM;
    json_decref(o);
    return rc;
}

char *sr_http_body_text(h2o_req_t *req, size_t *len)
{
    size_t n = req->entity.len;
    char *t = malloc(n + 1);
    if (!t) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    if (n) memcpy(t, req->entity.base, n);
    t[n] = 0;
    *len = n;
    return t;
}

void sr_http_result(h2o_req_t *req, int status, sr_wire code, const char *message, json_t *detail)
{
    /* the answer's code, for the read's audit entry (api/access.h) */
    h2o_iovec_t *cv = h2o_req_getenv(req, H2O_STRLIT(SR_HTTP_ENV_CODE), 1);
    if (cv) {
        const char *w = sr_wire_code(code);
        cv->base = (char *)w;
        cv->len = strlen(w);
    }
    sr_buf b;
    sr_buf_init(&b);
    if (sr_http_result_body(&b, code, message, detail) != SR_OK) {
        sr_buf_release(&b);
        sr_http_jsonv(req, 500, NULL); /* its out-of-memory answer */
        return;
    }
    sr_http_json(req, status ? status : sr_wire_status(code), (const char *)b.data, b.len);
    sr_buf_release(&b);
}

void sr_http_send(h2o_req_t *req, int status, const char *content_type, const void *data, size_t len)
{
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    if (len) memcpy(copy, data, len);
    h2o_send_inline(req, copy, len);
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

/* ---- percent-decoding and request checks -------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && p[1] > 0x9F) return 0; /* surrogates */
    if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && p[1] > 0x8F) return 0; /* > U+10FFFF */
    return len;
}

int sr_pct_decode(const char *in, size_t n, int plus_space, char *out, size_t cap, size_t *olen)
{
    /* decode (into out, or only check); then UTF-8 over the result */
    unsigned char *d = out ? (unsigned char *)out : NULL;
    if (d && !cap) return SR_PCT_TOOLONG;
    size_t k = 0;
    int rc = SR_PCT_OK;
    /* when only checking: the open UTF-8 sequence */
    unsigned char pend[4];
    size_t npend = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= n || sr_unhex(in + i + 1, 1, &c)) return SR_PCT_ESCAPE;
            i += 2;
        } else if (c == '+' && plus_space)
            c = ' ';
        if (c < 0x20 || c == 0x7F) return SR_PCT_CONTROL;
        if (d) {
            if (k + 1 >= cap) return SR_PCT_TOOLONG;
            d[k] = c;
        } else if (rc == SR_PCT_OK) {
            /* UTF-8 check without an output buffer: keep the open sequence.
             * A UTF-8 error is reported after escape and control errors (as
             * when decoding into out), so the scan goes on. */
            pend[npend++] = c;
            size_t need = pend[0] < 0x80 ? 1 : pend[0] >= 0xF0 ? 4 : pend[0] >= 0xE0 ? 3 : 2;
            if (npend == need) {
                if (!utf8_seq(pend, npend)) rc = SR_PCT_UTF8;
                npend = 0;
            } else if (npend > 1 && (pend[npend - 1] & 0xC0) != 0x80)
                rc = SR_PCT_UTF8;
        }
        k++;
    }
    if (!d) {
        if (npend || rc) return SR_PCT_UTF8;
    } else {
        d[k] = 0;
        for (size_t i = 0; i < k;) {
            size_t l = utf8_seq(d + i, k - i);
            if (!l) return SR_PCT_UTF8;
            i += l;
        }
    }
    if (olen) *olen = k;
    return rc;
}

const char *sr_pct_error(int rc)
{
    switch (rc) {
    case SR_PCT_OK: return "ok";
    case SR_PCT_ESCAPE: return "an invalid percent escape ('%' needs two hex digits)";
    case SR_PCT_CONTROL: return "a NUL or control character";
    case SR_PCT_UTF8: return "invalid UTF-8";
    default: return "too long";
    }
}

static void bad_set(sr_http_bad *bad, int close, const char *field, size_t flen, const char *fmt, const char *arg)
{
    if (flen > 40) flen = 40;
    snprintf(bad->field, sizeof bad->field, "%.*s", (int)flen, field);
    /* the field as sent may hold anything: keep it printable */
    for (char *p = bad->field; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F) *p = '?';
    snprintf(bad->msg, sizeof bad->msg, fmt, bad->field, arg);
    bad->close = close;
}

int sr_http_check_target(const char *target, size_t len, char *dpath, size_t cap, size_t *dlen, sr_http_bad *bad)
{
    const char *q = memchr(target, '?', len);
    size_t pl = q ? (size_t)(q - target) : len;
    int rc = sr_pct_decode(target, pl, 0, dpath, cap, dlen);
    if (rc) {
        bad_set(bad, 0, "path", 4, "%s: %s", sr_pct_error(rc));
        return -1;
    }
    /* no "." or ".." segment, decoded (%2e%2e is ".." too) */
    const char *seg = dpath, *end = dpath + *dlen;
    for (const char *p = dpath; p <= end; p++) {
        if (p == end || *p == '/') {
            size_t sl = (size_t)(p - seg);
            if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.')) {
                bad_set(bad, 0, "path", 4, "%s: %s", "'.' and '..' segments are not allowed");
                return -1;
            }
            seg = p + 1;
        }
    }
    if (!q) return 0;
    const char *s = q + 1, *qe = target + len;
    while (s < qe) {
        const char *amp = memchr(s, '&', (size_t)(qe - s));
        if (!amp) amp = qe;
        const char *eq = memchr(s, '=', (size_t)(amp - s));
        const char *ke = eq ? eq : amp;
        char fname[96];
        int nrc = sr_pct_decode(s, (size_t)(ke - s), 1, NULL, 0, NULL);
        int vrc = eq ? sr_pct_decode(eq + 1, (size_t)(amp - eq - 1), 1, NULL, 0, NULL) : SR_PCT_OK;
        if (nrc || vrc) {
            snprintf(fname, sizeof fname, "query parameter %.*s", (int)((ke - s) > 40 ? 40 : (ke - s)), s);
            bad_set(bad, 0, fname, strlen(fname), "%s: %s", sr_pct_error(nrc ? nrc : vrc));
            return -1;
        }
        s = amp + 1;
    }
    return 0;
}

static int name_is(const char *n, size_t nl, const char *want)
{
    return strlen(want) == nl && !strncasecmp(n, want, nl);
}

int sr_http_check_head(const char *head, size_t len, sr_http_bad *bad)
{
    static const char *const single[] = {"Content-Length", "Host", "Authorization", "Content-Type"};
    int count[4] = {0}, te = 0;
    const char *p = memchr(head, '\n', len), *end = head + len;
    if (!p) return 0; /* no header lines */
    p++;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (!ll) break; /* the empty line: end of the head */
        if (p[0] == ' ' || p[0] == '\t') {
            bad_set(bad, 1, "header", 6, "%s: %s", "obsolete line folding is not allowed");
            return -1;
        }
        const char *colon = memchr(p, ':', ll);
        if (colon) {
            size_t nlen = (size_t)(colon - p);
            char fname[96];
            snprintf(fname, sizeof fname, "header %.*s", (int)(nlen > 40 ? 40 : nlen), p);
            for (const char *v = colon + 1; v < p + ll; v++) {
                unsigned char c = (unsigned char)*v;
                if ((c < 0x20 && c != '\t') || c == 0x7F) {
                    bad_set(bad, 0, fname, strlen(fname), "%s: %s", "a NUL or control character in the value");
                    return -1;
                }
            }
            for (int i = 0; i < 4; i++)
                if (name_is(p, nlen, single[i]) && ++count[i] > 1) {
                    snprintf(fname, sizeof fname, "header %s", single[i]);
                    bad_set(bad, i < 2, fname, strlen(fname), "%s: %s", "given more than once (it must be single)");
                    return -1;
                }
            if (name_is(p, nlen, "Transfer-Encoding")) te = 1;
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (te && count[0]) {
        bad_set(bad, 1, "header Transfer-Encoding", 24, "%s: %s", "not allowed together with Content-Length");
        return -1;
    }
    return 0;
}

int sr_http_check_request(h2o_req_t *req)
{
    sr_http_bad bad;
    memset(&bad, 0, sizeof bad);
    size_t cap = req->path.len + 1, dlen = 0;
    char *dpath = h2o_mem_alloc_pool(&req->pool, cap);
    int r = sr_http_check_target(req->path.base, req->path.len, dpath, cap, &dlen, &bad);
    if (!r && req->version < 0x200) {
        /* the head as sent: h2o keeps one Content-Length and one Host and
         * hides them from req->headers, so only the raw bytes show a second.
         * At this point the request's head is still at the start of the
         * connection's input buffer; checked only if it is this request's. */
        h2o_socket_t *sk = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
        const char *raw = sk && sk->input ? sk->input->bytes : NULL;
        size_t rl = raw ? sk->input->size : 0, ml = req->method.len;
        /* this request's line: "METHOD SP target SP version", the target in
         * origin form (= req->path) or absolute form (ending with it) */
        const char *eol = raw ? memchr(raw, '\n', rl) : NULL;
        int mine = eol && (size_t)(eol - raw) > ml + 1 + req->path.len && !memcmp(raw, req->method.base, ml) &&
                   raw[ml] == ' ';
        if (mine) {
            const char *sp = memchr(raw + ml + 1, ' ', (size_t)(eol - raw - (ptrdiff_t)ml - 1));
            mine = sp && (size_t)(sp - raw - (ptrdiff_t)ml - 1) >= req->path.len &&
                   !memcmp(sp - req->path.len, req->path.base, req->path.len);
        }
        if (mine) {
            const char *he = NULL;
            for (size_t i = 0; i + 3 < rl; i++)
                if (raw[i] == '\r' && raw[i + 1] == '\n' && raw[i + 2] == '\r' && raw[i + 3] == '\n') {
                    he = raw + i + 4;
                    break;
                }
            r = sr_http_check_head(raw, he ? (size_t)(he - raw) : rl, &bad);
        }
    }
    if (!r) {
        /* every version: the single headers h2o passes on */
        static const h2o_token_t *const tok[] = {H2O_TOKEN_AUTHORIZATION, H2O_TOKEN_CONTENT_TYPE};
        static const char *const nm[] = {"header Authorization", "header Content-Type"};
        for (int i = 0; i < 2 && !r; i++) {
            ssize_t k = h2o_find_header(&req->headers, tok[i], -1);
            if (k >= 0 && h2o_find_header(&req->headers, tok[i], k) >= 0) {
                bad_set(&bad, 0, nm[i], strlen(nm[i]), "%s: %s", "given more than once (it must be single)");
                r = -1;
            }
        }
    }
    if (!r) {
        req->path_normalized = h2o_iovec_init(dpath, dlen);
        return 0;
    }
    if (bad.close) req->http1_is_persistent = 0;
    json_t *detail = json_pack("{s:s}", "field", bad.field);
    sr_http_result(req, 400, SR_WIRE_PARAM, bad.msg, detail);
    json_decref(detail);
    return 1;
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
            const char *v = eq ? eq + 1 : amp;
            /* bad escapes and control characters were refused before the
             * handler; a value too long for out reads as empty (invalid) */
            if (sr_pct_decode(v, (size_t)(amp - v), 1, out, cap, NULL) != SR_PCT_OK && cap) out[0] = 0;
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
    /* h2o's parser may leave trailing blanks in a value: a token is what
     * stands before them (the same as sr_http_head_scan reads) */
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t')) v.len--;
    if (v.len < 8 || strncasecmp(v.base, "Bearer ", 7) != 0) return NULL;
    *len = v.len - 7;
    return v.base + 7;
}

static int ci_eq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(a, lit, n);
}

int sr_http_head_scan(const char *buf, size_t len, sr_http_head *out)
{
    memset(out, 0, sizeof *out);
    out->content_length = -1;
    size_t lim = len < SR_HTTP_HEAD_MAX ? len : SR_HTTP_HEAD_MAX;
    size_t pos = 0;
    int line = 0, seen_auth = 0;
    while (pos < lim) {
        const char *nl = memchr(buf + pos, '\n', lim - pos);
        if (!nl) break;
        size_t end = (size_t)(nl - buf), le = end;
        if (le > pos && buf[le - 1] == '\r') le--;
        const char *l = buf + pos;
        size_t ll = le - pos;
        pos = end + 1;
        if (line++ == 0) { /* the request line: method SP target SP version */
            const char *sp = memchr(l, ' ', ll);
            if (!ll || !sp || sp == l) return -1;
            continue;
        }
        if (ll == 0) {
            out->head_len = pos;
            return 1;
        }
        const char *colon = memchr(l, ':', ll);
        if (!colon || colon == l) return -1;
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1, *ve = l + ll;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vl = (size_t)(ve - v);
        if (ci_eq(l, nlen, "authorization")) {
            if (seen_auth++) continue; /* the first one, as h2o_find_header (sr_http_bearer) */
            if (vl > 7 && !strncasecmp(v, "Bearer ", 7)) {
                out->bearer = v + 7;
                out->bearer_len = vl - 7;
            }
        } else if (ci_eq(l, nlen, "content-length")) {
            int64_t n = 0;
            int ok = vl > 0 && vl <= 18;
            for (size_t i = 0; ok && i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') ok = 0;
                else n = n * 10 + (v[i] - '0');
            }
            if (!ok || (out->content_length >= 0 && out->content_length != n)) out->content_length = -2;
            else if (out->content_length != -2) out->content_length = n;
        }
    }
    return lim == SR_HTTP_HEAD_MAX ? -1 : 0;
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
    /* SHA-256 for every request's token: the digest fetched once and one
     * context reused (OpenSSL's one-shot SHA256() fetches the algorithm
     * under a lock and allocates a context each time: ~8 % of a latest-value
     * request on the loop). NULL: sr_sha256. */
    EVP_MD *md;
    EVP_MD_CTX *mdc;
};

static void tok_hash(sr_tokens *t, const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    if (t->mdc && EVP_DigestInit_ex2(t->mdc, t->md, NULL) == 1 && EVP_DigestUpdate(t->mdc, p, n) == 1 &&
        EVP_DigestFinal_ex(t->mdc, out, &len) == 1 && len == 32)
        return;
    sr_sha256(p, n, out);
}

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
    t->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    t->mdc = t->md ? EVP_MD_CTX_new() : NULL;
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
    EVP_MD_CTX_free(t->mdc);
    EVP_MD_free(t->md);
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

/* the entry of token, live or expired, or NULL */
static tok_head *tok_lookup(sr_tokens *t, const char *token, size_t len)
{
    uint8_t hash[32];
    tok_hash(t, token, len, hash);
    for (size_t p = tok_h(hash) & t->mask; t->ix[p]; p = (p + 1) & t->mask) {
        if (t->ix[p] == TOMB) continue;
        tok_head *h = tok_at(t, t->ix[p] - 1);
        if (!memcmp(h->hash, hash, 32)) return h;
    }
    return NULL;
}

void *sr_tokens_lookup(sr_tokens *t, const char *token, size_t len)
{
    tok_head *h = tok_lookup(t, token, len);
    return h && h->expires > tok_now() ? (void *)(h + 1) : NULL;
}

int sr_tokens_expired(sr_tokens *t, h2o_req_t *req)
{
    size_t len;
    const char *b = sr_http_bearer(req, &len);
    return sr_tokens_expired_token(t, b, b ? len : 0);
}

int sr_tokens_expired_token(sr_tokens *t, const char *token, size_t len)
{
    if (!token) return 0;
    tok_head *h = tok_lookup(t, token, len);
    return h && h->expires <= tok_now();
}

/* Room for one more entry (expired ones swept when full): 0, or -1. */
static int tok_room(sr_tokens *t, int64_t now)
{
    if (t->n >= t->max) { /* sweep the expired ones */
        for (size_t i = 0; i < t->n;) {
            if (tok_at(t, i)->expires <= now) tok_remove_at(t, i);
            else i++;
        }
    }
    if (t->n >= t->max) return -1;
    if (t->tombs > (t->mask + 1) / 4) tok_reindex(t);
    return sr_array_reserve(&t->e, &t->cap, (t->n + 1) * t->stride, 1) ? -1 : 0;
}

/* Index the new last entry (its hash set). */
static void *tok_insert_last(sr_tokens *t)
{
    tok_head *h = tok_at(t, t->n);
    size_t p = tok_h(h->hash) & t->mask;
    while (t->ix[p] && t->ix[p] != TOMB) p = (p + 1) & t->mask;
    if (t->ix[p] == TOMB) t->tombs--;
    t->ix[p] = (uint32_t)t->n + 1;
    h->slot = (uint32_t)p;
    t->n++;
    return h + 1;
}

void *sr_tokens_add(sr_tokens *t, int64_t ttl_ms, char hex[65], int64_t *expires)
{
    int64_t now = tok_now();
    uint8_t raw[32];
    if (tok_room(t, now) || sr_random(raw, sizeof raw) != SR_OK) return NULL;
    sr_hex(raw, 32, hex);
    tok_head *h = tok_at(t, t->n);
    memset(h, 0, t->stride);
    tok_hash(t, hex, 64, h->hash);
    h->expires = *expires = now + ttl_ms;
    return tok_insert_last(t);
}

void *sr_tokens_add_hashed(sr_tokens *t, const uint8_t hash[32], int64_t expires)
{
    int64_t now = tok_now();
    if (expires <= now) return NULL;
    for (size_t p = tok_h(hash) & t->mask; t->ix[p]; p = (p + 1) & t->mask)
        if (t->ix[p] != TOMB && !memcmp(tok_at(t, t->ix[p] - 1)->hash, hash, 32)) return NULL; /* already there */
    if (tok_room(t, now)) return NULL;
    tok_head *h = tok_at(t, t->n);
    memset(h, 0, t->stride);
    memcpy(h->hash, hash, 32);
    h->expires = expires;
    return tok_insert_last(t);
}

const uint8_t *sr_tokens_hash_of(const void *payload, int64_t *expires)
{
    const tok_head *h = (const tok_head *)payload - 1;
    if (expires) *expires = h->expires;
    return h->hash;
}

void sr_tokens_remove(sr_tokens *t, void *payload)
{
    tok_head *h = (tok_head *)payload - 1;
    tok_remove_at(t, (size_t)((uint8_t *)h - t->e) / t->stride);
}

size_t sr_tokens_count(const sr_tokens *t) { return t->n; }

size_t sr_tokens_sweep(sr_tokens *t, int (*fn)(void *ctx, void *payload), void *ctx)
{
    size_t removed = 0;
    for (size_t i = 0; i < t->n;) {
        if (fn(ctx, tok_at(t, i) + 1)) {
            tok_remove_at(t, i); /* the last entry moves to i: look at i again */
            removed++;
        } else
            i++;
    }
    return removed;
}

json_t *sr_sample_json(const char *data_id, sr_vtype type, const sr_sample *s)
{
    char t[32];
    sr_rfc3339_format(s->ts, t);
    json_t *v;
    switch (type) {
    case SR_VT_INTEGER: v = json_integer(s->v.i); break;
    case SR_VT_BOOL: v = json_boolean(s->v.b); break;
    case SR_VT_STRING: v = json_stringn(s->v.str.s, s->v.str.slen); break;
    default: v = isfinite(s->v.f) ? json_real(s->v.f) : json_null(); break;
    }
    return json_pack("{s:s,s:s,s:o,s:s}", "dataId", data_id, "timestamp", t, "value", v, "quality",
                     sr_quality_str(s->quality));
}

