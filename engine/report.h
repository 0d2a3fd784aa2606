/*
 * engine/report.h -- incident reports (issue #18, R-RE-4; docs/incident-report.md):
 * what happened in a time window, gathered from the log and the index as
 * the engine's own typed records, for the writers of api/ (api/report.c:
 * JSON and one self-contained HTML page). api/ sees no protobuf here either
 * (engine/records.h's rule).
 *
 * One builder, sr_report_build: it reads the log's events of the window
 * (starting near `from` through the `audit` index, which is keyed by time
 * and gives seqs, so a report of the last hour does not read the whole
 * log), sorts what it finds into sections, then reads the values of the
 * points involved (engine/query.c: raw when few, downsampled when many).
 *
 * Every string of a report points into the report's own memory, valid
 * until sr_report_free. A report is bounded: at most `cap` items per
 * section (the rest counted in the section's `truncated`), at most
 * SR_REPORT_POINTS_MAX points, at most `chart_max` values per point.
 */
#ifndef SR_REPORT_H
#define SR_REPORT_H

#include "engine/records.h"
#include "engine/suiro.h"

#include <stddef.h>
#include <stdint.h>

enum {
    SR_REPORT_CAP = 1000,        /* items per section by default */
    SR_REPORT_CAP_MAX = 100000,  /* the largest cap a caller may ask */
    SR_REPORT_POINTS_MAX = 64,   /* points charted */
    SR_REPORT_CHART_MAX = 500,   /* values per point by default before downsampling */
    SR_REPORT_FILTER_POINTS = 64 /* --point given at most this many times */
};

typedef struct sr_report_q {
    int64_t from_ms, to_ms;     /* the window, both inclusive: events' ingest times, values' timestamps */
    const char *op;             /* NULL: every operator (an operator admin's is forced by the caller) */
    const char *gateway;        /* NULL: any */
    const char *const *points;  /* dataIds of op (op required), at most SR_REPORT_FILTER_POINTS */
    size_t npoints;
    size_t cap;                 /* items per section; 0: SR_REPORT_CAP */
    size_t chart_max;           /* values per point kept raw; more: at most this many buckets (at least 2);
                                 * 0: SR_REPORT_CHART_MAX */
} sr_report_q;

/* A connection, a refusal or a change (the sections that are an audit
 * row's shape; engine/audit.c names the kinds). */
typedef struct sr_report_event {
    uint64_t seq;
    int64_t ms;
    const char *op, *actor, *actor_kind, *source;
    const char *kind;     /* connections: alive, session, logout; refusals: admin, login_failed, ...;
                           * changes: registry, master, user, pending, key, retention, login_policy, ... */
    const char *action;   /* online, offline, opened, disconnected ...; the admin route; put, delete ... */
    const char *target;   /* gateway:GW1, app:APP1, user:U1, ... */
    const char *outcome;  /* done, ok, refused ... */
    const char *reason;   /* connections: the AliveReason's or the session's reason; refusals: the code */
    const char *detail;
} sr_report_event;

/* A request (the app-level RequestCreated) and its outcome (its final
 * app-level RequestTransition, if in the window). */
typedef struct sr_report_request {
    uint64_t seq;
    int64_t ms;
    const char *op, *request_id, *kind, *app;
    const char *gateways;  /* its parts' gateways, comma-separated */
    const char *data_ids;  /* comma-separated */
    const char *state;     /* created (no outcome in the window), succeeded, failed, timed_out, cancelled */
    const char *error_code, *message;
    int64_t outcome_ms;    /* 0: none in the window */
    uint64_t outcome_seq;
    int before_window;     /* 1: created before the window, its outcome in it (read from the index) */
} sr_report_request;

/* A control value: who sent what, to which gateway, and what came of it. */
typedef struct sr_report_control {
    uint64_t seq;
    int64_t ms;
    const char *op, *request_id, *app, *gateway, *data_id;
    sr_control_value value; /* the value sent (its data_id and s point into the report) */
    const char *state, *error_code, *message;
    int has_protection;    /* the app sent a protection (signature) with it */
    int sig_verified;      /* it verified against the app's certificate (ControlValue.sig_state, docs/signatures.md) */
    size_t protection_len;
} sr_report_control;

/* An alarm step (AlarmEvent). */
typedef struct sr_report_alarm {
    uint64_t seq;
    int64_t ms;
    const char *op, *alarm_id, *step; /* raised, acknowledged, resolved */
    const char *rule, *subject, *level, *by, *message, *comment;
} sr_report_alarm;

/* The values of one involved point over the window. */
typedef struct sr_report_value {
    int64_t ts;
    double v;              /* raw: the value (integers and booleans as numbers); downsampled: the bucket's mean */
    double min, max;       /* downsampled: the bucket's; raw: v */
    uint64_t count;        /* raw: 1 */
} sr_report_value;
typedef struct sr_report_series {
    const char *op, *data_id, *type; /* number, integer, bool, string */
    const char *gateway;   /* the gateway reaching it ("" unknown) */
    const char *why;       /* filter, request, control, alarm */
    uint64_t total;        /* values in the window */
    int downsampled;       /* 0: raw; 1: buckets of interval_ms */
    int64_t interval_ms;
    sr_report_value *v;
    size_t n;
} sr_report_series;

typedef struct sr_report {
    int64_t from_ms, to_ms;
    const char *op, *gateway;       /* "" when not filtered */
    const char *const *points;
    size_t npoints;
    size_t cap;
    uint64_t first_seq, last_seq;   /* the log's records read (0: none) */
    uint64_t events;                /* events of the window read */
    uint64_t read;                  /* events of the log read to find them (the window's and its edges') */
    sr_report_event *conns;
    size_t nconns, conns_truncated;
    sr_report_request *reqs;
    size_t nreqs, reqs_truncated;
    sr_report_control *ctrls;
    size_t nctrls, ctrls_truncated;
    sr_report_alarm *alarms;
    size_t nalarms, alarms_truncated;
    sr_report_event *refusals;
    size_t nrefusals, refusals_truncated;
    sr_report_event *changes;
    size_t nchanges, changes_truncated;
    sr_report_series *series;
    size_t nseries, series_truncated;
    void *mem; /* private: the report's memory */
} sr_report;

/* Build the report of q. SR_OK and *out (sr_report_free it); else a code
 * with ei naming the problem: SR_EINVAL (from after to, a point without an
 * operator, too many points, a bad cap), SR_ENOTFOUND (no such operator,
 * no such point of the operator, no such gateway), or a read error. */
SR_MUST_CHECK int sr_report_build(sr_engine *e, const sr_report_q *q, sr_report **out, sr_errinfo *ei);
void sr_report_free(sr_report *r);
/* NULL when r's invariants hold (engine/report.c: caps, log order, series
 * bounds; chart_max as built with, 0: the default), else the broken one. */
const char *sr_report_check(const sr_report *r, size_t chart_max);

/* The control's `signature` member: whether the app's protection verified.
 * Today the log does not record the verdict: "none" when the request carried
 * no protection, "not recorded" otherwise (the signatures' work records it;
 * this is the one place to read it from). */
const char *sr_report_sig_state(const sr_report_control *c);

#endif
