/* tests/engine/test_engine_fault.c -- faults through the whole engine path.
 * For every k, fail the k-th call of the log's file system (EIO, ENOSPC,
 * short write, failed fsync) or the k-th allocation while measurement
 * commands are submitted: each command is acknowledged or refused with a
 * listed error (a failed write poisons the engine, later submits return
 * SR_EPOISONED), and after a reopen with the real file system and
 * allocator:
 *  - the log holds exactly the acknowledged events (no more, no fewer);
 *  - every point's range equals the model of the acknowledged commands, and
 *    the users are those the acknowledged commands created (each command
 *    c % 4 == 1 is a measurement and a user's creation, atomic), and the
 *    audit trail's rows are those of the acknowledged users and sessions;
 *  - the index equals one rebuilt from the log (content hash).
 * And resuming without a reopen (docs/durability.md section 7): after each
 * such fault the writer reopens the log and rebuilds the heads by itself;
 * refused commands sent again are stored once, and the live engine equals a
 * reopened one; an open without space opens read-only. Three of the
 * commands are users' sessions instead (engine/records.h): two logins and a
 * revocation of all of one user's; an acknowledged login verifies after the
 * reopen unless its revocation was acknowledged too, an unacknowledged one
 * does not. And one (command 0) approves a pending change (the two-person
 * rule) that the base database holds: after the reopen the change is
 * approved and applied (user pu's role) exactly when the approval was
 * acknowledged -- never one without the other. Command 8 is an app's
 * document and file (R-PO-2), atomic: after the reopen both are there with
 * the app as their owner if it was acknowledged, neither if not. Command
 * 10 sets op1's login policy (a LoginPolicy event, the `policies`
 * database): after the reopen the policy is set exactly when it was
 * acknowledged. Command 11 is a correction import (R-PO-1, a Correction
 * event): values of P000 at times the base and earlier commands wrote
 * (late, into its chunks) and at its newest; after the reopen the point
 * answers the corrected values exactly when it was acknowledged (the
 * model's last write wins), and its audit row is there or not with it.
 * Command 12 is a BackupEvent, its audit row there exactly when it was
 * acknowledged. Command 14 is app APP1's delivered push mark (a PushMark
 * event, the `pushq` database, R-AP-17): after the reopen the mark is
 * there exactly when it was acknowledged (command 13 measurements).
 * Command 15 rotates op1's data key (a KeyEvent "rotate" command, issue
 * #16): the keyring is written through the faulty VFS before the append;
 * after the reopen the keyring opens (never half-written), every record
 * reads back, the log holds the "rotated" KeyEvent exactly when it was
 * acknowledged, and op1's data key is at an epoch past it then (a rotation
 * the keyring holds but the log lost is a key no record uses). Every
 * engine here has a master key, so every record is sealed by a data key
 * and the writer's own KeyEvents ("created") count with its checkpoints.
 * Command 16 (RETENTION_CMD) is three Retention events (issue
 * #16, docs/retention.md) in one command: op1's data-class chunks wholly
 * before RET_CUT, its documents and files last written before REC_CUT (the
 * base's ret/old and ret/old.bin, index layout 9): after the reopen, when it
 * was acknowledged each point answers a subset of the model that holds
 * every value at or after RET_CUT and fewer before it, and the base's
 * document and file are gone (command 8's stay); when it was not, exactly
 * the model and both are there (check_range, check_db). Command 17
 * (KEY_DESTROY_CMD) destroys op9's retired data key (a KeyEvent
 * "destroy", the command sr_engine_key_destroy sends; docs/keys.md "Retention
 * and erasure"): the base gave op9 a document, deleted it, and rotated op9's
 * data key, so nothing in the index comes from that key's records. After the
 * reopen the log holds the "destroyed" KeyEvent exactly when it was
 * acknowledged, a tombstone in the keyring only with it (the command alone
 * writes none: a replay of the event or the next sweep does), the key's two
 * records read as erased once it is one, and the index equals a rebuild.
 * Command 18 (ALARM_CMD; issue #17, engine/alarms.c) acknowledges,
 * with a comment, the alarm the base raised for op1 (an AlarmEvent, the
 * `alarms` database): after the reopen the alarm is acknowledged by "admin"
 * with that comment exactly when the command was acknowledged, else still
 * raised, and it stays the condition's one open alarm either way.
 * Command 19 (NOTIFY_MARK_CMD) is the notifier's mark (a NotifyEvent "mark",
 * issue #17, the `notifyq` database): after the reopen the mark is there
 * exactly when it was acknowledged. Command 20 (ALIVE_CMD, issue #17,
 * R-MO-1) is gateway GW1's AliveEvent (offline by its will, api/alive.h):
 * after the reopen the `alive` index holds its row, and the audit trail its
 * "alive" row, exactly when it was acknowledged.
 * Command 21 (SEGDROP_CMD) is a retention sweep that drops log segments
 * (docs/keys.md "Segments", engine/segdrop.c; periods kept for ever, so it
 * cuts nothing else): the base begins with op8's masters written at an
 * earlier time, their audit rows cut (a Retention event of class audit), so
 * its first segments hold nothing the index needs but those masters; the
 * sweep carries them (ConfigCarry), appends its LogTrim and unlinks the
 * files. After the reopen the log starts past 1 exactly when a LogTrim is
 * in it (a trim durable before a fault is finished by the open: never half
 * dropped), always when the sweep was acknowledged; the ConfigCarry and
 * LogTrim events acknowledged are in the log (and no other); op8's masters
 * are there; the log verifies from its start against the LogTrim's hash;
 * and the index equals a rebuild of the trimmed log.
 * Command 22 (AUDIT_RESTATE_CMD; issue #16, docs/retention.md "Audit
 * data") is the retention sweep's restatement of the base's alarm (an
 * AlarmEvent with restated, filled by the writer from the row): after the
 * reopen the alarm is as commands 18 left it, and a restated AlarmEvent is
 * in the log exactly when acknowledged. Command 23 (AUDIT_DESTROY_CMD)
 * destroys op9's retired audit key (base_op9: a login of op9 and its audit
 * key rotated, its audit rows cut by a Retention of class audit): its
 * KeyEvent exactly when acknowledged, a tombstone only with it, its records
 * erased only with a tombstone (never half). Command 25 (ACCESS_CMD, issue
 * #18) is a batch of app APP1's reads twice, as an AccessEvent and as the
 * packed AccessBatch (api/access.h): after the reopen the audit trail holds
 * their two equal "read" rows, with their counts, exactly when it was
 * acknowledged. Command 27 (REVOKE_CMD, R-SE-3) is a certificate
 * revocation (registry SR_RG_REVOKED) and a data point's signature
 * requirement (SR_RG_SIGREQ), one command: both there after the reopen
 * exactly when acknowledged. Command 28 (REFUSAL_CMD, issue #18) is a
 * batch of gateway GW1's refused values (an AccessEvent with refusals,
 * api/access.h sr_access_refused): after the reopen the audit trail holds
 * its "refused" row (outcome E5003, the count and the dropped ones) exactly
 * when it was acknowledged. Command 29 (ORIGIN_CMD, issue #19 phase 2a)
 * is a measurement event another node wrote, submitted with its origin:
 * after the reopen its values, its origin id and its consumer checkpoint
 * are all there exactly when it was acknowledged. Command 1 (HOLD_CMD,
 * issue #19 hold) is a replicated value whose point's mapping comes after
 * it: held, then released with its mapping (build_hold). Command 3
 * (BLOBFILE_CMD, issue #19 blobs, engine/origins.c invariant 7) is a
 * FilePut node "nf" wrote, naming nf's data key, submitted with its origin:
 * after the reopen the file is there, naming a data key of op1 in THIS
 * engine's keyring (never nf's id), with its origin and checkpoint, exactly
 * when it was acknowledged. Commands 5 and 7
 * (issue #19 ckey) are a stream key erasure's intent and its result
 * (build_skey): the open intent is there exactly when 5 was acknowledged
 * and 7 (its result) was not. The last two commands (30, 31:
 * NCMD - 2, NCMD - 1) are the duplicate pair (single events whatever NCMD
 * is); the others are ordinary commands. Command 26 (SNAP_CMD, issue #18)
 * is an ordinary measurement command whose write makes a state snapshot
 * (every group's does here, snapshot_events 1): after the reopen the answer
 * at the end starts from a snapshot at or after it when it was
 * acknowledged and equals the full replay's.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codecs/events.pb-c.h"
#include "engine/engine_int.h" /* e->o.state_full_replay: command 26's reference answer */
#include "codecs/accpack.h"
#include "engine/evbuild.h"
#include "engine/records.h"
#include "storage/crypto.h"
#include "engtest.h"
#include "storage/keyring.h"
#include "storage/log.h"
#include "fault_alloc.h"
#include "testutil.h"
#include "vfs_faulty.h"

static char *dir;
static char base[1100], db[1100];
static void setup(void)
{
    dir = tu_tmpdir("efault");
    snprintf(base, sizeof base, "%s/base", dir);
    snprintf(db, sizeof db, "%s/db", dir);
}
static void teardown(void)
{
    fault_alloc_uninstall();
    tu_rmrf(dir);
    free(dir);
}
TestSuite(engine_fault, .init = setup, .fini = teardown, .timeout = 2400);

/* SR_FAULT_STRIDE=s (default 1) and SR_FAULT_OFFSET=o (0 <= o < s): the
 * loops that fail the k-th call try k = 1+o, 1+o+s, 1+o+2s, ... instead of
 * every k. Without SR_FAULT_OFFSET, o is today's day number (UTC days since
 * the epoch) mod s, so that s consecutive days of `make test` try every k
 * (docs/testing.md). `make test` sets a stride (7 in the normal build, 28
 * under ASan/UBSan); `make soak` and a plain run try every call. Each loop
 * prints its stride and offset, so that a failure is replayed with both.
 * The loop still ends at the first k past the last call. */
static unsigned long fault_stride(void)
{
    const char *s = getenv("SR_FAULT_STRIDE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 && v <= 1000 ? (unsigned long)v : 1;
}

/* The first k of a fault loop (1 + the offset), printed with the stride. */
static unsigned long fault_first(const char *loop)
{
    unsigned long s = fault_stride();
    const char *e = getenv("SR_FAULT_OFFSET");
    unsigned long o;
    if (e && *e)
        o = strtoul(e, NULL, 10) % s;
    else
        o = (unsigned long)(time(NULL) / 86400) % s;
    if (s > 1)
        fprintf(stderr, "%s: every %lu-th fault point from k=%lu (replay: SR_FAULT_STRIDE=%lu SR_FAULT_OFFSET=%lu)\n",
                loop, s, 1 + o, s, o);
    return 1 + o;
}

/* REPLAY_MAX: a heads checkpoint every 2 events and at each clean close
 * (docs/durability.md section 8), so they fall among the faults too */
enum { NPOINTS = 3, NCMD = 32, HEAD_MAX = 8, REPLAY_MAX = 4 };

static const sr_vtype TYPES[NPOINTS] = {SR_VT_NUMBER, SR_VT_INTEGER, SR_VT_BOOL};
static int64_t clock_back; /* base_records: its writes a second before every other */
static int64_t fixed_clock(void) { return 1700000000000 - clock_back; }

/* small segments so that the fault loop meets segment rolls; a small head so
 * that commands flush chunks and late samples merge into them */
static sr_key g_key; /* the master key: every record is sealed by a data key of the keyring */
static sr_engine_opts opts(const sr_vfs *vfs, const char *index_dir)
{
    if (!g_key.id) {
        uint8_t b[SR_KEY_LEN];
        memset(b, 0x5a, sizeof b);
        sr_key_from_bytes(&g_key, b);
    }
    /* snapshot_events 1: every group's write makes a state snapshot
     * (engine/statesnap.c; command 26, SNAP_CMD), and snapshot_keep 3
     * thins the older ones in the same transaction (invariant 5) */
    return (sr_engine_opts){.clock_ms = fixed_clock, .head_max = HEAD_MAX, .segment_bytes = 4096, .vfs = vfs,
                            .index_dir = index_dir, .replay_max_events = REPLAY_MAX, .key = &g_key,
                            .snapshot_events = 1, .snapshot_keep = 3, .cluster_node = "fx"};
}

/* The fault loops' engines: a clock that moves CLOCK_STEP ms at each
 * reading (the writer reads it once a group) and a checkpoint_interval_ms
 * of CKPT_MS, so heads checkpoints of reason "time" (writer.c by_time: a
 * group after a checkpoint) fall among the faults too, between the count's
 * (more than REPLAY_MAX / 2 events since the last: reason "interval" when
 * both are due) */
enum { CLOCK_STEP = 10, CKPT_MS = 10 };
static atomic_llong ticks;
static int64_t moving_clock(void) { return 1700000000000 + CLOCK_STEP * (int64_t)atomic_fetch_add(&ticks, 1); }
static sr_engine_opts opts_moving(const sr_vfs *vfs)
{
    sr_engine_opts o = opts(vfs, NULL);
    o.clock_ms = moving_clock;
    o.checkpoint_interval_ms = CKPT_MS;
    return o;
}

/* The writer's own events in d's log, not a command's: heads checkpoints
 * and the KeyEvents of the keys it made ("created", actor system); *rotated
 * (if given): the "rotated" KeyEvents (command 15's); *destroyed (if given):
 * the "destroyed" ones (command 17's), and *erased the records of a
 * destroyed key. */
static uint64_t own_below = UINT64_MAX; /* log_own_events_x: only records below it */
static uint64_t log_trims, log_carries;   /* log_own_events_x: the LogTrim and ConfigCarry events it met */
static uint64_t log_write_audits;         /* log_own_events_x: op1's WriteAudit events it met (issue #18) */

/* issue #18: op1's data writes in the log not yet covered by a WriteAudit
 * (the writer appends one per group and writer after the group's writes,
 * in the same append: a write is in the log with its audit record or
 * neither, whatever the fault) */
enum { UNCOVERED_MAX = 4096 };
static struct {
    uint64_t seq;
    char actor[64];
} uncovered[UNCOVERED_MAX];
static size_t nuncovered;

static int is_data_write(int c)
{
    return c == SUIRO__V1__EVENT__BODY_MEASUREMENTS || c == SUIRO__V1__EVENT__BODY_REQUEST_CREATED ||
           c == SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION || c == SUIRO__V1__EVENT__BODY_MONITOR ||
           c == SUIRO__V1__EVENT__BODY_DOC_PUT || c == SUIRO__V1__EVENT__BODY_DOC_DELETE ||
           c == SUIRO__V1__EVENT__BODY_FILE_PUT || c == SUIRO__V1__EVENT__BODY_FILE_DELETE;
}

/* ev (at seq) against the uncovered writes: a write of op1 joins them; a
 * WriteAudit of op1 covers exactly its `events` of them, its writer's,
 * within its seqs, all before it */
static void write_audit_track(const Suiro__V1__Event *ev, uint64_t seq, const char *d)
{
    if (strcmp(ev->operator_id, "op1") != 0) return;
    if (is_data_write((int)ev->body_case)) {
        cr_assert_lt(nuncovered, UNCOVERED_MAX);
        uncovered[nuncovered].seq = seq;
        snprintf(uncovered[nuncovered++].actor, sizeof uncovered[0].actor, "%s", ev->actor);
        return;
    }
    if (ev->body_case != SUIRO__V1__EVENT__BODY_WRITE_AUDIT) return;
    log_write_audits++;
    const Suiro__V1__WriteAudit *w = ev->write_audit;
    cr_assert(w->first_seq <= w->last_seq && w->last_seq < seq, "%s: WriteAudit %" PRIu64 " summarises later seqs", d,
              seq);
    uint32_t got = 0;
    for (size_t i = 0; i < nuncovered;) {
        if (!strcmp(uncovered[i].actor, ev->actor) && uncovered[i].seq >= w->first_seq && uncovered[i].seq <= w->last_seq) {
            got++;
            uncovered[i] = uncovered[--nuncovered];
        } else
            i++;
    }
    cr_assert_eq(got, w->events, "%s: WriteAudit %" PRIu64 " (%s, seq %" PRIu64 "..%" PRIu64 ") summarises %" PRIu32
                                 " writes, the log holds %" PRIu32 " of them",
                 d, seq, ev->actor, w->first_seq, w->last_seq, w->events, got);
}
static uint64_t log_restated;             /* and the restated AlarmEvents (command 22) */
static uint64_t log_own_events_x(const char *d, uint64_t *total, uint64_t *by_time, uint64_t *rotated,
                                 uint64_t *destroyed, uint64_t *erased)
{
    log_trims = log_carries = log_restated = log_write_audits = 0;
    nuncovered = 0;
    char ld[1200], kd[1200];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    int krc = sr_keyring_open(NULL, kd, &g_key, "test", 0, &kr, &ei);
    cr_assert(krc == SR_OK || krc == SR_ENOTFOUND, "%s: the keyring: %s", d, ei.msg);
    sr_log_opts lo = {.readonly = 1, .key = &g_key, .keys = kr ? sr_keyring_keys(kr) : NULL};
    sr_log *lg = NULL;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq, n = 0;
    sr_slice rec;
    int rc;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) {
        if (rc == SR_EERASED) {
            if (erased) ++*erased;
            if (total) *total = seq;
            continue;
        }
        if (seq >= own_below) break;
        Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev, "log record %" PRIu64 " does not decode", seq);
        log_trims += ev->body_case == SUIRO__V1__EVENT__BODY_LOG_TRIM;
        log_carries += ev->body_case == SUIRO__V1__EVENT__BODY_CONFIG_CARRY;
        log_restated += ev->body_case == SUIRO__V1__EVENT__BODY_ALARM && ev->alarm->restated;
        write_audit_track(ev, seq, d);
        if (destroyed) *destroyed += ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "destroyed");
        n += ev->body_case == SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT || ev->body_case == SUIRO__V1__EVENT__BODY_WRITE_AUDIT ||
             (ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "created"));
        if (rotated) *rotated += ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "rotated");
        if (by_time && ev->body_case == SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT && ev->heads_checkpoint &&
            !strcmp(ev->heads_checkpoint->reason, "time"))
            ++*by_time;
        if (total) *total = seq;
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    cr_assert(rc == SR_DONE || rc == SR_OK);
    if (own_below == UINT64_MAX)
        cr_assert_eq(nuncovered, 0, "%s: %zu data writes of op1 in the log without their WriteAudit (the first at seq %" PRIu64 ")",
                     d, nuncovered, nuncovered ? uncovered[0].seq : 0);
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    return n;
}
static uint64_t log_own_events(const char *d, uint64_t *total, uint64_t *by_time, uint64_t *rotated)
{
    return log_own_events_x(d, total, by_time, rotated, NULL, NULL);
}
static uint64_t total_checkpoints; /* over a fault loop: checkpoints were among the faults */
static uint64_t total_time_checkpoints; /* of them, of reason "time" */
static uint64_t total_extends;     /* and short chunks extended (heads.c invariant 9) */

