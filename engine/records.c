/*
 * engine/records.c -- the typed reads of engine/records.h: the one decoder of
 * each index record (MasterPut, RegistryPut, UserEvent, PendingEvent, FilePut,
 * MonitorEvent, RequestCreated, RequestTransition) and the one walker of the engine's
 * framed lists (records each preceded by a 4-byte LE length), next_raw:
 * every reader of a list, in api/ and in the engine (engine/sheet_import.c),
 * goes through sr_list_* and sr_rec_next_*.
 *
 * Invariants:
 *  1. Everything a read hands out points into a message or an array the
 *     holder keeps (held[]), freed only by sr_rec_close: results stay valid
 *     until then, whatever else the holder reads meanwhile.
 *  2. The walker never reads past raw.len: a length beyond the end is
 *     SR_ECORRUPT and ends the iteration (pos = raw.len).
 *  3. A record that does not decode is SR_ECORRUPT, never a NULL dereference;
 *     the iterator has moved past it.
 */
#include "engine/records.h"
#include "engine/engine_int.h" /* sr__event_values */

#include "codecs/events.pb-c.h"
#include "engine/event_json.h"
#include "engine/evbuild.h"
#include "engine/schema.h"
#include "engine/secret.h"

#include <stdlib.h>
#include <string.h>

/* the kinds of records.h are the numbers of events.proto */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(SR_ACTOR_USER, SUIRO__V1__ACTOR_KIND__ACTOR_USER) && SAME(SR_ACTOR_APP, SUIRO__V1__ACTOR_KIND__ACTOR_APP) &&
                   SAME(SR_ACTOR_GATEWAY, SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY) &&
                   SAME(SR_ACTOR_SYSTEM, SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM),
               "actor kinds");
_Static_assert(SAME(SR_MK_FACILITY, SUIRO__V1__MASTER_KIND__MK_FACILITY) &&
                   SAME(SR_MK_EQUIPMENT, SUIRO__V1__MASTER_KIND__MK_EQUIPMENT) &&
                   SAME(SR_MK_DEVICE, SUIRO__V1__MASTER_KIND__MK_DEVICE) &&
                   SAME(SR_MK_DATA_POINT, SUIRO__V1__MASTER_KIND__MK_DATA_POINT),
               "master kinds");
_Static_assert(SAME(SR_RG_OPERATOR, SUIRO__V1__REGISTRY_KIND__RG_OPERATOR) &&
                   SAME(SR_RG_GATEWAY, SUIRO__V1__REGISTRY_KIND__RG_GATEWAY) &&
                   SAME(SR_RG_APP, SUIRO__V1__REGISTRY_KIND__RG_APP) && SAME(SR_RG_GRANT, SUIRO__V1__REGISTRY_KIND__RG_GRANT) &&
                   SAME(SR_RG_VENDOR, SUIRO__V1__REGISTRY_KIND__RG_VENDOR) &&
                   SAME(SR_RG_VENDOR_GRANT, SUIRO__V1__REGISTRY_KIND__RG_VENDOR_GRANT) &&
                   SAME(SR_RG_RETENTION, SUIRO__V1__REGISTRY_KIND__RG_RETENTION) &&
                   SAME(SR_RG_NOTIFY, SUIRO__V1__REGISTRY_KIND__RG_NOTIFY) &&
                   SAME(SR_RG_REVOKED, SUIRO__V1__REGISTRY_KIND__RG_REVOKED) &&
                   SAME(SR_RG_SIGREQ, SUIRO__V1__REGISTRY_KIND__RG_SIGREQ),
               "registry kinds");
_Static_assert(SAME(SR_US_PLATFORM, SUIRO__V1__USER_SCOPE__US_PLATFORM) &&
                   SAME(SR_US_OPERATOR, SUIRO__V1__USER_SCOPE__US_OPERATOR) &&
                   SAME(SR_US_VENDOR, SUIRO__V1__USER_SCOPE__US_VENDOR),
               "user scopes");
_Static_assert(SAME(SR_RK_IMMEDIATE, SUIRO__V1__REQUEST_KIND__RK_IMMEDIATE) &&
                   SAME(SR_RK_PERIODIC_START, SUIRO__V1__REQUEST_KIND__RK_PERIODIC_START) &&
                   SAME(SR_RK_PERIODIC_STOP, SUIRO__V1__REQUEST_KIND__RK_PERIODIC_STOP) &&
                   SAME(SR_RK_CONTROL, SUIRO__V1__REQUEST_KIND__RK_CONTROL),
               "request kinds");
