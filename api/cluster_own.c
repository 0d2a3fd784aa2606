/* api/cluster_own.c -- the cluster mode's ownership (issue #19 phase 2a;
 * the contract: api/cluster.h "ownership"; the design: docs/cluster.md
 * "Ownership"): which node owns (indexes, answers for) each partition.
 *
 * The leases live in the JetStream KV bucket <name>_OWNERS:
 *   node.<node>  {"node","apif","admin","started_ms","at_ms"}: a heartbeat
 *                put every lease_ms/3; a node whose at_ms is older than
 *                lease_ms + margin (by the reader's clock) is not live;
 *   part.<NNN>   {"node","until_ms","epoch"}: the lease, created only if
 *                absent (kvStore_Create), renewed, taken or released only by
 *                compare-and-set on the revision read (kvStore_Update).
 * The preferred owner of a partition is the live node of the highest
 * rendezvous weight (sr_own_weight). The manager runs on its own thread
 * with its own NATS connection (no cnats call on a libuv loop thread; its
 * renewals do not queue behind the publisher's messages).
 *
 * Invariants:
 *  1. A node believes it owns partition p (sr_cluster_owns) only while its
 *     fence holds: the monotonic time at which it SENT its last accepted
 *     create/renew/take of p, plus lease_ms - margin. Past that it drops
 *     the partition (why "lost") before any other node may take it: a
 *     taker waits until until_ms + margin by its own clock, and until_ms
 *     was the holder's wall clock + lease_ms at the send (clocks agree
 *     within margin = lease_ms / 4: the documented assumption). The fence
 *     is checked between the round's requests, each bounded by lease_ms/8
 *     (a stalled bucket does not hold a bit past its fence by more), and
 *     by every reader: sr_cluster_owns is the owned bit AND "now is before
 *     the fence" (set_fence publishes it), so a manager thread starved of
 *     CPU cannot make its node answer as the owner past its fence.
 *  2. The holder clears its owned bit BEFORE it releases a lease (handover)
 *     and a taker sets it only AFTER its CAS was accepted: never two nodes
 *     owning one partition at one instant (bounded by invariant 1's clock
 *     assumption).
 *  3. epoch grows by one on every change of owner (take, or take after a
 *     release); a renewal keeps it; a release keeps it (node "").
 *  4. Every change this node makes (and every loss it finds) is a
 *     ClusterEvent in its log (sr_cmd_cluster; why start, expired,
 *     handover, lost), written after the bucket accepted the change.
 *  5. A take is owned only once the next round reads it back: the same
 *     revision, this node's, then renewed. Debian's NATS 2.9.10 was seen
 *     to accept two compare-and-set takes of one lease on one revision
 *     during a stream leader change (docs/cluster.md "What is
 *     guaranteed"); read back a round later, only the write the bucket
 *     kept is owned. A take costs one round more.
 */
#include "api/cluster.h"

#include "api/slog.h"

#include <jansson.h>
#include <nats/nats.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the pure parts ---- */

