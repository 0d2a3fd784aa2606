/* api/loginguard.c -- see loginguard.h (the contract and the policy). */
#include "api/loginguard.h"

#include "api/cluster_fwd.h"
#include "api/workq.h"

#include "api/httpu.h"
#include "api/metrics.h"
#include "api/slog.h"
#include "codecs/base/sr_hash.h"
#include "engine/records.h"
#include "engine/secret.h"
#include "storage/crypto.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sr_login_policy_default(sr_login_policy *p)
{
    p->free_failures = 5;
    p->backoff_max_ms = 300000;
    p->address_failures = 30;
    p->address_refill_ms = 6000;
    p->principal_failures = 20;
    p->principal_refill_ms = 30000;
    p->table_max = 16384;
    p->workers = 2;
    p->queue_max = 1024;
    p->queue_per_address = 256;
}

const char *sr_lg_name(int v)
{
    static const char *n[] = {"ok", "backoff", "address", "principal", "busy"};
    return v >= 0 && v <= SR_LG_BUSY ? n[v] : "?";
}

/* ------------------------------------------------------------------------ */
/* The throttle: one table of records, hashed, in LRU order                  */

enum { KEY_MAX = 232 };

typedef struct rec {
    char key[KEY_MAX]; /* "A|addr", "P|principal", "K|principal|addr" */
    uint32_t hash, fails;
    uint32_t pending;  /* pairs: checks in flight */
    double tokens;     /* buckets: failures still allowed */
    uint64_t t;        /* buckets: last refill; pairs: unused */
    uint64_t until;    /* pairs: refused until */
    uint64_t noted, noted_retry; /* the last refusal recorded as an event: its period's end, its retry */
    int32_t hnext, prev, next; /* hash chain; LRU list (head: most recent) */
} rec;

struct sr_lthr {
    sr_login_policy p;
    rec *r;
    uint32_t n, cap;   /* records in use (r[0..n)), room allocated */
    int32_t *bucket;   /* hash heads, -1 empty */
    uint32_t nb;       /* power of two */
    int32_t head, tail;
};

static uint32_t key_hash(const char *s) { return sr_hash(s, strlen(s)); }

sr_lthr *sr_lthr_new(const sr_login_policy *p)
{
    sr_lthr *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->p = *p;
    if (t->p.table_max < 3) t->p.table_max = 3;
    if (t->p.free_failures < 1) t->p.free_failures = 1;
    t->nb = 16;
    while (t->nb < t->p.table_max) t->nb <<= 1;
    t->bucket = malloc(t->nb * sizeof *t->bucket);
    if (!t->bucket) {
        free(t);
        return NULL;
    }
    memset(t->bucket, 0xff, t->nb * sizeof *t->bucket);
    t->head = t->tail = -1;
    return t;
}

void sr_lthr_free(sr_lthr *t)
{
    if (!t) return;
    free(t->r);
    free(t->bucket);
    free(t);
}

size_t sr_lthr_size(const sr_lthr *t) { return t->n; }

static void lru_unlink(sr_lthr *t, int32_t i)
{
    rec *e = &t->r[i];
    if (e->prev >= 0) t->r[e->prev].next = e->next;
    else t->head = e->next;
    if (e->next >= 0) t->r[e->next].prev = e->prev;
    else t->tail = e->prev;
}

static void lru_front(sr_lthr *t, int32_t i)
{
    rec *e = &t->r[i];
    e->prev = -1;
    e->next = t->head;
    if (t->head >= 0) t->r[t->head].prev = i;
    t->head = i;
    if (t->tail < 0) t->tail = i;
}

static int32_t find(sr_lthr *t, const char *key, uint32_t h)
{
    for (int32_t i = t->bucket[h & (t->nb - 1)]; i >= 0; i = t->r[i].hnext)
        if (t->r[i].hash == h && !strcmp(t->r[i].key, key)) return i;
    return -1;
}

static void hash_unlink(sr_lthr *t, int32_t i)
{
    int32_t *pp = &t->bucket[t->r[i].hash & (t->nb - 1)];
    while (*pp != i) pp = &t->r[*pp].hnext;
    *pp = t->r[i].hnext;
}