_Static_assert(SAME(SR_RS_CREATED, SUIRO__V1__REQUEST_STATE__RS_CREATED) &&
                   SAME(SR_RS_DISPATCHED, SUIRO__V1__REQUEST_STATE__RS_DISPATCHED) &&
                   SAME(SR_RS_ACKNOWLEDGED, SUIRO__V1__REQUEST_STATE__RS_ACKNOWLEDGED) &&
                   SAME(SR_RS_SUCCEEDED, SUIRO__V1__REQUEST_STATE__RS_SUCCEEDED) &&
                   SAME(SR_RS_FAILED, SUIRO__V1__REQUEST_STATE__RS_FAILED) &&
                   SAME(SR_RS_TIMED_OUT, SUIRO__V1__REQUEST_STATE__RS_TIMED_OUT) &&
                   SAME(SR_RS_CANCELLED, SUIRO__V1__REQUEST_STATE__RS_CANCELLED),
               "request states");
_Static_assert(SAME(SR_MS_STARTING, SUIRO__V1__MONITOR_STATE__MS_STARTING) &&
                   SAME(SR_MS_RUNNING, SUIRO__V1__MONITOR_STATE__MS_RUNNING) &&
                   SAME(SR_MS_STOPPING, SUIRO__V1__MONITOR_STATE__MS_STOPPING) &&
                   SAME(SR_MS_STOPPED, SUIRO__V1__MONITOR_STATE__MS_STOPPED),
               "monitor states");
_Static_assert(SAME(SR_VT_NUMBER, SUIRO__V1__VALUE_TYPE__VT_NUMBER) && SAME(SR_VT_INTEGER, SUIRO__V1__VALUE_TYPE__VT_INTEGER) &&
                   SAME(SR_VT_BOOL, SUIRO__V1__VALUE_TYPE__VT_BOOL) && SAME(SR_VT_STRING, SUIRO__V1__VALUE_TYPE__VT_STRING),
               "value types");
_Static_assert(SAME(SR_SS_CONNECTED, SUIRO__V1__SESSION_STATE__SS_CONNECTED) &&
                   SAME(SR_SS_DISCONNECTED, SUIRO__V1__SESSION_STATE__SS_DISCONNECTED) &&
                   SAME(SR_SS_EXPIRED, SUIRO__V1__SESSION_STATE__SS_EXPIRED) &&
                   SAME(SR_SS_TAKEN_OVER, SUIRO__V1__SESSION_STATE__SS_TAKEN_OVER),
               "session states");
_Static_assert(SAME(SR_AL_WARNING, SUIRO__V1__ALARM_LEVEL__AL_WARNING) &&
                   SAME(SR_AL_MINOR, SUIRO__V1__ALARM_LEVEL__AL_MINOR) &&
                   SAME(SR_AL_MAJOR, SUIRO__V1__ALARM_LEVEL__AL_MAJOR),
               "alarm levels");

/* ---- the holder ------------------------------------------------------------ */

static int hold(sr_rec *r, void *p, int is_msg)
{
    if (r->nheld == r->capheld) {
        size_t cap = r->capheld ? r->capheld * 2 : 8;
        void **h = sr_realloc(r->held, cap * sizeof *h);
        if (!h) return SR_ENOMEM;
        r->held = h;
        uint8_t *m = sr_realloc(r->is_msg, cap);
        if (!m) return SR_ENOMEM;
        r->is_msg = m;
        r->capheld = cap;
    }
    r->held[r->nheld] = p;
    r->is_msg[r->nheld++] = (uint8_t)is_msg;
    return SR_OK;
}

static void free_one(void *p, int is_msg)
{
    if (is_msg) protobuf_c_message_free_unpacked((ProtobufCMessage *)p, NULL);
    else sr_free(p);
}

/* Keep p (a decoded message or a plain allocation) until close; on failure it
 * is freed at once and SR_ENOMEM returned. */
static int keep(sr_rec *r, void *p, int is_msg)
{
    if (!p) return is_msg ? SR_ECORRUPT : SR_ENOMEM;
    int rc = hold(r, p, is_msg);
    if (rc) free_one(p, is_msg);
    return rc;
}

void sr_rec_close(sr_rec *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nheld; i++) free_one(r->held[i], r->is_msg[i]);
    sr_free(r->held);
    sr_free(r->is_msg);
    sr_buf_release(&r->raw);
    memset(r, 0, sizeof *r);
}

size_t sr_rec_count(const sr_rec *r) { return r->count; }

/* Start a list read: the holder's previous list (not its results) is dropped. */
static void list_reset(sr_rec *r)
{
    r->raw.len = 0;
    r->pos = 0;
    r->count = 0;
}

/* The walker: the next framed record, 1; 0 at the end; SR_ECORRUPT for a
 * length beyond the end (then at the end, invariant 2). */
