/*
 * engine/replay.c -- the log applied to the index and the heads: at open
 * (engine.c) and when the writer resumes after a failed write (sr__recover).
 * It starts at the smallest first_seq of the heads, which the heads
 * checkpoints (heads.c, docs/durability.md section 8) keep within about
 * replay_max_events of the log's end.
 *
 * INVARIANTS
 *  (1) Events (W, end] are applied in full (pass 1 and 2, validate = 0) and
 *      the watermark is written with them, every 4,096 events (a rebuild:
 *      invariant 6) and at the end: an interrupted replay resumes where it
 *      committed.
 *  (2) Events [min_first, W] rebuild the heads only (engine.c invariant 4);
 *      one whose points all have a head starting after it is not unpacked
 *      (heads_needed).
 *  (3) A record that does not decode stops the replay (SR_ECORRUPT naming
 *      its seq); nothing after it is applied.
 *  (4) A heads checkpoint above W is applied in full (it flushes as the
 *      writer did); at or below W it changes nothing (heads_db holds what it
 *      did, and the heads-only replay skips what it flushed by first_seq).
 *  (5) Events above W are read and unpacked by a reader thread, a batch of
 *      up to RP_BATCH_EVENTS at a time, at most RP_NBATCH batches ahead, and
 *      applied by the calling thread in log order through the same
 *      apply_one as the ordinary way (opts.replay_serial: everything read,
 *      unpacked and applied in the calling thread): the two give the same
 *      index, byte for byte in content (tests/engine/test_replay.c). The
 *      reader touches only the log iterator, the keyring (read) and the
 *      open stats' erased counts; it does not read past a Key event before
 *      it is applied (a destroyed key's records read as erased from there,
 *      as they do the ordinary way). The first error, the reader's or an
 *      apply's, stops both at that seq (invariant 3).
 *  (6) A rebuild's pipelined replay (opts.rebuilding: the index is thrown
 *      away if it is interrupted, engine.c invariant 8) commits every
 *      RP_REBUILD_TXN events instead of 4,096, encodes its chunks on other
 *      threads (heads.c invariant 11), and writes the `latest` rows of the
 *      measurements' points once a transaction (sr__heads_latest_flush
 *      before the commit and before any event but measurements; a string
 *      point's at the end of each batch, while its events' strings live),
 *      not once an event: between two writes only measurements note rows,
 *      so the rows written are the same.
 */
#include "engine/engine_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Replay at open: events unpacked into arenas                              */

/* heads_needed (below) for a Snapshot's entries (codecs/events.proto):
 * its point numbers, delta-coded in the packed field dpoint = 2. */
static int snap_heads_needed(sr_engine *e, const uint8_t *p, size_t n, uint64_t seq)
{
    const uint8_t *end = p + n;
    uint64_t point = 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *d = NULL;
        size_t dl = 0;
        if (sr__wire_varint(&p, end, &key) || sr__wire_skip(&p, end, (unsigned)(key & 7), &d, &dl)) return 1;
        if (key >> 3 != 2) continue;
        if ((key & 7) != 2) return 1; /* not packed: unpack reads it */
        for (const uint8_t *r = d, *re = d + dl; r < re;) {
            uint64_t z;
            if (sr__wire_varint(&r, re, &z)) return 1;
            point += sr_zz_dec(z); /* sint64 deltas */
            if (point > UINT32_MAX) return 1;
            head *h = head_find(e, (uint32_t)point);
            if (!h || seq >= h->first_seq) return 1;
        }
    }
    return 0;
}

/*
 * Whether a heads-only replay (an event at or below W) needs to unpack this
 * record, read from its wire form without unpacking: not when the event is
 * not measurements nor a correction (apply_series ignores it), nor when every point it names
 * already has a head that starts after it (apply_pv returns at once for
 * those; a PointValues' point, or a Snapshot's delta-coded point
 * numbers). 1 (unpack it) whenever in doubt: a record it cannot read, a
 * point without a head yet, an event with two bodies or two snapshots. A
 * skipped record is not unpacked, so a malformed one at or below W (its
 * block passed its checksum and tag) is found by `suiro verify` / rebuild,
 * not by the restart.
 */
