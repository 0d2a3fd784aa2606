/*
 * engine/suiro.h -- the engine API: what api/ (servers, CLI) and the tests use.
 *
 * An engine owns one data directory:
 *     DIR/log/     the event log (storage/log.h), the source of truth
 *     DIR/index/   LMDB index derived from the log (storage/index.h)
 *
 * WRITES are commands: one or more serialized suiro.v1.Event messages
 * (codecs/events.proto) submitted together. A single writer thread takes
 * every queued command (group commit), validates each against the index,
 * fills in what the writer decides (sequence number, ingest time, data-point
 * numbers, document revisions), appends all of the group's events to the log
 * as one atomic batch, applies them to the index in one LMDB transaction
 * with the new watermark, and only then calls each command's callback. A
 * command is atomic: if any of its events is refused, none is stored.
 *
 * READS use LMDB read transactions (plus the in-memory heads of open
 * series chunks) and never wait for the writer. The functions below that
 * return packed records (masters, registry, requests, monitors, files,
 * document lists) are the engine's own; api/ reads them typed through
 * engine/records.h, whose results follow LMDB's MDB_val rule: valid until
 * the read's holder is closed (sr_rec_close), never freed by the caller.
 *
 * THREADS
 *  - sr_engine_submit and every query may be called from any thread.
 *  - Callbacks run on the writer thread: they must be quick and must not
 *    call sr_engine_submit synchronously-waiting on themselves (hand work to
 *    your own loop, e.g. with uv_async_send).
 *  - sr_engine_close must be called once, after every other call returned;
 *    it drains the queue (every queued command gets its callback) first.
 */
#ifndef SUIRO_H
#define SUIRO_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h" /* also sr_errinfo */
#include "codecs/base/sr_hist.h"  /* sr_hist_snap: the metrics' histograms */
#include "codecs/sample.h"        /* sr_vtype, sr_sample, sr_bucket, sr_agg_fill */

#include <stddef.h>
#include <stdint.h>

/* This header includes no storage/ header (tests/integration/check_layering.py):
 * the engine API is the engine's own types, the value model of
 * codecs/sample.h, and opaque handles to what a caller gets from storage/
 * itself (a key from storage/crypto.h, a test file system from
 * storage/vfs.h, the blob store of storage/blobs.h). */
typedef struct sr_engine sr_engine;
struct sr_key;
struct sr_vfs;
struct sr_blobs;

/* When a command is durable (storage/log.h sr_sync_mode, converted inside
 * the engine). */
typedef enum sr_engine_sync {
    SR_ENGINE_SYNC_ALWAYS = 0,   /* fsynced before its callback (group commit) */
    SR_ENGINE_SYNC_INTERVAL = 1, /* fsynced within the log's interval: a crash loses at most that */
    SR_ENGINE_SYNC_NONE = 2,     /* synced at segment roll and close only: tests and benchmarks */
} sr_engine_sync;

