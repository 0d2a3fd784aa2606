/*
 * engine/retention.c -- retention of the index (issue #16, R-ST-6;
 * docs/retention.md, docs/keys.md "Retention and erasure"): the Retention
 * event's check and apply, and the sweep that appends them.
 *
 * A sweep (sr_engine_retention_sweep) reads the index in one read
 * transaction, works out what of each operator and class is past its period
 * (the periods: RG_RETENTION registry entries, else the engine's defaults,
 * sr_retention_cfg), and appends Retention events through the writer queue
 * like any other command, a few in flight at a time. Each event names its
 * operator, its class, its cut time and a key range [from, to) of the
 * database the class lives in, chosen so that applying it visits at most
 * about cfg->batch keys: the writer never stalls on a large backlog, and
 * the sweep continues where the last event stopped. Applying one
 * (sr__retention_apply, the series column of SR_EVENT_KINDS: pass 2, in
 * seq order with the measurements) deletes what of the event's operator and
 * class is older than the cut in that range:
 *   a data point's class  the chunks wholly older than the cut (last ts <
 *                         cut; a chunk straddling the cut is kept until a
 *                         later sweep finds it wholly past), and the point's
 *                         `latest` row when it is older than the cut;
 *   "audit"               the operator's audit rows older than the cut;
 *   "message_ids"         the operator's message ids of events before
 *                         below_seq (the dedup window, [retention]
 *                         message_id_window_s);
 *   "audit_state"         (issue #16) the operator's alarms resolved and
 *                         sessions expired before the cut (one event per
 *                         operator, no range: apply_audit_state);
 *   "documents", "files", the operator's rows of docs, files, requests,
 *   "requests",           monitors (index layout 9: each value carries its
 *   "monitors"            first and last write times, schema.h wtimes) last
 *                         written before the cut: a document, a file, a
 *                         finished request (all its rows; a pending or
 *                         running one never), a stopped monitor (group_cut).
 *                         A cut file's blob leaves after the commit, when no
 *                         remaining file row names it (sweep_blobs).
 * Once its Retention events are durable and applied, the sweep restates the
 * live audit state of the retired audit keys past their operator's audit
 * cut (restate_live: events the writer fills from the rows), waits for them,
 * and destroys the retired data and audit keys they freed (sweep_keys; the
 * rule: docs/keys.md "Retention and erasure"): through sr_engine_key_destroy, the KeyEvent
 * "destroyed" durable first, then the keyring's tombstone. Then, with
 * [retention] drop_segments, the log segments nothing needs any more go
 * (engine/segdrop.c, docs/keys.md "Segments").
 *
 * INVARIANTS
 *  (1) An apply reads nothing but the event and the index (apply.c (1)):
 *      the replay and a rebuild make the same deletions as the writer, so a
 *      rebuild equals the live index (test_retention).
 *  (2) A head is trimmed only whole: a value still in a head (the point's
 *      open chunk, its late list) is kept until it is flushed into a chunk
 *      and a later sweep finds that chunk wholly past, unless the whole head
 *      is past the cut (every sample, and the newest value of its last
 *      flush): then the event that visits its point retires it (heads.c
 *      sr__heads_retire: never written, its `heads` row gone; a restart's
 *      heads-only replay does the same), so a rebuild that cannot read the
 *      records it held builds the same head (issue #18). A latest row is deleted only
 *      when the head has no pending newer row; the head then re-reads the row
 *      (lts_known := 0), so an abort of the group cannot leave it stale
 *      (heads.c invariant 10).
 *  (3) A point's last chunk that a heads checkpoint cut short (the head's
 *      tail_n, heads.c invariant 9) is kept: the head's next flush
 *      re-encodes it.
 *  (5) A data key is destroyed only when the index holds nothing its
 *      records built (sweep_keys: no value of the operator older than the
 *      key's epoch end, no document, file, request or monitor of the
 *      operator first written at or before it, and no head of its points
 *      holding a sample of a record ingested by then or a flushed state
 *      older than it: op_heads_hold, issue #18), so a rebuild, which cannot
 *      read those records, equals the live index (test_erasure). A
 *      Retention event cuts the latest rows of its range's points found in
 *      `latest`, not through their chunks (cut_latest_range: a rebuild
 *      never built the chunks of the erased records).
 *  (7) An audit key is destroyed only when no value of `alive`, `sessions`,
 *      `alarms` or `audit` is sealed by it and no alarm of its operator is
 *      built from before its epoch's end (audit_key_holds): what its
 *      records built was cut (audit, audit_state) or restated first, so a
 *      rebuild equals the live index (test_erasure).
 *  (6) A record class's event never splits a group: its range's bounds are
 *      group prefixes (a request's op \0 request \0), and the apply
 *      decides a group whole from its rows (group_cut, shared by the sweep
 *      and the apply).
 *  (8) The platform's ("") audit records follow the platform's audit
 *      period like an operator's (period_of: its RG_RETENTION "audit"
 *      entry, else [retention] audit_days): its audit rows and expired
 *      sessions are cut, its alarms and the notifier's mark restated, and
 *      its retired audit keys destroyed by the same rule (issue #18), so its
 *      records leave the log's first segments too. Its data keys (heads
 *      checkpoints) and config keys never.
 *  (4) One sweep at a time (e->ret_busy); a sweep's events are commands like
 *      any other, so a crash leaves every event applied or not, never half
 *      (a kill -9 during a sweep: the restart's index equals a rebuild).
 */
#include "engine/engine_int.h"

#include "codecs/ids.h"
#include "storage/keyring.h"
#include "storage/series.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RET_KEY_MAX = 512, RET_DAY_MS = 86400000 };

static const char CL_AUDIT[] = "audit", CL_MSGIDS[] = "message_ids", CL_DEFAULT[] = "default",
                  CL_AUDIT_STATE[] = "audit_state";

/* a class no data point may name: audit's, the message ids', the audit
 * state's (issue #16) */
static int reserved_class(const char *c)
{
    return !strcmp(c, CL_AUDIT) || !strcmp(c, CL_MSGIDS) || !strcmp(c, CL_AUDIT_STATE);
}

/* The record classes (layout 9): an operator's documents, files, requests
 * and monitors, each cut from its database by its rows' write times
 * (schema.h wtimes). A name here is no data point's class. */
typedef struct rec_class {
    const char *name;
    sr_dbi db;
} rec_class;
static const rec_class REC_CLASSES[] = {
    {"documents", SR_DB_DOCS}, {"files", SR_DB_FILES}, {"requests", SR_DB_REQUESTS}, {"monitors", SR_DB_MONITORS}};
enum { N_REC_CLASSES = sizeof REC_CLASSES / sizeof REC_CLASSES[0] };

static const struct rec_class *rec_class_of(const char *c)
{
    for (size_t i = 0; c && i < N_REC_CLASSES; i++)
        if (!strcmp(c, REC_CLASSES[i].name)) return &REC_CLASSES[i];
    return NULL;
}

int sr__retention_record_class(const char *c) { return rec_class_of(c) != NULL; }

/* a data point's class: its master's, or "default" (also for a class a
 * point stored before it was reserved may name: audit, message_ids, a
 * record class, so that a point's Retention event never reaches another
 * database's apply) */
static const char *point_class(const MasterPut *m)
{
    const char *c = m && m->retention_class && m->retention_class[0] ? m->retention_class : CL_DEFAULT;
    return !reserved_class(c) && !rec_class_of(c) ? c : CL_DEFAULT;
}

int sr__retention_class_ok(const char *c)
{
    return c && sr_id_str_ok(c) && !reserved_class(c) && !rec_class_of(c);
}

/* ---- the check (pass 1, the writer's) ------------------------------------ */

int sr__retention_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e, (void)t;
    const Suiro__V1__Retention *rt = ev->retention;
    if (!rt || !rt->data_class || !sr_id_str_ok(rt->data_class))
        return sr__refuse(r, SR_EINVAL, "retention: a data class is required");
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return sr__refuse(r, SR_EINVAL, "retention: only the system or a user sweeps");
    if (rt->from.len > RET_KEY_MAX || rt->to.len > RET_KEY_MAX)
        return sr__refuse(r, SR_EINVAL, "retention: a range bound longer than %d bytes", RET_KEY_MAX);
    if (rt->cut_ms > ev->ingest_ms && ev->ingest_ms)
        return sr__refuse(r, SR_EINVAL, "retention: a cut in the future");
    return SR_OK;
}

/* ---- the apply (pass 2) --------------------------------------------------- */

/* 1 if k is before the range's end (to empty: no end) */
static int before_to(const MDB_val *k, const ProtobufCBinaryData *to)
{
    if (!to->len) return 1;
    size_t n = k->mv_size < to->len ? k->mv_size : to->len;
    int c = memcmp(k->mv_data, to->data, n);
    return c < 0 || (c == 0 && k->mv_size < to->len);
}

/* The point's `latest` row, deleted when it is older than cut (invariant
 * (2)). *n: rows deleted. */
static int cut_latest(sr_engine *e, MDB_txn *t, uint32_t p, int64_t cut, uint32_t *n)
{
    head *h = head_find(e, p);
    if (h && h->lpend && h->lsample.ts >= cut) return SR_OK; /* a newer row is pending */
    uint8_t k[4];
    be32(k, p);
    MDB_val v;
    sr_sample s;
    sr_vtype ty;
    int rc = get(t, DB(e, SR_DB_LATEST), k, 4, &v);
    if (rc == SR_ENOTFOUND) return SR_OK;
    if (rc) return rc;
    if (!latest_decode(v.mv_data, v.mv_size, &s, &ty) && s.ts >= cut) return SR_OK;
    if ((rc = del(t, DB(e, SR_DB_LATEST), k, 4))) return rc;
    if (h) {
        h->lpend = 0;
        h->lts_known = 0; /* re-read from the transaction: right after a commit and after an abort */
    }
    (*n)++;
    return SR_OK;
}

/* Keys collected in a walk, deleted after it (a range holds about a
 * sweep's batch of them). */
typedef struct keyset {
    uint8_t *b;
    size_t n, cap;
    size_t *off;
    size_t nk, capk;
} keyset;

static int ks_add(keyset *ks, const void *k, size_t kl)
{
    if (sr_array_reserve(&ks->b, &ks->cap, ks->n + kl, 1) || sr_array_reserve(&ks->off, &ks->capk, ks->nk + 2, sizeof *ks->off))
        return SR_ENOMEM;
    if (!ks->nk) ks->off[0] = 0;
    memcpy(ks->b + ks->n, k, kl);
    ks->n += kl;
    ks->off[++ks->nk] = ks->n;
    return SR_OK;
}

static void ks_free(keyset *ks)
{
    sr_free(ks->b);
    sr_free(ks->off);
}

#define KS_KEY(ks, i) ((ks)->b + (ks)->off[i])
#define KS_LEN(ks, i) ((ks)->off[(i) + 1] - (ks)->off[i])

