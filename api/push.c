/*
 * api/push.c -- push to the apps (see push.h, docs/requests.md "Push to
 * apps").
 *
 * One queue per (operator, app). A message is created by sr_push_enqueue (the
 * live path once its event is durable, or the recovery at start) and leaves
 * its queue when it was delivered (HTTP 2xx), when the bound drops it, or at
 * dispose (then it stays above the app's mark: derived again at the next
 * start).
 *
 * APP STATES
 *   idle      no transfer, no back-off timer (queue empty, or about to send)
 *   sending   the head message is in flight (a->easy set)
 *   waiting   the head failed; the back-off timer runs (a->waiting)
 *   idle -> sending       a message was queued (app_kick)
 *   sending -> idle       2xx: the head is delivered and removed; the next one is sent at once
 *   sending -> waiting    anything else: the head stays, the timer is armed
 *   waiting -> sending    the timer fired
 * INVARIANTS
 *  (1) Only the head of a queue is ever in flight, and at most one message
 *      per app: a receiver sees an app's messages in queue order.
 *  (2) A message keeps its delivery id and its signature on every attempt.
 *  (3) An app's queue holds at most max_queue messages; when one more comes,
 *      the oldest message that is not in flight is dropped (the head, unless
 *      it is in flight, then the one behind it).
 *  (4) libcurl's sockets and timer are the curlloop's (api/curlloop.h,
 *      its invariants; sr_push_check asks sr_curlloop_check).
 *  (5) An app's queue is a proper list of n messages (head NULL iff tail
 *      NULL iff n == 0; tail is the last one); only its head has ever been
 *      attempted, and a message that was attempted has its signature (2);
 *      a transfer's headers live exactly as long as it (hdrs iff easy);
 *      sending and waiting exclude each other, and a queue with messages is
 *      always one of them until dispose (no stalled queue); the back-off
 *      stays <= max_backoff_ms. After dispose nothing is queued, sent or
 *      waited for.
 *  (6) The delivered mark: a message carries the seq of its event (its
 *      delivery id); an app's queue is in seq order; the mark written for
 *      an app is app_through (the seq before its head, or the highest seq
 *      it was given when empty): never past a message still queued, so a
 *      restart's recovery (sr_push_recover) re-derives every message not
 *      delivered. mark_sent only grows; one mark write in flight per app
 *      (mark_busy), the next after mark_every_ms (markt).
 * sr_push_check (push.h) returns NULL or names the broken one; SR_INVARIANT
 * runs app_check at each app transition (queued, attempt started, attempt
 * done, retry), the socket list's check when a socket comes or goes, and
 * the whole check at the end of dispose.
 *
 * libcurl runs in its multi-socket mode on our loop through api/curlloop.c
 * (shared with the notifications, api/notify.c): a finished transfer comes
 * back to on_transfer_done; the signature and the POST's options are
 * curlloop.c's too (sr_sign_body, sr_signed_headers, sr_post_easy).
 */
#include "api/push.h"

#include "api/curlloop.h"
#include "api/httpu.h"
#include "api/slog.h"
#include "engine/records.h"
#include "storage/crypto.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    ALARM_EVERY_MS = 60000, /* an app's "dropped" alarm and warning: at most this often */
    FAIL_LOG_EVERY_MS = 60000,
};

typedef struct pmsg {
    struct pmsg *next;
    uint64_t seq; /* the event that produced it: its delivery id, and the mark (6) */
    char *url;  /* {push url}/{path suffix} */
    char *body; /* compact JSON, exactly the signed bytes */
    size_t len;
    char id[48];                                /* X-Suiro-Delivery (2) */
    char *sig;                                  /* made at the first attempt (2); base64url */
    uint32_t attempts;
} pmsg;