typedef struct sr_engine_opts {
    const struct sr_key *key;   /* log encryption (storage/crypto.h sr_key_load); NULL: none. Must outlive
                                   the engine (the writer reopens the log after a failed write,
                                   docs/durability.md §7) */
    int single_key;             /* 0 (issue #16, docs/keys.md): with key, each record is sealed by its
                                   operator's data key, kept in DIR/keys/keyring wrapped by key (the master
                                   key; created by the first writable open). 1: key seals every record
                                   itself, no keyring (benchmarks: the cost of per-operator keys) */
    const char *key_source;     /* where key came from ("file:/etc/suiro/master.key"), for messages */
    const struct sr_key *key_next; /* [keys] master_next: the master an approved "master-rotate" KeyEvent
                                   re-wraps the keyring under (POST /admin/v1/keys/master); must outlive
                                   the engine. NULL: none */
    uint32_t key_rotate_days;   /* [keys] rotate_days: data and audit keys start a new epoch this many
                                   days after theirs began; 0: never */
    sr_engine_sync sync;        /* default SR_ENGINE_SYNC_ALWAYS */
    int zstd_level;             /* log compression; default 1 (0 is default-> 1); -100: off */
    uint32_t queue_max;         /* queued commands, all operators; default 65536 */
    uint32_t queue_max_per_op;  /* queued commands per operator; default queue_max / 4 */
    uint32_t group_max;         /* commands the writer takes into one group (one log append, one
                                   fsync, one index commit); default 4096 */
    uint32_t head_max;          /* samples per point kept in memory before a chunk is written; default 1024.
                                   Fixed when the index is created (stored in it; rebuild keeps it). */
    uint32_t replay_max_events; /* restart bound (docs/durability.md section 8): the writer logs a heads
                                   checkpoint every replay_max_events / 2 events, so an open re-reads at
                                   most about this many events of the log (plus the last group's); also
                                   one at a clean close after writing, when the heads hold events older
                                   than 1/64 of it. Default 262144 */
    int32_t checkpoint_interval_ms; /* and one at most this often (by the clock_ms clock) while events are
                                   written, so a restart also re-reads at most about two intervals of events
                                   (docs/durability.md section 8). 0: 60,000; < 0: none */
    uint64_t map_bytes;         /* initial LMDB map size; default 1 GiB; grows automatically */
    uint64_t segment_bytes;     /* log segment size; default 64 MiB */
    const struct sr_vfs *vfs;   /* log file system (tests: storage/vfs.h); NULL: POSIX */
    int readonly;               /* queries only: no writer thread, no recovery writes */
    int64_t (*clock_ms)(void);  /* tests: ingest time source; NULL: CLOCK_REALTIME */
    const char *index_dir;      /* index elsewhere than DIR/index (verify, rebuild checks) */
    int log_readonly;           /* read the log without locking it; apply to the index; no writer */
    uint64_t replay_to;         /* with log_readonly: apply events up to this seq only (0: all) */
    int rebuilding;             /* set by sr_engine_rebuild for its own open only (engine.c invariant 8): the
                                   fresh index is committed without fsync, REBUILDING in its directory */
    int replay_serial;          /* replay (open, rebuild) in the calling thread only, without the reader
                                   thread that reads and unpacks the log ahead (engine/replay.c invariant 5):
                                   the ordinary way, which the pipelined one is tested equal to */
    int index_nosync;           /* with index_dir: the index is thrown away after use (engine/state.c's private
                                   index): LMDB never fsyncs it (MDB_NOSYNC) */
    uint64_t durable_floor;     /* events 1..this are known durable besides the index's watermark
                                   (rebuild passes the dropped index's): recovery refuses to cut them */
    int discard_lost;           /* sr_engine_rebuild only: rebuild even if the log lacks events the dropped
                                   index had applied or its tail block is damaged (they are lost for good) */
    uint32_t test_group_delay_ms; /* tests only: the writer sleeps this long before each group */
    uint32_t test_fail_commit;  /* tests only: the n-th group written (from 1) fails after its log
                                   append, as a failed index commit would (durable, not acknowledged) */
    uint32_t test_fail_append;  /* tests only: the n-th group written (from 1) fails with SR_ENOSPC
                                   instead of its log append (its heads were already applied) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total); /* replay progress at open */
    void *progress_ctx;
    /* notices at open (an index of an older layout rebuilt from the log);
     * NULL: one line on stderr */
    void (*notice)(void *ctx, const char *msg);
    void *notice_ctx;
    uint32_t test_msgid_hash_bits; /* tests only: keep this many low bits of the message-id hash
                                      (forces collisions); 0: all 64 */
    int test_segdrop_no_unlink;    /* tests only: a segment-dropping sweep stops after its LogTrim
                                      (a crash before the unlink; engine/segdrop.c) */
    void (*test_after_log_open)(void *ctx); /* tests only: called once the log is opened, before the
                                               index's watermark is read (a live writer's race) */
    void *test_after_log_open_ctx;
    /* Write failures (docs/durability.md §7): alert is called on the writer
     * thread when a write fails and the engine stops writing (error = 1),
     * when a recovery attempt fails (error = 1, once per distinct cause) and
     * when writing resumes (error = 0); NULL: one line on stderr. */
    void (*alert)(void *ctx, int error, const char *msg);
    void *alert_ctx;
    uint32_t recover_ms;        /* after a failed write, try to resume every this many ms; default 1000 */
    int no_recover;             /* 1: stay stopped after a failed write until reopened (tests) */
    /* 1: if opening read-write fails for lack of space (SR_ENOSPC), open
     * read-only instead (queries work; every submit is SR_ENOSPC) and say so
     * through alert; sr_engine_is_readonly tells. */
    int readonly_on_nospace;
    /* The cluster mode ([cluster] node, docs/cluster.md): this node's name, so
     * that a replicated PointAlias of a data point this node created maps to
     * its own number (engine/origins.c); NULL or "": not in a cluster. Must
     * outlive the engine. */
    const char *cluster_node;
    /* [state] (docs/state.md "How it is built"): the writer copies the
     * derived non-series state into the index's statesnap database at the
     * end of a group once snapshot_events events or snapshot_values values
     * were written since the last copy, or snapshot_ms ms (the clock_ms
     * clock) passed since it while events are written (engine/statesnap.c);
     * all 0: never. The state at a past time starts from the nearest one.
     * snapshot_keep: after each new copy the older ones are thinned (the
     * newest snapshot_keep kept, older ones while a gap stays within the
     * newer one's age: docs/state.md "Kept (thinning)"); 0: every one kept. */
    uint32_t snapshot_events;
    uint32_t snapshot_values;
    uint32_t snapshot_ms;
    uint32_t snapshot_keep;
    int state_full_replay;      /* the state at a past time replays from the log's start with the ordinary
                                   appliers, no snapshot: the reference answer (`suiro state --no-snapshot`, tests) */
    int state_only;             /* engine/state.c's private engine only: a measurement updates the `latest` row,
                                   no series chunk, head, audit row or message id; no Merkle tree */
    /* engine/state.c's private engine only (with log_readonly): the live
     * engine's open log, read through its iterators, never written nor
     * closed by this engine, instead of opening the log directory again (an
     * open scans every segment's blocks: most of an answer's open on a large
     * log; docs/state.md "Cost"). Must outlive the engine. */
    struct sr_log *log_shared;
} sr_engine_opts;

