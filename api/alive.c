/*
 * api/alive.c -- the alive status of gateways and apps (see alive.h and
 * docs/monitoring.md "Alive status").
 */
#include "api/alive.h"

#include "api/slog.h"
#include "codecs/base/sr_hash.h"
#include "codecs/rfc3339.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NBUCKETS = 1024 };

struct sr_alive {
    sr_engine *eng;
    uint32_t silence_ms;
    pthread_mutex_t mu; /* (3): the buckets' chains */
    sr_alive_ent *b[NBUCKETS];
};

sr_alive *sr_alive_new(sr_engine *eng, uint32_t http_silence_s)
{
    sr_alive *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->eng = eng;
    a->silence_ms = http_silence_s * 1000u;
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void sr_alive_free(sr_alive *a)
{
    if (!a) return;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (sr_alive_ent *e = a->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static uint32_t slot(const char *op, int kind, const char *id)
{
    uint64_t h = sr_hash_add(0, op, strlen(op));
    h = sr_hash_add(h, &kind, sizeof kind);
    return sr_hash_end(sr_hash_add(h, id, strlen(id))) % NBUCKETS;
}

static sr_alive_ent *find(sr_alive *a, uint32_t s, const char *op, int kind, const char *id)
{
    for (sr_alive_ent *e = a->b[s]; e; e = e->next)
        if (e->kind == kind && !strcmp(e->op, op) && !strcmp(e->id, id)) return e;
    return NULL;
}

sr_alive_ent *sr_alive_get(sr_alive *a, const char *op, int kind, const char *id)
{
    if (!a || strlen(op) >= sizeof a->b[0]->op || strlen(id) >= sizeof a->b[0]->id) return NULL;
    uint32_t s = slot(op, kind, id);
    pthread_mutex_lock(&a->mu);
    sr_alive_ent *e = find(a, s, op, kind, id);
    if (!e && (e = calloc(1, sizeof *e))) {
        snprintf(e->op, sizeof e->op, "%s", op);
        snprintf(e->id, sizeof e->id, "%s", id);
        e->kind = kind;
        e->next = a->b[s];
        a->b[s] = e;
    }
    pthread_mutex_unlock(&a->mu);
    return e;
}

static void alive_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "alive event not stored", "error=%s", sr_err_name(r->rc));
}

static void note(sr_alive_ent *e, sr_alive_state st, const char *binding, const char *remote)
{
    atomic_store_explicit(&e->state, (int)st, memory_order_relaxed);
    snprintf(e->binding, sizeof e->binding, "%s", binding ? binding : "");
    snprintf(e->remote, sizeof e->remote, "%s", remote ? remote : "");
    e->http = binding && !strncmp(binding, "http", 4);
}

static int build(sr_alive_ent *e, sr_alive_state st, sr_alive_reason why, const char *will, int actor_system,
                 const char *message_id, sr_buf *out)
{
    sr_alive_rec r = {.kind = (sr_actor_kind)e->kind,
                      .id = e->id,
                      .state = st,
                      .reason = why,
                      .binding = e->binding,
                      .remote = e->remote,
                      .will = will ? will : ""};
    sr_cmd_env env = {e->op, actor_system ? "system" : e->id,
                      actor_system ? SR_ACTOR_SYSTEM : (sr_actor_kind)e->kind, message_id, e->remote};
    return sr_cmd_alive(&env, &r, out);
}

static void submit(sr_alive *a, sr_buf *b)
{
    sr_slice sl = {b->data, b->len};
    int rc = sr_engine_submit(a->eng, &sl, 1, alive_done, NULL);
    if (rc) sr_slog(SR_LOG_WARN, "alive event not queued", "error=%s", sr_err_name(rc));
}

void sr_alive_set(sr_alive *a, sr_alive_ent *e, sr_alive_state st, sr_alive_reason why, const char *binding,
                  const char *remote, const char *will, int actor_system)
{
    if (!a || !e || atomic_load_explicit(&e->state, memory_order_relaxed) == (int)st) return; /* (1) */
    if (st == SR_AS_ONLINE || !e->binding[0]) note(e, st, binding, remote);
    else atomic_store_explicit(&e->state, (int)st, memory_order_relaxed); /* offline: where it was online */
    if (st == SR_AS_ONLINE) sr_alive_seen(e);
    sr_slog(SR_LOG_INFO, st == SR_AS_ONLINE ? "online" : "offline", "op=%s %s=%s binding=%s peer=%s reason=%s%s%s",
            e->op, e->kind == SR_ACTOR_APP ? "app" : "gw", e->id, e->binding, e->remote, sr_alive_reason_name(why),
            will && will[0] ? " will=" : "", will && will[0] ? sr_slog_q(will) : "");
    sr_buf b;
    sr_buf_init(&b);
    if (build(e, st, why, will, actor_system, NULL, &b) == SR_OK) submit(a, &b);
    sr_buf_release(&b);
}

int sr_alive_event(sr_alive *a, sr_alive_ent *e, sr_alive_state st, sr_alive_reason why, const char *binding,
                   const char *remote, const char *message_id, sr_buf *out)
{
    (void)a;
    if (st == SR_AS_ONLINE || !e->binding[0]) note(e, st, binding, remote);
    else atomic_store_explicit(&e->state, (int)st, memory_order_relaxed);
    sr_slog(SR_LOG_INFO, st == SR_AS_ONLINE ? "online" : "offline", "op=%s gw=%s binding=%s peer=%s reason=%s", e->op,
            e->id, e->binding, e->remote, sr_alive_reason_name(why));
    return build(e, st, why, "", 0, message_id, out);
}

void sr_alive_http(sr_alive *a, sr_alive_ent *e, const char *binding, const char *remote)
{
    if (!e) return;
    sr_alive_seen(e);
    if (atomic_load_explicit(&e->state, memory_order_relaxed) != SR_AS_ONLINE)
        sr_alive_set(a, e, SR_AS_ONLINE, SR_AR_CONNECT, binding, remote, "", 0);
}

void sr_alive_tick(sr_alive *a)
{
    if (!a) return;
    int64_t now = sr_alive_clock();
    /* the chains change only on this thread (sr_alive_get is the loop's too,
     * but the lock keeps a reader on another thread out of a half-made
     * chain) */
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (sr_alive_ent *e = a->b[i]; e; e = e->next)
            if (e->http && atomic_load_explicit(&e->state, memory_order_relaxed) == SR_AS_ONLINE &&
                now - atomic_load_explicit(&e->last_seen, memory_order_relaxed) >= (int64_t)a->silence_ms) {
                pthread_mutex_unlock(&a->mu); /* sr_alive_set neither takes it nor changes a chain */
                sr_alive_set(a, e, SR_AS_OFFLINE, SR_AR_HTTP_SILENCE, NULL, NULL, "", 1);
                pthread_mutex_lock(&a->mu);
            }
    pthread_mutex_unlock(&a->mu);
}

int sr_alive_stop(sr_alive *a)
{
    if (!a) return 0;
    int n = 0;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (sr_alive_ent *e = a->b[i]; e; e = e->next) {
            if (!e->http || atomic_load_explicit(&e->state, memory_order_relaxed) != SR_AS_ONLINE) continue;
            atomic_store_explicit(&e->state, SR_AS_OFFLINE, memory_order_relaxed);
            sr_slog(SR_LOG_INFO, "offline", "op=%s %s=%s binding=%s peer=%s reason=%s", e->op,
                    e->kind == SR_ACTOR_APP ? "app" : "gw", e->id, e->binding, e->remote,
                    sr_alive_reason_name(SR_AR_DISCONNECT));
            sr_buf b;
            sr_buf_init(&b);
            if (build(e, SR_AS_OFFLINE, SR_AR_DISCONNECT, "", 1, NULL, &b) == SR_OK) {
                sr_slice sl = {b.data, b.len};
                sr_result res;
                memset(&res, 0, sizeof res);
                int rc = sr_engine_submit_wait(a->eng, &sl, 1, &res);
                if (rc) sr_slog(SR_LOG_WARN, "alive event not stored", "error=%s", sr_slog_q(res.err.msg));
                else n++;
            }
            sr_buf_release(&b);
        }
    pthread_mutex_unlock(&a->mu);
    return n;
}

int sr_alive_restart(sr_alive *a)
{
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_alive(a->eng, NULL, &r), n = 0;
    if (rc) return rc;
    sr_alive_rec ar;
    while ((rc = sr_rec_next_alive(&r, &ar)) != 0) {
        if (rc < 0 || ar.state != SR_AS_ONLINE) continue; /* a row that does not decode: passed (sr_rec_next_*) */
        sr_alive_ent *e = sr_alive_get(a, ar.op, (int)ar.kind, ar.id);
        if (!e) continue;
        note(e, SR_AS_ONLINE, ar.binding, ar.remote);
        e->http = 0; /* not online now: the event below says so */
        sr_alive_set(a, e, SR_AS_OFFLINE, SR_AR_SERVER_RESTART, NULL, NULL, "", 1);
        n++;
    }
    sr_rec_close(&r);
    return n;
}

void sr_alive_peek(sr_alive *a, const char *op, int kind, const char *id, int64_t *last_seen, int *state)
{
    *last_seen = 0;
    *state = 0;
    if (!a || strlen(op) >= sizeof a->b[0]->op || strlen(id) >= sizeof a->b[0]->id) return;
    pthread_mutex_lock(&a->mu);
    sr_alive_ent *e = find(a, slot(op, kind, id), op, kind, id);
    if (e) {
        *last_seen = atomic_load_explicit(&e->last_seen, memory_order_relaxed);
        *state = atomic_load_explicit(&e->state, memory_order_relaxed);
    }
    pthread_mutex_unlock(&a->mu);
}

/* GET /admin/v1/alive's and GET /api/v1/alive's items (alive.h). */
json_t *sr_alive_items(sr_engine *eng, sr_alive *alive, const char *op, int kind, int state, int *rc)
{
    sr_rec r = SR_REC_INIT;
    if ((*rc = sr_list_alive(eng, op, &r))) {
        sr_rec_close(&r);
        return NULL;
    }
    json_t *items = json_array();
    sr_alive_rec a;
    int k;
    while ((k = sr_rec_next_alive(&r, &a)) != 0) {
        if (k < 0 || (kind && (int)a.kind != kind) || (state && (int)a.state != state)) continue;
        char since[32], seen[32];
        sr_rfc3339_format(a.since_ms, since);
        const char *rn = sr_alive_reason_name((int)a.reason);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "operatorId", a.op, "kind",
                              a.kind == SR_ACTOR_APP ? "app" : "gateway", "id", a.id, "state",
                              a.state == SR_AS_ONLINE ? "online" : "offline", "since", since, "reason", rn ? rn : "",
                              "binding", a.binding, "remote", a.remote, "seq", (json_int_t)a.seq);
        if (a.will[0]) json_object_set_new(o, "will", json_string(a.will));
        int64_t last = 0;
        int mem = 0;
        sr_alive_peek(alive, a.op, (int)a.kind, a.id, &last, &mem);
        if (last) {
            sr_rfc3339_format(last, seen);
            json_object_set_new(o, "lastSeen", json_string(seen));
        }
        json_array_append_new(items, o);
    }
    sr_rec_close(&r);
    return items;
}
