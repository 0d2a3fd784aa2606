/* codecs/rfc3339.c -- see rfc3339.h. Civil-date arithmetic without the C
 * library's time zone state (timegm is not thread-safe everywhere). */
#include "codecs/rfc3339.h"

#include <stdio.h>
#include <string.h>

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM" (16 bytes, s has at least 20): seconds since the epoch of
 * that minute, before any offset; -1 if invalid. */
static int prefix_secs(const char *s, int64_t *out)
{
    int Y, M, D, h, mi;
    if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D))
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -1;
    if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi)) return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && leap(Y)) || h > 23 || mi > 59) return -1;
    *out = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60;
    return 0;
}

/* ":SS[.fff...](Z|+hh:mm)" from s + 16 to len, on top of prefix_secs' base */
static int tail(const char *s, size_t len, int64_t base, int64_t *ms)
{
    int sec;
    if (s[16] != ':' || digits(s + 17, 2, &sec) || sec > 60) return SR_EINVAL;
    if (sec == 60) sec = 59; /* leap second: clamp (UTC ms has no slot for it) */
    size_t i = 19;
    int frac = 0, nf = 0;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nf < 3) frac = frac * 10 + (s[i] - '0');
            nf++;
            i++;
        }
        if (nf == 0) return SR_EINVAL;
        while (nf < 3) {
            frac *= 10;
            nf++;
        }
    }
    int off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) i++;
    else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59) return SR_EINVAL;
        off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else
        return SR_EINVAL;
    if (i != len) return SR_EINVAL;
    *ms = (base + sec - (int64_t)off * 60) * 1000 + frac;
    return SR_OK;
}

int sr_rfc3339_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t base;
    if (len < 20 || prefix_secs(s, &base)) return SR_EINVAL;
    return tail(s, len, base, ms);
}

int sr_rfc3339_parse_cached(sr_rfc3339_cache *c, const char *s, size_t len, int64_t *ms)
{
    if (len < 20) return SR_EINVAL;
    if (!c->valid || memcmp(c->prefix, s, sizeof c->prefix) != 0) {
        int64_t base;
        if (prefix_secs(s, &base)) return SR_EINVAL;
        memcpy(c->prefix, s, sizeof c->prefix);
        c->base = base;
        c->valid = 1;
    }
    return tail(s, len, c->base, ms);
}

int sr_time_parse(const char *s, size_t len, int64_t now_ms, int64_t *ms)
{
    if (len == 3 && !memcmp(s, "now", 3)) {
        *ms = now_ms;
        return SR_OK;
    }
    if (len < 3 || s[0] != '-') return sr_rfc3339_parse(s, len, ms);
    /* -D[.D]UNIT: the number by hand (no locale, no hex, no exponent) */
    size_t i = 1;
    double v = 0, scale = 1;
    int nd = 0, dot = 0;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (dot) v += (scale /= 10) * (s[i] - '0');
            else v = v * 10 + (s[i] - '0');
            nd++;
        } else if (s[i] == '.' && !dot) {
            dot = 1;
        } else
            break;
    }
    if (!nd || s[i - 1] == '.' || v > 1e6) return SR_EINVAL;
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
        if (len - i == strlen(units[k].u) && !memcmp(s + i, units[k].u, len - i)) {
            *ms = now_ms - (int64_t)(v * (double)units[k].ms);
            return SR_OK;
        }
    return SR_EINVAL;
}

void sr_rfc3339_format(int64_t ms, char out[32])
{
    /* floor divisions that cannot overflow, for any int64 */
    int64_t s = ms / 1000;
    int msec = (int)(ms % 1000);
    if (msec < 0) msec += 1000, s--;
    int64_t z = s / 86400, secs = s % 86400;
    if (secs < 0) secs += 86400, z--;
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    y += m <= 2;
    /* digits by hand: this runs once per value of every query answer */
    int yy = (int)(y % 100000);
    char *o = out;
    if (yy < 0 || yy > 9999) { /* out of RFC 3339's range: keep a readable form */
        snprintf(out, 32, "%d-%02d-%02dT%02d:%02d:%02d.%03dZ", yy, m, d, (int)(secs / 3600), (int)(secs / 60 % 60),
                 (int)(secs % 60), msec);
        return;
    }
    int hh = (int)(secs / 3600), mi = (int)(secs / 60 % 60), ss = (int)(secs % 60);
    *o++ = (char)('0' + yy / 1000);
    *o++ = (char)('0' + yy / 100 % 10);
    *o++ = (char)('0' + yy / 10 % 10);
    *o++ = (char)('0' + yy % 10);
    *o++ = '-';
    *o++ = (char)('0' + m / 10);
    *o++ = (char)('0' + m % 10);
    *o++ = '-';
    *o++ = (char)('0' + d / 10);
    *o++ = (char)('0' + d % 10);
    *o++ = 'T';
    *o++ = (char)('0' + hh / 10);
    *o++ = (char)('0' + hh % 10);
    *o++ = ':';
    *o++ = (char)('0' + mi / 10);
    *o++ = (char)('0' + mi % 10);
    *o++ = ':';
    *o++ = (char)('0' + ss / 10);
    *o++ = (char)('0' + ss % 10);
    *o++ = '.';
    *o++ = (char)('0' + msec / 100);
    *o++ = (char)('0' + msec / 10 % 10);
    *o++ = (char)('0' + msec % 10);
    *o++ = 'Z';
    *o = 0;
}
