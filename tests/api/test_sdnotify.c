/* tests/api/test_sdnotify.c -- api/sdnotify.h: the datagram systemd's
 * sd_notify(3) sends, to a path and to an abstract name, the refusals
 * (no socket, a bad name), and which WATCHDOG_USEC / WATCHDOG_PID ask this
 * process for keep-alives. (The server's READY/STOPPING/WATCHDOG through the
 * real binary: tests/integration/test_sdnotify.py.) */
#include "api/sdnotify.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bound(const char *name, int abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path + (abstract ? 1 : 0), name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0, "bind: %s", strerror(errno));
    return fd;
}

static void got(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    cr_assert_gt(n, 0, "no datagram");
    buf[n] = 0;
    cr_assert_str_eq(buf, want);
}

Test(sdnotify, no_socket_named_sends_nothing)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(sr_sdnotify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(sr_sdnotify("READY=1"), 0);
}

Test(sdnotify, path_socket_gets_the_exact_state)
{
    char dir[] = "/tmp/sr-sdnotify-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/n", dir);
    int fd = bound(path, 0);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(sr_sdnotify("READY=1\nSTATUS=serving"), 1);
    got(fd, "READY=1\nSTATUS=serving");
    cr_assert_eq(sr_sdnotify("STOPPING=1"), 1);
    got(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    rmdir(dir);
    /* the socket is gone: the send fails, and says so */
    cr_assert_eq(sr_sdnotify("WATCHDOG=1"), -1);
    unsetenv("NOTIFY_SOCKET");
}

Test(sdnotify, abstract_name)
{
    char name[64], env[66];
    snprintf(name, sizeof name, "sr-sdnotify-%d", (int)getpid());
    int fd = bound(name, 1);
    snprintf(env, sizeof env, "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    cr_assert_eq(sr_sdnotify("WATCHDOG=1"), 1);
    got(fd, "WATCHDOG=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

Test(sdnotify, bad_names_are_refused)
{
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    errno = 0;
    cr_assert_eq(sr_sdnotify("READY=1"), -1);
    cr_assert_eq(errno, EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = 0;
    setenv("NOTIFY_SOCKET", longp, 1);
    cr_assert_eq(sr_sdnotify("READY=1"), -1);
    cr_assert_eq(errno, EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

Test(sdnotify, watchdog_interval)
{
    char me[32], other[32];
    snprintf(me, sizeof me, "%d", (int)getpid());
    snprintf(other, sizeof other, "%d", (int)getpid() + 1);
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 0, "not asked");
    setenv("WATCHDOG_USEC", "60000000", 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 30000000, "half the timeout, no PID named");
    setenv("WATCHDOG_PID", me, 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 30000000, "this process named");
    setenv("WATCHDOG_PID", other, 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 0, "another process named: not ours to answer");
    setenv("WATCHDOG_PID", "12x", 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 0, "a PID that is not a number");
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "0", 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "2s", 1);
    cr_assert_eq(sr_sdnotify_watchdog_usec(), 0, "not a number of microseconds");
    unsetenv("WATCHDOG_USEC");
}
