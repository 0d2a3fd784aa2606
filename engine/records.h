/*
 * engine/records.h -- the engine's typed boundary: what api/ reads from the
 * index and what it builds for sr_engine_submit, as the engine's own types.
 *
 * api/ sees no protobuf message and no record framing (issue #12 §3; the
 * layering check tests/integration/check_layering.py fails on an api/ file
 * that includes a protobuf header). Every decoder of an index record and
 * every walker of a list lives in engine/records.c, once.
 *
 * READS. A read fills a typed struct (sr_master, sr_reg_entry, sr_user,
 * sr_file_meta, sr_monitor_rec, sr_request_rec); a list read opens a typed iterator. Every
 * string, array and byte slice such a struct holds points into memory that
 * the read's holder (sr_rec) owns:
 *
 *     VALID UNTIL sr_rec_close (LMDB's MDB_val rule): do not modify or
 *     free them, copy what must outlive the holder.
 *
 * One holder may serve several reads; every result stays valid until it is
 * closed. Strings are never NULL ("" when absent). A holder is used by one
 * thread at a time. Each read is one LMDB snapshot (a list is read whole,
 * then decoded record by record as the iterator advances).
 *
 * Iterators: sr_rec_next_*() returns 1 with *out filled, 0 at the end, or a
 * negative SR_E* code: SR_ECORRUPT for a record that does not decode (the
 * iterator has moved past it, so a caller may skip it and go on) or for
 * broken framing (the iterator is then at its end).
 *
 * COMMANDS. sr_cmd_*() append one serialized event (envelope: operator,
 * actor, actor kind, message id) to a caller's sr_buf, ready for
 * sr_engine_submit (one slice per event). Strings are copied into the bytes.
 *
 * ERRORS. The one carrier of error detail from the engine to api/ is
 * sr_result (engine/suiro.h): a command's outcome (rc, msg) reaches the
 * caller's callback in it; opening, rebuilding and verifying use sr_errinfo,
 * the base layer's detail where no command exists. Reads return a code only.
 */
#ifndef SR_RECORDS_H
#define SR_RECORDS_H

#include "engine/suiro.h"

#include <stddef.h>
#include <stdint.h>

/* ---- kinds (the same numbers as codecs/events.proto; checked in records.c) */

typedef enum sr_actor_kind {
    SR_ACTOR_UNKNOWN = 0,
    SR_ACTOR_SYSTEM = 1,
    SR_ACTOR_GATEWAY = 2,
    SR_ACTOR_APP = 3,
    SR_ACTOR_USER = 4,
} sr_actor_kind;

typedef enum sr_master_kind {
    SR_MK_FACILITY = 1,
    SR_MK_EQUIPMENT = 2,
    SR_MK_DEVICE = 3,
    SR_MK_DATA_POINT = 4,
} sr_master_kind;

typedef enum sr_reg_kind {
    SR_RG_OPERATOR = 1,
    SR_RG_GATEWAY = 2,
    SR_RG_APP = 3,
    SR_RG_GRANT = 4,
    SR_RG_VENDOR = 5,
    SR_RG_VENDOR_GRANT = 6, /* an operator's grant of data.read to a vendor (docs/admin.md "Vendor grants") */
    SR_RG_RETENTION = 7,    /* an operator's retention period of a class (docs/retention.md) */
    SR_RG_NOTIFY = 9,       /* an operator's alarm notification target (docs/monitoring.md "Notifications"):
                             * url a webhook URL or mailto:ADDRESS, access the lowest level */
    SR_RG_REVOKED = 10,     /* an operator's revoked app or gateway certificate (docs/signatures.md): id
                             * the certId "ID#SERIAL" (api/sigcheck.h), name the reason, revoked_ms */
    SR_RG_SIGREQ = 11,      /* an operator's data point whose control must be signed (docs/signatures.md):
                             * id the dataId, name the reason, revoked_ms when it was required */
} sr_reg_kind;

typedef enum sr_req_kind {
    SR_RK_IMMEDIATE = 1,
    SR_RK_PERIODIC_START = 2,
    SR_RK_PERIODIC_STOP = 3,
    SR_RK_CONTROL = 4,
} sr_req_kind;

typedef enum sr_req_state {
    SR_RS_CREATED = 1,
    SR_RS_DISPATCHED = 2,
    SR_RS_ACKNOWLEDGED = 3,
    SR_RS_SUCCEEDED = 4,
    SR_RS_FAILED = 5,
    SR_RS_TIMED_OUT = 6,
    SR_RS_CANCELLED = 7,
} sr_req_state;

typedef enum sr_mon_state {
    SR_MS_STARTING = 1,
    SR_MS_RUNNING = 2,
    SR_MS_STOPPING = 3,
    SR_MS_STOPPED = 4,
} sr_mon_state;

typedef enum sr_session_state {
    SR_SS_CONNECTED = 1,
    SR_SS_DISCONNECTED = 2,
    SR_SS_EXPIRED = 3,   /* keep-alive or token expiry */
    SR_SS_TAKEN_OVER = 4,
} sr_session_state;

typedef enum sr_alarm_level {
    SR_AL_WARNING = 1,
    SR_AL_MINOR = 2,
    SR_AL_MAJOR = 3,
} sr_alarm_level;

/* ---- the holder ------------------------------------------------------------ */

typedef struct sr_rec {
    /* private */
    sr_buf raw;      /* a list read's records, framed */
    size_t pos;      /* the iterator's next record in raw */
    size_t count;    /* records in the list */
    void **held;     /* decoded messages and arrays, freed at close */
    uint8_t *is_msg; /* held[i] is a decoded message (else a plain allocation) */
    size_t nheld, capheld;
} sr_rec;

#define SR_REC_INIT {{0}, 0, 0, NULL, NULL, 0, 0}

/* Release everything the holder's reads handed out; it may then be reused.
 * NULL-safe; closing twice is harmless. */
void sr_rec_close(sr_rec *r);
/* Records in the list the holder's last list read opened. */
size_t sr_rec_count(const sr_rec *r);

/* ---- masters --------------------------------------------------------------- */

typedef struct sr_master {
    sr_master_kind kind;
    const char *id, *parent_id, *name;
    const char *gateway_id; /* devices: the gateway that reaches them */
    uint32_t point;         /* data points: the point number */
    int type;               /* data points: sr_vtype, 0 when unspecified */
    const char *unit;
    int has_min, has_max;
    double min, max;
    int point_kind;         /* 1 measure, 2 control, 3 both; 0 unspecified */
    const char *location;
    const char *retention_class; /* data points: the data class of its retention period ("": default) */
} sr_master;

SR_MUST_CHECK int sr_read_master(sr_engine *e, const char *op, sr_master_kind kind, const char *id, sr_rec *r,
                                 sr_master *out);
SR_MUST_CHECK int sr_list_masters(sr_engine *e, const char *op, sr_master_kind kind, sr_rec *r);
int sr_rec_next_master(sr_rec *r, sr_master *out);

/* ---- registry (operators, gateways, apps, grants, vendors) ------------------- */

typedef struct sr_reg_entry {
    sr_reg_kind kind;
    const char *id, *name;
    sr_slice secret_hash;   /* scrypt record (engine/secret.h); len 0: none */
    const char *url;        /* apps: push URL */
    const char *cert_pem;
    const char *app_id;     /* grants */
    const char *pattern;    /* grants: a data id or a prefix ending in '*' */
    const char *access;     /* grants: read, control, read+control */
    const char *protocol;   /* gateways: mqtt, http */
    const char *vendor_id;  /* apps, gateways: the vendor that builds it (R-ID-8), "" none */
    const char *vendor_kind; /* vendors (the platform's, operator ""): ap, gw */
    int disabled;           /* apps, gateways: no login, live sessions end (docs/admin.md "Revocation") */
    const char *grant_kind; /* grants: "" data points; "documents" (pattern: a collection), "files"
                             * (pattern: a path prefix), docs/admin.md "Documents and files" */
    uint32_t retention_days; /* SR_RG_RETENTION (id: the class): the period in days, 0 kept for ever */
    int require_signature;  /* apps: its control requests must carry a valid protection (docs/signatures.md) */
    int64_t revoked_ms;     /* SR_RG_REVOKED: when the certificate was revoked */
} sr_reg_entry;

SR_MUST_CHECK int sr_read_registry(sr_engine *e, const char *op, sr_reg_kind kind, const char *id, sr_rec *r,
                                   sr_reg_entry *out);
SR_MUST_CHECK int sr_list_registry(sr_engine *e, const char *op, sr_reg_kind kind, sr_rec *r);
int sr_rec_next_registry(sr_rec *r, sr_reg_entry *out);
/* Every operator of the platform (its own entry: kind operator, id the
 * operator's), in id order; read them with sr_rec_next_registry. */
