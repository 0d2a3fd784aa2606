/* tests/engine/test_segdrop.c -- dropping whole log segments (issue #16,
 * R-ST-6; docs/keys.md "Segments", engine/segdrop.c): small segments,
 * operators A and B with short periods; A's old data key is destroyed by a
 * sweep, and the same sweep carries the config records of the old segments
 * forward (ConfigCarry), records the drop (LogTrim) and unlinks the files.
 * Then: the files are gone and no byte of log/ holds A's erased plaintexts;
 * masters of both operators and B's data are there after a restart and after
 * a rebuild, whose index equals the live one (content hash) and which
 * reports the trim; the log verifies from its new start against the hash the
 * LogTrim recorded, and is refused when a kept segment is missing or its
 * first block is damaged. A second round trims the first round's carry and
 * trim away (the carry flattened). Without drop_segments nothing goes (the
 * control), and a LogTrim whose files a crash left is finished at open. */
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
#include <sys/wait.h>
#include <unistd.h>

#ifndef SR_SEGDROP_KILL9
#define SR_SEGDROP_KILL9 0
#endif
#if SR_SEGDROP_KILL9 /* the kill -9 rounds (test_segdrop_kill9) use a few of the helpers */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

static char *top;
static _Atomic int64_t clock_now;
static int64_t test_clock(void) { return clock_now; }
static void setup(void) { top = tu_tmpdir("segdrop"); }
static void teardown(void)
{
    tu_rmrf(top);
    free(top);
}
TestSuite(segdrop, .init = setup, .fini = teardown, .timeout = 300);

enum { DAY = 86400000 };
static const sr_vtype STR[] = {SR_VT_STRING};
static sr_key MASTER;

static sr_engine_opts opts(void)
{
    return (sr_engine_opts){.key = &MASTER, .key_source = "test", .clock_ms = test_clock, .head_max = 4,
                            .zstd_level = -100 /* no compression: a plaintext would show */,
                            .segment_bytes = 4096};
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

/* 4 string values "<tag>-<i>" of op's P000 at day d (one chunk) */
static void put4(sr_engine *e, const char *op, const char *tag, int64_t d)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, op, "P000", &p, &t), SR_OK);
    char v[4][48];
    sr_sample s[4];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 4; i++) {
        snprintf(v[i], sizeof v[i], "%s-%d", tag, i);
        s[i].ts = d * DAY + i * 3600000;
        s[i].v.str.s = v[i];
        s[i].v.str.slen = (uint32_t)strlen(v[i]);
    }
    sr_result r;
    int rc = et_put(e, op, "GW1", p, SR_VT_STRING, s, 4, NULL, &r);
    cr_assert_eq(rc, SR_OK, "%s", sr_err_name(rc));
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
}

static void rotate(sr_engine *e, const char *op)
{
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    const sr_key_rec k = {.action = "rotate", .key_operator = op, .key_class = "data"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(sr_cmd_key_ev(&env, &k, &b), SR_OK);
    sr_slice sl = {b.data, b.len};
    cr_assert_eq(sr_engine_submit_wait(e, &sl, 1, &r), SR_OK);
    cr_assert_eq(r.rc, SR_OK, "%s", r.err.msg);
    sr_buf_release(&b);
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

static int seg_files(const char *d, char first[64])
{
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    DIR *dd = opendir(ld);
    cr_assert(dd);
    int n = 0;
    struct dirent *de;
    if (first) first[0] = 0;
    while ((de = readdir(dd))) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 4, ".seg")) continue;
        n++;
        if (first && (!first[0] || strcmp(de->d_name, first) < 0)) snprintf(first, 64, "%s", de->d_name);
    }
    closedir(dd);
    return n;
}

/* how many segment files hold records below seq */
static int seg_files_below(const char *d, uint64_t seq)
{
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    DIR *dd = opendir(ld);
    cr_assert(dd);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 4, ".seg")) continue;
        n += strtoull(de->d_name, NULL, 10) < seq;
    }
    closedir(dd);
    return n;
}

static sr_retention_cfg CFG = {.default_days = 0, .audit_days = 30, .audit_floor_days = 365, .batch = 64,
                               .drop_segments = 1};

/* A's key of epoch 1 (days 10 to 20) seals "ERASE-A-*" over many small
 * segments; at day 400 A writes "NEW-A-*" under epoch 2 and B "KEEP-B-*";
 * both have a data period of 30 days, the audit period is 30 days. */
static void scenario(sr_engine *e)
{
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opA", 1, STR, 1), SR_OK);
    cr_assert_eq(et_setup_masters(e, "opB", 1, STR, 1), SR_OK);
    period(e, "opA", "short", 10); /* carried; superseded in the kept log below */
    for (int d = 1; d <= 90; d++) put4(e, "opA", "ERASE-A", d);
    clock_now = (int64_t)20 * DAY;
    rotate(e, "opA");
    clock_now = (int64_t)400 * DAY;
    put4(e, "opA", "NEW-A", 399);
    put4(e, "opB", "KEEP-B", 399);
    period(e, "opA", "default", 30);
    period(e, "opB", "default", 30);
    period(e, "opA", "short", 20); /* a rebuild must not let the carried 10 days come back */
}

