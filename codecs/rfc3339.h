/* codecs/rfc3339.h -- RFC 3339 timestamps <-> UTC milliseconds (interface.md:
 * any offset or Z accepted; answers in UTC with milliseconds). */
#ifndef SR_RFC3339_H
#define SR_RFC3339_H

#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

/* Parse "2026-04-01T09:00:00.123+09:00" (fraction optional, any number of
 * digits, truncated to ms; 'T'/'t' or ' ' separator; 'Z'/'z' or +hh:mm).
 * SR_EINVAL on anything else, including impossible dates (Feb 30, hour 24). */
SR_MUST_CHECK int sr_rfc3339_parse(const char *s, size_t len, int64_t *ms);
/* The same, for runs of timestamps that share their minute (a message's
 * values): the "YYYY-MM-DDTHH:MM" prefix of the last parse is remembered and
 * only the rest is read when the next one starts alike. Zero the cache
 * before first use; one cache per thread. */
typedef struct sr_rfc3339_cache {
    char prefix[16];
    int64_t base; /* seconds of that minute, before the offset */
    int valid;
} sr_rfc3339_cache;
SR_MUST_CHECK int sr_rfc3339_parse_cached(sr_rfc3339_cache *c, const char *s, size_t len, int64_t *ms);
/* A time argument (AP-IF query parameters, `suiro replay --from/--to`): an
 * RFC 3339 timestamp as sr_rfc3339_parse takes it, "now", or now minus a
 * duration: "-" then a decimal (digits, optionally a fraction: -1.5h) of at
 * most 10^6 units, then ms, s, m, h or d (-500ms, -30s, -10m, -1h, -2d).
 * now_ms is the caller's clock. SR_EINVAL on anything else. */
SR_MUST_CHECK int sr_time_parse(const char *s, size_t len, int64_t now_ms, int64_t *ms);
/* Format as "2026-04-01T00:00:00.000Z" into out (at least 25 bytes). */
void sr_rfc3339_format(int64_t ms, char out[32]);

#endif
