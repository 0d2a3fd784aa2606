/*
 * api/state.h -- the state at a past time as JSON (issue #18, R-RE-2;
 * docs/state.md): the one writer of the answer of GET /admin/v1/state
 * (api/admin_audit.c) and `suiro state` (api/cli/cmd_engine.c), so both
 * give the same JSON.
 */
#ifndef SR_API_STATE_H
#define SR_API_STATE_H

#include "engine/records.h"

#include <jansson.h>

/* The answer for T (an ingest time, UTC ms) on the engine e of a data
 * directory, for operator op (NULL: every operator, and the platform's
 * alarms). NULL and *rc / ei set when it cannot be built (SR_EINVAL: T
 * before the log's horizon, ei naming it). Waits (it replays the log):
 * never on the network loop. */
json_t *sr_state_json(sr_engine *e, int64_t at_ms, const char *op, int *rc, sr_errinfo *ei);

#endif
