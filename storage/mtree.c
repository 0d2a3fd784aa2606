/*
 * storage/mtree.c -- RFC 9162 Merkle tree hashes, compact ranges and proofs
 * (storage/mtree.h; docs/audit.md "Checkpoints and proofs").
 *
 * The proofs follow the RFC's recursive definitions literally (PATH,
 * SUBPROOF, the split k = the largest power of two smaller than n), with
 * MTH of each subrange read from the caller's perfect-subtree hashes
 * (range_hash: an aligned power-of-two range is one stored node; a range
 * ending at the tree size is split as the RFC splits it, invariant 2 of
 * mtree.h). The verifiers are the RFC's 2.1.3.2 and 2.1.4.2 step by step.
 */
#include "storage/mtree.h"

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stdio.h>
#include <string.h>

void sr_mt_leaf_hash2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[SR_MT_HASH_LEN])
{
    uint8_t small[256];
    if (1 + an + bn <= sizeof small) {
        small[0] = 0x00;
        if (an) memcpy(small + 1, a, an);
        if (bn) memcpy(small + 1 + an, b, bn);
        sr_sha256(small, 1 + an + bn, out);
        return;
    }
    sr_sha256_ctx c;
    uint8_t z = 0x00;
    if (sr_sha256_init(&c) || sr_sha256_update(&c, &z, 1) || sr_sha256_update(&c, a, an) ||
        sr_sha256_update(&c, b, bn) || sr_sha256_final(&c, out))
        SR_ASSERT(!"SHA-256 failed");
    sr_sha256_release(&c);
}

void sr_mt_leaf_hash(const void *data, size_t n, uint8_t out[SR_MT_HASH_LEN])
{
    sr_mt_leaf_hash2(data, n, NULL, 0, out);
}

void sr_mt_node_hash(const uint8_t left[SR_MT_HASH_LEN], const uint8_t right[SR_MT_HASH_LEN],
                     uint8_t out[SR_MT_HASH_LEN])
{
    uint8_t b[1 + 2 * SR_MT_HASH_LEN];
    b[0] = 0x01;
    memcpy(b + 1, left, SR_MT_HASH_LEN);
    memcpy(b + 1 + SR_MT_HASH_LEN, right, SR_MT_HASH_LEN);
    sr_sha256(b, sizeof b, out);
}

void sr_mt_empty_root(uint8_t out[SR_MT_HASH_LEN]) { sr_sha256("", 0, out); }

/* ------------------------------------------------------------------------ */
/* The frontier (compact range)                                              */

void sr_mt_frontier_init(sr_mt_frontier *f) { memset(f, 0, sizeof *f); }

int sr_mt_frontier_push(sr_mt_frontier *f, const uint8_t leaf[SR_MT_HASH_LEN], sr_mt_emit emit, void *ctx)
{
    uint64_t s = f->size;
    if (s == UINT64_MAX) return SR_EINVAL;
    uint8_t cur[SR_MT_HASH_LEN];
    memcpy(cur, leaf, SR_MT_HASH_LEN);
    unsigned L = 0;
    if (emit) {
        int rc = emit(ctx, 0, s, cur);
        if (rc) return rc;
    }
    /* a binary counter: each set low bit of s is a left sibling to merge */
    while (s >> L & 1) {
        sr_mt_node_hash(f->h[L], cur, cur);
        L++;
        if (emit) {
            int rc = emit(ctx, L, s >> L, cur);
            if (rc) return rc;
        }
    }
    memcpy(f->h[L], cur, SR_MT_HASH_LEN);
    f->size = s + 1;
    return SR_OK;
}

void sr_mt_frontier_root(const sr_mt_frontier *f, uint8_t out[SR_MT_HASH_LEN])
{
    if (!f->size) {
        sr_mt_empty_root(out);
        return;
    }
    int have = 0;
    uint8_t r[SR_MT_HASH_LEN];
    for (unsigned L = 0; L < SR_MT_MAX_LEVEL; L++) {
        if (!(f->size >> L & 1)) continue;
        if (!have) memcpy(r, f->h[L], SR_MT_HASH_LEN), have = 1;
        else sr_mt_node_hash(f->h[L], r, r);
    }
    memcpy(out, r, SR_MT_HASH_LEN);
}

