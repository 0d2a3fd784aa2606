/*
 * engine/statesnap.c -- state snapshots: copies of the derived non-series
 * state in the index (issue #18, R-RE-2; docs/state.md "How it is built";
 * the `statesnap` database, engine/schema.h), so that the state at a past
 * time (engine/state.c) replays only the events after the nearest one.
 *
 * The writer ends a group with a snapshot once [state] snapshot_events
 * events or snapshot_values values were written, or snapshot_s seconds
 * passed, since the last one (sr__snap_group): in the group's own transaction, after its pass 2 and
 * its latest rows, so the copy is the index as of exactly the group's last
 * seq S. The rows are copied as raw bytes (a sealed value stays sealed by
 * the key that sealed it: crypto-shredding reaches the copies too). An
 * answer at T loads the nearest usable snapshot at or before seq(T) into
 * its private index (sr__snap_restore) with the watermark S; the private
 * engine's open replays S+1..seq(T).
 *
 * INVARIANTS
 *  (1) A snapshot is the rows of SR_SNAP_DBS and the meta rows (but
 *      watermark, layout, head_max, sealed, heads_ckpt) as the writer's
 *      transaction held them after applying the events up to S, and
 *      nothing else: it commits with that transaction or not at all.
 *  (2) Its header is written after its rows, complete = 1 only when every
 *      row was copied (a key too long to be prefixed makes it 0: never used).
 *  (3) A restore never yields a snapshot with a row it cannot open: a row
 *      of a sealed database sealed by a destroyed (or unknown) key makes it
 *      refuse that snapshot (SR_EERASED), nothing of it committed, and the
 *      caller takes the next older one or the log's start (a wrong state is
 *      never answered; the full replay lacks the erased records' effects
 *      just as a rebuild does).
 *  (4) A snapshot at S is used only when the log still holds S+1 (S >=
 *      first kept - 1); a LogTrim deletes the others (sr__snap_trim).
 *  (5) Thinning (sr__snap_thin, [state] snapshot_keep): after a new
 *      snapshot, in the same transaction, the older ones the rule no longer
 *      keeps are deleted; the rule is a function of the existing seqs only
 *      (the newest keep; older, a gap between two kept ones is at most the
 *      newer one's age), so an answer at distance a behind the newest
 *      replays at most max(a, one interval) and at most keep + 2 (log2
 *      (newest seq) + 1) are kept.
 */
#include "engine/engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const sr_dbi SNAP_DBS[] = {SR_DB_META, SR_SNAP_DBS};
enum { HDR_KEY = 9, ROW_PREFIX = 10, HDR_VAL = 17, KEY_MAX = 511 };

/* the meta rows that are the index's own, not the state's */
static int meta_skip(const MDB_val *k)
{
    static const char *const OWN[] = {"watermark", "layout", "head_max", "sealed", "heads_ckpt"};
    for (size_t i = 0; i < sizeof OWN / sizeof OWN[0]; i++)
        if (k->mv_size == strlen(OWN[i]) && !memcmp(k->mv_data, OWN[i], k->mv_size)) return 1;
    return 0;
}

static void hdr_key(uint8_t k[HDR_KEY], uint64_t s)
{
    k[0] = 0;
    be64(k + 1, s);
}

/* the seq of the newest snapshot (0: none) and its ingest time */
static int newest(MDB_txn *t, MDB_dbi d, uint64_t *s, int64_t *ms)
{
    MDB_cursor *c;
    *s = 0;
    *ms = 0;
    int rc = sr_index_err(mdb_cursor_open(t, d, &c));
    if (rc) return rc;
    uint8_t k[HDR_KEY];
    hdr_key(k, UINT64_MAX);
    MDB_val K = {sizeof k, k}, V;
    int r = (mdb_cursor_get)(c, &K, &V, MDB_SET_RANGE);
    r = r == 0 ? (mdb_cursor_get)(c, &K, &V, MDB_PREV) : (mdb_cursor_get)(c, &K, &V, MDB_LAST);
    while (r == 0 && !(K.mv_size == HDR_KEY && ((uint8_t *)K.mv_data)[0] == 0)) r = (mdb_cursor_get)(c, &K, &V, MDB_PREV);
    if (r == 0) {
        *s = get_be64((uint8_t *)K.mv_data + 1);
        if (V.mv_size == HDR_VAL) *ms = (int64_t)sr_get_le64(V.mv_data);
    }
    mdb_cursor_close(c);
    return r == 0 || r == MDB_NOTFOUND ? SR_OK : sr_index_err(r);
}

int sr__snap_load(sr_engine *e)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    rc = newest(t, DB(e, SR_DB_STATESNAP), &e->snap_seq, &e->snap_ms);
    sr_index_read_end(e->ix, t);
    e->snap_vals = 0;
    return rc;
}

