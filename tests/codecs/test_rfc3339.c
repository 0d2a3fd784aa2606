/* tests/codecs/test_rfc3339.c -- RFC 3339 parsing and formatting. */
#include <criterion/criterion.h>
#include <string.h>

#include "codecs/rfc3339.h"
#include "testutil.h"

static int64_t p(const char *s)
{
    int64_t ms = 0;
    cr_assert_eq(sr_rfc3339_parse(s, strlen(s), &ms), SR_OK, "%s", s);
    return ms;
}

Test(rfc3339, known_instants_and_offsets)
{
    /* in is the instant ms, or the same instant as `same` when that is set */
    static const struct {
        const char *in, *same;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", NULL, 0},
        {"1970-01-01T00:00:00.001Z", NULL, 1},
        {"2026-04-01T09:00:00.000+09:00", "2026-04-01T00:00:00Z", 0},
        {"2026-04-01T00:00:00Z", NULL, 1775001600000},
        {"2000-02-29T12:00:00.5Z", NULL, 951825600500},
        {"2026-01-01T00:00:00.123456789-05:30", "2026-01-01T05:30:00.123Z", 0},
        {"1969-12-31T23:59:59.999Z", NULL, -1},
        {"2026-06-30t23:59:60z", "2026-06-30T23:59:59Z", 0}, /* leap seconds clamp */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t want = cases[i].same ? p(cases[i].same) : cases[i].ms;
        cr_expect_eq(p(cases[i].in), want, "'%s'", cases[i].in);
    }
}

Test(rfc3339, impossible_or_malformed_inputs_are_refused)
{
    static const char *bad[] = {"", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
                                "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:00",
                                "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0900", "2026-01-01T00:00:00+09:00x",
                                "2026-1-01T00:00:00Z", "２０２６-01-01T00:00:00Z", "2026-01-01X00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        cr_assert_eq(sr_rfc3339_parse(bad[i], strlen(bad[i]), &ms), SR_EINVAL, "accepted '%s'", bad[i]);
    }
}

Test(rfc3339, format_then_parse_round_trips_across_centuries)
{
    tu_rng r = {9};
    for (int i = 0; i < 100000; i++) {
        int64_t ms = (int64_t)(tu_next(&r) % 253402300799999ull) - (i % 2 ? 0 : 62135596800000 / 2);
        if (ms < -62135596800000) ms = -ms; /* keep years >= 1 */
        char buf[32];
        sr_rfc3339_format(ms, buf);
        cr_assert_eq(strlen(buf), 24, "%s", buf);
        cr_assert_eq(p(buf), ms, "%s", buf);
    }
    char b[32];
    sr_rfc3339_format(0, b);
    cr_assert_str_eq(b, "1970-01-01T00:00:00.000Z");
}

/* The cached parser reads only the seconds on when the minute repeats: it
 * must answer exactly as the plain one for every input, in any order,
 * including a bad tail after a good prefix and a bad prefix after a good
 * one (the cache must not vouch for what it did not read). */
Test(rfc3339, cached_parse_agrees_with_the_plain_one)
{
    static const char *in[] = {
        "2026-04-01T09:00:00.000+09:00", "2026-04-01T09:00:01.500+09:00", "2026-04-01T09:00:59Z",
        "2026-04-01T09:00:60Z",          "2026-04-01T09:00:61Z",          "2026-04-01T09:00:0xZ",
        "2026-04-01T09:00:01.Z",         "2026-04-01T09:00:01.123456-05:30", "2026-04-01T09:01:00Z",
        "2026-02-30T09:01:00Z",          "2026-02-30T09:01:01Z",          "2026-04-01T09:01:02z",
        "2026-04-01t09:01:03Z",          "2026-04-01T09:01:03",           "2026-04-01T09:01",
        "2025-02-29T00:00:00Z",          "2024-02-29T00:00:00Z",          "2024-02-29T00:00:01.9Z",
        "1969-12-31T23:59:59.999Z",      "2026-04-01T09:01:03+09:00x",    "2026-04-01 09:01:04Z"};
    tu_rng r = {3};
    sr_rfc3339_cache c = {0};
    for (int round = 0; round < 2000; round++) {
        const char *s = in[tu_next(&r) % (sizeof in / sizeof in[0])];
        int64_t a = 7, b = 7;
        int ra = sr_rfc3339_parse(s, strlen(s), &a), rb = sr_rfc3339_parse_cached(&c, s, strlen(s), &b);
        cr_assert_eq(ra, rb, "'%s': plain %d, cached %d", s, ra, rb);
        if (ra == SR_OK) cr_assert_eq(a, b, "'%s'", s);
    }
    /* every second of a minute, then the next minute: one prefix parse each */
    sr_rfc3339_cache d = {0};
    for (int s = 0; s < 120; s++) {
        char buf[32];
        sr_rfc3339_format(1775001600000 + s * 1000 + 7, buf);
        int64_t ms;
        cr_assert_eq(sr_rfc3339_parse_cached(&d, buf, strlen(buf), &ms), SR_OK, "%s", buf);
        cr_assert_eq(ms, 1775001600000 + s * 1000 + 7, "%s", buf);
    }
}

