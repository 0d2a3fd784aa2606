/* tests/api/test_ready.c -- /ready's ordering on the start-up path (issue
 * #17, docs/monitoring.md "Readiness"): the whole server in this process.
 * Not ready before sr_server_open, nor after it returned (recovery done,
 * the listeners bound, but the loop not yet accepting); a request made to
 * /ready in that gap waits in the listen backlog and is answered 200 only
 * once sr_server_run marked the server ready (sr_server_ready_hook); not
 * ready again after the stop signal and the close. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/config.h"
#include "api/metrics.h"
#include "api/server.h"
#include "testutil.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int closed;

/* the loop's thread runs, closes, then stays parked (h2o's thread-local
 * buffers must stay reachable: as tests/api/test_revoke_live.c) */
static void *serve(void *arg)
{
    sr_server *s = arg;
    sr_server_run(s);
    sr_server_close(s);
    pthread_mutex_lock(&mu);
    closed = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (;;) pause();
    return NULL;
}

Test(ready, only_once_recovered_and_accepting, .timeout = 120)
{
    char *dir = tu_tmpdir("ready");
    cr_assert_not_null(dir);
    sr_config c;
    sr_config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s", dir);
    snprintf(c.mqtt_listen, sizeof c.mqtt_listen, "127.0.0.1:0");
    c.http_listen[0] = 0;
    snprintf(c.metrics_listen, sizeof c.metrics_listen, "127.0.0.1:0");
    snprintf(c.log_level, sizeof c.log_level, "warn");
    cr_assert_eq(sr_metrics_ready(), 0, "not ready before the server opens");
    sr_server *s = NULL;
    char err[256];
    cr_assert_eq(sr_server_open(&c, &s, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(sr_metrics_ready(), 0, "recovered and bound, but not accepting yet: not ready");
    int port = sr_server_metrics_port(s);
    cr_assert_gt(port, 0);
    /* a probe in the gap: connect() completes in the kernel's backlog, the
     * request is sent, and nothing answers while the loop does not run */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char req[] = "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send(fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 0), 0, "no answer before the loop runs");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, serve, s), 0);
    pthread_detach(th);
    char buf[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fd);
    cr_assert(!strncmp(buf, "HTTP/1.1 200", 12), "the probe made before readiness is answered 200, after the hook: %s",
              buf);
    cr_assert_eq(sr_metrics_ready(), 1);
    kill(getpid(), SIGTERM);
    pthread_mutex_lock(&mu);
    while (!closed) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    cr_assert_eq(sr_metrics_ready(), 0, "not ready once stopped");
    tu_rmrf(dir);
    free(dir);
}
