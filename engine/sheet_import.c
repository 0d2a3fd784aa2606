/*
 * engine/sheet_import.c -- the set-up sheet (docs/setup-sheet.md) into and
 * out of the engine (R-MA-1..3).
 *
 * Import turns a parsed and validated sheet into registry and master events
 * and submits them as ONE command, so it is all-or-nothing. It is
 * idempotent: an entry equal to what is stored (a secret that verifies
 * against the stored hash counts as equal; an empty secret keeps the stored
 * one) produces no event, so importing the same sheet twice appends nothing
 * the second time. Export builds a sheet from the index and writes it in the
 * canonical form (secrets are never exported).
 */
#include "engine/sheet.h"

#include "codecs/events.pb-c.h"
#include "engine/evbuild.h"
#include "engine/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
    sr_buf bytes;
    size_t *lens;
    size_t n, cap;
    const char *op;
} batch;

static int add(batch *b, Suiro__V1__Event *ev)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        size_t *l = sr_realloc(b->lens, cap * sizeof *l);
        if (!l) return SR_ENOMEM;
        b->lens = l;
        b->cap = cap;
    }
    size_t before = b->bytes.len;
    int rc = sr_ev_pack(ev, b->op, "sheet-import", SUIRO__V1__ACTOR_KIND__ACTOR_USER, NULL, &b->bytes);
    if (!rc) b->lens[b->n++] = b->bytes.len - before;
    return rc;
}

/* 1 if the stored packed message equals m (byte for byte once packed). */
static int same_packed(const sr_buf *stored, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n != stored->len) return 0;
    uint8_t *tmp = sr_malloc(n ? n : 1);
    if (!tmp) return 0;
    protobuf_c_message_pack(m, tmp);
    int same = !memcmp(tmp, stored->data, n);
    sr_free(tmp);
    return same;
}

static int put_master(sr_engine *e, batch *b, Suiro__V1__MasterPut *mp)
{
    sr_buf cur;
    sr_buf_init(&cur);
    int rc = sr_engine_master_get(e, b->op, mp->kind, mp->id, &cur);
    int skip = 0;
    if (rc == SR_OK) {
        if (mp->kind == SUIRO__V1__MASTER_KIND__MK_DATA_POINT) {
            /* the stored one carries its point number */
            Suiro__V1__MasterPut *old = suiro__v1__master_put__unpack(NULL, cur.len, cur.data);
            if (old) {
                mp->point = old->point;
                suiro__v1__master_put__free_unpacked(old, NULL);
            }
        }
        skip = same_packed(&cur, &mp->base);
        mp->point = 0; /* the writer assigns or keeps it */
    } else if (rc != SR_ENOTFOUND) {
        sr_buf_release(&cur);
        return rc;
    }
    sr_buf_release(&cur);
    if (skip) return SR_OK;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = mp;
    return add(b, &ev);
}

/* Registry put; secret handling as described at the top. */
static int put_registry(sr_engine *e, batch *b, Suiro__V1__RegistryPut *rp, const char *secret, sr_result *res,
                        size_t line)
{
    sr_buf cur, hash;
    sr_buf_init(&cur);
    sr_buf_init(&hash);
    int rc = sr_engine_registry_get(e, b->op, rp->kind, rp->id, &cur);
    Suiro__V1__RegistryPut *old = NULL;
    if (rc == SR_OK) old = suiro__v1__registry_put__unpack(NULL, cur.len, cur.data);
    else if (rc != SR_ENOTFOUND) goto done;
    rc = SR_OK;
    if (secret) {
        if (!secret[0]) {
            if (!old || !old->secret_hash.len) {
                snprintf(res->msg, sizeof res->msg, "line %zu: %s is new and needs a secret", line, rp->id);
                rc = res->rc = SR_EINVAL;
                goto done;
            }
        } else if (!old || !sr_secret_verify(secret, old->secret_hash.data, old->secret_hash.len)) {
            if ((rc = sr_secret_hash(secret, &hash))) goto done;
            rp->secret_hash.data = hash.data;
            rp->secret_hash.len = hash.len;
        }
        /* unchanged secret: compare with the stored hash in place */
        if (old && !rp->secret_hash.len) rp->secret_hash = old->secret_hash;
    }
    /* a certificate registered with `suiro cert import` stays when the sheet has none */
    if (old && !rp->cert_pem[0] && old->cert_pem[0]) rp->cert_pem = old->cert_pem;
    int skip = old && same_packed(&cur, &rp->base);
    if (old && rp->secret_hash.data == old->secret_hash.data) {
        rp->secret_hash.data = NULL; /* empty in the event: the writer keeps the stored one */
        rp->secret_hash.len = 0;
    }
    if (!skip) {
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.body_case = SUIRO__V1__EVENT__BODY_REGISTRY_PUT;
        ev.registry_put = rp;
        rc = add(b, &ev);
    }
done:
    if (old) suiro__v1__registry_put__free_unpacked(old, NULL);
    sr_buf_release(&cur);
    sr_buf_release(&hash);
    return rc;
}

