/*
 * api/apif_store.c -- AP-IF documents and files (interface.md rows 11-16 and
 * the (ext) reads).
 *
 * DOCUMENTS  JSON objects in collections per operator; revisions assigned by
 *            the engine's writer; If-Match is checked in the writer (the
 *            command carries the expected revision), so two racing updates
 *            cannot both win (E3002).
 * FILES      bytes in the blob store (content-addressed, storage/blobs.c;
 *            with a keyring a version 2 blob sealed by the operator's data
 *            key, sr_engine_file_key, its id in FilePut.key_id and every
 *            read opened with it; a destroyed key answers 404 E3001),
 *            metadata as FilePut events. h2o 2.2
 *            hands a handler the whole request body, so one request holds at
 *            most [http] max_body bytes; a larger file is uploaded in parts,
 *            each a PUT with `Content-Range: bytes FIRST-LAST/TOTAL`, in
 *            order (202 until the last part, then 201). The parts stream into
 *            one blob writer on the worker queue (api/workq.h: disk and fsync
 *            never block the loop; a part's bytes count against its
 *            operator's work_bytes_per_operator); memory is bounded by one
 *            part per upload in flight. Unfinished uploads are bounded per
 *            app, per operator and overall ([http] uploads_per_app,
 *            uploads_per_operator, uploads_max: 429 E9002 with Retry-After
 *            above them), so one app cannot take every slot; one idle for
 *            [http] upload_idle_ms is dropped. Downloads stream from the
 *            blob reader (256 KiB at a time, verified chunk by chunk); the
 *            first 256 KiB are read and verified before the headers, so a
 *            damaged blob answers 500 E9001 (a blob that small is checked in
 *            full, SHA-256 included); damage found later closes the
 *            connection short of the Content-Length.
 * OFF THE LOOP  document queries and reads, a document's JSON check when it
 *            is larger than parse_inline_max, file lists: jobs on the worker
 *            queue that write the answer's bytes there. A query's page is
 *            bounded by limit, [http] answer_max_bytes and doc_scan_max.
 *
 * WHO MAY (R-PO-2, docs/admin.md "Documents and files"): a document or a
 *            file belongs to the app that created it (the writer records
 *            the owner). Another app of the operator reads it only with a
 *            read grant on its collection or on a prefix of its path, and
 *            changes or deletes it only with a write grant (403 E2003
 *            otherwise); a query or a list shows only what the app may
 *            read. Grants are read from the index at each request
 *            (store_access), so a change counts at the next request; the
 *            writer checks a write again (a race is 409 E3002). An
 *            unfinished upload belongs to the session (token) that started
 *            it: another session, even of the same app, can neither add a
 *            part to it nor finish it (403 E2003) nor replace it (409 E3002)
 *            until it ends or idles out.
 *
 * Paths: segments of [A-Za-z0-9._-] separated by '/', no "." or ".."
 * segment, at most 512 bytes: nothing else reaches the store.
 */
#include "api/ryw.h"
#include "api/apif_int.h"
#include "api/cluster.h"
#include "api/cluster_blob.h"
#include "api/gwif_json.h"
#include "api/httpu.h"
#include "api/loginguard.h"
#include "api/loopq.h"
#include "api/slog.h"
#include "codecs/ids.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "storage/blobs.h"
#include "storage/crypto.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

enum { PATH_MAX_LEN = 512, READ_STEP = 256 * 1024 };

typedef struct upload {
    char op[72], path[PATH_MAX_LEN + 1], ctype[128], app[72];
    uint8_t session[32]; /* the hash of the token of the session that started it */
    sr_blob_writer *w;
    uint32_t kid; /* the data key sealing it (sr_engine_file_key; 0: a version 1 blob) */
    uint64_t received, total;
    uint64_t last_used;
    int busy;
    struct upload *next;
} upload;

typedef struct sr_apif_store {
    upload *ups;
    size_t nups;
    sr_loopq doneq; /* engine completions */
} store;

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- engine submissions answered on the loop --------------------------- */

typedef struct pjob {
    sr_http_ctx h;
    sr_apif *a;
    int what; /* 0 doc put (201/200), 1 doc delete, 2 file put, 3 file delete */
    int created;
    char id[80];
    char path[PATH_MAX_LEN + 1];
    uint64_t size;
    uint8_t sha[32];
    sr_result res;
    sr_loopq_item li;
    sr_apif_then_fn then; /* sr_apif_submit_then's: answers itself */
    _Alignas(max_align_t) char arg[SR_APIF_THEN_ARG];
} pjob;

static void on_engine(void *ctx, const sr_result *r)
{
    pjob *j = ctx;
    j->res = *r;
    sr_loopq_push(&j->a->store->doneq, &j->li);
}

static void answer(pjob *j)
{
    h2o_req_t *req = j->h.req;
    if (!req) return;
    const sr_result *r = &j->res;
    if (r->rc == SR_ECONFLICT) return sr_http_result(req, 0, SR_WIRE_CONFLICT, r->err.msg, NULL);
    if (r->rc == SR_ENOTFOUND) return sr_http_result(req, 0, SR_WIRE_UNKNOWN, r->err.msg, NULL);
    if (r->rc == SR_EINVAL) return sr_http_result(req, 0, SR_WIRE_PARAM, r->err.msg, NULL);
    /* the server's state (queue full, stopped writes, no space): E9002, retry */
    if (r->rc) return sr_http_result(req, 0, sr_wire_of_rc(r->rc), r->err.msg[0] ? r->err.msg : sr_wire_msg_of_rc(r->rc), NULL);
    json_t *o = NULL;
    char hex[65];
    sr_ryw_answer_header(req, r); /* Suiro-Seq (api/ryw.h) */
    switch (j->what) {
    case 0:
        o = j->created ? json_pack("{s:s,s:I}", "documentId", j->id, "revision", (json_int_t)r->revision)
                       : json_pack("{s:I}", "revision", (json_int_t)r->revision);
        sr_http_jsonv(req, j->created ? 201 : 200, o);
        break;
    case 2:
        sr_hex(j->sha, 32, hex);
        o = json_pack("{s:s,s:I,s:s}", "path", j->path, "size", (json_int_t)j->size, "sha256", hex);
        sr_http_jsonv(req, 201, o);
        break;
    default: sr_http_no_content(req); break;
    }
    json_decref(o);
}

