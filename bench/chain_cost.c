/*
 * bench/chain_cost.c -- the hash chain's SHA-256 work for an existing log,
 * timed (eb_chain_cost): bench/net_ingest.sh runs it on suiro's log after the
 * load, to report the chain's share of the network ingest.
 *
 * usage: chain_cost LOGDIR [--key-file F]
 * Prints {"bench":"chain_cost","blocks":..,"records":..,"plain_bytes":..,
 * "chain_s":..,"verify":"ok"|"FAILED"}; "ok" when sr_log_verify found every
 * block, checksum and chain link intact.
 */
#include "engbench.h"

#include "storage/crypto.h"
#include "storage/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--key-file"))) {
        fprintf(stderr, "usage: chain_cost LOGDIR [--key-file F]\n");
        return 2;
    }
    sr_key key;
    char err[256];
    if (argc == 4 && sr_key_load(argv[3], &key, err, sizeof err)) {
        fprintf(stderr, "chain_cost: %s\n", err);
        return 2;
    }
    eb_chain ch;
    int rc = eb_chain_cost(argv[1], argc == 4 ? &key : NULL, &ch);
    printf("{\"bench\":\"chain_cost\",\"blocks\":%" PRIu64 ",\"records\":%" PRIu64 ",\"plain_bytes\":%" PRIu64
           ",\"chain_s\":%.4f,\"verify\":\"%s\"}\n",
           ch.blocks, ch.records, ch.plain_bytes, ch.secs, !rc && ch.ok ? "ok" : "FAILED");
    return !rc && ch.ok ? 0 : 1;
}
