/* tests/storage/test_keyring.c -- storage/keyring: keys created on first
 * use and durable across a reopen, rotation (old keys still open), the
 * tombstone of a destroyed key (SR_EERASED, no key bytes in the file), the
 * errors that name the key (wrong master, unknown id, damaged file), rewrap
 * under a new master (the old one kept as a legacy entry), export and
 * import, the invariants (a crafted file that breaks one is refused), every
 * fault of the VFS during a rotation (the file is never half-written) and
 * readers on many threads while a writer rotates. */
#include <criterion/criterion.h>

#include "storage/keyring.h"
#include "testutil.h"
#include "vfs_faulty.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sr_key mkey(uint8_t fill)
{
    uint8_t b[SR_KEY_LEN];
    memset(b, fill, sizeof b);
    sr_key k;
    sr_key_from_bytes(&k, b);
    return k;
}

static char *keydir(const char *tag)
{
    char *d = tu_tmpdir(tag);
    char *k = malloc(strlen(d) + 8);
    sprintf(k, "%s/keys", d);
    free(d);
    return k;
}

static sr_keyring *open_ok(const char *dir, const sr_key *m, int create)
{
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    int rc = sr_keyring_open(NULL, dir, m, "test", create, &kr, &ei);
    cr_assert_eq(rc, SR_OK, "open: %s (%s)", sr_err_name(rc), ei.msg);
    cr_assert_null(sr_keyring_check(kr));
    return kr;
}

/* seal msg under id through the resolver and open it again */
static void seal_of(sr_keyring *kr, uint32_t id, const char *msg, uint8_t *ct, uint8_t tag[SR_TAG_LEN])
{
    const sr_keys *k = sr_keyring_keys(kr);
    uint8_t nonce[SR_NONCE_LEN] = {1, 2, 3};
    char em[256];
    cr_assert_eq(k->seal(k->ctx, id, nonce, "aad", 3, msg, strlen(msg), ct, tag, em, sizeof em), SR_OK, "%s", em);
}

static int open_of(sr_keyring *kr, uint32_t id, const uint8_t *ct, size_t n, const uint8_t tag[SR_TAG_LEN],
                   char *out, char *em, size_t emlen)
{
    const sr_keys *k = sr_keyring_keys(kr);
    uint8_t nonce[SR_NONCE_LEN] = {1, 2, 3};
    int rc = k->open(k->ctx, id, nonce, "aad", 3, ct, n, out, tag, em, emlen);
    if (!rc) out[n] = 0;
    return rc;
}

Test(keyring, created_on_first_use_and_durable)
{
    char *dir = keydir("kr_first");
    sr_key m = mkey(7);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t a = 0, a2 = 0, b = 0;
    int created = 0;
    sr_keyinfo info;
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 1000, &a, &created, &info), SR_OK);
    cr_assert(created && a && a != m.id);
    cr_assert_eq(info.epoch, 1);
    cr_assert_eq(info.state, SR_KS_ACTIVE);
    cr_assert_str_eq(info.operator_id, "opA");
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 2000, &a2, &created, NULL), SR_OK);
    cr_assert(!created && a2 == a);
    cr_assert_eq(sr_keyring_current(kr, "opB", SR_KC_DATA, 1000, &b, &created, NULL), SR_OK);
    cr_assert(created && b != a);
    uint8_t ct[64], tag[SR_TAG_LEN];
    char out[64], em[256];
    seal_of(kr, a, "Intake pump 3", ct, tag);
    /* B's key does not open A's sealed bytes */
    cr_assert_eq(open_of(kr, b, ct, 13, tag, out, em, sizeof em), SR_ECORRUPT);
    sr_keyring_close(kr);
    /* reopened: the same keys */
    kr = open_ok(dir, &m, 0);
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 3000, &a2, &created, NULL), SR_OK);
    cr_assert(!created && a2 == a);
    cr_assert_eq(open_of(kr, a, ct, 13, tag, out, em, sizeof em), SR_OK);
    cr_assert_str_eq(out, "Intake pump 3");
    /* no key bytes in the clear in the file: the unwrapped key is not there */
    size_t n;
    uint8_t *file = tu_read_file(strcat(strcpy(em, dir), "/keyring"), &n);
    cr_assert(file && n > 24 && !memmem(file, n, "Intake", 6));
    free(file);
    sr_keyring_close(kr);
    tu_rmrf(dir);
    free(dir);
}

