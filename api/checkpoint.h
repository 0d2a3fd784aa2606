/* api/checkpoint.h -- the server's signed checkpoints (api/checkpoint.c;
 * docs/audit.md "Checkpoints and proofs"). Loop thread only. */
#ifndef SR_API_CHECKPOINT_H
#define SR_API_CHECKPOINT_H

#include "engine/suiro.h"

#include <stddef.h>

typedef struct sr_ckpt sr_ckpt;

/* interval_s 0: *out NULL (none made). The platform key is loaded from
 * data_dir (an error names it in err). */
SR_MUST_CHECK int sr_ckpt_open(sr_engine *e, const char *data_dir, unsigned interval_s, sr_ckpt **out, char *err,
                               size_t errlen);
/* From the server's once-a-second tick: one checkpoint when due and
 * something was written since the last (the submit does not wait). */
void sr_ckpt_tick(sr_ckpt *c);
/* At a clean stop, before the engine closes: one more if anything was
 * written since the last, waited for (durable on SR_OK). NULL-safe. */
int sr_ckpt_stop(sr_ckpt *c);
/* The checkpoints' origin and key name ("suiro/" + 16 hex digits). */
const char *sr_ckpt_origin(const sr_ckpt *c);
void sr_ckpt_close(sr_ckpt *c);

#endif