SR_MUST_CHECK int sr_list_operators(sr_engine *e, sr_rec *r);

/* ---- users (docs/admin.md "Users") ------------------------------------------ */

typedef enum sr_user_scope {
    SR_US_PLATFORM = 1,
    SR_US_OPERATOR = 2,
    SR_US_VENDOR = 3,
} sr_user_scope;

typedef struct sr_user {
    const char *id, *name;
    sr_user_scope scope;
    const char *scope_id;       /* the operator's or vendor's id; "" for the platform */
    const char *const *roles;   /* engine/authz.h role names */
    size_t n_roles;
    sr_slice password_hash;     /* scrypt record (engine/secret.h); len 0: none (deleted) */
    int temporary;              /* the password must be changed at the next login */
    int64_t password_set_ms;
    int disabled, deleted;      /* a deleted user's record stays: its id is reserved */
    sr_slice totp_secret_sealed; /* len 0: no TOTP */
    int64_t totp_last_step;     /* the last accepted TOTP step (a code is accepted once) */
    const char *last_action, *approved_by;
} sr_user;

SR_MUST_CHECK int sr_read_user(sr_engine *e, const char *id, sr_rec *r, sr_user *out);
/* Every user of the platform, deleted ones too, in id order. */
SR_MUST_CHECK int sr_list_users(sr_engine *e, sr_rec *r);
int sr_rec_next_user(sr_rec *r, sr_user *out);

/* ---- the login policy (docs/admin.md "The login policy") --------------------- */

typedef struct sr_login_policy_rec {
    const char *const *totp_roles; /* the platform's: roles whose users need TOTP */
    size_t n_totp_roles;
    int totp_required;             /* an operator's: all its users need TOTP */
} sr_login_policy_rec;

/* The policy of operator op ("": the platform's). SR_ENOTFOUND when none
 * was ever set (then nothing is required). */
SR_MUST_CHECK int sr_read_login_policy(sr_engine *e, const char *op, sr_rec *r, sr_login_policy_rec *out);

/* ---- pending changes (the two-person rule, R-ID-5; docs/admin.md) ------------- */

/* A pending change as the index keeps it. state is the last action:
 * "requested" (waiting), "approved" (and applied, in the same event),
 * "rejected" or "expired"; sr_pending_state tells a requested change past
 * its expiry as "expired" before an event says so. */
typedef struct sr_pending {
    const char *id, *state, *summary;
    sr_user_scope scope;        /* whose admins decide it */
    const char *scope_id;       /* the operator's or vendor's id; "" for the platform */
    const char *authz_action;   /* engine/authz.h action name the deciders hold */
    const char *op;             /* the change's operator ("" for a platform change) */
    const char *change_kind;    /* the change's (first) event's kind ("user", "registry_put", ...) */
    const sr_slice *changes;    /* the change: encoded events, applied in order (as applied once approved) */
    size_t n_changes;
    const char *requester;
    int64_t requested_ms, expires_ms;
    const char *decided_by;     /* approved, rejected: the second admin */
    int64_t decided_ms;
    const char *reason;         /* rejected: why */
    uint64_t requested_seq, decided_seq;
} sr_pending;

SR_MUST_CHECK int sr_read_pending(sr_engine *e, const char *id, sr_rec *r, sr_pending *out);
/* Every pending change, decided ones too, in id order. */
SR_MUST_CHECK int sr_list_pending(sr_engine *e, sr_rec *r);
int sr_rec_next_pending(sr_rec *r, sr_pending *out);
/* p's state at now_ms: "expired" for a requested change at or past its
 * expiry (the writer refuses to decide it then), else p->state. */
const char *sr_pending_state(const sr_pending *p, int64_t now_ms);

/* ---- alarms (issue #17, R-MO-3; docs/monitoring.md "Alarms"; engine/alarms.c) - */

/* An alarm as the index keeps it: one occurrence of a condition (op, rule,
 * subject). state: "raised", "acknowledged" or "resolved"; level and
 * message are its latest raise's; count: raises (1 + re-occurrences). */
typedef struct sr_alarm {
    const char *id, *op, *rule, *subject, *state, *message, *source;
    sr_alarm_level level;
    int auto_resolve, auto_resolved;
    uint32_t count;
    const char *raised_by, *acked_by, *resolved_by, *ack_comment, *resolve_comment;
    int64_t raised_ms, last_ms, acked_ms, resolved_ms; /* 0: not (yet) */
} sr_alarm;

SR_MUST_CHECK int sr_read_alarm(sr_engine *e, const char *id, sr_rec *r, sr_alarm *out);
/* Every alarm, of every operator, in the order they were raised. */
SR_MUST_CHECK int sr_list_alarms(sr_engine *e, sr_rec *r);
int sr_rec_next_alarm(sr_rec *r, sr_alarm *out);
/* The open alarms (raised or acknowledged) only: one per condition. */
SR_MUST_CHECK int sr_list_open_alarms(sr_engine *e, sr_rec *r);
/* "warning", "minor", "major"; and back (0, or -1). */
const char *sr_alarm_level_name(sr_alarm_level l);
int sr_alarm_level_parse(const char *s, sr_alarm_level *out);

/* ---- the audit trail (docs/admin.md "Audit"; engine/audit.c) ------------------ */

typedef struct sr_audit_rec {
    uint64_t seq;
    int64_t ms;              /* the event's ingest time, UTC ms */
    sr_actor_kind actor_kind;
    const char *op;          /* "" for the platform */
    const char *actor, *source;
    const char *kind;        /* login, login_failed, session, logout, user, registry, master, key, admin, ... */
    const char *action, *target, *outcome, *detail;
} sr_audit_rec;

/* The rows of the query (engine/suiro.h sr_audit_query: a time window,
 * filters, a cursor, a limit), one read snapshot; *more = 1 if cut. */
SR_MUST_CHECK int sr_list_audit(sr_engine *e, const sr_audit_query *q, sr_rec *r, int *more);
int sr_rec_next_audit(sr_rec *r, sr_audit_rec *out);
/* "system", "gateway", "app", "user", "unknown" */
const char *sr_actor_kind_name(int kind);
/* The audit row of a decoded event, as the trail would hold it (the same
 * summary, engine/audit.c): 1 and *out (its strings in *h), or 0 when the
 * event is not in the trail (the data kinds). For `suiro cluster audit`,
 * which reads the rows from a partition's stream. */
typedef struct sr_audit_holder {
    char s[8][400];
} sr_audit_holder;
struct sr_event_view;
int sr_event_audit(const struct sr_event_view *v, sr_audit_holder *h, sr_audit_rec *out);

/* ---- files ------------------------------------------------------------------- */

typedef struct sr_file_meta {
    const char *path;
    sr_slice sha256;        /* content address in the blob store (32 bytes when sound) */
    uint64_t size;
    const char *content_type;
    /* the owner (R-PO-2): the app or user that created the file, filled by
     * the writer (a put or sr_cmd_file_put's owner is ignored); "" for the
     * operator's (a file stored before owners without one) */
    const char *owner;
    sr_actor_kind owner_kind; /* SR_ACTOR_APP or SR_ACTOR_USER (0 with "" owner) */
    const char *const *shared_with; /* users of the operator (sr_cmd_file_share); kept by a put */
    size_t n_shared_with;
    int64_t updated_ms;
    /* the data key sealing the blob (docs/blob-format.md version 2: the
     * blob <sha256>.<key_id>, read with the storage/blobs.h _keyed calls);
     * 0: a version 1 blob (no keyring, or stored before issue #16). A put
     * takes sr_engine_file_key's; the writer refuses any other operator's */
    uint32_t key_id;
} sr_file_meta;

SR_MUST_CHECK int sr_read_file(sr_engine *e, const char *op, const char *path, sr_rec *r, sr_file_meta *out);
/* Files of op under a path prefix, path order, at most limit (0: 1000);
 * *more = 1 if cut. */
SR_MUST_CHECK int sr_list_files(sr_engine *e, const char *op, const char *prefix, size_t limit, sr_rec *r,
                                int *more);
int sr_rec_next_file(sr_rec *r, sr_file_meta *out);
/* Every file of every operator, in (operator, path) order, in one read
 * snapshot: fn gets the operator and the file (valid during the call); a
 * non-zero return stops the walk and is returned, as is SR_ECORRUPT for a
 * record that does not decode. */
SR_MUST_CHECK int sr_each_file(sr_engine *e, int (*fn)(void *ctx, const char *op, const sr_file_meta *f),
                               void *ctx);

/* ---- who may reach documents and files (R-PO-2, docs/admin.md "Documents
 * and files") ----------------------------------------------------------------- */

