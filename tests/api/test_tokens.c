/* tests/api/test_tokens.c -- the session token table shared by the HTTP
 * bindings (api/httpu.c): found by hash, removed (tombstones, the moved last
 * entry, the index rebuilt), expired ones swept when full, payload dropped;
 * and the request-head scan that decides whether a large body may be held
 * (sr_http_head_scan: the token, the Content-Length, the head's end). */
#include "api/httpu.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct pl {
    int id;
    int *dropped;
} pl;

static void drop(void *p)
{
    pl *x = p;
    if (x->dropped) (*x->dropped)++;
}

Test(tokens, add_find_remove_many_times)
{
    enum { MAX = 64 };
    int dropped = 0;
    sr_tokens *t = sr_tokens_new(MAX, sizeof(pl), drop);
    cr_assert_not_null(t);
    char hex[MAX][65];
    int live[MAX] = {0};
    int64_t exp;
    /* fill, then churn: remove one, add one, 5,000 times (tombstones pile up
     * and the index is rebuilt); every live token is found with its payload */
    for (int i = 0; i < MAX; i++) {
        pl *p = sr_tokens_add(t, 60000, hex[i], &exp);
        cr_assert_not_null(p);
        p->id = i;
        p->dropped = &dropped;
        live[i] = 1;
    }
    char extra[65];
    cr_assert_null(sr_tokens_add(t, 60000, extra, &exp), "full of live tokens");
    unsigned r = 7;
    for (int round = 0; round < 5000; round++) {
        r = r * 1103515245u + 12345u;
        int k = (int)(r >> 8) % MAX;
        pl *p = sr_tokens_lookup(t, hex[k], 64);
        cr_assert_not_null(p, "round %d: token %d lost", round, k);
        cr_assert_eq(p->id, k);
        sr_tokens_remove(t, p);
        cr_assert_null(sr_tokens_lookup(t, hex[k], 64), "a removed token is gone");
        p = sr_tokens_add(t, 60000, hex[k], &exp);
        cr_assert_not_null(p);
        p->id = k;
        p->dropped = &dropped;
    }
    cr_assert_eq(dropped, 5000);
    cr_assert_eq(sr_tokens_count(t), MAX);
    for (int i = 0; i < MAX; i++) {
        pl *p = sr_tokens_lookup(t, hex[i], 64);
        cr_assert(p && p->id == i && live[i]);
    }
    cr_assert_null(sr_tokens_lookup(t, "0000000000000000000000000000000000000000000000000000000000000000", 64));
    sr_tokens_free(t);
    cr_assert_eq(dropped, 5000 + MAX, "free drops the rest");
}

Test(tokens, expired_tokens_are_not_found_and_make_room)
{
    int dropped = 0;
    sr_tokens *t = sr_tokens_new(4, sizeof(pl), drop);
    char hex[8][65];
    int64_t exp;
    for (int i = 0; i < 4; i++) {
        pl *p = sr_tokens_add(t, -1, hex[i], &exp); /* already expired */
        cr_assert_not_null(p);
        p->dropped = &dropped;
        cr_assert_null(sr_tokens_lookup(t, hex[i], 64), "an expired token does not open anything");
    }
    /* full of expired ones: the next add sweeps them */
    pl *p = sr_tokens_add(t, 60000, hex[4], &exp);
    cr_assert_not_null(p);
    cr_assert_eq(dropped, 4);
    cr_assert_eq(sr_tokens_count(t), 1);
    cr_assert_not_null(sr_tokens_lookup(t, hex[4], 64));
    sr_tokens_free(t);
}

/* E2002 "session expired" is for a token this table issued whose expiry has
 * passed and that it still holds; anything else (never issued, removed,
 * swept, live) is not "expired" (E2001, or found) */
