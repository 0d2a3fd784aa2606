/* tests/engine/test_erasure.c -- the log's erasure by destroying keys (issue
 * #16, R-ST-6; docs/keys.md "Retention and erasure", docs/retention.md):
 * operators A and B; A's values of a past data key's epoch cut by retention,
 * then that key destroyed by the same sweep (its KeyEvent first); then with
 * the master key no record of the whole log holds A's erased plaintexts, a
 * byte scan of the data directory (log, keys, blobs; the index behind a
 * flag) and of a backup taken after the erasure finds none, a backup taken
 * before still holds the destroyed key wrapped, B is intact, the log
 * verifies and names the erased records, and a rebuild equals the live index
 * and reports them. The control: the same decrypting walk finds the
 * plaintexts before the sweep. Crash safety: a "destroyed" KeyEvent without
 * its tombstone (a crash between the two) is finished by the replay of a
 * rebuild and by the next sweep; an active, config or unknown key is refused.
 * Records (index layout 9): A's document, file (and its blob), finished
 * request and stopped monitor of the epoch are cut first and the key then
 * destroyed, no plaintext left; a request still open holds the key until it
 * is finished and past its period; the kill -9 rounds write a document per
 * epoch, which the sweeps cut before its key goes.
 */
#include <criterion/criterion.h>

#include "engine/backup.h"
#include "engine/engine_int.h"
#include "engine/records.h"
#include "engsuite.h"
#include "kill9.h"
#include "storage/keyring.h"
#include "storage/log.h"
#include "testutil.h"

#include <dirent.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The index is sealed by another part of issue #16 (INDEXENC). Until that is
 * merged, LMDB pages (live or freed) may still hold a cut value's bytes: the
 * scan of index/ is reported, and asserted only with this flag set to 1 (the
 * lead flips it at the merge). */
#ifndef SR_ERASURE_KILL9
#define SR_ERASURE_KILL9 0
#endif
#if SR_ERASURE_KILL9 /* the kill -9 rounds use a few of the helpers */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#ifndef SR_ERASURE_INDEX_SEALED
#define SR_ERASURE_INDEX_SEALED 1 /* the index is sealed (layout 8, engine/ixseal.c) */
#endif

static char *top;
static _Atomic int64_t clock_now;
static int64_t test_clock(void) { return clock_now; }
static void setup(void) { top = tu_tmpdir("erasure"); }
static void teardown(void)
{
    if (!getenv("SR_ERASURE_KEEP")) tu_rmrf(top);
    free(top);
}
TestSuite(erasure, .init = setup, .fini = teardown, .timeout = 300);

enum { DAY = 86400000 };
static const sr_vtype STR[] = {SR_VT_STRING};
static sr_key MASTER;

static sr_engine_sync g_sync = SR_ENGINE_SYNC_ALWAYS; /* a test may run without (the destruction syncs itself) */

static sr_engine_opts opts(void)
{
    return (sr_engine_opts){.key = &MASTER, .key_source = "test", .clock_ms = test_clock, .head_max = 4,
                            .zstd_level = -100 /* no compression: a plaintext would show */,
                            .sync = g_sync};
}

static sr_engine *open_ok(const char *d)
{
    sr_engine_opts o = opts();
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(d, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open %s: %s: %s", d, sr_err_name(rc), ei.msg);
    return e;
}

/* 4 string values "<tag>-<i>" of op's P000 at day d (one event: one chunk) */
static int64_t last_day = 0; /* put4: the 4th value's day (0: d) */

static void put4(sr_engine *e, const char *op, const char *tag, int64_t d)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, op, "P000", &p, &t), SR_OK);
    char v[4][32];
    sr_sample s[4];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 4; i++) {
        snprintf(v[i], sizeof v[i], "%s-%d", tag, i);
        s[i].ts = i == 3 && last_day ? last_day * DAY : d * DAY + i * 3600000;
        s[i].v.str.s = v[i];
        s[i].v.str.slen = (uint32_t)strlen(v[i]);
    }
    sr_result r;
    int rc = et_put(e, op, "GW1", p, SR_VT_STRING, s, 4, NULL, &r);
    cr_assert_eq(rc, SR_OK, "%s", sr_err_name(rc));
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static int submit_key(sr_engine *e, const char *op, const sr_key_rec *k, sr_result *r)
{
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_key_ev(&env, k, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, r);
        if (!rc) rc = r->rc;
    }
    sr_buf_release(&b);
    return rc;
}

static void period(sr_engine *e, const char *op, const char *cls, uint32_t days)
{
    sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = cls, .retention_days = days};
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_registry_put(&env, &re, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

/* the key of (op, data, epoch) */
static sr_keyinfo key_of(sr_engine *e, const char *op, uint32_t epoch)
{
    sr_keyinfo *ks, out = {0};
    size_t n;
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ks[i].operator_id, op) && ks[i].cls == SR_KC_DATA && ks[i].epoch == epoch) out = ks[i];
    sr_free(ks);
    cr_assert_neq(out.id, 0, "no key %s data epoch %u", op, epoch);
    return out;
}

/* With the master key: how many records of the whole log hold needle (every
 * section its keyring can open), and how many are erased; "destroyed"
 * KeyEvents counted in *destroyed (if given). */
static int plain_hits(const char *d, const char *needle, uint64_t *erased, int *destroyed)
{
    char kd[1300], ld[1300];
    snprintf(kd, sizeof kd, "%s/keys", d);
    snprintf(ld, sizeof ld, "%s/log", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.key = &MASTER, .keys = sr_keyring_keys(kr), .readonly = 1};
    sr_log *lg;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int rc, hits = 0;
    if (erased) *erased = 0;
    if (destroyed) *destroyed = 0;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) {
        if (rc == SR_EERASED) {
            if (erased) (*erased)++;
            continue;
        }
        hits += memmem(rec.data, rec.len, needle, strlen(needle)) != NULL;
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev);
        if (destroyed && ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "destroyed"))
            (*destroyed)++;
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    cr_assert_eq(rc, SR_DONE, "%s", sr_log_iter_errinfo(it)->msg);
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    return hits;
}

/* how many files under p (recursively) hold needle */
static int scan_tree(const char *p, const char *needle)
{
    DIR *dd = opendir(p);
    if (!dd) return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char f[2000];
        snprintf(f, sizeof f, "%s/%s", p, de->d_name);
        struct stat st;
        if (stat(f, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            found += scan_tree(f, needle);
            continue;
        }
        size_t len;
        uint8_t *b = tu_read_file(f, &len);
        found += b && memmem(b, len, needle, strlen(needle)) != NULL;
        free(b);
    }
    closedir(dd);
    return found;
}

static int scan_sub(const char *d, const char *sub, const char *needle)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", d, sub);
    return scan_tree(p, needle);
}

static void make_platform_key(const char *dir)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/platform-key.pem", dir);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert(k);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    EVP_PKEY_free(k);
}

static sr_retention_cfg CFG = {.default_days = 0, .audit_days = 0, .audit_floor_days = 365, .batch = 3};

/* scenario's records of epoch 1 (0: none): A's document "ERASE-A-DOC", file
 * a/one.txt ("ERASE-A-FILE" bytes, sealed by A's data key), request req1
 * (finished, or with 2 still dispatched) and stopped monitor mon1; B's
 * document "KEEP-B-DOC" and file b/one.txt. */
static int with_records = 0;
static uint8_t sha_a[32], sha_b[32];
static uint32_t kid_a, kid_b;

