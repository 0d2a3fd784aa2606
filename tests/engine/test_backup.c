/* tests/engine/test_backup.c -- online backup and verified restore
 * (engine/backup.h, docs/backup.md): a backup at S while a writer thread
 * appends, restored with the source's content hash at S; incremental
 * links; each damage case refused naming the file and leaving nothing;
 * wrong keys; a set that is not one; a full disk at every VFS call; --to a
 * seq and a time; list and prune. */
#include "engine/backup.h"
#include "engsuite.h"
#include "storage/blobs.h"
#include "storage/crypto.h"
#include "vfs_faulty.h"

#include <dirent.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

static const sr_vtype NUM[] = {SR_VT_NUMBER};

static char *top;     /* the test's directory: src/, set/, out/ ... */
static sr_key key;

static void path_of(char *out, const char *name) { snprintf(out, 1200, "%s/%s", top, name); }

/* a fresh EC P-256 platform key as dir/platform-key.pem (what `suiro init` makes) */
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

static sr_engine_opts opts(void)
{
    return (sr_engine_opts){.key = &key, .segment_bytes = 64 * 1024, .sync = SR_ENGINE_SYNC_ALWAYS};
}

static sr_engine *open_src(const char *name, int fresh)
{
    char d[1200];
    path_of(d, name);
    if (fresh) {
        cr_assert_eq(mkdir(d, 0700), 0);
        make_platform_key(d);
    }
    sr_engine_opts o = opts();
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(d, &o, &e, &ei), SR_OK, "%s", ei.msg);
    if (fresh) cr_assert_eq(et_setup_masters(e, "op1", 4, NUM, 1), SR_OK);
    return e;
}

static uint32_t point_of(sr_engine *e, const char *id)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "op1", id, &p, &t), SR_OK);
    return p;
}

/* n values of point p from ts0, one command; its seq */
static uint64_t put(sr_engine *e, uint32_t p, int64_t ts0, int n)
{
    sr_sample s[64];
    cr_assert(n <= 64);
    static uint64_t x = 88172645463325252ull; /* xorshift: values that do not compress */
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s[i] = (sr_sample){.ts = ts0 + i, .v.f = (double)(x % 1000000007) / 1024.0};
    }
    sr_result r;
    cr_assert_eq(et_put(e, "op1", "GW1", p, SR_VT_NUMBER, s, (size_t)n, NULL, &r), SR_OK, "%s", r.err.msg);
    return r.seq + 1; /* its group's last seq: the write's summary (WriteAudit, issue #18) follows it */
}

static void put_file(sr_engine *e, const char *path, const char *body)
{
    sr_blob_writer *w;
    cr_assert_eq(sr_blob_writer_begin(sr_engine_blobs(e), &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, body, strlen(body)), SR_OK);
    uint8_t sha[32];
    uint64_t size;
    cr_assert_eq(sr_blob_writer_commit(w, sha, &size), SR_OK);
    sr_file_meta f = {.path = path, .sha256 = {sha, 32}, .size = size, .content_type = "text/plain"};
    sr_cmd_env env = {"op1", "APP1", SR_ACTOR_APP, NULL, "127.0.0.1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_file_put(&env, &f, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

/* The content hash of dir's log replayed up to seq into a fresh index (what
 * `suiro verify` compares with): the state "at seq", whatever the index. */
static void hash_at(const char *dir, uint64_t seq, uint32_t head_max, uint8_t out[32])
{
    char tmpl[1300];
    snprintf(tmpl, sizeof tmpl, "%s/hash-XXXXXX", top);
    cr_assert(mkdtemp(tmpl));
    sr_engine_opts o = {.key = &key, .index_dir = tmpl, .log_readonly = 1, .replay_to = seq, .head_max = head_max};
    sr_engine *e;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(sr_engine_content_hash(e, out), SR_OK);
    sr_engine_close(e);
    tu_rmrf(tmpl);
}

/* `suiro verify`'s index check on dir: the live index equals its log's
 * replay up to the watermark. Returns the watermark. */
static uint64_t verify_dir(const char *dir, uint8_t live[32])
{
    sr_engine_opts o = {.key = &key, .readonly = 1};
    sr_engine *e;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dir, &o, &e, &ei), SR_OK, "%s", ei.msg);
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    uint32_t hm = sr_engine_head_max(e);
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    sr_engine_close(e);
    uint8_t fresh[32];
    hash_at(dir, st.watermark, hm, fresh);
    cr_assert_eq(memcmp(live, fresh, 32), 0, "%s: the index differs from a rebuild of its log", dir);
    return st.watermark;
}

