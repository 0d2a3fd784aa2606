/*
 * engine/heads.c -- the series heads: each point's open chunk, in memory,
 * and the series apply (pass 2) that fills them, flushes them into chunks
 * and merges late samples into the stored chunks.
 *
 * A head is found through a two-level directory (hdir: pages of HPAGE heads,
 * made once, never freed before close); its readers and the writer meet
 * under the head's stripe (stripe_of: NSTRIPE mutexes, point % NSTRIPE).
 * Only the writer changes a head; readers (query.c) read its samples, its
 * previous generation and its late lists under the stripe.
 *
 * INVARIANTS (engine.c's (4), (5) and (7) as they read on one head; checked
 * by sr_head_check at every transition, in the debug build)
 *  (1) Capacity: n <= cap, nold <= capold, nlate <= caplate; an empty array
 *      has no samples.
 *  (2) Order: v, old, late and old_late are sorted by ts, strictly (an
 *      equal ts replaces: hs_insert).
 *  (3) Once flushed (has_flushed), every sample of v is newer than
 *      flushed_max and every late sample is not; before, there is no late
 *      sample.
 *  (4) Every sample of v and late has seq >= first_seq (the replay rebuilds
 *      them from first_seq: engine.c invariant 4).
 *  (5) Generations: prev_flush_seq <= old_seq, late_prev_seq <=
 *      old_late_seq (a reader older than the older one retries).
 *  (6) Flush thresholds: after a point's values are applied, n <
 *      flush_at(e, h) and nlate < LATE_MAX (else the head was flushed).
 *  (7) Stripe ownership: the head sits at hdir[point >> HPAGE_BITS][point &
 *      (HPAGE - 1)], and its fields that readers see change only under
 *      stripe_of(point).
 *  (8) Checkpoint: after a heads checkpoint with before_seq B is applied
 *      (meta "heads_ckpt"), every head that was ever written has first_seq
 *      >= B: a restart re-reads the log from B at the earliest
 *      (sr__heads_apply_checkpoint; docs/durability.md section 8).
 *  (9) Short tail: tail_n > 0 only once flushed (has_flushed), and tail_n <
 *      head_max: the point's last chunk holds tail_n samples (as the
 *      checkpoint that cut it left it) and the head continues it, flushing
 *      at head_max - tail_n; its next flush re-encodes that chunk with the
 *      head's samples (head_flush), so a point's chunks are full except its
 *      last and those a late merge split (sr_chunk_merge_balanced: about
 *      half full each), however many checkpoints it spans.
 *  (10) Latest: once lts_known, lts is the ts of the point's `latest` row as
 *      the writer's transaction has it with the pending rows written (lpend:
 *      lsample is that row, written by sr__heads_latest_flush once per
 *      group). A head noted since the transaction began is listed in
 *      e->lpend (llisted) until it ends (sr__heads_latest_end): committed,
 *      the rows stay; aborted, every listed head drops its pending row and
 *      forgets lts (lts_known := 0), the rows written being gone with it.
 *  (11) The rebuild's chunk encoders (sr__cw_*; e->cw, started by a
 *      rebuild's pipelined replay only, replay.c invariant 6): a flush's
 *      chunk work on a point of numbers, integers or booleans (its new
 *      chunk, its short tail re-encoded, a run of late samples merged) is
 *      queued with copies of its samples and of the stored chunk it reads;
 *      encoder threads only encode (the codec, nothing shared); the
 *      applying thread puts their chunks into its transaction in the order
 *      queued (cw_put_one), and always before a flush of the point reads
 *      its chunks (cw_sync: at the flush's start, and before it looks for
 *      the short tail a late merge just queued may have split), before any
 *      event but measurements is applied and before the transaction
 *      commits (sr__cw_drain). So the index holds what encoding in place
 *      gives: the same chunks, byte for byte, under the same keys (LMDB's
 *      content does not depend on the order of puts of distinct keys). A
 *      short tail's last chunk count (the head's tail_n) is foreseen when
 *      queued (its samples and the head's never share a ts) and checked at
 *      the put.
 *
 * STATES OF A HEAD                TRANSITION              FUNCTION
 *   none -> empty                  first value / load      head_get()
 *   empty|open -> open             values applied          apply_pv()
 *   open -> open (latest pending)  newest value noted      sr__heads_latest_note()
 *   pending -> written             the group's end         sr__heads_latest_flush()
 *   listed -> kept | forgotten     commit | abort          sr__heads_latest_end()
 *   open -> empty (old = v)        flush into a chunk      head_flush()
 *     (tail_n > 0: the short last chunk re-encoded with v; tail_n := 0 when
 *     the head was full, else the samples of the chunk it left)
 *   late -> old_late               late merge              late_merge()
 *   open|empty -> empty            heads checkpoint        sr__heads_apply_checkpoint()
 *   any -> rebuilt                 recover (section 7)     sr__heads_swap()
 *   any -> never written           wholly past a Retention sr__heads_retire()
 *                                  cut (retention.c (2))
 */
#include "engine/engine_int.h"

#include "storage/series.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static head *head_get(sr_engine *e, uint32_t p, sr_vtype type)
{
    if ((p >> HPAGE_BITS) >= HDIR) return NULL;
    head **page = e->hdir[p >> HPAGE_BITS];
    if (!page) {
        page = sr_calloc(HPAGE, sizeof *page);
        if (!page) return NULL;
        e->hdir[p >> HPAGE_BITS] = page; /* published once, never freed until close */
    }
    head *h = page[p & (HPAGE - 1)];
    if (!h) {
        h = sr_calloc(1, sizeof *h);
        if (!h) return NULL;
        h->point = p;
        h->type = type;
        h->flushed_max = INT64_MIN;
        pthread_mutex_lock(stripe_of(e, p));
        page[p & (HPAGE - 1)] = h;
        SR_INVARIANT(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
        pthread_mutex_unlock(stripe_of(e, p));
        atomic_fetch_add(&e->npoints, 1);
    }
    return h;
}

static void hs_free_strings(hsample *v, size_t n, sr_vtype t)
{
    if (t != SR_VT_STRING) return;
    for (size_t i = 0; i < n; i++) sr_free(v[i].v.s.p);
}

void sr__heads_free(sr_engine *e)
{
    for (size_t d = 0; d < HDIR; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE; i++) {
            head *h = page[i];
            if (!h) continue;
            hs_free_strings(h->v, h->n, h->type);
            hs_free_strings(h->old, h->nold, h->type);
            hs_free_strings(h->late, h->nlate, h->type);
            hs_free_strings(h->old_late, h->nold_late, h->type);
            sr_free(h->v);
            sr_free(h->old);
            sr_free(h->late);
            sr_free(h->old_late);
            sr_free(h);
        }
        sr_free(page);
        e->hdir[d] = NULL;
    }
    sr_free(e->lpend);
    e->lpend = NULL;
    e->nlpend = e->caplpend = 0;
}

