/*
 * api/httpu.h -- what the HTTP bindings (GW-IF /gw/v1, AP-IF /api/v1) share
 * on libh2o: JSON answers with interface.md's error body, a request
 * context that outlives the h2o request safely, and the checks every request
 * passes before a handler sees it (the server's one percent-decoder, strict
 * path / query / head parsing: sr_http_check_request).
 */
#ifndef SR_HTTPU_H
#define SR_HTTPU_H

#include "api/wire.h"
#include "codecs/base/sr_alloc.h"
#include "codecs/jsonlex.h"
#include "codecs/sample.h"

#include <h2o.h>
#include <jansson.h>

/* Send body (copied) with status. */
void sr_http_json(h2o_req_t *req, int status, const char *body, size_t len);
/* JSON text, written by us rather than jansson: numbers exact and short
 * (a decimal prints as it was sent, 604.22; any other double with the
 * fewest digits that read back as it), keys in insertion order. */
int sr_json_write(sr_buf *b, json_t *v);
/* strings: sr_json_put_string (codecs/jsonlex.h), the one escaper */
/* One stored value as AP-IF answers it: {dataId, timestamp, value, quality}
 * (the value as its point's type says; a double that is not finite: null). */
json_t *sr_sample_json(const char *data_id, sr_vtype type, const sr_sample *s);
/* a double into t (>= 40 bytes): its length, 0 on failure; "null" if not finite */
int sr_json_number(char *t, double f);
/* the same, faster for a run of values with the same decimal places: *khint
 * (start at 0) remembers the places of the last decimal written */
int sr_json_number_k(char *t, double f, int *khint);
/* an integer into t (>= 21 bytes, no NUL): its length */
int sr_json_u64(char *t, uint64_t v);
int sr_json_i64(char *t, int64_t v);
/* Timestamps of a value writer: the same text as sr_rfc3339_format (24
 * characters and a NUL), the "YYYY-MM-DDT" of the last day kept (values
 * come in time order). Zero-initialise: sr_json_ts c = {0}. */
typedef struct sr_json_ts {
    int64_t day;  /* ms of the cached day's start */
    int64_t last; /* the last time written, when ok */
    int ok;
    char date[12];
    char text[24]; /* the last time's text */
} sr_json_ts;
#define SR_JSON_TS_MAX ((int64_t)1 << 60)
void sr_json_ts_put(sr_json_ts *c, int64_t ms, char out[32]);

/* Send the JSON text in b with status, without a copy: b's memory is taken
 * (b is left empty) and handed back to the answer buffers below when h2o is
 * done with the request. */
void sr_http_json_buf(h2o_req_t *req, int status, sr_buf *b);
/* Answer buffers: a large answer (a day of raw values is ~8 MB) is written
 * into a recycled buffer, whose pages are already mapped, instead of a fresh
 * allocation each time. get gives an empty buffer (maybe with capacity), put
 * keeps a few (at most 8, of at most 32 MiB each) and frees the others.
 * Thread-safe (the thread pool writes, the loop sends). */
void sr_http_buf_get(sr_buf *b);
void sr_http_buf_put(sr_buf *b);
/* frees the kept buffers (at exit) */
void sr_http_buf_drain(void);

/* Send a JSON value (not consumed) with status (sr_json_write). */
void sr_http_jsonv(h2o_req_t *req, int status, json_t *v);
/* {"result":{"code","message","detail?"}} with the status interface.md gives
 * the code (sr_wire_status, when status is 0) or the one given. */
void sr_http_result(h2o_req_t *req, int status, sr_wire code, const char *message, json_t *detail);
/* The request's environment entry sr_http_result sets to the answer's wire
 * code (a static string; what a read's audit entry records, api/access.h). */
#define SR_HTTP_ENV_CODE "sr-wire-code"

/* The request's body as text (a sheet, a CSV, a PEM): a malloc'd copy with
 * a NUL after its *len bytes, for work on the worker queue (the request's
 * memory may go meanwhile); NULL after answering 500 (out of memory). */
