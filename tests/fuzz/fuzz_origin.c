/* tests/fuzz/fuzz_origin.c -- libFuzzer target for what the cluster's
 * consumers (api/cluster_sub.c) take from a stream: one message's payload,
 * a serialized Event another node wrote, submitted to this node's engine
 * with its origin (sr_engine_submit_origin, engine/origins.c: re-packed with
 * the origin, its point numbers mapped by the writer, checked like any
 * command, applied at most once). Whatever the bytes, the engine answers
 * (applied, duplicate, or refused) and never crashes, leaks or reads out of
 * bounds; the same bytes again are a duplicate when the first were applied.
 * The first input bytes up to a NUL (if short) are also read as a
 * [cluster] owned value (sr_cluster_parse_owned). Corpus: tests/fuzz/origin/
 * (a Snapshot, a PointValues and a mixed record, as fuzz_event's; a
 * PointAlias, Event.body 55: its resolution and refusals, issue #19). */
#include "api/cluster.h"
#include "engtest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static sr_engine *e;
static uint64_t n;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!e) e = et_fuzz_engine("origin", 8);
    /* [cluster] owned */
    char spec[64];
    size_t k = size < sizeof spec - 1 ? size : sizeof spec - 1;
    memcpy(spec, data, k);
    spec[k] = 0;
    uint8_t bits[(SR_CLUSTER_MAX_PARTITIONS + 7) / 8];
    char err[256];
    (void)sr_cluster_parse_owned(spec, 16, bits, err, sizeof err);
    /* the payload */
    sr_origin o = {"fz", ++n, (uint32_t)(n % 4), n, 1 + (int)(n % 2)};
    sr_result r;
    int rc = et_submit_origin(e, data, size, &o, &r);
    if (rc == SR_OK && !r.duplicate) {
        sr_result r2;
        if (et_submit_origin(e, data, size, &o, &r2) != SR_OK || !r2.duplicate) abort(); /* exactly once */
    }
    return 0;
}
