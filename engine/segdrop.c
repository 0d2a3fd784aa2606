/*
 * engine/segdrop.c -- dropping whole log segments (issue #16, R-ST-6;
 * docs/keys.md "Segments", docs/retention.md "Dropping segments"): the
 * ConfigCarry and LogTrim events' check and apply, the retention sweep's
 * last step (sr__segdrop_sweep) that appends them and unlinks the files,
 * and the open's finishing of a drop a crash interrupted.
 *
 * A segment of the log goes when nothing in it is still needed:
 *   (a) a config record (engine/keys.c: masters, the registry, users, login
 *       policies, pending changes, file shares, backups) is restated, as its
 *       own bytes with its own seq, in a ConfigCarry of its operator appended
 *       before the LogTrim (an earlier ConfigCarry's records are restated in
 *       turn: flattened);
 *   (b) a record whose key was destroyed (erased) is gone already;
 *   (c) any other record goes only when the index holds nothing it built:
 *       no audit row (audit key: its time and seq), no message id item, and
 *       a kind whose lasting effect is its audit row or is superseded
 *       (Retention cuts, key, admin, auth, write summaries (WriteAudit), read batches
 *       (AccessEvent, AccessBatch) and backup events, earlier
 *       LogTrims, heads checkpoints but the last one);
 *   (d) a data record of an operator, ingested before the cut of every data
 *       period of its operator, when the index holds no value of that
 *       operator older than the cut and no document, file, request or
 *       monitor of it created before the cut (sweep_keys' checks:
 *       sr__retention_data_cut).
 *   Sessions, alarm steps, alive transitions and the notifier's outcomes
 *   (audit class) go by (b) once their audit key is destroyed (issue #16:
 *   retention.c cuts or restates what they built first); without that
 *   they keep their segment. A push mark (config class, its apply a max
 *   per app) goes when the index holds a higher mark of its app, else it
 *   is carried as (a) (the server's push start mark, written at every
 *   start, would otherwise hold the first segment for ever).
 * The first segment that fails a check stays, with every segment after it
 * (sr_log_drop_below cuts from the log's start only); the reason is the
 * sweep's report (seg_held). The boundary is also kept at or below every
 * head's first_seq (the restart's heads replay, heads.c) and the index's
 * watermark + 1. The active (last) segment is never dropped.
 *
 * INVARIANTS
 *  (1) Order: every ConfigCarry durable and applied -> the LogTrim durable
 *      and applied (meta "floor" := first_kept) -> sr_log_drop_below
 *      unlinks the files and fsyncs the directory. A crash after the LogTrim
 *      leaves meta "floor" above the log's first seq: the next read-write
 *      open (sr__segdrop_finish) or the next sweep drops them: idempotent.
 *      A crash before it leaves carries without a trim: harmless (a later
 *      carry restates them again; the apply skips what it applied).
 *  (2) A carried record is applied (as of its own seq, validate 0: the
 *      replay's apply) only by an index that has not seen it: its seq is
 *      below meta "floor" (absent: 1; the first seq of the log when the
 *      index was built from an empty one, raised by every LogTrim) and above
 *      meta "carried" \0 op (the highest carried seq of op seen). Both
 *      values are a function of the events (the live index and a rebuild of
 *      the trimmed log end with the same ones): a rebuild equals the live
 *      index. A fresh index of a trimmed log applies the carried records
 *      before any kept record (sr__segdrop_fresh_floor): they are older
 *      than all of them, and a kept one may supersede one.
 *  (3) A carried record writes no audit row and no message id (the live
 *      index cut them, or the segment would have stayed).
 */
#include "engine/engine_int.h"

#include "engine/event_json.h"
#include "storage/keyring.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CARRY_EVENT_BYTES = 1 << 20 };

static uint64_t meta_u64(sr_engine *e, MDB_txn *t, const void *k, size_t kl)
{
    MDB_val v;
    if (get(t, DB(e, SR_DB_META), k, kl, &v) != SR_OK || v.mv_size != 8) return 0;
    return sr_get_le64(v.mv_data);
}

static int put_meta_u64(sr_engine *e, MDB_txn *t, const void *k, size_t kl, uint64_t x)
{
    uint8_t b[8];
    sr_put_le64(b, x);
    return put(t, DB(e, SR_DB_META), k, kl, b, 8);
}

