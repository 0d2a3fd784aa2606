/* tests/api/test_ryw.c -- read-your-writes without a server (api/ryw.h): the
 * Suiro-Wait token's grammar as a table (accepted with their values, refused
 * with the problem named), format and parse round trips, Suiro-Wait-Ms, the
 * bounded waiter list (full, woken in arrival order, timeouts, errors, more
 * than one batch), and the cluster wait list's fill of a released answer's
 * stream seq (api/cluster.h). */
#include "api/cluster.h"
#include "api/ryw.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *in;
    size_t n;           /* tokens; 0: refused */
    const char *out;    /* the format of the parse ("" when refused) */
    const char *problem; /* a part of the refusal's message */
} cases[] = {
    {"1", 1, "1", ""},
    {"18446744073709551615", 1, "18446744073709551615", ""},
    {"42", 1, "42", ""},
    {" 42 ", 1, "42", ""},
    {"3:1234", 1, "3:1234", ""},
    {"3:1234@s2:567", 1, "3:1234@s2:567", ""},
    {"0:0@node_1-x:9", 1, "0:0@node_1-x:9", ""},
    {"998:1", 1, "998:1", ""},
    {"1:5,2:7@b:3, 9", 3, "1:5,2:7@b:3,9", ""},
    {"1,2,3,4,5,6,7,8", 8, "1,2,3,4,5,6,7,8", ""},
    {"", 0, "", "empty"},
    {"   ", 0, "", "empty"},
    {"0", 0, "", "seq 0"},
    {"x", 0, "", "a number expected"},
    {"-1", 0, "", "a number expected"},
    {"18446744073709551616", 0, "", "a number expected"},
    {"12x", 0, "", "',' or the end expected"},
    {"1,", 0, "", "a number expected"},
    {",1", 0, "", "a number expected"},
    {"1,,2", 0, "", "a number expected"},
    {"999:1", 0, "", "partition out of range"},
    {"3:", 0, "", "a stream seq expected"},
    {"3:0", 0, "", "stream seq 0 without"},
    {"3:5@", 0, "", "a node name expected"},
    {"3:5@n", 0, "", "':' expected after the node"},
    {"3:5@n:", 0, "", "a seq expected after the node"},
    {"3:5@n:0", 0, "", "seq 0"},
    {"3:5@n.x:1", 0, "", "':' expected after the node"},
    {"3:5@abcdefghijabcdefghijabcdefghij12:1", 0, "", "longer than 31"},
    {"1:2:3", 0, "", "',' or the end expected"},
    {"1,2,3,4,5,6,7,8,9", 0, "", "too many tokens"},
    {"1;2", 0, "", "',' or the end expected"},
};

Test(ryw, token_table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_ryw_tok t[SR_RYW_MAX_TOKENS];
        size_t n = 99;
        char err[256] = "", buf[600];
        int rc = sr_ryw_parse(cases[i].in, strlen(cases[i].in), t, SR_RYW_MAX_TOKENS, &n, err, sizeof err);
        if (cases[i].n) {
            cr_assert_eq(rc, SR_OK, "%s: %s", cases[i].in, err);
            cr_assert_eq(n, cases[i].n, "%s", cases[i].in);
            cr_assert_gt(sr_ryw_format(t, n, buf, sizeof buf), 0);
            cr_assert_str_eq(buf, cases[i].out, "%s", cases[i].in);
        } else {
            cr_assert_eq(rc, SR_EINVAL, "%s accepted", cases[i].in);
            cr_assert(strstr(err, cases[i].problem), "%s: %s", cases[i].in, err);
        }
    }
}