static void on_done(void *ctx, sr_loopq_item *it)
{
    (void)ctx;
    pjob *j = SR_CONTAINER(it, pjob, li);
    if (j->then) j->then(j->a, j->h.req, &j->res, j->arg);
    else answer(j);
    sr_http_ctx_unref(&j->h);
}

int sr_apif_submit_then(sr_apif *a, h2o_req_t *req, sr_buf *b, sr_apif_then_fn fn, const void *arg, size_t n)
{
    pjob *j = n <= SR_APIF_THEN_ARG ? sr_http_ctx_new(req, sizeof *j) : NULL;
    int rc = j ? SR_OK : SR_ENOMEM;
    if (j) {
        j->a = a;
        j->then = fn;
        memcpy(j->arg, arg, n);
        sr_slice sl = {b->data, b->len};
        j->h.refs++;
        if ((rc = sr_cluster_submit(a->eng, &sl, 1, on_engine, j))) j->h.refs--;
    }
    sr_buf_release(b);
    return rc;
}

/* Submit the one event a builder (sr_cmd_*, rc its return) appended to b; b
 * is released. */
static void submit_ev(sr_apif *a, h2o_req_t *req, int rc, sr_buf *b, pjob *j)
{
    if (!rc) {
        sr_slice sl = {b->data, b->len};
        j->h.refs++;
        rc = sr_cluster_submit(a->eng, &sl, 1, on_engine, j); /* answered once durable (and in NATS) */
        if (rc) j->h.refs--;
    }
    sr_buf_release(b);
    if (rc && req) sr_http_result(req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
}

/* The access (SR_STORE_READ | SR_STORE_WRITE) the token's app has on a
 * document of collection name, or a file at path name (kind), whose owner
 * is (okind, owner): all for its owner, else what its grants give now;
 * -1 if the grants cannot be read. */
static int store_access(sr_apif *a, const sr_ap_token *t, sr_store_kind kind, const char *name, int okind,
                        const char *owner)
{
    if (sr_store_is_owner((sr_actor_kind)okind, owner, SR_ACTOR_APP, t->app)) return SR_STORE_READ | SR_STORE_WRITE;
    sr_store_grant *g;
    size_t n;
    if (sr_store_grants_load(a->eng, t->op, t->app, &g, &n)) return -1;
    int acc = sr_store_grants_allow(g, n, kind, name);
    sr_free(g);
    return acc;
}

/* The refusal's message (403 E2003): what the app lacks. */
__attribute__((noinline)) static void store_deny(char *m, size_t ml, const char *what, const char *app, int need)
{
    int n = snprintf(m, ml, "%s: app %s neither owns it nor holds a %s grant on it", what, app,
                     need == SR_STORE_READ ? "read" : "write");
    (void)n;
}

/* 0 when the access includes need; else answered (403 E2003 naming what is
 * missing, or 500) and -1. */
static int store_allowed(h2o_req_t *req, int acc, int need, const char *what, const char *app)
{
    if (acc >= 0 && (acc & need)) return 0;
    char m[700];
    if (acc < 0) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "cannot read the app's grants", NULL), -1;
    store_deny(m, sizeof m, what, app, need);
    sr_http_result(req, 0, SR_WIRE_FORBIDDEN, m, NULL);
    return -1;
}

int sr_apif_store_open(sr_apif *a)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return SR_ENOMEM;
    sr_loopq_init(&s->doneq, a->loop, on_done, s);
    a->store = s;
    return SR_OK;
}

void sr_apif_store_free(sr_apif *a)
{
    store *s = a->store;
    if (!s) return;
    sr_loopq_drain(&s->doneq);
    while (s->ups) {
        upload *u = s->ups;
        s->ups = u->next;
        sr_blob_writer_abort(u->w);
        free(u);
    }
    sr_loopq_destroy(&s->doneq);
    /* the async handle was closed by the server's loop walk */
    free(s);
}

/* ---- documents ------------------------------------------------------------ */

static uint64_t if_match(h2o_req_t *req, int *bad)
{
    *bad = 0;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_MATCH, -1);
    if (i < 0) return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    char b[32];
    size_t n = 0;
    for (size_t k = 0; k < v.len && n + 1 < sizeof b; k++)
        if (v.base[k] != '"' && v.base[k] != ' ') b[n++] = v.base[k];
    b[n] = 0;
    char *end;
    unsigned long long r = strtoull(b, &end, 10);
    if (!n || *end || r == 0) *bad = 1;
    return r;
}

/* 0 if app may change the document coll/id (it does not exist, or the app
 * owns it, or holds a write grant on coll); else answered, -1. */
static int doc_may_write(sr_apif *a, h2o_req_t *req, const char *op, const char *app, const char *coll,
                         const char *id)
{
    uint64_t rev;
    int okind = 0;
    char owner[256];
    int rc = sr_engine_doc_get(a->eng, op, coll, id, &rev, NULL, &okind, owner);
    if (rc == SR_ENOTFOUND) return 0;
    if (rc) return sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL), -1;
    sr_ap_token t;
    memset(&t, 0, sizeof t);
    snprintf(t.op, sizeof t.op, "%s", op);
    snprintf(t.app, sizeof t.app, "%s", app);
    char what[200];
    snprintf(what, sizeof what, "document %s/%s", coll, id);
    return store_allowed(req, store_access(a, &t, SR_STORE_DOCUMENTS, coll, okind, owner), SR_STORE_WRITE, what, app);
}

/* Submit a document checked to be a JSON object (op and app copied: the
 * token may be gone when a worker checked it). */
static void doc_submit(sr_apif *a, h2o_req_t *req, const char *op, const char *app, const char *coll, const char *id,
                       uint64_t rev, const void *json, size_t len)
{
    if (a->closing) return sr_apif_busy_answer(req, "the server is stopping");
    if (id && doc_may_write(a, req, op, app, coll, id)) return;
    pjob *j = sr_http_ctx_new(req, sizeof *j);
    if (!j) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    j->a = a;
    j->what = 0;
    j->created = id == NULL;
    char gen[24];
    if (!id) {
        uint8_t r[8];
        if (sr_random(r, sizeof r) != SR_OK) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "no randomness", NULL);
        gen[0] = 'D';
        sr_hex(r, 8, gen + 1);
        id = gen;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    sr_buf b;
    sr_buf_init(&b);
    char src[64]; /* from where: the write's event, its WriteAudit (issue #18) */
    sr_login_addr_req(req, src);
    sr_cmd_env env = {op, app, SR_ACTOR_APP, NULL, src};
    submit_ev(a, req, sr_cmd_doc_put(&env, coll, j->id, rev, json, len, &b), &b, j);
}

