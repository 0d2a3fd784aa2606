/*
 * api/gwif_json.h -- the GW-IF JSON binding (../shared/docs/interface.md):
 * the message envelope, values, and the acknowledgement. Shared by the MQTT
 * and HTTP bindings, so that field names live in one place.
 *
 *   {"header":{"messageType","messageId","correlationId?","timestamp"},
 *    "body":{...}, "protection?":{...}}
 */
#ifndef SR_GWIF_JSON_H
#define SR_GWIF_JSON_H

#include "api/wire.h"
#include "engine/suiro.h"

#include <jansson.h>

/* What an outcome means for the acknowledgement (docs/mqtt.md,
 * "Acknowledgement outcomes"; both bindings use it):
 *   SR_GW_DURABLE    stored, or a duplicate already stored: positive ack;
 *   SR_GW_REFUSED    the message itself is invalid (a resend can never
 *                    succeed): acknowledged with the error, nothing stored;
 *   SR_GW_TRANSIENT  not stored for a reason of the server (queue full, I/O
 *                    error, no space, read-only, poisoned, stopping, memory):
 *                    never a positive ack -- the gateway must resend. */
enum { SR_GW_DURABLE = 0, SR_GW_REFUSED = 1, SR_GW_TRANSIENT = 2 };
/* The outcome of an engine result code (SR_OK, SR_E...): that of its wire
 * error (sr_wire_of_rc, api/wire.h). */
int sr_gw_outcome_rc(int rc);
/* The outcome of a wire error: SR_WIRE_OK is durable, a transient one
 * (E9xxx, sr_wire_transient) transient, anything else a refusal. */
int sr_gw_outcome_code(sr_wire code);

typedef struct sr_gw_msg {
    const char *type;       /* header.messageType (borrowed from root) */
    const char *message_id; /* header.messageId, "" if absent */
    const char *correlation_id;
    int64_t ts;             /* header.timestamp, UTC ms (0 if absent) */
    json_t *root;           /* owned */
    json_t *body;           /* borrowed from root; an object */
    json_t *protection;     /* borrowed from root; NULL if absent (R-SE-3, docs/signatures.md) */
    int sig_verified;       /* protection verified by sr_gw_parse_sig (or before the message was held) */
    char *signed_body;      /* owned; verified: a copy of the exact bytes of "body" as sent (NUL-ended) */
    size_t signed_len;
} sr_gw_msg;

/* A refusal: code, message, and detail (a JSON array of {index,dataId,error}). */
/* At most this many refused values are named in an answer's detail (the
 * message counts them all): a refusal's answer stays small whatever the
 * message's size. */
#define SR_GW_DETAIL_MAX 100

typedef struct sr_gw_err {
    sr_wire code; /* SR_WIRE_OK: no error */
    char message[200];
    json_t *detail; /* owned; may be NULL; at most SR_GW_DETAIL_MAX entries */
    size_t nbad;    /* values refused (sr_gw_values_event) */
} sr_gw_err;

void sr_gw_err_clear(sr_gw_err *e);

/* Parse an envelope. SR_OK, or an error with err->code E1002 (not JSON,
 * invalid UTF-8) or E1001 (header fields missing or of the wrong type). */
SR_MUST_CHECK int sr_gw_parse(const void *data, size_t len, sr_gw_msg *out, sr_gw_err *err);
void sr_gw_msg_release(sr_gw_msg *m);

/* sr_gw_parse, then the data protection of a message of gateway gw of
 * operator op (R-SE-3, api/sigcheck.h, docs/signatures.md): a message that
 * carries "protection" is verified over the exact bytes of its "body" member
 * as sent against the gateway's registered certificate; refused (nothing
 * stored) with err->code E5001 (bad signature), E5003 (certificate unknown,
 * expired, revoked, not the gateway's) or E1001 (protection not an object
 * of three strings). Verified: out->sig_verified and signed_body.
 * The fast path (sr_gw_fast) never takes a message with protection, so the
 * values of a protected message always come through here. Any thread. */
SR_MUST_CHECK int sr_gw_parse_sig(sr_engine *e, const char *op, const char *gw, const void *data, size_t len,
                                  sr_gw_msg *out, sr_gw_err *err);
/* 1 if a message may carry "protection" (the bytes "protection" with their
 * quotes occur in it; a string value holding them says 1 too): such a
 * message is checked on the worker queue, never on the loop (its
 * verification costs 0.7-8.9 M instructions; api/server.c invariant 7,
 * api/gwif_http.c), charged to its operator's share. A memmem over the
 * whole message (~80 instructions per value): the bindings ask it of a
 * values message only once the fast path declined it. */
int sr_gw_may_be_signed(const void *data, size_t len);

/*
 * Turn body.values (an array of {dataId, timestamp, value, quality?}) into
 * one serialized measurements event for gateway gw of operator op. Every
 * value is checked (known data point of this operator, reached through this
 * gateway, JSON type of the point's type, range, time, quality); on any
 * problem nothing is built and err names EACH bad value in err->detail.
 * *nvalues gets the number of values. monitor_id: the monitor whose values
 * these are (GW_PERIODIC_DATA, recorded in the event: the push to its app is
 * derived from it), or NULL.
 */
SR_MUST_CHECK int sr_gw_values_event(sr_engine *e, const char *op, const char *gw, const char *message_id,
                                     const char *monitor_id, json_t *values, sr_buf *event, size_t *nvalues,
                                     sr_gw_err *err);
