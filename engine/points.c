/*
 * engine/points.c -- the point table: every data point's pointinfo record
 * (operator, dataId, gateway, value type, point kind, min/max) in memory,
 * indexed by point number (a dense array) and by (operator, dataId) (an
 * exact open-addressing hash map of the points that are listed), so that the
 * writer's check of a measurement (apply.c check_measurements) and the
 * network loop's dataId -> point (sr_engine_point_info) read no LMDB record
 * and unpack no protobuf.
 *
 * What it mirrors: pointinfo (point u32 -> op \0 gateway \0 MasterPut; kept
 * after a MasterDelete, so a removed point's number still has an entry) and
 * points (op \0 dataId -> point; removed by MasterDelete: the entry's
 * `listed` and its hash slot go). schema.h has both layouts.
 *
 * WHO WRITES, WHO READS, UNDER WHAT LOCK
 *  - Built at open after the replay (sr__points_load), again after the
 *    writer resumed (sr__recover), both with no group in flight.
 *  - Changed only by the writer thread, after a group's commit
 *    (sr__points_commit): each point a MasterPut / MasterDelete of the group
 *    named (sr__points_touch, from apply.c, also for a refused command's
 *    aborted one) is read back from the committed index, so what a refused
 *    command's nested transaction did never reaches the table. Changes are
 *    made under the write lock `mu`.
 *  - The writer reads entries with no lock (it is their only writer):
 *    sr__points_view. Inside a group that changed a master (masters_dirty),
 *    the table is not yet what the group's transaction says, so the view is
 *    read from that transaction instead (the pointinfo record).
 *  - Other threads (the network loop, AP-IF) read under the read lock `mu`:
 *    sr__points_lookup, which copies the answer out.
 *  - If the table cannot be kept (no memory), `broken` is set and every
 *    reader goes to the index until a reload succeeds: stale never.
 *
 * INVARIANTS (sr_points_check; sr_points_check_index compares with the index)
 *  (1) Every used entry has its point's number as index, op, id and gateway
 *      strings in one allocation, and its hash is key_hash(op, id).
 *  (2) The map holds exactly the listed entries, each once, findable by
 *      linear probing from its hash (no empty slot between its home slot and
 *      it); nlisted counts them and is at most half the slots.
 *  (3) Outside a group, once the writer's sr__points_commit has run, the
 *      table equals the committed index: an entry per pointinfo record,
 *      listed iff points maps its op \0 id to its number. (Between the
 *      group's sr_index_commit and sr__points_commit it is one group
 *      behind: a reader then sees the index before that group's master
 *      changes, which its LMDB snapshot may already hold.)
 *
 * STATES                          TRANSITION              FUNCTION
 *   (none) -> EXACT                open, after the replay  sr__points_load()
 *   EXACT -> EXACT                 a group committed       sr__points_commit()
 *   EXACT -> EXACT                 the writer resumed      sr__points_load()
 *   any -> BROKEN                  no memory to keep it    sr__points_commit(), _load()
 *   BROKEN -> EXACT                the next commit         sr__points_commit() (a reload)
 *
 * Memory: per point, a 40-byte entry, one allocation of its three strings
 * (op, dataId and gateway with their NULs: about 16-40 bytes, plus malloc's
 * 16), and 2-4 map slots of 4 bytes: about 100 bytes a point (1 MB for
 * 10,000 points).
 */
#include "engine/engine_int.h"

#include "codecs/base/sr_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the map's hash of (operator, dataId): the base layer's sr_hash */
static uint32_t key_hash(const char *op, size_t ol, const char *id, size_t il)
{
    return sr_hash_end(sr_hash_add(sr_hash_add(0, op, ol), id, il));
}

/* ---- parsing a pointinfo record ----------------------------------------- */

/* Fill v from pointinfo's value (op \0 gateway \0 packed MasterPut); its
 * strings go into v->s (one allocation, op \0 id \0 gateway \0, the
 * caller's to free); listed is left 0. */
