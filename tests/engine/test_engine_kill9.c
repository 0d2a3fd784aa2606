/* tests/engine/test_engine_kill9.c -- real crashes of the whole engine: a
 * child process (tests/support/engine_writer.c) submits measurements with
 * sync=always from two threads and prints every acknowledged sample; the
 * test kill -9s it at random moments (>= 20 times), then reopens the engine
 * and checks:
 *  - every acknowledged sample is returned by sr_engine_range with the
 *    acknowledged value (later acknowledged writes of a (point, ts) win;
 *    some commands are corrections, R-PO-1: their values win the same way);
 *    commands that were durable but not yet acknowledged when the child died
 *    (only the ones after the last acknowledgement can be) are read from the
 *    log and expected too -- so the range answers exactly the model;
 *  - sr_engine_latest is the newest sample of the model (never older than
 *    the newest acknowledged one);
 *  - every user an acknowledged command created (the writer's every 16th
 *    command of a thread) is in the index, and its creation in the audit
 *    trail (`audit`);
 *  - every pending change an acknowledged command requested is in the
 *    index, approved if its approval was acknowledged; and every pending
 *    change the index holds is approved exactly when the user its change
 *    creates exists, approved by the second admin (the change and its
 *    approval are one event: no crash leaves one without the other);
 *  - every document an acknowledged command put is in the index, with its
 *    app as the owner (R-PO-2);
 *  - the index equals one rebuilt from the log (content hash);
 *  - the keyring opens after every kill (never half-written: issue #16),
 *    the log holds a "rotated" KeyEvent for every acknowledged rotation of
 *    op1's data key (and perhaps one durable but unacknowledged), and the
 *    keyring's epoch of that key is past all of them (a rotation the
 *    keyring holds but the log lost is a key no record uses). Every record
 *    is sealed by a data key (et_master_key). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/records.h"
#include "engtest.h"
#include "storage/crypto.h"
#include "storage/keyring.h"
#include "storage/log.h"
#include "testutil.h"

extern char **environ;

/* as in engine_writer.c: head_max shapes the chunks, so the rebuild must use
 * the writer's value for the index to be comparable */
enum { NPOINTS = 6, HEAD_MAX = 16, REPLAY_MAX = 32 /* engine_writer's replay_max_events */ };

static char *dir;
static pid_t child = -1;

static void setup(void) { dir = tu_tmpdir("ekill9"); }
static void teardown(void)
{
    if (child > 0) { /* an assertion failed while the child ran */
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    tu_rmrf(dir);
    free(dir);
}
TestSuite(engine_kill9, .init = setup, .fini = teardown, .timeout = 900);

static sr_vtype TYPE_OF[64]; /* by point number */

typedef struct pending {
    sr_sample *s;
    uint32_t *point;
    size_t n, cap;
} pending;

static void pend_add(pending *p, uint32_t point, const sr_sample *s)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->s = realloc(p->s, p->cap * sizeof *p->s);
        p->point = realloc(p->point, p->cap * sizeof *p->point);
        cr_assert(p->s && p->point);
    }
    p->s[p->n] = *s;
    p->point[p->n++] = point;
}

static sr_sample sample_of(uint32_t point, int64_t ts, unsigned q, uint64_t bits)
{
    cr_assert_lt(point, 64);
    sr_sample s = {.ts = ts, .quality = (uint8_t)q};
    sr_vtype t = TYPE_OF[point];
    if (t == SR_VT_NUMBER) memcpy(&s.v.f, &bits, sizeof bits);
    else if (t == SR_VT_INTEGER) s.v.i = (int64_t)bits;
    else s.v.b = (int)bits;
    return s;
}

/* The users of acknowledged commands (every round's): each must exist. */
static char acked_users[8192][64];
static int nacked_users;
/* The documents of acknowledged commands and their owners. */
static char acked_docs[8192][2][64];
static int nacked_docs;

/* The pending changes of acknowledged commands: id and 'r' (requested) or
 * 'a' (approved). */
static struct {
    char id[64];
    char action;
} acked_pending[8192];
static int nacked_pending, nacked_approvals;
static int nacked_rotations; /* acknowledged rotations of op1's data key */

