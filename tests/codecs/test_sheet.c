/* tests/codecs/test_sheet.c -- codecs/sheet.c: the set-up sheet (R-MA-3).
 *
 * The demo sheet parses clean; parse -> write -> parse gives an equal sheet
 * and re-export is byte-identical; each validation rule reports the right
 * line and column; all errors are reported in one go; hostile bytes and
 * allocation failures are answered with an error code, never a crash or a
 * leak. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/sheet.h"
#include "fault_alloc.h"
#include "testutil.h"

#define DEMO SR_TEST_DATA "/../../docs/examples/demo-sheet.csv"

TestSuite(codecs_sheet, .timeout = 120);

static uint8_t *read_demo(size_t *n)
{
    uint8_t *p = tu_read_file(DEMO, n);
    cr_assert(p, "cannot read %s", DEMO);
    return p;
}

static int parse_str(const char *s, sr_sheet **out) { return sr_sheet_parse(s, strlen(s), NULL, out); }

static void dump_errors(const sr_sheet *sh)
{
    for (size_t i = 0; sh && i < sh->n_errors; i++)
        cr_log_info("line %zu [%s] %s", sh->errors[i].line, sh->errors[i].column, sh->errors[i].msg);
}

/* 1 if sh has an error on line with column col whose message contains msg. */
static int has_error(const sr_sheet *sh, size_t line, const char *col, const char *msg)
{
    for (size_t i = 0; i < sh->n_errors; i++) {
        const sr_sheet_error *e = &sh->errors[i];
        if (e->line == line && !strcmp(e->column, col) && strstr(e->msg, msg)) return 1;
    }
    return 0;
}

#define EXPECT_ERROR(sh, line, col, msg)                                                              \
    do {                                                                                              \
        if (!has_error((sh), (line), (col), (msg))) dump_errors(sh);                                  \
        cr_assert(has_error((sh), (line), (col), (msg)), "no error line %d [%s] \"%s\"", (int)(line), \
                  (col), (msg));                                                                      \
    } while (0)

/* ---- the demo sheet and round trips ------------------------------------ */

Test(codecs_sheet, demo_sheet_parses_clean)
{
    size_t n;
    uint8_t *p = read_demo(&n);
    sr_sheet *sh = NULL;
    int rc = sr_sheet_parse(p, n, NULL, &sh);
    dump_errors(sh);
    cr_assert_eq(rc, SR_OK);
    cr_assert_eq(sh->n_errors, 0);
    cr_assert_eq(sh->n_operators, 1);
    cr_assert_str_eq(sh->operators[0].id, "demo");
    cr_assert_eq(sh->n_gateways, 2);
    cr_assert_str_eq(sh->gateways[0].id, "GW001");
    cr_assert_str_eq(sh->gateways[1].id, "GW002");
    cr_assert_gt(strlen(sh->gateways[0].secret), 11);
    cr_assert_eq(sh->n_apps, 1);
    cr_assert_str_eq(sh->apps[0].push_url, "http://127.0.0.1:9100/push");
    cr_assert_eq(sh->n_facilities, 1);
    cr_assert_eq(sh->n_equipment, 2);
    cr_assert_eq(sh->n_devices, 2);
    cr_assert_str_neq(sh->devices[0].gateway, sh->devices[1].gateway);
    cr_assert_geq(sh->n_datapoints, 10);
    cr_assert_eq(sh->n_grants, 1);
    cr_assert(sh->grants[0].is_prefix);
    cr_assert_eq(sh->grants[0].access, SR_GRANT_BOTH);
    int types[4] = {0}, kinds[3] = {0};
    for (size_t i = 0; i < sh->n_datapoints; i++) {
        types[sh->datapoints[i].type]++;
        kinds[sh->datapoints[i].kind]++;
        cr_assert(sr_sheet_grant_matches(sh->grants[0].datapoint, sh->datapoints[i].id));
        cr_assert_gt(sh->datapoints[i].line, 0);
    }
    for (int i = 0; i < 4; i++) cr_assert_gt(types[i], 0, "type %s unused", sr_dp_type_name((sr_dp_type)i));
    cr_assert_gt(kinds[SR_DP_MEASURE], 0);
    cr_assert_gt(kinds[SR_DP_CONTROL], 0);
    sr_sheet_free(sh);
    free(p);
}

