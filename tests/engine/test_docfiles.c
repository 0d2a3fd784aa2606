/* tests/engine/test_docfiles.c -- documents' and files' owners, grants on
 * collections and path prefixes, and files' share lists in the engine
 * (R-PO-2, docs/admin.md "Documents and files"): the writer records the
 * owner (the creator; an update keeps it), refuses an app's write of a
 * document or file it neither owns nor holds a write grant on, checks a
 * grant's kind, pattern, access and app, and a share list's users; the
 * grant reader matches prefixes at '/' boundaries; the index equals its
 * rebuild. */
#include "engine/records.h"

#include "engsuite.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static const sr_engine_opts OPTS = {.sync = SR_ENGINE_SYNC_NONE};
static const sr_cmd_env ADMIN = {"op1", "root", SR_ACTOR_USER, NULL, "cli"};
static const sr_cmd_env A = {"op1", "A", SR_ACTOR_APP, NULL, "203.0.113.1:1"};
static const sr_cmd_env B = {"op1", "B", SR_ACTOR_APP, NULL, "203.0.113.2:1"};
static const sr_cmd_env C = {"op1", "C", SR_ACTOR_APP, NULL, "203.0.113.3:1"};

static sr_engine *open_engine(void) { return es_open(&dir, "docfiles", &OPTS); }
static void finish(sr_engine *e) { es_finish(e, &dir); }


static int reg(sr_engine *e, const sr_reg_entry *re, sr_result *r)
{
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_registry_put(&ADMIN, re, &b), &b, r);
}

static void apps(sr_engine *e)
{
    sr_result r;
    const char *ids[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        sr_reg_entry a = {.kind = SR_RG_APP, .id = ids[i], .name = ids[i]};
        cr_assert_eq(reg(e, &a, &r), SR_OK, "%s", r.err.msg);
    }
}

/* a grant on documents or files; id NULL: its canonical id app:kind:pattern */
static int grant(sr_engine *e, const char *id, const char *app, const char *kind, const char *pattern,
                 const char *access, sr_result *r)
{
    char cid[600];
    snprintf(cid, sizeof cid, "%s:%s:%s", app, kind, pattern);
    sr_reg_entry g = {.kind = SR_RG_GRANT, .id = id ? id : cid, .app_id = app, .pattern = pattern, .access = access,
                      .grant_kind = kind};
    return reg(e, &g, r);
}

static int doc_put(sr_engine *e, const sr_cmd_env *env, const char *coll, const char *id, const char *json,
                   sr_result *r)
{
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_doc_put(env, coll, id, 0, json, strlen(json), &b), &b, r);
}

static int file_put(sr_engine *e, const sr_cmd_env *env, const char *path, sr_result *r)
{
    static uint8_t sha[32] = {1, 2, 3};
    sr_file_meta f = {.path = path, .sha256 = {sha, 32}, .size = 3, .content_type = "text/plain",
                      .owner = "someone-else", .updated_ms = 1767225600000};
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_file_put(env, &f, &b), &b, r);
}

static int file_share(sr_engine *e, const char *path, const char *const *users, size_t n, sr_result *r)
{
    sr_buf b;
    sr_buf_init(&b);
    return es_submit1(e, sr_cmd_file_share(&ADMIN, path, users, n, &b), &b, r);
}

static void user(sr_engine *e, const char *id, const char *op)
{
    static const char *const roles[] = {"operator_general"};
    sr_user u = {.id = id, .name = id, .scope = SR_US_OPERATOR, .scope_id = op, .roles = roles, .n_roles = 1};
    sr_buf b;
    sr_buf_init(&b);
    char why[128];
    sr_result r;
    sr_cmd_env env = {"", "root", SR_ACTOR_USER, NULL, "cli"};
    cr_assert_eq(es_submit1(e, sr_cmd_user_create(&env, &u, "long enough password", 1, 1, &ES_POL, &b, why, sizeof why),
                         &b, &r),
                 SR_OK, "%s", r.err.msg);
}