static void setup(void)
{
    top = tu_tmpdir("backup");
    uint8_t kb[32];
    for (int i = 0; i < 32; i++) kb[i] = (uint8_t)(i * 7 + 1);
    sr_key_from_bytes(&key, kb);
}

static void teardown(void)
{
    tu_rmrf(top);
    free(top);
}

TestSuite(backup, .init = setup, .fini = teardown, .timeout = 120);

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static size_t entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* sr_each_file: the file's blob is there and whole */
static sr_engine *g_r;
static int blob_ok(void *ctx, const char *op, const sr_file_meta *f)
{
    (void)op;
    uint64_t size = 0;
    sr_errinfo ei;
    cr_expect_eq(sr_blob_verify(sr_engine_blobs(g_r), f->sha256.data, &size, &ei), SR_OK, "%s", ei.msg);
    cr_expect_eq(size, f->size);
    (*(int *)ctx)++;
    return 0;
}

static sr_engine *g_e;
static atomic_int g_stop;
static atomic_ulong g_acked; /* the highest seq acknowledged */

static void *writer_main(void *arg)
{
    uint32_t p = *(uint32_t *)arg;
    int64_t ts = 1000000;
    while (!atomic_load(&g_stop)) {
        sr_sample s[16];
        for (int i = 0; i < 16; i++) s[i] = (sr_sample){.ts = ts + i, .v.f = (double)ts};
        sr_result r;
        if (et_put(g_e, "op1", "GW2", p, SR_VT_NUMBER, s, 16, NULL, &r) == SR_OK) atomic_store(&g_acked, r.seq);
        ts += 16;
    }
    return NULL;
}

static void backup_ok(sr_engine *e, const char *set, sr_backup_info *b)
{
    char d[1200];
    path_of(d, set);
    sr_errinfo ei;
    cr_assert_eq(sr_engine_backup(e, d, NULL, b, &ei), SR_OK, "%s", ei.msg);
}

static void restore_ok(const char *bdir, const char *dst, const sr_restore_opts *ro, sr_backup_info *x)
{
    sr_errinfo ei;
    cr_assert_eq(sr_backup_restore(bdir, dst, ro, x, &ei), SR_OK, "%s", ei.msg);
}

Test(backup, at_S_while_a_writer_appends_and_restored_with_the_sources_hash_at_S)
{
    g_e = open_src("src", 1);
    put_file(g_e, "reports/a.txt", "daily report, plant A");
    for (int i = 0; i < 50; i++) put(g_e, point_of(g_e, "P000"), 1000 * i, 32);
    uint32_t p1 = point_of(g_e, "P001");
    atomic_store(&g_stop, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, &p1), 0);
    while (atomic_load(&g_acked) < 120) sched_yield(); /* the writer is going */
    sr_backup_info b;
    backup_ok(g_e, "set", &b);
    uint64_t acked_after = atomic_load(&g_acked);
    while (atomic_load(&g_acked) < acked_after + 20) sched_yield(); /* and goes on after */
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    cr_expect_eq(b.seq, b.watermark, "S is the index copy's watermark: the restore serves at once");
    cr_expect_gt(b.seq, 120);
    char src[1200], bdir[1300], dst[1200], pk[1300];
    path_of(src, "src");
    snprintf(bdir, sizeof bdir, "%s/set/%s", top, b.name);
    snprintf(pk, sizeof pk, "%s/platform-key.pem", src);
    sr_backup_info c;
    sr_errinfo ei;
    cr_assert_eq(sr_backup_check(bdir, pk, 1, &c, &ei), SR_OK, "%s", ei.msg);
    cr_expect_eq(c.seq, b.seq);
    cr_expect(exists(bdir) && !strstr(b.name, "partial"));
    /* restore it: the engine at exactly S */
    path_of(dst, "restored");
    sr_restore_opts ro = {.key = &key, .platform_key = pk, .no_event = 1};
    sr_backup_info x;
    restore_ok(bdir, dst, &ro, &x);
    cr_expect_eq(x.seq, b.seq);
    uint8_t live[32], at_s[32];
    cr_expect_eq(verify_dir(dst, live), b.seq, "the restored index is at S");
    uint32_t hm = sr_engine_head_max(g_e);
    hash_at(src, b.seq, hm, at_s);
    cr_expect_eq(memcmp(live, at_s, 32), 0, "the restored engine's content hash is the source's at S");
    /* every write acknowledged before S is there; the later ones are not */
    sr_engine_opts o = opts();
    sr_engine *r;
    cr_assert_eq(sr_engine_open(dst, &o, &r, &ei), SR_OK, "%s", ei.msg);
    g_r = r;
    sr_engine_stats st;
    sr_engine_get_stats(r, &st);
    cr_expect_eq(st.log_next_seq, b.seq + 1, "the log ends at S");
    int files = 0;
    cr_expect_eq(sr_each_file(r, blob_ok, &files), SR_OK);
    cr_expect_eq(files, 1, "the file and its blob are restored");
    sr_engine_close(r);
    sr_engine_close(g_e);
}