static void round_trip(const void *p, size_t n)
{
    sr_sheet *a = NULL, *b = NULL, *c = NULL;
    sr_buf w1, w2;
    sr_buf_init(&w1);
    sr_buf_init(&w2);
    int rc = sr_sheet_parse(p, n, NULL, &a);
    dump_errors(a);
    cr_assert_eq(rc, SR_OK);
    cr_assert_eq(sr_sheet_write(a, &w1), SR_OK);
    rc = sr_sheet_parse(w1.data, w1.len, NULL, &b);
    dump_errors(b);
    cr_assert_eq(rc, SR_OK, "%.*s", (int)w1.len, (char *)w1.data);
    cr_assert(sr_sheet_equal(a, b), "parse(write(x)) != x");
    cr_assert_eq(sr_sheet_write(b, &w2), SR_OK);
    cr_assert_eq(w1.len, w2.len);
    cr_assert(!memcmp(w1.data, w2.data, w1.len), "re-export is not byte-identical");
    cr_assert_eq(sr_sheet_parse(w2.data, w2.len, NULL, &c), SR_OK);
    cr_assert(sr_sheet_equal(b, c));
    for (size_t i = 0; i < b->n_gateways; i++) cr_assert_str_eq(b->gateways[i].secret, "");
    for (size_t i = 0; i < b->n_apps; i++) cr_assert_str_eq(b->apps[i].secret, "");
    sr_sheet_free(a);
    sr_sheet_free(b);
    sr_sheet_free(c);
    sr_buf_release(&w1);
    sr_buf_release(&w2);
}

Test(codecs_sheet, demo_round_trips_and_reexport_is_byte_identical)
{
    size_t n;
    uint8_t *p = read_demo(&n);
    round_trip(p, n);
    free(p);
}

Test(codecs_sheet, canonical_form_is_sorted_quoted_and_secret_free)
{
    static const char in[] =
        "\xEF\xBB\xBF#suiro-setup-sheet v1,,,\r\n"
        "[OPERATOR],,\r\n"
        "name,ID\r\n"
        "\"Op, \"\"quoted\"\"\",op1\r\n"
        "[gateways]\r\n"
        "secret,id\r\n"
        "a-long-secret-1,GWB\r\n"
        ",GWA\r\n"
        "[apps]\r\nid,push_url\r\nA1,https://x.example/p?a=1\r\n"
        "[facilities]\r\nid,name\r\nF1,\"two\nlines? no: names are one line\"\r\n";
    sr_sheet *sh = NULL;
    int rc = parse_str(in, &sh);
    dump_errors(sh);
    cr_assert_eq(rc, SR_EINVAL); /* the facility name has a line break */
    EXPECT_ERROR(sh, 14, "name", "control character");
    sr_sheet_free(sh);

    static const char ok[] =
        "#suiro-setup-sheet v1\n"
        "[operator]\nname,id\n\"Op, \"\"quoted\"\"\",op1\n"
        "[gateways]\nsecret,id\na-long-secret-1,GWB\n,GWA\n"
        "[apps]\nid,push_url\nA1,https://x.example/p?a=1\n"
        "[facilities]\nid,name\nF1,  padded  \n"
        "[equipment]\nid,facility\nE1,F1\n"
        "[devices]\nid,equipment,gateway\nD2,E1,GWB\nD1,E1,GWA\n"
        "[datapoints]\nid,device,type,min,max,unit,kind\n"
        "X9,D1,Number,-0.5,1e3,m3/h,BOTH\nX1,D2,integer,-10,10,,\nX5,D2,string,,,,control\n"
        "[grants]\napp,datapoint,access\nA1,X*,read\nA1,X1,control\n"
        "[storegrants]\napp,kind,target,access\nA1,files,reports/,write\nA1,Documents,c1,\n";
    sh = NULL;
    rc = parse_str(ok, &sh);
    dump_errors(sh);
    cr_assert_eq(rc, SR_OK);
    cr_assert_str_eq(sh->gateways[0].id, "GWA");
    cr_assert_str_eq(sh->gateways[0].secret, "");
    cr_assert_str_eq(sh->gateways[1].secret, "a-long-secret-1");
    cr_assert_eq(sh->gateways[1].line, 7);
    cr_assert_str_eq(sh->facilities[0].name, "padded");
    cr_assert_str_eq(sh->datapoints[0].id, "X1");
    cr_assert_eq(sh->datapoints[2].kind, SR_DP_BOTH);
    cr_assert_eq(sh->datapoints[2].min, -0.5);
    cr_assert_eq(sh->datapoints[2].max, 1000);
    sr_buf w;
    sr_buf_init(&w);
    cr_assert_eq(sr_sheet_write(sh, &w), SR_OK);
    cr_assert_eq(sr_buf_append(&w, "", 1), SR_OK);
    static const char want[] =
        "#suiro-setup-sheet v1\n\n"
        "[operator]\nid,name\nop1,\"Op, \"\"quoted\"\"\"\n\n"
        "[gateways]\nid,name,secret\nGWA,,\nGWB,,\n\n"
        "[apps]\nid,name,secret,push_url\nA1,,,https://x.example/p?a=1\n\n"
        "[facilities]\nid,name\nF1,padded\n\n"
        "[equipment]\nid,facility,name\nE1,F1,\n\n"
        "[devices]\nid,equipment,gateway,name\nD1,E1,GWA,\nD2,E1,GWB,\n\n"
        "[datapoints]\nid,device,name,type,unit,min,max,kind\n"
        "X1,D2,,integer,,-10,10,measure\nX5,D2,,string,,,,control\nX9,D1,,number,m3/h,-0.5,1000,both\n\n"
        "[grants]\napp,datapoint,access\nA1,X*,read\nA1,X1,control\n\n"
        "[storegrants]\napp,kind,target,access\nA1,documents,c1,read\nA1,files,reports/,write\n\n";
    cr_assert_str_eq((char *)w.data, want);
    sr_buf_release(&w);
    round_trip(ok, sizeof ok - 1);
    sr_sheet_free(sh);
}