static int heads_needed(sr_engine *e, const uint8_t *p, size_t n, uint64_t seq)
{
    const uint8_t *end = p + n;
    int meas = 0, other = 0;
    const uint8_t *scan = p;
    while (scan < end) { /* the body: field 16 (measurements), 38 (a correction) or another of the oneof (17..40) */
        uint64_t key;
        if (sr__wire_varint(&scan, end, &key)) return 1;
        uint64_t f = key >> 3;
        if (sr__wire_skip(&scan, end, (unsigned)(key & 7), NULL, NULL)) return 1;
        if (f == 16) meas = 1;
        else if (f == SUIRO__V1__EVENT__BODY_CORRECTION) return 1; /* values too (sr__event_values): apply decides */
        else if ((f >= 17 && f <= SUIRO__V1__EVENT__BODY_PUSH_MARK) || f == SUIRO__V1__EVENT__BODY_NOTIFY ||
                 f == SUIRO__V1__EVENT__BODY_ACCESS || f == SUIRO__V1__EVENT__BODY_WRITE_AUDIT ||
                 f == SUIRO__V1__EVENT__BODY_ACCESS_BATCH || f == SUIRO__V1__EVENT__BODY_CLUSTER ||
                 f == SUIRO__V1__EVENT__BODY_POINT_ALIAS || f == SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE)
            other = 1; /* no series part (Retention, 41, has one: apply decides) */
    }
    if (meas == other) return 1; /* both (the last wins) or no body: let apply decide */
    if (other) return 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *m = NULL;
        size_t ml = 0;
        if (sr__wire_varint(&p, end, &key) || sr__wire_skip(&p, end, (unsigned)(key & 7), &m, &ml)) return 1;
        if (key >> 3 != 16) continue;
        if ((key & 7) != 2) return 1; /* not a message: unpack reports it */
        int nsnap = 0;
        for (const uint8_t *q = m, *qe = m + ml; q < qe;) { /* Measurements: points = 1, snapshot = 2 */
            const uint8_t *pv = NULL;
            size_t pl = 0;
            if (sr__wire_varint(&q, qe, &key) || sr__wire_skip(&q, qe, (unsigned)(key & 7), &pv, &pl)) return 1;
            if (key >> 3 == 2) {
                if ((key & 7) != 2 || nsnap++ || snap_heads_needed(e, pv, pl, seq)) return 1;
                continue;
            }
            if (key >> 3 != 1) continue;
            if ((key & 7) != 2) return 1;
            uint64_t point = 0;
            for (const uint8_t *r = pv, *re = pv + pl; r < re;) { /* PointValues: point = 1 (the last wins) */
                uint64_t k2;
                if (sr__wire_varint(&r, re, &k2)) return 1;
                if (k2 >> 3 == 1) {
                    if ((k2 & 7) != 0 || sr__wire_varint(&r, re, &point)) return 1;
                } else if (sr__wire_skip(&r, re, (unsigned)(k2 & 7), NULL, NULL))
                    return 1;
            }
            if (point > UINT32_MAX) return 1;
            head *h = head_find(e, (uint32_t)point);
            if (!h || seq >= h->first_seq) return 1;
        }
    }
    return 0;
}

/* The key that seals what a replayed record writes into the index
 * (ixseal.h invariant 2): the one that sealed the record (id: the log's
 * key id of its section, sr_log_iter_key_id); for a record of a plain
 * section, or one sealed by the one key of a directory from before its
 * keyring (the master's own id, or a legacy entry), the active key of its
 * operator and class; 0 (form 0) when there is none. Called by the
 * applying thread only (a Key event's apply may change the keyring). */
static uint32_t seal_key(sr_engine *e, uint32_t id, const Event *ev, uint32_t *known)
{
    if (id && id == *known) return id;
    sr_keyinfo ki;
    /* a data key of the keyring (not the master's own id, which sealed a
     * directory before its keyring: a single-key log upgraded) */
    if (id && sr_keyring_info(e->keyring, id, &ki) == SR_OK && ki.cls != SR_KC_LEGACY) {
        *known = id;
        return id;
    }
    int cls = sr__key_class((int)ev->body_case);
    if (sr_keyring_active(e->keyring, ev->operator_id, cls < 0 ? SR_KC_CONFIG : cls, &id)) id = 0;
    return id;
}

