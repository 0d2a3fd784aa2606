/*
 * engine/store_access.c -- who may reach documents and files (R-PO-2,
 * docs/admin.md "Documents and files"): the owners, and apps' grants on
 * collections and path prefixes (registry RG_GRANT with grant_kind
 * "documents" or "files"); and the same grants of kind "corrections" on
 * data points' ids, which let an app import corrections (docs/csv.md).
 *
 * One reader of those grants (grants_txn) serves both the API's checks
 * before a request (sr_store_grants_load: the grants as they are at that
 * request) and the writer's check of a write (sr__store_write_ok, in the
 * command's transaction: a write that lost a race with a change of owner or
 * grants is refused there).
 *
 * INVARIANTS
 *  (1) A file prefix matches at a '/' boundary ("reports" and "reports/"
 *      reach "reports/a.csv", never "reports2/a.csv"); "*" reaches every
 *      path; a pattern ending in '*' is a plain string prefix.
 *  (2) A data-point grant (grant_kind "") never gives access to documents
 *      or files, and a document or file grant never to data points
 *      (api/broker.c sr_grants_load reads grant_kind "" only); a
 *      corrections grant gives no read or control of a data point, only
 *      its correction.
 */
#include "engine/engine_int.h"
#include "engine/records.h"

#include "codecs/ids.h"

#include <stdio.h>
#include <string.h>

int sr_store_kind_parse(const char *s, sr_store_kind *out)
{
    if (s && !strcmp(s, "documents")) *out = SR_STORE_DOCUMENTS;
    else if (s && !strcmp(s, "files")) *out = SR_STORE_FILES;
    else if (s && !strcmp(s, "corrections")) *out = SR_STORE_CORRECTIONS;
    else if (s && !strcmp(s, "alarms")) *out = SR_STORE_ALARMS;
    else if (s && !strcmp(s, "alive")) *out = SR_STORE_ALIVE;
    else return 0;
    return 1;
}

const char *sr_store_kind_name(sr_store_kind k)
{
    return k == SR_STORE_DOCUMENTS     ? "documents"
           : k == SR_STORE_CORRECTIONS ? "corrections"
           : k == SR_STORE_ALARMS      ? "alarms"
           : k == SR_STORE_ALIVE       ? "alive"
                                       : "files";
}

int sr_store_access_parse(const char *s)
{
    if (!s) return 0;
    if (!strcmp(s, "read")) return SR_STORE_READ;
    if (!strcmp(s, "write")) return SR_STORE_WRITE;
    if (!strcmp(s, "read+write")) return SR_STORE_READ | SR_STORE_WRITE;
    return 0;
}

const char *sr_store_access_name(int access)
{
    return access == SR_STORE_READ ? "read" : access == SR_STORE_WRITE ? "write" : "read+write";
}

int sr_store_pattern_check(sr_store_kind kind, const char *pattern, char *why, size_t whylen)
{
    if (sr_store_pattern_ok(kind == SR_STORE_FILES, pattern)) return SR_OK;
    if (kind == SR_STORE_DOCUMENTS)
        snprintf(why, whylen, "a collection ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'");
    else if (kind == SR_STORE_CORRECTIONS)
        snprintf(why, whylen, "a data point's id ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'");
    else if (kind == SR_STORE_ALARMS)
        snprintf(why, whylen, "an alarm rule's name ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'");
    else if (kind == SR_STORE_ALIVE)
        snprintf(why, whylen, "a gateway's id ([A-Za-z0-9._-]{1,64}), optionally ending in '*', or '*'");
    else
        snprintf(why, whylen,
                 "a path prefix (segments of [A-Za-z0-9._-] separated by '/', at most %d bytes), optionally ending "
                 "in '*', or '*'",
                 SR_STORE_PREFIX_MAX);
    return SR_EINVAL;
}

static int match(sr_store_kind kind, const char *pat, const char *name)
{
    size_t pl = strlen(pat), nl = strlen(name);
    if (pl && pat[pl - 1] == '*') return nl >= pl - 1 && !memcmp(name, pat, pl - 1);
    if (kind != SR_STORE_FILES) return !strcmp(pat, name); /* a collection, a data point */
    if (pl && pat[pl - 1] == '/') pl--;
    return nl >= pl && !memcmp(name, pat, pl) && (nl == pl || name[pl] == '/');
}

int sr_store_grants_allow(const sr_store_grant *g, size_t n, sr_store_kind kind, const char *name)
{
    int access = 0;
    for (size_t i = 0; i < n && name; i++)
        if (g[i].kind == kind && match(kind, g[i].pattern, name)) access |= g[i].access;
    return access;
}