Test(codecs_sheet, numbers_round_trip_exactly)
{
    static const char *const nums[] = {"0.1", "-0", "1e-7", "123456789.125", "1e300", "2.5e-300",
                                       "0.30000000000000004", "9007199254740993", "-1.5E+3"};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        char doc[512];
        snprintf(doc, sizeof doc,
                 "#suiro-setup-sheet v1\n[operator]\nid\no\n[gateways]\nid\nG\n[facilities]\nid\nF\n"
                 "[equipment]\nid,facility\nE,F\n[devices]\nid,equipment,gateway\nD,E,G\n"
                 "[datapoints]\nid,device,type,min\nP,D,number,%s\n",
                 nums[i]);
        round_trip(doc, strlen(doc));
    }
}

Test(codecs_sheet, hand_built_unsorted_sheet_is_written_sorted)
{
    sr_sheet_operator op = {0, "o", NULL};
    sr_sheet_gateway gw[2] = {{0, "G2", "two", "some-secret-value"}, {0, "G1", NULL, NULL}};
    sr_sheet sh = {.operators = &op, .n_operators = 1, .gateways = gw, .n_gateways = 2};
    sr_buf w;
    sr_buf_init(&w);
    cr_assert_eq(sr_sheet_write(&sh, &w), SR_OK);
    cr_assert_eq(sr_buf_append(&w, "", 1), SR_OK);
    cr_assert(strstr((char *)w.data, "[gateways]\nid,name,secret\nG1,,\nG2,two,\n"), "%s", (char *)w.data);
    cr_assert_null(strstr((char *)w.data, "some-secret"));
    sr_buf_release(&w);
    sr_sheet_datapoint dp = {0, "P", "D", "", "", "", SR_DP_NUMBER, SR_DP_MEASURE, 1, 0, 1.0 / 0.0, 0};
    sh.datapoints = &dp;
    sh.n_datapoints = 1;
    sr_buf_init(&w);
    cr_assert_eq(sr_sheet_write(&sh, &w), SR_EINVAL);
    cr_assert_eq(w.len, 0);
    sr_buf_release(&w);
}

/* ---- validation: each rule, with line and column ------------------------ */

static const char bad_sheet[] =
    "#suiro-setup-sheet v1\n"                        /*  1 */
    "# every row below has something wrong\n"        /*  2 */
    "[operator]\n"                                   /*  3 */
    "id,name\n"                                      /*  4 */
    "demo,Demo\n"                                    /*  5 */
    "demo2,Second\n"                                 /*  6 */
    "[gateways]\n"                                   /*  7 */
    "id,name,secret\n"                               /*  8 */
    "GW1,ok,short\n"                                 /*  9 */
    "GW 2,bad id,\n"                                 /* 10 */
    "GW1,dup,\n"                                     /* 11 */
    "[apps]\n"                                       /* 12 */
    "id,secret,push_url\n"                           /* 13 */
    "AP1,,ftp://x\n"                                 /* 14 */
    "AP2,,https://\n"                                /* 15 */
    "[facilities]\n"                                 /* 16 */
    "id,name\n"                                      /* 17 */
    "F1,Plant\n"                                     /* 18 */
    "[equipment]\n"                                  /* 19 */
    "id,facility\n"                                  /* 20 */
    "E1,NOFAC\n"                                     /* 21 */
    "E2,\n"                                          /* 22 */
    "[devices]\n"                                    /* 23 */
    "id,equipment,gateway\n"                         /* 24 */
    "D1,E1,GW9\n"                                    /* 25 */
    "[datapoints]\n"                                 /* 26 */
    "id,device,type,min,max,kind\n"                  /* 27 */
    "P1,D1,number,5,1,measure\n"                     /* 28 */
    "P2,D1,integer,1.5,x,sometimes\n"                /* 29 */
    "P3,D9,boolean,0,,\n"                            /* 30 */
    "P4,D1,float,,,\n"                               /* 31 */
    "P5,D1,number,1e999,,\n"                         /* 32 */
    "[grants]\n"                                     /* 33 */
    "app,datapoint,access\n"                         /* 34 */
    "AP1,Q*,read\n"                                  /* 35 */
    "AP1,P1,write\n"                                 /* 36 */
    "AP1,P1,\n"                                      /* 37 */
    "AP3,P9,\n"                                      /* 38 */
    "AP1,P-*x*,\n"                                   /* 39 */
    "AP1,P1,read,extra\n"                            /* 40 */
    "[bogus]\n"                                      /* 41 */
    "a,b\n"                                          /* 42 */
    "[devices],x\n"                                  /* 43 */
    "id,colour,equipment\n"                          /* 44 */
    "D7,red,E1\n";                                   /* 45 */

