/* api/slog.h -- one line per event worth logging, logfmt, with levels:
 *   ts=2026-11-22T03:00:00.000Z level=info msg="gateway connected" gw=GW001 peer=127.0.0.1:51234 */
#ifndef SR_SLOG_H
#define SR_SLOG_H

enum { SR_LOG_DEBUG = 0, SR_LOG_INFO = 1, SR_LOG_WARN = 2, SR_LOG_ERROR = 3 };

void sr_slog_set_level(int level);
int sr_slog_level_parse(const char *s); /* -1 if unknown */
/* fields: "key=value key2=value2" already formatted (values quoted by the caller
 * with sr_slog_q when they may contain spaces). */
void sr_slog(int level, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Quote a value for logfmt into buf (thread-local rotating buffers). */
const char *sr_slog_q(const char *s);

#endif
