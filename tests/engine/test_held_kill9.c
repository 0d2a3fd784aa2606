/* tests/engine/test_held_kill9.c -- the `held` index database (engine/
 * origins.c invariant 6, docs/cluster.md "Held values") across real
 * crashes: a child process (a fork of this test, before any engine is open
 * in it) is node c's consumer: it submits node a's events with their
 * origins, one at a time (sync=always), in a stream order that broke --
 * half of each data point's values BEFORE that point's MasterPut (held),
 * then the MasterPut (the mapping: the held values are released in its
 * group), then the rest (stored directly) -- and writes the index of every
 * acknowledged submit to a pipe. The test kill -9s it at random points
 * (>= 20 times; each run starts the script again from its beginning, as a
 * consumer does from its checkpoint: what is logged already is answered as
 * a duplicate), and after each kill reopens c's engine and checks:
 *  - a data point is mapped here iff its MasterPut was acknowledged (or is
 *    the one submit in flight, durable but unanswered);
 *  - every acknowledged value of a mapped point is stored on it exactly
 *    once, with its value, and nothing else is (sr_engine_range equals the
 *    model: no value lost, none twice, none on another point);
 *  - the held count (sr_engine_cluster_held) equals the model: the
 *    acknowledged values whose point is not mapped yet (held until the
 *    mapping was acknowledged, released after);
 *  - the index equals one rebuilt from the log (content hash).
 * A last run goes to the end unkilled: nothing held, every value stored.
 * The check fails when a release is not in the same group as its mapping
 * (release_held, engine/writer.c): a crash between leaves the point mapped
 * and its values held for ever. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/records.h"
#include "engsuite.h"

enum { NP = 6, NV = 48, KILLS = 22 };
static const sr_vtype NUM[] = {SR_VT_NUMBER};
static const int64_t T0 = 1700000000000;

static char *adir, *cdir;
static pid_t child = -1;

static void fini(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
}
TestSuite(held_kill9, .fini = fini, .timeout = 900);

/* the script: node a's events in the order c gets them */
typedef struct item {
    uint64_t aseq;
    int cls;   /* SR_EVCLASS_REG or _DATA */
    int point; /* 0..NP-1: a data point's MasterPut or a value of it; -1: another event */
    int value; /* a value's index (its ts T0 + value * 1000, its value value + 0.25); -1: a MasterPut */
    sr_buf rec;
} item;
static item script[NP + NV + 64];
static size_t nscript;

/* a's log, in log order, before the reordering */
static item alog[NP + NV + 64];
static size_t nalog;
static uint64_t value_seq[NV]; /* a's seq of each value */

static int grab(void *ctx, const sr_event_view *v)
{
    (void)ctx;
    int cls = sr_event_kind_class(v->kind);
    if (cls == SR_EVCLASS_LOCAL) return 0;
    cr_assert_lt(nalog, sizeof alog / sizeof *alog);
    item *it = &alog[nalog++];
    it->aseq = v->seq;
    it->cls = cls;
    it->point = -1;
    it->value = -1;
    if (v->has_master && v->master.kind == SR_MK_DATA_POINT) {
        int p = -1;
        cr_assert_eq(sscanf(v->master.id, "P%03d", &p), 1, "%s", v->master.id);
        it->point = p;
    }
    for (int i = 0; i < NV; i++)
        if (value_seq[i] == v->seq) {
            it->point = i % NP;
            it->value = i;
        }
    sr_buf_init(&it->rec);
    int pay = sr_engine_cluster_payload(v, "a", &it->rec);
    cr_assert_eq(pay, SR_CLUSTER_SEND, "a's own event %" PRIu64 " is sent as logged", v->seq);
    cr_assert_eq(sr_buf_append(&it->rec, v->rec, v->rec_len), SR_OK);
    return 0;
}

static void push(const item *it) { script[nscript++] = *it; }

/* a: op1's masters (NP data points) and NV values, round robin over the
 * points; the script: every other registry event first, then per data
 * point the first half of its values (held), its MasterPut, the rest. */
static void make_script(void)
{
    static const sr_engine_opts oa = {.cluster_node = "a"};
    sr_engine *a = es_open(&adir, "hk9-a", &oa);
    cr_assert_eq(et_setup_masters(a, "op1", NP, NUM, 1), SR_OK);
    for (int i = 0; i < NV; i++) {
        char id[8];
        snprintf(id, sizeof id, "P%03d", i % NP);
        sr_point_info pi;
        cr_assert_eq(sr_engine_point_info(a, "op1", id, &pi), SR_OK);
        sr_sample s = {.ts = T0 + i * 1000, .quality = SR_Q_GOOD, .v.f = i + 0.25};
        sr_result r;
        cr_assert_eq(et_put(a, "op1", (i % NP) % 2 ? "GW2" : "GW1", pi.point, SR_VT_NUMBER, &s, 1, NULL, &r), SR_OK);
        cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
        value_seq[i] = r.seq;
    }
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(a, 1, grab, NULL, &last), SR_OK);
    es_finish(a, &adir);
    for (size_t i = 0; i < nalog; i++)
        if (alog[i].point < 0) push(&alog[i]);
    for (int p = 0; p < NP; p++) {
        int nv = 0, half = NV / NP / 2;
        for (size_t i = 0; i < nalog; i++)
            if (alog[i].point == p && alog[i].value >= 0 && nv++ < half) push(&alog[i]);
        for (size_t i = 0; i < nalog; i++)
            if (alog[i].point == p && alog[i].value < 0) push(&alog[i]);
        nv = 0;
        for (size_t i = 0; i < nalog; i++)
            if (alog[i].point == p && alog[i].value >= 0 && nv++ >= half) push(&alog[i]);
    }
    cr_assert_eq(nscript, nalog);
}

