/* tests/api/test_cluster_assign.c -- the cluster mode's ownership without NATS
 * (api/cluster.h "ownership", docs/cluster.md "Ownership"): the rendezvous
 * assignment (golden values, spread, a node's death moves only its
 * partitions, a node's return takes back only its own), the leases' and
 * heartbeats' JSON (bad input: a clear error, never a crash), and the
 * owned bits. */
#include "api/cluster.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static const char *const three[] = {"s1", "s2", "s3"};

/* golden values: a change of the weight function moves partitions of
 * running clusters at the upgrade; docs/cluster.md lists the same */
Test(own, rendezvous_golden)
{
    cr_assert_eq(sr_own_weight(0, "s1"), 0x99441f39743cb856ull);
    cr_assert_eq(sr_own_weight(7, "node-b"), 0xea5c1c040e6f773cull);
    static const int want[16] = {1, 2, 0, 0, 2, 1, 0, 1, 2, 0, 2, 1, 1, 1, 1, 0};
    for (uint32_t p = 0; p < 16; p++)
        cr_assert_eq(sr_own_preferred(p, three, 3), want[p], "partition %u: %d, not %d", p,
                     sr_own_preferred(p, three, 3), want[p]);
    cr_assert_eq(sr_own_preferred(3, three, 0), -1, "no node: none");
    cr_assert_eq(sr_own_preferred(3, three, 1), 0, "one node: it");
}

Test(own, rendezvous_order_does_not_matter)
{
    const char *rev[] = {"s3", "s2", "s1"};
    for (uint32_t p = 0; p < 999; p++)
        cr_assert_str_eq(three[sr_own_preferred(p, three, 3)], rev[sr_own_preferred(p, rev, 3)], "partition %u", p);
}