/* SR_WIRE_OK if the bytes are one JSON object, else the refusal's code
 * (message in m) */
static sr_wire doc_check(const void *body, size_t len, char *m, size_t ml)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(m, ml, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return SR_WIRE_JSON;
    }
    int is_obj = json_is_object(doc);
    json_decref(doc);
    if (!is_obj) {
        snprintf(m, ml, "a document is a JSON object");
        return SR_WIRE_PARAM;
    }
    return SR_WIRE_OK;
}

/* a document larger than [server] parse_inline_max: its JSON is checked on
 * the worker queue (a copy of the body), then submitted from the loop */
typedef struct dput {
    sr_apjob j; /* first */
    char op[72], app[72], coll[80], id[80];
    int has_id;
    uint64_t rev;
    uint8_t *body;
    size_t len;
} dput;

static void dput_fini(sr_apjob *j) { free(((dput *)j)->body); }

static void dput_run(sr_apjob *j)
{
    dput *d = (dput *)j;
    j->code = doc_check(d->body, d->len, j->msg, sizeof j->msg);
}

static void dput_after(sr_apjob *j, h2o_req_t *req)
{
    dput *d = (dput *)j;
    doc_submit(j->a, req, d->op, d->app, d->coll, d->has_id ? d->id : NULL, d->rev, d->body, d->len);
}

static void doc_put(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *coll, const char *id, uint64_t rev)
{
    if (req->entity.len > a->lim.parse_inline_max) {
        dput *d = sr_apif_job_new(req, sizeof *d, dput_run);
        if (!d) return;
        d->j.fini = dput_fini;
        d->j.after = dput_after;
        if (!(d->body = malloc(req->entity.len))) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        memcpy(d->body, req->entity.base, req->entity.len);
        d->len = req->entity.len;
        snprintf(d->op, sizeof d->op, "%s", t->op);
        snprintf(d->app, sizeof d->app, "%s", t->app);
        snprintf(d->coll, sizeof d->coll, "%s", coll);
        d->has_id = id != NULL;
        if (id) snprintf(d->id, sizeof d->id, "%s", id);
        d->rev = rev;
        return sr_apif_job_submit(a, t->op, &d->j, d->len);
    }
    char m[200];
    sr_wire code = doc_check(req->entity.base, req->entity.len, m, sizeof m);
    if (code) return sr_http_result(req, 0, code, m, NULL);
    doc_submit(a, req, t->op, t->app, coll, id, rev, req->entity.base, req->entity.len);
}

/* one document (up to 1 MiB) is read on the worker queue */
typedef struct dget {
    sr_apjob j; /* first */
    sr_ap_token t; /* op and app (no grants: read now) */
    char coll[80], id[80];
    uint64_t rev;
} dget;

static void dget_run(sr_apjob *j)
{
    dget *d = (dget *)j;
    int okind = 0;
    char owner[256];
    int rc = sr_engine_doc_get(j->a->eng, d->t.op, d->coll, d->id, &d->rev, &j->out, &okind, owner);
    if (rc == SR_ENOTFOUND) {
        j->code = SR_WIRE_UNKNOWN;
        snprintf(j->msg, sizeof j->msg, "unknown document");
    } else if (rc)
        j->rc = rc;
    else {
        int acc = store_access(j->a, &d->t, SR_STORE_DOCUMENTS, d->coll, okind, owner);
        if (acc < 0) j->rc = SR_EIO;
        else if (!(acc & SR_STORE_READ)) {
            char what[200];
            j->code = SR_WIRE_FORBIDDEN;
            snprintf(what, sizeof what, "document %s/%s", d->coll, d->id);
            store_deny(j->msg, sizeof j->msg, what, d->t.app, SR_STORE_READ);
        }
    }
}

static void dget_after(sr_apjob *j, h2o_req_t *req)
{
    char etag[32];
    int n = snprintf(etag, sizeof etag, "\"%" PRIu64 "\"", ((dget *)j)->rev);
    char *e = h2o_mem_alloc_pool(&req->pool, (size_t)n);
    memcpy(e, etag, (size_t)n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, e, (size_t)n);
    sr_http_json_buf(req, 200, &j->out);
}

static void doc_get(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *coll, const char *id)
{
    dget *d = sr_apif_job_new(req, sizeof *d, dget_run);
    if (!d) return;
    d->j.after = dget_after;
    snprintf(d->t.op, sizeof d->t.op, "%s", t->op);
    snprintf(d->t.app, sizeof d->t.app, "%s", t->app);
    snprintf(d->coll, sizeof d->coll, "%s", coll);
    snprintf(d->id, sizeof d->id, "%s", id);
    sr_apif_job_submit(a, t->op, &d->j, 0);
}

/* A query of a collection runs on the worker queue (it may examine every
 * document of the collection and answer megabytes): bounded per call by
 * limit (documents), [http] answer_max_bytes (the documents' JSON) and
 * [http] doc_scan_max (documents examined); cut by any of them, nextCursor
 * resumes after the last document examined. */
typedef struct dq {
    sr_apjob j; /* first */
    sr_ap_token t; /* op and app (no grants: read now) */
    char coll[80], cursor[300];
    char *field, *jtext;
    sr_doc_bounds bounds;
} dq;

static void dq_fini(sr_apjob *j)
{
    dq *q = (dq *)j;
    free(q->field);
    free(q->jtext);
}

