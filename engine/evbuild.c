/* engine/evbuild.c -- see evbuild.h. */
#include "engine/evbuild.h"

#include "codecs/base/sr_decimal.h"
#include "engine/secret.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sr_ev_pack(Suiro__V1__Event *ev, const char *op, const char *actor, Suiro__V1__ActorKind kind,
               const char *message_id, sr_buf *out)
{
    ev->operator_id = (char *)op;
    ev->actor = (char *)actor;
    ev->actor_kind = kind;
    ev->message_id = (char *)(message_id ? message_id : "");
    size_t n = suiro__v1__event__get_packed_size(ev);
    int rc = sr_buf_reserve(out, n);
    if (rc) return rc;
    suiro__v1__event__pack(ev, out->data + out->len);
    out->len += n;
    return SR_OK;
}

/* 10^0 .. 10^22: doubles exactly, so what pow(10, k) gives (sr_pow10_abs;
 * decimal_scale tries 10^0..10^6) */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* 1 and *m when x is the mantissa m at scale k (0..6), m / 10^k bit for
 * bit, as the iterator decodes it: the base layer's one definition
 * (codecs/base/sr_decimal.h), so -0.0, whose mantissa 0 would come back
 * +0.0, NaN and the infinities are none (a raw double keeps them). */
static int decimal_at(double x, int k, int64_t *m)
{
    return sr_decimal_is(x, (unsigned)k, (UINT64_C(1) << 53) - 1, m);
}

/* Smallest k in 0..6 with every value exactly m / 10^k; -1 if none. */
static int decimal_scale(const sr_sample *s, size_t n, int64_t *mant)
{
    for (int k = 0; k <= SR_DEC_MAX_SCALE; k++) {
        size_t i = 0;
        while (i < n && decimal_at(s[i].v.f, k, &mant[i])) i++;
        if (i == n) return k;
    }
    return -1;
}

static int cmp_ts(const void *a, const void *b)
{
    int64_t x = ((const sr_sample *)a)->ts, y = ((const sr_sample *)b)->ts;
    return x < y ? -1 : x > y;
}

/* ---- the measurements event, written straight to the wire --------------
 * The bytes protobuf-c would write for the same Event (fields in number
 * order, proto3 zero values left out, packed repeated fields), without
 * building the message structs and walking them twice through its generic
 * packer: this runs once per GW-IF message on the loop thread.
 * tests/engine/test_evbuild.c checks the output decodes to the input and
 * re-packs byte for byte. */

static uint64_t zz64(int64_t v) { return sr_zz_enc((uint64_t)v); }   /* sint64 */
static uint64_t zz32(int32_t v) { return sr_zz_enc((uint64_t)(int64_t)v); } /* sint32: the same code */

typedef struct pvenc {
    uint32_t point;
    int64_t t0;
    size_t n;
    const int64_t *dod;      /* n - 1 */
    const int64_t *vals;     /* dmant or i (delta-encoded), or the doubles' bits */
    const sr_sample *s;      /* sorted samples (bools, strings) */
    const uint32_t *q;       /* NULL: all good */
    int field;               /* 4 f, 6 dmant, 7 i, 8 b, 9 s */
    int32_t scale;
    size_t dod_b, val_b, q_b, size;
} pvenc;

static size_t str_len(const sr_sample *x) { return x->v.str.s ? strlen(x->v.str.s) : 0; }

static void pv_size(pvenc *v)
{
    size_t z = 0;
    if (v->point) z += 1 + sr_varint_len(v->point);
    if (v->t0) z += 1 + sr_varint_len((uint64_t)v->t0);
    v->dod_b = 0;
    for (size_t i = 0; i + 1 < v->n; i++) v->dod_b += sr_varint_len(zz64(v->dod[i]));
    if (v->dod_b) z += 1 + sr_varint_len(v->dod_b) + v->dod_b;
    v->val_b = 0;
    switch (v->field) {
    case 4: v->val_b = 8 * v->n; break;
    case 6:
    case 7:
        for (size_t i = 0; i < v->n; i++) v->val_b += sr_varint_len(zz64(v->vals[i]));
        break;
    case 8: v->val_b = v->n; break;
    default: break;
    }
    if (v->field == 9) {
        for (size_t i = 0; i < v->n; i++) {
            size_t l = str_len(&v->s[i]);
            z += 1 + sr_varint_len(l) + l;
        }
    } else if (v->n)
        z += 1 + sr_varint_len(v->val_b) + v->val_b;
    if (v->scale) z += 1 + sr_varint_len(zz32(v->scale));
    v->q_b = 0;
    if (v->q) {
        for (size_t i = 0; i < v->n; i++) v->q_b += sr_varint_len(v->q[i]);
        z += 1 + sr_varint_len(v->q_b) + v->q_b;
    }
    v->size = z;
}

static uint8_t *put_tag(uint8_t *p, unsigned field, unsigned wt) { return sr_varint_put(p, (uint64_t)(field << 3 | wt)); }

static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *d, size_t n)
{
    p = put_tag(p, field, 2);
    p = sr_varint_put(p, n);
    memcpy(p, d, n);
    return p + n;
}

static uint8_t *pv_write(uint8_t *p, const pvenc *v)
{
    if (v->point) p = sr_varint_put(put_tag(p, 1, 0), v->point);
    if (v->t0) p = sr_varint_put(put_tag(p, 2, 0), (uint64_t)v->t0);
    if (v->dod_b) {
        p = sr_varint_put(put_tag(p, 3, 2), v->dod_b);
        for (size_t i = 0; i + 1 < v->n; i++) p = sr_varint_put(p, zz64(v->dod[i]));
    }
    if (v->field == 4 && v->n) {
        p = sr_varint_put(put_tag(p, 4, 2), v->val_b);
        for (size_t i = 0; i < v->n; i++, p += 8) sr_put_le64(p, (uint64_t)v->vals[i]); /* a double's bits */
    }
    if (v->scale) p = sr_varint_put(put_tag(p, 5, 0), zz32(v->scale));
    if ((v->field == 6 || v->field == 7) && v->n) {
        p = sr_varint_put(put_tag(p, (unsigned)v->field, 2), v->val_b);
        for (size_t i = 0; i < v->n; i++) p = sr_varint_put(p, zz64(v->vals[i]));
    }
    if (v->field == 8 && v->n) {
        p = sr_varint_put(put_tag(p, 8, 2), v->val_b);
        for (size_t i = 0; i < v->n; i++) *p++ = v->s[i].v.b ? 1 : 0;
    }
    if (v->field == 9)
        for (size_t i = 0; i < v->n; i++) p = put_bytes(p, 9, v->s[i].v.str.s ? v->s[i].v.str.s : "", str_len(&v->s[i]));
    if (v->q) {
        p = sr_varint_put(put_tag(p, 10, 2), v->q_b);
        for (size_t i = 0; i < v->n; i++) p = sr_varint_put(p, v->q[i]);
    }
    return p;
}

/* ---- the snapshot part (codecs/events.proto, Snapshot) -------------------
 * The entries with one value each at one shared time T (T: the first
 * one-value entry's), when there are at least two: a message of one point x
 * one value keeps the PointValues form. The snapshot is applied before the
 * PointValues, and within it the entries are grouped by kind (sr_meas_next),
 * so an entry whose point has an earlier entry with a value at T stays a
 * PointValues: the later value of a point and time wins, in input order, as
 * in the PointValues form. */

