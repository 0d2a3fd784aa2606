/*
 * bench/shape_ingest.c -- one load generator for the three message shapes of
 * issue #13, sent to suiro and to its peers over the network, each in its
 * best protocol; bench/shape_ingest.sh runs it.
 *
 * The data set: P number points (--points [10000], at most 99,999; gateway k
 * holds points k*M .. k*M+M-1, data points SP<k+1, 4 digits>_<j+1, 3
 * digits>; M = --per [100], at most 999) at 1 s for S seconds (--seconds
 * [200]) from 2023-11-15T00:00:00Z (RS_T0), each point a 2-decimal random
 * walk (api/cli/refset.h rs_cents, so the values compress as real ones do).
 * The same P x S values travel in one of three shapes:
 *   series    messages of one point and M consecutive seconds, time-major
 *             (every point's first M seconds, then the next M, ...): the
 *             shape `make bench` measured before issue #13;
 *   snapshot  messages of one gateway's M points x 1 value, all with one
 *             timestamp: a gateway's cycle (second t: gateway 1, 2, ... G);
 *   mixed     the snapshots, and after every cycle a backfill of old series
 *             worth --backfill-bp basis points of the cycle's values [100 =
 *             1 %]: messages of one point and M consecutive seconds from 30
 *             days before RS_T0 (backfill message m: point (m * K) % P
 *             with K the first number from 101 prime to P, seconds
 *             (m / P) * M ..), values the snapshots do not hold.
 * values_unique = P x S (+ the backfill's), every value sent once.
 *
 * Targets (one per run):
 *   --mqtt H:P        MQTT 3.1.1, written by hand on plain TCP (no library: the
 *                     generator must cost less than the server): one
 *                     connection per gateway, username OP/SIM<k>, password
 *                     sim-secret-SIM<k>, GW_MEASUREMENTS JSON on
 *                     wip/v1/OP/gw/SIM<k>/data/measurements, QoS 1, at most W
 *                     unacknowledged per connection [--window 16]. The same
 *                     client for suiro and for Mosquitto.
 *   --gw-http URL     suiro's GW-IF over HTTP: each gateway logs in (POST
 *                     /gw/v1/sessions), then the same JSON messages to POST
 *                     /gw/v1/measurements, one message a request, C requests
 *                     in flight over all gateways [--conc 16] (libcurl multi,
 *                     keep-alive). Acknowledged: 200 with result code "0".
 *   --influx URL      InfluxDB 1.x line protocol POST URL/write?db=bench&precision=ms,
 *   --vm URL          VictoriaMetrics, the same lines to its /write: `v,p=P00042
 *                     value=12.34 1700006400000`, whole messages per request
 *                     until at least --lines values [5000], C in flight [4]
 *                     (their best protocol: large batches).
 * --rate R paces the run: message i (in the shape's order) is not sent before
 * t0 + i / R s (for the PUBACK latency at half the maximum rate); --max-msgs N
 * sends only the first N messages; --t-offset-s shifts every timestamp and
 * --id-prefix is put before every messageId (a paced run after the main one
 * then sends values and messages of its own). --server-pid PID: the server's
 * CPU (user + system, /proc/PID/stat) over the timed part. --ready-file F:
 * F is created when the timed part starts (after the logins), for a
 * profiler to start then (bench/shape_ingest.sh SH_PERF).
 *
 * The messages are built before the clock starts as (point, time, cents)
 * triples; the bodies are formatted during the run, by hand (no snprintf per
 * value), as a real gateway does. Timed: from the first message sent to the
 * last acknowledgement, after every connection / login is up (suiro checks
 * an scrypt hash per gateway login; connect_s is printed apart).
 *
 * Prints one JSON line: {"bench":"shape_ingest","shape":..,"system":..,
 * "protocol":..,"points":..,"seconds":..,"per":..,"messages":..,
 * "values_total":..,"values_unique":..,"connect_s":..,"secs":..,
 * "points_per_s":..,"msg_per_s":..,"requests":..,"errors":..,
 * "values_acked":..,"ack_p50_ms":..,"ack_p99_ms":..,"gen_cpu_s":..,
 * "gen_cpu_pct":..,"server_cpu_s":..,"server_cpu_pct":..,
 * "server_cpu_us_per_value":..,"server_runq_wait_s":..,"gen_runq_wait_s":..,
 * "sent_ok":..} (CPU: user + system seconds over the timed part, after the
 * logins; cpu_pct: percent of one core over it; the server's CPU per value
 * acknowledged is steadier than the rates on a shared machine;
 * runq_wait_s: seconds its threads were runnable but waited for a CPU
 * (/proc/PID/task/ * /schedstat, summed over the threads): the machine's
 * other load, the rates' noise) and exits 0 when every message was
 * acknowledged.
 */
#include "api/cli/refset.h"

#include "netutil.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_self(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec / 1e6;
}

