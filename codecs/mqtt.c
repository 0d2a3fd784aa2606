/*
 * codecs/mqtt.c -- MQTT 3.1.1 / 5.0 packet codec (see mqtt.h, docs/mqtt.md).
 *
 * Written from the OASIS specifications (MQTT 3.1.1, MQTT 5.0); section
 * numbers below refer to the 5.0 text unless marked.
 *
 * INVARIANTS
 *  (1) The decoder never reads past buf[len) nor past the packet's declared
 *      end: every read goes through an `rd` cursor bounded by the packet body.
 *  (2) SR_OK is returned only when every byte of the packet was consumed by
 *      its grammar (no trailing bytes are ignored, no property skipped).
 *  (3) An encoder either appends exactly one whole packet or leaves out
 *      unchanged: sizes are measured first (a counting pass), then written.
 */
#include "codecs/mqtt.h"

#include "codecs/csv.h" /* sr__csv_utf8_seq */

#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Property table (5.0 section 2.2.2.2)                                      */

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

/* Where a property may appear. */
enum {
    C_CONNECT = 1 << 0,
    C_WILL = 1 << 1,
    C_PUBLISH = 1 << 2,
    C_PUBACK = 1 << 3, /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    C_SUBSCRIBE = 1 << 4,
    C_UNSUBSCRIBE = 1 << 5,
    C_DISCONNECT = 1 << 6,
    C_AUTH = 1 << 7,
    C_CONNACK = 1 << 8,
    C_SUBACK = 1 << 9, /* SUBACK, UNSUBACK */
    C_ALL = 0x3ff,
};

typedef struct pdef {
    uint8_t type;
    uint16_t ctx;
    uint32_t bit;
    size_t off; /* of the value in sr_mqtt_props */
} pdef;

#define P(id, t, c, b, f) [id] = {t, c, b, offsetof(sr_mqtt_props, f)}
static const pdef PDEFS[0x2B] = {
    P(0x01, PT_BYTE, C_PUBLISH | C_WILL, SR_MQTT_P_PAYLOAD_FORMAT, payload_format),
    P(0x02, PT_U32, C_PUBLISH | C_WILL, SR_MQTT_P_MESSAGE_EXPIRY, message_expiry),
    P(0x03, PT_STR, C_PUBLISH | C_WILL, SR_MQTT_P_CONTENT_TYPE, content_type),
    P(0x08, PT_STR, C_PUBLISH | C_WILL, SR_MQTT_P_RESPONSE_TOPIC, response_topic),
    P(0x09, PT_BIN, C_PUBLISH | C_WILL, SR_MQTT_P_CORRELATION_DATA, correlation_data),
    P(0x0B, PT_VARINT, C_PUBLISH | C_SUBSCRIBE, SR_MQTT_P_SUBSCRIPTION_ID, subscription_id),
    P(0x11, PT_U32, C_CONNECT | C_CONNACK | C_DISCONNECT, SR_MQTT_P_SESSION_EXPIRY, session_expiry),
    P(0x12, PT_STR, C_CONNACK, SR_MQTT_P_ASSIGNED_CLIENT_ID, assigned_client_id),
    P(0x13, PT_U16, C_CONNACK, SR_MQTT_P_SERVER_KEEP_ALIVE, server_keep_alive),
    P(0x15, PT_STR, C_CONNECT | C_CONNACK | C_AUTH, SR_MQTT_P_AUTH_METHOD, auth_method),
    P(0x16, PT_BIN, C_CONNECT | C_CONNACK | C_AUTH, SR_MQTT_P_AUTH_DATA, auth_data),
    P(0x17, PT_BYTE, C_CONNECT, SR_MQTT_P_REQUEST_PROBLEM, request_problem),
    P(0x18, PT_U32, C_WILL, SR_MQTT_P_WILL_DELAY, will_delay),
    P(0x19, PT_BYTE, C_CONNECT, SR_MQTT_P_REQUEST_RESPONSE, request_response),
    P(0x1A, PT_STR, C_CONNACK, SR_MQTT_P_RESPONSE_INFO, response_info),
    P(0x1C, PT_STR, C_CONNACK | C_DISCONNECT, SR_MQTT_P_SERVER_REFERENCE, server_reference),
    P(0x1F, PT_STR, C_CONNACK | C_PUBACK | C_SUBACK | C_DISCONNECT | C_AUTH, SR_MQTT_P_REASON_STRING,
      reason_string),
    P(0x21, PT_U16, C_CONNECT | C_CONNACK, SR_MQTT_P_RECEIVE_MAX, receive_max),
    P(0x22, PT_U16, C_CONNECT | C_CONNACK, SR_MQTT_P_TOPIC_ALIAS_MAX, topic_alias_max),
    P(0x23, PT_U16, C_PUBLISH, SR_MQTT_P_TOPIC_ALIAS, topic_alias),
    P(0x24, PT_BYTE, C_CONNACK, SR_MQTT_P_MAX_QOS, max_qos),
    P(0x25, PT_BYTE, C_CONNACK, SR_MQTT_P_RETAIN_AVAILABLE, retain_available),
    [0x26] = {PT_PAIR, C_ALL, 0, 0},
    P(0x27, PT_U32, C_CONNECT | C_CONNACK, SR_MQTT_P_MAX_PACKET_SIZE, max_packet_size),
    P(0x28, PT_BYTE, C_CONNACK, SR_MQTT_P_WILDCARD_SUB, wildcard_sub),
    P(0x29, PT_BYTE, C_CONNACK, SR_MQTT_P_SUB_ID_AVAILABLE, sub_id_available),
    P(0x2A, PT_BYTE, C_CONNACK, SR_MQTT_P_SHARED_SUB, shared_sub),
};
#undef P
enum { N_PDEFS = (int)(sizeof PDEFS / sizeof PDEFS[0]) };