static void verify_log(const char *d, sr_log_report *lr, int want_rc, const char *what)
{
    char ld[1300], kd[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    snprintf(kd, sizeof kd, "%s/keys", d);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, kd, &MASTER, NULL, 0, &kr, &ei), SR_OK, "%s", ei.msg);
    sr_log_opts lo = {.key = &MASTER, .keys = sr_keyring_keys(kr), .readonly = 1};
    memset(&ei, 0, sizeof ei);
    int rc = sr_log_verify(ld, &lo, lr, &ei);
    if (!rc) rc = sr_engine_log_trim_check(ld, &lo, lr, &ei);
    cr_assert_eq(rc, want_rc, "%s: verify %s: %s", what, sr_err_name(rc), ei.msg);
    if (want_rc == SR_ECORRUPT && getenv("SR_SEGDROP_SAY")) fprintf(stderr, "segdrop: %s: %s\n", what, ei.msg);
    sr_keyring_close(kr);
}

static void has_masters(sr_engine *e, const char *what)
{
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "opA", "P000", &p, &t), SR_OK, "%s: A's data point", what);
    cr_assert_eq(sr_engine_point(e, "opB", "P000", &p, &t), SR_OK, "%s: B's data point", what);
}

#if !SR_SEGDROP_KILL9 /* the suite test_segdrop; test_segdrop_kill9 is the kill -9 rounds below */
Test(segdrop, segments_past_every_period_go_with_the_config_carried_and_the_rest_verifies)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    scenario(e);
    int before = seg_files(d, NULL);
    cr_assert_gt(before, 4, "small segments (%d)", before);

    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 1, "A's epoch 1 (held %llu)", (unsigned long long)rep.keys_held);
    cr_assert_gt(rep.segments_dropped, 0, "segments dropped (held: %s)", rep.seg_held);
    cr_assert_gt(rep.carried, 0, "the masters carried forward");
    uint64_t first = sr_log_first_seq(e->log);
    cr_assert_gt(first, 1);
    cr_assert_eq(seg_files_below(d, first), 0, "the files are gone");
    has_masters(e, "live");
    uint8_t live[32], h[32];
    /* a backup of the trimmed log */
    char set[1200], pk[1300];
    snprintf(set, sizeof set, "%s/backups", top);
    cr_assert_eq(mkdir(set, 0700), 0);
    make_platform_key(d);
    snprintf(pk, sizeof pk, "%s/platform-key.pem", d);
    sr_backup_info bi;
    cr_assert_eq(sr_engine_backup(e, set, NULL, &bi, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(bi.first_seq, first);
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK); /* with the BackupEvent */
    cr_assert_eq(sr_engine_close(e), SR_OK);

    /* no byte of log/ holds A's erased values (their segments are gone) */
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    cr_assert_eq(scan_tree(ld, "ERASE-A"), 0);

    /* a restart: the same index, the config there */
    e = open_ok(d);
    has_masters(e, "restart");
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32), "the restart's index equals the live one");
    cr_assert_eq(sr_engine_close(e), SR_OK);

    /* a rebuild from the trimmed log equals the live index and reports the trim */
    sr_engine_opts o = opts();
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &o, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(st.log_first_seq, first);
    cr_assert_eq(st.trimmed_below, first, "the rebuild reports the trim (%llu)", (unsigned long long)st.trimmed_below);
    cr_assert_gt(st.trim_seq, first);
    cr_assert_eq(st.trimmed_records, rep.records_dropped);
    es_rebuild_both_ways(d, &o, live); /* engine/replay.c invariant 5 */
    e = open_ok(d);
    has_masters(e, "rebuild");
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32), "the rebuild equals the live index");
    /* B goes on writing; A's new epoch reads */
    put4(e, "opB", "KEEP-B2", 399);
    cr_assert_eq(sr_engine_close(e), SR_OK);

    /* verify: from the trimmed start, against the LogTrim's hash */
    sr_log_report lr;
    verify_log(d, &lr, SR_OK, "trimmed");
    cr_assert_eq(lr.first_seq, first);
    cr_assert(lr.trim_checked);
    cr_assert_eq(lr.trim_records, rep.records_dropped);

    /* the backup restores and verifies from the trimmed start */
    char bdir[1400], rd[1300];
    snprintf(bdir, sizeof bdir, "%s/%s", set, bi.name);
    snprintf(rd, sizeof rd, "%s/restored", top);
    sr_restore_opts ro = {.key = &MASTER, .platform_key = pk};
    sr_backup_info rx;
    cr_assert_eq(sr_backup_restore(bdir, rd, &ro, &rx, &ei), SR_OK, "%s", ei.msg);
    e = open_ok(rd);
    has_masters(e, "restored");
    cr_assert_eq(sr_log_first_seq(e->log), first);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    verify_log(rd, &lr, SR_OK, "restored");
    cr_assert(lr.trim_checked);
    cr_assert_eq(scan_tree(bdir, "ERASE-A"), 0, "a plaintext in the backup");

    /* the CLI through the real binary: `suiro log verify` (text and JSON),
     * `suiro rebuild` and `suiro verify` say the trim and succeed */
    char kf[1300], cl[4000], out[8192];
    snprintf(kf, sizeof kf, "%s/master.key", top);
    FILE *kfh = fopen(kf, "wb");
    cr_assert(kfh);
    cr_assert_eq(fwrite(MASTER.bytes, 1, SR_KEY_LEN, kfh), SR_KEY_LEN);
    fclose(kfh);
    char w0[96], w1[96], w2[96];
    snprintf(w0, sizeof w0, "log starts at seq %llu; segments below trimmed at ", (unsigned long long)first);
    snprintf(w1, sizeof w1, "\"trim\":{\"first_kept\":%llu,\"checked\":true", (unsigned long long)first);
    snprintf(w2, sizeof w2, "trimmed: the log starts at seq %llu", (unsigned long long)first);
    const char *const clis[4][2] = {{"log verify", ""}, {"log verify", " --json"}, {"rebuild", ""}, {"verify", ""}};
    const char *const wants[4] = {w0, w1, w2, "ok"};
    for (int i = 0; i < 4; i++) {
        snprintf(cl, sizeof cl, "%s %s %s%s --key-file %s 2>&1", SR_SUIRO_BIN, clis[i][0], i < 2 ? ld : d, clis[i][1],
                 kf);
        FILE *pp = popen(cl, "r");
        cr_assert(pp);
        size_t got = fread(out, 1, sizeof out - 1, pp);
        out[got] = 0;
        int st2 = pclose(pp);
        cr_assert_eq(st2, 0, "%s: exit %d: %s", cl, st2, out);
        cr_assert(strstr(out, wants[i]), "%s: no \"%s\" in: %s", cl, wants[i], out);
    }

    /* tampering: the first kept block damaged; the first kept segment gone */
    char f0[64], p0[1400];
    seg_files(d, f0);
    snprintf(p0, sizeof p0, "%s/%s", ld, f0);
    size_t n;
    uint8_t *orig = tu_read_file(p0, &n);
    cr_assert(orig && n > SR_SEG_HDR_LEN + SR_BLK_HDR_LEN + 8);
    uint8_t *bad = malloc(n);
    memcpy(bad, orig, n);
    bad[SR_SEG_HDR_LEN + SR_BLK_HDR_LEN + 4] ^= 0x55;
    FILE *fp = fopen(p0, "wb");
    cr_assert(fp && fwrite(bad, 1, n, fp) == n);
    fclose(fp);
    verify_log(d, &lr, SR_ECORRUPT, "a damaged first kept block");
    fp = fopen(p0, "wb");
    cr_assert(fp && fwrite(orig, 1, n, fp) == n);
    fclose(fp);
    verify_log(d, &lr, SR_OK, "restored");
    char moved[1500];
    snprintf(moved, sizeof moved, "%s/%s.away", top, f0);
    cr_assert_eq(rename(p0, moved), 0);
    verify_log(d, &lr, SR_ECORRUPT, "a missing trim record");
    snprintf(cl, sizeof cl, "%s log verify %s --key-file %s >/dev/null 2>&1", SR_SUIRO_BIN, ld, kf);
    int vst = system(cl);
    cr_assert(WIFEXITED(vst) && WEXITSTATUS(vst) == 1, "suiro log verify of a log missing its trim record: %d", vst);
    cr_assert_eq(rename(moved, p0), 0);
    free(bad);
    free(orig);
}

