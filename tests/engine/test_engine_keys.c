/* tests/engine/test_engine_keys.c -- per-operator data keys through the
 * engine (issue #16, docs/keys.md): no plaintext of any operator in the
 * log or the keyring (a byte scan, with the same scan finding them in a
 * directory written without a key); one operator's sections do not open
 * with another's key; rotation under load loses and refuses nothing; a
 * master rotation changes no byte of the log; the errors that name the key
 * (none given, a wrong one, a lost keyring, a rotated-away master); records
 * of a destroyed key are counted by the replay and a rebuild, never fatal. */
#include <criterion/criterion.h>

#include "engine/engine_int.h"
#include "engine/records.h"
#include "engtest.h"
#include "storage/keyring.h"
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *top;
static void setup(void) { top = tu_tmpdir("engkeys"); }
static void teardown(void)
{
    tu_rmrf(top);
    free(top);
}
TestSuite(engine_keys, .init = setup, .fini = teardown, .timeout = 300);

static const char *const SECRET_A = "Intake pump A-7731", *const SECRET_B = "Reservoir B-4412";
static const sr_vtype STR[] = {SR_VT_STRING};

static sr_key master(uint8_t fill)
{
    uint8_t b[SR_KEY_LEN];
    memset(b, fill, sizeof b);
    sr_key k;
    sr_key_from_bytes(&k, b);
    return k;
}

static sr_engine_opts opts(const sr_key *k)
{
    return (sr_engine_opts){.key = k, .zstd_level = -100 /* no compression: a plaintext would show */,
                            .key_source = "test"};
}

static sr_engine *open_ok(const char *d, const sr_key *k)
{
    sr_engine_opts o = opts(k);
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(d, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open %s: %s: %s", d, sr_err_name(rc), ei.msg);
    return e;
}

static void put_str(sr_engine *e, const char *op, const char *value, int64_t ts)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, op, "P000", &p, &t), SR_OK);
    sr_sample s = {.ts = ts};
    s.v.str.s = value;
    s.v.str.slen = (uint32_t)strlen(value);
    sr_result r;
    int rc = et_put(e, op, "GW1", p, SR_VT_STRING, &s, 1, NULL, &r);
    cr_assert_eq(rc, SR_OK, "%s", sr_err_name(rc));
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static void fill(sr_engine *e)
{
    cr_assert_eq(et_setup_masters(e, "opA", 2, STR, 1), SR_OK);
    cr_assert_eq(et_setup_masters(e, "opB", 2, STR, 1), SR_OK);
    put_str(e, "opA", SECRET_A, 1000);
    put_str(e, "opB", SECRET_B, 1000);
}

/* how many of the needles occur in the files of d/sub */
static int scan(const char *d, const char *sub, const char *const *needles, size_t n)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", d, sub);
    DIR *dd = opendir(p);
    if (!dd) return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (de->d_name[0] == '.') continue;
        char f[1700];
        snprintf(f, sizeof f, "%s/%s", p, de->d_name);
        size_t len;
        uint8_t *b = tu_read_file(f, &len);
        for (size_t i = 0; b && i < n; i++) found += memmem(b, len, needles[i], strlen(needles[i])) != NULL;
        free(b);
    }
    closedir(dd);
    return found;
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", top, name); }

