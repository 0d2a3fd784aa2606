/* tests/engine/test_pending.c -- the two-person rule in the engine
 * (PendingEvent, engine/apply.c apply_pending; engine/records.h
 * sr_cmd_pending_request / _decide, sr_read_pending, sr_list_pending): a
 * privilege change waits until a second admin of the same scope approves
 * it; the requester can never decide it; a change expires (by the event's
 * ingest time); two decisions racing for one change leave one outcome; a
 * refused request stores nothing; an approval applies the change in the
 * same event, so the rebuilt index equals the written one (replay ==
 * rebuild), with what the writer filled into the change (a kept secret);
 * the dump shows every step by name, the change as an event. */
#include "engine/records.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static _Atomic int64_t clock_now = 1800000000000; /* the engine's ingest clock */
static int64_t test_clock(void) { return atomic_load(&clock_now); }
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE, .clock_ms = test_clock};
static const sr_cmd_env ROOT = {"", "root", SR_ACTOR_USER, NULL, "cli"};

static sr_engine *open_engine(void) { return es_open(&dir, "pending", &OPTS); }
static void finish(sr_engine *e) { es_finish(e, &dir); }


static void create(sr_engine *e, const char *id, sr_user_scope scope, const char *scope_id, const char *role)
{
    const char *roles[] = {role};
    sr_user u = {.id = id, .name = id, .scope = scope, .scope_id = scope_id, .roles = roles, .n_roles = 1};
    sr_buf b;
    sr_buf_init(&b);
    char why[128];
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_user_create(&ROOT, &u, "long enough password", 0, 1700000000000, &ES_POL, &b, why,
                                               sizeof why),
                         &b, &r),
                 SR_OK, "%s", r.err.msg);
}

/* The platform: admins pa1, pa2, pa3, an auditor; operator op1: admins
 * oa1, oa2, a general user og; operator op2: admin xa. */
static void people(sr_engine *e)
{
    create(e, "pa1", SR_US_PLATFORM, "", "platform_admin");
    create(e, "pa2", SR_US_PLATFORM, "", "platform_admin");
    create(e, "pa3", SR_US_PLATFORM, "", "platform_admin");
    create(e, "aud", SR_US_PLATFORM, "", "auditor");
    create(e, "oa1", SR_US_OPERATOR, "op1", "operator_admin");
    create(e, "oa2", SR_US_OPERATOR, "op1", "operator_admin");
    create(e, "og", SR_US_OPERATOR, "op1", "operator_general");
    create(e, "xa", SR_US_OPERATOR, "op2", "operator_admin");
}

/* Request, as `requester` of operator op's scope (op "": the platform),
 * that user `who` gets role `role`. */
static int request_role(sr_engine *e, const char *pid, const char *requester, const char *op, const char *who,
                        const char *role, int64_t ttl_ms, sr_result *r)
{
    sr_cmd_env env = {op, requester, SR_ACTOR_USER, NULL, "192.0.2.10:5000"};
    const char *roles[] = {role};
    sr_buf ch, b;
    sr_buf_init(&ch);
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_user_roles(&env, who, roles, 1, NULL, &ch), SR_OK);
    sr_pending_req q = {.id = pid,
                        .scope = op[0] ? SR_US_OPERATOR : SR_US_PLATFORM,
                        .scope_id = op,
                        .authz_action = "users.manage",
                        .summary = "grant a role",
                        .expires_ms = atomic_load(&clock_now) + ttl_ms,
                        .changes = &(sr_slice){ch.data, ch.len}, .n_changes = 1};
    int rc = es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, r);
    sr_buf_release(&ch);
    return rc;
}

static int decide(sr_engine *e, const char *pid, const char *who, const char *op, const char *action, sr_result *r)
{
    sr_cmd_env env = {op, who, SR_ACTOR_USER, NULL, "192.0.2.11:5000"};
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_pending_decide(&env, pid, action, action[0] == 'r' ? "not now" : NULL, &b), &b, r);
}

static const char *role_of(sr_engine *e, const char *id, char *out, size_t cap)
{
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, id, &h, &u), SR_OK);
    snprintf(out, cap, "%s", u.n_roles ? u.roles[0] : "");
    sr_rec_close(&h);
    return out;
}

