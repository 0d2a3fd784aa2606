/*
 * api/workq.h -- the worker queue: work proportional to a request's data
 * (AP-IF queries and listings, file parts, GW-IF messages too large to
 * validate inline) runs on libuv's thread pool, never on the loop thread,
 * and no operator can take more than its share of it.
 *
 * QUOTAS (per operator, checked on the loop at submit)
 *  running_per_op   jobs of one operator on the pool at once; the others wait
 *                   in the operator's FIFO. Operators with waiting jobs are
 *                   served round-robin as pool slots free up.
 *  running_max      jobs on the pool at once, all operators.
 *  queued_per_op    jobs of one operator waiting; one more is refused
 *                   (SR_EFULL: busy, E9002 with Retry-After) unless the
 *                   caller must not be refused (sr_workq_submit's `must`:
 *                   a GW-IF message whose connection is held meanwhile).
 *  queued_max       jobs waiting, all operators (the same refusal).
 *  bytes_per_op     bytes one operator's jobs hold (waiting and running:
 *                   request bodies, file parts, payload copies); a job that
 *                   would pass it is refused the same way (a lone job of an
 *                   operator holding nothing is always taken).
 *
 * INVARIANTS
 *  (1) A submitted job runs work() once on a pool thread, then done() once on
 *      the loop, in that order, unless it is refused at submit (nothing runs).
 *  (2) The counters are exact: an operator's entry exists while it has a job
 *      waiting or running and is freed with its last one.
 *  (3) One thread: the loop's (submit, done, dispatch); work() runs elsewhere
 *      and must not touch the queue.
 *  (4) Threads that run bulk work (this queue's, the login guard's scrypt)
 *      run at a lower CPU priority (sr_thread_background: nice +10) than the
 *      network loop and the engine's writer, so on a busy machine an
 *      operator's large job delays that operator's answer, not every
 *      operator's latency-sensitive work on the loop.
 */
#ifndef SR_WORKQ_H
#define SR_WORKQ_H

#include "api/loopq.h" /* SR_CONTAINER */
#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sr_workq_limits {
    uint32_t running_max;
    uint32_t running_per_op;
    uint32_t queued_max;
    uint32_t queued_per_op;
    uint64_t bytes_per_op;
} sr_workq_limits;

/* the defaults (docs/configuration.md [server] work_*) */
void sr_workq_limits_default(sr_workq_limits *l);

typedef struct sr_workq sr_workq;
typedef struct sr_work sr_work;

/* Embed in the job's own struct (SR_CONTAINER gets it back). */
struct sr_work {
    void (*work)(sr_work *w);             /* a pool thread */
    void (*done)(sr_work *w, int status); /* the loop; status 0, or an SR_E* if the pool refused it */
    /* the queue's */
    uv_work_t uw;
    sr_workq *q;
    struct sr_workq_op *o;
    uint64_t bytes;
    sr_work *next;
};

SR_MUST_CHECK int sr_workq_new(uv_loop_t *loop, const sr_workq_limits *l, sr_workq **out);
/* Only with no job queued or running (the server drains first). */
void sr_workq_free(sr_workq *q);
/* Queue w (work and done set) for operator op, holding `bytes` until done.
 * SR_OK, or SR_EFULL (refused by a quota: nothing queued, done never runs)
 * or SR_ENOMEM. must: never refuse for the queue's length or bytes. */
SR_MUST_CHECK int sr_workq_submit(sr_workq *q, const char *op, uint64_t bytes, int must, sr_work *w);
/* jobs waiting + running (all operators; or one operator if op) */
size_t sr_workq_pending(const sr_workq *q, const char *op);
size_t sr_workq_running(const sr_workq *q, const char *op);

/* Lower the calling thread's CPU priority once (invariant 4): nice
 * SR_BACKGROUND_NICE for this thread only (Linux: nice is per thread). Best
 * effort: a refusal leaves the thread as it was. */
#define SR_BACKGROUND_NICE 10
void sr_thread_background(void);

/* The network loop's thread says so once (sr_server_run); sr_thread_is_loop
 * is then 1 on that thread only. What must never run on the loop (a GW-IF
 * message's or an AP-IF control request's signature verification,
 * api/sigcheck.h sr_sig_check_now, docs/signatures.md "Cost") counts where
 * it ran with it: the metrics suiro_gw_sig_verify_total{thread} and
 * suiro_app_sig_verify_total{thread}. */
void sr_thread_mark_loop(void);
int sr_thread_is_loop(void);

#endif