static void records(sr_engine *e)
{
    es_doc(e, "opA", "d1", "{\"v\":\"ERASE-A-DOC\"}");
    es_file(e, "opA", "a/one.txt", "ERASE-A-FILE", clock_now, sha_a, &kid_a);
    es_request(e, "opA", "req1", with_records == 2 ? SR_RS_DISPATCHED : SR_RS_SUCCEEDED);
    es_monitor(e, "opA", "mon1", SR_MS_STOPPED);
    es_doc(e, "opB", "d1", "{\"v\":\"KEEP-B-DOC\"}");
    es_file(e, "opB", "b/one.txt", "KEEP-B-FILE", clock_now, sha_b, &kid_b);
}

/* A's data key of epoch 1 (days 10 to 20) holds "ERASE-A-*"; its epoch 2
 * "NEW-A-*" (day 399); B "KEEP-B-*" (day 10, no period). Clock: day 400. */
static void scenario(sr_engine *e)
{
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opA", 1, STR, 1), SR_OK);
    cr_assert_eq(et_setup_masters(e, "opB", 1, STR, 1), SR_OK);
    put4(e, "opA", "ERASE-A", 5);
    put4(e, "opA", "ERASE-A2", 6);
    put4(e, "opB", "KEEP-B", 5);
    if (last_day) put4(e, "opA", "STRADDLE-A", 7); /* days 7 to last_day: one chunk */
    if (with_records) records(e);
    clock_now = (int64_t)20 * DAY;
    sr_result r;
    const sr_key_rec rot = {.action = "rotate", .key_operator = "opA", .key_class = "data"};
    cr_assert_eq(submit_key(e, "opA", &rot, &r), SR_OK, "%s", r.err.msg);
    clock_now = (int64_t)400 * DAY;
    put4(e, "opA", "NEW-A", 399);
    period(e, "opA", "default", 30);
}

/* audit-class records (the suite and the kill -9 rounds) */
static uint64_t aud_submit(sr_engine *e, int built, sr_buf *b)
{
    sr_result r;
    cr_assert_eq(es_submit1(e, built, b, &r), SR_OK, "%s", r.err.msg);
    return r.seq;
}

static uint64_t aud_alarm(sr_engine *e, const char *op, const char *state, const char *id, const char *rule,
                          const char *msg)
{
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    sr_alarm_step st = {.state = state, .id = id, .rule = rule, .subject = "s", .source = "test", .message = msg,
                        .comment = "", .level = SR_AL_MAJOR};
    sr_buf b;
    sr_buf_init(&b);
    return aud_submit(e, sr_cmd_alarm(&env, &st, &b), &b);
}

static void aud_alive(sr_engine *e, const char *op, sr_alive_state state, const char *remote)
{
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_alive_rec a = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = state,
                      .reason = state == SR_AS_ONLINE ? SR_AR_CONNECT : SR_AR_DISCONNECT, .binding = "mqtt",
                      .remote = remote, .will = ""};
    sr_buf b;
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_alive(&env, &a, &b), &b);
}

static void aud_session(sr_engine *e, const char *op, const uint8_t h[32], int64_t expires, const char *reason)
{
    sr_cmd_env env = {op, "app1", SR_ACTOR_APP, NULL, "10.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_token_session(&env, h, expires, SR_SS_CONNECTED, reason, &b), &b);
}

static void aud_login(sr_engine *e, const char *op, const char *reason)
{
    sr_cmd_env env = {op, "u1", SR_ACTOR_USER, NULL, "10.7.7.7"};
    sr_buf b;
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_auth(&env, SR_ACTOR_USER, "u1", 0, "password", reason, &b), &b);
}

static void aud_notify(sr_engine *e, const char *op, uint64_t alarm_seq, const char *delivery)
{
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_notify_rec n = {.outcome = "delivered", .alarm_seq = alarm_seq, .target_id = "t1", .delivery_id = delivery,
                       .error = "", .channel = "webhook", .attempts = 2};
    sr_buf b;
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_notify(&env, &n, &b), &b);
}

