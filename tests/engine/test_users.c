/* tests/engine/test_users.c -- users as events and index records (UserEvent,
 * engine/apply.c apply_user; engine/records.h sr_cmd_user_*, sr_read_user,
 * sr_list_users): every field round-trips; the password is a slow salted
 * hash that verifies; a temporary password; a user changes their own
 * password; a deleted ID stays reserved; the refusals change nothing; a
 * one-time code step is accepted once; the rebuilt index equals the written
 * one (replay == rebuild); the dump shows a user's event by name; `suiro
 * init` creates the first platform admin; vendors and the links to them. */
#include "engine/records.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};
static const sr_cmd_env ENV = {"", "root", SR_ACTOR_USER, NULL, "cli"};

static sr_engine *open_engine(void) { return es_open(&dir, "users", &OPTS); }
static void finish(sr_engine *e) { es_finish(e, &dir); }


static const char *const OP_ADMIN[] = {"operator_admin"};

static int create(sr_engine *e, const char *id, sr_user_scope scope, const char *scope_id, const char *const *roles,
                  size_t n, const char *pw, sr_result *r)
{
    sr_user u = {.id = id, .name = "Hanako Suzuki", .scope = scope, .scope_id = scope_id, .roles = roles, .n_roles = n};
    sr_buf b;
    sr_buf_init(&b);
    char why[128];
    return es_submit1(e, sr_cmd_user_create(&ENV, &u, pw, 1, 1700000000000, &ES_POL, &b, why, sizeof why), &b, r);
}

Test(users, created_user_round_trips_and_its_temporary_password_verifies)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "hanako", SR_US_OPERATOR, "op1", OP_ADMIN, 1, "correct horse battery", &r), SR_OK, "%s",
                 r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "hanako", &h, &u), SR_OK);
    cr_assert_str_eq(u.id, "hanako");
    cr_assert_str_eq(u.name, "Hanako Suzuki");
    cr_assert_eq(u.scope, SR_US_OPERATOR);
    cr_assert_str_eq(u.scope_id, "op1");
    cr_assert_eq(u.n_roles, 1);
    cr_assert_str_eq(u.roles[0], "operator_admin");
    cr_assert(u.temporary, "a new user's password is temporary");
    cr_assert_eq(u.password_set_ms, 1700000000000);
    cr_assert(!u.disabled && !u.deleted);
    cr_assert_eq(u.totp_secret_sealed.len, 0);
    cr_assert_str_eq(u.last_action, "created");
    cr_assert(u.password_hash.len > 0 && !memmem(u.password_hash.data, u.password_hash.len, "horse", 5),
              "the password is stored only as a hash");
    cr_assert_eq(strncmp(u.password_hash.data, "scrypt$", 7), 0, "the slow salted hash of engine/secret.c");
    cr_assert(sr_user_password_ok(&u, "correct horse battery"));
    cr_assert(!sr_user_password_ok(&u, "correct horse batterx"));
    sr_rec_close(&h);
    finish(e);
}

Test(users, a_user_changes_their_own_password)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "hanako", SR_US_OPERATOR, "op1", OP_ADMIN, 1, "temporary-pass-1", &r), SR_OK);
    sr_buf b;
    sr_buf_init(&b);
    char why[128];
    sr_cmd_env self = {"op1", "hanako", SR_ACTOR_USER, NULL, "198.51.100.7:4431"};
    /* the policy refuses a short one before anything is built */
    cr_assert_eq(sr_cmd_user_password(&self, "hanako", "short", 0, 1700000100000, &ES_POL, &b, why, sizeof why),
                 SR_EINVAL);
    cr_assert(strstr(why, "12"), "%s", why);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(es_submit1(e,
                            sr_cmd_user_password(&self, "hanako", "my own long password", 0, 1700000100000, &ES_POL,
                                                 &b, why, sizeof why),
                            &b, &r),
                 SR_OK, "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "hanako", &h, &u), SR_OK);
    cr_assert(!u.temporary, "a password the user chose is not temporary");
    cr_assert_eq(u.password_set_ms, 1700000100000);
    cr_assert(sr_user_password_ok(&u, "my own long password"));
    cr_assert(!sr_user_password_ok(&u, "temporary-pass-1"));
    cr_assert_str_eq(u.roles[0], "operator_admin", "a password change keeps the roles");
    sr_rec_close(&h);
    /* the maximum age (003 §3.5 (1)) */
    cr_assert(!sr_password_expired(&ES_POL, 1700000100000, 1700000100000 + 89 * INT64_C(86400000)));
    cr_assert(sr_password_expired(&ES_POL, 1700000100000, 1700000100000 + 91 * INT64_C(86400000)));
    sr_password_policy forever = ES_POL;
    forever.max_age_days = 0;
    cr_assert(!sr_password_expired(&forever, 0, INT64_C(1) << 50));
    finish(e);
}