/* Remove record i; the last record moves into its slot. */
static void rec_remove(sr_lthr *t, int32_t i)
{
    hash_unlink(t, i);
    lru_unlink(t, i);
    int32_t last = (int32_t)--t->n;
    if (i == last) return;
    /* move `last` to `i`: fix the links that point at it */
    rec *m = &t->r[last];
    int32_t *pp = &t->bucket[m->hash & (t->nb - 1)];
    while (*pp != last) pp = &t->r[*pp].hnext;
    *pp = i;
    if (m->prev >= 0) t->r[m->prev].next = i;
    else t->head = i;
    if (m->next >= 0) t->r[m->next].prev = i;
    else t->tail = i;
    t->r[i] = *m;
}

/* The record for key, made (zeroed, tokens = fill) if absent; -1 if no memory. */
static int32_t get(sr_lthr *t, const char *key, double fill, uint64_t now)
{
    uint32_t h = key_hash(key);
    int32_t i = find(t, key, h);
    if (i >= 0) {
        lru_unlink(t, i);
        lru_front(t, i);
        return i;
    }
    if (t->n == t->p.table_max) rec_remove(t, t->tail); /* forget the least recently touched */
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 64;
        if (nc > t->p.table_max) nc = t->p.table_max;
        rec *nr = realloc(t->r, nc * sizeof *nr);
        if (!nr) return -1;
        t->r = nr;
        t->cap = nc;
    }
    i = (int32_t)t->n++;
    rec *e = &t->r[i];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->hash = h;
    e->tokens = fill;
    e->t = now;
    e->hnext = t->bucket[h & (t->nb - 1)];
    t->bucket[h & (t->nb - 1)] = i;
    lru_front(t, i);
    return i;
}

static void refill(rec *e, uint32_t burst, uint32_t every_ms, uint64_t now)
{
    if (now > e->t && every_ms) e->tokens += (double)(now - e->t) / every_ms;
    if (e->tokens > burst) e->tokens = burst;
    e->t = now;
}

/* ms until the bucket holds one token again (rounded up, at least 1) */
static uint64_t wait_token(const rec *e, uint32_t every_ms)
{
    double w = ceil((1.0 - e->tokens) * every_ms - 1e-6);
    return w < 1 ? 1 : (uint64_t)w;
}

static void keys(const char *principal, const char *addr, char a[KEY_MAX], char p[KEY_MAX], char k[KEY_MAX])
{
    snprintf(a, KEY_MAX, "A|%.64s", addr);
    snprintf(p, KEY_MAX, "P|%.160s", principal);
    snprintf(k, KEY_MAX, "K|%.160s|%.64s", principal, addr);
}

int sr_lthr_check(sr_lthr *t, const char *principal, const char *addr, uint64_t now, uint64_t *retry_ms)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    *retry_ms = 0;
    int32_t a = find(t, ka, key_hash(ka));
    if (a >= 0) {
        rec *e = &t->r[a];
        refill(e, t->p.address_failures, t->p.address_refill_ms, now);
        if (e->tokens < 1) {
            *retry_ms = wait_token(e, t->p.address_refill_ms);
            return SR_LG_ADDRESS;
        }
    }
    int32_t k = find(t, kk, key_hash(kk));
    if (k >= 0 && t->r[k].until > now) {
        *retry_ms = t->r[k].until - now;
        return SR_LG_BACKOFF;
    }
    if (k >= 0 && t->r[k].pending && t->r[k].fails + t->r[k].pending >= t->p.free_failures) {
        /* the last free tries (or, past them, the one try the back-off
         * allows) are in flight: a burst of concurrent guesses gets no more
         * checks than one after the other would */
        *retry_ms = 1000;
        return SR_LG_BACKOFF;
    }
    int32_t p = find(t, kp, key_hash(kp));
    if (p >= 0 && k >= 0 && t->r[k].fails > 0) {
        rec *e = &t->r[p];
        refill(e, t->p.principal_failures, t->p.principal_refill_ms, now);
        if (e->tokens < 1) {
            *retry_ms = wait_token(e, t->p.principal_refill_ms);
            return SR_LG_PRINCIPAL;
        }
    }
    return SR_LG_OK;
}

/* the pair's back-off after e->fails failures */
static void backoff_set(const sr_lthr *t, rec *e, uint64_t now)
{
    if (e->fails < t->p.free_failures) return;
    uint32_t sh = e->fails - t->p.free_failures;
    uint64_t ms = sh >= 30 ? t->p.backoff_max_ms : (uint64_t)1000 << sh;
    if (ms > t->p.backoff_max_ms) ms = t->p.backoff_max_ms;
    e->until = now + ms;
}

