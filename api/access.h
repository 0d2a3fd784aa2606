/*
 * api/access.h -- the reads of AP-IF and GW-IF in the audit trail (R-SE-5,
 * issue #18; docs/admin.md "Audit").
 *
 * Every read an app or a gateway makes (the routes and message kinds the
 * bindings mark as reads) is an entry: who (operator, app or gateway),
 * what (binding, method, route, the data points it named, the values and
 * bytes answered), when, from where and the outcome (status, wire code).
 * Entries are batched per reader: a batch is written as ONE AccessBatch
 * (Event.body 50: the entries packed, codecs/accpack.h; the old AccessEvent,
 * body 48, is no longer written but still read) per (operator, reader)
 * through the writer (sealed by the operator's audit key, one `audit` row,
 * kind "read") every flush_ms, or at once when the entries held reach
 * batch_max (or a batch's string table is full).
 *
 * GUARANTEES
 *  - A read is recorded after it is answered; an entry is lost only by a
 *    crash before its batch is durable: at most the reads of the last
 *    flush_ms (and of the batches the writer had not yet acknowledged).
 *  - A batch the writer cannot take (a full queue, a writer that stopped)
 *    stays held and is tried again at the next flush; a batch it took and
 *    then failed is held again likewise. Entries held (the batches being
 *    filled and those not yet acknowledged) are bounded by buffer_max:
 *    at that bound sr_access_admit says no and the binding refuses the read
 *    (429 E9002) rather than answer it unaudited.
 *  - With reads off ([audit] reads = off) nothing is recorded and nothing
 *    is refused.
 *
 * INVARIANTS
 *  (1) Thread-safe: entries are added on the loop; the writer's completions
 *      arrive on the writer thread; one mutex guards the batches.
 *  (2) The strings of an entry are copied (the caller's may go at once);
 *      binding, method, route and code must be static strings (a route
 *      table's pattern, sr_wire_code's).
 *  (3) sr_access_stop writes what is held and waits for it (before the
 *      engine closes).
 */
#ifndef SR_API_ACCESS_H
#define SR_API_ACCESS_H

#include "engine/records.h"

#include <stdint.h>

typedef struct sr_access sr_access;

typedef struct sr_access_opts {
    int reads;            /* 0: off (nothing recorded) */
    uint32_t flush_ms;    /* a batch is written at least this often */
    uint32_t batch_max;   /* ... and as soon as this many entries are held */
    uint32_t buffer_max;  /* entries held unwritten at most (sr_access_admit) */
    uint32_t refusals_per_batch; /* refusals listed per (actor, code) and batch; 0: refusals not recorded */
} sr_access_opts;

sr_access *sr_access_new(sr_engine *e, const sr_access_opts *o);
/* Writes what is held (waiting for the writer; before the engine closes);
 * from then on nothing more is recorded (requests still ending add
 * nothing). */
void sr_access_stop(sr_access *a);
/* After sr_access_stop and once no request can end any more. */
void sr_access_free(sr_access *a);
/* 1 when reads are recorded */
int sr_access_on(const sr_access *a);
/* 1: a read may be answered; 0: the buffer is full (refuse it). 1 when off. */
int sr_access_admit(sr_access *a);
/* Adds one entry of (op, kind, actor); writes the batches once batch_max
 * entries are held. */
void sr_access_add(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en);
/* A write or control REFUSED (issue #18; docs/audit.md "Refusals"): en's
 * code is its wire code (static, not ""). Batched like reads, in groups of
 * (op, kind, actor, code): one AccessEvent with refusals set per group and
 * batch, audit row kind "refused", outcome the code. Recorded whatever
 * [audit] reads says (not when refusals_per_batch is 0).
 * REFUSALS (bounds, so that a flood of refused messages cannot make the
 * server write more than a bounded amount: invariant 4)
 *  (4) a group lists at most refusals_per_batch entries per batch; the
 *      refusals beyond are counted in that batch's `dropped`; when the
 *      entries held reach buffer_max a refusal is not recorded at all and
 *      counted in the stats (refusals_dropped) and logged (at the 1st, 2nd,
 *      4th, ... such refusal). A refusal is never turned into a busy
 *      answer: it is already answered. */
void sr_access_refused(sr_access *a, const char *op, sr_actor_kind kind, const char *actor, const sr_access_entry *en);
/* Writes the batches if flush_ms passed since the last write (call it from
 * a timer of the loop; now_ms: the monotonic clock). */
void sr_access_tick(sr_access *a, int64_t now_ms);
/* Writes every batch held now. SR_OK, or the first error of a submit (the
 * entries stay held). */
int sr_access_flush(sr_access *a);

typedef struct sr_access_stats {
    uint64_t entries, batches, refused; /* recorded, written (acknowledged), reads refused */
    uint64_t held;                      /* entries held now */
    uint64_t refusals, refusals_dropped; /* refused writes recorded; not listed (a bound: REFUSALS) */
} sr_access_stats;
void sr_access_get_stats(sr_access *a, sr_access_stats *s);

/* ---- HTTP reads (the AP-IF and GW-IF dispatchers) ----
 * After the caller is authenticated, before the handler: a read's entry
 * is prepared from the request (route, its data points: the query's
 * dataId parameters, else the path's parameters; the peer) and added when
 * the request ends, with the status, the wire code sr_http_result set and
 * the bytes sent. 0: go on; -1: the buffer is full, the read was refused
 * (429 E9002, nothing else to do). Nothing when reads are off. */
struct st_h2o_req_t;
struct st_h2o_pathconf_t;
struct sr_route_call;
/* The HTTP server's pathconf gets the reads' logger once, before its
 * context is made: h2o calls it when a request ends (before the request's
 * pool is cleared), which adds the entry prepared by sr_access_http_begin
 * or sr_access_http_write. Without it no HTTP read is recorded. */
void sr_access_http_logger(struct st_h2o_pathconf_t *pc);
int sr_access_http_begin(sr_access *a, const struct sr_route_call *c, const char *binding, const char *op,
                         sr_actor_kind kind, const char *actor);
/* The values (records) the answer holds, when the handler knows them. */
void sr_access_http_values(struct st_h2o_req_t *req, uint64_t n);
/* ---- HTTP writes and controls: only their refusals are recorded ----
 * After the caller is authenticated, before the handler of a route that
 * writes or controls: an entry is prepared (as a read's) and recorded with
 * sr_access_refused when the request ends with a refusal: a 4xx answer with
 * a wire code, but 429 (busy: transient, to be sent again). The data points
 * a handler finds in the body are added with sr_access_http_point (a read
 * may use it too). */
void sr_access_http_write(sr_access *a, const struct sr_route_call *c, const char *binding, const char *op,
                          sr_actor_kind kind, const char *actor);
void sr_access_http_point(struct st_h2o_req_t *req, const char *id);

#endif
