/*
 * engine/schema.h -- the index's schema: its named databases and the
 * layouts of their keys and values, with the key encoders.
 *
 * The index (storage/index.c) is a cache of the log: every database in it is
 * a deterministic function of the events applied (engine.c invariant 3).
 * storage/ knows nothing of what is in it; the engine passes it this table
 * of databases (SR_SCHEMA_DBS) when it opens the index, and names each one
 * by its sr_dbi. The first database is "meta", where the index keeps its
 * watermark (storage/index.h).
 *
 * KEY AND VALUE LAYOUTS (BE: big-endian, LE: little-endian; \0 a zero byte)
 *   meta       "watermark" -> u64 LE (the highest applied seq);
 *              "layout" -> u32 LE (SR_INDEX_LAYOUT); "head_max" -> u32 LE;
 *              "next_point" -> u32 LE (the next point number);
 *              "heads_ckpt" -> u64 LE seq, u64 LE before_seq (the last
 *              heads checkpoint applied, heads.c; absent: none yet);
 *              "retired" \0 op \0 dataId -> point u32 (a removed data
 *              point's number, given back when it is listed again);
 *              "sealed" -> u8 1 when the values of SR_IXSEAL_DBS are
 *              sealed (layout 8, engine/ixseal.h; absent: plain, every
 *              layout below as it reads)
 *   masters    op \0 kind(1 ASCII digit) \0 id -> packed MasterPut
 *   points     op \0 dataId -> point u32 BE
 *   pointinfo  point u32 BE -> op \0 gateway \0 packed MasterPut (the
 *              gateway is the data point's device's)
 *   latest     point u32 BE -> ts i64 LE, quality u8, type u8, then the
 *              value: u64 LE (bits of a double, an integer, a bool) or the
 *              string's bytes (latest_decode)
 *   series     point u32 BE ‖ ts_key(chunk's first ts) u64 BE -> a chunk
 *              (docs/series-format.md): LMDB order is time order; the key
 *              is built by sr_series_key only
 *   heads      point u32 BE -> first_seq u64 LE, flushed_max i64 LE,
 *              has_flushed u8 (17 bytes), then tail_n u32 LE when a heads
 *              checkpoint left the point's last chunk short (21 bytes;
 *              heads.c invariant 9)
 *   docs       op \0 collection \0 id -> wtimes (16 bytes, below) ‖
 *              revision u64 LE ‖ owner_kind u8 (ActorKind; 0: the
 *              operator's) ‖ owner length u8 ‖ owner ‖ JSON (doc_decode;
 *              the owner since layout 5, R-PO-2)
 *   files      op \0 path -> wtimes ‖ packed FilePut (its owner and share
 *              list, R-PO-2: FileShare rewrites the record's shared_with
 *              and keeps the times: last_ms is the last FilePut's)
 *   registry   op \0 kind(1 ASCII digit) \0 id -> packed RegistryPut
 *   requests   op \0 request \0 gateway ("" for the app-level request) \0
 *              tag (rkey): 'c' -> wtimes ‖ packed RequestCreated, 's' ->
 *              wtimes ‖ packed RequestTransition (the latest state)
 *   monitors   op \0 monitor id -> wtimes ‖ packed MonitorEvent (the
 *              latest state)
 *   (wtimes: first_ms i64 LE ‖ last_ms i64 LE, the ingest times of the
 *   records that created and last wrote the row: wtimes_put/wtimes_strip,
 *   layout 9)
 *   sessions   SHA-256 of a session's bearer token (32 bytes) ->
 *              expires_ms i64 LE ‖ op \0 id, then \0 'u' for a user's
 *              session (op "" for a platform user); an app's AP-IF session
 *              has no tail, the layout it always had (sess_decode;
 *              apply.c apply_session;
 *              an index without this database gets it empty at a
 *              read-write open: no older suiro wrote such a session)
 *   users      user id -> packed UserEvent, the user's whole state (apply.c
 *              apply_user; a deleted user's record stays: its ID is
 *              reserved. An index without it gets it empty: no older suiro
 *              wrote a UserEvent)
 *   policies   op ("" for the platform) -> packed LoginPolicy, the latest
 *              login policy of that scope (apply.c apply_login_policy; an
 *              index without it gets it empty: no older suiro wrote one)
 *   pending    pending id -> packed PendingEvent, the pending change's
 *              whole state (apply.c apply_pending: requester, state,
 *              decision; the two-person rule, docs/admin.md). An index
 *              without it gets it empty: no older suiro wrote a
 *              PendingEvent
 *   audit      ts_key(ingest_ms) u64 BE ‖ seq u64 BE -> one row per event
 *              of the audit trail (every kind but the data kinds:
 *              measurements, requests, monitors, documents, files, alarms,
 *              heads checkpoints; engine/audit.c): u8 version (1), u8
 *              actor kind, then op, actor, source, kind, action, target,
 *              outcome, detail, each NUL-terminated (audit_decode). LMDB
 *              order is time order, so a time window is one range read
 *   pushq      op \0 app -> through u64 LE: the app's delivered push mark
 *              (apply.c apply_push_mark, the highest PushMark; api/push.c
 *              derives what is still to push from the events after it);
 *              one zero byte -> the seq the durable pushes began at
 *   notifyq    (layout 12, issue #17, api/notify.c) 'm' -> through u64 LE: the
 *              notifier's mark (the highest NotifyEvent mark: every delivery
 *              of every alarm step at or below it is delivered or given up);
 *              'd' ‖ alarm seq u64 BE ‖ op \0 target -> u8 outcome (1
 *              delivered, 2 given up) ‖ u32 LE attempts: a delivery above
 *              the mark that is done (apply.c apply_notify; a mark deletes
 *              the rows at or below it)
 *   alive      op \0 kind(1 ASCII digit: 2 gateway, 3 app) \0 id -> packed
 *              AliveEvent, the principal's latest alive transition with
 *              since_ms and seq of its event (apply.c apply_alive; R-MO-1)
 *   msgidx     op \0 seq_hi u32 BE (the high 32 bits of a seq: one key per
 *              2^32 events) -> duplicates (DUPSORT, DUPFIXED) of 12 bytes:
 *              the first 8 bytes of SHA-256(op \0 actor \0 message id), then
 *              the low 32 bits of the seq, both BE (sr__msgid_item)
 *   mtree      (layout 14; issue #18, engine/ckpt.c, docs/audit.md
 *              "Checkpoints and proofs") the Merkle tree over the log, one
 *              leaf per block: u8 level ‖ index u64 BE -> the perfect
 *              subtree's hash (32 bytes; level 0, a leaf: hash ‖ first seq
 *              u64 LE ‖ count u32 LE ‖ the block's chain hash, 76 bytes);
 *              0xFE ‖ ts_key(time) u64 BE ‖ seq u64 BE -> seq u64 LE ‖ the
 *              packed CheckpointEvent; 0xFF -> the tree's size u64 LE ‖ the
 *              first seq it does not cover u64 LE ‖ the first leaf kept u64
 *              LE (the last LogTrim's tree size: below it only the
 *              frontier's nodes stay). Plain (hashes and numbers)
 *   alarms     (layout 11; issue #17, docs/monitoring.md "Alarms")
 *              'A' hex16(seq) (the alarm's id: "A" and the seq of the event
 *              that raised it, 16 upper-case hex digits, so key order is the
 *              order alarms were raised in) -> op \0 packed AlarmEvent, the
 *              alarm's whole state (apply.c apply_alarm);
 *              1 op \0 rule \0 subject (a first byte no id starts with) ->
 *              the id of the condition's open alarm (raised or
 *              acknowledged; gone once resolved: one open alarm per
 *              condition)
 *   statesnap  (layout 15; issue #18, engine/statesnap.c, docs/state.md
 *              "How it is built") copies of the derived non-series state as
 *              of one seq S (the end of a writer's group):
 *              0x00 ‖ S u64 BE -> at_ms i64 LE (S's ingest time) ‖ rows
 *              u64 LE ‖ u8 complete (1; 0: not usable);
 *              0x01 ‖ S u64 BE ‖ db u8 (an sr_dbi) ‖ the row's key -> the
 *              row's value, its raw bytes (a sealed value stays sealed by
 *              its key: a destroyed key leaves it unreadable). The rows of
 *              SR_SNAP_DBS and the meta rows but the watermark, layout,
 *              head_max, sealed and heads_ckpt.
 *              A CACHE OUTSIDE "index = f(log)": where a snapshot is taken
 *              depends on the writer's groups and the configuration, so a
 *              rebuild does not make the same ones; sr_engine_content_hash
 *              and `suiro verify`'s comparison leave this database out.
 *              Each snapshot is the index's own rows at S (what the
 *              writer's transaction held), and an answer from it is checked
 *              against the full replay (tests/engine/test_state.c).
 *              A LogTrim deletes the snapshots below its first kept seq - 1
 *              (their state is before the log's horizon)
 *
 *   origins    (layout 16; issue #19 phase 2a, engine/origins.c,
 *              docs/cluster.md) 'E' node \0 seq u64 BE -> the local seq
 *              u64 LE: one row per replicated event applied here (its
 *              Origin, events.proto: applied at most once); 'P' node \0
 *              point u32 BE -> point u32 BE: a data point's number at its
 *              origin node -> this node's (a replicated MasterPut's, or
 *              a replicated PointAlias's: the sending node's number, issue
 *              #19 pmap; the same key and value, no layout change;
 *              layout 20, issue #19 ckey, engine/keys.c invariant 4) 'K'
 *              stream key id u64 BE -> the seq u64 LE of an erasure's
 *              intent (StreamKeyErase "pending") ‖ u8 (1: why retention)
 *              whose result is not logged yet: written by the intent,
 *              deleted by its result, from the logged events (a rebuild
 *              gives them again)
 *   cluster_ckpt (layout 16) partition u32 BE ‖ consumer u8 (1 the .reg
 *              consumer, 2 the full one) -> the highest stream seq that
 *              consumer applied, u64 LE. Both written from the logged
 *              event's Origin in its own transaction (sr__origin_apply):
 *              a rebuild gives them again. Plain (node names and numbers)
 *   held       (layout 18; issue #19 hold, engine/origins.c invariant 6,
 *              docs/cluster.md "Held values") 'S' local seq u64 BE ->
 *              node \0 then the numbers u32 BE that had no 'P' row: one
 *              row per replicated measurement or correction logged held
 *              (Origin.held); 'W' node \0 number u32 BE ‖ local seq u64 BE
 *              -> empty: the held events waiting for that number's row,
 *              in log order. Written by the held event, deleted by its
 *              release (Origin.release_of), both from the logged events
 *              (sr__origin_apply): a rebuild gives them again. Plain
 *              (node names, numbers and sequence numbers).
 * Retention (engine/retention.c, docs/retention.md) deletes `series`
 * chunks, `latest` rows, `audit` rows and `msgidx` items by Retention
 * events, in the layouts above (layout 6 is unchanged by it), and (layout
 * 9) `docs`, `files`, `requests` and `monitors` rows by their wtimes.
 *
 * INVARIANTS
 *  (1) mkkey joins its parts with \0 and none may hold a \0: so a prefix
 *      scan of "op \0 x" never reaches another operator's keys.
 *  (2) ts_key is order-preserving (i64 -> u64 with the sign bit flipped), so
 *      BE encodings of (point, ts_key) sort as (point, ts).
 *  (3) A change to any layout above bumps SR_INDEX_LAYOUT (an index of an
 *      older layout is rebuilt from the log at a read-write open).
 *
 * How to add a database: one row in SR_INDEX_DBS below (its sr_dbi, name
 * and LMDB flags) and its layout in the list above. Nothing else opens it.
 */