void sr_lthr_refused(sr_lthr *t, const char *principal, const char *addr, uint64_t now)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    int32_t k = find(t, kk, key_hash(kk));
    if (k < 0) return;
    t->r[k].fails++;
    backoff_set(t, &t->r[k], now);
}

int sr_lthr_note(sr_lthr *t, const char *principal, const char *addr, int verdict, uint64_t retry_ms, uint64_t now)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    const char *key = verdict == SR_LG_ADDRESS ? ka : verdict == SR_LG_PRINCIPAL ? kp : kk;
    int32_t i = find(t, key, key_hash(key));
    if (i < 0) return 1;
    rec *e = &t->r[i];
    if (e->noted && now < e->noted && retry_ms < 2 * e->noted_retry) return 0;
    e->noted = now + (retry_ms ? retry_ms : 1);
    e->noted_retry = retry_ms;
    return 1;
}

void sr_lthr_extend(sr_lthr *t, const char *principal, const char *addr, uint64_t until)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    int32_t k = find(t, kk, key_hash(kk));
    if (k >= 0 && t->r[k].until < until) t->r[k].until = until;
}

void sr_lthr_start(sr_lthr *t, const char *principal, const char *addr, uint64_t now)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    int32_t k = get(t, kk, 0, now);
    if (k >= 0) t->r[k].pending++;
}

void sr_lthr_cancel(sr_lthr *t, const char *principal, const char *addr)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    int32_t k = find(t, kk, key_hash(kk));
    if (k >= 0 && t->r[k].pending) t->r[k].pending--;
}

void sr_lthr_result(sr_lthr *t, const char *principal, const char *addr, int ok, uint64_t now)
{
    char ka[KEY_MAX], kp[KEY_MAX], kk[KEY_MAX];
    keys(principal, addr, ka, kp, kk);
    sr_lthr_cancel(t, principal, addr);
    if (ok) {
        int32_t k = find(t, kk, key_hash(kk));
        if (k >= 0) rec_remove(t, k);
        return;
    }
    int32_t i = get(t, ka, t->p.address_failures, now);
    if (i >= 0) {
        refill(&t->r[i], t->p.address_failures, t->p.address_refill_ms, now);
        if (t->r[i].tokens >= 1) t->r[i].tokens -= 1;
        else t->r[i].tokens = 0;
    }
    if ((i = get(t, kp, t->p.principal_failures, now)) >= 0) {
        refill(&t->r[i], t->p.principal_failures, t->p.principal_refill_ms, now);
        if (t->r[i].tokens >= 1) t->r[i].tokens -= 1;
        else t->r[i].tokens = 0;
    }
    if ((i = get(t, kk, 0, now)) >= 0) {
        t->r[i].fails++;
        backoff_set(t, &t->r[i], now);
    }
}

void sr_login_principal(char kind, const char *op, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%c|%.71s|%.71s", kind, op, id);
}

void sr_login_addr_sa(const struct sockaddr *sa, char out[64])
{
    out[0] = 0;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, 64);
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            inet_ntop(AF_INET, &a.s6_addr[12], out, 64);
            return;
        }
        memset(&a.s6_addr[8], 0, 8);
        char b[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &a, b, sizeof b)) snprintf(out, 64, "%s/64", b);
    }
}

void sr_login_addr_peer(const char *peer, char out[64])
{
    char host[64];
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n && peer[0] == '[' && peer[n - 1] == ']') {
        peer++;
        n -= 2;
    }
    if (n >= sizeof host) n = sizeof host - 1;
    memcpy(host, peer, n);
    host[n] = 0;
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof s4);
    if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        sr_login_addr_sa((struct sockaddr *)&s6, out);
    } else if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        sr_login_addr_sa((struct sockaddr *)&s4, out);
    } else
        snprintf(out, 64, "%s", host);
}

/* ------------------------------------------------------------------------ */
/* The guard: the throttle, a bounded queue served round-robin by address,   */
/* scrypt workers                                                             */

/* The jobs waiting from one address, oldest first. A slot exists while it
 * holds a job: at most queue_max of them, preallocated. */
typedef struct aslot {
    char addr[64];
    sr_login_job *h, *t;
    uint32_t n;
    struct aslot *next; /* the ring of busy slots, or the free list */
} aslot;

