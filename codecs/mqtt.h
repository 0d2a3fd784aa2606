/*
 * codecs/mqtt.h -- MQTT 3.1.1 and 5.0 packet codec for the server side
 * (pure code: no I/O, no sockets, no globals, no allocation when decoding).
 *
 * Decoder: sr_mqtt_decode() takes the bytes received so far on a connection
 * and returns one whole client-to-server packet, "need more bytes", or an
 * error carrying the MQTT 5 reason code the server must send (in CONNACK if
 * the packet was the CONNECT, else in DISCONNECT) before closing. Decoded
 * fields borrow from the input buffer: they stay valid as long as it does.
 *
 * Encoders: server-to-client packets (CONNACK, PUBLISH, PUBACK/PUBREC/PUBREL/
 * PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT) appended to an sr_buf.
 *
 * sr_mqtt_topic_match(): a topic filter ('+', '#') against a topic name.
 *
 * See docs/mqtt.md for what is supported, the limits, and the reason code
 * used for each error. Threads: every function is reentrant.
 */
#ifndef SR_MQTT_H
#define SR_MQTT_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

/* sr_mqtt_decode(): not an error, the packet is not complete yet. Read more
 * bytes, append them and call again with the whole buffer. Distinct from
 * SR_DONE (1). */
#define SR_MQTT_MORE 2

/* Protocol levels (the CONNECT "protocol level" byte). */
enum { SR_MQTT_V311 = 4, SR_MQTT_V5 = 5 };

/* Largest remaining length a 4-byte variable byte integer can hold. */
#define SR_MQTT_MAX_REMAINING 268435455u

/* Control packet types (high nibble of the first byte). */
enum sr_mqtt_type {
    SR_MQTT_CONNECT = 1,
    SR_MQTT_CONNACK = 2,
    SR_MQTT_PUBLISH = 3,
    SR_MQTT_PUBACK = 4,
    SR_MQTT_PUBREC = 5,
    SR_MQTT_PUBREL = 6,
    SR_MQTT_PUBCOMP = 7,
    SR_MQTT_SUBSCRIBE = 8,
    SR_MQTT_SUBACK = 9,
    SR_MQTT_UNSUBSCRIBE = 10,
    SR_MQTT_UNSUBACK = 11,
    SR_MQTT_PINGREQ = 12,
    SR_MQTT_PINGRESP = 13,
    SR_MQTT_DISCONNECT = 14,
    SR_MQTT_AUTH = 15,
};

/* MQTT 5 reason codes the codec produces or the server commonly sends. */
enum sr_mqtt_reason {
    SR_MQTT_RC_SUCCESS = 0x00,
    SR_MQTT_RC_GRANTED_QOS1 = 0x01,
    SR_MQTT_RC_GRANTED_QOS2 = 0x02,
    SR_MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    SR_MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    SR_MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    SR_MQTT_RC_CONTINUE_AUTH = 0x18,
    SR_MQTT_RC_REAUTHENTICATE = 0x19,
    SR_MQTT_RC_UNSPECIFIED = 0x80,
    SR_MQTT_RC_MALFORMED = 0x81,
    SR_MQTT_RC_PROTOCOL_ERROR = 0x82,
    SR_MQTT_RC_IMPL_SPECIFIC = 0x83,
    SR_MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    SR_MQTT_RC_CLIENT_ID_INVALID = 0x85,
    SR_MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    SR_MQTT_RC_NOT_AUTHORIZED = 0x87,
    SR_MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    SR_MQTT_RC_SERVER_BUSY = 0x89,
    SR_MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    SR_MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    SR_MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    SR_MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    SR_MQTT_RC_PACKET_ID_IN_USE = 0x91,
    SR_MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    SR_MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    SR_MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    SR_MQTT_RC_PACKET_TOO_LARGE = 0x95,
    SR_MQTT_RC_QUOTA_EXCEEDED = 0x97,
    SR_MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    SR_MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
};

/* Borrowed UTF-8 text (validated by the decoder; NOT NUL-terminated). */
typedef struct sr_mqtt_str {
    const char *s;
    size_t len;
} sr_mqtt_str;

/* Bits of sr_mqtt_props.present, one per property (user properties are
 * counted in n_user instead). */
