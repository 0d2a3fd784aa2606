/* tests/api/test_cluster_part.c -- the cluster mode's parts without NATS
 * (api/cluster.h, docs/cluster.md): the partition function's golden values
 * and distribution, the wait list, the [cluster] checks, the fixed
 * partition count and the confirmed watermark's file. */
#include "api/cluster.h"
#include "api/config.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a 64's published test vectors (Fowler, Noll, Vo) */
Test(partition, fnv1a64_vectors)
{
    cr_assert_eq(sr_fnv1a64("", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(sr_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(sr_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

/* jump consistent hash: the vectors of the reference implementations' tests */
Test(partition, jump_vectors)
{
    cr_assert_eq(sr_jump_hash(1, 1), 0);
    cr_assert_eq(sr_jump_hash(42, 57), 43);
    cr_assert_eq(sr_jump_hash(0xDEAD10CCull, 1), 0);
    cr_assert_eq(sr_jump_hash(0xDEAD10CCull, 666), 361);
    cr_assert_eq(sr_jump_hash(256, 1024), 520);
}

/* operators' partitions: the golden values docs/cluster.md shows (also
 * computed again, in Python, by tests/integration/test_cluster.py) */
Test(partition, golden_operators)
{
    static const struct {
        const char *op;
        uint32_t p[6]; /* for 1, 4, 16, 17, 64, 999 partitions */
    } g[] = {
        {"sim", {0, 3, 11, 11, 11, 989}},
        {"demo", {0, 2, 8, 8, 8, 228}},
        {"op-0001", {0, 1, 13, 13, 13, 162}},
        {"tokyo-water", {0, 0, 0, 0, 52, 481}},
    };
    static const uint32_t n[6] = {1, 4, 16, 17, 64, 999};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        for (int k = 0; k < 6; k++)
            cr_assert_eq(sr_cluster_partition(g[i].op, n[k]), g[i].p[k], "%s in %u: %u", g[i].op, n[k],
                         sr_cluster_partition(g[i].op, n[k]));
    cr_assert_eq(sr_cluster_partition("", 16), 0, "the platform's events: partition 0");
    cr_assert_eq(sr_cluster_partition(NULL, 16), 0);
}

/* 100,000 operators over 16 partitions: each within 5 % of the mean; growing
 * to 17 moves about 1/17 of them, and only into the new partition */
Test(partition, distribution_and_growth)
{
    enum { N = 100000, P = 16 };
    static uint32_t count[P + 1];
    uint32_t moved = 0;
    char op[32];
    for (int i = 0; i < N; i++) {
        snprintf(op, sizeof op, "op-%06d", i);
        uint32_t a = sr_cluster_partition(op, P), b = sr_cluster_partition(op, P + 1);
        cr_assert_lt(a, P);
        count[a]++;
        if (a != b) {
            moved++;
            cr_assert_eq(b, P, "%s moved from %u to %u, not to the new partition", op, a, b);
        }
    }
    for (int p = 0; p < P; p++)
        cr_assert(count[p] > N / P * 95 / 100 && count[p] < N / P * 105 / 100, "partition %d: %u", p, count[p]);
    cr_assert(moved > N / (P + 1) * 90 / 100 && moved < N / (P + 1) * 110 / 100, "moved %u", moved);
}

/* ---- the wait list ---- */

typedef struct got {
    int n;
    uint64_t seq[16];
    int rc[16];
} got;
static void cb(void *ctx, const sr_result *r)
{
    got *g = ctx;
    g->seq[g->n] = r->seq;
    g->rc[g->n++] = r->rc;
}

Test(waitlist, holds_until_confirmed_in_order)
{
    sr_waitlist w;
    cr_assert_eq(sr_waitlist_init(&w, 4, 10), SR_OK);
    got g = {0};
    sr_result r = {0};
    r.seq = 9;
    cr_assert_eq(sr_waitlist_hold(&w, 9, cb, &g, &r), 1, "at or below the watermark: answer now");
    for (uint64_t s = 11; s <= 14; s++) {
        r.seq = s;
        cr_assert_eq(sr_waitlist_hold(&w, s, cb, &g, &r), 0);
    }
    r.seq = 15;
    cr_assert_eq(sr_waitlist_hold(&w, 15, cb, &g, &r), SR_EFULL, "bounded: the fifth is refused");
    cr_assert_eq(sr_waitlist_held(&w), 4);
    cr_assert_eq(sr_waitlist_confirm(&w, 12), 2);
    cr_assert_eq(g.n, 2);
    cr_assert_eq(g.seq[0], 11);
    cr_assert_eq(g.seq[1], 12);
    cr_assert_eq(sr_waitlist_confirm(&w, 11), 0, "the watermark never goes back");
    cr_assert_eq(sr_waitlist_confirmed(&w), 12);
    cr_assert_eq(sr_waitlist_close(&w, SR_ECLOSED, "stopping"), 2);
    cr_assert_eq(g.n, 4);
    cr_assert_eq(g.rc[2], SR_ECLOSED, "never a positive answer without the acknowledgement");
    cr_assert_eq(g.rc[3], SR_ECLOSED);
    r.seq = 16;
    cr_assert_eq(sr_waitlist_hold(&w, 16, cb, &g, &r), SR_ECLOSED);
    sr_waitlist_destroy(&w);
}

/* ---- [cluster] checks ---- */

static int check_cfg(const char *nats, const char *node, const char *name, char *err, size_t n)
{
    sr_config c;
    sr_config_defaults(&c);
    if (nats && sr_config_set(&c, "cluster", "nats", nats, err, n)) return -2;
    if (node && sr_config_set(&c, "cluster", "node", node, err, n)) return -2;
    if (name && sr_config_set(&c, "cluster", "name", name, err, n)) return -2;
    return sr_config_check(&c, err, n);
}

Test(config, cluster_keys)
{
    char err[512];
    cr_assert_eq(check_cfg(NULL, NULL, NULL, err, sizeof err), 0, "no [cluster]: a single node");
    cr_assert_eq(check_cfg("nats://127.0.0.1:4222,nats://h2:4223", "s1", NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(check_cfg("http://127.0.0.1:4222", "s1", NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "http://127.0.0.1:4222"), "names the bad URL: %s", err);
    cr_assert_eq(check_cfg("nats://127.0.0.1", "s1", NULL, err, sizeof err), -1, "no port");
    cr_assert_eq(check_cfg("nats://127.0.0.1:4222,", "s1", NULL, err, sizeof err), -1, "an empty URL");
    cr_assert_eq(check_cfg("nats://127.0.0.1:99999", "s1", NULL, err, sizeof err), -1, "a port out of range");
    cr_assert_eq(check_cfg("nats://127.0.0.1:4222", NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "node"), "missing node name: %s", err);
    cr_assert_eq(check_cfg("nats://127.0.0.1:4222", "s 1", NULL, err, sizeof err), -1, "a space in the node name");
    cr_assert_eq(check_cfg("nats://127.0.0.1:4222", "s1", "A.B", err, sizeof err), -1, "a dot in the stream prefix");
    cr_assert_eq(check_cfg(NULL, "s1", NULL, err, sizeof err), -1, "node without nats");
    sr_config c;
    sr_config_defaults(&c);
    cr_assert_neq(sr_config_set(&c, "cluster", "partitions", "0", err, sizeof err), 0, "at least one partition");
}

/* [cluster] with [engine] key_file (stream keys, docs/keys.md "Cluster: stream
 * keys"): accepted; the refusal of phase 1 ("not supported yet: the streams
 * would hold the events in clear") is gone */
Test(config, cluster_with_key_file)
{
    char err[512] = "";
    sr_config c;
    sr_config_defaults(&c);
    cr_assert_eq(sr_config_set(&c, "cluster", "nats", "nats://127.0.0.1:4222", err, sizeof err), 0, "%s", err);
    cr_assert_eq(sr_config_set(&c, "cluster", "node", "s1", err, sizeof err), 0, "%s", err);
    cr_assert_eq(sr_config_set(&c, "engine", "key_file", "env:SUIRO_TEST_KEY", err, sizeof err), 0, "%s", err);
    cr_assert_eq(sr_config_check(&c, err, sizeof err), 0, "key_file with [cluster] accepted: %s", err);
    cr_assert_null(strstr(err, "not supported yet"), "%s", err);
}

/* [cluster] owned (phase 2a, the consumers): all, none, a list */
static int owned_bits(const char *spec, uint32_t parts, char *out, char *err, size_t n)
{
    uint8_t b[(SR_CLUSTER_MAX_PARTITIONS + 7) / 8];
    memset(b, 0xAA, sizeof b);
    int rc = sr_cluster_parse_owned(spec, parts, b, err, n);
    for (uint32_t p = 0; p < parts; p++) out[p] = (b[p / 8] >> (p % 8)) & 1 ? '1' : '0';
    out[parts] = 0;
    return rc;
}

Test(config, owned_partitions)
{
    char err[512], bits[32];
    cr_assert_eq(owned_bits("all", 8, bits, err, sizeof err), 0);
    cr_assert_str_eq(bits, "11111111");
    cr_assert_eq(owned_bits("none", 8, bits, err, sizeof err), 0);
    cr_assert_str_eq(bits, "00000000");
    cr_assert_eq(owned_bits("0,3,5-7", 8, bits, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(bits, "10010111");
    cr_assert_eq(owned_bits("2-2", 4, bits, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(bits, "0010");
    const char *bad[] = {"8", "0,8", "3-1", "x", "1,", ",1", "1-", "-1", "1;2", "all,1", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(owned_bits(bad[i], 8, bits, err, sizeof err), SR_EINVAL, "'%s' is refused", bad[i]);
        cr_assert(strstr(err, "[cluster] owned") && strstr(err, bad[i]), "names the key and the value: %s", err);
    }
    /* and by the configuration's check */
    sr_config c;
    sr_config_defaults(&c);
    cr_assert_eq(sr_config_set(&c, "cluster", "nats", "nats://127.0.0.1:4222", err, sizeof err), 0);
    cr_assert_eq(sr_config_set(&c, "cluster", "node", "s1", err, sizeof err), 0);
    cr_assert_eq(sr_config_set(&c, "cluster", "owned", "0,99", err, sizeof err), 0);
    cr_assert_eq(sr_config_check(&c, err, sizeof err), -1, "partition 99 of 16");
    cr_assert(strstr(err, "owned"), "%s", err);
    cr_assert_eq(sr_config_set(&c, "cluster", "owned", "0,15", err, sizeof err), 0);
    cr_assert_eq(sr_config_check(&c, err, sizeof err), 0, "%s", err);
}

Test(config, partitions_fixed_at_first_start)
{
    char *d = tu_tmpdir("cluster");
    char err[512];
    cr_assert_eq(sr_cluster_partitions_fix(d, 16, err, sizeof err), SR_OK, "%s", err);
    cr_assert_eq(sr_cluster_partitions_fix(d, 16, err, sizeof err), SR_OK, "the same again");
    cr_assert_eq(sr_cluster_partitions_fix(d, 32, err, sizeof err), SR_ECONFLICT);
    cr_assert(strstr(err, "32") && strstr(err, "16"), "names both counts: %s", err);
    cr_assert_eq(sr_cluster_confirmed_read(d), 0);
    cr_assert_eq(sr_cluster_confirmed_write(d, 12345), SR_OK);
    cr_assert_eq(sr_cluster_confirmed_read(d), 12345);
    tu_rmrf(d);
    free(d);
}
