/* tests/engine/test_evbuild.c -- engine/evbuild.c: measurement events of
 * every value type, in both forms (PointValues, Snapshot) and mixed,
 * round-trip through protobuf and sr_meas_next / sr_pv_iter. */
#include "engine/evbuild.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Several bool and string points in one event: each such point owns one more
 * allocation than a number point (regression: the allocation list was sized
 * for 4 per point and overflowed). */
Test(evbuild, many_bool_and_string_points_round_trip)
{
    enum { NP = 9, NS = 5 };
    sr_sample s[NP][NS];
    sr_pv_in in[NP];
    static const char *words[] = {"a", "bb", "", "dddd", "e"};
    for (int p = 0; p < NP; p++) {
        sr_vtype t = p % 3 == 0 ? SR_VT_BOOL : p % 3 == 1 ? SR_VT_STRING : SR_VT_NUMBER;
        for (int i = 0; i < NS; i++) {
            memset(&s[p][i], 0, sizeof s[p][i]);
            s[p][i].ts = 1000 * i + p;
            if (t == SR_VT_BOOL) s[p][i].v.b = (i + p) & 1;
            else if (t == SR_VT_STRING) {
                s[p][i].v.str.s = words[i];
                s[p][i].v.str.slen = (uint32_t)strlen(words[i]);
            } else
                s[p][i].v.f = i * 0.25 + p;
        }
        in[p] = (sr_pv_in){(uint32_t)(p + 1), t, s[p], NS};
    }
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_ev_measurements("op", "GW", SR_ACTOR_GATEWAY, "m1", in, NP, &out), SR_OK);
    Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, out.len, out.data);
    cr_assert_not_null(ev);
    cr_assert_eq(ev->body_case, SUIRO__V1__EVENT__BODY_MEASUREMENTS);
    cr_assert_eq(ev->measurements->n_points, NP);
    for (size_t k = 0; k < ev->measurements->n_points; k++) {
        const Suiro__V1__PointValues *pv = ev->measurements->points[k];
        int p = (int)pv->point - 1;
        sr_vtype t;
        cr_assert_eq(sr_pv_count(pv, &t), NS);
        cr_assert_eq(t, in[p].type);
        sr_pv_iter it;
        sr_pv_iter_init(&it, pv, NS);
        for (int i = 0; i < NS; i++) {
            sr_sample g;
            cr_assert_eq(sr_pv_iter_next(&it, &g), 0);
            cr_assert_eq(g.ts, s[p][i].ts);
            if (t == SR_VT_BOOL) cr_assert_eq(!!g.v.b, !!s[p][i].v.b);
            else if (t == SR_VT_STRING) {
                cr_assert_eq(g.v.str.slen, s[p][i].v.str.slen);
                cr_assert_eq(memcmp(g.v.str.s, s[p][i].v.str.s, g.v.str.slen), 0);
            } else
                cr_assert_float_eq(g.v.f, s[p][i].v.f, 1e-12);
        }
    }
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
}

/* ---- what a message means: per (point, ts) the last sample given ----------
 * Applying the decoded points in sr_meas_next's order must give what the
 * input gives in its order (a later sample of a point and time wins). */
typedef struct mval {
    uint32_t point;
    sr_sample s;
} mval;

static void mput(mval *m, size_t *n, uint32_t point, const sr_sample *s)
{
    for (size_t i = 0; i < *n; i++)
        if (m[i].point == point && m[i].s.ts == s->ts) {
            m[i].s = *s;
            return;
        }
    m[(*n)++] = (mval){point, *s};
}

static int same_sample(sr_vtype t, const sr_sample *a, const sr_sample *b)
{
    if (a->ts != b->ts || a->quality != b->quality) return 0;
    switch (t) {
    case SR_VT_NUMBER: return !memcmp(&a->v.f, &b->v.f, sizeof a->v.f);
    case SR_VT_INTEGER: return a->v.i == b->v.i;
    case SR_VT_BOOL: return !!a->v.b == !!b->v.b;
    default: return !strcmp(a->v.str.s ? a->v.str.s : "", b->v.str.s ? b->v.str.s : "");
    }
}