/* What the applying thread carries from one event to the next. */
typedef struct rp_apply {
    MDB_txn *txn;
    uint64_t w, last, done, total, in_txn;
    uint32_t known; /* the last key id found a data key of the keyring */
    /* a rebuild's pipelined replay (invariant 6): events a transaction, and
     * whether `latest` rows wait for the transaction's end */
    uint64_t txn_events;
    int latest_late;
} rp_apply;

/* Apply one unpacked event of seq (kid: its section's key id): at or below
 * W to the heads only, above it in full (invariant 1). The same for both
 * ways of reading the log (below). */
static int apply_one(sr_engine *e, rp_apply *a, Event *ev, uint64_t seq, uint32_t kid)
{
    int rc = SR_OK;
    ev->seq = seq;
    if (e->keyring) e->seal.kid = seal_key(e, kid, ev, &a->known);
    if (seq <= a->w) {
        e->ost.replay_head_events++;
        return sr__apply_series(e, NULL, ev, 1);
    }
    if (e->o.readonly) return SR_OK;
    if (!a->txn && (rc = sr__ensure_room(e)) == SR_OK) rc = sr_index_write_begin(e->ix, &a->txn);
    sr_result r = {0};
    /* the rebuild's queued chunks go in before any other kind reads or
     * changes the series (heads.c invariant 11) */
    if (!rc && (e->cw || a->latest_late) && ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS) {
        rc = sr__cw_drain(e, a->txn);
        if (!rc && a->latest_late) rc = sr__heads_latest_flush(e, a->txn); /* (invariant 6) */
    }
    if (!rc) rc = sr__apply_nonseries(e, a->txn, ev, &r, 0);
    if (!rc) rc = sr__apply_common(e, a->txn, ev);
    if (!rc) rc = sr__apply_series(e, a->txn, ev, 0);
    if (!rc && (!a->latest_late || ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS))
        rc = sr__heads_latest_flush(e, a->txn); /* before the event's strings go */
    if (!rc && ++a->in_txn >= (a->txn_events ? a->txn_events : 4096)) {
        if (!(rc = sr__cw_drain(e, a->txn)) && !(rc = sr__heads_latest_flush(e, a->txn)) &&
            !(rc = sr__put_watermark(e, a->txn, seq)))
            rc = sr_index_commit(e->ix, a->txn); /* seq is applied */
        else sr_index_abort(a->txn);
        a->txn = NULL;
        a->in_txn = 0;
        sr__heads_latest_end(e, rc == SR_OK);
    }
    return rc;
}

static void progress(sr_engine *e, rp_apply *a)
{
    if (++a->done % 65536 == 0 && e->o.progress) e->o.progress(e->o.progress_ctx, a->done, a->total);
}

/* The ordinary way: read, unpack and apply each event of [from, end) in
 * this thread, one pb_arena reset after each apply (apply copies what it
 * keeps, as it must for the writer, whose events die with their group).
 * *seq: the last seq read. SR_DONE when end is reached. */
