/* tests/storage/test_index.c -- storage/index: the named databases (every
 * sr_dbi has its own, created read-write, required read-only: an index of an
 * older layout is SR_EVERSION), the map that grows when full (SR_EFULL, then
 * sr_index_grow, and the write goes through), the watermark, LMDB error
 * mapping, and the content hash (deterministic whatever the write order;
 * changed by any key, value, boundary or database). */
#include <criterion/criterion.h>

#include "storage/index.h"
#include "engine/schema.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *dir;

static void setup(void) { dir = tu_tmpdir("index"); }
static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

TestSuite(index, .init = setup, .fini = teardown);

static sr_index *open_at(const char *sub, uint64_t map, int ro)
{
    char p[512], err[256] = "";
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    sr_index *ix = NULL;
    int rc = sr_index_open(p, map, ro, SR_SCHEMA_DBS, &ix, err, sizeof err);
    cr_assert_eq(rc, SR_OK, "open %s: %s", p, err);
    return ix;
}

/* k and v are strings (no NUL inside) */
static void put(sr_index *ix, sr_dbi db, const char *k, const char *v)
{
    MDB_txn *t;
    cr_assert_eq(sr_index_write_begin(ix, &t), SR_OK);
    MDB_val kk = {strlen(k), (void *)k}, vv = {strlen(v), (void *)v};
    cr_assert_eq(sr_index_err(mdb_put(t, sr_index_dbi(ix, db), &kk, &vv, 0)), SR_OK);
    cr_assert_eq(sr_index_commit(ix, t), SR_OK);
}

static void hash_of(sr_index *ix, uint8_t out[32]) { cr_assert_eq(sr_index_content_hash(ix, out), SR_OK); }

Test(index, every_database_has_its_own_name_and_exists)
{
    sr_index *ix = open_at("a", 0, 0);
    MDB_txn *t;
    cr_assert_eq(sr_index_read_begin(ix, &t), SR_OK);
    for (int i = 0; i < SR_DB_COUNT; i++) {
        const char *n = sr_schema_db_name((sr_dbi)i);
        cr_assert(n && *n, "db %d has a name", i);
        for (int k = 0; k < i; k++) cr_assert_str_neq(n, sr_schema_db_name((sr_dbi)k), "db %d and %d", i, k);
        for (int k = 0; k < i; k++) cr_assert_neq(sr_index_dbi(ix, (sr_dbi)i), sr_index_dbi(ix, (sr_dbi)k));
        /* the main database lists it under that name */
        MDB_dbi main;
        cr_assert_eq(mdb_dbi_open(t, NULL, 0, &main), 0);
        MDB_val key = {strlen(n), (void *)n}, v;
        cr_assert_eq(mdb_get(t, main, &key, &v), 0, "database '%s' exists", n);
    }
    cr_assert_str_eq(sr_schema_db_name(SR_DB_META), "meta");
    cr_assert_str_eq(sr_schema_db_name(SR_DB_MSGIDS), "msgidx");
    sr_index_read_end(ix, t);
    sr_index_close(ix);
    /* read-only, it opens every one of them again */
    ix = open_at("a", 0, 1);
    sr_index_close(ix);
}

