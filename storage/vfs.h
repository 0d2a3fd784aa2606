/*
 * storage/vfs.h -- the file-system seam.
 *
 * storage/ never calls open/pwrite/fsync directly: it goes through an sr_vfs,
 * a table of function pointers (SQLite's VFS). Production uses sr_vfs_posix;
 * tests swap in a fault-injecting VFS (tests/support/vfs_faulty.c) and a crash
 * VFS that keeps unsynced writes in memory and drops or garbles them at a
 * simulated crash (tests/support/vfs_crash.c).
 *
 * Contract of every implementation:
 *  - every function returns SR_OK or a negative SR_ code (errno mapped by
 *    sr_err_from_errno); out-parameters are written only on SR_OK;
 *  - pwrite writes all bytes or returns an error (it may have written a prefix:
 *    a failed pwrite leaves the region undefined);
 *  - pread may return fewer bytes than asked only at end of file (*got tells);
 *  - sync makes every byte written so far to that file durable (fdatasync);
 *    after a failed sync nothing is known about what is durable;
 *  - rename is atomic; sync_dir makes creations, renames, links and unlinks
 *    in that directory durable.
 * Files handles may be used from several threads at once for pread; writes to
 * one file are serialised by the caller.
 */
#ifndef SR_VFS_H
#define SR_VFS_H

#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

enum sr_vfs_flags {
    SR_VFS_READ = 1 << 0,
    SR_VFS_WRITE = 1 << 1,   /* read-write */
    SR_VFS_CREATE = 1 << 2,  /* create if missing */
    SR_VFS_EXCL = 1 << 3,    /* with CREATE: fail with SR_EEXIST if present */
};

typedef struct sr_vfs sr_vfs;

/* Base of every implementation's file object. */
typedef struct sr_file {
    const sr_vfs *vfs;
} sr_file;

struct sr_vfs {
    const char *name;
    int (*open)(const sr_vfs *v, const char *path, int flags, sr_file **out);
    int (*pread)(sr_file *f, void *buf, size_t len, uint64_t off, size_t *got);
    int (*pwrite)(sr_file *f, const void *buf, size_t len, uint64_t off);
    int (*sync)(sr_file *f);
    int (*truncate)(sr_file *f, uint64_t size);
    int (*size)(sr_file *f, uint64_t *out);
    int (*close)(sr_file *f); /* NULL-safe; frees the handle even on error */
    int (*rename)(const sr_vfs *v, const char *from, const char *to);
    int (*unlink)(const sr_vfs *v, const char *path);
    int (*sync_dir)(const sr_vfs *v, const char *dir);
    int (*mkdir)(const sr_vfs *v, const char *dir); /* SR_OK if it exists */
    /* Calls cb(ctx, name) for every entry of dir but "." and ".."; a non-zero
     * return from cb stops the walk and is returned. */
    int (*list)(const sr_vfs *v, const char *dir, int (*cb)(void *ctx, const char *name), void *ctx);
    /* Take an exclusive advisory lock on path (created if missing); released
     * by close. SR_ELOCKED if another process holds it. */
    int (*lock)(const sr_vfs *v, const char *path, sr_file **out);
    /* Make to a new name (hard link) of the existing file from; SR_EEXIST if
     * to exists. NULL: not supported (a backup copies instead). */
    int (*link)(const sr_vfs *v, const char *from, const char *to);
    void *ctx; /* implementation state */
};

extern const sr_vfs sr_vfs_posix;

/* Convenience wrappers (NULL-safe close). */
static inline int sr_file_close(sr_file *f) { return f ? f->vfs->close(f) : SR_OK; }

/* Read exactly len bytes at off: SR_OK, SR_DONE if the file ends first (a
 * short read), or an error. */
int sr_vfs_read_exact(sr_file *f, void *buf, size_t len, uint64_t off);

#endif
