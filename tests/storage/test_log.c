/* tests/storage/test_log.c -- storage/log.c behaviour: round trips, seeking,
 * group commit under concurrency, readers following the writer, rolling,
 * retention, keys, locking, poisoning, limits. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "logtest.h"
#include "storage/log.h"
#include "testutil.h"
#include "vfs_faulty.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("log"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(storage_log, .init = setup, .fini = teardown, .timeout = 240);

static sr_log *open_log(const sr_log_opts *o)
{
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = sr_log_open(dir, o, &lg, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s: %s", sr_err_name(rc), ei.msg);
    return lg;
}

/* the log's invariants (log.c 7-9) hold */
static void inv(sr_log *lg)
{
    const char *why = sr_log_check(lg);
    cr_assert_null(why, "invariant broken: %s", why);
}

static void check(sr_log *lg, uint64_t from, uint64_t to, size_t maxlen)
{
    char why[256];
    inv(lg);
    cr_assert_eq(lt_check(lg, from, to, maxlen, why, sizeof why), 0, "%s", why);
}

Test(storage_log, empty_log_starts_at_seq_1_and_iterates_nothing)
{
    sr_log *lg = open_log(NULL);
    cr_assert_eq(sr_log_next_seq(lg), 1);
    cr_assert_eq(sr_log_first_seq(lg), 1);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t s;
    sr_slice r;
    cr_assert_eq(sr_log_iter_next(it, &s, &r), SR_DONE);
    sr_log_iter_close(it);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lg = open_log(NULL);
    cr_assert_eq(sr_log_next_seq(lg), 1);
    sr_log_close(lg);
}

/* Round trip of random batches (record lengths 0 B .. 1 MiB, seeded) through
 * append, close, reopen, and reads from random sequence numbers -- in every
 * combination of compression and encryption, with small segments and blocks
 * so that batches span blocks and segments. */
