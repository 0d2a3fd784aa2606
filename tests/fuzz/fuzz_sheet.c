/* tests/fuzz/fuzz_sheet.c -- libFuzzer target for the set-up sheet parser.
 *
 * Any bytes: sr_sheet_parse must answer with a code and (except SR_ENOMEM /
 * SR_ETOOBIG) a sheet whose error list agrees with the code. When the sheet
 * is valid, its canonical export must parse back to an equal sheet and
 * re-export to the same bytes. Seeds: tests/fuzz/sheet/. */
#include "codecs/sheet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    sr_sheet *a = NULL, *b = NULL;
    sr_buf w1, w2;
    sr_buf_init(&w1);
    sr_buf_init(&w2);
    int rc = sr_sheet_parse(d, n, NULL, &a);
    if (rc != SR_OK && rc != SR_EINVAL && rc != SR_ECODEC && rc != SR_EVERSION) abort();
    if (!a) abort();
    if ((rc == SR_OK) != (a->n_errors == 0)) abort();
    for (size_t i = 0; i < a->n_errors; i++)
        if (strlen(a->errors[i].msg) >= sizeof a->errors[i].msg) abort();
    if (rc == SR_OK) {
        if (sr_sheet_write(a, &w1) != SR_OK) abort();
        if (sr_sheet_parse(w1.data, w1.len, NULL, &b) != SR_OK) abort();
        if (!sr_sheet_equal(a, b)) abort();
        if (sr_sheet_write(b, &w2) != SR_OK) abort();
        if (w1.len != w2.len || memcmp(w1.data, w2.data, w1.len)) abort();
    }
    sr_sheet_free(a);
    sr_sheet_free(b);
    sr_buf_release(&w1);
    sr_buf_release(&w2);
    return 0;
}
