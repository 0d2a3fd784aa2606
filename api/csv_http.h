/*
 * api/csv_http.h -- CSV over HTTP (R-PO-1, docs/csv.md): the streamed
 * export of stored values (AP-IF stored values with format=csv or Accept:
 * text/csv, (ext)) and the import of a corrected CSV, shared by the Admin
 * API's route (sr_admin_data_routes, here) and the AP-IF's (ext) route
 * (api/apif_http.c).
 */
#ifndef SR_CSV_HTTP_H
#define SR_CSV_HTTP_H

#include "api/wire.h"
#include "engine/records.h"

#include <h2o.h>
#include <jansson.h>

/* What to export: n data points (their ids and point info), [from, to);
 * raw values, or (interval > 0) downsampled with the aggregates of mask
 * (SR_CSV_AGG_*) and fill. bom: start with a UTF-8 byte order mark. */
enum { SR_CSV_AGG_MIN = 1, SR_CSV_AGG_MAX = 2, SR_CSV_AGG_AVG = 4, SR_CSV_AGG_COUNT = 8, SR_CSV_AGG_FIRST = 16,
       SR_CSV_AGG_LAST = 32, SR_CSV_AGG_SUM = 64 };
typedef struct sr_csv_export {
    size_t n;
    const char (*ids)[72];
    const sr_point_info *info;
    int64_t from, to;
    int64_t interval;
    int mask;
    sr_agg_fill fill;
    int bom;
} sr_csv_export;

/* Samples read at a time by a raw export: one short read transaction each
 * (never one held for the whole export: it would pin LMDB's pages); with
 * the step's 512 KiB of text, the bound of a generator's buffers (~1 MiB). */
#define SR_CSV_STEP 4096

/* Answer req with the CSV of x, streamed: each step a job of operator op on
 * the AP-IF's worker queue (a's; counted in a->busy while it runs), sent
 * from the loop, the next one asked for by h2o's proceed callback once the
 * last is sent; 200 text/csv; charset=utf-8 with the first step (an error
 * before it: 500; the operator's queue full: 429). The ids and infos are
 * copied. */
struct sr_apif;
void sr_csv_export_start(h2o_req_t *req, struct sr_apif *a, const char *op, const sr_csv_export *x);

/* An import of a corrected CSV as env (engine/correct.c: one Correction
 * event, all or nothing), waited for until durable. SR_WIRE_OK with
 * *answer {"importId","seq","rows","points"}; else the refusal (code, msg,
 * *detail: {"field", "errors":[{"line","message"}], "count", "truncated"}).
 * may: the caller's filter of data points (an app's grants), or NULL. */
sr_wire sr_csv_import(sr_engine *e, const sr_cmd_env *env, const char *csv, size_t len, const char *reason,
                      int (*may)(void *ctx, const char *data_id), void *may_ctx, char *msg, size_t msgsz,
                      json_t **detail, json_t **answer);

#endif