static const Suiro__V1__ValueType vt[] = {SUIRO__V1__VALUE_TYPE__VT_NUMBER, SUIRO__V1__VALUE_TYPE__VT_INTEGER,
                                           SUIRO__V1__VALUE_TYPE__VT_BOOL, SUIRO__V1__VALUE_TYPE__VT_STRING};
static const Suiro__V1__PointKind pk[] = {SUIRO__V1__POINT_KIND__PK_MEASURE, SUIRO__V1__POINT_KIND__PK_CONTROL,
                                          SUIRO__V1__POINT_KIND__PK_BOTH};

int sr_engine_import_sheet(sr_engine *e, const sr_sheet *sh, sr_result *res)
{
    memset(res, 0, sizeof *res);
    if (sh->n_errors || sh->n_operators != 1) {
        snprintf(res->msg, sizeof res->msg, "the sheet has errors; nothing imported");
        return res->rc = SR_EINVAL;
    }
    batch b = {.op = sh->operators[0].id};
    sr_buf_init(&b.bytes);
    int rc = SR_OK;
    char *grant_ids = NULL;
    {
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_OPERATOR;
        rp.id = (char *)sh->operators[0].id;
        rp.name = (char *)sh->operators[0].name;
        rc = put_registry(e, &b, &rp, NULL, res, sh->operators[0].line);
    }
    for (size_t i = 0; !rc && i < sh->n_gateways; i++) {
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_GATEWAY;
        rp.id = (char *)sh->gateways[i].id;
        rp.name = (char *)sh->gateways[i].name;
        rc = put_registry(e, &b, &rp, sh->gateways[i].secret, res, sh->gateways[i].line);
    }
    for (size_t i = 0; !rc && i < sh->n_apps; i++) {
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_APP;
        rp.id = (char *)sh->apps[i].id;
        rp.name = (char *)sh->apps[i].name;
        rp.url = (char *)sh->apps[i].push_url;
        rc = put_registry(e, &b, &rp, sh->apps[i].secret, res, sh->apps[i].line);
    }
    grant_ids = sr_calloc(sh->n_grants ? sh->n_grants : 1, 160);
    if (!grant_ids) rc = SR_ENOMEM;
    for (size_t i = 0; !rc && i < sh->n_grants; i++) {
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        char *gid = grant_ids + i * 160;
        snprintf(gid, 160, "%s:%s", sh->grants[i].app, sh->grants[i].datapoint);
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_GRANT;
        rp.id = gid;
        rp.app_id = (char *)sh->grants[i].app;
        rp.pattern = (char *)sh->grants[i].datapoint;
        rp.access = (char *)sr_grant_access_name(sh->grants[i].access);
        rc = put_registry(e, &b, &rp, NULL, res, sh->grants[i].line);
    }
    for (size_t i = 0; !rc && i < sh->n_facilities; i++) {
        Suiro__V1__MasterPut m = SUIRO__V1__MASTER_PUT__INIT;
        m.kind = SUIRO__V1__MASTER_KIND__MK_FACILITY;
        m.id = (char *)sh->facilities[i].id;
        m.name = (char *)sh->facilities[i].name;
        rc = put_master(e, &b, &m);
    }
    for (size_t i = 0; !rc && i < sh->n_equipment; i++) {
        Suiro__V1__MasterPut m = SUIRO__V1__MASTER_PUT__INIT;
        m.kind = SUIRO__V1__MASTER_KIND__MK_EQUIPMENT;
        m.id = (char *)sh->equipment[i].id;
        m.parent_id = (char *)sh->equipment[i].facility;
        m.name = (char *)sh->equipment[i].name;
        rc = put_master(e, &b, &m);
    }
    for (size_t i = 0; !rc && i < sh->n_devices; i++) {
        Suiro__V1__MasterPut m = SUIRO__V1__MASTER_PUT__INIT;
        m.kind = SUIRO__V1__MASTER_KIND__MK_DEVICE;
        m.id = (char *)sh->devices[i].id;
        m.parent_id = (char *)sh->devices[i].equipment;
        m.gateway_id = (char *)sh->devices[i].gateway;
        m.name = (char *)sh->devices[i].name;
        rc = put_master(e, &b, &m);
    }
    for (size_t i = 0; !rc && i < sh->n_datapoints; i++) {
        const sr_sheet_datapoint *d = &sh->datapoints[i];
        Suiro__V1__MasterPut m = SUIRO__V1__MASTER_PUT__INIT;
        m.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
        m.id = (char *)d->id;
        m.parent_id = (char *)d->device;
        m.name = (char *)d->name;
        m.unit = (char *)d->unit;
        m.type = vt[d->type];
        m.point_kind = pk[d->kind];
        m.has_min = d->has_min;
        m.min = d->min;
        m.has_max = d->has_max;
        m.max = d->max;
        rc = put_master(e, &b, &m);
    }
    if (!rc && b.n) {
        sr_slice *sl = sr_calloc(b.n, sizeof *sl);
        if (!sl) rc = SR_ENOMEM;
        else {
            size_t pos = 0;
            for (size_t i = 0; i < b.n; i++) {
                sl[i] = (sr_slice){b.bytes.data + pos, b.lens[i]};
                pos += b.lens[i];
            }
            rc = sr_engine_submit_wait(e, sl, b.n, res);
            sr_free(sl);
        }
    } else if (!rc) {
        res->rc = SR_OK;
        res->count = 0;
    }
    if (rc && !res->rc) {
        res->rc = rc;
        if (!res->msg[0]) snprintf(res->msg, sizeof res->msg, "%s", sr_strerror(rc));
    }
    sr_free(grant_ids);
    sr_free(b.lens);
    sr_buf_release(&b.bytes);
    return res->rc;
}

