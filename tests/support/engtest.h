/* tests/support/engtest.h -- building masters and measurements for engine
 * tests, and a naive in-memory model of what the index should answer. */
#ifndef SR_ENGTEST_H
#define SR_ENGTEST_H

#include "engine/evbuild.h"
#include "engine/suiro.h"

/* Submit a command and wait; asserts nothing, returns the result code. */
int et_submit(sr_engine *e, sr_buf *packed_events, const size_t *lens, size_t n, sr_result *res);

/* Register facility F1, equipment E1, one device per gateway (D-<gw>) and
 * npoints data points "P%03d" of the given types (types[i % ntypes]),
 * alternating gateways GW1/GW2, numbers ranged [-1e9, 1e9]. Returns 0. */
int et_setup_masters(sr_engine *e, const char *op, int npoints, const sr_vtype *types, int ntypes);

/* For a fuzz target: an engine in a new /tmp/fuzz-<name>-XXXXXX with
 * et_setup_masters' points of a number, a bool, an integer and a string
 * type in turn on operator "op1", closed and removed at exit. Aborts when
 * it cannot be made. */
sr_engine *et_fuzz_engine(const char *name, int npoints);

/* Submit one event another node wrote with its origin (the cluster's
 * consumer, engine/origins.c) and wait; the submit's code, else res->rc. */
int et_submit_origin(sr_engine *e, const void *rec, size_t len, const sr_origin *o, sr_result *res);

/* Submit one measurement event for one point; returns the result code. */
int et_put(sr_engine *e, const char *op, const char *gw, uint32_t point, sr_vtype type, const sr_sample *s,
           size_t n, const char *msgid, sr_result *res);

/* The model: per point, a sorted map ts -> sample (last write wins). */
typedef struct et_model et_model;
et_model *et_model_new(void);
void et_model_free(et_model *m);
void et_model_put(et_model *m, uint32_t point, const sr_sample *s); /* strings copied */
/* Samples of point in [from, to), ascending; returns count, *out malloc'd. */
size_t et_model_range(et_model *m, uint32_t point, int64_t from, int64_t to, sr_sample **out);

int et_sample_eq(sr_vtype t, const sr_sample *a, const sr_sample *b);

/* The master key of the crash suites (a fixed one: the child and the test
 * open the same directory): its records are sealed by data keys. */
struct sr_key;
void et_master_key(struct sr_key *k);

#endif