static sr_key master; /* et_master_key */

/* d's log, read-only, with its keyring (*kr: close it after the log) */
static sr_log *open_log(const char *d, sr_keyring **kr)
{
    char ld[1100], kd[1100];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_errinfo ei;
    *kr = NULL;
    int rc = sr_keyring_open(NULL, kd, &master, "test", 0, kr, &ei);
    cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "the keyring after kill -9: %s", ei.msg);
    sr_log_opts lo = {.readonly = 1, .key = &master, .keys = *kr ? sr_keyring_keys(*kr) : NULL};
    sr_log *lg = NULL;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    return lg;
}

typedef struct round_out {
    uint64_t last_seq;   /* seq of the last complete acknowledged block (0: none) */
    int acks;            /* complete blocks */
    int64_t newest[64];  /* newest acknowledged ts per point (INT64_MIN: none) */
} round_out;

/* Run the writer until it has acknowledged `want` commands, wait a random
 * few microseconds, SIGKILL it; acknowledged samples go into the model in
 * the order they were printed. */
static void run_and_kill(const char *d, uint64_t seed, int want, uint64_t delay_us, et_model *m, round_out *ro,
                         uint32_t *points)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char seeds[32];
    snprintf(seeds, sizeof seeds, "%" PRIu64, seed);
    char *argv[] = {SR_ENGINE_WRITER_BIN, (char *)d, seeds, NULL};
    cr_assert_eq(posix_spawn(&child, SR_ENGINE_WRITER_BIN, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    cr_assert_not_null(in);
    char line[256];
    pending blk = {0};
    char blk_user[64] = "", blk_pend[64] = "", blk_pend_action[16] = "", blk_doc[2][64] = {"", ""};
    int killed = 0, ready = 0, blk_rot = 0;
    uint64_t blk_seq = 0;
    while (fgets(line, sizeof line, in)) {
        uint64_t seq, bits;
        uint32_t point;
        int64_t ts;
        unsigned q;
        int idx, ty;
        if (!strcmp(line, "ready\n")) {
            ready = 1;
        } else if (sscanf(line, "point %d %" SCNu32 " %d", &idx, &point, &ty) == 3) {
            cr_assert(idx >= 0 && idx < NPOINTS && point < 64);
            points[idx] = point;
            TYPE_OF[point] = (sr_vtype)ty;
        } else if (sscanf(line, "ack %" SCNu64 " %" SCNu32 " %" SCNd64 " %u %" SCNx64, &seq, &point, &ts, &q, &bits) ==
                   5) {
            cr_assert(ready);
            cr_assert_lt(point, 64);
            if (blk.n) cr_assert_eq(seq, blk_seq, "ack lines of two commands mixed");
            blk_seq = seq;
            sr_sample s = sample_of(point, ts, q, bits);
            pend_add(&blk, point, &s);
        } else if (sscanf(line, "pending %" SCNu64 " %63s %15s", &seq, blk_pend, blk_pend_action) == 3) {
            cr_assert(ready);
            cr_assert_eq(blk.n, 0, "a pending change's line inside a measurements block");
        } else if (sscanf(line, "user %" SCNu64 " %63s", &seq, blk_user) == 2) {
            cr_assert(ready);
            cr_assert_eq(blk.n, 0, "a user's line inside a measurements block");
        } else if (sscanf(line, "doc %" SCNu64 " %63s %63s", &seq, blk_doc[0], blk_doc[1]) == 3) {
            cr_assert(ready);
            cr_assert_eq(blk.n, 0, "a document's line inside a measurements block");
        } else if (sscanf(line, "key %" SCNu64, &seq) == 1) {
            cr_assert(ready);
            cr_assert_eq(blk.n, 0, "a key rotation's line inside a measurements block");
            blk_rot = 1;
        } else if (sscanf(line, "dup %" SCNu64, &seq) == 1) {
            cr_assert_eq(blk.n, 0);
            cr_assert_leq(seq, ro->last_seq ? ro->last_seq : UINT64_MAX, "a duplicate names a later command");
        } else if (sscanf(line, "end %" SCNu64, &seq) == 1) {
            /* the block is complete: the command was acknowledged */
            for (size_t i = 0; i < blk.n; i++) {
                et_model_put(m, blk.point[i], &blk.s[i]);
                if (blk.s[i].ts > ro->newest[blk.point[i]]) ro->newest[blk.point[i]] = blk.s[i].ts;
            }
            if (blk.n) {
                cr_assert_eq(seq, blk_seq);
                cr_assert_gt(seq, ro->last_seq, "acknowledgements out of sequence order");
                ro->last_seq = seq;
            }
            blk.n = 0;
            if (blk_user[0]) {
                cr_assert_lt(nacked_users, (int)(sizeof acked_users / sizeof *acked_users));
                memcpy(acked_users[nacked_users++], blk_user, sizeof blk_user);
                blk_user[0] = 0;
            }
            if (blk_pend[0]) {
                cr_assert_lt(nacked_pending, (int)(sizeof acked_pending / sizeof *acked_pending));
                memcpy(acked_pending[nacked_pending].id, blk_pend, sizeof blk_pend);
                acked_pending[nacked_pending++].action = blk_pend_action[0];
                nacked_approvals += blk_pend_action[0] == 'a';
                blk_pend[0] = 0;
            }
            nacked_rotations += blk_rot;
            blk_rot = 0;
            if (blk_doc[0][0]) {
                cr_assert_lt(nacked_docs, (int)(sizeof acked_docs / sizeof *acked_docs));
                memcpy(acked_docs[nacked_docs++], blk_doc, sizeof blk_doc);
                blk_doc[0][0] = 0;
            }
            if (++ro->acks >= want && !killed) {
                struct timespec tsl = {0, (long)(delay_us * 1000)};
                nanosleep(&tsl, NULL);
                kill(child, SIGKILL);
                killed = 1;
            }
        } else {
            cr_assert(killed, "unexpected line from the writer: %s", line);
            /* a torn last line after the kill: its block has no "end" */
        }
        /* after the kill, drain what was already printed */
    }
    fclose(in);
    free(blk.s);
    free(blk.point);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    child = -1;
    cr_assert(ready, "the writer never became ready");
    cr_assert(killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "writer exited on its own (status %d)", st);
}

/* Events after `from` that are durable in the log (the child died before
 * acknowledging them): their samples are expected too. Returns the log end. */
static uint64_t add_durable_tail(const char *d, uint64_t from, et_model *m)
{
    sr_keyring *kr;
    sr_log *lg = open_log(d, &kr);
    uint64_t end = sr_log_next_seq(lg);
    if (from < end) {
        sr_log_iter *it;
        cr_assert_eq(sr_log_iter_open(lg, from, &it), SR_OK);
        uint64_t seq;
        sr_slice rec;
        int rc;
        while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
            Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
            cr_assert_not_null(ev, "log record %" PRIu64 " does not decode", seq);
            /* measurements, or a correction's values (engine_writer's n % 16 == 3) */
            const Suiro__V1__Measurements *mv = ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS ? ev->measurements
                                                : ev->body_case == SUIRO__V1__EVENT__BODY_CORRECTION ? ev->correction->values
                                                                                                     : NULL;
            if (mv) {
                sr_meas_iter mi;
                sr_mpoint pv;
                sr_meas_iter_init(&mi, mv);
                while (sr_meas_next(&mi, &pv)) { /* both forms: PointValues and snapshot entries */
                    cr_assert_gt(pv.n, 0);
                    sr_sample s;
                    for (long i = 0; i < pv.n; i++) {
                        cr_assert_eq(sr_pv_iter_next(&pv.it, &s), 0);
                        et_model_put(m, pv.point, &s);
                    }
                }
            }
            suiro__v1__event__free_unpacked(ev, NULL);
        }
        cr_assert_eq(rc, SR_DONE, "log iteration: %s", sr_err_name(rc));
        sr_log_iter_close(it);
    }
    sr_log_close(lg);
    sr_keyring_close(kr);
    return end;
}