enum {
    SR_MQTT_P_PAYLOAD_FORMAT = 1u << 0,      /* 0x01 byte */
    SR_MQTT_P_MESSAGE_EXPIRY = 1u << 1,      /* 0x02 u32 */
    SR_MQTT_P_CONTENT_TYPE = 1u << 2,        /* 0x03 string */
    SR_MQTT_P_RESPONSE_TOPIC = 1u << 3,      /* 0x08 string */
    SR_MQTT_P_CORRELATION_DATA = 1u << 4,    /* 0x09 binary */
    SR_MQTT_P_SUBSCRIPTION_ID = 1u << 5,     /* 0x0B varint */
    SR_MQTT_P_SESSION_EXPIRY = 1u << 6,      /* 0x11 u32 */
    SR_MQTT_P_ASSIGNED_CLIENT_ID = 1u << 7,  /* 0x12 string */
    SR_MQTT_P_SERVER_KEEP_ALIVE = 1u << 8,   /* 0x13 u16 */
    SR_MQTT_P_AUTH_METHOD = 1u << 9,         /* 0x15 string */
    SR_MQTT_P_AUTH_DATA = 1u << 10,          /* 0x16 binary */
    SR_MQTT_P_REQUEST_PROBLEM = 1u << 11,    /* 0x17 byte */
    SR_MQTT_P_WILL_DELAY = 1u << 12,         /* 0x18 u32 */
    SR_MQTT_P_REQUEST_RESPONSE = 1u << 13,   /* 0x19 byte */
    SR_MQTT_P_RESPONSE_INFO = 1u << 14,      /* 0x1A string */
    SR_MQTT_P_SERVER_REFERENCE = 1u << 15,   /* 0x1C string */
    SR_MQTT_P_REASON_STRING = 1u << 16,      /* 0x1F string */
    SR_MQTT_P_RECEIVE_MAX = 1u << 17,        /* 0x21 u16 */
    SR_MQTT_P_TOPIC_ALIAS_MAX = 1u << 18,    /* 0x22 u16 */
    SR_MQTT_P_TOPIC_ALIAS = 1u << 19,        /* 0x23 u16 */
    SR_MQTT_P_MAX_QOS = 1u << 20,            /* 0x24 byte */
    SR_MQTT_P_RETAIN_AVAILABLE = 1u << 21,   /* 0x25 byte */
    SR_MQTT_P_MAX_PACKET_SIZE = 1u << 22,    /* 0x27 u32 */
    SR_MQTT_P_WILDCARD_SUB = 1u << 23,       /* 0x28 byte */
    SR_MQTT_P_SUB_ID_AVAILABLE = 1u << 24,   /* 0x29 byte */
    SR_MQTT_P_SHARED_SUB = 1u << 25,         /* 0x2A byte */
};

/* MQTT 5 properties of one packet (or of the will in CONNECT). A field is
 * meaningful only if its bit is in `present`.
 *
 * User properties: the decoder sets n_user and raw (the whole property block)
 * and leaves user NULL; iterate with sr_mqtt_user_next(). An encoder caller
 * sets user to 2 * n_user strings (key, value, key, value, ...); if user is
 * NULL and n_user > 0 the pairs are taken from raw (so a decoded packet can be
 * re-encoded). */
typedef struct sr_mqtt_props {
    uint32_t present;
    uint8_t payload_format, request_problem, request_response, max_qos, retain_available,
        wildcard_sub, sub_id_available, shared_sub;
    uint16_t server_keep_alive, receive_max, topic_alias_max, topic_alias;
    uint32_t message_expiry, subscription_id, session_expiry, will_delay, max_packet_size;
    sr_mqtt_str content_type, response_topic, assigned_client_id, auth_method, response_info,
        server_reference, reason_string;
    sr_slice correlation_data, auth_data;
    size_t n_user;
    const sr_mqtt_str *user;
    sr_slice raw;
} sr_mqtt_props;

/* The PUBLISH-specific part of a packet (also the encoder's input). */
typedef struct sr_mqtt_publish {
    sr_mqtt_str topic; /* empty only with a 5.0 topic alias */
    sr_slice payload;
    uint8_t qos, retain, dup;
} sr_mqtt_publish;