Test(backup, the_restore_is_the_first_new_event_and_the_source_records_the_backup)
{
    sr_engine *e = open_src("src", 1);
    put(e, point_of(e, "P000"), 0, 10);
    sr_backup_info b;
    backup_ok(e, "set", &b);
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    /* the backup event, and the KeyEvents of the platform's keys it is the first record of (docs/keys.md) */
    cr_expect_geq(st.log_next_seq, b.seq + 2, "the source recorded its backup after S");
    cr_expect_leq(st.log_next_seq, b.seq + 4, "the backup event and at most its config and audit keys' events");
    sr_rec h = SR_REC_INIT;
    sr_audit_query q = {.kind = "backup"};
    int more;
    cr_assert_eq(sr_list_audit(e, &q, &h, &more), SR_OK);
    cr_expect_eq(h.count, 1, "the backup is in the audit trail");
    sr_rec_close(&h);
    sr_engine_close(e);
    char bdir[1300], dst[1200], pk[1300];
    snprintf(bdir, sizeof bdir, "%s/set/%s", top, b.name);
    snprintf(pk, sizeof pk, "%s/src/platform-key.pem", top);
    path_of(dst, "restored");
    sr_restore_opts ro = {.key = &key, .platform_key = pk, .source = "cli"};
    sr_backup_info x;
    restore_ok(bdir, dst, &ro, &x);
    uint8_t live[32];
    verify_dir(dst, live);
    sr_engine_opts o = opts();
    sr_engine *r;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dst, &o, &r, &ei), SR_OK, "%s", ei.msg);
    sr_rec h2 = SR_REC_INIT;
    cr_assert_eq(sr_list_audit(r, &q, &h2, &more), SR_OK);
    cr_expect_eq(h2.count, 1, "the restore is recorded in the restored directory");
    sr_audit_rec row;
    cr_assert_eq(sr_rec_next_audit(&h2, &row), 1);
    cr_expect_str_eq(row.action, "restore");
    cr_expect_eq(row.seq, b.seq + 1, "the restore is the first new event");
    sr_rec_close(&h2);
    char kp[1300];
    snprintf(kp, sizeof kp, "%s/platform-key.pem", dst);
    cr_expect(exists(kp), "given the private platform key, the restore puts it in place");
    sr_engine_close(r);
}

Test(backup, incremental_links_the_segments_and_blobs_the_last_backup_holds)
{
    sr_engine *e = open_src("src", 1);
    uint32_t p = point_of(e, "P000");
    put_file(e, "a.txt", "first file");
    for (int i = 0; i < 400; i++) put(e, p, 64 * i, 64); /* several 64 KiB segments */
    sr_backup_info b1, b2;
    backup_ok(e, "set", &b1);
    cr_assert_gt(b1.files_copied, 4, "%u copied, %" PRIu64 " bytes", b1.files_copied, b1.bytes);
    cr_expect_eq(b1.files_linked, 0);
    put_file(e, "b.txt", "second file");
    for (int i = 400; i < 430; i++) put(e, p, 64 * i, 64);
    backup_ok(e, "set", &b2);
    cr_expect_str_eq(b2.base, b1.name);
    /* linked: every sealed segment of b1 and its blob; copied: the index, the
     * segment b1 cut and those after it, the new blob, the certificate if any */
    size_t sealed = 0;
    char d1[1300], d2[1300];
    snprintf(d1, sizeof d1, "%s/set/%s/log", top, b1.name);
    size_t segs1 = entries(d1);
    sealed = segs1 - 1;
    cr_expect_eq(b2.files_linked, sealed + 1, "%u linked, %zu sealed segments + 1 blob expected", b2.files_linked, sealed);
    cr_expect_eq(b2.files_copied + b2.files_linked, b2.files);
    /* a linked file is the same inode */
    DIR *d = opendir(d1);
    struct dirent *de;
    int same = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char a[1600], c[1600];
        snprintf(a, sizeof a, "%s/%s", d1, de->d_name);
        snprintf(c, sizeof c, "%s/set/%s/log/%s", top, b2.name, de->d_name);
        struct stat sa, sc;
        if (!stat(a, &sa) && !stat(c, &sc) && sa.st_ino == sc.st_ino) same++;
    }
    closedir(d);
    cr_expect_eq((size_t)same, sealed);
    /* self-contained: b2 checks and restores with b1 gone */
    snprintf(d1, sizeof d1, "%s/set/%s", top, b1.name);
    tu_rmrf(d1);
    snprintf(d2, sizeof d2, "%s/set/%s", top, b2.name);
    char pk[1300], dst[1200];
    snprintf(pk, sizeof pk, "%s/src/platform-key.pem", top);
    path_of(dst, "restored");
    sr_restore_opts ro = {.key = &key, .platform_key = pk, .no_event = 1};
    sr_backup_info x;
    restore_ok(d2, dst, &ro, &x);
    uint8_t live[32], at_s[32];
    verify_dir(dst, live);
    char src[1200];
    path_of(src, "src");
    hash_at(src, b2.seq, sr_engine_head_max(e), at_s);
    cr_expect_eq(memcmp(live, at_s, 32), 0);
    sr_engine_close(e);
}

