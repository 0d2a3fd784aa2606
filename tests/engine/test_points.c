/* tests/engine/test_points.c -- the point table (engine/points.c): it stays
 * the index's pointinfo and points across master put / delete / re-put, a
 * refused command, a command that changes a master and sends values, a
 * restart and a rebuild; the writer's check and the loop's lookup read it,
 * for more points than the old 1,024-entry cache; and the latest row,
 * written once per group, is what it was when it was rewritten per event
 * (a refused command's values stay out of it; across the two forms the
 * later value wins; a failed group's are forgotten). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_int.h"
#include "engtest.h"
#include "fault_alloc.h"
#include "testutil.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir("points"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}
TestSuite(points, .init = setup, .fini = teardown, .timeout = 300);

static int64_t fixed_clock(void) { return 1700000000000; }
static const sr_vtype NUM[] = {SR_VT_NUMBER};

static sr_engine *open_engine(void)
{
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 64};
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(dir, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s: %s", sr_err_name(rc), ei.msg);
    return e;
}

/* the table equals the committed index (points.c invariants 1-3) */
static void table_exact(sr_engine *e)
{
    const char *why = sr_points_check(e);
    cr_assert_null(why, "%s", why);
    why = sr_points_check_index(e);
    cr_assert_null(why, "%s", why);
}

/* events into one command */
typedef struct cmdb {
    sr_buf b;
    size_t lens[8], n;
} cmdb;

