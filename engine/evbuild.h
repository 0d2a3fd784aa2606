/*
 * engine/evbuild.h -- building serialized events for sr_engine_submit.
 *
 * The API layer and the tests build events here, so that the compact
 * measurement encoding (codecs/events.proto, PointValues) lives in one place:
 * timestamps as t0 + delta-of-delta; numbers as decimal mantissas when every
 * value of the batch is exactly a decimal with at most 6 digits after the
 * point (checked bit for bit), else raw doubles.
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

/* Decoding a PointValues (the engine's apply, replay output); SR_TS_MAX is
 * in engine/records.h. */

/* Number of samples and their type, or -1 if the arrays are inconsistent. */
long sr_pv_count(const Suiro__V1__PointValues *pv, sr_vtype *t);

typedef struct sr_pv_iter {
    const Suiro__V1__PointValues *pv;
    size_t i, n;
    int64_t ts, delta;
    int64_t acc; /* running mantissa / integer */
    double pow10;
} sr_pv_iter;

void sr_pv_iter_init(sr_pv_iter *it, const Suiro__V1__PointValues *pv, size_t n);
/* 10^|scale| as pow(10, |scale|) gives it, without pow() for |scale| <= 22. */
double sr_pow10_abs(int32_t scale);
/* Next sample (strings borrowed from pv); 0, or -1 if its timestamp is
 * outside [0, SR_TS_MAX]. Inline: the writer's apply calls it per sample. */
static inline int sr_pv_iter_next(sr_pv_iter *it, sr_sample *s)
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


#endif