#if !SR_ERASURE_KILL9 /* the suite test_erasure; test_erasure_kill9 is the kill -9 rounds below */
Test(erasure, a_key_past_every_period_is_destroyed_and_its_plaintexts_are_gone_for_good)
{
    char d[1200], set[1200], before[1200];
    snprintf(d, sizeof d, "%s/data", top);
    snprintf(set, sizeof set, "%s/backups", top);
    cr_assert_eq(mkdir(set, 0700), 0);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    scenario(e);
    sr_keyinfo k1 = key_of(e, "opA", 1);
    cr_assert_eq(k1.state, SR_KS_RETIRED);
    /* the control: before the sweep the master key reads A's plaintexts */
    cr_assert_gt(plain_hits(d, "ERASE-A-", NULL, NULL), 0, "the walk sees A's plaintext before the erasure");
    cr_assert_gt(plain_hits(d, "KEEP-B-", NULL, NULL), 0);
    sr_backup_info bi;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_backup(e, set, NULL, &bi, &ei), SR_OK, "%s", ei.msg);
    snprintf(before, sizeof before, "%s/%s", set, bi.name);

    sr_retention_report rep;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 2, "A's two old chunks (%llu)", (unsigned long long)rep.chunks);
    cr_assert_eq(rep.keys_destroyed, 1, "A's epoch 1 (held %llu)", (unsigned long long)rep.keys_held);
    sr_keyinfo k1b = key_of(e, "opA", 1), k2 = key_of(e, "opA", 2);
    cr_assert_eq(k1b.state, SR_KS_DESTROYED, "the tombstone");
    cr_assert_eq(k2.state, SR_KS_ACTIVE, "the active key stays");
    cr_assert_eq(key_of(e, "opB", 1).state, SR_KS_ACTIVE, "B's key stays");
    /* a second sweep destroys nothing more */
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 0);
    cr_assert_eq(sr_engine_backup(e, set, NULL, &bi, &ei), SR_OK, "%s", ei.msg);
    char after[1300];
    snprintf(after, sizeof after, "%s/%s", set, bi.name);
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);

    /* with the master key, no record of the log holds A's erased values; the
     * destroyed KeyEvent is there; A's new values and B's are intact */
    uint64_t erased;
    int destroyed;
    cr_assert_eq(plain_hits(d, "ERASE-A", &erased, &destroyed), 0, "an erased plaintext is readable");
    cr_assert_eq(erased, 2, "the two records of A's epoch 1 are erased (%llu)", (unsigned long long)erased);
    cr_assert_eq(destroyed, 1, "one \"destroyed\" KeyEvent");
    cr_assert_gt(plain_hits(d, "NEW-A-", NULL, NULL), 0, "A's new epoch is intact");
    cr_assert_gt(plain_hits(d, "KEEP-B-", NULL, NULL), 0, "B is intact");
    /* byte scans: the data directory and the backup after the erasure */
    const char *subs[3] = {"log", "keys", "blobs"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(scan_sub(d, subs[i], "ERASE-A"), 0, "a plaintext in %s", subs[i]);
        cr_assert_eq(scan_sub(after, subs[i], "ERASE-A"), 0, "a plaintext in the backup's %s", subs[i]);
    }
    int ix = scan_sub(d, "index", "ERASE-A"), bix = scan_sub(after, "index", "ERASE-A");
    if (ix || bix)
        if (getenv("SR_ERASURE_SAY")) fprintf(stderr, "erasure: the index (not sealed yet) holds an erased plaintext in %d file(s), the backup's in %d\n", ix, bix);
    if (SR_ERASURE_INDEX_SEALED) cr_assert_eq(ix + bix, 0, "a plaintext in the sealed index");
    /* the backup before the erasure still holds the destroyed key, wrapped */
    char bk[1400];
    snprintf(bk, sizeof bk, "%s/keys", before);
    sr_keyring *kr = NULL;
    cr_assert_eq(sr_keyring_open(NULL, bk, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_keyinfo old;
    cr_assert_eq(sr_keyring_info(kr, k1.id, &old), SR_OK);
    cr_assert_eq(old.state, SR_KS_RETIRED, "a backup taken before holds the key (docs/keys.md)");
    sr_keyring_close(kr);

    /* verify: ok, naming the erased records of A's key */
    char ld[1300], kd[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    cr_assert_eq(sr_keyring_open(NULL, kd, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.key = &MASTER, .keys = sr_keyring_keys(kr), .readonly = 1};
    sr_log_report lr;
    cr_assert_eq(sr_log_verify(ld, &lo, &lr, &ei), SR_OK, "%s", ei.msg);
    cr_assert(lr.ok);
    cr_assert_eq(lr.nerased, 1);
    cr_assert_eq(lr.erased[0].key_id, k1.id);
    cr_assert_eq(lr.erased[0].records, erased);
    sr_keyring_close(kr);

    sr_engine *r = NULL;
    /* the CLI through the real binary: `suiro log verify` (text and JSON)
     * and `suiro rebuild` name the erased records and succeed */
    char kf[1300], cl[4000], out[8192];
    snprintf(kf, sizeof kf, "%s/master.key", top);
    FILE *kfh = fopen(kf, "wb");
    cr_assert(kfh);
    cr_assert_eq(fwrite(MASTER.bytes, 1, SR_KEY_LEN, kfh), SR_KEY_LEN);
    fclose(kfh);
    char want[64];
    snprintf(want, sizeof want, "erased: key 0x%08x 2 records in ", k1.id);
    const char *const clis[3][2] = {{"log verify", ""}, {"log verify", " --json"}, {"rebuild", ""}};
    const char *const wants[3] = {want, "\"erased_records\":2", "erased: 2 records"};
    for (int i = 0; i < 3; i++) {
        snprintf(cl, sizeof cl, "%s %s %s%s --key-file %s 2>&1", SR_SUIRO_BIN, clis[i][0],
                 i < 2 ? ld : d, clis[i][1], kf);
        FILE *pp = popen(cl, "r");
        cr_assert(pp);
        size_t got = fread(out, 1, sizeof out - 1, pp);
        out[got] = 0;
        int st = pclose(pp);
        cr_assert_eq(st, 0, "%s: exit %d: %s", cl, st, out);
        cr_assert(strstr(out, wants[i]), "%s: no \"%s\" in: %s", cl, wants[i], out);
    }
    cr_assert_eq(sr_engine_open(d, &(sr_engine_opts){.key = &MASTER, .clock_ms = test_clock, .head_max = 4}, &r, &ei),
                 SR_OK, "%s", ei.msg);
    uint8_t cli_rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(r, cli_rebuilt), SR_OK);
    cr_assert_eq(sr_engine_close(r), SR_OK);
    cr_assert_eq(memcmp(live, cli_rebuilt, 32), 0, "suiro rebuild after the erasure differs from the live index");

    /* a rebuild equals the live index and reports the erased records */
    char ixd[1300];
    snprintf(ixd, sizeof ixd, "%s/rebuilt", top);
    sr_engine_opts ro = opts();
    ro.index_dir = ixd;
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &ro, &st, &ei), SR_OK, "%s", ei.msg);
    r = NULL;
    cr_assert_eq(st.erased_records, erased);
    cr_assert_eq(st.n_erased, 1);
    cr_assert_str_eq(st.erased[0].operator_id, "opA");
    cr_assert_str_eq(st.erased[0].key_class, "data");
    cr_assert_eq(st.erased[0].epoch, 1);
    cr_assert_gt(st.erased[0].destroyed_ms, 0);
    cr_assert_eq(sr_engine_open(d, &ro, &r, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(r, rebuilt), SR_OK);
    cr_assert_eq(sr_engine_close(r), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "a rebuild after the erasure differs from the live index");
}

Test(erasure, a_key_is_kept_while_a_class_keeps_for_ever_or_a_value_of_its_epoch_remains)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/held", top);
    g_sync = SR_ENGINE_SYNC_NONE; /* the destruction makes its KeyEvent durable itself (sr_log_sync) */
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    last_day = 390; /* a chunk of A's epoch 1 straddling the cut (day 370): the index keeps it */
    scenario(e);
    last_day = 0;
    period(e, "opA", "keep", 0); /* a class kept for ever: no data key of A is ever destroyed */
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 2, "the index is cut all the same");
    cr_assert_eq(rep.keys_destroyed, 0);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_RETIRED);
    period(e, "opA", "keep", 500);
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 0, "day 20 is not before the cut of a 500-day class");
    period(e, "opA", "keep", 30);
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 0, "the straddling chunk of epoch 1 is still in the index");
    cr_assert_eq(rep.keys_held, 1);
    clock_now = (int64_t)430 * DAY; /* the straddling chunk is wholly past */
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 1);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_DESTROYED);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

/* n string values "<tag>-<i>" of op's P000 at day d, hour h0 + i (one event) */
static void putn(sr_engine *e, const char *op, const char *tag, int64_t d, int h0, int n)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, op, "P000", &p, &t), SR_OK);
    char v[8][32];
    sr_sample s[8];
    memset(s, 0, sizeof s);
    cr_assert_leq(n, 8);
    for (int i = 0; i < n; i++) {
        snprintf(v[i], sizeof v[i], "%s-%d", tag, i);
        s[i].ts = d * DAY + (int64_t)(h0 + i) * 3600000;
        s[i].v.str.s = v[i];
        s[i].v.str.slen = (uint32_t)strlen(v[i]);
    }
    sr_result r;
    int rc = et_put(e, op, "GW1", p, SR_VT_STRING, s, (size_t)n, NULL, &r);
    cr_assert_eq(rc, SR_OK, "%s", sr_err_name(rc));
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

/* issue #18 (test_proof_trim's index-differs, part 2), in test_proof_trim's
 * order: A's epoch 1 writes a full chunk (day 5) and then 2 values (day 6)
 * that stay in the point's head (head_max 4); the key is rotated (day 20);
 * the clock moves on and epoch 2 adds 1 value (day 399) to the same head
 * (3 samples, no flush). Erasing epoch 1 needs every trace of it out of the
 * index, the head's too: a rebuild, which cannot read those records,
 * builds a head of NEW alone.
 *   held: at day 400 (cut day 370) the chunk is cut, the head (day 6 to
 *         399) is not wholly past: it holds 2 samples of epoch 1's records,
 *         so the key is held (retention invariant 5; before the fix it was
 *         destroyed and the live head differed from the rebuild's);
 *   cut:  at day 430 (cut day 400) the head is wholly past: the Retention
 *         event that cuts the chunk retires the head too (heads.c
 *         sr__heads_retire: never written, its row gone), the key goes, and
 *         a rebuild, a restart (its heads-only replay) and the live index
 *         are the same. */
static void head_scenario(sr_engine *e, int64_t sweep_day, sr_retention_report *rep)
{
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opA", 1, STR, 1), SR_OK);
    putn(e, "opA", "OLD-CHUNK", 5, 0, 4); /* a chunk */
    putn(e, "opA", "OLD-HEAD", 6, 0, 2);  /* 2 in the head */
    clock_now = (int64_t)20 * DAY;
    sr_result r;
    const sr_key_rec rot = {.action = "rotate", .key_operator = "opA", .key_class = "data"};
    cr_assert_eq(submit_key(e, "opA", &rot, &r), SR_OK, "%s", r.err.msg);
    clock_now = (int64_t)400 * DAY;
    putn(e, "opA", "NEW", 399, 0, 1); /* the same head: 3 samples */
    period(e, "opA", "default", 30);
    clock_now = sweep_day * DAY;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep->chunks, 1, "the old chunk is cut (%llu)", (unsigned long long)rep->chunks);
}

