/* engine/event_json.h -- events as JSON (see event_json.c). */
#ifndef SR_EVENT_JSON_H
#define SR_EVENT_JSON_H

#include "codecs/events.pb-c.h"
#include "codecs/base/sr_alloc.h"
#include "engine/records.h" /* sr_event_json_opts */

/* Append ev as one JSON object (no newline). */
int sr_event_json(const Suiro__V1__Event *ev, sr_buf *out);
/* The same, with what the engine's layer does not hold (sr_event_json_opts,
 * engine/records.h). */
int sr_event_json_ex(const Suiro__V1__Event *ev, const sr_event_json_opts *o, sr_buf *out);
/* The body's field name ("measurements", "master_put", ...), or "none". */
const char *sr_event_kind(const Suiro__V1__Event *ev);

#endif
