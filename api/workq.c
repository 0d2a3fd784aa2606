/* api/workq.c -- see workq.h. */
#include "api/workq.h"

#include "api/loopq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct sr_workq_op {
    char op[72];
    size_t running, queued;
    uint64_t bytes;
    sr_work *head, *tail; /* waiting, oldest first */
    struct sr_workq_op *next;
} opq;

struct sr_workq {
    uv_loop_t *loop;
    sr_workq_limits lim;
    opq *ops; /* every operator with a job waiting or running (2) */
    opq *rr;  /* where the next round-robin pass starts */
    size_t running, queued;
};

void sr_workq_limits_default(sr_workq_limits *l)
{
    l->running_max = 4;
    l->running_per_op = 2;
    l->queued_max = 4096;
    l->queued_per_op = 64;
    l->bytes_per_op = 64u << 20;
}

int sr_workq_new(uv_loop_t *loop, const sr_workq_limits *l, sr_workq **out)
{
    sr_workq *q = calloc(1, sizeof *q);
    if (!q) return SR_ENOMEM;
    q->loop = loop;
    q->lim = *l;
    if (!q->lim.running_max) q->lim.running_max = 1;
    if (!q->lim.running_per_op) q->lim.running_per_op = 1;
    *out = q;
    return SR_OK;
}

void sr_workq_free(sr_workq *q)
{
    if (!q) return;
    SR_ASSERT(!q->running && !q->queued);
    while (q->ops) {
        opq *o = q->ops;
        q->ops = o->next;
        free(o);
    }
    free(q);
}

static opq *op_find(const sr_workq *q, const char *op)
{
    for (opq *o = q->ops; o; o = o->next)
        if (!strcmp(o->op, op)) return o;
    return NULL;
}

static void op_maybe_free(sr_workq *q, opq *o)
{
    if (o->running || o->queued) return;
    for (opq **x = &q->ops; *x; x = &(*x)->next)
        if (*x == o) {
            *x = o->next;
            break;
        }
    if (q->rr == o) q->rr = o->next;
    free(o);
}

void sr_thread_background(void)
{
    static _Thread_local int done;
    if (done) return;
    done = 1;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int cur = getpriority(PRIO_PROCESS, (id_t)tid);
    if (cur < SR_BACKGROUND_NICE) (void)setpriority(PRIO_PROCESS, (id_t)tid, SR_BACKGROUND_NICE);
}

static _Thread_local int is_loop;
void sr_thread_mark_loop(void) { is_loop = 1; }
int sr_thread_is_loop(void) { return is_loop; }

static void on_work(uv_work_t *uw)
{
    sr_work *w = SR_CONTAINER(uw, sr_work, uw);
    sr_thread_background(); /* (4) */
    w->work(w);
}

static void dispatch(sr_workq *q);

static void finish(sr_work *w, int status)
{
    sr_workq *q = w->q;
    opq *o = w->o;
    o->running--;
    q->running--;
    o->bytes -= w->bytes;
    w->o = NULL;
    op_maybe_free(q, o);
    w->done(w, status);
}

static void on_after(uv_work_t *uw, int status)
{
    sr_work *w = SR_CONTAINER(uw, sr_work, uw);
    sr_workq *q = w->q;
    finish(w, status ? SR_ECLOSED : SR_OK);
    dispatch(q);
}

/* Start waiting jobs while there is room: operators in turn, from rr. */
static void dispatch(sr_workq *q)
{
    while (q->queued && q->running < q->lim.running_max) {
        opq *start = q->rr ? q->rr : q->ops, *o = start, *pick = NULL;
        do {
            if (o->head && o->running < q->lim.running_per_op) {
                pick = o;
                break;
            }
            o = o->next ? o->next : q->ops;
        } while (o != start);
        if (!pick) return; /* every waiting operator is at its share */
        sr_work *w = pick->head;
        pick->head = w->next;
        if (!pick->head) pick->tail = NULL;
        pick->queued--;
        q->queued--;
        pick->running++;
        q->running++;
        q->rr = pick->next ? pick->next : q->ops;
        if (uv_queue_work(q->loop, &w->uw, on_work, on_after) != 0) finish(w, SR_ECLOSED);
    }
}

int sr_workq_submit(sr_workq *q, const char *op, uint64_t bytes, int must, sr_work *w)
{
    opq *o = op_find(q, op);
    if (!must) {
        if (q->queued >= q->lim.queued_max) return SR_EFULL;
        if (o && o->queued >= q->lim.queued_per_op) return SR_EFULL;
        if (o && o->bytes && o->bytes + bytes > q->lim.bytes_per_op) return SR_EFULL;
    }
    if (!o) {
        if (!(o = calloc(1, sizeof *o))) return SR_ENOMEM;
        snprintf(o->op, sizeof o->op, "%s", op);
        o->next = q->ops;
        q->ops = o;
    }
    w->q = q;
    w->o = o;
    w->bytes = bytes;
    w->next = NULL;
    if (o->tail) o->tail->next = w;
    else o->head = w;
    o->tail = w;
    o->queued++;
    q->queued++;
    o->bytes += bytes;
    dispatch(q);
    return SR_OK;
}

size_t sr_workq_pending(const sr_workq *q, const char *op)
{
    if (!q) return 0;
    if (!op) return q->queued + q->running;
    const opq *o = op_find(q, op);
    return o ? o->queued + o->running : 0;
}

size_t sr_workq_running(const sr_workq *q, const char *op)
{
    if (!q) return 0;
    if (!op) return q->running;
    const opq *o = op_find(q, op);
    return o ? o->running : 0;
}
