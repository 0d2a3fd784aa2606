/* tests/codecs/test_csv.c -- codecs/csv.c: RFC 4180 reading, quoting round
 * trips, every error kind with its line number, limits, hostile bytes and
 * allocation failure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/csv.h"
#include "fault_alloc.h"
#include "testutil.h"

#define S(lit) lit, sizeof(lit) - 1

TestSuite(codecs_csv, .timeout = 60);

/* Read every record of s into a flat "a|b|c\n" description (fields joined by
 * '|', records by '\n', comment records prefixed with '!'). Stops at the
 * first error and returns its code; *line gets its line. */
static int dump(const char *s, size_t n, const sr_csv_opts *o, char *out, size_t cap, size_t *line)
{
    sr_csv_reader r;
    sr_csv_record rec;
    int rc;
    size_t w = 0;
    sr_csv_reader_init(&r, s, n, o);
    out[0] = 0;
    while ((rc = sr_csv_next(&r, &rec)) == SR_OK) {
        w += (size_t)snprintf(out + w, cap - w, "%s", rec.comment ? "!" : "");
        for (size_t i = 0; i < rec.n; i++)
            w += (size_t)snprintf(out + w, cap - w, "%s%s", i ? "|" : "", rec.f[i].s);
        w += (size_t)snprintf(out + w, cap - w, "@%zu\n", rec.line);
    }
    if (rc != SR_DONE) sr_csv_error(&r, line);
    sr_csv_reader_release(&r);
    return rc == SR_DONE ? SR_OK : rc;
}

/* input -> every record as "f1|f2@line" (see dump) */
static const struct {
    const char *what, *in, *out;
} records[] = {
    {"simple records with LF, CRLF and CR", "a,b\nc,d\r\ne,f\rg", "a|b@1\nc|d@2\ne|f@3\ng@4\n"},
    {"a trailing newline makes no extra record and empty fields are kept", ",a,\n\n,\n", "|a|@1\n@2\n|@3\n"},
    {"quoted fields hold commas, quotes and line breaks", "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\nnext,\"\"\n",
     "a,b|say \"hi\"|two\nlines@1\nnext|@3\n"},
    {"no input, no record", "", ""},
    {"a quoted empty field and a quoted CRLF", "\"\",\"x\r\ny\"\r\nz", "|x\r\ny@1\nz@3\n"},
};

Test(codecs_csv, records_table)
{
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
        char out[256];
        size_t line = 0;
        cr_expect_eq(dump(records[i].in, strlen(records[i].in), NULL, out, sizeof out, &line), SR_OK, "%s", records[i].what);
        cr_expect_str_eq(out, records[i].out, "%s", records[i].what);
    }
}

Test(codecs_csv, record_reports_start_and_end_line)
{
    sr_csv_reader r;
    sr_csv_record rec;
    sr_csv_reader_init(&r, S("x\n\"a\r\nb\r\nc\",d\ny\n"), NULL);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_OK);
    cr_assert_eq(rec.line, 1);
    cr_assert_eq(rec.end_line, 1);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_OK);
    cr_assert_eq(rec.line, 2);
    cr_assert_eq(rec.end_line, 4);
    cr_assert_str_eq(rec.f[0].s, "a\r\nb\r\nc");
    cr_assert_eq(sr_csv_next(&r, &rec), SR_OK);
    cr_assert_eq(rec.line, 5);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_DONE);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_DONE);
    sr_csv_reader_release(&r);
}

Test(codecs_csv, utf8_bom_is_skipped_and_utf8_is_kept)
{
    char out[256];
    size_t line = 0;
    cr_assert_eq(dump(S("\xEF\xBB\xBF" "浄水場,m³/h\n"), NULL, out, sizeof out, &line), SR_OK);
    cr_assert_str_eq(out, "浄水場|m³/h@1\n");
}

Test(codecs_csv, comment_lines_are_raw_when_enabled)
{
    char out[256];
    size_t line = 0;
    sr_csv_opts o = {.comment = '#'};
    cr_assert_eq(dump(S("#a \"quote, here\na,#b\n\"#c\"\n"), &o, out, sizeof out, &line), SR_OK);
    cr_assert_str_eq(out, "!#a \"quote, here@1\na|#b@2\n#c@3\n");
    cr_assert_eq(dump(S("#a,b\n"), NULL, out, sizeof out, &line), SR_OK);
    cr_assert_str_eq(out, "#a|b@1\n");
}

