/* tests/storage/test_log_golden.c -- the golden corpus in tests/data/log/.
 *
 * Valid logs: the v3-* ones the writer must reproduce byte for byte, the
 * v1-* and v2-* ones (written by the builds of format versions 1 and 2) it
 * must read, verify and append to without changing them (a version 3
 * segment follows); broken
 * ones that readers must answer with their documented result
 * (docs/format.md, "Golden corpus"). Also: flipping any single byte of a
 * stored log makes `verify` fail and name the block holding that byte; and
 * the `suiro log` tools' exit codes on each case.
 *
 * Version 3 (per-key sections): v3-keyed and v3-erased are sealed under
 * the test keyring's keys 11 and 12 (key-11.hex, key-12.hex), v3-erased is
 * read with key 12 destroyed; v3-tampered-section and v3-moved-section are
 * derived from v3-keyed.
 *
 * SR_GOLDEN_WRITE=1 regenerates the corpus (only for a new format version:
 * existing golden files are never edited; the writer makes only the current
 * version's cases, the broken cases are derived from v1-plain and
 * v3-keyed). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "codecs/base/sr_alloc.h"
#include "logtest.h"
#include "storage/crc32c.h"
#include "storage/log.h"
#include "testutil.h"

#define DATA SR_TEST_DATA "/log"
#define SEG1 "00000000000000000001.seg"

static char *tmp;
/* the test keyring of the keyed cases (keys 11 and 12: KR_WHICH) */
static lt_keyring kring;
static const int KR_WHICH[] = {11, 12};
static void setup(void)
{
    tmp = tu_tmpdir("golden");
    lt_keyring_init(&kring, KR_WHICH, 2);
}
static void teardown(void)
{
    lt_keyring_free(&kring);
    tu_rmrf(tmp);
    free(tmp);
}
TestSuite(storage_log_golden, .init = setup, .fini = teardown, .timeout = 300);

/* ---- generating the valid cases ------------------------------------------ */

/* A compressible record body for the keyed cases: tag repeated to len. */
static size_t body_of(const char *tag, char *out, size_t len)
{
    size_t tl = strlen(tag);
    for (size_t i = 0; i < len; i++) out[i] = tag[i % tl];
    return len;
}

/* The keyed cases' batches: each record's key (0 plain, 1 = key 11, 2 =
 * key 12) and its tag. v3-keyed's last batch repeats its first batch's
 * key-11 run, byte for byte (the v3-moved-section case moves one onto the
 * other). */
typedef struct grec {
    int key;
    const char *tag;
} grec;
static const grec keyed_batches[][4] = {
    {{1, "alpha-0 "}, {1, "alpha-1 "}, {2, "beta-0 "}},
    {{0, "plain-0 "}},
    {{2, "beta-1 "}, {2, "beta-2 "}, {1, "alpha-2 "}, {1, "alpha-3 "}},
    {{1, "alpha-0 "}, {1, "alpha-1 "}},
};
static const grec erased_batches[][4] = {
    {{1, "alpha-0 "}, {1, "alpha-1 "}, {2, "beta-0 "}},
    {{2, "beta-1 "}, {2, "beta-2 "}, {2, "beta-3 "}},
    {{0, "plain-0 "}, {1, "alpha-2 "}},
    {{2, "beta-4 "}},
    {{1, "alpha-3 "}, {1, "alpha-4 "}},
};


static void gen_keyed(sr_log *lg, const lt_keyring *kr, const grec (*b)[4], size_t nb)
{
    for (size_t k = 0; k < nb; k++) {
        sr_slice recs[4];
        uint32_t ids[4];
        char bodies[4][120];
        size_t n = 0;
        for (; n < 4 && b[k][n].tag; n++) {
            size_t len = body_of(b[k][n].tag, bodies[n], 90 + 7 * n);
            recs[n] = (sr_slice){bodies[n], len};
            ids[n] = b[k][n].key ? lt_keyring_id(kr, b[k][n].key - 1) : 0;
        }
        cr_assert_eq(sr_log_append_keyed(lg, recs, ids, n, NULL), SR_OK);
    }
}

static void gen(const char *outdir, const char *name)
{
    char d[1024];
    snprintf(d, sizeof d, "%s/%s", outdir, name);
    tu_rmrf(d);
    uint64_t ctr = 0;
    sr_key key;
    lt_key(&key, 9);
    lt_keyring kr;
    lt_keyring_init(&kr, KR_WHICH, 2);
    sr_log_opts o = {.nonce_fn = lt_nonce, .nonce_ctx = &ctr};
    if (strstr(name, "-zstd-aes")) {
        o.zstd_level = 3;
        o.key = &key;
    } else if (strstr(name, "-two-segments")) {
        o.segment_bytes = 4096;
        o.zstd_level = 1;
    } else if (strstr(name, "-keyed") || strstr(name, "-erased")) {
        o.zstd_level = 3;
        o.keys = &kr.keys;
    }
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s", ei.msg);
    static const size_t batches[] = {3, 1, 4};
    int nbatch = strstr(name, "-two-segments") ? 12 : 3;
    if (strstr(name, "-keyed")) gen_keyed(lg, &kr, keyed_batches, 4), nbatch = 0;
    if (strstr(name, "-erased")) gen_keyed(lg, &kr, erased_batches, 5), nbatch = 0;
    for (int b = 0; b < nbatch; b++) {
        size_t n = batches[b % 3];
        sr_slice recs[4];
        char bodies[4][800];
        for (size_t i = 0; i < n; i++) {
            size_t len = strstr(name, "-two-segments") ? 700 : 40 + 13 * i;
            tu_fill_record((uint64_t)b * 10 + i, (uint8_t *)bodies[i], len);
            recs[i] = (sr_slice){bodies[i], len};
        }
        cr_assert_eq(sr_log_append(lg, recs, n, NULL), SR_OK);
    }
    cr_assert_eq(sr_log_close(lg), SR_OK);
    lt_keyring_free(&kr);
    char lock[1100];
    snprintf(lock, sizeof lock, "%s/LOCK", d);
    remove(lock);
}

