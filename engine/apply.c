/*
 * engine/apply.c -- what an event does to the index: the event appliers,
 * one row per kind of event (SR_EVENT_KINDS below), and the message ids.
 *
 * The writer (writer.c) runs a group in two passes: pass 1 calls
 * sr__apply_nonseries for each event of a command in a nested transaction
 * (the row's check, then its apply, validate = 1: checks, and fills the
 * fields the writer decides: a data point's number, a document's revision,
 * a kept secret), then sr__apply_common (its message id); pass 2 calls
 * sr__apply_series (the row's series: the measurements into the heads,
 * heads.c). The replay (replay.c) calls the same with validate = 0: an event
 * in the log was accepted once, so it is applied as it is, with the fields
 * the writer filled in.
 *
 * INVARIANTS
 *  (1) An apply reads nothing but the event and the index (engine.c
 *      invariant 3): the replay gives what the writer gave.
 *  (2) A refusal (sr__refuse: r->rc and r->msg) changes nothing that is
 *      kept: the writer aborts the command's nested transaction.
 *  (3) Every case of Event.body has a row (checked when it compiles, and by
 *      test_engine); a kind with no apply is kept by the log alone.
 *
 * How to add an event kind: its message and its case in Event.body
 * (codecs/events.proto), one row in SR_EVENT_KINDS and its check/apply
 * functions here (a new database: one row in SR_INDEX_DBS, schema.h).
 */
#include "engine/engine_int.h"

#include "codecs/accpack.h"
#include "codecs/ids.h"
#include "engine/authz.h"
#include "engine/records.h"
#include "storage/index.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put_packed(sr_engine *e, MDB_txn *t, sr_dbi d, const void *k, size_t kl, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[512];
    uint8_t *b = n <= sizeof stackbuf ? stackbuf : sr_malloc(n);
    if (!b) return SR_ENOMEM;
    protobuf_c_message_pack(m, b);
    int rc = put(t, DB(e, d), k, kl, b, n);
    if (b != stackbuf) sr_free(b);
    return rc;
}

/* A value of a timed database (sr__db_timed, schema.h layout 9): the write
 * times, then the packed message. */
static int put_timed(sr_engine *e, MDB_txn *t, sr_dbi d, const void *k, size_t kl, int64_t first_ms, int64_t last_ms,
                     const ProtobufCMessage *m)
{
    size_t n = SR_WTIMES + protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[512];
    uint8_t *b = n <= sizeof stackbuf ? stackbuf : sr_malloc(n);
    if (!b) return SR_ENOMEM;
    wtimes_put(b, first_ms, last_ms);
    protobuf_c_message_pack(m, b + SR_WTIMES);
    int rc = put(t, DB(e, d), k, kl, b, n);
    if (b != stackbuf) sr_free(b);
    return rc;
}

/* The time of the first write of the row at k of a timed database: the
 * stored row's, else (the event creates it) the event's ingest time. */
static int64_t first_write(sr_engine *e, MDB_txn *t, sr_dbi d, const void *k, size_t kl, const Event *ev)
{
    MDB_val v;
    sr__wtimes w;
    const void *p;
    if (get(t, DB(e, d), k, kl, &v) == SR_OK && (p = v.mv_data, !wtimes_strip(&p, &v.mv_size, &w))) return w.first_ms;
    return ev->ingest_ms;
}

/* A timed row written by ev: its first write kept, ev's time its last. */
static int put_written(sr_engine *e, MDB_txn *t, sr_dbi d, const void *k, size_t kl, const Event *ev,
                       const ProtobufCMessage *m)
{
    return put_timed(e, t, d, k, kl, first_write(e, t, d, k, kl, ev), ev->ingest_ms, m);
}

/* ------------------------------------------------------------------------ */
/* Pass 1: validate (and apply non-series events)                            */

int sr__refuse(sr_result *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err.msg, sizeof r->err.msg, fmt, ap);
    va_end(ap);
    r->rc = rc;
    r->err.code = rc;
    return rc;
}

/* A value outside its master's min/max: refused, and named for the alarm
 * rule value-out-of-range (suiro.h sr_result.range, err.where the point). */
static int refuse_range(sr_result *r, uint32_t point, const char *id, double x, const char *what, double bound)
{
    int rc = sr__refuse(r, SR_EINVAL, "%s: value %g %s %g", id, x, what, bound);
    r->range = 1;
    r->point = point;
    snprintf(r->err.where, sizeof r->err.where, "%s", id);
    return rc;
}

/* One point of a measurements event and its samples (either form of the
 * record: sr_meas_next), checked against the point table (points.c). */
static int check_point(sr_engine *e, MDB_txn *t, const Event *ev, sr_mpoint *pv, sr_result *r)
{
    sr_ptview pi;
    char *scratch = NULL;
    int rc = sr__points_view(e, t, pv->point, &pi, &scratch); /* the point table: no LMDB read, no unpack */
    if (rc == SR_ENOTFOUND) return sr__refuse(r, SR_EINVAL, "point %u: unknown data point", pv->point);
    if (rc) return sr__refuse(r, rc, "point %u: %s", pv->point, sr_strerror(rc));
    int bad = 0;
    sr_vtype t2 = 0;
    long n = pv->n;
    if (n >= 0) t2 = pv->type;
    if (strcmp(pi.op, ev->operator_id) != 0) {
        bad = sr__refuse(r, SR_EINVAL, "point %u: unknown data point", pv->point);
    } else if (n < 0) {
        bad = sr__refuse(r, SR_EINVAL, "%s: inconsistent value arrays", pi.id);
    } else if ((int)t2 != pi.type) {
        bad = sr__refuse(r, SR_EINVAL, "%s: values of the wrong type for a %s point", pi.id,
                         pi.type == SUIRO__V1__VALUE_TYPE__VT_NUMBER    ? "number"
                         : pi.type == SUIRO__V1__VALUE_TYPE__VT_INTEGER ? "integer"
                         : pi.type == SUIRO__V1__VALUE_TYPE__VT_BOOL    ? "boolean"
                                                                        : "string");
    } else if (ev->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY && strcmp(pi.gateway, ev->actor) != 0) {
        bad = sr__refuse(r, SR_EINVAL, "%s: not reached through gateway %s", pi.id, ev->actor);
    } else {
        for (long i = 0; i < n && !bad; i++) {
            sr_sample s;
            if (sr_pv_iter_next(&pv->it, &s)) {
                bad = sr__refuse(r, SR_EINVAL, "%s: value %ld: timestamp out of range", pi.id, i);
                break;
            }
            if (s.quality > SR_Q_UNCERTAIN) continue;
            double x = pi.type == SUIRO__V1__VALUE_TYPE__VT_NUMBER    ? s.v.f
                       : pi.type == SUIRO__V1__VALUE_TYPE__VT_INTEGER ? (double)s.v.i
                                                                      : 0;
            if (pi.type == SUIRO__V1__VALUE_TYPE__VT_NUMBER && !isfinite(x))
                bad = sr__refuse(r, SR_EINVAL, "%s: value %ld is not a finite number", pi.id, i);
            else if (pi.has_min && x < pi.min && (t2 == SR_VT_NUMBER || t2 == SR_VT_INTEGER))
                bad = refuse_range(r, pv->point, pi.id, x, "below the minimum", pi.min);
            else if (pi.has_max && x > pi.max && (t2 == SR_VT_NUMBER || t2 == SR_VT_INTEGER))
                bad = refuse_range(r, pv->point, pi.id, x, "above the maximum", pi.max);
        }
    }
    sr_free(scratch);
    return bad;
}

static int check_measurements(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, sr__event_values(ev));
    while (sr_meas_next(&mi, &p)) {
        int rc = check_point(e, t, ev, &p, r);
        if (rc) return rc;
    }
    return SR_OK;
}

/* A correction (R-PO-1): made by a user or an app (the API checked that it
 * may correct: data.correct, or the app's corrections grant), with a
 * reason, of at least one value; its values are checked as measurements
 * are (the points of its operator, their types and ranges). */
static int check_correction(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    const Suiro__V1__Correction *c = ev->correction;
    if (!c || !c->values) return sr__refuse(r, SR_EINVAL, "correction: no values");
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP)
        return sr__refuse(r, SR_EINVAL, "correction: only a user or an app corrects values");
    if (!ev->operator_id || !ev->operator_id[0]) return sr__refuse(r, SR_EINVAL, "correction: no operator");
    size_t rl = c->reason ? strlen(c->reason) : 0;
    if (!rl || rl > SR_CORR_REASON_MAX) return sr__refuse(r, SR_EINVAL, "reason: 1 to %d bytes", SR_CORR_REASON_MAX);
    if (!c->import_id || !sr_id_str_ok(c->import_id)) return sr__refuse(r, SR_EINVAL, "correction: a bad import id");
    sr_meas_iter mi;
    sr_mpoint p;
    size_t nv = 0;
    sr_meas_iter_init(&mi, c->values);
    while (sr_meas_next(&mi, &p)) nv += p.n > 0 ? (size_t)p.n : 0;
    if (!nv) return sr__refuse(r, SR_EINVAL, "correction: no values");
    return check_measurements(e, t, ev, r);
}

