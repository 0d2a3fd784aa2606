/* tests/support/testutil.h -- helpers shared by the suites: temporary
 * directories, a seeded RNG, record generators. */
#ifndef SR_TESTUTIL_H
#define SR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Make a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_tmpdir(const char *tag);
/* rm -rf path (best effort). */
void tu_rmrf(const char *path);
/* Copy a file; 0 on success. */
int tu_copy_file(const char *from, const char *to);
/* Read a whole file (malloc'd, *len set); NULL on failure. */
uint8_t *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *p, size_t n);

typedef struct tu_rng {
    uint64_t s;
} tu_rng;
static inline uint64_t tu_next(tu_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t tu_below(tu_rng *r, uint64_t n) { return n ? tu_next(r) % n : 0; }

/* Deterministic content of record number seq, of length len (so tests can
 * check any record without storing them all). */
void tu_fill_record(uint64_t key, uint8_t *p, size_t len);

/* Cell n (from 0) of a markdown table row "| a | `b` | c |", without
 * backticks, trimmed, into out; 0, or -1 if the row has no such cell. */
int tu_md_cell(const char *row, int n, char *out, size_t len);

/* Seed for a suite: $SR_TEST_SEED if set, else the given default. Printed. */
uint64_t tu_seed(uint64_t dflt);
/* Iteration count: $SR_SOAK multiplies it (`make soak`); without it,
 * $SR_QUICK=d divides it by d, at least 1 left (`make test` under ASan,
 * ~4x slower: fewer rounds there, the full count in the normal build and
 * more in `make soak`). Assertions on counts use tu_iters too. */
int tu_iters(int n);

#endif
