/* tests/codecs/test_sample.c -- the value model's one table of quality names
 * (codecs/sample.h) and the one id validator (codecs/ids.h), against the
 * contract's words (interface.md). */
#include <criterion/criterion.h>
#include <string.h>

#include "codecs/ids.h"
#include "codecs/sample.h"

/* interface.md's quality names, in the stored numbering (never renumbered) */
static const char *const contract_q[] = {"GOOD", "UNCERTAIN", "BAD", "NO_DATA"};

Test(codecs_sample, every_quality_has_its_contract_name_and_parses_back)
{
    cr_assert_eq(SR_Q_COUNT, 4);
    for (int q = 0; q < SR_Q_COUNT; q++) {
        cr_expect_str_eq(sr_quality_name[q], contract_q[q]);
        cr_expect_eq(sr_quality_len[q], strlen(contract_q[q]), "%s", contract_q[q]);
        cr_expect_str_eq(sr_quality_str((unsigned)q), contract_q[q]);
        cr_expect_eq(sr_quality_parse(contract_q[q], strlen(contract_q[q])), q, "%s", contract_q[q]);
    }
    cr_expect_eq(SR_Q_GOOD, 0);
    cr_expect_eq(SR_Q_NO_DATA, 3);
}

Test(codecs_sample, a_name_that_is_not_exactly_a_quality_is_refused)
{
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"good", 4}, {"GOOD ", 5}, {"", 0}, {"GOODX", 5}, {"BA", 2}, {"NO_DAT", 6}, {"GOOD\0", 5}, {"UNCERTAINX", 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(sr_quality_parse(bad[i].s, bad[i].n), -1, "'%s' (%zu)", bad[i].s, bad[i].n);
    /* a prefix of the buffer is what counts */
    cr_expect_eq(sr_quality_parse("BADGE", 3), SR_Q_BAD);
    /* out of range reads as GOOD, as every writer did */
    cr_expect_str_eq(sr_quality_str(4), "GOOD");
    cr_expect_str_eq(sr_quality_str(255), "GOOD");
}

Test(codecs_ids, every_byte_is_an_id_char_exactly_when_the_contract_says)
{
    for (int c = 0; c < 256; c++) {
        int want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '_' || c == '-';
        char s[2] = {(char)c, 0};
        cr_expect_eq(sr_id_char[c], want, "byte 0x%02x", c);
        cr_expect_eq(sr_id_ok(s, 1), want, "byte 0x%02x", c);
        if (c) cr_expect_eq(sr_id_str_ok(s), want, "byte 0x%02x", c);
    }
}

Test(codecs_ids, lengths_one_to_sixty_four)
{
    char xs[66];
    memset(xs, 'x', 65);
    xs[65] = 0;
    cr_expect_eq(sr_id_ok(xs, 0), 0);
    cr_expect_eq(sr_id_ok(xs, 1), 1);
    cr_expect_eq(sr_id_ok(xs, SR_ID_MAX), 1);
    cr_expect_eq(sr_id_ok(xs, SR_ID_MAX + 1), 0);
    cr_expect_eq(sr_id_str_ok(xs), 0);
    cr_expect_eq(sr_id_str_ok(""), 0);
    cr_expect_eq(sr_id_str_ok("GW-01.a_b"), 1);
    cr_expect_eq(sr_id_ok("GW 1", 4), 0);
    cr_expect_eq(sr_id_ok("a\0b", 3), 0); /* a NUL inside the length is no id char */
}