static int pt_parse(const uint8_t *d, size_t n, ptent *v)
{
    pointinfo pi;
    int rc = sr__pointinfo_parse(d, n, &pi); /* the record's one reader (schema.c) */
    if (rc) return rc;
    const MasterPut *m = pi.m;
    size_t a = strlen(pi.op), il = strlen(m->id), b = strlen(pi.gateway);
    if (il >= 72) rc = SR_ECORRUPT;
    else if (!(v->s = sr_malloc(a + il + b + 3))) rc = SR_ENOMEM;
    else {
        memcpy(v->s, pi.op, a + 1);
        memcpy(v->s + a + 1, m->id, il + 1);
        memcpy(v->s + a + il + 2, pi.gateway, b + 1);
        v->idoff = (uint16_t)(a + 1);
        v->gwoff = (uint16_t)(a + il + 2);
        v->hash = key_hash(v->s, a, m->id, il);
        v->type = (uint8_t)m->type;
        v->kind = (uint8_t)m->point_kind;
        v->has_min = (uint8_t)m->has_min;
        v->has_max = (uint8_t)m->has_max;
        v->min = m->min;
        v->max = m->max;
        v->listed = 0;
    }
    suiro__v1__master_put__free_unpacked(pi.m, NULL);
    return rc;
}

/* The entry of point p as the transaction t has it (listed: points maps its
 * op \0 id to p). SR_ENOTFOUND: no pointinfo record. */
static int pt_read(sr_engine *e, MDB_txn *t, uint32_t p, ptent *v)
{
    uint8_t k[4];
    be32(k, p);
    MDB_val x;
    memset(v, 0, sizeof *v);
    int rc = get(t, DB(e, SR_DB_POINTINFO), k, 4, &x);
    if (rc) return rc;
    if ((rc = pt_parse(x.mv_data, x.mv_size, v))) return rc;
    uint8_t pk[300];
    size_t pkl = mkkey(pk, sizeof pk, v->s, v->s + v->idoff, NULL);
    v->listed = pkl && get(t, DB(e, SR_DB_POINTS), pk, pkl, &x) == SR_OK && x.mv_size == 4 && get_be32(x.mv_data) == p;
    return SR_OK;
}

static void view_of(const ptent *v, uint32_t p, sr_ptview *out)
{
    out->point = p;
    out->op = v->s;
    out->id = v->s + v->idoff;
    out->gateway = v->s + v->gwoff;
    out->type = v->type;
    out->kind = v->kind;
    out->has_min = v->has_min;
    out->has_max = v->has_max;
    out->min = v->min;
    out->max = v->max;
}

/* ---- the map ------------------------------------------------------------- */

static void map_insert(uint32_t *slot, uint32_t nslot, const ptent *ent, uint32_t p)
{
    uint32_t m = nslot - 1, i = ent[p].hash & m;
    while (slot[i]) i = (i + 1) & m;
    slot[i] = p;
}

/* Remove p (backward-shift deletion: no tombstones, invariant 2). */
static void map_remove(sr_points *pt, uint32_t p)
{
    uint32_t m = pt->nslot - 1, i = pt->ent[p].hash & m;
    while (pt->slot[i] != p) {
        if (!pt->slot[i]) return;
        i = (i + 1) & m;
    }
    uint32_t j = i;
    for (;;) {
        pt->slot[i] = 0;
        for (;;) {
            j = (j + 1) & m;
            if (!pt->slot[j]) return;
            uint32_t home = pt->ent[pt->slot[j]].hash & m;
            /* slot[j] may move to i if its home is not in (i, j] cyclically */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
            break;
        }
        pt->slot[i] = pt->slot[j];
        i = j;
    }
}

static int map_grow(sr_points *pt, uint32_t want_listed)
{
    if (pt->nslot && (uint64_t)want_listed * 2 <= pt->nslot) return SR_OK;
    uint32_t n = pt->nslot ? pt->nslot : 64;
    while ((uint64_t)want_listed * 2 > n) n *= 2;
    uint32_t *s = sr_calloc(n, sizeof *s);
    if (!s) return SR_ENOMEM;
    for (uint32_t i = 0; i < pt->nslot; i++)
        if (pt->slot[i]) map_insert(s, n, pt->ent, pt->slot[i]);
    sr_free(pt->slot);
    pt->slot = s;
    pt->nslot = n;
    return SR_OK;
}

static int ent_grow(sr_points *pt, uint32_t p)
{
    if (p < pt->nent) return SR_OK;
    uint32_t n = pt->nent ? pt->nent : 256;
    while (n <= p) n = n > UINT32_MAX / 2 ? UINT32_MAX : n * 2;
    if (n <= p) return SR_ENOMEM;
    ptent *x = sr_realloc(pt->ent, (size_t)n * sizeof *x);
    if (!x) return SR_ENOMEM;
    memset(x + pt->nent, 0, (size_t)(n - pt->nent) * sizeof *x);
    pt->ent = x;
    pt->nent = n;
    return SR_OK;
}

