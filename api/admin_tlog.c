/* api/admin_tlog.c -- /admin/v1/audit/checkpoints and /admin/v1/audit/proofs
 * (issue #18, docs/audit.md "Checkpoints and proofs", docs/admin.md): the
 * signed checkpoints of the Merkle tree over the log and the RFC 9162 proofs
 * an auditor checks against them without our code
 * (tests/integration/tlog_check.py is such a checker).
 *
 * Action audit.read on the platform (no operator in the path): the auditor
 * and the platform admin; an operator's admins are 403 -- the tree covers
 * every operator's blocks, and a proof names block headers of others.
 *
 * Hashes are lower-case hex; the root is also in the note as base64. The
 * leaf of a record is its log block: leaf hash = SHA-256(0x00 || header
 * (the block header's first 88 bytes, hex) || payloadSha256).
 *
 * INVARIANTS
 *  (1) Every answer is read from one index snapshot per read (the engine's
 *      typed reads), so a proof and the root it names agree.
 */
#include "api/admin_int.h"

#include "codecs/rfc3339.h"
#include "engine/records.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *hexj(const uint8_t *p, size_t n)
{
    char h[2 * 128 + 1];
    sr_hex(p, n, h);
    return json_string(h);
}

static json_t *ckpt_json(const sr_checkpoint *k)
{
    char tm[32];
    sr_rfc3339_format(k->time_ms, tm);
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)k->seq));
    json_object_set_new(o, "treeSize", json_integer((json_int_t)k->tree_size));
    json_object_set_new(o, "rootHash", hexj(k->root, SR_TREE_HASH));
    json_object_set_new(o, "chainTip", hexj(k->tip, SR_TREE_HASH));
    json_object_set_new(o, "lastSeq", json_integer((json_int_t)k->last_seq));
    json_object_set_new(o, "time", json_string(tm));
    json_object_set_new(o, "alg", json_string(k->alg));
    json_object_set_new(o, "keyName", json_string(k->key_name));
    json_object_set_new(o, "keyId", hexj(k->key_id, SR_TREE_HASH));
    json_object_set_new(o, "reason", json_string(k->reason));
    json_object_set_new(o, "note", json_string(k->note));
    return o;
}

static void answer_ckpt(const sr_route_call *c, int rc, const sr_checkpoint *k)
{
    if (rc == SR_ENOTFOUND) return sr_http_result(c->req, 0, SR_WIRE_UNKNOWN, "no checkpoint (yet)", NULL);
    if (rc) return sr_http_result(c->req, 0, sr_wire_of_rc(rc), "cannot read the checkpoints", NULL);
    json_t *o = ckpt_json(k);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void ckpt_latest(const sr_route_call *c)
{
    sr_checkpoint *k = malloc(sizeof *k);
    if (!k) return sr_http_result(c->req, 0, SR_WIRE_BUSY, "out of memory", NULL);
    answer_ckpt(c, sr_read_checkpoint_latest(sr_admin_engine(c), k), k);
    free(k);
}

static void ckpt_at(const sr_route_call *c)
{
    char v[64];
    if (!sr_http_query(c->req, "at", v, sizeof v)) return sr_admin_bad_field(c, "at", "required");
    int64_t at;
    char *end;
    long long ms = strtoll(v, &end, 10);
    if (v[0] && !*end && ms >= 0) at = ms;
    else if (sr_rfc3339_parse(v, strlen(v), &at))
        return sr_admin_bad_field(c, "at", "an RFC 3339 time (2026-12-06T00:00:00Z) or UTC milliseconds");
    sr_checkpoint *k = malloc(sizeof *k);
    if (!k) return sr_http_result(c->req, 0, SR_WIRE_BUSY, "out of memory", NULL);
    answer_ckpt(c, sr_read_checkpoint_at(sr_admin_engine(c), at, k), k);
    free(k);
}

/* a positive integer query parameter: 1 given, 0 absent, -1 answered 400 */
static int u64_param(const sr_route_call *c, const char *name, uint64_t *out)
{
    char v[32];
    if (!sr_http_query(c->req, name, v, sizeof v)) return 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (!v[0] || *end || v[0] == '-' || !n) {
        sr_admin_bad_field(c, name, "a positive integer");
        return -1;
    }
    *out = n;
    return 1;
}

static json_t *path_json(const uint8_t (*p)[SR_TREE_HASH], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, hexj(p[i], SR_TREE_HASH));
    return a;
}

