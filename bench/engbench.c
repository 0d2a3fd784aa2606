/* bench/engbench.c -- see engbench.h. */
#include "engbench.h"

#include "storage/keyring.h"
#include "api/cli/refset.h"

#include "storage/crypto.h"
#include "storage/index.h"
#include "engine/schema.h"
#include "storage/log.h"
#include "storage/series.h"

#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double eb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t eb_mix(uint64_t z) { return rs_mix(z); }

uint64_t eb_hash(uint32_t pidx, int64_t ts, double v) { return rs_hash(pidx, ts, v); }

static rs_cfg rs_of(const eb_cfg *c)
{
    return (rs_cfg){.points = c->points, .seconds = c->seconds, .batch = c->batch, .late_bp = c->late_bp,
                    .seed = c->seed};
}

void eb_values(const eb_cfg *c, uint32_t p, double *out)
{
    rs_cfg rc = rs_of(c);
    int64_t *cents = malloc(((size_t)c->seconds + 1) * sizeof *cents);
    if (!cents) abort();
    rs_cents(&rc, p, cents);
    for (uint32_t i = 0; i < c->seconds; i++) out[i] = (double)cents[i] / 100.0;
    free(cents);
}

static const char *gw_of(uint32_t pidx) { return pidx % 2 ? "GW2" : "GW1"; }

/* rs_generate's callback: one engine event per reference event */
typedef struct gen_ctx {
    eb_data *d;
    sr_sample *buf;
    size_t cap;
} gen_ctx;

static int gen_event(void *ctx, uint32_t p, uint32_t b, const rs_sample *s, size_t n)
{
    (void)b;
    gen_ctx *g = ctx;
    eb_data *d = g->d;
    if (n > g->cap) {
        size_t cap = n * 2;
        sr_sample *nb = realloc(g->buf, cap * sizeof *nb);
        if (!nb) return SR_ENOMEM;
        g->buf = nb;
        g->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        g->buf[i] = (sr_sample){.ts = s[i].ts, .quality = SR_Q_GOOD};
        g->buf[i].v.f = (double)s[i].cents / 100.0;
    }
    size_t before = d->bytes.len;
    sr_pv_in in = {p + 1, SR_VT_NUMBER, g->buf, n}; /* point number checked in eb_ingest */
    int rc = sr_ev_measurements(EB_OP, gw_of(p), SR_ACTOR_GATEWAY, "", &in, 1, &d->bytes);
    d->ev[d->nev++] = (eb_ev){p, (uint32_t)(d->bytes.len - before), before};
    return rc;
}

const char *eb_shape_name(int shape)
{
    return shape == EB_SNAPSHOT ? "snapshot" : shape == EB_MIXED ? "mixed" : "series";
}

int eb_shape_of(const char *name)
{
    for (int s = EB_SERIES; s <= EB_MIXED; s++)
        if (!strcmp(name, eb_shape_name(s))) return s;
    return -1;
}

/* ---- the snapshot and mixed shapes (engbench.h) -------------------------- */

/* one event of n points (in) from gateway gw, ordered under key */
static int push_event(eb_data *d, size_t *cap, uint32_t key, const char *gw, const sr_pv_in *in, size_t n)
{
    if (d->nev == *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        eb_ev *ne = realloc(d->ev, nc * sizeof *ne);
        if (!ne) return SR_ENOMEM;
        d->ev = ne;
        *cap = nc;
    }
    size_t before = d->bytes.len;
    int rc = sr_ev_measurements(EB_OP, gw, SR_ACTOR_GATEWAY, "", in, n, &d->bytes);
    d->ev[d->nev++] = (eb_ev){key, (uint32_t)(d->bytes.len - before), before};
    return rc;
}

static uint32_t gcd32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* the snapshot group of point p: gateway p % 2, its (p / 2)-th point */
static uint32_t group_of(const eb_cfg *c, uint32_t p) { return (p / 2 / c->batch) * 2 + p % 2; }