/**
 * Open (creating if needed) the engine in dir: recover the log, open the
 * index, replay every event after the index watermark, rebuild the in-memory
 * series heads, start the writer thread.
 * @return SR_OK or the failing layer's code with ei describing it.
 */
SR_MUST_CHECK int sr_engine_open(const char *dir, const sr_engine_opts *opts, sr_engine **out,
                                 sr_errinfo *ei);
/* Drain the queue, stop the writer, close everything. NULL-safe. */
int sr_engine_close(sr_engine *e);

/* The writing state (docs/durability.md §7): SR_OK (writing), SR_EPOISONED
 * (a write failed; the writer retries to resume unless no_recover), or
 * SR_ENOSPC (opened read-only for lack of space: restart once there is room).
 * *cause (may be NULL) gets the failure that stopped writing. */
int sr_engine_write_state(sr_engine *e, int *cause);

/* ---- writing ------------------------------------------------------------ */

typedef struct sr_result {
    int rc;             /* SR_OK, or why the command was refused */
    uint64_t seq;       /* sequence number of the command's first event */
    uint32_t count;     /* events stored */
    int duplicate;      /* 1: message id seen before; nothing stored, seq is the original */
    uint64_t revision;  /* documents: the new revision */
    uint32_t point;     /* data-point master put: the point number; measurements refused for a value
                         * outside its master's min/max (range set): the point number */
    int range;          /* 1: refused for a value outside its master's min/max (GOOD/UNCERTAIN); err.where
                         * names the data point (the alarm rule value-out-of-range, api/alarms.c) */
    sr_errinfo err;     /* for a refusal: err.code == rc, err.msg what and where ("point 17: value 12.5
                         * above max 10"); the one error-detail struct of every layer (sr_error.h) */
    /* cluster mode (read-your-writes, api/ryw.h): the partition and the JetStream stream seq of the
     * command's last event, set by api/cluster.c when it releases an answer JetStream acknowledged;
     * the engine leaves them 0 (stream_seq 0: not known) */
    uint32_t part;
    uint64_t stream_seq;
    /* a replicated measurement or correction logged but HELD: one of its point numbers has no
     * mapping here yet (its MasterPut or PointAlias later in the stream); applied once it comes
     * (engine/origins.c invariant 6, docs/cluster.md "Held values") */
    int held;
} sr_result;

typedef void (*sr_engine_cb)(void *ctx, const sr_result *res);

/**
 * Queue a command of n serialized events. On SR_OK the callback is called
 * exactly once, on the writer thread, after the events are durable and
 * visible to queries (or with res->rc set when refused). On any other
 * return the callback is never called:
 *   SR_EFULL      the queue (or this operator's share) is full: retry later;
 *   SR_EINVAL     n == 0, an event does not decode, or events of different operators;
 *   SR_EPOISONED  a write failed earlier and writing has not resumed yet
 *                 (the writer retries, docs/durability.md §7): retry later;
 *   SR_ENOSPC     the engine was opened read-only for lack of space
 *                 (readonly_on_nospace);
 *   SR_ECLOSED    the engine is closing.
 * Event fields the writer fills: seq, ingest_ms; MasterPut.point (data
 * points); DocumentPut.revision (input: the expected current revision, 0 =
 * any; output: the new one; a mismatch refuses with SR_ECONFLICT).
 * Measurements are checked against the data-point masters (the point
 * exists, its type, its range, and for gateways: the gateway reaches the
 * point's device); a bad value refuses the whole command naming it.
 * A non-empty message_id already stored for the same operator and actor
 * makes the command a duplicate: res->duplicate = 1, nothing stored.
 */
SR_MUST_CHECK int sr_engine_submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb,
                                   void *ctx);

/* ---- the cluster's replicated events (engine/origins.c; docs/cluster.md) ----
 * An event another node wrote (rec: the serialized Event as that node's log
 * holds it), consumed from its partition's stream. The engine sets its
 * Origin, clears what this node's writer decides again (seq, ingest_ms, a
 * document's expected revision, a data point's number: mapped), and queues
 * it as a command of one event on the replicated events' own queue (FIFO).
 * Its callback: res->duplicate = 1 when the origin id node:seq was applied
 * before (nothing applied, nothing appended; res->seq the first's local
 * seq). The origin id and the consumer's checkpoint are written in the
 * event's own transaction. SR_EINVAL also for an event that holds an origin
 * already or is of a kind only its own node's engine writes (a heads
 * checkpoint, a write audit, ...: sr_event_kind_class SR_EVCLASS_LOCAL). */
