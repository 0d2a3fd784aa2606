/* tests/codecs/test_mqtt.c -- codecs/mqtt.c: byte-exact encodings written by
 * hand from the MQTT 3.1.1 / 5.0 specifications, decoding of every client
 * packet type in both versions, every error class with its reason code,
 * partial input at every split point, the packet size limit applied to the
 * declared length, topic matching, and encode -> decode round trips.
 *
 * SR_GOLDEN_WRITE=1 writes the fuzz seed corpus tests/fuzz/mqtt/. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/mqtt.h"
#include "fault_alloc.h"
#include "testutil.h"

#define B(lit) (lit), sizeof(lit) - 1
#define STR(lit) ((sr_mqtt_str){(lit), sizeof(lit) - 1})
#define SL(lit) ((sr_slice){(lit), sizeof(lit) - 1})

TestSuite(codecs_mqtt, .timeout = 60);

/* ---- sample client packets, written by hand ------------------------------ */

/* 3.1.1 CONNECT: clean session, will (QoS 1, retain) on "s/gw1" = "OFF",
 * user "op/gw1", password "pw", keep alive 60, client id "gw1". */
static const char CONNECT4[] = "\x10\x27"
                               "\x00\x04" "MQTT" "\x04" "\xEE" "\x00\x3C"
                               "\x00\x03" "gw1"
                               "\x00\x05" "s/gw1"
                               "\x00\x03" "OFF"
                               "\x00\x06" "op/gw1"
                               "\x00\x02" "pw";

/* 5.0 CONNECT: the same, with session expiry 120, receive maximum 10, a user
 * property k=v, and will properties delay 5, payload format 1, content type
 * "json". */
static const char CONNECT5[] = "\x10\x46"
                               "\x00\x04" "MQTT" "\x05" "\xEE" "\x00\x3C"
                               "\x0F" "\x11\x00\x00\x00\x78" "\x21\x00\x0A" "\x26\x00\x01" "k" "\x00\x01" "v"
                               "\x00\x03" "gw1"
                               "\x0E" "\x18\x00\x00\x00\x05" "\x01\x01" "\x03\x00\x04" "json"
                               "\x00\x05" "s/gw1"
                               "\x00\x03" "OFF"
                               "\x00\x06" "op/gw1"
                               "\x00\x02" "pw";

static const char PUB0_4[] = "\x30\x07" "\x00\x03" "a/b" "hi";
static const char PUB1_4[] = "\x33\x09" "\x00\x03" "a/b" "\x00\x0A" "hi";
/* 5.0 QoS 1, message expiry 60 */
static const char PUB1_5[] = "\x32\x0F" "\x00\x03" "a/b" "\x00\x0A" "\x05\x02\x00\x00\x00\x3C" "hi";
static const char PUB0_5[] = "\x30\x08" "\x00\x03" "a/b" "\x00" "hi";
/* 3.1.1 SUBSCRIBE id 1: "a/+" QoS 1, "#" QoS 0 */
static const char SUB4[] = "\x82\x0C" "\x00\x01" "\x00\x03" "a/+" "\x01" "\x00\x01" "#" "\x00";
/* 5.0 SUBSCRIBE id 1, subscription id 7: "a/#" (QoS 1, no local, retain
 * handling 1), "$share/g/x/+" QoS 1 */
static const char SUB5[] = "\x82\x1A" "\x00\x01" "\x02\x0B\x07"
                           "\x00\x03" "a/#" "\x15"
                           "\x00\x0C" "$share/g/x/+" "\x01";
static const char UNSUB4[] = "\xA2\x07" "\x00\x02" "\x00\x03" "a/+";
static const char UNSUB5[] = "\xA2\x08" "\x00\x02" "\x00" "\x00\x03" "a/+";
static const char PINGREQ[] = "\xC0\x00";
static const char DISC[] = "\xE0\x00";
/* 5.0 DISCONNECT with will (0x04), session expiry 0 */
static const char DISC5[] = "\xE0\x07" "\x04" "\x05" "\x11\x00\x00\x00\x00";
static const char AUTH5[] = "\xF0\x09" "\x18" "\x07" "\x15\x00\x04" "SCRM";

static int dec(int v, const char *p, size_t n, uint32_t max, sr_mqtt_pkt *pkt, size_t *used)
{
    return sr_mqtt_decode((const uint8_t *)p, n, v, max, pkt, used);
}

static int str_is(sr_mqtt_str s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.s, lit, s.len); }
static int bin_is(sr_slice s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.data, lit, s.len); }

/* ---- decoding every packet type -------------------------------------------- */

