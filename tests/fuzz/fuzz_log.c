/* tests/fuzz/fuzz_log.c -- libFuzzer target for the log reader: the input is
 * one segment file. Opening (read-only and writable, which may cut a torn
 * tail), iterating and verifying must never crash, leak or read out of
 * bounds; errors are fine. With no key, the tests' key 9, and the test
 * keyring of keys 11 and 12 (version 3 sections; key 12 live, then
 * destroyed: erased sections). Corpus: tests/fuzz/log/ (v3-*.seg from the
 * golden corpus). */
#include "logtest.h"
#include "storage/log.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void clean_dir(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[600];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static void write_seg(const uint8_t *data, size_t size)
{
    char p[400];
    clean_dir();
    snprintf(p, sizeof p, "%s/00000000000000000001.seg", dir);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static void drain(sr_log *lg)
{
    sr_log_iter *it = NULL;
    if (sr_log_iter_open(lg, 1, &it)) return;
    uint64_t s;
    sr_slice r;
    int n = 0, rc;
    while (n++ < 100000 && ((rc = sr_log_iter_next(it, &s, &r)) == SR_OK || rc == SR_EERASED))
        (void)sr_log_iter_key_id(it);
    sr_log_iter_close(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/suiro-fuzz-log-%d", (int)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
        if (system(cmd)) abort();
    }
    static sr_key key;
    static int have_key;
    if (!have_key) {
        uint8_t b[32];
        for (int i = 0; i < 32; i++) b[i] = (uint8_t)(i * 7 + 9 * 101 + 1); /* tests' key 9 */
        sr_key_from_bytes(&key, b);
        have_key = 1;
    }
    static lt_keyring kr;
    static const int which[] = {11, 12};
    if (!kr.n) lt_keyring_init(&kr, which, 2);
    for (int k = 0; k < 4; k++) {
        sr_log_opts o = {.readonly = 1, .key = k == 1 ? &key : NULL, .keys = k >= 2 ? &kr.keys : NULL};
        lt_keyring_set(&kr, 1, k == 3 ? LT_DESTROYED : LT_LIVE);
        sr_log *lg = NULL;
        sr_errinfo ei;
        write_seg(data, size);
        if (sr_log_open(dir, &o, &lg, &ei) == SR_OK) {
            drain(lg);
            sr_log_close(lg);
        }
        sr_log_report rep;
        (void)sr_log_verify(dir, &o, &rep, &ei);
        o.readonly = 0;
        if (sr_log_open(dir, &o, &lg, &ei) == SR_OK) {
            drain(lg);
            sr_slice rec[2] = {{"x", 1}, {"y", 1}};
            uint32_t ids[2] = {0, lt_keyring_id(&kr, 0)};
            if (k == 2) (void)sr_log_append_keyed(lg, rec, ids, 2, NULL);
            else (void)sr_log_append(lg, rec, 1, NULL);
            sr_log_close(lg);
        }
    }
    clean_dir();
    return 0;
}
