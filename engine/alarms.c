/*
 * engine/alarms.c -- the alarm life cycle in the index (issue #17, R-MO-3;
 * docs/monitoring.md "Alarms"): the AlarmEvent applier (SR_EVENT_KINDS,
 * apply.c) and the `alarms` database's reads (records.h sr_read_alarm,
 * sr_list_alarms).
 *
 * An alarm is one occurrence of a condition: (operator, rule, subject). Its
 * steps are AlarmEvents (codecs/events.proto): raised, acknowledged,
 * resolved. The `alarms` database (schema.h, layout 11) keeps each alarm's
 * whole state under its id and, while it is open, the condition's open row
 * naming it.
 *
 * INVARIANTS
 *  (1) At most one open alarm (raised or acknowledged) per condition: a
 *      raised event of a condition with an open alarm is a re-occurrence of
 *      that alarm (count + 1), never a second alarm.
 *  (2) An alarm's id is "A" and the seq of the event that raised it in 16
 *      upper-case hex digits: the writer and the replay derive the same id
 *      (apply.c invariant 1), and key order is raise order.
 *  (3) Steps move forward only: raised -> acknowledged -> resolved, or
 *      raised -> resolved; the writer refuses another step (SR_ECONFLICT
 *      names the alarm's state and who moved it there), the replay applies
 *      what the writer accepted. A resolved alarm's condition has no open
 *      row: the condition may raise a new alarm.
 *  (4) An event of an operator reaches only that operator's alarms (a step
 *      naming another operator's alarm is refused as not found).
 *  (5) An event without a rule (push.c's before issue #17) reads as rule
 *      "push-dropped", subject the app of "push-dropped-<app>" (or rule =
 *      its alarm_id): old logs replay into alarms (legacy_rule).
 */
#include "engine/engine_int.h"

#include "codecs/ids.h"
#include "engine/records.h"
#include "storage/index.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef Suiro__V1__AlarmEvent AlarmEvent;

#define ALARM_TEXT_MAX 1000 /* a message or a comment, bytes */
#define LEGACY_PUSH "push-dropped-"

/* the condition of an event: its rule and subject (invariant 5) */
static void condition_of(const AlarmEvent *a, const char **rule, const char **subject)
{
    *rule = a->rule;
    *subject = a->subject;
    if (a->rule[0]) return;
    if (!strncmp(a->alarm_id, LEGACY_PUSH, sizeof LEGACY_PUSH - 1)) {
        *rule = "push-dropped";
        *subject = a->alarm_id + sizeof LEGACY_PUSH - 1;
    } else {
        *rule = a->alarm_id;
        *subject = "";
    }
}

/* the open row's key: 1 op \0 rule \0 subject */
static size_t open_key(uint8_t *k, size_t cap, const char *op, const char *rule, const char *subject)
{
    if (cap < 2) return 0;
    k[0] = 1;
    size_t n = mkkey(k + 1, cap - 1, op, rule, subject);
    return n ? n + 1 : 0;
}

/* the alarm id of the raise at seq (invariant 2) */
static void alarm_id_of(uint64_t seq, char id[18])
{
    snprintf(id, 18, "A%016" PRIX64, seq);
}

/* The stored alarm id (NULL: none) -> *op (its operator, into opbuf) and
 * *st (unpacked; the caller frees it). SR_ENOTFOUND when absent. */
static int alarm_load(sr_engine *e, MDB_txn *t, const char *id, char *opbuf, size_t opcap, AlarmEvent **st)
{
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_ALARMS), id, strlen(id), &v);
    if (rc) return rc;
    const uint8_t *p = v.mv_data, *z = memchr(p, 0, v.mv_size);
    if (!z || (size_t)(z - p) >= opcap) return SR_ECORRUPT;
    memcpy(opbuf, p, (size_t)(z - p));
    opbuf[z - p] = 0;
    size_t off = (size_t)(z - p) + 1;
    *st = suiro__v1__alarm_event__unpack(NULL, v.mv_size - off, p + off);
    return *st ? SR_OK : SR_ECORRUPT;
}

