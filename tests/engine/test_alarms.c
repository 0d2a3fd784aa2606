/* tests/engine/test_alarms.c -- the alarm life cycle in the engine
 * (AlarmEvent, engine/alarms.c; engine/records.h sr_cmd_alarm,
 * sr_read_alarm, sr_list_alarms): raised -> acknowledged -> resolved, each
 * step with who, when and a comment; one open alarm per condition (a raise
 * of an open condition counts a re-occurrence, no second alarm); a resolved
 * condition raises a new alarm; steps never go back (409); an operator
 * reaches only its own alarms; a rule resolves the open alarm of its
 * condition without its id; the replay of a pre-#17 push-dropped event
 * gives an alarm of rule push-dropped; replay == rebuild. */
#include "engine/records.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static char *dir;
static _Atomic int64_t clock_now = 1800000000000; /* the engine's ingest clock */
static int64_t test_clock(void) { return atomic_load(&clock_now); }
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE, .clock_ms = test_clock};
static const sr_cmd_env SYS = {"op1", "system", SR_ACTOR_SYSTEM, NULL, "alarms"};

static int step(sr_engine *e, const sr_cmd_env *env, const sr_alarm_step *s, sr_result *r)
{
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_alarm(env, s, &b), &b, r);
}

static int raise(sr_engine *e, const char *rule, const char *subject, sr_alarm_level level, const char *msg)
{
    sr_result r;
    sr_alarm_step s = {.state = "raised", .rule = rule, .subject = subject, .level = level, .source = "test",
                       .message = msg, .auto_resolve = 1};
    return step(e, &SYS, &s, &r);
}

static int user_step(sr_engine *e, const char *op, const char *who, const char *state, const char *id,
                     const char *comment, sr_result *r)
{
    sr_cmd_env env = {op, who, SR_ACTOR_USER, NULL, "192.0.2.7:4000"};
    sr_alarm_step s = {.state = state, .id = id, .comment = comment};
    return step(e, &env, &s, r);
}

/* the alarms, in raise order, into ids (n: how many) */
static size_t list(sr_engine *e, char ids[][20], size_t cap)
{
    sr_rec r = SR_REC_INIT;
    cr_assert_eq(sr_list_alarms(e, &r), SR_OK);
    sr_alarm a;
    size_t n = 0;
    int k;
    while ((k = sr_rec_next_alarm(&r, &a)) == 1 && n < cap) snprintf(ids[n++], 20, "%s", a.id);
    cr_assert_eq(k, n < cap ? 0 : 1);
    sr_rec_close(&r);
    return n;
}

