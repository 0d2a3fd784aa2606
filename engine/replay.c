/*
 * engine/replay.c -- the log applied to the index and the heads: at open
 * (engine.c) and when the writer resumes after a failed write (sr__recover).
 * It starts at the smallest first_seq of the heads, which the heads
 * checkpoints (heads.c, docs/durability.md section 8) keep within about
 * replay_max_events of the log's end.
 *
 * INVARIANTS
 *  (1) Events (W, end] are applied in full (pass 1 and 2, validate = 0) and
 *      the watermark is written with them, every 4,096 events and at the
 *      end: an interrupted replay resumes where it committed.
 *  (2) Events [min_first, W] rebuild the heads only (engine.c invariant 4);
 *      one whose points all have a head starting after it is not unpacked
 *      (heads_needed).
 *  (3) A record that does not decode stops the replay (SR_ECORRUPT naming
 *      its seq); nothing after it is applied.
 *  (4) A heads checkpoint above W is applied in full (it flushes as the
 *      writer did); at or below W it changes nothing (heads_db holds what it
 *      did, and the heads-only replay skips what it flushed by first_seq).
 */
#include "engine/engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Replay at open: events unpacked into an arena                            */

/* A restart replays tens of thousands of events (the heads' samples); each
 * is unpacked into one pb_arena, reset after its apply (apply copies what it
 * keeps, as it must for the writer, whose events die with their group). */

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
                 f == SUIRO__V1__EVENT__BODY_ACCESS || f == SUIRO__V1__EVENT__BODY_WRITE_AUDIT)
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
 * (ixseal.h invariant 2): the one that sealed the record; for a record of a
 * plain section, or one sealed by the one key of a directory from before
 * its keyring (the master's own id, or a legacy entry), the active key of
 * its operator and class; 0 (form 0) when there is none. */
static uint32_t seal_key(sr_engine *e, sr_log_iter *it, const Event *ev, uint32_t *known)
{
    uint32_t id = sr_log_iter_key_id(it);
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

/* Apply events from the log: (W, end] in full, and [min_first, W] for the
 * heads only (invariant 4). */
int sr__replay(sr_engine *e, uint64_t w, uint64_t min_first, sr_errinfo *ei)
{
    uint64_t end = sr_log_durable_seq(e->log); /* next seq */
    if (e->o.replay_to && e->o.replay_to + 1 < end) end = e->o.replay_to + 1;
    uint64_t from = min_first < w + 1 ? min_first : w + 1;
    if (from >= end) return SR_OK;
    sr_log_iter *it = NULL;
    MDB_txn *txn = NULL;
    int rc = sr_log_iter_open(e->log, from, &it);
    if (rc) return rc;
    pb_arena ar;
    pb_arena_init(&ar);
    uint64_t seq = 0, last = 0, done = 0, total = end - from, in_txn = 0;
    uint32_t known = 0; /* the last key id found a data key of the keyring */
    sr_slice rec;
    while ((rc = sr__iter_next_readable(e, it, end, &seq, &rec)) == SR_OK) {
        if (seq >= end) {
            rc = SR_DONE; /* replay_to reached: stop before this one */
            break;
        }
        last = seq;
        if (!e->ost.replay_events++) e->ost.replay_from = seq;
        if (seq <= w && !heads_needed(e, rec.data, rec.len, seq)) {
            e->ost.replay_head_events++;
            e->ost.replay_skipped++;
            if (++done % 65536 == 0 && e->o.progress) e->o.progress(e->o.progress_ctx, done, total);
            continue;
        }
        Event *ev = suiro__v1__event__unpack(&ar.pa, rec.len, rec.data);
        if (!ev || ar.oom) {
            rc = ar.oom ? SR_ENOMEM : SR_ECORRUPT;
            if (ei && !ar.oom) snprintf(ei->msg, sizeof ei->msg, "log record %" PRIu64 " is not a valid event", seq);
            break;
        }
        ev->seq = seq;
        if (e->keyring) e->seal.kid = seal_key(e, it, ev, &known);
        if (seq <= w) {
            e->ost.replay_head_events++;
            rc = sr__apply_series(e, NULL, ev, 1);
        } else if (!e->o.readonly) {
            if (!txn && (rc = sr__ensure_room(e)) == SR_OK) rc = sr_index_write_begin(e->ix, &txn);
            sr_result r = {0};
            if (!rc) rc = sr__apply_nonseries(e, txn, ev, &r, 0);
            if (!rc) rc = sr__apply_common(e, txn, ev);
            if (!rc) rc = sr__apply_series(e, txn, ev, 0);
            if (!rc) rc = sr__heads_latest_flush(e, txn); /* before the event's strings go */
            if (!rc && ++in_txn >= 4096) {
                if (!(rc = sr__put_watermark(e, txn, seq))) rc = sr_index_commit(e->ix, txn); /* seq is applied */
                else sr_index_abort(txn);
                txn = NULL;
                in_txn = 0;
                sr__heads_latest_end(e, rc == SR_OK);
            }
        }
        sr_arena_reset(&ar.a); /* the event is gone (its pieces were the arena's) */
        if (rc) break;
        if (++done % 65536 == 0 && e->o.progress) e->o.progress(e->o.progress_ctx, done, total);
    }
    sr_arena_release(&ar.a);
    if (rc == SR_DONE) rc = SR_OK;
    else if (rc && ei && !ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "replay at seq %" PRIu64 ": %s", seq, sr_strerror(rc));
    if (!rc && txn) {
        if (!(rc = sr__put_watermark(e, txn, last))) rc = sr_index_commit(e->ix, txn);
        txn = NULL;
    }
    if (txn) sr_index_abort(txn);
    sr__heads_latest_end(e, !rc); /* aborted: the rows noted since the last commit are not in the index */
    sr_log_iter_close(it);
    if (!rc && e->o.progress) e->o.progress(e->o.progress_ctx, total, total);
    return rc;
}