#ifndef SR_ENGINE_SCHEMA_H
#define SR_ENGINE_SCHEMA_H

#include "codecs/base/sr_alloc.h"
#include "codecs/sample.h"
#include "storage/index.h"

#include <stdint.h>
#include <string.h>

/*
 * Layout of what the index stores, in meta "layout" (u32 LE). An index
 * without it is layout 1. The engine rebuilds an index of an older layout
 * from the log when it opens it read-write (sr_engine_open).
 *   1: message ids as op \0 actor \0 id -> seq ("msgids"); a late value
 *      merged into a full chunk split off a chunk of the overflow.
 *   2: message ids as 16-byte hash + seq duplicates ("msgidx", DUPFIXED);
 *      late-value merges keep a chunk whole up to head_max * 5/4 samples and
 *      split evenly above (sr_chunk_merge_balanced).
 *   3: message ids as 12-byte hash + low-32-bit seq duplicates under the
 *      key op \0 seq_hi (the high 32 bits of the seq, BE).
 *   4: the heads row's short tail (21 bytes with tail_n, heads.c invariant
 *      9): a chunk a heads checkpoint cut short is extended by the point's
 *      next flush (issue #13). A suiro of layout 3 refuses this index (a
 *      newer layout) instead of reading a 21-byte row as corrupt. Not an
 *      in-place upgrade, although 17-byte rows stay valid: a layout 3
 *      index may hold chunks a checkpoint cut short and never extended,
 *      which this build's replay of the same log extends, so only a
 *      rebuild makes the index what this build derives from its log
 *      (engine.c invariant 3; `suiro verify` compares the two).
 *   5: (issue #14) the `audit` database: an index of layout 4 has no rows
 *      for the events it applied; and a document's owner in its `docs`
 *      value (R-PO-2). An older index is rebuilt from the log (its
 *      documents get the owners their events name; documents stored before
 *      owners have none); a suiro of layout 4 refuses this index as newer.
 *   6: (issue #15) the `pushq` database (R-AP-17: the delivered push marks,
 *      PushMark). An index of layout 5 has no rows for the marks its log
 *      holds, so it is rebuilt from the log; a suiro of layout 5 refuses
 *      this index as newer.
 *   7: (issue #16, ERASURE's part; set by that branch).
 *   8: (issue #16) sealed values: with a master key, meta "sealed" -> u8 1
 *      and every value of the databases SR_IXSEAL_DBS names is sealed by the
 *      key of the record it came from (engine/ixseal.h: a form byte, the key
 *      id, the nonce, the ciphertext, the tag). Without a master key the
 *      values are layout 6's, byte for byte. An index of layout 6 or 7 is
 *      rebuilt from the log at a read-write open (the log is the source of
 *      truth), and so is a layout 8 index whose "sealed" differs from the
 *      open's (a key given to a plain index); a suiro of layout 6 refuses
 *      this index as newer.
 *   9: (issue #16, DOCRET) the write times (wtimes: the ingest times of
 *      the creating and of the last record) in front of every value of
 *      `docs`, `files`, `requests` and `monitors`, so that retention cuts
 *      them and the erasure of a data key waits only for the rows its
 *      epoch created. An index of layout 6..8 is rebuilt from the log at a
 *      read-write open (the log's events carry their ingest times); a
 *      suiro of layout 8 refuses this index as newer.
 *  10: (issue #17, R-MO-1) the `alive` database (the latest AliveEvent per
 *      gateway and app, sealed like the registry). An older index has no
 *      rows for the AliveEvents its log holds, so it is rebuilt from the
 *      log at a read-write open; a suiro of layout 8 refuses it as newer.
 *  11: (issue #17, ALARMS) the `alarms` database (each alarm's state and
 *      the open alarm of each condition). An index of an older layout has
 *      no rows for the alarm events its log holds, so it is rebuilt from the
 *      log at a read-write open (its push-dropped alarms become alarms of
 *      rule push-dropped); a suiro of an older layout refuses it as newer.
 *   12: (issue #17, NOTIFY's part) the `notifyq` database (the notifier's
 *      mark and done deliveries, NotifyEvent). An index of an older layout
 *      has no rows for the NotifyEvents its log holds: rebuilt from the log
 *      at a read-write open; an older suiro refuses this index as newer.
 *  14: (issue #18, signed checkpoints; the integrator renumbers) the `mtree`
 *      database: the Merkle tree over the log's blocks and the checkpoints
 *      by time (engine/ckpt.c, docs/audit.md "Checkpoints and proofs"). An
 *      older index has no tree: rebuilt from the log at a read-write open;
 *      an older suiro refuses this index as newer.
 *  15: (issue #18, R-RE-2, state snapshots; the integrator renumbers) the
 *      `statesnap` database (engine/statesnap.c, docs/state.md). An older
 *      index has none: rebuilt at a read-write open (a rebuild makes none:
 *      they are a cache, below); an older suiro refuses this index as newer.
 *  16: (issue #19 phase 2a, the cluster's consumers; the integrator
 *      renumbers) the `origins` and `cluster_ckpt` databases
 *      (engine/origins.c, docs/cluster.md). An older index has none:
 *      rebuilt at a read-write open (its log has no replicated event, so
 *      they stay empty); an older suiro refuses this index as newer.
 *  18: (issue #19 hold; the integrator renumbers) the `held` database
 *      (engine/origins.c invariant 6, docs/cluster.md "Held values"). An
 *      older index has none: rebuilt at a read-write open (a log without
 *      held events leaves it empty); an older suiro refuses this index as
 *      newer.
 *  20: (issue #19 ckey; the integrator renumbers) the `origins` database's
 *      'K' rows: the open intents of stream key erasures (engine/keys.c
 *      invariant 4, docs/keys.md "Cluster: stream keys"). An older index
 *      has none: rebuilt at a read-write open (a log without StreamKeyErase
 *      events leaves none); an older suiro refuses this index as newer.
 */