Test(alarms, life_cycle_one_open_alarm_per_condition)
{
    sr_engine *e = es_open(&dir, "alarms", &OPTS);
    cr_assert_eq(raise(e, "disk-free", "", SR_AL_WARNING, "12% free"), SR_OK);
    clock_now += 1000;
    cr_assert_eq(raise(e, "disk-free", "", SR_AL_MINOR, "8% free"), SR_OK); /* the same condition: re-occurrence */
    cr_assert_eq(raise(e, "no-data", "P1", SR_AL_MINOR, "P1 silent"), SR_OK);
    char ids[8][20];
    cr_assert_eq(list(e, ids, 8), 2, "a raise of an open condition is no second alarm");
    sr_rec r = SR_REC_INIT;
    sr_alarm a;
    cr_assert_eq(sr_read_alarm(e, ids[0], &r, &a), SR_OK);
    cr_assert_str_eq(a.rule, "disk-free");
    cr_assert_str_eq(a.op, "op1");
    cr_assert_str_eq(a.state, "raised");
    cr_assert_eq(a.count, 2);
    cr_assert_eq(a.level, SR_AL_MINOR, "the latest raise's level");
    cr_assert_str_eq(a.message, "8% free");
    cr_assert_eq(a.raised_ms, 1800000000000);
    cr_assert_eq(a.last_ms, 1800000001000);
    cr_assert_str_eq(a.raised_by, "system");
    cr_assert(a.auto_resolve);
    sr_rec_close(&r);

    sr_result res;
    clock_now += 1000;
    cr_assert_eq(user_step(e, "op1", "oa1", "acknowledged", ids[0], "looking at it", &res), SR_OK, "%s", res.err.msg);
    cr_assert_eq(user_step(e, "op1", "oa2", "acknowledged", ids[0], NULL, &res), SR_ECONFLICT);
    cr_assert(strstr(res.err.msg, "acknowledged already by oa1"), "%s", res.err.msg);
    cr_assert_eq(user_step(e, "op2", "xa", "resolved", ids[0], NULL, &res), SR_ENOTFOUND,
                 "another operator's alarm is not found");
    cr_assert_eq(raise(e, "disk-free", "", SR_AL_MAJOR, "3% free"), SR_OK); /* still open (acknowledged) */
    cr_assert_eq(list(e, ids, 8), 2);
    clock_now += 1000;
    cr_assert_eq(user_step(e, "op1", "oa2", "resolved", ids[0], "disk replaced", &res), SR_OK, "%s", res.err.msg);
    cr_assert_eq(sr_read_alarm(e, ids[0], &r, &a), SR_OK);
    cr_assert_str_eq(a.state, "resolved");
    cr_assert_eq(a.count, 3);
    cr_assert_str_eq(a.acked_by, "oa1");
    cr_assert_str_eq(a.ack_comment, "looking at it");
    cr_assert_eq(a.acked_ms, 1800000002000);
    cr_assert_str_eq(a.resolved_by, "oa2");
    cr_assert_str_eq(a.resolve_comment, "disk replaced");
    cr_assert_eq(a.resolved_ms, 1800000003000);
    cr_assert(!a.auto_resolved);
    sr_rec_close(&r);
    cr_assert_eq(user_step(e, "op1", "oa1", "resolved", ids[0], NULL, &res), SR_ECONFLICT);
    cr_assert_eq(user_step(e, "op1", "oa1", "acknowledged", "A00000000000000FF", NULL, &res), SR_ENOTFOUND);

    /* resolved: the condition raises a new alarm */
    cr_assert_eq(raise(e, "disk-free", "", SR_AL_WARNING, "15% free"), SR_OK);
    cr_assert_eq(list(e, ids, 8), 3);
    /* a rule resolves its condition's open alarm without its id */
    sr_alarm_step s = {.state = "resolved", .rule = "disk-free", .subject = "", .auto_resolved = 1};
    cr_assert_eq(step(e, &SYS, &s, &res), SR_OK, "%s", res.err.msg);
    cr_assert_eq(step(e, &SYS, &s, &res), SR_ENOTFOUND, "no open alarm left");
    cr_assert_eq(sr_read_alarm(e, ids[2], &r, &a), SR_OK);
    cr_assert_str_eq(a.rule, "disk-free");
    cr_assert_str_eq(a.state, "resolved");
    cr_assert(a.auto_resolved);
    cr_assert_str_eq(a.resolved_by, "system");
    sr_rec_close(&r);

    /* bad steps store nothing */
    cr_assert_eq(raise(e, "", "", SR_AL_WARNING, "x"), SR_EINVAL);
    cr_assert_eq(raise(e, "r", "", (sr_alarm_level)7, "x"), SR_EINVAL);
    cr_assert_eq(user_step(e, "op1", "oa1", "snoozed", ids[1], NULL, &res), SR_EINVAL);
    cr_assert_eq(list(e, ids, 8), 3);

    /* the rebuilt index is the written one */
    e = es_rebuilt(e, &dir, &OPTS);
    cr_assert_eq(list(e, ids, 8), 3);
    cr_assert_eq(sr_read_alarm(e, ids[0], &r, &a), SR_OK);
    cr_assert_str_eq(a.state, "resolved");
    cr_assert_eq(a.count, 3);
    cr_assert_str_eq(a.resolve_comment, "disk replaced");
    sr_rec_close(&r);
    cr_assert_eq(raise(e, "no-data", "P1", SR_AL_MINOR, "P1 silent"), SR_OK);
    cr_assert_eq(list(e, ids, 8), 3, "the open row was rebuilt too");
    es_finish(e, &dir);
}

/* An AlarmEvent as push.c wrote it before issue #17 (no rule): an alarm of
 * rule push-dropped whose subject is the app; its repeats are
 * re-occurrences of that one alarm. */
Test(alarms, a_pre_17_push_dropped_event_replays_into_an_alarm)
{
    sr_engine *e = es_open(&dir, "alarms", &OPTS);
    for (int i = 0; i < 3; i++) {
        sr_alarm_step s = {.state = "raised", .id = "push-dropped-APP001", .level = SR_AL_MINOR, .source = "push",
                           .message = "push queue of app APP001 over 10: oldest dropped"};
        sr_result r;
        cr_assert_eq(step(e, &SYS, &s, &r), SR_OK, "%s", r.err.msg);
    }
    e = es_rebuilt(e, &dir, &OPTS);
    sr_rec r = SR_REC_INIT;
    cr_assert_eq(sr_list_alarms(e, &r), SR_OK);
    sr_alarm a;
    cr_assert_eq(sr_rec_next_alarm(&r, &a), 1);
    cr_assert_str_eq(a.rule, "push-dropped");
    cr_assert_str_eq(a.subject, "APP001");
    cr_assert_eq(a.count, 3);
    cr_assert_eq(sr_rec_next_alarm(&r, &a), 0, "one alarm");
    sr_rec_close(&r);
    es_finish(e, &dir);
}
