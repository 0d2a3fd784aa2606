/*
 * api/cluster.h -- the cluster mode over NATS JetStream, phase 1 (issue #19,
 * docs/cluster.md): every event this node's log holds is published to its
 * partition's stream, and the answers to data writes wait until JetStream
 * acknowledged their events.
 *
 * The pure parts (api/cluster_part.c, no network):
 *  - the partition of an operator: FNV-1a 64 of its id, then jump
 *    consistent hashing into the partition count (growing the count from n
 *    to n + 1 moves about 1/(n + 1) of the operators); platform events (no
 *    operator) are on partition 0;
 *  - the wait list: answers held until the confirmed watermark passes the
 *    last seq of their command;
 *  - the checks of the [cluster] keys (URLs, names).
 * The publisher (api/cluster.c, libnats): a thread of its own reads the log
 * from the confirmed watermark on (sr_engine_log_each), publishes each event
 * asynchronously (Nats-Msg-Id "<node>:<seq>"), and advances the watermark
 * as acknowledgements arrive on libnats's thread; no cnats call is made on a
 * libuv loop thread.
 *
 * Invariants:
 *  1. An answer held by sr_cluster_submit is given only once every event up
 *     to its command's last seq is durable in the log AND acknowledged by
 *     JetStream (confirmed watermark >= last seq), or with an error (never a
 *     positive one) when the list is full or the node stops.
 *  2. The confirmed watermark only grows; it is written to
 *     DATA/cluster/confirmed atomically (temporary file, fsync, rename) and
 *     may lag: after a restart the tail above it is published again under
 *     the same ids, which JetStream drops within its dedup window.
 *  3. An event's Msg-Id is "<node>:<seq>": the same on every retry.
 *  4. The partition count is fixed at the first start (DATA/cluster/
 *     partitions); another value later is refused at open.
 */
#ifndef SR_CLUSTER_H
#define SR_CLUSTER_H

#include "engine/records.h"
#include "engine/suiro.h"
#include "storage/crypto.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- partitions (api/cluster_part.c) ---- */
uint64_t sr_fnv1a64(const void *p, size_t n);
/* Lamping and Veach's jump consistent hash: a bucket in [0, buckets). */
uint32_t sr_jump_hash(uint64_t key, uint32_t buckets);
/* The partition of operator op ("" or NULL: the platform's, 0). */
uint32_t sr_cluster_partition(const char *op, uint32_t partitions);

/* ---- the wait list (api/cluster_part.c) ---- */
typedef struct sr_wl_item {
    uint64_t last;   /* the command's last seq */
    sr_engine_cb cb;
    void *ctx;
    sr_result res;
} sr_wl_item;
typedef struct sr_waitlist {
    pthread_mutex_t mu;
    uint64_t confirmed;  /* every seq <= this is acknowledged */
    sr_wl_item *items;   /* a ring of cap, FIFO */
    size_t cap, head, n;
    int closed;          /* sr_waitlist_close: nothing is held any more */
    /* optional (read-your-writes): called on each released answer's result, outside the lock,
     * before its callback (api/cluster.c fills its partition and stream seq) */
    void (*fill)(void *arg, uint64_t last, sr_result *res);
    void *fill_arg;
} sr_waitlist;
SR_MUST_CHECK int sr_waitlist_init(sr_waitlist *w, size_t cap, uint64_t confirmed);
void sr_waitlist_destroy(sr_waitlist *w);
/* Hold an answer (res, whose last seq is last) until the watermark passes
 * it: 0 held; 1 already confirmed (call cb now yourself); SR_EFULL the list
 * holds cap answers; SR_ECLOSED closed. */
SR_MUST_CHECK int sr_waitlist_hold(sr_waitlist *w, uint64_t last, sr_engine_cb cb, void *ctx, const sr_result *res);
/* Raise the watermark to seq (never lowers it) and call back, outside the
 * lock and in hold order, each held answer whose last seq is now <= it.
 * Returns how many were called. */
size_t sr_waitlist_confirm(sr_waitlist *w, uint64_t seq);
/* Close: every answer still held is called back with rc (its result's rc
 * and err.code replaced, a message saying why); later holds are
 * SR_ECLOSED. Returns how many. */
size_t sr_waitlist_close(sr_waitlist *w, int rc, const char *why);
uint64_t sr_waitlist_confirmed(sr_waitlist *w);
size_t sr_waitlist_held(sr_waitlist *w);

