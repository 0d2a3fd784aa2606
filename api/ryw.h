/*
 * api/ryw.h -- read-your-writes (issue #19 phase 2b; docs/cluster.md
 * "Read-your-writes", docs/api/openapi.yaml): a write's answer carries the
 * token of its command's last event (response header Suiro-Seq, ext), and a
 * read may carry it back (request header Suiro-Wait, ext, with
 * Suiro-Wait-Ms) to be served only once this node's state includes it.
 *
 * The token (one per partition the command wrote; a command's events are of
 * one operator, so of one partition: one token today), grammar:
 *   list  = token *( OWS "," OWS token )          at most SR_RYW_MAX_TOKENS
 *   token = seq                                   single node: the log seq
 *         / part ":" sseq [ "@" node ":" seq ]    cluster mode
 *   part  = 1*3DIGIT (< SR_CLUSTER_MAX_PARTITIONS); sseq, seq = 1*20DIGIT
 *   node  = 1*31( ALPHA / DIGIT / "_" / "-" )
 * part:sseq is the JetStream stream sequence of the event in its
 * partition's stream; node:seq the event's origin id (the node that wrote
 * it and its seq there). A token is reached on a node when:
 *   - seq alone, or node is this node: this node's index applied seq (its
 *     own write: the answer came after that, so at once);
 *   - another node's: this node owns part, and the full consumer's
 *     checkpoint of part is >= sseq (sseq 0: unknown, not used), or the
 *     origin id node:seq is in the origins index (applied here).
 *
 * The waiting (one place: sr_ryw_gate, called by the AP-IF and Admin
 * dispatchers before a GET's handler runs): a token not reached parks the
 * request in a bounded list on the loop (never blocking it); the engine's
 * append hook (every group commit, replicated events included: their
 * checkpoint is raised in the same transaction) wakes the loop with one
 * uv_async_send, which re-checks the waiters in arrival order. A waiter
 * reached re-enters its dispatcher (authentication and checks again, then
 * the handler); one whose Suiro-Wait-Ms passed is answered 429 E9002.
 *
 * Invariants:
 *  1. sr_ryw_parse accepts exactly the grammar above; anything else is
 *     refused with a message naming the problem (never a crash: fuzzed,
 *     tests/fuzz/fuzz_ryw.c). sr_ryw_format of a parsed list parses back
 *     to the same list.
 *  2. The waiter list holds at most its capacity, and at most
 *     SR_RYW_WAITERS_PER_OP of one operator; one more is refused (429
 *     E9002, reason waiters-full or operator-waiters-full). Waiters are answered in arrival order among those a
 *     sweep finds reached, each exactly once (reached, timed out, or its
 *     request gone).
 *  3. A request is resumed only once every token of its list is reached
 *     (reaching is monotone: an applied seq, a checkpoint and an origin row
 *     never go back), so its handler sees the write.
 */
#ifndef SR_RYW_H
#define SR_RYW_H

#include "engine/suiro.h"

#include <stddef.h>
#include <stdint.h>

#define SR_RYW_MAX_TOKENS 8
#define SR_RYW_TEXT_MAX 512          /* a Suiro-Wait value of more bytes is refused */
#define SR_RYW_WAIT_MS_DEFAULT 5000u /* Suiro-Wait-Ms when absent */
#define SR_RYW_WAIT_MS_MAX 30000u
#define SR_RYW_WAITERS_MAX 1024u     /* requests waiting at once; one more: 429 */
/* of them, one operator's (the caller's; platform users together count as
 * one, ""): one more is 429 too, so that one tenant's reads cannot fill the
 * list and starve the others' (a quarter: four operators at their cap fill it) */
#define SR_RYW_WAITERS_PER_OP (SR_RYW_WAITERS_MAX / 4)

typedef struct sr_ryw_tok {
    int cluster;   /* 0: a log seq of this node (single node) */
    uint32_t part; /* cluster: the partition */
    uint64_t sseq; /* cluster: the stream seq (0: not known) */
    char node[32]; /* cluster: the node that wrote it ("" when absent) */
    uint64_t seq;  /* the log seq (on node, in cluster mode) */
} sr_ryw_tok;

/* Parse a Suiro-Wait value s[0..n): SR_OK with out[0..*count), or
 * SR_EINVAL with err naming the problem (invariant 1). */
SR_MUST_CHECK int sr_ryw_parse(const char *s, size_t n, sr_ryw_tok *out, size_t max, size_t *count, char *err,
                               size_t errlen);
/* The text of t[0..n) into buf (NUL-terminated): its length, or -1 when it
 * does not fit. */
int sr_ryw_format(const sr_ryw_tok *t, size_t n, char *buf, size_t cap);
/* A Suiro-Wait-Ms value: 0..SR_RYW_WAIT_MS_MAX decimal digits: SR_OK, or
 * SR_EINVAL with err. */