Test(storage_log, random_batches_round_trip_through_reopen_and_random_seeks)
{
    uint64_t seed = tu_seed(1);
    sr_key key;
    lt_key(&key, 1);
    for (int mode = 0; mode < 4; mode++) {
        tu_rmrf(dir);
        tu_rng r = {seed + (uint64_t)mode};
        const size_t maxlen = 1u << 20;
        sr_log_opts o = {.segment_bytes = 2u << 20, .block_bytes = 64u << 10,
                         .zstd_level = (mode & 1) ? 1 : 0, .key = (mode & 2) ? &key : NULL,
                         .sync = SR_SYNC_NONE};
        sr_log *lg = open_log(&o);
        uint64_t total = 0;
        for (int b = 0; b < 40; b++) {
            size_t n = 1 + (size_t)tu_below(&r, (b % 5 == 0) ? 300 : 20);
            uint64_t first;
            cr_assert_eq(lt_append(lg, n, maxlen, &first), SR_OK);
            cr_assert_eq(first, total + 1);
            inv(lg);
            total += n;
        }
        cr_assert_eq(sr_log_next_seq(lg), total + 1);
        check(lg, 1, total + 1, maxlen); /* before close: readable while open */
        cr_assert_eq(sr_log_close(lg), SR_OK);
        lg = open_log(&o);
        cr_assert_eq(sr_log_next_seq(lg), total + 1, "mode %d", mode);
        cr_assert_gt(sr_log_segment_count(lg), 1, "segments should have rolled");
        for (int k = 0; k < 30; k++) {
            uint64_t from = 1 + tu_below(&r, total);
            uint64_t to = from + 1 + tu_below(&r, 50);
            if (to > total + 1) to = total + 1;
            check(lg, from, to, maxlen);
        }
        sr_log_close(lg);
        sr_log_report rep;
        sr_errinfo ei;
        cr_assert_eq(sr_log_verify(dir, &o, &rep, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(rep.records, total);
        cr_assert_eq(rep.last_seq, total);
    }
}

Test(storage_log, tip_hash_survives_reopen_and_changes_with_each_append)
{
    sr_log *lg = open_log(NULL);
    uint8_t t0[32], t1[32], t2[32];
    sr_log_tip(lg, t0);
    cr_assert_eq(lt_append(lg, 3, 100, NULL), SR_OK);
    sr_log_tip(lg, t1);
    cr_assert_neq(memcmp(t0, t1, 32), 0);
    sr_log_close(lg);
    lg = open_log(NULL);
    sr_log_tip(lg, t2);
    cr_assert_eq(memcmp(t1, t2, 32), 0);
    sr_log_close(lg);
}

typedef struct thr {
    sr_log *lg;
    int id, n;
    uint64_t *firsts;
} thr;

static void *appender(void *arg)
{
    thr *t = arg;
    for (int i = 0; i < t->n; i++) {
        char buf[64];
        sr_slice recs[3];
        char bodies[3][64];
        for (int k = 0; k < 3; k++) {
            snprintf(bodies[k], sizeof bodies[k], "t%d-i%d-k%d", t->id, i, k);
            recs[k] = (sr_slice){bodies[k], strlen(bodies[k])};
        }
        (void)buf;
        if (sr_log_append(t->lg, recs, 3, &t->firsts[i]) != SR_OK) t->firsts[i] = 0;
    }
    return NULL;
}

/* Concurrent appenders (group commit): every batch gets a distinct, dense
 * range, its records stay together and in order, nothing is lost. */
Test(storage_log, concurrent_appenders_get_dense_disjoint_ranges)
{
    enum { T = 4, N = 150 };
    sr_log_opts o = {.zstd_level = 1, .segment_bytes = 64u << 10};
    sr_log *lg = open_log(&o);
    pthread_t th[T];
    thr ts[T];
    for (int t = 0; t < T; t++) {
        ts[t] = (thr){lg, t, N, calloc(N, sizeof(uint64_t))};
        pthread_create(&th[t], NULL, appender, &ts[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    cr_assert_eq(sr_log_next_seq(lg), (uint64_t)T * N * 3 + 1);
    char *seen = calloc((size_t)T * N * 3 + 2, 1);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            uint64_t f = ts[t].firsts[i];
            cr_assert_gt(f, 0);
            for (int k = 0; k < 3; k++) {
                cr_assert_eq(seen[f + (uint64_t)k], 0, "seq %" PRIu64 " given twice", f + (uint64_t)k);
                seen[f + (uint64_t)k] = 1;
            }
        }
    sr_log_close(lg);
    lg = open_log(&o);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            uint64_t f = ts[t].firsts[i], s;
            sr_log_iter_close(it);
            cr_assert_eq(sr_log_iter_open(lg, f, &it), SR_OK);
            for (int k = 0; k < 3; k++) {
                sr_slice rec;
                char want[64];
                snprintf(want, sizeof want, "t%d-i%d-k%d", t, i, k);
                cr_assert_eq(sr_log_iter_next(it, &s, &rec), SR_OK);
                cr_assert_eq(s, f + (uint64_t)k);
                cr_assert_eq(rec.len, strlen(want));
                cr_assert_eq(memcmp(rec.data, want, rec.len), 0);
            }
        }
    sr_log_iter_close(it);
    sr_log_close(lg);
    for (int t = 0; t < T; t++) free(ts[t].firsts);
    free(seen);
}

typedef struct follower {
    sr_log *lg;
    uint64_t target, got;
    int bad;
    volatile int *stop;
} follower;

static void *follow(void *arg)
{
    follower *f = arg;
    sr_log_iter *it;
    if (sr_log_iter_open(f->lg, 1, &it)) {
        f->bad = 1;
        return NULL;
    }
    while (f->got < f->target) {
        uint64_t s;
        sr_slice rec;
        int rc = sr_log_iter_next(it, &s, &rec);
        if (rc == SR_DONE) {
            if (*f->stop && f->got < f->target) {
                /* writer finished; one more pass picks up the rest */
                rc = sr_log_iter_next(it, &s, &rec);
                if (rc == SR_DONE) break;
            } else
                continue;
        }
        if (rc != SR_OK) {
            f->bad = 2;
            break;
        }
        if (s != f->got + 1) {
            f->bad = 3;
            break;
        }
        /* durability: a reader never sees past what is durable */
        if (s >= sr_log_durable_seq(f->lg)) {
            f->bad = 4;
            break;
        }
        f->got = s;
    }
    sr_log_iter_close(it);
    return NULL;
}

/* A reader follows the writer across segment rolls, sees each record once,
 * in order, and never a record that is not yet durable. */
Test(storage_log, reader_follows_writer_and_sees_only_durable_records)
{
    sr_log_opts o = {.segment_bytes = 16u << 10, .zstd_level = 1};
    sr_log *lg = open_log(&o);
    volatile int stop = 0;
    follower f = {lg, 3000, 0, 0, &stop};
    pthread_t th;
    pthread_create(&th, NULL, follow, &f);
    for (int i = 0; i < 300; i++) cr_assert_eq(lt_append(lg, 10, 200, NULL), SR_OK);
    stop = 1;
    pthread_join(th, NULL);
    cr_assert_eq(f.bad, 0, "follower failed with %d at %" PRIu64, f.bad, f.got);
    cr_assert_eq(f.got, 3000);
    sr_log_close(lg);
}

Test(storage_log, drop_below_removes_whole_old_segments_only)
{
    sr_log_opts o = {.segment_bytes = 8u << 10};
    sr_log *lg = open_log(&o);
    for (int i = 0; i < 100; i++) cr_assert_eq(lt_append(lg, 5, 200, NULL), SR_OK);
    size_t before = sr_log_segment_count(lg), removed = 0;
    cr_assert_gt(before, 3);
    /* an iterator positioned at the start keeps reading a removed segment */
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    cr_assert_eq(sr_log_drop_below(lg, 250, &removed), SR_OK);
    inv(lg);
    cr_assert_gt(removed, 0);
    cr_assert_eq(sr_log_segment_count(lg), before - removed);
    uint64_t first = sr_log_first_seq(lg);
    cr_assert_leq(first, 250, "records at or above the cut point must survive");
    cr_assert_gt(first, 1);
    uint64_t s, want = 1;
    sr_slice rec;
    int rc;
    while ((rc = sr_log_iter_next(it, &s, &rec)) == SR_OK) {
        cr_assert_eq(s, want++);
        cr_assert_null(sr_log_iter_check(it), "%s", sr_log_iter_check(it));
    }
    if (removed > 1) {
        /* it read its own (removed) segment, then reports the gap: never a silent skip */
        cr_assert_eq(rc, SR_ENOTFOUND, "%s", sr_err_name(rc));
        cr_assert(strstr(sr_log_iter_errinfo(it)->msg, "dropped by retention"));
        cr_assert_lt(want, first);
    } else {
        cr_assert_eq(rc, SR_DONE);
        cr_assert_eq(want, 501);
    }
    sr_log_iter_close(it);
    check(lg, first, 501, 200);
    /* the active segment is never dropped */
    cr_assert_eq(sr_log_drop_below(lg, UINT64_MAX, &removed), SR_OK);
    cr_assert_geq(sr_log_segment_count(lg), 1);
    cr_assert_eq(lt_append(lg, 5, 200, NULL), SR_OK);
    sr_log_close(lg);
    lg = open_log(&o);
    cr_assert_eq(sr_log_next_seq(lg), 506);
    check(lg, sr_log_first_seq(lg), 506, 200);
    sr_log_close(lg);
    sr_log_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_log_verify(dir, &o, &rep, &ei), SR_OK, "%s", ei.msg);
}

Test(storage_log, encrypted_log_without_key_or_with_another_key_is_EKEY_and_untouched)
{
    sr_key k1, k2;
    lt_key(&k1, 1);
    lt_key(&k2, 2);
    cr_assert_neq(k1.id, k2.id);
    sr_log_opts o = {.key = &k1, .zstd_level = 3};
    sr_log *lg = open_log(&o);
    cr_assert_eq(lt_append(lg, 20, 500, NULL), SR_OK);
    sr_log_close(lg);
    sr_errinfo ei;
    sr_log_opts bad = {.key = &k2};
    cr_assert_eq(sr_log_open(dir, &bad, &lg, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "key id"), "%s", ei.msg);
    sr_log_opts none = {0};
    cr_assert_eq(sr_log_open(dir, &none, &lg, &ei), SR_EKEY);
    /* nothing was cut: the right key still reads everything */
    lg = open_log(&o);
    cr_assert_eq(sr_log_next_seq(lg), 21);
    check(lg, 1, 21, 500);
    sr_log_close(lg);
}

Test(storage_log, encrypted_payload_does_not_contain_the_plaintext)
{
    sr_key k;
    lt_key(&k, 1);
    sr_log_opts o = {.key = &k};
    sr_log *lg = open_log(&o);
    const char *secret = "SECRET-MEASUREMENT-0123456789";
    sr_slice rec = {secret, strlen(secret)};
    cr_assert_eq(sr_log_append(lg, &rec, 1, NULL), SR_OK);
    sr_log_close(lg);
    char path[1024];
    snprintf(path, sizeof path, "%s/00000000000000000001.seg", dir);
    size_t n;
    uint8_t *p = tu_read_file(path, &n);
    cr_assert(p);
    cr_assert_null(memmem(p, n, secret, strlen(secret)));
    free(p);
}

Test(storage_log, second_writer_is_refused_while_the_first_holds_the_lock)
{
    sr_log *lg = open_log(NULL), *lg2 = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, NULL, &lg2, &ei), SR_ELOCKED);
    sr_log_opts ro = {.readonly = 1};
    cr_assert_eq(sr_log_open(dir, &ro, &lg2, &ei), SR_OK, "readers need no lock");
    sr_log_close(lg2);
    sr_log_close(lg);
    lg = open_log(NULL);
    sr_log_close(lg);
}

