/*
 * engine/ixseal.h -- index values sealed by the operator's data keys
 * (issue #16, docs/keys.md "The index: sealed values"; layout 8).
 *
 * With a master key (a keyring), every value of the databases SR_IXSEAL_DBS
 * names is stored sealed; the LMDB keys, and the databases holding only
 * numbers and hashes, stay plain (docs/keys.md "What stays plaintext"). The
 * engine's code reads and writes values as it always did: engine_int.h maps
 * mdb_get, mdb_put, mdb_cursor_get and mdb_cursor_put to the sr__ix*
 * functions below, which seal and open the values of a sealed database of a
 * sealed index and pass everything else through untouched. Without a master
 * key nothing is attached to the environment and no byte changes.
 *
 * A SEALED VALUE (in a sealed index, every value of a sealed database):
 *   u8 form: 1 sealed | 0 plain (no key was known for it: see below)
 *   form 1: key id u32 LE, nonce 12, ciphertext (the plain value's length),
 *           tag 16: AES-256-GCM (the key's algorithm, sr_keys) with the
 *           associated data "suiro-ix-v1" ‖ database row u8 ‖ the 5 header
 *           bytes ‖ the LMDB key: a value moved to another key or database,
 *           or to another key id, does not open (SR_ECORRUPT).
 *   form 0: the plain value follows (counted: sr__ixseal_plain).
 *
 * INVARIANTS
 *  (1) Nonces are never reused under a key: a random 4-byte prefix per
 *      open and a 64-bit counter (atomic) per sealed value.
 *  (2) The sealing key is the key of the record being applied (the writer:
 *      the record's key, chosen before its apply; the replay: the key that
 *      sealed the record), so an operator's values are sealed by that
 *      operator's keys; a point's latest row by its newest value's key.
 *      kid 0 (a record of a plain section) falls back to the active key of
 *      the operator the index key names, else form 0.
 *  (3) An opened value lives in a per-thread ring of SR_IXSEAL_RING buffers
 *      per size class (static ones for values up to 64 bytes, the cache's
 *      class of invariant 6, and up to SR_IXSEAL_SMALL bytes, so that
 *      opening a small value never fails for memory; heap ones, grown and
 *      kept, for bigger values): valid until that many more values of its
 *      size class are opened by the same thread
 *      (callers copy what they keep longer, as they must for a transaction's
 *      end anyway).
 *  (5) The first record of an operator and class has no key until the
 *      writer appends it (a refused command makes no key): the values its
 *      apply writes are form 0 in the command's nested transaction, listed,
 *      and sealed by the record's key once the command is accepted, in the
 *      same group's transaction (sr__ixseal_flush): no form 0 value of a
 *      keyed record is ever committed.
 *  (6) Small values opened by a thread are cached by it (a direct-mapped
 *      table per thread: the LMDB key, and the sealed value's key id, nonce
 *      and tag, which name its ciphertext): the same sealed bytes under the
 *      same LMDB key open to the same plaintext without AES-GCM (a latest
 *      row read again and again; the hit costs word compares and one copy,
 *      no AES-GCM and no lock). An entry holds only while its attachment
 *      is the same and its keyring has destroyed no key since
 *      (sr_keyring_generation), so a destroyed key's values read as absent
 *      at once (invariant 4).
 *  (7) The writer keeps the small values it seals (a direct-mapped table
 *      of SR_IXSEAL_SHARED slots per attachment, each under a sequence
 *      lock: the LMDB key, the sealed value's key id, nonce and tag, the
 *      plaintext, the keyring's generation before the seal), so that the
 *      first read of a changed row by any thread finds its plaintext
 *      without AES-GCM (a latest row after each write). A reader takes an
 *      entry only when its seal and the value it read from LMDB are the
 *      same bytes (a nonce is never reused: bytes of a write that was
 *      rolled back match nothing committed), its copy was not torn (the
 *      sequence is even and unchanged) and no key was destroyed since the
 *      seal (invariant 4).
 *  (4) A value whose key was destroyed (SR_EERASED) reads as absent: a get
 *      is MDB_NOTFOUND, a cursor steps over it (the sweep and queries treat
 *      it as gone, never as data). A value that does not open is
 *      MDB_CORRUPTED (SR_ECORRUPT), never wrong data.
 */
#ifndef SR_ENGINE_IXSEAL_H
#define SR_ENGINE_IXSEAL_H

#include "codecs/base/sr_alloc.h"
#include "storage/crypto.h"
#include "storage/index.h"

#include <lmdb.h>
#include <stdatomic.h>
#include <stdint.h>

enum { SR_IXSEAL_RING = 64, SR_IXSEAL_SMALL = 1024, SR_IXSEAL_HDR = 1 + 4 + 12, SR_IXSEAL_OVER = SR_IXSEAL_HDR + 16,
       SR_IXSEAL_SHARED = 8192 };
struct sr_ixseal_kept; /* ixseal.c: a slot of invariant 7's table */

typedef struct sr_ixseal {
    const sr_keys *keys;
    uint8_t sealed[SR_INDEX_MAX_DBS]; /* by database row: its values are sealed */
    int16_t row_of_dbi[64];           /* MDB_dbi -> database row (-1: none) */
    uint32_t kid;                     /* writer: the key that seals the values it writes now */
    uint8_t prefix[4];
    _Atomic uint64_t ctr;
    _Atomic uint64_t nplain, nerased;
    _Atomic uint64_t nopen;         /* values opened by AES-GCM (neither cache had them): tests */
    struct sr_ixseal_kept *kept;    /* invariant 7 (NULL: none; made at attach, freed by sr__ixseal_free) */
    void *keyring;
    uint64_t serial; /* this attachment's number (the opened-value cache's owner) */
    /* writer: a value written with no key yet (kid 0, defer) is form 0 and
     * listed here (row u8, the command's event index u32 LE, key length
     * u16 LE, the key): sr__ixseal_flush seals it once the command's
     * records have their keys (invariant 5) */
    int defer;
    uint32_t ev;
    sr_buf pend;
    size_t npend;
} sr_ixseal;

/* Seal the listed values again, in txn, by the key of the event that wrote
 * each (kids[event index], n events); an LMDB or sr_keys error as an SR_
 * code. The writer's, after a command is accepted. */
SR_MUST_CHECK int sr__ixseal_flush(sr_ixseal *s, MDB_txn *txn, const uint32_t *kids, size_t n);
/* Forget the list and stop deferring (a command's end). */
void sr__ixseal_reset(sr_ixseal *s);
/* Release the list's memory and the kept values (the engine's close). */
void sr__ixseal_free(sr_ixseal *s);

/* Attach s to the environment of ix (keys from the keyring kr); NULL s
 * detaches. */
SR_MUST_CHECK int sr__ixseal_attach(sr_index *ix, sr_ixseal *s, void *keyring);
/* Open a sealed value v of database row `row` at LMDB key k into the
 * calling thread's ring: SR_OK with *out; SR_EERASED; SR_ECORRUPT; an
 * sr_keys error. Used by the content hash (plaintext). */
SR_MUST_CHECK int sr__ixseal_open(const sr_ixseal *s, unsigned row, const MDB_val *k, const MDB_val *v, MDB_val *out);

int sr__ixget(MDB_txn *t, MDB_dbi d, MDB_val *k, MDB_val *v);
int sr__ixput(MDB_txn *t, MDB_dbi d, MDB_val *k, MDB_val *v, unsigned flags);
int sr__ixcget(MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op);
int sr__ixcput(MDB_cursor *c, MDB_val *k, MDB_val *v, unsigned flags);

#endif
