/* tests/api/test_revoke.c -- revocation at once (R-ID-4, docs/admin.md
 * "Revocation") in process, against a real engine (tests/support/brokertest.h):
 * the registry generation moves after a committed registry change and only
 * then; the registry hook gets the committed changes before the command's
 * callback; a session's check (api/loginguard.h sr_login_seen) stands while
 * nothing of its principal changed and ends it when the principal is
 * disabled, deleted or its secret rotated (also while a login was being
 * checked); a disabled principal has no stored hash to log in with and no
 * grants (nothing is delivered to it); a sheet import keeps it disabled;
 * the token table's sweep. tests/integration/test_revoke.py drives the same
 * through the binary: live sessions over HTTP and MQTT. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/httpu.h"
#include "api/loginguard.h"
#include "brokertest.h"
#include "engsuite.h"
#include "engine/records.h"
#include "engine/secret.h"

/* the sheets' parts: the operator and its gateway; app A1 (A2: below); the
 * masters and the header of the grants */
#define RV_HEAD                                                                                                        \
    "#suiro-setup-sheet v1\n"                                                                                          \
    "[operator]\nid,name\nrv,Revocation\n\n"                                                                          \
    "[gateways]\nid,name,secret\nG1,g1,revoke-g1-secret-01\n\n"                                                       \
    "[apps]\nid,name,secret,push_url\nA1,a1,revoke-a1-secret-01,\n"
#define RV_A2 "A2,a2,revoke-a2-secret-01,\n"
#define RV_MASTERS                                                                                                     \
    "\n[facilities]\nid,name\nF,f\n\n"                                                                                 \
    "[equipment]\nid,facility,name\nE,F,e\n\n"                                                                          \
    "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\n\n"                                                              \
    "[datapoints]\nid,device,name,type,unit,min,max,kind\n"                                                            \
    "N,D1,n,number,m,0,100,both\nM,D1,m,number,,,,both\n\n"                                                              \
    "[grants]\napp,datapoint,access\n"

static const char *SHEET = RV_HEAD RV_A2 RV_MASTERS "A1,N,read\nA1,M,read\nA2,N,read\n";

/* the same, A1 no longer granted M */
static const char *SHEET_NARROW = RV_HEAD RV_A2 RV_MASTERS "A1,N,read\nA2,N,read\n";

/* A2 and its grant gone (deleted) */
static const char *SHEET_NO_A2 = RV_HEAD RV_MASTERS "A1,N,read\nA1,M,read\n";

static bt t;
static void setup(void) { cr_assert_eq(bt_open(&t, SHEET, "rv", NULL, 0), SR_OK); }
static void teardown(void) { bt_close(&t); }
TestSuite(revoke, .init = setup, .fini = teardown, .timeout = 60);

/* Put the app or gateway id again as it is stored, with disabled and (if
 * secret) a new secret. The engine's result code. */
static int put(sr_reg_kind kind, const char *id, int disabled, const char *secret)
{
    sr_result res;
    return es_reg_put(t.eng, "rv", kind, id, disabled, secret, &res);
}

static sr_buf stored(char kind, const char *id)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_login_stored(t.eng, kind, "rv", id, &b);
    return b;
}

/* ---- the generation and the hook -------------------------------------------- */

#define MAXCH 16
typedef struct seen_changes {
    pthread_mutex_t mu;
    sr_reg_committed ch[MAXCH];
    char op[MAXCH][72], id[MAXCH][72];
    size_t n, calls;
    uint64_t gen_at_call; /* the generation the hook saw: already bumped */
} seen_changes;

static void hook(void *ctx, const sr_reg_committed *ch, size_t n)
{
    seen_changes *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->gen_at_call = sr_engine_registry_gen(t.eng);
    for (size_t i = 0; i < n && s->n < MAXCH; i++, s->n++) {
        s->ch[s->n] = ch[i];
        snprintf(s->op[s->n], 72, "%s", ch[i].op);
        snprintf(s->id[s->n], 72, "%s", ch[i].id);
    }
    pthread_mutex_unlock(&s->mu);
}