static void add_ev(cmdb *c, Suiro__V1__Event *ev)
{
    size_t before = c->b.len;
    cr_assert_eq(sr_ev_pack(ev, "op1", "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, NULL, &c->b), SR_OK);
    c->lens[c->n++] = c->b.len - before;
}

static void add_point(cmdb *c, const char *id, const char *device, double max)
{
    Suiro__V1__MasterPut p = SUIRO__V1__MASTER_PUT__INIT;
    p.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    p.id = (char *)id;
    p.parent_id = (char *)device;
    p.type = SUIRO__V1__VALUE_TYPE__VT_NUMBER;
    p.point_kind = SUIRO__V1__POINT_KIND__PK_MEASURE;
    p.has_max = 1;
    p.max = max;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = &p;
    add_ev(c, &ev);
}

static void add_delete(cmdb *c, const char *id)
{
    Suiro__V1__MasterDelete d = SUIRO__V1__MASTER_DELETE__INIT;
    d.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
    d.id = (char *)id;
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_DELETE;
    ev.master_delete = &d;
    add_ev(c, &ev);
}

static void add_value(cmdb *c, const char *gw, uint32_t point, int64_t ts, double v)
{
    sr_sample s = {.ts = ts, .quality = SR_Q_GOOD, .v.f = v};
    sr_pv_in in = {point, SR_VT_NUMBER, &s, 1};
    size_t before = c->b.len;
    cr_assert_eq(sr_ev_measurements("op1", gw, SR_ACTOR_GATEWAY, NULL, &in, 1, &c->b), SR_OK);
    c->lens[c->n++] = c->b.len - before;
}

static int run(sr_engine *e, cmdb *c, sr_result *r)
{
    int rc = et_submit(e, &c->b, c->lens, c->n, r);
    c->b.len = 0;
    c->n = 0;
    return rc;
}

static int put1(sr_engine *e, const char *gw, uint32_t point, int64_t ts, double v, sr_result *r)
{
    sr_sample s = {.ts = ts, .quality = SR_Q_GOOD, .v.f = v};
    return et_put(e, "op1", gw, point, SR_VT_NUMBER, &s, 1, NULL, r);
}

static sr_point_info info(sr_engine *e, const char *id)
{
    sr_point_info i;
    memset(&i, 0, sizeof i);
    int rc = sr_engine_point_info(e, "op1", id, &i);
    cr_assert_eq(rc, SR_OK, "%s: %s", id, sr_err_name(rc));
    return i;
}

/* put, a change of gateway and range, delete, re-put: the table follows,
 * and the writer checks values against the master of the moment */
Test(points, follows_put_delete_reput)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 4, NUM, 1), SR_OK);
    table_exact(e);
    sr_point_info a = info(e, "P000");
    cr_assert_str_eq(a.gateway, "GW1");
    sr_result r;
    cr_assert_eq(put1(e, "GW1", a.point, 1000, 7, &r), SR_OK, "%s", r.err.msg);
    /* P000 moves to GW2's device with max 5: a later group checks against that */
    cmdb c = {0};
    sr_buf_init(&c.b);
    add_point(&c, "P000", "D-GW2", 5);
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    table_exact(e);
    sr_point_info b = info(e, "P000");
    cr_assert_eq(b.point, a.point);
    cr_assert_str_eq(b.gateway, "GW2");
    cr_assert(b.has_max && b.max == 5);
    cr_assert_eq(put1(e, "GW1", a.point, 2000, 1, &r), SR_EINVAL, "the old gateway is refused");
    cr_assert(strstr(r.err.msg, "not reached through gateway GW1"), "%s", r.err.msg);
    cr_assert_eq(r.range, 0, "another refusal is not the range's");
    cr_assert_eq(put1(e, "GW2", a.point, 2000, 9, &r), SR_EINVAL, "above the new maximum");
    cr_assert(strstr(r.err.msg, "above the maximum 5"), "%s", r.err.msg);
    /* the range's refusal names its point (the alarm rule value-out-of-range, api/alarms.c) */
    cr_assert(r.range == 1 && r.point == a.point && !strcmp(r.err.where, "P000"), "range %d point %u where %s", r.range,
              r.point, r.err.where);
    cr_assert_eq(put1(e, "GW2", a.point, 2000, 4, &r), SR_OK, "%s", r.err.msg);
    /* deleted: not found by the loop; its number keeps its entry */
    add_delete(&c, "P000");
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    table_exact(e);
    sr_point_info x;
    cr_assert_eq(sr_engine_point_info(e, "op1", "P000", &x), SR_ENOTFOUND);
    cr_assert_eq(info(e, "P001").point, a.point + 1, "the others stay");
    /* listed again: the same number, back in the map, the new master */
    add_point(&c, "P000", "D-GW1", 100);
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    table_exact(e);
    b = info(e, "P000");
    cr_assert_eq(b.point, a.point);
    cr_assert_str_eq(b.gateway, "GW1");
    cr_assert_eq(put1(e, "GW1", a.point, 3000, 50, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(put1(e, "GW2", a.point, 3000, 50, &r), SR_EINVAL);
    sr_buf_release(&c.b);
    sr_engine_close(e);
}

/* a refused command's master change is aborted with its nested transaction:
 * it never reaches the table */
Test(points, refused_command_changes_nothing)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point;
    cmdb c = {0};
    sr_buf_init(&c.b);
    add_point(&c, "P000", "D-GW2", 5);   /* applied in the nested txn... */
    add_point(&c, "PNEW", "D-GW1", 5);
    add_value(&c, "GW1", p + 100, 1000, 1); /* ...then refused: an unknown point */
    sr_result r;
    cr_assert_eq(run(e, &c, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "unknown data point"), "%s", r.err.msg);
    table_exact(e);
    sr_point_info a = info(e, "P000");
    cr_assert_str_eq(a.gateway, "GW1");
    cr_assert(a.has_max && a.max == 1e9);
    sr_point_info x;
    cr_assert_eq(sr_engine_point_info(e, "op1", "PNEW", &x), SR_ENOTFOUND);
    cr_assert_eq(put1(e, "GW1", p, 1000, 7, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(put1(e, "GW2", p, 2000, 1, &r), SR_EINVAL);
    sr_buf_release(&c.b);
    sr_engine_close(e);
}

/* a command that changes a master and then sends values: they are checked
 * against the master as the command's transaction has it, not the table's */
Test(points, master_change_and_values_in_one_group)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point;
    cmdb c = {0};
    sr_buf_init(&c.b);
    add_point(&c, "P000", "D-GW2", 5);
    add_value(&c, "GW2", p, 1000, 4);
    sr_result r;
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    /* and the other way: the old gateway, or the old range, are refused */
    add_point(&c, "P000", "D-GW1", 3);
    add_value(&c, "GW2", p, 2000, 1);
    cr_assert_eq(run(e, &c, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "not reached through gateway GW2"), "%s", r.err.msg);
    add_point(&c, "P000", "D-GW1", 3);
    add_value(&c, "GW1", p, 2000, 4);
    cr_assert_eq(run(e, &c, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "above the maximum 3"), "%s", r.err.msg);
    /* a point made and written to in one command */
    add_point(&c, "PNEW", "D-GW1", 10);
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    uint32_t np = r.point;
    add_delete(&c, "PNEW");
    add_point(&c, "PNEW", "D-GW2", 10);
    add_value(&c, "GW2", np, 1000, 2);
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    table_exact(e);
    cr_assert_str_eq(info(e, "PNEW").gateway, "GW2");
    cr_assert_str_eq(info(e, "P000").gateway, "GW2");
    sr_buf_release(&c.b);
    sr_engine_close(e);
}

/* restart and rebuild load the table from the index as it is */
Test(points, restart_and_rebuild)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 6, NUM, 1), SR_OK);
    cmdb c = {0};
    sr_buf_init(&c.b);
    add_point(&c, "P000", "D-GW2", 5);
    add_delete(&c, "P001");
    sr_result r;
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    uint32_t p = info(e, "P000").point;
    sr_engine_close(e);
    for (int round = 0; round < 2; round++) {
        if (round) {
            sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 64};
            sr_errinfo ei;
            cr_assert_eq(sr_engine_rebuild(dir, &o, &ei), SR_OK, "%s", ei.msg);
        }
        e = open_engine();
        table_exact(e);
        sr_point_info a = info(e, "P000");
        cr_assert_eq(a.point, p);
        cr_assert_str_eq(a.gateway, "GW2");
        cr_assert(a.has_max && a.max == 5);
        sr_point_info x;
        cr_assert_eq(sr_engine_point_info(e, "op1", "P001", &x), SR_ENOTFOUND);
        cr_assert_eq(put1(e, "GW1", p, 1000 + round, 1, &r), SR_EINVAL);
        cr_assert_eq(put1(e, "GW2", p, 1000 + round, 1, &r), SR_OK, "%s", r.err.msg);
        sr_engine_close(e);
    }
    sr_buf_release(&c.b);
}