/* The content (index and heads) a crash now would recover: the live engine
 * is idle (every command answered, sync=always), so a copy of its directory
 * is what kill -9 leaves. It must equal the live content. */
static void assert_crash_copy_equals(const uint8_t live[32], const char *ctx)
{
    char cp[1200], shcmd[2600];
    snprintf(cp, sizeof cp, "%s/crashcopy", dir);
    snprintf(shcmd, sizeof shcmd, "rm -rf '%s' && cp -r '%s' '%s'", cp, db, cp);
    cr_assert_eq(system(shcmd), 0);
    sr_engine_opts o = opts(NULL, NULL);
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(cp, &o, &e, &ei), SR_OK, "%s: open the crash copy: %s", ctx, ei.msg);
    uint8_t got[32];
    cr_assert_eq(sr_engine_content_hash(e, got), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    tu_rmrf(cp);
    cr_assert_eq(memcmp(live, got, 32), 0, "%s: the content recovered after a crash differs from the live one", ctx);
}

static sr_engine *open_at(const char *d, const sr_engine_opts *o)
{
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(d, o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open %s: %s: %s", d, sr_err_name(rc), ei.msg);
    return e;
}

/* ---- the workload ---------------------------------------------------------- */

typedef struct command {
    sr_buf bytes;
    size_t lens[3], nev; /* one or two events (room for three) */
    uint32_t point[3];
    sr_sample s[3][24];
    size_t ns[3];
    /* a snapshot event (c % 4 == 3): the other points, one value each at the
     * time of s[v][0] (a Snapshot record, codecs/events.proto) */
    size_t nx[3];
    uint32_t xpoint[3][NPOINTS];
    sr_sample xs[3][NPOINTS];
    char msgid[32];
    char user[16]; /* the user the command creates (its second event), or "" */
    int hold;      /* command 1 (HOLD_CMD): a held replicated event, its mapping, then the user */
} command;

/* the samples of event v of command cm into model m, in input order */
static void cmd_model_put(et_model *m, const command *cm, size_t v)
{
    for (size_t i = 0; i < cm->ns[v]; i++) et_model_put(m, cm->point[v], &cm->s[v][i]);
    for (size_t x = 0; x < cm->nx[v]; x++) et_model_put(m, cm->xpoint[v][x], &cm->xs[v][x]);
}

typedef struct fixture {
    uint32_t points[NPOINTS];
    et_model *m;          /* the base content */
    uint64_t base_events; /* events in the base log */
    uint32_t op9_key;     /* op9's retired data key (command 17 destroys it) */
    uint32_t op9_audit_key;  /* op9's retired audit key (command 23 destroys it) */
    uint64_t op9_audit_recs; /* the base's records sealed by it */
    char alarm_id[20];    /* the alarm the base raised for op1 (command 18 acknowledges it) */
    command cmds[NCMD];
} fixture;

static sr_sample value(tu_rng *r, sr_vtype t, int64_t ts)
{
    sr_sample s = {.ts = ts, .quality = tu_below(r, 8) ? SR_Q_GOOD : (uint8_t)tu_below(r, 4)};
    if (t == SR_VT_NUMBER) s.v.f = (double)((int64_t)tu_below(r, 200000) - 100000) / 100.0;
    else if (t == SR_VT_INTEGER) s.v.i = (int64_t)tu_below(r, 2000000) - 1000000;
    else s.v.b = (int)tu_below(r, 2);
    return s;
}

/* Command c: one event (or two, for c % 4 == 1: atomic) on point(s), with
 * new, repeated and late timestamps, or (c % 4 == 3) a snapshot: every
 * point one value at one new time, the points not in number order;
 * command NCMD-1 repeats the message id of command NCMD-2 (a duplicate
 * when that one was stored). */
static void build_commands(fixture *f, int64_t *clock)
{
    tu_rng r = {77};
    for (int c = 0; c < NCMD; c++) {
        command *cm = &f->cmds[c];
        sr_buf_init(&cm->bytes);
        cm->nev = c % 4 == 1 && c < NCMD - 2 ? 2 : 1; /* the duplicate pair: single events */
        if (c >= NCMD - 2) snprintf(cm->msgid, sizeof cm->msgid, "m-%d", NCMD - 2);
        else if (c % 2) snprintf(cm->msgid, sizeof cm->msgid, "m-%d", c);
        for (size_t v = 0; v < cm->nev; v++) {
            int k = (c + 2 * (int)v) % NPOINTS;
            cm->point[v] = f->points[k];
            cm->ns[v] = 1 + (size_t)tu_below(&r, 20);
            if (c % 4 == 3) { /* a snapshot */
                int64_t t = clock[0];
                for (int j = 1; j < NPOINTS; j++) t = clock[j] > t ? clock[j] : t;
                t += 1000;
                for (int j = 0; j < NPOINTS; j++) clock[j] = t;
                cm->ns[v] = 1;
                cm->s[v][0] = value(&r, TYPES[k], t);
                sr_pv_in in[NPOINTS];
                in[0] = (sr_pv_in){cm->point[v], TYPES[k], cm->s[v], 1};
                cm->nx[v] = NPOINTS - 1;
                for (size_t x = 0; x < cm->nx[v]; x++) {
                    int kx = (k + 1 + (int)x) % NPOINTS;
                    cm->xpoint[v][x] = f->points[kx];
                    cm->xs[v][x] = value(&r, TYPES[kx], t);
                    in[1 + x] = (sr_pv_in){cm->xpoint[v][x], TYPES[kx], &cm->xs[v][x], 1};
                }
                size_t before = cm->bytes.len;
                cr_assert_eq(sr_ev_measurements("op1", "APP1", SR_ACTOR_APP, cm->msgid, in, NPOINTS, &cm->bytes), SR_OK);
                cm->lens[v] = cm->bytes.len - before;
                Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, cm->lens[v], cm->bytes.data + before);
                cr_assert(ev && ev->measurements && ev->measurements->snapshot && !ev->measurements->n_points,
                          "command %d: not a Snapshot record", c);
                suiro__v1__event__free_unpacked(ev, NULL);
                continue;
            }
            for (size_t i = 0; i < cm->ns[v]; i++) {
                uint64_t x = tu_below(&r, 10);
                int64_t ts = x == 0 ? clock[k] - 1000 * (int64_t)(1 + tu_below(&r, 40)) /* late: into chunks */
                           : x == 1 ? clock[k]                                       /* same ts again */
                                    : (clock[k] += 1000);
                cm->s[v][i] = value(&r, TYPES[k], ts);
            }
            size_t before = cm->bytes.len;
            if (v == 1) { /* an atomic command's second event: a user's creation (a slow hash, built once) */
                static const char *const roles[] = {"operator_admin"};
                static const sr_password_policy pol = {.min_length = 8, .max_length = 64};
                static const sr_cmd_env env = {"op1", "root", SR_ACTOR_USER, NULL, "cli"};
                snprintf(cm->user, sizeof cm->user, "u%d", c);
                sr_user u = {.id = cm->user, .scope = SR_US_OPERATOR, .scope_id = "op1", .roles = roles, .n_roles = 1};
                char why[128];
                cr_assert_eq(sr_cmd_user_create(&env, &u, "a password", 1, 1600000000000, &pol, &cm->bytes, why,
                                                sizeof why),
                             SR_OK, "%s", why);
                cm->ns[v] = 0;
                cm->lens[v] = cm->bytes.len - before;
                continue;
            }
            sr_pv_in in = {cm->point[v], TYPES[k], cm->s[v], cm->ns[v]};
            cr_assert_eq(sr_ev_measurements("op1", k % 2 ? "GW2" : "GW1", SR_ACTOR_GATEWAY,
                                            cm->nev == 2 ? "" : cm->msgid, &in, 1, &cm->bytes),
                         SR_OK);
            cm->lens[v] = cm->bytes.len - before;
        }
    }
}

/* Commands 2 and 4 log users u2 and u1 in, command 6 revokes all of u1's
 * sessions (single-event commands without a message id otherwise: 3 is the
 * resume test's duplicate, 11 the correction, 12 the backup, 15 and 16 the
 * duplicate pair); command 14 is APP1's push mark. Their measurements are
 * dropped (ns 0: nothing for the model). */
enum { SESS_U2 = 2, SESS_U1 = 4, SESS_REVOKE_U1 = 6, POLICY_CMD = 10, PUSH_MARK_CMD = 14 };
static const uint64_t PUSH_MARK_THROUGH = 777;
static const int64_t SESS_EXPIRES = INT64_C(4000000000000), SESS_NOW = INT64_C(1800000000000);
static void sess_hash(int c, uint8_t h[32])
{
    char t[16];
    snprintf(t, sizeof t, "token-%d", c);
    sr_sha256(t, strlen(t), h);
}

/* Command 0 approves pending change "pc" of the base (by pa2): user pu of
 * op1 gets the role operator_admin. */
enum { PEND_APPROVE = 0 };
static const int64_t PEND_EXPIRES = INT64_C(4000000000000);
static const char *const BASE_USERS[] = {"pa1", "pa2", "pu"};

static void base_pending(sr_engine *e)
{
    static const sr_password_policy pol = {.min_length = 8, .max_length = 64};
    const sr_cmd_env root = {"", "root", SR_ACTOR_USER, NULL, "cli"}, pa1 = {"op1", "pa1", SR_ACTOR_USER, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        const char *roles[] = {i < 2 ? "platform_admin" : "operator_general"};
        sr_user u = {.id = BASE_USERS[i], .scope = i < 2 ? SR_US_PLATFORM : SR_US_OPERATOR, .scope_id = i < 2 ? "" : "op1",
                     .roles = roles, .n_roles = 1};
        sr_buf b;
        sr_buf_init(&b);
        char why[128];
        cr_assert_eq(sr_cmd_user_create(&root, &u, "another password", 0, 1600000000000, &pol, &b, why, sizeof why),
                     SR_OK);
        size_t len = b.len;
        sr_result res;
        cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
        sr_buf_release(&b);
    }
    const char *roles[] = {"operator_admin"};
    sr_buf ch, b;
    sr_buf_init(&ch);
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_user_roles(&pa1, "pu", roles, 1, NULL, &ch), SR_OK);
    sr_pending_req q = {.id = "pc", .scope = SR_US_PLATFORM, .scope_id = "", .authz_action = "users.manage",
                        .summary = "pu becomes an operator admin", .expires_ms = PEND_EXPIRES,
                        .changes = &(sr_slice){ch.data, ch.len}, .n_changes = 1};
    cr_assert_eq(sr_cmd_pending_request(&pa1, &q, &b), SR_OK);
    size_t len = b.len;
    sr_result res;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    sr_buf_release(&b);
    sr_buf_release(&ch);
}

static void build_sessions(fixture *f)
{
    {
        command *cm = &f->cmds[PEND_APPROVE];
        cr_assert_eq(cm->nev, 1);
        cr_assert_eq(cm->msgid[0], 0);
        cm->bytes.len = 0;
        cm->ns[0] = 0;
        const sr_cmd_env pa2 = {"op1", "pa2", SR_ACTOR_USER, NULL, NULL};
        cr_assert_eq(sr_cmd_pending_decide(&pa2, "pc", "approved", NULL, &cm->bytes), SR_OK);
        cm->lens[0] = cm->bytes.len;
    }
    for (int c = 0; c < NCMD; c++) {
        if (c != SESS_U2 && c != SESS_U1 && c != SESS_REVOKE_U1 && c != POLICY_CMD && c != PUSH_MARK_CMD) continue;
        command *cm = &f->cmds[c];
        cr_assert_eq(cm->nev, 1);
        cm->bytes.len = 0;
        cm->ns[0] = 0;
        if (c == PUSH_MARK_CMD) {
            const sr_cmd_env env = {"op1", "system", SR_ACTOR_SYSTEM, NULL, NULL};
            cr_assert_eq(sr_cmd_push_mark(&env, "APP1", PUSH_MARK_THROUGH, &cm->bytes), SR_OK);
        } else if (c == POLICY_CMD) {
            const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, NULL, NULL};
            const sr_login_policy_rec p = {NULL, 0, 1};
            cr_assert_eq(sr_cmd_login_policy(&env, &p, &cm->bytes), SR_OK);
        } else if (c == SESS_REVOKE_U1) {
            const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, NULL, NULL};
            cr_assert_eq(sr_cmd_user_sessions_revoke(&env, "u1", "disabled", &cm->bytes), SR_OK);
        } else {
            uint8_t h[32];
            sess_hash(c, h);
            const sr_cmd_env env = {"op1", c == SESS_U1 ? "u1" : "u2", SR_ACTOR_USER, NULL, NULL};
            cr_assert_eq(sr_cmd_token_session(&env, h, SESS_EXPIRES, SR_SS_CONNECTED, "login", &cm->bytes), SR_OK);
        }
        cm->lens[0] = cm->bytes.len;
    }
}

/* Command 8: a document and a file of app APP1 (one command, two events;
 * no measurements for the model). */