Test(keyring, rotate_keeps_old_keys_readable)
{
    char *dir = keydir("kr_rot");
    sr_key m = mkey(9);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t e1;
    cr_assert_eq(sr_keyring_current(kr, "", SR_KC_AUDIT, 10, &e1, NULL, NULL), SR_OK);
    uint8_t ct[64], tag[SR_TAG_LEN];
    char out[64], em[256];
    seal_of(kr, e1, "login alice", ct, tag);
    sr_keyinfo r;
    cr_assert_eq(sr_keyring_rotate(kr, "", SR_KC_AUDIT, 20, &r), SR_OK);
    cr_assert_eq(r.epoch, 2);
    cr_assert_neq(r.id, e1);
    uint32_t cur;
    cr_assert_eq(sr_keyring_current(kr, "", SR_KC_AUDIT, 30, &cur, NULL, NULL), SR_OK);
    cr_assert_eq(cur, r.id);
    sr_keyinfo old;
    cr_assert_eq(sr_keyring_info(kr, e1, &old), SR_OK);
    cr_assert_eq(old.state, SR_KS_RETIRED);
    cr_assert_eq(old.retired_ms, 20);
    cr_assert_null(sr_keyring_check(kr));
    sr_keyring_close(kr);
    kr = open_ok(dir, &m, 0);
    cr_assert_eq(open_of(kr, e1, ct, 11, tag, out, em, sizeof em), SR_OK);
    cr_assert_str_eq(out, "login alice");
    /* a rotation of a pair with no key yet starts at epoch 1 */
    cr_assert_eq(sr_keyring_rotate(kr, "opZ", SR_KC_CONFIG, 40, &r), SR_OK);
    cr_assert_eq(r.epoch, 1);
    sr_keyinfo *v;
    size_t n;
    cr_assert_eq(sr_keyring_list(kr, &v, &n), SR_OK);
    cr_assert_eq(n, 3);
    sr_free(v);
    sr_keyring_close(kr);
    tu_rmrf(dir);
    free(dir);
}

Test(keyring, destroy_is_a_tombstone)
{
    char *dir = keydir("kr_destroy");
    sr_key m = mkey(11);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t a;
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 10, &a, NULL, NULL), SR_OK);
    uint8_t ct[64], tag[SR_TAG_LEN];
    char out[64], em[256];
    seal_of(kr, a, "value 42.5", ct, tag);
    cr_assert_eq(sr_keyring_destroy(kr, a, 15), SR_EINVAL, "the active key is not destroyed");
    cr_assert_eq(sr_keyring_rotate(kr, "opA", SR_KC_DATA, 20, NULL), SR_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/keyring", dir);
    size_t n0, n1;
    free(tu_read_file(path, &n0));
    cr_assert_eq(sr_keyring_destroy(kr, a, 30), SR_OK);
    free(tu_read_file(path, &n1));
    cr_assert_eq(n0 - n1, SR_NONCE_LEN + SR_KEY_LEN + SR_TAG_LEN, "the wrapped bytes left the file");
    cr_assert_eq(open_of(kr, a, ct, 10, tag, out, em, sizeof em), SR_EERASED);
    cr_assert(strstr(em, "destroyed") && strstr(em, "opA") && strstr(em, "epoch 1"), "%s", em);
    cr_assert_eq(sr_keyring_destroy(kr, 12345, 30), SR_ENOTFOUND);
    sr_keyring_close(kr);
    kr = open_ok(dir, &m, 0);
    sr_keyinfo i;
    cr_assert_eq(sr_keyring_info(kr, a, &i), SR_OK);
    cr_assert_eq(i.state, SR_KS_DESTROYED);
    cr_assert_eq(i.destroyed_ms, 30);
    cr_assert_eq(open_of(kr, a, ct, 10, tag, out, em, sizeof em), SR_EERASED);
    sr_keyring_close(kr);
    tu_rmrf(dir);
    free(dir);
}