static void expect_error(const char *s, size_t n, const sr_csv_opts *o, size_t want_line, const char *want_msg)
{
    char out[1024];
    size_t line = 0;
    sr_csv_reader r;
    sr_csv_record rec;
    int rc;
    sr_csv_reader_init(&r, s, n, o);
    while ((rc = sr_csv_next(&r, &rec)) == SR_OK) {}
    cr_assert_eq(rc, SR_ECODEC, "rc=%d", rc);
    const char *m = sr_csv_error(&r, &line);
    cr_assert_eq(line, want_line, "line %zu, want %zu (%s)", line, want_line, m);
    cr_assert(strstr(m, want_msg), "message \"%s\" lacks \"%s\"", m, want_msg);
    sr_csv_reader_release(&r);
    (void)out;
}

Test(codecs_csv, every_error_kind_has_its_line)
{
    expect_error(S("a\nb\n\"open\nstill"), NULL, 3, "unterminated quoted field (opened on line 3)");
    expect_error(S("a\n\"x\"y,b\n"), NULL, 2, "after a closing quote");
    expect_error(S("a\nb\nx\"y\n"), NULL, 3, "quote inside an unquoted field");
    expect_error(S("a\nb\xC3\n"), NULL, 2, "invalid UTF-8");
    expect_error(S("a\n\"q\n\xFF\"\n"), NULL, 3, "invalid UTF-8");
    expect_error(S("ok\nnul\0here\n"), NULL, 2, "NUL byte");
    sr_csv_opts small = {.max_field = 4, .max_record = 6, .max_fields = 3};
    expect_error(S("abcd\nabcde\n"), &small, 2, "field longer than 4");
    expect_error(S("ab,cd\nabc,def,g\n"), &small, 2, "record longer than 6");
    expect_error(S("a,b,c\na,b,c,d\n"), &small, 2, "more than 3 fields");
}

Test(codecs_csv, invalid_utf8_forms_are_rejected)
{
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xC0\xAF",         /* overlong '/' */
        "\xE0\x80\xAF",     /* overlong */
        "\xED\xA0\x80",     /* surrogate */
        "\xF4\x90\x80\x80", /* > U+10FFFF */
        "\xF5\x80\x80\x80", /* invalid lead */
        "\xE3\x81",         /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sr_csv_reader r;
        sr_csv_record rec;
        sr_csv_reader_init(&r, bad[i], strlen(bad[i]), NULL);
        cr_assert_eq(sr_csv_next(&r, &rec), SR_ECODEC, "case %zu", i);
        sr_csv_reader_release(&r);
    }
    cr_assert_eq(sr__csv_utf8_seq((const uint8_t *)"\xF0\x9F\x92\xA7", 4), 4); /* U+1F4A7 */
    cr_assert_eq(sr__csv_utf8_seq((const uint8_t *)"\xEF\xBF\xBF", 3), 3);
}

Test(codecs_csv, reading_continues_after_a_bad_record)
{
    sr_csv_reader r;
    sr_csv_record rec;
    size_t line;
    sr_csv_reader_init(&r, S("a\n\"x\"y,\"multi\nline\"\n\xFF,z\nlast\n"), NULL);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_OK);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_ECODEC);
    sr_csv_error(&r, &line);
    cr_assert_eq(line, 2);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_ECODEC);
    sr_csv_error(&r, &line);
    cr_assert_eq(line, 4);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_OK);
    cr_assert_str_eq(rec.f[0].s, "last");
    cr_assert_eq(rec.line, 5);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_DONE);
    sr_csv_reader_release(&r);
}

Test(codecs_csv, writer_quotes_only_when_needed)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_csv_field f[] = {{S("plain")}, {S("a,b")}, {S("q\"q")}, {S("")},
                        {S("l\nl")},  {S("#x")},  {S(" sp")}, {S("日本")}};
    cr_assert_eq(sr_csv_write_record(&b, f, 8, "\n"), SR_OK);
    cr_assert_eq(sr_csv_write_record(&b, NULL, 0, NULL), SR_OK);
    cr_assert_eq(sr_buf_append(&b, "", 1), SR_OK);
    cr_assert_str_eq((char *)b.data, "plain,\"a,b\",\"q\"\"q\",,\"l\nl\",\"#x\",\" sp\",日本\n\r\n");
    sr_buf_release(&b);
}

