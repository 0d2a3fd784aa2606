/* engine/event_json.h -- events as JSON (see event_json.c). */
#ifndef SR_EVENT_JSON_H
#define SR_EVENT_JSON_H

#include "codecs/events.pb-c.h"
#include "codecs/base/sr_alloc.h"

/* Append ev as one JSON object (no newline). */
int sr_event_json(const Suiro__V1__Event *ev, sr_buf *out);
/* The same, with what the engine's layer does not hold (all optional). */
typedef struct sr_event_json_opts {
    /* a finite double as JSON into t (at least 48 bytes): its length, 0 to
     * fall back to %.17g; the CLI passes the AP-IF writer's sr_json_number,
     * which prints a decimal as it was sent (0.1, not 0.10000000000000001) */
    int (*number)(char *t, double f);
    /* the dataId of an operator's point number, or NULL (shown as "dataId"
     * next to "point" in measurements) */
    const char *(*data_id)(void *ctx, const char *op, uint32_t point);
    void *ctx;
    /* 1: times (value timestamps, int64 fields named *_ms) as RFC 3339 UTC
     * strings, the key without "_ms" ("ingest":"2026-11-22T05:21:00.000Z") */
    int times;
} sr_event_json_opts;
int sr_event_json_ex(const Suiro__V1__Event *ev, const sr_event_json_opts *o, sr_buf *out);
/* The body's field name ("measurements", "master_put", ...), or "none". */
const char *sr_event_kind(const Suiro__V1__Event *ev);
/* Append a JSON string literal of s[0..n). */
int sr_json_str(sr_buf *b, const char *s, size_t n);

#endif
