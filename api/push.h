/*
 * api/push.h -- push to the apps (R-AP-17, docs/requests.md "Push to apps").
 *
 * Monitor values and the outcomes of async requests are POSTed to the app's
 * registered push URL (the registry's RegistryPut.url of the app):
 *
 *   POST {url}/monitors/{monitorId}   {"monitorId":"M…","values":[…]}
 *   POST {url}/requests/{requestId}   what GET /api/v1/requests/{id} answers
 *
 * signed with the platform key (X-Suiro-Signature: ES256, raw r||s over the
 * exact body bytes), with an X-Suiro-Delivery id: the seq of the event that
 * produced the message, so the same on retries and after a restart. Per
 * app: FIFO, one transfer in flight (a receiver sees values in order),
 * retried with exponential back-off until it is delivered (HTTP 2xx) or
 * dropped by the bound (max_queue; the oldest message that is not in
 * flight goes, with an alarm event at most once a minute). Apps are served
 * in parallel through one libcurl multi handle driven by the libuv loop.
 *
 * Durable without a second store (R-AP-17, docs/durability.md "Pushes"):
 * every message is derived from a durable event (a monitor's values:
 * Measurements.monitor_id; an async request's outcome: its app-level final
 * RequestTransition, RequestCreated.async), and each app has a delivered mark (a PushMark
 * event, the `pushq` index row: every message of an event at or below it
 * was delivered or dropped), written after deliveries at most once per
 * mark_every_ms and at a clean stop. The queues live in memory; at start
 * sr_push_recover derives again, from the log, the messages of the events
 * after each app's mark. A message delivered (2xx) after the last durable
 * mark is sent again after a crash, with the same id and body: at most
 * mark_every_ms of deliveries plus the one in flight.
 *
 * Every function is called on the loop's thread.
 */
#ifndef SR_PUSH_H
#define SR_PUSH_H

#include "engine/records.h"
#include "engine/suiro.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

typedef struct sr_push sr_push;

typedef struct sr_push_opts {
    uint32_t max_queue;          /* messages per app, in flight included (default 10000) */
    uint32_t first_backoff_ms;   /* wait after the first failure (default 500), doubling */
    uint32_t max_backoff_ms;     /* longest wait between attempts (default 60000) */
    uint32_t connect_timeout_ms; /* per attempt (default 5000) */
    uint32_t timeout_ms;         /* per attempt, whole transfer (default 10000) */
    uint32_t mark_every_ms;      /* an app's delivered mark: at most one write this often (default 1000) */
} sr_push_opts;

/* Defaults (above) into o. */
void sr_push_opts_default(sr_push_opts *o);

/* Open on loop: loads DATA_DIR/platform-key.pem (a key of the table's
 * signature algorithms, storage/crypto.h: ES256, ES384, PS256, EdDSA;
 * anything else is SR_ECRYPTO) and sets up libcurl. o NULL: the defaults; a 0 field takes its
 * default. On failure err says why. */
SR_MUST_CHECK int sr_push_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, const sr_push_opts *o,
                               sr_push **out, char *err, size_t errlen);

/* Queue POST {url}/{path_suffix} with body (borrowed; serialized compact at
 * once) for app of operator op, the message of the durable event seq (at
 * most one message per event and app; its X-Suiro-Delivery id is the seq).
 * The URL is looked up in the registry now; an app with no push URL (or
 * none registered) is not an error: SR_OK, nothing queued; nor is a seq at
 * or below the app's mark or already queued (nothing queued). Calls come in
 * seq order per app. SR_ECLOSED after sr_push_dispose. */
SR_MUST_CHECK int sr_push_enqueue(sr_push *p, const char *op, const char *app, const char *path_suffix,
                                  json_t *body, uint64_t seq);

/* Recovery at start, before anything is served: every event after the
 * lowest mark (`pushq`) is given to fn, which calls sr_push_enqueue for the
 * messages it derives (those at or below their app's mark are skipped);
 * then the marks move (one command, waited for): the start of the durable
 * pushes and every app with nothing pending to the end of the scan, an app
 * with messages pending to just below its first. The first start of a data
 * directory (no start mark) reads nothing. out (may be NULL): what it did. */
typedef void (*sr_push_derive_fn)(void *ctx, const sr_event_view *ev);
typedef struct sr_push_recovery {
    uint64_t from, to; /* seqs read: [from, to] (from 0: none) */
    uint64_t events;
    size_t pending;    /* messages queued for delivery */
} sr_push_recovery;
SR_MUST_CHECK int sr_push_recover(sr_push *p, sr_push_derive_fn fn, void *ctx, sr_push_recovery *out);

/* Per-app counters (tests, logs). queued counts the messages waiting now,
 * the one in flight included. SR_ENOTFOUND if nothing was ever queued for
 * that app. */
typedef struct sr_push_counts {
    uint64_t delivered; /* answered 2xx */
    uint64_t retried;   /* failed attempts (each is retried, or dropped by the bound) */
    uint64_t dropped;   /* dropped by the bound, or at dispose */
    uint64_t queued;
} sr_push_counts;
SR_MUST_CHECK int sr_push_stats(sr_push *p, const char *op, const char *app, sr_push_counts *out);
/* Each app that was ever queued for, with its counters (the metrics, on the loop). */
void sr_push_each(sr_push *p, void (*fn)(void *ctx, const char *op, const char *app, const sr_push_counts *c),
                  void *ctx);

/* Stop: in-flight transfers are aborted, what waits is dropped (one log line
 * per app, with its counters), the handles are closed. Call before the
 * server walks the loop, and before the engine is closed; enqueue fails
 * afterwards. Free after the loop ran the close callbacks. NULL is a no-op. */
void sr_push_dispose(sr_push *p);
void sr_push_free(sr_push *p);

/* Invariant check (push.c INVARIANTS; codecs/base/sr_alloc.h SR_INVARIANT):
 * NULL when every app's queue and transfer state and the socket list agree,
 * else a static string naming what does not. O(queued messages). */
const char *sr_push_check(const sr_push *p);
/* Tests only: break one invariant of the most recently created app (what,
 * below) to show that the check names it; -what undoes it. */
enum {
    SR_PUSH_BREAK_COUNT = 1,  /* n off by one */
    SR_PUSH_BREAK_ATTEMPTED,  /* the message behind the head marked attempted */
    SR_PUSH_BREAK_STALL,      /* a waiting app no longer waiting (undo: waiting again) */
    SR_PUSH_BREAK_ORDER,      /* the first two messages' seqs swapped */
    SR_PUSH_BREAK_MARK,       /* the mark moved past the head */
};
void sr_push_test_break(sr_push *p, int what);

#endif