static int next_raw(sr_rec *r, const uint8_t **p, size_t *len)
{
    if (r->pos >= r->raw.len) return 0;
    if (r->raw.len - r->pos < 4 || r->raw.len - r->pos - 4 < sr_get_le32(r->raw.data + r->pos)) {
        r->pos = r->raw.len;
        return SR_ECORRUPT;
    }
    *len = sr_get_le32(r->raw.data + r->pos);
    *p = r->raw.data + r->pos + 4;
    r->pos += 4 + *len;
    return 1;
}

/* ---- decoders (one per record) ------------------------------------------------ */

static void master_of(const Suiro__V1__MasterPut *m, sr_master *o)
{
    *o = (sr_master){.kind = (sr_master_kind)m->kind,
                     .id = m->id,
                     .parent_id = m->parent_id,
                     .name = m->name,
                     .gateway_id = m->gateway_id,
                     .point = m->point,
                     .type = (int)m->type,
                     .unit = m->unit,
                     .has_min = m->has_min,
                     .has_max = m->has_max,
                     .min = m->min,
                     .max = m->max,
                     .point_kind = (int)m->point_kind,
                     .location = m->location, .retention_class = m->retention_class};
}

static int dec_master(sr_rec *r, const uint8_t *p, size_t len, sr_master *o)
{
    Suiro__V1__MasterPut *m = suiro__v1__master_put__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (!rc) master_of(m, o);
    return rc;
}

static int dec_registry(sr_rec *r, const uint8_t *p, size_t len, sr_reg_entry *o)
{
    Suiro__V1__RegistryPut *m = suiro__v1__registry_put__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_reg_entry){.kind = (sr_reg_kind)m->kind,
                        .id = m->id,
                        .name = m->name,
                        .secret_hash = {m->secret_hash.data, m->secret_hash.len},
                        .url = m->url,
                        .cert_pem = m->cert_pem,
                        .app_id = m->app_id,
                        .pattern = m->pattern,
                        .access = m->access,
                        .protocol = m->protocol,
                        .vendor_id = m->vendor_id,
                        .vendor_kind = m->vendor_kind,
                        .disabled = m->disabled,
                        .grant_kind = m->grant_kind, .retention_days = m->retention_days,
                        .require_signature = m->require_signature,
                        .revoked_ms = m->revoked_ms};
    return SR_OK;
}

static int dec_user(sr_rec *r, const uint8_t *p, size_t len, sr_user *o)
{
    Suiro__V1__UserEvent *m = suiro__v1__user_event__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_user){.id = m->user_id,
                   .name = m->name,
                   .scope = (sr_user_scope)m->scope,
                   .scope_id = m->scope_id,
                   .roles = (const char *const *)m->roles,
                   .n_roles = m->n_roles,
                   .password_hash = {m->password_hash.data, m->password_hash.len},
                   .temporary = m->temporary,
                   .password_set_ms = m->password_set_ms,
                   .disabled = m->disabled,
                   .deleted = m->deleted,
                   .totp_secret_sealed = {m->totp_secret_sealed.data, m->totp_secret_sealed.len},
                   .totp_last_step = m->totp_last_step,
                   .last_action = m->action,
                   .approved_by = m->approved_by};
    return SR_OK;
}

static int dec_policy(sr_rec *r, const uint8_t *p, size_t len, sr_login_policy_rec *o)
{
    Suiro__V1__LoginPolicy *m = suiro__v1__login_policy__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_login_policy_rec){.totp_roles = (const char *const *)m->totp_roles,
                               .n_totp_roles = m->n_totp_roles,
                               .totp_required = m->totp_required};
    return SR_OK;
}

static int dec_pending(sr_rec *r, const uint8_t *p, size_t len, sr_pending *o)
{
    Suiro__V1__PendingEvent *m = suiro__v1__pending_event__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    Suiro__V1__Event *c = m->n_change ? suiro__v1__event__unpack(NULL, m->change[0].len, m->change[0].data) : NULL;
    const char *op = "";
    if (c && !(rc = keep(r, c, 1))) op = c->operator_id;
    sr_slice *chs = m->n_change ? sr_calloc(m->n_change, sizeof *chs) : NULL;
    if (!rc && m->n_change) rc = keep(r, chs, 0);
    if (rc) return rc;
    for (size_t i = 0; i < m->n_change; i++) chs[i] = (sr_slice){m->change[i].data, m->change[i].len};
    *o = (sr_pending){.id = m->pending_id,
                      .state = m->action,
                      .summary = m->summary,
                      .scope = (sr_user_scope)m->scope,
                      .scope_id = m->scope_id,
                      .authz_action = m->authz_action,
                      .op = op,
                      .change_kind = c ? sr_event_kind(c) : "unknown",
                      .changes = chs,
                      .n_changes = m->n_change,
                      .requester = m->requester,
                      .requested_ms = m->requested_ms,
                      .expires_ms = m->expires_ms,
                      .decided_by = m->decided_by,
                      .decided_ms = m->decided_ms,
                      .reason = m->reason,
                      .requested_seq = m->requested_seq,
                      .decided_seq = m->decided_seq};
    return SR_OK;
}

