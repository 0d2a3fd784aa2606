/*
 * engine/origins.c -- the cluster mode's replicated events (issue #19 phase
 * 2a, docs/cluster.md "Consumers"): the class of each event kind (which
 * stream subject it goes to), the submit of an event another node wrote
 * (with its Origin, codecs/events.proto), its exactly-once check, the point
 * numbers it is mapped to, and the consumers' checkpoints.
 *
 * The index databases (engine/schema.h, layout 16):
 *   origins       'E' node \0 seq u64 BE -> the local seq u64 LE (one row
 *                 per replicated event applied here);
 *                 'P' node \0 point u32 BE -> the local point u32 BE (a data
 *                 point's number at its origin node -> this node's);
 *                 (layout 20, written by engine/keys.c invariant 4, not
 *                 here) 'K' stream key id u64 BE -> an open erasure
 *                 intent's seq u64 LE ‖ u8;
 *   cluster_ckpt  partition u32 BE ‖ consumer u8 (1 .reg, 2 full) -> the
 *                 highest stream seq applied by that consumer, u64 LE
 *                 (consumer 3, a monitor's values relayed to the monitor's
 *                 node, docs/cluster.md "Monitors across nodes", has no
 *                 stream seq and no checkpoint: only its origin id row);
 *   held          (layout 18) 'S' local seq u64 BE -> node \0 then the
 *                 numbers u32 BE without a 'P' row (a held event, (6));
 *                 'W' node \0 number u32 BE ‖ local seq u64 BE -> empty
 *                 (the held events waiting for that number, log order).
 * All are written by sr__origin_apply from the logged event alone (its
 * Origin), on the writer's path and in the replay: a rebuild gives them
 * again (engine.c invariant 3).
 *
 * INVARIANTS
 *  (1) An origin id node:seq is applied at most once: the writer answers a
 *      second one as a duplicate (res->duplicate, res->seq the first's local
 *      seq), nothing applied, nothing appended.
 *  (2) The origin id, the point map row and the checkpoint are written in
 *      the same LMDB transaction as the event's effects (sr__apply_common):
 *      all or nothing after any fault.
 *  (3) Replicated commands go through one queue of their own (writer.c:
 *      FIFO), so an applied event implies every one its consumer submitted
 *      before it was processed: the checkpoint (the highest stream seq) never
 *      passes an event not yet processed.
 *  (4) A replicated measurement's (or correction's) point numbers are its
 *      origin node's: the writer maps each through the 'P' row of (origin
 *      node, number) before its checks. A number with no row is never
 *      kept as this node's: the same number can name another data point
 *      here, and storing a value there is the worst outcome (issue #19's
 *      bug). Every number a node sends values of has a row on every node
 *      that applied what came before it in the stream: a point it created
 *      has its MasterPut (Origin.point, below), a point it got from another
 *      node has its PointAlias (5), both published before any value of it
 *      (the whole log is the outbox from seq 1, one partition per
 *      operator). A value without a row is one that came before those (a
 *      stream whose order broke when its leader died): the whole event is
 *      HELD (6), never refused nor guessed; so is a PointAlias whose
 *      creator's number has no row yet (its MasterPut later).
 *  (5) A data point's MasterPut another node wrote (an Origin with point) is
 *      published by this node as a PointAlias instead (sr_engine_cluster_
 *      payload: origin node and number, this node's number, the data id;
 *      seq this node's of the MasterPut, so its id node:seq is unique and
 *      the same on every re-publish). Applied (replicated) on a node C, its
 *      (origin node, number) resolves to C's own number -- itself when the
 *      origin node is C (e->o.cluster_node), else C's 'P' row -- which must
 *      be the data point of that id (C's pointinfo); else it is refused
 *      (no row: out of order; another id: never mis-mapped). The writer
 *      moves the sender's number into Origin.point and puts C's in
 *      point_alias.point, so the logged event is applied like a MasterPut:
 *      sr__origin_apply writes 'P' (sender, its number) -> C's, from the
 *      logged event alone (a replay gives the same row).
 *  (6) Held values (issue #19 hold, docs/cluster.md "Held values"). A
 *      replicated measurement or correction with a number that has no row
 *      (or a PointAlias whose (origin_node, origin_point) has none: it
 *      waits for that row, and its release writes its own, which may
 *      release values in turn, in the same group)
 *      is logged as it came, with Origin.held (its numbers its origin's):
 *      durable, its origin id recorded (a copy arriving again is a
 *      duplicate), its checkpoint raised (it is processed: in the log), and
 *      applied to nothing but `held` -- its 'S' row (the numbers without a
 *      row) and a 'W' row per such number; no check, no series, no value
 *      read from it as this node's (sr__held, sr__event_values). When an
 *      event writes the 'P' row of one of those numbers (a replicated
 *      MasterPut or PointAlias) and every number of a held event then maps,
 *      the writer appends, in that event's group (one append, one commit),
 *      a RELEASE: the held record's copy with this node's numbers and
 *      Origin.release_of = the held seq; checked like any value (refused:
 *      it stays held), applied like any value (late values: the heads take
 *      them), its apply deletes the held rows. Several held events of one
 *      number are released in log order. Both held event and release are
 *      in the log and their rows are written from them alone, so the
 *      replay and a rebuild give the same `held` and the same series. A
 *      held event whose row never comes stays counted
 *      (sr_engine_cluster_held: the metric suiro_cluster_held_events,
 *      `suiro cluster held`), never dropped, never stored elsewhere.
 *  (7) A replicated FilePut names its origin node's data key (key_id), a
 *      key of another keyring. The writer replaces it, before its checks,
 *      by the operator's active data key in THIS node's keyring, or 0 when
 *      there is none (or no keyring): the logged event names the key this
 *      node keeps the file's bytes under once it fetched them from the
 *      blob stream (api/cluster_blob.h; a version 1 blob for 0, sealed by
 *      the store's key when the node has one). The replay reads it back
 *      from the log: the same name.
 */