/* ------------------------------------------------------------------------ */
/* Topics                                                                    */

int sr_mqtt_topic_name_valid(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || s[i] == '#') return 0;
    return 1;
}

int sr_mqtt_topic_filter_valid(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        int start = i == 0 || s[i - 1] == '/';
        if (s[i] == '+' && (!start || (i + 1 < len && s[i + 1] != '/'))) return 0;
        if (s[i] == '#' && (!start || i + 1 != len)) return 0;
    }
    return 1;
}

int sr_mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    if (!filter || !topic) return 0;
    /* 4.7.2: "$..." topics are not matched by a filter starting with a wildcard */
    if (tlen > 0 && topic[0] == '$' && flen > 0 && (filter[0] == '+' || filter[0] == '#')) return 0;
    size_t f = 0, t = 0;
    for (;;) {
        /* here f and t are each at the start of a level */
        if (f < flen && filter[f] == '#') return 1;
        if (f < flen && filter[f] == '+' && (f + 1 == flen || filter[f + 1] == '/')) {
            f++;
            while (t < tlen && topic[t] != '/') t++;
        } else {
            while (f < flen && t < tlen && filter[f] != '/' && topic[t] != '/') {
                if (filter[f] != topic[t]) return 0;
                f++, t++;
            }
            if ((f < flen && filter[f] != '/') || (t < tlen && topic[t] != '/')) return 0;
        }
        int fend = f == flen, tend = t == tlen;
        if (fend && tend) return 1;
        if (tend) return flen - f == 2 && filter[f + 1] == '#'; /* "a/#" matches "a" */
        if (fend) return 0;
        f++, t++; /* both at '/' */
    }
}

/* 5.0 4.8.2: "$share/{ShareName}/{filter}". Returns 1 and splits it, 0 if s
 * is not a shared subscription, -1 if it is one but malformed. */
static int split_share(const char *s, size_t n, sr_mqtt_str *name, sr_mqtt_str *rest)
{
    static const char pre[] = "$share/";
    const size_t pl = sizeof pre - 1;
    if (n < pl || memcmp(s, pre, pl) != 0) return 0;
    size_t i = pl;
    while (i < n && s[i] != '/') {
        if (s[i] == '+' || s[i] == '#') return -1;
        i++;
    }
    if (i == pl || i >= n - 1) return -1; /* empty share name, or no filter after it */
    name->s = s + pl;
    name->len = i - pl;
    rest->s = s + i + 1;
    rest->len = n - i - 1;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */

typedef struct rd {
    const uint8_t *p;
    size_t n, i;
    sr_mqtt_pkt *pkt;
} rd;

static int fail(sr_mqtt_pkt *pkt, uint8_t reason, const char *msg)
{
    pkt->err_reason = reason;
    pkt->err_msg = msg;
    return reason == SR_MQTT_RC_PACKET_TOO_LARGE ? SR_ETOOBIG : SR_ECODEC;
}

#define TRUNC(r) fail((r)->pkt, SR_MQTT_RC_MALFORMED, "packet ends inside a field")

static int rd_u8(rd *r, uint8_t *v)
{
    if (r->n - r->i < 1) return TRUNC(r);
    *v = r->p[r->i++];
    return SR_OK;
}

static int rd_u16(rd *r, uint16_t *v)
{
    if (r->n - r->i < 2) return TRUNC(r);
    *v = (uint16_t)((r->p[r->i] << 8) | r->p[r->i + 1]);
    r->i += 2;
    return SR_OK;
}

static int rd_u32(rd *r, uint32_t *v)
{
    if (r->n - r->i < 4) return TRUNC(r);
    const uint8_t *q = r->p + r->i;
    *v = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
    r->i += 4;
    return SR_OK;
}

/* 1.5.5: at most 4 bytes, minimal encoding. */
static int rd_varint(rd *r, uint32_t *v)
{
    uint32_t val = 0;
    for (int k = 0; k < 4; k++) {
        if (r->i >= r->n) return TRUNC(r);
        uint8_t c = r->p[r->i++];
        val |= (uint32_t)(c & 0x7f) << (7 * k);
        if (!(c & 0x80)) {
            if (k > 0 && c == 0)
                return fail(r->pkt, SR_MQTT_RC_MALFORMED, "variable byte integer not minimally encoded");
            *v = val;
            return SR_OK;
        }
    }
    return fail(r->pkt, SR_MQTT_RC_MALFORMED, "variable byte integer longer than 4 bytes");
}

static int rd_bin(rd *r, sr_slice *out)
{
    uint16_t len;
    int rc = rd_u16(r, &len);
    if (rc) return rc;
    if (r->n - r->i < len) return TRUNC(r);
    out->data = r->p + r->i;
    out->len = len;
    r->i += len;
    return SR_OK;
}

/* 1.5.4: well-formed UTF-8, no U+0000, no surrogates (sr__csv_utf8_seq
 * refuses overlong forms, surrogates and code points past U+10FFFF). */
static int utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] == 0) return 0;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = sr__csv_utf8_seq(p + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

static int rd_str(rd *r, sr_mqtt_str *out)
{
    sr_slice b;
    int rc = rd_bin(r, &b);
    if (rc) return rc;
    if (!utf8_ok(b.data, b.len))
        return fail(r->pkt, SR_MQTT_RC_MALFORMED, "string is not valid UTF-8 (or holds U+0000)");
    out->s = b.data;
    out->len = b.len;
    return SR_OK;
}

static int rd_props(rd *r, unsigned ctx, sr_mqtt_props *out)
{
    uint32_t plen;
    int rc = rd_varint(r, &plen);
    if (rc) return rc;
    if (plen > r->n - r->i) return fail(r->pkt, SR_MQTT_RC_MALFORMED, "property length past end of packet");
    rd s = {r->p + r->i, plen, 0, r->pkt};
    out->raw.data = s.p;
    out->raw.len = plen;
    r->i += plen;
    while (s.i < s.n) {
        uint32_t id;
        if ((rc = rd_varint(&s, &id))) return rc;
        if (id >= N_PDEFS || PDEFS[id].type == PT_NONE)
            return fail(r->pkt, SR_MQTT_RC_MALFORMED, "unknown property identifier");
        const pdef *d = &PDEFS[id];
        if (!(d->ctx & ctx)) return fail(r->pkt, SR_MQTT_RC_MALFORMED, "property not allowed in this packet");
        if (d->type == PT_PAIR) {
            sr_mqtt_str k, v;
            if ((rc = rd_str(&s, &k)) || (rc = rd_str(&s, &v))) return rc;
            out->n_user++;
            continue;
        }
        if (out->present & d->bit) return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "property given twice");
        void *f = (char *)out + d->off;
        uint8_t b = 0;
        uint16_t h = 0;
        uint32_t w = 0;
        switch (d->type) {
        case PT_BYTE:
            if ((rc = rd_u8(&s, &b))) return rc;
            if (b > 1) return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "property value must be 0 or 1");
            *(uint8_t *)f = b;
            break;
        case PT_U16:
            if ((rc = rd_u16(&s, &h))) return rc;
            if (h == 0 && id == 0x21)
                return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "receive maximum of 0");
            if (h == 0 && id == 0x23) return fail(r->pkt, SR_MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias of 0");
            *(uint16_t *)f = h;
            break;
        case PT_U32:
            if ((rc = rd_u32(&s, &w))) return rc;
            if (w == 0 && id == 0x27)
                return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "maximum packet size of 0");
            *(uint32_t *)f = w;
            break;
        case PT_VARINT:
            if ((rc = rd_varint(&s, &w))) return rc;
            if (w == 0) return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "subscription identifier of 0");
            *(uint32_t *)f = w;
            break;
        case PT_STR:
            if ((rc = rd_str(&s, (sr_mqtt_str *)f))) return rc;
            break;
        case PT_BIN:
            if ((rc = rd_bin(&s, (sr_slice *)f))) return rc;
            break;
        }
        out->present |= d->bit;
    }
    if ((out->present & SR_MQTT_P_AUTH_DATA) && !(out->present & SR_MQTT_P_AUTH_METHOD))
        return fail(r->pkt, SR_MQTT_RC_PROTOCOL_ERROR, "authentication data without authentication method");
    return SR_OK;
}

