/*
 * api/loopq.h -- hand work from any thread (the engine's writer, libuv's
 * thread pool) to the libuv loop: a mutex-guarded FIFO and a uv_async that
 * drains it on the loop. The one place this plumbing lives; the server's
 * MQTT side, the HTTP bindings and the broker each own one queue.
 */
#ifndef SR_LOOPQ_H
#define SR_LOOPQ_H

#include <pthread.h>
#include <stddef.h>
#include <uv.h>

typedef struct sr_loopq_item {
    struct sr_loopq_item *next;
} sr_loopq_item;

/* The struct around an embedded item. */
#define SR_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef void (*sr_loopq_fn)(void *ctx, sr_loopq_item *it);

typedef struct sr_loopq {
    uv_async_t async; /* closed with the loop's other handles */
    pthread_mutex_t mu;
    sr_loopq_item *head, *tail;
    sr_loopq_fn fn;
    void *ctx;
    int ready;
} sr_loopq;

void sr_loopq_init(sr_loopq *q, uv_loop_t *loop, sr_loopq_fn fn, void *ctx);
/* Any thread: queue it and wake the loop. */
void sr_loopq_push(sr_loopq *q, sr_loopq_item *it);
/* The loop thread: run fn on every queued item, oldest first (also called
 * directly to flush at shutdown). */
void sr_loopq_drain(sr_loopq *q);
void sr_loopq_destroy(sr_loopq *q);

#endif