static int alarm_store(sr_engine *e, MDB_txn *t, const char *op, const AlarmEvent *st)
{
    size_t ol = strlen(op), n = protobuf_c_message_get_packed_size(&st->base);
    uint8_t stackbuf[1024];
    uint8_t *b = ol + 1 + n <= sizeof stackbuf ? stackbuf : sr_malloc(ol + 1 + n);
    if (!b) return SR_ENOMEM;
    memcpy(b, op, ol);
    b[ol] = 0;
    protobuf_c_message_pack(&st->base, b + ol + 1);
    int rc = put(t, DB(e, SR_DB_ALARMS), st->alarm_id, strlen(st->alarm_id), b, ol + 1 + n);
    if (b != stackbuf) sr_free(b);
    return rc;
}

/* On the writer: the logged event names the alarm it is a step of (its
 * readers, a notifier, need not derive it). Dies with the group's events. */
static int arena_str(sr_engine *e, char **dst, const char *src)
{
    size_t l = strlen(src);
    char *s = sr_arena_alloc(&e->ev.a, l + 1);
    if (!s) return SR_ENOMEM;
    memcpy(s, src, l + 1);
    *dst = s;
    return SR_OK;
}

static int name_alarm(sr_engine *e, AlarmEvent *a, const char *id) { return arena_str(e, &a->alarm_id, id); }

/* On the writer: a step names its alarm's condition and level too (a
 * notifier reads one event, not the index). */
static int name_step(sr_engine *e, AlarmEvent *a, const char *id, const AlarmEvent *st)
{
    int rc = a->alarm_id[0] ? SR_OK : name_alarm(e, a, id);
    if (!rc && !a->rule[0]) rc = arena_str(e, &a->rule, st->rule);
    if (!rc && !a->subject[0]) rc = arena_str(e, &a->subject, st->subject);
    if (!rc) a->level = st->level;
    return rc;
}

static int text_ok(const char *s) { return strlen(s) <= ALARM_TEXT_MAX; }

/* raised: a new alarm, or a re-occurrence of the condition's open one */
static int alarm_raise(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    AlarmEvent *a = ev->alarm;
    const char *rule, *subject;
    condition_of(a, &rule, &subject);
    if (validate) {
        if (!sr_id_str_ok(rule)) return sr__refuse(r, SR_EINVAL, "alarm: a rule name ([A-Za-z0-9._-]{1,64}) is required");
        if (strlen(subject) > 255) return sr__refuse(r, SR_EINVAL, "alarm: subject longer than 255 bytes");
        if (a->level < SUIRO__V1__ALARM_LEVEL__AL_WARNING || a->level > SUIRO__V1__ALARM_LEVEL__AL_MAJOR)
            return sr__refuse(r, SR_EINVAL, "alarm %s: level must be warning, minor or major", rule);
        if (!text_ok(a->message)) return sr__refuse(r, SR_EINVAL, "alarm %s: message longer than %d bytes", rule, ALARM_TEXT_MAX);
    }
    uint8_t k[600];
    size_t kl = open_key(k, sizeof k, ev->operator_id, rule, subject);
    if (!kl) return validate ? sr__refuse(r, SR_EINVAL, "alarm: operator, rule and subject too long") : SR_OK;
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_ALARMS), k, kl, &v);
    if (rc && rc != SR_ENOTFOUND) return rc;
    char op[300];
    if (rc == SR_OK) { /* a re-occurrence (invariant 1) */
        char id[80];
        if (v.mv_size >= sizeof id) return SR_ECORRUPT;
        memcpy(id, v.mv_data, v.mv_size);
        id[v.mv_size] = 0;
        AlarmEvent *st = NULL;
        if ((rc = alarm_load(e, t, id, op, sizeof op, &st))) return rc == SR_ENOTFOUND ? SR_ECORRUPT : rc;
        AlarmEvent ns = *st; /* st's strings stay st's: freed with it */
        ns.count++;
        ns.last_ms = ev->ingest_ms;
        ns.level = a->level;
        ns.message = a->message;
        ns.source = a->source;
        rc = validate && a->rule[0] ? name_alarm(e, a, id) : SR_OK;
        if (!rc) rc = alarm_store(e, t, op, &ns);
        suiro__v1__alarm_event__free_unpacked(st, NULL);
        return rc;
    }
    char id[18];
    alarm_id_of(ev->seq, id);
    AlarmEvent st = *a;
    st.alarm_id = id;
    st.state = "raised";
    st.rule = (char *)rule;
    st.subject = (char *)subject;
    st.by = ev->actor;
    st.comment = "";
    st.auto_resolved = 0;
    st.raised_ms = st.last_ms = ev->ingest_ms;
    st.acked_ms = st.resolved_ms = 0;
    st.acked_by = st.resolved_by = st.ack_comment = st.resolve_comment = "";
    st.count = 1;
    st.restated = 0;
    st.restated_ms = 0;
    if (validate && a->rule[0] && (rc = name_alarm(e, a, id))) return rc;
    if ((rc = alarm_store(e, t, ev->operator_id, &st))) return rc;
    return put(t, DB(e, SR_DB_ALARMS), k, kl, id, strlen(id));
}