typedef struct sr_origin {
    const char *node;    /* the node that wrote it */
    uint64_t seq;        /* its seq there */
    uint32_t partition;
    uint64_t stream_seq; /* its sequence in the partition's stream */
    int consumer;        /* 1 the registry consumer (.reg), 2 the full one, 3 a monitor's values relayed to
                          * the monitor's node (api/cluster_req.c; no stream seq, no checkpoint) */
} sr_origin;
SR_MUST_CHECK int sr_engine_submit_origin(sr_engine *e, const void *rec, size_t len, const sr_origin *o,
                                          sr_engine_cb cb, void *ctx);
/* The same, waiting for the result (not on a thread the engine calls back). */
SR_MUST_CHECK int sr_engine_submit_origin_wait(sr_engine *e, const void *rec, size_t len, const sr_origin *o,
                                               sr_result *res);
/* The highest stream seq consumer `which` (1, 2) applied of partition part
 * (0: none yet). */
SR_MUST_CHECK int sr_engine_cluster_ckpt(sr_engine *e, uint32_t part, int which, uint64_t *seq);
/* SR_OK and *local (the local seq) when origin id node:seq was applied
 * here; SR_ENOTFOUND if not. */
SR_MUST_CHECK int sr_engine_origin_seen(sr_engine *e, const char *node, uint64_t seq, uint64_t *local);
/* The replicated events held here (origins.c invariant 6): their count
 * and the oldest one's local seq (0: none), its origin node (up to cap
 * bytes, "" when none; node may be NULL). */
SR_MUST_CHECK int sr_engine_cluster_held(sr_engine *e, uint64_t *count, uint64_t *oldest, char *node, size_t cap);

/* Convenience for tools and tests: submit and wait for the result. */
SR_MUST_CHECK int sr_engine_submit_wait(sr_engine *e, const sr_slice *events, size_t n, sr_result *res);

/* ---- registry changes (revocation at once, R-ID-4; docs/admin.md "Revocation") ----
 * The registry generation: a counter the writer bumps after it committed a
 * group holding a RegistryPut or RegistryDelete (apps, gateways, grants,
 * vendors, any operator), before that group's callbacks. A session that
 * remembers the generation its principal and grants were read at re-reads
 * them when it moved: one atomic load per request while nothing changed.
 * Read it BEFORE reading the registry (a change committed in between moves
 * it again). Any thread. */
uint64_t sr_engine_registry_gen(sr_engine *e);

/* One committed registry change, for the hook: the entry's operator ("" for
 * the platform's vendors), kind (sr_reg_kind, engine/records.h) and id;
 * deleted 1 for a RegistryDelete; disabled the put's flag. Valid during the
 * call only. */
typedef struct sr_reg_committed {
    const char *op, *id;
    int kind;
    int deleted, disabled;
} sr_reg_committed;
typedef void (*sr_registry_hook)(void *ctx, const sr_reg_committed *ch, size_t n);
/* Call fn(ctx, changes, n) on the writer thread after each group that
 * committed registry changes (durable and visible to reads, generation
 * bumped), before the group's command callbacks: it must be quick (hand the
 * changes to your loop). NULL removes it. Any thread. */
void sr_engine_on_registry(sr_engine *e, sr_registry_hook fn, void *ctx);

/* Call fn(ctx, op, seq) on the writer thread for each AlarmEvent of a group
 * once it committed (durable and visible), in seq order, before the group's
 * command callbacks: it must be quick (the notifier, api/notify.c, hands the
 * seq to its loop and reads the event from the log there). NULL removes it.
 * Any thread. */
typedef void (*sr_alarm_hook)(void *ctx, const char *op, uint64_t seq);
void sr_engine_on_alarm(sr_engine *e, sr_alarm_hook fn, void *ctx);

/* Call fn(ctx, last_seq) on the writer thread after each group committed
 * (events up to last_seq durable in the log and applied), before the
 * group's command callbacks: it must be quick (the cluster's publisher,
 * api/cluster.c, wakes its thread, which reads the events back with
 * sr_engine_log_each). NULL removes it. Any thread. */
typedef void (*sr_appended_hook)(void *ctx, uint64_t last_seq);
void sr_engine_on_appended(sr_engine *e, sr_appended_hook fn, void *ctx);

/* ---- reading ------------------------------------------------------------ */

/* Point number of operator/dataId (SR_ENOTFOUND if none). */
SR_MUST_CHECK int sr_engine_point(sr_engine *e, const char *op, const char *data_id, uint32_t *point,
                                  sr_vtype *type);

/* What a gateway binding needs to check a value before submitting it. */
typedef struct sr_point_info {
    uint32_t point;
    sr_vtype type;
    int kind;             /* PointKind: 1 measure, 2 control, 3 both */
    int has_min, has_max;
    double min, max;
    char gateway[72];     /* the gateway that reaches the point's device */
} sr_point_info;
SR_MUST_CHECK int sr_engine_point_info(sr_engine *e, const char *op, const char *data_id, sr_point_info *out);

/* Latest value of each point; found[i] = 0 when the point has no value.
 * String values are copied into *strings (caller sr_buf, may be NULL if no
 * string points are asked) and out[i].v.str points into it. */