struct sr_loginguard {
    sr_login_policy p;
    sr_lthr *thr;      /* loop thread only */
    sr_loopq doneq;    /* checked jobs back to the loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    aslot *slots;      /* queue_max of them */
    aslot *ring;       /* (mu) the next slot to serve; its ring goes round through ->next */
    aslot *ring_prev;  /* (mu) the slot before `ring` (to unlink it) */
    aslot *free_slots; /* (mu) */
    uint32_t nq;       /* (mu) jobs waiting */
    int stop;          /* (mu) */
    int held;          /* (mu) tests: workers take nothing while set */
    pthread_t *th;
    uint32_t nth;
    int stopped;       /* loop thread: sr_loginguard_stop ran */
    sr_engine *eng;    /* the trail (sr_loginguard_restore), or NULL */
    atomic_uint_fast64_t checks;
    uint64_t throttled, busy; /* loop thread */
};

/* The throttle's clock: monotonic, offset by 2^40 ms (35 years), so that a
 * time restored from the trail (now minus an age up to the policy's window)
 * is never below zero, also just after boot. */
#define MONO_BASE ((uint64_t)1 << 40)
static uint64_t mono_ms(void) { return uv_hrtime() / 1000000 + MONO_BASE; }

/* mu held: the slot of addr, or NULL */
static aslot *slot_find(sr_loginguard *g, const char *addr)
{
    aslot *x = g->ring;
    if (!x) return NULL;
    do {
        if (!strcmp(x->addr, addr)) return x;
        x = x->next;
    } while (x != g->ring);
    return NULL;
}

/* mu held: a new slot for addr, last in the round (just before `ring`) */
static aslot *slot_add(sr_loginguard *g, const char *addr)
{
    aslot *x = g->free_slots;
    g->free_slots = x->next;
    memset(x, 0, sizeof *x);
    snprintf(x->addr, sizeof x->addr, "%s", addr);
    if (!g->ring) {
        x->next = x;
        g->ring = g->ring_prev = x;
    } else {
        x->next = g->ring;
        g->ring_prev->next = x;
        g->ring_prev = x;
    }
    return x;
}

/* mu held: x (now empty) leaves the ring */
static void slot_drop(sr_loginguard *g, aslot *x)
{
    aslot *prev = g->ring_prev;
    while (prev->next != x) prev = prev->next;
    if (prev == x) g->ring = g->ring_prev = NULL; /* the only one */
    else {
        prev->next = x->next;
        if (g->ring == x) g->ring = x->next;
        if (g->ring_prev == x) g->ring_prev = prev;
    }
    x->next = g->free_slots;
    g->free_slots = x;
}

/* mu held, a job waiting: the oldest job of the slot whose turn it is; the
 * turn passes to the next slot */
static sr_login_job *take(sr_loginguard *g)
{
    aslot *x = g->ring;
    sr_login_job *j = x->h;
    x->h = j->qnext;
    if (!x->h) x->t = NULL;
    x->n--;
    g->nq--;
    g->ring_prev = x;
    g->ring = x->next;
    if (!x->n) slot_drop(g, x);
    return j;
}

static void *worker(void *arg)
{
    sr_loginguard *g = arg;
    sr_thread_background(); /* scrypt is bulk work (api/workq.h invariant 4) */
    for (;;) {
        pthread_mutex_lock(&g->mu);
        while ((!g->nq || g->held) && !g->stop) pthread_cond_wait(&g->cv, &g->mu);
        if (g->stop) {
            pthread_mutex_unlock(&g->mu);
            return NULL;
        }
        sr_login_job *j = take(g);
        pthread_mutex_unlock(&g->mu);
        /* (1): one scrypt, with the stored hash or the dummy */
        j->ok = sr_secret_check(j->secret, j->stored.data, j->stored.len);
        memset(j->secret, 0, sizeof j->secret);
        j->checked = 1;
        j->verdict = SR_LG_OK;
        atomic_fetch_add(&g->checks, 1);
        sr_loopq_push(&g->doneq, &j->li);
    }
}

static void on_checked(void *ctx, sr_loopq_item *it)
{
    sr_loginguard *g = ctx;
    sr_login_job *j = SR_CONTAINER(it, sr_login_job, li);
    if (j->checked) sr_lthr_result(g->thr, j->principal, j->addr, j->ok, mono_ms());
    if (j->checked && !j->ok) sr_metrics_login_failed(SR_MLOGIN_WRONG);
    else if (j->principal[0]) sr_lthr_cancel(g->thr, j->principal, j->addr); /* displaced, or stopping */
    j->done(j);
}