/* A backup to damage: src/ and set/NAME; the backup's directory in bdir. */
static void damaged_setup(char *bdir, char *pk)
{
    sr_engine *e = open_src("src", 1);
    put_file(e, "a.txt", "a file");
    for (int i = 0; i < 40; i++) put(e, point_of(e, "P000"), 64 * i, 64);
    sr_backup_info b;
    backup_ok(e, "set", &b);
    sr_engine_close(e);
    snprintf(bdir, 1300, "%s/set/%s", top, b.name);
    snprintf(pk, 1300, "%s/src/platform-key.pem", top);
}

/* restore bdir: refused with code, the message naming what; nothing made */
static void refused(const char *bdir, const char *pk, const sr_key *k, int code, const char *what)
{
    char dst[1200], part[1300];
    path_of(dst, "restored");
    snprintf(part, sizeof part, "%s.partial", dst);
    sr_restore_opts ro = {.key = k, .platform_key = pk};
    sr_backup_info x;
    sr_errinfo ei;
    int rc = sr_backup_restore(bdir, dst, &ro, &x, &ei);
    cr_expect_eq(rc, code, "%s: %s (%d, %d expected)", what, ei.msg, rc, code);
    cr_expect(strstr(ei.msg, what), "the error names %s: %s", what, ei.msg);
    cr_expect(!exists(dst) && !exists(part), "nothing half-restored");
}

static void first_segment(const char *bdir, char *out)
{
    char d[1300];
    snprintf(d, sizeof d, "%s/log", bdir);
    DIR *dd = opendir(d);
    struct dirent *de;
    char best[256] = "";
    while ((de = readdir(dd)))
        if (de->d_name[0] != '.' && (!best[0] || strcmp(de->d_name, best) < 0)) snprintf(best, sizeof best, "%s", de->d_name);
    closedir(dd);
    snprintf(out, 1600, "%s/log/%s", bdir, best);
}

Test(backup, a_changed_byte_is_refused_naming_the_file)
{
    char bdir[1300], pk[1300], seg[1600];
    damaged_setup(bdir, pk);
    first_segment(bdir, seg);
    FILE *f = fopen(seg, "r+b");
    cr_assert(f);
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    refused(bdir, pk, &key, SR_ECORRUPT, strrchr(seg, '/') + 1);
}

Test(backup, a_missing_file_is_refused_naming_it)
{
    char bdir[1300], pk[1300], p[1400];
    damaged_setup(bdir, pk);
    snprintf(p, sizeof p, "%s/index/data.mdb", bdir);
    cr_assert_eq(unlink(p), 0);
    refused(bdir, pk, &key, SR_ECORRUPT, "index/data.mdb: missing");
}

Test(backup, a_manifest_from_another_chain_or_a_bad_signature_is_refused)
{
    char bdir[1300], pk[1300], mp[1400];
    damaged_setup(bdir, pk);
    snprintf(mp, sizeof mp, "%s/manifest", bdir);
    /* another data directory (another platform key) and its backup */
    sr_engine *o = open_src("other", 1);
    put(o, point_of(o, "P000"), 0, 10);
    sr_backup_info ob;
    backup_ok(o, "oset", &ob);
    sr_engine_close(o);
    char omp[1400];
    snprintf(omp, sizeof omp, "%s/oset/%s/manifest", top, ob.name);
    size_t n;
    uint8_t *mine = tu_read_file(mp, &n);
    size_t on;
    uint8_t *theirs = tu_read_file(omp, &on);
    cr_assert(mine && theirs);
    cr_assert_eq(tu_write_file(mp, theirs, on), 0);
    refused(bdir, pk, &key, SR_EKEY, "another chain");
    /* a changed manifest: the signature does not verify */
    char *s = strstr((char *)mine, "\nseq ");
    cr_assert(s);
    s[5] = s[5] == '9' ? '8' : (char)(s[5] + 1);
    cr_assert_eq(tu_write_file(mp, mine, n), 0);
    refused(bdir, pk, &key, SR_EKEY, "bad signature");
    /* no manifest: not a complete backup */
    cr_assert_eq(unlink(mp), 0);
    refused(bdir, pk, &key, SR_ENOTFOUND, "not a complete backup");
    free(mine);
    free(theirs);
}

