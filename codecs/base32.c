/* codecs/base32.c -- RFC 4648 base32 (see base32.h for the contract). */
#include "codecs/base32.h"

static const char b32_alpha[33] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t sr_base32(const uint8_t *in, size_t n, char *out, int pad)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = b32_alpha[(acc >> bits) & 31];
        }
    }
    if (bits > 0) out[o++] = b32_alpha[(acc << (5 - bits)) & 31];
    if (pad)
        while (o % 8) out[o++] = '=';
    out[o] = '\0';
    return o;
}

static int b32_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= '2' && c <= '7') return c - '2' + 26;
    return -1;
}

int sr_unbase32(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t m = n;
    while (m > 0 && s[m - 1] == '=') m--;
    /* characters of the last group that leave no partial byte: 0, 2, 4, 5, 7 */
    switch (m % 8) {
    case 1: case 3: case 6: return SR_ECODEC;
    default: break;
    }
    if (m != n && (n % 8 != 0 || n - m > 6)) return SR_ECODEC; /* padding only to a full group */
    if (m * 5 / 8 > cap) return SR_ETOOBIG;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) {
        int v = b32_val((unsigned char)s[i]);
        if (v < 0) return SR_ECODEC;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1))) return SR_ECODEC; /* non-zero trailing bits */
    *outlen = o;
    return SR_OK;
}
