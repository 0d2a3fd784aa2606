/*
 * engine/keys.c -- the class of every event kind (docs/keys.md "The
 * hierarchy": data, audit, config), and the engine's use of the keyring
 * (storage/keyring.h): the key id that seals each record the writer appends.
 *
 * SR_KEY_CLASSES has one row per case of Event.body (codecs/events.proto).
 * A case without a row is a build error (-Wswitch in kind_has_class and the
 * size assertion below) and a failure of test_keys (every case of the
 * Event descriptor).
 *
 * INVARIANTS
 *  (1) The key of a record is the active key of (its operator_id, its kind's
 *      class); it is durable in the keyring before the record is appended
 *      (sr_keyring_current writes the file before it returns).
 *  (2) No keyring, no key: an engine opened without a master key seals
 *      nothing (key id 0 for every record).
 *  (3) A key is destroyed (its tombstone written, sr_keyring_destroy) only
 *      after its KeyEvent "destroyed" is durable in the log
 *      (sr_engine_key_destroy: the event acknowledged first). A crash
 *      between leaves the event without the tombstone; the replay of the
 *      event (finish_destroy) or the next sweep writes it: idempotent.
 *  (4) A stream key's erasure (StreamKeyErase, Event.body 57; api/
 *      cluster_seal.h sr_skey_erase, docs/keys.md "Cluster: stream keys"):
 *      its intent (outcome "pending") writes the `origins` row 'K' key id
 *      u64 BE -> the intent's seq u64 LE ‖ u8 1 when its why is retention, its result (intent_seq) deletes
 *      it, both from the logged event (sr__apply_skey_erase, writer and
 *      replay alike): a row left is an intent whose tombstone may not be
 *      written, finished at the node's next start (sr_engine_skey_pending).
 */
#include "engine/engine_int.h"

#include "engine/records.h"
#include "storage/keyring.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SR_KEY_CLASSES(X)                 \
    X(__NOT_SET, SR_KC_CONFIG)            \
    X(_MEASUREMENTS, SR_KC_DATA)          \
    X(_REQUEST_CREATED, SR_KC_DATA)       \
    X(_REQUEST_TRANSITION, SR_KC_DATA)    \
    X(_MONITOR, SR_KC_DATA)               \
    X(_SESSION, SR_KC_AUDIT)              \
    X(_MASTER_PUT, SR_KC_CONFIG)          \
    X(_MASTER_DELETE, SR_KC_CONFIG)       \
    X(_DOC_PUT, SR_KC_DATA)               \
    X(_DOC_DELETE, SR_KC_DATA)            \
    X(_FILE_PUT, SR_KC_DATA)              \
    X(_FILE_DELETE, SR_KC_DATA)           \
    X(_REGISTRY_PUT, SR_KC_CONFIG)        \
    X(_REGISTRY_DELETE, SR_KC_CONFIG)     \
    X(_USER, SR_KC_CONFIG)                \
    X(_AUTH, SR_KC_AUDIT)                 \
    X(_KEY, SR_KC_AUDIT)                  \
    X(_ALARM, SR_KC_AUDIT)                \
    X(_HEADS_CHECKPOINT, SR_KC_DATA)      \
    X(_LOGIN_POLICY, SR_KC_CONFIG)        \
    X(_PENDING, SR_KC_CONFIG)             \
    X(_ADMIN, SR_KC_AUDIT)                \
    X(_FILE_SHARE, SR_KC_CONFIG)          \
    X(_CORRECTION, SR_KC_DATA)            \
    X(_BACKUP, SR_KC_CONFIG)              \
    X(_PUSH_MARK, SR_KC_CONFIG)           \
    X(_RETENTION, SR_KC_CONFIG)           \
    X(_CONFIG_CARRY, SR_KC_CONFIG)        \
    X(_LOG_TRIM, SR_KC_CONFIG)            \
    X(_ALIVE, SR_KC_AUDIT)                \
    X(_NOTIFY, SR_KC_AUDIT)               \
    X(_CHECKPOINT, SR_KC_CONFIG)          \
    X(_ACCESS, SR_KC_AUDIT)               \
    X(_WRITE_AUDIT, SR_KC_AUDIT)          \
    X(_ACCESS_BATCH, SR_KC_AUDIT)         \
    X(_CLUSTER, SR_KC_AUDIT)              \
    X(_POINT_ALIAS, SR_KC_CONFIG)         \
    X(_STREAM_KEY_ERASE, SR_KC_AUDIT)

