/* tests/api/test_loginguard.c -- the login guard (api/loginguard.h).
 * The throttle, table-driven with the time passed in: free failures, the
 * back-off's growth and cap, a success clearing it, the address bucket, the
 * principal bucket that locks only addresses that failed (the owner still
 * logs in from a fresh address), independence of addresses and principals,
 * the bound on records, checks in flight, hammering during a back-off. The
 * guard, with its threads and a libuv loop: an unknown ID runs the same
 * scrypt as a known one, the queue's bounds (per address, overall,
 * displacement of the busiest address), addresses served in turn, every job
 * completed once, also when the guard stops. */
#include "api/loginguard.h"
#include "engine/secret.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the throttle, table-driven ------------------------------------------ */

enum { CHK = 'C', FAIL = 'F', SUCC = 'S', START = 'B', CANCEL = 'X', REFUSED = 'R' };

typedef struct step {
    char op;
    const char *principal, *addr;
    uint64_t t;
    int want;          /* CHK: the verdict */
    int64_t want_retry; /* CHK: -1 ignore */
} step;

typedef struct scenario {
    const char *name;
    sr_login_policy p;
    const step *steps;
} scenario;

static sr_login_policy pol(uint32_t free_f, uint32_t max_ms, uint32_t addr_f, uint32_t addr_ms, uint32_t pr_f,
                           uint32_t pr_ms)
{
    sr_login_policy p;
    sr_login_policy_default(&p);
    p.free_failures = free_f;
    p.backoff_max_ms = max_ms;
    p.address_failures = addr_f;
    p.address_refill_ms = addr_ms;
    p.principal_failures = pr_f;
    p.principal_refill_ms = pr_ms;
    p.table_max = 64;
    return p;
}

#define P "g|op|G1"
#define Q "g|op|G2"
#define A "10.0.0.1"
#define B "10.0.0.2"
#define END {0, NULL, NULL, 0, 0, 0}

/* the pair's back-off: 3 free failures, then 1 s doubling, at most 8 s */
static const step backoff[] = {
    {CHK, P, A, 0, SR_LG_OK, 0},     {FAIL, P, A, 0, 0, 0},           {FAIL, P, A, 0, 0, 0},
    {CHK, P, A, 0, SR_LG_OK, 0},     {FAIL, P, A, 0, 0, 0}, /* 3rd: 1 s */
    {CHK, P, A, 0, SR_LG_BACKOFF, 1000},   {CHK, P, A, 999, SR_LG_BACKOFF, 1},
    {CHK, P, A, 1000, SR_LG_OK, 0},  {FAIL, P, A, 1000, 0, 0}, /* 4th: 2 s */
    {CHK, P, A, 2000, SR_LG_BACKOFF, 1000}, {CHK, P, A, 3000, SR_LG_OK, 0},
    {FAIL, P, A, 3000, 0, 0}, /* 5th: 4 s */
    {CHK, P, A, 3000, SR_LG_BACKOFF, 4000}, {FAIL, P, A, 7000, 0, 0}, /* 6th: 8 s */
    {CHK, P, A, 7000, SR_LG_BACKOFF, 8000}, {FAIL, P, A, 15000, 0, 0}, /* 7th: 16 s, capped at 8 */
    {CHK, P, A, 15000, SR_LG_BACKOFF, 8000},
    {CHK, P, B, 15000, SR_LG_OK, 0}, /* another address: not concerned */
    {CHK, Q, A, 15000, SR_LG_OK, 0}, /* another principal from the same address */
    {SUCC, P, A, 23000, 0, 0},       /* a success clears the pair */
    {CHK, P, A, 23000, SR_LG_OK, 0}, {FAIL, P, A, 23000, 0, 0},
    {CHK, P, A, 23000, SR_LG_OK, 0}, /* free failures again */
    END};

