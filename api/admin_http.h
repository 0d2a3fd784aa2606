/* api/admin_http.h -- the Admin API (/admin/v1, issue #14) as the HTTP
 * listener sees it: served by the same h2o listener as AP-IF and GW-IF
 * (api/gwif_http.c hands /admin/v1/ here). docs/admin.md is the reference;
 * api/admin_int.h the contract between the admin files. */
#ifndef SR_ADMIN_HTTP_H
#define SR_ADMIN_HTTP_H

#include "api/loginguard.h"
#include "api/notify.h"
#include "engine/records.h"
#include "engine/suiro.h"

#include <h2o.h>
#include <uv.h>

typedef struct sr_admin sr_admin;
struct sr_workq;

/* What [users] and [admin] set (docs/configuration.md). */
typedef struct sr_admin_conf {
    sr_password_policy pol; /* password_min_length, password_max_length, password_max_age_days */
    uint32_t session_ttl_s; /* session_ttl_s: a user's session lives this long */
    uint32_t pending_ttl_s; /* [admin] pending_ttl_s: a privilege change waits this long for its second admin */
    const struct sr_key *key; /* the engine's data key (storage/crypto.h; outlives the admin): users' TOTP
                               * secrets are sealed under a key derived from it; NULL: none */
    const char *data_dir;     /* the served data directory (its platform-key.pem signs backups) */
    const char *backup_dir;   /* [backup] directory: where POST /admin/v1/backups writes; NULL/"": none */
    unsigned backup_keep;     /* [backup] keep: complete backups kept after each (0: all) */
    sr_retention_cfg retention; /* [retention]: the periods' defaults, the audit floor (docs/retention.md) */
    sr_notify_opts notify;      /* [notify]: what a notification target may be (docs/monitoring.md); strings borrowed */
    struct sr_alive *alive;   /* the server's alive status (api/alive.h; GET /admin/v1/alive's last seen), NULL: none */
    int64_t (*clock_ms)(void); /* the engine's clock when a test sets it (SUIRO_TEST_CLOCK_FILE): pending changes'
                                * expiry follows it, as the engine's own check does; NULL: the wall clock */
} sr_admin_conf;
void sr_admin_conf_default(sr_admin_conf *c);

/* guard: the server's login guard (users' logins, principal kind 'u'). */
SR_MUST_CHECK int sr_admin_open(uv_loop_t *loop, sr_engine *eng, sr_loginguard *guard, sr_admin **out);
/* The server's worker queue (not owned), [users] and [admin]. */
void sr_admin_set_conf(sr_admin *a, struct sr_workq *wq, const sr_admin_conf *c);
/* The engine is about to close: nothing more is submitted. */
void sr_admin_quiesce(sr_admin *a);
/* Work on the worker queue that still uses the engine. */
size_t sr_admin_busy(sr_admin *a);
void sr_admin_free(sr_admin *a);
/* Answer one request whose path starts with /admin/v1/. */
void sr_admin_handle(sr_admin *a, h2o_req_t *req);
/* 1 if token is a user's open session (api/gwif_http.c: may this
 * connection's request body be held?) */
int sr_admin_token_known(sr_admin *a, const char *token, size_t len);

/* One row of the audit trail as GET /admin/v1/audit/events lists it
 * (seq, time, actor, actorKind, kind, action, target, outcome, and
 * operator, source, detail when not empty): the one formatter, `suiro
 * cluster audit` prints the same (api/admin_audit.c). NULL: out of memory. */
struct json_t;
struct json_t *sr_audit_item_json(const sr_audit_rec *a);

#endif
