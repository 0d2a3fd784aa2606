/* tests/storage/test_log_crash.c -- simulated power loss at random points.
 *
 * Each iteration appends random batches through the crash VFS until a crash
 * at a random fsync; the crash VFS then keeps, drops, tears or garbles each
 * unsynced write (seeded); the directory is reopened through the real VFS.
 * After recovery: every acknowledged record is present and intact; whatever
 * else survived is whole batches that were in flight (nothing half-written);
 * the hash chain verifies; and the log accepts new appends. A third of the
 * rounds append under per-record keys (version 3 sections): each recovered
 * record is under its key.
 * >= 1,000 iterations in `make test`; SR_SOAK=N multiplies them. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "logtest.h"
#include "storage/log.h"
#include "testutil.h"
#include "vfs_crash.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("crash"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(storage_log_crash, .init = setup, .fini = teardown, .timeout = 900);

enum { MAXLEN = 1500 };

static void one_round(uint64_t seed, sr_sync_mode mode, int *torn_seen)
{
    tu_rng r = {seed};
    sr_key key;
    lt_key(&key, 5);
    static const int which[] = {11, 12};
    lt_keyring kr;
    lt_keyring_init(&kr, which, 2);
    sr_log_opts o = {.vfs = &vfs_crash, .sync = mode,
                     .segment_bytes = 4096 + tu_below(&r, 12000),
                     .block_bytes = 256 + (uint32_t)tu_below(&r, 4000),
                     .zstd_level = (int)tu_below(&r, 3),
                     .key = tu_below(&r, 2) ? &key : NULL};
    /* a third of the rounds: per-record keys (version 3 sections under a
     * resolver, mixed with plain ones) */
    int keyed = tu_below(&r, 3) == 0;
    if (keyed) o.keys = &kr.keys;
    tu_rmrf(dir);
    vfs_crash_reset();
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, &o, &lg, &ei), SR_OK, "seed %" PRIu64 ": %s", seed, ei.msg);
    vfs_crash_at_sync(1 + tu_below(&r, 25));
    uint64_t acked = 0;
    size_t sizes[64];
    int nb = 0;
    for (nb = 0; nb < 64; nb++) {
        size_t n = 1 + (size_t)tu_below(&r, 12);
        sizes[nb] = n;
        int rc = keyed ? lt_append_keyed(lg, &kr, n, MAXLEN, NULL) : lt_append(lg, n, MAXLEN, NULL);
        if (rc != SR_OK) break;
        if (mode == SR_SYNC_ALWAYS) acked += n;
    }
    if (nb == 64) vfs_crash_now();
    (void)sr_log_close(lg);
    vfs_crash_resolve(seed ^ 0xabcdef);

    sr_log_opts po = o;
    po.vfs = NULL;
    int rc = sr_log_open(dir, &po, &lg, &ei);
    cr_assert_eq(rc, SR_OK, "seed %" PRIu64 " mode %d: reopen after crash: %s: %s", seed, mode, sr_err_name(rc),
                 ei.msg);
    sr_log_tail tail;
    sr_log_tail_info(lg, &tail);
    if (tail.torn) (*torn_seen)++;
    uint64_t have = sr_log_next_seq(lg) - 1;
    cr_assert_geq(have, acked, "seed %" PRIu64 ": %" PRIu64 " acknowledged, %" PRIu64 " recovered", seed, acked,
                  have);
    /* what survived is a prefix made of whole batches */
    uint64_t sum = 0;
    int whole = have == 0;
    for (int i = 0; i <= nb && i < 64 && !whole; i++) {
        sum += sizes[i];
        if (sum == have) whole = 1;
        if (sum > have) break;
    }
    cr_assert(whole, "seed %" PRIu64 ": %" PRIu64 " records survived: not a whole number of batches", seed, have);
    char why[256];
    cr_assert_eq(lt_check(lg, 1, have + 1, MAXLEN, why, sizeof why), 0, "seed %" PRIu64 ": %s", seed, why);
    if (keyed) cr_assert_eq(lt_check_keys(lg, &kr, 1, have + 1, why, sizeof why), 0, "seed %" PRIu64 ": %s", seed, why);
    /* the log goes on */
    uint64_t f;
    cr_assert_eq(lt_append(lg, 3, MAXLEN, &f), SR_OK);
    cr_assert_eq(f, have + 1);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    sr_log_report rep;
    cr_assert_eq(sr_log_verify(dir, &po, &rep, &ei), SR_OK, "seed %" PRIu64 ": verify: %s", seed, ei.msg);
    cr_assert_eq(rep.records, have + 3);
    lt_keyring_free(&kr);
}

Test(storage_log_crash, acknowledged_records_survive_1000_random_crashes)
{
    uint64_t seed = tu_seed(7);
    int n = tu_iters(1000), torn = 0;
    for (int i = 0; i < n; i++) one_round(seed * 1000003u + (uint64_t)i, SR_SYNC_ALWAYS, &torn);
    cr_assert_gt(torn, n / 20, "the crashes should have produced torn tails (%d)", torn);
    fprintf(stderr, "crash suite: %d rounds, %d torn tails cut\n", n, torn);
}

Test(storage_log_crash, unsynced_modes_recover_to_a_whole_batch_prefix)
{
    uint64_t seed = tu_seed(11);
    int n = tu_iters(300), torn = 0;
    for (int i = 0; i < n; i++)
        one_round(seed * 7777u + (uint64_t)i, i % 2 ? SR_SYNC_NONE : SR_SYNC_INTERVAL, &torn);
}
