/*
 * engine/schema.c -- the index's databases (SR_INDEX_DBS, schema.h) and the
 * records of theirs that take an event or the engine: a data point's
 * pointinfo, the message-id items.
 *
 * The key and value layouts and the invariants are in schema.h.
 */
#include "engine/schema.h"

#include "engine/engine_int.h"
#include "storage/crypto.h"

#include <string.h>

const sr_index_db sr_schema_dbs[SR_DB_COUNT] = {
#define SR_X_(id, name, flags) [SR_DB_##id] = {name, flags},
    SR_INDEX_DBS(SR_X_)
#undef SR_X_
};

int sr__pointinfo_parse(const void *data, size_t n, pointinfo *pi)
{
    const uint8_t *d = data;
    size_t a = strnlen((const char *)d, n);
    if (a >= n || a >= sizeof pi->op) return SR_ECORRUPT;
    memcpy(pi->op, d, a + 1);
    size_t b = strnlen((const char *)d + a + 1, n - a - 1);
    if (a + 1 + b >= n || b >= sizeof pi->gateway) return SR_ECORRUPT;
    memcpy(pi->gateway, d + a + 1, b + 1);
    pi->m = suiro__v1__master_put__unpack(NULL, n - a - b - 2, d + a + b + 2);
    return pi->m ? SR_OK : SR_ECORRUPT;
}

int sr__pointinfo_get(sr_engine *e, MDB_txn *t, uint32_t p, pointinfo *pi)
{
    uint8_t k[4];
    be32(k, p);
    MDB_val v;
    int rc = get(t, DB(e, SR_DB_POINTINFO), k, 4, &v);
    return rc ? rc : sr__pointinfo_parse(v.mv_data, v.mv_size, pi);
}

/*
 * Message ids (SR_DB_MSGIDS, index layout 3): under the key op \0 seq_hi,
 * where seq_hi is the high 32 bits of the event's seq (big-endian; one key
 * per 2^32 events), one 12-byte duplicate per stored event that has a
 * message id: the first 8 bytes of SHA-256(op \0 actor \0 id), then the low
 * 32 bits of the seq, both big-endian, so the events of one hash sort
 * together by seq. A hash only names candidates: msgid_find reads each
 * candidate event back (from the group being written, or the log: writer.c) and
 * compares its ids, so a collision costs a read and can never make a
 * distinct message a duplicate. (Key layouts: schema.h.)
 */
int sr__msgid_item(const sr_engine *e, const Event *ev, uint64_t seq, uint8_t item[MSGID_ITEM])
{
    uint8_t k[600], d[SR_HASH_LEN];
    size_t kl = mkkey(k, sizeof k, ev->operator_id, ev->actor, ev->message_id);
    if (!kl) return SR_EINVAL;
    sr_sha256(k, kl, d);
    uint64_t h = get_be64(d);
    unsigned bits = e->o.test_msgid_hash_bits;
    if (bits && bits < 64) h &= (UINT64_C(1) << bits) - 1;
    be64(item, h);
    be32(item + 8, (uint32_t)seq);
    return SR_OK;
}

/* the key: op \0 (never empty), then seq_hi (4 bytes BE) */
size_t sr__msgid_key(const Event *ev, uint64_t seq, uint8_t *k, size_t cap)
{
    size_t n = strlen(ev->operator_id) + 1;
    if (n + 4 > cap) return 0;
    memcpy(k, ev->operator_id, n);
    be32(k + n, (uint32_t)(seq >> 32));
    return n + 4;
}
