/* tests/engine/test_records.c -- engine/records.c: the typed boundary. Every
 * field of every typed read round-trips from the event that writes it (built
 * with the typed builders sr_cmd_*, or with protobuf for the masters, which
 * api/ never writes); results stay valid until the holder is closed; an
 * empty list; a damaged record or framing is SR_ECORRUPT, not a crash. */
#include "engine/records.h"

#include "engine/evbuild.h"
#include "engsuite.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static char *dir;

static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};

static sr_engine *open_engine(void) { return es_open(&dir, "records", &OPTS); }
static void close_engine(sr_engine *e) { es_finish(e, &dir); }

/* submit the one event a builder appended to b (built: its return) */
static void submit1(sr_engine *e, int built, sr_buf *b)
{
    sr_result r;
    cr_assert_eq(es_submit1(e, built, b, &r), SR_OK, "%s", r.err.msg);
}

static const sr_cmd_env ENV = {"op1", "admin", SR_ACTOR_USER, NULL, "cli"};

Test(records, registry_entry_round_trips_every_field)
{
    sr_engine *e = open_engine();
    static const uint8_t hash[] = {1, 2, 3, 0, 5};
    sr_reg_entry in = {.kind = SR_RG_APP,
                       .id = "APP1",
                       .name = "Billing",
                       .secret_hash = {hash, sizeof hash},
                       .url = "https://app.example/push",
                       .cert_pem = "-----BEGIN CERTIFICATE-----\nx\n",
                       .app_id = "APP1",
                       .pattern = "P0*",
                       .access = "read+control",
                       .protocol = "http"};
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_registry_put(&ENV, &in, &b), &b);

    sr_rec r = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "APP1", &r, &g), SR_OK);
    cr_assert_eq(g.kind, SR_RG_APP);
    cr_assert_str_eq(g.id, in.id);
    cr_assert_str_eq(g.name, in.name);
    cr_assert_eq(g.secret_hash.len, sizeof hash);
    cr_assert_eq(memcmp(g.secret_hash.data, hash, sizeof hash), 0);
    cr_assert_str_eq(g.url, in.url);
    cr_assert_str_eq(g.cert_pem, in.cert_pem);
    cr_assert_str_eq(g.app_id, in.app_id);
    cr_assert_str_eq(g.pattern, in.pattern);
    cr_assert_str_eq(g.access, in.access);
    cr_assert_str_eq(g.protocol, in.protocol);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "NOPE", &r, &g), SR_ENOTFOUND);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GATEWAY, "APP1", &r, &g), SR_ENOTFOUND);

    /* the list: the same entry */
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_APP, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 1);
    sr_reg_entry l;
    cr_assert_eq(sr_rec_next_registry(&r, &l), 1);
    cr_assert_str_eq(l.url, in.url);
    cr_assert_eq(sr_rec_next_registry(&r, &l), 0);
    cr_assert_eq(sr_rec_next_registry(&r, &l), 0); /* stays at the end */
    sr_rec_close(&r);
    sr_rec_close(&r); /* twice: harmless */
    close_engine(e);
}

Test(records, empty_lists)
{
    sr_engine *e = open_engine();
    sr_rec r = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 0);
    cr_assert_eq(sr_rec_next_registry(&r, &g), 0);
    sr_master m;
    cr_assert_eq(sr_list_masters(e, "op1", SR_MK_DATA_POINT, &r), SR_OK);
    cr_assert_eq(sr_rec_next_master(&r, &m), 0);
    sr_monitor_rec mo;
    cr_assert_eq(sr_list_monitors(e, "nobody", &r), SR_OK);
    cr_assert_eq(sr_rec_next_monitor(&r, &mo), 0);
    int more = 1;
    sr_file_meta f;
    cr_assert_eq(sr_list_files(e, "op1", "", 0, &r, &more), SR_OK);
    cr_assert_eq(more, 0);
    cr_assert_eq(sr_rec_next_file(&r, &f), 0);
    sr_rec_close(&r);
    close_engine(e);
}

