/*
 * api/loginguard.h -- the one guard in front of every secret check: the
 * MQTT CONNECT (api/server.c), POST /gw/v1/sessions (api/gwif_http.c) and
 * POST /api/v1/sessions (api/apif_http.c). Policy and keys:
 * docs/configuration.md, "Logins".
 *
 * Two parts:
 *  - sr_lthr: the throttle, a pure table (time passed in, no threads),
 *    used on the loop thread only. Three kinds of record, all in one table
 *    bounded by table_max (the least recently touched record is forgotten):
 *      (principal, address)  failures since the last success; after
 *                            free_failures, refused for 1 s doubling with each
 *                            further failure, at most backoff_max_ms; checks
 *                            in flight count too (a burst of concurrent
 *                            guesses gets free_failures checks, no more);
 *                            an attempt refused so counts as a failure of
 *                            the pair (hammering prolongs the back-off)
 *      address               a bucket of address_failures failures, refilled
 *                            one per address_refill_ms; empty: every login
 *                            from that address is refused
 *      principal             a bucket of principal_failures failures over all
 *                            addresses, refilled one per principal_refill_ms;
 *                            empty: refused only from addresses that failed
 *                            for that principal (a fresh address still gets
 *                            through, so a flood cannot lock the owner out)
 *    A principal is "kind|operatorId|id" (kind 'g' gateway, 'a' app, 'u' a
 *    user of /admin/v1, operatorId "": user IDs are the platform's), known
 *    or not: an unknown ID is throttled exactly like a known one.
 *  - sr_loginguard: the throttle plus scrypt on its own worker threads
 *    (never libuv's thread pool, which serves queries), fed by a bounded
 *    queue: at most queue_max jobs waiting, at most queue_per_address from
 *    one address. The jobs wait per address (oldest first) and the workers
 *    serve the addresses in turn (round-robin), so a login from a quiet
 *    address waits for at most one job per busy address, not for a flood.
 *    A full queue refuses at once ("busy"), except that a job from an
 *    address with fewer jobs waiting than the busiest address displaces that
 *    address's newest job (which completes "busy"). Completions come back to
 *    the loop through a sr_loopq; the throttle is updated there, then the
 *    job's done callback runs.
 *
 * INVARIANTS
 *  (1) Every job that passes the throttle runs exactly one scrypt
 *      (sr_secret_check): with the stored hash, or a fixed dummy when the
 *      principal is unknown -- the same path, queue and time either way.
 *  (2) A submitted job's done callback runs exactly once, on the loop
 *      thread, also when the guard stops (verdict SR_LG_BUSY); the caller
 *      keeps the job alive until then.
 *  (3) Memory is bounded: table_max records, queue_max waiting jobs (the
 *      jobs are the callers', intrusive).
 */
#ifndef SR_LOGINGUARD_H
#define SR_LOGINGUARD_H

#include "api/loopq.h"
#include "codecs/base/sr_alloc.h"
#include "engine/records.h"
#include "engine/suiro.h"

#include <h2o.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct sr_login_policy {
    uint32_t free_failures;       /* [login] free_failures = 5 */
    uint32_t backoff_max_ms;      /* [login] backoff_max_ms = 300000 */
    uint32_t address_failures;    /* [login] address_failures = 30 */
    uint32_t address_refill_ms;   /* [login] address_refill_ms = 6000 */
    uint32_t principal_failures;  /* [login] principal_failures = 20 */
    uint32_t principal_refill_ms; /* [login] principal_refill_ms = 30000 */
    uint32_t table_max;           /* [login] table_max = 16384 */
    uint32_t workers;             /* [login] workers = 2 */
    uint32_t queue_max;           /* [login] queue_max = 1024 */
    uint32_t queue_per_address;   /* [login] queue_per_address = 256 */
} sr_login_policy;

void sr_login_policy_default(sr_login_policy *p);

/* verdicts */
enum { SR_LG_OK = 0, SR_LG_BACKOFF, SR_LG_ADDRESS, SR_LG_PRINCIPAL, SR_LG_BUSY };
/* "ok", "backoff", "address", "principal", "busy" */
const char *sr_lg_name(int verdict);

/* ---- the throttle ---- */
typedef struct sr_lthr sr_lthr;

sr_lthr *sr_lthr_new(const sr_login_policy *p);
void sr_lthr_free(sr_lthr *t);
/* May principal try from addr now? SR_LG_OK, or the refusal and in
 * *retry_ms when trying again may succeed. */
int sr_lthr_check(sr_lthr *t, const char *principal, const char *addr, uint64_t now_ms, uint64_t *retry_ms);
/* An attempt was refused SR_LG_BACKOFF: it counts as a failure of the pair
 * (not of the address or principal budgets), the back-off grows. */