enum { STORE_CMD = 8 };
static void build_store(fixture *f)
{
    command *cm = &f->cmds[STORE_CMD];
    cr_assert_eq(cm->msgid[0], 0);
    cm->bytes.len = 0;
    cm->nev = 2;
    cm->ns[0] = cm->ns[1] = cm->nx[0] = cm->nx[1] = 0;
    static const sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    static const uint8_t sha[32] = {7};
    cr_assert_eq(sr_cmd_doc_put(&env, "reports", "d0", 0, "{\"a\":1}", 7, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
    sr_file_meta fm = {.path = "reports/f0", .sha256 = {sha, 32}, .size = 1, .content_type = "text/plain"};
    cr_assert_eq(sr_cmd_file_put(&env, &fm, &cm->bytes), SR_OK);
    cm->lens[1] = cm->bytes.len - cm->lens[0];
}

/* Command 3 (BLOBFILE_CMD; issue #19 blobs, engine/origins.c invariant 7):
 * a FilePut of op1 node "nf" wrote, its key id nf's (BLOB_NF_KEY, no key of
 * this keyring), submitted as the consumer does (origin nf:3, partition 7,
 * stream seq BLOB_STREAM_SEQ, the full consumer). No measurements. */
enum { BLOBFILE_CMD = 3 };
enum { BLOB_NF_KEY = 0x7f3e2d1c };
static const uint64_t BLOB_STREAM_SEQ = 3003;
static void build_blobfile(fixture *f)
{
    command *cm = &f->cmds[BLOBFILE_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->ns[0] = cm->nx[0] = 0;
    cm->msgid[0] = 0;
    cm->user[0] = 0;
    static const sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    static const uint8_t sha[32] = {3, 3, 3};
    sr_file_meta fm = {.path = "cluster/f3", .sha256 = {sha, 32}, .size = 3, .content_type = "text/plain",
                       .key_id = BLOB_NF_KEY};
    cr_assert_eq(sr_cmd_file_put(&env, &fm, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

static int blobfile_run(sr_engine *e, command *cm, sr_result *res)
{
    const sr_origin o = {"nf", 3, 7, BLOB_STREAM_SEQ, 2};
    return et_submit_origin(e, cm->bytes.data, cm->lens[0], &o, res);
}

/* Command 11: a correction by user root of op1 (one Correction event, R-PO-1)
 * of point P000: its first three base values (in chunks: a late merge), one
 * of its newest, and a new time; the model takes them as a later write. */
enum { CORR_CMD = 11 };
static void build_correction(fixture *f, const int64_t *clock)
{
    command *cm = &f->cmds[CORR_CMD];
    cr_assert(CORR_CMD < NCMD - 2, "before the duplicate pair");
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->nx[0] = 0;
    cm->point[0] = f->points[0];
    cr_assert_eq(TYPES[0], SR_VT_NUMBER);
    const int64_t ts[] = {1600000000000 + 1000, 1600000000000 + 2000, 1600000000000 + 3000, clock[0], clock[0] + 500};
    cm->ns[0] = sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < cm->ns[0]; i++) cm->s[0][i] = (sr_sample){.ts = ts[i], .v.f = 4321.25 + (double)i};
    cm->s[0][1].quality = SR_Q_UNCERTAIN;
    const sr_cmd_env env = {"op1", "root", SR_ACTOR_USER, cm->msgid, "cli"};
    sr_pv_in in = {cm->point[0], SR_VT_NUMBER, cm->s[0], cm->ns[0]};
    cr_assert_eq(sr_ev_correction(&env, &in, 1, "re-read from the meter", "csv-0000000000000011", (uint32_t)cm->ns[0],
                                  &cm->bytes),
                 SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 12: a BackupEvent (docs/backup.md), its audit
 * row there exactly when it was acknowledged. */
enum { BACKUP_CMD = 12 };
static void build_backup(fixture *f)
{
    command *cm = &f->cmds[BACKUP_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"", "admin", SR_ACTOR_USER, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1"};
    const sr_backup_rec b = {.action = "backup", .outcome = "done", .name = "20261206T030000.000Z-7", .seq = 7,
                             .bytes = 4096, .files_copied = 3};
    cr_assert_eq(sr_cmd_backup_ev(&env, &b, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 16: three Retention events of op1, one command (atomic):
 * its "default" class (every point of the fixture) cutting the chunks
 * wholly before RET_CUT: the base's first chunk of each point (its first 10
 * values) and nothing at or after RET_CUT (no values for the model:
 * check_range knows what it may cut); its "documents" and "files" cutting
 * what was last written before REC_CUT: the base's document and file
 * (base_records, a second before every other write), never command 8's
 * (written at or after REC_CUT). */
enum { RETENTION_CMD = 16 };
static const int64_t RET_CUT = 1600000000000 + 20500, REC_CUT = 1700000000000;
static void build_retention(fixture *f)
{
    command *cm = &f->cmds[RETENTION_CMD];
    cr_assert((int)RETENTION_CMD > (int)PUSH_MARK_CMD, "after the others");
    cm->bytes.len = 0;
    cm->nev = 3;
    cm->msgid[0] = 0;
    const char *cls[3] = {"default", "documents", "files"};
    for (size_t i = 0; i < 3; i++) {
        cm->ns[i] = cm->nx[i] = 0;
        Suiro__V1__Retention rt = SUIRO__V1__RETENTION__INIT;
        rt.data_class = (char *)cls[i];
        rt.cut_ms = i ? REC_CUT : RET_CUT;
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.operator_id = "op1";
        ev.actor = "system";
        ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
        ev.source = "retention";
        ev.body_case = SUIRO__V1__EVENT__BODY_RETENTION;
        ev.retention = &rt;
        size_t n = protobuf_c_message_get_packed_size(&ev.base);
        cr_assert_eq(sr_buf_reserve(&cm->bytes, cm->bytes.len + n), SR_OK);
        protobuf_c_message_pack(&ev.base, cm->bytes.data + cm->bytes.len);
        cm->bytes.len += n;
        cm->lens[i] = n;
    }
}

/* The base's op1 document ret/old and file ret/old.bin, written a second
 * before everything else (clock_back): what command 16 cuts. */
static void base_records(sr_engine *e)
{
    const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    clock_back = 1000;
    cr_assert_eq(sr_cmd_doc_put(&env, "ret", "old", 0, "{\"t\":1}", 7, &b), SR_OK);
    size_t len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    cr_assert_eq(res.rc, SR_OK, "%s", res.err.msg);
    b.len = 0;
    uint8_t sha[32];
    memset(sha, 7, sizeof sha);
    sr_file_meta fm = {.path = "ret/old.bin", .sha256 = {sha, 32}, .size = 1, .content_type = "x/y"};
    cr_assert_eq(sr_cmd_file_put(&env, &fm, &b), SR_OK);
    len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    cr_assert_eq(res.rc, SR_OK, "%s", res.err.msg);
    clock_back = 0;
    sr_buf_release(&b);
}

/* Command 15: platform admin "admin" rotates op1's data key (a KeyEvent
 * "rotate" command, docs/keys.md): the keyring written through the faulty
 * VFS, the "rotated" KeyEvent in the log exactly when acknowledged. */
enum { KEY_ROTATE_CMD = 15 };
_Static_assert((int)KEY_ROTATE_CMD < (int)RETENTION_CMD, "the rotation before the retention, both before the duplicate pair");
static void build_key_rotation(fixture *f)
{
    command *cm = &f->cmds[KEY_ROTATE_CMD];
    cr_assert(KEY_ROTATE_CMD < NCMD - 2, "before the duplicate pair");
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"", "admin", SR_ACTOR_USER, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1"};
    const sr_key_rec k = {.action = "rotate", .key_operator = "op1", .key_class = "data"};
    cr_assert_eq(sr_cmd_key_ev(&env, &k, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* The base's op9: a document put and deleted (a data key of epoch 1 whose
 * records leave nothing in the index), then that key rotated: f->op9_key is
 * the retired epoch 1. */
static void base_op9(sr_engine *e, fixture *f)
{
    const sr_cmd_env env = {"op9", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    clock_back = 1000; /* before its audit cut below: every audit-class record of op9 (its keys' too) */
    cr_assert_eq(sr_cmd_doc_put(&env, "notes", "n1", 0, "{\"t\":\"op9 secret\"}", 18, &b), SR_OK);
    size_t len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    b.len = 0;
    cr_assert_eq(sr_cmd_doc_delete(&env, "notes", "n1", 0, &b), SR_OK);
    len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    b.len = 0;
    const sr_key_rec k = {.action = "rotate", .key_operator = "op9", .key_class = "data"};
    cr_assert_eq(sr_cmd_key_ev(&env, &k, &b), SR_OK);
    len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    sr_keyinfo *ks;
    size_t n;
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ks[i].operator_id, "op9") && ks[i].cls == SR_KC_DATA && ks[i].epoch == 1) f->op9_key = ks[i].id;
    sr_free(ks);
    cr_assert_neq(f->op9_key, 0);
    /* op9's audit epoch 1 (a second before the rest, as all of op9's): a
     * failed login, then the key rotated; its audit rows cut (a Retention
     * of class audit), so its records build nothing the index keeps
     * (command 23 destroys it) */
    b.len = 0;
    cr_assert_eq(sr_cmd_auth(&env, SR_ACTOR_USER, "u9", 0, "password", "op9 audit secret", &b), SR_OK);
    len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    b.len = 0;
    const sr_key_rec ka = {.action = "rotate", .key_operator = "op9", .key_class = "audit"};
    cr_assert_eq(sr_cmd_key_ev(&env, &ka, &b), SR_OK);
    len = b.len;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    clock_back = 0;
    {
        Suiro__V1__Retention rt = SUIRO__V1__RETENTION__INIT;
        rt.data_class = "audit";
        rt.cut_ms = 1700000000000 - 500;
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.operator_id = "op9";
        ev.actor = "system";
        ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
        ev.source = "retention";
        ev.body_case = SUIRO__V1__EVENT__BODY_RETENTION;
        ev.retention = &rt;
        size_t pn = protobuf_c_message_get_packed_size(&ev.base);
        b.len = 0;
        cr_assert_eq(sr_buf_reserve(&b, pn), SR_OK);
        protobuf_c_message_pack(&ev.base, b.data);
        b.len = len = pn;
        cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    }
    sr_buf_release(&b);
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ks[i].operator_id, "op9") && ks[i].cls == SR_KC_AUDIT && ks[i].epoch == 1) {
            f->op9_audit_key = ks[i].id;
            cr_assert_eq(ks[i].state, SR_KS_RETIRED);
        }
    sr_free(ks);
    cr_assert_neq(f->op9_audit_key, 0);
}

/* the records of d's log sealed by key id */
static uint64_t log_records_of_key(const char *d, uint32_t id)
{
    char ld[1200], kd[1200];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &g_key, "test", 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.readonly = 1, .key = &g_key, .keys = sr_keyring_keys(kr)};
    sr_log *lg = NULL;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq, n = 0;
    sr_slice rec;
    int rc;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) n += sr_log_iter_key_id(it) == id;
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    return n;
}

/* Command 17: the retention sweep's destruction of op9's retired data key
 * (what sr_engine_key_destroy appends before it writes the tombstone). */
enum { KEY_DESTROY_CMD = 17 };
_Static_assert((int)KEY_DESTROY_CMD > (int)RETENTION_CMD && KEY_DESTROY_CMD < NCMD - 2, "after the retention, before the duplicate pair");
static void build_key_destroy(fixture *f)
{
    command *cm = &f->cmds[KEY_DESTROY_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0; /* build_commands made it an atomic pair with a user */
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op9", "system", SR_ACTOR_SYSTEM, cm->msgid[0] ? cm->msgid : NULL, "retention"};
    const sr_key_rec k = {.action = "destroy", .key_operator = "op9", .key_class = "data", .key_id = f->op9_key,
                          .period_days = 30, .cut_ms = 1600000000000, .epoch_end_ms = 1600000000000};
    cr_assert_eq(sr_cmd_key_ev(&env, &k, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* The base's alarm: op1's disk-free condition raised by the system (its id
 * into f->alarm_id). */
static void base_alarm(sr_engine *e, fixture *f)
{
    const sr_cmd_env env = {"op1", "system", SR_ACTOR_SYSTEM, NULL, "alarms"};
    const sr_alarm_step st = {.state = "raised", .rule = "disk-free", .level = SR_AL_MINOR, .source = "alarms",
                              .message = "8% free", .auto_resolve = 1};
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_alarm(&env, &st, &b), SR_OK);
    size_t len = b.len;
    sr_result res;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    sr_buf_release(&b);
    sr_rec r = SR_REC_INIT;
    sr_alarm a;
    cr_assert_eq(sr_list_alarms(e, &r), SR_OK);
    cr_assert_eq(sr_rec_next_alarm(&r, &a), 1);
    snprintf(f->alarm_id, sizeof f->alarm_id, "%s", a.id);
    sr_rec_close(&r);
}

/* Command 18: "admin" acknowledges the base's alarm with a comment. */
enum { ALARM_CMD = 18 };
_Static_assert((int)ALARM_CMD > (int)KEY_DESTROY_CMD && ALARM_CMD < NCMD - 2, "after the key's destruction, before the duplicate pair");
static void build_alarm_ack(fixture *f)
{
    command *cm = &f->cmds[ALARM_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1"};
    const sr_alarm_step st = {.state = "acknowledged", .id = f->alarm_id, .comment = "on it"};
    cr_assert_eq(sr_cmd_alarm(&env, &st, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 19 (NOTIFY_MARK_CMD): the notifier's mark (a NotifyEvent "mark",
 * issue #17, api/notify.c; the `notifyq` database): after the reopen the
 * mark is there, at NOTIFY_THROUGH, exactly when it was acknowledged. */
enum { NOTIFY_MARK_CMD = 19 };
_Static_assert((int)NOTIFY_MARK_CMD > (int)ALARM_CMD && NOTIFY_MARK_CMD < NCMD - 2, "after the alarm, before the duplicate pair");
static const uint64_t NOTIFY_THROUGH = 888;
static void build_notify_mark(fixture *f)
{
    command *cm = &f->cmds[NOTIFY_MARK_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"", "system", SR_ACTOR_SYSTEM, cm->msgid[0] ? cm->msgid : NULL, NULL};
    const sr_notify_rec n = {.outcome = "mark", .through = NOTIFY_THROUGH};
    cr_assert_eq(sr_cmd_notify(&env, &n, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 20: gateway GW1 of op1 offline by its will (an AliveEvent, the
 * `alive` index; R-MO-1, api/alive.h). */
enum { ALIVE_CMD = 20 };
_Static_assert((int)ALIVE_CMD > (int)NOTIFY_MARK_CMD && ALIVE_CMD < NCMD - 2, "after the others, before the duplicate pair");
static void build_alive(fixture *f)
{
    command *cm = &f->cmds[ALIVE_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op1", "GW1", SR_ACTOR_GATEWAY, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1:5000"};
    const sr_alive_rec a = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = SR_AS_OFFLINE, .reason = SR_AR_WILL,
                            .binding = "mqtt", .remote = "127.0.0.1:5000", .will = "applied"};
    cr_assert_eq(sr_cmd_alive(&env, &a, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 21: a retention sweep that drops log segments and nothing else
 * (every period kept for ever; docs/keys.md "Segments"). Its ConfigCarry
 * and LogTrim events are the engine's: the command has no events of its own
 * (nev 0) and the sweep says how many it appended (seg_events). */
enum { SEGDROP_CMD = 21 };
_Static_assert((int)SEGDROP_CMD > (int)ALIVE_CMD && SEGDROP_CMD < NCMD - 2, "after command 20, before the duplicate pair");
static const sr_retention_cfg SEGDROP_CFG = {.batch = 64, .audit_floor_days = 365, .drop_segments = 1};
static void build_segdrop(fixture *f)
{
    command *cm = &f->cmds[SEGDROP_CMD];
    cm->bytes.len = 0;
    cm->nev = 0;
    cm->user[0] = 0;
    cm->msgid[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
}

/* Command 22: the retention sweep's restatement of the base's alarm (issue
 * #16): an AlarmEvent with restated and the alarm's id only; the writer
 * fills the state from the row. */
enum { AUDIT_RESTATE_CMD = 22, AUDIT_DESTROY_CMD = 23 };
_Static_assert((int)AUDIT_RESTATE_CMD > (int)SEGDROP_CMD && AUDIT_DESTROY_CMD < NCMD - 2, "after the drop, before the duplicate pair");
static void build_audit_restate(fixture *f)
{
    command *cm = &f->cmds[AUDIT_RESTATE_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    Suiro__V1__AlarmEvent al = SUIRO__V1__ALARM_EVENT__INIT;
    al.alarm_id = f->alarm_id;
    al.restated = 1;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.operator_id = "op1";
    ev.actor = "system";
    ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    ev.source = "retention";
    ev.message_id = cm->msgid;
    ev.body_case = SUIRO__V1__EVENT__BODY_ALARM;
    ev.alarm = &al;
    size_t n = protobuf_c_message_get_packed_size(&ev.base);
    cr_assert_eq(sr_buf_reserve(&cm->bytes, n), SR_OK);
    protobuf_c_message_pack(&ev.base, cm->bytes.data);
    cm->bytes.len = cm->lens[0] = n;
}

/* Command 23: the retention sweep's destruction of op9's retired audit key. */
static void build_audit_destroy(fixture *f)
{
    command *cm = &f->cmds[AUDIT_DESTROY_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op9", "system", SR_ACTOR_SYSTEM, cm->msgid[0] ? cm->msgid : NULL, "retention"};
    const sr_key_rec k = {.action = "destroy", .key_operator = "op9", .key_class = "audit", .key_id = f->op9_audit_key,
                          .period_days = 30, .cut_ms = 1600000000000, .epoch_end_ms = 1600000000000};
    cr_assert_eq(sr_cmd_key_ev(&env, &k, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 25: a batch of APP1's reads of op1 (issue #18), twice in one
 * command: as the old AccessEvent and as the packed AccessBatch the server
 * writes since session 12 (codecs/accpack.h): one `read` audit row each,
 * the same. */
enum { ACCESS_CMD = 25 };
_Static_assert((int)ACCESS_CMD > (int)SEGDROP_CMD && ACCESS_CMD < NCMD - 2, "after the segment drop, before the duplicate pair");
static void build_access(fixture *f)
{
    command *cm = &f->cmds[ACCESS_CMD];
    cm->bytes.len = 0;
    cm->nev = 2;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = cm->ns[1] = cm->nx[1] = 0;
    const sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1:6000"};
    sr_access_entry en[2] = {
        {.time_ms = 1700000000000, .binding = "apif-http", .method = "GET", .route = "/api/v1/stored-values/latest",
         .npoints_listed = 1, .npoints = 1, .values = 1, .bytes = 80, .status = 200, .code = "", .source = "127.0.0.1:6000"},
        {.time_ms = 1700000000001, .binding = "apif-http", .method = "GET", .route = "/api/v1/stored-values/latest",
         .npoints_listed = 1, .npoints = 1, .values = 0, .bytes = 90, .status = 403, .code = "E2003",
         .source = "127.0.0.1:6000"}};
    en[0].points[0] = "P0";
    en[1].points[0] = "NOPE";
    cr_assert_eq(sr_cmd_access(&env, en, 2, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
    sr_apk pk;
    sr_apk_init(&pk);
    for (int i = 0; i < 2; i++) {
        uint16_t ref = (uint16_t)sr_apk_str(&pk, en[i].points[0], strlen(en[i].points[0]));
        sr_apk_entry x = {.time_ms = en[i].time_ms, .binding = (uint16_t)sr_apk_static(&pk, en[i].binding),
                          .method = (uint16_t)sr_apk_static(&pk, en[i].method),
                          .route = (uint16_t)sr_apk_static(&pk, en[i].route),
                          .source = (uint16_t)sr_apk_str(&pk, en[i].source, strlen(en[i].source)),
                          .code = en[i].code[0] ? (uint16_t)sr_apk_static(&pk, en[i].code) : SR_APK_NONE,
                          .status = (uint16_t)en[i].status, .npl = 1, .npoints = 1, .values = en[i].values,
                          .bytes = en[i].bytes};
        cr_assert_eq(sr_apk_add(&pk, &x, &ref), SR_OK);
    }
    sr_buf packed;
    sr_buf_init(&packed);
    cr_assert_eq(sr_apk_finish(&pk, &packed), SR_OK);
    sr_apk_release(&pk);
    cr_assert_eq(sr_cmd_access_batch(&env, packed.data, packed.len, &cm->bytes), SR_OK);
    sr_buf_release(&packed);
    cm->lens[1] = cm->bytes.len - cm->lens[0];
}

/* Command 28 (REFUSAL_CMD; issue #18, docs/admin.md "Refusals"): a batch of
 * GW1's refused values of op1, code E5003, 3 more dropped by the bound: one
 * `refused` audit row. */
enum { REFUSAL_CMD = 28 };
_Static_assert((int)REFUSAL_CMD > (int)ACCESS_CMD && REFUSAL_CMD < NCMD - 2, "after the reads, before the duplicate pair");
static void build_refusals(fixture *f)
{
    command *cm = &f->cmds[REFUSAL_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op1", "GW1", SR_ACTOR_GATEWAY, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1:6001"};
    sr_access_entry en[2] = {
        {.time_ms = 1700000000002, .binding = "gwif-mqtt", .method = "PUBLISH", .route = "data/measurements",
         .npoints_listed = 1, .npoints = 1, .status = 422, .code = "E5003", .source = "127.0.0.1:6001"},
        {.time_ms = 1700000000003, .binding = "gwif-http", .method = "POST", .route = "/gw/v1/measurements",
         .npoints_listed = 1, .npoints = 1, .status = 422, .code = "E5003", .source = "127.0.0.1:6001"}};
    en[0].points[0] = "P0";
    en[1].points[0] = "P1";
    cr_assert_eq(sr_cmd_refusals(&env, en, 2, 3, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}

/* Command 27 (REVOKE_CMD; R-SE-3, docs/signatures.md): op1's revocation of
 * certificate APP1#1A (a RegistryPut of kind SR_RG_REVOKED, as
 * api/admin_sig.c writes it): after the reopen it is there, whole, exactly
 * when it was acknowledged (a message signed with it is refused E5003 from
 * then on: api/sigcheck.c reads this entry). */
enum { REVOKE_CMD = 27 };
_Static_assert((int)REVOKE_CMD > (int)SEGDROP_CMD && REVOKE_CMD < NCMD - 2, "before the duplicate pair");
static void build_revocation(fixture *f)
{
    command *cm = &f->cmds[REVOKE_CMD];
    cm->bytes.len = 0;
    cm->nev = 2;
    cm->user[0] = 0;
    cm->ns[0] = cm->nx[0] = cm->ns[1] = cm->nx[1] = 0;
    const sr_cmd_env env = {"op1", "admin", SR_ACTOR_USER, cm->msgid[0] ? cm->msgid : NULL, "127.0.0.1"};
    const sr_reg_entry re = {.kind = SR_RG_REVOKED, .id = "APP1#1A", .name = "key lost", .revoked_ms = 1700000000123};
    cr_assert_eq(sr_cmd_registry_put(&env, &re, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
    /* and, in the same command, a data point's signature requirement
     * (SR_RG_SIGREQ, as api/admin_sig.c writes it) */
    const sr_reg_entry rq = {.kind = SR_RG_SIGREQ, .id = "P001", .name = "valve", .revoked_ms = 1700000000456};
    cr_assert_eq(sr_cmd_registry_put(&env, &rq, &cm->bytes), SR_OK);
    cm->lens[1] = cm->bytes.len - cm->lens[0];
}

/* Command 24 (issue #18, docs/audit.md "Checkpoints"): a CheckpointEvent
 * of the tree as the index has it when it runs, built as api/checkpoint.c
 * builds it (sr_read_tree_head, sr_cmd_checkpoint; the note is a fixed
 * text: the writer checks the root, tip and last seq, not the signature).
 * Built at run time (its root is the tree's then), like command 21's sweep;
 * every crash point then checks that the mtree database -- its nodes, head
 * and checkpoint row -- equals a rebuild's (the content hash covers it). */
enum { CKPT_CMD = 24 };
_Static_assert((int)CKPT_CMD > (int)SEGDROP_CMD && CKPT_CMD < NCMD - 2, "after the segment drop, before the duplicate pair");
static void build_ckpt(fixture *f)
{
    command *cm = &f->cmds[CKPT_CMD];
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->msgid[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
}

static int ckpt_run(sr_engine *e, sr_result *res)
{
    sr_tree_head h;
    int rc = sr_read_tree_head(e, &h);
    if (rc) return rc;
    static const uint8_t kid[SR_TREE_HASH] = {24};
    const sr_cmd_env env = {.op = "", .actor = "system", .kind = SR_ACTOR_SYSTEM, .source = "server"};
    const sr_checkpoint_in in = {.head = &h, .time_ms = 1700000024000, .note = "suiro/test\n(fault suite)\n",
                                 .alg = "ES256", .key_name = "suiro/test", .reason = "interval", .key_id = kid};
    sr_buf b;
    sr_buf_init(&b);
    if (!(rc = sr_cmd_checkpoint(&env, &in, &b))) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, res);
    }
    sr_buf_release(&b);
    return rc;
}

/* Command 26 (SNAP_CMD): an ordinary measurement command whose write makes
 * a state snapshot (every group does: opts' snapshot_events 1; issue #18,
 * engine/statesnap.c, the index's statesnap database). After the reopen the
 * index equals a rebuild by the rule schema.h states (the snapshots are a
 * cache left out of the content hash: check_db's comparison), the state at
 * the end answered from the nearest snapshot equals the full replay's
 * (every point's latest value, the masters, the registry), and when
 * command 26 was acknowledged the answer starts from a snapshot at or after
 * its seq (its group's transaction held it: never an acknowledged write
 * without its snapshot, never a snapshot of a write that was not). */
enum { SNAP_CMD = 26 };
_Static_assert((int)SNAP_CMD > (int)REVOKE_CMD - 2 && SNAP_CMD < NCMD - 2, "before the duplicate pair");

/* node's PointAlias: this node's ("fx") point fx_point is node's point, data id P<k> */
static void pack_alias(const char *node, uint32_t fx_point, uint32_t point, int k, sr_buf *out)
{
    char id[16];
    snprintf(id, sizeof id, "P%03d", k);
    Suiro__V1__PointAlias pa = SUIRO__V1__POINT_ALIAS__INIT;
    pa.origin_node = "fx";
    pa.origin_point = fx_point;
    pa.point = point;
    pa.data_id = id;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_POINT_ALIAS;
    ev.point_alias = &pa;
    sr_buf_init(out);
    cr_assert_eq(sr_ev_pack(&ev, "op1", node, SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM, "cluster", out), SR_OK);
}

/* Command 29 (ORIGIN_CMD; issue #19 phase 2a, engine/origins.c): a
 * measurement event node "nx" wrote, submitted as the cluster's consumer
 * does (sr_engine_submit_origin: origin nx:29, partition 5, stream seq 2929,
 * the full consumer). After the reopen its values, its origin id (`origins`)
 * and the consumer's checkpoint (`cluster_ckpt`) are all there exactly when
 * it was acknowledged -- never an effect without its origin and checkpoint
 * nor one of those without the effect -- and the index equals a rebuild.
 * Since the point aliases (issue #19 pmap, engine/origins.c invariant 5) the
 * command is two submits: first nx's PointAlias of this node's ("fx") point
 * (origin nx:28, the .reg consumer, stream seq 2928), then the measurement
 * under nx's number ORIGIN_NX_POINT, which only that alias's 'P' row maps
 * to this node's point (without it the values are refused). The alias is
 * all or nothing too: acknowledged, its origin and checkpoint are there
 * (and the values mapped through it); the rebuild gives its row again. */
enum { ORIGIN_CMD = 29 };
enum { ORIGIN_NX_POINT = 7777 };
static sr_buf origin_alias; /* the alias's bytes (build_origin) */
_Static_assert((int)ORIGIN_CMD < NCMD - 2, "before the duplicate pair");
static const uint64_t ORIGIN_STREAM_SEQ = 2929;
static void build_origin(fixture *f)
{
    command *cm = &f->cmds[ORIGIN_CMD];
    /* one event: the first of the ordinary command 29 (its measurements), no
     * message id (the origin id is its id) */
    cm->nev = 1;
    cm->user[0] = 0;
    cm->msgid[0] = 0;
    cm->bytes.len = 0;
    int k = ORIGIN_CMD % NPOINTS;
    sr_pv_in in = {ORIGIN_NX_POINT, TYPES[k], cm->s[0], cm->ns[0]}; /* nx's number of cm->point[0] */
    cr_assert_eq(sr_ev_measurements("op1", k % 2 ? "GW2" : "GW1", SR_ACTOR_GATEWAY, NULL, &in, 1, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
    /* nx's alias: this node's ("fx") point cm->point[0] is nx's ORIGIN_NX_POINT */
    pack_alias("nx", cm->point[0], ORIGIN_NX_POINT, k, &origin_alias);
}

static int origin_run(sr_engine *e, command *cm, sr_result *res, uint64_t *extra)
{
    const sr_origin oa = {"nx", 28, 5, ORIGIN_STREAM_SEQ - 1, 1};
    int rc = et_submit_origin(e, origin_alias.data, origin_alias.len, &oa, res);
    if (rc) return rc;
    if (!res->duplicate) *extra += 1; /* the alias's event (a retried command meets it as a duplicate) */
    memset(res, 0, sizeof *res);
    const sr_origin o = {"nx", 29, 5, ORIGIN_STREAM_SEQ, 2};
    return et_submit_origin(e, cm->bytes.data, cm->lens[0], &o, res);
}

/* Command 1 (HOLD_CMD; issue #19 hold, engine/origins.c invariant 6): a
 * measurement event node "ny" wrote of its number HOLD_NY_POINT, which
 * has no row here yet (its PointAlias came later in a stream whose order
 * broke): submitted as the consumer does (origin ny:1, partition 6, the
 * full consumer), it is logged HELD, nothing stored; then ny's PointAlias
 * of this node's ("fx") point (origin ny:2, the .reg consumer) writes the
 * row and, in its group, the release that stores the values on that
 * point; then the command's own second event (user u1's creation), an
 * ordinary submit. hold_stage counts the submits acknowledged in order.
 * After the reopen: held (stage 1) -- its origin, counted held, no value;
 * its mapping acknowledged (stage >= 2) -- the values on the right point
 * exactly once, nothing held, the release after the alias; never a value
 * on another point (HOLD_NY_POINT is another point's number here), never
 * a half-applied release; the index equals a rebuild. */
enum { HOLD_CMD = 1 };
static sr_buf hold_alias, hold_user; /* the alias's bytes, the user's creation (build_hold) */
static int hold_stage;
static const uint64_t HOLD_STREAM_SEQ = 3001;
static void build_hold(fixture *f)
{
    command *cm = &f->cmds[HOLD_CMD];
    cr_assert_eq(cm->nev, 2);
    cr_assert(cm->user[0] && cm->ns[0] && !cm->nx[0], "command 1: values, then a user");
    sr_buf_init(&hold_user);
    cr_assert_eq(sr_buf_append(&hold_user, cm->bytes.data + cm->lens[0], cm->lens[1]), SR_OK);
    int k = HOLD_CMD % NPOINTS;
    uint32_t ny_point = f->points[(k + 1) % NPOINTS]; /* another point's number here */
    cm->nev = 1; /* the model's event: the user's creation (the held event, alias and release: extra) */
    cm->hold = 1;
    cm->msgid[0] = 0;
    cm->bytes.len = 0;
    sr_pv_in in = {ny_point, TYPES[k], cm->s[0], cm->ns[0]};
    cr_assert_eq(sr_ev_measurements("op1", k % 2 ? "GW2" : "GW1", SR_ACTOR_GATEWAY, NULL, &in, 1, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
    pack_alias("ny", cm->point[0], ny_point, k, &hold_alias);
}

static int hold_run(sr_engine *e, command *cm, sr_result *res, uint64_t *extra)
{
    hold_stage = 0;
    const sr_origin oh = {"ny", 1, 6, HOLD_STREAM_SEQ, 2};
    int rc = et_submit_origin(e, cm->bytes.data, cm->lens[0], &oh, res);
    if (rc) return rc;
    cr_assert(res->held || res->duplicate, "command 1's values: held (%s)", res->err.msg);
    if (!res->duplicate) *extra += 1; /* the held event */
    hold_stage = 1;
    memset(res, 0, sizeof *res);
    const sr_origin oa = {"ny", 2, 6, HOLD_STREAM_SEQ + 1, 1};
    if ((rc = et_submit_origin(e, hold_alias.data, hold_alias.len, &oa, res))) return rc;
    if (!res->duplicate) *extra += 2; /* the alias and, in its group, the release */
    hold_stage = 2;
    memset(res, 0, sizeof *res);
    sr_slice sl = {hold_user.data, hold_user.len};
    if ((rc = sr_engine_submit_wait(e, &sl, 1, res))) return rc;
    hold_stage = 3;
    return SR_OK;
}

/* Commands 5 and 7 (SKEY_INTENT_CMD, SKEY_RESULT_CMD; issue #19 ckey,
 * engine/keys.c invariant 4): a stream key's erasure. Command 5 is its
 * intent (a StreamKeyErase "pending" of op1's data stream key SKEY_ID, as
 * the retention sweep writes it), command 7 its result ("done", intent_seq
 * the open intent's seq as the engine holds it, read at run time; without
 * an open intent, a refused erasure: no row either way). After the reopen
 * the open intent (the `origins` 'K' row) is there exactly when command 5
 * was acknowledged and command 7's result of it was not; the index equals
 * a rebuild (the row is a function of the log). */
enum { SKEY_INTENT_CMD = 5, SKEY_RESULT_CMD = 7 };
_Static_assert((int)SKEY_RESULT_CMD > (int)SKEY_INTENT_CMD && SKEY_RESULT_CMD < NCMD - 2, "before the duplicate pair");
static const char SKEY_ID[] = "00000000000000a5";
static int skey_closing; /* command 7 (this run) closed command 5's intent */
static void skey_event(command *cm, const char *outcome, uint64_t intent)
{
    cm->bytes.len = 0;
    cm->nev = 1;
    cm->user[0] = 0;
    cm->msgid[0] = 0;
    cm->ns[0] = cm->nx[0] = 0;
    const sr_cmd_env env = {"op1", "fx", SR_ACTOR_SYSTEM, NULL, NULL};
    const sr_skey_erase_rec r = {SKEY_ID,  "op1",   "data",  3, 30, "retention", 1700000000000,
                                 outcome, "",      intent, "fx"};
    cr_assert_eq(sr_cmd_skey_erase(&env, &r, &cm->bytes), SR_OK);
    cm->lens[0] = cm->bytes.len;
}
static void build_skey(fixture *f)
{
    skey_event(&f->cmds[SKEY_INTENT_CMD], "pending", 0);
    skey_event(&f->cmds[SKEY_RESULT_CMD], "refused", 0); /* (replaced at run time) */
}
static int skey_open_seq(void *ctx, uint64_t id, uint64_t seq, const char *why)
{
    (void)why;
    if (id == 0xa5) *(uint64_t *)ctx = seq;
    return 0;
}
static int skey_result_run(sr_engine *e, command *cm, sr_result *res)
{
    uint64_t seq = 0;
    int rc = sr_engine_skey_pending(e, skey_open_seq, &seq);
    if (rc) return rc;
    if (seq) skey_closing = 1; /* (a retry after its result was made durable by the resume finds none) */
    skey_event(cm, seq ? "done" : "refused", seq);
    sr_slice sl = {cm->bytes.data, cm->lens[0]};
    return sr_engine_submit_wait(e, &sl, 1, res);
}
static int skey_count(void *ctx, uint64_t id, uint64_t seq, const char *why)
{
    (void)seq;
    cr_assert_eq(id, 0xa5);
    cr_assert_str_eq(why, "retention");
    (*(int *)ctx)++;
    return 0;
}

/* Run command c: a submit of its events, or command 21's sweep; *extra gets
 * the events the sweep appended (acknowledged ones, also when a later step
 * failed). */
static int cmd_run(sr_engine *e, command *cm, int c, sr_result *res, uint64_t *extra)
{
    memset(res, 0, sizeof *res);
    if (c == SEGDROP_CMD) {
        sr_retention_report rep;
        sr_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = sr_engine_retention_sweep(e, &SEGDROP_CFG, NULL, &rep, &ei);
        *extra += rep.seg_events;
        res->rc = rc;
        res->err = ei;
        return rc;
    }
    if (c == CKPT_CMD) return ckpt_run(e, res);
    if (c == ORIGIN_CMD) return origin_run(e, cm, res, extra);
    if (c == BLOBFILE_CMD) return blobfile_run(e, cm, res);
    if (c == HOLD_CMD) return hold_run(e, cm, res, extra);
    if (c == SKEY_RESULT_CMD) return skey_result_run(e, cm, res);
    if (c == SKEY_INTENT_CMD) skey_closing = 0; /* (a run's command 7 comes after it) */
    sr_slice sl[3];
    for (size_t v = 0, pos = 0; v < cm->nev; pos += cm->lens[v], v++)
        sl[v] = (sr_slice){cm->bytes.data + pos, cm->lens[v]};
    return sr_engine_submit_wait(e, sl, cm->nev, res);
}

/* The base's first records: op8's masters written a year before the rest,
 * their audit rows cut at the base's time (Retention events of class audit
 * for op8 and the platform): the first segments hold nothing the index
 * needs but op8's config, which command 21 carries before it drops them. */
static int64_t prelude_clock(void) { return 1670000000000; }
static void base_prelude(void)
{
    sr_engine_opts o = opts(NULL, NULL);
    o.clock_ms = prelude_clock;
    sr_engine *e = open_at(base, &o);
    static const sr_vtype one[1] = {SR_VT_NUMBER};
    cr_assert_eq(et_setup_masters(e, "op8", 8, one, 1), SR_OK);
    /* small config commands: whole segments of op8's config (4 KiB segments) */
    const sr_cmd_env env = {"op8", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    for (int i = 0; i < 80; i++) {
        char cls[16];
        snprintf(cls, sizeof cls, "c%d", i);
        sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = cls, .retention_days = 0};
        b.len = 0;
        cr_assert_eq(sr_cmd_registry_put(&env, &re, &b), SR_OK);
        size_t len = b.len;
        sr_result res;
        cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
    }
    sr_buf_release(&b);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}
static void base_prelude_cut(sr_engine *e)
{
    const char *ops[2] = {"op8", ""};
    for (int i = 0; i < 2; i++) {
        Suiro__V1__Retention rt = SUIRO__V1__RETENTION__INIT;
        rt.data_class = "audit";
        rt.cut_ms = 1680000000000;
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.operator_id = (char *)ops[i];
        ev.actor = "system";
        ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
        ev.source = "retention";
        ev.body_case = SUIRO__V1__EVENT__BODY_RETENTION;
        ev.retention = &rt;
        sr_buf b;
        sr_buf_init(&b);
        size_t n = protobuf_c_message_get_packed_size(&ev.base);
        cr_assert_eq(sr_buf_reserve(&b, n), SR_OK);
        protobuf_c_message_pack(&ev.base, b.data);
        b.len = n;
        size_t len = n;
        sr_result res;
        cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_OK, "%s", res.err.msg);
        sr_buf_release(&b);
    }
}

/* The base database: masters and 40 samples per point (chunks flushed),
 * closed; the model holds them. */
static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->m = et_model_new();
    base_prelude();
    sr_engine_opts o = opts(NULL, NULL);
    sr_engine *e = open_at(base, &o);
    base_prelude_cut(e);
    base_records(e);
    cr_assert_eq(et_setup_masters(e, "op1", NPOINTS, TYPES, NPOINTS), SR_OK);
    base_pending(e);
    base_op9(e, f);
    base_alarm(e, f);
    int64_t clock[NPOINTS];
    tu_rng r = {5};
    for (int k = 0; k < NPOINTS; k++) {
        char id[16];
        snprintf(id, sizeof id, "P%03d", k);
        cr_assert_eq(sr_engine_point(e, "op1", id, &f->points[k], NULL), SR_OK);
        clock[k] = 1600000000000 + 333 * k;
        for (int b = 0; b < 4; b++) {
            sr_sample s[10];
            for (int i = 0; i < 10; i++) s[i] = value(&r, TYPES[k], clock[k] += 1000);
            sr_result res;
            cr_assert_eq(et_put(e, "op1", k % 2 ? "GW2" : "GW1", f->points[k], TYPES[k], s, 10, NULL, &res), SR_OK,
                         "%s", res.err.msg);
            for (int i = 0; i < 10; i++) et_model_put(f->m, f->points[k], &s[i]);
        }
    }
    cr_assert_eq(sr_engine_close(e), SR_OK);
    f->base_events = 0; /* with its checkpoints (the close's too): check_db counts them apart */
    (void)log_own_events(base, &f->base_events, NULL, NULL);
    build_commands(f, clock);
    build_sessions(f);
    build_store(f);
    build_blobfile(f);
    build_correction(f, clock);
    build_backup(f);
    build_key_rotation(f);
    build_retention(f);
    build_key_destroy(f);
    build_alarm_ack(f);
    build_notify_mark(f);
    build_alive(f);
    build_segdrop(f);
    build_audit_restate(f);
    build_audit_destroy(f);
    f->op9_audit_recs = log_records_of_key(base, f->op9_audit_key);
    cr_assert_gt(f->op9_audit_recs, 0, "op9's audit epoch sealed records");
    build_access(f);
    build_revocation(f);
    build_refusals(f);
    build_ckpt(f);
    build_origin(f);
    build_hold(f);
    build_skey(f);
}

static void fixture_release(fixture *f)
{
    for (int c = 0; c < NCMD; c++) sr_buf_release(&f->cmds[c].bytes);
    sr_buf_release(&hold_alias);
    sr_buf_release(&hold_user);
    et_model_free(f->m);
}

/* ---- copying the base database -------------------------------------------- */

static void copy_dir(const char *from, const char *to)
{
    cr_assert_eq(mkdir(to, 0755), 0, "mkdir %s", to);
    DIR *d = opendir(from);
    cr_assert_not_null(d, "%s", from);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "LOCK") || !strcmp(de->d_name, "lock.mdb")) continue;
        char a[1400], b[1400];
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        cr_assert_eq(tu_copy_file(a, b), 0, "copy %s", a);
    }
    closedir(d);
}

static void fresh_db(void)
{
    char a[1200], b[1200];
    tu_rmrf(db);
    cr_assert_eq(mkdir(db, 0755), 0);
    snprintf(a, sizeof a, "%s/log", base);
    snprintf(b, sizeof b, "%s/log", db);
    copy_dir(a, b);
    snprintf(a, sizeof a, "%s/index", base);
    snprintf(b, sizeof b, "%s/index", db);
    copy_dir(a, b);
    snprintf(a, sizeof a, "%s/keys", base);
    snprintf(b, sizeof b, "%s/keys", db);
    copy_dir(a, b);
}

/* ---- one faulty run and its checks --------------------------------------- */

typedef struct outcome {
    et_model *m;       /* base + acknowledged */
    uint64_t events;   /* events in the log expected */
    int acked, refused;
    int acked_cmd[NCMD]; /* command c was acknowledged */
    uint64_t snap_cmd_seq; /* command 26's seq, when acknowledged */
    int hold_stage;        /* command 1's submits acknowledged in order (0..3: held, alias, user) */
    int skey_closed;       /* command 7 was acknowledged as the result of command 5's intent */
    int users;         /* users the acknowledged commands created */
} outcome;

/* An acknowledged (not duplicate) command into the model. */
static void model_add(outcome *out, const command *cm)
{
    if (cm->hold) out->hold_stage = 3;
    out->events += cm->nev;
    out->users += cm->user[0] != 0;
    for (size_t v = 0; v < cm->nev; v++) cmd_model_put(out->m, cm, v);
}

static int listed(int rc) { return rc == SR_OK || rc == SR_EIO || rc == SR_ENOSPC || rc == SR_EPOISONED || rc == SR_ENOMEM; }

/* Submit every command; record what was acknowledged. */
static void submit_all(sr_engine *e, fixture *f, outcome *out, const char *ctx)
{
    int stored[NCMD] = {0};
    for (int c = 0; c < NCMD; c++) {
        command *cm = &f->cmds[c];
        sr_result res;
        int rc = cmd_run(e, cm, c, &res, &out->events);
        cr_assert(listed(rc), "%s: command %d returned %s (%s)", ctx, c, sr_err_name(rc), res.err.msg);
        if (c == HOLD_CMD) out->hold_stage = hold_stage;
        if (rc != SR_OK) {
            out->refused++;
            if (c == HOLD_CMD && hold_stage >= 2) cmd_model_put(out->m, cm, 0); /* released by its alias */
            continue;
        }
        out->acked++;
        out->acked_cmd[c] = 1;
        if (c == SKEY_RESULT_CMD) out->skey_closed = skey_closing;
        if (c == SNAP_CMD) out->snap_cmd_seq = res.seq;
        if (res.duplicate) {
            /* only the last command repeats an id: of the one before it */
            cr_assert_eq(c, NCMD - 1, "%s: command %d is a duplicate", ctx, c);
            cr_assert(stored[NCMD - 2], "%s: duplicate of a command that was not stored", ctx);
            continue;
        }
        stored[c] = 1;
        cr_assert_eq(res.count, cm->nev);
        model_add(out, cm);
    }
}

/* Point k's samples (v, n) against the model: exactly it, or with the
 * Retention command acknowledged, a subset of it holding every value at or
 * after RET_CUT and fewer before it (whole chunks went; a value still in a
 * head or a chunk straddling the cut stays, docs/retention.md). */
static void check_range(const outcome *out, const fixture *f, int k, const sr_sample *v, size_t n, const char *ctx,
                        const char *what)
{
    sr_sample *want;
    size_t nw = et_model_range(out->m, f->points[k], INT64_MIN / 4, INT64_MAX / 4, &want);
    if (!out->acked_cmd[RETENTION_CMD]) {
        cr_assert_eq(n, nw, "%s: %s %d has %zu samples, %zu acknowledged", ctx, what, k, n, nw);
        for (size_t i = 0; i < n; i++)
            cr_assert(et_sample_eq(TYPES[k], &v[i], &want[i]), "%s: %s %d sample %zu (ts %" PRId64 ") differs", ctx,
                      what, k, i, want[i].ts);
    } else {
        size_t i = 0, before = 0, wbefore = 0;
        for (size_t j = 0; j < nw; j++) {
            wbefore += want[j].ts < RET_CUT;
            if (i < n && v[i].ts == want[j].ts) {
                cr_assert(et_sample_eq(TYPES[k], &v[i], &want[j]), "%s: %s %d: the value at %" PRId64 " differs", ctx,
                          what, k, want[j].ts);
                before += v[i].ts < RET_CUT;
                i++;
            } else {
                cr_assert_lt(want[j].ts, RET_CUT, "%s: %s %d: the value at %" PRId64 " (after the cut) is gone", ctx,
                             what, k, want[j].ts);
            }
        }
        cr_assert_eq(i, n, "%s: %s %d: a value the model does not hold", ctx, what, k);
        cr_assert_lt(before, wbefore, "%s: %s %d: the acknowledged retention cut nothing (%zu of %zu before it)", ctx,
                     what, k, before, wbefore);
    }
    free(want);
}

/* sr_user_password_ok(u, "a password"), remembered: it is one scrypt (about
 * 50 ms, 16 MB: three quarters of the suite's CPU when every run checked
 * every user's). The fixture hashes each command's user once, so every run
 * finds the same hash bytes in the index; bytes equal to a hash that
 * verified are the same answer, any other bytes (a damaged or different
 * hash) run scrypt again (docs/testing.md "Where the CPU goes"). */
enum { PW_SEEN_MAX = NCMD };
static struct {
    size_t len;
    uint8_t h[200];
} pw_seen[PW_SEEN_MAX];
static int npw_seen;

static int password_ok(const sr_user *u)
{
    const sr_slice *h = &u->password_hash;
    for (int i = 0; i < npw_seen; i++)
        if (pw_seen[i].len == h->len && !memcmp(pw_seen[i].h, h->data, h->len)) return 1;
    if (!sr_user_password_ok(u, "a password")) return 0;
    if (npw_seen < PW_SEEN_MAX && h->len <= sizeof pw_seen[0].h) {
        pw_seen[npw_seen].len = h->len;
        memcpy(pw_seen[npw_seen++].h, h->data, h->len);
    }
    return 1;
}

static void check_db(fixture *f, const outcome *out, const char *ctx)
{
    sr_engine_opts o = opts(NULL, NULL);
    sr_engine *e = open_at(db, &o);
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    uint64_t tck = 0, btck = 0;
    uint64_t rotated = 0, destroyed = 0, erased = 0, brotated = 0;
    uint64_t ck = log_own_events_x(db, NULL, &tck, &rotated, &destroyed, &erased);
    uint64_t wa_log = log_write_audits; /* op1's (the next call counts the base's) */
    uint64_t trims = log_trims, restated = log_restated;
    uint64_t bck = log_own_events(base, NULL, &btck, &brotated);
    rotated -= brotated; /* the base's own (op9's, base_op9) */
    /* command 21: the log starts past 1 exactly when a LogTrim is in it (a
     * trim durable before a fault was finished by this open), always when
     * the sweep was acknowledged; what it dropped was the base's first
     * records, whose own events count as the base's */
    sr_engine_open_stats os;
    sr_engine_get_open_stats(e, &os);
    uint64_t first = os.log_first_seq;
    cr_assert_eq(first > 1, trims > 0, "%s: the log starts at %" PRIu64 " with %" PRIu64 " LogTrim events", ctx, first,
                 trims);
    if (out->acked_cmd[SEGDROP_CMD]) cr_assert_gt(first, 1, "%s: an acknowledged drop dropped nothing", ctx);
    if (first > 1) {
        own_below = first;
        uint64_t dropped_own = log_own_events(base, NULL, NULL, NULL);
        own_below = UINT64_MAX;
        ck += dropped_own;
        uint32_t p8;
        cr_assert_eq(sr_engine_point(e, "op8", "P000", &p8, NULL), SR_OK, "%s: op8's masters after the drop", ctx);
    }
    total_checkpoints += ck - bck;
    total_time_checkpoints += tck - btck;
    cr_assert_eq(st.log_next_seq - 1 - ck, out->events - bck,
                 "%s: the log holds %" PRIu64 " events besides %" PRIu64 " checkpoints, %" PRIu64 " acknowledged", ctx,
                 st.log_next_seq - 1 - ck, ck, out->events - bck);
    sr_buf sb, strs;
    sr_buf_init(&sb);
    sr_buf_init(&strs);
    for (int k = 0; k < NPOINTS; k++) {
        sr_sample *want;
        size_t nw = et_model_range(out->m, f->points[k], INT64_MIN / 4, INT64_MAX / 4, &want);
        sb.len = strs.len = 0;
        int more = 0;
        sr_range_q q = {.point = f->points[k], .from = INT64_MIN / 4, .to = INT64_MAX / 4, .after = INT64_MIN};
        cr_assert_eq(sr_engine_range(e, &q, &sb, &strs, &more), SR_OK);
        sr_sample *v = (sr_sample *)sb.data;
        size_t n = sb.len / sizeof *v;
        check_range(out, f, k, v, n, ctx, "point");
        sr_sample l;
        int found = 0;
        cr_assert_eq(sr_engine_latest(e, &f->points[k], 1, &l, &found, NULL), SR_OK);
        cr_assert(found && nw && l.ts == want[nw - 1].ts, "%s: point %d: latest", ctx, k);
        free(want);
    }
    sr_buf_release(&sb);
    sr_buf_release(&strs);
    /* users' sessions: exactly the acknowledged ones, less the revoked */
    for (int c = 0; c < NCMD; c++) {
        if (c != SESS_U2 && c != SESS_U1) continue;
        uint8_t h[32];
        sess_hash(c, h);
        sr_session_rec s;
        int want = out->acked_cmd[c] && !(c == SESS_U1 && out->acked_cmd[SESS_REVOKE_U1]);
        cr_assert_eq(sr_session_verify(e, h, SR_ACTOR_USER, SESS_NOW, &s), want ? SR_OK : SR_ENOTFOUND,
                     "%s: the session of command %d (acknowledged %d, revocation acknowledged %d)", ctx, c,
                     out->acked_cmd[c], out->acked_cmd[SESS_REVOKE_U1]);
    }
    /* command 8's document and file: both, owned by APP1, or neither */
    uint64_t rev = 0;
    int okind = 0;
    char owner[256] = "";
    int drc = sr_engine_doc_get(e, "op1", "reports", "d0", &rev, NULL, &okind, owner);
    sr_rec fr = SR_REC_INIT;
    sr_file_meta fm;
    int frc = sr_read_file(e, "op1", "reports/f0", &fr, &fm);
    if (out->acked_cmd[STORE_CMD]) {
        cr_assert(drc == SR_OK && rev == 1 && okind == SR_ACTOR_APP && !strcmp(owner, "APP1"),
                  "%s: the acknowledged document (%s, owner %s)", ctx, sr_err_name(drc), owner);
        cr_assert(frc == SR_OK && fm.owner_kind == SR_ACTOR_APP && !strcmp(fm.owner, "APP1"),
                  "%s: the acknowledged file (%s)", ctx, sr_err_name(frc));
    } else
        cr_assert(drc == SR_ENOTFOUND && frc == SR_ENOTFOUND, "%s: a document or file of a refused command", ctx);
    sr_rec_close(&fr);
    /* the base's document and file: cut exactly when command 16 was acknowledged */
    drc = sr_engine_doc_get(e, "op1", "ret", "old", &rev, NULL, NULL, NULL);
    fr = (sr_rec)SR_REC_INIT;
    frc = sr_read_file(e, "op1", "ret/old.bin", &fr, &fm);
    sr_rec_close(&fr);
    int cut = out->acked_cmd[RETENTION_CMD];
    cr_assert(drc == (cut ? SR_ENOTFOUND : SR_OK) && frc == drc,
              "%s: the base's document (%s) and file (%s), the retention acknowledged %d", ctx, sr_err_name(drc),
              sr_err_name(frc), cut);
    /* the login policy: set exactly when its command was acknowledged */
    sr_rec pr = SR_REC_INIT;
    sr_login_policy_rec lp;
    int prc = sr_read_login_policy(e, "op1", &pr, &lp);
    cr_assert_eq(prc, out->acked_cmd[POLICY_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the login policy (acknowledged %d)", ctx,
                 out->acked_cmd[POLICY_CMD]);
    cr_assert(prc || lp.totp_required, "%s: the login policy's content", ctx);
    sr_rec_close(&pr);
    /* APP1's push mark: there exactly when its command was acknowledged */
    uint64_t through = 0;
    int mrc = sr_engine_push_mark(e, "op1", "APP1", &through);
    cr_assert_eq(mrc, out->acked_cmd[PUSH_MARK_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the push mark (acknowledged %d)", ctx,
                 out->acked_cmd[PUSH_MARK_CMD]);
    cr_assert(mrc || through == PUSH_MARK_THROUGH, "%s: the push mark's seq", ctx);
    /* the notifier's mark: there exactly when its command was acknowledged */
    int nrc = sr_engine_notify_mark(e, &through);
    cr_assert_eq(nrc, out->acked_cmd[NOTIFY_MARK_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the notify mark (acknowledged %d)",
                 ctx, out->acked_cmd[NOTIFY_MARK_CMD]);
    cr_assert(nrc || through == NOTIFY_THROUGH, "%s: the notify mark's seq", ctx);
    /* command 3's replicated file: there exactly when acknowledged, with its origin and checkpoint, naming a
     * data key of op1 in this keyring (or none), never nf's */
    {
        sr_rec br = SR_REC_INIT;
        sr_file_meta bm;
        int brc = sr_read_file(e, "op1", "cluster/f3", &br, &bm);
        cr_assert_eq(brc, out->acked_cmd[BLOBFILE_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the replicated file (acknowledged %d)",
                     ctx, out->acked_cmd[BLOBFILE_CMD]);
        if (brc == SR_OK) {
            sr_keyinfo ki;
            cr_assert_neq(bm.key_id, (uint32_t)BLOB_NF_KEY, "%s: the replicated file names nf's key", ctx);
            cr_assert(!bm.key_id || (e->keyring && sr_keyring_info(e->keyring, bm.key_id, &ki) == SR_OK &&
                                     ki.cls == SR_KC_DATA && !strcmp(ki.operator_id, "op1")),
                      "%s: the replicated file's key %08x is no data key of op1 here", ctx, bm.key_id);
        }
        sr_rec_close(&br);
        uint64_t bloc = 0, bckpt = 0;
        cr_assert_eq(sr_engine_origin_seen(e, "nf", 3, &bloc), out->acked_cmd[BLOBFILE_CMD] ? SR_OK : SR_ENOTFOUND,
                     "%s: the origin nf:3", ctx);
        cr_assert_eq(sr_engine_cluster_ckpt(e, 7, 2, &bckpt), SR_OK);
        cr_assert_eq(bckpt, out->acked_cmd[BLOBFILE_CMD] ? BLOB_STREAM_SEQ : 0, "%s: the checkpoint of nf's file", ctx);
    }
    /* commands 5 and 7: the erasure's intent open exactly when 5 was acknowledged and 7's result of it was not */
    int skopen = 0;
    cr_assert_eq(sr_engine_skey_pending(e, skey_count, &skopen), SR_OK);
    cr_assert_eq(skopen, out->acked_cmd[SKEY_INTENT_CMD] && !out->skey_closed,
                 "%s: %d open stream key erasures (intent acknowledged %d, its result %d)", ctx, skopen,
                 out->acked_cmd[SKEY_INTENT_CMD], out->skey_closed);
    /* command 29's origin and checkpoint: both there exactly when its values are (acknowledged) */
    uint64_t oloc = 0, ock = 0;
    int orc = sr_engine_origin_seen(e, "nx", 29, &oloc);
    cr_assert_eq(orc, out->acked_cmd[ORIGIN_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the origin nx:29 (acknowledged %d)", ctx,
                 out->acked_cmd[ORIGIN_CMD]);
    cr_assert_eq(sr_engine_cluster_ckpt(e, 5, 2, &ock), SR_OK);
    cr_assert_eq(ock, out->acked_cmd[ORIGIN_CMD] ? ORIGIN_STREAM_SEQ : 0, "%s: the checkpoint (acknowledged %d)", ctx,
                 out->acked_cmd[ORIGIN_CMD]);
    /* its alias (nx:28, the .reg consumer): whole -- its origin iff its checkpoint -- and there when the
     * values it maps were acknowledged */
    uint64_t aloc = 0, ack = 0;
    int arc = sr_engine_origin_seen(e, "nx", 28, &aloc);
    cr_assert(arc == SR_OK || arc == SR_ENOTFOUND, "%s: the alias's origin: %s", ctx, sr_err_name(arc));
    cr_assert(arc == SR_OK || !out->acked_cmd[ORIGIN_CMD], "%s: values mapped by an alias that is not there", ctx);
    cr_assert_eq(sr_engine_cluster_ckpt(e, 5, 1, &ack), SR_OK);
    cr_assert_eq(ack, arc == SR_OK ? ORIGIN_STREAM_SEQ - 1 : 0, "%s: the alias's checkpoint (origin %s)", ctx,
                 sr_err_name(arc));
    /* command 1's held event: held exactly until its alias was acknowledged, then released once, after it */
    uint64_t nheld = 0, hloc = 0, haloc = 0;
    cr_assert_eq(sr_engine_cluster_held(e, &nheld, NULL, NULL, 0), SR_OK);
    cr_assert_eq(nheld, out->hold_stage == 1 ? 1 : 0, "%s: held events %" PRIu64 " (command 1 at stage %d)", ctx, nheld,
                 out->hold_stage);
    int hrc = sr_engine_origin_seen(e, "ny", 1, &hloc), harc = sr_engine_origin_seen(e, "ny", 2, &haloc);
    cr_assert_eq(hrc, out->hold_stage >= 1 ? SR_OK : SR_ENOTFOUND, "%s: the origin ny:1 (stage %d)", ctx,
                 out->hold_stage);
    cr_assert_eq(harc, out->hold_stage >= 2 ? SR_OK : SR_ENOTFOUND, "%s: the alias ny:2 (stage %d)", ctx,
                 out->hold_stage);
    if (out->hold_stage >= 2)
        cr_assert_gt(hloc, haloc, "%s: ny:1's values released after the alias (%" PRIu64 " <= %" PRIu64 ")", ctx, hloc,
                     haloc);
    /* command 27's revocation: there, whole, exactly when acknowledged */
    sr_rec rr = SR_REC_INIT;
    sr_reg_entry rv;
    int rvc = sr_read_registry(e, "op1", SR_RG_REVOKED, "APP1#1A", &rr, &rv);
    cr_assert_eq(rvc, out->acked_cmd[REVOKE_CMD] ? SR_OK : SR_ENOTFOUND, "%s: the revocation (acknowledged %d)", ctx,
                 out->acked_cmd[REVOKE_CMD]);
    cr_assert(rvc || (!strcmp(rv.name, "key lost") && rv.revoked_ms == 1700000000123), "%s: the revocation's content",
              ctx);
    sr_rec_close(&rr);
    /* ... and its signature requirement of P001 likewise */
    rvc = sr_read_registry(e, "op1", SR_RG_SIGREQ, "P001", &rr, &rv);
    cr_assert_eq(rvc, out->acked_cmd[REVOKE_CMD] ? SR_OK : SR_ENOTFOUND,
                 "%s: the signature requirement (acknowledged %d)", ctx, out->acked_cmd[REVOKE_CMD]);
    cr_assert(rvc || (!strcmp(rv.name, "valve") && rv.revoked_ms == 1700000000456),
              "%s: the signature requirement's content", ctx);
    sr_rec_close(&rr);
    /* the users: those of the acknowledged commands, each whole */
    sr_rec ur = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_list_users(e, &ur), SR_OK);
    int nu = 0, more;
    while ((more = sr_rec_next_user(&ur, &u)) == 1) {
        int base_user = 0;
        for (int i = 0; i < 3; i++) base_user |= !strcmp(BASE_USERS[i], u.id);
        if (base_user) continue; /* the base's (base_pending) */
        nu++;
        int known = 0;
        for (int c = 0; c < NCMD; c++) known |= !strcmp(f->cmds[c].user, u.id);
        cr_assert(known && u.n_roles == 1 && u.temporary && password_ok(&u), "%s: user %s",
                  ctx, u.id);
    }
    cr_assert_eq(more, 0, "%s: a user record does not decode", ctx);
    sr_rec_close(&ur);
    cr_assert_eq(nu, out->users, "%s: %d users in the index, %d acknowledged", ctx, nu, out->users);
    /* the pending change: approved and applied exactly when its approval was acknowledged */
    sr_pending pc;
    cr_assert_eq(sr_read_pending(e, "pc", &ur, &pc), SR_OK, "%s: the base's pending change", ctx);
    cr_assert_str_eq(pc.state, out->acked_cmd[PEND_APPROVE] ? "approved" : "requested", "%s: pending change", ctx);
    cr_assert_eq(sr_read_user(e, "pu", &ur, &u), SR_OK);
    cr_assert_str_eq(u.roles[0], out->acked_cmd[PEND_APPROVE] ? "operator_admin" : "operator_general",
                     "%s: the pending change's user (approval acknowledged: %d)", ctx, out->acked_cmd[PEND_APPROVE]);
    /* the audit trail (`audit`): a row for each acknowledged user's creation
     * and session command, none for a refused one */
    sr_audit_query aq = {.kind = "user", .limit = 1000};
    sr_audit_rec ar;
    int na = 0;
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    while ((more = sr_rec_next_audit(&ur, &ar)) == 1) {
        int known = 0, inbase = 0;
        for (int i = 0; i < 3; i++) inbase |= !strncmp(ar.target, "user:", 5) && !strcmp(ar.target + 5, BASE_USERS[i]);
        if (inbase) continue; /* the base's users (and its pending change's) */
        for (int c = 0; c < NCMD; c++) known |= f->cmds[c].user[0] && !strcmp(ar.target + 5, f->cmds[c].user);
        cr_assert(known && !strcmp(ar.action, "created") && !strncmp(ar.target, "user:", 5), "%s: audit row %s %s",
                  ctx, ar.action, ar.target);
        na++;
    }
    cr_assert_eq(more, 0, "%s: an audit row does not decode", ctx);
    cr_assert_eq(na, out->users, "%s: %d users' rows in the audit trail, %d acknowledged", ctx, na, out->users);
    aq.kind = "session,logout";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    int want_sess = out->acked_cmd[SESS_U1] + out->acked_cmd[SESS_U2] + out->acked_cmd[SESS_REVOKE_U1];
    cr_assert_eq((int)sr_rec_count(&ur), want_sess, "%s: %zu session rows in the audit trail, %d acknowledged", ctx,
                 sr_rec_count(&ur), want_sess);
    /* command 11's correction: its audit row exactly when acknowledged (its
     * values are in the model above) */
    aq.kind = "correction";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), out->acked_cmd[CORR_CMD], "%s: %zu correction rows, acknowledged %d", ctx,
                 sr_rec_count(&ur), out->acked_cmd[CORR_CMD]);
    /* issue #18: a "write" row per WriteAudit of op1 in the log (each
     * covering exactly its writes: log_own_events_x) */
    aq.kind = "write";
    aq.op = "op1";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((uint64_t)sr_rec_count(&ur), wa_log, "%s: %zu write rows in the audit trail, %" PRIu64 " WriteAudit events in the log",
                 ctx, sr_rec_count(&ur), wa_log);
    aq.op = NULL;
    aq.kind = "alive";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), out->acked_cmd[ALIVE_CMD], "%s: %zu alive rows in the audit trail, %d acknowledged",
                 ctx, sr_rec_count(&ur), out->acked_cmd[ALIVE_CMD]);
    /* command 20's alive status: GW1's row exactly when acknowledged */
    cr_assert_eq(sr_list_alive(e, "op1", &ur), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), out->acked_cmd[ALIVE_CMD], "%s: %zu alive rows, acknowledged %d", ctx,
                 sr_rec_count(&ur), out->acked_cmd[ALIVE_CMD]);
    if (out->acked_cmd[ALIVE_CMD]) {
        sr_alive_rec al;
        cr_assert_eq(sr_rec_next_alive(&ur, &al), 1, "%s: the alive row decodes", ctx);
        cr_assert(!strcmp(al.id, "GW1") && al.state == SR_AS_OFFLINE && al.reason == SR_AR_WILL && !strcmp(al.will, "applied"),
                  "%s: GW1's alive row", ctx);
    }
    /* command 25's batch of reads: its row exactly when acknowledged */
    aq.kind = "read";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), 2 * out->acked_cmd[ACCESS_CMD],
                 "%s: %zu read rows in the audit trail, %d acknowledged (two events: old and packed)", ctx,
                 sr_rec_count(&ur), out->acked_cmd[ACCESS_CMD]);
    for (int k = 0; k < 2 * out->acked_cmd[ACCESS_CMD]; k++) {
        sr_audit_rec ra;
        cr_assert_eq(sr_rec_next_audit(&ur, &ra), 1, "%s: the read row decodes", ctx);
        cr_assert(!strcmp(ra.actor, "APP1") && !strcmp(ra.op, "op1") && !strcmp(ra.outcome, "partly refused") &&
                      !strcmp(ra.detail, "2 request(s), 1 answered, 1 refused (E2003 x1); 1 value(s), 170 byte(s); 2 "
                                         "data point(s): P0,NOPE"),
                  "%s: read row %d: %s %s %s %s", ctx, k, ra.actor, ra.op, ra.outcome, ra.detail);
    }
    /* command 28's batch of refusals: its row exactly when acknowledged */
    aq.kind = "refused";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), out->acked_cmd[REFUSAL_CMD],
                 "%s: %zu refused rows in the audit trail, %d acknowledged", ctx, sr_rec_count(&ur),
                 out->acked_cmd[REFUSAL_CMD]);
    if (out->acked_cmd[REFUSAL_CMD]) {
        sr_audit_rec ra;
        cr_assert_eq(sr_rec_next_audit(&ur, &ra), 1, "%s: the refused row decodes", ctx);
        cr_assert(!strcmp(ra.actor, "GW1") && !strcmp(ra.op, "op1") && !strcmp(ra.outcome, "E5003") &&
                      !strncmp(ra.detail, "2 refused (+3 more", 18),
                  "%s: the refused row: %s %s %s %s", ctx, ra.actor, ra.op, ra.outcome, ra.detail);
    }
    aq.kind = "backup";
    cr_assert_eq(sr_list_audit(e, &aq, &ur, &more), SR_OK);
    cr_assert_eq((int)sr_rec_count(&ur), out->acked_cmd[BACKUP_CMD], "%s: %zu backup rows in the audit trail, %d acknowledged",
                 ctx, sr_rec_count(&ur), out->acked_cmd[BACKUP_CMD]);
    sr_rec_close(&ur);
    /* command 15's rotation: its KeyEvent in the log exactly when acknowledged */
    cr_assert_eq((int)rotated, out->acked_cmd[KEY_ROTATE_CMD], "%s: %" PRIu64 " rotations in the log, %d acknowledged",
                 ctx, rotated, out->acked_cmd[KEY_ROTATE_CMD]);
    if (out->acked_cmd[KEY_ROTATE_CMD]) {
        char kd[1200];
        snprintf(kd, sizeof kd, "%s/keys", db);
        sr_keyring *kr = NULL;
        sr_errinfo kei;
        cr_assert_eq(sr_keyring_open(NULL, kd, &g_key, "test", 0, &kr, &kei), SR_OK, "%s: %s", ctx, kei.msg);
        uint32_t id;
        sr_keyinfo ki;
        cr_assert_eq(sr_keyring_active(kr, "op1", SR_KC_DATA, &id), SR_OK);
        cr_assert_eq(sr_keyring_info(kr, id, &ki), SR_OK);
        cr_assert_geq(ki.epoch, 2, "%s: an acknowledged rotation is in the keyring", ctx);
        sr_keyring_close(kr);
    }
    /* command 17's destruction: its KeyEvent exactly when acknowledged; a
     * tombstone only with it; its key's records erased only with a tombstone */
    cr_assert_eq((int)destroyed, out->acked_cmd[KEY_DESTROY_CMD] + out->acked_cmd[AUDIT_DESTROY_CMD],
                 "%s: %" PRIu64 " destructions in the log, %d + %d acknowledged", ctx, destroyed,
                 out->acked_cmd[KEY_DESTROY_CMD], out->acked_cmd[AUDIT_DESTROY_CMD]);
    /* command 22's restatement: in the log exactly when acknowledged (the
     * alarm's state as command 18 left it: checked below) */
    cr_assert_eq((int)restated, out->acked_cmd[AUDIT_RESTATE_CMD], "%s: %" PRIu64 " restated alarms, %d acknowledged",
                 ctx, restated, out->acked_cmd[AUDIT_RESTATE_CMD]);
    {
        char kd[1200];
        snprintf(kd, sizeof kd, "%s/keys", db);
        sr_keyring *kr = NULL;
        sr_errinfo kei;
        cr_assert_eq(sr_keyring_open(NULL, kd, &g_key, "test", 0, &kr, &kei), SR_OK, "%s: %s", ctx, kei.msg);
        sr_keyinfo ki;
        cr_assert_eq(sr_keyring_info(kr, f->op9_key, &ki), SR_OK);
        int gone = ki.state == SR_KS_DESTROYED;
        cr_assert(!gone || destroyed, "%s: op9's key is destroyed without its KeyEvent in the log", ctx);
        /* command 23: op9's audit key the same way (never half: a tombstone
         * only with its event, all its records erased with it) */
        cr_assert_eq(sr_keyring_info(kr, f->op9_audit_key, &ki), SR_OK);
        int agone = ki.state == SR_KS_DESTROYED;
        cr_assert(!agone || destroyed, "%s: op9's audit key is destroyed without its KeyEvent in the log", ctx);
        cr_assert_eq(erased, (gone ? 2 : 0) + (agone ? f->op9_audit_recs : 0),
                     "%s: %" PRIu64 " erased records (data key destroyed: %d, audit key: %d)", ctx, erased, gone, agone);
        sr_keyring_close(kr);
    }
    /* command 18's acknowledgement: there exactly when acknowledged; the
     * alarm open either way (the condition's one) */
    {
        sr_rec alr = SR_REC_INIT;
        sr_alarm al;
        cr_assert_eq(sr_read_alarm(e, f->alarm_id, &alr, &al), SR_OK, "%s: the base's alarm", ctx);
        int acked = out->acked_cmd[ALARM_CMD];
        cr_assert_str_eq(al.state, acked ? "acknowledged" : "raised", "%s: the alarm is %s, its ack acknowledged %d", ctx,
                         al.state, acked);
        cr_assert(!acked || (!strcmp(al.acked_by, "admin") && !strcmp(al.ack_comment, "on it")), "%s: who, comment", ctx);
        cr_assert_eq(sr_list_open_alarms(e, &alr), SR_OK);
        cr_assert_eq(sr_rec_count(&alr), 1, "%s: one open alarm", ctx);
        sr_rec_close(&alr);
    }
    /* command 26: the state at the end from a snapshot equals the full replay */
    {
        sr_engine *at[2] = {NULL, NULL};
        sr_state_info in[2];
        sr_errinfo sei = {0};
        for (int full = 0; full < 2; full++) {
            e->o.state_full_replay = full;
            cr_assert_eq(sr_engine_state_open(e, INT64_MAX / 2, &at[full], &in[full], &sei), SR_OK, "%s: state: %s",
                         ctx, sei.msg);
            cr_assert_not_null(at[full]);
        }
        e->o.state_full_replay = 0;
        cr_assert_eq(in[0].seq, in[1].seq);
        cr_assert_eq(in[1].snap_seq, 0);
        cr_assert_leq(in[0].snap_seq, in[0].seq);
        if (out->acked_cmd[SNAP_CMD])
            cr_assert_geq(in[0].snap_seq, out->snap_cmd_seq,
                          "%s: command 26 was acknowledged (seq %" PRIu64 ") but the newest snapshot is %" PRIu64, ctx,
                          out->snap_cmd_seq, in[0].snap_seq);
        for (int k = 0; k < NPOINTS; k++) {
            sr_sample a, b;
            memset(&a, 0, sizeof a); /* the union's bytes past the type's member compare equal */
            memset(&b, 0, sizeof b);
            int fa = 0, fb = 0;
            cr_assert_eq(sr_engine_latest(at[0], &f->points[k], 1, &a, &fa, NULL), SR_OK);
            cr_assert_eq(sr_engine_latest(at[1], &f->points[k], 1, &b, &fb, NULL), SR_OK);
            cr_assert_eq(fa, fb, "%s: point %d: a latest value from the snapshot %" PRIu64 " and not the replay", ctx, k,
                         in[0].snap_seq);
            cr_assert(!fa || (a.ts == b.ts && a.quality == b.quality && !memcmp(&a.v, &b.v, sizeof a.v)),
                      "%s: point %d: the latest value from the snapshot differs from the replay's", ctx, k);
        }
        size_t n[2][2];
        for (int i = 0; i < 2; i++) {
            sr_rec r = SR_REC_INIT;
            int rc = sr_list_masters(at[i], "op1", SR_MK_DATA_POINT, &r);
            n[i][0] = rc == SR_OK ? sr_rec_count(&r) : 0;
            sr_rec_close(&r);
            rc = sr_list_registry(at[i], "op1", SR_RG_REVOKED, &r);
            n[i][1] = rc == SR_OK ? sr_rec_count(&r) : 0;
            sr_rec_close(&r);
            cr_assert_eq(sr_engine_state_close(at[i]), SR_OK);
        }
        cr_assert(n[0][0] == n[1][0] && n[0][1] == n[1][1], "%s: masters or registry differ from the replay's", ctx);
        /* command 21's LogTrim deleted the snapshots before the horizon
         * (statesnap.c invariant 4): the oldest left has its S+1 in the log */
        MDB_txn *t;
        cr_assert_eq(sr_index_read_begin(e->ix, &t), SR_OK);
        MDB_cursor *c;
        cr_assert_eq(mdb_cursor_open(t, sr_index_dbi(e->ix, SR_DB_STATESNAP), &c), 0);
        MDB_val K, V;
        int r = (mdb_cursor_get)(c, &K, &V, MDB_FIRST);
        if (r == 0 && K.mv_size == 9 && ((uint8_t *)K.mv_data)[0] == 0) {
            uint64_t oldest = get_be64((uint8_t *)K.mv_data + 1);
            cr_assert_geq(oldest + 1, first, "%s: a snapshot at %" PRIu64 " is before the log's first seq %" PRIu64, ctx,
                          oldest, first);
        }
        mdb_cursor_close(c);
        sr_index_read_end(e->ix, t);
        /* the thinning (statesnap.c invariant 5) committed with its group or
         * not at all: the set is one the rule leaves as it is, and bounded */
        uint64_t all[256];
        uint8_t drop[256];
        size_t ns = 0;
        cr_assert_eq(sr__snap_list(e, all, 256, &ns), SR_OK);
        cr_assert_leq(ns, 256);
        sr__snap_thin(all, ns, 3, drop);
        for (size_t i = 0; i < ns; i++)
            cr_assert(!drop[i], "%s: snapshot %" PRIu64 " should have been thinned with its group", ctx, all[i]);
        cr_assert_leq(ns, 3 + 2 * (64 - (size_t)__builtin_clzll(all[ns ? ns - 1 : 0] | 1)) + 2,
                      "%s: %zu snapshots kept", ctx, ns);
    }
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK, "%s: close after reopen", ctx);
    if (first > 1) { /* the trimmed log verifies from its start, against the LogTrim's hash */
        char ld[1200], kd[1200];
        snprintf(ld, sizeof ld, "%s/log", db);
        snprintf(kd, sizeof kd, "%s/keys", db);
        sr_keyring *kr = NULL;
        sr_errinfo kei;
        cr_assert_eq(sr_keyring_open(NULL, kd, &g_key, "test", 0, &kr, &kei), SR_OK, "%s: %s", ctx, kei.msg);
        sr_log_opts lo = {.readonly = 1, .key = &g_key, .keys = sr_keyring_keys(kr)};
        sr_log_report lr;
        int vrc = sr_log_verify(ld, &lo, &lr, &kei);
        if (!vrc) vrc = sr_engine_log_trim_check(ld, &lo, &lr, &kei);
        cr_assert_eq(vrc, SR_OK, "%s: verify of the trimmed log: %s", ctx, kei.msg);
        cr_assert(lr.trim_checked && lr.first_seq == first, "%s: the trim record", ctx);
        sr_keyring_close(kr);
    }
    char ix[1200];
    snprintf(ix, sizeof ix, "%s/rebuilt-index", dir);
    sr_engine_opts ro = opts(NULL, ix);
    sr_errinfo ei;
    cr_assert_eq(sr_engine_rebuild(db, &ro, &ei), SR_OK, "%s: rebuild: %s", ctx, ei.msg);
    e = open_at(db, &ro);
    cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "%s: the index differs from one rebuilt from the log", ctx);
}

static void outcome_init(outcome *out, const fixture *f)
{
    memset(out, 0, sizeof *out);
    out->m = et_model_new();
    out->events = f->base_events;
    for (int k = 0; k < NPOINTS; k++) {
        sr_sample *s;
        size_t n = et_model_range(f->m, f->points[k], INT64_MIN / 4, INT64_MAX / 4, &s);
        for (size_t i = 0; i < n; i++) et_model_put(out->m, f->points[k], &s[i]);
        free(s);
    }
}

/* ---- (a) file-system faults --------------------------------------------- */

static void run_vfs_faults(vf_kind kind, const char *kname)
{
    fixture f;
    fixture_init(&f);
    unsigned long k;
    int total_refused = 0, total_acked = 0;
    for (k = fault_first(kname); k < 5000; k += fault_stride()) {
        fresh_db();
        outcome out;
        outcome_init(&out, &f);
        sr_engine_opts o = opts_moving(&vfs_faulty);
        vfs_faulty_arm(0, kind);
        sr_engine *e = open_at(db, &o);
        vfs_faulty_arm(k, kind);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "%s k=%lu", kname, k);
        submit_all(e, &f, &out, ctx);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, kind);
        sr_engine_stats st;
        sr_engine_get_stats(e, &st);
        total_extends += st.extends;
        int crc = sr_engine_close(e);
        cr_assert(crc == SR_OK || crc == SR_EPOISONED || crc == SR_EIO || crc == SR_ENOSPC, "%s: close: %s", ctx,
                  sr_err_name(crc));
        check_db(&f, &out, ctx);
        total_refused += out.refused;
        total_acked += out.acked;
        et_model_free(out.m);
        if (!fired) {
            cr_assert_eq(out.acked, NCMD, "%s: no fault, yet a command was refused", ctx);
            break; /* k is past the last call: every call has failed once */
        }
    }
    cr_log_info("%s: %lu runs, %d acknowledged, %d refused", kname, k, total_acked, total_refused);
    cr_assert_gt(k, 10, "the fault loop should have covered many calls");
    cr_assert_gt(total_refused, 0, "some fault should have refused a command");
    cr_log_info("%s: %" PRIu64 " heads checkpoints, %" PRIu64 " by time", kname, total_checkpoints, total_time_checkpoints);
    cr_assert_gt(total_checkpoints, 0, "no heads checkpoint among the faults");
    cr_assert_gt(total_time_checkpoints, 0, "no heads checkpoint of reason \"time\" among the faults");
    cr_assert_gt(total_extends, 0, "no chunk a checkpoint cut short was extended among the faults");
    fixture_release(&f);
}

Test(engine_fault, eio_at_every_log_call) { run_vfs_faults(VF_EIO, "EIO"); }
Test(engine_fault, enospc_at_every_log_call) { run_vfs_faults(VF_ENOSPC, "ENOSPC"); }
Test(engine_fault, short_write_at_every_log_call) { run_vfs_faults(VF_SHORT, "SHORT"); }
Test(engine_fault, fsync_failure_at_every_log_sync) { run_vfs_faults(VF_SYNC_FAIL, "FSYNC"); }

/* ---- (b) allocation failures --------------------------------------------- */

Test(engine_fault, allocation_failure_at_every_allocation)
{
    fault_alloc_install(); /* before anything is opened */
    fault_alloc_arm(0);
    fixture f;
    fixture_init(&f);
    unsigned long k;
    int total_refused = 0;
    for (k = fault_first("ENOMEM"); k < 20000; k += fault_stride()) {
        fresh_db();
        outcome out;
        outcome_init(&out, &f);
        sr_engine_opts o = opts(NULL, NULL);
        sr_engine *e = open_at(db, &o);
        fault_alloc_arm(k);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "ENOMEM k=%lu", k);
        submit_all(e, &f, &out, ctx);
        int fired = fault_alloc_fired();
        fault_alloc_arm(0);
        int crc = sr_engine_close(e);
        cr_assert(crc == SR_OK || crc == SR_EPOISONED, "%s: close: %s", ctx, sr_err_name(crc));
        check_db(&f, &out, ctx);
        total_refused += out.refused;
        et_model_free(out.m);
        if (!fired) {
            cr_assert_eq(out.acked, NCMD, "%s: no fault, yet a command was refused", ctx);
            break;
        }
    }
    cr_log_info("ENOMEM: %lu runs, %d refused", k, total_refused);
    cr_assert_gt(k, 10);
    cr_assert_gt(total_refused, 0);
    fixture_release(&f);
    fault_alloc_uninstall();
}

/* Open under allocation faults: it succeeds or returns SR_ENOMEM -- never
 * aborts, also when the failing allocation is the writer thread's own -- and
 * the data is untouched. */
Test(engine_fault, open_fails_cleanly_at_every_allocation)
{
    fault_alloc_install();
    fault_alloc_arm(0);
    fixture f;
    fixture_init(&f);
    unsigned long k;
    for (k = fault_first("open ENOMEM"); k < 20000; k += fault_stride()) {
        fresh_db();
        outcome out;
        outcome_init(&out, &f);
        sr_engine_opts o = opts(NULL, NULL);
        fault_alloc_arm(k);
        sr_engine *e = NULL;
        sr_errinfo ei;
        int rc = sr_engine_open(db, &o, &e, &ei);
        cr_assert(rc == SR_OK || rc == SR_ENOMEM, "k=%lu: open: %s: %s", k, sr_err_name(rc), ei.msg);
        if (rc == SR_OK) cr_assert_eq(sr_engine_close(e), SR_OK, "k=%lu: close", k);
        int fired = fault_alloc_fired();
        fault_alloc_arm(0);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "open ENOMEM k=%lu", k);
        check_db(&f, &out, ctx);
        et_model_free(out.m);
        if (!fired) break;
    }
    cr_assert_gt(k, 10);
    fixture_release(&f);
    fault_alloc_uninstall();
}

/* ---- (c) resuming after a failed write (docs/durability.md §7) ----------- */

static void alert_count(void *ctx, int error, const char *msg)
{
    if (getenv("FAULT_DEBUG")) fprintf(stderr, "ALERT %d: %s\n", error, msg);
    if (error) ++*(int *)ctx;
}

static int transient(int rc) { return rc == SR_EIO || rc == SR_ENOSPC || rc == SR_EPOISONED; }

/* wait (bounded) until the writer has resumed; 1 if it did */
static int wait_resumed(sr_engine *e)
{
    for (int i = 0; i < 20000; i++) {
        if (sr_engine_write_state(e, NULL) == SR_OK) return 1;
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    return 0;
}

/* For every k: fail the k-th log call; a refused command is sent again (as
 * a gateway does) once the engine says it writes again, without a reopen.
 * Then every command is stored exactly once, the live engine answers the
 * model, its content (index and heads) equals the reopened and the rebuilt
 * one, and it closes cleanly. */
static void run_recovery(vf_kind kind, const char *kname)
{
    fixture f;
    fixture_init(&f);
    unsigned long k;
    int resumed = 0;
    for (k = fault_first(kname); k < 5000; k += fault_stride()) {
        fresh_db();
        outcome out;
        outcome_init(&out, &f);
        sr_engine_opts o = opts_moving(&vfs_faulty);
        o.recover_ms = 1;
        int alerts = 0;
        o.alert = alert_count;
        o.alert_ctx = &alerts;
        vfs_faulty_arm(0, kind);
        sr_engine *e = open_at(db, &o);
        vfs_faulty_arm(k, kind);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "%s resume k=%lu", kname, k);
        for (int c = 0; c < NCMD; c++) {
            command *cm = &f.cmds[c];
            sr_result res;
            int rc;
            for (int attempt = 0;; attempt++) {
                rc = cmd_run(e, cm, c, &res, &out.events);
                if (rc == SR_OK) break;
                cr_assert(transient(rc), "%s: command %d: %s (%s)", ctx, c, sr_err_name(rc), res.err.msg);
                cr_assert_lt(attempt, 3, "%s: command %d refused again and again", ctx, c);
                cr_assert(wait_resumed(e), "%s: the engine did not resume after %s", ctx, sr_err_name(rc));
                resumed++;
                /* (command 21's unlink may fail with no write failing: the sweep says so itself) */
                cr_assert(alerts > 0 || c == SEGDROP_CMD, "%s: command %d: the failed write (%s: %s) was not reported",
                          ctx, c, sr_err_name(rc), res.err.msg);
            }
            out.acked++;
            out.acked_cmd[c] = 1;
            if (c == SKEY_RESULT_CMD) out.skey_closed = skey_closing;
            if (res.duplicate) {
                cr_assert_eq(c, NCMD - 1, "%s: command %d is a duplicate", ctx, c);
                continue;
            }
            model_add(&out, cm);
        }
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, kind);
        /* the live engine, after the resume, answers exactly the model */
        sr_buf sb, strs;
        sr_buf_init(&sb);
        sr_buf_init(&strs);
        for (int p = 0; p < NPOINTS; p++) {
            sr_sample *want;
            size_t nw = et_model_range(out.m, f.points[p], INT64_MIN / 4, INT64_MAX / 4, &want);
            sb.len = strs.len = 0;
            int more = 0;
            sr_range_q q = {.point = f.points[p], .from = INT64_MIN / 4, .to = INT64_MAX / 4, .after = INT64_MIN};
            cr_assert_eq(sr_engine_range(e, &q, &sb, &strs, &more), SR_OK);
            size_t n = sb.len / sizeof(sr_sample);
            (void)nw;
            check_range(&out, &f, p, (sr_sample *)sb.data, n, ctx, "live point");
            free(want);
        }
        sr_buf_release(&sb);
        sr_buf_release(&strs);
        uint8_t live[32];
        cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
        assert_crash_copy_equals(live, ctx); /* a clean close may add a checkpoint: compare a crash's reopen */
        cr_assert_eq(sr_engine_close(e), SR_OK, "%s: close after the resume", ctx);
        check_db(&f, &out, ctx);
        et_model_free(out.m);
        if (!fired) break;
    }
    cr_log_info("%s: %lu runs, %d resumes, %" PRIu64 " heads checkpoints by time", kname, k, resumed,
                total_time_checkpoints);
    cr_assert_gt(k, 10);
    cr_assert_gt(total_time_checkpoints, 0, "no heads checkpoint of reason \"time\" among the faults");
    cr_assert_gt(resumed, 0, "some fault should have stopped and resumed the writer");
    fixture_release(&f);
}

Test(engine_fault, resume_after_eio_at_every_log_call) { run_recovery(VF_EIO, "EIO"); }
Test(engine_fault, resume_after_enospc_at_every_log_call) { run_recovery(VF_ENOSPC, "ENOSPC"); }
Test(engine_fault, resume_after_short_write_at_every_log_call) { run_recovery(VF_SHORT, "SHORT"); }
Test(engine_fault, resume_after_fsync_failure_at_every_log_sync) { run_recovery(VF_SYNC_FAIL, "FSYNC"); }

/* No space while opening (ENOSPC at each log call of the open): the engine
 * opens read-only instead of failing, says so, serves the stored data and
 * refuses writes with SR_ENOSPC; nothing changes on disk. */
Test(engine_fault, full_disk_at_open_opens_read_only)
{
    fixture f;
    fixture_init(&f);
    unsigned long k;
    int ro_runs = 0;
    for (k = fault_first("open ENOSPC"); k < 5000; k += fault_stride()) {
        fresh_db();
        outcome out;
        outcome_init(&out, &f);
        int alerts = 0;
        sr_engine_opts o = opts(&vfs_faulty, NULL);
        o.readonly_on_nospace = 1;
        o.alert = alert_count;
        o.alert_ctx = &alerts;
        vfs_faulty_arm(k, VF_ENOSPC);
        sr_engine *e = NULL;
        sr_errinfo ei;
        int rc = sr_engine_open(db, &o, &e, &ei);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, VF_ENOSPC);
        cr_assert_eq(rc, SR_OK, "k=%lu: open: %s: %s", k, sr_err_name(rc), ei.msg);
        if (sr_engine_write_state(e, NULL) == SR_ENOSPC) {
            ro_runs++;
            cr_assert_gt(alerts, 0, "k=%lu: read-only without an alert", k);
            sr_buf ev;
            sr_buf_init(&ev);
            size_t len = f.cmds[0].lens[0];
            sr_slice sl = {f.cmds[0].bytes.data, len};
            sr_result res;
            cr_assert_eq(sr_engine_submit_wait(e, &sl, 1, &res), SR_ENOSPC, "k=%lu: a write on a read-only engine", k);
            sr_buf_release(&ev);
            for (int p = 0; p < NPOINTS; p++) {
                sr_sample l;
                int found = 0;
                cr_assert_eq(sr_engine_latest(e, &f.points[p], 1, &l, &found, NULL), SR_OK);
                cr_assert(found, "k=%lu: read-only: point %d has no latest value", k, p);
            }
        }
        cr_assert_eq(sr_engine_close(e), SR_OK, "k=%lu: close", k);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "open ENOSPC k=%lu", k);
        check_db(&f, &out, ctx);
        et_model_free(out.m);
        if (!fired) break;
    }
    cr_assert_gt(ro_runs, 0, "some ENOSPC during the open should have opened read-only");
    fixture_release(&f);
}

/* The index commit of a group fails after its log append (durable in the
 * log, not in the index, not acknowledged): the resume applies it from the
 * log (the resent command is then a duplicate, stored once), the heads are
 * rebuilt with it, and the live engine equals a reopened and a rebuilt one. */
Test(engine_fault, resume_applies_a_durable_group_the_index_missed)
{
    fixture f;
    fixture_init(&f);
    cr_assert_eq(f.cmds[BLOBFILE_CMD].msgid[0], 0); /* command 3: nf's replicated file, a duplicate by its origin */
    cr_assert_eq(f.cmds[3].nev, 1);
    fresh_db();
    outcome out;
    outcome_init(&out, &f);
    int alerts = 0;
    sr_engine_opts o = opts(NULL, NULL);
    o.recover_ms = 1;
    o.alert = alert_count;
    o.alert_ctx = &alerts;
    o.test_fail_commit = 6; /* the group of command 3 (command 1 is three: held, alias + release, user) */
    sr_engine *e = open_at(db, &o);
    int failed = 0;
    for (int c = 0; c < NCMD; c++) {
        command *cm = &f.cmds[c];
        sr_result res;
        int rc = cmd_run(e, cm, c, &res, &out.events);
        if (c == 3) {
            cr_assert_eq(rc, SR_EIO, "command 3: %s", sr_err_name(rc));
            failed = 1;
            cr_assert(wait_resumed(e), "the engine did not resume");
            cr_assert_gt(alerts, 0);
            memset(&res, 0, sizeof res);
            rc = blobfile_run(e, cm, &res); /* (the consumer's resend: the same origin) */
            cr_assert_eq(rc, SR_OK, "command 3 again: %s (%s)", sr_err_name(rc), res.err.msg);
            cr_assert(res.duplicate, "command 3 again: the resume should have stored it from the log");
        } else
            cr_assert_eq(rc, SR_OK, "command %d: %s (%s)", c, sr_err_name(rc), res.err.msg);
        out.acked_cmd[c] = 1;
        if (c == SKEY_RESULT_CMD) out.skey_closed = skey_closing;
        if (res.duplicate && c != 3) continue;
        model_add(&out, cm);
    }
    cr_assert(failed);
    sr_buf sb, strs;
    sr_buf_init(&sb);
    sr_buf_init(&strs);
    for (int p = 0; p < NPOINTS; p++) {
        sr_sample *want;
        size_t nw = et_model_range(out.m, f.points[p], INT64_MIN / 4, INT64_MAX / 4, &want);
        sb.len = strs.len = 0;
        int more = 0;
        sr_range_q q = {.point = f.points[p], .from = INT64_MIN / 4, .to = INT64_MAX / 4, .after = INT64_MIN};
        cr_assert_eq(sr_engine_range(e, &q, &sb, &strs, &more), SR_OK);
        (void)nw;
        check_range(&out, &f, p, (sr_sample *)sb.data, sb.len / sizeof(sr_sample), "resumed", "live point");
        free(want);
    }
    sr_buf_release(&sb);
    sr_buf_release(&strs);
    uint8_t live[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    assert_crash_copy_equals(live, "resumed"); /* a clean close may add a checkpoint: compare a crash's reopen */
    cr_assert_eq(sr_engine_close(e), SR_OK);
    check_db(&f, &out, "index commit failed after the append");
    et_model_free(out.m);
    fixture_release(&f);
}

/* A group whose log append fails has already put its samples (and maybe a
 * flush) into the heads. After the resume the gateway sends something else
 * (not a resend: other values, fewer timestamps) under the same seqs: the
 * live engine must answer exactly what was acknowledged -- the failed
 * group's samples and flush are gone from the heads (they are rebuilt) --
 * and equal a reopened one. */
Test(engine_fault, resume_forgets_what_a_failed_group_put_in_the_heads)
{
    fixture f;
    fixture_init(&f);
    fresh_db();
    outcome out;
    outcome_init(&out, &f);
    int alerts = 0;
    sr_engine_opts o = opts(NULL, NULL);
    o.recover_ms = 1;
    o.alert = alert_count;
    o.alert_ctx = &alerts;
    o.test_fail_append = 1;
    sr_engine *e = open_at(db, &o);
    uint32_t p = f.points[0];
    int64_t t0 = 1700000000000;
    sr_sample a[2 * HEAD_MAX], b[3];
    for (int i = 0; i < 2 * HEAD_MAX; i++) a[i] = (sr_sample){.ts = t0 + 1000 * i, .v.f = 1000.0 + i};
    for (int i = 0; i < 3; i++) b[i] = (sr_sample){.ts = t0 + 1000 * i, .v.f = -5.0 - i};
    sr_result res;
    int rc = et_put(e, "op1", "GW1", p, TYPES[0], a, 2 * HEAD_MAX, NULL, &res); /* flushes the head */
    cr_assert_eq(rc, SR_ENOSPC, "the failed group: %s", sr_err_name(rc));
    cr_assert(wait_resumed(e), "the engine did not resume");
    cr_assert_gt(alerts, 0);
    rc = et_put(e, "op1", "GW1", p, TYPES[0], b, 3, NULL, &res);
    cr_assert_eq(rc, SR_OK, "after the resume: %s (%s)", sr_err_name(rc), res.err.msg);
    out.events += 1;
    for (int i = 0; i < 3; i++) et_model_put(out.m, p, &b[i]);
    sr_buf sb, strs;
    sr_buf_init(&sb);
    sr_buf_init(&strs);
    sr_sample *want;
    size_t nw = et_model_range(out.m, p, INT64_MIN / 4, INT64_MAX / 4, &want);
    int more = 0;
    sr_range_q q = {.point = p, .from = INT64_MIN / 4, .to = INT64_MAX / 4, .after = INT64_MIN};
    cr_assert_eq(sr_engine_range(e, &q, &sb, &strs, &more), SR_OK);
    cr_assert_eq(sb.len / sizeof(sr_sample), nw, "live: %zu samples, %zu acknowledged", sb.len / sizeof(sr_sample), nw);
    for (size_t i = 0; i < nw; i++)
        cr_assert(et_sample_eq(TYPES[0], &((sr_sample *)sb.data)[i], &want[i]), "live sample %zu", i);
    free(want);
    sr_buf_release(&sb);
    sr_buf_release(&strs);
    uint8_t live[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    assert_crash_copy_equals(live, "resumed"); /* a clean close may add a checkpoint: compare a crash's reopen */
    cr_assert_eq(sr_engine_close(e), SR_OK);
    check_db(&f, &out, "a failed group's heads forgotten");
    et_model_free(out.m);
    fixture_release(&f);
}
