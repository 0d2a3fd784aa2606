/*
 * api/alarms.h -- the alarm rules and their periodic evaluator (issue #17,
 * R-MO-3, R-MO-4; docs/monitoring.md "Alarms" and "Clock").
 *
 * The rules are one table (SR_ALARM_RULES in alarms.c: name, level, whether
 * the rule resolves its alarm when the condition clears, its evaluator). The
 * server's one-second tick calls sr_alarms_tick; every [alarms] interval_s
 * it evaluates each rule (a few syscalls and the engine's own figures: off
 * the ingest path) and appends an AlarmEvent through the writer only on a
 * change: a condition that starts (raised), changes level (raised again: a
 * re-occurrence of the open alarm), or clears under a rule that resolves
 * (resolved, auto_resolved). The open alarms are read from the index at
 * each evaluation (engine/alarms.c keeps one per condition), so a restart,
 * or an admin resolving one, is seen at the next evaluation.
 *
 * A rule whose events come from elsewhere has a row without an evaluator:
 * push-dropped (api/push.c raises it). gateway-skew and value-out-of-range
 * take notes the GW-IF leaves (api/gwif_json.h) at each evaluation.
 *
 * TEST HOOK (test-only, documented in docs/monitoring.md "Clock"): with the
 * environment variable SUIRO_TEST_ALARM_CLOCK naming a file, each
 * evaluation reads two integers from it: an offset in ms added to the wall
 * clock the clock-jump rule reads, and the kernel's synchronisation as the
 * clock-unsync rule sees it (-1: adjtimex's own answer, 0: synchronised, 1:
 * unsynchronised).
 *
 * A second test hook, SUIRO_TEST_FSYNC_DELAY_MS (api/server.c; docs/monitoring.md
 * "fdatasync latency"), slows each fdatasync of the log for fsync-latency.
 *
 * THREADS: the loop's (open, tick, free); the submits' completions run on
 * the writer thread and touch only an atomic counter.
 */
#ifndef SR_API_ALARMS_H
#define SR_API_ALARMS_H

#include "api/config.h"
#include "engine/records.h"

#include <stdint.h>

typedef struct sr_alarms sr_alarms;

/* The evaluator of cfg's [alarms] over engine e (both outlive it). */
SR_MUST_CHECK int sr_alarms_open(sr_engine *e, const sr_config *cfg, sr_alarms **out);
/* login-failures watches g's throttle (api/loginguard.h) from now on. */
struct sr_loginguard;
void sr_alarms_watch_logins(sr_alarms *a, struct sr_loginguard *g);
/* Evaluate the rules if [alarms] interval_s has passed since the last
 * evaluation (and none of its events is still in the writer's hands). */
void sr_alarms_tick(sr_alarms *a);
/* After the engine is closed (every completion has run). NULL-safe. */
void sr_alarms_free(sr_alarms *a);

/* The rules' table, for the docs check and the admin API: the i-th rule
 * (NULL past the last): its name, its (highest) level, whether it resolves
 * its alarm itself, and whether its alarms are the platform's (operator
 * ""). */
typedef struct sr_alarm_rule_info {
    const char *name;
    sr_alarm_level level;
    int auto_resolve, platform;
    const char *what;
} sr_alarm_rule_info;
const sr_alarm_rule_info *sr_alarm_rule(size_t i);

/* ---- the alarms' answers, shared by /admin/v1/alarms and the AP-IF's
 * (ext) GET /api/v1/alarms (admin_alarms.c) ---------------------------------- */
#include <jansson.h>
struct st_h2o_req_t;
/* An alarm as the APIs answer it (docs/api/openapi.yaml AdminAlarm). */
json_t *sr_alarm_json(const sr_alarm *a);
/* A list's filters (query operator, state, level, rule, since, until). */
typedef struct sr_alarm_filter {
    char op[72], state[16], rule[72];
    int level;            /* 0: any */
    int64_t since, until; /* 0: open */
} sr_alarm_filter;
/* 0, or -1 with the bad parameter and why. */
int sr_alarm_filter_parse(struct st_h2o_req_t *req, sr_alarm_filter *f, const char **field, const char **why);
/* 1 if a passes f. */
int sr_alarm_filter_keeps(const sr_alarm_filter *f, const sr_alarm *a);

#endif
