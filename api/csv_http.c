/*
 * api/csv_http.c -- CSV over HTTP (R-PO-1, docs/csv.md; contract in
 * api/csv_http.h): the streamed export of stored values, the import of a
 * corrected CSV, and the Admin API's corrections route.
 *
 * EXPORT
 *  An h2o generator whose steps are jobs on the AP-IF's worker queue
 *  (api/workq.h: the operator's share, nice +10, never on the loop): a step
 *  writes the next bytes (at least 512 KiB unless the export ends: fewer
 *  hops between the pool and the loop) into the
 *  generator's one buffer on a pool thread, and the loop sends them; h2o's
 *  proceed callback (the last step is sent) queues the next. The headers
 *  go out with the first step, so an engine error before it is a 500, not
 *  a 200 that stops; a later one cuts the body (h2o closes the
 *  connection). A raw step reads with sr_engine_range at most SR_CSV_STEP
 *  samples a call from the cursor on: one short LMDB read transaction
 *  each, never one held for the whole export (it would pin the pages the
 *  writer frees meanwhile). A downsampled point is read once (its buckets,
 *  at most the route's 100000 intervals) and written SR_CSV_STEP buckets a
 *  step. A slow client holds no thread: no step runs until h2o asks. The
 *  generator lives in an sr_http_ctx (api/httpu.h), so a step in flight
 *  when the client leaves finishes into a context that is then freed.
 *
 * INVARIANTS
 *  (1) Memory: a generator holds its samples (SR_CSV_STEP), its strings
 *      (the step's), its buckets (one point's) and its text buffer (512 KiB
 *      and one read's rows, ~SR_CSV_STEP x 100 bytes): about 1 MiB,
 *      independent of the range's size.
 *  (2) Values are written by the AP-IF's one number writer (sr_json_number_k,
 *      sr_json_i64: a decimal as it was sent), timestamps by sr_json_ts_put
 *      (the JSON answer's text), strings by the CSV writer (codecs/csv.c).
 *  (3) Rows come point after point (the order of the dataId parameters), each
 *      point's in time order, the same values the JSON answer pages through.
 */
#include "api/csv_http.h"

#include "api/admin_int.h"
#include "api/apif_int.h"
#include "api/loginguard.h"
#include "api/httpu.h"
#include "api/slog.h"
#include "codecs/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the export --------------------------------------------------------- */

enum { SEND_MIN = 512 << 10 };

typedef struct csvx {
    sr_http_ctx h;       /* first: h.req is NULL once h2o disposed of the request */
    h2o_generator_t gen; /* h2o's handle on the stream (in the context: it outlives a step) */
    sr_work w;           /* the step on the worker queue */
    sr_apif *a;
    char op[72];
    sr_engine *e;
    sr_csv_export x;
    char (*ids)[72];
    sr_point_info *info;
    size_t k;          /* the point being written */
    int64_t after;     /* raw: the cursor in point k (INT64_MIN: its start) */
    size_t bi, nb;     /* downsampled: the next bucket of point k, its buckets (nb: read) */
    int have_bk;
    int done;          /* the last step is written */
    int started;       /* the headers went out */
    int rc;            /* the step's engine error */
    sr_buf out, samples, strings, bk;
    sr_json_ts tc;
    int kh;
} csvx;

static void csvx_free(sr_http_ctx *h)
{
    csvx *c = (csvx *)h;
    sr_buf_release(&c->out);
    sr_buf_release(&c->samples);
    sr_buf_release(&c->strings);
    sr_buf_release(&c->bk);
    free(c->ids);
    free(c->info);
}
/* the aggregates in the order of the JSON answer's fields */
static const struct {
    int m;
    const char *name;
} AGGS[] = {{SR_CSV_AGG_MIN, "min"},     {SR_CSV_AGG_MAX, "max"},   {SR_CSV_AGG_AVG, "avg"}, {SR_CSV_AGG_SUM, "sum"},
            {SR_CSV_AGG_FIRST, "first"}, {SR_CSV_AGG_LAST, "last"}, {SR_CSV_AGG_COUNT, "count"}};

static int put(sr_buf *b, const char *s) { return sr_buf_append(b, s, strlen(s)); }

