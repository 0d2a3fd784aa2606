/* tests/api/test_workq.c -- the worker queue's bookkeeping (api/workq.c):
 * one operator's share of the pool (running per operator), round-robin
 * between operators, the per-operator and global queue limits, the byte
 * quota, `must` jobs, done() once per job, and the counters back to zero.
 * Jobs block on a semaphore the test releases one at a time, so what runs
 * at once is observed, not guessed; every wait is bounded (5 s). */
#include "api/workq.h"

#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct tjob {
    sr_work w;
    int id;
    int done_status;
    int dones;
} tjob;

static sem_t go;
static atomic_int started_n;
static int started[64]; /* ids in the order they started */
static int ndone;

static void t_work(sr_work *w)
{
    tjob *j = SR_CONTAINER(w, tjob, w);
    int k = atomic_fetch_add(&started_n, 1);
    if (k < 64) started[k] = j->id;
    sem_wait(&go);
}

static void t_done(sr_work *w, int status)
{
    tjob *j = SR_CONTAINER(w, tjob, w);
    j->done_status = status;
    j->dones++;
    ndone++;
}

static void on_tick(uv_timer_t *t) { (void)t; }

static uv_loop_t loop;
static uv_timer_t tick;

static void setup(void)
{
    sem_init(&go, 0, 0);
    atomic_store(&started_n, 0);
    ndone = 0;
    memset(started, 0, sizeof started);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5); /* the loop wakes up to re-check */
}

static void teardown(void)
{
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sem_destroy(&go);
}

/* run the loop until ndone reaches n and started_n reaches s (bounded) */
static void wait_for(int n, int s)
{
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while ((ndone < n || atomic_load(&started_n) < s) && uv_hrtime() < deadline) uv_run(&loop, UV_RUN_ONCE);
    cr_assert(ndone >= n && atomic_load(&started_n) >= s, "timed out: done %d/%d started %d/%d", ndone, n,
              atomic_load(&started_n), s);
}

static void job(tjob *j, int id)
{
    memset(j, 0, sizeof *j);
    j->id = id;
    j->w.work = t_work;
    j->w.done = t_done;
}

TestSuite(workq, .init = setup, .fini = teardown);

Test(workq, one_operator_gets_its_share_then_round_robin)
{
    sr_workq_limits l = {.running_max = 3, .running_per_op = 2, .queued_max = 100, .queued_per_op = 100,
                         .bytes_per_op = 1 << 20};
    sr_workq *q;
    cr_assert_eq(sr_workq_new(&loop, &l, &q), SR_OK);
    tjob a[6], b[2];
    for (int i = 0; i < 6; i++) {
        job(&a[i], 100 + i);
        cr_assert_eq(sr_workq_submit(q, "A", 10, 0, &a[i].w), SR_OK);
    }
    /* A floods: only its share runs, though the pool has room for 3 */
    wait_for(0, 2);
    cr_assert_eq(sr_workq_running(q, "A"), 2);
    cr_assert_eq(sr_workq_pending(q, "A"), 6);
    cr_assert_eq(sr_workq_running(q, NULL), 2);
    /* B comes later and still starts at once: the third slot was kept free */
    job(&b[0], 200);
    job(&b[1], 201);
    cr_assert_eq(sr_workq_submit(q, "B", 10, 0, &b[0].w), SR_OK);
    cr_assert_eq(sr_workq_submit(q, "B", 10, 0, &b[1].w), SR_OK);
    wait_for(0, 3);
    cr_assert_eq(sr_workq_running(q, "B"), 1); /* running_max 3 = 2 of A + 1 of B */
    cr_assert_eq(sr_workq_running(q, NULL), 3);
    /* a slot frees: operators take turns, so B's second job is not behind
     * A's four waiting ones */
    sem_post(&go);
    wait_for(1, 4);
    sem_post(&go);
    wait_for(2, 5);
    int b_started = 0;
    for (int k = 0; k < 5; k++) b_started += started[k] >= 200;
    cr_assert_eq(b_started, 2, "both of B's jobs started within the first five (B's turn came)");
    for (int i = 0; i < 8; i++) sem_post(&go);
    wait_for(8, 8);
    for (int i = 0; i < 6; i++) cr_assert(a[i].dones == 1 && a[i].done_status == SR_OK);
    for (int i = 0; i < 2; i++) cr_assert(b[i].dones == 1 && b[i].done_status == SR_OK);
    cr_assert_eq(sr_workq_pending(q, NULL), 0);
    cr_assert_eq(sr_workq_pending(q, "A"), 0);
    sr_workq_free(q);
}

