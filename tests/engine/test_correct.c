/* tests/engine/test_correct.c -- engine/correct.c and the Correction event
 * (R-PO-1, docs/csv.md): the import's parser and validator (every bad row
 * with its line, nothing built), the writer's checks, the apply (queries
 * answer the corrected value, the original stays in the log), the audit
 * row, and the replay giving the same index. */
#include "engsuite.h"

#include "codecs/rfc3339.h"

static char *dir;
static const sr_vtype TYPES[] = {SR_VT_NUMBER, SR_VT_INTEGER, SR_VT_BOOL, SR_VT_STRING};
static const sr_engine_opts OPTS = {0};

/* P000 number, P001 integer, P002 bool, P003 string; originals at 1, 2, 3 s */
static sr_engine *setup(void)
{
    sr_engine *e = es_open(&dir, "correct", &OPTS);
    cr_assert_eq(et_setup_masters(e, "op1", 4, TYPES, 4), 0);
    for (int k = 0; k < 4; k++) {
        uint32_t pt;
        char id[8];
        snprintf(id, sizeof id, "P%03d", k);
        cr_assert_eq(sr_engine_point(e, "op1", id, &pt, NULL), SR_OK);
        sr_sample s[3];
        for (int i = 0; i < 3; i++) {
            memset(&s[i], 0, sizeof s[i]);
            s[i].ts = 1000 * (i + 1);
            if (k == 0) s[i].v.f = 1.5 + i;
            if (k == 1) s[i].v.i = 10 + i;
            if (k == 2) s[i].v.b = 0;
            if (k == 3) s[i].v.str.s = "orig", s[i].v.str.slen = 4;
        }
        sr_result r;
        cr_assert_eq(et_put(e, "op1", k % 2 ? "GW2" : "GW1", pt, TYPES[k], s, 3, NULL, &r), SR_OK);
    }
    return e;
}

static sr_sample value_at(sr_engine *e, const char *id, int64_t ts, sr_buf *strings)
{
    uint32_t pt;
    cr_assert_eq(sr_engine_point(e, "op1", id, &pt, NULL), SR_OK);
    sr_buf s;
    sr_buf_init(&s);
    sr_range_q q = {pt, ts, ts + 1, 0, 0, INT64_MIN};
    int more;
    cr_assert_eq(sr_engine_range(e, &q, &s, strings, &more), SR_OK);
    cr_assert_eq(s.len, sizeof(sr_sample), "%s has one value at %lld", id, (long long)ts);
    sr_sample v = *(sr_sample *)s.data;
    sr_buf_release(&s);
    return v;
}

static const sr_cmd_env ALICE = {"op1", "alice", SR_ACTOR_USER, NULL, "127.0.0.1"};

static int import(sr_engine *e, const char *csv, const char *reason, sr_corr_report *rep, sr_result *r)
{
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_corrections(e, &ALICE, csv, strlen(csv), reason, NULL, NULL, rep, &b);
    if (rc) {
        cr_assert_eq(b.len, 0, "a refused import builds nothing");
        sr_buf_release(&b);
        return rc;
    }
    return es_submit1(e, rc, &b, r);
}

Test(correct, an_import_corrects_values_of_every_type_and_keeps_the_originals_in_the_log)
{
    sr_engine *e = setup();
    sr_corr_report rep;
    sr_result r;
    const char *csv = "\xEF\xBB\xBF"
                      "dataId,timestamp,value,quality\r\n"
                      "P000,1970-01-01T00:00:02.000Z,68.29,GOOD\r\n"
                      "P001,1970-01-01T00:00:02Z,-7,\r\n"
                      "\r\n"
                      "P002,1970-01-01T09:00:02+09:00,true,UNCERTAIN\r\n"
                      "P003,1970-01-01T00:00:02.000Z,\"fixed, \"\"by hand\"\"\",BAD\r\n"
                      "P000,1970-01-01T00:00:04.000Z,0.1,GOOD\r\n";
    cr_assert_eq(import(e, csv, "meter recalibrated", &rep, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(rep.rows, 5);
    cr_assert_eq(rep.points, 4);
    cr_assert_eq(strncmp(rep.import_id, "csv-", 4), 0);
    uint64_t seq = r.seq;
    sr_buf str;
    sr_buf_init(&str);
    cr_assert_eq(value_at(e, "P000", 2000, NULL).v.f, 68.29);
    cr_assert_eq(value_at(e, "P000", 1000, NULL).v.f, 1.5, "a row not in the CSV keeps its value");
    cr_assert_eq(value_at(e, "P000", 4000, NULL).v.f, 0.1, "a value where there was none");
    cr_assert_eq(value_at(e, "P001", 2000, NULL).v.i, -7);
    sr_sample b = value_at(e, "P002", 2000, NULL);
    cr_assert(b.v.b == 1 && b.quality == SR_Q_UNCERTAIN);
    sr_sample s = value_at(e, "P003", 2000, &str);
    cr_assert(s.quality == SR_Q_BAD && s.v.str.slen == 16 && !memcmp(s.v.str.s, "fixed, \"by hand\"", 16));
    /* the audit row: who, why */
    sr_audit_query aq = {.op = "op1", .kind = "correction", .limit = 10};
    sr_rec rec = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &aq, &rec, &more), SR_OK);
    sr_audit_rec ar;
    cr_assert_eq(sr_rec_next_audit(&rec, &ar), 1, "the correction is in the audit trail");
    cr_assert_eq(ar.seq, seq);
    cr_assert_str_eq(ar.actor, "alice");
    cr_assert_str_eq(ar.action, "import");
    cr_assert(strstr(ar.detail, "reason: meter recalibrated") && strstr(ar.detail, "5 value(s) of 4"), "%s", ar.detail);
    char tgt[40];
    snprintf(tgt, sizeof tgt, "import:%s", rep.import_id);
    cr_assert_str_eq(ar.target, tgt);
    sr_rec_close(&rec);
    /* a reopen answers the same */
    cr_assert_eq(sr_engine_close(e), SR_OK);
    e = es_open(&dir, NULL, &OPTS);
    cr_assert_eq(value_at(e, "P000", 2000, NULL).v.f, 68.29, "after a reopen");
    /* the index is a function of the log: the replay gives the same */
    e = es_rebuilt(e, &dir, &OPTS);
    cr_assert_eq(value_at(e, "P000", 2000, NULL).v.f, 68.29, "after the rebuild");
    sr_buf_release(&str);
    es_finish(e, &dir);
}