Test(codecs_mqtt, sample_lengths_match_their_remaining_length)
{
    struct { const char *p; size_t n; } all[] = {
        {CONNECT4, sizeof CONNECT4 - 1}, {CONNECT5, sizeof CONNECT5 - 1}, {PUB0_4, sizeof PUB0_4 - 1},
        {PUB1_4, sizeof PUB1_4 - 1},     {PUB1_5, sizeof PUB1_5 - 1},     {PUB0_5, sizeof PUB0_5 - 1},
        {SUB4, sizeof SUB4 - 1},         {SUB5, sizeof SUB5 - 1},         {UNSUB4, sizeof UNSUB4 - 1},
        {UNSUB5, sizeof UNSUB5 - 1},     {DISC5, sizeof DISC5 - 1},       {AUTH5, sizeof AUTH5 - 1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cr_assert_eq(all[i].n, 2 + (size_t)(uint8_t)all[i].p[1], "sample %zu", i);
}

Test(codecs_mqtt, connect_311_with_will_user_and_password)
{
    sr_mqtt_pkt p;
    size_t used = 0;
    cr_assert_eq(dec(0, B(CONNECT4), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert_eq(used, sizeof CONNECT4 - 1);
    cr_assert_eq(p.type, SR_MQTT_CONNECT);
    cr_assert_eq(p.version, 4);
    cr_assert(p.connect.clean_start && p.connect.will && p.connect.will_retain);
    cr_assert_eq(p.connect.will_qos, 1);
    cr_assert_eq(p.connect.keep_alive, 60);
    cr_assert(str_is(p.connect.client_id, "gw1"));
    cr_assert(str_is(p.connect.will_topic, "s/gw1"));
    cr_assert(bin_is(p.connect.will_payload, "OFF"));
    cr_assert(p.connect.has_username && str_is(p.connect.username, "op/gw1"));
    cr_assert(p.connect.has_password && bin_is(p.connect.password, "pw"));
    cr_assert_eq(p.props.present, 0);
}

Test(codecs_mqtt, connect_50_with_properties_and_will_properties)
{
    sr_mqtt_pkt p;
    size_t used = 0;
    cr_assert_eq(dec(0, B(CONNECT5), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert_eq(used, sizeof CONNECT5 - 1);
    cr_assert_eq(p.version, 5);
    cr_assert_eq(p.props.present, SR_MQTT_P_SESSION_EXPIRY | SR_MQTT_P_RECEIVE_MAX);
    cr_assert_eq(p.props.session_expiry, 120);
    cr_assert_eq(p.props.receive_max, 10);
    cr_assert_eq(p.props.n_user, 1);
    size_t pos = 0;
    sr_mqtt_str k, v;
    cr_assert(sr_mqtt_user_next(&p.props, &pos, &k, &v));
    cr_assert(str_is(k, "k") && str_is(v, "v"));
    cr_assert(!sr_mqtt_user_next(&p.props, &pos, &k, &v));
    const sr_mqtt_props *w = &p.connect.will_props;
    cr_assert_eq(w->present, SR_MQTT_P_WILL_DELAY | SR_MQTT_P_PAYLOAD_FORMAT | SR_MQTT_P_CONTENT_TYPE);
    cr_assert_eq(w->will_delay, 5);
    cr_assert_eq(w->payload_format, 1);
    cr_assert(str_is(w->content_type, "json"));
    cr_assert(str_is(p.connect.will_topic, "s/gw1"));
    cr_assert(str_is(p.connect.username, "op/gw1"));
    cr_assert(bin_is(p.connect.password, "pw"));
}

Test(codecs_mqtt, connect_50_allows_password_without_user_and_empty_client_id)
{
    static const char c[] = "\x10\x11" "\x00\x04" "MQTT" "\x05" "\x40" "\x00\x00" "\x00" "\x00\x00" "\x00\x02" "pw";
    sr_mqtt_pkt p;
    size_t used;
    cr_assert_eq(dec(0, B(c), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(!p.connect.has_username && p.connect.has_password);
    cr_assert_eq(p.connect.client_id.len, 0);
}

Test(codecs_mqtt, publish_in_both_versions)
{
    sr_mqtt_pkt p;
    size_t used;
    cr_assert_eq(dec(4, B(PUB0_4), 0, &p, &used), SR_OK);
    cr_assert(p.type == SR_MQTT_PUBLISH && p.publish.qos == 0 && p.packet_id == 0 && !p.publish.retain);
    cr_assert(str_is(p.publish.topic, "a/b") && bin_is(p.publish.payload, "hi"));
    cr_assert_eq(dec(4, B(PUB1_4), 0, &p, &used), SR_OK);
    cr_assert(p.publish.qos == 1 && p.publish.retain && p.packet_id == 10);
    cr_assert(bin_is(p.publish.payload, "hi"));
    cr_assert_eq(dec(5, B(PUB1_5), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.publish.qos == 1 && p.packet_id == 10);
    cr_assert_eq(p.props.present, SR_MQTT_P_MESSAGE_EXPIRY);
    cr_assert_eq(p.props.message_expiry, 60);
    cr_assert(bin_is(p.publish.payload, "hi"));
    cr_assert_eq(dec(5, B(PUB0_5), 0, &p, &used), SR_OK);
    cr_assert(bin_is(p.publish.payload, "hi"));
    /* empty payload */
    cr_assert_eq(dec(4, B("\x30\x03\x00\x01" "t"), 0, &p, &used), SR_OK);
    cr_assert_eq(p.publish.payload.len, 0);
    /* 5.0 empty topic with a topic alias */
    cr_assert_eq(dec(5, B("\x30\x06\x00\x00\x03\x23\x00\x01"), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert_eq(p.props.topic_alias, 1);
}

Test(codecs_mqtt, acks_in_both_versions)
{
    sr_mqtt_pkt p;
    size_t used;
    const char *v4[] = {"\x40\x02\x00\x0A", "\x50\x02\x00\x0A", "\x62\x02\x00\x0A", "\x70\x02\x00\x0A"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dec(4, v4[i], 4, 0, &p, &used), SR_OK, "%d %s", i, p.err_msg);
        cr_assert_eq(p.type, SR_MQTT_PUBACK + i);
        cr_assert_eq(p.packet_id, 10);
        cr_assert_eq(dec(5, v4[i], 4, 0, &p, &used), SR_OK, "%d", i);
        cr_assert_eq(p.reason, 0);
    }
    cr_assert_eq(dec(5, B("\x40\x03\x00\x0A\x10"), 0, &p, &used), SR_OK);
    cr_assert_eq(p.reason, 0x10);
    cr_assert_eq(dec(5, B("\x40\x09\x00\x0A\x80\x05\x1F\x00\x02" "no"), 0, &p, &used), SR_OK);
    cr_assert(p.reason == 0x80 && str_is(p.props.reason_string, "no"));
    cr_assert_eq(dec(5, B("\x70\x03\x00\x0A\x92"), 0, &p, &used), SR_OK);
    cr_assert_eq(p.reason, 0x92);
    cr_assert_eq(dec(5, B("\x50\x04\x00\x0A\x00\x00"), 0, &p, &used), SR_OK);
}

Test(codecs_mqtt, subscribe_and_unsubscribe_in_both_versions)
{
    sr_mqtt_pkt p;
    size_t used, pos = 0;
    sr_mqtt_sub s;
    cr_assert_eq(dec(4, B(SUB4), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.packet_id == 1 && p.n_subs == 2);
    cr_assert(sr_mqtt_sub_next(&p, &pos, &s));
    cr_assert(str_is(s.filter, "a/+") && s.qos == 1);
    cr_assert(sr_mqtt_sub_next(&p, &pos, &s));
    cr_assert(str_is(s.filter, "#") && s.qos == 0);
    cr_assert(!sr_mqtt_sub_next(&p, &pos, &s));

    cr_assert_eq(dec(5, B(SUB5), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.n_subs == 2 && p.props.subscription_id == 7);
    pos = 0;
    cr_assert(sr_mqtt_sub_next(&p, &pos, &s));
    cr_assert(str_is(s.filter, "a/#") && s.qos == 1 && s.no_local && !s.retain_as_published &&
              s.retain_handling == 1 && s.share_name.len == 0 && str_is(s.match, "a/#"));
    cr_assert(sr_mqtt_sub_next(&p, &pos, &s));
    cr_assert(str_is(s.filter, "$share/g/x/+") && str_is(s.share_name, "g") && str_is(s.match, "x/+"));
    cr_assert(!sr_mqtt_sub_next(&p, &pos, &s));

    cr_assert_eq(dec(4, B(UNSUB4), 0, &p, &used), SR_OK);
    cr_assert(p.type == SR_MQTT_UNSUBSCRIBE && p.packet_id == 2 && p.n_subs == 1);
    pos = 0;
    cr_assert(sr_mqtt_sub_next(&p, &pos, &s) && str_is(s.filter, "a/+"));
    cr_assert_eq(dec(5, B(UNSUB5), 0, &p, &used), SR_OK);
    cr_assert(p.n_subs == 1);
}

Test(codecs_mqtt, ping_disconnect_and_auth)
{
    sr_mqtt_pkt p;
    size_t used;
    cr_assert_eq(dec(4, B(PINGREQ), 0, &p, &used), SR_OK);
    cr_assert(p.type == SR_MQTT_PINGREQ && used == 2);
    cr_assert_eq(dec(5, B(PINGREQ), 0, &p, &used), SR_OK);
    cr_assert_eq(dec(4, B(DISC), 0, &p, &used), SR_OK);
    cr_assert_eq(p.type, SR_MQTT_DISCONNECT);
    cr_assert_eq(dec(5, B(DISC), 0, &p, &used), SR_OK);
    cr_assert_eq(p.reason, 0);
    cr_assert_eq(dec(5, B("\xE0\x01\x04"), 0, &p, &used), SR_OK);
    cr_assert_eq(p.reason, 4);
    cr_assert_eq(dec(5, B(DISC5), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.reason == 4 && (p.props.present & SR_MQTT_P_SESSION_EXPIRY) && p.props.session_expiry == 0);
    cr_assert_eq(dec(5, B(AUTH5), 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.type == SR_MQTT_AUTH && p.reason == 0x18 && str_is(p.props.auth_method, "SCRM"));
}

/* ---- errors and their reason codes ----------------------------------------- */

typedef struct ecase {
    int version;
    const char *p;
    size_t n;
    uint8_t reason;
    const char *what;
} ecase;

#define E(v, lit, rc, what) {v, lit, sizeof(lit) - 1, rc, what}

static const ecase ERRS[] = {
    /* packet types and fixed header */
    E(0, "\x30\x02\x00\x00", 0x82, "first packet not CONNECT"),
    E(0, "\xC0\x00", 0x82, "PINGREQ before CONNECT"),
    E(4, CONNECT4, 0x82, "second CONNECT"),
    E(5, "\x00\x00", 0x81, "reserved type 0"),
    E(4, "\xF0\x00", 0x81, "AUTH in 3.1.1"),
    E(4, "\x20\x02\x00\x00", 0x82, "CONNACK from a client"),
    E(5, "\x90\x03\x00\x01\x00", 0x82, "SUBACK from a client"),
    E(5, "\xB0\x02\x00\x01", 0x82, "UNSUBACK from a client"),
    E(4, "\xD0\x00", 0x82, "PINGRESP from a client"),
    E(4, "\x36\x05\x00\x01" "t\x00\x01", 0x81, "PUBLISH QoS 3"),
    E(4, "\x38\x03\x00\x01" "t", 0x81, "DUP with QoS 0"),
    E(4, "\x60\x02\x00\x01", 0x81, "PUBREL flags 0"),
    E(4, "\x41\x02\x00\x01", 0x81, "PUBACK flags 1"),
    E(4, "\x80\x06\x00\x01\x00\x01" "#\x00", 0x81, "SUBSCRIBE flags 0"),
    E(4, "\xA0\x05\x00\x01\x00\x01" "#", 0x81, "UNSUBSCRIBE flags 0"),
    E(4, "\xC1\x00", 0x81, "PINGREQ flags 1"),
    E(5, "\xE2\x00", 0x81, "DISCONNECT flags 2"),
    /* remaining length */
    E(4, "\x30\xFF\xFF\xFF\xFF\x01", 0x81, "remaining length of 5 bytes"),
    E(4, "\x30\x80\x00", 0x81, "remaining length not minimal"),
    E(4, "\x30\x82\x80\x00", 0x81, "remaining length not minimal (3 bytes)"),
    /* CONNECT */
    E(0, "\x10\x0E\x00\x06" "MQIsdp\x03\x02\x00\x3C\x00\x00", 0x84, "MQTT 3.1"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x06\x02\x00\x3C\x00\x00", 0x84, "level 6"),
    E(0, "\x10\x0C\x00\x04" "MQTX\x04\x02\x00\x3C\x00\x00", 0x84, "protocol name"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x04\x03\x00\x3C\x00\x00", 0x81, "reserved CONNECT flag"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x04\x0A\x00\x3C\x00\x00", 0x81, "will QoS without will"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x04\x22\x00\x3C\x00\x00", 0x81, "will retain without will"),
    E(0, "\x10\x11\x00\x04" "MQTT\x04\x1E\x00\x3C\x00\x00\x00\x01" "t\x00\x00", 0x81, "will QoS 3"),
    E(0, "\x10\x10\x00\x04" "MQTT\x04\x42\x00\x3C\x00\x00\x00\x02" "pw", 0x81, "password without user (3.1.1)"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x04\x00\x00\x3C\x00\x00", 0x85, "empty client id, no clean session"),
    E(0, "\x10\x0D\x00\x04" "MQTT\x04\x02\x00\x3C\x00\x00\x00", 0x81, "trailing byte"),
    E(0, "\x10\x0C\x00\x04" "MQTT\x04\x02\x00\x3C\x00\x05", 0x81, "client id past the end"),
    E(0, "\x10\x11\x00\x04" "MQTT\x04\x06\x00\x3C\x00\x00\x00\x01" "#\x00\x00", 0x90, "will topic wildcard"),
    E(0, "\x10\x10\x00\x04" "MQTT\x05\x02\x00\x3C\x03\x21\x00\x00\x00\x00", 0x82, "receive maximum 0"),
    E(0, "\x10\x12\x00\x04" "MQTT\x05\x02\x00\x3C\x05\x27\x00\x00\x00\x00\x00\x00", 0x82, "max packet size 0"),
    E(0, "\x10\x10\x00\x04" "MQTT\x05\x02\x00\x3C\x03\x16\x00\x00\x00\x00", 0x82, "auth data w/o method"),
    E(0, "\x10\x10\x00\x04" "MQTT\x05\x02\x00\x3C\x03\x23\x00\x01\x00\x00", 0x81, "topic alias in CONNECT"),
    E(0, "\x10\x0D\x00\x04" "MQTT\x05\x02\x00\x3C\x01\x17\x00", 0x81, "property past the block"),
    E(0, "\x10\x0F\x00\x04" "MQTT\x05\x02\x00\x3C\x02\x17\x02\x00\x00", 0x82, "request problem info 2"),
    E(0, "\x10\x11\x00\x04" "MQTT\x05\x02\x00\x3C\x04\x17\x01\x17\x01\x00\x00", 0x82, "duplicate property"),
    E(0, "\x10\x0D\x00\x04" "MQTT\x05\x02\x00\x3C\x09\x00\x00", 0x81, "property length past the packet"),
    /* strings */
    E(4, "\x30\x04\x00\x02\xC0\x80", 0x81, "overlong UTF-8"),
    E(4, "\x30\x04\x00\x02" "a\x00", 0x81, "U+0000"),
    E(4, "\x30\x05\x00\x03\xED\xA0\x80", 0x81, "surrogate"),
    E(4, "\x30\x04\x00\x02" "a\xFF", 0x81, "invalid byte"),
    E(4, "\x30\x03\x00\x02" "a", 0x81, "string past the packet"),
    /* PUBLISH */
    E(4, "\x30\x05\x00\x03" "a/#", 0x90, "topic with #"),
    E(5, "\x30\x06\x00\x03" "+/a\x00", 0x90, "topic with +"),
    E(4, "\x30\x02\x00\x00", 0x82, "empty topic (3.1.1)"),
    E(5, "\x30\x03\x00\x00\x00", 0x82, "empty topic without alias"),
    E(5, "\x30\x07\x00\x01" "t\x03\x23\x00\x00", 0x94, "topic alias 0"),
    E(4, "\x32\x05\x00\x01" "t\x00\x00", 0x82, "QoS 1 packet id 0"),
    E(4, "\x32\x03\x00\x01" "t", 0x81, "QoS 1 without packet id"),
    E(5, "\x30\x06\x00\x01" "t\x02\x0B\x01", 0x82, "subscription id from a client"),
    E(5, "\x30\x06\x00\x01" "t\x02\x05\x00", 0x81, "unknown property 0x05"),
    E(5, "\x30\x09\x00\x01" "t\x05\x11\x00\x00\x00\x01", 0x81, "session expiry in PUBLISH"),
    E(5, "\x30\x0E\x00\x01" "t\x0A\x02\x00\x00\x00\x01\x02\x00\x00\x00\x01", 0x82, "duplicate message expiry"),
    E(5, "\x30\x06\x00\x01" "t\x02\x01\x02", 0x82, "payload format 2"),
    E(5, "\x30\x0A\x00\x01" "t\x06\x26\x00\x01" "k\x00\x02", 0x81, "user property cut"),
    E(5, "\x30\x07\x00\x01" "t\x03\x0B\x80\x00", 0x81, "non-minimal varint property id value"),
    /* acks */
    E(4, "\x40\x03\x00\x01\x00", 0x81, "PUBACK length 3 (3.1.1)"),
    E(4, "\x40\x01\x00", 0x81, "PUBACK length 1"),
    E(4, "\x40\x02\x00\x00", 0x82, "PUBACK packet id 0"),
    E(5, "\x40\x03\x00\x01\x92", 0x82, "PUBACK reason 0x92"),
    E(5, "\x62\x03\x00\x01\x10", 0x82, "PUBREL reason 0x10"),
    E(5, "\x40\x06\x00\x01\x00\x02\x02\x00", 0x81, "PUBACK property message expiry"),
    /* SUBSCRIBE / UNSUBSCRIBE */
    E(4, "\x82\x02\x00\x01", 0x82, "SUBSCRIBE without filters"),
    E(4, "\x82\x06\x00\x00\x00\x01" "#\x00", 0x82, "SUBSCRIBE packet id 0"),
    E(4, "\x82\x0A\x00\x01\x00\x05" "a/#/b\x00", 0x8F, "# not last"),
    E(4, "\x82\x07\x00\x01\x00\x02" "a#\x00", 0x8F, "# not alone"),
    E(4, "\x82\x08\x00\x01\x00\x03" "a+/\x00", 0x8F, "+ not alone"),
    E(4, "\x82\x05\x00\x01\x00\x00\x00", 0x8F, "empty filter"),
    E(4, "\x82\x06\x00\x01\x00\x01" "#\x03", 0x81, "subscription QoS 3"),
    E(4, "\x82\x06\x00\x01\x00\x01" "#\x04", 0x81, "reserved option bit (3.1.1)"),
    E(4, "\x82\x05\x00\x01\x00\x01" "#", 0x81, "options byte missing"),
    E(5, "\x82\x07\x00\x01\x00\x00\x01" "#\x40", 0x81, "reserved option bit (5.0)"),
    E(5, "\x82\x07\x00\x01\x00\x00\x01" "#\x30", 0x82, "retain handling 3"),
    E(5, "\x82\x10\x00\x01\x00\x00\x0A" "$share/g/#\x04", 0x82, "no local on shared"),
    E(5, "\x82\x0F\x00\x01\x00\x00\x09" "$share//#\x00", 0x8F, "empty share name"),
    E(5, "\x82\x0E\x00\x01\x00\x00\x08" "$share/g\x00", 0x8F, "share without filter"),
    E(5, "\x82\x06\x00\x01\x02\x0B\x00\x00", 0x82, "subscription id 0"),
    E(5, "\x82\x0B\x00\x01\x04\x0B\x01\x0B\x02\x00\x01" "#\x00", 0x82, "two subscription ids"),
    E(4, "\xA2\x02\x00\x01", 0x82, "UNSUBSCRIBE without filters"),
    E(4, "\xA2\x08\x00\x01\x00\x04" "a/#/", 0x8F, "UNSUBSCRIBE bad filter"),
    E(5, "\xA2\x08\x00\x01\x02\x0B\x01\x00\x01" "#", 0x81, "subscription id in UNSUBSCRIBE"),
    /* PINGREQ / DISCONNECT / AUTH */
    E(4, "\xC0\x01\x00", 0x81, "PINGREQ with a body"),
    E(4, "\xE0\x01\x00", 0x81, "DISCONNECT with a body (3.1.1)"),
    E(5, "\xE0\x01\x8E", 0x82, "DISCONNECT reason 0x8E from a client"),
    E(5, "\xE0\x03\x00\x00\x00", 0x81, "DISCONNECT trailing byte"),
    E(5, "\xF0\x00", 0x82, "AUTH without method"),
    E(5, "\xF0\x01\x18", 0x81, "AUTH without property length"),
    E(5, "\xF0\x02\x10\x00", 0x82, "AUTH reason 0x10"),
};

Test(codecs_mqtt, every_error_has_its_reason_code)
{
    for (size_t i = 0; i < sizeof ERRS / sizeof ERRS[0]; i++) {
        const ecase *c = &ERRS[i];
        sr_mqtt_pkt p;
        size_t used = 12345;
        int rc = dec(c->version, c->p, c->n, 0, &p, &used);
        cr_assert_eq(rc, SR_ECODEC, "%s: rc %d", c->what, rc);
        cr_assert_eq(p.err_reason, c->reason, "%s: reason 0x%02x (%s), want 0x%02x", c->what, p.err_reason,
                     p.err_msg, c->reason);
        cr_assert(p.err_msg && *p.err_msg, "%s: no message", c->what);
        cr_assert_eq(used, 12345, "%s: consumed written on error", c->what);
        /* the same error arrives when the bytes come one at a time */
        int got = SR_MQTT_MORE;
        for (size_t k = 0; k <= c->n && got == SR_MQTT_MORE; k++) got = dec(c->version, c->p, k, 0, &p, &used);
        cr_assert_eq(got, SR_ECODEC, "%s: byte by byte rc %d", c->what, got);
        cr_assert_eq(p.err_reason, c->reason, "%s: byte by byte reason", c->what);
    }
}

Test(codecs_mqtt, connack_codes_for_311)
{
    cr_assert_eq(sr_mqtt_connack_rc311(0x84), 1);
    cr_assert_eq(sr_mqtt_connack_rc311(0x85), 2);
    cr_assert_eq(sr_mqtt_connack_rc311(0x88), 3);
    cr_assert_eq(sr_mqtt_connack_rc311(0x86), 4);
    cr_assert_eq(sr_mqtt_connack_rc311(0x87), 5);
    cr_assert_eq(sr_mqtt_connack_rc311(0x81), -1);
}

Test(codecs_mqtt, bad_arguments)
{
    sr_mqtt_pkt p;
    size_t used;
    cr_assert_eq(sr_mqtt_decode((const uint8_t *)PINGREQ, 2, 3, 0, &p, &used), SR_EINVAL);
    cr_assert_eq(sr_mqtt_decode(NULL, 2, 4, 0, &p, &used), SR_EINVAL);
    cr_assert_eq(sr_mqtt_decode((const uint8_t *)PINGREQ, 2, 4, 0, NULL, &used), SR_EINVAL);
    cr_assert_eq(sr_mqtt_decode(NULL, 0, 4, 0, &p, &used), SR_MQTT_MORE);
}

/* ---- maximum packet size ------------------------------------------------------ */

Test(codecs_mqtt, max_packet_size_is_enforced_from_the_declared_length)
{
    sr_mqtt_pkt p;
    size_t used;
    /* declared 1000 bytes, limit 100: refused from the header alone */
    cr_assert_eq(dec(4, B("\x30\xE8\x07"), 100, &p, &used), SR_ETOOBIG);
    cr_assert_eq(p.err_reason, 0x95);
    /* ... and even from the first length byte (at least 1 + 2 + 104 + 128) */
    cr_assert_eq(dec(4, B("\x30\xE8"), 100, &p, &used), SR_ETOOBIG);
    cr_assert_eq(dec(4, B("\x30\xE8"), 1000, &p, &used), SR_MQTT_MORE);
    /* a 268435455-byte PUBLISH with the default limit just waits */
    cr_assert_eq(dec(4, B("\x30\xFF\xFF\xFF\x7F"), 0, &p, &used), SR_MQTT_MORE);
    cr_assert_eq(dec(4, B("\x30\xFF\xFF\xFF\x7F"), 1u << 20, &p, &used), SR_ETOOBIG);
    /* exactly at the limit is fine, one over is not */
    cr_assert_eq(dec(4, B(PUB0_4), 9, &p, &used), SR_OK);
    cr_assert_eq(dec(4, B(PUB0_4), 8, &p, &used), SR_ETOOBIG);
    cr_assert_eq(dec(4, PUB0_4, 2, 8, &p, &used), SR_ETOOBIG);
    cr_assert_eq(dec(4, PUB0_4, 1, 8, &p, &used), SR_MQTT_MORE);
    /* the CONNECT is limited too */
    cr_assert_eq(dec(0, CONNECT4, 2, 20, &p, &used), SR_ETOOBIG);
}

/* ---- partial input ----------------------------------------------------------- */

typedef struct seen {
    uint8_t type[32];
    size_t size[32];
    size_t n;
} seen;

/* Feed stream in chunks of `step` bytes (0: first `split` bytes, then the
 * rest), decoding as a server would. Returns the final code. */
static int feed(const uint8_t *s, size_t n, size_t step, size_t split, seen *out)
{
    uint8_t buf[512];
    size_t have = 0, off = 0, fed = 0;
    int version = 0, rc = SR_MQTT_MORE;
    memset(out, 0, sizeof *out);
    while (fed < n || rc == SR_OK) {
        if (rc == SR_MQTT_MORE) {
            size_t k = step ? step : (fed < split ? split : n - fed);
            if (k > n - fed) k = n - fed;
            memcpy(buf + have, s + fed, k);
            have += k, fed += k;
        }
        sr_mqtt_pkt p;
        size_t used = 0;
        rc = sr_mqtt_decode(buf + off, have - off, version, 0, &p, &used);
        if (rc == SR_OK) {
            if (p.type == SR_MQTT_CONNECT) version = p.version;
            out->type[out->n] = p.type;
            out->size[out->n++] = used;
            off += used;
        } else if (rc != SR_MQTT_MORE) {
            return rc;
        }
        if (rc == SR_MQTT_MORE && fed == n) break;
    }
    return off == n ? SR_OK : SR_MQTT_MORE;
}

static void check_stream(const char *const *parts, const size_t *lens, size_t np)
{
    uint8_t s[512];
    size_t n = 0;
    for (size_t i = 0; i < np; i++) {
        memcpy(s + n, parts[i], lens[i]);
        n += lens[i];
    }
    seen all, part;
    cr_assert_eq(feed(s, n, n, 0, &all), SR_OK);
    cr_assert_eq(all.n, np);
    for (size_t i = 0; i < np; i++) cr_assert_eq(all.size[i], lens[i]);
    cr_assert_eq(feed(s, n, 1, 0, &part), SR_OK);
    cr_assert_eq(memcmp(&all, &part, sizeof all), 0, "byte by byte differs");
    for (size_t k = 0; k <= n; k++) {
        cr_assert_eq(feed(s, n, 0, k, &part), SR_OK, "split %zu", k);
        cr_assert_eq(memcmp(&all, &part, sizeof all), 0, "split at %zu differs", k);
    }
}

Test(codecs_mqtt, every_split_point_gives_the_same_packets_311)
{
    const char *parts[] = {CONNECT4, PUB0_4, PUB1_4, SUB4, UNSUB4, "\x40\x02\x00\x0A", PINGREQ, DISC};
    size_t lens[] = {sizeof CONNECT4 - 1, sizeof PUB0_4 - 1, sizeof PUB1_4 - 1, sizeof SUB4 - 1,
                     sizeof UNSUB4 - 1, 4, 2, 2};
    check_stream(parts, lens, 8);
}

Test(codecs_mqtt, every_split_point_gives_the_same_packets_50)
{
    const char *parts[] = {CONNECT5, PUB1_5, PUB0_5, SUB5, UNSUB5, AUTH5, PINGREQ, DISC5};
    size_t lens[] = {sizeof CONNECT5 - 1, sizeof PUB1_5 - 1, sizeof PUB0_5 - 1, sizeof SUB5 - 1,
                     sizeof UNSUB5 - 1, sizeof AUTH5 - 1, 2, sizeof DISC5 - 1};
    check_stream(parts, lens, 8);
}

/* ---- encoders: byte-exact ------------------------------------------------------ */

static void expect(sr_buf *b, const char *lit, size_t n)
{
    cr_assert_eq(b->len, n, "length %zu, want %zu", b->len, n);
    cr_assert_eq(memcmp(b->data, lit, n), 0, "bytes differ");
    b->len = 0;
}
#define EXPECT(b, lit) expect((b), (lit), sizeof(lit) - 1)

Test(codecs_mqtt, connack_bytes)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mqtt_encode_connack(&b, 4, 1, 0, NULL), SR_OK);
    EXPECT(&b, "\x20\x02\x01\x00");
    cr_assert_eq(sr_mqtt_encode_connack(&b, 4, 1, 5, NULL), SR_OK); /* refused: no session */
    EXPECT(&b, "\x20\x02\x00\x05");
    cr_assert_eq(sr_mqtt_encode_connack(&b, 4, 0, 6, NULL), SR_EINVAL);
    cr_assert_eq(sr_mqtt_encode_connack(&b, 5, 0, 0, NULL), SR_OK);
    EXPECT(&b, "\x20\x03\x00\x00\x00");
    sr_mqtt_props pr = {0};
    pr.present = SR_MQTT_P_RECEIVE_MAX | SR_MQTT_P_MAX_PACKET_SIZE | SR_MQTT_P_TOPIC_ALIAS_MAX |
                 SR_MQTT_P_ASSIGNED_CLIENT_ID | SR_MQTT_P_REASON_STRING;
    pr.receive_max = 10;
    pr.max_packet_size = 65536;
    pr.topic_alias_max = 0;
    pr.assigned_client_id = STR("abc");
    pr.reason_string = STR("ok");
    cr_assert_eq(sr_mqtt_encode_connack(&b, 5, 0, 0, &pr), SR_OK);
    EXPECT(&b, "\x20\x19\x00\x00\x16"
               "\x12\x00\x03" "abc"
               "\x1F\x00\x02" "ok"
               "\x21\x00\x0A"
               "\x22\x00\x00"
               "\x27\x00\x01\x00\x00");
    cr_assert_eq(sr_mqtt_encode_connack(&b, 5, 0, 0x84, NULL), SR_OK);
    EXPECT(&b, "\x20\x03\x00\x84\x00");
    /* a property CONNACK cannot carry */
    pr.present = SR_MQTT_P_TOPIC_ALIAS;
    cr_assert_eq(sr_mqtt_encode_connack(&b, 5, 0, 0, &pr), SR_EINVAL);
    cr_assert_eq(b.len, 0);
    sr_buf_release(&b);
}

Test(codecs_mqtt, publish_bytes)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_mqtt_publish m = {STR("t"), SL("x"), 1, 1, 0};
    cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 7, NULL), SR_OK);
    EXPECT(&b, "\x33\x06\x00\x01" "t" "\x00\x07" "x");
    m.qos = 0;
    m.retain = 0;
    cr_assert_eq(sr_mqtt_encode_publish(&b, 5, &m, 0, NULL), SR_OK);
    EXPECT(&b, "\x30\x05\x00\x01" "t" "\x00" "x");
    sr_mqtt_str user[2] = {STR("k"), STR("v")};
    sr_mqtt_props pr = {0};
    pr.present = SR_MQTT_P_CONTENT_TYPE;
    pr.content_type = STR("j");
    pr.user = user;
    pr.n_user = 1;
    m.qos = 1;
    m.dup = 1;
    cr_assert_eq(sr_mqtt_encode_publish(&b, 5, &m, 1, &pr), SR_OK);
    EXPECT(&b, "\x3A\x12\x00\x01" "t" "\x00\x01" "\x0B" "\x03\x00\x01" "j" "\x26\x00\x01" "k" "\x00\x01" "v" "x");
    /* invalid: wildcard topic, QoS 1 without id, DUP on QoS 0, QoS 3, empty topic */
    m.topic = STR("a/+");
    cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 1, NULL), SR_EINVAL);
    m.topic = STR("t");
    cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 0, NULL), SR_EINVAL);
    m.qos = 0;
    cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 0, NULL), SR_EINVAL);
    m.qos = 3;
    m.dup = 0;
    cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 1, NULL), SR_EINVAL);
    m.qos = 0;
    m.topic = STR("");
    cr_assert_eq(sr_mqtt_encode_publish(&b, 5, &m, 0, NULL), SR_EINVAL);
    cr_assert_eq(b.len, 0);
    sr_buf_release(&b);
}

Test(codecs_mqtt, remaining_length_boundaries)
{
    static uint8_t pay[20000];
    struct { size_t rem; const char *hdr; size_t hl; } cases[] = {
        {127, "\x30\x7F", 2}, {128, "\x30\x80\x01", 3}, {16383, "\x30\xFF\x7F", 3}, {16384, "\x30\x80\x80\x01", 4},
    };
    for (size_t i = 0; i < 4; i++) {
        sr_buf b;
        sr_buf_init(&b);
        sr_mqtt_publish m = {STR("t"), {pay, cases[i].rem - 3}, 0, 0, 0};
        cr_assert_eq(sr_mqtt_encode_publish(&b, 4, &m, 0, NULL), SR_OK);
        cr_assert_eq(b.len, cases[i].hl + cases[i].rem);
        cr_assert_eq(memcmp(b.data, cases[i].hdr, cases[i].hl), 0, "header of %zu", cases[i].rem);
        sr_mqtt_pkt p;
        size_t used;
        cr_assert_eq(sr_mqtt_decode(b.data, b.len, 4, 0, &p, &used), SR_OK);
        cr_assert_eq(used, b.len);
        cr_assert_eq(p.publish.payload.len, cases[i].rem - 3);
        cr_assert_eq(sr_mqtt_decode(b.data, b.len - 1, 4, 0, &p, &used), SR_MQTT_MORE);
        sr_buf_release(&b);
    }
}

Test(codecs_mqtt, ack_bytes)
{
    sr_mqtt_props no = {0};
    no.present = SR_MQTT_P_REASON_STRING;
    no.reason_string = STR("no");
    /* {version, type, packet id, reason code, props, rc, bytes (when SR_OK)} */
    static const struct {
        int ver, type;
        uint16_t pid;
        uint8_t code;
        int reason; /* with the reason string "no" */
        int rc;
        const char *bytes;
        size_t len;
    } cases[] = {
        {4, SR_MQTT_PUBACK, 7, 0, 0, SR_OK, B("\x40\x02\x00\x07")},
        {5, SR_MQTT_PUBACK, 7, 0, 0, SR_OK, B("\x40\x02\x00\x07")},
        {5, SR_MQTT_PUBACK, 7, 0x10, 0, SR_OK, B("\x40\x03\x00\x07\x10")},
        {5, SR_MQTT_PUBACK, 7, 0x80, 1, SR_OK, B("\x40\x09\x00\x07\x80\x05\x1F\x00\x02" "no")},
        {4, SR_MQTT_PUBREC, 7, 0, 0, SR_OK, B("\x50\x02\x00\x07")},
        {4, SR_MQTT_PUBREL, 7, 0, 0, SR_OK, B("\x62\x02\x00\x07")},
        {5, SR_MQTT_PUBCOMP, 7, 0x92, 0, SR_OK, B("\x70\x03\x00\x07\x92")},
        {4, SR_MQTT_PUBACK, 0, 0, 0, SR_EINVAL, B("")},
        {4, SR_MQTT_SUBACK, 1, 0, 0, SR_EINVAL, B("")},
    };
    sr_buf b;
    sr_buf_init(&b);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(sr_mqtt_encode_ack(&b, cases[i].ver, cases[i].type, cases[i].pid, cases[i].code,
                                        cases[i].reason ? &no : NULL),
                     cases[i].rc, "case %zu", i);
        if (cases[i].rc == SR_OK) expect(&b, cases[i].bytes, cases[i].len);
    }
    sr_buf_release(&b);
}

Test(codecs_mqtt, suback_unsuback_pingresp_disconnect_bytes)
{
    sr_buf b;
    sr_buf_init(&b);
    const uint8_t codes[] = {0x01, 0x80};
    cr_assert_eq(sr_mqtt_encode_suback(&b, 4, 1, codes, 2, NULL), SR_OK);
    EXPECT(&b, "\x90\x04\x00\x01\x01\x80");
    cr_assert_eq(sr_mqtt_encode_suback(&b, 5, 1, codes, 2, NULL), SR_OK);
    EXPECT(&b, "\x90\x05\x00\x01\x00\x01\x80");
    const uint8_t bad[] = {0x8F};
    cr_assert_eq(sr_mqtt_encode_suback(&b, 4, 1, bad, 1, NULL), SR_EINVAL);
    cr_assert_eq(sr_mqtt_encode_suback(&b, 5, 1, bad, 1, NULL), SR_OK);
    EXPECT(&b, "\x90\x04\x00\x01\x00\x8F");
    cr_assert_eq(sr_mqtt_encode_suback(&b, 5, 1, codes, 0, NULL), SR_EINVAL);
    const uint8_t uc[] = {0x00, 0x11};
    cr_assert_eq(sr_mqtt_encode_unsuback(&b, 4, 1, NULL, 0, NULL), SR_OK);
    EXPECT(&b, "\xB0\x02\x00\x01");
    cr_assert_eq(sr_mqtt_encode_unsuback(&b, 5, 1, uc, 2, NULL), SR_OK);
    EXPECT(&b, "\xB0\x05\x00\x01\x00\x00\x11");
    cr_assert_eq(sr_mqtt_encode_pingresp(&b), SR_OK);
    EXPECT(&b, "\xD0\x00");
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 5, 0, NULL), SR_OK);
    EXPECT(&b, "\xE0\x00");
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 5, 0x8E, NULL), SR_OK);
    EXPECT(&b, "\xE0\x01\x8E");
    sr_mqtt_props pr = {0};
    pr.present = SR_MQTT_P_REASON_STRING;
    pr.reason_string = STR("bad");
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 5, 0x81, &pr), SR_OK);
    EXPECT(&b, "\xE0\x08\x81\x06\x1F\x00\x03" "bad");
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 4, 0, NULL), SR_EINVAL);
    sr_buf_release(&b);
}