int sr_loginguard_open(uv_loop_t *loop, const sr_login_policy *p, sr_loginguard **out)
{
    *out = NULL;
    sr_loginguard *g = calloc(1, sizeof *g);
    if (!g) return SR_ENOMEM;
    g->p = *p;
    if (g->p.workers < 1) g->p.workers = 1;
    if (g->p.queue_max < 1) g->p.queue_max = 1;
    if (g->p.queue_per_address < 1) g->p.queue_per_address = 1;
    if (!(g->thr = sr_lthr_new(&g->p)) || !(g->th = calloc(g->p.workers, sizeof *g->th)) ||
        !(g->slots = calloc(g->p.queue_max, sizeof *g->slots))) {
        sr_lthr_free(g->thr);
        free(g->th);
        free(g);
        return SR_ENOMEM;
    }
    for (uint32_t i = 0; i < g->p.queue_max; i++) {
        g->slots[i].next = g->free_slots;
        g->free_slots = &g->slots[i];
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    atomic_init(&g->checks, 0);
    sr_loopq_init(&g->doneq, loop, on_checked, g);
    for (; g->nth < g->p.workers; g->nth++)
        if (pthread_create(&g->th[g->nth], NULL, worker, g) != 0) break;
    *out = g;
    if (!g->nth) return SR_ENOMEM; /* the caller frees it (sr_loginguard_stop, then _free) */
    return SR_OK;
}

/* mu held, queue full: the newest job of the address with the most jobs
 * waiting, if it has more than mine + 1 (then it makes room); else NULL */
static sr_login_job *displace(sr_loginguard *g, uint32_t mine)
{
    aslot *best = NULL, *x = g->ring;
    do {
        if (x->n > mine + 1 && (!best || x->n > best->n)) best = x;
        x = x->next;
    } while (x != g->ring);
    if (!best) return NULL;
    sr_login_job *victim = best->t, *prev = NULL;
    for (sr_login_job *q = best->h; q != victim; q = q->qnext) prev = q;
    if (prev) prev->qnext = NULL;
    else best->h = NULL;
    best->t = prev;
    best->n--; /* more than 1 was waiting there: the slot stays */
    g->nq--;
    return victim;
}

static int actor_of(char kind)
{
    return kind == 'g' ? SR_ACTOR_GATEWAY : kind == 'a' ? SR_ACTOR_APP : kind == 'u' ? SR_ACTOR_USER : SR_ACTOR_UNKNOWN;
}

int sr_loginguard_submit(sr_loginguard *g, sr_login_job *j, char kind, const char *op, const char *id,
                         const char *addr, uint64_t *retry_ms)
{
    j->g = g;
    j->ok = j->checked = 0;
    j->verdict = SR_LG_OK;
    j->qnext = NULL;
    sr_login_principal(kind, op, id, j->principal, sizeof j->principal);
    snprintf(j->addr, sizeof j->addr, "%s", addr);
    int v = g->stopped ? SR_LG_BUSY : sr_lthr_check(g->thr, j->principal, j->addr, mono_ms(), retry_ms);
    if (v) {
        if (v == SR_LG_BUSY) g->busy++, *retry_ms = 1000;
        else g->throttled++, sr_metrics_login_failed(SR_MLOGIN_THROTTLED);
        if (v == SR_LG_BACKOFF) /* hammering during the back-off prolongs it */
            sr_lthr_refused(g->thr, j->principal, j->addr, mono_ms());
        if (v != SR_LG_BUSY && g->eng && sr_lthr_note(g->thr, j->principal, j->addr, v, *retry_ms, mono_ms())) {
            char why[96];
            snprintf(why, sizeof why, "throttled (%s): retry after %" PRIu64 " ms", sr_lg_name(v), *retry_ms);
            sr_login_audit_event(g->eng, actor_of(kind), op, id, 0, "throttle", why, j->addr);
        }
        return v;
    }
    sr_login_job *out = NULL;
    pthread_mutex_lock(&g->mu);
    aslot *x = slot_find(g, j->addr);
    uint32_t mine = x ? x->n : 0;
    if (mine >= g->p.queue_per_address || (g->nq >= g->p.queue_max && !(out = displace(g, mine)))) v = SR_LG_BUSY;
    else {
        if (!x) x = slot_add(g, j->addr); /* a slot is free: fewer than queue_max jobs wait */
        if (x->t) x->t->qnext = j;
        else x->h = j;
        x->t = j;
        x->n++;
        g->nq++;
        pthread_cond_signal(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    if (!v) sr_lthr_start(g->thr, j->principal, j->addr, mono_ms());
    if (out) { /* (2): the displaced job completes "busy" */
        memset(out->secret, 0, sizeof out->secret);
        out->verdict = SR_LG_BUSY;
        out->retry_ms = 1000;
        g->busy++;
        sr_loopq_push(&g->doneq, &out->li);
    }
    if (v) {
        *retry_ms = 1000;
        g->busy++;
    }
    return v;
}

void sr_loginguard_pass(sr_loginguard *g, sr_login_job *j)
{
    j->g = g;
    j->principal[0] = 0; /* nothing reserved in the throttle */
    j->ok = 1;
    j->checked = 0;
    j->verdict = SR_LG_OK;
    memset(j->secret, 0, sizeof j->secret);
    sr_loopq_push(&g->doneq, &j->li);
}

void sr_loginguard_hold(sr_loginguard *g, int on)
{
    pthread_mutex_lock(&g->mu);
    g->held = on;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void sr_loginguard_stats(sr_loginguard *g, sr_login_stats *out)
{
    out->checks = atomic_load(&g->checks);
    out->throttled = g->throttled;
    out->busy = g->busy;
    out->records = sr_lthr_size(g->thr);
}

void sr_loginguard_stop(sr_loginguard *g)
{
    if (!g || g->stopped) return;
    g->stopped = 1;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    for (uint32_t i = 0; i < g->nth; i++) pthread_join(g->th[i], NULL);
    g->nth = 0;
    /* the workers are gone: what still waits completes "busy" */
    while (g->nq) {
        sr_login_job *j = take(g);
        memset(j->secret, 0, sizeof j->secret);
        j->verdict = SR_LG_BUSY;
        j->retry_ms = 1000;
        sr_loopq_push(&g->doneq, &j->li);
    }
    sr_loopq_drain(&g->doneq); /* (2): every done callback, on the loop */
    sr_slog(SR_LOG_INFO, "login guard stopped", "checks=%" PRIu64 " throttled=%" PRIu64 " busy=%" PRIu64 " records=%zu",
            (uint64_t)atomic_load(&g->checks), g->throttled, g->busy, sr_lthr_size(g->thr));
}

void sr_loginguard_free(sr_loginguard *g)
{
    if (!g) return;
    sr_loginguard_stop(g);
    sr_loopq_destroy(&g->doneq);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    sr_lthr_free(g->thr);
    free(g->th);
    free(g->slots);
    free(g);
}

/* ------------------------------------------------------------------------ */

static void audit_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "audit event not stored", "error=%s", sr_err_name(r->rc));
}

/* submit the one event a builder appended to b (fire and forget), release b */
static void audit_submit(sr_engine *eng, int built, sr_buf *b)
{
    if (built == SR_OK) {
        sr_slice sl = {b->data, b->len};
        int rc = sr_engine_submit(eng, &sl, 1, audit_done, NULL);
        if (rc) sr_slog(SR_LOG_WARN, "audit event not queued", "error=%s", sr_err_name(rc));
    }
    sr_buf_release(b);
}

void sr_login_audit_event(sr_engine *eng, int kind, const char *op, const char *id, int success, const char *method,
                          const char *reason, const char *source)
{
    if (!eng) return;
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, id, (sr_actor_kind)kind, NULL, source};
    audit_submit(eng, sr_cmd_auth(&env, (sr_actor_kind)kind, id, success, method, reason, &b), &b);
}

void sr_login_audit(sr_engine *eng, int kind, const char *op, const char *id, const char *reason, const char *source)
{
    sr_login_audit_event(eng, kind, op, id, 0, "password", reason, source);
}

void sr_login_session_audit(sr_engine *eng, int kind, const char *op, const char *id, sr_session_state state,
                            const char *protocol, const char *reason, const char *source)
{
    if (!eng) return;
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, id, (sr_actor_kind)kind, NULL, source};
    audit_submit(eng, sr_cmd_session(&env, (sr_actor_kind)kind, id, state, protocol, reason, &b), &b);
}

