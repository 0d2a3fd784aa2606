/* tests/api/test_jsonw.c -- the value writers' formatters (api/httpu.c):
 * sr_json_number must write exactly what the printf/strtod definition writes
 * (a decimal of the fewest places, up to 6, that reads back; else the
 * shortest of %.15g/%.16g/%.17g that reads back; always a '.'), every number
 * must read back as the double it came from, and a decimal as sent comes back
 * in its shortest text (number_shortest, issue #13); sr_json_ts_put must write exactly what
 * sr_rfc3339_format writes, across days, leap days, years and before 1970;
 * sr_json_i64/u64 exactly what printf writes. */
#include "api/httpu.h"
#include "codecs/rfc3339.h"

#include <criterion/criterion.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The definition, with printf and strtod: a decimal of the fewest places
 * k <= 6 (its digits, leading zeros aside, fewer than 16) whose %.kf text
 * strtod reads back as f, always with a '.'; else the shortest %.Ng. (Before
 * issue #13 the definition took the first k at which the product f * 10^k
 * was an integer: 81.82 * 100 is 8181.999999999999 but 81.82 * 1000 is
 * 81820.0, so it wrote "81.820"; test_number_shortest shows the
 * difference.) */
static int ref_number(char *t, double f)
{
    if (!isfinite(f)) {
        memcpy(t, "null", 4);
        return 4;
    }
    /* (no 6-place text reads back: no text of fewer places does either, as
     * it would be a 6-place text too, the nearest one) */
    if (fabs(f) < 1e15 && (f != 0 || !signbit(f)) && (snprintf(t, 40, "%.6f", f), strtod(t, NULL) == f))
        for (int k = 0; k <= 6; k++) {
            int n = snprintf(t, 40, "%.*f", k, f);
            int digits = 0, lead = 1;
            for (int i = 0; i < n; i++)
                if (t[i] >= '0' && t[i] <= '9' && (t[i] != '0' || !lead)) {
                    digits++;
                    lead = 0;
                }
            if (digits > 15) break;
            double back = strtod(t, NULL);
            if (back != f || signbit(back) != signbit(f)) continue;
            if (!k) {
                t[n++] = '.';
                t[n++] = '0';
            }
            return n;
        }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, 40, "%.*g", prec, f);
        if (n <= 0 || n >= 37) return 0;
        if (strtod(t, NULL) == f) break;
    }
    if (!strpbrk(t, ".eE")) {
        t[n++] = '.';
        t[n++] = '0';
    }
    return n;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long checked;
static int khint; /* carried from value to value, as the writers do */

static void check(double f)
{
    char a[48], b[48], c[48], e[48];
    int na = sr_json_number(a, f), nb = ref_number(b, f);
    a[na > 0 ? na : 0] = b[nb > 0 ? nb : 0] = 0;
    cr_assert_eq(na, nb, "%.17g: \"%s\" vs the definition's \"%s\"", f, a, b);
    cr_assert_str_eq(a, b, "%.17g", f);
    /* with the hint of the previous value, and with any hint */
    int nc = sr_json_number_k(c, f, &khint);
    c[nc > 0 ? nc : 0] = 0;
    cr_assert_str_eq(c, b, "%.17g with a carried hint", f);
    int any = (int)(next() % 9) - 1;
    int ne = sr_json_number_k(e, f, &any);
    e[ne > 0 ? ne : 0] = 0;
    cr_assert_str_eq(e, b, "%.17g with a hint", f);
    if (isfinite(f)) {
        double back = strtod(a, NULL);
        cr_assert(back == f && signbit(back) == signbit(f), "%.17g does not read back from \"%s\"", f, a);
    }
    checked++;
}