/* issue #11: a SUBACK carries one code per filter however many the
 * SUBSCRIBE had (MQTT-3.9.3-1; the server used to stop at 64), and so does
 * a 5.0 UNSUBACK; 300 codes take a two-byte remaining length */
Test(codecs_mqtt, suback_and_unsuback_with_hundreds_of_codes)
{
    uint8_t codes[300];
    for (size_t i = 0; i < sizeof codes; i++) codes[i] = i % 3 ? 0x00 : 0x80;
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mqtt_encode_suback(&b, 4, 0x1234, codes, 300, NULL), SR_OK);
    cr_assert_eq(b.len, 1 + 2 + 2 + 300);
    cr_assert(!memcmp(b.data, "\x90\xAE\x02\x12\x34", 5));
    cr_assert(!memcmp(b.data + 5, codes, 300));
    b.len = 0;
    cr_assert_eq(sr_mqtt_encode_suback(&b, 5, 0x1234, codes, 300, NULL), SR_OK);
    cr_assert_eq(b.len, 1 + 2 + 2 + 1 + 300);
    cr_assert(!memcmp(b.data, "\x90\xAF\x02\x12\x34\x00", 6));
    cr_assert(!memcmp(b.data + 6, codes, 300));
    for (size_t i = 0; i < sizeof codes; i++) codes[i] = i % 2 ? 0x11 : 0x00;
    b.len = 0;
    cr_assert_eq(sr_mqtt_encode_unsuback(&b, 5, 7, codes, 300, NULL), SR_OK);
    cr_assert_eq(b.len, 1 + 2 + 2 + 1 + 300);
    cr_assert(!memcmp(b.data, "\xB0\xAF\x02\x00\x07\x00", 6));
    cr_assert(!memcmp(b.data + 6, codes, 300));
    sr_buf_release(&b);
}