static const char *state_of(sr_engine *e, const char *pid, char *out, size_t cap)
{
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    cr_assert_eq(sr_read_pending(e, pid, &h, &p), SR_OK);
    snprintf(out, cap, "%s", sr_pending_state(&p, atomic_load(&clock_now)));
    sr_rec_close(&h);
    return out;
}

Test(pending, the_requester_cannot_approve_and_a_second_admin_can)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    char s[64];
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK, "%s", r.err.msg);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_general", "nothing changes before the approval");
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    cr_assert_eq(sr_read_pending(e, "p1", &h, &p), SR_OK);
    cr_assert_str_eq(p.state, "requested");
    cr_assert_str_eq(p.requester, "oa1");
    cr_assert_str_eq(p.op, "op1");
    cr_assert_eq(p.scope, SR_US_OPERATOR);
    cr_assert_str_eq(p.scope_id, "op1");
    cr_assert_str_eq(p.authz_action, "users.manage");
    cr_assert_str_eq(p.change_kind, "user");
    cr_assert_str_eq(p.summary, "grant a role");
    cr_assert_eq(p.requested_ms, atomic_load(&clock_now));
    cr_assert_eq(p.expires_ms, atomic_load(&clock_now) + 3600000);
    sr_rec_close(&h);

    /* the requester cannot approve, nor reject */
    cr_assert_eq(decide(e, "p1", "oa1", "op1", "approved", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "requester"), "%s", r.err.msg);
    cr_assert_eq(decide(e, "p1", "oa1", "op1", "rejected", &r), SR_EINVAL);
    /* nor anyone without users.manage on op1: a general user, another
     * operator's admin, the auditor; nor an unknown user */
    cr_assert_eq(decide(e, "p1", "og", "op1", "approved", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "users.manage"), "%s", r.err.msg);
    cr_assert_eq(decide(e, "p1", "xa", "op1", "approved", &r), SR_EINVAL);
    cr_assert_eq(decide(e, "p1", "aud", "op1", "approved", &r), SR_EINVAL);
    cr_assert_eq(decide(e, "p1", "nobody", "op1", "approved", &r), SR_EINVAL);
    /* a decision is the change's operator's event */
    cr_assert_eq(decide(e, "p1", "oa2", "op2", "approved", &r), SR_EINVAL);
    cr_assert_str_eq(state_of(e, "p1", s, sizeof s), "requested", "the refusals stored nothing");
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_general");

    /* a second admin of the same operator approves: the change takes effect */
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_admin");
    sr_user u;
    cr_assert_eq(sr_read_user(e, "og", &h, &u), SR_OK);
    cr_assert_str_eq(u.approved_by, "oa2", "the user's record names the second admin");
    cr_assert_eq(sr_read_pending(e, "p1", &h, &p), SR_OK);
    cr_assert_str_eq(p.state, "approved");
    cr_assert_str_eq(p.decided_by, "oa2");
    cr_assert_eq(p.decided_seq, r.seq);
    sr_rec_close(&h);
    /* decided once: every further decision is a conflict */
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "approved", &r), SR_ECONFLICT);
    cr_assert_eq(decide(e, "p1", "pa1", "op1", "rejected", &r), SR_ECONFLICT);
    cr_assert(strstr(r.err.msg, "approved already by oa2"), "%s", r.err.msg);
    /* a platform admin's users.manage covers the platform: it decides a
     * platform change, requested by another platform admin */
    cr_assert_eq(request_role(e, "p2", "pa1", "", "aud", "platform_admin", 3600000, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(decide(e, "p2", "oa1", "", "approved", &r), SR_EINVAL, "an operator admin cannot");
    cr_assert_eq(decide(e, "p2", "pa2", "", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_str_eq(role_of(e, "aud", s, sizeof s), "platform_admin");
    finish(e);
}

Test(pending, a_rejected_change_is_never_applied)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    char s[64];
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "rejected", &r), SR_OK, "%s", r.err.msg);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_general");
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    cr_assert_eq(sr_read_pending(e, "p1", &h, &p), SR_OK);
    cr_assert_str_eq(p.state, "rejected");
    cr_assert_str_eq(p.reason, "not now");
    cr_assert_str_eq(p.decided_by, "oa2");
    sr_rec_close(&h);
    cr_assert_eq(decide(e, "p1", "pa1", "op1", "approved", &r), SR_ECONFLICT);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_general");
    finish(e);
}