Test(jsonw, number_edges)
{
    double e[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.2, 0.29, 0.3, 0.30000000000000004, 1.0 / 3, 2.0 / 3, -1.0 / 3,
                  1e15, -1e15, 999999999999999.0, 999999999999999.9, 123456789012345.6, 1e16, 1e17, 1e21, 1e22,
                  1e-4, 1e-5, 9.999999999999999e-5, 0.000123456, 1.5e-7, 604.22, 354.18, -273.15, 12345.678901,
                  4503599627370496.0, 4503599627370497.0, 9007199254740991.0, 9007199254740992.0,
                  9007199254740993.0, -9007199254740991.0, 18446744073709551616.0, DBL_MAX, -DBL_MAX, DBL_MIN,
                  DBL_MIN / 4, 5e-324, DBL_EPSILON, 1 + DBL_EPSILON, 0.5, 0.25, 0.125, 1.0 / 1024, 100.0 / 7,
                  INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) check(e[i]);
    /* around powers of ten and of two (the quarter-unit case below 2^n) */
    for (int i = -8; i <= 22; i++) {
        double p = pow(10, i);
        for (int s = -3; s <= 3; s++) {
            double x = p;
            for (int k = 0; k < abs(s); k++) x = nextafter(x, s < 0 ? 0 : INFINITY);
            check(x);
            check(-x);
        }
    }
    for (int i = -30; i <= 64; i++) {
        double p = ldexp(1, i);
        check(p);
        check(nextafter(p, 0));
        check(nextafter(p, INFINITY));
        check(p * 1.1);
    }
    /* the largest integers of each width of mantissa */
    for (int i = 1; i <= 63; i++) check((double)((1ull << i) - 1));
}

Test(jsonw, number_random)
{
    /* any bit pattern (mostly the printf path) */
    for (int i = 0; i < 200000; i++) {
        uint64_t u = next();
        double f;
        memcpy(&f, &u, 8);
        check(f);
    }
    /* doubles of ordinary size: uniform significand, exponent 2^-20..2^60 */
    for (int i = 0; i < 300000; i++) {
        double f = ldexp((double)(next() >> 11) / 9007199254740992.0 + 0.5, (int)(next() % 81) - 20);
        check(next() & 1 ? f : -f);
    }
    /* decimals of 0..9 places, mantissas of 1..17 digits; runs of the same
     * places (what the hint is for), mantissas ending in 0 among them */
    for (int i = 0; i < 300000; i++) {
        static int places = 2;
        if (next() % 8 == 0) places = (int)(next() % 10);
        int digits = 1 + (int)(next() % 17);
        uint64_t m = next() % (uint64_t)pow(10, digits);
        if (next() % 4 == 0) m -= m % 10;
        double f = (double)m / pow(10, places);
        check(next() & 1 ? f : -f);
    }
    /* averages of 2-decimal values (a downsample's avg), sums */
    for (int i = 0; i < 300000; i++) {
        int n = 1 + (int)(next() % 3600);
        double sum = 0;
        int64_t c = 10000 + (int64_t)(next() % 50000);
        for (int k = 0; k < (n < 60 ? n : 60); k++) sum += (double)(c + (int64_t)(next() % 21) - 10) / 100.0;
        check(sum);
        check(sum / (double)(n < 60 ? n : 60));
    }
    cr_assert_gt(checked, 1000000);
}

/* The text a gateway sends, "%d.%0kd", trimmed of trailing zeros (one
 * kept after the point): what every answer must give back for it. */
static void sent_text(char *t, int64_t m, int k)
{
    uint64_t a = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m, p = 1;
    for (int i = 0; i < k; i++) p *= 10;
    int n = snprintf(t, 48, "%s%" PRIu64 ".%0*" PRIu64, m < 0 ? "-" : "", a / p, k ? k : 1, k ? a % p : 0);
    while (t[n - 1] == '0' && t[n - 2] != '.') t[--n] = 0;
}

/* Issue #13: every decimal of up to 6 places comes back in its shortest
 * text ("81.82", never "81.820"), with and without the carried hint; on
 * the old writer 11 % of two-decimal values below 10,000 got a third place.
 * Independent of the definition above: the expected text is built from the
 * integer digits. */
