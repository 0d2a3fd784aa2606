/* tests/api/test_gwif_json.c -- the GW-IF JSON binding: envelopes, values
 * into a measurements event (each bad value named, nothing built), acks. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "api/gwif_json.h"
#include "engine/records.h"
#include "codecs/jsonlex.h"
#include "engtest.h"
#include "fault_alloc.h"
#include "testutil.h"

static char *dir;
static sr_engine *e;
static void setup(void)
{
    dir = tu_tmpdir("gwjson");
    sr_errinfo ei;
    sr_engine_opts o = {0};
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    static const sr_vtype T[] = {SR_VT_NUMBER, SR_VT_BOOL, SR_VT_INTEGER, SR_VT_STRING};
    cr_assert_eq(et_setup_masters(e, "op1", 4, T, 4), SR_OK);
}
static void teardown(void)
{
    sr_engine_close(e);
    tu_rmrf(dir);
    free(dir);
}
TestSuite(gwif_json, .init = setup, .fini = teardown, .timeout = 60);

static int parse(const char *txt, sr_gw_msg *m, sr_gw_err *err)
{
    memset(err, 0, sizeof *err);
    return sr_gw_parse(txt, strlen(txt), m, err);
}

Test(gwif_json, envelope_fields_are_checked)
{
    sr_gw_msg m;
    sr_gw_err err;
    cr_assert_eq(parse("{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"m-1\","
                       "\"timestamp\":\"2026-04-01T09:00:00+09:00\"},\"body\":{}}", &m, &err), SR_OK);
    cr_assert_str_eq(m.type, "GW_MEASUREMENTS");
    cr_assert_str_eq(m.message_id, "m-1");
    cr_assert_eq(m.ts, 1775001600000);
    sr_gw_msg_release(&m);
    static const struct {
        const char *txt;
        sr_wire code;
    } bad[] = {
        {"{", SR_WIRE_JSON},
        {"[]", SR_WIRE_PARAM},
        {"{\"header\":{},\"body\":{}}", SR_WIRE_PARAM},
        {"{\"header\":{\"messageType\":\"X\"}}", SR_WIRE_PARAM},
        {"{\"header\":{\"messageType\":\"X\",\"messageId\":\"bad id!\"},\"body\":{}}", SR_WIRE_PARAM},
        {"{\"header\":{\"messageType\":\"X\",\"timestamp\":\"yesterday\"},\"body\":{}}", SR_WIRE_PARAM},
        {"{\"header\":{\"messageType\":\"X\",\"messageType\":\"Y\"},\"body\":{}}", SR_WIRE_JSON},
        {"{\"header\":{\"messageType\":\"\xff\"},\"body\":{}}", SR_WIRE_JSON},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_neq(parse(bad[i].txt, &m, &err), SR_OK, "accepted %s", bad[i].txt);
        cr_assert_str_eq(sr_wire_code(err.code), sr_wire_code(bad[i].code), "%s: %s", bad[i].txt, err.message);
        sr_gw_msg_release(&m);
        sr_gw_err_clear(&err);
    }
}

static int values(const char *json, sr_buf *ev, sr_gw_err *err, const char *gw)
{
    json_error_t je;
    json_t *v = json_loads(json, 0, &je);
    cr_assert_not_null(v, "%s", je.text);
    size_t n;
    memset(err, 0, sizeof *err);
    int rc = sr_gw_values_event(e, "op1", gw, "msg-7", NULL, v, ev, &n, err);
    json_decref(v);
    return rc;
}

Test(gwif_json, good_values_become_one_event_that_the_engine_stores)
{
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_err err;
    cr_assert_eq(values("[{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:01Z\",\"value\":3.42},"
                        "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":3.40,\"quality\":\"UNCERTAIN\"},"
                        "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":7}]",
                        &ev, &err, "GW1"),
                 SR_OK, "%s", err.message);
    sr_slice sl = {ev.data, ev.len};
    sr_result r;
    cr_assert_eq(sr_engine_submit_wait(e, &sl, 1, &r), SR_OK, "%s", r.err.msg);
    uint32_t p;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &p, NULL), SR_OK);
    sr_buf out;
    sr_buf_init(&out);
    int more;
    sr_range_q q = {.point = p, .from = 0, .to = INT64_MAX / 2, .after = INT64_MIN};
    cr_assert_eq(sr_engine_range(e, &q, &out, NULL, &more), SR_OK);
    cr_assert_eq(out.len / sizeof(sr_sample), 2);
    sr_sample *s = (sr_sample *)out.data;
    cr_assert_eq(s[0].quality, SR_Q_UNCERTAIN);
    cr_assert_float_eq(s[1].v.f, 3.42, 0);
    sr_buf_release(&out);
    sr_buf_release(&ev);
}

/* A refusal's answer stays small: a message of many bad values names the
 * first SR_GW_DETAIL_MAX and counts them all (issue #11: a 1 MB message of
 * bad values made an answer as large as itself, built on the loop). */
