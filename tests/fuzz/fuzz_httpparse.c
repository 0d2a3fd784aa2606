/* tests/fuzz/fuzz_httpparse.c -- the request checks in front of every HTTP
 * handler (api/httpu.c): the one percent-decoder, the request target and the
 * raw HTTP/1 head, on arbitrary bytes. Properties: never a crash or an
 * out-of-bounds access; checking without an output buffer gives the same
 * verdict as decoding; what decodes holds no control byte and is valid UTF-8
 * (decoding it again, escaped-free, gives it back); an accepted target's
 * decoded path has no NUL and no "." or ".." segment.
 * Corpus: tests/fuzz/httpparse/. */
#include "api/httpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char out[512], back[512];
    size_t ol = 0, bl = 0;
    for (int plus = 0; plus < 2; plus++) {
        int rc = sr_pct_decode(in, size, plus, out, sizeof out, &ol);
        int rc2 = sr_pct_decode(in, size, plus, NULL, 0, NULL);
        if (rc != SR_PCT_TOOLONG && rc != rc2) abort();
        if (rc == SR_PCT_OK) {
            if (strlen(out) != ol) abort(); /* no NUL inside */
            for (size_t i = 0; i < ol; i++)
                if ((unsigned char)out[i] < 0x20 || out[i] == 0x7F) abort();
            if (!memchr(out, '%', ol) && !memchr(out, '+', ol)) {
                if (sr_pct_decode(out, ol, plus, back, sizeof back, &bl) != SR_PCT_OK || bl != ol ||
                    memcmp(back, out, ol))
                    abort();
            }
        }
    }
    sr_http_bad bad;
    size_t dl = 0;
    if (sr_http_check_target(in, size, out, sizeof out, &dl, &bad) == 0) {
        if (strlen(out) != dl) abort();
        const char *seg = out;
        for (size_t i = 0; i <= dl; i++)
            if (i == dl || out[i] == '/') {
                size_t sl = (size_t)(out + i - seg);
                if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.')) abort();
                seg = out + i + 1;
            }
    } else if (!bad.field[0] || !bad.msg[0])
        abort();
    if (sr_http_check_head(in, size, &bad) != 0 && (!bad.field[0] || !bad.msg[0])) abort();
    return 0;
}
