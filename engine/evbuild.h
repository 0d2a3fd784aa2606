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
#include "engine/suiro.h"

typedef struct sr_pv_in {
    uint32_t point;
    sr_vtype type;
    const sr_sample *s; /* n samples, any order */
    size_t n;
} sr_pv_in;

/* Serialize a measurements event into out (appended). */
SR_MUST_CHECK int sr_ev_measurements(const char *op, const char *actor, Suiro__V1__ActorKind kind,
                                     const char *message_id, const sr_pv_in *pts, size_t npts, sr_buf *out);

/* Serialize ev after setting its envelope fields (ev->body must be set). */
SR_MUST_CHECK int sr_ev_pack(Suiro__V1__Event *ev, const char *op, const char *actor, Suiro__V1__ActorKind kind,
                             const char *message_id, sr_buf *out);

#endif