Test(codecs_sheet, every_bad_row_is_reported_at_once_with_line_and_column)
{
    sr_sheet *sh = NULL;
    int rc = parse_str(bad_sheet, &sh);
    cr_assert_eq(rc, SR_EINVAL);
    cr_assert_not_null(sh);
    EXPECT_ERROR(sh, 6, "id", "only one operator row");
    EXPECT_ERROR(sh, 9, "secret", "secret too short");
    EXPECT_ERROR(sh, 10, "id", "invalid id \"GW 2\"");
    EXPECT_ERROR(sh, 11, "id", "duplicate gateway id \"GW1\" (first on line 9)");
    EXPECT_ERROR(sh, 14, "push_url", "not an http:// or https:// URL");
    EXPECT_ERROR(sh, 15, "push_url", "has no host");
    EXPECT_ERROR(sh, 21, "facility", "unknown facility \"NOFAC\"");
    EXPECT_ERROR(sh, 22, "facility", "required value is empty");
    EXPECT_ERROR(sh, 25, "gateway", "unknown gateway \"GW9\"");
    EXPECT_ERROR(sh, 28, "min", "min (5) is greater than max (1)");
    EXPECT_ERROR(sh, 29, "min", "whole-number");
    EXPECT_ERROR(sh, 29, "max", "not a decimal number");
    EXPECT_ERROR(sh, 29, "kind", "\"sometimes\" is not one of: measure, control, both");
    EXPECT_ERROR(sh, 30, "min", "only allowed for number and integer");
    EXPECT_ERROR(sh, 31, "type", "\"float\" is not one of");
    EXPECT_ERROR(sh, 32, "min", "out of range");
    EXPECT_ERROR(sh, 35, "datapoint", "pattern \"Q*\" matches no data point");
    EXPECT_ERROR(sh, 36, "access", "\"write\" is not one of: read, control, both");
    EXPECT_ERROR(sh, 37, "datapoint", "duplicate grant of \"P1\" to app \"AP1\" (first on line 36)");
    EXPECT_ERROR(sh, 38, "app", "unknown app \"AP3\"");
    EXPECT_ERROR(sh, 38, "datapoint", "unknown data point \"P9\"");
    EXPECT_ERROR(sh, 39, "datapoint", "invalid pattern");
    EXPECT_ERROR(sh, 40, "", "column 4, which has no header");
    EXPECT_ERROR(sh, 40, "datapoint", "duplicate grant of \"P1\" to app \"AP1\" (first on line 37)");
    EXPECT_ERROR(sh, 41, "", "unknown section [bogus]");
    EXPECT_ERROR(sh, 43, "", "text after the section name");
    EXPECT_ERROR(sh, 44, "colour", "unknown column in [devices]");
    EXPECT_ERROR(sh, 44, "gateway", "required column missing");
    /* P3's device D9 is not reported: the second [devices] section has a bad
     * header, so device references cannot be judged. The bogus section's rows and the broken [devices] section's rows are
     * skipped, not reported one by one; nothing else is reported */
    for (size_t i = 0; i < sh->n_errors; i++) {
        cr_assert_neq(sh->errors[i].line, 42);
        cr_assert_neq(sh->errors[i].line, 45);
        if (i) cr_assert_leq(sh->errors[i - 1].line, sh->errors[i].line, "errors sorted by line");
    }
    cr_assert_eq(sh->n_errors, 28, "%zu errors", sh->n_errors);
    sr_sheet_free(sh);
}

Test(codecs_sheet, broken_header_does_not_cascade_into_reference_errors)
{
    static const char s[] = "#suiro-setup-sheet v1\n[operator]\nid\no\n"
                            "[gateways]\nname\nx\n" /* no id column: section skipped */
                            "[facilities]\nid\nF\n[equipment]\nid,facility\nE,F\n"
                            "[devices]\nid,equipment,gateway\nD,E,GW1\n";
    sr_sheet *sh = NULL;
    cr_assert_eq(parse_str(s, &sh), SR_EINVAL);
    EXPECT_ERROR(sh, 6, "id", "required column missing");
    cr_assert_eq(sh->n_errors, 1);
    sr_sheet_free(sh);
}