static int has_ts(const sr_pv_in *in, int64_t t)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->s[i].ts == t) return 1;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* in[k] = 1 for the snapshot's entries; their number (0: no snapshot). */
static size_t snap_pick(const sr_pv_in *pts, size_t npts, int64_t *T, uint8_t *in)
{
    size_t k0 = 0, c = 0;
    memset(in, 0, npts);
    while (k0 < npts && (pts[k0].n != 1 || pts[k0].type < SR_VT_NUMBER || pts[k0].type > SR_VT_STRING)) k0++;
    if (k0 == npts) return 0;
    *T = pts[k0].s[0].ts;
    int increasing = 1; /* point numbers strictly increasing: no point twice (a gateway's usual order) */
    for (size_t k = 0; k < npts; k++) {
        in[k] = pts[k].n == 1 && pts[k].s[0].ts == *T && pts[k].type >= SR_VT_NUMBER && pts[k].type <= SR_VT_STRING;
        c += in[k];
        if (k && pts[k].point <= pts[k - 1].point) increasing = 0;
    }
    if (c >= 2 && !increasing) { /* a point may come twice: by point, then input order */
        uint64_t *ord = sr_malloc(npts * sizeof *ord);
        if (!ord) c = 0; /* all PointValues: correct, only larger */
        for (size_t k = 0; ord && k < npts; k++) ord[k] = (uint64_t)pts[k].point << 32 | (uint64_t)k;
        if (ord) qsort(ord, npts, sizeof *ord, cmp_u64);
        for (size_t a = 0; ord && a < npts;) {
            size_t b = a;
            int seen = 0; /* an earlier entry of this point has a value at T */
            for (; b < npts && ord[b] >> 32 == ord[a] >> 32; b++) {
                size_t k = (size_t)(ord[b] & 0xffffffffu);
                if (in[k] && seen) {
                    in[k] = 0;
                    c--;
                }
                if (has_ts(&pts[k], *T)) seen = 1;
            }
            a = b;
        }
        sr_free(ord);
    }
    if (c < 2) {
        memset(in, 0, npts);
        return 0;
    }
    return c;
}

typedef struct snapenc {
    int64_t ts;
    size_t n, nd, nf, ni, nb, ns;
    size_t *ord;       /* the entries' indexes in pts, grouped: dmant, f, i, b, s */
    int64_t *mant;     /* by index in pts: a number's mantissa at scale -K */
    int8_t *kind;      /* by index in pts: 0 dmant, 1 f, 2 i, 3 b, 4 s */
    int32_t scale;
    int anybad;        /* a quality not GOOD */
    size_t dp_b, d_b, i_b, q_b, size;
} snapenc;

static void snap_build(snapenc *sn, const sr_pv_in *pts, size_t npts, const uint8_t *in)
{
    int K = 0;
    size_t cnt[5] = {0};
    for (size_t k = 0; k < npts; k++) {
        if (!in[k]) continue;
        const sr_sample *x = &pts[k].s[0];
        int8_t kd = 0;
        switch (pts[k].type) {
        case SR_VT_NUMBER: {
            int64_t m;
            int dk = decimal_scale(x, 1, &m);
            if (dk < 0) kd = 1;
            else if (dk > K) K = dk;
            break;
        }
        case SR_VT_INTEGER: kd = 2; break;
        case SR_VT_BOOL: kd = 3; break;
        default: kd = 4; break;
        }
        sn->kind[k] = kd;
        if (x->quality) sn->anybad = 1;
    }
    for (size_t k = 0; k < npts; k++) { /* the mantissas at the one scale: exact, or a raw double */
        if (!in[k]) continue;
        if (sn->kind[k] == 0 && !decimal_at(pts[k].s[0].v.f, K, &sn->mant[k])) sn->kind[k] = 1;
        cnt[sn->kind[k]]++;
    }
    sn->nd = cnt[0], sn->nf = cnt[1], sn->ni = cnt[2], sn->nb = cnt[3], sn->ns = cnt[4];
    sn->scale = sn->nd ? -K : 0;
    size_t at[5] = {0, cnt[0], cnt[0] + cnt[1], cnt[0] + cnt[1] + cnt[2], cnt[0] + cnt[1] + cnt[2] + cnt[3]};
    for (size_t k = 0; k < npts; k++)
        if (in[k]) sn->ord[at[sn->kind[k]]++] = k;
    /* sizes */
    size_t z = 0;
    if (sn->ts) z += 1 + sr_varint_len((uint64_t)sn->ts);
    sn->dp_b = 0;
    uint32_t prev = 0;
    for (size_t j = 0; j < sn->n; j++) {
        uint32_t pt = pts[sn->ord[j]].point;
        sn->dp_b += sr_varint_len(zz64((int64_t)pt - (int64_t)prev));
        prev = pt;
    }
    z += 1 + sr_varint_len(sn->dp_b) + sn->dp_b;
    if (sn->scale) z += 1 + sr_varint_len(zz32(sn->scale));
    sn->d_b = sn->i_b = 0;
    for (size_t j = 0; j < sn->nd; j++) sn->d_b += sr_varint_len(zz64(sn->mant[sn->ord[j]]));
    for (size_t j = sn->nd + sn->nf; j < sn->nd + sn->nf + sn->ni; j++)
        sn->i_b += sr_varint_len(zz64(pts[sn->ord[j]].s[0].v.i));
    if (sn->nd) z += 1 + sr_varint_len(sn->d_b) + sn->d_b;
    if (sn->nf) z += 1 + sr_varint_len(8 * sn->nf) + 8 * sn->nf;
    if (sn->ni) z += 1 + sr_varint_len(sn->i_b) + sn->i_b;
    if (sn->nb) z += 1 + sr_varint_len(sn->nb) + sn->nb;
    for (size_t j = sn->n - sn->ns; j < sn->n; j++) {
        size_t l = str_len(&pts[sn->ord[j]].s[0]);
        z += 1 + sr_varint_len(l) + l;
    }
    sn->q_b = 0;
    if (sn->anybad) {
        for (size_t j = 0; j < sn->n; j++) sn->q_b += sr_varint_len(pts[sn->ord[j]].s[0].quality);
        z += 1 + sr_varint_len(sn->q_b) + sn->q_b;
    }
    sn->size = z;
}

