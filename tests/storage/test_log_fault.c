/* tests/storage/test_log_fault.c -- for every k, fail the k-th VFS call (or
 * the k-th allocation) during appends: each append either succeeds or returns
 * a listed error, and the reopened log holds exactly the acknowledged
 * records -- no more, no fewer -- and verifies. Plain, under the log's own
 * key, and in version 3 sections under per-record keys (each record then
 * reads back under its key). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_alloc.h"
#include "logtest.h"
#include "storage/crc32c.h"
#include "storage/log.h"
#include "testutil.h"
#include "vfs_faulty.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("fault"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(storage_log_fault, .init = setup, .fini = teardown, .timeout = 600);

enum { MAXLEN = 3000 };

/* A fresh log with 30 records in it, closed. */
static void base_log(const sr_log_opts *o)
{
    tu_rmrf(dir);
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, o, &lg, &ei), SR_OK, "%s", ei.msg);
    for (int i = 0; i < 3; i++) cr_assert_eq(lt_append(lg, 10, MAXLEN, NULL), SR_OK);
    cr_assert_eq(sr_log_close(lg), SR_OK);
}

/* Reopen with the real VFS: exactly `acked` records, all intact, verifies. */
static void expect_exactly(const sr_log_opts *o, uint64_t acked, const char *ctx)
{
    sr_log_opts po = *o;
    po.vfs = NULL;
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = sr_log_open(dir, &po, &lg, &ei);
    cr_assert_eq(rc, SR_OK, "%s: reopen: %s %s", ctx, sr_err_name(rc), ei.msg);
    const char *bad = sr_log_check(lg);
    cr_assert_null(bad, "%s: reopened log: %s", ctx, bad);
    cr_assert_eq(sr_log_next_seq(lg), acked + 1, "%s: log has %" PRIu64 " records, %" PRIu64 " acknowledged",
                 ctx, sr_log_next_seq(lg) - 1, acked);
    char why[256];
    cr_assert_eq(lt_check(lg, 1, acked + 1, MAXLEN, why, sizeof why), 0, "%s: %s", ctx, why);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    sr_log_report rep;
    cr_assert_eq(sr_log_verify(dir, &po, &rep, &ei), SR_OK, "%s: verify: %s", ctx, ei.msg);
}

/* Every record after the base log's 30 is under its key (lt_key_of). */
static void expect_keys(const sr_log_opts *o, const lt_keyring *kr, uint64_t acked, const char *ctx)
{
    sr_log_opts po = *o;
    po.vfs = NULL;
    po.readonly = 1;
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, &po, &lg, &ei), SR_OK, "%s: %s", ctx, ei.msg);
    char why[256];
    cr_assert_eq(lt_check_keys(lg, kr, 31, acked + 1, why, sizeof why), 0, "%s: %s", ctx, why);
    sr_log_close(lg);
}

/* encrypted: 0 plain, 1 the log's own key, 2 per-record keys (version 3
 * sections under a resolver, mixed with plain ones: lt_append_keyed) */
static void run_vfs_faults(vf_kind kind, const char *kname, int encrypted)
{
    sr_key key;
    lt_key(&key, 3);
    static const int which[] = {11, 12};
    lt_keyring kr;
    lt_keyring_init(&kr, which, 2);
    /* tiny segments and blocks: appends roll segments and span blocks */
    sr_log_opts o = {.vfs = &vfs_faulty, .segment_bytes = 6000, .block_bytes = 2000, .zstd_level = 1,
                     .key = encrypted == 1 ? &key : NULL, .keys = encrypted == 2 ? &kr.keys : NULL};
    unsigned long k;
    for (k = 1; k < 2000; k++) {
        base_log(&o);
        vfs_faulty_arm(0, kind);
        sr_log *lg = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_OK, "%s", ei.msg);
        vfs_faulty_arm(k, kind);
        uint64_t acked = 30;
        for (int a = 0; a < 12; a++) {
            uint64_t first = 0;
            size_t n = 1 + (size_t)(a * 3 % 7);
            int rc = encrypted == 2 ? lt_append_keyed(lg, &kr, n, MAXLEN, &first) : lt_append(lg, n, MAXLEN, &first);
            cr_assert(rc == SR_OK || rc == SR_EIO || rc == SR_ENOSPC || rc == SR_EPOISONED,
                      "%s k=%lu: append returned %s", kname, k, sr_err_name(rc));
            if (rc == SR_OK) acked = sr_log_next_seq(lg) - 1;
            /* failed, poisoned or not: the handle's state stays consistent */
            const char *bad = sr_log_check(lg);
            cr_assert_null(bad, "%s k=%lu: %s", kname, k, bad);
        }
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, kind);
        (void)sr_log_close(lg);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "%s k=%lu", kname, k);
        expect_exactly(&o, acked, ctx);
        if (encrypted == 2) expect_keys(&o, &kr, acked, ctx);
        if (!fired) break; /* k is past the last call: every call has been failed once */
    }
    cr_assert_gt(k, 10, "the fault loop should have covered many calls");
    lt_keyring_free(&kr);
}