/* 64 partitions over 3 nodes: each within +-30 % of 64/3 */
Test(own, rendezvous_spread)
{
    int n[3] = {0};
    for (uint32_t p = 0; p < 64; p++) n[sr_own_preferred(p, three, 3)]++;
    for (int i = 0; i < 3; i++)
        cr_assert(n[i] >= 15 && n[i] <= 27, "%s has %d of 64 partitions (even: 21.3, +-30 %%: 15..27; s1..s3: 18, 24, 22)", three[i], n[i]);
    /* and over 5 nodes with other names, 999 partitions: within +-15 % */
    const char *five[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    int m[5] = {0};
    for (uint32_t p = 0; p < 999; p++) m[sr_own_preferred(p, five, 5)]++;
    for (int i = 0; i < 5; i++) cr_assert(m[i] >= 170 && m[i] <= 230, "%s: %d of 999", five[i], m[i]);
}

/* a node's death moves only its partitions; its return takes back exactly them */
Test(own, rendezvous_minimal_moves)
{
    const char *two[] = {"s1", "s3"}; /* s2 died */
    int moved = 0;
    for (uint32_t p = 0; p < 64; p++) {
        const char *before = three[sr_own_preferred(p, three, 3)];
        const char *after = two[sr_own_preferred(p, two, 2)];
        if (strcmp(before, "s2")) cr_assert_str_eq(after, before, "partition %u moved from a live node", p);
        else moved++;
    }
    cr_assert_gt(moved, 0);
}

Test(own, lease_roundtrip)
{
    sr_lease l = {"s2", 1765000000123, 42}, m;
    char buf[128], err[200];
    int k = sr_lease_format(&l, buf, sizeof buf);
    cr_assert_gt(k, 0);
    cr_assert_str_eq(buf, "{\"node\":\"s2\",\"until_ms\":1765000000123,\"epoch\":42}");
    cr_assert_eq(sr_lease_parse(buf, (size_t)k, &m, err, sizeof err), SR_OK, "%s", err);
    cr_assert_str_eq(m.node, "s2");
    cr_assert_eq(m.until_ms, 1765000000123);
    cr_assert_eq(m.epoch, 42);
    sr_lease rel = {"", 5, 3};
    k = sr_lease_format(&rel, buf, sizeof buf);
    cr_assert_eq(sr_lease_parse(buf, (size_t)k, &m, err, sizeof err), SR_OK, "a released lease: %s", err);
    cr_assert_str_eq(m.node, "");
    cr_assert_eq(sr_lease_format(&l, buf, 10), -1, "does not fit");
}

Test(own, lease_bad_input)
{
    static const struct {
        const char *in, *err;
    } bad[] = {
        {"", "not a JSON object"},
        {"[1]", "not a JSON object"},
        {"{\"node\":\"s1\",\"until_ms\":1}", "epoch"},
        {"{\"node\":\"s1\",\"until_ms\":-1,\"epoch\":1}", "until_ms"},
        {"{\"node\":\"s1\",\"until_ms\":\"1\",\"epoch\":1}", "until_ms"},
        {"{\"node\":1,\"until_ms\":1,\"epoch\":1}", "node"},
        {"{\"node\":\"a b\",\"until_ms\":1,\"epoch\":1}", "node"},
        {"{\"node\":\"s1\",\"node\":\"s2\",\"until_ms\":1,\"epoch\":1}", "not a JSON object"},
        {"{\"node\":\"0123456789012345678901234567890123\",\"until_ms\":1,\"epoch\":1}", "node"},
        {"{\"node\":\"s1\\u0000x\",\"until_ms\":1,\"epoch\":1}", "not allowed"},
        {"{\"node\":\"s1\",\"until_ms\":1,\"epoch\":1", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sr_lease m;
        char err[200] = "";
        cr_assert_eq(sr_lease_parse(bad[i].in, strlen(bad[i].in), &m, err, sizeof err), SR_EINVAL, "%s", bad[i].in);
        cr_assert(strstr(err, bad[i].err), "%s: the error '%s' names %s", bad[i].in, err, bad[i].err);
        cr_assert_str_eq(m.node, "");
    }
    sr_lease m;
    char err[200];
    cr_assert_eq(sr_lease_parse(NULL, 0, &m, err, sizeof err), SR_EINVAL);
}

Test(own, node_info)
{
    const char *ok = "{\"node\":\"s1\",\"apif\":\"http://127.0.0.1:8080\",\"admin\":\"http://127.0.0.1:8080\","
                     "\"started_ms\":10,\"at_ms\":20}";
    sr_node_info n;
    char err[200];
    cr_assert_eq(sr_node_info_parse(ok, strlen(ok), &n, err, sizeof err), SR_OK, "%s", err);
    cr_assert_str_eq(n.node, "s1");
    cr_assert_str_eq(n.apif, "http://127.0.0.1:8080");
    cr_assert_eq(n.at_ms, 20);
    const char *noname = "{\"node\":\"\",\"apif\":\"\",\"admin\":\"\",\"started_ms\":10,\"at_ms\":20}";
    cr_assert_eq(sr_node_info_parse(noname, strlen(noname), &n, err, sizeof err), SR_EINVAL);
    cr_assert(strstr(err, "node"), "%s", err);
    const char *noat = "{\"node\":\"s1\",\"apif\":\"\",\"admin\":\"\",\"started_ms\":10}";
    cr_assert_eq(sr_node_info_parse(noat, strlen(noat), &n, err, sizeof err), SR_EINVAL);
    cr_assert(strstr(err, "at_ms"), "%s", err);
}

Test(own, owned_bits_without_cluster)
{
    cr_assert_eq(sr_cluster_owns(NULL, 0), 0);
    sr_cluster_set_owned(NULL, 0, 1); /* NULL-safe */
    sr_cluster_own_stats st;
    uint32_t owned = 7;
    cr_assert_eq(sr_cluster_get_own_stats(&st, &owned), 0);
    cr_assert_eq(owned, 0);
    cr_assert_str_eq(sr_cluster_own_why(3), "lost");
    cr_assert_null(sr_cluster_own_why(4));
}