/* live == a rebuild == a restart of d (e open, closed here) */
static void same_as_rebuild(sr_engine *e, const char *d, const char *tag)
{
    uint8_t live[32], rebuilt[32], reopened[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_errinfo ei;
    sr_engine *o = open_ok(d);
    cr_assert_eq(sr_engine_content_hash(o, reopened), SR_OK);
    cr_assert_eq(sr_engine_close(o), SR_OK);
    cr_assert_eq(memcmp(live, reopened, 32), 0, "%s: a restart differs from the live index", tag);
    char ixd[1300];
    snprintf(ixd, sizeof ixd, "%s-rebuilt", d);
    sr_engine_opts ro = opts();
    ro.index_dir = ixd;
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &ro, &st, &ei), SR_OK, "%s", ei.msg);
    sr_engine *rb = NULL;
    cr_assert_eq(sr_engine_open(d, &ro, &rb, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(rb, rebuilt), SR_OK);
    cr_assert_eq(sr_engine_close(rb), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "%s: a rebuild differs from the live index", tag);
}

Test(erasure, a_head_holding_an_epochs_samples_holds_its_key_and_a_head_past_the_cut_is_cut_with_it)
{
    char d[1200];
    g_sync = SR_ENGINE_SYNC_NONE;
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_retention_report rep;

    snprintf(d, sizeof d, "%s/headheld", top);
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    head_scenario(e, 400, &rep);
    cr_assert_eq(rep.keys_destroyed, 0, "the head holds 2 samples of epoch 1's records");
    cr_assert_eq(rep.keys_held, 1);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_RETIRED);
    same_as_rebuild(e, d, "held");

    snprintf(d, sizeof d, "%s/headcut", top);
    e = open_ok(d);
    make_platform_key(d);
    head_scenario(e, 430, &rep);
    cr_assert_eq(rep.keys_destroyed, 1, "the head was wholly past (held %llu)", (unsigned long long)rep.keys_held);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_DESTROYED);
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &p, &t), SR_OK);
    head *h = head_find(e, p);
    cr_assert(!h || (!h->n && !h->first_seq && !h->has_flushed), "the head is retired");
    same_as_rebuild(e, d, "cut");
}

/* issue #18 (test_proof_trim's index-differs, part 1; session 12's
 * f6c5a5a): a Retention event cuts the latest rows of its range's points
 * found in `latest`, not only of points with a chunk in the range. A's
 * epoch 1 writes a chunk (day 5); the key is rotated; epoch 2 writes one
 * value (day 350) that stays in the head and is the point's latest row.
 * At day 400 (cut day 370) the live sweep cuts the chunk, the latest row
 * and the head, and destroys the key. A rebuild never builds the chunk (its
 * record is erased): walking the chunks, its apply of the same event found
 * no point and kept the latest row the live index cut. */
Test(erasure, a_latest_row_is_cut_in_a_rebuild_that_never_built_the_points_chunks)
{
    char d[1200];
    g_sync = SR_ENGINE_SYNC_NONE;
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    snprintf(d, sizeof d, "%s/latestcut", top);
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opA", 1, STR, 1), SR_OK);
    putn(e, "opA", "OLD-CHUNK", 5, 0, 4);
    clock_now = (int64_t)20 * DAY;
    sr_result r;
    const sr_key_rec rot = {.action = "rotate", .key_operator = "opA", .key_class = "data"};
    cr_assert_eq(submit_key(e, "opA", &rot, &r), SR_OK, "%s", r.err.msg);
    clock_now = (int64_t)351 * DAY;
    putn(e, "opA", "NEW", 350, 0, 1);
    period(e, "opA", "default", 30);
    clock_now = (int64_t)400 * DAY;
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.chunks, 1);
    cr_assert_eq(rep.keys_destroyed, 1, "held %llu", (unsigned long long)rep.keys_held);
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &p, &t), SR_OK);
    sr_sample ls;
    int found = 1;
    sr_buf sb;
    sr_buf_init(&sb);
    cr_assert_eq(sr_engine_latest(e, &p, 1, &ls, &found, &sb), SR_OK);
    cr_assert_eq(found, 0, "the latest row (day 350) is cut");
    sr_buf_release(&sb);
    same_as_rebuild(e, d, "latest");
}

/* issue #18 (test_proof_trim's first segment held for ever): the
 * platform's own audit records (operator "": an admin's login, a session,
 * the notifier's mark) follow [retention] audit_days like an operator's.
 * Epoch 1 of the platform's audit key seals them; the key is rotated; 400
 * days on the sweep cuts the rows and the expired session, restates the
 * open session and the mark, and destroys the key (before: never, the
 * candidates skipped operator ""). The mark and the open session survive,
 * and a rebuild (which cannot read epoch 1) and a restart equal the live
 * index. */
static sr_keyinfo key_cls(sr_engine *e, const char *op, int cls, uint32_t epoch);

