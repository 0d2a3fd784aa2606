/*
 * engine/ckpt.c -- the Merkle tree over the log in the index and the signed
 * checkpoints (issue #18, docs/audit.md "Checkpoints and proofs").
 *
 * One leaf per log block (storage/log.h sr_log_leaf: the header's chained
 * bytes and the stored payload's digest, so a leaf needs no key and survives
 * crypto-shredding). The `mtree` database (layout 14, schema.h) keeps every
 * perfect subtree's hash, (level, index) -> hash (a leaf: its hash, first
 * seq, record count and chain hash), the tree's head (size, the first seq
 * not covered, the frontier's source) and the checkpoints by time. The
 * writer adds the leaves of each group's append in the group's transaction
 * (sr__mt_add, from the hashes the log's leader took: no second pass over
 * the bytes); the open, a rebuild and the writer's recovery read the leaves
 * the index lacks back from the log (sr__mt_catch_up). The CheckpointEvent
 * (Event.body 47) is the platform's, made by the server (api/ signs it with
 * the platform key): the writer refuses one whose root or chain tip is not
 * its tree's at that size; its apply keeps it by time.
 *
 * INVARIANTS
 *  (1) The tree's leaves are the log's blocks in order from the first block
 *      (seq 1): leaf i+1's first seq is leaf i's first seq + count, and the
 *      head's next seq is the last leaf's first seq + count (1 when empty).
 *  (2) head.next - 1 <= the watermark W; after the writer's group and after
 *      sr__mt_catch_up, head.next - 1 == W (the writer's groups are whole
 *      appends, so W is a block boundary).
 *  (3) e->mt (the writer's frontier) equals the frontier read from the
 *      database at head.size whenever no group is being committed; a group
 *      works on a copy and takes it only once its transaction committed.
 *  (4) A checkpoint in the index has a root and chain tip equal to the
 *      tree's at its size when it was applied by the writer.
 */
#include "engine/engine_int.h"
#include "engine/records.h"

#include "storage/index.h"
#include "storage/log.h"
#include "storage/mtree.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* keys of the `mtree` database */
enum { MT_HEAD = 0xFF, MT_CKPT = 0xFE, MT_LEAF_VAL = SR_HASH_LEN + 8 + 4 + SR_HASH_LEN };

static size_t node_key(uint8_t k[9], unsigned level, uint64_t index)
{
    k[0] = (uint8_t)level;
    be64(k + 1, index);
    return 9;
}

typedef struct mt_ctx {
    sr_engine *e;
    MDB_txn *t;
    const sr_log_leaf *leaf; /* the leaf being pushed (its level-0 row) */
    int rc;
} mt_ctx;

static int emit_node(void *ctx, unsigned level, uint64_t index, const uint8_t h[SR_HASH_LEN])
{
    mt_ctx *c = ctx;
    uint8_t k[9], v[MT_LEAF_VAL];
    node_key(k, level, index);
    memcpy(v, h, SR_HASH_LEN);
    if (level) return put(c->t, DB(c->e, SR_DB_MTREE), k, 9, v, SR_HASH_LEN);
    sr_put_le64(v + 32, c->leaf->first_seq);
    sr_put_le32(v + 40, c->leaf->count);
    memcpy(v + 44, c->leaf->tip, SR_HASH_LEN);
    return put(c->t, DB(c->e, SR_DB_MTREE), k, 9, v, sizeof v);
}

static int get_node(void *ctx, unsigned level, uint64_t index, uint8_t out[SR_HASH_LEN])
{
    mt_ctx *c = ctx;
    uint8_t k[9];
    node_key(k, level, index);
    MDB_val v;
    int rc = get(c->t, DB(c->e, SR_DB_MTREE), k, 9, &v);
    if (rc) return rc == SR_ENOTFOUND ? SR_ENOTFOUND : rc;
    if (v.mv_size < SR_HASH_LEN) return SR_ECORRUPT;
    memcpy(out, v.mv_data, SR_HASH_LEN);
    return SR_OK;
}

/* the head: size u64 LE, next seq u64 LE, base u64 LE (the first leaf kept:
 * the tree size of the last LogTrim, 0 before any) */
