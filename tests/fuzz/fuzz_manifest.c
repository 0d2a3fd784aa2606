/* tests/fuzz/fuzz_manifest.c -- a backup's manifest (engine/backup.c's one
 * parser, sr_backup_manifest_parse) on arbitrary bytes: a manifest is read
 * from a backup directory, which may be damaged or hostile. Never a crash,
 * a leak or an out-of-bounds read; what it accepts names only paths under
 * log/, index/, blobs/ or the certificate, without "." or ".." components
 * (checked inside, SR_VERIFY), and its byte count is the sum of its files'
 * sizes. Corpus: tests/fuzz/manifest/. */
#include "engine/backup.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_backup_info x;
    sr_errinfo ei;
    int rc = sr_backup_manifest_parse(data, size, &x, &ei);
    if (rc != SR_OK && rc != SR_ECORRUPT && rc != SR_ENOMEM) abort();
    if (rc == SR_OK && x.files == 0 && x.bytes != 0) abort();
    return 0;
}
