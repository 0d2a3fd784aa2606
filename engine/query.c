/*
 * engine/query.c -- the readers: point lookups (the point table), latest values,
 * ranges and downsampling (chunks, late samples and heads merged), masters,
 * registry, requests, monitors, documents, files, stats, the content hash.
 *
 * INVARIANTS
 *  (1) A reader sees exactly its LMDB snapshot (engine.c invariants 5, 7):
 *      a head or late sample only if its seq <= the snapshot's W; a reader
 *      whose snapshot predates what the heads still hold retries.
 *  (2) A point lookup answers from the point table (points.c), which
 *      equals the committed index after the writer's sr__points_commit (in
 *      the moment between a group's index commit and it, the index before
 *      that group: points.c invariant 3).
 *  (3) Readers never wait for the writer beyond a head's stripe.
 */
#include "engine/engine_int.h"
#include "engine/records.h"

#include "storage/crypto.h"
#include "storage/series.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */

/* (point_info does the lookup) */
int sr_engine_point(sr_engine *e, const char *op, const char *data_id, uint32_t *point, sr_vtype *type)
{
    sr_point_info info;
    int rc = sr_engine_point_info(e, op, data_id, &info);
    if (rc) return rc;
    *point = info.point;
    if (type) *type = info.type;
    return SR_OK;
}

/* the point table (points.c): no cache to go stale, every point */
int sr_engine_point_info(sr_engine *e, const char *op, const char *data_id, sr_point_info *out)
{
    return sr__points_lookup(e, op, data_id, out);
}

int sr_engine_latest_each(sr_engine *e, uint32_t from, size_t max, sr_latest_fn fn, void *ctx, uint32_t *next)
{
    MDB_txn *t;
    *next = 0;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_LATEST), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    uint8_t k[4];
    be32(k, from);
    MDB_val K = {4, k}, V;
    size_t n = 0;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    for (; !rc && r == 0; r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        if (K.mv_size != 4) continue;
        const uint8_t *kp = K.mv_data;
        uint32_t p = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 | (uint32_t)kp[2] << 8 | kp[3];
        if (n == max) { /* where the next call starts */
            *next = p;
            break;
        }
        n++;
        sr_sample s;
        sr_vtype ty;
        if (latest_decode(V.mv_data, V.mv_size, &s, &ty)) continue; /* verify reports it */
        sr_ptview pi;
        char *scratch = NULL;
        if (sr__points_view(e, t, p, &pi, &scratch) == SR_OK) rc = fn(ctx, pi.op, pi.id, p, s.ts);
        sr_free(scratch);
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_latest(sr_engine *e, const uint32_t *points, size_t n, sr_sample *out, int *found, sr_buf *strings)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    /* string offsets first, pointers after (the buffer may move) */
    size_t *soff = NULL;
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t k[4];
        be32(k, points[i]);
        MDB_val v;
        found[i] = 0;
        if (get(t, DB(e, SR_DB_LATEST), k, 4, &v) != SR_OK) continue;
        sr_vtype ty;
        if ((rc = latest_decode(v.mv_data, v.mv_size, &out[i], &ty))) break;
        found[i] = 1;
        if (ty == SR_VT_STRING) {
            if (!strings) {
                rc = SR_EINVAL;
                break;
            }
            if (!soff && !(soff = sr_calloc(n, sizeof *soff))) {
                rc = SR_ENOMEM;
                break;
            }
            soff[i] = strings->len + 1;
            if ((rc = sr_buf_append(strings, out[i].v.str.s, out[i].v.str.slen))) break;
            if ((rc = sr_buf_append(strings, "", 1))) break;
        }
    }
    if (!rc && soff)
        for (size_t i = 0; i < n; i++)
            if (soff[i]) out[i].v.str.s = (const char *)strings->data + soff[i] - 1;
    sr_free(soff);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* append a sample (copying string bytes into strings, as an offset) */
static int out_sample(sr_buf *samples, sr_buf *strings, const sr_sample *s, sr_vtype t)
{
    sr_sample c = *s;
    if (t == SR_VT_STRING) {
        if (!strings) return SR_EINVAL;
        size_t off = strings->len;
        int rc = sr_buf_append(strings, s->v.str.s, s->v.str.slen);
        if (!rc) rc = sr_buf_append(strings, "", 1);
        if (rc) return rc;
        c.v.str.s = (const char *)(uintptr_t)off;
    }
    return sr_buf_append(samples, &c, sizeof c);
}

/* Where range_once puts each sample, in time order: copied into buffers
 * (queries) or fed to an aggregator (downsampling, no copy). stop_after: an
 * ascending read stops once it has that many (0: all). */
typedef struct sink {
    sr_buf *samples, *strings;
    sr_agg *agg;
    size_t stop_after, count;
} sink;

static int sink_add(sink *k, const sr_sample *s, sr_vtype t)
{
    k->count++;
    if (k->agg) {
        sr_agg_add(k->agg, s);
        return SR_OK;
    }
    return out_sample(k->samples, k->strings, s, t);
}

/* A stored sample s, merged with the late samples ov[*iov..nov): those
 * before it go first; one of the same ts replaces it. */