Test(backup, an_extra_file_and_a_wrong_key_are_refused)
{
    char bdir[1300], pk[1300], p[1400];
    damaged_setup(bdir, pk);
    sr_key other;
    uint8_t kb[32] = {9};
    sr_key_from_bytes(&other, kb);
    refused(bdir, pk, &other, SR_EKEY, "wrong key");
    refused(bdir, pk, NULL, SR_EKEY, "encrypted");
    snprintf(p, sizeof p, "%s/log/extra.seg", bdir);
    cr_assert_eq(tu_write_file(p, "x", 1), 0);
    refused(bdir, pk, &key, SR_ECORRUPT, "extra.seg: not in the backup's manifest");
}

Test(backup, a_restore_refuses_a_directory_that_is_not_empty)
{
    char bdir[1300], pk[1300], dst[1200], f[1300];
    damaged_setup(bdir, pk);
    path_of(dst, "restored");
    cr_assert_eq(mkdir(dst, 0700), 0);
    snprintf(f, sizeof f, "%s/keep-me", dst);
    cr_assert_eq(tu_write_file(f, "1", 1), 0);
    sr_restore_opts ro = {.key = &key, .platform_key = pk};
    sr_backup_info x;
    sr_errinfo ei;
    cr_expect_eq(sr_backup_restore(bdir, dst, &ro, &x, &ei), SR_EEXIST, "%s", ei.msg);
    cr_expect(strstr(ei.msg, "not empty"), "%s", ei.msg);
    cr_expect_eq(entries(dst), 1, "the directory is left as it was");
}

Test(backup, a_destination_that_is_no_backup_set_of_this_chain_is_refused)
{
    sr_engine *e = open_src("src", 1);
    put(e, point_of(e, "P000"), 0, 10);
    char set[1200], f[1300];
    path_of(set, "set");
    cr_assert_eq(mkdir(set, 0700), 0);
    snprintf(f, sizeof f, "%s/notes.txt", set);
    cr_assert_eq(tu_write_file(f, "mine", 4), 0);
    sr_backup_info b;
    sr_errinfo ei;
    cr_expect_eq(sr_engine_backup(e, set, NULL, &b, &ei), SR_EEXIST, "%s", ei.msg);
    cr_expect(strstr(ei.msg, "notes.txt"), "%s", ei.msg);
    cr_expect_eq(entries(set), 1, "nothing added");
    /* a set of another chain */
    sr_engine *o = open_src("other", 1);
    put(o, point_of(o, "P000"), 0, 10);
    sr_backup_info ob;
    backup_ok(o, "oset", &ob);
    sr_engine_close(o);
    char oset[1200];
    path_of(oset, "oset");
    cr_expect_eq(sr_engine_backup(e, oset, NULL, &b, &ei), SR_EKEY, "%s", ei.msg);
    cr_expect(strstr(ei.msg, "another chain"), "%s", ei.msg);
    cr_expect_eq(entries(oset), 1, "nothing added");
    sr_engine_close(e);
}

Test(backup, a_full_disk_at_any_call_leaves_nothing_under_the_name)
{
    sr_engine *e = open_src("src", 1);
    put_file(e, "a.txt", "a file");
    for (int i = 0; i < 20; i++) put(e, point_of(e, "P000"), 64 * i, 64);
    sr_backup_info b1;
    backup_ok(e, "set", &b1); /* a base, so that links are tried too */
    put(e, point_of(e, "P000"), 100000, 10);
    char set[1200];
    path_of(set, "set");
    sr_backup_opts bo = {.vfs = &vfs_faulty, .no_event = 1};
    int ok = 0;
    unsigned long k;
    char bad[512] = ""; /* the first call whose failure was mishandled (one assertion, not thousands) */
    for (k = 1; k < 2000 && !ok; k++) {
        vfs_faulty_arm(k, VF_ENOSPC);
        sr_backup_info b;
        sr_errinfo ei;
        int rc = sr_engine_backup(e, set, &bo, &b, &ei);
        int fired = vfs_faulty_fired();
        vfs_faulty_arm(0, VF_ENOSPC);
        if (!fired) {
            cr_assert_eq(rc, SR_OK, "%s", ei.msg);
            ok = 1;
            cr_expect_eq(entries(set), 2);
            break;
        }
        if (!bad[0] && (rc == SR_OK || !ei.msg[0] || entries(set) != 1))
            snprintf(bad, sizeof bad, "call %lu: rc %d, \"%s\", %zu entries in the set (only the base expected)", k, rc,
                     ei.msg, entries(set));
    }
    cr_expect(!bad[0], "%s", bad);
    cr_expect(ok, "the backup never completed");
    cr_expect_gt(k, 20, "the fault reached the copies");
    sr_engine_close(e);
}