Test(segdrop, a_second_trim_drops_the_first_ones_carry_and_the_rebuild_still_equals_live)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    scenario(e);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_gt(rep.segments_dropped, 0, "held: %s", rep.seg_held);
    uint64_t first1 = sr_log_first_seq(e->log);
    /* round 2: more config, A's epoch 2 filled, rotated and aged out */
    period(e, "opB", "short", 30);
    for (int d2 = 380; d2 <= 399; d2++) put4(e, "opA", "ERASE-A3", d2);
    clock_now = (int64_t)410 * DAY;
    rotate(e, "opA");
    rotate(e, "opB");
    clock_now = (int64_t)800 * DAY;
    put4(e, "opA", "NEW-A4", 799);
    put4(e, "opB", "KEEP-B4", 799);
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 2, "A's epoch 2, B's epoch 1");
    cr_assert_gt(rep.segments_dropped, 0, "held: %s", rep.seg_held);
    uint64_t first2 = sr_log_first_seq(e->log);
    cr_assert_gt(first2, first1);
    has_masters(e, "live");
    uint8_t live[32], h[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    char ld[1300];
    snprintf(ld, sizeof ld, "%s/log", d);
    cr_assert_eq(scan_tree(ld, "ERASE-A"), 0);
    sr_engine_opts o = opts();
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &o, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(st.trimmed_below, first2);
    e = open_ok(d);
    has_masters(e, "rebuild");
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32), "the rebuild equals the live index after two trims");
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_log_report lr;
    verify_log(d, &lr, SR_OK, "twice trimmed");
    cr_assert(lr.trim_checked);
}

