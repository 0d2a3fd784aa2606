/* tests/fuzz/fuzz_totp.c -- the parsers of a user's TOTP input on arbitrary
 * bytes: the base32 decoder (codecs/base32.h; a secret typed or pasted) and
 * the code parser and verifier (engine/totp.h). Never a crash or an
 * out-of-bounds read; what the decoder accepts re-encodes to the same text
 * (upper case, padding dropped), so one secret has one spelling; the code
 * parser accepts exactly six ASCII digits. Corpus: tests/fuzz/totp/. */
#include "codecs/base32.h"
#include "engine/totp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint8_t out[1024];
    size_t n = 0;
    int rc = sr_unbase32(s, size, out, sizeof out, &n);
    if (rc == SR_OK) {
        if (n > sr_unbase32_cap(size)) abort();
        char *back = malloc(sr_base32_len(n, 0) + 1);
        if (!back) return 0;
        size_t w = sr_base32(out, n, back, 0);
        size_t m = size;
        while (m > 0 && s[m - 1] == '=') m--;
        if (w != m) abort();
        for (size_t i = 0; i < m; i++) {
            char c = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 32) : s[i];
            if (c != back[i]) abort();
        }
        free(back);
    } else if (rc != SR_ECODEC && rc != SR_ETOOBIG) {
        abort();
    }
    uint32_t code;
    int ok = sr_totp_parse(s, size, &code) == SR_OK;
    int digits = size == SR_TOTP_DIGITS;
    for (size_t i = 0; digits && i < size; i++) digits = s[i] >= '0' && s[i] <= '9';
    if (ok != digits || (ok && code > 999999)) abort();
    static const uint8_t key[] = "12345678901234567890";
    uint64_t step = 0;
    rc = sr_totp_verify(key, 20, s, size, 1700000015, 0, &step);
    if (rc == SR_OK ? !ok || step < 56666666 || step > 56666668 : rc != SR_EINVAL && rc != SR_ENOTFOUND) abort();
    return 0;
}
