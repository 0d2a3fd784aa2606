/* storage/vfs_posix.c -- the production VFS: POSIX calls, EINTR retried,
 * short writes continued, errno mapped to SR_ codes. */
#include "storage/vfs.h"

#include "codecs/base/sr_alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct posix_file {
    sr_file base;
    int fd;
} posix_file;

static int px_open(const sr_vfs *v, const char *path, int flags, sr_file **out)
{
    int of = O_CLOEXEC;
    of |= (flags & SR_VFS_WRITE) ? O_RDWR : O_RDONLY;
    if (flags & SR_VFS_CREATE) of |= O_CREAT;
    if (flags & SR_VFS_EXCL) of |= O_EXCL;
    posix_file *f = sr_malloc(sizeof *f);
    if (!f) return SR_ENOMEM;
    int fd;
    do fd = open(path, of, 0644); while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int rc = sr_err_from_errno(errno);
        sr_free(f);
        return rc;
    }
    f->base.vfs = v;
    f->fd = fd;
    *out = &f->base;
    return SR_OK;
}

static int px_pread(sr_file *file, void *buf, size_t len, uint64_t off, size_t *got)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return sr_err_from_errno(errno);
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    *got = done;
    return SR_OK;
}

static int px_pwrite(sr_file *file, const void *buf, size_t len, uint64_t off)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return sr_err_from_errno(errno);
        }
        if (n == 0) return SR_EIO;
        done += (size_t)n;
    }
    return SR_OK;
}

static int px_sync(sr_file *file)
{
    posix_file *f = (posix_file *)file;
    int r;
    do r = fdatasync(f->fd); while (r < 0 && errno == EINTR);
    return r < 0 ? sr_err_from_errno(errno) : SR_OK;
}

static int px_truncate(sr_file *file, uint64_t size)
{
    posix_file *f = (posix_file *)file;
    int r;
    do r = ftruncate(f->fd, (off_t)size); while (r < 0 && errno == EINTR);
    return r < 0 ? sr_err_from_errno(errno) : SR_OK;
}

static int px_size(sr_file *file, uint64_t *out)
{
    posix_file *f = (posix_file *)file;
    struct stat st;
    if (fstat(f->fd, &st) < 0) return sr_err_from_errno(errno);
    *out = (uint64_t)st.st_size;
    return SR_OK;
}

static int px_close(sr_file *file)
{
    if (!file) return SR_OK;
    posix_file *f = (posix_file *)file;
    int rc = SR_OK;
    if (close(f->fd) < 0 && errno != EINTR) rc = sr_err_from_errno(errno);
    sr_free(f);
    return rc;
}

static int px_rename(const sr_vfs *v, const char *from, const char *to)
{
    (void)v;
    return rename(from, to) < 0 ? sr_err_from_errno(errno) : SR_OK;
}

static int px_unlink(const sr_vfs *v, const char *path)
{
    (void)v;
    return unlink(path) < 0 ? sr_err_from_errno(errno) : SR_OK;
}

static int px_sync_dir(const sr_vfs *v, const char *dir)
{
    (void)v;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sr_err_from_errno(errno);
    int r;
    do r = fsync(fd); while (r < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    return r < 0 ? sr_err_from_errno(e) : SR_OK;
}

static int px_mkdir(const sr_vfs *v, const char *dir)
{
    (void)v;
    if (mkdir(dir, 0755) == 0) return SR_OK;
    if (errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return SR_OK;
        return SR_EEXIST;
    }
    return sr_err_from_errno(errno);
}

static int px_list(const sr_vfs *v, const char *dir, int (*cb)(void *, const char *), void *ctx)
{
    (void)v;
    DIR *d = opendir(dir);
    if (!d) return sr_err_from_errno(errno);
    int rc = SR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        rc = cb(ctx, de->d_name);
        if (rc) break;
    }
    closedir(d);
    return rc;
}

static int px_lock(const sr_vfs *v, const char *path, sr_file **out)
{
    sr_file *f = NULL;
    int rc = px_open(v, path, SR_VFS_WRITE | SR_VFS_CREATE, &f);
    if (rc) return rc;
    if (flock(((posix_file *)f)->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? SR_ELOCKED : sr_err_from_errno(errno);
        px_close(f);
        return rc;
    }
    *out = f;
    return SR_OK;
}

static int px_link(const sr_vfs *v, const char *from, const char *to)
{
    (void)v;
    return link(from, to) == 0 ? SR_OK : sr_err_from_errno(errno);
}

const sr_vfs sr_vfs_posix = {
    .name = "posix",
    .open = px_open,
    .pread = px_pread,
    .pwrite = px_pwrite,
    .sync = px_sync,
    .truncate = px_truncate,
    .size = px_size,
    .close = px_close,
    .rename = px_rename,
    .unlink = px_unlink,
    .sync_dir = px_sync_dir,
    .mkdir = px_mkdir,
    .list = px_list,
    .lock = px_lock,
    .link = px_link,
    .ctx = NULL,
};

int sr_vfs_read_exact(sr_file *f, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    int rc = f->vfs->pread(f, buf, len, off, &got);
    if (rc) return rc;
    return got == len ? SR_OK : SR_DONE;
}
