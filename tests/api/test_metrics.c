/* tests/api/test_metrics.c -- the metrics' exposition writer (api/metrics.h,
 * Prometheus text format 0.0.4): label values and help escaped, histogram
 * buckets cumulative with +Inf equal to the count, numbers that read back;
 * sr_hist's buckets (codecs/base/sr_hist.h); the operators' table bounded
 * (a further operator counts under "_other"); every metric of the table is
 * documented in docs/monitoring.md. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"

#define MONITORING_MD SR_TEST_DATA "/../../docs/monitoring.md"

static char *str(sr_buf *b)
{
    char *s = malloc(b->len + 1);
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    sr_buf_release(b);
    return s;
}

Test(metrics, label_values_escaped)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mexp_u64(&b, "m_total", "operator", "a\\b\"c\nd", 7), SR_OK);
    char *s = str(&b);
    cr_assert_str_eq(s, "m_total{operator=\"a\\\\b\\\"c\\nd\"} 7\n");
    free(s);
}

Test(metrics, help_escaped_type_named)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mexp_head(&b, "m", SR_MT_GAUGE, "a \"quoted\" back\\slash\nnewline"), SR_OK);
    char *s = str(&b);
    /* HELP escapes backslash and newline only (the format's rule) */
    cr_assert_str_eq(s, "# HELP m a \"quoted\" back\\\\slash\\nnewline\n# TYPE m gauge\n");
    free(s);
}

Test(metrics, no_label)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mexp_f64(&b, "x", NULL, NULL, 0.1), SR_OK);
    cr_assert_eq(sr_mexp_f64(&b, "y", NULL, NULL, 1e-6), SR_OK);
    char *s = str(&b);
    cr_assert_str_eq(s, "x 0.1\ny 1e-06\n");
    free(s);
}

Test(metrics, histogram_cumulative)
{
    static const uint64_t bounds[] = {1, 2, 4};
    sr_hist h = {0};
    uint64_t vals[] = {0, 1, 3, 4, 9}; /* buckets: le1: 0,1; le2: -; le4: 3,4; above: 9 */
    for (size_t i = 0; i < 5; i++) sr_hist_add(&h, bounds, 3, vals[i]);
    sr_hist_snap sn;
    sr_hist_read(&h, &sn);
    cr_assert_eq(sn.bucket[0], 2);
    cr_assert_eq(sn.bucket[1], 0);
    cr_assert_eq(sn.bucket[2], 2);
    cr_assert_eq(sn.count, 5);
    cr_assert_eq(sn.sum, 17);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mexp_hist(&b, "h_seconds", "k", "v", bounds, 3, 1e-6, &sn), SR_OK);
    char *s = str(&b);
    cr_assert_str_eq(s, "h_seconds_bucket{k=\"v\",le=\"1e-06\"} 2\n"
                        "h_seconds_bucket{k=\"v\",le=\"2e-06\"} 2\n"
                        "h_seconds_bucket{k=\"v\",le=\"4e-06\"} 4\n"
                        "h_seconds_bucket{k=\"v\",le=\"+Inf\"} 5\n"
                        "h_seconds_sum{k=\"v\"} 1.7e-05\n"
                        "h_seconds_count{k=\"v\"} 5\n");
    free(s);
}

Test(metrics, histogram_count_behind_buckets)
{
    /* a scrape that read the buckets after an add and the count before it:
     * +Inf and _count are never below the finite buckets */
    static const uint64_t bounds[] = {10};
    sr_hist_snap sn = {.bucket = {3}, .sum = 6, .count = 2};
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mexp_hist(&b, "g", NULL, NULL, bounds, 1, 1, &sn), SR_OK);
    char *s = str(&b);
    cr_assert_str_eq(s, "g_bucket{le=\"10\"} 3\ng_bucket{le=\"+Inf\"} 3\ng_sum 6\ng_count 3\n");
    free(s);
}

Test(metrics, operators_bounded)
{
    unsigned a = sr_metrics_op("opA"), b = sr_metrics_op("opB");
    cr_assert_neq(a, b);
    cr_assert_eq(sr_metrics_op("opA"), a);
    sr_metrics_ingested(a, 10);
    sr_metrics_ingested(a, 5);
    char name[32];
    unsigned last = 0;
    for (int i = 0; i < SR_METRICS_OPS + 10; i++) {
        snprintf(name, sizeof name, "op%04d", i);
        last = sr_metrics_op(name);
    }
    cr_assert_eq(last, SR_METRICS_OPS, "past the table: the _other slot");
    sr_metrics_ingested(last, 3);
    sr_buf out;
    sr_buf_init(&out);
    sr_metrics_src src = {0};
    cr_assert_eq(sr_metrics_collect(&src, &out), SR_OK);
    char *s = str(&out);
    cr_assert(strstr(s, "suiro_values_ingested_total{operator=\"opA\"} 15\n"), "%s", s);
    cr_assert(strstr(s, "suiro_messages_ingested_total{operator=\"opA\"} 2\n"));
    cr_assert(strstr(s, "suiro_values_ingested_total{operator=\"_other\"} 3\n"));
    free(s);
}

Test(metrics, refused_by_code)
{
    sr_metrics_refused(SR_WIRE_PARAM);
    sr_metrics_refused(SR_WIRE_PARAM);
    sr_metrics_refused(SR_WIRE_OK); /* not a refusal */
    sr_buf out;
    sr_buf_init(&out);
    sr_metrics_src src = {0};
    cr_assert_eq(sr_metrics_collect(&src, &out), SR_OK);
    char *s = str(&out);
    cr_assert(strstr(s, "suiro_messages_refused_total{code=\"E1001\"} 2\n"), "%s", s);
    cr_assert_null(strstr(s, "code=\"0\""));
    free(s);
}

Test(metrics, every_metric_documented)
{
    sr_buf out;
    sr_buf_init(&out);
    sr_metrics_src src = {0};
    cr_assert_eq(sr_metrics_collect(&src, &out), SR_OK);
    char *s = str(&out);
    FILE *f = fopen(MONITORING_MD, "r");
    cr_assert_not_null(f);
    static char doc[1 << 18];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = 0;
    int count = 0;
    for (char *p = strstr(s, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        char name[128];
        cr_assert_eq(sscanf(p + 7, "%127s", name), 1);
        char want[140];
        snprintf(want, sizeof want, "`%s`", name);
        cr_expect(strstr(doc, want), "%s is not in docs/monitoring.md", name);
        count++;
    }
    cr_assert_geq(count, 20);
    free(s);
}