/* 5,000 points (the old cache held 1,024): every one is found, with its
 * own number and gateway, and a snapshot of all of them is accepted */
Test(points, five_thousand_points)
{
    enum { N = 5000 };
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", N, NUM, 1), SR_OK);
    table_exact(e);
    static uint32_t pn[N];
    char id[16];
    for (int round = 0; round < 2; round++) /* the second: every answer again */
        for (int i = 0; i < N; i++) {
            snprintf(id, sizeof id, "P%03d", i);
            sr_point_info a = info(e, id);
            cr_assert_str_eq(a.gateway, i % 2 ? "GW2" : "GW1");
            if (!round) pn[i] = a.point;
            cr_assert_eq(a.point, pn[i]);
            for (int j = 0; !round && j < i; j += 997) cr_assert_neq(pn[j], a.point);
        }
    sr_point_info x;
    cr_assert_eq(sr_engine_point_info(e, "op1", "P5000", &x), SR_ENOTFOUND);
    cr_assert_eq(sr_engine_point_info(e, "op2", "P000", &x), SR_ENOTFOUND);
    /* one snapshot of GW1's 2,500 points at one timestamp */
    static sr_sample s[N / 2];
    static sr_pv_in in[N / 2];
    for (int i = 0; i < N / 2; i++) {
        s[i] = (sr_sample){.ts = 5000, .quality = SR_Q_GOOD, .v.f = i / 100.0};
        in[i] = (sr_pv_in){pn[2 * i], SR_VT_NUMBER, &s[i], 1};
    }
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_ev_measurements("op1", "GW1", SR_ACTOR_GATEWAY, NULL, in, N / 2, &b), SR_OK);
    size_t len = b.len;
    sr_result r;
    cr_assert_eq(et_submit(e, &b, &len, 1, &r), SR_OK, "%s", r.err.msg);
    sr_sample out[3];
    int found[3];
    uint32_t q[3] = {pn[0], pn[2 * 1234], pn[1]};
    cr_assert_eq(sr_engine_latest(e, q, 3, out, found, NULL), SR_OK);
    cr_assert(found[0] && found[1] && !found[2]);
    cr_assert(out[1].ts == 5000 && out[1].v.f == 1234 / 100.0);
    /* a second operator with the same dataIds: its own points */
    cr_assert_eq(et_setup_masters(e, "op2", 3, NUM, 1), SR_OK);
    cr_assert_eq(sr_engine_point_info(e, "op2", "P000", &x), SR_OK);
    cr_assert_neq(x.point, pn[0]);
    table_exact(e);
    sr_buf_release(&b);
    sr_engine_close(e);
}