char *sr_http_body_text(h2o_req_t *req, size_t *len);
/* Its body into b: without a detail written straight (every GW-IF values
 * answer: no tree, the bytes sr_json_write gives the same object), with
 * one through the tree. SR_OK or SR_ENOMEM. */
int sr_http_result_body(sr_buf *b, sr_wire code, const char *message, json_t *detail);
/* An answer of another type than JSON (a PEM, a CSV sheet): status, the
 * Content-Type, the bytes (copied into the request's pool). */
void sr_http_send(h2o_req_t *req, int status, const char *content_type, const void *data, size_t len);
/* 204 No Content */
void sr_http_no_content(h2o_req_t *req);

/* A context shared by an h2o request and work that finishes later (engine
 * completion, broker answer, auth job): refcounted; req becomes NULL when
 * h2o disposes of the request first. */
typedef struct sr_http_ctx {
    h2o_req_t *req;
    int refs;
    void (*on_free)(struct sr_http_ctx *); /* optional */
} sr_http_ctx;

/* Allocate size bytes (>= sizeof(sr_http_ctx)), zeroed, tied to req; refs 1. */
void *sr_http_ctx_new(h2o_req_t *req, size_t size);
void sr_http_ctx_unref(sr_http_ctx *c);

/* Session tokens (both HTTP bindings): 256-bit random, kept only as their
 * SHA-256 with an expiry and the caller's payload (`payload` bytes, zeroed
 * when added). Found by hash in O(1); at most `max` live tokens (expired
 * ones are kept, so that an expired token can be told from an unknown one,
 * until the table is full: then sr_tokens_add sweeps them). A payload
 * pointer is valid until the next sr_tokens_add or sr_tokens_remove. One
 * thread at a time (the loop's). */
typedef struct sr_tokens sr_tokens;
sr_tokens *sr_tokens_new(size_t max, size_t payload, void (*drop)(void *payload));
void sr_tokens_free(sr_tokens *t);
/* the payload of req's bearer token, if known and not expired; else NULL */
void *sr_tokens_find(sr_tokens *t, h2o_req_t *req);
void *sr_tokens_lookup(sr_tokens *t, const char *token, size_t len);
/* 1 if req's bearer token (or token) is one this table issued whose expiry
 * has passed and that is still held (not swept, not removed): the caller
 * answers E2002 "session expired"; 0 for any other (E2001) */
int sr_tokens_expired(sr_tokens *t, h2o_req_t *req);
int sr_tokens_expired_token(sr_tokens *t, const char *token, size_t len);
/* a new token (hex, 64 digits + NUL) living ttl_ms: its payload to fill, or
 * NULL (table full of live tokens, or no randomness) */
void *sr_tokens_add(sr_tokens *t, int64_t ttl_ms, char hex[65], int64_t *expires);
void sr_tokens_remove(sr_tokens *t, void *payload);
/* A token known by its hash only (a session kept across a restart,
 * sr_each_session): its payload to fill, or NULL (expired, already
 * there, table full). */
void *sr_tokens_add_hashed(sr_tokens *t, const uint8_t hash[32], int64_t expires);
/* The hash (SHA-256 of the token) and expiry of a payload's token. */
const uint8_t *sr_tokens_hash_of(const void *payload, int64_t *expires);
size_t sr_tokens_count(const sr_tokens *t);
/* fn on every token's payload (live or expired, in no order); a token for
 * which fn returns 1 is removed (its drop runs after fn). How many went. */
size_t sr_tokens_sweep(sr_tokens *t, int (*fn)(void *ctx, void *payload), void *ctx);

/* ---- request parsing checks (one percent-decoder for the whole server) ---- */

