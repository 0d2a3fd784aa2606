/* tests/engine/test_evbuild.c -- engine/evbuild.c: measurement events of
 * every value type round-trip through protobuf and sr_pv_iter. */
#include "engine/evbuild.h"

#include <criterion/criterion.h>
#include <string.h>

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
    cr_assert_eq(sr_ev_measurements("op", "GW", SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY, "m1", in, NP, &out), SR_OK);
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