Test(storage_log_fault, eio_at_every_call) { run_vfs_faults(VF_EIO, "EIO", 0); }
Test(storage_log_fault, enospc_at_every_call_encrypted) { run_vfs_faults(VF_ENOSPC, "ENOSPC", 1); }
Test(storage_log_fault, short_write_at_every_call) { run_vfs_faults(VF_SHORT, "SHORT", 0); }
Test(storage_log_fault, eio_at_every_call_keyed_sections) { run_vfs_faults(VF_EIO, "EIO keyed", 2); }
Test(storage_log_fault, short_write_at_every_call_keyed_sections) { run_vfs_faults(VF_SHORT, "SHORT keyed", 2); }
Test(storage_log_fault, fsync_failure_at_every_sync) { run_vfs_faults(VF_SYNC_FAIL, "FSYNC", 1); }

static void alloc_faults(int keyed)
{
    static const int which[] = {11, 12};
    lt_keyring kr;
    lt_keyring_init(&kr, which, 2);
    sr_log_opts o = {.segment_bytes = 6000, .block_bytes = 2000, .zstd_level = 1, .keys = keyed ? &kr.keys : NULL};
    unsigned long k;
    for (k = 1; k < 5000; k++) {
        base_log(&o);
        sr_log *lg = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_OK, "%s", ei.msg);
        fault_alloc_install();
        fault_alloc_arm(k);
        uint64_t acked = 30;
        for (int a = 0; a < 12; a++) {
            size_t n = 1 + (size_t)(a * 3 % 7);
            int rc = keyed ? lt_append_keyed(lg, &kr, n, MAXLEN, NULL) : lt_append(lg, n, MAXLEN, NULL);
            /* an allocation failure is reported and undone; it never poisons */
            cr_assert(rc == SR_OK || rc == SR_ENOMEM, "k=%lu: append returned %s", k, sr_err_name(rc));
            if (rc == SR_OK) acked = sr_log_next_seq(lg) - 1;
            const char *bad = sr_log_check(lg); /* undone: consistent */
            cr_assert_null(bad, "k=%lu: %s", k, bad);
        }
        int fired = fault_alloc_fired();
        fault_alloc_arm(0);
        (void)sr_log_close(lg);
        fault_alloc_uninstall();
        char ctx[64];
        snprintf(ctx, sizeof ctx, "ENOMEM%s k=%lu", keyed ? " keyed" : "", k);
        expect_exactly(&o, acked, ctx);
        if (keyed) expect_keys(&o, &kr, acked, ctx);
        if (!fired) break;
    }
    cr_assert_gt(k, 5);
    lt_keyring_free(&kr);
}

Test(storage_log_fault, allocation_failure_at_every_allocation) { alloc_faults(0); }
Test(storage_log_fault, allocation_failure_at_every_allocation_keyed_sections) { alloc_faults(1); }

/* Open itself under faults: it fails with an error or succeeds, and a later
 * clean open always sees all 30 records. */
Test(storage_log_fault, open_fails_cleanly_at_every_call)
{
    sr_log_opts o = {.vfs = &vfs_faulty, .segment_bytes = 6000, .block_bytes = 2000};
    unsigned long k;
    for (k = 1; k < 1000; k++) {
        base_log(&o);
        vfs_faulty_arm(k, VF_EIO);
        sr_log *lg = NULL;
        sr_errinfo ei;
        int rc = sr_log_open(dir, &o, &lg, &ei);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, VF_EIO);
        cr_assert(rc == SR_OK || rc == SR_EIO, "k=%lu: %s", k, sr_err_name(rc));
        if (rc == SR_OK) sr_log_close(lg);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "open k=%lu", k);
        expect_exactly(&o, 30, ctx);
        if (!fired) break;
    }
    cr_assert_gt(k, 5);
}