static uint64_t mix64(uint64_t x) /* splitmix64's finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t sr_own_weight(uint32_t part, const char *node)
{
    uint8_t b[64];
    size_t n = strnlen(node, sizeof b - 4);
    memcpy(b, node, n);
    sr_put_le32(b + n, part);
    return mix64(sr_fnv1a64(b, n + 4));
}

int sr_own_preferred(uint32_t part, const char *const *nodes, size_t n)
{
    int best = -1;
    uint64_t bw = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = sr_own_weight(part, nodes[i]);
        if (best < 0 || w > bw || (w == bw && strcmp(nodes[i], nodes[best]) < 0)) best = (int)i, bw = w;
    }
    return best;
}

int sr__cjson_int(json_t *o, const char *k, int64_t min, int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        snprintf(err, errlen, "%s: an integer >= %" PRId64 " is required", k, min);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int sr__cjson_str(json_t *o, const char *k, int empty_ok, char *out, size_t n, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v) || json_string_length(v) >= n || (!empty_ok && !json_string_length(v)) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "%s: a string of %s%zu bytes is required", k, empty_ok ? "0 to " : "1 to ", n - 1);
        return -1;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

json_t *sr__cjson_obj(const void *p, size_t n, const char *what, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = p ? json_loadb(p, n, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s: not a JSON object%s%s", what, o ? "" : ": ", o ? "" : (p ? je.text : "no value"));
        json_decref(o);
        return NULL;
    }
    return o;
}

int sr_lease_parse(const void *p, size_t n, sr_lease *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *o = sr__cjson_obj(p, n, "lease", err, errlen);
    if (!o) return SR_EINVAL;
    int64_t until = 0, epoch = 0;
    char e2[160];
    int rc = sr__cjson_str(o, "node", 1, out->node, sizeof out->node, e2, sizeof e2) ||
             sr__cjson_int(o, "until_ms", 0, &until, e2, sizeof e2) || sr__cjson_int(o, "epoch", 0, &epoch, e2, sizeof e2);
    if (!rc && out->node[0] && sr_cluster_check_name("node", out->node, e2, sizeof e2)) rc = -1;
    json_decref(o);
    if (rc) {
        snprintf(err, errlen, "lease: %s", e2);
        memset(out, 0, sizeof *out);
        return SR_EINVAL;
    }
    out->until_ms = until;
    out->epoch = (uint64_t)epoch;
    return SR_OK;
}

int sr_lease_format(const sr_lease *l, char *buf, size_t n)
{
    int k = snprintf(buf, n, "{\"node\":\"%s\",\"until_ms\":%" PRId64 ",\"epoch\":%" PRIu64 "}", l->node, l->until_ms,
                     l->epoch);
    return k > 0 && (size_t)k < n ? k : -1;
}

int sr_node_info_parse(const void *p, size_t n, sr_node_info *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *o = sr__cjson_obj(p, n, "node", err, errlen);
    if (!o) return SR_EINVAL;
    char e2[160];
    int rc = sr__cjson_str(o, "node", 0, out->node, sizeof out->node, e2, sizeof e2) ||
             sr__cjson_str(o, "apif", 1, out->apif, sizeof out->apif, e2, sizeof e2) ||
             sr__cjson_str(o, "admin", 1, out->admin, sizeof out->admin, e2, sizeof e2) ||
             sr__cjson_int(o, "started_ms", 0, &out->started_ms, e2, sizeof e2) ||
             sr__cjson_int(o, "at_ms", 0, &out->at_ms, e2, sizeof e2);
    if (!rc && sr_cluster_check_name("node", out->node, e2, sizeof e2)) rc = -1;
    json_decref(o);
    if (rc) {
        snprintf(err, errlen, "node: %s", e2);
        memset(out, 0, sizeof *out);
        return SR_EINVAL;
    }
    return SR_OK;
}

/* ---- the manager ---- */

typedef struct pstate {
    int present;             /* the key exists (a lease, held or released) */
    sr_lease l;              /* as last read */
    uint64_t rev;            /* its revision */
    int64_t fence_mono;      /* > 0: this node holds it until then (invariant 1) */
    uint64_t confirm_rev;    /* > 0: a take the bucket accepted at this revision, owned once read back (invariant 5) */
    int confirm_why;
    char confirm_old[32];
} pstate;

struct sr_cluster_own {
    sr_cluster *c;
    sr_engine *e;
    char nats[1024], node[32], name[32], apif[160], bucket[48];
    uint32_t partitions, replicas, lease_ms, margin_ms;
    int64_t started_ms;
    pthread_t th;
    int started;
    pthread_mutex_t mu; /* the status snapshot and stop */
    pthread_cond_t cv;
    int stop;
    /* the thread's */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    pstate *ps;
    _Atomic int64_t *held_until; /* per partition: ps[p].fence_mono, read by any thread (sr__cluster_own_holds) */
    _Atomic uint64_t *held_epoch; /* per partition: the epoch of the lease held under that fence (the status) */
    int ticks;
    int64_t last_warn;
    /* the status snapshot (under mu) */
    pstate *snap;
    sr_node_info *nodes;
    size_t nnodes, nlive;
    int connected;
    /* figures */
    _Atomic uint64_t changes[4]; /* start, expired, handover, lost */
    _Atomic uint32_t live;
};

static const char *const whys[4] = {"start", "expired", "handover", "lost"};
enum { W_START, W_EXPIRED, W_HANDOVER, W_LOST };

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Every change of a fence goes through here: the readers of sr_cluster_owns
 * judge the fence by the clock themselves (invariant 1 holds at the reader,
 * however late this thread runs: a starved manager cannot keep a partition
 * past its fence). */