/* the latest row, now written once per group: the newest ts wins, an equal
 * ts the later value, an older value leaves it, within one command (one
 * group) and across groups and a restart */
Test(points, latest_once_per_group)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point, p1 = info(e, "P001").point;
    cmdb c = {0};
    sr_buf_init(&c.b);
    add_value(&c, "GW1", p, 2000, 1);
    add_value(&c, "GW1", p, 1000, 2); /* older: not the latest */
    add_value(&c, "GW1", p, 2000, 3); /* equal: the later wins */
    add_value(&c, "GW2", p1, 500, 4);
    sr_result r;
    cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    uint32_t q[2] = {p, p1};
    sr_sample out[2];
    int found[2];
    cr_assert_eq(sr_engine_latest(e, q, 2, out, found, NULL), SR_OK);
    cr_assert(found[0] && out[0].ts == 2000 && out[0].v.f == 3, "%" PRId64 " %g", out[0].ts, out[0].v.f);
    cr_assert(found[1] && out[1].ts == 500 && out[1].v.f == 4);
    cr_assert_eq(put1(e, "GW1", p, 1500, 5, &r), SR_OK); /* late: stays */
    cr_assert_eq(put1(e, "GW2", p1, 600, 6, &r), SR_OK);
    sr_engine_close(e);
    e = open_engine();
    cr_assert_eq(put1(e, "GW1", p, 1999, 7, &r), SR_OK); /* after a restart: the row is read once */
    cr_assert_eq(sr_engine_latest(e, q, 2, out, found, NULL), SR_OK);
    cr_assert(out[0].ts == 2000 && out[0].v.f == 3);
    cr_assert(out[1].ts == 600 && out[1].v.f == 6);
    cr_assert_eq(put1(e, "GW1", p, 2000, 8, &r), SR_OK);
    cr_assert_eq(sr_engine_latest(e, q, 1, out, found, NULL), SR_OK);
    cr_assert(out[0].ts == 2000 && out[0].v.f == 8);
    sr_buf_release(&c.b);
    sr_engine_close(e);
}

static atomic_int ndone;
static int done_rc[2];
static void on_done(void *ctx, const sr_result *r)
{
    done_rc[(intptr_t)ctx] = r->rc;
    atomic_fetch_add(&ndone, 1);
}

static sr_sample latest_of(sr_engine *e, uint32_t p)
{
    sr_sample out;
    int found = 0;
    cr_assert_eq(sr_engine_latest(e, &p, 1, &out, &found, NULL), SR_OK);
    cr_assert(found, "point %u has no latest value", p);
    return out;
}

/* a refused command's values stay out of the latest rows (and out of the
 * heads' lts), also one for a known point, newer than its latest, and also
 * when the writer groups the command with an accepted one (submitted back
 * to back; the outcome is the same either way) */