Test(backup, restore_to_a_seq_or_a_time_cuts_the_log_and_rebuilds_the_index)
{
    sr_engine *e = open_src("src", 1);
    uint32_t p = point_of(e, "P000");
    uint64_t seqs[30];
    for (int i = 0; i < 30; i++) seqs[i] = put(e, p, 64 * i, 64);
    sr_backup_info b;
    backup_ok(e, "set", &b);
    uint32_t hm = sr_engine_head_max(e);
    sr_engine_close(e);
    char src[1200], bdir[1300], pk[1300], dst[1200];
    path_of(src, "src");
    snprintf(bdir, sizeof bdir, "%s/set/%s", top, b.name);
    snprintf(pk, sizeof pk, "%s/platform-key.pem", src);
    path_of(dst, "to-seq");
    /* the write's own seq (seqs[i] - 1: its WriteAudit follows it in the
     * group's batch): the cut is at the end of its group, after the
     * WriteAudit, so the state holds the write and its audit summary */
    sr_restore_opts ro = {.key = &key, .platform_key = pk, .to_seq = seqs[11] - 1, .no_event = 1};
    sr_backup_info x;
    restore_ok(bdir, dst, &ro, &x);
    cr_expect_eq(x.seq, seqs[11], "cut after the group of the write's seq %" PRIu64, seqs[11] - 1);
    uint8_t live[32], want[32];
    cr_expect_eq(verify_dir(dst, live), seqs[11]);
    hash_at(src, seqs[11], hm, want);
    cr_expect_eq(memcmp(live, want, 32), 0, "the state as of seq %" PRIu64, seqs[11]);
    /* the group's last seq (its WriteAudit): the same cut */
    path_of(dst, "to-seq-end");
    ro.to_seq = seqs[11];
    restore_ok(bdir, dst, &ro, &x);
    cr_expect_eq(x.seq, seqs[11]);
    cr_expect_eq(verify_dir(dst, live), seqs[11]);
    cr_expect_eq(memcmp(live, want, 32), 0, "the state as of seq %" PRIu64, seqs[11]);
    /* a seq after S is refused */
    path_of(dst, "late");
    ro.to_seq = b.seq + 10;
    sr_errinfo ei;
    cr_expect_eq(sr_backup_restore(bdir, dst, &ro, &x, &ei), SR_EINVAL, "%s", ei.msg);
    cr_expect(!exists(dst));
    /* by time: every event so far was ingested before now */
    path_of(dst, "to-time");
    ro.to_seq = 0;
    ro.has_to_ms = 1;
    ro.to_ms = INT64_MAX / 2;
    restore_ok(bdir, dst, &ro, &x);
    cr_expect_eq(x.seq, b.seq);
    path_of(dst, "to-early");
    ro.to_ms = 1000; /* 1970 */
    cr_expect_eq(sr_backup_restore(bdir, dst, &ro, &x, &ei), SR_ENOTFOUND, "%s", ei.msg);
    cr_expect(!exists(dst));
}

