/* tests/engine/test_evbuild.c -- engine/evbuild.c: measurement events of
 * every value type round-trip through protobuf and sr_pv_iter. */
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

/* sr_ev_measurements writes the wire bytes itself: they must be exactly what
 * protobuf-c packs for the decoded message (canonical: field order, proto3
 * zero values left out, packed arrays), and decode to the input. Random
 * events of every type, order, quality, sign and scale, with empty points,
 * empty strings, negative and far timestamps, and empty envelope fields. */
Test(evbuild, direct_encoding_is_what_protobuf_c_packs)
{
    tu_rng r = {77};
    static const char *words[] = {"", "x", "ゆ", "a longer string value with spaces"};
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
            int64_t base = round % 7 == 0 ? -5000 : (int64_t)(tu_next(&r) % 253402300799999ull);
            int scale = (int)(tu_next(&r) % 8);
            for (size_t i = 0; i < n; i++) {
                memset(&s[p][i], 0, sizeof s[p][i]);
                s[p][i].ts = base + (int64_t)(tu_next(&r) % 3 ? i * 1000 : tu_next(&r) % 100000);
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
        cr_assert_eq(ev->measurements->n_points, np);
        for (size_t p = 0; p < np; p++) {
            const Suiro__V1__PointValues *pv = ev->measurements->points[p];
            cr_assert_eq(pv->point, in[p].point);
            if (!in[p].n) continue;
            sr_vtype t;
            cr_assert_eq(sr_pv_count(pv, &t), (long)in[p].n);
            /* the input sorted stably by time is what comes back */
            sr_sample sorted[MAXN];
            memcpy(sorted, s[p], in[p].n * sizeof *sorted);
            for (size_t i = 1; i < in[p].n; i++)
                for (size_t j = i; j > 0 && sorted[j - 1].ts > sorted[j].ts; j--) {
                    sr_sample x = sorted[j];
                    sorted[j] = sorted[j - 1];
                    sorted[j - 1] = x;
                }
            sr_pv_iter it;
            sr_pv_iter_init(&it, pv, in[p].n);
            for (size_t i = 0; i < in[p].n; i++) {
                sr_sample g;
                if (sorted[i].ts < 0) break; /* decodable, refused by the iterator */
                cr_assert_eq(sr_pv_iter_next(&it, &g), 0);
                cr_assert_eq(g.ts, sorted[i].ts);
                cr_assert_eq(g.quality, sorted[i].quality);
                if (t == SR_VT_NUMBER) cr_assert_eq(memcmp(&g.v.f, &sorted[i].v.f, 8), 0, "%.17g vs %.17g", g.v.f, sorted[i].v.f);
                else if (t == SR_VT_INTEGER) cr_assert_eq(g.v.i, sorted[i].v.i);
                else if (t == SR_VT_BOOL) cr_assert_eq(!!g.v.b, !!sorted[i].v.b);
                else cr_assert_str_eq(g.v.str.s, sorted[i].v.str.s);
            }
        }
        suiro__v1__event__free_unpacked(ev, NULL);
        sr_buf_release(&out);
    }
}