/* meta "carried" \0 op */
static size_t carried_key(uint8_t *k, size_t cap, const char *op)
{
    size_t ol = strlen(op);
    if (8 + ol > cap) return 0;
    memcpy(k, "carried", 8);
    memcpy(k + 8, op, ol);
    return 8 + ol;
}

/* ---- the check and the apply ---------------------------------------------- */

int sr__segdrop_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e, (void)t;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return sr__refuse(r, SR_EINVAL, "%s: only the system or a user drops log segments",
                          ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM ? "log trim" : "config carry");
    if (ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM) {
        const Suiro__V1__LogTrim *lt = ev->log_trim;
        if (!lt || lt->anchor.len != SR_HASH_LEN || lt->first_kept <= lt->first_dropped || ev->operator_id[0])
            return sr__refuse(r, SR_EINVAL, "log trim: a platform event with a range and a 32-byte anchor");
        if (ev->seq && lt->first_kept > ev->seq)
            return sr__refuse(r, SR_EINVAL, "log trim: keeps nothing below itself");
    } else {
        const Suiro__V1__ConfigCarry *c = ev->config_carry;
        if (!c) return sr__refuse(r, SR_EINVAL, "config carry: no records");
        for (size_t i = 0; i < c->n_records; i++)
            if (!c->records[i]->seq || (ev->seq && c->records[i]->seq >= ev->seq) ||
                (i && c->records[i]->seq <= c->records[i - 1]->seq))
                return sr__refuse(r, SR_EINVAL, "config carry: records in seq order, before the carry");
    }
    return SR_OK;
}

/* A carried record, applied as the replay would have applied it (invariant
 * 2), its values sealed by its operator's config key. */
static int carry_one(sr_engine *e, MDB_txn *t, const Suiro__V1__CarriedRecord *cr)
{
    Event *in = suiro__v1__event__unpack(NULL, cr->event.len, cr->event.data);
    if (!in) return SR_ECORRUPT;
    in->seq = cr->seq;
    uint32_t kid = e->seal.kid, id = 0;
    if (e->keyring && sr_keyring_active(e->keyring, in->operator_id, SR_KC_CONFIG, &id) == SR_OK) e->seal.kid = id;
    sr_result r = {0};
    int rc = sr__apply_nonseries(e, t, in, &r, 0);
    e->seal.kid = kid;
    suiro__v1__event__free_unpacked(in, NULL);
    return rc;
}

int sr__segdrop_apply(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    (void)r;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM) {
        const Suiro__V1__LogTrim *lt = ev->log_trim;
        if (!lt) return SR_OK;
        if (!validate) { /* what a replay or a rebuild reports (sr_engine_open_stats) */
            e->ost.trim_seq = ev->seq;
            e->ost.trim_ms = ev->ingest_ms;
            e->ost.trimmed_below = lt->first_kept;
            for (size_t i = 0; i < lt->n_counts; i++) e->ost.trimmed_records += lt->counts[i]->records;
        }
        int trc = sr__mt_trim_apply(e, t, lt->first_kept, lt->tree_size, lt->frontier.data, lt->frontier.len);
        if (!trc) trc = sr__snap_trim(e, t, lt->first_kept); /* the snapshots before the horizon (statesnap.c) */
        if (trc) return trc;
        if (meta_u64(e, t, "floor", 5) >= lt->first_kept) return SR_OK;
        return put_meta_u64(e, t, "floor", 5, lt->first_kept);
    }
    const Suiro__V1__ConfigCarry *c = ev->config_carry;
    if (!c || !c->n_records) return SR_OK;
    uint64_t floor = meta_u64(e, t, "floor", 5);
    if (!floor) floor = 1;
    uint8_t k[300];
    size_t kl = carried_key(k, sizeof k, ev->operator_id);
    if (!kl) return SR_EINVAL;
    uint64_t carried = meta_u64(e, t, k, kl), top = carried;
    for (size_t i = 0; i < c->n_records; i++) {
        const Suiro__V1__CarriedRecord *cr = c->records[i];
        if (cr->seq > carried && cr->seq < floor) {
            int rc = carry_one(e, t, cr);
            if (rc) return rc;
        }
        if (cr->seq > top) top = cr->seq;
    }
    return top > carried ? put_meta_u64(e, t, k, kl, top) : SR_OK;
}

/* ---- the open: a drop a crash interrupted ------------------------------- */