Test(jsonw, number_shortest)
{
    char a[48], c[48], e[48];
    int kh = 0;
    long wrong = 0;
    for (int k = 1; k <= 6; k++) {
        int64_t step = k == 2 ? 1 : k == 1 ? 7 : 997; /* every 2-place value -1,000..10,000, samples of the others */
        for (int64_t m = k == 2 ? -100000 : -1000000; m <= 1000000; m += step) {
            double f = (double)m / pow(10, k);
            sent_text(e, m, k);
            int na = sr_json_number(a, f), nc = sr_json_number_k(c, f, &kh);
            a[na] = c[nc] = 0;
            if (strcmp(a, e) || strcmp(c, e)) {
                if (wrong++ < 5) cr_log_error("%s sent, \"%s\" / \"%s\" (with the hint) answered", e, a, c);
            }
        }
    }
    cr_assert_eq(wrong, 0, "%ld decimals not in their shortest form", wrong);
}

Test(jsonw, integers)
{
    int64_t v[] = {0, 1, -1, 9, 10, 99, 100, -100, 1234567890123, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1000000000000000000};
    char a[32], b[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int n = sr_json_i64(a, v[i]);
        a[n] = 0;
        snprintf(b, sizeof b, "%" PRId64, v[i]);
        cr_assert_str_eq(a, b);
    }
    for (int i = 0; i < 100000; i++) {
        uint64_t u = next() >> (next() % 64);
        int n = sr_json_u64(a, u);
        a[n] = 0;
        snprintf(b, sizeof b, "%" PRIu64, u);
        cr_assert_str_eq(a, b);
        n = sr_json_i64(a, (int64_t)u);
        a[n] = 0;
        snprintf(b, sizeof b, "%" PRId64, (int64_t)u);
        cr_assert_str_eq(a, b);
    }
}

static void ts_check(sr_json_ts *c, int64_t ms)
{
    char a[32], b[32];
    sr_json_ts_put(c, ms, a);
    sr_rfc3339_format(ms, b);
    cr_assert_str_eq(a, b, "ms %" PRId64, ms);
}

Test(jsonw, timestamps)
{
    static const char *at[] = {"1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1900-02-28T23:59:59Z",
                               "2000-02-28T23:59:59Z", "2023-11-15T00:00:00Z", "2023-12-31T23:59:58Z",
                               "2024-02-28T23:59:58Z", "2100-02-28T23:59:58Z", "0000-01-01T00:00:00Z",
                               "1600-02-29T00:00:00Z", "9999-12-31T23:59:59Z"};
    sr_json_ts c = {0};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        int64_t t0;
        cr_assert_eq(sr_rfc3339_parse(at[i], strlen(at[i]), &t0), SR_OK, "%s", at[i]);
        /* 1 s steps and 1 ms steps over the boundary, then backwards */
        for (int64_t k = -3000; k <= 3000; k++) ts_check(&c, t0 + k);
        for (int64_t k = 5000; k >= -5000; k -= 7) ts_check(&c, t0 + k * 1000);
        for (int64_t k = 0; k < 400; k++) ts_check(&c, t0 + k * 86400000 + 86399999);
        /* 1 s steps forward over minutes, hours, the day, from several phases */
        for (int64_t ph = 0; ph < 3; ph++)
            for (int64_t k = -4000; k <= 4000; k++) ts_check(&c, t0 + ph * 333 + k * 1000);
    }
    /* past year 9999 and before year 0: no fixed width, not cached */
    int64_t y10k;
    cr_assert_eq(sr_rfc3339_parse("9999-12-31T23:59:59.999Z", 24, &y10k), SR_OK);
    for (int64_t k = -2; k <= 86400001; k += 3600000) ts_check(&c, y10k + k);
    ts_check(&c, -62167219200001); /* 0000-01-01 minus 1 ms */
    ts_check(&c, SR_JSON_TS_MAX + 1);
    ts_check(&c, -SR_JSON_TS_MAX - 1);
    ts_check(&c, INT64_MAX);
    ts_check(&c, INT64_MIN);
    ts_check(&c, 0);
    /* random times 1900..2100, in order and not */
    int64_t lo = -2208988800000, span = 6311390400000;
    int64_t t = lo;
    for (int i = 0; i < 200000; i++) {
        t += (int64_t)(next() % 100000000);
        if (t > lo + span) t = lo;
        ts_check(&c, t);
        ts_check(&c, lo + (int64_t)(next() % (uint64_t)span));
    }
}