#define SR_INDEX_LAYOUT 20u

/* The databases whose values are sealed in a sealed index (layout 8,
 * engine/ixseal.h; docs/keys.md "What stays plaintext"): every one that
 * holds an operator's names, data or people. Plain: meta (numbers, the
 * retired points' keys), points (a point number), heads (sequence numbers,
 * times, counts), msgidx (hashes and sequence numbers), pushq (a sequence
 * number), notifyq (sequence numbers, an outcome and a count). */
#define SR_IXSEAL_DBS                                                                                      \
    SR_DB_MASTERS, SR_DB_POINTINFO, SR_DB_LATEST, SR_DB_SERIES, SR_DB_DOCS, SR_DB_FILES, SR_DB_REGISTRY,     \
        SR_DB_REQUESTS, SR_DB_MONITORS, SR_DB_SESSIONS, SR_DB_USERS, SR_DB_POLICIES, SR_DB_PENDING, SR_DB_AUDIT, \
        SR_DB_ALARMS, SR_DB_ALIVE

/* The databases a state snapshot copies (statesnap above; the answer's
 * sections and what the appliers of the events after S read). Not copied:
 * series, heads (the private engine's measurement appliers write `latest`
 * only), docs and files (not in the answer), sessions, audit, msgidx,
 * pushq, notifyq, mtree. */