int sr__segdrop_finish(sr_engine *e)
{
    if (e->o.readonly || e->o.log_readonly) return SR_OK;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint64_t floor = meta_u64(e, t, "floor", 5);
    sr_index_read_end(e->ix, t);
    if (floor <= sr_log_first_seq(e->log)) return SR_OK;
    size_t gone = 0;
    rc = sr_log_drop_below(e->log, floor, &gone);
    e->ost.segments_finished += gone;
    e->ost.log_first_seq = sr_log_first_seq(e->log);
    return rc;
}

/* A fresh index built from a log that does not start at 1 (invariant 2):
 * its floor, and the carried records applied FIRST, before the replay
 * applies any record of the kept log -- they are older than every one of
 * them, and a kept record may supersede one (a later registry entry, a
 * master changed or deleted): applied where their ConfigCarry sits, they
 * would undo it. The ConfigCarry events are those from the log's start to
 * the LogTrim that made it (first_kept = the first seq); the replay meets
 * them again and skips what they carry (meta carried). One transaction. */
int sr__segdrop_fresh_floor(sr_engine *e)
{
    uint64_t first = sr_log_first_seq(e->log);
    if (e->o.readonly || first <= 1) return SR_OK;
    MDB_txn *t;
    int rc = sr_index_write_begin(e->ix, &t);
    if (rc) return rc;
    if (sr_index_watermark(e->ix, t) || meta_u64(e, t, "floor", 5)) {
        sr_index_abort(t);
        return SR_OK;
    }
    rc = put_meta_u64(e, t, "floor", 5, first);
    sr_log_iter *it = NULL;
    if (!rc) rc = sr_log_iter_open(e->log, first, &it);
    uint32_t kid = e->seal.kid;
    while (!rc) {
        uint64_t seq;
        sr_slice rec;
        int irc = sr_log_iter_next(it, &seq, &rec);
        if (irc == SR_DONE) break;
        if (irc == SR_EERASED) continue; /* counted by the replay */
        if ((rc = irc)) break;
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        if (!ev) continue; /* the replay stops there, naming it */
        ev->seq = seq;
        int stop = ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM && ev->log_trim->first_kept == first;
        if (ev->body_case == SUIRO__V1__EVENT__BODY_CONFIG_CARRY) {
            sr_result r = {0};
            rc = sr__segdrop_apply(e, t, ev, &r, 0);
        }
        suiro__v1__event__free_unpacked(ev, NULL);
        if (stop) break;
    }
    e->seal.kid = kid;
    sr_log_iter_close(it);
    if (rc) {
        sr_index_abort(t);
        return rc;
    }
    return sr_index_commit(e->ix, t);
}

/* ---- the sweep's step ----------------------------------------------------- */

typedef struct carried {
    char *op;
    uint64_t seq;
    uint8_t *b;
    size_t n;
} carried;

typedef struct tcount {
    char op[72];
    char cls[8];
    uint64_t n;
} tcount;

typedef struct drop {
    sr_engine *e;
    MDB_txn *t;
    carried *c;
    size_t nc, capc;
    tcount *k;
    size_t nk, capk;
    uint64_t ckpt_seq; /* meta heads_ckpt: the last heads checkpoint applied */
    const sr_retention_cfg *cfg;
    int64_t now;
    struct dcut { /* rule (d): per operator, sr__retention_data_cut */
        char op[72];
        int64_t cut;
    } *dc;
    size_t ndc, capdc;
    char why[160];
} drop;

/* rule (d) for op, computed once a sweep */
static int64_t data_cut(drop *d, const char *op)
{
    for (size_t i = 0; i < d->ndc; i++)
        if (!strcmp(d->dc[i].op, op)) return d->dc[i].cut;
    int64_t cut = strlen(op) < sizeof d->dc->op ? sr__retention_data_cut(d->e, d->t, d->cfg, d->now, op) : INT64_MIN;
    if (strlen(op) < sizeof d->dc->op && !sr_array_reserve(&d->dc, &d->capdc, d->ndc + 1, sizeof *d->dc)) {
        snprintf(d->dc[d->ndc].op, sizeof d->dc->op, "%s", op);
        d->dc[d->ndc++].cut = cut;
    }
    return cut;
}

static int count(drop *d, const char *op, const char *cls)
{
    for (size_t i = 0; i < d->nk; i++)
        if (!strcmp(d->k[i].op, op) && !strcmp(d->k[i].cls, cls)) {
            d->k[i].n++;
            return SR_OK;
        }
    if (sr_array_reserve(&d->k, &d->capk, d->nk + 1, sizeof *d->k)) return SR_ENOMEM;
    tcount *x = &d->k[d->nk++];
    snprintf(x->op, sizeof x->op, "%s", op);
    snprintf(x->cls, sizeof x->cls, "%s", cls);
    x->n = 1;
    return SR_OK;
}

