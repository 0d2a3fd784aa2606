/* api/loopq.c -- see loopq.h. */
#include "api/loopq.h"

static void on_async(uv_async_t *a) { sr_loopq_drain(a->data); }

void sr_loopq_init(sr_loopq *q, uv_loop_t *loop, sr_loopq_fn fn, void *ctx)
{
    q->head = q->tail = NULL;
    q->fn = fn;
    q->ctx = ctx;
    pthread_mutex_init(&q->mu, NULL);
    uv_async_init(loop, &q->async, on_async);
    q->async.data = q;
    q->ready = 1;
}

void sr_loopq_push(sr_loopq *q, sr_loopq_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = it;
    else q->head = it;
    q->tail = it;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->async);
}

void sr_loopq_drain(sr_loopq *q)
{
    if (!q->ready) return;
    pthread_mutex_lock(&q->mu);
    sr_loopq_item *it = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (it) {
        sr_loopq_item *n = it->next;
        q->fn(q->ctx, it);
        it = n;
    }
}

void sr_loopq_destroy(sr_loopq *q)
{
    if (!q->ready) return;
    pthread_mutex_destroy(&q->mu);
    q->ready = 0;
}
