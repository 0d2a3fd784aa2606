/* tests/support/vfs_faulty.h -- a VFS over POSIX that fails the k-th call.
 *
 * Every call through the VFS is counted (open, pread, pwrite, sync, truncate,
 * size, rename, unlink, sync_dir, mkdir, list, lock, link; close is not, so cleanup
 * always works). When the count reaches the armed k, that call fails with the
 * armed kind; later calls succeed again (a transient fault, which is the
 * harder case: the caller must not trust anything after it). */
#ifndef SR_VFS_FAULTY_H
#define SR_VFS_FAULTY_H

#include "storage/vfs.h"

typedef enum vf_kind {
    VF_EIO,        /* the call returns SR_EIO, doing nothing */
    VF_ENOSPC,     /* the call returns SR_ENOSPC, doing nothing */
    VF_SHORT,      /* pwrite writes the first half, then SR_ENOSPC; other calls: SR_EIO */
    VF_SYNC_FAIL,  /* only sync calls count; the k-th sync returns SR_EIO */
} vf_kind;

extern sr_vfs vfs_faulty;
void vfs_faulty_arm(unsigned long k, vf_kind kind); /* k = 0 disarms; resets the count */
unsigned long vfs_faulty_calls(void);              /* calls counted since arm */
int vfs_faulty_fired(void);

#endif
