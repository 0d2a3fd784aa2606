/* tests/fuzz/fuzz_relay.c -- the cluster's relay messages and presence
 * values (api/cluster_req.h sr_relay_parse, sr_presence_parse; docs/cluster.md
 * "Request flows across nodes") on arbitrary bytes: any NATS client can
 * publish to <name>.node.<N>.req/.res/.data and put into <name>_GWS (the
 * monitors' PERIODIC_START / PERIODIC_STOP / DATA kinds and the ASK / ANS
 * of a monitor's stop from another node included). Never a crash
 * or an out-of-bounds read (ASan); a refusal names its problem and leaves
 * nothing to free; an accepted message formats back and parses to the same
 * message. Corpus: tests/fuzz/relay/. */
#include "api/cluster_req.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_relay m, m2;
    char err[256] = "";
    if (sr_relay_parse(data, size, &m, err, sizeof err)) {
        if (!err[0] || m.part || m.values || m.applied || m.sig || m.ev || m.body) abort();
    } else {
        sr_buf b;
        sr_buf_init(&b);
        if (sr_relay_format(&m, &b)) abort();
        if (sr_relay_parse(b.data, b.len, &m2, err, sizeof err)) abort();
        if (m2.type != m.type || m2.kind != m.kind || m2.state != m.state || strcmp(m2.id, m.id) ||
            strcmp(m2.op, m.op) || strcmp(m2.gw, m.gw) || strcmp(m2.code, m.code) || strcmp(m2.msg, m.msg) ||
            strcmp(m2.monitor, m.monitor) || strcmp(m2.app, m.app) || m2.status != m.status || m2.seq != m.seq ||
            m2.gw_signed != m.gw_signed || m2.ev_len != m.ev_len ||
            (m.ev_len && memcmp(m2.ev, m.ev, m.ev_len)))
            abort();
        if ((m.part || m2.part) && !json_equal(m.part, m2.part)) abort();
        if ((m.values || m2.values) && !json_equal(m.values, m2.values)) abort();
        if ((m.body || m2.body) && !json_equal(m.body, m2.body)) abort();
        sr_relay_clear(&m2);
        sr_relay_clear(&m);
        sr_buf_release(&b);
    }
    sr_presence p;
    err[0] = 0;
    if (sr_presence_parse(data, size, &p, err, sizeof err) && !err[0]) abort();
    return 0;
}