Test(engine_keys, no_plaintext_of_any_operator_in_the_log_or_the_keyring)
{
    static const char *const needles[] = {"Intake pump A-7731", "Reservoir B-4412", "D-GW1", "m3/h"};
    char d[1200], plain[1200];
    path_of(d, sizeof d, "keyed");
    path_of(plain, sizeof plain, "plain");
    sr_key k = master(1);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    uint8_t h1[32], h2[32];
    cr_assert_eq(sr_engine_content_hash(e, h1), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(scan(d, "log", needles, 4), 0, "a plaintext in the log");
    cr_assert_eq(scan(d, "keys", needles, 4), 0, "a plaintext in the keyring");
    /* the scan finds them where nothing seals them */
    e = open_ok(plain, NULL);
    fill(e);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(scan(plain, "log", needles, 4), 4, "the scan sees plaintext");
    /* and the keyed directory reads back */
    e = open_ok(d, &k);
    cr_assert_eq(sr_engine_content_hash(e, h2), SR_OK);
    cr_assert_eq(memcmp(h1, h2, 32), 0);
    sr_engine_close(e);
}

/* a resolver that opens `from`'s sections with `to`'s key */
typedef struct swap {
    const sr_keys *real;
    uint32_t from, to;
} swap;
static int swap_open(void *ctx, uint32_t id, const uint8_t nonce[SR_NONCE_LEN], const void *aad, size_t aadlen,
                     const void *in, size_t n, void *out, const uint8_t tag[SR_TAG_LEN], char *msg, size_t msglen)
{
    swap *s = ctx;
    return s->real->open(s->real->ctx, id == s->from ? s->to : id, nonce, aad, aadlen, in, n, out, tag, msg, msglen);
}
static int swap_alg(void *ctx, uint32_t id)
{
    swap *s = ctx;
    return s->real->alg(s->real->ctx, id);
}

/* the key of every record, by its event's operator and kind */
typedef struct seen {
    uint32_t a_data, b_data;
    uint64_t a_seq;
    int mixed;
} seen;

static void walk(const char *d, const sr_keys *keys, seen *s, int *bad_rc)
{
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    sr_key k = master(1);
    sr_log_opts lo = {.key = &k, .keys = keys, .readonly = 1};
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int rc;
    *bad_rc = 0;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev);
        uint32_t id = sr_log_iter_key_id(it);
        cr_assert_neq(id, 0, "record %lu is not sealed", (unsigned long)seq);
        if (ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS) {
            uint32_t *slot = !strcmp(ev->operator_id, "opA") ? &s->a_data : &s->b_data;
            if (*slot && *slot != id) s->mixed = 1;
            *slot = id;
            if (!strcmp(ev->operator_id, "opA")) s->a_seq = seq;
        }
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    if (rc != SR_DONE) *bad_rc = rc;
    sr_log_iter_close(it);
    sr_log_close(lg);
}

Test(engine_keys, a_section_of_one_operator_does_not_open_with_another_s_key)
{
    char d[1200], kd[1300];
    path_of(d, sizeof d, "ab");
    sr_key k = master(1);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    sr_engine_close(e);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &k, "test", 0, &kr, &ei), SR_OK, "%s", ei.msg);
    seen s = {0};
    int bad;
    walk(d, sr_keyring_keys(kr), &s, &bad);
    cr_assert_eq(bad, 0);
    cr_assert(s.a_data && s.b_data && s.a_data != s.b_data && !s.mixed);
    sr_keyinfo ia, ib;
    cr_assert_eq(sr_keyring_info(kr, s.a_data, &ia), SR_OK);
    cr_assert_eq(sr_keyring_info(kr, s.b_data, &ib), SR_OK);
    cr_assert_str_eq(ia.operator_id, "opA");
    cr_assert_str_eq(ib.operator_id, "opB");
    cr_assert_eq(ia.cls, SR_KC_DATA);
    /* A's section opened with B's key fails */
    swap sw = {sr_keyring_keys(kr), s.a_data, s.b_data};
    sr_keys wrong = {&sw, NULL, swap_open, swap_alg};
    seen s2 = {0};
    walk(d, &wrong, &s2, &bad);
    cr_assert_eq(bad, SR_ECORRUPT, "A's records under B's key: %s", sr_err_name(bad));
    sr_keyring_close(kr);
}

typedef struct loader {
    sr_engine *e;
    const char *op;
    int n, refused;
} loader;

static void *load(void *p)
{
    loader *l = p;
    uint32_t pt;
    sr_vtype t;
    if (sr_engine_point(l->e, l->op, "P000", &pt, &t)) return NULL;
    for (int i = 0; i < l->n; i++) {
        char v[32];
        snprintf(v, sizeof v, "v%d", i);
        sr_sample s = {.ts = 10000 + i};
        s.v.str.s = v;
        s.v.str.slen = (uint32_t)strlen(v);
        sr_result r;
        if (et_put(l->e, l->op, "GW1", pt, SR_VT_STRING, &s, 1, NULL, &r) || r.rc) l->refused++;
    }
    return NULL;
}

static int rotate(sr_engine *e, const char *actor_op, const char *op, const char *cls, sr_result *r)
{
    sr_cmd_env env = {actor_op, "root", SR_ACTOR_USER, NULL, "cli"};
    sr_key_rec kr = {.action = "rotate", .key_operator = op, .key_class = cls};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_key_ev(&env, &kr, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, r);
    }
    sr_buf_release(&b);
    return rc;
}