/* ---- the [cluster] keys' checks (api/cluster_part.c) ---- */
/* A comma-separated list of nats://host:port (or tls://) URLs: 0, or -1
 * with err naming the bad one. */
int sr_cluster_check_urls(const char *urls, char *err, size_t errlen);
/* A node or stream-prefix name: 1..31 of [A-Za-z0-9_-]: 0, or -1. */
int sr_cluster_check_name(const char *what, const char *name, char *err, size_t errlen);
/* DATA/cluster/partitions: stored at the first call, compared later:
 * SR_OK, SR_ECONFLICT (another count stored: err says both), SR_EIO. */
SR_MUST_CHECK int sr_cluster_partitions_fix(const char *data_dir, uint32_t partitions, char *err, size_t errlen);
/* The confirmed watermark DATA/cluster/confirmed (0 when there is none). */
uint64_t sr_cluster_confirmed_read(const char *data_dir);
SR_MUST_CHECK int sr_cluster_confirmed_write(const char *data_dir, uint64_t seq);

/* ---- the publisher (api/cluster.c) ---- */
typedef struct sr_cluster_opts {
    const char *nats, *node, *name, *data_dir;
    uint32_t partitions, replicas, dedup_window_s, ack_timeout_ms, max_pending;
    uint32_t lease_ms;       /* the ownership leases' length (0: no ownership manager) */
    const char *http_listen; /* announced in the node's heartbeat (apif, admin) */
    const char *owned; /* [cluster] owned: "leases" (NULL: the lease manager decides, when lease_ms > 0),
                        * or statically "all", "none", or a list "0,3,5-7" (no lease manager) */
    const char *advertise; /* the base URL peers forward to (sr_fwd_advertise_url; phase 2b), in the heartbeat */
    /* stream keys (api/cluster_seal.h, docs/keys.md "Cluster: stream keys"): with the master key
     * ([engine] key_file, the same on every node) every payload is sealed and only sealed ones
     * are applied; NULL: plaintext streams, and a sealed payload is refused */
    const sr_key *master;
    uint32_t rotate_days; /* [keys] rotate_days: the stream epochs' length (0: one epoch) */
} sr_cluster_opts;
typedef struct sr_cluster sr_cluster;
/* Fix the partition count, read the watermark, hook the engine, start the
 * publisher thread. Does not wait for NATS (a node serves while NATS is
 * down; its data writes wait). Sets the process's cluster (sr_cluster_submit). */
SR_MUST_CHECK int sr_cluster_open(sr_engine *e, const sr_cluster_opts *o, sr_cluster **out, char *err, size_t errlen);
/* Stop: the answers still held get SR_ECLOSED (not acknowledged: the client
 * retries), and so does every answer the engine gives from now on; the
 * watermark is written, the thread ends. NULL-safe; idempotent. */
void sr_cluster_close(sr_cluster *c);
/* Free, after sr_engine_close (the engine's last callbacks still reach the
 * closed wait list). NULL-safe. */
void sr_cluster_free(sr_cluster *c);
/* sr_engine_submit, whose callback, for a stored command, is held until
 * JetStream acknowledged its events (invariant 1); without a cluster the
 * same as sr_engine_submit. For data writes (gateway values and messages,
 * app writes). */
SR_MUST_CHECK int sr_cluster_submit(sr_engine *e, const sr_slice *events, size_t n, sr_engine_cb cb, void *ctx);
/* The same, waited for (as sr_engine_submit_wait: never on a libuv loop
 * thread): the Admin API's file uploads (api/admin_files.c), answered only
 * once the FilePut and the file's bytes are in JetStream (api/cluster_blob.h). */
SR_MUST_CHECK int sr_cluster_submit_wait(sr_engine *e, const sr_slice *events, size_t n, sr_result *res);

typedef struct sr_cluster_stats {
    uint64_t published, acked, republished, errors, confirmed, log_last, held;
    uint64_t replicated; /* events with an origin (another node's): not published again (a data point's
                            MasterPut: its PointAlias is, counted in published) */
    uint64_t sealed, erased; /* stream keys: payloads sealed; events not sent, their stream key destroyed */
    int connected;
} sr_cluster_stats;
/* The process's cluster's figures; 0 if there is none. */
int sr_cluster_get_stats(sr_cluster_stats *out);

/* Read-your-writes (api/ryw.h): the partition and JetStream stream seq of
 * this node's event seq, when it was acknowledged and is still in the
 * publisher's window of recent seqs (max_pending): 1, else 0. Any thread. */