static const sr_engine_opts OC = {.cluster_node = "c"};

/* The child: c's consumer. Never returns. */
static void consume(int fd)
{
    sr_engine *c = NULL;
    sr_errinfo ei;
    if (sr_engine_open(cdir, &OC, &c, &ei)) {
        fprintf(stderr, "child: open: %s\n", ei.msg);
        _exit(3);
    }
    for (size_t i = 0; i < nscript; i++) {
        sr_origin o = {"a", script[i].aseq, 3, i + 1, script[i].cls == SR_EVCLASS_REG ? 1 : 2};
        sr_result r;
        memset(&r, 0, sizeof r);
        int rc = et_submit_origin(c, script[i].rec.data, script[i].rec.len, &o, &r);
        if (rc) {
            fprintf(stderr, "child: item %zu (a:%" PRIu64 "): %s %s\n", i, script[i].aseq, sr_err_name(rc), r.err.msg);
            _exit(4);
        }
        uint32_t k = (uint32_t)i;
        if (write(fd, &k, sizeof k) != (ssize_t)sizeof k) _exit(5);
    }
    _exit(sr_engine_close(c) ? 6 : 0);
}

/* Run the child until it acknowledged `target` more items (then kill it
 * after a random few hundred microseconds), or to its end (target < 0).
 * The highest index it acknowledged, or -1. */
static long run(long target, unsigned *seed)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(p[0]);
        consume(p[1]);
    }
    close(p[1]);
    long hi = -1, got = 0;
    for (;;) {
        if (target >= 0 && got >= target) break;
        struct pollfd pf = {p[0], POLLIN, 0};
        int n = poll(&pf, 1, 120000);
        cr_assert_gt(n, 0, "the child acknowledged nothing for 120 s");
        uint32_t k;
        ssize_t r = read(p[0], &k, sizeof k);
        if (r == 0) break; /* it ended */
        cr_assert_eq(r, (ssize_t)sizeof k);
        hi = (long)k > hi ? (long)k : hi;
        got++;
    }
    int st = 0;
    if (target >= 0) {
        usleep(rand_r(seed) % 800);
        kill(child, SIGKILL);
    }
    cr_assert_eq(waitpid(child, &st, 0), child);
    child = -1;
    /* what it acknowledged before it died */
    uint32_t k;
    while (read(p[0], &k, sizeof k) == (ssize_t)sizeof k) hi = (long)k > hi ? (long)k : hi;
    close(p[0]);
    if (target < 0) cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the last run ends cleanly (status %d)", st);
    else cr_assert(WIFEXITED(st) ? WEXITSTATUS(st) == 0 : WTERMSIG(st) == SIGKILL, "status %d", st);
    return hi;
}

static size_t stored(sr_engine *e, uint32_t pt, sr_sample **out)
{
    sr_buf samples, strings;
    sr_buf_init(&samples);
    sr_buf_init(&strings);
    int more = 0;
    sr_range_q q = {pt, 0, INT64_MAX, 0, 0, INT64_MIN};
    cr_assert_eq(sr_engine_range(e, &q, &samples, &strings, &more), SR_OK);
    cr_assert_not(more);
    sr_buf_release(&strings);
    *out = (sr_sample *)samples.data;
    return samples.len / sizeof(sr_sample);
}

/* After a kill: items 0..acked were acknowledged; item acked+1 may be
 * durable (the submit in flight). */