typedef enum sr_store_kind {
    SR_STORE_DOCUMENTS = 1,   /* a grant's pattern is a collection */
    SR_STORE_FILES = 2,       /* a grant's pattern is a path prefix */
    SR_STORE_CORRECTIONS = 3, /* a grant's pattern is a data point's id (a trailing '*' a prefix):
                               * write lets the app import corrections of its values (docs/csv.md) */
    SR_STORE_ALARMS = 4,      /* a grant's pattern is an alarm rule's name (a trailing '*' a prefix; "*" all):
                               * read lets the app list its operator's alarms of those rules (AP-IF (ext)
                               * GET /api/v1/alarms, docs/monitoring.md "Alarms") */
    SR_STORE_ALIVE = 5,       /* a grant's pattern is a gateway's id (a trailing '*' a prefix): read lets
                               * the app see its alive status (GET /api/v1/alive, docs/monitoring.md) */
} sr_store_kind;
enum { SR_STORE_READ = 1, SR_STORE_WRITE = 2 };

/* An app's grant on documents or files: the registry's RG_GRANT with
 * grant_kind "documents" or "files". */
typedef struct sr_store_grant {
    sr_store_kind kind;
    char pattern[520]; /* a collection or a path prefix; "*" all; a trailing '*' a prefix */
    int access;        /* SR_STORE_READ | SR_STORE_WRITE */
} sr_store_grant;
/* "documents" / "files" / "corrections" / "alarms" / "alive" -> kind; 0 if none of them. */
int sr_store_kind_parse(const char *s, sr_store_kind *out);
const char *sr_store_kind_name(sr_store_kind k);
/* "read", "write", "read+write" -> bits; 0 if none of them. */
int sr_store_access_parse(const char *s);
const char *sr_store_access_name(int access);
/* 0 when pattern is a sound pattern of kind (a collection id, a path
 * prefix, "*" or either ending in '*'), else SR_EINVAL and why. */
int sr_store_pattern_check(sr_store_kind kind, const char *pattern, char *why, size_t whylen);
/* The app's document and file grants as the index holds them now (*out, *n;
 * sr_free()); no grants: SR_OK, *n 0. Read at each request: a change
 * counts at the app's next request. */
SR_MUST_CHECK int sr_store_grants_load(sr_engine *e, const char *op, const char *app, sr_store_grant **out,
                                       size_t *n);
/* The access bits g[0..n) give on a collection (SR_STORE_DOCUMENTS) or a
 * path (SR_STORE_FILES: a prefix matches at a '/' boundary, "*" matches
 * everything). */
int sr_store_grants_allow(const sr_store_grant *g, size_t n, sr_store_kind kind, const char *name);
/* 1 when (kind, id) is the owner (owner_kind 0 with an owner: an app's,
 * as files stored before owner_kind). */
int sr_store_is_owner(sr_actor_kind owner_kind, const char *owner, sr_actor_kind kind, const char *id);

/* ---- documents ----------------------------------------------------------------- */

typedef struct sr_doc {
    const char *id;
    uint64_t revision;
    sr_slice json;   /* the document's JSON text (not NUL-terminated) */
} sr_doc;

/* Documents of a collection, as sr_engine_doc_scan (engine/suiro.h: the
 * field/value filter, the bounds, the cursor after_id, *more and
 * next_after); read them with sr_rec_next_doc. */
SR_MUST_CHECK int sr_list_docs(sr_engine *e, const char *op, const char *coll, const char *field,
                               const char *value, const sr_doc_bounds *b, const char *after_id, sr_rec *r,
                               int *more, char *next_after);
int sr_rec_next_doc(sr_rec *r, sr_doc *out);

/* ---- monitors ---------------------------------------------------------------- */

typedef struct sr_monitor_rec {
    const char *monitor_id;
    sr_mon_state state;
    const char *app_id;
    const char *const *data_ids;
    size_t n_data_ids;
    uint32_t interval_ms;
    const char *const *gateway_ids; /* the gateways it runs on */
    size_t n_gateway_ids;
    const char *const *acked;       /* gateways that acknowledged the current action */
    size_t n_acked;
    int64_t start_ms, end_ms, created_ms;
    const char *node;               /* cluster mode: the node that runs it ("" or NULL: one node, every node) */
} sr_monitor_rec;

SR_MUST_CHECK int sr_read_monitor(sr_engine *e, const char *op, const char *monitor, sr_rec *r,
                                  sr_monitor_rec *out);
SR_MUST_CHECK int sr_list_monitors(sr_engine *e, const char *op, sr_rec *r);
int sr_rec_next_monitor(sr_rec *r, sr_monitor_rec *out);

/* ---- alive status (R-MO-1, docs/monitoring.md "Alive status") -------------- */
typedef enum sr_alive_state { SR_AS_ONLINE = 1, SR_AS_OFFLINE = 2 } sr_alive_state;
/* Why a principal went online or offline (AliveReason in events.proto). */
#define SR_ALIVE_REASONS(X)                          \
    X(CONNECT, 1, "connect")                         \
    X(DISCONNECT, 2, "disconnect")                   \
    X(STATUS_ONLINE, 3, "status-online")             \
    X(STATUS_OFFLINE, 4, "status-offline")           \
    X(KEEPALIVE_EXPIRED, 5, "keepalive-expired")     \
    X(WILL, 6, "will")                               \
    X(HTTP_SILENCE, 7, "http-silence")               \
    X(SERVER_RESTART, 8, "server-restart")
typedef enum sr_alive_reason {
#define SR_X_(id, n, name) SR_AR_##id = n,
    SR_ALIVE_REASONS(SR_X_)
#undef SR_X_
} sr_alive_reason;
/* The reason's wire name ("keepalive-expired"), NULL for none. */
const char *sr_alive_reason_name(int reason);
typedef struct sr_alive_rec {
    const char *op;          /* read only: the operator (a command's is env->op) */
    sr_actor_kind kind;      /* SR_ACTOR_GATEWAY or SR_ACTOR_APP */
    const char *id;
    sr_alive_state state;
    sr_alive_reason reason;
    const char *binding;     /* mqtt, mqtts, http, https */
    const char *remote;      /* the peer's address */
    const char *will;        /* the will's handling: "" none, "applied", "refused: ..." */
    int64_t since_ms;        /* the transition's ingest time (read only) */
    uint64_t seq;            /* its event (read only) */
} sr_alive_rec;
/* The latest state of every gateway and app of op (NULL or "": every
 * operator), in (operator, kind, id) order. */
SR_MUST_CHECK int sr_list_alive(sr_engine *e, const char *op, sr_rec *r);
int sr_rec_next_alive(sr_rec *r, sr_alive_rec *out);

/* ---- requests ---------------------------------------------------------------- */

/* The data protection of a control request's value (R-SE-3,
 * docs/signatures.md): none, or the app's protection verified against its
 * registered certificate over the request's signed_value. */
typedef enum sr_sig_state { SR_SIG_NONE = 0, SR_SIG_VERIFIED = 1 } sr_sig_state;

/* A value of a control request, of an applied control, or of an immediate
 * acquisition's answer. */
typedef struct sr_control_value {
    const char *data_id;
    sr_vtype type;          /* 0 when unspecified (read as a number) */
    double f;
    int64_t i;
    int b;
    const char *s;
    int64_t timestamp_ms;   /* values of an immediate result */
    uint32_t quality;       /* sr_quality */
    int sig_state;          /* a control request's value: sr_sig_state (docs/signatures.md) */
} sr_control_value;

typedef struct sr_request_rec {
    const char *request_id;
    sr_req_kind kind;
    const char *app_id, *gateway_id;
    const char *const *data_ids;
    size_t n_data_ids;
    uint32_t interval_ms, timeout_ms;
    const char *monitor_id;
    const sr_control_value *control;
    size_t n_control;
    sr_slice protection;    /* the app's signature, passed to the gateway unchanged */
    sr_slice signed_value;  /* with protection: the exact bytes of the "value" member it signs */
    int64_t deadline_ms, start_ms, end_ms;
    int async;              /* the app-level request of an ?async=true call (its outcome is pushed) */
} sr_request_rec;

typedef struct sr_request_transition {
    const char *request_id;
    sr_req_state state;
    const char *error_code; /* interface.md code, "" on success */
    const char *message;
    const sr_control_value *applied;
    size_t n_applied;
    const char *gateway_id; /* "": the app-level request */
    const sr_control_value *values;
    size_t n_values;
    sr_slice protection;    /* the gateway's verified protection (compact JSON), len 0: none */
    sr_slice signed_body;   /* ... and the exact bytes of its message's "body" it signs */
} sr_request_transition;

/* A request and its latest transition, by id and gateway ("" or NULL: the
 * app-level request). *has_state = 0 when no transition was stored yet (st
 * is then zeroed). SR_ENOTFOUND if there is no such request. */
