/*
 * bench/peer_ingest.c -- durable ingest of the reference data set
 * (api/cli/refset.h) into a peer system over the network, in the peer's own
 * protocol. bench/net_ingest.sh runs it against InfluxDB, VictoriaMetrics and
 * Redis, and `suiro gwsim run --reference` sends the same set to suiro.
 *
 * usage: peer_ingest (--influx URL | --vm URL | --redis HOST:PORT)
 *                    [--points P] [--seconds S] [--batch B] [--late-bp L] [--seed S]
 *                    [--lines N] [--conc C] [--window W] [--db NAME]
 *
 *   --influx URL   InfluxDB 1.x: POST URL/write?db=NAME&precision=ms, line
 *                  protocol `v,p=P00042 value=123.45 1700006400000`, requests of
 *                  whole events, at least N lines each [5000], C requests in
 *                  flight [4] (libcurl multi, keep-alive). Success is 204.
 *   --vm URL       VictoriaMetrics: the same lines and requests to
 *                  URL/write?db=NAME&precision=ms (its InfluxDB endpoint; the
 *                  metric becomes v_value{p="P00042",db="NAME"}).
 *   --redis H:P    Redis: one stream per point, one entry per event, RESP
 *                  written by hand on C plain TCP connections [4] (point p on
 *                  connection p % C, so each point keeps its order), at most W
 *                  commands pipelined per connection [64]:
 *                    XADD s:P00042 * t0 <ms of the batch's first second> v <csv>
 *                  The csv has the event's values in order; a value whose time
 *                  is not the previous one's + 1 s (the first: t0) is written
 *                  `value@seconds-from-t0` (late values), so the entry is
 *                  lossless. Success is a bulk-string entry id.
 *
 * Data set options as in bench/engine_ingest (defaults: 1000 points x 600 s,
 * batches of 100, 1 % late, seed 42). The events are generated before the
 * clock starts; the request bodies are formatted during the run (as a real
 * client does). Timed: first request sent to last answer received.
 *
 * Prints one JSON line:
 *   {"bench":"net_ingest","system":..,"protocol":..,"points_total":<values
 *    sent, late duplicates included>,"values_unique":..,"events":..,"secs":..,
 *    "points_per_s":..,"requests":..,"errors":..,"values_acked":..,...}
 * and exits 0 when every request succeeded. What the peer then holds is
 * checked by bench/net_ingest.sh from the peer itself.
 */
#include "api/cli/refset.h"

#include "netutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the data set, kept in memory ------------------------------------- */

typedef struct ev {
    uint32_t pidx, b, n;
    size_t off; /* into set.smp */
} ev;

typedef struct set {
    rs_cfg c;
    rs_stats st;
    rs_sample *smp;
    size_t nsmp, capsmp;
    ev *ev;
    size_t nev, capev;
} set;

static int keep(void *ctx, uint32_t pidx, uint32_t b, const rs_sample *s, size_t n)
{
    set *d = ctx;
    if (d->nsmp + n > d->capsmp) {
        size_t cap = d->capsmp ? d->capsmp * 2 : 65536;
        while (cap < d->nsmp + n) cap *= 2;
        rs_sample *ns = realloc(d->smp, cap * sizeof *ns);
        if (!ns) return -1;
        d->smp = ns;
        d->capsmp = cap;
    }
    if (d->nev == d->capev) {
        size_t cap = d->capev ? d->capev * 2 : 4096;
        ev *ne = realloc(d->ev, cap * sizeof *ne);
        if (!ne) return -1;
        d->ev = ne;
        d->capev = cap;
    }
    memcpy(d->smp + d->nsmp, s, n * sizeof *s);
    d->ev[d->nev++] = (ev){pidx, b, (uint32_t)n, d->nsmp};
    d->nsmp += n;
    return 0;
}