Test(pending, a_change_expires)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    char s[64];
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 60000, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "expired", &r), SR_EINVAL, "not before its expiry");
    atomic_fetch_add(&clock_now, 60000);
    cr_assert_str_eq(state_of(e, "p1", s, sizeof s), "expired", "shown expired before any event says so");
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "approved", &r), SR_ECONFLICT);
    cr_assert(strstr(r.err.msg, "expired"), "%s", r.err.msg);
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "rejected", &r), SR_ECONFLICT);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_general");
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "expired", &r), SR_OK, "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_pending p;
    cr_assert_eq(sr_read_pending(e, "p1", &h, &p), SR_OK);
    cr_assert_str_eq(p.state, "expired", "the expired event is in the record");
    cr_assert_str_eq(p.decided_by, "");
    sr_rec_close(&h);
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "expired", &r), SR_ECONFLICT, "once");
    finish(e);
}

Test(pending, a_refused_request_stores_nothing)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    /* the requester must hold the action on the scope */
    cr_assert_eq(request_role(e, "p1", "og", "op1", "oa1", "operator_general", 3600000, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "requester og"), "%s", r.err.msg);
    cr_assert_eq(request_role(e, "p1", "xa", "op1", "og", "operator_admin", 3600000, &r), SR_EINVAL);
    /* the change must apply now: no such user; a role of another scope */
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "ghost", "operator_admin", 3600000, &r), SR_ENOTFOUND);
    cr_assert(strstr(r.err.msg, "the change: user ghost does not exist"), "%s", r.err.msg);
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "platform_admin", 3600000, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "the change:"), "%s", r.err.msg);
    /* an expiry not after now */
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 0, &r), SR_EINVAL);
    /* the change's actor is the requester; its operator the event's */
    sr_cmd_env env = {"op1", "oa1", SR_ACTOR_USER, NULL, NULL}, other = {"op1", "oa2", SR_ACTOR_USER, NULL, NULL};
    sr_buf ch, b;
    sr_buf_init(&ch);
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_user_state(&other, "og", "enabled", NULL, &ch), SR_OK);
    sr_pending_req q = {.id = "p1", .scope = SR_US_OPERATOR, .scope_id = "op1", .authz_action = "users.manage",
                        .summary = "enable og", .expires_ms = atomic_load(&clock_now) + 1000,
                        .changes = &(sr_slice){ch.data, ch.len}, .n_changes = 1};
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "actor"), "%s", r.err.msg);
    /* an operator's change in another operator's scope */
    q.scope_id = "op2";
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_EINVAL);
    /* a kind that cannot wait: measurements */
    ch.len = 0;
    sr_sample sm = {.ts = 1, .v.f = 1};
    sr_pv_in pv = {.point = 1, .type = SR_VT_NUMBER, .s = &sm, .n = 1};
    cr_assert_eq(sr_ev_measurements("op1", "oa1", SR_ACTOR_USER, NULL, &pv, 1, &ch), SR_OK);
    q.scope_id = "op1";
    q.changes = &(sr_slice){ch.data, ch.len};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "cannot wait"), "%s", r.err.msg);
    /* bytes that are no event */
    q.changes = &(sr_slice){"\xff\xff\xff", 3};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_EINVAL);
    sr_buf_release(&ch);
    /* nothing was stored */
    sr_rec h = SR_REC_INIT;
    cr_assert_eq(sr_list_pending(e, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 0);
    sr_rec_close(&h);
    /* an id is used once */
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_EEXIST);
    cr_assert_eq(sr_list_pending(e, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 1);
    sr_pending p;
    cr_assert_eq(sr_rec_next_pending(&h, &p), 1);
    cr_assert_str_eq(p.id, "p1");
    cr_assert_eq(sr_rec_next_pending(&h, &p), 0);
    sr_rec_close(&h);
    finish(e);
}