static int carry_add(drop *d, const char *op, uint64_t seq, const uint8_t *b, size_t n)
{
    if (sr_array_reserve(&d->c, &d->capc, d->nc + 1, sizeof *d->c)) return SR_ENOMEM;
    carried *x = &d->c[d->nc];
    x->op = sr_malloc(strlen(op) + 1);
    x->b = sr_malloc(n ? n : 1);
    if (!x->op || !x->b) {
        sr_free(x->op);
        sr_free(x->b);
        return SR_ENOMEM;
    }
    strcpy(x->op, op);
    memcpy(x->b, b, n);
    x->n = n;
    x->seq = seq;
    d->nc++;
    return SR_OK;
}

static int cmp_carried(const void *a, const void *b)
{
    const carried *x = a, *y = b;
    int c = strcmp(x->op, y->op);
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* 1 if the index still holds what ev built that outlives it: its audit row
 * or its message id item (invariant 3). */
static int index_holds(drop *d, const Event *ev)
{
    sr_engine *e = d->e;
    uint8_t ak[SR_AUDIT_KEY];
    audit_key(ak, ev->ingest_ms, ev->seq);
    MDB_val v;
    if (get(d->t, DB(e, SR_DB_AUDIT), ak, sizeof ak, &v) == SR_OK) {
        snprintf(d->why, sizeof d->why, "record %" PRIu64 " (%s of '%s'): its audit row is kept", ev->seq,
                 sr_event_kind(ev), ev->operator_id);
        return 1;
    }
    if (!ev->message_id[0]) return 0;
    uint8_t k[300], item[MSGID_ITEM];
    size_t kl = sr__msgid_key(ev, ev->seq, k, sizeof k);
    if (!kl || sr__msgid_item(e, ev, ev->seq, item)) return 0;
    MDB_cursor *c;
    if (mdb_cursor_open(d->t, DB(e, SR_DB_MSGIDS), &c)) return 1;
    MDB_val K = {kl, k}, V = {MSGID_ITEM, item};
    int has = mdb_cursor_get(c, &K, &V, MDB_GET_BOTH) == 0;
    mdb_cursor_close(c);
    if (has)
        snprintf(d->why, sizeof d->why, "record %" PRIu64 " of '%s': its message id is kept (the dedup window)",
                 ev->seq, ev->operator_id);
    return has;
}

/* Whether the record (seq, rec) may go (the rules above); 0 with d->why
 * set if not; an error code on failure. */
static int classify(drop *d, int irc, uint64_t seq, const sr_slice *rec, uint32_t kid, int *ok)
{
    *ok = 0;
    if (irc == SR_EERASED) { /* (b) */
        sr_keyinfo ki;
        int known = d->e->keyring && sr_keyring_info(d->e->keyring, kid, &ki) == SR_OK;
        *ok = 1;
        return count(d, known ? ki.operator_id : "", "erased");
    }
    Event *ev = suiro__v1__event__unpack(NULL, rec->len, rec->data);
    if (!ev) {
        snprintf(d->why, sizeof d->why, "record %" PRIu64 " is not a valid event", seq);
        return SR_OK;
    }
    ev->seq = seq;
    int cls = sr__key_class((int)ev->body_case), rc = SR_OK;
    if (index_holds(d, ev)) goto out;
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_CONFIG_CARRY: /* flattened: its records are carried again */
        for (size_t i = 0; i < ev->config_carry->n_records && !rc; i++)
            rc = carry_add(d, ev->operator_id, ev->config_carry->records[i]->seq,
                           ev->config_carry->records[i]->event.data, ev->config_carry->records[i]->event.len);
        *ok = !rc;
        break;
    case SUIRO__V1__EVENT__BODY_RETENTION: /* cuts: what they cut was built below them */
    case SUIRO__V1__EVENT__BODY_LOG_TRIM:  /* superseded by the trim that drops it */
    case SUIRO__V1__EVENT__BODY_KEY:       /* the keyring is its own store */
    case SUIRO__V1__EVENT__BODY_ADMIN:
    case SUIRO__V1__EVENT__BODY_WRITE_AUDIT: /* a summary of writes: its audit row is all it built (issue #18) */
    case SUIRO__V1__EVENT__BODY_ACCESS:       /* a batch of reads, either form: the same (issue #18) */
    case SUIRO__V1__EVENT__BODY_ACCESS_BATCH:
    case SUIRO__V1__EVENT__BODY_CLUSTER: /* an ownership change: its audit row is all it built (issue #19) */
    case SUIRO__V1__EVENT__BODY_AUTH: *ok = 1; break;
    case SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE: /* its audit row; an open intent is kept (keys.c invariant 4) */
        if (sr__skey_intent_open(d->e, d->t, ev))
            snprintf(d->why, sizeof d->why, "record %" PRIu64 ": a stream key's erasure not finished yet", seq);
        else *ok = 1;
        break;
    case SUIRO__V1__EVENT__BODY_ALARM: /* the `alarms` database is built from them (issue #17) */
        snprintf(d->why, sizeof d->why, "record %" PRIu64 ": an alarm step of '%s', its audit key not destroyed", seq,
                 ev->operator_id);
        break;
    case SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT:
        if (seq == d->ckpt_seq)
            snprintf(d->why, sizeof d->why, "record %" PRIu64 ": the last heads checkpoint", seq);
        else *ok = 1; /* superseded by a later one (meta heads_ckpt) */
        break;
    case SUIRO__V1__EVENT__BODY_SESSION:
        snprintf(d->why, sizeof d->why, "record %" PRIu64 ": a session of '%s', its audit key not destroyed", seq,
                 ev->operator_id);
        break;
    case SUIRO__V1__EVENT__BODY_PUSH_MARK: { /* (a'): superseded by a higher mark, or carried (its apply is a max) */
        const Suiro__V1__PushMark *pm = ev->push_mark;
        uint8_t k[520];
        size_t kl = pm ? sr_pushq_key(k, sizeof k, ev->operator_id, pm->app_id) : 0;
        MDB_val v;
        if (!pm || (kl && get(d->t, DB(d->e, SR_DB_PUSHQ), k, kl, &v) == SR_OK && v.mv_size == 8 &&
                    sr_get_le64(v.mv_data) > pm->through))
            *ok = 1;
        else {
            rc = carry_add(d, ev->operator_id, seq, rec->data, rec->len);
            *ok = !rc;
        }
        break;
    }
    default:
        if (cls == SR_KC_CONFIG) { /* (a) */
            rc = carry_add(d, ev->operator_id, seq, rec->data, rec->len);
            *ok = !rc;
        } else if (cls == SR_KC_DATA && ev->operator_id[0] && ev->ingest_ms < data_cut(d, ev->operator_id)) {
            *ok = 1; /* (d): past every data period of its operator, nothing of it in the index */
        } else {
            snprintf(d->why, sizeof d->why, "record %" PRIu64 ": %s of '%s', its key not destroyed, not past every "
                     "data period of its operator with nothing of it left in the index", seq, sr_event_kind(ev),
                     ev->operator_id);
        }
    }
out:
    if (*ok && !rc) rc = count(d, ev->operator_id, ev->body_case == SUIRO__V1__EVENT__BODY_CONFIG_CARRY ? "config"
                                                   : cls >= 0                                       ? sr_key_class_name(cls)
                                                                                                    : "?");
    suiro__v1__event__free_unpacked(ev, NULL);
    return rc;
}