/* ---- a growable byte buffer -------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_need(sbuf *b, size_t more)
{
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 65536;
    while (cap < b->len + more) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
        fprintf(stderr, "peer_ingest: out of memory\n");
        exit(1);
    }
    b->p = np;
    b->cap = cap;
}

static void sb_mem(sbuf *b, const void *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_mem(b, s, strlen(s)); }

/* decimal digits of v (no snprintf: the client shares the machine with the server) */
static size_t u64dec(char *out, uint64_t v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

static void sb_i64(sbuf *b, int64_t v)
{
    sb_need(b, 24);
    if (v < 0) {
        b->p[b->len++] = '-';
        b->len += u64dec(b->p + b->len, (uint64_t)0 - (uint64_t)v);
    } else b->len += u64dec(b->p + b->len, (uint64_t)v);
}

/* cents as a 2-decimal number: 12345 -> 123.45, -5 -> -0.05 */
static void sb_cents(sbuf *b, int64_t c)
{
    sb_need(b, 28);
    uint64_t a = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    if (c < 0) b->p[b->len++] = '-';
    b->len += u64dec(b->p + b->len, a / 100);
    b->p[b->len++] = '.';
    b->p[b->len++] = (char)('0' + a % 100 / 10);
    b->p[b->len++] = (char)('0' + a % 10);
}

static void sb_point(sbuf *b, uint32_t p)
{
    char t[16];
    snprintf(t, sizeof t, "P%05u", p);
    sb_str(b, t);
}

/* ---- results ------------------------------------------------------------ */

typedef struct res {
    double secs;
    uint64_t requests, errors, values_acked, events_acked;
} res;

/* ---- InfluxDB line protocol over HTTP (InfluxDB, VictoriaMetrics) ------- */

typedef struct slot {
    CURL *h;
    sbuf body;
    char resp[512];
    size_t resp_len;
    uint64_t values, events;
    int busy;
} slot;

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    slot *s = ctx;
    size_t len = sz * n, room = sizeof s->resp - 1 - s->resp_len;
    size_t k = len < room ? len : room;
    memcpy(s->resp + s->resp_len, p, k);
    s->resp_len += k;
    s->resp[s->resp_len] = 0;
    return len;
}

/* events [*next, ...) as lines until at least `lines` */
static void lines_body(const set *d, size_t *next, uint32_t lines, slot *s)
{
    s->body.len = 0;
    s->values = s->events = 0;
    while (*next < d->nev && s->values < lines) {
        const ev *e = &d->ev[(*next)++];
        for (uint32_t i = 0; i < e->n; i++) {
            const rs_sample *v = &d->smp[e->off + i];
            sb_str(&s->body, "v,p=");
            sb_point(&s->body, e->pidx);
            sb_str(&s->body, " value=");
            sb_cents(&s->body, v->cents);
            sb_mem(&s->body, " ", 1);
            sb_i64(&s->body, v->ts);
            sb_mem(&s->body, "\n", 1);
        }
        s->values += e->n;
        s->events++;
    }
}

static int run_http(const set *d, const char *url, uint32_t lines, int conc, res *r)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
    CURLM *m = curl_multi_init();
    slot *sl = calloc((size_t)conc, sizeof *sl);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
    if (!m || !sl || !hdr) return 1;
    for (int i = 0; i < conc; i++) {
        CURL *h = sl[i].h = curl_easy_init();
        if (!h) return 1;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sl[i]);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    }
    size_t next = 0;
    int active = 0;
    double t0 = now_s();
    while (next < d->nev || active) {
        for (int i = 0; i < conc && next < d->nev; i++) {
            slot *s = &sl[i];
            if (s->busy) continue;
            lines_body(d, &next, lines, s);
            s->resp_len = 0;
            s->resp[0] = 0;
            curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.p);
            curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
            curl_multi_add_handle(m, s->h);
            s->busy = 1;
            active++;
        }
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *s = NULL;
            for (int i = 0; i < conc; i++)
                if (sl[i].h == msg->easy_handle) s = &sl[i];
            if (!s) continue;
            long code = 0;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
            r->requests++;
            if (msg->data.result != CURLE_OK || (code != 204 && code != 200)) {
                if (r->errors++ < 3)
                    fprintf(stderr, "peer_ingest: %s: %s, HTTP %ld: %.300s\n", url,
                            curl_easy_strerror(msg->data.result), code, s->resp);
            } else {
                r->values_acked += s->values;
                r->events_acked += s->events;
            }
            curl_multi_remove_handle(m, s->h);
            s->busy = 0;
            active--;
        }
        if (active) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    r->secs = now_s() - t0;
    for (int i = 0; i < conc; i++) {
        curl_easy_cleanup(sl[i].h);
        free(sl[i].body.p);
    }
    free(sl);
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    return 0;
}

/* ---- Redis streams over RESP ------------------------------------------ */

typedef struct rconn {
    int fd;
    size_t *evs; /* its events, in order */
    size_t nevs, next, acked;
    sbuf out;
    size_t outpos;
    char *in;
    size_t inlen, incap;
} rconn;

static void resp_bulk(sbuf *b, const char *s, size_t n)
{
    sb_mem(b, "$", 1);
    sb_i64(b, (int64_t)n);
    sb_mem(b, "\r\n", 2);
    sb_mem(b, s, n);
    sb_mem(b, "\r\n", 2);
}

