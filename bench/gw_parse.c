/*
 * bench/gw_parse.c -- the GW-IF values fast path alone: sr_gw_fast (one pass
 * of codecs/jsonlex over a GW_MEASUREMENTS payload straight into a
 * measurements event), no network, no engine write. It is the per-message
 * parse cost of the MQTT and HTTP bindings (api/server.c, api/gwif_http.c),
 * and bench/callgrind.sh counts its instructions per message.
 *
 * usage: gw_parse [--messages M] [--batch B] [--points P] [--reps R] [--seed S]
 * Messages are shaped like `suiro gwsim run`'s: a header with messageType,
 * messageId and timestamp, then B values {dataId, timestamp, value} of P data
 * points in turn, 1 s apart, 2-decimal random walks. The data points are the
 * engine benchmarks' masters (engbench.h: P%05u, the even ones behind GW1),
 * registered in a fresh engine in a temporary directory. All M messages are
 * built first; the timed phase runs sr_gw_fast over them R times (best time).
 * Verification: every call takes the fast path with B values; the events of
 * the first and the last message are byte-identical to the slow path's
 * (sr_gw_parse + sr_gw_values_event); "hash" is FNV-1a over every event.
 * Prints one JSON line:
 *   {"bench":"gw_parse","messages":..,"batch":..,"points":..,"reps":..,
 *    "msg_bytes":..,"msg_per_s":..,"values_per_s":..,"ns_per_msg":..,
 *    "verify":"ok"|"FAILED","hash":..}
 */
#include "api/gwif_json.h"
#include "engbench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

/* Message n: B values of the even points 0, 2, .. 2(P-1) in turn (GW1's). */
static int build(uint32_t points, uint32_t batch, uint64_t seed, uint64_t n, int64_t *cents, sr_buf *out)
{
    char tmp[160];
    int len = snprintf(tmp, sizeof tmp,
                       "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"GW1-%" PRIu64 "\","
                       "\"timestamp\":\"2023-11-15T00:00:00.000Z\"},\"body\":{\"values\":[",
                       n);
    if (sr_buf_append(out, tmp, (size_t)len)) return SR_ENOMEM;
    for (uint32_t i = 0; i < batch; i++) {
        uint64_t idx = n * batch + i;
        uint32_t p = (uint32_t)(idx % points);
        uint64_t sec = idx / points;
        cents[p] += (int64_t)(eb_mix(seed ^ idx) % 21) - 10;
        time_t t = (time_t)(EB_T0 / 1000 + (int64_t)sec);
        struct tm tm;
        gmtime_r(&t, &tm);
        int64_t c = cents[p], a = c < 0 ? -c : c;
        len = snprintf(tmp, sizeof tmp,
                       "%s{\"dataId\":\"P%05u\",\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\",\"value\":%s%" PRId64
                       ".%02" PRId64 "}",
                       i ? "," : "", 2 * p, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, c < 0 ? "-" : "", a / 100, a % 100);
        if (sr_buf_append(out, tmp, (size_t)len)) return SR_ENOMEM;
    }
    return sr_buf_append(out, "]}}", 3);
}

/* The slow path's event for the same payload; 1 if identical to ev. */
static int same_as_slow(sr_engine *e, const uint8_t *msg, size_t len, const sr_buf *ev)
{
    sr_gw_msg m;
    sr_gw_err err;
    memset(&err, 0, sizeof err);
    sr_buf slow;
    sr_buf_init(&slow);
    size_t n = 0;
    int rc = sr_gw_parse(msg, len, &m, &err);
    if (!rc) {
        rc = sr_gw_values_event(e, EB_OP, "GW1", m.message_id, NULL, json_object_get(m.body, "values"), &slow, &n, &err);
        sr_gw_msg_release(&m);
    }
    if (rc) fprintf(stderr, "gw_parse: the slow path refused a message: %s %s\n", sr_wire_code(err.code), err.message);
    int same = !rc && slow.len == ev->len && memcmp(slow.data, ev->data, ev->len) == 0;
    sr_gw_err_clear(&err);
    sr_buf_release(&slow);
    return same;
}

