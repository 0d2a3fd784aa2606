/* tests/fuzz/fuzz_gwjson.c -- the GW-IF measurements fast path
 * (api/gwif_json.c sr_gw_fast: the canonical value elements read straight
 * from the bytes, the rest through the pull lexer) against the full path
 * (jansson's tree, sr_gw_parse + sr_gw_values_event) on arbitrary bytes:
 * whatever the fast path takes, the full path takes too and builds the same
 * event, byte for byte. An engine with 400 points P000..P399 of a number,
 * a bool, an integer and a string type in turn (the odd ones behind GW2)
 * answers the lookups, so a message may name a few points many times
 * (series) or up to 200 once each (snapshots: the per-message point table
 * grows past its first 256 slots). The fast path never takes a message
 * with "protection" (R-SE-3: those are verified on the full path), and
 * for every message the full path parses, the bytes sr_json_member_span
 * gives for "body" (the bytes a signature covers, docs/signatures.md) parse
 * to the same JSON as jansson's body. Corpus: tests/fuzz/gwjson/. */
#include "api/gwif_json.h"
#include "codecs/jsonlex.h"
#include "engtest.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sr_engine *eng;

static void setup(void) { eng = et_fuzz_engine("gwjson", 400); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!eng) setup();
    sr_buf fast, slow;
    sr_buf_init(&fast);
    sr_buf_init(&slow);
    sr_gw_fast_msg fm;
    int f = sr_gw_fast(eng, "op1", "GW1", data, size, &fm, &fast);
    if (f == 0) {
        sr_gw_msg m;
        sr_gw_err err;
        memset(&err, 0, sizeof err);
        int s = sr_gw_parse(data, size, &m, &err);
        size_t n = 0;
        if (!s) s = sr_gw_values_event(eng, "op1", "GW1", m.message_id, NULL, json_object_get(m.body, "values"), &slow, &n, &err);
        if (s != SR_OK) abort();                                      /* fast took what the full path refuses */
        if (fast.len != slow.len || memcmp(fast.data, slow.data, fast.len)) abort(); /* different events */
        if (strcmp(fm.message_id, m.message_id) || fm.nvalues != n) abort();
        if (m.protection) abort(); /* a protected message must take the full path */
        sr_gw_msg_release(&m);
        sr_gw_err_clear(&err);
    }
    {
        sr_gw_msg m;
        sr_gw_err err;
        memset(&err, 0, sizeof err);
        size_t off, n;
        if (sr_gw_parse(data, size, &m, &err) == SR_OK && !sr_json_member_span(data, size, "body", &off, &n)) {
            json_t *b = json_loadb((const char *)data + off, n, JSON_DECODE_ANY, NULL);
            if (!b || !json_equal(b, m.body)) abort(); /* the signed bytes are not the body */
            json_decref(b);
        }
        sr_gw_msg_release(&m);
        sr_gw_err_clear(&err);
    }
    sr_buf_release(&fast);
    sr_buf_release(&slow);
    return 0;
}