/* the address bucket: 5 failures over any principals, one more per second */
static const step address[] = {
    {FAIL, "g|op|X1", A, 0, 0, 0}, {FAIL, "g|op|X2", A, 0, 0, 0}, {FAIL, "a|op|X3", A, 0, 0, 0},
    {FAIL, "g|o2|X4", A, 0, 0, 0}, {FAIL, "g|o3|X5", A, 0, 0, 0},
    {CHK, "g|op|X6", A, 0, SR_LG_ADDRESS, 1000}, /* every login from A, any principal */
    {CHK, "g|op|X1", A, 0, SR_LG_ADDRESS, 1000},
    {CHK, "g|op|X6", B, 0, SR_LG_OK, 0},         /* B has its own budget */
    {CHK, "g|op|X1", B, 0, SR_LG_OK, 0},
    {CHK, "g|op|X6", A, 999, SR_LG_ADDRESS, 1},
    {CHK, "g|op|X6", A, 1000, SR_LG_OK, 0},
    {FAIL, "g|op|X6", A, 1000, 0, 0},
    {CHK, "g|op|X7", A, 1500, SR_LG_ADDRESS, 500},
    {SUCC, "g|op|X7", A, 1500, 0, 0}, /* a success elsewhere refills nothing */
    {CHK, "g|op|X8", A, 1500, SR_LG_ADDRESS, 500},
    {CHK, "g|op|X8", A, 2000, SR_LG_OK, 0},
    END};

/* the principal bucket: 3 failures over all addresses, then only addresses
 * that failed for it are refused -- a flood from A cannot lock P out of B */
static const step principal[] = {
    {FAIL, P, A, 0, 0, 0}, {FAIL, P, A, 0, 0, 0}, {FAIL, P, A, 0, 0, 0},
    {CHK, P, A, 0, SR_LG_PRINCIPAL, 10000},
    {CHK, P, B, 0, SR_LG_OK, 0},  /* the owner, from a fresh address */
    {SUCC, P, B, 0, 0, 0},
    {CHK, P, B, 0, SR_LG_OK, 0},
    {FAIL, P, B, 0, 0, 0},        /* B failed for P now: it is locked too */
    {CHK, P, B, 0, SR_LG_PRINCIPAL, 10000},
    {CHK, Q, A, 0, SR_LG_OK, 0},  /* other principals from A */
    {CHK, P, "10.0.0.3", 0, SR_LG_OK, 0},
    {CHK, P, A, 5000, SR_LG_PRINCIPAL, 5000},
    {CHK, P, A, 10000, SR_LG_OK, 0}, /* refilled */
    END};

/* checks in flight count against the pair's free failures: a burst of
 * concurrent guesses gets no more checks than sequential ones */
static const step inflight[] = {
    {START, P, A, 0, 0, 0}, {START, P, A, 0, 0, 0},
    {CHK, P, A, 0, SR_LG_OK, 0},
    {START, P, A, 0, 0, 0},
    {CHK, P, A, 0, SR_LG_BACKOFF, 1000}, /* 3 in flight = the free failures */
    {CHK, P, B, 0, SR_LG_OK, 0},         /* another address: its own */
    {FAIL, P, A, 10, 0, 0},              /* 1 failed + 2 in flight */
    {CHK, P, A, 10, SR_LG_BACKOFF, 1000},
    {CANCEL, P, A, 10, 0, 0},            /* one never ran (displaced) */
    {CHK, P, A, 10, SR_LG_OK, 0},        /* 1 failed + 1 in flight */
    {SUCC, P, A, 20, 0, 0},              /* clears the pair (its in-flight count too) */
    {CHK, P, A, 20, SR_LG_OK, 0},
    END};

/* an attempt refused during the back-off prolongs it (the pair only) */
static const step hammer[] = {
    {FAIL, P, A, 0, 0, 0}, {FAIL, P, A, 0, 0, 0}, {FAIL, P, A, 0, 0, 0}, /* 1 s */
    {CHK, P, A, 500, SR_LG_BACKOFF, 500},
    {REFUSED, P, A, 500, 0, 0},               /* 4th: 2 s from 500 */
    {CHK, P, A, 1000, SR_LG_BACKOFF, 1500},
    {REFUSED, P, A, 1000, 0, 0},              /* 5th: 4 s from 1000 */
    {CHK, P, A, 4999, SR_LG_BACKOFF, 1},
    {CHK, P, B, 4999, SR_LG_OK, 0},           /* not another address */
    {CHK, "g|op|G9", A, 4999, SR_LG_OK, 0},   /* nor the address's budget */
    {CHK, P, A, 5000, SR_LG_OK, 0},
    END};

