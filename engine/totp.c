/* engine/totp.c -- RFC 6238 TOTP / RFC 4226 HOTP (see totp.h). */
#include "engine/totp.h"

#include "codecs/base32.h"
#include "storage/crypto.h"

#include <stdio.h>
#include <string.h>

static const uint32_t pow10_[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

int sr_hotp(const uint8_t *key, size_t keylen, uint64_t counter, int digits, uint32_t *code)
{
    if (digits < 6 || digits > 8) return SR_EINVAL;
    uint8_t msg[8], mac[SR_SHA1_LEN];
    for (int i = 7; i >= 0; i--, counter >>= 8) msg[i] = (uint8_t)counter;
    int rc = sr_hmac_sha1(key, keylen, msg, sizeof msg, mac);
    if (rc) return rc;
    unsigned off = mac[SR_SHA1_LEN - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    *code = bin % pow10_[digits];
    return SR_OK;
}

int sr_totp_parse(const char *s, size_t n, uint32_t *code)
{
    if (n != SR_TOTP_DIGITS) return SR_EINVAL;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SR_EINVAL;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *code = v;
    return SR_OK;
}

int sr_totp_verify(const uint8_t *key, size_t keylen, const char *s, size_t n, int64_t unix_s, uint64_t last_step,
                   uint64_t *step)
{
    uint32_t got;
    if (sr_totp_parse(s, n, &got)) return SR_EINVAL;
    uint64_t now = sr_totp_step(unix_s), found = 0;
    /* every step of the window is computed and compared, whatever matches */
    for (int d = -SR_TOTP_DRIFT; d <= SR_TOTP_DRIFT; d++) {
        if (d < 0 && now < (uint64_t)-d) continue;
        uint64_t st = now + (uint64_t)(int64_t)d;
        uint32_t want;
        int rc = sr_hotp(key, keylen, st, SR_TOTP_DIGITS, &want);
        if (rc) return rc;
        uint32_t diff = want ^ got;
        /* eq is 1 exactly when diff is 0, without a branch on the digits */
        uint64_t eq = (uint64_t)(((diff | (0u - diff)) >> 31) ^ 1u);
        uint64_t fresh = (uint64_t)(st > last_step);
        uint64_t take = 0 - (eq & fresh); /* all ones when this step is accepted */
        found = (found & ~take) | (st & take); /* the latest matching step */
    }
    if (!found) return SR_ENOTFOUND;
    *step = found;
    return SR_OK;
}

int sr_totp_secret(uint8_t out[SR_TOTP_SECRET_LEN]) { return sr_random(out, SR_TOTP_SECRET_LEN); }

/* percent-encode s into out at *o (cap bytes); 0, or -1 when out is full */
static int pct(const char *s, char *out, size_t cap, size_t *o)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                   *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = keep ? 1 : 3;
        if (*o + need >= cap) return -1;
        if (keep) {
            out[(*o)++] = (char)*p;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[*p >> 4];
            out[(*o)++] = hex[*p & 15];
        }
    }
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SR_TOTP_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

static int put(const char *s, char *out, size_t cap, size_t *o)
{
    size_t n = strlen(s);
    if (*o + n >= cap) return -1;
    memcpy(out + *o, s, n);
    *o += n;
    return 0;
}

int sr_totp_uri(const char *issuer, const char *account, const uint8_t *key, size_t keylen, char *out, size_t cap)
{
    if (!issuer || !account || !name_ok(issuer) || !name_ok(account) || keylen < 1 || keylen > 64) return SR_EINVAL;
    char b32[(64 * 8 + 4) / 5 + 1];
    sr_base32(key, keylen, b32, 0);
    char tail[64];
    snprintf(tail, sizeof tail, "&algorithm=SHA1&digits=%d&period=%d", SR_TOTP_DIGITS, SR_TOTP_PERIOD);
    size_t o = 0;
    if (cap == 0) return SR_ETOOBIG;
    if (put("otpauth://totp/", out, cap, &o) || pct(issuer, out, cap, &o) || put(":", out, cap, &o) ||
        pct(account, out, cap, &o) || put("?secret=", out, cap, &o) || put(b32, out, cap, &o) ||
        put("&issuer=", out, cap, &o) || pct(issuer, out, cap, &o) || put(tail, out, cap, &o)) {
        out[0] = '\0';
        return SR_ETOOBIG;
    }
    out[o] = '\0';
    return SR_OK;
}