SR_MUST_CHECK int sr_read_request(sr_engine *e, const char *op, const char *req, const char *gw, sr_rec *r,
                                  sr_request_rec *rq, sr_request_transition *st, int *has_state);

/* ---- commands ------------------------------------------------------------------ */

/* The envelope of an event: who sends it. */
typedef struct sr_cmd_env {
    const char *op;          /* operator */
    const char *actor;       /* gateway id, app id, user id, or "system" */
    sr_actor_kind kind;
    const char *message_id;  /* the sender's id for de-duplication; NULL: none */
    const char *source;      /* peer address, or NULL */
} sr_cmd_env;

/* The latest timestamp the engine stores: 9999-12-31T23:59:59.999Z. */
#define SR_TS_MAX INT64_C(253402300799999)

/* Measurements of npts points (the compact encoding of engine/evbuild.c). */
typedef struct sr_pv_in {
    uint32_t point;
    sr_vtype type;
    const sr_sample *s; /* n samples, any order */
    size_t n;
} sr_pv_in;
SR_MUST_CHECK int sr_ev_measurements(const char *op, const char *actor, sr_actor_kind kind, const char *message_id,
                                     const sr_pv_in *pts, size_t npts, sr_buf *out);
/* The same, the values of monitor monitor_id (GW_PERIODIC_DATA; NULL or "":
 * none): the log says whose they are, so the push to the monitor's app is
 * derived from this event again after a restart (api/push.c). */
SR_MUST_CHECK int sr_ev_monitor_measurements(const char *op, const char *actor, sr_actor_kind kind,
                                             const char *message_id, const char *monitor_id, const sr_pv_in *pts,
                                             size_t npts, sr_buf *out);
/* The same, of a gateway message whose protection verified (sig_state
 * SR_SIG_VERIFIED: Measurements.sig_state, docs/signatures.md) or not
 * (SR_SIG_NONE: the same bytes as sr_ev_monitor_measurements). */
SR_MUST_CHECK int sr_ev_signed_measurements(const char *op, const char *actor, sr_actor_kind kind,
                                            const char *message_id, const char *monitor_id, int sig_state,
                                            const sr_pv_in *pts, size_t npts, sr_buf *out);
/* The push module's delivered mark of app (R-AP-17, PushMark): every push
 * of the app's that an event at or below `through` produced was delivered
 * or dropped. env: the app's operator, actor "system"; op "" and app "": the
 * seq the durable pushes began at. */
SR_MUST_CHECK int sr_cmd_push_mark(const sr_cmd_env *env, const char *app, uint64_t through, sr_buf *out);
/* The AliveEvent of a (R-MO-1, sr_alive_rec above) (op = env->op). env: actor the principal itself or
 * "system". */
SR_MUST_CHECK int sr_cmd_alive(const sr_cmd_env *env, const sr_alive_rec *a, sr_buf *out);

/* An ownership change of the cluster mode (ClusterEvent, Event.body 51,
 * issue #19, api/cluster_own.c). env: op "", actor the node's name, kind
 * SR_ACTOR_SYSTEM. why: start, expired, handover, lost; outcome: done,
 * failed. */
typedef struct sr_cluster_change {
    uint32_t partition;
    const char *old_owner, *new_owner; /* "" or NULL: none */
    uint64_t epoch;
    const char *why, *outcome;
    int64_t until_ms;
} sr_cluster_change;
SR_MUST_CHECK int sr_cmd_cluster(const sr_cmd_env *env, const sr_cluster_change *c, sr_buf *out);

/* A stream key's erasure (StreamKeyErase, Event.body 57, issue #19 ckey;
 * api/cluster_seal.h sr_skey_erase, docs/keys.md "Cluster: stream keys").
 * env: op the key's operator, actor the admin (SR_ACTOR_USER) or the node's
 * name (SR_ACTOR_SYSTEM, the retention sweep). why: admin, retention;
 * outcome: pending (the intent), done, found, failed (its result: intent_seq
 * the intent's seq), refused (no intent). */
typedef struct sr_skey_erase_rec {
    const char *key_id; /* 16 lowercase hex digits */
    const char *key_operator, *key_class;
    uint32_t epoch, period_days;
    const char *why;
    int64_t cut_ms;
    const char *outcome, *message;
    uint64_t intent_seq;
    const char *node;
} sr_skey_erase_rec;
SR_MUST_CHECK int sr_cmd_skey_erase(const sr_cmd_env *env, const sr_skey_erase_rec *s, sr_buf *out);
/* The open intents of stream key erasures (engine/keys.c invariant 4: an
 * intent whose result is not in the log) to fn(ctx, key id, intent seq,
 * its why: admin or retention), at most 64 a call (fn's nonzero stops and
 * is returned). */
SR_MUST_CHECK int sr_engine_skey_pending(sr_engine *e, int (*fn)(void *ctx, uint64_t id, uint64_t seq, const char *why),
                                         void *ctx);
/* Make every acknowledged event durable now (a no-op with sync=always, whose
 * acknowledgement is after the fsync): an erasure's intent before its
 * tombstone. Any thread but the writer's callbacks. */
SR_MUST_CHECK int sr_engine_log_durable(sr_engine *e);
/* The engine's clock (sr_engine_opts.clock_ms, else the wall clock), UTC ms:
 * the ingest times' and the retention sweep's now. */
int64_t sr_engine_now_ms(sr_engine *e);

/* The notifier's durable state (issue #17, api/notify.c, NotifyEvent in
 * events.proto): outcome "delivered" or "given_up" of the delivery of alarm
 * step alarm_seq to target target_id (env: the target's operator, actor
 * "system"), or "mark" (env's operator "": through, every delivery of a
 * step at or below it is done). */
typedef struct sr_notify_rec {
    const char *outcome;     /* delivered, given_up, mark */
    uint64_t alarm_seq;
    const char *target_id, *delivery_id, *error, *channel;
    uint32_t attempts;
    uint64_t through;        /* mark */
} sr_notify_rec;
SR_MUST_CHECK int sr_cmd_notify(const sr_cmd_env *env, const sr_notify_rec *n, sr_buf *out);
/* The notifier's mark (`notifyq`); SR_ENOTFOUND before the first. */
SR_MUST_CHECK int sr_engine_notify_mark(sr_engine *e, uint64_t *through);
/* A done delivery above the mark: *outcome SR_NOTIFY_DELIVERED or
 * SR_NOTIFY_GIVEN_UP, *attempts; SR_ENOTFOUND if it is not done (or at or
 * below the mark). */
enum { SR_NOTIFY_DELIVERED = 1, SR_NOTIFY_GIVEN_UP = 2 };
SR_MUST_CHECK int sr_engine_notify_done(sr_engine *e, uint64_t alarm_seq, const char *op, const char *target,
                                        int *outcome, uint32_t *attempts);

/* ---- corrections (R-PO-1, docs/csv.md; engine/correct.c) ---------------- */
#define SR_CORR_REASON_MAX 1000  /* bytes of a correction's reason */
#define SR_CORR_ERRORS_MAX 100   /* bad rows listed (all are counted) */
#define SR_CORR_ROWS_MAX 1000000 /* rows of one import */
typedef struct sr_corr_error {
    size_t line; /* the physical line of the CSV (1: the header) */
    char msg[200];
} sr_corr_error;
typedef struct sr_corr_report {
    size_t rows, points;   /* data rows read; distinct data points of a good import */
    size_t nbad, nerr;     /* bad rows: all of them; listed in err[] (line order) */
    sr_corr_error err[SR_CORR_ERRORS_MAX];
    char field[16];        /* a refusal of the whole input: its field (csv, reason) */
    char msg[200];         /* and why ("" when the refusal is the bad rows') */
    char import_id[24];    /* "csv-" and 16 hex digits */
} sr_corr_report;
/* An import of a corrected CSV (header dataId,timestamp,value[,quality];
 * engine/correct.c says what a good row is): every row checked against the
 * point table of env->op (and may(may_ctx, dataId), when not NULL: 1 if
 * the caller may correct that data point, an app's grants), then ONE
 * Correction event appended to out (actor, kind, source from env; reason;
 * a new import id in rep->import_id). Any bad row: SR_EINVAL with every bad
 * row in rep (nothing appended); a bad input as a whole (no header, too many
 * rows, a bad reason): an error with rep->field and rep->msg. */
SR_MUST_CHECK int sr_cmd_corrections(sr_engine *e, const sr_cmd_env *env, const void *csv, size_t len, const char *reason,
                                     int (*may)(void *ctx, const char *data_id), void *may_ctx, sr_corr_report *rep,
                                     sr_buf *out);
/* The Correction event of the values pts[0..npts) (the compact form of
 * sr_ev_measurements), reason, import id and row count. */