size_t sr_mt_frontier_encode(const sr_mt_frontier *f, uint8_t *out)
{
    sr_put_le64(out, f->size);
    size_t n = 8;
    for (int L = SR_MT_MAX_LEVEL - 1; L >= 0; L--)
        if (f->size >> L & 1) memcpy(out + n, f->h[L], SR_MT_HASH_LEN), n += SR_MT_HASH_LEN;
    return n;
}

int sr_mt_frontier_decode(const uint8_t *in, size_t n, sr_mt_frontier *f)
{
    sr_mt_frontier_init(f);
    if (n < 8) return SR_ECORRUPT;
    f->size = sr_get_le64(in);
    size_t pos = 8;
    for (int L = SR_MT_MAX_LEVEL - 1; L >= 0; L--) {
        if (!(f->size >> L & 1)) continue;
        if (pos + SR_MT_HASH_LEN > n) return SR_ECORRUPT;
        memcpy(f->h[L], in + pos, SR_MT_HASH_LEN);
        pos += SR_MT_HASH_LEN;
    }
    return pos == n ? SR_OK : SR_ECORRUPT;
}

/* ------------------------------------------------------------------------ */
/* Proofs over stored perfect subtrees                                        */

static int is_pow2(uint64_t n) { return n && !(n & (n - 1)); }

static unsigned log2u(uint64_t n)
{
    unsigned L = 0;
    while (n >>= 1) L++;
    return L;
}

/* the largest power of two smaller than n (n >= 2) */
static uint64_t split(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n) k <<= 1;
    return k;
}

/* MTH(D[lo:hi]) for a range of invariant 2 (hi > lo). */
static int range_hash(sr_mt_get get, void *ctx, uint64_t lo, uint64_t hi, uint8_t out[SR_MT_HASH_LEN])
{
    uint64_t n = hi - lo;
    if (is_pow2(n)) {
        if (lo % n) return SR_EINVAL;
        return get(ctx, log2u(n), lo / n, out);
    }
    uint64_t k = split(n);
    uint8_t l[SR_MT_HASH_LEN], r[SR_MT_HASH_LEN];
    int rc = range_hash(get, ctx, lo, lo + k, l);
    if (!rc) rc = range_hash(get, ctx, lo + k, hi, r);
    if (rc) return rc;
    sr_mt_node_hash(l, r, out);
    return SR_OK;
}

int sr_mt_frontier_at(sr_mt_get get, void *ctx, uint64_t n, sr_mt_frontier *out)
{
    sr_mt_frontier_init(out);
    out->size = n;
    for (unsigned L = 0; L < SR_MT_MAX_LEVEL; L++) {
        if (!(n >> L & 1)) continue;
        int rc = get(ctx, L, (n >> L) - 1, out->h[L]);
        if (rc) return rc;
    }
    return SR_OK;
}

int sr_mt_root(sr_mt_get get, void *ctx, uint64_t n, uint8_t out[SR_MT_HASH_LEN])
{
    if (!n) {
        sr_mt_empty_root(out);
        return SR_OK;
    }
    return range_hash(get, ctx, 0, n, out);
}

/* PATH(m, D[lo:hi]): the siblings from the leaf up */
static int path_rec(sr_mt_get get, void *ctx, uint64_t m, uint64_t lo, uint64_t hi,
                    uint8_t path[][SR_MT_HASH_LEN], size_t *len)
{
    uint64_t n = hi - lo;
    if (n == 1) return SR_OK;
    uint64_t k = split(n);
    int rc;
    if (m - lo < k) {
        if ((rc = path_rec(get, ctx, m, lo, lo + k, path, len))) return rc;
        rc = range_hash(get, ctx, lo + k, hi, path[*len]);
    } else {
        if ((rc = path_rec(get, ctx, m, lo + k, hi, path, len))) return rc;
        rc = range_hash(get, ctx, lo, lo + k, path[*len]);
    }
    if (rc) return rc;
    (*len)++;
    return SR_OK;
}

