/*
 * codecs/base/sr_alloc.h -- the allocator hook and small shared helpers.
 *
 * All of suiro's own allocations go through sr_malloc/sr_realloc/sr_free, so
 * tests can replace the allocator (tests/support/fault_alloc.c fails the N-th
 * allocation). storage/, codecs/ and engine/ return SR_ENOMEM on failure.
 *
 * The base layer (codecs/base/, with sr_error.h): every layer includes it
 * and it includes nothing of the project (tests/integration/check_layering.py).
 */
#ifndef SR_ALLOC_H
#define SR_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sr_allocator {
    void *(*malloc)(size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
} sr_allocator;

/* Replace the allocator (NULL restores libc's). Call before opening anything:
 * memory allocated by one allocator must be freed by the same one. */
void sr_set_allocator(const sr_allocator *a);

void *sr_malloc(size_t n);
void *sr_calloc(size_t n, size_t size);
void *sr_realloc(void *p, size_t n);
void sr_free(void *p); /* NULL is a no-op */

/* Transparent byte range (borrowed). */
typedef struct sr_slice {
    const void *data;
    size_t len;
} sr_slice;

/* Growable byte buffer: data is NULL or points at cap bytes. */
typedef struct sr_buf {
    uint8_t *data;
    size_t len, cap;
} sr_buf;

static inline void sr_buf_init(sr_buf *b) { b->data = NULL; b->len = b->cap = 0; }
void sr_buf_release(sr_buf *b);
/* Make room for `more` bytes past len; SR_OK or SR_ENOMEM (b unchanged). */
int sr_buf_reserve(sr_buf *b, size_t more);
int sr_buf_append(sr_buf *b, const void *p, size_t n);

/* Make room for at least `need` elements of `size` bytes in the array *p of
 * capacity *cap (doubling, from 16). SR_OK or SR_ENOMEM (array unchanged). */
int sr_array_reserve(void *pp, size_t *cap, size_t need, size_t size);

/* Bump allocator for data that dies together (the writer's decoded events
 * of one group): sr_arena_alloc is a pointer bump in blocks of at least
 * `blk` bytes taken with sr_malloc, reset frees all but the newest block.
 * Zero-initialise, set blk (0: 64 KiB). 16-byte aligned; NULL on ENOMEM. */
typedef struct sr_arena_blk sr_arena_blk;
typedef struct sr_arena {
    sr_arena_blk *head;
    size_t blk;
} sr_arena;
void *sr_arena_alloc(sr_arena *a, size_t n);
void sr_arena_reset(sr_arena *a);
void sr_arena_release(sr_arena *a);

/* Protobuf/LEB128 varints (the event wire format): bytes of v, and v written
 * at p (returns the end). */
static inline size_t sr_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static inline uint8_t *sr_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Zig-zag (protobuf's sint32/sint64, the series encoder's deltas): v as
 * an unsigned with its sign in bit 0 (small magnitudes small), and back.
 * For an int32 the 64-bit code is the 32-bit one. */
static inline uint64_t sr_zz_enc(uint64_t v) { return (v << 1) ^ (0 - (v >> 63)); }
static inline uint64_t sr_zz_dec(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

/* Little-endian field encoding (on-disk formats are encoded field by field). */
static inline void sr_put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void sr_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void sr_put_le64(uint8_t *p, uint64_t v)
{
    sr_put_le32(p, (uint32_t)v);
    sr_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t sr_get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sr_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t sr_get_le64(const uint8_t *p)
{
    return (uint64_t)sr_get_le32(p) | ((uint64_t)sr_get_le32(p + 4) << 32);
}

/* Hex: the one encoder and the one decoder of the project (key files,
 * stored secrets, hashes and ids, percent escapes, JSON \u escapes).
 * sr_hexval: the value of one hex digit (either case), or -1. */
static inline int sr_hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}
/* 2n lower-case hex digits of p[0..n) and a NUL into out (2n + 1 bytes). */
void sr_hex(const uint8_t *p, size_t n, char *out);
/* Exactly 2n hex digits at s (either case) into n bytes at out: 0, or -1 at
 * the first character that is not a hex digit (out is then partly written). */
int sr_unhex(const char *s, size_t n, uint8_t *out);

/* Assertions: SR_ASSERT for our own bugs (debug builds), SR_VERIFY always on
 * for the few cheap checks whose failure would write garbage to disk. */
void sr__assert_fail(const char *expr, const char *file, int line);
#ifdef SR_DEBUG
#define SR_ASSERT(x) ((x) ? (void)0 : sr__assert_fail(#x, __FILE__, __LINE__))
#else
#define SR_ASSERT(x) ((void)0)
#endif
#define SR_VERIFY(x) ((x) ? (void)0 : sr__assert_fail(#x, __FILE__, __LINE__))

/* Invariant checks (the model is SQLite's assert_pager_state): each stateful
 * module has a function `const char *sr_<module>_check(const T *)` that
 * returns NULL when its documented invariants hold, or a static string naming
 * the one that does not. SR_INVARIANT(call) runs it at a state transition in
 * the debug/sanitizer build (SR_DEBUG, which `make build-asan` and so the
 * sanitizer run of `make test` define) and aborts naming the invariant; in
 * the release build it compiles to nothing. Tests call the check functions
 * directly, in every build. */
void sr__invariant_fail(const char *call, const char *why, const char *file, int line);
#ifdef SR_DEBUG
#define SR_INVARIANTS 1
#define SR_INVARIANT(call)                                                    \
    do {                                                                      \
        const char *sr_why_ = (call);                                         \
        if (sr_why_) sr__invariant_fail(#call, sr_why_, __FILE__, __LINE__); \
    } while (0)
#else
#define SR_INVARIANTS 0
#define SR_INVARIANT(call) ((void)0)
#endif

#endif