Test(records, masters_round_trip_every_field)
{
    sr_engine *e = open_engine();
    static const sr_vtype types[] = {SR_VT_NUMBER, SR_VT_STRING};
    cr_assert_eq(et_setup_masters(e, "op1", 3, types, 2), 0);
    /* one point with every field, written as the set-up sheet writes it */
    Suiro__V1__MasterPut mp = SUIRO__V1__MASTER_PUT__INIT;
    mp.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    mp.id = "PX";
    mp.parent_id = "D-GW1";
    mp.name = "Pressure";
    mp.type = SUIRO__V1__VALUE_TYPE__VT_INTEGER;
    mp.unit = "kPa";
    mp.has_min = 1;
    mp.min = -5;
    mp.has_max = 1;
    mp.max = 900.5;
    mp.point_kind = SUIRO__V1__POINT_KIND__PK_BOTH;
    mp.location = "basement";
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = &mp;
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_ev_pack(&ev, "op1", "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, NULL, &b), &b);

    sr_rec r = SR_REC_INIT;
    sr_master m;
    cr_assert_eq(sr_read_master(e, "op1", SR_MK_DATA_POINT, "PX", &r, &m), SR_OK);
    cr_assert_eq(m.kind, SR_MK_DATA_POINT);
    cr_assert_str_eq(m.id, "PX");
    cr_assert_str_eq(m.parent_id, "D-GW1");
    cr_assert_str_eq(m.name, "Pressure");
    cr_assert_str_eq(m.gateway_id, "");
    cr_assert_eq(m.type, SR_VT_INTEGER);
    cr_assert_str_eq(m.unit, "kPa");
    cr_assert(m.has_min && m.has_max);
    cr_assert_float_eq(m.min, -5, 0);
    cr_assert_float_eq(m.max, 900.5, 0);
    cr_assert_eq(m.point_kind, 3);
    cr_assert_str_eq(m.location, "basement");
    uint32_t pt;
    sr_vtype vt;
    cr_assert_eq(sr_engine_point(e, "op1", "PX", &pt, &vt), SR_OK);
    cr_assert_eq(m.point, pt); /* the writer's number */
    cr_assert_neq(pt, 0);

    /* devices carry their gateway */
    cr_assert_eq(sr_read_master(e, "op1", SR_MK_DEVICE, "D-GW2", &r, &m), SR_OK);
    cr_assert_str_eq(m.gateway_id, "GW2");

    /* the list: 3 + 1 points, id order */
    cr_assert_eq(sr_list_masters(e, "op1", SR_MK_DATA_POINT, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 4);
    const char *want[] = {"P000", "P001", "P002", "PX"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(sr_rec_next_master(&r, &m), 1);
        cr_assert_str_eq(m.id, want[i]);
    }
    cr_assert_eq(sr_rec_next_master(&r, &m), 0);
    sr_rec_close(&r);
    close_engine(e);
}

static int count_file(void *ctx, const char *op, const sr_file_meta *f)
{
    cr_assert_str_eq(op, "op1");
    cr_assert_eq(f->sha256.len, 32);
    cr_assert_eq(f->size, 12345);
    ++*(int *)ctx;
    return 0;
}

static int stop_file(void *ctx, const char *op, const sr_file_meta *f)
{
    (void)op;
    (void)f;
    ++*(int *)ctx;
    return 77;
}

Test(records, files_round_trip_every_field)
{
    sr_engine *e = open_engine();
    uint8_t sha[32];
    for (int i = 0; i < 32; i++) sha[i] = (uint8_t)(i * 7);
    const char *shared[] = {"APP2", "APP3"};
    sr_file_meta in = {.path = "reports/a.csv",
                       .sha256 = {sha, 32},
                       .size = 12345,
                       .content_type = "text/csv",
                       .owner = "APP1",
                       .shared_with = shared,
                       .n_shared_with = 2,
                       .updated_ms = 1767225600123};
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_file_put(&ENV, &in, &b), &b);
    sr_file_meta in2 = in;
    in2.path = "reports/b.csv";
    in2.n_shared_with = 0;
    in2.shared_with = NULL;
    sr_buf_init(&b);
    submit1(e, sr_cmd_file_put(&ENV, &in2, &b), &b);

    sr_rec r = SR_REC_INIT;
    sr_file_meta g;
    cr_assert_eq(sr_read_file(e, "op1", "reports/a.csv", &r, &g), SR_OK);
    cr_assert_str_eq(g.path, in.path);
    cr_assert_eq(g.sha256.len, 32);
    cr_assert_eq(memcmp(g.sha256.data, sha, 32), 0);
    cr_assert_eq(g.size, 12345);
    cr_assert_str_eq(g.content_type, "text/csv");
    /* the writer records the creator as the owner and starts with no share
     * list (sr_cmd_file_share sets it: test_docfiles) */
    cr_assert_str_eq(g.owner, "admin");
    cr_assert_eq(g.owner_kind, SR_ACTOR_USER);
    cr_assert_eq(g.n_shared_with, 0);
    cr_assert_eq(g.updated_ms, 1767225600123);

    int more = 0;
    cr_assert_eq(sr_list_files(e, "op1", "reports/", 1, &r, &more), SR_OK);
    cr_assert_eq(more, 1); /* the limit cut it */
    cr_assert_eq(sr_rec_next_file(&r, &g), 1);
    cr_assert_str_eq(g.path, "reports/a.csv");
    cr_assert_eq(sr_rec_next_file(&r, &g), 0);
    cr_assert_eq(sr_list_files(e, "op1", "reports/", 0, &r, &more), SR_OK);
    cr_assert_eq(more, 0);
    cr_assert_eq(sr_rec_count(&r), 2);

    /* every file of every operator, one snapshot; a non-zero return stops it */
    cr_assert_eq(sr_each_file(e, count_file, &more), SR_OK);
    cr_assert_eq(more, 2);
    more = 0;
    cr_assert_eq(sr_each_file(e, stop_file, &more), 77);
    cr_assert_eq(more, 1);

    /* delete through the builder */
    sr_buf_init(&b);
    submit1(e, sr_cmd_file_delete(&ENV, "reports/a.csv", &b), &b);
    cr_assert_eq(sr_read_file(e, "op1", "reports/a.csv", &r, &g), SR_ENOTFOUND);
    sr_rec_close(&r);
    close_engine(e);
}

Test(records, monitor_round_trips_every_field)
{
    sr_engine *e = open_engine();
    const char *ids[] = {"P001", "P002", "P003"}, *gws[] = {"GW1", "GW2"}, *acked[] = {"GW2"};
    sr_monitor_rec in = {.monitor_id = "M1",
                         .state = SR_MS_STOPPING,
                         .app_id = "APP1",
                         .data_ids = ids,
                         .n_data_ids = 3,
                         .interval_ms = 60000,
                         .gateway_ids = gws,
                         .n_gateway_ids = 2,
                         .acked = acked,
                         .n_acked = 1,
                         .start_ms = 1000,
                         .end_ms = 2000,
                         .created_ms = 500};
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_monitor(&ENV, &in, &b), &b);

    sr_rec r = SR_REC_INIT;
    sr_monitor_rec g;
    cr_assert_eq(sr_read_monitor(e, "op1", "M1", &r, &g), SR_OK);
    cr_assert_str_eq(g.monitor_id, "M1");
    cr_assert_eq(g.state, SR_MS_STOPPING);
    cr_assert_str_eq(g.app_id, "APP1");
    cr_assert_eq(g.n_data_ids, 3);
    for (int i = 0; i < 3; i++) cr_assert_str_eq(g.data_ids[i], ids[i]);
    cr_assert_eq(g.interval_ms, 60000);
    cr_assert_eq(g.n_gateway_ids, 2);
    cr_assert_str_eq(g.gateway_ids[0], "GW1");
    cr_assert_str_eq(g.gateway_ids[1], "GW2");
    cr_assert_eq(g.n_acked, 1);
    cr_assert_str_eq(g.acked[0], "GW2");
    cr_assert_eq(g.start_ms, 1000);
    cr_assert_eq(g.end_ms, 2000);
    cr_assert_eq(g.created_ms, 500);

    cr_assert_eq(sr_list_monitors(e, "op1", &r), SR_OK);
    cr_assert_eq(sr_rec_next_monitor(&r, &g), 1);
    cr_assert_str_eq(g.monitor_id, "M1");
    cr_assert_eq(sr_rec_next_monitor(&r, &g), 0);
    sr_rec_close(&r);
    close_engine(e);
}