Test(users, a_deleted_id_stays_reserved)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "taro", SR_US_PLATFORM, "", (const char *const[]){"platform_admin"}, 1,
                        "first password long", &r),
                 SR_OK, "%s", r.err.msg);
    cr_assert_eq(create(e, "taro", SR_US_PLATFORM, "", (const char *const[]){"auditor"}, 1, "another long one",
                        &r),
                 SR_EEXIST, "an existing id");
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "taro", "deleted", NULL, &b), &b, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(create(e, "taro", SR_US_PLATFORM, "", (const char *const[]){"auditor"}, 1, "another long one", &r),
                 SR_EEXIST, "a deleted id is reserved");
    cr_assert(strstr(r.err.msg, "reserved"), "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "taro", &h, &u), SR_OK);
    cr_assert(u.deleted && u.disabled);
    cr_assert_eq(u.password_hash.len, 0, "a deleted user's password is gone");
    cr_assert(!sr_user_password_ok(&u, "first password long"));
    cr_assert_str_eq(u.roles[0], "platform_admin", "the refused create changed nothing");
    /* no change of a deleted user */
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "taro", "enabled", NULL, &b), &b, &r), SR_ENOTFOUND);
    /* it is listed, deleted */
    cr_assert_eq(sr_list_users(e, &h), SR_OK);
    int n = 0, k;
    while ((k = sr_rec_next_user(&h, &u)) == 1) {
        n++;
        cr_assert_str_eq(u.id, "taro");
        cr_assert(u.deleted);
    }
    cr_assert_eq(k, 0);
    cr_assert_eq(n, 1);
    sr_rec_close(&h);
    finish(e);
}

Test(users, refusals_change_nothing)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "u1", SR_US_VENDOR, "v1", OP_ADMIN, 1, "long enough password", &r), SR_EINVAL,
                 "an operator role in a vendor's scope");
    cr_assert_eq(create(e, "u1", SR_US_OPERATOR, "op1", (const char *const[]){"root"}, 1, "long enough password", &r),
                 SR_EINVAL, "an unknown role");
    cr_assert_eq(create(e, "u1", SR_US_OPERATOR, "", OP_ADMIN, 1, "long enough password", &r), SR_EINVAL,
                 "an operator scope without its id");
    cr_assert_eq(create(e, "u1", SR_US_OPERATOR, "op1", OP_ADMIN, 0, "long enough password", &r), SR_EINVAL,
                 "no role");
    cr_assert_eq(create(e, "bad id!", SR_US_OPERATOR, "op1", OP_ADMIN, 1, "long enough password", &r), SR_EINVAL);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "u1", &h, &u), SR_ENOTFOUND);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "nobody", "disabled", NULL, &b), &b, &r), SR_ENOTFOUND);
    /* roles: of the user's scope only */
    cr_assert_eq(create(e, "u1", SR_US_VENDOR, "v1", (const char *const[]){"ap_vendor_general"}, 1,
                        "long enough password", &r),
                 SR_OK, "%s", r.err.msg);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_roles(&ENV, "u1", OP_ADMIN, 1, "second", &b), &b, &r), SR_EINVAL);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_roles(&ENV, "u1", (const char *const[]){"ap_vendor_admin"}, 1, "second", &b),
                         &b, &r),
                 SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_user(e, "u1", &h, &u), SR_OK);
    cr_assert_str_eq(u.roles[0], "ap_vendor_admin");
    cr_assert_str_eq(u.approved_by, "second");
    sr_rec_close(&h);
    finish(e);
}

