/* api/slog.c -- see slog.h. Writes to stderr with one write() per line so
 * that lines from threads do not interleave. */
#include "api/slog.h"

#include "codecs/rfc3339.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cur = SR_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void sr_slog_set_level(int level) { cur = level; }

int sr_slog_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

const char *sr_slog_q(const char *s)
{
    static _Thread_local char bufs[4][256];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    size_t n = 0;
    b[n++] = '"';
    for (; *s && n < sizeof bufs[0] - 3; s++) {
        if (*s == '"' || *s == '\\') b[n++] = '\\';
        b[n++] = (*s == '\n' || *s == '\r') ? ' ' : *s;
    }
    b[n++] = '"';
    b[n] = 0;
    return b;
}

void sr_slog(int level, const char *msg, const char *fmt, ...)
{
    if (level < cur) return;
    char line[1024], ts[32];
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    sr_rfc3339_format((int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000, ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s", ts, names[level & 3], sr_slog_q(msg));
    if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0) n += m < (int)(sizeof line - (size_t)n - 1) ? m : (int)(sizeof line - (size_t)n - 2);
    }
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
}