/* the cases this build writes (format version SR_LOG_VERSION) */
static const char *valid_cases[] = {"v3-plain", "v3-keyed", "v3-two-segments", "v3-erased"};
enum { NVALID = 4 };
/* the same shapes written by the builds of versions 1 and 2 (they differ
 * only in the segment headers' version and CRC); read, never written */
static const char *v1_cases[] = {"v1-plain", "v1-zstd-aes", "v1-two-segments"};
static const char *v2_cases[] = {"v2-plain", "v2-zstd-aes", "v2-two-segments"};

/* offsets of the blocks of a one-segment file */
static size_t block_offsets(const uint8_t *p, size_t n, size_t *offs, size_t max)
{
    size_t k = 0, off = SR_SEG_HDR_LEN;
    while (off + SR_BLK_HDR_LEN <= n && k < max) {
        offs[k++] = off;
        off += SR_BLK_HDR_LEN + sr_get_le32(p + off + 24);
    }
    return k;
}

static void reseal_block_header(uint8_t *h) { sr_put_le32(h + 92, sr_crc32c(0, h, 92)); }

static void write_case(const char *name, const uint8_t *p, size_t n)
{
    char d[1024], f[1100];
    snprintf(d, sizeof d, "%s/%s", DATA, name);
    tu_rmrf(d);
    mkdir(d, 0755);
    snprintf(f, sizeof f, "%s/%s", d, SEG1);
    cr_assert_eq(tu_write_file(f, p, n), 0);
}

static void gen_broken(void)
{
    size_t n, offs[16];
    uint8_t *plain = tu_read_file(DATA "/v1-plain/" SEG1, &n);
    cr_assert(plain);
    size_t nb = block_offsets(plain, n, offs, 16);
    cr_assert_eq(nb, 3);
    uint8_t *c = malloc(n);

    write_case("torn-tail", plain, n - 5);
    write_case("truncated-header", plain, offs[2] + 40);
    write_case("truncated-segment-header", plain, 30);

    memcpy(c, plain, n);
    c[offs[1] + SR_BLK_HDR_LEN + 7] ^= 0x01;
    write_case("bad-crc-middle", c, n);

    /* "unknown-version" (version 2, made when only version 1 existed) is now
     * a valid version 2 segment and stays as it is */
    memcpy(c, plain, n);
    sr_put_le16(c + 8, 3);
    sr_put_le32(c + 60, sr_crc32c(0, c, 60));
    write_case("unknown-version-3", c, n);

    memcpy(c, plain, n);
    sr_put_le16(c + 8, 4);
    sr_put_le32(c + 60, sr_crc32c(0, c, 60));
    write_case("unknown-version-4", c, n);

    memcpy(c, plain, n);
    c[offs[1] + 56] ^= 0x80; /* prev_hash of block 2 */
    reseal_block_header(c + offs[1]);
    write_case("chain-altered", c, n);
    free(c);
    free(plain);

    uint8_t *enc = tu_read_file(DATA "/v1-zstd-aes/" SEG1, &n);
    cr_assert(enc);
    nb = block_offsets(enc, n, offs, 16);
    cr_assert_eq(nb, 3);
    /* a ciphertext byte of the last block changed and its CRC fixed up:
     * tampering, which must not pass for a torn tail */
    uint8_t *h = enc + offs[2];
    enc[offs[2] + SR_BLK_HDR_LEN + 3] ^= 0x40;
    sr_put_le32(h + 88, sr_crc32c(0, h + SR_BLK_HDR_LEN, sr_get_le32(h + 24)));
    reseal_block_header(h);
    write_case("tampered-last-block", enc, n);
    free(enc);

    /* version 3: a ciphertext byte of the last block's first (sealed)
     * section changed, both CRCs fixed; and that section replaced by the
     * first block's first section (the same records under the same key,
     * the same length: only its place differs), both CRCs fixed */
    uint8_t *k3 = tu_read_file(DATA "/v3-keyed/" SEG1, &n);
    cr_assert(k3);
    nb = block_offsets(k3, n, offs, 16);
    cr_assert_eq(nb, 4);
    uint8_t *c3 = malloc(n);
    memcpy(c3, k3, n);
    h = c3 + offs[3];
    uint8_t *sec = h + SR_BLK_HDR_LEN;
    cr_assert_eq(sec[4], SR_ALG_AES_256_GCM);
    sec[SR_SEC_HDR_LEN + 5] ^= 0x08;
    sr_put_le32(h + 88, sr_crc32c(0, h + SR_BLK_HDR_LEN, sr_get_le32(h + 24)));
    reseal_block_header(h);
    write_case("v3-tampered-section", c3, n);
    memcpy(c3, k3, n);
    h = c3 + offs[3];
    sec = h + SR_BLK_HDR_LEN;
    const uint8_t *from = k3 + offs[0] + SR_BLK_HDR_LEN;
    size_t slen = SR_SEC_HDR_LEN + sr_get_le32(from + 16);
    cr_assert_eq(sr_get_le32(sec + 16), sr_get_le32(from + 16), "the two runs seal to the same length");
    cr_assert_eq(sr_get_le32(sec), sr_get_le32(from), "under the same key");
    memcpy(sec, from, slen);
    sr_put_le32(h + 88, sr_crc32c(0, h + SR_BLK_HDR_LEN, sr_get_le32(h + 24)));
    reseal_block_header(h);
    write_case("v3-moved-section", c3, n);
    free(c3);
    free(k3);

    sr_key key;
    lt_key(&key, 9);
    char hex[65];
    sr_hex(key.bytes, 32, hex);
    hex[64] = 0;
    char line[80];
    snprintf(line, sizeof line, "%s\n", hex);
    cr_assert_eq(tu_write_file(DATA "/key-9.hex", line, strlen(line)), 0);
    static const int more[] = {10, 11, 12};
    for (int i = 0; i < 3; i++) {
        char f[200];
        lt_key(&key, more[i]);
        sr_hex(key.bytes, 32, hex);
        snprintf(line, sizeof line, "%s\n", hex);
        snprintf(f, sizeof f, "%s/key-%d.hex", DATA, more[i]);
        cr_assert_eq(tu_write_file(f, line, strlen(line)), 0);
    }
}

