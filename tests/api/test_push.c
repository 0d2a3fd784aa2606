/* tests/api/test_push.c -- push to the apps (api/push.h) in process: the
 * broker's engine and loop (tests/support/brokertest.h) and a receiver on
 * loopback (a thread with a blocking socket, one connection at a time) that
 * records every POST and answers with the status the test scripted. What
 * the receiver sees: the URL ({push url}/{suffix}), the exact body signed
 * with the platform key (ES256, raw r||s, base64url), the delivery id kept
 * on every retry, FIFO with one transfer in flight per app, the back-off
 * that doubles up to its cap, and the bound that drops the oldest message
 * not in flight. tests/integration/test_push.py covers the same through the
 * real binary with the broker's monitors and requests. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "api/pki.h"
#include "api/push.h"
#include "brokertest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the receiver ---------------------------------------------------------- */

enum { RX_MAX = 32 };

typedef struct rx_req {
    char path[160];
    char delivery[64];
    char sig[160];
    char *body;
    size_t len;
    uint64_t at_ms; /* when the request was read (monotonic) */
} rx_req;

typedef struct rx {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    rx_req reqs[RX_MAX];
    atomic_int n;        /* requests read so far */
    int status[RX_MAX];  /* the answer to the i-th request; 0: 200 */
    atomic_int hold;     /* while set, the next answer waits (the transfer stays in flight) */
    atomic_int parallel; /* a second connection arrived while one was open */
    atomic_int stop;
} rx;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void header(const char *hdrs, const char *name, char *out, size_t cap)
{
    out[0] = 0;
    size_t nl = strlen(name);
    for (const char *l = hdrs; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= cap) len = cap - 1;
            memcpy(out, v, len);
            out[len] = 0;
            return;
        }
    }
}

