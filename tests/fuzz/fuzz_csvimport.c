/* tests/fuzz/fuzz_csvimport.c -- the import of a corrected CSV (R-PO-1,
 * engine/correct.c sr_cmd_corrections over codecs/csv.c) on arbitrary bytes.
 * An engine with 40 points P000..P039 of a number, a bool, an integer and a
 * string type in turn answers the lookups. Whatever the bytes:
 *  - an accepted import is one event that decodes as a Correction whose
 *    values count the report's rows, with no bad row reported;
 *  - a refused one appends nothing, lists at most SR_CORR_ERRORS_MAX of
 *    its bad rows (all counted), in line order, each past the header; or
 *    names the whole input's field and why.
 * Corpus: tests/fuzz/csvimport/. */
#include "engine/engine_int.h"
#include "engtest.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sr_engine *eng;

static void setup(void) { eng = et_fuzz_engine("csvimport", 40); }

static sr_corr_report rep;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!eng) setup();
    sr_buf out;
    sr_buf_init(&out);
    sr_cmd_env env = {"op1", "alice", SR_ACTOR_USER, NULL, "127.0.0.1"};
    int rc = sr_cmd_corrections(eng, &env, data, size, "fuzz", NULL, NULL, &rep, &out);
    if (rc == SR_OK) {
        if (rep.nbad || rep.nerr || !rep.rows || !out.len) abort();
        Suiro__V1__Event *ev = suiro__v1__event__unpack(NULL, out.len, out.data);
        if (!ev || ev->body_case != SUIRO__V1__EVENT__BODY_CORRECTION || !ev->correction->values) abort();
        if (ev->correction->rows != rep.rows || strcmp(ev->correction->reason, "fuzz")) abort();
        sr_meas_iter mi;
        sr_mpoint p;
        size_t n = 0, np = 0;
        sr_meas_iter_init(&mi, ev->correction->values);
        while (sr_meas_next(&mi, &p)) {
            if (p.n < 1) abort();
            n += (size_t)p.n;
            np++;
        }
        if (n != rep.rows || np != rep.points) abort();
        suiro__v1__event__free_unpacked(ev, NULL);
    } else {
        if (out.len) abort();
        if (rep.nerr > SR_CORR_ERRORS_MAX || rep.nerr > rep.nbad) abort();
        if (rep.nbad && rep.nerr < (rep.nbad < SR_CORR_ERRORS_MAX ? rep.nbad : SR_CORR_ERRORS_MAX)) abort();
        for (size_t i = 0; i < rep.nerr; i++) {
            if (rep.err[i].line < 2 || !rep.err[i].msg[0]) abort();
            if (i && rep.err[i].line < rep.err[i - 1].line) abort();
        }
        if (!rep.msg[0] || !rep.field[0]) abort();
    }
    sr_buf_release(&out);
    return 0;
}
