/*
 * engine/writer.c -- the command queue and the writer thread: one thread owns
 * the log appends and the LMDB write transaction (docs/durability.md
 * section 6), and commits groups of commands at once.
 *
 * Commands (one or more serialized events of one operator) are queued per
 * operator (sr_engine_submit) and taken round-robin, at most group_max a
 * group. A group: tentative seqs; pass 1 in a nested txn per command
 * validates every event and applies the non-series ones (apply.c); refused
 * -> abort the nested txn, reuse the seqs; accepted -> commit it, encode the
 * events; pass 2 applies the group's measurements (heads.c); then one log
 * append (an atomic batch, durable), the watermark, the commit, W published,
 * the registry generation and hook (registry_changed: a group that changed
 * the registry), the callbacks. After the group's commands and before its
 * heads checkpoint, one WriteAudit per (operator, actor) that wrote data in
 * it (wa_events, issue #18): the writes' audit record, in the same append. Every replay_max_events / 2 events, at most every
 * checkpoint_interval_ms while writing (and at a clean close) the group ends
 * with the writer's own heads checkpoint (add_checkpoint, docs/durability.md
 * section 8). With a keyring (a master key, docs/keys.md) each record is
 * sealed by the active key of its operator and its kind's class
 * (sr__record_key, keys.c: a key made for it is durable in the keyring
 * before the append, and its KeyEvent follows the command's records in the
 * same append, add_key_events); the append is sr_log_append_keyed.
 *
 * INVARIANTS (checked by sr_writer_check at every transition, in the debug
 * build; the engine's own are in engine.c)
 *  (1) Queue: depth is the sum of the operators' queue depths, each the
 *      length of its list (head and tail both set or both NULL); depth <=
 *      queue_max and an operator's <= queue_max_per_op (more is SR_EFULL).
 *  (2) Group commit: a group holds at most group_max commands; between
 *      groups the writer's next_seq is W + 1 (what it applied is published).
 *  (3) Poisoned (a failed append or commit, engine.c invariant 6): no group
 *      is appended, queued commands get SR_EPOISONED, submits are refused,
 *      poison_cause names the failure; sr__recover clears both together.
 *  (4) Read-only (opts.readonly, log_readonly, or opened read-only for lack
 *      of space: nospace_ro, poison_cause SR_ENOSPC): no writer thread and
 *      nothing queued.
 *  (5) Write audit (issue #18): every data write a group appends (the
 *      kinds wa_is_write names) is summarised by exactly one WriteAudit of
 *      its operator and actor later in the same append, whose seqs range
 *      holds it and whose count is its writes' (test_engine_fault checks
 *      the log at every fault point).
 *
 * STATES                          TRANSITION              FUNCTION
 *   (none) -> RUNNING              open                    sr__writer_start()
 *   RUNNING -> RUNNING             a command queued        sr_engine_submit()
 *   RUNNING -> RUNNING             a group committed       process_group()
 *   RUNNING -> POISONED            append/commit failed    poison()
 *   POISONED -> RUNNING            log reopened            sr__recover()
 *   any -> STOPPING -> (none)      close                   sr_engine_close()
 */
#include "engine/engine_int.h"

#include "storage/index.h"
#include "storage/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* The writer                                                                */

static void poison(sr_engine *e, int cause, uint64_t seq)
{
    pthread_mutex_lock(&e->mu);
    e->poisoned = 1;
    e->poison_cause = cause;
    SR_INVARIANT(sr_writer_check(e));
    pthread_mutex_unlock(&e->mu);
    if (e->o.no_recover)
        sr__alert(e, 1, "write failed at seq %" PRIu64 ": %s (%s); nothing of it was acknowledged; writes refused until reopened",
                  seq, sr_strerror(cause), sr_err_name(cause));
    else
        sr__alert(e, 1, "write failed at seq %" PRIu64 ": %s (%s); nothing of it was acknowledged; writes refused, resuming "
                        "by itself once it works (tried every %u ms): %s",
                  seq, sr_strerror(cause), sr_err_name(cause), e->o.recover_ms,
                  cause == SR_ENOSPC || sr__fs_full(e->dir) ? "free disk space (the file system is full)" : "check the disk");
}

void sr__cmd_free(cmd *c)
{
    if (!c) return;
    sr_free(c->bytes);
    sr_free(c->ev);
    sr_free(c);
}

/* Keep the index map at most half full, so that MDB_MAP_FULL cannot hit a
 * group half-way (the heads could not be rolled back). */
int sr__ensure_room(sr_engine *e)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_env *env = sr_index_env(e->ix);
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    while (used * 2 > info.me_mapsize) {
        int rc = sr_index_grow(e->ix);
        if (rc) return rc;
        mdb_env_info(env, &info);
    }
    return SR_OK;
}

typedef struct accepted {
    Event *ev;
    uint32_t kid; /* its record's key (0: none): seals its series values (ixseal.h) */
} accepted;

/* *same: the event at seq has ev's operator, actor and message id. seq is
 * in the log, or in this group (acc: its accepted events, from next_seq). */
static int msgid_same(sr_engine *e, const Event *ev, uint64_t seq, accepted *acc, size_t nacc, int *same)
{
    *same = 0;
    if (seq >= e->next_seq) {
        if (seq - e->next_seq >= nacc) return SR_ECORRUPT;
        const Event *o = acc[seq - e->next_seq].ev;
        *same = !strcmp(o->operator_id, ev->operator_id) && !strcmp(o->actor, ev->actor) &&
                !strcmp(o->message_id, ev->message_id);
        return SR_OK;
    }
    int rc = SR_OK;
    if (seq >= sr_log_durable_seq(e->log) && (rc = sr_log_sync(e->log))) return rc; /* sync=interval|none */
    sr_log_iter *it = NULL;
    if ((rc = sr_log_iter_open(e->log, seq, &it))) return rc;
    uint64_t got = 0;
    sr_slice rec;
    while (((rc = sr_log_iter_next(it, &got, &rec)) == SR_OK || rc == SR_EERASED) && got < seq) {}
    if (rc == SR_EERASED && got == seq) {
        rc = SR_OK; /* erased (its key destroyed): not a duplicate any more */
        *same = 0;
    } else if (rc == SR_OK && got == seq) {
        Event *o = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        if (!o) rc = SR_ECORRUPT;
        else {
            *same = !strcmp(o->operator_id, ev->operator_id) && !strcmp(o->actor, ev->actor) &&
                    !strcmp(o->message_id, ev->message_id);
            suiro__v1__event__free_unpacked(o, NULL);
        }
    } else if (rc == SR_OK || rc == SR_DONE) rc = SR_ECORRUPT; /* the index names an event the log lacks */
    sr_log_iter_close(it);
    return rc;
}

/* A stored event with ev's (operator, actor, message id)? *seq: the latest
 * such event (as the key -> seq map of index layout 1 kept it). */
