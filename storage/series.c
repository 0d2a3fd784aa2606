/* storage/series.c -- time-series chunk codec (see series.h). STUB: being written. */
#include "storage/series.h"