/* R-SE-3 (docs/signatures.md): a verified message's event says so
 * (Measurements.sig_state, read back by sr_event_sig_state), the engine
 * stores it as any other; an unsigned message's event is byte for byte what
 * sr_gw_values_event builds (the field left out), and reads back unsigned. */
Test(gwif_json, a_verified_message_event_carries_its_sig_state)
{
    static const char V[] = "[{\"dataId\":\"P000\",\"timestamp\":\"2026-04-02T00:00:00Z\",\"value\":1.5}]";
    json_t *v = json_loads(V, 0, NULL);
    cr_assert_not_null(v);
    sr_buf plain, none, sig;
    sr_buf_init(&plain);
    sr_buf_init(&none);
    sr_buf_init(&sig);
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    size_t n;
    cr_assert_eq(sr_gw_values_event(e, "op1", "GW1", "m-s", NULL, v, &plain, &n, &err), SR_OK, "%s", err.message);
    cr_assert_eq(sr_gw_values_event_sig(e, "op1", "GW1", "m-s", NULL, SR_SIG_NONE, v, &none, &n, &err), SR_OK);
    cr_assert_eq(sr_gw_values_event_sig(e, "op1", "GW1", "m-s", NULL, SR_SIG_VERIFIED, v, &sig, &n, &err), SR_OK);
    cr_assert_eq(plain.len, none.len);
    cr_assert_eq(memcmp(plain.data, none.data, plain.len), 0, "unsigned: the same bytes as before");
    cr_assert_eq(sig.len, plain.len + 2, "signed: two bytes more (field 4, varint 1)");
    const sr_buf *bufs[2] = {&none, &sig};
    for (int i = 0; i < 2; i++) {
        sr_rec r = SR_REC_INIT;
        sr_event_view ev;
        cr_assert_eq(sr_event_decode(bufs[i]->data, bufs[i]->len, &r, &ev), SR_OK);
        cr_assert_eq(sr_event_sig_state(&ev), i ? SR_SIG_VERIFIED : SR_SIG_NONE);
        sr_rec_close(&r);
    }
    sr_slice sl = {sig.data, sig.len};
    sr_result res;
    cr_assert_eq(sr_engine_submit_wait(e, &sl, 1, &res), SR_OK, "%s", res.err.msg);
    json_decref(v);
    sr_buf_release(&plain);
    sr_buf_release(&none);
    sr_buf_release(&sig);
}

Test(gwif_json, a_refusal_names_at_most_detail_max_values_and_counts_all)
{
    sr_buf j;
    sr_buf_init(&j);
    cr_assert_eq(sr_buf_append(&j, "[", 1), SR_OK);
    for (int i = 0; i < 250; i++) {
        char el[120];
        int n = snprintf(el, sizeof el, "%s{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":\"x%d\"}",
                         i ? "," : "", i);
        cr_assert_eq(sr_buf_append(&j, el, (size_t)n), SR_OK);
    }
    cr_assert_eq(sr_buf_append(&j, "]", 2), SR_OK);
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_err err;
    cr_assert_eq(values((const char *)j.data, &ev, &err, "GW1"), SR_EINVAL);
    cr_assert_eq(err.nbad, 250);
    cr_assert_eq(json_array_size(err.detail), SR_GW_DETAIL_MAX);
    cr_assert(strstr(err.message, "250 of 250 values refused"), "%s", err.message);
    cr_assert_eq(ev.len, 0);
    sr_gw_err_clear(&err);
    sr_buf_release(&ev);
    sr_buf_release(&j);
}