SR_MUST_CHECK int sr_ev_correction(const sr_cmd_env *env, const sr_pv_in *pts, size_t npts, const char *reason,
                                   const char *import_id, uint32_t rows, sr_buf *out);

/* A session opened or ended (audit). */
SR_MUST_CHECK int sr_cmd_session(const sr_cmd_env *env, sr_actor_kind kind, const char *id, sr_session_state state,
                                 const char *protocol, const char *reason, sr_buf *out);
/* A session with a bearer token opened (SR_SS_CONNECTED) or ended
 * (SR_SS_DISCONNECTED: logout or revocation, SR_SS_EXPIRED): an app's AP-IF
 * session (env->kind SR_ACTOR_APP, env's operator and actor the app's) or a
 * user's (SR_ACTOR_USER, env's actor the user, env's operator the user's,
 * "" for a platform user). token_hash is SHA-256 of the bearer token's text
 * (the token itself is never stored; api/httpu.h sr_tokens_add makes one).
 * Kept in the index while open (sr_each_session, sr_session_verify). */
SR_MUST_CHECK int sr_cmd_token_session(const sr_cmd_env *env, const uint8_t token_hash[32], int64_t expires_ms,
                                       sr_session_state state, const char *reason, sr_buf *out);
/* Every open session of user (env's operator, user) ends at once (one
 * event; env's actor is who revokes them). */
SR_MUST_CHECK int sr_cmd_user_sessions_revoke(const sr_cmd_env *env, const char *user, const char *reason,
                                              sr_buf *out);
/* An open session as the index holds it (expired ones too until an event
 * ends them). */
typedef struct sr_session_rec {
    sr_actor_kind kind;       /* SR_ACTOR_APP or SR_ACTOR_USER */
    char op[256], id[256];    /* operator ("" for a platform user), app or user */
    const uint8_t *token_hash; /* 32 bytes */
    int64_t expires_ms;
} sr_session_rec;
/* Every open session, each once; fn's record is valid during the call; a
 * nonzero return of fn stops the walk and is returned. */
SR_MUST_CHECK int sr_each_session(sr_engine *e, int (*fn)(void *ctx, const sr_session_rec *s), void *ctx);
/* The session of token_hash if it is open, of kind, and expires after
 * now_ms: SR_OK and *out (token_hash pointing at the argument); SR_ENOTFOUND
 * if unknown, ended (logout, revoked), of another kind or expired. */
SR_MUST_CHECK int sr_session_verify(sr_engine *e, const uint8_t token_hash[32], sr_actor_kind kind, int64_t now_ms,
                                    sr_session_rec *out);
/* sr_session_verify of a user's session and sr_read_user of its user, in
 * one read snapshot (the Admin API's check at every request): SR_OK with
 * *s and *u (u's strings held by r); SR_ENOTFOUND when the session is
 * unknown, ended, not a user's or expired (*expired = 1), or its user is
 * gone. */
SR_MUST_CHECK int sr_user_session_verify(sr_engine *e, const uint8_t token_hash[32], int64_t now_ms, sr_rec *r,
                                         sr_session_rec *s, int *expired, sr_user *u);
/* A login attempt (audit). */
SR_MUST_CHECK int sr_cmd_auth(const sr_cmd_env *env, sr_actor_kind kind, const char *principal, int success,
                              const char *method, const char *reason, sr_buf *out);
/* An admin operation with no event of its own: a refused one, or a read of
 * sensitive data (AdminEvent; docs/admin.md "Audit"). env's operator is the
 * operator the path names (the caller's own when it names none). */
typedef struct sr_admin_op {
    const char *method, *route; /* GET ..., the route's pattern */
    const char *target;         /* operator:ID, vendor:ID, user:ID, platform */
    const char *action;         /* the role table's action checked, or "" */
    const char *outcome;        /* refused, done */
    const char *code, *message; /* the answer's code (E2003) and message */
    unsigned status;            /* the HTTP status answered */
} sr_admin_op;
SR_MUST_CHECK int sr_cmd_admin_op(const sr_cmd_env *env, const sr_admin_op *a, sr_buf *out);
/* A batch of reads of one app or gateway (AccessEvent, R-SE-5, issue #18;
 * api/access.c batches them, docs/admin.md "Audit"): env's operator, actor
 * and kind (SR_ACTOR_APP or SR_ACTOR_GATEWAY) are the reader's, env's
 * source the first entry's. 1..SR_ACCESS_ENTRIES_MAX entries; each names at
 * most SR_ACCESS_POINTS_MAX of its data points (npoints counts them all). */
#define SR_ACCESS_ENTRIES_MAX 4096
#define SR_ACCESS_POINTS_MAX 16
typedef struct sr_access_entry {
    int64_t time_ms;
    const char *binding;  /* apif-http, gwif-http, gwif-mqtt */
    const char *method;   /* GET, POST; MQTT: the message type */
    const char *route;    /* the route's pattern, or the MQTT topic's kind */
    const char *points[SR_ACCESS_POINTS_MAX];
    size_t npoints_listed; /* of points[] */
    uint32_t npoints;      /* named in all */
    uint64_t values, bytes;
    uint32_t status;
    const char *code;     /* a refusal's wire code, "" if answered */
    const char *source;   /* the peer's address */
} sr_access_entry;
SR_MUST_CHECK int sr_cmd_access(const sr_cmd_env *env, const sr_access_entry *a, size_t n, sr_buf *out);
/* The same batch packed (AccessBatch, Event.body 50, codecs/accpack.h):
 * what api/access.c writes (sr_cmd_access's AccessEvent stays readable; it
 * is the old form). packed[0..n) is the bytes of sr_apk_finish. */
SR_MUST_CHECK int sr_cmd_access_batch(const sr_cmd_env *env, const uint8_t *packed, size_t n, sr_buf *out);
/* A batch of REFUSED writes and controls of one app or gateway, all of one
 * wire code (the entries' code; AccessEvent.refusals, issue #18,
 * docs/audit.md "Refusals"): as sr_cmd_access, and dropped counts the
 * refusals of that code left out of the batch by its bound. */
SR_MUST_CHECK int sr_cmd_refusals(const sr_cmd_env *env, const sr_access_entry *a, size_t n, uint64_t dropped,
                                  sr_buf *out);
/* A backup taken or restored (BackupEvent, docs/backup.md). */
typedef struct sr_backup_rec {
    const char *action;  /* backup, restore */
    const char *outcome; /* done, failed */
    const char *name, *base, *message;
    uint64_t seq, bytes;
    uint8_t tip[32];
    int has_tip;
    uint32_t files_copied, files_linked;
} sr_backup_rec;
SR_MUST_CHECK int sr_cmd_backup_ev(const sr_cmd_env *env, const sr_backup_rec *b, sr_buf *out);
/* A key command or record (KeyEvent, docs/keys.md). action "rotate": the
 * writer retires the active data key of (key_operator, key_class: data,
 * audit or config) and starts the next epoch, durably in the keyring, and
 * stores the event as "rotated" with the keys' ids and epoch (refused
 * without a keyring, and for another operator's key unless env's operator
 * is the platform's ""). "exported", "imported", "master-rotated": records
 * of what the caller did (outcome, message). "created", "rotated" and
 * "destroyed" are the engine's own: refused. */
typedef struct sr_key_rec {
    const char *action, *key_operator, *key_class, *outcome, *message;
    uint32_t master_key_id, old_master_key_id;
    /* "destroy" (sr_engine_key_destroy): the key, and why (docs/keys.md) */
    uint32_t key_id, period_days;
    int64_t epoch_end_ms, cut_ms;
} sr_key_rec;
SR_MUST_CHECK int sr_cmd_key_ev(const sr_cmd_env *env, const sr_key_rec *k, sr_buf *out);
/* The engine's keyring (engine/keys.c, docs/keys.md), for `suiro key` and
 * the /admin/v1/keys routes. Each change is a KeyEvent recorded with env's
 * who and from where (outcome done, or failed with the reason). SR_ENOTFOUND:
 * the engine has no keyring (no master key). */
struct sr_keyinfo; /* storage/keyring.h */
/* Every key's metadata (never a key): *out sr_malloc'ed. */
SR_MUST_CHECK int sr_engine_key_list(sr_engine *e, struct sr_keyinfo **out, size_t *n);
uint32_t sr_engine_master_key_id(sr_engine *e); /* 0: no keyring */
/* The wrapped keyring (a key backup: no key readable without the master). */
SR_MUST_CHECK int sr_engine_key_export(sr_engine *e, const sr_cmd_env *env, sr_buf *out);
/* Restore the entries of an export this keyring lacks (wrapped by this
 * master, or by other if given). */