Test(ryw, token_values)
{
    sr_ryw_tok t[SR_RYW_MAX_TOKENS];
    size_t n;
    char err[256];
    cr_assert_eq(sr_ryw_parse("7:100@s1:55,12", 14, t, SR_RYW_MAX_TOKENS, &n, err, sizeof err), SR_OK);
    cr_assert_eq(n, 2);
    cr_assert(t[0].cluster && t[0].part == 7 && t[0].sseq == 100 && !strcmp(t[0].node, "s1") && t[0].seq == 55);
    cr_assert(!t[1].cluster && t[1].seq == 12 && !t[1].node[0]);
    /* the length given counts, not a NUL */
    cr_assert_eq(sr_ryw_parse("12345", 2, t, SR_RYW_MAX_TOKENS, &n, err, sizeof err), SR_OK);
    cr_assert_eq(t[0].seq, 12);
    /* too long a value */
    char big[SR_RYW_TEXT_MAX + 2];
    memset(big, '1', sizeof big);
    cr_assert_eq(sr_ryw_parse(big, sizeof big, t, SR_RYW_MAX_TOKENS, &n, err, sizeof err), SR_EINVAL);
    cr_assert(strstr(err, "too long"));
    /* a buffer too small to format */
    char small[4];
    cr_assert_eq(sr_ryw_parse("12345", 5, t, SR_RYW_MAX_TOKENS, &n, err, sizeof err), SR_OK);
    cr_assert_eq(sr_ryw_format(t, 1, small, sizeof small), -1);
    cr_assert_eq(sr_ryw_format(t, 1, small, 6 - 2), -1);
}