#define SR_X_(c, cls) [SUIRO__V1__EVENT__BODY##c] = {1, cls},
static const struct {
    uint8_t set, cls;
} classes[] = {SR_KEY_CLASSES(SR_X_)};
#undef SR_X_
_Static_assert(sizeof classes / sizeof *classes == SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE + 1,
               "the key classes' table ends at the last case of Event.body");

#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
static inline int kind_has_class(Suiro__V1__Event__BodyCase c)
{
    switch (c) {
#define SR_X_(c, cls) case SUIRO__V1__EVENT__BODY##c:
        SR_KEY_CLASSES(SR_X_)
#undef SR_X_
        return 1;
    case _SUIRO__V1__EVENT__BODY__CASE_IS_INT_SIZE: break;
    }
    return 0;
}
#pragma GCC diagnostic pop

int sr__key_class(int kind)
{
    (void)kind_has_class;
    if (kind < 0 || (size_t)kind >= sizeof classes / sizeof *classes || !classes[kind].set) return -1;
    return classes[kind].cls;
}

/* ---- the keyring of a data directory ------------------------------------ */

/* The key class of an event kind by its body's field name (records.h; the
 * cluster's stream keys, api/cluster_seal.h): SR_KC_*, or -1. */
int sr_event_kind_key_class(const char *kind)
{
    if (!kind) return -1;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&suiro__v1__event__descriptor, kind);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return -1; /* not a case of body */
    return sr__key_class((int)f->id);
}

int sr__keyring_of(const sr_vfs *vfs, const char *dir, const sr_key *master, const char *source, int create,
                   sr_keyring **out, sr_errinfo *ei)
{
    *out = NULL;
    if (!master) return SR_OK;
    size_t dl = strlen(dir);
    char *kd = sr_malloc(dl + 6);
    if (!kd) return SR_ENOMEM;
    memcpy(kd, dir, dl);
    memcpy(kd + dl, "/keys", 6);
    int rc = sr_keyring_open(vfs, kd, master, source, create, out, ei);
    sr_free(kd);
    if (rc == SR_ENOTFOUND && !create) {
        if (ei) memset(ei, 0, sizeof *ei);
        return SR_OK; /* no keyring yet: nothing is sealed by a data key */
    }
    return rc;
}

/* ---- the key of each record ---------------------------------------------- */

int sr__record_key(sr_engine *e, const char *op, int kind, int64_t now, uint32_t *id, sr_keynote *note)
{
    *id = 0;
    if (!e->keyring) return SR_OK;
    int cls = sr__key_class(kind);
    if (cls < 0) cls = SR_KC_CONFIG;
    int created = 0;
    sr_keyinfo k;
    int rc = sr_keyring_current(e->keyring, op, cls, now, id, &created, &k);
    if (rc) return rc;
    if (created) {
        *note = (sr_keynote){"created", k, 0};
        return SR_OK;
    }
    /* [keys] rotate_days: data and audit keys end their epoch by age, so
     * that retention has whole periods to erase (docs/keys.md) */
    int64_t days = e->o.key_rotate_days;
    if (days > 0 && cls != SR_KC_CONFIG && now - k.created_ms >= days * 86400000) {
        sr_keyinfo nk;
        if ((rc = sr_keyring_rotate(e->keyring, op, cls, now, &nk))) return rc;
        *note = (sr_keynote){"rotated", nk, k.id};
        *id = nk.id;
    }
    return SR_OK;
}

