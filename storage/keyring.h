/*
 * storage/keyring.h -- the keyring: the data keys of issue #16, wrapped by
 * the master key, in one file <data>/keys/keyring (docs/keys.md, "The
 * keyring file", byte for byte).
 *
 * A data key belongs to one (operator, class, epoch). It is created on the
 * first record that needs it (sr_keyring_current) and is durable in the file
 * (written to keyring.tmp, fsynced, renamed over keyring, the directory
 * fsynced, all through the sr_vfs) before the call returns, so no record can
 * be sealed by a key the file does not hold. A rotation retires the current
 * key of (operator, class) and creates epoch + 1; a destruction keeps the
 * entry's metadata (a tombstone) and wipes its bytes, in memory and in the
 * file. A rewrap seals every key again under a new master (no data is
 * rewritten); the old master may stay as a `legacy` entry (the key of log
 * segments of versions 1 and 2).
 *
 * The keyring implements sr_keys (crypto.h) for the stores: seal and open by
 * key id, from any thread. SR_EKEY for an id it does not hold (the message
 * names the id and the file), SR_EERASED for a destroyed one.
 *
 * Invariants (sr_keyring_check, SR_INVARIANT after every change):
 *  1. key ids are nonzero, unique, and none is the master's id;
 *  2. per (operator, class) at most one entry is active, and it has the
 *     highest epoch of that pair; epochs of a pair are unique;
 *  3. a destroyed entry has no key bytes (all zero) and destroyed_ms > 0; an
 *     active or retired one has them;
 *  4. a retired entry has retired_ms >= created_ms.
 *
 * Thread safety: every call may come from any thread (a read-write lock;
 * sealing and opening take it shared, changes take it exclusive).
 */
#ifndef SR_KEYRING_H
#define SR_KEYRING_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "storage/crypto.h"
#include "storage/vfs.h"

#include <stddef.h>
#include <stdint.h>

/* Classes (docs/keys.md "The hierarchy"). Stored: never renumber. */
typedef enum sr_key_class {
    SR_KC_LEGACY = 0, /* an old master key: the one key of log segments of versions 1 and 2 */
    SR_KC_DATA = 1,
    SR_KC_AUDIT = 2,
    SR_KC_CONFIG = 3,
} sr_key_class;
enum { SR_KC_COUNT = 4 };

typedef enum sr_key_state {
    SR_KS_ACTIVE = 1,    /* seals new records */
    SR_KS_RETIRED = 2,   /* opens old records only */
    SR_KS_DESTROYED = 3, /* a tombstone: its records are erased */
} sr_key_state;

enum { SR_KEYRING_OP_MAX = 255, SR_KEYRING_VERSION = 1 };

/* One entry's metadata: never the key. */
typedef struct sr_keyinfo {
    uint32_t id;
    uint32_t epoch;
    uint16_t alg;   /* sr_alg */
    uint8_t cls;    /* sr_key_class */
    uint8_t state;  /* sr_key_state */
    int64_t created_ms, retired_ms, destroyed_ms; /* 0: not (yet) */
    char operator_id[SR_KEYRING_OP_MAX + 1];
} sr_keyinfo;

const char *sr_key_class_name(int cls); /* "data", "audit", "config", "legacy"; "?" */
int sr_key_class_parse(const char *name); /* the class, or -1 */
const char *sr_key_state_name(int state);

typedef struct sr_keyring sr_keyring;

/* Open <dir>/keyring (dir is <data>/keys) unwrapping its keys with master.
 * create: an empty keyring if there is no file (the file and dir are
 * written with the first key: a missing keyring is never replaced by an
 * empty file at open).
 * source names where master came from, for messages ("file:/etc/k"), or NULL.
 * SR_ENOTFOUND (no file, !create); SR_ECORRUPT (the file is damaged:
 * err->where names it); SR_EKEY (wrapped by another master: err->msg names
 * both ids); SR_EVERSION. */
SR_MUST_CHECK int sr_keyring_open(const sr_vfs *vfs, const char *dir, const sr_key *master, const char *source,
                                  int create, sr_keyring **out, sr_errinfo *err);
void sr_keyring_close(sr_keyring *kr); /* NULL-safe; wipes every key */

/* The master key id of the file, read without the master (backups, the
 * manifest, messages). SR_ENOTFOUND, SR_ECORRUPT, SR_EVERSION. */
SR_MUST_CHECK int sr_keyring_peek_master(const sr_vfs *vfs, const char *dir, uint32_t *master_id);

uint32_t sr_keyring_master_id(sr_keyring *kr);
/* The resolver the stores use; valid while kr is open. */
const sr_keys *sr_keyring_keys(sr_keyring *kr);

/* The id of the active key of (operator, cls), creating epoch 1 (durably)
 * if there is none; *created (if given) says so, and info (if given) gets
 * its metadata. cls is data, audit or config. */
SR_MUST_CHECK int sr_keyring_current(sr_keyring *kr, const char *operator_id, int cls, int64_t now_ms,
                                     uint32_t *id, int *created, sr_keyinfo *info);
/* The id of the active key of (operator, cls), without making one:
 * SR_ENOTFOUND if there is none. */
SR_MUST_CHECK int sr_keyring_active(sr_keyring *kr, const char *operator_id, int cls, uint32_t *id);
/* Retire the active key of (operator, cls) (if any) and create the next
 * epoch, durably; info gets the new key's metadata. */
SR_MUST_CHECK int sr_keyring_rotate(sr_keyring *kr, const char *operator_id, int cls, int64_t now_ms,
                                    sr_keyinfo *info);
/* How many destructions this keyring has made (grows by one after each,
 * once the key is gone from memory): a cache of values opened under its
 * keys is valid while it does not move (engine/ixseal.c). */
uint64_t sr_keyring_generation(sr_keyring *kr);
/* Destroy key id (a tombstone; its bytes wiped, in memory and in the file).
 * SR_ENOTFOUND; SR_EINVAL for an active key (rotate it first). */
SR_MUST_CHECK int sr_keyring_destroy(sr_keyring *kr, uint32_t id, int64_t now_ms);
/* Seal every key again under new_master, durably; the keyring then needs
 * new_master to open. keep_old: add the old master as a `legacy` entry (it
 * sealed segments of versions 1 and 2). The log is not touched. */
SR_MUST_CHECK int sr_keyring_rewrap(sr_keyring *kr, const sr_key *new_master, int keep_old, int64_t now_ms);

/* Every entry's metadata, in file order: *out is sr_malloc'ed (sr_free). */
SR_MUST_CHECK int sr_keyring_list(sr_keyring *kr, sr_keyinfo **out, size_t *n);
SR_MUST_CHECK int sr_keyring_info(sr_keyring *kr, uint32_t id, sr_keyinfo *out); /* SR_ENOTFOUND */

/* The file's bytes as they are on disk (wrapped: no key is readable without
 * the master), for a key backup. */
SR_MUST_CHECK int sr_keyring_export(sr_keyring *kr, sr_buf *out);
/* Restore the entries of an export (p, n) that this keyring lacks, and the
 * destructions it records, durably. The export must be wrapped by this
 * keyring's master, or by other (if given): SR_EKEY naming both ids.
 * SR_ECORRUPT for damaged bytes; SR_EEXIST for an entry of the same id
 * whose metadata differs. *added (if given): how many entries were new. */
SR_MUST_CHECK int sr_keyring_import(sr_keyring *kr, const void *p, size_t n, const sr_key *other, size_t *added,
                                    sr_errinfo *err);

/* NULL if the invariants of the header comment hold, else which does not. */
const char *sr_keyring_check(sr_keyring *kr);

#endif