int sr_cluster_stream_seq(uint64_t seq, uint32_t *part, uint64_t *sseq);


/* ---- ownership (api/cluster_own.c; docs/cluster.md "Ownership", issue #19
 * phase 2a): leases in the JetStream KV bucket <name>_OWNERS, changed by
 * compare-and-set; the manager thread sets the owned bits, the consumers
 * read them. ---- */
/* sr_cluster_owns / sr_cluster_set_owned: below, with the consumers. */

/* The rendezvous (highest-random-weight) weight of (part, node): splitmix64's
 * finaliser of FNV-1a-64 over the node's name (at most 59 bytes) followed
 * by part as 4 bytes little-endian. */
uint64_t sr_own_weight(uint32_t part, const char *node);
/* The index in nodes[0..n) of part's preferred node (the highest weight;
 * a tie: the smaller name), or -1 when n is 0. */
int sr_own_preferred(uint32_t part, const char *const *nodes, size_t n);

/* A lease as the bucket holds it (part.<NNN>): node "" when released. */
typedef struct sr_lease {
    char node[32];
    int64_t until_ms; /* wall clock, ms since the epoch */
    uint64_t epoch;
} sr_lease;
/* The bucket's bytes are outside input: SR_OK, or SR_EINVAL with err
 * naming the problem (never a crash; *out zeroed). */
SR_MUST_CHECK int sr_lease_parse(const void *p, size_t n, sr_lease *out, char *err, size_t errlen);
/* The JSON of l into buf: its length, or -1 when it does not fit. */
int sr_lease_format(const sr_lease *l, char *buf, size_t n);
/* A node's heartbeat (node.<node>). */
typedef struct sr_node_info {
    char node[32], apif[160], admin[160];
    int64_t started_ms, at_ms;
} sr_node_info;
SR_MUST_CHECK int sr_node_info_parse(const void *p, size_t n, sr_node_info *out, char *err, size_t errlen);

/* The JSON readers of the buckets' and relay's values (api/cluster_own.c;
 * api/cluster*.c only): an object from bytes (NULL with err naming why),
 * a string member of 0 (empty_ok) or 1 to n - 1 bytes without NUL, an
 * integer member >= min; -1 with err naming the member. */
struct json_t;
struct json_t *sr__cjson_obj(const void *p, size_t n, const char *what, char *err, size_t errlen);
int sr__cjson_str(struct json_t *o, const char *k, int empty_ok, char *out, size_t n, char *err, size_t errlen);
int sr__cjson_int(struct json_t *o, const char *k, int64_t min, int64_t *out, char *err, size_t errlen);

/* The manager (engine-internal to api/cluster*.c: sr__). */
typedef struct sr_cluster_own sr_cluster_own;
typedef struct sr_cluster_own_stats {
    uint64_t changes[4]; /* by why: start, expired, handover, lost (sr_cluster_own_why) */
    uint32_t live;       /* live nodes in the last view */
} sr_cluster_own_stats;
SR_MUST_CHECK int sr__cluster_own_start(sr_cluster *c, sr_engine *e, const sr_cluster_opts *o, sr_cluster_own **out,
                                        char *err, size_t errlen);
/* Stop: the held leases are released (why handover), the heartbeat key
 * deleted, the thread joined. Idempotent; NULL-safe. */
void sr__cluster_own_stop(sr_cluster_own *o);
void sr__cluster_own_free(sr_cluster_own *o);
void sr__cluster_own_stats(sr_cluster_own *o, sr_cluster_own_stats *out);
const char *sr_cluster_own_why(int i);
struct json_t;
struct json_t *sr__cluster_own_status(sr_cluster_own *o);
/* The process's cluster's ownership: the status (GET /admin/v1/cluster;
 * {"enabled":false} without a cluster), the figures (0 without one), and
 * the number of partitions it owns. */
struct json_t *sr_cluster_status(void);
int sr_cluster_get_own_stats(sr_cluster_own_stats *out, uint32_t *owned);
/* ---- ownership and the consumers (api/cluster_sub.c, phase 2a) ----
 * Every node consumes every partition's registry events (<name>.p.NNN.reg)
 * and, for each partition it owns, all of its events (<name>.p.NNN.*), from
 * its checkpoints in the index (sr_engine_cluster_ckpt), into its own log
 * with their origin (sr_engine_submit_origin: exactly once). Its own events
 * (Suiro-Node) are skipped. */