Test(revoke, the_generation_moves_after_a_committed_registry_change_and_only_then)
{
    uint64_t g0 = sr_engine_registry_gen(t.eng);
    cr_assert_eq(put(SR_RG_APP, "A1", 0, NULL), SR_OK);
    uint64_t g1 = sr_engine_registry_gen(t.eng);
    cr_expect_gt(g1, g0, "a RegistryPut moves it");
    /* an event that is not the registry's: it stays */
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"rv", "A1", SR_ACTOR_APP, NULL, "127.0.0.1"};
    cr_assert_eq(sr_cmd_auth(&env, SR_ACTOR_APP, "A1", 0, "password", "wrong", &b), SR_OK);
    sr_slice sl = {b.data, b.len};
    sr_result res;
    cr_assert_eq(sr_engine_submit_wait(t.eng, &sl, 1, &res), SR_OK);
    cr_assert_eq(res.rc, SR_OK);
    sr_buf_release(&b);
    cr_expect_eq(sr_engine_registry_gen(t.eng), g1, "an auth event does not move it");
    /* a refused registry put (a vendor that is not registered): nothing committed, it stays */
    sr_rec r = SR_REC_INIT;
    sr_reg_entry e;
    cr_assert_eq(sr_read_registry(t.eng, "rv", SR_RG_APP, "A1", &r, &e), SR_OK);
    e.vendor_id = "no-such-vendor";
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_registry_put(&env, &e, &b), SR_OK);
    sr_rec_close(&r);
    sl = (sr_slice){b.data, b.len};
    res.rc = SR_OK;
    cr_expect_neq(sr_engine_submit_wait(t.eng, &sl, 1, &res), SR_OK, "the put is refused");
    cr_expect_eq(res.rc, SR_EINVAL, "%s", res.err.msg);
    sr_buf_release(&b);
    cr_expect_eq(sr_engine_registry_gen(t.eng), g1, "a refused put does not move it");
    /* a RegistryDelete (a grant revoked by a sheet import) moves it */
    cr_assert_eq(bt_import(&t, SHEET_NARROW), SR_OK);
    cr_expect_gt(sr_engine_registry_gen(t.eng), g1);
}

Test(revoke, the_hook_gets_the_committed_changes_before_the_command_is_answered)
{
    seen_changes s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sr_engine_on_registry(t.eng, hook, &s);
    cr_assert_eq(put(SR_RG_APP, "A1", 1, NULL), SR_OK);
    /* sr_engine_submit_wait returned after the callback: the hook ran before it */
    pthread_mutex_lock(&s.mu);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.op[0], "rv");
    cr_expect_str_eq(s.id[0], "A1");
    cr_expect_eq(s.ch[0].kind, SR_RG_APP);
    cr_expect_eq(s.ch[0].disabled, 1);
    cr_expect_eq(s.ch[0].deleted, 0);
    cr_expect_eq(s.gen_at_call, sr_engine_registry_gen(t.eng), "the generation moved before the hook");
    pthread_mutex_unlock(&s.mu);
    /* a sheet import that deletes A2 and its grant: two deletes in one call */
    cr_assert_eq(bt_import(&t, SHEET_NO_A2), SR_OK);
    pthread_mutex_lock(&s.mu);
    int app = 0, grant = 0;
    for (size_t i = 1; i < s.n; i++) {
        app += s.ch[i].kind == SR_RG_APP && s.ch[i].deleted && !strcmp(s.id[i], "A2");
        grant += s.ch[i].kind == SR_RG_GRANT && s.ch[i].deleted;
    }
    cr_expect_eq(app, 1, "A2's delete reached the hook");
    cr_expect_eq(grant, 1, "its grant's delete reached the hook");
    pthread_mutex_unlock(&s.mu);
    sr_engine_on_registry(t.eng, NULL, NULL);
    size_t calls = s.calls;
    cr_assert_eq(put(SR_RG_APP, "A1", 0, NULL), SR_OK);
    cr_expect_eq(s.calls, calls, "a removed hook is not called");
}

/* ---- a session's check -------------------------------------------------------- */

