/*
 * api/alarms.c -- the alarm rules' table and their periodic evaluator
 * (api/alarms.h; docs/monitoring.md "Alarms" and "Clock").
 *
 * INVARIANTS
 *  (1) One event per change, never one per evaluation: an evaluation
 *      raises a condition that has no open alarm or whose open alarm has
 *      another level, and resolves (auto_resolved) the open alarm of a
 *      condition that cleared under a rule that resolves; anything else
 *      appends nothing.
 *  (2) No evaluation starts while an event of the previous one is still in
 *      the writer's hands (inflight): the open alarms it reads include what
 *      it raised last time.
 *  (3) A rule's evaluator reads the system and the engine's figures only;
 *      it never waits (statvfs, adjtimex, clock_gettime, the engine's
 *      counters, the GW-IF's notes), and a rule that reads the index or
 *      the log reads a bounded slice (no-data, selfcheck) per evaluation,
 *      or a table bounded by the registry (gateway-offline: the `alive`
 *      index, one row per gateway and app). fsync-latency adds nothing to
 *      the writer: it reads the metrics' histogram.
 *  (4) No evaluation while the engine does not write (read-only, or a
 *      failed write being retried): it could store none of its events.
 */
#include "api/alarms.h"

#include "api/gwif_json.h"
#include "api/loginguard.h"
#include "api/slog.h"
#include "codecs/rfc3339.h"
#include "codecs/base/sr_alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <time.h>

struct sr_alarms;
/* What an evaluator found: the condition of (op, subject) at level (0:
 * clear), with a message. */
typedef void (*found_fn)(struct sr_alarms *a, const char *op, const char *subject, sr_alarm_level level,
                         const char *message);
typedef void (*eval_fn)(struct sr_alarms *a, found_fn found);

static void eval_disk_free(struct sr_alarms *a, found_fn found);
static void eval_writer_queue(struct sr_alarms *a, found_fn found);
static void eval_clock_unsync(struct sr_alarms *a, found_fn found);
static void eval_clock_jump(struct sr_alarms *a, found_fn found);
static void eval_no_data(struct sr_alarms *a, found_fn found);
static void eval_cert_expiry(struct sr_alarms *a, found_fn found);
static void eval_login_failures(struct sr_alarms *a, found_fn found);
static void eval_selfcheck(struct sr_alarms *a, found_fn found);
static void eval_gateway_skew(struct sr_alarms *a, found_fn found);
static void eval_fsync_latency(struct sr_alarms *a, found_fn found);
static void eval_gateway_offline(struct sr_alarms *a, found_fn found);
static void eval_value_range(struct sr_alarms *a, found_fn found);