Test(backup, list_shows_the_complete_ones_and_prune_keeps_the_newest)
{
    sr_engine *e = open_src("src", 1);
    uint32_t p = point_of(e, "P000");
    sr_backup_info b[3];
    for (int i = 0; i < 3; i++) {
        put(e, p, 64 * i, 64);
        backup_ok(e, "set", &b[i]);
    }
    sr_engine_close(e);
    char set[1200], pk[1300], bad[1300], mp[1400];
    path_of(set, "set");
    snprintf(pk, sizeof pk, "%s/src/platform-key.pem", top);
    /* a backup whose manifest no longer checks: listed, not verified, never pruned */
    snprintf(bad, sizeof bad, "%s/%s", set, b[0].name);
    snprintf(mp, sizeof mp, "%s/manifest", bad);
    size_t n;
    uint8_t *m = tu_read_file(mp, &n);
    char *s = strstr((char *)m, "\nwatermark ");
    s[11] = s[11] == '9' ? '8' : (char)(s[11] + 1);
    cr_assert_eq(tu_write_file(mp, m, n), 0);
    free(m);
    sr_backup_info *v;
    size_t nv;
    sr_errinfo ei;
    cr_assert_eq(sr_backup_list(set, pk, &v, &nv, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(nv, 3);
    int verified = 0;
    for (size_t i = 0; i < nv; i++) verified += v[i].verified;
    cr_expect_eq(verified, 2);
    cr_expect_eq(v[2].seq, b[2].seq, "oldest S first");
    free(v);
    unsigned removed;
    cr_assert_eq(sr_backup_prune(set, pk, 1, &removed, &ei), SR_OK, "%s", ei.msg);
    cr_expect_eq(removed, 1);
    char keep[1300];
    snprintf(keep, sizeof keep, "%s/%s", set, b[2].name);
    cr_expect(exists(keep), "the newest stays");
    cr_expect(exists(bad), "one that does not check is never pruned");
    cr_expect_eq(entries(set), 2);
}

/* dir/platform-key.pem of the signature algorithm alg (as `suiro init
 * --signature` makes it) */
static void make_platform_key_of(const char *dir, int alg)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/platform-key.pem", dir);
    sr_sigkey *k = NULL;
    cr_assert_eq(sr_sigkey_generate(alg, &k), SR_OK);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert(PEM_write_PrivateKey(f, sr_sigkey_evp(k), NULL, NULL, 0, NULL, NULL));
    fclose(f);
    sr_sigkey_free(k);
}

Test(backup, each_signature_algorithm_signs_its_manifest_and_names_it)
{
    static const int algs[] = {SR_ALG_ES256, SR_ALG_ES384, SR_ALG_PS256, SR_ALG_EDDSA};
    char bdirs[4][1300], pks[4][1300];
    for (size_t i = 0; i < 4; i++) {
        char name[32], set[32], d[1200];
        snprintf(name, sizeof name, "src%zu", i);
        snprintf(set, sizeof set, "set%zu", i);
        path_of(d, name);
        cr_assert_eq(mkdir(d, 0700), 0);
        make_platform_key_of(d, algs[i]);
        sr_engine *e = open_src(name, 0);
        cr_assert_eq(et_setup_masters(e, "op1", 1, NUM, 1), SR_OK);
        put(e, point_of(e, "P000"), 0, 10);
        sr_backup_info b;
        backup_ok(e, set, &b);
        sr_engine_close(e);
        snprintf(bdirs[i], sizeof bdirs[i], "%s/%s/%s", top, set, b.name);
        snprintf(pks[i], sizeof pks[i], "%s/platform-key.pem", d);
        sr_backup_info x;
        sr_errinfo ei;
        cr_assert_eq(sr_backup_check(bdirs[i], pks[i], 1, &x, &ei), SR_OK, "%s: %s", sr_alg_name(algs[i]), ei.msg);
        char mp[1400], line[64];
        snprintf(mp, sizeof mp, "%s/manifest", bdirs[i]);
        snprintf(line, sizeof line, "\nsignature-alg %s\nsignature ", sr_alg_name(algs[i]));
        size_t n;
        char *m = (char *)tu_read_file(mp, &n);
        cr_assert(m && strstr(m, line), "the manifest names %s", sr_alg_name(algs[i]));
        free(m);
    }
    /* a manifest that says ES256 checked with an Ed25519 key, and the reverse:
     * refused naming both */
    sr_backup_info x;
    sr_errinfo ei;
    cr_assert_eq(sr_backup_check(bdirs[0], pks[3], 0, &x, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "signed with ES256, but the platform key given is a key of EdDSA"), "%s", ei.msg);
    cr_assert_eq(sr_backup_check(bdirs[3], pks[0], 0, &x, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "signed with EdDSA, but the platform key given is a key of ES256"), "%s", ei.msg);
    /* a changed algorithm line: the line is signed */
    char mp[1400];
    snprintf(mp, sizeof mp, "%s/manifest", bdirs[1]);
    size_t n;
    char *m = (char *)tu_read_file(mp, &n);
    char *at = strstr(m, "signature-alg ES384");
    cr_assert(at);
    memcpy(at, "signature-alg es384", 19); /* the same name, another case: other bytes */
    cr_assert_eq(tu_write_file(mp, m, n), 0);
    cr_assert_eq(sr_backup_check(bdirs[1], pks[1], 0, &x, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, "bad signature"), "%s", ei.msg);
    memcpy(at, "signature-alg RS256", 19);
    cr_assert_eq(tu_write_file(mp, m, n), 0);
    cr_assert_eq(sr_backup_check(bdirs[1], pks[1], 0, &x, &ei), SR_ECORRUPT);
    cr_assert(strstr(ei.msg, "unknown signature algorithm 'RS256'"), "%s", ei.msg);
    free(m);
}

Test(backup, a_manifest_from_before_the_algorithm_line_is_es256_and_still_reads)
{
    char bdir[1300], pk[1300], mp[1400];
    damaged_setup(bdir, pk);
    snprintf(mp, sizeof mp, "%s/manifest", bdir);
    size_t n;
    char *m = (char *)tu_read_file(mp, &n);
    cr_assert(m);
    /* what a build before it wrote: no signature-alg line, ES256 over the rest */
    char *alg = strstr(m, "signature-alg ES256\n");
    cr_assert(alg);
    *alg = 0;
    sr_sigkey *k = NULL;
    char err[300];
    cr_assert_eq(sr_sigkey_load(pk, 1, &k, err, sizeof err), SR_OK, "%s", err);
    uint8_t sig[SR_SIG_MAX_LEN];
    size_t sn = 0;
    cr_assert_eq(sr_sigkey_sign(k, m, strlen(m), sig, &sn), SR_OK);
    sr_sigkey_free(k);
    cr_assert_eq(sn, SR_ES256_SIG_LEN);
    char hex[2 * SR_ES256_SIG_LEN + 1], *old = malloc(n + 200);
    sr_hex(sig, sn, hex);
    int len = snprintf(old, n + 200, "%ssignature %s\n", m, hex);
    cr_assert_eq(tu_write_file(mp, old, (size_t)len), 0);
    sr_backup_info x;
    sr_errinfo ei;
    cr_assert_eq(sr_backup_check(bdir, pk, 1, &x, &ei), SR_OK, "%s", ei.msg);
    free(old);
    free(m);
}

/* issue #16 (docs/keys.md): a backup holds keys/keyring (the wrapped data
 * keys) and names the master key's id in its manifest, never the master
 * key: its bytes (raw or hex) are in no file of the backup; the restored
 * directory opens with the master and not without it. */
static int file_has(const char *path, const void *needle, size_t n)
{
    size_t len;
    uint8_t *b = tu_read_file(path, &len);
    int has = b && memmem(b, len, needle, n) != NULL;
    free(b);
    return has;
}

static int tree_has(const char *dir, const void *needle, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int has = 0;
    struct dirent *de;
    while (!has && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[2400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st)) continue;
        has = S_ISDIR(st.st_mode) ? tree_has(p, needle, n) : file_has(p, needle, n);
    }
    closedir(d);
    return has;
}