int main(int argc, char **argv)
{
    uint32_t msgs = 2000, batch = 100, points = 10, reps = 5;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--messages")) msgs = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--batch")) batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--points")) points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--reps")) reps = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: gw_parse [--messages M] [--batch B] [--points P] [--reps R] [--seed S]\n");
            return 2;
        }
    }
    if (!msgs || !batch || batch > 5000 || !points || points > 5000 || !reps) {
        fprintf(stderr, "gw_parse: need messages, reps >= 1, batch and points in 1..5000\n");
        return 2;
    }
    char tmpl[] = "/var/tmp/suiro-gwparse-XXXXXX", dir[1100];
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/eng", tmpl);

    /* masters: P00000 .. P(2 points - 1), the even ones behind GW1 */
    eb_cfg c = {.points = 2 * points, .seconds = 1, .batch = 1, .seed = seed, .threads = 1, .window = 1};
    eb_data d;
    memset(&d, 0, sizeof d);
    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "gw_parse: open: %s\n", ei.msg);
        eb_rmrf(tmpl);
        return 1;
    }
    int ok = eb_masters(e, &c, &d) == SR_OK;
    sr_gw_skew_set(60000); /* as the server runs it: [alarms] gateway_skew_ms's default (api/gwif_json.h) */

    /* payloads, back to back */
    sr_buf all;
    sr_buf_init(&all);
    size_t *off = calloc((size_t)msgs + 1, sizeof *off);
    int64_t *cents = calloc(points, sizeof *cents);
    if (!off || !cents) ok = 0;
    for (uint32_t p = 0; ok && p < points; p++) cents[p] = 10000 + (int64_t)(eb_mix(seed ^ p) % 50000);
    for (uint32_t m = 0; ok && m < msgs; m++) {
        off[m] = all.len;
        if (build(points, batch, seed, m, cents, &all)) ok = 0;
    }
    if (off) off[msgs] = all.len;

    sr_buf ev, keep[2];
    sr_buf_init(&ev);
    sr_buf_init(&keep[0]);
    sr_buf_init(&keep[1]);
    uint64_t fast = 0, bad = 0, hash = 1469598103934665603ull;
    double best = 1e30;
    for (uint32_t r = 0; ok && r < reps; r++) {
        uint64_t h = 1469598103934665603ull;
        fast = 0;
        double t0 = eb_now();
        for (uint32_t m = 0; m < msgs; m++) {
            sr_gw_fast_msg fm;
            ev.len = 0;
            if (sr_gw_fast(e, EB_OP, "GW1", all.data + off[m], off[m + 1] - off[m], &fm, &ev) == 0 &&
                fm.nvalues == batch)
                fast++;
            h = fnv(h, ev.data, ev.len);
            /* the last round's first and last events, checked below (outside
             * sr_gw_fast, so that callgrind's count is of the M calls alone) */
            for (int k = 0; k < 2 && r + 1 == reps; k++)
                if (m == (k ? msgs - 1 : 0)) {
                    keep[k].len = 0;
                    if (sr_buf_append(&keep[k], ev.data, ev.len)) bad++;
                }
        }
        double t = eb_now() - t0;
        if (t < best) best = t;
        hash = h;
    }
    if (fast != msgs) bad++;
    /* the first and the last message against the slow path */
    for (uint32_t k = 0; ok && k < 2; k++) {
        uint32_t m = k ? msgs - 1 : 0;
        if (!same_as_slow(e, all.data + off[m], off[m + 1] - off[m], &keep[k])) bad++;
    }
    if (bad) ok = 0;
    if (sr_engine_close(e)) ok = 0;
    if (!ok)
        fprintf(stderr, "gw_parse: verify FAILED: %" PRIu64 " of %u messages took the fast path, %" PRIu64 " bad\n",
                fast, msgs, bad);
    double secs = best < 1e30 && best > 0 ? best : 0;
    printf("{\"bench\":\"gw_parse\",\"messages\":%u,\"batch\":%u,\"points\":%u,\"reps\":%u,\"msg_bytes\":%.1f,"
           "\"msg_per_s\":%.0f,\"values_per_s\":%.0f,\"ns_per_msg\":%.0f,\"verify\":\"%s\",\"hash\":\"%016" PRIx64
           "\"}\n",
           msgs, batch, points, reps, (double)all.len / msgs, secs ? msgs / secs : 0.0,
           secs ? (double)msgs * batch / secs : 0.0, secs * 1e9 / msgs, ok ? "ok" : "FAILED", hash);
    fflush(stdout);
    sr_buf_release(&ev);
    sr_buf_release(&keep[0]);
    sr_buf_release(&keep[1]);
    sr_buf_release(&all);
    free(off);
    free(cents);
    eb_data_free(&d);
    eb_rmrf(tmpl);
    return ok ? 0 : 1;
}