/* The one JSON string escaper (codecs/jsonlex.h, used by the AP-IF writers,
 * apsim and suiro replay): every byte below 0x80 and a UTF-8 text read
 * back through jansson as they were, with the short escapes for '"', '\\',
 * newline and tab. */
Test(jsonw, one_string_escaper_reads_back_through_jansson)
{
    char in[128 + 16];
    for (int i = 0; i < 128; i++) in[i] = (char)(i ? i : 'x');
    memcpy(in + 128, "\xe6\xb0\xb4\xe9\x81\x93\"\\", 8); /* 水道"\ */
    size_t n = 136;
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_json_put_string(&b, in, n), 0);
    json_error_t e;
    json_t *v = json_loadb((const char *)b.data, b.len, JSON_DECODE_ANY, &e);
    cr_assert(json_is_string(v), "%s", e.text);
    cr_expect_eq(json_string_length(v), n);
    cr_expect_eq(memcmp(json_string_value(v), in, n), 0);
    json_decref(v);
    b.len = 0;
    cr_assert_eq(sr_json_put_string(&b, "a\"b\\c\nd\te\x01", 10), 0);
    cr_expect_eq(b.len, strlen("\"a\\\"b\\\\c\\nd\\te\\u0001\""));
    cr_expect_eq(memcmp(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001\"", b.len), 0);
    sr_buf_release(&b);
}

/* The result answer without a detail is written without a tree (every GW-IF
 * values request has one): the same bytes the tree gives through
 * sr_json_write, whatever the message holds. */
Test(jsonw, a_result_without_detail_is_the_trees_bytes)
{
    static const char *msgs[] = {"stored", "", "duplicate; stored once", "quote \" backslash \\ slash /",
                                 "tab\tnewline\ncontrol \x01\x1f", "UTF-8: \xc3\xa9\xe6\xb0\xb4 \xf0\x9f\x92\xa7"};
    static const sr_wire codes[] = {SR_WIRE_OK, SR_WIRE_PARAM, SR_WIRE_BUSY, SR_WIRE_UNAUTH};
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++)
        for (size_t k = 0; k < sizeof codes / sizeof *codes; k++) {
            sr_buf got, want;
            sr_buf_init(&got);
            sr_buf_init(&want);
            cr_assert_eq(sr_http_result_body(&got, codes[k], msgs[i], NULL), SR_OK);
            json_t *o = json_pack("{s:{s:s,s:s}}", "result", "code", sr_wire_code(codes[k]), "message", msgs[i]);
            cr_assert_eq(sr_json_write(&want, o), SR_OK);
            json_decref(o);
            cr_assert(got.len == want.len && !memcmp(got.data, want.data, got.len), "%.*s\nwant %.*s", (int)got.len,
                      (const char *)got.data, (int)want.len, (const char *)want.data);
            sr_buf_release(&got);
            sr_buf_release(&want);
        }
    /* with a detail, the tree: the detail is kept */
    sr_buf b;
    sr_buf_init(&b);
    json_t *d = json_pack("[{s:i}]", "index", 3);
    cr_assert_eq(sr_http_result_body(&b, SR_WIRE_PARAM, "bad", d), SR_OK);
    json_decref(d);
    cr_assert(memmem(b.data, b.len, "\"detail\":[{\"index\":3}]", 22) != NULL, "%.*s", (int)b.len, (const char *)b.data);
    sr_buf_release(&b);
}
