/* tests/fuzz/fuzz_tlog.c -- a checkpoint's signed note (storage/mtree.c
 * sr_tlog_parse and sr_tlog_verify) on arbitrary bytes: `suiro audit verify
 * --checkpoints FILE` reads notes an auditor kept, which may be damaged or
 * hostile. Never a crash, a leak or an out-of-bounds read; a note that
 * parses has a size above 0 and an origin; no note of arbitrary bytes
 * verifies under a key generated here (its signature cannot be forged).
 * Corpus: tests/fuzz/tlog/. */
#include "storage/crypto.h"
#include "storage/mtree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sr_sigkey *k;
    if (!k && sr_sigkey_generate(SR_ALG_ES256, &k)) abort();
    sr_tlog_fields f;
    int rc = sr_tlog_parse((const char *)data, size, &f);
    if (rc != SR_OK && rc != SR_ECORRUPT) abort();
    if (rc == SR_OK && (!f.size || !f.origin[0])) abort();
    char *note = malloc(size + 1);
    if (!note) return 0;
    memcpy(note, data, size);
    note[size] = 0;
    size_t bl;
    rc = sr_tlog_verify(k, rc == SR_OK ? f.origin : "suiro/x", note, &bl);
    if (rc == SR_OK) abort();
    free(note);
    return 0;
}
