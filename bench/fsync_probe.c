/*
 * bench/fsync_probe.c -- the disk's durable append latency, measured at the
 * start of a benchmark run: N appends of B bytes to a new file, each followed
 * by fdatasync(), each timed. It is the floor under every sync=always figure
 * of the run (a durable group commit costs at least one of these), and the
 * machine section of docs/performance.md states it.
 *
 * usage: fsync_probe [--dir D] [--n N] [--size B] [--seed S]
 * D is the directory whose filesystem is measured (default: the current
 * directory; bench/run.sh passes bench/results). The probe file is created
 * there, read back and checked (size and an FNV-1a hash of every byte
 * written: "verify":"ok"), then removed.
 * Prints one JSON line:
 *   {"bench":"fsync","dir":..,"n":..,"size":..,"p50_ms":..,"p99_ms":..,
 *    "mean_ms":..,"max_ms":..,"verify":"ok"|"FAILED"}
 */
#include "benchutil.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the same percentile rule as bench/engine_query.c (nearest rank on n-1) */
static double pct(const double *sorted, size_t n, double p) { return sorted[(size_t)(p * (double)(n - 1) + 0.5)]; }

/* JSON string body: the directory name, escaped */
static void put_json_str(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    size_t n = 200, size = 4096;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--dir")) dir = argv[++i];
        else if (hv && !strcmp(a, "--n")) n = strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--size")) size = strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: fsync_probe [--dir D] [--n N] [--size B] [--seed S]\n");
            return 2;
        }
    }
    if (!n || !size || size > (64u << 20)) {
        fprintf(stderr, "fsync_probe: --n must be positive and --size in 1..64 MiB\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/.fsync-probe-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "fsync_probe: cannot create a file in %s: %s\n", dir, strerror(errno));
        return 1;
    }
    uint8_t *buf = malloc(size), *rb = malloc(size);
    double *lat = malloc(n * sizeof *lat);
    if (!buf || !rb || !lat) {
        fprintf(stderr, "fsync_probe: out of memory\n");
        close(fd);
        unlink(path);
        return 1;
    }
    uint64_t want = 1469598103934665603ull, got = 1469598103934665603ull;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        for (size_t k = 0; k < size; k++) buf[k] = (uint8_t)mix(seed ^ (i * 0x10001ull + k));
        want = fnv(want, buf, size);
        double t0 = now();
        ssize_t w = write(fd, buf, size);
        int s = w == (ssize_t)size ? fdatasync(fd) : -1;
        lat[i] = now() - t0;
        if (s != 0) {
            fprintf(stderr, "fsync_probe: append %zu: %s\n", i, w == (ssize_t)size ? strerror(errno) : "short write");
            ok = 0;
        }
    }
    /* read back what was made durable */
    off_t end = lseek(fd, 0, SEEK_END);
    if (ok && end != (off_t)(n * size)) ok = 0;
    if (ok) {
        for (size_t i = 0; i < n && ok; i++) {
            if (pread(fd, rb, size, (off_t)(i * size)) != (ssize_t)size) ok = 0;
            else got = fnv(got, rb, size);
        }
        ok = ok && got == want;
    }
    if (close(fd) != 0) ok = 0;
    unlink(path);

    size_t m = ok ? n : 0;
    double sum = 0;
    for (size_t i = 0; i < m; i++) sum += lat[i];
    qsort(lat, m, sizeof *lat, cmpd);
    printf("{\"bench\":\"fsync\",\"dir\":\"");
    put_json_str(dir);
    if (m)
        printf("\",\"n\":%zu,\"size\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"max_ms\":%.3f,"
               "\"verify\":\"ok\",\"hash\":\"%016" PRIx64 "\"}\n",
               n, size, pct(lat, m, 0.50) * 1e3, pct(lat, m, 0.99) * 1e3, sum / (double)m * 1e3, lat[m - 1] * 1e3, got);
    else
        printf("\",\"n\":%zu,\"size\":%zu,\"p50_ms\":null,\"p99_ms\":null,\"verify\":\"FAILED\"}\n", n, size);
    fflush(stdout);
    free(buf);
    free(rb);
    free(lat);
    return ok ? 0 : 1;
}