Test(gwif_json, each_bad_value_is_named_and_nothing_is_built)
{
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_err err;
    int rc = values("[{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":\"high\"},"
                    "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:01Z\",\"value\":1.5},"
                    "{\"dataId\":\"NOPE\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1},"
                    "{\"dataId\":\"P001\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":true},"
                    "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":5e12},"
                    "{\"dataId\":\"P000\",\"timestamp\":\"not a time\",\"value\":1},"
                    "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1,\"quality\":\"MEH\"}]",
                    &ev, &err, "GW1");
    cr_assert_eq(rc, SR_EINVAL);
    cr_assert_str_eq(sr_wire_code(err.code), "E1001");
    cr_assert_eq(ev.len, 0, "nothing was built");
    cr_assert_eq(json_array_size(err.detail), 6, "six bad values, each named");
    static const int idx[] = {0, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(err.detail, (size_t)i), "index")), idx[i]);
    /* P001 is behind GW2, not GW1 */
    cr_assert(strstr(json_string_value(json_object_get(json_array_get(err.detail, 2), "error")), "gateway"));
    sr_gw_err_clear(&err);
    sr_buf_release(&ev);
}

Test(gwif_json, ack_carries_the_correlation_id_and_result)
{
    sr_buf b;
    sr_buf_init(&b);
    json_t *d = json_array();
    cr_assert_eq(sr_gw_ack("m-1", SR_WIRE_PARAM, "bad", d, 0, &b), SR_OK);
    json_decref(d);
    json_error_t je;
    json_t *m = json_loadb((const char *)b.data, b.len, 0, &je);
    cr_assert_not_null(m);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "header"), "messageType")), "GW_ACK");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "header"), "correlationId")), "m-1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(m, "body"), "result"), "code")),
                     "E1001");
    json_decref(m);
    sr_buf_release(&b);
}

/* The fast path accepts a subset of what the jansson path accepts and builds
 * the same event bytes for it; everything it declines, the slow path decides. */
static void differential(const char *txt, int expect_fast)
{
    sr_buf fast, slow;
    sr_buf_init(&fast);
    sr_buf_init(&slow);
    sr_gw_fast_msg fm;
    int f = sr_gw_fast(e, "op1", "GW1", txt, strlen(txt), &fm, &fast);
    sr_gw_msg m;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    int s = sr_gw_parse(txt, strlen(txt), &m, &err);
    size_t n = 0;
    if (!s) s = sr_gw_values_event(e, "op1", "GW1", m.message_id, NULL, json_object_get(m.body, "values"), &slow, &n, &err);
    if (f == 0) {
        cr_assert_eq(s, SR_OK, "fast accepted what the slow path refuses: %s (%s)", txt, err.message);
        cr_assert_eq(fast.len, slow.len, "%s", txt);
        cr_assert_eq(memcmp(fast.data, slow.data, fast.len), 0, "different events for %s", txt);
        cr_assert_str_eq(fm.message_id, m.message_id);
    }
    if (expect_fast >= 0) cr_assert_eq(f == 0, expect_fast, "fast path %s %s", f == 0 ? "took" : "declined", txt);
    sr_gw_msg_release(&m);
    sr_gw_err_clear(&err);
    sr_buf_release(&fast);
    sr_buf_release(&slow);
}

Test(gwif_json, fast_path_builds_the_same_events_and_declines_the_rest)
{
    const char *V = "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":3.42}";
    char buf[2048];