/* 1 if the chunk at key k is its point's last */
static int last_chunk(sr_engine *e, MDB_txn *t, const uint8_t *k)
{
    MDB_cursor *c;
    if (mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c)) return 1;
    MDB_val K = {SR_SERIES_KEY_LEN, (void *)k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_KEY);
    if (r == 0) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    int last = r != 0 || K.mv_size != SR_SERIES_KEY_LEN || get_be32(K.mv_data) != get_be32(k);
    mdb_cursor_close(c);
    return last;
}

/* The latest rows older than the cut of the points of (op, class) whose
 * first series key is in [point of from, to): found in `latest`, not
 * through the chunks. A point's chunks may be built by records whose key
 * was destroyed since; a rebuild cannot read those records, never builds
 * the chunks, and must cut the point's latest row (built by later records)
 * all the same (invariant (1); test_erasure). A point at a window's edge
 * is visited by both windows' events: the second finds nothing older. */
static int cut_latest_range(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt, uint32_t *n)
{
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_LATEST), &c));
    if (rc) return rc;
    uint8_t k0[4];
    be32(k0, rt->from.len >= 4 ? get_be32(rt->from.data) : 0);
    MDB_val k = {sizeof k0, k0}, v;
    uint32_t *pts = NULL;
    size_t npts = 0, cap = 0;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    for (; r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4) {
            rc = SR_ECORRUPT;
            break;
        }
        uint32_t p = get_be32(k.mv_data);
        uint8_t sk[SR_SERIES_KEY_LEN];
        sr_series_key(sk, p, INT64_MIN);
        MDB_val skv = {sizeof sk, sk};
        if (!before_to(&skv, &rt->to)) break;
        pointinfo pi;
        if (sr__pointinfo_get(e, t, p, &pi) != SR_OK) continue;
        int mine = !strcmp(pi.op, ev->operator_id) && !strcmp(point_class(pi.m), rt->data_class);
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
        if (mine && sr_array_reserve(&pts, &cap, npts + 1, sizeof *pts)) rc = SR_ENOMEM;
        else if (mine) pts[npts++] = p;
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    for (size_t i = 0; !rc && i < npts; i++) rc = cut_latest(e, t, pts[i], rt->cut_ms, n); /* after the walk: it deletes */
    sr_free(pts);
    return rc;
}

/* The heads of the points of (op, class) whose first series key is in
 * [point of from, to), wholly past the cut: back to "never written"
 * (heads.c sr__heads_retire; invariant 2). Before the chunk walk: a short
 * tail the head kept (invariant 3) goes with them. heads_only: the replay
 * of a restart (t NULL: a read transaction of its own for the points). */
static int retire_heads_range(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt, int heads_only)
{
    MDB_txn *own = NULL;
    int rc = SR_OK;
    uint32_t p = rt->from.len >= 4 ? get_be32(rt->from.data) : 0;
    while (!rc && (p >> HPAGE_BITS) < HDIR) {
        head **page = e->hdir[p >> HPAGE_BITS];
        if (!page) {
            p = ((p >> HPAGE_BITS) + 1) << HPAGE_BITS;
            continue;
        }
        uint8_t sk[SR_SERIES_KEY_LEN];
        sr_series_key(sk, p, INT64_MIN);
        MDB_val skv = {sizeof sk, sk};
        if (!before_to(&skv, &rt->to)) break;
        head *h = page[p & (HPAGE - 1)];
        if (h && (h->n || h->nlate || h->first_seq || h->has_flushed)) {
            if (!t && !own && (rc = sr_index_read_begin(e->ix, &own))) break;
            pointinfo pi;
            if (sr__pointinfo_get(e, t ? t : own, p, &pi) == SR_OK) {
                int mine = !strcmp(pi.op, ev->operator_id) && !strcmp(point_class(pi.m), rt->data_class), done;
                suiro__v1__master_put__free_unpacked(pi.m, NULL);
                if (mine) rc = sr__heads_retire(e, t, h, rt->cut_ms, ev->seq, heads_only, &done);
            }
        }
        p++;
    }
    if (own) sr_index_read_end(e->ix, own);
    return rc;
}

/* A data point's class: the chunks of [from, to) of points of (op, class)
 * wholly older than cut, and their latest rows. The walk is the sweep's
 * (sweep_points): a point not of (op, class), or a chunk starting at or
 * after the cut, moves on to the next point. */
static int apply_points(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt)
{
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c));
    if (rc) return rc;
    keyset ks = {0};
    if ((rc = retire_heads_range(e, t, ev, rt, 0))) {
        mdb_cursor_close(c);
        return rc;
    }
    uint8_t start[SR_SERIES_KEY_LEN] = {0};
    MDB_val k = {rt->from.len ? rt->from.len : sizeof start, rt->from.len ? rt->from.data : start}, v;
    uint32_t cur = 0, n = 0;
    int have = 0, mine = 0;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (r == 0 && !rc && before_to(&k, &rt->to)) {
        if (k.mv_size != SR_SERIES_KEY_LEN) {
            rc = SR_ECORRUPT;
            break;
        }
        uint32_t p = get_be32(k.mv_data);
        if (!have || p != cur) {
            have = 1;
            cur = p;
            pointinfo pi;
            mine = 0;
            if (sr__pointinfo_get(e, t, p, &pi) == SR_OK) {
                mine = !strcmp(pi.op, ev->operator_id) && !strcmp(point_class(pi.m), rt->data_class);
                suiro__v1__master_put__free_unpacked(pi.m, NULL);
            }
        }
        int next_point = !mine;
        if (mine && !rc) {
            sr_chunk_info ci;
            if ((rc = sr_chunk_info_get(v.mv_data, v.mv_size, &ci))) break;
            if (ci.last_ts < rt->cut_ms) {
                head *h = head_find(e, p);
                if (!(h && h->tail_n && last_chunk(e, t, k.mv_data))) rc = ks_add(&ks, k.mv_data, k.mv_size);
            } else if (ci.first_ts >= rt->cut_ms) {
                next_point = 1;
            }
        }
        if (rc) break;
        if (next_point) {
            if (p == UINT32_MAX) break;
            uint8_t nk[SR_SERIES_KEY_LEN];
            sr_series_key(nk, p + 1, INT64_MIN);
            k = (MDB_val){sizeof nk, nk};
            r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        } else {
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    for (size_t i = 0; !rc && i < ks.nk; i++)
        if (!(rc = del(t, DB(e, SR_DB_SERIES), KS_KEY(&ks, i), KS_LEN(&ks, i)))) n++;
    ks_free(&ks);
    if (!rc) rc = cut_latest_range(e, t, ev, rt, &n);
    if (!rc) atomic_fetch_add(&e->st_ret_removed, n);
    return rc;
}

/* "audit": the operator's audit rows of [from, to) older than cut. */
static int apply_audit(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt)
{
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_AUDIT), &c));
    if (rc) return rc;
    keyset ks = {0};
    uint8_t start[SR_AUDIT_KEY] = {0};
    MDB_val k = {rt->from.len ? rt->from.len : sizeof start, rt->from.len ? rt->from.data : start}, v;
    uint32_t n = 0;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (r == 0 && !rc && before_to(&k, &rt->to)) {
        sr__audit_row a;
        if (audit_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &a)) {
            rc = SR_ECORRUPT;
            break;
        }
        if (a.ms >= rt->cut_ms) break; /* time order: the rest are newer */
        if (!strcmp(a.s[0], ev->operator_id)) rc = ks_add(&ks, k.mv_data, k.mv_size);
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    for (size_t i = 0; !rc && i < ks.nk; i++)
        if (!(rc = del(t, DB(e, SR_DB_AUDIT), KS_KEY(&ks, i), KS_LEN(&ks, i)))) n++;
    ks_free(&ks);
    if (!rc) atomic_fetch_add(&e->st_ret_removed, n);
    return rc;
}

/* "audit_state" (issue #16, docs/retention.md "Audit data"): the
 * operator's audit-class state that is only history, by the times its rows
 * hold: a resolved alarm resolved before the cut (its `A` row: a resolved
 * alarm has no open row), a session that expired before the cut (its
 * `sessions` row). Live state -- an open alarm, a session not expired, an
 * alive row, a done delivery above the notifier's mark -- is never cut: the
 * sweep restates it instead (sweep_restate). Both tables are small (one row
 * per alarm, per open session): one event per operator visits them whole. */
static int apply_audit_state(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt)
{
    keyset al = {0}, ss = {0};
    size_t ol = strlen(ev->operator_id);
    uint32_t n = 0;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_ALARMS), &c));
    if (rc) return rc;
    MDB_val k = {1, (void *)"A"}, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    for (; r == 0 && !rc && k.mv_size && *(const uint8_t *)k.mv_data == 'A'; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *p = v.mv_data, *z = memchr(p, 0, v.mv_size);
        if (!z) {
            rc = SR_ECORRUPT;
            break;
        }
        if ((size_t)(z - p) != ol || memcmp(p, ev->operator_id, ol)) continue;
        Suiro__V1__AlarmEvent *a = suiro__v1__alarm_event__unpack(NULL, v.mv_size - ol - 1, z + 1);
        if (!a) {
            rc = SR_ECORRUPT;
            break;
        }
        if (!strcmp(a->state, "resolved") && a->resolved_ms < rt->cut_ms) rc = ks_add(&al, k.mv_data, k.mv_size);
        suiro__v1__alarm_event__free_unpacked(a, NULL);
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (!rc && !(rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SESSIONS), &c)))) {
        for (r = mdb_cursor_get(c, &k, &v, MDB_FIRST); r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            sr__sess se;
            if (sess_decode(v.mv_data, v.mv_size, &se)) continue; /* not ours to judge: kept */
            if (se.opl == ol && !memcmp(se.op, ev->operator_id, ol) && se.expires_ms < rt->cut_ms)
                rc = ks_add(&ss, k.mv_data, k.mv_size);
        }
        mdb_cursor_close(c);
        if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    for (size_t i = 0; !rc && i < al.nk; i++)
        if (!(rc = del(t, DB(e, SR_DB_ALARMS), KS_KEY(&al, i), KS_LEN(&al, i)))) n++;
    for (size_t i = 0; !rc && i < ss.nk; i++)
        if (!(rc = del(t, DB(e, SR_DB_SESSIONS), KS_KEY(&ss, i), KS_LEN(&ss, i)))) n++;
    ks_free(&al);
    ks_free(&ss);
    if (!rc) atomic_fetch_add(&e->st_ret_removed, n);
    return rc;
}

/* "message_ids": the operator's message ids of events before below_seq:
 * whole keys of a lower seq_hi (when from is empty: the first event of a
 * sweep's pass over the operator), and in the key of below_seq's seq_hi the
 * items of [from, to) whose low 32 bits are below below_seq's. */