/* user + system CPU seconds of process pid, -1 when unknown */
static double cpu_of(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static _Noreturn void oom(void)
{
    fprintf(stderr, "shape_ingest: out of memory\n");
    exit(1);
}

/* the seconds the threads of process pid (0: this one) spent waiting on a
 * run queue (runnable, no CPU free: the machine's other load), summed over
 * /proc/PID/task/ * /schedstat; -1 when unknown */
static double runq_wait_of(long pid)
{
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%ld/task", pid);
    else snprintf(path, sizeof path, "/proc/self/task");
    DIR *dir = opendir(path);
    if (!dir) return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        char f[128];
        snprintf(f, sizeof f, "%s/%.20s/schedstat", path, e->d_name);
        FILE *fp = fopen(f, "r");
        if (!fp) continue;
        unsigned long long run = 0, wait = 0;
        if (fscanf(fp, "%llu %llu", &run, &wait) == 2) sum += (double)wait / 1e9;
        fclose(fp);
    }
    closedir(dir);
    return sum;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

/* ---- the data set ------------------------------------------------------ */

typedef struct val {
    uint32_t p;    /* point, 0-based */
    int64_t ts;    /* ms */
    int64_t cents; /* value = cents / 100 */
} val;

typedef struct msg {
    uint32_t gw;  /* gateway, 0-based */
    uint32_t seq; /* its number within the gateway (messageId) */
    size_t off;   /* into set.v */
    uint32_t n;
} msg;

typedef struct set {
    uint32_t points, seconds, per, gws, backfill_bp;
    int64_t t_off_ms;
    const char *shape;
    val *v;
    size_t nv, capv;
    msg *m;
    size_t nm, capm;
    uint32_t *gseq; /* next messageId number per gateway */
    int64_t *walk;  /* points x seconds cents */
    uint64_t unique;
} set;

static void add_msg(set *d, uint32_t gw)
{
    if (d->nm == d->capm) {
        d->capm = d->capm ? d->capm * 2 : 4096;
        msg *nm = realloc(d->m, d->capm * sizeof *nm);
        if (!nm) oom();
        d->m = nm;
    }
    d->m[d->nm++] = (msg){gw, d->gseq[gw]++, d->nv, 0};
}

static void add_val(set *d, uint32_t p, int64_t ts, int64_t cents)
{
    if (d->nv == d->capv) {
        d->capv = d->capv ? d->capv * 2 : 65536;
        val *nv = realloc(d->v, d->capv * sizeof *nv);
        if (!nv) oom();
        d->v = nv;
    }
    d->v[d->nv++] = (val){p, ts + d->t_off_ms, cents};
    d->m[d->nm - 1].n++;
    d->unique++;
}

#define BACKFILL_MS (INT64_C(30) * 86400 * 1000)

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* backfill message number bm: one point, per consecutive seconds, 30 days
 * back; the points of P consecutive messages are all different (step prime to P) */
static void add_backfill(set *d, uint64_t bm, uint64_t seed)
{
    uint32_t step = 101;
    while (gcd(step, d->points) != 1) step++;
    uint32_t p = (uint32_t)((bm * step) % d->points);
    uint32_t q = (uint32_t)(bm / d->points);
    rs_cfg c = {.points = d->points, .seconds = (q + 1) * d->per, .batch = d->per, .seed = seed ^ 0xbac4f111ull};
    int64_t *w = xmalloc((size_t)c.seconds * sizeof *w);
    rs_cents(&c, p, w);
    add_msg(d, p / d->per);
    for (uint32_t i = 0; i < d->per; i++)
        add_val(d, p, RS_T0 - BACKFILL_MS + ((int64_t)q * d->per + i) * 1000, w[(size_t)q * d->per + i]);
    free(w);
}

static int build_set(set *d, uint64_t seed)
{
    rs_cfg c = {.points = d->points, .seconds = d->seconds, .batch = d->per, .seed = seed};
    d->gws = (d->points + d->per - 1) / d->per;
    d->gseq = calloc(d->gws, sizeof *d->gseq);
    d->walk = xmalloc((size_t)d->points * d->seconds * sizeof *d->walk);
    if (!d->gseq) return -1;
    for (uint32_t p = 0; p < d->points; p++) rs_cents(&c, p, d->walk + (size_t)p * d->seconds);
#define W(p, s) d->walk[(size_t)(p) * d->seconds + (s)]
    if (!strcmp(d->shape, "series")) {
        for (uint32_t b = 0; b * d->per < d->seconds; b++)
            for (uint32_t p = 0; p < d->points; p++) {
                add_msg(d, p / d->per);
                for (uint32_t s = b * d->per; s < d->seconds && s < (b + 1) * d->per; s++)
                    add_val(d, p, RS_T0 + (int64_t)s * 1000, W(p, s));
            }
    } else {
        int mixed = !strcmp(d->shape, "mixed");
        uint64_t owed = 0, bm = 0; /* backfill values owed, backfill messages sent */
        for (uint32_t s = 0; s < d->seconds; s++) {
            for (uint32_t g = 0; g < d->gws; g++) {
                add_msg(d, g);
                for (uint32_t p = g * d->per; p < (g + 1) * d->per && p < d->points; p++)
                    add_val(d, p, RS_T0 + (int64_t)s * 1000, W(p, s));
            }
            if (!mixed) continue;
            owed += (uint64_t)d->points * d->backfill_bp;
            while (owed >= (uint64_t)d->per * 10000) {
                add_backfill(d, bm++, seed);
                owed -= (uint64_t)d->per * 10000;
            }
        }
    }
#undef W
    free(d->walk);
    d->walk = NULL;
    return 0;
}

/* ---- formatting ---------------------------------------------------------- */

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
    if (!np) oom();
    b->p = np;
    b->cap = cap;
}