Event *sr__key_event(sr_engine *e, const sr_keynote *n, uint64_t seq, int64_t now)
{
    struct {
        Event ev;
        Suiro__V1__KeyEvent k;
        char op[SR_KEYRING_OP_MAX + 1];
    } *x = sr_arena_alloc(&e->ev.a, sizeof *x);
    if (!x) return NULL;
    x->ev = (Event)SUIRO__V1__EVENT__INIT;
    x->k = (Suiro__V1__KeyEvent)SUIRO__V1__KEY_EVENT__INIT;
    memcpy(x->op, n->k.operator_id, sizeof x->op);
    x->k.action = (char *)n->action;
    x->k.key_id = n->k.id;
    x->k.purpose = (char *)"log";
    x->k.key_operator = x->op;
    x->k.key_class = (char *)sr_key_class_name(n->k.cls);
    x->k.epoch = n->k.epoch;
    x->k.alg = n->k.alg;
    x->k.master_key_id = sr_keyring_master_id(e->keyring);
    x->k.old_key_id = n->old_id;
    x->k.outcome = (char *)"done";
    x->ev.seq = seq;
    x->ev.ingest_ms = now;
    x->ev.operator_id = x->op;
    x->ev.actor = (char *)"system";
    x->ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    x->ev.body_case = SUIRO__V1__EVENT__BODY_KEY;
    x->ev.key = &x->k;
    return &x->ev;
}

/* "destroy" (sr_engine_key_destroy's command): the key must be a retired
 * data or audit key of the event's operator. The apply only checks and
 * records it ("destroyed"): the tombstone is written after the event is
 * durable (invariant (3)). */
static int check_destroy(sr_engine *e, Event *ev, sr_result *r)
{
    Suiro__V1__KeyEvent *k = ev->key;
    if (!e->keyring) return sr__refuse(r, SR_EINVAL, "no keyring: this engine has no master key, nothing to destroy");
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return sr__refuse(r, SR_EINVAL, "a key is destroyed by the system or a user's retention sweep");
    sr_keyinfo ki;
    if (sr_keyring_info(e->keyring, k->key_id, &ki))
        return sr__refuse(r, SR_ENOTFOUND, "key 0x%08x is not in the keyring", k->key_id);
    if (ki.cls != SR_KC_DATA && ki.cls != SR_KC_AUDIT)
        return sr__refuse(r, SR_EINVAL, "key 0x%08x is a %s key: only data and audit keys are destroyed", ki.id,
                          sr_key_class_name(ki.cls));
    if (ki.state == SR_KS_ACTIVE)
        return sr__refuse(r, SR_EINVAL, "key 0x%08x is active: only a retired key is destroyed", ki.id);
    if (ki.state == SR_KS_DESTROYED) return sr__refuse(r, SR_EEXIST, "key 0x%08x is destroyed already", ki.id);
    if (strcmp(ki.operator_id, ev->operator_id))
        return sr__refuse(r, SR_EINVAL, "key 0x%08x is not operator %.64s's", ki.id, ev->operator_id);
    if (e->pending_dry) return SR_OK;
    k->action = (char *)"destroyed";
    k->purpose = (char *)"log";
    k->key_operator = ev->operator_id;
    k->key_class = (char *)sr_key_class_name(ki.cls);
    k->epoch = ki.epoch;
    k->alg = ki.alg;
    k->epoch_end_ms = ki.retired_ms;
    k->master_key_id = sr_keyring_master_id(e->keyring);
    k->outcome = (char *)"done";
    return SR_OK;
}

/* The replay of a "destroyed" KeyEvent (it is in the log, so durable): a
 * key still in the keyring is destroyed now (a crash came between the event
 * and the tombstone; invariant (3)). A read-only engine writes nothing. */