Test(records, request_and_transition_round_trip_every_field)
{
    sr_engine *e = open_engine();
    const char *ids[] = {"P001", "P002"};
    sr_control_value ctl = {.data_id = "P001", .type = SR_VT_STRING, .s = "open"};
    static const char prot[] = "{\"signAlg\":\"ES256\"}";
    sr_request_rec in = {.request_id = "Q1",
                         .kind = SR_RK_CONTROL,
                         .app_id = "APP1",
                         .gateway_id = "GW1",
                         .data_ids = ids,
                         .n_data_ids = 2,
                         .interval_ms = 7,
                         .timeout_ms = 10000,
                         .monitor_id = "M9",
                         .control = &ctl,
                         .n_control = 1,
                         .protection = {prot, sizeof prot - 1},
                         .deadline_ms = 99999,
                         .start_ms = 11,
                         .end_ms = 22,
                         .async = 1};
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_request_created(&ENV, &in, &b), &b);

    sr_rec r = SR_REC_INIT;
    sr_request_rec g;
    sr_request_transition st;
    int has = 1;
    /* created, no transition yet */
    cr_assert_eq(sr_read_request(e, "op1", "Q1", "GW1", &r, &g, &st, &has), SR_OK);
    cr_assert_eq(has, 0);
    cr_assert_str_eq(g.request_id, "Q1");
    cr_assert_eq(g.kind, SR_RK_CONTROL);
    cr_assert_str_eq(g.app_id, "APP1");
    cr_assert_str_eq(g.gateway_id, "GW1");
    cr_assert_eq(g.n_data_ids, 2);
    cr_assert_str_eq(g.data_ids[1], "P002");
    cr_assert_eq(g.interval_ms, 7);
    cr_assert_eq(g.timeout_ms, 10000);
    cr_assert_str_eq(g.monitor_id, "M9");
    cr_assert_eq(g.n_control, 1);
    cr_assert_str_eq(g.control[0].data_id, "P001");
    cr_assert_eq(g.control[0].type, SR_VT_STRING);
    cr_assert_str_eq(g.control[0].s, "open");
    cr_assert_eq(g.protection.len, sizeof prot - 1);
    cr_assert_eq(memcmp(g.protection.data, prot, sizeof prot - 1), 0);
    cr_assert_eq(g.deadline_ms, 99999);
    cr_assert_eq(g.start_ms, 11);
    cr_assert_eq(g.end_ms, 22);
    cr_assert_eq(g.async, 1);
    /* the app-level request is another record */
    cr_assert_eq(sr_read_request(e, "op1", "Q1", "", &r, &g, &st, &has), SR_ENOTFOUND);

    sr_control_value applied = {.data_id = "P001", .type = SR_VT_NUMBER, .f = 2.5};
    sr_control_value vals[] = {
        {.data_id = "P001", .type = SR_VT_INTEGER, .i = -42, .timestamp_ms = 123, .quality = 2},
        {.data_id = "P002", .type = SR_VT_BOOL, .b = 1, .timestamp_ms = 456, .quality = 0}};
    sr_request_transition tin = {.request_id = "Q1",
                                 .state = SR_RS_FAILED,
                                 .error_code = "E4004",
                                 .message = "interlock",
                                 .applied = &applied,
                                 .n_applied = 1,
                                 .gateway_id = "GW1",
                                 .values = vals,
                                 .n_values = 2};
    sr_buf_init(&b);
    submit1(e, sr_cmd_request_transition(&ENV, &tin, &b), &b);
    cr_assert_eq(sr_read_request(e, "op1", "Q1", "GW1", &r, &g, &st, &has), SR_OK);
    cr_assert_eq(has, 1);
    cr_assert_str_eq(st.request_id, "Q1");
    cr_assert_eq(st.state, SR_RS_FAILED);
    cr_assert_str_eq(st.error_code, "E4004");
    cr_assert_str_eq(st.message, "interlock");
    cr_assert_str_eq(st.gateway_id, "GW1");
    cr_assert_eq(st.n_applied, 1);
    cr_assert_eq(st.applied[0].type, SR_VT_NUMBER);
    cr_assert_float_eq(st.applied[0].f, 2.5, 0);
    cr_assert_eq(st.n_values, 2);
    cr_assert_eq(st.values[0].i, -42);
    cr_assert_eq(st.values[0].timestamp_ms, 123);
    cr_assert_eq(st.values[0].quality, 2);
    cr_assert_eq(st.values[1].type, SR_VT_BOOL);
    cr_assert_eq(st.values[1].b, 1);
    cr_assert_eq(st.values[1].timestamp_ms, 456);
    sr_rec_close(&r);
    close_engine(e);
}

/* Results stay valid until the holder is closed, whatever the holder reads
 * meanwhile (under ASan a freed result is a use-after-free). */
Test(records, results_live_until_close)
{
    sr_engine *e = open_engine();
    for (int i = 0; i < 20; i++) {
        char id[16], pat[16];
        snprintf(id, sizeof id, "G%02d", i);
        snprintf(pat, sizeof pat, "P%02d*", i);
        sr_reg_entry in = {.kind = SR_RG_GRANT, .id = id, .app_id = "APP1", .pattern = pat, .access = "read"};
        sr_buf b;
        sr_buf_init(&b);
        submit1(e, sr_cmd_registry_put(&ENV, &in, &b), &b);
    }
    sr_rec r = SR_REC_INIT;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 20);
    sr_reg_entry got[20];
    for (int i = 0; i < 20; i++) cr_assert_eq(sr_rec_next_registry(&r, &got[i]), 1);
    cr_assert_eq(sr_rec_next_registry(&r, &got[0]) /* end: got[0] untouched */, 0);
    /* more reads through the same holder: a list and a single read */
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &r), SR_OK);
    sr_reg_entry one;
    cr_assert_eq(sr_rec_next_registry(&r, &one), 1);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G07", &r, &one), SR_OK);
    for (int i = 0; i < 20; i++) {
        char pat[16];
        snprintf(pat, sizeof pat, "P%02d*", i);
        cr_assert_str_eq(got[i].pattern, pat);
        cr_assert_str_eq(got[i].app_id, "APP1");
    }
    cr_assert_str_eq(one.id, "G07");
    sr_rec_close(&r);
    close_engine(e);
}

/* The one walker: a record that does not decode is SR_ECORRUPT and skipped,
 * a length past the end is SR_ECORRUPT and ends the list. */
static void frame(sr_buf *b, const void *p, uint32_t len)
{
    uint8_t l[4];
    sr_put_le32(l, len);
    cr_assert_eq(sr_buf_append(b, l, 4), SR_OK);
    cr_assert_eq(sr_buf_append(b, p, len), SR_OK);
}

Test(records, damaged_records_are_errors_not_crashes)
{
    sr_rec r = SR_REC_INIT;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f}; /* a field 0 varint: invalid */
    /* a RegistryPut as the engine stores it: field 1 kind, 2 id, 3 name */
    static const uint8_t rp[] = {0x08, 0x03, 0x12, 0x04, 'A', 'P', 'P', '1', 0x1a, 0x02, 'o', 'k'};
    frame(&r.raw, junk, sizeof junk);
    frame(&r.raw, rp, sizeof rp);
    uint8_t l[4];
    sr_put_le32(l, 1000); /* past the end */
    cr_assert_eq(sr_buf_append(&r.raw, l, 4), SR_OK);
    cr_assert_eq(sr_buf_append(&r.raw, rp, 3), SR_OK);
    sr_reg_entry g;
    cr_assert_eq(sr_rec_next_registry(&r, &g), SR_ECORRUPT);
    cr_assert_eq(sr_rec_next_registry(&r, &g), 1);
    cr_assert_eq(g.kind, SR_RG_APP);
    cr_assert_str_eq(g.id, "APP1");
    cr_assert_str_eq(g.name, "ok");
    cr_assert_eq(sr_rec_next_registry(&r, &g), SR_ECORRUPT);
    cr_assert_eq(sr_rec_next_registry(&r, &g), 0);
    /* a truncated length prefix */
    sr_rec_close(&r);
    cr_assert_eq(sr_buf_append(&r.raw, l, 2), SR_OK);
    cr_assert_eq(sr_rec_next_registry(&r, &g), SR_ECORRUPT);
    cr_assert_eq(sr_rec_next_registry(&r, &g), 0);
    sr_file_meta f;
    sr_rec_close(&r);
    frame(&r.raw, junk, sizeof junk);
    cr_assert_eq(sr_rec_next_file(&r, &f), SR_ECORRUPT);
    sr_monitor_rec m;
    sr_rec_close(&r);
    frame(&r.raw, junk, sizeof junk);
    cr_assert_eq(sr_rec_next_monitor(&r, &m), SR_ECORRUPT);
    sr_rec_close(&r);
}