static int end_of(rd *r)
{
    if (r->i != r->n) return fail(r->pkt, SR_MQTT_RC_MALFORMED, "unexpected bytes at the end of the packet");
    return SR_OK;
}

/* 3.1 CONNECT */
static int dec_connect(rd *r)
{
    sr_mqtt_pkt *pkt = r->pkt;
    sr_mqtt_str name;
    uint8_t level, fl;
    int rc;
    if ((rc = rd_str(r, &name))) return rc;
    if (name.len != 4 || memcmp(name.s, "MQTT", 4) != 0)
        return fail(pkt, SR_MQTT_RC_UNSUPPORTED_VERSION, "protocol name is not MQTT (3.1 and older are not supported)");
    if ((rc = rd_u8(r, &level))) return rc;
    pkt->version = level;
    if (level != SR_MQTT_V311 && level != SR_MQTT_V5)
        return fail(pkt, SR_MQTT_RC_UNSUPPORTED_VERSION, "protocol level is not 4 (3.1.1) or 5 (5.0)");
    if ((rc = rd_u8(r, &fl))) return rc;
    if (fl & 0x01) return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved CONNECT flag is set");
    pkt->connect.clean_start = (fl >> 1) & 1;
    pkt->connect.will = (fl >> 2) & 1;
    pkt->connect.will_qos = (fl >> 3) & 3;
    pkt->connect.will_retain = (fl >> 5) & 1;
    pkt->connect.has_password = (fl >> 6) & 1;
    pkt->connect.has_username = (fl >> 7) & 1;
    if (!pkt->connect.will && (pkt->connect.will_qos || pkt->connect.will_retain))
        return fail(pkt, SR_MQTT_RC_MALFORMED, "will QoS or will retain set without the will flag");
    if (pkt->connect.will_qos == 3) return fail(pkt, SR_MQTT_RC_MALFORMED, "will QoS 3");
    if (level == SR_MQTT_V311 && pkt->connect.has_password && !pkt->connect.has_username)
        return fail(pkt, SR_MQTT_RC_MALFORMED, "password without user name (3.1.1)");
    if ((rc = rd_u16(r, &pkt->connect.keep_alive))) return rc;
    if (level == SR_MQTT_V5 && (rc = rd_props(r, C_CONNECT, &pkt->props))) return rc;
    if ((rc = rd_str(r, &pkt->connect.client_id))) return rc;
    if (level == SR_MQTT_V311 && pkt->connect.client_id.len == 0 && !pkt->connect.clean_start)
        return fail(pkt, SR_MQTT_RC_CLIENT_ID_INVALID, "empty client identifier without clean session");
    if (pkt->connect.will) {
        if (level == SR_MQTT_V5 && (rc = rd_props(r, C_WILL, &pkt->connect.will_props))) return rc;
        if ((rc = rd_str(r, &pkt->connect.will_topic))) return rc;
        if (!sr_mqtt_topic_name_valid(pkt->connect.will_topic.s, pkt->connect.will_topic.len))
            return fail(pkt, SR_MQTT_RC_TOPIC_NAME_INVALID, "will topic is empty or has a wildcard");
        if ((rc = rd_bin(r, &pkt->connect.will_payload))) return rc;
    }
    if (pkt->connect.has_username && (rc = rd_str(r, &pkt->connect.username))) return rc;
    if (pkt->connect.has_password && (rc = rd_bin(r, &pkt->connect.password))) return rc;
    return end_of(r);
}

