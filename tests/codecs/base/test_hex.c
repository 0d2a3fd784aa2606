/* tests/codecs/base/test_hex.c -- the one hex encoder and decoder
 * (codecs/base/sr_alloc.h: sr_hex, sr_unhex, sr_hexval) and the one base64
 * encoder (storage/crypto.h: sr_base64, on OpenSSL), against RFC 4648's
 * test vectors. */
#include <criterion/criterion.h>
#include <string.h>

#include "codecs/base/sr_alloc.h"
#include "storage/crypto.h"

Test(hex, every_digit_in_either_case_and_nothing_else)
{
    for (int c = 0; c < 256; c++) {
        int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        cr_assert_eq(sr_hexval(c), want, "0x%02x", c);
    }
    cr_assert_eq(sr_hexval(-1), -1);
}

Test(hex, encode_then_decode_is_the_identity)
{
    uint8_t all[256], back[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    char text[513];
    memset(text, 'x', sizeof text);
    sr_hex(all, sizeof all, text);
    cr_assert_eq(strlen(text), 512);
    cr_assert_eq(strncmp(text, "000102030405060708090a0b0c0d0e0f10", 34), 0, "%.34s", text);
    cr_assert_str_eq(text + 500, "fafbfcfdfeff");
    cr_assert_eq(sr_unhex(text, 256, back), 0);
    cr_assert_eq(memcmp(all, back, 256), 0);
    /* upper case reads the same */
    uint8_t b2[4];
    cr_assert_eq(sr_unhex("DeadBEEF", 4, b2), 0);
    cr_assert_eq(memcmp(b2, "\xde\xad\xbe\xef", 4), 0);
    /* an empty input is an empty string */
    char e[1] = {'x'};
    sr_hex(all, 0, e);
    cr_assert_eq(e[0], 0);
    cr_assert_eq(sr_unhex("", 0, b2), 0);
}

Test(hex, a_non_digit_anywhere_is_refused)
{
    static const char *const bad[] = {"0g", "g0", " 0", "0 ", "+f", "-1", "0x", "\xff\x30"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t out = 0x5a;
        cr_assert_eq(sr_unhex(bad[i], 1, &out), -1, "\"%s\" decoded", bad[i]);
        cr_assert_eq(out, 0x5a, "\"%s\": the byte was written", bad[i]);
    }
    uint8_t out[3];
    cr_assert_eq(sr_unhex("0102zz", 3, out), -1);
    cr_assert_eq(sr_unhex("01020", 3, out), -1); /* the NUL is not a digit */
}

/* RFC 4648 section 10, and base64url (section 5) without padding */
Test(base64, rfc4648_vectors_standard_and_url)
{
    static const struct {
        const char *in, *std, *url;
    } v[] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
        {"\xfb\xff\xbf", "+/+/", "-_-_"},
        {"\x14\xfb\x9c\x03\xd9\x7e", "FPucA9l+", "FPucA9l-"},
        {"\xff\xef", "/+8=", "_-8"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        size_t n = strlen(v[i].in);
        cr_assert_eq(sr_base64((const uint8_t *)v[i].in, n, out, 0), strlen(v[i].std), "%zu", i);
        cr_assert_str_eq(out, v[i].std, "%zu", i);
        cr_assert_eq(sr_base64((const uint8_t *)v[i].in, n, out, 1), strlen(v[i].url), "%zu", i);
        cr_assert_str_eq(out, v[i].url, "%zu", i);
    }
    /* an ES256 signature (64 bytes) is 86 base64url characters (api/push.c) */
    uint8_t sig[64];
    memset(sig, 0xfb, sizeof sig);
    char s[86 + 1 + 2]; /* what push.c holds, and two bytes that must stay untouched */
    memset(s, '#', sizeof s);
    cr_assert_eq(sr_base64(sig, sizeof sig, s, 1), 86);
    cr_assert_eq(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 86);
    cr_assert_eq(s[86], 0);
    cr_assert(s[87] == '#' && s[88] == '#', "base64url wrote past its length");
    /* longer than one internal block (48 bytes), padding only at the end */
    uint8_t big[100];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
    char b1[140], b2[140];
    size_t n1 = sr_base64(big, sizeof big, b1, 0), n2 = sr_base64(big, sizeof big, b2, 1);
    cr_assert_eq(n1, 136);
    cr_assert_eq(n2, 134);
    cr_assert_str_eq(b1 + 134, "==");
    for (size_t i = 0; i < 134; i++) /* the same digits but for the alphabet */
        cr_assert_eq(b2[i], b1[i] == '+' ? '-' : b1[i] == '/' ? '_' : b1[i], "at %zu: %s / %s", i, b1, b2);
    cr_assert_eq(strchr(b1, '=') - b1, 134, "padding only at the end: %s", b1);
}