uint64_t sr_login_window_ms(const sr_login_policy *p)
{
    uint64_t w = p->backoff_max_ms, a = (uint64_t)p->address_failures * p->address_refill_ms,
             q = (uint64_t)p->principal_failures * p->principal_refill_ms;
    if (a > w) w = a;
    if (q > w) w = q;
    return w;
}

/* The throttle's address of a row's source: "a.b.c.d", "a.b.c.d:port",
 * "[v6]:port", a bare v6 address, or a v6 /64 as the throttle writes it. */
static void restore_addr(const char *src, char out[64])
{
    struct in6_addr a6;
    if (strchr(src, '/')) snprintf(out, 64, "%s", src);
    else if (inet_pton(AF_INET6, src, &a6) == 1) {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        s6.sin6_addr = a6;
        sr_login_addr_sa((struct sockaddr *)&s6, out);
    } else
        sr_login_addr_peer(src, out);
}

typedef struct kept_login {
    char principal[160], addr[64];
    int64_t ms;
    int what;       /* 0 failure, 1 success, 2 refused during a back-off */
    uint64_t retry; /* 2: the retry it was answered */
} kept_login;

int sr_loginguard_restore(sr_loginguard *g, sr_engine *eng, int64_t wall_ms)
{
    g->eng = eng;
    if (!eng) return 0;
    uint64_t win = sr_login_window_ms(&g->p);
    sr_audit_query q = {.from_ms = wall_ms - (int64_t)win, .to_ms = wall_ms, .kind = "login,login_failed,session",
                        .newest_first = 1, .limit = 1000};
    kept_login *v = NULL;
    size_t n = 0, cap = 0;
    int rc = SR_OK, more = 1;
    sr_rec r = SR_REC_INIT;
    /* newest first, in pages, until the window or restore_max ends */
    size_t max = g->p.table_max; /* the throttle holds no more records than that */
    while (!rc && more && n < max) {
        if ((rc = sr_list_audit(eng, &q, &r, &more))) break;
        sr_audit_rec a;
        int k;
        while ((k = sr_rec_next_audit(&r, &a)) == 1) {
            q.after_ms = a.ms;
            q.after_seq = a.seq;
            char kind = a.actor_kind == SR_ACTOR_GATEWAY ? 'g' : a.actor_kind == SR_ACTOR_APP ? 'a'
                        : a.actor_kind == SR_ACTOR_USER  ? 'u' : 0;
            int throttled = !strcmp(a.action, "throttle");
            int opened = !strcmp(a.kind, "session"); /* a session opened: a success (a user's login has no other) */
            if (!kind || (throttled && strncmp(a.detail, "throttled (backoff)", 19)) ||
                (opened && strcmp(a.action, "opened")))
                continue;
            if (n == max) break;
            if (sr_array_reserve(&v, &cap, n + 1, sizeof *v)) {
                rc = SR_ENOMEM;
                break;
            }
            kept_login *x = &v[n++];
            /* a user's principal has no operator (users are the platform's: admin_http.c) */
            sr_login_principal(kind, kind == 'u' ? "" : a.op, a.actor, x->principal, sizeof x->principal);
            restore_addr(a.source, x->addr);
            x->ms = a.ms;
            x->what = opened || !strcmp(a.kind, "login") ? 1 : throttled ? 2 : 0;
            const char *ra = throttled ? strstr(a.detail, "retry after ") : NULL;
            x->retry = ra ? strtoull(ra + 12, NULL, 10) : 0;
        }
        if (k < 0 && !rc) rc = k;
    }
    sr_rec_close(&r);
    /* oldest first into the throttle, each at its time on the throttle's clock */
    uint64_t now = mono_ms();
    for (size_t i = n; !rc && i-- > 0;) {
        kept_login *x = &v[i];
        uint64_t age = wall_ms > x->ms ? (uint64_t)(wall_ms - x->ms) : 0;
        uint64_t at = now - age;
        if (x->what == 2) {
            sr_lthr_refused(g->thr, x->principal, x->addr, at);
            sr_lthr_extend(g->thr, x->principal, x->addr, at + x->retry);
        } else sr_lthr_result(g->thr, x->principal, x->addr, x->what == 1, at);
    }
    sr_free(v);
    if (rc) {
        sr_slog(SR_LOG_WARN, "login throttle not restored", "error=%s", sr_err_name(rc));
        return rc;
    }
    sr_slog(SR_LOG_INFO, "login throttle restored", "rows=%zu window_ms=%" PRIu64 " records=%zu", n, win,
            sr_lthr_size(g->thr));
    return (int)n;
}