SR_MUST_CHECK int sr_engine_latest(sr_engine *e, const uint32_t *points, size_t n, sr_sample *out, int *found,
                                   sr_buf *strings);

typedef struct sr_range_q {
    uint32_t point;
    int64_t from, to;   /* [from, to) UTC ms */
    size_t limit;       /* at most this many samples; 0: no limit */
    int desc;           /* 1: newest first */
    int64_t after;      /* cursor: resume after this timestamp (exclusive), or INT64_MIN */
} sr_range_q;

/* Raw values in range. samples (sr_buf of sr_sample) and strings are
 * appended to; *more = 1 if the limit cut the result (resume with
 * after = the last returned ts). */
SR_MUST_CHECK int sr_engine_range(sr_engine *e, const sr_range_q *q, sr_buf *samples, sr_buf *strings, int *more);

/* Downsampled values: buckets of `interval` ms over [from, to). */
SR_MUST_CHECK int sr_engine_downsample(sr_engine *e, uint32_t point, int64_t from, int64_t to, int64_t interval,
                                       sr_agg_fill fill, sr_buf *buckets /* of sr_bucket */);

/* A master (packed MasterPut) by kind and id: SR_ENOTFOUND if none. */
SR_MUST_CHECK int sr_engine_master_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed);
/* Every master of a kind of an operator, as packed MasterPut records each
 * preceded by a 4-byte LE length. */
SR_MUST_CHECK int sr_engine_master_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count);

/* Registry entries (packed RegistryPut) of an operator, by kind
 * (codecs/events.proto RegistryKind); same framing as master_list. */
SR_MUST_CHECK int sr_engine_registry_list(sr_engine *e, const char *op, int kind, sr_buf *out, size_t *count);
/* Every operator's own entry (kind operator, id == its operator), in id
 * order, framed as sr_engine_registry_list's. */
SR_MUST_CHECK int sr_engine_operator_list(sr_engine *e, sr_buf *out, size_t *count);
SR_MUST_CHECK int sr_engine_registry_get(sr_engine *e, const char *op, int kind, const char *id, sr_buf *packed);

/* A user (packed UserEvent, the whole state; deleted ones too) by id, and
 * every user in id order; same framing as master_list. */
SR_MUST_CHECK int sr_engine_user_get(sr_engine *e, const char *id, sr_buf *packed);
SR_MUST_CHECK int sr_engine_user_list(sr_engine *e, sr_buf *out, size_t *count);
/* A user's open session of token_hash (a user's, expiring after now_ms) and
 * its user (packed UserEvent) in one read snapshot: SR_OK; SR_ENOTFOUND
 * when there is no such session (*expired = 1: it exists but expired) or
 * no such user. (records.h sr_user_session_verify) */
struct sr_session_rec;
SR_MUST_CHECK int sr_engine_user_session_get(sr_engine *e, const uint8_t token_hash[32], int64_t now_ms,
                                             struct sr_session_rec *s, int *expired, sr_buf *user_packed);
/* The login policy (packed LoginPolicy) of operator op ("": the platform's);
 * SR_ENOTFOUND when none was set. */
SR_MUST_CHECK int sr_engine_policy_get(sr_engine *e, const char *op, sr_buf *packed);
/* A pending change (packed PendingEvent, the whole state) by id, and every
 * pending change in id order (decided ones too); same framing. */
/* The delivered push mark of app of operator op (PushMark; op and app "":
 * the seq the durable pushes began at) into *through; SR_ENOTFOUND if none. */
SR_MUST_CHECK int sr_engine_push_mark(sr_engine *e, const char *op, const char *app, uint64_t *through);
SR_MUST_CHECK int sr_engine_pending_get(sr_engine *e, const char *id, sr_buf *packed);
SR_MUST_CHECK int sr_engine_pending_list(sr_engine *e, sr_buf *out, size_t *count);
/* An alarm (op \0 packed AlarmEvent, its whole state) by id, and every
 * alarm in the order they were raised (same framing; engine/alarms.c). */
/* The latest rows (each data point's newest value's time) from point
 * `from` on, in point order, at most max of them: fn(ctx, the point's
 * operator, its data id, point, ts) for each (a non-zero return stops the
 * walk and is returned). *next: the point a next call starts from, 0 when
 * the walk reached the end. One read snapshot (the alarm rule no-data,
 * api/alarms.c, walks them a slice per evaluation). */
typedef int (*sr_latest_fn)(void *ctx, const char *op, const char *data_id, uint32_t point, int64_t ts);
SR_MUST_CHECK int sr_engine_latest_each(sr_engine *e, uint32_t from, size_t max, sr_latest_fn fn, void *ctx,
                                        uint32_t *next);
SR_MUST_CHECK int sr_engine_alarm_get(sr_engine *e, const char *id, sr_buf *packed);
SR_MUST_CHECK int sr_engine_alarm_list(sr_engine *e, sr_buf *out, size_t *count);
/* The open alarms (raised or acknowledged), one per condition, in the
 * conditions' key order (op, rule, subject); same framing. */