Test(points, refused_command_values_stay_out_of_latest)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point, p1 = info(e, "P001").point;
    sr_result r;
    cr_assert_eq(put1(e, "GW1", p, 1000, 1, &r), SR_OK, "%s", r.err.msg);
    cmdb bad = {0}, good = {0};
    sr_buf_init(&bad.b);
    sr_buf_init(&good.b);
    add_value(&bad, "GW1", p, 5000, 5);        /* newer than p's latest... */
    add_value(&bad, "GW1", p + 100, 6000, 6);  /* ...in a command refused: an unknown point */
    add_value(&good, "GW2", p1, 7000, 7);
    cmdb *cs[2] = {&bad, &good};
    atomic_store(&ndone, 0);
    for (intptr_t i = 0; i < 2; i++) {
        sr_slice sl[8];
        for (size_t v = 0, pos = 0; v < cs[i]->n; pos += cs[i]->lens[v], v++)
            sl[v] = (sr_slice){cs[i]->b.data + pos, cs[i]->lens[v]};
        cr_assert_eq(sr_engine_submit(e, sl, cs[i]->n, on_done, (void *)i), SR_OK);
    }
    for (int i = 0; i < 20000 && atomic_load(&ndone) < 2; i++) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    cr_assert_eq(atomic_load(&ndone), 2);
    cr_assert_eq(done_rc[0], SR_EINVAL);
    cr_assert_eq(done_rc[1], SR_OK);
    sr_sample l = latest_of(e, p);
    cr_assert(l.ts == 1000 && l.v.f == 1, "the refused value is the latest: %" PRId64, l.ts);
    cr_assert_eq(latest_of(e, p1).ts, 7000);
    cr_assert_eq(put1(e, "GW1", p, 3000, 3, &r), SR_OK, "%s", r.err.msg); /* newer than 1000, older than 5000 */
    l = latest_of(e, p);
    cr_assert(l.ts == 3000 && l.v.f == 3, "latest at %" PRId64, l.ts);
    sr_buf_release(&bad.b);
    sr_buf_release(&good.b);
    sr_engine_close(e);
}

/* A point's value in a Snapshot entry and in a PointValues at the same
 * timestamp: the later given is the latest row, whichever form comes
 * first: in one event (k 0, 1: the builder puts a point given after its
 * PointValues in no snapshot entry, so the snapshot holds the others) and
 * in two events of one command (k 2, 3). */
Test(points, latest_across_the_two_forms_the_later_wins)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 5, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point, q[2] = {info(e, "P002").point, info(e, "P004").point}; /* GW1's */
    for (int k = 0; k < 4; k++) {
        int64_t t = 10000 * (k + 1);
        int snap_first = k % 2 == 0;
        double first = 10 * k + 1, later = 10 * k + 2;
        /* p's value in the snapshot form (with q's), and alone or ending a series */
        sr_sample sv = {.ts = t, .v.f = snap_first ? first : later}, other = {.ts = t, .v.f = 99};
        sr_sample pv[2] = {{.ts = t - 500, .v.f = 0}, {.ts = t, .v.f = snap_first ? later : first}};
        sr_pv_in snap[3] = {{p, SR_VT_NUMBER, &sv, 1}, {q[0], SR_VT_NUMBER, &other, 1}, {q[1], SR_VT_NUMBER, &other, 1}};
        sr_pv_in series = {p, SR_VT_NUMBER, pv, 2};
        cmdb c = {0};
        sr_buf_init(&c.b);
        if (k < 2) {
            sr_pv_in in[4] = {snap[0], snap[1], snap[2], series};
            if (!snap_first) in[0] = series, in[3] = snap[0];
            cr_assert_eq(sr_ev_measurements("op1", "GW1", SR_ACTOR_GATEWAY, NULL, in, 4, &c.b), SR_OK);
            c.lens[c.n++] = c.b.len;
            Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, c.b.len, c.b.data);
            cr_assert(ev && ev->measurements && ev->measurements->snapshot, "k %d: no snapshot", k);
            cr_assert_eq(ev->measurements->snapshot->n_dpoint, snap_first ? 3 : 2, "k %d", k);
            suiro__v1__event__free_unpacked(ev, NULL);
        } else {
            for (int j = 0; j < 2; j++) {
                size_t before = c.b.len;
                if ((j == 0) == snap_first)
                    cr_assert_eq(sr_ev_measurements("op1", "GW1", SR_ACTOR_GATEWAY, NULL, snap, 3, &c.b), SR_OK);
                else
                    cr_assert_eq(sr_ev_measurements("op1", "GW1", SR_ACTOR_GATEWAY, NULL, &series, 1, &c.b), SR_OK);
                c.lens[c.n++] = c.b.len - before;
            }
        }
        sr_result r;
        cr_assert_eq(run(e, &c, &r), SR_OK, "k %d: %s", k, r.err.msg);
        sr_sample l = latest_of(e, p);
        cr_assert(l.ts == t && l.v.f == later, "k %d: latest %" PRId64 " %g, not %g", k, l.ts, l.v.f, later);
        sr_buf_release(&c.b);
    }
    sr_engine_close(e);
}