/* Put v (owned now) at p; the caller holds the write lock (or is alone). */
static int ent_set(sr_points *pt, uint32_t p, ptent *v)
{
    int rc = ent_grow(pt, p);
    if (!rc && v->listed && !(pt->ent[p].s && pt->ent[p].listed)) rc = map_grow(pt, pt->nlisted + 1);
    if (rc) {
        sr_free(v->s);
        return rc;
    }
    ptent *o = &pt->ent[p];
    if (o->s && o->listed) {
        map_remove(pt, p);
        pt->nlisted--;
    }
    sr_free(o->s);
    *o = *v;
    if (o->s && o->listed) {
        map_insert(pt->slot, pt->nslot, pt->ent, p);
        pt->nlisted++;
    }
    return SR_OK;
}

static void table_free(sr_points *pt)
{
    for (uint32_t p = 0; p < pt->nent; p++) sr_free(pt->ent[p].s);
    sr_free(pt->ent);
    sr_free(pt->slot);
    pt->ent = NULL;
    pt->slot = NULL;
    pt->nent = pt->nslot = pt->nlisted = 0;
}

/* ---- building it --------------------------------------------------------- */

/* Every pointinfo record, then every points row, into a new table. */
static int table_build(sr_engine *e, MDB_txn *t, sr_points *nt)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_POINTINFO), &c));
    if (rc) return rc;
    for (int r = mdb_cursor_get(c, &k, &v, MDB_FIRST); r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4) {
            rc = SR_ECORRUPT;
            break;
        }
        ptent x;
        memset(&x, 0, sizeof x);
        if (!(rc = pt_parse(v.mv_data, v.mv_size, &x))) rc = ent_set(nt, get_be32(k.mv_data), &x);
    }
    mdb_cursor_close(c);
    if (rc) return rc;
    /* listed: op \0 dataId -> p, and p's entry has that op and id */
    if ((rc = sr_index_err(mdb_cursor_open(t, DB(e, SR_DB_POINTS), &c)))) return rc;
    for (int r = mdb_cursor_get(c, &k, &v, MDB_FIRST); r == 0 && !rc; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 4) continue;
        uint32_t p = get_be32(v.mv_data);
        if (p >= nt->nent || !nt->ent[p].s) continue;
        ptent *x = &nt->ent[p];
        size_t ol = strlen(x->s), il = strlen(x->s + x->idoff);
        if (k.mv_size != ol + 1 + il || memcmp(k.mv_data, x->s, ol + 1) || memcmp((char *)k.mv_data + ol + 1, x->s + x->idoff, il))
            continue;
        if (x->listed) continue;
        if ((rc = map_grow(nt, nt->nlisted + 1))) break;
        x->listed = 1;
        map_insert(nt->slot, nt->nslot, nt->ent, p);
        nt->nlisted++;
    }
    mdb_cursor_close(c);
    return rc;
}

int sr__points_load(sr_engine *e)
{
    if (!e->pt) {
        sr_points *pt = sr_calloc(1, sizeof *pt);
        if (!pt) return SR_ENOMEM;
        pthread_rwlock_init(&pt->mu, NULL);
        pt->broken = 1;
        e->pt = pt;
    }
    sr_points nt;
    memset(&nt, 0, sizeof nt);
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (!rc) {
        rc = table_build(e, t, &nt);
        sr_index_read_end(e->ix, t);
    }
    sr_points *pt = e->pt;
    pthread_rwlock_wrlock(&pt->mu);
    if (!rc) {
        table_free(pt);
        pt->ent = nt.ent;
        pt->nent = nt.nent;
        pt->slot = nt.slot;
        pt->nslot = nt.nslot;
        pt->nlisted = nt.nlisted;
        pt->broken = 0;
    } else {
        table_free(&nt);
        pt->broken = 1; /* readers go to the index */
    }
    pthread_rwlock_unlock(&pt->mu);
    pt->ntouched = 0;
    pt->touch_all = 0;
    SR_INVARIANT(sr_points_check(e));
    return rc;
}

void sr__points_free(sr_engine *e)
{
    sr_points *pt = e->pt;
    if (!pt) return;
    table_free(pt);
    sr_free(pt->touched);
    pthread_rwlock_destroy(&pt->mu);
    sr_free(pt);
    e->pt = NULL;
}

/* ---- the writer's side --------------------------------------------------- */

