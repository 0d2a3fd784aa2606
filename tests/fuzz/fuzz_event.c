/* tests/fuzz/fuzz_event.c -- libFuzzer target for one log record as the
 * engine reads it (the replay, rebuild, verify and `suiro replay`): the input
 * is one serialized Event. Its measurements, in either form (PointValues or
 * Snapshot, codecs/events.proto), are read through sr_meas_next and every
 * sample through sr_pv_iter_next, and the event is written as JSON
 * (engine/event_json.c), also with the audit trail's summary (engine/audit.c,
 * as `suiro replay` shows it): none of it may crash, leak or read out of bounds,
 * whatever the arrays' lengths, the point deltas or the scale. Corpus:
 * tests/fuzz/event/ (a Snapshot, a PointValues and a mixed record as this
 * code writes them). */
#include "codecs/events.pb-c.h"
#include "engine/event_json.h"
#include "engine/evbuild.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, size, data);
    if (!ev) return 0;
    if (ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS) {
        sr_meas_iter mi;
        sr_mpoint p;
        sr_meas_iter_init(&mi, ev->measurements);
        size_t points = 0;
        while (sr_meas_next(&mi, &p)) {
            if (++points > size + 1) abort(); /* an entry takes at least a byte */
            for (long i = 0; i < p.n; i++) {
                sr_sample s;
                if (sr_pv_iter_next(&p.it, &s)) break;
                if (s.quality > 3) abort();
            }
        }
    }
    sr_buf out;
    sr_buf_init(&out);
    (void)sr_event_json(ev, &out);
    /* `suiro replay`'s form: with the audit trail's summary (engine/audit.c) */
    static const sr_event_json_opts with_audit = {.audit = 1, .times = 1};
    out.len = 0;
    (void)sr_event_json_ex(ev, &with_audit, &out);
    if (out.len && out.data[out.len - 1] != '}') abort();
    sr_buf_release(&out);
    suiro__v1__event__free_unpacked(ev, NULL);
    return 0;
}