static void dq_run(sr_apjob *j)
{
    dq *q = (dq *)j;
    sr_rec out = SR_REC_INIT;
    int more = 0;
    char next[260];
    /* without a read grant on the collection, only the app's own documents */
    int acc = store_access(j->a, &q->t, SR_STORE_DOCUMENTS, q->coll, 0, "");
    if (acc < 0) {
        j->rc = SR_EIO;
        return;
    }
    q->bounds.owner_app = acc & SR_STORE_READ ? NULL : q->t.app;
    int rc = sr_list_docs(j->a->eng, q->t.op, q->coll, q->field, q->jtext, &q->bounds, q->cursor, &out, &more, next);
    if (rc) {
        sr_rec_close(&out);
        j->rc = rc;
        return;
    }
    sr_buf *w = &j->out;
    rc = sr_buf_append(w, "{\"items\":[", 10);
    sr_doc d;
    for (size_t i = 0; !rc && sr_rec_next_doc(&out, &d) == 1; i++) {
        json_error_t je;
        json_t *doc = json_loadb(d.json.data, d.json.len, 0, &je);
        json_t *o = json_pack("{s:s,s:I,s:o}", "documentId", d.id, "revision", (json_int_t)d.revision, "document",
                              doc ? doc : json_null());
        if (i) rc = sr_buf_append(w, ",", 1);
        if (!rc) rc = o ? sr_json_write(w, o) : SR_ENOMEM;
        json_decref(o);
    }
    if (!rc) rc = sr_buf_append(w, "],\"nextCursor\":", 15);
    if (!rc) rc = more && next[0] ? sr_json_put_string(w, next, strlen(next)) : sr_buf_append(w, "null", 4);
    if (!rc) rc = sr_buf_append(w, "}", 1);
    j->rc = rc;
    sr_rec_close(&out);
}

static void doc_query(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *coll)
{
    /* the one query parameter other than limit/cursor is the field */
    char field[128] = "", value[1024] = "", v[128];
    const char *fp = NULL;
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            if (!amp) amp = end;
            const char *eq = memchr(q, '=', (size_t)(amp - q));
            size_t kl = (size_t)((eq ? eq : amp) - q);
            if (!(kl == 5 && !memcmp(q, "limit", 5)) && !(kl == 6 && !memcmp(q, "cursor", 6)) && kl &&
                kl < sizeof field) {
                if (fp) return sr_http_result(req, 0, SR_WIRE_PARAM, "query by one field (field=value)", NULL);
                memcpy(field, q, kl);
                field[kl] = 0;
                fp = field;
            }
            q = amp + 1;
        }
    }
    if (fp && !sr_http_query(req, field, value, sizeof value)) value[0] = 0;
    size_t limit = 100;
    if (sr_http_query(req, "limit", v, sizeof v)) {
        char *end;
        long l = strtol(v, &end, 10);
        if (*end || l < 1 || l > 1000) return sr_http_result(req, 0, SR_WIRE_PARAM, "limit: 1..1000", NULL);
        limit = (size_t)l;
    }
    char cursor[300] = "";
    if (sr_http_query(req, "cursor", cursor, sizeof cursor) && !sr_id_str_ok(cursor))
        return sr_http_result(req, 0, SR_WIRE_PARAM, "cursor: not one we made", NULL);
    /* the value as JSON text: numbers, true/false/null and "quoted" as they
     * are; anything else is a string */
    char *jtext = NULL;
    if (fp) {
        json_error_t je;
        json_t *jv = json_loads(value, JSON_DECODE_ANY, &je);
        if (!jv || json_is_object(jv) || json_is_array(jv)) {
            json_decref(jv);
            jv = json_string(value);
        }
        jtext = jv ? json_dumps(jv, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(jv);
        if (!jtext) return sr_http_result(req, 0, SR_WIRE_PARAM, "the field's value is not valid UTF-8", NULL);
    }
    dq *q = sr_apif_job_new(req, sizeof *q, dq_run);
    if (!q) {
        free(jtext);
        return;
    }
    q->j.fini = dq_fini;
    q->jtext = jtext;
    if (fp && !(q->field = strdup(fp))) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    snprintf(q->t.op, sizeof q->t.op, "%s", t->op);
    snprintf(q->t.app, sizeof q->t.app, "%s", t->app);
    snprintf(q->coll, sizeof q->coll, "%s", coll);
    snprintf(q->cursor, sizeof q->cursor, "%s", cursor);
    q->bounds.limit = limit;
    q->bounds.max_bytes = a->lim.answer_max_bytes;
    q->bounds.max_scan = a->lim.doc_scan_max;
    sr_apif_job_submit(a, t->op, &q->j, 0);
}

/* A documents route's collection (and documentId when has_id) and If-Match,
 * checked: 0, or -1 when answered. */
static int doc_target(const sr_route_call *c, int has_id, char coll[80], char id[80], uint64_t *rev)
{
    h2o_req_t *req = c->req;
    const char *cp = sr_route_param(c, "collection");
    if (!cp || strlen(cp) >= 80 || !sr_id_str_ok(cp)) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "collection: [A-Za-z0-9._-]{1,64}", NULL);
        return -1;
    }
    snprintf(coll, 80, "%s", cp);
    if (has_id) {
        const char *ip = sr_route_param(c, "documentId");
        if (!ip || strlen(ip) >= 80 || !sr_id_str_ok(ip)) {
            sr_http_result(req, 0, SR_WIRE_PARAM, "documentId: [A-Za-z0-9._-]{1,64}", NULL);
            return -1;
        }
        snprintf(id, 80, "%s", ip);
    }
    int bad;
    *rev = if_match(req, &bad);
    if (bad) {
        sr_http_result(req, 0, SR_WIRE_PARAM, "If-Match: a revision number", NULL);
        return -1;
    }
    return 0;
}

void sr_apif_doc_create(const sr_route_call *c)
{
    char coll[80], id[80];
    uint64_t rev;
    if (!doc_target(c, 0, coll, id, &rev)) doc_put(c->binding, c->req, c->caller, coll, NULL, 0);
}

void sr_apif_doc_query(const sr_route_call *c)
{
    char coll[80], id[80];
    uint64_t rev;
    if (!doc_target(c, 0, coll, id, &rev)) doc_query(c->binding, c->req, c->caller, coll);
}

void sr_apif_doc_put(const sr_route_call *c)
{
    char coll[80], id[80];
    uint64_t rev;
    if (!doc_target(c, 1, coll, id, &rev)) doc_put(c->binding, c->req, c->caller, coll, id, rev);
}