static int gen_shapes(const eb_cfg *c, eb_data *d)
{
    const uint32_t P = c->points, B = c->batch;
    rs_cfg rc = rs_of(c), bc = rc;
    bc.seed = c->seed ^ 0xbac4f111ull;
    int64_t *cents = malloc((size_t)P * sizeof *cents), *bw = NULL;
    sr_sample *smp = malloc((size_t)B * sizeof *smp);
    sr_pv_in *in = malloc((size_t)B * sizeof *in);
    size_t cap = 0;
    int r = cents && smp && in ? SR_OK : SR_ENOMEM;
    for (uint32_t p = 0; p < P && !r; p++) cents[p] = rs_walk_start(&rc, p);
    uint32_t step = 101;
    while (gcd32(step, P) != 1) step++;
    uint64_t owed = 0, bm = 0;
    for (uint32_t s = 0; s < c->seconds && !r; s++) {
        int64_t ts = EB_T0 + (int64_t)s * 1000;
        for (uint32_t g = 0; g < 2 && !r; g++) {
            uint32_t cnt = (P + 1 - g) / 2; /* the gateway's points: g, g + 2, ... */
            for (uint32_t k = 0; (uint64_t)k * B < cnt && !r; k++) {
                size_t n = 0;
                for (uint32_t j = k * B; j < cnt && j < (k + 1) * B; j++, n++) {
                    uint32_t p = g + 2 * j;
                    cents[p] = rs_walk_step(&rc, p, s, cents[p]);
                    smp[n] = (sr_sample){.ts = ts, .quality = SR_Q_GOOD};
                    smp[n].v.f = (double)cents[p] / 100.0;
                    in[n] = (sr_pv_in){p + 1, SR_VT_NUMBER, &smp[n], 1}; /* point numbers: see eb_ingest */
                    d->hash += rs_hash(p, ts, smp[n].v.f);
                }
                d->unique += n;
                r = push_event(d, &cap, k * 2 + g, gw_of(g), in, n);
            }
        }
        if (c->shape != EB_MIXED) continue;
        for (owed += (uint64_t)P * c->backfill_bp; owed >= (uint64_t)B * 10000 && !r; owed -= (uint64_t)B * 10000) {
            uint32_t p = (uint32_t)((bm * step) % P), q = (uint32_t)(bm / P);
            bm++;
            bc.seconds = (q + 1) * B;
            int64_t *nw = realloc(bw, (size_t)bc.seconds * sizeof *nw);
            if (!nw) {
                r = SR_ENOMEM;
                break;
            }
            bw = nw;
            rs_cents(&bc, p, bw);
            for (uint32_t i = 0; i < B; i++) {
                smp[i] = (sr_sample){.ts = EB_T0 - EB_BACKFILL_MS + ((int64_t)q * B + i) * 1000, .quality = SR_Q_GOOD};
                smp[i].v.f = (double)bw[(size_t)q * B + i] / 100.0;
                d->hash += rs_hash(p, smp[i].ts, smp[i].v.f);
            }
            d->unique += B;
            sr_pv_in one = {p + 1, SR_VT_NUMBER, smp, B};
            r = push_event(d, &cap, group_of(c, p), gw_of(p), &one, 1);
        }
    }
    d->sent = d->unique; /* every value once */
    free(cents);
    free(bw);
    free(smp);
    free(in);
    return r;
}

int eb_generate(const eb_cfg *c, eb_data *d)
{
    memset(d, 0, sizeof *d);
    if (c->shape != EB_SERIES) {
        sr_buf_init(&d->bytes);
        return gen_shapes(c, d);
    }
    sr_buf_init(&d->bytes);
    rs_cfg rc = rs_of(c);
    size_t cap = (size_t)rs_batches(&rc) * c->points;
    d->ev = malloc((cap ? cap : 1) * sizeof *d->ev);
    if (!d->ev) return SR_ENOMEM;
    gen_ctx g = {.d = d};
    rs_stats st;
    int r = rs_generate(&rc, gen_event, &g, &st);
    free(g.buf);
    if (r < 0) return SR_ENOMEM;
    d->sent = st.sent;
    d->unique = st.unique;
    d->moved = st.moved;
    d->dups = st.dups;
    d->hash = st.hash;
    return r;
}

void eb_data_free(eb_data *d)
{
    sr_buf_release(&d->bytes);
    free(d->ev);
    free(d->point_no);
    memset(d, 0, sizeof *d);
}

void eb_opts(const eb_cfg *c, sr_engine_opts *o, sr_key *key)
{
    memset(o, 0, sizeof *o);
    o->sync = SR_ENGINE_SYNC_ALWAYS;
    o->zstd_level = c->zstd;
    o->replay_max_events = c->replay_max;
    if (c->enc) {
        uint8_t kb[32];
        for (int i = 0; i < 32; i++) kb[i] = (uint8_t)(i * 31 + 7);
        sr_key_from_bytes(key, kb);
        o->key = key;
        o->single_key = c->enc == 2; /* 1: per-operator data keys (a keyring); 2: the one key seals all */
    }
}