static int head_read3(sr_engine *e, MDB_txn *t, uint64_t *size, uint64_t *next, uint64_t *base)
{
    uint8_t k = MT_HEAD;
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_MTREE), &k, 1, &v);
    *base = 0;
    if (rc == SR_ENOTFOUND) {
        *size = 0;
        *next = 1;
        return SR_OK;
    }
    if (rc) return rc;
    if (v.mv_size != 24) return SR_ECORRUPT;
    *size = sr_get_le64(v.mv_data);
    *next = sr_get_le64((const uint8_t *)v.mv_data + 8);
    *base = sr_get_le64((const uint8_t *)v.mv_data + 16);
    return SR_OK;
}

static int head_read(sr_engine *e, MDB_txn *t, uint64_t *size, uint64_t *next)
{
    uint64_t base;
    return head_read3(e, t, size, next, &base);
}

static int head_write3(sr_engine *e, MDB_txn *t, uint64_t size, uint64_t next, uint64_t base)
{
    uint8_t k = MT_HEAD, v[24];
    sr_put_le64(v, size);
    sr_put_le64(v + 8, next);
    sr_put_le64(v + 16, base);
    return put(t, DB(e, SR_DB_MTREE), &k, 1, v, 24);
}

static int head_write(sr_engine *e, MDB_txn *t, uint64_t size, uint64_t next)
{
    uint64_t s, n, base;
    int rc = head_read3(e, t, &s, &n, &base);
    return rc ? rc : head_write3(e, t, size, next, base);
}

int sr__mt_add(sr_engine *e, MDB_txn *t, sr_mt_frontier *f, uint64_t *next, const sr_log_leaf *lv, size_t n)
{
    mt_ctx c = {e, t, NULL, 0};
    for (size_t i = 0; i < n; i++) {
        if (lv[i].first_seq != *next) return SR_ECORRUPT; /* invariant 1 */
        c.leaf = &lv[i];
        int rc = sr_mt_frontier_push(f, lv[i].hash, emit_node, &c);
        if (rc) return rc;
        *next = lv[i].first_seq + lv[i].count;
    }
    return head_write(e, t, f->size, *next);
}

int sr__mt_catch_up(sr_engine *e)
{
    if (e->o.state_only) { /* the state at a past time has no checkpoints to prove (state.c) */
        e->mt_off = 1;
        return SR_OK;
    }
    if (e->o.readonly) {
        /* nothing written: the writer's frontier is what the index has */
        MDB_txn *t;
        int rc = sr_index_read_begin(e->ix, &t);
        if (rc) return rc;
        uint64_t size, next;
        mt_ctx c = {e, t, NULL, 0};
        rc = head_read(e, t, &size, &next);
        if (!rc) rc = sr_mt_frontier_at(get_node, &c, size, &e->mt);
        if (!rc) e->mt_next = next;
        sr_index_read_end(e->ix, t);
        return rc;
    }
    uint64_t end = sr_log_durable_seq(e->log);
    if (e->o.replay_to && e->o.replay_to + 1 < end) end = e->o.replay_to + 1; /* the replay's end, as the open's */
    for (;;) {
        MDB_txn *t;
        int rc = sr_index_write_begin(e->ix, &t);
        if (rc) return rc;
        uint64_t size, next;
        mt_ctx c = {e, t, NULL, 0};
        rc = head_read(e, t, &size, &next);
        if (!rc) rc = sr_mt_frontier_at(get_node, &c, size, &e->mt);
        if (!rc && next < sr_log_first_seq(e->log) && next < end) {
            /* the log was trimmed past what the tree covers: the tree cannot
             * continue without the dropped blocks (docs/audit.md: not yet
             * carried by LogTrim) */
            e->mt_off = 1;
            sr_index_abort(t);
            sr__alert(e, 1, "the Merkle tree covers the log up to seq %" PRIu64 " but the log now starts at %" PRIu64
                            ": no checkpoints or proofs until the index is rebuilt from a whole log",
                      next - 1, sr_log_first_seq(e->log));
            return SR_OK;
        }
        if (rc || next >= end) {
            e->mt_next = next;
            sr_index_abort(t);
            return rc;
        }
        sr_log_iter *it = NULL;
        if ((rc = sr_log_iter_open(e->log, next, &it))) {
            sr_index_abort(t);
            return rc;
        }
        size_t added = 0;
        sr_log_leaf l;
        while (added < 4096 && next < end && (rc = sr_log_leaf_next(it, &l)) == SR_OK) {
            if (l.first_seq + l.count > end) break; /* a block past the end the index applied */
            if ((rc = sr__mt_add(e, t, &e->mt, &next, &l, 1))) break;
            added++;
        }
        if (rc == SR_DONE) rc = SR_OK;
        sr_log_iter_close(it);
        if (!rc) rc = sr_index_commit(e->ix, t);
        else sr_index_abort(t);
        if (rc) return rc;
        e->mt_next = next;
        if (!added) return SR_OK;
    }
}

