/*
 * codecs/accpack.c -- the packed batch of reads (codecs/accpack.h: the
 * format and the invariants).
 */
#include "codecs/accpack.h"

#include "codecs/base/sr_hash.h"

#include <string.h>

static const sr_apk_entry ZERO = {.code = SR_APK_NONE};

void sr_apk_init(sr_apk *b)
{
    memset(b, 0, sizeof *b);
    sr_buf_init(&b->text);
    sr_buf_init(&b->ents);
    b->prev = ZERO;
}

void sr_apk_reset(sr_apk *b)
{
    b->text.len = 0;
    b->ents.len = 0;
    b->nstr = b->nref = b->nent = 0;
    b->prev = ZERO;
    b->npk = 0;
    if (b->slot) memset(b->slot, 0, b->nslot * sizeof *b->slot);
}

void sr_apk_release(sr_apk *b)
{
    sr_buf_release(&b->text);
    sr_free(b->off);
    sr_free(b->hashes);
    sr_free(b->slot);
    sr_free(b->refs);
    sr_buf_release(&b->ents);
    sr_apk_init(b);
}

/* the table at twice the strings, at least 64 slots */
static int rehash(sr_apk *b)
{
    size_t n = b->nslot ? b->nslot * 2 : 64;
    uint32_t *s = sr_calloc(n, sizeof *s);
    if (!s) return SR_ENOMEM;
    for (size_t i = 0; i < b->nstr; i++) {
        size_t k = b->hashes[i] & (n - 1);
        while (s[k]) k = (k + 1) & (n - 1);
        s[k] = (uint32_t)i + 1;
    }
    sr_free(b->slot);
    b->slot = s;
    b->nslot = n;
    return SR_OK;
}

int sr_apk_str(sr_apk *b, const char *s, size_t n)
{
    if (n >= SR_APK_STRLEN_MAX || memchr(s, 0, n)) return -1;
    uint32_t h = sr_hash(s, n);
    if (b->nslot) {
        for (size_t k = h & (b->nslot - 1);; k = (k + 1) & (b->nslot - 1)) {
            uint32_t ix = b->slot[k];
            if (!ix) break;
            ix--;
            if (b->hashes[ix] != h) continue;
            const char *t = (const char *)b->text.data + b->off[ix];
            if (!memcmp(t, s, n) && !t[n]) return (int)ix;
        }
    }
    if (b->nstr >= SR_APK_STRS_MAX) return -1;
    if ((b->nstr + 1) * 2 > b->nslot && rehash(b)) return -1;
    if (b->nstr == b->capstr) {
        size_t c = b->capstr ? b->capstr * 2 : 32;
        uint32_t *o = sr_realloc(b->off, c * sizeof *o);
        if (!o) return -1;
        b->off = o;
        uint32_t *hs = sr_realloc(b->hashes, c * sizeof *hs);
        if (!hs) return -1;
        b->hashes = hs;
        b->capstr = c;
    }
    size_t at = b->text.len;
    if (sr_buf_reserve(&b->text, n + 1)) return -1;
    memcpy(b->text.data + at, s, n);
    b->text.data[at + n] = 0;
    b->text.len = at + n + 1;
    size_t ix = b->nstr++;
    b->off[ix] = (uint32_t)at;
    b->hashes[ix] = h;
    size_t k = h & (b->nslot - 1);
    while (b->slot[k]) k = (k + 1) & (b->nslot - 1);
    b->slot[k] = (uint32_t)ix + 1;
    return (int)ix;
}

int sr_apk_static(sr_apk *b, const char *s)
{
    for (unsigned i = 0; i < b->npk; i++)
        if (b->pk[i] == s) return b->pix[i];
    int ix = sr_apk_str(b, s, strlen(s));
    if (ix >= 0) {
        unsigned k = b->npk < 8 ? b->npk++ : (unsigned)ix & 7; /* a full cache: one slot replaced */
        b->pk[k] = s;
        b->pix[k] = (uint16_t)ix;
    }
    return ix;
}

