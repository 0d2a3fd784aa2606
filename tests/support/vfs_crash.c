#include "vfs_crash.h"

#include "codecs/base/sr_alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pw {
    uint64_t off;
    size_t len;
    uint8_t *data;
    struct pw *next;
} pw;

typedef struct entry {
    char *path;
    pw *head, *tail;
    struct entry *next;
} entry;

typedef struct cfile {
    sr_file base;
    sr_file *real;
    entry *e;
} cfile;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry *entries;
static int crashed;
static int crash_next;
static unsigned long sync_target, syncs;

#define P (&sr_vfs_posix)

static entry *entry_get(const char *path)
{
    for (entry *e = entries; e; e = e->next)
        if (!strcmp(e->path, path)) return e;
    entry *e = calloc(1, sizeof *e);
    e->path = strdup(path);
    e->next = entries;
    entries = e;
    return e;
}

static void pw_free_list(entry *e)
{
    pw *p = e->head;
    while (p) {
        pw *n = p->next;
        free(p->data);
        free(p);
        p = n;
    }
    e->head = e->tail = NULL;
}

/* Apply an entry's pending writes to the real file at path. */
static void apply(entry *e, sr_file *real)
{
    sr_file *f = real;
    if (!f && P->open(P, e->path, SR_VFS_WRITE, &f)) {
        pw_free_list(e);
        return;
    }
    for (pw *p = e->head; p; p = p->next) (void)P->pwrite(f, p->data, p->len, p->off);
    if (!real) P->close(f);
    pw_free_list(e);
}

/* Returns SR_EIO if dead. Caller holds mu. */
static int dead(void)
{
    if (crash_next) {
        crash_next = 0;
        crashed = 1;
    }
    return crashed ? SR_EIO : SR_OK;
}

void vfs_crash_reset(void)
{
    pthread_mutex_lock(&mu);
    while (entries) {
        entry *e = entries;
        entries = e->next;
        pw_free_list(e);
        free(e->path);
        free(e);
    }
    crashed = crash_next = 0;
    sync_target = syncs = 0;
    pthread_mutex_unlock(&mu);
}

void vfs_crash_at_sync(unsigned long k)
{
    pthread_mutex_lock(&mu);
    sync_target = k;
    syncs = 0;
    pthread_mutex_unlock(&mu);
}

void vfs_crash_now(void)
{
    pthread_mutex_lock(&mu);
    crash_next = 1;
    pthread_mutex_unlock(&mu);
}