int sr_mt_inclusion(sr_mt_get get, void *ctx, uint64_t m, uint64_t n, uint8_t path[][SR_MT_HASH_LEN],
                    size_t *len)
{
    *len = 0;
    if (m >= n) return SR_EINVAL;
    return path_rec(get, ctx, m, 0, n, path, len);
}

/* SUBPROOF(m, D[lo:hi], b) */
static int subproof(sr_mt_get get, void *ctx, uint64_t m, uint64_t lo, uint64_t hi, int b,
                    uint8_t path[][SR_MT_HASH_LEN], size_t *len)
{
    uint64_t n = hi - lo;
    int rc;
    if (m == n) {
        if (b) return SR_OK;
        if ((rc = range_hash(get, ctx, lo, hi, path[*len]))) return rc;
        (*len)++;
        return SR_OK;
    }
    uint64_t k = split(n);
    if (m <= k) {
        if ((rc = subproof(get, ctx, m, lo, lo + k, b, path, len))) return rc;
        rc = range_hash(get, ctx, lo + k, hi, path[*len]);
    } else {
        if ((rc = subproof(get, ctx, m - k, lo + k, hi, 0, path, len))) return rc;
        rc = range_hash(get, ctx, lo, lo + k, path[*len]);
    }
    if (rc) return rc;
    (*len)++;
    return SR_OK;
}

int sr_mt_consistency(sr_mt_get get, void *ctx, uint64_t m, uint64_t n, uint8_t path[][SR_MT_HASH_LEN],
                      size_t *len)
{
    *len = 0;
    if (m == 0 || m > n) return SR_EINVAL;
    if (m == n) return SR_OK;
    return subproof(get, ctx, m, 0, n, 1, path, len);
}

/* ------------------------------------------------------------------------ */
/* Verifiers (RFC 9162 2.1.3.2, 2.1.4.2)                                      */

int sr_mt_verify_inclusion(uint64_t m, uint64_t n, const uint8_t leaf[SR_MT_HASH_LEN],
                           const uint8_t path[][SR_MT_HASH_LEN], size_t len, const uint8_t root[SR_MT_HASH_LEN])
{
    if (m >= n) return SR_ECORRUPT;
    uint64_t fn = m, sn = n - 1;
    uint8_t r[SR_MT_HASH_LEN];
    memcpy(r, leaf, SR_MT_HASH_LEN);
    for (size_t i = 0; i < len; i++) {
        if (sn == 0) return SR_ECORRUPT;
        if ((fn & 1) || fn == sn) {
            sr_mt_node_hash(path[i], r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) fn >>= 1, sn >>= 1;
        } else
            sr_mt_node_hash(r, path[i], r);
        fn >>= 1, sn >>= 1;
    }
    return sn == 0 && !memcmp(r, root, SR_MT_HASH_LEN) ? SR_OK : SR_ECORRUPT;
}