SR_MUST_CHECK int sr_engine_key_import(sr_engine *e, const sr_cmd_env *env, const void *p, size_t n,
                                       const struct sr_key *other, size_t *added, sr_errinfo *ei);
/* Re-wrap every data key under new_master (no log byte rewritten); the
 * engine goes on under it (it must outlive the engine). keep_legacy: the
 * old master stays readable as a legacy entry (it sealed log segments of
 * versions 1 and 2). The caller then makes new_master the key source. */
SR_MUST_CHECK int sr_engine_key_rewrap(sr_engine *e, const sr_cmd_env *env, const struct sr_key *new_master,
                                       int keep_legacy, sr_errinfo *ei);
/* The key a new file of env->op is sealed by (docs/blob-format.md "Version
 * 2: what the engine passes"): the active data key of (env->op, data), the
 * one the writer seals that operator's data records with. If the operator
 * has none yet, a KeyEvent "rotate" of (env->op, data) is submitted with
 * env's who and from where, and waited for (epoch 1, durable in the keyring
 * and the log, before any blob is sealed by it). *id 0 without a keyring (no
 * master key: a version 1 blob). Pass it to sr_blob_writer_begin_keyed and
 * in sr_file_meta.key_id. Any thread but the writer's. */
SR_MUST_CHECK int sr_engine_file_key(sr_engine *e, const sr_cmd_env *env, uint32_t *id);
/* The keyring's resolver (storage/crypto.h sr_keys), for a blob store a
 * tool opens itself (sr_blobs_opts.keys; `suiro verify`): borrowed, valid
 * while e is open. NULL: no keyring. */
const struct sr_keys *sr_engine_data_keys(sr_engine *e);
/* Destroy the retired data or audit key id (the log's erasure, docs/keys.md
 * "Retention and erasure"): the KeyEvent "destroyed" (env's who and from
 * where; the key; why: period_days and cut_ms) is appended and durable
 * first, then the keyring writes the key's tombstone. A crash between them
 * leaves the event without the tombstone: the replay of the event, or the
 * next sweep, finishes it. SR_OK for a key destroyed already; SR_EINVAL (ei
 * says why) for an active, config or legacy key; SR_ENOTFOUND: no keyring or
 * no such key. The retention sweep decides which keys (engine/retention.c). */
SR_MUST_CHECK int sr_engine_key_destroy(sr_engine *e, const sr_cmd_env *env, uint32_t id, uint32_t period_days,
                                        int64_t cut_ms, sr_errinfo *ei);
/* A step of an alarm (AlarmEvent, codecs/events.proto), env's operator:
 * "raised" (rule, subject, level, source, message, auto_resolve: a new
 * alarm of the condition, or a re-occurrence of its open one),
 * "acknowledged" (id, comment) or "resolved" (id, or with id NULL the open
 * alarm of rule and subject; comment; auto_resolved: by its rule). The
 * engine refuses: no such alarm of env's operator, or no open alarm of the
 * condition (SR_ENOTFOUND); a step it is past (SR_ECONFLICT); a bad rule,
 * level or a text over 1000 bytes (SR_EINVAL). */
typedef struct sr_alarm_step {
    const char *state, *id, *rule, *subject, *source, *message, *comment;
    sr_alarm_level level;
    int auto_resolve, auto_resolved;
} sr_alarm_step;
SR_MUST_CHECK int sr_cmd_alarm(const sr_cmd_env *env, const sr_alarm_step *s, sr_buf *out);
/* Documents: revision is the expected current one (0: any). */
SR_MUST_CHECK int sr_cmd_doc_put(const sr_cmd_env *env, const char *collection, const char *doc_id,
                                 uint64_t revision, const void *json, size_t json_len, sr_buf *out);
SR_MUST_CHECK int sr_cmd_doc_delete(const sr_cmd_env *env, const char *collection, const char *doc_id,
                                    uint64_t revision, sr_buf *out);
/* Files: the metadata of a file whose bytes are in the blob store already. */
SR_MUST_CHECK int sr_cmd_file_put(const sr_cmd_env *env, const sr_file_meta *f, sr_buf *out);
SR_MUST_CHECK int sr_cmd_file_delete(const sr_cmd_env *env, const char *path, sr_buf *out);
/* A file's whole share list (n 0: shared with nobody): users of env's
 * operator. The engine refuses a file that does not exist (SR_ENOTFOUND) and
 * a user that is not an undeleted user of that operator (SR_EINVAL, naming
 * it). Who may share is the caller's check (api/admin_files.c). */
SR_MUST_CHECK int sr_cmd_file_share(const sr_cmd_env *env, const char *path, const char *const *users, size_t n,
                                    sr_buf *out);
/* Requests (docs/requests.md): a request or one gateway's part of it
 * (gateway_id set); a transition of either. */
SR_MUST_CHECK int sr_cmd_request_created(const sr_cmd_env *env, const sr_request_rec *rq, sr_buf *out);
SR_MUST_CHECK int sr_cmd_request_transition(const sr_cmd_env *env, const sr_request_transition *rt, sr_buf *out);
/* A monitor's whole state; gateway_id is set when it runs on one gateway. */
SR_MUST_CHECK int sr_cmd_monitor(const sr_cmd_env *env, const sr_monitor_rec *m, sr_buf *out);
/* Users. A password is hashed here (scrypt, slow: call off the event loop)
 * after the policy's check (sr_password_check); why says what is wrong.
 * now_ms is the password's set time. approved_by (NULL: none) is the second
 * admin of a privilege change (R-ID-5). The engine refuses (sr_result): a
 * created id that exists or ever existed (SR_EEXIST), a change of a user that
 * does not exist or was deleted (SR_ENOTFOUND), a role not of the user's
 * scope, a TOTP step not above the last accepted one (SR_EINVAL). */
typedef struct sr_password_policy {
    size_t min_length, max_length; /* in bytes */
    int64_t max_age_days;          /* 0: no maximum age */
} sr_password_policy;
/* 0 when password fits the policy; else SR_EINVAL and why. */
int sr_password_check(const sr_password_policy *p, const char *password, char *why, size_t whylen);
/* 1 when a password set at set_ms is older than the policy's maximum age at now_ms. */
int sr_password_expired(const sr_password_policy *p, int64_t set_ms, int64_t now_ms);
SR_MUST_CHECK int sr_cmd_user_create(const sr_cmd_env *env, const sr_user *u, const char *password, int temporary,
                                     int64_t now_ms, const sr_password_policy *pol, sr_buf *out, char *why,
                                     size_t whylen);
SR_MUST_CHECK int sr_cmd_user_password(const sr_cmd_env *env, const char *id, const char *password, int temporary,
                                       int64_t now_ms, const sr_password_policy *pol, sr_buf *out, char *why,
                                       size_t whylen);
SR_MUST_CHECK int sr_cmd_user_roles(const sr_cmd_env *env, const char *id, const char *const *roles, size_t n,
                                    const char *approved_by, sr_buf *out);
/* action: "disabled", "enabled" or "deleted". */
SR_MUST_CHECK int sr_cmd_user_state(const sr_cmd_env *env, const char *id, const char *action,
                                    const char *approved_by, sr_buf *out);
/* TOTP: the sealed secret (len 0: removed), and an accepted code's step. */
SR_MUST_CHECK int sr_cmd_user_totp_set(const sr_cmd_env *env, const char *id, sr_slice sealed, sr_buf *out);
SR_MUST_CHECK int sr_cmd_user_totp_step(const sr_cmd_env *env, const char *id, int64_t step, sr_buf *out);
/* 1 when password is the user's (constant-time, one scrypt also for a
 * user without a password: sr_secret_check). */
int sr_user_password_ok(const sr_user *u, const char *password);

/* The whole login policy of env's operator ("": the platform's, roles only;
 * an operator's: totp_required only). The engine refuses the other's
 * member, a role that is not one, a role named twice (SR_EINVAL). */
SR_MUST_CHECK int sr_cmd_login_policy(const sr_cmd_env *env, const sr_login_policy_rec *p, sr_buf *out);
/* Pending changes (the two-person rule; docs/admin.md). A privilege change
 * is built with its own builders (sr_cmd_user_roles, sr_cmd_registry_put,
 * ...; one event or several, applied in order as one command), env's actor
 * the requester, and wrapped as the change of a pending request; env is the
 * same (the change's operator, the requester). The engine refuses (sr_result): an id that exists
 * (SR_EEXIST), a requester who is not an active user allowed act on the
 * scope, a change that does not apply now, an expiry not after the ingest
 * time (SR_EINVAL). */
