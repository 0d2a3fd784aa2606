/*
 * engine/backup.h -- online backup and verified restore (R-ST-5, R-RL-2;
 * docs/backup.md).
 *
 * A BACKUP SET is a directory (DEST) of backups of one chain (one platform
 * key: the chain id is the SHA-256 of its public key). A backup is a
 * directory DEST/NAME holding, consistent at one sequence number S:
 *     log/<segments>     the log up to S (sealed segments whole, the
 *                        segment holding S up to the end of S's batch)
 *     index/data.mdb     the index (an LMDB copy at its watermark W = S)
 *     blobs/ab/cd/<hex>[.<kid>]  every committed blob of the store (a superset of
 *                        those the index at S references)
 *     platform-cert.pem  the platform's certificate (public), if any
 *     manifest           every file above with its size and SHA-256, S, W,
 *                        the chain tip at S, the chain id and the log's key
 *                        id (never a key); signed ES256 with the platform
 *                        key; written last, fsynced, then the directory
 * It is built in DEST/NAME.partial and renamed to DEST/NAME only when
 * complete; a directory without a valid manifest is never taken for a
 * complete backup (list, prune, restore, incremental base).
 *
 * Incremental: a log segment or a blob that the newest complete backup of
 * the set holds with the same name and size is hard-linked from it, not
 * copied (sealed segments and blobs are immutable; a segment prefix up to
 * a durable batch end is never rewritten). Each backup is self-contained:
 * removing any other leaves it whole.
 *
 * Threads: sr_engine_backup runs on the caller's thread beside the writer
 * (which goes on); one backup at a time per process (others wait).
 */
#ifndef SR_ENGINE_BACKUP_H
#define SR_ENGINE_BACKUP_H

#include "codecs/base/sr_error.h"
#include "engine/suiro.h"

#include <stddef.h>
#include <stdint.h>

enum { SR_BACKUP_NAME_MAX = 64 };

/* What a backup holds (its manifest), and for a list whether it checks. */
typedef struct sr_backup_info {
    char name[SR_BACKUP_NAME_MAX];  /* its directory name in the set */
    char base[SR_BACKUP_NAME_MAX];  /* the backup it linked files from ("" none) */
    uint64_t seq;                   /* S: the log up to it */
    uint64_t watermark;             /* the index copy's watermark (= seq but after a replay at open) */
    uint64_t first_seq;             /* the first record of the log it holds */
    uint8_t tip[32];                /* the chain tip at S */
    uint8_t chain[32];              /* the chain id: SHA-256 of the platform public key */
    uint32_t key_id;                /* the log key's id (0: not encrypted) */
    int64_t created_ms;
    uint64_t bytes;                 /* of its files */
    uint32_t files, files_copied, files_linked;
    int verified;                   /* list: 1 manifest signed by this platform key, every file of its size */
} sr_backup_info;

typedef struct sr_backup_opts {
    const struct sr_vfs *vfs;     /* NULL: POSIX (tests: the fault-injecting VFS) */
    const char *platform_key;     /* the signing key (PEM, private); NULL: DIR/platform-key.pem */
    const char *actor, *source;   /* who asked, from where (the BackupEvent); NULL: "system", "cli" */
    int actor_kind;               /* sr_actor_kind; 0: system */
    int no_event;                 /* 1: record no BackupEvent (a read-only engine records none anyway) */
    /* progress: bytes done of total, now and then (the caller's thread) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* tests only: sleep this long after each file of the backup (so that a
     * kill -9 lands in the middle of one); 0: the environment's
     * SUIRO_TEST_BACKUP_DELAY_MS, if set (the crash rounds set it for the
     * server and the CLI) */
    uint32_t test_file_delay_ms;
} sr_backup_opts;

/**
 * Take a backup of e into the set dest (created if missing; its parent
 * must exist). A dest that holds anything but backups of this chain (and
 * leftovers NAME.partial of interrupted backups, which are removed) is
 * refused. On SR_OK, *out describes the new backup dest/out->name.
 * On failure nothing is left under a backup's name (the .partial is
 * removed) and ei says what, naming the file. The source records a
 * BackupEvent (done or failed) after it.
 */
SR_MUST_CHECK int sr_engine_backup(sr_engine *e, const char *dest, const sr_backup_opts *o, sr_backup_info *out,
                                   sr_errinfo *ei);

/**
 * Check the backup directory dir against platform_key (PEM: the private
 * key, the public key or the certificate): its manifest parses, names this
 * chain and is signed by that key, every file it lists is there with its
 * size and (full) its SHA-256, and no other file is. SR_OK; SR_ECORRUPT
 * naming the first bad file; SR_ENOTFOUND (no manifest: not a complete
 * backup); SR_EKEY (another chain / not signed by this key).
 */
SR_MUST_CHECK int sr_backup_check(const char *dir, const char *platform_key, int full, sr_backup_info *out,
                                  sr_errinfo *ei);

/* The backups of the set dest, oldest S first (*out: sr_free). Entries that
 * are no complete backup (no manifest, a .partial) are left out; one whose
 * manifest does not check against platform_key has verified = 0. */
SR_MUST_CHECK int sr_backup_list(const char *dest, const char *platform_key, sr_backup_info **out, size_t *n,
                                 sr_errinfo *ei);

/* Remove the complete backups of dest but the keep newest (by S); nothing
 * else is touched (an incomplete one stays). *removed: how many. */
SR_MUST_CHECK int sr_backup_prune(const char *dest, const char *platform_key, unsigned keep, unsigned *removed,
                                  sr_errinfo *ei);

typedef struct sr_restore_opts {
    const struct sr_key *key;     /* the log's key (storage/crypto.h); NULL: not encrypted */
    const char *platform_key;     /* PEM: private key, public key or certificate (required); a private key is
                                     also written as DIR/platform-key.pem */
    uint64_t to_seq;              /* > 0: cut the log at the last whole command at or before it */
    int64_t to_ms;                /* with has_to_ms: cut after the last event ingested at or before it */
    int has_to_ms;
    const char *actor, *source;   /* the restore's BackupEvent in DIR; NULL: "system", "cli" */
    int no_event;                 /* 1: record no BackupEvent in DIR (tests: DIR exactly at S) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} sr_restore_opts;

/**
 * Restore the backup bdir into the new data directory dir (missing or
 * empty): check it first (sr_backup_check, full), then copy it into
 * dir.partial (checking each file again), cut the log and rebuild the
 * index for --to, rename dir.partial to dir, and record the restore as the
 * first new event of dir. out->seq is the S restored (the cut's, with --to).
 * A damaged backup, a wrong key or a dir in use: an error naming the file,
 * nothing under dir.
 */
SR_MUST_CHECK int sr_backup_restore(const char *bdir, const char *dir, const sr_restore_opts *o,
                                    sr_backup_info *out, sr_errinfo *ei);

/* Parse a manifest's text (len bytes, any bytes: a file read from a backup)
 * without checking its signature or files: SR_OK and its summary, or
 * SR_ECORRUPT naming the line. For the fuzzer (tests/fuzz/fuzz_manifest.c);
 * every reader of a backup goes through the same parser. */
SR_MUST_CHECK int sr_backup_manifest_parse(const void *text, size_t len, sr_backup_info *out, sr_errinfo *ei);

#endif