static int apply_msgids(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt)
{
    uint32_t hi = (uint32_t)(rt->below_seq >> 32), lo = (uint32_t)rt->below_seq, n = 0;
    uint8_t key[300];
    size_t ol = strlen(ev->operator_id);
    if (ol + 5 > sizeof key) return SR_OK;
    memcpy(key, ev->operator_id, ol);
    key[ol] = 0;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_MSGIDS), &c));
    if (rc) return rc;
    keyset whole = {0}, items = {0};
    MDB_val k, v;
    int r;
    if (!rt->from.len) { /* the operator's keys of a lower seq_hi: one per 2^32 events, few */
        be32(key + ol + 1, 0);
        k = (MDB_val){ol + 5, key};
        r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        while (r == 0 && !rc && k.mv_size == ol + 5 && !memcmp(k.mv_data, key, ol + 1) &&
               get_be32((uint8_t *)k.mv_data + ol + 1) < hi) {
            size_t cnt = 0;
            mdb_cursor_count(c, &cnt);
            n += (uint32_t)cnt;
            rc = ks_add(&whole, k.mv_data, k.mv_size);
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
        }
    }
    be32(key + ol + 1, hi);
    k = (MDB_val){ol + 5, key};
    uint8_t zero[MSGID_ITEM] = {0};
    v = (MDB_val){MSGID_ITEM, zero};
    if (rt->from.len == MSGID_ITEM) v.mv_data = rt->from.data;
    r = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE);
    while (r == 0 && !rc && before_to(&v, &rt->to)) {
        if (v.mv_size == MSGID_ITEM && get_be32((uint8_t *)v.mv_data + 8) < lo) rc = ks_add(&items, v.mv_data, v.mv_size);
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    for (size_t i = 0; !rc && i < whole.nk; i++) rc = del(t, DB(e, SR_DB_MSGIDS), KS_KEY(&whole, i), KS_LEN(&whole, i));
    for (size_t i = 0; !rc && i < items.nk; i++) {
        MDB_val K = {ol + 5, key}, V = {KS_LEN(&items, i), KS_KEY(&items, i)};
        rc = sr_index_err(mdb_del(t, DB(e, SR_DB_MSGIDS), &K, &V));
        n++;
    }
    ks_free(&whole);
    ks_free(&items);
    if (!rc) atomic_fetch_add(&e->st_ret_removed, n);
    return rc;
}

/* A record class's group: the rows cut together. A request is all its
 * rows (op \0 request \0 ...: its 'c' and 's' rows of every gateway's
 * part), any other row is its own. The group's key prefix length, or 0
 * for a key that is not of the layout. */
static size_t group_len(sr_dbi db, const MDB_val *k)
{
    const uint8_t *p = k->mv_data, *z = memchr(p, 0, k->mv_size);
    if (!z) return 0;
    if (db != SR_DB_REQUESTS) return k->mv_size;
    const uint8_t *z2 = memchr(z + 1, 0, k->mv_size - (size_t)(z + 1 - p));
    return z2 ? (size_t)(z2 + 1 - p) : 0;
}

/* A request's row is finished: its transition is a final state. */
static int request_final(int st)
{
    return st == SUIRO__V1__REQUEST_STATE__RS_SUCCEEDED || st == SUIRO__V1__REQUEST_STATE__RS_FAILED ||
           st == SUIRO__V1__REQUEST_STATE__RS_TIMED_OUT || st == SUIRO__V1__REQUEST_STATE__RS_CANCELLED;
}

/* What a file row names: its blob (sha256, key id). */
typedef struct blobref {
    uint8_t sha[32];
    uint32_t kid;
    int named; /* sweep_blobs: a remaining file row names it */
} blobref;

/* The group at the cursor (k, v: its first row; c on it): whether it is cut
 * at cut -- every row last written before cut, and: a document or a file
 * (its FilePut) nothing more; a monitor stopped (MS_STOPPED); a request
 * finished (each 'c' row followed by its 's' row, every 's' row a final
 * state: a pending or running request is never cut). Its rows' keys go to
 * ks when ks is given and it is cut; a cut file's blob to *blob when
 * given. Leaves the cursor past the group (*r: its LMDB code). SR_OK or an
 * error (a row that does not decode: SR_ECORRUPT). */
static int group_cut(sr_dbi db, MDB_cursor *c, MDB_val *k, MDB_val *v, int *r, int64_t cut, int *is_cut, keyset *ks,
                     blobref *blob)
{
    size_t gl = group_len(db, k);
    if (!gl) return SR_ECORRUPT;
    uint8_t g[RET_KEY_MAX];
    if (gl > sizeof g) return SR_ECORRUPT;
    memcpy(g, k->mv_data, gl);
    int cutit = 1, open_c = 0, rc = SR_OK;
    size_t first = ks ? ks->nk : 0;
    uint8_t ck[RET_KEY_MAX]; /* the open 'c' row's key but its tag */
    size_t ckl = 0;
    while (*r == 0 && k->mv_size >= gl && !memcmp(k->mv_data, g, gl) && (db == SR_DB_REQUESTS || k->mv_size == gl)) {
        sr__wtimes w;
        const void *p = v->mv_data;
        size_t n = v->mv_size;
        if (wtimes_strip(&p, &n, &w)) return SR_ECORRUPT;
        if (w.last_ms >= cut) cutit = 0;
        if (db == SR_DB_MONITORS && cutit) {
            Suiro__V1__MonitorEvent *m = suiro__v1__monitor_event__unpack(NULL, n, p);
            if (!m) return SR_ECORRUPT;
            if (m->state != SUIRO__V1__MONITOR_STATE__MS_STOPPED) cutit = 0;
            suiro__v1__monitor_event__free_unpacked(m, NULL);
        } else if (db == SR_DB_FILES && cutit && blob) {
            Suiro__V1__FilePut *fp = suiro__v1__file_put__unpack(NULL, n, p);
            if (!fp) return SR_ECORRUPT;
            memset(blob, 0, sizeof *blob);
            if (fp->sha256.len == 32) memcpy(blob->sha, fp->sha256.data, 32);
            blob->kid = fp->key_id;
            suiro__v1__file_put__free_unpacked(fp, NULL);
        } else if (db == SR_DB_REQUESTS && cutit) {
            const uint8_t *kb = k->mv_data;
            if (k->mv_size < gl + 2 || kb[k->mv_size - 2] != 0) return SR_ECORRUPT;
            char tag = (char)kb[k->mv_size - 1];
            size_t pl = k->mv_size - 1; /* ... gateway \0 */
            if (tag == 'c') {
                if (open_c) cutit = 0; /* the previous part has no transition */
                open_c = 1;
                ckl = pl <= sizeof ck ? pl : 0;
                if (ckl) memcpy(ck, kb, pl);
            } else if (tag == 's') {
                if (open_c && (ckl != pl || memcmp(ck, kb, pl))) cutit = 0;
                open_c = 0;
                Suiro__V1__RequestTransition *rt = suiro__v1__request_transition__unpack(NULL, n, p);
                if (!rt) return SR_ECORRUPT;
                if (!request_final(rt->state)) cutit = 0;
                suiro__v1__request_transition__free_unpacked(rt, NULL);
            }
        }
        if (ks && (rc = ks_add(ks, k->mv_data, k->mv_size))) return rc;
        *r = mdb_cursor_get(c, k, v, MDB_NEXT);
    }
    if (open_c) cutit = 0;
    if (!cutit && ks) { /* not cut: its keys leave the set */
        ks->n = ks->nk > first ? ks->off[first] : ks->n;
        ks->nk = first;
    }
    *is_cut = cutit;
    return SR_OK;
}

/* A record class ("documents", "files", "requests", "monitors"): the
 * operator's groups starting in [from, to) cut at the event's cut
 * (group_cut). A file's blob is not touched here: the sweep removes it
 * after the commit (sweep_blobs). */
static int apply_records(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__Retention *rt, sr_dbi db)
{
    uint8_t pre[RET_KEY_MAX];
    size_t pl = strlen(ev->operator_id) + 1;
    if (pl > sizeof pre) return SR_OK;
    memcpy(pre, ev->operator_id, pl); /* op \0 */
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, db), &c));
    if (rc) return rc;
    keyset ks = {0};
    MDB_val k = {pl, pre}, v; /* from, or the operator's first key when from is before it */
    if (rt->from.len && before_to(&k, &rt->from)) k = (MDB_val){rt->from.len, rt->from.data};
    uint32_t n = 0;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (r == 0 && !rc && k.mv_size >= pl && !memcmp(k.mv_data, pre, pl) && before_to(&k, &rt->to)) {
        int cutit = 0;
        size_t before = ks.nk;
        rc = group_cut(db, c, &k, &v, &r, rt->cut_ms, &cutit, &ks, NULL);
        if (!rc && cutit && ks.nk > before) n++;
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    for (size_t i = 0; !rc && i < ks.nk; i++) rc = del(t, DB(e, db), KS_KEY(&ks, i), KS_LEN(&ks, i));
    ks_free(&ks);
    if (!rc) atomic_fetch_add(&e->st_ret_removed, n);
    return rc;
}

int sr__retention_apply(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only)
{
    if (ev->body_case != SUIRO__V1__EVENT__BODY_RETENTION || !ev->retention) return SR_OK;
    const Suiro__V1__Retention *rt = ev->retention;
    if (!rt->data_class) return SR_OK;
    if (heads_only) /* a restart's replay: the heads it rebuilds are cut as the writer cut them */
        return reserved_class(rt->data_class) || rec_class_of(rt->data_class) ? SR_OK
                                                                             : retire_heads_range(e, NULL, ev, rt, 1);
    if (!strcmp(rt->data_class, CL_AUDIT)) return apply_audit(e, t, ev, rt);
    if (!strcmp(rt->data_class, CL_MSGIDS)) return apply_msgids(e, t, ev, rt);
    if (!strcmp(rt->data_class, CL_AUDIT_STATE)) return apply_audit_state(e, t, ev, rt);
    const rec_class *rcl = rec_class_of(rt->data_class);
    if (rcl) return apply_records(e, t, ev, rt, rcl->db);
    return apply_points(e, t, ev, rt);
}

/* ---- the sweep ----------------------------------------------------------- */

/* the periods read once per sweep: (op, class) -> days */
typedef struct period {
    char op[72], cls[72];
    uint32_t days;
} period;

typedef struct sweep {
    sr_engine *e;
    MDB_txn *t;
    const sr_retention_cfg *cfg;
    int64_t now;
    const char *actor;
    int actor_kind;
    period *p;
    size_t np, capp;
    sr_retention_report *rep;
    blobref *blobs; /* the blobs of the files the sweep cuts (sweep_blobs) */
    size_t nb, capb;
    /* in flight */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t inflight;
    int err;
    sr_errinfo einfo;
} sweep;

/* The period of (op, cls) in days (0: kept for ever): the operator's
 * RG_RETENTION entry of the class, else (a data class) its "default"
 * entry, else the configured default. */
