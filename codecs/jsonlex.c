/* codecs/jsonlex.c -- see jsonlex.h. */
#include "codecs/jsonlex.h"

#include "codecs/base/sr_alloc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

enum {
    TOP,
    O_KEY_OR_END, /* after '{' */
    O_KEY,        /* after ',' in an object */
    O_COLON,      /* after a key */
    O_VALUE,      /* after ':' */
    O_NEXT,       /* after a member's value: ',' or '}' */
    A_VALUE_OR_END, /* after '[' */
    A_VALUE,      /* after ',' in an array */
    A_NEXT,       /* after an element: ',' or ']' */
};

void sr_jlex_init(sr_jlex *l, const void *data, size_t len)
{
    memset(l, 0, sizeof *l);
    l->p = data;
    l->end = (const char *)data + len;
}

/* \uXXXX at p (after the backslash-u): the code unit, or -1 */
static long u4(const char *p, const char *end)
{
    if (end - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = sr_hexval((unsigned char)p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

const char *sr_json_plain_end(const char *p, const char *end)
{
    /* 8 bytes at a time: each term's lowest flagged byte is exact (a borrow
     * only flags bytes above a real hit), so the lowest set bit of the mask
     * is the first byte that needs a look (little-endian load) */
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
        uint64_t hit = (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v) | v) & highs;
        if (hit) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + ((unsigned)__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
    }
    return end;
}

/* p just past the opening quote; sets l->s/n/escaped, returns 0 or -1 */
static int string(sr_jlex *l)
{
    const unsigned char *p = (const unsigned char *)l->p, *end = (const unsigned char *)l->end;
    l->s = (const char *)p;
    l->escaped = 0;
    while (p < end) {
        p = (const unsigned char *)sr_json_plain_end((const char *)p, (const char *)end);
        if (p >= end) break;
        unsigned c = *p;
        if (c == '"') {
            l->n = (size_t)((const char *)p - l->s);
            l->p = (const char *)p + 1;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            l->escaped = 1;
            if (++p >= end) return -1;
            c = *p;
            if (c == 'u') {
                long u = u4((const char *)p + 1, (const char *)end);
                if (u <= 0) return -1; /* \u0000 is refused, as by the full parser */
                p += 5;
                if (u >= 0xDC00 && u <= 0xDFFF) return -1; /* lone low surrogate */
                if (u >= 0xD800 && u <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
                    long lo = u4((const char *)p + 2, (const char *)end);
                    if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                    p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return -1;
            p++;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: no overlongs, no surrogates, at most U+10FFFF */
        int len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return -1;
        if (end - p < len) return -1;
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return -1;
        p += len;
    }
    return -1;
}

static int digits(const char **pp, const char *end)
{
    const char *p = *pp;
    if (p >= end || *p < '0' || *p > '9') return -1;
    while (p < end && *p >= '0' && *p <= '9') p++;
    *pp = p;
    return 0;
}

static int number(sr_jlex *l)
{
    const char *p = l->p, *end = l->end;
    l->s = p;
    l->is_int = 1;
    int has_exp = 0;
    if (p < end && *p == '-') p++;
    const char *int_start = p;
    if (p < end && *p == '0') p++;
    else if (digits(&p, end)) return -1;
    size_t int_digits = (size_t)(p - int_start);
    if (p < end && *p == '.') {
        p++;
        l->is_int = 0;
        if (digits(&p, end)) return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        l->is_int = 0;
        has_exp = 1;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (digits(&p, end)) return -1;
    }
    l->n = (size_t)(p - l->s);
    l->p = p;
    if (l->is_int && l->n > 18) {
        /* as the full parser: an integer must fit in 64 bits */
        char tmp[24];
        if (l->n > 20) return -1;
        memcpy(tmp, l->s, l->n);
        tmp[l->n] = 0;
        errno = 0;
        (void)strtoll(tmp, NULL, 10);
        if (errno) return -1;
    }
    if (!l->is_int && (has_exp || int_digits > 300)) {
        /* as the full parser: a real must not overflow (only an exponent or
         * over 308 integer digits can make it) */
        char tmp[128];
        if (l->n >= sizeof tmp) return -1;
        memcpy(tmp, l->s, l->n);
        tmp[l->n] = 0;
        errno = 0;
        double d = strtod(tmp, NULL);
        if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) return -1;
    }
    return 0;
}

static void after_value(sr_jlex *l)
{
    if (!l->depth) l->done = 1;
    else l->state[l->depth - 1] = l->stack[l->depth - 1] == 'o' ? O_NEXT : A_NEXT;
}

sr_jtok sr_jlex_next(sr_jlex *l)
{
    int top = TOP;
    for (;;) {
        if (l->p < l->end && (unsigned char)*l->p <= ' ')
            while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r')) l->p++;
        if (!l->depth && l->done) return l->p == l->end ? SR_J_END : SR_J_ERROR;
        if (l->p >= l->end) return SR_J_ERROR;
        char c = *l->p;
        int st = l->depth ? l->state[l->depth - 1] : top;
        switch (st) {
        case O_KEY_OR_END:
        case O_KEY:
            if (c == '}' && st == O_KEY_OR_END) {
                l->p++;
                l->depth--;
                after_value(l);
                return SR_J_OBJ_END;
            }
            if (c != '"') return SR_J_ERROR;
            l->p++;
            if (string(l)) return SR_J_ERROR;
            /* the colon now (the common "key":value has no space): one
             * trip through the state machine less per member */
            if (l->p < l->end && *l->p == ':') {
                l->p++;
                l->state[l->depth - 1] = O_VALUE;
            } else
                l->state[l->depth - 1] = O_COLON;
            return SR_J_KEY;
        case O_COLON:
            if (c != ':') return SR_J_ERROR;
            l->p++;
            l->state[l->depth - 1] = O_VALUE;
            continue;
        case O_NEXT:
        case A_NEXT:
            if (c == ',') {
                l->p++;
                l->state[l->depth - 1] = st == O_NEXT ? O_KEY : A_VALUE;
                continue;
            }
            if ((st == O_NEXT && c == '}') || (st == A_NEXT && c == ']')) {
                l->p++;
                l->depth--;
                after_value(l);
                return st == O_NEXT ? SR_J_OBJ_END : SR_J_ARR_END;
            }
            return SR_J_ERROR;
        case A_VALUE_OR_END:
            if (c == ']') {
                l->p++;
                l->depth--;
                after_value(l);
                return SR_J_ARR_END;
            }
            __attribute__((fallthrough)); /* a value */
        default: /* TOP, O_VALUE, A_VALUE */
            if (c == '{' || c == '[') {
                if (l->depth >= SR_JSON_MAX_DEPTH) return SR_J_ERROR;
                after_value(l); /* the parent sees a value when this one closes */
                l->done = 0;
                l->stack[l->depth] = c == '{' ? 'o' : 'a';
                l->state[l->depth] = c == '{' ? O_KEY_OR_END : A_VALUE_OR_END;
                l->depth++;
                l->p++;
                return c == '{' ? SR_J_OBJ_BEGIN : SR_J_ARR_BEGIN;
            }
            if (c == '"') {
                l->p++;
                if (string(l)) return SR_J_ERROR;
                after_value(l);
                return SR_J_STRING;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                if (number(l)) return SR_J_ERROR;
                after_value(l);
                return SR_J_NUMBER;
            }
            static const struct {
                const char *w;
                sr_jtok t;
            } lits[] = {{"true", SR_J_TRUE}, {"false", SR_J_FALSE}, {"null", SR_J_NULL}};
            for (int i = 0; i < 3; i++) {
                size_t n = strlen(lits[i].w);
                if ((size_t)(l->end - l->p) >= n && !memcmp(l->p, lits[i].w, n)) {
                    l->p += n;
                    after_value(l);
                    return lits[i].t;
                }
            }
            return SR_J_ERROR;
        }
    }
}

int sr_jlex_skip(sr_jlex *l, sr_jtok t)
{
    if (t == SR_J_ERROR) return -1;
    if (t != SR_J_OBJ_BEGIN && t != SR_J_ARR_BEGIN) return 0;
    int d = 1;
    while (d > 0) {
        sr_jtok x = sr_jlex_next(l);
        if (x == SR_J_ERROR || x == SR_J_END) return -1;
        if (x == SR_J_OBJ_BEGIN || x == SR_J_ARR_BEGIN) d++;
        else if (x == SR_J_OBJ_END || x == SR_J_ARR_END) d--;
    }
    return 0;
}

int sr_jlex_value_read(sr_jlex *l, const char *after)
{
    if (!l->depth || after < l->p || after > l->end) return -1;
    int st = l->state[l->depth - 1];
    if (st != A_VALUE_OR_END && st != A_VALUE && st != O_VALUE) return -1;
    l->p = after;
    after_value(l);
    return 0;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

void sr_jlex_to_element(sr_jlex *l)
{
    if (!l->depth) return;
    uint8_t *st = &l->state[l->depth - 1];
    if (*st == A_NEXT) {
        const char *p = skip_ws(l->p, l->end);
        if (p < l->end && *p == ',') {
            l->p = skip_ws(p + 1, l->end);
            *st = A_VALUE;
        }
    } else if (*st == A_VALUE || *st == A_VALUE_OR_END)
        l->p = skip_ws(l->p, l->end);
}

/* ---- writing: the one JSON string escaper ---------------------------------- */

int sr_json_put_string(sr_buf *b, const char *s, size_t n)
{
    int rc = sr_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (i > run) rc = sr_buf_append(b, s + run, i - run);
        char esc[7] = {'\\', 'u', '0', '0'};
        sr_hex(&c, 1, esc + 4);
        if (!rc) {
            if (c == '"' || c == '\\') {
                esc[1] = (char)c;
                rc = sr_buf_append(b, esc, 2);
            } else if (c == '\n') rc = sr_buf_append(b, "\\n", 2);
            else if (c == '\t') rc = sr_buf_append(b, "\\t", 2);
            else rc = sr_buf_append(b, esc, 6);
        }
        run = i + 1;
    }
    if (!rc && n > run) rc = sr_buf_append(b, s + run, n - run);
    return rc ? rc : sr_buf_append(b, "\"", 1);
}

int sr_json_member_span(const void *data, size_t len, const char *name, size_t *off, size_t *n)
{
    sr_jlex l;
    sr_jtok t;
    size_t nl = strlen(name);
    sr_jlex_init(&l, data, len);
    if (sr_jlex_next(&l) != SR_J_OBJ_BEGIN) return -1;
    while ((t = sr_jlex_next(&l)) == SR_J_KEY) {
        int hit = !l.escaped && l.n == nl && !memcmp(l.s, name, nl);
        const char *pre = l.p;
        t = sr_jlex_next(&l);
        if (t == SR_J_ERROR) return -1;
        if (!hit) {
            if (sr_jlex_skip(&l, t)) return -1;
            continue;
        }
        const char *start = pre, *end;
        while (start < l.end && (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r' || *start == ':'))
            start++;
        switch (t) {
        case SR_J_OBJ_BEGIN:
        case SR_J_ARR_BEGIN:
            if (sr_jlex_skip(&l, t)) return -1;
            end = l.p;
            break;
        case SR_J_STRING: end = l.s + l.n + 1; break;
        case SR_J_NUMBER: end = l.s + l.n; break;
        case SR_J_FALSE: end = start + 5; break;
        default: end = start + 4; break; /* true, null */
        }
        if (end <= start || end > l.end) return -1;
        *off = (size_t)(start - (const char *)data);
        *n = (size_t)(end - start);
        return 0;
    }
    return -1;
}