/* ------------------------------------------------------------------------ */
/* A trimmed log (segdrop.c's LogTrim)                                       */

static int leaf_of(sr_engine *e, MDB_txn *t, uint64_t seq, uint64_t size, uint64_t *leaf);

int sr__mt_trim_fill(sr_engine *e, uint64_t first_kept, uint64_t *tree_size, uint8_t *buf, size_t *len)
{
    *len = 0;
    *tree_size = 0;
    if (e->mt_off) return SR_OK;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    mt_ctx c = {e, t, NULL, 0};
    uint64_t size, next, idx = 0;
    rc = head_read(e, t, &size, &next);
    if (!rc && next == first_kept) idx = size;
    else if (!rc && next > first_kept) {
        rc = leaf_of(e, t, first_kept, size, &idx);
        uint8_t k[9];
        MDB_val v;
        node_key(k, 0, idx);
        if (!rc && !(rc = get(t, DB(e, SR_DB_MTREE), k, 9, &v)) &&
            (v.mv_size != MT_LEAF_VAL || sr_get_le64((const uint8_t *)v.mv_data + 32) != first_kept))
            rc = SR_ECORRUPT; /* a segment starts at a block */
    } else if (!rc)
        rc = SR_ENOTFOUND; /* the tree is behind the trim: none carried */
    sr_mt_frontier f;
    if (!rc) rc = sr_mt_frontier_at(get_node, &c, idx, &f);
    if (!rc) {
        *len = sr_mt_frontier_encode(&f, buf);
        *tree_size = idx;
    }
    sr_index_read_end(e->ix, t);
    return rc == SR_ENOTFOUND ? SR_OK : rc;
}

int sr__mt_trim_apply(sr_engine *e, MDB_txn *t, uint64_t first_kept, uint64_t tree_size, const uint8_t *fr, size_t n)
{
    if (!n) return SR_OK; /* no tree carried (a LogTrim before issue #18, or a tree not kept) */
    sr_mt_frontier f;
    if (sr_mt_frontier_decode(fr, n, &f) || f.size != tree_size) return SR_ECORRUPT;
    uint64_t size, next, base;
    int rc = head_read3(e, t, &size, &next, &base);
    if (rc) return rc;
    if (base >= tree_size && (size || base)) return SR_OK; /* applied already */
    MDB_dbi db = DB(e, SR_DB_MTREE);
    /* The nodes wholly below the trim go, but the frontier's (a proof of a
     * kept leaf needs them), whose leaf row keeps its hash only. The live
     * tree (it covers the trim) keeps its size and head; a tree behind the
     * trim -- a fresh index of the trimmed log, or one a crash left behind
     * its log (the open's replay applies the LogTrim before the catch-up
     * reads the kept blocks) -- goes on from the carried frontier, so either
     * equals a rebuild of the trimmed log. */
    MDB_cursor *cur;
    if ((rc = sr_index_err(mdb_cursor_open(t, db, &cur)))) return rc;
    for (unsigned L = 0; L < SR_MT_MAX_LEVEL && !rc && (tree_size >> L); L++) {
        uint64_t lim = tree_size >> L; /* nodes (L, 0 .. lim - 1) lie wholly below */
        uint8_t k[9];
        node_key(k, L, 0);
        MDB_val K = {9, k}, V;
        int mrc = mdb_cursor_get(cur, &K, &V, MDB_SET_RANGE);
        while (!mrc && !rc) {
            const uint8_t *kk = K.mv_data;
            if (K.mv_size != 9 || kk[0] != L || get_be64(kk + 1) >= lim) break;
            if ((tree_size >> L & 1) && get_be64(kk + 1) == lim - 1) {
                mrc = mdb_cursor_get(cur, &K, &V, MDB_NEXT);
                continue;
            }
            rc = sr_index_err(mdb_cursor_del(cur, 0));
            if (!rc) mrc = mdb_cursor_get(cur, &K, &V, MDB_GET_CURRENT);
        }
        if (!rc && mrc && mrc != MDB_NOTFOUND) rc = sr_index_err(mrc);
    }
    mdb_cursor_close(cur);
    if (rc) return rc;
    if (size < tree_size || next < first_kept) {
        next = first_kept;
        size = tree_size;
    }
    for (unsigned L = 0; L < SR_MT_MAX_LEVEL; L++) {
        if (!(tree_size >> L & 1)) continue;
        uint8_t k[9];
        node_key(k, L, (tree_size >> L) - 1);
        if ((rc = put(t, db, k, 9, f.h[L], SR_HASH_LEN))) return rc;
    }
    return head_write3(e, t, size, next, tree_size);
}