/* The rules: X(name, highest level, resolves itself, the platform's, evaluator (NULL: raised elsewhere), what) */
#define SR_ALARM_RULES(X)                                                                                         \
    X("disk-free", SR_AL_MAJOR, 1, 1, eval_disk_free,                                                            \
      "free space of the data directory's file system below [alarms] disk_free_*_pct or _mb")                    \
    X("writer-queue", SR_AL_WARNING, 1, 1, eval_writer_queue,                                                   \
      "commands waiting for the writer above [alarms] writer_queue_warning")                                     \
    X("clock-unsync", SR_AL_MINOR, 1, 1, eval_clock_unsync,                                                      \
      "the kernel reports the clock unsynchronised (adjtimex: TIME_ERROR or STA_UNSYNC)")                        \
    X("clock-jump", SR_AL_MAJOR, 0, 1, eval_clock_jump,                                                          \
      "the wall clock moved against the monotonic clock by more than [alarms] clock_jump_ms between evaluations") \
    X("no-data", SR_AL_MINOR, 1, 0, eval_no_data,                                                               \
      "a data point's newest value is older than [alarms] no_data_s (its latest row; a slice of the points per evaluation)") \
    X("cert-expiry", SR_AL_MAJOR, 1, 1, eval_cert_expiry,                                                        \
      "a TLS listener's certificate (as loaded at the start) expires within [alarms] cert_expiry_*_days")        \
    X("login-failures", SR_AL_WARNING, 1, 1, eval_login_failures,                                                 \
      "the login throttle refused repeated failures ([alarms] login_throttled_warning since the last evaluation); "  \
      "resolved after login_quiet_s without one")                                                                 \
    X("selfcheck", SR_AL_MAJOR, 0, 1, eval_selfcheck,                                                            \
      "the scheduled self-check: a record of the log written since the last check does not read back "            \
      "(checksum, authentication, decoding), every [alarms] selfcheck_interval_s")                                \
    X("gateway-skew", SR_AL_WARNING, 0, 0, eval_gateway_skew,                                                    \
      "a gateway's values run ahead of the server's clock by more than [alarms] gateway_skew_ms (accepted; "       \
      "raised once per gateway while its alarm is open)")                                                         \
    X("push-dropped", SR_AL_MINOR, 0, 0, NULL, "an app's push queue dropped messages (api/push.c)")              \
    X("fsync-latency", SR_AL_WARNING, 1, 1, eval_fsync_latency,                                                 \
      "the log's fdatasync p99 since the last evaluation (the engine's histogram) above [alarms] fsync_latency_ms") \
    X("gateway-offline", SR_AL_MINOR, 1, 0, eval_gateway_offline,                                               \
      "a gateway offline (its alive row) for longer than [alarms] gateway_offline_s; resolved once it is online")  \
    X("value-out-of-range", SR_AL_WARNING, 1, 0, eval_value_range,                                              \
      "a gateway's value refused for its data point's min/max; resolved after [alarms] "                  \
      "value_range_quiet_s without such a refusal")

typedef struct rule {
    sr_alarm_rule_info info;
    eval_fn eval;
} rule;

static const rule RULES[] = {
#define SR_X_(n, l, ar, pl, ev, w) {{n, l, ar, pl, w}, ev},
    SR_ALARM_RULES(SR_X_)
#undef SR_X_
};
#define NRULES (sizeof RULES / sizeof *RULES)

const sr_alarm_rule_info *sr_alarm_rule(size_t i) { return i < NRULES ? &RULES[i].info : NULL; }

/* one condition of the current rule, open or found this evaluation */
typedef struct cond {
    char op[72], subject[256];
    sr_alarm_level open; /* the open alarm's level; 0: none */
    int found;           /* found by this evaluation (level in `level`) */
    sr_alarm_level level;
    char msg[256];
} cond;

struct sr_alarms {
    sr_engine *eng;
    const sr_config *cfg;
    uint64_t next_ms;         /* monotonic: the next evaluation */
    atomic_int inflight;      /* events submitted, not completed (invariant 2) */
    const rule *cur;          /* the rule being evaluated */
    cond *conds;
    size_t nconds, capconds;
    int have_drift;
    int64_t drift_ms;         /* wall - monotonic at the last evaluation */
    uint32_t nd_next;         /* no-data: the point the next slice starts from */
    found_fn nd_found;
    int64_t nd_now;
    struct {
        const char *listener; /* the subject: "mqtt", "http" */
        int64_t not_after_ms; /* its certificate's, read at open; 0: none */
    } certs[2];
    sr_loginguard *guard;     /* login-failures: its throttle's counters (NULL: not watched) */
    uint64_t lg_throttled;    /* the throttle's refusals at the last evaluation */
    uint64_t lg_last_ms;      /* monotonic: the last evaluation that saw new refusals (0: none) */
    uint64_t sc_next_ms;      /* selfcheck: monotonic, the next check */
    uint64_t sc_from;         /* selfcheck: the first seq not yet checked (0: the log's first) */
    size_t sc_n;              /* selfcheck: records read by this check */
    sr_hist_snap fs_prev;     /* fsync-latency: the engine's fdatasync histogram at the last evaluation */
    struct range_seen {       /* value-out-of-range: the last refusal seen per (op, point), monotonic ms */
        char op[72], point[72];
        uint64_t last_ms;
    } *rs;
    size_t nrs, caprs;
    int test_unsync;          /* the test hook's (-1: none) */
    int64_t test_offset_ms;
};