#define ENV(hdr, vals) (snprintf(buf, sizeof buf, "{\"header\":{%s},\"body\":{\"values\":[%s]}}", hdr, vals), buf)
    differential(ENV("\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"a-1\"", V), 1);
    differential(ENV("\"messageType\":\"GW_MEASUREMENTS\",\"timestamp\":\"2026-04-01T09:00:00+09:00\"", V), 1);
    differential(" { \"body\" : { \"values\" : [ { \"value\" : -0.5e1 , \"timestamp\" : \"2026-04-01T00:00:00.123Z\","
                 " \"dataId\" : \"P000\" , \"quality\" : \"BAD\" } ] } , \"header\" : { \"messageType\" : \"X\" } } ",
                 1);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P001\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":true}"),
                 0); /* P001 is behind GW2: the slow path explains */
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":7}"),
                 1);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":7.5}"),
                 0);
    differential(ENV("\"messageType\":\"X\"",
                     "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1},"
                     "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:01Z\",\"value\":-999999999},"
                     "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:02Z\",\"value\":123456789}"),
                 1);
    /* declined: escapes, unknown members, duplicates, bad values, trailing junk, protection */
    differential(ENV("\"messageType\":\"X\\u0041\"", V), 0);
    differential(ENV("\"messageType\":\"X\",\"extra\":1", V), 0);
    differential(ENV("\"messageType\":\"X\",\"messageType\":\"Y\"", V), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":3e99}"), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1}"), 0);
    differential("{\"header\":{\"messageType\":\"X\"},\"body\":{\"values\":[]}}", 0);
    differential("{\"header\":{\"messageType\":\"X\"},\"body\":{\"values\":[{}]}} x", 0);
    differential("{\"header\":{\"messageType\":\"X\"},\"body\":{\"values\":[{\"dataId\":\"P000\",\"timestamp\":"
                 "\"2026-04-01T00:00:00Z\",\"value\":1}]},\"protection\":{\"signAlg\":\"ES256\"}}",
                 0);
    differential("{\"header\":{\"messageType\":\"X\"},\"body\":{\"values\":[{\"dataId\":\"P000\",\"timestamp\":"
                 "\"2026-04-01T00:00:00Z\",\"value\":01}]}}",
                 0);
    /* the canonical element form, read without the lexer: every kind of value, quality, and the
     * near misses it must leave to the lexer (which then decides as the full path does) */
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":-0.25,"
                                          "\"quality\":\"UNCERTAIN\"},{\"dataId\":\"P002\",\"timestamp\":"
                                          "\"2026-04-01T00:00:01.5Z\",\"value\":123456789012345678,\"quality\":\"BAD\"}"),
                 1); /* out of range, BAD: kept as sent */
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:01Z\",\"value\":1234567890123456789,\"quality\":\"BAD\"}"),
                 1); /* 19 characters: the lexer's way, still taken */
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":-0}"), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1.}"), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1,\"quality\":\"GOOD\" }"), 1);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1,\"quality\":\"good\"}"), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:0\\u0030Z\",\"value\":1}"), 0);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1} ,"
                                          " {\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:01Z\",\"value\":2}"),
                 1);
    differential(ENV("\"messageType\":\"X\"", "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1},]"), 0);
    /* random mutations of a valid message: never a disagreement */
    const char *base = "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"m-9\"},\"body\":{\"values\":["
                       "{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1.25},"
                       "{\"dataId\":\"P002\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":42}]}}";
    tu_rng r = {tu_seed(77)};
    size_t bl = strlen(base);
    for (int i = 0; i < 3000; i++) {
        char mut[512];
        memcpy(mut, base, bl + 1);
        int k = 1 + (int)tu_below(&r, 3);
        while (k--) mut[tu_below(&r, bl)] = " \"{}[],:0123456789.eE-+tfnulx\\PZ"[tu_below(&r, 32)];
        differential(mut, -1);
    }
}

/* Numbers the fast path reads without strtod (plain decimals of up to 15
 * digits) give the same doubles -- and so the same events -- as jansson's
 * strtod; everything else still goes through strtod. Random decimals of
 * every length and scale, and random doubles printed with 15 to 17 digits. */
/* R-SE-3 (docs/signatures.md): the bytes a signature covers are the member's
 * value exactly as written (sr_json_member_span), and they parse to what
 * jansson's full path reads; an escaped member name is not found. */