void sr_apif_doc_get(const sr_route_call *c)
{
    char coll[80], id[80];
    uint64_t rev;
    if (!doc_target(c, 1, coll, id, &rev)) doc_get(c->binding, c->req, c->caller, coll, id);
}

void sr_apif_doc_delete(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    h2o_req_t *req = c->req;
    const sr_ap_token *t = c->caller;
    char coll[80], id[80];
    uint64_t rev;
    if (doc_target(c, 1, coll, id, &rev)) return;
    if (doc_may_write(a, req, t->op, t->app, coll, id)) return;
    pjob *j = sr_http_ctx_new(req, sizeof *j);
    if (!j) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    j->a = a;
    j->what = 1;
    sr_buf b;
    sr_buf_init(&b);
    char src[64];
    sr_login_addr_req(req, src);
    sr_cmd_env env = {t->op, t->app, SR_ACTOR_APP, NULL, src};
    submit_ev(a, req, sr_cmd_doc_delete(&env, coll, id, rev, &b), &b, j);
}

/* ---- files ------------------------------------------------------------------ */

static int path_ok(const char *p) { return sr_path_ok(p, strlen(p)); }

static upload *up_find(store *s, const char *op, const char *path)
{
    for (upload *u = s->ups; u; u = u->next)
        if (!strcmp(u->path, path) && !strcmp(u->op, op)) return u;
    return NULL;
}

static void up_drop(store *s, upload *u)
{
    for (upload **x = &s->ups; *x; x = &(*x)->next)
        if (*x == u) {
            *x = u->next;
            break;
        }
    s->nups--;
    sr_blob_writer_abort(u->w);
    free(u);
}

static void up_expire(store *s, uint64_t idle_ms)
{
    uint64_t now = uv_hrtime() / 1000000;
    for (upload *u = s->ups, *n; u; u = n) {
        n = u->next;
        if (!u->busy && now - u->last_used > idle_ms) {
            sr_slog(SR_LOG_INFO, "upload dropped (idle)", "op=%s path=%s", u->op, sr_slog_q(u->path));
            up_drop(s, u);
        }
    }
}

/* Unfinished uploads of op (and of op's app): the upload slots are shared by
 * every operator, so each operator and each app has its own share
 * ([http] uploads_per_operator, uploads_per_app) of the global
 * uploads_max, and one cannot lock the others out. NULL if a slot is free,
 * else the refusal. */
static const char *up_quota(const sr_apif *a, const store *s, const char *op, const char *app, char *m, size_t ml)
{
    size_t nop = 0, napp = 0;
    for (const upload *u = s->ups; u; u = u->next)
        if (!strcmp(u->op, op)) {
            nop++;
            if (!strcmp(u->app, app)) napp++;
        }
    if (napp >= a->lim.uploads_per_app)
        snprintf(m, ml, "busy: this app has %zu unfinished uploads ([http] uploads_per_app); finish one or wait",
                 napp);
    else if (nop >= a->lim.uploads_per_op)
        snprintf(m, ml,
                 "busy: this operator has %zu unfinished uploads ([http] uploads_per_operator); finish one or wait",
                 nop);
    else if (s->nups >= a->lim.uploads_max)
        snprintf(m, ml, "busy: too many unfinished uploads ([http] uploads_max); retry later");
    else return NULL;
    return m;
}

void sr_apif_store_quiesce(sr_apif *a)
{
    store *s = a->store;
    for (upload *u = s ? s->ups : NULL, *n; u; u = n) {
        n = u->next;
        if (!u->busy) up_drop(s, u);
    }
}

/* one part on the worker queue (its bytes count against the operator's
 * [server] work_bytes_per_operator while it waits and runs) */
typedef struct partjob {
    sr_work w;
    pjob *j; /* the answer (what = 2) */
    sr_apif *a;
    upload *u;
    uint8_t *data;
    size_t len;
    int last;
    int rc;
    char op[72], app[72];
} partjob;

static void part_work(sr_work *w)
{
    partjob *p = SR_CONTAINER(w, partjob, w);
    upload *u = p->u;
    int rc = SR_OK;
    if (!u->w) {
        sr_cmd_env env = {p->op, p->app, SR_ACTOR_APP, NULL, NULL};
        rc = sr_engine_file_key(p->a->eng, &env, &u->kid);
        if (!rc) rc = sr_blob_writer_begin_keyed(sr_engine_blobs(p->a->eng), u->kid, &u->w);
    }
    if (!rc && p->len) rc = sr_blob_writer_write(u->w, p->data, p->len);
    if (!rc && p->last) {
        rc = sr_blob_writer_commit(u->w, p->j->sha, &p->j->size);
        u->w = NULL; /* consumed */
    }
    p->rc = rc;
}

static void part_after(sr_work *w, int status)
{
    partjob *p = SR_CONTAINER(w, partjob, w);
    store *s = p->a->store;
    upload *u = p->u;
    pjob *j = p->j;
    h2o_req_t *req = j->h.req;
    p->a->busy--;
    u->busy = 0;
    u->last_used = uv_hrtime() / 1000000;
    int rc = status ? status : p->rc;
    if (!rc && p->a->closing) rc = SR_ECLOSED;
    if (rc) {
        sr_slog(SR_LOG_WARN, "file upload failed", "op=%s path=%s error=%s", u->op, sr_slog_q(u->path), sr_err_name(rc));
        if (req) sr_http_result(req, 0, sr_wire_of_rc(rc), sr_wire_msg_of_rc(rc), NULL);
        up_drop(s, u);
    } else if (!p->last) {
        u->received += p->len;
        if (req) {
            json_t *o = json_pack("{s:s,s:I}", "path", u->path, "received", (json_int_t)u->received);
            sr_http_jsonv(req, 202, o);
            json_decref(o);
        }
    } else {
        /* the bytes are durable: now the metadata */
        sr_file_meta fm = {.path = u->path,
                           .sha256 = {j->sha, 32},
                           .size = j->size,
                           .content_type = u->ctype,
                           .owner = u->app,
                           .updated_ms = wall_ms(),
                           .key_id = u->kid};
        snprintf(j->path, sizeof j->path, "%s", u->path);
        sr_buf b;
        sr_buf_init(&b);
        char src[64] = "";
        if (req) sr_login_addr_req(req, src);
        sr_cmd_env env = {p->op, p->app, SR_ACTOR_APP, NULL, src};
        submit_ev(p->a, req, sr_cmd_file_put(&env, &fm, &b), &b, j);
        up_drop(s, u);
    }
    free(p->data);
    sr_http_ctx_unref(&j->h);
    free(p);
}

