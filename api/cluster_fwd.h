/*
 * api/cluster_fwd.h -- forwarding AP-IF and Admin requests to the owner of
 * their partition (issue #19 phase 2b, docs/cluster.md "Forwarding").
 *
 * Each route row says who serves it in cluster mode (sr_route.fwd,
 * api/routes.h): where it was received (SR_FWD_NONE), the owner of the
 * partition of the operator it is for (SR_FWD_OPERATOR: an app's operator,
 * an Admin route's {operatorId}), or the owner of partition 0
 * (SR_FWD_PLATFORM: platform-scope Admin writes, so that two nodes never
 * change one user concurrently). A dispatcher calls sr_fwd_route after the
 * row matched, the caller authenticated and the body passed its limit;
 * when this node does not own the partition the request goes, with libcurl
 * on the loop (api/curlloop.h), to the base URL the owner advertises in its
 * heartbeat ([cluster] advertise), and the answer (status, body, content
 * type, wire error) is relayed verbatim.
 *
 * The hop headers: the forwarding node sends `Suiro-Forwarded-By: <node>`
 * and `Suiro-Forwarded-For: <client address>`; the owner adds
 * `Suiro-Served-By: <node>` to its answer. A request that carries
 * `Suiro-Forwarded-By` is never forwarded again: a node that does not own
 * its partition either (ownership moved meanwhile) answers 503 E9002 with
 * Retry-After: 1.
 *
 * Invariants:
 *  1. Only a row with a fwd value other than SR_FWD_NONE is ever forwarded,
 *     and only after its caller authenticated on the receiving node
 *     (unauthenticated requests are refused there, not amplified).
 *  2. A request is forwarded at most once (the hop marker), and the owner
 *     authenticates and authorizes it completely itself: it trusts nothing
 *     of the hop headers but the marker, and Suiro-Forwarded-For only from
 *     a peer whose address is a live node's advertised host.
 *  3. Every forwarded request ends: relayed, or 503 E9002 (owner unknown,
 *     unreachable, not answering within [cluster] forward_timeout_ms); never
 *     a blocking call on the loop.
 *  4. A forwarded request whose session is not known to the owner yet (the
 *     login's SessionEvent still on its way through the .reg consumer) is
 *     authenticated again until it is, for [cluster] forward_wait_ms at
 *     most (sr_fwd_wait), asynchronously on the loop -- only when it came
 *     from a live node's advertised host (a client that sets the marker
 *     itself is answered at once, never held). It is not polled: it waits
 *     in a bounded list (SR_FWD_WAITERS_MAX; one more is answered 401 at
 *     once) and is authenticated again when a replicated SessionEvent was
 *     applied (sr_fwd_session_applied, the consumer's apply callback: one
 *     uv_async_send while a request waits) or its wait is over.
 *
 * Every function but the pure ones is called on the loop's thread.
 */
#ifndef SR_CLUSTER_FWD_H
#define SR_CLUSTER_FWD_H

#include "api/routes.h"
#include "codecs/base/sr_error.h"
#include "codecs/base/sr_hist.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct st_h2o_req_t;

/* ---- the pure decision (table-tested: tests/api/test_cluster_fwd.c) ---- */
typedef enum sr_fwd_verdict {
    SR_FWDV_LOCAL = 0, /* served here */
    SR_FWDV_FORWARD,   /* forwarded to *part's owner */
    SR_FWDV_REFUSE,    /* 503 E9002: forwarded already, and not owned here either */
} sr_fwd_verdict;

/* The cluster as the decision sees it. */
typedef struct sr_fwd_view {
    int enabled;         /* a cluster with the lease manager runs (static ownership: nothing is forwarded) */
    uint32_t partitions;
    int (*owns)(void *ctx, uint32_t part);
    void *ctx;
} sr_fwd_view;

/* fwd the row's column, op the operator the request is for (an app's; an
 * Admin route's {operatorId}; NULL or "" when none), forwarded 1 when the
 * request carries Suiro-Forwarded-By. *part gets the partition (0 when
 * local without one). */
sr_fwd_verdict sr_fwd_decide(int fwd, const char *op, int forwarded, const sr_fwd_view *v, uint32_t *part);

/* A forwarded request the owner did not answer (a timeout, a connection
 * lost, an answer too big to relay): 1 when its outcome is unknown -- it may
 * change state on the owner (any method but GET and HEAD) and may have
 * reached it (reached: anything but a refused or unresolved connection) --
 * then answered 500 E9001 saying it may have been made, never "retry" (a
 * retried password change or document create would be made twice); 0: 503
 * E9002 with Retry-After, safe to send again. */
int sr_fwd_outcome_unknown(const char *method, size_t mlen, int reached);

/* The base URL this node advertises: advertise when set (http:// or
 * https://, host and port, no path), else "http://" + listen; a wildcard
 * listen address (0.0.0.0, ::, [::], *, or no host) without advertise is
 * refused. listen "" and advertise "": out "" (no HTTP listener: peers
 * cannot forward here). 0, or -1 with err naming the problem. */