SR_MUST_CHECK int sr_engine_alarm_open_list(sr_engine *e, sr_buf *out, size_t *count);

/* The audit trail (`audit`, engine/audit.c): rows in [from_ms, to_ms] that
 * match every filter given, in time order (newest_first: the reverse), at
 * most limit (0: 100); *more = 1 if more match. The cursor (after_ms,
 * after_seq; after_seq 0: none) is the last row of the previous page: the
 * read goes on after it in the read's order. Each row framed as
 * master_list's: its 16-byte key then its value (engine/schema.h). Read
 * with sr_list_audit (engine/records.h). */
typedef struct sr_audit_query {
    int64_t from_ms, to_ms; /* to_ms 0: no upper bound */
    const char *op;         /* NULL: any operator ("" is the platform's) */
    const char *actor;      /* NULL: any */
    int actor_kind;         /* 0: any; else sr_actor_kind */
    const char *kind;       /* NULL: any; else kinds, comma-separated ("login,login_failed") */
    int64_t after_ms;
    uint64_t after_seq;
    size_t limit;
    int newest_first;
} sr_audit_query;
SR_MUST_CHECK int sr_engine_audit_list(sr_engine *e, const sr_audit_query *q, sr_buf *out, size_t *count,
                                       int *more);

/* A request (packed RequestCreated) and its latest RequestTransition
 * (state->len 0: none yet), by id and gateway ("" or NULL: the app-level
 * request). SR_ENOTFOUND if there is no such request. docs/requests.md */
SR_MUST_CHECK int sr_engine_request_get(sr_engine *e, const char *op, const char *req, const char *gw,
                                        sr_buf *created, sr_buf *state);
/* A monitor's latest MonitorEvent (packed); every monitor of an operator
 * (same framing as master_list). */
SR_MUST_CHECK int sr_engine_monitor_get(sr_engine *e, const char *op, const char *monitor, sr_buf *packed);
SR_MUST_CHECK int sr_engine_monitor_list(sr_engine *e, const char *op, sr_buf *out, size_t *count);
/* The latest AliveEvent (packed, with since_ms and seq) of every gateway and
 * app of op (NULL or "": of every operator), in key order (same framing as
 * master_list; R-MO-1). */
SR_MUST_CHECK int sr_engine_alive_list(sr_engine *e, const char *op, sr_buf *out, size_t *count);

/* Document: revision and JSON; its owner (R-PO-2) into owner_kind (an
 * sr_actor_kind, 0 for the operator's) and owner (>= 256 bytes, "" for the
 * operator's) when they are not NULL; json NULL: the owner only. */
SR_MUST_CHECK int sr_engine_doc_get(sr_engine *e, const char *op, const char *coll, const char *id,
                                    uint64_t *revision, sr_buf *json, int *owner_kind, char *owner);

/* Documents of a collection whose top-level `field` equals `value` (a JSON
 * text: "\"abc\"", "12", "true", "null" ...); field NULL: every document.
 * Appended to out as records: id \0, revision (8 LE), json length (4 LE),
 * json. At most limit (0: 1000) documents, in id order, starting after
 * after_id (cursor; NULL or "" for the start); *more = 1 if cut. */
SR_MUST_CHECK int sr_engine_doc_query(sr_engine *e, const char *op, const char *coll, const char *field,
                                      const char *value, size_t limit, const char *after_id, sr_buf *out,
                                      size_t *count, int *more);
/* The same with bounds on one call's work: at most max_bytes of document
 * JSON appended (0: no bound; the first match is always taken, so one
 * document larger than it still comes back alone) and at most max_scan
 * documents examined (0: no bound). Cut by any bound, *more = 1 and
 * next_after (>= 260 bytes: ids are at most 256) holds the id to resume after: the last document
 * returned, or the last examined when the scan bound cut it (so a query
 * that matches nothing still makes progress page by page). */
typedef struct sr_doc_bounds {
    size_t limit, max_bytes, max_scan;
    /* only the documents this app owns (R-PO-2: an app without a read
     * grant on the collection); NULL: every document. Others count as
     * examined. */
    const char *owner_app;
} sr_doc_bounds;
SR_MUST_CHECK int sr_engine_doc_scan(sr_engine *e, const char *op, const char *coll, const char *field,
                                     const char *value, const sr_doc_bounds *b, const char *after_id, sr_buf *out,
                                     size_t *count, int *more, char *next_after);

/* Files: metadata (packed FilePut) by path; list by path prefix (packed
 * FilePut records each preceded by a 4-byte LE length, path order). The
 * bytes live in the blob store (sr_engine_blobs) under FilePut.sha256 and
 * FilePut.key_id (the data key of a version 2 blob, sr_engine_file_key in
 * engine/records.h; 0: version 1): write them there first, then submit the
 * FilePut event. */