static int finish_destroy(sr_engine *e, const Event *ev)
{
    const Suiro__V1__KeyEvent *k = ev->key;
    if (!e->keyring || e->o.readonly || strcmp(k->action, "destroyed") || strcmp(k->outcome, "done")) return SR_OK;
    sr_keyinfo ki;
    if (sr_keyring_info(e->keyring, k->key_id, &ki) || ki.state != SR_KS_RETIRED) return SR_OK;
    /* read from the log after a crash, it may sit in the page cache only */
    int rc = e->log ? sr_log_sync(e->log) : SR_OK;
    if (!rc) rc = sr_keyring_destroy(e->keyring, ki.id, ev->ingest_ms);
    if (rc) sr__alert(e, 1, "key 0x%08x: its \"destroyed\" KeyEvent is in the log, the keyring could not write its "
                            "tombstone (%s): the next retention sweep retries", ki.id, sr_strerror(rc));
    return SR_OK; /* the replay goes on: the key is still erased by the next sweep */
}

int sr__apply_key(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    (void)t;
    if (!validate) return ev->key && ev->key->action ? finish_destroy(e, ev) : SR_OK;
    Suiro__V1__KeyEvent *k = ev->key;
    const char *a = k->action;
    if (!strcmp(a, "created") || !strcmp(a, "rotated") || !strcmp(a, "destroyed"))
        return sr__refuse(r, SR_EINVAL, "key action \"%s\" is the engine's own (rotate a key with \"rotate\")", a);
    if (!strcmp(a, "destroy")) return check_destroy(e, ev, r);
    if (!strcmp(a, "master-rotate")) { /* approved by a second platform admin (POST /admin/v1/keys/master) */
        if (!e->keyring)
            return sr__refuse(r, SR_EINVAL, "no keyring: this engine has no master key (key_file), nothing to re-wrap");
        if (!e->o.key_next)
            return sr__refuse(r, SR_EINVAL, "no [keys] master_next is configured on this server: the new master key "
                                            "comes from there, never from a request");
        uint32_t old = sr_keyring_master_id(e->keyring);
        if (e->o.key_next->id == old)
            return sr__refuse(r, SR_EINVAL, "[keys] master_next (key id 0x%08x) wraps the keyring already", old);
        if (e->pending_dry) return SR_OK; /* the request: it would apply */
        int rc = sr_keyring_rewrap(e->keyring, e->o.key_next, 0, ev->ingest_ms);
        if (rc) {
            sr__alert(e, 1, "the keyring could not be re-wrapped (%s): the master rotation was refused, nothing changed",
                      sr_strerror(rc));
            return rc;
        }
        e->o.key = e->o.key_next; /* a backup's manifest names it; the log keeps the old one for v1/v2 segments */
        k->action = (char *)"master-rotated";
        k->master_key_id = e->o.key_next->id;
        k->old_master_key_id = old;
        k->outcome = (char *)"done";
        return SR_OK;
    }
    if (strcmp(a, "rotate")) return SR_OK; /* a record: exported, imported, master-rotated */
    if (e->pending_dry) return SR_OK;
    if (!e->keyring)
        return sr__refuse(r, SR_EINVAL, "no keyring: this engine has no master key (key_file), nothing to rotate");
    int cls = sr_key_class_parse(k->key_class);
    if (cls < SR_KC_DATA)
        return sr__refuse(r, SR_EINVAL, "key class \"%.40s\": one of data, audit, config", k->key_class);
    if (ev->operator_id[0] && strcmp(ev->operator_id, k->key_operator))
        return sr__refuse(r, SR_EINVAL, "operator %.64s cannot rotate operator %.64s's key", ev->operator_id,
                          k->key_operator);
    uint32_t old = 0;
    sr_keyinfo nk;
    if (sr_keyring_active(e->keyring, k->key_operator, cls, &old)) old = 0; /* none yet: epoch 1 */
    int rc = sr_keyring_rotate(e->keyring, k->key_operator, cls, ev->ingest_ms, &nk);
    if (rc) { /* the keyring could not be written: nothing changed; said as a failed write is */
        sr__alert(e, 1, "the keyring could not be written (%s): the key rotation was refused, nothing changed",
                  sr_strerror(rc));
        return rc;
    }
    k->action = (char *)"rotated";
    k->key_id = nk.id;
    k->old_key_id = old;
    k->epoch = nk.epoch;
    k->alg = nk.alg;
    k->master_key_id = sr_keyring_master_id(e->keyring);
    k->key_class = (char *)sr_key_class_name(cls);
    k->outcome = (char *)"done";
    return SR_OK;
}