typedef struct papp {
    sr_push *p;
    char op[72], app[72];
    pmsg *head, *tail;
    size_t n;
    CURL *easy;                 /* the head's transfer (1) */
    struct curl_slist *hdrs;
    uv_timer_t retry;
    int waiting;
    uint32_t backoff_ms;        /* the next wait after a failure; 0: first_backoff_ms */
    uint64_t delivered, retried, dropped;
    uint64_t last_alarm, last_fail_log; /* mono ms; 0: never */
    uint64_t fails_unlogged, streak;    /* failures since the last log line; since the last success */
    char errbuf[CURL_ERROR_SIZE];
    /* the delivered mark (6): last_seq the highest seq queued or known done;
     * mark_sent the highest mark submitted; one mark in flight (mark_busy,
     * cleared by the engine's completion, on its thread) */
    uint64_t last_seq, mark_sent, mark_at;
    int has_row; /* a mark of its own in `pushq` (else the start's applies) */
    atomic_int mark_busy;
    uv_timer_t markt;
    struct papp *next;
} papp;

struct sr_push {
    uv_loop_t *loop;
    sr_engine *eng;
    sr_push_opts o;
    sr_sigkey *key;
    sr_curlloop *cl; /* libcurl on the loop (4) */
    papp *apps;
    uint64_t epoch;   /* the start of the durable pushes: an app without a mark of its own starts after it */
    int closed;
};

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

/* ------------------------------------------------------------------------ */
/* Queues                                                                     */

static void msg_free(pmsg *m)
{
    if (!m) return;
    free(m->url);
    free(m->sig);
    sr_free(m->body); /* an sr_buf's data (sr_json_write) */
    free(m);
}

static void on_retry(uv_timer_t *t);

static papp *app_find(sr_push *p, const char *op, const char *app, int create)
{
    for (papp *a = p->apps; a; a = a->next)
        if (!strcmp(a->app, app) && !strcmp(a->op, op)) return a;
    if (!create) return NULL;
    papp *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->p = p;
    snprintf(a->op, sizeof a->op, "%s", op);
    snprintf(a->app, sizeof a->app, "%s", app);
    uint64_t through;
    a->has_row = sr_engine_push_mark(p->eng, op, app, &through) == SR_OK;
    if (!a->has_row) through = p->epoch; /* (6) */
    a->last_seq = a->mark_sent = through;
    uv_timer_init(p->loop, &a->retry);
    a->retry.data = a;
    uv_timer_init(p->loop, &a->markt);
    a->markt.data = a;
    a->next = p->apps;
    p->apps = a;
    return a;
}

static void alarm_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "push alarm event not stored", "error=%s", sr_err_name(r->rc));
}

/* Fire and forget: an AlarmEvent saying the app's queue dropped messages:
 * the rule push-dropped of the app (docs/monitoring.md "Alarms"; a raise
 * while the app's alarm is open counts a re-occurrence of it). */