Test(workq, queue_limits_refuse_one_operator_not_the_other)
{
    sr_workq_limits l = {.running_max = 2, .running_per_op = 1, .queued_max = 5, .queued_per_op = 3,
                         .bytes_per_op = 1 << 20};
    sr_workq *q;
    cr_assert_eq(sr_workq_new(&loop, &l, &q), SR_OK);
    tjob a[8], b[3];
    int accepted = 0;
    for (int i = 0; i < 8; i++) {
        job(&a[i], 100 + i);
        int rc = sr_workq_submit(q, "A", 1, 0, &a[i].w);
        cr_assert(rc == SR_OK || rc == SR_EFULL);
        accepted += rc == SR_OK;
    }
    wait_for(0, 1);
    /* 1 running + 3 waiting; the other 4 were refused */
    cr_assert_eq(accepted, 4);
    cr_assert_eq(sr_workq_pending(q, "A"), 4);
    /* a `must` job (a GW-IF message whose connection waits) is never refused */
    tjob m;
    job(&m, 150);
    cr_assert_eq(sr_workq_submit(q, "A", 1, 1, &m.w), SR_OK);
    /* B is not affected by A's refusals: it has its own share */
    job(&b[0], 200);
    job(&b[1], 201);
    job(&b[2], 202);
    cr_assert_eq(sr_workq_submit(q, "B", 1, 0, &b[0].w), SR_OK);
    wait_for(0, 2);
    cr_assert_eq(sr_workq_running(q, "B"), 1);
    /* the global queue: A 4 waiting (3 + must) ... B adds one: 5 = queued_max */
    cr_assert_eq(sr_workq_submit(q, "B", 1, 0, &b[1].w), SR_OK);
    cr_assert_eq(sr_workq_submit(q, "B", 1, 0, &b[2].w), SR_EFULL);
    for (int i = 0; i < 16; i++) sem_post(&go);
    wait_for(accepted + 1 + 2, accepted + 1 + 2);
    cr_assert_eq(b[2].dones, 0, "a refused job never runs");
    for (int i = 0; i < 8; i++) cr_assert_leq(a[i].dones, 1);
    cr_assert_eq(m.dones, 1);
    cr_assert_eq(sr_workq_pending(q, NULL), 0);
    sr_workq_free(q);
}

Test(workq, bytes_per_operator)
{
    sr_workq_limits l = {.running_max = 4, .running_per_op = 1, .queued_max = 100, .queued_per_op = 100,
                         .bytes_per_op = 100};
    sr_workq *q;
    cr_assert_eq(sr_workq_new(&loop, &l, &q), SR_OK);
    tjob a[3], b;
    job(&a[0], 100);
    job(&a[1], 101);
    job(&a[2], 102);
    job(&b, 200);
    /* a lone job larger than the quota is taken (an operator holding nothing) */
    cr_assert_eq(sr_workq_submit(q, "A", 1000, 0, &a[0].w), SR_OK);
    cr_assert_eq(sr_workq_submit(q, "A", 60, 0, &a[1].w), SR_EFULL);
    cr_assert_eq(sr_workq_submit(q, "B", 60, 0, &b.w), SR_OK);
    sem_post(&go);
    sem_post(&go);
    wait_for(2, 2);
    /* A's bytes are given back with its job */
    cr_assert_eq(sr_workq_submit(q, "A", 60, 0, &a[1].w), SR_OK);
    cr_assert_eq(sr_workq_submit(q, "A", 60, 0, &a[2].w), SR_EFULL);
    sem_post(&go);
    wait_for(3, 3);
    cr_assert_eq(sr_workq_pending(q, NULL), 0);
    sr_workq_free(q);
}

/* Invariant 4: a job runs at a lower CPU priority than the thread that
 * submitted it (the loop), so bulk work yields the CPU to the loop. */
static atomic_int job_nice = -100;

static void nice_work(sr_work *w)
{
    (void)w;
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    atomic_store(&job_nice, errno ? -100 : n);
    atomic_fetch_add(&started_n, 1);
}

Test(workq, jobs_run_at_background_priority)
{
    sr_workq_limits l;
    sr_workq_limits_default(&l);
    sr_workq *q;
    cr_assert_eq(sr_workq_new(&loop, &l, &q), SR_OK);
    int loop_nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    tjob j;
    job(&j, 1);
    j.w.work = nice_work;
    cr_assert_eq(sr_workq_submit(q, "A", 1, 0, &j.w), SR_OK);
    wait_for(1, 1);
    int want = loop_nice > SR_BACKGROUND_NICE ? loop_nice : SR_BACKGROUND_NICE;
    cr_assert_eq(atomic_load(&job_nice), want, "the job ran at nice %d, the loop at %d", atomic_load(&job_nice),
                 loop_nice);
    sr_workq_free(q);
}