/* op \0 packed AlarmEvent (engine/alarms.c) */
static int dec_alarm(sr_rec *r, const uint8_t *p, size_t len, sr_alarm *o)
{
    const uint8_t *z = memchr(p, 0, len);
    if (!z) return SR_ECORRUPT;
    size_t ol = (size_t)(z - p);
    char *op = sr_malloc(ol + 1);
    int rc = keep(r, op, 0);
    if (rc) return rc;
    memcpy(op, p, ol);
    op[ol] = 0;
    Suiro__V1__AlarmEvent *m = suiro__v1__alarm_event__unpack(NULL, len - ol - 1, z + 1);
    if ((rc = keep(r, m, 1))) return rc;
    *o = (sr_alarm){.id = m->alarm_id,
                    .op = op,
                    .rule = m->rule,
                    .subject = m->subject,
                    .state = m->state,
                    .message = m->message,
                    .source = m->source,
                    .level = (sr_alarm_level)m->level,
                    .auto_resolve = m->auto_resolve,
                    .auto_resolved = m->auto_resolved,
                    .count = m->count,
                    .raised_by = m->by,
                    .acked_by = m->acked_by,
                    .resolved_by = m->resolved_by,
                    .ack_comment = m->ack_comment,
                    .resolve_comment = m->resolve_comment,
                    .raised_ms = m->raised_ms,
                    .last_ms = m->last_ms,
                    .acked_ms = m->acked_ms,
                    .resolved_ms = m->resolved_ms};
    return SR_OK;
}

static int dec_file(sr_rec *r, const uint8_t *p, size_t len, sr_file_meta *o)
{
    Suiro__V1__FilePut *m = suiro__v1__file_put__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_file_meta){.path = m->path,
                        .sha256 = {m->sha256.data, m->sha256.len},
                        .size = m->size,
                        .content_type = m->content_type,
                        .owner = m->owner,
                        .owner_kind = (sr_actor_kind)(m->owner_kind ? m->owner_kind
                                                      : m->owner[0] ? SUIRO__V1__ACTOR_KIND__ACTOR_APP : 0),
                        .shared_with = (const char *const *)m->shared_with,
                        .n_shared_with = m->n_shared_with,
                        .updated_ms = m->updated_ms,
                        .key_id = m->key_id};
    return SR_OK;
}

static int dec_monitor(sr_rec *r, const uint8_t *p, size_t len, sr_monitor_rec *o)
{
    Suiro__V1__MonitorEvent *m = suiro__v1__monitor_event__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_monitor_rec){.monitor_id = m->monitor_id,
                          .state = (sr_mon_state)m->state,
                          .app_id = m->app_id,
                          .data_ids = (const char *const *)m->data_ids,
                          .n_data_ids = m->n_data_ids,
                          .interval_ms = m->interval_ms,
                          .gateway_ids = (const char *const *)m->gateway_ids,
                          .n_gateway_ids = m->n_gateway_ids,
                          .acked = (const char *const *)m->acked,
                          .n_acked = m->n_acked,
                          .start_ms = m->start_ms,
                          .end_ms = m->end_ms,
                          .created_ms = m->created_ms,
                          .node = m->node};
    return SR_OK;
}

/* n control values as one array the holder keeps */
static int dec_cvs(sr_rec *r, Suiro__V1__ControlValue *const *c, size_t n, const sr_control_value **out)
{
    *out = NULL;
    if (!n) return SR_OK;
    sr_control_value *v = sr_calloc(n, sizeof *v);
    int rc = keep(r, v, 0);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        v[i] = (sr_control_value){.data_id = c[i]->data_id,
                                  .type = (sr_vtype)c[i]->type,
                                  .f = c[i]->f,
                                  .i = c[i]->i,
                                  .b = c[i]->b,
                                  .s = c[i]->s,
                                  .timestamp_ms = c[i]->timestamp_ms,
                                  .quality = c[i]->quality,
                                  .sig_state = (int)c[i]->sig_state};
    *out = v;
    return SR_OK;
}