static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The notAfter of the first certificate in PEM file path (ms), 0 when it
 * does not read: the listener refused to start with it then anyway. */
static int64_t cert_not_after(const char *path)
{
    BIO *b = path[0] ? BIO_new_file(path, "r") : NULL;
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    struct tm tm;
    int64_t ms = 0;
    if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) ms = (int64_t)timegm(&tm) * 1000;
    X509_free(x);
    BIO_free(b);
    return ms;
}

int sr_alarms_open(sr_engine *e, const sr_config *cfg, sr_alarms **out)
{
    sr_alarms *a = calloc(1, sizeof *a);
    if (!a) return SR_ENOMEM;
    a->eng = e;
    a->cfg = cfg;
    a->next_ms = mono_ms() + (uint64_t)cfg->alarms_interval_s * 1000;
    a->test_unsync = -1;
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    a->fs_prev = st.fsync_us; /* fsync-latency: the first evaluation covers what follows the start */
    /* the certificates the listeners load at this start (server.c), read once */
    a->certs[0].listener = "mqtt";
    a->certs[0].not_after_ms = cfg->tls_listen[0] ? cert_not_after(cfg->tls_cert) : 0;
    a->certs[1].listener = "http";
    a->certs[1].not_after_ms = cert_not_after(cfg->http_tls_cert);
    *out = a;
    return SR_OK;
}

void sr_alarms_watch_logins(sr_alarms *a, struct sr_loginguard *g)
{
    a->guard = g;
    sr_login_stats st;
    sr_loginguard_stats(g, &st);
    a->lg_throttled = st.throttled;
}

void sr_alarms_free(sr_alarms *a)
{
    if (!a) return;
    free(a->conds);
    free(a->rs);
    free(a);
}

static void done(void *ctx, const sr_result *r)
{
    sr_alarms *a = ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "alarm event not stored", "error=%s detail=%s", sr_err_name(r->rc), sr_slog_q(r->err.msg));
    atomic_fetch_sub(&a->inflight, 1);
}

static void submit(sr_alarms *a, const char *op, const sr_alarm_step *st)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, "alarms"};
    int rc = sr_cmd_alarm(&env, st, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        atomic_fetch_add(&a->inflight, 1);
        if ((rc = sr_engine_submit(a->eng, &sl, 1, done, a))) atomic_fetch_sub(&a->inflight, 1);
    }
    if (rc)
        sr_slog(SR_LOG_WARN, "alarm event not queued", "rule=%s subject=%s state=%s error=%s", st->rule,
                sr_slog_q(st->subject), st->state, sr_err_name(rc));
    else
        sr_slog(st->state[0] == 'r' && st->state[2] == 'i' ? SR_LOG_WARN : SR_LOG_INFO, "alarm",
                "rule=%s op=%s subject=%s state=%s level=%s message=%s", st->rule, op, sr_slog_q(st->subject),
                st->state, sr_alarm_level_name(st->level), sr_slog_q(st->message ? st->message : ""));
    sr_buf_release(&b);
}

static cond *cond_find(sr_alarms *a, const char *op, const char *subject)
{
    for (size_t i = 0; i < a->nconds; i++)
        if (!strcmp(a->conds[i].op, op) && !strcmp(a->conds[i].subject, subject)) return &a->conds[i];
    return NULL;
}

static cond *cond_get(sr_alarms *a, const char *op, const char *subject)
{
    cond *f = cond_find(a, op, subject);
    if (f) return f;
    if (a->nconds == a->capconds) {
        size_t cap = a->capconds ? a->capconds * 2 : 8;
        cond *n = realloc(a->conds, cap * sizeof *n);
        if (!n) return NULL;
        a->conds = n;
        a->capconds = cap;
    }
    cond *c = &a->conds[a->nconds++];
    memset(c, 0, sizeof *c);
    snprintf(c->op, sizeof c->op, "%s", op);
    snprintf(c->subject, sizeof c->subject, "%s", subject);
    return c;
}

static void found(sr_alarms *a, const char *op, const char *subject, sr_alarm_level level, const char *message)
{
    cond *c = cond_get(a, op, subject);
    if (!c) return;
    c->found = 1;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", message ? message : "");
}