Test(erasure, the_platforms_audit_key_is_destroyed_past_the_audit_period)
{
    char d[1200];
    g_sync = SR_ENGINE_SYNC_NONE;
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    snprintf(d, sizeof d, "%s/platform-audit", top);
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    clock_now = (int64_t)10 * DAY;
    aud_login(e, "", "PLATFORM-LOGIN");
    uint8_t h_open[32], h_gone[32];
    memset(h_open, 0x5a, sizeof h_open);
    memset(h_gone, 0xa5, sizeof h_gone);
    sr_cmd_env uenv = {"", "admin", SR_ACTOR_USER, NULL, "10.0.0.1"}; /* a platform admin's sessions */
    sr_buf b;
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_token_session(&uenv, h_open, (int64_t)1000 * DAY, SR_SS_CONNECTED, "open", &b), &b);
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_token_session(&uenv, h_gone, (int64_t)11 * DAY, SR_SS_CONNECTED, "expires", &b), &b);
    sr_cmd_env env = {"", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_notify_rec mk = {.outcome = "mark", .through = 7, .target_id = "", .delivery_id = "", .error = "", .channel = ""};
    sr_buf_init(&b);
    aud_submit(e, sr_cmd_notify(&env, &mk, &b), &b);
    sr_keyinfo k1 = key_cls(e, "", SR_KC_AUDIT, 1);
    clock_now = (int64_t)20 * DAY;
    sr_result r;
    const sr_key_rec rot = {.action = "rotate", .key_operator = "", .key_class = "audit"};
    cr_assert_eq(submit_key(e, "", &rot, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(key_cls(e, "", SR_KC_AUDIT, 1).state, SR_KS_RETIRED);
    clock_now = (int64_t)400 * DAY;
    sr_retention_cfg cfg = CFG;
    cfg.audit_days = 30;
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &cfg, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_geq(rep.audit, 3, "the platform's audit rows are cut (%llu)", (unsigned long long)rep.audit);
    cr_assert_geq(rep.audit_state, 1, "its expired session is cut");
    cr_assert_geq(rep.restated, 2, "its open session and the mark are restated (%llu)", (unsigned long long)rep.restated);
    cr_assert_geq(rep.keys_destroyed, 1, "held %llu", (unsigned long long)rep.keys_held);
    sr_keyinfo k1b = key_cls(e, "", SR_KC_AUDIT, 1);
    cr_assert_eq(k1b.id, k1.id);
    cr_assert_eq(k1b.state, SR_KS_DESTROYED, "the platform's audit key of epoch 1");
    uint64_t through = 0;
    cr_assert_eq(sr_engine_notify_mark(e, &through), SR_OK);
    cr_assert_eq(through, 7, "the mark is kept");
    same_as_rebuild(e, d, "platform audit");
}

/* issue #18: op's "write" rows (its writes' summaries, WriteAudit: audit
 * class, sealed by op's AUDIT key) as "detail|" strings, and their count */
static int write_rows(sr_engine *e, const char *op, char *all, size_t cap)
{
    sr_audit_query q = {.op = op, .kind = "write", .limit = 1000};
    sr_rec r = SR_REC_INIT;
    int more = 0, n = 0;
    cr_assert_eq(sr_list_audit(e, &q, &r, &more), SR_OK);
    sr_audit_rec a;
    size_t l = 0;
    all[0] = 0;
    while (sr_rec_next_audit(&r, &a) == 1) {
        n++;
        l += (size_t)snprintf(all + l, l < cap ? cap - l : 0, "%s %s|", a.action, a.detail);
        if (l >= cap) l = cap - 1;
    }
    sr_rec_close(&r);
    return n;
}

Test(erasure, documents_files_requests_and_monitors_of_an_epoch_are_cut_and_then_erased_with_it)
{
    char d[1200], set[1200];
    snprintf(d, sizeof d, "%s/records", top);
    snprintf(set, sizeof set, "%s/backups", top);
    cr_assert_eq(mkdir(set, 0700), 0);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    with_records = 1;
    scenario(e);
    with_records = 0;
    cr_assert_neq(kid_a, 0, "A's file is a version 2 blob");
    cr_assert_gt(plain_hits(d, "ERASE-A-DOC", NULL, NULL), 0, "the control: the walk reads A's document");
    cr_assert_eq(sr_blob_exists_keyed(sr_engine_blobs(e), sha_a, kid_a), SR_OK);
    /* A's writes are listed as write rows (audit class: their data key's
     * destruction below leaves them, the audit period cuts them) */
    char wa0[8192], wa1[8192];
    int nw0 = write_rows(e, "opA", wa0, sizeof wa0);
    cr_assert_geq(nw0, 4, "opA's writes: %s", wa0);
    cr_assert(strstr(wa0, "document:notes/d1") && strstr(wa0, "file:a/one.txt") && strstr(wa0, "request:req1") &&
                  strstr(wa0, "monitor:mon1") && strstr(wa0, "measurements x1"),
              "opA's write rows name its writes: %s", wa0);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(write_rows(e, "opA", wa1, sizeof wa1), nw0, "the write rows outlive the data key (%s)", wa1);
    cr_assert_str_eq(wa1, wa0);
    cr_assert_eq(rep.documents + rep.files + rep.requests + rep.monitors, 4, "A's four records (%llu %llu %llu %llu)",
                 (unsigned long long)rep.documents, (unsigned long long)rep.files,
                 (unsigned long long)rep.requests, (unsigned long long)rep.monitors);
    cr_assert_eq(rep.blobs, 1);
    cr_assert_eq(rep.keys_destroyed, 1, "A's epoch 1 no longer waits for them (held %llu)",
                 (unsigned long long)rep.keys_held);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_DESTROYED);
    cr_assert(!es_doc_there(e, "opA", "d1") && !es_file_there(e, "opA", "a/one.txt"));
    cr_assert(!es_request_there(e, "opA", "req1") && !es_monitor_there(e, "opA", "mon1"));
    cr_assert_eq(sr_blob_exists_keyed(sr_engine_blobs(e), sha_a, kid_a), SR_ENOTFOUND, "A's blob is gone");
    cr_assert(es_doc_there(e, "opB", "d1") && es_file_there(e, "opB", "b/one.txt"), "B intact");
    cr_assert_eq(sr_blob_exists_keyed(sr_engine_blobs(e), sha_b, kid_b), SR_OK, "B's blob intact");
    sr_backup_info bi;
    cr_assert_eq(sr_engine_backup(e, set, NULL, &bi, &ei), SR_OK, "%s", ei.msg);
    char after[1300];
    snprintf(after, sizeof after, "%s/%s", set, bi.name);
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(plain_hits(d, "ERASE-A", NULL, NULL), 0, "an erased plaintext is readable");
    cr_assert_gt(plain_hits(d, "KEEP-B-DOC", NULL, NULL), 0, "B is intact");
    const char *subs[4] = {"log", "keys", "blobs", "index"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(scan_sub(d, subs[i], "ERASE-A"), 0, "a plaintext in %s", subs[i]);
        cr_assert_eq(scan_sub(after, subs[i], "ERASE-A"), 0, "a plaintext in the backup's %s", subs[i]);
    }
    /* a rebuild equals the live index, both ways (engine/replay.c invariant 5) */
    char ixd[1300];
    snprintf(ixd, sizeof ixd, "%s/records-rebuilt", top);
    sr_engine_opts ro = opts();
    ro.index_dir = ixd;
    es_rebuild_both_ways(d, &ro, live);
    sr_engine *r = NULL;
    cr_assert_eq(sr_engine_open(d, &ro, &r, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(r, rebuilt), SR_OK);
    cr_assert(es_doc_there(r, "opB", "d1"));
    cr_assert_eq(write_rows(r, "opA", wa1, sizeof wa1), nw0, "the rebuild has the write rows too (%s)", wa1);
    cr_assert_str_eq(wa1, wa0);
    cr_assert_eq(sr_engine_close(r), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "a rebuild after the erasure differs from the live index");
    /* the audit period cuts them: opA's audit period of 365 days (the
     * floor) at day 400 cuts the rows of days 10-20, keeps day 400's */
    e = open_ok(d);
    period(e, "opA", "audit", 365);
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    int nw2 = write_rows(e, "opA", wa1, sizeof wa1);
    cr_assert(nw2 >= 1 && nw2 < nw0, "the audit period cut the old write rows only (%d of %d left: %s)", nw2, nw0, wa1);
    cr_assert_null(strstr(wa1, "document:notes/d1"), "%s", wa1);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(erasure, a_request_still_open_holds_its_key_until_it_is_finished_and_past_its_period)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/open", top);
    g_sync = SR_ENGINE_SYNC_NONE;
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    with_records = 2;
    scenario(e);
    with_records = 0;
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.requests, 0, "a dispatched request is never cut");
    cr_assert_eq(rep.documents + rep.files + rep.monitors, 3);
    cr_assert_eq(rep.keys_destroyed, 0);
    cr_assert_eq(rep.keys_held, 1, "its creation record is sealed by A's epoch 1");
    cr_assert(es_request_there(e, "opA", "req1"));
    sr_request_transition t = {.request_id = "req1", .state = SR_RS_TIMED_OUT, .error_code = "", .message = "",
                               .gateway_id = ""};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_request_transition(es_env_of("opA"), &t, &b), &b, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.requests, 0, "finished at day 400: inside the period");
    cr_assert_eq(rep.keys_held, 1);
    clock_now = (int64_t)431 * DAY;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.requests, 1);
    cr_assert_eq(rep.keys_destroyed, 1, "nothing of epoch 1 is left");
    cr_assert(!es_request_there(e, "opA", "req1"));
    cr_assert_eq(sr_engine_close(e), SR_OK);
    g_sync = SR_ENGINE_SYNC_ALWAYS;
}