void sr__points_touch(sr_engine *e, uint32_t p)
{
    sr_points *pt = e->pt;
    if (!pt || pt->touch_all) return;
    if (pt->ntouched >= 65536 || sr_array_reserve(&pt->touched, &pt->captouched, pt->ntouched + 1, sizeof *pt->touched))
        pt->touch_all = 1; /* a reload after the commit */
    else pt->touched[pt->ntouched++] = p;
}

void sr__points_abort(sr_engine *e)
{
    if (!e->pt) return;
    e->pt->ntouched = 0;
    e->pt->touch_all = 0;
}

int sr__points_commit(sr_engine *e)
{
    sr_points *pt = e->pt;
    if (!pt || (!pt->ntouched && !pt->touch_all && !pt->broken)) return SR_OK;
    if (pt->touch_all || pt->broken) return sr__points_load(e);
    MDB_txn *t = NULL;
    int rc = sr_index_read_begin(e->ix, &t);
    for (size_t i = 0; i < pt->ntouched && !rc; i++) {
        ptent v;
        int r = pt_read(e, t, pt->touched[i], &v);
        if (r == SR_ENOTFOUND) continue; /* a refused put of a new point: nothing to mirror */
        if (r) rc = r;
        else {
            pthread_rwlock_wrlock(&pt->mu);
            rc = ent_set(pt, pt->touched[i], &v);
            pthread_rwlock_unlock(&pt->mu);
        }
#if SR_INVARIANTS
        if (!rc) SR_INVARIANT(sr_points_check_entry(e, t, pt->touched[i]));
#endif
    }
    if (t) sr_index_read_end(e->ix, t);
    pt->ntouched = 0;
    if (rc) {
        pthread_rwlock_wrlock(&pt->mu);
        pt->broken = 1; /* the next commit reloads; until then readers go to the index */
        pthread_rwlock_unlock(&pt->mu);
    }
    SR_INVARIANT(sr_points_check(e));
    return rc;
}

int sr__points_view(sr_engine *e, MDB_txn *t, uint32_t p, sr_ptview *out, char **scratch)
{
    sr_points *pt = e->pt;
    *scratch = NULL;
    if (pt && !pt->broken && !e->masters_dirty) { /* the writer: no lock (it is the only writer) */
        if (p >= pt->nent || !pt->ent[p].s) return SR_ENOTFOUND;
        view_of(&pt->ent[p], p, out);
        return SR_OK;
    }
    /* this group changed masters (or no table): what the transaction says */
    ptent v;
    int rc = pt_read(e, t, p, &v);
    if (rc) return rc;
    view_of(&v, p, out);
    *scratch = v.s;
    return SR_OK;
}

/* ---- the readers ---------------------------------------------------------- */

static void info_of(const ptent *x, uint32_t p, sr_point_info *out)
{
    out->point = p;
    out->type = (sr_vtype)x->type;
    out->kind = x->kind;
    out->has_min = x->has_min;
    out->min = x->min;
    out->has_max = x->has_max;
    out->max = x->max;
    size_t gl = strlen(x->s + x->gwoff); /* < 72 (pt_parse) */
    memcpy(out->gateway, x->s + x->gwoff, gl < sizeof out->gateway ? gl + 1 : 0);
    out->gateway[sizeof out->gateway - 1] = 0;
}

int sr__points_lookup(sr_engine *e, const char *op, const char *data_id, sr_point_info *out)
{
    sr_points *pt = e->pt;
    size_t ol = strlen(op), il = strlen(data_id);
    if (pt) {
        pthread_rwlock_rdlock(&pt->mu);
        if (!pt->broken) {
            int rc = SR_ENOTFOUND;
            if (pt->nslot) {
                uint32_t h = key_hash(op, ol, data_id, il), m = pt->nslot - 1;
                for (uint32_t i = h & m; pt->slot[i]; i = (i + 1) & m) {
                    const ptent *x = &pt->ent[pt->slot[i]];
                    if (x->hash == h && !strcmp(x->s, op) && !strcmp(x->s + x->idoff, data_id)) {
                        info_of(x, pt->slot[i], out);
                        rc = SR_OK;
                        break;
                    }
                }
            }
            pthread_rwlock_unlock(&pt->mu);
            return rc;
        }
        pthread_rwlock_unlock(&pt->mu);
    }
    /* no table (no memory to keep it): the index */
    MDB_txn *t;
    int rc = sr_index_read_begin(e->ix, &t);
    if (rc) return rc;
    uint8_t k[300];
    size_t kl = mkkey(k, sizeof k, op, data_id, NULL);
    MDB_val v;
    rc = kl ? get(t, DB(e, SR_DB_POINTS), k, kl, &v) : SR_ENOTFOUND;
    if (!rc && v.mv_size != 4) rc = SR_ECORRUPT;
    ptent x;
    if (!rc && !(rc = pt_read(e, t, get_be32(v.mv_data), &x))) {
        info_of(&x, get_be32(v.mv_data), out);
        sr_free(x.s);
    }
    sr_index_read_end(e->ix, t);
    return rc;
}