static int put_header(csvx *c)
{
    int rc = c->x.bom ? sr_buf_append(&c->out, "\xEF\xBB\xBF", 3) : SR_OK;
    if (!c->x.interval) return rc ? rc : put(&c->out, "dataId,timestamp,value,quality\r\n");
    if (!rc) rc = put(&c->out, "dataId,timestamp");
    for (size_t i = 0; !rc && i < sizeof AGGS / sizeof AGGS[0]; i++)
        if (c->x.mask & AGGS[i].m) {
            if (!(rc = put(&c->out, ","))) rc = put(&c->out, AGGS[i].name);
        }
    return rc ? rc : put(&c->out, "\r\n");
}

/* "<dataId>,<timestamp>," into out: where the value goes (room for 48 more) */
static char *row_head(csvx *c, int64_t ts, size_t more, int *rc)
{
    const char *id = c->ids[c->k];
    size_t il = strlen(id);
    if ((*rc = sr_buf_reserve(&c->out, il + 26 + more + 48))) return NULL;
    char *p = (char *)c->out.data + c->out.len;
    memcpy(p, id, il); /* an ID needs no quotes: [A-Za-z0-9._-] */
    p += il;
    *p++ = ',';
    sr_json_ts_put(&c->tc, ts, p);
    p += 24;
    *p++ = ',';
    return p;
}

static int raw_rows(csvx *c, const sr_sample *s, size_t n)
{
    sr_vtype type = c->info[c->k].type;
    int rc = SR_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char *p = row_head(c, s[i].ts, 0, &rc);
        if (!p) break;
        switch (type) {
        case SR_VT_INTEGER: p += sr_json_i64(p, s[i].v.i); break;
        case SR_VT_BOOL:
            memcpy(p, s[i].v.b ? "true" : "false", s[i].v.b ? 4 : 5);
            p += s[i].v.b ? 4 : 5;
            break;
        case SR_VT_STRING:
            c->out.len = (size_t)(p - (char *)c->out.data);
            if ((rc = sr_csv_write_field(&c->out, s[i].v.str.s, s[i].v.str.slen))) continue;
            if ((rc = sr_buf_reserve(&c->out, 16))) continue;
            p = (char *)c->out.data + c->out.len;
            break;
        default: {
            int m = sr_json_number_k(p, s[i].v.f, &c->kh);
            if (!m) rc = SR_EINVAL;
            p += m;
        }
        }
        if (rc) break;
        *p++ = ',';
        const char *qn = sr_quality_str(s[i].quality);
        size_t ql = strlen(qn);
        memcpy(p, qn, ql);
        p += ql;
        *p++ = '\r';
        *p++ = '\n';
        c->out.len = (size_t)(p - (char *)c->out.data);
    }
    return rc;
}

static int bucket_rows(csvx *c)
{
    const sr_bucket *bu = (const sr_bucket *)c->bk.data;
    size_t end = c->bi + SR_CSV_STEP < c->nb ? c->bi + SR_CSV_STEP : c->nb;
    int rc = SR_OK;
    for (; c->bi < end && !rc; c->bi++) {
        const sr_bucket *b = &bu[c->bi];
        char *p = row_head(c, b->start, 7 * 42, &rc);
        if (!p) break;
        int empty = b->count == 0 && !b->filled, firstf = 1;
        for (size_t i = 0; i < sizeof AGGS / sizeof AGGS[0]; i++) {
            if (!(c->x.mask & AGGS[i].m)) continue;
            if (!firstf) *p++ = ','; /* the first one's is row_head's */
            firstf = 0;
            if (AGGS[i].m == SR_CSV_AGG_COUNT) {
                p += sr_json_u64(p, b->count);
                continue;
            }
            if (empty) continue; /* an empty field */
            double v = AGGS[i].m == SR_CSV_AGG_MIN   ? b->min
                       : AGGS[i].m == SR_CSV_AGG_MAX ? b->max
                       : AGGS[i].m == SR_CSV_AGG_AVG ? (b->count ? b->sum / (double)b->count : b->last)
                       : AGGS[i].m == SR_CSV_AGG_SUM ? b->sum
                       : AGGS[i].m == SR_CSV_AGG_FIRST ? b->first
                                                       : b->last;
            int m = sr_json_number_k(p, v, &c->kh);
            if (!m) rc = SR_EINVAL;
            p += m;
        }
        *p++ = '\r';
        *p++ = '\n';
        c->out.len = (size_t)(p - (char *)c->out.data);
    }
    return rc;
}

