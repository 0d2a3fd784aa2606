/*
 * api/alive.h -- the alive status of gateways and apps (R-MO-1, issue #17;
 * docs/monitoring.md "Alive status").
 *
 * One entry per principal (operator, kind, id) that was seen since the
 * server started, made on first use and kept until sr_alive_free (their
 * number is bounded by the registry's gateways and apps: only logged-in
 * principals get one). An entry holds the state as this server sees it
 * (online or offline, the binding and address of its last transition) and
 * the time it was last seen.
 *
 * TRANSITIONS (each one an AliveEvent through the writer: who, what, when,
 * from where; the `alive` index keeps the latest per principal)
 *   offline -> online   MQTT CONNECT accepted; an HTTP login or request;
 *                       R/status GW_CONNECT ONLINE (its own event, acked
 *                       once durable: api/server.c)
 *   online -> offline   DISCONNECT or the socket closed; keep-alive expiry
 *                       (actor system); the will (R/status GW_DISCONNECT
 *                       OFFLINE, handled as a status message); R/status
 *                       OFFLINE; [alive] http_silence_s without an HTTP
 *                       request (actor system, sr_alive_tick); at start,
 *                       every principal the index says online
 *                       (server-restart, actor system: sr_alive_restart)
 * INVARIANTS
 *  (1) An event is submitted only on a change of state (R/status
 *      messages aside: sr_alive_event): a second online of
 *      an online principal (another request, a reconnect seen first) or an
 *      offline of an offline one writes nothing.
 *  (2) Last seen is never an event: sr_alive_seen is one relaxed atomic
 *      store of the coarse wall clock, on the hot path (every MQTT read,
 *      every authenticated HTTP request); it lives in memory only and
 *      starts at 0 (never) after a restart.
 *  (3) Transitions, sr_alive_tick and sr_alive_restart run on the loop
 *      thread; sr_alive_peek may run on any (the Admin API's workers): the
 *      table's shape is guarded by a mutex, the fields it reads are atomics.
 */
#ifndef SR_API_ALIVE_H
#define SR_API_ALIVE_H

#include "engine/records.h"
#include "engine/suiro.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

typedef struct sr_alive sr_alive;

typedef struct sr_alive_ent {
    struct sr_alive_ent *next; /* the bucket's chain */
    char op[72], id[72];
    int kind;                  /* SR_ACTOR_GATEWAY or SR_ACTOR_APP */
    _Atomic int state;         /* SR_AS_ONLINE, SR_AS_OFFLINE, 0: never seen */
    _Atomic int64_t last_seen; /* wall ms (coarse), 0: never since the start */
    int http;                  /* its online state came from HTTP (sr_alive_tick ends it) */
    char binding[8];
    char remote[64];
} sr_alive_ent;

/* http_silence_s: [alive] http_silence_s. */
sr_alive *sr_alive_new(sr_engine *eng, uint32_t http_silence_s);
void sr_alive_free(sr_alive *a);

/* At start, before the listeners accept: an offline event (server-restart,
 * actor system) for every principal the index says is online. The count
 * submitted, or a negative error. */
int sr_alive_restart(sr_alive *a);

/* At a clean stop, before the push and notify marks: an offline event
 * (disconnect, actor system), durable when this returns, for every HTTP
 * principal still online (its sessions outlive the process, but the
 * platform no longer hears it; MQTT gateways went offline as their
 * connections closed). So the log tells the truth and the next start
 * finds nobody online. The count stored. */
int sr_alive_stop(sr_alive *a);

/* The principal's entry, made on first use; NULL for an id that does not
 * fit or out of memory (then nothing is tracked for it). */
sr_alive_ent *sr_alive_get(sr_alive *a, const char *op, int kind, const char *id);

/* A transition (1). actor_system: the event's actor is "system" (else the
 * principal itself); remote: the peer's address; will: the will's handling
 * ("" none). */
void sr_alive_set(sr_alive *a, sr_alive_ent *e, sr_alive_state st, sr_alive_reason why, const char *binding,
                  const char *remote, const char *will, int actor_system);

/* The AliveEvent of a gateway's R/status message, built for the caller to
 * submit (it is acknowledged once durable): the entry's state set as
 * sr_alive_set does, and the event built whatever the state was (a
 * gateway's message is always stored; the exception to (1)). */
int sr_alive_event(sr_alive *a, sr_alive_ent *e, sr_alive_state st, sr_alive_reason why, const char *binding,
                   const char *remote, const char *message_id, sr_buf *out);

static inline int64_t sr_alive_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME_COARSE, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Seen now (2). NULL-safe. */
static inline void sr_alive_seen(sr_alive_ent *e)
{
    if (e) atomic_store_explicit(&e->last_seen, sr_alive_clock(), memory_order_relaxed);
}

/* An authenticated HTTP request of the principal (binding http or https):
 * seen, and online (reason connect) if it was not. */
void sr_alive_http(sr_alive *a, sr_alive_ent *e, const char *binding, const char *remote);

/* Once a second (the server's tick): HTTP principals silent for
 * http_silence_s go offline (http-silence, actor system). */
void sr_alive_tick(sr_alive *a);

/* For the API (3): last seen (wall ms, 0: not since the start) and the
 * state in memory (0: not seen since the start) of a principal. */
void sr_alive_peek(sr_alive *a, const char *op, int kind, const char *id, int64_t *last_seen, int *state);

/* The alive status of op's gateways and apps (NULL or "": every
 * operator's) that pass the filters (kind: SR_ACTOR_GATEWAY or
 * SR_ACTOR_APP, state: SR_AS_*; 0 for any), as the JSON items of GET
 * /admin/v1/alive and GET /api/v1/alive (api/admin_alive.c); NULL with *rc
 * on a failed read. alive may be NULL (no lastSeen). */
json_t *sr_alive_items(sr_engine *eng, sr_alive *alive, const char *op, int kind, int state, int *rc);

#endif