static int dec_request(sr_rec *r, const uint8_t *p, size_t len, sr_request_rec *o)
{
    Suiro__V1__RequestCreated *m = suiro__v1__request_created__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_request_rec){.request_id = m->request_id,
                          .kind = (sr_req_kind)m->kind,
                          .app_id = m->app_id,
                          .gateway_id = m->gateway_id,
                          .data_ids = (const char *const *)m->data_ids,
                          .n_data_ids = m->n_data_ids,
                          .interval_ms = m->interval_ms,
                          .timeout_ms = m->timeout_ms,
                          .monitor_id = m->monitor_id,
                          .n_control = m->n_control,
                          .protection = {m->protection.data, m->protection.len},
                          .signed_value = {m->signed_value.data, m->signed_value.len},
                          .deadline_ms = m->deadline_ms,
                          .start_ms = m->start_ms,
                          .end_ms = m->end_ms,
                          .async = m->async};
    return dec_cvs(r, m->control, m->n_control, &o->control);
}

static int dec_transition(sr_rec *r, const uint8_t *p, size_t len, sr_request_transition *o)
{
    Suiro__V1__RequestTransition *m = suiro__v1__request_transition__unpack(NULL, len, p);
    int rc = keep(r, m, 1);
    if (rc) return rc;
    *o = (sr_request_transition){.request_id = m->request_id,
                                 .state = (sr_req_state)m->state,
                                 .error_code = m->error_code,
                                 .message = m->message,
                                 .n_applied = m->n_applied,
                                 .gateway_id = m->gateway_id,
                                 .n_values = m->n_values,
                                 .protection = {m->protection.data, m->protection.len},
                                 .signed_body = {m->signed_body.data, m->signed_body.len}};
    if ((rc = dec_cvs(r, m->applied, m->n_applied, &o->applied))) return rc;
    return dec_cvs(r, m->values, m->n_values, &o->values);
}

/* ---- reads and iterators ------------------------------------------------------- */

/* one record by key: read, decode with dec, keep */
#define READ_ONE(call, dec, out)                                                                                      \
    do {                                                                                                               \
        sr_buf b_;                                                                                                     \
        sr_buf_init(&b_);                                                                                              \
        int rc_ = (call);                                                                                              \
        if (!rc_) rc_ = dec(r, b_.data, b_.len, out);                                                                  \
        sr_buf_release(&b_);                                                                                           \
        return rc_;                                                                                                    \
    } while (0)

/* the next record of the list, decoded with dec */
#define NEXT_ONE(dec, out)                                                                                            \
    do {                                                                                                               \
        const uint8_t *p_ = NULL;                                                                                      \
        size_t l_ = 0;                                                                                                 \
        int k_ = next_raw(r, &p_, &l_);                                                                                \
        if (k_ <= 0) return k_;                                                                                        \
        int rc_ = dec(r, p_, l_, out);                                                                                 \
        return rc_ ? rc_ : 1;                                                                                          \
    } while (0)

int sr_read_master(sr_engine *e, const char *op, sr_master_kind kind, const char *id, sr_rec *r, sr_master *out)
{
    READ_ONE(sr_engine_master_get(e, op, (int)kind, id, &b_), dec_master, out);
}

int sr_list_masters(sr_engine *e, const char *op, sr_master_kind kind, sr_rec *r)
{
    list_reset(r);
    return sr_engine_master_list(e, op, (int)kind, &r->raw, &r->count);
}

int sr_rec_next_master(sr_rec *r, sr_master *out) { NEXT_ONE(dec_master, out); }

int sr_read_registry(sr_engine *e, const char *op, sr_reg_kind kind, const char *id, sr_rec *r, sr_reg_entry *out)
{
    READ_ONE(sr_engine_registry_get(e, op, (int)kind, id, &b_), dec_registry, out);
}

int sr_list_registry(sr_engine *e, const char *op, sr_reg_kind kind, sr_rec *r)
{
    list_reset(r);
    return sr_engine_registry_list(e, op, (int)kind, &r->raw, &r->count);
}

int sr_list_operators(sr_engine *e, sr_rec *r)
{
    list_reset(r);
    return sr_engine_operator_list(e, &r->raw, &r->count);
}

int sr_rec_next_registry(sr_rec *r, sr_reg_entry *out) { NEXT_ONE(dec_registry, out); }

int sr_read_user(sr_engine *e, const char *id, sr_rec *r, sr_user *out)
{
    READ_ONE(sr_engine_user_get(e, id, &b_), dec_user, out);
}

int sr_read_login_policy(sr_engine *e, const char *op, sr_rec *r, sr_login_policy_rec *out)
{
    READ_ONE(sr_engine_policy_get(e, op, &b_), dec_policy, out);
}

int sr_user_session_verify(sr_engine *e, const uint8_t token_hash[32], int64_t now_ms, sr_rec *r, sr_session_rec *s,
                           int *expired, sr_user *u)
{
    READ_ONE(sr_engine_user_session_get(e, token_hash, now_ms, s, expired, &b_), dec_user, u);
}

