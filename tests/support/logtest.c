#include "logtest.h"

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t lt_len(uint64_t seq, size_t maxlen)
{
    tu_rng r = {seq * 7919 + 1};
    uint64_t v = tu_next(&r), c = v % 100;
    size_t n;
    if (c < 35) n = (size_t)(v >> 8) % 17;
    else if (c < 80) n = (size_t)(v >> 8) % 257;
    else if (c < 96) n = (size_t)(v >> 8) % 4097;
    else n = (size_t)(v >> 8) % (maxlen + 1);
    return n > maxlen ? maxlen : n;
}

int lt_append(sr_log *lg, size_t n, size_t maxlen, uint64_t *first)
{
    uint64_t base = sr_log_next_seq(lg);
    sr_slice *recs = calloc(n, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        size_t len = lt_len(base + i, maxlen);
        uint8_t *p = malloc(len ? len : 1);
        tu_fill_record(base + i, p, len);
        recs[i] = (sr_slice){p, len};
    }
    uint64_t f = 0;
    int rc = sr_log_append(lg, recs, n, &f);
    if (rc == SR_OK && f != base) rc = -1000; /* someone else appended */
    if (rc == SR_OK && first) *first = f;
    for (size_t i = 0; i < n; i++) free((void *)recs[i].data);
    free(recs);
    return rc;
}

int lt_check(sr_log *lg, uint64_t from, uint64_t to, size_t maxlen, char *why, size_t whylen)
{
    sr_log_iter *it = NULL;
    int rc = sr_log_iter_open(lg, from, &it);
    if (rc) {
        snprintf(why, whylen, "iter_open: %s", sr_err_name(rc));
        return -1;
    }
    uint64_t want = from, seq;
    sr_slice rec;
    uint8_t *buf = malloc(maxlen + 1);
    int res = 0;
    while (want < to) {
        rc = sr_log_iter_next(it, &seq, &rec);
        if (rc) {
            snprintf(why, whylen, "seq %" PRIu64 ": iter_next %s (%s)", want, sr_err_name(rc),
                     sr_log_iter_errinfo(it)->msg);
            res = -1;
            break;
        }
        size_t len = lt_len(seq, maxlen);
        tu_fill_record(seq, buf, len);
        if (seq != want || rec.len != len || (len && memcmp(rec.data, buf, len))) {
            snprintf(why, whylen, "seq %" PRIu64 " (want %" PRIu64 "): len %zu want %zu or bytes differ", seq,
                     want, rec.len, len);
            res = -1;
            break;
        }
        want++;
    }
    free(buf);
    sr_log_iter_close(it);
    return res;
}

void lt_nonce(void *ctx, uint8_t nonce[12])
{
    uint64_t *c = ctx;
    memset(nonce, 0, 12);
    uint64_t v = ++*c;
    for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(v >> (8 * i));
    nonce[0] = 0x5a;
}

void lt_key(sr_key *k, int which)
{
    uint8_t b[32];
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(i * 7 + which * 101 + 1);
    sr_key_from_bytes(k, b);
}