/* 10^|scale| from the table is pow()'s, bit for bit */
Test(points, pow10_table_is_pow)
{
    for (int32_t k = -400; k <= 400; k++) {
        double a = sr_pow10_abs(k), b = pow(10.0, fabs((double)k));
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "10^%d", k);
    }
    double a = sr_pow10_abs(INT32_MIN), b = pow(10.0, fabs((double)INT32_MIN));
    cr_assert(memcmp(&a, &b, sizeof a) == 0);
}

/* each invariant of the table, broken on purpose, is named by its check */
Test(points, check_names_each_broken_invariant)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 40, NUM, 1), SR_OK);
    table_exact(e);
    sr_points *pt = e->pt;
    uint32_t p = info(e, "P007").point;
    const char *why;
    /* (1) the hash */
    pt->ent[p].hash ^= 1;
    why = sr_points_check(e);
    cr_assert(why && strstr(why, "hash"), "%s", why ? why : "(none)");
    pt->ent[p].hash ^= 1;
    /* (2) the map: the count, a listed entry missing from it */
    pt->ent[p].listed = 0;
    why = sr_points_check(e);
    cr_assert(why && strstr(why, "nlisted"), "%s", why ? why : "(none)");
    pt->ent[p].listed = 1;
    uint32_t i = 0;
    while (pt->slot[i] != p) i++;
    pt->slot[i] = 0;
    why = sr_points_check(e);
    cr_assert(why && strstr(why, "not in the map"), "%s", why ? why : "(none)");
    pt->slot[i] = p;
    cr_assert_null(sr_points_check(e));
    /* (3) against the index: a range the index does not have */
    pt->ent[p].max = 1;
    why = sr_points_check_index(e);
    cr_assert(why && strstr(why, "range"), "%s", why ? why : "(none)");
    pt->ent[p].max = 1e9;
    table_exact(e);
    /* heads.c (10): a pending latest row that is not the newest sample */
    sr_result r;
    cr_assert_eq(put1(e, "GW2", p, 1000, 1, &r), SR_OK, "%s", r.err.msg);
    head *h = head_find(e, p);
    cr_assert_not_null(h);
    cr_assert_null(sr_head_check(e, h, 0));
    cr_assert(h->lts_known && h->lts == 1000 && !h->lpend, "the row is written at the group's end");
    h->lpend = 1;
    h->lsample.ts = 999;
    why = sr_head_check(e, h, 0);
    cr_assert(why && strstr(why, "pending latest"), "%s", why ? why : "(none)");
    h->lsample.ts = 1000;
    why = sr_head_check(e, h, 0);
    cr_assert(why && strstr(why, "not listed"), "%s", why ? why : "(none)");
    h->lpend = 0;
    h->llisted = 1; /* e->nlpend is 0: its transaction ended */
    why = sr_head_check(e, h, 0);
    cr_assert(why && strstr(why, "transaction that ended"), "%s", why ? why : "(none)");
    h->llisted = 0;
    cr_assert_null(sr_head_check(e, h, 0));
    sr_engine_close(e);
}

static void quiet(void *ctx, int error, const char *msg)
{
    (void)ctx;
    (void)error;
    (void)msg;
}