Test(revoke, a_session_stands_until_its_principal_is_disabled_rotated_or_deleted)
{
    sr_buf st = stored('a', "A1");
    cr_assert_gt(st.len, 0);
    sr_login_seen s;
    cr_assert_null(sr_login_seen_init(t.eng, 'a', "rv", "A1", &st, &s), "a login that passed stands");
    cr_expect_null(sr_login_recheck(t.eng, 'a', "rv", "A1", &s), "nothing changed");
    /* a grant narrowed: the generation moved, the session stands (its grants are re-read) */
    uint64_t before = s.gen;
    cr_assert_eq(bt_import(&t, SHEET_NARROW), SR_OK);
    cr_assert_neq(s.gen, sr_engine_registry_gen(t.eng));
    cr_expect_null(sr_login_recheck(t.eng, 'a', "rv", "A1", &s));
    cr_expect_eq(s.gen, sr_engine_registry_gen(t.eng), "checked at the new generation");
    cr_expect_gt(s.gen, before);
    /* another app's change: A1 stands */
    cr_assert_eq(put(SR_RG_APP, "A2", 0, "revoke-a2-secret-02"), SR_OK);
    cr_expect_null(sr_login_recheck(t.eng, 'a', "rv", "A1", &s));
    /* A1's secret rotated: the session ends */
    cr_assert_eq(put(SR_RG_APP, "A1", 0, "revoke-a1-secret-02"), SR_OK);
    cr_expect_str_eq(sr_login_recheck(t.eng, 'a', "rv", "A1", &s), "secret rotated");
    /* a login checked against the old hash, passed after the rotation: refused */
    cr_expect_str_eq(sr_login_seen_init(t.eng, 'a', "rv", "A1", &st, &s), "secret rotated");
    sr_buf_release(&st);
    st = stored('a', "A1");
    cr_assert_null(sr_login_seen_init(t.eng, 'a', "rv", "A1", &st, &s), "a login with the new secret stands");
    /* disabled: the session ends, no hash to log in with, no new session */
    cr_assert_eq(put(SR_RG_APP, "A1", 1, NULL), SR_OK);
    cr_expect_str_eq(sr_login_recheck(t.eng, 'a', "rv", "A1", &s), "disabled");
    sr_buf none = stored('a', "A1");
    cr_expect_eq(none.len, 0, "a disabled app has no stored hash: its login fails as a wrong secret does");
    sr_buf_release(&none);
    cr_expect_str_eq(sr_login_seen_init(t.eng, 'a', "rv", "A1", NULL, &s), "disabled", "not by a certificate either");
    /* enabled again: a login stands again */
    cr_assert_eq(put(SR_RG_APP, "A1", 0, NULL), SR_OK);
    cr_expect_null(sr_login_seen_init(t.eng, 'a', "rv", "A1", &st, &s));
    sr_buf_release(&st);
    /* deleted (the sheet without A2) */
    sr_login_seen s2;
    cr_assert_null(sr_login_seen_init(t.eng, 'a', "rv", "A2", NULL, &s2));
    cr_assert_eq(bt_import(&t, SHEET_NO_A2), SR_OK);
    cr_expect_str_eq(sr_login_recheck(t.eng, 'a', "rv", "A2", &s2), "deleted");
    cr_expect_str_eq(sr_login_seen_init(t.eng, 'a', "rv", "A2", NULL, &s2), "not registered");
    /* the same import gave A1 the sheet's secret again (not the one it logged in with): rotated */
    cr_expect_str_eq(sr_login_recheck(t.eng, 'a', "rv", "A1", &s), "secret rotated");
}

Test(revoke, a_gateway_session_ends_when_it_is_disabled_or_rotated)
{
    sr_buf st = stored('g', "G1");
    sr_login_seen s;
    cr_assert_null(sr_login_seen_init(t.eng, 'g', "rv", "G1", &st, &s));
    cr_assert_eq(put(SR_RG_GATEWAY, "G1", 0, "revoke-g1-secret-02"), SR_OK);
    cr_expect_str_eq(sr_login_recheck(t.eng, 'g', "rv", "G1", &s), "secret rotated");
    sr_buf_release(&st);
    st = stored('g', "G1");
    cr_assert_null(sr_login_seen_init(t.eng, 'g', "rv", "G1", &st, &s));
    cr_assert_eq(put(SR_RG_GATEWAY, "G1", 1, NULL), SR_OK);
    cr_expect_str_eq(sr_login_recheck(t.eng, 'g', "rv", "G1", &s), "disabled");
    sr_buf none = stored('g', "G1");
    cr_expect_eq(none.len, 0);
    sr_buf_release(&none);
    sr_buf_release(&st);
}