Test(records, documents_round_trip_and_damaged_framing)
{
    sr_engine *e = open_engine();
    sr_cmd_env app = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    const char *json[] = {"{\"a\":1}", "{\"a\":2,\"b\":\"x\"}"};
    for (int i = 0; i < 2; i++) {
        sr_buf b;
        sr_buf_init(&b);
        submit1(e, sr_cmd_doc_put(&app, "reports", i ? "d2" : "d1", 0, json[i], strlen(json[i]), &b), &b);
    }
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_doc_put(&app, "reports", "d1", 1, json[0], strlen(json[0]), &b), &b); /* revision 2 */
    sr_rec r = SR_REC_INIT;
    sr_doc_bounds bd = {0, 0, 0};
    int more = 1;
    char next[260];
    cr_assert_eq(sr_list_docs(e, "op1", "reports", NULL, NULL, &bd, NULL, &r, &more, next), SR_OK);
    cr_assert_eq(more, 0);
    sr_doc d;
    cr_assert_eq(sr_rec_next_doc(&r, &d), 1);
    cr_assert_str_eq(d.id, "d1");
    cr_assert_eq(d.revision, 2);
    cr_assert_eq(d.json.len, strlen(json[0]));
    cr_assert_eq(memcmp(d.json.data, json[0], d.json.len), 0);
    cr_assert_eq(sr_rec_next_doc(&r, &d), 1);
    cr_assert_str_eq(d.id, "d2");
    cr_assert_eq(d.revision, 1);
    cr_assert_eq(memcmp(d.json.data, json[1], d.json.len), 0);
    cr_assert_eq(sr_rec_next_doc(&r, &d), 0);
    /* filtered */
    cr_assert_eq(sr_list_docs(e, "op1", "reports", "b", "\"x\"", &bd, NULL, &r, &more, next), SR_OK);
    cr_assert_eq(sr_rec_next_doc(&r, &d), 1);
    cr_assert_str_eq(d.id, "d2");
    cr_assert_eq(sr_rec_next_doc(&r, &d), 0);
    sr_rec_close(&r);
    /* damaged: a json length past the end, an id without its NUL */
    uint8_t rec[] = {'d', 0, 1, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, '{', '}'};
    cr_assert_eq(sr_buf_append(&r.raw, rec, sizeof rec), SR_OK);
    cr_assert_eq(sr_rec_next_doc(&r, &d), SR_ECORRUPT);
    cr_assert_eq(sr_rec_next_doc(&r, &d), 0);
    sr_rec_close(&r);
    cr_assert_eq(sr_buf_append(&r.raw, "abc", 3), SR_OK);
    cr_assert_eq(sr_rec_next_doc(&r, &d), SR_ECORRUPT);
    sr_rec_close(&r);
    close_engine(e);
}

/* An app's AP-IF session (sr_cmd_token_session): kept while open with its
 * token hash, operator, app and expiry; a logout (or expiry) removes it;
 * it survives a reopen (the index) and a rebuild (the log). */
typedef struct sess_seen {
    int n;
    sr_session_rec s[4];
    char op[4][72], app[4][72];
    uint8_t hash[4][32];
} sess_seen;

static int sess_one(void *ctx, const sr_session_rec *s)
{
    sess_seen *x = ctx;
    if (x->n >= 4) return SR_EINVAL;
    snprintf(x->op[x->n], 72, "%s", s->op);
    snprintf(x->app[x->n], 72, "%s", s->id);
    memcpy(x->hash[x->n], s->token_hash, 32);
    x->s[x->n++] = *s;
    return SR_OK;
}