/* the points of the entry before again (a few: a loop, not a memcmp call) */
static inline int same_refs(const uint16_t *a, const uint16_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

int sr_apk_add(sr_apk *b, const sr_apk_entry *e, const uint16_t *refs)
{
    if (b->nent >= SR_APK_ENTRIES_MAX) return SR_ETOOBIG;
    const sr_apk_entry *q = &b->prev;
    if (b->nent && b->ents.cap - b->ents.len >= 11 && e->binding == q->binding && e->method == q->method &&
        e->route == q->route && e->source == q->source && e->code == q->code && e->status == q->status &&
        e->npl == q->npl && e->npoints == q->npoints && e->values == q->values && e->bytes == q->bytes &&
        (!e->npl || same_refs(refs, b->refs + q->ref, e->npl))) {
        /* the entry before again but its time (a poll): flags 0 and the
         * time, its indexes checked when they were first added */
        uint8_t *p = b->ents.data + b->ents.len;
        *p++ = 0;
        p = sr_varint_put(p, sr_zz_enc((uint64_t)e->time_ms - (uint64_t)q->time_ms));
        b->ents.len = (size_t)(p - b->ents.data);
        b->prev.time_ms = e->time_ms;
        b->nent++;
        return SR_OK;
    }
    if (e->npl > SR_APK_POINTS_MAX || e->npl > e->npoints || e->binding >= b->nstr || e->method >= b->nstr ||
        e->route >= b->nstr || e->source >= b->nstr || (e->code != SR_APK_NONE && e->code >= b->nstr))
        return SR_EINVAL;
    for (unsigned i = 0; i < e->npl; i++)
        if (refs[i] >= b->nstr) return SR_EINVAL;
    unsigned f = 0;
    if (e->binding != q->binding || e->method != q->method || e->route != q->route) f |= 1;
    if (e->source != q->source) f |= 2;
    if (e->code != q->code || e->status != q->status) f |= 4;
    if (e->npl != q->npl || e->npoints != q->npoints || (e->npl && memcmp(refs, b->refs + q->ref, e->npl * 2))) f |= 8;
    if (e->values != q->values) f |= 16;
    if (e->bytes != q->bytes) f |= 32;
    if (sr_buf_reserve(&b->ents, 1 + 11 * 10) ||
        ((f & 8) && sr_array_reserve(&b->refs, &b->capref, b->nref + e->npl, sizeof *b->refs)))
        return SR_ENOMEM;
    uint8_t *p = b->ents.data + b->ents.len;
    *p++ = (uint8_t)f;
    p = sr_varint_put(p, sr_zz_enc((uint64_t)e->time_ms - (uint64_t)q->time_ms));
    if (f & 1) {
        p = sr_varint_put(p, e->binding);
        p = sr_varint_put(p, e->method);
        p = sr_varint_put(p, e->route);
    }
    if (f & 2) p = sr_varint_put(p, e->source);
    if (f & 4) {
        p = sr_varint_put(p, e->code == SR_APK_NONE ? 0 : (uint64_t)e->code + 1);
        p = sr_varint_put(p, e->status);
    }
    uint32_t ref = q->ref;
    if (f & 8) {
        ref = (uint32_t)b->nref;
        if (e->npl) memcpy(b->refs + b->nref, refs, e->npl * sizeof *refs); /* refs may be NULL while none was kept */
        b->nref += e->npl;
        p = sr_varint_put(p, e->npl);
        p = sr_varint_put(p, ref);
        p = sr_varint_put(p, e->npoints);
    }
    if (f & 16) p = sr_varint_put(p, e->values);
    if (f & 32) p = sr_varint_put(p, e->bytes);
    b->ents.len = (size_t)(p - b->ents.data);
    b->prev = *e;
    b->prev.ref = ref;
    b->nent++;
    return SR_OK;
}

int sr_apk_finish(const sr_apk *b, sr_buf *out)
{
    if (!b->nent) return SR_EINVAL;
    size_t n = SR_APK_HEAD + 4 * b->nstr + b->text.len + 2 * b->nref + b->ents.len;
    if (sr_buf_reserve(out, n)) return SR_ENOMEM;
    uint8_t *p = out->data + out->len;
    memcpy(p, SR_APK_MAGIC, 4);
    sr_put_le32(p + 4, (uint32_t)b->nstr);
    sr_put_le32(p + 8, (uint32_t)b->nref);
    sr_put_le32(p + 12, (uint32_t)b->nent);
    sr_put_le32(p + 16, (uint32_t)b->text.len);
    p += SR_APK_HEAD;
    for (size_t i = 0; i < b->nstr; i++, p += 4) sr_put_le32(p, b->off[i]);
    memcpy(p, b->text.data, b->text.len);
    p += b->text.len;
    for (size_t i = 0; i < b->nref; i++, p += 2) sr_put_le16(p, b->refs[i]);
    memcpy(p, b->ents.data, b->ents.len);
    out->len += n;
    return SR_OK;
}

/* a varint of at most 10 bytes within [*p, end) */
static inline int getv(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && !(**p & 0x80)) return *v = *(*p)++, 0; /* one byte, most often */
    uint64_t x = 0;
    for (unsigned s = 0; s < 70 && *p < end; s += 7) {
        uint8_t c = *(*p)++;
        x |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) return *v = x, 0;
    }
    return -1;
}

/* the next entry's fields over it->e; 0, or -1 (bad bytes or a value out
 * of range for view v; v NULL: only the bytes' shape) */