Test(keyring, errors_name_the_key)
{
    char *dir = keydir("kr_err");
    sr_key m = mkey(1), other = mkey(2);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, dir, &m, "test", 0, &kr, &ei), SR_ENOTFOUND);
    kr = open_ok(dir, &m, 1);
    sr_keyring_close(kr);
    cr_assert_eq(sr_keyring_open(NULL, dir, &m, "test", 0, &kr, &ei), SR_ENOTFOUND,
                 "an open writes no file: a lost keyring is never replaced by an empty one");
    kr = open_ok(dir, &m, 1);
    uint32_t first;
    cr_assert_eq(sr_keyring_current(kr, "op", SR_KC_AUDIT, 5, &first, NULL, NULL), SR_OK);
    char out[64], em[256];
    uint8_t ct[8] = {0}, tag[SR_TAG_LEN] = {0};
    cr_assert_eq(open_of(kr, 0xabcdef01, ct, 4, tag, out, em, sizeof em), SR_EKEY);
    cr_assert(strstr(em, "0xabcdef01") && strstr(em, "/keys/keyring"), "%s", em);
    sr_keyring_close(kr);
    kr = NULL;
    cr_assert_eq(sr_keyring_open(NULL, dir, &other, "env:OTHER", 0, &kr, &ei), SR_EKEY);
    char want[128];
    snprintf(want, sizeof want, "wrapped by master key 0x%08x; the key from env:OTHER has id 0x%08x", m.id, other.id);
    cr_assert(strstr(ei.msg, want), "%s", ei.msg);
    uint32_t mid = 0;
    cr_assert_eq(sr_keyring_peek_master(NULL, dir, &mid), SR_OK);
    cr_assert_eq(mid, m.id);
    /* a damaged file: every single flipped byte is refused, naming the file */
    char path[512];
    snprintf(path, sizeof path, "%s/keyring", dir);
    kr = open_ok(dir, &m, 0);
    uint32_t id;
    cr_assert_eq(sr_keyring_current(kr, "op", SR_KC_DATA, 5, &id, NULL, NULL), SR_OK);
    sr_keyring_close(kr);
    size_t n;
    uint8_t *good = tu_read_file(path, &n);
    for (size_t i = 0; i < n; i++) {
        good[i] ^= 0x20;
        cr_assert_eq(tu_write_file(path, good, n), 0);
        kr = NULL;
        int rc = sr_keyring_open(NULL, dir, &m, "test", 0, &kr, &ei);
        cr_assert(rc == SR_ECORRUPT || rc == SR_EVERSION, "byte %zu: %s", i, sr_err_name(rc));
        cr_assert(strstr(ei.where, "keyring") && strstr(ei.msg, path), "%s", ei.msg);
        good[i] ^= 0x20;
    }
    /* torn: every prefix */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tu_write_file(path, good, i), 0);
        kr = NULL;
        cr_assert_eq(sr_keyring_open(NULL, dir, &m, "test", 1, &kr, &ei), SR_ECORRUPT, "prefix %zu", i);
    }
    free(good);
    tu_rmrf(dir);
    free(dir);
}

Test(keyring, rewrap_under_a_new_master)
{
    char *dir = keydir("kr_rewrap");
    sr_key m = mkey(3), m2 = mkey(4);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t a;
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 10, &a, NULL, NULL), SR_OK);
    uint8_t ct[64], tag[SR_TAG_LEN], lct[64], ltag[SR_TAG_LEN];
    char out[64], em[256];
    seal_of(kr, a, "reservoir level", ct, tag);
    /* bytes the old master sealed itself (a version 1 or 2 segment) */
    sr_aead *old = NULL;
    uint8_t nonce[SR_NONCE_LEN] = {1, 2, 3};
    cr_assert_eq(sr_aead_create(&m, &old), SR_OK);
    cr_assert_eq(sr_aead_seal(old, nonce, "aad", 3, "old segment", 11, lct, ltag), SR_OK);
    sr_aead_destroy(old);
    cr_assert_eq(sr_keyring_rewrap(kr, &m2, 1, 20), SR_OK);
    cr_assert_eq(sr_keyring_master_id(kr), m2.id);
    sr_keyring_close(kr);
    sr_keyring *bad = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_keyring_open(NULL, dir, &m, "file:/old", 0, &bad, &ei), SR_EKEY, "the rotated-away master");
    cr_assert(strstr(ei.msg, "file:/old"), "%s", ei.msg);
    kr = open_ok(dir, &m2, 0);
    cr_assert_eq(open_of(kr, a, ct, 15, tag, out, em, sizeof em), SR_OK);
    cr_assert_str_eq(out, "reservoir level");
    sr_keyinfo li;
    cr_assert_eq(sr_keyring_info(kr, m.id, &li), SR_OK, "the old master is a legacy entry");
    cr_assert_eq(li.cls, SR_KC_LEGACY);
    cr_assert_eq(open_of(kr, m.id, lct, 11, ltag, out, em, sizeof em), SR_OK);
    cr_assert_str_eq(out, "old segment");
    cr_assert_eq(sr_keyring_rewrap(kr, &m2, 1, 30), SR_EEXIST, "the same master");
    sr_keyring_close(kr);
    tu_rmrf(dir);
    free(dir);
}