static void span_is(const char *msg, const char *name, const char *want)
{
    size_t off = 0, n = 0;
    int rc = sr_json_member_span(msg, strlen(msg), name, &off, &n);
    if (!want) {
        cr_assert_eq(rc, -1, "%s: no span of %s", msg, name);
        return;
    }
    cr_assert_eq(rc, 0, "%s: a span of %s", msg, name);
    cr_assert_eq(n, strlen(want), "%s: %.*s", msg, (int)n, msg + off);
    cr_assert_eq(memcmp(msg + off, want, n), 0, "%s: %.*s", msg, (int)n, msg + off);
    json_t *root = json_loads(msg, JSON_DECODE_ANY, NULL), *v = json_loadb(msg + off, n, JSON_DECODE_ANY, NULL);
    cr_assert(root && v && json_equal(json_object_get(root, name), v), "%s: the span parses to the member", msg);
    json_decref(root);
    json_decref(v);
}

Test(gwif_json, the_signed_bytes_are_the_member_as_written)
{
    const char *body = "{ \"values\" : [ {\"dataId\":\"P000\", \"value\": 1.50} ], \"s\":\"}{\\\"\" }";
    char msg[400];
    snprintf(msg, sizeof msg, "{\"header\":{\"messageType\":\"X\",\"body\":{\"no\":1}},\n  \"body\" :\t%s , \"protection\":{}}",
             body);
    span_is(msg, "body", body);
    span_is("{\"protection\":{\"a\":[1,{\"body\":2}]},\"body\":{}}", "body", "{}");
    span_is("{\"dataId\":\"P1\",\"value\": 42.50 ,\"x\":1}", "value", "42.50");
    span_is("{\"value\":\"A\\u0042\\\"\"}", "value", "\"A\\u0042\\\"\"");
    span_is("{\"value\":true}", "value", "true");
    span_is("{\"value\":false }", "value", "false");
    span_is("{\"value\" : null}", "value", "null");
    span_is("{\"value\":[1, {\"value\":2}]}", "value", "[1, {\"value\":2}]");
    span_is("{\"bo\\u0064y\":{}}", "body", NULL); /* escaped: not as written */
    span_is("{\"header\":{\"body\":{}}}", "body", NULL); /* only the top level */
    span_is("[{\"body\":{}}]", "body", NULL);
    span_is("{\"x\":tru, \"body\":{}}", "body", NULL);
    /* a protected message is never the fast path's */
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_fast_msg fm;
    snprintf(msg, sizeof msg, "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\"},\"body\":{\"values\":[{\"dataId\":"
                              "\"P000\",\"timestamp\":\"2026-04-01T00:00:00Z\",\"value\":1}]},\"protection\":{}}");
    cr_assert_eq(sr_gw_fast(e, "op1", "GW1", msg, strlen(msg), &fm, &ev), -1);
    sr_buf_release(&ev);
}

Test(gwif_json, fast_decimals_read_exactly_as_strtod_does)
{
    char buf[4096], vals[3200], num[64];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 400; round++) {
        size_t off = 0;
        for (int i = 0; i < 20; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int kind = (int)(x % 4);
            if (kind < 3) { /* a decimal: up to 15 digits, the point anywhere */
                int digits = 1 + (int)((x >> 8) % 15), point = (int)((x >> 16) % (unsigned)(digits + 1));
                size_t n = 0;
                if ((x >> 24) & 1) num[n++] = '-';
                uint64_t y = x;
                for (int d = 0; d < digits; d++) {
                    if (d == point && d) num[n++] = '.';
                    y = y * 6364136223846793005ull + 1442695040888963407ull;
                    num[n++] = (char)('0' + (y >> 60) % 10);
                }
                if (point == 0 && digits > 1 && num[n - digits] == '0' && (x >> 30) % 2) { /* 0.xxx */
                }
                num[n] = 0;
                /* JSON forbids leading zeros: "007" -> "7" */
                char *p = num + (num[0] == '-');
                while (p[0] == '0' && p[1] >= '0' && p[1] <= '9') memmove(p, p + 1, strlen(p));
            } else { /* a double with 15..17 significant digits */
                double d;
                uint64_t bits = (x & 0x3FFFFFFFFFFFFFFFull) | 0x3000000000000000ull;
                memcpy(&d, &bits, 8);
                if (!isfinite(d) || fabs(d) > 1e15) d = 1.0 / 3.0;
                snprintf(num, sizeof num, "%.*g", 15 + (int)((x >> 40) % 3), (x >> 50) & 1 ? -d : d);
            }
            off += (size_t)snprintf(vals + off, sizeof vals - off,
                                    "%s{\"dataId\":\"P000\",\"timestamp\":\"2026-04-01T00:00:%02dZ\",\"value\":%s}",
                                    i ? "," : "", i, num);
        }
        snprintf(buf, sizeof buf, "{\"header\":{\"messageType\":\"X\"},\"body\":{\"values\":[%s]}}", vals);
        differential(buf, -1);
    }
}

