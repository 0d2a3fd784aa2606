/* tests/support/kill9.h -- a kill -9 round of the engine's crash suites
 * (tests/engine/test_erasure.c, test_segdrop.c): a child process works and
 * reports each step it completed; it is killed with SIGKILL at a varying
 * point of a later step. Criterion asserts, so only a suite includes it. */
#ifndef SR_KILL9_H
#define SR_KILL9_H

#include "testutil.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A kill -9 round (the crash suites: test_erasure, test_segdrop): child(dir,
 * round, fd) runs in a forked process and writes a line to fd after each
 * step it completed; once `want` lines came, a random moment later (up to
 * 3 ms: a varying point inside the next step, no assertion depends on it)
 * the child is killed with SIGKILL. The last complete line into last. */
static inline void es_kill9_after(void (*child)(const char *dir, int round, int fd), const char *dir, int round,
                                  int want, tu_rng *rng, char *last, size_t lastlen)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child(dir, round, p[1]);
        _exit(0);
    }
    close(p[1]);
    int seen = 0;
    char buf[512];
    size_t ll = 0;
    last[0] = 0;
    while (seen < want) {
        ssize_t n = read(p[0], buf, sizeof buf);
        cr_assert_gt(n, 0, "round %d: the child ended", round);
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                seen++;
                last[ll] = 0;
                ll = 0;
                continue;
            }
            if (ll + 1 < lastlen) last[ll++] = buf[i];
        }
    }
    struct timespec ts = {0, (long)tu_below(rng, 3000) * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(p[0]);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: the child failed (%d)", round, st);
}


#endif
