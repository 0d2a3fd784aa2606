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

/* Close e, rebuild the index of *dir from the log and reopen it with o: the
 * rebuilt index must equal the written one (sr_engine_content_hash). The
 * reopened engine. */
static inline sr_engine *es_rebuilt(sr_engine *e, char **dir, const sr_engine_opts *o)
{
    uint8_t before[32], after[32];
    cr_assert_eq(sr_engine_content_hash(e, before), SR_OK);
    cr_assert_eq(sr_engine_close(e), SR_OK);
    sr_errinfo ei;
    cr_assert_eq(sr_engine_rebuild(*dir, o, &ei), SR_OK, "%s", ei.msg);
    e = es_open(dir, NULL, o);
    cr_assert_eq(sr_engine_content_hash(e, after), SR_OK);
    cr_assert_eq(memcmp(before, after, 32), 0, "the rebuilt index differs from the written one");
    return e;
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

#endif
