/* tests/fuzz/fuzz_mqtt.c -- libFuzzer target for the MQTT packet decoder.
 *
 * Any bytes are decoded as a client's stream three ways: from the start of a
 * connection (version 0: CONNECT first, then its level), as an established
 * 3.1.1 connection with a 1 KiB packet limit, and as an established 5.0
 * connection. For every packet: the result codes and fields must be
 * consistent, the iterators must agree with the counts, and packets that have
 * a server-side encoder (PUBLISH, PUBACK..PUBCOMP, 5.0 DISCONNECT) are
 * re-encoded, decoded again and must re-encode to the same bytes.
 * Feeding the same stream byte by byte must give the same packets.
 * Seeds: tests/fuzz/mqtt/. */
#include "codecs/mqtt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_props(const sr_mqtt_props *p)
{
    size_t pos = 0, k = 0;
    sr_mqtt_str a, b;
    while (sr_mqtt_user_next(p, &pos, &a, &b)) k++;
    if (k != p->n_user) abort();
}

static int same_publish(const sr_mqtt_pkt *a, const sr_mqtt_pkt *b)
{
    return a->publish.qos == b->publish.qos && a->publish.retain == b->publish.retain &&
           a->publish.dup == b->publish.dup && a->packet_id == b->packet_id &&
           a->publish.topic.len == b->publish.topic.len &&
           !memcmp(a->publish.topic.s, b->publish.topic.s, a->publish.topic.len) &&
           a->publish.payload.len == b->publish.payload.len &&
           (a->publish.payload.len == 0 ||
            !memcmp(a->publish.payload.data, b->publish.payload.data, a->publish.payload.len)) &&
           a->props.present == b->props.present && a->props.n_user == b->props.n_user;
}

/* Encode pkt (if there is an encoder for it); returns 1 if out was written. */
static int reencode(const sr_mqtt_pkt *p, int v, sr_buf *out)
{
    int rc;
    switch (p->type) {
    case SR_MQTT_PUBLISH: rc = sr_mqtt_encode_publish(out, v, &p->publish, p->packet_id, &p->props); break;
    case SR_MQTT_PUBACK:
    case SR_MQTT_PUBREC:
    case SR_MQTT_PUBREL:
    case SR_MQTT_PUBCOMP: rc = sr_mqtt_encode_ack(out, v, p->type, p->packet_id, p->reason, &p->props); break;
    case SR_MQTT_DISCONNECT:
        /* a server's DISCONNECT cannot carry the client's session expiry */
        if (v != SR_MQTT_V5 || (p->props.present & SR_MQTT_P_SESSION_EXPIRY)) return 0;
        rc = sr_mqtt_encode_disconnect(out, v, p->reason, &p->props);
        break;
    default: return 0;
    }
    if (rc == SR_ENOMEM) abort();
    if (rc != SR_OK) abort(); /* whatever the decoder accepts, the encoder can write */
    return 1;
}

static void round_trip(const sr_mqtt_pkt *p, int v)
{
    sr_buf e1, e2;
    sr_buf_init(&e1);
    sr_buf_init(&e2);
    if (reencode(p, v, &e1)) {
        sr_mqtt_pkt q;
        size_t used = 0;
        if (sr_mqtt_decode(e1.data, e1.len, v, 0, &q, &used) != SR_OK) abort();
        if (used != e1.len || q.type != p->type) abort();
        if (p->type == SR_MQTT_PUBLISH && !same_publish(p, &q)) abort();
        if (p->type != SR_MQTT_PUBLISH && (q.packet_id != p->packet_id || q.reason != p->reason)) abort();
        if (!reencode(&q, v, &e2)) abort();
        if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len)) abort();
    }
    sr_buf_release(&e1);
    sr_buf_release(&e2);
}

static void check_packet(const sr_mqtt_pkt *p, size_t used, size_t avail)
{
    if (used < 2 || used > avail || used != p->size) abort();
    check_props(&p->props);
    check_props(&p->connect.will_props);
    if (p->type == SR_MQTT_SUBSCRIBE || p->type == SR_MQTT_UNSUBSCRIBE) {
        size_t pos = 0, k = 0;
        sr_mqtt_sub s;
        while (sr_mqtt_sub_next(p, &pos, &s)) {
            if (!sr_mqtt_topic_filter_valid(s.match.s, s.match.len)) abort();
            /* a filter matches a topic spelled like itself when it has no wildcard */
            if (sr_mqtt_topic_name_valid(s.match.s, s.match.len) &&
                !sr_mqtt_topic_match(s.match.s, s.match.len, s.match.s, s.match.len))
                abort();
            k++;
        }
        if (k == 0 || k != p->n_subs) abort();
    }
    if (p->type == SR_MQTT_PUBLISH && p->publish.topic.len &&
        !sr_mqtt_topic_match("#", 1, p->publish.topic.s, p->publish.topic.len) && p->publish.topic.s[0] != '$')
        abort();
}

/* Decode the whole stream; records (type, size) of each packet in log. */
static size_t run(const uint8_t *d, size_t n, int version, uint32_t max, size_t step, uint32_t *log, size_t cap,
                  int check)
{
    size_t off = 0, have = step ? 0 : n, k = 0;
    int v = version;
    for (;;) {
        sr_mqtt_pkt p;
        size_t used = 0;
        int rc = sr_mqtt_decode(d + off, have - off, v, max, &p, &used);
        if (rc == SR_MQTT_MORE) {
            if (have == n) break;
            have += step;
            if (have > n) have = n;
            continue;
        }
        if (rc != SR_OK) {
            if (rc != SR_ECODEC && rc != SR_ETOOBIG) abort();
            if (p.err_reason < 0x80 || !p.err_msg) abort();
            if ((rc == SR_ETOOBIG) != (p.err_reason == SR_MQTT_RC_PACKET_TOO_LARGE)) abort();
            if (k < cap) log[k] = 0xFF000000u | p.err_reason;
            k++;
            break;
        }
        if (check) {
            check_packet(&p, used, have - off);
            if (p.type != SR_MQTT_CONNECT) round_trip(&p, v);
        }
        if (p.type == SR_MQTT_CONNECT) v = p.version;
        if (k < cap) log[k] = (uint32_t)p.type << 24 | (uint32_t)used;
        k++;
        off += used;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const struct { int v; uint32_t max; } modes[] = {{0, 0}, {4, 1024}, {5, 0}};
    for (size_t m = 0; m < 3; m++) {
        uint32_t a[64], b[64];
        size_t na = run(d, n, modes[m].v, modes[m].max, 0, a, 64, 1);
        if (n <= 4096) {
            size_t nb = run(d, n, modes[m].v, modes[m].max, 1, b, 64, 0);
            if (na != nb) abort();
            size_t c = na < 64 ? na : 64;
            if (memcmp(a, b, c * sizeof a[0])) abort();
        }
    }
    return 0;
}
