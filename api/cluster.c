/* api/cluster.c -- the cluster mode's publisher over NATS JetStream (issue
 * #19 phase 1; the contract and invariants: api/cluster.h; the design:
 * docs/cluster.md).
 *
 * Threads: the engine's writer calls on_appended (wakes the publisher) and
 * the wrapped command callbacks (hold or answer); the publisher thread
 * (run) connects, checks the streams, reads the log and publishes; libnats's
 * own thread calls on_ack, which marks the seq acknowledged, advances the
 * confirmed watermark and releases the held answers (their callbacks hand
 * them to their loops, as from the writer). No cnats call is made on a
 * libuv loop thread (a blocking cnats call there never gets its reply).
 *
 * Invariants (besides api/cluster.h's):
 *  1. published <= the log's durable end; confirmed <= published; the ring
 *     holds the state of seqs confirmed + 1 .. published (acked flag, the
 *     time it was sent), so published - confirmed < ring size.
 *  2. A seq the log has no event for (erased by crypto-shredding) counts as
 *     acknowledged when the publisher passes it: there is nothing to send.
 *  3. When the oldest unacknowledged seq waited ack_timeout_ms (a lost
 *     message, a leader change, a broken connection), libnats's pending
 *     list is dropped and everything after the watermark is sent again
 *     under the same ids (counted as republished).
 *  4. An event with an origin (another node's, applied here by the
 *     consumers, api/cluster_sub.c) is in the stream already: it counts as
 *     acknowledged and is never sent (counted as replicated).
 *  5. Subjects (phase 2a): <name>.p.NNN.reg for the registry class of
 *     events (sr_event_kind_class), <name>.p.NNN.data for all others; the
 *     stream of partition NNN holds <name>.p.NNN.*.
 *  6. A replicated data point's MasterPut is published as this node's
 *     PointAlias (issue #19; engine/origins.c invariant 5: what to send is
 *     the engine's decision, sr_engine_cluster_payload), under the
 *     MasterPut's seq: the id <node>:<seq> is unique and the same on every
 *     re-publish; kind point_alias, subject .reg.
 *  7. With a master key (stream keys, api/cluster_seal.h) no payload is sent
 *     in clear: each is sealed under the stream key of its operator, class
 *     and epoch (header Suiro-Key); an event whose stream key was destroyed
 *     (erased cluster-wide) is not sent and counts as acknowledged, as a
 *     gap of the log does (invariant 2); a key the bucket cannot give now
 *     (NATS) stops the run, which tries again.
 *  8. Files (api/cluster_blob.h): this node's FilePut is published only
 *     once every chunk of its bytes is stored in <name>_BLOBS (each
 *     publish waited for, on this thread); a chunk not stored stops the
 *     run, which tries again: the upload's answer, held for the FilePut's
 *     acknowledgement, is never given before its bytes are in JetStream.
 *  9. (issue #19 ckey) A stream key erasure whose intent is in the log but
 *     not its result (a crash between the intent and the tombstone,
 *     api/cluster_seal.h sr_skey_erase) is finished by this thread once it
 *     is connected after a start: the tombstone written (or found), the
 *     result appended (message "finished at start").
 */
#include "api/cluster.h"

#include "api/cluster_blob.h"
#include "api/cluster_seal.h"
#include "api/ryw.h"
#include "api/slog.h"

#include <jansson.h>
#include <nats/nats.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    uint8_t acked;
    int64_t sent_ms;
    /* read-your-writes (api/ryw.h): the seq this slot last held, its partition and its stream
     * seq once acknowledged (kept after the watermark passed it, until the slot is reused) */
    uint64_t seq, sseq;
    uint32_t part;
} slot;

struct sr_cluster {
    sr_engine *e;
    char nats[1024], node[64], name[32], data_dir[1024];
    uint32_t partitions, replicas, dedup_window_s, ack_timeout_ms;
    sr_waitlist wl;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, wake;
    int closed; /* sr_cluster_close ran (the owner's thread only) */
    /* under mu */
    uint64_t confirmed, published, written;
    slot *ring;
    size_t ring_n;
    /* the publisher thread's */
    natsConnection *nc;
    jsCtx *js;
    int64_t next_try_ms;
    int64_t last_err_ms; /* the last "publish failed" line */
    int js_used;         /* js published something (resend_all) */
    int streams_ok;
    sr_csub *sub;        /* the consumers (api/cluster_sub.c) */
    sr_cblobs *blobs;    /* the blob fetcher (api/cluster_blob.c) */
    sr_cblob_pub bpub;   /* publishing files' bytes (invariant 8) */
    int64_t last_blob_err_ms;
    sr_buf alias;        /* a PointAlias to publish (invariant 6) */
    /* stream keys (invariant 7): NULL without a master key */
    sr_skeys *skeys;
    sr_skv skv;
    sr_skv_nats skvn;
    sr_buf sealed;
    uint32_t rotate_days;
    int64_t last_seal_err_ms;
    int erasures_done;      /* the open erasure intents were finished (invariant 9) */
    sr_key master;          /* a copy, for the Admin API's erasures (sr_cluster_erase_key) */
    int64_t erasures_next;  /* the next try (monotonic ms) */
    /* figures */
    _Atomic uint64_t st_published, st_acked, st_republished, st_errors, st_log_last, st_replicated;
    _Atomic uint64_t st_sealed, st_erased;
    _Atomic int st_connected;
    /* ownership (api/cluster_own.c): the lease manager sets, the consumers read */
    sr_cluster_own *own;        /* NULL: [cluster] lease_ms 0 */
};