/* one rule: its open alarms (from the index), its evaluator's findings, the
 * changes appended (invariant 1) */
static void eval_rule(sr_alarms *a, const rule *r, const sr_alarm *open, size_t nopen)
{
    a->cur = r;
    a->nconds = 0;
    for (size_t i = 0; i < nopen; i++)
        if (!strcmp(open[i].rule, r->info.name)) {
            cond *c = cond_get(a, open[i].op, open[i].subject);
            if (c) c->open = open[i].level;
        }
    r->eval(a, found);
    for (size_t i = 0; i < a->nconds; i++) {
        cond *c = &a->conds[i];
        if (!c->found) continue; /* not evaluated (a subject the rule no longer sees): left as it is */
        /* a rule that does not resolve itself finds events (a jump): each is an occurrence */
        if (c->level && (c->level != c->open || !r->info.auto_resolve)) {
            sr_alarm_step st = {.state = "raised", .rule = r->info.name, .subject = c->subject, .level = c->level,
                                .source = "alarms", .message = c->msg, .auto_resolve = r->info.auto_resolve};
            submit(a, c->op, &st);
        } else if (!c->level && c->open && r->info.auto_resolve) {
            sr_alarm_step st = {.state = "resolved", .rule = r->info.name, .subject = c->subject,
                                .comment = c->msg, .auto_resolved = 1};
            submit(a, c->op, &st);
        }
    }
}

/* the test hook (alarms.h) */
static void test_hook(sr_alarms *a)
{
    const char *f = getenv("SUIRO_TEST_ALARM_CLOCK");
    if (!f) return;
    FILE *fp = fopen(f, "r");
    long long off = 0;
    int uns = -1;
    if (fp) {
        if (fscanf(fp, "%lld %d", &off, &uns) != 2) off = 0, uns = -1;
        fclose(fp);
    }
    a->test_offset_ms = off;
    a->test_unsync = uns;
}

void sr_alarms_tick(sr_alarms *a)
{
    if (!a || !a->cfg->alarms_interval_s) return;
    uint64_t now = mono_ms();
    if (now < a->next_ms || atomic_load(&a->inflight)) return; /* invariant 2 */
    /* a read-only or failed engine stores no event (its own alert says why, server.c engine_alert) */
    if (sr_engine_write_state(a->eng, NULL) != SR_OK) return;
    a->next_ms = now + (uint64_t)a->cfg->alarms_interval_s * 1000;
    test_hook(a);
    sr_rec open = SR_REC_INIT;
    int rc = sr_list_open_alarms(a->eng, &open);
    if (rc) {
        sr_slog(SR_LOG_WARN, "alarms not evaluated: the open alarms do not read", "error=%s", sr_err_name(rc));
        sr_rec_close(&open);
        return;
    }
    size_t n = sr_rec_count(&open), got = 0;
    sr_alarm *al = n ? calloc(n, sizeof *al) : NULL;
    int k;
    while (got < n && al && (k = sr_rec_next_alarm(&open, &al[got])) != 0)
        if (k == 1) got++;
    if (n && !al) sr_slog(SR_LOG_WARN, "alarms not evaluated", "error=%s", sr_err_name(SR_ENOMEM));
    else
        for (size_t i = 0; i < NRULES; i++)
            if (RULES[i].eval) eval_rule(a, &RULES[i], al, got);
    free(al);
    sr_rec_close(&open);
}

/* ---- the evaluators ------------------------------------------------------- */