static int apply_master_put(sr_engine *e, MDB_txn *t, const Event *ev, MasterPut *mp, sr_result *r, int validate)
{
    int rc;
    uint8_t k[300];
    char kind[2] = {(char)('0' + mp->kind), 0};
    if (mp->kind < 1 || mp->kind > 4) return sr__refuse(r, SR_EINVAL, "master %s: unknown kind", mp->id);
    if (!mp->id[0] || strlen(mp->id) > 64) return sr__refuse(r, SR_EINVAL, "master id empty or too long");
    size_t kl = mkkey(k, sizeof k, ev->operator_id, kind, mp->id);
    if (!kl) return sr__refuse(r, SR_EINVAL, "master %s: key too long", mp->id);
    if (validate && mp->kind > 1) {
        /* the parent must exist */
        uint8_t pk[300];
        char pkind[2] = {(char)('0' + mp->kind - 1), 0};
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, pkind, mp->parent_id);
        MDB_val v;
        if (!pkl || get(t, DB(e, SR_DB_MASTERS), pk, pkl, &v))
            return sr__refuse(r, SR_EINVAL, "master %s: parent %s does not exist", mp->id, mp->parent_id);
    }
    if (mp->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
        if (validate && (mp->type < 1 || mp->type > 4))
            return sr__refuse(r, SR_EINVAL, "data point %s: unknown value type", mp->id);
        if (validate && mp->has_min && mp->has_max && mp->min > mp->max)
            return sr__refuse(r, SR_EINVAL, "data point %s: min above max", mp->id);
        if (validate && mp->retention_class && mp->retention_class[0] && !sr__retention_class_ok(mp->retention_class))
            return sr__refuse(r, SR_EINVAL, "data point %s: retention class '%s': an id, not audit, message_ids, documents, files, requests nor monitors",
                              mp->id, mp->retention_class);
        uint8_t pk[300];
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, mp->id, NULL);
        MDB_val v;
        uint32_t point;
        if (get(t, DB(e, SR_DB_POINTS), pk, pkl, &v) == SR_OK && v.mv_size == 4) {
            point = get_be32(v.mv_data);
            if (validate) {
                pointinfo pi = {0};
                if (sr__pointinfo_get(e, t, point, &pi) == SR_OK) {
                    int changed = pi.m->type != mp->type;
                    suiro__v1__master_put__free_unpacked(pi.m, NULL);
                    if (changed) return sr__refuse(r, SR_EINVAL, "data point %s: its value type cannot change", mp->id);
                }
            }
        } else {
            MDB_val nv;
            uint8_t rk[300];
            size_t rkl = mkkey(rk, sizeof rk, "retired", ev->operator_id, mp->id);
            if (rkl && get(t, DB(e, SR_DB_META), rk, rkl, &nv) == SR_OK && nv.mv_size == 4) {
                /* a removed data point comes back: its old number, so its
                 * stored values are its history again */
                point = get_be32(nv.mv_data);
                if (validate) {
                    pointinfo pi = {0};
                    if (sr__pointinfo_get(e, t, point, &pi) == SR_OK) {
                        int changed = pi.m->type != mp->type;
                        suiro__v1__master_put__free_unpacked(pi.m, NULL);
                        if (changed)
                            return sr__refuse(r, SR_EINVAL,
                                              "data point %s: it was removed with another value type, which cannot "
                                              "change",
                                              mp->id);
                    }
                }
                if (!validate) point = mp->point;
                if ((rc = del(t, DB(e, SR_DB_META), rk, rkl))) return rc;
            } else {
                point = 1;
                if (get(t, DB(e, SR_DB_META), "next_point", 10, &nv) == SR_OK && nv.mv_size == 4)
                    point = sr_get_le32(nv.mv_data);
                uint32_t next = point;
                if (!validate) point = mp->point; /* replay: the number is in the event */
                uint8_t b[4];
                /* never lower: a carried record (segdrop.c) is applied after later ones */
                sr_put_le32(b, validate || point + 1 > next ? point + 1 : next);
                if ((rc = put(t, DB(e, SR_DB_META), "next_point", 10, b, 4))) return rc;
            }
        }
        if (validate) mp->point = point;
        point = mp->point;
        r->point = point;
        sr__points_touch(e, point); /* read back after the commit (points.c) */
        uint8_t pb[4];
        be32(pb, point);
        if ((rc = put(t, DB(e, SR_DB_POINTS), pk, pkl, pb, 4))) return rc;
        /* pointinfo: op \0 gateway \0 packed master; the gateway is the device's */
        char gw[72] = "";
        uint8_t dk[300];
        char dkind[2] = {'0' + SUIRO__V1__MASTER_KIND__MK_DEVICE, 0};
        size_t dkl = mkkey(dk, sizeof dk, ev->operator_id, dkind, mp->parent_id);
        MDB_val dv;
        if (dkl && get(t, DB(e, SR_DB_MASTERS), dk, dkl, &dv) == SR_OK) {
            MasterPut *dm = suiro__v1__master_put__unpack(NULL, dv.mv_size, dv.mv_data);
            if (dm) {
                snprintf(gw, sizeof gw, "%s", dm->gateway_id);
                suiro__v1__master_put__free_unpacked(dm, NULL);
            }
        }
        size_t ol = strlen(ev->operator_id), gl = strlen(gw), ml = protobuf_c_message_get_packed_size(&mp->base);
        uint8_t *buf = sr_malloc(ol + gl + 2 + ml);
        if (!buf) return SR_ENOMEM;
        memcpy(buf, ev->operator_id, ol + 1);
        memcpy(buf + ol + 1, gw, gl + 1);
        protobuf_c_message_pack(&mp->base, buf + ol + gl + 2);
        rc = put(t, DB(e, SR_DB_POINTINFO), pb, 4, buf, ol + gl + 2 + ml);
        sr_free(buf);
        if (rc) return rc;
    }
    return put_packed(e, t, SR_DB_MASTERS, k, kl, &mp->base);
}

static int apply_master_delete(sr_engine *e, MDB_txn *t, const Event *ev, const Suiro__V1__MasterDelete *md,
                               sr_result *r, int validate)
{
    uint8_t k[300];
    char kind[2] = {(char)('0' + md->kind), 0};
    size_t kl = mkkey(k, sizeof k, ev->operator_id, kind, md->id);
    MDB_val v;
    if (!kl || get(t, DB(e, SR_DB_MASTERS), k, kl, &v)) {
        if (validate) return sr__refuse(r, SR_ENOTFOUND, "master %s does not exist", md->id);
        return SR_OK;
    }
    if (md->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
        uint8_t pk[300];
        size_t pkl = mkkey(pk, sizeof pk, ev->operator_id, md->id, NULL);
        MDB_val pv;
        int rc = get(t, DB(e, SR_DB_POINTS), pk, pkl, &pv);
        if (rc == SR_OK && pv.mv_size == 4) {
            sr__points_touch(e, get_be32(pv.mv_data)); /* no longer listed (points.c) */
            /* deactivated, not forgotten: remember its number so that listing
             * it again brings its history back (apply_master_put) */
            uint8_t rk[300], nb[4];
            size_t rkl = mkkey(rk, sizeof rk, "retired", ev->operator_id, md->id);
            memcpy(nb, pv.mv_data, 4);
            if (rkl && (rc = put(t, DB(e, SR_DB_META), rk, rkl, nb, 4))) return rc;
        }
        rc = del(t, DB(e, SR_DB_POINTS), pk, pkl);
        if (rc) return rc;
        /* pointinfo and stored values stay: the point number is never given
         * to another data point, and history remains readable by replay */
    }
    return del(t, DB(e, SR_DB_MASTERS), k, kl);
}

/* Documents (R-PO-2): the writer fills a put's owner -- the stored
 * document's, else the actor's -- and refuses an app's write of a document
 * it neither owns nor holds a write grant on (sr__store_write_ok). */
static int apply_doc(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    int is_put = ev->body_case == SUIRO__V1__EVENT__BODY_DOC_PUT;
    const char *coll = is_put ? ev->doc_put->collection : ev->doc_delete->collection;
    const char *id = is_put ? ev->doc_put->doc_id : ev->doc_delete->doc_id;
    if (validate && (!coll[0] || !id[0] || strlen(coll) > 128 || strlen(id) > 256))
        return sr__refuse(r, SR_EINVAL, "document: collection and id are required (at most 128 and 256 bytes)");
    size_t kl = mkkey(k, sizeof k, ev->operator_id, coll, id);
    MDB_val v;
    sr__docval cur = {0};
    int exists = get(t, DB(e, SR_DB_DOCS), k, kl, &v) == SR_OK && !doc_decode(v.mv_data, v.mv_size, &cur);
    char owner[256] = "", name[400];
    if (exists) {
        memcpy(owner, cur.owner, cur.ownerl);
        owner[cur.ownerl] = 0;
    }
    snprintf(name, sizeof name, "%s/%s", coll, id);
    int rc;
    if (is_put) {
        Suiro__V1__DocumentPut *d = ev->doc_put;
        if (validate) {
            if (d->revision && d->revision != cur.revision)
                return sr__refuse(r, SR_ECONFLICT, "document %s/%s: revision is %" PRIu64 ", not %" PRIu64, coll, id,
                                  cur.revision, d->revision);
            if (exists && (rc = sr__store_write_ok(e, t, ev, SR_STORE_DOCUMENTS, coll, cur.owner_kind, owner, r)))
                return rc;
            d->revision = cur.revision + 1;
            if (exists) {
                char *o = sr_arena_alloc(&e->ev.a, cur.ownerl + 1); /* dies with the group's events */
                if (!o) return SR_ENOMEM;
                memcpy(o, owner, cur.ownerl + 1);
                d->owner = o;
                d->owner_kind = (Suiro__V1__ActorKind)cur.owner_kind;
            } else {
                d->owner = ev->actor;
                d->owner_kind = ev->actor_kind;
            }
        }
        r->revision = d->revision;
        size_t ol = strlen(d->owner);
        if (ol > 255) return validate ? sr__refuse(r, SR_EINVAL, "document %s: owner id too long", name) : SR_OK;
        uint8_t *b = sr_malloc(SR_WTIMES + 10 + ol + d->json.len);
        if (!b) return SR_ENOMEM;
        wtimes_put(b, exists ? cur.w.first_ms : ev->ingest_ms, ev->ingest_ms);
        uint8_t *x = b + SR_WTIMES;
        sr_put_le64(x, d->revision);
        x[8] = (uint8_t)d->owner_kind;
        x[9] = (uint8_t)ol;
        memcpy(x + 10, d->owner, ol);
        if (d->json.len) memcpy(x + 10 + ol, d->json.data, d->json.len);
        rc = put(t, DB(e, SR_DB_DOCS), k, kl, b, SR_WTIMES + 10 + ol + d->json.len);
        sr_free(b);
        return rc;
    }
    Suiro__V1__DocumentDelete *d = ev->doc_delete;
    if (validate) {
        if (!exists) return sr__refuse(r, SR_ENOTFOUND, "document %s/%s does not exist", coll, id);
        if (d->revision && d->revision != cur.revision)
            return sr__refuse(r, SR_ECONFLICT, "document %s/%s: revision is %" PRIu64 ", not %" PRIu64, coll, id,
                              cur.revision, d->revision);
        if ((rc = sr__store_write_ok(e, t, ev, SR_STORE_DOCUMENTS, coll, cur.owner_kind, owner, r))) return rc;
        d->revision = cur.revision;
    }
    return del(t, DB(e, SR_DB_DOCS), k, kl);
}

