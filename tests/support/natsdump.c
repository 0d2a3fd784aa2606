/*
 * tests/support/natsdump.c -- read the cluster's streams back (the cluster
 * tests, docs/cluster.md): every message of streams NAME_P000 ..
 * NAME_P<partitions-1>, one JSON line each, as `suiro cluster dump` prints
 * them (the one reader and printer: api/cluster_read.c, sr_stream_each and
 * sr_stream_msg_json): the stream, its sequence in the stream, the
 * partition, its Nats-Msg-Id and Suiro-* headers, and the event (the
 * payload decoded as `suiro replay` shows it).
 *
 * natsdump --raw URLS STREAM prints any stream's messages as they are
 * stored (stream keys, docs/keys.md "Cluster: stream keys": the tests scan
 * the bytes a stream and the keys' bucket KV_<NAME>_KEYS hold): one JSON
 * line each, {"stream", "sseq", "subject", "key" (the Suiro-Key header, ""
 * when absent), "node", "seq", "operator", "kind" (the Suiro-* headers),
 * "hex" (the payload)}.
 *
 * natsdump --pub URLS SUBJECT FILE [HEADER=VALUE ...] publishes FILE's
 * bytes to SUBJECT through JetStream with those headers and waits for the
 * ack (the blob tests put a tampered chunk into <name>_BLOBS, docs/cluster.md
 * "Files across nodes"): prints the stream seq.
 *
 * usage: natsdump URLS NAME PARTITIONS | natsdump --raw URLS STREAM |
 *        natsdump --pub URLS SUBJECT FILE [HEADER=VALUE ...]
 * exit 0; 1 bad usage; 2 NATS unreachable or a stream missing or unreadable
 * (--pub: not stored).
 */
#include "api/cluster.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print(void *ctx, const sr_stream_msg *m)
{
    sr_buf *line = ctx;
    line->len = 0;
    int rc = sr_stream_msg_json(m, line);
    if (!rc) printf("%.*s\n", (int)line->len, (const char *)line->data);
    return rc;
}

static int raw(const char *urls, const char *stream)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    natsStatus s = (natsStatus)sr__nats_connect(urls, "natsdump", &nc);
    if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, &jo);
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    if (s == NATS_OK) s = js_GetStreamInfo(&si, js, stream, NULL, &je);
    if (s != NATS_OK) {
        fprintf(stderr, "natsdump: %s: %s (%d)\n", stream, natsStatus_GetText(s), (int)je);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        return 2;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    int rc = 0;
    for (uint64_t q = first; msgs && q <= last && !rc; q++) {
        natsMsg *m = NULL;
        if ((s = js_GetMsg(&m, js, stream, q, NULL, &je)) != NATS_OK) {
            if (s == NATS_NOT_FOUND) continue; /* deleted (a KV key's older revision) */
            fprintf(stderr, "natsdump: %s seq %" PRIu64 ": %s\n", stream, q, natsStatus_GetText(s));
            rc = 2;
            break;
        }
        static const char *const h[][2] = {{"key", "Suiro-Key"},     {"node", "Suiro-Node"}, {"seq", "Suiro-Seq"},
                                           {"operator", "Suiro-Operator"}, {"kind", "Suiro-Kind"}};
        printf("{\"stream\":\"%s\",\"sseq\":%" PRIu64 ",\"subject\":\"%s\"", stream, q, natsMsg_GetSubject(m));
        for (size_t i = 0; i < sizeof h / sizeof *h; i++) {
            const char *v = NULL; /* (ids of [A-Za-z0-9_-]: no JSON escaping needed; others as "?") */
            if (natsMsgHeader_Get(m, h[i][1], &v) != NATS_OK || !v) v = "";
            int plain = 1;
            for (const char *c = v; *c; c++)
                if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) plain = 0;
            printf(",\"%s\":\"%s\"", h[i][0], plain ? v : "?");
        }
        printf(",\"hex\":\"");
        const unsigned char *d = (const unsigned char *)natsMsg_GetData(m);
        for (int i = 0; i < natsMsg_GetDataLength(m); i++) printf("%02x", d[i]);
        printf("\"}\n");
        natsMsg_Destroy(m);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}

static int pub(const char *urls, const char *subject, const char *file, char **hdrs, int nh)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "natsdump: cannot read %s\n", file);
        return 1;
    }
    static unsigned char buf[2 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode je = 0;
    natsStatus s = (natsStatus)sr__nats_connect(urls, "natsdump", &nc);
    if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK) s = natsMsg_Create(&m, subject, NULL, (const char *)buf, (int)n);
    for (int i = 0; s == NATS_OK && i < nh; i++) {
        char *eq = strchr(hdrs[i], '=');
        if (!eq) {
            s = NATS_INVALID_ARG;
            break;
        }
        *eq = 0;
        s = natsMsgHeader_Set(m, hdrs[i], eq + 1);
    }
    if (s == NATS_OK) s = js_PublishMsg(&pa, js, m, NULL, &je);
    if (s == NATS_OK) printf("%" PRIu64 "\n", pa->Sequence);
    else fprintf(stderr, "natsdump: %s not stored: %s (%d)\n", subject, natsStatus_GetText(s), (int)je);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--raw")) return raw(argv[2], argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "--pub")) return pub(argv[2], argv[3], argv[4], argv + 5, argc - 5);
    if (argc != 4) {
        fprintf(stderr, "usage: natsdump URLS NAME PARTITIONS | natsdump --raw URLS STREAM\n");
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