#define SR_PENDING_MAX_EVENTS 4096 /* events one pending change holds (a sheet edit's) */
typedef struct sr_pending_req {
    const char *id;             /* the caller's new id (codecs/ids.h) */
    sr_user_scope scope;        /* whose admins decide it */
    const char *scope_id;       /* the operator's (== env's operator) or vendor's id; "" for the platform */
    const char *authz_action;   /* the action the deciders must hold (sr_authz_action_name) */
    const char *summary;        /* for the approvers, at most 1000 bytes */
    int64_t expires_ms;
    const sr_slice *changes;    /* the change: 1 to SR_PENDING_MAX_EVENTS encoded events builders made,
                                 * applied in order as one */
    size_t n_changes;
} sr_pending_req;
SR_MUST_CHECK int sr_cmd_pending_request(const sr_cmd_env *env, const sr_pending_req *q, sr_buf *out);
/* A decision on pending change id: action "approved" (the change is
 * applied in the same event), "rejected" (reason), or "expired" (anyone,
 * once past the expiry). env's operator is the change's, its actor the
 * deciding admin. The engine refuses: no such change (SR_ENOTFOUND); one
 * decided already or expired (SR_ECONFLICT: the second of two racing
 * decisions); the requester deciding, an approver not an active user
 * allowed the change's action on its scope, an "expired" before the expiry
 * (SR_EINVAL); and the change's own refusal when it no longer applies. */
SR_MUST_CHECK int sr_cmd_pending_decide(const sr_cmd_env *env, const char *id, const char *action,
                                        const char *reason, sr_buf *out);

/* A registry entry (secret_hash len 0: unchanged). */
SR_MUST_CHECK int sr_cmd_registry_put(const sr_cmd_env *env, const sr_reg_entry *r, sr_buf *out);
/* A registry entry removed (env's operator, kind, id). */
SR_MUST_CHECK int sr_cmd_registry_delete(const sr_cmd_env *env, sr_reg_kind kind, const char *id, sr_buf *out);

/* ---- events (the log's records, for tools: suiro replay) ------------------------ */

/* How an event is written as JSON: what the engine's layer does not hold
 * (all optional). */
typedef struct sr_event_json_opts {
    /* a finite double as JSON into t (at least 48 bytes): its length, 0 to
     * fall back to %.17g; the CLI passes the AP-IF writer's sr_json_number,
     * which prints a decimal as it was sent (0.1, not 0.10000000000000001) */
    int (*number)(char *t, double f);
    /* the dataId of an operator's point number, or NULL (shown as "dataId"
     * next to "point" in measurements) */
    const char *(*data_id)(void *ctx, const char *op, uint32_t point);
    void *ctx;
    /* 1: times (value timestamps, int64 fields named *_ms) as RFC 3339 UTC
     * strings, the key without "_ms" ("ingest":"2026-11-22T05:21:00.000Z") */
    int times;
    /* 1: an event of the audit trail gets "audit": its summary with names
     * (kind, actor_kind, action, target, outcome, detail; docs/events.md) */
    int audit;
} sr_event_json_opts;

/* One event of the log, decoded. */
typedef struct sr_event_view {
    uint64_t seq;
    int64_t ingest_ms;
    const char *op, *actor;
    sr_actor_kind actor_kind;
    const char *kind;  /* the body's field name ("measurements", "master_put", ...), or "none" */
    int has_master;    /* 1: a master put, held in master */
    sr_master master;
    const void *ev;    /* private: the decoded event */
    const void *rec;   /* sr_engine_log_each only: the record as the log returned it (the serialized
                          Event, decrypted), rec_len bytes, valid during the call; else NULL */
    size_t rec_len;
    const char *origin_node; /* the cluster: the node that wrote it first (Event.origin), or NULL: this node's */
} sr_event_view;

/* The cluster's class of an event kind (sr_event_view.kind, the Suiro-Kind
 * header; engine/origins.c): the registry every node needs (published to
 * <name>.p.NNN.reg), the data its owner indexes (.data), or the node's own
 * engine's (.data too, never applied on another node). */
enum { SR_EVCLASS_REG = 1, SR_EVCLASS_DATA = 2, SR_EVCLASS_LOCAL = 3 };
int sr_event_kind_class(const char *kind);

/* The key class (storage/keyring.h SR_KC_DATA, SR_KC_AUDIT, SR_KC_CONFIG)
 * of an event kind (sr_event_view.kind, Suiro-Kind): engine/keys.c's table
 * (docs/keys.md "Classes"); -1 for a name that is no kind. The cluster's
 * stream keys are per class (api/cluster_seal.h). */
int sr_event_kind_key_class(const char *kind);

/* What the cluster's publisher sends for one event of the log (a view of
 * sr_engine_log_each; engine/origins.c invariant 5, docs/cluster.md "Data
 * point numbers"): SR_CLUSTER_SEND the record as logged (this node's own
 * event); SR_CLUSTER_SKIP nothing (another node's, in the stream already);
 * SR_CLUSTER_ALIAS *out holds a PointAlias event (kind "point_alias", the
 * registry class) to send instead of a replicated data point's MasterPut,
 * under the MasterPut's seq, written by `node` (this node's [cluster] node);
 * SR_ENOMEM. Deterministic: a re-publish sends the same bytes. */
enum { SR_CLUSTER_SEND = 0, SR_CLUSTER_SKIP = 1, SR_CLUSTER_ALIAS = 2 };
int sr_engine_cluster_payload(const sr_event_view *v, const char *node, sr_buf *out);

/* Decode a log record (storage/log.h) into *out; SR_ECORRUPT if it is no event. */
SR_MUST_CHECK int sr_event_decode(const void *rec, size_t len, sr_rec *r, sr_event_view *out);
/* 1 if the event holds measurements of point number `point`. */
int sr_event_has_point(const sr_event_view *ev, uint32_t point);
/* The monitor whose values a measurements event holds (Measurements.
 * monitor_id), "" if none or not measurements. */
const char *sr_event_monitor_id(const sr_event_view *ev);
/* The file a FilePut event names (path, sha256, size, content type, key
 * id; strings valid while the view is): SR_OK, or SR_ENOTFOUND for any
 * other event. The cluster's publisher sends the file's bytes with it
 * (api/cluster_blob.h). */
SR_MUST_CHECK int sr_event_file(const sr_event_view *ev, sr_file_meta *out);
/* A measurements event's sr_sig_state (SR_SIG_VERIFIED: the gateway's
 * protection of its message verified); SR_SIG_NONE for any other event. */
int sr_event_sig_state(const sr_event_view *ev);
/* The request id of an app-level request's outcome (a RequestTransition
 * without a gateway, to a final state), else NULL. */
const char *sr_event_request_outcome(const sr_event_view *ev);
/* The alarm step an event holds (AlarmEvent, events.proto): SR_OK and *out
 * (strings point into the event's holder), or SR_ENOTFOUND if it is none. */
typedef struct sr_alarm_view {
    const char *alarm_id, *state, *source, *message, *by;
    int level; /* SR_AL_* */
    const char *rule, *subject, *comment; /* issue #17 (engine/alarms.c); "" in older events */
} sr_alarm_view;
SR_MUST_CHECK int sr_event_alarm(const sr_event_view *ev, sr_alarm_view *out);
/* Each value of a measurements event, in the event's order (a snapshot's
 * entries, then each point's values by time): fn's nonzero stops and is
 * returned; SR_ECORRUPT for arrays that do not add up. */
typedef int (*sr_value_fn)(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s);
SR_MUST_CHECK int sr_event_each_value(const sr_event_view *ev, sr_value_fn fn, void *ctx);
/* Each durable event of the log from seq `from` on (an earlier one dropped
 * by compaction: from the first kept), decoded, to fn (its nonzero stops
 * and is returned); *last: the last durable seq when it began (events after
 * it are not read). A running engine's log: any thread. */
typedef int (*sr_event_fn)(void *ctx, const sr_event_view *ev);
SR_MUST_CHECK int sr_engine_log_each(sr_engine *e, uint64_t from, sr_event_fn fn, void *ctx, uint64_t *last);

/* ---- a partition's digest (engine/digest.c; issue #19, docs/cluster.md
 * "Replay, verify and audit from the stream") ---- */
/* The hash of one value (its time and value, never its point's number; a
 * number and an integer of the same value alike): summed mod 2^64 over a
 * point's values it is an order-independent digest of them. */
uint64_t sr_value_hash(sr_vtype type, const sr_sample *s);
typedef struct sr_point_digest {
    const char *op, *data_id; /* valid during the call */
    uint32_t point;           /* this node's number */
    uint64_t count;           /* values stored (one per time) */
    uint64_t hash;            /* the sum of sr_value_hash over them */
} sr_point_digest;
typedef int (*sr_op_pick_fn)(void *ctx, const char *op);
typedef int (*sr_point_digest_fn)(void *ctx, const sr_point_digest *d);
/* For each operator pick(pctx, op) accepts (the api's: the operators of a
 * partition), each data point holding values, in (operator, data id)
 * order: fn(ctx, digest) (its nonzero stops and is returned). Read only. */