/* invariant (1): the copy, in the writer's transaction */
static int snap_write(sr_engine *e, MDB_txn *t, uint64_t s, int64_t at_ms)
{
    MDB_cursor *out = NULL;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_STATESNAP), &out));
    if (rc) return rc;
    uint8_t kb[KEY_MAX];
    kb[0] = 1;
    be64(kb + 1, s);
    uint64_t rows = 0;
    int complete = 1;
    for (size_t i = 0; i < sizeof SNAP_DBS / sizeof SNAP_DBS[0] && !rc; i++) {
        MDB_cursor *c;
        if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SNAP_DBS[i]), &c)))) break;
        MDB_val K, V;
        int r = (mdb_cursor_get)(c, &K, &V, MDB_FIRST); /* raw: sealed bytes stay sealed */
        for (; r == 0; r = (mdb_cursor_get)(c, &K, &V, MDB_NEXT)) {
            if (SNAP_DBS[i] == SR_DB_META && meta_skip(&K)) continue;
            if (K.mv_size > KEY_MAX - ROW_PREFIX) {
                complete = 0; /* invariant (2) */
                continue;
            }
            kb[9] = (uint8_t)SNAP_DBS[i];
            memcpy(kb + ROW_PREFIX, K.mv_data, K.mv_size);
            MDB_val K2 = {ROW_PREFIX + K.mv_size, kb};
            if ((r = (mdb_cursor_put)(out, &K2, &V, MDB_APPEND))) break;
            rows++;
        }
        if (r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
        mdb_cursor_close(c);
    }
    mdb_cursor_close(out);
    if (rc) return rc;
    uint8_t hk[HDR_KEY], hv[HDR_VAL];
    hdr_key(hk, s);
    sr_put_le64(hv, (uint64_t)at_ms);
    sr_put_le64(hv + 8, rows);
    hv[16] = (uint8_t)complete;
    MDB_val K = {sizeof hk, hk}, V = {sizeof hv, hv};
    return sr_index_err((mdb_put)(t, DB(e, SR_DB_STATESNAP), &K, &V, 0));
}

/* delete the snapshot at s (its rows, then its header) */
static int snap_delete(MDB_txn *t, MDB_dbi d, uint64_t s)
{
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, d, &c));
    if (rc) return rc;
    uint8_t k[HDR_KEY];
    k[0] = 1;
    be64(k + 1, s);
    MDB_val K = {sizeof k, k}, V;
    int r = (mdb_cursor_get)(c, &K, &V, MDB_SET_RANGE);
    while (r == 0 && K.mv_size > HDR_KEY && !memcmp(K.mv_data, k, HDR_KEY)) {
        if ((r = mdb_cursor_del(c, 0))) break;
        r = (mdb_cursor_get)(c, &K, &V, MDB_NEXT); /* after a delete: the row that followed it */
    }
    mdb_cursor_close(c);
    if (r != 0 && r != MDB_NOTFOUND) return sr_index_err(r);
    hdr_key(k, s);
    MDB_val H = {sizeof k, k};
    r = mdb_del(t, d, &H, NULL);
    return r == 0 || r == MDB_NOTFOUND ? SR_OK : sr_index_err(r);
}

/* invariant (4) */
int sr__snap_trim(sr_engine *e, MDB_txn *t, uint64_t first_kept)
{
    MDB_dbi d = DB(e, SR_DB_STATESNAP);
    for (;;) {
        MDB_cursor *c;
        int rc = sr_index_err(mdb_cursor_open(t, d, &c));
        if (rc) return rc;
        MDB_val K, V;
        int r = (mdb_cursor_get)(c, &K, &V, MDB_FIRST);
        uint64_t s = 0;
        int found = r == 0 && K.mv_size == HDR_KEY && ((uint8_t *)K.mv_data)[0] == 0;
        if (found) s = get_be64((uint8_t *)K.mv_data + 1);
        mdb_cursor_close(c);
        if (r != 0 && r != MDB_NOTFOUND) return sr_index_err(r);
        if (!found || s + 1 >= first_kept) return SR_OK;
        if ((rc = snap_delete(t, d, s))) return rc;
    }
}

/* The seqs of the snapshot headers (they sort before every row: prefix 0),
 * oldest first; *out malloc'd (NULL when none). */
