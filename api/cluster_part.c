/* api/cluster_part.c -- the cluster mode's parts without a network
 * (api/cluster.h): partitions, the wait list, the [cluster] checks and the
 * two small files of DATA/cluster. */
#include "api/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- partitions ---- */

uint64_t sr_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull; /* the FNV-1a 64 offset basis */
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull; /* the FNV 64 prime */
    }
    return h;
}

/* "A Fast, Minimal Memory, Consistent Hash Algorithm" (Lamping, Veach
 * 2014), as published */
uint32_t sr_jump_hash(uint64_t key, uint32_t buckets)
{
    int64_t b = -1, j = 0;
    if (!buckets) return 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

uint32_t sr_cluster_partition(const char *op, uint32_t partitions)
{
    if (!op || !op[0] || partitions <= 1) return 0;
    return sr_jump_hash(sr_fnv1a64(op, strlen(op)), partitions);
}

/* ---- the wait list ---- */

int sr_waitlist_init(sr_waitlist *w, size_t cap, uint64_t confirmed)
{
    memset(w, 0, sizeof *w);
    if (!cap) return SR_EINVAL;
    if (!(w->items = calloc(cap, sizeof *w->items))) return SR_ENOMEM;
    w->cap = cap;
    w->confirmed = confirmed;
    pthread_mutex_init(&w->mu, NULL);
    return SR_OK;
}

void sr_waitlist_destroy(sr_waitlist *w)
{
    if (!w->items) return;
    pthread_mutex_destroy(&w->mu);
    free(w->items);
    w->items = NULL;
}

int sr_waitlist_hold(sr_waitlist *w, uint64_t last, sr_engine_cb cb, void *ctx, const sr_result *res)
{
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->closed) rc = SR_ECLOSED;
    else if (last <= w->confirmed) rc = 1;
    else if (w->n == w->cap) rc = SR_EFULL;
    else {
        sr_wl_item *it = &w->items[(w->head + w->n) % w->cap];
        it->last = last;
        it->cb = cb;
        it->ctx = ctx;
        it->res = *res;
        w->n++;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Take the head items whose last <= upto (all with all) into out, at most
 * max; under mu. */
static size_t take(sr_waitlist *w, uint64_t upto, int all, sr_wl_item *out, size_t max)
{
    size_t k = 0;
    while (w->n && k < max && (all || w->items[w->head].last <= upto)) {
        out[k++] = w->items[w->head];
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    return k;
}

size_t sr_waitlist_confirm(sr_waitlist *w, uint64_t seq)
{
    size_t total = 0;
    sr_wl_item batch[64];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (seq > w->confirmed) w->confirmed = seq;
        size_t k = take(w, w->confirmed, 0, batch, 64);
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < k; i++) {
            if (w->fill) w->fill(w->fill_arg, batch[i].last, &batch[i].res); /* (read-your-writes) */
            batch[i].cb(batch[i].ctx, &batch[i].res);
        }
        total += k;
        if (k < 64) return total;
    }
}

size_t sr_waitlist_close(sr_waitlist *w, int rc, const char *why)
{
    size_t total = 0;
    sr_wl_item batch[64];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        w->closed = 1;
        size_t k = take(w, 0, 1, batch, 64);
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < k; i++) {
            sr_result r = batch[i].res;
            r.rc = r.err.code = rc;
            snprintf(r.err.msg, sizeof r.err.msg, "%s", why);
            batch[i].cb(batch[i].ctx, &r);
        }
        total += k;
        if (k < 64) return total;
    }
}

uint64_t sr_waitlist_confirmed(sr_waitlist *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t c = w->confirmed;
    pthread_mutex_unlock(&w->mu);
    return c;
}

size_t sr_waitlist_held(sr_waitlist *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* ---- the [cluster] checks ---- */

int sr_cluster_check_urls(const char *urls, char *err, size_t errlen)
{
    const char *p = urls;
    int n = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char u[256];
        if (len == 0 || len >= sizeof u) {
            snprintf(err, errlen, "[cluster] nats: an empty or too long URL in '%s'", urls);
            return -1;
        }
        memcpy(u, p, len);
        u[len] = 0;
        const char *hp = !strncmp(u, "nats://", 7) ? u + 7 : !strncmp(u, "tls://", 6) ? u + 6 : NULL;
        const char *colon = hp ? strrchr(hp, ':') : NULL;
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!hp || !colon || colon == hp || !end || *end || port < 1 || port > 65535 || strchr(hp, '/')) {
            snprintf(err, errlen, "[cluster] nats: '%s' is not nats://host:port (or tls://host:port)", u);
            return -1;
        }
        n++;
        p += len;
        if (*p == ',') p++;
    }
    if (n && p > urls && p[-1] == ',') {
        snprintf(err, errlen, "[cluster] nats: an empty URL at the end of '%s'", urls);
        return -1;
    }
    if (!n) {
        snprintf(err, errlen, "[cluster] nats: no URL");
        return -1;
    }
    return 0;
}