int sr_fwd_advertise_url(const char *advertise, const char *listen, char *out, size_t outlen, char *err,
                         size_t errlen);
/* The host of a base URL ("http://[::1]:8080" -> "::1"): 0, or -1. */
int sr_fwd_url_host(const char *url, char *host, size_t cap);

/* One header line of the owner's answer (outside bytes: fuzz_fwdhdr). The
 * kinds: 0 dropped (not relayed, or malformed), 1 a status line (a new
 * answer begins: what was kept is forgotten), 2 Content-Type, 3 relayed
 * (the contract's headers, X-*, Suiro-*). For 2 and 3: name (lower case,
 * NUL-terminated, 1..63 bytes of a token) and the value (*value into line,
 * *vlen bytes, blanks and CR LF trimmed, no control byte). */
typedef struct sr_fwd_hdr {
    char name[64];
    const char *value;
    size_t vlen;
} sr_fwd_hdr;
int sr_fwd_resp_header(const char *line, size_t len, sr_fwd_hdr *out);

/* ---- the forwarder (api/cluster_fwd.c) ---- */
typedef struct sr_fwd_opts {
    uint32_t timeout_ms; /* [cluster] forward_timeout_ms */
    uint32_t wait_ms;    /* [cluster] forward_wait_ms */
} sr_fwd_opts;
/* Open the process's forwarder on loop (the HTTP listeners' loop). Without a
 * cluster nothing is forwarded and sr_fwd_route always answers 0. */
SR_MUST_CHECK int sr_fwd_open(uv_loop_t *loop, const sr_fwd_opts *o, char *err, size_t errlen);
/* Abort the transfers in flight (their requests get nothing more: the
 * server is stopping) and close; free after the loop ran its close
 * callbacks. NULL-safe. */
void sr_fwd_close(void);
void sr_fwd_free(void);

/* The dispatchers' hook. 0: serve the request here (when it was forwarded
 * to this node, Suiro-Served-By is added to its answer); 1: handled
 * (forwarded, its answer relayed later, or answered 503). */
int sr_fwd_route(struct st_h2o_req_t *req, const sr_route *r, const char *op);

/* Does req carry the hop marker? */
int sr_fwd_is_forwarded(struct st_h2o_req_t *req);

/* Invariant 4. again(binding, req, until) is the dispatcher run again; until
 * is 0 at the first run. 1: req (forwarded, its session unknown) will be
 * dispatched again when a session was applied or at until, the caller
 * returns without answering; 0: no more waiting (not forwarded, the wait is
 * over, the list full, or no cluster): answer 401. */
typedef void (*sr_fwd_again_fn)(void *binding, struct st_h2o_req_t *req, int64_t until);
int sr_fwd_wait(struct st_h2o_req_t *req, void *binding, sr_fwd_again_fn again, int64_t *until);

/* A replicated SessionEvent was applied (api/cluster_sub.c, the writer's
 * thread; any thread): the waiting requests are authenticated again on the
 * loop. Cheap: an atomic load, and one uv_async_send while a request waits. */
void sr_fwd_session_applied(void);

/* ---- the waiting requests' list (pure: tests/api/test_cluster_fwd.c) ---- */
#define SR_FWD_WAITERS_MAX 1024u
typedef struct sr_fwd_wlink {
    struct sr_fwd_wlink *next, *prev;
} sr_fwd_wlink;
typedef struct sr_fwd_wlist {
    sr_fwd_wlink *head, *tail; /* arrival order */
    size_t n, cap;
} sr_fwd_wlist;
/* Append l: SR_OK, or SR_EFULL when cap wait. */
SR_MUST_CHECK int sr_fwd_wlist_add(sr_fwd_wlist *w, sr_fwd_wlink *l);
/* Take l out (it is in w). */
void sr_fwd_wlist_remove(sr_fwd_wlist *w, sr_fwd_wlink *l);
/* Take every waiter out at once: the first of them in arrival order (each
 * one's next), NULL when none; w is empty after. */
sr_fwd_wlink *sr_fwd_wlist_take(sr_fwd_wlist *w);

/* The original client's address of a request forwarded by a known peer
 * ("<client> via <node>", 64 bytes with its NUL): 1, or 0 when req is not
 * such a request (the caller uses the socket's address). */
int sr_fwd_client_addr(struct st_h2o_req_t *req, char out[64]);

typedef struct sr_fwd_stats {
    uint64_t outcome[6]; /* by sr_fwd_outcome_name */
    uint64_t served;     /* forwarded to this node and served here */
    uint64_t waits[3];   /* invariant 4's waits ended, by sr_fwd_wait_name */
    sr_hist_snap lat_us; /* relayed answers' latency, microseconds (bounds SR_HIST_US_BOUNDS) */
} sr_fwd_stats;
const char *sr_fwd_outcome_name(int i); /* relayed, no_owner, unreachable, timeout, not_owner, error */
/* woken (tried again: a session was applied), deadline (tried again at its
 * forward_wait_ms deadline), full (the list full: 401 at once) */
const char *sr_fwd_wait_name(int i);
void sr_fwd_get_stats(sr_fwd_stats *out);

#endif