/* Read one request from c; 0, or -1 if the peer went away first. */
static int rx_read(rx *r, int c, rx_req *q)
{
    char buf[8192];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t k = recv(c, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) return -1;
        got += (size_t)k;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && got == sizeof buf - 1) return -1;
    }
    *end = 0;
    char cl[24];
    header(strstr(buf, "\r\n") + 2, "Content-Length", cl, sizeof cl);
    header(strstr(buf, "\r\n") + 2, "X-Suiro-Delivery", q->delivery, sizeof q->delivery);
    header(strstr(buf, "\r\n") + 2, "X-Suiro-Signature", q->sig, sizeof q->sig);
    sscanf(buf, "POST %159s", q->path);
    q->len = (size_t)strtoul(cl, NULL, 10);
    q->body = calloc(1, q->len + 1);
    size_t have = got - (size_t)(end + 4 - buf);
    if (have > q->len) have = q->len;
    memcpy(q->body, end + 4, have);
    while (have < q->len) {
        ssize_t k = recv(c, q->body + have, q->len - have, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    q->at_ms = now_ms();
    (void)r;
    return 0;
}

static void *rx_main(void *arg)
{
    rx *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd pf = {r->fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0) continue;
        int i = atomic_load(&r->n);
        rx_req q;
        memset(&q, 0, sizeof q);
        if (i < RX_MAX && rx_read(r, c, &q) == 0) {
            pthread_mutex_lock(&r->mu);
            r->reqs[i] = q;
            pthread_mutex_unlock(&r->mu);
            atomic_store(&r->n, i + 1);
            uint64_t until = now_ms() + 20000;
            while (atomic_load(&r->hold) && !atomic_load(&r->stop) && now_ms() < until) {
                struct pollfd lp = {r->fd, POLLIN, 0};
                if (poll(&lp, 1, 5) > 0) atomic_store(&r->parallel, 1); /* another transfer while this one is open */
            }
            int st = r->status[i] ? r->status[i] : 200;
            char ans[128];
            int n = snprintf(ans, sizeof ans, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", st);
            (void)!send(c, ans, (size_t)n, MSG_NOSIGNAL);
        } else
            free(q.body);
        close(c);
    }
    return NULL;
}

static void rx_start(rx *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(r->fd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
    socklen_t al = sizeof a;
    cr_assert_eq(getsockname(r->fd, (struct sockaddr *)&a, &al), 0);
    r->port = ntohs(a.sin_port);
    cr_assert_eq(listen(r->fd, 16), 0);
    cr_assert_eq(pthread_create(&r->th, NULL, rx_main, r), 0);
}

static void rx_stop(rx *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->fd);
    for (int i = 0; i < RX_MAX; i++) free(r->reqs[i].body);
    pthread_mutex_destroy(&r->mu);
}

/* ---- the fixture: engine, broker loop, push, receiver ------------------------ */

static bt t;
static rx r;
static sr_push *p;

#define SHEET_FMT                                                                                       \
    "#suiro-setup-sheet v1\n"                                                                           \
    "[operator]\nid,name\npo,Push test\n\n"                                                             \
    "[gateways]\nid,name,secret\nG1,g1,push-g1-secret-001\n\n"                                          \
    "[apps]\nid,name,secret,push_url\nA1,a1,push-a1-secret-001,http://127.0.0.1:%d/hook/\n"             \
    "A2,a2,push-a2-secret-001,\n\n"                                                                     \
    "[facilities]\nid,name\nF,f\n\n[equipment]\nid,facility,name\nE,F,e\n\n"                            \
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\n\n"                                              \
    "[datapoints]\nid,device,name,type,unit,min,max,kind\nN,D1,n,number,m,0,100,both\n\n"               \
    "[grants]\napp,datapoint,access\nA1,N,both\n"

static void open_all(const sr_push_opts *o)
{
    rx_start(&r);
    char sheet[2048];
    snprintf(sheet, sizeof sheet, SHEET_FMT, r.port);
    cr_assert_eq(bt_open(&t, sheet, "po", NULL, 0), SR_OK);
    char err[256] = "";
    cr_assert_eq(sr_push_open(&t.loop, t.eng, t.dir, o, &p, err, sizeof err), SR_OK, "%s", err);
}

static void close_all(void)
{
    atomic_store(&r.hold, 0);
    if (p) sr_push_dispose(p);
    bt_close(&t); /* runs the loop until the handles are closed */
    sr_push_free(p);
    p = NULL;
    rx_stop(&r);
}

/* Run the loop until the receiver read n requests (bounded): 0 or -1. */
static int run_until_received(int n)
{
    uint64_t until = now_ms() + 20000;
    while (atomic_load(&r.n) < n && now_ms() < until) uv_run(&t.loop, UV_RUN_NOWAIT), usleep(1000);
    return atomic_load(&r.n) >= n ? 0 : -1;
}

/* Run the loop until the app's counters say what pred wants (bounded). */
static sr_push_counts run_until_stats(const char *app, int (*pred)(const sr_push_counts *))
{
    sr_push_counts c = {0};
    uint64_t until = now_ms() + 20000;
    while (now_ms() < until) {
        uv_run(&t.loop, UV_RUN_NOWAIT);
        if (sr_push_stats(p, "po", app, &c) == SR_OK && pred(&c)) break;
        usleep(1000);
    }
    return c;
}

static int nothing_queued(const sr_push_counts *c) { return c->queued == 0; }

static json_t *msg(int i) { return json_pack("{s:s,s:i,s:s}", "monitorId", "M1", "n", i, "text", "ä \"q\""); }

static uint64_t tseq; /* the "event" of each message: increasing */

static void enqueue(const char *app, const char *suffix, int i)
{
    json_t *b = msg(i);
    cr_assert_eq(sr_push_enqueue(p, "po", app, suffix, b, ++tseq), SR_OK);
    json_decref(b);
}

/* base64url (no padding) of an ES256 signature -> DER, verified over body
 * with the platform certificate's key: 1 if valid. */
static int sig_valid(const char *hdr, const char *body, size_t len)
{
    const char *s = strstr(hdr, "sig=");
    if (strncmp(hdr, "ES256;keyId=platform;", 21) || !s) return 0;
    s += 4;
    char b64[200];
    size_t n = strlen(s);
    if (n > 180) return 0;
    for (size_t i = 0; i < n; i++) b64[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (n % 4) b64[n++] = '=';
    b64[n] = 0;
    unsigned char raw[150];
    int rl = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (rl < 64) return 0; /* 66 with the two padding bytes counted */
    sr_buf pem;
    sr_buf_init(&pem);
    cr_assert_eq(sr_pki_platform_cert(t.dir, &pem), SR_OK);
    BIO *bio = BIO_new_mem_buf(pem.data, (int)pem.len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    EVP_PKEY *key = x ? X509_get_pubkey(x) : NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = key && dl > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)body, len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(bio);
    sr_buf_release(&pem);
    return ok;
}

/* ---- options ---------------------------------------------------------------- */

Test(push, the_defaults_are_the_documented_ones)
{
    sr_push_opts o;
    memset(&o, 0xff, sizeof o);
    sr_push_opts_default(&o);
    cr_expect_eq(o.max_queue, 10000);
    cr_expect_eq(o.first_backoff_ms, 500);
    cr_expect_eq(o.max_backoff_ms, 60000);
    cr_expect_eq(o.connect_timeout_ms, 5000);
    cr_expect_eq(o.timeout_ms, 10000);
}

Test(push, open_refuses_a_platform_key_that_is_not_ec_p256, .timeout = 60)
{
    char sheet[2048];
    snprintf(sheet, sizeof sheet, SHEET_FMT, 1);
    cr_assert_eq(bt_open(&t, sheet, "po", NULL, 0), SR_OK);
    char path[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/platform-key.pem", t.dir);
    const char junk[] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    cr_assert_eq(tu_write_file(path, junk, sizeof junk - 1), 0);
    sr_push *q = NULL;
    cr_expect_neq(sr_push_open(&t.loop, t.eng, t.dir, NULL, &q, err, sizeof err), SR_OK);
    cr_expect_null(q);
    cr_expect(err[0], "no reason given");
    bt_close(&t);
}

/* ---- delivery ---------------------------------------------------------------- */

Test(push, a_message_is_posted_signed_to_the_apps_url, .timeout = 60)
{
    open_all(NULL);
    enqueue("A1", "monitors/M1", 1);
    cr_assert_eq(run_until_received(1), 0, "nothing reached the receiver");
    sr_push_counts c = run_until_stats("A1", nothing_queued);
    cr_expect_eq(c.delivered, 1);
    cr_expect_eq(c.retried, 0);
    cr_expect_eq(c.dropped, 0);
    rx_req *q = &r.reqs[0];
    cr_expect_str_eq(q->path, "/hook/monitors/M1", "the push URL's trailing '/' is not doubled");
    json_t *b = msg(1);
    char *want = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    cr_expect_str_eq(q->body, want, "the body is the compact JSON");
    free(want);
    cr_expect(q->delivery[0], "no X-Suiro-Delivery");
    cr_expect(sig_valid(q->sig, q->body, q->len), "the signature does not verify: %s", q->sig);
    /* and it is over the exact bytes: one byte more and it no longer verifies */
    char *other = calloc(1, q->len + 2);
    memcpy(other, q->body, q->len);
    other[q->len] = ' ';
    cr_expect_not(sig_valid(q->sig, other, q->len + 1), "a signature that verifies any body");
    free(other);
    close_all();
}

Test(push, an_app_without_a_push_url_or_unknown_is_not_queued, .timeout = 60)
{
    open_all(NULL);
    json_t *b = msg(1);
    cr_expect_eq(sr_push_enqueue(p, "po", "A2", "monitors/M1", b, ++tseq), SR_OK, "an app that pulls");
    cr_expect_eq(sr_push_enqueue(p, "po", "NOAPP", "monitors/M1", b, ++tseq), SR_OK, "an app not registered");
    json_decref(b);
    sr_push_counts c;
    cr_expect_eq(sr_push_stats(p, "po", "A2", &c), SR_ENOTFOUND);
    cr_expect_eq(sr_push_stats(p, "po", "NOAPP", &c), SR_ENOTFOUND);
    close_all();
    cr_expect_eq(atomic_load(&r.n), 0);
}

Test(push, an_apps_messages_arrive_in_order_one_transfer_at_a_time, .timeout = 60)
{
    open_all(NULL);
    atomic_store(&r.hold, 1); /* the first transfer stays open while the others are queued */
    for (int i = 0; i < 6; i++) enqueue("A1", "requests/R1", i);
    cr_assert_eq(run_until_received(1), 0);
    for (int i = 0; i < 20; i++) uv_run(&t.loop, UV_RUN_NOWAIT), usleep(2000);
    sr_push_counts c;
    cr_assert_eq(sr_push_stats(p, "po", "A1", &c), SR_OK);
    cr_expect_eq(c.queued, 6, "the one in flight is counted");
    atomic_store(&r.hold, 0);
    c = run_until_stats("A1", nothing_queued);
    cr_expect_eq(c.delivered, 6);
    cr_expect_eq(atomic_load(&r.parallel), 0, "a second transfer of the app while one was in flight");
    cr_assert_eq(atomic_load(&r.n), 6);
    for (int i = 0; i < 6; i++) {
        json_t *j = json_loads(r.reqs[i].body, 0, NULL);
        cr_expect_eq(json_integer_value(json_object_get(j, "n")), i, "message %d out of order", i);
        json_decref(j);
        for (int k = 0; k < i; k++)
            cr_expect_str_neq(r.reqs[i].delivery, r.reqs[k].delivery, "two messages share a delivery id");
    }
    close_all();
}

/* ---- retries ------------------------------------------------------------------ */

static int delivered_one(const sr_push_counts *c) { return c->delivered == 1; }

Test(push, a_failed_attempt_is_retried_with_the_same_delivery_id_and_signature, .timeout = 60)
{
    sr_push_opts o = {0};
    o.first_backoff_ms = 40;
    o.max_backoff_ms = 1000;
    open_all(&o);
    r.status[0] = 503;
    r.status[1] = 500;
    r.status[2] = 404; /* anything but 2xx fails */
    enqueue("A1", "requests/R1", 7);
    sr_push_counts c = run_until_stats("A1", delivered_one);
    cr_expect_eq(c.delivered, 1);
    cr_expect_eq(c.retried, 3);
    cr_expect_eq(c.queued, 0);
    cr_assert_eq(atomic_load(&r.n), 4);
    for (int i = 1; i < 4; i++) {
        cr_expect_str_eq(r.reqs[i].delivery, r.reqs[0].delivery, "attempt %d has another delivery id", i);
        cr_expect_str_eq(r.reqs[i].sig, r.reqs[0].sig, "attempt %d was signed again", i);
        cr_expect_str_eq(r.reqs[i].body, r.reqs[0].body);
    }
    /* the back-off doubles: 40, 80, 160 ms (lower bounds: a slow machine only waits longer) */
    for (int i = 1; i < 4; i++) {
        uint64_t gap = r.reqs[i].at_ms - r.reqs[i - 1].at_ms, want = 40u << (i - 1);
        cr_expect_geq(gap, want - 2, "wait %d: %llu ms < %llu ms", i, (unsigned long long)gap, (unsigned long long)want);
    }
    close_all();
}

Test(push, the_back_off_stops_doubling_at_its_cap, .timeout = 60)
{
    sr_push_opts o = {0};
    o.first_backoff_ms = 10;
    o.max_backoff_ms = 20;
    open_all(&o);
    for (int i = 0; i < 6; i++) r.status[i] = 503;
    enqueue("A1", "requests/R1", 1);
    sr_push_counts c = run_until_stats("A1", delivered_one);
    cr_expect_eq(c.retried, 6);
    cr_assert_eq(atomic_load(&r.n), 7);
    /* waits 10, 20, 20, 20, 20, 20 ms; doubling without the cap would make the last 320 ms */
    uint64_t last = r.reqs[6].at_ms - r.reqs[5].at_ms;
    cr_expect_geq(last, 18);
    cr_expect_lt(last, 250, "the last wait was %llu ms: the cap of 20 ms did not hold", (unsigned long long)last);
    close_all();
}

/* ---- the bound ------------------------------------------------------------------ */

static int delivered_two(const sr_push_counts *c) { return c->delivered == 2 && c->queued == 0; }

Test(push, over_the_bound_the_oldest_message_not_in_flight_is_dropped, .timeout = 60)
{
    sr_push_opts o = {0};
    o.max_queue = 2;
    open_all(&o);
    atomic_store(&r.hold, 1);
    enqueue("A1", "monitors/M1", 1);
    cr_assert_eq(run_until_received(1), 0); /* 1 is in flight */
    for (int i = 2; i <= 4; i++) enqueue("A1", "monitors/M1", i);
    sr_push_counts c;
    cr_assert_eq(sr_push_stats(p, "po", "A1", &c), SR_OK);
    cr_expect_eq(c.dropped, 2, "2 and 3 are dropped");
    cr_expect_eq(c.queued, 2);
    atomic_store(&r.hold, 0);
    c = run_until_stats("A1", delivered_two);
    cr_expect_eq(c.delivered, 2);
    cr_expect_eq(c.dropped, 2);
    cr_assert_eq(atomic_load(&r.n), 2);
    static const int want[] = {1, 4}; /* the one in flight was never dropped, the newest survived */
    for (int i = 0; i < 2; i++) {
        json_t *j = json_loads(r.reqs[i].body, 0, NULL);
        cr_expect_eq(json_integer_value(json_object_get(j, "n")), want[i]);
        json_decref(j);
    }
    close_all();
}

Test(push, dispose_drops_what_waits_and_refuses_more, .timeout = 60)
{
    sr_push_opts o = {0};
    o.first_backoff_ms = 60000; /* the first failure waits far longer than the test */
    open_all(&o);
    r.status[0] = 503;
    enqueue("A1", "monitors/M1", 1);
    enqueue("A1", "monitors/M1", 2);
    cr_assert_eq(run_until_received(1), 0);
    sr_push_counts c = {0};
    uint64_t until = now_ms() + 20000;
    while (now_ms() < until && !(sr_push_stats(p, "po", "A1", &c) == SR_OK && c.retried == 1))
        uv_run(&t.loop, UV_RUN_NOWAIT), usleep(1000);
    cr_expect_eq(c.retried, 1);
    sr_push_dispose(p);
    cr_assert_eq(sr_push_stats(p, "po", "A1", &c), SR_OK);
    cr_expect_eq(c.dropped, 0, "the waiting messages are not dropped: they stay above the mark");
    cr_expect_eq(c.queued, 0);
    json_t *b = msg(3);
    cr_expect_eq(sr_push_enqueue(p, "po", "A1", "monitors/M1", b, ++tseq), SR_ECLOSED);
    json_decref(b);
    close_all();
    cr_expect_eq(atomic_load(&r.n), 1, "nothing was sent after dispose");
}
