/* tests/fuzz/fuzz_cblob.c -- the cluster's blob chunk messages (api/
 * cluster_blob.h sr_cblob_chunk_parse; docs/blob-format.md "The cluster's
 * blob chunks") on arbitrary bytes: a chunk comes from NATS, outside input
 * (any NATS client can publish to <name>_BLOBS). Never a crash or an
 * out-of-bounds read (ASan); a refusal names its problem; an accepted chunk
 * holds exactly the bytes its index gives, inside the input, and builds
 * back to the same message. Corpus: tests/fuzz/cblob/. */
#include "api/cluster_blob.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_cblob_hdr h;
    const uint8_t *d = NULL;
    size_t dl = 0;
    char err[256] = "";
    if (sr_cblob_chunk_parse(data, size, &h, &d, &dl, err, sizeof err)) {
        if (!err[0] || d || dl) abort();
        return 0;
    }
    if (h.index >= h.nchunks || dl != sr_cblob_chunk_len(h.size, h.chunk_size, h.index)) abort();
    if (d != data + SR_CBLOB_HDR || d + dl != data + size) abort();
    sr_buf b;
    sr_buf_init(&b);
    if (sr_cblob_chunk_build(&h, d, dl, &b) == SR_OK && (b.len != size || memcmp(b.data, data, size))) abort();
    sr_buf_release(&b);
    return 0;
}