static int wait_resumed(sr_engine *e)
{
    for (int i = 0; i < 20000; i++) {
        if (sr_engine_write_state(e, NULL) == SR_OK) return 1;
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    return 0;
}

/* a group that changes a master and a latest value fails, at its index
 * commit (durable in the log: the resume applies it) or at its log append
 * (not durable: gone); after the writer resumes by itself the table and
 * the latest rows are what the log says, and the heads' latest ts too */
Test(points, resume_after_a_failed_group)
{
    for (int mode = 0; mode < 2; mode++) {
        tu_rmrf(dir);
        sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 64, .recover_ms = 1, .alert = quiet};
        if (mode == 0) o.test_fail_commit = 3;
        else o.test_fail_append = 3;
        sr_engine *e = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(et_setup_masters(e, "op1", 2, NUM, 1), SR_OK); /* group 1 */
        uint32_t p = info(e, "P000").point;
        sr_result r;
        cr_assert_eq(put1(e, "GW1", p, 1000, 1, &r), SR_OK, "%s", r.err.msg); /* group 2 */
        cmdb c = {0};
        sr_buf_init(&c.b);
        add_point(&c, "P000", "D-GW2", 5);
        add_value(&c, "GW2", p, 2000, 4);
        int rc = run(e, &c, &r); /* group 3 fails */
        cr_assert_eq(rc, mode == 0 ? SR_EIO : SR_ENOSPC, "mode %d: %s", mode, sr_err_name(rc));
        cr_assert(wait_resumed(e), "mode %d: the engine did not resume", mode);
        table_exact(e);
        cr_assert_str_eq(info(e, "P000").gateway, mode == 0 ? "GW2" : "GW1", "mode %d", mode);
        uint32_t q[1] = {p};
        sr_sample out[1];
        int found[1];
        cr_assert_eq(sr_engine_latest(e, q, 1, out, found, NULL), SR_OK);
        cr_assert(found[0] && out[0].ts == (mode == 0 ? 2000 : 1000), "mode %d: latest at %" PRId64, mode, out[0].ts);
        /* a value between the two: the latest only if the failed group is gone */
        cr_assert_eq(put1(e, mode == 0 ? "GW2" : "GW1", p, 1500, 3, &r), SR_OK, "%s", r.err.msg);
        cr_assert_eq(sr_engine_latest(e, q, 1, out, found, NULL), SR_OK);
        cr_assert(out[0].ts == (mode == 0 ? 2000 : 1500), "mode %d: latest at %" PRId64, mode, out[0].ts);
        sr_buf_release(&c.b);
        cr_assert_eq(sr_engine_close(e), SR_OK);
    }
}

/* a group that fails at its log append has written its latest rows into a
 * transaction that is aborted: every head it noted forgets the dropped ts
 * (heads.c invariant 10), so a later value between the committed and the
 * dropped one is the latest. Seen on the failed engine itself (no_recover:
 * the resume's rebuilt heads would hide it). */
Test(points, a_failed_group_forgets_its_latest_ts)
{
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 64, .no_recover = 1, .test_fail_append = 3, .alert = quiet};
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK); /* group 1 */
    uint32_t p = info(e, "P000").point;
    sr_result r;
    cr_assert_eq(put1(e, "GW1", p, 1000, 1, &r), SR_OK, "%s", r.err.msg); /* group 2 */
    cr_assert_eq(put1(e, "GW1", p, 3000, 3, &r), SR_ENOSPC);           /* group 3 fails */
    pthread_mutex_lock(&e->mu); /* the writer is stopped (no_recover): nothing moves */
    head *h = head_find(e, p);
    cr_assert_not_null(h);
    cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
    cr_assert(!h->lpend && !h->llisted && !e->nlpend, "the group's end took the head off the list");
    cr_assert(!h->lts_known || h->lts == 1000, "the head kept the dropped row's ts %" PRId64, h->lts);
    /* the next group's note, as the writer would make it */
    MDB_txn *t = NULL;
    cr_assert_eq(sr_index_write_begin(e->ix, &t), SR_OK);
    sr_sample s = {.ts = 2000, .quality = SR_Q_GOOD, .v.f = 2};
    cr_assert_eq(sr__heads_latest_note(e, t, h, &s), SR_OK);
    cr_assert(h->lpend && h->lts_known && h->lts == 2000, "2000 is not the latest (lts %" PRId64 ")", h->lts);
    cr_assert_eq(sr__heads_latest_flush(e, t), SR_OK);
    uint8_t k[4];
    be32(k, p);
    MDB_val v;
    cr_assert_eq(get(t, DB(e, SR_DB_LATEST), k, 4, &v), SR_OK);
    cr_assert_eq((int64_t)sr_get_le64(v.mv_data), 2000);
    cr_assert(h->llisted && !h->lpend, "written, listed until the transaction ends");
    sr_index_abort(t);
    sr__heads_latest_end(e, 0);
    cr_assert(!h->lts_known && !h->llisted && !e->nlpend);
    cr_assert_null(sr_heads_check(e), "%s", sr_heads_check(e));
    pthread_mutex_unlock(&e->mu);
    sr_engine_close(e);
}

