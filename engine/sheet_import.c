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
 *
 * Removal (docs/setup-sheet.md "Removal"): a section the sheet lists is the
 * complete list of its kind, so a stored gateway, app, grant or master that
 * a listed section leaves out is removed, each by one RegistryDelete or
 * MasterDelete event in the same command. A section left out changes
 * nothing of its kind, except that grants of a removed app, and grants
 * naming a removed data point exactly, go with them (a grant must never
 * come back to life with a new app of the same id). A removal that would
 * leave a stored entry of an unlisted section pointing at nothing (an
 * equipment whose facility goes, a device whose gateway goes, ...) refuses
 * the whole import, naming both. The operator row cannot be removed.
 * [storegrants] (grants on documents and files, R-PO-2) are registry
 * grants with a grant_kind: [grants] lists and removes only the data-point
 * ones, [storegrants] only these; the store grants of a removed app go with
 * it.
 * [retention] (an operator's periods, docs/retention.md) are RG_RETENTION
 * registry entries, removed like the others when the section is listed.
 * The audit floor (issue #16): an import whose events set the audit period
 * to fewer days than hook->audit_floor_days (0, for ever, is never fewer)
 * is a privilege change: the hook's fn is told (*hook->below_floor, the
 * admin API makes the whole import a pending change of the two-person
 * rule); with no fn (the offline CLI) the import is refused, naming the
 * line. Re-importing a period already stored appends nothing, so it is no
 * change and needs nobody's approval.
 */
#include "engine/sheet.h"

#include "codecs/csv.h"
#include "codecs/events.pb-c.h"
#include "engine/evbuild.h"
#include "engine/records.h"
#include "engine/secret.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
    sr_buf bytes;
    size_t *lens;
    size_t n, cap;
    const char *op;
    const sr_cmd_env *env;  /* who imports, from where (the events' envelope) */
    const char *vendor_id;  /* the vendor link of vendor_for (an app or a gateway); NULL: the stored ones */
    int vendor_kind;        /* RG_APP or RG_GATEWAY */
    const char *vendor_for;
    int require_sig;        /* vendor_for's require_signature: 0 the stored one, 1 off, 2 on (an app) */
    uint32_t audit_floor;   /* [retention] audit_floor_days (0: no floor) */
    size_t below_floor;     /* the line of an audit row below it that makes an event (0: none) */
    uint32_t below_days;
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
    ev->source = (char *)(b->env->source ? b->env->source : "");
    int rc = sr_ev_pack(ev, b->op, b->env->actor, (Suiro__V1__ActorKind)b->env->kind, NULL, &b->bytes);
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
                snprintf(res->err.msg, sizeof res->err.msg, "line %zu: %s is new and needs a secret", line, rp->id);
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
    /* what the sheet does not carry stays: a certificate (`suiro cert import`,
     * the admin API), the vendor link (unless the admin API sets it), the
     * gateway's protocol, the disabled flag */
    if (old && !rp->cert_pem[0] && old->cert_pem[0]) rp->cert_pem = old->cert_pem;
    if (old && !rp->protocol[0] && old->protocol[0]) rp->protocol = old->protocol;
    if (old) rp->disabled = old->disabled;
    if (b->vendor_id && (int)rp->kind == b->vendor_kind && !strcmp(rp->id, b->vendor_for))
        rp->vendor_id = (char *)b->vendor_id;
    else if (old && old->vendor_id[0])
        rp->vendor_id = old->vendor_id;
    /* an app's signature requirement (docs/signatures.md): the admin API's, else the stored one */
    if (b->require_sig && rp->kind == SUIRO__V1__REGISTRY_KIND__RG_APP && b->vendor_for && !strcmp(rp->id, b->vendor_for))
        rp->require_signature = b->require_sig == 2;
    else if (old)
        rp->require_signature = old->require_signature;
    int skip = old && same_packed(&cur, &rp->base);
    if (old && rp->secret_hash.data == old->secret_hash.data) {
        rp->secret_hash.data = NULL; /* empty in the event: the writer keeps the stored one */
        rp->secret_hash.len = 0;
    }
    if (!skip && rp->kind == SUIRO__V1__REGISTRY_KIND__RG_RETENTION && !strcmp(rp->id, "audit") &&
        rp->retention_days && rp->retention_days < b->audit_floor) {
        b->below_floor = line; /* shortened below the floor: a privilege change */
        b->below_days = rp->retention_days;
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

/* ---- removal ------------------------------------------------------------ */

/* Sheet kinds that removal handles, in sr_sheet order. */
enum { RK_GATEWAY, RK_APP, RK_FACILITY, RK_EQUIPMENT, RK_DEVICE, RK_DATAPOINT, RK_GRANT, RK_SGRANT, RK_RETENTION, RK_N };
static const unsigned rk_section[RK_N] = {SR_SHEET_S_GATEWAYS,   SR_SHEET_S_APPS,    SR_SHEET_S_FACILITIES,
                                          SR_SHEET_S_EQUIPMENT,  SR_SHEET_S_DEVICES, SR_SHEET_S_DATAPOINTS,
                                          SR_SHEET_S_GRANTS,     SR_SHEET_S_STORE_GRANTS, SR_SHEET_S_RETENTION};
static const char *const rk_name[RK_N] = {"gateway", "app",        "facility", "equipment",
                                          "device",  "data point", "grant",    "store grant", "retention period"};
static const char *const rk_sect[RK_N] = {"gateways", "apps",       "facilities", "equipment",
                                          "devices",  "datapoints", "grants",     "storegrants", "retention"};

/* The ids of one kind that this import removes (sorted). */
typedef struct idset {
    char **ids;
    size_t n, cap;
} idset;

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int idset_add(idset *s, const char *id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **p = sr_realloc(s->ids, cap * sizeof *p);
        if (!p) return SR_ENOMEM;
        s->ids = p;
        s->cap = cap;
    }
    size_t l = strlen(id);
    char *c = sr_malloc(l + 1);
    if (!c) return SR_ENOMEM;
    memcpy(c, id, l + 1);
    s->ids[s->n++] = c;
    return SR_OK;
}

static int idset_has(const idset *s, const char *id)
{
    return s->n && bsearch(&id, s->ids, s->n, sizeof *s->ids, str_cmp) != NULL;
}

static void idset_free(idset *s)
{
    for (size_t i = 0; i < s->n; i++) sr_free(s->ids[i]);
    sr_free(s->ids);
}

/* 1 if the sheet lists id among the entries of kind k (sorted by id; every
 * entry struct starts with line, then id). */
static int sheet_has(const sr_sheet *sh, int k, const char *id)
{
    const void *base;
    size_t n, stride;
    switch (k) {
    case RK_GATEWAY: base = sh->gateways, n = sh->n_gateways, stride = sizeof *sh->gateways; break;
    case RK_APP: base = sh->apps, n = sh->n_apps, stride = sizeof *sh->apps; break;
    case RK_FACILITY: base = sh->facilities, n = sh->n_facilities, stride = sizeof *sh->facilities; break;
    case RK_EQUIPMENT: base = sh->equipment, n = sh->n_equipment, stride = sizeof *sh->equipment; break;
    case RK_DEVICE: base = sh->devices, n = sh->n_devices, stride = sizeof *sh->devices; break;
    default: base = sh->datapoints, n = sh->n_datapoints, stride = sizeof *sh->datapoints; break;
    }
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *mid_id = *(const char *const *)((const char *)base + mid * stride + offsetof(sr_sheet_gateway, id));
        int c = strcmp(mid_id, id);
        if (!c) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int sheet_has_grant(const sr_sheet *sh, const char *app, const char *pattern)
{
    for (size_t i = 0; i < sh->n_grants; i++) /* sorted, but (app, pattern) pairs: a linear scan is clear */
        if (!strcmp(sh->grants[i].app, app) && !strcmp(sh->grants[i].datapoint, pattern)) return 1;
    return 0;
}

static int sheet_has_retention(const sr_sheet *sh, const char *cls)
{
    for (size_t i = 0; i < sh->n_retention; i++)
        if (!strcmp(sh->retention[i].cls, cls)) return 1;
    return 0;
}

/* The registry id of a store grant: app ":" kind ":" target (the admin API
 * uses the same, api/admin_files.c). */
static int sheet_has_store_grant(const sr_sheet *sh, const char *id)
{
    for (size_t i = 0; i < sh->n_store_grants; i++) {
        size_t al = strlen(sh->store_grants[i].app);
        if (!strncmp(id, sh->store_grants[i].app, al) && id[al] == ':' && !strcmp(id + al + 1, sh->store_grants[i].key))
            return 1;
    }
    return 0;
}

_Static_assert(offsetof(sr_sheet_gateway, id) == offsetof(sr_sheet_app, id) &&
                   offsetof(sr_sheet_gateway, id) == offsetof(sr_sheet_facility, id) &&
                   offsetof(sr_sheet_gateway, id) == offsetof(sr_sheet_equipment, id) &&
                   offsetof(sr_sheet_gateway, id) == offsetof(sr_sheet_device, id) &&
                   offsetof(sr_sheet_gateway, id) == offsetof(sr_sheet_datapoint, id),
               "sheet_has reads the id at one offset");

/* A stored entry of kind k, as the listing returns it. */
typedef struct stored {
    const char *id, *parent, *gateway, *app, *pattern;
} stored;

typedef int (*stored_fn)(void *ctx, int k, const stored *st);

/* Call fn for every stored entry of kind k. */
static int each_stored(sr_engine *e, const char *op, int k, stored_fn fn, void *ctx)
{
    static const int reg_kind[RK_N] = {SUIRO__V1__REGISTRY_KIND__RG_GATEWAY, SUIRO__V1__REGISTRY_KIND__RG_APP, 0, 0,
                                       0, 0, SUIRO__V1__REGISTRY_KIND__RG_GRANT, SUIRO__V1__REGISTRY_KIND__RG_GRANT,
                                       SUIRO__V1__REGISTRY_KIND__RG_RETENTION};
    static const int mas_kind[RK_N] = {0, 0, SUIRO__V1__MASTER_KIND__MK_FACILITY, SUIRO__V1__MASTER_KIND__MK_EQUIPMENT,
                                       SUIRO__V1__MASTER_KIND__MK_DEVICE, SUIRO__V1__MASTER_KIND__MK_DATA_POINT, 0, 0, 0};
    int registry = reg_kind[k] != 0;
    sr_rec r = SR_REC_INIT; /* the typed readers of engine/records.h: one walker */
    int rc = registry ? sr_list_registry(e, op, (sr_reg_kind)reg_kind[k], &r)
                      : sr_list_masters(e, op, (sr_master_kind)mas_kind[k], &r);
    while (!rc) {
        stored st = {0};
        int got;
        if (registry) {
            sr_reg_entry x;
            got = sr_rec_next_registry(&r, &x);
            /* [grants] are the data-point grants, [storegrants] the others */
            if (got == 1 && (k == RK_GRANT || k == RK_SGRANT) && !x.grant_kind[0] != (k == RK_GRANT)) continue;
            if (got == 1) st = (stored){x.id, "", "", x.app_id, x.pattern};
        } else {
            sr_master x;
            got = sr_rec_next_master(&r, &x);
            if (got == 1) st = (stored){x.id, x.parent_id, x.gateway_id, "", ""};
        }
        if (got <= 0) {
            rc = got; /* 0 at the end, SR_ECORRUPT for a record or framing that is broken */
            break;
        }
        rc = fn(ctx, k, &st);
    }
    sr_rec_close(&r);
    return rc;
}

typedef struct rmctx {
    const sr_sheet *sh;
    batch *b;
    idset rm[RK_N];
    sr_result *res;
} rmctx;

static int add_delete(batch *b, int k, const char *id)
{
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    if (k == RK_GATEWAY || k == RK_APP || k == RK_GRANT || k == RK_SGRANT || k == RK_RETENTION) {
        Suiro__V1__RegistryDelete d = SUIRO__V1__REGISTRY_DELETE__INIT;
        d.kind = k == RK_GATEWAY     ? SUIRO__V1__REGISTRY_KIND__RG_GATEWAY
                 : k == RK_APP       ? SUIRO__V1__REGISTRY_KIND__RG_APP
                 : k == RK_RETENTION ? SUIRO__V1__REGISTRY_KIND__RG_RETENTION
                                     : SUIRO__V1__REGISTRY_KIND__RG_GRANT;
        d.id = (char *)id;
        ev.body_case = SUIRO__V1__EVENT__BODY_REGISTRY_DELETE;
        ev.registry_delete = &d;
        return add(b, &ev);
    }
    Suiro__V1__MasterDelete d = SUIRO__V1__MASTER_DELETE__INIT;
    d.kind = (Suiro__V1__MasterKind)(k - RK_FACILITY + SUIRO__V1__MASTER_KIND__MK_FACILITY);
    d.id = (char *)id;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_DELETE;
    ev.master_delete = &d;
    return add(b, &ev);
}

/* Listed section: remove what it leaves out. */
static int rm_missing(void *vc, int k, const stored *st)
{
    rmctx *c = vc;
    int listed = k == RK_GRANT       ? sheet_has_grant(c->sh, st->app, st->pattern)
                 : k == RK_SGRANT    ? sheet_has_store_grant(c->sh, st->id)
                 : k == RK_RETENTION ? sheet_has_retention(c->sh, st->id)
                                     : sheet_has(c->sh, k, st->id);
    if (listed) return SR_OK;
    int rc = add_delete(c->b, k, st->id);
    return rc ? rc : idset_add(&c->rm[k], st->id);
}

/* Unlisted [grants]: grants of a removed app or naming a removed point go too. */
static int rm_orphan_grant(void *vc, int k, const stored *st)
{
    rmctx *c = vc;
    size_t pl = strlen(st->pattern);
    int exact = k == RK_GRANT && pl && st->pattern[pl - 1] != '*';
    if (!idset_has(&c->rm[RK_APP], st->app) && !(exact && idset_has(&c->rm[RK_DATAPOINT], st->pattern)))
        return SR_OK;
    int rc = add_delete(c->b, k, st->id);
    return rc ? rc : idset_add(&c->rm[k], st->id);
}

/* Unlisted masters: refuse one that would point at a removed entry. */
static int check_parent(void *vc, int k, const stored *st)
{
    rmctx *c = vc;
    int pk = k - 1; /* equipment -> facility, device -> equipment, data point -> device */
    int bad = -1;
    if (idset_has(&c->rm[pk], st->parent)) bad = pk;
    else if (k == RK_DEVICE && idset_has(&c->rm[RK_GATEWAY], st->gateway)) bad = RK_GATEWAY;
    if (bad < 0) return SR_OK;
    snprintf(c->res->err.msg, sizeof c->res->err.msg,
             "%s %s is not in [%s], but the stored %s %s (the sheet has no [%s]) refers to it: list [%s] without "
             "%s, or keep the %s; nothing imported",
             rk_name[bad], bad == RK_GATEWAY ? st->gateway : st->parent, rk_sect[bad], rk_name[k], st->id, rk_sect[k],
             rk_sect[k], st->id, rk_name[bad]);
    return c->res->rc = SR_EINVAL;
}

/* Removal events for every listed section (see the top of the file). */
static int removals(sr_engine *e, const sr_sheet *sh, batch *b, sr_result *res, size_t *nremoved, char *sum,
                    size_t sumcap)
{
    rmctx c = {.sh = sh, .b = b, .res = res};
    int rc = SR_OK;
    /* children first, so the log reads in dependency order */
    static const int order[RK_N] = {RK_RETENTION, RK_SGRANT,   RK_GRANT, RK_DATAPOINT, RK_DEVICE,
                                    RK_EQUIPMENT, RK_FACILITY, RK_APP,   RK_GATEWAY};
    for (int i = 0; !rc && i < RK_N; i++)
        if (sh->sections & rk_section[order[i]]) rc = each_stored(e, b->op, order[i], rm_missing, &c);
    for (int k = 0; !rc && k < RK_N; k++)
        if (c.rm[k].n) qsort(c.rm[k].ids, c.rm[k].n, sizeof *c.rm[k].ids, str_cmp);
    if (!rc && !(sh->sections & SR_SHEET_S_GRANTS) && (c.rm[RK_APP].n || c.rm[RK_DATAPOINT].n))
        rc = each_stored(e, b->op, RK_GRANT, rm_orphan_grant, &c);
    if (!rc && !(sh->sections & SR_SHEET_S_STORE_GRANTS) && c.rm[RK_APP].n)
        rc = each_stored(e, b->op, RK_SGRANT, rm_orphan_grant, &c);
    for (int k = RK_EQUIPMENT; !rc && k <= RK_DATAPOINT; k++)
        if (!(sh->sections & rk_section[k]) && (c.rm[k - 1].n || (k == RK_DEVICE && c.rm[RK_GATEWAY].n)))
            rc = each_stored(e, b->op, k, check_parent, &c);
    *nremoved = 0;
    size_t sl = 0;
    sum[0] = 0;
    for (int k = 0; k < RK_N; k++) {
        for (size_t i = 0; !rc && i < c.rm[k].n && sl + 1 < sumcap; i++) {
            int w = snprintf(sum + sl, sumcap - sl, "%s%s %s", sl ? ", " : "", rk_name[k], c.rm[k].ids[i]);
            sl = w < 0 ? sumcap : sl + (size_t)w;
        }
        *nremoved += c.rm[k].n;
        idset_free(&c.rm[k]);
    }
    if (sl >= sumcap && sumcap > 4) memcpy(sum + sumcap - 4, "...", 4);
    return rc;
}

static const Suiro__V1__ValueType vt[] = {SUIRO__V1__VALUE_TYPE__VT_NUMBER, SUIRO__V1__VALUE_TYPE__VT_INTEGER,
                                           SUIRO__V1__VALUE_TYPE__VT_BOOL, SUIRO__V1__VALUE_TYPE__VT_STRING};
static const Suiro__V1__PointKind pk[] = {SUIRO__V1__POINT_KIND__PK_MEASURE, SUIRO__V1__POINT_KIND__PK_CONTROL,
                                          SUIRO__V1__POINT_KIND__PK_BOTH};

/* One set-up change at a time (imports and the admin API's edits): an edit
 * reads the current sheet and imports it changed, so two at once could undo
 * each other. */
static pthread_mutex_t setup_mu = PTHREAD_MUTEX_INITIALIZER;

/* vendor_id (NULL: none) is the vendor link of the app or gateway (kind
 * vendor_kind) vendor_for; every other entry keeps its stored one. */
/* The built events evs[0..n) of a set-up command go to hook (NULL: none)
 * before they are submitted, under the mutex: 0 submit them, 1 taken by the
 * caller (res: SR_OK, count 0, taken 1), < 0 refused (nothing stored). */
static int submit_hooked(sr_engine *e, const sr_setup_hook *hook, const sr_slice *evs, size_t n, sr_result *res)
{
    int h = hook && hook->fn ? hook->fn(hook->ctx, evs, n) : 0;
    if (h == 1) {
        memset(res, 0, sizeof *res);
        if (hook->taken) *hook->taken = 1;
        return SR_OK;
    }
    if (h < 0) {
        res->rc = h;
        if (!res->err.msg[0]) snprintf(res->err.msg, sizeof res->err.msg, "%s", sr_strerror(h));
        return h;
    }
    return sr_engine_submit_wait(e, evs, n, res);
}

static int import_locked(sr_engine *e, const sr_sheet *sh, const sr_cmd_env *env, const char *vendor_id,
                         int vendor_kind, const char *vendor_for, int require_sig, const sr_setup_hook *hook,
                         sr_result *res)
{
    memset(res, 0, sizeof *res);
    if (sh->n_errors || sh->n_operators != 1) {
        snprintf(res->err.msg, sizeof res->err.msg, "the sheet has errors; nothing imported");
        return res->rc = SR_EINVAL;
    }
    batch b = {.op = sh->operators[0].id, .env = env, .vendor_id = vendor_id, .vendor_kind = vendor_kind,
               .vendor_for = vendor_for, .require_sig = require_sig, .audit_floor = hook ? hook->audit_floor_days : 0};
    sr_buf_init(&b.bytes);
    int rc = SR_OK;
    char *grant_ids = NULL, *sgrant_ids = NULL;
    enum { SGRANT_ID = SR_ID_MAX + 16 + SR_STORE_PREFIX_MAX + 2 };
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
    sgrant_ids = sr_calloc(sh->n_store_grants ? sh->n_store_grants : 1, SGRANT_ID);
    if (!rc && !sgrant_ids) rc = SR_ENOMEM;
    for (size_t i = 0; !rc && i < sh->n_store_grants; i++) {
        const sr_sheet_store_grant *g = &sh->store_grants[i];
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        char *gid = sgrant_ids + i * SGRANT_ID;
        snprintf(gid, SGRANT_ID, "%s:%s", g->app, g->key);
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_GRANT;
        rp.id = gid;
        rp.app_id = (char *)g->app;
        rp.pattern = (char *)g->target;
        rp.access = (char *)sr_store_access_names(g->access);
        rp.grant_kind = (char *)g->kind;
        rc = put_registry(e, &b, &rp, NULL, res, g->line);
    }
    for (size_t i = 0; !rc && i < sh->n_retention; i++) {
        Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
        rp.kind = SUIRO__V1__REGISTRY_KIND__RG_RETENTION;
        rp.id = (char *)sh->retention[i].cls;
        rp.retention_days = sh->retention[i].days;
        rc = put_registry(e, &b, &rp, NULL, res, sh->retention[i].line);
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
        m.retention_class = (char *)(d->retention_class ? d->retention_class : "");
        m.type = vt[d->type];
        m.point_kind = pk[d->kind];
        m.has_min = d->has_min;
        m.min = d->min;
        m.has_max = d->has_max;
        m.max = d->max;
        rc = put_master(e, &b, &m);
    }
    size_t nremoved = 0;
    char removed[sizeof res->err.msg - 24];
    removed[0] = 0;
    if (!rc) rc = removals(e, sh, &b, res, &nremoved, removed, sizeof removed);
    if (!rc && b.below_floor) { /* the audit floor: the hook's two-person rule, or refused */
        if (hook && hook->below_floor) *hook->below_floor = 1;
        if (!hook || !hook->fn) {
            snprintf(res->err.msg, sizeof res->err.msg,
                     "line %zu: [retention] audit,%u is below the audit floor of %u days ([retention] "
                     "audit_floor_days): shortening it needs the two-person rule, so import this sheet through the "
                     "server's Admin API (suiro sheet import --url --token); nothing imported",
                     b.below_floor, b.below_days, b.audit_floor);
            rc = res->rc = SR_EINVAL;
        }
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
            rc = submit_hooked(e, hook, sl, b.n, res);
            sr_free(sl);
        }
    } else if (!rc) {
        res->rc = SR_OK;
        res->count = 0;
    }
    if (!rc && res->rc == SR_OK && nremoved) /* what was removed, for the operator */
        snprintf(res->err.msg, sizeof res->err.msg, "removed %zu: %s", nremoved, removed);
    if (rc && !res->rc) {
        res->rc = rc;
        if (!res->err.msg[0]) snprintf(res->err.msg, sizeof res->err.msg, "%s", sr_strerror(rc));
    }
    sr_free(grant_ids);
    sr_free(sgrant_ids);
    sr_free(b.lens);
    sr_buf_release(&b.bytes);
    return res->rc;
}

int sr_engine_import_sheet_as(sr_engine *e, const sr_sheet *sh, const sr_cmd_env *env, const sr_setup_hook *hook,
                              sr_result *res)
{
    pthread_mutex_lock(&setup_mu);
    int rc = import_locked(e, sh, env, NULL, 0, NULL, 0, hook, res);
    pthread_mutex_unlock(&setup_mu);
    return rc;
}

int sr_engine_import_sheet(sr_engine *e, const sr_sheet *sh, sr_result *res)
{
    sr_cmd_env env = {NULL, "sheet-import", SR_ACTOR_USER, NULL, NULL};
    return sr_engine_import_sheet_as(e, sh, &env, NULL, res);
}

/* ---- export ------------------------------------------------------------- */

/* Every listed entry, read through the typed readers of engine/records.h
 * (the one walker of the framed lists): one holder, so every entry stays
 * valid until it closes. */
typedef struct entry {
    sr_reg_entry reg;
    sr_master mas;
} entry;

typedef struct listed {
    sr_rec r;
    entry *v;
    size_t n, cap;
} listed;

/* Read every record of a list into u->v[*first .. *first + *count). */
static int list(sr_engine *e, const char *op, int registry, int kind, listed *u, size_t *first, size_t *count)
{
    *first = u->n;
    *count = 0;
    int rc = registry ? sr_list_registry(e, op, (sr_reg_kind)kind, &u->r)
                      : sr_list_masters(e, op, (sr_master_kind)kind, &u->r);
    while (!rc) {
        if (u->n == u->cap) {
            size_t cap = u->cap ? u->cap * 2 : 64;
            entry *v = sr_realloc(u->v, cap * sizeof *v);
            if (!v) return SR_ENOMEM;
            u->v = v;
            u->cap = cap;
        }
        entry *x = &u->v[u->n];
        int got = registry ? sr_rec_next_registry(&u->r, &x->reg) : sr_rec_next_master(&u->r, &x->mas);
        if (got <= 0) return got; /* 0 at the end, SR_ECORRUPT for a broken record or framing */
        u->n++;
        (*count)++;
    }
    return rc;
}

int sr_engine_export_sheet(sr_engine *e, const char *op, sr_buf *out)
{
    listed u = {SR_REC_INIT, NULL, 0, 0};
    sr_sheet sh;
    memset(&sh, 0, sizeof sh);
    size_t f[9], n[9], nsg = 0, ndg = 0;
    int rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_OPERATOR, &u, &f[0], &n[0]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_GATEWAY, &u, &f[1], &n[1]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_APP, &u, &f[2], &n[2]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_GRANT, &u, &f[3], &n[3]);
    for (int k = 1; k <= 4 && !rc; k++) rc = list(e, op, 0, k, &u, &f[3 + k], &n[3 + k]);
    if (!rc) rc = list(e, op, 1, SUIRO__V1__REGISTRY_KIND__RG_RETENTION, &u, &f[8], &n[8]);
    if (!rc && n[0] == 0) rc = SR_ENOTFOUND;
    sr_sheet_operator opr;
    sr_sheet_gateway *gws = NULL;
    sr_sheet_app *apps = NULL;
    sr_sheet_grant *grs = NULL;
    sr_sheet_store_grant *sgs = NULL;
    char *keys = NULL;
    sr_sheet_facility *fac = NULL;
    sr_sheet_equipment *eq = NULL;
    sr_sheet_device *dev = NULL;
    sr_sheet_datapoint *dps = NULL;
    sr_sheet_retention *rts = NULL;
    if (rc) goto done;
#define REG(i) (&u.v[f[i] + j].reg)
#define MAS(i) (&u.v[f[i] + j].mas)
    opr = (sr_sheet_operator){0, u.v[f[0]].reg.id, u.v[f[0]].reg.name};
    gws = sr_calloc(n[1] + 1, sizeof *gws);
    apps = sr_calloc(n[2] + 1, sizeof *apps);
    grs = sr_calloc(n[3] + 1, sizeof *grs);
    sgs = sr_calloc(n[3] + 1, sizeof *sgs);
    keys = sr_calloc(n[3] + 1, 16 + SR_STORE_PREFIX_MAX + 2);
    fac = sr_calloc(n[4] + 1, sizeof *fac);
    eq = sr_calloc(n[5] + 1, sizeof *eq);
    dev = sr_calloc(n[6] + 1, sizeof *dev);
    dps = sr_calloc(n[7] + 1, sizeof *dps);
    rts = sr_calloc(n[8] + 1, sizeof *rts);
    if (!gws || !apps || !grs || !sgs || !keys || !fac || !eq || !dev || !dps || !rts) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t j = 0; j < n[1]; j++) gws[j] = (sr_sheet_gateway){0, REG(1)->id, REG(1)->name, ""};
    for (size_t j = 0; j < n[2]; j++) apps[j] = (sr_sheet_app){0, REG(2)->id, REG(2)->name, "", REG(2)->url};
    for (size_t j = 0; j < n[3]; j++) {
        const char *a = REG(3)->access;
        if (REG(3)->grant_kind[0]) { /* a grant on documents or files: [storegrants] */
            char *key = keys + nsg * (16 + SR_STORE_PREFIX_MAX + 2);
            snprintf(key, 16 + SR_STORE_PREFIX_MAX + 2, "%s:%s", REG(3)->grant_kind, REG(3)->pattern);
            sgs[nsg++] = (sr_sheet_store_grant){0, REG(3)->app_id, REG(3)->grant_kind, REG(3)->pattern,
                                                sr_store_access_parse(a), key};
            continue;
        }
        sr_grant_access ga = !strcmp(a, "read") ? SR_GRANT_READ : !strcmp(a, "control") ? SR_GRANT_CONTROL : SR_GRANT_BOTH;
        size_t pl = strlen(REG(3)->pattern);
        grs[ndg++] = (sr_sheet_grant){0, REG(3)->app_id, REG(3)->pattern, pl && REG(3)->pattern[pl - 1] == '*', ga};
    }
    for (size_t j = 0; j < n[4]; j++) fac[j] = (sr_sheet_facility){0, MAS(4)->id, MAS(4)->name};
    for (size_t j = 0; j < n[5]; j++) eq[j] = (sr_sheet_equipment){0, MAS(5)->id, MAS(5)->parent_id, MAS(5)->name};
    for (size_t j = 0; j < n[6]; j++)
        dev[j] = (sr_sheet_device){0, MAS(6)->id, MAS(6)->parent_id, MAS(6)->gateway_id, MAS(6)->name};
    for (size_t j = 0; j < n[7]; j++) {
        const sr_master *m = MAS(7);
        sr_dp_type t = m->type == SR_VT_INTEGER  ? SR_DP_INTEGER
                       : m->type == SR_VT_BOOL   ? SR_DP_BOOLEAN
                       : m->type == SR_VT_STRING ? SR_DP_STRING
                                                 : SR_DP_NUMBER;
        sr_dp_kind k = m->point_kind == SUIRO__V1__POINT_KIND__PK_CONTROL ? SR_DP_CONTROL
                       : m->point_kind == SUIRO__V1__POINT_KIND__PK_BOTH  ? SR_DP_BOTH
                                                                          : SR_DP_MEASURE;
        dps[j] = (sr_sheet_datapoint){0, m->id, m->parent_id, m->name, m->unit, m->retention_class, t, k,
                                      m->has_min, m->has_max, m->min, m->max};
    }
    for (size_t j = 0; j < n[8]; j++) rts[j] = (sr_sheet_retention){0, REG(8)->id, REG(8)->retention_days};
