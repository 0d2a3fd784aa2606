/* tests/engine/test_sessions_kill9.c -- user sessions (engine/records.h
 * sr_cmd_token_session, sr_cmd_user_sessions_revoke, sr_session_verify)
 * across real crashes: a forked child logs users in and revokes all of a
 * user's sessions, in a fixed sequence, with sync=always, and writes the
 * number of every acknowledged command to a pipe; the test kill -9s it at a
 * random moment (several rounds on one data directory), reopens the engine
 * and checks that every acknowledged login verifies unless an acknowledged
 * revocation of its user followed, that every acknowledged revocation
 * holds, and that nothing after the one command in flight exists. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/records.h"
#include "engtest.h"
#include "storage/crypto.h"
#include "testutil.h"

static char *dir;
static pid_t child = -1;

static void setup(void) { dir = tu_tmpdir("skill9"); }
static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    tu_rmrf(dir);
    free(dir);
}
TestSuite(sessions_kill9, .init = setup, .fini = teardown, .timeout = 600);

enum { USERS = 5 };
static const int64_t EXPIRES = INT64_C(4000000000000), NOW = INT64_C(1800000000000);

/* command i: every 10th revokes all of user (i / 10) % USERS, the others log
 * user i % USERS in with token i */
static int is_revoke(long i) { return i % 10 == 9; }
static int user_of(long i) { return is_revoke(i) ? (int)((i / 10) % USERS) : (int)(i % USERS); }
static void hash_of(long i, uint8_t h[32])
{
    char t[32];
    snprintf(t, sizeof t, "token-%ld", i);
    sr_sha256(t, strlen(t), h);
}

static int command(sr_engine *e, long i)
{
    char user[16];
    snprintf(user, sizeof user, "u%d", user_of(i));
    sr_buf b;
    sr_buf_init(&b);
    int rc;
    if (is_revoke(i)) {
        const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, NULL, NULL};
        rc = sr_cmd_user_sessions_revoke(&env, user, "disabled", &b);
    } else {
        uint8_t h[32];
        hash_of(i, h);
        const sr_cmd_env env = {"op1", user, SR_ACTOR_USER, NULL, NULL};
        rc = sr_cmd_token_session(&env, h, EXPIRES, SR_SS_CONNECTED, "login", &b);
    }
    if (!rc) {
        size_t len = b.len;
        sr_result r;
        rc = et_submit(e, &b, &len, 1, &r);
    }
    sr_buf_release(&b);
    return rc;
}

/* the child: commands from `from` on, each acknowledged one's number on fd */
static void child_main(long from, int fd)
{
    sr_engine_opts o = {.sync = SR_ENGINE_SYNC_ALWAYS};
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) _exit(3);
    for (long i = from;; i++) {
        if (command(e, i)) _exit(4);
        char line[32];
        int n = snprintf(line, sizeof line, "%ld\n", i);
        if (write(fd, line, (size_t)n) != n) _exit(5);
    }
}

Test(sessions_kill9, acknowledged_logins_and_revocations_survive_kill_9)
{
    srand((unsigned)time(NULL));
    long next = 0; /* the first command the next child runs */
    for (int round = 0; round < 6; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        child = fork();
        cr_assert(child >= 0);
        if (child == 0) {
            close(p[0]);
            child_main(next, p[1]);
        }
        close(p[1]);
        /* the child makes progress before the kill, however slow the build
         * (ASan, a loaded machine): wait for its first acknowledgements,
         * then kill it at a random moment after them */
        long last = next - 1, v;
        FILE *f = fdopen(p[0], "r");
        cr_assert(f);
        while (last < next + 4 && fscanf(f, "%ld", &v) == 1) last = v;
        usleep(20000 + (useconds_t)(rand() % 200000));
        kill(child, SIGKILL);
        int st;
        waitpid(child, &st, 0);
        child = -1;
        cr_assert(WIFSIGNALED(st), "the child ended by itself (status %d)", st);
        /* the last acknowledged command */
        while (fscanf(f, "%ld", &v) == 1) last = v;
        fclose(f);
        long inflight = last + 1; /* may or may not be durable */

        sr_engine_opts o = {.sync = SR_ENGINE_SYNC_NONE};
        sr_engine *e = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "round %d: %s", round, ei.msg);
        for (long j = 0; j <= inflight + 20; j++) {
            if (is_revoke(j)) continue;
            uint8_t h[32];
            hash_of(j, h);
            sr_session_rec s;
            int rc = sr_session_verify(e, h, SR_ACTOR_USER, NOW, &s);
            if (j == inflight) continue; /* either */
            if (j > inflight) {
                cr_assert_eq(rc, SR_ENOTFOUND, "round %d: login %ld after the one in flight exists", round, j);
                continue;
            }
            /* an acknowledged revocation of this user after j? one in flight? */
            int revoked = 0, maybe = 0;
            for (long k = j + 1; k <= inflight; k++)
                if (is_revoke(k) && user_of(k) == user_of(j)) *(k == inflight ? &maybe : &revoked) = 1;
            if (revoked)
                cr_assert_eq(rc, SR_ENOTFOUND, "round %d: login %ld outlived an acknowledged revocation", round, j);
            else if (!maybe)
                cr_assert_eq(rc, SR_OK, "round %d: acknowledged login %ld (of %ld) lost", round, j, last);
        }
        cr_assert_eq(sr_engine_close(e), SR_OK);
        /* the next child goes on after what might be durable: run the one
         * in flight again (a login twice is the same record; a revocation
         * twice the same outcome) */
        next = inflight;
    }
    cr_assert(next > 30, "the child acknowledged too little (%ld commands) to test anything", next);
}