static void sb_mem(sbuf *b, const void *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define SB_LIT(b, s) sb_mem((b), (s), sizeof(s) - 1)

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

static void sb_u64(sbuf *b, uint64_t v)
{
    sb_need(b, 24);
    b->len += u64dec(b->p + b->len, v);
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

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDThh:mm:ss.mmmZ" (24 bytes) of ms since the epoch; the day's
 * date is cached (the values of a message share it) */
static void rfc3339(char *out, int64_t ms)
{
    static int64_t cday = INT64_MIN;
    static char cdate[32];
    int64_t day = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - day * 86400000;
    if (day != cday) {
        /* civil from days (H. Hinnant) */
        int64_t z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t y = (int64_t)yoe + era * 400;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        unsigned dd = doy - (153 * mp + 2) / 5 + 1, mm = mp < 10 ? mp + 3 : mp - 9;
        if (mm <= 2) y++;
        snprintf(cdate, sizeof cdate, "%04d-%02u-%02u", (int)y, mm, dd);
        cday = day;
    }
    memcpy(out, cdate, 10);
    out[10] = 'T';
    unsigned s = (unsigned)(rem / 1000), msr = (unsigned)(rem % 1000);
    put2(out + 11, s / 3600);
    out[13] = ':';
    put2(out + 14, s / 60 % 60);
    out[16] = ':';
    put2(out + 17, s % 60);
    out[19] = '.';
    out[20] = (char)('0' + msr / 100);
    put2(out + 21, msr % 100);
    out[23] = 'Z';
}

static const char *g_prefix = ""; /* --id-prefix */

static void sb_gwid(sbuf *b, uint32_t gw)
{
    char t[16];
    snprintf(t, sizeof t, "SIM%04u", gw + 1);
    sb_mem(b, t, 7);
}

/* the GW_MEASUREMENTS JSON of message m */
static void json_body(sbuf *b, const set *d, const msg *m)
{
    char ts[24];
    SB_LIT(b, "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"");
    sb_mem(b, g_prefix, strlen(g_prefix));
    sb_gwid(b, m->gw);
    SB_LIT(b, "-");
    sb_u64(b, m->seq);
    SB_LIT(b, "\",\"timestamp\":\"");
    rfc3339(ts, d->v[m->off].ts);
    sb_mem(b, ts, 24);
    SB_LIT(b, "\"},\"body\":{\"values\":[");
    for (uint32_t i = 0; i < m->n; i++) {
        const val *v = &d->v[m->off + i];
        char id[16];
        uint32_t j = v->p % d->per + 1;
        memcpy(id, "SP", 2);
        id[2] = (char)('0' + (m->gw + 1) / 1000 % 10);
        id[3] = (char)('0' + (m->gw + 1) / 100 % 10);
        put2(id + 4, (m->gw + 1) % 100);
        id[6] = '_';
        id[7] = (char)('0' + j / 100 % 10);
        put2(id + 8, j % 100);
        if (i) SB_LIT(b, ",");
        SB_LIT(b, "{\"dataId\":\"");
        sb_mem(b, id, 10);
        SB_LIT(b, "\",\"timestamp\":\"");
        rfc3339(ts, v->ts);
        sb_mem(b, ts, 24);
        SB_LIT(b, "\",\"value\":");
        sb_cents(b, v->cents);
        SB_LIT(b, "}");
    }
    SB_LIT(b, "]}}");
}

/* line protocol of message m */
static void lines_body(sbuf *b, const set *d, const msg *m)
{
    for (uint32_t i = 0; i < m->n; i++) {
        const val *v = &d->v[m->off + i];
        char t[8] = {'P'}; /* "P%05u" (points < 100,000) */
        for (uint32_t k = 5, x = v->p; k >= 1; k--, x /= 10) t[k] = (char)('0' + x % 10);
        SB_LIT(b, "v,p=");
        sb_mem(b, t, 6);
        SB_LIT(b, " value=");
        sb_cents(b, v->cents);
        SB_LIT(b, " ");
        sb_u64(b, (uint64_t)v->ts);
        SB_LIT(b, "\n");
    }
}

/* ---- results ------------------------------------------------------------ */

typedef struct res {
    double connect_s, secs, gen_cpu, srv_cpu; /* CPU: seconds over the timed part */
    double gen0, srv0;
    double gen_wait, srv_wait, genw0, srvw0; /* run-queue waits over it */
    uint64_t requests, errors, values_acked, msgs_acked;
    double *lat; /* ms, one per acknowledged request */
    size_t nlat;
} res;

static void lat_add(res *r, double ms) { r->lat[r->nlat++] = ms; }

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(res *r, double q)
{
    if (!r->nlat) return -1;
    size_t i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
    return r->lat[i];
}

static long g_spid;           /* --server-pid */
static const char *g_ready;  /* --ready-file */

/* the clock of the timed part starts: the CPU clocks too; --ready-file is
 * created (a profiler waiting for it then skips the logins) */
static double clock_start(res *r)
{
    if (g_ready) {
        FILE *f = fopen(g_ready, "w");
        if (f) fclose(f);
    }
    r->gen0 = cpu_self();
    r->srv0 = g_spid ? cpu_of(g_spid) : -1;
    r->genw0 = runq_wait_of(0);
    r->srvw0 = g_spid ? runq_wait_of(g_spid) : -1;
    return now_s();
}

/* pacing: message i may not leave before t0 + i / rate */
static double g_rate = 0;
static int due(size_t i, double t0) { return g_rate <= 0 || now_s() >= t0 + (double)i / g_rate; }

/* ---- MQTT 3.1.1 by hand -------------------------------------------------- */

#define PIDS 4096 /* packet ids per connection (more than any window) */

typedef struct mconn {
    int fd, up;
    size_t *ms; /* its messages (indexes into set.m), in order */
    size_t nms, next, acked;
    sbuf out;
    size_t outpos;
    char *in;
    size_t inlen, incap;
    double sent_at[PIDS];
    uint16_t pid;
    uint32_t inflight;
    size_t msg_of[PIDS];
} mconn;

static void mqtt_remlen(sbuf *b, size_t n)
{
    do {
        unsigned char c = (unsigned char)(n % 128);
        n /= 128;
        if (n) c |= 128;
        sb_mem(b, &c, 1);
    } while (n);
}

static void mqtt_str(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    unsigned char l[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    sb_mem(b, l, 2);
    sb_mem(b, s, n);
}

static void mqtt_connect(sbuf *b, const char *cid, const char *user, const char *pass)
{
    sbuf v = {0};
    static const unsigned char hdr[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60};
    sb_mem(&v, hdr, sizeof hdr);
    mqtt_str(&v, cid);
    mqtt_str(&v, user);
    mqtt_str(&v, pass);
    unsigned char t = 0x10;
    sb_mem(b, &t, 1);
    mqtt_remlen(b, v.len);
    sb_mem(b, v.p, v.len);
    free(v.p);
}

/* one PUBLISH QoS 1 of message mi on connection c */
static void mqtt_publish(mconn *c, const set *d, size_t mi, const char *topic, sbuf *tmp)
{
    tmp->len = 0;
    json_body(tmp, d, &d->m[mi]);
    uint16_t pid = (uint16_t)(c->pid % PIDS + 1);
    c->pid++;
    size_t tl = strlen(topic);
    unsigned char t = 0x32;
    sb_mem(&c->out, &t, 1);
    mqtt_remlen(&c->out, 2 + tl + 2 + tmp->len);
    mqtt_str(&c->out, topic);
    unsigned char p[2] = {(unsigned char)(pid >> 8), (unsigned char)pid};
    sb_mem(&c->out, p, 2);
    sb_mem(&c->out, tmp->p, tmp->len);
    c->sent_at[pid - 1] = now_s();
    c->msg_of[pid - 1] = mi;
    c->inflight++;
}

/* parse what came in: CONNACK, PUBACK; -1 on a refused CONNACK */
static int mqtt_parse(mconn *c, const set *d, res *r)
{
    size_t pos = 0;
    while (c->inlen - pos >= 2) {
        size_t rl = 0, mul = 1, i = 1;
        for (;; i++) {
            if (pos + i >= c->inlen) goto more;
            unsigned char b = (unsigned char)c->in[pos + i];
            rl += (b & 127) * mul;
            mul *= 128;
            if (!(b & 128)) break;
        }
        size_t hl = i + 1;
        if (c->inlen - pos < hl + rl) break;
        unsigned char type = (unsigned char)c->in[pos] >> 4;
        const unsigned char *v = (const unsigned char *)c->in + pos + hl;
        if (type == 2 && rl >= 2) { /* CONNACK */
            if (v[1] != 0) {
                fprintf(stderr, "shape_ingest: CONNACK refused, code %u\n", v[1]);
                return -1;
            }
            c->up = 1;
        } else if (type == 4 && rl >= 2) { /* PUBACK */
            uint16_t pid = (uint16_t)(v[0] << 8 | v[1]);
            if (pid >= 1 && pid <= PIDS) {
                lat_add(r, (now_s() - c->sent_at[pid - 1]) * 1000);
                r->values_acked += d->m[c->msg_of[pid - 1]].n;
                r->msgs_acked++;
                c->acked++;
                c->inflight--;
            }
        }
        pos += hl + rl;
    }
more:
    memmove(c->in, c->in + pos, c->inlen - pos);
    c->inlen -= pos;
    return 0;
}

/* poll the connections once: write what is queued, read and parse; -1 on a
 * broken connection */
static int mqtt_io(mconn *cs, struct pollfd *pf, uint32_t n, const set *d, res *r, int ms)
{
    for (uint32_t i = 0; i < n; i++) {
        pf[i].fd = cs[i].fd;
        pf[i].events = POLLIN | (cs[i].outpos < cs[i].out.len ? POLLOUT : 0);
        pf[i].revents = 0;
    }
    if (poll(pf, n, ms) < 0 && errno != EINTR) return -1;
    for (uint32_t i = 0; i < n; i++) {
        mconn *c = &cs[i];
        if (pf[i].revents & POLLOUT) {
            ssize_t w = send(c->fd, c->out.p + c->outpos, c->out.len - c->outpos, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) c->outpos += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) goto broken;
            if (c->outpos == c->out.len) c->outpos = c->out.len = 0;
        }
        if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (c->incap - c->inlen < 4096) {
                c->incap = c->incap ? c->incap * 2 : 65536;
                char *ni = realloc(c->in, c->incap);
                if (!ni) oom();
                c->in = ni;
            }
            ssize_t k = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
            if (k == 0) goto broken;
            if (k < 0 && errno != EAGAIN && errno != EINTR) goto broken;
            if (k > 0) c->inlen += (size_t)k;
            if (mqtt_parse(c, d, r)) return -1;
        }
        continue;
    broken:
        fprintf(stderr, "shape_ingest: MQTT connection SIM%04u lost after %zu of %zu acknowledgements\n", i + 1,
                c->acked, c->nms);
        return -1;
    }
    return 0;
}

static int run_mqtt(const set *d, const char *hostport, const char *op, uint32_t window, size_t limit, res *r)
{
    uint32_t n = d->gws;
    mconn *cs = calloc(n, sizeof *cs);
    struct pollfd *pf = calloc(n, sizeof *pf);
    sbuf tmp = {0};
    if (!cs || !pf) return 1;
    size_t *cnt = calloc(n, sizeof *cnt);
    for (size_t i = 0; i < limit; i++) cnt[d->m[i].gw]++;
    double c0 = now_s();
    for (uint32_t k = 0; k < n; k++) {
        mconn *c = &cs[k];
        c->ms = xmalloc((cnt[k] ? cnt[k] : 1) * sizeof *c->ms);
        if ((c->fd = bn_tcp_connect(hostport)) < 0) {
            fprintf(stderr, "shape_ingest: cannot connect to %s: %s\n", hostport, strerror(errno));
            return 1;
        }
        char cid[32], user[96], pass[64];
        snprintf(cid, sizeof cid, "SIM%04u", k + 1);
        snprintf(user, sizeof user, "%s/SIM%04u", op, k + 1);
        snprintf(pass, sizeof pass, "sim-secret-SIM%04u", k + 1);
        mqtt_connect(&c->out, cid, user, pass);
    }
    free(cnt);
    for (size_t i = 0; i < limit; i++) {
        mconn *c = &cs[d->m[i].gw];
        c->ms[c->nms++] = i;
    }
    for (uint32_t up = 0; up < n;) {
        if (mqtt_io(cs, pf, n, d, r, 1000)) return 1;
        up = 0;
        for (uint32_t k = 0; k < n; k++) up += (uint32_t)cs[k].up;
        if (now_s() - c0 > 120) {
            fprintf(stderr, "shape_ingest: only %u of %u MQTT connections up after 120 s\n", up, n);
            return 1;
        }
    }
    r->connect_s = now_s() - c0;
    char topic[160];
    double t0 = clock_start(r);
    size_t done = 0, total = limit;
    /* the messages' global order: connection k's next message is due when
     * its index is; with --rate the loop sleeps in poll until the next is due */
    while (done < total) {
        double next_due = 0;
        for (uint32_t k = 0; k < n; k++) {
            mconn *c = &cs[k];
            while (c->next < c->nms && c->inflight < window) {
                size_t mi = c->ms[c->next];
                if (!due(mi, t0)) {
                    double t = t0 + (double)mi / g_rate;
                    if (!next_due || t < next_due) next_due = t;
                    break;
                }
                snprintf(topic, sizeof topic, "wip/v1/%s/gw/SIM%04u/data/measurements", op, k + 1);
                mqtt_publish(c, d, mi, topic, &tmp);
                c->next++;
                r->requests++;
            }
        }
        int wait = 1000;
        if (next_due > 0) {
            double w = (next_due - now_s()) * 1000;
            wait = w <= 0 ? 0 : (int)w + 1;
            if (wait > 1000) wait = 1000;
        }
        if (mqtt_io(cs, pf, n, d, r, wait)) return 1;
        done = 0;
        for (uint32_t k = 0; k < n; k++) done += cs[k].acked;
    }
    r->secs = now_s() - t0;
    for (uint32_t k = 0; k < n; k++) {
        static const unsigned char disc[2] = {0xE0, 0};
        (void)!send(cs[k].fd, disc, 2, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(cs[k].fd);
        free(cs[k].ms);
        free(cs[k].out.p);
        free(cs[k].in);
    }
    free(cs);
    free(pf);
    free(tmp.p);
    return 0;
}

/* ---- HTTP (GW-IF, line protocol) ------------------------------------------ */

typedef struct slot {
    CURL *h;
    sbuf body;
    char resp[1024];
    size_t resp_len;
    uint64_t values, msgs;
    double t;
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

static void slot_init(slot *s, struct curl_slist *hdr)
{
    CURL *h = s->h = curl_easy_init();
    if (!h) oom();
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
}

static void slot_post(CURLM *m, slot *s, const char *url)
{
    s->resp_len = 0;
    s->resp[0] = 0;
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.p);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
    s->t = now_s();
    curl_multi_add_handle(m, s->h);
    s->busy = 1;
}

/* runs requests until every message in [0, limit) is acknowledged; gwhttp:
 * suiro GW-IF (one message a request, a bearer token per gateway), else line
 * protocol (whole messages up to `lines` values a request) */
static int run_http(const set *d, const char *base, int gwhttp, const char *op, uint32_t lines, int conc,
                    size_t limit, res *r)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
    CURLM *m = curl_multi_init();
    slot *sl = calloc((size_t)conc, sizeof *sl);
    struct curl_slist *plain = curl_slist_append(NULL, gwhttp ? "Content-Type: application/json"
                                                              : "Content-Type: text/plain; charset=utf-8");
    plain = curl_slist_append(plain, "Expect:");
    struct curl_slist **auth = gwhttp ? calloc(d->gws, sizeof *auth) : NULL;
    if (!m || !sl || !plain || (gwhttp && !auth)) return 1;
    char url[2048];
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    for (int i = 0; i < conc; i++) slot_init(&sl[i], plain);
    double c0 = now_s();
    if (gwhttp) { /* log every gateway in, conc at a time */
        snprintf(url, sizeof url, "%.*s/gw/v1/sessions", (int)bl, base);
        uint32_t next = 0, in = 0;
        uint32_t *who = calloc((size_t)conc, sizeof *who);
        while (in < d->gws) {
            for (int i = 0; i < conc && next < d->gws; i++) {
                if (sl[i].busy) continue;
                sl[i].body.len = 0;
                char t[256];
                int tl = snprintf(t, sizeof t,
                                  "{\"operatorId\":\"%s\",\"gatewayId\":\"SIM%04u\",\"secret\":\"sim-secret-SIM%04u\"}",
                                  op, next + 1, next + 1);
                sb_mem(&sl[i].body, t, (size_t)tl);
                who[i] = next++;
                slot_post(m, &sl[i], url);
            }
            int running;
            curl_multi_perform(m, &running);
            CURLMsg *cm;
            int q;
            while ((cm = curl_multi_info_read(m, &q))) {
                if (cm->msg != CURLMSG_DONE) continue;
                int i = 0;
                while (sl[i].h != cm->easy_handle) i++;
                long code = 0;
                curl_easy_getinfo(sl[i].h, CURLINFO_RESPONSE_CODE, &code);
                curl_multi_remove_handle(m, sl[i].h);
                sl[i].busy = 0;
                const char *tk = strstr(sl[i].resp, "\"token\":\"");
                if (code != 201 || !tk) {
                    fprintf(stderr, "shape_ingest: login SIM%04u: HTTP %ld %.300s\n", who[i] + 1, code, sl[i].resp);
                    return 1;
                }
                tk += 9;
                const char *e = strchr(tk, '"');
                char h[600];
                snprintf(h, sizeof h, "Authorization: Bearer %.*s", e ? (int)(e - tk) : 0, tk);
                auth[who[i]] = curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:");
                auth[who[i]] = curl_slist_append(auth[who[i]], h);
                in++;
            }
            if (in < d->gws) curl_multi_poll(m, NULL, 0, 100, NULL);
        }
        free(who);
        snprintf(url, sizeof url, "%.*s/gw/v1/measurements", (int)bl, base);
    } else snprintf(url, sizeof url, "%.*s/write?db=bench&precision=ms", (int)bl, base);
    r->connect_s = now_s() - c0;
    size_t next = 0;
    int active = 0;
    double t0 = clock_start(r);
    while (next < limit || active) {
        for (int i = 0; i < conc && next < limit; i++) {
            slot *s = &sl[i];
            if (s->busy || !due(next, t0)) continue;
            s->body.len = 0;
            s->values = s->msgs = 0;
            if (gwhttp) {
                const msg *mm = &d->m[next++];
                json_body(&s->body, d, mm);
                curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, auth[mm->gw]);
                s->values = mm->n;
                s->msgs = 1;
            } else
                while (next < limit && s->values < lines) {
                    const msg *mm = &d->m[next++];
                    lines_body(&s->body, d, mm);
                    s->values += mm->n;
                    s->msgs++;
                }
            slot_post(m, s, url);
            active++;
        }
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *cm;
        int q;
        while ((cm = curl_multi_info_read(m, &q))) {
            if (cm->msg != CURLMSG_DONE) continue;
            slot *s = NULL;
            for (int i = 0; i < conc; i++)
                if (sl[i].h == cm->easy_handle) s = &sl[i];
            if (!s) continue;
            long code = 0;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
            r->requests++;
            int ok = cm->data.result == CURLE_OK &&
                     (gwhttp ? code == 200 && strstr(s->resp, "\"code\":\"0\"") : (code == 204 || code == 200));
            if (!ok) {
                if (r->errors++ < 3)
                    fprintf(stderr, "shape_ingest: %s: %s, HTTP %ld: %.300s\n", url,
                            curl_easy_strerror(cm->data.result), code, s->resp);
            } else {
                lat_add(r, (now_s() - s->t) * 1000);
                r->values_acked += s->values;
                r->msgs_acked += s->msgs;
            }
            curl_multi_remove_handle(m, s->h);
            s->busy = 0;
            active--;
        }
        if (active) curl_multi_poll(m, NULL, 0, g_rate > 0 ? 1 : 100, NULL);
        else if (next < limit) usleep(200);
    }
    r->secs = now_s() - t0;
    for (int i = 0; i < conc; i++) {
        curl_easy_cleanup(sl[i].h);
        free(sl[i].body.p);
    }
    if (auth)
        for (uint32_t k = 0; k < d->gws; k++) curl_slist_free_all(auth[k]);
    free(auth);
    free(sl);
    curl_slist_free_all(plain);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: shape_ingest --shape series|snapshot|mixed\n"
                    "         (--mqtt HOST:PORT | --gw-http URL | --influx URL | --vm URL) [--system NAME]\n"
                    "         [--points P] [--seconds S] [--per M] [--backfill-bp B] [--seed S] [--operator OP]\n"
                    "         [--window W] [--conc C] [--lines N] [--rate MSG/S] [--max-msgs N]\n"
                    "         [--t-offset-s S] [--id-prefix X] [--server-pid PID] [--ready-file F]\n"
                    "(the options are described at the top of bench/shape_ingest.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    set d = {.points = 10000, .seconds = 200, .per = 100, .backfill_bp = 100, .shape = "snapshot"};
    const char *mqtt = NULL, *gwhttp = NULL, *influx = NULL, *vm = NULL, *op = "sim", *sysname = NULL;
    uint32_t window = 16, lines = 5000;
    int conc = -1;
    uint64_t seed = 42, max_msgs = 0;
    long spid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--shape")) d.shape = v;
        else if (!strcmp(a, "--mqtt")) mqtt = v;
        else if (!strcmp(a, "--gw-http")) gwhttp = v;
        else if (!strcmp(a, "--influx")) influx = v;
        else if (!strcmp(a, "--vm")) vm = v;
        else if (!strcmp(a, "--system")) sysname = v;
        else if (!strcmp(a, "--points")) d.points = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seconds")) d.seconds = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--per")) d.per = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--backfill-bp")) d.backfill_bp = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--operator")) op = v;
        else if (!strcmp(a, "--window")) window = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--conc")) conc = atoi(v);
        else if (!strcmp(a, "--lines")) lines = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--rate")) g_rate = strtod(v, NULL);
        else if (!strcmp(a, "--max-msgs")) max_msgs = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--t-offset-s")) d.t_off_ms = strtoll(v, NULL, 10) * 1000;
        else if (!strcmp(a, "--id-prefix")) g_prefix = v;
        else if (!strcmp(a, "--server-pid")) spid = atol(v);
        else if (!strcmp(a, "--ready-file")) g_ready = v;
        else return usage();
    }
    int shape_ok = !strcmp(d.shape, "series") || !strcmp(d.shape, "snapshot") || !strcmp(d.shape, "mixed");
    if (!!mqtt + !!gwhttp + !!influx + !!vm != 1 || !shape_ok || !d.points || !d.seconds || !d.per ||
        d.per > 999 || d.points > 99999 || (d.points + d.per - 1) / d.per > 9999 || d.backfill_bp > 10000 || !window ||
        window >= PIDS || !lines || strlen(g_prefix) > 8)
        return usage();
    if (conc < 0) conc = gwhttp ? 16 : 4;
    if (conc < 1 || conc > 1024) return usage();
    if (build_set(&d, seed)) return 1;
    size_t limit = max_msgs && max_msgs < d.nm ? (size_t)max_msgs : d.nm;
    uint64_t vtotal = 0;
    for (size_t i = 0; i < limit; i++) vtotal += d.m[i].n;
    res r = {0};
    r.lat = xmalloc(limit * sizeof *r.lat);
    const char *system, *protocol;
    int rc;
    g_spid = spid;
    if (mqtt) {
        system = "mqtt";
        protocol = "MQTT 3.1.1 QoS 1, GW_MEASUREMENTS JSON, one connection per gateway";
        rc = run_mqtt(&d, mqtt, op, window, limit, &r);
    } else if (gwhttp) {
        system = "gw-http";
        protocol = "GW-IF HTTP POST /gw/v1/measurements, GW_MEASUREMENTS JSON, one message a request";
        rc = run_http(&d, gwhttp, 1, op, lines, conc, limit, &r);
    } else {
        system = influx ? "influxdb" : "victoriametrics";
        protocol = "InfluxDB line protocol, HTTP POST /write";
        rc = run_http(&d, influx ? influx : vm, 0, op, lines, conc, limit, &r);
    }
    if (rc) {
        fprintf(stderr, "shape_ingest: %s: the run failed\n", system);
        return 1;
    }
    r.gen_cpu = cpu_self() - r.gen0;
    r.srv_cpu = spid && r.srv0 >= 0 ? cpu_of(spid) - r.srv0 : -1;
    r.gen_wait = r.genw0 >= 0 ? runq_wait_of(0) - r.genw0 : -1;
    r.srv_wait = spid && r.srvw0 >= 0 ? runq_wait_of(spid) - r.srvw0 : -1;
    if (sysname) system = sysname;
    qsort(r.lat, r.nlat, sizeof *r.lat, cmpd);
    double wall = r.secs;
    int ok = r.errors == 0 && r.values_acked == vtotal && r.msgs_acked == limit;
    char srv[96] = "null", srvp[32] = "null", srvv[32] = "null";
    if (r.srv_cpu >= 0) {
        snprintf(srv, sizeof srv, "%.2f", r.srv_cpu);
        snprintf(srvp, sizeof srvp, "%.0f", wall > 0 ? r.srv_cpu / wall * 100 : 0);
        if (r.values_acked) snprintf(srvv, sizeof srvv, "%.3f", r.srv_cpu * 1e6 / (double)r.values_acked);
    }
    char srvw[32] = "null", genw[32] = "null";
    if (r.srv_wait >= 0) snprintf(srvw, sizeof srvw, "%.2f", r.srv_wait);
    if (r.gen_wait >= 0) snprintf(genw, sizeof genw, "%.2f", r.gen_wait);
    printf("{\"bench\":\"shape_ingest\",\"shape\":\"%s\",\"system\":\"%s\",\"protocol\":\"%s\",\"points\":%u,"
           "\"seconds\":%u,\"per\":%u,\"backfill_bp\":%u,\"gateways\":%u,\"window\":%u,\"conc\":%d,\"lines\":%u,"
           "\"rate_target\":%.0f,\"messages\":%zu,\"values_total\":%" PRIu64 ",\"values_unique\":%" PRIu64
           ",\"connect_s\":%.3f,\"secs\":%.3f,\"points_per_s\":%.0f,\"msg_per_s\":%.0f,\"requests\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"values_acked\":%" PRIu64 ",\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,"
           "\"gen_cpu_s\":%.2f,\"gen_cpu_pct\":%.0f,\"server_cpu_s\":%s,\"server_cpu_pct\":%s,"
           "\"server_cpu_us_per_value\":%s,\"server_runq_wait_s\":%s,\"gen_runq_wait_s\":%s,"
           "\"cpu_note\":\"CPU over secs (after the logins), percent of one core\",\"sent_ok\":%s}\n",
           d.shape, system, protocol, d.points, d.seconds, d.per, !strcmp(d.shape, "mixed") ? d.backfill_bp : 0,
           d.gws, window, conc, lines, g_rate, limit, vtotal, limit == d.nm ? d.unique : vtotal, r.connect_s,
           r.secs, r.secs > 0 ? (double)r.values_acked / r.secs : 0.0,
           r.secs > 0 ? (double)r.msgs_acked / r.secs : 0.0, r.requests, r.errors, r.values_acked, pct(&r, 0.5),
           pct(&r, 0.99), r.gen_cpu, wall > 0 ? r.gen_cpu / wall * 100 : 0, srv, srvp, srvv, srvw, genw,
           ok ? "true" : "false");
    fflush(stdout);
    free(r.lat);
    free(d.v);
    free(d.m);
    free(d.gseq);
    return ok ? 0 : 1;
}