static inline int sink_merged(sink *out, const sr_sample *ov, size_t nov, size_t *iov, sr_sample *s, sr_vtype type)
{
    int rc;
    while (*iov < nov && ov[*iov].ts < s->ts)
        if ((rc = sink_add(out, &ov[(*iov)++], type))) return rc;
    if (*iov < nov && ov[*iov].ts == s->ts) *s = ov[(*iov)++];
    return sink_add(out, s, type);
}

static int range_once(sr_engine *e, const sr_range_q *q, sink *out, int *retry, sr_vtype *type_out)
{
    MDB_txn *t;
    MDB_cursor *c = NULL;
    sr_sample *ov = NULL; /* late samples to merge (invariant 7) */
    size_t nov = 0, iov = 0;
    sr_buf ovstr;
    sr_buf_init(&ovstr);
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint64_t w = sr_index_watermark(e->ix, t);
    int can_stop = out->stop_after && !q->desc;
    int64_t lo = q->from, hi = q->to; /* [lo, hi) */
    if (q->after != INT64_MIN) {
        if (!q->desc && q->after + 1 > lo) lo = q->after + 1;
        if (q->desc && q->after < hi) hi = q->after;
    }
    sr_vtype type = SR_VT_NUMBER;
    pointinfo pi = {0};
    if (sr__pointinfo_get(e, t, q->point, &pi) == SR_OK) {
        type = (sr_vtype)pi.m->type;
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
    }
    *type_out = type;
    if (lo >= hi) goto done;
    /* the late samples this snapshot must see (invariant 7): copied, sorted */
    pthread_mutex_lock(stripe_of(e, q->point));
    head *lh = head_find(e, q->point);
    if (lh && lh->late_prev_seq > w) *retry = 1;
    if (lh && !*retry && (lh->nlate || (lh->old_late && lh->old_late_seq > w))) {
        size_t cap = lh->nlate + (lh->old_late_seq > w ? lh->nold_late : 0);
        ov = cap ? sr_malloc(cap * sizeof *ov) : NULL;
        if (cap && !ov) rc = SR_ENOMEM;
        /* two sorted lists; on equal ts the newer (current) list wins */
        const hsample *a = lh->old_late_seq > w ? lh->old_late : NULL, *b = lh->late;
        size_t na = a ? lh->nold_late : 0, nb = lh->nlate, ia = 0, ib = 0;
        while (!rc && (ia < na || ib < nb)) {
            const hsample *x;
            if (ib >= nb || (ia < na && a[ia].ts < b[ib].ts)) x = &a[ia++];
            else {
                if (ia < na && a[ia].ts == b[ib].ts) ia++;
                x = &b[ib++];
            }
            if (x->seq > w || x->ts < lo || x->ts >= hi) continue;
            if (nov && ov[nov - 1].ts == x->ts) nov--; /* a newer one of the same ts (b after a) */
            hs_to_sample(x, type, &ov[nov]);
            if (type == SR_VT_STRING) { /* the strings may be freed once the stripe is released */
                size_t off = ovstr.len;
                if ((rc = sr_buf_append(&ovstr, x->v.s.p, x->v.s.n + 1))) break;
                ov[nov].v.str.s = (const char *)(uintptr_t)off;
            }
            nov++;
        }
    }
    pthread_mutex_unlock(stripe_of(e, q->point));
    if (type == SR_VT_STRING)
        for (size_t i = 0; i < nov; i++) ov[i].v.str.s = (const char *)ovstr.data + (uintptr_t)ov[i].v.str.s;
    if (rc || *retry) goto done_ov;
    /* stored chunks */
    uint8_t k[12];
    sr_series_key(k, q->point, lo);
    MDB_val K = {12, k}, V;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c)))) goto done;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    /* a chunk that starts before lo may still hold samples >= lo */
    int r2 = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
    if (r2 == 0 && (K.mv_size != 12 || get_be32(K.mv_data) != q->point)) r2 = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    else if (r2 == MDB_NOTFOUND) r2 = mdb_cursor_get(c, &K, &V, MDB_FIRST);
    r = r2;
    while (r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == q->point) {
        sr_chunk_dec d;
        if ((rc = sr_chunk_dec_init(&d, V.mv_data, V.mv_size))) goto done;
        if (d.info.first_ts >= hi) break;
        if (d.info.last_ts >= lo) {
            sr_sample s;
            if (out->agg) {
                /* straight into the aggregator, up to the next late sample or
                 * hi (it drops samples before lo: its from is lo); s is the
                 * first sample at or after that stop */
                for (;;) {
                    int64_t stop = iov < nov && ov[iov].ts < hi ? ov[iov].ts : hi;
                    uint64_t fed = 0;
                    rc = sr_chunk_dec_agg(&d, out->agg, stop, &s, &fed);
                    out->count += fed;
                    if (rc || s.ts >= hi) break;
                    if ((rc = sink_merged(out, ov, nov, &iov, &s, type))) goto done;
                }
            } else {
                while ((rc = sr_chunk_dec_next(&d, &s)) == SR_OK) {
                    if (s.ts < lo) continue;
                    if (s.ts >= hi) break;
                    if ((rc = sink_merged(out, ov, nov, &iov, &s, type))) goto done;
                }
            }
            if (rc == SR_DONE) rc = SR_OK;
            if (rc) goto done;
            /* enough for an ascending read with a limit: the rest is later */
            if (can_stop && out->count >= out->stop_after) goto done;
        }
        r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    if (r != 0 && r != MDB_NOTFOUND) {
        rc = sr_index_err(r);
        goto done;
    }
    /* late samples after the last chunk's (they are older than every head sample) */
    while (!rc && iov < nov) rc = sink_add(out, &ov[iov++], type);
    if (rc) goto done;
    /* the head (invariant 5) */
    pthread_mutex_lock(stripe_of(e, q->point));
    head *h = head_find(e, q->point);
    if (h) {
        if (h->prev_flush_seq > w) *retry = 1; /* a flush we can see neither in memory nor in the snapshot */
        for (int g = 0; g < 2 && !*retry && !rc; g++) {
            hsample *v = g ? h->v : h->old;
            size_t n = g ? h->n : h->nold;
            if (!g && (!h->old || h->old_seq <= w)) continue; /* that chunk is in our snapshot */
            for (size_t i = 0; i < n && !rc; i++) {
                if (v[i].seq > w || v[i].ts < lo) continue;
                if (v[i].ts >= hi) break;
                sr_sample s;
                hs_to_sample(&v[i], type, &s);
                rc = sink_add(out, &s, type);
            }
        }
    }
    pthread_mutex_unlock(stripe_of(e, q->point));
done:
    if (c) mdb_cursor_close(c);
done_ov:
    sr_free(ov);
    sr_buf_release(&ovstr);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_range(sr_engine *e, const sr_range_q *q, sr_buf *samples, sr_buf *strings, int *more)
{
    size_t base = samples->len;
    int rc, retry;
    sr_vtype type = SR_VT_NUMBER;
    size_t sbase = strings ? strings->len : 0;
    do {
        retry = 0;
        samples->len = base;
        if (strings) strings->len = sbase;
        sink k = {samples, strings, NULL, q->limit && !q->desc ? q->limit + 1 : 0, 0};
        rc = range_once(e, q, &k, &retry, &type);
    } while (!rc && retry);
    if (rc) return rc;
    *more = 0;
    if (samples->len == base) return SR_OK;
    sr_sample *s = (sr_sample *)(samples->data + base);
    size_t n = (samples->len - base) / sizeof *s;
    if (q->desc)
        for (size_t i = 0; i < n / 2; i++) {
            sr_sample x = s[i];
            s[i] = s[n - 1 - i];
            s[n - 1 - i] = x;
        }
    *more = 0;
    if (q->limit && n > q->limit) {
        n = q->limit;
        samples->len = base + n * sizeof *s;
        *more = 1;
    }
    /* string offsets -> pointers (valid until strings changes) */
    if (type == SR_VT_STRING && strings)
        for (size_t i = 0; i < n; i++) s[i].v.str.s = (const char *)strings->data + (uintptr_t)s[i].v.str.s;
    return SR_OK;
}

int sr_engine_downsample(sr_engine *e, uint32_t point, int64_t from, int64_t to, int64_t interval, sr_agg_fill fill,
                         sr_buf *buckets)
{
    if (interval <= 0 || from >= to) return SR_EINVAL;
    if ((to - from) / interval > 10000000) return SR_ETOOBIG;
    sr_range_q q = {.point = point, .from = from, .to = to, .after = INT64_MIN};
    sr_vtype type = SR_VT_NUMBER;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    pointinfo pi = {0};
    if (sr__pointinfo_get(e, t, point, &pi) == SR_OK) {
        type = (sr_vtype)pi.m->type;
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
    }
    sr_index_read_end(e->ix, t);
    /* samples go straight from the chunk decoder into the aggregator */
    sr_agg *a = NULL;
    int retry;
    do {
        retry = 0;
        sr_agg_destroy(a);
        a = NULL;
        if ((rc = sr_agg_create(type, from, to, interval, fill, &a))) break;
        sink k = {NULL, NULL, a, 0, 0};
        sr_vtype t2;
        rc = range_once(e, &q, &k, &retry, &t2);
    } while (!rc && retry);
    if (!rc) rc = sr_agg_status(a);
    sr_bucket tmp[256];
    size_t got;
    while (!rc && (got = sr_agg_emit(a, tmp, 256)) > 0) rc = sr_buf_append(buckets, tmp, got * sizeof *tmp);
    sr_agg_destroy(a);
    return rc;
}

/* A value of a timed database (schema.h layout 9) without its write times:
 * SR_OK, or SR_ECORRUPT for a value too short to hold them. */
static int strip_times(MDB_val *v)
{
    sr__wtimes w;
    const void *p = v->mv_data;
    if (wtimes_strip(&p, &v->mv_size, &w)) return SR_ECORRUPT;
    v->mv_data = (void *)p;
    return SR_OK;
}

/* Copy the value at key (a \0 b \0 c) of db into out (a timed database's
 * without its write times). */
static int get_copy(sr_engine *e, sr_dbi db, const char *a, const char *b, const char *c, sr_buf *out)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, a, b, c);
    MDB_val v;
    rc = kl ? get(t, DB(e, db), k, kl, &v) : SR_ENOTFOUND;
    if (!rc && sr__db_timed(db)) rc = strip_times(&v);
    if (!rc) {
        out->len = 0;
        rc = sr_buf_append(out, v.mv_data, v.mv_size);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_master_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed)
{
    char ks[2] = {(char)('0' + kind), 0};
    return get_copy(e, SR_DB_MASTERS, op, ks, id, packed);
}

