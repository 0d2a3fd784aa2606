/*
 * codecs/base/sr_error.h -- suiro's one error table.
 *
 * Every fallible function in suiro returns an int: 0 (SR_OK) on success, a
 * negative SR_E* code on failure. A few functions also return SR_DONE (a
 * positive value, not an error) to say "nothing more" (end of an iterator).
 * The codes, their names and their messages come from the single X-macro
 * below, so they cannot drift apart. The numeric values are part of the
 * on-disk and wire API (they appear in tool output and JSON): never renumber,
 * only append.
 *
 * The base layer (codecs/base/, with sr_alloc.h): every layer includes it
 * and it includes nothing of the project (tests/integration/check_layering.py).
 */
#ifndef SR_ERROR_H
#define SR_ERROR_H

#include <stdint.h>

#define SR_ERROR_MAP(X)                                                        \
    X(DONE,        1, "no more items")                                         \
    X(OK,          0, "success")                                               \
    X(EINVAL,     -1, "invalid argument")                                      \
    X(ENOMEM,     -2, "out of memory")                                         \
    X(EIO,        -3, "I/O error")                                             \
    X(ENOSPC,     -4, "no space left on device")                               \
    X(ECORRUPT,   -5, "stored data failed validation")                         \
    X(ENOTFOUND,  -6, "not found")                                             \
    X(ECODEC,     -7, "encode or decode failed")                               \
    X(EFULL,      -8, "queue or map is full, retry later")                     \
    X(EPOISONED,  -9, "handle failed earlier and must be reopened")            \
    X(ETLS,      -10, "TLS failure")                                           \
    X(EKEY,      -11, "missing or wrong encryption key")                       \
    X(EVERSION,  -12, "unsupported format version")                            \
    X(ETOOBIG,   -13, "item larger than the configured limit")                 \
    X(EEXIST,    -14, "already exists")                                        \
    X(ELOCKED,   -15, "directory is in use by another process")                \
    X(ECRYPTO,   -16, "cryptographic library failure")                         \
    X(ECLOSED,   -17, "handle is closing")                                   \
    X(ECONFLICT, -18, "revision does not match (changed by someone else)")    \
    X(EDB,       -19, "index database failure")                             \
    X(EERASED,   -20, "erased: the key that sealed it was destroyed")

typedef enum sr_err {
#define SR__ERR_ENUM(name, val, msg) SR_##name = (val),
    SR_ERROR_MAP(SR__ERR_ENUM)
#undef SR__ERR_ENUM
} sr_err;

_Static_assert(SR_ECORRUPT == -5, "error codes are API; never renumber");
_Static_assert(SR_EPOISONED == -9, "error codes are API; never renumber");

/* Message for a code; a string constant, never NULL, thread-safe. */
const char *sr_strerror(int rc);
/* Name of a code ("SR_EIO"); never NULL. */
const char *sr_err_name(int rc);
/* Map an errno value to the nearest SR_ code (ENOSPC/EDQUOT -> SR_ENOSPC,
 * ENOMEM -> SR_ENOMEM, ENOENT -> SR_ENOTFOUND, EEXIST -> SR_EEXIST, else EIO). */
int sr_err_from_errno(int e);

/* The one struct that carries the detail of a failure up the layers, where
 * a handle is not available to ask: the log's and the engine's open,
 * rebuild and verify, the blob store (storage/blobs.h sr_blob_errinfo is this
 * struct), the log's iterators, and a command's refusal (sr_result.err in
 * engine/suiro.h: code == the result's rc, msg what and where). */
typedef struct sr_errinfo {
    int code;
    char msg[320];
    union {                /* the file concerned, or "": */
        char where[72];
        char segment[72];  /* a log segment (storage/log.c) */
        char blob[72];     /* a blob's hex name (storage/blobs.c) */
    };
    uint64_t offset;       /* byte offset in it of the bad block, header or part */
} sr_errinfo;

#if defined(__GNUC__)
#define SR_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SR_MUST_CHECK
#endif

/* Fill ei (if given) anew: code and a printf-formatted message (the rest
 * zero). Returns code, so that a failure is one line: return sr_errinfo_set(...). */
int sr_errinfo_set(sr_errinfo *ei, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