static const scenario scenarios[] = {
    {"backoff", {0}, backoff},
    {"address", {0}, address},
    {"principal", {0}, principal},
    {"inflight", {0}, inflight},
    {"hammer", {0}, hammer},
};

Test(lthr, table)
{
    sr_login_policy ps[] = {pol(3, 8000, 1000, 1, 1000, 1), pol(1000, 8000, 5, 1000, 1000, 1),
                            pol(1000, 8000, 1000, 1, 3, 10000), pol(3, 8000, 1000, 1, 1000, 1),
                            pol(3, 8000, 4, 1000000, 1000, 1)};
    for (size_t s = 0; s < sizeof scenarios / sizeof *scenarios; s++) {
        sr_lthr *t = sr_lthr_new(&ps[s]);
        cr_assert_not_null(t);
        for (size_t i = 0; scenarios[s].steps[i].op; i++) {
            const step *x = &scenarios[s].steps[i];
            if (x->op == CHK) {
                uint64_t retry = 12345;
                int v = sr_lthr_check(t, x->principal, x->addr, x->t, &retry);
                cr_assert_eq(v, x->want, "%s step %zu (%s from %s at %llu): %s, want %s", scenarios[s].name, i,
                             x->principal, x->addr, (unsigned long long)x->t, sr_lg_name(v), sr_lg_name(x->want));
                if (x->want_retry >= 0)
                    cr_assert_eq(retry, (uint64_t)x->want_retry, "%s step %zu: retry %llu ms, want %lld",
                                 scenarios[s].name, i, (unsigned long long)retry, (long long)x->want_retry);
            } else if (x->op == START)
                sr_lthr_start(t, x->principal, x->addr, x->t);
            else if (x->op == CANCEL)
                sr_lthr_cancel(t, x->principal, x->addr);
            else if (x->op == REFUSED)
                sr_lthr_refused(t, x->principal, x->addr, x->t);
            else
                sr_lthr_result(t, x->principal, x->addr, x->op == SUCC, x->t);
        }
        sr_lthr_free(t);
    }
}

/* the table never holds more than table_max records; the least recently
 * touched go first (the recent locks stay), and removal in the middle
 * (successes) keeps the table consistent */