/* acknowledged, resolved: a step of alarm_id (resolved: or of the
 * condition's open alarm) */
static int alarm_step(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate, int resolve)
{
    AlarmEvent *a = ev->alarm;
    if (validate && !text_ok(a->comment))
        return sr__refuse(r, SR_EINVAL, "alarm: comment longer than %d bytes", ALARM_TEXT_MAX);
    char id[80];
    if (a->alarm_id[0]) {
        snprintf(id, sizeof id, "%s", a->alarm_id);
    } else if (resolve) { /* the condition's open alarm (a rule resolving it) */
        const char *rule, *subject;
        condition_of(a, &rule, &subject);
        uint8_t k[600];
        size_t kl = open_key(k, sizeof k, ev->operator_id, rule, subject);
        MDB_val v;
        int rc = kl ? get(t, DB(e, SR_DB_ALARMS), k, kl, &v) : SR_ENOTFOUND;
        if (rc == SR_ENOTFOUND)
            return validate ? sr__refuse(r, SR_ENOTFOUND, "alarm %s %s: no open alarm", rule, subject) : SR_OK;
        if (rc) return rc;
        if (v.mv_size >= sizeof id) return SR_ECORRUPT;
        memcpy(id, v.mv_data, v.mv_size);
        id[v.mv_size] = 0;
    } else {
        return validate ? sr__refuse(r, SR_EINVAL, "alarm: an alarm id is required") : SR_OK;
    }
    char op[300];
    AlarmEvent *st = NULL;
    int rc = alarm_load(e, t, id, op, sizeof op, &st);
    if (rc == SR_ENOTFOUND || (!rc && strcmp(op, ev->operator_id))) { /* invariant 4 */
        if (st) suiro__v1__alarm_event__free_unpacked(st, NULL);
        return validate ? sr__refuse(r, SR_ENOTFOUND, "alarm %s does not exist", id) : SR_OK;
    }
    if (rc) return rc;
    int acked = !strcmp(st->state, "acknowledged"), resolved = !strcmp(st->state, "resolved");
    if (resolved || (!resolve && acked)) { /* invariant 3 */
        rc = validate ? sr__refuse(r, SR_ECONFLICT, "alarm %s was %s already by %s", id, st->state,
                                   resolved ? st->resolved_by : st->acked_by)
                      : SR_OK;
        suiro__v1__alarm_event__free_unpacked(st, NULL);
        return rc;
    }
    AlarmEvent ns = *st; /* st's strings stay st's: freed with it */
    if (resolve) {
        ns.state = "resolved";
        ns.resolved_ms = ev->ingest_ms;
        ns.resolved_by = ev->actor;
        ns.resolve_comment = a->comment;
        ns.auto_resolved = a->auto_resolved;
    } else {
        ns.state = "acknowledged";
        ns.acked_ms = ev->ingest_ms;
        ns.acked_by = ev->actor;
        ns.ack_comment = a->comment;
    }
    if (validate && (rc = name_step(e, a, id, st))) {
        suiro__v1__alarm_event__free_unpacked(st, NULL);
        return rc;
    }
    rc = alarm_store(e, t, op, &ns);
    if (!rc && resolve) {
        uint8_t k[600];
        size_t kl = open_key(k, sizeof k, op, st->rule, st->subject);
        if (kl) rc = del(t, DB(e, SR_DB_ALARMS), k, kl);
    }
    suiro__v1__alarm_event__free_unpacked(st, NULL);
    return rc;
}