Test(storage_log_golden, regenerate_when_asked)
{
    if (!getenv("SR_GOLDEN_WRITE")) return;
    for (size_t i = 0; i < NVALID; i++) gen(DATA, valid_cases[i]);
    gen_broken();
}

/* ---- the writer reproduces the valid cases byte for byte ------------------ */

static int cmp_dirs(const char *a, const char *b, char *why, size_t wl)
{
    DIR *d = opendir(a);
    if (!d) {
        snprintf(why, wl, "no golden dir %s", a);
        return -1;
    }
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char pa[1200], pb[1200];
        snprintf(pa, sizeof pa, "%s/%s", a, de->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, de->d_name);
        size_t na, nb;
        uint8_t *xa = tu_read_file(pa, &na), *xb = tu_read_file(pb, &nb);
        int same = xa && xb && na == nb && !memcmp(xa, xb, na);
        free(xa);
        free(xb);
        if (!same) {
            snprintf(why, wl, "%s differs from the golden file", pb);
            closedir(d);
            return -1;
        }
        files++;
    }
    closedir(d);
    if (!files) {
        snprintf(why, wl, "golden dir %s is empty", a);
        return -1;
    }
    return 0;
}

Test(storage_log_golden, writer_reproduces_valid_cases_byte_for_byte)
{
    for (size_t i = 0; i < NVALID; i++) {
        gen(tmp, valid_cases[i]);
        char a[1024], b[1024], why[1400];
        snprintf(a, sizeof a, "%s/%s", DATA, valid_cases[i]);
        snprintf(b, sizeof b, "%s/%s", tmp, valid_cases[i]);
        cr_assert_eq(cmp_dirs(a, b, why, sizeof why), 0, "%s", why);
    }
}

/* ---- readers give the documented result for each case -------------------- */

static void copy_case(const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", tmp, name);
    tu_rmrf(out);
    mkdir(out, 0755);
    char src[1024];
    snprintf(src, sizeof src, "%s/%s", DATA, name);
    DIR *d = opendir(src);
    cr_assert(d, "missing golden case %s", src);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", src, de->d_name);
        snprintf(b, sizeof b, "%s/%s", out, de->d_name);
        cr_assert_eq(tu_copy_file(a, b), 0);
    }
    closedir(d);
}

/* The test keyring of the keyed cases (keys 11 and 12), shared by the
 * tests below; KR as a case's key number means "open with it". */
enum { KR = -1 };
static sr_log_opts case_opts(int keyno, sr_key *key)
{
    if (keyno == KR) return (sr_log_opts){.keys = &kring.keys};
    lt_key(key, keyno);
    return (sr_log_opts){.key = keyno ? key : NULL};
}

static int open_case(const char *name, int keyno, sr_log **lg, sr_errinfo *ei, char *d, size_t dl)
{
    copy_case(name, d, dl);
    sr_key key;
    sr_log_opts o = case_opts(keyno, &key);
    return sr_log_open(d, &o, lg, ei);
}

static uint64_t count_records(sr_log *lg)
{
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t n = 0, s;
    sr_slice r;
    int rc;
    while ((rc = sr_log_iter_next(it, &s, &r)) == SR_OK) n++;
    cr_assert_eq(rc, SR_DONE);
    sr_log_iter_close(it);
    return n;
}