static int add_master(sr_buf *b, size_t *lens, size_t *n, Suiro__V1__MasterPut *mp)
{
    Suiro__V1__Event ev = SUIRO__V1__EVENT__INIT;
    ev.body_case = SUIRO__V1__EVENT__BODY_MASTER_PUT;
    ev.master_put = mp;
    size_t before = b->len;
    int rc = sr_ev_pack(&ev, EB_OP, "admin", SUIRO__V1__ACTOR_KIND__ACTOR_USER, "", b);
    lens[(*n)++] = b->len - before;
    return rc;
}

int eb_masters(sr_engine *e, const eb_cfg *c, eb_data *d)
{
    sr_buf b;
    sr_buf_init(&b);
    size_t *lens = calloc((size_t)c->points + 8, sizeof *lens), n = 0;
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
    int rc = add_master(&b, lens, &n, &f);
    rc |= add_master(&b, lens, &n, &q);
    rc |= add_master(&b, lens, &n, &d1);
    rc |= add_master(&b, lens, &n, &d2);
    char id[32];
    for (uint32_t i = 0; i < c->points && !rc; i++) {
        Suiro__V1__MasterPut p = SUIRO__V1__MASTER_PUT__INIT;
        snprintf(id, sizeof id, "P%05u", i);
        p.kind = SUIRO__V1__MASTER_KIND__MK_DATA_POINT;
        p.id = id;
        p.parent_id = i % 2 ? "D-GW2" : "D-GW1";
        p.type = SUIRO__V1__VALUE_TYPE__VT_NUMBER;
        p.unit = "m3/h";
        p.point_kind = SUIRO__V1__POINT_KIND__PK_BOTH;
        p.has_min = p.has_max = 1;
        p.min = -1e9;
        p.max = 1e9;
        if (c->even_class && i % 2 == 0) p.retention_class = (char *)c->even_class;
        rc = add_master(&b, lens, &n, &p);
    }
    sr_slice *sl = calloc(n, sizeof *sl);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        sl[i] = (sr_slice){b.data + pos, lens[i]};
        pos += lens[i];
    }
    sr_result res;
    if (!rc) rc = sr_engine_submit_wait(e, sl, n, &res);
    free(sl);
    sr_buf_release(&b);
    free(lens);
    if (rc) return rc;
    free(d->point_no);
    d->point_no = malloc((size_t)c->points * sizeof *d->point_no);
    for (uint32_t i = 0; i < c->points && !rc; i++) {
        snprintf(id, sizeof id, "P%05u", i);
        rc = sr_engine_point(e, EB_OP, id, &d->point_no[i], NULL);
    }
    return rc;
}

/* ---- ingest ------------------------------------------------------------- */

typedef struct ingest_ctx {
    sr_engine *e;
    const eb_cfg *c;
    const eb_data *d;
    int t;
    uint8_t *scratch; /* events with the engine's point number */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t inflight, window;
    int waiting;
    _Atomic uint64_t ok, failed;
    uint64_t retries;
    int rc;
} ingest_ctx;

