/*
 * codecs/base32.h -- the one base32 encoder and decoder of the project
 * (RFC 4648 section 6, alphabet A-Z 2-7): the TOTP secrets of users
 * (engine/totp.h) travel in it, in the otpauth:// enrolment URI and typed
 * by hand into an authenticator.
 *
 * Contract:
 *   - sr_base32 writes the canonical upper-case text, '=' padded to a
 *     multiple of 8 only when pad is set (the otpauth URI has no padding).
 *   - sr_unbase32 reads text from outside: either case, trailing '='
 *     padding optional (when present it must be the exact padding of the
 *     text's length); nothing else (no spaces, no '=' inside). The bits
 *     past the last whole byte must be zero, so one byte string has exactly
 *     one accepted unpadded spelling per case. A length that no encoding
 *     has (1, 3 or 6 characters mod 8) is refused.
 */
#ifndef SR_BASE32_H
#define SR_BASE32_H

#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

/* Characters sr_base32 writes for n bytes (without the NUL). */
static inline size_t sr_base32_len(size_t n, int pad)
{
    return pad ? (n + 4) / 5 * 8 : (n * 8 + 4) / 5;
}

/* Bytes at most that sr_unbase32 writes for n characters. */
static inline size_t sr_unbase32_cap(size_t n) { return n * 5 / 8; }

/* Encode in[0..n) into out, NUL-terminated: out holds sr_base32_len(n, pad)
 * + 1 bytes. Returns the length written. */
size_t sr_base32(const uint8_t *in, size_t n, char *out, int pad);

/* Decode s[0..n) into out (cap bytes); *outlen is the number written.
 * SR_ECODEC for text that is not base32 as above, SR_ETOOBIG if out is too
 * small (sr_unbase32_cap(n) always suffices). */
SR_MUST_CHECK int sr_unbase32(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen);

#endif
