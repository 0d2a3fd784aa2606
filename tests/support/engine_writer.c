/* tests/support/engine_writer.c -- child process for the engine kill -9 test.
 *
 * usage: engine_writer DIR SEED
 * Opens the engine in DIR with sync=always, registers the masters once
 * (EW_NPOINTS points P000.. of types number/integer/boolean), prints
 * "ready", then submits measurement commands forever from two threads with
 * sr_engine_submit ("point INDEX NUMBER TYPE" lines before "ready" say
 * which point number P<INDEX> got). Thread t writes only the points with index % 2 == t
 * (all behind gateway GW<t+1>), so the value of a (point, ts) is decided by
 * one thread's submission order. Commands carry random batch sizes,
 * out-of-order, repeated and late timestamps, or are snapshots (every point
 * one value at one time: Snapshot records, some mixed with a series), and
 * sometimes repeat a recent message id (a duplicate: nothing is stored).
 * Every PAUSE_EVERY commands both threads stop for longer than the heads
 * checkpoint interval, so checkpoints by time are among those kill -9 meets.
 * Every 16th command of a thread creates a user instead (a UserEvent, ID
 * u-SEED-T-N). And every 16th (n % 16 == 11) requests a pending change
 * (the two-person rule: PendingEvent, ID pq-SEED-T-N, requested by platform
 * admin pa1) whose change creates an operator admin pu-SEED-T-N, and the
 * thread's next command approves it (by pa2): the change is applied with
 * the approval, in the same event (pa1 and pa2 are created at the start
 * when missing). And every 16th (n % 16 == 13) puts a document of app
 * APP<T> (R-PO-2: the writer records its owner; collection kill9, ID
 * d-SEED-T-N). And every 16th (n % 16 == 3) sends its values as a
 * correction of user root instead (R-PO-1: a Correction event; printed as
 * measurements are: its values are later writes of their (point, ts)).
 * And every 16th (n % 16 == 5) rotates op1's data key (issue #16: a
 * KeyEvent "rotate", the keyring rewritten before the append; the engine
 * has the master key et_master_key, so every record is sealed by a data
 * key).
 *
 * From the callback (the writer thread, after the command is durable) one
 * block per acknowledged command is printed and stdout flushed:
 *     ack SEQ POINT TS QUALITY BITS    one line per stored sample, in input
 *                                      order (later lines win for equal ts)
 *     dup SEQ                          a duplicate: nothing stored
 *     user SEQ ID                      a user created
 *     pending SEQ ID ACTION            pending change ID requested / approved
 *     doc SEQ ID OWNER                 a document put by app OWNER
 *     key SEQ                          op1's data key rotated
 *     end SEQ                          the block is complete
 * BITS is the value as 16 hex digits: the double's bits, the int64, or 0/1.
 * A block without its "end" line was not acknowledged. Any error: exit 1. */
#include "engine/records.h"
#include "engtest.h"
#include "storage/crypto.h"
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

enum { EW_NPOINTS = 6, WINDOW = 6, MAXS = 24, PTS_PER_THREAD = EW_NPOINTS / 2, RECENT = 8 };

static const sr_vtype TYPES[] = {SR_VT_NUMBER, SR_VT_INTEGER, SR_VT_BOOL};

static sr_engine *eng;
static uint64_t seed;

typedef struct wthread {
    int t;
    tu_rng r;
    uint32_t point[PTS_PER_THREAD];
    sr_vtype type[PTS_PER_THREAD];
    int64_t clock[PTS_PER_THREAD];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    char recent[RECENT][48];
    int nrecent;
} wthread;

typedef struct wcmd {
    wthread *w;
    size_t npts;
    char user[64]; /* the user this command creates, or "" */
    char pend[64];  /* the pending change this command requests or approves, or "" */
    const char *pend_action;
    char doc[64];  /* the document this command puts, or "" */
    int rotate;    /* this command rotates op1's data key */
    sr_pv_in pts[PTS_PER_THREAD];
    sr_sample s[PTS_PER_THREAD][MAXS];
} wcmd;

