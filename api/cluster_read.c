/*
 * api/cluster_read.c -- reading a partition's stream back (issue #19,
 * docs/cluster.md "Replay, verify and audit from the stream"): every
 * message of <name>_P<NNN> from a stream sequence on, with its headers, and
 * the one JSON line a message is printed as (`suiro cluster dump`, the
 * tests' natsdump: one printer).
 *
 * For tools, not for the server: the calls block on NATS (js_GetMsg, one
 * message per request, from the first sequence the stream reports to its
 * last), so never call them on a libuv loop thread.
 *
 * INVARIANTS
 *  (1) Every sequence between the stream's first and last (as its info said
 *      when the walk began) is asked for once, in order; a sequence with no
 *      message (deletes are denied: should not be) is skipped.
 *  (2) A message's headers and payload are outside input: they are passed
 *      on as they are ("" when a header is absent); the printer escapes
 *      every string and prints a payload that does not decode as an Event
 *      as "event":null (the caller's verify reports it), never crashes.
 */
#include "api/cluster.h"
#include "api/cluster_seal.h"
#include "codecs/jsonlex.h"
#include "engine/records.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sr_stream_reader {
    natsConnection *nc;
    jsCtx *js;
    char name[40];
    /* stream keys (sr_stream_reader_set_master): sealed payloads are opened */
    sr_skeys *skeys;
    sr_skv kv;
    sr_skv_nats kvn;
    sr_buf open;
};

void *sr_stream_reader_js(sr_stream_reader *r) { return r->js; }

int sr_stream_reader_set_master(sr_stream_reader *r, const sr_key *master, uint32_t rotate_days)
{
    int rc = sr_skeys_new(master, rotate_days, &r->skeys);
    if (!rc) sr_skv_nats_init(&r->kvn, &r->kv, r->js, r->name, 1);
    return rc;
}

int sr_stream_reader_open(const char *urls, const char *name, sr_stream_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    sr_stream_reader *r = calloc(1, sizeof *r);
    if (!r) return SR_ENOMEM;
    snprintf(r->name, sizeof r->name, "%s", name && *name ? name : "SUIRO");
    natsStatus s = (natsStatus)sr__nats_connect(urls, "suiro-cluster-tool", &r->nc);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    if (s == NATS_OK) s = natsConnection_JetStream(&r->js, r->nc, &jo);
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot connect to NATS (%s): %s", urls, natsStatus_GetText(s));
        sr_stream_reader_close(r);
        return SR_EIO;
    }
    *out = r;
    return SR_OK;
}

void sr_stream_reader_close(sr_stream_reader *r)
{
    if (!r) return;
    sr_skv_nats_reset(&r->kvn);
    sr_skeys_free(r->skeys);
    sr_buf_release(&r->open);
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
    free(r);
}

static const char *hdr(natsMsg *m, const char *k)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, k, &v) == NATS_OK && v ? v : "";
}