/* 3.3 PUBLISH */
static int dec_publish(rd *r, int v)
{
    sr_mqtt_pkt *pkt = r->pkt;
    sr_mqtt_publish *m = &pkt->publish;
    int rc;
    m->dup = (pkt->flags >> 3) & 1;
    m->qos = (pkt->flags >> 1) & 3;
    m->retain = pkt->flags & 1;
    if ((rc = rd_str(r, &m->topic))) return rc;
    if (m->qos > 0) {
        if ((rc = rd_u16(r, &pkt->packet_id))) return rc;
        if (pkt->packet_id == 0) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    }
    if (v == SR_MQTT_V5) {
        if ((rc = rd_props(r, C_PUBLISH, &pkt->props))) return rc;
        if (pkt->props.present & SR_MQTT_P_SUBSCRIPTION_ID)
            return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "subscription identifier in a PUBLISH from a client");
    }
    if (m->topic.len == 0) {
        if (!(pkt->props.present & SR_MQTT_P_TOPIC_ALIAS))
            return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "empty topic name without a topic alias");
    } else if (!sr_mqtt_topic_name_valid(m->topic.s, m->topic.len)) {
        return fail(pkt, SR_MQTT_RC_TOPIC_NAME_INVALID, "topic name has a wildcard");
    }
    m->payload.data = r->p + r->i;
    m->payload.len = r->n - r->i;
    r->i = r->n;
    return SR_OK;
}

static int ack_reason_ok(uint8_t type, uint8_t rc)
{
    if (type == SR_MQTT_PUBREL || type == SR_MQTT_PUBCOMP) return rc == 0x00 || rc == 0x92;
    switch (rc) {
    case 0x00: case 0x10: case 0x80: case 0x83: case 0x87: case 0x90: case 0x91: case 0x97: case 0x99:
        return 1;
    }
    return 0;
}

/* 3.4 - 3.7 PUBACK, PUBREC, PUBREL, PUBCOMP */
static int dec_ack(rd *r, int v)
{
    sr_mqtt_pkt *pkt = r->pkt;
    int rc;
    if (v == SR_MQTT_V311 && r->n != 2) return fail(pkt, SR_MQTT_RC_MALFORMED, "acknowledgement length is not 2");
    if ((rc = rd_u16(r, &pkt->packet_id))) return rc;
    if (pkt->packet_id == 0) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    if (r->i < r->n) {
        if ((rc = rd_u8(r, &pkt->reason))) return rc;
        if (!ack_reason_ok(pkt->type, pkt->reason))
            return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "reason code not allowed in this acknowledgement");
        if (r->i < r->n && (rc = rd_props(r, C_PUBACK, &pkt->props))) return rc;
    }
    return end_of(r);
}

/* Parse one SUBSCRIBE / UNSUBSCRIBE entry at r (validated or not). Returns
 * SR_OK or an error code (only when validating a packet). */
static int rd_sub(rd *r, int v, int with_options, sr_mqtt_sub *e)
{
    sr_mqtt_pkt *pkt = r->pkt;
    int rc;
    memset(e, 0, sizeof *e);
    if ((rc = rd_str(r, &e->filter))) return rc;
    e->match = e->filter;
    int shared = 0;
    if (v == SR_MQTT_V5) {
        shared = split_share(e->filter.s, e->filter.len, &e->share_name, &e->match);
        if (shared < 0) return fail(pkt, SR_MQTT_RC_TOPIC_FILTER_INVALID, "malformed shared subscription");
    }
    if (!sr_mqtt_topic_filter_valid(e->match.s, e->match.len))
        return fail(pkt, SR_MQTT_RC_TOPIC_FILTER_INVALID, "topic filter is empty or misuses a wildcard");
    if (!with_options) return SR_OK;
    if ((rc = rd_u8(r, &e->options))) return rc;
    uint8_t o = e->options;
    e->qos = o & 3;
    if (e->qos == 3) return fail(pkt, SR_MQTT_RC_MALFORMED, "subscription QoS 3");
    if (v == SR_MQTT_V311) {
        if (o & 0xfc) return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved subscription option bits set");
        return SR_OK;
    }
    if (o & 0xc0) return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved subscription option bits set");
    e->no_local = (o >> 2) & 1;
    e->retain_as_published = (o >> 3) & 1;
    e->retain_handling = (o >> 4) & 3;
    if (e->retain_handling == 3) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "retain handling 3");
    if (shared && e->no_local) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "no local on a shared subscription");
    return SR_OK;
}

/* 3.8 SUBSCRIBE, 3.10 UNSUBSCRIBE */
static int dec_subs(rd *r, int v)
{
    sr_mqtt_pkt *pkt = r->pkt;
    int rc;
    int sub = pkt->type == SR_MQTT_SUBSCRIBE;
    if ((rc = rd_u16(r, &pkt->packet_id))) return rc;
    if (pkt->packet_id == 0) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    if (v == SR_MQTT_V5 && (rc = rd_props(r, sub ? C_SUBSCRIBE : C_UNSUBSCRIBE, &pkt->props))) return rc;
    pkt->subs_raw.data = r->p + r->i;
    pkt->subs_raw.len = r->n - r->i;
    while (r->i < r->n) {
        sr_mqtt_sub e;
        if ((rc = rd_sub(r, v, sub, &e))) return rc;
        pkt->n_subs++;
    }
    if (pkt->n_subs == 0) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "no topic filter in the packet");
    return SR_OK;
}