/* Write the next step(s) into c->out (at least SEND_MIN bytes unless the
 * export ends): SR_OK, or an engine error. Sets c->done at the end. */
static int fill(csvx *c)
{
    int rc = SR_OK;
    while (!rc && !c->done && c->out.len < SEND_MIN) {
        if (c->k >= c->x.n) {
            c->done = 1;
            break;
        }
        if (c->x.interval) {
            if (!c->have_bk) {
                c->bk.len = 0;
                if ((rc = sr_engine_downsample(c->e, c->info[c->k].point, c->x.from, c->x.to, c->x.interval, c->x.fill,
                                               &c->bk)))
                    break;
                c->nb = c->bk.len / sizeof(sr_bucket);
                c->bi = 0;
                c->have_bk = 1;
            }
            if ((rc = bucket_rows(c))) break;
            if (c->bi >= c->nb) {
                c->have_bk = 0;
                c->k++;
            }
            continue;
        }
        sr_range_q q = {c->info[c->k].point, c->x.from, c->x.to, SR_CSV_STEP, 0, c->after};
        int more = 0;
        c->samples.len = c->strings.len = 0;
        if ((rc = sr_engine_range(c->e, &q, &c->samples, &c->strings, &more))) break;
        size_t ns = c->samples.len / sizeof(sr_sample);
        const sr_sample *s = (const sr_sample *)c->samples.data;
        if ((rc = raw_rows(c, s, ns))) break;
        if (more && ns) c->after = s[ns - 1].ts;
        else {
            c->k++;
            c->after = INT64_MIN;
        }
    }
    return rc;
}

static void step_submit(csvx *c, int must);

/* the client left or the stream ended: a step in flight ends on its own
 * (h.req tells it the request went); the context goes with its last ref */
static void csvx_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)g;
    (void)req;
}

/* a step on a pool thread: the next bytes into c->out */
static void step_work(sr_work *w)
{
    csvx *c = SR_CONTAINER(w, csvx, w);
    c->rc = fill(c);
}

/* the step done, on the loop: the headers with the first bytes, or the next
 * bytes; the request may be gone (the client left): nothing to send */
static void step_done(sr_work *w, int status)
{
    csvx *c = SR_CONTAINER(w, csvx, w);
    h2o_req_t *req = c->h.req;
    c->a->busy--;
    if (status && !c->rc) c->rc = status;
    if (req && !c->started) {
        if (c->rc) sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(c->rc), NULL); /* before the headers: a 500 */
        else {
            c->started = 1;
            req->res.status = 200;
            req->res.reason = "OK";
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           H2O_STRLIT("text/csv; charset=utf-8"));
            h2o_start_response(req, &c->gen);
        }
    }
    if (req && c->started) {
        h2o_iovec_t v = h2o_iovec_init(c->out.data, c->out.len);
        if (c->rc) {
            sr_slog(SR_LOG_ERROR, "CSV export failed", "error=%s", sr_err_name(c->rc));
            h2o_send(req, &v, c->out.len ? 1 : 0, H2O_SEND_STATE_ERROR); /* the client sees a cut body */
        } else
            h2o_send(req, &v, c->out.len ? 1 : 0, c->done ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    }
    sr_http_ctx_unref(&c->h); /* the step's */
}

/* h2o sent the last step and asks for more */
static void csvx_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    csvx *c = SR_CONTAINER(g, csvx, gen);
    c->out.len = 0;
    step_submit(c, 1);
}

static void step_submit(csvx *c, int must)
{
    c->w.work = step_work;
    c->w.done = step_done;
    c->h.refs++;
    c->a->busy++;
    int rc = c->a->closing ? SR_ECLOSED : sr_workq_submit(c->a->wq, c->op, 0, must, &c->w);
    if (!rc) return;
    c->h.refs--;
    c->a->busy--;
    h2o_req_t *req = c->h.req;
    if (!req) return;
    if (!c->started) {
        if (rc == SR_EFULL) sr_apif_busy_answer(req, "busy: this operator has too many requests waiting; retry later");
        else sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
        return;
    }
    h2o_iovec_t v = h2o_iovec_init(NULL, 0);
    h2o_send(req, &v, 0, H2O_SEND_STATE_ERROR); /* the server is stopping: a cut body */
}