Test(storage_log_golden, valid_cases_open_read_and_verify)
{
    static const struct {
        const char *name;
        int key;
        uint64_t recs;
    } cases[] = {
        {"v3-plain", 0, 8},  {"v3-keyed", KR, 10}, {"v3-two-segments", 0, 32}, {"v3-erased", KR, 11},
        {"v2-plain", 0, 8},  {"v2-zstd-aes", 9, 8}, {"v2-two-segments", 0, 32},
        {"v1-plain", 0, 8},  {"v1-zstd-aes", 9, 8}, {"v1-two-segments", 0, 32},
        {"unknown-version", 0, 8}, /* v1-plain with a version 2 header */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name = cases[i].name;
        char d[1024];
        sr_log *lg = NULL;
        sr_errinfo ei;
        cr_assert_eq(open_case(name, cases[i].key, &lg, &ei, d, sizeof d), SR_OK, "%s: %s", name, ei.msg);
        cr_assert_eq(count_records(lg), cases[i].recs, "%s", name);
        sr_log_close(lg);
        sr_key key;
        sr_log_opts o = case_opts(cases[i].key, &key);
        sr_log_report rep;
        cr_assert_eq(sr_log_verify(d, &o, &rep, &ei), SR_OK, "%s: %s", name, ei.msg);
        cr_assert_eq(rep.records, cases[i].recs, "%s", name);
        cr_assert_eq(rep.unopened_records, 0, "%s", name);
    }
}

/* ---- version 3: keys, erasure, tampering ---------------------------------- */

Test(storage_log_golden, a_v1_or_v2_block_opens_with_its_key_kept_in_a_keyring)
{
    /* the master key of a directory written before issue #16, kept in the
     * keyring after the master key rotated: no configured key matches, the
     * resolver opens the blocks by their key id */
    static const int nine[] = {9};
    lt_keyring old;
    lt_keyring_init(&old, nine, 1);
    sr_key other;
    lt_key(&other, 10);
    static const char *cases[] = {"v1-zstd-aes", "v2-zstd-aes"};
    for (int i = 0; i < 2; i++) {
        char d[1024];
        copy_case(cases[i], d, sizeof d);
        for (int own = 0; own < 2; own++) {
            sr_log_opts o = {.keys = &old.keys, .key = own ? &other : NULL, .readonly = 1};
            sr_log *lg = NULL;
            sr_errinfo ei;
            cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s: %s", cases[i], ei.msg);
            cr_assert_eq(count_records(lg), 8, "%s", cases[i]);
            sr_log_close(lg);
            sr_log_report rep;
            cr_assert_eq(sr_log_verify(d, &o, &rep, &ei), SR_OK, "%s: %s", cases[i], ei.msg);
        }
        /* destroyed: the blocks cannot be read, and the iterator says so per record */
        lt_keyring_set(&old, 0, LT_DESTROYED);
        sr_log_opts o = {.keys = &old.keys, .readonly = 1};
        sr_log *lg = NULL;
        sr_errinfo ei;
        cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_EERASED, "%s: %s: %s", cases[i], sr_err_name(SR_EERASED), ei.msg);
        lt_keyring_set(&old, 0, LT_LIVE);
        /* unknown to the keyring: SR_EKEY naming it */
        lt_keyring_set(&old, 0, LT_UNKNOWN);
        cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_EKEY, "%s", cases[i]);
        cr_assert(strstr(ei.msg, "not in the keyring"), "%s", ei.msg);
        lt_keyring_set(&old, 0, LT_LIVE);
    }
    lt_keyring_free(&old);
}