static int headers(MDB_txn *t, MDB_dbi d, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    MDB_cursor *c;
    int rc = sr_index_err(mdb_cursor_open(t, d, &c));
    if (rc) return rc;
    MDB_val K, V;
    int r = (mdb_cursor_get)(c, &K, &V, MDB_FIRST);
    for (; r == 0 && K.mv_size == HDR_KEY && ((uint8_t *)K.mv_data)[0] == 0;
         r = (mdb_cursor_get)(c, &K, &V, MDB_NEXT)) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            uint64_t *v = sr_realloc(*out, cap * sizeof *v);
            if (!v) {
                rc = SR_ENOMEM;
                break;
            }
            *out = v;
        }
        (*out)[(*n)++] = get_be64((uint8_t *)K.mv_data + 1);
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (rc) {
        sr_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int sr__snap_list(sr_engine *e, uint64_t *out, size_t max, size_t *n)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint64_t *all = NULL;
    rc = headers(t, DB(e, SR_DB_STATESNAP), &all, n);
    sr_index_read_end(e->ix, t);
    for (size_t i = 0; !rc && i < *n && i < max; i++) out[i] = all[i];
    sr_free(all);
    return rc;
}

/* invariant (5): the thinning rule. The newest keep are kept; going back
 * from the oldest of them (L, the last one kept), an older one goes when
 * the gap its going leaves -- from L to the next older one -- is at most
 * L's age N - L (N the newest's seq); the oldest stays. So between two
 * consecutive kept ones L > Z, L - Z <= max(N - L, the gap they had when
 * made), and the ages of every second kept one at least double. */
void sr__snap_thin(const uint64_t *all, size_t n, uint32_t keep, uint8_t *drop)
{
    memset(drop, 0, n);
    if (!keep || n <= keep) return;
    uint64_t N = all[n - 1];
    size_t L = n - keep;
    for (size_t i = L; i-- > 1;) {
        if (all[L] - all[i - 1] <= N - all[L]) drop[i] = 1;
        else L = i;
    }
}

/* Delete the snapshots the thinning rule no longer keeps (in t). */
static int thin(sr_engine *e, MDB_txn *t)
{
    MDB_dbi d = DB(e, SR_DB_STATESNAP);
    uint64_t *all = NULL;
    size_t n = 0;
    int rc = headers(t, d, &all, &n);
    /* no memory for the lists: nothing deleted yet, the group (its records
     * already in the log) must not fail for a cache's upkeep -- the next
     * snapshot thins */
    if (rc == SR_ENOMEM) return SR_OK;
    if (rc) return rc;
    uint8_t *drop = n ? sr_calloc(n, 1) : NULL;
    if (n && !drop) {
        sr_free(all);
        return SR_OK;
    }
    sr__snap_thin(all, n, e->o.snapshot_keep, drop);
    for (size_t i = 0; !rc && i < n; i++)
        if (drop[i]) rc = snap_delete(t, d, all[i]);
    sr_free(drop);
    sr_free(all);
    return rc;
}

int sr__snap_group(sr_engine *e, MDB_txn *t, uint64_t seq, int64_t at_ms, int *made)
{
    *made = 0;
    if (seq <= e->snap_seq) return SR_OK; /* keys only grow (MDB_APPEND) */
    if (!e->snap_ms) e->snap_ms = at_ms;  /* the time count starts with the first group written */
    int by_events = e->o.snapshot_events && seq - e->snap_seq >= e->o.snapshot_events;
    int by_values = e->o.snapshot_values && e->snap_vals >= e->o.snapshot_values;
    int by_time = e->o.snapshot_ms && at_ms - e->snap_ms >= (int64_t)e->o.snapshot_ms;
    if (!by_events && !by_values && !by_time) return SR_OK;
    int rc = snap_write(e, t, seq, at_ms);
    if (!rc && e->o.snapshot_keep) rc = thin(e, t);
    if (!rc) *made = 1;
    return rc;
}

/* ---- the restore (engine/state.c) ----------------------------------------- */

/* Whether the sealed value v can be opened by e's keyring (invariant 3). */
static int readable(sr_engine *e, const MDB_val *v, uint32_t *ok_id)
{
    const uint8_t *p = v->mv_data;
    if (!v->mv_size || p[0] != 1) return 1; /* form 0: plain */
    if (v->mv_size < 5) return 0;
    uint32_t id = sr_get_le32(p + 1);
    if (id == *ok_id) return 1;
    sr_keyinfo ki;
    if (sr_keyring_info(e->keyring, id, &ki) != SR_OK || ki.destroyed_ms > 0) return 0;
    *ok_id = id;
    return 1;
}

/* Load the snapshot at s of e's index (read through lt) into ix's
 * transaction wt: the index's own meta rows from e's, the watermark s.
 * SR_EERASED when a row cannot be opened (nothing is to be committed). */