/* The acknowledgement outcome table (docs/mqtt.md "Acknowledgement
 * outcomes"): only SR_OK is durable; the message's own faults are
 * refusals; every engine code that is about the server's state -- a full
 * queue or a full LMDB map (SR_EFULL, also in a completion), an I/O error,
 * no space, a poisoned engine, closing, memory, a database failure -- is
 * transient, so no binding can acknowledge it as stored. */
Test(gwif_json, outcome_table_never_calls_a_server_failure_durable)
{
    cr_assert_eq(sr_gw_outcome_rc(SR_OK), SR_GW_DURABLE);
    static const int refused[] = {SR_EINVAL, SR_ENOTFOUND, SR_ECONFLICT, SR_ETOOBIG, SR_ECODEC};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        cr_assert_eq(sr_gw_outcome_rc(refused[i]), SR_GW_REFUSED, "%s", sr_err_name(refused[i]));
        cr_assert_eq(sr_gw_outcome_code(sr_wire_of_rc(refused[i])), SR_GW_REFUSED, "%s", sr_err_name(refused[i]));
    }
    static const int transient[] = {SR_EFULL, SR_EIO,     SR_ENOSPC, SR_EPOISONED, SR_ECLOSED, SR_ENOMEM,
                                    SR_EDB,   SR_ECORRUPT, SR_ECRYPTO, SR_EKEY, SR_ELOCKED};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++) {
        int rc = transient[i];
        cr_assert_eq(sr_gw_outcome_rc(rc), SR_GW_TRANSIENT, "%s", sr_err_name(rc));
        /* the code a binding sends for it is transient too (E9xxx) */
        cr_assert_eq(sr_gw_outcome_code(sr_wire_of_rc(rc)), SR_GW_TRANSIENT, "%s -> %s", sr_err_name(rc),
                     sr_wire_code(sr_wire_of_rc(rc)));
        cr_assert(sr_wire_msg_of_rc(rc)[0]);
    }
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE_OK), SR_GW_DURABLE);
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE_PARAM), SR_GW_REFUSED);
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE_UNKNOWN), SR_GW_REFUSED);
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE_INTERNAL), SR_GW_TRANSIENT);
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE_BUSY), SR_GW_TRANSIENT);
    cr_assert_eq(sr_gw_outcome_code(SR_WIRE__COUNT), SR_GW_TRANSIENT); /* outside the table */
}

/* ---- a message of many points (the snapshot shape, issue #13) ----------- */

static char *mdir;
static sr_engine *me;
static void msetup(void)
{
    mdir = tu_tmpdir("gwjson-many");
    sr_errinfo ei;
    sr_engine_opts o = {0};
    cr_assert_eq(sr_engine_open(mdir, &o, &me, &ei), SR_OK, "%s", ei.msg);
    static const sr_vtype T[] = {SR_VT_NUMBER};
    cr_assert_eq(et_setup_masters(me, "op1", 700, T, 1), SR_OK); /* P000..P699, the even ones behind GW1 */
}
static void mteardown(void)
{
    sr_engine_close(me);
    tu_rmrf(mdir);
    free(mdir);
}
TestSuite(gwif_json_many, .init = msetup, .fini = mteardown, .timeout = 120);