int sr_list_users(sr_engine *e, sr_rec *r)
{
    list_reset(r);
    return sr_engine_user_list(e, &r->raw, &r->count);
}

int sr_rec_next_user(sr_rec *r, sr_user *out) { NEXT_ONE(dec_user, out); }

int sr_read_pending(sr_engine *e, const char *id, sr_rec *r, sr_pending *out)
{
    READ_ONE(sr_engine_pending_get(e, id, &b_), dec_pending, out);
}

int sr_list_pending(sr_engine *e, sr_rec *r)
{
    list_reset(r);
    return sr_engine_pending_list(e, &r->raw, &r->count);
}

int sr_rec_next_pending(sr_rec *r, sr_pending *out) { NEXT_ONE(dec_pending, out); }

int sr_read_alarm(sr_engine *e, const char *id, sr_rec *r, sr_alarm *out)
{
    READ_ONE(sr_engine_alarm_get(e, id, &b_), dec_alarm, out);
}

int sr_list_alarms(sr_engine *e, sr_rec *r)
{
    list_reset(r);
    return sr_engine_alarm_list(e, &r->raw, &r->count);
}

int sr_rec_next_alarm(sr_rec *r, sr_alarm *out) { NEXT_ONE(dec_alarm, out); }

int sr_list_open_alarms(sr_engine *e, sr_rec *r)
{
    list_reset(r);
    return sr_engine_alarm_open_list(e, &r->raw, &r->count);
}

const char *sr_alarm_level_name(sr_alarm_level l)
{
    return l == SR_AL_WARNING ? "warning" : l == SR_AL_MINOR ? "minor" : l == SR_AL_MAJOR ? "major" : "unspecified";
}

int sr_alarm_level_parse(const char *s, sr_alarm_level *out)
{
    for (int l = SR_AL_WARNING; l <= SR_AL_MAJOR; l++)
        if (s && !strcmp(s, sr_alarm_level_name((sr_alarm_level)l))) {
            *out = (sr_alarm_level)l;
            return 0;
        }
    return -1;
}

const char *sr_pending_state(const sr_pending *p, int64_t now_ms)
{
    return !strcmp(p->state, "requested") && now_ms >= p->expires_ms ? "expired" : p->state;
}

int sr_user_password_ok(const sr_user *u, const char *password)
{
    return sr_secret_check(password, u->password_hash.data, u->password_hash.len);
}

int sr_list_audit(sr_engine *e, const sr_audit_query *q, sr_rec *r, int *more)
{
    list_reset(r);
    return sr_engine_audit_list(e, q, &r->raw, &r->count, more);
}

/* an `audit` row: 16-byte key, then the value (engine/schema.h audit_decode) */
static int dec_audit(sr_rec *r, const uint8_t *p, size_t len, sr_audit_rec *o)
{
    (void)r;
    sr__audit_row a;
    if (len < SR_AUDIT_KEY || audit_decode(p, SR_AUDIT_KEY, p + SR_AUDIT_KEY, len - SR_AUDIT_KEY, &a)) return SR_ECORRUPT;
    o->seq = a.seq;
    o->ms = a.ms;
    o->actor_kind = (sr_actor_kind)a.actor_kind;
    o->op = a.s[0];
    o->actor = a.s[1];
    o->source = a.s[2];
    o->kind = a.s[3];
    o->action = a.s[4];
    o->target = a.s[5];
    o->outcome = a.s[6];
    o->detail = a.s[7];
    return SR_OK;
}

int sr_rec_next_audit(sr_rec *r, sr_audit_rec *out) { NEXT_ONE(dec_audit, out); }

int sr_read_file(sr_engine *e, const char *op, const char *path, sr_rec *r, sr_file_meta *out)
{
    READ_ONE(sr_engine_file_get(e, op, path, &b_), dec_file, out);
}

int sr_list_files(sr_engine *e, const char *op, const char *prefix, size_t limit, sr_rec *r, int *more)
{
    list_reset(r);
    return sr_engine_file_list(e, op, prefix, limit, &r->raw, &r->count, more);
}

int sr_rec_next_file(sr_rec *r, sr_file_meta *out) { NEXT_ONE(dec_file, out); }

typedef struct each_file {
    int (*fn)(void *ctx, const char *op, const sr_file_meta *f);
    void *ctx;
} each_file;

static int each_file_one(void *ctx, const char *op, const uint8_t *packed, size_t len)
{
    each_file *ef = ctx;
    sr_rec r = SR_REC_INIT;
    sr_file_meta f;
    int rc = dec_file(&r, packed, len, &f);
    if (!rc) rc = ef->fn(ef->ctx, op, &f);
    sr_rec_close(&r);
    return rc;
}

