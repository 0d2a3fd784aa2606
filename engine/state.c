/*
 * engine/state.c -- the state at a past time (issue #18, R-RE-2;
 * docs/state.md): "what did the platform and its apps see at T".
 *
 * T is an ingest time: the state at T is the index as it was after the
 * last event whose ingest time is at or before T (seq(T)), i.e. after
 * everything that was durable and acknowledged at T. It is built by
 * replaying the log from its start up to seq(T) into a private index in a
 * temporary directory (the rebuild's own path: sr_engine_open with
 * index_dir, log_readonly and replay_to), so every applier of
 * SR_EVENT_KINDS decides the state exactly as the live writer did; the
 * caller then reads it through the ordinary typed readers (records.h).
 * A replay from the log's start with the ordinary appliers is the
 * reference answer; the answer starts from the nearest state snapshot
 * instead (invariant 5), so it replays at most one snapshot interval
 * (docs/state.md "Cost").
 *
 * INVARIANTS
 *  (1) seq(T) is the largest readable seq whose event's ingest_ms <= T
 *      (ingest times do not decrease along the log: the writer stamps a
 *      group with one clock read after the previous group's); 0 when the
 *      log's first event is after T.
 *  (2) The private engine applied exactly the events (first, seq(T)] of the
 *      log: never one after seq(T) (a late value received after T is not
 *      in it).
 *  (3) A T before the log's first kept event of a log whose start was
 *      dropped (segments dropped, docs/keys.md "Segments") is refused
 *      (SR_EINVAL naming the horizon): the state then is not in the log.
 *  (4) The private index lives only between sr_engine_state_open and
 *      sr_engine_state_close, which removes its directory.
 *  (5) The private index starts from the nearest usable state snapshot S
 *      at or before seq(T) (engine/statesnap.c: the index's own rows at S,
 *      raw), its watermark S, so the open replays S+1..seq(T) only; with
 *      none, from the log's start. Its measurement appliers write the
 *      `latest` rows only (state_only: no series, heads, audit, message
 *      ids or Merkle tree), which is all the answer reads of them; the
 *      answer equals the full replay's with the ordinary appliers
 *      (test_state: every event boundary, snapshots on and off).
 *  (6) The private engine reads the live engine's open log (log_shared:
 *      its iterators, as a query's; never written, never closed by it), so
 *      its open does not open and scan the log's segments again; its index
 *      (the snapshot's copy and the replay) is never fsynced: it is thrown
 *      away (test_state the_private_engine_reads_the_live_log_and_leaves_it_open).
 */
#include "engine/engine_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ingest time of a record, read from its wire form (Event.ingest_ms =
 * field 2, a varint) without unpacking it; SR_ECORRUPT if it has none. */
static int record_ms(const uint8_t *p, size_t n, int64_t *ms)
{
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t key, v;
        if (sr__wire_varint(&p, end, &key)) return SR_ECORRUPT;
        if (key == ((2u << 3) | 0)) {
            if (sr__wire_varint(&p, end, &v)) return SR_ECORRUPT;
            *ms = (int64_t)v;
            return SR_OK;
        }
        if (sr__wire_skip(&p, end, (unsigned)(key & 7), NULL, NULL)) return SR_ECORRUPT;
    }
    *ms = 0; /* proto3: a zero time is not written */
    return SR_OK;
}

/* The first readable record at or after seq (below stop): its seq and
 * ingest time; SR_DONE when there is none. */
static int first_at(sr_engine *e, uint64_t seq, uint64_t stop, uint64_t *found, int64_t *ms)
{
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(e->log, seq, &it);
    if (rc) return rc;
    sr_slice rec;
    uint64_t s = 0;
    for (;;) {
        rc = sr_log_iter_next(it, &s, &rec);
        if (rc == SR_EERASED) continue; /* its key destroyed: no time to read */
        break;
    }
    if (!rc && s >= stop) rc = SR_DONE;
    if (!rc) rc = record_ms(rec.data, rec.len, ms);
    if (!rc) *found = s;
    sr_log_iter_close(it);
    return rc;
}

/* invariant (1): a binary search over the log's readable seqs */
static int seq_at(sr_engine *e, int64_t at, uint64_t first, uint64_t stop, uint64_t *out, int64_t *out_ms)
{
    uint64_t lo = first - 1, hi = stop - 1; /* lo: the answer so far (first - 1: none) */
    int64_t lo_ms = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2, s;
        int64_t ms;
        int rc = first_at(e, mid, hi + 1, &s, &ms);
        if (rc == SR_DONE || (!rc && ms > at)) {
            hi = mid - 1;
            continue;
        }
        if (rc) return rc;
        lo = s;
        lo_ms = ms;
    }
    *out = lo >= first ? lo : 0;
    *out_ms = lo >= first ? lo_ms : 0;
    return SR_OK;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[4096];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            (void)unlink(p);
        }
        closedir(d);
    }
    (void)rmdir(dir);
}

static void quiet(void *ctx, const char *msg)
{
    (void)ctx;
    (void)msg;
}