Test(keyring, export_and_import)
{
    char *dir = keydir("kr_exp"), *dir2 = keydir("kr_imp");
    sr_key m = mkey(5), other = mkey(6);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t a;
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 10, &a, NULL, NULL), SR_OK);
    cr_assert_eq(sr_keyring_rotate(kr, "opA", SR_KC_DATA, 20, NULL), SR_OK);
    uint8_t ct[64], tag[SR_TAG_LEN];
    char out[64], em[256];
    seal_of(kr, a, "document body", ct, tag);
    sr_buf ex;
    sr_buf_init(&ex);
    cr_assert_eq(sr_keyring_export(kr, &ex), SR_OK);
    sr_keyring_close(kr);
    /* the keyring lost: a fresh one under another master refuses the export... */
    sr_keyring *k2 = open_ok(dir2, &other, 1);
    sr_errinfo ei;
    size_t added = 0;
    cr_assert_eq(sr_keyring_import(k2, ex.data, ex.len, NULL, &added, &ei), SR_EKEY);
    char want[64];
    snprintf(want, sizeof want, "master key 0x%08x", m.id);
    cr_assert(strstr(ei.msg, want), "%s", ei.msg);
    /* ...unless that master is given */
    cr_assert_eq(sr_keyring_import(k2, ex.data, ex.len, &m, &added, &ei), SR_OK, "%s", ei.msg);
    cr_assert_eq(added, 2);
    cr_assert_eq(open_of(k2, a, ct, 13, tag, out, em, sizeof em), SR_OK);
    cr_assert_str_eq(out, "document body");
    /* twice: nothing new */
    cr_assert_eq(sr_keyring_import(k2, ex.data, ex.len, &m, &added, &ei), SR_OK);
    cr_assert_eq(added, 0);
    /* damaged */
    ex.data[30] ^= 1;
    cr_assert_eq(sr_keyring_import(k2, ex.data, ex.len, &m, &added, &ei), SR_ECORRUPT);
    cr_assert_null(sr_keyring_check(k2));
    sr_keyring_close(k2);
    k2 = open_ok(dir2, &other, 0);
    cr_assert_eq(open_of(k2, a, ct, 13, tag, out, em, sizeof em), SR_OK, "durable");
    sr_keyring_close(k2);
    sr_buf_release(&ex);
    tu_rmrf(dir);
    tu_rmrf(dir2);
    free(dir);
    free(dir2);
}

/* A file whose entries authenticate but break invariant 2 (two active keys
 * of one pair: a retired entry's state byte set to active) is refused. */