#include "engine/engine_int.h"

#include "codecs/ids.h"
#include "engine/records.h"
#include "engine/schema.h"
#include "storage/index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the class of each kind ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
static int body_class(Suiro__V1__Event__BodyCase c)
{
    switch (c) {
    /* the registry every node needs: who may connect, what exists */
    case SUIRO__V1__EVENT__BODY_REGISTRY_PUT:
    case SUIRO__V1__EVENT__BODY_REGISTRY_DELETE:
    case SUIRO__V1__EVENT__BODY_MASTER_PUT:
    case SUIRO__V1__EVENT__BODY_MASTER_DELETE:
    case SUIRO__V1__EVENT__BODY_USER:
    case SUIRO__V1__EVENT__BODY_AUTH:
    case SUIRO__V1__EVENT__BODY_LOGIN_POLICY:
    case SUIRO__V1__EVENT__BODY_ADMIN:
    case SUIRO__V1__EVENT__BODY_PENDING:
    case SUIRO__V1__EVENT__BODY_SESSION:
    case SUIRO__V1__EVENT__BODY_FILE_SHARE:
    case SUIRO__V1__EVENT__BODY_POINT_ALIAS: /* before the values of its point (docs/cluster.md) */
        return SR_EVCLASS_REG;
    /* the data its owner indexes */
    case SUIRO__V1__EVENT__BODY_MEASUREMENTS:
    case SUIRO__V1__EVENT__BODY_REQUEST_CREATED:
    case SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION:
    case SUIRO__V1__EVENT__BODY_MONITOR:
    case SUIRO__V1__EVENT__BODY_DOC_PUT:
    case SUIRO__V1__EVENT__BODY_DOC_DELETE:
    case SUIRO__V1__EVENT__BODY_FILE_PUT:
    case SUIRO__V1__EVENT__BODY_FILE_DELETE:
    case SUIRO__V1__EVENT__BODY_ALARM:
    case SUIRO__V1__EVENT__BODY_CORRECTION:
    case SUIRO__V1__EVENT__BODY_ALIVE:
    case SUIRO__V1__EVENT__BODY_ACCESS:
    case SUIRO__V1__EVENT__BODY_ACCESS_BATCH:
        return SR_EVCLASS_DATA;
    /* the node's own engine's: published (the stream is the whole log) but
     * never applied on another node (its writer decides them itself) */
    case SUIRO__V1__EVENT__BODY_KEY:
    case SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT:
    case SUIRO__V1__EVENT__BODY_BACKUP:
    case SUIRO__V1__EVENT__BODY_PUSH_MARK:
    case SUIRO__V1__EVENT__BODY_RETENTION:
    case SUIRO__V1__EVENT__BODY_CONFIG_CARRY:
    case SUIRO__V1__EVENT__BODY_LOG_TRIM:
    case SUIRO__V1__EVENT__BODY_NOTIFY:
    case SUIRO__V1__EVENT__BODY_CHECKPOINT:
    case SUIRO__V1__EVENT__BODY_WRITE_AUDIT:
    case SUIRO__V1__EVENT__BODY_CLUSTER: /* a node's own lease changes (every node reads the bucket) */
    case SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE: /* a node's own erasure (every node reads the bucket) */
    case SUIRO__V1__EVENT__BODY__NOT_SET:
        return SR_EVCLASS_LOCAL;
    case _SUIRO__V1__EVENT__BODY__CASE_IS_INT_SIZE:
        break;
    }
    return SR_EVCLASS_LOCAL;
}
#pragma GCC diagnostic pop