Test(erasure, a_destroyed_event_without_its_tombstone_is_finished_and_bad_destructions_are_refused)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/crash", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    scenario(e);
    sr_keyinfo k1 = key_of(e, "opA", 1), k2 = key_of(e, "opA", 2);
    sr_result r;
    /* refused: the active key, another operator's, an unknown one, a config key, outsiders */
    sr_key_rec x = {.action = "destroy", .key_operator = "opA", .key_class = "data", .key_id = k2.id};
    cr_assert_eq(submit_key(e, "opA", &x, &r), SR_EINVAL, "the active key");
    cr_assert(strstr(r.err.msg, "active"), "%s", r.err.msg);
    x.key_id = k1.id;
    cr_assert_eq(submit_key(e, "opB", &x, &r), SR_EINVAL, "another operator's key");
    x.key_id = 0x12345678;
    cr_assert_eq(submit_key(e, "opA", &x, &r), SR_ENOTFOUND);
    sr_keyinfo *ks;
    size_t n;
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    uint32_t cfgkey = 0;
    for (size_t i = 0; i < n; i++)
        if (ks[i].cls == SR_KC_CONFIG && !strcmp(ks[i].operator_id, "opA")) cfgkey = ks[i].id;
    sr_free(ks);
    cr_assert_neq(cfgkey, 0);
    x.key_id = cfgkey;
    cr_assert_eq(submit_key(e, "opA", &x, &r), SR_EINVAL, "a config key");
    sr_key_rec forged = {.action = "destroyed", .key_operator = "opA", .key_class = "data", .key_id = k1.id};
    cr_assert_eq(submit_key(e, "opA", &forged, &r), SR_EINVAL, "\"destroyed\" is the engine's own");
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_RETIRED, "nothing destroyed by a refusal");
    /* the crash between: the event durable, no tombstone */
    x.key_id = k1.id;
    cr_assert_eq(submit_key(e, "opA", &x, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_RETIRED, "the event alone writes no tombstone");
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* a rebuild's replay of the event finishes it */
    sr_engine_opts o = opts();
    sr_errinfo ei;
    cr_assert_eq(sr_engine_rebuild(d, &o, &ei), SR_OK, "%s", ei.msg);
    e = open_ok(d);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_DESTROYED, "the replay wrote the tombstone");
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(erasure, the_next_sweep_finishes_a_destruction_the_replay_did_not_see)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/resweep", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    scenario(e);
    sr_keyinfo k1 = key_of(e, "opA", 1);
    sr_result r;
    sr_key_rec x = {.action = "destroy", .key_operator = "opA", .key_class = "data", .key_id = k1.id};
    cr_assert_eq(submit_key(e, "opA", &x, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    e = open_ok(d); /* the index applied the event: no replay of it */
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_RETIRED);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 1);
    cr_assert_eq(key_of(e, "opA", 1).state, SR_KS_DESTROYED);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    int destroyed;
    cr_assert_eq(plain_hits(d, "ERASE-A", NULL, &destroyed), 0);
    cr_assert_eq(destroyed, 2, "the first event (its crash) and the sweep's");
}


/* ---- audit-class records (issue #16's last gap, docs/retention.md "Audit
 * data") ---------------------------------------------------------------- */

static sr_keyinfo key_cls(sr_engine *e, const char *op, int cls, uint32_t epoch)
{
    sr_keyinfo *ks, out = {0};
    size_t n;
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ks[i].operator_id, op) && ks[i].cls == cls && ks[i].epoch == epoch) out = ks[i];
    sr_free(ks);
    cr_assert_neq(out.id, 0, "no key %s class %d epoch %u", op, cls, epoch);
    return out;
}