static _Atomic(sr_cluster *) g_cluster;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- one NATS connection (the publisher's, the lease manager's and the
 * consumers' each have their own) ---- */

static void fill_token(void *arg, uint64_t last, sr_result *res);

int sr__nats_connect(const char *urls_csv, const char *name, natsConnection **out)
{
    natsOptions *o = NULL;
    const char *urls[32];
    char buf[1024];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", urls_csv);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 32; t = strtok_r(NULL, ",", &save)) urls[n++] = t;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, urls, n);
    if (s == NATS_OK) s = natsOptions_SetName(o, name);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK) s = natsConnection_Connect(out, o);
    natsOptions_Destroy(o);
    return (int)s;
}

/* ---- the watermark (under mu) ---- */

/* Advance confirmed over acknowledged seqs; the new value. */
static uint64_t advance(sr_cluster *c)
{
    while (c->confirmed < c->published) {
        slot *s = &c->ring[(c->confirmed + 1) % c->ring_n];
        if (!s->acked) break;
        s->acked = 0;
        c->confirmed++;
    }
    return c->confirmed;
}

static void mark_acked(sr_cluster *c, uint64_t seq)
{
    if (seq > c->confirmed && seq <= c->published) c->ring[seq % c->ring_n].acked = 1;
}

/* ---- libnats's thread ---- */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    sr_cluster *c = closure;
    const char *id = NULL;
    uint64_t seq = 0;
    if (natsMsgHeader_Get(msg, "Suiro-Seq", &id) == NATS_OK && id) seq = strtoull(id, NULL, 10);
    if (pa && seq) {
        atomic_fetch_add(&c->st_acked, 1);
        pthread_mutex_lock(&c->mu);
        if (seq > c->confirmed && seq <= c->published) { /* read-your-writes: the answer's token */
            slot *sl = &c->ring[seq % c->ring_n];
            if (sl->seq == seq) sl->sseq = pa->Sequence;
        }
        mark_acked(c, seq);
        uint64_t w = advance(c);
        c->wake = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        sr_waitlist_confirm(&c->wl, w);
    } else if (pae) {
        /* not stored (no responders during a leader change, a timeout): the
         * seq stays unacknowledged; the ack timeout sends it again */
        atomic_fetch_add(&c->st_errors, 1);
    }
    natsMsg_Destroy(msg);
}

/* ---- the publisher thread ---- */

static void disconnect(sr_cluster *c)
{
    if (c->nc) natsConnection_Close(c->nc); /* no more acks are read */
    sr_skv_nats_reset(&c->skvn);
    if (c->js) jsCtx_Destroy(c->js);
    if (c->nc) natsConnection_Destroy(c->nc);
    c->js = NULL;
    c->nc = NULL;
    c->streams_ok = 0;
    c->js_used = 0;
    atomic_store(&c->st_connected, 0);
}

static int nconnect(sr_cluster *c, char *err, size_t errlen)
{
    natsStatus s = (natsStatus)sr__nats_connect(c->nats, c->node, &c->nc);
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = c;
        jo.PublishAsync.MaxPending = (int64_t)c->ring_n;
        s = natsConnection_JetStream(&c->js, c->nc, &jo);
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot connect to NATS (%s): %s", c->nats, natsStatus_GetText(s));
        disconnect(c);
        return SR_EIO;
    }
    atomic_store(&c->st_connected, 1);
    sr_skv_nats_init(&c->skvn, &c->skv, c->js, c->name, (int)c->replicas); /* the keys' bucket: at first use */
    return SR_OK;
}

/* Create or check one stream (file storage, the replicas and dedup window
 * of [cluster], deletes and purges denied, no limits; per_subject > 0: at
 * most that many messages per subject): SR_OK; SR_ECONFLICT (a stream with
 * other settings: err names the stream and the setting); SR_EIO (NATS did
 * not answer). */
static int ensure_stream(sr_cluster *c, const char *name, const char *subj, int64_t per_subject, char *err,
                         size_t errlen)
{
    const char *subjs[1] = {subj};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjs;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_LimitsPolicy;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = c->replicas;
    cfg.Duplicates = (int64_t)c->dedup_window_s * 1000000000ll;
    if (per_subject) cfg.MaxMsgsPerSubject = per_subject;
    cfg.DenyDelete = true;
    cfg.DenyPurge = true;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, name, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        s = js_AddStream(&si, c->js, &cfg, NULL, &jerr);
        if (s != NATS_OK) {
            snprintf(err, errlen, "cannot create stream %s: %s (%d)", name, natsStatus_GetText(s), (int)jerr);
            return SR_EIO;
        }
        jsStreamInfo_Destroy(si);
        return SR_OK;
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot read stream %s: %s (%d)", name, natsStatus_GetText(s), (int)jerr);
        return SR_EIO;
    }
    const jsStreamConfig *h = si->Config;
    const char *bad = NULL;
    char have[96] = "", want[96] = "";
    if (h->SubjectsLen != 1 || strcmp(h->Subjects[0], subj)) {
        bad = "subjects";
        snprintf(have, sizeof have, "%s%s", h->SubjectsLen ? h->Subjects[0] : "none", h->SubjectsLen > 1 ? ",..." : "");
        snprintf(want, sizeof want, "%s", subj);
    } else if (h->Storage != js_FileStorage) {
        bad = "storage";
        snprintf(have, sizeof have, "memory");
        snprintf(want, sizeof want, "file");
    } else if (h->Replicas != cfg.Replicas) {
        bad = "replicas";
        snprintf(have, sizeof have, "%" PRId64, h->Replicas);
        snprintf(want, sizeof want, "%" PRId64, cfg.Replicas);
    } else if (h->Duplicates != cfg.Duplicates) {
        bad = "duplicate window";
        snprintf(have, sizeof have, "%" PRId64 "s", (int64_t)(h->Duplicates / 1000000000ll));
        snprintf(want, sizeof want, "%" PRId64 "s", (int64_t)(cfg.Duplicates / 1000000000ll));
    } else if (!h->DenyDelete || !h->DenyPurge) {
        bad = h->DenyDelete ? "deny_purge" : "deny_delete";
        snprintf(have, sizeof have, "false");
        snprintf(want, sizeof want, "true");
    } else if (per_subject && h->MaxMsgsPerSubject != per_subject) {
        bad = "max_msgs_per_subject";
        snprintf(have, sizeof have, "%" PRId64, h->MaxMsgsPerSubject);
        snprintf(want, sizeof want, "%" PRId64, per_subject);
    } else if (h->Retention != js_LimitsPolicy || h->MaxMsgs > 0 || h->MaxBytes > 0 || h->MaxAge > 0) {
        bad = "retention limits";
        snprintf(have, sizeof have, "policy %d, max_msgs %" PRId64 ", max_bytes %" PRId64 ", max_age %" PRId64,
                 (int)h->Retention, h->MaxMsgs, h->MaxBytes, h->MaxAge);
        snprintf(want, sizeof want, "limits, none");
    }
    jsStreamInfo_Destroy(si);
    if (bad) {
        snprintf(err, errlen, "stream %s exists with other settings: %s is %s, [cluster] needs %s (docs/cluster.md)",
                 name, bad, have, want);
        return SR_ECONFLICT;
    }
    return SR_OK;
}