/* ------------------------------------------------------------------------ */

int sr_login_str_ok(const json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) < max && strlen(json_string_value(v)) == json_string_length(v);
}

void sr_login_addr_req(h2o_req_t *req, char out[64])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    out[0] = 0;
    if (sr_fwd_client_addr(req, out)) return; /* forwarded by a peer node: the client's, "via" the node */
    if (req->conn->callbacks->get_peername && req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss))
        sr_login_addr_sa((struct sockaddr *)&ss, out);
}

void sr_login_http_refuse(h2o_req_t *req, const char *what, const char *op, const char *id, const char *addr,
                          int verdict, uint64_t retry_ms)
{
    uint64_t secs = (retry_ms + 999) / 1000;
    if (secs < 1) secs = 1;
    char ra[24], msg[160];
    int n = snprintf(ra, sizeof ra, "%" PRIu64, secs);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, ra, (size_t)n).base,
                   (size_t)n);
    if (verdict == SR_LG_BUSY)
        snprintf(msg, sizeof msg, "busy: too many logins waiting for a check; retry after %" PRIu64 " s", secs);
    else
        snprintf(msg, sizeof msg, "too many failed logins (%s); retry after %" PRIu64 " s", sr_lg_name(verdict), secs);
    sr_slog(SR_LOG_WARN, verdict == SR_LG_BUSY ? "login checks busy" : "login throttled",
            "who=%s op=%s id=%s addr=%s binding=http reason=%s retry_ms=%" PRIu64 " checked=0", what, sr_slog_q(op),
            sr_slog_q(id), addr, sr_lg_name(verdict), retry_ms);
    sr_http_result(req, 429, SR_WIRE_BUSY, msg, NULL);
}

