/* tests/support/log_writer.c -- child process for the kill -9 test.
 *
 * usage: log_writer DIR SEED [ENCRYPT]
 * Appends batches with sync=always forever, content keyed by sequence number
 * (logtest.h), and after each acknowledged append prints "ack FIRST LAST" and
 * flushes stdout: a line on stdout is a promise that those records are
 * durable. Exits 1 on any error. */
#include "logtest.h"
#include "storage/log.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: log_writer DIR SEED [ENCRYPT]\n");
        return 2;
    }
    tu_rng r = {strtoull(argv[2], NULL, 10)};
    sr_key key;
    lt_key(&key, 4);
    sr_log_opts o = {.segment_bytes = 256u << 10, .block_bytes = 16u << 10, .zstd_level = 1,
                     .key = argc > 3 ? &key : NULL};
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = sr_log_open(argv[1], &o, &lg, &ei);
    if (rc) {
        fprintf(stderr, "log_writer: open: %s\n", ei.msg);
        return 1;
    }
    printf("ready %" PRIu64 "\n", sr_log_next_seq(lg));
    fflush(stdout);
    for (;;) {
        size_t n = 1 + (size_t)tu_below(&r, 60);
        uint64_t first;
        rc = lt_append(lg, n, 20000, &first);
        if (rc) {
            fprintf(stderr, "log_writer: append: %s\n", sr_err_name(rc));
            return 1;
        }
        printf("ack %" PRIu64 " %" PRIu64 "\n", first, first + n - 1);
        fflush(stdout);
    }
}