/* The files' bytes (api/cluster_blob.h invariant 1): <name>_BLOBS, one
 * message per subject; then one stream per partition. */
static int ensure_streams(sr_cluster *c, char *err, size_t errlen)
{
    char name[64], subj[64];
    sr_cblob_stream(c->name, name);
    snprintf(subj, sizeof subj, "%s.blob.>", c->name);
    int rc = ensure_stream(c, name, subj, 1, err, errlen); /* one message per subject: a chunk is stored once */
    for (uint32_t p = 0; !rc && p < c->partitions; p++) {
        snprintf(name, sizeof name, "%s_P%03u", c->name, p);
        snprintf(subj, sizeof subj, "%s.p.%03u.*", c->name, p); /* .reg and .data (phase 2a) */
        rc = ensure_stream(c, name, subj, 0, err, errlen);
    }
    if (rc) return rc;
    c->streams_ok = 1;
    return SR_OK;
}

typedef struct pubrun {
    sr_cluster *c;
    uint64_t next; /* the next seq expected */
    int failed;
} pubrun;

/* Mark seqs [from, to) acknowledged: the log has no event for them
 * (invariant 2); under mu. */
static void skip_gap(sr_cluster *c, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s < to; s++) {
        if (s > c->published) c->published = s;
        mark_acked(c, s);
    }
}