/* the message: rounds x the GW1 points P000, P002, .. (np of them), round r
 * at second r, each round in another order (a stride prime to np), so every
 * point's values are spread over the message */
static char *many_msg(int np, int rounds, int stride)
{
    size_t cap = (size_t)np * rounds * 80 + 200, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b, cap, "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"s-1\"},\"body\":{\"values\":[");
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < np; i++) {
            int k = (i * (r ? stride : 1)) % np;
            len += (size_t)snprintf(b + len, cap - len, "%s{\"dataId\":\"P%03d\",\"timestamp\":\"2026-04-01T00:00:0%dZ\",\"value\":%d.25}",
                                    r || i ? "," : "", 2 * k, r, k * 10 + r);
        }
    snprintf(b + len, cap - len, "]}}");
    return b;
}

/* Both paths build, for a message of many points, the event the builder
 * makes of its points in the order of their first value with each point's
 * values in message order: the per-message point table (a hash that grows
 * past its first 256 slots here) and the grouping of the values at the end
 * give what a point-by-point gathering gave. */
enum { NP = 300, RMAX = 3 };
static void grouped(int R, int stride)
{
    char *txt = many_msg(NP, R, stride);
    sr_pv_in in[NP];
    sr_sample smp[NP][RMAX];
    for (int k = 0; k < NP; k++) {
        char id[8];
        snprintf(id, sizeof id, "P%03d", 2 * k);
        sr_point_info info;
        cr_assert_eq(sr_engine_point_info(me, "op1", id, &info), SR_OK);
        for (int r = 0; r < R; r++) {
            smp[k][r] = (sr_sample){.ts = INT64_C(1775001600000) + r * 1000, .quality = SR_Q_GOOD};
            smp[k][r].v.f = k * 10 + r + 0.25;
        }
        in[k] = (sr_pv_in){info.point, info.type, smp[k], R};
    }
    sr_buf want, fast, slow;
    sr_buf_init(&want);
    sr_buf_init(&fast);
    sr_buf_init(&slow);
    cr_assert_eq(sr_ev_measurements("op1", "GW1", SR_ACTOR_GATEWAY, "s-1", in, NP, &want), SR_OK);
    sr_gw_fast_msg fm;
    cr_assert_eq(sr_gw_fast(me, "op1", "GW1", txt, strlen(txt), &fm, &fast), 0, "the fast path declined");
    cr_assert_eq(fm.nvalues, (size_t)NP * (size_t)R);
    sr_gw_msg m;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    size_t n = 0;
    cr_assert_eq(sr_gw_parse(txt, strlen(txt), &m, &err), SR_OK);
    cr_assert_eq(sr_gw_values_event(me, "op1", "GW1", m.message_id, NULL, json_object_get(m.body, "values"), &slow, &n, &err),
                 SR_OK, "%s", err.message);
    cr_assert(fast.len == want.len && !memcmp(fast.data, want.data, want.len), "fast path: not the builder's event");
    cr_assert(slow.len == want.len && !memcmp(slow.data, want.data, want.len), "jansson path: not the builder's event");
    sr_gw_msg_release(&m);
    sr_gw_err_clear(&err);
    sr_buf_release(&want);
    sr_buf_release(&fast);
    sr_buf_release(&slow);
    free(txt);
}

Test(gwif_json_many, a_message_of_many_points_is_grouped_per_point_in_first_seen_order)
{
    grouped(1, 1);      /* a snapshot: each point once, already grouped */
    grouped(RMAX, 7);   /* each point 3 times, spread over the message */
    grouped(2, NP - 1); /* the second round backwards */
}

/* suiro's allocations made on this thread (the engine's writer is not counted) */
static _Thread_local int counting;
static _Atomic long nalloc;
static void *c_malloc(size_t n)
{
    if (counting) nalloc++;
    return malloc(n);
}
static void *c_realloc(void *p, size_t n)
{
    if (counting) nalloc++;
    return realloc(p, n);
}
static const sr_allocator counting_alloc = {c_malloc, c_realloc, free}; /* libc's underneath: compatible */

