/*
 * api/admin_int.h -- the Admin API (/admin/v1, issue #14) internals shared
 * by its files. Not an API. docs/admin.md is the reference (roles, routes,
 * the two-person rule); docs/api/openapi.yaml binds every route.
 *
 * Files and their rows (each file owns one route table; routes.c lists them
 * in sr_route_lists, binding "Admin"):
 *   admin_http.c     the dispatcher, user sessions (login with password and
 *                    TOTP, logout, forced password change), who am I, the
 *                    caller's own password and TOTP enrolment, users,
 *                    operators and vendors          (sr_admin_routes)
 *   admin_setup.c    an operator's set-up: sheet import/export, masters,
 *                    gateways, apps, grants, certificates
 *                                                    (sr_admin_setup_routes)
 *   admin_pending.c  the two-person rule: pending changes, approve, reject
 *                                                    (sr_admin_pending_routes)
 *   admin_audit.c    audit events for auditors and operator admins
 *                                                    (sr_admin_audit_routes)
 *   admin_files.c    documents' and files' owners, grants and share lists
 *                    (R-PO-2)                        (sr_admin_files_routes)
 *   csv_http.c       corrections: an import of a corrected CSV (R-PO-1,
 *                    docs/csv.md)                    (sr_admin_data_routes)
 *   admin_backup.c   backups of the served data directory (R-ST-5)
 *                                                    (sr_admin_backup_routes)
 *   admin_retention.c  retention periods, a forced sweep (R-ST-6)
 *                                                    (sr_admin_retention_routes)
 *   admin_keys.c     the keyring (issue #16, docs/keys.md) (sr_admin_keys_routes)
 *   admin_notify.c   an operator's alarm notification targets (issue #17,
 *                    docs/monitoring.md)             (sr_admin_notify_routes)
 *   admin_alarms.c   alarms: list, show, acknowledge, resolve (issue #17,
 *                    docs/monitoring.md "Alarms") (sr_admin_alarms_routes)
 *   admin_alive.c    the alive status of gateways and apps (R-MO-1)
 *                                                    (sr_admin_alive_routes)
 *   admin_report.c   incident reports (issue #18, R-RE-4,
 *                    docs/incident-report.md)        (sr_admin_report_routes)
 *   admin_sig.c      an operator's certificate revocations (R-SE-3,
 *                    docs/signatures.md)             (sr_admin_sig_routes)
 *
 * Paths name their target, so that the dispatcher can authorize a row's
 * action (sr_route.action) before the handler runs, the same way for every
 * route:
 *   /admin/v1/operators/{operatorId}/...   target: that operator; for a
 *       path with {appId} or {gatewayId} under it, also that app's or
 *       gateway's vendor (the registry's vendor_id), so that a vendor user
 *       reaches its own vendor's apps and gateways
 *   /admin/v1/vendors/{vendorId}/...       target: that vendor
 *   /admin/v1/users/{userId}...            target: that user's scope
 *   anything else                          target: the platform
 * A refused action is answered 403 E2003 naming the action and the role,
 * and is an audit event (outcome refused) like every admin operation.
 */
#ifndef SR_ADMIN_INT_H
#define SR_ADMIN_INT_H

#include "api/httpu.h"
#include "api/routes.h"
#include "api/wire.h"
#include "engine/authz.h"
#include "engine/records.h"

#include <jansson.h>

/* The authenticated user of an admin request (c->caller). */
typedef struct sr_admin_caller {
    char user[72];      /* the user's ID */
    char op[72];        /* the user's operator, "" for platform and vendor users */
    sr_scope_kind scope;
    char scope_id[72];  /* the operator's or vendor's ID; "" for the platform */
    sr_role roles[SR_ROLE_COUNT];
    size_t nroles;
    int must_change;    /* a temporary or expired password: only SR_CALLER_USER routes */
    char source[64];    /* the peer's address, for events */
    uint8_t token_hash[32];
    int vendor_granted; /* a vendor user on a path naming an operator that grants its vendor
                         * data.read (a vendor grant, registry SR_RG_VENDOR_GRANT): set by the
                         * dispatcher with the target's vendor_granted (docs/admin.md "Vendor grants") */
} sr_admin_caller;