Test(docfiles, a_document_belongs_to_its_creator_and_an_update_keeps_the_owner)
{
    sr_engine *e = open_engine();
    apps(e);
    sr_result r;
    cr_assert_eq(doc_put(e, &A, "reports", "d1", "{\"v\":1}", &r), SR_OK, "%s", r.err.msg);
    uint64_t rev;
    int okind;
    char owner[256];
    sr_buf j;
    sr_buf_init(&j);
    cr_assert_eq(sr_engine_doc_get(e, "op1", "reports", "d1", &rev, &j, &okind, owner), SR_OK);
    cr_assert_eq(okind, SR_ACTOR_APP);
    cr_assert_str_eq(owner, "A");
    cr_assert_eq(j.len, 7);
    cr_assert_eq(memcmp(j.data, "{\"v\":1}", 7), 0);

    /* B and C own nothing here and hold no grant: refused by the writer */
    cr_assert_eq(doc_put(e, &B, "reports", "d1", "{\"v\":2}", &r), SR_ECONFLICT);
    cr_assert(strstr(r.err.msg, "belongs to A") && strstr(r.err.msg, "app B"), "%s", r.err.msg);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_doc_delete(&C, "reports", "d1", 0, &b), &b, &r), SR_ECONFLICT);
    /* a read grant is no write grant */
    cr_assert_eq(grant(e, NULL, "B", "documents", "reports", "read", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(doc_put(e, &B, "reports", "d1", "{\"v\":2}", &r), SR_ECONFLICT);
    /* a write grant: B updates A's document, which stays A's */
    cr_assert_eq(grant(e, NULL, "B", "documents", "reports", "read+write", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(doc_put(e, &B, "reports", "d1", "{\"v\":2}", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(r.revision, 2);
    cr_assert_eq(sr_engine_doc_get(e, "op1", "reports", "d1", &rev, &j, &okind, owner), SR_OK);
    cr_assert_str_eq(owner, "A");
    cr_assert_eq(rev, 2);
    /* a grant on another collection gives nothing here */
    cr_assert_eq(grant(e, NULL, "C", "documents", "other", "read+write", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(doc_put(e, &C, "reports", "d1", "{}", &r), SR_ECONFLICT);
    /* C's own document in the same collection */
    cr_assert_eq(doc_put(e, &C, "reports", "d2", "{}", &r), SR_OK, "%s", r.err.msg);

    /* a query of one app's own documents (owner_app) */
    sr_rec q = SR_REC_INIT;
    sr_doc_bounds bd = {.limit = 10, .owner_app = "C"};
    int more;
    char next[260];
    cr_assert_eq(sr_list_docs(e, "op1", "reports", NULL, NULL, &bd, NULL, &q, &more, next), SR_OK);
    sr_doc d;
    cr_assert_eq(sr_rec_next_doc(&q, &d), 1);
    cr_assert_str_eq(d.id, "d2");
    cr_assert_eq(sr_rec_next_doc(&q, &d), 0);
    bd.owner_app = NULL;
    cr_assert_eq(sr_list_docs(e, "op1", "reports", NULL, NULL, &bd, NULL, &q, &more, next), SR_OK);
    cr_assert_eq(sr_rec_count(&q), 2);
    sr_rec_close(&q);

    /* B deletes A's document with its write grant */
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_doc_delete(&B, "reports", "d1", 0, &b), &b, &r), SR_OK, "%s", r.err.msg);
    sr_buf_release(&j);
    finish(e);
}

Test(docfiles, a_file_belongs_to_its_creator_and_grants_match_at_path_boundaries)
{
    sr_engine *e = open_engine();
    apps(e);
    sr_result r;
    cr_assert_eq(file_put(e, &A, "reports/2026/a.csv", &r), SR_OK, "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_file_meta f;
    cr_assert_eq(sr_read_file(e, "op1", "reports/2026/a.csv", &h, &f), SR_OK);
    cr_assert_str_eq(f.owner, "A", "the writer records the actor, not the builder's owner");
    cr_assert_eq(f.owner_kind, SR_ACTOR_APP);

    cr_assert_eq(file_put(e, &B, "reports/2026/a.csv", &r), SR_ECONFLICT);
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_file_delete(&B, "reports/2026/a.csv", &b), &b, &r), SR_ECONFLICT);
    /* "reports2" is not under "reports" */
    cr_assert_eq(grant(e, NULL, "B", "files", "reports2", "read+write", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(file_put(e, &B, "reports/2026/a.csv", &r), SR_ECONFLICT);
    cr_assert_eq(grant(e, NULL, "B", "files", "reports/", "write", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(file_put(e, &B, "reports/2026/a.csv", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_file(e, "op1", "reports/2026/a.csv", &h, &f), SR_OK);
    cr_assert_str_eq(f.owner, "A");

    sr_store_grant *g;
    size_t n;
    cr_assert_eq(sr_store_grants_load(e, "op1", "B", &g, &n), SR_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_FILES, "reports/x"), SR_STORE_WRITE);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_FILES, "reports"), SR_STORE_WRITE);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_FILES, "reports2/x"), SR_STORE_READ | SR_STORE_WRITE);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_FILES, "reportsX"), 0);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_DOCUMENTS, "reports"), 0, "a file grant is no document grant");
    sr_free(g);
    /* a data-point grant is no file grant */
    sr_reg_entry dp = {.kind = SR_RG_GRANT, .id = "C:*", .app_id = "C", .pattern = "*", .access = "read"};
    cr_assert_eq(reg(e, &dp, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_store_grants_load(e, "op1", "C", &g, &n), SR_OK);
    cr_assert_eq(n, 0);
    sr_free(g);
    /* "*" reaches every path */
    cr_assert_eq(grant(e, NULL, "C", "files", "*", "read", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_store_grants_load(e, "op1", "C", &g, &n), SR_OK);
    cr_assert_eq(sr_store_grants_allow(g, n, SR_STORE_FILES, "a/b/c"), SR_STORE_READ);
    sr_free(g);
    sr_rec_close(&h);
    finish(e);
}

Test(docfiles, a_grant_of_documents_or_files_is_checked_and_a_bad_one_stores_nothing)
{
    sr_engine *e = open_engine();
    apps(e);
    sr_result r;
    cr_assert_eq(grant(e, NULL, "A", "folders", "x", "read", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "kind"), "%s", r.err.msg);
    cr_assert_eq(grant(e, NULL, "A", "documents", "a/b", "read", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "pattern"), "%s", r.err.msg);
    cr_assert_eq(grant(e, NULL, "A", "files", "../x", "read", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "pattern"), "%s", r.err.msg);
    cr_assert_eq(grant(e, NULL, "A", "files", "x", "control", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "access"), "%s", r.err.msg);
    cr_assert_eq(grant(e, NULL, "NOAPP", "files", "x", "read", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "app") && strstr(r.err.msg, "NOAPP"), "%s", r.err.msg);
    cr_assert_eq(grant(e, "g", "A", "files", "x", "read", &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "id") && strstr(r.err.msg, "A:files:x"), "%s", r.err.msg);
    sr_rec h = SR_REC_INIT;
    sr_reg_entry g;
    cr_assert_eq(sr_list_registry(e, "op1", SR_RG_GRANT, &h), SR_OK);
    cr_assert_eq(sr_rec_count(&h), 0, "nothing stored");
    cr_assert_eq(grant(e, NULL, "A", "files", "x/y*", "read+write", &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "A:files:x/y*", &h, &g), SR_OK);
    cr_assert_str_eq(g.grant_kind, "files");
    cr_assert_str_eq(g.pattern, "x/y*");
    sr_buf b;
    sr_buf_init(&b);
    cr_assert_eq(es_submit1(e, sr_cmd_registry_delete(&ADMIN, SR_RG_GRANT, "A:files:x/y*", &b), &b, &r), SR_OK);
    cr_assert_eq(sr_read_registry(e, "op1", SR_RG_GRANT, "A:files:x/y*", &h, &g), SR_ENOTFOUND);
    sr_rec_close(&h);
    finish(e);
}

Test(docfiles, a_share_list_names_users_of_the_operator_and_a_new_put_keeps_it)
{
    sr_engine *e = open_engine();
    apps(e);
    user(e, "u1", "op1");
    user(e, "u2", "op1");
    user(e, "x1", "op2");
    sr_result r;
    const char *const ok[] = {"u1", "u2"};
    cr_assert_eq(file_share(e, "f.txt", ok, 2, &r), SR_ENOTFOUND, "no such file");
    cr_assert_eq(file_put(e, &A, "f.txt", &r), SR_OK, "%s", r.err.msg);
    const char *const foreign[] = {"u1", "x1"};
    cr_assert_eq(file_share(e, "f.txt", foreign, 2, &r), SR_EINVAL);
    cr_assert(strstr(r.err.msg, "users[1]") && strstr(r.err.msg, "x1"), "%s", r.err.msg);
    const char *const twice[] = {"u1", "u1"};
    cr_assert_eq(file_share(e, "f.txt", twice, 2, &r), SR_EINVAL);
    const char *const nobody[] = {"nobody"};
    cr_assert_eq(file_share(e, "f.txt", nobody, 1, &r), SR_EINVAL);
    sr_rec h = SR_REC_INIT;
    sr_file_meta f;
    cr_assert_eq(sr_read_file(e, "op1", "f.txt", &h, &f), SR_OK);
    cr_assert_eq(f.n_shared_with, 0, "a refused share stores nothing");
    cr_assert_eq(file_share(e, "f.txt", ok, 2, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(file_put(e, &A, "f.txt", &r), SR_OK, "%s", r.err.msg); /* a new version */
    cr_assert_eq(sr_read_file(e, "op1", "f.txt", &h, &f), SR_OK);
    cr_assert_eq(f.n_shared_with, 2);
    cr_assert_str_eq(f.shared_with[0], "u1");
    cr_assert_str_eq(f.shared_with[1], "u2");
    cr_assert_str_eq(f.owner, "A");
    cr_assert_eq(file_share(e, "f.txt", NULL, 0, &r), SR_OK, "%s", r.err.msg);
    cr_assert_eq(sr_read_file(e, "op1", "f.txt", &h, &f), SR_OK);
    cr_assert_eq(f.n_shared_with, 0);
    sr_rec_close(&h);
    finish(e);
}

Test(docfiles, owners_grants_and_shares_replay_equals_rebuild)
{
    sr_engine *e = open_engine();
    apps(e);
    user(e, "u1", "op1");
    sr_result r;
    cr_assert_eq(doc_put(e, &A, "c", "d1", "{\"a\":1}", &r), SR_OK);
    cr_assert_eq(grant(e, NULL, "B", "documents", "c", "write", &r), SR_OK);
    cr_assert_eq(doc_put(e, &B, "c", "d1", "{\"a\":2}", &r), SR_OK);
    cr_assert_eq(file_put(e, &C, "p/q", &r), SR_OK);
    const char *const us[] = {"u1"};
    cr_assert_eq(file_share(e, "p/q", us, 1, &r), SR_OK);
    e = es_rebuilt(e, &dir, &OPTS);
    uint64_t rev;
    int okind;
    char owner[256];
    cr_assert_eq(sr_engine_doc_get(e, "op1", "c", "d1", &rev, NULL, &okind, owner), SR_OK);
    cr_assert_str_eq(owner, "A");
    finish(e);
}