Test(keyring, invariants_refuse_a_crafted_file)
{
    char *dir = keydir("kr_inv");
    sr_key m = mkey(8);
    sr_keyring *kr = open_ok(dir, &m, 1);
    uint32_t a;
    cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 10, &a, NULL, NULL), SR_OK);
    cr_assert_eq(sr_keyring_rotate(kr, "opA", SR_KC_DATA, 20, NULL), SR_OK);
    sr_keyring_close(kr);
    char path[512];
    snprintf(path, sizeof path, "%s/keyring", dir);
    size_t n;
    uint8_t *f = tu_read_file(path, &n);
    cr_assert_eq(sr_get_le32(f + 24), a);
    cr_assert_eq(f[24 + 11], SR_KS_RETIRED);
    f[24 + 11] = SR_KS_ACTIVE;
    sr_sha256(f, n - SR_HASH_LEN, f + n - SR_HASH_LEN);
    cr_assert_eq(tu_write_file(path, f, n), 0);
    free(f);
    sr_errinfo ei;
    kr = NULL;
    cr_assert_eq(sr_keyring_open(NULL, dir, &m, "test", 0, &kr, &ei), SR_ECORRUPT);
    cr_assert(strstr(ei.msg, "invariant 2"), "%s", ei.msg);
    tu_rmrf(dir);
    free(dir);
}

/* Every VFS call of a rotation fails in turn: the call fails, the keyring in
 * memory is what it was, and the file reopens either before or after the
 * rotation, never in between. */
Test(keyring, faults_during_rotation)
{
    const vf_kind kinds[] = {VF_EIO, VF_ENOSPC, VF_SHORT, VF_SYNC_FAIL};
    for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++) {
        for (unsigned long k = 1;; k++) {
            char *dir = keydir("kr_fault");
            sr_key m = mkey(12);
            sr_keyring *kr = NULL;
            sr_errinfo ei;
            vfs_faulty_arm(0, kinds[ki]);
            cr_assert_eq(sr_keyring_open(&vfs_faulty, dir, &m, "test", 1, &kr, &ei), SR_OK);
            uint32_t a;
            cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 10, &a, NULL, NULL), SR_OK);
            vfs_faulty_arm(k, kinds[ki]);
            sr_keyinfo r;
            int rc = sr_keyring_rotate(kr, "opA", SR_KC_DATA, 20, &r);
            int fired = vfs_faulty_fired();
            vfs_faulty_arm(0, kinds[ki]);
            uint32_t cur;
            cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 30, &cur, NULL, NULL), SR_OK);
            if (rc) {
                cr_assert(fired);
                cr_assert_eq(cur, a, "a failed rotation changed nothing in memory");
            } else
                cr_assert_eq(cur, r.id);
            cr_assert_null(sr_keyring_check(kr));
            sr_keyring_close(kr);
            kr = open_ok(dir, &m, 0);
            cr_assert_eq(sr_keyring_current(kr, "opA", SR_KC_DATA, 40, &cur, NULL, NULL), SR_OK);
            if (!rc) cr_assert_eq(cur, r.id, "an acknowledged rotation is durable");
            sr_keyring_close(kr);
            tu_rmrf(dir);
            free(dir);
            if (!fired) break;
        }
    }
}

typedef struct rd {
    sr_keyring *kr;
    uint32_t id;
    uint8_t ct[32], tag[SR_TAG_LEN];
    int stop, fails, opens;
} rd;

static void *reader(void *p)
{
    rd *r = p;
    char out[64], em[256];
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (open_of(r->kr, r->id, r->ct, 17, r->tag, out, em, sizeof em) || strcmp(out, "flow rate 12.5 m3"))
            __atomic_add_fetch(&r->fails, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->opens, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

Test(keyring, readers_while_rotating)
{
    char *dir = keydir("kr_threads");
    sr_key m = mkey(13);
    rd r = {0};
    r.kr = open_ok(dir, &m, 1);
    cr_assert_eq(sr_keyring_current(r.kr, "opA", SR_KC_DATA, 1, &r.id, NULL, NULL), SR_OK);
    seal_of(r.kr, r.id, "flow rate 12.5 m3", r.ct, r.tag);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, reader, &r), 0);
    for (int i = 0; i < 50; i++) {
        sr_keyinfo ki;
        cr_assert_eq(sr_keyring_rotate(r.kr, i % 2 ? "opA" : "opB", SR_KC_DATA, 2 + i, &ki), SR_OK);
        uint8_t ct[32], tag[SR_TAG_LEN];
        seal_of(r.kr, ki.id, "new", ct, tag);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(r.fails, 0);
    cr_assert_null(sr_keyring_check(r.kr));
    sr_keyring_close(r.kr);
    tu_rmrf(dir);
    free(dir);
}