void sr_login_stored(sr_engine *eng, char kind, const char *op, const char *id, sr_buf *out)
{
    sr_rec r = SR_REC_INIT;
    if (kind == 'u') { /* a user (the platform's: op is ""); a deleted user has no password */
        sr_user u;
        if (sr_read_user(eng, id, &r, &u) == SR_OK) (void)!sr_buf_append(out, u.password_hash.data, u.password_hash.len);
        sr_rec_close(&r);
        return;
    }
    sr_reg_entry re;
    /* a disabled app or gateway has no stored secret here: refused like an unknown one */
    if (sr_read_registry(eng, op, kind == 'a' ? SR_RG_APP : SR_RG_GATEWAY, id, &r, &re) == SR_OK && !re.disabled)
        (void)!sr_buf_append(out, re.secret_hash.data, re.secret_hash.len);
    sr_rec_close(&r);
}

/* ---- revocation at once ---- */

static void secret_print(const void *hash, size_t len, uint8_t out[16])
{
    uint8_t d[32];
    sr_sha256(len ? hash : (const void *)"", len, d);
    memcpy(out, d, 16);
}

/* The principal's entry now: NULL and its secret's fingerprint, or why it
 * may not have a session (gone: what a session is told when it is not
 * registered any more). */
static const char *entry_now(sr_engine *eng, char kind, const char *op, const char *id, const char *gone,
                             uint8_t print[16])
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(eng, op, kind == 'a' ? SR_RG_APP : SR_RG_GATEWAY, id, &r, &re);
    const char *why = rc == SR_ENOTFOUND ? gone : rc ? "its registry entry cannot be read" : re.disabled ? "disabled" : NULL;
    if (!why) secret_print(re.secret_hash.data, re.secret_hash.len, print);
    sr_rec_close(&r);
    return why;
}

const char *sr_login_seen_init(sr_engine *eng, char kind, const char *op, const char *id, const sr_buf *checked,
                               sr_login_seen *s)
{
    s->gen = sr_engine_registry_gen(eng); /* before the read: a change after it moves it again */
    const char *why = entry_now(eng, kind, op, id, "not registered", s->secret);
    if (why) return why;
    if (checked) {
        uint8_t was[16];
        secret_print(checked->data, checked->len, was);
        if (memcmp(was, s->secret, 16)) return "secret rotated";
    }
    return NULL;
}

const char *sr_login_reread(sr_engine *eng, char kind, const char *op, const char *id, sr_login_seen *s)
{
    uint64_t gen = sr_engine_registry_gen(eng);
    uint8_t now[16];
    const char *why = entry_now(eng, kind, op, id, "deleted", now);
    if (!why && memcmp(now, s->secret, 16)) why = "secret rotated";
    if (!why) s->gen = gen;
    return why;
}