/* The stored FilePut of (op, path), decoded (*out NULL: none). */
static int file_stored(sr_engine *e, MDB_txn *t, const char *op, const char *path, uint8_t *k, size_t *kl,
                       Suiro__V1__FilePut **out, sr__wtimes *w)
{
    *out = NULL;
    *kl = mkkey(k, 600, op, path, NULL);
    if (!*kl) return SR_EINVAL;
    MDB_val v;
    if (get(t, DB(e, SR_DB_FILES), k, *kl, &v)) return SR_OK;
    const void *p = v.mv_data;
    size_t n = v.mv_size;
    if (wtimes_strip(&p, &n, w)) return SR_ECORRUPT;
    *out = suiro__v1__file_put__unpack(NULL, n, p);
    return *out ? SR_OK : SR_ECORRUPT;
}

/* A file's metadata (R-PO-2): a new file is the actor's; a put over a
 * stored one keeps its owner and share list and needs the owner or a write
 * grant (sr__store_write_ok). */
static int apply_file_put(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    Suiro__V1__FilePut *fp = ev->file_put;
    if (validate && (!fp->path[0] || fp->sha256.len != 32))
        return sr__refuse(r, SR_EINVAL, "file: path and a 32-byte sha256 are required");
    if (validate && fp->key_id) { /* the blob's data key: one of this operator's data keys (blob-format.md v2) */
        sr_keyinfo ki;
        if (!e->keyring || sr_keyring_info(e->keyring, fp->key_id, &ki) || ki.cls != SR_KC_DATA ||
            strcmp(ki.operator_id, ev->operator_id) || ki.state == SR_KS_DESTROYED)
            return sr__refuse(r, SR_EINVAL, "file %s: key id %08x is no data key of operator %s (sr_engine_file_key)",
                              fp->path, fp->key_id, ev->operator_id);
    }
    if (!validate) {
        kl = mkkey(k, sizeof k, ev->operator_id, fp->path, NULL);
        return kl ? put_written(e, t, SR_DB_FILES, k, kl, ev, &fp->base) : SR_OK;
    }
    Suiro__V1__FilePut *old;
    sr__wtimes w;
    int rc = file_stored(e, t, ev->operator_id, fp->path, k, &kl, &old, &w);
    if (rc == SR_EINVAL) return sr__refuse(r, SR_EINVAL, "file path too long");
    if (rc) return sr__refuse(r, rc, "file %s: the stored record does not decode", fp->path);
    if (old) {
        rc = sr__store_write_ok(e, t, ev, SR_STORE_FILES, fp->path, old->owner_kind, old->owner, r);
        /* the stored owner and share list, copied into the group's arena */
        size_t ol = strlen(old->owner);
        char *o = rc ? NULL : sr_arena_alloc(&e->ev.a, ol + 1);
        char **sw = rc || !old->n_shared_with ? NULL : sr_arena_alloc(&e->ev.a, old->n_shared_with * sizeof *sw);
        if (!rc && (!o || (old->n_shared_with && !sw))) rc = SR_ENOMEM;
        for (size_t i = 0; !rc && i < old->n_shared_with; i++) {
            size_t l = strlen(old->shared_with[i]);
            if (!(sw[i] = sr_arena_alloc(&e->ev.a, l + 1))) rc = SR_ENOMEM;
            else memcpy(sw[i], old->shared_with[i], l + 1);
        }
        if (!rc) {
            memcpy(o, old->owner, ol + 1);
            fp->owner = o;
            fp->owner_kind = old->owner_kind;
            fp->shared_with = sw;
            fp->n_shared_with = old->n_shared_with;
        }
        suiro__v1__file_put__free_unpacked(old, NULL);
        if (rc) return rc;
    } else {
        fp->owner = ev->actor;
        fp->owner_kind = ev->actor_kind;
        fp->shared_with = NULL;
        fp->n_shared_with = 0;
    }
    return put_written(e, t, SR_DB_FILES, k, kl, ev, &fp->base);
}

static int apply_file_delete(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    if (!validate) {
        kl = mkkey(k, sizeof k, ev->operator_id, ev->file_delete->path, NULL);
        return kl ? del(t, DB(e, SR_DB_FILES), k, kl) : SR_OK;
    }
    Suiro__V1__FilePut *old;
    sr__wtimes w;
    int rc = file_stored(e, t, ev->operator_id, ev->file_delete->path, k, &kl, &old, &w);
    if (rc == SR_EINVAL || (!rc && !old))
        return sr__refuse(r, SR_ENOTFOUND, "file %s does not exist", ev->file_delete->path);
    if (rc) return sr__refuse(r, rc, "file %s: the stored record does not decode", ev->file_delete->path);
    rc = sr__store_write_ok(e, t, ev, SR_STORE_FILES, ev->file_delete->path, old->owner_kind, old->owner, r);
    suiro__v1__file_put__free_unpacked(old, NULL);
    return rc ? rc : del(t, DB(e, SR_DB_FILES), k, kl);
}

/* A file's share list (FileShare): the stored FilePut with shared_with
 * replaced. Every user must be an undeleted user of the file's operator. */
static int apply_file_share(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    const Suiro__V1__FileShare *fs = ev->file_share;
    uint8_t k[600];
    size_t kl;
    Suiro__V1__FilePut *old;
    sr__wtimes w;
    int rc = file_stored(e, t, ev->operator_id, fs->path, k, &kl, &old, &w);
    if (rc || !old) {
        if (!validate) return rc == SR_ECORRUPT ? rc : SR_OK;
        if (rc == SR_ECORRUPT) return sr__refuse(r, rc, "file %s: the stored record does not decode", fs->path);
        return sr__refuse(r, SR_ENOTFOUND, "file %s does not exist", fs->path);
    }
    for (size_t i = 0; validate && !rc && i < fs->n_users; i++) {
        const char *u = fs->users[i];
        MDB_val v;
        UserEvent *st = NULL;
        size_t ul = strlen(u);
        if (ul && ul <= 64 && get(t, DB(e, SR_DB_USERS), u, ul, &v) == SR_OK)
            st = suiro__v1__user_event__unpack(NULL, v.mv_size, v.mv_data);
        int ok = st && !st->deleted && st->scope == SUIRO__V1__USER_SCOPE__US_OPERATOR &&
                 !strcmp(st->scope_id, ev->operator_id);
        if (st) suiro__v1__user_event__free_unpacked(st, NULL);
        for (size_t j = 0; ok && j < i; j++)
            if (!strcmp(fs->users[j], u)) ok = 0;
        if (!ok)
            rc = sr__refuse(r, SR_EINVAL, "users[%zu]: %s is not a user of operator %s (or is listed twice)", i, u,
                            ev->operator_id);
    }
    if (!rc) {
        char **osw = old->shared_with; /* the decoded list, freed with old */
        size_t on = old->n_shared_with;
        old->shared_with = fs->users; /* borrowed for the pack */
        old->n_shared_with = fs->n_users;
        rc = put_timed(e, t, SR_DB_FILES, k, kl, w.first_ms, w.last_ms, &old->base); /* the FilePut's times */
        old->shared_with = osw;
        old->n_shared_with = on;
    }
    suiro__v1__file_put__free_unpacked(old, NULL);
    return rc;
}