#define SR_SNAP_DBS                                                                                           \
    SR_DB_MASTERS, SR_DB_POINTS, SR_DB_POINTINFO, SR_DB_LATEST, SR_DB_REGISTRY, SR_DB_REQUESTS, SR_DB_MONITORS, \
        SR_DB_USERS, SR_DB_POLICIES, SR_DB_PENDING, SR_DB_ALARMS, SR_DB_ALIVE

/* The databases: X(enum suffix, name, LMDB flags). "meta" stays first. */
#define SR_INDEX_DBS(X)                            \
    X(META, "meta", 0)                             \
    X(MASTERS, "masters", 0)                       \
    X(POINTS, "points", 0)                         \
    X(POINTINFO, "pointinfo", 0)                   \
    X(LATEST, "latest", 0)                         \
    X(SERIES, "series", 0)                         \
    X(HEADS, "heads", 0)                           \
    X(DOCS, "docs", 0)                             \
    X(FILES, "files", 0)                           \
    X(REGISTRY, "registry", 0)                     \
    X(REQUESTS, "requests", 0)                     \
    X(MONITORS, "monitors", 0)                     \
    X(MSGIDS, "msgidx", MDB_DUPSORT | MDB_DUPFIXED) \
    X(SESSIONS, "sessions", 0)                     \
    X(USERS, "users", 0)                           \
    X(POLICIES, "policies", 0)                     \
    X(PENDING, "pending", 0)                       \
    X(AUDIT, "audit", 0)                           \
    X(PUSHQ, "pushq", 0)                           \
    X(ALARMS, "alarms", 0)                         \
    X(NOTIFYQ, "notifyq", 0)                       \
    X(ALIVE, "alive", 0)                           \
    X(MTREE, "mtree", 0)                           \
    X(STATESNAP, "statesnap", 0)                   \
    X(ORIGINS, "origins", 0)                       \
    X(CLUSTER_CKPT, "cluster_ckpt", 0)             \
    X(HELD, "held", 0)