static uint32_t period_of(sweep *s, const char *op, const char *cls)
{
    for (size_t i = 0; i < s->np; i++)
        if (!strcmp(s->p[i].op, op) && !strcmp(s->p[i].cls, cls)) return s->p[i].days;
    uint32_t days = !strcmp(cls, CL_AUDIT) ? s->cfg->audit_days : s->cfg->default_days;
    const char *tries[2] = {cls, strcmp(cls, CL_AUDIT) ? CL_DEFAULT : NULL};
    const char kind[2] = {(char)('0' + SUIRO__V1__REGISTRY_KIND__RG_RETENTION), 0};
    for (int i = 0; i < 2 && tries[i]; i++) {
        uint8_t k[300];
        size_t kl = mkkey(k, sizeof k, op, kind, tries[i]);
        MDB_val v;
        if (!kl || get(s->t, DB(s->e, SR_DB_REGISTRY), k, kl, &v)) continue;
        Suiro__V1__RegistryPut *rp = suiro__v1__registry_put__unpack(NULL, v.mv_size, v.mv_data);
        if (!rp) continue;
        days = rp->retention_days;
        suiro__v1__registry_put__free_unpacked(rp, NULL);
        break;
    }
    if (strlen(op) < sizeof s->p->op && strlen(cls) < sizeof s->p->cls &&
        !sr_array_reserve(&s->p, &s->capp, s->np + 1, sizeof *s->p)) {
        period *q = &s->p[s->np++];
        strcpy(q->op, op);
        strcpy(q->cls, cls);
        q->days = days;
    }
    return days;
}

static int64_t cut_of(const sweep *s, uint32_t days) { return s->now - (int64_t)days * RET_DAY_MS; }

static void sweep_done(void *ctx, const sr_result *res)
{
    sweep *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (res->rc && !s->err) {
        s->err = res->rc;
        s->einfo = res->err;
    }
    s->inflight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

enum { SWEEP_INFLIGHT = 8 };

static int submit_ev(sweep *s, Event *ev, sr_engine_cb done);

/* Append one Retention event (a command of its own), with at most
 * SWEEP_INFLIGHT in flight; a full queue is waited out. */
static int emit(sweep *s, const char *op, const char *cls, int64_t cut, uint32_t days, const void *from, size_t fl,
                const void *to, size_t tl, uint64_t below, uint32_t removed)
{
    Suiro__V1__Retention rt = SUIRO__V1__RETENTION__INIT;
    Event ev = SUIRO__V1__EVENT__INIT;
    rt.data_class = (char *)cls;
    rt.cut_ms = cut;
    rt.from = (ProtobufCBinaryData){fl, (uint8_t *)from};
    rt.to = (ProtobufCBinaryData){tl, (uint8_t *)to};
    rt.below_seq = below;
    rt.days = days;
    rt.removed = removed;
    ev.operator_id = (char *)op;
    ev.actor = (char *)s->actor;
    ev.actor_kind = (Suiro__V1__ActorKind)s->actor_kind;
    ev.source = (char *)(s->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? "retention" : "admin");
    ev.body_case = SUIRO__V1__EVENT__BODY_RETENTION;
    ev.retention = &rt;
    int rc = submit_ev(s, &ev, sweep_done);
    if (rc == SR_OK) s->rep->events++;
    return rc;
}

/* Append one event of the sweep (a command of its own; done: its
 * callback), with at most SWEEP_INFLIGHT in flight; a full queue is waited
 * out. */
static int submit_ev(sweep *s, Event *ev, sr_engine_cb done)
{
    size_t n = protobuf_c_message_get_packed_size(&ev->base);
    uint8_t *b = sr_malloc(n);
    if (!b) return SR_ENOMEM;
    protobuf_c_message_pack(&ev->base, b);
    sr_slice sl = {b, n};
    int rc;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->inflight >= SWEEP_INFLIGHT) pthread_cond_wait(&s->cv, &s->mu);
        if (s->err) {
            rc = s->err;
            break;
        }
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        rc = sr_engine_submit(s->e, &sl, 1, done, s);
        pthread_mutex_lock(&s->mu);
        if (rc == SR_OK) break;
        s->inflight--;
        if (rc != SR_EFULL || !s->inflight) break; /* a full queue with nothing of ours in it: give up */
        pthread_cond_wait(&s->cv, &s->mu);         /* one of ours finished: the queue moved */
    }
    pthread_mutex_unlock(&s->mu);
    sr_free(b); /* the engine copied it */
    return rc;
}

/* A data class's walk over `series`: windows of about cfg->batch steps
 * (keys read and seeks); in each window one event per (operator, class)
 * with something past its period, over the window's range. */
typedef struct win_item {
    char op[72], cls[72];
    int64_t cut;
    uint32_t days, n;
} win_item;

static int flush_window(sweep *s, win_item *w, size_t *nw, const uint8_t *from, size_t fl, const uint8_t *to,
                        size_t tl)
{
    int rc = SR_OK;
    for (size_t i = 0; i < *nw && !rc; i++)
        if (w[i].n) rc = emit(s, w[i].op, w[i].cls, w[i].cut, w[i].days, from, fl, to, tl, 0, w[i].n);
    *nw = 0;
    return rc;
}

/* At a window's end: a fresh read transaction, so that LMDB may reuse the
 * pages the sweep's events (and the ingest meanwhile) freed, with the cursor
 * on db's first key >= k (k's bytes are copied first). The windows' ranges
 * do not overlap, so what the events before it change is behind k. The
 * LMDB code of the positioning (MDB_NOTFOUND: nothing more), or -1 (rc set)
 * when the transaction cannot be had. */
static int renew(sweep *s, MDB_cursor **c, sr_dbi db, MDB_val *k, MDB_val *v, uint8_t *save, int *rc)
{
    size_t kl = k->mv_size;
    memcpy(save, k->mv_data, kl);
    mdb_cursor_close(*c);
    *c = NULL;
    sr_index_read_end(s->e->ix, s->t);
    s->t = NULL;
    if ((*rc = sr_index_read_begin(s->e->ix, &s->t))) return s->t = NULL, -1;
    if ((*rc = sr_index_err(mdb_cursor_open(s->t, DB(s->e, db), c)))) return *c = NULL, -1;
    *k = (MDB_val){kl, save};
    return mdb_cursor_get(*c, k, v, MDB_SET_RANGE);
}

static int sweep_points(sweep *s)
{
    sr_engine *e = s->e;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(s->t, DB(e, SR_DB_SERIES), &c));
    if (rc) return rc;
    win_item *w = NULL;
    size_t nw = 0, capw = 0;
    uint8_t from[SR_SERIES_KEY_LEN];
    size_t fl = 0; /* the window's start (0: the beginning) */
    uint32_t steps = 0, cur = 0, batch = s->cfg->batch ? s->cfg->batch : 256;
    int have = 0;
    int64_t cut = 0;
    uint32_t days = 0;
    win_item *it = NULL;
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    uint8_t save[SR_SERIES_KEY_LEN];
    while (r == 0 && !rc) {
        if (k.mv_size != SR_SERIES_KEY_LEN) {
            rc = SR_ECORRUPT;
            break;
        }
        if (steps >= batch) { /* the window ends before this key */
            if ((rc = flush_window(s, w, &nw, from, fl, k.mv_data, k.mv_size))) break;
            if ((r = renew(s, &c, SR_DB_SERIES, &k, &v, save, &rc))) break;
            if (k.mv_size != SR_SERIES_KEY_LEN) {
                rc = SR_ECORRUPT;
                break;
            }
            memcpy(from, k.mv_data, SR_SERIES_KEY_LEN);
            fl = SR_SERIES_KEY_LEN;
            steps = 0;
            have = 0; /* the window's item of the point is looked up again */
        }
        uint32_t p = get_be32(k.mv_data);
        steps++;
        if (!have || p != cur) {
            have = 1;
            cur = p;
            it = NULL;
            days = 0;
            pointinfo pi;
            if (sr__pointinfo_get(e, s->t, p, &pi) == SR_OK) {
                const char *cls = point_class(pi.m);
                days = period_of(s, pi.op, cls);
                if (days) {
                    cut = cut_of(s, days);
                    for (size_t i = 0; i < nw && !it; i++)
                        if (!strcmp(w[i].op, pi.op) && !strcmp(w[i].cls, cls)) it = &w[i];
                    if (!it && strlen(cls) < sizeof w->cls) {
                        if (sr_array_reserve(&w, &capw, nw + 1, sizeof *w)) rc = SR_ENOMEM;
                        else {
                            it = &w[nw++];
                            memset(it, 0, sizeof *it);
                            snprintf(it->op, sizeof it->op, "%s", pi.op);
                            snprintf(it->cls, sizeof it->cls, "%s", cls);
                            it->cut = cut;
                            it->days = days;
                        }
                    }
                }
                suiro__v1__master_put__free_unpacked(pi.m, NULL);
                if (rc) break;
            }
        }
        int next_point = !it;
        if (it) {
            sr_chunk_info ci;
            if ((rc = sr_chunk_info_get(v.mv_data, v.mv_size, &ci))) break;
            if (ci.last_ts < cut) {
                it->n++;
                s->rep->chunks++;
            } else if (ci.first_ts >= cut) next_point = 1;
        }
        if (next_point) {
            if (p == UINT32_MAX) break;
            uint8_t nk[SR_SERIES_KEY_LEN];
            sr_series_key(nk, p + 1, INT64_MIN);
            k = (MDB_val){sizeof nk, nk};
            r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        } else {
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
    }
    if (c) mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (!rc) rc = flush_window(s, w, &nw, from, fl, NULL, 0);
    sr_free(w);
    return rc;
}

/* A record class's walk over its database: windows of about cfg->batch
 * groups (group_cut), each window's bounds a group's key prefix (a request
 * is never split between two events); in each window one event per
 * operator with something to cut, over the window's range. An operator
 * whose class is kept for ever is skipped with one seek. */
