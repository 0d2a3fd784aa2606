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
 * PointAlias, Event.body 55: its resolution and refusals, issue #19).
 * Stream keys (api/cluster_seal.h, docs/keys.md "Cluster: stream keys"): the
 * same bytes are also read as a KV entry of the keys' bucket
 * (sr_skey_unwrap under a fixed master) and as a sealed payload
 * (sr_open_payload under a fixed stream key); one that opens is submitted
 * as its plaintext (sealed.bin: snapshot.bin sealed under that key, made by
 * tests/fuzz/origin_sealed.py, which also checks the bytes' layout
 * independently of the C code). */
#include "api/cluster.h"
#include "api/cluster_seal.h"
#include "storage/keyring.h"
#include "engtest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sr_engine *e;
static uint64_t n;
static sr_buf plain;

/* The fixed keys (origin_sealed.py has the same): the master 32 x 0x11, the
 * stream key of ("sim", data, epoch 1, no rotation) 32 x 0x22. */
static void keys(sr_key *m, sr_skey *k)
{
    uint8_t b[SR_KEY_LEN];
    memset(b, 0x11, sizeof b);
    sr_key_from_bytes(m, b);
    memset(k, 0, sizeof *k);
    k->id = sr_skey_id("sim", SR_KC_DATA, 1, 0);
    k->alg = SR_ALG_AES_256_GCM;
    k->cls = SR_KC_DATA;
    k->state = SR_SKEY_ACTIVE;
    k->epoch = 1;
    snprintf(k->op, sizeof k->op, "sim");
    memset(k->key, 0x22, sizeof k->key);
}

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
    /* stream keys: a KV entry, a sealed payload (opened: its plaintext is the payload) */
    sr_key m;
    sr_skey sk, u;
    keys(&m, &sk);
    (void)sr_skey_unwrap(&m, data, size, &u, err, sizeof err);
    sr_seal_ad ad = {0, "sim", "measurements", "fz", 1};
    if (sr_open_payload(&sk, &ad, data, size, &plain, err, sizeof err) == SR_OK) {
        data = plain.data;
        size = plain.len;
    }
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
