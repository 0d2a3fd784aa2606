/* codecs/csv.c -- STUB: being written. */
#include "engine/sr_error.h"