/* "bytes FIRST-LAST/TOTAL" */
static int content_range(h2o_req_t *req, uint64_t *first, uint64_t *last, uint64_t *total, int *present)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("content-range"), -1);
    *present = i >= 0;
    if (i < 0) return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    char b[96];
    if (v.len >= sizeof b) return -1;
    memcpy(b, v.base, v.len);
    b[v.len] = 0;
    unsigned long long f, l, t;
    char tail;
    if (sscanf(b, "bytes %llu-%llu/%llu%c", &f, &l, &t, &tail) != 3 || l < f || l >= t) return -1;
    *first = f;
    *last = l;
    *total = t;
    return 0;
}

/* 0 if the token's app may write path: no file there, or it owns it or
 * holds a write grant on a prefix of it (read now); else answered, -1. */
static int file_may_write(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *path)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta fm;
    int rc = sr_read_file(a->eng, t->op, path, &m, &fm);
    int acc = rc == SR_ENOTFOUND ? SR_STORE_WRITE : rc ? -1 : store_access(a, t, SR_STORE_FILES, path, fm.owner_kind, fm.owner);
    sr_rec_close(&m);
    char what[PATH_MAX_LEN + 8];
    snprintf(what, sizeof what, "file %s", path);
    return store_allowed(req, acc, SR_STORE_WRITE, what, t->app);
}

static void file_put(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *path)
{
    store *s = a->store;
    uint64_t first = 0, last = 0, total = 0;
    int ranged;
    if (content_range(req, &first, &last, &total, &ranged))
        return sr_http_result(req, 0, SR_WIRE_PARAM, "Content-Range: bytes FIRST-LAST/TOTAL", NULL);
    if (ranged && last - first + 1 != req->entity.len)
        return sr_http_result(req, 0, SR_WIRE_PARAM, "Content-Range does not match the body's length", NULL);
    up_expire(s, a->lim.upload_idle_ms);
    upload *u = up_find(s, t->op, path);
    const uint8_t *session = sr_tokens_hash_of(t, NULL);
    int mine = u && !memcmp(u->session, session, 32);
    if (u && !mine && ranged && first != 0)
        return sr_http_result(req, 0, SR_WIRE_FORBIDDEN,
                              "the unfinished upload of this path belongs to another session", NULL);
    if (u && !mine)
        return sr_http_result(req, 0, SR_WIRE_CONFLICT,
                              "another session is uploading this path; retry when it has finished or idled out", NULL);
    if (u && u->busy) return sr_http_result(req, 0, SR_WIRE_CONFLICT, "a part of this upload is being written", NULL);
    if (!ranged || first == 0) {
        if (file_may_write(a, req, t, path)) return;
        if (u) up_drop(s, u); /* a new upload of the path by its session replaces its unfinished one */
        char qm[160];
        const char *why = up_quota(a, s, t->op, t->app, qm, sizeof qm);
        if (why) {
            sr_slog(SR_LOG_WARN, "upload refused (quota)", "op=%s app=%s detail=%s", t->op, t->app, sr_slog_q(why));
            return sr_apif_busy_answer(req, why);
        }
        u = calloc(1, sizeof *u);
        if (!u) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
        snprintf(u->op, sizeof u->op, "%s", t->op);
        snprintf(u->app, sizeof u->app, "%s", t->app);
        memcpy(u->session, session, 32);
        snprintf(u->path, sizeof u->path, "%s", path);
        ssize_t ci = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
        if (ci >= 0) {
            h2o_iovec_t cv = req->headers.entries[ci].value;
            size_t cl = cv.len < sizeof u->ctype - 1 ? cv.len : sizeof u->ctype - 1;
            memcpy(u->ctype, cv.base, cl);
        } else
            snprintf(u->ctype, sizeof u->ctype, "application/octet-stream");
        u->total = ranged ? total : req->entity.len;
        u->next = s->ups;
        s->ups = u;
        s->nups++;
    } else if (!u) {
        return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "no upload of this path is in progress (start with bytes 0-...)", NULL);
    } else if (first != u->received || total != u->total) {
        char m[160];
        snprintf(m, sizeof m, "expected bytes %" PRIu64 "-.../%" PRIu64, u->received, u->total);
        return sr_http_result(req, 0, SR_WIRE_CONFLICT, m, NULL);
    }
    int fresh = !ranged || first == 0; /* u was made for this request */
    partjob *p = calloc(1, sizeof *p);
    pjob *j = sr_http_ctx_new(req, sizeof *j);
    uint8_t *copy = req->entity.len ? malloc(req->entity.len) : NULL;
    if (!p || !j || (req->entity.len && !copy)) {
        free(p);
        free(copy);
        up_drop(s, u);
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    }
    if (req->entity.len) memcpy(copy, req->entity.base, req->entity.len);
    j->a = a;
    j->what = 2;
    j->h.refs++; /* the part job's */
    p->w.work = part_work;
    p->w.done = part_after;
    p->j = j;
    p->a = a;
    p->u = u;
    p->data = copy;
    p->len = req->entity.len;
    p->last = !ranged || last + 1 == total;
    snprintf(p->op, sizeof p->op, "%s", t->op);
    snprintf(p->app, sizeof p->app, "%s", t->app);
    u->busy = 1;
    u->last_used = uv_hrtime() / 1000000;
    a->busy++;
    int rc = sr_workq_submit(a->wq, t->op, p->len, 0, &p->w);
    if (rc) {
        a->busy--;
        u->busy = 0;
        j->h.refs--;
        free(copy);
        free(p);
        if (fresh) up_drop(s, u); /* a refused later part can be sent again */
        if (rc == SR_EFULL)
            sr_apif_busy_answer(req, "busy: this operator has too many requests or bytes waiting; send the part again");
        else sr_http_result(req, 0, SR_WIRE_INTERNAL, "cannot queue the write", NULL);
    }
}