Test(erasure, audit_class_records_past_the_audit_period_are_erased_and_live_state_is_restated)
{
    char d[1200], set[1200];
    snprintf(d, sizeof d, "%s/data", top);
    snprintf(set, sizeof set, "%s/backups", top);
    cr_assert_eq(mkdir(set, 0700), 0);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    make_platform_key(d);
    uint8_t h_open[32], h_old[32];
    memset(h_open, 0x11, 32);
    memset(h_old, 0x22, 32);
    /* epoch 1 of A's audit key (days 10 to 20): history and live state */
    clock_now = (int64_t)10 * DAY;
    aud_login(e, "opA", "ERASE-AUD-LOGIN");
    aud_login(e, "opB", "KEEP-B-LOGIN");
    aud_session(e, "opA", h_old, (int64_t)12 * DAY, "ERASE-AUD-OLDSESS");
    aud_session(e, "opA", h_open, (int64_t)900 * DAY, "ERASE-AUD-OPENSESS");
    aud_alive(e, "opA", SR_AS_OFFLINE, "ERASE-AUD-REMOTE");
    aud_alive(e, "opA", SR_AS_ONLINE, "LIVE-A-REMOTE");
    uint64_t a1 = aud_alarm(e, "opA", "raised", NULL, "r1", "ERASE-AUD-ALARM");
    char id1[24], id2[24];
    snprintf(id1, sizeof id1, "A%016llX", (unsigned long long)a1);
    clock_now = (int64_t)11 * DAY;
    aud_alarm(e, "opA", "resolved", id1, NULL, NULL);
    uint64_t a2 = aud_alarm(e, "opA", "raised", NULL, "r2", "LIVE-A-ALARM");
    snprintf(id2, sizeof id2, "A%016llX", (unsigned long long)a2);
    aud_notify(e, "opA", a2, "ERASE-AUD-NOTIFY");
    clock_now = (int64_t)20 * DAY;
    sr_result r;
    const sr_key_rec rot = {.action = "rotate", .key_operator = "opA", .key_class = "audit"};
    cr_assert_eq(submit_key(e, "opA", &rot, &r), SR_OK, "%s", r.err.msg);
    clock_now = (int64_t)400 * DAY;
    period(e, "opA", "audit", 30); /* B: the configured audit_days, 0: for ever */
    sr_keyinfo k1 = key_cls(e, "opA", SR_KC_AUDIT, 1);
    cr_assert_eq(k1.state, SR_KS_RETIRED);
    cr_assert_gt(plain_hits(d, "ERASE-AUD-", NULL, NULL), 0, "the control: the master key reads them before");

    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.audit_state, 2, "the resolved alarm and the expired session (%llu)",
                 (unsigned long long)rep.audit_state);
    cr_assert_eq(rep.restated, 4, "the open session, the alive row, the open alarm, the done delivery (%llu)",
                 (unsigned long long)rep.restated);
    cr_assert_eq(rep.keys_destroyed, 1, "A's audit epoch 1 (held %llu)", (unsigned long long)rep.keys_held);
    cr_assert_eq(key_cls(e, "opA", SR_KC_AUDIT, 1).state, SR_KS_DESTROYED);
    cr_assert_eq(key_cls(e, "opB", SR_KC_AUDIT, 1).state, SR_KS_ACTIVE, "B's audit key stays");
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed + rep.restated + rep.audit_state, 0, "a second sweep has nothing to do");

    /* A's live state: intact and readable */
    sr_session_rec sr;
    cr_assert_eq(sr_session_verify(e, h_open, SR_ACTOR_APP, clock_now, &sr), SR_OK, "the open session");
    cr_assert_str_eq(sr.id, "app1");
    cr_assert_eq(sr.expires_ms, (int64_t)900 * DAY);
    cr_assert_eq(sr_session_verify(e, h_old, SR_ACTOR_APP, 0, &sr), SR_ENOTFOUND, "the expired session is cut");
    sr_rec rr = SR_REC_INIT;
    sr_alarm al;
    cr_assert_eq(sr_read_alarm(e, id2, &rr, &al), SR_OK, "the open alarm");
    cr_assert_str_eq(al.message, "LIVE-A-ALARM");
    cr_assert_str_eq(al.state, "raised");
    cr_assert_eq(al.raised_ms, (int64_t)11 * DAY);
    sr_rec_close(&rr);
    cr_assert_eq(sr_read_alarm(e, id1, &rr, &al), SR_ENOTFOUND, "the resolved alarm is cut");
    sr_rec_close(&rr);
    cr_assert_eq(sr_list_alive(e, "opA", &rr), SR_OK);
    sr_alive_rec av;
    cr_assert_eq(sr_rec_next_alive(&rr, &av), 1, "the alive row");
    cr_assert_str_eq(av.remote, "LIVE-A-REMOTE");
    cr_assert_eq(av.state, SR_AS_ONLINE);
    cr_assert_eq(av.since_ms, (int64_t)10 * DAY, "the transition's own time");
    sr_rec_close(&rr);
    int oc;
    uint32_t att;
    cr_assert_eq(sr_engine_notify_done(e, a2, "opA", "t1", &oc, &att), SR_OK, "the done delivery");
    cr_assert_eq(oc, SR_NOTIFY_DELIVERED);
    cr_assert_eq(att, 2);
    /* the alarm still moves on: an acknowledgement after the restatement */
    aud_alarm(e, "opA", "acknowledged", id2, NULL, NULL);

    sr_backup_info bi;
    cr_assert_eq(sr_engine_backup(e, set, NULL, &bi, &ei), SR_OK, "%s", ei.msg);
    char after[1300];
    snprintf(after, sizeof after, "%s/%s", set, bi.name);
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);

    uint64_t erased;
    cr_assert_eq(plain_hits(d, "ERASE-AUD-", &erased, NULL), 0, "an erased audit plaintext is readable");
    cr_assert_geq(erased, 8, "A's audit records of epoch 1 are erased (%llu)", (unsigned long long)erased);
    cr_assert_gt(plain_hits(d, "KEEP-B-LOGIN", NULL, NULL), 0, "B's audit records are intact");
    cr_assert_gt(plain_hits(d, "LIVE-A-REMOTE", NULL, NULL), 0, "the restated alive row is in the log");
    const char *subs[4] = {"log", "keys", "blobs", "index"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(scan_sub(d, subs[i], "ERASE-AUD-"), 0, "a plaintext in %s", subs[i]);
        cr_assert_eq(scan_sub(after, subs[i], "ERASE-AUD-"), 0, "a plaintext in the backup's %s", subs[i]);
    }

    /* verify: ok, naming the erased records of A's audit key */
    char ld[1300], kd[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_keyring *kr = NULL;
    cr_assert_eq(sr_keyring_open(NULL, kd, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.key = &MASTER, .keys = sr_keyring_keys(kr), .readonly = 1};
    sr_log_report lr;
    cr_assert_eq(sr_log_verify(ld, &lo, &lr, &ei), SR_OK, "%s", ei.msg);
    cr_assert(lr.ok);
    cr_assert_eq(lr.nerased, 1);
    cr_assert_eq(lr.erased[0].key_id, k1.id);
    cr_assert_eq(lr.erased[0].records, erased);
    sr_keyring_close(kr);

    /* a rebuild equals the live index and reports the erased records */
    char ixd[1300];
    snprintf(ixd, sizeof ixd, "%s/rebuilt", top);
    sr_engine_opts ro = opts();
    ro.index_dir = ixd;
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &ro, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(st.erased_records, erased);
    cr_assert_eq(st.n_erased, 1);
    cr_assert_str_eq(st.erased[0].operator_id, "opA");
    cr_assert_str_eq(st.erased[0].key_class, "audit");
    sr_engine *rb = NULL;
    cr_assert_eq(sr_engine_open(d, &ro, &rb, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(rb, rebuilt), SR_OK);
    cr_assert_eq(sr_session_verify(rb, h_open, SR_ACTOR_APP, clock_now, &sr), SR_OK, "the rebuilt open session");
    cr_assert_eq(sr_engine_close(rb), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "a rebuild after the audit erasure differs from the live index");
}

#endif

#if SR_ERASURE_KILL9
/* ---- kill -9 during erasing sweeps ------------------------------------------
 * A child process (sync=always) loops: four values of opA, a rotation of
 * opA's data key, the clock 20 days on, a sweep (opA's period 30 days) that
 * cuts the epoch before the last one and destroys its key; a line after
 * each sweep. The test kills it (SIGKILL) after a varying number of sweeps,
 * reopens the engine (whose replay may finish a destruction) and checks that
 * nothing is half done: the keyring opens (its invariants hold), every
 * destroyed key has its "destroyed" KeyEvent in the log, the log verifies,
 * the newest acknowledged values are there, and the index equals a rebuild.
 * Operator opB writes only audit-class records (logins, alarms raised and
 * resolved, its gateway's alive transitions) under a 30-day audit period, so
 * the sweeps cut, restate and destroy its audit keys too (docs/retention.md
 * "Audit data"): its live alive row is never lost. Six rounds on one data
 * directory. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { E_ROUNDS = 6 };

static void erase_child(const char *d, int round, int fd)
{
    clock_now = (int64_t)(400 + round * 2000) * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(d, &o, &e, &ei)) _exit(2);
    if (round == 0) {
        if (et_setup_masters(e, "opA", 1, STR, 1)) _exit(3);
        sr_reg_entry re = {.kind = SR_RG_RETENTION, .id = "default", .retention_days = 30};
        sr_cmd_env env = {"opA", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
        sr_buf b;
        sr_buf_init(&b);
        sr_result r;
        if (sr_cmd_registry_put(&env, &re, &b)) _exit(4);
        sr_slice sl = {b.data, b.len};
        if (sr_engine_submit_wait(e, &sl, 1, &r) || r.rc) _exit(5);
        sr_buf_release(&b);
        /* opB: audit-class records only, its audit period 30 days, so its
         * audit keys go too (opA keeps its audit for ever: the "destroyed"
         * KeyEvents, themselves audit records, stay readable for the check) */
        period(e, "opB", "audit", 30);
    }
    uint32_t p;
    sr_vtype t;
    if (sr_engine_point(e, "opA", "P000", &p, &t)) _exit(6);
    for (int n = 0;; n++) {
        char v[4][32];
        sr_sample s[4];
        memset(s, 0, sizeof s);
        for (int i = 0; i < 4; i++) {
            snprintf(v[i], sizeof v[i], "K-%d-%d-%d", round, n, i);
            s[i].ts = clock_now + i;
            s[i].v.str.s = v[i];
            s[i].v.str.slen = (uint32_t)strlen(v[i]);
        }
        sr_result r;
        if (et_put(e, "opA", "GW1", p, SR_VT_STRING, s, 4, NULL, &r) || r.rc) _exit(7);
        /* a document of this epoch: cut by a later sweep, before its key goes */
        char did[32], json[64];
        snprintf(did, sizeof did, "d-%d-%d", round, n);
        int jl = snprintf(json, sizeof json, "{\"v\":\"%s\"}", v[0]);
        sr_buf db;
        sr_buf_init(&db);
        sr_cmd_env denv = {"opA", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
        if (sr_cmd_doc_put(&denv, "notes", did, 0, json, (size_t)jl, &db)) _exit(11);
        sr_slice dsl = {db.data, db.len};
        if (sr_engine_submit_wait(e, &dsl, 1, &r) || r.rc) _exit(12);
        sr_buf_release(&db);
        /* audit-class history and live state of this epoch (docs/retention.md
         * "Audit data"): a login, an alarm raised and resolved, the
         * gateway's alive transition (live: restated before its key goes) */
        char am[48];
        snprintf(am, sizeof am, "AUD-%d-%d", round, n);
        aud_login(e, "opB", am);
        /* resolved by its condition: a kill between a raise and its resolve
         * leaves the alarm open, and the next raise is a re-occurrence of it */
        aud_alarm(e, "opB", "raised", NULL, "r1", am);
        aud_alarm(e, "opB", "resolved", NULL, "r1", NULL);
        aud_alive(e, "opB", n % 2 ? SR_AS_OFFLINE : SR_AS_ONLINE, am);
        const sr_key_rec rot = {.action = "rotate", .key_operator = "opA", .key_class = "data"};
        if (submit_key(e, "opA", &rot, &r)) _exit(8);
        const sr_key_rec rota = {.action = "rotate", .key_operator = "opB", .key_class = "audit"};
        if (submit_key(e, "opB", &rota, &r)) _exit(13);
        clock_now += (int64_t)20 * DAY; /* the cut (30 days) passes the epoch before this one, not this one */
        sr_retention_report rep;
        if (sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei)) _exit(9);
        char line[96];
        int l = snprintf(line, sizeof line, "swept %d %d %lld %llu\n", round, n, (long long)(clock_now - 20 * (int64_t)DAY),
                         (unsigned long long)rep.keys_destroyed);
        if (write(fd, line, (size_t)l) != l) _exit(10);
    }
}

