/*
 * bench/ready_poll.c -- the restart clock of bench/net_ingest.sh: poll a
 * server that was just started until it answers a query with the loaded
 * data, the same way for every system.
 *
 * usage: ready_poll --t0 EPOCHSECS [--every-ms N] [--timeout S] [--pid PID]
 *                   (--http URL [--login URL --login-body JSON]
 *                    | --redis HOST:PORT --cmd "WORD WORD...")
 *                   --expect STRING
 *
 *   --t0          the moment the server was started (bash $EPOCHREALTIME,
 *                 taken just before it); the figures are seconds since then
 *   --every-ms    pause between attempts [5]; an attempt is one query on a
 *                 fresh connection (refused while the server is not
 *                 listening yet), so every system is seen within N ms of
 *                 being ready, plus one round trip
 *   --timeout     give up after S seconds [120]; --pid: give up at once when
 *                 that process has exited
 *   --http URL    GET URL (libcurl); ready when the answer is 200 and its
 *                 body contains --expect
 *   --login URL   first POST --login-body (JSON) to URL and send the
 *                 "token" of the answer as "Authorization: Bearer" with the
 *                 query (suiro's AP-IF session); the login is timed apart
 *   --redis H:P   send the command (RESP, words split at spaces); ready when
 *                 the reply's first line is --expect (a Redis loading its
 *                 AOF answers -LOADING)
 *
 * Prints one JSON line and exits 0 when the server answered in time, 1 if
 * not (the line then has "ready_s":null):
 *   {"ready_s":..,"up_s":..,"login_s":..,"query_s":..,"attempts":..,"every_ms":..}
 * ready_s: t0 -> the answer with the data; up_s: t0 -> the first answer of
 * any kind (the server accepted the connection and replied); login_s: the
 * successful login's own round trip (null without --login); query_s: the
 * last query's round trip.
 */
#include "netutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_real(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct body {
    char buf[65536];
    size_t len;
} body;

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    body *b = ctx;
    size_t len = sz * n, room = sizeof b->buf - 1 - b->len;
    size_t k = len < room ? len : room;
    memcpy(b->buf + b->len, p, k);
    b->len += k;
    b->buf[b->len] = 0;
    return len;
}

/* One HTTP exchange: the status (0: no answer), the body in b. */
static long http_do(CURL *c, const char *url, const char *post, const char *auth, body *b)
{
    struct curl_slist *h = NULL;
    char hv[700];
    if (post) h = curl_slist_append(h, "Content-Type: application/json");
    if (auth) {
        snprintf(hv, sizeof hv, "Authorization: Bearer %s", auth);
        h = curl_slist_append(h, hv);
    }
    b->len = 0;
    b->buf[0] = 0;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L); /* a fresh connection per attempt, as for Redis */
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    return code;
}

/* The value of "token":"..." in a JSON answer, into out. */
static int token_of(const char *json, char *out, size_t n)
{
    const char *p = strstr(json, "\"token\"");
    if (!p) return -1;
    p = strchr(p + 7, '"');
    if (!p) return -1;
    const char *e = strchr(++p, '"');
    if (!e || (size_t)(e - p) >= n) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}


/* One Redis command on a fresh connection: 1 answered (first reply line in
 * line), 0 no answer. */