Test(records, app_session_round_trips_and_ends_at_logout)
{
    sr_engine *e = open_engine();
    uint8_t h1[32], h2[32];
    for (int i = 0; i < 32; i++) h1[i] = (uint8_t)i, h2[i] = (uint8_t)(200 + i);
    const sr_cmd_env app = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    sr_buf b;
    sr_buf_init(&b);
    submit1(e, sr_cmd_token_session(&app, h1, 1900000000000, SR_SS_CONNECTED, "secret", &b), &b);
    submit1(e, sr_cmd_token_session(&app, h2, 1900000000001, SR_SS_CONNECTED, "certificate", &b), &b);
    sess_seen x = {0};
    cr_assert_eq(sr_each_session(e, sess_one, &x), SR_OK);
    cr_assert_eq(x.n, 2);
    int i1 = memcmp(x.hash[0], h1, 32) ? 1 : 0;
    cr_assert_eq(memcmp(x.hash[i1], h1, 32), 0);
    cr_assert_str_eq(x.op[i1], "op1");
    cr_assert_str_eq(x.app[i1], "APP1");
    cr_assert_eq(x.s[i1].expires_ms, 1900000000000);
    cr_assert_eq(x.s[i1].kind, SR_ACTOR_APP);
    submit1(e, sr_cmd_token_session(&app, h1, 1900000000000, SR_SS_DISCONNECTED, "logout", &b), &b);
    /* a bad hash is refused */
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_token_session(&(sr_cmd_env){"op1", "", SR_ACTOR_APP, NULL, NULL}, h1, 1, SR_SS_CONNECTED, "", &b), SR_OK);
    size_t len = b.len;
    sr_result r;
    cr_assert_eq(et_submit(e, &b, &len, 1, &r), SR_EINVAL, "an app session without an app was stored");
    sr_buf_release(&b);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_engine_opts o = {.sync = SR_ENGINE_SYNC_NONE};
    sr_errinfo ei;
    cr_assert_eq(sr_engine_rebuild(dir, &o, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    memset(&x, 0, sizeof x);
    cr_assert_eq(sr_each_session(e, sess_one, &x), SR_OK);
    cr_assert_eq(x.n, 1, "the logged-out session is still kept, or the open one is lost");
    cr_assert_eq(memcmp(x.hash[0], h2, 32), 0);
    cr_assert_str_eq(x.app[0], "APP1");
    cr_assert_eq(x.s[0].expires_ms, 1900000000001);
    close_engine(e);
}

/* A user's session (sr_cmd_token_session with SR_ACTOR_USER): verifies
 * while open and unexpired, as a user's only; an expired one, one logged out
 * and all of a user's after sr_cmd_user_sessions_revoke do not; another
 * user's and an app's sessions are untouched by the revocation; what is open
 * survives a reopen and a rebuild from the log. */
static void user_login(sr_engine *e, const char *op, const char *user, const uint8_t h[32], int64_t exp)
{
    sr_buf b;
    sr_buf_init(&b);
    const sr_cmd_env env = {op, user, SR_ACTOR_USER, NULL, "192.0.2.1"};
    submit1(e, sr_cmd_token_session(&env, h, exp, SR_SS_CONNECTED, "password+totp", &b), &b);
}

static int count_one(void *ctx, const sr_session_rec *s)
{
    (void)s;
    ++*(int *)ctx;
    return SR_OK;
}

static int open_sessions(sr_engine *e)
{
    int n = 0;
    cr_assert_eq(sr_each_session(e, count_one, &n), SR_OK);
    return n;
}

Test(records, user_sessions_verify_expire_and_are_revoked_one_or_all)
{
    sr_engine *e = open_engine();
    const int64_t now = 1800000000000, later = 1900000000000;
    uint8_t u1a[32], u1b[32], u2[32], pa[32], ap[32], unk[32];
    for (int i = 0; i < 32; i++)
        u1a[i] = (uint8_t)i, u1b[i] = (uint8_t)(40 + i), u2[i] = (uint8_t)(80 + i), pa[i] = (uint8_t)(120 + i),
        ap[i] = (uint8_t)(160 + i), unk[i] = 0xee;
    user_login(e, "op1", "alice", u1a, later);
    user_login(e, "op1", "alice", u1b, later);
    user_login(e, "op1", "bob", u2, later);
    user_login(e, "", "root", pa, later); /* a platform admin has no operator */
    sr_buf b;
    sr_buf_init(&b);
    const sr_cmd_env app = {"op1", "alice", SR_ACTOR_APP, NULL, NULL}; /* an app that shares a user's id */
    submit1(e, sr_cmd_token_session(&app, ap, later, SR_SS_CONNECTED, "secret", &b), &b);

    sr_session_rec s;
    cr_assert_eq(sr_session_verify(e, u1a, SR_ACTOR_USER, now, &s), SR_OK);
    cr_expect_eq(s.kind, SR_ACTOR_USER);
    cr_expect_str_eq(s.op, "op1");
    cr_expect_str_eq(s.id, "alice");
    cr_expect_eq(s.expires_ms, later);
    cr_assert_eq(sr_session_verify(e, pa, SR_ACTOR_USER, now, &s), SR_OK);
    cr_expect_str_eq(s.op, "");
    cr_expect_str_eq(s.id, "root");
    /* unknown, expired, or of another kind: no */
    cr_expect_eq(sr_session_verify(e, unk, SR_ACTOR_USER, now, &s), SR_ENOTFOUND);
    cr_expect_eq(sr_session_verify(e, u1a, SR_ACTOR_USER, later, &s), SR_ENOTFOUND, "an expired session verified");
    cr_expect_eq(sr_session_verify(e, ap, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "an app's token verified as a user's");
    cr_expect_eq(sr_session_verify(e, u2, SR_ACTOR_APP, now, &s), SR_ENOTFOUND, "a user's token verified as an app's");
    cr_expect_eq(open_sessions(e), 5);

    /* revoke one (logout) */
    sr_buf_init(&b);
    const sr_cmd_env bob = {"op1", "bob", SR_ACTOR_USER, NULL, NULL};
    submit1(e, sr_cmd_token_session(&bob, u2, later, SR_SS_DISCONNECTED, "logout", &b), &b);
    cr_expect_eq(sr_session_verify(e, u2, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "a logged-out session verified");

    /* revoke all of alice's (by an admin): both of hers end, nobody else's */
    user_login(e, "op1", "bob", u2, later);
    sr_buf_init(&b);
    const sr_cmd_env admin = {"op1", "admin1", SR_ACTOR_USER, NULL, NULL};
    submit1(e, sr_cmd_user_sessions_revoke(&admin, "alice", "disabled", &b), &b);
    cr_expect_eq(sr_session_verify(e, u1a, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "a revoked session verified");
    cr_expect_eq(sr_session_verify(e, u1b, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "a revoked session verified");
    cr_expect_eq(sr_session_verify(e, u2, SR_ACTOR_USER, now, &s), SR_OK, "another user's session was revoked");
    cr_expect_eq(sr_session_verify(e, pa, SR_ACTOR_USER, now, &s), SR_OK);
    cr_expect_eq(sr_session_verify(e, ap, SR_ACTOR_APP, now, &s), SR_OK, "an app of the same id lost its session");

    /* a revoke_all that is not a user's is refused */
    sr_buf_init(&b);
    const sr_cmd_env appenv = {"op1", "APP1", SR_ACTOR_APP, NULL, NULL};
    cr_assert_eq(sr_cmd_user_sessions_revoke(&appenv, "", "x", &b), SR_OK);
    size_t len = b.len;
    sr_result r;
    cr_expect_eq(et_submit(e, &b, &len, 1, &r), SR_EINVAL, "a revocation without a user was stored");
    sr_buf_release(&b);

    /* restart (the index) and rebuild (the log): the same open sessions */
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(sr_engine_close(e), SR_OK);
        sr_engine_opts o = {.sync = SR_ENGINE_SYNC_NONE};
        sr_errinfo ei;
        if (pass) cr_assert_eq(sr_engine_rebuild(dir, &o, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
        cr_expect_eq(sr_session_verify(e, u2, SR_ACTOR_USER, now, &s), SR_OK, "pass %d", pass);
        cr_expect_str_eq(s.id, "bob");
        cr_expect_eq(sr_session_verify(e, pa, SR_ACTOR_USER, now, &s), SR_OK, "pass %d", pass);
        cr_expect_eq(sr_session_verify(e, ap, SR_ACTOR_APP, now, &s), SR_OK, "pass %d", pass);
        cr_expect_eq(sr_session_verify(e, u1a, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "pass %d", pass);
        cr_expect_eq(sr_session_verify(e, u1b, SR_ACTOR_USER, now, &s), SR_ENOTFOUND, "pass %d", pass);
        cr_expect_eq(open_sessions(e), 3, "pass %d", pass);
    }
    close_engine(e);
}

/* The Admin API's reads and builders (api/admin_http.c): every operator
 * across operators (and only operators' own entries), a registry entry
 * removed, the login policy of the platform and of an operator. */
Test(records, operators_list_registry_delete_and_login_policies)
{
    sr_engine *e = open_engine();
    sr_buf b;
    sr_buf_init(&b);
    static const char *const ops[] = {"opB", "opA", "opC"};
    for (size_t i = 0; i < 3; i++) {
        const sr_cmd_env env = {ops[i], "admin", SR_ACTOR_USER, NULL, NULL};
        sr_reg_entry o = {.kind = SR_RG_OPERATOR, .id = ops[i], .name = ops[i]};
        submit1(e, sr_cmd_registry_put(&env, &o, &b), &b);
        /* an operator's other entries are not operators */
        sr_reg_entry g = {.kind = SR_RG_GATEWAY, .id = ops[i], .name = "gw"};
        submit1(e, sr_cmd_registry_put(&env, &g, &b), &b);
    }
    sr_reg_entry v = {.kind = SR_RG_VENDOR, .id = "opZ", .name = "a vendor", .vendor_kind = "ap"};
    const sr_cmd_env plat = {"", "admin", SR_ACTOR_USER, NULL, NULL};
    submit1(e, sr_cmd_registry_put(&plat, &v, &b), &b);
    sr_rec r = SR_REC_INIT;
    sr_reg_entry x;
    cr_assert_eq(sr_list_operators(e, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 3);
    static const char *const want[] = {"opA", "opB", "opC"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(sr_rec_next_registry(&r, &x), 1);
        cr_assert_eq(x.kind, SR_RG_OPERATOR);
        cr_assert_str_eq(x.id, want[i]);
    }
    cr_assert_eq(sr_rec_next_registry(&r, &x), 0);
    /* removed: gone from the read and the list */
    const sr_cmd_env envb = {"opB", "admin", SR_ACTOR_USER, NULL, NULL};
    submit1(e, sr_cmd_registry_delete(&envb, SR_RG_OPERATOR, "opB", &b), &b);
    cr_assert_eq(sr_read_registry(e, "opB", SR_RG_OPERATOR, "opB", &r, &x), SR_ENOTFOUND);
    cr_assert_eq(sr_read_registry(e, "opB", SR_RG_GATEWAY, "opB", &r, &x), SR_OK, "only the entry named");
    cr_assert_eq(sr_list_operators(e, &r), SR_OK);
    cr_assert_eq(sr_rec_count(&r), 2);

    /* login policies: none set, then the platform's roles and an operator's requirement */
    sr_login_policy_rec p;
    cr_assert_eq(sr_read_login_policy(e, "", &r, &p), SR_ENOTFOUND);
    cr_assert_eq(sr_read_login_policy(e, "opA", &r, &p), SR_ENOTFOUND);
    static const char *const roles[] = {"operator_admin", "auditor"};
    const sr_login_policy_rec pp = {roles, 2, 0};
    submit1(e, sr_cmd_login_policy(&plat, &pp, &b), &b);
    const sr_cmd_env enva = {"opA", "admin", SR_ACTOR_USER, NULL, NULL};
    const sr_login_policy_rec op = {NULL, 0, 1};
    submit1(e, sr_cmd_login_policy(&enva, &op, &b), &b);
    cr_assert_eq(sr_read_login_policy(e, "", &r, &p), SR_OK);
    cr_assert_eq(p.n_totp_roles, 2);
    cr_assert_str_eq(p.totp_roles[0], "operator_admin");
    cr_assert_str_eq(p.totp_roles[1], "auditor");
    cr_assert_eq(p.totp_required, 0);
    cr_assert_eq(sr_read_login_policy(e, "opA", &r, &p), SR_OK);
    cr_assert_eq(p.totp_required, 1);
    cr_assert_eq(p.n_totp_roles, 0);
    cr_assert_eq(sr_read_login_policy(e, "opC", &r, &p), SR_ENOTFOUND);
    /* the engine refuses the other scope's member, a role that is none, one named twice */
    static const char *const bad1[] = {"king"}, *const bad2[] = {"auditor", "auditor"};
    const sr_login_policy_rec refused[] = {{bad1, 1, 0}, {bad2, 2, 0}, {NULL, 0, 1}};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(sr_cmd_login_policy(&plat, &refused[i], &b), SR_OK);
        size_t len = b.len;
        sr_result res;
        cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_EINVAL, "refused policy %zu", i);
        sr_buf_release(&b);
    }
    cr_assert_eq(sr_cmd_login_policy(&enva, &pp, &b), SR_OK);
    size_t len = b.len;
    sr_result res;
    cr_assert_eq(et_submit(e, &b, &len, 1, &res), SR_EINVAL, "an operator's policy names no roles");
    sr_buf_release(&b);
    /* the latest whole policy replaces the scope's */
    const sr_login_policy_rec none = {NULL, 0, 0};
    submit1(e, sr_cmd_login_policy(&plat, &none, &b), &b);
    cr_assert_eq(sr_read_login_policy(e, "", &r, &p), SR_OK);
    cr_assert_eq(p.n_totp_roles, 0);
    sr_rec_close(&r);
    close_engine(e);
}

/* sr_user_session_verify: a user's session and its user in one snapshot
 * (the Admin API's per-request check); expired told apart; an app's token,
 * an unknown one, or a session whose user does not exist: not found. */
Test(records, user_session_verify_reads_the_session_and_its_user)
{
    sr_engine *e = open_engine();
    const int64_t now = 1800000000000, later = 1900000000000;
    uint8_t h[32], ghost[32], app[32];
    for (int i = 0; i < 32; i++) h[i] = (uint8_t)i, ghost[i] = (uint8_t)(50 + i), app[i] = (uint8_t)(100 + i);
    sr_buf b;
    sr_buf_init(&b);
    static const char *const roles[] = {"operator_admin"};
    const sr_password_policy pol = {8, 128, 0};
    sr_user nu = {.id = "alice", .name = "Alice", .scope = SR_US_OPERATOR, .scope_id = "op1", .roles = roles, .n_roles = 1};
    char why[200];
    submit1(e, sr_cmd_user_create(&ENV, &nu, "a password", 1, now, &pol, &b, why, sizeof why), &b);
    user_login(e, "op1", "alice", h, later);
    user_login(e, "op1", "ghost", ghost, later); /* a session of no user */
    const sr_cmd_env appenv = {"op1", "alice", SR_ACTOR_APP, NULL, NULL};
    submit1(e, sr_cmd_token_session(&appenv, app, later, SR_SS_CONNECTED, "secret", &b), &b);
    sr_rec r = SR_REC_INIT;
    sr_session_rec s;
    sr_user u;
    int expired = -1;
    cr_assert_eq(sr_user_session_verify(e, h, now, &r, &s, &expired, &u), SR_OK);
    cr_expect_eq(expired, 0);
    cr_expect_str_eq(s.id, "alice");
    cr_expect_str_eq(u.id, "alice");
    cr_expect_str_eq(u.scope_id, "op1");
    cr_expect_eq(u.n_roles, 1);
    cr_expect_eq(sr_user_session_verify(e, h, later, &r, &s, &expired, &u), SR_ENOTFOUND);
    cr_expect_eq(expired, 1, "an expired session is told apart");
    cr_expect_eq(sr_user_session_verify(e, ghost, now, &r, &s, &expired, &u), SR_ENOTFOUND);
    cr_expect_eq(expired, 0);
    cr_expect_eq(sr_user_session_verify(e, app, now, &r, &s, &expired, &u), SR_ENOTFOUND, "an app's token");
    cr_expect_eq(expired, 0);
    sr_rec_close(&r);
    close_engine(e);
}

/* R-AP-17: the push marks (`pushq`): the highest stays, a lower one changes
 * nothing, the start mark has its own key, all of them listed, a mark with
 * an operator but no app is refused; and what the recovery reads of the log:
 * a monitor's measurements name the monitor, their values come back in the
 * event's order, an app-level outcome names its request. */
typedef struct marks_seen {
    int n;
    char rows[4][64];
} marks_seen;

static int mark_row(void *ctx, const char *op, const char *app, uint64_t through)
{
    marks_seen *m = ctx;
    if (m->n < 4) snprintf(m->rows[m->n], sizeof m->rows[0], "%s/%s=%llu", op, app, (unsigned long long)through);
    m->n++;
    return 0;
}

typedef struct log_seen {
    uint64_t meas_seq;
    int meas, outcome, n;
    double v[8];
} log_seen;

static int val_seen(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s)
{
    (void)point;
    log_seen *m = ctx;
    cr_assert_eq(type, SR_VT_NUMBER);
    if (m->n < 8) m->v[m->n] = s->v.f;
    m->n++;
    return 0;
}

static int event_seen(void *ctx, const sr_event_view *ev)
{
    log_seen *m = ctx;
    const char *req = sr_event_request_outcome(ev);
    if (req && !strcmp(req, "R1")) m->outcome++;
    if (!strcmp(sr_event_monitor_id(ev), "MON1")) {
        cr_assert_eq(ev->seq, m->meas_seq);
        m->meas++;
        cr_assert_eq(sr_event_each_value(ev, val_seen, m), SR_OK);
    }
    return 0;
}

Test(records, push_marks_keep_the_highest_and_the_log_says_what_was_pushed)
{
    sr_engine *e = open_engine();
    sr_buf b;
    sr_buf_init(&b);
    static const sr_cmd_env sys = {"op1", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    static const sr_cmd_env start = {"", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    uint64_t t = 0;
    cr_assert_eq(sr_engine_push_mark(e, "op1", "A1", &t), SR_ENOTFOUND);
    submit1(e, sr_cmd_push_mark(&sys, "A1", 40, &b), &b);
    submit1(e, sr_cmd_push_mark(&sys, "A1", 30, &b), &b); /* lower: nothing changes */
    cr_assert_eq(sr_engine_push_mark(e, "op1", "A1", &t), SR_OK);
    cr_assert_eq(t, 40, "a lower mark moved the mark back to %llu", (unsigned long long)t);
    submit1(e, sr_cmd_push_mark(&sys, "A1", 41, &b), &b);
    submit1(e, sr_cmd_push_mark(&start, "", 7, &b), &b);
    cr_assert_eq(sr_engine_push_mark(e, "op1", "A1", &t), SR_OK);
    cr_assert_eq(t, 41);
    cr_assert_eq(sr_engine_push_mark(e, "", "", &t), SR_OK);
    cr_assert_eq(t, 7);
    marks_seen ms = {0};
    cr_assert_eq(sr_engine_push_marks(e, mark_row, &ms), SR_OK);
    cr_assert_eq(ms.n, 2);
    cr_assert_str_eq(ms.rows[0], "/=7");
    cr_assert_str_eq(ms.rows[1], "op1/A1=41");
    sr_result r;
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_push_mark(&sys, "", 9, &b), &b, &r), SR_EINVAL,
                 "an operator's mark without an app");
    cr_assert(strstr(r.err.msg, "push mark"), "%s", r.err.msg);

    /* the log: a monitor's measurements and an app-level outcome */
    uint32_t pt;
    static const sr_vtype num[] = {SR_VT_NUMBER};
    cr_assert_eq(et_setup_masters(e, "op1", 1, num, 1), SR_OK);
    cr_assert_eq(sr_engine_point(e, "op1", "P000", &pt, NULL), SR_OK);
    sr_sample s[3] = {{.ts = 3000, .v.f = 3.5}, {.ts = 1000, .v.f = 1.5}, {.ts = 2000, .v.f = 2.5}};
    sr_pv_in in = {pt, SR_VT_NUMBER, s, 3};
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_ev_monitor_measurements("op1", "APP1", SR_ACTOR_APP, "m1", "MON1", &in, 1, &b), &b,
                            &r),
                 SR_OK, "%s", r.err.msg);
    log_seen ls = {.meas_seq = r.seq};
    sr_request_transition rt = {.request_id = "R1", .state = SR_RS_SUCCEEDED};
    submit1(e, sr_cmd_request_transition(&sys, &rt, &b), &b);
    rt.gateway_id = "GW1"; /* a gateway's part: not an app-level outcome */
    submit1(e, sr_cmd_request_transition(&sys, &rt, &b), &b);
    uint64_t last = 0;
    cr_assert_eq(sr_engine_log_each(e, 1, event_seen, &ls, &last), SR_OK);
    cr_assert_eq(ls.meas, 1, "the monitor's measurements were not read back");
    cr_assert_eq(ls.outcome, 1, "the app-level outcome, once");
    cr_assert_eq(ls.n, 3);
    cr_assert(ls.v[0] == 1.5 && ls.v[1] == 2.5 && ls.v[2] == 3.5, "values not in the event's (time) order");
    cr_assert_geq(last, ls.meas_seq + 2);
    sr_buf_release(&b);
    close_engine(e);
}

/* Issue #17 (api/notify.c): the notifier's state (`notifyq`). A delivered or
 * given-up delivery is a row above the mark; the mark keeps the highest and
 * deletes the rows at or below it; an outcome at or below the mark stores
 * nothing; a malformed NotifyEvent is refused naming it. A notification
 * target (SR_RG_NOTIFY) round-trips through the registry; one that is not a
 * URL or mailto:, or of no level, is refused. An alarm step reads back from
 * the log (sr_event_alarm). */
static int alarm_seen(void *ctx, const sr_event_view *ev)
{
    sr_alarm_view *a = ctx;
    sr_alarm_view v;
    if (sr_event_alarm(ev, &v) == SR_OK) *a = v, a->alarm_id = "seen"; /* the strings die with the view */
    return 0;
}

Test(records, notify_outcomes_and_the_mark)
{
    sr_engine *e = open_engine();
    sr_buf b;
    sr_buf_init(&b);
    static const sr_cmd_env op = {"op1", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    static const sr_cmd_env plat = {"", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    uint64_t t = 0;
    int oc;
    uint32_t att;
    cr_assert_eq(sr_engine_notify_mark(e, &t), SR_ENOTFOUND);
    sr_notify_rec d1 = {"delivered", 50, "T1", "50-T1", "", "webhook", 3, 0};
    sr_notify_rec g2 = {"given_up", 60, "T2", "60-T2", "the domain x is not allowed", "mail", 1, 0};
    sr_notify_rec d3 = {"delivered", 70, "T1", "70-T1", "", "webhook", 1, 0};
    submit1(e, sr_cmd_notify(&op, &d1, &b), &b);
    submit1(e, sr_cmd_notify(&op, &g2, &b), &b);
    submit1(e, sr_cmd_notify(&op, &d3, &b), &b);
    cr_assert_eq(sr_engine_notify_done(e, 50, "op1", "T1", &oc, &att), SR_OK);
    cr_assert(oc == SR_NOTIFY_DELIVERED && att == 3);
    cr_assert_eq(sr_engine_notify_done(e, 60, "op1", "T2", &oc, &att), SR_OK);
    cr_assert(oc == SR_NOTIFY_GIVEN_UP && att == 1);
    cr_assert_eq(sr_engine_notify_done(e, 50, "op1", "T2", &oc, &att), SR_ENOTFOUND, "another target's");
    cr_assert_eq(sr_engine_notify_done(e, 50, "op2", "T1", &oc, &att), SR_ENOTFOUND, "another operator's");
    sr_notify_rec m = {"mark", 0, "", "", "", "", 0, 60};
    submit1(e, sr_cmd_notify(&plat, &m, &b), &b);
    cr_assert_eq(sr_engine_notify_mark(e, &t), SR_OK);
    cr_assert_eq(t, 60);
    cr_assert_eq(sr_engine_notify_done(e, 50, "op1", "T1", &oc, &att), SR_ENOTFOUND, "a row at or below the mark goes");
    cr_assert_eq(sr_engine_notify_done(e, 60, "op1", "T2", &oc, &att), SR_ENOTFOUND, "the mark's own seq too");
    cr_assert_eq(sr_engine_notify_done(e, 70, "op1", "T1", &oc, &att), SR_OK, "above the mark: kept");
    m.through = 40; /* lower: nothing changes */
    submit1(e, sr_cmd_notify(&plat, &m, &b), &b);
    cr_assert_eq(sr_engine_notify_mark(e, &t), SR_OK);
    cr_assert_eq(t, 60, "a lower mark moved it back to %llu", (unsigned long long)t);
    sr_notify_rec old = {"delivered", 55, "T9", "55-T9", "", "webhook", 1, 0};
    submit1(e, sr_cmd_notify(&op, &old, &b), &b);
    cr_assert_eq(sr_engine_notify_done(e, 55, "op1", "T9", &oc, &att), SR_ENOTFOUND, "under the mark: not stored");
    sr_result r;
    sr_notify_rec bad = {"sent", 80, "T1", "80-T1", "", "webhook", 1, 0};
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_notify(&op, &bad, &b), &b, &r), SR_EINVAL, "an outcome of no kind");
    cr_assert(strstr(r.err.msg, "notify"), "%s", r.err.msg);
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_notify(&op, &m, &b), &b, &r), SR_EINVAL, "an operator's mark");
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_notify(&plat, &d3, &b), &b, &r), SR_EINVAL, "an outcome of no operator");

    /* targets */
    sr_reg_entry tg = {.kind = SR_RG_NOTIFY, .id = "ops", .name = "当番", .url = "mailto:ops@water.example.jp",
                       .access = "minor"};
    submit1(e, sr_cmd_registry_put(&ENV, &tg, &b), &b);
    sr_rec rr = SR_REC_INIT;
    sr_reg_entry out;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_NOTIFY, "ops", &rr, &out), SR_OK);
    cr_assert_str_eq(out.url, "mailto:ops@water.example.jp");
    cr_assert_str_eq(out.access, "minor");
    cr_assert_str_eq(out.name, "当番");
    sr_rec_close(&rr);
    sr_reg_entry bad1 = tg, bad2 = tg;
    bad1.url = "ftp://x";
    bad2.access = "critical";
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&ENV, &bad1, &b), &b, &r), SR_EINVAL, "not a URL nor mailto:");
    cr_assert(strstr(r.err.msg, "notify target ops"), "%s", r.err.msg);
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&ENV, &bad2, &b), &b, &r), SR_EINVAL, "no such level");

    /* an alarm step reads back from the log */
    b.len = 0;
    const sr_alarm_step st = {.state = "raised", .rule = "disk-free", .level = SR_AL_MAJOR, .source = "disk",
                              .message = "disk free below 5%"};
    submit1(e, sr_cmd_alarm(&op, &st, &b), &b);
    sr_alarm_view a = {0};
    uint64_t last;
    cr_assert_eq(sr_engine_log_each(e, 1, alarm_seen, &a, &last), SR_OK);
    cr_assert_str_eq(a.alarm_id, "seen");
    cr_assert_eq(a.level, SR_AL_MAJOR);
    sr_buf_release(&b);
    close_engine(e);
}

