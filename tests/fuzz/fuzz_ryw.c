/* tests/fuzz/fuzz_ryw.c -- the Suiro-Wait and Suiro-Wait-Ms headers' parsers
 * (api/ryw.h sr_ryw_parse, sr_ryw_parse_ms) on arbitrary bytes: request
 * headers are outside input. Never a crash or an out-of-bounds read (ASan);
 * a refusal names its problem; an accepted list formats back and parses to
 * the same list (invariant 1). Corpus: tests/fuzz/ryw/. */
#include "api/ryw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_ryw_tok t[SR_RYW_MAX_TOKENS], u[SR_RYW_MAX_TOKENS];
    size_t n = 0, m = 0;
    char err[256] = "", buf[1024];
    if (sr_ryw_parse((const char *)data, size, t, SR_RYW_MAX_TOKENS, &n, err, sizeof err)) {
        if (!err[0]) abort();
    } else {
        if (!n || n > SR_RYW_MAX_TOKENS) abort();
        int k = sr_ryw_format(t, n, buf, sizeof buf);
        if (k <= 0 || sr_ryw_parse(buf, (size_t)k, u, SR_RYW_MAX_TOKENS, &m, err, sizeof err) || m != n) abort();
        for (size_t i = 0; i < n; i++)
            if (t[i].cluster != u[i].cluster || t[i].part != u[i].part || t[i].sseq != u[i].sseq ||
                t[i].seq != u[i].seq || strcmp(t[i].node, u[i].node))
                abort();
    }
    uint32_t ms;
    err[0] = 0;
    if (sr_ryw_parse_ms((const char *)data, size, &ms, err, sizeof err)) {
        if (!err[0]) abort();
    } else if (ms > SR_RYW_WAIT_MS_MAX) {
        abort();
    }
    return 0;
}