#define SR_CLUSTER_MAX_PARTITIONS 999u
/* "all", "none" or a list of partitions and ranges ("0,3,5-7") into bits
 * (one per partition, (partitions + 7) / 8 bytes): 0, or SR_EINVAL with err
 * naming the bad item (api/cluster_part.c). */
int sr_cluster_parse_owned(const char *spec, uint32_t partitions, uint8_t *bits, char *err, size_t errlen);
/* Ownership, set by the lease manager ([cluster] owned = leases, the
 * default) or statically by [cluster] owned = all | none | a list, read by
 * the consumers: 1 when this node owns part now. Setting it on (off) starts
 * (stops) the full consumer of that partition at the consumers' next round.
 * Any thread; NULL-safe. */
int sr_cluster_owns(sr_cluster *c, uint32_t part);
void sr_cluster_set_owned(sr_cluster *c, uint32_t part, int owned);

typedef struct sr_csub sr_csub;
typedef struct sr_csub_stats {
    uint64_t reg, data; /* replicated events applied, by class */
    uint64_t duplicates; /* met again (their origin applied before): nothing done */
    uint64_t refused;    /* refused by this node's writer, or not decodable: skipped */
    uint64_t unsealed;   /* not applied: a payload not opened (stream keys: a wrong, unknown or erased key,
                          * a plaintext payload on a sealed node or the reverse) */
    uint32_t partitions;
} sr_csub_stats;
/* Start the consumers' thread (its own NATS connection; it does not wait
 * for NATS). */
SR_MUST_CHECK int sr_csub_start(sr_engine *e, const sr_cluster_opts *o, sr_csub **out, char *err, size_t errlen);
/* Stop the thread and wait for the submitted events' callbacks (before
 * sr_engine_close). NULL-safe; idempotent. */
void sr_csub_stop(sr_csub *s);
void sr_csub_free(sr_csub *s);
int sr_csub_owns(sr_csub *s, uint32_t part);
void sr_csub_set_owned(sr_csub *s, uint32_t part, int owned);
void sr_csub_get_stats(sr_csub *s, sr_csub_stats *out);
/* Events partition part's stream held after the last one consumed (its
 * full consumer's, else its registry one's), as of that fetch. */
uint64_t sr_csub_lag(sr_csub *s, uint32_t part);
/* 1 when part's full consumer (this node owns it) fetched everything the
 * stream held and it was applied: its reads may be served here (phase 2b,
 * forwarding: a partition just taken over is answered 503 until then). */
int sr_csub_caught_up(sr_csub *s, uint32_t part);
/* The process's cluster's consumers (NULL without a cluster). */
sr_csub *sr_cluster_consumers(void);

/* A NATS connection to urls_csv (comma-separated), named name, with the
 * cluster's policy (2 s connect timeout, reconnect for ever every 250 ms):
 * a natsStatus (NATS_OK 0). Each thread that talks to NATS has its own
 * (api/cluster.c, cluster_own.c, cluster_sub.c). */
struct __natsConnection;
int sr__nats_connect(const char *urls_csv, const char *name, struct __natsConnection **out);

/* ---- where a partition's owner is (phase 2b, forwarding: api/cluster_fwd.h) ----
 * From the memory the lease manager keeps (its last round's view): no NATS
 * call, any thread. */
sr_cluster *sr_cluster_self(void); /* the process's cluster, or NULL */
/* Erase stream key id now, for an admin (actor, source: the Admin API's
 * POST /admin/v1/cluster/keys/{keyId}/erase; issue #19 ckey): through a NATS
 * connection of its own and sr_skey_erase (api/cluster_seal.h: the intent in
 * the log, the tombstone, the result). SR_ECONFLICT: c NULL (a single node)
 * or no master key; else sr_skey_erase's code. Blocks: a worker thread. */
struct sr_skey_erase_out;
SR_MUST_CHECK int sr_cluster_erase_key(sr_cluster *c, const char *actor, const char *source, uint64_t id,
                                       struct sr_skey_erase_out *out, char *err, size_t errlen);
/* The retention sweep of the stream keys (issue #19 ckey, docs/keys.md
 * "Cluster: stream keys"): every active data or audit key of the bucket
 * whose epoch ended at or before its operator's retention cut of that class
 * (sr_engine_retention_cut) is erased (sr_skey_erase, why retention, actor
 * the node): the intent, the tombstone, the result. Run after each retention
 * sweep of the node, on a worker thread; every node runs it: a key destroyed
 * already is skipped (not recorded), one another node destroys meanwhile is
 * recorded "found" (the tombstone is an idempotent put). SR_OK also with no
 * cluster or no master key (nothing sealed). */