#undef REG
#undef MAS
    sh.operators = &opr;
    sh.n_operators = 1;
    sh.gateways = gws;
    sh.n_gateways = n[1];
    sh.apps = apps;
    sh.n_apps = n[2];
    sh.grants = grs;
    sh.n_grants = ndg;
    sh.store_grants = sgs;
    sh.n_store_grants = nsg;
    sh.facilities = fac;
    sh.n_facilities = n[4];
    sh.equipment = eq;
    sh.n_equipment = n[5];
    sh.devices = dev;
    sh.n_devices = n[6];
    sh.datapoints = dps;
    sh.n_datapoints = n[7];
    sh.retention = rts;
    sh.n_retention = n[8];
    rc = sr_sheet_write(&sh, out);
done:
    sr_free(gws);
    sr_free(apps);
    sr_free(grs);
    sr_free(sgs);
    sr_free(keys);
    sr_free(fac);
    sr_free(eq);
    sr_free(dev);
    sr_free(dps);
    sr_free(rts);
    sr_rec_close(&u.r);
    sr_free(u.v);
    return rc;
}

/* ---- one change at a time: the admin API (docs/admin.md) ------------------ */

/* Is x (an entry of section sect) left out by the edit? */
static int dropped(const sr_setup_edit *ed, unsigned sect, const void *x)
{
    if (!ed->drop) return 0;
    if (sect == SR_SHEET_S_GRANTS) {
        const sr_sheet_grant *g = x;
        if (ed->drop == SR_SHEET_S_GRANTS)
            return !strcmp(g->app, ed->id) && (!ed->pattern || !strcmp(g->datapoint, ed->pattern));
        if (ed->nrows) return 0; /* an entry replaced by an added row keeps its grants */
        if (ed->drop == SR_SHEET_S_APPS) return !strcmp(g->app, ed->id); /* an app's grants go with it */
        if (ed->drop == SR_SHEET_S_DATAPOINTS) return !g->is_prefix && !strcmp(g->datapoint, ed->id);
        return 0;
    }
    if (sect == SR_SHEET_S_STORE_GRANTS) { /* an app's grants on documents and files go with it */
        const sr_sheet_store_grant *g = x;
        return !ed->nrows && ed->drop == SR_SHEET_S_APPS && !strcmp(g->app, ed->id);
    }
    return sect == ed->drop && !strcmp(*(const char *const *)((const char *)x + offsetof(sr_sheet_gateway, id)), ed->id);
}