/* counts the log's events: measurements of op, rotated KeyEvents */
static void count_log(const char *d, const sr_key *k, const char *op, int *values, int *rotated, int *keys_used)
{
    char kd[1300], ld[1300];
    snprintf(kd, sizeof kd, "%s/keys", d);
    snprintf(ld, sizeof ld, "%s/log", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, k, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.key = k, .keys = sr_keyring_keys(kr), .readonly = 1};
    sr_log *lg;
    cr_assert_eq(sr_log_open(ld, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    int rc;
    uint32_t last = 0;
    *values = *rotated = *keys_used = 0;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        Event *ev = suiro__v1__event__unpack(NULL, rec.len, rec.data);
        cr_assert_not_null(ev);
        if (ev->body_case == SUIRO__V1__EVENT__BODY_MEASUREMENTS && !strcmp(ev->operator_id, op)) {
            (*values)++;
            if (sr_log_iter_key_id(it) != last) (*keys_used)++;
            last = sr_log_iter_key_id(it);
        }
        if (ev->body_case == SUIRO__V1__EVENT__BODY_KEY && !strcmp(ev->key->action, "rotated")) (*rotated)++;
        suiro__v1__event__free_unpacked(ev, NULL);
    }
    cr_assert_eq(rc, SR_DONE, "%s", sr_log_iter_errinfo(it)->msg);
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
}

Test(engine_keys, rotation_under_load_loses_and_refuses_nothing)
{
    char d[1200];
    path_of(d, sizeof d, "load");
    sr_key k = master(1);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    enum { N = 300, ROT = 20 };
    loader la = {e, "opA", N, 0}, lb = {e, "opB", N, 0};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, load, &la), 0);
    cr_assert_eq(pthread_create(&tb, NULL, load, &lb), 0);
    for (int i = 0; i < ROT; i++) {
        sr_result r;
        cr_assert_eq(rotate(e, "", i % 2 ? "opA" : "opB", "data", &r), SR_OK);
        cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(la.refused + lb.refused, 0, "nothing refused");
    /* refusals: another operator's key, an unknown class */
    sr_result r;
    cr_assert_eq(rotate(e, "opB", "opA", "data", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "cannot rotate"), "%s", r.err.msg);
    cr_assert_eq(rotate(e, "opA", "opA", "secret", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "key class"), "%s", r.err.msg);
    cr_assert_eq(rotate(e, "opA", "opA", "audit", &r), SR_OK, "an operator rotates its own");
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    int values, rotated, used;
    count_log(d, &k, "opA", &values, &rotated, &used);
    cr_assert_eq(values, N + 1, "every acknowledged record reads back");
    cr_assert_eq(rotated, ROT + 1);
    cr_assert_geq(used, 2, "opA's values were sealed by more than one epoch's key");
    count_log(d, &k, "opB", &values, &rotated, &used);
    cr_assert_eq(values, N + 1);
}

static void hash_segments(const char *d, uint8_t out[32])
{
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    struct dirent **names;
    int n = scandir(ld, &names, NULL, alphasort);
    cr_assert_geq(n, 3);
    sr_sha256_ctx c;
    cr_assert_eq(sr_sha256_init(&c), SR_OK);
    for (int i = 0; i < n; i++) {
        if (strstr(names[i]->d_name, ".seg")) {
            char f[1600];
            snprintf(f, sizeof f, "%s/%s", ld, names[i]->d_name);
            size_t len;
            uint8_t *b = tu_read_file(f, &len);
            cr_assert_eq(sr_sha256_update(&c, names[i]->d_name, strlen(names[i]->d_name)), SR_OK);
            cr_assert_eq(sr_sha256_update(&c, b, len), SR_OK);
            free(b);
        }
        free(names[i]);
    }
    free(names);
    cr_assert_eq(sr_sha256_final(&c, out), SR_OK);
    sr_sha256_release(&c);
}

static int open_rc(const char *d, const sr_key *k, sr_errinfo *ei)
{
    sr_engine_opts o = opts(k);
    sr_engine *e = NULL;
    int rc = sr_engine_open(d, &o, &e, ei);
    sr_engine_close(e);
    return rc;
}