/* the N-th allocation fails, for every N through a master change's group:
 * whatever failed (the command, the group, the table's refresh), the loop's
 * lookup answers what the index holds (a table that could not be kept is
 * left for the index until it reloads), and the table is exact again */
Test(points, no_memory_never_leaves_it_stale)
{
    sr_engine_opts o = {.clock_ms = fixed_clock, .head_max = 64, .recover_ms = 1, .alert = quiet};
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(et_setup_masters(e, "op1", 3, NUM, 1), SR_OK);
    uint32_t p = info(e, "P000").point;
    cmdb c = {0};
    sr_buf_init(&c.b);
    fault_alloc_install();
    int fired = 0;
    for (unsigned long n = 1; n < 80; n++) {
        add_point(&c, "P000", n % 2 ? "D-GW2" : "D-GW1", 100);
        add_delete(&c, "P002");
        add_point(&c, "P002", "D-GW1", (double)n);
        sr_result r;
        fault_alloc_arm(n);
        (void)run(e, &c, &r);
        fired += fault_alloc_fired();
        fault_alloc_arm(0);
        cr_assert(wait_resumed(e), "n %lu: the engine did not resume", n);
        MDB_txn *t;
        cr_assert_eq(sr_index_read_begin(e->ix, &t), SR_OK);
        pointinfo pi = {0};
        cr_assert_eq(sr__pointinfo_get(e, t, p, &pi), SR_OK);
        sr_point_info x = info(e, "P000");
        cr_assert_str_eq(x.gateway, pi.gateway, "n %lu", n);
        suiro__v1__master_put__free_unpacked(pi.m, NULL);
        sr_index_read_end(e->ix, t);
        cr_assert_eq(put1(e, "GW1", p + 1, (int64_t)n, 1, &r), SR_EINVAL); /* P001 is GW2's: and a group to reload */
        table_exact(e);
        cr_assert_not(e->pt->broken, "n %lu: the table did not reload", n);
    }
    fault_alloc_uninstall();
    cr_assert_gt(fired, 10);
    sr_buf_release(&c.b);
    sr_engine_close(e);
}

/* readers look points up while the writer changes masters and the table
 * grows (its arrays are reallocated, its map rehashed): every answer is a
 * whole entry, old or new (under ASan a read of a freed array fails here) */
typedef struct rd_arg {
    sr_engine *e;
    _Atomic int stop;
    _Atomic long lookups, bad;
} rd_arg;

static void *reader(void *p)
{
    rd_arg *a = p;
    char id[16];
    while (!atomic_load(&a->stop)) {
        for (int i = 0; i < 20; i++) {
            snprintf(id, sizeof id, "P%03d", i);
            sr_point_info x;
            int rc = sr_engine_point_info(a->e, "op1", id, &x);
            atomic_fetch_add(&a->lookups, 1);
            if (rc != SR_OK || (strcmp(x.gateway, "GW1") && strcmp(x.gateway, "GW2")) || !x.has_max)
                atomic_fetch_add(&a->bad, 1);
        }
    }
    return NULL;
}

Test(points, readers_while_the_writer_changes_it)
{
    sr_engine *e = open_engine();
    cr_assert_eq(et_setup_masters(e, "op1", 20, NUM, 1), SR_OK);
    rd_arg a = {.e = e};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, reader, &a), 0);
    cmdb c = {0};
    sr_buf_init(&c.b);
    char id[16];
    sr_result r;
    for (int k = 0; k < 300; k++) {
        snprintf(id, sizeof id, "P%03d", k % 20);
        add_point(&c, id, k % 2 ? "D-GW2" : "D-GW1", 100 + k);
        snprintf(id, sizeof id, "Q%04d", k); /* new points: the table grows */
        add_point(&c, id, "D-GW1", 1);
        cr_assert_eq(run(e, &c, &r), SR_OK, "%s", r.err.msg);
    }
    atomic_store(&a.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    long n = atomic_load(&a.lookups), bad = atomic_load(&a.bad);
    cr_assert_gt(n, 0);
    cr_assert_eq(bad, 0, "%ld of %ld lookups answered no whole entry", bad, n);
    table_exact(e);
    cr_assert_eq(info(e, "Q0299").point, info(e, "Q0000").point + 299);
    sr_buf_release(&c.b);
    sr_engine_close(e);
}
