/* tests/engine/test_ixseal.c -- the index's values sealed by the operators'
 * data keys (issue #16, engine/ixseal.h, layout 8): a byte scan of
 * index/data.mdb finds no master name, document, string value or unit with
 * a master key and finds them all without one (the control); a sealed value
 * moved to another LMDB key does not open (SR_ECORRUPT, never wrong data);
 * a value whose key was destroyed reads as gone (SR_EERASED: absent), the
 * other operator's untouched; an index of layout 6 is rebuilt sealed from
 * the log, reads the same, and equals its rebuild before and after (the
 * content hash compares plaintext); a plain index given a key is rebuilt,
 * and a keyed record's values are sealed from then on. */
#include <criterion/criterion.h>

#include "engine/engine_int.h"
#include "engine/evbuild.h"
#include "engine/records.h"
#include "engtest.h"
#include "storage/keyring.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *top;
static void setup(void) { top = tu_tmpdir("ixseal"); }
static void teardown(void)
{
    tu_rmrf(top);
    free(top);
}
TestSuite(ixseal, .init = setup, .fini = teardown, .timeout = 300);

static const sr_vtype STR[] = {SR_VT_STRING};
static const char *const DOC_A = "{\"note\":\"Intake pump overhaul 2026\"}", *const DOC_B = "{\"note\":\"Reservoir B valve\"}";
static const char *const VAL_A = "Intake pump A-7731", *const VAL_B = "Reservoir B-4412";
/* a master name, a unit, both documents, both string values */
static const char *const NEEDLES[] = {"Plant", "m3/h", "Intake pump overhaul 2026", "Reservoir B valve", "Intake pump A-7731",
                                      "Reservoir B-4412"};
enum { NNEEDLES = sizeof NEEDLES / sizeof *NEEDLES };