enum {
    SR_PCT_OK = 0,
    SR_PCT_ESCAPE = -1,  /* '%' not followed by two hex digits */
    SR_PCT_CONTROL = -2, /* a NUL or other control character (0x00-0x1f, 0x7f), decoded or not */
    SR_PCT_UTF8 = -3,    /* not valid UTF-8 (overlong, surrogate, > U+10FFFF, truncated) */
    SR_PCT_TOOLONG = -4, /* the decoded text does not fit out */
};
/* Percent-decode in[0..n) into out (cap bytes, NUL-terminated; out may be
 * NULL to only check), '+' as a space if plus_space (query strings). The
 * result must be valid UTF-8 without control characters. *olen (optional)
 * gets the decoded length. Returns SR_PCT_OK or an SR_PCT_* error. The only
 * percent-decoder of the server: query values, data ids and the request
 * path all go through it. */
int sr_pct_decode(const char *in, size_t n, int plus_space, char *out, size_t cap, size_t *olen);
/* what an SR_PCT_* error means, for messages ("an invalid percent escape") */
const char *sr_pct_error(int rc);

/* What is wrong with a request: the field (for the error's detail) and why. */
typedef struct sr_http_bad {
    char field[80];  /* "path", "query parameter x", "header Content-Length" */
    char msg[200];
    int close;       /* 1: framing in doubt (Content-Length / Transfer-Encoding / Host): close after answering */
} sr_http_bad;

/* The request target (path and query, as sent): every path segment and
 * query name and value must decode (sr_pct_decode); no "." or ".." path
 * segment. The decoded path (no query) goes to dpath (cap bytes) and *dlen.
 * 0 if fine, -1 with *bad filled. */
int sr_http_check_target(const char *target, size_t len, char *dpath, size_t cap, size_t *dlen, sr_http_bad *bad);
/* The raw HTTP/1 request head (request line, header lines, up to the empty
 * line or len): Content-Length, Host, Authorization and Content-Type at most
 * once; no Transfer-Encoding together with Content-Length; no control
 * characters in header values; no obsolete line folding. 0 if fine, -1 with
 * *bad filled. */
int sr_http_check_head(const char *head, size_t len, sr_http_bad *bad);
/* Both checks on an h2o request, before any handler looks at it (the raw
 * head is read from the connection's input buffer for HTTP/1; with HTTP/2
 * the duplicate checks use req->headers). On a problem it answers 400 E1001
 * naming the field (closing the connection when the framing is in doubt)
 * and returns 1; else it replaces req->path_normalized by the strictly
 * decoded path and returns 0. */
int sr_http_check_request(h2o_req_t *req);

/* Path helpers */
int sr_http_is(h2o_req_t *req, const char *method, const char *path);
int sr_http_method(h2o_req_t *req, const char *method);
/* The value of query parameter name (first one), URL-decoded into out
 * (sr_pct_decode); 1 if present (and decodes: sr_http_check_request refused
 * anything else before the handler). */
int sr_http_query(h2o_req_t *req, const char *name, char *out, size_t cap);
/* Bearer token of the Authorization header, or NULL. */
const char *sr_http_bearer(h2o_req_t *req, size_t *len);

/* The head of an HTTP/1 request at the start of buf, as h2o holds it while
 * the body arrives (api/gwif_http.c reads it to decide whether a large body
 * may be held before h2o calls a handler). Pure, fuzzed (fuzz_httpreq). */
typedef struct sr_http_head {
    size_t head_len;        /* through the blank line */
    const char *bearer;     /* the token of the first Authorization header if it is "Bearer <token>", or NULL */
    size_t bearer_len;
    int64_t content_length; /* -1: none; -2: not a number or given twice with different values */
} sr_http_head;
enum { SR_HTTP_HEAD_MAX = 8192 }; /* h2o's H2O_MAX_REQLEN: a longer head is refused by h2o itself */
/* 1: complete (out filled); 0: not complete yet; -1: not a request head, or
 * no end within SR_HTTP_HEAD_MAX bytes. */
int sr_http_head_scan(const char *buf, size_t len, sr_http_head *out);

#endif