static int submit_one(sr_engine *e, Event *ev, sr_errinfo *err)
{
    size_t n = protobuf_c_message_get_packed_size(&ev->base);
    uint8_t *b = sr_malloc(n ? n : 1);
    if (!b) return SR_ENOMEM;
    protobuf_c_message_pack(&ev->base, b);
    sr_slice sl = {b, n};
    sr_result res = {0};
    int rc = sr_engine_submit_wait(e, &sl, 1, &res);
    sr_free(b);
    if (!rc) rc = res.rc;
    if (rc && err) {
        if (res.rc) *err = res.err;
        else sr_errinfo_set(err, rc, "dropping log segments: %s", sr_strerror(rc));
    }
    return rc;
}

/* The ConfigCarry events of the records d->c[lo, hi) (one operator's), at
 * most about CARRY_EVENT_BYTES each. */
static int carry_submit(drop *d, size_t lo, size_t hi, uint64_t through, const char *actor, int actor_kind,
                        uint64_t *nev, sr_errinfo *err)
{
    int rc = SR_OK;
    while (lo < hi && !rc) {
        size_t end = lo, bytes = 0;
        while (end < hi && (end == lo || bytes + d->c[end].n < CARRY_EVENT_BYTES)) bytes += d->c[end++].n;
        size_t m = end - lo;
        Suiro__V1__CarriedRecord *rs = sr_calloc(m, sizeof *rs);
        Suiro__V1__CarriedRecord **rp = sr_calloc(m, sizeof *rp);
        if (!rs || !rp) rc = SR_ENOMEM;
        for (size_t i = 0; i < m && !rc; i++) {
            suiro__v1__carried_record__init(&rs[i]);
            rs[i].seq = d->c[lo + i].seq;
            rs[i].event = (ProtobufCBinaryData){d->c[lo + i].n, d->c[lo + i].b};
            rp[i] = &rs[i];
        }
        if (!rc) {
            Suiro__V1__ConfigCarry cc = SUIRO__V1__CONFIG_CARRY__INIT;
            Event ev = SUIRO__V1__EVENT__INIT;
            cc.n_records = m;
            cc.records = rp;
            cc.through_seq = through;
            ev.operator_id = d->c[lo].op;
            ev.actor = (char *)actor;
            ev.actor_kind = (Suiro__V1__ActorKind)actor_kind;
            ev.source = (char *)(actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? "retention" : "admin");
            ev.body_case = SUIRO__V1__EVENT__BODY_CONFIG_CARRY;
            ev.config_carry = &cc;
            rc = submit_one(d->e, &ev, err);
            if (!rc) ++*nev;
        }
        sr_free(rs);
        sr_free(rp);
        lo = end;
    }
    return rc;
}

