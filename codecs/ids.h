/*
 * codecs/ids.h -- the one validator of an ID of interface.md:
 * [A-Za-z0-9._-]{1,64} (gateway, app, operator, master, message and request
 * ids; the set-up sheet's ids, docs/setup-sheet.md).
 *
 * Every layer that checks an id uses these (the GW-IF parsers and the AP-IF
 * handlers, the sheet codec, gwsim's options): no second copy. The character
 * table is exported for the GW-IF fast parser, which scans an id while it
 * looks for its end (api/gwif_json.c).
 */
#ifndef SR_IDS_H
#define SR_IDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SR_ID_MAX 64

/* 1 for the bytes an id may hold ([A-Za-z0-9._-]), else 0 */
extern const uint8_t sr_id_char[256];

/* 1 if s[0..n) is an id, else 0 (branch-free over the bytes). */
static inline int sr_id_ok(const char *s, size_t n)
{
    if (n < 1 || n > SR_ID_MAX) return 0;
    unsigned ok = 1;
    for (size_t i = 0; i < n; i++) ok &= sr_id_char[(unsigned char)s[i]];
    return (int)ok;
}

/* The same for a NUL-terminated string. */
static inline int sr_id_str_ok(const char *s) { return sr_id_ok(s, strlen(s)); }

/* A file's path (AP-IF files, R-PO-2): segments of [A-Za-z0-9._-] separated
 * by '/', no "." or ".." segment, no leading or trailing '/', 1..512 bytes.
 * 1 if p[0..n) is one. */
#define SR_PATH_MAX 512
int sr_path_ok(const char *p, size_t n);

/* A grant's pattern on documents (files 0: a collection id) or files
 * (files 1: a path prefix of at most SR_STORE_PREFIX_MAX bytes, a trailing
 * '/' allowed): "*" (everything), or one optionally followed by '*' (a
 * string prefix). 1 if sound. */
#define SR_STORE_PREFIX_MAX 256
int sr_store_pattern_ok(int files, const char *pattern);

#endif
