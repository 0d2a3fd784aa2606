/* engine/sheet.h -- applying a set-up sheet (codecs/sheet.h) to the engine,
 * and exporting the current state as a sheet. See engine/sheet_import.c. */
#ifndef SR_ENGINE_SHEET_H
#define SR_ENGINE_SHEET_H

#include "codecs/sheet.h"
#include "engine/suiro.h"

/* All-or-nothing, idempotent import of a valid sheet (sh->n_errors == 0).
 * A section the sheet lists is the whole truth for its kind: stored entries
 * it leaves out are removed (docs/setup-sheet.md "Removal").
 * res->count is the number of events stored (0 when nothing changed);
 * a refusal names the line and entry in res->msg; on success res->msg lists
 * what was removed ("removed 2: app A2, grant A2:P1"), or is empty. */
SR_MUST_CHECK int sr_engine_import_sheet(sr_engine *e, const sr_sheet *sh, sr_result *res);

/* The operator's registry and masters as a canonical sheet (secrets empty). */
SR_MUST_CHECK int sr_engine_export_sheet(sr_engine *e, const char *op, sr_buf *out);

#endif