static uint8_t *snap_write(uint8_t *p, const snapenc *sn, const sr_pv_in *pts)
{
    if (sn->ts) p = sr_varint_put(put_tag(p, 1, 0), (uint64_t)sn->ts);
    p = sr_varint_put(put_tag(p, 2, 2), sn->dp_b);
    uint32_t prev = 0;
    for (size_t j = 0; j < sn->n; j++) {
        uint32_t pt = pts[sn->ord[j]].point;
        p = sr_varint_put(p, zz64((int64_t)pt - (int64_t)prev));
        prev = pt;
    }
    if (sn->scale) p = sr_varint_put(put_tag(p, 3, 0), zz32(sn->scale));
    size_t j = 0;
    if (sn->nd) {
        p = sr_varint_put(put_tag(p, 4, 2), sn->d_b);
        for (; j < sn->nd; j++) p = sr_varint_put(p, zz64(sn->mant[sn->ord[j]]));
    }
    if (sn->nf) {
        p = sr_varint_put(put_tag(p, 5, 2), 8 * sn->nf);
        for (; j < sn->nd + sn->nf; j++) {
            uint64_t x;
            memcpy(&x, &pts[sn->ord[j]].s[0].v.f, sizeof x);
            sr_put_le64(p, x);
            p += 8;
        }
    }
    if (sn->ni) {
        p = sr_varint_put(put_tag(p, 6, 2), sn->i_b);
        for (; j < sn->nd + sn->nf + sn->ni; j++) p = sr_varint_put(p, zz64(pts[sn->ord[j]].s[0].v.i));
    }
    if (sn->nb) {
        p = sr_varint_put(put_tag(p, 7, 2), sn->nb);
        for (; j < sn->n - sn->ns; j++) *p++ = pts[sn->ord[j]].s[0].v.b ? 1 : 0;
    }
    for (; j < sn->n; j++) {
        const sr_sample *x = &pts[sn->ord[j]].s[0];
        p = put_bytes(p, 8, x->v.str.s ? x->v.str.s : "", str_len(x));
    }
    if (sn->anybad) {
        p = sr_varint_put(put_tag(p, 9, 2), sn->q_b);
        for (j = 0; j < sn->n; j++) p = sr_varint_put(p, pts[sn->ord[j]].s[0].quality);
    }
    return p;
}

int sr_ev_measurements(const char *op, const char *actor, sr_actor_kind kind, const char *message_id,
                       const sr_pv_in *pts, size_t npts, sr_buf *out)
{
    return sr_ev_monitor_measurements(op, actor, kind, message_id, NULL, pts, npts, out);
}

int sr_ev_monitor_measurements(const char *op, const char *actor, sr_actor_kind kind, const char *message_id,
                               const char *monitor_id, const sr_pv_in *pts, size_t npts, sr_buf *out)
{
    return sr_ev_signed_measurements(op, actor, kind, message_id, monitor_id, SR_SIG_NONE, pts, npts, out);
}

int sr_ev_signed_measurements(const char *op, const char *actor, sr_actor_kind kind, const char *message_id,
                              const char *monitor_id, int sig_state, const sr_pv_in *pts, size_t npts, sr_buf *out)
{
    int rc = SR_OK;
    pvenc *pv = NULL;
    uint8_t *scratch = NULL;
    /* the snapshot's block: per entry its place, mantissa, kind, flag */
    uint8_t *sscratch = sr_malloc(npts ? npts * (sizeof(size_t) + sizeof(int64_t) + 2) : 1);
    if (!sscratch) {
        rc = SR_ENOMEM;
        goto done;
    }
    snapenc sn = {.ord = (size_t *)sscratch};
    sn.mant = (int64_t *)(sscratch + npts * sizeof(size_t));
    sn.kind = (int8_t *)(sscratch + npts * (sizeof(size_t) + sizeof(int64_t)));
    uint8_t *in_snap = (uint8_t *)sn.kind + npts;
    sn.n = snap_pick(pts, npts, &sn.ts, in_snap);
    /* the PointValues' encoders, and one scratch block for their sorted
     * samples, dod, values, qualities (none when all is the snapshot) */
    size_t total = 0;
    for (size_t k = 0; k < npts; k++) total += in_snap[k] ? 0 : pts[k].n;
    pv = sr_calloc(npts > sn.n ? npts : 1, sizeof *pv);
    size_t each = sizeof(sr_sample) + 2 * sizeof(int64_t) + sizeof(uint32_t);
    scratch = sr_malloc(total ? total * each : 1);
    if (!pv || !scratch) {
        rc = SR_ENOMEM;
        goto done;
    }
    sr_sample *s_all = (sr_sample *)scratch;
    int64_t *dod_all = (int64_t *)(scratch + total * sizeof(sr_sample));
    int64_t *val_all = dod_all + total;
    uint32_t *q_all = (uint32_t *)(val_all + total);
    size_t off = 0, msize = 0;
    for (size_t k = 0; k < npts; k++) {
        const sr_pv_in *in = &pts[k];
        pvenc *v = &pv[k];
        if (in_snap[k]) continue;
        v->point = in->point;
        v->n = in->n;
        if (!in->n) {
            pv_size(v);
            msize += 1 + sr_varint_len(v->size) + v->size;
            continue;
        }
        sr_sample *s = s_all + off;
        int64_t *dod = dod_all + off, *vals = val_all + off;
        uint32_t *q = q_all + off;
        off += in->n;
        /* stable sort by time (later entries with equal ts keep their order) */
        memcpy(s, in->s, in->n * sizeof *s);
        int sorted = 1;
        for (size_t i = 1; i < in->n; i++)
            if (s[i].ts < s[i - 1].ts) sorted = 0;
        if (!sorted) {
            /* insertion sort keeps equal timestamps in input order (later wins at apply) */
            for (size_t i = 1; i < in->n; i++) {
                sr_sample x = s[i];
                size_t j = i;
                while (j > 0 && cmp_ts(&s[j - 1], &x) > 0) {
                    s[j] = s[j - 1];
                    j--;
                }
                s[j] = x;
            }
        }
        v->s = s;
        v->t0 = s[0].ts;
        int64_t prev_delta = 0;
        for (size_t i = 1; i < in->n; i++) {
            int64_t delta = (int64_t)((uint64_t)s[i].ts - (uint64_t)s[i - 1].ts);
            dod[i - 1] = (int64_t)((uint64_t)delta - (uint64_t)prev_delta);
            prev_delta = delta;
        }
        v->dod = dod;
        int allgood = 1;
        for (size_t i = 0; i < in->n; i++) {
            q[i] = s[i].quality;
            if (q[i]) allgood = 0;
        }
        v->q = allgood ? NULL : q;
        switch (in->type) {
        case SR_VT_NUMBER: {
            int k2 = decimal_scale(s, in->n, vals);
            if (k2 >= 0) {
                for (size_t i = in->n; i-- > 1;) vals[i] = (int64_t)((uint64_t)vals[i] - (uint64_t)vals[i - 1]);
                v->scale = -k2;
                v->field = 6;
            } else {
                for (size_t i = 0; i < in->n; i++) memcpy(&vals[i], &s[i].v.f, sizeof vals[i]);
                v->field = 4;
            }
            break;
        }
        case SR_VT_INTEGER:
            for (size_t i = 0; i < in->n; i++) vals[i] = (int64_t)((uint64_t)s[i].v.i - (i ? (uint64_t)s[i - 1].v.i : 0));
            v->field = 7;
            break;
        case SR_VT_BOOL: v->field = 8; break;
        case SR_VT_STRING: v->field = 9; break; /* NUL-terminated by contract */
        default: rc = SR_EINVAL; goto done;
        }
        v->vals = vals;
        pv_size(v);
        msize += 1 + sr_varint_len(v->size) + v->size;
    }
    if (sn.n) {
        snap_build(&sn, pts, npts, in_snap);
        msize += 1 + sr_varint_len(sn.size) + sn.size;
    }
    size_t monl = monitor_id ? strlen(monitor_id) : 0;
    if (monl) msize += 1 + sr_varint_len(monl) + monl; /* Measurements.monitor_id = 3 */
    if (sig_state) msize += 1 + sr_varint_len((uint64_t)sig_state); /* Measurements.sig_state = 4, last */
    const char *mid = message_id ? message_id : "";
    size_t ol = op ? strlen(op) : 0, al = actor ? strlen(actor) : 0, ml = strlen(mid);
    size_t esize = (ol ? 1 + sr_varint_len(ol) + ol : 0) + (al ? 1 + sr_varint_len(al) + al : 0) + (kind ? 1 + sr_varint_len((uint64_t)kind) : 0) +
                   (ml ? 1 + sr_varint_len(ml) + ml : 0) + 2 + sr_varint_len(msize) + msize;
    if ((rc = sr_buf_reserve(out, esize))) goto done;
    uint8_t *p = out->data + out->len, *start = p;
    if (ol) p = put_bytes(p, 3, op, ol);
    if (al) p = put_bytes(p, 4, actor, al);
    if (kind) p = sr_varint_put(put_tag(p, 5, 0), (uint64_t)kind);
    if (ml) p = put_bytes(p, 7, mid, ml);
    p = sr_varint_put(put_tag(p, 16, 2), msize);
    for (size_t k = 0; k < npts; k++) {
        if (in_snap[k]) continue;
        p = sr_varint_put(put_tag(p, 1, 2), pv[k].size);
        p = pv_write(p, &pv[k]);
    }
    if (sn.n) { /* Measurements.snapshot = 2, after the points (protobuf-c's order) */
        p = sr_varint_put(put_tag(p, 2, 2), sn.size);
        p = snap_write(p, &sn, pts);
    }
    if (monl) p = put_bytes(p, 3, monitor_id, monl);
    if (sig_state) p = sr_varint_put(put_tag(p, 4, 0), (uint64_t)sig_state);
    SR_VERIFY((size_t)(p - start) == esize);
    out->len += esize;
done:
    sr_free(sscratch);
    sr_free(scratch);
    sr_free(pv);
    return rc;
}