/* Records of d's log that hold a Snapshot (codecs/events.proto). */
/* The Snapshot records in d's log; *by_time: the heads checkpoints of
 * reason "time" (engine_writer's checkpoint_interval_ms). */
static int log_snapshots(const char *d, int *by_time, int *rotated)
{
    sr_keyring *kr;
    sr_log *lg = open_log(d, &kr);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int n = 0;
    while (sr_log_iter_next(it, &seq, &rec) == SR_OK) {
        Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev);
        n += ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS && ev->measurements->snapshot;
        *by_time += ev->body_case == SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT && ev->heads_checkpoint &&
                    !strcmp(ev->heads_checkpoint->reason, "time");
        *rotated += ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "rotated") &&
                    !strcmp(ev->key->key_operator, "op1");
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    return n;
}

static void check_round(const char *d, int round, et_model *m, const round_out *ro, const uint32_t *points)
{
    sr_engine *e = NULL;
    sr_errinfo ei;
    sr_engine_opts o = {.head_max = HEAD_MAX, .key = &master};
    int rc = sr_engine_open(d, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "round %d: reopen: %s", round, ei.msg);
    sr_buf out, strs;
    sr_buf_init(&out);
    sr_buf_init(&strs);
    for (int k = 0; k < NPOINTS; k++) {
        uint32_t p = points[k];
        sr_vtype t = TYPE_OF[p];
        sr_sample *want;
        size_t nw = et_model_range(m, p, INT64_MIN / 4, INT64_MAX / 4, &want);
        out.len = strs.len = 0;
        int more = 0;
        sr_range_q q = {.point = p, .from = INT64_MIN / 4, .to = INT64_MAX / 4, .after = INT64_MIN};
        cr_assert_eq(sr_engine_range(e, &q, &out, &strs, &more), SR_OK);
        cr_assert_eq(more, 0);
        sr_sample *v = (sr_sample *)out.data;
        size_t n = out.len / sizeof *v;
        for (size_t i = 0, j = 0; i < nw; i++) {
            while (j < n && v[j].ts < want[i].ts) j++;
            cr_assert(j < n && v[j].ts == want[i].ts,
                      "round %d point %" PRIu32 ": acknowledged sample ts %" PRId64 " is missing", round, p,
                      want[i].ts);
            cr_assert(et_sample_eq(t, &v[j], &want[i]),
                      "round %d point %" PRIu32 " ts %" PRId64 ": stored value differs from the acknowledged one",
                      round, p, want[i].ts);
        }
        cr_assert_eq(n, nw, "round %d point %" PRIu32 ": %zu samples stored, %zu expected", round, p, n, nw);
        sr_sample l;
        int found = 0;
        cr_assert_eq(sr_engine_latest(e, &p, 1, &l, &found, NULL), SR_OK);
        if (ro->newest[p] != INT64_MIN) {
            cr_assert(found, "round %d point %" PRIu32 ": no latest value", round, p);
            cr_assert_geq(l.ts, ro->newest[p], "round %d point %" PRIu32 ": latest is older than acknowledged", round,
                          p);
        }
        if (nw) {
            cr_assert(found);
            cr_assert(et_sample_eq(t, &l, &want[nw - 1]), "round %d point %" PRIu32 ": latest ts %" PRId64
                      " is not the newest sample %" PRId64, round, p, l.ts, want[nw - 1].ts);
        }
        free(want);
    }
    sr_buf_release(&out);
    sr_buf_release(&strs);
    sr_rec ur = SR_REC_INIT;
    for (int i = 0; i < nacked_users; i++) {
        sr_user u;
        cr_assert_eq(sr_read_user(e, acked_users[i], &ur, &u), SR_OK, "round %d: acknowledged user %s is missing",
                     round, acked_users[i]);
        cr_assert(u.temporary && u.n_roles == 1, "round %d: user %s", round, acked_users[i]);
    }
    /* pending changes: the acknowledged ones, and approved == applied */
    for (int i = 0; i < nacked_pending; i++) {
        sr_pending pc;
        cr_assert_eq(sr_read_pending(e, acked_pending[i].id, &ur, &pc), SR_OK,
                     "round %d: acknowledged pending change %s is missing", round, acked_pending[i].id);
        if (acked_pending[i].action == 'a')
            cr_assert_str_eq(pc.state, "approved", "round %d: pending change %s: its approval was acknowledged",
                             round, acked_pending[i].id);
    }
    sr_rec pr = SR_REC_INIT;
    sr_pending pc;
    cr_assert_eq(sr_list_pending(e, &pr), SR_OK);
    int more;
    while ((more = sr_rec_next_pending(&pr, &pc)) == 1) {
        char uid[80];
        snprintf(uid, sizeof uid, "pu-%s", pc.id + 3); /* pq-X creates pu-X */
        sr_user u;
        int urc = sr_read_user(e, uid, &ur, &u);
        if (!strcmp(pc.state, "approved")) {
            cr_assert_eq(urc, SR_OK, "round %d: pending change %s approved, its user %s missing", round, pc.id, uid);
            cr_assert_str_eq(u.approved_by, "pa2", "round %d: user %s", round, uid);
        } else {
            cr_assert_str_eq(pc.state, "requested", "round %d: pending change %s", round, pc.id);
            cr_assert_eq(urc, SR_ENOTFOUND, "round %d: pending change %s not approved, yet its user exists", round,
                         pc.id);
        }
    }
    cr_assert_eq(more, 0, "round %d: a pending record does not decode", round);
    sr_rec_close(&pr);
    /* the audit trail holds each acknowledged creation (its row is written
     * with its event, in the same transaction) */
    sr_audit_query aq = {.kind = "user", .limit = 1000};
    int amore = 1, arc;
    size_t nrows = 0, found_rows = 0;
    while (amore) {
        cr_assert_eq(sr_list_audit(e, &aq, &ur, &amore), SR_OK);
        sr_audit_rec a;
        while ((arc = sr_rec_next_audit(&ur, &a)) == 1) {
            nrows++;
            for (int i = 0; i < nacked_users; i++) found_rows += !strcmp(a.target + 5, acked_users[i]);
            aq.after_ms = a.ms;
            aq.after_seq = a.seq;
        }
        cr_assert_eq(arc, 0, "round %d: an audit row does not decode", round);
    }
    cr_assert_eq(found_rows, (size_t)nacked_users, "round %d: %zu of %d acknowledged users have their audit row", round,
                 found_rows, nacked_users);
    sr_rec_close(&ur);
    for (int i = 0; i < nacked_docs; i++) {
        uint64_t rev;
        int okind;
        char owner[256];
        cr_assert_eq(sr_engine_doc_get(e, "op1", "kill9", acked_docs[i][0], &rev, NULL, &okind, owner), SR_OK,
                     "round %d: acknowledged document %s is missing", round, acked_docs[i][0]);
        cr_assert(okind == SR_ACTOR_APP && !strcmp(owner, acked_docs[i][1]), "round %d: document %s: owner %s",
                  round, acked_docs[i][0], owner);
    }
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);

    char ix[1100];
    snprintf(ix, sizeof ix, "%s-rebuilt-index", d);
    sr_engine_opts ro2 = {.head_max = HEAD_MAX, .index_dir = ix, .key = &master};
    cr_assert_eq(sr_engine_rebuild(d, &ro2, &ei), SR_OK, "round %d: rebuild: %s", round, ei.msg);
    cr_assert_eq(sr_engine_open(d, &ro2, &e, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "round %d: the index differs from one rebuilt from the log", round);
}