Test(users, disable_enable_and_a_totp_step_accepted_once)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "u2", SR_US_OPERATOR, "op1", OP_ADMIN, 1, "long enough password", &r), SR_OK);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "u2", "disabled", NULL, &b), &b, &r), SR_OK);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "u2", &h, &u), SR_OK);
    cr_assert(u.disabled && !u.deleted);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "u2", "enabled", "second", &b), &b, &r), SR_OK);
    static const uint8_t sealed[] = {9, 8, 7, 6};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_totp_set(&ENV, "u2", (sr_slice){sealed, sizeof sealed}, &b), &b, &r), SR_OK);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_totp_step(&ENV, "u2", 56666666, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_totp_step(&ENV, "u2", 56666666, &b), &b, &r), SR_EINVAL,
                 "a replayed code's step");
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_totp_step(&ENV, "u2", 56666665, &b), &b, &r), SR_EINVAL, "an older step");
    cr_assert_eq(sr_read_user(e, "u2", &h, &u), SR_OK);
    cr_assert(!u.disabled);
    cr_assert_eq(u.totp_last_step, 56666666);
    cr_assert_eq(u.totp_secret_sealed.len, sizeof sealed);
    cr_assert_eq(memcmp(u.totp_secret_sealed.data, sealed, sizeof sealed), 0);
    sr_rec_close(&h);
    cr_assert_eq(sr_cmd_user_state(&ENV, "u2", "promoted", NULL, &b), SR_EINVAL);
    finish(e);
}

Test(users, replay_equals_rebuild)
{
    sr_engine *e = open_engine();
    sr_result r;
    cr_assert_eq(create(e, "a1", SR_US_OPERATOR, "op1", OP_ADMIN, 1, "long enough password", &r), SR_OK);
    cr_assert_eq(create(e, "a2", SR_US_PLATFORM, "", (const char *const[]){"auditor"}, 1, "long enough password",
                        &r),
                 SR_OK);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_state(&ENV, "a2", "deleted", NULL, &b), &b, &r), SR_OK);
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_user_totp_step(&ENV, "a1", 7, &b), &b, &r), SR_OK);
    e = es_rebuilt(e, &dir, &OPTS);
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "a2", &h, &u), SR_OK);
    cr_assert(u.deleted);
    cr_assert_eq(sr_read_user(e, "a1", &h, &u), SR_OK);
    cr_assert_eq(u.totp_last_step, 7);
    sr_rec_close(&h);
    finish(e);
}

/* `suiro init` creates the first platform admin with a temporary password it
 * prints once; a second init on the directory creates no other admin and
 * prints no password. */
Test(users, init_creates_the_first_platform_admin)
{
    dir = tu_tmpdir("users-init");
    char cmd[2048], line[512], password[128] = "";
    snprintf(cmd, sizeof cmd, "%s init --admin root %s/d", SR_SUIRO_BIN, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int must_change = 0;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "temporary password: ", 20)) snprintf(password, sizeof password, "%s", line + 20);
        if (strstr(line, "must be changed at first login")) must_change = 1;
    }
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    password[strcspn(password, "\n")] = 0;
    cr_assert_geq(strlen(password), 12, "the printed password '%s'", password);
    cr_assert(must_change, "a line says the password must be changed at first login");
    char *top = es_descend(&dir, "d");
    sr_engine *e = open_engine();
    sr_rec h = SR_REC_INIT;
    sr_user u;
    cr_assert_eq(sr_read_user(e, "root", &h, &u), SR_OK, "the admin exists after init");
    cr_assert_eq(u.scope, SR_US_PLATFORM);
    cr_assert_eq(u.n_roles, 1);
    cr_assert_str_eq(u.roles[0], "platform_admin");
    cr_assert(u.temporary, "the first password is temporary");
    cr_assert(sr_user_password_ok(&u, password), "the printed password verifies against the stored hash");
    cr_assert(!memmem(u.password_hash.data, u.password_hash.len, password, strlen(password)));
    sr_rec_close(&h);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* again: no second admin, no password */
    snprintf(cmd, sizeof cmd, "%s init --admin other %s", SR_SUIRO_BIN, dir);
    p = popen(cmd, "r");
    cr_assert(p);
    while (fgets(line, sizeof line, p)) cr_assert(strncmp(line, "temporary password", 18), "printed twice: %s", line);
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    e = open_engine();
    cr_assert_eq(sr_list_users(e, &h), SR_OK);
    cr_assert_eq(h.count, 1, "one platform admin");
    sr_rec_close(&h);
    es_finish_in(e, &dir, top);
}

