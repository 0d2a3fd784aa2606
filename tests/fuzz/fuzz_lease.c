/* tests/fuzz/fuzz_lease.c -- the owners' bucket's values (api/cluster.h
 * sr_lease_parse, sr_node_info_parse; docs/cluster.md "Ownership") on
 * arbitrary bytes: the bucket is outside input (any NATS client can put
 * there). Never a crash or an out-of-bounds read (ASan); a refusal names
 * its problem; an accepted lease formats back and parses to the same lease.
 * Corpus: tests/fuzz/lease/. */
#include "api/cluster.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_lease l, m;
    char err[256] = "", buf[256];
    if (sr_lease_parse(data, size, &l, err, sizeof err)) {
        if (!err[0] || l.node[0]) abort();
    } else {
        int k = sr_lease_format(&l, buf, sizeof buf);
        if (k < 0 || sr_lease_parse(buf, (size_t)k, &m, err, sizeof err)) abort();
        if (strcmp(l.node, m.node) || l.until_ms != m.until_ms || l.epoch != m.epoch) abort();
    }
    sr_node_info n;
    err[0] = 0;
    if (sr_node_info_parse(data, size, &n, err, sizeof err) && !err[0]) abort();
    return 0;
}
