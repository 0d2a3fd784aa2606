/* engine/evbuild.c -- see evbuild.h. */
#include "engine/evbuild.h"

#include <math.h>
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

/* Smallest k in 0..6 with every value exactly m / 10^k; -1 if none. */
static int decimal_scale(const sr_sample *s, size_t n, int64_t *mant)
{
    for (int k = 0; k <= 6; k++) {
        double p = pow(10.0, k);
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            double x = s[i].v.f * p;
            if (!isfinite(x) || fabs(x) > 9007199254740992.0) {
                ok = 0;
                break;
            }
            double m = nearbyint(x);
            double back = k ? m / p : m;
            if (memcmp(&back, &s[i].v.f, sizeof back) != 0) ok = 0; /* bit-exact, so -0.0 fails */
            else mant[i] = (int64_t)m;
        }
        if (ok) return k;
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

static uint64_t zz64(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

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
    if (v->scale) z += 1 + sr_varint_len((uint32_t)(((uint32_t)v->scale << 1) ^ (uint32_t)(v->scale >> 31)));
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
        for (size_t i = 0; i < v->n; i++) { /* little-endian doubles */
            uint64_t x = (uint64_t)v->vals[i];
            for (int k = 0; k < 8; k++) *p++ = (uint8_t)(x >> (8 * k));
        }
    }
    if (v->scale) p = sr_varint_put(put_tag(p, 5, 0), (uint32_t)(((uint32_t)v->scale << 1) ^ (uint32_t)(v->scale >> 31)));
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

int sr_ev_measurements(const char *op, const char *actor, Suiro__V1__ActorKind kind, const char *message_id,
                       const sr_pv_in *pts, size_t npts, sr_buf *out)
{
    int rc = SR_OK;
    size_t total = 0;
    for (size_t k = 0; k < npts; k++) total += pts[k].n;
    pvenc *pv = sr_calloc(npts ? npts : 1, sizeof *pv);
    /* one scratch block: sorted samples, dod, values, qualities */
    size_t each = sizeof(sr_sample) + 2 * sizeof(int64_t) + sizeof(uint32_t);
    uint8_t *scratch = sr_malloc(total ? total * each : 1);
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
        p = sr_varint_put(put_tag(p, 1, 2), pv[k].size);
        p = pv_write(p, &pv[k]);
    }
    SR_VERIFY((size_t)(p - start) == esize);
    out->len += esize;
done:
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
    it->pow10 = pow(10.0, fabs((double)pv->scale)); /* divisor when scale < 0, as the encoder */
}