static int disconnect_reason_ok(uint8_t rc)
{
    switch (rc) {
    case 0x00: case 0x04: case 0x80: case 0x81: case 0x82: case 0x83: case 0x90: case 0x93: case 0x94:
    case 0x95: case 0x96: case 0x97: case 0x98: case 0x99:
        return 1;
    }
    return 0;
}

/* 3.14 DISCONNECT, 3.15 AUTH */
static int dec_disconnect_auth(rd *r, int v)
{
    sr_mqtt_pkt *pkt = r->pkt;
    int rc;
    int auth = pkt->type == SR_MQTT_AUTH;
    if (v == SR_MQTT_V311) return end_of(r);
    if (r->n == 0) {
        if (auth) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "AUTH without authentication method");
        return SR_OK;
    }
    if ((rc = rd_u8(r, &pkt->reason))) return rc;
    if (auth ? !(pkt->reason == 0x00 || pkt->reason == 0x18 || pkt->reason == 0x19)
             : !disconnect_reason_ok(pkt->reason))
        return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "reason code not allowed in this packet");
    if (auth || r->i < r->n) {
        if ((rc = rd_props(r, auth ? C_AUTH : C_DISCONNECT, &pkt->props))) return rc;
    }
    if (auth && !(pkt->props.present & SR_MQTT_P_AUTH_METHOD))
        return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "AUTH without authentication method");
    return end_of(r);
}

/* Checks that need only the first byte. */
static int check_first(sr_mqtt_pkt *pkt, int version)
{
    static const int8_t want[16] = {
        [SR_MQTT_CONNECT] = 0, [SR_MQTT_PUBLISH] = -1, [SR_MQTT_PUBACK] = 0, [SR_MQTT_PUBREC] = 0,
        [SR_MQTT_PUBREL] = 2, [SR_MQTT_PUBCOMP] = 0, [SR_MQTT_SUBSCRIBE] = 2, [SR_MQTT_UNSUBSCRIBE] = 2,
        [SR_MQTT_PINGREQ] = 0, [SR_MQTT_DISCONNECT] = 0, [SR_MQTT_AUTH] = 0,
    };
    uint8_t t = pkt->type, fl = pkt->flags;
    if (t == 0) return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved packet type 0");
    if (version == 0 && t != SR_MQTT_CONNECT)
        return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
    if (version != 0 && t == SR_MQTT_CONNECT) return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
    if (t == SR_MQTT_AUTH && version == SR_MQTT_V311)
        return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved packet type 15 (3.1.1)");
    if (t == SR_MQTT_CONNACK || t == SR_MQTT_SUBACK || t == SR_MQTT_UNSUBACK || t == SR_MQTT_PINGRESP)
        return fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "server-to-client packet type sent by a client");
    if (t == SR_MQTT_PUBLISH) {
        uint8_t qos = (fl >> 1) & 3;
        if (qos == 3) return fail(pkt, SR_MQTT_RC_MALFORMED, "PUBLISH with QoS 3");
        if (qos == 0 && (fl & 8)) return fail(pkt, SR_MQTT_RC_MALFORMED, "PUBLISH with DUP set and QoS 0");
    } else if (fl != want[t]) {
        return fail(pkt, SR_MQTT_RC_MALFORMED, "reserved fixed header flags are wrong");
    }
    return SR_OK;
}

int sr_mqtt_decode(const uint8_t *buf, size_t len, int version, uint32_t max_packet_size,
                   sr_mqtt_pkt *pkt, size_t *consumed)
{
    if (!pkt || !consumed || (!buf && len)) return SR_EINVAL;
    if (version != 0 && version != SR_MQTT_V311 && version != SR_MQTT_V5) return SR_EINVAL;
    memset(pkt, 0, sizeof *pkt);
    if (len == 0) return SR_MQTT_MORE;
    pkt->type = buf[0] >> 4;
    pkt->flags = buf[0] & 0x0f;
    pkt->version = (uint8_t)version;
    int rc = check_first(pkt, version);
    if (rc) return rc;

    /* Remaining length (2.1.4). Its size check runs on every partial value,
     * so a declared length over the limit is refused before the body. */
    uint64_t limit = max_packet_size ? max_packet_size : (uint64_t)SR_MQTT_MAX_REMAINING + 5;
    uint32_t rem = 0, mult = 1;
    size_t i = 1;
    for (;;) {
        /* Lower bound of the whole packet before reading length byte i: after
         * a continuation byte, a later byte must add at least `mult` (the
         * last byte of a minimal encoding is not 0). Checked whether or not
         * byte i has arrived, so the answer does not depend on how the
         * stream was split. */
        if (1 + (uint64_t)i + rem + (i > 1 ? mult : 0) > limit)
            return fail(pkt, SR_MQTT_RC_PACKET_TOO_LARGE, "declared packet size over the maximum");
        if (i >= len) return SR_MQTT_MORE;
        uint8_t c = buf[i];
        rem += (uint32_t)(c & 0x7f) * mult;
        if (!(c & 0x80)) {
            if (i > 1 && c == 0) return fail(pkt, SR_MQTT_RC_MALFORMED, "remaining length not minimally encoded");
            break;
        }
        if (i == 4) return fail(pkt, SR_MQTT_RC_MALFORMED, "remaining length longer than 4 bytes");
        mult *= 128;
        i++;
    }
    size_t hdr = i + 1;
    uint64_t total = (uint64_t)hdr + rem;
    if (total > limit) return fail(pkt, SR_MQTT_RC_PACKET_TOO_LARGE, "packet size over the maximum");
    if (len < total) return SR_MQTT_MORE;
    pkt->size = (size_t)total;

    rd r = {buf + hdr, rem, 0, pkt};
    int v = version;
    switch (pkt->type) {
    case SR_MQTT_CONNECT: rc = dec_connect(&r); break;
    case SR_MQTT_PUBLISH: rc = dec_publish(&r, v); break;
    case SR_MQTT_PUBACK:
    case SR_MQTT_PUBREC:
    case SR_MQTT_PUBREL:
    case SR_MQTT_PUBCOMP: rc = dec_ack(&r, v); break;
    case SR_MQTT_SUBSCRIBE:
    case SR_MQTT_UNSUBSCRIBE: rc = dec_subs(&r, v); break;
    case SR_MQTT_PINGREQ: rc = end_of(&r); break;
    case SR_MQTT_DISCONNECT:
    case SR_MQTT_AUTH: rc = dec_disconnect_auth(&r, v); break;
    default: rc = fail(pkt, SR_MQTT_RC_PROTOCOL_ERROR, "unexpected packet type"); break;
    }
    if (rc) return rc;
    pkt->err_reason = 0;
    pkt->err_msg = NULL;
    *consumed = pkt->size;
    return SR_OK;
}

