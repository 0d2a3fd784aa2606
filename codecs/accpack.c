/*
 * codecs/accpack.c -- the packed batch of reads (codecs/accpack.h: the
 * format and the invariants).
 */
#include "codecs/accpack.h"

#include "codecs/base/sr_hash.h"

#include <string.h>

void sr_apk_init(sr_apk *b)
{
    memset(b, 0, sizeof *b);
    sr_buf_init(&b->text);
}

void sr_apk_reset(sr_apk *b)
{
    b->text.len = 0;
    b->nstr = b->nref = b->nent = 0;
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
    sr_free(b->ents);
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

int sr_apk_add(sr_apk *b, const sr_apk_entry *e, const uint16_t *refs)
{
    if (b->nent >= SR_APK_ENTRIES_MAX) return SR_ETOOBIG;
    if (e->npl > SR_APK_POINTS_MAX || e->npl > e->npoints || e->binding >= b->nstr || e->method >= b->nstr ||
        e->route >= b->nstr || e->source >= b->nstr || (e->code != SR_APK_NONE && e->code >= b->nstr))
        return SR_EINVAL;
    for (unsigned i = 0; i < e->npl; i++)
        if (refs[i] >= b->nstr) return SR_EINVAL;
    if (sr_array_reserve(&b->refs, &b->capref, b->nref + e->npl, sizeof *b->refs) ||
        sr_array_reserve(&b->ents, &b->capent, (b->nent + 1) * SR_APK_ENTRY, 1))
        return SR_ENOMEM;
    uint32_t ref = (uint32_t)b->nref;
    memcpy(b->refs + b->nref, refs, e->npl * sizeof *refs);
    b->nref += e->npl;
    uint8_t *p = b->ents + b->nent * SR_APK_ENTRY;
    sr_put_le64(p, (uint64_t)e->time_ms);
    sr_put_le16(p + 8, e->binding);
    sr_put_le16(p + 10, e->method);
    sr_put_le16(p + 12, e->route);
    sr_put_le16(p + 14, e->source);
    sr_put_le16(p + 16, e->code);
    sr_put_le16(p + 18, e->status);
    sr_put_le16(p + 20, e->npl);
    sr_put_le16(p + 22, 0);
    sr_put_le32(p + 24, e->npoints);
    sr_put_le32(p + 28, ref);
    sr_put_le64(p + 32, e->values);
    sr_put_le64(p + 40, e->bytes);
    b->nent++;
    return SR_OK;
}

int sr_apk_finish(const sr_apk *b, sr_buf *out)
{
    if (!b->nent) return SR_EINVAL;
    size_t n = SR_APK_HEAD + 4 * b->nstr + b->text.len + 2 * b->nref + SR_APK_ENTRY * b->nent;
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
    memcpy(p, b->ents, SR_APK_ENTRY * b->nent);
    out->len += n;
    return SR_OK;
}

#define BAD(w)                                                                                                     \
    do {                                                                                                           \
        if (why) *why = (w);                                                                                       \
        return SR_ECODEC;                                                                                          \
    } while (0)

int sr_apk_parse(const uint8_t *p, size_t n, sr_apk_view *v, const char **why)
{
    if (n < SR_APK_HEAD || memcmp(p, SR_APK_MAGIC, 4)) BAD("not a packed batch of reads (no SRA1 header)");
    uint32_t nstr = sr_get_le32(p + 4), nref = sr_get_le32(p + 8), nent = sr_get_le32(p + 12),
             nchar = sr_get_le32(p + 16);
    if (!nent || nent > SR_APK_ENTRIES_MAX) BAD("a packed batch holds 1 to 4096 entries");
    if (!nstr || nstr > SR_APK_STRS_MAX) BAD("a packed batch's string table holds 1 to 65535 strings");
    if ((uint64_t)nref > (uint64_t)nent * SR_APK_POINTS_MAX) BAD("more listed points than 16 an entry");
    uint64_t need = (uint64_t)SR_APK_HEAD + 4ull * nstr + nchar + 2ull * nref + (uint64_t)SR_APK_ENTRY * nent;
    if (need != n) BAD("a packed batch's length is not its header's");
    v->nstr = nstr;
    v->nref = nref;
    v->nent = nent;
    v->nchar = nchar;
    v->off = p + SR_APK_HEAD;
    v->text = v->off + 4ull * nstr;
    v->refs = v->text + nchar;
    v->ents = v->refs + 2ull * nref;
    for (uint32_t i = 0; i < nstr; i++) {
        uint32_t a = sr_get_le32(v->off + 4ull * i), z = i + 1 < nstr ? sr_get_le32(v->off + 4ull * (i + 1)) : nchar;
        if (i == 0 && a) BAD("the first string does not start the text");
        if (z <= a || z > nchar || z - a > SR_APK_STRLEN_MAX) BAD("a string's bounds are out of order");
        if (v->text[z - 1] || memchr(v->text + a, 0, z - a - 1)) BAD("a string is not one NUL-ended string");
    }
    for (uint32_t k = 0; k < nref; k++)
        if (sr_apk_ref(v, k) >= nstr) BAD("a listed point names no string");
    for (uint32_t i = 0; i < nent; i++) {
        sr_apk_entry e;
        sr_apk_entry_at(v, i, &e);
        if (e.binding >= nstr || e.method >= nstr || e.route >= nstr || e.source >= nstr ||
            (e.code != SR_APK_NONE && e.code >= nstr))
            BAD("an entry names no string");
        if (e.npl > SR_APK_POINTS_MAX || e.npl > e.npoints || (uint64_t)e.ref + e.npl > nref)
            BAD("an entry's listed points are out of range");
        if (sr_get_le16(v->ents + (size_t)i * SR_APK_ENTRY + 22)) BAD("an entry's reserved bytes are not zero");
    }
    return SR_OK;
}

void sr_apk_entry_at(const sr_apk_view *v, uint32_t i, sr_apk_entry *e)
{
    const uint8_t *p = v->ents + (size_t)i * SR_APK_ENTRY;
    e->time_ms = (int64_t)sr_get_le64(p);
    e->binding = sr_get_le16(p + 8);
    e->method = sr_get_le16(p + 10);
    e->route = sr_get_le16(p + 12);
    e->source = sr_get_le16(p + 14);
    e->code = sr_get_le16(p + 16);
    e->status = sr_get_le16(p + 18);
    e->npl = sr_get_le16(p + 20);
    e->npoints = sr_get_le32(p + 24);
    e->ref = sr_get_le32(p + 28);
    e->values = sr_get_le64(p + 32);
    e->bytes = sr_get_le64(p + 40);
}
