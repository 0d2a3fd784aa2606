/* tests/support/engsuite.h -- the set-up the engine's Criterion suites
 * share (tests/engine/test_*.c): an engine on a fresh temporary directory
 * (or on the data directory `suiro init` made in it), closed and removed at
 * the end; the one-event submit every suite of typed builders (sr_cmd_*)
 * uses; the replay == rebuild check; and a registry entry put again
 * disabled or with a new secret (the revocation suites,
 * tests/api/test_revoke*.c). Criterion asserts, so only a suite includes it
 * (engtest.h has the helpers the other programs use too). */
#ifndef SR_ENGSUITE_H
#define SR_ENGSUITE_H

#include "engine/records.h"
#include "engine/secret.h"
#include "storage/blobs.h"
#include "engtest.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The password policy the suites create their users under. */
static const sr_password_policy ES_POL = {.min_length = 12, .max_length = 128, .max_age_days = 90};

/* Open an engine on *dir with o; *dir is made (tu_tmpdir(tag)) if NULL, so
 * a reopen finds the same data. */
static inline sr_engine *es_open(char **dir, const char *tag, const sr_engine_opts *o)
{
    if (!*dir) *dir = tu_tmpdir(tag);
    sr_engine *e = NULL;
    sr_errinfo ei;
    cr_assert_eq(sr_engine_open(*dir, o, &e, &ei), SR_OK, "%s", ei.msg);
    return e;
}

/* Close e, remove *dir and forget it. */
static inline void es_finish(sr_engine *e, char **dir)
{
    cr_assert_eq(sr_engine_close(e), SR_OK);
    tu_rmrf(*dir);
    free(*dir);
    *dir = NULL;
}

/* Make *dir its subdirectory sub (the data directory `suiro init *dir/sub`
 * made); the former *dir, for es_finish_in. */
static inline char *es_descend(char **dir, const char *sub)
{
    char *top = *dir, path[1200];
    snprintf(path, sizeof path, "%s/%s", top, sub);
    *dir = strdup(path);
    cr_assert(*dir);
    return top;
}

/* es_finish, then remove and free top (es_descend's). */
static inline void es_finish_in(sr_engine *e, char **dir, char *top)
{
    es_finish(e, dir);
    tu_rmrf(top);
    free(top);
}

/* Submit the one event a builder appended to b (built: the builder's
 * return, which must be SR_OK) and release b; the submit's code, else the
 * engine's answer r->rc. */
static inline int es_submit1(sr_engine *e, int built, sr_buf *b, sr_result *r)
{
    cr_assert_eq(built, SR_OK, "the builder refused (%d)", built);
    size_t len = b->len;
    memset(r, 0, sizeof *r);
    int rc = et_submit(e, b, &len, 1, r);
    sr_buf_release(b);
    return rc ? rc : r->rc;
}

/* Rebuild dir's index (o->index_dir, else DIR/index) from the log both
 * ways (engine/replay.c invariant 5): the ordinary one (opts.replay_serial)
 * and the pipelined one, the second left in place; each must hash to want
 * (sr_engine_content_hash). */
static inline void es_rebuild_both_ways(const char *dir, const sr_engine_opts *o, const uint8_t want[32])
{
    for (int serial = 1; serial >= 0; serial--) {
        sr_engine_opts ro = o ? *o : (sr_engine_opts){0};
        ro.replay_serial = serial;
        sr_errinfo ei;
        cr_assert_eq(sr_engine_rebuild(dir, &ro, &ei), SR_OK, "%s", ei.msg);
        sr_engine *r = NULL;
        cr_assert_eq(sr_engine_open(dir, &ro, &r, &ei), SR_OK, "%s", ei.msg);
        uint8_t h[32];
        cr_assert_eq(sr_engine_content_hash(r, h), SR_OK);
        cr_assert_eq(sr_engine_close(r), SR_OK);
        cr_assert_eq(memcmp(h, want, 32), 0, "the %s rebuild differs from the written index",
                     serial ? "ordinary" : "pipelined");
    }
}

/* Close e, rebuild the index of *dir from the log (both ways:
 * es_rebuild_both_ways) and reopen it with o: the rebuilt index must equal
 * the written one (sr_engine_content_hash). The reopened engine. */