Test(backup, the_keyring_is_backed_up_and_the_master_key_never)
{
    sr_engine *e = open_src("src", 1);
    put(e, point_of(e, "P000"), 0, 10);
    sr_backup_info b;
    backup_ok(e, "set", &b);
    sr_engine_close(e);
    char bdir[1300], kr[1400], dst[1200], pk[1300], hex[65];
    snprintf(bdir, sizeof bdir, "%s/set/%s", top, b.name);
    snprintf(kr, sizeof kr, "%s/keys/keyring", bdir);
    cr_assert(access(kr, F_OK) == 0, "the backup holds keys/keyring");
    cr_assert_eq(b.key_id, key.id, "the manifest names the master key's id");
    sr_hex(key.bytes, SR_KEY_LEN, hex);
    cr_assert(!tree_has(bdir, key.bytes, SR_KEY_LEN), "the master key's bytes are in the backup");
    cr_assert(!tree_has(bdir, hex, 64), "the master key's hex is in the backup");
    snprintf(pk, sizeof pk, "%s/src/platform-key.pem", top);
    path_of(dst, "restored");
    sr_restore_opts ro = {.key = &key, .platform_key = pk, .no_event = 1};
    sr_backup_info x;
    restore_ok(bdir, dst, &ro, &x);
    snprintf(kr, sizeof kr, "%s/keys/keyring", dst);
    cr_assert(access(kr, F_OK) == 0, "the restore puts the keyring back");
    sr_engine_opts none = {0};
    sr_engine *r = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(dst, &none, &r, &ei), SR_EKEY, "without the master key: %s", ei.msg);
    sr_engine_opts o = opts();
    cr_assert_eq(sr_engine_open(dst, &o, &r, &ei), SR_OK, "%s", ei.msg);
    sr_engine_close(r);
}