int sr_cluster_check_name(const char *what, const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 31;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    if (!ok) {
        snprintf(err, errlen, "[cluster] %s: '%s' must be 1 to 31 letters, digits, '_' or '-'", what, name);
        return -1;
    }
    return 0;
}

int sr_cluster_parse_owned(const char *spec, uint32_t partitions, uint8_t *bits, char *err, size_t errlen)
{
    memset(bits, 0, (partitions + 7) / 8);
    if (!spec || !strcmp(spec, "all") || !spec[0]) {
        for (uint32_t p = 0; p < partitions; p++) bits[p / 8] |= (uint8_t)(1u << (p % 8));
        return 0;
    }
    if (!strcmp(spec, "none") || !strcmp(spec, "leases")) return 0; /* leases: the manager sets them */
    const char *s = spec;
    while (*s) {
        char *end;
        if (*s < '0' || *s > '9') goto bad;
        unsigned long a = strtoul(s, &end, 10), b = a;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9') goto bad;
            b = strtoul(end + 1, &end, 10);
        }
        if (a > b || b >= partitions || (*end && *end != ',')) goto bad;
        for (unsigned long p = a; p <= b; p++) bits[p / 8] |= (uint8_t)(1u << (p % 8));
        s = *end ? end + 1 : end;
        if (*end && !*s) goto bad; /* a trailing comma */
        continue;
    bad:
        snprintf(err, errlen,
                 "[cluster] owned: '%s' must be leases, all, none, or partitions and ranges below %u (0,3,5-7); bad at '%s'",
                 spec, partitions, s);
        return SR_EINVAL;
    }
    return 0;
}

/* ---- DATA/cluster ---- */

static int cluster_dir(const char *data_dir, char *out, size_t n)
{
    if ((size_t)snprintf(out, n, "%s/cluster", data_dir) >= n) return SR_EINVAL;
    if (mkdir(out, 0700) != 0 && errno != EEXIST) return SR_EIO;
    return SR_OK;
}

/* path's content replaced by text: temporary file, fsync, rename, fsync of
 * the directory */
static int write_file(const char *dir, const char *name, const char *text)
{
    char path[1200], tmp[1210];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return SR_EIO;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return SR_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return SR_OK;
}

static int read_u64(const char *dir, const char *name, uint64_t *out)
{
    char path[1200], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return SR_ENOTFOUND;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || errno || (*end && *end != '\n')) return SR_ECORRUPT;
    *out = v;
    return SR_OK;
}

int sr_cluster_partitions_fix(const char *data_dir, uint32_t partitions, char *err, size_t errlen)
{
    char dir[1100];
    if (cluster_dir(data_dir, dir, sizeof dir)) {
        snprintf(err, errlen, "cluster: cannot make %s/cluster: %s", data_dir, strerror(errno));
        return SR_EIO;
    }
    uint64_t stored;
    int rc = read_u64(dir, "partitions", &stored);
    if (rc == SR_OK) {
        if (stored == partitions) return SR_OK;
        snprintf(err, errlen,
                 "[cluster] partitions = %u, but this data directory was started with %" PRIu64
                 " partitions (%s/partitions): the count is fixed at the first start",
                 partitions, stored, dir);
        return SR_ECONFLICT;
    }
    if (rc != SR_ENOTFOUND) {
        snprintf(err, errlen, "cluster: %s/partitions does not hold a number", dir);
        return SR_ECORRUPT;
    }
    char text[32];
    snprintf(text, sizeof text, "%u\n", partitions);
    if (write_file(dir, "partitions", text)) {
        snprintf(err, errlen, "cluster: cannot write %s/partitions", dir);
        return SR_EIO;
    }
    return SR_OK;
}

uint64_t sr_cluster_confirmed_read(const char *data_dir)
{
    char dir[1100];
    uint64_t v = 0;
    snprintf(dir, sizeof dir, "%s/cluster", data_dir);
    return read_u64(dir, "confirmed", &v) == SR_OK ? v : 0;
}

int sr_cluster_confirmed_write(const char *data_dir, uint64_t seq)
{
    char dir[1100], text[32];
    if (cluster_dir(data_dir, dir, sizeof dir)) return SR_EIO;
    snprintf(text, sizeof text, "%" PRIu64 "\n", seq);
    return write_file(dir, "confirmed", text);
}