int sr_stream_each(sr_stream_reader *r, uint32_t part, uint64_t from, sr_stream_msg_fn fn, void *ctx, char *err,
                   size_t errlen)
{
    char name[64];
    snprintf(name, sizeof name, "%s_P%03u", r->name, part);
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetStreamInfo(&si, r->js, name, NULL, &je);
    if (s != NATS_OK) {
        snprintf(err, errlen, "stream %s: %s (%d)", name, natsStatus_GetText(s), (int)je);
        return s == NATS_NOT_FOUND ? SR_ENOTFOUND : SR_EIO;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    if (from > first) first = from;
    int rc = SR_OK;
    for (uint64_t q = first; msgs && q <= last && !rc; q++) {
        natsMsg *m = NULL;
        if ((s = js_GetMsg(&m, r->js, name, q, NULL, &je)) != NATS_OK) {
            if (s == NATS_NOT_FOUND) continue; /* invariant 1 */
            snprintf(err, errlen, "%s seq %" PRIu64 ": %s (%d)", name, q, natsStatus_GetText(s), (int)je);
            return SR_EIO;
        }
        const char *sq = hdr(m, "Suiro-Seq");
        char *end = NULL;
        unsigned long long seq = strtoull(sq, &end, 10);
        sr_stream_msg sm = {
            .stream = name,
            .subject = natsMsg_GetSubject(m),
            .msgid = hdr(m, "Nats-Msg-Id"),
            .node = hdr(m, "Suiro-Node"),
            .op = hdr(m, "Suiro-Operator"),
            .kind = hdr(m, "Suiro-Kind"),
            .seq_hdr = sq,
            .seq = *sq && end && !*end ? (uint64_t)seq : 0,
            .partition = part,
            .sseq = q,
            .data = natsMsg_GetData(m),
            .len = (size_t)natsMsg_GetDataLength(m),
            .key = hdr(m, "Suiro-Key"),
        };
        if (sm.key[0] && r->skeys) { /* stream keys: opened, or passed on sealed (naming why) */
            sr_seal_ad ad = {part, strcmp(sm.op, "-") ? sm.op : "", sm.kind, sm.node, sm.seq};
            char why[320];
            int orc = sr_skeys_open(r->skeys, &r->kv, &ad, sm.data, sm.len, &r->open, why, sizeof why);
            if (orc == SR_OK) {
                sm.data = r->open.data;
                sm.len = r->open.len;
                sm.opened = 1;
            } else {
                sm.opened = -1;
                snprintf(sm.why, sizeof sm.why, "%s", why);
            }
        }
        rc = fn(ctx, &sm);
        natsMsg_Destroy(m);
    }
    return rc;
}

static int put_member(sr_buf *b, const char *name, const char *v)
{
    int rc = sr_buf_append(b, ",\"", 2);
    if (!rc) rc = sr_buf_append(b, name, strlen(name));
    if (!rc) rc = sr_buf_append(b, "\":", 2);
    if (!rc) rc = sr_json_put_string(b, v, strlen(v));
    return rc;
}

int sr_stream_msg_json(const sr_stream_msg *m, sr_buf *out)
{
    char num[96];
    int rc = sr_buf_append(out, "{\"stream\":", 10);
    if (!rc) rc = sr_json_put_string(out, m->stream, strlen(m->stream));
    snprintf(num, sizeof num, ",\"sseq\":%" PRIu64, m->sseq);
    if (!rc) rc = sr_buf_append(out, num, strlen(num));
    if (!rc) rc = put_member(out, "subject", m->subject ? m->subject : "");
    snprintf(num, sizeof num, ",\"partition\":%u", m->partition);
    if (!rc) rc = sr_buf_append(out, num, strlen(num));
    if (!rc) rc = put_member(out, "msgid", m->msgid);
    if (!rc) rc = put_member(out, "node", m->node);
    snprintf(num, sizeof num, ",\"seq\":%" PRIu64, m->seq);
    if (!rc) rc = sr_buf_append(out, num, strlen(num));
    if (!rc) rc = put_member(out, "operator", m->op);
    if (!rc) rc = put_member(out, "kind", m->kind);
    if (!rc && m->key && m->key[0]) rc = put_member(out, "key", m->key); /* sealed (stream keys) */
    if (!rc && m->opened < 0) rc = put_member(out, "error", m->why);     /* and not opened: why */
    if (!rc) rc = sr_buf_append(out, ",\"event\":", 9);
    if (rc) return rc;
    /* the payload as `suiro replay` shows an event, or null (invariant 2) */
    sr_rec r = SR_REC_INIT;
    sr_event_view v;
    sr_event_json_opts eo = {.times = 1};
    size_t mark = out->len;
    if (sr_event_decode(m->data, m->len, &r, &v) != SR_OK || sr_event_view_json(&v, &eo, out) != SR_OK) {
        out->len = mark;
        rc = sr_buf_append(out, "null", 4);
    }
    sr_rec_close(&r);
    if (!rc) rc = sr_buf_append(out, "}", 1);
    return rc;
}