/* sr_time_parse: the one parser of time arguments (AP-IF query parameters,
 * `suiro replay --from/--to`): RFC 3339 with any offset and fraction, "now",
 * and now minus a decimal duration in ms, s, m, h or d. */
Test(rfc3339, time_arguments_relative_offsets_and_fractions)
{
    const int64_t now = 1795317600000; /* 2026-11-22T03:20:00Z */
    static const struct {
        const char *in;
        int64_t want; /* now-relative when rel */
        int rel;
    } good[] = {
        {"now", 0, 1},
        {"-1h", -3600000, 1},
        {"-30m", -1800000, 1},
        {"-10s", -10000, 1},
        {"-2d", -172800000, 1},
        {"-500ms", -500, 1},
        {"-1.5h", -5400000, 1},
        {"-0.5s", -500, 1},
        {"-.5s", -500, 1},
        {"-0s", 0, 1},
        {"-1000000s", -1000000000, 1},
        {"2026-11-22T03:20:00Z", 1795317600000, 0},
        {"2026-11-22T12:20:00+09:00", 1795317600000, 0},
        {"2026-11-21T22:20:00-05:00", 1795317600000, 0},
        {"2026-11-22T14:21:00+09:00", 1795324860000, 0},    /* 05:21:00Z */
        {"2026-11-22T03:20:00.5Z", 1795317600500, 0},          /* .5 is 500 ms, not 5 */
        {"2026-11-22T03:20:00.05Z", 1795317600050, 0},         /* .05 is 50 ms */
        {"2026-11-22T03:20:00.005Z", 1795317600005, 0},
        {"2026-11-22T03:20:00.1239Z", 1795317600123, 0},       /* truncated to ms */
        {"2026-11-22T12:20:00.5+09:00", 1795317600500, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = 7;
        int rc = sr_time_parse(good[i].in, strlen(good[i].in), now, &ms);
        cr_assert_eq(rc, SR_OK, "refused '%s'", good[i].in);
        int64_t want = good[i].rel ? now + good[i].want : good[i].want;
        cr_assert_eq(ms, want, "'%s': %lld, want %lld", good[i].in, (long long)ms, (long long)want);
    }
    static const char *bad[] = {"",      "-",     "-h",    "-1",     "-1x",       "-1hh",   "-1 h",   "+1h",
                                "1h",    "-1.h",  "-1..5h", "-0x10s", "-1e3s",    "-inf s", "-nans",  "NOW",
                                "now ",  "-1h ",  "-2000000s", "-1000001d", "2026-11-22T03:20:00", "yesterday",
                                "2026-11-22T03:20:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        cr_assert_eq(sr_time_parse(bad[i], strlen(bad[i]), now, &ms), SR_EINVAL, "accepted '%s'", bad[i]);
    }
    /* the length bounds the input: "now" inside a longer buffer */
    int64_t ms;
    cr_assert_eq(sr_time_parse("nowhere", 3, now, &ms), SR_OK);
    cr_assert_eq(ms, now);
}