Test(codecs_mqtt, encoders_fail_cleanly_when_memory_runs_out)
{
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(sr_mqtt_encode_pingresp(&b), SR_OK); /* b now has some capacity */
    uint8_t big[4096] = {0};
    sr_mqtt_publish m = {STR("t"), {big, sizeof big}, 1, 0, 0};
    const uint8_t codes[] = {0};
    fault_alloc_install();
    fault_alloc_arm(1);
    cr_assert_eq(sr_mqtt_encode_publish(&b, 5, &m, 1, NULL), SR_ENOMEM);
    cr_assert(fault_alloc_fired());
    cr_assert_eq(b.len, 2, "buffer changed on ENOMEM");
    sr_buf_release(&b);
    sr_buf_init(&b);
    fault_alloc_arm(1);
    cr_assert_eq(sr_mqtt_encode_suback(&b, 4, 1, codes, 1, NULL), SR_ENOMEM);
    cr_assert_eq(b.len, 0);
    fault_alloc_arm(0);
    cr_assert_eq(sr_mqtt_encode_publish(&b, 5, &m, 1, NULL), SR_OK);
    fault_alloc_uninstall();
    sr_buf_release(&b);
}

/* ---- round trips -------------------------------------------------------------- */

Test(codecs_mqtt, publish_round_trips_in_both_versions)
{
    sr_mqtt_str user[4] = {STR("a"), STR("1"), STR("b"), STR("")};
    sr_mqtt_props pr = {0};
    pr.present = SR_MQTT_P_PAYLOAD_FORMAT | SR_MQTT_P_MESSAGE_EXPIRY | SR_MQTT_P_CONTENT_TYPE |
                 SR_MQTT_P_RESPONSE_TOPIC | SR_MQTT_P_CORRELATION_DATA | SR_MQTT_P_TOPIC_ALIAS;
    pr.payload_format = 1;
    pr.message_expiry = 0xDEADBEEF;
    pr.content_type = STR("application/json");
    pr.response_topic = STR("wip/v1/op/gw/g1/res/ack");
    pr.correlation_data = SL("\x00\x01\x02");
    pr.topic_alias = 3;
    pr.user = user;
    pr.n_user = 2;
    for (int v = 4; v <= 5; v++) {
        for (uint8_t qos = 0; qos <= 2; qos++) {
            sr_buf b, b2;
            sr_buf_init(&b);
            sr_buf_init(&b2);
            sr_mqtt_publish m = {STR("wip/v1/op/gw/g1/status"), SL("{\"state\":\"ONLINE\"}"), qos, 1, qos > 0};
            cr_assert_eq(sr_mqtt_encode_publish(&b, v, &m, 513, &pr), SR_OK);
            sr_mqtt_pkt p;
            size_t used;
            cr_assert_eq(sr_mqtt_decode(b.data, b.len, v, 0, &p, &used), SR_OK, "%s", p.err_msg);
            cr_assert_eq(used, b.len);
            cr_assert(str_is(p.publish.topic, "wip/v1/op/gw/g1/status"));
            cr_assert(bin_is(p.publish.payload, "{\"state\":\"ONLINE\"}"));
            cr_assert(p.publish.qos == qos && p.publish.retain == 1 && p.publish.dup == (qos > 0));
            cr_assert_eq(p.packet_id, qos ? 513 : 0);
            if (v == 5) {
                cr_assert_eq(p.props.present, pr.present);
                cr_assert_eq(p.props.message_expiry, 0xDEADBEEF);
                cr_assert(str_is(p.props.response_topic, "wip/v1/op/gw/g1/res/ack"));
                cr_assert_eq(p.props.correlation_data.len, 3);
                cr_assert_eq(p.props.n_user, 2);
                size_t pos = 0;
                sr_mqtt_str k, val;
                cr_assert(sr_mqtt_user_next(&p.props, &pos, &k, &val) && str_is(k, "a") && str_is(val, "1"));
                cr_assert(sr_mqtt_user_next(&p.props, &pos, &k, &val) && str_is(k, "b") && val.len == 0);
                cr_assert(!sr_mqtt_user_next(&p.props, &pos, &k, &val));
            } else {
                cr_assert_eq(p.props.present, 0);
            }
            /* re-encoding the decoded packet gives the same bytes */
            cr_assert_eq(sr_mqtt_encode_publish(&b2, v, &p.publish, p.packet_id, &p.props), SR_OK);
            cr_assert_eq(b2.len, b.len);
            cr_assert_eq(memcmp(b.data, b2.data, b.len), 0);
            sr_buf_release(&b);
            sr_buf_release(&b2);
        }
    }
}

