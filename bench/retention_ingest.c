/*
 * bench/retention_ingest.c -- what a retention sweep costs ingest (issue
 * #16, docs/retention.md: "without slowing ingest by more than 10 %").
 *
 * usage: retention_ingest [--points N] [--seconds S] [--batch B] [--ret-batch K] [--repeat R] [--dir D]
 * The reference data set (engbench.h, series shape, no late values) over N
 * points: the odd points are the backlog (class "default", ingested first,
 * untimed), the even points the live ingest (class "keep"). The engine's
 * clock is 400 days after the data, operator op1's periods are default 30
 * days and keep 0 (for ever), so the whole backlog is past its period and
 * the live values are not. Two runs on two fresh directories, the same
 * backlog in each: the live ingest alone (base_s), and the live ingest with
 * a sweep started with it on a thread of its own (sweep_s; the sweep cuts
 * every chunk and latest row of the backlog in Retention events of at most
 * K keys). The pair runs R times (alternating; default 3) and the medians
 * are reported, the machine being shared. ratio = base_s / with_sweep_s
 * (1.0: no slowdown; the goal is >= 0.9). verify: every live value is there after each run (count and
 * hash), and after the sweep no backlog point has a value left in a chunk.
 */
#include "engbench.h"

#include "engine/records.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t fixed_now;
static int64_t clock_fn(void) { return fixed_now; }

typedef struct sweep_arg {
    sr_engine *e;
    sr_retention_cfg cfg;
    sr_retention_report rep;
    int rc;
    double secs;
} sweep_arg;

static void *sweep_main(void *p)
{
    sweep_arg *a = p;
    sr_errinfo ei;
    double t0 = eb_now();
    a->rc = sr_engine_retention_sweep(a->e, &a->cfg, NULL, &a->rep, &ei);
    a->secs = eb_now() - t0;
    if (a->rc) fprintf(stderr, "retention_ingest: sweep: %s\n", ei.msg);
    return NULL;
}

static int period(sr_engine *e, const char *cls, uint32_t days)
{
    sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = cls, .retention_days = days};
    sr_cmd_env env = {EB_OP, "admin", SR_ACTOR_USER, NULL, "bench"};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_registry_put(&env, &re, &b);
    sr_result r;
    sr_slice sl = {b.data, b.len};
    if (!rc) rc = sr_engine_submit_wait(e, &sl, 1, &r);
    if (!rc) rc = r.rc;
    sr_buf_release(&b);
    return rc;
}

/* d's events of the points of parity `odd` (a view: the bytes are d's) */
static eb_data view(const eb_data *d, int odd)
{
    eb_data v = *d;
    v.ev = malloc(d->nev * sizeof *v.ev);
    v.nev = 0;
    for (size_t i = 0; i < d->nev; i++)
        if ((int)(d->ev[i].pidx % 2) == odd) v.ev[v.nev++] = d->ev[i];
    return v;
}

/* the live (even) points: every value there, hashed as eb_verify does */
static int verify_live(sr_engine *e, const eb_cfg *c, const eb_data *d, uint64_t want)
{
    sr_buf s;
    sr_buf_init(&s);
    uint64_t n = 0;
    int rc = SR_OK;
    for (uint32_t p = 0; p < c->points && !rc; p += 2) {
        sr_range_q q = {.point = d->point_no[p], .from = EB_T0 - 86400000, .to = EB_T0 + (int64_t)c->seconds * 1000 + 86400000,
                        .after = INT64_MIN};
        int more = 0;
        s.len = 0;
        rc = sr_engine_range(e, &q, &s, NULL, &more);
        n += s.len / sizeof(sr_sample);
    }
    sr_buf_release(&s);
    return !rc && n == want ? 0 : 1;
}

/* one run: a fresh directory, the backlog, then the live ingest (with a
 * sweep when sweep): its seconds, or < 0 on failure */