/* The input's meaning against the decoded event's; *nsnap: the snapshot's entries. */
static void check_meaning(const sr_pv_in *in, size_t np, const Suiro__V1__Event *ev, size_t *nsnap)
{
    size_t cap = 1;
    for (size_t p = 0; p < np; p++) cap += in[p].n;
    mval *want = calloc(cap, sizeof *want), *got = calloc(cap, sizeof *got);
    sr_vtype *type_of = calloc(cap, sizeof *type_of);
    size_t nw = 0, ng = 0;
    for (size_t p = 0; p < np; p++) {
        /* stable by time within an entry, as the encoder sorts */
        sr_sample *sorted = malloc((in[p].n ? in[p].n : 1) * sizeof *sorted);
        if (in[p].n) memcpy(sorted, in[p].s, in[p].n * sizeof *sorted);
        for (size_t i = 1; i < in[p].n; i++)
            for (size_t j = i; j > 0 && sorted[j - 1].ts > sorted[j].ts; j--) {
                sr_sample x = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = x;
            }
        int in_range = 1; /* else refused whole by the check: the iterator stops at it */
        for (size_t i = 0; i < in[p].n; i++)
            if (sorted[i].ts < 0 || sorted[i].ts > SR_TS_MAX) in_range = 0;
        for (size_t i = 0; i < in[p].n && in_range; i++) mput(want, &nw, in[p].point, &sorted[i]);
        free(sorted);
    }
    sr_meas_iter mi;
    sr_mpoint pt;
    sr_meas_iter_init(&mi, ev->measurements);
    *nsnap = 0;
    while (sr_meas_next(&mi, &pt)) {
        if (pt.n < 0) continue; /* an empty PointValues (an input point without values) */
        *nsnap += (size_t)pt.in_snapshot;
        sr_sample *g = malloc((size_t)(pt.n ? pt.n : 1) * sizeof *g);
        long i = 0;
        while (i < pt.n && !sr_pv_iter_next(&pt.it, &g[i])) i++;
        for (long j = 0; i == pt.n && j < pt.n; j++) { /* a point with a time out of range: none of it */
            mput(got, &ng, pt.point, &g[j]);
            for (size_t w = 0; w < nw; w++)
                if (want[w].point == pt.point && want[w].s.ts == g[j].ts) type_of[w] = pt.type;
        }
        free(g);
    }
    cr_assert_eq(ng, nw, "%zu (point, time)s decoded, %zu given", ng, nw);
    for (size_t w = 0; w < nw; w++) {
        size_t g = 0;
        while (g < ng && !(got[g].point == want[w].point && got[g].s.ts == want[w].s.ts)) g++;
        cr_assert_lt(g, ng, "point %u ts %lld missing", want[w].point, (long long)want[w].s.ts);
        cr_assert(same_sample(type_of[w], &got[g].s, &want[w].s), "point %u ts %lld: another value", want[w].point,
                  (long long)want[w].s.ts);
    }
    free(want);
    free(got);
    free(type_of);
}

/* the event sr_ev_measurements writes: byte for byte what protobuf-c packs
 * for it, decoded (the caller frees it) */
static Suiro__V1__Event *build_check(const sr_pv_in *in, size_t np, sr_buf *out)
{
    sr_buf_init(out);
    cr_assert_eq(sr_ev_measurements("op1", "GW0001", SR_ACTOR_GATEWAY, "m", in, np, out), SR_OK);
    Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, out->len, out->data);
    cr_assert_not_null(ev);
    size_t n2 = suiro__v1__event__get_packed_size(ev);
    cr_assert_eq(n2, out->len);
    uint8_t *re = malloc(n2);
    suiro__v1__event__pack(ev, re);
    cr_assert_eq(memcmp(re, out->data, n2), 0, "bytes differ from protobuf-c's");
    free(re);
    return ev;
}

/* A gateway's cycle: 100 consecutive points x 1 value at one time, of every
 * kind (2-decimal numbers, a raw double, integers, bools, strings), some
 * not GOOD: one Snapshot, no PointValues, point numbers one byte each, and
 * every value back as given. */