Test(lthr, eviction_bound)
{
    sr_login_policy p = pol(1, 300000, 1000000, 1, 1000000, 1);
    p.table_max = 64;
    sr_lthr *t = sr_lthr_new(&p);
    char pr[64], ad[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(pr, sizeof pr, "g|op|G%d", i);
        snprintf(ad, sizeof ad, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        sr_lthr_result(t, pr, ad, 0, 1000);
        cr_assert_leq(sr_lthr_size(t), 64u);
        if (i % 7 == 3) { /* a success of an older pair still held */
            snprintf(pr, sizeof pr, "g|op|G%d", i - 2);
            snprintf(ad, sizeof ad, "10.%d.%d.%d", ((i - 2) >> 16) & 255, ((i - 2) >> 8) & 255, (i - 2) & 255);
            sr_lthr_result(t, pr, ad, 1, 1000);
            uint64_t r;
            cr_assert_eq(sr_lthr_check(t, pr, ad, 1000, &r), SR_LG_OK, "cleared at %d", i);
        }
    }
    cr_assert_eq(sr_lthr_size(t), 64u, "full, not more");
    uint64_t r;
    for (int i = 19999; i > 19999 - 15; i--) { /* the newest pairs are still locked */
        if (i % 7 == 1) continue;              /* (cleared by a success at i + 2) */
        snprintf(pr, sizeof pr, "g|op|G%d", i);
        snprintf(ad, sizeof ad, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        cr_assert_eq(sr_lthr_check(t, pr, ad, 1000, &r), SR_LG_BACKOFF, "pair %d", i);
    }
    cr_assert_eq(sr_lthr_check(t, "g|op|G0", "10.0.0.0", 1000, &r), SR_LG_OK, "the oldest was forgotten");
    sr_lthr_free(t);
}

Test(lthr, addresses)
{
    static const struct {
        const char *peer, *want;
    } cases[] = {
        {"127.0.0.2:1883", "127.0.0.2"},
        {"10.1.2.3:5", "10.1.2.3"},
        {"[2001:db8::1]:5000", "2001:db8::/64"},
        {"[2001:db8::ffff:2]:1", "2001:db8::/64"}, /* the same /64: one host */
        {"[2001:db8:0:1::1]:1", "2001:db8:0:1::/64"},
        {"[::ffff:10.0.0.1]:1", "10.0.0.1"},
        {"[::1]:1883", "::/64"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        sr_login_addr_peer(cases[i].peer, out);
        cr_assert_str_eq(out, cases[i].want, "%s", cases[i].peer);
    }
    char k[160];
    sr_login_principal('a', "op", "APP", k, sizeof k);
    cr_assert_str_eq(k, "a|op|APP");
}

/* ---- the guard ------------------------------------------------------------ */

typedef struct tjob {
    sr_login_job lj;
    int done, verdict, ok, checked, order;
} tjob;

static int done_seq;

static void tdone(sr_login_job *lj)
{
    tjob *t = SR_CONTAINER(lj, tjob, lj);
    t->done++;
    t->order = ++done_seq;
    t->verdict = lj->verdict;
    t->ok = lj->ok;
    t->checked = lj->checked;
}

static void tjob_init(tjob *t, const char *secret, const char *stored)
{
    memset(t, 0, sizeof *t);
    snprintf(t->lj.secret, sizeof t->lj.secret, "%s", secret);
    sr_buf_init(&t->lj.stored);
    if (stored) cr_assert_eq(sr_buf_append(&t->lj.stored, stored, strlen(stored)), SR_OK);
    t->lj.done = tdone;
}

static void on_tick(uv_timer_t *h) { (*(int *)h->data)++; }

/* run the loop until every job is done (bounded: 60 s) */
static void run_until(uv_loop_t *loop, tjob **js, size_t n)
{
    uv_timer_t tm;
    int ticks = 0;
    uv_timer_init(loop, &tm);
    tm.data = &ticks;
    uv_timer_start(&tm, on_tick, 100, 100);
    for (;;) {
        size_t d = 0;
        for (size_t i = 0; i < n; i++) d += js[i]->done > 0;
        if (d == n) break;
        cr_assert_lt(ticks, 600, "jobs not done in 60 s");
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void guard_close(uv_loop_t *loop, sr_loginguard *g)
{
    sr_loginguard_stop(g);
    uv_walk(loop, walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0);
    sr_loginguard_free(g);
}

Test(guard, unknown_and_known_take_the_same_check)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_login_policy p;
    sr_login_policy_default(&p);
    sr_loginguard *g;
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    sr_buf h;
    sr_buf_init(&h);
    cr_assert_eq(sr_secret_hash("right", &h), SR_OK);
    char stored[200];
    snprintf(stored, sizeof stored, "%.*s", (int)h.len, (const char *)h.data);
    sr_buf_release(&h);
    tjob known, unknown, malformed, good;
    tjob_init(&known, "wrong", stored);
    tjob_init(&unknown, "wrong", NULL);
    tjob_init(&malformed, "wrong", "scrypt$99$8$1$zz$zz");
    tjob_init(&good, "right", stored);
    uint64_t r;
    cr_assert_eq(sr_loginguard_submit(g, &known.lj, 'g', "op", "GW1", "10.0.0.1", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &unknown.lj, 'g', "op", "NOPE", "10.0.0.2", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &malformed.lj, 'a', "op", "BAD", "10.0.0.3", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &good.lj, 'g', "op", "GW1", "10.0.0.4", &r), SR_LG_OK);
    tjob *all[] = {&known, &unknown, &malformed, &good};
    run_until(&loop, all, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(all[i]->done, 1, "job %d done once", i);
        cr_assert_eq(all[i]->checked, 1, "job %d ran scrypt", i);
        cr_assert_eq(all[i]->verdict, SR_LG_OK);
        cr_assert_eq(all[i]->ok, i == 3, "job %d", i);
        cr_assert_eq(all[i]->lj.secret[0], 0, "the secret is wiped");
    }
    sr_login_stats st;
    sr_loginguard_stats(g, &st);
    cr_assert_eq(st.checks, 4u, "one scrypt each, unknown IDs included");
    cr_assert_eq(st.records, 9u, "3 failures: address, principal and pair records each");
    for (int i = 0; i < 4; i++) sr_buf_release(&all[i]->lj.stored);
    guard_close(&loop, g);
}

Test(guard, queue_bounds_and_displacement)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_login_policy p;
    sr_login_policy_default(&p);
    p.workers = 1;
    p.queue_max = 2;
    p.queue_per_address = 2;
    sr_loginguard *g;
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    sr_loginguard_hold(g, 1);
    tjob a1, a2, a3, b1, c1;
    tjob_init(&a1, "x", NULL);
    tjob_init(&a2, "x", NULL);
    tjob_init(&a3, "x", NULL);
    tjob_init(&b1, "x", NULL);
    tjob_init(&c1, "x", NULL);
    uint64_t r = 0;
    cr_assert_eq(sr_loginguard_submit(g, &a1.lj, 'g', "op", "G1", "A", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &a2.lj, 'g', "op", "G2", "A", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &a3.lj, 'g', "op", "G3", "A", &r), SR_LG_BUSY, "per-address bound");
    cr_assert_eq(r, 1000u);
    cr_assert_eq(a3.done, 0, "a refused job is the caller's: no callback");
    /* full: B has nothing waiting, A has 2: A's newest makes room */
    cr_assert_eq(sr_loginguard_submit(g, &b1.lj, 'g', "op", "G1", "B", &r), SR_LG_OK, "displaces A's newest");
    /* full again, A 1 and B 1: C gets no room */
    cr_assert_eq(sr_loginguard_submit(g, &c1.lj, 'g', "op", "G1", "C", &r), SR_LG_BUSY, "overall bound");
    sr_loginguard_hold(g, 0);
    tjob *all[] = {&a1, &a2, &b1};
    run_until(&loop, all, 3);
    cr_assert_eq(a2.verdict, SR_LG_BUSY);
    cr_assert_eq(a2.checked, 0);
    cr_assert_eq(a2.done, 1);
    cr_assert_eq(a1.verdict, SR_LG_OK);
    cr_assert_eq(a1.checked, 1);
    cr_assert_eq(b1.checked, 1);
    sr_login_stats st;
    sr_loginguard_stats(g, &st);
    cr_assert_eq(st.checks, 2u);
    cr_assert_eq(st.busy, 3u, "a3, a2 (displaced), c1");
    guard_close(&loop, g);
}

Test(guard, stop_completes_every_job_once)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_login_policy p;
    sr_login_policy_default(&p);
    sr_loginguard *g;
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    sr_loginguard_hold(g, 1);
    tjob j1, j2, j3, late;
    tjob_init(&j1, "x", NULL);
    tjob_init(&j2, "x", NULL);
    tjob_init(&j3, "x", NULL);
    tjob_init(&late, "x", NULL);
    uint64_t r;
    cr_assert_eq(sr_loginguard_submit(g, &j1.lj, 'g', "op", "G1", "A", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &j2.lj, 'a', "op", "P1", "B", &r), SR_LG_OK);
    sr_loginguard_pass(g, &j3.lj);
    sr_loginguard_stop(g);
    cr_assert_eq(j1.done, 1);
    cr_assert_eq(j2.done, 1);
    cr_assert_eq(j1.verdict, SR_LG_BUSY);
    cr_assert_eq(j3.done, 1, "a passed job too");
    cr_assert_eq(j3.ok, 1);
    cr_assert_eq(j3.checked, 0);
    cr_assert_eq(sr_loginguard_submit(g, &late.lj, 'g', "op", "G1", "A", &r), SR_LG_BUSY, "stopped: busy");
    guard_close(&loop, g);
    cr_assert_eq(j1.done + j2.done + j3.done + late.done, 3);
}

/* one worker, jobs from A (a flood) and then B: B is served second, not
 * after all of A's (the addresses take turns) */
Test(guard, addresses_take_turns)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_login_policy p;
    sr_login_policy_default(&p);
    p.workers = 1;
    sr_loginguard *g;
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    sr_loginguard_hold(g, 1);
    tjob a[4], b1, c1;
    uint64_t r;
    for (int i = 0; i < 4; i++) {
        tjob_init(&a[i], "x", NULL);
        cr_assert_eq(sr_loginguard_submit(g, &a[i].lj, 'g', "op", "G1", "A", &r), SR_LG_OK);
    }
    tjob_init(&b1, "x", NULL);
    tjob_init(&c1, "x", NULL);
    cr_assert_eq(sr_loginguard_submit(g, &b1.lj, 'a', "op", "APP", "B", &r), SR_LG_OK);
    cr_assert_eq(sr_loginguard_submit(g, &c1.lj, 'a', "op", "APP", "C", &r), SR_LG_OK);
    done_seq = 0;
    sr_loginguard_hold(g, 0);
    tjob *all[] = {&a[0], &a[1], &a[2], &a[3], &b1, &c1};
    run_until(&loop, all, 6);
    cr_assert_eq(a[0].order, 1);
    cr_assert_eq(b1.order, 2, "B waits for one job of A, not four");
    cr_assert_eq(c1.order, 3);
    cr_assert_eq(a[1].order, 4);
    cr_assert_eq(a[3].order, 6, "A's own jobs stay in order");
    guard_close(&loop, g);
}

/* ---- the trail: refusals recorded once per period, the throttle restored -- */

Test(lthr, a_refusal_is_noted_once_per_period)
{
    sr_login_policy p = pol(1, 60000, 100, 1000, 100, 1000);
    sr_lthr *t = sr_lthr_new(&p);
    sr_lthr_start(t, "a|op|x", "10.0.0.1", 0);
    sr_lthr_result(t, "a|op|x", "10.0.0.1", 0, 0); /* one failure: refused 1 s */
    uint64_t r;
    cr_assert_eq(sr_lthr_check(t, "a|op|x", "10.0.0.1", 10, &r), SR_LG_BACKOFF);
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, r, 10), 1, "the first refusal is recorded");
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, r, 500), 0, "not the next ones of its period");
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, 2 * r - 1, 500), 0, "nor a slightly longer one");
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, 2 * r, 600), 1, "a back-off that doubled");
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, 2 * r, 700), 0);
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.1", SR_LG_BACKOFF, 1000, 600 + 2 * r), 1, "the next period's first");
    cr_assert_eq(sr_lthr_note(t, "a|op|x", "10.0.0.2", SR_LG_BACKOFF, 1000, 10 + r), 1, "another pair: its own");
    sr_lthr_free(t);
}