static sr_engine *open_ok(const char *d, const sr_key *k)
{
    sr_engine_opts o = {.key = k, .key_source = "test", .zstd_level = -100 /* no compression: a plaintext would show */};
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(d, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open %s: %s: %s", d, sr_err_name(rc), ei.msg);
    return e;
}

static void put_doc(sr_engine *e, const char *op, const char *id, const char *json)
{
    Suiro__V1__DocumentPut d = SUIRO__V1__DOCUMENT_PUT__INIT;
    d.collection = "reports";
    d.doc_id = (char *)id;
    d.json.data = (uint8_t *)json;
    d.json.len = strlen(json);
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_DOC_PUT;
    ev.doc_put = &d;
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_ev_pack(&ev, op, "APP1", SUIRO__V1__ACTOR_KIND__ACTOR_APP, NULL, &b), SR_OK);
    size_t len = b.len;
    sr_result r;
    cr_assert_eq(et_submit(e, &b, &len, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
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
    cr_assert_eq(et_put(e, op, "GW1", p, SR_VT_STRING, &s, 1, NULL, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static void fill(sr_engine *e)
{
    cr_assert_eq(et_setup_masters(e, "opA", 2, STR, 1), SR_OK);
    cr_assert_eq(et_setup_masters(e, "opB", 2, STR, 1), SR_OK);
    for (int64_t ts = 1000; ts < 1000 + 40; ts++) { /* enough for chunks: the series database too */
        put_str(e, "opA", VAL_A, ts);
        put_str(e, "opB", VAL_B, ts);
    }
    put_doc(e, "opA", "d1", DOC_A);
    put_doc(e, "opA", "d2", DOC_B);
    put_doc(e, "opB", "d1", DOC_B);
}

/* how many of NEEDLES occur in d/index/data.mdb */
static int scan_index(const char *d)
{
    char f[1300];
    snprintf(f, sizeof f, "%s/index/data.mdb", d);
    size_t len;
    uint8_t *b = tu_read_file(f, &len);
    cr_assert_not_null(b, "%s", f);
    int found = 0;
    for (size_t i = 0; i < NNEEDLES; i++) found += memmem(b, len, NEEDLES[i], strlen(NEEDLES[i])) != NULL;
    free(b);
    return found;
}

static void doc_is(sr_engine *e, const char *op, const char *id, const char *want)
{
    uint64_t rev;
    sr_buf j;
    sr_buf_init(&j);
    int rc = sr_engine_doc_get(e, op, "reports", id, &rev, &j, NULL, NULL);
    cr_assert_eq(rc, SR_OK, "%s/%s: %s", op, id, sr_err_name(rc));
    cr_assert_eq(j.len, strlen(want));
    cr_assert_eq(memcmp(j.data, want, j.len), 0);
    sr_buf_release(&j);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", top, name); }

Test(ixseal, no_plaintext_in_the_index_with_a_master_key_and_all_of_it_without)
{
    char d[1200], plain[1200];
    path_of(d, sizeof d, "keyed");
    path_of(plain, sizeof plain, "plain");
    sr_key k;
    et_master_key(&k);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    cr_assert_eq(atomic_load(&e->seal.nplain), 0, "every value had a key: %lu plain", (unsigned long)atomic_load(&e->seal.nplain));
    cr_assert_eq(sr_engine_close(e), SR_OK); /* the close checkpoint flushes every head: chunks in the index */
    cr_assert_eq(scan_index(d), 0, "a plaintext in the sealed index");
    /* the control: the same scan finds every needle where nothing seals */
    e = open_ok(plain, NULL);
    fill(e);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    cr_assert_eq(scan_index(plain), NNEEDLES, "the scan sees the plaintexts");
    /* and the sealed index reads back */
    e = open_ok(d, &k);
    doc_is(e, "opA", "d1", DOC_A);
    doc_is(e, "opB", "d1", DOC_B);
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &p, &t), SR_OK);
    sr_sample l;
    int found = 0;
    sr_buf strs;
    sr_buf_init(&strs);
    cr_assert_eq(sr_engine_latest(e, &p, 1, &l, &found, &strs), SR_OK);
    cr_assert(found);
    cr_assert_eq(l.v.str.slen, strlen(VAL_A));
    cr_assert_eq(memcmp(l.v.str.s, VAL_A, l.v.str.slen), 0);
    sr_buf_release(&strs);
    sr_engine_close(e);
}

/* the raw bytes of docs[key] (the macro-free LMDB call: no opening) */
static void raw_doc(sr_engine *e, MDB_txn *t, const char *op, const char *id, sr_buf *out)
{
    uint8_t k[256];
    size_t kl = mkkey(k, sizeof k, op, "reports", id);
    MDB_val K = {kl, k}, V;
    cr_assert_eq((mdb_get)(t, DB(e, SR_DB_DOCS), &K, &V), 0);
    out->len = 0;
    cr_assert_eq(sr_buf_append(out, V.mv_data, V.mv_size), SR_OK);
}

Test(ixseal, a_sealed_value_moved_to_another_key_does_not_open)
{
    char d[1200];
    path_of(d, sizeof d, "swap");
    sr_key k;
    et_master_key(&k);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    sr_engine_close(e);
    e = open_ok(d, &k);
    /* opA's d2 sealed value written under opA's d1 key, and opB's d1 under opA's d2 (another operator's key) */
    MDB_txn *t;
    cr_assert_eq(sr_index_write_begin(e->ix, &t), SR_OK);
    sr_buf a2, b1;
    sr_buf_init(&a2);
    sr_buf_init(&b1);
    raw_doc(e, t, "opA", "d2", &a2);
    raw_doc(e, t, "opB", "d1", &b1);
    cr_assert_eq(a2.data[0], 1, "sealed (form 1)");
    uint8_t k1[256], k2[256];
    size_t l1 = mkkey(k1, sizeof k1, "opA", "reports", "d1"), l2 = mkkey(k2, sizeof k2, "opA", "reports", "d2");
    MDB_val K1 = {l1, k1}, K2 = {l2, k2}, V1 = {a2.len, a2.data}, V2 = {b1.len, b1.data};
    cr_assert_eq((mdb_put)(t, DB(e, SR_DB_DOCS), &K1, &V1, 0), 0);
    cr_assert_eq((mdb_put)(t, DB(e, SR_DB_DOCS), &K2, &V2, 0), 0);
    cr_assert_eq(sr_index_commit(e->ix, t), SR_OK);
    uint64_t rev;
    sr_buf j;
    sr_buf_init(&j);
    cr_assert_eq(sr_engine_doc_get(e, "opA", "reports", "d1", &rev, &j, NULL, NULL), SR_ECORRUPT);
    cr_assert_eq(sr_engine_doc_get(e, "opA", "reports", "d2", &rev, &j, NULL, NULL), SR_ECORRUPT,
                 "operator B's value does not open as operator A's");
    doc_is(e, "opB", "d1", DOC_B); /* the original stays */
    sr_buf_release(&j);
    sr_buf_release(&a2);
    sr_buf_release(&b1);
    sr_engine_close(e);
}

Test(ixseal, a_value_whose_key_was_destroyed_reads_as_gone)
{
    char d[1200];
    path_of(d, sizeof d, "erased");
    sr_key k;
    et_master_key(&k);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    uint32_t id;
    cr_assert_eq(sr_keyring_active(e->keyring, "opA", SR_KC_DATA, &id), SR_OK);
    /* opA's latest row, read twice: the second from this thread's cache of
     * opened values (ixseal.h invariant 6) */
    uint32_t pa;
    sr_vtype ta;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &pa, &ta), SR_OK);
    sr_sample ls;
    int found = 0;
    sr_buf strs;
    sr_buf_init(&strs);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sr_engine_latest(e, &pa, 1, &ls, &found, &strs), SR_OK);
        cr_assert(found && ls.v.str.slen == strlen(VAL_A) && !memcmp(ls.v.str.s, VAL_A, ls.v.str.slen),
                  "read %d: the latest value", i);
    }
    sr_keyinfo nk;
    cr_assert_eq(sr_keyring_rotate(e->keyring, "opA", SR_KC_DATA, 5000, &nk), SR_OK);
    cr_assert_eq(sr_keyring_destroy(e->keyring, id, 6000), SR_OK);
    /* the cached plaintext is not served once its key is destroyed */
    cr_assert_eq(sr_engine_latest(e, &pa, 1, &ls, &found, &strs), SR_OK);
    cr_assert_eq(found, 0, "the latest row of a destroyed key reads as absent, cached or not");
    sr_buf_release(&strs);
    uint64_t rev;
    sr_buf j;
    sr_buf_init(&j);
    cr_assert_eq(sr_engine_doc_get(e, "opA", "reports", "d1", &rev, &j, NULL, NULL), SR_ENOTFOUND, "erased: gone");
    cr_assert_gt(atomic_load(&e->seal.nerased), 0);
    doc_is(e, "opB", "d1", DOC_B);
    /* a scan of the collection steps over the erased rows: none of opA, no error */
    sr_buf_release(&j);
    /* the content hash leaves them out, and does not fail */
    uint8_t h[32];
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    sr_engine_close(e);
}