static void check(long acked, int round)
{
    sr_engine *c = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(cdir, &OC, &c, &ei), SR_OK, "round %d: %s", round, ei.msg);
    long fl = acked + 1 < (long)nscript ? acked + 1 : -1; /* the item in flight */
    int mapped[NP];
    uint32_t cpt[NP];
    for (int p = 0; p < NP; p++) {
        char id[8];
        snprintf(id, sizeof id, "P%03d", p);
        sr_point_info pi;
        int rc = sr_engine_point_info(c, "op1", id, &pi);
        cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "%s", sr_err_name(rc));
        mapped[p] = rc == SR_OK;
        cpt[p] = mapped[p] ? pi.point : 0;
        long at = -1;
        for (size_t i = 0; i < nscript; i++)
            if (script[i].point == p && script[i].value < 0) at = (long)i;
        if (at <= acked) cr_assert(mapped[p], "round %d: P%03d's MasterPut acknowledged, not mapped", round, p);
        else if (at != fl) cr_assert_not(mapped[p], "round %d: P%03d mapped before its MasterPut", round, p);
    }
    /* the model: the values logged here (acknowledged; the one in flight: either) */
    uint64_t held = 0, oldest = 0;
    cr_assert_eq(sr_engine_cluster_held(c, &held, &oldest, NULL, 0), SR_OK);
    uint64_t want_held = 0;
    int fl_value = fl >= 0 && script[fl].value >= 0 ? script[fl].value : -1;
    for (long i = 0; i <= acked; i++)
        if (script[i].value >= 0 && !mapped[script[i].point]) want_held++;
    if (fl_value >= 0 && !mapped[fl_value % NP]) {
        cr_assert(held == want_held || held == want_held + 1, "round %d: %" PRIu64 " held, the model %" PRIu64
                  " (+1 in flight)", round, held, want_held);
    } else
        cr_assert_eq(held, want_held, "round %d: %" PRIu64 " values held, the model %" PRIu64, round, held, want_held);
    for (int p = 0; p < NP; p++) {
        if (!mapped[p]) continue;
        sr_sample *s = NULL;
        size_t n = stored(c, cpt[p], &s);
        int want[NV], nw = 0, fl_here = fl_value >= 0 && fl_value % NP == p;
        for (long i = 0; i <= acked; i++)
            if (script[i].point == p && script[i].value >= 0) want[nw++] = script[i].value;
        if (fl_here) {
            cr_assert(n == (size_t)nw || n == (size_t)nw + 1, "round %d: P%03d holds %zu values, the model %d (+1)",
                      round, p, n, nw);
            if (n == (size_t)nw + 1) want[nw++] = fl_value;
        } else
            cr_assert_eq(n, (size_t)nw, "round %d: P%03d holds %zu values, the model %d: a value lost, held or twice",
                         round, p, n, nw);
        /* each once, with its value (by ts: the range is in ts order) */
        for (size_t j = 0; j < n; j++) {
            int v = (int)((s[j].ts - T0) / 1000), ok = 0;
            for (int w = 0; w < nw; w++) ok |= want[w] == v;
            cr_assert(ok, "round %d: P%03d holds value %d, not in the model", round, p, v);
            cr_assert_eq(v % NP, p, "round %d: value %d on P%03d: another point's", round, v, p);
            cr_assert_float_eq(s[j].v.f, v + 0.25, 1e-9);
        }
        free(s);
    }
    /* a rebuild equals it */
    uint8_t h[32], h2[32];
    cr_assert_eq(sr_engine_content_hash(c, h), SR_OK);
    cr_assert_eq(sr_engine_close(c), SR_OK);
    cr_assert_eq(sr_engine_rebuild(cdir, &OC, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_open(cdir, &OC, &c, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(c, h2), SR_OK);
    cr_assert_eq(memcmp(h, h2, 32), 0, "round %d: the rebuilt index differs", round);
    cr_assert_eq(sr_engine_close(c), SR_OK);
}

Test(held_kill9, held_values_across_kill9_exactly_once_released_with_their_mapping)
{
    make_script();
    cdir = tu_tmpdir("hk9-c");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    cr_log_info("test_held_kill9: seed %u, %zu items", seed, nscript);
    long acked = -1;
    int kills = 0, while_held = 0;
    for (int round = 0; round < KILLS; round++) {
        /* each run replays from item 0 (duplicates, as a consumer from its
         * checkpoint): killed a few items past what was acknowledged */
        long target = acked + 2 + (long)(rand_r(&seed) % 3);
        long mp = acked + 1;
        while (mp < (long)nscript && script[mp].value >= 0) mp++;
        if (rand_r(&seed) % 2 && mp < (long)nscript && script[mp].point >= 0)
            target = mp; /* items 0..mp-1 acknowledged: killed while the MasterPut (and its releases) is written */
        long hi = run(target, &seed);
        if (hi > acked) acked = hi;
        kills++;
        check(acked, round);
        while_held += acked + 1 < (long)nscript && script[acked + 1].value < 0 && script[acked + 1].point >= 0; /* killed at a mapping */
    }
    cr_assert_geq(kills, 20);
    cr_log_info("test_held_kill9: %d kills, %d of them just before a MasterPut", kills, while_held);
    /* the last run: to the end */
    long hi = run(-1, &seed);
    cr_assert_eq(hi, (long)nscript - 1);
    check(hi, KILLS);
    sr_engine *c = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(cdir, &OC, &c, &ei), SR_OK, "%s", ei.msg);
    uint64_t held = 0, oldest = 0;
    cr_assert_eq(sr_engine_cluster_held(c, &held, &oldest, NULL, 0), SR_OK);
    cr_assert_eq(held, 0, "nothing held at the end");
    cr_assert_eq(sr_engine_close(c), SR_OK);
    for (size_t i = 0; i < nscript; i++) sr_buf_release(&script[i].rec);
    tu_rmrf(cdir);
    free(cdir);
}
