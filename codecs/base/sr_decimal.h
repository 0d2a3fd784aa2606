/*
 * codecs/base/sr_decimal.h -- a double as a decimal m / 10^k: the one
 * definition shared by the series encoder (storage/series.c, version 2
 * chunks store m and k) and the number writer (sr_json_number in
 * api/httpu.c, which writes m with k places).
 *
 * "f is the decimal m / 10^k" means: the IEEE 754 binary64 division of m
 * (exact as a double, |m| <= 2^53 - 1) by 10^k (exact for k <= 22), rounded
 * to nearest even, is f bit for bit. So -0.0, NaN, the infinities and values
 * such as 0.1 + 0.2 are no decimal; m / 10^k is then exactly the text
 * "m with k places" read back by strtod (a correctly rounded reader).
 *
 * Contract of sr_decimal_at: the smallest k in from..SR_DEC_MAX_SCALE at
 * which f is a decimal m / 10^k with |m| <= max (max <= 2^53 - 1). The
 * candidate is m = round(f * 10^k), half away from zero; only the exact
 * check decides, so a rounding slip can only miss a scale, never give a
 * wrong m. For |m| < 2^52 the product f * 10^k is within a quarter of m
 * and the rounding is exact: the k found is then the smallest at all (the
 * fewest places, the shortest text) -- and not a product that happens to
 * round to an integer one scale too high (the bug of issue #13: 81.82 *
 * 100 is 8181.999999999999, 81.82 * 1000 is exactly 81820.0, written
 * "81.820").
 *
 * Header-only (inline): the base layer includes nothing of the project.
 */
#ifndef SR_DECIMAL_H
#define SR_DECIMAL_H

#include <stdint.h>
#include <string.h>

#define SR_DEC_MAX_SCALE 6

static const double sr_dec_pow10[SR_DEC_MAX_SCALE + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};

/* m / 10^k (k <= SR_DEC_MAX_SCALE): the one computation of every check and
 * of the series decoder */
static inline double sr_dec_value(int64_t m, unsigned k) { return (double)m / sr_dec_pow10[k]; }

static inline uint64_t sr_dec_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}

/* sr_decimal_is for x = f * 10^k already computed and within +-2^53 */
static inline int sr_decimal_x(double f, double x, unsigned k, uint64_t max, int64_t *m)
{
    int64_t c = (int64_t)x; /* rounded half away from zero; x - c is exact */
    double frac = x - (double)c;
    c += (frac >= 0.5) - (frac <= -0.5);
    uint64_t a = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    if (a > max || sr_dec_bits(sr_dec_value(c, k)) != sr_dec_bits(f)) return 0;
    *m = c;
    return 1;
}

/* 1 and *m if f == m / 10^k bit for bit with |m| <= max (k <= SR_DEC_MAX_SCALE),
 * else 0 */
static inline int sr_decimal_is(double f, unsigned k, uint64_t max, int64_t *m)
{
    double x = f * sr_dec_pow10[k];
    return x > -9007199254740992.0 && x < 9007199254740992.0 && sr_decimal_x(f, x, k, max, m);
}

/* The smallest k in from..SR_DEC_MAX_SCALE at which f == m / 10^k bit for
 * bit with |m| <= max, and *m; -1 if there is none (see the contract above). */
static inline int sr_decimal_at(double f, int from, uint64_t max, int64_t *m)
{
    for (int k = from < 0 ? 0 : from; k <= SR_DEC_MAX_SCALE; k++) {
        double x = f * sr_dec_pow10[k];
        /* not finite or too big; a larger k only makes |x| larger */
        if (!(x > -9007199254740992.0 && x < 9007199254740992.0)) return -1;
        if (sr_decimal_x(f, x, (unsigned)k, max, m)) return k;
    }
    return -1;
}

/* 0 when f is surely no decimal of up to SR_DEC_MAX_SCALE places (a quick
 * no, one multiplication, for a caller that meets many non-decimals, such as
 * the averages a writer prints); 1 when it may be one. If f = m / 10^k, then
 * x = f * 10^6 is within |x| * 2^-51 of the integer m * 10^(6-k) (two
 * roundings of at most 2^-53 each); for |x| >= 2^52 it cannot tell. */
static inline int sr_decimal_maybe(double f)
{
    double x = f * sr_dec_pow10[SR_DEC_MAX_SCALE];
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0)) return 1;
    double d = x - (double)(int64_t)x; /* the fraction, exact, in (-1, 1) */
    d = d < 0 ? -d : d;
    if (d > 0.5) d = 1 - d; /* the distance to the nearest integer (exact) */
    return d <= (x < 0 ? -x : x) * 0x1p-51;
}

#endif
