/* engine/sheet.h -- applying a set-up sheet (codecs/sheet.h) to the engine,
 * and exporting the current state as a sheet. See engine/sheet_import.c. */
#ifndef SR_ENGINE_SHEET_H
#define SR_ENGINE_SHEET_H

#include "codecs/sheet.h"
#include "engine/records.h"
#include "engine/suiro.h"

/* All-or-nothing, idempotent import of a valid sheet (sh->n_errors == 0).
 * A section the sheet lists is the whole truth for its kind: stored entries
 * it leaves out are removed (docs/setup-sheet.md "Removal").
 * res->count is the number of events stored (0 when nothing changed);
 * a refusal names the line and entry in res->msg; on success res->msg lists
 * what was removed ("removed 2: app A2, grant A2:P1"), or is empty.
 * [retention] rows are the operator's RG_RETENTION periods. No audit floor
 * is checked here (no hook): sr_engine_import_sheet_as with
 * hook->audit_floor_days is what the CLI and the admin API call. */
SR_MUST_CHECK int sr_engine_import_sheet(sr_engine *e, const sr_sheet *sh, sr_result *res);

/* A look at a set-up command's built events evs[0..n) before they are
 * submitted, called under the set-up mutex (so what it reads of the index
 * is what the command changes): fn returns 0 to submit them now, 1 when it
 * took them (the two-person rule stores them as a pending change: nothing is
 * submitted, res->count is 0 and *taken 1), or a negative SR_E* to refuse
 * (nothing stored). fn NULL: submitted. */
typedef struct sr_setup_hook {
    int (*fn)(void *ctx, const sr_slice *evs, size_t n);
    void *ctx;
    int *taken; /* set to 1 when fn took the events (may be NULL) */
    /* The audit floor ([retention] audit_floor_days; 0: none): a sheet whose
     * events set the operator's audit period to fewer days (0, for ever, is
     * never fewer) sets *below_floor (may be NULL) to 1 before fn is called,
     * so fn can hand them to the two-person rule; with fn NULL such an
     * import is refused (SR_EINVAL naming the line), nothing stored. */
    uint32_t audit_floor_days;
    int *below_floor;
} sr_setup_hook;

/* As sr_engine_import_sheet, with the events' envelope from env (actor,
 * actor kind, source; the operator is the sheet's) and a hook (NULL: none):
 * the admin API's import names the user and the address.
 * sr_engine_import_sheet imports as "sheet-import". */
SR_MUST_CHECK int sr_engine_import_sheet_as(sr_engine *e, const sr_sheet *sh, const sr_cmd_env *env,
                                            const sr_setup_hook *hook, sr_result *res);

/* One change of an operator's set-up (the admin API, docs/admin.md): the
 * operator's current sheet (its export) less the entries the edit drops,
 * plus the rows it adds, checked by the sheet parser (codecs/sheet.c: the
 * same validation as a sheet's, row and references) and imported as a sheet
 * (the same events, secrets and removals). One edit or import at a time
 * (a mutex), so two edits cannot undo each other. Only the kinds the edit
 * touches are imported (the others are the export: equal to what is
 * stored); the check reads the whole sheet, so an edit costs O(set-up). */
typedef struct sr_setup_edit {
    /* drop: the entry `id` of section `drop` (an SR_SHEET_S_* bit; 0: none);
     * an app's grants go with it, a data point's exact grants with it;
     * SR_SHEET_S_GRANTS: the grants of app `id` of pattern `pattern` (NULL:
     * all of them). An entry replaced by an added row (nrows > 0) keeps its
     * grants. */
    unsigned drop;
    const char *id, *pattern;
    int must_drop;               /* 1: nothing to drop is SR_ENOTFOUND "<what> does not exist" */
    const char *what;            /* "data point P1", for messages */
    const char *must_exist_app;  /* non-NULL: SR_ENOTFOUND unless this app exists */
    /* add: nrows rows of section `section` ("datapoints", as a sheet names
     * it) with the columns cols[0..ncols) (at most 16), values
     * vals[row * ncols + col] (NULL: empty) */
    const char *section;
    const char *const *cols;
    size_t ncols;
    const char *const *vals;
    size_t nrows;
    const char *vendor_id;       /* section apps or gateways: the vendor link of entry `id` (R-ID-8; ""
                                  * none); NULL: the stored one */
    int require_signature;       /* section apps: entry `id`'s control requests must be signed (R-SE-3,
                                  * docs/signatures.md): 0 the stored setting, 1 not required, 2 required */
    sr_setup_hook hook;          /* the built events before they are submitted (fn NULL: none) */
} sr_setup_edit;

/* res as sr_engine_import_sheet's, or a refusal: SR_ENOTFOUND (the operator,
 * or what must exist), SR_EINVAL with *field the column of an added row at
 * fault and *row that row (0-based; res->err.msg "column: what is wrong", as
 * the sheet reports it; a new gateway or app without a secret: "secret"),
 * SR_ECONFLICT when a stored entry would be left pointing at nothing (the
 * message names it). Nothing is stored on a refusal. */
SR_MUST_CHECK int sr_engine_setup_edit(sr_engine *e, const sr_cmd_env *env, const sr_setup_edit *ed,
                                       sr_result *res, char *field, size_t fieldcap, size_t *row);

/* A change of an app's or a gateway's registration that the sheet does not
 * carry: its certificate (checked: one PEM X.509, under 64 KiB), a new
 * secret (hashed here: scrypt, call off the event loop), disabled (-1:
 * unchanged). One RegistryPut (none, res->count 0, when only disabled is
 * asked and it is so already); SR_ENOTFOUND for an unknown app or gateway. */
typedef struct sr_reg_change {
    const char *cert_pem; /* NULL: unchanged */
    const char *secret;   /* NULL: unchanged */
    int disabled;         /* -1, 0, 1 */
    sr_setup_hook hook;   /* the built event before it is submitted (fn NULL: none) */
} sr_reg_change;
SR_MUST_CHECK int sr_engine_registry_change(sr_engine *e, const sr_cmd_env *env, sr_reg_kind kind, const char *id,
                                            const sr_reg_change *ch, sr_result *res);

/* 1 if pem[0..len) holds a PEM X.509 certificate and len < 64 KiB. */
int sr_cert_pem_ok(const char *pem, size_t len);

/* The operator's registry and masters as a canonical sheet (secrets empty). */
SR_MUST_CHECK int sr_engine_export_sheet(sr_engine *e, const char *op, sr_buf *out);

#endif