static int replay_serial(sr_engine *e, rp_apply *a, uint64_t from, uint64_t end, uint64_t *seq, sr_errinfo *ei)
{
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(e->log, from, &it);
    if (rc) return rc;
    pb_arena ar;
    pb_arena_init(&ar);
    sr_slice rec;
    while ((rc = sr__iter_next_readable(e, it, end, seq, &rec)) == SR_OK) {
        if (*seq >= end) {
            rc = SR_DONE; /* replay_to reached: stop before this one */
            break;
        }
        a->last = *seq;
        if (!e->ost.replay_events++) e->ost.replay_from = *seq;
        if (*seq <= a->w && !heads_needed(e, rec.data, rec.len, *seq)) {
            e->ost.replay_head_events++;
            e->ost.replay_skipped++;
            progress(e, a);
            continue;
        }
        Event *ev = suiro__v1__event__unpack(&ar.pa, rec.len, rec.data);
        if (!ev || ar.oom) {
            rc = ar.oom ? SR_ENOMEM : SR_ECORRUPT;
            if (ei && !ar.oom) snprintf(ei->msg, sizeof ei->msg, "log record %" PRIu64 " is not a valid event", *seq);
            break;
        }
        rc = apply_one(e, a, ev, *seq, sr_log_iter_key_id(it));
        sr_arena_reset(&ar.a); /* the event is gone (its pieces were the arena's) */
        if (rc) break;
        progress(e, a);
    }
    sr_arena_release(&ar.a);
    sr_log_iter_close(it);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The pipelined way (events above W): a reader thread reads the log        */
/* (block read, CRC, decrypt, decompress) and unpacks the events into       */
/* batches; this thread applies them, in log order, exactly as the ordinary */
/* way does. The reader never touches the index, the heads or e->seal; it   */
/* reads ahead at most RP_NBATCH batches, and not past a Key event until    */
/* that event is applied (its apply may destroy a key: the records after it */
/* must be opened, or found erased, as the ordinary way would).             */

enum { RP_NBATCH = 3, RP_BATCH_EVENTS = 512, RP_REBUILD_TXN = 65536 };

typedef struct rp_ev {
    Event *ev;
    uint64_t seq;
    uint32_t kid; /* its section's key id (sr_log_iter_key_id) */
} rp_ev;

typedef struct rp_batch {
    pb_arena ar; /* the batch's events; reset when the reader refills it */
    rp_ev v[RP_BATCH_EVENTS];
    size_t n;
    int rc;        /* SR_OK: more follow; else how reading ended after these (SR_DONE: end reached) */
    uint64_t seq;  /* the last seq read (the error's, when rc is one) */
    char msg[200]; /* an undecodable record's message */
} rp_batch;

typedef struct rp_pipe {
    sr_engine *e;
    sr_log_iter *it;
    uint64_t end, seq;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t filled, returned; /* batches the reader published, the applier gave back */
    int stop;                  /* the applier is done: the reader ends */
    rp_batch b[RP_NBATCH];
} rp_pipe;

static void *rp_reader(void *arg)
{
    rp_pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->filled - p->returned == RP_NBATCH) pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        rp_batch *b = &p->b[p->filled % RP_NBATCH]; /* given back: the applier is done with it */
        sr_arena_reset(&b->ar.a);
        b->ar.oom = 0;
        b->n = 0;
        b->rc = SR_OK;
        b->msg[0] = 0;
        int barrier = 0;
        while (b->n < RP_BATCH_EVENTS) {
            sr_slice rec;
            int rc = sr__iter_next_readable(p->e, p->it, p->end, &p->seq, &rec);
            if (!rc && p->seq >= p->end) rc = SR_DONE; /* replay_to reached: stop before this one */
            if (rc) {
                b->rc = rc;
                break;
            }
            Event *ev = suiro__v1__event__unpack(&b->ar.pa, rec.len, rec.data);
            if (!ev || b->ar.oom) {
                b->rc = b->ar.oom ? SR_ENOMEM : SR_ECORRUPT;
                if (!b->ar.oom) snprintf(b->msg, sizeof b->msg, "log record %" PRIu64 " is not a valid event", p->seq);
                break;
            }
            b->v[b->n++] = (rp_ev){ev, p->seq, sr_log_iter_key_id(p->it)};
            if (ev->body_case == SUIRO__V1__EVENT__BODY_KEY) {
                barrier = 1;
                break;
            }
        }
        b->seq = p->seq;
        pthread_mutex_lock(&p->mu);
        p->filled++;
        pthread_cond_broadcast(&p->cv);
        if (barrier)
            while (!p->stop && p->returned != p->filled) pthread_cond_wait(&p->cv, &p->mu);
        stop = p->stop || b->rc != SR_OK;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
    }
}