Test(segdrop, without_drop_segments_nothing_goes_and_a_trim_a_crash_left_is_finished_at_open)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    scenario(e);
    int before = seg_files(d, NULL);
    sr_retention_cfg off = CFG;
    off.drop_segments = 0;
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &off, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 1);
    cr_assert_eq(rep.segments_dropped, 0);
    cr_assert_eq(seg_files_below(d, 2), 1, "the control: nothing dropped (the first segment is there)");
    cr_assert_eq(sr_log_first_seq(e->log), 1);
    /* the crash: the LogTrim durable and applied (meta floor), the files
     * not unlinked -- the sweep's steps up to the unlink, by hand */
    e->o.test_segdrop_no_unlink = 1;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.segments_dropped, 0);
    cr_assert_eq(seg_files_below(d, 2), 1, "nothing unlinked yet");
    before = seg_files(d, NULL);
    uint8_t live[32], h[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    /* and a crash between two unlinks: the first file gone, the others not;
     * verify says the drop was interrupted (not corrupt) */
    char f0[64], p0[1400];
    seg_files(d, f0);
    snprintf(p0, sizeof p0, "%s/log/%s", d, f0);
    cr_assert_eq(unlink(p0), 0);
    sr_log_report lr;
    verify_log(d, &lr, SR_OK, "interrupted");
    cr_assert_gt(lr.trim_interrupted, lr.first_seq, "the drop said interrupted");
    cr_assert(!lr.trim_checked);
    e = open_ok(d);
    sr_engine_open_stats st;
    sr_engine_get_open_stats(e, &st);
    cr_assert_gt(st.segments_finished, 0, "the open finished the drop");
    cr_assert_lt(seg_files(d, NULL), before);
    cr_assert_gt(sr_log_first_seq(e->log), 1);
    has_masters(e, "finished");
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32));
    cr_assert_eq(sr_engine_close(e), SR_OK);
    verify_log(d, &lr, SR_OK, "finished");
    cr_assert(lr.trim_checked);
}

/* Rule (d): an operator whose data key never rotates (rotate_days 0, the
 * default) loses its old segments all the same once its values are past
 * every period and cut from the index. */
Test(segdrop, data_past_every_period_goes_without_a_key_destroyed)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opC", 1, STR, 1), SR_OK);
    for (int day = 1; day <= 90; day++) put4(e, "opC", "OLD-C", day);
    clock_now = (int64_t)400 * DAY;
    put4(e, "opC", "NEW-C", 399);
    period(e, "opC", "default", 30);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 0, "no key rotated, none destroyed");
    cr_assert_gt(rep.segments_dropped, 0, "held: %s", rep.seg_held);
    uint64_t first = sr_log_first_seq(e->log);
    uint32_t p;
    sr_vtype t;
    cr_assert_eq(sr_engine_point(e, "opC", "P000", &p, &t), SR_OK);
    uint8_t live[32], h[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_engine_opts o = opts();
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &o, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(st.trimmed_below, first);
    e = open_ok(d);
    cr_assert_eq(sr_engine_point(e, "opC", "P000", &p, &t), SR_OK);
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32), "the rebuild equals the live index");
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_log_report lr;
    verify_log(d, &lr, SR_OK, "rule (d)");
    cr_assert(lr.trim_checked);
}

/* The golden trimmed log (tests/data/log/v3-trimmed/, docs/format.md "Golden
 * corpus"): a plain version 3 log of 4 KiB segments whose first segment was
 * dropped, with the LogTrim event that recorded it. verify accepts it from
 * its start against that event's hash; SR_GOLDEN_WRITE=1 regenerates it (the
 * writer, no key, no compression: its bytes are a function of the records). */
