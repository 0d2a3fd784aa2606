#include "vfs_faulty.h"

static unsigned long target, calls;
static vf_kind kind;
static int fired;

void vfs_faulty_arm(unsigned long k, vf_kind kd)
{
    target = k;
    kind = kd;
    calls = 0;
    fired = 0;
}
unsigned long vfs_faulty_calls(void) { return calls; }
int vfs_faulty_fired(void) { return fired; }

/* 0: go ahead; else the error to return. is_sync/is_write say what call. */
static int tick(int is_sync)
{
    if (kind == VF_SYNC_FAIL && !is_sync) return 0;
    calls++;
    if (target && calls == target) {
        fired = 1;
        switch (kind) {
        case VF_ENOSPC: return SR_ENOSPC;
        default: return SR_EIO;
        }
    }
    return 0;
}

#define P (&sr_vfs_posix)

static int f_open(const sr_vfs *v, const char *path, int flags, sr_file **out)
{
    int rc = tick(0);
    if (rc) return rc;
    rc = P->open(P, path, flags, out);
    if (!rc) (*out)->vfs = v;
    return rc;
}
static int f_pread(sr_file *f, void *b, size_t n, uint64_t off, size_t *got)
{
    int rc = tick(0);
    return rc ? rc : P->pread(f, b, n, off, got);
}
static int f_pwrite(sr_file *f, const void *b, size_t n, uint64_t off)
{
    int rc = tick(0);
    if (rc && kind == VF_SHORT) {
        if (n / 2) (void)P->pwrite(f, b, n / 2, off);
        return SR_ENOSPC;
    }
    return rc ? rc : P->pwrite(f, b, n, off);
}
static int f_sync(sr_file *f)
{
    int rc = tick(1);
    return rc ? rc : P->sync(f);
}
static int f_truncate(sr_file *f, uint64_t s)
{
    int rc = tick(0);
    return rc ? rc : P->truncate(f, s);
}
static int f_size(sr_file *f, uint64_t *o)
{
    int rc = tick(0);
    return rc ? rc : P->size(f, o);
}
static int f_close(sr_file *f) { return P->close(f); }
static int f_rename(const sr_vfs *v, const char *a, const char *b)
{
    (void)v;
    int rc = tick(0);
    return rc ? rc : P->rename(P, a, b);
}
static int f_unlink(const sr_vfs *v, const char *a)
{
    (void)v;
    int rc = tick(0);
    return rc ? rc : P->unlink(P, a);
}
static int f_sync_dir(const sr_vfs *v, const char *a)
{
    (void)v;
    int rc = tick(1);
    return rc ? rc : P->sync_dir(P, a);
}
static int f_mkdir(const sr_vfs *v, const char *a)
{
    (void)v;
    int rc = tick(0);
    return rc ? rc : P->mkdir(P, a);
}
static int f_list(const sr_vfs *v, const char *d, int (*cb)(void *, const char *), void *ctx)
{
    (void)v;
    int rc = tick(0);
    return rc ? rc : P->list(P, d, cb, ctx);
}
static int f_lock(const sr_vfs *v, const char *path, sr_file **out)
{
    int rc = tick(0);
    if (rc) return rc;
    rc = P->lock(P, path, out);
    if (!rc) (*out)->vfs = v;
    return rc;
}

static int f_link(const sr_vfs *v, const char *a, const char *b)
{
    (void)v;
    int rc = tick(0);
    return rc ? rc : P->link(P, a, b);
}

sr_vfs vfs_faulty = {
    .name = "faulty", .open = f_open, .pread = f_pread, .pwrite = f_pwrite, .sync = f_sync,
    .truncate = f_truncate, .size = f_size, .close = f_close, .rename = f_rename, .unlink = f_unlink,
    .sync_dir = f_sync_dir, .mkdir = f_mkdir, .list = f_list, .lock = f_lock, .link = f_link,
};