static void raise_alarm(sr_push *p, papp *a)
{
    char msg[256];
    snprintf(msg, sizeof msg, "push queue of app %s over %u: oldest dropped", a->app, p->o.max_queue);
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {a->op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_alarm_step st = {.state = "raised", .rule = "push-dropped", .subject = a->app, .source = "push",
                        .message = msg, .level = SR_AL_MINOR};
    int rc = sr_cmd_alarm(&env, &st, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit(p->eng, &sl, 1, alarm_done, NULL);
    }
    if (rc) sr_slog(SR_LOG_WARN, "push alarm event not queued", "app=%s error=%s", a->app, sr_err_name(rc));
    sr_buf_release(&b);
}

/* ---- the delivered mark (6) ---------------------------------------------- */

static void mark_done(void *ctx, const sr_result *r)
{
    papp *a = ctx; /* engine thread: only the atomic (a lives until sr_push_free, after the engine closed) */
    if (r->rc) sr_slog(SR_LOG_WARN, "push mark not stored", "app=%s error=%s", a->app, sr_err_name(r->rc));
    atomic_store(&a->mark_busy, 0);
}

/* Everything at or below this seq was delivered or dropped. */
static uint64_t app_through(const papp *a) { return a->head ? a->head->seq - 1 : a->last_seq; }

static void on_mark_timer(uv_timer_t *t);

/* Write the app's mark if it moved: at once when none is in flight and the
 * last was mark_every_ms ago (force: at once, at dispose), else later. */
static void mark_maybe(papp *a, int force)
{
    sr_push *p = a->p;
    uint64_t want = app_through(a), now = mono_ms();
    if (want <= a->mark_sent) return;
    if (!force && (atomic_load(&a->mark_busy) || now - a->mark_at < p->o.mark_every_ms)) {
        if (!uv_is_active((uv_handle_t *)&a->markt) && !p->closed) {
            /* the interval's rest, or (one in flight) a moment for its commit */
            uint64_t wait = now - a->mark_at < p->o.mark_every_ms ? p->o.mark_every_ms - (now - a->mark_at) : 10;
            uv_timer_start(&a->markt, on_mark_timer, wait, 0);
        }
        return;
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {a->op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    int rc = sr_cmd_push_mark(&env, a->app, want, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        atomic_store(&a->mark_busy, 1);
        rc = sr_engine_submit(p->eng, &sl, 1, mark_done, a);
        if (rc) atomic_store(&a->mark_busy, 0);
    }
    sr_buf_release(&b);
    a->mark_at = now; /* a failure too: tried again (and logged) at most once per mark_every_ms */
    if (rc) {
        sr_slog(SR_LOG_WARN, "push mark not queued", "app=%s error=%s", a->app, sr_err_name(rc));
        return;
    }
    a->mark_sent = want;
}

static void on_mark_timer(uv_timer_t *t) { mark_maybe(t->data, 0); }

/* (3) One message too many: drop the oldest one not in flight. */
static void app_trim(sr_push *p, papp *a)
{
    while (a->n > p->o.max_queue) {
        pmsg *prev = a->easy ? a->head : NULL; /* the head is in flight: keep it */
        pmsg *m = prev ? prev->next : a->head;
        if (!m) break;
        if (prev) prev->next = m->next;
        else a->head = m->next;
        if (a->tail == m) a->tail = prev;
        a->n--;
        a->dropped++;
        msg_free(m);
        mark_maybe(a, 0);
        uint64_t now = mono_ms();
        if (!a->last_alarm || now - a->last_alarm >= ALARM_EVERY_MS) {
            a->last_alarm = now;
            sr_slog(SR_LOG_WARN, "push queue over its bound: oldest dropped",
                    "op=%s app=%s max_queue=%u dropped_total=%llu", a->op, a->app, p->o.max_queue,
                    (unsigned long long)a->dropped);
            raise_alarm(p, a);
        }
    }
}

/* (1)-(3), (5): one app's queue and transfer state; O(its queue). */
static const char *app_check(const papp *a)
{
    const sr_push *p = a->p;
    if (!a->head != !a->tail || !a->head != !a->n) return "(5) head, tail and n disagree about an empty queue";
    size_t n = 0;
    const pmsg *last = NULL;
    for (const pmsg *m = a->head; m; m = m->next) {
        if (++n > a->n) return "(5) n is not the queue's length";
        if (!m->url || !m->body || !m->id[0]) return "(2) a queued message without its url, body or delivery id";
        if (m != a->head && m->attempts) return "(1) a message behind the head was attempted";
        if (m->attempts && !m->sig) return "(2) an attempted message without its signature";
        if (last && m->seq <= last->seq) return "(6) a queue out of seq order";
        last = m;
    }
    if (n != a->n) return "(5) n is not the queue's length";
    if (a->head && a->mark_sent >= a->head->seq) return "(6) a mark at or past a message still queued";
    if (last != a->tail) return "(5) tail is not the queue's last message";
    if (!a->easy != !a->hdrs) return "(5) a transfer without its headers (or the reverse)";
    if (a->easy && a->waiting) return "(5) an app both sending and waiting";
    if (a->easy && !a->head) return "(1) a transfer with no message at the head";
    if (a->n > p->o.max_queue) return "(3) a queue over max_queue";
    if (a->backoff_ms > p->o.max_backoff_ms) return "(5) a back-off over max_backoff_ms";
    if (p->closed) {
        if (a->easy || a->waiting || a->n) return "(5) an app still busy after dispose";
    } else if (a->head && !a->easy && !a->waiting)
        return "(5) a queue with messages neither sending nor waiting (stalled)";
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Transfers                                                                  */

static void attempt_done(papp *a, int ok, const char *why);

/* idle -> sending: start the head's transfer. */
static void app_kick(papp *a)
{
    sr_push *p = a->p;
    if (p->closed || a->easy || a->waiting || !a->head) return;
    pmsg *m = a->head;
    const char *why = "cannot start the transfer";
    if (!m->sig && sr_sign_body(p->key, m->body, m->len, &m->sig)) {
        why = "cannot sign the body";
        goto fail;
    }
    struct curl_slist *l = sr_signed_headers(p->key, m->sig, "X-Suiro-Delivery", m->id);
    CURL *e = l ? sr_post_easy(m->url, m->body, m->len, l, (long)p->o.connect_timeout_ms, (long)p->o.timeout_ms,
                               a->errbuf, "suiro-push/1")
                : NULL;
    if (!e) goto fail_list;
    if (sr_curlloop_add(p->cl, e, a)) goto fail_list; /* e cleaned up */
    a->easy = e;
    a->hdrs = l;
    m->attempts++;
    sr_slog(SR_LOG_DEBUG, "push attempt", "op=%s app=%s delivery=%s attempt=%u queued=%zu", a->op, a->app, m->id,
            m->attempts, a->n);
    SR_INVARIANT(app_check(a));
    return;
fail_list:
    curl_slist_free_all(l);
fail:
    /* counted as a failed attempt: retried after the back-off, never in a tight loop */
    attempt_done(a, 0, why);
}

static void on_retry(uv_timer_t *t)
{
    papp *a = t->data;
    a->waiting = 0;
    app_kick(a);
    SR_INVARIANT(app_check(a));
}

/* The head's attempt ended: sending -> idle (ok) or -> waiting. */
static void attempt_done(papp *a, int ok, const char *why)
{
    sr_push *p = a->p;
    if (ok) {
        pmsg *m = a->head;
        a->head = m->next;
        if (!a->head) a->tail = NULL;
        a->n--;
        a->delivered++;
        if (a->streak)
            sr_slog(SR_LOG_INFO, "push delivered again", "op=%s app=%s failed_attempts=%llu", a->op, a->app,
                    (unsigned long long)a->streak);
        a->streak = 0;
        a->fails_unlogged = 0;
        a->last_fail_log = 0;
        a->backoff_ms = 0;
        msg_free(m);
        mark_maybe(a, 0);
        app_kick(a);
        SR_INVARIANT(app_check(a));
        return;
    }
    a->retried++;
    a->streak++;
    a->fails_unlogged++;
    uint32_t wait = a->backoff_ms ? a->backoff_ms : p->o.first_backoff_ms;
    a->backoff_ms = wait >= p->o.max_backoff_ms / 2 ? p->o.max_backoff_ms : wait * 2;
    if (wait > p->o.max_backoff_ms) wait = p->o.max_backoff_ms;
    uint64_t now = mono_ms();
    if (!a->last_fail_log || now - a->last_fail_log >= FAIL_LOG_EVERY_MS) {
        sr_slog(SR_LOG_WARN, "push attempt failed", "op=%s app=%s reason=%s failures=%llu queued=%zu retry_ms=%u",
                a->op, a->app, sr_slog_q(why), (unsigned long long)a->fails_unlogged, a->n, wait);
        a->last_fail_log = now;
        a->fails_unlogged = 0;
    }
    a->waiting = 1;
    /* the loop's cached time is from the start of this iteration, which may
     * be long before this callback on a loaded machine: the back-off counts
     * from now, so it is never shorter than `wait` */
    uv_update_time(a->retry.loop);
    uv_timer_start(&a->retry, on_retry, wait, 0);
    /* the head is no longer in flight: the bound may drop it now */
    app_trim(p, a);
    SR_INVARIANT(app_check(a));
}

/* curlloop's callback: the head's transfer ended (the handle is gone). */
static void on_transfer_done(void *priv, CURLcode res, long code)
{
    papp *a = priv;
    curl_slist_free_all(a->hdrs);
    a->hdrs = NULL;
    a->easy = NULL;
    char why[CURL_ERROR_SIZE + 64];
    int ok = res == CURLE_OK && code >= 200 && code < 300;
    if (res != CURLE_OK) snprintf(why, sizeof why, "%s", a->errbuf[0] ? a->errbuf : curl_easy_strerror(res));
    else snprintf(why, sizeof why, "HTTP %ld", code);
    sr_slog(SR_LOG_DEBUG, "push attempt done", "op=%s app=%s ok=%d reason=%s", a->op, a->app, ok, sr_slog_q(why));
    attempt_done(a, ok, why);
}

/* ------------------------------------------------------------------------ */
/* API                                                                        */

void sr_push_opts_default(sr_push_opts *o)
{
    o->max_queue = 10000;
    o->first_backoff_ms = 500;
    o->max_backoff_ms = 60000;
    o->connect_timeout_ms = 5000;
    o->timeout_ms = 10000;
    o->mark_every_ms = 1000;
}

int sr_push_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, const sr_push_opts *o, sr_push **out,
                 char *err, size_t errlen)
{
    sr_push_opts d;
    sr_push_opts_default(&d);
    if (o) {
        if (o->max_queue) d.max_queue = o->max_queue;
        if (o->first_backoff_ms) d.first_backoff_ms = o->first_backoff_ms;
        if (o->max_backoff_ms) d.max_backoff_ms = o->max_backoff_ms;
        if (o->connect_timeout_ms) d.connect_timeout_ms = o->connect_timeout_ms;
        if (o->timeout_ms) d.timeout_ms = o->timeout_ms;
        if (o->mark_every_ms) d.mark_every_ms = o->mark_every_ms;
    }
    if (d.first_backoff_ms > d.max_backoff_ms) d.first_backoff_ms = d.max_backoff_ms;
    sr_push *p = calloc(1, sizeof *p);
    if (!p) return SR_ENOMEM;
    p->loop = loop;
    p->eng = eng;
    p->o = d;
    if (sr_engine_push_mark(eng, "", "", &p->epoch) != SR_OK) p->epoch = 0; /* sr_push_recover sets it */
    int rc = sr_platform_key_load(data_dir, "push", &p->key, err, errlen);
    if (rc) goto fail;
    if ((rc = sr_curlloop_open(loop, on_transfer_done, "push", &p->cl, err, errlen))) goto fail;
    *out = p;
    return SR_OK;
fail:
    sr_sigkey_free(p->key);
    free(p);
    return rc;
}

int sr_push_enqueue(sr_push *p, const char *op, const char *app, const char *path_suffix, json_t *body,
                    uint64_t seq)
{
    if (!p || p->closed) return SR_ECLOSED;
    sr_rec reg = SR_REC_INIT;
    pmsg *m = NULL;
    sr_reg_entry rpe, *rp = &rpe;
    int rc = sr_read_registry(p->eng, op, SR_RG_APP, app, &reg, rp);
    if (rc == SR_ENOTFOUND) {
        rc = SR_OK; /* not (or no longer) registered: nobody to push to */
        goto done;
    }
    if (rc) goto done;
    size_t ul = strlen(rp->url);
    while (ul && rp->url[ul - 1] == '/') ul--;
    if (!ul) goto done; /* the app pulls */
    papp *a = app_find(p, op, app, 1);
    if (a && seq <= a->last_seq) goto done; /* (6): delivered (at or below the mark) or queued already */
    m = calloc(1, sizeof *m);
    if (!a || !m) {
        rc = SR_ENOMEM;
        goto done;
    }
    size_t sl = strlen(path_suffix);
    m->url = malloc(ul + 1 + sl + 1);
    /* the AP-IF's writer: values as sr_json_number writes them in answers */
    sr_buf jb;
    sr_buf_init(&jb);
    if (sr_json_write(&jb, body) == SR_OK && sr_buf_append(&jb, "", 1) == SR_OK) m->body = (char *)jb.data;
    else sr_buf_release(&jb);
    if (!m->url || !m->body) {
        rc = SR_ENOMEM;
        goto done;
    }
    memcpy(m->url, rp->url, ul);
    m->url[ul] = '/';
    memcpy(m->url + ul + 1, path_suffix, sl + 1);
    m->len = strlen(m->body);
    m->seq = seq;
    a->last_seq = seq;
    snprintf(m->id, sizeof m->id, "%llu", (unsigned long long)seq); /* (2): the same after a restart */
    if (a->tail) a->tail->next = m;
    else a->head = m;
    a->tail = m;
    a->n++;
    m = NULL;
    app_trim(p, a);
    app_kick(a);
    SR_INVARIANT(app_check(a));
done:
    msg_free(m);
    sr_rec_close(&reg);
    return rc;
}

/* ---- recovery at start (6) ------------------------------------------------ */

struct opapp {
    char op[72], app[72];
};

typedef struct recov {
    sr_push *p;
    sr_push_derive_fn fn;
    void *ctx;
    uint64_t min, last, events;
    uint64_t start;  /* the start mark's seq (have_start) */
    uint64_t target; /* where the marks move: the last event read that is not a mark (a start after a
                      * quiet stop writes nothing) */
    int have_start;
    size_t nmarks;
    sr_buf adv; /* struct opapp: apps whose marks move to the end */
    int rc;
} recov;

static int recov_min(void *ctx, const char *op, const char *app, uint64_t through)
{
    (void)app;
    recov *r = ctx;
    if (!op[0]) r->have_start = 1, r->start = through;
    if (through < r->min) r->min = through;
    return 0;
}

/* The kinds a server writes by itself at every start, stop or tick and
 * which produce no push: the marks (push's and api/notify.c's) and the
 * signed checkpoints (api/checkpoint.c, one at each clean stop). A mark is
 * not moved past them alone, so a start and stop with nothing else new
 * writes no event (test_push_restart). */
static int bookkeeping_kind(const char *kind)
{
    static const char *const kinds[] = {"push_mark", "notify", "checkpoint"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(kind, kinds[i])) return 1;
    return 0;
}

static int recov_event(void *ctx, const sr_event_view *ev)
{
    recov *r = ctx;
    r->events++;
    if (!bookkeeping_kind(ev->kind)) r->target = ev->seq;
    r->fn(r->ctx, ev);
    return 0;
}

/* one PushMark, durable when this returns (startup: nothing is served yet;
 * one command per mark, a command being one operator's) */
static void recov_add(recov *r, const char *op, const char *app, uint64_t through)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_result res;
    memset(&res, 0, sizeof res);
    int rc = sr_cmd_push_mark(&env, app, through, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        if ((rc = sr_engine_submit_wait(r->p->eng, &sl, 1, &res)))
            sr_slog(SR_LOG_ERROR, "push mark refused", "op=%s app=%s error=%s", op, app, sr_slog_q(res.err.msg));
    }
    if (!rc) r->nmarks++;
    else if (!r->rc) r->rc = rc;
    sr_buf_release(&b);
}

/* an app with a mark and nothing pending: its mark moves to the end of the
 * scan (collected here, written once the read is over) */
static int recov_advance(void *ctx, const char *op, const char *app, uint64_t through)
{
    recov *r = ctx;
    papp *a = op[0] ? app_find(r->p, op, app, 0) : NULL;
    if (!op[0] || through >= r->target || (a && a->head)) return 0;
    size_t n = r->adv.len / sizeof(struct opapp);
    if (sr_buf_reserve(&r->adv, sizeof(struct opapp))) return SR_ENOMEM;
    struct opapp *x = (struct opapp *)(void *)(r->adv.data) + n;
    snprintf(x->op, sizeof x->op, "%s", op);
    snprintf(x->app, sizeof x->app, "%s", app);
    r->adv.len += sizeof *x;
    return 0;
}

int sr_push_recover(sr_push *p, sr_push_derive_fn fn, void *ctx, sr_push_recovery *out)
{
    recov r = {.p = p, .fn = fn, .ctx = ctx, .min = UINT64_MAX};
    int rc = sr_engine_push_marks(p->eng, recov_min, &r);
    /* no start yet (the first start with durable pushes): nothing to derive */
    if (!rc) rc = sr_engine_log_each(p->eng, r.have_start ? r.min + 1 : UINT64_MAX, recov_event, &r, &r.last);
    if (rc) goto done;
    if (!r.have_start) r.target = r.last; /* the first start: everything before is not pushed */
    else if (r.target < r.min) r.target = r.min; /* nothing but marks after the lowest */
    uint64_t from = r.have_start ? r.min + 1 : 0;
    size_t pending = 0, apps = 0;
    /* an engine that does not write (opened read-only for lack of space):
     * the queues are rebuilt, the marks stay (the next start reads again) */
    int writing = sr_engine_write_state(p->eng, NULL) == SR_OK;
    for (papp *a = p->apps; a; a = a->next) {
        if (a->last_seq < r.last) a->last_seq = r.last; /* every event up to r.last was derived */
        if (a->head) { /* one with messages pending has its mark (the start moves past them below) */
            /* one without a mark of its own gets one: the start moves past its messages below */
            if (writing && (!a->has_row || app_through(a) > a->mark_sent))
                recov_add(&r, a->op, a->app, app_through(a));
            pending += a->n;
            apps++;
        }
    }
    sr_buf_init(&r.adv);
    if (writing && !(rc = sr_engine_push_marks(p->eng, recov_advance, &r)))
        for (size_t k = 0; k < r.adv.len / sizeof(struct opapp); k++) {
            const struct opapp *x = (const struct opapp *)(const void *)r.adv.data + k;
            recov_add(&r, x->op, x->app, r.target);
        }
    sr_buf_release(&r.adv);
    if (!rc) rc = r.rc;
    /* last: apps without a mark of their own start after the scan now */
    if (!rc && writing && (!r.have_start || r.target > r.start)) recov_add(&r, "", "", r.target);
    if (!rc) rc = r.rc;
    if (!rc && writing)
        for (papp *a = p->apps; a; a = a->next)
            if (a->mark_sent < app_through(a)) a->mark_sent = app_through(a);
    if (writing && (!r.have_start || r.target > r.start)) p->epoch = r.target;
    else if (r.have_start) p->epoch = r.start;
    sr_slog(pending ? SR_LOG_WARN : SR_LOG_INFO, "push recovered",
            "from_seq=%llu to_seq=%llu events=%llu apps_pending=%zu messages_pending=%zu marks_written=%zu",
            (unsigned long long)from, (unsigned long long)r.last, (unsigned long long)r.events, apps, pending,
            r.nmarks);
    if (out) *out = (sr_push_recovery){from, r.last, r.events, pending};
done:
    return rc;
}

int sr_push_stats(sr_push *p, const char *op, const char *app, sr_push_counts *out)
{
    papp *a = p ? app_find(p, op, app, 0) : NULL;
    if (!a) return SR_ENOTFOUND;
    out->delivered = a->delivered;
    out->retried = a->retried;
    out->dropped = a->dropped;
    out->queued = a->n;
    return SR_OK;
}

void sr_push_each(sr_push *p, void (*fn)(void *ctx, const char *op, const char *app, const sr_push_counts *c),
                  void *ctx)
{
    for (papp *a = p ? p->apps : NULL; a; a = a->next) {
        sr_push_counts c = {a->delivered, a->retried, a->dropped, a->n};
        fn(ctx, a->op, a->app, &c);
    }
}

void sr_push_dispose(sr_push *p)
{
    if (!p || p->closed) return;
    p->closed = 1;
    for (papp *a = p->apps; a; a = a->next) {
        if (a->easy) { /* aborted: the receiver may or may not have it */
            sr_curlloop_abort(p->cl, a->easy);
            curl_slist_free_all(a->hdrs);
            a->easy = NULL;
            a->hdrs = NULL;
        }
        a->waiting = 0;
        uv_timer_stop(&a->retry);
        uv_close((uv_handle_t *)&a->retry, NULL);
        mark_maybe(a, 1); /* (6) a clean stop marks what was delivered */
        uv_timer_stop(&a->markt);
        uv_close((uv_handle_t *)&a->markt, NULL);
        size_t left = a->n;
        while (a->head) {
            pmsg *m = a->head;
            a->head = m->next;
            msg_free(m);
        }
        a->tail = NULL;
        a->n = 0; /* not dropped: above the mark, derived from the log again at the next start (6) */
        sr_slog(left ? SR_LOG_WARN : SR_LOG_INFO, "push stopped",
                "op=%s app=%s delivered=%llu retried=%llu dropped=%llu pending_after_restart=%zu", a->op, a->app,
                (unsigned long long)a->delivered, (unsigned long long)a->retried, (unsigned long long)a->dropped,
                left);
    }
    sr_curlloop_dispose(p->cl); /* (4) */
    SR_INVARIANT(sr_push_check(p));
}

const char *sr_push_check(const sr_push *p)
{
    if (!p) return "NULL push";
    const char *why = sr_curlloop_check(p->cl);
    if (why) return why;
    for (const papp *a = p->apps; a; a = a->next) {
        if (a->p != p) return "(5) an app of another push";
        if ((why = app_check(a))) return why;
    }
    return NULL;
}

void sr_push_test_break(sr_push *p, int what)
{
    papp *a = p->apps;
    int undo = what < 0;
    if (!a) return;
    switch (undo ? -what : what) {
    case SR_PUSH_BREAK_COUNT: a->n = undo ? a->n - 1 : a->n + 1; break;
    case SR_PUSH_BREAK_ATTEMPTED:
        if (a->head && a->head->next) a->head->next->attempts = undo ? 0 : 1;
        break;
    case SR_PUSH_BREAK_STALL: a->waiting = undo; break;
    case SR_PUSH_BREAK_ORDER:
        if (a->head && a->head->next) {
            uint64_t s = a->head->seq;
            a->head->seq = a->head->next->seq;
            a->head->next->seq = s;
        }
        break;
    case SR_PUSH_BREAK_MARK: a->mark_sent = undo ? a->mark_sent - 1000000 : a->mark_sent + 1000000; break;
    default: break;
    }
}

void sr_push_free(sr_push *p)
{
    if (!p) return;
    while (p->apps) {
        papp *a = p->apps;
        p->apps = a->next;
        /* a mark submitted at dispose completes on the engine's thread, into
         * a: wait for it (already done when the engine was closed first) */
        while (atomic_load(&a->mark_busy)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        while (a->head) {
            pmsg *m = a->head;
            a->head = m->next;
            msg_free(m);
        }
        free(a);
    }
    sr_sigkey_free(p->key);
    sr_curlloop_free(p->cl);
    free(p);
}