static int apply_registry_put(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    char kind[2] = {(char)('0' + ev->registry_put->kind), 0};
    if (validate && (!ev->registry_put->id[0] || ev->registry_put->kind < 1 ||
                     ev->registry_put->kind > SUIRO__V1__REGISTRY_KIND__RG_SIGREQ ||
                     ev->registry_put->kind == 8 /* RG 8: not a kind of this build */))
        return sr__refuse(r, SR_EINVAL, "registry: kind and id are required");
    kl = mkkey(k, sizeof k, ev->operator_id, kind, ev->registry_put->id);
    if (!kl) return sr__refuse(r, SR_EINVAL, "registry id too long");
    if (validate && ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_RETENTION &&
        (!ev->operator_id[0] ||
         (strcmp(ev->registry_put->id, "audit") && !sr__retention_class_ok(ev->registry_put->id) &&
          !sr__retention_record_class(ev->registry_put->id))))
        return sr__refuse(r, SR_EINVAL, "retention %s: an operator's period of audit, of a data class or of its "
                                        "documents, files, requests or monitors",
                          ev->registry_put->id);
    if (validate && ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_NOTIFY) {
        /* a notification target (api/notify.c checks the address and its
         * domain against the configuration before it builds one) */
        const Suiro__V1__RegistryPut *g = ev->registry_put;
        const char *u = g->url;
        int scheme = !strncmp(u, "mailto:", 7) || !strncmp(u, "https://", 8) || !strncmp(u, "http://", 7);
        /* "*mail-domains" (not an ID a target can have): the operator's own
         * list of mail domains in pattern, no url, no level */
        int domains = !strcmp(g->id, "*mail-domains");
        if (!ev->operator_id[0] || (domains ? u[0] || g->access[0] || strpbrk(g->pattern, " \r\n;<>@")
                                            : !scheme || strpbrk(u, " \r\n,;<>") ||
                                                  (strcmp(g->access, "warning") && strcmp(g->access, "minor") &&
                                                   strcmp(g->access, "major"))))
            return sr__refuse(r, SR_EINVAL,
                              "notify target %s: an operator's, url a webhook URL or mailto: one address, level "
                              "warning, minor or major",
                              g->id);
    }
    if (validate && ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_VENDOR &&
        (ev->operator_id[0] || (strcmp(ev->registry_put->vendor_kind, "ap") && strcmp(ev->registry_put->vendor_kind, "gw"))))
        return sr__refuse(r, SR_EINVAL, "vendor %s: a vendor is the platform's (no operator) and of kind ap or gw",
                          ev->registry_put->id);
    if (validate && ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_GRANT && ev->registry_put->grant_kind[0]) {
        /* a grant on documents or files (R-PO-2): its kind, pattern and
         * access, and an app of the operator */
        const Suiro__V1__RegistryPut *g = ev->registry_put;
        sr_store_kind sk;
        char why[200];
        if (!sr_store_kind_parse(g->grant_kind, &sk))
            return sr__refuse(r, SR_EINVAL, "grant %s: kind: documents, files, corrections, alarms or alive", g->id);
        if (sr_store_pattern_check(sk, g->pattern, why, sizeof why))
            return sr__refuse(r, SR_EINVAL, "grant %s: pattern: %s", g->id, why);
        if (!sr_store_access_parse(g->access))
            return sr__refuse(r, SR_EINVAL, "grant %s: access: read, write or read+write", g->id);
        /* its id is app:kind:pattern (the sheet's and the Admin API's), so
         * that an app's grants are one key range (store_access.c) */
        size_t al = strlen(g->app_id), kl2 = strlen(g->grant_kind);
        if (strncmp(g->id, g->app_id, al) || g->id[al] != ':' || strncmp(g->id + al + 1, g->grant_kind, kl2) ||
            g->id[al + 1 + kl2] != ':' || strcmp(g->id + al + 2 + kl2, g->pattern))
            return sr__refuse(r, SR_EINVAL, "grant %s: id: %s:%s:%s is the id of this grant", g->id, g->app_id,
                              g->grant_kind, g->pattern);
        uint8_t ak[300];
        MDB_val av;
        const char akind[2] = {(char)('0' + SUIRO__V1__REGISTRY_KIND__RG_APP), 0};
        size_t akl = mkkey(ak, sizeof ak, ev->operator_id, akind, g->app_id);
        if (!akl || !g->app_id[0] || get(t, DB(e, SR_DB_REGISTRY), ak, akl, &av))
            return sr__refuse(r, SR_EINVAL, "grant %s: app: %s is not an app of operator %s", g->id, g->app_id,
                              ev->operator_id);
    }
    if (validate && ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_VENDOR_GRANT &&
        (!ev->operator_id[0] || strcmp(ev->registry_put->id, ev->registry_put->vendor_id) ||
         strcmp(ev->registry_put->access, "read")))
        return sr__refuse(r, SR_EINVAL, "vendor grant %s: an operator's, its id the vendor's, access read",
                          ev->registry_put->id);
    if (validate && ev->registry_put->vendor_id[0]) {
        /* a link to a vendor (R-ID-8): an app to an AP vendor, a gateway to a GW vendor */
        uint8_t vk[300];
        MDB_val vv;
        const char vkind[2] = {(char)('0' + SUIRO__V1__REGISTRY_KIND__RG_VENDOR), 0};
        size_t vkl = mkkey(vk, sizeof vk, "", vkind, ev->registry_put->vendor_id);
        Suiro__V1__RegistryPut *vend = NULL;
        if (vkl && get(t, DB(e, SR_DB_REGISTRY), vk, vkl, &vv) == SR_OK)
            vend = suiro__v1__registry_put__unpack(NULL, vv.mv_size, vv.mv_data);
        const char *want = ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_APP       ? "ap"
                           : ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_GATEWAY ? "gw"
                                                                                             : NULL;
        /* a vendor grant: a vendor of either kind */
        int any = ev->registry_put->kind == SUIRO__V1__REGISTRY_KIND__RG_VENDOR_GRANT;
        int ok = vend && (any || (want && !strcmp(vend->vendor_kind, want)));
        if (vend) suiro__v1__registry_put__free_unpacked(vend, NULL);
        if (!ok)
            return sr__refuse(r, SR_EINVAL, "%s: vendor %s is not a registered %svendor", ev->registry_put->id,
                              ev->registry_put->vendor_id, any ? "" : want ? (want[0] == 'a' ? "AP " : "GW ") : "app or gateway ");
    }
    if (validate && !ev->registry_put->secret_hash.len) {
        /* empty secret: keep the stored one */
        MDB_val v;
        if (get(t, DB(e, SR_DB_REGISTRY), k, kl, &v) == SR_OK) {
            Suiro__V1__RegistryPut *old = suiro__v1__registry_put__unpack(NULL, v.mv_size, v.mv_data);
            if (old && old->secret_hash.len) {
                uint8_t *cp = sr_arena_alloc(&e->ev.a, old->secret_hash.len); /* dies with the group's events */
                if (cp) {
                    memcpy(cp, old->secret_hash.data, old->secret_hash.len);
                    ev->registry_put->secret_hash.data = cp;
                    ev->registry_put->secret_hash.len = old->secret_hash.len;
                }
            }
            if (old) suiro__v1__registry_put__free_unpacked(old, NULL);
        }
    }
    return put_packed(e, t, SR_DB_REGISTRY, k, kl, &ev->registry_put->base);
}

static int apply_registry_delete(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    (void)r;
    (void)validate;
    uint8_t k[600];
    size_t kl;
    char kind[2] = {(char)('0' + ev->registry_delete->kind), 0};
    kl = mkkey(k, sizeof k, ev->operator_id, kind, ev->registry_delete->id);
    if (!kl) return SR_OK;
    int rc = del(t, DB(e, SR_DB_REGISTRY), k, kl);
    /* a gateway or an app deleted: its alive row goes with it (R-MO-1: no
     * status, no gateway-offline alarm for what is not there); the alive
     * key is the registry key, the ActorKind digit being the RegistryKind's */
    _Static_assert((int)SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY == (int)SUIRO__V1__REGISTRY_KIND__RG_GATEWAY &&
                       (int)SUIRO__V1__ACTOR_KIND__ACTOR_APP == (int)SUIRO__V1__REGISTRY_KIND__RG_APP,
                   "the alive key's kind digit is the registry's");
    if (!rc && (ev->registry_delete->kind == SUIRO__V1__REGISTRY_KIND__RG_GATEWAY ||
                ev->registry_delete->kind == SUIRO__V1__REGISTRY_KIND__RG_APP))
        rc = del(t, DB(e, SR_DB_ALIVE), k, kl);
    return rc;
}

static int apply_request_created(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    /* op \0 request \0 gateway ("" for the app-level request) \0 'c' */
    kl = rkey(k, sizeof k, ev->operator_id, ev->request_created->request_id, ev->request_created->gateway_id, 'c');
    if (validate && (!kl || !ev->request_created->request_id[0]))
        return sr__refuse(r, SR_EINVAL, "request id required");
    return kl ? put_written(e, t, SR_DB_REQUESTS, k, kl, ev, &ev->request_created->base) : SR_OK;
}

static int apply_request_transition(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    /* the latest state, beside the creation record: ... \0 's' */
    const Suiro__V1__RequestTransition *rt = ev->request_transition;
    kl = rkey(k, sizeof k, ev->operator_id, rt->request_id, rt->gateway_id, 's');
    if (validate && (!kl || !rt->request_id[0])) return sr__refuse(r, SR_EINVAL, "request id required");
    return kl ? put_written(e, t, SR_DB_REQUESTS, k, kl, ev, &rt->base) : SR_OK;
}

static int apply_monitor(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    uint8_t k[600];
    size_t kl;
    kl = mkkey(k, sizeof k, ev->operator_id, ev->monitor->monitor_id, NULL);
    if (validate && (!kl || !ev->monitor->monitor_id[0])) return sr__refuse(r, SR_EINVAL, "monitor id required");
    return kl ? put_written(e, t, SR_DB_MONITORS, k, kl, ev, &ev->monitor->base) : SR_OK;
}

static int apply_master_put_ev(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    e->masters_dirty = 1;
    return apply_master_put(e, t, ev, ev->master_put, r, validate);
}

static int apply_master_delete_ev(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    e->masters_dirty = 1;
    return apply_master_delete(e, t, ev, ev->master_delete, r, validate);
}

static int check_no_body(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    (void)t;
    (void)ev;
    return sr__refuse(r, SR_EINVAL, "event has no body");
}

/* Every open session of user (op, id) ends: a walk over `sessions` (one per
 * open session of every principal; the table is small, the event rare). */