/* Vendors (R-ID-8): registry entries of the platform (operator ""), of kind
 * ap or gw; an operator's app links to an AP vendor, a gateway to a GW
 * vendor, and a link to anything else is refused. */
Test(users, vendors_are_the_platforms_and_apps_and_gateways_link_to_them)
{
    sr_engine *e = open_engine();
    sr_result r;
    sr_buf b;
    const sr_cmd_env plat = {"", "root", SR_ACTOR_USER, NULL, "cli"}, op1 = {"op1", "root", SR_ACTOR_USER, NULL, "cli"};
    sr_reg_entry v = {.kind = SR_RG_VENDOR, .id = "acme", .name = "ACME Apps", .vendor_kind = "ap"};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&op1, &v, &b), &b, &r), SR_EINVAL, "a vendor of an operator");
    v.vendor_kind = "xx";
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&plat, &v, &b), &b, &r), SR_EINVAL, "a vendor of no kind");
    v.vendor_kind = "ap";
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&plat, &v, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_reg_entry app = {.kind = SR_RG_APP, .id = "APP1", .name = "Billing", .vendor_id = "acme"};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&op1, &app, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_reg_entry gw = {.kind = SR_RG_GATEWAY, .id = "GW1", .name = "Intake", .vendor_id = "acme"};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&op1, &gw, &b), &b, &r), SR_EINVAL, "a gateway of an AP vendor");
    app.id = "APP2";
    app.vendor_id = "nobody";
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&op1, &app, &b), &b, &r), SR_EINVAL, "an unregistered vendor");
    sr_rec h = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "APP1", &h, &g), SR_OK);
    cr_assert_str_eq(g.vendor_id, "acme");
    cr_assert_eq(sr_read_registry(e, "", SR_RG_VENDOR, "acme", &h, &g), SR_OK);
    cr_assert_str_eq(g.vendor_kind, "ap");
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_APP, "APP2", &h, &g), SR_ENOTFOUND);
    sr_rec_close(&h);
    finish(e);
}

/* The dump (suiro replay) shows a user's event by name: who did it, from
 * where, the user's ID, the action and the role names. */
Test(users, replay_shows_users_by_name)
{
    static const char *const roles[] = {"gw_vendor_admin"};
    sr_user u = {.id = "kenji", .name = "Kenji", .scope = SR_US_VENDOR, .scope_id = "gwmaker", .roles = roles,
                 .n_roles = 1};
    const sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "203.0.113.9:51234"};
    sr_buf b, js;
    sr_buf_init(&b);
    sr_buf_init(&js);
    char why[128];
    cr_assert_eq(sr_cmd_user_create(&env, &u, "long enough password", 1, 1700000000000, &ES_POL, &b, why, sizeof why),
                 SR_OK);
    sr_rec h = SR_REC_INIT;
    sr_event_view ev;
    cr_assert_eq(sr_event_decode(b.data, b.len, &h, &ev), SR_OK);
    sr_event_json_opts o = {0};
    cr_assert_eq(sr_event_view_json(&ev, &o, &js), SR_OK);
    cr_assert_eq(sr_buf_append(&js, "", 1), SR_OK);
    const char *s = (const char *)js.data;
    cr_assert(strstr(s, "\"actor\":\"root\""), "%s", s);
    cr_assert(strstr(s, "\"source\":\"203.0.113.9:51234\""), "%s", s);
    cr_assert(strstr(s, "\"user_id\":\"kenji\""), "%s", s);
    cr_assert(strstr(s, "\"action\":\"created\""), "%s", s);
    cr_assert(strstr(s, "\"scope\":\"US_VENDOR\""), "%s", s);
    cr_assert(strstr(s, "\"roles\":[\"gw_vendor_admin\"]"), "%s", s);
    cr_assert(!strstr(s, "long enough password"), "%s", s);
    sr_rec_close(&h);
    sr_buf_release(&b);
    sr_buf_release(&js);
}
