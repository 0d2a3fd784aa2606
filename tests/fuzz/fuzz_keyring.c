/* tests/fuzz/fuzz_keyring.c -- libFuzzer target for the keyring file's
 * parser (storage/keyring.c; docs/keys.md "The keyring file"): the file
 * <data>/keys/keyring, read at every keyed open, and a key export, the file
 * `suiro key import` (sr_engine_key_import -> sr_keyring_import) reads, come
 * from a data directory, a backup or an operator's hand: damaged or hostile.
 * The input's first byte chooses:
 *   bit 0  0: the rest is <dir>/keyring, opened (sr_keyring_open) with the
 *             master M; 1: the rest is an export, imported into an empty
 *             keyring of M (sr_keyring_import, `other` the master O)
 *   bit 1  the file's trailing SHA-256 is recomputed over what precedes it,
 *          so that a mutation reaches the entries' parser and the unwrapping
 *          (the checksum stops nearly every mutation otherwise)
 * Opening or importing must never crash, leak or read out of bounds, and
 * answer only the documented errors; what it accepts must hold the
 * keyring's invariants (sr_keyring_check), export to bytes that import back
 * into it adding nothing, and seal and open under each live key. Corpus:
 * tests/fuzz/keyring/: bytes the keyring itself wrote, each behind its
 * selector byte, with the masters M and O of init() (as 64 hex digits):
 *   suiro init d1; suiro init d2
 *   suiro key rotate d1 --key-file M --operator demo --class data (twice)
 *   suiro key rotate d1 --key-file M --operator acme --class audit
 *   suiro key rotate d1 --key-file M      d1/keys/keyring: open-5keys, and
 *                                         open-fixsum-5keys (selector 2)
 *   suiro key export d1 exM --key-file M  import-own-5keys
 *   suiro key rotate d2 --key-file O --operator demo --class data
 *   suiro key export d2 exO --key-file O  import-other-master (O wraps it)
 *   suiro key rotate-master d2 --key-file O --new-key-file M --keep-legacy
 *                                         open-legacy (a legacy entry)
 *   open-tombstone, import-tombstone: open-5keys with its first entry (demo's
 *   retired data key) a tombstone as sr_keyring_destroy writes one (state 3,
 *   destroyed_ms set, no wrapped bytes, the checksum recomputed). */
#include "storage/keyring.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sr_key g_m, g_o; /* the master M, and O: another master an export may be wrapped by */
static char dir[256], path[300];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *w)
{
    (void)st, (void)flag, (void)w;
    return remove(p);
}

static void cleanup(void) { nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void init(void)
{
    uint8_t b[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(0x11 * (i + 1)); /* M */
    sr_key_from_bytes(&g_m, b);
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(0xa0 + i); /* O */
    sr_key_from_bytes(&g_o, b);
    snprintf(dir, sizeof dir, "/tmp/suiro-fuzz-keyring-%d", (int)getpid());
    snprintf(path, sizeof path, "%s/keyring", dir);
    if (sr_vfs_posix.mkdir(&sr_vfs_posix, dir)) abort();
    atexit(cleanup);
}

static int allowed(int rc)
{
    return rc == SR_OK || rc == SR_ECORRUPT || rc == SR_EVERSION || rc == SR_EKEY || rc == SR_EEXIST ||
           rc == SR_ENOMEM || rc == SR_ENOTFOUND;
}

/* What an accepted keyring must do. */
static void exercise(sr_keyring *kr)
{
    if (sr_keyring_check(kr)) abort();
    sr_keyinfo *ks = NULL;
    size_t n = 0;
    if (sr_keyring_list(kr, &ks, &n)) abort();
    const sr_keys *keys = sr_keyring_keys(kr);
    for (size_t i = 0; i < n; i++) {
        uint8_t nonce[SR_NONCE_LEN] = {1}, tag[SR_TAG_LEN], in[20] = "a fuzzed keyring's", ct[20], back[20];
        char msg[200];
        int rc = keys->seal(keys->ctx, ks[i].id, nonce, "ad", 2, in, sizeof in, ct, tag, msg, sizeof msg);
        if (ks[i].state == SR_KS_DESTROYED) {
            if (rc != SR_EERASED) abort();
            continue;
        }
        if (rc) abort();
        if (keys->open(keys->ctx, ks[i].id, nonce, "ad", 2, ct, sizeof ct, back, tag, msg, sizeof msg) ||
            memcmp(in, back, sizeof in))
            abort();
        tag[0] ^= 1;
        if (keys->open(keys->ctx, ks[i].id, nonce, "ad", 2, ct, sizeof ct, back, tag, msg, sizeof msg) != SR_ECORRUPT)
            abort();
    }
    sr_free(ks);
    sr_buf b;
    sr_buf_init(&b);
    size_t added = 1;
    if (sr_keyring_export(kr, &b)) abort();
    if (sr_keyring_import(kr, b.data, b.len, NULL, &added, NULL) || added) abort(); /* its own export adds nothing */
    sr_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) init();
    if (size < 1) return 0;
    int sel = data[0];
    data++, size--;
    uint8_t *f = malloc(size ? size : 1);
    if (!f) return 0;
    if (size) memcpy(f, data, size);
    if ((sel & 2) && size >= SR_HASH_LEN) sr_sha256(f, size - SR_HASH_LEN, f + size - SR_HASH_LEN);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    unlink(path);
    if (!(sel & 1)) {
        FILE *fp = fopen(path, "wb");
        if (!fp) abort();
        if (size && fwrite(f, 1, size, fp) != size) abort();
        fclose(fp);
        int rc = sr_keyring_open(NULL, dir, &g_m, "fuzz", 0, &kr, &ei);
        if (!allowed(rc)) abort();
        if (rc && rc != SR_ENOMEM && !ei.msg[0]) abort(); /* a refusal names the problem */
        if (!rc) exercise(kr);
    } else {
        if (sr_keyring_open(NULL, dir, &g_m, "fuzz", 1, &kr, &ei)) abort();
        size_t added = 0;
        int rc = sr_keyring_import(kr, f, size, &g_o, &added, &ei);
        if (!allowed(rc)) abort();
        if (rc && rc != SR_ENOMEM && !ei.msg[0]) abort();
        if (rc && added) abort(); /* refused: nothing added */
        exercise(kr);
    }
    sr_keyring_close(kr);
    unlink(path);
    free(f);
    return 0;
}