static int revoke_all(sr_engine *e, MDB_txn *t, const char *op, const char *id)
{
    MDB_cursor *c = NULL;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_SESSIONS), &c));
    size_t ol = strlen(op), il = strlen(id);
    MDB_val K, V;
    int r = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &K, &V, MDB_FIRST);
    while (!rc && r == 0) {
        sr__sess s;
        if (!sess_decode(V.mv_data, V.mv_size, &s) && s.user && s.opl == ol && s.idl == il &&
            !memcmp(s.op, op, ol) && !memcmp(s.id, id, il))
            rc = sr_index_err(mdb_cursor_del(c, 0));
        if (!rc) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    if (!rc && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (c) mdb_cursor_close(c);
    return rc;
}

/* An arena copy of n bytes of src as a string (the writer fills a
 * restatement's fields: they die with the group's events). */
static char *arena_strn(sr_engine *e, const void *src, size_t n)
{
    char *s = sr_arena_alloc(&e->ev.a, n + 1);
    if (!s) return NULL;
    memcpy(s, src, n);
    s[n] = 0;
    return s;
}

/* A restated session (issue #16, SessionEvent.restated; docs/retention.md
 * "Audit data"), on the writer: the open session's row, named by its token
 * hash, fills the event (kind, id, expiry, CONNECTED), so that the apply
 * writes the row as it is and the logged record carries it. A row that is
 * gone (ended since the sweep read it), or another operator's, is refused:
 * nothing to restate. */
static int restate_by_sweep(const Event *ev, sr_result *r)
{
    if (ev->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM || ev->actor_kind == SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return SR_OK;
    return sr__refuse(r, SR_EINVAL, "a restatement is the retention sweep's (the system or a user)");
}

static int restate_session(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r)
{
    if (restate_by_sweep(ev, r)) return r->rc;
    Suiro__V1__SessionEvent *se = ev->session;
    MDB_val v;
    sr__sess s;
    int rc = se->token_hash.len == 32 ? get(t, DB(e, SR_DB_SESSIONS), se->token_hash.data, 32, &v) : SR_ENOTFOUND;
    if (rc && rc != SR_ENOTFOUND) return rc;
    if (rc || sess_decode(v.mv_data, v.mv_size, &s) || s.opl != strlen(ev->operator_id) ||
        memcmp(s.op, ev->operator_id, s.opl))
        return sr__refuse(r, SR_ENOTFOUND, "session restatement: no open session of operator %.64s with that token",
                          ev->operator_id);
    char *id = arena_strn(e, s.id, s.idl);
    if (!id) return SR_ENOMEM;
    se->id = id;
    se->kind = s.user ? SUIRO__V1__ACTOR_KIND__ACTOR_USER : SUIRO__V1__ACTOR_KIND__ACTOR_APP;
    se->expires_ms = s.expires_ms;
    se->state = SUIRO__V1__SESSION_STATE__SS_CONNECTED;
    se->revoke_all = 0;
    return SR_OK;
}

/* A session with a bearer token (SessionEvent with a token hash): an app's
 * AP-IF session or a user's. Kept in `sessions` while open, so that it
 * survives a restart (api/apif_http.c loads the apps' at start; a user's is
 * read at each request, sr_session_verify). A user's revoke_all ends all of
 * theirs. Other session events are the log's alone. */
static int apply_session(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    const Suiro__V1__SessionEvent *se = ev->session;
    if (!se) return SR_OK;
    if (se->restated && validate) { /* the writer fills it from the row (the replay: as logged) */
        int rc = restate_session(e, t, ev, r);
        if (rc) return rc;
    }
    int user = se->kind == SUIRO__V1__ACTOR_KIND__ACTOR_USER;
    if (se->revoke_all) {
        if (!user || se->token_hash.len || se->state != SUIRO__V1__SESSION_STATE__SS_DISCONNECTED || !se->id[0])
            return validate ? sr__refuse(r, SR_EINVAL, "revoke_all ends a user's sessions: kind user, state "
                                                       "disconnected, a user id and no token hash")
                            : SR_OK;
        return revoke_all(e, t, ev->operator_id, se->id);
    }
    if (!se->token_hash.len) return SR_OK;
    if (se->token_hash.len != 32 || (!user && se->kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP) ||
        (!user && !ev->operator_id[0]) || !se->id[0])
        return validate ? sr__refuse(r, SR_EINVAL, "a token session needs a 32-byte token hash and an app (with "
                                                   "its operator) or a user")
                        : SR_OK;
    if (se->state != SUIRO__V1__SESSION_STATE__SS_CONNECTED) return del(t, DB(e, SR_DB_SESSIONS), se->token_hash.data, 32);
    size_t ol = strlen(ev->operator_id), al = strlen(se->id);
    if (ol > 255 || al > 255) return validate ? sr__refuse(r, SR_EINVAL, "operator or principal id too long") : SR_OK;
    uint8_t v[8 + 256 + 256 + 2];
    sr_put_le64(v, (uint64_t)se->expires_ms);
    memcpy(v + 8, ev->operator_id, ol);
    v[8 + ol] = 0;
    memcpy(v + 9 + ol, se->id, al);
    size_t n = 9 + ol + al;
    if (user) v[n++] = 0, v[n++] = 'u';
    return put(t, DB(e, SR_DB_SESSIONS), se->token_hash.data, 32, v, n);
}

/* A heads checkpoint is the writer's own (writer.c); a command may not
 * carry one. */
static int check_engine_only(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    (void)t;
    (void)ev;
    return sr__refuse(r, SR_EINVAL, "this kind of event is the engine's own");
}

/* A batch of reads (AccessEvent, api/access.c): an app's or a gateway's,
 * of an operator, with at most SR_ACCESS_ENTRIES_MAX entries. Its store is
 * the log and its audit row (sr__apply_common). */
static int check_access(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    (void)t;
    const Suiro__V1__AccessEvent *a = ev->access;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY)
        return sr__refuse(r, SR_EINVAL, "an access batch is an app's or a gateway's");
    if (!ev->operator_id || !ev->operator_id[0] || !ev->actor || !ev->actor[0])
        return sr__refuse(r, SR_EINVAL, "an access batch names its operator and its reader");
    if (!a->n_entries || a->n_entries > SR_ACCESS_ENTRIES_MAX)
        return sr__refuse(r, SR_EINVAL, "an access batch holds 1 to %d entries", SR_ACCESS_ENTRIES_MAX);
    for (size_t i = 0; a->refusals && i < a->n_entries; i++) /* a batch of refusals: one code (sr_cmd_refusals) */
        if (!a->entries[i]->code[0] || strcmp(a->entries[i]->code, a->entries[0]->code))
            return sr__refuse(r, SR_EINVAL, "a batch of refusals holds refusals of one wire code");
    return SR_OK;
}

/* The same batch packed (AccessBatch, codecs/accpack.h; what api/access.c
 * writes): the envelope as an AccessEvent's, the packed bytes checked once
 * (every length and index; no per-entry decode beyond that). */
static int check_access_batch(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    (void)t;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY)
        return sr__refuse(r, SR_EINVAL, "an access batch is an app's or a gateway's");
    if (!ev->operator_id || !ev->operator_id[0] || !ev->actor || !ev->actor[0])
        return sr__refuse(r, SR_EINVAL, "an access batch names its operator and its reader");
    sr_apk_view v;
    const char *why = NULL;
    if (sr_apk_parse(ev->access_batch->packed.data, ev->access_batch->packed.len, &v, &why))
        return sr__refuse(r, SR_EINVAL, "an access batch: %s", why);
    return SR_OK;
}

/* An ownership change of the cluster mode (ClusterEvent, issue #19,
 * api/cluster_own.c): the platform's, written by the node (actor system). */
static int check_cluster(sr_engine *e, MDB_txn *t, const Event *ev, sr_result *r)
{
    (void)e;
    (void)t;
    const Suiro__V1__ClusterEvent *c = ev->cluster;
    if (ev->operator_id && ev->operator_id[0]) return sr__refuse(r, SR_EINVAL, "a cluster event is the platform's (no operator)");
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM || !ev->actor || !ev->actor[0])
        return sr__refuse(r, SR_EINVAL, "a cluster event is a node's (actor system, the node's name)");
    static const char *whys[] = {"start", "expired", "handover", "lost"};
    int ok = 0;
    for (size_t i = 0; i < sizeof whys / sizeof *whys; i++) ok |= c->why && !strcmp(c->why, whys[i]);
    if (!ok) return sr__refuse(r, SR_EINVAL, "a cluster event's why is start, expired, handover or lost");
    if (!c->outcome || (strcmp(c->outcome, "done") && strcmp(c->outcome, "failed")))
        return sr__refuse(r, SR_EINVAL, "a cluster event's outcome is done or failed");
    return SR_OK;
}

/*
 * The event appliers: one row per kind of event, the oneof case of
 * Event.body in codecs/events.proto: X(CASE, check, apply, series), where
 * CASE names SUIRO__V1__EVENT__BODY_<CASE> (see sr_applier in
 * engine_int.h). Auth, keys, admin and backup events have no apply: the log
 * is their store (and the audit trail's row, sr__apply_common); sessions only for a session with a bearer token, an app's or a user's (apply_session). A kind of events.proto without a row fails the build
 * (event_kind_has_row below, and the size of the table); test_engine's
 * "appliers" test checks the rows against the descriptor of Event too.
 */
/* ---- users (docs/admin.md "Users"; the merge rules: UserEvent in
 * codecs/events.proto). The index keeps the user's whole state; an action
 * changes the fields it names. A deleted user's record stays (its ID is
 * reserved for ever). */

static int user_roles_ok(const UserEvent *u, sr_scope_kind kind, sr_result *r)
{
    if (!u->n_roles) return sr__refuse(r, SR_EINVAL, "user %s: at least one role is required", u->user_id);
    for (size_t i = 0; i < u->n_roles; i++) {
        sr_role role;
        if (sr_role_parse(u->roles[i], &role))
            return sr__refuse(r, SR_EINVAL, "user %s: unknown role '%s'", u->user_id, u->roles[i]);
        if (sr_role_scope(role) != kind)
            return sr__refuse(r, SR_EINVAL, "user %s: role %s does not belong to the user's scope", u->user_id,
                              u->roles[i]);
    }
    return SR_OK;
}

static sr_scope_kind user_scope_kind(Suiro__V1__UserScope s)
{
    return s == SUIRO__V1__USER_SCOPE__US_OPERATOR ? SR_SCOPE_OPERATOR
           : s == SUIRO__V1__USER_SCOPE__US_VENDOR ? SR_SCOPE_VENDOR
                                                   : SR_SCOPE_PLATFORM;
}

static int apply_user(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    UserEvent *u = ev->user;
    size_t kl = strlen(u->user_id);
    if (validate && !sr_id_str_ok(u->user_id)) return sr__refuse(r, SR_EINVAL, "user: a valid user id is required");
    if (!kl || kl > 64) return SR_OK; /* not one the writer accepted */
    MDB_val v;
    UserEvent *old = NULL;
    if (get(t, DB(e, SR_DB_USERS), u->user_id, kl, &v) == SR_OK) {
        old = suiro__v1__user_event__unpack(NULL, v.mv_size, v.mv_data);
        if (!old) return sr__refuse(r, SR_ECORRUPT, "user %s: the index record does not decode", u->user_id);
    }
    const char *a = u->action;
    int rc = SR_OK, created = !strcmp(a, "created");
    UserEvent st = SUIRO__V1__USER_EVENT__INIT; /* the new state: old's fields, then the action's */
    if (old) st = *old;
    st.action = (char *)a;
    st.approved_by = u->approved_by;
    if (created) {
        if (old) {
            rc = sr__refuse(r, SR_EEXIST, "user %s %s", u->user_id,
                            old->deleted ? "was deleted: its id stays reserved" : "exists");
            goto out;
        }
        if (validate) {
            int need_id = u->scope != SUIRO__V1__USER_SCOPE__US_PLATFORM;
            if (u->scope < SUIRO__V1__USER_SCOPE__US_PLATFORM || u->scope > SUIRO__V1__USER_SCOPE__US_VENDOR ||
                (need_id && !sr_id_str_ok(u->scope_id)) || (!need_id && u->scope_id[0])) {
                rc = sr__refuse(r, SR_EINVAL, "user %s: scope must be the platform, or an operator or vendor with its id",
                                u->user_id);
                goto out;
            }
            if ((rc = user_roles_ok(u, user_scope_kind(u->scope), r))) goto out;
            if (!u->password_hash.len) {
                rc = sr__refuse(r, SR_EINVAL, "user %s: a password is required", u->user_id);
                goto out;
            }
        }
        st = *u;
        st.totp_secret_sealed.len = 0;
        st.totp_last_step = 0;
        st.disabled = 0;
        st.deleted = 0;
    } else {
        if (!old || old->deleted) {
            rc = validate ? sr__refuse(r, SR_ENOTFOUND, "user %s does not exist", u->user_id) : SR_OK;
            goto out;
        }
        if (!strcmp(a, "password_set")) {
            if (validate && !u->password_hash.len) {
                rc = sr__refuse(r, SR_EINVAL, "user %s: a password is required", u->user_id);
                goto out;
            }
            st.password_hash = u->password_hash;
            st.temporary = u->temporary;
            st.password_set_ms = u->password_set_ms;
        } else if (!strcmp(a, "roles_set")) {
            if (validate && (rc = user_roles_ok(u, user_scope_kind(old->scope), r))) goto out;
            st.n_roles = u->n_roles;
            st.roles = u->roles;
        } else if (!strcmp(a, "disabled") || !strcmp(a, "enabled")) {
            st.disabled = a[0] == 'd';
        } else if (!strcmp(a, "totp_set")) {
            st.totp_secret_sealed = u->totp_secret_sealed;
            st.totp_last_step = 0;
        } else if (!strcmp(a, "totp_step")) {
            if (validate && u->totp_last_step <= old->totp_last_step) {
                rc = sr__refuse(r, SR_EINVAL, "user %s: this one-time code was used already", u->user_id);
                goto out;
            }
            st.totp_last_step = u->totp_last_step;
        } else if (!strcmp(a, "deleted")) {
            st.deleted = 1;
            st.disabled = 1;
            st.password_hash.len = 0;
            st.totp_secret_sealed.len = 0;
        } else {
            rc = validate ? sr__refuse(r, SR_EINVAL, "user %s: unknown action '%s'", u->user_id, a) : SR_OK;
            goto out;
        }
    }
    rc = put_packed(e, t, SR_DB_USERS, u->user_id, kl, &st.base);
out:
    if (old) suiro__v1__user_event__free_unpacked(old, NULL);
    return rc;
}