int sr_each_file(sr_engine *e, int (*fn)(void *ctx, const char *op, const sr_file_meta *f), void *ctx)
{
    each_file ef = {fn, ctx};
    return sr_engine_file_each(e, each_file_one, &ef);
}

int sr_list_docs(sr_engine *e, const char *op, const char *coll, const char *field, const char *value,
                 const sr_doc_bounds *b, const char *after_id, sr_rec *r, int *more, char *next_after)
{
    list_reset(r);
    return sr_engine_doc_scan(e, op, coll, field, value, b, after_id, &r->raw, &r->count, more, next_after);
}

/* records: id \0, revision (8 LE), json length (4 LE), json (invariant 2
 * holds for them too) */
int sr_rec_next_doc(sr_rec *r, sr_doc *out)
{
    if (r->pos >= r->raw.len) return 0;
    const uint8_t *p = r->raw.data + r->pos;
    size_t left = r->raw.len - r->pos;
    const uint8_t *z = memchr(p, 0, left);
    size_t il = z ? (size_t)(z - p) : left;
    if (!z || left - il - 1 < 12 || left - il - 1 - 12 < sr_get_le32(p + il + 1 + 8)) {
        r->pos = r->raw.len;
        return SR_ECORRUPT;
    }
    uint32_t jl = sr_get_le32(p + il + 1 + 8);
    out->id = (const char *)p;
    out->revision = sr_get_le64(p + il + 1);
    out->json = (sr_slice){p + il + 1 + 12, jl};
    r->pos += il + 1 + 12 + jl;
    return 1;
}

int sr_read_monitor(sr_engine *e, const char *op, const char *monitor, sr_rec *r, sr_monitor_rec *out)
{
    READ_ONE(sr_engine_monitor_get(e, op, monitor, &b_), dec_monitor, out);
}

int sr_list_monitors(sr_engine *e, const char *op, sr_rec *r)
{
    list_reset(r);
    return sr_engine_monitor_list(e, op, &r->raw, &r->count);
}

int sr_rec_next_monitor(sr_rec *r, sr_monitor_rec *out) { NEXT_ONE(dec_monitor, out); }

/* ---- alive status ---------------------------------------------------------- */
_Static_assert(SAME(SR_AS_ONLINE, SUIRO__V1__ALIVE_STATE__AS_ONLINE) &&
                   SAME(SR_AS_OFFLINE, SUIRO__V1__ALIVE_STATE__AS_OFFLINE) &&
                   SAME(SR_AR_CONNECT, SUIRO__V1__ALIVE_REASON__AR_CONNECT) &&
                   SAME(SR_AR_SERVER_RESTART, SUIRO__V1__ALIVE_REASON__AR_SERVER_RESTART),
               "sr_alive_state / sr_alive_reason are the numbers of events.proto");

const char *sr_alive_reason_name(int reason)
{
    switch (reason) {
#define SR_X_(id, n, name) \
    case n: return name;
        SR_ALIVE_REASONS(SR_X_)
#undef SR_X_
    default: return NULL;
    }
}

static int dec_alive(sr_rec *r, const uint8_t *p, size_t len, sr_alive_rec *o)
{
    Suiro__V1__AliveEvent *a = suiro__v1__alive_event__unpack(NULL, len, p);
    int rc = keep(r, a, 1);
    if (rc) return rc;
    *o = (sr_alive_rec){.op = a->operator_id,
                        .kind = (sr_actor_kind)a->kind,
                        .id = a->id,
                        .state = (sr_alive_state)a->state,
                        .reason = (sr_alive_reason)a->reason,
                        .binding = a->binding,
                        .remote = a->remote,
                        .will = a->will,
                        .since_ms = a->since_ms,
                        .seq = a->seq};
    return SR_OK;
}

int sr_list_alive(sr_engine *e, const char *op, sr_rec *r)
{
    list_reset(r);
    return sr_engine_alive_list(e, op, &r->raw, &r->count);
}

int sr_rec_next_alive(sr_rec *r, sr_alive_rec *out) { NEXT_ONE(dec_alive, out); }

int sr_read_request(sr_engine *e, const char *op, const char *req, const char *gw, sr_rec *r, sr_request_rec *rq,
                    sr_request_transition *st, int *has_state)
{
    sr_buf c, s;
    sr_buf_init(&c);
    sr_buf_init(&s);
    *has_state = 0;
    memset(st, 0, sizeof *st);
    int rc = sr_engine_request_get(e, op, req, gw ? gw : "", &c, &s);
    if (!rc) rc = dec_request(r, c.data, c.len, rq);
    if (!rc && s.len && !(rc = dec_transition(r, s.data, s.len, st))) *has_state = 1;
    sr_buf_release(&c);
    sr_buf_release(&s);
    return rc;
}