/* ------------------------------------------------------------------------ */
/* The CheckpointEvent                                                       */

static size_t ckpt_key(uint8_t k[17], int64_t time_ms, uint64_t seq)
{
    k[0] = MT_CKPT;
    audit_key(k + 1, time_ms, seq); /* time ‖ seq, as the audit trail's rows (schema.h) */
    return 17;
}

int sr__checkpoint_check(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    const Suiro__V1__CheckpointEvent *c = ev->checkpoint;
    if (ev->operator_id[0] || ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM)
        return sr__refuse(r, SR_EINVAL, "checkpoint: the platform's, made by the system");
    if (e->mt_off) return sr__refuse(r, SR_EINVAL, "checkpoint: the Merkle tree is not kept (the log was trimmed past it)");
    if (c->root_hash.len != SR_HASH_LEN || c->chain_tip.len != SR_HASH_LEN || !c->tree_size || !c->note[0])
        return sr__refuse(r, SR_EINVAL, "checkpoint: a tree size, a 32-byte root and chain tip, and the note");
    uint64_t size, next;
    mt_ctx x = {e, t, NULL, 0};
    int rc = head_read(e, t, &size, &next);
    if (rc) return rc;
    if (c->tree_size > size)
        return sr__refuse(r, SR_EINVAL, "checkpoint: tree size %" PRIu64 " is past the tree's %" PRIu64, c->tree_size,
                          size);
    uint8_t root[SR_HASH_LEN];
    if ((rc = sr_mt_root(get_node, &x, c->tree_size, root)))
        return rc == SR_ENOTFOUND ? sr__refuse(r, SR_ENOTFOUND, "checkpoint: the tree at size %" PRIu64 " is not kept",
                                               c->tree_size)
                                  : rc;
    uint8_t k[9];
    MDB_val v;
    node_key(k, 0, c->tree_size - 1);
    if ((rc = get(t, DB(e, SR_DB_MTREE), k, 9, &v))) return rc;
    if (v.mv_size != MT_LEAF_VAL)
        return sr__refuse(r, SR_ENOTFOUND, "checkpoint: leaf %" PRIu64 " was dropped with a trimmed segment",
                          c->tree_size - 1);
    const uint8_t *lv = v.mv_data;
    if (memcmp(root, c->root_hash.data, SR_HASH_LEN) || memcmp(lv + 44, c->chain_tip.data, SR_HASH_LEN) ||
        c->last_seq != sr_get_le64(lv + 32) + sr_get_le32(lv + 40) - 1)
        return sr__refuse(r, SR_EINVAL, "checkpoint: its root, chain tip or last seq is not the tree's at size %" PRIu64,
                          c->tree_size);
    return SR_OK;
}