/* streaming download */
typedef struct dl {
    h2o_generator_t gen; /* first */
    sr_blob_reader *r;
    char *buf;
    int done;
    int primed;    /* buf holds the first step, read before the headers */
    int primed_rc; /* its reader result (SR_OK or SR_DONE) */
    size_t primed_len;
} dl;

/* Read up to READ_STEP verified bytes into d->buf. SR_OK (more to come),
 * SR_DONE (the blob ended and was verified in full: size and SHA-256), or
 * the reader's error. */
static int dl_fill(dl *d, size_t *fill)
{
    int rc = SR_OK;
    size_t got = 0;
    *fill = 0;
    while (*fill < READ_STEP && rc == SR_OK) {
        rc = sr_blob_reader_read(d->r, d->buf + *fill, READ_STEP - *fill, &got);
        if (rc == SR_OK) *fill += got;
    }
    return rc;
}

static void dl_close(dl *d)
{
    sr_blob_reader_close(d->r);
    d->r = NULL;
    free(d->buf);
    d->buf = NULL;
}

static void dl_dispose(void *p) { dl_close(p); }

static void dl_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    dl *d = (dl *)g;
    if (!d->r) return;
    int rc;
    size_t fill;
    if (d->primed) {
        d->primed = 0;
        rc = d->primed_rc;
        fill = d->primed_len;
    } else
        rc = dl_fill(d, &fill);
    h2o_iovec_t v = h2o_iovec_init(d->buf, fill);
    if (rc == SR_DONE) {
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    if (rc != SR_OK) {
        const sr_blob_errinfo *ei = sr_blob_reader_errinfo(d->r);
        sr_slog(SR_LOG_ERROR, "file download failed", "error=%s detail=%s", sr_err_name(rc),
                sr_slog_q(ei ? ei->msg : ""));
        /* a later chunk is damaged, after the headers went out: ERROR makes
         * h2o close the connection, so the client sees fewer bytes than the
         * Content-Length (a truncated body), never a complete-looking one;
         * the unverified bytes of the damaged chunk are never sent */
        h2o_send(req, &v, fill ? 1 : 0, H2O_SEND_STATE_ERROR);
        return;
    }
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void dl_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    dl_close((dl *)g);
}

json_t *sr_apif_file_json(const sr_file_meta *fp)
{
    char hex[65], t[32];
    sr_hex(fp->sha256.data, fp->sha256.len == 32 ? 32 : 0, hex);
    sr_rfc3339_format(fp->updated_ms, t);
    return json_pack("{s:s,s:I,s:s,s:s,s:s}", "path", fp->path, "size", (json_int_t)fp->size, "sha256", hex,
                     "contentType", fp->content_type, "updatedAt", t);
}

int sr_apif_file_meta(sr_engine *e, h2o_req_t *req, const char *op, const char *path, sr_rec *m, sr_file_meta *fm)
{
    int rc = sr_read_file(e, op, path, m, fm);
    if (rc == SR_ENOTFOUND) {
        sr_http_result(req, 0, SR_WIRE_UNKNOWN, "unknown file", NULL);
        return -1;
    }
    if (rc == SR_ECORRUPT || (!rc && fm->sha256.len != 32)) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, "file metadata does not decode", NULL);
        return -1;
    }
    if (rc) {
        sr_http_result(req, 0, SR_WIRE_INTERNAL, sr_strerror(rc), NULL);
        return -1;
    }
    return 0;
}

/* A file whose data key was destroyed (retention's erasure, docs/keys.md):
 * gone for good, as the wire map says of SR_EERASED (404 E3001). */
static void erased(h2o_req_t *req, const sr_file_meta *fp)
{
    char m[160];
    snprintf(m, sizeof m, "the file's content was erased: its data key %08x was destroyed (docs/keys.md)", fp->key_id);
    sr_http_result(req, 0, sr_wire_of_rc(SR_EERASED), m, NULL);
}

void sr_apif_file_send(sr_engine *e, h2o_req_t *req, const sr_file_meta *fp, const char *path)
{
    dl *d = h2o_mem_alloc_shared(&req->pool, sizeof *d, dl_dispose);
    memset(d, 0, sizeof *d);
    d->gen.proceed = dl_proceed;
    d->gen.stop = dl_stop;
    sr_blob_errinfo ei;
    int rc = sr_blob_reader_open_keyed(sr_engine_blobs(e), fp->sha256.data, fp->key_id, &d->r, &ei);
    if (rc || !(d->buf = malloc(READ_STEP))) {
        if (rc)
            sr_slog(rc == SR_EERASED ? SR_LOG_INFO : SR_LOG_ERROR, "file download failed", "error=%s path=%s detail=%s",
                    sr_err_name(rc), sr_slog_q(path), sr_slog_q(ei.msg));
        dl_close(d);
        if (rc == SR_EERASED) return erased(req, fp);
        /* the cluster (docs/cluster.md "Files across nodes"): a file another node
         * wrote has its record here before its bytes, which the fetcher brings
         * from the blob stream (api/cluster_blob.h): asked now, 503 until then */
        if (rc == SR_ENOTFOUND && sr_cblobs_self()) {
            char why[300], m[460];
            sr_cblobs_kick(sr_cblobs_self());
            sr_cblobs_why(sr_cblobs_self(), fp->sha256.data, why, sizeof why);
            snprintf(m, sizeof m, "the file's content is not on this node yet (written on another cluster node: being "
                     "fetched from the cluster%s%s); retry later", why[0] ? "; the last attempt: " : "", why);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
            return sr_http_result(req, 503, SR_WIRE_INTERNAL, m, NULL);
        }
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, rc ? "the file's stored content cannot be read (see the server log)"
                                                  : "out of memory", NULL);
    }
    /* The first step is read and authenticated before any header goes out:
     * a damaged blob answers 500 E9001 instead of a 200 that sends nothing.
     * A blob of at most READ_STEP bytes is verified in full (size, SHA-256). */
    d->primed_rc = dl_fill(d, &d->primed_len);
    if (d->primed_rc != SR_OK && d->primed_rc != SR_DONE) {
        const sr_blob_errinfo *bei = sr_blob_reader_errinfo(d->r);
        sr_slog(SR_LOG_ERROR, "file download failed", "error=%s path=%s detail=%s", sr_err_name(d->primed_rc),
                sr_slog_q(path), sr_slog_q(bei ? bei->msg : ""));
        dl_close(d);
        if (d->primed_rc == SR_EERASED) return erased(req, fp);
        return sr_http_result(req, 0, SR_WIRE_INTERNAL, "the file's stored content is damaged (see the server log)", NULL);
    }
    d->primed = 1;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = fp->size;
    char *ct = h2o_mem_alloc_pool(&req->pool, strlen(fp->content_type) + 1);
    memcpy(ct, fp->content_type, strlen(fp->content_type) + 1);
    if (ct[0]) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    char hex[65];
    sr_hex(fp->sha256.data, 32, hex);
    char *hx = h2o_mem_alloc_pool(&req->pool, 64);
    memcpy(hx, hex, 64);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-suiro-sha256"), 0, NULL, hx, 64);
    h2o_start_response(req, &d->gen);
    dl_proceed(&d->gen, req);
}