/* The smallest first_seq of the heads table (heads.c: the restart's heads
 * replay starts there); UINT64_MAX when none. */
static uint64_t heads_min_first(drop *d)
{
    uint64_t m = UINT64_MAX;
    MDB_cursor *c;
    if (mdb_cursor_open(d->t, DB(d->e, SR_DB_HEADS), &c)) return 0;
    MDB_val k, v;
    for (int r = mdb_cursor_get(c, &k, &v, MDB_FIRST); r == 0; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (v.mv_size < 8) continue;
        uint64_t f = sr_get_le64(v.mv_data);
        if (f && f < m) m = f;
    }
    mdb_cursor_close(c);
    return m;
}

int sr__segdrop_sweep(sr_engine *e, const sr_retention_cfg *cfg, int64_t now, const char *actor, int actor_kind,
                      sr_retention_report *rep, sr_errinfo *err)
{
    int rc = sr__segdrop_finish(e); /* a drop a crash left undone (invariant 1) */
    if (rc) {
        sr_errinfo_set(err, rc, "dropping log segments: %s", sr_strerror(rc));
        return rc;
    }
    drop d = {.e = e, .cfg = cfg, .now = now};
    size_t nseg = 0;
    char name[64];
    uint64_t f0, bytes, first = 0, bound = 0;
    while (sr_log_segment_at(e->log, nseg, name, &f0, &bytes) == SR_OK) {
        if (!nseg) first = f0;
        nseg++;
    }
    if (nseg < 2) return SR_OK; /* the active segment stays */
    if ((rc = sr_index_read_begin(e->ix, &d.t))) return rc;
    MDB_val hv;
    if (get(d.t, DB(e, SR_DB_META), "heads_ckpt", 10, &hv) == SR_OK && hv.mv_size >= 8)
        d.ckpt_seq = sr_get_le64(hv.mv_data);
    uint64_t hmin = heads_min_first(&d), wm = sr_index_watermark(e->ix, d.t);
    /* the candidates: every segment but the last, while each record may go */
    bound = first;
    for (size_t i = 0; i + 1 < nseg && !rc; i++) {
        uint64_t s0, s1;
        if ((rc = sr_log_segment_at(e->log, i, name, &s0, &bytes)) ||
            (rc = sr_log_segment_at(e->log, i + 1, name, &s1, &bytes)))
            break;
        if (s1 > hmin) {
            snprintf(d.why, sizeof d.why, "a data point's head starts at seq %" PRIu64 " (the restart replays it)", hmin);
            break;
        }
        if (s1 > wm + 1) break;
        sr_log_iter *it = NULL;
        if ((rc = sr_log_iter_open(e->log, s0, &it))) break;
        int all = 1;
        for (;;) {
            uint64_t seq = 0;
            sr_slice rec = {0};
            int irc = sr_log_iter_next(it, &seq, &rec);
            if (irc == SR_DONE) break;
            if (irc && irc != SR_EERASED) { /* a read error is the sweep's, never a silent hold */
                rc = irc;
                sr_errinfo_set(err, rc, "dropping log segments: reading the segment of seq %" PRIu64 ": %s", s0,
                               sr_log_iter_errinfo(it)->msg[0] ? sr_log_iter_errinfo(it)->msg : sr_strerror(rc));
                break;
            }
            if (seq >= s1) break;
            int ok = 0;
            if ((rc = classify(&d, irc, seq, &rec, sr_log_iter_key_id(it), &ok))) break;
            if (!ok) {
                all = 0;
                break;
            }
        }
        sr_log_iter_close(it);
        if (rc || !all) break;
        bound = s1;
        rep->segments_dropped++;
    }
    sr_index_read_end(e->ix, d.t);
    d.t = NULL;
    snprintf(rep->seg_held, sizeof rep->seg_held, "%s", d.why);
    if (rc || bound <= first) {
        if (rc && !err->msg[0]) sr_errinfo_set(err, rc, "dropping log segments: %s", sr_strerror(rc));
        rep->segments_dropped = 0;
        goto out;
    }
    /* (a): the carries, each operator's records in seq order (duplicates of
     * a record carried twice are restated once) */
    if (d.nc) qsort(d.c, d.nc, sizeof *d.c, cmp_carried); /* none to carry: d.c is NULL */
    size_t w = 0;
    for (size_t i = 0; i < d.nc; i++) {
        if (w && !strcmp(d.c[w - 1].op, d.c[i].op) && d.c[w - 1].seq == d.c[i].seq) {
            sr_free(d.c[i].op);
            sr_free(d.c[i].b);
            continue;
        }
        d.c[w++] = d.c[i];
    }
    d.nc = w;
    for (size_t lo = 0; lo < d.nc && !rc;) {
        size_t hi = lo;
        while (hi < d.nc && !strcmp(d.c[hi].op, d.c[lo].op)) hi++;
        rc = carry_submit(&d, lo, hi, bound - 1, actor, actor_kind, &rep->seg_events, err);
        if (!rc) rep->carried += hi - lo;
        lo = hi;
    }
    if (rc) goto out;
    /* the trim: the chain of what remains starts at bound */
    sr_log_cut cut;
    if ((rc = sr_log_cut_at(e->log, bound - 1, 1, &cut)) || cut.last_seq != bound - 1) {
        rc = rc ? rc : SR_EIO;
        sr_errinfo_set(err, rc, "dropping log segments: no batch ends at seq %" PRIu64, bound - 1);
        goto out;
    }
    {
        Suiro__V1__LogTrim lt = SUIRO__V1__LOG_TRIM__INIT;
        Event ev = SUIRO__V1__EVENT__INIT;
        Suiro__V1__TrimCount *tc = sr_calloc(d.nk ? d.nk : 1, sizeof *tc);
        Suiro__V1__TrimCount **tp = sr_calloc(d.nk ? d.nk : 1, sizeof *tp);
        if (!tc || !tp) rc = SR_ENOMEM;
        for (size_t i = 0; i < d.nk && !rc; i++) {
            suiro__v1__trim_count__init(&tc[i]);
            tc[i].operator_id = d.k[i].op;
            tc[i].key_class = d.k[i].cls;
            tc[i].records = d.k[i].n;
            tp[i] = &tc[i];
            rep->records_dropped += d.k[i].n;
        }
        uint8_t frb[8 + SR_MT_MAX_LEVEL * SR_HASH_LEN];
        size_t frn = 0;
        if (!rc) rc = sr__mt_trim_fill(e, bound, &lt.tree_size, frb, &frn); /* the tree goes on (docs/audit.md) */
        lt.frontier = (ProtobufCBinaryData){frn, frb};
        lt.first_kept = bound;
        lt.first_dropped = first;
        lt.anchor = (ProtobufCBinaryData){SR_HASH_LEN, cut.tip};
        lt.segments = (uint32_t)rep->segments_dropped;
        lt.n_counts = d.nk;
        lt.counts = tp;
        lt.carried_through = bound - 1;
        ev.operator_id = "";
        ev.actor = (char *)actor;
        ev.actor_kind = (Suiro__V1__ActorKind)actor_kind;
        ev.source = (char *)(actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? "retention" : "admin");
        ev.body_case = SUIRO__V1__EVENT__BODY_LOG_TRIM;
        ev.log_trim = &lt;
        if (!rc) rc = submit_one(e, &ev, err);
        if (!rc) rep->seg_events++;
        sr_free(tc);
        sr_free(tp);
    }
    if (rc) goto out;
    /* durable and applied: the files go */
    size_t gone = 0;
    if (e->o.test_segdrop_no_unlink) { /* tests: a crash before the unlink */
        rep->segments_dropped = 0;
        goto out;
    }
    if ((rc = sr_log_drop_below(e->log, bound, &gone)))
        sr_errinfo_set(err, rc, "dropping log segments below seq %" PRIu64 ": %s (the next sweep or open finishes it)",
                       bound, sr_strerror(rc));
    rep->segments_dropped = gone;
out:
    if (rc) rep->segments_dropped = 0;
    for (size_t i = 0; i < d.nc; i++) {
        sr_free(d.c[i].op);
        sr_free(d.c[i].b);
    }
    sr_free(d.c);
    sr_free(d.k);
    sr_free(d.dc);
    return rc;
}