Test(engine_keys, errors_name_the_key_and_a_master_rotation_rewrites_no_log_byte)
{
    char d[1200], kd[1300], kf[1300], bak[1300];
    path_of(d, sizeof d, "err");
    snprintf(kd, sizeof kd, "%s/keys", d);
    snprintf(kf, sizeof kf, "%s/keys/keyring", d);
    snprintf(bak, sizeof bak, "%s/keyring.export", top);
    sr_key k = master(1), other = master(2);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    sr_engine_close(e);
    sr_errinfo ei;
    char want[128];
    /* no key given */
    cr_assert_eq(open_rc(d, NULL, &ei), SR_EKEY);
    snprintf(want, sizeof want, "wrapped by master key 0x%08x", k.id);
    cr_assert(strstr(ei.msg, want) && strstr(ei.msg, "keys/keyring"), "%s", ei.msg);
    /* a wrong one */
    cr_assert_eq(open_rc(d, &other, &ei), SR_EKEY);
    snprintf(want, sizeof want, "wrapped by master key 0x%08x; the key from test has id 0x%08x", k.id, other.id);
    cr_assert(strstr(ei.msg, want), "%s", ei.msg);
    /* a lost keyring */
    size_t n;
    uint8_t *saved = tu_read_file(kf, &n);
    cr_assert_not_null(saved);
    cr_assert_eq(unlink(kf), 0);
    cr_assert_eq(open_rc(d, &k, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "does not hold it") && strstr(ei.msg, "key export"), "%s", ei.msg);
    cr_assert(access(kf, F_OK) != 0, "the failed open wrote no empty keyring");
    cr_assert_eq(tu_write_file(kf, saved, n), 0);
    free(saved);
    /* the master rotated: the log's bytes do not change */
    uint8_t before[32], after[32], hb[32], ha[32];
    hash_segments(d, before);
    e = open_ok(d, &k);
    cr_assert_eq(sr_engine_content_hash(e, hb), SR_OK);
    sr_engine_close(e);
    hash_segments(d, before); /* after the open's own close, if it wrote */
    sr_keyring *kr = NULL;
    cr_assert_eq(sr_keyring_open(NULL, kd, &k, "test", 0, &kr, &ei), SR_OK);
    cr_assert_eq(sr_keyring_rewrap(kr, &other, 0, 5), SR_OK);
    sr_keyring_close(kr);
    hash_segments(d, after);
    cr_assert_eq(memcmp(before, after, 32), 0, "a master rotation rewrote log bytes");
    /* the rotated-away master */
    cr_assert_eq(open_rc(d, &k, &ei), SR_EKEY);
    snprintf(want, sizeof want, "wrapped by master key 0x%08x", other.id);
    cr_assert(strstr(ei.msg, want), "%s", ei.msg);
    e = open_ok(d, &other);
    cr_assert_eq(sr_engine_content_hash(e, ha), SR_OK);
    cr_assert_eq(memcmp(ha, hb, 32), 0);
    sr_engine_close(e);
}

Test(engine_keys, records_of_a_destroyed_key_are_counted_never_fatal)
{
    char d[1200], kd[1300];
    path_of(d, sizeof d, "erased");
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_key k = master(1);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    sr_result r;
    cr_assert_eq(rotate(e, "", "opA", "data", &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    put_str(e, "opA", "after the rotation", 2000);
    sr_engine_close(e);
    /* destroy opA's epoch 1 data key */
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &k, "test", 0, &kr, &ei), SR_OK);
    sr_keyinfo *v;
    size_t n;
    cr_assert_eq(sr_keyring_list(kr, &v, &n), SR_OK);
    uint32_t old = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].operator_id, "opA") && v[i].cls == SR_KC_DATA && v[i].epoch == 1) old = v[i].id;
    sr_free(v);
    cr_assert_neq(old, 0);
    cr_assert_eq(sr_keyring_destroy(kr, old, 3000), SR_OK);
    sr_keyring_close(kr);
    /* a rebuild replays everything: the erased records are reported */
    sr_engine_opts o = opts(&k);
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &o, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_geq(st.erased_records, 1);
    cr_assert_eq(st.n_erased, 1);
    cr_assert_eq(st.erased[0].key_id, old);
    cr_assert_str_eq(st.erased[0].operator_id, "opA");
    cr_assert_str_eq(st.erased[0].key_class, "data");
    cr_assert_eq(st.erased[0].epoch, 1);
    cr_assert_eq(st.erased[0].destroyed_ms, 3000);
    cr_assert_eq(st.erased[0].records, st.erased_records);
    cr_assert_leq(st.erased[0].first_seq, st.erased[0].last_seq);
    /* and the engine opens and writes on */
    e = open_ok(d, &k);
    put_str(e, "opA", "later still", 4000);
    put_str(e, "opB", "B goes on", 4000);
    sr_engine_close(e);
}