/* XADD s:Pxxxxx * t0 <ms> v <csv> */
static void xadd(sbuf *b, sbuf *tmp, const set *d, const ev *e)
{
    char key[24];
    int kl = snprintf(key, sizeof key, "s:P%05u", e->pidx);
    int64_t t0 = RS_T0 + (int64_t)e->b * d->c.batch * 1000, prev = t0 - 1000;
    tmp->len = 0;
    for (uint32_t i = 0; i < e->n; i++) {
        const rs_sample *v = &d->smp[e->off + i];
        if (i) sb_mem(tmp, ",", 1);
        sb_cents(tmp, v->cents);
        if (v->ts != prev + 1000) {
            sb_mem(tmp, "@", 1);
            sb_i64(tmp, (v->ts - t0) / 1000);
        }
        prev = v->ts;
    }
    char ts[24];
    size_t tl = u64dec(ts, (uint64_t)t0);
    sb_str(b, "*7\r\n$4\r\nXADD\r\n");
    resp_bulk(b, key, (size_t)kl);
    sb_str(b, "$1\r\n*\r\n$2\r\nt0\r\n");
    resp_bulk(b, ts, tl);
    sb_str(b, "$1\r\nv\r\n");
    resp_bulk(b, tmp->p, tmp->len);
}

/* Length of the first complete reply in p[0..n) (0: incomplete); *err set
 * when it is an error. Replies to XADD are simple: $bulk, -error, +, :. */
static size_t reply_len(const char *p, size_t n, int *err)
{
    const char *nl = memchr(p, '\n', n);
    if (!nl) return 0;
    size_t line = (size_t)(nl - p) + 1;
    *err = p[0] == '-';
    if (p[0] != '$') return line;
    long bl = strtol(p + 1, NULL, 10);
    if (bl < 0) return line;
    size_t need = line + (size_t)bl + 2;
    return n >= need ? need : 0;
}