int sr_event_kind_class(const char *kind)
{
    if (!kind) return SR_EVCLASS_LOCAL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&suiro__v1__event__descriptor, kind);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return SR_EVCLASS_LOCAL; /* not a case of body */
    return body_class((Suiro__V1__Event__BodyCase)f->id);
}

/* ---- the submit ---- */

int sr_engine_submit_origin(sr_engine *e, const void *rec, size_t len, const sr_origin *o, sr_engine_cb cb, void *ctx)
{
    if (!e || !rec || !o || !o->node || !o->node[0] || !o->seq || o->consumer < 1 || o->consumer > 3)
        return SR_EINVAL;
    Event *ev = suiro__v1__event__unpack(NULL, len, rec);
    if (!ev) return SR_EINVAL;
    int rc = SR_OK;
    /* an event already replicated (its origin node applied it from another)
     * or the engine's own kinds: not for another node's writer */
    if (ev->origin || body_class(ev->body_case) == SR_EVCLASS_LOCAL) rc = SR_EINVAL;
    Suiro__V1__Origin og = SUIRO__V1__ORIGIN__INIT;
    if (!rc) {
        og.node = (char *)o->node;
        og.seq = o->seq;
        og.partition = o->partition;
        og.stream_seq = o->stream_seq;
        og.consumer = (uint32_t)o->consumer;
        ev->origin = &og;
        ev->seq = 0; /* this node's writer decides them */
        ev->ingest_ms = 0;
        if (ev->body_case == SUIRO__V1__EVENT__BODY_DOC_PUT && ev->doc_put)
            ev->doc_put->revision = 0; /* the origin's revision check was made there: any */
        if (ev->body_case == SUIRO__V1__EVENT__BODY_MASTER_PUT && ev->master_put &&
            ev->master_put->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
            og.point = ev->master_put->point; /* mapped to this node's number (sr__origin_apply) */
            ev->master_put->point = 0;
        }
        if (ev->body_case == SUIRO__V1__EVENT__BODY_POINT_ALIAS && ev->point_alias) {
            og.point = ev->point_alias->point; /* the sender's number; this node's: sr__apply_point_alias */
            ev->point_alias->point = 0;
        }
        size_t n = protobuf_c_message_get_packed_size(&ev->base);
        uint8_t *b = malloc(n ? n : 1);
        if (!b) rc = SR_ENOMEM;
        else {
            protobuf_c_message_pack(&ev->base, b);
            sr_slice s = {b, n};
            rc = sr__submit(e, &s, 1, cb, ctx, 1);
            free(b);
        }
        ev->origin = NULL; /* og is on the stack */
    }
    suiro__v1__event__free_unpacked(ev, NULL);
    return rc;
}

/* ---- the writer's side ---- */

static size_t id_key(uint8_t *k, size_t cap, char tag, const char *node, const void *tail, size_t tl)
{
    size_t nl = strlen(node);
    if (2 + nl + tl > cap) return 0;
    k[0] = (uint8_t)tag;
    memcpy(k + 1, node, nl);
    k[1 + nl] = 0;
    memcpy(k + 2 + nl, tail, tl);
    return 2 + nl + tl;
}

static size_t event_key(uint8_t *k, size_t cap, const Suiro__V1__Origin *o)
{
    uint8_t s[8];
    be64(s, o->seq);
    return id_key(k, cap, 'E', o->node, s, 8);
}

/* The 'P' row of (node, p): SR_OK and *out this node's number, SR_ENOTFOUND,
 * or an LMDB error. */
