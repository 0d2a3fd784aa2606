/* codecs/base/sr_error.c -- lookups generated from the table in sr_error.h. */
#include "codecs/base/sr_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sr_strerror(int rc)
{
    switch (rc) {
#define SR__ERR_MSG(name, val, msg) case SR_##name: return msg;
    SR_ERROR_MAP(SR__ERR_MSG)
#undef SR__ERR_MSG
    }
    return "unknown suiro error";
}

const char *sr_err_name(int rc)
{
    switch (rc) {
#define SR__ERR_NAME(name, val, msg) case SR_##name: return "SR_" #name;
    SR_ERROR_MAP(SR__ERR_NAME)
#undef SR__ERR_NAME
    }
    return "SR_UNKNOWN";
}

int sr_err_from_errno(int e)
{
    switch (e) {
    case 0: return SR_OK;
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return SR_ENOSPC;
    case ENOMEM: return SR_ENOMEM;
    case ENOENT: return SR_ENOTFOUND;
    case EEXIST: return SR_EEXIST;
    case EINVAL: return SR_EINVAL;
    case EFBIG: return SR_ETOOBIG;
    default: return SR_EIO;
    }
}

int sr_errinfo_set(sr_errinfo *ei, int code, const char *fmt, ...)
{
    if (!ei) return code;
    memset(ei, 0, sizeof *ei);
    ei->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
    va_end(ap);
    return code;
}