int sr_mqtt_sub_next(const sr_mqtt_pkt *pkt, size_t *pos, sr_mqtt_sub *out)
{
    if (!pkt || !pos || !out) return 0;
    if (pkt->type != SR_MQTT_SUBSCRIBE && pkt->type != SR_MQTT_UNSUBSCRIBE) return 0;
    if (*pos >= pkt->subs_raw.len) return 0;
    sr_mqtt_pkt scratch; /* errors cannot happen: the packet was validated */
    rd r = {pkt->subs_raw.data, pkt->subs_raw.len, *pos, &scratch};
    if (rd_sub(&r, pkt->version, pkt->type == SR_MQTT_SUBSCRIBE, out) != SR_OK) return 0;
    *pos = r.i;
    return 1;
}

int sr_mqtt_user_next(const sr_mqtt_props *props, size_t *pos, sr_mqtt_str *key, sr_mqtt_str *val)
{
    if (!props || !pos || !key || !val) return 0;
    if (props->user) {
        if (*pos >= props->n_user) return 0;
        *key = props->user[2 * *pos];
        *val = props->user[2 * *pos + 1];
        (*pos)++;
        return 1;
    }
    sr_mqtt_pkt scratch;
    rd r = {props->raw.data, props->raw.len, *pos, &scratch};
    while (r.i < r.n) {
        uint32_t id;
        if (rd_varint(&r, &id) || id >= N_PDEFS || PDEFS[id].type == PT_NONE) return 0;
        sr_mqtt_str s;
        sr_slice b;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        int rc = SR_OK;
        switch (PDEFS[id].type) {
        case PT_PAIR:
            if (rd_str(&r, key) || rd_str(&r, val)) return 0;
            *pos = r.i;
            return 1;
        case PT_BYTE: rc = rd_u8(&r, &u8); break;
        case PT_U16: rc = rd_u16(&r, &u16); break;
        case PT_U32: rc = rd_u32(&r, &u32); break;
        case PT_VARINT: rc = rd_varint(&r, &u32); break;
        case PT_STR: rc = rd_str(&r, &s); break;
        case PT_BIN: rc = rd_bin(&r, &b); break;
        }
        if (rc) return 0;
    }
    *pos = r.i;
    return 0;
}

