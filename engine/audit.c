/*
 * engine/audit.c -- the audit trail's index (R-SE-5, issue #14): one row in
 * `audit` (engine/schema.h) per event of the trail, keyed by the event's
 * time and seq, so that "what happened between from and to" is one range
 * read, not a scan of the log. The row holds a summary of the event with
 * names, not numbers (actor kind, kind, action, target, outcome), which is
 * what the audit route answers (api/admin_audit.c) and what the login
 * throttle rebuilds itself from at start (api/loginguard.c,
 * sr_loginguard_restore).
 *
 * The trail is every event but the data kinds: measurements, requests,
 * monitors, documents, files, alarms, heads checkpoints and push marks
 * (`audited` says why); the data writes are, through the writer's
 * summaries of them (WriteAudit, kind "write", issue #18), and the reads
 * of apps and gateways, as AccessEvents (kind "read"). So a kind
 * added later (the two-person rule's pending changes) is in the trail
 * without a change here; audit_summary names what it knows and falls back
 * to the body's field name.
 *
 * Kinds of the trail (the row's "kind"):
 *   login          AuthEvent, success               action: the method
 *   login_failed   AuthEvent, failure               action: the method ("throttle": refused by the throttle)
 *   session        SessionEvent, connected          action: opened; restated (issue #16: the retention
 *                                                   sweep restated an open session, docs/retention.md)
 *   alive          AliveEvent                       action: online, offline; restated (issue #16)
 *   notify         NotifyEvent                      action: the outcome; "restated " and the outcome
 *   logout         SessionEvent, any other state    action: disconnected, expired, taken_over, revoked_all
 *   user           UserEvent                        action: created, password_set, roles_set, ...
 *   registry       RegistryPut / RegistryDelete     action: put, delete; target operator:ID, app:ID, ...
 *   master         MasterPut / MasterDelete         action: put, delete; target facility:ID, ...
 *                  PointAlias (issue #19)           action: alias; target data_point:ID; detail: the
 *                                                   sender's number, the creator's, this node's
 *   key            KeyEvent                         action: created, rotated, retired
 *   admin          AdminEvent                       action: METHOD route; outcome refused or done
 *   correction     Correction (R-PO-1)              action: import; target import:ID; detail: the
 *                                                   count of values and points, and the reason
 *   pending        PendingEvent                     action: requested, approved, rejected, expired;
 *                                                   target: the change's (user:ID, app:ID, ...);
 *                                                   detail: the change's kind and action, the summary
 *   read           AccessEvent / AccessBatch (issue #18; the packed form's row is
 *                                                   the same, packed_summary): a batch of one app's or gateway's reads;
 *                                                   action: its routes (METHOD route, the first 8
 *                                                   distinct); target app:ID or gateway:ID; outcome
 *                                                   ok (all answered), refused (none), or partly
 *                                                   refused; detail: counts (requests, answered,
 *                                                   refused with their codes, values, bytes) and
 *                                                   the data points (the first ones, then +N)
 *   refused        AccessEvent with refusals (issue #18): a batch of one app's or gateway's
 *                                                   REFUSED writes and controls of one wire code;
 *                                                   action: their routes; target app:ID or
 *                                                   gateway:ID; outcome: the code (E5001); detail:
 *                                                   the count (+ those dropped by the bound), the
 *                                                   source, the data points
 *   write          WriteAudit (issue #18): the data writes of one (operator, actor) in one group
 *                                                   commit, summarised by the writer (writer.c);
 *                                                   action: the kinds with their counts
 *                                                   ("measurements x3, doc_put x1"); target app:ID,
 *                                                   gateway:ID, user:ID; outcome ok; detail: writes,
 *                                                   values, the seqs, the data points (first 16)
 *   backup         BackupEvent                      action: backup, restore; target backup:NAME;
 *                                                   outcome done or failed; detail: S, bytes, files
 *   cluster        ClusterEvent (issue #19)         action: the why (start, expired, handover, lost);
 *                                                   target partition:N; outcome done or failed;
 *                                                   detail: old and new owner, the epoch, until
 *   stream_key     StreamKeyErase (issue #19 ckey)  action: erase; target stream_key:ID; outcome
 *                                                   pending, done, found, failed, refused; detail:
 *                                                   the key's operator, class, epoch, why, node
 *   (others)       the body's field name
 *
 * INVARIANTS
 *  (1) A row is written in the same transaction as its event's apply
 *      (sr__apply_common), by the writer and by the replay alike: the rows
 *      are a function of the log (engine.c invariant 3) and an event
 *      refused by the engine has none.
 *  (2) A row never holds a secret: no password or secret hash, no sealed
 *      TOTP secret, no certificate, no token hash.
 */
#include "engine/engine_int.h"