/* The same for a message whose protection verified (sig_state
 * SR_SIG_VERIFIED, i.e. sr_gw_msg.sig_verified: the event records it,
 * Measurements.sig_state, docs/signatures.md) or not (SR_SIG_NONE). */
SR_MUST_CHECK int sr_gw_values_event_sig(sr_engine *e, const char *op, const char *gw, const char *message_id,
                                         const char *monitor_id, int sig_state, json_t *values, sr_buf *event,
                                         size_t *nvalues, sr_gw_err *err);
/* sr_gw_values_event_sig's sig_state of a parsed message */
#define sr_gw_sig_state(msg) ((msg)->sig_verified ? 1 /* SR_SIG_VERIFIED */ : 0 /* SR_SIG_NONE */)

/* The fast path for values messages: a canonical, fully valid message is
 * read in one pass (no JSON tree) straight into a measurements event
 * (appended to event), and 0 is returned; -1 means "not sure": call
 * sr_gw_parse + sr_gw_values_event, which accept exactly the same messages
 * and explain every refusal. Both build the event of the message's points in
 * the order of their first value, each point's values in message order
 * (what sr_ev_measurements is given; test_gwif_json checks it against the
 * builder's own event for messages of up to 300 points). */
typedef struct sr_gw_fast_msg {
    char type[40];
    char message_id[72];
    char correlation_id[72];
    int64_t ts;
    size_t nvalues;
} sr_gw_fast_msg;
int sr_gw_fast(sr_engine *e, const char *op, const char *gw, const void *data, size_t len, sr_gw_fast_msg *m,
               sr_buf *event);

/* A GW-IF message checked off the loop (issue #11 item 7: a large message is
 * parsed and validated on the worker queue, api/workq.h): exactly what the
 * loop's handlers compute inline, kept for them to use. For a values
 * message (is_values) the fast path first (fast == 0: ev and fm are set),
 * else sr_gw_parse (parse_rc, msg, err) and, if it parsed and is_values,
 * sr_gw_values_event (values_rc, ev, nvalues, err). Any thread. */
typedef struct sr_gw_checked {
    int fast;
    sr_gw_fast_msg fm;
    int parse_rc;
    sr_gw_msg msg;
    int values_rc;
    size_t nvalues;
    sr_buf ev;
    sr_gw_err err;
} sr_gw_checked;
void sr_gw_check(sr_engine *e, const char *op, const char *gw, const void *data, size_t len, int is_values,
                 sr_gw_checked *out);
void sr_gw_checked_release(sr_gw_checked *c);

/* Gateways whose values run ahead of the server's clock (R-MO-4): with
 * sr_gw_skew_set(ms) (0: off; the server sets [alarms] gateway_skew_ms),
 * every values message built (both paths above) whose newest timestamp is
 * more than ms ahead of the wall clock is accepted as it is and noted: one
 * note per (operator, gateway) until taken, the furthest ahead kept. The
 * alarm rule gateway-skew (api/alarms.c) takes them. Any thread. */
enum { SR_GW_SKEW_NOTES = 256 };
typedef struct sr_gw_skew_note {
    char op[72], gw[72], message_id[72];
    int64_t ahead_ms;
} sr_gw_skew_note;
void sr_gw_skew_set(uint32_t ms);
size_t sr_gw_skew_take(sr_gw_skew_note *out, size_t cap);

/* Values refused for their range (R-MO-3): a values message holding a GOOD
 * or UNCERTAIN value outside its data point's min/max is refused (E1001,
 * nothing stored) by sr_gw_values_event above, or, should the master have
 * changed since, by the writer (sr_result.range, err.where the point: the
 * MQTT completion and the HTTP answer pass it on).
 * sr_gw_range_refused(op, gw, point, what) notes it: one note per (operator,
 * data point) until taken, the latest refusal kept, the refusals counted;
 * only a refusal pays (a mutex). The alarm rule value-out-of-range
 * (api/alarms.c) takes them. Any thread. */
enum { SR_GW_RANGE_NOTES = 256 };
typedef struct sr_gw_range_note {
    char op[72], point[72], gw[72], msg[200];
    uint32_t count; /* values of the point refused since the last take */
} sr_gw_range_note;
void sr_gw_range_refused(const char *op, const char *gw, const char *point, const char *what);
size_t sr_gw_range_take(sr_gw_range_note *out, size_t cap);

/* Signed values required per data point (issue #18, docs/signatures.md
 * "Requiring signatures"): an RG_SIGREQ entry whose scope (its `access`)
 * names "values" makes an unsigned values message naming that point
 * refused as a whole with E5001 (as a bad signature: nothing stored), by
 * both paths (the fast path declines it, sr_gw_values_event_sig refuses).
 * The data points with any RG_SIGREQ entry are kept in memory
 * (sr_gw_sigreq_load at start, sr_gw_sigreq_note from the engine's
 * registry hook, on the writer thread after the commit and before the
 * admin's answer); only an unsigned message naming such a point reads the
 * entry for its scope. With no requirement (the common case) an unsigned
 * message pays one relaxed atomic load. Any thread. */
int sr_gw_sigreq_load(sr_engine *e);
void sr_gw_sigreq_note(const char *op, const char *data_id, int present);
/* 1 if unsigned values of (op, data point did[0..dlen)) are refused */
int sr_gw_sigreq_values(sr_engine *e, const char *op, const char *did, size_t dlen);

/* The GW_ACK message for a message (correlationId = its messageId). */
SR_MUST_CHECK int sr_gw_ack(const char *correlation_id, sr_wire code, const char *message, json_t *detail,
                            int64_t now_ms, sr_buf *out);

#endif
