/* tests/fuzz/fuzz_jsonlex.c -- the pull lexer on arbitrary bytes: it never
 * crashes or reads out of bounds, and whatever it accepts as a whole
 * document jansson accepts too (so the GW-IF fast path cannot take in a
 * message the full parser would call malformed). Corpus: tests/fuzz/jsonlex/. */
#include "codecs/jsonlex.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_jlex l;
    sr_jlex_init(&l, data, size);
    sr_jtok t;
    size_t n = 0;
    while ((t = sr_jlex_next(&l)) != SR_J_END && t != SR_J_ERROR)
        if (++n > 1000000) break;
    if (t == SR_J_END) {
        json_error_t e;
        json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
        if (!j) abort(); /* the lexer accepted a document jansson rejects */
        json_decref(j);
    }
    /* skipping from the start must agree with lexing to the end */
    sr_jlex_init(&l, data, size);
    t = sr_jlex_next(&l);
    if (t != SR_J_ERROR && t != SR_J_END && sr_jlex_skip(&l, t) == 0) (void)sr_jlex_next(&l);
    return 0;
}