static int sweep_records(sweep *s, const rec_class *rcl)
{
    sr_engine *e = s->e;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(s->t, DB(e, rcl->db), &c));
    if (rc) return rc;
    win_item *w = NULL;
    size_t nw = 0, capw = 0, fl = 0;
    uint8_t from[RET_KEY_MAX], save[RET_KEY_MAX];
    uint32_t steps = 0, batch = s->cfg->batch ? s->cfg->batch : 256;
    uint64_t *count = rcl->db == SR_DB_DOCS    ? &s->rep->documents
                      : rcl->db == SR_DB_FILES ? &s->rep->files
                      : rcl->db == SR_DB_REQUESTS ? &s->rep->requests
                                                  : &s->rep->monitors;
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (r == 0 && !rc) {
        size_t gl = group_len(rcl->db, &k);
        if (!gl || gl > RET_KEY_MAX) {
            rc = SR_ECORRUPT;
            break;
        }
        if (steps >= batch) { /* the window ends before this group */
            uint8_t bound[RET_KEY_MAX];
            memcpy(bound, k.mv_data, gl);
            if ((rc = flush_window(s, w, &nw, from, fl, bound, gl))) break;
            k = (MDB_val){gl, bound};
            if ((r = renew(s, &c, rcl->db, &k, &v, save, &rc))) break;
            memcpy(from, bound, gl);
            fl = gl;
            steps = 0;
            continue; /* the group at the cursor, looked at again */
        }
        steps++;
        const uint8_t *z = memchr(k.mv_data, 0, k.mv_size);
        size_t ol = (size_t)(z - (const uint8_t *)k.mv_data);
        char op[sizeof w->op];
        uint32_t days = 0;
        if (ol < sizeof op) {
            memcpy(op, k.mv_data, ol);
            op[ol] = 0;
            days = period_of(s, op, rcl->name);
        }
        if (!days) { /* kept for ever (or an id too long for a period): the operator's next key */
            uint8_t nk[RET_KEY_MAX];
            if (ol + 1 > sizeof nk) {
                rc = SR_ECORRUPT;
                break;
            }
            memcpy(nk, k.mv_data, ol);
            nk[ol] = 1; /* past op \0 ... */
            k = (MDB_val){ol + 1, nk};
            r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            continue;
        }
        int64_t cut = cut_of(s, days);
        blobref b;
        int cutit = 0;
        if ((rc = group_cut(rcl->db, c, &k, &v, &r, cut, &cutit, NULL, rcl->db == SR_DB_FILES ? &b : NULL))) break;
        if (!cutit) continue;
        win_item *it = NULL;
        for (size_t i = 0; i < nw && !it; i++)
            if (!strcmp(w[i].op, op)) it = &w[i];
        if (!it) {
            if (sr_array_reserve(&w, &capw, nw + 1, sizeof *w)) {
                rc = SR_ENOMEM;
                break;
            }
            it = &w[nw++];
            memset(it, 0, sizeof *it);
            snprintf(it->op, sizeof it->op, "%s", op);
            snprintf(it->cls, sizeof it->cls, "%s", rcl->name);
            it->cut = cut;
            it->days = days;
        }
        it->n++;
        (*count)++;
        if (rcl->db == SR_DB_FILES) {
            if (sr_array_reserve(&s->blobs, &s->capb, s->nb + 1, sizeof *s->blobs)) rc = SR_ENOMEM;
            else s->blobs[s->nb++] = b;
        }
    }
    if (c) mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (!rc) rc = flush_window(s, w, &nw, from, fl, NULL, 0);
    sr_free(w);
    return rc;
}

static int blobref_cmp(const void *a, const void *b)
{
    const blobref *x = a, *y = b;
    int c = memcmp(x->sha, y->sha, 32);
    return c ? c : x->kid < y->kid ? -1 : x->kid > y->kid;
}

/* Once the sweep's Retention events are durable and applied: the blobs of
 * the files they cut that no remaining file row names (a file row of any
 * operator naming the same <sha256>.<key id>) leave the blob store
 * (sr_blob_delete_keyed). A crash before leaves the blob (docs/retention.md
 * "Files and their blobs"). */
static int sweep_blobs(sweep *s)
{
    sr_engine *e = s->e;
    if (!s->nb || !e->blobs) return SR_OK;
    qsort(s->blobs, s->nb, sizeof *s->blobs, blobref_cmp);
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if (!(rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_FILES), &c)))) {
        MDB_val k, v;
        int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        for (; r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            sr__wtimes w;
            const void *p = v.mv_data;
            size_t n = v.mv_size;
            Suiro__V1__FilePut *fp = wtimes_strip(&p, &n, &w) ? NULL : suiro__v1__file_put__unpack(NULL, n, p);
            if (!fp) {
                rc = SR_ECORRUPT;
                break;
            }
            blobref key = {.kid = fp->key_id};
            if (fp->sha256.len == 32) memcpy(key.sha, fp->sha256.data, 32);
            suiro__v1__file_put__free_unpacked(fp, NULL);
            blobref *hit = bsearch(&key, s->blobs, s->nb, sizeof *s->blobs, blobref_cmp);
            for (blobref *q = hit; q && q >= s->blobs && !blobref_cmp(q, &key); q--) q->named = 1;
            for (blobref *q = hit; q && q < s->blobs + s->nb && !blobref_cmp(q, &key); q++) q->named = 1;
        }
        if (!rc && r != MDB_NOTFOUND) rc = sr_index_err(r);
        mdb_cursor_close(c);
    }
    sr_index_read_end(e->ix, t);
    for (size_t i = 0; !rc && i < s->nb; i++) {
        if (s->blobs[i].named || (i && !blobref_cmp(&s->blobs[i], &s->blobs[i - 1]))) continue;
        int d = sr_blob_delete_keyed(e->blobs, s->blobs[i].sha, s->blobs[i].kid);
        if (d == SR_OK) s->rep->blobs++;
        else if (d != SR_ENOTFOUND) rc = d;
    }
    return rc;
}

/* The newest audit cut of any operator: the shortest audit period of the
 * RG_RETENTION entries (every operator's) and the default. */
static int64_t newest_audit_cut(sweep *s)
{
    uint32_t min = s->cfg->audit_days;
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, SR_DB_REGISTRY), &c)) return INT64_MAX;
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; r == 0; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *z = memchr(k.mv_data, 0, k.mv_size);
        size_t rest = z ? k.mv_size - (size_t)(z + 1 - (const uint8_t *)k.mv_data) : 0;
        if (rest != 7 || z[1] != '0' + SUIRO__V1__REGISTRY_KIND__RG_RETENTION || memcmp(z + 2, "\0audit", 6)) continue;
        Suiro__V1__RegistryPut *rp = suiro__v1__registry_put__unpack(NULL, v.mv_size, v.mv_data);
        if (rp && rp->retention_days && (!min || rp->retention_days < min)) min = rp->retention_days;
        if (rp) suiro__v1__registry_put__free_unpacked(rp, NULL);
    }
    mdb_cursor_close(c);
    return min ? cut_of(s, min) : INT64_MIN;
}

/* "audit": windows of cfg->batch rows from the oldest, up to the newest
 * cut; one event per operator with rows past its audit period. */
static int sweep_audit(sweep *s)
{
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(s->t, DB(s->e, SR_DB_AUDIT), &c));
    if (rc) return rc;
    win_item *w = NULL;
    size_t nw = 0, capw = 0;
    uint8_t from[SR_AUDIT_KEY];
    size_t fl = 0;
    uint32_t steps = 0, batch = s->cfg->batch ? s->cfg->batch : 256;
    int64_t newest = newest_audit_cut(s); /* the walk's end */
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    uint8_t save[SR_AUDIT_KEY];
    while (r == 0 && !rc) {
        if (steps >= batch) {
            if (k.mv_size != SR_AUDIT_KEY) {
                rc = SR_ECORRUPT;
                break;
            }
            if ((rc = flush_window(s, w, &nw, from, fl, k.mv_data, k.mv_size))) break;
            if ((r = renew(s, &c, SR_DB_AUDIT, &k, &v, save, &rc))) break;
            memcpy(from, k.mv_data, SR_AUDIT_KEY);
            fl = SR_AUDIT_KEY;
            steps = 0;
        }
        sr__audit_row a;
        if (audit_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &a)) {
            rc = SR_ECORRUPT;
            break;
        }
        steps++;
        uint32_t days = period_of(s, a.s[0], CL_AUDIT);
        int64_t cut = days ? cut_of(s, days) : INT64_MIN;
        if (days && a.ms < cut) {
            win_item *it = NULL;
            for (size_t i = 0; i < nw && !it; i++)
                if (!strcmp(w[i].op, a.s[0])) it = &w[i];
            if (!it && strlen(a.s[0]) < sizeof w->op) {
                if (sr_array_reserve(&w, &capw, nw + 1, sizeof *w)) {
                    rc = SR_ENOMEM;
                    break;
                }
                it = &w[nw++];
                memset(it, 0, sizeof *it);
                snprintf(it->op, sizeof it->op, "%s", a.s[0]);
                snprintf(it->cls, sizeof it->cls, "%s", CL_AUDIT);
                it->cut = cut;
                it->days = days;
            }
            if (it) {
                it->n++;
                s->rep->audit++;
            }
        } else if (a.ms >= newest) {
            break; /* past every operator's cut */
        }
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (c) mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (!rc) rc = flush_window(s, w, &nw, from, fl, k.mv_data, r == 0 ? k.mv_size : 0);
    sr_free(w);
    return rc;
}

/* The seq before which every event was ingested before ms: the seq after
 * the newest audit row older than ms (0: none). Conservative: an event
 * between that row and ms is kept (docs/retention.md). */
static uint64_t seq_before(sweep *s, int64_t ms)
{
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, SR_DB_AUDIT), &c)) return 0;
    uint8_t k0[SR_AUDIT_KEY];
    audit_key(k0, ms, 0);
    MDB_val k = {sizeof k0, k0}, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    r = r == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    uint64_t seq = 0;
    if (r == 0 && k.mv_size == SR_AUDIT_KEY && (int64_t)(get_be64(k.mv_data) ^ (1ull << 63)) < ms)
        seq = get_be64((uint8_t *)k.mv_data + 8) + 1;
    mdb_cursor_close(c);
    return seq;
}

static int msgid_pass(sweep *s, uint64_t below);

/* "message_ids": per operator key, the whole keys of a lower seq_hi, then
 * the items of below's key in windows of cfg->batch. */
static int sweep_msgids(sweep *s)
{
    if (!s->cfg->message_id_window_s) return SR_OK;
    uint64_t below = seq_before(s, s->now - (int64_t)s->cfg->message_id_window_s * 1000);
    uint64_t before = s->rep->events;
    int rc = below ? msgid_pass(s, below) : SR_OK;
    /* at least one event per sweep: its audit row is the time mark the next
     * sweeps find their below_seq by (seq_before) */
    if (!rc && s->rep->events == before) rc = emit(s, "", CL_MSGIDS, 0, 0, NULL, 0, NULL, 0, below, 0);
    return rc;
}