Test(codecs_sheet, structure_errors)
{
    struct {
        const char *doc;
        int rc;
        size_t line;
        const char *msg;
    } cases[] = {
        {"", SR_ECODEC, 1, "empty input"},
        {"id,name\n", SR_ECODEC, 1, "not a suiro set-up sheet"},
        {"#suiro-setup-sheet v2\n[operator]\nid\no\n", SR_EVERSION, 1, "unsupported sheet version \"v2\""},
        {"#suiro-setup-sheet v1\n", SR_EINVAL, 0, "exactly one [operator] row; found none"},
        {"#suiro-setup-sheet v1\nid,name\n[operator]\nid\no\n", SR_EINVAL, 2, "row before the first [section]"},
        {"#suiro-setup-sheet v1\n[operator]\n[gateways]\nid\n[operator]\nid\no\n", SR_EINVAL, 2,
         "section [operator] has no header row"},
        {"#suiro-setup-sheet v1\n[operator\nid\no\n", SR_EINVAL, 2, "malformed section line"},
        {"#suiro-setup-sheet v1\n[operator]\nid,ID\no\n", SR_EINVAL, 3, "column appears twice"},
        {"#suiro-setup-sheet v1\n[operator]\nid\no\n\"bad\"x\n", SR_ECODEC, 5, "CSV: unexpected character"},
        {"#suiro-setup-sheet v1\n[operator]\nid\n\"o\n", SR_ECODEC, 4, "CSV: unterminated quoted field"},
        {"#suiro-setup-sheet v1\n[operator]\nid,name\no,\xC3\x28\n", SR_ECODEC, 4, "CSV: invalid UTF-8"},
        {"\"#suiro-setup-sheet v1\",,\n[operator]\nid,name\no,\"a\tb\"\n", SR_EINVAL, 4, "control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_sheet *sh = NULL;
        int rc = parse_str(cases[i].doc, &sh);
        dump_errors(sh);
        cr_assert_eq(rc, cases[i].rc, "case %zu: rc %d", i, rc);
        cr_assert_not_null(sh, "case %zu", i);
        int found = 0;
        for (size_t j = 0; j < sh->n_errors; j++)
            if (sh->errors[j].line == cases[i].line && strstr(sh->errors[j].msg, cases[i].msg)) found = 1;
        cr_assert(found, "case %zu: no \"%s\" at line %zu", i, cases[i].msg, cases[i].line);
        sr_sheet_free(sh);
    }
}

Test(codecs_sheet, csv_errors_do_not_hide_validation_errors)
{
    static const char s[] = "#suiro-setup-sheet v1\n[operator]\nid\no\n[gateways]\nid,secret\n"
                            "G\xFF,\n"      /* 7: invalid UTF-8 */
                            "G2,short\n"    /* 8: secret too short */
                            "G3,\"x\"y\n";  /* 9: bad quoting */
    sr_sheet *sh = NULL;
    cr_assert_eq(parse_str(s, &sh), SR_ECODEC);
    EXPECT_ERROR(sh, 7, "", "invalid UTF-8");
    EXPECT_ERROR(sh, 8, "secret", "too short");
    EXPECT_ERROR(sh, 9, "", "after a closing quote");
    sr_sheet_free(sh);
}

Test(codecs_sheet, error_list_is_bounded)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_buf_append(&b, "#suiro-setup-sheet v1\n[operator]\nid\no\n[gateways]\nid\n", 52), SR_OK);
    for (int i = 0; i < 50; i++) cr_assert_eq(sr_buf_append(&b, "bad id\n", 7), SR_OK);
    sr_sheet_opts o = {.max_errors = 10};
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(b.data, b.len, &o, &sh), SR_EINVAL);
    cr_assert_eq(sh->n_errors, 10);
    cr_assert(sh->errors_truncated);
    sr_sheet_free(sh);
    o.max_bytes = 10;
    sh = (sr_sheet *)1;
    cr_assert_eq(sr_sheet_parse(b.data, b.len, &o, &sh), SR_ETOOBIG);
    cr_assert_null(sh);
    sr_buf_release(&b);
    cr_assert_eq(sr_sheet_parse(NULL, 3, NULL, &sh), SR_EINVAL);
    cr_assert_eq(sr_sheet_parse("x", 1, NULL, NULL), SR_EINVAL);
}