SR_MUST_CHECK int sr_ryw_parse_ms(const char *s, size_t n, uint32_t *ms, char *err, size_t errlen);

/* ---- the waiter list (pure: tests/api/test_ryw.c) ---- */
typedef struct sr_ryw_waiter {
    sr_ryw_tok tok[SR_RYW_MAX_TOKENS];
    size_t ntok;
    int64_t deadline_ms;
    char op[72]; /* the caller's operator ("" platform): its share of the list */
    void *ctx;   /* the caller's */
} sr_ryw_waiter;
typedef struct sr_ryw_list {
    sr_ryw_waiter *w; /* arrival order */
    size_t cap, n;
    size_t per_op; /* waiters of one operator at most */
} sr_ryw_list;
/* cap waiters in all, per_op of one operator (per_op >= cap: no share) */
SR_MUST_CHECK int sr_ryw_list_init(sr_ryw_list *l, size_t cap, size_t per_op);
void sr_ryw_list_destroy(sr_ryw_list *l);
/* Add a waiter (copied): SR_OK; SR_EFULL when cap are waiting; SR_RYW_OPFULL
 * when per_op of w->op's are waiting (invariant 2). */
SR_MUST_CHECK int sr_ryw_list_add(sr_ryw_list *l, const sr_ryw_waiter *w);
/* The waiters of operator op in the list. */
size_t sr_ryw_list_count_op(const sr_ryw_list *l, const char *op);
enum { SR_RYW_REACHED = 1, SR_RYW_TIMEOUT = 2, SR_RYW_ERROR = 3, SR_RYW_OPFULL = 4 /* sr_ryw_list_add */ };
/* What a waiter's tokens are: 1 every one reached, 0 not yet, -1 an error
 * (err filled: e.g. the partition is not owned here any more). */
typedef int (*sr_ryw_check_fn)(void *arg, const sr_ryw_waiter *w, char *err, size_t errlen);
/* Called once for each waiter leaving the list: outcome SR_RYW_REACHED,
 * SR_RYW_TIMEOUT or SR_RYW_ERROR (err). */
typedef void (*sr_ryw_done_fn)(void *arg, const sr_ryw_waiter *w, int outcome, const char *err);
/* Check every waiter in arrival order (check), take out those reached, in
 * error, or whose deadline is <= now (in that order of precedence: a
 * waiter reached at its deadline is reached), calling done for each in
 * arrival order (after the list is compacted: done may add). Returns the
 * earliest deadline left (INT64_MAX when none). */
int64_t sr_ryw_list_sweep(sr_ryw_list *l, int64_t now, sr_ryw_check_fn check, sr_ryw_done_fn done, void *arg);

/* ---- the server's glue (one per process, on its loop) ---- */
struct uv_loop_s;
struct st_h2o_req_t;
/* Start: the loop the dispatchers run on, the engine, this node's cluster
 * name (NULL or "": single node). SR_OK or SR_ENOMEM. */
SR_MUST_CHECK int sr_ryw_start(struct uv_loop_s *loop, sr_engine *e, const char *node);
/* Stop (on the loop, before the listeners close): every waiter is answered
 * 503 E9002 "server stopping"; the handles closed. */
void sr_ryw_stop(void);
/* The engine's append hook calls this (any thread): the index applied the
 * events up to last (this node's and replicated ones). Cheap: an atomic,
 * and one uv_async_send when a request waits. */
void sr_ryw_appended(uint64_t last);
/* For a single node: the engine's append hook itself (ctx unused). */
void sr_ryw_engine_hook(void *ctx, uint64_t last);

typedef void (*sr_ryw_resume_fn)(void *binding, struct st_h2o_req_t *req);
/* The dispatchers' hook, before a GET's handler: 0 go on now (no
 * Suiro-Wait, every token reached, or resuming a waiter); 1 the request was
 * answered (a bad header, not owned, busy) or parked (op: the caller's
 * operator, "" or NULL for the platform: its share of the list): resume(binding, req)
 * is called on the loop once it is reached (which calls the dispatcher
 * again, which goes on). */
int sr_ryw_gate(struct st_h2o_req_t *req, const char *op, sr_ryw_resume_fn resume, void *binding);
/* A write's answer: sets Suiro-Seq from the command's result (its last
 * event's token) when one is known; nothing for a refusal. */
void sr_ryw_answer_header(struct st_h2o_req_t *req, const sr_result *r);
/* The token text of a result into buf: its length, or 0 when none is known
 * (cluster mode: no stream sequence and no partition known). */
int sr_ryw_token_of(const sr_result *r, char *buf, size_t cap);

/* suiro_ryw_waits_total{outcome}: at_once, waited, timeout, refused (a full
 * list or operator share counts as refused) */
typedef struct sr_ryw_stats {
    uint64_t at_once, waited, timeout, refused;
    uint32_t waiting;
} sr_ryw_stats;
void sr_ryw_get_stats(sr_ryw_stats *out);

#endif