/* ---- verify: the trim that made the log's start ------------------------- */

int sr_engine_log_trim_check(const char *logdir, const sr_log_opts *lo, sr_log_report *rep, sr_errinfo *ei)
{
    rep->trim_checked = 0;
    rep->trim_seq = rep->trim_records = rep->trim_interrupted = 0;
    rep->trim_ms = 0;
    if (rep->first_seq <= 1) return SR_OK;
    sr_log_opts o = *lo;
    o.readonly = 1;
    sr_log *lg = NULL;
    int rc = sr_log_open(logdir, &o, &lg, ei);
    if (rc) return rc;
    sr_log_iter *it = NULL;
    if ((rc = sr_log_iter_open(lg, rep->first_seq, &it))) {
        sr_log_close(lg);
        return rc;
    }
    int sealed = 0, found = 0, same = 0, inside = 0;
    for (;;) {
        uint64_t seq;
        sr_slice rec;
        int irc = sr_log_iter_next(it, &seq, &rec);
        if (irc == SR_DONE) break;
        if (irc == SR_EERASED) continue;
        if (irc == SR_EKEY) { /* no key for this section: the trim may be in it */
            sealed = 1;
            continue;
        }
        if (irc) {
            rc = irc;
            sr_errinfo_set(ei, rc, "%s", sr_log_iter_errinfo(it)->msg);
            break;
        }
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        if (!ev) continue; /* not an event (verify checks framing, not contents) */
        if (ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM && ev->log_trim->first_kept == rep->first_seq) {
            const Suiro__V1__LogTrim *lt = ev->log_trim;
            found = 1;
            same = lt->anchor.len == SR_HASH_LEN && !memcmp(lt->anchor.data, rep->anchor, SR_HASH_LEN);
            rep->trim_seq = seq;
            rep->trim_ms = ev->ingest_ms;
            rep->trim_records = 0;
            for (size_t i = 0; i < lt->n_counts; i++) rep->trim_records += lt->counts[i]->records;
        } else if (!found && ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM &&
                   ev->log_trim->first_dropped <= rep->first_seq && rep->first_seq < ev->log_trim->first_kept) {
            inside = 1; /* a drop a crash interrupted between two unlinks */
            rep->trim_seq = seq;
            rep->trim_ms = ev->ingest_ms;
            rep->trim_interrupted = ev->log_trim->first_kept;
        }
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    if (rc) return rc;
    if (found && same) {
        rep->trim_checked = 1;
        rep->trim_interrupted = 0;
        return SR_OK;
    }
    if (!found && inside) return SR_OK; /* what is left of it is to go: said (trim_interrupted) */
    rep->trim_interrupted = 0;
    if (!found && sealed && !lo->key && !lo->keys) return SR_OK; /* not checked: said by trim_checked 0 */
    rc = SR_ECORRUPT;
    rep->ok = 0;
    if (!found)
        sr_errinfo_set(ei, rc,
                       "the log starts at seq %" PRIu64 " but no LogTrim event records a drop below it: segments "
                       "are missing (the chain before seq %" PRIu64 " cannot be proven)",
                       rep->first_seq, rep->first_seq);
    else
        sr_errinfo_set(ei, rc,
                       "the log starts at seq %" PRIu64 " and the LogTrim event %" PRIu64
                       " recorded another previous-block hash for it: the first kept block was replaced",
                       rep->first_seq, rep->trim_seq);
    return rc;
}