/* Append one value to out, preceded by its 4-byte LE length. */
static int append_framed(sr_buf *out, const MDB_val *v)
{
    uint8_t lb[4];
    sr_put_le32(lb, (uint32_t)v->mv_size);
    int rc = sr_buf_append(out, lb, 4);
    return rc ? rc : sr_buf_append(out, v->mv_data, v->mv_size);
}

/* Every value of db whose key starts with the kl bytes of k (k NULL: every
 * value of db) and, given keep, whose key it keeps: records each preceded by
 * a 4-byte LE length. kl 0 with a k (a key that did not fit) is SR_EINVAL. */
static int scan_prefix(sr_engine *e, sr_dbi db, const uint8_t *k, size_t kl, int (*keep)(const MDB_val *key),
                       sr_buf *out, size_t *count)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    *count = 0;
    if ((k && !kl) || (rc = sr_index_err(mdb_cursor_open(t, DB(e, db), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc ? rc : SR_EINVAL;
    }
    MDB_val K = {kl, (void *)k}, V;
    int r = mdb_cursor_get(c, &K, &V, k ? MDB_SET_RANGE : MDB_FIRST);
    while (r == 0 && K.mv_size >= kl && (!kl || !memcmp(K.mv_data, k, kl))) {
        if (!keep || keep(&K)) {
            if ((sr__db_timed(db) && (rc = strip_times(&V))) || (rc = append_framed(out, &V))) break;
            (*count)++;
        }
        r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* Every value of db whose key starts with op \0 kind. */
static int scan_kind(sr_engine *e, sr_dbi db, const char *op, int kind, sr_buf *out, size_t *count)
{
    uint8_t k[300];
    char ks[2] = {(char)('0' + kind), 0};
    return scan_prefix(e, db, k, mkkey(k, sizeof k, op, ks, ""), NULL, out, count);
}

int sr_engine_master_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count)
{
    return scan_kind(e, SR_DB_MASTERS, op, kind, out, count);
}

int sr_engine_registry_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count)
{
    return scan_kind(e, SR_DB_REGISTRY, op, kind, out, count);
}

/* keys op \0 kind \0 id: an operator's own entry is (op, '1', op) */
static int own_operator_key(const MDB_val *key)
{
    const uint8_t *k = key->mv_data;
    const uint8_t *z = memchr(k, 0, key->mv_size);
    size_t ol = z ? (size_t)(z - k) : 0;
    return z && key->mv_size == 2 * ol + 3 && k[ol + 1] == '0' + SR_RG_OPERATOR && !k[ol + 2] &&
           !memcmp(k, k + ol + 3, ol);
}

int sr_engine_operator_list(sr_engine *e, sr_buf *out, size_t *count)
{
    return scan_prefix(e, SR_DB_REGISTRY, NULL, 0, own_operator_key, out, count);
}

int sr_engine_registry_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed)
{
    char ks[2] = {(char)('0' + kind), 0};
    return get_copy(e, SR_DB_REGISTRY, op, ks, id, packed);
}

int sr_engine_user_get(sr_engine *e, const char *id, sr_buf *packed)
{
    return get_copy(e, SR_DB_USERS, id, NULL, NULL, packed);
}

int sr_engine_policy_get(sr_engine *e, const char *op, sr_buf *packed)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    size_t ol = strlen(op);
    MDB_val v;
    /* the platform's key is one zero byte (apply.c apply_login_policy) */
    rc = ol > 255 ? SR_ENOTFOUND : get(t, DB(e, SR_DB_POLICIES), ol ? op : "", ol ? ol : 1, &v);
    if (!rc) {
        packed->len = 0;
        rc = sr_buf_append(packed, v.mv_data, v.mv_size);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_push_mark(sr_engine *e, const char *op, const char *app, uint64_t *through)
{
    uint8_t k[520];
    if (strlen(op) > 255 || strlen(app) > 255 || !op[0] != !app[0]) return SR_ENOTFOUND;
    size_t kl = sr_pushq_key(k, sizeof k, op, app);
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_val v;
    rc = get(t, DB(e, SR_DB_PUSHQ), k, kl, &v);
    if (!rc && v.mv_size != 8) rc = SR_ECORRUPT;
    if (!rc) *through = sr_get_le64(v.mv_data);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_notify_mark(sr_engine *e, uint64_t *through)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_val v;
    rc = get(t, DB(e, SR_DB_NOTIFYQ), "m", 1, &v);
    if (!rc && v.mv_size != 8) rc = SR_ECORRUPT;
    if (!rc) *through = sr_get_le64(v.mv_data);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_notify_done(sr_engine *e, uint64_t alarm_seq, const char *op, const char *target, int *outcome,
                          uint32_t *attempts)
{
    uint8_t k[540];
    size_t kl = strlen(op) > 255 || strlen(target) > 255 ? 0 : sr_notifyq_key(k, sizeof k, alarm_seq, op, target);
    if (!kl) return SR_ENOTFOUND;
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_val v;
    rc = get(t, DB(e, SR_DB_NOTIFYQ), k, kl, &v);
    if (!rc && v.mv_size != 5) rc = SR_ECORRUPT;
    if (!rc) {
        *outcome = ((const uint8_t *)v.mv_data)[0];
        *attempts = sr_get_le32((const uint8_t *)v.mv_data + 1);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_push_marks(sr_engine *e, sr_push_mark_fn fn, void *ctx)
{
    MDB_txn *t;
    MDB_cursor *c = NULL;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_PUSHQ), &c));
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; !rc && mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char key[520], *app;
        if (v.mv_size != 8 || k.mv_size >= sizeof key) {
            rc = SR_ECORRUPT;
            break;
        }
        memcpy(key, k.mv_data, k.mv_size);
        key[k.mv_size] = 0;
        app = k.mv_size > 1 ? memchr(key, 0, k.mv_size) : NULL; /* op \0 app, or the start's one zero byte */
        if (k.mv_size > 1 && !app) {
            rc = SR_ECORRUPT;
            break;
        }
        rc = fn(ctx, key, app ? app + 1 : "", sr_get_le64(v.mv_data));
    }
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = sr_index_err(mrc);
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_log_each(sr_engine *e, uint64_t from, sr_event_fn fn, void *ctx, uint64_t *last)
{
    uint64_t first = sr_log_first_seq(e->log), stop = sr_log_durable_seq(e->log); /* next seq */
    if (last) *last = stop ? stop - 1 : 0;
    if (from < first) from = first;
    if (from >= stop) return SR_OK;
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(e->log, from, &it);
    if (rc) return rc;
    uint64_t seq;
    sr_slice rec;
    while (((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) && seq < stop) {
        if (rc == SR_EERASED) { /* its key was destroyed: no event to show (suiro log verify reports them) */
            rc = SR_OK;
            continue;
        }
        sr_rec r = SR_REC_INIT;
        sr_event_view v;
        rc = sr_event_decode(rec.data, rec.len, &r, &v);
        if (!rc) {
            v.rec = rec.data;
            v.rec_len = rec.len;
            rc = fn(ctx, &v);
        }
        sr_rec_close(&r);
        if (rc) break;
    }
    if (rc == SR_DONE) rc = SR_OK;
    sr_log_iter_close(it);
    return rc;
}

int sr_engine_user_list(sr_engine *e, sr_buf *out, size_t *count)
{
    return scan_prefix(e, SR_DB_USERS, NULL, 0, NULL, out, count);
}

int sr_engine_pending_get(sr_engine *e, const char *id, sr_buf *packed)
{
    return get_copy(e, SR_DB_PENDING, id, NULL, NULL, packed);
}

int sr_engine_pending_list(sr_engine *e, sr_buf *out, size_t *count)
{
    return scan_prefix(e, SR_DB_PENDING, NULL, 0, NULL, out, count);
}

int sr_engine_alarm_get(sr_engine *e, const char *id, sr_buf *packed)
{
    if (!id || id[0] != 'A') return SR_ENOTFOUND; /* the open rows' keys start with 1 */
    return get_copy(e, SR_DB_ALARMS, id, NULL, NULL, packed);
}

int sr_engine_alarm_list(sr_engine *e, sr_buf *out, size_t *count)
{
    return scan_prefix(e, SR_DB_ALARMS, (const uint8_t *)"A", 1, NULL, out, count);
}

int sr_engine_alarm_open_list(sr_engine *e, sr_buf *out, size_t *count)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    *count = 0;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_ALARMS), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    MDB_val K = {1, "\1"}, V, A;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    for (; !rc && r == 0 && K.mv_size && ((const uint8_t *)K.mv_data)[0] == 1; r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        int g = get(t, DB(e, SR_DB_ALARMS), V.mv_data, V.mv_size, &A);
        if (g == SR_ENOTFOUND) continue; /* its key was destroyed (ixseal.h invariant 4) */
        if (!(rc = g) && !(rc = append_framed(out, &A))) (*count)++;
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_request_get(sr_engine *e, const char *op, const char *req, const char *gw, sr_buf *created,
                          sr_buf *state)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[400];
    size_t kl = rkey(k, sizeof k, op, req, gw, 'c');
    MDB_val v;
    created->len = state->len = 0;
    rc = kl ? get(t, DB(e, SR_DB_REQUESTS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc) rc = strip_times(&v);
    if (!rc) rc = sr_buf_append(created, v.mv_data, v.mv_size);
    if (!rc) {
        k[kl - 1] = 's';
        if (get(t, DB(e, SR_DB_REQUESTS), k, kl, &v) == SR_OK && !(rc = strip_times(&v)))
            rc = sr_buf_append(state, v.mv_data, v.mv_size);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_monitor_get(sr_engine *e, const char *op, const char *monitor, sr_buf *packed)
{
    return get_copy(e, SR_DB_MONITORS, op, monitor, NULL, packed);
}

int sr_engine_monitor_list(sr_engine *e, const char *op, sr_buf *out, size_t *count)
{
    uint8_t k[100];
    return scan_prefix(e, SR_DB_MONITORS, k, mkkey(k, sizeof k, op, "", NULL), NULL, out, count);
}

int sr_engine_alive_list(sr_engine *e, const char *op, sr_buf *out, size_t *count)
{
    uint8_t k[100];
    if (!op || !op[0]) return scan_prefix(e, SR_DB_ALIVE, NULL, 0, NULL, out, count);
    size_t kl = mkkey(k, sizeof k, op, "", NULL);
    if (!kl) {
        *count = 0;
        return SR_OK; /* an id this long names no operator */
    }
    return scan_prefix(e, SR_DB_ALIVE, k, kl, NULL, out, count);
}

int sr_engine_doc_get(sr_engine *e, const char *op, const char *coll, const char *id, uint64_t *revision,
                      sr_buf *json, int *owner_kind, char *owner)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, coll, id);
    MDB_val v;
    sr__docval d;
    rc = kl ? get(t, DB(e, SR_DB_DOCS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc && doc_decode(v.mv_data, v.mv_size, &d)) rc = SR_ECORRUPT;
    if (!rc) {
        *revision = d.revision;
        if (owner_kind) *owner_kind = d.owner_kind;
        if (owner) {
            memcpy(owner, d.owner, d.ownerl);
            owner[d.ownerl] = 0;
        }
        if (json) {
            json->len = 0;
            rc = sr_buf_append(json, d.json, d.jsonl);
        }
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

void sr_engine_get_open_stats(sr_engine *e, sr_engine_open_stats *out) { *out = e->ost; }

int sr_engine_write_state(sr_engine *e, int *cause)
{
    pthread_mutex_lock(&e->mu);
    int st = e->nospace_ro ? SR_ENOSPC : e->poisoned ? SR_EPOISONED : SR_OK;
    if (cause) *cause = e->poison_cause;
    pthread_mutex_unlock(&e->mu);
    return st;
}

void sr_engine_get_stats(sr_engine *e, sr_engine_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&e->mu); /* the writer may be reopening the log (§7) */
    out->log_next_seq = e->log ? sr_log_next_seq(e->log) : 0;
    pthread_mutex_unlock(&e->mu);
    out->watermark = atomic_load(&e->watermark);
    out->commands = atomic_load(&e->st_commands);
    out->events = atomic_load(&e->st_events);
    out->groups = atomic_load(&e->st_groups);
    out->flushes = atomic_load(&e->st_flushes);
    out->extends = atomic_load(&e->st_extends);
    out->points = atomic_load(&e->npoints);
    pthread_mutex_lock(&e->mu);
    out->queue_depth = e->depth;
    pthread_mutex_unlock(&e->mu);
    sr_hist_read(&e->h_sync, &out->fsync_us);
    sr_hist_read(&e->h_commit, &out->commit_us);
    sr_hist_read(&e->h_group, &out->group_cmds);
    MDB_env *env = e->ix ? sr_index_env(e->ix) : NULL;
    MDB_envinfo ei;
    MDB_stat st;
    if (env && !mdb_env_info(env, &ei) && !mdb_env_stat(env, &st)) {
        out->map_bytes = ei.me_mapsize;
        out->map_used_bytes = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
    }
}

void sr_engine_queue_each(sr_engine *e, void (*fn)(void *ctx, const char *op, uint32_t depth), void *ctx)
{
    pthread_mutex_lock(&e->mu);
    for (size_t k = 0; k < e->nq; k++) /* the replicated events' queue (origins.c) is "_cluster" */
        fn(ctx, strcmp(e->q[k].op, SR__FOREIGN_Q) ? e->q[k].op : "_cluster", e->q[k].depth);
    pthread_mutex_unlock(&e->mu);
}

/* The state snapshots left out (schema.h statesnap: a cache whose seqs
 * depend on the writer's groups and the configuration, not on the log).
 * Sealed values as their plaintext (ixseal.h: nonces differ between two
 * writers of the same content; a value whose key was destroyed is left out),
 * and series chunks as the writer of series formats 1 and 2 wrote them (no
 * summaries): an index written before summaries equals its rebuild. */
static int canon_chunk(void *ctx, unsigned which, const void *key, size_t klen, const void *val, size_t len,
                       sr_buf *scratch)
{
    sr_engine *e = ctx;
    if (which == SR_DB_STATESNAP) return SR_EERASED; /* a cache, not f(log): left out (schema.h statesnap) */
    if (e->keyring && e->seal.sealed[which]) {
        MDB_val K = {klen, (void *)key}, V = {len, (void *)val}, P;
        int rc = sr__ixseal_open(&e->seal, which, &K, &V, &P);
        if (rc) return rc;
        if (which != SR_DB_SERIES) return sr_buf_append(scratch, P.mv_data, P.mv_size);
        val = P.mv_data;
        len = P.mv_size;
    }
    if (which != SR_DB_SERIES) return SR_ENOTFOUND;
    return sr_chunk_strip_summary(val, len, scratch);
}

int sr_engine_content_hash(sr_engine *e, uint8_t out[32])
{
    uint8_t ih[32];
    int rc = sr_index_content_hash_canon(e->ix, canon_chunk, e, ih);
    if (rc) return rc;
    sr_buf b;
    sr_buf_init(&b);
    rc = sr_buf_append(&b, ih, 32);
    for (size_t d = 0; d < HDIR && !rc; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE && !rc; i++) {
            head *h = page[i];
            if (!h) continue;
            pthread_mutex_lock(stripe_of(e, h->point));
            if (!h->first_seq && !h->n && !h->nlate && !h->has_flushed) { /* never written (a failed group's, or
                                                                             retired by a cut: heads.c): none */
                pthread_mutex_unlock(stripe_of(e, h->point));
                continue;
            }
            uint8_t x[32];
            sr_put_le32(x, h->point);
            sr_put_le64(x + 4, h->first_seq);
            sr_put_le64(x + 12, (uint64_t)h->flushed_max);
            sr_put_le64(x + 20, h->n);
            x[28] = (uint8_t)h->has_flushed;
            rc = sr_buf_append(&b, x, 29);
            for (size_t j = 0; j < h->n && !rc; j++) {
                uint8_t y[25];
                sr_put_le64(y, (uint64_t)h->v[j].ts);
                sr_put_le64(y + 8, h->v[j].seq);
                y[16] = h->v[j].q;
                uint64_t bits = 0;
                if (h->type == SR_VT_NUMBER) memcpy(&bits, &h->v[j].v.f, 8);
                else if (h->type == SR_VT_INTEGER) bits = (uint64_t)h->v[j].v.i;
                else if (h->type == SR_VT_BOOL) bits = (uint64_t)h->v[j].v.b;
                else bits = h->v[j].v.s.n;
                sr_put_le64(y + 17, bits);
                rc = sr_buf_append(&b, y, 25);
                if (!rc && h->type == SR_VT_STRING) rc = sr_buf_append(&b, h->v[j].v.s.p, h->v[j].v.s.n);
            }
            pthread_mutex_unlock(stripe_of(e, h->point));
        }
    }
    if (!rc) sr_sha256(b.data, b.len, out);
    sr_buf_release(&b);
    return rc;
}

struct sr_blobs *sr_engine_blobs(sr_engine *e) { return e->blobs; }

int sr_engine_doc_query(sr_engine *e, const char *op, const char *coll, const char *field, const char *value,
                        size_t limit, const char *after_id, sr_buf *out, size_t *count, int *more)
{
    sr_doc_bounds b = {limit, 0, 0, NULL};
    char next[260];
    return sr_engine_doc_scan(e, op, coll, field, value, &b, after_id, out, count, more, next);
}

int sr_engine_doc_scan(sr_engine *e, const char *op, const char *coll, const char *field, const char *value,
                       const sr_doc_bounds *bd, const char *after_id, sr_buf *out, size_t *count, int *more,
                       char *next_after)
{
    json_t *want = NULL;
    *count = 0;
    *more = 0;
    next_after[0] = 0;
    size_t limit = bd->limit ? bd->limit : 1000, scanned = 0, bytes = 0;
    if (field) {
        json_error_t jerr;
        want = json_loads(value ? value : "", JSON_DECODE_ANY, &jerr);
        if (!want) return SR_EINVAL;
    }
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) {
        json_decref(want);
        return rc;
    }
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, coll, "");
    MDB_cursor *c = NULL;
    if (!kl) rc = SR_EINVAL;
    if (!rc) rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_DOCS), &c));
    if (!rc) {
        uint8_t sk[900];
        size_t skl = kl;
        memcpy(sk, k, kl);
        if (after_id && *after_id) {
            size_t al = strlen(after_id);
            if (kl + al + 1 > sizeof sk) rc = SR_EINVAL;
            else {
                memcpy(sk + kl, after_id, al);
                sk[kl + al] = 0; /* just past after_id */
                skl = kl + al + 1;
            }
        }
        MDB_val K = {skl, sk}, V;
        int r = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        while (!rc && r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
            const char *id = (const char *)K.mv_data + kl;
            size_t idl = K.mv_size - kl;
            int match = 1;
            sr__docval d;
            if (doc_decode(V.mv_data, V.mv_size, &d)) {
                rc = SR_ECORRUPT;
                break;
            }
            if (bd->max_scan && scanned == bd->max_scan) { /* resume after the last one examined */
                *more = 1;
                break;
            }
            if (idl >= 260) {
                rc = SR_ECORRUPT;
                break;
            }
            if (bd->owner_app)
                match = d.owner_kind == SR_ACTOR_APP && d.ownerl == strlen(bd->owner_app) &&
                        !memcmp(d.owner, bd->owner_app, d.ownerl);
            if (match && want) {
                json_error_t jerr;
                json_t *doc = json_loadb(d.json, d.jsonl, 0, &jerr);
                json_t *f = doc && json_is_object(doc) ? json_object_get(doc, field) : NULL;
                match = f && json_equal(f, want);
                json_decref(doc);
            }
            if (match) {
                if (*count == limit || (bd->max_bytes && *count && bytes + d.jsonl > bd->max_bytes)) {
                    *more = 1;
                    break;
                }
                bytes += d.jsonl;
                uint8_t hdr[12];
                sr_put_le64(hdr, d.revision);
                sr_put_le32(hdr + 8, (uint32_t)d.jsonl);
                if ((rc = sr_buf_append(out, id, idl)) || (rc = sr_buf_append(out, "", 1)) ||
                    (rc = sr_buf_append(out, hdr, 12)) || (rc = sr_buf_append(out, d.json, d.jsonl)))
                    break;
                (*count)++;
            }
            scanned++;
            memcpy(next_after, id, idl);
            next_after[idl] = 0;
            r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    json_decref(want);
    return rc;
}

int sr_engine_file_get(sr_engine *e, const char *op, const char *path, sr_buf *packed)
{
    return get_copy(e, SR_DB_FILES, op, path, NULL, packed);
}

static int sess_rec(const MDB_val *K, const MDB_val *V, sr_session_rec *s)
{
    sr__sess d;
    if (K->mv_size != 32 || sess_decode(V->mv_data, V->mv_size, &d)) return SR_ECORRUPT;
    s->kind = d.user ? SR_ACTOR_USER : SR_ACTOR_APP;
    memcpy(s->op, d.op, d.opl);
    s->op[d.opl] = 0;
    memcpy(s->id, d.id, d.idl);
    s->id[d.idl] = 0;
    s->token_hash = K->mv_data;
    s->expires_ms = d.expires_ms;
    return SR_OK;
}

/* The session of token_hash in t: SR_OK and *out (its token_hash the
 * caller's), SR_ENOTFOUND, or the index's error. */
static int sess_get(sr_engine *e, MDB_txn *t, const uint8_t token_hash[32], sr_session_rec *out)
{
    MDB_val K = {32, (void *)token_hash}, V;
    int r = mdb_get(t, DB(e, SR_DB_SESSIONS), &K, &V);
    int rc = r == MDB_NOTFOUND ? SR_ENOTFOUND : r ? sr_index_err(r) : sess_rec(&K, &V, out);
    if (!rc) out->token_hash = token_hash;
    return rc;
}

int sr_session_verify(sr_engine *e, const uint8_t token_hash[32], sr_actor_kind kind, int64_t now_ms, sr_session_rec *out)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    rc = sess_get(e, t, token_hash, out);
    sr_index_read_end(e->ix, t);
    if (!rc && (out->kind != kind || out->expires_ms <= now_ms)) rc = SR_ENOTFOUND;
    return rc;
}