static void set_fence(sr_cluster_own *o, uint32_t p, int64_t until)
{
    o->ps[p].fence_mono = until;
    atomic_store(&o->held_epoch[p], until ? o->ps[p].l.epoch : 0);
    atomic_store(&o->held_until[p], until);
}

int sr__cluster_own_holds(sr_cluster_own *o, uint32_t part)
{
    if (!o || part >= o->partitions) return 0;
    int64_t u = atomic_load(&o->held_until[part]);
    return u > 0 && mono_ms() < u;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_event(void *ctx, const sr_result *res)
{
    (void)ctx;
    if (res->rc) sr_slog(SR_LOG_WARN, "cluster: an ownership event not written", "error=%s", sr_slog_q(res->err.msg));
}

/* The ClusterEvent of a change (invariant 4) and its counter. */
static void record(sr_cluster_own *o, uint32_t p, const char *old, const char *neu, uint64_t epoch, int why,
                   int64_t until, const char *outcome)
{
    atomic_fetch_add(&o->changes[why], 1);
    sr_slog(SR_LOG_INFO, "cluster: ownership", "partition=%u why=%s old=%s new=%s epoch=%" PRIu64 " outcome=%s", p,
            whys[why], old[0] ? old : "-", neu[0] ? neu : "-", epoch, outcome);
    sr_cmd_env env = {"", o->node, SR_ACTOR_SYSTEM, NULL, NULL};
    sr_cluster_change ch = {p, old, neu, epoch, whys[why], outcome, until};
    sr_buf b = {0};
    int rc = sr_cmd_cluster(&env, &ch, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit(o->e, &sl, 1, on_event, NULL);
    }
    sr_buf_release(&b);
    if (rc) sr_slog(SR_LOG_WARN, "cluster: an ownership event not written", "error=%s", sr_err_name(rc));
}

static void disconnect(sr_cluster_own *o)
{
    if (o->kv) kvStore_Destroy(o->kv);
    if (o->nc) natsConnection_Close(o->nc);
    if (o->js) jsCtx_Destroy(o->js);
    if (o->nc) natsConnection_Destroy(o->nc);
    o->kv = NULL;
    o->js = NULL;
    o->nc = NULL;
}

static int oconnect(sr_cluster_own *o, char *err, size_t errlen)
{
    char cname[64];
    snprintf(cname, sizeof cname, "%s-owner", o->node);
    natsStatus s = (natsStatus)sr__nats_connect(o->nats, cname, &o->nc);
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        /* a stalled request blocks the round at most lease/8: the fence is
         * checked between requests (invariant 1's slack is margin = lease/4) */
        jo.Wait = o->lease_ms / 8 > 100 ? o->lease_ms / 8 : 100;
        s = natsConnection_JetStream(&o->js, o->nc, &jo);
    }
    if (s == NATS_OK) {
        s = js_KeyValue(&o->kv, o->js, o->bucket);
        if (s != NATS_OK) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = o->bucket;
            kc.History = 1;
            kc.StorageType = js_FileStorage;
            kc.Replicas = (int)o->replicas;
            s = js_CreateKeyValue(&o->kv, o->js, &kc);
        }
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "bucket %s: %s (%s)", o->bucket, natsStatus_GetText(s), nats_GetLastError(NULL));
        disconnect(o);
        return SR_EIO;
    }
    return SR_OK;
}

static void heartbeat(sr_cluster_own *o, int64_t t)
{
    char key[64], v[512], url[160];
    snprintf(key, sizeof key, "node.%s", o->node);
    pthread_mutex_lock(&o->mu); /* sr__cluster_own_set_url */
    snprintf(url, sizeof url, "%s", o->apif);
    pthread_mutex_unlock(&o->mu);
    int k = snprintf(v, sizeof v,
                     "{\"node\":\"%s\",\"apif\":\"%s\",\"admin\":\"%s\",\"started_ms\":%" PRId64 ",\"at_ms\":%" PRId64
                     "}",
                     o->node, url, url, o->started_ms, t);
    uint64_t rev = 0;
    (void)kvStore_Put(&rev, o->kv, key, v, k); /* a failed put: the next tick's */
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const sr_node_info *)a)->node, ((const sr_node_info *)b)->node);
}

/* The nodes of the bucket, sorted, the live first... (all of them, with
 * nlive counted; live: at_ms within lease + margin, or this node). */
