/* tests/engine/test_totp.c -- TOTP (engine/totp.h) against RFC 6238's
 * appendix B (the SHA-1 vectors) and RFC 4226's appendix D, the window of
 * one step of drift, replay refusal, the enrolment URI; base32
 * (codecs/base32.h) against RFC 4648 section 10; and a cross-check with
 * oathtool (Debian's independent implementation, installed by
 * scripts/deps.sh) over random secrets and times. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/base32.h"
#include "engine/totp.h"
#include "storage/crypto.h"

static const uint8_t rfc_key[] = "12345678901234567890"; /* 20 bytes, appendix B's SHA-1 seed */

/* RFC 6238 appendix B, SHA-1 rows: time -> 8-digit TOTP */
static const struct {
    int64_t t;
    uint32_t code8;
} rfc6238[] = {
    {59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
    {1234567890, 89005924}, {2000000000, 69279037}, {20000000000, 65353130},
};

Test(totp, rfc6238_appendix_b_sha1_vectors_8_and_6_digits)
{
    for (size_t i = 0; i < sizeof rfc6238 / sizeof rfc6238[0]; i++) {
        uint32_t c8 = 0, c6 = 0;
        uint64_t st = sr_totp_step(rfc6238[i].t);
        cr_assert_eq(sr_hotp(rfc_key, 20, st, 8, &c8), SR_OK);
        cr_expect_eq(c8, rfc6238[i].code8, "T=%" PRId64 ": %08u", rfc6238[i].t, c8);
        cr_assert_eq(sr_hotp(rfc_key, 20, st, SR_TOTP_DIGITS, &c6), SR_OK);
        cr_expect_eq(c6, rfc6238[i].code8 % 1000000, "T=%" PRId64 ": %06u", rfc6238[i].t, c6);
        /* and the 6-digit text verifies at that time */
        char txt[8];
        snprintf(txt, sizeof txt, "%06u", rfc6238[i].code8 % 1000000);
        uint64_t got = 0;
        cr_expect_eq(sr_totp_verify(rfc_key, 20, txt, 6, rfc6238[i].t, 0, &got), SR_OK, "T=%" PRId64, rfc6238[i].t);
        cr_expect_eq(got, st);
    }
}

Test(totp, rfc4226_appendix_d_hotp_vectors)
{
    static const uint32_t want[10] = {755224, 287082, 359152, 969429, 338314,
                                      254676, 287922, 162583, 399871, 520489};
    for (uint64_t c = 0; c < 10; c++) {
        uint32_t code = 0;
        cr_assert_eq(sr_hotp(rfc_key, 20, c, 6, &code), SR_OK);
        cr_expect_eq(code, want[c], "counter %" PRIu64, c);
    }
    uint32_t code;
    cr_expect_eq(sr_hotp(rfc_key, 20, 0, 5, &code), SR_EINVAL);
    cr_expect_eq(sr_hotp(rfc_key, 20, 0, 9, &code), SR_EINVAL);
}

static void code_at(uint64_t step, char out[8])
{
    uint32_t c = 0;
    cr_assert_eq(sr_hotp(rfc_key, 20, step, 6, &c), SR_OK);
    snprintf(out, 8, "%06u", c);
}

Test(totp, one_step_of_drift_either_way_is_accepted_two_are_refused)
{
    const int64_t now = 1700000015; /* mid-step */
    const uint64_t st = sr_totp_step(now);
    for (int d = -3; d <= 3; d++) {
        char c[8];
        code_at(st + (uint64_t)(int64_t)d, c);
        uint64_t got = 0;
        int rc = sr_totp_verify(rfc_key, 20, c, 6, now, 0, &got);
        if (d >= -1 && d <= 1) {
            cr_expect_eq(rc, SR_OK, "drift %d", d);
            cr_expect_eq(got, st + (uint64_t)(int64_t)d, "drift %d", d);
        } else {
            cr_expect_eq(rc, SR_ENOTFOUND, "drift %d", d);
        }
    }
    /* the step boundary: the last second of a step and the first of the next */
    char c[8];
    code_at(st + 2, c);
    uint64_t got;
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, (int64_t)(st + 1) * 30 - 1, 0, &got), SR_ENOTFOUND);
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, (int64_t)(st + 1) * 30, 0, &got), SR_OK);
}

Test(totp, a_replayed_code_or_one_at_or_before_the_last_accepted_step_is_refused)
{
    const int64_t now = 1700000015;
    const uint64_t st = sr_totp_step(now);
    char c[8];
    code_at(st, c);
    uint64_t last = 0, got = 0;
    cr_assert_eq(sr_totp_verify(rfc_key, 20, c, 6, now, last, &last), SR_OK);
    cr_assert_eq(last, st);
    /* the same code again, in the same step or the next (still in the window) */
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, now, last, &got), SR_ENOTFOUND);
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, now + 30, last, &got), SR_ENOTFOUND);
    /* the previous step's code, though within the drift, is older than the last accepted */
    code_at(st - 1, c);
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, now, last, &got), SR_ENOTFOUND);
    /* the next step's code is fresh */
    code_at(st + 1, c);
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, now, last, &got), SR_OK);
    cr_expect_eq(got, st + 1);
}