/* The login policy of the event's operator ("" the platform's): the latest
 * whole, kept in `policies`. The platform's names roles (each a role of
 * engine/authz.h, once); an operator's says whether all its users need
 * TOTP. */
static int apply_login_policy(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    const Suiro__V1__LoginPolicy *lp = ev->login_policy;
    if (!lp) return SR_OK;
    int platform = !ev->operator_id[0];
    if (validate && !platform && lp->n_totp_roles)
        return sr__refuse(r, SR_EINVAL, "login policy of operator %s: totp_roles are the platform's policy",
                          ev->operator_id);
    if (validate && platform && lp->totp_required)
        return sr__refuse(r, SR_EINVAL, "login policy of the platform: totp_required is an operator's policy");
    for (size_t i = 0; validate && i < lp->n_totp_roles; i++) {
        sr_role role;
        if (sr_role_parse(lp->totp_roles[i], &role))
            return sr__refuse(r, SR_EINVAL, "login policy: totp_roles[%zu]: '%s' is not a role", i, lp->totp_roles[i]);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(lp->totp_roles[i], lp->totp_roles[j]))
                return sr__refuse(r, SR_EINVAL, "login policy: totp_roles[%zu]: '%s' is named twice", i,
                                  lp->totp_roles[i]);
    }
    size_t ol = strlen(ev->operator_id);
    if (ol > 255) return validate ? sr__refuse(r, SR_EINVAL, "operator id too long") : SR_OK;
    /* the platform's key is one zero byte (LMDB keys are not empty) */
    return put_packed(e, t, SR_DB_POLICIES, platform ? "" : ev->operator_id, platform ? 1 : ol, &lp->base);
}

/* ---- pending changes: the two-person rule (docs/admin.md "The two-person
 * rule"; the merge rules: PendingEvent in codecs/events.proto). The index
 * keeps each pending change's whole state; the checks are here, in the
 * writer, so that two decisions racing for one change leave one outcome
 * (the writer applies them one after the other: the second finds it
 * decided, SR_ECONFLICT). An approval applies the change in the same event
 * (and so in the same log record and index transaction): no crash leaves a
 * change approved but not applied. */

typedef Suiro__V1__PendingEvent PendingEvent;

static int is_action(const char *a, const char *name) { return a && !strcmp(a, name); }

/* The kinds a pending change may hold: one whose apply is all it does to
 * the index (no series, not itself a pending change). */
static int pending_change_kind_ok(int kind)
{
    const sr_applier *a = sr__applier(kind);
    return a && a->apply && !a->series && kind != SUIRO__V1__EVENT__BODY_PENDING;
}

/* The target whose admins decide a change of this scope. */
static sr_authz_target pending_target(const PendingEvent *p)
{
    sr_authz_target t = {0};
    if (p->scope == SUIRO__V1__USER_SCOPE__US_OPERATOR) t.operator_id = p->scope_id;
    else if (p->scope == SUIRO__V1__USER_SCOPE__US_VENDOR) t.vendor_id = p->scope_id;
    return t;
}

/* Is user `who` (ev's actor, a user) an active user with a role allowed
 * the change's action on its scope? what: "requester" or "approver", for
 * the refusal. */
static int pending_allowed(sr_engine *e, MDB_txn *t, const Event *ev, const PendingEvent *p, const char *what,
                           sr_result *r)
{
    sr_authz_action act;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER || !sr_id_str_ok(ev->actor))
        return sr__refuse(r, SR_EINVAL, "pending change %s: the %s must be a user", p->pending_id, what);
    if (sr_authz_action_parse(p->authz_action, &act))
        return sr__refuse(r, SR_EINVAL, "pending change %s: unknown action '%s'", p->pending_id, p->authz_action);
    MDB_val v;
    UserEvent *u = NULL;
    if (get(t, DB(e, SR_DB_USERS), ev->actor, strlen(ev->actor), &v) == SR_OK)
        u = suiro__v1__user_event__unpack(NULL, v.mv_size, v.mv_data);
    int ok = 0;
    if (u && !u->disabled && !u->deleted) {
        sr_authz_target tg = pending_target(p);
        for (size_t i = 0; i < u->n_roles && !ok; i++) {
            sr_principal pr = {.scope = user_scope_kind(u->scope), .scope_id = u->scope_id};
            ok = !sr_role_parse(u->roles[i], &pr.role) && sr_authz_allows(&pr, act, &tg);
        }
    }
    if (u) suiro__v1__user_event__free_unpacked(u, NULL);
    if (!ok)
        return sr__refuse(r, SR_EINVAL, "pending change %s: %s %s is not an active user allowed %s on %s%s",
                          p->pending_id, what, ev->actor, p->authz_action,
                          p->scope == SUIRO__V1__USER_SCOPE__US_OPERATOR ? "operator "
                          : p->scope == SUIRO__V1__USER_SCOPE__US_VENDOR ? "vendor "
                                                                           : "the platform",
                          p->scope_id);
    return SR_OK;
}

/* Decode a pending change's events (into ar, *out an array of p->n_change
 * of them) and check each is one a pending change may hold, of ev's
 * operator, without a message id. requester: each one's actor must be that
 * user (NULL: not checked). */
static int pending_change_decode(const Event *ev, const PendingEvent *p, const char *requester, pb_arena *ar,
                                 Event ***out, sr_result *r)
{
    if (!p->n_change || p->n_change > SR_PENDING_MAX_EVENTS)
        return sr__refuse(r, SR_EINVAL, "pending change %s: 1 to %d events of change are required", p->pending_id,
                          SR_PENDING_MAX_EVENTS);
    Event **cs = sr_arena_alloc(&ar->a, p->n_change * sizeof *cs);
    if (!cs) return SR_ENOMEM;
    *out = cs;
    for (size_t i = 0; i < p->n_change; i++) {
        Event *c = cs[i] = suiro__v1__event__unpack(&ar->pa, p->change[i].len, p->change[i].data);
        if (!c)
            return ar->oom ? SR_ENOMEM
                           : sr__refuse(r, SR_EINVAL, "pending change %s: change %zu does not decode as an event",
                                        p->pending_id, i);
        if (!pending_change_kind_ok((int)c->body_case))
            return sr__refuse(r, SR_EINVAL, "pending change %s: a change of kind %s cannot wait for approval",
                              p->pending_id,
                              sr__applier((int)c->body_case) ? sr__applier((int)c->body_case)->name : "unknown");
        if (strcmp(c->operator_id, ev->operator_id))
            return sr__refuse(r, SR_EINVAL, "pending change %s: the change's operator '%s' is not the event's '%s'",
                              p->pending_id, c->operator_id, ev->operator_id);
        if (c->message_id[0])
            return sr__refuse(r, SR_EINVAL, "pending change %s: the change has a message id", p->pending_id);
        if (requester && (c->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER || strcmp(c->actor, requester)))
            return sr__refuse(r, SR_EINVAL, "pending change %s: the change's actor must be its requester %s",
                              p->pending_id, requester);
    }
    return SR_OK;
}

/* Apply the change's events cs[0..n) (decoded from a pending change) as part
 * of ev, in order: each with ev's seq and ingest time, the apply of its
 * kind (a refusal of any refuses ev: the caller's transaction is aborted). */
static int pending_change_apply(sr_engine *e, MDB_txn *t, const Event *ev, Event **cs, size_t n, sr_result *r,
                                int validate)
{
    int rc = SR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        cs[i]->seq = ev->seq;
        cs[i]->ingest_ms = ev->ingest_ms;
        sr_result cr = {0};
        rc = sr__apply_nonseries(e, t, cs[i], &cr, validate);
        if (rc && cr.rc) sr__refuse(r, cr.rc, "pending change %s: the change: %s", ev->pending->pending_id, cr.err.msg);
    }
    return rc;
}

