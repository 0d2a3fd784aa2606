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
/* The audit trail's summary of an event, with names (engine/audit.c): the
 * `audit` row's parts, and what `suiro replay` adds as "audit". */
typedef struct sr_audit_summary {
    const char *s[8]; /* op, actor, source, kind, action, target, outcome, detail (into the event or below) */
    char target[160], action[160], detail[400];
} sr_audit_summary;
/* 1 and *x if ev is in the trail (every kind but the data kinds), else 0. */
int sr_audit_summarize(const Suiro__V1__Event *ev, sr_audit_summary *x);
/* The body's field name ("measurements", "master_put", ...), or "none". */
const char *sr_event_kind(const Suiro__V1__Event *ev);

#endif