Test(evbuild, a_snapshot_is_one_record_of_packed_values)
{
    enum { NP = 100 };
    sr_sample s[NP];
    sr_pv_in in[NP];
    static const char *words[] = {"open", "", "closed"};
    for (int p = 0; p < NP; p++) {
        memset(&s[p], 0, sizeof s[p]);
        s[p].ts = 1700000000123;
        sr_vtype t = p % 10 == 7 ? SR_VT_INTEGER : p % 10 == 8 ? SR_VT_BOOL : p % 10 == 9 ? SR_VT_STRING : SR_VT_NUMBER;
        if (t == SR_VT_NUMBER) s[p].v.f = p == 50 ? 1.0 / 3.0 : (double)(6829 + 37 * p) / 100.0 * (p % 4 == 1 ? -1 : 1);
        else if (t == SR_VT_INTEGER) s[p].v.i = (int64_t)p * 1000003 - 40000000;
        else if (t == SR_VT_BOOL) s[p].v.b = p & 1;
        else s[p].v.str.s = words[p % 3], s[p].v.str.slen = (uint32_t)strlen(words[p % 3]);
        s[p].quality = (uint8_t)(p % 23 == 0 ? SR_Q_UNCERTAIN : SR_Q_GOOD);
        in[p] = (sr_pv_in){(uint32_t)(1000 + p), t, &s[p], 1};
    }
    sr_buf out;
    Suiro__V1__Event *ev = build_check(in, NP, &out);
    cr_assert_eq(ev->measurements->n_points, 0);
    const Suiro__V1__Snapshot *sn = ev->measurements->snapshot;
    cr_assert_not_null(sn);
    cr_assert_eq(sn->ts, 1700000000123);
    cr_assert_eq(sn->n_dpoint, NP);
    cr_assert_eq(sn->scale, -2);
    cr_assert_eq(sn->n_dmant, 69);
    cr_assert_eq(sn->n_f, 1); /* 1/3 is no decimal */
    cr_assert_eq(sn->n_i + sn->n_b + sn->n_s, 30);
    cr_assert_eq(sn->n_quality, NP);
    size_t nsnap;
    check_meaning(in, NP, ev, &nsnap);
    cr_assert_eq(nsnap, NP);
    /* the same values as 100 PointValues took 15-17 bytes each */
    cr_assert_lt(out.len, 8 * NP, "%zu bytes for %d values", out.len, NP);
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
}

/* A message that mixes: a series of one point, a snapshot of 50, one value
 * at another time, an empty point: the snapshot takes the 50, the rest stay
 * PointValues. */
Test(evbuild, a_mixed_message_is_a_snapshot_and_point_values)
{
    enum { NP = 53 };
    sr_sample series[10], one[NP], other = {.ts = 5000, .v.f = 2.5};
    sr_pv_in in[NP];
    for (int i = 0; i < 10; i++) series[i] = (sr_sample){.ts = 1000 + i, .v.f = i * 0.5};
    in[0] = (sr_pv_in){7, SR_VT_NUMBER, series, 10};
    for (int p = 1; p <= 50; p++) {
        one[p] = (sr_sample){.ts = 4000, .v.f = p * 1.25};
        in[p] = (sr_pv_in){(uint32_t)(100 + 2 * p), SR_VT_NUMBER, &one[p], 1};
    }
    in[51] = (sr_pv_in){9, SR_VT_NUMBER, &other, 1};
    in[52] = (sr_pv_in){11, SR_VT_NUMBER, NULL, 0};
    sr_buf out;
    Suiro__V1__Event *ev = build_check(in, NP, &out);
    cr_assert_eq(ev->measurements->n_points, 3);
    cr_assert_not_null(ev->measurements->snapshot);
    cr_assert_eq(ev->measurements->snapshot->n_dpoint, 50);
    size_t nsnap;
    check_meaning(in, NP, ev, &nsnap);
    cr_assert_eq(nsnap, 50);
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
    /* one point x one value: a PointValues, as before the snapshot form */
    ev = build_check(&in[51], 1, &out);
    cr_assert_eq(ev->measurements->n_points, 1);
    cr_assert_null(ev->measurements->snapshot);
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
}

/* The snapshot is applied before the PointValues: a point given twice, first
 * in a series with a value at the snapshot's time, then as a single value at
 * that time, keeps the later value (it stays a PointValues). */
Test(evbuild, a_later_value_of_a_point_wins_across_the_forms)
{
    sr_sample a[2] = {{.ts = 100, .v.f = 1}, {.ts = 200, .v.f = 2}}, b = {.ts = 200, .v.f = 3}, c = {.ts = 200, .v.f = 4},
              d = {.ts = 200, .v.f = 5};
    sr_pv_in in[] = {{5, SR_VT_NUMBER, &c, 1}, {6, SR_VT_NUMBER, a, 2}, {6, SR_VT_NUMBER, &b, 1}, {8, SR_VT_NUMBER, &d, 1}};
    sr_buf out;
    Suiro__V1__Event *ev = build_check(in, 4, &out);
    cr_assert_not_null(ev->measurements->snapshot);
    cr_assert_eq(ev->measurements->snapshot->n_dpoint, 2); /* points 5 and 8 */
    size_t nsnap;
    check_meaning(in, 4, ev, &nsnap);
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
}