Test(totp, a_wrong_code_and_text_that_is_no_code)
{
    const int64_t now = 1700000015;
    const uint64_t st = sr_totp_step(now);
    char c[8];
    code_at(st, c);
    c[5] = c[5] == '9' ? '0' : (char)(c[5] + 1);
    uint64_t got = 0;
    cr_expect_eq(sr_totp_verify(rfc_key, 20, c, 6, now, 0, &got), SR_ENOTFOUND);
    static const char *bad[] = {"", "12345", "1234567", "12345a", " 12345", "12345 ", "-12345", "+12345", "١٢٣"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(sr_totp_verify(rfc_key, 20, bad[i], strlen(bad[i]), now, 0, &got), SR_EINVAL, "'%s'", bad[i]);
    uint32_t v = 1;
    cr_expect_eq(sr_totp_parse("000000", 6, &v), SR_OK);
    cr_expect_eq(v, 0);
    cr_expect_eq(sr_totp_parse("012345x", 6, &v), SR_OK); /* exactly n bytes count */
    cr_expect_eq(v, 12345);
}

Test(totp, a_new_secret_is_20_random_bytes)
{
    uint8_t a[SR_TOTP_SECRET_LEN], b[SR_TOTP_SECRET_LEN];
    cr_assert_eq(sr_totp_secret(a), SR_OK);
    cr_assert_eq(sr_totp_secret(b), SR_OK);
    cr_expect_eq(SR_TOTP_SECRET_LEN, 20);
    cr_expect_neq(memcmp(a, b, sizeof a), 0);
}

Test(totp, the_enrolment_uri)
{
    char uri[SR_TOTP_URI_MAX];
    cr_assert_eq(sr_totp_uri("suiro", "alice", rfc_key, 20, uri, sizeof uri), SR_OK);
    cr_expect_str_eq(uri, "otpauth://totp/suiro:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=suiro"
                          "&algorithm=SHA1&digits=6&period=30");
    /* the label and the issuer are percent-encoded, UTF-8 byte by byte */
    cr_assert_eq(sr_totp_uri("Tokyo Water & Co", "a.b@example.jp", rfc_key, 20, uri, sizeof uri), SR_OK);
    cr_expect_str_eq(uri, "otpauth://totp/Tokyo%20Water%20%26%20Co:a.b%40example.jp?secret="
                          "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tokyo%20Water%20%26%20Co"
                          "&algorithm=SHA1&digits=6&period=30");
    cr_assert_eq(sr_totp_uri("水道", "u~_-", rfc_key, 5, uri, sizeof uri), SR_OK);
    cr_expect_str_eq(uri, "otpauth://totp/%E6%B0%B4%E9%81%93:u~_-?secret=GEZDGNBV&issuer=%E6%B0%B4%E9%81%93"
                          "&algorithm=SHA1&digits=6&period=30");
    /* a ':' would split the label elsewhere; empty and control bytes are refused */
    cr_expect_eq(sr_totp_uri("a:b", "c", rfc_key, 20, uri, sizeof uri), SR_EINVAL);
    cr_expect_eq(sr_totp_uri("a", "b:c", rfc_key, 20, uri, sizeof uri), SR_EINVAL);
    cr_expect_eq(sr_totp_uri("", "c", rfc_key, 20, uri, sizeof uri), SR_EINVAL);
    cr_expect_eq(sr_totp_uri("a", "c\n", rfc_key, 20, uri, sizeof uri), SR_EINVAL);
    /* too small a buffer: an empty string and SR_ETOOBIG, never a cut URI */
    cr_expect_eq(sr_totp_uri("suiro", "alice", rfc_key, 20, uri, 40), SR_ETOOBIG);
    cr_expect_str_eq(uri, "");
    /* the longest names fit SR_TOTP_URI_MAX */
    char big[SR_TOTP_NAME_MAX + 1];
    memset(big, '%', SR_TOTP_NAME_MAX);
    big[SR_TOTP_NAME_MAX] = '\0';
    uint8_t k64[64] = {0};
    cr_expect_eq(sr_totp_uri(big, big, k64, 64, uri, sizeof uri), SR_OK);
}

/* RFC 4648 section 10 */
static const char *const b32_in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const b32_pad[] = {"", "MY======", "MZXQ====", "MZXW6===", "MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======"};

Test(base32, rfc4648_vectors_padded_and_not)
{
    for (size_t i = 0; i < 7; i++) {
        char out[32];
        size_t n = strlen(b32_in[i]);
        size_t w = sr_base32((const uint8_t *)b32_in[i], n, out, 1);
        cr_expect_str_eq(out, b32_pad[i]);
        cr_expect_eq(w, sr_base32_len(n, 1));
        char want[32];
        strcpy(want, b32_pad[i]);
        want[strcspn(want, "=")] = '\0';
        w = sr_base32((const uint8_t *)b32_in[i], n, out, 0);
        cr_expect_str_eq(out, want);
        cr_expect_eq(w, sr_base32_len(n, 0));
        /* both spellings, and lower case, decode back */
        const char *forms[3] = {b32_pad[i], want, NULL};
        char lower[32];
        for (size_t j = 0; j <= strlen(want); j++) lower[j] = (char)(want[j] >= 'A' && want[j] <= 'Z' ? want[j] + 32 : want[j]);
        forms[2] = lower;
        for (int f = 0; f < 3; f++) {
            uint8_t back[16];
            size_t bl = 99;
            cr_assert_eq(sr_unbase32(forms[f], strlen(forms[f]), back, sizeof back, &bl), SR_OK, "%s", forms[f]);
            cr_expect_eq(bl, n, "%s", forms[f]);
            cr_expect_eq(memcmp(back, b32_in[i], n), 0, "%s", forms[f]);
        }
    }
}

Test(base32, what_is_not_base32_is_refused)
{
    static const char *bad[] = {
        "M",          /* 1 char: no byte ends there */
        "MZX",        /* 3 */
        "MZXW6Y",     /* 6 */
        "MY=",        /* padding not to a full group */
        "MY=======",  /* too much padding */
        "MZXW6YQ==",  /* 9 chars */
        "========",   /* padding alone */
        "MZ=XQ===",   /* '=' inside */
        "MZXW1YQ",    /* 1 is not in the alphabet */
        "MZXW 6YQ",   /* no spaces */
        "MZ",         /* trailing bits of 'f'+... not zero: M=12,Z=25 -> bits left 01 */
    };
    uint8_t out[16];
    size_t n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(sr_unbase32(bad[i], strlen(bad[i]), out, sizeof out, &n), SR_ECODEC, "'%s'", bad[i]);
    /* too small an output */
    cr_expect_eq(sr_unbase32("MZXW6YTB", 8, out, 4, &n), SR_ETOOBIG);
    cr_expect_eq(sr_unbase32("MZXW6YTB", 8, out, 5, &n), SR_OK);
}

Test(base32, encode_then_decode_is_the_identity)
{
    uint8_t in[64], back[64];
    char text[128];
    for (size_t n = 0; n <= sizeof in; n++) {
        cr_assert_eq(sr_random(in, sizeof in), SR_OK);
        for (int pad = 0; pad < 2; pad++) {
            size_t w = sr_base32(in, n, text, pad), bl = 0;
            cr_assert_eq(sr_unbase32(text, w, back, sr_unbase32_cap(w), &bl), SR_OK, "%s", text);
            cr_assert_eq(bl, n);
            cr_assert_eq(memcmp(in, back, n), 0);
        }
    }
}

/* ---- the cross-check with oathtool ---- */

static const char *oathtool_path(void)
{
    static const char *const where[] = {"/usr/bin/oathtool", "/usr/local/bin/oathtool", "/bin/oathtool"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        FILE *f = fopen(where[i], "r");
        if (f) {
            fclose(f);
            return where[i];
        }
    }
    return NULL;
}

Test(totp, oathtool_computes_the_same_codes_and_ours_accepts_them)
{
    const char *tool = oathtool_path();
    cr_assert(tool, "oathtool is not installed: run scripts/deps.sh (Debian package oathtool); "
                    "this test cross-checks TOTP against it");
    for (int i = 0; i < 40; i++) {
        uint8_t key[SR_TOTP_SECRET_LEN];
        cr_assert_eq(sr_totp_secret(key), SR_OK);
        uint32_t r;
        cr_assert_eq(sr_random(&r, sizeof r), SR_OK);
        int64_t t = 1000000000 + (int64_t)(r % 3000000000u); /* 2001 .. 2096 */
        char b32[64];
        sr_base32(key, sizeof key, b32, 0);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s --totp --base32 -d 6 -N @%" PRId64 " %s", tool, t, b32);
        FILE *p = popen(cmd, "r");
        cr_assert(p, "%s", cmd);
        char line[32] = {0};
        char *ok = fgets(line, sizeof line, p);
        int st = pclose(p);
        cr_assert(ok && st == 0, "%s: exit %d", cmd, st);
        line[strcspn(line, "\r\n")] = '\0';
        uint32_t ours = 0;
        cr_assert_eq(sr_hotp(key, sizeof key, sr_totp_step(t), 6, &ours), SR_OK);
        char mine[8];
        snprintf(mine, sizeof mine, "%06u", ours);
        cr_expect_str_eq(line, mine, "%s", cmd);
        uint64_t got = 0;
        cr_expect_eq(sr_totp_verify(key, sizeof key, line, strlen(line), t, 0, &got), SR_OK, "%s", cmd);
        cr_expect_eq(got, sr_totp_step(t));
        /* oathtool's code for the step before is accepted a step later too (drift) */
        cr_expect_eq(sr_totp_verify(key, sizeof key, line, strlen(line), t + 30, 0, &got), SR_OK, "%s", cmd);
    }
}
