/* codecs/base/sr_alloc.c -- allocator hook, sr_buf, assertion failure. */
#include "codecs/base/sr_alloc.h"

#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static sr_allocator cur = {malloc, realloc, free};

void sr_set_allocator(const sr_allocator *a)
{
    if (a) cur = *a;
    else cur = (sr_allocator){malloc, realloc, free};
}

void *sr_malloc(size_t n) { return cur.malloc(n ? n : 1); }

void *sr_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = sr_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *sr_realloc(void *p, size_t n) { return cur.realloc(p, n ? n : 1); }

void sr_free(void *p)
{
    if (p) cur.free(p);
}

void sr_buf_release(sr_buf *b)
{
    sr_free(b->data);
    sr_buf_init(b);
}

int sr_buf_reserve(sr_buf *b, size_t more)
{
    if (more > SIZE_MAX - b->len) return SR_ENOMEM;
    size_t need = b->len + more;
    if (need <= b->cap) return SR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = sr_realloc(b->data, cap);
    if (!p) return SR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SR_OK;
}

int sr_buf_append(sr_buf *b, const void *p, size_t n)
{
    int rc = sr_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return SR_OK;
}

void sr__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "suiro: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void sr__invariant_fail(const char *call, const char *why, const char *file, int line)
{
    fprintf(stderr, "suiro: invariant broken: %s: %s (%s:%d)\n", why, call, file, line);
    fflush(stderr);
    abort();
}

int sr_array_reserve(void *pp, size_t *cap, size_t need, size_t size)
{
    void **p = pp;
    if (need <= *cap) return SR_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size) return SR_ENOMEM;
        c *= 2;
    }
    void *n = sr_realloc(*p, c * size);
    if (!n) return SR_ENOMEM;
    *p = n;
    *cap = c;
    return SR_OK;
}

struct sr_arena_blk {
    sr_arena_blk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

void *sr_arena_alloc(sr_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!n) n = 16;
    sr_arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t blk = a->blk ? a->blk : 65536;
        size_t cap = n > blk ? n : blk;
        if (cap > SIZE_MAX - sizeof *b) return NULL;
        b = sr_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void sr_arena_reset(sr_arena *a)
{
    if (!a->head) return;
    sr_arena_blk *b = a->head->next;
    while (b) {
        sr_arena_blk *nx = b->next;
        sr_free(b);
        b = nx;
    }
    a->head->next = NULL;
    a->head->used = 0;
}

void sr_arena_release(sr_arena *a)
{
    sr_arena_reset(a);
    sr_free(a->head);
    a->head = NULL;
}

void sr_hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

int sr_unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = sr_hexval((unsigned char)s[2 * i]), lo = hi < 0 ? -1 : sr_hexval((unsigned char)s[2 * i + 1]);
        if (lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
