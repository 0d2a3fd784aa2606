/* tests/storage/test_log_kill9.c -- real crashes: a child process appends with
 * sync=always and prints each acknowledged range; the test kill -9s it at
 * random moments (>= 20 times, alternating plain and encrypted logs), then
 * checks that every printed sequence number is readable with the right bytes
 * and that `suiro log verify` passes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "logtest.h"
#include "storage/log.h"
#include "testutil.h"

extern char **environ;

static char *dir;
static void setup(void) { dir = tu_tmpdir("kill9"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(storage_log_kill9, .init = setup, .fini = teardown, .timeout = 900);

/* Run the writer until it has acknowledged `want` appends plus a random few
 * microseconds, then SIGKILL it. Returns the highest acknowledged seq. */
static uint64_t run_and_kill(const char *d, uint64_t seed, int enc, int want, uint64_t delay_us)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char seeds[32];
    snprintf(seeds, sizeof seeds, "%" PRIu64, seed);
    char *argv[] = {SR_LOG_WRITER_BIN, (char *)d, seeds, enc ? "enc" : NULL, NULL};
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, SR_LOG_WRITER_BIN, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char line[256];
    uint64_t last = 0;
    int acks = 0;
    int killed = 0;
    while (fgets(line, sizeof line, in)) {
        uint64_t a, b;
        if (sscanf(line, "ack %" SCNu64 " %" SCNu64, &a, &b) == 2) {
            last = b;
            if (++acks >= want && !killed) {
                struct timespec ts = {0, (long)(delay_us * 1000)};
                nanosleep(&ts, NULL);
                kill(pid, SIGKILL);
                killed = 1;
            }
        }
        /* after the kill, drain what was already printed: it was all
         * acknowledged before the process died */
    }
    fclose(in);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer exited on its own (status %d)", st);
    return last;
}

Test(storage_log_kill9, every_acknowledged_record_survives_kill_9)
{
    uint64_t seed = tu_seed(3);
    tu_rng r = {seed};
    int rounds = tu_iters(24);
    for (int enc = 0; enc < 2; enc++) {
        char d[1024];
        snprintf(d, sizeof d, "%s/%s", dir, enc ? "enc" : "plain");
        uint64_t acked = 0;
        for (int i = 0; i < rounds / 2; i++) {
            uint64_t last = run_and_kill(d, tu_next(&r), enc, 1 + (int)tu_below(&r, 150), tu_below(&r, 3000));
            cr_assert_geq(last, acked, "sequence numbers went backwards");
            acked = last;
            sr_key key;
            lt_key(&key, 4);
            sr_log_opts o = {.key = enc ? &key : NULL};
            sr_log *lg = NULL;
            sr_errinfo ei;
            int rc = sr_log_open(d, &o, &lg, &ei);
            cr_assert_eq(rc, SR_OK, "round %d: reopen: %s", i, ei.msg);
            cr_assert_geq(sr_log_next_seq(lg), acked + 1, "round %d: acknowledged %" PRIu64 ", log ends at %" PRIu64,
                          i, acked, sr_log_next_seq(lg) - 1);
            char why[256];
            cr_assert_eq(lt_check(lg, 1, acked + 1, 20000, why, sizeof why), 0, "round %d: %s", i, why);
            acked = sr_log_next_seq(lg) - 1; /* unacknowledged but complete batches may remain */
            sr_log_close(lg);
            char cmd[2200];
            if (enc) {
                char kf[1100];
                snprintf(kf, sizeof kf, "%s/key.hex", dir);
                char hex[65];
                sr_hex(key.bytes, 32, hex);
                cr_assert_eq(tu_write_file(kf, hex, 64), 0);
                snprintf(cmd, sizeof cmd, "%s log verify %s --key-file %s >/dev/null", SR_SUIRO_BIN, d, kf);
            } else
                snprintf(cmd, sizeof cmd, "%s log verify %s >/dev/null", SR_SUIRO_BIN, d);
            int st = system(cmd);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: suiro log verify failed (%d)", i, st);
        }
        cr_assert_gt(acked, 100);
    }
}