/* one latest lookup on a thread of its own: its cache of opened values
 * (ixseal.h invariant 6) is empty */
typedef struct {
    sr_engine *e;
    uint32_t point;
    int rc, found;
    char v[64];
} fresh_read;

static void *fresh_latest(void *arg)
{
    fresh_read *f = arg;
    sr_sample s;
    sr_buf strs;
    sr_buf_init(&strs);
    f->rc = sr_engine_latest(f->e, &f->point, 1, &s, &f->found, &strs);
    if (!f->rc && f->found) snprintf(f->v, sizeof f->v, "%.*s", (int)s.v.str.slen, s.v.str.s);
    sr_buf_release(&strs);
    return NULL;
}

static void latest_on_a_new_thread(fresh_read *f)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fresh_latest, f), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(f->rc, SR_OK);
}

Test(ixseal, a_changed_row_s_first_read_takes_the_writer_s_kept_value_until_its_key_is_destroyed)
{
    char d[1200];
    path_of(d, sizeof d, "kept");
    sr_key k;
    et_master_key(&k);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    fresh_read f = {.e = e};
    sr_vtype ta;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &f.point, &ta), SR_OK);
    /* the row changes; a thread that never read it reads it: the writer
     * kept what it sealed (invariant 7), no AES-GCM open */
    put_str(e, "opA", "Intake pump changed", 5000);
    uint64_t opens = atomic_load(&e->seal.nopen);
    latest_on_a_new_thread(&f);
    cr_assert(f.found && !strcmp(f.v, "Intake pump changed"), "the new value: %s", f.v);
    cr_assert_eq(atomic_load(&e->seal.nopen), opens, "the first read of a changed row opened it by AES-GCM");
    /* once its key is destroyed, the kept plaintext is not served either */
    uint32_t id;
    sr_keyinfo nk;
    cr_assert_eq(sr_keyring_active(e->keyring, "opA", SR_KC_DATA, &id), SR_OK);
    cr_assert_eq(sr_keyring_rotate(e->keyring, "opA", SR_KC_DATA, 6000, &nk), SR_OK);
    cr_assert_eq(sr_keyring_destroy(e->keyring, id, 7000), SR_OK);
    f.found = -1;
    latest_on_a_new_thread(&f);
    cr_assert_eq(f.found, 0, "the latest row of a destroyed key reads as absent, kept or not");
    sr_engine_close(e);
}