static void eval_disk_free(sr_alarms *a, found_fn fn)
{
    struct statvfs v;
    if (statvfs(a->cfg->data_dir, &v)) return; /* not evaluated */
    uint64_t bs = v.f_frsize ? v.f_frsize : v.f_bsize;
    uint64_t mb = (uint64_t)v.f_bavail * bs / (1024 * 1024), total = (uint64_t)v.f_blocks * bs / (1024 * 1024);
    double pct = v.f_blocks ? 100.0 * (double)v.f_bavail / (double)v.f_blocks : 100.0;
    const sr_config *c = a->cfg;
    sr_alarm_level l = 0;
    uint32_t pcts[3] = {c->alarms_disk_free_warning_pct, c->alarms_disk_free_minor_pct, c->alarms_disk_free_major_pct};
    uint32_t mbs[3] = {c->alarms_disk_free_warning_mb, c->alarms_disk_free_minor_mb, c->alarms_disk_free_major_mb};
    for (int i = 0; i < 3; i++)
        if ((pcts[i] && pct < pcts[i]) || (mbs[i] && mb < mbs[i])) l = (sr_alarm_level)(SR_AL_WARNING + i);
    char msg[200];
    snprintf(msg, sizeof msg, "%" PRIu64 " MiB free of %" PRIu64 " MiB (%.1f%%) where the data directory is", mb,
             total, pct);
    fn(a, "", "", l, msg);
}

static void eval_writer_queue(sr_alarms *a, found_fn fn)
{
    uint32_t lim = a->cfg->alarms_writer_queue_warning;
    if (!lim) return;
    sr_engine_stats st;
    sr_engine_get_stats(a->eng, &st);
    char msg[120];
    snprintf(msg, sizeof msg, "%" PRIu64 " commands waiting for the writer (warning above %u)", st.queue_depth, lim);
    fn(a, "", "", st.queue_depth > lim ? SR_AL_WARNING : 0, msg);
}

static void eval_clock_unsync(sr_alarms *a, found_fn fn)
{
    if (!a->cfg->alarms_clock_sync_check) return;
    int uns = a->test_unsync;
    if (uns < 0) {
        struct timex tx = {0};
        int st = adjtimex(&tx);
        if (st < 0) return; /* not evaluated */
        uns = st == TIME_ERROR || (tx.status & STA_UNSYNC);
    }
    fn(a, "", "", uns ? SR_AL_MINOR : 0,
       uns ? "the kernel reports the system clock unsynchronised (adjtimex)" : "the clock is synchronised again");
}