/* ------------------------------------------------------------------------ */
/* Series apply (pass 2)                                                     */

/* The `latest` row of a sample (layout: schema.h): into buf when it fits
 * (cap bytes), else into an sr_malloc'd one (*big, the caller frees it).
 * Returns its length, 0 when out of memory. */
static size_t latest_encode(const sr_sample *s, sr_vtype t, uint8_t *buf, size_t cap, uint8_t **big)
{
    size_t n = t == SR_VT_STRING ? 10 + (size_t)s->v.str.slen : 18;
    uint8_t *x = buf;
    *big = NULL;
    if (n > cap && !(x = *big = sr_malloc(n))) return 0;
    sr_put_le64(x, (uint64_t)s->ts);
    x[8] = s->quality;
    x[9] = (uint8_t)t;
    if (t == SR_VT_STRING) {
        if (s->v.str.slen) memcpy(x + 10, s->v.str.s, s->v.str.slen);
        return n;
    }
    uint64_t bits;
    if (t == SR_VT_NUMBER) memcpy(&bits, &s->v.f, 8);
    else if (t == SR_VT_INTEGER) bits = (uint64_t)s->v.i;
    else bits = (uint64_t)s->v.b;
    sr_put_le64(x + 10, bits);
    return n;
}

/* The heads row (schema.h): 17 bytes, 21 with a short tail (invariant 9). */
static int heads_db_put(sr_engine *e, MDB_txn *t, head *h)
{
    uint8_t k[4], v[21];
    be32(k, h->point);
    sr_put_le64(v, h->first_seq);
    sr_put_le64(v + 8, (uint64_t)h->flushed_max);
    v[16] = (uint8_t)h->has_flushed;
    sr_put_le32(v + 17, h->tail_n);
    return put(t, DB(e, SR_DB_HEADS), k, 4, v, h->tail_n ? 21 : 17);
}

static int cw_queue(sr_engine *e, MDB_txn *t, head *h, int merge, const uint8_t *ck, const void *old, size_t oldlen,
                    const sr_sample *s, size_t n, uint32_t *last);

/* Merge one run of samples (sorted) into the chunk at key `ck` (or a new
 * chunk when has_ck is 0); *last (may be NULL): the samples of the last
 * chunk written. */
static int merge_into(sr_engine *e, MDB_txn *t, head *h, const uint8_t *ck, int has_ck, const sr_sample *s, size_t n,
                      uint32_t *last)
{
    int rc;
    MDB_val v = {0, NULL};
    sr_buf out;
    sr_buf_init(&out);
    if (has_ck && (rc = get(t, DB(e, SR_DB_SERIES), ck, 12, &v))) return rc;
    if (e->cw && h->type != SR_VT_STRING) /* a rebuild: merged beside (invariant 11) */
        return cw_queue(e, t, h, 1, has_ck ? ck : NULL, v.mv_data, v.mv_size, s, n, last);
    size_t nch = 0;
    if ((rc = sr_chunk_merge_balanced(h->type, v.mv_data, v.mv_size, s, n, e->o.head_max, &out, &nch))) goto done;
    if (has_ck && (rc = del(t, DB(e, SR_DB_SERIES), ck, 12))) goto done;
    size_t pos = 0;
    for (size_t i = 0; i < nch; i++) {
        uint32_t len = sr_get_le32(out.data + pos);
        sr_chunk_info info;
        if ((rc = sr_chunk_info_get(out.data + pos + 4, len, &info))) goto done;
        if (last) *last = info.count;
        uint8_t nk[12];
        sr_series_key(nk, h->point, info.first_ts);
        if ((rc = put(t, DB(e, SR_DB_SERIES), nk, 12, out.data + pos + 4, len))) goto done;
        pos += 4 + len;
    }
done:
    sr_buf_release(&out);
    return rc;
}

/* Merge late samples into the stored chunks that cover them. A sample
 * belongs to the chunk with the greatest first timestamp <= its own (or the
 * point's first chunk if it is older than all): so chunks never overlap. */
static int merge_late(sr_engine *e, MDB_txn *t, head *h, sr_sample *s, size_t n)
{
    int rc = SR_OK;
    /* stable sort by time: equal timestamps keep their order (later wins) */
    for (size_t i = 1; i < n; i++) {
        sr_sample x = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].ts > x.ts) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = x;
    }
    size_t i = 0;
    while (i < n && !rc) {
        MDB_cursor *c = NULL;
        if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c)))) break;
        uint8_t k[12], ck[12], nk[12];
        sr_series_key(k, h->point, s[i].ts);
        MDB_val K = {12, k}, V;
        int has_ck = 0, has_next = 0;
        int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        int exact = r == 0 && K.mv_size == 12 && !memcmp(K.mv_data, k, 12);
        if (r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point && !exact) {
            has_next = 1; /* the chunk after ts */
            memcpy(nk, K.mv_data, 12);
        }
        if (exact) {
            has_ck = 1;
            memcpy(ck, k, 12);
            int r2 = mdb_cursor_get(c, &K, &V, MDB_NEXT);
            if (r2 == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point) {
                has_next = 1;
                memcpy(nk, K.mv_data, 12);
            }
        } else {
            int r2 = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
            if (r2 == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point) {
                has_ck = 1;
                memcpy(ck, K.mv_data, 12);
            } else if (has_next) {
                /* older than every chunk: goes into the first one */
                has_ck = 1;
                memcpy(ck, nk, 12);
                has_next = 0;
                MDB_val K2 = {12, ck};
                if (mdb_cursor_get(c, &K2, &V, MDB_SET_KEY) == 0 && mdb_cursor_get(c, &K2, &V, MDB_NEXT) == 0 &&
                    K2.mv_size == 12 && get_be32(K2.mv_data) == h->point) {
                    has_next = 1;
                    memcpy(nk, K2.mv_data, 12);
                }
            }
        }
        mdb_cursor_close(c);
        /* the run: samples below the next chunk's start */
        size_t j = i;
        uint64_t lim = has_next ? get_be64(nk + 4) : UINT64_MAX;
        while (j < n && (!has_next || ts_key(s[j].ts) < lim)) j++;
        if (j == i) j = i + 1;
        rc = merge_into(e, t, h, ck, has_ck, s + i, j - i, NULL);
        i = j;
    }
    return rc;
}