static inline sr_engine *es_rebuilt(sr_engine *e, char **dir, const sr_engine_opts *o)
{
    uint8_t before[32];
    cr_assert_eq(sr_engine_content_hash(e, before), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    es_rebuild_both_ways(*dir, o, before);
    return es_open(dir, NULL, o);
}

/* Put entry id of kind of operator op again as it is stored, with disabled
 * and (if secret) a new secret, as user admin from 127.0.0.1. The submit's
 * code, else the engine's answer res->rc. */
static inline int es_reg_put(sr_engine *e, const char *op, sr_reg_kind kind, const char *id, int disabled,
                             const char *secret, sr_result *res)
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    cr_assert_eq(sr_read_registry(e, op, kind, id, &r, &re), SR_OK, "%s is registered", id);
    sr_buf hash, b;
    sr_buf_init(&hash);
    sr_buf_init(&b);
    re.disabled = disabled;
    if (secret) {
        cr_assert_eq(sr_secret_hash(secret, &hash), SR_OK);
        re.secret_hash = (sr_slice){hash.data, hash.len};
    }
    sr_cmd_env env = {op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    cr_assert_eq(sr_cmd_registry_put(&env, &re, &b), SR_OK);
    sr_rec_close(&r);
    sr_slice sl = {b.data, b.len};
    memset(res, 0, sizeof *res);
    int rc = sr_engine_submit_wait(e, &sl, 1, res);
    sr_buf_release(&b);
    sr_buf_release(&hash);
    return rc ? rc : res->rc;
}

/* ---- documents, files, requests, monitors: one of each written, and
 * whether an API-level read finds it (SR_OK: 1, SR_ENOTFOUND: 0; any other
 * answer fails the test). As user "admin" of op from 127.0.0.1. ---------- */

/* the envelope of op's admin (one static: a suite's thread at a time) */
static inline const sr_cmd_env *es_env_of(const char *op)
{
    static sr_cmd_env env;
    env = (sr_cmd_env){op, "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};
    return &env;
}

static inline void es_doc(sr_engine *e, const char *op, const char *id, const char *json)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_doc_put(es_env_of(op), "notes", id, 0, json, strlen(json), &b), &b, &r), SR_OK,
                 "%s", r.err.msg);
}

static inline int es_doc_there(sr_engine *e, const char *op, const char *id)
{
    uint64_t rev;
    int rc = sr_engine_doc_get(e, op, "notes", id, &rev, NULL, NULL, NULL);
    cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "%d", rc);
    return rc == SR_OK;
}

/* A file of op at path whose blob holds bytes, sealed by op's data key
 * (sr_engine_file_key: version 2; without a keyring, version 1); updated_ms
 * now. *kid: the blob's key id. */
static inline void es_file(sr_engine *e, const char *op, const char *path, const char *bytes, int64_t now,
                           uint8_t sha[32], uint32_t *kid)
{
    sr_blob_writer *w;
    uint64_t size;
    cr_assert_eq(sr_engine_file_key(e, es_env_of(op), kid), SR_OK);
    cr_assert_eq(sr_blob_writer_begin_keyed(sr_engine_blobs(e), *kid, &w), SR_OK);
    cr_assert_eq(sr_blob_writer_write(w, bytes, strlen(bytes)), SR_OK);
    cr_assert_eq(sr_blob_writer_commit(w, sha, &size), SR_OK);
    sr_file_meta f = {.path = path, .sha256 = {sha, 32}, .size = size, .content_type = "text/plain",
                      .updated_ms = now, .key_id = *kid};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_file_put(es_env_of(op), &f, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static inline int es_file_there(sr_engine *e, const char *op, const char *path)
{
    sr_rec rr = SR_REC_INIT;
    sr_file_meta f;
    int rc = sr_read_file(e, op, path, &rr, &f);
    sr_rec_close(&rr);
    cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "%d", rc);
    return rc == SR_OK;
}

/* The app-level request id of op, created; then a transition to st (0: none). */
static inline void es_request(sr_engine *e, const char *op, const char *id, sr_req_state st)
{
    sr_request_rec rq = {.request_id = id, .kind = SR_RK_IMMEDIATE, .app_id = "app1", .gateway_id = ""};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_request_created(es_env_of(op), &rq, &b), &b, &r), SR_OK, "%s", r.err.msg);
    if (!st) return;
    sr_request_transition t = {.request_id = id, .state = st, .error_code = "", .message = "", .gateway_id = ""};
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_request_transition(es_env_of(op), &t, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static inline int es_request_there(sr_engine *e, const char *op, const char *id)
{
    sr_rec rr = SR_REC_INIT;
    sr_request_rec rq;
    sr_request_transition st;
    int has;
    int rc = sr_read_request(e, op, id, "", &rr, &rq, &st, &has);
    sr_rec_close(&rr);
    cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "%d", rc);
    return rc == SR_OK;
}

/* Monitor id of op in state st. */
static inline void es_monitor(sr_engine *e, const char *op, const char *id, sr_mon_state st)
{
    sr_monitor_rec m = {.monitor_id = id, .state = st, .app_id = "app1"};
    sr_buf b;
    sr_buf_init(&b);
    sr_result r;
    cr_assert_eq(es_submit1(e, sr_cmd_monitor(es_env_of(op), &m, &b), &b, &r), SR_OK, "%s", r.err.msg);
}

static inline int es_monitor_there(sr_engine *e, const char *op, const char *id)
{
    sr_rec rr = SR_REC_INIT;
    sr_monitor_rec m;
    int rc = sr_read_monitor(e, op, id, &rr, &m);
    sr_rec_close(&rr);
    cr_assert(rc == SR_OK || rc == SR_ENOTFOUND, "%d", rc);
    return rc == SR_OK;
}

#endif