/* ---- decoding PointValues ----------------------------------------------- */

/* Number of values in pv, its type, or -1 if inconsistent. */
long sr_pv_count(const Suiro__V1__PointValues *pv, sr_vtype *t)
{
    long n = -1;
    int kinds = 0;
    if (pv->n_f) { n = (long)pv->n_f; *t = SR_VT_NUMBER; kinds++; }
    if (pv->n_dmant) { n = (long)pv->n_dmant; *t = SR_VT_NUMBER; kinds++; }
    if (pv->n_i) { n = (long)pv->n_i; *t = SR_VT_INTEGER; kinds++; }
    if (pv->n_b) { n = (long)pv->n_b; *t = SR_VT_BOOL; kinds++; }
    if (pv->n_s) { n = (long)pv->n_s; *t = SR_VT_STRING; kinds++; }
    if (kinds != 1) return -1;
    if (pv->n_dod != (size_t)n - 1) return -1;
    if (pv->n_quality && pv->n_quality != (size_t)n) return -1;
    return n;
}

void sr_pv_iter_init(sr_pv_iter *it, const Suiro__V1__PointValues *pv, size_t n)
{
    memset(it, 0, sizeof *it);
    it->pv = pv;
    it->n = n;
    it->ts = pv->t0;
    it->pow10 = sr_pow10_abs(pv->scale); /* divisor when scale < 0, as the encoder */
}

/* 10^|scale|: a table for the exact powers (10^0..10^22 are doubles
 * exactly, so pow() gives these same values), pow() beyond (the encoder's
 * scales are far below 22; a replayed odd one still decodes as before). */
double sr_pow10_abs(int32_t scale)
{
    uint32_t a = scale < 0 ? 0u - (uint32_t)scale : (uint32_t)scale; /* INT32_MIN too (fuzz_event) */
    return a < 23 ? POW10[a] : pow(10.0, (double)a);
}

/* ---- iterating a Measurements: its snapshot's entries, then its PointValues */

void sr_meas_iter_init(sr_meas_iter *mi, const Suiro__V1__Measurements *m)
{
    memset(mi, 0, sizeof *mi);
    mi->m = m;
    const Suiro__V1__Snapshot *sn = m ? m->snapshot : NULL;
    if (!sn) return;
    size_t nv = sn->n_dmant + sn->n_f + sn->n_i + sn->n_b + sn->n_s;
    if (!sn->n_dpoint && !nv && !sn->n_quality) return; /* an empty snapshot: no entries */
    mi->snap_ok = nv == sn->n_dpoint && (!sn->n_quality || sn->n_quality == sn->n_dpoint);
    mi->nsnap = mi->snap_ok ? sn->n_dpoint : 1;
    mi->pow10 = sr_pow10_abs(sn->scale); /* divisor when scale < 0, as the encoder */
}

int sr_meas_next(sr_meas_iter *mi, sr_mpoint *p)
{
    const Suiro__V1__Measurements *m = mi->m;
    if (!m) return 0;
    if (mi->j < mi->nsnap) {
        const Suiro__V1__Snapshot *sn = m->snapshot;
        size_t j = mi->j++;
        p->in_snapshot = 1;
        mi->point += sn->n_dpoint ? (uint64_t)sn->dpoint[j] : 0;
        if (!mi->snap_ok || mi->point > UINT32_MAX) { /* refused whole by the check, skipped by the apply */
            p->point = mi->point > UINT32_MAX ? 0 : (uint32_t)mi->point;
            p->n = -1;
            mi->j = mi->nsnap;
            return 1;
        }
        p->point = (uint32_t)mi->point;
        p->n = 1;
        sr_pv_iter *it = &p->it;
        it->pv = NULL;
        it->i = 0;
        it->n = 1;
        sr_sample *s = &it->one;
        s->ts = sn->ts;
        s->quality = sn->n_quality ? (uint8_t)(sn->quality[j] & 3) : SR_Q_GOOD;
        size_t x = j;
        if (x < sn->n_dmant) {
            p->type = SR_VT_NUMBER;
            s->v.f = sn->scale < 0 ? (double)sn->dmant[x] / mi->pow10 : (double)sn->dmant[x] * mi->pow10;
        } else if ((x -= sn->n_dmant) < sn->n_f) {
            p->type = SR_VT_NUMBER;
            s->v.f = sn->f[x];
        } else if ((x -= sn->n_f) < sn->n_i) {
            p->type = SR_VT_INTEGER;
            s->v.i = sn->i[x];
        } else if ((x -= sn->n_i) < sn->n_b) {
            p->type = SR_VT_BOOL;
            s->v.b = sn->b[x] ? 1 : 0;
        } else {
            x -= sn->n_b;
            p->type = SR_VT_STRING;
            s->v.str.s = sn->s[x];
            s->v.str.slen = (uint32_t)strlen(sn->s[x]);
        }
        return 1;
    }
    if (mi->k < m->n_points) {
        const Suiro__V1__PointValues *pv = m->points[mi->k++];
        p->point = pv->point;
        p->in_snapshot = 0;
        p->type = SR_VT_NUMBER;
        p->n = sr_pv_count(pv, &p->type);
        if (p->n >= 0) sr_pv_iter_init(&p->it, pv, (size_t)p->n);
        return 1;
    }
    return 0;
}