static int map_point(sr_engine *e, MDB_txn *t, const char *node, uint32_t p, uint32_t *out)
{
    uint8_t k[128], pb[4];
    be32(pb, p);
    size_t kl = id_key(k, sizeof k, 'P', node, pb, 4);
    if (!kl) return SR_ENOTFOUND;
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_ORIGINS), k, kl, &v);
    if (rc) return rc;
    if (v.mv_size != 4) return SR_ECORRUPT;
    *out = get_be32(v.mv_data);
    return SR_OK;
}

/* The values of ev as its origin logged them (held or not). */
static Suiro__V1__Measurements *raw_values(const Event *ev)
{
    if (ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS) return ev->measurements;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_CORRECTION && ev->correction) return ev->correction->values;
    return NULL;
}

/* The point numbers of m: its PointValues', then its Snapshot's
 * (delta-coded), into *out (malloc'd, NULL when none). */
static int value_numbers(const Suiro__V1__Measurements *m, uint32_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = m ? m->n_points + (m->snapshot ? m->snapshot->n_dpoint : 0) : 0;
    if (!cap) return SR_OK;
    uint32_t *a = sr_malloc(cap * sizeof *a);
    if (!a) return SR_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < m->n_points; i++) a[k++] = m->points[i]->point;
    uint64_t abs = 0;
    for (size_t j = 0; m->snapshot && j < m->snapshot->n_dpoint; j++) {
        abs += (uint64_t)m->snapshot->dpoint[j];
        a[k++] = (uint32_t)abs;
    }
    *out = a;
    *n = k;
    return SR_OK;
}

/* Map m's numbers (node's) to this node's, in place, all or none: SR_OK,
 * SR_ENOTFOUND (*missing: the first number without a row; m unchanged),
 * or an error. */
static int map_values(sr_engine *e, MDB_txn *t, const char *node, Suiro__V1__Measurements *m, uint32_t *missing)
{
    uint32_t *a = NULL;
    size_t n = 0;
    int rc = value_numbers(m, &a, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t lp = 0;
        if ((rc = map_point(e, t, node, a[i], &lp)) == SR_ENOTFOUND) *missing = a[i];
        else if (!rc) a[i] = lp;
    }
    if (!rc) {
        size_t k = 0;
        for (size_t i = 0; i < m->n_points; i++) m->points[i]->point = a[k++];
        uint64_t prev = 0;
        for (size_t j = 0; m->snapshot && j < m->snapshot->n_dpoint; j++) {
            m->snapshot->dpoint[j] = (int64_t)a[k] - (int64_t)prev;
            prev = a[k++];
        }
    }
    sr_free(a);
    return rc;
}

/* 1 when ev is a replicated PointAlias of another node's data point whose
 * number has no row here yet (its MasterPut later in the stream): held
 * (invariant 6); 0 otherwise (applied, or refused by its checks); < 0 an
 * error. */
static int alias_waits(sr_engine *e, MDB_txn *t, const Event *ev)
{
    const Suiro__V1__PointAlias *a = ev->point_alias;
    if (ev->body_case != SUIRO__V1__EVENT__BODY_POINT_ALIAS || !a || !a->origin_node || !a->origin_node[0] ||
        !a->origin_point || !ev->origin->point || !strcmp(a->origin_node, ev->origin->node) ||
        (e->o.cluster_node && !strcmp(a->origin_node, e->o.cluster_node)))
        return 0;
    uint32_t lp;
    int rc = map_point(e, t, a->origin_node, a->origin_point, &lp);
    return rc == SR_ENOTFOUND ? 1 : rc;
}