Test(revoke, disabled_round_trips_and_a_sheet_import_keeps_it)
{
    cr_assert_eq(put(SR_RG_GATEWAY, "G1", 1, NULL), SR_OK);
    cr_assert_eq(put(SR_RG_APP, "A1", 1, NULL), SR_OK);
    cr_assert_eq(bt_import(&t, SHEET), SR_OK); /* the sheet has no disabled column */
    sr_rec r = SR_REC_INIT;
    sr_reg_entry e;
    cr_assert_eq(sr_read_registry(t.eng, "rv", SR_RG_APP, "A1", &r, &e), SR_OK);
    cr_expect_eq(e.disabled, 1, "the import did not enable A1");
    cr_assert_eq(sr_read_registry(t.eng, "rv", SR_RG_GATEWAY, "G1", &r, &e), SR_OK);
    cr_expect_eq(e.disabled, 1, "nor G1");
    cr_expect_gt(e.secret_hash.len, 0, "its secret is kept");
    cr_assert_eq(sr_read_registry(t.eng, "rv", SR_RG_APP, "A2", &r, &e), SR_OK);
    cr_expect_eq(e.disabled, 0);
    sr_rec_close(&r);
}

Test(revoke, a_disabled_or_deleted_app_has_no_grants)
{
    sr_grant *g = NULL;
    size_t n = 0;
    cr_assert_eq(sr_grants_load(t.eng, "rv", "A1", &g, &n), SR_OK);
    cr_expect_eq(n, 2);
    free(g);
    cr_assert_eq(put(SR_RG_APP, "A1", 1, NULL), SR_OK);
    cr_assert_eq(sr_grants_load(t.eng, "rv", "A1", &g, &n), SR_OK);
    cr_expect_eq(n, 0, "nothing is delivered to a disabled app");
    free(g);
    cr_assert_eq(put(SR_RG_APP, "A1", 0, NULL), SR_OK);
    cr_assert_eq(sr_grants_load(t.eng, "rv", "A1", &g, &n), SR_OK);
    cr_expect_eq(n, 2, "enabled: its grants again");
    free(g);
    cr_assert_eq(bt_import(&t, SHEET_NARROW), SR_OK);
    cr_assert_eq(sr_grants_load(t.eng, "rv", "A1", &g, &n), SR_OK);
    cr_expect_eq(n, 1, "narrowed");
    cr_expect(sr_grants_allow(g, n, "N", 1));
    cr_expect_not(sr_grants_allow(g, n, "M", 1));
    free(g);
}

/* ---- the token table's sweep --------------------------------------------------- */

static int dropped;
static void drop(void *p)
{
    (void)p;
    dropped++;
}
static int odd(void *ctx, void *payload)
{
    (void)ctx;
    return *(int *)payload % 2;
}

Test(revoke, the_token_sweep_removes_exactly_what_it_is_told)
{
    sr_tokens *tk = sr_tokens_new(100, sizeof(int), drop);
    cr_assert_not_null(tk);
    char hex[10][65];
    for (int i = 0; i < 10; i++) {
        int64_t exp;
        int *p = sr_tokens_add(tk, 60000, hex[i], &exp);
        cr_assert_not_null(p);
        *p = i;
    }
    dropped = 0;
    cr_expect_eq(sr_tokens_sweep(tk, odd, NULL), 5);
    cr_expect_eq(dropped, 5, "each removed token's drop ran");
    cr_expect_eq(sr_tokens_count(tk), 5);
    for (int i = 0; i < 10; i++) {
        int *p = sr_tokens_lookup(tk, hex[i], 64);
        if (i % 2) cr_expect_null(p, "token %d was removed", i);
        else cr_expect(p && *p == i, "token %d stays", i);
    }
    sr_tokens_free(tk);
}