enum { LATE_MAX = 4096 }; /* late samples a head keeps before it merges them anyway */
enum { HEAD_GROW = 64 };  /* apply_pv: from this many samples a head's array is sized for its flush */

/* Insert into a sorted sample list, equal ts replaced (later wins). Caller
 * holds the stripe. */
static int hs_insert(hsample **vp, size_t *np, size_t *capp, sr_vtype type, const sr_sample *s, uint64_t seq)
{
    hsample *v = *vp;
    size_t n = *np, lo = 0, hi = n;
    if (n && v[n - 1].ts < s->ts) lo = n;
    else
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (v[mid].ts < s->ts) lo = mid + 1;
            else hi = mid;
        }
    hsample x = {.ts = s->ts, .seq = seq, .q = s->quality};
    if (type == SR_VT_STRING) {
        x.v.s.p = sr_malloc(s->v.str.slen + 1);
        if (!x.v.s.p) return SR_ENOMEM;
        memcpy(x.v.s.p, s->v.str.s, s->v.str.slen);
        x.v.s.p[s->v.str.slen] = 0;
        x.v.s.n = s->v.str.slen;
    } else if (type == SR_VT_NUMBER) x.v.f = s->v.f;
    else if (type == SR_VT_INTEGER) x.v.i = s->v.i;
    else x.v.b = s->v.b;
    if (lo < n && v[lo].ts == s->ts) {
        hs_free_strings(&v[lo], 1, type);
        v[lo] = x;
        return SR_OK;
    }
    if (n + 1 > *capp && sr_array_reserve(vp, capp, n + 1, sizeof *v)) {
        hs_free_strings(&x, 1, type);
        return SR_ENOMEM;
    }
    v = *vp;
    if (lo < n) memmove(v + lo + 1, v + lo, (n - lo) * sizeof *v); /* in order: an append */
    v[lo] = x;
    *np = n + 1;
    return SR_OK;
}

/* Merge the head's late samples into the stored chunks (one rewrite per
 * chunk they touch); the batch stays visible to older readers (invariant 7). */
static int late_merge(sr_engine *e, MDB_txn *t, head *h, uint64_t seq)
{
    if (!h->nlate) return SR_OK;
    sr_sample *s = sr_malloc(h->nlate * sizeof *s);
    if (!s) return SR_ENOMEM;
    for (size_t i = 0; i < h->nlate; i++) hs_to_sample(&h->late[i], h->type, &s[i]);
    int rc = merge_late(e, t, h, s, h->nlate);
    sr_free(s);
    if (rc) return rc;
    pthread_mutex_lock(stripe_of(e, h->point));
    hs_free_strings(h->old_late, h->nold_late, h->type);
    sr_free(h->old_late);
    h->old_late = h->late;
    h->nold_late = h->nlate;
    h->late_prev_seq = h->old_late_seq;
    h->old_late_seq = seq;
    h->late = NULL;
    h->nlate = h->caplate = 0;
    SR_INVARIANT(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
    pthread_mutex_unlock(stripe_of(e, h->point));
    return SR_OK;
}

static uint32_t flush_at(const sr_engine *e, const head *h);

/* The key of the point's last chunk (the short tail, invariant 9). */
static int tail_key(sr_engine *e, MDB_txn *t, const head *h, uint8_t ck[12], int *found)
{
    MDB_cursor *c = NULL;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SERIES), &c));
    if (rc) return rc;
    uint8_t k[4];
    be32(k, h->point + 1);
    MDB_val K = {4, k}, V;
    int r = h->point == UINT32_MAX ? MDB_NOTFOUND : mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    r = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
    *found = r == 0 && K.mv_size == 12 && get_be32(K.mv_data) == h->point;
    if (*found) memcpy(ck, K.mv_data, 12);
    mdb_cursor_close(c);
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* The rebuild's chunk encoders (invariant 11)                              */

/* A flush's chunk to encode: the head's samples as a new chunk, or the
 * point's short tail (a copy of the stored chunk, key ck) re-encoded with
 * them (sr_chunk_merge_balanced, as merge_into). */
typedef struct cw_job {
    uint32_t point, kid, head_max, expect_last;
    sr_vtype type;
    int merge, has_ck, check_last;
    uint8_t ck[12];
    uint8_t *old;
    size_t oldlen;
    sr_sample *s;
    size_t n;
    sr_buf out; /* merge: sr_chunk_merge_balanced's list (u32 length, chunk); else the chunk */
    size_t nch;
    int rc, done;
} cw_job;

enum { CW_RING = 256, CW_MAXTH = 4 };

struct sr_cw {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    uint64_t put, taken, queued; /* tickets: [put, queued) pending, [taken, queued) not yet started */
    int stop, nth;
    pthread_t th[CW_MAXTH];
    cw_job ring[CW_RING];
};

static void cw_encode(cw_job *j)
{
    sr_buf_init(&j->out);
    if (j->merge) {
        j->rc = sr_chunk_merge_balanced(j->type, j->old, j->oldlen, j->s, j->n, j->head_max, &j->out, &j->nch);
        return;
    }
    sr_chunk_enc *enc = NULL;
    int rc = sr_chunk_enc_create(j->type, &enc);
    if (!rc) rc = sr_chunk_enc_expect(enc, j->n);
    for (size_t i = 0; i < j->n && !rc; i++) rc = sr_chunk_enc_add(enc, &j->s[i]);
    if (!rc) rc = sr_chunk_enc_finish(enc, &j->out);
    sr_chunk_enc_destroy(enc);
    j->nch = 1;
    j->rc = rc;
}

static void *cw_main(void *arg)
{
    struct sr_cw *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->taken == w->queued) pthread_cond_wait(&w->work, &w->mu);
        if (w->stop) break;
        cw_job *j = &w->ring[w->taken++ % CW_RING];
        pthread_mutex_unlock(&w->mu);
        cw_encode(j); /* only this thread touches j until done is set */
        pthread_mutex_lock(&w->mu);
        j->done = 1;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void cw_free(cw_job *j)
{
    sr_free(j->s);
    sr_free(j->old);
    sr_buf_release(&j->out);
    j->s = NULL;
    j->old = NULL;
}

int sr__cw_start(sr_engine *e)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 2) return SR_OK; /* one core: encoding in place costs less than handing over */
    struct sr_cw *w = sr_calloc(1, sizeof *w);
    if (!w) return SR_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->done, NULL);
    int want = ncpu > CW_MAXTH ? CW_MAXTH : (int)ncpu;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&w->th[i], NULL, cw_main, w)) break;
        w->nth++;
    }
    if (!w->nth) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->done);
        sr_free(w);
        return SR_OK; /* no thread: in place */
    }
    e->cw = w;
    return SR_OK;
}