static double run(eb_cfg *c, eb_data *d, const char *dir, int sweep, uint32_t ret_batch, sweep_arg *sa, int *ok)
{
    eb_rmrf(dir);
    sr_engine_opts o;
    sr_key key;
    eb_opts(c, &o, &key);
    o.clock_ms = clock_fn;
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "retention_ingest: open: %s\n", ei.msg);
        return -1;
    }
    int rc = eb_masters(e, c, d);
    if (!rc) rc = period(e, "default", 30);
    if (!rc) rc = period(e, "keep", 0);
    eb_data back = view(d, 1), live = view(d, 0);
    eb_ingest_res r;
    if (!rc) rc = eb_ingest(e, c, &back, &r);
    if (!rc && r.failed) rc = SR_EIO;
    pthread_t th;
    memset(sa, 0, sizeof *sa);
    sa->e = e;
    sa->cfg = (sr_retention_cfg){.batch = ret_batch};
    if (!rc && sweep) pthread_create(&th, NULL, sweep_main, sa);
    if (!rc) rc = eb_ingest(e, c, &live, &r);
    if (!rc && r.failed) rc = SR_EIO;
    if (sweep) {
        pthread_join(th, NULL);
        if (sa->rc) rc = sa->rc;
    }
    uint64_t want = (uint64_t)((c->points + 1) / 2) * c->seconds;
    *ok = !rc && !verify_live(e, c, d, want);
    if (*ok && sweep) { /* every backlog chunk was cut */
        sr_buf s;
        sr_buf_init(&s);
        for (uint32_t p = 1; p < c->points && *ok; p += 2) {
            sr_range_q q = {.point = d->point_no[p], .from = EB_T0 - 86400000, .to = EB_T0 + 86400000 * 2, .after = INT64_MIN};
            int more = 0;
            s.len = 0;
            if (sr_engine_range(e, &q, &s, NULL, &more)) *ok = 0;
            /* what is left is the head (the newest values, not yet a chunk) */
            if (s.len / sizeof(sr_sample) >= 1024) *ok = 0;
        }
        sr_buf_release(&s);
    }
    if (sr_engine_close(e)) *ok = 0;
    free(back.ev);
    free(live.ev);
    eb_rmrf(dir);
    return rc ? -1 : r.secs;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof *v, dcmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 2000, .seconds = 7200, .batch = 100, .late_bp = 0, .seed = 42, .threads = 1, .enc = 1,
                .zstd = 1, .window = 8192, .even_class = "keep"};
    uint32_t ret_batch = 64, repeat = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--batch")) c.batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--ret-batch")) ret_batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--repeat")) repeat = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: retention_ingest [--points N] [--seconds S] [--batch B] [--ret-batch K] [--repeat R] "
                            "[--dir D]\n");
            return 2;
        }
    }
    if (c.points < 2 || !c.seconds || !c.batch || !repeat || repeat > 15) return 2;
    char tmpl[] = "/var/tmp/suiro-retbench-XXXXXX", dir[1100];
    if (!c.dir) {
        if (!mkdtemp(tmpl)) return 1;
        c.dir = tmpl;
    }
    snprintf(dir, sizeof dir, "%s/eng", c.dir);
    fixed_now = EB_T0 + INT64_C(400) * 86400000;
    eb_data d;
    if (eb_generate(&c, &d)) return 1;
    sweep_arg none, sa;
    double bs[15], ws[15], ss[15];
    int ok = 1;
    for (uint32_t k = 0; k < repeat; k++) {
        int ok1 = 0, ok2 = 0;
        bs[k] = run(&c, &d, dir, 0, ret_batch, &none, &ok1);
        ws[k] = run(&c, &d, dir, 1, ret_batch, &sa, &ok2);
        ss[k] = sa.secs;
        ok = ok && ok1 && ok2 && bs[k] > 0 && ws[k] > 0 && sa.rep.chunks > 0;
    }
    double base = median(bs, repeat), with = median(ws, repeat);
    sa.secs = median(ss, repeat);
    uint64_t live = (uint64_t)((c.points + 1) / 2) * c.seconds;
    printf("{\"bench\":\"retention_ingest\",\"points\":%u,\"seconds\":%u,\"batch\":%u,\"ret_batch\":%u,\"enc\":1,"
           "\"zstd\":1,\"sync\":\"always\",\"repeat\":%u,\"live_values\":%" PRIu64 ",\"base_s\":%.3f,\"with_sweep_s\":%.3f,"
           "\"base_values_per_s\":%.0f,\"with_sweep_values_per_s\":%.0f,\"ratio\":%.3f,\"sweep_s\":%.3f,"
           "\"sweep_events\":%" PRIu64 ",\"sweep_chunks\":%" PRIu64 ",\"verify\":\"%s\"}\n",
           c.points, c.seconds, c.batch, ret_batch, repeat, live, base, with, live / base, live / with, base / with, sa.secs,
           sa.rep.events, sa.rep.chunks, ok ? "ok" : "FAILED");
    eb_data_free(&d);
    if (c.dir == tmpl) eb_rmrf(tmpl);
    return ok ? 0 : 1;
}
