/* tests/engine/test_engine_filekeys.c -- files sealed by their operator's
 * data key (issue #16; docs/blob-format.md "Version 2: what the engine
 * passes", docs/keys.md "Files"): a file of an operator is a version 2 blob
 * <sha256>.<kid> under that operator's active data key, recorded in
 * FilePut.key_id; one operator's blob does not open with another's key (the
 * blob's header patched to name the other key: authentication fails); a
 * byte scan of blobs/ finds no file content (and does without a master
 * key: the control); after a rotation old and new files read; a destroyed
 * key makes its files SR_EERASED; a version 1 blob of a directory written
 * with the single key reads after the upgrade, and after a master rotation
 * that keeps the old master as a legacy entry; the writer refuses a
 * FilePut naming another operator's key; first uploads at once of an
 * operator without a data key make one key, not one each. */
#include <criterion/criterion.h>

#include "engine/engine_int.h"
#include "engine/records.h"
#include "storage/blobs.h"
#include "storage/crc32c.h"
#include "storage/keyring.h"
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *top;
static void setup(void) { top = tu_tmpdir("filekeys"); }
static void teardown(void)
{
    tu_rmrf(top);
    free(top);
}
TestSuite(engine_filekeys, .init = setup, .fini = teardown, .timeout = 120);

static const char *const CONTENT_A = "Intake pump A-7731 maintenance report: valve 3 replaced",
                         *const CONTENT_B = "Reservoir B-4412 inspection: crack in the north wall";

static sr_key master(uint8_t fill)
{
    uint8_t b[SR_KEY_LEN];
    memset(b, fill, sizeof b);
    sr_key k;
    sr_key_from_bytes(&k, b);
    return k;
}

static sr_engine *open_ok(const char *d, const sr_key *k, int single_key)
{
    sr_engine_opts o = {.key = k, .single_key = single_key, .key_source = "test"};
    sr_engine *e = NULL;
    sr_errinfo ei;
    int rc = sr_engine_open(d, &o, &e, &ei);
    cr_assert_eq(rc, SR_OK, "open %s: %s: %s", d, sr_err_name(rc), ei.msg);
    return e;
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", top, name); }

/* the FilePut command of a file of op (as api/apif_store.c builds it) */
static int submit_put(sr_engine *e, const char *op, const char *path, const uint8_t sha[32], uint64_t size,
                      uint32_t kid, sr_result *r)
{
    sr_cmd_env env = {op, "app1", SR_ACTOR_APP, NULL, NULL};
    sr_file_meta fm = {.path = path, .sha256 = {sha, 32}, .size = size, .content_type = "text/plain", .key_id = kid};
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_cmd_file_put(&env, &fm, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, r);
    }
    sr_buf_release(&b);
    return rc;
}