void sr__cw_stop(sr_engine *e)
{
    struct sr_cw *w = e->cw;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nth; i++) pthread_join(w->th[i], NULL);
    for (uint64_t k = w->put; k < w->queued; k++) cw_free(&w->ring[k % CW_RING]); /* never put (an error ended the replay) */
    for (size_t d = 0; d < HDIR; d++) /* no head waits for a job any more */
        for (size_t i = 0; e->hdir[d] && i < HPAGE; i++)
            if (e->hdir[d][i]) e->hdir[d][i]->cw_ticket = 0;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    sr_free(w);
    e->cw = NULL;
}

/* Put the oldest pending job's chunks into t (waiting for its encoder):
 * jobs are put in the order they were queued. */
static int cw_put_one(sr_engine *e, MDB_txn *t)
{
    struct sr_cw *w = e->cw;
    cw_job *j = &w->ring[w->put % CW_RING];
    pthread_mutex_lock(&w->mu);
    while (!j->done) pthread_cond_wait(&w->done, &w->mu);
    pthread_mutex_unlock(&w->mu);
    int rc = j->rc;
    uint32_t kid = e->seal.kid;
    if (j->kid) e->seal.kid = j->kid; /* the flush's key (head_flush; ixseal.h invariant 2) */
    if (!rc && j->has_ck) rc = del(t, DB(e, SR_DB_SERIES), j->ck, 12);
    size_t pos = 0;
    for (size_t i = 0; i < j->nch && !rc; i++) {
        const uint8_t *c = j->out.data;
        size_t len = j->out.len;
        if (j->merge) {
            len = sr_get_le32(j->out.data + pos);
            c = j->out.data + pos + 4;
            pos += 4 + len;
        }
        sr_chunk_info info;
        if ((rc = sr_chunk_info_get(c, len, &info))) break;
        /* the last chunk's count, as head_flush_ foresaw it for the head's tail_n */
        if (j->check_last && i + 1 == j->nch && info.count != j->expect_last) {
            rc = SR_EINVAL;
            break;
        }
        uint8_t k[12];
        sr_series_key(k, j->point, info.first_ts);
        rc = put(t, DB(e, SR_DB_SERIES), k, 12, c, len);
    }
    e->seal.kid = kid;
    cw_free(j);
    w->put++;
    return rc;
}

int sr__cw_drain(sr_engine *e, MDB_txn *t)
{
    int rc = SR_OK;
    while (e->cw && !rc && e->cw->put < e->cw->queued) rc = cw_put_one(e, t);
    return rc;
}

/* Before a flush of h reads the point's chunks: its own jobs put (with
 * every job queued before them, in order). */
static int cw_sync(sr_engine *e, MDB_txn *t, head *h)
{
    int rc = SR_OK;
    while (e->cw && !rc && h->cw_ticket > e->cw->put) rc = cw_put_one(e, t);
    return rc;
}

/* Queue a chunk encoding of point h: merge 0, h's samples as a new chunk;
 * merge 1, the samples s[0..n) (NULL: h's) merged into the chunk ck (of
 * oldlen bytes at old, copied; ck NULL: none) as merge_into does. The
 * chunk(s) reach t at the next drain. last (a short tail's re-encode):
 * *last := the samples of the last chunk written, foreseen here and checked
 * at the put. */
static int cw_queue(sr_engine *e, MDB_txn *t, head *h, int merge, const uint8_t *ck, const void *old, size_t oldlen,
                    const sr_sample *s, size_t n, uint32_t *last)
{
    struct sr_cw *w = e->cw;
    int rc;
    if (w->queued - w->put == CW_RING && (rc = cw_put_one(e, t))) return rc; /* full: the oldest goes in first */
    cw_job *j = &w->ring[w->queued % CW_RING];
    memset(j, 0, sizeof *j);
    j->point = h->point;
    j->kid = e->seal.kid;
    j->type = h->type;
    j->head_max = e->o.head_max;
    j->merge = merge;
    j->n = s ? n : h->n;
    j->s = sr_malloc((j->n ? j->n : 1) * sizeof *j->s);
    if (!j->s) return SR_ENOMEM;
    if (s) memcpy(j->s, s, n * sizeof *s);
    else
        for (size_t i = 0; i < h->n; i++) hs_to_sample(&h->v[i], h->type, &j->s[i]);
    if (ck) {
        j->has_ck = 1;
        memcpy(j->ck, ck, 12);
        if (!(j->old = sr_malloc(oldlen ? oldlen : 1))) {
            cw_free(j);
            return SR_ENOMEM;
        }
        memcpy(j->old, old, oldlen);
        j->oldlen = oldlen;
    }
    if (last && ck) {
        sr_chunk_info info;
        if ((rc = sr_chunk_info_get(old, oldlen, &info))) {
            cw_free(j);
            return rc;
        }
        /* the tail's samples are all <= flushed_max < the head's (invariant
         * 3): no equal ts, so chunk_merge's balanced split of nres samples */
        size_t nres = (size_t)info.count + j->n, hm = e->o.head_max;
        size_t parts = (nres + hm - 1) / hm;
        if (nres <= hm + hm / 4) parts = 1;
        j->expect_last = (uint32_t)(nres - nres * (parts - 1) / parts);
    } else {
        j->expect_last = (uint32_t)j->n;
    }
    j->check_last = last != NULL;
    if (last) *last = j->expect_last;
    pthread_mutex_lock(&w->mu);
    w->queued++;
    h->cw_ticket = w->queued;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return SR_OK;
}

/* The head's samples as a new chunk, or, with a short tail (invariant 9),
 * re-encoded together with that chunk (sr_chunk_merge_balanced, as late
 * samples are merged); *last: the samples of the last chunk written. */
