/* tests/codecs/base/test_error.c -- the error table: names, messages, errno map. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "codecs/base/sr_error.h"

Test(sr_error, every_code_has_a_distinct_name_and_message)
{
    int codes[] = {
#define X(name, val, msg) SR_##name,
        SR_ERROR_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_neq(sr_err_name(codes[i]), "SR_UNKNOWN");
        cr_assert_str_neq(sr_strerror(codes[i]), "unknown suiro error");
        for (size_t j = i + 1; j < n; j++) {
            cr_assert_neq(codes[i], codes[j]);
            cr_assert_str_neq(sr_err_name(codes[i]), sr_err_name(codes[j]));
        }
    }
    cr_assert_str_eq(sr_err_name(SR_ECORRUPT), "SR_ECORRUPT");
    cr_assert_str_eq(sr_err_name(12345), "SR_UNKNOWN");
    cr_assert_str_eq(sr_strerror(12345), "unknown suiro error");
}

Test(sr_error, errno_values_map_to_the_nearest_code)
{
    cr_assert_eq(sr_err_from_errno(ENOSPC), SR_ENOSPC);
    cr_assert_eq(sr_err_from_errno(EDQUOT), SR_ENOSPC);
    cr_assert_eq(sr_err_from_errno(ENOMEM), SR_ENOMEM);
    cr_assert_eq(sr_err_from_errno(ENOENT), SR_ENOTFOUND);
    cr_assert_eq(sr_err_from_errno(EIO), SR_EIO);
    cr_assert_eq(sr_err_from_errno(EBADF), SR_EIO);
    cr_assert_eq(sr_err_from_errno(0), SR_OK);
}