typedef enum sr_dbi {
#define SR_X_(id, name, flags) SR_DB_##id,
    SR_INDEX_DBS(SR_X_)
#undef SR_X_
    SR_DB_COUNT
} sr_dbi;

_Static_assert((int)SR_DB_META == (int)SR_INDEX_META, "the meta database is the index's first (storage/index.h)");
_Static_assert((int)SR_DB_COUNT <= (int)SR_INDEX_MAX_DBS, "more databases than storage/index.c holds");

/* The table storage/index.c opens, in sr_dbi order. */
extern const sr_index_db sr_schema_dbs[SR_DB_COUNT];
#define SR_SCHEMA_DBS sr_schema_dbs, SR_DB_COUNT /* sr_index_open(dir, map, ro, SR_SCHEMA_DBS, ...) */
static inline const char *sr_schema_db_name(sr_dbi which) { return sr_schema_dbs[which].name; }

/* ---- key encoders -------------------------------------------------------- */

static inline void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }
static inline uint64_t ts_key(int64_t ts) { return (uint64_t)ts ^ (1ull << 63); } /* order-preserving */

/* series: point u32 BE ‖ ts_key(ts) u64 BE, the one encoder of the key */
enum { SR_SERIES_KEY_LEN = 12 };
static inline void sr_series_key(uint8_t k[SR_SERIES_KEY_LEN], uint32_t point, int64_t ts)
{
    be32(k, point);
    be64(k + 4, ts_key(ts));
}