static int apply_pending(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    PendingEvent *p = ev->pending;
    size_t kl = strlen(p->pending_id);
    if (validate && !sr_id_str_ok(p->pending_id)) return sr__refuse(r, SR_EINVAL, "pending: a valid pending id is required");
    if (!kl || kl > SR_ID_MAX) return SR_OK; /* not one the writer accepted */
    MDB_val v;
    PendingEvent *old = NULL;
    int grc = get(t, DB(e, SR_DB_PENDING), p->pending_id, kl, &v);
    if (grc != SR_OK && grc != SR_ENOTFOUND) return grc; /* a sealed value that did not open (ixseal.h) */
    if (grc == SR_OK) {
        old = suiro__v1__pending_event__unpack(NULL, v.mv_size, v.mv_data);
        if (!old) return sr__refuse(r, SR_ECORRUPT, "pending change %s: the index record does not decode", p->pending_id);
    }
    pb_arena ar;
    pb_arena_init(&ar);
    Event **cs = NULL;
    const char *a = p->action;
    int rc = SR_OK;
    PendingEvent st = SUIRO__V1__PENDING_EVENT__INIT; /* the new state */
    if (is_action(a, "requested")) {
        if (validate) {
            int need_id = p->scope != SUIRO__V1__USER_SCOPE__US_PLATFORM;
            if (old) rc = sr__refuse(r, SR_EEXIST, "pending change %s exists", p->pending_id);
            else if (p->scope < SUIRO__V1__USER_SCOPE__US_PLATFORM || p->scope > SUIRO__V1__USER_SCOPE__US_VENDOR ||
                     (need_id && !sr_id_str_ok(p->scope_id)) || (!need_id && p->scope_id[0]))
                rc = sr__refuse(r, SR_EINVAL, "pending change %s: scope must be the platform, or an operator or vendor with its id",
                                p->pending_id);
            else if (p->scope == SUIRO__V1__USER_SCOPE__US_OPERATOR && strcmp(p->scope_id, ev->operator_id))
                rc = sr__refuse(r, SR_EINVAL, "pending change %s: an operator's change is of that operator", p->pending_id);
            else if (!p->summary[0] || strlen(p->summary) > 1000)
                rc = sr__refuse(r, SR_EINVAL, "pending change %s: a summary (at most 1000 bytes) is required", p->pending_id);
            else if (p->expires_ms <= ev->ingest_ms)
                rc = sr__refuse(r, SR_EINVAL, "pending change %s: it expires before it is stored", p->pending_id);
            if (!rc) rc = pending_allowed(e, t, ev, p, "requester", r);
            if (!rc) rc = pending_change_decode(ev, p, ev->actor, &ar, &cs, r);
            if (!rc) { /* the change must apply now: tried, then undone */
                MDB_txn *dry = NULL;
                rc = sr_index_err(mdb_txn_begin(sr_index_env(e->ix), t, 0, &dry));
                if (!rc) {
                    e->pending_dry = 1; /* keys.c: the keyring is no transaction: checked, not changed */
                    rc = pending_change_apply(e, dry, ev, cs, p->n_change, r, 1);
                    e->pending_dry = 0;
                    mdb_txn_abort(dry);
                }
                r->point = 0;
                r->revision = 0;
            }
            if (rc) goto out;
        }
        st = *p;
        st.requester = ev->actor;
        st.requested_ms = ev->ingest_ms;
        st.requested_seq = ev->seq;
    } else if (is_action(a, "approved") || is_action(a, "rejected") || is_action(a, "expired")) {
        if (!old) {
            rc = validate ? sr__refuse(r, SR_ENOTFOUND, "pending change %s does not exist", p->pending_id) : SR_OK;
            goto out;
        }
        int approve = a[0] == 'a', expire = a[0] == 'e';
        if (validate) {
            if (!is_action(old->action, "requested")) {
                rc = sr__refuse(r, SR_ECONFLICT, "pending change %s was %s already%s%s", p->pending_id, old->action,
                                old->decided_by[0] ? " by " : "", old->decided_by);
                goto out;
            }
            if (expire && ev->ingest_ms < old->expires_ms) {
                rc = sr__refuse(r, SR_EINVAL, "pending change %s has not expired yet", p->pending_id);
                goto out;
            }
            if (!expire && ev->ingest_ms >= old->expires_ms) {
                rc = sr__refuse(r, SR_ECONFLICT, "pending change %s expired: it can no longer be %s", p->pending_id, a);
                goto out;
            }
            if (!expire && !strcmp(ev->actor, old->requester)) {
                rc = sr__refuse(r, SR_EINVAL, "pending change %s: its requester %s cannot %s it: a second admin must",
                                p->pending_id, ev->actor, approve ? "approve" : "reject");
                goto out;
            }
            if (!expire && (rc = pending_allowed(e, t, ev, old, "approver", r))) goto out;
            /* the event is the change's operator's (its audit trail) */
            if ((rc = pending_change_decode(ev, old, NULL, &ar, &cs, r))) goto out;
            if (approve) {
                /* apply the change as it was requested, with the approver
                 * named where the change has the field; the event keeps
                 * the change as applied (what the writer filled in too),
                 * which the replay applies */
                for (size_t i = 0; i < old->n_change; i++)
                    if (cs[i]->body_case == SUIRO__V1__EVENT__BODY_USER && cs[i]->user) cs[i]->user->approved_by = ev->actor;
                if ((rc = pending_change_apply(e, t, ev, cs, old->n_change, r, 1))) goto out;
                /* dies with the group's events */
                ProtobufCBinaryData *bs = sr_arena_alloc(&e->ev.a, old->n_change * sizeof *bs);
                if (!bs) {
                    rc = SR_ENOMEM;
                    goto out;
                }
                for (size_t i = 0; i < old->n_change; i++) {
                    size_t n = protobuf_c_message_get_packed_size(&cs[i]->base);
                    uint8_t *b = sr_arena_alloc(&e->ev.a, n ? n : 1);
                    if (!b) {
                        rc = SR_ENOMEM;
                        goto out;
                    }
                    protobuf_c_message_pack(&cs[i]->base, b);
                    bs[i] = (ProtobufCBinaryData){n, b};
                }
                p->change = bs;
                p->n_change = old->n_change;
            } else
                p->n_change = 0;
        } else if (approve) {
            if (pending_change_decode(ev, p, NULL, &ar, &cs, r)) {
                rc = ar.oom ? SR_ENOMEM : SR_OK; /* not one the writer accepted */
                goto out;
            }
            if ((rc = pending_change_apply(e, t, ev, cs, p->n_change, r, 0))) goto out;
        }
        st = *old;
        st.action = (char *)a;
        st.decided_ms = ev->ingest_ms;
        st.decided_seq = ev->seq;
        st.decided_by = expire ? (char *)"" : ev->actor;
        st.reason = p->reason;
        if (approve) {
            st.n_change = p->n_change;
            st.change = p->change;
        }
    } else {
        rc = validate ? sr__refuse(r, SR_EINVAL, "pending change %s: unknown action '%s'", p->pending_id, a) : SR_OK;
        goto out;
    }
    rc = put_packed(e, t, SR_DB_PENDING, p->pending_id, kl, &st.base);
out:
    sr_arena_release(&ar.a);
    if (old) suiro__v1__pending_event__free_unpacked(old, NULL);
    return rc;
}

/* ---- push marks (R-AP-17, api/push.c): the highest delivered mark per app
 * of an operator, in `pushq` (key op \0 app; the durable pushes' start: one
 * zero byte, operator and app ""). A mark at or below the stored one changes
 * nothing, so marks written out of order never move it back. */
static int apply_push_mark(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    const Suiro__V1__PushMark *pm = ev->push_mark;
    if (!pm) return SR_OK;
    size_t ol = strlen(ev->operator_id), al = strlen(pm->app_id);
    if (!ol != !al || ol > 255 || al > 255)
        return validate ? sr__refuse(r, SR_EINVAL, "push mark: an operator and an app (or neither, the start)") : SR_OK;
    uint8_t k[520], le[8];
    size_t kl = sr_pushq_key(k, sizeof k, ev->operator_id, pm->app_id);
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_PUSHQ), k, kl, &v);
    if (rc == SR_OK && v.mv_size == 8 && sr_get_le64(v.mv_data) >= pm->through) return SR_OK;
    if (rc != SR_OK && rc != SR_ENOTFOUND) return rc;
    sr_put_le64(le, pm->through);
    return put(t, DB(e, SR_DB_PUSHQ), k, kl, le, 8);
}

/* ---- the notifier's state (issue #17, api/notify.c): `notifyq` keeps the
 * highest mark ('m') and, above it, a row per done delivery ('d' ‖ seq BE ‖
 * op \0 target -> outcome u8 ‖ attempts u32 LE). A mark deletes the rows at
 * or below it (they are never asked for again); a lower mark changes
 * nothing. */
static int apply_notify(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    Suiro__V1__NotifyEvent *n = ev->notify;
    if (!n) return SR_OK;
    MDB_dbi db = DB(e, SR_DB_NOTIFYQ);
    if (!strcmp(n->outcome, "mark")) {
        if (ev->operator_id[0]) return validate ? sr__refuse(r, SR_EINVAL, "notify mark: the platform's (no operator)") : SR_OK;
        MDB_val v;
        int rc = get(t, db, "m", 1, &v);
        if (rc == SR_OK && v.mv_size == 8 && sr_get_le64(v.mv_data) >= n->through) return SR_OK;
        if (rc != SR_OK && rc != SR_ENOTFOUND) return rc;
        uint8_t le[8], lo[9] = {'d'}, hi[9] = {'d'};
        sr_put_le64(le, n->through);
        if ((rc = put(t, db, "m", 1, le, 8))) return rc;
        be64(hi + 1, n->through + 1);
        MDB_cursor *c;
        if ((rc = sr_index_err(mdb_cursor_open(t, db, &c)))) return rc;
        MDB_val k = {sizeof lo, lo}, d;
        int mrc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
        while (!rc && mrc == 0 && k.mv_size >= 9 && memcmp(k.mv_data, hi, 9) < 0) {
            rc = sr_index_err(mdb_cursor_del(c, 0));
            if (!rc) mrc = mdb_cursor_get(c, &k, &d, MDB_GET_CURRENT);
        }
        if (!rc && mrc && mrc != MDB_NOTFOUND) rc = sr_index_err(mrc);
        mdb_cursor_close(c);
        return rc;
    }
    uint8_t k[540], val[5];
    size_t kl = strlen(ev->operator_id) > 255 || strlen(n->target_id) > 255
                    ? 0
                    : sr_notifyq_key(k, sizeof k, n->alarm_seq, ev->operator_id, n->target_id);
    if (n->restated && validate) { /* issue #16: the writer fills it from the row (the replay: as logged) */
        if (restate_by_sweep(ev, r)) return r->rc;
        MDB_val v;
        int rc = kl ? get(t, db, k, kl, &v) : SR_ENOTFOUND;
        if (rc && rc != SR_ENOTFOUND) return rc;
        if (rc || v.mv_size != 5 || (((uint8_t *)v.mv_data)[0] != SR_NOTIFYQ_DONE && ((uint8_t *)v.mv_data)[0] != SR_NOTIFYQ_GAVE_UP))
            return sr__refuse(r, SR_ENOTFOUND, "notify restatement: no done delivery of alarm seq %" PRIu64 " to %.64s",
                              n->alarm_seq, n->target_id);
        n->outcome = (char *)(((uint8_t *)v.mv_data)[0] == SR_NOTIFYQ_DONE ? "delivered" : "given_up");
        n->attempts = sr_get_le32((uint8_t *)v.mv_data + 1);
    }
    int done = !strcmp(n->outcome, "delivered") ? SR_NOTIFYQ_DONE : !strcmp(n->outcome, "given_up") ? SR_NOTIFYQ_GAVE_UP : 0;
    if (!done || !kl || !ev->operator_id[0] || !n->target_id[0] || !n->alarm_seq)
        return validate ? sr__refuse(r, SR_EINVAL, "notify: outcome delivered, given_up or mark; an operator, a "
                                                   "target and an alarm seq")
                        : SR_OK;
    MDB_val v;
    int rc = get(t, db, "m", 1, &v);
    if (rc == SR_OK && v.mv_size == 8 && sr_get_le64(v.mv_data) >= n->alarm_seq) return SR_OK; /* under the mark */
    if (rc != SR_OK && rc != SR_ENOTFOUND) return rc;
    val[0] = (uint8_t)done;
    sr_put_le32(val + 1, n->attempts);
    return put(t, db, k, kl, val, sizeof val);
}