#define TRIMMED SR_TEST_DATA "/log/v3-trimmed"
static void golden_write(void)
{
    tu_rmrf(TRIMMED);
    cr_assert_eq(mkdir(TRIMMED, 0755), 0);
    sr_log_opts lo = {.segment_bytes = 4096, .sync = SR_SYNC_NONE};
    sr_log *lg;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(TRIMMED, &lo, &lg, &ei), SR_OK, "%s", ei.msg);
    for (int i = 0; i < 24; i++) { /* audit-like events of 300 bytes: about 3 segments */
        Suiro__V1__AdminEvent a = SUIRO__V1__ADMIN_EVENT__INIT;
        char msg[300];
        memset(msg, 'a' + i % 26, sizeof msg - 1);
        msg[sizeof msg - 1] = 0;
        a.method = "GET";
        a.route = "/admin/v1/golden";
        a.message = msg;
        Event ev = SUIRO__V1__EVENT__INIT;
        ev.ingest_ms = 1765000000000 + i;
        ev.actor = "golden";
        ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_USER;
        ev.body_case = SUIRO__V1__EVENT__BODY_ADMIN;
        ev.admin = &a;
        uint8_t b[512];
        size_t n = protobuf_c_message_pack(&ev.base, b);
        uint64_t seq;
        cr_assert_eq(sr_log_append(lg, &(sr_slice){b, n}, 1, &seq), SR_OK);
    }
    char name[64];
    uint64_t f1, bytes;
    cr_assert_eq(sr_log_segment_at(lg, 1, name, &f1, &bytes), SR_OK, "at least two segments");
    sr_log_cut cut;
    cr_assert_eq(sr_log_cut_at(lg, f1 - 1, 1, &cut), SR_OK);
    cr_assert_eq(cut.last_seq, f1 - 1);
    Suiro__V1__LogTrim lt = SUIRO__V1__LOG_TRIM__INIT;
    Suiro__V1__TrimCount tc = SUIRO__V1__TRIM_COUNT__INIT, *tcp = &tc;
    tc.operator_id = "";
    tc.key_class = "audit";
    tc.records = f1 - 1;
    lt.first_kept = f1;
    lt.first_dropped = 1;
    lt.anchor = (ProtobufCBinaryData){SR_HASH_LEN, cut.tip};
    lt.segments = 1;
    lt.n_counts = 1;
    lt.counts = &tcp;
    lt.carried_through = f1 - 1;
    Event ev = SUIRO__V1__EVENT__INIT;
    ev.ingest_ms = 1765000001000;
    ev.actor = "system";
    ev.actor_kind = SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM;
    ev.source = "retention";
    ev.body_case = SUIRO__V1__EVENT__BODY_LOG_TRIM;
    ev.log_trim = &lt;
    uint8_t b[512];
    size_t n = protobuf_c_message_pack(&ev.base, b);
    uint64_t seq;
    cr_assert_eq(sr_log_append(lg, &(sr_slice){b, n}, 1, &seq), SR_OK);
    size_t gone = 0;
    cr_assert_eq(sr_log_drop_below(lg, f1, &gone), SR_OK);
    cr_assert_eq(gone, 1);
    cr_assert_eq(sr_log_close(lg), SR_OK);
    char lock[1200];
    snprintf(lock, sizeof lock, "%s/LOCK", TRIMMED);
    unlink(lock);
}

/* The retention cut of the state snapshots (docs/state.md "Kept";
 * statesnap.c invariant 4): a snapshot every group (none thinned), a sweep
 * that drops segments; the LogTrim deletes in its transaction every
 * snapshot whose S + 1 the log no longer holds and no other, so after the
 * drop none is before the horizon, those after it are all still there, and
 * a state answer starts from one the log can replay on from. */