static void read_nodes(sr_cluster_own *o, int64_t t, sr_node_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    kvKeysList kl = {0};
    if (kvStore_Keys(&kl, o->kv, NULL) != NATS_OK) return;
    sr_node_info *v = calloc((size_t)kl.Count + 1, sizeof *v);
    size_t m = 0;
    for (int i = 0; v && i < kl.Count; i++) {
        if (strncmp(kl.Keys[i], "node.", 5)) continue;
        kvEntry *e = NULL;
        if (kvStore_Get(&e, o->kv, kl.Keys[i]) != NATS_OK) continue;
        char err[160];
        if (!sr_node_info_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &v[m], err, sizeof err)) m++;
        else if (t - o->last_warn > 10000) {
            o->last_warn = t;
            sr_slog(SR_LOG_WARN, "cluster: a bad entry in the owners' bucket", "key=%s error=%s", kl.Keys[i],
                    sr_slog_q(err));
        }
        kvEntry_Destroy(e);
    }
    kvKeysList_Destroy(&kl);
    if (v) qsort(v, m, sizeof *v, cmp_node);
    *out = v;
    *n = m;
}

static int node_live(const sr_cluster_own *o, const sr_node_info *ni, int64_t t)
{
    return !strcmp(ni->node, o->node) || t - ni->at_ms <= (int64_t)(o->lease_ms + o->margin_ms);
}

/* CAS write of partition p's lease: 1 accepted (ps updated), 0 refused
 * (another revision: someone else changed it), -1 no answer. */
static int cas(sr_cluster_own *o, uint32_t p, pstate *s, const sr_lease *l, int create)
{
    char key[32], v[128];
    snprintf(key, sizeof key, "part.%03u", p);
    int k = sr_lease_format(l, v, sizeof v);
    if (k < 0) return -1;
    uint64_t rev = 0;
    natsStatus st = create ? kvStore_Create(&rev, o->kv, key, v, k) : kvStore_Update(&rev, o->kv, key, v, k, s->rev);
    if (st == NATS_OK) {
        s->present = 1;
        s->l = *l;
        s->rev = rev;
        return 1;
    }
    /* a wrong last sequence / the key exists: a JetStream error answer */
    return st == NATS_ERR ? 0 : -1;
}

static void drop(sr_cluster_own *o, uint32_t p, pstate *s, const char *neu, int64_t until)
{
    set_fence(o, p, 0);
    sr_cluster_set_owned(o->c, p, 0);
    record(o, p, o->node, neu, s->l.epoch, W_LOST, until, "done");
}

/* The fence (invariant 1): a lease not renewed in time is not ours any
 * more. Checked between the round's requests. */
static void fence(sr_cluster_own *o)
{
    int64_t tm = mono_ms();
    for (uint32_t p = 0; p < o->partitions; p++)
        if (o->ps[p].fence_mono && tm >= o->ps[p].fence_mono) drop(o, p, &o->ps[p], "", o->ps[p].l.until_ms);
}