typedef struct sr_skey_sweep_rep sr_cluster_skey_report; /* api/cluster_seal.h */
struct sr_retention_cfg;
SR_MUST_CHECK int sr_cluster_skey_sweep(sr_cluster *c, const struct sr_retention_cfg *cfg, sr_cluster_skey_report *rep,
                                        char *err, size_t errlen);
const char *sr_cluster_node(sr_cluster *c);
uint32_t sr_cluster_partitions(sr_cluster *c);
int sr_cluster_has_leases(sr_cluster *c); /* 1: the lease manager runs ([cluster] owned = leases) */
/* The owner of part: 0 with its node's name and advertised base URL when
 * its lease is held (not past its end + margin) by a live node that
 * advertises one; else SR_ENOTFOUND (no lease, released, expired, or no
 * lease manager), SR_EINVAL (its node is not live or advertises no URL). */
int sr_cluster_owner_url(sr_cluster *c, uint32_t part, char *url, size_t len, char node[32]);
/* 1 when host is the host of a live node's advertised URL (its name into
 * node), else 0. */
int sr_cluster_peer_host(sr_cluster *c, const char *host, char node[32]);
/* Advertise url from now on (the [http] listener bound to a port chosen
 * at start, port 0). */
void sr_cluster_set_advertise(sr_cluster *c, const char *url);
void sr__cluster_own_set_url(sr_cluster_own *o, const char *url);
int sr__cluster_own_owner(sr_cluster_own *o, uint32_t part, char *url, size_t len, char node[32]);
int sr__cluster_own_peer(sr_cluster_own *o, const char *host, char node[32]);
/* 1: this node's fence of part holds now (by the caller's clock) */
int sr__cluster_own_holds(sr_cluster_own *o, uint32_t part);
/* ---- reading a partition's stream back (api/cluster_read.c; docs/cluster.md
 * "Replay, verify and audit from the stream"): for tools (`suiro cluster`),
 * never on a libuv loop thread (the calls block on NATS). ---- */
typedef struct sr_stream_reader sr_stream_reader;
/* Connect to urls (comma-separated); name: the streams' prefix ("" SUIRO). */
SR_MUST_CHECK int sr_stream_reader_open(const char *urls, const char *name, sr_stream_reader **out, char *err,
                                        size_t errlen);
void sr_stream_reader_close(sr_stream_reader *r); /* NULL-safe */
/* One message of a stream: its headers as they are ("" when absent; outside
 * input) and its payload; valid during the call. */
typedef struct sr_stream_msg {
    const char *stream, *subject, *msgid, *node, *op, *kind, *seq_hdr;
    uint32_t partition;
    uint64_t sseq; /* its sequence in the stream */
    uint64_t seq;  /* Suiro-Seq as a number (0: absent or not a number) */
    const void *data;
    size_t len;
    const char *key; /* Suiro-Key: the stream key that sealed it ("" plaintext) */
    int opened;      /* 1 opened (data is the plaintext); -1 not opened (why says why: data is as stored); 0 plain */
    char why[320];
} sr_stream_msg;
/* Open sealed payloads with the stream keys of master (api/cluster_seal.h;
 * the keys from the bucket <name>_KEYS): SR_OK, SR_ENOMEM. */
SR_MUST_CHECK int sr_stream_reader_set_master(sr_stream_reader *r, const sr_key *master, uint32_t rotate_days);
/* The reader's jsCtx * (the tools' keys' bucket: api/cluster_seal.h). */
void *sr_stream_reader_js(sr_stream_reader *r);
typedef int (*sr_stream_msg_fn)(void *ctx, const sr_stream_msg *m);
/* Every message of partition part's stream from stream seq from on (0: the
 * first), in order, to fn (its nonzero stops and is returned). SR_ENOTFOUND
 * (no such stream) or SR_EIO with err saying why. */
SR_MUST_CHECK int sr_stream_each(sr_stream_reader *r, uint32_t part, uint64_t from, sr_stream_msg_fn fn, void *ctx,
                                 char *err, size_t errlen);
/* The JSON line of a message (without the newline) appended to out:
 * {stream, sseq, subject, partition, msgid, node, seq, operator, kind,
 * event} where event is the payload as `suiro replay` shows it, or null
 * when it does not decode. `suiro cluster dump` and natsdump print it. */
SR_MUST_CHECK int sr_stream_msg_json(const sr_stream_msg *m, sr_buf *out);

#endif