static void ingest_cb(void *ctx, const sr_result *r)
{
    ingest_ctx *x = ctx;
    if (r->rc == SR_OK && !r->duplicate) atomic_fetch_add_explicit(&x->ok, 1, memory_order_relaxed);
    else {
        if (atomic_fetch_add(&x->failed, 1) < 3) fprintf(stderr, "engine bench: refused: %s\n", r->err.msg);
    }
    pthread_mutex_lock(&x->mu);
    x->inflight--;
    if (x->waiting) pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void *ingest_main(void *arg)
{
    ingest_ctx *x = arg;
    const eb_data *d = x->d;
    int T = x->c->threads;
    for (size_t i = 0; i < d->nev; i++) {
        const eb_ev *ev = &d->ev[i];
        if ((int)(ev->pidx % (uint32_t)T) != x->t) continue;
        pthread_mutex_lock(&x->mu);
        while (x->inflight >= x->window) {
            x->waiting = 1;
            pthread_cond_wait(&x->cv, &x->mu);
            x->waiting = 0;
        }
        x->inflight++;
        pthread_mutex_unlock(&x->mu);
        sr_slice sl = {d->bytes.data + ev->off, ev->len};
        int rc;
        while ((rc = sr_engine_submit(x->e, &sl, 1, ingest_cb, x)) == SR_EFULL) {
            x->retries++;
            usleep(50);
        }
        if (rc) {
            x->rc = rc;
            pthread_mutex_lock(&x->mu);
            x->inflight--;
            pthread_mutex_unlock(&x->mu);
            break;
        }
    }
    pthread_mutex_lock(&x->mu);
    while (x->inflight) {
        x->waiting = 1;
        pthread_cond_wait(&x->cv, &x->mu);
        x->waiting = 0;
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* The generator numbers points pidx + 1; the engine numbers them in master
 * order from 1 as well. Check rather than rewrite the events. */
int eb_ingest(sr_engine *e, const eb_cfg *c, const eb_data *d, eb_ingest_res *r)
{
    for (uint32_t p = 0; p < c->points; p++)
        if (d->point_no[p] != p + 1) {
            fprintf(stderr, "engine bench: P%05u has point number %u, expected %u\n", p, d->point_no[p], p + 1);
            return SR_EINVAL;
        }
    int T = c->threads < 1 ? 1 : c->threads;
    ingest_ctx *xs = calloc((size_t)T, sizeof *xs);
    pthread_t *th = calloc((size_t)T, sizeof *th);
    double t0 = eb_now();
    for (int t = 0; t < T; t++) {
        ingest_ctx *x = &xs[t];
        x->e = e;
        x->c = c;
        x->d = d;
        x->t = t;
        x->window = c->window / (uint32_t)T ? c->window / (uint32_t)T : 1;
        pthread_mutex_init(&x->mu, NULL);
        pthread_cond_init(&x->cv, NULL);
        pthread_create(&th[t], NULL, ingest_main, x);
    }
    int rc = SR_OK;
    memset(r, 0, sizeof *r);
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        r->ok += atomic_load(&xs[t].ok);
        r->failed += atomic_load(&xs[t].failed);
        r->efull_retries += xs[t].retries;
        if (xs[t].rc) rc = xs[t].rc;
        pthread_mutex_destroy(&xs[t].mu);
        pthread_cond_destroy(&xs[t].cv);
    }
    r->secs = eb_now() - t0;
    free(xs);
    free(th);
    return rc;
}

int eb_verify(sr_engine *e, const eb_cfg *c, const eb_data *d, uint64_t *count, uint64_t *hash)
{
    sr_buf s;
    sr_buf_init(&s);
    *count = 0;
    *hash = 0;
    int rc = SR_OK;
    for (uint32_t p = 0; p < c->points && !rc; p++) {
        sr_range_q q = {.point = d->point_no[p], .from = EB_T0 - EB_BACKFILL_MS - 86400000, .to = EB_T0 + (int64_t)c->seconds * 1000 + 86400000,
                        .after = INT64_MIN};
        int more = 0;
        s.len = 0;
        if ((rc = sr_engine_range(e, &q, &s, NULL, &more))) break;
        const sr_sample *v = (const sr_sample *)s.data;
        size_t n = s.len / sizeof *v;
        for (size_t i = 0; i < n; i++) *hash += eb_hash(p, v[i].ts, v[i].v.f);
        *count += n;
    }
    sr_buf_release(&s);
    if (rc) return rc;
    return *count == d->unique && *hash == d->hash ? 0 : 1;
}

/* ---- sizes --------------------------------------------------------------- */

static uint64_t du_sum;
static int du_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
    (void)p;
    (void)f;
    if (fl == FTW_F) du_sum += (uint64_t)st->st_size;
    return 0;
}
uint64_t eb_du(const char *d)
{
    du_sum = 0;
    nftw(d, du_cb, 8, FTW_PHYS);
    return du_sum;
}

static int rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
    (void)st;
    (void)fl;
    (void)f;
    return remove(p);
}
void eb_rmrf(const char *d) { nftw(d, rm_cb, 8, FTW_DEPTH | FTW_PHYS); }