Test(index, read_only_needs_an_index_and_every_database)
{
    char p[512], err[256] = "";
    sr_index *ix = NULL;
    snprintf(p, sizeof p, "%s/none", dir);
    cr_assert_neq(sr_index_open(p, 0, 1, SR_SCHEMA_DBS, &ix, err, sizeof err), SR_OK, "no index there");
    cr_assert(strstr(err, p), "%s", err);
    struct stat st;
    cr_assert_neq(stat(p, &st), 0, "read-only creates nothing");
    /* an index written by an older layout: one database missing */
    snprintf(p, sizeof p, "%s/old", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi d;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, SR_DB_COUNT + 2), 0);
    cr_assert_eq(mdb_env_open(env, p, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    for (int i = 0; i < SR_DB_COUNT; i++)
        if (i != SR_DB_MSGIDS) cr_assert_eq(mdb_dbi_open(t, sr_schema_db_name((sr_dbi)i), MDB_CREATE, &d), 0);
    cr_assert_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    err[0] = 0;
    cr_assert_eq(sr_index_open(p, 0, 1, SR_SCHEMA_DBS, &ix, err, sizeof err), SR_EVERSION);
    cr_assert(strstr(err, "msgidx") && strstr(err, "older layout"), "%s", err);
    /* read-write, the missing one is created */
    ix = open_at("old", 0, 0);
    sr_index_close(ix);
    ix = open_at("old", 0, 1);
    sr_index_close(ix);
}

/* The map fills: the write fails with SR_EFULL (never MDB_MAP_FULL to the
 * caller), sr_index_grow doubles the map, the same write goes through, and
 * everything written stays; as many times as it takes. */
Test(index, the_map_grows_when_full)
{
    sr_index *ix = open_at("g", 256 << 10, 0);
    MDB_envinfo info;
    mdb_env_info(sr_index_env(ix), &info);
    size_t map0 = info.me_mapsize;
    uint8_t val[4000];
    size_t written = 0;
    int grows = 0;
    while (written < 600) {
        MDB_txn *t;
        cr_assert_eq(sr_index_write_begin(ix, &t), SR_OK);
        int rc = SR_OK;
        for (size_t i = 0; i < 50 && !rc; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%06zu", written + i);
            tu_fill_record(written + i, val, sizeof val);
            MDB_val kk = {strlen(k), k}, vv = {sizeof val, val};
            rc = sr_index_err(mdb_put(t, sr_index_dbi(ix, SR_DB_DOCS), &kk, &vv, 0));
        }
        if (!rc) rc = sr_index_commit(ix, t);
        else sr_index_abort(t);
        if (rc == SR_EFULL) {
            cr_assert_eq(sr_index_grow(ix), SR_OK);
            grows++;
            continue; /* the same batch again */
        }
        cr_assert_eq(rc, SR_OK, "%s", sr_strerror(rc));
        written += 50;
    }
    cr_assert_geq(grows, 2, "the map grew (%d times)", grows);
    mdb_env_info(sr_index_env(ix), &info);
    cr_assert_eq(info.me_mapsize, map0 << grows, "each grow doubles the map");
    MDB_txn *t;
    cr_assert_eq(sr_index_read_begin(ix, &t), SR_OK);
    MDB_stat s;
    cr_assert_eq(mdb_stat(t, sr_index_dbi(ix, SR_DB_DOCS), &s), 0);
    cr_assert_eq(s.ms_entries, 600);
    for (size_t i = 0; i < 600; i += 37) {
        char k[16];
        snprintf(k, sizeof k, "k%06zu", i);
        MDB_val kk = {strlen(k), k}, vv;
        cr_assert_eq(mdb_get(t, sr_index_dbi(ix, SR_DB_DOCS), &kk, &vv), 0);
        tu_fill_record(i, val, sizeof val);
        cr_assert(vv.mv_size == sizeof val && !memcmp(vv.mv_data, val, sizeof val), "record %zu", i);
    }
    sr_index_read_end(ix, t);
    sr_index_close(ix);
    /* reopened with the small map asked for, everything is there (LMDB
     * maps at least what the file holds) */
    ix = open_at("g", 256 << 10, 0);
    cr_assert_eq(sr_index_read_begin(ix, &t), SR_OK);
    cr_assert_eq(mdb_stat(t, sr_index_dbi(ix, SR_DB_DOCS), &s), 0);
    cr_assert_eq(s.ms_entries, 600);
    sr_index_read_end(ix, t);
    sr_index_close(ix);
}

Test(index, watermark)
{
    sr_index *ix = open_at("w", 0, 0);
    MDB_txn *t;
    cr_assert_eq(sr_index_read_begin(ix, &t), SR_OK);
    cr_assert_eq(sr_index_watermark(ix, t), 0, "an empty index has applied nothing");
    sr_index_read_end(ix, t);
    cr_assert_eq(sr_index_write_begin(ix, &t), SR_OK);
    uint8_t le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    MDB_val k = {9, "watermark"}, v = {8, le};
    cr_assert_eq(mdb_put(t, sr_index_dbi(ix, SR_DB_META), &k, &v, 0), 0);
    cr_assert_eq(sr_index_watermark(ix, t), 0x0102030405060708ull, "little-endian, seen in the same txn");
    cr_assert_eq(sr_index_commit(ix, t), SR_OK);
    cr_assert_eq(sr_index_write_begin(ix, &t), SR_OK);
    MDB_val bad = {4, le};
    cr_assert_eq(mdb_put(t, sr_index_dbi(ix, SR_DB_META), &k, &bad, 0), 0);
    cr_assert_eq(sr_index_watermark(ix, t), 0, "not 8 bytes: none");
    sr_index_abort(t);
    sr_index_close(ix);
}

Test(index, lmdb_errors_map_to_sr_codes)
{
    static const struct {
        int mdb, sr;
    } rows[] = {
        {MDB_SUCCESS, SR_OK},          {MDB_NOTFOUND, SR_ENOTFOUND},    {MDB_MAP_FULL, SR_EFULL},
        {MDB_CORRUPTED, SR_ECORRUPT},  {MDB_PAGE_NOTFOUND, SR_ECORRUPT}, {MDB_INVALID, SR_ECORRUPT},
        {MDB_VERSION_MISMATCH, SR_EVERSION}, {ENOMEM, SR_ENOMEM},        {ENOSPC, SR_ENOSPC},
        {EIO, SR_EIO},                 {MDB_TXN_FULL, SR_EDB},          {MDB_BAD_VALSIZE, SR_EDB},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        cr_assert_eq(sr_index_err(rows[i].mdb), rows[i].sr, "mdb %d", rows[i].mdb);
}

/* ---- the content hash ------------------------------------------------------ */

typedef struct kv {
    sr_dbi db;
    const char *k, *v;
} kv;

static const kv base[] = {
    {SR_DB_MASTERS, "demo", "m1"}, {SR_DB_POINTS, "P001", "p1"},
    {SR_DB_POINTS, "P002", "p2"}, {SR_DB_DOCS, "notes", "{}"},
    {SR_DB_FILES, "a/b.txt", "x"}, {SR_DB_META, "next_point", "3"},
};
#define NBASE (sizeof base / sizeof *base)

/* a fresh index under sub with base[] written in the order given (one
 * transaction per record) but base[skip] (skip < 0: none), then extra if
 * not NULL */
static void hash_written(const char *sub, const size_t *order, int skip, const kv *extra, uint8_t out[32])
{
    sr_index *ix = open_at(sub, 0, 0);
    for (size_t i = 0; i < NBASE; i++)
        if ((int)order[i] != skip) put(ix, base[order[i]].db, base[order[i]].k, base[order[i]].v);
    if (extra) put(ix, extra->db, extra->k, extra->v);
    hash_of(ix, out);
    uint8_t again[32];
    hash_of(ix, again);
    cr_assert_arr_eq(again, out, 32, "%s: the same index hashes the same twice", sub);
    sr_index_close(ix);
}

Test(index, content_hash_is_the_content_whatever_the_order)
{
    static const size_t fwd[NBASE] = {0, 1, 2, 3, 4, 5}, rev[NBASE] = {5, 4, 3, 2, 1, 0},
                        mix[NBASE] = {3, 0, 5, 2, 4, 1};
    uint8_t h1[32], h2[32], h3[32], empty1[32], empty2[32];
    hash_written("o1", fwd, -1, NULL, h1);
    hash_written("o2", rev, -1, NULL, h2);
    hash_written("o3", mix, -1, NULL, h3);
    cr_assert_arr_eq(h1, h2, 32, "reverse order");
    cr_assert_arr_eq(h1, h3, 32, "mixed order");
    sr_index *e1 = open_at("e1", 0, 0), *e2 = open_at("e2", 0, 0);
    hash_of(e1, empty1);
    hash_of(e2, empty2);
    cr_assert_arr_eq(empty1, empty2, 32, "two empty indexes");
    cr_assert_neq(memcmp(empty1, h1, 32), 0);
    sr_index_close(e1);
    sr_index_close(e2);
    /* reopened (read-only), the same */
    sr_index *ro = open_at("o1", 0, 1);
    uint8_t h4[32];
    hash_of(ro, h4);
    cr_assert_arr_eq(h4, h1, 32, "reopened read-only");
    sr_index_close(ro);
}

Test(index, content_hash_sees_every_change)
{
    static const size_t fwd[NBASE] = {0, 1, 2, 3, 4, 5};
    static const struct {
        const char *what;
        int skip; /* the base record left out, -1 none */
        kv extra;
    } rows[] = {
        {"one more key", -1, {SR_DB_POINTS, "P003", "p3"}},
        {"a value changed", -1, {SR_DB_POINTS, "P002", "p9"}},
        {"a value one byte longer", -1, {SR_DB_DOCS, "notes", "{} "}},
        {"a key left out", 1, {SR_DB_POINTS, "P002", "p2"}},
        {"the key/value boundary moved (notes+{} -> notes{+})", 3, {SR_DB_DOCS, "notes{", "}"}},
        {"the same record in another database", 4, {SR_DB_REGISTRY, "a/b.txt", "x"}},
        {"a record in the last database", -1, {SR_DB_MSGIDS, "demo", "123456789012345a"}},
    };
    uint8_t ref[32], seen[sizeof rows / sizeof *rows][32];
    hash_written("ref", fwd, -1, NULL, ref);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "c%zu", i);
        hash_written(sub, fwd, rows[i].skip, &rows[i].extra, seen[i]);
        cr_assert_neq(memcmp(seen[i], ref, 32), 0, "%s", rows[i].what);
        for (size_t k = 0; k < i; k++) cr_assert_neq(memcmp(seen[i], seen[k], 32), 0, "%s vs %s", rows[i].what, rows[k].what);
    }
}