/* Copy the n entries of size sz at src, less the dropped ones, into *dst
 * (allocated); *kept, and *ndrop counts the dropped ones of the edit's own
 * kind. */
static int filter(const sr_setup_edit *ed, unsigned sect, const void *src, size_t n, size_t sz, void **dst,
                  size_t *kept, size_t *ndrop)
{
    char *o = sr_calloc(n + 1, sz);
    if (!o) return SR_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *x = (const char *)src + i * sz;
        if (dropped(ed, sect, x)) {
            if (sect == ed->drop) (*ndrop)++;
            continue;
        }
        memcpy(o + m++ * sz, x, sz);
    }
    *dst = o;
    *kept = m;
    return SR_OK;
}

/* Line n (1-based) of text as [*s, *s + *len), and the [section] line above it. */
static void line_of(const sr_buf *text, size_t n, const char **s, size_t *len, char *sect, size_t sectcap)
{
    const char *p = (const char *)text->data, *end = p + text->len;
    sect[0] = 0;
    for (size_t k = 1; p < end; k++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (k == n) {
            *s = p;
            *len = l;
            return;
        }
        if (l > 2 && p[0] == '[') {
            const char *close = memchr(p, ']', l);
            if (close) snprintf(sect, sectcap, "%.*s", (int)(close - p - 1), p + 1);
        }
        p = nl ? nl + 1 : end;
    }
    *s = "";
    *len = 0;
}