/* -0.0 comes back -0.0 in both forms: it is no decimal (its mantissa 0
 * would decode to +0.0), so it is kept as a raw double, in a snapshot and
 * in a PointValues, alone or among decimals; +0.0 stays a decimal. */
Test(evbuild, minus_zero_comes_back_minus_zero_in_both_forms)
{
    enum { NP = 6 };
    sr_sample one[NP];
    sr_pv_in in[NP];
    static const double v[NP] = {1.25, -0.0, 0.0, -2.5, -0.0, 3.0};
    for (int p = 0; p < NP; p++) {
        one[p] = (sr_sample){.ts = 4000, .v.f = v[p]};
        in[p] = (sr_pv_in){(uint32_t)(10 + p), SR_VT_NUMBER, &one[p], 1};
    }
    sr_buf out;
    Suiro__V1__Event *ev = build_check(in, NP, &out);
    const Suiro__V1__Snapshot *sn = ev->measurements->snapshot;
    cr_assert_not_null(sn);
    cr_assert_eq(sn->n_f, 2, "the two -0.0 are raw doubles (%zu)", sn->n_f);
    cr_assert_eq(sn->n_dmant, 4);
    size_t nsnap;
    check_meaning(in, NP, ev, &nsnap);
    cr_assert_eq(nsnap, NP);
    suiro__v1__event__free_unpacked(ev, NULL);
    sr_buf_release(&out);
    /* a PointValues: a series with -0.0 among decimals, and -0.0 alone */
    sr_sample series[4] = {{.ts = 1000, .v.f = 0.5}, {.ts = 2000, .v.f = -0.0}, {.ts = 3000, .v.f = 0.0},
                           {.ts = 4000, .v.f = -1.75}};
    sr_sample alone = {.ts = 5000, .v.f = -0.0};
    sr_pv_in pv[2] = {{7, SR_VT_NUMBER, series, 4}, {9, SR_VT_NUMBER, &alone, 1}};
    for (int k = 0; k < 2; k++) {
        ev = build_check(&pv[k], 1, &out);
        cr_assert_null(ev->measurements->snapshot);
        cr_assert_eq(ev->measurements->n_points, 1);
        check_meaning(&pv[k], 1, ev, &nsnap);
        sr_meas_iter mi;
        sr_mpoint pt;
        sr_meas_iter_init(&mi, ev->measurements);
        cr_assert(sr_meas_next(&mi, &pt));
        sr_sample g;
        for (long i = 0; i < pt.n; i++) {
            cr_assert_eq(sr_pv_iter_next(&pt.it, &g), 0);
            if (g.v.f == 0) cr_assert_eq(!!signbit(g.v.f), g.ts == 2000 || g.ts == 5000, "ts %lld", (long long)g.ts);
        }
        suiro__v1__event__free_unpacked(ev, NULL);
        sr_buf_release(&out);
    }
}

/* Inconsistent snapshots (arrays that do not add up, a point number past
 * 32 bits) are one point with n = -1: refused by the check, skipped by the
 * apply. */
Test(evbuild, an_inconsistent_snapshot_is_one_bad_point)
{
    int64_t dp[2] = {3, 1}, big[2] = {(int64_t)UINT32_MAX, 1}, dm[1] = {5};
    Suiro__V1__Snapshot sn = SUIRO__V1__SNAPSHOT__INIT;
    sn.ts = 1;
    sn.n_dpoint = 2;
    sn.dpoint = dp;
    sn.n_dmant = 1;
    sn.dmant = dm;
    Suiro__V1__Measurements m = SUIRO__V1__MEASUREMENTS__INIT;
    m.snapshot = &sn;
    sr_meas_iter mi;
    sr_mpoint p;
    sr_meas_iter_init(&mi, &m);
    cr_assert_eq(sr_meas_next(&mi, &p), 1);
    cr_assert_eq(p.n, -1);
    cr_assert_eq(sr_meas_next(&mi, &p), 0);
    int64_t dm2[2] = {5, 6};
    sn.dmant = dm2;
    sn.n_dmant = 2;
    sn.dpoint = big;
    sr_meas_iter_init(&mi, &m);
    cr_assert_eq(sr_meas_next(&mi, &p), 1);
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.point, UINT32_MAX);
    cr_assert_eq(sr_meas_next(&mi, &p), 1);
    cr_assert_eq(p.n, -1);
    cr_assert_eq(sr_meas_next(&mi, &p), 0);
}

