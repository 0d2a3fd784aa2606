/* tests/api/test_httpparse.c -- the server's one percent-decoder and the
 * request checks in front of every handler (api/httpu.c; issue #11 item 12):
 * table-driven, pure functions (no server). */
#include "api/httpu.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(api_httpparse, .timeout = 60);

typedef struct pct_case {
    const char *in;
    int plus;
    int rc;
    const char *out; /* when rc == 0 */
} pct_case;

static const pct_case pct_cases[] = {
    {"", 0, SR_PCT_OK, ""},
    {"abc", 0, SR_PCT_OK, "abc"},
    {"a%20b", 0, SR_PCT_OK, "a b"},
    {"a+b", 0, SR_PCT_OK, "a+b"},
    {"a+b", 1, SR_PCT_OK, "a b"},
    {"%2B", 1, SR_PCT_OK, "+"},
    {"%41%7a%5A", 0, SR_PCT_OK, "AzZ"},
    {"x%2Fy", 0, SR_PCT_OK, "x/y"},
    {"%e6%b0%b4", 0, SR_PCT_OK, "\xe6\xb0\xb4"},         /* 水 */
    {"\xe6\xb0\xb4", 0, SR_PCT_OK, "\xe6\xb0\xb4"},      /* raw UTF-8 */
    {"%F0%9F%92%A7", 0, SR_PCT_OK, "\xf0\x9f\x92\xa7"},  /* U+1F4A7 */
    {"x%00.txt", 0, SR_PCT_CONTROL, NULL},               /* the example */
    {"%00", 1, SR_PCT_CONTROL, NULL},
    {"a%0ab", 0, SR_PCT_CONTROL, NULL},
    {"a%0D%0Ab", 0, SR_PCT_CONTROL, NULL},
    {"%1f", 0, SR_PCT_CONTROL, NULL},
    {"%7f", 0, SR_PCT_CONTROL, NULL},
    {"a\tb", 0, SR_PCT_CONTROL, NULL},
    {"a\x01", 0, SR_PCT_CONTROL, NULL},
    {"%", 0, SR_PCT_ESCAPE, NULL},
    {"a%", 0, SR_PCT_ESCAPE, NULL},
    {"a%4", 0, SR_PCT_ESCAPE, NULL},
    {"%zz", 0, SR_PCT_ESCAPE, NULL},
    {"%4g", 0, SR_PCT_ESCAPE, NULL},
    {"%g4", 0, SR_PCT_ESCAPE, NULL},
    {"%%41", 0, SR_PCT_ESCAPE, NULL},
    {"%C0%AF", 0, SR_PCT_UTF8, NULL},      /* overlong '/' */
    {"%C1%81", 0, SR_PCT_UTF8, NULL},      /* overlong 'A' */
    {"%E0%80%AF", 0, SR_PCT_UTF8, NULL},   /* overlong, 3 bytes */
    {"%F0%80%80%AF", 0, SR_PCT_UTF8, NULL},/* overlong, 4 bytes */
    {"%ED%A0%80", 0, SR_PCT_UTF8, NULL},   /* surrogate U+D800 */
    {"%F4%90%80%80", 0, SR_PCT_UTF8, NULL},/* > U+10FFFF */
    {"%F5%80%80%80", 0, SR_PCT_UTF8, NULL},
    {"%FF", 0, SR_PCT_UTF8, NULL},
    {"%80", 0, SR_PCT_UTF8, NULL},         /* lone continuation */
    {"%E6%B0", 0, SR_PCT_UTF8, NULL},      /* truncated */
    {"%E6%B0x", 0, SR_PCT_UTF8, NULL},
    {"\xc3(", 0, SR_PCT_UTF8, NULL},       /* raw invalid UTF-8 */
    /* several problems: escape and control errors win over UTF-8 ones, with
     * or without an output buffer (found by fuzz_httpparse) */
    {"a%E6%Ba%E6%/../", 0, SR_PCT_ESCAPE, NULL},
    {"%FF%00", 0, SR_PCT_CONTROL, NULL},
};

Test(api_httpparse, percent_decoding_table)
{
    for (size_t i = 0; i < sizeof pct_cases / sizeof *pct_cases; i++) {
        const pct_case *c = &pct_cases[i];
        char out[64];
        size_t ol = 99;
        int rc = sr_pct_decode(c->in, strlen(c->in), c->plus, out, sizeof out, &ol);
        cr_expect_eq(rc, c->rc, "case %zu \"%s\": rc %d, want %d", i, c->in, rc, c->rc);
        /* checking without an output buffer gives the same verdict */
        int rc2 = sr_pct_decode(c->in, strlen(c->in), c->plus, NULL, 0, NULL);
        cr_expect_eq(rc2, c->rc, "case %zu \"%s\" (check only): rc %d, want %d", i, c->in, rc2, c->rc);
        if (c->rc == SR_PCT_OK && rc == SR_PCT_OK) {
            cr_expect_str_eq(out, c->out, "case %zu", i);
            cr_expect_eq(ol, strlen(c->out), "case %zu", i);
        }
        cr_expect_str_neq(sr_pct_error(c->rc), "", "case %zu", i);
    }
}

Test(api_httpparse, percent_decoding_is_bounded_by_the_output)
{
    char out[4];
    cr_assert_eq(sr_pct_decode("abc", 3, 0, out, sizeof out, NULL), SR_PCT_OK);
    cr_assert_eq(sr_pct_decode("abcd", 4, 0, out, sizeof out, NULL), SR_PCT_TOOLONG);
    cr_assert_eq(sr_pct_decode("%41%41%41%41", 12, 0, out, sizeof out, NULL), SR_PCT_TOOLONG);
    cr_assert_eq(sr_pct_decode("a", 1, 0, out, 0, NULL), SR_PCT_TOOLONG);
}