static int head_write(sr_engine *e, MDB_txn *t, head *h, const uint8_t tk[12], int found, uint32_t *last)
{
    int rc;
    uint8_t k[12];
    if (e->cw && h->type != SR_VT_STRING) { /* a rebuild: encoded beside (invariant 11) */
        MDB_val v = {0, NULL};
        if (found && (rc = get(t, DB(e, SR_DB_SERIES), tk, 12, &v))) return rc;
        if ((rc = cw_queue(e, t, h, found, found ? tk : NULL, v.mv_data, v.mv_size, NULL, 0, last))) return rc;
        if (found) atomic_fetch_add(&e->st_extends, 1);
        return SR_OK;
    }
    if (found) {
        memcpy(k, tk, 12);
        sr_sample *s = sr_malloc(h->n * sizeof *s);
        if (!s) return SR_ENOMEM;
        for (size_t i = 0; i < h->n; i++) hs_to_sample(&h->v[i], h->type, &s[i]);
        rc = merge_into(e, t, h, k, 1, s, h->n, last);
        sr_free(s);
        if (!rc) atomic_fetch_add(&e->st_extends, 1);
        return rc;
    }
    sr_chunk_enc *enc = NULL;
    sr_buf out;
    sr_buf_init(&out);
    if ((rc = sr_chunk_enc_create(h->type, &enc))) return rc;
    if ((rc = sr_chunk_enc_expect(enc, h->n))) goto done;
    for (size_t i = 0; i < h->n; i++) {
        sr_sample s;
        hs_to_sample(&h->v[i], h->type, &s);
        if ((rc = sr_chunk_enc_add(enc, &s))) goto done;
    }
    if ((rc = sr_chunk_enc_finish(enc, &out))) goto done;
    sr_series_key(k, h->point, h->v[0].ts);
    rc = put(t, DB(e, SR_DB_SERIES), k, 12, out.data, out.len);
    *last = (uint32_t)h->n;
done:
    sr_chunk_enc_destroy(enc);
    sr_buf_release(&out);
    return rc;
}

/* Write the head as chunk(s); keep it as the previous generation for
 * readers whose snapshot predates this commit (invariant 5). The late
 * samples are merged first (invariant 7). A head flushed before it is full
 * (a checkpoint, LATE_MAX late samples) leaves a short tail that its next
 * flush extends (invariant 9). */