static int replay_pipelined(sr_engine *e, rp_apply *a, uint64_t from, uint64_t end, uint64_t *seq, sr_errinfo *ei)
{
    rp_pipe *p = sr_calloc(1, sizeof *p);
    if (!p) return SR_ENOMEM;
    int rc = sr_log_iter_open(e->log, from, &p->it);
    if (rc) {
        sr_free(p);
        return rc;
    }
    p->e = e;
    p->end = end;
    p->seq = *seq;
    for (int i = 0; i < RP_NBATCH; i++) pb_arena_init(&p->b[i].ar);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_t th;
    /* a rebuild encodes its chunks on the other cores (heads.c invariant 11),
     * in bigger transactions, its `latest` rows once a transaction (invariant 6) */
    if (e->o.rebuilding && (rc = sr__cw_start(e))) goto out;
    if (e->o.rebuilding) {
        a->txn_events = RP_REBUILD_TXN;
        a->latest_late = 1;
    }
    if (pthread_create(&th, NULL, rp_reader, p)) {
        rc = SR_ENOMEM;
        goto out;
    }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->returned == p->filled) pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        rp_batch *b = &p->b[p->returned % RP_NBATCH];
        for (size_t i = 0; i < b->n && !rc; i++) {
            *seq = a->last = b->v[i].seq;
            if (!e->ost.replay_events++) e->ost.replay_from = *seq;
            rc = apply_one(e, a, b->v[i].ev, *seq, b->v[i].kid);
            if (!rc) progress(e, a);
        }
        /* the batch's strings go when it is given back (invariant 6) */
        if (!rc && a->latest_late && a->txn) rc = sr__heads_latest_flush_some(e, a->txn, 1);
        if (!rc && b->rc) {
            rc = b->rc;
            *seq = b->seq;
            if (ei && b->msg[0]) snprintf(ei->msg, sizeof ei->msg, "%s", b->msg);
        }
        pthread_mutex_lock(&p->mu);
        p->returned++;
        if (rc) p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (rc) break;
    }
    pthread_join(th, NULL);
    if ((rc == SR_OK || rc == SR_DONE) && a->txn) { /* the last transaction's chunks and rows, before sr__replay commits it */
        int r2 = sr__cw_drain(e, a->txn);
        if (!r2) r2 = sr__heads_latest_flush(e, a->txn);
        if (r2) rc = r2;
    }
out:
    sr__cw_stop(e); /* (after an error: the jobs not put are dropped with the transaction) */
    for (int i = 0; i < RP_NBATCH; i++) sr_arena_release(&p->b[i].ar.a);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    sr_log_iter_close(p->it);
    sr_free(p);
    return rc;
}

/* Apply events from the log: (W, end] in full, and [min_first, W] for the
 * heads only (invariant 4); the first the pipelined way unless
 * opts.replay_serial (invariant 5). */
int sr__replay(sr_engine *e, uint64_t w, uint64_t min_first, sr_errinfo *ei)
{
    uint64_t end = sr_log_durable_seq(e->log); /* next seq */
    if (e->o.replay_to && e->o.replay_to + 1 < end) end = e->o.replay_to + 1;
    uint64_t from = min_first < w + 1 ? min_first : w + 1;
    if (from >= end) return SR_OK;
    rp_apply a = {.w = w, .total = end - from};
    uint64_t seq = 0;
    int rc;
    if (e->o.replay_serial || w + 1 >= end) rc = replay_serial(e, &a, from, end, &seq, ei);
    else {
        rc = from <= w ? replay_serial(e, &a, from, w + 1, &seq, ei) : SR_DONE; /* the heads-only part */
        if (rc == SR_DONE) rc = replay_pipelined(e, &a, w + 1, end, &seq, ei);
    }
    if (rc == SR_DONE) rc = SR_OK;
    else if (rc && ei && !ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "replay at seq %" PRIu64 ": %s", seq, sr_strerror(rc));
    if (!rc && a.txn) {
        if (!(rc = sr__put_watermark(e, a.txn, a.last))) rc = sr_index_commit(e->ix, a.txn);
        a.txn = NULL;
    }
    if (a.txn) sr_index_abort(a.txn);
    sr__heads_latest_end(e, !rc); /* aborted: the rows noted since the last commit are not in the index */
    if (!rc && e->o.progress) e->o.progress(e->o.progress_ctx, a.total, a.total);
    return rc;
}