static int msgid_pass(sweep *s, uint64_t below)
{
    uint32_t hi = (uint32_t)(below >> 32), lo = (uint32_t)below, batch = s->cfg->batch ? s->cfg->batch : 256;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(s->t, DB(s->e, SR_DB_MSGIDS), &c));
    if (rc) return rc;
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    char op[300];
    int lower = 0; /* the operator's lower keys wait for its key of `hi`'s first event */
    while (r == 0 && !rc) {
        const uint8_t *z = k.mv_size >= 5 ? memchr(k.mv_data, 0, k.mv_size) : NULL;
        if (!z || (size_t)(z - (const uint8_t *)k.mv_data) + 5 != k.mv_size) {
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
            continue;
        }
        size_t ol = (size_t)(z - (const uint8_t *)k.mv_data);
        memcpy(op, k.mv_data, ol);
        op[ol] = 0;
        uint32_t khi = get_be32(z + 1);
        uint32_t n = 0;
        if (khi < hi) { /* whole keys: counted, deleted by the operator's first event */
            size_t cnt = 0;
            mdb_cursor_count(c, &cnt);
            n = (uint32_t)cnt;
            s->rep->msgids += n;
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
            /* a lower key of the same operator comes next, or its key of `hi`,
             * whose first event (from empty) deletes these too: else one
             * event for them now */
            if (r == 0 && k.mv_size == ol + 5 && !memcmp(k.mv_data, op, ol + 1) &&
                get_be32((const uint8_t *)k.mv_data + ol + 1) <= hi) {
                lower = 1;
                continue;
            }
            lower = 0;
            rc = emit(s, op, CL_MSGIDS, 0, 0, NULL, 0, NULL, 0, below, n);
            continue;
        }
        if (khi > hi) {
            lower = 0;
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
            continue;
        }
        /* below's key: windows of items; the first window (from empty) also
         * deletes the lower keys */
        uint8_t wfrom[MSGID_ITEM];
        size_t wfl = 0;
        uint32_t steps = 0;
        n = 0;
        int rr = mdb_cursor_get(c, &k, &v, MDB_FIRST_DUP);
        while (rr == 0 && !rc) {
            if (steps >= batch) {
                if (n || (!wfl && lower)) rc = emit(s, op, CL_MSGIDS, 0, 0, wfrom, wfl, v.mv_data, v.mv_size, below, n);
                lower = 0;
                memcpy(wfrom, v.mv_data, MSGID_ITEM);
                wfl = MSGID_ITEM;
                steps = n = 0;
                if (rc) break;
            }
            steps++;
            if (v.mv_size == MSGID_ITEM && get_be32((uint8_t *)v.mv_data + 8) < lo) {
                n++;
                s->rep->msgids++;
            }
            rr = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
        }
        if (!rc && (n || (!wfl && lower))) rc = emit(s, op, CL_MSGIDS, 0, 0, wfrom, wfl, NULL, 0, below, n);
        lower = 0;
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(c);
    return rc;
}

/* ---- the log's erasure: destroying data keys ----------------------------- */

/* 1 if a record class's database (docs, files, requests, monitors) holds
 * a row of op first written at or before end (its wtimes' first_ms: the
 * record that created it may be sealed by a key of an epoch ending at end;
 * docs/keys.md "Retention and erasure"). A row that does not decode holds. */
static int op_rows_created_by(sweep *s, sr_dbi db, const char *op, int64_t end)
{
    uint8_t k[300];
    size_t ol = strlen(op);
    if (ol + 1 > sizeof k) return 1;
    memcpy(k, op, ol);
    k[ol] = 0;
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, db), &c)) return 1;
    MDB_val K = {ol + 1, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE), held = 0;
    for (; r == 0 && !held && K.mv_size >= ol + 1 && !memcmp(K.mv_data, k, ol + 1);
         r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        sr__wtimes w;
        const void *p = V.mv_data;
        size_t n = V.mv_size;
        held = wtimes_strip(&p, &n, &w) || w.first_ms <= end;
    }
    mdb_cursor_close(c);
    return held || (r != 0 && r != MDB_NOTFOUND);
}

/* The longest period of op's data classes in days: its "default" (else
 * [retention] default_days) and every RG_RETENTION entry of op but audit's;
 * 0 if one of them keeps for ever. A data point's class without an entry
 * falls back to "default", so these are all the periods op's values have. */
static uint32_t longest_data_period(sweep *s, const char *op)
{
    uint32_t longest = period_of(s, op, CL_DEFAULT);
    if (!longest) return 0;
    uint8_t k[300];
    const char kind[2] = {(char)('0' + SUIRO__V1__REGISTRY_KIND__RG_RETENTION), 0};
    size_t kl = mkkey(k, sizeof k, op, kind, "");
    if (!kl) return 0;
    kl--; /* the prefix op \0 kind \0 */
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, SR_DB_REGISTRY), &c)) return 0;
    MDB_val K = {kl, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    for (; r == 0 && K.mv_size > kl && !memcmp(K.mv_data, k, kl); r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        size_t il = K.mv_size - kl;
        if (il == sizeof CL_AUDIT - 1 && !memcmp((uint8_t *)K.mv_data + kl, CL_AUDIT, il)) continue;
        Suiro__V1__RegistryPut *rp = suiro__v1__registry_put__unpack(NULL, V.mv_size, V.mv_data);
        uint32_t d = rp ? rp->retention_days : 0;
        if (rp) suiro__v1__registry_put__free_unpacked(rp, NULL);
        if (!d) {
            longest = 0;
            break;
        }
        if (d > longest) longest = d;
    }
    mdb_cursor_close(c);
    return longest;
}

/* 1 if the index still holds a value of op's points older than end: a
 * point's first chunk starting before it, or its latest row older than it
 * (what a key of an epoch ending at end may have written; docs/keys.md). */
static int op_values_before(sweep *s, const char *op, int64_t end)
{
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, SR_DB_POINTINFO), &c)) return 1;
    MDB_val k, v;
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST), held = 0;
    for (; r == 0 && !held; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        pointinfo pi;
        if (k.mv_size != 4 || sr__pointinfo_parse(v.mv_data, v.mv_size, &pi)) continue;
        int mine = !strcmp(pi.op, op);
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
        if (!mine) continue;
        uint32_t p = get_be32(k.mv_data);
        MDB_val L;
        sr_sample smp;
        sr_vtype ty;
        if (get(s->t, DB(s->e, SR_DB_LATEST), k.mv_data, 4, &L) == SR_OK &&
            (latest_decode(L.mv_data, L.mv_size, &smp, &ty) || smp.ts < end))
            held = 1;
        MDB_cursor *sc;
        if (held || mdb_cursor_open(s->t, DB(s->e, SR_DB_SERIES), &sc)) continue;
        uint8_t sk[SR_SERIES_KEY_LEN];
        sr_series_key(sk, p, INT64_MIN);
        MDB_val K = {sizeof sk, sk}, V;
        if (mdb_cursor_get(sc, &K, &V, MDB_SET_RANGE) == 0 && K.mv_size == SR_SERIES_KEY_LEN &&
            get_be32(K.mv_data) == p) {
            sr_chunk_info ci;
            held = sr_chunk_info_get(V.mv_data, V.mv_size, &ci) || ci.first_ts < end;
        }
        mdb_cursor_close(sc);
    }
    mdb_cursor_close(c);
    return held || (r != 0 && r != MDB_NOTFOUND);
}

/* The first seq of the records ingested after ms: the seq of the oldest
 * audit row newer than ms (ingest times never decrease along the log);
 * UINT64_MAX when there is none (any record may be older). */
static uint64_t seq_after(sweep *s, int64_t ms)
{
    uint8_t k0[SR_AUDIT_KEY];
    audit_key(k0, ms == INT64_MAX ? ms : ms + 1, 0);
    MDB_cursor *c;
    if (mdb_cursor_open(s->t, DB(s->e, SR_DB_AUDIT), &c)) return UINT64_MAX;
    MDB_val k = {sizeof k0, k0}, v;
    uint64_t seq = UINT64_MAX;
    if (mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size == SR_AUDIT_KEY)
        seq = get_be64((uint8_t *)k.mv_data + 8);
    mdb_cursor_close(c);
    return seq;
}

/* 1 if a head of op's points holds what a record ingested at or before end
 * may have built (invariant 5): a sample (open or late) of a record before
 * seq_after(end), or a flushed state (has_flushed, flushed_max) whose
 * newest value is older than end (the same proxy as op_values_before's
 * chunks: a flush of the epoch). A rebuild without those records builds
 * neither. Read under each head's stripe; the writer only adds samples of
 * newer records meanwhile (a retired key seals nothing new). */
static int op_heads_hold(sweep *s, const char *op, int64_t end)
{
    sr_engine *e = s->e;
    uint64_t after = seq_after(s, end);
    for (size_t d = 0; d < HDIR; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE; i++) {
            head *h = page[i];
            if (!h) continue;
            pthread_mutex_lock(stripe_of(e, h->point));
            int old = h->has_flushed && h->flushed_max < end;
            for (size_t j = 0; !old && j < h->n; j++) old = h->v[j].seq < after;
            for (size_t j = 0; !old && j < h->nlate; j++) old = h->late[j].seq < after;
            pthread_mutex_unlock(stripe_of(e, h->point));
            if (!old) continue;
            pointinfo pi;
            if (sr__pointinfo_get(e, s->t, h->point, &pi) != SR_OK) return 1; /* unknown: held */
            int mine = !strcmp(pi.op, op);
            suiro__v1__master_put__free_unpacked(pi.m, NULL);
            if (mine) return 1;
        }
    }
    return 0;
}

/* ---- audit-class state (issue #16, docs/retention.md "Audit data") -------- */

/* "audit_state": one event per operator with a resolved alarm resolved, or a
 * session expired, before its audit cut (apply_audit_state: the same test). */
static int sweep_audit_state(sweep *s)
{
    win_item *w = NULL;
    size_t nw = 0, capw = 0;
    int rc = SR_OK;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        MDB_cursor *c;
        if ((rc = sr_index_err(mdb_cursor_open(s->t, DB(s->e, pass ? SR_DB_SESSIONS : SR_DB_ALARMS), &c)))) break;
        MDB_val k = {1, (void *)"A"}, v;
        int r = pass ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        for (; r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            char op[72];
            int64_t ms = 0;
            if (pass) {
                sr__sess se;
                if (sess_decode(v.mv_data, v.mv_size, &se) || se.opl >= sizeof op) continue;
                memcpy(op, se.op, se.opl);
                op[se.opl] = 0;
                ms = se.expires_ms;
            } else {
                if (!k.mv_size || *(const uint8_t *)k.mv_data != 'A') break;
                const uint8_t *p = v.mv_data, *z = memchr(p, 0, v.mv_size);
                if (!z || (size_t)(z - p) >= sizeof op) continue;
                memcpy(op, p, (size_t)(z - p));
                op[z - p] = 0;
                Suiro__V1__AlarmEvent *a = suiro__v1__alarm_event__unpack(NULL, v.mv_size - (size_t)(z - p) - 1, z + 1);
                if (!a) continue;
                ms = strcmp(a->state, "resolved") ? INT64_MAX : a->resolved_ms;
                suiro__v1__alarm_event__free_unpacked(a, NULL);
            }
            uint32_t days = period_of(s, op, CL_AUDIT); /* the platform's "" too: [retention] audit_days */
            if (!days || ms >= cut_of(s, days)) continue;
            win_item *it = NULL;
            for (size_t i = 0; i < nw && !it; i++)
                if (!strcmp(w[i].op, op)) it = &w[i];
            if (!it) {
                if (sr_array_reserve(&w, &capw, nw + 1, sizeof *w)) {
                    rc = SR_ENOMEM;
                    break;
                }
                it = &w[nw++];
                memset(it, 0, sizeof *it);
                snprintf(it->op, sizeof it->op, "%s", op);
                it->cut = cut_of(s, days);
                it->days = days;
            }
            it->n++;
            s->rep->audit_state++;
        }
        mdb_cursor_close(c);
        if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    for (size_t i = 0; i < nw && !rc; i++) rc = emit(s, w[i].op, CL_AUDIT_STATE, w[i].cut, w[i].days, NULL, 0, NULL, 0, 0, w[i].n);
    sr_free(w);
    return rc;
}