Test(storage_log, failed_fsync_poisons_the_handle_until_reopen)
{
    sr_log_opts o = {.vfs = &vfs_faulty};
    vfs_faulty_arm(0, VF_SYNC_FAIL);
    sr_log *lg = open_log(&o);
    cr_assert_eq(lt_append(lg, 2, 50, NULL), SR_OK);
    vfs_faulty_arm(1, VF_SYNC_FAIL);
    cr_assert_eq(lt_append(lg, 2, 50, NULL), SR_EIO);
    cr_assert(vfs_faulty_fired());
    /* the fault is gone, but the handle does not trust the disk any more */
    cr_assert_eq(lt_append(lg, 2, 50, NULL), SR_EPOISONED);
    cr_assert_eq(sr_log_sync(lg), SR_EPOISONED);
    cr_assert_eq(sr_log_error(lg), SR_EIO);
    check(lg, 1, 3, 50); /* durable data stays readable; a poisoned handle's state is consistent */
    cr_assert_eq(sr_log_close(lg), SR_EIO);
    lg = open_log(NULL);
    cr_assert_eq(sr_log_next_seq(lg), 3, "the failed batch was never acknowledged");
    cr_assert_eq(lt_append(lg, 2, 50, NULL), SR_OK);
    sr_log_close(lg);
}