Test(codecs_sheet, ids_and_patterns)
{
    char xs[66];
    memset(xs, 'x', 65);
    xs[65] = 0;
    static const struct {
        const char *id; /* NULL: len times 'x' */
        size_t len;
        int valid;
    } ids[] = {
        {"a.B_c-9", 7, 1}, {"", 0, 0}, {"a b", 3, 0}, {"水", 3, 0}, {NULL, 64, 1}, {NULL, 65, 0},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        cr_expect_eq(!!sr_id_ok(ids[i].id ? ids[i].id : xs, ids[i].len), ids[i].valid, "id %zu '%s' (%zu)", i,
                     ids[i].id ? ids[i].id : "x...", ids[i].len);
    static const struct {
        const char *pattern, *id;
        int match;
    } grants[] = {
        {"P0*", "P001", 1}, {"*", "anything", 1}, {"P0*", "P100", 0}, {"P001", "P001", 1}, {"P001", "P0011", 0},
    };
    for (size_t i = 0; i < sizeof grants / sizeof grants[0]; i++)
        cr_expect_eq(!!sr_sheet_grant_matches(grants[i].pattern, grants[i].id), grants[i].match, "grant %s for %s",
                     grants[i].pattern, grants[i].id);
    cr_assert_str_eq(sr_dp_type_name(SR_DP_BOOLEAN), "boolean");
    cr_assert_str_eq(sr_dp_kind_name((sr_dp_kind)7), "?");
}

/* ---- hostile input and allocation failure ------------------------------- */

Test(codecs_sheet, hostile_inputs_are_errors_not_crashes)
{
    size_t n = 1u << 20;
    char *big = malloc(n + 64);
    cr_assert(big);
    /* a huge field */
    strcpy(big, "#suiro-setup-sheet v1\n[operator]\nid,name\no,");
    size_t h = strlen(big);
    memset(big + h, 'n', n - h);
    sr_sheet *sh = NULL;
    cr_assert_eq(sr_sheet_parse(big, n, NULL, &sh), SR_ECODEC);
    EXPECT_ERROR(sh, 4, "", "field longer");
    sr_sheet_free(sh);
    /* NUL bytes everywhere */
    memset(big, 0, n);
    memcpy(big, "#suiro-setup-sheet v1\n", 22);
    cr_assert_eq(sr_sheet_parse(big, n, NULL, &sh), SR_ECODEC);
    EXPECT_ERROR(sh, 2, "", "NUL byte");
    sr_sheet_free(sh);
    /* an unterminated quote swallowing the rest */
    memset(big, '\n', n);
    memcpy(big, "#suiro-setup-sheet v1\n[operator]\nid\n\"", 37);
    cr_assert_eq(sr_sheet_parse(big, n, NULL, &sh), SR_ECODEC);
    EXPECT_ERROR(sh, 4, "", "unterminated");
    sr_sheet_free(sh);
    /* random bytes, and random edits of the demo sheet */
    size_t dn;
    uint8_t *demo = read_demo(&dn);
    tu_rng rng = {tu_seed(11)};
    for (int it = 0; it < tu_iters(400); it++) {
        size_t len;
        if (it % 2) {
            len = tu_below(&rng, 256);
            for (size_t i = 0; i < len; i++) big[i] = (char)tu_below(&rng, 256);
        } else {
            len = dn;
            memcpy(big, demo, dn);
            for (int e = 0; e < 4; e++) {
                static const char pick[] = ",\"\n#[]*x \xff";
                big[tu_below(&rng, dn)] = pick[tu_below(&rng, sizeof pick - 1)];
            }
        }
        sh = NULL;
        int rc = sr_sheet_parse(big, len, NULL, &sh);
        cr_assert(rc == SR_OK || rc == SR_EINVAL || rc == SR_ECODEC || rc == SR_EVERSION, "rc %d", rc);
        cr_assert_not_null(sh);
        cr_assert_eq(rc == SR_OK, sh->n_errors == 0);
        sr_sheet_free(sh);
    }
    free(demo);
    free(big);
}

Test(codecs_sheet, allocation_failure_is_enomem_and_leaks_nothing)
{
    size_t n;
    uint8_t *p = read_demo(&n);
    /* include errors too, so the error list is grown under faults */
    size_t bn = strlen(bad_sheet);
    fault_alloc_install();
    int done_demo = 0, done_bad = 0;
    for (unsigned long k = 1; k < 2000 && !(done_demo && done_bad); k++) {
        for (int which = 0; which < 2; which++) {
            if (which ? done_bad : done_demo) continue;
            fault_alloc_arm(k);
            sr_sheet *sh = NULL;
            int rc = which ? sr_sheet_parse(bad_sheet, bn, NULL, &sh) : sr_sheet_parse(p, n, NULL, &sh);
            int fired = fault_alloc_fired();
            if (rc == SR_ENOMEM) {
                cr_assert(fired);
                cr_assert_null(sh);
                continue;
            }
            cr_assert_eq(rc, which ? SR_EINVAL : SR_OK, "k=%lu rc=%d", k, rc);
            if (!which) { /* write under faults too */
                for (unsigned long j = 1; j < 64; j++) {
                    sr_buf w;
                    sr_buf_init(&w);
                    fault_alloc_arm(j);
                    int wrc = sr_sheet_write(sh, &w);
                    int wf = fault_alloc_fired();
                    cr_assert(wrc == SR_OK || (wrc == SR_ENOMEM && wf));
                    if (wrc) cr_assert_eq(w.len, 0);
                    sr_buf_release(&w);
                    if (!wf) break;
                }
            }
            sr_sheet_free(sh);
            if (!fired) *(which ? &done_bad : &done_demo) = 1;
        }
    }
    fault_alloc_arm(0);
    fault_alloc_uninstall();
    cr_assert(done_demo && done_bad, "never ran without a fault");
    free(p);
}

/* ---- which sections a sheet lists (the importer's removal rule) --------- */

Test(codecs_sheet, sections_records_the_listed_sections_even_when_empty)
{
    sr_sheet *sh = NULL;
    const char *s = "#suiro-setup-sheet v1\n[operator]\nid\nop1\n[Grants]\napp,datapoint\n\n[gateways]\nid\nGW1\n";
    cr_assert_eq(parse_str(s, &sh), SR_OK);
    cr_assert_eq(sh->sections, SR_SHEET_S_OPERATOR | SR_SHEET_S_GRANTS | SR_SHEET_S_GATEWAYS);
    cr_assert_eq(sh->n_grants, 0);
    sr_sheet_free(sh);
    size_t n;
    uint8_t *p = read_demo(&n);
    cr_assert_eq(sr_sheet_parse(p, n, NULL, &sh), SR_OK);
    /* [retention] is written only when the operator has periods of its own */
    cr_assert_eq(sh->sections, SR_SHEET_S_ALL & ~SR_SHEET_S_RETENTION, "the demo (and every export) lists every section");
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_sheet_write(sh, &out), SR_OK);
    sr_sheet *back = NULL;
    cr_assert_eq(sr_sheet_parse(out.data, out.len, NULL, &back), SR_OK);
    cr_assert_eq(back->sections, SR_SHEET_S_ALL & ~SR_SHEET_S_RETENTION);
    sr_sheet_free(back);
    sr_buf_release(&out);
    sr_sheet_free(sh);
    free(p);
}