/* The routes' tables (one per file, see above). */
extern const sr_route sr_admin_routes[];
extern const size_t sr_admin_nroutes;
extern const sr_route sr_admin_setup_routes[];
extern const size_t sr_admin_setup_nroutes;
extern const sr_route sr_admin_pending_routes[];
extern const size_t sr_admin_pending_nroutes;
extern const sr_route sr_admin_audit_routes[];
extern const size_t sr_admin_audit_nroutes;
extern const sr_route sr_admin_report_routes[];
extern const size_t sr_admin_report_nroutes;
extern const sr_route sr_admin_files_routes[];
extern const size_t sr_admin_files_nroutes;
extern const sr_route sr_admin_data_routes[];
extern const size_t sr_admin_data_nroutes;
extern const sr_route sr_admin_backup_routes[];
extern const size_t sr_admin_backup_nroutes;
extern const sr_route sr_admin_retention_routes[];
extern const size_t sr_admin_retention_nroutes;
extern const sr_route sr_admin_keys_routes[];
extern const size_t sr_admin_keys_nroutes;
extern const sr_route sr_admin_notify_routes[];
extern const size_t sr_admin_notify_nroutes;
extern const sr_route sr_admin_alarms_routes[];
extern const size_t sr_admin_alarms_nroutes;
extern const sr_route sr_admin_alive_routes[];
extern const size_t sr_admin_alive_nroutes;
extern const sr_route sr_admin_sig_routes[];
extern const size_t sr_admin_sig_nroutes;
extern const sr_route sr_admin_tlog_routes[]; /* issue #18: checkpoints and proofs (api/admin_tlog.c) */
extern const size_t sr_admin_tlog_nroutes;

/* The binding's engine (c->binding is the sr_admin). */
struct sr_admin;
sr_engine *sr_admin_engine(const sr_route_call *c);
/* The binding's configuration ([users], [admin], [backup]). */
struct sr_admin_conf;
const struct sr_admin_conf *sr_admin_conf_of(const sr_route_call *c);

/* 1 if the caller may do act on t (any of its roles, sr_authz_allows);
 * otherwise answers 403 E2003 naming the action, audits the refusal, and
 * returns 0. For handlers whose target is not in the path. */
int sr_admin_authorize(const sr_route_call *c, sr_authz_action act, const sr_authz_target *t);
/* The dispatcher's action check of row r (its action, x-suiro-action, on
 * the target its path names: the operator, an app's or gateway's vendor, a
 * vendor, a user's scope): 1 allowed (or a row whose handler checks), 0
 * refused and answered 403 E2003 (fuzz_admin's authorization mode calls it
 * as the dispatcher does). */
int sr__admin_route_authorized(struct sr_admin *a, const sr_route_call *c, const sr_route *r);

/* The command environment of an admin change: actor the caller's user ID,
 * kind SR_ACTOR_USER, source the peer's address, operator op. */
sr_cmd_env sr_admin_env(const sr_route_call *c, const char *op);

/* The request's JSON object body, or NULL after answering 400 E1002 (not
 * JSON / not an object) -- the caller json_decref()s it. */
json_t *sr_admin_body(const sr_route_call *c);

/* Answer 400 E1001 naming the field: {"code":"E1001","message":"<field>:
 * <why>","detail":{"field":"<field>"}}, and audit the refusal. */
void sr_admin_bad_field(const sr_route_call *c, const char *field, const char *why);

/* Submit the one event a builder appended to b (rc: the builder's return)
 * and answer once it is durable: status with answer (consumed; NULL: 204),
 * or the engine's refusal mapped to its wire error with the engine's
 * message (which names the field or entry). b is consumed. */
void sr_admin_submit(const sr_route_call *c, int rc, sr_buf *b, int status, json_t *answer);

/* Run work(ctx) on the worker queue (engine calls that wait, such as a
 * sheet import, never on the loop); it fills *answer / code / msg; the
 * loop then answers. */
typedef struct sr_admin_work {
    int status;          /* the success status (200, 201, 204) */
    json_t *answer;      /* set by work(); NULL: 204 (or the body below) */
    const char *content_type; /* set by work() for an answer that is not JSON: body, with this type */
    sr_buf body;
    sr_wire code;        /* SR_WIRE_OK or a refusal */
    char msg[512];
    json_t *detail;      /* optional detail of the refusal */
    /* set by sr_admin_run for work(): the engine and a copy of the caller
     * (c->caller lives in the request's memory, which may go while work()
     * runs) */
    sr_engine *eng;
    sr_admin_caller caller;
} sr_admin_work;
void sr_admin_run(const sr_route_call *c, void (*work)(sr_admin_work *w, void *ctx), void *ctx,
                  void (*ctx_free)(void *ctx));
/* The same, charged to operator op's share of the worker queue (its
 * running and queued jobs, api/workq.h) rather than the caller's scope:
 * for work done on one operator's data at a platform user's request (the
 * state at a past time, docs/state.md). NULL: as sr_admin_run. */
void sr_admin_run_for(const sr_route_call *c, const char *op, void (*work)(sr_admin_work *w, void *ctx), void *ctx,
                      void (*ctx_free)(void *ctx));
/* In work(): sr_admin_env of w's caller. */
sr_cmd_env sr_admin_work_env(const sr_admin_work *w, const char *op);
/* In work(): submit the one event a builder appended to b (rc: the
 * builder's return; b is consumed) and wait until it is durable. SR_OK, or
 * the refusal already put in w (code, msg: the engine's, naming the field
 * or entry) and returned. */