/* an upload: the operator's file key, the blob, then the FilePut; *kid the key */
static void store_file(sr_engine *e, const char *op, const char *path, const char *content, uint32_t *kid,
                       uint8_t sha[32])
{
    sr_cmd_env env = {op, "app1", SR_ACTOR_APP, NULL, NULL};
    cr_assert_eq(sr_engine_file_key(e, &env, kid), SR_OK);
    sr_blob_writer *w;
    cr_assert_eq(sr_blob_writer_begin_keyed(sr_engine_blobs(e), *kid, &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, content, strlen(content)), SR_OK);
    uint64_t size;
    cr_assert_eq(sr_blob_writer_commit(w, sha, &size), SR_OK);
    sr_result r;
    cr_assert_eq(submit_put(e, op, path, sha, size, *kid, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

/* a download: the file's record, then its blob by the recorded key */
static int read_file(sr_engine *e, const char *op, const char *path, char *out, size_t cap, uint32_t *kid)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta f;
    int rc = sr_read_file(e, op, path, &m, &f);
    if (rc) return rc;
    if (kid) *kid = f.key_id;
    sr_blob_reader *rd;
    sr_blob_errinfo ei;
    rc = sr_blob_reader_open_keyed(sr_engine_blobs(e), f.sha256.data, f.key_id, &rd, &ei);
    sr_rec_close(&m);
    if (rc) return rc;
    size_t fill = 0, got;
    while ((rc = sr_blob_reader_read(rd, out + fill, cap - 1 - fill, &got)) == SR_OK) fill += got;
    sr_blob_reader_close(rd);
    out[fill] = 0;
    return rc == SR_DONE ? SR_OK : rc;
}

static void expect_reads(sr_engine *e, const char *op, const char *path, const char *content, uint32_t want_kid)
{
    char buf[256];
    uint32_t kid = 0;
    int rc = read_file(e, op, path, buf, sizeof buf, &kid);
    cr_assert_eq(rc, SR_OK, "%s %s: %s", op, path, sr_err_name(rc));
    cr_assert_str_eq(buf, content);
    cr_assert_eq(kid, want_kid, "%s %s: FilePut.key_id %08x, want %08x", op, path, kid, want_kid);
}

/* how many of the needles occur in the files under dir (recursively) */
static int scan_tree(const char *dir, const char *const *needles, size_t n)
{
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (de->d_name[0] == '.') continue;
        char f[2048];
        snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(f, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            found += scan_tree(f, needles, n);
            continue;
        }
        size_t len;
        uint8_t *b = tu_read_file(f, &len);
        for (size_t i = 0; b && i < n; i++) found += memmem(b, len, needles[i], strlen(needles[i])) != NULL;
        free(b);
    }
    closedir(dd);
    return found;
}

/* the blob file of sha under kid (0: the version 1 name) */
static void blob_path(char *out, size_t n, const char *d, const uint8_t sha[32], uint32_t kid)
{
    char hex[65];
    sr_hex(sha, 32, hex);
    if (kid) snprintf(out, n, "%s/blobs/%.2s/%.2s/%s.%08x", d, hex, hex + 2, hex, kid);
    else snprintf(out, n, "%s/blobs/%.2s/%.2s/%s", d, hex, hex + 2, hex);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

Test(engine_filekeys, each_operators_file_is_sealed_by_its_own_data_key_and_no_content_is_in_blobs)
{
    static const char *const needles[] = {"Intake pump A-7731", "Reservoir B-4412"};
    char d[1200], plain[1200], p[1500];
    path_of(d, sizeof d, "keyed");
    path_of(plain, sizeof plain, "plain");
    sr_key k = master(1);
    sr_engine *e = open_ok(d, &k, 0);
    uint32_t ka, kb;
    uint8_t sa[32], sb[32];
    store_file(e, "opA", "reports/a.txt", CONTENT_A, &ka, sa);
    store_file(e, "opB", "reports/b.txt", CONTENT_B, &kb, sb);
    /* the key of each: its operator's active data key, the one its records use */
    uint32_t da, db;
    cr_assert_eq(sr_keyring_active(e->keyring, "opA", SR_KC_DATA, &da), SR_OK);
    cr_assert_eq(sr_keyring_active(e->keyring, "opB", SR_KC_DATA, &db), SR_OK);
    cr_assert(ka && kb && ka != kb, "two operators' keys: %08x %08x", ka, kb);
    cr_assert_eq(ka, da);
    cr_assert_eq(kb, db);
    /* a second file of opA: the same key, no new one */
    uint32_t ka2;
    uint8_t s2[32];
    store_file(e, "opA", "reports/a2.txt", CONTENT_B, &ka2, s2);
    cr_assert_eq(ka2, ka);
    expect_reads(e, "opA", "reports/a.txt", CONTENT_A, ka);
    expect_reads(e, "opB", "reports/b.txt", CONTENT_B, kb);
    /* the version 2 names; no version 1 name */
    blob_path(p, sizeof p, d, sa, ka);
    cr_assert(exists(p), "%s", p);
    blob_path(p, sizeof p, d, sa, 0);
    cr_assert(!exists(p), "%s: a version 1 blob", p);
    /* the same bytes under two operators' keys are two files (opA's a2 is opB's content) */
    blob_path(p, sizeof p, d, sb, kb);
    cr_assert(exists(p));
    blob_path(p, sizeof p, d, s2, ka);
    cr_assert(exists(p));

    /* opA's blob does not open with opB's key: its bytes under opB's name,
     * the header naming opB's key (its CRC made good): authentication fails */
    char from[1500], to[1500];
    blob_path(from, sizeof from, d, sa, ka);
    blob_path(to, sizeof to, d, sa, kb);
    size_t len;
    uint8_t *b = tu_read_file(from, &len);
    cr_assert(b && len > 64);
    memcpy(b + 16, &kb, 4); /* little-endian hosts: the header's key_id */
    uint32_t crc = sr_crc32c(0, b, 60);
    memcpy(b + 60, &crc, 4);
    cr_assert_eq(tu_write_file(to, b, len), 0);
    free(b);
    sr_blob_reader *rd = NULL;
    sr_blob_errinfo ei;
    int rc = sr_blob_reader_open_keyed(sr_engine_blobs(e), sa, kb, &rd, &ei);
    if (rc == SR_OK) {
        char buf[256];
        size_t got;
        while ((rc = sr_blob_reader_read(rd, buf, sizeof buf, &got)) == SR_OK) {}
        sr_blob_reader_close(rd);
    }
    cr_assert_eq(rc, SR_ECORRUPT, "opA's blob under opB's key: %s", sr_err_name(rc));
    cr_assert_eq(remove(to), 0);

    /* the writer refuses a FilePut naming another operator's key */
    sr_result r;
    rc = submit_put(e, "opA", "reports/stolen.txt", sb, strlen(CONTENT_B), kb, &r);
    cr_assert_eq(rc, SR_EINVAL, "opA's FilePut naming opB's key: %s", sr_err_name(rc));
    cr_assert_eq(r.rc, SR_EINVAL);
    cr_assert(strstr(r.err.msg, "no data key of operator opA"), "%s", r.err.msg);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* no content in blobs/ */
    path_of(p, sizeof p, "keyed/blobs");
    cr_assert_eq(scan_tree(p, needles, 2), 0, "a file's plaintext in blobs/");

    /* the control: the same files without a master key are found (and are version 1 blobs) */
    e = open_ok(plain, NULL, 0);
    uint32_t k0;
    store_file(e, "opA", "reports/a.txt", CONTENT_A, &k0, sa);
    cr_assert_eq(k0, 0, "no keyring: key id 0");
    store_file(e, "opB", "reports/b.txt", CONTENT_B, &k0, sb);
    expect_reads(e, "opA", "reports/a.txt", CONTENT_A, 0);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    blob_path(p, sizeof p, plain, sa, 0);
    cr_assert(exists(p), "%s", p);
    path_of(p, sizeof p, "plain/blobs");
    cr_assert_eq(scan_tree(p, needles, 2), 2, "the scan finds plaintext files");
}

static void rotate_data(sr_engine *e, const char *op)
{
    sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
    sr_key_rec kr = {.action = "rotate", .key_operator = op, .key_class = "data"};
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_cmd_key_ev(&env, &kr, &b), SR_OK);
    sr_slice sl = {b.data, b.len};
    sr_result r;
    cr_assert_eq(sr_engine_submit_wait(e, &sl, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
}

Test(engine_filekeys, after_a_rotation_old_and_new_files_read_and_a_destroyed_key_erases_its_files)
{
    char d[1200];
    path_of(d, sizeof d, "rot");
    sr_key k = master(2);
    sr_engine *e = open_ok(d, &k, 0);
    uint32_t k1, k2;
    uint8_t s1[32], s2[32];
    store_file(e, "opA", "old.txt", CONTENT_A, &k1, s1);
    rotate_data(e, "opA");
    store_file(e, "opA", "new.txt", CONTENT_B, &k2, s2);
    cr_assert_neq(k1, k2, "a new file after the rotation: the new key");
    expect_reads(e, "opA", "old.txt", CONTENT_A, k1);
    expect_reads(e, "opA", "new.txt", CONTENT_B, k2);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* across a restart: the key ids come from the index's FilePut */
    e = open_ok(d, &k, 0);
    expect_reads(e, "opA", "old.txt", CONTENT_A, k1);
    expect_reads(e, "opA", "new.txt", CONTENT_B, k2);
    /* the old epoch destroyed (what retention's erasure does): its file is
     * erased (its index record was sealed by the same key: layout 8, so
     * the file is not found any more; its blob is erased), the new one reads */
    cr_assert_eq(sr_keyring_destroy(e->keyring, k1, 1), SR_OK);
    char buf[256];
    int rc = read_file(e, "opA", "old.txt", buf, sizeof buf, NULL);
    cr_assert_eq(rc, SR_ENOTFOUND, "a file of a destroyed key: %s", sr_err_name(rc));
    sr_blob_errinfo ei;
    uint64_t size;
    cr_assert_eq(sr_blob_verify_keyed(sr_engine_blobs(e), s1, k1, &size, &ei), SR_EERASED);
    cr_assert(strstr(ei.msg, "erased"), "%s", ei.msg);
    expect_reads(e, "opA", "new.txt", CONTENT_B, k2);
    /* a new FilePut naming the destroyed key is refused */
    sr_result r;
    cr_assert_eq(submit_put(e, "opA", "again.txt", s1, strlen(CONTENT_A), k1, &r), SR_EINVAL);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(engine_filekeys, a_version_1_blob_of_the_single_key_reads_after_the_upgrade)
{
    char d[1200], p[1500];
    path_of(d, sizeof d, "upgrade");
    sr_key k = master(3);
    /* before issue #16: one key seals everything, no keyring */
    sr_engine *e = open_ok(d, &k, 1);
    uint32_t k0;
    uint8_t s0[32];
    store_file(e, "opA", "old.txt", CONTENT_A, &k0, s0);
    cr_assert_eq(k0, 0, "the single key: a version 1 blob");
    cr_assert_eq(sr_engine_close(e), SR_OK);
    blob_path(p, sizeof p, d, s0, 0);
    cr_assert(exists(p), "%s", p);
    /* the upgrade: the same key is the master, a keyring is made */
    e = open_ok(d, &k, 0);
    expect_reads(e, "opA", "old.txt", CONTENT_A, 0);
    uint32_t k1;
    uint8_t s1[32];
    store_file(e, "opA", "new.txt", CONTENT_A, &k1, s1);
    cr_assert_neq(k1, 0, "a new file: a version 2 blob");
    cr_assert_eq(memcmp(s0, s1, 32), 0, "the same content");
    blob_path(p, sizeof p, d, s1, k1);
    cr_assert(exists(p), "%s", p);
    expect_reads(e, "opA", "old.txt", CONTENT_A, 0);
    expect_reads(e, "opA", "new.txt", CONTENT_A, k1);
    /* a master rotation keeping the old master as a legacy entry: the
     * version 1 blob of the old master still reads under the new one */
    static sr_key k2; /* outlives the engine (sr_engine_key_rewrap) */
    k2 = master(5);
    sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
    sr_errinfo ei;
    cr_assert_eq(sr_engine_key_rewrap(e, &env, &k2, 1, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    e = open_ok(d, &k2, 0);
    expect_reads(e, "opA", "old.txt", CONTENT_A, 0);
    expect_reads(e, "opA", "new.txt", CONTENT_A, k1);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

typedef struct firster {
    sr_engine *e;
    uint32_t kid;
    int rc;
} firster;

static void *first_upload(void *p)
{
    firster *f = p;
    sr_cmd_env env = {"opC", "app1", SR_ACTOR_APP, NULL, NULL};
    f->rc = sr_engine_file_key(f->e, &env, &f->kid);
    return NULL;
}

Test(engine_filekeys, first_uploads_at_once_make_one_key_with_one_event)
{
    char d[1200];
    path_of(d, sizeof d, "first");
    sr_key k = master(4);
    sr_engine *e = open_ok(d, &k, 0);
    enum { N = 8 };
    firster f[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        f[i] = (firster){.e = e};
        cr_assert_eq(pthread_create(&th[i], NULL, first_upload, &f[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(f[i].rc, SR_OK, "%s", sr_err_name(f[i].rc));
        cr_assert_eq(f[i].kid, f[0].kid, "upload %d: key %08x, upload 0: %08x", i, f[i].kid, f[0].kid);
    }
    sr_keyinfo *ks = NULL;
    size_t n = 0;
    cr_assert_eq(sr_engine_key_list(e, &ks, &n), SR_OK);
    int c_data = 0;
    for (size_t i = 0; i < n; i++) c_data += !strcmp(ks[i].operator_id, "opC") && ks[i].cls == SR_KC_DATA;
    sr_free(ks);
    cr_assert_eq(c_data, 1, "opC's data keys: %d (one epoch, not one per upload)", c_data);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}
