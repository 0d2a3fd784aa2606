/* tests/fuzz/fuzz_accpack.c -- the packed batch of reads (codecs/accpack.h,
 * AccessBatch, Event.body 50) on arbitrary bytes: the writer's check
 * (sr_apk_parse) and the readers behind it. Never a crash or an
 * out-of-bounds read (ASan); what the parser accepts, every reader may
 * read without a check (invariant 1: every string, entry and listed point
 * is touched), and built again through the builder (sr_apk_*) it parses to
 * the same entries with the same strings. The one-pass reader
 * (sr_apk_parse_head + sr_apk_next_checked, engine/audit.c's row) reaches
 * its end (0) exactly on the bytes sr_apk_parse accepts, with the same
 * entries, and every entry it hands out before a -1 is within the view (its
 * strings and points are touched). Corpus: tests/fuzz/accpack/. */
#include "codecs/accpack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_apk_view v;
    const char *why = NULL;
    size_t tot = 0;
    /* the one-pass reader, checked against sr_apk_parse below */
    sr_apk_view h;
    int one = -2; /* -2: the head refused; -1: an entry refused; 0: read to the end */
    uint32_t nread = 0;
    if (!sr_apk_parse_head(data, size, &h, &why)) {
        sr_apk_iter it;
        sr_apk_iter_init(&h, &it);
        sr_apk_entry e;
        while ((one = sr_apk_next_checked(&it, &h, &e)) > 0) {
            nread++;
            tot += strlen(sr_apk_s(&h, e.binding)) + strlen(sr_apk_s(&h, e.method)) + strlen(sr_apk_s(&h, e.route)) +
                   strlen(sr_apk_s(&h, e.source)) + strlen(sr_apk_s(&h, e.code));
            for (unsigned k = 0; k < e.npl; k++) tot += strlen(sr_apk_s(&h, sr_apk_ref(&h, e.ref + k)));
        }
    } else if (!why || !why[0]) abort();
    if (sr_apk_parse(data, size, &v, &why)) {
        if (!why || !why[0] || one == 0) abort(); /* refused: the one pass may not reach its end */
        return tot == SIZE_MAX;
    }
    if (one != 0 || nread != v.nent) abort(); /* accepted: the one pass reads every entry to the end */
    for (uint32_t i = 0; i < v.nstr; i++) tot += strlen(sr_apk_s(&v, (uint16_t)i));
    sr_apk b;
    sr_apk_init(&b);
    sr_apk_iter it;
    sr_apk_iter_init(&v, &it);
    for (uint32_t i = 0; i < v.nent; i++) {
        sr_apk_entry e, f;
        if (!sr_apk_next(&it, &e)) abort(); /* parsed: every entry reads */
        const char *s[5] = {sr_apk_s(&v, e.binding), sr_apk_s(&v, e.method), sr_apk_s(&v, e.route),
                            sr_apk_s(&v, e.source), sr_apk_s(&v, e.code)};
        uint16_t refs[SR_APK_POINTS_MAX];
        for (unsigned k = 0; k < e.npl; k++) {
            const char *p = sr_apk_s(&v, sr_apk_ref(&v, e.ref + k));
            tot += strlen(p);
            int ix = sr_apk_str(&b, p, strlen(p));
            if (ix < 0) abort();
            refs[k] = (uint16_t)ix;
        }
        f = e;
        int ix[5];
        for (int k = 0; k < 4; k++)
            if ((ix[k] = sr_apk_str(&b, s[k], strlen(s[k]))) < 0) abort();
        f.binding = (uint16_t)ix[0];
        f.method = (uint16_t)ix[1];
        f.route = (uint16_t)ix[2];
        f.source = (uint16_t)ix[3];
        if (e.code != SR_APK_NONE) {
            if ((ix[4] = sr_apk_str(&b, s[4], strlen(s[4]))) < 0) abort();
            f.code = (uint16_t)ix[4];
        }
        if (sr_apk_add(&b, &f, refs)) abort();
    }
    sr_buf out;
    sr_buf_init(&out);
    if (sr_apk_finish(&b, &out)) abort();
    sr_apk_view w;
    if (sr_apk_parse(out.data, out.len, &w, &why) || w.nent != v.nent) abort();
    sr_apk_iter iv, iw;
    sr_apk_iter_init(&v, &iv);
    sr_apk_iter_init(&w, &iw);
    for (uint32_t i = 0; i < v.nent; i++) {
        sr_apk_entry e, f;
        if (!sr_apk_next(&iv, &e) || !sr_apk_next(&iw, &f)) abort();
        if (e.time_ms != f.time_ms || e.status != f.status || e.npl != f.npl || e.npoints != f.npoints ||
            e.values != f.values || e.bytes != f.bytes || (e.code == SR_APK_NONE) != (f.code == SR_APK_NONE) ||
            strcmp(sr_apk_s(&v, e.route), sr_apk_s(&w, f.route)) || strcmp(sr_apk_s(&v, e.source), sr_apk_s(&w, f.source)) ||
            strcmp(sr_apk_s(&v, e.code), sr_apk_s(&w, f.code)))
            abort();
        for (unsigned k = 0; k < e.npl; k++)
            if (strcmp(sr_apk_s(&v, sr_apk_ref(&v, e.ref + k)), sr_apk_s(&w, sr_apk_ref(&w, f.ref + k)))) abort();
    }
    sr_apk_entry extra;
    if (sr_apk_next(&iv, &extra) || sr_apk_next(&iw, &extra)) abort();
    sr_buf_release(&out);
    sr_apk_release(&b);
    return tot == SIZE_MAX; /* keeps the reads */
}
