#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    snprintf(p, n, "%s/suiro-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void tu_rmrf(const char *path)
{
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (n && fread(p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

int tu_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = (n && fwrite(p, 1, n, f) != n) ? -1 : 0;
    if (fclose(f)) rc = -1;
    return rc;
}

int tu_copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *p = tu_read_file(from, &n);
    if (!p) return -1;
    int rc = tu_write_file(to, p, n);
    free(p);
    return rc;
}

void tu_fill_record(uint64_t key, uint8_t *p, size_t len)
{
    tu_rng r = {key * 0x2545F4914F6CDD1Dull + 17};
    size_t i = 0;
    /* compressible-ish: repeated words with varying digits */
    while (i < len) {
        uint64_t v = tu_next(&r);
        int n = snprintf((char *)p + i, len - i, "pt%02u=%u.%02u;", (unsigned)(v % 50),
                         (unsigned)((v >> 8) % 1000), (unsigned)((v >> 20) % 100));
        if (n < 0) break;
        i += (size_t)n < len - i ? (size_t)n : len - i;
    }
}

uint64_t tu_seed(uint64_t dflt)
{
    const char *s = getenv("SR_TEST_SEED");
    uint64_t v = s ? strtoull(s, NULL, 10) : dflt;
    return v;
}

int tu_iters(int n)
{
    const char *s = getenv("SR_SOAK");
    long m = s ? strtol(s, NULL, 10) : 1;
    if (m < 1) m = 1;
    if (m == 1) {
        /* SR_QUICK=d: make test's sanitizer half (docs/testing.md) */
        const char *q = getenv("SR_QUICK");
        long d = q ? strtol(q, NULL, 10) : 1;
        if (d > 1 && d <= 1000) return n / d > 0 ? (int)(n / d) : 1;
    }
    return (int)(n * m);
}

int tu_md_cell(const char *row, int n, char *out, size_t len)
{
    const char *p = row;
    for (int i = 0; i <= n; i++) {
        p = strchr(p, '|');
        if (!p) return -1;
        p++;
    }
    const char *end = strchr(p, '|');
    if (!end) return -1;
    size_t o = 0;
    for (; p < end && o + 1 < len; p++)
        if (*p != '`') out[o++] = *p;
    out[o] = 0;
    while (o && out[o - 1] == ' ') out[--o] = 0;
    size_t s = strspn(out, " ");
    memmove(out, out + s, o - s + 1);
    return 0;
}