int sr_engine_state_open(sr_engine *e, int64_t at_ms, sr_engine **at, sr_state_info *info, sr_errinfo *ei)
{
    *at = NULL;
    memset(info, 0, sizeof *info);
    info->at_ms = at_ms;
    uint64_t first = sr_log_first_seq(e->log), stop = sr_log_durable_seq(e->log);
    info->first_seq = first;
    if (first >= stop) return SR_OK; /* an empty log: an empty state */
    uint64_t s0;
    int rc = first_at(e, first, stop, &s0, &info->horizon_ms);
    if (rc == SR_DONE) return SR_OK; /* every record erased */
    if (rc) return rc;
    if (at_ms < info->horizon_ms && first > 1) { /* invariant (3) */
        if (ei) {
            char t[40];
            snprintf(t, sizeof t, "%" PRId64, info->horizon_ms);
            snprintf(ei->msg, sizeof ei->msg,
                     "at: before the log's horizon (its first kept event, seq %" PRIu64 ", at %s ms): the state then "
                     "is no longer in the log",
                     first, t);
        }
        return SR_EINVAL;
    }
    uint64_t t0 = mono_us();
    if ((rc = seq_at(e, at_ms, first, stop, &info->seq, &info->seq_ms))) return rc;
    uint64_t t1 = mono_us();
    info->search_us = t1 - t0;
    if (!info->seq) return SR_OK; /* before the first event: nothing yet */
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL;
    size_t dl = strlen(tmp && tmp[0] ? tmp : "/tmp") + 32;
    if (!(dir = malloc(dl))) return SR_ENOMEM;
    snprintf(dir, dl, "%s/suiro-state-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        if (ei) snprintf(ei->msg, sizeof ei->msg, "cannot make a temporary index directory in %s", tmp ? tmp : "/tmp");
        free(dir);
        return SR_EIO;
    }
    /* invariant (5): the nearest usable snapshot at or before seq(T) */
    if (!e->o.state_full_replay &&
        (rc = sr__snap_restore(e, info->seq, first, dir, &info->snap_seq, &info->snap_ms, &info->snap_skipped, ei))) {
        rm_tree(dir);
        free(dir);
        return rc;
    }
    uint64_t t2 = mono_us();
    info->restore_us = t2 - t1;
    /* invariant (2): the rebuild's path, stopped at seq(T) */
    sr_engine_opts o = {.key = e->o.key, .single_key = e->o.single_key, .key_source = e->o.key_source,
                        .vfs = e->o.vfs, .head_max = sr_engine_head_max(e), .index_dir = dir, .log_readonly = 1,
                        .replay_to = info->seq, .index_nosync = 1, .notice = quiet, .no_recover = 1,
                        .state_only = !e->o.state_full_replay, .log_shared = e->log};
    sr_engine *p = NULL;
    if ((rc = sr_engine_open(e->dir, &o, &p, ei))) {
        rm_tree(dir);
        free(dir);
        return rc;
    }
    p->state_dir = dir;
    info->open_us = mono_us() - t2;
    info->replayed = p->ost.replay_events;
    info->erased = p->ost.erased_records;
    *at = p;
    return SR_OK;
}

int sr_engine_state_close(sr_engine *at)
{
    if (!at) return SR_OK;
    char *dir = at->state_dir;
    at->state_dir = NULL;
    int rc = sr_engine_close(at);
    if (dir) rm_tree(dir); /* invariant (4) */
    free(dir);
    return rc;
}

int sr_engine_request_each(sr_engine *e, const char *op, sr_request_key_fn fn, void *ctx)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_REQUESTS), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    size_t pl = op ? strlen(op) + 1 : 0; /* the prefix op \0 */
    MDB_val K = {pl, (void *)op}, V;
    int r = mdb_cursor_get(c, &K, &V, op ? MDB_SET_RANGE : MDB_FIRST);
    for (; r == 0; r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        const char *k = K.mv_data;
        size_t kl = K.mv_size;
        if (pl && (kl < pl || memcmp(k, op, pl))) break;
        /* op \0 request \0 gateway \0 tag: the created row ('c') of each */
        if (kl < 2 || k[kl - 1] != 'c' || k[kl - 2] != 0) continue;
        const char *o = k, *rq = memchr(k, 0, kl);
        if (!rq) continue;
        rq++;
        const char *gw = memchr(rq, 0, (size_t)(k + kl - rq));
        if (!gw) continue;
        gw++;
        char ob[72], rb[72], gb[72];
        size_t ol = (size_t)(rq - 1 - o), rl = (size_t)(gw - 1 - rq), gl = (size_t)(k + kl - 2 - gw);
        if (ol >= sizeof ob || rl >= sizeof rb || gl >= sizeof gb) continue;
        memcpy(ob, o, ol), ob[ol] = 0;
        memcpy(rb, rq, rl), rb[rl] = 0;
        memcpy(gb, gw, gl), gb[gl] = 0;
        if ((rc = fn(ctx, ob, rb, gb))) break;
    }
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}