int sr_mqtt_connack_rc311(uint8_t reason)
{
    switch (reason) {
    case SR_MQTT_RC_SUCCESS: return 0;
    case SR_MQTT_RC_UNSUPPORTED_VERSION: return 1;
    case SR_MQTT_RC_CLIENT_ID_INVALID: return 2;
    case SR_MQTT_RC_SERVER_UNAVAILABLE:
    case SR_MQTT_RC_SERVER_BUSY: return 3;
    case SR_MQTT_RC_BAD_USER_OR_PASSWORD: return 4;
    case SR_MQTT_RC_NOT_AUTHORIZED: return 5;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Encoders                                                                  */

/* Writer: with p == NULL it only counts (the measuring pass). */
typedef struct wr {
    uint8_t *p;
    size_t n;
} wr;

static void w_u8(wr *w, uint8_t v)
{
    if (w->p) w->p[w->n] = v;
    w->n++;
}
static void w_u16(wr *w, uint16_t v)
{
    w_u8(w, (uint8_t)(v >> 8));
    w_u8(w, (uint8_t)v);
}
static void w_u32(wr *w, uint32_t v)
{
    w_u16(w, (uint16_t)(v >> 16));
    w_u16(w, (uint16_t)v);
}
static void w_varint(wr *w, uint32_t v)
{
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        w_u8(w, (uint8_t)(c | (v ? 0x80 : 0)));
    } while (v);
}
static void w_bytes(wr *w, const void *p, size_t n)
{
    if (w->p && n) memcpy(w->p + w->n, p, n);
    w->n += n;
}
static void w_bin(wr *w, const void *p, size_t n) /* n <= 65535: checked before */
{
    w_u16(w, (uint16_t)n);
    w_bytes(w, p, n);
}

/* Validate props for an encoder context: SR_OK or SR_EINVAL. */
static int props_check(const sr_mqtt_props *pr, unsigned ctx)
{
    if (!pr) return SR_OK;
    for (int id = 0; id < N_PDEFS; id++) {
        const pdef *d = &PDEFS[id];
        if (d->type == PT_NONE || d->type == PT_PAIR || !(pr->present & d->bit)) continue;
        if (!(d->ctx & ctx)) return SR_EINVAL;
        const void *f = (const char *)pr + d->off;
        if (d->type == PT_STR && ((const sr_mqtt_str *)f)->len > 65535) return SR_EINVAL;
        if (d->type == PT_BIN && ((const sr_slice *)f)->len > 65535) return SR_EINVAL;
        if (d->type == PT_VARINT && *(const uint32_t *)f > SR_MQTT_MAX_REMAINING) return SR_EINVAL;
    }
    uint32_t known = 0;
    for (int id = 0; id < N_PDEFS; id++) known |= PDEFS[id].bit;
    if (pr->present & ~known) return SR_EINVAL;
    if (pr->user) {
        for (size_t i = 0; i < 2 * pr->n_user; i++)
            if (pr->user[i].len > 65535 || (!pr->user[i].s && pr->user[i].len)) return SR_EINVAL;
    }
    return SR_OK;
}

static void props_body(wr *w, const sr_mqtt_props *pr)
{
    for (int id = 0; id < N_PDEFS; id++) {
        const pdef *d = &PDEFS[id];
        if (d->type == PT_NONE || d->type == PT_PAIR || !(pr->present & d->bit)) continue;
        const void *f = (const char *)pr + d->off;
        w_varint(w, (uint32_t)id);
        switch (d->type) {
        case PT_BYTE: w_u8(w, *(const uint8_t *)f); break;
        case PT_U16: w_u16(w, *(const uint16_t *)f); break;
        case PT_U32: w_u32(w, *(const uint32_t *)f); break;
        case PT_VARINT: w_varint(w, *(const uint32_t *)f); break;
        case PT_STR: w_bin(w, ((const sr_mqtt_str *)f)->s, ((const sr_mqtt_str *)f)->len); break;
        case PT_BIN: w_bin(w, ((const sr_slice *)f)->data, ((const sr_slice *)f)->len); break;
        }
    }
    size_t pos = 0;
    sr_mqtt_str k, v;
    while (sr_mqtt_user_next(pr, &pos, &k, &v)) {
        w_u8(w, 0x26);
        w_bin(w, k.s, k.len);
        w_bin(w, v.s, v.len);
    }
}

/* The property length and the properties (an empty block if pr is NULL). */
static void w_props(wr *w, const sr_mqtt_props *pr)
{
    if (!pr) {
        w_u8(w, 0);
        return;
    }
    wr c = {NULL, 0};
    props_body(&c, pr);
    w_varint(w, (uint32_t)c.n); /* bounded by the packet size check */
    props_body(w, pr);
}

/* Arguments of every encoder, so one body writer can serve the two passes. */
typedef struct enc {
    int version;
    uint8_t type;
    const sr_mqtt_props *props;
    /* CONNACK */
    int session_present;
    uint8_t code;
    /* PUBLISH */
    const sr_mqtt_publish *m;
    uint16_t packet_id;
    /* SUBACK / UNSUBACK */
    const uint8_t *codes;
    size_t n;
} enc;

static void body(wr *w, const enc *e)
{
    int v5 = e->version == SR_MQTT_V5;
    switch (e->type) {
    case SR_MQTT_CONNACK:
        w_u8(w, e->session_present ? 1 : 0);
        w_u8(w, e->code);
        if (v5) w_props(w, e->props);
        break;
    case SR_MQTT_PUBLISH:
        w_bin(w, e->m->topic.s, e->m->topic.len);
        if (e->m->qos > 0) w_u16(w, e->packet_id);
        if (v5) w_props(w, e->props);
        w_bytes(w, e->m->payload.data, e->m->payload.len);
        break;
    case SR_MQTT_PUBACK:
    case SR_MQTT_PUBREC:
    case SR_MQTT_PUBREL:
    case SR_MQTT_PUBCOMP:
        w_u16(w, e->packet_id);
        if (v5 && (e->code || e->props)) {
            w_u8(w, e->code);
            if (e->props) w_props(w, e->props);
        }
        break;
    case SR_MQTT_SUBACK:
    case SR_MQTT_UNSUBACK:
        w_u16(w, e->packet_id);
        if (v5) w_props(w, e->props);
        if (v5 || e->type == SR_MQTT_SUBACK) w_bytes(w, e->codes, e->n);
        break;
    case SR_MQTT_DISCONNECT:
        if (e->code || e->props) {
            w_u8(w, e->code);
            if (e->props) w_props(w, e->props);
        }
        break;
    default: break; /* PINGRESP: no body */
    }
}

static int finish(sr_buf *out, uint8_t first, const enc *e)
{
    if (!out) return SR_EINVAL;
    wr c = {NULL, 0};
    body(&c, e);
    if (c.n > SR_MQTT_MAX_REMAINING) return SR_EINVAL;
    wr hc = {NULL, 0};
    w_u8(&hc, first);
    w_varint(&hc, (uint32_t)c.n);
    int rc = sr_buf_reserve(out, hc.n + c.n);
    if (rc) return rc;
    wr w = {out->data + out->len, 0};
    w_u8(&w, first);
    w_varint(&w, (uint32_t)c.n);
    body(&w, e);
    SR_ASSERT(w.n == hc.n + c.n);
    out->len += w.n;
    return SR_OK;
}

static int version_ok(int v) { return v == SR_MQTT_V311 || v == SR_MQTT_V5; }

int sr_mqtt_encode_connack(sr_buf *out, int version, int session_present, uint8_t code,
                           const sr_mqtt_props *props)
{
    if (!version_ok(version)) return SR_EINVAL;
    if (version == SR_MQTT_V311) {
        if (code > 5) return SR_EINVAL;
        props = NULL;
    }
    if (props_check(props, C_CONNACK)) return SR_EINVAL;
    /* 3.2.2.1.1: session present is 0 when the CONNECT is refused */
    enc e = {.version = version, .type = SR_MQTT_CONNACK, .props = props,
             .session_present = code == 0 && session_present, .code = code};
    return finish(out, SR_MQTT_CONNACK << 4, &e);
}

int sr_mqtt_encode_publish(sr_buf *out, int version, const sr_mqtt_publish *m, uint16_t packet_id,
                           const sr_mqtt_props *props)
{
    if (!version_ok(version) || !m || m->qos > 2) return SR_EINVAL;
    if (version == SR_MQTT_V311) props = NULL;
    if (props_check(props, C_PUBLISH)) return SR_EINVAL;
    if (m->topic.len > 65535 || (!m->topic.s && m->topic.len)) return SR_EINVAL;
    if (!m->payload.data && m->payload.len) return SR_EINVAL;
    if (m->topic.len == 0) {
        if (!props || !(props->present & SR_MQTT_P_TOPIC_ALIAS)) return SR_EINVAL;
    } else if (!sr_mqtt_topic_name_valid(m->topic.s, m->topic.len)) {
        return SR_EINVAL;
    }
    if (m->qos > 0 && packet_id == 0) return SR_EINVAL;
    if (m->qos == 0 && m->dup) return SR_EINVAL;
    if (m->payload.len > SR_MQTT_MAX_REMAINING) return SR_EINVAL;
    uint8_t first = (uint8_t)(SR_MQTT_PUBLISH << 4 | (m->dup ? 8 : 0) | m->qos << 1 | (m->retain ? 1 : 0));
    enc e = {.version = version, .type = SR_MQTT_PUBLISH, .props = props, .m = m, .packet_id = packet_id};
    return finish(out, first, &e);
}

int sr_mqtt_encode_ack(sr_buf *out, int version, uint8_t type, uint16_t packet_id, uint8_t reason,
                       const sr_mqtt_props *props)
{
    if (!version_ok(version) || packet_id == 0) return SR_EINVAL;
    if (type < SR_MQTT_PUBACK || type > SR_MQTT_PUBCOMP) return SR_EINVAL;
    if (version == SR_MQTT_V311) {
        props = NULL;
        reason = 0;
    }
    if (props && !props->present && !props->n_user) props = NULL;
    if (props_check(props, C_PUBACK)) return SR_EINVAL;
    enc e = {.version = version, .type = type, .props = props, .packet_id = packet_id, .code = reason};
    return finish(out, (uint8_t)(type << 4 | (type == SR_MQTT_PUBREL ? 2 : 0)), &e);
}

int sr_mqtt_encode_suback(sr_buf *out, int version, uint16_t packet_id, const uint8_t *codes, size_t n,
                          const sr_mqtt_props *props)
{
    if (!version_ok(version) || packet_id == 0 || n == 0 || !codes) return SR_EINVAL;
    if (version == SR_MQTT_V311) {
        props = NULL;
        for (size_t i = 0; i < n; i++)
            if (codes[i] > 2 && codes[i] != 0x80) return SR_EINVAL;
    }
    if (props_check(props, C_SUBACK)) return SR_EINVAL;
    if (n > SR_MQTT_MAX_REMAINING) return SR_EINVAL;
    enc e = {.version = version, .type = SR_MQTT_SUBACK, .props = props, .packet_id = packet_id,
             .codes = codes, .n = n};
    return finish(out, SR_MQTT_SUBACK << 4, &e);
}

int sr_mqtt_encode_unsuback(sr_buf *out, int version, uint16_t packet_id, const uint8_t *codes, size_t n,
                            const sr_mqtt_props *props)
{
    if (!version_ok(version) || packet_id == 0) return SR_EINVAL;
    if (version == SR_MQTT_V5 && (n == 0 || !codes || n > SR_MQTT_MAX_REMAINING)) return SR_EINVAL;
    if (version == SR_MQTT_V311) {
        props = NULL;
        codes = NULL;
        n = 0;
    }
    if (props_check(props, C_SUBACK)) return SR_EINVAL;
    enc e = {.version = version, .type = SR_MQTT_UNSUBACK, .props = props, .packet_id = packet_id,
             .codes = codes, .n = n};
    return finish(out, SR_MQTT_UNSUBACK << 4, &e);
}

int sr_mqtt_encode_pingresp(sr_buf *out)
{
    enc e = {.version = SR_MQTT_V311, .type = SR_MQTT_PINGRESP};
    return finish(out, SR_MQTT_PINGRESP << 4, &e);
}

int sr_mqtt_encode_disconnect(sr_buf *out, int version, uint8_t reason, const sr_mqtt_props *props)
{
    if (version != SR_MQTT_V5) return SR_EINVAL;
    if (props && !props->present && !props->n_user) props = NULL;
    if (props_check(props, C_DISCONNECT)) return SR_EINVAL;
    /* 3.14.2.2.2: the server never sends a session expiry in DISCONNECT */
    if (props && (props->present & SR_MQTT_P_SESSION_EXPIRY)) return SR_EINVAL;
    enc e = {.version = version, .type = SR_MQTT_DISCONNECT, .props = props, .code = reason};
    return finish(out, SR_MQTT_DISCONNECT << 4, &e);
}
