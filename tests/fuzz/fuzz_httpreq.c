/* tests/fuzz/fuzz_httpreq.c -- the HTTP request parsing in front of the
 * handlers, on arbitrary bytes taken as a raw HTTP/1 request:
 *
 *  - api/httpu.c sr_http_head_scan (the guard of api/gwif_http.c reads the
 *    head of a request whose body is still arriving): never reads past the
 *    bytes or SR_HTTP_HEAD_MAX, and agrees with what h2o's own parser
 *    (picohttpparser, inside libh2o) and sr_http_bearer make of the same
 *    head (same end, same bearer token);
 *  - the request as a handler sees it: h2o's path normalisation, then
 *    api/routes.c sr_route_find over every route list (parameters: pieces
 *    of the normalised path, by name),
 *    api/httpu.c sr_http_query (percent-decoding into a bounded buffer,
 *    always terminated), sr_http_bearer, sr_http_is / sr_http_method.
 *
 * The first byte picks the output capacity of the query decoding (1..256)
 * so that truncation is exercised. Corpus: tests/fuzz/httpreq/. */
#include "api/httpu.h"
#include "api/routes.h"

#include <h2o.h>
#include <h2o/url.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* picohttpparser, as libh2o exports it (h2o does not install its header) */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) abort();                                                                                             \
    } while (0)

static size_t rtrim(const char *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    return n;
}

static const char *const names[] = {"ids", "dataIds", "from", "to", "interval", "aggregate", "limit",
                                    "async", "order", "cursor", "prefix", "q", "", "a&b", "%41"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t cap = 1 + data[0];
    /* the request bytes, in their own allocation so that ASan sees any overread */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, n);

    sr_http_head h;
    int hs = sr_http_head_scan(buf, n, &h);
    CHECK(hs >= -1 && hs <= 1);
    if (hs == 1) {
        CHECK(h.head_len <= n && h.head_len <= SR_HTTP_HEAD_MAX);
        if (h.bearer) CHECK(h.bearer >= buf && h.bearer + h.bearer_len <= buf + h.head_len);
        CHECK(h.content_length >= -2);
    }

    const char *method, *path;
    size_t mlen, plen, nh = 100;
    int minor;
    struct phr_header hdr[100];
    size_t inlen = n < SR_HTTP_HEAD_MAX ? n : SR_HTTP_HEAD_MAX;
    int reqlen = phr_parse_request(buf, inlen, &method, &mlen, &path, &plen, &minor, hdr, &nh, 0);
    if (reqlen > 0) {
        h2o_req_t req;
        memset(&req, 0, sizeof req);
        h2o_mem_init_pool(&req.pool);
        req.method = h2o_iovec_init(method, mlen);
        req.path = h2o_iovec_init(path, plen);
        for (size_t i = 0; i < nh; i++) {
            /* h2o 2.2 lower-cases header names before looking them up */
            if (hdr[i].name) h2o_strtolower((char *)hdr[i].name, hdr[i].name_len);
            const h2o_token_t *t = hdr[i].name ? h2o_lookup_token(hdr[i].name, hdr[i].name_len) : NULL;
            if (t) h2o_add_header(&req.pool, &req.headers, t, NULL, hdr[i].value, hdr[i].value_len);
            else
                h2o_add_header_by_str(&req.pool, &req.headers, hdr[i].name ? hdr[i].name : "", hdr[i].name_len, 0,
                                      NULL, hdr[i].value, hdr[i].value_len);
        }
        /* the guard and the handlers agree on the head and its token (a
         * complete head that the scan refuses is only ever cut, never let through) */
        if (hs == 1) {
            CHECK(h.head_len == (size_t)reqlen);
            size_t bl = 0;
            const char *b = sr_http_bearer(&req, &bl);
            int obs_fold = 0;
            for (size_t i = 0; i < nh; i++) obs_fold |= hdr[i].name == NULL;
            if (!obs_fold) {
                CHECK(!b == !h.bearer);
                if (b) CHECK(rtrim(b, bl) == rtrim(h.bearer, h.bearer_len) && !memcmp(b, h.bearer, rtrim(b, bl)));
            }
        }
        /* what h2o gives the handler */
        size_t *norm_indexes = NULL;
        req.query_at = SIZE_MAX;
        req.path_normalized = h2o_url_normalize_path(&req.pool, path, plen, &req.query_at, &norm_indexes);
        CHECK(req.query_at == SIZE_MAX || req.query_at < plen);
        for (size_t l = 0; l < sr_nroute_lists; l++) {
            sr_route_call rc;
            int known = 0;
            const sr_route *r = sr_route_find(sr_route_lists[l].rows, *sr_route_lists[l].n, method, mlen,
                                              req.path_normalized.base, req.path_normalized.len, &rc, &known);
            if (!r) continue;
            CHECK(known && rc.route == r && rc.nparams <= SR_ROUTE_PARAMS && sr_http_method(&req, r->method));
            for (size_t k = 0; k < rc.nparams; k++) {
                /* a parameter is a non-empty piece of the path, one segment unless it is the rest */
                char name[32];
                CHECK(rc.name_len[k] < sizeof name);
                memcpy(name, rc.name[k], rc.name_len[k]);
                name[rc.name_len[k]] = 0;
                const char *v = sr_route_param(&rc, name);
                CHECK((v == NULL) == (rc.too_long[k] != 0));
                if (!v) continue;
                size_t vl = strlen(v);
                CHECK(vl > 0 && vl < SR_ROUTE_PARAM_MAX && vl <= req.path_normalized.len);
                CHECK(!strcmp(name, "path") || !memchr(v, '/', vl));
                int inside = 0;
                for (size_t at = 0; !inside && at + vl <= req.path_normalized.len; at++)
                    inside = !memcmp(req.path_normalized.base + at, v, vl);
                CHECK(inside);
            }
        }
        (void)sr_http_is(&req, "GET", "/api/v1/stored-values");
        char *out = malloc(cap);
        for (size_t k = 0; out && k < sizeof names / sizeof names[0]; k++) {
            memset(out, 'Z', cap);
            if (sr_http_query(&req, names[k], out, cap)) CHECK(memchr(out, 0, cap) != NULL);
        }
        free(out);
        h2o_mem_clear_pool(&req.pool);
    }
    free(buf);
    return 0;
}