Test(storage_log, limits_and_bad_arguments_are_refused_without_side_effects)
{
    sr_log_opts o = {.max_record_bytes = 1000};
    sr_log *lg = open_log(&o);
    static uint8_t big[1001];
    sr_slice r = {big, sizeof big};
    cr_assert_eq(sr_log_append(lg, &r, 1, NULL), SR_ETOOBIG);
    cr_assert_eq(sr_log_append(lg, &r, 0, NULL), SR_EINVAL);
    sr_slice nul = {NULL, 5};
    cr_assert_eq(sr_log_append(lg, &nul, 1, NULL), SR_EINVAL);
    sr_slice empty = {NULL, 0};
    uint64_t f;
    cr_assert_eq(sr_log_append(lg, &empty, 1, &f), SR_OK, "empty records are fine");
    cr_assert_eq(f, 1);
    sr_log_close(lg);
    sr_log_opts bad = {.zstd_level = 99};
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(dir, &bad, &lg, &ei), SR_EINVAL);
}

Test(storage_log, interval_sync_makes_records_durable_without_explicit_sync)
{
    sr_log_opts o = {.sync = SR_SYNC_INTERVAL, .sync_interval_ms = 5};
    sr_log *lg = open_log(&o);
    cr_assert_eq(lt_append(lg, 10, 100, NULL), SR_OK);
    /* wait (bounded) for the syncer to publish them */
    for (int i = 0; i < 2000 && sr_log_durable_seq(lg) < 11; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(sr_log_durable_seq(lg), 11);
    cr_assert_eq(sr_log_sync(lg), SR_OK);
    check(lg, 1, 11, 100);
    sr_log_close(lg);
}

Test(storage_log, readonly_open_of_a_missing_directory_names_it)
{
    sr_log_opts ro = {.readonly = 1};
    sr_log *lg = NULL;
    sr_errinfo ei;
    char p[1100];
    snprintf(p, sizeof p, "%s/nope", dir);
    cr_assert_neq(sr_log_open(p, &ro, &lg, &ei), SR_OK);
    cr_assert(strstr(ei.msg, "nope"), "%s", ei.msg);
}

/* ---- durable_floor: what the caller knows was durable is never torn ------- */

static char *only_segment(void)
{
    char *p = malloc(strlen(dir) + 32);
    sprintf(p, "%s/00000000000000000001.seg", dir);
    return p;
}

Test(storage_log, a_bad_last_block_below_the_durable_floor_is_corruption_and_nothing_is_cut)
{
    sr_log_opts o = {0};
    sr_log *lg = open_log(&o);
    uint64_t first;
    cr_assert_eq(lt_append(lg, 10, 300, &first), SR_OK);
    cr_assert_eq(lt_append(lg, 5, 300, &first), SR_OK); /* the last block: 11..15 */
    cr_assert_eq(sr_log_close(lg), SR_OK);
    char *seg = only_segment();
    size_t n;
    uint8_t *b = tu_read_file(seg, &n);
    b[n - 2] ^= 0x01;
    cr_assert_eq(tu_write_file(seg, b, n), 0);
    for (int ro = 0; ro < 2; ro++) {
        for (uint64_t floor = 11; floor <= 15; floor += 4) {
            sr_log_opts f = {.durable_floor = floor, .readonly = ro};
            sr_errinfo ei;
            lg = NULL;
            cr_assert_eq(sr_log_open(dir, &f, &lg, &ei), SR_ECORRUPT, "floor %" PRIu64 " readonly %d", floor, ro);
            cr_assert(strstr(ei.msg, "block seq 11"), "names the block: %s", ei.msg);
            cr_assert(strstr(ei.msg, "00000000000000000001.seg"), "%s", ei.msg);
            cr_assert_str_eq(ei.segment, "00000000000000000001.seg");
        }
    }
    size_t n2;
    uint8_t *b2 = tu_read_file(seg, &n2);
    cr_assert(n2 == n && !memcmp(b, b2, n), "nothing was cut");
    free(b2);
    /* a floor below the block (the caller never saw it durable): a torn tail, cut */
    sr_log_opts f = {.durable_floor = 10};
    lg = open_log(&f);
    sr_log_tail t;
    sr_log_tail_info(lg, &t);
    cr_assert(t.torn);
    cr_assert_eq(sr_log_next_seq(lg), 11);
    check(lg, 1, 10, 300);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    free(b);
    free(seg);
}

/* Each invariant check names what it finds broken (log.c INVARIANTS 7-8):
 * a state broken on purpose is reported, the intact state before is not. */
Test(storage_log, invariant_check_names_each_broken_invariant)
{
    static const struct {
        int what;
        const char *names;
    } cases[] = {
        {SR_LOG_BREAK_SYNCED, "synced_off is past write_off"},
        {SR_LOG_BREAK_SEQ, "next_seq differs"},
        {SR_LOG_BREAK_BLOCKS, "block offsets do not increase"},
        {SR_LOG_BREAK_ORDER, "does not start where the one before it ends"},
        {SR_LOG_BREAK_DURABLE, "durable_off is past"},
        {SR_LOG_BREAK_VERSION, "(10) the active segment is of an older version"},
    };
    sr_log_opts o = {.segment_bytes = 8u << 10, .sync = SR_SYNC_NONE};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_rmrf(dir);
        sr_log *lg = open_log(&o);
        for (int k = 0; k < 40; k++) cr_assert_eq(lt_append(lg, 5, 200, NULL), SR_OK);
        cr_assert_gt(sr_log_segment_count(lg), 1);
        inv(lg);
        sr_log_iter *it;
        cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
        uint64_t seq;
        sr_slice rec;
        cr_assert_eq(sr_log_iter_next(it, &seq, &rec), SR_OK);
        cr_assert_null(sr_log_iter_check(it), "%s", sr_log_iter_check(it));
        sr_log_iter_close(it);
        sr_log_test_break(lg, cases[i].what);
        const char *why = sr_log_check(lg);
        cr_assert_not_null(why, "case %zu: the broken state passed the check", i);
        cr_assert(strstr(why, cases[i].names), "case %zu: \"%s\" does not name \"%s\"", i, why, cases[i].names);
        sr_log_test_break(lg, -cases[i].what); /* mended: whole again, and closed (checked) */
        inv(lg);
        cr_assert_eq(sr_log_close(lg), SR_OK);
    }
}