/* A snapshot (100 points x 1 value) costs the fast path a handful of
 * allocations, not one or more per point (issue #13: a sample array per
 * point of the message was malloc'd, grown and freed, and the points were
 * found by a linear search). */
Test(gwif_json_many, a_snapshot_costs_a_few_allocations_not_one_per_point)
{
    char *txt = many_msg(100, 1, 1);
    sr_buf ev;
    sr_buf_init(&ev);
    sr_gw_fast_msg fm;
    cr_assert_eq(sr_gw_fast(me, "op1", "GW1", txt, strlen(txt), &fm, &ev), 0); /* the lookups cached */
    ev.len = 0;
    sr_set_allocator(&counting_alloc);
    nalloc = 0;
    counting = 1;
    int rc = sr_gw_fast(me, "op1", "GW1", txt, strlen(txt), &fm, &ev);
    counting = 0;
    sr_set_allocator(NULL);
    cr_assert_eq(rc, 0);
    cr_assert_eq(fm.nvalues, 100);
    cr_assert_lt(nalloc, 25, "%ld allocations for a snapshot of 100 points", (long)nalloc);
    sr_buf_release(&ev);
    free(txt);
}

/* Out of memory at every allocation of a message's gathering and event
 * (the points' table, the values, their grouping, the event): the fast
 * path declines with nothing appended, the full path answers SR_ENOMEM,
 * or the allocation was not needed and the event is the same; nothing
 * leaks (ASan). A snapshot, and a message whose points' values are spread
 * (the grouping copy). */
Test(gwif_json_many, out_of_memory_at_each_allocation_builds_nothing_or_the_same_event)
{
    char *msgs[2] = {many_msg(150, 1, 1), many_msg(150, 3, 7)};
    for (int i = 0; i < 2; i++) {
        const char *txt = msgs[i];
        sr_buf want, ev;
        sr_buf_init(&want);
        sr_buf_init(&ev);
        sr_gw_fast_msg fm;
        cr_assert_eq(sr_gw_fast(me, "op1", "GW1", txt, strlen(txt), &fm, &want), 0); /* the lookups cached */
        sr_gw_msg m;
        sr_gw_err err;
        memset(&err, 0, sizeof err);
        cr_assert_eq(sr_gw_parse(txt, strlen(txt), &m, &err), SR_OK);
        json_t *vals = json_object_get(m.body, "values");
        fault_alloc_install();
        int fired = 0;
        for (unsigned long k = 1; k < 200; k++) {
            ev.len = 0;
            fault_alloc_arm(k);
            int f = sr_gw_fast(me, "op1", "GW1", txt, strlen(txt), &fm, &ev);
            int hit = fault_alloc_fired(), hit_fast = hit;
            fault_alloc_arm(0);
            if (hit) {
                fired++;
                cr_assert_eq(f, -1, "k=%lu: took the message though an allocation failed", k);
                cr_assert_eq(ev.len, 0, "k=%lu: appended to the event", k);
            } else
                cr_assert(f == 0 && ev.len == want.len && !memcmp(ev.data, want.data, want.len), "k=%lu", k);
            ev.len = 0;
            size_t n = 0;
            sr_gw_err e2;
            memset(&e2, 0, sizeof e2);
            fault_alloc_arm(k);
            int rc = sr_gw_values_event(me, "op1", "GW1", m.message_id, NULL, vals, &ev, &n, &e2);
            hit = fault_alloc_fired();
            fault_alloc_arm(0);
            if (hit) cr_assert_eq(rc, SR_ENOMEM, "k=%lu: %s", k, e2.message);
            else cr_assert(rc == SR_OK && ev.len == want.len && !memcmp(ev.data, want.data, want.len), "k=%lu", k);
            sr_gw_err_clear(&e2);
            if (!hit && !hit_fast) break; /* past the last allocation of both */
        }
        fault_alloc_uninstall();
        cr_assert_gt(fired, 3, "only %d allocations failed", fired);
        sr_gw_msg_release(&m);
        sr_gw_err_clear(&err);
        sr_buf_release(&want);
        sr_buf_release(&ev);
        free(msgs[i]);
    }
}