/* sr_ev_measurements writes the wire bytes itself: they must be exactly what
 * protobuf-c packs for the decoded message (canonical: field order, proto3
 * zero values left out, packed arrays), and decode to the input. Random
 * events of every type, order, quality, sign and scale, with empty points,
 * empty strings, negative and far timestamps, and empty envelope fields. */
Test(evbuild, direct_encoding_is_what_protobuf_c_packs)
{
    tu_rng r = {77};
    static const char *words[] = {"", "x", "ゆ", "a longer string value with spaces"};
    size_t nsnaps = 0;
    for (int round = 0; round < 400; round++) {
        enum { MAXP = 6, MAXN = 40 };
        sr_sample s[MAXP][MAXN];
        sr_pv_in in[MAXP];
        size_t np = tu_next(&r) % (MAXP + 1);
        for (size_t p = 0; p < np; p++) {
            sr_vtype t = (sr_vtype)(tu_next(&r) % 4);
            static const sr_vtype types[] = {SR_VT_NUMBER, SR_VT_INTEGER, SR_VT_BOOL, SR_VT_STRING};
            t = types[t];
            size_t n = tu_next(&r) % (MAXN + 1);
            if (round % 3 == 2 && tu_next(&r) % 3) n = 1; /* snapshot rounds: most points one value at T */
            int64_t base = round % 7 == 0 ? -5000 : (int64_t)(tu_next(&r) % 253402300799999ull);
            if (round % 3 == 2 && n == 1) base = round % 7 == 0 ? -5000 : 1700000000000 + round;
            int scale = (int)(tu_next(&r) % 8);
            for (size_t i = 0; i < n; i++) {
                memset(&s[p][i], 0, sizeof s[p][i]);
                s[p][i].ts = base + (int64_t)(tu_next(&r) % 3 ? i * 1000 : tu_next(&r) % 100000);
                if (round % 3 == 2 && n == 1) s[p][i].ts = base;
                s[p][i].quality = (uint8_t)(round % 3 ? 0 : tu_next(&r) % 4);
                int64_t m = (int64_t)(tu_next(&r) % 2000001) - 1000000;
                if (t == SR_VT_NUMBER) s[p][i].v.f = scale == 7 ? (double)m / 3.0 : (double)m / (double)(int64_t)pow(10, scale);
                else if (t == SR_VT_INTEGER) s[p][i].v.i = round % 5 ? m : (int64_t)tu_next(&r);
                else if (t == SR_VT_BOOL) s[p][i].v.b = (int)(tu_next(&r) & 1);
                else s[p][i].v.str.s = words[tu_next(&r) % 4];
            }
            in[p] = (sr_pv_in){(uint32_t)(round % 11 == 0 ? 0 : p + 1 + tu_next(&r) % 100000), t, s[p], n};
        }
        sr_buf out;
        sr_buf_init(&out);
        cr_assert_eq(sr_buf_append(&out, "prefix", 6), SR_OK); /* appends */
        const char *op = round % 13 == 0 ? "" : "op1", *mid = round % 4 == 0 ? NULL : round % 4 == 1 ? "" : "msg-42";
        cr_assert_eq(sr_ev_measurements(op, "GW0001", SR_ACTOR_GATEWAY, mid, in, np, &out), SR_OK);
        cr_assert_eq(memcmp(out.data, "prefix", 6), 0);
        Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, out.len - 6, out.data + 6);
        cr_assert_not_null(ev, "round %d does not decode", round);
        size_t n2 = suiro__v1__event__get_packed_size(ev);
        cr_assert_eq(n2, out.len - 6, "round %d: %zu bytes, protobuf-c packs %zu", round, out.len - 6, n2);
        uint8_t *re = malloc(n2 ? n2 : 1);
        suiro__v1__event__pack(ev, re);
        cr_assert_eq(memcmp(re, out.data + 6, n2), 0, "round %d: bytes differ from protobuf-c's", round);
        free(re);
        cr_assert_str_eq(ev->operator_id, op);
        cr_assert_str_eq(ev->message_id, mid ? mid : "");
        size_t nsnap;
        check_meaning(in, np, ev, &nsnap);
        cr_assert_eq(ev->measurements->n_points + nsnap, np);
        nsnaps += nsnap > 0;
        if (nsnap) cr_assert_geq(nsnap, 2);
        suiro__v1__event__free_unpacked(ev, NULL);
        sr_buf_release(&out);
    }
    cr_assert_gt(nsnaps, 60, "%zu rounds had a snapshot", nsnaps);
}