/* ---- two decisions at once ---------------------------------------------- */

typedef struct racer {
    sr_engine *e;
    const char *pid, *who, *action;
    pthread_barrier_t *go;
    int rc;
} racer;

static void *race(void *arg)
{
    racer *x = arg;
    sr_cmd_env env = {"op1", x->who, SR_ACTOR_USER, NULL, NULL};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_pending_decide(&env, x->pid, x->action, "no", &b);
    sr_result r = {0};
    sr_slice s = {b.data, b.len};
    pthread_barrier_wait(x->go);
    if (!rc) rc = sr_engine_submit_wait(x->e, &s, 1, &r);
    x->rc = rc ? rc : r.rc;
    sr_buf_release(&b);
    return NULL;
}

Test(pending, two_racing_decisions_leave_one_outcome)
{
    sr_engine *e = open_engine();
    people(e);
    create(e, "oa3", SR_US_OPERATOR, "op1", "operator_admin");
    int approvals = 0, rejections = 0;
    for (int i = 0; i < 24; i++) {
        char pid[16], s[64];
        snprintf(pid, sizeof pid, "race%d", i);
        sr_result r;
        const char *target = i % 2 ? "operator_admin" : "operator_general";
        cr_assert_eq(request_role(e, pid, "oa1", "op1", "og", target, 3600000, &r), SR_OK, "%s", r.err.msg);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer a = {e, pid, "oa2", "approved", &go, 0}, b = {e, pid, "oa3", "rejected", &go, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race, &a);
        pthread_create(&tb, NULL, race, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        cr_assert((a.rc == SR_OK) != (b.rc == SR_OK), "round %d: exactly one decision stands (%d, %d)", i, a.rc, b.rc);
        cr_assert_eq(a.rc == SR_OK ? b.rc : a.rc, SR_ECONFLICT, "round %d: the other is a conflict", i);
        state_of(e, pid, s, sizeof s);
        cr_assert_str_eq(s, a.rc == SR_OK ? "approved" : "rejected", "round %d", i);
        /* the role is the target exactly when the approval stood */
        char role[64];
        role_of(e, "og", role, sizeof role);
        if (a.rc == SR_OK) cr_assert_str_eq(role, target, "round %d: approved, applied", i);
        approvals += a.rc == SR_OK;
        rejections += b.rc == SR_OK;
        /* back to operator_general for the next round when an approval made it admin */
        if (a.rc == SR_OK && i % 2) {
            char p2[16];
            snprintf(p2, sizeof p2, "back%d", i);
            cr_assert_eq(request_role(e, p2, "oa1", "op1", "og", "operator_general", 3600000, &r), SR_OK);
            cr_assert_eq(decide(e, p2, "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
        }
        cr_assert_str_eq(role_of(e, "og", role, sizeof role), "operator_general");
    }
    cr_assert_eq(approvals + rejections, 24);
    finish(e);
}

/* ---- replay == rebuild, with what the writer filled in -------------------- */

Test(pending, replay_equals_rebuild_and_the_applied_change_keeps_what_the_writer_filled)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    /* an app with a secret; a pending change of its registration that
     * keeps the secret (secret_hash empty: the writer fills the stored one
     * into the change it applies) */
    sr_cmd_env env = {"op1", "oa1", SR_ACTOR_USER, NULL, NULL};
    sr_reg_entry app = {.kind = SR_RG_APP, .id = "APP1", .name = "app", .secret_hash = {"scrypt$x", 8}};
    sr_buf b, ch;
    sr_buf_init(&b);
    sr_buf_init(&ch);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&env, &app, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_reg_entry grant = {.kind = SR_RG_GRANT, .id = "G1", .app_id = "APP1", .pattern = "P*", .access = "control"};
    cr_assert_eq(sr_cmd_registry_put(&env, &grant, &ch), SR_OK);
    sr_pending_req q = {.id = "g1", .scope = SR_US_OPERATOR, .scope_id = "op1", .authz_action = "setup.manage",
                        .summary = "widen APP1 to control", .expires_ms = atomic_load(&clock_now) + 1000,
                        .changes = &(sr_slice){ch.data, ch.len}, .n_changes = 1};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_buf_release(&ch);
    app.name = "renamed";
    app.secret_hash = (sr_slice){NULL, 0};
    cr_assert_eq(sr_cmd_registry_put(&env, &app, &ch), SR_OK);
    q.id = "a1";
    q.summary = "enable APP1";
    q.changes = &(sr_slice){ch.data, ch.len};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_buf_release(&ch);
    cr_assert_eq(decide(e, "g1", "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(decide(e, "a1", "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(request_role(e, "u1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK);
    cr_assert_eq(decide(e, "u1", "oa2", "op1", "rejected", &r), SR_OK);
    cr_assert_eq(request_role(e, "u2", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK);
    cr_assert_eq(request_role(e, "u3", "oa1", "op1", "og", "operator_admin", 10, &r), SR_OK);
    atomic_fetch_add(&clock_now, 10);
    cr_assert_eq(decide(e, "u3", "oa2", "op1", "expired", &r), SR_OK);

    sr_rec h = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G1", &h, &g), SR_OK, "the approved grant applies");
    cr_assert_str_eq(g.access, "control");
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "APP1", &h, &g), SR_OK);
    cr_assert_str_eq(g.name, "renamed");
    cr_assert_eq(g.secret_hash.len, 8, "the secret kept");
    sr_rec_close(&h);

    e = es_rebuilt(e, &dir, &OPTS);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "APP1", &h, &g), SR_OK);
    cr_assert_eq(g.secret_hash.len, 8, "the rebuild applies the change as the writer applied it");
    char s[64];
    cr_assert_str_eq(state_of(e, "u2", s, sizeof s), "requested", "a pending change survives a restart");
    cr_assert_eq(decide(e, "u2", "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_str_eq(role_of(e, "og", s, sizeof s), "operator_admin");
    sr_rec_close(&h);
    finish(e);
}

/* The dump (suiro replay) shows every step by name, and the change as the
 * event it is. */
Test(pending, replay_shows_pending_changes_by_name)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    cr_assert_eq(request_role(e, "p1", "oa1", "op1", "og", "operator_admin", 3600000, &r), SR_OK);
    uint64_t seq = r.seq;
    cr_assert_eq(decide(e, "p1", "oa2", "op1", "approved", &r), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s replay %s --from %llu 2>&1", SR_SUIRO_BIN, dir, (unsigned long long)seq);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    pclose(f);
    cr_assert(strstr(out, "\"pending\":{\"pending_id\":\"p1\",\"action\":\"requested\",\"change\":[{"), "%s", out);
    cr_assert(strstr(out, "\"user\":{\"user_id\":\"og\",\"action\":\"roles_set\""), "%s", out);
    cr_assert(strstr(out, "\"action\":\"approved\""), "%s", out);
    cr_assert(strstr(out, "\"approved_by\":\"oa2\""), "the approval's change names the approver: %s", out);
    cr_assert(strstr(out, "\"scope\":\"US_OPERATOR\""), "%s", out);
    cr_assert(strstr(out, "\"authz_action\":\"users.manage\""), "%s", out);
    tu_rmrf(dir);
    free(dir);
    dir = NULL;
}

/* `suiro init --second-admin` creates two platform admins at once, each with
 * its own temporary password printed once: the two-person rule needs two
 * from the start. */
Test(pending, init_creates_two_platform_admins)
{
    dir = tu_tmpdir("pending-init");
    char cmd[2048], line[512], pw[2][128] = {"", ""};
    snprintf(cmd, sizeof cmd, "%s init --admin one --second-admin two %s/d", SR_SUIRO_BIN, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int npw = 0, second = 0;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "temporary password: ", 20) && npw < 2) snprintf(pw[npw++], sizeof pw[0], "%s", line + 20);
        if (!strcmp(line, "second platform admin: two\n")) second = 1;
    }
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    cr_assert_eq(npw, 2, "two passwords printed");
    cr_assert(second);
    char *top = es_descend(&dir, "d");
    sr_engine *e = open_engine();
    sr_rec h = SR_REC_INIT;
    sr_user u;
    for (int i = 0; i < 2; i++) {
        pw[i][strcspn(pw[i], "\n")] = 0;
        cr_assert_eq(sr_read_user(e, i ? "two" : "one", &h, &u), SR_OK);
        cr_assert_str_eq(u.roles[0], "platform_admin");
        cr_assert(u.temporary);
        cr_assert(sr_user_password_ok(&u, pw[i]), "admin %d's printed password", i);
    }
    cr_assert_str_neq(pw[0], pw[1]);
    sr_rec_close(&h);
    es_finish_in(e, &dir, top);
}

/* A change of several events (an app's grants replaced: the old one
 * deleted, two new ones) waits as one and is applied as one: all of its
 * events with the approval, none before; and the request is refused whole
 * when one of them does not apply. */
Test(pending, a_change_of_several_events_is_applied_as_one)
{
    sr_engine *e = open_engine();
    people(e);
    sr_result r;
    sr_cmd_env env = {"op1", "oa1", SR_ACTOR_USER, NULL, NULL};
    sr_reg_entry app = {.kind = SR_RG_APP, .id = "APP1", .name = "app", .secret_hash = {"scrypt$x", 8}};
    sr_reg_entry g0 = {.kind = SR_RG_GRANT, .id = "G0", .app_id = "APP1", .pattern = "P000", .access = "read"};
    sr_buf b, ch[3];
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&env, &app, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&env, &g0, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_reg_entry g1 = {.kind = SR_RG_GRANT, .id = "G1", .app_id = "APP1", .pattern = "P*", .access = "read"};
    sr_reg_entry g2 = {.kind = SR_RG_GRANT, .id = "G2", .app_id = "APP1", .pattern = "P001", .access = "control"};
    for (int i = 0; i < 3; i++) sr_buf_init(&ch[i]);
    cr_assert_eq(sr_cmd_registry_delete(&env, SR_RG_GRANT, "G0", &ch[0]), SR_OK);
    cr_assert_eq(sr_cmd_registry_put(&env, &g1, &ch[1]), SR_OK);
    cr_assert_eq(sr_cmd_registry_put(&env, &g2, &ch[2]), SR_OK);
    sr_slice sl[3] = {{ch[0].data, ch[0].len}, {ch[1].data, ch[1].len}, {ch[2].data, ch[2].len}};
    sr_pending_req q = {.id = "gr", .scope = SR_US_OPERATOR, .scope_id = "op1", .authz_action = "setup.manage",
                        .summary = "replace APP1's grants", .expires_ms = atomic_load(&clock_now) + 1000,
                        .changes = sl, .n_changes = 3};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G0", &h, &g), SR_OK, "nothing before the approval");
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G1", &h, &g), SR_ENOTFOUND);
    sr_pending p;
    cr_assert_eq(sr_read_pending(e, "gr", &h, &p), SR_OK);
    cr_assert_eq(p.n_changes, 3);
    cr_assert_str_eq(p.change_kind, "registry_delete");
    cr_assert_eq(decide(e, "gr", "oa2", "op1", "approved", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G0", &h, &g), SR_ENOTFOUND, "all of them with it");
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G1", &h, &g), SR_OK);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "G2", &h, &g), SR_OK);
    cr_assert_str_eq(g.access, "control");
    /* one event that does not apply (a vendor that is not registered)
     * refuses the request whole */
    sr_reg_entry bad = {.kind = SR_RG_APP, .id = "APP1", .name = "app", .vendor_id = "nobody"};
    sr_buf_release(&ch[0]);
    sr_buf_init(&ch[0]);
    cr_assert_eq(sr_cmd_registry_put(&env, &bad, &ch[0]), SR_OK);
    sl[0] = (sr_slice){ch[2].data, ch[2].len};
    sl[1] = (sr_slice){ch[0].data, ch[0].len};
    q.id = "gr2";
    q.n_changes = 2;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_pending_request(&env, &q, &b), &b, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "the change:") && strstr(r.err.msg, "vendor nobody"), "%s", r.err.msg);
    cr_assert_eq(sr_read_pending(e, "gr2", &h, &p), SR_ENOTFOUND);
    sr_rec_close(&h);
    for (int i = 0; i < 3; i++) sr_buf_release(&ch[i]);
    finish(e);
}