#include "engine/records.h"
#include "engtest.h"
#include "testutil.h"

static void audit1(sr_engine *e, int kind, const char *op, const char *id, int ok, const char *method,
                   const char *reason, const char *src)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, id, (sr_actor_kind)kind, NULL, src};
    cr_assert_eq(sr_cmd_auth(&env, (sr_actor_kind)kind, id, ok, method, reason, &b), SR_OK);
    size_t len = b.len;
    sr_result res;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK);
    cr_assert_eq(res.rc, SR_OK);
    sr_buf_release(&b);
}

/* Failures stored as events are counted again by a new guard (a restart):
 * the pair that failed is still refused, its address bucket is not fresh,
 * a success in the trail clears its pair, a fresh address still gets
 * through; failures older than the policy's window are not read. */
Test(guard, the_throttle_is_rebuilt_from_the_trail)
{
    char *dir = tu_tmpdir("lgrestore");
    sr_engine_opts o = {.sync = SR_ENGINE_SYNC_NONE};
    sr_engine *e;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    for (int i = 0; i < 6; i++) audit1(e, SR_ACTOR_APP, "op", "A1", 0, "password", "bad", "10.0.0.1");
    for (int i = 0; i < 6; i++) audit1(e, SR_ACTOR_GATEWAY, "op", "G1", 0, "password", "bad", "[2001:db8::7]:4000");
    for (int i = 0; i < 6; i++) audit1(e, SR_ACTOR_USER, "", "hanako", 0, "password", "bad", "10.0.0.3");
    audit1(e, SR_ACTOR_USER, "", "hanako", 1, "password", "", "10.0.0.3"); /* cleared by a success */
    audit1(e, SR_ACTOR_APP, "op", "A1", 0, "throttle", "throttled (backoff): retry after 1000 ms", "10.0.0.1");
    /* hammered: a refusal answered "retry after 100 s" */
    audit1(e, SR_ACTOR_APP, "op", "A2", 0, "password", "bad", "10.0.0.1");
    audit1(e, SR_ACTOR_APP, "op", "A2", 0, "throttle", "throttled (backoff): retry after 100000 ms", "10.0.0.1");
    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_login_policy p;
    sr_login_policy_default(&p); /* 5 free failures */
    sr_loginguard *g;
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cr_assert_eq(sr_loginguard_restore(g, e, now), 22, "every login row of the window");
    tjob j;
    tjob_init(&j, "x", NULL);
    uint64_t r = 0;
    cr_assert_eq(sr_loginguard_submit(g, &j.lj, 'a', "op", "A1", "10.0.0.1", &r), SR_LG_BACKOFF);
    cr_assert_gt(r, 2000, "6 failures and the refusal: the back-off of the 7th (4 s), not of the 6th (2 s)");
    cr_assert_eq(sr_loginguard_submit(g, &j.lj, 'a', "op", "A2", "10.0.0.1", &r), SR_LG_BACKOFF);
    cr_assert_gt(r, 90000, "the back-off the refusal was answered, not the one its few failures give");
    cr_assert_eq(sr_loginguard_submit(g, &j.lj, 'g', "op", "G1", "2001:db8::/64", &r), SR_LG_BACKOFF,
                 "a v6 peer's /64 is the pair's address");
    cr_assert_eq(sr_loginguard_submit(g, &j.lj, 'a', "op", "A1", "10.0.0.9", &r), SR_LG_OK, "a fresh address");
    run_until(&loop, (tjob *[]){&j}, 1);
    tjob k;
    tjob_init(&k, "x", NULL);
    cr_assert_eq(sr_loginguard_submit(g, &k.lj, 'u', "", "hanako", "10.0.0.3", &r), SR_LG_OK,
                 "a success in the trail cleared the pair");
    run_until(&loop, (tjob *[]){&k}, 1);
    guard_close(&loop, g);
    /* a throttle of table_max records reads no more rows than that, the newest */
    uv_loop_init(&loop);
    sr_login_policy small = p;
    small.table_max = 8;
    cr_assert_eq(sr_loginguard_open(&loop, &small, &g), SR_OK);
    cr_assert_eq(sr_loginguard_restore(g, e, now), 8);
    guard_close(&loop, g);
    /* the same rows seen from a clock an hour later: outside the window */
    uv_loop_init(&loop);
    cr_assert_eq(sr_loginguard_open(&loop, &p, &g), SR_OK);
    cr_assert_eq(sr_loginguard_restore(g, e, now + 3600 * 1000), 0);
    tjob_init(&j, "x", NULL);
    cr_assert_eq(sr_loginguard_submit(g, &j.lj, 'a', "op", "A1", "10.0.0.1", &r), SR_LG_OK);
    run_until(&loop, (tjob *[]){&j}, 1);
    guard_close(&loop, g);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    tu_rmrf(dir);
    free(dir);
}