Test(tokens, expired_is_told_from_unknown_until_swept)
{
    sr_tokens *t = sr_tokens_new(2, sizeof(pl), NULL);
    char old[65], live[65], gone[65], next[65];
    int64_t exp;
    cr_assert_not_null(sr_tokens_add(t, -1, old, &exp));
    cr_assert_not_null(sr_tokens_add(t, 60000, live, &exp));
    static const struct {
        const char *what;
        int which; /* 0 old, 1 live, 2 never issued */
        int expired;
    } rows[] = {
        {"an expired token still held", 0, 1},
        {"a live token", 1, 0},
        {"a token never issued", 2, 0},
    };
    const char *never = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const char *tok = rows[i].which == 0 ? old : rows[i].which == 1 ? live : never;
        cr_assert_eq(sr_tokens_expired_token(t, tok, 64), rows[i].expired, "%s", rows[i].what);
    }
    cr_assert_eq(sr_tokens_expired_token(t, NULL, 0), 0, "no token");
    cr_assert_eq(sr_tokens_expired_token(t, old, 63), 0, "a prefix of an expired token");
    /* removed: unknown */
    cr_assert_not_null(sr_tokens_lookup(t, live, 64));
    sr_tokens_remove(t, sr_tokens_lookup(t, live, 64));
    cr_assert_eq(sr_tokens_expired_token(t, live, 64), 0, "a removed token is unknown, not expired");
    /* the full table sweeps the expired one: unknown from then on */
    cr_assert_not_null(sr_tokens_add(t, 60000, gone, &exp));
    cr_assert_eq(sr_tokens_expired_token(t, old, 64), 1, "kept while the table has room");
    cr_assert_not_null(sr_tokens_add(t, 60000, next, &exp));
    cr_assert_eq(sr_tokens_expired_token(t, old, 64), 0, "swept: unknown");
    sr_tokens_free(t);
}

#define SCAN(lit, h) sr_http_head_scan(lit, sizeof(lit) - 1, h)

Test(http_head, token_length_and_end)
{
    sr_http_head h;
    static const char r1[] = "POST /gw/v1/measurements HTTP/1.1\r\nHost: x\r\nauthorization:  bearer abc123 \r\n"
                             "Content-Length: 42\r\n\r\n{\"body\"";
    cr_assert_eq(SCAN(r1, &h), 1);
    cr_assert_eq(h.head_len, sizeof r1 - 1 - 7);
    cr_assert_eq(h.bearer_len, 6);
    cr_assert(!memcmp(h.bearer, "abc123", 6));
    cr_assert_eq(h.content_length, 42);
    /* bare LF line ends; no token; no length */
    cr_assert_eq(SCAN("GET / HTTP/1.0\nHost: x\n\n", &h), 1);
    cr_assert_null(h.bearer);
    cr_assert_eq(h.content_length, -1);
    /* only the first Authorization counts (as sr_http_bearer), and Basic is no token */
    cr_assert_eq(SCAN("GET / HTTP/1.1\r\nAuthorization: Basic eA==\r\nAuthorization: Bearer t\r\n\r\n", &h), 1);
    cr_assert_null(h.bearer);
    /* two different lengths, or a length that is not a number */
    cr_assert_eq(SCAN("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h), 1);
    cr_assert_eq(h.content_length, -2);
    cr_assert_eq(SCAN("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", &h), 1);
    cr_assert_eq(h.content_length, 1);
    cr_assert_eq(SCAN("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h), 1);
    cr_assert_eq(h.content_length, -2);
}

Test(http_head, incomplete_malformed_and_too_long)
{
    sr_http_head h;
    cr_assert_eq(SCAN("POST / HTTP/1.1\r\nAuthorization: Bearer t\r\n", &h), 0);
    cr_assert_eq(SCAN("", &h), 0);
    cr_assert_eq(SCAN("GARBAGE\r\n\r\n", &h), -1);
    cr_assert_eq(SCAN("GET / HTTP/1.1\r\nno colon here\r\n\r\n", &h), -1);
    /* a head without its end in the first 8 KiB is refused, never read further */
    size_t n = SR_HTTP_HEAD_MAX + 100;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    cr_assert_eq(sr_http_head_scan(big, n, &h), -1);
    cr_assert_eq(sr_http_head_scan(big, 4000, &h), 0);
    free(big);
}
