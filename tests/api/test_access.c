/* tests/api/test_access.c -- the reads' batches of the audit trail
 * (api/access.h, issue #18): entries of one reader become one AccessEvent
 * (one `read` row) per write; batch_max writes at once; a writer that takes
 * nothing keeps the entries held and, at buffer_max, the next read is
 * refused (never answered unaudited); reads off records and refuses
 * nothing; a stop writes what is held. */
#include "api/access.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

static char *dir;
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};

static void add(sr_access *a, const char *actor, const char *code)
{
    sr_access_entry en = {.time_ms = 1700000000000, .binding = "apif-http", .method = "GET",
                          .route = "/api/v1/stored-values/latest", .npoints_listed = 1, .npoints = 1,
                          .values = code ? 0 : 1, .bytes = 10, .status = code ? 403 : 200, .code = code ? code : "",
                          .source = "192.0.2.5:1"};
    char p[16];
    snprintf(p, sizeof p, "P%s", actor);
    en.points[0] = p; /* copied (access.h invariant 2) */
    sr_access_add(a, "op1", SR_ACTOR_APP, actor, &en);
}

/* the `read` rows (their details into out, '|'-joined) */
static size_t read_rows(sr_engine *e, char *out, size_t cap)
{
    sr_audit_query q = {.kind = "read", .limit = 100};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    sr_audit_rec a;
    size_t n = 0, w = 0;
    out[0] = 0;
    while (sr_rec_next_audit(&r, &a) == 1) {
        w += (size_t)snprintf(out + w, cap - w, "%s%s: %s", n ? "|" : "", a.actor, a.detail);
        n++;
    }
    sr_rec_close(&r);
    return n;
}

Test(access, a_batch_per_reader_written_by_flush_and_by_stop)
{
    sr_engine *e = es_open(&dir, "access", &OPTS);
    sr_access_opts o = {.reads = 1, .flush_ms = 60000, .batch_max = 100, .buffer_max = 1000};
    sr_access *a = sr_access_new(e, &o);
    cr_assert(sr_access_admit(a));
    add(a, "app1", NULL);
    add(a, "app1", "E2003");
    add(a, "app2", NULL);
    char out[2000];
    cr_assert_eq(read_rows(e, out, sizeof out), 0, "nothing before a write");
    sr_access_tick(a, 0); /* flush_ms not passed: nothing */
    cr_assert_eq(sr_access_flush(a), SR_OK);
    sr_access_stop(a); /* waits for the writer's acknowledgements */
    cr_assert_eq(read_rows(e, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "app1: 2 request(s), 1 answered, 1 refused (E2003 x1); 1 value(s), 20 byte(s); 2 data "
                          "point(s): Papp1") != NULL, "%s", out);
    cr_assert(strstr(out, "app2: 1 request(s), 1 answered, 0 refused") != NULL, "%s", out);
    sr_access_stats st;
    sr_access_get_stats(a, &st);
    cr_assert_eq(st.entries, 3);
    cr_assert_eq(st.batches, 2);
    cr_assert_eq(st.held, 0);
    add(a, "app1", NULL); /* stopped: nothing more */
    sr_access_get_stats(a, &st);
    cr_assert_eq(st.entries, 3);
    sr_access_free(a);
    es_finish(e, &dir);
}