/* set meta "layout" to l (as an older suiro left it) */
static void set_layout(const char *d, uint32_t l)
{
    char ix[1300];
    snprintf(ix, sizeof ix, "%s/index", d);
    sr_index *x;
    char err[256];
    cr_assert_eq(sr_index_open(ix, 0, 0, SR_SCHEMA_DBS, &x, err, sizeof err), SR_OK, "%s", err);
    MDB_txn *t;
    cr_assert_eq(sr_index_write_begin(x, &t), SR_OK);
    uint8_t b[4];
    sr_put_le32(b, l);
    MDB_val K = {6, "layout"}, V = {4, b};
    cr_assert_eq((mdb_put)(t, sr_index_dbi(x, SR_DB_META), &K, &V, 0), 0);
    cr_assert_eq(sr_index_commit(x, t), SR_OK);
    sr_index_close(x);
}

/* verify: the index equals its rebuild (plaintext compared: the nonces differ) */
static void rebuild_equals_live(const char *d, const sr_key *k)
{
    sr_engine *e = open_ok(d, k);
    uint8_t live[32], rebuilt[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    sr_engine_close(e);
    sr_engine_opts o = {.key = k, .key_source = "test", .zstd_level = -100};
    sr_errinfo ei;
    cr_assert_eq(sr_engine_rebuild(d, &o, &ei), SR_OK, "%s", ei.msg);
    e = open_ok(d, k);
    cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
    cr_assert_eq(memcmp(live, rebuilt, 32), 0, "rebuild equals live");
    sr_engine_close(e);
}

static void drop_sealed_mark(const char *d)
{
    char ix[1300];
    snprintf(ix, sizeof ix, "%s/index", d);
    sr_index *x;
    char err[256];
    cr_assert_eq(sr_index_open(ix, 0, 0, SR_SCHEMA_DBS, &x, err, sizeof err), SR_OK, "%s", err);
    MDB_txn *t;
    cr_assert_eq(sr_index_write_begin(x, &t), SR_OK);
    MDB_val K = {6, "sealed"};
    cr_assert_eq(mdb_del(t, sr_index_dbi(x, SR_DB_META), &K, NULL), 0);
    cr_assert_eq(sr_index_commit(x, t), SR_OK);
    sr_index_close(x);
}

Test(ixseal, a_layout_6_index_of_a_keyed_directory_is_rebuilt_sealed)
{
    char d[1200];
    path_of(d, sizeof d, "compat6");
    sr_key k;
    et_master_key(&k);
    sr_engine *e = open_ok(d, &k);
    fill(e);
    sr_engine_close(e);
    rebuild_equals_live(d, &k); /* verify before */
    set_layout(d, 6);           /* as a suiro before layout 8 left it: no "sealed" mark */
    drop_sealed_mark(d);
    e = open_ok(d, &k);         /* rebuilt from the log, sealed */
    cr_assert_eq(atomic_load(&e->seal.nplain), 0, "every value had a key");
    doc_is(e, "opA", "d1", DOC_A);
    doc_is(e, "opB", "d1", DOC_B);
    sr_engine_close(e);
    cr_assert_eq(scan_index(d), 0, "sealed after");
    rebuild_equals_live(d, &k); /* and after */
}

Test(ixseal, a_plain_index_given_a_key_is_rebuilt_and_seals_what_keyed_records_write)
{
    char d[1200];
    path_of(d, sizeof d, "compat0");
    sr_engine *e = open_ok(d, NULL);
    fill(e);
    sr_engine_close(e);
    cr_assert_eq(scan_index(d), NNEEDLES, "plain before");
    sr_key k;
    et_master_key(&k);
    e = open_ok(d, &k); /* rebuilt from the log: its plain records' values stay plain (form 0), as the records do */
    cr_assert_gt(atomic_load(&e->seal.nplain), 0);
    doc_is(e, "opA", "d1", DOC_A);
    /* a record sealed by a data key seals its values */
    put_doc(e, "opA", "d1", "{\"note\":\"Clarifier C-9\"}");
    doc_is(e, "opA", "d1", "{\"note\":\"Clarifier C-9\"}");
    sr_engine_close(e);
    char f[1300];
    snprintf(f, sizeof f, "%s/index/data.mdb", d);
    size_t len;
    uint8_t *b = tu_read_file(f, &len);
    cr_assert_null(memmem(b, len, "Clarifier C-9", 13), "the keyed record's document is sealed");
    free(b);
    rebuild_equals_live(d, &k);
}

Test(ixseal, without_a_key_the_values_are_layout_6_s)
{
    /* no "sealed" marker, no form byte: a document's value is its plain layout */
    char d[1200];
    path_of(d, sizeof d, "nokey");
    sr_engine *e = open_ok(d, NULL);
    fill(e);
    MDB_txn *t;
    cr_assert_eq(sr_index_read_begin(e->ix, &t), SR_OK);
    MDB_val K = {6, "sealed"}, V;
    cr_assert_eq((mdb_get)(t, DB(e, SR_DB_META), &K, &V), MDB_NOTFOUND);
    uint8_t k[256];
    size_t kl = mkkey(k, sizeof k, "opA", "reports", "d1");
    MDB_val DK = {kl, k};
    cr_assert_eq((mdb_get)(t, DB(e, SR_DB_DOCS), &DK, &V), 0);
    /* the write times (layout 9: first and last, the same for one put), then
     * revision u64 LE 1 (schema.h docs layout), the JSON last */
    cr_assert_gt(V.mv_size, SR_WTIMES);
    cr_assert_eq(sr_get_le64(V.mv_data), sr_get_le64((uint8_t *)V.mv_data + 8));
    cr_assert_eq(sr_get_le64((uint8_t *)V.mv_data + SR_WTIMES), 1);
    cr_assert_eq(memcmp((uint8_t *)V.mv_data + V.mv_size - strlen(DOC_A), DOC_A, strlen(DOC_A)), 0);
    sr_index_read_end(e->ix, t);
    sr_engine_close(e);
}