int sr_admin_work_submit(sr_admin_work *w, int rc, sr_buf *b);
/* The same, answered only once JetStream acknowledged it too in the cluster
 * mode (sr_cluster_submit_wait: a file upload, whose bytes go with it). */
int sr_admin_work_submit_cluster(sr_admin_work *w, int rc, sr_buf *b);

/* In work(): a privilege change (R-ID-5: a role granted or removed, an
 * admin created, a disabled principal enabled, the login policy weakened,
 * an app's grants widened): the one event a builder appended to change (rc:
 * the builder's return; consumed), which admins of scope (kind, id) holding
 * act decide; summary says what it does, for them. It becomes a pending
 * change (sr_admin_work_pending, admin_pending.c): w is answered (202 with
 * the pending change) and 1 returned; the change takes effect when a second
 * admin approves it. A refusal is in w and returned (< 0). The one place
 * the two-person rule hooks in. */
int sr_admin_privileged(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                        const char *summary, int rc, sr_buf *change);

/* A refused admin operation (403, 400 and the engine's refusals): who, what
 * (the route), from where, why. Called by sr_admin_authorize,
 * sr_admin_bad_field and the dispatcher: a log line and an AdminEvent
 * (sr_admin_audit_op). */
void sr_admin_audit_refused(const sr_route_call *c, sr_wire code, const char *msg);
/* An admin operation with no event of its own as an AdminEvent
 * (admin_audit.c; docs/admin.md "Audit"): outcome "refused" (code, msg: the
 * answer) or "done"; the caller (none: nothing is stored, an
 * unauthenticated request is no one's operation), the route, the request's
 * path as its target, the operator the request names (its path's, or its
 * `operator` query parameter; else the caller's), the row's action, the
 * source. Fire and forget: never waited for, a failure to store it is
 * logged. Needs c->binding (the sr_admin). */
void sr_admin_audit_op(const sr_route_call *c, const char *outcome, sr_wire code, const char *msg);

/* Delete registry entry (op, kind, id) once it exists: 204 when durable,
 * 404 E3001 (SR_WIRE_UNKNOWN) with `unknown` when it does not (admin_files.c). */
void sr_admin_entry_delete(const sr_route_call *c, const char *op, sr_reg_kind kind, const char *id,
                           const char *unknown);

/* 1 if the caller may do act on t (any of its roles, sr_authz_allows), else
 * 0; answers nothing (a listing's filter; sr_admin_authorize answers). */
int sr_admin_allows(const sr_route_call *c, sr_authz_action act, const sr_authz_target *t);

/* ---- the two-person rule (admin_pending.c; docs/admin.md) ----------------
 * A privilege change (granting or removing a role, creating an admin,
 * widening an app's grants, enabling a disabled principal, weakening the
 * login policy) is not submitted but stored as a pending change: the one
 * event a builder appended to change (rc: the builder's return; change is
 * consumed), built with sr_admin_env / sr_admin_work_env, is wrapped as a
 * pending change that a second admin holding act on scope (kind, id: whose
 * admins decide it -- the route's target, e.g. the changed user's scope)
 * must approve; summary says what it does, in words, for them. The request
 * is an event of the change's operator and requester. Answered 202
 * {"pendingId","state":"requested","expiresAt","summary"} once the request
 * is durable, or the engine's refusal (the change must apply now, and the
 * requester hold act on scope). The approval applies it. */
void sr_admin_pending_submit(const sr_route_call *c, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                             const char *summary, int rc, sr_buf *change);
/* The same in work() (sr_admin_run): 1 with w->status 202 and w->answer
 * set (w answered), or the refusal put in w and returned (< 0). */
int sr_admin_work_pending(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                          const char *summary, int rc, sr_buf *change);
/* The same for a change of several events evs[0..n) (1 to
 * SR_PENDING_MAX_EVENTS; more is refused 400 naming the count; not
 * consumed), applied in order as one command when approved. */
int sr_admin_work_pending_n(sr_admin_work *w, sr_user_scope scope, const char *scope_id, sr_authz_action act,
                            const char *summary, const sr_slice *evs, size_t n);
/* o[key] = ms as RFC 3339 (UTC, ms); nothing for 0 (not yet). admin_pending.c */
void sr_admin_put_time(json_t *o, const char *key, int64_t ms);

/* [admin] pending_ttl_s: how long a pending change waits (set at start). */
void sr_admin_pending_ttl(uint32_t seconds);
/* The clock of pending changes' expiry (set at start): the engine's when a
 * test moves it (sr_admin_conf.clock_ms), NULL: the wall clock. */
void sr_admin_pending_clock(int64_t (*clock_ms)(void));

#endif