Test(codecs_mqtt, ack_and_disconnect_round_trips)
{
    sr_mqtt_props pr = {0};
    pr.present = SR_MQTT_P_REASON_STRING;
    pr.reason_string = STR("quota");
    for (uint8_t t = SR_MQTT_PUBACK; t <= SR_MQTT_PUBCOMP; t++) {
        for (int v = 4; v <= 5; v++) {
            sr_buf b;
            sr_buf_init(&b);
            uint8_t reason = (v == 5 && t <= SR_MQTT_PUBREC) ? 0x97 : 0;
            cr_assert_eq(sr_mqtt_encode_ack(&b, v, t, 65535, reason, v == 5 ? &pr : NULL), SR_OK);
            sr_mqtt_pkt p;
            size_t used;
            cr_assert_eq(sr_mqtt_decode(b.data, b.len, v, 0, &p, &used), SR_OK, "%s", p.err_msg);
            cr_assert(p.type == t && p.packet_id == 65535 && p.reason == reason);
            if (v == 5) cr_assert(str_is(p.props.reason_string, "quota"));
            sr_buf_release(&b);
        }
    }
    sr_buf b;
    sr_buf_init(&b);
    pr.present |= SR_MQTT_P_SESSION_EXPIRY | SR_MQTT_P_SERVER_REFERENCE;
    pr.session_expiry = 30;
    pr.server_reference = STR("other:1883");
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 5, 0x98, &pr), SR_EINVAL); /* server: no session expiry */
    cr_assert_eq(b.len, 0);
    pr.present &= ~(uint32_t)SR_MQTT_P_SESSION_EXPIRY;
    cr_assert_eq(sr_mqtt_encode_disconnect(&b, 5, 0x98, &pr), SR_OK);
    sr_mqtt_pkt p;
    size_t used;
    cr_assert_eq(sr_mqtt_decode(b.data, b.len, 5, 0, &p, &used), SR_OK, "%s", p.err_msg);
    cr_assert(p.reason == 0x98 && !(p.props.present & SR_MQTT_P_SESSION_EXPIRY) &&
              str_is(p.props.server_reference, "other:1883") && str_is(p.props.reason_string, "quota"));
    sr_buf_release(&b);
}