int sr__origin_prepare(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r)
{
    const Suiro__V1__Origin *o = ev->origin;
    if (!o) return SR_OK;
    if (!o->node || !o->node[0] || !o->seq) return sr__refuse(r, SR_EINVAL, "origin: no node or seq");
    uint8_t k[128];
    size_t kl = event_key(k, sizeof k, o);
    if (!kl) return sr__refuse(r, SR_EINVAL, "origin: node name too long");
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_ORIGINS), k, kl, &v);
    if (rc == SR_OK) { /* invariant 1 */
        r->duplicate = 1;
        r->seq = v.mv_size == 8 ? sr_get_le64(v.mv_data) : 0;
        return 1;
    }
    if (rc != SR_ENOTFOUND) return rc;
    if (o->held || o->release_of) return sr__refuse(r, SR_EINVAL, "origin: held and release_of are this node's writer's");
    if (ev->body_case == SUIRO__V1__EVENT__BODY_FILE_PUT && ev->file_put) { /* invariant 7 */
        uint32_t kid = 0;
        if (!e->keyring || sr_keyring_active(e->keyring, ev->operator_id, SR_KC_DATA, &kid) != SR_OK) kid = 0;
        ev->file_put->key_id = kid;
    }
    /* a PointAlias of a point whose MasterPut is not here yet: held too (invariant 6) */
    if ((rc = alias_waits(e, t, ev)) < 0) return rc;
    if (rc == 1) {
        ev->origin->held = 1;
        r->held = 1;
        return SR_OK;
    }
    /* the values' point numbers: the origin's -> this node's (invariant 4),
     * or the whole event held (invariant 6) */
    Suiro__V1__Measurements *m = raw_values(ev);
    if (!m) return SR_OK;
    uint32_t missing = 0;
    rc = map_values(e, t, o->node, m, &missing);
    if (rc == SR_ENOTFOUND) {
        ev->origin->held = 1;
        r->held = 1;
        return SR_OK;
    }
    return rc;
}

/* ---- held values (invariant 6) ---- */

static size_t held_skey(uint8_t k[9], uint64_t seq)
{
    k[0] = 'S';
    be64(k + 1, seq);
    return 9;
}

static size_t held_wkey(uint8_t *k, size_t cap, const char *node, uint32_t p, uint64_t seq, int with_seq)
{
    uint8_t tail[12];
    be32(tail, p);
    be64(tail + 4, seq);
    return id_key(k, cap, 'W', node, tail, with_seq ? 12 : 4);
}

/* The held event ev (logged with Origin.held): its 'S' row (the numbers
 * without a row, each once) and their 'W' rows. */
static int hold(sr_engine *e, MDB_txn *t, const Event *ev)
{
    /* the numbers it waits for: its values' (its origin node's), or a
     * PointAlias's creator's number (of origin_node) */
    const char *node = ev->origin->node;
    uint32_t *a = NULL, one;
    size_t n = 0, nm = 0;
    int rc = SR_OK;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_POINT_ALIAS && ev->point_alias && ev->point_alias->origin_node) {
        node = ev->point_alias->origin_node;
        one = ev->point_alias->origin_point;
        a = &one;
        n = 1;
    } else
        rc = value_numbers(raw_values(ev), &a, &n);
    size_t nl = strlen(node);
    uint8_t *v = rc ? NULL : sr_malloc(nl + 1 + 4 * (n ? n : 1));
    if (!rc && !v) rc = SR_ENOMEM;
    if (!rc) memcpy(v, node, nl + 1);
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t lp;
        int dup = 0;
        for (size_t j = 0; j < nm && !dup; j++) dup = get_be32(v + nl + 1 + 4 * j) == a[i];
        if (dup || (rc = map_point(e, t, node, a[i], &lp)) == SR_OK) continue;
        if (rc != SR_ENOTFOUND) break;
        rc = SR_OK;
        be32(v + nl + 1 + 4 * nm++, a[i]);
        uint8_t k[140];
        size_t kl = held_wkey(k, sizeof k, node, a[i], ev->seq, 1);
        if (kl) rc = put(t, DB(e, SR_DB_HELD), k, kl, "", 0);
    }
    if (a == &one) a = NULL;
    uint8_t sk[9];
    if (!rc) rc = put(t, DB(e, SR_DB_HELD), sk, held_skey(sk, ev->seq), v, nl + 1 + 4 * nm);
    sr_free(v);
    sr_free(a);
    return rc;
}