static inline int step(sr_apk_iter *it, const sr_apk_view *v)
{
    const uint8_t **p = &it->p, *end = it->end;
    sr_apk_entry *e = &it->e;
    uint64_t x, y, z;
    if (*p >= end) return -1;
    unsigned f = *(*p)++;
    if (f & 0xC0 || getv(p, end, &x)) return -1;
    e->time_ms = (int64_t)((uint64_t)e->time_ms + sr_zz_dec(x));
    uint32_t nstr = v ? v->nstr : 0xFFFF;
    if (f & 1) {
        if (getv(p, end, &x) || getv(p, end, &y) || getv(p, end, &z) || x >= nstr || y >= nstr || z >= nstr) return -1;
        e->binding = (uint16_t)x, e->method = (uint16_t)y, e->route = (uint16_t)z;
    }
    if (f & 2) {
        if (getv(p, end, &x) || x >= nstr) return -1;
        e->source = (uint16_t)x;
    }
    if (f & 4) {
        if (getv(p, end, &x) || getv(p, end, &y) || x > nstr || y > 0xFFFF) return -1;
        e->code = x ? (uint16_t)(x - 1) : SR_APK_NONE;
        e->status = (uint16_t)y;
    }
    if (f & 8) {
        if (getv(p, end, &x) || getv(p, end, &y) || getv(p, end, &z) || x > SR_APK_POINTS_MAX || z > UINT32_MAX ||
            x > z || y > UINT32_MAX || (v && y + x > v->nref))
            return -1;
        e->npl = (uint16_t)x, e->ref = (uint32_t)y, e->npoints = (uint32_t)z;
    }
    if (f & 16 && getv(p, end, &e->values)) return -1;
    if (f & 32 && getv(p, end, &e->bytes)) return -1;
    return 0;
}

#define BAD(w)                                                                                                     \
    do {                                                                                                           \
        if (why) *why = (w);                                                                                       \
        return SR_ECODEC;                                                                                          \
    } while (0)

int sr_apk_parse(const uint8_t *p, size_t n, sr_apk_view *v, const char **why)
{
    int rc = sr_apk_parse_head(p, n, v, why);
    if (rc) return rc;
    sr_apk_iter it;
    sr_apk_iter_init(v, &it);
    for (uint32_t i = 0; i < v->nent; i++)
        if (step(&it, v)) BAD("an entry is cut or names a string, a point or a value out of range");
    if (it.p != v->end) BAD("bytes after the last entry");
    return SR_OK;
}

int sr_apk_parse_head(const uint8_t *p, size_t n, sr_apk_view *v, const char **why)
{
    if (n < SR_APK_HEAD || memcmp(p, SR_APK_MAGIC, 4)) BAD("not a packed batch of reads (no SRA1 header)");
    uint32_t nstr = sr_get_le32(p + 4), nref = sr_get_le32(p + 8), nent = sr_get_le32(p + 12),
             nchar = sr_get_le32(p + 16);
    if (!nent || nent > SR_APK_ENTRIES_MAX) BAD("a packed batch holds 1 to 4096 entries");
    if (!nstr || nstr > SR_APK_STRS_MAX) BAD("a packed batch's string table holds 1 to 65535 strings");
    if ((uint64_t)nref > (uint64_t)nent * SR_APK_POINTS_MAX) BAD("more listed points than 16 an entry");
    uint64_t head = (uint64_t)SR_APK_HEAD + 4ull * nstr + nchar + 2ull * nref;
    if (head + 2ull * nent > n) BAD("a packed batch is shorter than its header says");
    v->nstr = nstr;
    v->nref = nref;
    v->nent = nent;
    v->nchar = nchar;
    v->off = p + SR_APK_HEAD;
    v->text = v->off + 4ull * nstr;
    v->refs = v->text + nchar;
    v->ents = v->refs + 2ull * nref;
    v->end = p + n;
    for (uint32_t i = 0; i < nstr; i++) {
        uint32_t a = sr_get_le32(v->off + 4ull * i), z = i + 1 < nstr ? sr_get_le32(v->off + 4ull * (i + 1)) : nchar;
        if (i == 0 && a) BAD("the first string does not start the text");
        if (z <= a || z > nchar || z - a > SR_APK_STRLEN_MAX) BAD("a string's bounds are out of order");
        if (v->text[z - 1] || memchr(v->text + a, 0, z - a - 1)) BAD("a string is not one NUL-ended string");
    }
    for (uint32_t k = 0; k < nref; k++)
        if (sr_apk_ref(v, k) >= nstr) BAD("a listed point names no string");
    return SR_OK;
}

void sr_apk_iter_init(const sr_apk_view *v, sr_apk_iter *it)
{
    it->p = v->ents;
    it->end = v->end;
    it->left = v->nent;
    it->e = ZERO;
}

int sr_apk_next(sr_apk_iter *it, sr_apk_entry *e)
{
    if (!it->left) return 0;
    if (step(it, NULL)) return it->left = 0, 0;
    it->left--;
    *e = it->e;
    return 1;
}

int sr_apk_next_checked(sr_apk_iter *it, const sr_apk_view *v, sr_apk_entry *e)
{
    if (!it->left) return it->p == v->end ? 0 : -1;
    if (step(it, v)) return it->left = 0, -1;
    it->left--;
    *e = it->e;
    return 1;
}