void sr_lthr_refused(sr_lthr *t, const char *principal, const char *addr, uint64_t now_ms);
/* A check of principal from addr is under way (counted until its result or
 * cancel). */
void sr_lthr_start(sr_lthr *t, const char *principal, const char *addr, uint64_t now_ms);
/* A started check that will not run. */
void sr_lthr_cancel(sr_lthr *t, const char *principal, const char *addr);
/* The outcome of a started check: a failure counts against the pair, the
 * address and the principal; a success clears the pair. */
void sr_lthr_result(sr_lthr *t, const char *principal, const char *addr, int ok, uint64_t now_ms);
/* A refusal (verdict, retry_ms) of principal from addr: 1 if it is to be
 * recorded as an event -- the first of its record's refusal period, or one
 * whose retry is at least twice the last recorded one (a back-off growing
 * under hammering: about log2(backoff_max_ms / 1000) events, then one per
 * period) -- else 0. */
int sr_lthr_note(sr_lthr *t, const char *principal, const char *addr, int verdict, uint64_t retry_ms, uint64_t now_ms);
/* The pair's back-off lasts at least until `until` (the restore: a refusal
 * answered "retry after" at its time). */
void sr_lthr_extend(sr_lthr *t, const char *principal, const char *addr, uint64_t until);
/* Records held (<= table_max). */
size_t sr_lthr_size(const sr_lthr *t);

/* "kind|op|id" into out (cap >= 160). */
void sr_login_principal(char kind, const char *op, const char *id, char *out, size_t cap);
/* The throttle's address of a peer: IPv4 as is, IPv6 by its /64 (one host
 * usually holds a whole /64). From a socket address, or from the text
 * "a.b.c.d:port" / "[v6]:port". out has room for 64. */
void sr_login_addr_sa(const struct sockaddr *sa, char out[64]);
void sr_login_addr_peer(const char *peer, char out[64]);

/* ---- the guard ---- */
typedef struct sr_loginguard sr_loginguard;
typedef struct sr_login_job sr_login_job;
typedef void (*sr_login_done)(sr_login_job *j);

struct sr_login_job {
    /* set by the caller before submitting */
    char secret[300];   /* wiped once checked */
    sr_buf stored;      /* the principal's stored hash; empty: unknown (the caller owns it) */
    sr_login_done done; /* on the loop, exactly once */
    /* set by the guard before done */
    int verdict;        /* SR_LG_OK (checked) or SR_LG_BUSY (displaced, guard stopping) */
    int ok;             /* verdict OK and the secret matched */
    int checked;        /* scrypt ran (1 for every job that reached a worker) */
    uint64_t retry_ms;  /* verdict BUSY: when to try again */
    /* the guard's */
    sr_loginguard *g;
    sr_loopq_item li;
    sr_login_job *qnext;
    char principal[160], addr[64];
};

typedef struct sr_login_stats {
    uint64_t checks;    /* scrypt runs */
    uint64_t throttled; /* refused by the throttle */
    uint64_t busy;      /* refused: queue full or displaced */
    size_t records;     /* throttle records held */
} sr_login_stats;

SR_MUST_CHECK int sr_loginguard_open(uv_loop_t *loop, const sr_login_policy *p, sr_loginguard **out);
/* On the loop. SR_LG_OK: queued, done(j) comes later. Otherwise refused at
 * once (throttle or busy), *retry_ms set, done is NOT called and j is the
 * caller's again. */
int sr_loginguard_submit(sr_loginguard *g, sr_login_job *j, char kind, const char *op, const char *id,
                         const char *addr, uint64_t *retry_ms);
/* On the loop: run done(j) from the loop later with ok = 1 and no check (a
 * client certificate already authenticated; keeps the order of steps). */
void sr_loginguard_pass(sr_loginguard *g, sr_login_job *j);
void sr_loginguard_stats(sr_loginguard *g, sr_login_stats *out);
/* Tests: while on, the workers take no job (the queue's bounds can be
 * shown without racing them). */
void sr_loginguard_hold(sr_loginguard *g, int on);
/* On the loop, before the bindings go: stop the workers, complete every job
 * left (verdict BUSY) and run the done callbacks. Submits after this are
 * refused busy. */
void sr_loginguard_stop(sr_loginguard *g);
/* After the loop closed (its async handle closes with the loop's handles). */
void sr_loginguard_free(sr_loginguard *g);

/* The stored secret hash of a gateway ('g'), an app ('a') or a user ('u', op
 * "": users are the platform's; their password hash) into out (left
 * empty when the principal is unknown or has none: the guard then checks
 * against its dummy hash, the same path and time). */
void sr_login_stored(sr_engine *eng, char kind, const char *op, const char *id, sr_buf *out);