SR_MUST_CHECK int sr_engine_partition_digest(sr_engine *e, sr_op_pick_fn pick, void *pctx, sr_point_digest_fn fn,
                                             void *ctx);
/* One page of it (the Admin route's paging): the points strictly after
 * (after_op, after_id) in that order (after_op NULL: from the first), at
 * most limit of them (0: no limit); *more (may be NULL) 1 when points
 * follow the page's last: the next page starts after it. */
SR_MUST_CHECK int sr_engine_partition_digest_page(sr_engine *e, sr_op_pick_fn pick, void *pctx, const char *after_op,
                                                  const char *after_id, size_t limit, sr_point_digest_fn fn, void *ctx,
                                                  int *more);
/* Every delivered push mark (`pushq`: op, app, through; op and app "": the
 * start of the durable pushes) to fn, in key order. */
typedef int (*sr_push_mark_fn)(void *ctx, const char *op, const char *app, uint64_t through);
SR_MUST_CHECK int sr_engine_push_marks(sr_engine *e, sr_push_mark_fn fn, void *ctx);

/* ---- the Merkle tree over the log and its signed checkpoints (issue #18,
 * engine/ckpt.c, docs/audit.md "Checkpoints and proofs"): one leaf per log
 * block, RFC 9162 hashes (storage/mtree.h). ---- */
enum { SR_TREE_HASH = 32, SR_TREE_PROOF = 64, SR_TREE_LEAF_HDR = 88 };
/* A checkpoint as the index keeps it (a CheckpointEvent). */
typedef struct sr_checkpoint {
    uint64_t seq;       /* of its event */
    uint64_t tree_size, last_seq;
    int64_t time_ms;
    uint8_t root[SR_TREE_HASH], tip[SR_TREE_HASH], key_id[SR_TREE_HASH];
    char note[2048];    /* the C2SP signed note */
    char alg[16], key_name[128], reason[16];
} sr_checkpoint;
/* The latest checkpoint, or the latest one made at or before at_ms:
 * SR_OK, SR_ENOTFOUND (none). */
SR_MUST_CHECK int sr_read_checkpoint_latest(sr_engine *e, sr_checkpoint *out);
SR_MUST_CHECK int sr_read_checkpoint_at(sr_engine *e, int64_t at_ms, sr_checkpoint *out);
/* The tree as the index has it now: size, root, the chain hash of its last
 * block, the last seq it covers. SR_ENOTFOUND: no tree kept. */
typedef struct sr_tree_head {
    uint64_t size, last_seq;
    uint8_t root[SR_TREE_HASH], tip[SR_TREE_HASH];
} sr_tree_head;
SR_MUST_CHECK int sr_read_tree_head(sr_engine *e, sr_tree_head *out);
/* The inclusion proof of record seq's block in the tree of tree_size
 * leaves (0: the current size): the leaf's index, its data (the block
 * header's first 88 bytes and its payload's SHA-256: leaf hash =
 * SHA-256(0x00 || hdr || digest)), the path (RFC 9162 2.1.3.1) and the
 * root. SR_EINVAL (a size past the tree), SR_ENOTFOUND (a record not in it,
 * or a node dropped with a trimmed segment), with ei saying which. */
typedef struct sr_inclusion {
    uint64_t tree_size, leaf_index, first_seq;
    uint32_t count;
    uint8_t hdr[SR_TREE_LEAF_HDR], digest[SR_TREE_HASH], leaf_hash[SR_TREE_HASH], root[SR_TREE_HASH];
    uint8_t path[SR_TREE_PROOF][SR_TREE_HASH];
    size_t npath;
} sr_inclusion;
SR_MUST_CHECK int sr_read_inclusion(sr_engine *e, uint64_t seq, uint64_t tree_size, sr_inclusion *out,
                                    sr_errinfo *ei);
/* The consistency proof (RFC 9162 2.1.4.1) between the trees of from and to
 * leaves (to 0: the current size), with both roots. */
typedef struct sr_consistency {
    uint64_t from, to;
    uint8_t root1[SR_TREE_HASH], root2[SR_TREE_HASH];
    uint8_t path[SR_TREE_PROOF][SR_TREE_HASH];
    size_t npath;
} sr_consistency;
SR_MUST_CHECK int sr_read_consistency(sr_engine *e, uint64_t from, uint64_t to, sr_consistency *out, sr_errinfo *ei);
/* What `suiro audit verify` reads of the index (engine/ckpt.c): every
 * checkpoint kept, by time (fn's nonzero return stops and is returned); the
 * tree's leaf rows from leaf index `from` on (fn returning SR_DONE stops:
 * SR_OK); the tree's base (the leaves a LogTrim dropped, 0 before any) and
 * the frontier there (hashes[L] for the set bits L of *base, the LogTrim's
 * compact range). SR_ENOTFOUND: no tree kept. */
typedef int (*sr_checkpoint_fn)(void *ctx, const sr_checkpoint *c);
SR_MUST_CHECK int sr_read_checkpoints(sr_engine *e, sr_checkpoint_fn fn, void *ctx);
typedef struct sr_tree_leaf {
    uint64_t index, first_seq;
    uint32_t count;
    uint8_t hash[SR_TREE_HASH], tip[SR_TREE_HASH];
} sr_tree_leaf;
typedef int (*sr_tree_leaf_fn)(void *ctx, const sr_tree_leaf *l);
SR_MUST_CHECK int sr_read_tree_leaves(sr_engine *e, uint64_t from, sr_tree_leaf_fn fn, void *ctx);
SR_MUST_CHECK int sr_read_tree_base(sr_engine *e, uint64_t *base, uint8_t hashes[][SR_TREE_HASH]);
/* A CheckpointEvent (the platform's, actor system): the fields of a tree
 * head, its time, the signed note, the algorithm, key name and key id. */
typedef struct sr_checkpoint_in {
    const sr_tree_head *head;
    int64_t time_ms;
    const char *note, *alg, *key_name, *reason;
    const uint8_t *key_id; /* SR_TREE_HASH bytes */
} sr_checkpoint_in;
SR_MUST_CHECK int sr_cmd_checkpoint(const sr_cmd_env *env, const sr_checkpoint_in *c, sr_buf *out);

/* Append the event as one JSON object (engine/event_json.c, no newline). */
SR_MUST_CHECK int sr_event_view_json(const sr_event_view *ev, const sr_event_json_opts *o, sr_buf *out);

/* ---- the state at a past time (issue #18, R-RE-2; docs/state.md; engine/state.c) ---- */

typedef struct sr_state_info {
    int64_t at_ms;       /* T, as asked */
    uint64_t seq;        /* seq(T): the last event with ingest time <= T (0: none yet) */
    int64_t seq_ms;      /* its ingest time */
    uint64_t first_seq;  /* the log's first kept seq */
    int64_t horizon_ms;  /* the ingest time of the log's first readable event (0: empty log) */
    uint64_t replayed;   /* events the answer replayed */
    uint64_t erased;     /* of the events up to seq(T), records whose key was destroyed (not in the state) */
    uint64_t snap_seq;   /* the snapshot the answer started from (0: the log's start) */
    int64_t snap_ms;     /* its ingest time */
    uint32_t snap_skipped; /* nearer snapshots passed over (a row sealed by a destroyed key, incomplete) */
    /* where the time went (bench/state_at, docs/state.md "Cost"), microseconds: the search for seq(T), the
     * snapshot's restore into the private index, the private engine's open (its replay of S+1..seq(T)) */
    uint64_t search_us, restore_us, open_us;
} sr_state_info;
/* The index as it was at T (an ingest time, UTC ms), read from e's log:
 * *at a private read-only engine holding exactly the events up to seq(T)
 * (NULL when seq(T) is 0: the state is empty), read with the typed readers
 * of this header; close it with sr_engine_state_close. SR_EINVAL (ei
 * naming the horizon) for a T before the first kept event of a log whose
 * start was dropped. Any thread; it replays the log (docs/state.md). */
SR_MUST_CHECK int sr_engine_state_open(sr_engine *e, int64_t at_ms, sr_engine **at, sr_state_info *info,
                                       sr_errinfo *ei);
int sr_engine_state_close(sr_engine *at);
/* Each request (app-level: gw "") of op (NULL: every operator) in key
 * order, to fn (its nonzero stops and is returned); read each with
 * sr_read_request. */
typedef int (*sr_request_key_fn)(void *ctx, const char *op, const char *req, const char *gw);
SR_MUST_CHECK int sr_engine_request_each(sr_engine *e, const char *op, sr_request_key_fn fn, void *ctx);

#endif
