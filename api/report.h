/*
 * api/report.h -- the incident report's writers (issue #18, R-RE-4;
 * docs/incident-report.md): the report the engine built (engine/report.h)
 * as JSON, and as one self-contained HTML page (inline CSS and SVG, no
 * script, no external URL). `suiro report incident` (api/cli/cmd_report.c)
 * and GET /admin/v1/reports/incident (api/admin_report.c) write the same
 * bytes from the same report.
 */
#ifndef SR_API_REPORT_H
#define SR_API_REPORT_H

#include "engine/report.h"

#include <jansson.h>

/* The report as a JSON value (new reference; NULL out of memory). */
json_t *sr_report_json(const sr_report *r);
/* The same as text (sr_json_write: numbers short and exact) appended to out. */
SR_MUST_CHECK int sr_report_json_text(const sr_report *r, sr_buf *out);
/* The HTML page appended to out. Every string from the log is escaped. */
SR_MUST_CHECK int sr_report_html(const sr_report *r, sr_buf *out);

/* "json" or "html": 0, 1; else -1 */
int sr_report_format_parse(const char *s);

#endif
