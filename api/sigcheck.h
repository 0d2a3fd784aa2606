/*
 * api/sigcheck.h -- data protection between apps and gateways (R-SE-3;
 * ../shared/docs/interface.md "Data protection", docs/signatures.md): the
 * check of a message's
 *   "protection":{"signAlg":"ES256","certId":"GW-0001#1A","signature":"<base64url>"}
 * against the sender's registered certificate (registry cert_pem), over the
 * exact bytes the message signs (GW-IF: its "body" member as sent; AP-IF
 * control: its "value" member as sent). No canonicalisation.
 *
 * certId is "ID#SERIAL": ID the app's or gateway's id (it must be the
 * sender's own), SERIAL the certificate's serial number in hexadecimal
 * (case and leading zeros do not matter; `openssl x509 -serial` prints it).
 * One certificate per principal is registered: a certId whose serial is not
 * the registered certificate's names a certificate the platform does not
 * know (a replaced one): E5003.
 *
 * Verdicts (api/wire.h):
 *   SR_WIRE_OK         verified;
 *   SR_WIRE_PARAM      protection is not an object of three strings (E1001);
 *   SR_WIRE_SIGNATURE  E5001: the signature does not verify, is not
 *                      base64url, signAlg is not a row of the table
 *                      (storage/crypto.c ALGS: ES256, ES384, PS256, EdDSA) or
 *                      not the certificate key's algorithm;
 *   SR_WIRE_CERT       E5003: no such principal or no certificate registered,
 *                      another serial, the sender's certificate not named,
 *                      outside its validity dates, or revoked (a registry
 *                      entry SR_RG_REVOKED "ID#SERIAL" of the operator).
 * why gets a message naming the reason (no secret in it).
 *
 * Invariants (tests/api/test_sigcheck.c):
 *   1. a verdict OK means OpenSSL verified the signature of exactly msg
 *      with the registered certificate's key, of the algorithm signAlg;
 *   2. a revoked, expired or not yet valid certificate never verifies;
 *   3. any thread; what outlives a call is only the parsed-certificate
 *      cache (below);
 *   4. the cache is keyed by the exact registered PEM text: a certificate
 *      replaced in the registry is never verified against with the old key,
 *      a revocation is read per message (never cached), the validity dates
 *      are compared with now_ms per call.
 * Cost: an ECDSA P-256 verify is ~50-100 us; the certificate's PEM parse
 * (of the same order) is done once per registered certificate and kept
 * (64 certificates, least recently used replaced): bench/sig_verify.c.
 */
#ifndef SR_SIGCHECK_H
#define SR_SIGCHECK_H

#include "api/wire.h"
#include "engine/suiro.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The canonical certId of a certificate's serial (uppercase hex, no leading
 * zeros) for subject id: "ID#SERIAL" into out. 0, or -1 if it does not fit
 * or certid is not of the form ID#HEX (sr_sig_canon_id: re-canonicalise). */
int sr_sig_canon_id(const char *certid, char *out, size_t cap);

/* The pure check: sig_b64u (base64url, padding optional) of msg under the
 * certificate pem (PEM X.509), whose serial must be serial_hex (NULL: any),
 * valid at now_ms, of algorithm alg. Revocation is the caller's. */
sr_wire sr_sig_verify_cert(const char *pem, size_t pem_len, const char *serial_hex, const char *alg,
                           const char *sig_b64u, const void *msg, size_t n, int64_t now_ms, char *why,
                           size_t whylen);

/* The parsed-certificate cache's counters since the start (a hit: a PEM
 * already parsed), and emptying it (tests, benchmarks). */
void sr_sig_cache_stats(uint64_t *hits, uint64_t *misses);
void sr_sig_cache_clear(void);

/* The whole check of protection (a JSON object) sent by sender (kind
 * SR_RG_APP or SR_RG_GATEWAY of operator op) over msg: the certificate
 * registered for sender, the operator's revocations, then
 * sr_sig_verify_cert. */
sr_wire sr_sig_check(sr_engine *e, const char *op, int kind, const char *sender, const json_t *protection,
                     const void *msg, size_t n, int64_t now_ms, char *why, size_t whylen);

/* sr_sig_check at the current time, as both interfaces run it (the one
 * function: a gateway's message, api/gwif_json.c sr_gw_parse_sig, and an
 * app's control request, api/apif_http.c): counted by the thread it runs on
 * (suiro_gw_sig_verify_total for SR_RG_GATEWAY, suiro_app_sig_verify_total
 * for SR_RG_APP; label thread "loop" or "worker": the loop's stays 0, both
 * run it on the worker queue, docs/signatures.md "Cost"), after the test
 * hook's delay. Any thread. */
sr_wire sr_sig_check_now(sr_engine *e, const char *op, int kind, const char *sender, const json_t *protection,
                         const void *msg, size_t n, char *why, size_t whylen);
/* test hook (SUIRO_TEST_SIG_DELAY_MS; tests only): every sr_sig_check_now
 * sleeps ms first, on its thread */
void sr_sig_test_delay(uint32_t ms);

#endif