/* ---- topics -------------------------------------------------------------------- */

Test(codecs_mqtt, topic_matching_table)
{
    static const struct { const char *f, *t; int m; } T[] = {
        {"sport/tennis/player1/#", "sport/tennis/player1", 1},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", 1},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1},
        {"sport/#", "sport", 1},
        {"#", "sport/tennis", 1},
        {"#", "/", 1},
        {"sport/tennis/+", "sport/tennis/player1", 1},
        {"sport/tennis/+", "sport/tennis/player1/ranking", 0},
        {"sport/+", "sport", 0},
        {"sport/+", "sport/", 1},
        {"+/+", "/finance", 1},
        {"/+", "/finance", 1},
        {"+", "/finance", 0},
        {"+", "finance", 1},
        {"+/tennis/#", "sport/tennis/x", 1},
        {"a/b", "a/b", 1},
        {"a/b", "a/bc", 0},
        {"a/bc", "a/b", 0},
        {"a/b", "a/b/c", 0},
        {"a/b/c", "a/b", 0},
        {"a//c", "a//c", 1},
        {"a/+/c", "a//c", 1},
        {"#", "$SYS/x", 0},
        {"+/monitor/Clients", "$SYS/monitor/Clients", 0},
        {"$SYS/#", "$SYS/monitor/Clients", 1},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", 1},
        {"wip/v1/op1/gw/+/status", "wip/v1/op1/gw/g7/status", 1},
        {"wip/v1/op1/gw/+/status", "wip/v1/op2/gw/g7/status", 0},
        {"wip/v1/+/gw/g7/#", "wip/v1/op1/gw/g7/data/periodic", 1},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        cr_assert_eq(sr_mqtt_topic_match(T[i].f, strlen(T[i].f), T[i].t, strlen(T[i].t)), T[i].m, "%s vs %s",
                     T[i].f, T[i].t);
    cr_assert(sr_mqtt_topic_filter_valid("a/+/#", 5));
    cr_assert(sr_mqtt_topic_filter_valid("+", 1));
    cr_assert(!sr_mqtt_topic_filter_valid("a/#/", 4));
    cr_assert(!sr_mqtt_topic_filter_valid("a/b+", 4));
    cr_assert(sr_mqtt_topic_name_valid("a/b", 3));
    cr_assert(!sr_mqtt_topic_name_valid("", 0));
    cr_assert(!sr_mqtt_topic_name_valid("a/#", 3));
}

/* ---- fuzz seeds ---------------------------------------------------------------- */

Test(codecs_mqtt, write_fuzz_seeds_when_asked)
{
    if (!getenv("SR_GOLDEN_WRITE")) return;
    const char *dir = SR_TEST_DATA "/../fuzz/mqtt";
    struct { const char *name; const char *a, *b, *c, *d; size_t na, nb, nc, nd; } s[] = {
        {"v311-session", CONNECT4, PUB1_4, SUB4, PINGREQ, sizeof CONNECT4 - 1, sizeof PUB1_4 - 1, sizeof SUB4 - 1, 2},
        {"v311-qos0-disconnect", CONNECT4, PUB0_4, UNSUB4, DISC, sizeof CONNECT4 - 1, sizeof PUB0_4 - 1,
         sizeof UNSUB4 - 1, 2},
        {"v5-session", CONNECT5, PUB1_5, SUB5, PINGREQ, sizeof CONNECT5 - 1, sizeof PUB1_5 - 1, sizeof SUB5 - 1, 2},
        {"v5-qos0-auth-disconnect", CONNECT5, PUB0_5, AUTH5, DISC5, sizeof CONNECT5 - 1, sizeof PUB0_5 - 1,
         sizeof AUTH5 - 1, sizeof DISC5 - 1},
        {"v5-unsub-acks", CONNECT5, UNSUB5, "\x40\x09\x00\x0A\x80\x05\x1F\x00\x02" "no", "\x62\x02\x00\x0A",
         sizeof CONNECT5 - 1, sizeof UNSUB5 - 1, 11, 4},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        uint8_t buf[512];
        size_t n = 0;
        memcpy(buf + n, s[i].a, s[i].na), n += s[i].na;
        memcpy(buf + n, s[i].b, s[i].nb), n += s[i].nb;
        memcpy(buf + n, s[i].c, s[i].nc), n += s[i].nc;
        memcpy(buf + n, s[i].d, s[i].nd), n += s[i].nd;
        seen all;
        cr_assert_eq(feed(buf, n, n, 0, &all), SR_OK, "seed %s does not decode", s[i].name);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.bin", dir, s[i].name);
        cr_assert_eq(tu_write_file(path, buf, n), 0, "%s", path);
    }
    /* streams of an established connection (the fuzzer also decodes every
     * input as version 4 and as version 5 without a CONNECT) */
    struct { const char *name; int v; const char *p[4]; size_t n[4]; } e[] = {
        {"established-v311", 4, {PUB1_4, SUB4, PINGREQ, DISC}, {sizeof PUB1_4 - 1, sizeof SUB4 - 1, 2, 2}},
        {"established-v5", 5, {PUB1_5, SUB5, UNSUB5, DISC5},
         {sizeof PUB1_5 - 1, sizeof SUB5 - 1, sizeof UNSUB5 - 1, sizeof DISC5 - 1}},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        uint8_t buf[512];
        size_t n = 0;
        for (int j = 0; j < 4; j++) memcpy(buf + n, e[i].p[j], e[i].n[j]), n += e[i].n[j];
        for (size_t off = 0; off < n;) {
            sr_mqtt_pkt p;
            size_t used;
            cr_assert_eq(sr_mqtt_decode(buf + off, n - off, e[i].v, 0, &p, &used), SR_OK, "%s", e[i].name);
            off += used;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.bin", dir, e[i].name);
        cr_assert_eq(tu_write_file(path, buf, n), 0, "%s", path);
    }
}