Test(segdrop, a_trim_deletes_the_state_snapshots_before_the_horizon_and_keeps_the_rest)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine_opts o = opts();
    o.snapshot_events = 1;
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(d, &o, &e, &ei), SR_OK, "%s", ei.msg);
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opC", 1, STR, 1), SR_OK);
    for (int day = 1; day <= 90; day++) put4(e, "opC", "OLD-C", day);
    clock_now = (int64_t)400 * DAY;
    put4(e, "opC", "NEW-C", 399);
    period(e, "opC", "default", 30);
    static uint64_t before[4096], after[4096];
    size_t nb = 0, na = 0;
    cr_assert_eq(sr__snap_list(e, before, 4096, &nb), SR_OK);
    cr_assert_lt(nb, 4096);
    sr_retention_report rep;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_gt(rep.segments_dropped, 0, "held: %s", rep.seg_held);
    uint64_t first = sr_log_first_seq(e->log);
    cr_assert_eq(sr__snap_list(e, after, 4096, &na), SR_OK);
    size_t gone = 0, kept = 0;
    for (size_t i = 0; i < nb; i++) {
        if (before[i] + 1 < first) gone++;
        else kept++;
    }
    cr_assert_gt(gone, 0, "snapshots before the horizon %" PRIu64 " existed", first);
    cr_assert_gt(kept, 0);
    cr_assert_geq(na, kept, "every snapshot the log can replay on from is kept");
    for (size_t i = 0; i < na; i++)
        cr_assert_geq(after[i] + 1, first, "snapshot %" PRIu64 " is before the horizon %" PRIu64, after[i], first);
    size_t j = 0; /* the ones kept are the ones of before at or after the horizon (and the sweep's own) */
    for (size_t i = 0; i < nb; i++)
        if (before[i] + 1 >= first) {
            while (j < na && after[j] < before[i]) j++;
            cr_assert(j < na && after[j] == before[i], "snapshot %" PRIu64 " was deleted", before[i]);
        }
    sr_engine *at = NULL;
    sr_state_info in;
    cr_assert_eq(sr_engine_state_open(e, clock_now, &at, &in, &ei), SR_OK, "%s", ei.msg);
    cr_assert_geq(in.snap_seq + 1, first);
    cr_assert_gt(in.snap_seq, 0, "the answer starts from a snapshot after the horizon");
    cr_assert_eq(sr_engine_state_close(at), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

/* Push marks (config class, applied as a max per app) no longer hold their
 * segment: the server's push start mark (operator and app "", written at
 * every start) and an app's marks in the old segments; a superseded one
 * (a higher mark of its app in the index) goes, the latest of each app is
 * carried: after the drop the marks read the same, and a rebuild of the
 * trimmed log gives them back (the content hash equals the live one). */
static void mark(sr_engine *e, const char *op, const char *app, uint64_t through)
{
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_push_mark(&env, app, through, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

Test(segdrop, push_marks_in_old_segments_are_superseded_or_carried_and_hold_nothing)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    clock_now = (int64_t)10 * DAY;
    cr_assert_eq(et_setup_masters(e, "opC", 1, STR, 1), SR_OK);
    mark(e, "", "", 7);        /* the push start mark */
    mark(e, "opC", "APP1", 5); /* superseded below */
    for (int day = 1; day <= 45; day++) put4(e, "opC", "OLD-C", day);
    mark(e, "opC", "APP1", 9); /* the latest of APP1: carried */
    for (int day = 46; day <= 90; day++) put4(e, "opC", "OLD-C", day);
    clock_now = (int64_t)400 * DAY;
    put4(e, "opC", "NEW-C", 399);
    period(e, "opC", "default", 30);
    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_gt(rep.segments_dropped, 0, "held: %s", rep.seg_held);
    uint64_t first = sr_log_first_seq(e->log);
    cr_assert_gt(first, 60, "the segments of the marks went (first kept %" PRIu64 ")", first);
    uint64_t th = 0;
    cr_assert_eq(sr_engine_push_mark(e, "", "", &th), SR_OK);
    cr_assert_eq(th, 7);
    cr_assert_eq(sr_engine_push_mark(e, "opC", "APP1", &th), SR_OK);
    cr_assert_eq(th, 9);
    uint8_t live[32], h[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_engine_opts o = opts();
    es_rebuild_both_ways(d, &o, live); /* the carried marks give the same pushq rows */
    e = open_ok(d);
    cr_assert_eq(sr_engine_push_mark(e, "opC", "APP1", &th), SR_OK);
    cr_assert_eq(th, 9, "after a rebuild of the trimmed log");
    cr_assert_eq(sr_engine_push_mark(e, "", "", &th), SR_OK);
    cr_assert_eq(th, 7);
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32));
    cr_assert_eq(sr_engine_close(e), SR_OK);
}

Test(segdrop, the_golden_trimmed_log_verifies_from_its_start)
{
    if (getenv("SR_GOLDEN_WRITE")) golden_write();
    sr_log_opts lo = {.readonly = 1};
    sr_log_report lr;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = sr_log_verify(TRIMMED, &lo, &lr, &ei);
    if (!rc) rc = sr_engine_log_trim_check(TRIMMED, &lo, &lr, &ei);
    cr_assert_eq(rc, SR_OK, "%s", ei.msg);
    cr_assert(lr.ok && lr.trim_checked);
    cr_assert_eq(lr.first_seq, 9, "the documented start (seq %llu)", (unsigned long long)lr.first_seq);
    cr_assert_eq(lr.last_seq, 25);
    cr_assert_eq(lr.trim_seq, 25);
    cr_assert_eq(lr.trim_records, 8);
}

/* Issue #16's audit data: a segment holding an operator's sessions, alive
 * transitions and alarm steps goes once their audit period passed: the
 * sweep cuts the history (audit rows, resolved alarms, expired sessions),
 * restates the live state (the alive row, the open alarm), destroys the
 * retired audit key, and its records, erased, leave with their segments. */
static void seg_submit(sr_engine *e, int built, sr_buf *b)
{
    sr_result r;
    cr_assert_eq(es_submit1(e, built, b, &r), SR_OK, "%s", r.err.msg);
}

Test(segdrop, segments_of_sessions_alive_and_alarm_steps_go_once_their_audit_period_passed)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/data", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    sr_engine *e = open_ok(d);
    clock_now = (int64_t)10 * DAY;
    sr_cmd_env sys = {"opD", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    sr_cmd_env app = {"opD", "app1", SR_ACTOR_APP, NULL, "10.0.0.1"};
    sr_cmd_env adm = {"opD", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    for (int i = 0; i < 40; i++) {
        sr_buf b;
        char remote[48], rule[16];
        snprintf(remote, sizeof remote, "OLD-D-REMOTE-%d", i);
        snprintf(rule, sizeof rule, "r%d", i);
        sr_alive_rec a = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = i % 2 ? SR_AS_OFFLINE : SR_AS_ONLINE,
                          .reason = i % 2 ? SR_AR_DISCONNECT : SR_AR_CONNECT, .binding = "mqtt", .remote = remote,
                          .will = ""};
        sr_buf_init(&b);
        seg_submit(e, sr_cmd_alive(&sys, &a, &b), &b);
        uint8_t h[32];
        memset(h, i + 1, 32);
        sr_buf_init(&b);
        seg_submit(e, sr_cmd_token_session(&app, h, (int64_t)12 * DAY, SR_SS_CONNECTED, "OLD-D-SESSION", &b), &b);
        sr_alarm_step st = {.state = "raised", .rule = rule, .subject = "s", .source = "test",
                            .message = "OLD-D-ALARM", .comment = "", .level = SR_AL_MINOR};
        sr_buf_init(&b);
        seg_submit(e, sr_cmd_alarm(&adm, &st, &b), &b);
        sr_alarm_step rs = {.state = "resolved", .rule = rule, .subject = "s", .source = "test", .message = "",
                            .comment = "OLD-D-RESOLVE"};
        sr_buf_init(&b);
        seg_submit(e, sr_cmd_alarm(&adm, &rs, &b), &b);
    }
    sr_alive_rec last = {.kind = SR_ACTOR_GATEWAY, .id = "GW1", .state = SR_AS_ONLINE, .reason = SR_AR_CONNECT,
                         .binding = "mqtt", .remote = "LIVE-D-REMOTE", .will = ""};
    sr_buf lb;
    sr_buf_init(&lb);
    seg_submit(e, sr_cmd_alive(&sys, &last, &lb), &lb);
    sr_alarm_step open = {.state = "raised", .rule = "ropen", .subject = "s", .source = "test",
                          .message = "LIVE-D-ALARM", .comment = "", .level = SR_AL_MAJOR};
    sr_buf b;
    sr_buf_init(&b);
    seg_submit(e, sr_cmd_alarm(&adm, &open, &b), &b);
    clock_now = (int64_t)20 * DAY;
    sr_cmd_env kenv = {"opD", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    const sr_key_rec k = {.action = "rotate", .key_operator = "opD", .key_class = "audit"};
    sr_buf_init(&b);
    seg_submit(e, sr_cmd_key_ev(&kenv, &k, &b), &b);
    clock_now = (int64_t)400 * DAY;
    period(e, "opD", "audit", 30);
    int before = seg_files(d, NULL);
    cr_assert_gt(before, 4, "small segments (%d)", before);

    sr_retention_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.keys_destroyed, 1, "D's audit epoch 1 (held %llu)", (unsigned long long)rep.keys_held);
    cr_assert_eq(rep.restated, 2, "the alive row and the open alarm (%llu)", (unsigned long long)rep.restated);
    cr_assert_gt(rep.segments_dropped, 0, "segments dropped (held: %s)", rep.seg_held);
    uint64_t first = sr_log_first_seq(e->log);
    cr_assert_gt(first, 1);
    cr_assert_eq(seg_files_below(d, first), 0, "no segment below the log's start");
    cr_assert_lt(seg_files(d, NULL), before);
    cr_assert_eq(scan_tree(d, "OLD-D-"), 0, "an old plaintext in the data directory");
    /* the live state stays */
    sr_rec rr = SR_REC_INIT;
    sr_alive_rec av;
    cr_assert_eq(sr_list_alive(e, "opD", &rr), SR_OK);
    cr_assert_eq(sr_rec_next_alive(&rr, &av), 1, "the alive row");
    cr_assert_str_eq(av.remote, "LIVE-D-REMOTE", "its last transition");
    sr_rec_close(&rr);
    cr_assert_eq(sr_list_open_alarms(e, &rr), SR_OK);
    sr_alarm al;
    cr_assert_eq(sr_rec_next_alarm(&rr, &al), 1, "the open alarm");
    cr_assert_str_eq(al.message, "LIVE-D-ALARM");
    sr_rec_close(&rr);
    uint8_t live[32], h[32];
    cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_engine_opts o = opts();
    sr_engine_open_stats st;
    cr_assert_eq(sr_engine_rebuild_stats(d, &o, &st, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(st.trimmed_below, first);
    e = open_ok(d);
    cr_assert_eq(sr_engine_content_hash(e, h), SR_OK);
    cr_assert(!memcmp(h, live, 32), "the rebuild equals the live index");
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_log_report lr;
    verify_log(d, &lr, SR_OK, "audit data");
    cr_assert(lr.trim_checked);
}

#endif

#if SR_SEGDROP_KILL9
/* ---- kill -9 during dropping sweeps -----------------------------------------
 * A child process (sync=always) loops: four values of opA, a rotation of
 * opA's data key, the clock 20 days on, a sweep (30-day periods, the audit's
 * too, drop_segments) that destroys the key of the epoch before the last
 * and drops the segments nothing needs, carrying opA's and opB's masters; a
 * line after each sweep. The test kills it (SIGKILL) after a varying number
 * of sweeps, reopens (the open finishes a LogTrim whose files were not
 * unlinked) and checks that nothing is half done: both operators' masters
 * are there, the newest acknowledged values are there, the log verifies
 * from its start against its LogTrim, the log starts no earlier than the
 * last acknowledged sweep left it, and the index equals a rebuild. Six
 * rounds on one data directory. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { K_ROUNDS = 6 };

static void drop_child(const char *d, int round, int fd)
{
    clock_now = (int64_t)(400 + round * 2000) * DAY;
    sr_engine_opts o = opts();
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(d, &o, &e, &ei)) _exit(2);
    if (round == 0) {
        if (et_setup_masters(e, "opA", 1, STR, 1) || et_setup_masters(e, "opB", 1, STR, 1)) _exit(3);
        period(e, "opA", "default", 30);
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
        rotate(e, "opA");
        clock_now += (int64_t)20 * DAY;
        sr_retention_report rep;
        if (sr_engine_retention_sweep(e, &CFG, NULL, &rep, &ei)) _exit(9);
        char line[128];
        int l = snprintf(line, sizeof line, "swept %d %d %lld %llu %llu\n", round, n,
                         (long long)(clock_now - 20 * (int64_t)DAY), (unsigned long long)sr_log_first_seq(e->log),
                         (unsigned long long)rep.segments_dropped);
        if (write(fd, line, (size_t)l) != l) _exit(10);
    }
}

Test(segdrop, a_kill_9_during_dropping_sweeps_leaves_nothing_half_dropped, .timeout = 600)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/kill9", top);
    sr_key_from_bytes(&MASTER, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    tu_rng rng = {2029};
    uint64_t total_dropped = 0;
    for (int round = 0; round < K_ROUNDS; round++) {
        int want = 2 + (int)tu_below(&rng, 4);
        char last[160];
        es_kill9_after(drop_child, d, round, want, &rng, last, sizeof last);
        int r_, n_;
        long long put_ms;
        unsigned long long first_acked, dropped;
        cr_assert_eq(sscanf(last, "swept %d %d %lld %llu %llu", &r_, &n_, &put_ms, &first_acked, &dropped), 5, "%s",
                     last);
        total_dropped += dropped;
        clock_now = (int64_t)(400 + round * 2000 + 1900) * DAY;
        sr_engine *e = open_ok(d);
        has_masters(e, "after the kill");
        uint64_t first = sr_log_first_seq(e->log);
        cr_assert_geq(first, first_acked, "round %d: the log starts at %llu, before what a sweep dropped (%llu)", round,
                      (unsigned long long)first, first_acked);
        uint32_t pt;
        sr_vtype t;
        cr_assert_eq(sr_engine_point(e, "opA", "P000", &pt, &t), SR_OK);
        sr_buf sb, strs;
        sr_buf_init(&sb);
        sr_buf_init(&strs);
        sr_range_q q2 = {pt, put_ms, INT64_MAX, 0, 0, INT64_MIN};
        int more;
        cr_assert_eq(sr_engine_range(e, &q2, &sb, &strs, &more), SR_OK);
        size_t got = sb.len / sizeof(sr_sample);
        cr_assert(got >= 4 && got % 4 == 0, "round %d: %zu values from the last acknowledged ones (at %lld) on", round,
                  got, put_ms);
        sr_buf_release(&strs);
        sr_buf_release(&sb);
        uint8_t live[32], rebuilt[32];
        cr_assert_eq(sr_engine_content_hash(e, live), SR_OK);
        cr_assert_eq(sr_engine_close(e), SR_OK);
        sr_log_report lr;
        verify_log(d, &lr, SR_OK, "after the kill");
        cr_assert(first == 1 || lr.trim_checked, "round %d: the trimmed start is not proven", round);
        char ix[1300];
        snprintf(ix, sizeof ix, "%s/rebuilt-%d", top, round);
        sr_engine_opts ro = opts();
        ro.index_dir = ix;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_rebuild(d, &ro, &ei), SR_OK, "%s", ei.msg);
        cr_assert_eq(sr_engine_open(d, &ro, &e, &ei), SR_OK, "%s", ei.msg);
        has_masters(e, "the rebuild after the kill");
        cr_assert_eq(sr_engine_content_hash(e, rebuilt), SR_OK);
        cr_assert_eq(sr_engine_close(e), SR_OK);
        cr_assert_eq(memcmp(live, rebuilt, 32), 0, "round %d: the index differs from a rebuild", round);
        tu_rmrf(ix);
    }
    cr_assert_gt(total_dropped, 0, "the sweeps dropped segments");
}
#endif