static void answer_err(const sr_route_call *c, int rc, const sr_errinfo *ei, const char *what)
{
    sr_wire w = rc == SR_EINVAL ? SR_WIRE_PARAM : rc == SR_ENOTFOUND ? SR_WIRE_UNKNOWN : sr_wire_of_rc(rc);
    sr_http_result(c->req, 0, w, ei->msg[0] ? ei->msg : what, NULL);
}

static void proof_inclusion(const sr_route_call *c)
{
    uint64_t seq = 0, size = 0;
    int g = u64_param(c, "seq", &seq);
    if (g < 0) return;
    if (!g) return sr_admin_bad_field(c, "seq", "required");
    if (u64_param(c, "treeSize", &size) < 0) return;
    sr_inclusion *p = malloc(sizeof *p);
    if (!p) return sr_http_result(c->req, 0, SR_WIRE_BUSY, "out of memory", NULL);
    sr_errinfo ei = {0};
    int rc = sr_read_inclusion(sr_admin_engine(c), seq, size, p, &ei);
    if (rc) {
        free(p);
        return answer_err(c, rc, &ei, "cannot make the inclusion proof");
    }
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "treeSize", json_integer((json_int_t)p->tree_size));
    json_object_set_new(o, "leafIndex", json_integer((json_int_t)p->leaf_index));
    json_object_set_new(o, "blockFirstSeq", json_integer((json_int_t)p->first_seq));
    json_object_set_new(o, "blockCount", json_integer((json_int_t)p->count));
    json_object_set_new(o, "header", hexj(p->hdr, SR_TREE_LEAF_HDR));
    json_object_set_new(o, "payloadSha256", hexj(p->digest, SR_TREE_HASH));
    json_object_set_new(o, "leafHash", hexj(p->leaf_hash, SR_TREE_HASH));
    json_object_set_new(o, "rootHash", hexj(p->root, SR_TREE_HASH));
    json_object_set_new(o, "path", path_json((const uint8_t (*)[SR_TREE_HASH])p->path, p->npath));
    free(p);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

static void proof_consistency(const sr_route_call *c)
{
    uint64_t from = 0, to = 0;
    int g = u64_param(c, "from", &from);
    if (g < 0) return;
    if (!g) return sr_admin_bad_field(c, "from", "required");
    if (u64_param(c, "to", &to) < 0) return;
    sr_consistency *p = malloc(sizeof *p);
    if (!p) return sr_http_result(c->req, 0, SR_WIRE_BUSY, "out of memory", NULL);
    sr_errinfo ei = {0};
    int rc = sr_read_consistency(sr_admin_engine(c), from, to, p, &ei);
    if (rc) {
        free(p);
        return answer_err(c, rc, &ei, "cannot make the consistency proof");
    }
    json_t *o = json_object();
    json_object_set_new(o, "from", json_integer((json_int_t)p->from));
    json_object_set_new(o, "to", json_integer((json_int_t)p->to));
    json_object_set_new(o, "fromRoot", hexj(p->root1, SR_TREE_HASH));
    json_object_set_new(o, "toRoot", hexj(p->root2, SR_TREE_HASH));
    json_object_set_new(o, "path", path_json((const uint8_t (*)[SR_TREE_HASH])p->path, p->npath));
    free(p);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

#define ACT(x) (1 + SR_ACT_##x)
const sr_route sr_admin_tlog_routes[] = {
    {"GET", "/admin/v1/audit/checkpoints/latest", ckpt_latest, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(AUDIT_READ), SR_FWD_NONE},
    {"GET", "/admin/v1/audit/checkpoints", ckpt_at, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(AUDIT_READ), SR_FWD_NONE},
    {"GET", "/admin/v1/audit/proofs/inclusion", proof_inclusion, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX, ACT(AUDIT_READ), SR_FWD_NONE},
    {"GET", "/admin/v1/audit/proofs/consistency", proof_consistency, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     ACT(AUDIT_READ), SR_FWD_NONE},
};
const size_t sr_admin_tlog_nroutes = sizeof sr_admin_tlog_routes / sizeof sr_admin_tlog_routes[0];