typedef struct target_case {
    const char *target;
    int ok;
    const char *field; /* when refused */
    const char *path;  /* decoded, when ok */
} target_case;

static const target_case target_cases[] = {
    {"/api/v1/files/x.txt", 1, NULL, "/api/v1/files/x.txt"},
    {"/api/v1/files/a%2Eb", 1, NULL, "/api/v1/files/a.b"},
    {"/api/v1/files/x%00.txt", 0, "path", NULL},
    {"/api/v1/files/x%0a", 0, "path", NULL},
    {"/api/v1/files/x%zz", 0, "path", NULL},
    {"/api/v1/files/x%C0%AE", 0, "path", NULL},
    {"/api/v1/files/a/../b", 0, "path", NULL},
    {"/api/v1/files/a/%2e%2e/b", 0, "path", NULL},
    {"/api/v1/files/a/%2E./b", 0, "path", NULL},
    {"/api/v1/files/./b", 0, "path", NULL},
    {"/api/v1/files/..", 0, "path", NULL},
    {"/api/v1/files/a..b", 1, NULL, "/api/v1/files/a..b"},
    {"/api/v1/stored-values?dataId=P001&from=-1h", 1, NULL, "/api/v1/stored-values"},
    {"/api/v1/stored-values?dataId=P%30%30%31", 1, NULL, "/api/v1/stored-values"},
    {"/api/v1/stored-values?dataId=P0%001", 0, "query parameter dataId", NULL},
    {"/api/v1/stored-values?dataId=P%1", 0, "query parameter dataId", NULL},
    {"/api/v1/stored-values?dataId=%FF", 0, "query parameter dataId", NULL},
    {"/api/v1/stored-values?da%00ta=1", 0, "query parameter da%00ta", NULL},
    {"/api/v1/stored-values?a=1&b=%", 0, "query parameter b", NULL},
    {"/api/v1/stored-values?&&a", 1, NULL, "/api/v1/stored-values"},
    {"/a?x=%0d%0aSet-Cookie:%20y", 0, "query parameter x", NULL},
};

Test(api_httpparse, request_target_table)
{
    for (size_t i = 0; i < sizeof target_cases / sizeof *target_cases; i++) {
        const target_case *c = &target_cases[i];
        char d[256];
        size_t dl = 0;
        sr_http_bad bad;
        memset(&bad, 0, sizeof bad);
        int r = sr_http_check_target(c->target, strlen(c->target), d, sizeof d, &dl, &bad);
        cr_expect_eq(r == 0, c->ok, "case %zu %s: %s", i, c->target, bad.msg);
        if (c->ok && !r) cr_expect_str_eq(d, c->path, "case %zu", i);
        if (!c->ok && r) {
            cr_expect_str_eq(bad.field, c->field, "case %zu %s: field %s", i, c->target, bad.field);
            cr_expect(strstr(bad.msg, c->field) != NULL, "the message names the field: %s", bad.msg);
        }
    }
}

typedef struct head_case {
    const char *head;
    int ok;
    const char *field;
    int close;
} head_case;

#define RL "PUT /api/v1/files/x HTTP/1.1\r\n"
static const head_case head_cases[] = {
    {RL "Host: a\r\nContent-Length: 3\r\n\r\n", 1, NULL, 0},
    {RL "Host: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n", 0, "header Content-Length", 1},
    {RL "Host: a\r\ncontent-length: 3\r\nCONTENT-LENGTH: 3\r\n\r\n", 0, "header Content-Length", 1},
    {RL "Host: a\r\nHost: b\r\n\r\n", 0, "header Host", 1},
    {RL "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", 0, "header Authorization", 0},
    {RL "Content-Type: a\r\ncontent-type: a\r\n\r\n", 0, "header Content-Type", 0},
    {RL "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, "header Transfer-Encoding", 1},
    {RL "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "header Transfer-Encoding", 1},
    {RL "Transfer-Encoding: chunked\r\n\r\n", 1, NULL, 0},
    {RL "X-A: 1\r\n folded\r\n\r\n", 0, "header", 1},
    {RL "X-A: a\x01b\r\n\r\n", 0, "header X-A", 0},
    {RL "X-A: a\tb\r\n\r\n", 1, NULL, 0},
    {RL "X-A: 1\r\nX-A: 2\r\n\r\n", 1, NULL, 0}, /* other headers may repeat */
    /* only the head counts: the same bytes in the body do not */
    {RL "Content-Length: 20\r\n\r\nContent-Length: 5\r\n", 1, NULL, 0},
    {"GET / HTTP/1.1\n" "Host: a\n" "Host: b\n\n", 0, "header Host", 1},
};

Test(api_httpparse, request_head_table)
{
    for (size_t i = 0; i < sizeof head_cases / sizeof *head_cases; i++) {
        const head_case *c = &head_cases[i];
        sr_http_bad bad;
        memset(&bad, 0, sizeof bad);
        int r = sr_http_check_head(c->head, strlen(c->head), &bad);
        cr_expect_eq(r == 0, c->ok, "case %zu: %s", i, bad.msg);
        if (!c->ok && r) {
            cr_expect_str_eq(bad.field, c->field, "case %zu: field %s", i, bad.field);
            cr_expect_eq(bad.close, c->close, "case %zu: close", i);
        }
    }
}