int vfs_crash_crashed(void)
{
    pthread_mutex_lock(&mu);
    int c = crashed;
    pthread_mutex_unlock(&mu);
    return c;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

unsigned vfs_crash_resolve(uint64_t seed)
{
    unsigned n = 0;
    pthread_mutex_lock(&mu);
    for (entry *e = entries; e; e = e->next) {
        sr_file *f = NULL;
        if (!e->head) continue;
        if (P->open(P, e->path, SR_VFS_WRITE, &f)) {
            pw_free_list(e);
            continue;
        }
        for (pw *p = e->head; p; p = p->next) {
            n++;
            switch (mix(&seed) % 4) {
            case 0: /* kept */
                (void)P->pwrite(f, p->data, p->len, p->off);
                break;
            case 1: /* lost */
                break;
            case 2: { /* torn: a prefix, cut anywhere */
                size_t k = p->len ? (size_t)(mix(&seed) % p->len) : 0;
                if (k) (void)P->pwrite(f, p->data, k, p->off);
                break;
            }
            default: { /* written, then a random range garbled */
                if (!p->len) break;
                size_t a = (size_t)(mix(&seed) % p->len);
                size_t b = a + 1 + (size_t)(mix(&seed) % (p->len - a));
                for (size_t i = a; i < b; i++) p->data[i] = (uint8_t)mix(&seed);
                (void)P->pwrite(f, p->data, p->len, p->off);
                break;
            }
            }
        }
        P->close(f);
        pw_free_list(e);
    }
    crashed = crash_next = 0;
    sync_target = syncs = 0;
    pthread_mutex_unlock(&mu);
    return n;
}

void vfs_crash_flush_all(void)
{
    pthread_mutex_lock(&mu);
    for (entry *e = entries; e; e = e->next)
        if (e->head) apply(e, NULL);
    pthread_mutex_unlock(&mu);
}

static int c_open(const sr_vfs *v, const char *path, int flags, sr_file **out)
{
    pthread_mutex_lock(&mu);
    int rc = dead();
    sr_file *real = NULL;
    if (!rc) rc = P->open(P, path, flags, &real);
    if (!rc) {
        cfile *f = calloc(1, sizeof *f);
        f->base.vfs = v;
        f->real = real;
        f->e = entry_get(path);
        *out = &f->base;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_pread(sr_file *file, void *buf, size_t len, uint64_t off, size_t *got)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&mu);
    int rc = dead();
    size_t g = 0;
    if (!rc) rc = P->pread(f->real, buf, len, off, &g);
    if (!rc) {
        /* overlay pending writes; they may extend the file */
        for (pw *p = f->e->head; p; p = p->next) {
            uint64_t a = p->off > off ? p->off : off;
            uint64_t b = p->off + p->len < off + len ? p->off + p->len : off + len;
            if (a >= b) continue;
            if (a > off + g) memset((uint8_t *)buf + g, 0, (size_t)(a - off - g));
            memcpy((uint8_t *)buf + (a - off), p->data + (a - p->off), (size_t)(b - a));
            if (b - off > g) g = (size_t)(b - off);
        }
        *got = g;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_pwrite(sr_file *file, const void *buf, size_t len, uint64_t off)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&mu);
    int rc = dead();
    if (!rc) {
        pw *p = calloc(1, sizeof *p);
        p->off = off;
        p->len = len;
        p->data = malloc(len ? len : 1);
        memcpy(p->data, buf, len);
        if (f->e->tail) f->e->tail->next = p;
        else f->e->head = p;
        f->e->tail = p;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_sync(sr_file *file)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&mu);
    int rc = dead();
    if (!rc && sync_target && ++syncs == sync_target) {
        crashed = 1;
        rc = SR_EIO;
    }
    if (!rc) apply(f->e, f->real);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_truncate(sr_file *file, uint64_t size)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&mu);
    int rc = dead();
    if (!rc) {
        apply(f->e, f->real);
        rc = P->truncate(f->real, size);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_size(sr_file *file, uint64_t *out)
{
    cfile *f = (cfile *)file;
    pthread_mutex_lock(&mu);
    int rc = dead();
    uint64_t s = 0;
    if (!rc) rc = P->size(f->real, &s);
    if (!rc) {
        for (pw *p = f->e->head; p; p = p->next)
            if (p->off + p->len > s) s = p->off + p->len;
        *out = s;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_close(sr_file *file)
{
    if (!file) return SR_OK;
    cfile *f = (cfile *)file;
    int rc = P->close(f->real);
    free(f);
    return rc;
}

static int c_rename(const sr_vfs *v, const char *a, const char *b)
{
    (void)v;
    pthread_mutex_lock(&mu);
    int rc = dead();
    if (!rc) rc = P->rename(P, a, b);
    if (!rc) {
        entry *ea = entry_get(a), *eb = entry_get(b);
        pw_free_list(eb);
        eb->head = ea->head;
        eb->tail = ea->tail;
        ea->head = ea->tail = NULL;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int c_unlink(const sr_vfs *v, const char *a)
{
    (void)v;
    pthread_mutex_lock(&mu);
    int rc = dead();
    if (!rc) rc = P->unlink(P, a);
    if (!rc) pw_free_list(entry_get(a));
    pthread_mutex_unlock(&mu);
    return rc;
}

#define PASS(name, call)                                                                           \
    pthread_mutex_lock(&mu);                                                                       \
    int rc = dead();                                                                               \
    if (!rc) rc = call;                                                                            \
    pthread_mutex_unlock(&mu);                                                                     \
    return rc

static int c_sync_dir(const sr_vfs *v, const char *d)
{
    (void)v;
    PASS(sync_dir, P->sync_dir(P, d));
}
static int c_mkdir(const sr_vfs *v, const char *d)
{
    (void)v;
    PASS(mkdir, P->mkdir(P, d));
}
static int c_list(const sr_vfs *v, const char *d, int (*cb)(void *, const char *), void *ctx)
{
    (void)v;
    PASS(list, P->list(P, d, cb, ctx));
}
static int c_lock(const sr_vfs *v, const char *path, sr_file **out)
{
    (void)v;
    PASS(lock, P->lock(P, path, out));
}

sr_vfs vfs_crash = {
    .name = "crash", .open = c_open, .pread = c_pread, .pwrite = c_pwrite, .sync = c_sync,
    .truncate = c_truncate, .size = c_size, .close = c_close, .rename = c_rename, .unlink = c_unlink,
    .sync_dir = c_sync_dir, .mkdir = c_mkdir, .list = c_list, .lock = c_lock,
};