static void tick(sr_cluster_own *o)
{
    int64_t t = wall_ms();
    heartbeat(o, t);
    fence(o);
    sr_node_info *nodes = NULL;
    size_t nn = 0;
    read_nodes(o, t, &nodes, &nn);
    const char **live = calloc(nn + 1, sizeof *live);
    size_t nl = 0;
    int me_in = 0;
    for (size_t i = 0; live && i < nn; i++)
        if (node_live(o, &nodes[i], t)) {
            live[nl++] = nodes[i].node;
            me_in |= !strcmp(nodes[i].node, o->node);
        }
    if (live && !me_in) live[nl++] = o->node; /* this node is alive, whatever the bucket said */
    atomic_store(&o->live, (uint32_t)nl);
    int act = o->ticks++ > 0 && live; /* the first tick only announces this node and reads the others */
    fence(o);
    for (uint32_t p = 0; act && p < o->partitions && !o->stop; p++) {
        fence(o);
        pstate *s = &o->ps[p];
        char key[32];
        snprintf(key, sizeof key, "part.%03u", p);
        kvEntry *e = NULL;
        natsStatus st = kvStore_Get(&e, o->kv, key);
        if (st == NATS_NOT_FOUND) {
            s->present = 0;
            memset(&s->l, 0, sizeof s->l);
            s->rev = 0;
        } else if (st == NATS_OK) {
            char err[160];
            s->present = 1;
            s->rev = kvEntry_Revision(e);
            if (sr_lease_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &s->l, err, sizeof err)) {
                /* a bad value: treated as a released lease (taken by CAS on its revision) */
                sr_slog(SR_LOG_WARN, "cluster: a bad lease in the owners' bucket", "key=%s error=%s", key,
                        sr_slog_q(err));
                memset(&s->l, 0, sizeof s->l);
            }
            kvEntry_Destroy(e);
        } else continue; /* no answer: nothing changes, the fence runs on */
        const char *pref = live[sr_own_preferred(p, live, nl)];
        int mine = !strcmp(pref, o->node);
        int64_t t0 = mono_ms(), now = wall_ms();
        if (s->fence_mono) { /* held */
            if (!s->present || strcmp(s->l.node, o->node)) {
                drop(o, p, s, s->l.node, s->l.until_ms); /* someone else changed it */
                continue;
            }
            if (!mine) { /* the preferred node is live again: release (invariant 2: the bit first) */
                set_fence(o, p, 0);
                sr_cluster_set_owned(o->c, p, 0);
                sr_lease l = {"", now, s->l.epoch};
                int r = cas(o, p, s, &l, 0);
                record(o, p, o->node, "", l.epoch, W_HANDOVER, now, r == 1 ? "done" : "failed");
                continue;
            }
            sr_lease l = s->l;
            l.until_ms = now + o->lease_ms;
            int r = cas(o, p, s, &l, 0);
            /* refused or no answer: the next tick reads it again (taken by
             * another node: dropped there); the fence runs on (invariant 1) */
            if (r == 1) set_fence(o, p, t0 + o->lease_ms - o->margin_ms);
            continue;
        }
        /* not held */
        if (s->confirm_rev) { /* a take of the last round (invariant 5) */
            uint64_t want = s->confirm_rev;
            s->confirm_rev = 0;
            if (s->present && s->rev == want && !strcmp(s->l.node, o->node)) {
                sr_lease l = s->l;
                l.until_ms = now + o->lease_ms;
                if (cas(o, p, s, &l, 0) == 1) {
                    set_fence(o, p, t0 + o->lease_ms - o->margin_ms);
                    sr_cluster_set_owned(o->c, p, 1);
                    record(o, p, s->confirm_old, o->node, l.epoch, s->confirm_why, l.until_ms, "done");
                }
                continue;
            }
            /* another write was kept: never owned; the rules below decide anew */
        }
        int take = 0, why = W_START, create = 0;
        if (!s->present) take = mine, create = 1;
        else if (!s->l.node[0]) { /* released: the preferred node's at once, anyone's a lease later */
            take = mine || now > s->l.until_ms + o->lease_ms + o->margin_ms;
            why = mine ? W_HANDOVER : W_EXPIRED;
        } else if (!strcmp(s->l.node, o->node)) { /* this node's before a restart */
            take = mine || now > s->l.until_ms + o->lease_ms + o->margin_ms;
            why = W_START;
        } else if (now > s->l.until_ms + o->margin_ms) { /* expired: the preferred node's, anyone's a lease later */
            take = mine || now > s->l.until_ms + o->lease_ms + o->margin_ms;
            why = W_EXPIRED;
        }
        if (!take) continue;
        sr_lease l = {"", now + o->lease_ms, create ? 1 : s->l.epoch + 1};
        snprintf(l.node, sizeof l.node, "%s", o->node);
        char old[32];
        snprintf(old, sizeof old, "%s", s->present ? s->l.node : "");
        if (cas(o, p, s, &l, create) != 1) continue; /* another node won the CAS */
        s->confirm_rev = s->rev; /* owned once read back (invariant 5) */
        s->confirm_why = why;
        snprintf(s->confirm_old, sizeof s->confirm_old, "%s", old);
    }
    fence(o);
    free(live);
    pthread_mutex_lock(&o->mu);
    memcpy(o->snap, o->ps, o->partitions * sizeof *o->ps);
    free(o->nodes);
    o->nodes = nodes;
    o->nnodes = nn;
    o->nlive = nl;
    pthread_mutex_unlock(&o->mu);
}

