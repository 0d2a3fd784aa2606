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

int sr_ev_measurements(const char *op, const char *actor, Suiro__V1__ActorKind kind, const char *message_id,
                       const sr_pv_in *pts, size_t npts, sr_buf *out)
{
    int rc = SR_OK;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    Suiro__V1__Measurements m = SUIRO__V1__MEASUREMENTS__INIT;
    Suiro__V1__PointValues *pvs = sr_calloc(npts ? npts : 1, sizeof *pvs);
    Suiro__V1__PointValues **pp = sr_calloc(npts ? npts : 1, sizeof *pp);
    void **allocs = sr_calloc(npts * 5 + 1, sizeof *allocs); /* 4 per point, +1 for bool and string arrays */
    size_t na = 0;
    if (!pvs || !pp || !allocs) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t k = 0; k < npts; k++) {
        const sr_pv_in *in = &pts[k];
        Suiro__V1__PointValues *pv = &pvs[k];
        suiro__v1__point_values__init(pv);
        pp[k] = pv;
        pv->point = in->point;
        if (!in->n) continue;
        /* stable sort by time (later entries with equal ts keep their order) */
        sr_sample *s = sr_malloc(in->n * sizeof *s);
        int64_t *dod = sr_malloc(in->n * sizeof *dod), *vals = sr_malloc(in->n * sizeof *vals);
        uint32_t *q = sr_malloc(in->n * sizeof *q);
        allocs[na++] = s;
        allocs[na++] = dod;
        allocs[na++] = vals;
        allocs[na++] = q;
        if (!s || !dod || !vals || !q) {
            rc = SR_ENOMEM;
            goto done;
        }
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
        pv->t0 = s[0].ts;
        int64_t prev_delta = 0;
        for (size_t i = 1; i < in->n; i++) {
            int64_t delta = (int64_t)((uint64_t)s[i].ts - (uint64_t)s[i - 1].ts);
            dod[i - 1] = (int64_t)((uint64_t)delta - (uint64_t)prev_delta);
            prev_delta = delta;
        }
        pv->n_dod = in->n - 1;
        pv->dod = dod;
        int allgood = 1;
        for (size_t i = 0; i < in->n; i++) {
            q[i] = s[i].quality;
            if (q[i]) allgood = 0;
        }
        if (!allgood) {
            pv->n_quality = in->n;
            pv->quality = q;
        }
        switch (in->type) {
        case SR_VT_NUMBER: {
            int k2 = decimal_scale(s, in->n, vals);
            if (k2 >= 0) {
                for (size_t i = in->n; i-- > 1;) vals[i] = (int64_t)((uint64_t)vals[i] - (uint64_t)vals[i - 1]);
                pv->scale = -k2;
                pv->n_dmant = in->n;
                pv->dmant = vals;
            } else {
                double *f = (double *)vals; /* same size */
                for (size_t i = 0; i < in->n; i++) f[i] = s[i].v.f;
                pv->n_f = in->n;
                pv->f = f;
            }
            break;
        }
        case SR_VT_INTEGER:
            for (size_t i = 0; i < in->n; i++) vals[i] = (int64_t)((uint64_t)s[i].v.i - (i ? (uint64_t)s[i - 1].v.i : 0));
            pv->n_i = in->n;
            pv->i = vals;
            break;
        case SR_VT_BOOL: {
            protobuf_c_boolean *b = sr_malloc(in->n * sizeof *b);
            allocs[na++] = b;
            if (!b) {
                rc = SR_ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < in->n; i++) b[i] = s[i].v.b ? 1 : 0;
            pv->n_b = in->n;
            pv->b = b;
            break;
        }
        case SR_VT_STRING: {
            char **strs = sr_malloc(in->n * sizeof *strs);
            allocs[na++] = strs;
            if (!strs) {
                rc = SR_ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < in->n; i++) strs[i] = (char *)s[i].v.str.s; /* NUL-terminated by contract */
            pv->n_s = in->n;
            pv->s = strs;
            break;
        }
        default:
            rc = SR_EINVAL;
            goto done;
        }
    }
    m.n_points = npts;
    m.points = pp;
    ev.body_case = SUIRO__V1__EVENT__BODY_MEASUREMENTS;
    ev.measurements = &m;
    rc = sr_ev_pack(&ev, op, actor, kind, message_id, out);
done:
    for (size_t i = 0; i < na; i++) sr_free(allocs[i]);
    sr_free(allocs);
    sr_free(pvs);
    sr_free(pp);
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

/* 0 ok, -1 timestamp out of range */
int sr_pv_iter_next(sr_pv_iter *it, sr_sample *s)
{
    const Suiro__V1__PointValues *pv = it->pv;
    size_t i = it->i++;
    if (i > 0) {
        it->delta = (int64_t)((uint64_t)it->delta + (uint64_t)pv->dod[i - 1]);
        it->ts = (int64_t)((uint64_t)it->ts + (uint64_t)it->delta);
    }
    if (it->ts < 0 || it->ts > SR_TS_MAX) return -1;
    s->ts = it->ts;
    s->quality = pv->n_quality ? (uint8_t)(pv->quality[i] & 3) : SR_Q_GOOD;
    if (pv->n_f) s->v.f = pv->f[i];
    else if (pv->n_dmant) {
        it->acc = (int64_t)((uint64_t)it->acc + (uint64_t)pv->dmant[i]);
        s->v.f = pv->scale < 0 ? (double)it->acc / it->pow10 : (double)it->acc * it->pow10;
    } else if (pv->n_i) {
        it->acc = (int64_t)((uint64_t)it->acc + (uint64_t)pv->i[i]);
        s->v.i = it->acc;
    } else if (pv->n_b) s->v.b = pv->b[i] ? 1 : 0;
    else {
        s->v.str.s = pv->s[i];
        s->v.str.slen = (uint32_t)strlen(pv->s[i]);
    }
    return 0;
}