/* ---- the typed command builders of engine/records.h ------------------------------ */

/* protobuf-c takes char * for strings it only reads */
#define S(x) ((char *)((x) ? (x) : ""))

static int env_pack(Suiro__V1__Event *ev, const sr_cmd_env *env, sr_buf *out)
{
    ev->source = S(env->source);
    return sr_ev_pack(ev, S(env->op), S(env->actor), (Suiro__V1__ActorKind)env->kind, env->message_id, out);
}

int sr_cmd_session(const sr_cmd_env *env, sr_actor_kind kind, const char *id, sr_session_state state,
                   const char *protocol, const char *reason, sr_buf *out)
{
    Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
    se.kind = (Suiro__V1__ActorKind)kind;
    se.id = S(id);
    se.state = (Suiro__V1__SessionState)state;
    se.protocol = S(protocol);
    se.reason = S(reason);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_SESSION;
    ev.session = &se;
    return env_pack(&ev, env, out);
}

int sr_cmd_user_sessions_revoke(const sr_cmd_env *env, const char *user, const char *reason, sr_buf *out)
{
    Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
    se.kind = SUIRO__V1__ACTOR_KIND__ACTOR_USER;
    se.id = S(user);
    se.state = SUIRO__V1__SESSION_STATE__SS_DISCONNECTED;
    se.protocol = (char *)"http";
    se.reason = S(reason);
    se.revoke_all = 1;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_SESSION;
    ev.session = &se;
    return env_pack(&ev, env, out);
}

int sr_cmd_token_session(const sr_cmd_env *env, const uint8_t token_hash[32], int64_t expires_ms, sr_session_state state,
                         const char *reason, sr_buf *out)
{
    Suiro__V1__SessionEvent se = SUIRO__V1__SESSION_EVENT__INIT;
    se.kind = env->kind == SR_ACTOR_USER ? SUIRO__V1__ACTOR_KIND__ACTOR_USER : SUIRO__V1__ACTOR_KIND__ACTOR_APP;
    se.id = S(env->actor);
    se.state = (Suiro__V1__SessionState)state;
    se.protocol = (char *)"http";
    se.reason = S(reason);
    se.token_hash.data = (uint8_t *)token_hash;
    se.token_hash.len = 32;
    se.expires_ms = expires_ms;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_SESSION;
    ev.session = &se;
    return env_pack(&ev, env, out);
}

int sr_cmd_auth(const sr_cmd_env *env, sr_actor_kind kind, const char *principal, int success, const char *method,
                const char *reason, sr_buf *out)
{
    Suiro__V1__AuthEvent ae = SUIRO__V1__AUTH_EVENT__INIT;
    ae.kind = (Suiro__V1__ActorKind)kind;
    ae.principal = S(principal);
    ae.success = success ? 1 : 0;
    ae.method = S(method);
    ae.reason = S(reason);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_AUTH;
    ev.auth = &ae;
    return env_pack(&ev, env, out);
}

int sr_cmd_admin_op(const sr_cmd_env *env, const sr_admin_op *a, sr_buf *out)
{
    Suiro__V1__AdminEvent ae = SUIRO__V1__ADMIN_EVENT__INIT;
    ae.method = S(a->method);
    ae.route = S(a->route);
    ae.target = S(a->target);
    ae.action = S(a->action);
    ae.outcome = S(a->outcome);
    ae.code = S(a->code);
    ae.message = S(a->message);
    ae.status = a->status;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_ADMIN;
    ev.admin = &ae;
    return env_pack(&ev, env, out);
}

static int access_ev(const sr_cmd_env *env, const sr_access_entry *a, size_t n, int refusals, uint64_t dropped,
                     sr_buf *out);
int sr_cmd_access(const sr_cmd_env *env, const sr_access_entry *a, size_t n, sr_buf *out)
{
    return access_ev(env, a, n, 0, 0, out);
}
int sr_cmd_refusals(const sr_cmd_env *env, const sr_access_entry *a, size_t n, uint64_t dropped, sr_buf *out)
{
    for (size_t i = 0; i < n; i++)
        if (!a[i].code || !a[i].code[0] || strcmp(a[i].code, a[0].code)) return SR_EINVAL; /* one code, not "" */
    return access_ev(env, a, n, 1, dropped, out);
}

static int access_ev(const sr_cmd_env *env, const sr_access_entry *a, size_t n, int refusals, uint64_t dropped,
                     sr_buf *out)
{
    if (!n || n > SR_ACCESS_ENTRIES_MAX) return SR_EINVAL;
    Suiro__V1__AccessEntry *en = sr_calloc(n, sizeof *en);
    Suiro__V1__AccessEntry **pe = sr_calloc(n, sizeof *pe);
    if (!en || !pe) {
        sr_free(en);
        sr_free(pe);
        return SR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        Suiro__V1__AccessEntry *x = &en[i];
        suiro__v1__access_entry__init(x);
        x->time_ms = a[i].time_ms;
        x->binding = S(a[i].binding);
        x->method = S(a[i].method);
        x->route = S(a[i].route);
        x->n_points = a[i].npoints_listed < SR_ACCESS_POINTS_MAX ? a[i].npoints_listed : SR_ACCESS_POINTS_MAX;
        x->points = (char **)a[i].points;
        x->npoints = a[i].npoints;
        x->values = a[i].values;
        x->bytes = a[i].bytes;
        x->status = a[i].status;
        x->code = S(a[i].code);
        x->source = S(a[i].source);
        pe[i] = x;
    }
    Suiro__V1__AccessEvent ae = SUIRO__V1__ACCESS_EVENT__INIT;
    ae.n_entries = n;
    ae.entries = pe;
    ae.refusals = refusals != 0;
    ae.dropped = dropped;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_ACCESS;
    ev.access = &ae;
    int rc = env_pack(&ev, env, out);
    sr_free(en);
    sr_free(pe);
    return rc;
}

int sr_cmd_access_batch(const sr_cmd_env *env, const uint8_t *packed, size_t n, sr_buf *out)
{
    if (!n) return SR_EINVAL;
    Suiro__V1__AccessBatch ab = SUIRO__V1__ACCESS_BATCH__INIT;
    ab.packed.data = (uint8_t *)packed;
    ab.packed.len = n;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_ACCESS_BATCH;
    ev.access_batch = &ab;
    return env_pack(&ev, env, out);
}

int sr_cmd_backup_ev(const sr_cmd_env *env, const sr_backup_rec *b, sr_buf *out)
{
    Suiro__V1__BackupEvent be = SUIRO__V1__BACKUP_EVENT__INIT;
    be.action = S(b->action);
    be.outcome = S(b->outcome);
    be.name = S(b->name);
    be.seq = b->seq;
    be.tip.data = (uint8_t *)b->tip;
    be.tip.len = b->has_tip ? 32 : 0;
    be.bytes = b->bytes;
    be.files_copied = b->files_copied;
    be.files_linked = b->files_linked;
    be.base_name = S(b->base);
    be.message = S(b->message);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_BACKUP;
    ev.backup = &be;
    return env_pack(&ev, env, out);
}