static int publish_one(void *ctx, const sr_event_view *v)
{
    pubrun *r = ctx;
    sr_cluster *c = r->c;
    pthread_mutex_lock(&c->mu);
    int full = v->seq - c->confirmed >= c->ring_n;
    if (!full && v->seq > r->next) skip_gap(c, r->next, v->seq);
    pthread_mutex_unlock(&c->mu);
    if (full || c->stop) return 1; /* the window is full: later */
    /* another node's event, in the stream already: nothing to send (invariant 4); a replicated data
     * point's MasterPut: this node's PointAlias instead (invariant 6) */
    int pay = sr_engine_cluster_payload(v, c->node, &c->alias);
    if (pay < 0) {
        r->failed = 1;
        return 1; /* (no memory) the next run tries again */
    }
    if (pay == SR_CLUSTER_SKIP) {
        pthread_mutex_lock(&c->mu);
        if (v->seq > c->published) c->published = v->seq;
        mark_acked(c, v->seq);
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_add(&c->st_replicated, 1);
        r->next = v->seq + 1;
        return 0;
    }
    char subj[64], id[96], seqs[24], part[16];
    uint32_t p = sr_cluster_partition(v->op, c->partitions);
    const char *kind = pay == SR_CLUSTER_ALIAS ? "point_alias" : v->kind;
    const void *data = pay == SR_CLUSTER_ALIAS ? c->alias.data : v->rec;
    size_t dlen = pay == SR_CLUSTER_ALIAS ? c->alias.len : v->rec_len;
    snprintf(subj, sizeof subj, "%s.p.%03u.%s", c->name, p,
             sr_event_kind_class(kind) == SR_EVCLASS_REG ? "reg" : "data");
    snprintf(id, sizeof id, "%s:%" PRIu64, c->node, v->seq);
    snprintf(seqs, sizeof seqs, "%" PRIu64, v->seq);
    snprintf(part, sizeof part, "%u", p);
    char kid[24] = "";
    if (c->skeys) { /* invariant 7 */
        sr_seal_ad ad = {p, v->op ? v->op : "", kind, c->node, v->seq};
        uint64_t kidn = 0;
        char err[256];
        int rc = sr_skeys_seal(c->skeys, &c->skv, &ad, v->ingest_ms, data, dlen, &c->sealed, &kidn, err, sizeof err);
        if (rc == SR_EERASED) { /* nothing to send: its epoch was erased */
            pthread_mutex_lock(&c->mu);
            if (v->seq > c->published) c->published = v->seq;
            mark_acked(c, v->seq);
            pthread_mutex_unlock(&c->mu);
            atomic_fetch_add(&c->st_erased, 1);
            r->next = v->seq + 1;
            return 0;
        }
        if (rc) {
            r->failed = 1;
            atomic_fetch_add(&c->st_errors, 1);
            int64_t t = now_ms();
            if (t - c->last_seal_err_ms >= 10000) {
                c->last_seal_err_ms = t;
                sr_slog(SR_LOG_WARN, "cluster: an event not sealed, retrying", "seq=%" PRIu64 " error=%s detail=%s",
                        v->seq, sr_err_name(rc), sr_slog_q(err));
            }
            return 1;
        }
        data = c->sealed.data;
        dlen = c->sealed.len;
        snprintf(kid, sizeof kid, "%016" PRIx64, kidn);
        atomic_fetch_add(&c->st_sealed, 1);
    }
    sr_file_meta fm;
    if (pay == SR_CLUSTER_SEND && !v->origin_node && sr_event_file(v, &fm) == SR_OK) { /* invariant 8 */
        char err[512];
        int skipped = 0;
        c->bpub.js = c->js;
        int rc = sr_cblob_publish(&c->bpub, v->op ? v->op : "", &fm, v->ingest_ms, &skipped, err, sizeof err);
        int64_t t = now_ms();
        if (rc && rc != SR_EERASED) {
            r->failed = 1;
            atomic_fetch_add(&c->st_errors, 1);
            if (t - c->last_blob_err_ms >= 10000) {
                c->last_blob_err_ms = t;
                sr_slog(SR_LOG_WARN, "cluster: a file's bytes not published, retrying", "seq=%" PRIu64 " path=%s error=%s detail=%s",
                        v->seq, sr_slog_q(fm.path), sr_err_name(rc), sr_slog_q(err));
            }
            return 1;
        }
        if (skipped && err[0])
            sr_slog(SR_LOG_WARN, "cluster: a file's bytes not published", "seq=%" PRIu64 " path=%s detail=%s", v->seq,
                    sr_slog_q(fm.path), sr_slog_q(err));
        else if (!rc && !skipped)
            sr_cblobs_count_published(sr_cblobs_self());
    }
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subj, NULL, data, (int)dlen);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Node", c->node);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Seq", seqs);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Operator", v->op && v->op[0] ? v->op : "-");
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Kind", kind);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Suiro-Partition", part);
    if (s == NATS_OK && kid[0]) s = natsMsgHeader_Set(m, "Suiro-Key", kid);
    /* the slot before the send: the ack may come before js_PublishMsgAsync returns */
    pthread_mutex_lock(&c->mu);
    slot *sl = &c->ring[v->seq % c->ring_n];
    if (v->seq > c->published) {
        sl->acked = 0;
        c->published = v->seq;
    }
    if (sl->seq != v->seq) { /* read-your-writes: a new seq in this slot (a resend keeps its stream seq) */
        sl->seq = v->seq;
        sl->sseq = 0;
        sl->part = (uint32_t)strtoul(part, NULL, 10);
    }
    sl->sent_ms = now_ms();
    pthread_mutex_unlock(&c->mu);
    if (s == NATS_OK) s = js_PublishMsgAsync(c->js, &m, NULL);
    natsMsg_Destroy(m); /* NULL once libnats took it */
    if (s != NATS_OK) {
        pthread_mutex_lock(&c->mu);
        if (c->published == v->seq) c->published = v->seq - 1; /* not sent: the next run sends it */
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_add(&c->st_errors, 1);
        r->failed = 1;
        int64_t t = now_ms();
        if (t - c->last_err_ms >= 10000) {
            c->last_err_ms = t;
            sr_slog(SR_LOG_WARN, "cluster: publish failed, retrying", "seq=%" PRIu64 " error=%s detail=%s", v->seq,
                    sr_slog_q(natsStatus_GetText(s)), sr_slog_q(nats_GetLastError(NULL)));
        }
        return 1; /* sent again by the next run */
    }
    atomic_fetch_add(&c->st_published, 1);
    c->js_used = 1;
    r->next = v->seq + 1;
    return 0;
}

/* Forget what libnats still waits for and send everything after the
 * watermark again (invariant 3). */
static void resend_all(sr_cluster *c, const char *why)
{
    natsMsgList l = {0};
    /* (only on a context that published: on a fresh one libnats 3.4 does not return) */
    if (c->js && c->js_used && js_PublishAsyncGetPendingList(&l, c->js) == NATS_OK) natsMsgList_Destroy(&l);
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->published - c->confirmed;
    for (uint64_t s = c->confirmed + 1; s <= c->published; s++) c->ring[s % c->ring_n].acked = 0;
    c->published = c->confirmed;
    pthread_mutex_unlock(&c->mu);
    if (n) {
        atomic_fetch_add(&c->st_republished, n);
        sr_slog(SR_LOG_WARN, "cluster: publishing again", "reason=%s events=%" PRIu64, why, n);
    }
}