Test(storage_log_golden, v3_keyed_runs_are_sections_each_record_with_its_key_id)
{
    char d[1024];
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(open_case("v3-keyed", KR, &lg, &ei, d, sizeof d), SR_OK, "%s", ei.msg);
    /* format.md "Golden corpus": keys 11 11 12 | plain | 12 12 11 11 | 11 11 */
    static const int want[] = {11, 11, 12, 0, 12, 12, 11, 11, 11, 11};
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq;
    sr_slice rec;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(sr_log_iter_next(it, &seq, &rec), SR_OK);
        uint32_t id = want[i] ? lt_keyring_id(&kring, want[i] - 11) : 0;
        cr_assert_eq(sr_log_iter_key_id(it), id, "seq %" PRIu64, seq);
        cr_assert(rec.len >= 90 && !memcmp(rec.data, want[i] == 11 ? "alpha-" : want[i] == 12 ? "beta-" : "plain-",
                                           want[i] == 12 ? 5 : 6), "seq %" PRIu64, seq);
    }
    cr_assert_eq(sr_log_iter_next(it, &seq, &rec), SR_DONE);
    sr_log_iter_close(it);
    sr_log_close(lg);
    /* without any key: the chain and the structure verify, nothing is opened */
    sr_log_report rep;
    cr_assert_eq(sr_log_verify(d, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert(rep.ok);
    cr_assert_eq(rep.unopened_records, 9);
    cr_assert_eq(rep.unopened_sections, 5);
    /* the same tip as with the keys */
    sr_log_report rep2;
    sr_log_opts o = {.keys = &kring.keys};
    cr_assert_eq(sr_log_verify(d, &o, &rep2, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(memcmp(rep.tip, rep2.tip, SR_HASH_LEN), 0);
    /* one of the two keys only: SR_EKEY naming the other */
    sr_key k11;
    lt_key(&k11, 11);
    sr_log_opts one = {.key = &k11};
    char idhex[16];
    snprintf(idhex, sizeof idhex, "%08x", lt_keyring_id(&kring, 1));
    cr_assert_eq(sr_log_verify(d, &one, &rep, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, idhex), "%s", ei.msg);
    one.readonly = 1;
    cr_assert_eq(sr_log_open(d, &one, &lg, &ei), SR_EKEY);
    cr_assert(strstr(ei.msg, idhex) && strstr(ei.msg, "records 3..3"), "%s", ei.msg);
}

Test(storage_log_golden, v3_erased_gives_its_documented_counts)
{
    char d[1024];
    sr_log *lg = NULL;
    sr_errinfo ei;
    lt_keyring_set(&kring, 1, LT_DESTROYED); /* key 12 */
    cr_assert_eq(open_case("v3-erased", KR, &lg, &ei, d, sizeof d), SR_OK, "%s", ei.msg);
    uint32_t id12 = lt_keyring_id(&kring, 1);
    sr_log_iter *it;
    cr_assert_eq(sr_log_iter_open(lg, 1, &it), SR_OK);
    uint64_t seq, n = 0, er = 0, erseq[8];
    sr_slice rec;
    int rc;
    while ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) {
        cr_assert_eq(seq, n + 1);
        n++;
        if (rc == SR_EERASED) {
            cr_assert_eq(sr_log_iter_key_id(it), id12);
            cr_assert_eq(rec.len, 0);
            erseq[er++] = seq;
        }
    }
    cr_assert_eq(rc, SR_DONE);
    sr_log_iter_close(it);
    sr_log_close(lg);
    cr_assert_eq(n, 11);
    cr_assert_eq(er, 5);
    static const uint64_t want[] = {3, 4, 5, 6, 9};
    for (int i = 0; i < 5; i++) cr_assert_eq(erseq[i], want[i]);
    sr_log_report rep;
    sr_log_opts o = {.keys = &kring.keys};
    cr_assert_eq(sr_log_verify(d, &o, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert(rep.ok);
    cr_assert_eq(rep.records, 11);
    cr_assert_eq(rep.erased_records, 5);
    cr_assert_eq(rep.erased_sections, 3);
    cr_assert_eq(rep.nerased, 1);
    cr_assert_eq(rep.erased[0].key_id, id12);
    cr_assert_eq(rep.erased[0].records, 5);
    cr_assert_eq(rep.erased[0].sections, 3);
    cr_assert_eq(rep.erased[0].first_seq, 3);
    cr_assert_eq(rep.erased[0].last_seq, 9);
    lt_keyring_set(&kring, 1, LT_LIVE);
}

Test(storage_log_golden, v3_tampered_or_moved_section_fails_authentication)
{
    static const char *cases[] = {"v3-tampered-section", "v3-moved-section"};
    for (int i = 0; i < 2; i++) {
        char d[1024];
        sr_log *lg = NULL;
        sr_errinfo ei;
        /* the CRCs hold: recovery neither cuts it nor opens it */
        cr_assert_eq(open_case(cases[i], KR, &lg, &ei, d, sizeof d), SR_OK, "%s: %s", cases[i], ei.msg);
        sr_log_iter *it;
        cr_assert_eq(sr_log_iter_open(lg, 9, &it), SR_OK);
        uint64_t seq;
        sr_slice rec;
        int rc = sr_log_iter_next(it, &seq, &rec);
        cr_assert_eq(rc, SR_ECORRUPT, "%s: %s", cases[i], sr_err_name(rc));
        cr_assert(strstr(sr_log_iter_errinfo(it)->msg, "authentication failed"), "%s", sr_log_iter_errinfo(it)->msg);
        sr_log_iter_close(it);
        sr_log_close(lg);
        sr_log_report rep;
        sr_log_opts o = {.keys = &kring.keys};
        cr_assert_eq(sr_log_verify(d, &o, &rep, &ei), SR_ECORRUPT, "%s", cases[i]);
        cr_assert(strstr(ei.msg, "authentication failed") && strstr(ei.msg, "records 9..10"), "%s: %s", cases[i],
                  ei.msg);
        cr_assert_eq(rep.block_seq, 9);
        cr_assert_not(rep.ok);
        /* nothing was cut */
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s/%s", DATA, cases[i], SEG1);
        snprintf(b, sizeof b, "%s/%s", d, SEG1);
        size_t na, nb;
        uint8_t *xa = tu_read_file(a, &na), *xb = tu_read_file(b, &nb);
        cr_assert(xa && xb && na == nb && !memcmp(xa, xb, na));
        free(xa);
        free(xb);
    }
}

Test(storage_log_golden, torn_tail_is_cut_and_kept_aside_not_rejected)
{
    static const char *cases[] = {"torn-tail", "truncated-header"};
    for (int i = 0; i < 2; i++) {
        char d[1024];
        sr_log *lg = NULL;
        sr_errinfo ei;
        cr_assert_eq(open_case(cases[i], 0, &lg, &ei, d, sizeof d), SR_OK, "%s: %s", cases[i], ei.msg);
        cr_assert_eq(sr_log_next_seq(lg), 5, "%s: the two whole blocks (4 records) survive", cases[i]);
        sr_log_tail t;
        sr_log_tail_info(lg, &t);
        cr_assert(t.torn);
        cr_assert_eq(count_records(lg), 4);
        sr_log_close(lg);
        char torn[1300];
        snprintf(torn, sizeof torn, "%s/%s.torn-%" PRIu64, d, SEG1, t.offset);
        struct stat st;
        cr_assert_eq(stat(torn, &st), 0, "cut bytes are kept in %s", torn);
        cr_assert_eq((uint64_t)st.st_size, t.bytes);
        /* the cases are version 1: the rest stays in that segment, and the
         * writable open started a version 2 one after it */
        char next[1100];
        snprintf(next, sizeof next, "%s/00000000000000000005.seg", d);
        size_t n;
        uint8_t *p = tu_read_file(next, &n);
        cr_assert(p && n == SR_SEG_HDR_LEN && sr_get_le16(p + 8) == SR_LOG_VERSION, "%s: %s", cases[i], next);
        free(p);
    }
}

Test(storage_log_golden, torn_tail_of_a_v3_segment_is_cut_and_no_segment_is_added)
{
    char src[1100], d[1024], f[1100];
    snprintf(src, sizeof src, "%s/v3-plain/%s", DATA, SEG1);
    size_t n;
    uint8_t *p = tu_read_file(src, &n);
    cr_assert(p);
    snprintf(d, sizeof d, "%s/torn-v3", tmp);
    mkdir(d, 0755);
    snprintf(f, sizeof f, "%s/%s", d, SEG1);
    cr_assert_eq(tu_write_file(f, p, n - 5), 0);
    free(p);
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(d, NULL, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_tail t;
    sr_log_tail_info(lg, &t);
    cr_assert(t.torn);
    cr_assert_eq(sr_log_next_seq(lg), 5);
    uint8_t r[8] = "abcdefg";
    cr_assert_eq(sr_log_append(lg, &(sr_slice){r, sizeof r}, 1, NULL), SR_OK);
    sr_log_close(lg);
    snprintf(f, sizeof f, "%s/00000000000000000005.seg", d);
    struct stat st;
    cr_assert_neq(stat(f, &st), 0, "the tail is of this version: appended to, not rolled");
    sr_log_report rep;
    cr_assert_eq(sr_log_verify(d, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.records, 5);
    cr_assert_eq(rep.segments, 1);
}

/* ---- a directory the version 1 build wrote ------------------------------- */

static unsigned seg_version(const char *dir, const char *seg)
{
    char f[1200];
    snprintf(f, sizeof f, "%s/%s", dir, seg);
    size_t n;
    uint8_t *p = tu_read_file(f, &n);
    cr_assert(p && n >= SR_SEG_HDR_LEN, "%s", f);
    unsigned v = sr_get_le16(p + 8);
    free(p);
    return v;
}

static size_t count_segs(const char *dir)
{
    DIR *dd = opendir(dir);
    cr_assert(dd);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(dd))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".seg")) n++;
    }
    closedir(dd);
    return n;
}

Test(storage_log_golden, a_writable_open_of_a_v1_or_v2_log_starts_a_v3_segment_and_never_changes_the_old_ones)
{
    static const int keys[] = {0, 9, 0};
    static const uint64_t recs[] = {8, 8, 32};
    static const size_t segs[] = {1, 1, 4};
    for (size_t j = 0; j < 6; j++) {
        size_t i = j % 3;
        unsigned oldv = j < 3 ? 1 : 2;
        const char *name = j < 3 ? v1_cases[i] : v2_cases[i];
        char d[1024], golden[1024], why[1400];
        copy_case(name, d, sizeof d);
        snprintf(golden, sizeof golden, "%s/%s", DATA, name);
        cr_assert_eq(count_segs(d), segs[i], "%s", name);
        sr_key key;
        lt_key(&key, keys[i]);
        sr_log_opts o = {.key = keys[i] ? &key : NULL};
        sr_log *lg = NULL;
        sr_errinfo ei;
        /* read-only: nothing is written */
        o.readonly = 1;
        cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s: %s", name, ei.msg);
        sr_log_close(lg);
        cr_assert_eq(count_segs(d), segs[i], "%s: a read-only open adds no segment", name);
        /* writable: a version 2 segment starts where the version 1 ones end */
        o.readonly = 0;
        cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s: %s", name, ei.msg);
        cr_assert_eq(count_segs(d), segs[i] + 1, "%s", name);
        char seg[64];
        snprintf(seg, sizeof seg, "%020" PRIu64 ".seg", recs[i] + 1);
        cr_assert_eq(seg_version(d, seg), SR_LOG_VERSION, "%s: %s", name, seg);
        char bodies[3][50];
        sr_slice r[3];
        for (int k = 0; k < 3; k++) {
            tu_fill_record(900 + (uint64_t)k, (uint8_t *)bodies[k], sizeof bodies[k]);
            r[k] = (sr_slice){bodies[k], sizeof bodies[k]};
        }
        uint64_t first = 0;
        cr_assert_eq(sr_log_append(lg, r, 3, &first), SR_OK);
        cr_assert_eq(first, recs[i] + 1);
        cr_assert_eq(sr_log_close(lg), SR_OK);
        /* the version 1 segments are the golden ones, byte for byte */
        cr_assert_eq(cmp_dirs(golden, d, why, sizeof why), 0, "%s: %s", name, why);
        cr_assert_eq(seg_version(d, SEG1), oldv, "%s", name);
        /* verify follows the chain from the version 1 blocks into the version 2 ones */
        sr_log_report rep;
        cr_assert_eq(sr_log_verify(d, &o, &rep, &ei), SR_OK, "%s: %s", name, ei.msg);
        cr_assert_eq(rep.records, recs[i] + 3, "%s", name);
        cr_assert_eq(rep.segments, segs[i] + 1, "%s", name);
        /* reopened, the tail is of this version: no further segment; every record reads back */
        cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s: %s", name, ei.msg);
        cr_assert_eq(count_segs(d), segs[i] + 1, "%s", name);
        cr_assert_eq(count_records(lg), recs[i] + 3, "%s", name);
        sr_log_iter *it;
        cr_assert_eq(sr_log_iter_open(lg, recs[i] + 1, &it), SR_OK);
        for (int k = 0; k < 3; k++) {
            uint64_t sq;
            sr_slice rec;
            cr_assert_eq(sr_log_iter_next(it, &sq, &rec), SR_OK);
            cr_assert(sq == recs[i] + 1 + (uint64_t)k && rec.len == sizeof bodies[k] &&
                      !memcmp(rec.data, bodies[k], rec.len), "%s: record %" PRIu64, name, sq);
        }
        sr_log_iter_close(it);
        sr_log_close(lg);
    }
}

Test(storage_log_golden, an_empty_v1_last_segment_is_replaced_by_an_empty_v2_one)
{
    /* v1-plain's header alone: a version 1 segment with no block (first seq 1) */
    char src[1100], d[1024], f[1100];
    snprintf(src, sizeof src, "%s/v1-plain/%s", DATA, SEG1);
    size_t n;
    uint8_t *p = tu_read_file(src, &n);
    cr_assert(p);
    snprintf(d, sizeof d, "%s/empty-v1", tmp);
    mkdir(d, 0755);
    snprintf(f, sizeof f, "%s/%s", d, SEG1);
    cr_assert_eq(tu_write_file(f, p, SR_SEG_HDR_LEN), 0);
    free(p);
    sr_log_opts o = {.readonly = 1};
    sr_log *lg = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s", ei.msg);
    sr_log_close(lg);
    cr_assert_eq(seg_version(d, SEG1), 1);
    o.readonly = 0;
    cr_assert_eq(sr_log_open(d, &o, &lg, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(count_segs(d), 1);
    cr_assert_eq(seg_version(d, SEG1), SR_LOG_VERSION);
    uint8_t r[8] = "abcdefg";
    cr_assert_eq(sr_log_append(lg, &(sr_slice){r, sizeof r}, 1, NULL), SR_OK);
    sr_log_close(lg);
    sr_log_report rep;
    cr_assert_eq(sr_log_verify(d, NULL, &rep, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(rep.records, 1);
    cr_assert_eq(rep.segments, 1);
}

Test(storage_log_golden, broken_cases_give_their_documented_errors)
{
    static const struct {
        const char *name;
        int key, rc;
        const char *msg;
    } cases[] = {
        {"bad-crc-middle", 0, SR_ECORRUPT, "payload checksum mismatch"},
        {"truncated-segment-header", 0, SR_ECORRUPT, "truncated segment header"},
        {"unknown-version-3", 0, SR_ECORRUPT, "block version 1 in a segment of format version 3"},
        {"unknown-version-4", 0, SR_EVERSION, "segment format version 4; this build reads versions 1 to 3"},
        {"v1-zstd-aes", 10, SR_EKEY, "key id"},
        {"v1-zstd-aes", 0, SR_EKEY, "no key"},
        {"tampered-last-block", 9, SR_ECORRUPT, "authentication failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char d[1024];
        sr_log *lg = NULL;
        sr_errinfo ei;
        int rc = open_case(cases[i].name, cases[i].key, &lg, &ei, d, sizeof d);
        cr_assert_eq(rc, cases[i].rc, "%s: got %s (%s)", cases[i].name, sr_err_name(rc), ei.msg);
        cr_assert(strstr(ei.msg, cases[i].msg), "%s: message '%s' lacks '%s'", cases[i].name, ei.msg,
                  cases[i].msg);
        cr_assert(strstr(ei.msg, SEG1) || cases[i].rc == SR_EKEY, "%s: names the segment: %s", cases[i].name,
                  ei.msg);
    }
    /* nothing was cut from the tampered log */
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/tampered-last-block/%s", DATA, SEG1);
    snprintf(b, sizeof b, "%s/tampered-last-block/%s", tmp, SEG1);
    size_t na, nb;
    uint8_t *xa = tu_read_file(a, &na), *xb = tu_read_file(b, &nb);
    cr_assert(xa && xb && na == nb && !memcmp(xa, xb, na));
    free(xa);
    free(xb);
}

Test(storage_log_golden, altered_hash_chain_is_found_by_verify)
{
    char d[1024];
    copy_case("chain-altered", d, sizeof d);
    sr_log_report rep;
    sr_errinfo ei;
    cr_assert_eq(sr_log_verify(d, NULL, &rep, &ei), SR_ECORRUPT);
    cr_assert(strstr(ei.msg, "hash chain"), "%s", ei.msg);
    cr_assert_eq(rep.block_seq, 4, "the second block (seq 4) is named");
}

/* ---- tampering: any byte ------------------------------------------------- */

static void flip_every_byte(const char *name, int keyno)
{
    sr_key key;
    sr_log_opts o = case_opts(keyno, &key);
    char src[1024];
    snprintf(src, sizeof src, "%s/%s/%s", DATA, name, SEG1);
    size_t n, offs[16];
    uint8_t *orig = tu_read_file(src, &n);
    cr_assert(orig);
    size_t nb = block_offsets(orig, n, offs, 16);
    char d[1024], f[1200];
    snprintf(d, sizeof d, "%s/flip", tmp);
    mkdir(d, 0755);
    snprintf(f, sizeof f, "%s/%s", d, SEG1);
    uint8_t *c = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(c, orig, n);
        c[i] ^= (uint8_t)(1u << (i % 8));
        cr_assert_eq(tu_write_file(f, c, n), 0);
        sr_log_report rep;
        sr_errinfo ei;
        int rc = sr_log_verify(d, &o, &rep, &ei);
        cr_assert_neq(rc, SR_OK, "%s: flipping byte %zu went unnoticed", name, i);
        size_t blk = SIZE_MAX;
        for (size_t k = 0; k < nb; k++)
            if (i >= offs[k]) blk = k;
        if (blk == SIZE_MAX) { /* the segment header */
            cr_assert(strstr(ei.msg, SEG1), "byte %zu: %s", i, ei.msg);
            continue;
        }
        cr_assert_eq(rep.offset, offs[blk], "%s byte %zu: named offset %" PRIu64 ", block starts at %zu (%s)", name,
                     i, rep.offset, offs[blk], ei.msg);
        cr_assert_str_eq(rep.segment, SEG1);
    }
    free(c);
    free(orig);
}

Test(storage_log_golden, one_flipped_byte_anywhere_fails_verify_and_names_the_block)
{
    flip_every_byte("v1-plain", 0);
    flip_every_byte("v1-zstd-aes", 9);
    flip_every_byte("v3-plain", 0);
    flip_every_byte("v3-keyed", KR);
}

/* ---- the tools ----------------------------------------------------------- */

static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >%s/out.txt 2>&1", SR_SUIRO_BIN, args, tmp);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *out_text(void)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/out.txt", tmp);
    size_t n;
    char *s = (char *)tu_read_file(p, &n);
    cr_assert(s);
    s[n] = 0;
    return s;
}

Test(storage_log_golden, verify_tool_exit_codes_and_verdicts)
{
    static const struct {
        const char *name, *key;
        int code;
        const char *word;
    } cases[] = {
        {"v1-plain", NULL, 0, "ok: 1 segments, 3 blocks, 8 records"},
        {"v1-zstd-aes", "key-9.hex", 0, "ok:"},
        {"v1-two-segments", NULL, 0, "records (seq 1..32)"},
        {"bad-crc-middle", NULL, 1, "corrupt:"},
        {"chain-altered", NULL, 1, "hash chain"},
        {"torn-tail", NULL, 3, "torn-tail:"},
        {"truncated-header", NULL, 3, "torn tail"},
        {"unknown-version", NULL, 0, "ok: 1 segments, 3 blocks, 8 records"},
        {"unknown-version-3", NULL, 1, "block version 1 in a segment of format version 3"},
        {"unknown-version-4", NULL, 4, "version 4"},
        {"v3-plain", NULL, 0, "ok: 1 segments, 3 blocks, 8 records"},
        {"v3-keyed", NULL, 0, "9 sealed records in 5 sections were not opened"},
        {"v3-keyed", "key-11.hex", 4, "records 3..3"},
        {"v2-plain", NULL, 0, "ok: 1 segments, 3 blocks, 8 records"},
        {"v1-zstd-aes", "key-10.hex", 4, "key id"},
        {"tampered-last-block", "key-9.hex", 1, "authentication failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048];
        if (cases[i].key)
            snprintf(args, sizeof args, "log verify %s/%s --key-file %s/%s", DATA, cases[i].name, DATA, cases[i].key);
        else
            snprintf(args, sizeof args, "log verify %s/%s", DATA, cases[i].name);
        int code = run(args);
        char *s = out_text();
        cr_assert_eq(code, cases[i].code, "%s: exit %d: %s", cases[i].name, code, s);
        cr_assert(strstr(s, cases[i].word), "%s: output lacks '%s': %s", cases[i].name, cases[i].word, s);
        free(s);
    }
    char args[2048];
    snprintf(args, sizeof args, "log verify %s/bad-crc-middle --json", DATA);
    cr_assert_eq(run(args), 1);
    char *s = out_text();
    cr_assert(strstr(s, "\"verdict\":\"corrupt\"") && strstr(s, "\"offset\":"), "%s", s);
    free(s);
    cr_assert_eq(run("log verify"), 2);
    cr_assert_eq(run("log frobnicate x"), 2);
}

Test(storage_log_golden, dump_prints_the_records_from_a_sequence_number)
{
    char args[2048];
    snprintf(args, sizeof args, "log dump %s/v1-zstd-aes --key-file %s/key-9.hex --from 4 --count 2", DATA, DATA);
    cr_assert_eq(run(args), 0);
    char *s = out_text();
    cr_assert(strstr(s, "{\"seq\":4,"), "%s", s);
    cr_assert(strstr(s, "{\"seq\":5,"), "%s", s);
    cr_assert_null(strstr(s, "{\"seq\":6,"), "%s", s);
    /* the dumped bytes are the records that were written */
    char hex[200];
    uint8_t rec[40];
    tu_fill_record(20, rec, 40); /* batch 2 (index 2), record 0 = seq 5 */
    sr_hex(rec, 40, hex);
    cr_assert(strstr(s, hex), "%s", s);
    free(s);
    /* version 3: each record's key id */
    snprintf(args, sizeof args, "log dump %s/v3-plain --count 1", DATA);
    cr_assert_eq(run(args), 0);
    s = out_text();
    cr_assert(strstr(s, "{\"seq\":1,\"key_id\":\"00000000\",\"len\":40,"), "%s", s);
    free(s);
    snprintf(args, sizeof args, "log dump %s/v1-plain --from x", DATA);
    cr_assert_eq(run(args), 2);
}