/* ---- invariants ------------------------------------------------------------ */

const char *sr_points_check(const sr_engine *e)
{
    const sr_points *pt = e->pt;
    if (!pt || pt->broken) return NULL;
    uint32_t listed = 0;
    for (uint32_t p = 0; p < pt->nent; p++) {
        const ptent *x = &pt->ent[p];
        if (!x->s) {
            if (x->listed) return "points: an empty entry is listed";
            continue;
        }
        if (p == 0) return "points: an entry at number 0";
        size_t ol = strlen(x->s);
        if (x->idoff != ol + 1 || x->gwoff != ol + 1 + strlen(x->s + x->idoff) + 1)
            return "points: an entry's strings are not op, id, gateway";
        if (x->hash != key_hash(x->s, ol, x->s + x->idoff, strlen(x->s + x->idoff))) return "points: an entry's hash is not its key's";
        if (!x->listed) continue;
        listed++;
        /* (2) findable from its home slot with no empty slot on the way */
        uint32_t m = pt->nslot - 1, i = x->hash & m;
        while (pt->slot[i] != p) {
            if (!pt->slot[i]) return "points: a listed entry is not in the map";
            i = (i + 1) & m;
        }
    }
    if (listed != pt->nlisted) return "points: nlisted is not the number of listed entries";
    uint32_t inmap = 0;
    for (uint32_t i = 0; i < pt->nslot; i++) {
        uint32_t p = pt->slot[i];
        if (!p) continue;
        inmap++;
        if (p >= pt->nent || !pt->ent[p].s || !pt->ent[p].listed) return "points: the map holds an entry that is not listed";
    }
    if (inmap != pt->nlisted) return "points: the map holds an entry twice";
    if ((uint64_t)pt->nlisted * 2 > pt->nslot && pt->nlisted) return "points: the map is more than half full";
    return NULL;
}

const char *sr_points_check_entry(const sr_engine *e, MDB_txn *t, uint32_t p)
{
    const sr_points *pt = e->pt;
    if (!pt || pt->broken) return NULL;
    ptent v;
    int rc = pt_read((sr_engine *)e, t, p, &v);
    const ptent *x = p < pt->nent ? &pt->ent[p] : NULL;
    if (rc == SR_ENOTFOUND) return x && x->s ? "points: an entry the index has no pointinfo for" : NULL;
    if (rc) return NULL; /* cannot tell */
    const char *why = NULL;
    if (!x || !x->s) why = "points: a pointinfo record has no entry";
    else if (strcmp(x->s, v.s) || strcmp(x->s + x->idoff, v.s + v.idoff) || strcmp(x->s + x->gwoff, v.s + v.gwoff))
        why = "points: an entry's operator, dataId or gateway is not its pointinfo's";
    else if (x->type != v.type || x->kind != v.kind || x->has_min != v.has_min || x->has_max != v.has_max ||
             (x->has_min && x->min != v.min) || (x->has_max && x->max != v.max))
        why = "points: an entry's type, kind or range is not its pointinfo's";
    else if (x->listed != v.listed) why = "points: an entry is listed and points does not map it (or the reverse)";
    sr_free(v.s);
    return why;
}

const char *sr_points_check_index(const sr_engine *e)
{
    const sr_points *pt = e->pt;
    if (!pt || pt->broken) return NULL;
    MDB_txn *t;
    if (sr_index_read_begin(e->ix, &t)) return NULL;
    const char *why = NULL;
    uint32_t n = 0;
    for (uint32_t p = 0; p < pt->nent && !why; p++) {
        if (pt->ent[p].s) n++;
        why = sr_points_check_entry(e, t, p);
    }
    if (!why) { /* and no pointinfo record without an entry */
        MDB_stat st;
        if (mdb_stat(t, DB(e, SR_DB_POINTINFO), &st) == 0 && st.ms_entries != n) why = "points: the index has pointinfo records the table lacks";
    }
    sr_index_read_end(e->ix, t);
    return why;
}
