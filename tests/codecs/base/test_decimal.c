/* tests/codecs/base/test_decimal.c -- codecs/base/sr_decimal.h, the one
 * definition of "f is the decimal m / 10^k" (the series encoder's version 2
 * chunks, the number writer's places): sr_decimal_at gives the fewest places
 * of every decimal (checked against the digits the value was made from,
 * independently of the rounding of f * 10^k -- the bug of issue #13 took
 * 81.82 for a 3-place decimal because 81.82 * 1000 is exactly 81820.0);
 * sr_decimal_maybe never says no to a decimal; non-decimals, -0.0, NaN,
 * infinities and mantissas over the bound are none. */
#include "codecs/base/sr_decimal.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* m / 10^k with m not a multiple of 10 (k > 0): its fewest places are k */
static void fewest(int64_t m, int k, uint64_t max)
{
    double f = sr_dec_value(m, (unsigned)k);
    int64_t got = 0;
    cr_assert(sr_decimal_maybe(f), "%lld / 10^%d: maybe said no", (long long)m, k);
    int at = sr_decimal_at(f, 0, max, &got);
    cr_assert_eq(at, k, "%lld / 10^%d (%.17g): places %d", (long long)m, k, f, at);
    cr_assert_eq(got, m, "%lld / 10^%d: mantissa %lld", (long long)m, k, (long long)got);
    /* from a larger scale: the mantissa scaled up */
    if (k < SR_DEC_MAX_SCALE && (uint64_t)llabs(m) * 10 <= max) {
        cr_assert_eq(sr_decimal_at(f, k + 1, max, &got), k + 1);
        cr_assert_eq(got, m * 10);
    }
}

Test(decimal, fewest_places)
{
    /* the two-decimal walk of the reference set and more: every cents value to 10,000.00 */
    for (int64_t c = -100000; c <= 1000000; c++)
        if (c % 10) fewest(c, 2, (UINT64_C(1) << 53) - 1);
    cr_assert_eq(sr_decimal_at(81.82, 0, 999999999999999, &(int64_t){0}), 2);
    cr_assert_eq(sr_decimal_at(68.29, 0, 999999999999999, &(int64_t){0}), 2);
    /* random mantissas of 1..15 digits at every scale */
    for (int i = 0; i < 2000000; i++) {
        int k = (int)(next() % 7), digits = 1 + (int)(next() % 15);
        int64_t m = (int64_t)(next() % (uint64_t)pow(10, digits));
        if (k && m % 10 == 0) m++;
        fewest(next() & 1 ? m : -m, k, 999999999999999);
    }
}

Test(decimal, none)
{
    int64_t m;
    double no[] = {-0.0, NAN, INFINITY, -INFINITY, 0.1 + 0.2, 1.0 / 3, 1e-7, 1.5e-7, DBL_MIN, 5e-324, 1e22,
                   9007199254740993.0 * 1e-6, M_PI};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert_eq(sr_decimal_at(no[i], 0, (UINT64_C(1) << 53) - 1, &m), -1, "%.17g", no[i]);
    /* a mantissa over the bound */
    cr_assert_eq(sr_decimal_at(1e15, 0, 999999999999999, &m), -1);
    cr_assert_eq(sr_decimal_at(1e15, 0, (UINT64_C(1) << 53) - 1, &m), 0);
    cr_assert_eq(sr_decimal_at(0.0, 0, 1, &m), 0);
    cr_assert_eq(m, 0);
    /* random doubles of 2^-20..2^39: a yes is always a true decimal; most
     * are no, and maybe says no to those below 2^32 (f * 10^6 < 2^52) */
    long maybe_no = 0, n = 0;
    for (int i = 0; i < 1000000; i++) {
        double f = ldexp((double)(next() >> 11) / 9007199254740992.0 + 0.5, (int)(next() % 60) - 20);
        int k = sr_decimal_at(f, 0, (UINT64_C(1) << 53) - 1, &m);
        if (k >= 0) cr_assert(sr_dec_bits(sr_dec_value(m, (unsigned)k)) == sr_dec_bits(f));
        if (k >= 0) cr_assert(sr_decimal_maybe(f), "%.17g is a decimal, maybe said no", f);
        maybe_no += !sr_decimal_maybe(f);
        n++;
    }
    cr_assert_gt(maybe_no, n * 3 / 4, "maybe said no to %ld of %ld", maybe_no, n);
}