int sr_engine_setup_edit(sr_engine *e, const sr_cmd_env *env, const sr_setup_edit *ed, sr_result *res,
                         char *field, size_t fieldcap, size_t *row)
{
    memset(res, 0, sizeof *res);
    field[0] = 0;
    *row = 0;
    sr_buf text;
    sr_buf_init(&text);
    sr_sheet *cur = NULL, *next = NULL;
    sr_sheet nw;
    memset(&nw, 0, sizeof nw);
    void *arr[8] = {0};
    pthread_mutex_lock(&setup_mu);
    int rc = sr_engine_export_sheet(e, env->op, &text);
    if (rc == SR_ENOTFOUND) {
        snprintf(res->err.msg, sizeof res->err.msg, "operator %s does not exist", env->op);
        res->rc = rc;
        goto done;
    }
    if (rc) goto done;
    /* the export is a valid sheet: anything else is an inconsistent index */
    rc = sr_sheet_parse(text.data, text.len, NULL, &cur);
    if (rc == SR_OK && cur->n_errors) rc = SR_ECORRUPT;
    if (rc) goto done;
    nw = *cur;
    nw.errors = NULL;
    nw.n_errors = 0;
    nw.arena = NULL;
    size_t ndrop = 0;
    if ((rc = filter(ed, SR_SHEET_S_GATEWAYS, cur->gateways, cur->n_gateways, sizeof *cur->gateways, &arr[0],
                     &nw.n_gateways, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_APPS, cur->apps, cur->n_apps, sizeof *cur->apps, &arr[1], &nw.n_apps, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_FACILITIES, cur->facilities, cur->n_facilities, sizeof *cur->facilities, &arr[2],
                     &nw.n_facilities, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_EQUIPMENT, cur->equipment, cur->n_equipment, sizeof *cur->equipment, &arr[3],
                     &nw.n_equipment, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_DEVICES, cur->devices, cur->n_devices, sizeof *cur->devices, &arr[4],
                     &nw.n_devices, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_DATAPOINTS, cur->datapoints, cur->n_datapoints, sizeof *cur->datapoints, &arr[5],
                     &nw.n_datapoints, &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_GRANTS, cur->grants, cur->n_grants, sizeof *cur->grants, &arr[6], &nw.n_grants,
                     &ndrop)) ||
        (rc = filter(ed, SR_SHEET_S_STORE_GRANTS, cur->store_grants, cur->n_store_grants, sizeof *cur->store_grants,
                     &arr[7], &nw.n_store_grants, &ndrop)))
        goto done;
    nw.gateways = arr[0], nw.apps = arr[1], nw.facilities = arr[2], nw.equipment = arr[3], nw.devices = arr[4];
    nw.datapoints = arr[5], nw.grants = arr[6], nw.store_grants = arr[7];
    if (ed->drop && ed->must_drop && !ndrop) {
        snprintf(res->err.msg, sizeof res->err.msg, "%s does not exist", ed->what ? ed->what : ed->id);
        res->rc = SR_ENOTFOUND;
        goto done;
    }
    if (ed->must_exist_app) {
        size_t i = 0;
        while (i < cur->n_apps && strcmp(cur->apps[i].id, ed->must_exist_app)) i++;
        if (i == cur->n_apps) {
            snprintf(res->err.msg, sizeof res->err.msg, "app %s does not exist", ed->must_exist_app);
            res->rc = SR_ENOTFOUND;
            goto done;
        }
    }
    text.len = 0;
    if ((rc = sr_sheet_write(&nw, &text))) goto done;
    /* the added rows: a section of their own at the end (a section may appear
     * more than once), so an error on a line from here on is theirs */
    size_t first_added = 1;
    for (size_t i = 0; i < text.len; i++) first_added += text.data[i] == '\n';
    if (ed->section && ed->ncols) {
        char sect[40];
        snprintf(sect, sizeof sect, "[%s]", ed->section);
        sr_csv_field f[16];
        size_t nc = ed->ncols < 16 ? ed->ncols : 16;
        f[0] = (sr_csv_field){sect, strlen(sect)};
        rc = sr_csv_write_record(&text, f, 1, "\n");
        for (size_t c = 0; c < nc; c++) f[c] = (sr_csv_field){ed->cols[c], strlen(ed->cols[c])};
        if (!rc) rc = sr_csv_write_record(&text, f, nc, "\n");
        for (size_t r = 0; !rc && r < ed->nrows; r++) {
            for (size_t c = 0; c < nc; c++) {
                const char *v = ed->vals[r * ed->ncols + c];
                f[c] = (sr_csv_field){v ? v : "", v ? strlen(v) : 0};
            }
            rc = sr_csv_write_record(&text, f, nc, "\n");
        }
        if (rc) goto done;
    }
    int prc = sr_sheet_parse(text.data, text.len, NULL, &next);
    if (!next) {
        rc = prc;
        goto done;
    }
    if (prc || next->n_errors) {
        const sr_sheet_error *er = next->n_errors ? &next->errors[0] : NULL;
        if (er && er->line >= first_added) { /* the added rows: the field at fault */
            snprintf(field, fieldcap, "%s", er->column);
            *row = er->line >= first_added + 2 ? er->line - first_added - 2 : 0;
            snprintf(res->err.msg, sizeof res->err.msg, "%s%s%s", er->column, er->column[0] ? ": " : "", er->msg);
            res->rc = SR_EINVAL;
        } else if (er) { /* another entry would point at nothing: name it */
            const char *ls;
            size_t ll;
            char sect[32];
            line_of(&text, er->line, &ls, &ll, sect, sizeof sect);
            snprintf(res->err.msg, sizeof res->err.msg, "%s: the %s entry \"%.*s\" refers to it (%s: %s)",
                     ed->what ? ed->what : ed->id ? ed->id : "the change", sect, (int)(ll > 120 ? 120 : ll), ls,
                     er->column, er->msg);
            res->rc = SR_ECONFLICT;
        } else {
            snprintf(res->err.msg, sizeof res->err.msg, "the changed sheet does not parse: %s", sr_strerror(prc));
            res->rc = SR_EINVAL;
        }
        goto done;
    }
    /* a new gateway or app needs a secret (the importer would refuse it by
     * line): name the field */
    if (ed->section && (!strcmp(ed->section, "gateways") || !strcmp(ed->section, "apps"))) {
        size_t sc = 0, ic = 0;
        while (sc < ed->ncols && strcmp(ed->cols[sc], "secret")) sc++;
        while (ic < ed->ncols && strcmp(ed->cols[ic], "id")) ic++;
        int apps = ed->section[0] == 'a';
        for (size_t r = 0; ic < ed->ncols && r < ed->nrows; r++) {
            const char *id = ed->vals[r * ed->ncols + ic], *sec = sc < ed->ncols ? ed->vals[r * ed->ncols + sc] : NULL;
            if (sec && sec[0]) continue;
            size_t i = 0, n = apps ? cur->n_apps : cur->n_gateways;
            while (i < n && strcmp(apps ? cur->apps[i].id : cur->gateways[i].id, id ? id : "")) i++;
            if (i < n) continue;
            snprintf(field, fieldcap, "secret");
            *row = r;
            snprintf(res->err.msg, sizeof res->err.msg, "secret: %s %s is new and needs a secret", apps ? "app" : "gateway",
                     id ? id : "");
            res->rc = SR_EINVAL;
            goto done;
        }
    }
    int vkind = !ed->section ? 0 : !strcmp(ed->section, "apps") ? SR_RG_APP : !strcmp(ed->section, "gateways") ? SR_RG_GATEWAY : 0;
    /* Import only the kinds the edit touches (the rest is the export, equal to
     * what is stored): the whole changed sheet is checked above, and the
     * importer removes what a listed kind leaves out, and an app's or a data
     * point's grants with it when [grants] is not listed. */
    static const struct {
        const char *name;
        unsigned bit;
    } kinds[] = {{"gateways", SR_SHEET_S_GATEWAYS},     {"apps", SR_SHEET_S_APPS},
                 {"facilities", SR_SHEET_S_FACILITIES}, {"equipment", SR_SHEET_S_EQUIPMENT},
                 {"devices", SR_SHEET_S_DEVICES},       {"datapoints", SR_SHEET_S_DATAPOINTS},
                 {"grants", SR_SHEET_S_GRANTS}};
    unsigned mask = ed->drop;
    for (size_t i = 0; ed->section && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(ed->section, kinds[i].name)) mask |= kinds[i].bit;
    sr_sheet view = *next;
    view.sections = mask | SR_SHEET_S_OPERATOR;
    if (!(mask & SR_SHEET_S_GATEWAYS)) view.n_gateways = 0;
    if (!(mask & SR_SHEET_S_APPS)) view.n_apps = 0;
    if (!(mask & SR_SHEET_S_FACILITIES)) view.n_facilities = 0;
    if (!(mask & SR_SHEET_S_EQUIPMENT)) view.n_equipment = 0;
    if (!(mask & SR_SHEET_S_DEVICES)) view.n_devices = 0;
    if (!(mask & SR_SHEET_S_DATAPOINTS)) view.n_datapoints = 0;
    if (!(mask & SR_SHEET_S_GRANTS)) view.n_grants = 0;
    view.n_retention = 0; /* no edit changes the periods (PUT .../retention/{class} does) */
    rc = import_locked(e, &view, env, vkind ? ed->vendor_id : NULL, vkind, ed->id,
                       vkind == SUIRO__V1__REGISTRY_KIND__RG_APP ? ed->require_signature : 0, &ed->hook, res);
done:
    pthread_mutex_unlock(&setup_mu);
    if (rc && !res->rc) {
        res->rc = rc;
        if (!res->err.msg[0]) snprintf(res->err.msg, sizeof res->err.msg, "%s", sr_strerror(rc));
    }
    for (size_t i = 0; i < sizeof arr / sizeof *arr; i++) sr_free(arr[i]);
    sr_sheet_free(cur);
    sr_sheet_free(next);
    sr_buf_release(&text);
    return res->rc;
}