static int redis_do(const char *hostport, const char *cmd, char *line, size_t n)
{
    char req[1024], words[512];
    snprintf(words, sizeof words, "%s", cmd);
    char *w[16], *save = NULL;
    int nw = 0;
    for (char *t = strtok_r(words, " ", &save); t && nw < 16; t = strtok_r(NULL, " ", &save)) w[nw++] = t;
    int k = snprintf(req, sizeof req, "*%d\r\n", nw);
    for (int i = 0; i < nw && k > 0 && (size_t)k < sizeof req; i++)
        k += snprintf(req + k, sizeof req - (size_t)k, "$%zu\r\n%s\r\n", strlen(w[i]), w[i]);
    if (k <= 0 || (size_t)k >= sizeof req) return 0;
    int fd = bn_tcp_connect(hostport);
    if (fd < 0) return 0;
    int ok = 0;
    size_t got = 0;
    if (write(fd, req, (size_t)k) == k) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        while (got + 1 < n && poll(&pf, 1, 30000) > 0) {
            ssize_t r = read(fd, line + got, n - 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
            line[got] = 0;
            char *nl = strstr(line, "\r\n");
            if (nl) {
                *nl = 0;
                ok = 1;
                break;
            }
        }
    }
    close(fd);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: ready_poll --t0 EPOCHSECS [--every-ms N] [--timeout S] [--pid PID]\n"
                    "                  (--http URL [--login URL --login-body JSON] | --redis HOST:PORT --cmd CMD)\n"
                    "                  --expect STRING\n");
    return 2;
}

int main(int argc, char **argv)
{
    double t0 = 0, timeout = 120;
    long every_ms = 5, pid = 0;
    const char *http = NULL, *login = NULL, *login_body = NULL, *redis = NULL, *cmd = NULL, *expect = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--t0")) t0 = strtod(v, NULL);
        else if (!strcmp(a, "--every-ms")) every_ms = strtol(v, NULL, 10);
        else if (!strcmp(a, "--timeout")) timeout = strtod(v, NULL);
        else if (!strcmp(a, "--pid")) pid = strtol(v, NULL, 10);
        else if (!strcmp(a, "--http")) http = v;
        else if (!strcmp(a, "--login")) login = v;
        else if (!strcmp(a, "--login-body")) login_body = v;
        else if (!strcmp(a, "--redis")) redis = v;
        else if (!strcmp(a, "--cmd")) cmd = v;
        else if (!strcmp(a, "--expect")) expect = v;
        else return usage();
    }
    if (t0 <= 0 || every_ms < 1 || !expect || !http == !redis || (redis && !cmd) || (login && !login_body))
        return usage();
    CURL *c = NULL;
    if (http) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c = curl_easy_init())) return 1;
    }
    static body b;
    char token[512] = "", line[512];
    double up = -1, login_s = -1, query_s = -1, ready = -1;
    long attempts = 0;
    struct timespec pause = {every_ms / 1000, (every_ms % 1000) * 1000000L};
    while (now_real() - t0 < timeout) {
        attempts++;
        int done = 0;
        if (redis) {
            double a = now_real();
            int answered = redis_do(redis, cmd, line, sizeof line);
            double t = now_real();
            query_s = t - a;
            if (answered && up < 0) up = t - t0;
            done = answered && !strcmp(line, expect);
        } else {
            if (login && !token[0]) {
                double a = now_real();
                long code = http_do(c, login, login_body, NULL, &b);
                double t = now_real();
                if (code && up < 0) up = t - t0;
                if (code / 100 == 2 && token_of(b.buf, token, sizeof token) == 0) login_s = t - a;
            }
            if (!login || token[0]) {
                double a = now_real();
                long code = http_do(c, http, NULL, login ? token : NULL, &b);
                double t = now_real();
                query_s = t - a;
                if (code && up < 0) up = t - t0;
                if (code == 401) token[0] = 0; /* log in again */
                done = code == 200 && strstr(b.buf, expect) != NULL;
            }
        }
        if (done) {
            ready = now_real() - t0;
            break;
        }
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) break;
        nanosleep(&pause, NULL);
    }
    char us[32] = "null", ls[32] = "null", rs[32] = "null";
    if (up >= 0) snprintf(us, sizeof us, "%.4f", up);
    if (login_s >= 0) snprintf(ls, sizeof ls, "%.4f", login_s);
    if (ready >= 0) snprintf(rs, sizeof rs, "%.4f", ready);
    printf("{\"ready_s\":%s,\"up_s\":%s,\"login_s\":%s,\"query_s\":%.4f,\"attempts\":%ld,\"every_ms\":%ld}\n", rs, us, ls,
           query_s, attempts, every_ms);
    if (c) curl_easy_cleanup(c);
    return ready >= 0 ? 0 : 1;
}