static int head_flush_(sr_engine *e, MDB_txn *t, head *h, uint64_t seq)
{
    int rc = cw_sync(e, t, h); /* its chunks in t before they are read (invariant 11) */
    if (!rc) rc = late_merge(e, t, h, seq);
    if (rc) return rc;
    if (!h->n) { /* only late samples were waiting */
        h->first_seq = seq + 1;
        return heads_db_put(e, t, h);
    }
    uint8_t tk[12];
    int found = 0;
    /* (a late merge queued just now may have split the point's last chunk) */
    if (h->tail_n && ((rc = cw_sync(e, t, h)) || (rc = tail_key(e, t, h, tk, &found)))) return rc;
    if (!found) h->tail_n = 0; /* no chunk to continue (a damaged index): the head's own is full at head_max */
    int full = h->n >= flush_at(e, h);
    uint32_t last = 0;
    if ((rc = head_write(e, t, h, tk, found, &last))) return rc;
    pthread_mutex_lock(stripe_of(e, h->point));
    hs_free_strings(h->old, h->nold, h->type);
    /* the generation before goes out of sight now (the stripe is held): its
     * array becomes the new head, so a steady head never grows again */
    hsample *reuse = h->old;
    size_t reuse_cap = h->capold;
    h->old = h->v;
    h->nold = h->n;
    h->capold = h->cap;
    h->prev_flush_seq = h->old_seq;
    h->old_seq = seq;
    h->flushed_max = h->v[h->n - 1].ts;
    h->has_flushed = 1;
    h->tail_n = !full && last < e->o.head_max ? last : 0;
    h->v = reuse;
    h->n = 0;
    h->cap = reuse ? reuse_cap : 0;
    h->first_seq = seq + 1;
    h->gen++;
    SR_INVARIANT(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
    pthread_mutex_unlock(stripe_of(e, h->point));
    atomic_fetch_add(&e->st_flushes, 1);
    return heads_db_put(e, t, h);
}

/* Insert into the head, sorted, equal ts replaced. Caller holds the stripe. */
/* head_flush_ with the head's chunks sealed by the key of its newest
 * value's record (ixseal.h invariant 2), whichever event flushes it */
static int head_flush(sr_engine *e, MDB_txn *t, head *h, uint64_t seq)
{
    uint32_t kid = e->seal.kid;
    if (h->kid) e->seal.kid = h->kid;
    int rc = head_flush_(e, t, h, seq);
    e->seal.kid = kid;
    return rc;
}

static int head_insert(head *h, const sr_sample *s, uint64_t seq)
{
    return hs_insert(&h->v, &h->n, &h->cap, h->type, s, seq);
}

/*
 * Apply one point's values (a PointValues or a snapshot entry: sr_meas_next).
 * heads_only (restart, events <= W): rebuild the head
 * from head-bound samples only; everything else is already in the index.
 */
/* When a head is flushed: at head_max samples, except the first time, when
 * each point waits for a share of head_max of its own (three quarters to all,
 * from a hash of the point). Points fed at the same rate would otherwise fill
 * their heads in lockstep and flush all together in one group, a commit of
 * every point's chunk at once (the PUBACK p99 of a paced load was that
 * group); staggered once, they stay staggered. A function of the point and
 * its persisted has_flushed only, so a rebuild and a restart flush at the
 * same samples as the live writer did. */
static uint32_t flush_at(const sr_engine *e, const head *h)
{
    uint32_t hm = e->o.head_max;
    if (h->tail_n) return hm - h->tail_n; /* the short tail's chunk fills (invariant 9) */
    if (h->has_flushed || hm < 4) return hm;
    uint32_t x = h->point; /* a 32-bit finaliser: consecutive points spread */
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return hm - hm / 4 + x % (hm / 4); /* [3/4, 1) of head_max: chunks stay near full */
}

static int apply_pv(sr_engine *e, MDB_txn *t, sr_mpoint *pv, uint64_t seq, int heads_only)
{
    int rc = SR_OK;
    long n = pv->n;
    sr_vtype type = pv->type;
    if (n <= 0) return SR_OK; /* validated at write time; a bad replayed one is skipped */
    head *h = head_get(e, pv->point, type);
    if (!h) return SR_ENOMEM;
    if (heads_only && seq < h->first_seq) return SR_OK;
    int fresh = h->n == 0 && h->first_seq == 0 && !e->o.state_only;
    if (fresh) {
        h->first_seq = seq;
        if (!heads_only && (rc = heads_db_put(e, t, h))) return rc;
    }
    if (!heads_only) e->snap_vals += (uint64_t)n; /* the state snapshots' count (statesnap.c) */
    if (e->o.state_only && !heads_only) { /* the state at a past time: the latest row only (state.c) */
        sr_sample s, bs = {0};
        int have = 0;
        for (long i = 0; i < n; i++) {
            if (sr_pv_iter_next(&pv->it, &s)) continue;
            if (!have || s.ts >= bs.ts) bs = s, have = 1;
        }
        if (e->seal.kid) h->kid = e->seal.kid;
        return have ? sr__heads_latest_note(e, t, h, &bs) : SR_OK;
    }
    sr_pv_iter *it = &pv->it;
    hsample best = {.ts = INT64_MIN};
    int have_best = 0;
    sr_sample bests = {0};
    /* one hold of the stripe for the batch (readers wait at most for its
     * inserts, not once per sample) */
    if (e->seal.kid) h->kid = e->seal.kid; /* its values' key (ixseal.h invariant 2) */
    pthread_mutex_t *mu = stripe_of(e, h->point);
    pthread_mutex_lock(mu);
    /* a busy head (HEAD_GROW samples already) gets the room of its flush at
     * once: one allocation instead of a doubling series of copies (a sparse
     * point keeps a small array) */
    uint32_t fa = flush_at(e, h);
    if (h->n >= HEAD_GROW && h->cap < fa && sr_array_reserve(&h->v, &h->cap, fa, sizeof *h->v)) {
        pthread_mutex_unlock(mu);
        return SR_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        sr_sample s;
        if (sr_pv_iter_next(it, &s)) continue;
        /* heads hold (flushed_max, +inf); older samples belong to chunks */
        int is_late = h->has_flushed && s.ts <= h->flushed_max;
        if (is_late) /* kept in the head until its next flush (invariant 7) */
            rc = hs_insert(&h->late, &h->nlate, &h->caplate, h->type, &s, seq);
        else
            rc = head_insert(h, &s, seq);
        if (rc) {
            pthread_mutex_unlock(mu);
            goto done;
        }
        if (!heads_only && s.ts >= best.ts) {
            best.ts = s.ts;
            bests = s;
            have_best = 1;
        }
    }
    SR_INVARIANT(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
    pthread_mutex_unlock(mu);
    if (heads_only) goto done;
    if (have_best && (rc = sr__heads_latest_note(e, t, h, &bests))) goto done;
    if (h->n >= flush_at(e, h) || h->nlate >= LATE_MAX) rc = head_flush(e, t, h, seq);
done:
    /* a restart's heads-only replay does not flush (the chunks are in the
     * index): a head whose row a later Retention cut removed (wholly past
     * the cut: sr__heads_retire) is rebuilt from nothing and gathers its
     * point's older values over its threshold until the replay reaches that
     * Retention, which retires it again; its thresholds are the writer's
     * only at rest */
    if (!rc && !heads_only) SR_INVARIANT(sr_head_check(e, h, SR_HEAD_AT_REST));
    return rc;
}

/* The `latest` row of the head's point, as the writer's transaction will
 * have it: s becomes it when it is not older than the newest one so far
 * (an equal ts: the later wins). The row is read once per head (lts_known)
 * and written once per group (sr__heads_latest_flush), not read, decoded
 * and rewritten per point per event. s's string is borrowed until the
 * flush (the group's events, the replay's event). */
int sr__heads_latest_note(sr_engine *e, MDB_txn *t, head *h, const sr_sample *s)
{
    if (!h->lts_known) {
        uint8_t k[4];
        be32(k, h->point);
        MDB_val v;
        sr_sample cur;
        sr_vtype ct;
        /* no row, or one that does not decode: any sample replaces it */
        h->lts = get(t, DB(e, SR_DB_LATEST), k, 4, &v) == SR_OK && !latest_decode(v.mv_data, v.mv_size, &cur, &ct)
                     ? cur.ts
                     : INT64_MIN;
        h->lts_known = 1;
    }
    if (s->ts < h->lts) return SR_OK;
    if (!h->llisted) {
        if (sr_array_reserve(&e->lpend, &e->caplpend, e->nlpend + 1, sizeof *e->lpend)) return SR_ENOMEM;
        e->lpend[e->nlpend++] = h->point;
        h->llisted = 1;
    }
    h->lpend = 1;
    h->lts = s->ts;
    h->lsample = *s;
    SR_INVARIANT(sr_head_check(e, h, 0));
    return SR_OK;
}

int sr__heads_latest_flush(sr_engine *e, MDB_txn *t) { return sr__heads_latest_flush_some(e, t, 0); }

int sr__heads_latest_flush_some(sr_engine *e, MDB_txn *t, int strings_only)
{
    int rc = SR_OK;
    MDB_cursor *c = NULL;
    /* through one cursor, in the order the group named them (each event's
     * points mostly ascending): LMDB looks for a key on the leaf page the
     * cursor is at before it descends from the root. (Sorting the list
     * first cost more than it saved: 4,876 against 4,376 instructions a
     * value on the snapshot shape.) The heads stay listed until the
     * transaction ends (sr__heads_latest_end). */
    if (e->nlpend) rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_LATEST), &c));
    for (size_t i = 0; i < e->nlpend && !rc; i++) {
        head *h = head_find(e, e->lpend[i]);
        if (!h || !h->lpend || (strings_only && h->type != SR_VT_STRING)) continue;
        h->lpend = 0;
        uint8_t k[4], buf[256], *big;
        be32(k, h->point);
        size_t n = latest_encode(&h->lsample, h->type, buf, sizeof buf, &big);
        MDB_val K = {4, k}, V = {n, big ? big : buf};
        uint32_t kid = e->seal.kid;
        if (h->kid) e->seal.kid = h->kid; /* ixseal.h invariant 2 */
        rc = n ? sr_index_err(mdb_cursor_put(c, &K, &V, 0)) : SR_ENOMEM;
        e->seal.kid = kid;
        sr_free(big);
    }
    if (c) mdb_cursor_close(c);
    return rc;
}

void sr__heads_latest_end(sr_engine *e, int committed)
{
    for (size_t i = 0; i < e->nlpend; i++) {
        head *h = head_find(e, e->lpend[i]);
        if (!h) continue;
        h->llisted = 0;
        if (committed) continue;
        /* the rows (pending or written into the aborted transaction) are
         * not in the index: lts is no longer the row's (invariant 10) */
        h->lpend = 0;
        h->lts_known = 0;
    }
    e->nlpend = 0;
}

int sr__heads_apply_measurements(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only)
{
    const Suiro__V1__Measurements *m = sr__event_values(ev);
    if (!m) return SR_OK;
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, m);
    while (sr_meas_next(&mi, &p)) {
        int rc = apply_pv(e, t, &p, ev->seq, heads_only);
        if (rc) return rc;
    }
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Heads checkpoints (docs/durability.md section 8)                          */

