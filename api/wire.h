/*
 * api/wire.h -- the one table of wire errors (../shared/docs/interface.md,
 * "Errors"): every result code the server sends or accepts on GW-IF and
 * AP-IF, its HTTP status, its default message, whether a gateway must resend
 * (transient), and the engine error codes (SR_E..., codecs/base/sr_error.h)
 * that map to it. The X-macro below generates the enum, the code text, the
 * status lookup, the default message and the rc -> wire mapping; no
 * "Exxxx" literal appears anywhere else in production code
 * (tests/integration/check_layering.py fails on one), and nothing else maps
 * an engine code to a wire code.
 *
 * Invariants (tests/api/test_wire.c):
 *   - codes are unique; SR_WIRE_OK is 0 (so a zeroed struct means "no
 *     error") and its code is "0";
 *   - every SR_E... code of SR_ERROR_MAP is in exactly one row's RCS, so
 *     sr_wire_of_rc is total (a static assertion in wire.c checks the union);
 *   - statuses and codes are those of interface.md (the test reads the
 *     codes of docs/api/openapi.yaml's ErrorCode).
 *
 * To add a wire error: one row here (and the code in interface.md and
 * openapi.yaml's ErrorCode); the callers name it as SR_WIRE_<NAME>.
 */
#ifndef SR_WIRE_H
#define SR_WIRE_H

#include "codecs/base/sr_error.h"

#include <stdint.h>

/* an engine code as a bit of a row's RCS column */
#define SR_WIRE_RC(e) (UINT32_C(1) << -(SR_##e))

/* X(NAME, code, HTTP status, transient, default message, RCS) */
#define SR_WIRE_MAP(X)                                                                                     \
    X(OK, "0", 200, 0, "OK", 0)                                                                            \
    X(PARAM, "E1001", 400, 0, "invalid parameter", SR_WIRE_RC(EINVAL) | SR_WIRE_RC(ECODEC))                \
    X(JSON, "E1002", 400, 0, "malformed JSON", 0)                                                          \
    X(LARGE, "E1003", 413, 0, "payload too large", SR_WIRE_RC(ETOOBIG))                                    \
    X(UNAUTH, "E2001", 401, 0, "not authenticated", 0)                                                     \
    X(EXPIRED, "E2002", 401, 0, "session expired", 0)                                                      \
    X(FORBIDDEN, "E2003", 403, 0, "forbidden", 0)                                                          \
    X(UNKNOWN, "E3001", 404, 0, "unknown ID", SR_WIRE_RC(ENOTFOUND) | SR_WIRE_RC(EERASED)) \
    X(CONFLICT, "E3002", 409, 0, "conflict", SR_WIRE_RC(ECONFLICT))                                        \
    X(GW_DOWN, "E4001", 503, 0, "gateway not connected", 0)                                                \
    X(GW_TIMEOUT, "E4002", 504, 0, "the gateway did not answer in time", 0)                                \
    X(DEVICE, "E4003", 502, 0, "device or field error reported by the gateway", 0)                         \
    X(REJECTED, "E4004", 422, 0, "control value rejected", 0)                                              \
    X(SIGNATURE, "E5001", 422, 0, "signature verification failed", 0)                                      \
    X(DECRYPT, "E5002", 422, 0, "decryption failed", 0)                                                    \
    X(CERT, "E5003", 422, 0, "certificate unknown, expired or revoked", 0)                                 \
    X(INTERNAL, "E9001", 500, 1, "internal error",                                                         \
      SR_WIRE_RC(ENOMEM) | SR_WIRE_RC(ECORRUPT) | SR_WIRE_RC(ETLS) | SR_WIRE_RC(EKEY) |                    \
          SR_WIRE_RC(EVERSION) | SR_WIRE_RC(EEXIST) | SR_WIRE_RC(ELOCKED) | SR_WIRE_RC(ECRYPTO) |          \
          SR_WIRE_RC(EDB))                                                                                 \
    X(BUSY, "E9002", 429, 1, "server busy, retry later",                                                   \
      SR_WIRE_RC(EFULL) | SR_WIRE_RC(ENOSPC) | SR_WIRE_RC(EPOISONED) | SR_WIRE_RC(ECLOSED) | SR_WIRE_RC(EIO))

typedef enum sr_wire {
#define SR__WIRE_ENUM(name, code, status, transient, msg, rcs) SR_WIRE_##name,
    SR_WIRE_MAP(SR__WIRE_ENUM)
#undef SR__WIRE_ENUM
        SR_WIRE__COUNT
} sr_wire;

_Static_assert(SR_WIRE_OK == 0, "a zeroed code is no error");

/* "0", "E1001", ...; "E9001" for a value outside the table. */
const char *sr_wire_code(sr_wire w);
/* interface.md's HTTP status of w; 500 outside the table. */
int sr_wire_status(sr_wire w);
/* the table's default message */
const char *sr_wire_msg(sr_wire w);
/* 1 if w is about the server's state, not the message (E9xxx): a gateway
 * resends; also 1 outside the table. */
int sr_wire_transient(sr_wire w);
/* The code text (exactly "0" or a code of the table) to *out: 0, or -1 if
 * the text is not one of them. */
int sr_wire_parse(const char *code, sr_wire *out);
/* A gateway's result code: what sr_wire_parse takes, or the OK row's name
 * "OK" (success spelt as a word, accepted from gateways); 0, or -1. */
int sr_wire_parse_result(const char *code, sr_wire *out);
/* The wire error of an engine result code (SR_OK -> SR_WIRE_OK; every
 * SR_E... has a row; any other value is SR_WIRE_INTERNAL). */
sr_wire sr_wire_of_rc(int rc);
/* A message naming why rc (not SR_OK) did not store, for a gateway or an
 * app: the engine's sr_strerror, phrased for them where the engine's text
 * would mislead (writes stopped, no space, queue full, stopping). */
const char *sr_wire_msg_of_rc(int rc);

#endif