/* The release of the held event at seq: its rows deleted. */
static int unhold(sr_engine *e, MDB_txn *t, uint64_t seq)
{
    uint8_t sk[9];
    size_t skl = held_skey(sk, seq);
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_HELD), sk, skl, &v);
    if (rc) return rc == SR_ENOTFOUND ? SR_OK : rc;
    const uint8_t *p = v.mv_data, *z = memchr(p, 0, v.mv_size);
    if (!z || (v.mv_size - (size_t)(z + 1 - p)) % 4) return SR_ECORRUPT;
    char node[128];
    size_t nl = (size_t)(z - p);
    if (nl >= sizeof node) return SR_ECORRUPT;
    memcpy(node, p, nl + 1);
    size_t nn = (v.mv_size - nl - 1) / 4;
    uint32_t nums[64];
    uint32_t *num = nn <= 64 ? nums : sr_malloc(nn * sizeof *num);
    if (!num) return SR_ENOMEM;
    for (size_t i = 0; i < nn; i++) num[i] = get_be32(z + 1 + 4 * i); /* v dies at the first write */
    for (size_t i = 0; !rc && i < nn; i++) {
        uint8_t k[140];
        size_t kl = held_wkey(k, sizeof k, node, num[i], seq, 1);
        if (kl) rc = del(t, DB(e, SR_DB_HELD), k, kl);
    }
    if (num != nums) sr_free(num);
    return rc ? rc : del(t, DB(e, SR_DB_HELD), sk, skl);
}

/* Whether every number the 'S' row of seq lists maps now (*node: its node). */
static int held_complete(sr_engine *e, MDB_txn *t, uint64_t seq, int *all)
{
    uint8_t sk[9];
    MDB_val v;
    *all = 0;
    int rc = get(t, DB(e, SR_DB_HELD), sk, held_skey(sk, seq), &v);
    if (rc) return rc == SR_ENOTFOUND ? SR_OK : rc; /* released already */
    const uint8_t *p = v.mv_data, *z = memchr(p, 0, v.mv_size);
    if (!z || (v.mv_size - (size_t)(z + 1 - p)) % 4) return SR_ECORRUPT;
    size_t nn = (v.mv_size - (size_t)(z + 1 - p)) / 4;
    *all = 1;
    for (size_t i = 0; *all && i < nn; i++) {
        uint32_t lp;
        rc = map_point(e, t, (const char *)p, get_be32(z + 1 + 4 * i), &lp);
        if (rc == SR_ENOTFOUND) *all = 0, rc = SR_OK;
        if (rc) return rc;
    }
    return SR_OK;
}