/* ---- erased records (replay, rebuild) ------------------------------------ */

int sr__iter_next_readable(sr_engine *e, sr_log_iter *it, uint64_t end, uint64_t *seq, sr_slice *rec)
{
    int rc;
    while ((rc = sr_log_iter_next(it, seq, rec)) == SR_EERASED) {
        if (*seq >= end) return SR_OK; /* the caller stops there */
        sr_engine_open_stats *o = &e->ost;
        uint32_t id = sr_log_iter_key_id(it);
        o->erased_records++;
        uint32_t i = 0;
        while (i < o->n_erased && o->erased[i].key_id != id) i++;
        if (i == o->n_erased) {
            if (i == SR_ENGINE_ERASED_MAX) continue;
            o->n_erased++;
            struct sr_engine_erased *x = &o->erased[i];
            memset(x, 0, sizeof *x);
            x->key_id = id;
            x->first_seq = *seq;
            sr_keyinfo k;
            if (e->keyring && sr_keyring_info(e->keyring, id, &k) == SR_OK) {
                x->epoch = k.epoch;
                size_t l = strnlen(k.operator_id, sizeof x->operator_id - 1); /* operators are < 72 bytes */
                memcpy(x->operator_id, k.operator_id, l);
                const char *cn = sr_key_class_name(k.cls);
                memcpy(x->key_class, cn, strlen(cn) + 1); /* at most "legacy" */
                x->destroyed_ms = k.destroyed_ms;
            }
        }
        o->erased[i].records++;
        o->erased[i].last_seq = *seq;
    }
    return rc;
}

/* ---- the keyring's API ---------------------------------------------------- */

int sr_engine_key_list(sr_engine *e, sr_keyinfo **out, size_t *n)
{
    return e->keyring ? sr_keyring_list(e->keyring, out, n) : SR_ENOTFOUND;
}

uint32_t sr_engine_master_key_id(sr_engine *e) { return e->keyring ? sr_keyring_master_id(e->keyring) : 0; }

/* the KeyEvent of what the caller did */
static int key_record(sr_engine *e, const sr_cmd_env *env, const char *action, int rc, const char *msg,
                      uint32_t master, uint32_t old_master)
{
    if (e->o.readonly || e->o.log_readonly) return SR_OK;
    sr_key_rec k = {.action = action, .outcome = rc ? "failed" : "done", .message = msg, .master_key_id = master,
                    .old_master_key_id = old_master};
    sr_buf b;
    sr_buf_init(&b);
    int r = sr_cmd_key_ev(env, &k, &b);
    sr_result res;
    if (!r) {
        sr_slice sl = {b.data, b.len};
        r = sr_engine_submit_wait(e, &sl, 1, &res);
    }
    sr_buf_release(&b);
    return r;
}

/* serializes the first file key of an operator (below): one rotate, not
 * one per upload racing to it */
static pthread_mutex_t file_key_mu = PTHREAD_MUTEX_INITIALIZER;