/* Every head holding a value of an event before before_seq is flushed into
 * a chunk (head_flush: its first_seq becomes seq + 1); an empty head whose
 * first_seq is before it moves past it (an idle point would otherwise hold
 * the restart's start back for ever). Afterwards every head's first_seq is
 * >= before_seq (invariant 8), so a restart re-reads the log from
 * before_seq at the earliest. The writer and the replay apply it at the
 * same seq, so the chunks are the same (engine.c invariant 3). */
int sr__heads_apply_checkpoint(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only)
{
    if (ev->body_case != SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT || !ev->heads_checkpoint) return SR_OK;
    if (heads_only) return SR_OK; /* heads_db holds what it did */
    uint64_t before = ev->heads_checkpoint->before_seq;
    if (before > ev->seq) before = ev->seq; /* never past itself */
    int rc = SR_OK;
    for (size_t d = 0; d < HDIR && !rc; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE && !rc; i++) {
            head *h = page[i];
            if (!h) continue;
            /* an empty head flushed by an earlier checkpoint of the group
             * before (first_seq up to this one's seq): it holds nothing up
             * to here either, so the replay need not start at this
             * checkpoint (a clean close right after a checkpoint: issue
             * #18's write summaries moved where checkpoints fall) */
            if (h->first_seq >= before && !(h->first_seq && h->first_seq <= ev->seq && !h->n && !h->nlate)) continue;
            if (h->n || h->nlate) rc = head_flush(e, t, h, ev->seq);
            else if (h->first_seq) { /* 0: never written (a head a failed group made) */
                h->first_seq = ev->seq + 1;
                rc = heads_db_put(e, t, h);
            }
            if (!rc) SR_INVARIANT(sr_head_check(e, h, 0));
        }
    }
    if (rc) return rc;
    uint8_t v[16];
    sr_put_le64(v, ev->seq);
    sr_put_le64(v + 8, before);
    if ((rc = put(t, DB(e, SR_DB_META), "heads_ckpt", 10, v, 16))) return rc;
    e->ckpt_at = ev->seq;
    if (before > e->ckpt_before) e->ckpt_before = before;
    SR_INVARIANT(sr_heads_check(e));
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Heads past a retention cut (issue #18; retention.c invariant 2)          */

/* A head whose every sample (open and late) and whose flushed state (the
 * newest value of its last flush) are older than a Retention event's cut
 * goes back to "never written" (first_seq 0, nothing flushed, no short
 * tail), and its `heads` row goes: what the point's records built in the
 * head is cut like its chunks, so a rebuild that cannot read those records
 * (their key destroyed: a point reporting nothing since) builds the same
 * head: none. Decided from the head and the event alone, so the writer, the
 * replay and a restart's heads-only replay (which re-applies it to the
 * heads it rebuilds; a head whose state is newer than the event, first_seq
 * past seq, was loaded from its row and is left) agree. The point's chunks
 * are older still: the same event cuts them, the short tail with them. */
int sr__heads_retire(sr_engine *e, MDB_txn *t, head *h, int64_t cut, uint64_t seq, int heads_only, int *done)
{
    *done = 0;
    if (!h || e->o.state_only) return SR_OK;
    if (!h->first_seq && !h->n && !h->nlate && !h->has_flushed) return SR_OK; /* never written */
    if (h->first_seq > seq || (h->has_flushed && h->flushed_max >= cut)) return SR_OK;
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].ts >= cut) return SR_OK;
    for (size_t i = 0; i < h->nlate; i++)
        if (h->late[i].ts >= cut) return SR_OK;
    pthread_mutex_lock(stripe_of(e, h->point));
    hs_free_strings(h->v, h->n, h->type);
    hs_free_strings(h->late, h->nlate, h->type);
    h->n = 0;
    h->nlate = 0;
    h->first_seq = 0;
    h->has_flushed = 0;
    h->flushed_max = INT64_MIN;
    h->tail_n = 0;
    h->gen++;
    SR_INVARIANT(sr_head_check(e, h, SR_HEAD_STRIPE_HELD));
    pthread_mutex_unlock(stripe_of(e, h->point));
    *done = 1;
    if (heads_only) return SR_OK;
    uint8_t k[4];
    be32(k, h->point);
    int rc = del(t, DB(e, SR_DB_HEADS), k, 4);
    return rc == SR_ENOTFOUND ? SR_OK : rc;
}

uint64_t sr__heads_oldest(sr_engine *e)
{
    uint64_t m = UINT64_MAX;
    for (size_t d = 0; d < HDIR; d++) {
        head **page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE; i++) {
            head *h = page[i];
            if (h && h->first_seq && h->first_seq < m) m = h->first_seq; /* 0: never written */
        }
    }
    return m;
}