Test(engine_kill9, every_acknowledged_sample_survives_kill_9)
{
    uint64_t seed = tu_seed(11);
    tu_rng r = {seed};
    et_master_key(&master);
    int rounds = tu_iters(24);
    char d[1100];
    snprintf(d, sizeof d, "%s/db", dir);
    et_model *m = et_model_new();
    uint32_t points[NPOINTS];
    uint64_t durable_end = 1; /* the log's next seq after the previous round */
    int total_acks = 0, tail_events = 0, checkpointed = 0;
    for (int round = 0; round < rounds; round++) {
        round_out ro = {0};
        for (int k = 0; k < 64; k++) ro.newest[k] = INT64_MIN;
        int want = 1 + (int)tu_below(&r, 300);
        uint64_t delay = tu_below(&r, 4000);
        run_and_kill(d, tu_next(&r), want, delay, m, &ro, points);
        cr_assert_gt(ro.last_seq, 0, "round %d: nothing acknowledged", round);
        cr_assert_geq(ro.last_seq, durable_end, "round %d: acknowledged seq %" PRIu64 " below the previous log end",
                      round, ro.last_seq);
        total_acks += ro.acks;
        /* recovery (a reopen) first, then what is durable past the last
         * acknowledgement is expected as well */
        sr_engine *e = NULL;
        sr_errinfo ei;
        sr_engine_opts o = {.head_max = HEAD_MAX, .replay_max_events = REPLAY_MAX, .key = &master};
        cr_assert_eq(sr_engine_open(d, &o, &e, &ei), SR_OK, "round %d: reopen: %s", round, ei.msg);
        /* heads checkpoints (docs/durability.md section 8): the replay
         * starts at the last one's before_seq or later */
        sr_engine_open_stats os;
        sr_engine_get_open_stats(e, &os);
        if (os.checkpoint_seq) checkpointed++;
        cr_assert(!os.replay_events || os.replay_from >= os.checkpoint_before,
                  "round %d: the replay started at %" PRIu64 ", before the checkpoint's before_seq %" PRIu64, round,
                  os.replay_from, os.checkpoint_before);
        sr_engine_close(e);
        durable_end = add_durable_tail(d, ro.last_seq + 1, m);
        tail_events += (int)(durable_end - 1 - ro.last_seq);
        cr_assert_gt(durable_end, ro.last_seq, "round %d: acknowledged seq %" PRIu64 " is past the log end", round,
                     ro.last_seq);
        check_round(d, round, m, &ro, points);
        /* the keyring (opened by the reads above: never half-written) and
         * the rotations of op1's data key */
        int bt = 0, rotated = 0;
        (void)log_snapshots(d, &bt, &rotated);
        cr_assert_geq(rotated, nacked_rotations, "round %d: %d rotations in the log, %d acknowledged", round, rotated,
                      nacked_rotations);
        char kd[1200];
        snprintf(kd, sizeof kd, "%s/keys", d);
        sr_keyring *kr = NULL;
        cr_assert_eq(sr_keyring_open(NULL, kd, &master, "test", 0, &kr, &ei), SR_OK, "round %d: %s", round, ei.msg);
        uint32_t id;
        sr_keyinfo ki;
        cr_assert_eq(sr_keyring_active(kr, "op1", SR_KC_DATA, &id), SR_OK);
        cr_assert_eq(sr_keyring_info(kr, id, &ki), SR_OK);
        cr_assert_geq(ki.epoch, (uint32_t)rotated, "round %d: op1's data key at epoch %u, %d rotations logged (the first may make epoch 1)",
                      round, ki.epoch, rotated);
        cr_assert_null(sr_keyring_check(kr));
        sr_keyring_close(kr);
    }
    cr_log_info("%d rounds, %d acknowledged commands, %d durable but unacknowledged, log ends at %" PRIu64, rounds,
                total_acks, tail_events, durable_end - 1);
    cr_assert_gt(total_acks, rounds, "the writer should have acknowledged many commands");
    cr_assert_gt(nacked_users, 0, "no user creation was acknowledged");
    cr_assert_gt(nacked_approvals, 0, "no pending change's approval was acknowledged");
    cr_assert_gt(nacked_docs, 0, "no document was acknowledged");
    cr_assert_gt(checkpointed, 0, "no round recovered from a heads checkpoint");
    cr_assert_gt(nacked_rotations, 0, "no key rotation was acknowledged");
    int by_time = 0, rotated = 0;
    cr_assert_gt(log_snapshots(d, &by_time, &rotated), rounds, "the log should hold many Snapshot records");
    cr_log_info("%d heads checkpoints by time", by_time);
    cr_assert_gt(by_time, 0, "no heads checkpoint of reason \"time\" before a kill");
    et_model_free(m);
}