static void save_watermark(sr_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t w = c->confirmed;
    int dirty = w != c->written;
    pthread_mutex_unlock(&c->mu);
    if (!dirty) return;
    if (sr_cluster_confirmed_write(c->data_dir, w)) {
        sr_slog(SR_LOG_WARN, "cluster: the confirmed watermark not written", "seq=%" PRIu64, w);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->written = w;
    pthread_mutex_unlock(&c->mu);
}

/* Invariant 8: the stream key erasures whose intent is in the log without
 * a result (a crash came between the intent and the tombstone) are finished
 * once connected, on this thread (the bucket's calls block). */
static void finish_erasures(sr_cluster *c, int64_t t)
{
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    unsigned n = 0;
    char err[512] = "";
    int rc = sr_skey_erase_pending(c->skeys, &c->skv, c->e, c->node, (int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000,
                                   &n, err, sizeof err);
    if (n) sr_slog(SR_LOG_INFO, "cluster: stream key erasures finished at start", "count=%u", n);
    if (rc) {
        sr_slog(SR_LOG_WARN, "cluster: a stream key erasure not finished", "error=%s", sr_slog_q(err[0] ? err : sr_err_name(rc)));
        c->erasures_next = t + 5000;
        if (rc != SR_EIO) c->erasures_done = 1; /* (refused or recorded: not retried until the next start) */
        return;
    }
    c->erasures_done = 1;
}

static void *run(void *arg)
{
    sr_cluster *c = arg;
    int64_t last_save = now_ms(), down_since = 0, last_note = 0;
    char err[512];
    while (!c->stop) {
        int64_t t = now_ms();
        if (!c->nc || natsConnection_Status(c->nc) != NATS_CONN_STATUS_CONNECTED || !c->streams_ok) {
            if (!down_since) down_since = t;
            atomic_store(&c->st_connected, 0);
            if (t >= c->next_try_ms && (!c->nc || !c->streams_ok)) {
                if (c->nc && !c->streams_ok) disconnect(c);
                int rc = nconnect(c, err, sizeof err);
                if (!rc && (rc = ensure_streams(c, err, sizeof err))) disconnect(c);
                if (rc) {
                    c->next_try_ms = t + 1000;
                    if (t - last_note >= 10000) {
                        sr_slog(rc == SR_ECONFLICT ? SR_LOG_ERROR : SR_LOG_WARN, "cluster: NATS unavailable, writes wait",
                                "error=%s held=%zu", sr_slog_q(err), sr_waitlist_held(&c->wl));
                        last_note = t;
                    }
                } else {
                    sr_slog(SR_LOG_INFO, "cluster: connected", "nats=%s down_ms=%" PRId64, sr_slog_q(c->nats),
                            t - down_since);
                    resend_all(c, "connected");
                    down_since = 0;
                }
            }
        } else {
            if (down_since) {
                sr_slog(SR_LOG_INFO, "cluster: reconnected", "down_ms=%" PRId64, t - down_since);
                down_since = 0;
            }
            atomic_store(&c->st_connected, 1);
            /* the oldest unacknowledged seq waited too long: send again */
            pthread_mutex_lock(&c->mu);
            int late = c->published > c->confirmed &&
                       t - c->ring[(c->confirmed + 1) % c->ring_n].sent_ms >= (int64_t)c->ack_timeout_ms;
            pthread_mutex_unlock(&c->mu);
            if (late) resend_all(c, "ack timeout");
            if (c->skeys && !c->erasures_done && t >= c->erasures_next) finish_erasures(c, t);
            sr_engine_stats st;
            sr_engine_get_stats(c->e, &st);
            atomic_store(&c->st_log_last, st.watermark);
            pthread_mutex_lock(&c->mu);
            uint64_t from = c->published + 1;
            pthread_mutex_unlock(&c->mu);
            if (from <= st.watermark) {
                pubrun r = {c, from, 0};
                uint64_t last = 0;
                int rc = sr_engine_log_each(c->e, from, publish_one, &r, &last);
                if (rc == SR_OK && !r.failed) { /* read to the end: a trailing gap is passed too */
                    pthread_mutex_lock(&c->mu);
                    if (last - c->confirmed < c->ring_n) skip_gap(c, r.next, last + 1);
                    uint64_t w = advance(c);
                    pthread_mutex_unlock(&c->mu);
                    sr_waitlist_confirm(&c->wl, w);
                } else if (rc < 0) {
                    sr_slog(SR_LOG_WARN, "cluster: the log not read", "from=%" PRIu64 " error=%s", from, sr_err_name(rc));
                }
            }
        }
        if (t - last_save >= 1000) {
            save_watermark(c);
            last_save = t;
        }
        pthread_mutex_lock(&c->mu);
        if (!c->wake && !c->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        c->wake = 0;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

static void on_appended(void *ctx, uint64_t last)
{
    sr_cluster *c = ctx;
    sr_ryw_appended(last); /* read-your-writes: waiting reads look again (api/ryw.h) */
    atomic_store(&c->st_log_last, last);
    pthread_mutex_lock(&c->mu);
    c->wake = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int sr_cluster_open(sr_engine *e, const sr_cluster_opts *o, sr_cluster **out, char *err, size_t errlen)
{
    *out = NULL;
    if (sr_cluster_check_urls(o->nats, err, errlen) || sr_cluster_check_name("node", o->node, err, errlen) ||
        sr_cluster_check_name("name", o->name, err, errlen))
        return SR_EINVAL;
    /* ownership: by the leases (the default) or a static [cluster] owned */
    int by_leases = o->lease_ms && (!o->owned || !strcmp(o->owned, "leases"));
    sr_cluster_opts so = *o;
    so.owned = by_leases ? "none" : o->owned && strcmp(o->owned, "leases") ? o->owned : "all";
    o = &so;
    uint8_t bits[(SR_CLUSTER_MAX_PARTITIONS + 7) / 8];
    if (o->partitions > SR_CLUSTER_MAX_PARTITIONS || sr_cluster_parse_owned(o->owned, o->partitions, bits, err, errlen))
        return SR_EINVAL;
    int rc = sr_cluster_partitions_fix(o->data_dir, o->partitions, err, errlen);
    if (rc) return rc;
    sr_cluster *c = calloc(1, sizeof *c);
    if (!c) return SR_ENOMEM;
    c->e = e;
    snprintf(c->nats, sizeof c->nats, "%s", o->nats);
    snprintf(c->node, sizeof c->node, "%s", o->node);
    snprintf(c->name, sizeof c->name, "%s", o->name);
    snprintf(c->data_dir, sizeof c->data_dir, "%s", o->data_dir);
    c->partitions = o->partitions;
    c->replicas = o->replicas;
    c->dedup_window_s = o->dedup_window_s;
    c->ack_timeout_ms = o->ack_timeout_ms;
    c->ring_n = o->max_pending;
    c->confirmed = c->published = c->written = sr_cluster_confirmed_read(o->data_dir);
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    if (c->confirmed > st.watermark) { /* a log restored from a backup: its tail is sent again */
        sr_slog(SR_LOG_WARN, "cluster: the confirmed watermark is past the log's end",
                "confirmed=%" PRIu64 " log=%" PRIu64, c->confirmed, st.watermark);
        c->confirmed = c->published = st.watermark;
    }
    /* the tail after the watermark is sent again, under the same ids */
    atomic_store(&c->st_republished, st.watermark - c->confirmed);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (!(c->ring = calloc(c->ring_n, sizeof *c->ring)) ||
        (rc = sr_waitlist_init(&c->wl, o->max_pending, c->confirmed))) {
        free(c->ring);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return SR_ENOMEM;
    }
    c->rotate_days = o->rotate_days;
    if (o->master) c->master = *o->master;
    if (o->master && (rc = sr_skeys_new(o->master, o->rotate_days, &c->skeys))) { /* invariant 7 */
        sr_waitlist_destroy(&c->wl);
        free(c->ring);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return rc;
    }
    c->wl.fill = fill_token;
    c->wl.fill_arg = c;
    /* files' bytes (api/cluster_blob.h): published from the publisher's thread (set before it starts), fetched by
     * a thread of their own (sr_cblobs_start, below) */
    c->bpub = (sr_cblob_pub){.name = c->name, .partitions = c->partitions, .master = o->master, .skeys = c->skeys,
                             .skv = &c->skv, .blobs = sr_engine_blobs(e)};
    /* NATS reachable now: a stream with other settings stops the start;
     * unreachable: the node serves, its data writes wait (docs/cluster.md) */
    if (nconnect(c, err, errlen) == SR_OK) {
        if ((rc = ensure_streams(c, err, errlen))) {
            disconnect(c);
            if (rc == SR_ECONFLICT) {
                sr_waitlist_destroy(&c->wl);
                sr_skeys_free(c->skeys);
                free(c->ring);
                free(c);
                return rc;
            }
        }
    }
    if (!c->nc)
        sr_slog(SR_LOG_WARN, "cluster: NATS unavailable at start, writes wait", "error=%s", sr_slog_q(err));
    err[0] = 0;
    sr_slog(SR_LOG_INFO, "cluster", "node=%s partitions=%u confirmed=%" PRIu64 " log=%" PRIu64, c->node, c->partitions,
            c->confirmed, st.watermark);
    if (pthread_create(&c->th, NULL, run, c)) {
        disconnect(c);
        sr_waitlist_destroy(&c->wl);
        sr_skeys_free(c->skeys);
        free(c->ring);
        free(c);
        snprintf(err, errlen, "cluster: cannot start its thread");
        return SR_ENOMEM;
    }
    c->started = 1;
    rc = sr_csub_start(e, o, &c->sub, err, errlen);
    int subbed = rc == SR_OK;
    if (subbed) rc = sr_cblobs_start(e, o, &c->blobs, err, errlen);
    if (rc) { /* one way back for either failure */
        c->stop = 1;
        pthread_join(c->th, NULL);
        if (subbed) {
            sr_csub_stop(c->sub);
            sr_csub_free(c->sub);
        }
        disconnect(c);
        sr_waitlist_destroy(&c->wl);
        sr_skeys_free(c->skeys);
        free(c->ring);
        free(c);
        return rc;
    }
    sr_engine_on_appended(e, on_appended, c);
    atomic_store(&g_cluster, c);
    *out = c;
    if (by_leases && (rc = sr__cluster_own_start(c, e, o, &c->own, err, errlen))) {
        sr_cluster_close(c);
        sr_cluster_free(c);
        *out = NULL;
        return rc;
    }
    return SR_OK;
}

void sr_cluster_close(sr_cluster *c)
{
    if (!c || c->closed) return;
    c->closed = 1;
    sr__cluster_own_stop(c->own); /* its leases released, its last events submitted */
    sr_engine_on_appended(c->e, NULL, NULL);
    size_t n = sr_waitlist_close(&c->wl, SR_ECLOSED, "server stopping before NATS acknowledged the write");
    if (n) sr_slog(SR_LOG_INFO, "cluster: answers not acknowledged at the stop", "count=%zu", n);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->started) pthread_join(c->th, NULL);
    c->started = 0;
    sr_csub_stop(c->sub); /* (its submitted events' callbacks come first) */
    sr_cblobs_stop(c->blobs);
    /* what was acknowledged until now (acks may still come, then never saved: sent again at the start) */
    if (c->nc) natsConnection_FlushTimeout(c->nc, 500);
    save_watermark(c);
    disconnect(c);
}

void sr_cluster_free(sr_cluster *c)
{
    if (!c) return;
    sr_cluster_close(c); /* (done already: the wait list is closed, the thread joined) */
    /* libnats's threads end before c goes: a late ack callback (its closure
     * is c) must not run on freed memory. The process has one cluster; a
     * later connection opens the library again. */
    sr__cluster_own_free(c->own);
    c->own = NULL;
    if (nats_CloseAndWait(5000) != NATS_OK) sr_slog(SR_LOG_WARN, "cluster: libnats did not stop within 5 s", "%s", "");
    atomic_store(&g_cluster, NULL);
    sr_csub_free(c->sub);
    sr_cblobs_free(c->blobs);
    sr_cblob_pub_release(&c->bpub);
    sr_waitlist_destroy(&c->wl);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    sr_buf_release(&c->alias);
    sr_buf_release(&c->sealed);
    sr_skeys_free(c->skeys);
    free(c->ring);
    free(c);
}

/* ---- read-your-writes: the stream seq of a seq (api/ryw.h) ---- */

static int stream_seq_of(sr_cluster *c, uint64_t seq, uint32_t *part, uint64_t *sseq)
{
    int ok = 0;
    pthread_mutex_lock(&c->mu);
    const slot *sl = &c->ring[seq % c->ring_n];
    if (sl->seq == seq && sl->sseq) {
        *part = sl->part;
        *sseq = sl->sseq;
        ok = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int sr_cluster_stream_seq(uint64_t seq, uint32_t *part, uint64_t *sseq)
{
    sr_cluster *c = atomic_load(&g_cluster);
    return c && seq ? stream_seq_of(c, seq, part, sseq) : 0;
}

/* the wait list's fill: a released answer gets its last event's stream seq */
static void fill_token(void *arg, uint64_t last, sr_result *res)
{
    uint32_t part = 0;
    uint64_t sseq = 0;
    if (res->rc == SR_OK && stream_seq_of(arg, last, &part, &sseq)) res->part = part, res->stream_seq = sseq;
}

/* ---- the wrapped submit ---- */

typedef struct wrap {
    sr_cluster *c;
    sr_engine_cb cb;
    void *ctx;
} wrap;

static void wrapped(void *arg, const sr_result *res)
{
    wrap w = *(wrap *)arg;
    free(arg);
    if (res->rc != SR_OK) {
        w.cb(w.ctx, res);
        return;
    }
    uint64_t last = res->seq + (res->count ? res->count - 1 : 0);
    int rc = sr_waitlist_hold(&w.c->wl, last, w.cb, w.ctx, res);
    if (rc == 0) return;
    if (rc == 1) {
        sr_result r = *res;
        fill_token(w.c, last, &r);
        w.cb(w.ctx, &r);
        return;
    }
    sr_result r = *res;
    r.rc = r.err.code = rc;
    snprintf(r.err.msg, sizeof r.err.msg, "%s",
             rc == SR_EFULL ? "cluster: too many writes wait for NATS acknowledgements, retry"
                            : "server stopping before NATS acknowledged the write");
    w.cb(w.ctx, &r);
}

int sr_cluster_submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx)
{
    sr_cluster *c = atomic_load(&g_cluster);
    if (!c || c->e != e || !cb) return sr_engine_submit(e, events, n, cb, ctx);
    wrap *w = malloc(sizeof *w);
    if (!w) return SR_ENOMEM;
    *w = (wrap){c, cb, ctx};
    int rc = sr_engine_submit(e, events, n, wrapped, w);
    if (rc) free(w);
    return rc;
}

/* sr_cluster_submit_wait's box */
typedef struct cwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    sr_result res;
} cwait;

static void cwait_cb(void *ctx, const sr_result *res)
{
    cwait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->res = *res;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int sr_cluster_submit_wait(sr_engine *e, const sr_slice *events, size_t n, sr_result *res)
{
    sr_cluster *c = atomic_load(&g_cluster);
    if (!c || c->e != e) return sr_engine_submit_wait(e, events, n, res);
    cwait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = sr_cluster_submit(e, events, n, cwait_cb, &w);
    if (!rc) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        *res = w.res;
        rc = w.res.rc;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

int sr_cluster_get_stats(sr_cluster_stats *out)
{
    memset(out, 0, sizeof *out);
    sr_cluster *c = atomic_load(&g_cluster);
    if (!c) return 0;
    out->published = atomic_load(&c->st_published);
    out->acked = atomic_load(&c->st_acked);
    out->republished = atomic_load(&c->st_republished);
    out->errors = atomic_load(&c->st_errors);
    out->confirmed = sr_waitlist_confirmed(&c->wl);
    out->log_last = atomic_load(&c->st_log_last);
    out->held = sr_waitlist_held(&c->wl);
    out->replicated = atomic_load(&c->st_replicated);
    out->sealed = atomic_load(&c->st_sealed);
    out->erased = atomic_load(&c->st_erased);
    out->connected = atomic_load(&c->st_connected);
    return 1;
}

json_t *sr_cluster_status(void)
{
    sr_cluster *c = atomic_load(&g_cluster);
    if (!c || !c->own) return json_pack("{s:b}", "enabled", 0);
    return sr__cluster_own_status(c->own);
}

int sr_cluster_get_own_stats(sr_cluster_own_stats *out, uint32_t *owned)
{
    memset(out, 0, sizeof *out);
    *owned = 0;
    sr_cluster *c = atomic_load(&g_cluster);
    if (!c || !c->own) return 0;
    sr__cluster_own_stats(c->own, out);
    for (uint32_t p = 0; p < c->partitions; p++) *owned += (uint32_t)sr_cluster_owns(c, p);
    return 1;
}

/* With leases, the owned bit AND the fence judged by the reader's clock
 * (api/cluster_own.c invariant 1): a manager thread starved of CPU past its
 * fence cannot leave this node answering as the owner. */
int sr_cluster_owns(sr_cluster *c, uint32_t part)
{
    if (!c || !sr_csub_owns(c->sub, part)) return 0;
    return !c->own || sr__cluster_own_holds(c->own, part);
}

void sr_cluster_set_owned(sr_cluster *c, uint32_t part, int owned)
{
    if (c) sr_csub_set_owned(c->sub, part, owned);
}

sr_csub *sr_cluster_consumers(void)
{
    sr_cluster *c = atomic_load(&g_cluster);
    return c ? c->sub : NULL;
}

/* ---- where a partition's owner is (phase 2b) ---- */

sr_cluster *sr_cluster_self(void) { return atomic_load(&g_cluster); }

/* A NATS connection of its own and the keys' store over it, for a worker
 * thread's erasures (never the loop's, nor the publisher's connection). */
typedef struct econn {
    natsConnection *nc;
    jsCtx *js;
    sr_skv kv;
    sr_skv_nats n;
    sr_skeys *sk;
} econn;

static int econn_open(sr_cluster *c, econn *x, const char *what, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    if (!c) {
        snprintf(err, errlen, "this node is not in the cluster mode ([cluster] nats): there are no stream keys");
        return SR_ECONFLICT;
    }
    if (!c->skeys) {
        snprintf(err, errlen, "this node has no [engine] key_file: its streams are not sealed, no stream key to erase");
        return SR_ECONFLICT;
    }
    char cname[96];
    snprintf(cname, sizeof cname, "%s-%s", c->node, what);
    natsStatus st = (natsStatus)sr__nats_connect(c->nats, cname, &x->nc);
    if (st == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        st = natsConnection_JetStream(&x->js, x->nc, &jo);
    }
    if (st != NATS_OK) {
        snprintf(err, errlen, "cannot connect to NATS (%s): %s", c->nats, natsStatus_GetText(st));
        if (x->nc) natsConnection_Destroy(x->nc);
        x->nc = NULL;
        return SR_EIO;
    }
    sr_skv_nats_init(&x->n, &x->kv, x->js, c->name, (int)c->replicas);
    int rc = sr_skeys_new(&c->master, c->rotate_days, &x->sk);
    if (!rc) sr_skeys_set_ttl(x->sk, 0);
    return rc;
}

static void econn_close(econn *x)
{
    sr_skeys_free(x->sk);
    if (x->js) sr_skv_nats_reset(&x->n);
    if (x->js) jsCtx_Destroy(x->js);
    if (x->nc) {
        natsConnection_Close(x->nc);
        natsConnection_Destroy(x->nc);
    }
    memset(x, 0, sizeof *x);
}


int sr_cluster_erase_key(sr_cluster *c, const char *actor, const char *source, uint64_t id, sr_skey_erase_out *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    econn x;
    int rc = econn_open(c, &x, "erase", err, errlen);
    if (!rc) {
        sr_skey_erase_req q = {c->e, actor, SR_ACTOR_USER, source, "admin", 0, c->node, 0};
        rc = sr_skey_erase(x.sk, &x.kv, &q, id, sr_engine_now_ms(c->e), out, err, errlen);
    }
    econn_close(&x);
    return rc;
}

typedef struct ksweep {
    sr_cluster *c;
    econn *x;
    const sr_retention_cfg *cfg;
    int64_t now;
    sr_cluster_skey_report *rep;
    int rc;
    char *err;
    size_t errlen;
} ksweep;

static int sweep_key(void *ctx, const char *key)
{
    ksweep *k = ctx;
    char err[512] = "";
    int rc = sr_skey_retention_erase(k->x->sk, &k->x->kv, k->c->e, k->cfg, k->now, k->c->node, key, k->rep, err,
                                     sizeof err);
    if (rc && !k->rc) {
        k->rc = rc;
        snprintf(k->err, k->errlen, "%s", err);
    }
    return rc == SR_EIO ? rc : SR_OK; /* (a refusal or failure is recorded; the others go on) */
}

int sr_cluster_skey_sweep(sr_cluster *c, const sr_retention_cfg *cfg, sr_cluster_skey_report *rep, char *err,
                          size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    if (err && errlen) err[0] = 0;
    if (!c || !c->skeys) return SR_OK; /* nothing sealed, nothing to erase */
    econn x;
    int rc = econn_open(c, &x, "ksweep", err, errlen);
    if (!rc) {
        ksweep k = {c, &x, cfg, sr_engine_now_ms(c->e), rep, SR_OK, err, errlen};
        rc = sr_skv_nats_keys(&x.n, sweep_key, &k);
        if (!rc) rc = k.rc;
        else if (!err[0]) snprintf(err, errlen, "the bucket %s not read: %s", x.n.bucket, sr_strerror(rc));
    }
    econn_close(&x);
    return rc;
}
const char *sr_cluster_node(sr_cluster *c) { return c ? c->node : ""; }
uint32_t sr_cluster_partitions(sr_cluster *c) { return c ? c->partitions : 0; }
int sr_cluster_has_leases(sr_cluster *c) { return c && c->own; }

int sr_cluster_owner_url(sr_cluster *c, uint32_t part, char *url, size_t len, char node[32])
{
    if (!c || !c->own || part >= c->partitions) return SR_ENOTFOUND;
    return sr__cluster_own_owner(c->own, part, url, len, node);
}

int sr_cluster_peer_host(sr_cluster *c, const char *host, char node[32])
{
    return c && c->own ? sr__cluster_own_peer(c->own, host, node) : 0;
}

void sr_cluster_set_advertise(sr_cluster *c, const char *url)
{
    if (c && c->own) sr__cluster_own_set_url(c->own, url);
}