int sr_engine_file_key(sr_engine *e, const sr_cmd_env *env, uint32_t *id)
{
    *id = 0;
    if (!e->keyring) return SR_OK;
    const char *op = env->op ? env->op : "";
    if (sr_keyring_active(e->keyring, op, SR_KC_DATA, id) == SR_OK) return SR_OK;
    /* none yet: the writer makes epoch 1 with its KeyEvent. Uploads wait
     * for the first one's (the writer never takes this lock); a data record
     * of the operator appended meanwhile makes the key itself, and then
     * this rotate starts epoch 2: both are the operator's, nothing lost */
    pthread_mutex_lock(&file_key_mu);
    if (sr_keyring_active(e->keyring, op, SR_KC_DATA, id) == SR_OK) {
        pthread_mutex_unlock(&file_key_mu);
        return SR_OK;
    }
    sr_key_rec k = {.action = "rotate", .key_operator = op, .key_class = "data"};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env ke = *env;
    ke.message_id = NULL; /* the upload's id is its FilePut's */
    int rc = sr_cmd_key_ev(&ke, &k, &b);
    sr_result res = {0};
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, &res);
    }
    sr_buf_release(&b);
    if (!rc && res.rc) rc = res.rc;
    if (!rc) rc = sr_keyring_active(e->keyring, op, SR_KC_DATA, id);
    pthread_mutex_unlock(&file_key_mu);
    return rc;
}

const sr_keys *sr_engine_data_keys(sr_engine *e) { return e->keyring ? sr_keyring_keys(e->keyring) : NULL; }

int sr_engine_key_export(sr_engine *e, const sr_cmd_env *env, sr_buf *out)
{
    if (!e->keyring) return SR_ENOTFOUND;
    int rc = sr_keyring_export(e->keyring, out);
    int r = key_record(e, env, "exported", rc, rc ? sr_strerror(rc) : "", sr_keyring_master_id(e->keyring), 0);
    return rc ? rc : r;
}

int sr_engine_key_import(sr_engine *e, const sr_cmd_env *env, const void *p, size_t n, const sr_key *other,
                         size_t *added, sr_errinfo *ei)
{
    if (!e->keyring) return SR_ENOTFOUND;
    size_t a = 0;
    int rc = sr_keyring_import(e->keyring, p, n, other, &a, ei);
    char msg[64];
    snprintf(msg, sizeof msg, "%zu entries added", a);
    if (added) *added = a;
    int r = key_record(e, env, "imported", rc, rc && ei ? ei->msg : msg, sr_keyring_master_id(e->keyring),
                       other ? other->id : 0);
    return rc ? rc : r;
}

int sr_engine_key_rewrap(sr_engine *e, const sr_cmd_env *env, const sr_key *new_master, int keep_legacy,
                         sr_errinfo *ei)
{
    if (!e->keyring) return SR_ENOTFOUND;
    uint32_t old = sr_keyring_master_id(e->keyring);
    int rc = sr_keyring_rewrap(e->keyring, new_master, keep_legacy, now_ms(e));
    if (!rc) e->o.key = new_master; /* a backup's manifest names it; the log keeps the old one for v1/v2 */
    if (rc && ei) {
        memset(ei, 0, sizeof *ei);
        ei->code = rc;
        snprintf(ei->msg, sizeof ei->msg, "the keyring could not be re-wrapped under master key 0x%08x: %s",
                 new_master->id, rc == SR_EEXIST ? "it is the current master (or a key id of the keyring)"
                                                 : sr_strerror(rc));
    }
    int r = key_record(e, env, "master-rotated", rc, rc ? sr_strerror(rc) : "", new_master->id, old);
    return rc ? rc : r;
}