/* ---- export ------------------------------------------------------------- */

typedef struct unpacked {
    void **msgs;
    size_t n, cap;
} unpacked;

static int keep(unpacked *u, void *m)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        void **p = sr_realloc(u->msgs, cap * sizeof *p);
        if (!p) return SR_ENOMEM;
        u->msgs = p;
        u->cap = cap;
    }
    u->msgs[u->n++] = m;
    return SR_OK;
}

/* Unpack every record of a list into msgs (RegistryPut or MasterPut). */
static int list(sr_engine *e, const char *op, int registry, int kind, unpacked *u, size_t *first, size_t *count)
{
    sr_buf b;
    sr_buf_init(&b);
    size_t n = 0;
    int rc = registry ? sr_engine_registry_list(e, op, kind, &b, &n) : sr_engine_master_list(e, op, kind, &b, &n);
    *first = u->n;
    *count = 0;
    size_t pos = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t len = sr_get_le32(b.data + pos);
        void *m = registry ? (void *)suiro__v1__registry_put__unpack(NULL, len, b.data + pos + 4)
                           : (void *)suiro__v1__master_put__unpack(NULL, len, b.data + pos + 4);
        pos += 4 + len;
        if (!m) {
            rc = SR_ECORRUPT;
            break;
        }
        if ((rc = keep(u, m))) {
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        }
        (*count)++;
    }
    sr_buf_release(&b);
    return rc;
}

int sr_engine_export_sheet(sr_engine *e, const char *op, sr_buf *out)
{
    unpacked u = {0};
    sr_sheet sh;
    memset(&sh, 0, sizeof sh);
    size_t f[8], n[8];
    int rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_OPERATOR, &u, &f[0], &n[0]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_GATEWAY, &u, &f[1], &n[1]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_APP, &u, &f[2], &n[2]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_GRANT, &u, &f[3], &n[3]);
    for (int k = 1; k <= 4 && !rc; k++) rc = list(e, op, 0, k, &u, &f[3 + k], &n[3 + k]);
    if (!rc && n[0] == 0) rc = SR_ENOTFOUND;
    sr_sheet_operator opr;
    sr_sheet_gateway *gws = NULL;
    sr_sheet_app *apps = NULL;
    sr_sheet_grant *grs = NULL;
    sr_sheet_facility *fac = NULL;
    sr_sheet_equipment *eq = NULL;
    sr_sheet_device *dev = NULL;
    sr_sheet_datapoint *dps = NULL;
    if (rc) goto done;