int sr_cmd_key_ev(const sr_cmd_env *env, const sr_key_rec *k, sr_buf *out)
{
    Suiro__V1__KeyEvent ke = SUIRO__V1__KEY_EVENT__INIT;
    ke.action = S(k->action);
    ke.purpose = (char *)"log";
    ke.key_operator = S(k->key_operator);
    ke.key_class = S(k->key_class);
    ke.outcome = S(k->outcome);
    ke.message = S(k->message);
    ke.master_key_id = k->master_key_id;
    ke.old_master_key_id = k->old_master_key_id;
    ke.key_id = k->key_id;
    ke.period_days = k->period_days;
    ke.epoch_end_ms = k->epoch_end_ms;
    ke.cut_ms = k->cut_ms;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_KEY;
    ev.key = &ke;
    return env_pack(&ev, env, out);
}

int sr_cmd_checkpoint(const sr_cmd_env *env, const sr_checkpoint_in *c, sr_buf *out)
{
    Suiro__V1__CheckpointEvent ck = SUIRO__V1__CHECKPOINT_EVENT__INIT;
    ck.tree_size = c->head->size;
    ck.root_hash = (ProtobufCBinaryData){SR_TREE_HASH, (uint8_t *)c->head->root};
    ck.chain_tip = (ProtobufCBinaryData){SR_TREE_HASH, (uint8_t *)c->head->tip};
    ck.last_seq = c->head->last_seq;
    ck.time_ms = c->time_ms;
    ck.note = S(c->note);
    ck.alg = S(c->alg);
    ck.key_name = S(c->key_name);
    if (c->key_id) ck.key_id = (ProtobufCBinaryData){SR_TREE_HASH, (uint8_t *)c->key_id};
    ck.reason = S(c->reason);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_CHECKPOINT;
    ev.checkpoint = &ck;
    return env_pack(&ev, env, out);
}

int sr_cmd_alarm(const sr_cmd_env *env, const sr_alarm_step *s, sr_buf *out)
{
    Suiro__V1__AlarmEvent al = SUIRO__V1__ALARM_EVENT__INIT;
    al.alarm_id = S(s->id);
    al.level = (Suiro__V1__AlarmLevel)s->level;
    al.state = S(s->state);
    al.source = S(s->source);
    al.message = S(s->message);
    al.rule = S(s->rule);
    al.subject = S(s->subject);
    al.comment = S(s->comment);
    al.auto_resolve = s->auto_resolve;
    al.auto_resolved = s->auto_resolved;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_ALARM;
    ev.alarm = &al;
    return env_pack(&ev, env, out);
}

int sr_cmd_doc_put(const sr_cmd_env *env, const char *collection, const char *doc_id, uint64_t revision,
                   const void *json, size_t json_len, sr_buf *out)
{
    Suiro__V1__DocumentPut dp = SUIRO__V1__DOCUMENT_PUT__INIT;
    dp.collection = S(collection);
    dp.doc_id = S(doc_id);
    dp.revision = revision;
    dp.json.data = (uint8_t *)json;
    dp.json.len = json_len;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_DOC_PUT;
    ev.doc_put = &dp;
    return env_pack(&ev, env, out);
}

int sr_cmd_doc_delete(const sr_cmd_env *env, const char *collection, const char *doc_id, uint64_t revision,
                      sr_buf *out)
{
    Suiro__V1__DocumentDelete dd = SUIRO__V1__DOCUMENT_DELETE__INIT;
    dd.collection = S(collection);
    dd.doc_id = S(doc_id);
    dd.revision = revision;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_DOC_DELETE;
    ev.doc_delete = &dd;
    return env_pack(&ev, env, out);
}

int sr_cmd_file_put(const sr_cmd_env *env, const sr_file_meta *f, sr_buf *out)
{
    Suiro__V1__FilePut fp = SUIRO__V1__FILE_PUT__INIT;
    fp.path = S(f->path);
    fp.sha256.data = (uint8_t *)f->sha256.data;
    fp.sha256.len = f->sha256.len;
    fp.size = f->size;
    fp.content_type = S(f->content_type);
    fp.owner = S(f->owner);
    fp.owner_kind = (Suiro__V1__ActorKind)f->owner_kind;
    fp.shared_with = (char **)f->shared_with;
    fp.n_shared_with = f->n_shared_with;
    fp.updated_ms = f->updated_ms;
    fp.key_id = f->key_id;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_FILE_PUT;
    ev.file_put = &fp;
    return env_pack(&ev, env, out);
}

int sr_cmd_file_delete(const sr_cmd_env *env, const char *path, sr_buf *out)
{
    Suiro__V1__FileDelete fd = SUIRO__V1__FILE_DELETE__INIT;
    fd.path = S(path);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_FILE_DELETE;
    ev.file_delete = &fd;
    return env_pack(&ev, env, out);
}

int sr_cmd_file_share(const sr_cmd_env *env, const char *path, const char *const *users, size_t n, sr_buf *out)
{
    Suiro__V1__FileShare fs = SUIRO__V1__FILE_SHARE__INIT;
    fs.path = S(path);
    fs.users = (char **)users;
    fs.n_users = n;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_FILE_SHARE;
    ev.file_share = &fs;
    return env_pack(&ev, env, out);
}

/* n control values as protobuf messages: cv[] and the pointer array ptr[]
 * (the caller frees both) */
static int cvs_to_pb(const sr_control_value *v, size_t n, Suiro__V1__ControlValue **cv, Suiro__V1__ControlValue ***ptr)
{
    *cv = NULL;
    *ptr = NULL;
    if (!n) return SR_OK;
    *cv = sr_calloc(n, sizeof **cv);
    *ptr = sr_calloc(n, sizeof **ptr);
    if (!*cv || !*ptr) return SR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        Suiro__V1__ControlValue *c = &(*cv)[i];
        suiro__v1__control_value__init(c);
        c->data_id = S(v[i].data_id);
        c->type = (Suiro__V1__ValueType)v[i].type;
        c->f = v[i].f;
        c->i = v[i].i;
        c->b = v[i].b ? 1 : 0;
        c->s = S(v[i].s);
        c->timestamp_ms = v[i].timestamp_ms;
        c->quality = v[i].quality;
        c->sig_state = (uint32_t)v[i].sig_state;
        (*ptr)[i] = c;
    }
    return SR_OK;
}

int sr_cmd_request_created(const sr_cmd_env *env, const sr_request_rec *r, sr_buf *out)
{
    Suiro__V1__RequestCreated rq = SUIRO__V1__REQUEST_CREATED__INIT;
    rq.request_id = S(r->request_id);
    rq.kind = (Suiro__V1__RequestKind)r->kind;
    rq.app_id = S(r->app_id);
    rq.gateway_id = S(r->gateway_id);
    rq.data_ids = (char **)r->data_ids;
    rq.n_data_ids = r->n_data_ids;
    rq.interval_ms = r->interval_ms;
    rq.timeout_ms = r->timeout_ms;
    rq.monitor_id = S(r->monitor_id);
    rq.protection.data = (uint8_t *)r->protection.data;
    rq.protection.len = r->protection.len;
    rq.signed_value.data = (uint8_t *)r->signed_value.data;
    rq.signed_value.len = r->signed_value.len;
    rq.deadline_ms = r->deadline_ms;
    rq.start_ms = r->start_ms;
    rq.end_ms = r->end_ms;
    rq.async = r->async != 0;
    Suiro__V1__ControlValue *cv, **ptr;
    int rc = cvs_to_pb(r->control, r->n_control, &cv, &ptr);
    if (!rc) {
        rq.control = ptr;
        rq.n_control = r->n_control;
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.body_case = SUIRO__V1__EVENT__BODY_REQUEST_CREATED;
        ev.request_created = &rq;
        rc = env_pack(&ev, env, out);
    }
    sr_free(cv);
    sr_free(ptr);
    return rc;
}