/* [storegrants] (R-PO-2): grants on document collections and file path
 * prefixes; every bad row is reported with its column, and the app must
 * be in [apps]. */
Test(codecs_sheet, store_grants_are_checked_row_by_row)
{
    static const char bad[] = "#suiro-setup-sheet v1\n"
                              "[operator]\nid\nop1\n"
                              "[apps]\nid\nA1\n"
                              "[storegrants]\napp,kind,target,access\n"
                              "A1,folders,x,read\n"     /* line 10: kind */
                              "A1,files,../x,read\n"    /* line 11: target */
                              "A1,documents,a/b,read\n" /* line 12: target (a collection is an id) */
                              "A1,files,x,control\n"    /* line 13: access */
                              "A9,files,x,read\n"       /* line 14: unknown app */
                              "A1,files,y,read\n"
                              "A1,files,y,write\n"; /* line 16: duplicate */
    sr_sheet *sh = NULL;
    cr_assert_eq(parse_str(bad, &sh), SR_EINVAL);
    static const struct {
        size_t line;
        const char *col;
    } want[] = {{10, "kind"}, {11, "target"}, {12, "target"}, {13, "access"}, {14, "app"}, {16, "target"}};
    cr_assert_eq(sh->n_errors, sizeof want / sizeof *want);
    for (size_t i = 0; i < sh->n_errors; i++) {
        cr_assert_eq(sh->errors[i].line, want[i].line, "error %zu: line %zu (%s)", i, sh->errors[i].line,
                     sh->errors[i].msg);
        cr_assert_str_eq(sh->errors[i].column, want[i].col, "error %zu: %s", i, sh->errors[i].msg);
    }
    sr_sheet_free(sh);
}

/* issue #16 (docs/retention.md): a data point's retention class, an id and
 * not a reserved class; it round-trips, and the column is written only when
 * some data point has a class (older sheets re-export byte for byte). */
Test(codecs_sheet, a_data_points_retention_class_is_checked_and_round_trips)
{
    size_t n;
    uint8_t *p = tu_read_file(SR_TEST_DATA "/../fuzz/sheet/retention.csv", &n);
    cr_assert(p);
    sr_sheet *sh = NULL;
    cr_assert_neq(sr_sheet_parse(p, n, NULL, &sh), SR_OK, "P003, P004 and P005 are bad");
    EXPECT_ERROR(sh, 27, "retention_class", "not audit, message_ids, documents");
    EXPECT_ERROR(sh, 28, "retention_class", "an id");
    EXPECT_ERROR(sh, 29, "retention_class", "documents, files, requests nor monitors"); /* a record class (layout 9) */
    sr_sheet_free(sh);
    /* without the bad rows */
    char *q = strstr((char *)p, "P003");
    cr_assert(q);
    *q = 0;
    sh = NULL;
    cr_assert_eq(sr_sheet_parse(p, strlen((char *)p), NULL, &sh), SR_OK);
    cr_assert_eq(sh->n_datapoints, 2);
    const char *c1 = NULL, *c2 = NULL;
    for (size_t i = 0; i < sh->n_datapoints; i++) {
        if (!strcmp(sh->datapoints[i].id, "P001")) c1 = sh->datapoints[i].retention_class;
        if (!strcmp(sh->datapoints[i].id, "P002")) c2 = sh->datapoints[i].retention_class;
    }
    cr_assert_str_eq(c1, "short");
    cr_assert(!c2 || !c2[0]);
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_sheet_write(sh, &out), SR_OK);
    cr_assert(memmem(out.data, out.len, "kind,retention_class\n", 21), "the column is written");
    cr_assert(memmem(out.data, out.len, ",measure,short\n", 15));
    sr_sheet *back = NULL;
    cr_assert_eq(sr_sheet_parse(out.data, out.len, NULL, &back), SR_OK);
    cr_assert(sr_sheet_equal(sh, back), "parse(write(x)) == x");
    sr_sheet_free(back);
    sr_buf_release(&out);
    sr_sheet_free(sh);
    free(p);
    /* the demo sheet has no class: its export has no such column */
    uint8_t *d = read_demo(&n);
    sh = NULL;
    cr_assert_eq(sr_sheet_parse(d, n, NULL, &sh), SR_OK);
    sr_buf_init(&out);
    cr_assert_eq(sr_sheet_write(sh, &out), SR_OK);
    cr_assert(!memmem(out.data, out.len, "retention_class", 15));
    sr_buf_release(&out);
    sr_sheet_free(sh);
    free(d);
}