int sr_engine_registry_change(sr_engine *e, const sr_cmd_env *env, sr_reg_kind kind, const char *id,
                              const sr_reg_change *ch, sr_result *res)
{
    memset(res, 0, sizeof *res);
    sr_rec cur = SR_REC_INIT;
    sr_reg_entry re;
    sr_buf evb, hash;
    sr_buf_init(&evb);
    sr_buf_init(&hash);
    pthread_mutex_lock(&setup_mu);
    int rc = sr_read_registry(e, env->op, kind, id, &cur, &re);
    if (rc == SR_ENOTFOUND) {
        snprintf(res->err.msg, sizeof res->err.msg, "%s %s of operator %s does not exist",
                 kind == SR_RG_APP ? "app" : "gateway", id, env->op);
        res->rc = rc;
        goto done;
    }
    if (rc) goto done;
    if (ch->cert_pem) {
        if (!sr_cert_pem_ok(ch->cert_pem, strlen(ch->cert_pem))) {
            snprintf(res->err.msg, sizeof res->err.msg, "certificate: not a PEM X.509 certificate (at most 64 KiB)");
            res->rc = SR_EINVAL;
            goto done;
        }
        re.cert_pem = ch->cert_pem;
    }
    re.secret_hash.len = 0; /* empty: the writer keeps the stored hash */
    if (ch->secret) {
        if ((rc = sr_secret_hash(ch->secret, &hash))) goto done;
        re.secret_hash = (sr_slice){hash.data, hash.len};
    }
    if (!ch->cert_pem && !ch->secret && (ch->disabled < 0 || !re.disabled == !ch->disabled)) {
        res->rc = SR_OK; /* nothing changes: nothing stored (disabling a disabled one) */
        goto done;
    }
    if (ch->disabled >= 0) re.disabled = ch->disabled;
    if ((rc = sr_cmd_registry_put(env, &re, &evb))) goto done;
    sr_slice sl = {evb.data, evb.len};
    rc = submit_hooked(e, &ch->hook, &sl, 1, res);
done:
    pthread_mutex_unlock(&setup_mu);
    if (rc && !res->rc) {
        res->rc = rc;
        if (!res->err.msg[0]) snprintf(res->err.msg, sizeof res->err.msg, "%s", sr_strerror(rc));
    }
    sr_rec_close(&cur);
    sr_buf_release(&evb);
    sr_buf_release(&hash);
    return res->rc;
}

int sr_cert_pem_ok(const char *pem, size_t len)
{
    if (!pem || !len || len >= 65536) return 0;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int ok = x != NULL;
    X509_free(x);
    BIO_free(bio);
    return ok;
}