static void eval_cert_expiry(sr_alarms *a, found_fn fn)
{
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    int64_t now = (int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000 + a->test_offset_ms;
    int64_t warn = (int64_t)a->cfg->alarms_cert_expiry_warning_days * 86400000,
            major = (int64_t)a->cfg->alarms_cert_expiry_major_days * 86400000;
    for (size_t i = 0; i < sizeof a->certs / sizeof *a->certs; i++) {
        if (!a->certs[i].not_after_ms) continue;
        int64_t left = a->certs[i].not_after_ms - now;
        sr_alarm_level l = major && left < major ? SR_AL_MAJOR : warn && left < warn ? SR_AL_WARNING : 0;
        char msg[160];
        if (left > 0)
            snprintf(msg, sizeof msg, "the %s listener's certificate expires in %" PRId64 " days", a->certs[i].listener,
                     left / 86400000);
        else
            snprintf(msg, sizeof msg, "the %s listener's certificate has expired", a->certs[i].listener);
        fn(a, "", a->certs[i].listener, l, msg);
    }
}

/* repeated failures: the throttle refuses a principal or an address only
 * after [login] free_failures of them (api/loginguard.h) */
static void eval_login_failures(sr_alarms *a, found_fn fn)
{
    uint32_t lim = a->cfg->alarms_login_throttled_warning;
    if (!a->guard || !lim) return;
    sr_login_stats st;
    sr_loginguard_stats(a->guard, &st);
    uint64_t d = st.throttled - a->lg_throttled, now = mono_ms();
    a->lg_throttled = st.throttled;
    char msg[160];
    if (d >= lim) {
        a->lg_last_ms = now;
        snprintf(msg, sizeof msg, "the login throttle refused %" PRIu64 " logins since the last evaluation (repeated failures)", d);
        fn(a, "", "", SR_AL_WARNING, msg);
    } else if (!a->lg_last_ms || now - a->lg_last_ms >= (uint64_t)a->cfg->alarms_login_quiet_s * 1000) {
        snprintf(msg, sizeof msg, "no login refused by the throttle for %u s", a->cfg->alarms_login_quiet_s);
        fn(a, "", "", 0, msg);
    } /* else: quiet for less than login_quiet_s: as it is */
}

enum { SELFCHECK_BATCH = 2000 }; /* records one check reads at most (invariant 3: bounded work) */

static int selfcheck_one(void *ctx, const sr_event_view *v)
{
    sr_alarms *a = ctx;
    a->sc_from = v->seq + 1;
    return ++a->sc_n >= SELFCHECK_BATCH ? SR_DONE : SR_OK;
}

/* The records appended since the last check read back (sr_engine_log_each:
 * each block's checksum, its authentication when sealed, the record's
 * decoding), at most SELFCHECK_BATCH per check; the next check goes on
 * from there. A failure raises; no check runs while its alarm is open (it
 * would find the same range again); once an admin resolves it the checks
 * go on from the failing range. */
static void eval_selfcheck(sr_alarms *a, found_fn fn)
{
    uint64_t now = mono_ms();
    if (!a->cfg->alarms_selfcheck_interval_s || now < a->sc_next_ms) return;
    cond *c = cond_find(a, "", "");
    if (c && c->open) return;
    a->sc_next_ms = now + (uint64_t)a->cfg->alarms_selfcheck_interval_s * 1000;
    a->sc_n = 0;
    uint64_t last = 0, from = a->sc_from;
    int rc = sr_engine_log_each(a->eng, from, selfcheck_one, a, &last);
    char msg[300];
    if (rc && rc != SR_DONE) {
        snprintf(msg, sizeof msg, "the log does not read back after seq %" PRIu64 ": %s", a->sc_from, sr_strerror(rc));
        fn(a, "", "", SR_AL_MAJOR, msg);
    } else {
        snprintf(msg, sizeof msg, "%zu records read back", a->sc_n);
        fn(a, "", "", 0, msg);
    }
}

/* the notes of the GW-IF parsers (api/gwif_json.h): once per gateway while
 * its alarm is open */
static void eval_gateway_skew(sr_alarms *a, found_fn fn)
{
    static sr_gw_skew_note notes[SR_GW_SKEW_NOTES]; /* the loop's only */
    size_t n = sr_gw_skew_take(notes, SR_GW_SKEW_NOTES);
    for (size_t i = 0; i < n; i++) {
        cond *c = cond_find(a, notes[i].op, notes[i].gw);
        if (c && c->open) continue;
        char msg[240];
        snprintf(msg, sizeof msg, "gateway %s sends values %" PRId64 " ms ahead of the server's clock (message %s; stored as sent)",
                 notes[i].gw, notes[i].ahead_ms, notes[i].message_id);
        fn(a, notes[i].op, notes[i].gw, SR_AL_WARNING, msg);
    }
}

enum { NO_DATA_SLICE = 4096 }; /* latest rows one evaluation visits at most (invariant 3: bounded work) */

static int no_data_one(void *ctx, const char *op, const char *data_id, uint32_t point, int64_t ts)
{
    (void)point;
    sr_alarms *a = ctx;
    int64_t age = a->nd_now - ts, lim = (int64_t)a->cfg->alarms_no_data_s * 1000;
    if (age > lim) {
        char msg[160];
        snprintf(msg, sizeof msg, "no value from %s for %" PRId64 " s (its newest value's time; over %u s)", data_id,
                 age / 1000, a->cfg->alarms_no_data_s);
        a->nd_found(a, op, data_id, SR_AL_MINOR, msg);
    } else {
        cond *c = cond_find(a, op, data_id); /* only an open alarm has something to clear */
        if (c && c->open) a->nd_found(a, op, data_id, 0, "values again");
    }
    return 0;
}

/* a slice of the latest rows from where the last one stopped (invariant 3) */
static void eval_no_data(sr_alarms *a, found_fn fn)
{
    if (!a->cfg->alarms_no_data_s) return;
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    a->nd_now = (int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000 + a->test_offset_ms;
    a->nd_found = fn;
    uint32_t next = 0;
    int rc = sr_engine_latest_each(a->eng, a->nd_next, NO_DATA_SLICE, no_data_one, a, &next);
    if (rc) sr_slog(SR_LOG_WARN, "alarm rule no-data not evaluated", "error=%s", sr_err_name(rc));
    a->nd_next = rc ? 0 : next;
}

static void eval_clock_jump(sr_alarms *a, found_fn fn)
{
    struct timespec w, m;
    clock_gettime(CLOCK_REALTIME, &w);
    clock_gettime(CLOCK_MONOTONIC, &m);
    int64_t drift = ((int64_t)w.tv_sec - (int64_t)m.tv_sec) * 1000 + ((int64_t)w.tv_nsec - (int64_t)m.tv_nsec) / 1000000 +
                    a->test_offset_ms;
    int64_t d = a->have_drift ? drift - a->drift_ms : 0;
    a->have_drift = 1;
    a->drift_ms = drift;
    uint32_t lim = a->cfg->alarms_clock_jump_ms;
    if (!lim || (d <= (int64_t)lim && d >= -(int64_t)lim)) return; /* a jump is an event: nothing to clear */
    char msg[120];
    snprintf(msg, sizeof msg, "the wall clock jumped %+" PRId64 " ms against the monotonic clock", d);
    fn(a, "", "", SR_AL_MAJOR, msg);
}

/* The p99 of the fdatasyncs since the last evaluation, from the engine's
 * histogram (no work on the writer's path: its counters exist for the
 * metrics): the lower bound of the bucket holding the 99th percentile, so
 * "above the threshold" is certain (the threshold is rounded up to the
 * buckets' bounds: SR_HIST_US_BOUNDS). No fdatasync since: not evaluated. */
static void eval_fsync_latency(sr_alarms *a, found_fn fn)
{
    static const uint64_t bounds[] = SR_HIST_US_BOUNDS;
    sr_engine_stats st;
    sr_engine_get_stats(a->eng, &st);
    sr_hist_snap now = st.fsync_us, prev = a->fs_prev;
    a->fs_prev = now;
    uint64_t lim = (uint64_t)a->cfg->alarms_fsync_latency_ms * 1000, n = now.count - prev.count;
    if (!lim || !n || now.count < prev.count) return;
    uint64_t want = n - n / 100, cum = 0, p99 = bounds[SR_HIST_US_N - 1]; /* past the last bound: +Inf's */
    for (size_t i = 0; i < SR_HIST_US_N; i++) {
        cum += now.bucket[i] - prev.bucket[i];
        if (cum >= want) {
            p99 = i ? bounds[i - 1] : 0;
            break;
        }
    }
    char msg[200];
    snprintf(msg, sizeof msg, "the log's fdatasync p99 is over %.1f ms (%" PRIu64 " since the last evaluation, mean %.1f ms; "
             "threshold %u ms)", (double)p99 / 1000, n, (double)(now.sum - prev.sum) / (double)n / 1000,
             a->cfg->alarms_fsync_latency_ms);
    fn(a, "", "", p99 >= lim ? SR_AL_WARNING : 0, msg);
}

/* The alive index (api/alive.h): one read per evaluation, a row per gateway
 * and app that ever connected (bounded by the registry). A gateway offline
 * since longer than gateway_offline_s is raised (its operator's, subject
 * the gateway); its open alarm is resolved once the row says online, or
 * offline since less (it was back in between). A gateway never seen has no
 * row: not watched. */
static void eval_gateway_offline(sr_alarms *a, found_fn fn)
{
    uint32_t lim = a->cfg->alarms_gateway_offline_s;
    if (!lim) return;
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    int64_t now = (int64_t)w.tv_sec * 1000 + w.tv_nsec / 1000000 + a->test_offset_ms;
    sr_rec r = SR_REC_INIT;
    int rc = sr_list_alive(a->eng, NULL, &r), k;
    if (rc) {
        sr_slog(SR_LOG_WARN, "alarm rule gateway-offline not evaluated", "error=%s", sr_err_name(rc));
        sr_rec_close(&r);
        return;
    }
    sr_alive_rec ar;
    while ((k = sr_rec_next_alive(&r, &ar)) != 0) {
        if (k < 0 || ar.kind != SR_ACTOR_GATEWAY) continue;
        int64_t off = now - ar.since_ms;
        char msg[240], since[32];
        if (ar.state == SR_AS_OFFLINE && off > (int64_t)lim * 1000) {
            sr_rfc3339_format(ar.since_ms, since);
            const char *rn = sr_alive_reason_name((int)ar.reason);
            snprintf(msg, sizeof msg, "gateway %s offline since %s (%s, %" PRId64 " s; over %u s)", ar.id, since,
                     rn ? rn : "", off / 1000, lim);
            fn(a, ar.op, ar.id, SR_AL_MINOR, msg);
        } else {
            cond *c = cond_find(a, ar.op, ar.id); /* only an open alarm has something to clear */
            if (c && c->open) {
                sr_rfc3339_format(ar.since_ms, since);
                snprintf(msg, sizeof msg, "gateway %s online again (since %s)", ar.id, since);
                fn(a, ar.op, ar.id, 0, msg);
            }
        }
    }
    sr_rec_close(&r);
}

static struct range_seen *range_seen(sr_alarms *a, const char *op, const char *point, int make)
{
    for (size_t i = 0; i < a->nrs; i++)
        if (!strcmp(a->rs[i].op, op) && !strcmp(a->rs[i].point, point)) return &a->rs[i];
    if (!make) return NULL;
    if (a->nrs == a->caprs) {
        size_t cap = a->caprs ? a->caprs * 2 : 8;
        struct range_seen *n = realloc(a->rs, cap * sizeof *n);
        if (!n) return NULL;
        a->rs = n;
        a->caprs = cap;
    }
    struct range_seen *e = &a->rs[a->nrs++];
    snprintf(e->op, sizeof e->op, "%s", op);
    snprintf(e->point, sizeof e->point, "%s", point);
    e->last_ms = 0;
    return e;
}

/* The notes of the refusals (api/gwif_json.h sr_gw_range_refused): a point
 * with refusals since the last evaluation is raised (once: a lasting
 * condition is no new event); an open alarm whose point had none for
 * value_range_quiet_s is resolved. The quiet clock of an open alarm this
 * process has not seen refused (after a restart) starts at its first
 * evaluation. */
static void eval_value_range(sr_alarms *a, found_fn fn)
{
    static sr_gw_range_note notes[SR_GW_RANGE_NOTES]; /* the loop's only */
    size_t n = sr_gw_range_take(notes, SR_GW_RANGE_NOTES);
    uint64_t now = mono_ms(), quiet = (uint64_t)a->cfg->alarms_value_range_quiet_s * 1000;
    for (size_t i = 0; i < n; i++) {
        struct range_seen *e = range_seen(a, notes[i].op, notes[i].point, 1);
        if (e) e->last_ms = now;
        char msg[420];
        snprintf(msg, sizeof msg, "%" PRIu32 " value(s) of %s from gateway %s refused for its range since the last evaluation; "
                 "the latest: %s", notes[i].count, notes[i].point, notes[i].gw, notes[i].msg);
        fn(a, notes[i].op, notes[i].point, SR_AL_WARNING, msg);
    }
    for (size_t i = 0; i < a->nconds; i++) {
        cond c = a->conds[i]; /* a copy: fn may grow the array */
        if (!c.open || c.found) continue;
        struct range_seen *e = range_seen(a, c.op, c.subject, 1);
        if (!e) continue;
        if (!e->last_ms) e->last_ms = now;
        if (now - e->last_ms < quiet) continue;
        char msg[320];
        snprintf(msg, sizeof msg, "no value of %s refused for its range for %u s", c.subject,
                 a->cfg->alarms_value_range_quiet_s);
        fn(a, c.op, c.subject, 0, msg);
    }
    /* forget the points with no open alarm left and none raised now (resolved
     * above, or by an admin): the table holds the open alarms' points only */
    for (size_t i = 0; i < a->nrs;) {
        cond *c = cond_find(a, a->rs[i].op, a->rs[i].point);
        if (c && ((c->found && c->level) || (c->open && !c->found))) i++;
        else a->rs[i] = a->rs[--a->nrs];
    }
}