/* A clean stop: every held lease released (the others take them at once). */
static void release_all(sr_cluster_own *o)
{
    int64_t now = wall_ms();
    /* NATS not answering: no request each (the stop is not held lease/8 per partition) */
    int up = o->kv && o->nc && natsConnection_Status(o->nc) == NATS_CONN_STATUS_CONNECTED;
    for (uint32_t p = 0; p < o->partitions; p++) {
        pstate *s = &o->ps[p];
        if (!s->fence_mono && !s->confirm_rev) continue; /* a take not read back yet is released too */
        s->confirm_rev = 0;
        set_fence(o, p, 0);
        sr_cluster_set_owned(o->c, p, 0);
        sr_lease l = {"", now, s->l.epoch};
        int r = up ? cas(o, p, s, &l, 0) : -1;
        if (r < 0) up = 0;
        record(o, p, o->node, "", l.epoch, W_HANDOVER, now, r == 1 ? "done" : "failed");
    }
    if (up) {
        char key[64];
        snprintf(key, sizeof key, "node.%s", o->node);
        (void)kvStore_Delete(o->kv, key);
    }
}

static void *run(void *arg)
{
    sr_cluster_own *o = arg;
    char err[512];
    int64_t next_try = 0, last_note = 0;
    uint32_t period = o->lease_ms / 3;
    while (!o->stop) {
        int64_t t = mono_ms();
        if (!o->kv && t >= next_try) {
            if (oconnect(o, err, sizeof err)) {
                next_try = t + 1000;
                if (t - last_note >= 10000) {
                    sr_slog(SR_LOG_WARN, "cluster: the owners' bucket unavailable", "error=%s", sr_slog_q(err));
                    last_note = t;
                }
            }
        }
        if (o->kv) tick(o);
        else fence(o); /* no bucket: the fence still runs (invariant 1) */
        pthread_mutex_lock(&o->mu);
        o->connected = o->kv && o->nc && natsConnection_Status(o->nc) == NATS_CONN_STATUS_CONNECTED;
        int64_t wait = (int64_t)period - (mono_ms() - t);
        if (wait > 0 && !o->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
        }
        pthread_mutex_unlock(&o->mu);
    }
    release_all(o);
    disconnect(o);
    return NULL;
}

int sr__cluster_own_start(sr_cluster *c, sr_engine *e, const sr_cluster_opts *co, sr_cluster_own **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    sr_cluster_own *o = calloc(1, sizeof *o);
    if (!o || !(o->ps = calloc(co->partitions, sizeof *o->ps)) || !(o->snap = calloc(co->partitions, sizeof *o->snap)) ||
        !(o->held_until = calloc(co->partitions, sizeof *o->held_until)) ||
        !(o->held_epoch = calloc(co->partitions, sizeof *o->held_epoch))) {
        if (o) free(o->ps), free(o->snap), free((void *)o->held_until);
        free(o);
        snprintf(err, errlen, "cluster: out of memory");
        return SR_ENOMEM;
    }
    o->c = c;
    o->e = e;
    snprintf(o->nats, sizeof o->nats, "%s", co->nats);
    snprintf(o->node, sizeof o->node, "%s", co->node);
    snprintf(o->name, sizeof o->name, "%s", co->name);
    snprintf(o->bucket, sizeof o->bucket, "%s_OWNERS", co->name);
    if (co->advertise && co->advertise[0]) snprintf(o->apif, sizeof o->apif, "%s", co->advertise); /* phase 2b */
    else if (co->http_listen && co->http_listen[0]) snprintf(o->apif, sizeof o->apif, "http://%s", co->http_listen);
    o->partitions = co->partitions;
    o->replicas = co->replicas;
    o->lease_ms = co->lease_ms;
    o->margin_ms = co->lease_ms / 4;
    o->started_ms = wall_ms();
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->th, NULL, run, o)) {
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
        free(o->ps);
        free(o->snap);
        free((void *)o->held_until);
        free((void *)o->held_epoch);
        free(o);
        snprintf(err, errlen, "cluster: cannot start the ownership thread");
        return SR_ENOMEM;
    }
    o->started = 1;
    *out = o;
    return SR_OK;
}

void sr__cluster_own_stop(sr_cluster_own *o)
{
    if (!o || !o->started) return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->th, NULL);
    o->started = 0;
}

void sr__cluster_own_free(sr_cluster_own *o)
{
    if (!o) return;
    sr__cluster_own_stop(o);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o->ps);
    free(o->snap);
    free((void *)o->held_until);
    free((void *)o->held_epoch);
    free(o->nodes);
    free(o);
}

void sr__cluster_own_stats(sr_cluster_own *o, sr_cluster_own_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!o) return;
    for (int i = 0; i < 4; i++) out->changes[i] = atomic_load(&o->changes[i]);
    out->live = atomic_load(&o->live);
}