int sr__held_woken(sr_engine *e, MDB_txn *t, const Event *ev, uint64_t **seqs, size_t *n)
{
    *seqs = NULL;
    *n = 0;
    const Suiro__V1__Origin *o = ev->origin;
    int maps = ev->body_case == SUIRO__V1__EVENT__BODY_POINT_ALIAS ||
               (ev->body_case == SUIRO__V1__EVENT__BODY_MASTER_PUT && ev->master_put &&
                ev->master_put->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT);
    if (!maps || !o || !o->node || !o->node[0] || !o->point) return SR_OK;
    uint8_t k[140];
    size_t kl = held_wkey(k, sizeof k, o->node, o->point, 0, 0);
    if (!kl) return SR_OK;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_HELD), &c));
    if (rc) return rc;
    size_t cap = 0;
    MDB_val K = {kl, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    uint64_t *list = NULL;
    for (; !rc && r == 0 && K.mv_size == kl + 8 && !memcmp(K.mv_data, k, kl); r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        uint64_t seq = get_be64((const uint8_t *)K.mv_data + kl);
        int all = 0;
        if ((rc = held_complete(e, t, seq, &all)) || !all) continue;
        if ((rc = sr_array_reserve(&list, &cap, *n + 1, sizeof *list))) break;
        list[(*n)++] = seq;
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    if (rc) {
        sr_free(list);
        *n = 0;
        return rc;
    }
    *seqs = list;
    return SR_OK;
}

int sr__held_release(sr_engine *e, MDB_txn *t, const void *rec, size_t len, uint64_t held, uint64_t seq, int64_t now,
                     Event **out)
{
    *out = NULL;
    e->ev.oom = 0;
    Event *ev = suiro__v1__event__unpack(&e->ev.pa, len, rec);
    if (!ev) return e->ev.oom ? SR_ENOMEM : SR_ECORRUPT;
    Suiro__V1__Origin *o = ev->origin;
    int alias = ev->body_case == SUIRO__V1__EVENT__BODY_POINT_ALIAS && ev->point_alias;
    if (!o || !o->held || !o->node || !o->node[0] || (!alias && !raw_values(ev))) return SR_ECORRUPT; /* not held */
    uint32_t missing = 0;
    int rc = alias ? SR_OK : map_values(e, t, o->node, raw_values(ev), &missing); /* an alias: its apply resolves it */
    if (rc) return rc;
    o->held = 0;
    o->release_of = held;
    o->consumer = 0; /* its checkpoint was raised by the held event */
    ev->seq = seq;
    ev->ingest_ms = now;
    ev->message_id = (char *)""; /* the held event's message id row stays the one */
    *out = ev;
    return SR_OK;
}

int sr__origin_apply(sr_engine *e, MDB_txn *t, const Event *ev)
{
    const Suiro__V1__Origin *o = ev->origin;
    if (!o || !o->node || !o->node[0]) return SR_OK;
    uint8_t k[128], b[8];
    size_t kl = event_key(k, sizeof k, o);
    if (!kl) return SR_OK; /* refused by the writer: never logged */
    sr_put_le64(b, ev->seq);
    int rc = put(t, DB(e, SR_DB_ORIGINS), k, kl, b, 8); /* a release: its local seq from now (invariant 6) */
    if (!rc && o->held) rc = hold(e, t, ev);
    else if (!rc && o->release_of) rc = unhold(e, t, o->release_of);
    if (rc) return rc;
    uint32_t local = ev->body_case == SUIRO__V1__EVENT__BODY_MASTER_PUT && ev->master_put   ? ev->master_put->point
                     : ev->body_case == SUIRO__V1__EVENT__BODY_POINT_ALIAS && ev->point_alias ? ev->point_alias->point
                                                                                               : 0;
    if (o->point && local) { /* invariant 5: a replicated MasterPut's or PointAlias's number */
        uint8_t pb[4], lp[4];
        be32(pb, o->point);
        be32(lp, local);
        kl = id_key(k, sizeof k, 'P', o->node, pb, 4);
        if (kl && (rc = put(t, DB(e, SR_DB_ORIGINS), k, kl, lp, 4))) return rc;
    }
    if (o->consumer == 1 || o->consumer == 2) {
        uint8_t ck[5];
        be32(ck, o->partition);
        ck[4] = (uint8_t)o->consumer;
        MDB_val v;
        if (get(t, DB(e, SR_DB_CLUSTER_CKPT), ck, 5, &v) == SR_OK && v.mv_size == 8 &&
            sr_get_le64(v.mv_data) >= o->stream_seq)
            return SR_OK;
        sr_put_le64(b, o->stream_seq);
        rc = put(t, DB(e, SR_DB_CLUSTER_CKPT), ck, 5, b, 8);
    }
    return rc;
}

/* ---- the point aliases (invariant 5) ---- */

int sr__apply_point_alias(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    Suiro__V1__PointAlias *a = ev->point_alias;
    const Suiro__V1__Origin *o = ev->origin;
    if (!validate) return SR_OK; /* its 'P' row: sr__origin_apply, from the logged numbers */
    if (!o || !o->node || !o->node[0] || !o->point)
        return sr__refuse(r, SR_EINVAL, "point alias: only another node's, with its number (a replicated event)");
    if (!a || !a->origin_node || !a->origin_node[0] || !a->origin_point || !a->data_id || !sr_id_str_ok(a->data_id) ||
        !ev->operator_id[0])
        return sr__refuse(r, SR_EINVAL, "point alias: an operator, an origin node and number, a data point id");
    if (!strcmp(a->origin_node, o->node))
        return sr__refuse(r, SR_EINVAL, "point alias of node %s: of its own data point (its MasterPut maps it)", o->node);
    uint32_t local = 0;
    int rc;
    if (e->o.cluster_node && e->o.cluster_node[0] && !strcmp(a->origin_node, e->o.cluster_node))
        local = a->origin_point; /* this node created it: its own number */
    else if ((rc = map_point(e, t, a->origin_node, a->origin_point, &local))) {
        if (rc != SR_ENOTFOUND) return rc;
        return sr__refuse(r, SR_ENOTFOUND,
                          "point alias of node %s: node %s's data point %u (%s/%s) has no number on this node (its "
                          "MasterPut not applied here before it): refused; node %s's values of it stay held",
                          o->node, a->origin_node, a->origin_point, ev->operator_id, a->data_id, o->node);
    }
    pointinfo pi = {0};
    rc = sr__pointinfo_get(e, t, local, &pi);
    if (rc && rc != SR_ENOTFOUND) return rc;
    int same = !rc && pi.m && !strcmp(pi.op, ev->operator_id) && !strcmp(pi.m->id, a->data_id);
    char here[160];
    snprintf(here, sizeof here, "%s/%s", rc ? "-" : pi.op, rc || !pi.m ? "none" : pi.m->id);
    if (pi.m) suiro__v1__master_put__free_unpacked(pi.m, NULL);
    if (!same)
        return sr__refuse(r, SR_ECONFLICT,
                          "point alias of node %s: node %s's data point %u is %s/%s there but number %u is %s here: "
                          "refused, never mis-mapped",
                          o->node, a->origin_node, a->origin_point, ev->operator_id, a->data_id, local, here);
    a->point = local;
    return SR_OK;
}

int sr_engine_cluster_payload(const sr_event_view *v, const char *node, sr_buf *out)
{
    if (!v->origin_node) return SR_CLUSTER_SEND; /* this node's own: as logged */
    const Event *ev = v->ev;
    if (!ev || !ev->origin || ev->body_case != SUIRO__V1__EVENT__BODY_MASTER_PUT || !ev->master_put ||
        ev->master_put->kind != SUIRO__V1__MASTER_KIND__MK_DATA_POINT || !ev->origin->point || !ev->master_put->point ||
        !node || !node[0])
        return SR_CLUSTER_SKIP; /* in the stream already, under its origin's id */
    Suiro__V1__PointAlias pa = SUIRO__V1__POINT_ALIAS__INIT;
    pa.origin_node = ev->origin->node;
    pa.origin_point = ev->origin->point;
    pa.point = ev->master_put->point;
    pa.data_id = ev->master_put->id;
    Event al = SUIRO__V1__EVENT__INIT;
    al.seq = ev->seq; /* this node's seq of the MasterPut: the id node:seq */
    al.ingest_ms = ev->ingest_ms;
    al.operator_id = ev->operator_id;
    al.actor = (char *)node;
    al.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    al.source = "cluster";
    al.body_case = SUIRO__V1__EVENT__BODY_POINT_ALIAS;
    al.point_alias = &pa;
    size_t n = protobuf_c_message_get_packed_size(&al.base);
    out->len = 0;
    if (sr_buf_reserve(out, n)) return SR_ENOMEM;
    protobuf_c_message_pack(&al.base, out->data);
    out->len = n;
    return SR_CLUSTER_ALIAS;
}

/* ---- the queries ---- */

int sr_engine_cluster_ckpt(sr_engine *e, uint32_t part, int which, uint64_t *seq)
{
    *seq = 0;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t ck[5];
    be32(ck, part);
    ck[4] = (uint8_t)which;
    MDB_val v;
    rc = get(t, DB(e, SR_DB_CLUSTER_CKPT), ck, 5, &v);
    if (rc == SR_OK && v.mv_size == 8) *seq = sr_get_le64(v.mv_data);
    sr_index_read_end(e->ix, t);
    return rc == SR_ENOTFOUND ? SR_OK : rc;
}

int sr_engine_origin_seen(sr_engine *e, const char *node, uint64_t seq, uint64_t *local)
{
    *local = 0;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    Suiro__V1__Origin o = SUIRO__V1__ORIGIN__INIT;
    o.node = (char *)node;
    o.seq = seq;
    uint8_t k[128];
    size_t kl = event_key(k, sizeof k, &o);
    MDB_val v;
    rc = kl ? get(t, DB(e, SR_DB_ORIGINS), k, kl, &v) : SR_EINVAL;
    if (rc == SR_OK && v.mv_size == 8) *local = sr_get_le64(v.mv_data);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_cluster_held(sr_engine *e, uint64_t *count, uint64_t *oldest, char *node, size_t cap)
{
    *count = 0;
    if (oldest) *oldest = 0;
    if (node && cap) node[0] = 0;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_HELD), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    uint8_t s0 = 'S';
    MDB_val K = {1, &s0}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    for (; r == 0 && K.mv_size == 9 && ((const uint8_t *)K.mv_data)[0] == 'S'; r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        if (!(*count)++) {
            if (oldest) *oldest = get_be64((const uint8_t *)K.mv_data + 1);
            const char *z = memchr(V.mv_data, 0, V.mv_size);
            if (node && cap && z) snprintf(node, cap, "%s", (const char *)V.mv_data);
        }
    }
    if (r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}
