#include "engtest.h"


#include "storage/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

int et_submit(sr_engine *e, sr_buf *b, const size_t *lens, size_t n, sr_result *res)
{
    sr_slice *sl = calloc(n, sizeof *sl);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        sl[i] = (sr_slice){b->data + pos, lens[i]};
        pos += lens[i];
    }
    int rc = sr_engine_submit_wait(e, sl, n, res);
    free(sl);
    return rc;
}

int et_submit_origin(sr_engine *e, const void *rec, size_t len, const sr_origin *o, sr_result *res)
{
    return sr_engine_submit_origin_wait(e, rec, len, o, res);
}

static int add_master(sr_buf *b, size_t *lens, size_t *n, const char *op, Suiro__V1__MasterPut *mp)
{
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = mp;
    size_t before = b->len;
    int rc = sr_ev_pack(&ev, op, "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, "", b);
    lens[(*n)++] = b->len - before;
    return rc;
}

static sr_engine *fuzz_eng;
static char fuzz_dir[64];

static void fuzz_cleanup(void)
{
    sr_engine_close(fuzz_eng);
    tu_rmrf(fuzz_dir);
}

sr_engine *et_fuzz_engine(const char *name, int npoints)
{
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/fuzz-%s-XXXXXX", name);
    if (!mkdtemp(fuzz_dir)) abort();
    atexit(fuzz_cleanup);
    sr_errinfo ei;
    sr_engine_opts o = {0};
    if (sr_engine_open(fuzz_dir, &o, &fuzz_eng, &ei) != SR_OK) abort();
    static const sr_vtype T[] = {SR_VT_NUMBER, SR_VT_BOOL, SR_VT_INTEGER, SR_VT_STRING};
    if (et_setup_masters(fuzz_eng, "op1", npoints, T, 4) != SR_OK) abort();
    return fuzz_eng;
}

int et_setup_masters(sr_engine *e, const char *op, int npoints, const sr_vtype *types, int ntypes)
{
    sr_buf b;
    sr_buf_init(&b);
    size_t *lens = calloc((size_t)npoints + 8, sizeof *lens), n = 0;
    Suiro__V1__MasterPut f = SUIRO__V1__MASTER_PUT__INIT, q = SUIRO__V1__MASTER_PUT__INIT,
                         d1 = SUIRO__V1__MASTER_PUT__INIT, d2 = SUIRO__V1__MASTER_PUT__INIT;
    f.kind = SUIRO__V1__MASTER_KIND__MK_FACILITY;
    f.id = "F1";
    f.name = "Plant";
    q.kind = SUIRO__V1__MASTER_KIND__MK_EQUIPMENT;
    q.id = "E1";
    q.parent_id = "F1";
    d1.kind = d2.kind = SUIRO__V1__MASTER_KIND__MK_DEVICE;
    d1.id = "D-GW1";
    d1.parent_id = "E1";
    d1.gateway_id = "GW1";
    d2.id = "D-GW2";
    d2.parent_id = "E1";
    d2.gateway_id = "GW2";
    int rc = add_master(&b, lens, &n, op, &f);
    rc |= add_master(&b, lens, &n, op, &q);
    rc |= add_master(&b, lens, &n, op, &d1);
    rc |= add_master(&b, lens, &n, op, &d2);
    char ids[64];
    for (int i = 0; i < npoints && !rc; i++) {
        Suiro__V1__MasterPut p = SUIRO__V1__MASTER_PUT__INIT;
        snprintf(ids, sizeof ids, "P%03d", i);
        p.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
        p.id = ids;
        p.parent_id = i % 2 ? "D-GW2" : "D-GW1";
        p.type = (Suiro__V1__ValueType)types[i % ntypes];
        p.unit = "m3/h";
        p.point_kind = SUIRO__V1__POINT_KIND__PK_BOTH;
        if (p.type == SUIRO__V1__VALUE_TYPE__VT_NUMBER || p.type == SUIRO__V1__VALUE_TYPE__VT_INTEGER) {
            p.has_min = p.has_max = 1;
            p.min = -1e9;
            p.max = 1e9;
        }
        rc = add_master(&b, lens, &n, op, &p);
    }
    sr_result res;
    if (!rc) rc = et_submit(e, &b, lens, n, &res);
    sr_buf_release(&b);
    free(lens);
    return rc;
}

int et_put(sr_engine *e, const char *op, const char *gw, uint32_t point, sr_vtype type, const sr_sample *s,
           size_t n, const char *msgid, sr_result *res)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_pv_in in = {point, type, s, n};
    int rc = sr_ev_measurements(op, gw, SR_ACTOR_GATEWAY, msgid, &in, 1, &b);
    if (!rc) {
        size_t len = b.len;
        rc = et_submit(e, &b, &len, 1, res);
    }
    sr_buf_release(&b);
    return rc;
}

/* ---- model: per point a sorted dynamic array ---------------------------- */

typedef struct mpoint {
    sr_sample *v;
    size_t n, cap;
} mpoint;

struct et_model {
    mpoint *p;
    size_t np;
};

et_model *et_model_new(void) { return calloc(1, sizeof(et_model)); }

void et_model_free(et_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->np; i++) free(m->p[i].v);
    free(m->p);
    free(m);
}

void et_model_put(et_model *m, uint32_t point, const sr_sample *s)
{
    if (point >= m->np) {
        size_t np = point + 16;
        m->p = realloc(m->p, np * sizeof *m->p);
        memset(m->p + m->np, 0, (np - m->np) * sizeof *m->p);
        m->np = np;
    }
    mpoint *p = &m->p[point];
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->v[mid].ts < s->ts) lo = mid + 1;
        else hi = mid;
    }
    if (lo < p->n && p->v[lo].ts == s->ts) {
        p->v[lo] = *s;
        return;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
    }
    memmove(p->v + lo + 1, p->v + lo, (p->n - lo) * sizeof *p->v);
    p->v[lo] = *s;
    p->n++;
}

size_t et_model_range(et_model *m, uint32_t point, int64_t from, int64_t to, sr_sample **out)
{
    *out = NULL;
    if (point >= m->np) return 0;
    mpoint *p = &m->p[point];
    size_t n = 0;
    *out = malloc((p->n + 1) * sizeof **out);
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].ts >= from && p->v[i].ts < to) (*out)[n++] = p->v[i];
    return n;
}

int et_sample_eq(sr_vtype t, const sr_sample *a, const sr_sample *b)
{
    if (a->ts != b->ts || a->quality != b->quality) return 0;
    switch (t) {
    case SR_VT_NUMBER: return !memcmp(&a->v.f, &b->v.f, sizeof a->v.f);
    case SR_VT_INTEGER: return a->v.i == b->v.i;
    case SR_VT_BOOL: return !!a->v.b == !!b->v.b;
    default: return a->v.str.slen == b->v.str.slen && !memcmp(a->v.str.s, b->v.str.s, a->v.str.slen);
    }
}

void et_master_key(sr_key *k)
{
    uint8_t b[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) b[i] = (uint8_t)(0x4b ^ i);
    sr_key_from_bytes(k, b);
}