SR_MUST_CHECK int sr_engine_file_get(sr_engine *e, const char *op, const char *path, sr_buf *packed);
SR_MUST_CHECK int sr_engine_file_list(sr_engine *e, const char *op, const char *prefix, size_t limit, sr_buf *out,
                                      size_t *count, int *more);
/* Every file of every operator, in (operator, path) order: fn gets the
 * operator and the packed FilePut (valid during the call); a non-zero return
 * stops the walk and is returned. Runs in one read snapshot. */
SR_MUST_CHECK int sr_engine_file_each(sr_engine *e,
                                      int (*fn)(void *ctx, const char *op, const uint8_t *packed, size_t len),
                                      void *ctx);
struct sr_blobs *sr_engine_blobs(sr_engine *e); /* storage/blobs.h */

/* ---- operations ---------------------------------------------------------- */

typedef struct sr_engine_stats {
    uint64_t log_next_seq, watermark;
    uint64_t commands, events, groups;
    uint64_t queue_depth;
    uint64_t points;            /* data points with a head */
    uint64_t flushes;           /* heads written out as chunks since open */
    uint64_t extends;           /* of which re-encoded a short chunk a heads checkpoint had cut (heads.c
                                   invariant 9) */
    /* the metrics (docs/monitoring.md): fdatasync latency and group commit
     * time in microseconds (bounds SR_HIST_US_BOUNDS), commands per group
     * (SR_HIST_GROUP_BOUNDS); the index's LMDB map: its size and the bytes
     * of its pages in use (mdb_env_info: last page + 1) */
    sr_hist_snap fsync_us, commit_us, group_cmds;
    uint64_t map_bytes, map_used_bytes;
} sr_engine_stats;
void sr_engine_get_stats(sr_engine *e, sr_engine_stats *out);
/* Each operator's writer queue (its commands waiting now), under the
 * queue's lock: fn must be quick and must not call the engine. An operator
 * whose queue was ever used is listed (depth 0 when empty). */
void sr_engine_queue_each(sr_engine *e, void (*fn)(void *ctx, const char *op, uint32_t depth), void *ctx);

/* Where sr_engine_open spent its time (microseconds, monotonic clock), for
 * the server's startup log line and bench/engine_restart. */
typedef struct sr_engine_open_stats {
    uint64_t log_us;       /* sr_log_open: segment scan, torn-tail check, chain tip */
    uint64_t index_us;     /* LMDB open, blob store, head_max */
    uint64_t heads_us;     /* load_heads: the heads table */
    uint64_t replay_us;    /* replay: events after W in full, events of the heads */
    uint64_t replay_events;      /* events read by the replay */
    uint64_t replay_head_events; /* of which at or below W (heads only) */
    uint64_t replay_skipped;     /* of those, not unpacked: no head needs them (heads_needed) */
    uint64_t replay_from;        /* the first seq the replay read (0: it read none) */
    uint64_t checkpoint_seq;     /* the last heads checkpoint the index had applied (0: none) */
    uint64_t checkpoint_before;  /* its before_seq: the replay starts at or after it */
    /* Records the replay (or a rebuild) could not read because their key
     * was destroyed (docs/keys.md, erasure): counted, never skipped
     * silently, never a failure. One summary per key, first met first; past
     * SR_ENGINE_ERASED_MAX keys only erased_records grows. */
    uint64_t erased_records;
    uint32_t n_erased;
    struct sr_engine_erased {
        uint32_t key_id, epoch;
        char operator_id[72];
        char key_class[8];      /* data, audit, config, legacy; "" if the keyring lacks the key */
        uint64_t records, first_seq, last_seq;
        int64_t destroyed_ms;   /* when its key was destroyed: the records were erased up to then */
    } erased[8];
    /* A log whose first segments were dropped (docs/keys.md "Segments"):
     * the last LogTrim the replay applied (0: none met) and what it says. */
    uint64_t log_first_seq;      /* the log's first seq at open (1: never trimmed) */
    uint64_t trimmed_below;      /* the LogTrim's first kept seq */
    uint64_t trim_seq;           /* the LogTrim event's seq */
    int64_t trim_ms;             /* when */
    uint64_t trimmed_records;    /* the records it dropped (its counts) */
    uint64_t segments_finished;  /* segment files a drop a crash interrupted left, removed at this open */
} sr_engine_open_stats;
enum { SR_ENGINE_ERASED_MAX = 8 };
void sr_engine_get_open_stats(sr_engine *e, sr_engine_open_stats *out);
/* The head size this index was built with. */
uint32_t sr_engine_head_max(sr_engine *e);

/* ---- retention (issue #16, docs/retention.md; engine/retention.c) ----------
 * The defaults of the periods ([retention] of the configuration); an
 * operator's RG_RETENTION registry entries override them per class. */
typedef struct sr_retention_cfg {
    uint32_t default_days;        /* a data class without a period of its own; 0: kept for ever */
    uint32_t audit_days;          /* the audit rows; 0: kept for ever */
    uint32_t audit_floor_days;    /* an audit period below it needs the two-person rule */
    uint32_t message_id_window_s; /* message ids are kept at least this long; 0: for ever */
    uint32_t batch;               /* keys one Retention event visits at most; 0: 256 */
    int drop_segments;            /* drop log segments nothing needs (docs/keys.md "Segments"); 0: never */
} sr_retention_cfg;

