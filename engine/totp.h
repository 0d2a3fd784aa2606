/*
 * engine/totp.h -- one-time passwords for users' logins (R-ID-2): TOTP as
 * RFC 6238 over HOTP (RFC 4226), in the one profile FreeOTP and Google
 * Authenticator use: HMAC-SHA-1, 6 digits, a 30 s step from the Unix epoch,
 * one step of drift either way; a 20-byte random secret shown as base32
 * (codecs/base32.h) in an otpauth:// enrolment URI.
 *
 * Pure algorithm: no I/O, no index. The caller (the login of /admin/v1)
 * keeps per user the secret and the last accepted step, and stores the
 * step sr_totp_verify returns before it answers, so that a code is accepted
 * once (a replayed code, or any code of a step at or before the stored
 * one, is refused).
 *
 * Invariants:
 *   - a code is compared in constant time (no early exit on the first
 *     differing digit, and all three steps of the window are computed
 *     whatever matches);
 *   - an accepted step is > last_step and within [now/30 - 1, now/30 + 1].
 */
#ifndef SR_TOTP_H
#define SR_TOTP_H

#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

enum {
    SR_TOTP_SECRET_LEN = 20, /* bytes of a new secret (RFC 4226 recommends 160 bits) */
    SR_TOTP_DIGITS = 6,
    SR_TOTP_PERIOD = 30,     /* seconds per step */
    SR_TOTP_DRIFT = 1,       /* steps accepted either side of now */
    SR_TOTP_URI_MAX = 1536,  /* room for any URI sr_totp_uri writes (issuer and account <= 128 bytes) */
    SR_TOTP_NAME_MAX = 128,  /* bytes of an issuer or account name */
};

/* HOTP (RFC 4226 section 5.3): the dynamic truncation of
 * HMAC-SHA-1(key, counter) mod 10^digits (digits 6..8). SR_EINVAL for other
 * digits, SR_ECRYPTO if OpenSSL fails. */
SR_MUST_CHECK int sr_hotp(const uint8_t *key, size_t keylen, uint64_t counter, int digits, uint32_t *code);

/* The step of a Unix time: floor(unix_s / 30) (0 before the epoch). */
static inline uint64_t sr_totp_step(int64_t unix_s)
{
    return unix_s < 0 ? 0 : (uint64_t)unix_s / SR_TOTP_PERIOD;
}

/* The 6-digit code a user types: exactly SR_TOTP_DIGITS ASCII digits (leading
 * zeros kept), nothing else. SR_EINVAL otherwise. */
SR_MUST_CHECK int sr_totp_parse(const char *s, size_t n, uint32_t *code);

/* Verify code text s[0..n) for key at unix_s, given the last accepted step
 * (0: none yet). SR_OK and *step = the matched step if the code is that of
 * a step in now-1..now+1 and > last_step; SR_EINVAL if s is not a code;
 * SR_ENOTFOUND if it matches no such step (wrong, too old, or replayed);
 * SR_ECRYPTO if OpenSSL fails. */
SR_MUST_CHECK int sr_totp_verify(const uint8_t *key, size_t keylen, const char *s, size_t n, int64_t unix_s,
                                 uint64_t last_step, uint64_t *step);

/* A new secret: SR_TOTP_SECRET_LEN random bytes (OpenSSL RAND_bytes). */
SR_MUST_CHECK int sr_totp_secret(uint8_t out[SR_TOTP_SECRET_LEN]);

/* The enrolment URI (Google Authenticator's Key Uri Format):
 *   otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 * ISSUER and ACCOUNT percent-encoded (every byte but A-Z a-z 0-9 - . _ ~),
 * the secret base32 without padding. SR_EINVAL if issuer or account is
 * empty, longer than SR_TOTP_NAME_MAX or holds a ':' (the label's
 * separator) or a control byte, or the key is longer than 64 bytes;
 * SR_ETOOBIG if out (cap bytes) cannot hold it (SR_TOTP_URI_MAX always
 * can). */
SR_MUST_CHECK int sr_totp_uri(const char *issuer, const char *account, const uint8_t *key, size_t keylen,
                              char *out, size_t cap);

#endif