/* Every segment of dir made format version 1 (lt_downgrade: the bytes the
 * version 1 writer wrote); their bytes kept in saved[] (names in names[]) to
 * compare. Returns how many. */
static size_t make_v1(char names[][64], uint8_t **saved, size_t *lens, size_t max)
{
    char why[256];
    cr_assert_eq(lt_downgrade(dir, 1, why, sizeof why), 0, "%s", why);
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".seg")) continue;
        cr_assert_lt(n, max);
        char f[1200];
        snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
        uint8_t *p = tu_read_file(f, &lens[n]);
        cr_assert(p && lens[n] >= SR_SEG_HDR_LEN && sr_get_le16(p + 8) == 1);
        snprintf(names[n], 64, "%s", de->d_name);
        saved[n++] = p;
    }
    closedir(d);
    return n;
}

static void expect_unchanged(char names[][64], uint8_t **saved, const size_t *lens, size_t n, const char *ctx)
{
    for (size_t i = 0; i < n; i++) {
        char f[1200];
        snprintf(f, sizeof f, "%s/%s", dir, names[i]);
        size_t l;
        uint8_t *p = tu_read_file(f, &l);
        cr_assert(p && l == lens[i] && !memcmp(p, saved[i], l), "%s: version 1 segment %s changed", ctx, names[i]);
        free(p);
    }
}

/* The upgrade of a directory of version 1 segments (the open's roll to a
 * segment of this build's version) under a fault at every call: the open fails with the
 * error or succeeds; the version 1 segments are never changed; a clean open
 * then holds all 30 records, in a log that verifies. With an empty last
 * segment (replaced, not rolled past) too. */
static void upgrade_under_faults(vf_kind kind, int empty_tail)
{
    sr_log_opts o = {.vfs = &vfs_faulty, .segment_bytes = 6000, .block_bytes = 2000};
    unsigned long k;
    for (k = 1; k < 1000; k++) {
        char names[32][64];
        uint8_t *saved[32];
        size_t lens[32], n;
        uint64_t acked = 30;
        if (empty_tail) {
            tu_rmrf(dir);
            sr_log *lg = NULL;
            sr_errinfo ei;
            cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_OK, "%s", ei.msg);
            cr_assert_eq(sr_log_close(lg), SR_OK);
            acked = 0;
        } else {
            base_log(&o);
        }
        n = make_v1(names, saved, lens, 32);
        cr_assert_gt(n, 0);
        vfs_faulty_arm(k, kind);
        sr_log *lg = NULL;
        sr_errinfo ei;
        int rc = sr_log_open(dir, &o, &lg, &ei);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, kind);
        cr_assert(rc == SR_OK || rc == SR_EIO || rc == SR_ENOSPC, "k=%lu: %s", k, sr_err_name(rc));
        if (rc == SR_OK) sr_log_close(lg);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "upgrade k=%lu empty=%d", k, empty_tail);
        /* the empty one may have been replaced; nothing else is ever changed */
        expect_unchanged(names, saved, lens, empty_tail ? 0 : n, ctx);
        expect_exactly(&o, acked, ctx);
        /* and the clean open did upgrade: the last segment is of this version */
        char last[64] = "";
        DIR *d = opendir(dir);
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l > 4 && !strcmp(de->d_name + l - 4, ".seg") && strcmp(de->d_name, last) > 0)
                snprintf(last, sizeof last, "%s", de->d_name);
        }
        closedir(d);
        char f[1200];
        snprintf(f, sizeof f, "%s/%s", dir, last);
        size_t l;
        uint8_t *p = tu_read_file(f, &l);
        cr_assert(p && l >= SR_SEG_HDR_LEN && sr_get_le16(p + 8) == SR_LOG_VERSION, "%s: last segment %s", ctx, last);
        free(p);
        for (size_t i = 0; i < n; i++) free(saved[i]);
        if (!fired) break;
    }
    cr_assert_gt(k, 3);
}

Test(storage_log_fault, upgrading_a_version_1_directory_fails_cleanly_at_every_call)
{
    upgrade_under_faults(VF_EIO, 0);
    upgrade_under_faults(VF_SHORT, 0);
    upgrade_under_faults(VF_EIO, 1);
    upgrade_under_faults(VF_SHORT, 1);
}
