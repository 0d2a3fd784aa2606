/*
 * tests/support/natsdump.c -- read the cluster's streams back (the cluster
 * tests, docs/cluster.md): every message of streams NAME_P000 ..
 * NAME_P<partitions-1>, one JSON line each, as `suiro cluster dump` prints
 * them (the one reader and printer: api/cluster_read.c, sr_stream_each and
 * sr_stream_msg_json): the stream, its sequence in the stream, the
 * partition, its Nats-Msg-Id and Suiro-* headers, and the event (the
 * payload decoded as `suiro replay` shows it).
 *
 * usage: natsdump URLS NAME PARTITIONS
 * exit 0; 1 bad usage; 2 NATS unreachable or a stream missing or unreadable.
 */
#include "api/cluster.h"

#include <stdio.h>
#include <stdlib.h>

static int print(void *ctx, const sr_stream_msg *m)
{
    sr_buf *line = ctx;
    line->len = 0;
    int rc = sr_stream_msg_json(m, line);
    if (!rc) printf("%.*s\n", (int)line->len, (const char *)line->data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: natsdump URLS NAME PARTITIONS\n");
        return 1;
    }
    int parts = atoi(argv[3]);
    char err[256];
    sr_stream_reader *r = NULL;
    if (sr_stream_reader_open(argv[1], argv[2], &r, err, sizeof err)) {
        fprintf(stderr, "natsdump: %s\n", err);
        return 2;
    }
    sr_buf line;
    sr_buf_init(&line);
    int rc = 0;
    for (int p = 0; p < parts && !rc; p++)
        if (sr_stream_each(r, (uint32_t)p, 0, print, &line, err, sizeof err)) {
            fprintf(stderr, "natsdump: %s\n", err);
            rc = 2;
        }
    sr_buf_release(&line);
    sr_stream_reader_close(r);
    return rc;
}
