/*
 * tests/support/natsdump.c -- read the cluster's streams back (the cluster
 * tests, docs/cluster.md): every message of streams NAME_P000 ..
 * NAME_P<partitions-1>, one JSON line each: the stream, its sequence in the
 * stream, the partition, its Nats-Msg-Id and Suiro-* headers, and the event
 * (the payload decoded as `suiro replay` shows it). libnats, no mock: the
 * messages are fetched one by one by stream sequence (js_GetMsg), from the
 * first to the last the stream reports.
 *
 * usage: natsdump URLS NAME PARTITIONS
 * exit 0; 1 bad usage; 2 NATS unreachable or a stream missing or unreadable.
 */
#include "engine/records.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *hdr(natsMsg *m, const char *k)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, k, &v) == NATS_OK && v ? v : "";
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: natsdump URLS NAME PARTITIONS\n");
        return 1;
    }
    const char *urls[16];
    int nurl = 0;
    char *u = strdup(argv[1]);
    for (char *save = NULL, *t = strtok_r(u, ",", &save); t && nurl < 16; t = strtok_r(NULL, ",", &save)) urls[nurl++] = t;
    int parts = atoi(argv[3]);
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, urls, nurl);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 5000);
    if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) {
        fprintf(stderr, "natsdump: cannot connect: %s\n", natsStatus_GetText(s));
        return 2;
    }
    int rc = 0;
    sr_buf line;
    sr_buf_init(&line);
    for (int p = 0; p < parts && !rc; p++) {
        char name[96];
        snprintf(name, sizeof name, "%s_P%03d", argv[2], p);
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        if ((s = js_GetStreamInfo(&si, js, name, NULL, &je)) != NATS_OK) {
            fprintf(stderr, "natsdump: stream %s: %s (%d)\n", name, natsStatus_GetText(s), (int)je);
            rc = 2;
            break;
        }
        uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
        jsStreamInfo_Destroy(si);
        for (uint64_t q = first; msgs && q <= last; q++) {
            natsMsg *m = NULL;
            if ((s = js_GetMsg(&m, js, name, q, NULL, &je)) != NATS_OK) {
                if (s == NATS_NOT_FOUND) continue; /* none at this sequence (deletes are denied: should not be) */
                fprintf(stderr, "natsdump: %s seq %" PRIu64 ": %s (%d)\n", name, q, natsStatus_GetText(s), (int)je);
                rc = 2;
                break;
            }
            sr_rec r = SR_REC_INIT;
            sr_event_view v;
            sr_event_json_opts eo = {.times = 1};
            line.len = 0;
            int ok = sr_event_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &r, &v) == SR_OK &&
                     sr_event_view_json(&v, &eo, &line) == SR_OK;
            printf("{\"stream\":\"%s\",\"sseq\":%" PRIu64 ",\"subject\":\"%s\",\"partition\":%d,\"msgid\":\"%s\","
                   "\"node\":\"%s\",\"seq\":%s,\"operator\":\"%s\",\"kind\":\"%s\",\"event\":%.*s}\n",
                   name, q, natsMsg_GetSubject(m), p, hdr(m, "Nats-Msg-Id"), hdr(m, "Suiro-Node"), hdr(m, "Suiro-Seq")[0] ? hdr(m, "Suiro-Seq") : "0",
                   hdr(m, "Suiro-Operator"), hdr(m, "Suiro-Kind"), ok ? (int)line.len : 4,
                   ok ? (const char *)line.data : "null");
            sr_rec_close(&r);
            natsMsg_Destroy(m);
        }
    }
    sr_buf_release(&line);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    free(u);
    return rc;
}