static int msgid_find(sr_engine *e, MDB_txn *t, const Event *ev, accepted *acc, size_t nacc, int *found,
                      uint64_t *seq)
{
    uint8_t k[300], want[MSGID_ITEM];
    size_t kl = sr__msgid_key(ev, 0, k, sizeof k);
    *found = 0;
    if (!kl || sr__msgid_item(e, ev, 0, want)) return SR_OK;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_MSGIDS), &c));
    if (rc) return rc;
    /* every seq_hi key of the operator (one per 2^32 events), ascending */
    MDB_val K = {kl, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    while (!rc && r == 0 && K.mv_size == kl && !memcmp(K.mv_data, k, kl - 4)) {
        memcpy(k, K.mv_data, kl);
        uint64_t hi = (uint64_t)get_be32(k + kl - 4) << 32;
        MDB_val V2 = {MSGID_ITEM, want};
        r = mdb_cursor_get(c, &K, &V2, MDB_GET_BOTH_RANGE);
        while (r == 0 && V2.mv_size == MSGID_ITEM && !memcmp(V2.mv_data, want, 8)) {
            uint64_t cand = hi | get_be32((const uint8_t *)V2.mv_data + 8);
            int same;
            if ((rc = msgid_same(e, ev, cand, acc, nacc, &same))) break;
            if (same) { /* keys and items ascend: the last match is the latest */
                *found = 1;
                *seq = cand;
            }
            r = mdb_cursor_get(c, &K, &V2, MDB_NEXT_DUP);
        }
        if (rc) break;
        K = (MDB_val){kl, k};
        r = mdb_cursor_get(c, &K, &V, MDB_SET_KEY);
        if (r == 0) r = mdb_cursor_get(c, &K, &V, MDB_NEXT_NODUP);
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    return rc;
}

/* Protobuf wire reading without unpacking (the submit's operator, the
 * writer's splice check, the replay's heads_needed): a varint, or a field's
 * extent. */
int sr__wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* Skip a field of wire type wt; for type 2, body and blen get its bytes. */
int sr__wire_skip(const uint8_t **p, const uint8_t *end, unsigned wt, const uint8_t **body, size_t *blen)
{
    uint64_t v;
    switch (wt) {
    case 0: return sr__wire_varint(p, end, &v);
    case 1: if (end - *p < 8) return -1; *p += 8; return 0;
    case 5: if (end - *p < 4) return -1; *p += 4; return 0;
    case 2:
        if (sr__wire_varint(p, end, &v) || v > (uint64_t)(end - *p)) return -1;
        if (body) *body = *p, *blen = (size_t)v;
        *p += v;
        return 0;
    default: return -1;
    }
}

/* Can the writer put seq (field 1) and ingest_ms (2) in front of these
 * submitted bytes instead of re-packing the decoded event? Yes when the
 * top-level fields are well formed, in increasing number order and all
 * above 2: then the result decodes to the same event with seq and ingest
 * time set (a later field 1 or 2 would win over ours) and, for bytes
 * protobuf-c wrote (sr_ev_measurements writes the same), is byte for byte
 * what a re-pack gives. */
static int splice_ok(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    uint64_t last = 2, key;
    while (p < end) {
        if (sr__wire_varint(&p, end, &key) || (key >> 3) <= last) return 0;
        last = key >> 3;
        if (sr__wire_skip(&p, end, (unsigned)(key & 7), NULL, NULL)) return 0;
    }
    return 1;
}

/* The records of a group (process_group): the events accepted, their
 * packed bytes, and the key that seals each (kid, only with a keyring). */
typedef struct group_recs {
    accepted *acc;
    size_t nacc, capacc;
    sr_slice *recs;
    size_t nrecs, caprecs;
    uint32_t *kid;
    size_t capkid;
    sr_buf packed;
} group_recs;

/* Reserve room for one more record of n packed bytes. */
static int recs_reserve(group_recs *g, size_t n, int keyed)
{
    if (sr_array_reserve(&g->acc, &g->capacc, g->nacc + 1, sizeof *g->acc) ||
        sr_array_reserve(&g->recs, &g->caprecs, g->nrecs + 1, sizeof *g->recs) ||
        (keyed && sr_array_reserve(&g->kid, &g->capkid, g->nrecs + 1, sizeof *g->kid)) || sr_buf_reserve(&g->packed, n))
        return SR_ENOMEM;
    return SR_OK;
}

/* Pack a writer's own event (the heads checkpoint, a key event) as the
 * group's next record, sealed by its operator's key (keys.c). A key made
 * for it adds to notes (*nnotes < 4: the event's own audit key at most). */
static int push_own(sr_engine *e, group_recs *g, Event *ev, int64_t now, sr_keynote *notes, size_t *nnotes)
{
    size_t n = protobuf_c_message_get_packed_size(&ev->base);
    uint32_t kid = 0;
    sr_keynote kn = {0};
    int rc = recs_reserve(g, n, e->keyring != NULL);
    if (!rc) rc = sr__record_key(e, ev->operator_id, (int)ev->body_case, now, &kid, &kn);
    if (rc) return rc;
    if (kn.action) notes[(*nnotes)++] = kn;
    protobuf_c_message_pack(&ev->base, g->packed.data + g->packed.len);
    if (e->keyring) g->kid[g->nrecs] = kid;
    g->recs[g->nrecs++] = (sr_slice){(const void *)(uintptr_t)g->packed.len, n}; /* offset; fixed by the caller */
    g->packed.len += n;
    g->acc[g->nacc].kid = kid;
    g->acc[g->nacc++].ev = ev;
    return SR_OK;
}

/* The KeyEvents of the keys made for this group's records (notes), at seq
 * on: after the records that use them, in the same atomic append, each with
 * its audit row. Returns the next seq in *seq. */
static int add_key_events(sr_engine *e, MDB_txn *txn, group_recs *g, sr_keynote *notes, size_t nnotes, uint64_t *seq,
                          int64_t now)
{
    sr_keynote more[4];
    for (size_t i = 0; i < nnotes; i++) {
        size_t nmore = 0;
        Event *ev = sr__key_event(e, &notes[i], *seq, now);
        int rc = ev ? SR_OK : SR_ENOMEM;
        sr_keynote kn = {0};
        if (!rc && (rc = sr__record_key(e, ev->operator_id, (int)ev->body_case, now, &e->seal.kid, &kn)) == SR_OK &&
            kn.action)
            more[nmore++] = kn; /* its own audit key, made before its audit row is sealed by it */
        if (!rc) rc = sr__apply_common(e, txn, ev);
        if (!rc) rc = push_own(e, g, ev, now, more, &nmore);
        if (rc) return rc;
        (*seq)++;
        if (nmore && (rc = add_key_events(e, txn, g, more, nmore, seq, now))) return rc; /* its own audit key, once */
    }
    return SR_OK;
}

/* Add the heads checkpoint to the group (docs/durability.md section 8): the
 * writer's own event, last of the group (but for the KeyEvent of a key made
 * for it), so it is durable with it or not at all. before_seq: every head
 * holding an older event is flushed when it is applied (pass 2, heads.c). */
static int add_checkpoint(sr_engine *e, Event *ck, Suiro__V1__HeadsCheckpoint *hc, uint64_t seq, int64_t now,
                          uint64_t before, const char *reason, group_recs *g, sr_keynote *notes, size_t *nnotes)
{
    hc->before_seq = before;
    hc->reason = (char *)reason;
    ck->seq = seq;
    ck->ingest_ms = now;
    ck->actor = (char *)"system";
    ck->actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    ck->body_case = SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT;
    ck->heads_checkpoint = hc;
    return push_own(e, g, ck, now, notes, nnotes);
}

/* After a group's commit, before its callbacks: if it changed the registry,
 * bump the generation (sr_engine_registry_gen) and tell the hook
 * (sr_engine_on_registry) what changed. A change list that cannot be
 * allocated still bumps the generation (sessions re-read on their next
 * request); the hook then gets the changes one at a time. */
static void registry_changed(sr_engine *e, accepted *acc, size_t nacc)
{
    size_t n = 0;
    for (size_t i = 0; i < nacc; i++)
        n += acc[i].ev->body_case == SUIRO__V1__EVENT__BODY_REGISTRY_PUT ||
             acc[i].ev->body_case == SUIRO__V1__EVENT__BODY_REGISTRY_DELETE;
    if (!n) return;
    atomic_fetch_add(&e->reg_gen, 1);
    pthread_mutex_lock(&e->mu);
    sr_registry_hook fn = e->reg_hook;
    void *ctx = e->reg_hook_ctx;
    pthread_mutex_unlock(&e->mu);
    if (!fn) return;
    sr_reg_committed one, *ch = sr_calloc(n, sizeof *ch);
    size_t k = 0;
    for (size_t i = 0; i < nacc; i++) {
        const Event *ev = acc[i].ev;
        sr_reg_committed *c = ch ? &ch[k] : &one;
        if (ev->body_case == SUIRO__V1__EVENT__BODY_REGISTRY_PUT)
            *c = (sr_reg_committed){ev->operator_id, ev->registry_put->id, (int)ev->registry_put->kind, 0,
                                 ev->registry_put->disabled};
        else if (ev->body_case == SUIRO__V1__EVENT__BODY_REGISTRY_DELETE)
            *c = (sr_reg_committed){ev->operator_id, ev->registry_delete->id, (int)ev->registry_delete->kind, 1, 0};
        else continue;
        if (ch) k++;
        else fn(ctx, c, 1);
    }
    if (ch) fn(ctx, ch, k);
    sr_free(ch);
}

uint64_t sr_engine_registry_gen(sr_engine *e) { return atomic_load(&e->reg_gen); }

/* After a group's commit, before its callbacks: each alarm step of it to
 * the alarm hook (sr_engine_on_alarm; the notifier). */
static void alarms_committed(sr_engine *e, accepted *acc, size_t nacc)
{
    sr_alarm_hook fn = NULL;
    void *ctx = NULL;
    for (size_t i = 0; i < nacc; i++) {
        const Event *ev = acc[i].ev;
        if (ev->body_case != SUIRO__V1__EVENT__BODY_ALARM || (ev->alarm && ev->alarm->restated)) continue; /* a restatement is no step */
        if (!fn) {
            pthread_mutex_lock(&e->mu);
            fn = e->alarm_hook;
            ctx = e->alarm_hook_ctx;
            pthread_mutex_unlock(&e->mu);
            if (!fn) return;
        }
        fn(ctx, ev->operator_id, ev->seq);
    }
}

void sr_engine_on_alarm(sr_engine *e, sr_alarm_hook fn, void *ctx)
{
    pthread_mutex_lock(&e->mu);
    e->alarm_hook = fn;
    e->alarm_hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

void sr_engine_on_appended(sr_engine *e, sr_appended_hook fn, void *ctx)
{
    pthread_mutex_lock(&e->mu);
    e->appended_hook = fn;
    e->appended_hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

void sr_engine_on_registry(sr_engine *e, sr_registry_hook fn, void *ctx)
{
    pthread_mutex_lock(&e->mu);
    e->reg_hook = fn;
    e->reg_hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

/* ------------------------------------------------------------------------ */
/* The writes' audit record (issue #18, docs/admin.md "Audit"): per group and
 * (operator, actor) that wrote data in it, one WriteAudit event of the
 * writer's own, appended with the writes (the same atomic append), so a
 * write is never durable -- nor acknowledged -- without it. The summary is
 * gathered as each command is accepted (wa_add: counts, and the first
 * WA_SHOWN distinct names; bounded work a value) and becomes an event after
 * the group's last command (wa_events). */

enum { WA_SHOWN = 16, WA_KINDS = 8 };

typedef struct wa_name {
    uint32_t point; /* a data point's number (pfx 0), else unused */
    char pfx;       /* 0: a data point; 'r' request, 'm' monitor, 'd' document, 'f' file */
    const char *a, *b; /* the id (document: collection, id) */
} wa_name;

typedef struct wagg {
    const char *op, *actor, *source; /* in the group's events (the arena) */
    int actor_kind;
    uint64_t first, last, values;
    uint32_t events, npoints;
    uint32_t kind[WA_KINDS], kcount[WA_KINDS];
    size_t nkinds, nshown;
    wa_name shown[WA_SHOWN];
} wagg;

typedef struct wa_set {
    wagg *a;
    size_t n, cap, last; /* last: the one used last (a group's commands are mostly one writer's in a row) */
} wa_set;

static void wa_name_add(wagg *w, wa_name n)
{
    w->npoints++;
    if (w->nshown == WA_SHOWN) return; /* counted only: no compare once the list is full */
    for (size_t i = 0; i < w->nshown; i++) {
        const wa_name *o = &w->shown[i];
        if (o->pfx == n.pfx && (n.pfx ? !strcmp(o->a, n.a) && (!n.b || !strcmp(o->b, n.b)) : o->point == n.point))
            return;
    }
    w->shown[w->nshown++] = n;
}

/* Count ev (accepted at seq ev->seq) into its writer's summary. */
static int wa_add(wa_set *s, const Event *ev)
{
    if (!sr__is_data_write((int)ev->body_case)) return SR_OK;
    wagg *w = NULL;
    if (s->n && !strcmp(s->a[s->last].actor, ev->actor) && !strcmp(s->a[s->last].op, ev->operator_id))
        w = &s->a[s->last];
    for (size_t i = 0; !w && i < s->n; i++)
        if (!strcmp(s->a[i].actor, ev->actor) && !strcmp(s->a[i].op, ev->operator_id)) w = &s->a[s->last = i];
    if (!w) {
        if (sr_array_reserve(&s->a, &s->cap, s->n + 1, sizeof *s->a)) return SR_ENOMEM;
        w = &s->a[s->last = s->n++];
        memset(w, 0, sizeof *w);
        w->op = ev->operator_id;
        w->actor = ev->actor;
        w->actor_kind = (int)ev->actor_kind;
        w->source = "";
        w->first = ev->seq;
    }
    if (!w->source[0] && ev->source && ev->source[0]) w->source = ev->source;
    w->last = ev->seq;
    w->events++;
    size_t k;
    for (k = 0; k < w->nkinds && w->kind[k] != (uint32_t)ev->body_case; k++) {}
    if (k == w->nkinds && k < WA_KINDS) w->kind[w->nkinds++] = (uint32_t)ev->body_case, w->kcount[k] = 0;
    if (k < w->nkinds) w->kcount[k]++;
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_MEASUREMENTS: {
        const Suiro__V1__Measurements *m = ev->measurements;
        if (sr__held(ev)) { /* its numbers are another node's: counted, not named (origins.c invariant 6) */
            for (size_t i = 0; i < m->n_points; i++) w->values += m->points[i]->n_dod + 1;
            if (m->snapshot) w->values += m->snapshot->n_dpoint;
            w->npoints += (uint32_t)(m->n_points + (m->snapshot ? m->snapshot->n_dpoint : 0));
            break;
        }
        for (size_t i = 0; i < m->n_points; i++) {
            w->values += m->points[i]->n_dod + 1;
            wa_name_add(w, (wa_name){m->points[i]->point, 0, NULL, NULL});
        }
        const Suiro__V1__Snapshot *sn = m->snapshot;
        if (sn) {
            w->values += sn->n_dpoint;
            uint64_t p = 0;
            size_t j = 0;
            for (; j < sn->n_dpoint && w->nshown < WA_SHOWN; j++) {
                p += (uint64_t)sn->dpoint[j];
                wa_name_add(w, (wa_name){(uint32_t)p, 0, NULL, NULL});
            }
            w->npoints += (uint32_t)(sn->n_dpoint - j); /* the rest counted, not named */
        }
        break;
    }
    case SUIRO__V1__EVENT__BODY_REQUEST_CREATED:
        w->values++;
        wa_name_add(w, (wa_name){0, 'r', ev->request_created->request_id, NULL});
        break;
    case SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION:
        w->values++;
        wa_name_add(w, (wa_name){0, 'r', ev->request_transition->request_id, NULL});
        break;
    case SUIRO__V1__EVENT__BODY_MONITOR:
        w->values++;
        wa_name_add(w, (wa_name){0, 'm', ev->monitor->monitor_id, NULL});
        break;
    case SUIRO__V1__EVENT__BODY_DOC_PUT:
        w->values++;
        wa_name_add(w, (wa_name){0, 'd', ev->doc_put->collection, ev->doc_put->doc_id});
        break;
    case SUIRO__V1__EVENT__BODY_DOC_DELETE:
        w->values++;
        wa_name_add(w, (wa_name){0, 'd', ev->doc_delete->collection, ev->doc_delete->doc_id});
        break;
    case SUIRO__V1__EVENT__BODY_FILE_PUT:
        w->values++;
        wa_name_add(w, (wa_name){0, 'f', ev->file_put->path, NULL});
        break;
    case SUIRO__V1__EVENT__BODY_FILE_DELETE:
        w->values++;
        wa_name_add(w, (wa_name){0, 'f', ev->file_delete->path, NULL});
        break;
    default: break;
    }
    return SR_OK;
}

/* The name of a summary's entry, in the group's arena: a data point's
 * dataId (its number when the point table does not know it), or
 * request:ID, monitor:ID, document:COLLECTION/ID, file:PATH. */
static char *wa_name_str(sr_engine *e, MDB_txn *txn, const wa_name *n)
{
    char num[16];
    const char *part[4] = {"", "", "", ""};
    char *scratch = NULL;
    if (!n->pfx) {
        sr_ptview v;
        if (sr__points_view(e, txn, n->point, &v, &scratch) == SR_OK && v.id) part[0] = v.id;
        else {
            snprintf(num, sizeof num, "#%" PRIu32, n->point);
            part[0] = num;
        }
    } else {
        part[0] = n->pfx == 'r' ? "request:" : n->pfx == 'm' ? "monitor:" : n->pfx == 'd' ? "document:" : "file:";
        part[1] = n->a;
        if (n->b) part[2] = "/", part[3] = n->b;
    }
    size_t l[4], t = 1;
    for (int i = 0; i < 4; i++) t += l[i] = strlen(part[i]);
    char *s = sr_arena_alloc(&e->ev.a, t), *w = s;
    for (int i = 0; s && i < 4; i++) w = (char *)memcpy(w, part[i], l[i]) + l[i];
    if (s) *w = 0;
    sr_free(scratch);
    return s;
}

/* The WriteAudit event of summary w at seq, in the group's arena. */
static Event *wa_event(sr_engine *e, MDB_txn *txn, const wagg *w, uint64_t seq, int64_t now)
{
    struct {
        Event ev;
        Suiro__V1__WriteAudit wa;
        uint32_t kind[WA_KINDS], kcount[WA_KINDS];
        char *points[WA_SHOWN];
    } *x = sr_arena_alloc(&e->ev.a, sizeof *x);
    if (!x) return NULL;
    x->ev = (Event)SUIRO__V1__EVENT__INIT;
    x->wa = (Suiro__V1__WriteAudit)SUIRO__V1__WRITE_AUDIT__INIT;
    x->wa.first_seq = w->first;
    x->wa.last_seq = w->last;
    x->wa.events = w->events;
    x->wa.values = w->values;
    memcpy(x->kind, w->kind, sizeof x->kind);
    memcpy(x->kcount, w->kcount, sizeof x->kcount);
    x->wa.kinds = x->kind;
    x->wa.n_kinds = w->nkinds;
    x->wa.kind_counts = x->kcount;
    x->wa.n_kind_counts = w->nkinds;
    for (size_t i = 0; i < w->nshown; i++)
        if (!(x->points[i] = wa_name_str(e, txn, &w->shown[i]))) return NULL;
    x->wa.points = x->points;
    x->wa.n_points = w->nshown;
    x->wa.npoints = w->npoints;
    x->ev.seq = seq;
    x->ev.ingest_ms = now;
    x->ev.operator_id = (char *)w->op;
    x->ev.actor = (char *)w->actor;
    x->ev.actor_kind = (Suiro__V1__ActorKind)w->actor_kind;
    x->ev.source = (char *)w->source;
    x->ev.body_case = SUIRO__V1__EVENT__BODY_WRITE_AUDIT;
    x->ev.write_audit = &x->wa;
    return &x->ev;
}

/* The group's WriteAudit events, at *seq on (after its commands' records),
 * each with its audit row and the KeyEvent of a key made for it. */
__attribute__((noinline)) /* one call a group: its cost shows by name under callgrind (bench) */
static int wa_events(sr_engine *e, MDB_txn *txn, group_recs *g, const wa_set *s, uint64_t *seq, int64_t now)
{
    for (size_t i = 0; i < s->n; i++) {
        sr_keynote notes[4];
        size_t nnotes = 0;
        sr_keynote kn = {0};
        Event *ev = wa_event(e, txn, &s->a[i], *seq, now);
        int rc = ev ? SR_OK : SR_ENOMEM;
        if (!rc && (rc = sr__record_key(e, ev->operator_id, (int)ev->body_case, now, &e->seal.kid, &kn)) == SR_OK &&
            kn.action)
            notes[nnotes++] = kn; /* its audit key, made before its audit row is sealed by it */
        if (!rc) rc = sr__apply_common(e, txn, ev);
        if (!rc) rc = push_own(e, g, ev, now, notes, &nnotes);
        if (rc) return rc;
        (*seq)++;
        if (nnotes && (rc = add_key_events(e, txn, g, notes, nnotes, seq, now))) return rc;
    }
    return SR_OK;
}

/* The release of the held event at local seq held (origins.c invariant 6)
 * as the group's next record at *seq: its bytes from this group (held >=
 * next_seq) or the log, checked in a nested transaction (refused: it stays
 * held, said once), then its audit row, its origin rows (the held ones
 * deleted), its record and its write summary, like wa_events'. */
static int release_one(sr_engine *e, MDB_txn *txn, group_recs *g, wa_set *wa, uint64_t held, uint64_t *seq, int64_t now)
{
    const void *rec = NULL;
    size_t len = 0;
    sr_log_iter *it = NULL;
    int rc = SR_OK;
    if (held >= e->next_seq) {
        size_t i = (size_t)(held - e->next_seq);
        if (i >= g->nrecs) return SR_ECORRUPT;
        rec = g->packed.data + (uintptr_t)g->recs[i].data; /* still an offset until the append */
        len = g->recs[i].len;
    } else {
        if (held < sr_log_first_seq(e->log)) { /* its segment dropped (retention.md): nothing to apply, it stays counted */
            sr__alert(e, 0, "held replicated event %" PRIu64 ": its log segment was dropped, not released", held);
            return SR_OK;
        }
        if (held >= sr_log_durable_seq(e->log) && (rc = sr_log_sync(e->log))) return rc;
        if ((rc = sr_log_iter_open(e->log, held, &it))) return rc;
        uint64_t got = 0;
        sr_slice r;
        while (((rc = sr_log_iter_next(it, &got, &r)) == SR_OK || rc == SR_EERASED) && got < held) {}
        if (rc == SR_OK && got == held) rec = r.data, len = r.len;
        else {
            sr_log_iter_close(it);
            if (rc == SR_EERASED) { /* its key destroyed: nothing to apply, it stays counted */
                sr__alert(e, 0, "held replicated event %" PRIu64 ": erased (its key destroyed), not released", held);
                return SR_OK;
            }
            return rc == SR_OK || rc == SR_DONE ? SR_ECORRUPT : rc; /* the index names an event the log lacks */
        }
    }
    Event *ev = NULL;
    rc = sr__held_release(e, txn, rec, len, held, *seq, now, &ev);
    if (it) sr_log_iter_close(it); /* ev was unpacked into the group's arena: a copy */
    if (rc) return rc;
    sr_result r = {0};
    MDB_txn *child = NULL;
    if ((rc = sr_index_err(mdb_txn_begin(sr_index_env(e->ix), txn, 0, &child)))) return rc;
    if ((rc = sr__apply_nonseries(e, child, ev, &r, 1))) {
        mdb_txn_abort(child);
        if (!r.rc) return rc;
        sr__alert(e, 0, "held replicated event %" PRIu64 " (node %s's seq %" PRIu64 "): its mapping came but it is "
                        "refused here (%s): it stays held",
                  held, ev->origin->node, ev->origin->seq, r.err.msg);
        return SR_OK;
    }
    sr_keynote notes[4], kn = {0};
    size_t nnotes = 0;
    if ((rc = sr__record_key(e, ev->operator_id, (int)ev->body_case, now, &e->seal.kid, &kn)) == SR_OK && kn.action)
        notes[nnotes++] = kn;
    if (!rc) rc = sr__apply_common(e, child, ev);
    if (rc) {
        mdb_txn_abort(child);
        return rc;
    }
    if ((rc = sr_index_err(mdb_txn_commit(child)))) return rc;
    if ((rc = push_own(e, g, ev, now, notes, &nnotes)) || (rc = wa_add(wa, ev))) return rc;
    (*seq)++;
    return nnotes ? add_key_events(e, txn, g, notes, nnotes, seq, now) : SR_OK;
}

/* The releases a replicated command's events (the group's acc[acc0, ...))
 * made due: each held event whose last missing number one of them
 * mapped, in log order, and those a released PointAlias makes due in turn
 * (origins.c invariant 6). */
static int release_held(sr_engine *e, MDB_txn *txn, group_recs *g, wa_set *wa, size_t acc0, uint64_t *seq, int64_t now)
{
    for (size_t a = acc0; a < g->nacc; a++) { /* the releases too: a released alias maps values in turn */
        uint64_t *hs = NULL;
        size_t nh = 0;
        int rc = sr__held_woken(e, txn, g->acc[a].ev, &hs, &nh); /* before push_own moves acc */
        for (size_t i = 0; !rc && i < nh; i++) rc = release_one(e, txn, g, wa, hs[i], seq, now);
        sr_free(hs);
        if (rc) return rc;
    }
    return SR_OK;
}

/* closing: the group is the close's heads checkpoint alone (nc = 0). */
static void process_group(sr_engine *e, cmd **cmds, size_t nc, int closing)
{
    sr_result *res = sr_calloc(nc ? nc : 1, sizeof *res);
    Suiro__V1__HeadsCheckpoint hc = SUIRO__V1__HEADS_CHECKPOINT__INIT;
    Event ck = SUIRO__V1__EVENT__INIT;
    group_recs g = {0};
    sr_buf_init(&g.packed);
    sr_keynote notes[8]; /* keys made for one command's records: at most its operator's three classes and
                            the platform's audit key */
    size_t nnotes = 0;
    wa_set wa = {0}; /* the writes' summaries, one per (operator, actor) */
    MDB_txn *txn = NULL;
    int fatal = SR_OK;
    uint64_t seq = e->next_seq;
    int64_t now = now_ms(e);
    struct timespec t_start;
    clock_gettime(CLOCK_MONOTONIC, &t_start); /* the metrics' group commit time */
    static _Thread_local sr_mt_frontier mt; /* the writer's working copy (2 KiB, off the stack) */
    uint64_t mt_next = 0;
    int mt_taken = 0, snap_made = 0;

    if (!res) {
        fatal = SR_ENOMEM;
        goto finish;
    }
    pthread_mutex_lock(&e->mu);
    int poisoned = e->poisoned;
    pthread_mutex_unlock(&e->mu);
    if (poisoned) {
        fatal = SR_EPOISONED;
        goto finish;
    }
    if ((fatal = sr__ensure_room(e))) goto finish;
    if ((fatal = sr_index_write_begin(e->ix, &txn))) goto finish;

    for (size_t ci = 0; ci < nc; ci++) {
        cmd *c = cmds[ci];
        sr_result *r = &res[ci];
        Event **evs = sr_calloc(c->n, sizeof *evs);
        MDB_txn *child = NULL;
        int rc = evs ? SR_OK : SR_ENOMEM;
        if (!rc) rc = sr_index_err(mdb_txn_begin(sr_index_env(e->ix), txn, 0, &child));
        for (size_t k = 0; !rc && k < c->n; k++) {
            e->ev.oom = 0;
            evs[k] = suiro__v1__event__unpack(&e->ev.pa, c->ev[k].len, c->ev[k].data);
            if (!evs[k] && e->ev.oom) rc = SR_ENOMEM;
            else if (!evs[k]) rc = sr__refuse(r, SR_EINVAL, "event %zu does not decode", k);
            else if (strcmp(evs[k]->operator_id, c->op) != 0)
                rc = sr__refuse(r, SR_EINVAL, "event %zu: operator differs from the command's", k);
        }
        sr__ixseal_reset(&e->seal); /* nothing listed from an earlier command (ixseal.h invariant 5) */
        if (!rc && evs[0]->message_id[0]) {
            int found = 0;
            uint64_t dseq = 0;
            rc = msgid_find(e, child, evs[0], g.acc, g.nacc, &found, &dseq);
            if (rc < 0) /* the command alone is refused (it may be sent again) */
                sr__alert(e, 1, "the duplicate check of message id '%s' could not read the log: %s (%s); the command was "
                                "refused, nothing written (it may be sent again)",
                          evs[0]->message_id, sr_strerror(rc), sr_err_name(rc));
            if (!rc && found) {
                r->duplicate = 1;
                r->seq = dseq;
                rc = 1; /* not an error: skip */
            }
        }
        for (size_t k = 0; !rc && k < c->n; k++) {
            Event *ev = evs[k];
            ev->seq = seq + k;
            ev->ingest_ms = now;
            if (e->keyring) { /* its record's key seals what it writes into the index (ixseal.h invariant 2);
                               * none yet: the values wait for it (sealed below, once the command is accepted) */
                int cls = sr__key_class((int)ev->body_case);
                if (sr_keyring_active(e->keyring, ev->operator_id, cls < 0 ? SR_KC_CONFIG : cls, &e->seal.kid))
                    e->seal.kid = 0;
                e->seal.defer = 1;
                e->seal.ev = (uint32_t)k;
            }
            if (ev->origin && (rc = sr__origin_prepare(e, child, ev, r))) break; /* 1: a duplicate (origins.c) */
            rc = sr__apply_nonseries(e, child, ev, r, 1);
            if (!rc) rc = sr__apply_common(e, child, ev);
        }
        if (rc) {
            if (child) mdb_txn_abort(child);
            if (rc < 0 && !r->rc) sr__refuse(r, rc, "%s", sr_strerror(rc));
            if (rc == 1) r->rc = SR_OK;
            sr_free(evs); /* the events themselves are in the group's arena */
            sr__ixseal_reset(&e->seal);
            continue;
        }
        if ((rc = sr_index_err(mdb_txn_commit(child)))) {
            fatal = rc;
            sr_free(evs);
            goto finish;
        }
        r->seq = seq;
        r->count = (uint32_t)c->n;
        size_t rec0 = g.nrecs, acc0 = g.nacc; /* the command's first record */
        for (size_t k = 0; k < c->n; k++) {
            /* the log record: a measurements event as it came with seq and
             * ingest time put in front (the bytes a re-pack gives, see
             * splice_ok), anything else re-packed */
            int splice = evs[k]->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS && evs[k]->seq && evs[k]->ingest_ms > 0 &&
                         !evs[k]->origin && /* its point numbers were mapped: re-packed */
                         splice_ok(c->ev[k].data, c->ev[k].len);
            size_t n = splice ? 2 + sr_varint_len(evs[k]->seq) + sr_varint_len((uint64_t)evs[k]->ingest_ms) + c->ev[k].len
                              : protobuf_c_message_get_packed_size(&evs[k]->base);
            if ((fatal = recs_reserve(&g, n, e->keyring != NULL))) break;
            if (e->keyring) { /* the record's key (keys.c); a key made for it has its KeyEvent below */
                sr_keynote kn = {0};
                if ((fatal = sr__record_key(e, evs[k]->operator_id, (int)evs[k]->body_case, now, &g.kid[g.nrecs], &kn)))
                    break;
                if (kn.action) notes[nnotes++] = kn;
            }
            if (splice) {
                uint8_t *w = g.packed.data + g.packed.len;
                *w++ = 1 << 3; /* seq, varint */
                w = sr_varint_put(w, evs[k]->seq);
                *w++ = 2 << 3; /* ingest_ms, varint */
                w = sr_varint_put(w, (uint64_t)evs[k]->ingest_ms);
                memcpy(w, c->ev[k].data, c->ev[k].len);
            } else
                protobuf_c_message_pack(&evs[k]->base, g.packed.data + g.packed.len);
            g.recs[g.nrecs++] = (sr_slice){(const void *)(uintptr_t)g.packed.len, n}; /* offset; fixed below */
            g.packed.len += n;
            g.acc[g.nacc].kid = e->keyring ? g.kid[g.nrecs - 1] : 0;
            g.acc[g.nacc++].ev = evs[k];
            if ((fatal = wa_add(&wa, evs[k]))) break;
            evs[k] = NULL; /* owned by acc now */
        }
        sr_free(evs);
        /* the values written before their record's key existed: sealed by it now */
        if (!fatal && e->seal.npend) fatal = sr__ixseal_flush(&e->seal, txn, g.kid + rec0, c->n);
        sr__ixseal_reset(&e->seal);
        if (fatal) goto finish;
        seq += c->n;
        if (nnotes && (fatal = add_key_events(e, txn, &g, notes, nnotes, &seq, now))) goto finish;
        nnotes = 0;
        /* a replicated MasterPut or PointAlias: the held values it completes (origins.c invariant 6) */
        if (c->foreign && (fatal = release_held(e, txn, &g, &wa, acc0, &seq, now))) goto finish;
    }
    /* the writes' audit records: after the writes, in the same append */
    if (wa.n && (fatal = wa_events(e, txn, &g, &wa, &seq, now))) goto finish;
    /* the heads checkpoint: every replay_max_events / 2 events, at most
     * every checkpoint_interval_ms while writing, and at a clean close (then
     * every head is flushed: the next open replays nothing) */
    uint64_t half = e->o.replay_max_events / 2;
    int by_count = g.nrecs && half && seq - e->ckpt_at > half;
    int by_time = g.nrecs && e->o.checkpoint_interval_ms > 0 && now - e->ckpt_ms >= e->o.checkpoint_interval_ms;
    if (closing || by_count || by_time) {
        /* by time: the heads holding events from before the previous
         * checkpoint, so a restart re-reads at most about two intervals */
        uint64_t before = closing ? seq : by_count ? seq - half : 0;
        if (by_time && e->ckpt_at > before) before = e->ckpt_at;
        if ((fatal = add_checkpoint(e, &ck, &hc, seq, now, before, closing ? "close" : by_count ? "interval" : "time",
                                    &g, notes, &nnotes)))
            goto finish;
        seq++;
        if (nnotes && (fatal = add_key_events(e, txn, &g, notes, nnotes, &seq, now))) goto finish;
    }
    /* pass 2: the series */
    for (size_t i = 0; i < g.nacc; i++) {
        e->seal.kid = g.acc[i].kid;
        if ((fatal = sr__apply_series(e, txn, g.acc[i].ev, 0))) goto finish;
    }
    if ((fatal = sr__heads_latest_flush(e, txn))) goto finish; /* the latest rows, once per group */
    if (g.nrecs) {
        for (size_t i = 0; i < g.nrecs; i++) g.recs[i].data = g.packed.data + (uintptr_t)g.recs[i].data;
        uint64_t first = 0;
        ++e->test_groups;
        if (e->o.test_fail_append && e->test_groups == e->o.test_fail_append) {
            fatal = SR_ENOSPC; /* tests: as a log append that found no space */
            goto finish;
        }
        sr_log_leaf *leaves = NULL;
        size_t nleaves = 0;
        if ((fatal = sr_log_append_leaves(e->log, g.recs, e->keyring ? g.kid : NULL, g.nrecs, &first, &leaves,
                                          &nleaves)))
            goto finish;
        SR_VERIFY(first == e->next_seq);
        /* the group's blocks join the Merkle tree in its transaction
         * (ckpt.c invariant 3: on a copy, taken once committed) */
        if (!e->mt_off) {
            mt = e->mt;
            mt_next = e->mt_next;
            fatal = sr__mt_add(e, txn, &mt, &mt_next, leaves, nleaves);
            mt_taken = !fatal;
        }
        sr_free(leaves);
        if (fatal) goto finish;
        if (e->o.test_fail_commit && e->test_groups == e->o.test_fail_commit) {
            fatal = SR_EIO; /* tests: durable in the log, not in the index (§7) */
            goto finish;
        }
        /* a state snapshot as of the group's last seq (statesnap.c), in its transaction */
        if ((fatal = sr__snap_group(e, txn, seq - 1, now, &snap_made))) goto finish;
        if ((fatal = sr__put_watermark(e, txn, seq - 1))) goto finish;
    }
    fatal = sr_index_commit(e->ix, txn);
    txn = NULL;
    if (fatal) goto finish;
    sr__heads_latest_end(e, 1); /* the latest rows are the index's */
    /* after the commit: the point table reads the changed points back (a
     * failure leaves it broken, readers use the index, the next group
     * reloads it) */
    (void)sr__points_commit(e);
    e->masters_dirty = 0;
    e->next_seq = seq;
    if (snap_made) {
        e->snap_seq = seq - 1;
        e->snap_vals = 0;
        e->snap_ms = now;
    }
    if (mt_taken) {
        e->mt = mt;
        e->mt_next = mt_next;
    }
    if (ck.heads_checkpoint) e->ckpt_ms = now; /* e->ckpt_at moved when it was applied (heads.c) */
    atomic_store(&e->watermark, seq - 1);
    atomic_fetch_add(&e->st_groups, 1);
    atomic_fetch_add(&e->st_events, g.nrecs);
    {
        static const uint64_t us_bounds[] = SR_HIST_US_BOUNDS, group_bounds[] = SR_HIST_GROUP_BOUNDS;
        struct timespec t_end;
        clock_gettime(CLOCK_MONOTONIC, &t_end);
        int64_t us = ((int64_t)t_end.tv_sec - t_start.tv_sec) * 1000000 + (t_end.tv_nsec - t_start.tv_nsec) / 1000;
        sr_hist_add(&e->h_commit, us_bounds, SR_HIST_US_N, us > 0 ? (uint64_t)us : 0);
        sr_hist_add(&e->h_group, group_bounds, SR_HIST_GROUP_N, nc);
    }
    registry_changed(e, g.acc, g.nacc);
    alarms_committed(e, g.acc, g.nacc);
    {
        pthread_mutex_lock(&e->mu);
        sr_appended_hook afn = e->appended_hook;
        void *actx = e->appended_hook_ctx;
        pthread_mutex_unlock(&e->mu);
        if (afn) afn(actx, seq - 1);
    }
finish:
    if (txn) sr_index_abort(txn);
    if (fatal) { /* nothing of the group is in the index */
        sr__points_abort(e);
        sr__heads_latest_end(e, 0);
    }
    if (fatal && fatal != SR_EPOISONED) poison(e, fatal, e->next_seq);
    sr_arena_reset(&e->ev.a); /* every event of the group */
    sr_free(wa.a);
    sr_free(g.acc);
    sr_free(g.recs);
    sr_free(g.kid);
    sr_buf_release(&g.packed);
    for (size_t ci = 0; ci < nc; ci++) {
        sr_result fr = {0};
        sr_result *r = res ? &res[ci] : &fr;
        if (fatal) {
            memset(r, 0, sizeof *r);
            r->rc = fatal == SR_EPOISONED ? SR_EPOISONED : fatal;
            if (fatal == SR_EPOISONED) /* §7: the writer resumes by itself */
                snprintf(r->err.msg, sizeof r->err.msg, "writes are stopped after a failed write (resuming once it works)");
            else
                snprintf(r->err.msg, sizeof r->err.msg, "write failed: %s", sr_strerror(fatal));
        }
        r->err.code = r->rc; /* the detail's code is the outcome's */
        if (cmds[ci]->cb) cmds[ci]->cb(cmds[ci]->ctx, r);
        atomic_fetch_add(&e->st_commands, 1);
        sr__cmd_free(cmds[ci]);
    }
    sr_free(res);
}

static void *writer_main(void *arg)
{
    sr_engine *e = arg;
    cmd **group = e->group;
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&e->mu);
        /* poisoned (§7): commands still queued get SR_EPOISONED; then, every
         * recover_ms until it works, try to reopen the log and resume */
        while (e->poisoned && !e->depth && !e->stopping && !e->o.no_recover) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)e->o.recover_ms * 1000000u;
            until.tv_sec += (time_t)(ns / 1000000000u);
            until.tv_nsec = (long)(ns % 1000000000u);
            int tr = pthread_cond_timedwait(&e->cv_work, &e->mu, &until);
            if (tr == 0 || e->stopping || e->depth) continue; /* woken: look again */
            pthread_mutex_unlock(&e->mu);
            (void)sr__recover(e);
            pthread_mutex_lock(&e->mu);
        }
        while (!e->depth && !e->stopping) pthread_cond_wait(&e->cv_work, &e->mu);
        if (!e->depth && e->stopping) {
            int poisoned = e->poisoned;
            pthread_mutex_unlock(&e->mu);
            /* a clean close: a heads checkpoint when this engine logged
             * events and the next open would re-read more than
             * replay_max_events / 64 of them (an open and close that wrote
             * nothing, a rebuild, append nothing); the short chunks it
             * leaves are extended later (heads.c invariant 9) */
            uint64_t oldest = sr__heads_oldest(e);
            if (!poisoned && e->next_seq > e->open_end && oldest != UINT64_MAX &&
                e->next_seq - oldest > e->o.replay_max_events / 64) {
                e->group_n = 0;
                process_group(e, group, 0, 1);
            }
            break;
        }
        /* round-robin over operators: one command from each in turn */
        int took = 1;
        while (n < e->o.group_max && took) {
            took = 0;
            for (size_t k = 0; k < e->nq && n < e->o.group_max; k++) {
                opq *q = &e->q[(e->rr + k) % e->nq];
                if (!q->head) continue;
                cmd *c = q->head;
                q->head = c->next;
                if (!q->head) q->tail = NULL;
                q->depth--;
                e->depth--;
                group[n++] = c;
                took = 1;
            }
        }
        e->rr++;
        e->group_n = n;
        SR_INVARIANT(sr_writer_check(e));
        pthread_mutex_unlock(&e->mu);
        if (e->o.test_group_delay_ms) {
            struct timespec d = {e->o.test_group_delay_ms / 1000, (long)(e->o.test_group_delay_ms % 1000) * 1000000};
            nanosleep(&d, NULL);
        }
        process_group(e, group, n, 0);
        e->group_n = 0;
#if SR_INVARIANTS
        pthread_mutex_lock(&e->mu);
        SR_INVARIANT(sr_writer_check(e)); /* committed: next_seq = W + 1 */
        pthread_mutex_unlock(&e->mu);
#endif
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Invariants (the header's; SQLite's assert_pager_state is the model)       */

enum { WALK_MAX = 4096 }; /* queue lists longer than this are not walked (the debug build stays linear) */

const char *sr_writer_check(const sr_engine *e)
{
    /* (1) the queue */
    if (e->nq > e->capq || (e->capq && !e->q)) return "writer: more operator queues than allocated";
    uint64_t sum = 0;
    for (size_t k = 0; k < e->nq; k++) {
        const opq *q = &e->q[k];
        if (!q->head != !q->tail) return "writer: an operator queue has a head without a tail, or a tail without a head";
        if (!q->head != !q->depth) return "writer: an operator queue's depth is not 0 exactly when it is empty";
        if (q->tail && q->tail->next) return "writer: an operator queue's tail has a next command";
        if (q->depth > e->o.queue_max_per_op) return "writer: an operator queue is deeper than queue_max_per_op";
        if (e->depth <= WALK_MAX) {
            uint32_t n = 0;
            const cmd *last = NULL;
            for (const cmd *c = q->head; c && n <= q->depth; c = c->next) last = c, n++;
            if (n != q->depth) return "writer: an operator queue's depth is not the length of its list";
            if (last != q->tail) return "writer: an operator queue's tail is not its last command";
        }
        sum += q->depth;
    }
    if (sum != e->depth) return "writer: the queue depth is not the sum of the operator queues' depths";
    if (e->depth > e->o.queue_max) return "writer: the queue is deeper than queue_max";
    /* (3) poisoned */
    if (e->poisoned && e->poison_cause == SR_OK) return "writer: poisoned without a cause";
    if (!e->poisoned && !e->nospace_ro && e->poison_cause != SR_OK) return "writer: a poison cause while not poisoned";
    /* (4) read-only */
    if (e->nospace_ro && (!e->o.readonly || e->poison_cause != SR_ENOSPC))
        return "writer: read-only for lack of space, but not opened read-only with SR_ENOSPC";
    if ((e->o.readonly || e->o.log_readonly) && (e->writer_started || e->depth))
        return "writer: read-only with a writer thread or queued commands";
    if (e->writer_started && (!e->group || !e->o.group_max)) return "writer: a writer thread without a group array";
    /* (2) group commit: the writer's own fields, on the writer thread only */
    if (e->writer_started && pthread_equal(pthread_self(), e->writer)) {
        if (e->group_n > e->o.group_max) return "writer: a group of more than group_max commands";
        if (!e->group_n && e->next_seq != atomic_load(&e->watermark) + 1)
            return "writer: between groups, next_seq is not the published watermark + 1";
    }
    return NULL;
}

int sr__writer_start(sr_engine *e)
{
    return pthread_create(&e->writer, NULL, writer_main, e) != 0 ? SR_ENOMEM : SR_OK;
}

/* Find field 3 (operator_id) of a serialized Event by walking the wire
 * format, without decoding the rest; the last occurrence wins, as in a full
 * decode. 0, or -1 if the bytes are not a well-formed message. */
static int wire_operator(const uint8_t *p, size_t n, const uint8_t **op, size_t *oplen)
{
    const uint8_t *end = p + n;
    *op = NULL;
    *oplen = 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *body = NULL;
        size_t blen = 0;
        if (sr__wire_varint(&p, end, &key) || (key >> 3) == 0) return -1;
        if (sr__wire_skip(&p, end, (unsigned)(key & 7), &body, &blen)) return -1;
        if ((key >> 3) == 3 && (key & 7) == 2) {
            *op = body;
            *oplen = blen;
        }
    }
    return 0;
}