static void file_get(sr_apif *a, h2o_req_t *req, const sr_ap_token *t, const char *path)
{
    sr_rec m = SR_REC_INIT;
    sr_file_meta fm;
    if (sr_apif_file_meta(a->eng, req, t->op, path, &m, &fm)) return sr_rec_close(&m);
    char what[PATH_MAX_LEN + 8];
    snprintf(what, sizeof what, "file %s", path);
    if (!store_allowed(req, store_access(a, t, SR_STORE_FILES, path, fm.owner_kind, fm.owner), SR_STORE_READ, what,
                       t->app))
        sr_apif_file_send(a->eng, req, &fm, path);
    sr_rec_close(&m);
}

/* the list (at most 1,000 entries) is read and written on the worker queue */
typedef struct flq {
    sr_apjob j; /* first */
    sr_ap_token t; /* op and app (no grants: read now) */
    char prefix[PATH_MAX_LEN + 1];
} flq;

static void flq_run(sr_apjob *j)
{
    flq *q = (flq *)j;
    sr_rec r = SR_REC_INIT;
    int more = 0;
    sr_store_grant *g = NULL;
    size_t ng = 0;
    int rc = sr_store_grants_load(j->a->eng, q->t.op, q->t.app, &g, &ng);
    if (!rc) rc = sr_list_files(j->a->eng, q->t.op, q->prefix, 1000, &r, &more);
    if (rc) {
        sr_rec_close(&r);
        sr_free(g);
        j->rc = rc;
        return;
    }
    json_t *items = json_array();
    sr_file_meta fm;
    for (int k; (k = sr_rec_next_file(&r, &fm)) != 0;) {
        if (k == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
        if (k < 0) break;
        /* only what the app may read: its own, and under its read grants */
        if (!sr_store_is_owner(fm.owner_kind, fm.owner, SR_ACTOR_APP, q->t.app) &&
            !(sr_store_grants_allow(g, ng, SR_STORE_FILES, fm.path) & SR_STORE_READ))
            continue;
        json_array_append_new(items, sr_apif_file_json(&fm));
    }
    sr_free(g);
    json_t *o = json_pack("{s:o,s:b}", "items", items, "truncated", more);
    j->rc = o ? sr_json_write(&j->out, o) : SR_ENOMEM;
    json_decref(o);
    sr_rec_close(&r);
}

static void file_list(sr_apif *a, h2o_req_t *req, const sr_ap_token *t)
{
    flq *q = sr_apif_job_new(req, sizeof *q, flq_run);
    if (!q) return;
    sr_http_query(req, "prefix", q->prefix, sizeof q->prefix);
    snprintf(q->t.op, sizeof q->t.op, "%s", t->op);
    snprintf(q->t.app, sizeof q->t.app, "%s", t->app);
    sr_apif_job_submit(a, t->op, &q->j, 0);
}

void sr_apif_file_list(const sr_route_call *c) { file_list(c->binding, c->req, c->caller); }

/* a files route's {path}, checked: NULL when answered */
static const char *file_path(const sr_route_call *c)
{
    const char *rest = sr_route_param(c, "path");
    if (!rest) sr_http_result(c->req, 0, SR_WIRE_PARAM, "path: at most 512 bytes", NULL);
    else if (!path_ok(rest))
        sr_http_result(c->req, 0, SR_WIRE_PARAM,
                       "path: segments of [A-Za-z0-9._-] separated by '/', no '.' or '..', at most 512 bytes", NULL);
    else return rest;
    return NULL;
}

void sr_apif_file_put(const sr_route_call *c)
{
    const char *rest = file_path(c);
    if (rest) file_put(c->binding, c->req, c->caller, rest);
}

void sr_apif_file_get(const sr_route_call *c)
{
    const char *rest = file_path(c);
    if (rest) file_get(c->binding, c->req, c->caller, rest);
}

void sr_apif_file_delete(const sr_route_call *c)
{
    sr_apif *a = c->binding;
    h2o_req_t *req = c->req;
    const sr_ap_token *t = c->caller;
    const char *rest = file_path(c);
    if (!rest) return;
    sr_rec m = SR_REC_INIT;
    sr_file_meta fm;
    int rc = sr_read_file(a->eng, t->op, rest, &m, &fm);
    if (rc == SR_ENOTFOUND) {
        sr_rec_close(&m);
        return sr_http_result(req, 0, SR_WIRE_UNKNOWN, "unknown file", NULL);
    }
    char what[PATH_MAX_LEN + 8];
    snprintf(what, sizeof what, "file %s", rest);
    int acc = rc ? -1 : store_access(a, t, SR_STORE_FILES, rest, fm.owner_kind, fm.owner);
    sr_rec_close(&m);
    if (store_allowed(req, acc, SR_STORE_WRITE, what, t->app)) return;
    pjob *j = sr_http_ctx_new(req, sizeof *j);
    if (!j) return sr_http_result(req, 0, SR_WIRE_INTERNAL, "out of memory", NULL);
    j->a = a;
    j->what = 3;
    sr_buf b;
    sr_buf_init(&b);
    char src[64];
    sr_login_addr_req(req, src);
    sr_cmd_env env = {t->op, t->app, SR_ACTOR_APP, NULL, src};
    submit_ev(a, req, sr_cmd_file_delete(&env, rest, &b), &b, j);
}