int sr_cmd_request_transition(const sr_cmd_env *env, const sr_request_transition *t, sr_buf *out)
{
    Suiro__V1__RequestTransition rt = SUIRO__V1__REQUEST_TRANSITION__INIT;
    rt.request_id = S(t->request_id);
    rt.state = (Suiro__V1__RequestState)t->state;
    rt.error_code = S(t->error_code);
    rt.message = S(t->message);
    rt.gateway_id = S(t->gateway_id);
    rt.protection.data = (uint8_t *)t->protection.data;
    rt.protection.len = t->protection.len;
    rt.signed_body.data = (uint8_t *)t->signed_body.data;
    rt.signed_body.len = t->signed_body.len;
    Suiro__V1__ControlValue *acv, **aptr, *vcv = NULL, **vptr = NULL;
    int rc = cvs_to_pb(t->applied, t->n_applied, &acv, &aptr);
    if (!rc) rc = cvs_to_pb(t->values, t->n_values, &vcv, &vptr);
    if (!rc) {
        rt.applied = aptr;
        rt.n_applied = t->n_applied;
        rt.values = vptr;
        rt.n_values = t->n_values;
        Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
        ev.body_case = SUIRO__V1__EVENT__BODY_REQUEST_TRANSITION;
        ev.request_transition = &rt;
        rc = env_pack(&ev, env, out);
    }
    sr_free(acv);
    sr_free(aptr);
    sr_free(vcv);
    sr_free(vptr);
    return rc;
}

int sr_cmd_monitor(const sr_cmd_env *env, const sr_monitor_rec *m, sr_buf *out)
{
    Suiro__V1__MonitorEvent me = SUIRO__V1__MONITOR_EVENT__INIT;
    me.monitor_id = S(m->monitor_id);
    me.state = (Suiro__V1__MonitorState)m->state;
    me.app_id = S(m->app_id);
    me.data_ids = (char **)m->data_ids;
    me.n_data_ids = m->n_data_ids;
    me.interval_ms = m->interval_ms;
    me.gateway_ids = (char **)m->gateway_ids;
    me.n_gateway_ids = m->n_gateway_ids;
    me.acked = (char **)m->acked;
    me.n_acked = m->n_acked;
    me.start_ms = m->start_ms;
    me.end_ms = m->end_ms;
    me.created_ms = m->created_ms;
    me.node = S(m->node);
    if (m->n_gateway_ids == 1) me.gateway_id = (char *)m->gateway_ids[0];
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MONITOR;
    ev.monitor = &me;
    return env_pack(&ev, env, out);
}

int sr_cmd_registry_put(const sr_cmd_env *env, const sr_reg_entry *r, sr_buf *out)
{
    Suiro__V1__RegistryPut rp = SUIRO__V1__REGISTRY_PUT__INIT;
    rp.kind = (Suiro__V1__RegistryKind)r->kind;
    rp.id = S(r->id);
    rp.name = S(r->name);
    rp.secret_hash.data = (uint8_t *)r->secret_hash.data;
    rp.secret_hash.len = r->secret_hash.len;
    rp.url = S(r->url);
    rp.cert_pem = S(r->cert_pem);
    rp.app_id = S(r->app_id);
    rp.pattern = S(r->pattern);
    rp.access = S(r->access);
    rp.protocol = S(r->protocol);
    rp.vendor_id = S(r->vendor_id);
    rp.vendor_kind = S(r->vendor_kind);
    rp.disabled = r->disabled != 0;
    rp.require_signature = r->require_signature != 0;
    rp.revoked_ms = r->revoked_ms;
    rp.grant_kind = S(r->grant_kind);
    rp.retention_days = r->retention_days;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_REGISTRY_PUT;
    ev.registry_put = &rp;
    return env_pack(&ev, env, out);
}

int sr_cmd_registry_delete(const sr_cmd_env *env, sr_reg_kind kind, const char *id, sr_buf *out)
{
    Suiro__V1__RegistryDelete rd = SUIRO__V1__REGISTRY_DELETE__INIT;
    rd.kind = (Suiro__V1__RegistryKind)kind;
    rd.id = S(id);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_REGISTRY_DELETE;
    ev.registry_delete = &rd;
    return env_pack(&ev, env, out);
}

int sr_cmd_login_policy(const sr_cmd_env *env, const sr_login_policy_rec *p, sr_buf *out)
{
    Suiro__V1__LoginPolicy lp = SUIRO__V1__LOGIN_POLICY__INIT;
    lp.totp_roles = (char **)p->totp_roles;
    lp.n_totp_roles = p->n_totp_roles;
    lp.totp_required = p->totp_required != 0;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_LOGIN_POLICY;
    ev.login_policy = &lp;
    return env_pack(&ev, env, out);
}

int sr_cmd_push_mark(const sr_cmd_env *env, const char *app, uint64_t through, sr_buf *out)
{
    Suiro__V1__PushMark pm = SUIRO__V1__PUSH_MARK__INIT;
    pm.app_id = S(app);
    pm.through = through;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_PUSH_MARK;
    ev.push_mark = &pm;
    return env_pack(&ev, env, out);
}

int sr_cmd_notify(const sr_cmd_env *env, const sr_notify_rec *n, sr_buf *out)
{
    Suiro__V1__NotifyEvent ne = SUIRO__V1__NOTIFY_EVENT__INIT;
    ne.outcome = S(n->outcome);
    ne.alarm_seq = n->alarm_seq;
    ne.target_id = S(n->target_id);
    ne.delivery_id = S(n->delivery_id);
    ne.attempts = n->attempts;
    ne.error = S(n->error);
    ne.through = n->through;
    ne.channel = S(n->channel);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_NOTIFY;
    ev.notify = &ne;
    return env_pack(&ev, env, out);
}

int sr_cmd_alive(const sr_cmd_env *env, const sr_alive_rec *a, sr_buf *out)
{
    Suiro__V1__AliveEvent al = SUIRO__V1__ALIVE_EVENT__INIT;
    al.kind = (Suiro__V1__ActorKind)a->kind;
    al.id = S(a->id);
    al.state = (Suiro__V1__AliveState)a->state;
    al.reason = (Suiro__V1__AliveReason)a->reason;
    al.binding = S(a->binding);
    al.remote = S(a->remote);
    al.will = S(a->will);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_ALIVE;
    ev.alive = &al;
    return env_pack(&ev, env, out);
}

