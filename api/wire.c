/*
 * api/wire.c -- the lookups generated from the wire error table
 * (api/wire.h, SR_WIRE_MAP). Pure: no state, thread-safe.
 */
#include "api/wire.h"

#include <string.h>

typedef struct row {
    const char *name; /* "OK", "PARAM", ... */
    const char *code;
    int status;
    int transient;
    const char *msg;
    uint32_t rcs;
} row;

static const row rows[SR_WIRE__COUNT] = {
#define SR__WIRE_ROW(name, code, status, transient, msg, rcs) {#name, code, status, transient, msg, rcs},
    SR_WIRE_MAP(SR__WIRE_ROW)
#undef SR__WIRE_ROW
};

/* every engine error code is in some row (sr_wire_of_rc is total) and in
 * at most one (the rows' masks are disjoint: their sum is their union) */
#define SR__ERR_BIT(name, val, msg) | ((val) < 0 ? (UINT32_C(1) << -(val)) : 0)
#define SR__WIRE_OR(name, code, status, transient, msg, rcs) | (uint32_t)(rcs)
#define SR__WIRE_SUM(name, code, status, transient, msg, rcs) +(uint64_t)(rcs)
_Static_assert((0 SR_WIRE_MAP(SR__WIRE_OR)) == (0 SR_ERROR_MAP(SR__ERR_BIT)),
               "every SR_E... code maps to exactly one wire error (api/wire.h)");
_Static_assert((0 SR_WIRE_MAP(SR__WIRE_SUM)) == (uint64_t)(0 SR_ERROR_MAP(SR__ERR_BIT)),
               "an SR_E... code is in two rows of SR_WIRE_MAP");
#undef SR__ERR_BIT
#undef SR__WIRE_OR
#undef SR__WIRE_SUM

static const row *get(sr_wire w)
{
    return (unsigned)w < SR_WIRE__COUNT ? &rows[w] : &rows[SR_WIRE_INTERNAL];
}

const char *sr_wire_code(sr_wire w) { return get(w)->code; }
int sr_wire_status(sr_wire w) { return get(w)->status; }
const char *sr_wire_msg(sr_wire w) { return get(w)->msg; }
int sr_wire_transient(sr_wire w) { return (unsigned)w < SR_WIRE__COUNT ? rows[w].transient : 1; }

int sr_wire_parse(const char *code, sr_wire *out)
{
    if (!code) return -1;
    for (unsigned i = 0; i < SR_WIRE__COUNT; i++)
        if (!strcmp(rows[i].code, code)) {
            *out = (sr_wire)i;
            return 0;
        }
    return -1;
}

int sr_wire_parse_result(const char *code, sr_wire *out)
{
    if (code && !strcmp(code, rows[SR_WIRE_OK].name)) {
        *out = SR_WIRE_OK;
        return 0;
    }
    return sr_wire_parse(code, out);
}

sr_wire sr_wire_of_rc(int rc)
{
    if (rc == SR_OK) return SR_WIRE_OK;
    if (rc < 0 && rc > -32)
        for (unsigned i = 0; i < SR_WIRE__COUNT; i++)
            if (rows[i].rcs & (UINT32_C(1) << -rc)) return (sr_wire)i;
    return SR_WIRE_INTERNAL;
}

const char *sr_wire_msg_of_rc(int rc)
{
    switch (rc) {
    case SR_EPOISONED: return "writes are stopped after a failed write (the server resumes once it works)";
    case SR_ENOSPC: return "no space left on the server's disk";
    case SR_EFULL: return "server busy (writer queue full)";
    case SR_ECLOSED: return "server stopping";
    default: return sr_strerror(rc);
    }
}