/* ---- revocation at once (R-ID-4; docs/admin.md "Revocation") ----
 * A disabled app or gateway has no stored hash for sr_login_stored (its
 * login fails as a wrong secret does). A live session (an AP-IF or GW-IF
 * token, an MQTT connection) keeps what it saw of its principal's registry
 * entry: the registry generation (sr_engine_registry_gen) it was checked at
 * and a fingerprint of the secret hash of its login. While the generation
 * has not moved the session stands (one atomic load); once it moved, the
 * entry is read again and the session ends when the principal was deleted
 * or disabled, or its secret rotated. */
typedef struct sr_login_seen {
    uint64_t gen;
    uint8_t secret[16]; /* the first 16 bytes of SHA-256 of the stored secret hash */
} sr_login_seen;
/* A login that passed: read the principal's entry now (kind 'g' or 'a').
 * checked: the stored hash the secret was checked against (NULL: a client
 * certificate authenticated). NULL with *s filled, or why the login is
 * refused after all: "not registered", "disabled", "secret rotated" (while
 * the secret was being checked). */
const char *sr_login_seen_init(sr_engine *eng, char kind, const char *op, const char *id, const sr_buf *checked,
                               sr_login_seen *s);
/* The entry read again: NULL if the session stands (s->gen moves on), or
 * why it ends: "deleted", "disabled", "secret rotated". */
const char *sr_login_reread(sr_engine *eng, char kind, const char *op, const char *id, sr_login_seen *s);
/* On each request of a live session: NULL while nothing changed, else
 * sr_login_reread's verdict. */
static inline const char *sr_login_recheck(sr_engine *eng, char kind, const char *op, const char *id, sr_login_seen *s)
{
    return s->gen == sr_engine_registry_gen(eng) ? NULL : sr_login_reread(eng, kind, op, id, s);
}

/* ---- HTTP helpers (the two session routes) ---- */
/* v is a JSON string shorter than max bytes with no NUL in it (an id or
 * secret cut at an embedded NUL would name someone else). */
int sr_login_str_ok(const json_t *v, size_t max);
/* The throttle's address of req's peer ("" if unknown). */
void sr_login_addr_req(h2o_req_t *req, char out[64]);
/* Answer a login refused without a check: 429 E9002 with Retry-After
 * (seconds, rounded up), and log it (checked=0). what: "gateway" / "app". */
void sr_login_http_refuse(h2o_req_t *req, const char *what, const char *op, const char *id, const char *addr,
                          int verdict, uint64_t retry_ms);

/* ---- the audit trail (docs/admin.md "Audit") ---- */
/* Store a login attempt as an auth event (AuthEvent: who, success, method,
 * reason, from where): fire and forget, a failure to queue it is logged,
 * never waited for (a login is answered at once; the throttle does not
 * depend on it). kind: sr_actor_kind (engine/records.h): SR_ACTOR_GATEWAY,
 * SR_ACTOR_APP or SR_ACTOR_USER (op: the user's operator, "" for a platform
 * or vendor user; the throttle's restore takes a user's principal without
 * it, "u||ID", as admin_http.c submits it). source: the throttle's address
 * (sr_login_addr_*) or the peer "addr:port". */
void sr_login_audit_event(sr_engine *eng, int kind, const char *op, const char *id, int success, const char *method,
                          const char *reason, const char *source);
/* A failed password login (sr_login_audit_event, method "password"). */
void sr_login_audit(sr_engine *eng, int kind, const char *op, const char *id, const char *reason,
                    const char *source);
/* A session opened or ended without a token kept in the index (a
 * gateway's HTTP session, an MQTT connection): SessionEvent, fire and forget. */
void sr_login_session_audit(sr_engine *eng, int kind, const char *op, const char *id, sr_session_state state,
                            const char *protocol, const char *reason, const char *source);

/* The guard's use of the trail, both optional (tests run without):
 *  - every refusal by the throttle (backoff, address, principal; not
 *    "busy", which is load and not a failed login) is an auth event with
 *    method "throttle", at most one per throttle record per refusal period
 *    (sr_lthr_note): a flood of refused guesses is not a flood of events;
 *  - at start, the throttle is rebuilt from the trail's logins, failed
 *    logins and sessions opened (a success) of the window it can still
 *    remember (sr_login_window_ms), so
 *    a restart (kill -9 too) does not reset it: at most table_max rows
 *    (the newest: the throttle holds no more records than that), read from
 *    the `audit` index by time (no log scan). A
 *    failure not yet durable when the server died is not counted.
 * sr_loginguard_restore sets the engine and returns the rows fed (or a
 * negative SR_E* code); wall_ms is the wall clock now. */
int sr_loginguard_restore(sr_loginguard *g, sr_engine *eng, int64_t wall_ms);
/* How far back the throttle's policy remembers: the longest back-off, and
 * the time a drained address or principal bucket takes to fill again. */
uint64_t sr_login_window_ms(const sr_login_policy *p);

#endif