int sr_engine_submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx)
{
    return sr__submit(e, events, n, cb, ctx, 0);
}

int sr__submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx, int foreign)
{
    if (e && e->nospace_ro) return SR_ENOSPC; /* read-only for lack of space (§7) */
    if (!e || !events || !n || e->o.readonly || e->o.log_readonly) return SR_EINVAL;
    /* copy, and find the operator (every event of a command has the same) */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += events[i].len;
    cmd *c = sr_calloc(1, sizeof *c);
    if (!c) return SR_ENOMEM;
    c->bytes = sr_malloc(total ? total : 1);
    c->ev = sr_calloc(n, sizeof *c->ev);
    if (!c->bytes || !c->ev) {
        sr__cmd_free(c);
        return SR_ENOMEM;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(c->bytes + pos, events[i].data, events[i].len);
        c->ev[i] = (sr_slice){c->bytes + pos, events[i].len};
        pos += events[i].len;
        /* only the operator is needed here (the queue is per operator); the
         * writer decodes the whole event and refuses what does not decode */
        const uint8_t *op = NULL;
        size_t oplen = 0;
        if (wire_operator(events[i].data, events[i].len, &op, &oplen) || oplen >= sizeof c->op ||
            (i > 0 && (strlen(c->op) != oplen || (oplen && memcmp(c->op, op, oplen))))) { /* "" has no bytes: op NULL */
            sr__cmd_free(c);
            return SR_EINVAL;
        }
        if (i == 0) {
            if (oplen) memcpy(c->op, op, oplen);
            c->op[oplen] = 0;
        }
    }
    c->n = n;
    c->cb = cb;
    c->ctx = ctx;
    c->foreign = foreign;
    const char *qname = foreign ? SR__FOREIGN_Q : c->op; /* origins.c invariant 3: one FIFO */
    pthread_mutex_lock(&e->mu);
    int rc = e->poisoned ? SR_EPOISONED : e->stopping ? SR_ECLOSED : SR_OK;
    opq *q = NULL;
    for (size_t k = 0; !rc && k < e->nq; k++)
        if (!strcmp(e->q[k].op, qname)) q = &e->q[k];
    if (!rc && !q) {
        if (e->nq == e->capq) {
            size_t cap = e->capq ? e->capq * 2 : 8;
            opq *nqs = sr_realloc(e->q, cap * sizeof *nqs);
            if (!nqs) rc = SR_ENOMEM;
            else {
                e->q = nqs;
                e->capq = cap;
            }
        }
        if (!rc) {
            q = &e->q[e->nq++];
            memset(q, 0, sizeof *q);
            snprintf(q->op, sizeof q->op, "%s", qname);
        }
    }
    if (!rc && (e->depth >= e->o.queue_max || q->depth >= e->o.queue_max_per_op)) rc = SR_EFULL;
    if (!rc) {
        if (q->tail) q->tail->next = c;
        else q->head = c;
        q->tail = c;
        q->depth++;
        e->depth++;
        SR_INVARIANT(sr_writer_check(e));
        pthread_cond_signal(&e->cv_work);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) sr__cmd_free(c);
    return rc;
}

typedef struct waitbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    sr_result res;
} waitbox;

static void wait_cb(void *ctx, const sr_result *r)
{
    waitbox *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->res = *r;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wait_init(waitbox *w)
{
    w->done = 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

/* The submit's rc; when it was taken (0), the result's, once it came. */
static int wait_end(waitbox *w, int rc, sr_result *res)
{
    if (!rc) {
        pthread_mutex_lock(&w->mu);
        while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        *res = w->res;
        rc = w->res.rc;
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return rc;
}

int sr_engine_submit_wait(sr_engine *e, const sr_slice *events, size_t n, sr_result *res)
{
    waitbox w;
    wait_init(&w);
    return wait_end(&w, sr_engine_submit(e, events, n, wait_cb, &w), res);
}

int sr_engine_submit_origin_wait(sr_engine *e, const void *rec, size_t len, const sr_origin *o, sr_result *res)
{
    waitbox w;
    wait_init(&w);
    return wait_end(&w, sr_engine_submit_origin(e, rec, len, o, wait_cb, &w), res);
}
