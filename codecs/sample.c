/* codecs/sample.c -- see sample.h: the qualities' wire names, from SR_QUALITIES. */
#include "codecs/sample.h"

#define NAME_(q, name) name,
const char *const sr_quality_name[SR_Q_COUNT] = {SR_QUALITIES(NAME_)};
#undef NAME_

#define LEN_(q, name) sizeof name - 1,
const uint8_t sr_quality_len[SR_Q_COUNT] = {SR_QUALITIES(LEN_)};
#undef LEN_