static int restore_one(sr_engine *e, MDB_txn *lt, sr_index *ix, MDB_txn *wt, uint64_t s)
{
    static const char *const OWN[] = {"layout", "head_max", "sealed"};
    int rc = SR_OK;
    for (size_t i = 0; i < sizeof OWN / sizeof OWN[0] && !rc; i++) {
        MDB_val K = {strlen(OWN[i]), (void *)OWN[i]}, V;
        int r = (mdb_get)(lt, DB(e, SR_DB_META), &K, &V);
        if (r == MDB_NOTFOUND) continue;
        if (r || (r = (mdb_put)(wt, sr_index_dbi(ix, SR_DB_META), &K, &V, 0))) rc = sr_index_err(r);
    }
    if (rc) return rc;
    uint8_t w[8];
    sr_put_le64(w, s);
    MDB_val WK = {9, "watermark"}, WV = {8, w};
    if ((rc = sr_index_err((mdb_put)(wt, sr_index_dbi(ix, SR_DB_META), &WK, &WV, 0)))) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(lt, DB(e, SR_DB_STATESNAP), &c)))) return rc;
    uint8_t k[HDR_KEY];
    k[0] = 1;
    be64(k + 1, s);
    MDB_val K = {sizeof k, k}, V;
    uint32_t ok_id = 0;
    int r = (mdb_cursor_get)(c, &K, &V, MDB_SET_RANGE);
    for (; r == 0 && K.mv_size > ROW_PREFIX && !memcmp(K.mv_data, k, HDR_KEY);
         r = (mdb_cursor_get)(c, &K, &V, MDB_NEXT)) {
        unsigned db = ((uint8_t *)K.mv_data)[9];
        if (db >= SR_DB_COUNT) {
            r = MDB_CORRUPTED;
            break;
        }
        if (e->keyring && e->seal.sealed[db] && !readable(e, &V, &ok_id)) {
            rc = SR_EERASED;
            break;
        }
        MDB_val K2 = {K.mv_size - ROW_PREFIX, (uint8_t *)K.mv_data + ROW_PREFIX};
        if ((r = (mdb_put)(wt, sr_index_dbi(ix, db), &K2, &V, db == SR_DB_META ? 0 : MDB_APPEND))) break;
    }
    mdb_cursor_close(c);
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    return rc;
}

int sr__snap_restore(sr_engine *e, uint64_t seq, uint64_t first, const char *dir, uint64_t *out_s, int64_t *out_ms,
                     uint32_t *skipped, sr_errinfo *ei)
{
    *out_s = 0;
    *out_ms = 0;
    *skipped = 0;
    MDB_txn *lt;
    int rc = sr_index_read_begin(e->ix, &lt);
    if (rc) return rc;
    MDB_cursor *c = NULL;
    sr_index *ix = NULL;
    if ((rc = sr_index_err(mdb_cursor_open(lt, DB(e, SR_DB_STATESNAP), &c)))) goto done;
    uint8_t k[HDR_KEY];
    hdr_key(k, seq + 1);
    MDB_val K = {sizeof k, k}, V;
    int r = (mdb_cursor_get)(c, &K, &V, MDB_SET_RANGE);
    r = r == 0 ? (mdb_cursor_get)(c, &K, &V, MDB_PREV) : (mdb_cursor_get)(c, &K, &V, MDB_LAST);
    for (; r == 0; r = (mdb_cursor_get)(c, &K, &V, MDB_PREV)) {
        const uint8_t *kp = K.mv_data;
        if (K.mv_size != HDR_KEY || kp[0] != 0) continue; /* a row of a later snapshot: step back */
        uint64_t s = get_be64(kp + 1);
        if (s > seq) continue;
        if (s + 1 < first) break; /* invariant (4): the log no longer holds s + 1 */
        if (V.mv_size != HDR_VAL || ((const uint8_t *)V.mv_data)[16] != 1) {
            ++*skipped; /* invariant (2) */
            continue;
        }
        int64_t ms = (int64_t)sr_get_le64(V.mv_data);
        if (!ix) {
            char err[256] = "";
            if ((rc = sr_index_open(dir, 1ull << 30, 0, SR_SCHEMA_DBS, &ix, err, sizeof err))) {
                if (ei) snprintf(ei->msg, sizeof ei->msg, "the private index in %s: %s", dir, err);
                goto done;
            }
            /* thrown away after the answer, like the private engine's own
             * writes (index_nosync): its copy is not fsynced (an fsync of a
             * 10,000-point state's ~4 MB was most of a slow answer's restore
             * on a busy disk; docs/state.md "Cost") */
            if ((rc = sr_index_err(mdb_env_set_flags(sr_index_env(ix), MDB_NOSYNC, 1)))) goto done;
        }
        MDB_txn *wt;
        if ((rc = sr_index_write_begin(ix, &wt))) goto done;
        rc = restore_one(e, lt, ix, wt, s);
        if (rc == SR_EERASED) { /* invariant (3): an older one */
            sr_index_abort(wt);
            ++*skipped;
            rc = SR_OK;
            continue;
        }
        if (rc) {
            sr_index_abort(wt);
            goto done;
        }
        if ((rc = sr_index_commit(ix, wt))) goto done;
        *out_s = s;
        *out_ms = ms;
        break;
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
done:
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, lt);
    if (ix) sr_index_close(ix);
    return rc;
}