int sr__checkpoint_apply(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    (void)r;
    (void)validate;
    const Suiro__V1__CheckpointEvent *c = ev->checkpoint;
    uint8_t k[17];
    ckpt_key(k, c->time_ms, ev->seq);
    size_t n = protobuf_c_message_get_packed_size(&ev->base);
    uint8_t *v = sr_malloc(8 + n);
    if (!v) return SR_ENOMEM;
    sr_put_le64(v, ev->seq);
    protobuf_c_message_pack(&ev->base, v + 8);
    int rc = put(t, DB(e, SR_DB_MTREE), k, 17, v, 8 + n);
    sr_free(v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reads (records.h)                                                         */

static int dec_ckpt(const MDB_val *v, sr_checkpoint *out)
{
    if (v->mv_size < 8) return SR_ECORRUPT;
    memset(out, 0, sizeof *out);
    out->seq = sr_get_le64(v->mv_data);
    Event *ev = suiro__v1__event__unpack(NULL, v->mv_size - 8, (const uint8_t *)v->mv_data + 8);
    if (!ev) return SR_ECORRUPT;
    int rc = SR_ECORRUPT;
    const Suiro__V1__CheckpointEvent *c = ev->checkpoint;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_CHECKPOINT && c->root_hash.len == SR_HASH_LEN &&
        c->chain_tip.len == SR_HASH_LEN && strlen(c->note) < sizeof out->note) {
        out->tree_size = c->tree_size;
        out->last_seq = c->last_seq;
        out->time_ms = c->time_ms;
        memcpy(out->root, c->root_hash.data, SR_HASH_LEN);
        memcpy(out->tip, c->chain_tip.data, SR_HASH_LEN);
        if (c->key_id.len == SR_HASH_LEN) memcpy(out->key_id, c->key_id.data, SR_HASH_LEN);
        snprintf(out->note, sizeof out->note, "%s", c->note);
        snprintf(out->alg, sizeof out->alg, "%s", c->alg);
        snprintf(out->key_name, sizeof out->key_name, "%s", c->key_name);
        snprintf(out->reason, sizeof out->reason, "%s", c->reason);
        rc = SR_OK;
    }
    suiro__v1__event__free_unpacked(ev, NULL);
    return rc;
}

/* A read transaction and a cursor on `mtree` (the readers below); on
 * failure nothing is left open. */
static int mtree_read_open(sr_engine *e, MDB_txn **t, MDB_cursor **cur)
{
    int rc = sr_index_read_begin(e->ix, t);
    if (rc) return rc;
    if ((rc = sr_index_err(mdb_cursor_open(*t, DB(e, SR_DB_MTREE), cur)))) sr_index_read_end(e->ix, *t);
    return rc;
}

int sr_read_checkpoint_at(sr_engine *e, int64_t at_ms, sr_checkpoint *out)
{
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = mtree_read_open(e, &t, &cur);
    if (rc) return rc;
    /* the last key <= (at, max seq) among the checkpoints' */
    uint8_t k[17];
    ckpt_key(k, at_ms, UINT64_MAX);
    MDB_val K = {17, k}, V;
    int mrc = mdb_cursor_get(cur, &K, &V, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &K, &V, MDB_LAST);
    else if (!mrc && (K.mv_size != 17 || memcmp(K.mv_data, k, 17) > 0)) mrc = mdb_cursor_get(cur, &K, &V, MDB_PREV);
    while (!mrc && !(K.mv_size == 17 && ((const uint8_t *)K.mv_data)[0] == MT_CKPT)) {
        /* past the checkpoints (the head's key 0xFF sorts after them) */
        if (((const uint8_t *)K.mv_data)[0] < MT_CKPT) {
            mrc = MDB_NOTFOUND;
            break;
        }
        mrc = mdb_cursor_get(cur, &K, &V, MDB_PREV);
    }
    rc = mrc == MDB_NOTFOUND ? SR_ENOTFOUND : sr_index_err(mrc);
    if (!rc) rc = dec_ckpt(&V, out);
    mdb_cursor_close(cur);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_read_checkpoint_latest(sr_engine *e, sr_checkpoint *out) { return sr_read_checkpoint_at(e, INT64_MAX, out); }

int sr_read_tree_head(sr_engine *e, sr_tree_head *out)
{
    memset(out, 0, sizeof *out);
    if (e->mt_off) return SR_ENOTFOUND;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    mt_ctx c = {e, t, NULL, 0};
    uint64_t next;
    rc = head_read(e, t, &out->size, &next);
    if (!rc) rc = sr_mt_root(get_node, &c, out->size, out->root);
    out->last_seq = next - 1;
    if (!rc && out->size) {
        uint8_t k[9];
        MDB_val v;
        node_key(k, 0, out->size - 1);
        rc = get(t, DB(e, SR_DB_MTREE), k, 9, &v);
        if (!rc && v.mv_size == MT_LEAF_VAL) memcpy(out->tip, (const uint8_t *)v.mv_data + 44, SR_HASH_LEN);
        else if (!rc) rc = SR_ENOTFOUND; /* its last leaf was dropped with a trimmed segment: nothing to sign */
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

/* the leaf holding seq among [0, size): binary search over the level-0 rows */
static int leaf_of(sr_engine *e, MDB_txn *t, uint64_t seq, uint64_t size, uint64_t *leaf)
{
    uint64_t s0, n0, lo;
    int hrc = head_read3(e, t, &s0, &n0, &lo);
    if (hrc) return hrc;
    if (lo >= size) return SR_ENOTFOUND; /* every leaf of that tree was dropped with a trimmed segment */
    uint64_t hi = size; /* the answer is in [lo, hi) */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t k[9];
        MDB_val v;
        node_key(k, 0, mid);
        int rc = get(t, DB(e, SR_DB_MTREE), k, 9, &v);
        if (rc) return rc;
        if (v.mv_size != MT_LEAF_VAL) return SR_ECORRUPT;
        if (sr_get_le64((const uint8_t *)v.mv_data + 32) <= seq) lo = mid;
        else hi = mid;
    }
    uint8_t k[9];
    MDB_val v;
    node_key(k, 0, lo);
    int rc = get(t, DB(e, SR_DB_MTREE), k, 9, &v);
    if (rc) return rc;
    if (v.mv_size != MT_LEAF_VAL) return SR_ECORRUPT;
    uint64_t f = sr_get_le64((const uint8_t *)v.mv_data + 32);
    uint32_t n = sr_get_le32((const uint8_t *)v.mv_data + 40);
    if (seq < f || seq >= f + n) return SR_ENOTFOUND;
    *leaf = lo;
    return SR_OK;
}

/* The opening both proofs share: the tree kept, one read transaction (*t,
 * ended by the caller also on an error past this), the tree's size. */
static int proof_begin(sr_engine *e, MDB_txn **t, uint64_t *size, sr_errinfo *ei)
{
    if (e->mt_off) return sr_errinfo_set(ei, SR_ENOTFOUND, "the Merkle tree is not kept (the log was trimmed past it)");
    int rc = sr_index_read_begin(e->ix, t);
    if (rc) return rc;
    uint64_t next;
    if ((rc = head_read(e, *t, size, &next))) sr_index_read_end(e->ix, *t);
    return rc;
}

int sr_read_inclusion(sr_engine *e, uint64_t seq, uint64_t tree_size, sr_inclusion *out, sr_errinfo *ei)
{
    memset(out, 0, sizeof *out);
    MDB_txn *t;
    uint64_t size;
    int rc = proof_begin(e, &t, &size, ei);
    if (rc) return rc;
    mt_ctx c = {e, t, NULL, 0};
    if (!tree_size) tree_size = size;
    if (tree_size > size || !tree_size)
        rc = sr_errinfo_set(ei, SR_EINVAL, "tree size %" PRIu64 " is not in the tree (size %" PRIu64 ")", tree_size,
                            size);
    if (!rc && (rc = leaf_of(e, t, seq, tree_size, &out->leaf_index)) == SR_ENOTFOUND)
        sr_errinfo_set(ei, rc, "record %" PRIu64 " is in no leaf of the tree of size %" PRIu64
                               " (not written yet, or dropped with a trimmed log segment)",
                       seq, tree_size);
    if (!rc && (rc = sr_mt_inclusion(get_node, &c, out->leaf_index, tree_size, out->path, &out->npath)) == SR_ENOTFOUND)
        sr_errinfo_set(ei, rc, "a node the proof needs was dropped with a trimmed log segment");
    if (!rc) rc = sr_mt_root(get_node, &c, tree_size, out->root);
    sr_index_read_end(e->ix, t);
    if (rc) return rc;
    out->tree_size = tree_size;
    /* the leaf's data, read from the log: an outsider hashes it again */
    sr_log_iter *it;
    if ((rc = sr_log_iter_open(e->log, seq, &it))) return rc;
    sr_log_leaf l;
    rc = sr_log_leaf_next(it, &l);
    sr_log_iter_close(it);
    if (rc == SR_DONE) rc = SR_ENOTFOUND;
    if (rc) return sr_errinfo_set(ei, rc, "reading the block of record %" PRIu64 " from the log", seq);
    if (seq < l.first_seq || seq >= l.first_seq + l.count)
        return sr_errinfo_set(ei, SR_ENOTFOUND, "record %" PRIu64 " was dropped with a trimmed log segment", seq);
    memcpy(out->hdr, l.hdr, sizeof out->hdr);
    memcpy(out->digest, l.digest, SR_HASH_LEN);
    memcpy(out->leaf_hash, l.hash, SR_HASH_LEN);
    out->first_seq = l.first_seq;
    out->count = l.count;
    return SR_OK;
}

int sr_read_consistency(sr_engine *e, uint64_t from, uint64_t to, sr_consistency *out, sr_errinfo *ei)
{
    memset(out, 0, sizeof *out);
    MDB_txn *t;
    uint64_t size;
    int rc = proof_begin(e, &t, &size, ei);
    if (rc) return rc;
    mt_ctx c = {e, t, NULL, 0};
    if (!to) to = size;
    if (from == 0 || from > to || to > size)
        rc = sr_errinfo_set(ei, SR_EINVAL, "sizes %" PRIu64 " to %" PRIu64 ": need 0 < from <= to <= %" PRIu64, from, to,
                            size);
    if (!rc && (rc = sr_mt_consistency(get_node, &c, from, to, out->path, &out->npath)) == SR_ENOTFOUND)
        sr_errinfo_set(ei, rc, "a node the proof needs was dropped with a trimmed log segment");
    if (!rc) rc = sr_mt_root(get_node, &c, from, out->root1);
    if (!rc) rc = sr_mt_root(get_node, &c, to, out->root2);
    sr_index_read_end(e->ix, t);
    out->from = from;
    out->to = to;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* What `suiro audit verify` reads of the index (records.h)                  */

int sr_read_checkpoints(sr_engine *e, sr_checkpoint_fn fn, void *ctx)
{
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = mtree_read_open(e, &t, &cur);
    if (rc) return rc;
    sr_checkpoint *ck = sr_malloc(sizeof *ck);
    if (!ck) rc = SR_ENOMEM;
    uint8_t k = MT_CKPT;
    MDB_val K = {1, &k}, V;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &K, &V, MDB_SET_RANGE);
    while (!rc && !mrc && K.mv_size == 17 && ((const uint8_t *)K.mv_data)[0] == MT_CKPT) {
        if (!(rc = dec_ckpt(&V, ck))) rc = fn(ctx, ck);
        if (!rc) mrc = mdb_cursor_get(cur, &K, &V, MDB_NEXT);
    }
    if (!rc && mrc && mrc != MDB_NOTFOUND) rc = sr_index_err(mrc);
    sr_free(ck);
    mdb_cursor_close(cur);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_read_tree_leaves(sr_engine *e, uint64_t from, sr_tree_leaf_fn fn, void *ctx)
{
    if (e->mt_off) return SR_ENOTFOUND;
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = mtree_read_open(e, &t, &cur);
    if (rc) return rc;
    uint8_t k[9];
    node_key(k, 0, from);
    MDB_val K = {9, k}, V;
    int mrc = mdb_cursor_get(cur, &K, &V, MDB_SET_RANGE);
    while (!rc && !mrc && K.mv_size == 9 && ((const uint8_t *)K.mv_data)[0] == 0) {
        if (V.mv_size == MT_LEAF_VAL) { /* a frontier's node kept across a trim has its hash only */
            const uint8_t *v = V.mv_data;
            sr_tree_leaf l = {.index = get_be64((const uint8_t *)K.mv_data + 1), .first_seq = sr_get_le64(v + 32),
                              .count = sr_get_le32(v + 40)};
            memcpy(l.hash, v, SR_HASH_LEN);
            memcpy(l.tip, v + 44, SR_HASH_LEN);
            rc = fn(ctx, &l);
        }
        if (!rc) mrc = mdb_cursor_get(cur, &K, &V, MDB_NEXT);
    }
    if (!rc && mrc && mrc != MDB_NOTFOUND) rc = sr_index_err(mrc);
    mdb_cursor_close(cur);
    sr_index_read_end(e->ix, t);
    return rc == SR_DONE ? SR_OK : rc;
}

int sr_read_tree_base(sr_engine *e, uint64_t *base, uint8_t hashes[][SR_TREE_HASH])
{
    *base = 0;
    if (e->mt_off) return SR_ENOTFOUND;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    mt_ctx c = {e, t, NULL, 0};
    uint64_t size, next;
    sr_mt_frontier *f = sr_malloc(sizeof *f);
    if (!f) rc = SR_ENOMEM;
    if (!rc) rc = head_read3(e, t, &size, &next, base);
    if (!rc) rc = sr_mt_frontier_at(get_node, &c, *base, f);
    if (!rc) memcpy(hashes, f->h, sizeof f->h);
    sr_free(f);
    sr_index_read_end(e->ix, t);
    return rc;
}