int sr_mt_verify_consistency(uint64_t m, uint64_t n, const uint8_t root1[SR_MT_HASH_LEN],
                             const uint8_t root2[SR_MT_HASH_LEN], const uint8_t path[][SR_MT_HASH_LEN],
                             size_t len)
{
    if (m == 0 || m > n) return SR_ECORRUPT;
    if (m == n) return !len && !memcmp(root1, root2, SR_MT_HASH_LEN) ? SR_OK : SR_ECORRUPT;
    if (!len) return SR_ECORRUPT;
    /* step 2: a first tree of a power-of-two size is its own first node */
    const uint8_t *first = path[0];
    size_t i = 1;
    if (is_pow2(m)) first = root1, i = 0;
    uint64_t fn = m - 1, sn = n - 1;
    while (fn & 1) fn >>= 1, sn >>= 1;
    uint8_t fr[SR_MT_HASH_LEN], sr[SR_MT_HASH_LEN];
    memcpy(fr, first, SR_MT_HASH_LEN);
    memcpy(sr, first, SR_MT_HASH_LEN);
    for (; i < len; i++) {
        if (sn == 0) return SR_ECORRUPT;
        if ((fn & 1) || fn == sn) {
            sr_mt_node_hash(path[i], fr, fr);
            sr_mt_node_hash(path[i], sr, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) fn >>= 1, sn >>= 1;
        } else
            sr_mt_node_hash(sr, path[i], sr);
        fn >>= 1, sn >>= 1;
    }
    return sn == 0 && !memcmp(fr, root1, SR_MT_HASH_LEN) && !memcmp(sr, root2, SR_MT_HASH_LEN) ? SR_OK
                                                                                              : SR_ECORRUPT;
}

/* ------------------------------------------------------------------------ */
/* The signed note (C2SP signed-note, tlog-checkpoint)                       */

static const char EMDASH[] = "\xe2\x80\x94"; /* U+2014 */

size_t sr_tlog_body(const char *origin, uint64_t size, const uint8_t root[SR_MT_HASH_LEN], const char *ext, char *out,
                    size_t cap)
{
    char b64[64];
    sr_base64(root, SR_MT_HASH_LEN, b64, 0);
    int n = snprintf(out, cap, "%s\n%llu\n%s\n%s", origin, (unsigned long long)size, b64, ext ? ext : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int sr_tlog_key_hash(sr_sigkey *k, const char *name, uint8_t out[4])
{
    uint8_t h[SR_HASH_LEN];
    if (sr_sigkey_alg(k) == SR_ALG_EDDSA) {
        uint8_t buf[256 + 2 + 32];
        size_t nl = strlen(name), pl = 32;
        if (nl > 256) return SR_EINVAL;
        memcpy(buf, name, nl);
        buf[nl] = '\n';
        buf[nl + 1] = 0x01; /* the Ed25519 signature type */
        int rc = sr_sigkey_raw_public(k, buf + nl + 2, &pl);
        if (rc) return rc;
        sr_sha256(buf, nl + 2 + pl, h);
    } else {
        int rc = sr_sigkey_id(k, h); /* SHA-256 of the DER SubjectPublicKeyInfo */
        if (rc) return rc;
    }
    memcpy(out, h, 4);
    return SR_OK;
}

/* a key name: non-empty, no space, no newline, no '+' (C2SP signed-note) */
static int name_ok(const char *name)
{
    if (!*name) return 0;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '+') return 0;
    return 1;
}

int sr_tlog_sign(sr_sigkey *k, const char *name, const char *body, char *out, size_t cap)
{
    size_t bl = strlen(body);
    if (!name_ok(name) || !bl || body[bl - 1] != '\n') return SR_EINVAL;
    uint8_t blob[4 + SR_SIG_MAX_LEN + 16];
    size_t sl = 0;
    int rc = sr_tlog_key_hash(k, name, blob);
    if (!rc) rc = sr_sigkey_sign_der(k, body, bl, blob + 4, &sl);
    if (rc) return rc;
    char b64[(sizeof blob + 2) / 3 * 4 + 1];
    sr_base64(blob, 4 + sl, b64, 0);
    int n = snprintf(out, cap, "%s\n%s %s %s\n", body, EMDASH, name, b64);
    return n > 0 && (size_t)n < cap ? SR_OK : SR_EINVAL;
}

int sr_tlog_verify(sr_sigkey *k, const char *name, const char *note, size_t *bodylen)
{
    /* the body ends at the last blank line (the signatures follow it) */
    const char *sep = NULL;
    for (const char *p = strstr(note, "\n\n"); p; p = strstr(p + 1, "\n\n")) sep = p;
    if (!sep) return SR_ECORRUPT;
    size_t bl = (size_t)(sep - note) + 1;
    uint8_t want[4];
    int rc = sr_tlog_key_hash(k, name, want);
    if (rc) return rc;
    size_t nl = strlen(name);
    int found = 0;
    for (const char *line = sep + 2; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) return SR_ECORRUPT; /* every line ends in a newline */
        size_t ll = (size_t)(end - line);
        if (ll < 4 + nl + 1 || memcmp(line, EMDASH, 3) || line[3] != ' ') return SR_ECORRUPT;
        if (!memcmp(line + 4, name, nl) && line[4 + nl] == ' ') {
            const char *b = line + 4 + nl + 1;
            uint8_t blob[4 + SR_SIG_MAX_LEN + 16];
            size_t n = 0;
            if (sr_unbase64(b, (size_t)(end - b), blob, sizeof blob, &n) || n <= 4) return SR_ECORRUPT;
            if (!memcmp(blob, want, 4)) {
                if (sr_sigkey_verify_der(k, note, bl, blob + 4, n - 4)) return SR_ECORRUPT;
                found = 1;
            }
        }
        line = end + 1;
    }
    if (!found) return SR_ENOTFOUND;
    if (bodylen) *bodylen = bl;
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* A suiro note's fields                                                     */

static int unb64_hash(const char *in, size_t n, uint8_t out[SR_MT_HASH_LEN])
{
    uint8_t buf[64]; /* the decoder wants room for the padding's bytes */
    size_t len;
    if (n > 48 || sr_unbase64(in, n, buf, sizeof buf, &len) || len != SR_MT_HASH_LEN) return SR_ECORRUPT;
    memcpy(out, buf, SR_MT_HASH_LEN);
    return SR_OK;
}

/* an unsigned decimal of [p, e): SR_OK and *v; leading zeros allowed, no sign */
static int dec_u64(const char *p, const char *e, uint64_t *v)
{
    if (p == e || e - p > 20) return SR_ECORRUPT;
    uint64_t x = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return SR_ECORRUPT;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return SR_ECORRUPT;
        x = x * 10 + d;
    }
    *v = x;
    return SR_OK;
}