Test(correct, every_bad_row_is_reported_with_its_line_and_nothing_is_built)
{
    sr_engine *e = setup();
    uint64_t w0 = 0;
    sr_corr_report rep;
    sr_result r;
    const char *csv = "dataId,timestamp,value,quality\n"                /* 1 */
                      "P000,1970-01-01T00:00:02.000Z,1.25,GOOD\n"       /* 2 good */
                      "NOPE,1970-01-01T00:00:02.000Z,1,GOOD\n"          /* 3 unknown point */
                      "P000,yesterday,1,GOOD\n"                         /* 4 timestamp */
                      "P000,1970-01-01T00:00:03.000Z,1,2,3\n"           /* 5 fields */
                      "P001,1970-01-01T00:00:02.000Z,1.5,GOOD\n"        /* 6 not an integer */
                      "P000,1970-01-01T00:00:02.000Z,0x10,GOOD\n"       /* 7 not a number */
                      "P000,1970-01-01T00:00:05.000Z,2,FINE\n"          /* 8 quality */
                      "P002,1970-01-01T00:00:02.000Z,yes,GOOD\n"        /* 9 not a bool */
                      "P000,1970-01-01T00:00:03.000Z,5e9,GOOD\n"        /* 10 above the max */
                      "P000,1970-01-01T00:00:02.000Z,1.5,GOOD\n"        /* 11 same as line 2 */
                      "P000,1970-01-01T00:00:06.000Z,nan,GOOD\n";       /* 12 not finite */
    cr_assert_eq(import(e, csv, "why", &rep, &r), SR_EINVAL);
    static const size_t lines[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    cr_assert_eq(rep.nbad, 10, "%zu bad rows", rep.nbad);
    cr_assert_eq(rep.nerr, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(rep.err[i].line, lines[i], "error %zu is line %zu (%s), not %zu", i, rep.err[i].line, rep.err[i].msg,
                     lines[i]);
    cr_assert(strstr(rep.err[0].msg, "NOPE"), "%s", rep.err[0].msg);
    cr_assert(strstr(rep.err[8].msg, "line 2"), "the duplicate names the first: %s", rep.err[8].msg);
    cr_assert(strstr(rep.msg, "10 bad row(s)"), "%s", rep.msg);
    cr_assert_eq(value_at(e, "P000", 2000, NULL).v.f, 2.5, "nothing stored");
    (void)w0;
    /* more bad rows than are listed: all counted */
    sr_buf big;
    sr_buf_init(&big);
    cr_assert_eq(sr_buf_append(&big, "dataId,timestamp,value\n", 23), SR_OK);
    for (int i = 0; i < 250; i++) cr_assert_eq(sr_buf_append(&big, "P000,bad,1\n", 11), SR_OK);
    cr_assert_eq(sr_buf_append(&big, "", 1), SR_OK);
    cr_assert_eq(import(e, (const char *)big.data, "why", &rep, &r), SR_EINVAL);
    cr_assert_eq(rep.nbad, 250);
    cr_assert_eq(rep.nerr, SR_CORR_ERRORS_MAX);
    cr_assert_eq(rep.err[SR_CORR_ERRORS_MAX - 1].line, SR_CORR_ERRORS_MAX + 1);
    sr_buf_release(&big);
    es_finish(e, &dir);
}

Test(correct, the_whole_input_is_refused_for_a_bad_header_reason_or_no_rows)
{
    sr_engine *e = setup();
    sr_corr_report rep;
    sr_result r;
    static const struct {
        const char *csv, *reason, *field, *says;
    } cases[] = {
        {"id,ts,value\nP000,1970-01-01T00:00:02Z,1\n", "why", "csv", "header"},
        {"", "why", "csv", "no header"},
        {"dataId,timestamp,value\n", "why", "csv", "no rows"},
        {"dataId,timestamp,value\nP000,1970-01-01T00:00:02Z,1\n", "", "reason", "reason"},
        {"dataId,timestamp,value\nP000,1970-01-01T00:00:02Z,1\n", "a\nb", "reason", "control"},
        {"dataId,timestamp,value,quality\n\"P000,x\n", "why", "csv", "bad row"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = import(e, cases[i].csv, cases[i].reason, &rep, &r);
        cr_assert_neq(rc, SR_OK, "case %zu", i);
        cr_assert_str_eq(rep.field, cases[i].field, "case %zu: %s", i, rep.msg);
        cr_assert(strstr(rep.msg, cases[i].says), "case %zu: %s", i, rep.msg);
    }
    es_finish(e, &dir);
}

static int only_p001(void *ctx, const char *id)
{
    (void)ctx;
    return !strcmp(id, "P001");
}

Test(correct, a_filter_refuses_points_the_caller_may_not_correct)
{
    sr_engine *e = setup();
    sr_corr_report rep;
    sr_buf b;
    sr_buf_init(&b);
    const char *csv = "dataId,timestamp,value\nP001,1970-01-01T00:00:02Z,5\nP000,1970-01-01T00:00:02Z,1\n";
    cr_assert_eq(sr_cmd_corrections(e, &ALICE, csv, strlen(csv), "why", only_p001, NULL, &rep, &b), SR_EINVAL);
    cr_assert_eq(rep.nbad, 1);
    cr_assert_eq(rep.err[0].line, 3);
    cr_assert_eq(b.len, 0);
    sr_buf_release(&b);
    es_finish(e, &dir);
}

Test(correct, the_writer_refuses_a_correction_of_a_gateway_without_reason_or_of_another_operator)
{
    sr_engine *e = setup();
    uint32_t pt;
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &pt, NULL), SR_OK);
    sr_sample s = {.ts = 2000, .v.f = 9.5};
    sr_pv_in pv = {pt, SR_VT_NUMBER, &s, 1};
    static const struct {
        sr_cmd_env env;
        const char *reason, *says;
    } cases[] = {
        {{"op1", "GW1", SR_ACTOR_GATEWAY, NULL, NULL}, "why", "only a user or an app"},
        {{"op1", "alice", SR_ACTOR_USER, NULL, NULL}, "", "reason"},
        {{"op2", "alice", SR_ACTOR_USER, NULL, NULL}, "why", "unknown data point"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_buf b;
        sr_buf_init(&b);
        sr_result r;
        int rc = es_submit1(e, sr_ev_correction(&cases[i].env, &pv, 1, cases[i].reason, "csv-00", 1, &b), &b, &r);
        cr_assert_eq(rc, SR_EINVAL, "case %zu", i);
        cr_assert(strstr(r.err.msg, cases[i].says), "case %zu: %s", i, r.err.msg);
    }
    cr_assert_eq(value_at(e, "P000", 2000, NULL).v.f, 2.5, "nothing stored");
    es_finish(e, &dir);
}

Test(correct, a_corrections_grant_names_data_points_exactly_or_by_prefix)
{
    sr_store_kind k;
    cr_assert(sr_store_kind_parse("corrections", &k) && k == SR_STORE_CORRECTIONS);
    cr_assert_str_eq(sr_store_kind_name(SR_STORE_CORRECTIONS), "corrections");
    char why[200];
    cr_assert_eq(sr_store_pattern_check(SR_STORE_CORRECTIONS, "P00*", why, sizeof why), SR_OK);
    cr_assert_eq(sr_store_pattern_check(SR_STORE_CORRECTIONS, "a/b", why, sizeof why), SR_EINVAL);
    cr_assert(strstr(why, "data point"), "%s", why);
    sr_store_grant g[] = {{SR_STORE_CORRECTIONS, "P001", SR_STORE_WRITE},
                          {SR_STORE_CORRECTIONS, "Q*", SR_STORE_WRITE},
                          {SR_STORE_DOCUMENTS, "P002", SR_STORE_WRITE}};
    static const struct {
        const char *id;
        int want;
    } rows[] = {{"P001", SR_STORE_WRITE}, {"P0011", 0}, {"Q7", SR_STORE_WRITE}, {"P002", 0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_eq(sr_store_grants_allow(g, 3, SR_STORE_CORRECTIONS, rows[i].id), rows[i].want, "%s", rows[i].id);
}