/* One subscription of a SUBSCRIBE (options are 0 for UNSUBSCRIBE). */
typedef struct sr_mqtt_sub {
    sr_mqtt_str filter;     /* as sent, including any "$share/name/" prefix */
    sr_mqtt_str share_name; /* 5.0 shared subscription: the share name; else len 0 */
    sr_mqtt_str match;      /* the filter to match topics with (after the share prefix) */
    uint8_t options;        /* the raw options byte */
    uint8_t qos, no_local, retain_as_published, retain_handling;
} sr_mqtt_sub;

/* One decoded client-to-server packet. */
typedef struct sr_mqtt_pkt {
    uint8_t type;       /* SR_MQTT_CONNECT, ... */
    uint8_t flags;      /* low nibble of the first byte */
    uint8_t version;    /* 4 or 5; for CONNECT the level the client asked for (0 if unread) */
    uint8_t reason;     /* 5.0 reason code of PUB*, DISCONNECT, AUTH (0 when omitted) */
    uint16_t packet_id; /* PUBLISH QoS > 0, PUB*, SUBSCRIBE, UNSUBSCRIBE; else 0 */
    size_t size;        /* bytes of the whole packet, fixed header included */
    sr_mqtt_props props;
    sr_mqtt_publish publish;
    struct {
        uint8_t clean_start, will, will_qos, will_retain, has_username, has_password;
        uint16_t keep_alive;
        sr_mqtt_str client_id, will_topic, username;
        sr_slice will_payload, password;
        sr_mqtt_props will_props;
    } connect;
    /* SUBSCRIBE / UNSUBSCRIBE: n >= 1 entries in raw; use sr_mqtt_sub_next(). */
    sr_slice subs_raw;
    size_t n_subs;
    /* Set when sr_mqtt_decode fails: the reason code to send and a message
     * (a string constant) for the log. */
    uint8_t err_reason;
    const char *err_msg;
} sr_mqtt_pkt;

/**
 * Decode the packet at the start of buf.
 *
 * @param buf, len         bytes received so far (borrowed; decoded fields point
 *                         into it).
 * @param version          4 (3.1.1) or 5 (5.0) once the CONNECT is accepted;
 *                         0 before: then only a CONNECT is accepted, and its
 *                         level (pkt->version) is the version for the rest of
 *                         the connection.
 * @param max_packet_size  largest whole packet accepted (fixed header
 *                         included); 0: the protocol limit. Checked against
 *                         the declared length as soon as it is read (even
 *                         before the length is complete), so a huge length is
 *                         refused without waiting for the bytes.
 * @param[out] pkt         overwritten by every call; the packet on SR_OK, and
 *                         err_reason / err_msg on SR_ECODEC / SR_ETOOBIG.
 * @param[out] consumed    set only on SR_OK: bytes of the packet; drop them and
 *                         call again for the next one.
 * @return SR_OK
 *         SR_MQTT_MORE  the packet is not complete (nothing is wrong so far).
 *         SR_ECODEC     malformed or forbidden packet; pkt->err_reason is the
 *                       reason code to send (0x81 malformed, 0x82 protocol
 *                       error, 0x84 unsupported protocol version, 0x85 client
 *                       id not valid, 0x8F topic filter invalid, 0x90 topic
 *                       name invalid, 0x94 topic alias invalid). The
 *                       connection cannot continue: the stream position of
 *                       the next packet is not trusted.
 *         SR_ETOOBIG    the declared packet is over max_packet_size (0x95).
 *         SR_EINVAL     bad arguments (NULL pointers, version not 0/4/5).
 */
SR_MUST_CHECK int sr_mqtt_decode(const uint8_t *buf, size_t len, int version,
                                 uint32_t max_packet_size, sr_mqtt_pkt *pkt, size_t *consumed);

/* Next subscription of a decoded SUBSCRIBE or UNSUBSCRIBE. *pos starts at 0.
 * Returns 1 and fills *out, or 0 after the last one. */
int sr_mqtt_sub_next(const sr_mqtt_pkt *pkt, size_t *pos, sr_mqtt_sub *out);

