/* api/cluster_sub.c -- the cluster mode's consumers (issue #19 phase 2a;
 * the contract: api/cluster.h "ownership and the consumers"; the design:
 * docs/cluster.md "Consumers").
 *
 * One thread of its own (run) holds its own NATS connection and, for every
 * partition, an ephemeral pull consumer of the partition's registry events
 * (<name>.p.NNN.reg) and, for each partition this node owns, one of all its
 * events (<name>.p.NNN.*). Each starts at its checkpoint + 1 (the engine's
 * `cluster_ckpt`, sr_engine_cluster_ckpt), delivers with no acks (the
 * checkpoint is the position), and the thread fetches from each in turn
 * (no-wait fetches: a round with nothing sleeps 20 ms). A fetched event is
 * skipped when it is this node's own (Suiro-Node: already in the local
 * log) or of a kind only its own node's engine writes; else it is submitted
 * to the engine with its origin (sr_engine_submit_origin), which applies it
 * at most once and advances the checkpoint in the same transaction.
 * No cnats call is made on a libuv loop thread.
 *
 * Invariants:
 *  1. Each consumer submits its events in stream order, on the engine's one
 *     replicated-events queue (FIFO, engine/origins.c invariant 3); a full
 *     queue (SR_EFULL) is waited out on this thread, never skipped.
 *  2. A consumer (re)starts at its checkpoint + 1; what it meets again is a
 *     duplicate by origin (a no-op), so a restart, a reconnection or an
 *     ownership change loses nothing and applies nothing twice.
 *  3. sr_cluster_set_owned only flips a bit; the thread starts (stops) the
 *     full consumer of a partition at its next round.
 *  4. Stream keys (api/cluster_seal.h invariant 2): with a master key a
 *     payload is applied only once opened (header Suiro-Key, the key from
 *     the bucket <name>_KEYS); a plaintext one, or one whose key is unknown,
 *     erased, of another master or that does not authenticate, is refused
 *     (counted as unsealed, a WARN line at most every 10 s),
 *     never applied in clear. Without one a sealed payload is refused so.
 *     The bucket not answering is no refusal: the consumers are made again
 *     and the event read again.
 */
#include "api/cluster.h"
#include "api/cluster_blob.h"
#include "api/cluster_fwd.h"

#include "api/cluster_seal.h"
#include "api/slog.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUB_BATCH 256

typedef struct psub {
    natsSubscription *reg, *full;
} psub;