void sr_csv_export_start(h2o_req_t *req, sr_apif *a, const char *op, const sr_csv_export *x)
{
    csvx *c = sr_http_ctx_new(req, sizeof *c);
    if (!c) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    c->h.on_free = csvx_free;
    c->gen.proceed = csvx_proceed;
    c->gen.stop = csvx_stop;
    c->a = a;
    c->e = a->eng;
    snprintf(c->op, sizeof c->op, "%s", op);
    c->x = *x;
    c->after = INT64_MIN;
    c->ids = malloc((x->n ? x->n : 1) * sizeof *c->ids);
    c->info = malloc((x->n ? x->n : 1) * sizeof *c->info);
    int rc = c->ids && c->info ? SR_OK : SR_ENOMEM;
    if (!rc) {
        memcpy(c->ids, x->ids, x->n * sizeof *c->ids);
        memcpy(c->info, x->info, x->n * sizeof *c->info);
        rc = put_header(c);
    }
    if (rc) sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
    else step_submit(c, 0); /* the first step before the headers: an error is still a 500, a busy queue a 429 */
    /* c's first reference is the request's (sr_http_ctx_new): dropped when h2o disposes of it */
}

/* ---- the import ------------------------------------------------------------ */

sr_wire sr_csv_import(sr_engine *e, const sr_cmd_env *env, const char *csv, size_t len, const char *reason,
                      int (*may)(void *ctx, const char *data_id), void *may_ctx, char *msg, size_t msgsz,
                      json_t **detail, json_t **answer)
{
    *detail = *answer = NULL;
    sr_corr_report *rep = malloc(sizeof *rep);
    if (!rep) {
        snprintf(msg, msgsz, "out of memory");
        return SR_WIRE_INTERNAL;
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_wire code = SR_WIRE_OK;
    int rc = sr_cmd_corrections(e, env, csv, len, reason, may, may_ctx, rep, &b);
    if (rc) {
        code = sr_wire_of_rc(rc);
        snprintf(msg, msgsz, "%s", rep->msg[0] ? rep->msg : sr_wire_msg_of_rc(rc));
        if (rep->field[0]) {
            json_t *errs = json_array();
            for (size_t i = 0; i < rep->nerr; i++)
                json_array_append_new(errs, json_pack("{s:I,s:s}", "line", (json_int_t)rep->err[i].line, "message",
                                                      rep->err[i].msg));
            *detail = json_pack("{s:s,s:o,s:I,s:b}", "field", rep->field, "errors", errs, "count",
                                (json_int_t)rep->nbad, "truncated", rep->nbad > rep->nerr);
        }
    } else {
        sr_result res;
        memset(&res, 0, sizeof res);
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit_wait(e, &sl, 1, &res);
        if (!rc) rc = res.rc;
        if (rc) {
            code = sr_wire_of_rc(rc);
            snprintf(msg, msgsz, "%s", res.err.msg[0] ? res.err.msg : sr_wire_msg_of_rc(rc));
        } else
            *answer = json_pack("{s:s,s:I,s:I,s:I}", "importId", rep->import_id, "seq", (json_int_t)res.seq, "rows",
                                (json_int_t)rep->rows, "points", (json_int_t)rep->points);
    }
    sr_buf_release(&b);
    free(rep);
    return code;
}

/* ---- the AP-IF's route (ext) ----------------------------------------------------- */

/* An app's import, on the worker queue: its grants of kind corrections
 * (engine/store_access.c) read as they are now; an app holding none is
 * refused 403 before its CSV is read; a row of a point no grant of it
 * allows writing is a bad row. */
typedef struct capjob {
    sr_apjob j; /* first */
    char op[72], app[72], source[64];
    char reason[SR_CORR_REASON_MAX + 8];
    char *csv;
    size_t len;
    sr_wire code;
    char msg[512];
    json_t *detail, *answer;
    sr_store_grant *g;
    size_t ng;
} capjob;

static int app_may(void *ctx, const char *data_id)
{
    capjob *q = ctx;
    return (sr_store_grants_allow(q->g, q->ng, SR_STORE_CORRECTIONS, data_id) & SR_STORE_WRITE) != 0;
}

static void capjob_run(sr_apjob *j)
{
    capjob *q = (capjob *)j;
    int rc = sr_store_grants_load(j->a->eng, q->op, q->app, &q->g, &q->ng);
    if (rc) {
        q->code = SR_WIRE_INTERNAL;
        snprintf(q->msg, sizeof q->msg, "the app's grants: %s", sr_strerror(rc));
        return;
    }
    int any = 0;
    for (size_t i = 0; i < q->ng; i++) any |= q->g[i].kind == SR_STORE_CORRECTIONS && (q->g[i].access & SR_STORE_WRITE);
    if (!any) {
        q->code = SR_WIRE_FORBIDDEN;
        snprintf(q->msg, sizeof q->msg, "this app holds no grant to correct values (a corrections grant, docs/csv.md)");
        return;
    }
    sr_cmd_env env = {q->op, q->app, SR_ACTOR_APP, NULL, q->source};
    q->code = sr_csv_import(j->a->eng, &env, q->csv, q->len, q->reason, app_may, q, q->msg, sizeof q->msg, &q->detail,
                            &q->answer);
}

static void capjob_after(sr_apjob *j, h2o_req_t *req)
{
    capjob *q = (capjob *)j;
    if (q->code) sr_http_result(req, 0, q->code, q->msg, q->detail);
    else sr_http_jsonv(req, 201, q->answer);
}

static void capjob_fini(sr_apjob *j)
{
    capjob *q = (capjob *)j;
    free(q->csv);
    sr_free(q->g);
    json_decref(q->detail);
    json_decref(q->answer);
    q->csv = NULL;
    q->g = NULL;
    q->detail = q->answer = NULL;
}

void sr_apif_corrections(const sr_route_call *c)
{
    const sr_ap_token *t = c->caller;
    capjob *q = sr_apif_job_new(c->req, sizeof *q, capjob_run);
    if (!q) return;
    q->j.after = capjob_after;
    q->j.fini = capjob_fini;
    snprintf(q->op, sizeof q->op, "%s", t->op);
    snprintf(q->app, sizeof q->app, "%s", t->app);
    sr_login_addr_req(c->req, q->source);
    if (!sr_http_query(c->req, "reason", q->reason, sizeof q->reason)) q->reason[0] = 0;
    if (!(q->csv = sr_http_body_text(c->req, &q->len))) return;
    sr_apif_job_submit(c->binding, t->op, &q->j, q->len);
}

/* ---- the Admin API's route ---------------------------------------------------- */

typedef struct ictx {
    char op[72];
    char reason[SR_CORR_REASON_MAX + 8];
    char *csv;
    size_t len;
} ictx;

static void ictx_free(void *v)
{
    ictx *x = v;
    free(x->csv);
    free(x);
}

static void import_work(sr_admin_work *w, void *v)
{
    ictx *x = v;
    sr_cmd_env env = sr_admin_work_env(w, x->op);
    w->code = sr_csv_import(w->eng, &env, x->csv, x->len, x->reason, NULL, NULL, w->msg, sizeof w->msg, &w->detail,
                            &w->answer);
    w->status = 201;
}

/* POST /admin/v1/operators/{operatorId}/corrections?reason=...: the body a
 * corrected CSV (docs/csv.md); data.correct on the operator (the dispatcher) */
static void corrections_import(const sr_route_call *c)
{
    ictx *x = calloc(1, sizeof *x);
    if (!x) return sr_http_result(c->req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    snprintf(x->op, sizeof x->op, "%s", sr_route_param(c, "operatorId"));
    if (!sr_http_query(c->req, "reason", x->reason, sizeof x->reason)) x->reason[0] = 0;
    if (!(x->csv = sr_http_body_text(c->req, &x->len))) return ictx_free(x);
    sr_admin_run(c, import_work, x, ictx_free);
}

#define A(act) (1 + SR_ACT_##act)
const sr_route sr_admin_data_routes[] = {
    {"POST", "/admin/v1/operators/{operatorId}/corrections", corrections_import, SR_CALLER_ADMIN, SR_BODY_HTTP_MAX,
     A(DATA_CORRECT), SR_FWD_OPERATOR},
};
const size_t sr_admin_data_nroutes = sizeof sr_admin_data_routes / sizeof sr_admin_data_routes[0];