/* The retired audit keys whose epoch ended before their operator's audit
 * cut (the candidates for destruction, sweep_keys): their id, operator and
 * epoch end. */
typedef struct audkey {
    uint32_t id, days;
    int64_t end, cut;
    char op[SR_KEYRING_OP_MAX + 1];
} audkey;

static int audit_candidates(sweep *s, const sr_keyinfo *ks, size_t n, audkey **out, size_t *nout)
{
    size_t cap = 0;
    *out = NULL;
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        const sr_keyinfo *k = &ks[i];
        if (k->cls != SR_KC_AUDIT || k->state != SR_KS_RETIRED || k->retired_ms <= 0) continue;
        /* the platform's ("") too: its audit rows follow its audit period
         * (period_of: [retention] audit_days), and so does its audit key
         * (invariant 8) */
        uint32_t days = period_of(s, k->operator_id, CL_AUDIT);
        if (!days || k->retired_ms >= cut_of(s, days)) continue; /* kept for ever, or not yet past */
        if (sr_array_reserve(out, &cap, *nout + 1, sizeof **out)) return SR_ENOMEM;
        audkey *a = &(*out)[(*nout)++];
        memset(a, 0, sizeof *a);
        a->id = k->id;
        a->days = days;
        a->end = k->retired_ms;
        a->cut = cut_of(s, days);
        snprintf(a->op, sizeof a->op, "%s", k->operator_id);
    }
    return SR_OK;
}

/* the key id that sealed a raw (not opened) value of a sealed database; 0
 * for a plain one (ixseal.h "A SEALED VALUE") */
static uint32_t raw_kid(const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    return v->mv_size >= SR_IXSEAL_OVER && p[0] == 1 ? sr_get_le32(p + 1) : 0;
}

static const audkey *cand_of_kid(const audkey *a, size_t n, uint32_t kid)
{
    for (size_t i = 0; kid && i < n; i++)
        if (a[i].id == kid) return &a[i];
    return NULL;
}

/* the latest epoch end of op's candidates (INT64_MIN: none) */
static int64_t cand_end(const audkey *a, size_t n, const char *op, size_t ol)
{
    int64_t end = INT64_MIN;
    for (size_t i = 0; i < n; i++)
        if (strlen(a[i].op) == ol && !memcmp(a[i].op, op, ol) && a[i].end > end) end = a[i].end;
    return end;
}

/* An alarm's state is built from its steps since its raise, or since its
 * last restatement (AlarmEvent.restated_ms): it may depend on a record of
 * an epoch that ended at or after that time. */
static int alarm_from(const MDB_val *v, char *op, size_t cap, int64_t *from, char *id, const MDB_val *k)
{
    const uint8_t *p = v->mv_data, *z = memchr(p, 0, v->mv_size);
    if (!z || (size_t)(z - p) >= cap || k->mv_size >= 40) return -1;
    memcpy(op, p, (size_t)(z - p));
    op[z - p] = 0;
    Suiro__V1__AlarmEvent *a = suiro__v1__alarm_event__unpack(NULL, v->mv_size - (size_t)(z - p) - 1, z + 1);
    if (!a) return -1;
    *from = a->restated_ms ? a->restated_ms : a->raised_ms;
    suiro__v1__alarm_event__free_unpacked(a, NULL);
    memcpy(id, k->mv_data, k->mv_size);
    id[k->mv_size] = 0;
    return 0;
}