/* key = parts joined by \0; returns length or 0 if too long */
static inline size_t mkkey(uint8_t *k, size_t cap, const char *a, const char *b, const char *c)
{
    size_t n = 0;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3 && parts[i]; i++) {
        size_t l = strlen(parts[i]);
        if (n + l + 1 > cap) return 0;
        if (i) k[n++] = 0;
        memcpy(k + n, parts[i], l);
        n += l;
    }
    return n;
}

/* request keys: op \0 request \0 gateway \0 tag */
static inline size_t rkey(uint8_t *k, size_t cap, const char *op, const char *req, const char *gw, char tag)
{
    size_t n = mkkey(k, cap, op, req, gw ? gw : "");
    if (!n || n + 2 > cap) return 0;
    k[n++] = 0;
    k[n++] = (uint8_t)tag;
    return n;
}

/* pushq keys: op \0 app; the start of the durable pushes (op and app ""):
 * one zero byte (LMDB keys are not empty). cap >= 513. */
static inline size_t sr_pushq_key(uint8_t *k, size_t cap, const char *op, const char *app)
{
    if (!op[0]) {
        k[0] = 0;
        return 1;
    }
    return mkkey(k, cap, op, app, NULL);
}

/* notifyq keys (layout 12): the mark 'm'; a done delivery 'd' ‖ seq u64 BE
 * ‖ op \0 target. Returns the length, 0 if it does not fit (cap >= 530). */
enum { SR_NOTIFYQ_DONE = 1, SR_NOTIFYQ_GAVE_UP = 2 };
static inline size_t sr_notifyq_key(uint8_t *k, size_t cap, uint64_t seq, const char *op, const char *target)
{
    if (cap < 10) return 0;
    k[0] = 'd';
    be64(k + 1, seq);
    size_t n = mkkey(k + 9, cap - 9, op, target, NULL);
    return n ? n + 9 : 0;
}

/* ---- value decoders ------------------------------------------------------ */

/* A latest value (its string, if any, points into p). */
/* A `sessions` value (layout above): 0 and its parts (not NUL-terminated),
 * or -1 for a value that does not decode. */
typedef struct sr__sess {
    int64_t expires_ms;
    const char *op, *id;
    size_t opl, idl;
    int user; /* 1: a user's session, 0: an app's */
} sr__sess;
static inline int sess_decode(const void *val, size_t n, sr__sess *s)
{
    const uint8_t *v = val, *end = v + n;
    if (n < 10) return -1;
    s->expires_ms = (int64_t)sr_get_le64(v);
    const uint8_t *p = v + 8, *z = memchr(p, 0, (size_t)(end - p));
    if (!z) return -1;
    s->op = (const char *)p;
    s->opl = (size_t)(z - p);
    p = z + 1;
    z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
    s->id = (const char *)p;
    s->idl = (size_t)((z ? z : end) - p);
    s->user = 0;
    if (z) {
        if (end - z != 2 || z[1] != 'u') return -1;
        s->user = 1;
    }
    return s->idl && s->opl < 256 && s->idl < 256 ? 0 : -1;
}

/* The write times in front of every value of `docs`, `files`, `requests`
 * and `monitors` (layout 9, sr__db_timed): the ingest time of the record that
 * created the row (first_ms) and of the last record that wrote it
 * (last_ms), i64 LE each. Retention cuts these rows by last_ms and the
 * erasure of a data key waits for every row whose first_ms is not after its
 * epoch's end (engine/retention.c, docs/keys.md). wtimes_put writes them,
 * wtimes_strip reads them and moves *val past them: the one copy of the
 * layout. */