int sr_engine_key_destroy(sr_engine *e, const sr_cmd_env *env, uint32_t id, uint32_t period_days, int64_t cut_ms,
                          sr_errinfo *ei)
{
    if (ei) memset(ei, 0, sizeof *ei);
    if (!e->keyring) return SR_ENOTFOUND;
    sr_keyinfo k;
    int rc = sr_keyring_info(e->keyring, id, &k);
    if (rc) return rc;
    if (k.state == SR_KS_DESTROYED) return SR_OK;
    sr_cmd_env en = *env;
    en.op = k.operator_id; /* the key's operator's audit trail */
    sr_key_rec kr = {.action = "destroy", .key_operator = k.operator_id, .key_class = sr_key_class_name(k.cls),
                     .key_id = id, .period_days = period_days, .cut_ms = cut_ms, .epoch_end_ms = k.retired_ms};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    memset(&res, 0, sizeof res);
    rc = sr_cmd_key_ev(&en, &kr, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, &res);
        if (!rc) rc = res.rc;
    }
    sr_buf_release(&b);
    if (rc) {
        if (ei) {
            *ei = res.err;
            ei->code = rc;
            if (!ei->msg[0]) snprintf(ei->msg, sizeof ei->msg, "key 0x%08x: %s", id, sr_strerror(rc));
        }
        return rc;
    }
    /* acknowledged; durable with sync=always, and made so here with the
     * other modes (their acknowledgment may come before the fsync) */
    if (e->o.sync != SR_ENGINE_SYNC_ALWAYS && (rc = sr_log_sync(e->log))) {
        if (ei) {
            ei->code = rc;
            snprintf(ei->msg, sizeof ei->msg, "key 0x%08x: its KeyEvent could not be made durable (%s): not destroyed",
                     id, sr_strerror(rc));
        }
        return rc;
    }
    /* the KeyEvent is durable: now the tombstone */
    rc = sr_keyring_destroy(e->keyring, id, now_ms(e));
    if (rc) {
        sr__alert(e, 1, "key 0x%08x: its \"destroyed\" KeyEvent is durable, the keyring could not write its "
                        "tombstone (%s): the next retention sweep retries", id, sr_strerror(rc));
        if (ei) {
            ei->code = rc;
            snprintf(ei->msg, sizeof ei->msg, "key 0x%08x: the keyring could not be written: %s", id, sr_strerror(rc));
        }
    }
    return rc;
}

/* ---- stream keys' erasures (invariant 4; issue #19 ckey) ---------------- */

static int skey_id_parse(const char *hex, uint64_t *id)
{
    *id = 0;
    if (!hex || strlen(hex) != 16) return SR_EINVAL;
    for (int i = 0; i < 16; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return SR_EINVAL;
        *id = *id << 4 | (uint64_t)v;
    }
    return *id ? SR_OK : SR_EINVAL;
}

static size_t skey_row(uint8_t k[9], uint64_t id)
{
    k[0] = 'K';
    for (int i = 0; i < 8; i++) k[1 + i] = (uint8_t)(id >> (56 - 8 * i));
    return 9;
}

int sr__check_skey_erase(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    const Suiro__V1__StreamKeyErase *s = ev->stream_key_erase;
    uint64_t id;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return sr__refuse(r, SR_EINVAL, "a stream key is erased by a user (the Admin API) or the system (retention)");
    if (!ev->actor || !ev->actor[0]) return sr__refuse(r, SR_EINVAL, "a stream key's erasure names its actor");
    if (skey_id_parse(s->key_id, &id))
        return sr__refuse(r, SR_EINVAL, "a stream key's id is 16 lowercase hex digits, not '%.40s'", s->key_id);
    if (strcmp(s->why, "admin") && strcmp(s->why, "retention"))
        return sr__refuse(r, SR_EINVAL, "a stream key's erasure's why is admin or retention, not '%.32s'", s->why);
    const char *o = s->outcome;
    int pending = !strcmp(o, "pending");
    if (!pending && strcmp(o, "done") && strcmp(o, "found") && strcmp(o, "failed") && strcmp(o, "refused"))
        return sr__refuse(r, SR_EINVAL, "a stream key's erasure's outcome is pending, done, found, failed or refused");
    if (strcmp(o, "refused") && strcmp(s->key_class, "data") && strcmp(s->key_class, "audit"))
        return sr__refuse(r, SR_EINVAL, "only a data or audit stream key is erased (a config key never is)");
    if (pending && s->intent_seq) return sr__refuse(r, SR_EINVAL, "an erasure's intent names no intent_seq");
    if ((!strcmp(o, "done") || !strcmp(o, "found")) && !s->intent_seq)
        return sr__refuse(r, SR_EINVAL, "a stream key's erasure done or found names its intent (intent_seq)");
    if (!pending && s->intent_seq) { /* a result: its intent is open here */
        uint8_t k[9];
        MDB_val v;
        int rc = get(t, DB(e, SR_DB_ORIGINS), k, skey_row(k, id), &v);
        if (rc == SR_ENOTFOUND || (!rc && (v.mv_size < 8 || sr_get_le64(v.mv_data) != s->intent_seq)))
            return sr__refuse(r, SR_EINVAL, "stream key %s: no open intent at seq %" PRIu64 " to finish", s->key_id,
                              s->intent_seq);
        if (rc) return rc;
    }
    return SR_OK;
}