/* ---- events ------------------------------------------------------------------- */

int sr_event_decode(const void *rec, size_t len, sr_rec *r, sr_event_view *out)
{
    Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, len, rec);
    int rc = keep(r, ev, 1);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->seq = ev->seq;
    out->ingest_ms = ev->ingest_ms;
    out->op = ev->operator_id;
    out->actor = ev->actor;
    out->actor_kind = (sr_actor_kind)ev->actor_kind;
    out->kind = sr_event_kind(ev);
    out->ev = ev;
    if (ev->origin && ev->origin->node && ev->origin->node[0]) out->origin_node = ev->origin->node;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_MASTER_PUT && ev->master_put) {
        out->has_master = 1;
        master_of(ev->master_put, &out->master);
    }
    return SR_OK;
}

int sr_event_has_point(const sr_event_view *v, uint32_t point)
{
    const Suiro__V1__Event *ev = v->ev;
    const Suiro__V1__Measurements *m = ev ? sr__event_values(ev) : NULL;
    if (!m) return 0;
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, m);
    while (sr_meas_next(&mi, &p))
        if (p.point == point) return 1;
    return 0;
}

const char *sr_event_monitor_id(const sr_event_view *v)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS || !ev->measurements) return "";
    return ev->measurements->monitor_id ? ev->measurements->monitor_id : "";
}

int sr_event_file(const sr_event_view *v, sr_file_meta *out)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_FILE_PUT || !ev->file_put) return SR_ENOTFOUND;
    const Suiro__V1__FilePut *m = ev->file_put;
    *out = (sr_file_meta){.path = m->path,
                          .sha256 = {m->sha256.data, m->sha256.len},
                          .size = m->size,
                          .content_type = m->content_type,
                          .owner = m->owner,
                          .updated_ms = m->updated_ms,
                          .key_id = m->key_id};
    return SR_OK;
}

int sr_event_sig_state(const sr_event_view *v)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS || !ev->measurements) return SR_SIG_NONE;
    return ev->measurements->sig_state == SR_SIG_VERIFIED ? SR_SIG_VERIFIED : SR_SIG_NONE;
}

_Static_assert((int)SR_NOTIFY_DELIVERED == (int)SR_NOTIFYQ_DONE && (int)SR_NOTIFY_GIVEN_UP == (int)SR_NOTIFYQ_GAVE_UP,
               "notifyq's outcome bytes (schema.h) are the typed boundary's");

int sr_event_alarm(const sr_event_view *v, sr_alarm_view *out)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_ALARM || !ev->alarm || ev->alarm->restated)
        return SR_ENOTFOUND; /* a restatement (issue #16) is no step */
    const Suiro__V1__AlarmEvent *a = ev->alarm;
    *out = (sr_alarm_view){a->alarm_id, a->state,   a->source, a->message, a->by, (int)a->level,
                           a->rule,     a->subject, a->comment};
    return SR_OK;
}

const char *sr_event_request_outcome(const sr_event_view *v)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION || !ev->request_transition) return NULL;
    const Suiro__V1__RequestTransition *t = ev->request_transition;
    if (t->gateway_id && t->gateway_id[0]) return NULL; /* a gateway's part */
    switch (t->state) {
    case SUIRO__V1__REQUEST_STATE__RS_SUCCEEDED:
    case SUIRO__V1__REQUEST_STATE__RS_FAILED:
    case SUIRO__V1__REQUEST_STATE__RS_TIMED_OUT:
    case SUIRO__V1__REQUEST_STATE__RS_CANCELLED: return t->request_id;
    default: return NULL;
    }
}

int sr_event_each_value(const sr_event_view *v, sr_value_fn fn, void *ctx)
{
    const Suiro__V1__Event *ev = v->ev;
    if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_MEASUREMENTS || !ev->measurements || sr__held(ev))
        return SR_OK; /* held: its numbers are another node's (engine/origins.c invariant 6) */
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, ev->measurements);
    while (sr_meas_next(&mi, &p)) {
        if (p.n < 0) return SR_ECORRUPT;
        for (long i = 0; i < p.n; i++) {
            sr_sample s;
            if (sr_pv_iter_next(&p.it, &s)) return SR_ECORRUPT;
            int rc = fn(ctx, p.point, p.type, &s);
            if (rc) return rc;
        }
    }
    return SR_OK;
}

int sr_event_view_json(const sr_event_view *v, const sr_event_json_opts *o, sr_buf *out)
{
    return v->ev ? sr_event_json_ex(v->ev, o, out) : SR_EINVAL;
}