Test(access, batch_max_entries_are_written_at_once)
{
    sr_engine *e = es_open(&dir, "access", &OPTS);
    sr_access_opts o = {.reads = 1, .flush_ms = 60000, .batch_max = 4, .buffer_max = 100};
    sr_access *a = sr_access_new(e, &o);
    for (int i = 0; i < 4; i++) add(a, "app1", NULL);
    char out[2000];
    /* the 4th entry submitted the batch: wait for its row (bounded) */
    for (int i = 0; i < 2000 && read_rows(e, out, sizeof out) == 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(read_rows(e, out, sizeof out), 1, "written at batch_max without a flush: %s", out);
    cr_assert(strstr(out, "app1: 4 request(s)") != NULL, "%s", out);
    sr_access_stop(a);
    sr_access_free(a);
    es_finish(e, &dir);
}

Test(access, a_writer_that_takes_nothing_holds_the_entries_and_refuses_reads_at_buffer_max)
{
    /* a read-only engine: no writer, every submit refused (a stopped writer) */
    sr_engine *w = es_open(&dir, "access", &OPTS);
    cr_assert_eq(sr_engine_close(w), SR_OK);
    sr_engine_opts ro = OPTS;
    ro.readonly = 1;
    sr_engine *e = es_open(&dir, NULL, &ro);
    sr_access_opts o = {.reads = 1, .flush_ms = 10, .batch_max = 4, .buffer_max = 16};
    sr_access *a = sr_access_new(e, &o);
    int admitted = 0;
    for (int i = 0; i < 40; i++) {
        if (!sr_access_admit(a)) break;
        admitted++;
        add(a, i % 2 ? "app1" : "app2", NULL);
    }
    cr_assert_eq(admitted, 16, "exactly buffer_max reads answered, then refused (%d)", admitted);
    cr_assert_neq(sr_access_flush(a), SR_OK, "the writer takes nothing");
    cr_assert(!sr_access_admit(a), "still refused: nothing was written");
    sr_access_stats st;
    sr_access_get_stats(a, &st);
    cr_assert_eq(st.held, 16, "every entry held, none lost");
    cr_assert_eq(st.batches, 0);
    cr_assert_geq(st.refused, 2);
    /* the stop gives up after its bound (the entries are lost, logged) */
    sr_access_stop(a);
    sr_access_free(a);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    e = es_open(&dir, NULL, &OPTS);
    char out[2000];
    cr_assert_eq(read_rows(e, out, sizeof out), 0);
    es_finish(e, &dir);
}

Test(access, reads_off_records_and_refuses_nothing)
{
    sr_engine *e = es_open(&dir, "access", &OPTS);
    sr_access_opts o = {.reads = 0, .flush_ms = 10, .batch_max = 1, .buffer_max = 16};
    sr_access *a = sr_access_new(e, &o);
    cr_assert(!sr_access_on(a));
    for (int i = 0; i < 40; i++) {
        cr_assert(sr_access_admit(a));
        add(a, "app1", NULL);
    }
    cr_assert_eq(sr_access_flush(a), SR_OK);
    sr_access_stop(a);
    char out[200];
    cr_assert_eq(read_rows(e, out, sizeof out), 0);
    sr_access_free(a);
    es_finish(e, &dir);
}

/* Issue #18 (the packed batch, api/access.c invariant 4): a reader whose
 * entries name more distinct strings than one packed batch's table holds
 * (5,000 reads of 16 new points each: 80,000 strings > 65,535) gets its
 * batch sealed before the table is full; every entry is in a row. */
Test(access, a_full_string_table_seals_the_batch_and_loses_nothing)
{
    sr_engine *e = es_open(&dir, "access", &OPTS);
    sr_access_opts o = {.reads = 1, .flush_ms = 60000, .batch_max = 4096, .buffer_max = 1 << 20};
    sr_access *a = sr_access_new(e, &o);
    enum { N = 5000 };
    static char pts[16][16];
    for (int i = 0; i < N; i++) {
        sr_access_entry en = {.time_ms = 1700000000000 + i, .binding = "apif-http", .method = "GET",
                              .route = "/api/v1/stored-values", .npoints_listed = 16, .npoints = 20, .values = 2,
                              .bytes = 10, .status = 200, .code = "", .source = "192.0.2.5"};
        for (int k = 0; k < 16; k++) {
            snprintf(pts[k], sizeof pts[k], "P%d_%d", i, k);
            en.points[k] = pts[k];
        }
        sr_access_add(a, "op1", SR_ACTOR_APP, "app1", &en);
    }
    sr_access_stop(a);
    sr_access_stats st;
    sr_access_get_stats(a, &st);
    cr_assert_eq(st.entries, N);
    cr_assert_eq(st.held, 0);
    cr_assert_geq(st.batches, 2, "sealed before the table was full: %llu", (unsigned long long)st.batches);
    sr_audit_query q = {.kind = "read", .limit = 100};
    sr_rec r = SR_REC_INIT;
    int more = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    sr_audit_rec ar;
    unsigned long total = 0, values = 0;
    while (sr_rec_next_audit(&r, &ar) == 1) {
        unsigned long n = 0, v = 0;
        cr_assert_eq(sscanf(ar.detail, "%lu request(s), %*u answered, %*u refused; %lu value(s)", &n, &v), 2, "%s",
                     ar.detail);
        total += n;
        values += v;
    }
    sr_rec_close(&r);
    cr_assert_eq(total, N, "every read in a row");
    cr_assert_eq(values, 2 * N);
    sr_access_free(a);
    es_finish(e, &dir);
}