static void restate_done(void *ctx, const sr_result *res)
{
    sweep *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (!res->rc) s->rep->restated++;
    else if (res->rc != SR_ENOTFOUND && !s->err) { /* not found: the row went since the read (ended, cut) */
        s->err = res->rc;
        s->einfo = res->err;
    }
    s->inflight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int restate(sweep *s, Event *ev, const char *op)
{
    ev->operator_id = (char *)op;
    ev->actor = (char *)s->actor;
    ev->actor_kind = (Suiro__V1__ActorKind)s->actor_kind;
    ev->source = (char *)(s->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? "retention" : "admin");
    return submit_ev(s, ev, restate_done);
}

/* Before an audit key is destroyed, the live state its records built is
 * restated in the current epoch (an event of the same kind with restated
 * set, filled by the writer from the row: apply.c restate_*, alarms.c
 * alarm_restate), so that nothing still live is lost and a rebuild, which
 * cannot read the key's records, gets the same rows:
 *   alive     a principal's row sealed by a candidate key;
 *   sessions  an open session's row sealed by a candidate key;
 *   alarms    an alarm (open, or resolved after the cut) whose state is built
 *             from before a candidate's epoch end (alarm_from);
 *   notifyq   every done delivery of the operator (above the notifier's
 *             mark; plain rows, few: they go with the next mark).
 * The candidates: audit_candidates. Returns once submitted; the caller
 * waits for them. */
static int sweep_restate(sweep *s, const audkey *a, size_t na)
{
    if (!na) return SR_OK;
    sr_engine *e = s->e;
    int rc = sr_index_read_begin(e->ix, &s->t);
    if (rc) return rc;
    static const sr_dbi dbs[] = {SR_DB_ALIVE, SR_DB_SESSIONS, SR_DB_ALARMS, SR_DB_NOTIFYQ};
    for (size_t d = 0; d < sizeof dbs / sizeof *dbs && !rc; d++) {
        MDB_cursor *c;
        if ((rc = sr_index_err(mdb_cursor_open(s->t, DB(e, dbs[d]), &c)))) break;
        MDB_val k, v;
        int r = (mdb_cursor_get)(c, &k, &v, MDB_FIRST); /* raw: the sealed value's key id */
        for (; r == 0 && !rc; r = (mdb_cursor_get)(c, &k, &v, MDB_NEXT)) {
            Event ev = SUIRO__V1__EVENT__INIT;
            const uint8_t *kb = k.mv_data;
            const audkey *ck = cand_of_kid(a, na, raw_kid(&v));
            if (dbs[d] == SR_DB_ALIVE && ck) { /* op \0 kind \0 id */
                char key[300];
                if (k.mv_size >= sizeof key) continue;
                memcpy(key, kb, k.mv_size);
                key[k.mv_size] = 0;
                char *z1 = memchr(key, 0, k.mv_size), *z2 = z1 ? memchr(z1 + 1, 0, k.mv_size - (size_t)(z1 + 1 - key)) : NULL;
                if (!z2 || z2 != z1 + 2) continue;
                Suiro__V1__AliveEvent al = SUIRO__V1__ALIVE_EVENT__INIT;
                al.kind = (Suiro__V1__ActorKind)(z1[1] - '0');
                al.id = z2 + 1;
                al.restated = 1;
                ev.body_case = SUIRO__V1__EVENT__BODY_ALIVE;
                ev.alive = &al;
                rc = restate(s, &ev, key);
            } else if (dbs[d] == SR_DB_SESSIONS && ck && k.mv_size == 32) {
                Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
                se.token_hash = (ProtobufCBinaryData){32, (uint8_t *)kb};
                se.restated = 1;
                se.reason = (char *)"restated by retention";
                ev.body_case = SUIRO__V1__EVENT__BODY_SESSION;
                ev.session = &se;
                rc = restate(s, &ev, ck->op);
            } else if (dbs[d] == SR_DB_ALARMS && k.mv_size && kb[0] == 'A') {
                MDB_val o; /* opened */
                char op[72], id[40];
                int64_t from;
                int orc = sr__ixseal_open(&e->seal, SR_DB_ALARMS, &k, &v, &o);
                if (orc == SR_EERASED) continue;
                if (orc || alarm_from(&o, op, sizeof op, &from, id, &k)) {
                    rc = orc ? orc : SR_ECORRUPT;
                    break;
                }
                if (from > cand_end(a, na, op, strlen(op))) continue;
                Suiro__V1__AlarmEvent al = SUIRO__V1__ALARM_EVENT__INIT;
                al.alarm_id = id;
                al.restated = 1;
                ev.body_case = SUIRO__V1__EVENT__BODY_ALARM;
                ev.alarm = &al;
                rc = restate(s, &ev, op);
            } else if (dbs[d] == SR_DB_NOTIFYQ && k.mv_size == 1 && kb[0] == 'm' && v.mv_size == 8 &&
                       cand_end(a, na, "", 0) != INT64_MIN) {
                /* the notifier's mark (the platform's, plain): its record may
                 * be sealed by a platform audit key about to go; restated
                 * as it stands (its apply is a max: a no-op live, the row for
                 * a rebuild) */
                Suiro__V1__NotifyEvent nt = SUIRO__V1__NOTIFY_EVENT__INIT;
                nt.outcome = (char *)"mark";
                nt.through = sr_get_le64(v.mv_data);
                nt.restated = 1;
                ev.body_case = SUIRO__V1__EVENT__BODY_NOTIFY;
                ev.notify = &nt;
                rc = restate(s, &ev, "");
            } else if (dbs[d] == SR_DB_NOTIFYQ && k.mv_size > 10 && kb[0] == 'd') { /* 'd' seq op \0 target */
                char key[600];
                size_t rl = k.mv_size - 9;
                if (rl >= sizeof key) continue;
                memcpy(key, kb + 9, rl);
                key[rl] = 0;
                char *z = memchr(key, 0, rl);
                if (!z || z == key || cand_end(a, na, key, (size_t)(z - key)) == INT64_MIN) continue;
                Suiro__V1__NotifyEvent nt = SUIRO__V1__NOTIFY_EVENT__INIT;
                nt.alarm_seq = get_be64(kb + 1);
                nt.target_id = z + 1;
                nt.outcome = (char *)"delivered"; /* filled from the row by the writer */
                nt.restated = 1;
                ev.body_case = SUIRO__V1__EVENT__BODY_NOTIFY;
                ev.notify = &nt;
                rc = restate(s, &ev, key);
            }
        }
        mdb_cursor_close(c);
        if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    sr_index_read_end(e->ix, s->t);
    s->t = NULL;
    return rc;
}

/* 1 if the index still holds a row an audit key's records may have built
 * (sweep_keys): a value of `alive`, `sessions` or `alarms` sealed by it, an
 * alarm of its operator built from before its epoch's end (alarm_from), or
 * an audit row sealed by it (they are older than its epoch's end). The
 * operator's done deliveries were restated (sweep_restate). */
static int audit_key_holds(sweep *s, const audkey *a)
{
    sr_engine *e = s->e;
    static const sr_dbi dbs[] = {SR_DB_ALIVE, SR_DB_SESSIONS, SR_DB_ALARMS, SR_DB_AUDIT};
    int held = 0;
    for (size_t d = 0; d < sizeof dbs / sizeof *dbs && !held; d++) {
        MDB_cursor *c;
        if (mdb_cursor_open(s->t, DB(e, dbs[d]), &c)) return 1;
        MDB_val k, v;
        int r = (mdb_cursor_get)(c, &k, &v, MDB_FIRST);
        for (; r == 0 && !held; r = (mdb_cursor_get)(c, &k, &v, MDB_NEXT)) {
            if (dbs[d] == SR_DB_AUDIT && k.mv_size == SR_AUDIT_KEY &&
                (int64_t)(get_be64(k.mv_data) ^ (1ull << 63)) > a->end)
                break; /* time order: newer than the epoch */
            if (raw_kid(&v) == a->id) {
                held = 1;
            } else if (dbs[d] == SR_DB_ALARMS && k.mv_size && *(const uint8_t *)k.mv_data == 'A') {
                MDB_val o;
                char op[72], id[40];
                int64_t from;
                int orc = sr__ixseal_open(&e->seal, SR_DB_ALARMS, &k, &v, &o);
                if (orc == SR_EERASED) continue;
                held = orc || alarm_from(&o, op, sizeof op, &from, id, &k) || (!strcmp(op, a->op) && from <= a->end);
            }
        }
        mdb_cursor_close(c);
        if (r != 0 && r != MDB_NOTFOUND) held = 1;
    }
    return held;
}

/* The audit keys about to be destroyed: their live state restated first,
 * and waited for (durable and applied) */
static int restate_live(sweep *s)
{
    sr_engine *e = s->e;
    if (!e->keyring) return SR_OK;
    sr_keyinfo *ks = NULL;
    size_t n = 0;
    int rc = sr_keyring_list(e->keyring, &ks, &n);
    if (rc) return rc;
    audkey *a = NULL;
    size_t na = 0;
    MDB_txn *t = NULL;
    if (!(rc = sr_index_read_begin(e->ix, &t))) { /* period_of reads the registry */
        s->t = t;
        rc = audit_candidates(s, ks, n, &a, &na);
        sr_index_read_end(e->ix, t);
        s->t = NULL;
    }
    if (!rc) rc = sweep_restate(s, a, na);
    pthread_mutex_lock(&s->mu);
    while (s->inflight) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    sr_free(a);
    sr_free(ks);
    return rc;
}

typedef struct doomed {
    uint32_t id, days;
    int64_t cut;
} doomed;

/* After the sweep's Retention events are durable and applied: destroy every
 * retired data key of an operator whose epoch ended before the cut of every
 * data class of that operator (docs/keys.md "Retention and erasure"), when
 * the index holds nothing that key's records built:
 *   - no value of the operator's points older than the epoch's end (the
 *     Retention events cut them; a chunk straddling a cut waits);
 *   - no document, file, request or monitor of the operator first written
 *     at or before the epoch's end (op_rows_created_by: its creating record
 *     may be sealed by the key; the Retention events of the record classes
 *     cut them once past their period, a pending request or a running
 *     monitor never), counted in keys_held while one remains.
 *   - no head of the operator's points holding a sample of a record
 *     ingested at or before the epoch's end, or a flushed state whose
 *     newest value is older than it (op_heads_hold).
 * The platform's own data keys (operator "": heads checkpoints) and config
 * keys are never destroyed here; audit keys below (the platform's too,
 * invariant 8). Each destruction is
 * sr_engine_key_destroy: the KeyEvent durable first, then the tombstone. */
static int sweep_keys(sweep *s)
{
    sr_engine *e = s->e;
    if (!e->keyring) return SR_OK;
    sr_keyinfo *ks = NULL;
    size_t n = 0;
    int rc = sr_keyring_list(e->keyring, &ks, &n);
    if (rc) return rc;
    doomed *d = NULL;
    size_t nd = 0, capd = 0;
    if ((rc = sr_index_read_begin(e->ix, &s->t))) {
        sr_free(ks);
        return rc;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const sr_keyinfo *k = &ks[i];
        if (k->cls != SR_KC_DATA || k->state != SR_KS_RETIRED || !k->operator_id[0] || k->retired_ms <= 0) continue;
        uint32_t days = longest_data_period(s, k->operator_id);
        if (!days) continue; /* a class kept for ever: never */
        int64_t cut = cut_of(s, days);
        if (k->retired_ms >= cut) continue; /* not yet past every period */
        int held = op_values_before(s, k->operator_id, k->retired_ms) || op_heads_hold(s, k->operator_id, k->retired_ms);
        for (size_t j = 0; !held && j < N_REC_CLASSES; j++)
            held = op_rows_created_by(s, REC_CLASSES[j].db, k->operator_id, k->retired_ms);
        if (held) {
            s->rep->keys_held++;
            continue;
        }
        if (sr_array_reserve(&d, &capd, nd + 1, sizeof *d)) rc = SR_ENOMEM;
        else d[nd++] = (doomed){k->id, days, cut};
    }
    /* audit keys (issue #16): their live state restated (sweep_restate),
     * their history cut (audit, audit_state), nothing of their epoch left */
    audkey *ak = NULL;
    size_t nak = 0;
    if (!rc) rc = audit_candidates(s, ks, n, &ak, &nak);
    for (size_t i = 0; i < nak && !rc; i++) {
        if (audit_key_holds(s, &ak[i])) {
            s->rep->keys_held++;
            continue;
        }
        if (sr_array_reserve(&d, &capd, nd + 1, sizeof *d)) rc = SR_ENOMEM;
        else d[nd++] = (doomed){ak[i].id, ak[i].days, ak[i].cut};
    }
    sr_free(ak);
    sr_index_read_end(e->ix, s->t);
    s->t = NULL;
    sr_cmd_env env = {"", s->actor, s->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? SR_ACTOR_SYSTEM : SR_ACTOR_USER,
                      NULL, s->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM ? "retention" : "admin"};
    for (size_t i = 0; i < nd && !rc; i++) {
        sr_errinfo ei;
        rc = sr_engine_key_destroy(e, &env, d[i].id, d[i].days, d[i].cut, &ei);
        if (rc) {
            s->err = rc;
            s->einfo = ei;
        } else {
            s->rep->keys_destroyed++;
        }
    }
    sr_free(d);
    sr_free(ks);
    return rc;
}

int sr_engine_retention_sweep(sr_engine *e, const sr_retention_cfg *cfg, const char *actor,
                              sr_retention_report *rep, sr_errinfo *err)
{
    sr_retention_report dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof *rep);
    int expect = 0;
    if (!atomic_compare_exchange_strong(&e->ret_busy, &expect, 1)) {
        sr_errinfo_set(err, SR_ECONFLICT, "a retention sweep is already running");
        return SR_ECONFLICT;
    }
    sweep s = {.e = e, .cfg = cfg, .now = now_ms(e), .rep = rep};
    s.actor = actor && actor[0] ? actor : "system";
    s.actor_kind = actor && actor[0] ? SUIRO__V1__ACTOR_KIND__ACTOR_USER : SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int rc = sr_index_read_begin(e->ix, &s.t);
    if (!rc) {
        rc = sweep_points(&s);
        for (size_t i = 0; !rc && i < N_REC_CLASSES; i++) rc = sweep_records(&s, &REC_CLASSES[i]);
        if (!rc) rc = sweep_audit(&s);
        if (!rc) rc = sweep_msgids(&s);
        if (!rc) rc = sweep_audit_state(&s);
        if (s.t) sr_index_read_end(e->ix, s.t);
        s.t = NULL;
    }
    pthread_mutex_lock(&s.mu);
    while (s.inflight) pthread_cond_wait(&s.cv, &s.mu);
    if (!rc && !s.err) { /* every Retention event is durable and applied: the blobs and keys they freed */
        pthread_mutex_unlock(&s.mu);
        rc = sweep_blobs(&s);
        if (!rc) rc = restate_live(&s);
        if (!rc && !s.err) rc = sweep_keys(&s);
        if (!rc && !s.err && cfg->drop_segments) /* the segments nothing needs now (engine/segdrop.c) */
            rc = sr__segdrop_sweep(e, cfg, s.now, s.actor, s.actor_kind, rep, &s.einfo), s.err = rc;
        pthread_mutex_lock(&s.mu);
        if (rc && s.err == rc) rc = 0; /* said by s.einfo below */
    }
    if (!rc && s.err) {
        rc = s.err;
        if (err) *err = s.einfo;
    } else if (rc) {
        sr_errinfo_set(err, rc, "retention sweep: %s", sr_strerror(rc));
    }
    pthread_mutex_unlock(&s.mu);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    sr_free(s.p);
    sr_free(s.blobs);
    atomic_store(&e->ret_busy, 0);
    return rc;
}

uint64_t sr_engine_retention_removed(sr_engine *e) { return atomic_load(&e->st_ret_removed); }

/* ---- dropping log segments (engine/segdrop.c): rule (d) ---------------------
 * The time before which op's data records built nothing the index still
 * holds, by sweep_keys' own checks: every data period of op ended (its
 * longest, none kept for ever), no value of its points older than that cut,
 * no document, file, request or monitor of op created at or before it (its
 * creating record among those: op_rows_created_by, index layout 9).
 * INT64_MIN: none may go. */
int64_t sr__retention_data_cut(sr_engine *e, MDB_txn *t, const sr_retention_cfg *cfg, int64_t now, const char *op)
{
    sweep s = {.e = e, .t = t, .cfg = cfg, .now = now};
    uint32_t days = longest_data_period(&s, op);
    int64_t cut = days ? cut_of(&s, days) : INT64_MIN;
    if (cut != INT64_MIN && (op_rows_created_by(&s, SR_DB_DOCS, op, cut) || op_rows_created_by(&s, SR_DB_FILES, op, cut) ||
                             op_rows_created_by(&s, SR_DB_REQUESTS, op, cut) ||
                             op_rows_created_by(&s, SR_DB_MONITORS, op, cut) || op_values_before(&s, op, cut)))
        cut = INT64_MIN;
    sr_free(s.p);
    return cut;
}

/* ---- the cluster's stream keys (issue #19 ckey) ---------------------------
 * The cut of op's class for its stream keys (docs/keys.md "Cluster: stream
 * keys"): data, sr__retention_data_cut (every data period of op ended and
 * nothing of op older than the cut left in the index: the rule of the local
 * data keys); audit, now minus op's audit period. INT64_MIN: kept for ever
 * (or something of op before it is still held). */
int64_t sr_engine_retention_cut(sr_engine *e, const sr_retention_cfg *cfg, int64_t now, const char *op, int cls)
{
    MDB_txn *t;
    if (cls != SR_KC_DATA && cls != SR_KC_AUDIT) return INT64_MIN;
    if (sr_index_read_begin(e->ix, &t)) return INT64_MIN;
    int64_t cut = INT64_MIN;
    if (cls == SR_KC_DATA) cut = sr__retention_data_cut(e, t, cfg, now, op);
    else {
        sweep s = {.e = e, .t = t, .cfg = cfg, .now = now};
        uint32_t days = period_of(&s, op, CL_AUDIT);
        if (days) cut = cut_of(&s, days);
        sr_free(s.p);
    }
    sr_index_read_end(e->ix, t);
    return cut;
}