int sr_tlog_parse(const char *note, size_t n, sr_tlog_fields *out)
{
    memset(out, 0, sizeof *out);
    const char *line[4], *end[4], *p = note, *lim = note + n;
    for (int i = 0; i < 4; i++) {
        const char *nl = memchr(p, '\n', (size_t)(lim - p));
        if (!nl) return SR_ECORRUPT;
        line[i] = p;
        end[i] = nl;
        p = nl + 1;
    }
    size_t ol = (size_t)(end[0] - line[0]);
    if (!ol || ol >= sizeof out->origin || memchr(line[0], 0, ol)) return SR_ECORRUPT;
    memcpy(out->origin, line[0], ol);
    if (dec_u64(line[1], end[1], &out->size) || !out->size) return SR_ECORRUPT;
    if (unb64_hash(line[2], (size_t)(end[2] - line[2]), out->root)) return SR_ECORRUPT;
    /* suiro-tip <tip> <last> <time> */
    static const char tag[] = "suiro-tip ";
    const char *q = line[3], *e = end[3];
    if ((size_t)(e - q) < sizeof tag - 1 || memcmp(q, tag, sizeof tag - 1)) return SR_ECORRUPT;
    q += sizeof tag - 1;
    const char *f[3], *fe[3];
    for (int i = 0; i < 3; i++) {
        const char *sp = i < 2 ? memchr(q, ' ', (size_t)(e - q)) : e;
        if (!sp) return SR_ECORRUPT;
        f[i] = q;
        fe[i] = sp;
        q = sp + (i < 2);
    }
    uint64_t t;
    if (unb64_hash(f[0], (size_t)(fe[0] - f[0]), out->tip) || dec_u64(f[1], fe[1], &out->last_seq) ||
        dec_u64(f[2], fe[2], &t) || t > INT64_MAX)
        return SR_ECORRUPT;
    out->time_ms = (int64_t)t;
    return SR_OK;
}