int sr__heads_load(sr_engine *e, uint64_t *min_first)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_val k, v;
    if (get(t, DB(e, SR_DB_META), "heads_ckpt", 10, &v) == SR_OK) {
        if (v.mv_size != 16) {
            sr_index_read_end(e->ix, t);
            return SR_ECORRUPT;
        }
        e->ckpt_at = sr_get_le64(v.mv_data);
        e->ckpt_before = sr_get_le64((uint8_t *)v.mv_data + 8);
    }
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_HEADS), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (r == 0) {
        if (k.mv_size != 4 || (v.mv_size != 17 && v.mv_size != 21)) {
            rc = SR_ECORRUPT;
            break;
        }
        uint32_t p = get_be32(k.mv_data);
        pointinfo pi = {0};
        sr_vtype type = SR_VT_NUMBER;
        if (sr__pointinfo_get(e, t, p, &pi) == SR_OK) {
            type = (sr_vtype)pi.m->type;
            suiro__v1__master_put__free_unpacked(pi.m, NULL);
        }
        head *h = head_get(e, p, type);
        if (!h) {
            rc = SR_ENOMEM;
            break;
        }
        h->first_seq = sr_get_le64(v.mv_data);
        h->flushed_max = (int64_t)sr_get_le64((uint8_t *)v.mv_data + 8);
        h->has_flushed = ((uint8_t *)v.mv_data)[16];
        h->tail_n = v.mv_size == 21 ? sr_get_le32((uint8_t *)v.mv_data + 17) : 0;
        if (h->tail_n && (!h->has_flushed || h->tail_n >= e->o.head_max)) {
            /* no short tail (invariant 9): flush_at's head_max - tail_n
             * would wrap, and the head never flush */
            sr__alert(e, 1,
                      "index: the heads row of point %" PRIu32 " has a short tail of %" PRIu32
                      " samples (head_max %" PRIu32 "%s): the index is damaged; `suiro rebuild` makes it again from the log",
                      p, h->tail_n, e->o.head_max, h->has_flushed ? "" : ", never flushed");
            h->tail_n = 0;
            rc = SR_ECORRUPT;
            break;
        }
        if (h->first_seq < *min_first) *min_first = h->first_seq;
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Resuming after a failed write (docs/durability.md section 7)              */

/* Move every head of sh into e (the writer holds all of e's stripes):
 * a point of both swaps its contents; a point only in e is reset empty; a
 * point only in sh moves (pages were made before the stripes were taken).
 * sh gets e's old contents, freed by the caller. */
void sr__heads_swap(sr_engine *e, sr_engine *sh)
{
    uint64_t at = e->ckpt_at, before = e->ckpt_before; /* the checkpoint the heads are at goes with them */
    e->ckpt_at = sh->ckpt_at;
    e->ckpt_before = sh->ckpt_before;
    sh->ckpt_at = at;
    sh->ckpt_before = before;
    for (size_t d = 0; d < HDIR; d++) {
        head **pe = e->hdir[d], **ps = sh->hdir[d];
        if (!pe) continue; /* then ps is NULL too (made beforehand) */
        for (size_t i = 0; i < HPAGE; i++) {
            head *he = pe[i], *hs = ps ? ps[i] : NULL;
            if (he && hs) {
                head tmp = *he;
                *he = *hs;
                *hs = tmp;
                he->gen = hs->gen + 1;
            } else if (he) {
                hs_free_strings(he->v, he->n, he->type);
                hs_free_strings(he->old, he->nold, he->type);
                hs_free_strings(he->late, he->nlate, he->type);
                hs_free_strings(he->old_late, he->nold_late, he->type);
                sr_free(he->v);
                sr_free(he->old);
                sr_free(he->late);
                sr_free(he->old_late);
                uint32_t p = he->point;
                sr_vtype t = he->type;
                uint64_t g = he->gen + 1;
                memset(he, 0, sizeof *he);
                he->point = p;
                he->type = t;
                he->gen = g;
                he->flushed_max = INT64_MIN;
            } else if (hs) {
                pe[i] = hs;
                ps[i] = NULL;
                atomic_fetch_add(&e->npoints, 1);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Invariants (the header's; SQLite's assert_pager_state is the model)       */

static const char *hs_order(const hsample *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i - 1].ts >= v[i].ts) return "not sorted";
    return NULL;
}

const char *sr_head_check(const sr_engine *e, const head *h, int how)
{
    /* (7) where it sits, and who holds its stripe */
    uint32_t p = h->point;
    head *const *page = (p >> HPAGE_BITS) < HDIR ? e->hdir[p >> HPAGE_BITS] : NULL;
    if (!page || page[p & (HPAGE - 1)] != h) return "heads: a head is not at its point's slot of the directory";
    if (how & SR_HEAD_STRIPE_HELD) {
        pthread_mutex_t *mu = stripe_of((sr_engine *)e, p);
        if (pthread_mutex_trylock(mu) == 0) {
            pthread_mutex_unlock(mu);
            return "heads: a head changes without its stripe held";
        }
    }
    /* (1) counts vs capacity */
    if (h->n > h->cap || (h->n && !h->v)) return "heads: more samples than the head's capacity";
    if (h->nold > h->capold || (h->nold && !h->old)) return "heads: more samples than the previous generation's capacity";
    if (h->nlate > h->caplate || (h->nlate && !h->late)) return "heads: more late samples than their capacity";
    if (h->nold_late && !h->old_late) return "heads: a merged late batch without its samples";
    /* (2) ordering */
    if (hs_order(h->v, h->n)) return "heads: head samples out of time order";
    if (hs_order(h->old, h->nold)) return "heads: previous generation out of time order";
    if (hs_order(h->late, h->nlate)) return "heads: late samples out of time order";
    if (hs_order(h->old_late, h->nold_late)) return "heads: merged late batch out of time order";
    /* (3) head and late samples either side of flushed_max */
    if (!h->has_flushed && h->nlate) return "heads: late samples before the head ever flushed";
    if (h->has_flushed && h->n && h->v[0].ts <= h->flushed_max) return "heads: a head sample not newer than flushed_max";
    if (h->nlate && h->late[h->nlate - 1].ts > h->flushed_max) return "heads: a late sample newer than flushed_max";
    /* (4) seq >= first_seq */
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].seq < h->first_seq) return "heads: a head sample older than the head's first_seq";
    for (size_t i = 0; i < h->nlate; i++)
        if (h->late[i].seq < h->first_seq) return "heads: a late sample older than the head's first_seq";
    /* (8) the last checkpoint: nothing older than its before_seq */
    if ((h->first_seq || h->n || h->nlate) && h->first_seq < e->ckpt_before)
        return "heads: a head holds events from before the last heads checkpoint's before_seq";
    /* (9) a short tail */
    if (h->tail_n && (!h->has_flushed || h->tail_n >= e->o.head_max))
        return "heads: a short tail on a head never flushed, or not short";
    /* (5) generations */
    if (h->prev_flush_seq > h->old_seq) return "heads: the flush before the previous generation is newer than it";
    if (h->late_prev_seq > h->old_late_seq) return "heads: the late merge before the last is newer than it";
    /* (10) a pending latest row is the newest sample known */
    if (h->lpend && (!h->lts_known || h->lsample.ts != h->lts)) return "heads: a pending latest row that is not the newest";
    if (h->lpend && !h->llisted) return "heads: a pending latest row not listed for its transaction's end";
    if (!e->nlpend && h->llisted) return "heads: a latest row listed for a transaction that ended";
    /* (6) flush thresholds, once a point's values are applied */
    if ((how & SR_HEAD_AT_REST) && h->n >= flush_at(e, h)) return "heads: a head at its flush threshold was not flushed";
    if ((how & SR_HEAD_AT_REST) && h->nlate >= LATE_MAX) return "heads: LATE_MAX late samples were not merged";
    return NULL;
}

const char *sr_heads_check(const sr_engine *e)
{
    uint64_t count = 0;
    for (size_t d = 0; d < HDIR; d++) {
        head *const *page = e->hdir[d];
        if (!page) continue;
        for (size_t i = 0; i < HPAGE; i++) {
            const head *h = page[i];
            if (!h) continue;
            if (h->point != (uint32_t)(d << HPAGE_BITS | i)) return "heads: a head at another point's slot";
            const char *why = sr_head_check(e, h, SR_HEAD_AT_REST);
            if (why) return why;
            count++;
        }
    }
    if (count != atomic_load(&e->npoints)) return "heads: the directory does not hold npoints heads";
    return NULL;
}