int sr_cmd_cluster(const sr_cmd_env *env, const sr_cluster_change *c, sr_buf *out)
{
    Suiro__V1__ClusterEvent ce = SUIRO__V1__CLUSTER_EVENT__INIT;
    ce.partition = c->partition;
    ce.old_owner = S(c->old_owner);
    ce.new_owner = S(c->new_owner);
    ce.epoch = c->epoch;
    ce.why = S(c->why);
    ce.until_ms = c->until_ms;
    ce.outcome = S(c->outcome);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_CLUSTER;
    ev.cluster = &ce;
    return env_pack(&ev, env, out);
}

int sr_cmd_skey_erase(const sr_cmd_env *env, const sr_skey_erase_rec *s, sr_buf *out)
{
    Suiro__V1__StreamKeyErase se = SUIRO__V1__STREAM_KEY_ERASE__INIT;
    se.key_id = S(s->key_id);
    se.key_operator = S(s->key_operator);
    se.key_class = S(s->key_class);
    se.epoch = s->epoch;
    se.period_days = s->period_days;
    se.why = S(s->why);
    se.cut_ms = s->cut_ms;
    se.outcome = S(s->outcome);
    se.message = S(s->message);
    se.intent_seq = s->intent_seq;
    se.node = S(s->node);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE;
    ev.stream_key_erase = &se;
    return env_pack(&ev, env, out);
}

/* ---- users ----------------------------------------------------------------- */

int sr_password_check(const sr_password_policy *p, const char *password, char *why, size_t whylen)
{
    size_t n = password ? strlen(password) : 0;
    if (n < p->min_length) {
        snprintf(why, whylen, "password: at least %zu characters are required", p->min_length);
        return SR_EINVAL;
    }
    if (p->max_length && n > p->max_length) {
        snprintf(why, whylen, "password: at most %zu characters are allowed", p->max_length);
        return SR_EINVAL;
    }
    return SR_OK;
}

int sr_password_expired(const sr_password_policy *p, int64_t set_ms, int64_t now_ms)
{
    return p->max_age_days > 0 && now_ms - set_ms > p->max_age_days * INT64_C(86400000);
}

static int user_pack(Suiro__V1__UserEvent *u, const sr_cmd_env *env, sr_buf *out)
{
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_USER;
    ev.user = u;
    return env_pack(&ev, env, out);
}

/* u's password fields from password (policy checked, hashed); hash is the
 * caller's buffer, released by it. */
static int user_password(Suiro__V1__UserEvent *u, const char *password, int temporary, int64_t now_ms,
                         const sr_password_policy *pol, sr_buf *hash, char *why, size_t whylen)
{
    int rc = sr_password_check(pol, password, why, whylen);
    if (rc) return rc;
    if ((rc = sr_secret_hash(password, hash))) return rc;
    u->password_hash.data = hash->data;
    u->password_hash.len = hash->len;
    u->temporary = temporary != 0;
    u->password_set_ms = now_ms;
    return SR_OK;
}

int sr_cmd_user_create(const sr_cmd_env *env, const sr_user *x, const char *password, int temporary, int64_t now_ms,
                       const sr_password_policy *pol, sr_buf *out, char *why, size_t whylen)
{
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(x->id);
    u.action = "created";
    u.name = S(x->name);
    u.scope = (Suiro__V1__UserScope)x->scope;
    u.scope_id = S(x->scope_id);
    u.roles = (char **)x->roles;
    u.n_roles = x->n_roles;
    u.approved_by = S(x->approved_by);
    sr_buf h;
    sr_buf_init(&h);
    int rc = user_password(&u, password, temporary, now_ms, pol, &h, why, whylen);
    if (!rc) rc = user_pack(&u, env, out);
    sr_buf_release(&h);
    return rc;
}

int sr_cmd_user_password(const sr_cmd_env *env, const char *id, const char *password, int temporary, int64_t now_ms,
                         const sr_password_policy *pol, sr_buf *out, char *why, size_t whylen)
{
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(id);
    u.action = "password_set";
    sr_buf h;
    sr_buf_init(&h);
    int rc = user_password(&u, password, temporary, now_ms, pol, &h, why, whylen);
    if (!rc) rc = user_pack(&u, env, out);
    sr_buf_release(&h);
    return rc;
}

int sr_cmd_user_roles(const sr_cmd_env *env, const char *id, const char *const *roles, size_t n,
                      const char *approved_by, sr_buf *out)
{
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(id);
    u.action = "roles_set";
    u.roles = (char **)roles;
    u.n_roles = n;
    u.approved_by = S(approved_by);
    return user_pack(&u, env, out);
}

int sr_cmd_user_state(const sr_cmd_env *env, const char *id, const char *action, const char *approved_by, sr_buf *out)
{
    if (!action || (strcmp(action, "disabled") && strcmp(action, "enabled") && strcmp(action, "deleted")))
        return SR_EINVAL;
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(id);
    u.action = (char *)action;
    u.approved_by = S(approved_by);
    return user_pack(&u, env, out);
}

int sr_cmd_user_totp_set(const sr_cmd_env *env, const char *id, sr_slice sealed, sr_buf *out)
{
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(id);
    u.action = "totp_set";
    u.totp_secret_sealed.data = (uint8_t *)sealed.data;
    u.totp_secret_sealed.len = sealed.len;
    return user_pack(&u, env, out);
}

int sr_cmd_user_totp_step(const sr_cmd_env *env, const char *id, int64_t step, sr_buf *out)
{
    Suiro__V1__UserEvent u = SUIRO__V1__USER_EVENT__INIT;
    u.user_id = S(id);
    u.action = "totp_step";
    u.totp_last_step = step;
    return user_pack(&u, env, out);
}

int sr_cmd_pending_request(const sr_cmd_env *env, const sr_pending_req *q, sr_buf *out)
{
    if (!q || !q->n_changes || q->n_changes > SR_PENDING_MAX_EVENTS) return SR_EINVAL;
    ProtobufCBinaryData *ch = sr_calloc(q->n_changes, sizeof *ch);
    if (!ch) return SR_ENOMEM;
    for (size_t i = 0; i < q->n_changes; i++) ch[i] = (ProtobufCBinaryData){q->changes[i].len, (uint8_t *)q->changes[i].data};
    Suiro__V1__PendingEvent p = SUIRO__V1__PENDING_EVENT__INIT;
    p.pending_id = S(q->id);
    p.action = "requested";
    p.change = ch;
    p.n_change = q->n_changes;
    p.summary = S(q->summary);
    p.scope = (Suiro__V1__UserScope)q->scope;
    p.scope_id = S(q->scope_id);
    p.authz_action = S(q->authz_action);
    p.expires_ms = q->expires_ms;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_PENDING;
    ev.pending = &p;
    int rc = env_pack(&ev, env, out);
    sr_free(ch);
    return rc;
}

int sr_cmd_pending_decide(const sr_cmd_env *env, const char *id, const char *action, const char *reason, sr_buf *out)
{
    if (!action || (strcmp(action, "approved") && strcmp(action, "rejected") && strcmp(action, "expired")))
        return SR_EINVAL;
    Suiro__V1__PendingEvent p = SUIRO__V1__PENDING_EVENT__INIT;
    p.pending_id = S(id);
    p.action = (char *)action;
    p.reason = S(reason);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_PENDING;
    ev.pending = &p;
    return env_pack(&ev, env, out);
}