int sr_engine_user_session_get(sr_engine *e, const uint8_t token_hash[32], int64_t now_ms, sr_session_rec *s,
                               int *expired, sr_buf *user_packed)
{
    MDB_txn *t;
    *expired = 0;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    rc = sess_get(e, t, token_hash, s);
    if (!rc) {
        if (s->kind != SR_ACTOR_USER) rc = SR_ENOTFOUND;
        else if (s->expires_ms <= now_ms) rc = SR_ENOTFOUND, *expired = 1;
    }
    if (!rc) { /* the user, in the same snapshot */
        size_t il = strlen(s->id);
        MDB_val UK = {il, s->id}, UV;
        int r = il ? mdb_get(t, DB(e, SR_DB_USERS), &UK, &UV) : MDB_NOTFOUND;
        if (r == MDB_NOTFOUND) rc = SR_ENOTFOUND;
        else if (r) rc = sr_index_err(r);
        else {
            user_packed->len = 0;
            rc = sr_buf_append(user_packed, UV.mv_data, UV.mv_size);
        }
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_each_session(sr_engine *e, int (*fn)(void *ctx, const sr_session_rec *s), void *ctx)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c = NULL;
    rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SESSIONS), &c));
    if (!rc) {
        MDB_val K, V;
        int r = mdb_cursor_get(c, &K, &V, MDB_FIRST);
        while (!rc && r == 0) {
            sr_session_rec s;
            rc = sess_rec(&K, &V, &s);
            if (rc) break;
            rc = fn(ctx, &s);
            if (!rc) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
        if (!rc && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_file_each(sr_engine *e, int (*fn)(void *ctx, const char *op, const uint8_t *packed, size_t len),
                        void *ctx)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c = NULL;
    rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_FILES), &c));
    char op[300];
    if (!rc) {
        MDB_val K, V;
        int r = mdb_cursor_get(c, &K, &V, MDB_FIRST);
        while (!rc && r == 0) {
            const uint8_t *z = memchr(K.mv_data, 0, K.mv_size); /* op \0 path */
            size_t ol = z ? (size_t)(z - (const uint8_t *)K.mv_data) : K.mv_size;
            if (ol >= sizeof op) ol = sizeof op - 1;
            memcpy(op, K.mv_data, ol);
            op[ol] = 0;
            if (!(rc = strip_times(&V))) rc = fn(ctx, op, V.mv_data, V.mv_size);
            if (!rc) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
        if (!rc && r != MDB_NOTFOUND) rc = sr_index_err(r);
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr_engine_file_list(sr_engine *e, const char *op, const char *prefix, size_t limit, sr_buf *out, size_t *count,
                        int *more)
{
    MDB_txn *t;
    *count = 0;
    *more = 0;
    if (!limit) limit = 1000;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[600];
    size_t kl = mkkey(k, sizeof k, op, prefix ? prefix : "", NULL);
    MDB_cursor *c = NULL;
    if (!kl && (!prefix || *prefix)) rc = SR_EINVAL;
    if (!rc) rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_FILES), &c));
    if (!rc) {
        if (!prefix || !*prefix) { /* op \0 */
            kl = strlen(op) + 1;
            memcpy(k, op, kl - 1);
            k[kl - 1] = 0;
        }
        MDB_val K = {kl, k}, V;
        int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        while (r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
            if (*count == limit) {
                *more = 1;
                break;
            }
            if ((rc = strip_times(&V)) || (rc = append_framed(out, &V))) break;
            (*count)++;
            r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
        }
    }
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}
