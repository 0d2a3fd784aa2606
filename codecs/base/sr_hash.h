/*
 * codecs/base/sr_hash.h -- the one hash of byte strings for in-memory
 * tables: the point table's (operator, dataId) map (engine/points.c), a
 * GW-IF message's dataIds (api/gwif_json.c), the login throttle's table
 * (api/loginguard.c). Not stored anywhere: it may change between builds
 * (it reads 8 bytes at a time in the machine's byte order).
 *
 * sr_hash_add continues a hash h over n more bytes (its length mixed in,
 * so the parts of a key need no separator); sr_hash_end folds it to 32 bits;
 * sr_hash is one string's.
 *
 * Header-only (inline): the base layer includes nothing of the project.
 */
#ifndef SR_HASH_H
#define SR_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sr_hash_add(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t x;
    h ^= (uint64_t)n * 0x9E3779B97F4A7C15ull;
    for (; n >= 8; s += 8, n -= 8) { /* 8 bytes at a time, multiplied and folded */
        memcpy(&x, s, 8);
        h = (h ^ x) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    if (n >= 4) { /* the last 0..7 bytes, each read once or twice: two 4-byte loads */
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        x = (uint64_t)a << 32 | b;
    } else
        x = n ? (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1] : 0;
    return (h ^ x) * 0xC4CEB9FE1A85EC53ull;
}

static inline uint32_t sr_hash_end(uint64_t h) { return (uint32_t)(h ^ (h >> 29) ^ (h >> 47)); }

static inline uint32_t sr_hash(const void *p, size_t n) { return sr_hash_end(sr_hash_add(0, p, n)); }

#endif