/* R-MO-1 (api/alive.h): an AliveEvent round-trips every field through the
 * `alive` index (since_ms and seq from its envelope), the latest one per
 * principal; lists of one operator and of all; a refused one stores nothing. */
Test(records, alive_status_round_trips_and_keeps_the_latest)
{
    sr_engine *e = open_engine();
    sr_buf b;
    sr_buf_init(&b);
    static const sr_cmd_env gw = {"op1", "GW1", SR_ACTOR_GATEWAY, NULL, "127.0.0.1:5000"};
    static const sr_cmd_env sys = {"op1", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    static const sr_cmd_env app = {"op2", "A1", SR_ACTOR_APP, NULL, "10.0.0.1:80"};
    sr_alive_rec on = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = SR_AS_ONLINE, .reason = SR_AR_CONNECT,
                       .binding = "mqtts", .remote = "127.0.0.1:5000", .will = ""};
    submit1(e, sr_cmd_alive(&gw, &on, &b), &b);
    sr_alive_rec off = on;
    off.state = SR_AS_OFFLINE;
    off.reason = SR_AR_WILL;
    off.will = "applied";
    sr_result r;
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_alive(&sys, &off, &b), &b, &r), SR_OK, "%s", r.err.msg);
    uint64_t off_seq = r.seq;
    sr_alive_rec ap = {.kind = SR_ACTOR_APP, .id = "A1", .state = SR_AS_ONLINE, .reason = SR_AR_CONNECT,
                       .binding = "https", .remote = "10.0.0.1:80", .will = ""};
    submit1(e, sr_cmd_alive(&app, &ap, &b), &b);
    sr_rec rec = SR_REC_INIT;
    cr_assert_eq(sr_list_alive(e, "op1", &rec), SR_OK);
    cr_assert_eq(sr_rec_count(&rec), 1, "one row per principal: the latest");
    sr_alive_rec a;
    cr_assert_eq(sr_rec_next_alive(&rec, &a), 1);
    cr_assert_str_eq(a.op, "op1");
    cr_assert_eq(a.kind, SR_ACTOR_GATEWAY);
    cr_assert_str_eq(a.id, "GW1");
    cr_assert_eq(a.state, SR_AS_OFFLINE);
    cr_assert_eq(a.reason, SR_AR_WILL);
    cr_assert_str_eq(a.binding, "mqtts");
    cr_assert_str_eq(a.remote, "127.0.0.1:5000");
    cr_assert_str_eq(a.will, "applied");
    cr_assert_eq(a.seq, off_seq);
    cr_assert_gt(a.since_ms, 0);
    cr_assert_str_eq(sr_alive_reason_name((int)a.reason), "will");
    cr_assert_null(sr_alive_reason_name(0));
    cr_assert_eq(sr_rec_next_alive(&rec, &a), 0);
    cr_assert_eq(sr_list_alive(e, NULL, &rec), SR_OK);
    cr_assert_eq(sr_rec_count(&rec), 2, "every operator's");
    cr_assert_eq(sr_rec_next_alive(&rec, &a), 1);
    cr_assert_eq(sr_rec_next_alive(&rec, &a), 1);
    cr_assert_str_eq(a.op, "op2");
    cr_assert_eq(a.kind, SR_ACTOR_APP);
    cr_assert_str_eq(a.binding, "https");
    /* refused: a user is no principal of the alive status; no reason; no operator */
    sr_alive_rec bad = on;
    bad.kind = SR_ACTOR_USER;
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_alive(&gw, &bad, &b), &b, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "alive"), "%s", r.err.msg);
    bad = on;
    bad.reason = 0;
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_alive(&gw, &bad, &b), &b, &r), SR_EINVAL);
    static const sr_cmd_env noop = {"", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    b.len = 0;
    cr_assert_eq(es_submit1(e, sr_cmd_alive(&noop, &on, &b), &b, &r), SR_EINVAL);
    cr_assert_eq(sr_list_alive(e, NULL, &rec), SR_OK);
    cr_assert_eq(sr_rec_count(&rec), 2, "a refused event stores nothing");
    /* a gateway deleted from the registry takes its alive row along (no
     * status, no gateway-offline alarm for what is not there); the other
     * operator's app keeps its own */
    static const sr_cmd_env adm = {"op1", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    submit1(e, sr_cmd_registry_delete(&adm, SR_RG_GATEWAY, "GW1", &b), &b);
    cr_assert_eq(sr_list_alive(e, "op1", &rec), SR_OK);
    cr_assert_eq(sr_rec_count(&rec), 0, "GW1's alive row after its deletion");
    cr_assert_eq(sr_list_alive(e, NULL, &rec), SR_OK);
    cr_assert_eq(sr_rec_count(&rec), 1, "op2's app stays");
    sr_rec_close(&rec);
    sr_buf_release(&b);
    close_engine(e);
}