struct sr_csub {
    sr_engine *e;
    char nats[1024], node[64], name[32];
    uint32_t partitions, replicas;
    _Atomic uint64_t *owned; /* one bit per partition (invariant 3) */
    psub *ps;
    natsConnection *nc;
    jsCtx *js;
    pthread_t th;
    int started;
    _Atomic int stop;
    int64_t next_try_ms, last_warn_ms;
    _Atomic int64_t refused_note_ms; /* the writer's thread: the last "refused" line */
    /* in flight: submitted, callback not yet run */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t inflight;
    /* figures */
    _Atomic uint64_t st_reg, st_data, st_dup, st_refused;
    _Atomic uint64_t *lag; /* per partition: events the stream holds after the last one fetched */
    _Atomic uint8_t *caught; /* per partition: its full consumer fetched everything and it was applied (phase 2b) */
    uint64_t *want;    /* the consumer thread's: per partition, the stream's last seq when its full consumer
                        * first fetched after taking it (0: not known yet): caught up once fetched through it
                        * and applied, however much comes after (a partition under load is never idle) */
    uint64_t *fetched; /* the consumer thread's: per partition, the full consumer's highest stream seq fetched */
    /* stream keys (invariant 4): NULL without a master key */
    sr_skeys *skeys;
    sr_skv skv;
    sr_skv_nats skvn;
    sr_buf open;
    int64_t last_seal_warn_ms;
    _Atomic uint64_t st_unsealed;
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int sr_csub_owns(sr_csub *s, uint32_t part)
{
    if (!s || part >= s->partitions) return 0;
    return (int)((atomic_load(&s->owned[part / 64]) >> (part % 64)) & 1);
}

void sr_csub_set_owned(sr_csub *s, uint32_t part, int owned)
{
    if (!s || part >= s->partitions) return;
    uint64_t bit = (uint64_t)1 << (part % 64);
    if (owned) atomic_fetch_or(&s->owned[part / 64], bit);
    else atomic_fetch_and(&s->owned[part / 64], ~bit);
}

/* ---- the engine's callbacks (the writer's thread) ---- */

typedef struct subctx {
    sr_csub *s;
    int cls;
    int session; /* a SessionEvent: forwarded requests may wait for it (api/cluster_fwd.h) */
    int file;    /* a FilePut: its bytes are fetched from the blob stream (api/cluster_blob.h) */
} subctx;

static void on_applied(void *arg, const sr_result *res)
{
    subctx *x = arg;
    sr_csub *s = x->s;
    if (res->rc != SR_OK) atomic_fetch_add(&s->st_refused, 1);
    else if (res->duplicate) atomic_fetch_add(&s->st_dup, 1);
    else atomic_fetch_add(x->cls == SR_EVCLASS_REG ? &s->st_reg : &s->st_data, 1);
    if (x->session && res->rc == SR_OK) sr_fwd_session_applied(); /* durable and visible now */
    if (x->file && res->rc == SR_OK && !res->duplicate) sr_cblobs_kick(sr_cblobs_self()); /* fetch its bytes */
    if (res->rc != SR_OK) {
        int64_t t = now_ms(), last = atomic_load(&s->refused_note_ms);
        if (t - last >= 10000 && atomic_compare_exchange_strong(&s->refused_note_ms, &last, t)) {
            sr_slog(SR_LOG_WARN, "cluster: a replicated event refused", "error=%s detail=%s", sr_err_name(res->rc),
                    sr_slog_q(res->err.msg));
        }
    }
    free(x);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the thread ---- */

static void unsub(natsSubscription **sub)
{
    if (!*sub) return;
    natsSubscription_Unsubscribe(*sub); /* the ephemeral consumer goes with it */
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

static void disconnect(sr_csub *s)
{
    for (uint32_t p = 0; p < s->partitions; p++) {
        if (s->ps[p].reg) natsSubscription_Destroy(s->ps[p].reg);
        if (s->ps[p].full) natsSubscription_Destroy(s->ps[p].full);
        s->ps[p].reg = s->ps[p].full = NULL;
    }
    if (s->nc) natsConnection_Close(s->nc);
    sr_skv_nats_reset(&s->skvn);
    if (s->js) jsCtx_Destroy(s->js);
    if (s->nc) natsConnection_Destroy(s->nc);
    s->nc = NULL;
    s->js = NULL;
}

static int nconnect(sr_csub *s, char *err, size_t errlen)
{
    char name[96];
    snprintf(name, sizeof name, "%s-consumers", s->node);
    natsStatus st = (natsStatus)sr__nats_connect(s->nats, name, &s->nc);
    if (st == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        st = natsConnection_JetStream(&s->js, s->nc, &jo);
    }
    if (st != NATS_OK) {
        snprintf(err, errlen, "%s", natsStatus_GetText(st));
        disconnect(s);
        return SR_EIO;
    }
    sr_skv_nats_init(&s->skvn, &s->skv, s->js, s->name, (int)s->replicas); /* the keys' bucket: at first use */
    return SR_OK;
}

static const char *hdr(natsMsg *m, const char *k)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, k, &v) == NATS_OK && v ? v : "";
}

/* The payload of m to apply (invariant 4): 1 with it in *data, *len; 0
 * refused (counted, a WARN line); -1 the keys' bucket did not answer (read
 * again later). */
static int unseal(sr_csub *s, natsMsg *m, uint32_t p, const char *node, const char *kind, uint64_t seq,
                  const void **data, size_t *len)
{
    const char *kid = hdr(m, "Suiro-Key");
    *data = natsMsg_GetData(m);
    *len = (size_t)natsMsg_GetDataLength(m);
    char err[320] = "";
    int rc = SR_OK;
    if (!s->skeys && kid[0]) {
        rc = SR_EKEY;
        snprintf(err, sizeof err,
                 "a sealed payload (stream key %s) and this node has no key_file: give every node of the cluster the "
                 "same master key (docs/keys.md \"Cluster: stream keys\")",
                 kid);
    } else if (s->skeys && !kid[0]) {
        rc = SR_EKEY;
        snprintf(err, sizeof err, "a plaintext payload and this node seals its streams (key_file): not applied in clear "
                                  "(docs/keys.md \"Cluster: stream keys\")");
    } else if (s->skeys) {
        const char *op = hdr(m, "Suiro-Operator");
        sr_seal_ad ad = {p, strcmp(op, "-") ? op : "", kind, node, seq};
        char want[24];
        snprintf(want, sizeof want, "%016" PRIx64, sr_seal_key_id(*data, *len));
        if (strcmp(want, kid)) {
            rc = SR_ECORRUPT;
            snprintf(err, sizeof err, "the header Suiro-Key %s is not the payload's key %s", kid, want);
        } else if ((rc = sr_skeys_open(s->skeys, &s->skv, &ad, *data, *len, &s->open, err, sizeof err)) == SR_EIO) {
            return -1;
        }
        *data = s->open.data;
        *len = s->open.len;
    }
    if (!rc) return 1;
    atomic_fetch_add(&s->st_unsealed, 1);
    int64_t t = now_ms();
    if (t - s->last_seal_warn_ms >= 10000) {
        s->last_seal_warn_ms = t;
        sr_slog(SR_LOG_WARN, "cluster: a replicated event not opened, refused", "msgid=%s:%" PRIu64 " error=%s detail=%s",
                node, seq, sr_err_name(rc), sr_slog_q(err));
    }
    return 0;
}

/* A pull consumer of partition p from its checkpoint + 1: which 1 the
 * registry events, 2 all. */
static int subscribe(sr_csub *s, uint32_t p, int which, natsSubscription **out, char *err, size_t errlen)
{
    uint64_t ck = 0;
    int rc = sr_engine_cluster_ckpt(s->e, p, which, &ck);
    if (rc) {
        snprintf(err, errlen, "the checkpoint of partition %u not read: %s", p, sr_err_name(rc));
        return rc;
    }
    char subj[64], stream[64];
    snprintf(subj, sizeof subj, "%s.p.%03u.%s", s->name, p, which == 1 ? "reg" : "*");
    snprintf(stream, sizeof stream, "%s_P%03u", s->name, p);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = ck + 1;
    so.Config.AckPolicy = js_AckNone;
    so.Config.FilterSubject = subj;
    so.Config.InactiveThreshold = 60 * (int64_t)1000000000; /* a dead node's consumers go */
    jsErrCode jerr = 0;
    natsStatus st = js_PullSubscribe(out, s->js, subj, NULL, NULL, &so, &jerr);
    if (st != NATS_OK) {
        snprintf(err, errlen, "cannot consume %s from %" PRIu64 ": %s (%d)", subj, ck + 1, natsStatus_GetText(st),
                 (int)jerr);
        *out = NULL;
        return SR_EIO;
    }
    sr_slog(SR_LOG_DEBUG, "cluster: consuming", "subject=%s from=%" PRIu64, subj, ck + 1);
    return SR_OK;
}

/* Submit one fetched message (invariant 1). 0 done (applied, skipped or
 * refused: counted); -1 stop. */
static int consume(sr_csub *s, natsMsg *m, uint32_t p, int which)
{
    jsMsgMetaData *md = NULL;
    uint64_t sseq = 0;
    if (natsMsg_GetMetaData(&md, m) == NATS_OK && md) {
        sseq = md->Sequence.Stream;
        if (which == 2 || !sr_csub_owns(s, p)) atomic_store(&s->lag[p], md->NumPending);
        if (which == 2) {
            if (!s->want[p]) s->want[p] = sseq + md->NumPending;
            if (sseq > s->fetched[p]) s->fetched[p] = sseq;
        }
        jsMsgMetaData_Destroy(md);
    }
    const char *node = hdr(m, "Suiro-Node"), *kind = hdr(m, "Suiro-Kind");
    uint64_t seq = strtoull(hdr(m, "Suiro-Seq"), NULL, 10);
    int cls = sr_event_kind_class(kind);
    if (!strcmp(node, s->node) || cls == SR_EVCLASS_LOCAL) return 0; /* in the local log already; the engine's own */
    if (!node[0] || !seq || !sseq) {
        atomic_fetch_add(&s->st_refused, 1);
        return 0;
    }
    const void *data = NULL;
    size_t len = 0;
    int u = unseal(s, m, p, node, kind, seq, &data, &len);
    if (u <= 0) return u;
    sr_origin o = {node, seq, p, sseq, which};
    for (;;) {
        subctx *x = malloc(sizeof *x);
        if (!x) return -1;
        *x = (subctx){s, cls, !strcmp(kind, "session"), !strcmp(kind, "file_put")};
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        int rc = sr_engine_submit_origin(s->e, data, len, &o, on_applied, x);
        if (rc == SR_OK) return 0;
        free(x);
        pthread_mutex_lock(&s->mu);
        s->inflight--;
        pthread_mutex_unlock(&s->mu);
        if (rc == SR_EFULL || rc == SR_EPOISONED) { /* wait, then the same event again */
            if (atomic_load(&s->stop)) return -1;
            sleep_ms(5);
            continue;
        }
        if (rc == SR_ECLOSED || rc == SR_ENOSPC) return -1;
        atomic_fetch_add(&s->st_refused, 1); /* does not decode, or a kind not for us */
        return 0;
    }
}

/* Fetch what sub has now: the number of messages, or -1 (the connection or
 * the consumer failed: every consumer is made again). */
static int fetch(sr_csub *s, natsSubscription *sub, uint32_t p, int which)
{
    jsFetchRequest fr;
    jsFetchRequest_Init(&fr);
    fr.Batch = SUB_BATCH;
    fr.NoWait = true;
    fr.Expires = 20 * (int64_t)1000000; /* (an empty no-wait fetch may still wait this long) */
    natsMsgList l = {0};
    natsStatus st = natsSubscription_FetchRequest(&l, sub, &fr);
    if ((st == NATS_TIMEOUT || st == NATS_NOT_FOUND) && !l.Count) return 0; /* nothing now */
    if (st != NATS_OK && !l.Count) return -1;
    int n = l.Count;
    for (int i = 0; i < l.Count; i++)
        if (consume(s, l.Msgs[i], p, which) < 0) {
            n = -1;
            break;
        }
    natsMsgList_Destroy(&l);
    return n;
}

static void *run(void *arg)
{
    sr_csub *s = arg;
    char err[512];
    int64_t down_since = 0;
    while (!atomic_load(&s->stop)) {
        int64_t t = now_ms();
        if (!s->nc || natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
            if (!down_since) down_since = t;
            if (t >= s->next_try_ms) {
                if (s->nc) disconnect(s);
                if (nconnect(s, err, sizeof err)) {
                    s->next_try_ms = t + 1000;
                    if (t - s->last_warn_ms >= 10000) {
                        s->last_warn_ms = t;
                        sr_slog(SR_LOG_WARN, "cluster: consumers cannot reach NATS", "error=%s", sr_slog_q(err));
                    }
                }
            }
            if (!s->nc) {
                sleep_ms(50);
                continue;
            }
        }
        int got = 0, failed = 0;
        for (uint32_t p = 0; p < s->partitions && !failed && !atomic_load(&s->stop); p++) {
            psub *ps = &s->ps[p];
            int own = sr_csub_owns(s, p);
            if (!own || !ps->full) atomic_store(&s->caught[p], 0); /* forwarding: not served here yet */
            if (!own && ps->full) {
                unsub(&ps->full); /* ownership lost (invariant 3) */
                sr_slog(SR_LOG_INFO, "cluster: partition released", "partition=%u", p);
            }
            if (own && !ps->full) {
                s->want[p] = s->fetched[p] = 0;
                if (subscribe(s, p, 2, &ps->full, err, sizeof err)) failed = 1;
                else sr_slog(SR_LOG_INFO, "cluster: partition owned", "partition=%u", p);
            }
            if (!ps->reg && !failed && subscribe(s, p, 1, &ps->reg, err, sizeof err)) failed = 1;
            /* a full batch: fetch again at once, a few times (then the next partition's turn) */
            int n = SUB_BATCH;
            for (int i = 0; !failed && ps->full && n == SUB_BATCH && i < 16; i++, got += n > 0 ? n : 0)
                if ((n = fetch(s, ps->full, p, 2)) < 0) failed = 1;
            if (!failed && ps->full && n == 0 && !atomic_load(&s->caught[p])) { /* nothing more: once applied, caught up */
                pthread_mutex_lock(&s->mu);
                int idle = s->inflight == 0;
                pthread_mutex_unlock(&s->mu);
                if (idle) atomic_store(&s->caught[p], 1);
            }
            if (!failed && ps->full && !atomic_load(&s->caught[p]) && s->want[p] && s->fetched[p] >= s->want[p]) {
                /* fetched through what the stream held when the partition was
                 * taken: once what this thread submitted is applied (only this
                 * thread submits: it drains), caught up, under load too */
                pthread_mutex_lock(&s->mu);
                while (s->inflight && !atomic_load(&s->stop)) pthread_cond_wait(&s->cv, &s->mu);
                pthread_mutex_unlock(&s->mu);
                atomic_store(&s->caught[p], 1);
            }
            n = SUB_BATCH;
            for (int i = 0; !failed && ps->reg && n == SUB_BATCH && i < 16; i++, got += n > 0 ? n : 0)
                if ((n = fetch(s, ps->reg, p, 1)) < 0) failed = 1;
        }
        if (failed) {
            if (atomic_load(&s->stop)) break;
            if (t - s->last_warn_ms >= 10000) {
                s->last_warn_ms = t;
                sr_slog(SR_LOG_WARN, "cluster: consumers made again", "error=%s", sr_slog_q(err));
            }
            /* what was submitted lands first: the new consumers start after it */
            pthread_mutex_lock(&s->mu);
            while (s->inflight) pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            for (uint32_t p = 0; p < s->partitions; p++) {
                unsub(&s->ps[p].reg);
                unsub(&s->ps[p].full);
            }
            sleep_ms(250);
            continue;
        }
        if (down_since) {
            sr_slog(SR_LOG_INFO, "cluster: consumers connected", "down_ms=%" PRId64, t - down_since);
            down_since = 0;
        }
        if (!got) sleep_ms(20);
    }
    return NULL;
}

/* a consumer set that never started its thread: its arrays and itself */
static void csub_free_arrays(sr_csub *s)
{
    free(s->owned);
    free(s->lag);
    free(s->caught);
    free(s->want);
    free(s->fetched);
    free(s->ps);
    free(s);
}

int sr_csub_start(sr_engine *e, const sr_cluster_opts *o, sr_csub **out, char *err, size_t errlen)
{
    *out = NULL;
    sr_csub *s = calloc(1, sizeof *s);
    if (!s) return SR_ENOMEM;
    s->e = e;
    snprintf(s->nats, sizeof s->nats, "%s", o->nats);
    snprintf(s->node, sizeof s->node, "%s", o->node);
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->partitions = o->partitions;
    s->replicas = o->replicas;
    s->owned = calloc((o->partitions + 63) / 64, sizeof *s->owned);
    s->lag = calloc(o->partitions, sizeof *s->lag);
    s->caught = calloc(o->partitions, sizeof *s->caught);
    s->want = calloc(o->partitions, sizeof *s->want);
    s->fetched = calloc(o->partitions, sizeof *s->fetched);
    s->ps = calloc(o->partitions, sizeof *s->ps);
    if (!s->owned || !s->lag || !s->ps || !s->caught || !s->want || !s->fetched) {
        csub_free_arrays(s);
        return SR_ENOMEM;
    }
    uint8_t bits[(SR_CLUSTER_MAX_PARTITIONS + 7) / 8];
    int rc = sr_cluster_parse_owned(o->owned ? o->owned : "all", o->partitions, bits, err, errlen);
    if (rc) {
        csub_free_arrays(s);
        return rc;
    }
    for (uint32_t p = 0; p < o->partitions; p++) sr_csub_set_owned(s, p, (bits[p / 8] >> (p % 8)) & 1);
    if (o->master && (rc = sr_skeys_new(o->master, o->rotate_days, &s->skeys))) { /* invariant 4 */
        csub_free_arrays(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->th, NULL, run, s)) {
        sr_csub_free(s);
        snprintf(err, errlen, "cluster: cannot start the consumers' thread");
        return SR_ENOMEM;
    }
    s->started = 1;
    *out = s;
    return SR_OK;
}

void sr_csub_stop(sr_csub *s)
{
    if (!s || !s->started) return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    s->started = 0;
    /* the submitted events' callbacks come from the writer: wait for them */
    pthread_mutex_lock(&s->mu);
    while (s->inflight) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    disconnect(s);
}

void sr_csub_free(sr_csub *s)
{
    if (!s) return;
    sr_csub_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sr_skeys_free(s->skeys);
    sr_buf_release(&s->open);
    csub_free_arrays(s);
}

void sr_csub_get_stats(sr_csub *s, sr_csub_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->reg = atomic_load(&s->st_reg);
    out->data = atomic_load(&s->st_data);
    out->duplicates = atomic_load(&s->st_dup);
    out->refused = atomic_load(&s->st_refused);
    out->unsealed = atomic_load(&s->st_unsealed);
    out->partitions = s->partitions;
}

uint64_t sr_csub_lag(sr_csub *s, uint32_t part)
{
    return s && part < s->partitions ? atomic_load(&s->lag[part]) : 0;
}

int sr_csub_caught_up(sr_csub *s, uint32_t part)
{
    return s && part < s->partitions ? atomic_load(&s->caught[part]) : 0;
}
