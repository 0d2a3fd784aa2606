/* tests/support/vfs_crash.h -- a VFS that simulates power loss (SQLite's
 * test6.c idea).
 *
 * Writes are not sent to the file until the file is synced: they wait in a
 * per-path list (reads see them, as the page cache would). A "crash" stops
 * the world: the crashing call and every later call fail with SR_EIO. Then
 * vfs_crash_resolve() decides, for each unsynced write, what the disk kept:
 * all of it, none of it, a prefix of it (torn), or all of it with a random
 * range garbled -- and forgets the rest. The caller then closes its handles
 * and reopens the directory through sr_vfs_posix, as a restarted process. */
#ifndef SR_VFS_CRASH_H
#define SR_VFS_CRASH_H

#include "storage/vfs.h"

#include <stdint.h>

extern sr_vfs vfs_crash;

void vfs_crash_reset(void);                 /* forget everything, not crashed */
void vfs_crash_at_sync(unsigned long k);    /* crash at the k-th sync (0: never) */
void vfs_crash_now(void);                   /* crash at the next call */
int vfs_crash_crashed(void);
/* Decide the fate of unsynced writes with this seed; returns how many
 * pending writes there were. Clears the crashed state. */
unsigned vfs_crash_resolve(uint64_t seed);
/* Apply every pending write (no crash): a clean shutdown. */
void vfs_crash_flush_all(void);

#endif