#define REG(i) ((Suiro__V1__RegistryPut *)u.msgs[f[i] + j])
#define MAS(i) ((Suiro__V1__MasterPut *)u.msgs[f[i] + j])
    opr = (sr_sheet_operator){0, ((Suiro__V1__RegistryPut *)u.msgs[f[0]])->id,
                              ((Suiro__V1__RegistryPut *)u.msgs[f[0]])->name};
    gws = sr_calloc(n[1] + 1, sizeof *gws);
    apps = sr_calloc(n[2] + 1, sizeof *apps);
    grs = sr_calloc(n[3] + 1, sizeof *grs);
    fac = sr_calloc(n[4] + 1, sizeof *fac);
    eq = sr_calloc(n[5] + 1, sizeof *eq);
    dev = sr_calloc(n[6] + 1, sizeof *dev);
    dps = sr_calloc(n[7] + 1, sizeof *dps);
    if (!gws || !apps || !grs || !fac || !eq || !dev || !dps) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t j = 0; j < n[1]; j++) gws[j] = (sr_sheet_gateway){0, REG(1)->id, REG(1)->name, ""};
    for (size_t j = 0; j < n[2]; j++) apps[j] = (sr_sheet_app){0, REG(2)->id, REG(2)->name, "", REG(2)->url};
    for (size_t j = 0; j < n[3]; j++) {
        const char *a = REG(3)->access;
        sr_grant_access ga = !strcmp(a, "read") ? SR_GRANT_READ : !strcmp(a, "control") ? SR_GRANT_CONTROL : SR_GRANT_BOTH;
        size_t pl = strlen(REG(3)->pattern);
        grs[j] = (sr_sheet_grant){0, REG(3)->app_id, REG(3)->pattern, pl && REG(3)->pattern[pl - 1] == '*', ga};
    }
    for (size_t j = 0; j < n[4]; j++) fac[j] = (sr_sheet_facility){0, MAS(4)->id, MAS(4)->name};
    for (size_t j = 0; j < n[5]; j++) eq[j] = (sr_sheet_equipment){0, MAS(5)->id, MAS(5)->parent_id, MAS(5)->name};
    for (size_t j = 0; j < n[6]; j++)
        dev[j] = (sr_sheet_device){0, MAS(6)->id, MAS(6)->parent_id, MAS(6)->gateway_id, MAS(6)->name};
    for (size_t j = 0; j < n[7]; j++) {
        Suiro__V1__MasterPut *m = MAS(7);
        sr_dp_type t = m->type == SUIRO__V1__VALUE_TYPE__VT_INTEGER ? SR_DP_INTEGER
                       : m->type == SUIRO__V1__VALUE_TYPE__VT_BOOL  ? SR_DP_BOOLEAN
                       : m->type == SUIRO__V1__VALUE_TYPE__VT_STRING ? SR_DP_STRING
                                                                     : SR_DP_NUMBER;
        sr_dp_kind k = m->point_kind == SUIRO__V1__POINT_KIND__PK_CONTROL ? SR_DP_CONTROL
                       : m->point_kind == SUIRO__V1__POINT_KIND__PK_BOTH  ? SR_DP_BOTH
                                                                          : SR_DP_MEASURE;
        dps[j] = (sr_sheet_datapoint){0, m->id, m->parent_id, m->name, m->unit, t, k,
                                      m->has_min, m->has_max, m->min, m->max};
    }
#undef REG
#undef MAS
    sh.operators = &opr;
    sh.n_operators = 1;
    sh.gateways = gws;
    sh.n_gateways = n[1];
    sh.apps = apps;
    sh.n_apps = n[2];
    sh.grants = grs;
    sh.n_grants = n[3];
    sh.facilities = fac;
    sh.n_facilities = n[4];
    sh.equipment = eq;
    sh.n_equipment = n[5];
    sh.devices = dev;
    sh.n_devices = n[6];
    sh.datapoints = dps;
    sh.n_datapoints = n[7];
    rc = sr_sheet_write(&sh, out);
done:
    sr_free(gws);
    sr_free(apps);
    sr_free(grs);
    sr_free(fac);
    sr_free(eq);
    sr_free(dev);
    sr_free(dps);
    for (size_t i = 0; i < u.n; i++) protobuf_c_message_free_unpacked(u.msgs[i], NULL);
    sr_free(u.msgs);
    return rc;
}