static int run_redis(const set *d, const char *hostport, int conc, uint32_t window, res *r)
{
    rconn *cs = calloc((size_t)conc, sizeof *cs);
    struct pollfd *pf = calloc((size_t)conc, sizeof *pf);
    sbuf tmp = {0};
    if (!cs || !pf) return 1;
    for (int i = 0; i < conc; i++) {
        rconn *c = &cs[i];
        if ((c->fd = bn_tcp_connect(hostport)) < 0) {
            fprintf(stderr, "peer_ingest: cannot connect to %s: %s\n", hostport, strerror(errno));
            return 1;
        }
        c->evs = malloc((d->nev / (size_t)conc + 2) * sizeof *c->evs);
        c->incap = 1 << 16;
        c->in = malloc(c->incap);
        if (!c->evs || !c->in) return 1;
    }
    for (size_t i = 0; i < d->nev; i++) {
        rconn *c = &cs[d->ev[i].pidx % (uint32_t)conc];
        c->evs[c->nevs++] = i;
    }
    int open = conc;
    double t0 = now_s();
    while (open) {
        for (int i = 0; i < conc; i++) {
            rconn *c = &cs[i];
            pf[i].fd = c->fd;
            pf[i].events = 0;
            pf[i].revents = 0;
            if (c->fd < 0) continue;
            /* compact what was written, queue commands up to the window */
            if (c->outpos == c->out.len) c->out.len = c->outpos = 0;
            while (c->next < c->nevs && c->next - c->acked < window) {
                xadd(&c->out, &tmp, d, &d->ev[c->evs[c->next++]]);
                r->requests++;
            }
            pf[i].events = POLLIN | (c->outpos < c->out.len ? POLLOUT : 0);
        }
        if (poll(pf, (nfds_t)conc, 1000) < 0 && errno != EINTR) return 1;
        for (int i = 0; i < conc; i++) {
            rconn *c = &cs[i];
            if (c->fd < 0) continue;
            if (pf[i].revents & POLLOUT) {
                ssize_t w = send(c->fd, c->out.p + c->outpos, c->out.len - c->outpos, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) c->outpos += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR) goto broken;
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (c->inlen == c->incap) {
                    c->incap *= 2;
                    char *ni = realloc(c->in, c->incap);
                    if (!ni) return 1;
                    c->in = ni;
                }
                ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
                if (n == 0) goto broken;
                if (n < 0 && errno != EAGAIN && errno != EINTR) goto broken;
                if (n > 0) c->inlen += (size_t)n;
                size_t pos = 0, l;
                int err = 0;
                while (pos < c->inlen && (l = reply_len(c->in + pos, c->inlen - pos, &err)) > 0) {
                    const ev *e = &d->ev[c->evs[c->acked++]];
                    if (err) {
                        if (r->errors++ < 3)
                            fprintf(stderr, "peer_ingest: redis: %.*s\n", (int)(l > 300 ? 300 : l), c->in + pos);
                    } else {
                        r->values_acked += e->n;
                        r->events_acked++;
                    }
                    pos += l;
                }
                memmove(c->in, c->in + pos, c->inlen - pos);
                c->inlen -= pos;
            }
            if (c->acked == c->nevs) {
                close(c->fd);
                c->fd = -1;
                open--;
            }
            continue;
        broken:
            fprintf(stderr, "peer_ingest: redis connection %d lost after %zu of %zu replies\n", i, c->acked, c->nevs);
            r->errors += c->nevs - c->acked;
            close(c->fd);
            c->fd = -1;
            open--;
        }
    }
    r->secs = now_s() - t0;
    for (int i = 0; i < conc; i++) {
        free(cs[i].evs);
        free(cs[i].out.p);
        free(cs[i].in);
    }
    free(cs);
    free(pf);
    free(tmp.p);
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: peer_ingest (--influx URL | --vm URL | --redis HOST:PORT)\n"
                    "                   [--points P] [--seconds S] [--batch B] [--late-bp L] [--seed S]\n"
                    "                   [--lines N] [--conc C] [--window W] [--db NAME]\n"
                    "(the options are described at the top of bench/peer_ingest.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    set d = {.c = {.points = 1000, .seconds = 600, .batch = 100, .late_bp = 100, .seed = 42}};
    const char *influx = NULL, *vm = NULL, *redis = NULL, *db = "bench";
    uint32_t lines = 5000, window = 64;
    int conc = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--influx")) influx = v;
        else if (!strcmp(a, "--vm")) vm = v;
        else if (!strcmp(a, "--redis")) redis = v;
        else if (!strcmp(a, "--points")) d.c.points = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seconds")) d.c.seconds = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--batch")) d.c.batch = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--late-bp")) d.c.late_bp = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) d.c.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--lines")) lines = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--conc")) conc = atoi(v);
        else if (!strcmp(a, "--window")) window = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--db")) db = v;
        else return usage();
    }
    if (!!influx + !!vm + !!redis != 1 || !d.c.points || !d.c.seconds || !d.c.batch || d.c.late_bp > 10000 ||
        conc < 1 || conc > 1024 || !lines || !window)
        return usage();
    double g0 = now_s();
    if (rs_generate(&d.c, keep, &d, &d.st)) {
        fprintf(stderr, "peer_ingest: out of memory generating the data set\n");
        return 1;
    }
    double gen_s = now_s() - g0;
    res r = {0};
    const char *system, *protocol;
    char url[2048], params[256];
    int rc;
    if (redis) {
        system = "redis";
        protocol = "RESP XADD, one entry per event, pipelined";
        snprintf(params, sizeof params, "\"connections\":%d,\"window\":%u", conc, window);
        rc = run_redis(&d, redis, conc, window, &r);
    } else {
        const char *base = influx ? influx : vm;
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/') bl--;
        snprintf(url, sizeof url, "%.*s/write?db=%s&precision=ms", (int)bl, base, db);
        system = influx ? "influxdb" : "victoriametrics";
        protocol = "InfluxDB line protocol, HTTP POST /write";
        snprintf(params, sizeof params, "\"lines_per_request\":%u,\"concurrency\":%d", lines, conc);
        rc = run_http(&d, url, lines, conc, &r);
    }
    if (rc) {
        fprintf(stderr, "peer_ingest: %s: the run could not be set up\n", system);
        return 1;
    }
    int ok = r.errors == 0 && r.values_acked == d.st.sent;
    printf("{\"bench\":\"net_ingest\",\"system\":\"%s\",\"protocol\":\"%s\",\"points\":%u,\"seconds\":%u,"
           "\"batch\":%u,\"late_bp\":%u,\"seed\":%" PRIu64 ",%s,\"events\":%" PRIu64 ",\"points_total\":%" PRIu64
           ",\"values_unique\":%" PRIu64 ",\"gen_s\":%.3f,\"secs\":%.3f,\"points_per_s\":%.0f,\"requests\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"values_acked\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\",\"sent_ok\":%s}\n",
           system, protocol, d.c.points, d.c.seconds, d.c.batch, d.c.late_bp, d.c.seed, params, d.st.events,
           d.st.sent, d.st.unique, gen_s, r.secs, r.secs > 0 ? (double)r.values_acked / r.secs : 0.0, r.requests,
           r.errors, r.values_acked, d.st.hash, ok ? "true" : "false");
    fflush(stdout);
    free(d.smp);
    free(d.ev);
    return ok ? 0 : 1;
}