Test(ryw, wait_ms)
{
    uint32_t ms = 7;
    char err[128];
    cr_assert_eq(sr_ryw_parse_ms("0", 1, &ms, err, sizeof err), SR_OK);
    cr_assert_eq(ms, 0);
    cr_assert_eq(sr_ryw_parse_ms("30000", 5, &ms, err, sizeof err), SR_OK);
    cr_assert_eq(ms, 30000);
    const char *bad[] = {"", "30001", "-1", "1.5", "x", "99999999999999", " 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(sr_ryw_parse_ms(bad[i], strlen(bad[i]), &ms, err, sizeof err), SR_EINVAL, "%s", bad[i]);
}

/* ---- the waiter list ---- */

typedef struct world {
    uint64_t applied;
    int error_id; /* a waiter id whose check is an error (-1 none) */
    int order[2048], outcome[2048];
    size_t ndone;
} world;

static int check(void *arg, const sr_ryw_waiter *w, char *err, size_t errlen)
{
    world *x = arg;
    int id = (int)(intptr_t)w->ctx;
    if (id == x->error_id) {
        snprintf(err, errlen, "not owned");
        return -1;
    }
    return x->applied >= w->tok[0].seq;
}

static void done(void *arg, const sr_ryw_waiter *w, int outcome, const char *err)
{
    world *x = arg;
    if (outcome == SR_RYW_ERROR) cr_assert_str_eq(err, "not owned");
    x->order[x->ndone] = (int)(intptr_t)w->ctx;
    x->outcome[x->ndone++] = outcome;
}

static sr_ryw_waiter waiter(int id, uint64_t seq, int64_t deadline)
{
    sr_ryw_waiter w;
    memset(&w, 0, sizeof w);
    w.ntok = 1;
    w.tok[0].seq = seq;
    w.deadline_ms = deadline;
    w.ctx = (void *)(intptr_t)id;
    return w;
}

Test(ryw, list_bounded)
{
    sr_ryw_list l;
    cr_assert_eq(sr_ryw_list_init(&l, 3, 3), SR_OK);
    for (int i = 0; i < 3; i++) {
        sr_ryw_waiter w = waiter(i, 10, 100);
        cr_assert_eq(sr_ryw_list_add(&l, &w), SR_OK);
    }
    sr_ryw_waiter w = waiter(3, 10, 100);
    cr_assert_eq(sr_ryw_list_add(&l, &w), SR_EFULL);
    world x = {.applied = 10, .error_id = -1};
    sr_ryw_list_sweep(&l, 0, check, done, &x);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(sr_ryw_list_add(&l, &w), SR_OK, "room again once answered");
    sr_ryw_list_destroy(&l);
}

/* one operator's share (invariant 2): "op-a" fills its share, its next
 * waiter is refused while "op-b" and the platform still wait; an answered
 * waiter of op-a makes room for op-a again; the server's shares are a
 * quarter of the list */
Test(ryw, list_operator_share)
{
    cr_assert_eq(SR_RYW_WAITERS_PER_OP * 4, SR_RYW_WAITERS_MAX);
    sr_ryw_list l;
    cr_assert_eq(sr_ryw_list_init(&l, 8, 3), SR_OK);
    for (int i = 0; i < 3; i++) {
        sr_ryw_waiter w = waiter(i, 10, 100);
        snprintf(w.op, sizeof w.op, "op-a");
        cr_assert_eq(sr_ryw_list_add(&l, &w), SR_OK);
    }
    sr_ryw_waiter a = waiter(3, 10, 100);
    snprintf(a.op, sizeof a.op, "op-a");
    cr_assert_eq(sr_ryw_list_add(&l, &a), SR_RYW_OPFULL, "op-a's share is full");
    cr_assert_eq(sr_ryw_list_count_op(&l, "op-a"), 3);
    sr_ryw_waiter b = waiter(4, 5, 100);
    snprintf(b.op, sizeof b.op, "op-b");
    cr_assert_eq(sr_ryw_list_add(&l, &b), SR_OK, "another operator still waits");
    sr_ryw_waiter p = waiter(5, 10, 100); /* the platform: op "" */
    cr_assert_eq(sr_ryw_list_add(&l, &p), SR_OK, "the platform still waits");
    cr_assert_eq(l.n, 5);
    /* op-b's waiter reached: out; op-a still full */
    world x = {.applied = 5, .error_id = -1};
    sr_ryw_list_sweep(&l, 0, check, done, &x);
    cr_assert(x.ndone == 1 && x.order[0] == 4 && x.outcome[0] == SR_RYW_REACHED);
    cr_assert_eq(sr_ryw_list_add(&l, &a), SR_RYW_OPFULL);
    /* op-a's first times out: room for op-a again */
    l.w[0].deadline_ms = 0;
    x.ndone = 0;
    sr_ryw_list_sweep(&l, 1, check, done, &x);
    cr_assert(x.ndone == 1 && x.order[0] == 0 && x.outcome[0] == SR_RYW_TIMEOUT);
    cr_assert_eq(sr_ryw_list_add(&l, &a), SR_OK);
    /* the whole list: SR_EFULL, whoever asks */
    for (int i = 6; l.n < 8; i++) {
        sr_ryw_waiter o = waiter(i, 10, 100);
        snprintf(o.op, sizeof o.op, "op-%d", i);
        cr_assert_eq(sr_ryw_list_add(&l, &o), SR_OK);
    }
    sr_ryw_waiter c = waiter(99, 10, 100);
    snprintf(c.op, sizeof c.op, "op-c");
    cr_assert_eq(sr_ryw_list_add(&l, &c), SR_EFULL);
    sr_ryw_list_destroy(&l);
}

Test(ryw, list_order_and_timeouts)
{
    sr_ryw_list l;
    cr_assert_eq(sr_ryw_list_init(&l, 16, 16), SR_OK);
    /* ids 0..5: seqs 5, 9, 3, 20, 7, 4; deadlines 100, 50, 100, 60, 100, 100; id 4 errs */
    uint64_t seqs[] = {5, 9, 3, 20, 7, 4};
    int64_t dl[] = {100, 50, 100, 60, 100, 100};
    for (int i = 0; i < 6; i++) {
        sr_ryw_waiter w = waiter(i, seqs[i], dl[i]);
        cr_assert_eq(sr_ryw_list_add(&l, &w), SR_OK);
    }
    world x = {.applied = 4, .error_id = 4};
    int64_t next = sr_ryw_list_sweep(&l, 10, check, done, &x);
    /* reached: 2 (3), 5 (4), in arrival order; error: 4; the rest wait */
    cr_assert_eq(x.ndone, 3);
    cr_assert(x.order[0] == 2 && x.outcome[0] == SR_RYW_REACHED);
    cr_assert(x.order[1] == 4 && x.outcome[1] == SR_RYW_ERROR);
    cr_assert(x.order[2] == 5 && x.outcome[2] == SR_RYW_REACHED);
    cr_assert_eq(next, 50);
    cr_assert_eq(l.n, 3);
    /* the left ones stay in arrival order */
    cr_assert((intptr_t)l.w[0].ctx == 0 && (intptr_t)l.w[1].ctx == 1 && (intptr_t)l.w[2].ctx == 3);
    /* time 60: 1 and 3 time out (a waiter reached at its deadline would be reached: 0 is not due) */
    x.ndone = 0;
    x.applied = 4;
    next = sr_ryw_list_sweep(&l, 60, check, done, &x);
    cr_assert_eq(x.ndone, 2);
    cr_assert(x.order[0] == 1 && x.outcome[0] == SR_RYW_TIMEOUT);
    cr_assert(x.order[1] == 3 && x.outcome[1] == SR_RYW_TIMEOUT);
    cr_assert_eq(next, 100);
    /* at its deadline and reached: reached */
    x.ndone = 0;
    x.applied = 5;
    next = sr_ryw_list_sweep(&l, 100, check, done, &x);
    cr_assert(x.ndone == 1 && x.order[0] == 0 && x.outcome[0] == SR_RYW_REACHED);
    cr_assert_eq(next, INT64_MAX);
    cr_assert_eq(l.n, 0);
    sr_ryw_list_destroy(&l);
}

/* more waiters than one batch of the sweep (64): every one once, in order */
Test(ryw, list_many)
{
    sr_ryw_list l;
    cr_assert_eq(sr_ryw_list_init(&l, 1000, 1000), SR_OK);
    for (int i = 0; i < 1000; i++) {
        sr_ryw_waiter w = waiter(i, (uint64_t)(i % 2 ? 1 : 1000), 1000);
        cr_assert_eq(sr_ryw_list_add(&l, &w), SR_OK);
    }
    world x = {.applied = 1, .error_id = -1};
    sr_ryw_list_sweep(&l, 0, check, done, &x);
    cr_assert_eq(x.ndone, 500);
    for (size_t i = 0; i < 500; i++) cr_assert_eq(x.order[i], (int)(2 * i + 1));
    cr_assert_eq(l.n, 500);
    for (size_t i = 0; i < 500; i++) cr_assert_eq((intptr_t)l.w[i].ctx, (intptr_t)(2 * i));
    x.ndone = 0;
    sr_ryw_list_sweep(&l, 1000, check, done, &x);
    cr_assert_eq(x.ndone, 500);
    for (size_t i = 0; i < 500; i++) cr_assert(x.order[i] == (int)(2 * i) && x.outcome[i] == SR_RYW_TIMEOUT);
    sr_ryw_list_destroy(&l);
}

/* ---- the cluster wait list's fill (api/cluster.h) ---- */

static uint64_t got_sseq[8];
static size_t ngot;

static void fill(void *arg, uint64_t last, sr_result *res)
{
    (void)arg;
    res->part = 2;
    res->stream_seq = 1000 + last;
}

static void answered(void *ctx, const sr_result *res)
{
    (void)ctx;
    got_sseq[ngot++] = res->stream_seq;
}

Test(ryw, waitlist_fill)
{
    sr_waitlist w;
    cr_assert_eq(sr_waitlist_init(&w, 4, 0), SR_OK);
    w.fill = fill;
    sr_result r;
    memset(&r, 0, sizeof r);
    r.seq = 5;
    cr_assert_eq(sr_waitlist_hold(&w, 5, answered, NULL, &r), 0);
    r.seq = 7;
    cr_assert_eq(sr_waitlist_hold(&w, 7, answered, NULL, &r), 0);
    ngot = 0;
    cr_assert_eq(sr_waitlist_confirm(&w, 7), 2);
    cr_assert_eq(ngot, 2);
    cr_assert_eq(got_sseq[0], 1005);
    cr_assert_eq(got_sseq[1], 1007);
    sr_waitlist_destroy(&w);
}