const char *sr_cluster_own_why(int i)
{
    return i >= 0 && i < 4 ? whys[i] : NULL;
}

json_t *sr__cluster_own_status(sr_cluster_own *o)
{
    json_t *nodes = json_array(), *parts = json_array(), *owned = json_array();
    int64_t t = wall_ms();
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->nnodes; i++) {
        const sr_node_info *n = &o->nodes[i];
        json_array_append_new(nodes, json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "node", n->node, "apif", n->apif, "admin",
                                               n->admin, "startedMs", (json_int_t)n->started_ms, "seenMs",
                                               (json_int_t)n->at_ms, "live", node_live(o, n, t)));
    }
    for (uint32_t p = 0; p < o->partitions; p++) {
        const pstate *s = &o->snap[p];
        json_t *r = json_pack("{s:i,s:I,s:I}", "partition", (int)p, "epoch", (json_int_t)s->l.epoch, "untilMs",
                              (json_int_t)s->l.until_ms);
        json_object_set_new(r, "owner", s->present && s->l.node[0] ? json_string(s->l.node) : json_null());
        json_array_append_new(parts, r);
    }
    int conn = o->connected;
    size_t nl = o->nlive;
    pthread_mutex_unlock(&o->mu);
    /* a partition this node owns is shown with the lease it holds, not the
     * bucket as its last round read it: a take in the middle of a round
     * would otherwise show the epoch before the take (and an observer
     * comparing epochs would see an owner keep one epoch across another
     * node's hold) */
    for (uint32_t p = 0; p < o->partitions; p++) {
        uint64_t ep = atomic_load(&o->held_epoch[p]);
        if (!sr_cluster_owns(o->c, p)) continue;
        json_array_append_new(owned, json_integer(p));
        json_t *r = json_array_get(parts, p);
        json_object_set_new(r, "epoch", json_integer((json_int_t)ep));
        json_object_set_new(r, "owner", json_string(o->node));
    }
    return json_pack("{s:b,s:s,s:s,s:i,s:i,s:b,s:i,s:o,s:o,s:o}", "enabled", 1, "node", o->node, "bucket", o->bucket,
                     "leaseMs", (int)o->lease_ms, "partitionCount", (int)o->partitions, "connected", conn, "liveNodes",
                     (int)nl, "nodes", nodes, "partitions", parts, "owned", owned);
}

/* ---- where a partition's owner is (phase 2b: forwarding, api/cluster_fwd.h) ---- */

int sr__cluster_own_owner(sr_cluster_own *o, uint32_t part, char *url, size_t len, char node[32])
{
    int rc = SR_ENOTFOUND;
    int64_t t = wall_ms();
    url[0] = 0;
    node[0] = 0;
    pthread_mutex_lock(&o->mu);
    const pstate *s = part < o->partitions ? &o->snap[part] : NULL;
    if (s && s->present && s->l.node[0] && t <= s->l.until_ms + (int64_t)o->margin_ms) {
        snprintf(node, 32, "%s", s->l.node);
        rc = SR_EINVAL;
        for (size_t i = 0; i < o->nnodes; i++) {
            const sr_node_info *n = &o->nodes[i];
            if (strcmp(n->node, s->l.node)) continue;
            if (n->apif[0] && node_live(o, n, t) && strlen(n->apif) < len) {
                snprintf(url, len, "%s", n->apif);
                rc = SR_OK;
            }
            break;
        }
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

int sr_fwd_url_host(const char *url, char *host, size_t cap);

int sr__cluster_own_peer(sr_cluster_own *o, const char *host, char node[32])
{
    int found = 0;
    int64_t t = wall_ms();
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->nnodes && !found; i++) {
        char h[160];
        const sr_node_info *n = &o->nodes[i];
        if (strcmp(n->node, o->node) && node_live(o, n, t) && !sr_fwd_url_host(n->apif, h, sizeof h) &&
            !strcmp(h, host)) {
            snprintf(node, 32, "%s", n->node);
            found = 1;
        }
    }
    pthread_mutex_unlock(&o->mu);
    return found;
}

void sr__cluster_own_set_url(sr_cluster_own *o, const char *url)
{
    pthread_mutex_lock(&o->mu);
    snprintf(o->apif, sizeof o->apif, "%s", url);
    pthread_mutex_unlock(&o->mu);
}