int eb_sizes_get(const char *dir, eb_sizes *s)
{
    memset(s, 0, sizeof *s);
    char p[1024];
    snprintf(p, sizeof p, "%s/log", dir);
    s->log_bytes = eb_du(p);
    snprintf(p, sizeof p, "%s/index/data.mdb", dir);
    struct stat st;
    if (stat(p, &st) != 0) return SR_EIO;
    s->index_file = (uint64_t)st.st_size;
    s->index_alloc = (uint64_t)st.st_blocks * 512;
    snprintf(p, sizeof p, "%s/index", dir);
    sr_index *ix = NULL;
    char err[256];
    int rc = sr_index_open(p, 0, 1, SR_SCHEMA_DBS, &ix, err, sizeof err);
    if (rc) {
        fprintf(stderr, "engine bench: index: %s\n", err);
        return rc;
    }
    MDB_env *env = sr_index_env(ix);
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &est);
    s->index_hwm = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
    MDB_txn *t;
    if ((rc = sr_index_read_begin(ix, &t)) == SR_OK) {
        uint64_t pages = est.ms_branch_pages + est.ms_leaf_pages + est.ms_overflow_pages; /* the main DB */
        for (int i = 0; i < SR_DB_COUNT; i++) {
            MDB_stat ds;
            if (mdb_stat(t, sr_index_dbi(ix, (sr_dbi)i), &ds) != 0) continue;
            uint64_t pg = ds.ms_branch_pages + ds.ms_leaf_pages + ds.ms_overflow_pages;
            pages += pg;
            if (i == SR_DB_SERIES) {
                s->series_used = pg * est.ms_psize;
                s->series_chunks = ds.ms_entries;
                s->series_overflow_pages = ds.ms_overflow_pages;
                s->series_leaf_pages = ds.ms_leaf_pages;
                MDB_cursor *c;
                if (mdb_cursor_open(t, sr_index_dbi(ix, (sr_dbi)i), &c) == 0) {
                    MDB_val k, v;
                    while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
                        sr_chunk_info ci;
                        if (sr_chunk_info_get(v.mv_data, v.mv_size, &ci) == SR_OK) s->series_values += ci.count;
                    }
                    mdb_cursor_close(c);
                }
            }
        }
        s->index_used = pages * est.ms_psize;
        sr_index_read_end(ix, t);
    }
    sr_index_close(ix);
    return rc;
}

static int chain_cost(const char *logdir, const sr_log_opts *op, eb_chain *out);

int eb_chain_cost(const char *logdir, const sr_key *key, eb_chain *out)
{
    memset(out, 0, sizeof *out);
    sr_log_opts o = {.key = key, .readonly = 1};
    /* per-operator keys: the keyring beside the log (docs/keys.md) */
    char kd[1300];
    snprintf(kd, sizeof kd, "%s/../keys", logdir);
    sr_keyring *kr = NULL;
    sr_errinfo kei;
    if (key && sr_keyring_open(NULL, kd, key, NULL, 0, &kr, &kei) == SR_OK) o.keys = sr_keyring_keys(kr);
    int rc = chain_cost(logdir, &o, out);
    sr_keyring_close(kr);
    return rc;
}

static int chain_cost(const char *logdir, const sr_log_opts *op, eb_chain *out)
{
    sr_log_opts o = *op;
    sr_log_report rep;
    sr_errinfo ei;
    if (sr_log_verify(logdir, &o, &rep, &ei) != SR_OK || !rep.ok || rep.blocks == 0) return SR_ECORRUPT;
    sr_log *lg = NULL;
    if (sr_log_open(logdir, &o, &lg, &ei)) return SR_EIO;
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(lg, sr_log_first_seq(lg), &it);
    uint64_t seq;
    sr_slice rec;
    while (!rc && (rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        size_t vl = 1;
        for (uint64_t v = rec.len; v >= 0x80; v >>= 7) vl++; /* the record's varint length prefix */
        out->plain_bytes += vl + rec.len;
        out->records++;
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    if (rc != SR_DONE) return rc ? rc : SR_EIO;
    out->blocks = rep.blocks;
    size_t avg = (size_t)(out->plain_bytes / rep.blocks);
    uint8_t *buf = malloc(avg + 1);
    if (!buf) return SR_ENOMEM;
    for (size_t i = 0; i <= avg; i++) buf[i] = (uint8_t)eb_mix(i);
    uint8_t hdr[SR_BLK_AAD_LEN] = {1}, digest[32], link[32];
    uint64_t rest = out->plain_bytes % rep.blocks; /* one more byte for that many blocks */
    out->secs = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = eb_now();
        for (uint64_t b = 0; b < rep.blocks; b++) {
            sr_sha256(buf, avg + (b < rest), digest);
            sr_sha256_2(hdr, sizeof hdr, digest, sizeof digest, link);
            hdr[0] ^= link[0]; /* each link depends on the previous one, as in the log */
        }
        double t = eb_now() - t0;
        if (t < out->secs) out->secs = t;
    }
    free(buf);
    out->ok = 1;
    return SR_OK;
}