/* [retention] (issue #16): an operator's periods per class. Good rows parse
 * (any column order and case, the reserved record classes and audit
 * allowed), sorted by class; each bad row is reported with its line and
 * column; the section round-trips and is written only when it has rows. */
Test(codecs_sheet, retention_rows_parse_and_round_trip)
{
    sr_sheet *sh = NULL;
    const char *s = "#suiro-setup-sheet v1\n[operator]\nid\nop1\n"
                    "[retention]\nDays,Class\n"
                    "3650,audit\n30,default\n0,documents\n7,files\n90,requests\n14,monitors\n365, short \n";
    int rc = parse_str(s, &sh);
    dump_errors(sh);
    cr_assert_eq(rc, SR_OK);
    cr_assert(sh->sections & SR_SHEET_S_RETENTION);
    cr_assert_eq(sh->n_retention, 7);
    static const char *const cls[] = {"audit", "default", "documents", "files", "monitors", "requests", "short"};
    static const unsigned days[] = {3650, 30, 0, 7, 14, 90, 365};
    for (size_t i = 0; i < 7; i++) {
        cr_assert_str_eq(sh->retention[i].cls, cls[i]);
        cr_assert_eq(sh->retention[i].days, days[i], "%s", cls[i]);
    }
    cr_assert_eq(sh->retention[0].line, 7);
    sr_buf out;
    sr_buf_init(&out);
    cr_assert_eq(sr_sheet_write(sh, &out), SR_OK);
    const char *want = "[retention]\nclass,days\naudit,3650\ndefault,30\n";
    cr_assert(memmem(out.data, out.len, want, strlen(want)), "%.*s", (int)out.len, (const char *)out.data);
    sr_sheet *back = NULL;
    cr_assert_eq(sr_sheet_parse(out.data, out.len, NULL, &back), SR_OK);
    cr_assert(sr_sheet_equal(sh, back));
    back->retention[1].days = 31;
    cr_assert(!sr_sheet_equal(sh, back), "the days are compared");
    sr_sheet_free(back);
    sr_sheet_free(sh);
    /* none: no section written */
    cr_assert_eq(parse_str("#suiro-setup-sheet v1\n[operator]\nid\nop1\n[retention]\nclass,days\n", &sh), SR_OK);
    cr_assert(sh->sections & SR_SHEET_S_RETENTION, "an empty listed section is recorded (it removes)");
    out.len = 0;
    cr_assert_eq(sr_sheet_write(sh, &out), SR_OK);
    cr_assert(!memmem(out.data, out.len, "[retention]", 11));
    sr_buf_release(&out);
    sr_sheet_free(sh);
}

Test(codecs_sheet, retention_bad_rows_are_named)
{
    sr_sheet *sh = NULL;
    const char *s = "#suiro-setup-sheet v1\n[operator]\nid\nop1\n"   /* lines 1-4 */
                    "[retention]\nclass,days\n"                        /* 5-6 */
                    "message_ids,30\n"                                  /* 7 */
                    "a b,30\n"                                          /* 8 */
                    "default,36501\n"                                   /* 9 */
                    "files,-1\n"                                        /* 10 */
                    "requests,1.5\n"                                    /* 11 */
                    "monitors,99999999999999999999\n"                   /* 12 */
                    "audit,\n"                                          /* 13 */
                    ",30\n"                                             /* 14 */
                    "audit,400\n"                                       /* 15 */
                    "audit,500\n"                                       /* 16 */
                    "[retention]\nclass\n"                             /* 17-18 */
                    "x\n";
    cr_assert_eq(parse_str(s, &sh), SR_EINVAL);
    EXPECT_ERROR(sh, 7, "class", "message_ids is not an operator's class");
    EXPECT_ERROR(sh, 8, "class", "invalid class \"a b\"");
    EXPECT_ERROR(sh, 9, "days", "\"36501\" is not a whole number of days from 0 (for ever) to 36500");
    EXPECT_ERROR(sh, 10, "days", "\"-1\" is not a whole number");
    EXPECT_ERROR(sh, 11, "days", "\"1.5\" is not a whole number");
    EXPECT_ERROR(sh, 12, "days", "is not a whole number");
    EXPECT_ERROR(sh, 13, "days", "required value is empty");
    EXPECT_ERROR(sh, 14, "class", "required value is empty");
    EXPECT_ERROR(sh, 16, "class", "duplicate retention class \"audit\" (first on line 15)");
    EXPECT_ERROR(sh, 18, "days", "required column missing from the header of [retention]");
    cr_assert_eq(sh->n_errors, 10, "one error per bad row, none for line 15 or the skipped section's row");
    sr_sheet_free(sh);
}