Test(codecs_csv, write_then_read_round_trips_random_fields)
{
    tu_rng rng = {tu_seed(42)};
    static const char alphabet[] = "ab,\"\n\r #\t水x";
    for (int it = 0; it < tu_iters(300); it++) {
        size_t nf = 1 + tu_below(&rng, 6);
        char fields[6][32];
        sr_csv_field f[6];
        for (size_t i = 0; i < nf; i++) {
            size_t len = tu_below(&rng, 10), o = 0;
            for (size_t j = 0; j < len; j++) {
                size_t k = tu_below(&rng, sizeof alphabet - 1);
                unsigned char ch = (unsigned char)alphabet[k];
                if (ch >= 0x80) { /* the 3-byte 水 */
                    memcpy(fields[i] + o, "水", 3);
                    o += 3;
                } else fields[i][o++] = (char)ch;
            }
            fields[i][o] = 0;
            f[i] = (sr_csv_field){fields[i], o};
        }
        if (nf == 1 && f[0].len == 0) continue; /* reads back as one empty field anyway */
        sr_buf b;
        sr_buf_init(&b);
        cr_assert_eq(sr_csv_write_record(&b, f, nf, it % 2 ? "\n" : "\r\n"), SR_OK);
        cr_assert_eq(sr_csv_write_record(&b, f, nf, "\n"), SR_OK);
        sr_csv_opts o = {.comment = '#'};
        sr_csv_reader r;
        sr_csv_record rec;
        sr_csv_reader_init(&r, b.data, b.len, &o);
        for (int rep = 0; rep < 2; rep++) {
            cr_assert_eq(sr_csv_next(&r, &rec), SR_OK, "it %d", it);
            cr_assert_eq(rec.n, nf, "it %d", it);
            for (size_t i = 0; i < nf; i++) {
                cr_assert_eq(rec.f[i].len, f[i].len, "it %d field %zu", it, i);
                cr_assert(!memcmp(rec.f[i].s, f[i].s, f[i].len), "it %d field %zu", it, i);
            }
        }
        cr_assert_eq(sr_csv_next(&r, &rec), SR_DONE);
        sr_csv_reader_release(&r);
        sr_buf_release(&b);
    }
}

Test(codecs_csv, huge_field_is_refused_without_huge_allocation)
{
    size_t n = 8u << 20;
    char *big = malloc(n);
    cr_assert(big);
    memset(big, 'x', n);
    big[0] = '"'; /* a quoted field that never ends */
    sr_csv_reader r;
    sr_csv_record rec;
    sr_csv_reader_init(&r, big, n, NULL);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_ECODEC);
    cr_assert_leq(r.data.cap, 256u << 10);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_DONE);
    sr_csv_reader_release(&r);
    memset(big, 'y', n);
    sr_csv_reader_init(&r, big, n, NULL);
    cr_assert_eq(sr_csv_next(&r, &rec), SR_ECODEC);
    cr_assert(strstr(sr_csv_error(&r, NULL), "field longer"));
    sr_csv_reader_release(&r);
    free(big);
}

Test(codecs_csv, random_bytes_never_crash)
{
    tu_rng rng = {tu_seed(7)};
    uint8_t buf[512];
    static const uint8_t pick[] = {'a', ',', '"', '\n', '\r', 0, 0xC3, 0xA9, 0xFF, '#', ' '};
    for (int it = 0; it < tu_iters(2000); it++) {
        size_t n = tu_below(&rng, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = pick[tu_below(&rng, sizeof pick)];
        sr_csv_opts o = {.max_field = 16, .max_record = 64, .max_fields = 8, .comment = '#'};
        sr_csv_reader r;
        sr_csv_record rec;
        sr_csv_reader_init(&r, buf, n, &o);
        int rc, guard = 0;
        while ((rc = sr_csv_next(&r, &rec)) != SR_DONE) {
            cr_assert(rc == SR_OK || rc == SR_ECODEC);
            cr_assert_lt(++guard, 1000);
            if (rc == SR_OK)
                for (size_t i = 0; i < rec.n; i++) cr_assert_eq(strlen(rec.f[i].s), rec.f[i].len);
        }
        sr_csv_reader_release(&r);
    }
}

Test(codecs_csv, allocation_failure_is_enomem_and_leaks_nothing)
{
    static const char doc[] = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t\n\"x,y\",z\n";
    fault_alloc_install();
    int ok = 0;
    for (unsigned long k = 1; k < 64; k++) {
        fault_alloc_arm(k);
        sr_csv_reader r;
        sr_csv_record rec;
        sr_csv_reader_init(&r, doc, sizeof doc - 1, NULL);
        int rc, saw_nomem = 0, n = 0;
        while ((rc = sr_csv_next(&r, &rec)) != SR_DONE) {
            cr_assert(rc == SR_OK || rc == SR_ENOMEM, "k=%lu rc=%d", k, rc);
            if (rc == SR_ENOMEM) saw_nomem = 1;
            else n++;
        }
        sr_csv_reader_release(&r);
        if (!fault_alloc_fired()) {
            cr_assert_eq(n, 2);
            ok = 1;
            break;
        }
        cr_assert(saw_nomem, "k=%lu", k);

        sr_buf b;
        sr_buf_init(&b);
        fault_alloc_arm(1);
        sr_csv_field f[] = {{S("a,b")}};
        cr_assert_eq(sr_csv_write_record(&b, f, 1, "\n"), SR_ENOMEM);
        cr_assert_eq(b.len, 0);
        sr_buf_release(&b);
    }
    fault_alloc_arm(0);
    fault_alloc_uninstall();
    cr_assert(ok, "the reader never got through without a failure");
}