#include "codecs/accpack.h"
#include "engine/event_json.h"
#include "engine/records.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* 1 if events of this kind are in the trail. Not the data kinds
 * (measurements, requests, monitors, documents, files) nor the engine's own
 * data (alarms, heads checkpoints, push marks). The data writes are listed
 * as kind "write" through the writer's WriteAudit (audit class), not a row
 * per write event, for two reasons found (issue #18):
 *  - crypto-erasure (docs/keys.md): a data event is sealed by its
 *    operator's DATA key; once that key is destroyed a rebuild reads the
 *    event as erased and makes no row from it, while the live index kept
 *    it (test_engine_fault: the index differed from its rebuild). A
 *    WriteAudit is sealed by the AUDIT key.
 *  - cost: a row per Measurements event cost +9.8 % (ingest_point) and
 *    +12.9 % (ingest_snapshot) instructions per value under callgrind; a
 *    WriteAudit is one per group and writer.
 */
static int audited(int body_case)
{
    if (sr__is_data_write(body_case)) return 0; /* the WriteAudit's row lists them */
    switch (body_case) {
    case SUIRO__V1__EVENT__BODY__NOT_SET:
    case SUIRO__V1__EVENT__BODY_ALARM:
    case SUIRO__V1__EVENT__BODY_HEADS_CHECKPOINT:
    case SUIRO__V1__EVENT__BODY_PUSH_MARK: return 0;
    default: return 1;
    }
}

const char *sr_actor_kind_name(int k)
{
    switch (k) {
    case SUIRO__V1__ACTOR_KIND__ACTOR_SYSTEM: return "system";
    case SUIRO__V1__ACTOR_KIND__ACTOR_GATEWAY: return "gateway";
    case SUIRO__V1__ACTOR_KIND__ACTOR_APP: return "app";
    case SUIRO__V1__ACTOR_KIND__ACTOR_USER: return "user";
    default: return "unknown";
    }
}

static const char *reg_kind_name(int k)
{
    static const char *n[] = {"unknown", "operator", "gateway", "app", "grant", "vendor", "vendor grant", "retention"};
    if (k == SUIRO__V1__REGISTRY_KIND__RG_NOTIFY) return "notify target";
    if (k == SUIRO__V1__REGISTRY_KIND__RG_REVOKED) return "certificate revocation";
    if (k == SUIRO__V1__REGISTRY_KIND__RG_SIGREQ) return "signature requirement";
    return k >= 0 && k <= 7 ? n[k] : "unknown";
}

static const char *master_kind_name(int k)
{
    static const char *n[] = {"unknown", "facility", "equipment", "device", "data_point"};
    return k >= 0 && k <= 4 ? n[k] : "unknown";
}

static const char *session_state_name(int s)
{
    static const char *n[] = {"unknown", "opened", "disconnected", "expired", "taken_over"};
    return s >= 0 && s <= 4 ? n[s] : "unknown";
}

enum { F_OP, F_ACTOR, F_SOURCE, F_KIND, F_ACTION, F_TARGET, F_OUTCOME, F_DETAIL };

/* appends to a fixed buffer: cuts at its end (the row's parts are bounded) */
typedef struct tbuf {
    char *p;
    size_t cap, n;
} tbuf;
static void tput(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tput(tbuf *b, const char *fmt, ...)
{
    if (b->n + 1 >= b->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w > 0) b->n = b->n + (size_t)w < b->cap ? b->n + (size_t)w : b->cap - 1;
}

/* One entry of a batch of reads, from either form of the batch: an
 * AccessEvent's message or an AccessBatch's packed record (whose strings
 * are interned: equal strings are one pointer, so the comparisons below
 * stop at the pointer). */
typedef struct acc_en {
    const char *method, *route, *code;
    const char *pts[SR_APK_POINTS_MAX];
    size_t npl;
    uint32_t npoints;
    uint64_t values, bytes;
} acc_en;

typedef struct acc_src {
    const Suiro__V1__AccessEvent *a; /* or */
    const sr_apk_view *v;
    size_t n;
    sr_apk_iter it; /* v's entries in order (acc_get's i: 0, 1, ...; 0 starts again) */
} acc_src;

static void acc_get(acc_src *s, size_t i, acc_en *o)
{
    if (s->a) {
        const Suiro__V1__AccessEntry *en = s->a->entries[i];
        o->method = en->method;
        o->route = en->route;
        o->code = en->code;
        o->npl = en->n_points < SR_APK_POINTS_MAX ? en->n_points : SR_APK_POINTS_MAX;
        for (size_t k = 0; k < o->npl; k++) o->pts[k] = en->points[k];
        o->npoints = en->npoints;
        o->values = en->values;
        o->bytes = en->bytes;
        return;
    }
    sr_apk_entry e;
    if (!i) sr_apk_iter_init(s->v, &s->it);
    if (!sr_apk_next(&s->it, &e)) e = (sr_apk_entry){.code = SR_APK_NONE}; /* not after sr_apk_parse */
    o->method = sr_apk_s(s->v, e.method);
    o->route = sr_apk_s(s->v, e.route);
    o->code = sr_apk_s(s->v, e.code);
    o->npl = e.npl;
    for (size_t k = 0; k < e.npl; k++) o->pts[k] = sr_apk_s(s->v, sr_apk_ref(s->v, e.ref + (uint32_t)k));
    o->npoints = e.npoints;
    o->values = e.values;
    o->bytes = e.bytes;
}

static int same(const char *a, const char *b) { return a == b || !strcmp(a, b); }

/* "read": a batch of reads, summarized (the entries themselves are the
 * event's, `suiro replay` shows them); both forms give the same row. */
static void access_summary(const Event *ev, acc_src *src, sr_audit_summary *x)
{
    enum { ROUTES = 8, CODES = 8 };
    const char *rtm[ROUTES], *rtr[ROUTES];
    size_t nrt = 0, nok = 0, nref = 0, more_routes = 0;
    const char *code[CODES];
    unsigned ncode[CODES];
    size_t ncodes = 0;
    uint64_t values = 0, bytes = 0, points = 0;
    acc_en en;
    for (size_t i = 0; i < src->n; i++) {
        acc_get(src, i, &en);
        size_t j;
        for (j = 0; j < nrt; j++)
            if (same(rtr[j], en.route) && same(rtm[j], en.method)) break;
        if (j == nrt) {
            if (nrt < ROUTES) rtm[nrt] = en.method, rtr[nrt++] = en.route;
            else more_routes++;
        }
        if (en.code[0]) {
            nref++;
            for (j = 0; j < ncodes; j++)
                if (same(code[j], en.code)) break;
            if (j == ncodes && ncodes < CODES) code[ncodes] = en.code, ncode[ncodes++] = 0;
            if (j < ncodes) ncode[j]++;
        } else nok++;
        values += en.values;
        bytes += en.bytes;
        points += en.npoints;
    }
    tbuf act = {x->action, sizeof x->action, 0};
    for (size_t j = 0; j < nrt; j++) tput(&act, "%s%s %s", j ? ", " : "", rtm[j], rtr[j]);
    if (more_routes) tput(&act, " (+%zu)", more_routes);
    snprintf(x->target, sizeof x->target, "%s:%s", sr_actor_kind_name(ev->actor_kind), ev->actor);
    tbuf d = {x->detail, sizeof x->detail, 0};
    const Suiro__V1__AccessEvent *ra = src->a && src->a->refusals ? src->a : NULL;
    if (ra) {
        /* "refused": writes and controls refused, all of one code (the outcome) */
        x->s[F_KIND] = "refused";
        x->s[F_OUTCOME] = ra->n_entries ? ra->entries[0]->code : "refused";
        tput(&d, "%zu refused", ra->n_entries);
        if (ra->dropped) tput(&d, " (+%" PRIu64 " more of this code not listed: the bound)", ra->dropped);
        tput(&d, " from %s; %" PRIu64 " data point(s)", ra->n_entries ? ra->entries[0]->source : "", points);
    } else {
        x->s[F_KIND] = "read";
        x->s[F_OUTCOME] = !nref ? "ok" : !nok ? "refused" : "partly refused";
        tput(&d, "%zu request(s), %zu answered, %zu refused", src->n, nok, nref);
        for (size_t j = 0; j < ncodes; j++) tput(&d, "%s%s x%u", j ? ", " : " (", code[j], ncode[j]);
        if (ncodes) tput(&d, ")");
        tput(&d, "; %" PRIu64 " value(s), %" PRIu64 " byte(s); %" PRIu64 " data point(s)", values, bytes, points);
    }
    /* the data points, each once, the first ones while the row has room
     * (bounded work: a point is compared with the shown ones only) */
    enum { SHOWN = 64 };
    const char *shown[SHOWN];
    size_t nshown = 0;
    int cut = 0;
    for (size_t i = 0; i < src->n && !cut; i++) {
        acc_get(src, i, &en);
        for (size_t k = 0; k < en.npl && !cut; k++) {
            const char *p = en.pts[k];
            size_t j;
            for (j = 0; j < nshown; j++)
                if (same(shown[j], p)) break;
            if (j < nshown) continue;
            if (nshown == SHOWN || d.n + strlen(p) + 8 >= sizeof x->detail) cut = 1;
            else {
                tput(&d, "%s%s", nshown ? "," : ": ", p);
                shown[nshown++] = p;
            }
        }
        if (!cut && en.npoints > en.npl) cut = 1; /* points not listed in the entry */
    }
    if (cut) tput(&d, ",...");
}

/* "read" of a packed batch (AccessBatch): the same row as access_summary
 * makes of the same entries, in one pass over the packed entries by their
 * string indexes (the builder interns its strings: one string, one index,
 * codecs/accpack.h invariant 2), the strings looked up only for the text.
 * An entry whose listed points are the entry before's (ref and npl: a poll
 * of the same points) adds no point. */
/* The row of a batch checked by sr_apk_parse_head: its entries are checked
 * as they are read (one pass, not the check's and then the row's); -1, x
 * untouched, when one is bad (a batch the writer refused: never in a log) */
static int packed_summary(const Event *ev, const sr_apk_view *v, sr_audit_summary *x)
{
    enum { ROUTES = 8, CODES = 8, SHOWN = 64 };
    uint16_t rtm[ROUTES], rtr[ROUTES], code[CODES], shown[SHOWN];
    unsigned ncode[CODES];
    size_t nrt = 0, nok = 0, nref = 0, more_routes = 0, ncodes = 0, nshown = 0;
    uint64_t values = 0, bytes = 0, points = 0;
    uint32_t last_ref = UINT32_MAX, last_npl = 0, last_m = UINT32_MAX, last_r = UINT32_MAX;
    int cut = 0;
    char pts[sizeof x->detail];
    tbuf pd = {pts, sizeof pts, 0};
    sr_apk_iter it;
    sr_apk_iter_init(v, &it);
    sr_apk_entry e;
    int more;
    while ((more = sr_apk_next_checked(&it, v, &e)) > 0) {
        if (e.method != last_m || e.route != last_r) {
            size_t j;
            for (j = 0; j < nrt; j++)
                if (rtr[j] == e.route && rtm[j] == e.method) break;
            if (j == nrt) {
                if (nrt < ROUTES) rtm[nrt] = e.method, rtr[nrt++] = e.route;
                else more_routes++;
            }
            last_m = e.method, last_r = e.route;
        }
        if (e.code != SR_APK_NONE) {
            nref++;
            size_t j;
            for (j = 0; j < ncodes; j++)
                if (code[j] == e.code) break;
            if (j == ncodes && ncodes < CODES) code[ncodes] = e.code, ncode[ncodes++] = 0;
            if (j < ncodes) ncode[j]++;
        } else nok++;
        values += e.values;
        bytes += e.bytes;
        points += e.npoints;
        if (cut || (e.ref == last_ref && e.npl == last_npl)) continue;
        last_ref = e.ref, last_npl = e.npl;
        for (uint32_t k = 0; k < e.npl && !cut; k++) {
            uint16_t p = sr_apk_ref(v, e.ref + k);
            size_t j;
            for (j = 0; j < nshown; j++)
                if (shown[j] == p) break;
            if (j < nshown) continue;
            const char *ps = sr_apk_s(v, p);
            if (nshown == SHOWN || pd.n + strlen(ps) + 8 >= sizeof x->detail) cut = 1;
            else {
                tput(&pd, "%s%s", nshown ? "," : ": ", ps);
                shown[nshown++] = p;
            }
        }
        if (!cut && e.npoints > e.npl) cut = 1; /* points not listed in the entry */
    }
    if (more < 0) return -1;
    x->s[F_KIND] = "read";
    x->s[F_OUTCOME] = !nref ? "ok" : !nok ? "refused" : "partly refused";
    tbuf act = {x->action, sizeof x->action, 0};
    for (size_t j = 0; j < nrt; j++) tput(&act, "%s%s %s", j ? ", " : "", sr_apk_s(v, rtm[j]), sr_apk_s(v, rtr[j]));
    if (more_routes) tput(&act, " (+%zu)", more_routes);
    snprintf(x->target, sizeof x->target, "%s:%s", sr_actor_kind_name(ev->actor_kind), ev->actor);
    tbuf d = {x->detail, sizeof x->detail, 0};
    tput(&d, "%u request(s), %zu answered, %zu refused", v->nent, nok, nref);
    for (size_t j = 0; j < ncodes; j++) tput(&d, "%s%s x%u", j ? ", " : " (", sr_apk_s(v, code[j]), ncode[j]);
    if (ncodes) tput(&d, ")");
    tput(&d, "; %" PRIu64 " value(s), %" PRIu64 " byte(s); %" PRIu64 " data point(s)", values, bytes, points);
    /* the points as access_summary cuts them: while the whole row has room */
    for (size_t i = 0, k = 0; i < pd.n; i = k) {
        for (k = i + 1; k < pd.n && pts[k] != ','; k++)
            ;
        size_t sep = pts[i] == ':' ? 2 : 1; /* ": " or "," before the point */
        if (d.n + (k - i - sep) + 8 >= sizeof x->detail) {
            cut = 1;
            break;
        }
        tput(&d, "%.*s", (int)(k - i), pts + i);
    }
    if (cut) tput(&d, ",...");
    return 0;
}

/* "write": a group's data writes of one writer, summarised by the writer
 * (WriteAudit, writer.c): action the kinds written with their counts
 * ("measurements x12, doc_put x1"), target the writer, outcome ok (only
 * accepted writes are in it), detail the counts, the seqs and the data
 * points. */
/* appends without printf (a write summary is made once a group and writer,
 * on the ingest path: bench/callgrind.sh) */
static void tcat(tbuf *b, const char *s)
{
    if (b->n + 1 >= b->cap) return;
    size_t l = strlen(s);
    if (l > b->cap - 1 - b->n) l = b->cap - 1 - b->n;
    memcpy(b->p + b->n, s, l);
    b->n += l;
    b->p[b->n] = 0;
}
static void tu64(tbuf *b, uint64_t v)
{
    char d[24];
    int i = (int)sizeof d;
    d[--i] = 0;
    do d[--i] = (char)('0' + v % 10);
    while (v /= 10);
    tcat(b, d + i);
}

static void write_summary(const Event *ev, sr_audit_summary *x)
{
    const Suiro__V1__WriteAudit *w = ev->write_audit;
    x->s[F_KIND] = "write";
    x->s[F_OUTCOME] = "ok";
    tbuf act = {x->action, sizeof x->action, 0};
    for (size_t i = 0; i < w->n_kinds; i++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(&suiro__v1__event__descriptor, (unsigned)w->kinds[i]);
        if (i) tcat(&act, ", ");
        tcat(&act, f ? f->name : "?");
        tcat(&act, " x");
        tu64(&act, i < w->n_kind_counts ? w->kind_counts[i] : 0);
    }
    tbuf tg = {x->target, sizeof x->target, 0};
    tcat(&tg, sr_actor_kind_name(ev->actor_kind));
    tcat(&tg, ":");
    tcat(&tg, ev->actor);
    tbuf d = {x->detail, sizeof x->detail, 0};
    tu64(&d, w->events);
    tcat(&d, " write(s), ");
    tu64(&d, w->values);
    tcat(&d, " value(s), seq ");
    tu64(&d, w->first_seq);
    tcat(&d, "..");
    tu64(&d, w->last_seq);
    tcat(&d, "; ");
    tu64(&d, w->npoints);
    tcat(&d, " data point(s)");
    for (size_t i = 0; i < w->n_points; i++) {
        tcat(&d, i ? "," : ": ");
        tcat(&d, w->points[i]);
    }
    if (w->npoints > w->n_points) tcat(&d, ",...");
}

_Static_assert(sizeof(((sr_audit_summary *)0)->s) / sizeof(char *) == SR_AUDIT_NSTR, "a summary is a row's strings");

/* The summary of ev (its strings point into ev or into x). */
static void audit_summary(const Event *ev, sr_audit_summary *x)
{
    memset(x, 0, sizeof *x);
    for (int i = 0; i < SR_AUDIT_NSTR; i++) x->s[i] = "";
    x->s[F_OP] = ev->operator_id ? ev->operator_id : "";
    x->s[F_ACTOR] = ev->actor ? ev->actor : "";
    x->s[F_SOURCE] = ev->source ? ev->source : "";
    x->s[F_OUTCOME] = "done";
    x->s[F_ACTION] = x->action;
    x->s[F_TARGET] = x->target;
    x->s[F_DETAIL] = x->detail;
    switch (ev->body_case) {
    case SUIRO__V1__EVENT__BODY_AUTH: {
        const Suiro__V1__AuthEvent *a = ev->auth;
        x->s[F_KIND] = a->success ? "login" : "login_failed";
        x->s[F_OUTCOME] = a->success ? "ok" : "refused";
        snprintf(x->action, sizeof x->action, "%s", a->method);
        snprintf(x->target, sizeof x->target, "%s:%s", sr_actor_kind_name(a->kind), a->principal);
        snprintf(x->detail, sizeof x->detail, "%s", a->reason);
        break;
    }
    case SUIRO__V1__EVENT__BODY_SESSION: {
        const Suiro__V1__SessionEvent *se = ev->session;
        int open = se->state == SUIRO__V1__SESSION_STATE__SS_CONNECTED;
        x->s[F_KIND] = open ? "session" : "logout";
        snprintf(x->action, sizeof x->action, "%s",
                 se->restated ? "restated" : se->revoke_all ? "revoked_all" : session_state_name(se->state));
        snprintf(x->target, sizeof x->target, "%s:%s", sr_actor_kind_name(se->kind), se->id);
        snprintf(x->detail, sizeof x->detail, "%s%s%s", se->protocol, se->reason[0] ? ": " : "", se->reason);
        break;
    }
    case SUIRO__V1__EVENT__BODY_ALIVE: { /* R-MO-1, docs/monitoring.md "Alive status" */
        const Suiro__V1__AliveEvent *al = ev->alive;
        const ProtobufCEnumValue *rv = protobuf_c_enum_descriptor_get_value(&suiro__v1__alive_reason__descriptor, al->reason);
        x->s[F_KIND] = "alive";
        snprintf(x->action, sizeof x->action, "%s",
                 al->restated ? "restated" : al->state == SUIRO__V1__ALIVE_STATE__AS_ONLINE ? "online" : "offline");
        snprintf(x->target, sizeof x->target, "%s:%s", sr_actor_kind_name(al->kind), al->id);
        snprintf(x->detail, sizeof x->detail, "%s %s%s%s", al->binding, rv ? rv->name : "?", al->will[0] ? "; will: " : "",
                 al->will);
        break;
    }
    case SUIRO__V1__EVENT__BODY_CORRECTION: {
        const Suiro__V1__Correction *c = ev->correction;
        size_t np = 0;
        if (c && c->values) {
            sr_meas_iter mi;
            sr_mpoint p;
            sr_meas_iter_init(&mi, c->values);
            while (sr_meas_next(&mi, &p)) np++;
        }
        x->s[F_KIND] = "correction";
        snprintf(x->action, sizeof x->action, "import");
        snprintf(x->target, sizeof x->target, "import:%s", c && c->import_id ? c->import_id : "");
        int n = snprintf(x->detail, sizeof x->detail, "%u value(s) of %zu data point(s); reason: %s", c ? c->rows : 0,
                         np, c && c->reason ? c->reason : "");
        size_t at = n < 0 ? sizeof x->detail : (size_t)n;
        if (at < sizeof x->detail && ev->origin && ev->origin->held) /* engine/origins.c invariant 6 */
            snprintf(x->detail + at, sizeof x->detail - at, "; held: node %s's numbers not mapped here yet", ev->origin->node);
        else if (at < sizeof x->detail && ev->origin && ev->origin->release_of)
            snprintf(x->detail + at, sizeof x->detail - at, "; released (held at seq %" PRIu64 ")", ev->origin->release_of);
        break;
    }
    case SUIRO__V1__EVENT__BODY_USER: {
        const UserEvent *u = ev->user;
        x->s[F_KIND] = "user";
        snprintf(x->action, sizeof x->action, "%s", u->action);
        snprintf(x->target, sizeof x->target, "user:%s", u->user_id);
        size_t n = 0;
        if (u->n_roles) {
            n += (size_t)snprintf(x->detail, sizeof x->detail, "roles:");
            for (size_t i = 0; i < u->n_roles && n < sizeof x->detail; i++)
                n += (size_t)snprintf(x->detail + n, sizeof x->detail - n, "%s%s", i ? "," : " ", u->roles[i]);
        }
        if (u->approved_by[0] && n < sizeof x->detail)
            snprintf(x->detail + n, sizeof x->detail - n, "%sapproved by %s", n ? "; " : "", u->approved_by);
        break;
    }
    case SUIRO__V1__EVENT__BODY_REGISTRY_PUT: {
        const Suiro__V1__RegistryPut *r = ev->registry_put;
        x->s[F_KIND] = "registry";
        snprintf(x->action, sizeof x->action, "put");
        snprintf(x->target, sizeof x->target, "%s:%s", reg_kind_name(r->kind), r->id);
        if (r->kind == SUIRO__V1__REGISTRY_KIND__RG_GRANT)
            snprintf(x->detail, sizeof x->detail, "app %s %s %s", r->app_id, r->access, r->pattern);
        else if (r->kind == SUIRO__V1__REGISTRY_KIND__RG_REVOKED)
            snprintf(x->detail, sizeof x->detail, "certificate %s revoked: %s", r->id, r->name);
        else if (r->kind == SUIRO__V1__REGISTRY_KIND__RG_SIGREQ)
            snprintf(x->detail, sizeof x->detail, "control of data point %s must be signed: %s", r->id, r->name);
        else if (r->kind == SUIRO__V1__REGISTRY_KIND__RG_VENDOR_GRANT)
            snprintf(x->detail, sizeof x->detail, "vendor %s %s access to the operator's data", r->vendor_id, r->access);
        else
            snprintf(x->detail, sizeof x->detail, "%s%s%s%s", r->secret_hash.len ? "secret set" : "",
                     r->cert_pem[0] ? (r->secret_hash.len ? ", certificate" : "certificate") : "",
                     r->vendor_id[0] ? "; vendor " : "", r->vendor_id);
        break;
    }
    case SUIRO__V1__EVENT__BODY_REGISTRY_DELETE:
        x->s[F_KIND] = "registry";
        snprintf(x->action, sizeof x->action, "delete");
        snprintf(x->target, sizeof x->target, "%s:%s", reg_kind_name(ev->registry_delete->kind), ev->registry_delete->id);
        break;
    case SUIRO__V1__EVENT__BODY_MASTER_PUT:
        x->s[F_KIND] = "master";
        snprintf(x->action, sizeof x->action, "put");
        snprintf(x->target, sizeof x->target, "%s:%s", master_kind_name(ev->master_put->kind), ev->master_put->id);
        break;
    case SUIRO__V1__EVENT__BODY_POINT_ALIAS: { /* docs/cluster.md "Data point numbers" */
        const Suiro__V1__PointAlias *a = ev->point_alias;
        const Suiro__V1__Origin *o = ev->origin;
        x->s[F_KIND] = "master";
        snprintf(x->action, sizeof x->action, "alias");
        snprintf(x->target, sizeof x->target, "%s:%s", master_kind_name(SUIRO__V1__MASTER_KIND__MK_DATA_POINT),
                 a->data_id);
        if (o && o->held) /* engine/origins.c invariant 6: node origin_node's number not mapped here yet */
            snprintf(x->detail, sizeof x->detail, "node %s's number %" PRIu32 " (node %s's %" PRIu32 "): held, node %s's "
                     "number not mapped here yet", o->node ? o->node : "-", o->point, a->origin_node, a->origin_point,
                     a->origin_node);
        else
            snprintf(x->detail, sizeof x->detail, "node %s's number %" PRIu32 " (node %s's %" PRIu32 ") is %" PRIu32 " here",
                     o && o->node ? o->node : "-", o ? o->point : 0, a->origin_node, a->origin_point, a->point);
        break;
    }
    case SUIRO__V1__EVENT__BODY_MASTER_DELETE:
        x->s[F_KIND] = "master";
        snprintf(x->action, sizeof x->action, "delete");
        snprintf(x->target, sizeof x->target, "%s:%s", master_kind_name(ev->master_delete->kind),
                 ev->master_delete->id);
        break;
    case SUIRO__V1__EVENT__BODY_KEY:
        x->s[F_KIND] = "key";
        snprintf(x->action, sizeof x->action, "%s", ev->key->action);
        snprintf(x->target, sizeof x->target, "key:%" PRIu32, ev->key->key_id);
        snprintf(x->detail, sizeof x->detail, "%s", ev->key->purpose);
        break;
    case SUIRO__V1__EVENT__BODY_RETENTION: { /* docs/retention.md */
        const Suiro__V1__Retention *rt = ev->retention;
        x->s[F_KIND] = "retention";
        snprintf(x->action, sizeof x->action, "cut");
        snprintf(x->target, sizeof x->target, "class:%s", rt->data_class);
        snprintf(x->detail, sizeof x->detail, "before %" PRId64 " (%" PRIu32 " days), seq below %" PRIu64 ", %" PRIu32
                 " counted", rt->cut_ms, rt->days, rt->below_seq, rt->removed);
        break;
    }
    case SUIRO__V1__EVENT__BODY_CHECKPOINT: { /* docs/audit.md "Checkpoints and proofs" */
        const Suiro__V1__CheckpointEvent *c = ev->checkpoint;
        x->s[F_KIND] = "checkpoint";
        snprintf(x->action, sizeof x->action, "sign");
        snprintf(x->target, sizeof x->target, "tree:%" PRIu64, c->tree_size);
        snprintf(x->detail, sizeof x->detail, "%s, records up to seq %" PRIu64 ", %s key %s", c->reason, c->last_seq,
                 c->alg, c->key_name);
        break;
    }
    case SUIRO__V1__EVENT__BODY_NOTIFY: { /* docs/monitoring.md "Notifications" */
        const Suiro__V1__NotifyEvent *n = ev->notify;
        x->s[F_KIND] = "notify";
        snprintf(x->action, sizeof x->action, "%s%s", n->restated ? "restated " : "", n->outcome);
        if (!strcmp(n->outcome, "mark")) snprintf(x->detail, sizeof x->detail, "through seq %" PRIu64, n->through);
        else {
            snprintf(x->target, sizeof x->target, "notify target:%s", n->target_id);
            snprintf(x->detail, sizeof x->detail, "%s delivery %s of alarm seq %" PRIu64 ", %" PRIu32 " attempts%s%s",
                     n->channel, n->delivery_id, n->alarm_seq, n->attempts, n->error[0] ? "; " : "", n->error);
        }
        break;
    }
    case SUIRO__V1__EVENT__BODY_STREAM_KEY_ERASE: { /* docs/keys.md "Cluster: stream keys" */
        const Suiro__V1__StreamKeyErase *s = ev->stream_key_erase;
        x->s[F_KIND] = "stream_key";
        x->s[F_OUTCOME] = s->outcome;
        snprintf(x->action, sizeof x->action, "erase");
        snprintf(x->target, sizeof x->target, "stream_key:%s", s->key_id);
        snprintf(x->detail, sizeof x->detail, "operator '%s', class %s, epoch %" PRIu32 " (%" PRIu32 " days), %s, node %s%s%s",
                 s->key_operator, s->key_class, s->epoch, s->period_days, s->why, s->node[0] ? s->node : "-",
                 s->message[0] ? "; " : "", s->message);
        if (s->intent_seq) {
            size_t l = strlen(x->detail);
            snprintf(x->detail + l, sizeof x->detail - l, " (intent seq %" PRIu64 ")", s->intent_seq);
        }
        break;
    }
    case SUIRO__V1__EVENT__BODY_CLUSTER: { /* docs/cluster.md "Ownership" */
        const Suiro__V1__ClusterEvent *c = ev->cluster;
        x->s[F_KIND] = "cluster";
        x->s[F_OUTCOME] = c->outcome[0] ? c->outcome : "done";
        snprintf(x->action, sizeof x->action, "%s", c->why);
        snprintf(x->target, sizeof x->target, "partition:%" PRIu32, c->partition);
        snprintf(x->detail, sizeof x->detail, "owner %s -> %s, epoch %" PRIu64 ", until %" PRId64,
                 c->old_owner[0] ? c->old_owner : "-", c->new_owner[0] ? c->new_owner : "-", c->epoch, c->until_ms);
        break;
    }
    case SUIRO__V1__EVENT__BODY_BACKUP: {
        const Suiro__V1__BackupEvent *b = ev->backup;
        x->s[F_KIND] = "backup";
        x->s[F_OUTCOME] = b->outcome[0] ? b->outcome : "done";
        snprintf(x->action, sizeof x->action, "%s", b->action);
        snprintf(x->target, sizeof x->target, "backup:%s", b->name);
        snprintf(x->detail, sizeof x->detail, "seq %" PRIu64 ", %" PRIu64 " bytes, %" PRIu32 " copied, %" PRIu32
                 " linked%s%s", b->seq, b->bytes, b->files_copied, b->files_linked, b->message[0] ? "; " : "",
                 b->message);
        break;
    }
    case SUIRO__V1__EVENT__BODY_ACCESS: {
        acc_src src = {ev->access, NULL, ev->access->n_entries, {0}};
        access_summary(ev, &src, x);
        break;
    }
    case SUIRO__V1__EVENT__BODY_ACCESS_BATCH: {
        sr_apk_view v;
        if (sr_apk_parse_head(ev->access_batch->packed.data, ev->access_batch->packed.len, &v, NULL) ||
            packed_summary(ev, &v, x)) {
            x->s[F_KIND] = "read"; /* refused by the writer: only a tool's summary of a bad record */
            x->s[F_OUTCOME] = "malformed";
        }
        break;
    }
    case SUIRO__V1__EVENT__BODY_WRITE_AUDIT:
        write_summary(ev, x);
        break;
    case SUIRO__V1__EVENT__BODY_ADMIN: {
        const Suiro__V1__AdminEvent *a = ev->admin;
        x->s[F_KIND] = "admin";
        x->s[F_OUTCOME] = a->outcome[0] ? a->outcome : "done";
        snprintf(x->action, sizeof x->action, "%s %s", a->method, a->route);
        snprintf(x->target, sizeof x->target, "%s", a->target);
        snprintf(x->detail, sizeof x->detail, "%s%s%s%s%s", a->action, a->action[0] ? "; " : "", a->code,
                 a->code[0] ? " " : "", a->message);
        break;
    }
    case SUIRO__V1__EVENT__BODY_PENDING: {
        /* the change it holds, summarized as its own row would be: an
         * auditor looking for user:X finds its pending creation and the
         * approval that made it */
        const Suiro__V1__PendingEvent *p = ev->pending;
        x->s[F_KIND] = "pending";
        snprintf(x->action, sizeof x->action, "%s", p->action);
        /* the first event of the change (a set-up change may hold several) */
        Event *c = p->n_change ? suiro__v1__event__unpack(NULL, p->change[0].len, p->change[0].data) : NULL;
        sr_audit_summary cx;
        if (c && audited((int)c->body_case)) {
            audit_summary(c, &cx);
            snprintf(x->target, sizeof x->target, "%s", cx.s[F_TARGET]);
            snprintf(x->detail, sizeof x->detail, "%s %s: %s (pending %s)", cx.s[F_KIND], cx.s[F_ACTION], p->summary,
                     p->pending_id);
        } else {
            snprintf(x->target, sizeof x->target, "pending:%s", p->pending_id);
            snprintf(x->detail, sizeof x->detail, "%s", p->summary);
        }
        if (c) suiro__v1__event__free_unpacked(c, NULL);
        break;
    }
    default: x->s[F_KIND] = sr_event_kind(ev); break;
    }
}

int sr_audit_summarize(const Event *ev, sr_audit_summary *x)
{
    if (!audited((int)ev->body_case)) return 0;
    audit_summary(ev, x);
    return 1;
}

int sr_event_audit(const sr_event_view *v, sr_audit_holder *h, sr_audit_rec *out)
{
    sr_audit_summary x;
    if (!v->ev || !sr_audit_summarize((const Event *)v->ev, &x)) return 0;
    for (int i = 0; i < SR_AUDIT_NSTR; i++) snprintf(h->s[i], sizeof h->s[i], "%s", x.s[i] ? x.s[i] : "");
    *out = (sr_audit_rec){
        .seq = v->seq,
        .ms = v->ingest_ms,
        .actor_kind = v->actor_kind,
        .op = h->s[F_OP],
        .actor = h->s[F_ACTOR],
        .source = h->s[F_SOURCE],
        .kind = h->s[F_KIND],
        .action = h->s[F_ACTION],
        .target = h->s[F_TARGET],
        .outcome = h->s[F_OUTCOME],
        .detail = h->s[F_DETAIL],
    };
    return 1;
}

int sr__audit_put(sr_engine *e, MDB_txn *t, const Event *ev)
{
    sr_audit_summary x;
    if (!sr_audit_summarize(ev, &x)) return SR_OK;
    uint8_t k[SR_AUDIT_KEY], v[2048];
    audit_key(k, ev->ingest_ms, ev->seq);
    v[0] = 1;
    v[1] = (uint8_t)ev->actor_kind;
    size_t n = 2;
    for (int i = 0; i < SR_AUDIT_NSTR; i++) {
        size_t l = strlen(x.s[i]);
        if (l > 400) l = 400; /* 8 x 401 would not fit: every part is cut at 400 bytes */
        if (n + l + 1 > sizeof v) l = sizeof v - n - 1;
        memcpy(v + n, x.s[i], l);
        n += l;
        v[n++] = 0;
    }
    return put(t, DB(e, SR_DB_AUDIT), k, sizeof k, v, n);
}

/* 1 if s is one of the comma-separated names of list */
static int in_list(const char *list, const char *s)
{
    size_t l = strlen(s);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == l && !memcmp(p, s, l)) return 1;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

int sr_engine_audit_list(sr_engine *e, const sr_audit_query *q, sr_buf *out, size_t *count, int *more)
{
    MDB_txn *t;
    *count = 0;
    *more = 0;
    size_t limit = q->limit ? q->limit : 100;
    int64_t to = q->to_ms ? q->to_ms : INT64_MAX;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    MDB_cursor *c = NULL;
    rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_AUDIT), &c));
    uint8_t k[SR_AUDIT_KEY];
    MDB_val K, V;
    int r = MDB_NOTFOUND;
    if (!rc && !q->newest_first) {
        /* from the cursor (the row after it) or from `from` */
        if (q->after_seq) audit_key(k, q->after_ms, q->after_seq + 1);
        else audit_key(k, q->from_ms, 0);
        K.mv_size = sizeof k;
        K.mv_data = k;
        r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    } else if (!rc) {
        /* backwards from the cursor (the row before it) or from `to` */
        if (q->after_seq) audit_key(k, q->after_ms, q->after_seq);
        else audit_key(k, to == INT64_MAX ? to : to + 1, 0);
        K.mv_size = sizeof k;
        K.mv_data = k;
        r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
        r = r == 0 ? mdb_cursor_get(c, &K, &V, MDB_PREV) : mdb_cursor_get(c, &K, &V, MDB_LAST);
    }
    while (!rc && r == 0) {
        sr__audit_row a;
        if (audit_decode(K.mv_data, K.mv_size, V.mv_data, V.mv_size, &a)) {
            rc = SR_ECORRUPT;
            break;
        }
        if (q->newest_first ? a.ms < q->from_ms : a.ms > to) break;
        int match = a.ms >= q->from_ms && a.ms <= to && (!q->op || !strcmp(q->op, a.s[F_OP])) &&
                    (!q->actor || !strcmp(q->actor, a.s[F_ACTOR])) && (!q->kind || in_list(q->kind, a.s[F_KIND])) &&
                    (!q->actor_kind || q->actor_kind == a.actor_kind);
        if (match) {
            if (*count == limit) {
                *more = 1;
                break;
            }
            uint8_t lb[4];
            sr_put_le32(lb, (uint32_t)(K.mv_size + V.mv_size));
            if ((rc = sr_buf_append(out, lb, 4)) || (rc = sr_buf_append(out, K.mv_data, K.mv_size)) ||
                (rc = sr_buf_append(out, V.mv_data, V.mv_size)))
                break;
            (*count)++;
        }
        r = mdb_cursor_get(c, &K, &V, q->newest_first ? MDB_PREV : MDB_NEXT);
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    if (c) mdb_cursor_close(c);
    sr_index_read_end(e->ix, t);
    return rc;
}