int sr_store_is_owner(sr_actor_kind owner_kind, const char *owner, sr_actor_kind kind, const char *id)
{
    if (!owner || !owner[0] || !id) return 0;
    if (owner_kind == 0) owner_kind = SR_ACTOR_APP; /* a file stored before owner_kind */
    return owner_kind == kind && !strcmp(owner, id);
}

/* The app's document and file grants, read in t: the key range registry
 * op \0 '4' \0 app ':' (a store grant's id is app:kind:pattern, checked by
 * the writer; the app's data-point grants, app:pattern, are in the range
 * too and skipped), so a request reads the app's grants only. */
static int grants_txn(sr_engine *e, MDB_txn *t, const char *op, const char *app, sr_store_grant **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint8_t k[300];
    const char kind[2] = {(char)('0' + SUIRO__V1__REGISTRY_KIND__RG_GRANT), 0};
    size_t kl = mkkey(k, sizeof k, op, kind, app);
    if (!kl || kl + 1 > sizeof k) return SR_EINVAL;
    k[kl++] = ':';
    MDB_cursor *c = NULL;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_REGISTRY), &c));
    if (rc) return rc;
    sr_store_grant *g = NULL;
    size_t cap = 0;
    MDB_val K = {kl, k}, V;
    int r = mdb_cursor_get(c, &K, &V, MDB_SET_RANGE);
    while (!rc && r == 0 && K.mv_size >= kl && !memcmp(K.mv_data, k, kl)) {
        Suiro__V1__RegistryPut *m = suiro__v1__registry_put__unpack(NULL, V.mv_size, V.mv_data);
        sr_store_kind sk;
        if (m && !strcmp(m->app_id, app) && sr_store_kind_parse(m->grant_kind, &sk)) { /* the id says it; the record too */
            if (*n == cap) {
                cap = cap ? cap * 2 : 4;
                sr_store_grant *ng = sr_realloc(g, cap * sizeof *g);
                if (!ng) rc = SR_ENOMEM;
                else g = ng;
            }
            if (!rc) {
                g[*n].kind = sk;
                snprintf(g[*n].pattern, sizeof g[*n].pattern, "%s", m->pattern);
                g[*n].access = sr_store_access_parse(m->access);
                (*n)++;
            }
        }
        if (m) suiro__v1__registry_put__free_unpacked(m, NULL);
        if (!rc) r = mdb_cursor_get(c, &K, &V, MDB_NEXT);
    }
    if (!rc && r != 0 && r != MDB_NOTFOUND) rc = sr_index_err(r);
    mdb_cursor_close(c);
    if (rc) {
        sr_free(g);
        *n = 0;
        return rc;
    }
    *out = g;
    return SR_OK;
}

int sr_store_grants_load(sr_engine *e, const char *op, const char *app, sr_store_grant **out, size_t *n)
{
    MDB_txn *t;
    *out = NULL;
    *n = 0;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    rc = grants_txn(e, t, op, app, out, n);
    sr_index_read_end(e->ix, t);
    return rc;
}

int sr__store_write_ok(sr_engine *e, MDB_txn *t, const Event *ev, int kind_, const char *name, int owner_kind,
                       const char *owner, sr_result *r)
{
    sr_store_kind kind = (sr_store_kind)kind_;
    if (ev->actor_kind != SUIRO__V1__ACTOR_KIND__ACTOR_APP) return SR_OK; /* users: the admin API decided */
    if (sr_store_is_owner((sr_actor_kind)owner_kind, owner, SR_ACTOR_APP, ev->actor)) return SR_OK;
    sr_store_grant *g;
    size_t n;
    int rc = grants_txn(e, t, ev->operator_id, ev->actor, &g, &n);
    if (rc) return sr__refuse(r, rc, "%s %s: cannot read the app's grants", sr_store_kind_name(kind), name);
    int access = sr_store_grants_allow(g, n, kind, name);
    sr_free(g);
    if (access & SR_STORE_WRITE) return SR_OK;
    /* the API checked this before it submitted: the owner or the grants
     * changed since (a race), so the write is refused as a conflict */
    return sr__refuse(r, SR_ECONFLICT, "%s %s belongs to %s and app %s holds no write grant on it",
                      kind == SR_STORE_DOCUMENTS ? "document" : "file", name, owner[0] ? owner : "the operator",
                      ev->actor);
}
