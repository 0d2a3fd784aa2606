/*
 * codecs/jsonlex.h -- a strict, allocation-free JSON pull lexer (RFC 8259).
 *
 * It returns one token at a time over a buffer and validates as it goes:
 * the grammar (commas, colons, nesting), numbers (integers must fit in 64
 * bits, as in jansson), string escapes and UTF-8.
 * String tokens are borrowed raw (escapes NOT decoded; `escaped` tells if
 * there are any). It exists for the hot path of the GW-IF binding, which
 * walks the envelope once without building a tree (api/gwif_json.c); callers
 * fall back to a full parser for anything unusual.
 */
#ifndef SR_JSONLEX_H
#define SR_JSONLEX_H

#include "codecs/base/sr_alloc.h" /* sr_buf */

#include <stddef.h>
#include <stdint.h>

typedef enum sr_jtok {
    SR_J_ERROR = -1,
    SR_J_END = 0, /* the document ended after one complete value */
    SR_J_OBJ_BEGIN,
    SR_J_OBJ_END,
    SR_J_ARR_BEGIN,
    SR_J_ARR_END,
    SR_J_KEY,    /* a member name (s, n) */
    SR_J_STRING, /* a string value (s, n) */
    SR_J_NUMBER, /* s, n: the number's text */
    SR_J_TRUE,
    SR_J_FALSE,
    SR_J_NULL,
} sr_jtok;

enum { SR_JSON_MAX_DEPTH = 64 };

typedef struct sr_jlex {
    const char *p, *end;
    const char *s; /* token text (borrowed) */
    size_t n;
    int escaped;   /* the string token contains backslash escapes */
    int is_int;    /* the number token has no fraction and no exponent */
    /* private */
    int depth, done;
    uint8_t stack[SR_JSON_MAX_DEPTH]; /* 'o' object, 'a' array */
    uint8_t state[SR_JSON_MAX_DEPTH]; /* what may come next at each level */
} sr_jlex;

void sr_jlex_init(sr_jlex *l, const void *data, size_t len);
/* The first byte in [p, end) that a JSON string cannot hold as it is: '"',
 * '\\', a control character or a byte >= 0x80 (end if none). */
const char *sr_json_plain_end(const char *p, const char *end);
sr_jtok sr_jlex_next(sr_jlex *l);
/* Skip the value whose first token t was just returned (an object or array
 * is skipped to its end). 0, or -1 on a syntax error. */
int sr_jlex_skip(sr_jlex *l, sr_jtok t);
/* The caller read one complete, valid value itself, from l->p up to `after`
 * (a fast path for a known shape), where the lexer expects a value (after
 * '[', ',' in an array, or ':'): go on after it. 0, or -1 (nothing changed)
 * if the lexer does not expect a value here. */
int sr_jlex_value_read(sr_jlex *l, const char *after);
/* In an array after an element: step over the ',' (and white space) so that
 * l->p is at the next element's first byte, for sr_jlex_value_read. Does
 * nothing anywhere else (sr_jlex_next then reads on as ever). */
void sr_jlex_to_element(sr_jlex *l);

/* The exact bytes of the value of the top-level object's member name (as
 * written: an escaped member name does not match) in data: its offset and
 * length. 0, or -1 (not an object, no such member, a syntax error before
 * it). For the bytes a signature covers (api/sigcheck.h, docs/signatures.md). */
int sr_json_member_span(const void *data, size_t len, const char *name, size_t *off, size_t *n);

/* Append s[0..n) as a JSON string literal: '"' and '\\' escaped, '\n' and
 * '\t' as \n and \t, other control bytes as \u00XX; every other byte as it is
 * (the caller's text is UTF-8). The one escaper of the server's and the
 * command line's JSON writers (api/httpu.c, engine/event_json.c). */
int sr_json_put_string(sr_buf *b, const char *s, size_t n);

#endif