typedef struct sr_retention_report {
    uint64_t events;  /* Retention events appended */
    uint64_t chunks;  /* chunks past their period the sweep saw */
    uint64_t audit;   /* audit rows */
    uint64_t msgids;  /* message ids */
    uint64_t keys_destroyed; /* data keys destroyed (the log's erasure, docs/keys.md) */
    uint64_t keys_held;      /* retired data keys past every period yet kept: a row of their epoch remains */
    uint64_t audit_state;    /* resolved alarms and expired sessions past their operator's audit period */
    uint64_t restated;       /* live audit state (open sessions, alive rows, alarms, done deliveries) restated
                                in the current epoch before an audit key's destruction (issue #16) */
    uint64_t documents, files, requests, monitors; /* rows (a request: all its rows) past their period */
    uint64_t blobs;          /* blobs of cut files removed (no remaining file names them) */
    uint64_t segments_dropped; /* log segment files removed (drop_segments) */
    uint64_t records_dropped;  /* the records they held */
    uint64_t carried;          /* config records restated by ConfigCarry events */
    uint64_t seg_events;       /* ConfigCarry and LogTrim events appended (acknowledged) */
    char seg_held[160];        /* why the first segment kept could not go ("": none to check) */
} sr_retention_report;

/* One retention sweep: reads what is past its period and appends the
 * Retention events that cut it, through the queue (a few in flight), and
 * returns once they are durable and applied. actor: the user who forced
 * it, or NULL for "system". Blocks: call it from a thread of its own, not
 * the writer's callbacks or an event loop. SR_ECONFLICT: a sweep runs. */
SR_MUST_CHECK int sr_engine_retention_sweep(sr_engine *e, const sr_retention_cfg *cfg, const char *actor,
                                            sr_retention_report *rep, sr_errinfo *err);
/* After sr_log_verify of a log that does not start at seq 1 (its first
 * segments were dropped: docs/keys.md "Segments"): find the LogTrim event
 * that recorded the drop (first_kept = rep->first_seq) and check that the
 * hash it recorded is the first kept block's previous hash (rep->anchor);
 * fills rep->trim_*. lo: the options the log was verified with (its keys).
 * SR_OK (also when the trim record is sealed and no key was given:
 * trim_checked 0; and when the log starts inside the range a LogTrim drops,
 * a crash between two of its unlinks: trim_interrupted its first kept seq,
 * what is left goes at the next read-write open); SR_ECORRUPT with ei
 * naming what is wrong: no LogTrim names that start (segments missing), or
 * its hash differs (the first kept block was replaced). A log starting at seq 1: SR_OK, nothing to check. */
struct sr_log_opts;
struct sr_log_report;
SR_MUST_CHECK int sr_engine_log_trim_check(const char *logdir, const struct sr_log_opts *lo, struct sr_log_report *rep,
                                           sr_errinfo *ei);
/* Index rows Retention events removed since open (chunks, latest rows, audit rows, message ids,
 * documents, files, requests (one a request), monitors). */
uint64_t sr_engine_retention_removed(sr_engine *e);
/* The time before which op's records of key class cls (SR_KC_DATA,
 * SR_KC_AUDIT) are all cut by retention (the rule of docs/keys.md
 * "Retention and erasure"; engine/retention.c): the cluster's stream key of
 * an epoch that ended at or before it is erased (issue #19 ckey).
 * INT64_MIN: none (kept for ever, or still held). */
int64_t sr_engine_retention_cut(sr_engine *e, const sr_retention_cfg *cfg, int64_t now, const char *op, int cls);

/* SHA-256 of the index content and the in-memory heads: equal for two
 * engines that applied the same events (the determinism check). Series
 * chunks count without their summaries (series format version 3), so an
 * index written before them equals its rebuild. */
SR_MUST_CHECK int sr_engine_content_hash(sr_engine *e, uint8_t out[32]);

/* Drop the index (DIR/index or opts->index_dir) and rebuild it from the log
 * (opts->progress is called now and then). */
SR_MUST_CHECK int sr_engine_rebuild(const char *dir, const sr_engine_opts *opts, sr_errinfo *ei);
/* The same, with what the rebuild's replay met (the erased records). */
SR_MUST_CHECK int sr_engine_rebuild_stats(const char *dir, const sr_engine_opts *opts, sr_engine_open_stats *st,
                                          sr_errinfo *ei);
/* The watermark of the index in DIR/index (or opts->index_dir) read-only:
 * the highest seq the index applied, known durable with sync=always; 0 if
 * there is no index (or it cannot be read). Pass it as sr_log_opts.durable_floor
 * to check the log without opening the engine (suiro verify). */
SR_MUST_CHECK int sr_engine_index_watermark(const char *dir, const sr_engine_opts *opts, uint64_t *w);

#endif