/* A restated alive row (issue #16, AliveEvent.restated; docs/retention.md
 * "Audit data"), on the writer: the principal's row fills the event (its
 * state, reason, binding, remote, will, and the transition's since_ms and
 * seq), so that the apply writes the row as it is and the logged record
 * carries it. No row: refused, nothing to restate. */
static int restate_alive(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r)
{
    if (restate_by_sweep(ev, r)) return r->rc;
    Suiro__V1__AliveEvent *a = ev->alive;
    uint8_t k[300];
    char kind[2] = {(char)('0' + a->kind), 0};
    size_t kl = a->id && a->id[0] ? mkkey(k, sizeof k, ev->operator_id, kind, a->id) : 0;
    MDB_val v;
    int rc = kl ? get(t, DB(e, SR_DB_ALIVE), k, kl, &v) : SR_ENOTFOUND;
    if (rc && rc != SR_ENOTFOUND) return rc;
    if (rc) return sr__refuse(r, SR_ENOTFOUND, "alive restatement: no alive row of %.64s", a->id ? a->id : "");
    Suiro__V1__AliveEvent *st = suiro__v1__alive_event__unpack(NULL, v.mv_size, v.mv_data);
    if (!st) return SR_ECORRUPT;
    a->state = st->state;
    a->reason = st->reason;
    a->since_ms = st->since_ms;
    a->seq = st->seq;
    rc = SR_ENOMEM;
    if ((a->binding = arena_strn(e, st->binding, strlen(st->binding))) &&
        (a->remote = arena_strn(e, st->remote, strlen(st->remote))) && (a->will = arena_strn(e, st->will, strlen(st->will))))
        rc = SR_OK;
    suiro__v1__alive_event__free_unpacked(st, NULL);
    return rc;
}

/* ---- alive status (R-MO-1, docs/monitoring.md "Alive status"): the latest
 * transition per principal in `alive` (key op \0 kind digit \0 id), the
 * event's AliveEvent with since_ms and seq set from the envelope, so that
 * the replay writes what the writer wrote (invariant 1). */
static int apply_alive(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    Suiro__V1__AliveEvent *a = ev->alive;
    if (!a) return SR_OK;
    if (a->restated && validate) { /* issue #16: the writer fills it from the row (the replay: as logged) */
        int rc = restate_alive(e, t, ev, r);
        if (rc) return rc;
    }
    if (validate && ((a->kind != SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY && a->kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP) ||
                     !ev->operator_id[0] || !sr_id_str_ok(a->id) ||
                     (a->state != SUIRO__V1__ALIVE_STATE__AS_ONLINE && a->state != SUIRO__V1__ALIVE_STATE__AS_OFFLINE) ||
                     a->reason <= SUIRO__V1__ALIVE_REASON__AR_UNSPECIFIED ||
                     a->reason > SUIRO__V1__ALIVE_REASON__AR_SERVER_RESTART))
        return sr__refuse(r, SR_EINVAL, "alive: an operator, kind gateway or app, an id, state and reason");
    uint8_t k[300];
    char kind[2] = {(char)('0' + a->kind), 0};
    size_t kl = mkkey(k, sizeof k, ev->operator_id, kind, a->id);
    if (!kl) return validate ? sr__refuse(r, SR_EINVAL, "alive: id too long") : SR_OK;
    Suiro__V1__AliveEvent st = *a;
    if (!a->restated) { /* a restatement keeps the transition's own (filled from the row) */
        st.since_ms = ev->ingest_ms;
        st.seq = ev->seq;
    }
    st.restated = 0;
    st.operator_id = ev->operator_id;
    return put_packed(e, t, SR_DB_ALIVE, k, kl, &st.base);
}

#define SR_EVENT_KINDS(X)                                                     \
    X(__NOT_SET, check_no_body, NULL, NULL)                                    \
    X(_MEASUREMENTS, check_measurements, NULL, sr__heads_apply_measurements)      \
    X(_REQUEST_CREATED, NULL, apply_request_created, NULL)                    \
    X(_REQUEST_TRANSITION, NULL, apply_request_transition, NULL)              \
    X(_MONITOR, NULL, apply_monitor, NULL)                                    \
    X(_SESSION, NULL, apply_session, NULL)                                    \
    X(_MASTER_PUT, NULL, apply_master_put_ev, NULL)                           \
    X(_MASTER_DELETE, NULL, apply_master_delete_ev, NULL)                     \
    X(_DOC_PUT, NULL, apply_doc, NULL)                                        \
    X(_DOC_DELETE, NULL, apply_doc, NULL)                                     \
    X(_FILE_PUT, NULL, apply_file_put, NULL)                                  \
    X(_FILE_DELETE, NULL, apply_file_delete, NULL)                            \
    X(_REGISTRY_PUT, NULL, apply_registry_put, NULL)                          \
    X(_REGISTRY_DELETE, NULL, apply_registry_delete, NULL)                    \
    X(_USER, NULL, apply_user, NULL)                                          \
    X(_AUTH, NULL, NULL, NULL)                                                \
    X(_KEY, NULL, sr__apply_key, NULL)                                        \
    X(_ALARM, NULL, sr__apply_alarm, NULL)                                    \
    X(_HEADS_CHECKPOINT, check_engine_only, NULL, sr__heads_apply_checkpoint) \
    X(_LOGIN_POLICY, NULL, apply_login_policy, NULL)                          \
    X(_PENDING, NULL, apply_pending, NULL)                                    \
    X(_ADMIN, NULL, NULL, NULL)                                               \
    X(_FILE_SHARE, NULL, apply_file_share, NULL)                              \
    X(_CORRECTION, check_correction, NULL, sr__heads_apply_measurements)      \
    X(_BACKUP, NULL, NULL, NULL)                                              \
    X(_PUSH_MARK, NULL, apply_push_mark, NULL)                                \
    X(_RETENTION, sr__retention_check, NULL, sr__retention_apply)             \
    X(_CONFIG_CARRY, sr__segdrop_check, sr__segdrop_apply, NULL)              \
    X(_LOG_TRIM, sr__segdrop_check, sr__segdrop_apply, NULL)                  \
    X(_ALIVE, NULL, apply_alive, NULL)                                        \
    X(_NOTIFY, NULL, apply_notify, NULL)                                      \
    X(_CHECKPOINT, sr__checkpoint_check, sr__checkpoint_apply, NULL)          \
    X(_ACCESS, check_access, NULL, NULL)                                      \
    X(_WRITE_AUDIT, check_engine_only, NULL, NULL)                            \
    X(_ACCESS_BATCH, check_access_batch, NULL, NULL)                          \
    X(_CLUSTER, check_cluster, NULL, NULL)                                    \
    X(_POINT_ALIAS, NULL, sr__apply_point_alias, NULL)                        \
    X(_STREAM_KEY_ERASE, sr__check_skey_erase, sr__apply_skey_erase, NULL)

#define SR_X_(c, chk, app, ser) [SUIRO__V1__EVENT__BODY##c] = {SUIRO__V1__EVENT__BODY##c, &#c[1], chk, app, ser},
static const sr_applier appliers[] = {SR_EVENT_KINDS(SR_X_)};
#undef SR_X_
/* the last case of events.proto has the last row (a new kind numbered
 * after it fails here or in event_kind_has_row) */
_Static_assert(sizeof appliers / sizeof *appliers == SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE + 1,
               "the appliers' table ends at the last case of Event.body");

/* Never called: a switch over every case of Event.body (generated from the
 * table, no default), so a case without a row is a -Wswitch error. */
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
static inline int event_kind_has_row(Suiro__V1__Event__BodyCase c)
{
    switch (c) {
#define SR_X_(c, chk, app, ser) case SUIRO__V1__EVENT__BODY##c:
        SR_EVENT_KINDS(SR_X_)
#undef SR_X_
        return 1;
    case _SUIRO__V1__EVENT__BODY__CASE_IS_INT_SIZE: break;
    }
    return 0;
}
#pragma GCC diagnostic pop

const sr_applier *sr__applier(int kind)
{
    (void)event_kind_has_row;
    if (kind < 0 || (size_t)kind >= sizeof appliers / sizeof *appliers || !appliers[kind].name) return NULL;
    return &appliers[kind];
}

/* Apply everything but the series part of an event. validate: writer path
 * (checks, fills writer-decided fields); !validate: replay. */
int sr__apply_nonseries(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    const sr_applier *a = sr__applier((int)ev->body_case);
    if (!a) return validate ? sr__refuse(r, SR_EINVAL, "event of an unknown kind") : SR_OK;
    if (sr__held(ev)) return SR_OK; /* its numbers are its origin's: checked when released (origins.c invariant 6) */
    int rc;
    if (validate && a->check && (rc = a->check(e, t, ev, r))) return rc;
    return a->apply ? a->apply(e, t, ev, r, validate) : SR_OK;
}

/* Apply the series part of an event (pass 2; heads_only: the replay of
 * events <= W, which rebuilds the heads). */
int sr__apply_series(sr_engine *e, MDB_txn *t, const Event *ev, int heads_only)
{
    const sr_applier *a = sr__applier((int)ev->body_case);
    return a && a->series ? a->series(e, t, ev, heads_only) : SR_OK;
}

int sr__apply_common(sr_engine *e, MDB_txn *t, const Event *ev)
{
    if (e->o.state_only) return SR_OK; /* the state at a past time reads neither (state.c) */
    int rc = sr__audit_put(e, t, ev); /* the audit trail's row (engine/audit.c) */
    if (!rc && ev->origin) rc = sr__origin_apply(e, t, ev); /* exactly once, the checkpoint (origins.c) */
    if (rc || !ev->message_id[0]) return rc;
    uint8_t k[300], item[MSGID_ITEM];
    size_t kl = sr__msgid_key(ev, ev->seq, k, sizeof k);
    if (!kl || sr__msgid_item(e, ev, ev->seq, item)) return SR_OK;
    return put(t, DB(e, SR_DB_MSGIDS), k, kl, item, MSGID_ITEM);
}

int sr__put_watermark(sr_engine *e, MDB_txn *t, uint64_t w)
{
    uint8_t b[8];
    sr_put_le64(b, w);
    return put(t, DB(e, SR_DB_META), "watermark", 9, b, 8);
}
