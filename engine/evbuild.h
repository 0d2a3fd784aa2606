/*
 * engine/evbuild.h -- building serialized events for sr_engine_submit.
 *
 * The API layer and the tests build events here, so that the compact
 * measurement encoding (codecs/events.proto, PointValues and Snapshot)
 * lives in one place: timestamps as t0 + delta-of-delta; numbers as decimal
 * mantissas when every value of the batch is exactly a decimal with at most
 * 6 digits after the point (checked bit for bit), else raw doubles. The
 * points that have one value each at one shared time (at least two of them)
 * go into the message's Snapshot instead (sr_ev_measurements).
 */
#ifndef SR_EVBUILD_H
#define SR_EVBUILD_H

#include "codecs/events.pb-c.h"
#include "engine/records.h" /* sr_pv_in, sr_ev_measurements and the typed builders (sr_cmd_*) */
#include "engine/suiro.h"

#include <string.h>

/* Serialize ev after setting its envelope fields (ev->body must be set). */
SR_MUST_CHECK int sr_ev_pack(Suiro__V1__Event *ev, const char *op, const char *actor, Suiro__V1__ActorKind kind,
                             const char *message_id, sr_buf *out);

/* Decoding measurements (the writer's check and apply, the replay, the log
 * dump, records): one iteration over "a point and its samples" for both
 * forms of codecs/events.proto's Measurements, so no reader has a loop per
 * form. SR_TS_MAX is in engine/records.h. */

/* Number of samples and their type, or -1 if the arrays are inconsistent. */
long sr_pv_count(const Suiro__V1__PointValues *pv, sr_vtype *t);

/* The samples of one point: a PointValues' (pv set), or the one sample of
 * a snapshot entry (pv NULL, the sample in one). */
typedef struct sr_pv_iter {
    const Suiro__V1__PointValues *pv;
    size_t i, n;
    int64_t ts, delta;
    int64_t acc; /* running mantissa / integer */
    double pow10;
    sr_sample one; /* pv == NULL: the snapshot entry's sample */
} sr_pv_iter;

void sr_pv_iter_init(sr_pv_iter *it, const Suiro__V1__PointValues *pv, size_t n);
/* 10^|scale| as pow(10, |scale|) gives it, without pow() for |scale| <= 22. */
double sr_pow10_abs(int32_t scale);
/* Next sample (strings borrowed from the event); 0, or -1 if its timestamp
 * is outside [0, SR_TS_MAX]. Inline: the writer's apply calls it per sample. */
static inline int sr_pv_iter_next(sr_pv_iter *it, sr_sample *s)
{
    const Suiro__V1__PointValues *pv = it->pv;
    size_t i = it->i++;
    if (!pv) {
        if (it->one.ts < 0 || it->one.ts > SR_TS_MAX) return -1;
        *s = it->one;
        return 0;
    }
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

/* One point of a Measurements and its samples. */
typedef struct sr_mpoint {
    uint32_t point;
    sr_vtype type;   /* when n >= 0 */
    long n;          /* samples; -1: inconsistent arrays (refused by the check, skipped by the apply) */
    int in_snapshot; /* 1: an entry of the Snapshot */
    sr_pv_iter it;   /* its samples, ready (sr_pv_iter_next n times) */
} sr_mpoint;

typedef struct sr_meas_iter {
    const Suiro__V1__Measurements *m;
    size_t j, nsnap;    /* next snapshot entry, number of entries */
    size_t k;           /* next PointValues */
    uint64_t point;     /* the snapshot's running point number */
    double pow10;       /* 10^|scale| of the snapshot */
    int snap_ok;        /* the snapshot's arrays add up */
} sr_meas_iter;

void sr_meas_iter_init(sr_meas_iter *mi, const Suiro__V1__Measurements *m);
/* The next point: 1 (p filled), 0 at the end. Order: the snapshot's
 * entries, then the PointValues. An inconsistent snapshot is one point
 * (its first number, or 0) with n = -1. */
int sr_meas_next(sr_meas_iter *mi, sr_mpoint *p);

#endif