static void die(const char *what, int rc)
{
    fprintf(stderr, "engine_writer: %s: %s\n", what, sr_err_name(rc));
    fflush(stderr);
    _Exit(1);
}

static uint64_t bits_of(sr_vtype t, const sr_sample *s)
{
    uint64_t b = 0;
    if (t == SR_VT_NUMBER) memcpy(&b, &s->v.f, sizeof b);
    else if (t == SR_VT_INTEGER) b = (uint64_t)s->v.i;
    else b = (uint64_t)(s->v.b != 0);
    return b;
}

/* On the writer thread, after the command is durable and visible. */
static void on_done(void *ctx, const sr_result *res)
{
    wcmd *c = ctx;
    if (res->rc != SR_OK) {
        fprintf(stderr, "engine_writer: command refused: %s\n", res->err.msg);
        die("submit", res->rc);
    }
    if (res->duplicate) {
        printf("dup %" PRIu64 "\n", res->seq);
    } else if (c->user[0]) {
        printf("user %" PRIu64 " %s\n", res->seq, c->user);
    } else if (c->pend[0]) {
        printf("pending %" PRIu64 " %s %s\n", res->seq, c->pend, c->pend_action);
    } else if (c->rotate) {
        printf("key %" PRIu64 "\n", res->seq);
    } else if (c->doc[0]) {
        printf("doc %" PRIu64 " %s APP%d\n", res->seq, c->doc, c->w->t);
    } else {
        for (size_t p = 0; p < c->npts; p++)
            for (size_t i = 0; i < c->pts[p].n; i++) {
                const sr_sample *s = &c->s[p][i];
                printf("ack %" PRIu64 " %" PRIu32 " %" PRId64 " %u %016" PRIx64 "\n", res->seq, c->pts[p].point, s->ts,
                       (unsigned)s->quality, bits_of(c->pts[p].type, s));
            }
    }
    printf("end %" PRIu64 "\n", res->seq);
    fflush(stdout); /* a printed block is a promise: the samples are durable */
    wthread *w = c->w;
    free(c);
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static sr_sample make_sample(tu_rng *r, sr_vtype t, int64_t ts)
{
    sr_sample s = {.ts = ts, .quality = tu_below(r, 10) == 0 ? (uint8_t)tu_below(r, 4) : SR_Q_GOOD};
    if (t == SR_VT_NUMBER)
        s.v.f = tu_below(r, 2) ? (double)((int64_t)tu_below(r, 200000) - 100000) / 100.0
                               : (double)(int64_t)(tu_next(r) % 1000000) / 7.0;
    else if (t == SR_VT_INTEGER) s.v.i = (int64_t)tu_below(r, 2000000) - 1000000;
    else s.v.b = (int)tu_below(r, 2);
    return s;
}

/* Every PAUSE_EVERY commands (of both threads) both stop submitting for
 * PAUSE_MS, longer than CKPT_MS: the writer's next group is then due a heads
 * checkpoint by time (reason "time", unless replay_max_events / 2 events
 * since the last one make it "interval"), so kill -9 falls around those too
 * (test_engine_kill9.c counts them in the log). */
enum { CKPT_MS = 50, PAUSE_MS = 60, PAUSE_EVERY = 97 };
static atomic_uint ncmds;
static atomic_llong pause_until_ms;

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void maybe_pause(void)
{
    if (atomic_fetch_add(&ncmds, 1) % PAUSE_EVERY == PAUSE_EVERY - 1) atomic_store(&pause_until_ms, mono_ms() + PAUSE_MS);
    for (int64_t left; (left = atomic_load(&pause_until_ms) - mono_ms()) > 0;) {
        struct timespec d = {0, (long)left * 1000000};
        nanosleep(&d, NULL);
    }
}

static void *thread_main(void *arg)
{
    wthread *w = arg;
    sr_buf b;
    sr_buf_init(&b);
    for (uint64_t n = 0;; n++) {
        maybe_pause();
        pthread_mutex_lock(&w->mu);
        while (w->inflight >= WINDOW) pthread_cond_wait(&w->cv, &w->mu);
        w->inflight++;
        pthread_mutex_unlock(&w->mu);

        wcmd *c = calloc(1, sizeof *c);
        if (!c) die("calloc", SR_ENOMEM);
        c->w = w;
        if (n % 16 == 7) { /* a user's creation: a slow hash, built here, off the engine's writer */
            static const char *const roles[] = {"operator_general"};
            static const sr_password_policy pol = {.min_length = 8, .max_length = 64};
            const sr_cmd_env env = {"op1", "root", SR_ACTOR_USER, NULL, "cli"};
            snprintf(c->user, sizeof c->user, "u-%016" PRIx64 "-%d-%" PRIu64, seed, w->t, n);
            sr_user u = {.id = c->user, .scope = SR_US_OPERATOR, .scope_id = "op1", .roles = roles, .n_roles = 1};
            char why[128];
            b.len = 0;
            int rc = sr_cmd_user_create(&env, &u, "a password", 1, 1600000000000, &pol, &b, why, sizeof why);
            if (rc) die("build a user", rc);
            sr_slice sl = {b.data, b.len};
            if ((rc = sr_engine_submit(eng, &sl, 1, on_done, c))) die("sr_engine_submit", rc);
            continue;
        }
        if (n % 16 == 11 || n % 16 == 12) { /* a pending change: requested, then approved */
            const sr_cmd_env env = {"op1", n % 16 == 11 ? "pa1" : "pa2", SR_ACTOR_USER, NULL, "cli"};
            snprintf(c->pend, sizeof c->pend, "pq-%016" PRIx64 "-%d-%" PRIu64, seed, w->t, n - (n % 16 == 12));
            b.len = 0;
            int rc;
            if (n % 16 == 11) {
                static const char *const roles[] = {"operator_admin"};
                static const sr_password_policy pol = {.min_length = 8, .max_length = 64};
                char id[64], why[128];
                snprintf(id, sizeof id, "pu-%016" PRIx64 "-%d-%" PRIu64, seed, w->t, n);
                sr_user u = {.id = id, .scope = SR_US_OPERATOR, .scope_id = "op1", .roles = roles, .n_roles = 1};
                sr_buf ch;
                sr_buf_init(&ch);
                if ((rc = sr_cmd_user_create(&env, &u, "a password", 1, 1600000000000, &pol, &ch, why, sizeof why)))
                    die("build a pending user", rc);
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                sr_pending_req q = {.id = c->pend, .scope = SR_US_PLATFORM, .scope_id = "",
                                    .authz_action = "users.manage", .summary = "create an operator admin",
                                    .expires_ms = (int64_t)now.tv_sec * 1000 + 86400000, .changes = &(sr_slice){ch.data, ch.len}, .n_changes = 1};
                rc = sr_cmd_pending_request(&env, &q, &b);
                sr_buf_release(&ch);
                c->pend_action = "requested";
            } else {
                rc = sr_cmd_pending_decide(&env, c->pend, "approved", NULL, &b);
                c->pend_action = "approved";
            }
            if (rc) die("build a pending change", rc);
            sr_slice sl = {b.data, b.len};
            if ((rc = sr_engine_submit(eng, &sl, 1, on_done, c))) die("sr_engine_submit", rc);
            continue;
        }
        if (n % 16 == 5) { /* op1's data key rotated (docs/keys.md) */
            const sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
            const sr_key_rec k = {.action = "rotate", .key_operator = "op1", .key_class = "data"};
            c->rotate = 1;
            b.len = 0;
            int rc = sr_cmd_key_ev(&env, &k, &b);
            if (rc) die("build a key rotation", rc);
            sr_slice sl = {b.data, b.len};
            if ((rc = sr_engine_submit(eng, &sl, 1, on_done, c))) die("sr_engine_submit", rc);
            continue;
        }
        if (n % 16 == 13) { /* a document of this thread's app */
            char app[16];
            snprintf(app, sizeof app, "APP%d", w->t);
            const sr_cmd_env env = {"op1", app, SR_ACTOR_APP, NULL, NULL};
            snprintf(c->doc, sizeof c->doc, "d-%016" PRIx64 "-%d-%" PRIu64, seed, w->t, n);
            b.len = 0;
            int rc = sr_cmd_doc_put(&env, "kill9", c->doc, 0, "{\"k\":9}", 7, &b);
            if (rc) die("build a document", rc);
            sr_slice sl = {b.data, b.len};
            if ((rc = sr_engine_submit(eng, &sl, 1, on_done, c))) die("sr_engine_submit", rc);
            continue;
        }
        /* one to three of this thread's points, each once; a third of the
         * commands a snapshot (every point one value at one new time: a
         * Snapshot record), half of those with the last point's values as a
         * series beside it (a mixed record) */
        size_t first = (size_t)tu_below(&w->r, PTS_PER_THREAD);
        int snap = tu_below(&w->r, 3) == 0, mixed = snap && tu_below(&w->r, 2);
        int64_t snap_ts = 0;
        c->npts = snap ? PTS_PER_THREAD : 1 + (size_t)tu_below(&w->r, PTS_PER_THREAD);
        if (snap) {
            for (size_t k = 0; k < PTS_PER_THREAD; k++) snap_ts = w->clock[k] > snap_ts ? w->clock[k] : snap_ts;
            snap_ts += 1000;
        }
        for (size_t p = 0; p < c->npts; p++) {
            size_t k = (first + p) % PTS_PER_THREAD;
            size_t ns = 1 + (size_t)tu_below(&w->r, MAXS);
            if (snap && !(mixed && p == c->npts - 1)) {
                c->s[p][0] = make_sample(&w->r, w->type[k], w->clock[k] = snap_ts);
                c->pts[p] = (sr_pv_in){w->point[k], w->type[k], c->s[p], 1};
                continue;
            }
            for (size_t i = 0; i < ns; i++) {
                uint64_t x = tu_below(&w->r, 100);
                int64_t ts;
                if (x < 8) ts = w->clock[k] - 1000 * (int64_t)(1 + tu_below(&w->r, 400)); /* late */
                else if (x < 14) ts = w->clock[k];                                      /* same ts again */
                else if (x < 18) ts = w->clock[k] + 1000 * (int64_t)(1 + tu_below(&w->r, 5)); /* ahead */
                else ts = (w->clock[k] += 1000);
                c->s[p][i] = make_sample(&w->r, w->type[k], ts);
            }
            c->pts[p] = (sr_pv_in){w->point[k], w->type[k], c->s[p], ns};
        }
        /* message id: none, a fresh one, or (sometimes) a recent one again */
        char msgid[48] = "";
        uint64_t m = tu_below(&w->r, 10);
        if (m == 0 && w->nrecent) {
            int i = (int)tu_below(&w->r, (uint64_t)(w->nrecent < RECENT ? w->nrecent : RECENT));
            memcpy(msgid, w->recent[i], sizeof msgid);
        } else if (m < 6) {
            snprintf(msgid, sizeof msgid, "%016" PRIx64 "-%d-%" PRIu64, seed, w->t, n);
            memcpy(w->recent[w->nrecent++ % RECENT], msgid, sizeof msgid);
        }
        b.len = 0;
        int rc;
        if (n % 16 == 3) { /* a correction of the same values (R-PO-1) */
            const sr_cmd_env env = {"op1", "root", SR_ACTOR_USER, msgid, "cli"};
            uint32_t rows = 0;
            for (size_t p = 0; p < c->npts; p++) rows += (uint32_t)c->pts[p].n;
            rc = sr_ev_correction(&env, c->pts, c->npts, "kill -9 round", "csv-kill9", rows, &b);
        } else
            rc = sr_ev_measurements("op1", w->t ? "GW2" : "GW1", SR_ACTOR_GATEWAY, msgid, c->pts, c->npts, &b);
        if (rc) die("build", rc);
        sr_slice sl = {b.data, b.len};
        if ((rc = sr_engine_submit(eng, &sl, 1, on_done, c))) die("sr_engine_submit", rc);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: engine_writer DIR SEED\n");
        return 2;
    }
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
#endif
    seed = strtoull(argv[2], NULL, 10);
    /* replay_max_events 32: a heads checkpoint every 16 events, so kill -9
     * falls around them too (test_engine_kill9.c REPLAY_MAX); and one by
     * time after CKPT_MS (maybe_pause) */
    static sr_key key;
    et_master_key(&key);
    sr_engine_opts o = {.sync = SR_ENGINE_SYNC_ALWAYS, .head_max = 16, .segment_bytes = 128u << 10,
                        .replay_max_events = 32, .checkpoint_interval_ms = CKPT_MS, .key = &key};
    sr_errinfo ei;
    int rc = sr_engine_open(argv[1], &o, &eng, &ei);
    if (rc) {
        fprintf(stderr, "engine_writer: open: %s\n", ei.msg);
        return 1;
    }
    uint32_t p;
    sr_vtype t;
    rc = sr_engine_point(eng, "op1", "P000", &p, &t);
    if (rc == SR_ENOTFOUND) rc = et_setup_masters(eng, "op1", EW_NPOINTS, TYPES, 3);
    if (rc) die("masters", rc);
    /* the platform admins of the pending changes */
    for (int k = 1; k <= 2; k++) {
        static const char *const roles[] = {"platform_admin"};
        static const sr_password_policy pol = {.min_length = 8, .max_length = 64};
        const sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
        char id[8], why[128];
        snprintf(id, sizeof id, "pa%d", k);
        sr_rec h = SR_REC_INIT;
        sr_user u = {.id = id, .scope = SR_US_PLATFORM, .scope_id = "", .roles = roles, .n_roles = 1};
        rc = sr_read_user(eng, id, &h, &u);
        sr_rec_close(&h);
        if (rc != SR_ENOTFOUND) {
            if (rc) die("read an admin", rc);
            continue;
        }
        sr_buf b;
        sr_buf_init(&b);
        if ((rc = sr_cmd_user_create(&env, &u, "a password", 0, 1600000000000, &pol, &b, why, sizeof why)))
            die("build an admin", rc);
        sr_slice sl = {b.data, b.len};
        sr_result res;
        rc = sr_engine_submit_wait(eng, &sl, 1, &res);
        sr_buf_release(&b);
        if (rc) die("create an admin", rc);
    }
    static wthread w[2];
    for (int k = 0; k < 2; k++) {
        w[k].t = k;
        w[k].r.s = seed * 2 + (uint64_t)k;
        pthread_mutex_init(&w[k].mu, NULL);
        pthread_cond_init(&w[k].cv, NULL);
        for (int j = 0; j < PTS_PER_THREAD; j++) {
            char id[16];
            int idx = 2 * j + k;
            snprintf(id, sizeof id, "P%03d", idx);
            if ((rc = sr_engine_point(eng, "op1", id, &w[k].point[j], &w[k].type[j]))) die(id, rc);
            printf("point %d %" PRIu32 " %d\n", idx, w[k].point[j], (int)w[k].type[j]);
            /* continue after the newest stored sample, so rounds grow the series */
            sr_sample l;
            int found = 0;
            if ((rc = sr_engine_latest(eng, &w[k].point[j], 1, &l, &found, NULL))) die("latest", rc);
            w[k].clock[j] = found ? l.ts + 1000 : 1600000000000 + 977 * idx;
        }
    }
    printf("ready\n");
    fflush(stdout);
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        if (pthread_create(&th[k], NULL, thread_main, &w[k])) die("pthread_create", SR_ENOMEM);
    pthread_join(th[0], NULL); /* never returns: the parent kills us */
    return 1;
}
