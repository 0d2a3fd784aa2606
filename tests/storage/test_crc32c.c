/* tests/storage/test_crc32c.c -- CRC-32C against the standard check value
 * and against a bitwise reference on random inputs (hardware path). */
#include <criterion/criterion.h>

#include "storage/crc32c.h"
#include "testutil.h"

static uint32_t ref(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

Test(crc32c, check_value_of_123456789)
{
    cr_assert_eq(sr_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(sr_crc32c(0, "", 0), 0u);
}

Test(crc32c, matches_reference_at_every_length_and_alignment_and_is_incremental)
{
    uint8_t buf[300];
    tu_rng r = {42};
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)tu_next(&r);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 7) {
            cr_assert_eq(sr_crc32c(0, buf + off, n), ref(buf + off, n), "off %zu n %zu", off, n);
            size_t h = n / 3;
            cr_assert_eq(sr_crc32c(sr_crc32c(0, buf + off, h), buf + off + h, n - h), ref(buf + off, n));
        }
}