/* A restatement (issue #16, AlarmEvent.restated; docs/retention.md "Audit
 * data"): on the writer, the alarm's stored state fills the event (every
 * field: the state is an AlarmEvent); on both, the state is stored as the
 * event carries it, and the condition's open row while it is open, so that
 * a rebuild that cannot read the alarm's earlier steps (their key
 * destroyed) gets the same rows. An alarm that is not the event operator's
 * is refused on the writer. Not a step: the notifier never sees it
 * (writer.c alarms_committed, records.c sr_event_alarm). */
static int alarm_restate(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    AlarmEvent *a = ev->alarm;
    if (validate && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM && ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_USER)
        return sr__refuse(r, SR_EINVAL, "a restatement is the retention sweep's (the system or a user)");
    if (validate) {
        char op[300];
        AlarmEvent *st = NULL;
        int rc = a->alarm_id[0] ? alarm_load(e, t, a->alarm_id, op, sizeof op, &st) : SR_ENOTFOUND;
        if (rc == SR_ENOTFOUND || (!rc && strcmp(op, ev->operator_id))) {
            if (st) suiro__v1__alarm_event__free_unpacked(st, NULL);
            return sr__refuse(r, SR_ENOTFOUND, "alarm restatement: alarm %.40s of operator %.64s does not exist",
                              a->alarm_id, ev->operator_id);
        }
        if (rc) return rc;
        char **dst[] = {&a->alarm_id, &a->state,  &a->source,   &a->message,     &a->by,          &a->rule,
                        &a->subject,  &a->comment, &a->acked_by, &a->resolved_by, &a->ack_comment, &a->resolve_comment};
        const char *src[] = {st->alarm_id, st->state,  st->source,   st->message,     st->by,          st->rule,
                             st->subject,  st->comment, st->acked_by, st->resolved_by, st->ack_comment, st->resolve_comment};
        for (size_t i = 0; i < sizeof dst / sizeof *dst && !rc; i++) rc = arena_str(e, dst[i], src[i]);
        a->level = st->level;
        a->auto_resolve = st->auto_resolve;
        a->auto_resolved = st->auto_resolved;
        a->raised_ms = st->raised_ms;
        a->acked_ms = st->acked_ms;
        a->resolved_ms = st->resolved_ms;
        a->count = st->count;
        a->last_ms = st->last_ms;
        suiro__v1__alarm_event__free_unpacked(st, NULL);
        if (rc) return rc;
    }
    AlarmEvent st = *a;
    st.restated = 0;
    st.restated_ms = ev->ingest_ms; /* its state is built from here on */
    if (!st.alarm_id[0]) return SR_OK; /* (the replay: not a restatement the writer accepted) */
    int rc = alarm_store(e, t, ev->operator_id, &st);
    if (rc || !strcmp(st.state, "resolved")) return rc;
    uint8_t k[600];
    size_t kl = open_key(k, sizeof k, ev->operator_id, st.rule, st.subject);
    return kl ? put(t, DB(e, SR_DB_ALARMS), k, kl, st.alarm_id, strlen(st.alarm_id)) : SR_OK;
}

int sr__apply_alarm(sr_engine *e, MDB_txn *t, Event *ev, sr_result *r, int validate)
{
    AlarmEvent *a = ev->alarm;
    if (!a) return validate ? sr__refuse(r, SR_EINVAL, "alarm: no body") : SR_OK;
    if (a->restated) return alarm_restate(e, t, ev, r, validate);
    if (!strcmp(a->state, "raised")) return alarm_raise(e, t, ev, r, validate);
    if (!strcmp(a->state, "acknowledged")) return alarm_step(e, t, ev, r, validate, 0);
    if (!strcmp(a->state, "resolved")) return alarm_step(e, t, ev, r, validate, 1);
    return validate ? sr__refuse(r, SR_EINVAL, "alarm: state must be raised, acknowledged or resolved") : SR_OK;
}