enum { SR_WTIMES = 16 };
typedef struct sr__wtimes {
    int64_t first_ms, last_ms;
} sr__wtimes;
static inline int sr__db_timed(int db)
{
    return db == SR_DB_DOCS || db == SR_DB_FILES || db == SR_DB_REQUESTS || db == SR_DB_MONITORS;
}
static inline void wtimes_put(uint8_t b[SR_WTIMES], int64_t first_ms, int64_t last_ms)
{
    sr_put_le64(b, (uint64_t)first_ms);
    sr_put_le64(b + 8, (uint64_t)last_ms);
}
static inline int wtimes_strip(const void **val, size_t *n, sr__wtimes *w)
{
    const uint8_t *v = *val;
    if (*n < SR_WTIMES) return -1;
    w->first_ms = (int64_t)sr_get_le64(v);
    w->last_ms = (int64_t)sr_get_le64(v + 8);
    *val = v + SR_WTIMES;
    *n -= SR_WTIMES;
    return 0;
}

/* A `docs` value (layout above): 0 and its parts (not NUL-terminated), or
 * -1 for a value that does not decode. */
typedef struct sr__docval {
    uint64_t revision;
    int owner_kind;
    const char *owner, *json;
    size_t ownerl, jsonl;
    sr__wtimes w;
} sr__docval;
static inline int doc_decode(const void *val, size_t n, sr__docval *d)
{
    if (wtimes_strip(&val, &n, &d->w)) return -1;
    const uint8_t *v = val;
    if (n < 10 || n - 10 < v[9]) return -1;
    d->revision = sr_get_le64(v);
    d->owner_kind = v[8];
    d->ownerl = v[9];
    d->owner = (const char *)v + 10;
    d->json = d->owner + d->ownerl;
    d->jsonl = n - 10 - d->ownerl;
    return 0;
}

static inline int latest_decode(const void *p, size_t n, sr_sample *s, sr_vtype *t)
{
    const uint8_t *x = p;
    if (n < 10) return SR_ECORRUPT;
    s->ts = (int64_t)sr_get_le64(x);
    s->quality = x[8];
    *t = (sr_vtype)x[9];
    if (*t == SR_VT_STRING) {
        s->v.str.s = (const char *)x + 10;
        s->v.str.slen = (uint32_t)(n - 10);
        return SR_OK;
    }
    if (n != 18) return SR_ECORRUPT;
    uint64_t bits = sr_get_le64(x + 10);
    if (*t == SR_VT_NUMBER) memcpy(&s->v.f, &bits, 8);
    else if (*t == SR_VT_INTEGER) s->v.i = (int64_t)bits;
    else s->v.b = (int)bits;
    return SR_OK;
}

/* An `audit` row (layout above): its key's time and seq, and its value's
 * parts (NUL-terminated strings pointing into the value). 0, or -1 for a
 * row that does not decode. */
enum { SR_AUDIT_KEY = 16, SR_AUDIT_NSTR = 8 };
typedef struct sr__audit_row {
    int64_t ms;
    uint64_t seq;
    int actor_kind;
    const char *s[SR_AUDIT_NSTR]; /* op, actor, source, kind, action, target, outcome, detail */
} sr__audit_row;
static inline void audit_key(uint8_t k[SR_AUDIT_KEY], int64_t ms, uint64_t seq)
{
    be64(k, ts_key(ms));
    be64(k + 8, seq);
}
static inline int audit_decode(const void *key, size_t kl, const void *val, size_t n, sr__audit_row *a)
{
    const uint8_t *v = val, *end = v + n, *p = v + 2;
    if (kl != SR_AUDIT_KEY || n < 2 || v[0] != 1) return -1;
    a->ms = (int64_t)(get_be64(key) ^ (1ull << 63));
    a->seq = get_be64((const uint8_t *)key + 8);
    a->actor_kind = v[1];
    for (int i = 0; i < SR_AUDIT_NSTR; i++) {
        const uint8_t *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        if (!z) return -1;
        a->s[i] = (const char *)p;
        p = z + 1;
    }
    return p == end ? 0 : -1;
}

/* The message-id items of msgidx (layout above); sr__msgid_item and
 * sr__msgid_key, which take an event, are in engine_int.h. */
enum { MSGID_ITEM = 12 };

#endif