/* Next user property (key, value) of props. *pos starts at 0. Returns 1 and
 * fills *key / *val, or 0 after the last one. */
int sr_mqtt_user_next(const sr_mqtt_props *props, size_t *pos, sr_mqtt_str *key, sr_mqtt_str *val);

/* The 3.1.1 CONNACK return code for a 5.0 reason code refusing a CONNECT:
 * 0x84 -> 1, 0x85 -> 2, 0x88/0x89 -> 3, 0x86 -> 4, 0x87 -> 5, 0x00 -> 0;
 * -1 for the others (3.1.1 has no code: close the connection without CONNACK). */
int sr_mqtt_connack_rc311(uint8_t reason);

/* ---- encoders ------------------------------------------------------------
 * Each appends one packet to out and returns SR_OK, SR_EINVAL (bad argument:
 * version not 4/5, a string over 65535 bytes, a property not allowed in the
 * packet, a packet over SR_MQTT_MAX_REMAINING) or SR_ENOMEM. On error out is
 * unchanged. props may be NULL; it is ignored for version 4. */

/* CONNACK. version 4: code is the 3.1.1 return code (0..5); version 5: the
 * reason code, and props may carry receive maximum, maximum packet size,
 * topic alias maximum (absent means 0), assigned client id, reason string,
 * and the other CONNACK properties. */
SR_MUST_CHECK int sr_mqtt_encode_connack(sr_buf *out, int version, int session_present,
                                         uint8_t code, const sr_mqtt_props *props);

/* PUBLISH (QoS 0..2; packet_id must be non-zero when qos > 0 and is ignored
 * otherwise). The topic must be a valid topic name (non-empty unless 5.0 props
 * carry a topic alias, no wildcards). */
SR_MUST_CHECK int sr_mqtt_encode_publish(sr_buf *out, int version, const sr_mqtt_publish *m,
                                         uint16_t packet_id, const sr_mqtt_props *props);

/* PUBACK, PUBREC, PUBREL or PUBCOMP (type). 5.0: the reason code and props
 * are written only when not 0 / empty (the short forms of the spec). */
SR_MUST_CHECK int sr_mqtt_encode_ack(sr_buf *out, int version, uint8_t type, uint16_t packet_id,
                                     uint8_t reason, const sr_mqtt_props *props);

/* SUBACK with n >= 1 return / reason codes, one per subscription. */
SR_MUST_CHECK int sr_mqtt_encode_suback(sr_buf *out, int version, uint16_t packet_id,
                                        const uint8_t *codes, size_t n, const sr_mqtt_props *props);

/* UNSUBACK: 5.0 writes n >= 1 reason codes; 3.1.1 has none (codes, n ignored). */
SR_MUST_CHECK int sr_mqtt_encode_unsuback(sr_buf *out, int version, uint16_t packet_id,
                                          const uint8_t *codes, size_t n,
                                          const sr_mqtt_props *props);

SR_MUST_CHECK int sr_mqtt_encode_pingresp(sr_buf *out);

/* DISCONNECT from the server: 5.0 only (3.1.1 servers just close: SR_EINVAL).
 * Reason 0 without props is the 2-byte form. A Session Expiry property is
 * refused (SR_EINVAL): only the client may send it in DISCONNECT. */
SR_MUST_CHECK int sr_mqtt_encode_disconnect(sr_buf *out, int version, uint8_t reason,
                                            const sr_mqtt_props *props);

/* ---- topics ---------------------------------------------------------------- */

/* 1 if the topic name matches the filter ('+' one level, '#' this level and
 * every level below, including the parent: "a/#" matches "a"), else 0.
 * Topics starting with '$' are not matched by a filter starting with '+' or
 * '#'. Strip a "$share/name/" prefix first (sr_mqtt_sub.match). */
int sr_mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen);

/* 1 if s is a valid topic name to publish to (non-empty, no '+' or '#'). */
int sr_mqtt_topic_name_valid(const char *s, size_t len);

/* 1 if s is a valid topic filter ('#' last and alone in its level, '+' alone
 * in its level, non-empty). No "$share/" handling. */
int sr_mqtt_topic_filter_valid(const char *s, size_t len);

#endif
