/*
 * api/pki.h -- the platform's own key and certificate (R-SE-3, AP-IF row 9).
 *
 *   DIR/platform-key.pem    the private key, mode 0600: ES256 (EC P-256) unless
 *                           `suiro init --signature` or [crypto] signature named
 *                           another of the table (storage/crypto.h)
 *   DIR/platform-cert.pem   self-signed X.509 certificate (10 years)
 *
 * Created by `suiro init` (and by the server on first start of an older data
 * directory); an operator may replace both files with ones from their CA.
 */
#ifndef SR_PKI_H
#define SR_PKI_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>

/* Create the key (of the signature algorithm sig_alg, an sr_alg) and the
 * certificate if the certificate is missing. */
SR_MUST_CHECK int sr_pki_ensure_platform(const char *dir, int sig_alg, char *err, size_t errlen);
/* The certificate as PEM (replaces pem's contents). */
SR_MUST_CHECK int sr_pki_platform_cert(const char *dir, sr_buf *pem);

#endif