int sr__apply_skey_erase(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    (void)r;
    (void)validate;
    const Suiro__V1__StreamKeyErase *s = ev->stream_key_erase;
    uint64_t id;
    if (!s || skey_id_parse(s->key_id, &id)) return SR_OK; /* (refused by the check when written) */
    uint8_t k[9], v[9];
    size_t kl = skey_row(k, id);
    if (!strcmp(s->outcome, "pending")) {
        sr_put_le64(v, ev->seq);
        v[8] = !strcmp(s->why, "retention");
        return put(t, DB(e, SR_DB_ORIGINS), k, kl, v, 9);
    }
    if (!strcmp(s->outcome, "refused")) return SR_OK;
    MDB_val cur;
    int rc = get(t, DB(e, SR_DB_ORIGINS), k, kl, &cur);
    if (rc == SR_ENOTFOUND) return SR_OK;
    if (rc) return rc;
    if (cur.mv_size >= 8 && sr_get_le64(cur.mv_data) != s->intent_seq) return SR_OK; /* another intent's */
    return del(t, DB(e, SR_DB_ORIGINS), k, kl);
}

int sr__skey_intent_open(sr_engine *e, MDB_txn *t, const Event *ev)
{
    const Suiro__V1__StreamKeyErase *s = ev->stream_key_erase;
    uint64_t id;
    if (!s || strcmp(s->outcome, "pending") || skey_id_parse(s->key_id, &id)) return 0;
    uint8_t k[9];
    MDB_val v;
    return get(t, DB(e, SR_DB_ORIGINS), k, skey_row(k, id), &v) == SR_OK && v.mv_size >= 8 &&
           sr_get_le64(v.mv_data) == ev->seq;
}

int sr_engine_skey_pending(sr_engine *e, int (*fn)(void *ctx, uint64_t id, uint64_t seq, const char *why), void *ctx)
{
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_ORIGINS), &c)))) {
        sr_index_read_end(e->ix, t);
        return rc;
    }
    /* collected first: fn may write (the read transaction ends before) */
    uint64_t ids[64], seqs[64];
    uint8_t ret[64];
    size_t n = 0;
    uint8_t k0 = 'K';
    MDB_val K = {1, &k0}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    for (; r == 0 && n < 64 && K.mv_size == 9 && ((const uint8_t *)K.mv_data)[0] == 'K';
         r = mdb_cursor_get(c, &K, &V, MDB_NEXT)) {
        const uint8_t *p = (const uint8_t *)K.mv_data + 1;
        uint64_t id = 0;
        for (int i = 0; i < 8; i++) id = id << 8 | p[i];
        ids[n] = id;
        ret[n] = V.mv_size >= 9 && ((const uint8_t *)V.mv_data)[8];
        seqs[n++] = V.mv_size >= 8 ? sr_get_le64(V.mv_data) : 0;
    }
    if (r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    for (size_t i = 0; i < n && !rc; i++) rc = fn(ctx, ids[i], seqs[i], ret[i] ? "retention" : "admin");
    return rc;
}

int sr_engine_log_durable(sr_engine *e)
{
    return e->o.sync == SR_ENGINE_SYNC_ALWAYS || !e->log ? SR_OK : sr_log_sync(e->log);
}

int64_t sr_engine_now_ms(sr_engine *e) { return now_ms(e); }