/* the key ids of the "destroyed" KeyEvents in d's log (readable ones) */
static size_t destroyed_events(const char *d, uint32_t *ids, size_t cap)
{
    char kd[1300], ld[1300];
    snprintf(kd, sizeof kd, "%s/keys", d);
    snprintf(ld, sizeof ld, "%s/log", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    cr_assert_null(sr_keyring_check(kr));
    sr_log_opts lo = {.key = &MASTER, .keys = sr_keyring_keys(kr), .readonly = 1};
    sr_log *lg;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int rc;
    size_t n = 0;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) {
        if (rc == SR_EERASED) continue;
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev);
        if (ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "destroyed") && n < cap)
            ids[n++] = ev->key->key_id;
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    cr_assert_eq(rc, SR_DONE, "%s", sr_log_iter_errinfo(it)->msg);
    sr_log_iter_close(it);
    sr_log_report lr;
    sr_log_close(lg);
    cr_assert_eq(sr_log_verify(ld, &lo, &lr, &ei), SR_OK, "%s", ei.msg);
    cr_assert(lr.ok);
    sr_keyring_close(kr);
    return n;
}

Test(erasure, a_kill_9_during_erasing_sweeps_leaves_nothing_half_done, .timeout = 600)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/kill9", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    tu_rng rng = {2027};
    uint64_t total_destroyed = 0, audit_destroyed = 0;
    for (int round = 0; round < E_ROUNDS; round++) {
        int want = 1 + (int)tu_below(&rng, 4);
        char last[128];
        es_kill9_after(erase_child, d, round, want, &rng, last, sizeof last);
        int r_, n_;
        long long put_ms;
        unsigned long long kd_;
        cr_assert_eq(sscanf(last, "swept %d %d %lld %llu", &r_, &n_, &put_ms, &kd_), 4, "%s", last);
        total_destroyed += kd_;
        /* reopen (its replay may finish a destruction), then the checks */
        clock_now = (int64_t)(400 + round * 2000 + 1900) * DAY;
        sr_engine *e = open_ok(d);
        uint32_t pt;
        sr_vtype t;
        cr_assert_eq(sr_engine_point(e, "opA", "P000", &pt, &t), SR_OK);
        sr_buf sb, strs;
        sr_buf_init(&sb);
        sr_buf_init(&strs);
        sr_range_q q = {pt, put_ms, put_ms + 4, 0, 0, INT64_MIN};
        int more;
        cr_assert_eq(sr_engine_range(e, &q, &sb, &strs, &more), SR_OK);
        if (sb.len / sizeof(sr_sample) != 4) {
            /* the child may have gone on past the last line read before the
             * kill: its next puts acknowledged, then its sweeps (cut 30 days
             * back, 10 days behind the newest put) cut these values
             * legitimately. The newest put is never cut: from put_ms on,
             * whole puts of 4 values remain, at least one. */
            sr_buf_release(&sb);
            sr_buf_release(&strs);
            sr_buf_init(&sb);
            sr_buf_init(&strs);
            sr_range_q q2 = {pt, put_ms, INT64_MAX, 0, 0, INT64_MIN};
            cr_assert_eq(sr_engine_range(e, &q2, &sb, &strs, &more), SR_OK);
            size_t got = sb.len / sizeof(sr_sample);
            cr_assert(got >= 4 && got % 4 == 0,
                      "round %d: %zu values from the last acknowledged ones (at %lld) on: some were lost", round, got,
                      put_ms);
        }
        sr_buf_release(&strs);
        sr_buf_release(&sb);
        sr_keyinfo *ks;
        size_t nk;
        cr_assert_eq(sr_engine_key_list(e, &ks, &nk), SR_OK);
        for (size_t i = 0; i < nk; i++) audit_destroyed += ks[i].cls == SR_KC_AUDIT && ks[i].state == SR_KS_DESTROYED;
        /* the gateway's live alive row survives every restatement a kill cut short */
        sr_rec ar = SR_REC_INIT;
        sr_alive_rec av;
        cr_assert_eq(sr_list_alive(e, "opB", &ar), SR_OK);
        cr_assert_eq(sr_rec_next_alive(&ar, &av), 1, "round %d: opB's alive row is lost", round);
        cr_assert(!strncmp(av.remote, "AUD-", 4), "round %d: opB's alive row: %s", round, av.remote);
        sr_rec_close(&ar);
        uint8_t live[32], rebuilt[32];
        cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
        cr_assert_eq(sr_engine_close(e), SR_OK);
        uint32_t ids[4096];
        size_t nd = destroyed_events(d, ids, 4096);
        size_t ntomb = 0;
        for (size_t i = 0; i < nk; i++) {
            if (ks[i].state != SR_KS_DESTROYED) continue;
            /* opB's "destroyed" KeyEvents are sealed by its own audit keys,
             * which later sweeps destroy: only opA's stay readable */
            ntomb++;
            if (strcmp(ks[i].operator_id, "opA")) continue;
            int found = 0;
            for (size_t j = 0; j < nd && !found; j++) found = ids[j] == ks[i].id;
            cr_assert(found, "round %d: key 0x%08x is destroyed without its KeyEvent in the log", round, ks[i].id);
        }
        sr_free(ks);
        cr_assert_geq(ntomb, total_destroyed, "round %d: an acknowledged destruction is not in the keyring", round);
        char ix[1300];
        snprintf(ix, sizeof ix, "%s/rebuilt-%d", top, round);
        sr_engine_opts ro = opts();
        ro.index_dir = ix;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_rebuild(d, &ro, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_open(d, &ro, &e, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
        cr_assert_eq(sr_engine_close(e), SR_OK);
        cr_assert_eq(memcmp(live, rebuilt, 32), 0, "round %d: the index differs from a rebuild", round);
        tu_rmrf(ix);
    }
    cr_assert_gt(total_destroyed, 0, "the sweeps destroyed keys");
    cr_assert_gt(audit_destroyed, 0, "the sweeps destroyed audit keys too (docs/retention.md \"Audit data\")");
}
#endif
